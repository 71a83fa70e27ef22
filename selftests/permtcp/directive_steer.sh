#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# A connection served by one peer while another node answers ARP for its address
# (Documentation/takeover.rst, "Serving without answering ARP"), through the owner's recovery
# and second death. Node 1 owns the service; peers node 2 and node 3 follow it (smallest id
# first), and node 2 answers ARP for the address once node 1 failed; every node runs
# permtcpd and nobody types a takeover. Node 1's daemon manages its service addresses
# (manage_addresses; its heartbeats use 10.0.0.11). Node 2 starts snooping after the
# connection was set up, so it cannot take it over: its daemon sends node 3's a fail-over
# directive and node 3 rebuilds the connection. The client keeps sending to node 2's MAC
# (node 2 announced the address): node 3, which holds the address quietly (on its loopback,
# answering no ARP for it), takes the connection's frames off the flooding link into its own
# stack, and node 2, which holds the connection in its mirror, drops its stack's resets of it.
# While the download is paused, node 1 reboots (a new network namespace, a new daemon
# incarnation): it installs node 3's recovery list (the directive-moved connection) and node
# 2's (empty), takes its addresses back, node 2 hands them back and both peers make node 1 a
# member again (REJOIN). Node 1's new echo session is mirrored by both; node 1 dies again:
# node 2 takes the echo session over and leaves the download (node 3 serves it: node 2
# follows it and neither rebuilds nor directs it again). Both sessions finish with every
# byte right, the download from node 3. IPv4 and IPv6.
. /selftests/lib.sh

ktap_plan 41
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

# Node 1's namespace: eth0 with 10.0.0.11 (its daemon's heartbeats) and fd00::11; its
# daemon adds the service addresses.
node1_net() {
	/bin/ip -n owner addr del 10.0.0.1/24 dev eth0 2>/dev/null
	/bin/ip -n owner addr del fd00::1/64 dev eth0 2>/dev/null
	/bin/ip -n owner addr add 10.0.0.11/24 dev eth0
	# permtcpd adds the service addresses as /32 and /128: the on-link routes come from these.
	/bin/ip -n owner addr add fd00::11/64 dev eth0 nodad
}

# Node 1 reboots: its namespace (and its kernel state) is gone; a new one is attached with
# the same MAC and its daemon starts again (a new incarnation).
node1_reboot() {
	kill -9 $pd_pid_1 2>/dev/null
	/bin/ip link del vowner 2>/dev/null
	/bin/ip netns del owner
	/bin/ip netns add owner
	/bin/ip link add vowner type veth peer name eth0 netns owner
	br_port vowner
	/bin/ip -n owner link set lo up
	/bin/ip -n owner link set eth0 address "$(pd_mac 1)" up
	node1_net
	pd_start 1
}

# Node 1's daemon took its service address $1 ($2 times in its log, both incarnations).
node1_took() { # address times
	[ "$(grep -c 'this node takes' $PD/n1.log)" -ge "$2" ] &&
		/bin/ip -n owner addr show dev eth0 | grep -q " $1/"
}

# Node 1, back, installed node 3's list of one connection and node 2's empty one.
node1_installed() {
	grep -q 'node 3 serves 1 connections' $PD/n1.log &&
		grep -q 'node 2 serves 0 connections' $PD/n1.log
}

# Node 2 no longer answers for address $1 and both peers made node 1 a member again.
node1_member() {
	! /bin/ip -n peer addr show dev eth0 | grep -q " $1/" &&
		grep -q 'node 1 rejoined' $PD/n2.log && grep -q 'node 1 rejoined' $PD/n3.log
}

# Nodes 2 and 3 mirror a ready connection (node 1's new session: node 2's mirror of the
# download is not ready, node 3 serves it).
ready_on() { /bin/ip netns exec $1 permctl --json conns | grep -q '"ready":true'; }
both_ready() { ready_on peer && ready_on peer2; }

