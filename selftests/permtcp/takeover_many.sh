#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# A thousand connections taken over at once: every one answers correctly afterwards.
# `PERMTCP_VM_MEM=2048 PERMTCP_CONNS=10000 selftests/run_vm.sh takeover_many.sh` takes over
# ten thousand (too slow under TCG for make check; make bench runs 1, 100, 1000 and
# 10,000): the owner's thread per connection and the mirror do not fit the default 1 GB
# guest (the OOM killer ends the run). The peer's application serves the taken-over
# connections from one event loop (--event-loop), as the benchmark's do.
. /selftests/lib.sh

CONNS=$(sed -n 's/.*permtcp\.conns=\([0-9]*\).*/\1/p' /proc/cmdline)
CONNS=${CONNS:-1000}
ktap_plan 4
# A thread per connection on the owner: ten thousand are more than a 1 GB guest's default
# thread limit.
echo 100000 >/proc/sys/kernel/threads-max
echo 262144 >/proc/sys/kernel/pid_max
load_module
# Room for them all in the mirror (the defaults: 4096 connections, 64 MiB).
SNOOP_OPTS="--max-conns $((CONNS + 4096)) --max-bytes $((CONNS * 16384 + 67108864))"
check "cluster up, peer snooping eth0" cluster_up
in_owner ptcp-testapp echo-serve "[::]:80" &
owner_pid=$!
in_peer ptcp-testapp echo-serve "[::]:80" --resume --event-loop &
peer_pid=$!
sleep 0.5
paused_client /tmp/many 6000 ptcp-testapp echo-many 10.0.0.1:80 $CONNS /tmp/many
sleep 1
crash_owner $owner_pid
start=$(uptime_ms)
in_peer permctl --json takeover --node 1 >/tmp/many.takeover
end=$(uptime_ms)
sed 's/^/# takeover: /' /tmp/many.takeover
echo "# takeover command: $((end - start)) ms for $CONNS connections (10 ms clock)"
dmesg | grep "takeover of $CONNS connections, ns per connection" | tail -n 1 | sed 's/^.*permtcp: /# steps: /'
check "all $CONNS connections taken over" grep -q "\"taken\":$CONNS," /tmp/many.takeover
touch /tmp/many
wait $client_pid
rc=$?
sed 's/^/# client: /' /tmp/many.out
[ $rc = 0 ] && ktap_result ok "every connection answered correctly after the takeover" ||
	ktap_result fail "every connection answered correctly after the takeover"
case_done "kernel log clean" $peer_pid
ktap_finish
