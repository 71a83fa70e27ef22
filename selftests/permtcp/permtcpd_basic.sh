#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# permtcpd drives the kernel (Documentation/cluster.rst). Three nodes run it with a shared
# key: node 1 (owner), node 2 and node 3 (peers), 100 ms heartbeats. Each node's declaration
# is written only into its own configuration; every kernel ends up with all three, node 3,
# started late, too. Datagrams injected into the cluster port (a replay, a forged tag, other
# keys, the old plain directive) change nothing and are counted in `permtcpd --status`. The
# owner crashes mid-session (link cut, server killed) and, with nobody typing a takeover, the
# peers' daemons reach a verdict, node 2 assumes the address and takes the sessions over: the
# client sees a stall (reported) and every byte right. A forged plain-UDP directive for a
# live taken-over connection (what `permctl directives` used to accept from a declared
# node's address) no longer does anything.
. /selftests/lib.sh

ktap_plan 20

# Waits up to $2 seconds for process $1; kills it if it is still there.
wait_pid() { # pid seconds
	t=0
	while kill -0 "$1" 2>/dev/null && [ $t -lt $(($2 * 10)) ]; do
		sleep 0.1
		t=$((t + 1))
	done
	kill -9 "$1" 2>/dev/null
	wait "$1"
}

decls_12() { kernel_decls 1 1 2 && kernel_decls 2 1 2; }
local_marked() {
	for n in 1 2 3; do
		/bin/ip netns exec "$(pd_ns $n)" permctl --json decl list |
			grep -q "\"node_id\":$n,\"local\":true" || return 1
	done
}
snooping() {
	for ns in owner peer peer2; do
		/bin/ip netns exec $ns permctl --json stats | grep -q '"device_ifindex":[1-9]' || return 1
	done
}
# Node 2 mirrors $1 ready connections.
mirrored() { [ "$(in_peer permctl --json conns | grep -o '"ready":true' | wc -l)" = "$1" ]; }
# Nodes 2 and 3 both count node 1 taken over.
taken_over() { pd_listed 2 takeovers 1 && pd_listed 3 takeovers 1; }
views_alive() { # node: its view has itself and both others alive
	[ "$(pd_status "$1" | grep -c '"state": "alive"')" = 3 ]
}

load_module
PEER2=1 cluster_net
pd_key
for n in 1 2 3; do pd_conf $n; done
check "three configurations and the key check out" sh -c \
	"for n in 1 2 3; do permtcpd --config $PD/n\$n.toml --check || exit 1; done"

pd_start 1
pd_start 2
check "nodes 1 and 2: each kernel holds both declarations, from the configurations only" \
	wait_until "declarations of nodes 1 and 2" 100 decls_12
pd_start 3
check "node 3 joins late: every kernel holds all three declarations" \
	wait_until "three declarations everywhere" 100 decls_123
check "each node's own declaration is its kernel's local one" local_marked
check "every node snoops eth0" wait_until "snooping" 50 snooping
all_alive() { views_alive 1 && views_alive 2 && views_alive 3; }
check "every daemon sees the two others alive" wait_until "views" 50 all_alive
in_peer permctl decl list | sed 's/^/# node 2 kernel: /'

