#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# Fail-over directives (Documentation/design.rst, "Fail-over directives"). Node 1 owns the service; peers node 2 and
# node 3 follow it (smallest id first; node 3 answers ARP for the address). Node 2 starts
# snooping after the connection was set up, so it cannot take it over: its takeover sends a
# directive to node 3, whose `permctl directives` has node 3's kernel take the connection over
# (it saw the SYN): the client's bulk download continues from node 3 and every byte is right.
# Node 3 holds the address before the directive arrives: its stack's resets of the mirrored
# connection are dropped meanwhile.
# When node 3 did not see the SYN either, it resets the connection: the client gets a reset
# at once instead of hanging. IPv4 and IPv6.
. /selftests/lib.sh

ktap_plan 22
BYTES=16000000

decls() { # extra owner-declaration options
	N1="--node 1 --addr 10.0.0.1 --addr fd00::1 --mac 02:00:00:00:00:01 --ports 80-90 $*"
	N2="--node 2 --addr 10.0.0.2 --addr fd00::2 --mac 02:00:00:00:00:02 --ports 80-90"
	N3="--node 3 --addr 10.0.0.3 --addr fd00::3 --mac 02:00:00:00:00:04 --ports 80-90"
	for ns in owner peer peer2; do
		for d in "$N1" "$N2" "$N3"; do
			local=
			case "$ns/$d" in owner/--node\ 1* | peer/--node\ 2* | peer2/--node\ 3*) local=--local ;; esac
			/bin/ip netns exec $ns permctl decl add $d $local >/dev/null || return 1
		done
	done
}

conn_seen() { # namespace state
	t=0
	while [ $t -lt 100 ]; do
		/bin/ip netns exec $1 permctl --json conns | grep -q "\"state\":\"$2\"" && return 0
		sleep 0.1
		t=$((t + 1))
	done
	/bin/ip netns exec $1 permctl conns | sed 's/^/# /'
	return 1
}

# Node 3's stack tried to reset a mirrored connection, and the hook dropped it (within 3 s).
rst_dropped() {
	t=0
	while ! in_peer2 permctl --json stats | grep -q '"rst_dropped":[1-9]'; do
		[ $t -lt 30 ] || return 1
		sleep 0.1
		t=$((t + 1))
	done
}

# The client's connection to 10.0.0.1:80 leaves ESTABLISHED within 3 s.
client_conn_gone() {
	t=0
	while in_client grep -q " 0100000A:0050 01 " /proc/net/tcp; do
		[ $t -lt 30 ] || return 1
		sleep 0.1
		t=$((t + 1))
	done
}

directive_case() { # family service-address node3-saw-the-SYN
	fam=$1 vip=$2 synced=$3
	load_module
	PEER2=1 cluster_net
	check "IPv$fam, node 3 synced=$synced: declarations of three nodes" decls --arp node:3
	[ $synced = yes ] && in_peer2 permctl snoop start --dev eth0 >/dev/null
	in_owner ptcp-testapp down-serve "[::]:80" $BYTES &
	owner_pid=$!
	in_peer2 ptcp-testapp down-serve "[::]:80" $BYTES --resume 2>/tmp/dv-app.err &
	app_pid=$!
	in_peer permctl directives >/tmp/dv-d2.out 2>&1 &
	d2_pid=$!
	in_peer2 permctl directives >/tmp/dv-d3.out 2>&1 &
	d3_pid=$!
	sleep 0.5
	paused_client /tmp/dv 100 ptcp-testapp down-client "$vip:80" $BYTES /tmp/dv
	# Node 2 (and node 3 if it did not see the SYN) start now: the stalled download's window
	# probes show them the connection mid-stream.
	in_peer permctl snoop start --dev eth0 >/dev/null
	[ $synced = yes ] || in_peer2 permctl snoop start --dev eth0 >/dev/null
	check "IPv$fam, node 3 synced=$synced: node 2 mirrors it, not from its SYN" conn_seen peer UNSYNCED
	if [ $synced = no ]; then
		check "IPv$fam: node 3 mirrors it too, not from its SYN" conn_seen peer2 UNSYNCED
	fi
	in_peer2 permctl conns | sed 's/^/# node 3 mirror: /'
	in_client ss -tin 2>/dev/null | sed 's/^/# client: /'
	crash_owner $owner_pid
	in_peer2 permctl takeover --node 1 | sed 's/^/# node 3: /'
	if [ $synced = yes ]; then
		# Node 3 holds the address before the directive reaches it: the client, reading
		# again, sends it window updates, which its stack answers with resets, dropped.
		touch /tmp/dv
		check "IPv$fam: node 3 dropped its stack's resets of the mirrored connection" rst_dropped
	fi
	check "IPv$fam, node 3 synced=$synced: node 2 sends a directive to node 3" sh -c \
		'/bin/ip netns exec peer permctl takeover --node 1 | tee /dev/stderr | grep -q "goes to node 3"'
	if [ $synced = no ]; then
		# The paused client sends nothing: only node 3's reset can end its connection.
		check "IPv4: the idle client's connection is reset" client_conn_gone
	fi
	touch /tmp/dv
	t0=$(uptime_ms)
	wait $client_pid
	client_rc=$?
	t1=$(uptime_ms)
	sed 's/^/# client: /' /tmp/dv.out
	sed 's/^/# node 2 directives: /' /tmp/dv-d2.out
	sed 's/^/# node 3 directives: /' /tmp/dv-d3.out
	sed 's/^/# node 3 app: /' /tmp/dv-app.err
	for ns in peer2 client; do
		echo "# $ns: $(/bin/ip netns exec $ns grep Tcp: /proc/net/snmp | tail -n1)"
	done
	grep Tcp: /proc/net/snmp | head -n1 | sed 's/^/# /'
	if [ $synced = yes ]; then
		check "IPv$fam: node 3 took the connection over" grep -q "taken over" /tmp/dv-d3.out
		want=$(ptcp-testapp stream-sum $BYTES)
		[ $client_rc = 0 ] && grep -q "$want" /tmp/dv.out &&
			ktap_result ok "IPv$fam: the client read every byte right from node 3" ||
			ktap_result fail "IPv$fam: the client read every byte right from node 3"
	else
		check "IPv$fam: node 3 could not either, and reset it" grep -q "reset" /tmp/dv-d3.out
		echo "# the client's read failed $((t1 - t0)) ms after it resumed"
		[ $client_rc != 0 ] && grep -q "reset" /tmp/dv.out && [ $((t1 - t0)) -lt 5000 ] &&
			ktap_result ok "IPv$fam: the client got a reset at once, not a hang" ||
			ktap_result fail "IPv$fam: the client got a reset at once, not a hang"
	fi
	case_done "IPv$fam, node 3 synced=$synced: kernel log clean" $app_pid $d2_pid $d3_pid
}

directive_case 4 10.0.0.1 yes
directive_case 6 "[fd00::1]" yes
directive_case 4 10.0.0.1 no
ktap_finish
