#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# Concurrency (issue 11): the module's hooks, netlink handlers and parking poll racing each
# other on the guest's two vCPUs. Every case ends with the module unloaded and the kernel log
# clean (on the sanitizer kernels of `make check-sanitizers` that includes KASAN, KMEMLEAK,
# lockdep and KCSAN reports):
# - bulk traffic on several connections while snooping is stopped and started, while the
#   module is unloaded, and while the snooping namespace is deleted;
# - concurrent SNOOP_START/STOP, TAKEOVER, DIRECTIVE (for connections not mirrored: refused
#   after the handler's lookups) and LEASE_SET from parallel callers:
#   the namespace stays consistent (snooping on exactly when the last command says so);
# - rmmod with 300 connections parked, and rmmod while a takeover of 300 connections runs
#   into a listener that closes and reopens while connections are injected into its queue.
. /selftests/lib.sh

ktap_plan 17
BYTES=8000000
# Two CPUs, or nothing here races: the test kernel finds its CPUs in QEMU's ACPI tables
# (without CONFIG_ACPI it booted on one, whatever -smp said).
check "the guest runs on two CPUs" grep -qx "0-1" /sys/devices/system/cpu/online
# The short form (make check) runs fewer rounds: 8 snooping toggles under traffic instead of
# 20, 4 x 6 parallel rounds instead of 4 x 15, 100 parked connections instead of 300.
TOGGLES=20 ROUNDS=15 PARKED=300
quick && TOGGLES=8 ROUNDS=6 PARKED=100

# Starts $1 bulk downloads from the owner through the snooped link (background, pids in
# $bulk_pids).
bulk_traffic() { # count
	in_owner ptcp-testapp down-serve "[::]:81" $BYTES >/dev/null 2>&1 &
	bulk_pids=$!
	sleep 0.3
	i=0
	while [ $i -lt "$1" ]; do
		touch /tmp/cc-go
		in_client ptcp-testapp down-client 10.0.0.1:81 $BYTES /tmp/cc-go >/dev/null 2>&1 &
		bulk_pids="$bulk_pids $!"
		i=$((i + 1))
	done
}

# 1. Snooping stopped and started under traffic.
load_module
check "traffic: cluster up" cluster_up
bulk_traffic 4
i=0
while [ $i -lt $TOGGLES ]; do
	in_peer permctl snoop stop >/dev/null 2>&1
	in_peer permctl snoop start --dev eth0 >/dev/null 2>&1
	i=$((i + 1))
done
check "traffic: snooping ends in the state the last command set" sh -c \
	'/bin/ip netns exec peer permctl --json stats | grep -q "\"device_ifindex\":[1-9]"'
# 2. The module unloaded while frames flow through its hook (retried while a handler holds
# it), then the snooping namespace deleted while the next module instance hooks its device.
t=0
while ! rmmod permtcp 2>/dev/null && [ $t -lt 50 ]; do sleep 0.1; t=$((t + 1)); done
check "traffic: the module unloads while frames flow" sh -c '! grep -q "^permtcp " /proc/modules'
load_module
in_peer permctl decl add $PEER_DECL --local >/dev/null
in_peer permctl decl add $OWNER_DECL >/dev/null
in_peer permctl snoop start --dev eth0 >/dev/null
/bin/ip netns del peer
sleep 0.5
check "traffic: the snooping namespace deleted while frames flow" kernel_log_clean
kill -9 $bulk_pids 2>/dev/null
case_done "traffic: kernel log clean"

# 3. Parallel callers.
load_module
check "parallel: cluster up" cluster_up
rm -f /tmp/cc-par.*
for j in 1 2 3 4; do
	(
		k=0
		while [ $k -lt $ROUNDS ]; do
			in_peer permctl snoop stop >/dev/null 2>&1
			in_peer permctl snoop start --dev eth0 >/dev/null 2>&1
			in_peer permctl lease --ms $((k * 100)) >/dev/null 2>&1
			in_peer permctl takeover --node 1 --no-assume >>/tmp/cc-par.$j 2>&1
			in_peer permctl debug raw --cmd 12 "$(directive_hex $((40000 + k)) 1)" >/dev/null 2>&1
			k=$((k + 1))
		done
	) &
done
wait
in_peer permctl snoop stop >/dev/null 2>&1
in_peer permctl snoop start --dev eth0 >/dev/null
/bin/ip -n peer -d link show eth0 | grep -o "promiscuity [0-9]*" | sed 's/^/# /'
check "parallel: snooping on after the last start, the device hooked once" sh -c \
	'/bin/ip netns exec peer permctl --json stats | grep -q "\"device_ifindex\":[1-9]" &&
	 /bin/ip -n peer -d link show eth0 | grep -q "promiscuity 1 "'
check "parallel: exactly one of $((4 * ROUNDS)) takeovers succeeded, the others were refused" sh -c \
	"[ \$(cat /tmp/cc-par.* | grep -c 'node 1 failed:') = 1 ] &&
	 [ \$(cat /tmp/cc-par.* | grep -c 'already taken over') = $((4 * ROUNDS - 1)) ]"
case_done "parallel: kernel log clean"

# 4. rmmod with 300 connections parked (nobody listens), then rmmod during a takeover whose
# listener appears and closes again while connections are injected into its accept queue.
unload_case() { # with-flapping-listener
	load_module
	check "unload$1: cluster up" cluster_up
	in_owner ptcp-testapp echo-serve "[::]:80" &
	owner_pid=$!
	sleep 0.5
	paused_client /tmp/cc-many 600 ptcp-testapp echo-many 10.0.0.1:80 $PARKED /tmp/cc-many
	sleep 1
	crash_owner $owner_pid
	flap_pid=
	if [ -n "$1" ]; then
		(
			n=0
			while [ $n -lt 20 ]; do
				in_peer timeout 0.2 ptcp-testapp echo-serve "[::]:80" >/dev/null 2>&1
				n=$((n + 1))
			done
		) &
		flap_pid=$!
		in_peer permctl takeover --node 1 >/tmp/cc-takeover 2>&1 &
		takeover_pid=$!
		sleep 0.3
	else
		in_peer permctl takeover --node 1 >/tmp/cc-takeover 2>&1
		check "unload: every connection parked (nobody listens)" sh -c \
			"/bin/ip netns exec peer permctl status | grep -q 'parked  *$PARKED now'"
	fi
	t=0
	while ! rmmod permtcp 2>/dev/null && [ $t -lt 100 ]; do sleep 0.1; t=$((t + 1)); done
	[ -z "$1" ] || wait $takeover_pid
	sed 's/^/# takeover: /' /tmp/cc-takeover
	check "unload$1: the module unloaded" sh -c '! grep -q "^permtcp " /proc/modules'
	kill -9 $flap_pid $client_pid 2>/dev/null
	case_done "unload$1: kernel log clean"
}
unload_case
unload_case " (flapping listener)"
ktap_finish