# Injected into node 2's cluster port, from node 3's address (the bridge floods: the client's
# namespace sees and can send anything on the link).
hb=$(in_client ptcp-testapp udp-capture eth0 10.0.0.3 10.0.0.2:7415 1 3000)
check "a heartbeat of node 3 to node 2 captured off the link" test -n "$hb"
other_key=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')
last=${hb#"${hb%??}"}
[ "$last" = 00 ] && flip=01 || flip=00
takeovers_before=$(pd_list 2 takeovers)
echo "# node 2's takeovers so far: $takeovers_before (none: node 3, never heard before it started, is not declared down)"
before="$(pd_count 2 replay) $(pd_count 2 bad_tag) $(pd_count 2 unknown_key) $(pd_count 2 malformed)"
inject() { in_client ptcp-testapp udp-spoof eth0 "$(pd_mac 2)" 10.0.0.3:7415 10.0.0.2:7415 "$1"; }
inject "$hb"                                                # replayed
inject "${hb%??}$flip"                                      # tag forged
inject "$(ptcp-testapp reseal "$hb" 1 "$other_key")"        # another secret, key id 1
inject "$(ptcp-testapp reseal "$hb" 9 "$other_key")"        # a key id node 2 does not have
inject "$(ptcp-testapp directive-hex 3 10.0.0.2:80 10.0.0.100:5555)" # the old plain directive
sleep 0.5
set -- $before
counted() {
	[ "$(pd_count 2 replay)" = $(($1 + 1)) ] && [ "$(pd_count 2 bad_tag)" = $(($2 + 2)) ] &&
		[ "$(pd_count 2 unknown_key)" = $(($3 + 1)) ] && [ "$(pd_count 2 malformed)" = $(($4 + 1)) ]
}
check "injected datagrams are dropped and counted: replay 1, bad_tag 2, unknown_key 1, malformed 1" \
	counted "$@"
pd_status 2 | grep -A10 '"dropped_by_reason"' | sed 's/^/# node 2: /'
unchanged() {
	views_alive 2 && [ "$(pd_list 2 takeovers)" = "$takeovers_before" ] && kernel_decls 2 1 2 3
}
check "and change nothing: node 2 still sees both peers alive, took nothing more over" unchanged

# Two sessions to node 1; node 2's application is a hot standby.
in_owner ptcp-testapp echo-serve "[::]:80" &
owner_pid=$!
in_peer ptcp-testapp echo-serve "[::]:80" --resume 2>$PD/app2.err &
app2_pid=$!
sleep 0.5
paused_client $PD/a 100 ptcp-testapp echo-client 10.0.0.1:80 40 $PD/a
a_pid=$client_pid
paused_client $PD/b 100 ptcp-testapp echo-client 10.0.0.1:80 40 $PD/b
b_pid=$client_pid
check "node 2 mirrors both sessions, ready" wait_until "mirror" 50 mirrored 2

# The crash: node 1's link goes, its server is killed; nobody types a takeover. Session A
# sends its next request at once, into the outage: its round is the stall it sees.
crash_owner $owner_pid
t_crash=$(uptime_ms)
touch $PD/a
check "the peers' daemons reach a verdict and take node 1 over" \
	wait_until "takeover" 100 taken_over
t_taken=$(uptime_ms)
# The daemon assumes the address after the failed node's lease wait, which its status may
# already count as the takeover.
has_address() { /bin/ip -n peer addr show dev eth0 | grep -q ' 10.0.0.1/'; }
check "node 2 assumed the address" wait_until "the address" 30 has_address
wait_pid $a_pid 30
a_rc=$?
sed 's/^/# client A: /' $PD/a.out
[ $a_rc = 0 ] && ktap_result ok "session A completes every round with the right bytes" ||
	ktap_result fail "session A completes every round with the right bytes"
worst=$(sed -n 's/.*worst_round_ms=\([0-9]*\).*/\1/p' $PD/a.out)
echo "# stall: client A's request in the outage was answered after ${worst:-?} ms" \
	"(heartbeats 100 ms, $PD_MISSED missed); takeover seen by the test $((t_taken - t_crash)) ms after the crash"
for n in 2 3; do
	grep -E "suspected|verdict|took over|assumed|TAKEOVER|directive" $PD/n$n.log | sed "s/^/# node $n: /"
done
check "node 2's daemon logged the verdict and the takeover with its timings" \
	grep -q "took over node 1: 2 connections.*ms after node 1 was last heard" $PD/n2.log

# Session B still waits. A plain directive for it, as permctl directives accepted from a
# declared node's address, goes to node 3 (which mirrors it and took node 1 over: it would
# have rebuilt it there, or reset it): port 7414 has no receiver any more, and permtcpd
# (7415) counts it as malformed.
b_port=$(in_client awk '$3 == "0100000A:0050" && $4 == "01" { split($2, a, ":"); print a[2] }' \
	/proc/net/tcp | head -n1)
b_port=$(printf %d "0x$b_port")
echo "# session B: 10.0.0.100:$b_port"
dir=$(ptcp-testapp directive-hex 1 10.0.0.1:80 10.0.0.100:$b_port 2)
m3=$(pd_count 3 malformed)
for port in 7414 7415; do
	in_client ptcp-testapp udp-spoof eth0 "$(pd_mac 3)" 10.0.0.2:7414 10.0.0.3:$port "$dir"
done
sleep 1
check "the forged plain directive is counted by node 3's daemon and applied nowhere" sh -c \
	". /selftests/lib.sh; [ \$(pd_count 3 malformed) = $((m3 + 1)) ] && [ \$(pd_count 3 applied) = 0 ]"
check "node 3 took nothing over" sh -c '/bin/ip netns exec peer2 permctl --json taken | grep -q "^\[\]$"'
touch $PD/b
wait_pid $b_pid 30
b_rc=$?
sed 's/^/# client B: /' $PD/b.out
[ $b_rc = 0 ] && ktap_result ok "session B, targeted by the forged directive, completes with every byte right" ||
	ktap_result fail "session B, targeted by the forged directive, completes with every byte right"
check "no kernel errors in the peers' daemons" sh -c \
	'. /selftests/lib.sh; [ "$(pd_count 2 errors)" = 0 ] && [ "$(pd_count 3 errors)" = 0 ]'
sed 's/^/# node 2 app: /' $PD/app2.err
grep "kernel declarations" $PD/n2.log | sed 's/^/# node 2: /'
# Checked again every 5 s, and unchanged: no DECL_DEL/DECL_ADD beyond the first of each.
check "node 2's kernel declarations were changed only as nodes announced themselves" \
	[ "$(grep -c "kernel declarations" $PD/n2.log)" -le 3 ]
case_done "kernel log clean" $pd_pid_1 $pd_pid_2 $pd_pid_3 $app2_pid
ktap_finish
