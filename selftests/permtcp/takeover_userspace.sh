#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# The peer restores the failed owner's connections from userspace with TCP_REPAIR
# (ptcp-testapp restore, as CRIU does), from its mirror, instead of `permctl takeover`. The
# client's requests go out while the owner is down, so the mirror holds them unacknowledged
# and the restore must queue them for reading: every one is answered correctly.
. /selftests/lib.sh

CONNS=10
ktap_plan 6
load_module
check "cluster up, peer snooping eth0" cluster_up
in_owner ptcp-testapp echo-serve "[::]:80" &
owner_pid=$!
sleep 0.5
paused_client /tmp/us 300 ptcp-testapp echo-many 10.0.0.1:80 $CONNS /tmp/us
sleep 1
crash_owner $owner_pid
# The client's next round: 8 bytes on each connection that nobody acknowledges yet.
touch /tmp/us
sleep 1
/bin/ip -n peer addr add 10.0.0.1/24 dev eth0
in_peer ptcp-testapp restore --event-loop >/tmp/us.restore 2>/tmp/us.err &
restore_pid=$!
t=0
while ! grep -qs restored= /tmp/us.restore && [ $t -lt 300 ]; do sleep 0.1; t=$((t + 1)); done
sed 's/^/# restore: /' /tmp/us.restore /tmp/us.err
check "all $CONNS connections restored, none failed" grep -q "^restored=$CONNS failed=0 " /tmp/us.restore
check "the client's unacknowledged requests were queued for reading" \
	grep -q " recv_bytes=$((CONNS * 8)) " /tmp/us.restore
# Announce the address as the kernel's takeover does: gratuitous ARP (busybox arping).
check "gratuitous ARP for 10.0.0.1" in_peer arping -U -c 2 -I eth0 10.0.0.1
t=0
while kill -0 $client_pid 2>/dev/null && [ $t -lt 600 ]; do sleep 0.1; t=$((t + 1)); done
kill -9 $client_pid 2>/dev/null
wait $client_pid
rc=$?
sed 's/^/# client: /' /tmp/us.out
[ $rc = 0 ] && grep -q "^ok conns=$CONNS " /tmp/us.out &&
	ktap_result ok "every connection answered correctly after the userspace restore" ||
	ktap_result fail "every connection answered correctly after the userspace restore"
case_done "kernel log clean" $restore_pid
ktap_finish
