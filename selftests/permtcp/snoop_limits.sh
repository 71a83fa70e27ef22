#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# Bounds and gaps: the connection and byte limits are enforced, counted and visible; a
# connection first seen after its SYN is tracked but never ready for takeover.
. /selftests/lib.sh

ktap_plan 8
load_module
check "cluster up" cluster_up
in_peer permctl snoop stop >/dev/null
check "restart with at most 2 connections and 8 KiB" \
	in_peer permctl snoop start --dev eth0 --max-conns 2 --max-bytes 8192

stats() { /bin/ip netns exec peer permctl --json stats; }
transfer() { # port pattern
	d=/tmp/lim-$1
	mkdir -p "$d" && touch "$d/go"
	in_owner ptcp-testapp serve "10.0.0.1:$1" "$2" "$d" &
	sleep 0.5
	in_client ptcp-testapp client "10.0.0.1:$1" "$2"
	wait
}
transfer 81 rr:1:10:10
transfer 82 rr:1:10:10
transfer 83 rr:1:10:10
stats | sed "s/^/# /"
check "a third connection is not tracked, and counted" sh -c \
	'/bin/ip netns exec peer permctl --json stats | grep -q "\"connections\":2,.*\"conn_limit_hits\":1,"'

in_peer permctl snoop stop >/dev/null
in_peer permctl snoop start --dev eth0 --max-conns 10 --max-bytes 8192 >/dev/null
transfer 84 down:100000
stats | sed 's/^/# /'
check "retained bytes stay within 8 KiB" sh -c \
	'[ "$(/bin/ip netns exec peer permctl --json stats | sed "s/.*\"bytes_held\":\([0-9]*\).*/\1/")" -le 8192 ]'
check "refused chunks are counted" sh -c \
	'/bin/ip netns exec peer permctl --json stats | grep -q -v "\"byte_limit_hits\":0,"'

# A connection established while the peer was not snooping.
in_peer permctl snoop stop >/dev/null
d=/tmp/lim-late
mkdir -p $d
in_owner ptcp-testapp serve 10.0.0.1:85 down:1000 $d &
sleep 0.5
in_client ptcp-testapp client 10.0.0.1:85 down:1000 &
while [ ! -e $d/state.json ]; do sleep 0.1; done
in_peer permctl snoop start --dev eth0 >/dev/null
touch $d/go
wait
in_peer permctl conns | sed 's/^/# /'
check "a connection not seen from its SYN is tracked" sh -c \
	'/bin/ip netns exec peer permctl --json conns | grep -q "\"state\":\"UNSYNCED\""'
check "and is not ready, with the reason" sh -c \
	'/bin/ip netns exec peer permctl --json conns | grep -q "\"ready\":false,\"not_ready\":\"not seen from its SYN"'
check "kernel log clean" kernel_log_clean
cluster_down
unload_module
ktap_finish
