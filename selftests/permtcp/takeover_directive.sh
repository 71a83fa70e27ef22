#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# Fail-over directives (Documentation/design.rst, "Fail-over directives"), carried by permtcpd
# on its authenticated channel. Node 1 owns the service; peers node 2 and node 3 follow it
# (smallest id first; node 3 answers ARP for the address); every node runs permtcpd with a
# shared key and nobody types a takeover. Node 2 starts snooping after the connection was
# set up, so it cannot take it over: at the verdict its daemon's takeover names node 3 for
# it, and the daemon sends node 3's daemon a directive, which has node 3's kernel take the
# connection over (it saw the SYN): the client's bulk download continues from node 3 and
# every byte is right. Node 2 fences node 1 first (a fence command the test releases), so
# node 3 holds the address before the directive arrives: its stack's resets of the mirrored
# connection are dropped meanwhile.
# When node 3 did not see the SYN either, it resets the connection: the client gets a reset
# at once instead of hanging. IPv4 and IPv6.
. /selftests/lib.sh

ktap_plan 28
BYTES=16000000

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

# The paused client's receive queue stopped growing (the same for 0.3 s, within 10 s): its
# window is closed, so reading again opens it with a window update. Crashed while the
# download still flowed, the client's window stays open as it reads, it sends nothing, and
# node 3's stack has nothing to answer (1 run in 8 had crashed the owner that early).
client_window_closed() {
	prev=-1 same=0 t=0
	while [ $same -lt 3 ]; do
		[ $t -lt 100 ] || { in_client ss -tin | sed 's/^/# client: /'; return 1; }
		q=$(in_client ss -Htn | awk '$5 ~ /:80$/ { print $2; exit }')
		if [ "${q:-0}" -gt 0 ] && [ "$q" = "$prev" ]; then same=$((same + 1)); else same=0; fi
		prev=$q
		sleep 0.1
		t=$((t + 1))
	done
}

# Node 3's daemon took node 1 over and assumed address $1.
node3_took() {
	pd_listed 3 takeovers 1 &&
		/bin/ip -n peer2 addr show dev eth0 | grep -q " $1/"
}

directive_case() { # family service-address address node3-saw-the-SYN
	fam=$1 vip=$2 addr=$3 synced=$4
	load_module
	PEER2=1 cluster_net
	pd_key
	pd_conf 1 "" 'arp = "node:3"'
	# Node 2 snoops late (by hand) and fences node 1 until the test creates $PD/fence.
	pd_conf 2 "fence_command = [\"/bin/sh\", \"-c\", \"while [ ! -e $PD/fence ]; do sleep 0.05; done\"]" \
		"" "enable = false"
	if [ $synced = yes ]; then pd_conf 3; else pd_conf 3 "" "" "enable = false"; fi
	for n in 1 2 3; do pd_start $n; done
	check "IPv$fam, node 3 synced=$synced: permtcpd on three nodes, every kernel holds the three declarations" \
		wait_until "declarations" 100 decls_123
	download_for_node3 /tmp/dv "$vip" $BYTES
	# Node 2 (and node 3 if it did not see the SYN) start now: the stalled download's window
	# probes show them the connection mid-stream.
	in_peer permctl snoop start --dev eth0 >/dev/null
	[ $synced = yes ] || in_peer2 permctl snoop start --dev eth0 >/dev/null
	check "IPv$fam, node 3 synced=$synced: node 2 mirrors it, not from its SYN" conn_seen peer UNSYNCED
	if [ $synced = no ]; then
		check "IPv$fam: node 3 mirrors it too, not from its SYN" conn_seen peer2 UNSYNCED
	fi
	check "IPv$fam, node 3 synced=$synced: the paused client's window is closed" client_window_closed
	in_peer2 permctl conns | sed 's/^/# node 3 mirror: /'
	in_client ss -tin 2>/dev/null | sed 's/^/# client: /'
	crash_owner $owner_pid
	check "IPv$fam, node 3 synced=$synced: node 3's daemon took node 1 over and assumed the address" \
		wait_until "node 3's takeover" 100 node3_took "$addr"
	if [ $synced = yes ]; then
		# Node 3 holds the address before the directive reaches it: the client, reading
		# again, sends it window updates, which its stack answers with resets, dropped.
		touch /tmp/dv
		check "IPv$fam: node 3 dropped its stack's resets of the mirrored connection" rst_dropped
	fi
	touch $PD/fence
	check "IPv$fam, node 3 synced=$synced: node 2's daemon directs the connection to node 3's, acknowledged" \
		wait_until "the directive" 100 directive_acked
	if [ $synced = no ]; then
		# The paused client sends nothing: only node 3's reset can end its connection.
		check "IPv$fam: the idle client's connection is reset" client_conn_gone
	fi
	touch /tmp/dv
	t0=$(uptime_ms)
	client_wait 600
	t1=$(uptime_ms)
	download_logs /tmp/dv
	for ns in peer2 client; do
		echo "# $ns: $(/bin/ip netns exec $ns grep Tcp: /proc/net/snmp | tail -n1)"
	done
	grep Tcp: /proc/net/snmp | head -n1 | sed 's/^/# /'
	if [ $synced = yes ]; then
		check "IPv$fam: node 3 took the connection over" grep -q "from node 2 for .*: Taken" $PD/n3.log
		want=$(ptcp-testapp stream-sum $BYTES)
		[ $client_rc = 0 ] && grep -q "$want" /tmp/dv.out &&
			ktap_result ok "IPv$fam: the client read every byte right from node 3" ||
			ktap_result fail "IPv$fam: the client read every byte right from node 3"
	else
		check "IPv$fam: node 3 could not either, and reset it" grep -q "from node 2 for .*: Reset" $PD/n3.log
		echo "# the client's read failed $((t1 - t0)) ms after it resumed"
		[ $client_rc != 0 ] && grep -q "reset" /tmp/dv.out && [ $((t1 - t0)) -lt 5000 ] &&
			ktap_result ok "IPv$fam: the client got a reset at once, not a hang" ||
			ktap_result fail "IPv$fam: the client got a reset at once, not a hang"
	fi
	case_done "IPv$fam, node 3 synced=$synced: kernel log clean" $app_pid $pd_pid_1 $pd_pid_2 $pd_pid_3
}

directive_case 4 10.0.0.1 10.0.0.1 yes
family_part 6 0 9 "IPv6, node 3 synced=yes" && directive_case 6 "[fd00::1]" fd00::1 yes
directive_case 4 10.0.0.1 10.0.0.1 no
ktap_finish
