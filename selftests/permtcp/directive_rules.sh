#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# Who may act on a fail-over directive (issue 11, finding 7): only the next peer in the
# policy's order after the sender (FROM_NODE), never the first peer (its own takeover handled
# the connection), and never for a connection that is over: a connection in TIME-WAIT is
# followed until its deadline and is not rebuilt, passed on or reset by a directive, as by a
# takeover. Nodes 1 (owner), 2 and 3 (peers, in that order) snoop. IPv4.
. /selftests/lib.sh

ktap_plan 7

N1="--node 1 --addr 10.0.0.1 --addr fd00::1 --mac 02:00:00:00:00:01 --ports 80-90"
N2="--node 2 --addr 10.0.0.2 --addr fd00::2 --mac 02:00:00:00:00:02 --ports 80-90"
N3="--node 3 --addr 10.0.0.3 --addr fd00::3 --mac 02:00:00:00:00:04 --ports 80-90"
decls() {
	for ns in owner peer peer2; do
		for d in "$N1" "$N2" "$N3"; do
			local=
			case "$ns/$d" in owner/--node\ 1* | peer/--node\ 2* | peer2/--node\ 3*) local=--local ;; esac
			/bin/ip netns exec $ns permctl decl add $d $local >/dev/null || return 1
		done
	done
}

directive() { directive_hex "$@"; }

load_module
PEER2=1 cluster_net
decls
in_peer permctl snoop start --dev eth0 >/dev/null
in_peer2 permctl snoop start --dev eth0 >/dev/null
check "three nodes declared everywhere, node 3 snoops" sh -c \
	'/bin/ip netns exec peer2 permctl --json status | grep -q "\"declarations\":3" &&
	 /bin/ip netns exec peer2 permctl --json stats | grep -q "\"device_ifindex\":[1-9]"'
in_owner ptcp-testapp echo-serve "[::]:80" &
owner_pid=$!
sleep 0.5
touch /tmp/dr-go # no pause: the session runs to its end and the client closes
check "a session runs to its end" sh -c \
	'/bin/ip netns exec client ptcp-testapp echo-client 10.0.0.1:80 10 /tmp/dr-go | grep -q "^ok"'
sleep 0.5
in_peer2 permctl conns | sed 's/^/# /'
cport=$(in_peer2 permctl --json conns | sed -n 's/.*"client":"10\.0\.0\.100:\([0-9]*\)".*/\1/p' | head -n1)
check "node 3 mirrors it in TIME-WAIT" sh -c \
	'/bin/ip netns exec peer2 permctl --json conns | grep -q "\"state\":\"TIME-WAIT\""'
crash_owner $owner_pid
in_peer permctl takeover --node 1 --no-assume >/dev/null
in_peer2 permctl takeover --node 1 --no-assume >/dev/null
check_fails "node 3 refuses a directive from itself (it is not the next after 3)" 1 \
	"not the next peer" in_peer2 permctl debug raw --cmd 12 "$(directive "$cport" 3)"
check_fails "node 2, first in order, refuses a directive without a sender" 1 \
	"not the next peer" in_peer permctl debug raw --cmd 12 "$(directive "$cport" -)"
check_fails "node 3 refuses to rebuild a TIME-WAIT connection from node 2's directive" 1 \
	"TIME-WAIT" in_peer2 permctl debug raw --cmd 12 "$(directive "$cport" 2)"
case_done "kernel log clean"
ktap_finish
