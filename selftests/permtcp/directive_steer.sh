#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# A connection served by one peer while another node answers ARP for its address
# (Documentation/takeover.rst, "Serving without answering ARP"). Node 1 owns the service;
# peers node 2 and node 3 follow it (smallest id first), and node 2 answers ARP for the
# address once node 1 failed; every node runs permtcpd and nobody types a takeover. Node 2
# starts snooping after the connection was set up, so it cannot take it over: its daemon
# sends node 3's a fail-over directive and node 3 rebuilds the connection. The client keeps
# sending to node 2's MAC (node 2 announced the address): node 3, which holds the address
# quietly (on its loopback, answering no ARP for it), takes the connection's frames off the
# flooding link into its own stack, and node 2, which holds the connection in its mirror,
# drops its stack's resets of it. The client's bulk download completes from node 3 with
# every byte right. IPv4 and IPv6.
. /selftests/lib.sh

ktap_plan 23
BYTES=16000000

# Node 2's daemon took node 1 over and assumed address $1 on eth0 (it answers ARP for it).
node2_took() {
	pd_listed 2 takeovers 1 &&
		/bin/ip -n peer addr show dev eth0 | grep -q " $1/"
}

# Node 3 holds address $1 on its loopback device only.
node3_quiet() {
	/bin/ip -n peer2 addr show dev lo | grep -q " $1/" &&
		! /bin/ip -n peer2 addr show dev eth0 | grep -q " $1/"
}

# The client's neighbour entry for address $1 is node 2's MAC: its frames go to node 2.
client_sends_to_node2() {
	/bin/ip -n client neigh show "$1" | grep -q "lladdr $(pd_mac 2)"
}

# Only node 2 answers an ARP request for 10.0.0.1 (three requests, every reply node 2's).
arp_only_node2() {
	out=$(in_client arping -c 3 -w 3 -I eth0 10.0.0.1 2>&1)
	echo "$out" | sed 's/^/# arping: /'
	echo "$out" | grep -qi "reply from 10.0.0.1 \[$(pd_mac 2)\]" &&
		! echo "$out" | grep -i "reply from" | grep -qvi "$(pd_mac 2)"
}

steer_case() { # family service-address address
	fam=$1 vip=$2 addr=$3
	load_module
	PEER2=1 cluster_net
	pd_key
	pd_conf 1 "" 'arp = "node:2"'
	pd_conf 2 "" "" "enable = false"
	pd_conf 3
	for n in 1 2 3; do pd_start $n; done
	check "IPv$fam: permtcpd on three nodes, every kernel holds the three declarations" \
		wait_until "declarations" 100 decls_123
	download_for_node3 /tmp/ds "$vip" $BYTES
	# Node 2 starts now: the stalled download's window probes show it the connection
	# mid-stream.
	in_peer permctl snoop start --dev eth0 >/dev/null
	check "IPv$fam: node 2 mirrors it, not from its SYN" conn_seen peer UNSYNCED
	crash_owner $owner_pid
	check "IPv$fam: node 2's daemon took node 1 over and answers for the address" \
		wait_until "node 2's takeover" 100 node2_took "$addr"
	check "IPv$fam: node 3 holds the address quietly (loopback, not eth0)" \
		wait_until "node 3's takeover" 100 node3_quiet "$addr"
	check "IPv$fam: node 2's daemon directs the connection to node 3's, acknowledged" \
		wait_until "the directive" 100 directive_acked
	check "IPv$fam: node 3 took the connection over" \
		wait_until "node 3's rebuild" 50 grep -q "from node 2 for .*: Taken" $PD/n3.log
	touch /tmp/ds
	client_wait 600
	download_logs /tmp/ds
	for ns in peer peer2; do
		echo "# $ns stats: $(/bin/ip netns exec $ns permctl --json stats |
			grep -o '"rst_dropped":[0-9]*,"steered":[0-9]*')"
	done
	echo "# client neighbour: $(/bin/ip -n client neigh show "$addr")"
	check "IPv$fam: the client sends to node 2's MAC" client_sends_to_node2 "$addr"
	check "IPv$fam: node 3 took the connection's frames for node 2's MAC" stat_set peer2 steered
	check "IPv$fam: node 2 dropped its stack's resets of the connection" stat_set peer rst_dropped
	want=$(ptcp-testapp stream-sum $BYTES)
	[ $client_rc = 0 ] && grep -q "$want" /tmp/ds.out &&
		ktap_result ok "IPv$fam: the client read every byte right from node 3" ||
		ktap_result fail "IPv$fam: the client read every byte right from node 3"
	if [ $fam = 4 ]; then
		check "IPv4: only node 2 answers ARP for the address" arp_only_node2
	fi
	case_done "IPv$fam: kernel log clean" $app_pid $pd_pid_1 $pd_pid_2 $pd_pid_3
}

steer_case 4 10.0.0.1 10.0.0.1
steer_case 6 "[fd00::1]" fd00::1
ktap_finish
