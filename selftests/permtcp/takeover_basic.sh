#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# The owner crashes mid-session (link cut, process killed, nothing sent); the peer declares
# it failed, takes the snooped connection over and its application, already listening,
# accept()s it and answers the client's next requests. The client is unmodified and sees no
# error and no wrong byte.
. /selftests/lib.sh

ktap_plan 6
load_module
check "cluster up, peer snooping eth0" cluster_up
in_owner ptcp-testapp echo-serve 0.0.0.0:80 &
owner_pid=$!
# The peer's application listens too (hot standby) and will accept() the taken-over socket.
in_peer ptcp-testapp echo-serve 0.0.0.0:80 &
sleep 0.5
rm -f /tmp/tk-pause /tmp/tk-pause.wait
in_client ptcp-testapp echo-client 10.0.0.1:80 40 /tmp/tk-pause >/tmp/tk-client.out 2>&1 &
client_pid=$!
t=0
while [ ! -e /tmp/tk-pause.wait ] && [ $t -lt 100 ]; do sleep 0.1; t=$((t + 1)); done
[ -e /tmp/tk-pause.wait ] || { echo "# the client never got going:"; sed 's/^/#   /' /tmp/tk-client.out; }
sleep 0.5
in_peer permctl conns | sed 's/^/# /'

# Crash: the owner's link goes away first, so its dying process sends nothing.
/bin/ip link set vowner down
kill -9 $owner_pid
# The peer assumes the address, takes the connections over, announces its MAC.
/bin/ip -n peer addr add 10.0.0.1/24 dev eth0
check "takeover of node 1" sh -c \
	'/bin/ip netns exec peer permctl --json takeover --node 1 | tee /dev/stderr | grep -q "\"taken\":1"'
in_peer arping -U -c 2 -I eth0 -s 10.0.0.1 10.0.0.1 >/dev/null 2>&1
touch /tmp/tk-pause
wait $client_pid
client_rc=$?
sed 's/^/# client: /' /tmp/tk-client.out
[ $client_rc = 0 ] && ktap_result ok "the client finished every round with the right bytes" ||
	ktap_result fail "the client finished every round with the right bytes"
check_fails "a second takeover of the same node is refused" 1 "already taken over" \
	in_peer permctl takeover --node 1
in_peer permctl conns | sed "s/^/# after: /"
in_peer permctl --json stats | sed "s/^/# after: /"
check "the taken-over connection left the mirror" sh -c \
	'/bin/ip netns exec peer permctl --json conns | grep -q "^\[\]$"'
check "kernel log clean" kernel_log_clean
kill %2 2>/dev/null
cluster_down
ktap_finish
