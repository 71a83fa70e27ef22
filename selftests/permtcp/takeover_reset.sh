#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# A connection no peer can take over is reset by the takeover itself, at once: the peer
# started snooping after the connection's SYN (its mirror is not ready), and there is no
# further peer to hand it to. The peer's reset-suppression hook must not drop the takeover's
# own resets (it did: the idle client then hung until it sent something itself). The
# notifications tell a monitor why the connection was not ready and that it was reset.
. /selftests/lib.sh

ktap_plan 8
BYTES=16000000

# The client's connection to 10.0.0.1:80 leaves ESTABLISHED within 3 s.
client_conn_gone() {
	t=0
	while in_client grep -q " 0100000A:0050 01 " /proc/net/tcp; do
		[ $t -lt 30 ] || return 1
		sleep 0.1
		t=$((t + 1))
	done
}

# The peer mirrors the connection, not from its SYN.
conn_unsynced() {
	t=0
	while ! in_peer permctl --json conns | grep -q '"state":"UNSYNCED"'; do
		[ $t -lt 100 ] || return 1
		sleep 0.1
		t=$((t + 1))
	done
}

load_module
cluster_net
OWNER_DECL="--node 1 --addr 10.0.0.1 --addr fd00::1 --mac 02:00:00:00:00:01 --ports 80-90"
PEER_DECL="--node 2 --addr 10.0.0.2 --addr fd00::2 --mac 02:00:00:00:00:02 --ports 80-90"
in_owner permctl decl add $OWNER_DECL --local >/dev/null
in_peer permctl decl add $PEER_DECL --local >/dev/null
in_peer permctl decl add $OWNER_DECL >/dev/null
in_owner ptcp-testapp down-serve "[::]:80" $BYTES &
owner_pid=$!
sleep 0.5
paused_client /tmp/rs 100 ptcp-testapp down-client 10.0.0.1:80 $BYTES /tmp/rs
# The peer starts now: the stalled download's window probes show it the connection.
check "the peer starts snooping after the SYN" in_peer permctl snoop start --dev eth0
check "the peer mirrors the connection, not from its SYN" conn_unsynced
in_peer permctl events >/tmp/rs-events 2>/tmp/rs-events.err &
events_pid=$!
wait_file /tmp/rs-events.err 30
sleep 0.2
crash_owner $owner_pid
check "takeover: the unready connection is reset, no peer is left" sh -c \
	'/bin/ip netns exec peer permctl --json takeover --node 1 | tee /dev/stderr | grep -q "\"reset\":[1-9]"'
# The paused client sends nothing: only the peer's reset can end its connection.
check "the idle client's connection was reset within 3 s" client_conn_gone
touch /tmp/rs
wait $client_pid
client_rc=$?
sed 's/^/# client: /' /tmp/rs.out
[ $client_rc != 0 ] && grep -q -i "reset" /tmp/rs.out &&
	ktap_result ok "the client saw a reset, not a hang" ||
	ktap_result fail "the client saw a reset, not a hang"
sleep 0.3
sed 's/^/# event: /' /tmp/rs-events
check "events: node 1 failed" grep -q "^node-failed node=1" /tmp/rs-events
check "events: the connection was not ready (not seen from its SYN), then reset" sh -c \
	'grep -q "^not-ready node=1 owner=10.0.0.1:80 .*reason=not-from-syn" /tmp/rs-events &&
	 grep -q "^reset node=1 owner=10.0.0.1:80" /tmp/rs-events'
case_done "kernel log clean" $events_pid
ktap_finish
