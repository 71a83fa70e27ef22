#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# Dumps of a changing table (issue 11, finding 10): `permctl conns` takes several netlink
# rounds for a few hundred connections, and new connections come between the rounds. A
# round resumes after the last key it sent (not at a position, which new keys before it
# would shift: entries sent twice, or missed): every dump lists each connection that existed
# throughout exactly once, and no connection twice. Also the declarations' dump while
# declarations come and go, and the time a dump of N connections takes (one lookup per
# entry; it walked the table from its start for each entry before: O(n^2) under the lock
# every frame takes).
. /selftests/lib.sh

ktap_plan 8
N=400
DUMPS=30
# The short form (make check) dumps 10 times.
quick && DUMPS=10
load_module
SNOOP_OPTS="--max-conns 8192" check "cluster up, peer snooping eth0" cluster_up
in_owner ptcp-testapp echo-serve "[::]:80" &
owner_pid=$!
sleep 0.5
paused_client /tmp/dp 600 ptcp-testapp echo-many 10.0.0.1:80 $N /tmp/dp
sleep 0.5
# The client ends of the connections that exist throughout.
keys() { grep -o '"client":"[^"]*"' "$1" | sort; }
in_peer permctl --json conns >/tmp/dp-base
keys /tmp/dp-base >/tmp/dp-stable
check "$N connections mirrored" sh -c "[ \$(wc -l </tmp/dp-stable) = $N ]"
t0=$(uptime_ms)
in_peer permctl --json conns >/dev/null
t1=$(uptime_ms)
echo "# one dump of $N connections: $((t1 - t0)) ms (permctl included)"

# Churn: connections opened and closed (their entries stay, in TIME-WAIT) while dumping,
# from two loops.
rm -f /tmp/dp-stop
churn() {
	while [ ! -e /tmp/dp-stop ]; do
		in_client nc -w 1 10.0.0.1 80 </dev/null >/dev/null 2>&1
	done
}
churn &
churn_pid=$!
churn &
churn_pid="$churn_pid $!"
dups=0 missing=0 rounds=0 i=0
while [ $i -lt $DUMPS ]; do
	in_peer permctl --json conns >/tmp/dp-now
	keys /tmp/dp-now >/tmp/dp-keys
	d=$(uniq -d /tmp/dp-keys | wc -l)
	# The long-lived keys this dump lacks (busybox has no comm). Busybox grep -f with an
	# empty file matches every line: an empty dump lacks them all.
	if [ -s /tmp/dp-keys ]; then
		m=$(grep -vxF -f /tmp/dp-keys /tmp/dp-stable | wc -l)
	else
		m=$(wc -l </tmp/dp-stable)
	fi
	dups=$((dups + d))
	missing=$((missing + m))
	i=$((i + 1))
done
touch /tmp/dp-stop
wait $churn_pid
total=$(in_peer permctl --json conns | grep -o '"client":' | wc -l)
echo "# $DUMPS dumps during churn: $dups keys sent twice, $missing long-lived connections missing; $total connections at the end"
check "new connections came during the dumps" sh -c "[ $total -gt $((N + DUMPS)) ]"
check "no connection listed twice in any dump" sh -c "[ $dups = 0 ]"
check "every long-lived connection in every dump" sh -c "[ $missing = 0 ]"

# Declarations: a dump in node-id order resumes at the next id, whatever was added or
# deleted meanwhile (each reply fits a round here, so this checks the order and content).
in_peer permctl decl add --node 9 --addr 10.0.0.9 --mac 02:00:00:00:00:09 --ports 80 >/dev/null
in_peer permctl decl add --node 5 --addr 10.0.0.5 --mac 02:00:00:00:00:05 --ports 80 >/dev/null
check "declarations dumped by node id" sh -c \
	"/bin/ip netns exec peer permctl --json decl list | grep -o '\"node_id\":[0-9]*' | cut -d: -f2 | tr '\n' ' ' | grep -q '^1 2 5 9 $'"
touch /tmp/dp
wait $client_pid
check "the long-lived connections' client finished right" grep -q "^ok conns=$N " /tmp/dp.out
case_done "kernel log clean" $owner_pid
ktap_finish