client_sends_to_node1() { /bin/ip -n client neigh show "$1" | grep -q "lladdr $(pd_mac 1)"; }

# The last takeover of node 1 in node $1's log matches $2, and it is the second.
second_takeover() { # node pattern
	[ "$(grep -c 'took over node 1:' $PD/n$1.log)" -ge 2 ] &&
		grep 'took over node 1:' $PD/n$1.log | tail -n1 | grep -q "$2"
}

steer_case() { # family service-address address
	fam=$1 vip=$2 addr=$3
	load_module
	PEER2=1 cluster_net
	node1_net
	pd_key
	pd_conf 1 "manage_addresses = true" 'arp = "node:2"'
	pd_conf 2 "" "" "enable = false"
	pd_conf 3
	sed -i 's/"10\.0\.0\.1:7415"/"10.0.0.11:7415"/' $PD/n1.toml $PD/n2.toml $PD/n3.toml
	for n in 1 2 3; do pd_start $n; done
	check "IPv$fam: permtcpd on three nodes, every kernel holds the three declarations" \
		wait_until "declarations" 100 decls_123
	check "IPv$fam: node 1's daemon takes its service addresses" \
		wait_until "node 1's addresses" 100 node1_took "$addr" 1
	download_for_node3 /tmp/ds "$vip" $BYTES
	dl_pid=$client_pid
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
	# Node 1 reboots while node 3 serves the download (paused).
	node1_reboot
	check "IPv$fam: node 1, back, installs node 3's list (the directed connection) and node 2's" \
		wait_until "node 1's lists" 150 node1_installed
	check "IPv$fam: node 1 takes its addresses again" \
		wait_until "node 1's addresses" 100 node1_took "$addr" 2
	check "IPv$fam: node 2 hands the address back; both peers make node 1 a member again" \
		wait_until "the rejoins" 100 node1_member "$addr"
	check "IPv$fam: the client sends to node 1's MAC" \
		wait_until "node 1's announcement" 50 client_sends_to_node1 "$addr"
	# Node 1's new session, mirrored by both peers; node 1 dies again.
	in_owner ptcp-testapp echo-serve "[::]:80" &
	echo1_pid=$!
	in_peer ptcp-testapp echo-serve "[::]:80" --resume &
	echo2_pid=$!
	sleep 0.5
	paused_client /tmp/de 100 ptcp-testapp echo-client "$vip:80" 40 /tmp/de
	check "IPv$fam: both peers mirror node 1's new session" \
		wait_until "the mirrors" 50 both_ready
	crash_owner $echo1_pid
	kill -9 $pd_pid_1 2>/dev/null
	check "IPv$fam: node 2 takes node 1 over again: the new session, nothing not ready" \
		wait_until "node 2's second takeover" 100 second_takeover 2 \
		'node 1: 1 connections (0 parked), 0 not ready (0 directed to other peers, 0 reset), 0 for other nodes, 0 failed'
	check "IPv$fam: node 3's second takeover leaves the download it serves" \
		wait_until "node 3's second takeover" 100 second_takeover 3 \
		'node 1: 0 connections (0 parked), 0 not ready (0 directed to other peers, 0 reset), [01] for other nodes, 0 failed'
	touch /tmp/de
	client_wait 300
	sed 's/^/# echo client: /' /tmp/de.out
	check "IPv$fam: node 1's new session finishes through node 2, every answer right" \
		sh -c "[ $client_rc = 0 ] && grep -q '^ok' /tmp/de.out"
	client_pid=$dl_pid
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
	case_done "IPv$fam: kernel log clean" $app_pid $echo2_pid $pd_pid_1 $pd_pid_2 $pd_pid_3
}

steer_case 4 10.0.0.1 10.0.0.1
# The short form steers IPv4 only (its ARP check is IPv4's); make selftests runs both.
family_part 6 0 20 "IPv6 steering" && steer_case 6 "[fd00::1]" fd00::1
ktap_finish
