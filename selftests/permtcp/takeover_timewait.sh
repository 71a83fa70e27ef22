#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# A connection that ended before the crash (the client closed first: it is in TIME-WAIT, and
# so is the peer's mirror of it) is neither rebuilt, passed on nor reset by the takeover: the
# mirror keeps following it until its deadline, and the client's TIME-WAIT is undisturbed.
# New connections to the service address then reach the peer's application. While a peer,
# node 2 does not answer ARP for the owner's address; after the takeover it does. IPv4.
. /selftests/lib.sh

ktap_plan 10

load_module
check "cluster up, peer snooping eth0" cluster_up
in_owner ptcp-testapp echo-serve "[::]:80" &
owner_pid=$!
in_peer ptcp-testapp echo-serve "[::]:80" --resume &
peer_pid=$!
sleep 0.5
touch /tmp/tw-pause # no pause: the session runs to its end and the client closes
check "a session runs to its end" sh -c \
	'/bin/ip netns exec client ptcp-testapp echo-client 10.0.0.1:80 10 /tmp/tw-pause | grep -q "^ok"'
sleep 0.5
in_peer permctl conns | sed 's/^/# /'
check "the mirror holds it in TIME-WAIT" sh -c \
	'/bin/ip netns exec peer permctl --json conns | grep -q "\"state\":\"TIME-WAIT\""'
crash_owner $owner_pid
# While a peer, node 2 does not hold the owner's address: nobody answers ARP for it now.
check_fails "while a peer, node 2 does not answer ARP for the owner's address" 1 "" \
	in_client arping -c 1 -w 1 -I eth0 10.0.0.1
check "the takeover rebuilds, passes on and resets nothing" sh -c \
	'/bin/ip netns exec peer permctl --json takeover --node 1 | tee /dev/stderr |
	 grep -q "\"taken\":0,\"parked\":0,\"not_ready\":0,\"not_mine\":0,\"failed\":0,\"reset\":0"'
check "the mirror still follows it in TIME-WAIT" sh -c \
	'/bin/ip netns exec peer permctl --json conns | grep -q "\"state\":\"TIME-WAIT\""'
# State 06 is TIME_WAIT.
check "the client's TIME-WAIT is undisturbed" in_client grep -q " 0100000A:0050 06 " /proc/net/tcp
check "after the takeover node 2 answers ARP for it" sh -c \
	'/bin/ip netns exec client arping -c 1 -w 2 -I eth0 10.0.0.1 | tee /dev/stderr | grep -qi "02:00:00:00:00:02"'
check "a new connection reaches the peer's application" sh -c \
	'/bin/ip netns exec client ptcp-testapp echo-client 10.0.0.1:80 10 /tmp/tw-pause | grep -q "^ok"'
case_done "kernel log clean" $peer_pid
ktap_finish
