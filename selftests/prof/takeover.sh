#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# The workload of scripts/tcgprof's takeover profile: 1000 snooped connections (the bench's
# echo sessions, paused halfway), the owner crashed, the peer's application listening, and
# with permtcp.prof=take on the guest's command line one `permctl takeover` that gives every
# connection its socket from the listener (born); with permtcp.prof=idle everything else
# the same, without the takeover. The difference of the two profiles is the takeover's
# cost, kernel functions included (report.py TAKE IDLE), divided by the connections it
# took. The client stays paused: its round after the takeover is not in either profile.
. /selftests/lib.sh
ktap_plan 1
n=${PROF_CONNS:-1000}
load_module
echo 1 >/sys/module/permtcp/parameters/born
SNOOP_OPTS="--max-conns $((n + 4096)) --max-bytes $((n * 16384 + 67108864))" \
	cluster_up >/dev/null
mode=$(sed -n 's/.*permtcp\.prof=\([a-z]*\).*/\1/p' /proc/cmdline)
in_owner ptcp-testapp echo-serve "[::]:80" --event-loop &
owner_pid=$!
sleep 0.5
paused_client /tmp/b 6000 ptcp-testapp echo-many 10.0.0.1:80 $n /tmp/b
sleep 1
crash_owner_gone $owner_pid
/bin/ip -n peer addr add 10.0.0.1/24 dev eth0
# Listening, but not accepting: the born sockets wait in its accept queue (an application
# accepting them would add its own work to the profile).
in_peer ptcp-testapp listen "[::]:80" &
sleep 0.5
mirrored=$(in_peer permctl --json stats | sed -n 's/.*"connections":\([0-9]*\).*/\1/p')
taken=0
if [ "$mode" = take ]; then
	out=$(in_peer permctl --json takeover --node 1)
	taken=$(echo "$out" | sed -n 's/.*"taken":\([0-9]*\),.*/\1/p')
	echo "# takeover: $out"
fi
echo "# connections taken: ${taken:-0}"
echo "# text: $(cat /sys/module/permtcp/sections/.text)"
if [ "$mode" = take ]; then
	check "the takeover took all $n connections" test "$taken" = "$n"
else
	check "the mirror holds all $n connections (no takeover: the idle profile)" \
		test "$mirrored" = "$n"
fi
kill -9 $client_pid 2>/dev/null
cluster_down
