#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# The owner crashes mid-session (link cut, process killed, nothing sent); the peer declares
# it failed, takes the snooped connection over and its application, already listening,
# accept()s it and answers the client's requests. The client is unmodified and sees no
# error and no wrong byte. IPv4 and IPv6, with the crash
# - between two rounds;
# - unanswered: after the owner's kernel acknowledged a request its application read and
#   never answered (it arrived after the owner's last answer, so the default policy,
#   unanswered, delivers it again, and the peer's application answers it);
# - outage: before the client's request, which only the peer's mirror sees; the takeover
#   acknowledges and answers it at once instead of waiting for the client's next
#   retransmission (its timer backs off: ~0.2, 0.6, 1.4, 3 s after sending).
. /selftests/lib.sh

ktap_plan 42

takeover_case() { # family service-address address when
	fam=$1 vip=$2 addr=$3 when=$4
	load_module
	check "IPv$fam $when: cluster up, peer snooping eth0" cluster_up
	# The peer's application listens too (hot standby) and will accept() the socket.
	in_peer ptcp-testapp echo-serve "[::]:80" --resume &
	peer_pid=$!
	rm -f /tmp/echo-stalled
	if [ $when = unanswered ]; then
		echo_session "$vip" /tmp/tk-pause --stall-at-round=20
	else
		echo_session "$vip" /tmp/tk-pause
	fi
	in_peer permctl conns | sed 's/^/# /'
	case $when in
	between) crash_owner $owner_pid ;;
	unanswered)
		t_req=$(uptime_ms)
		touch /tmp/tk-pause
		wait_file /tmp/echo-stalled
		sleep 0.3
		crash_owner $owner_pid
		;;
	outage)
		crash_owner $owner_pid
		t_req=$(uptime_ms)
		touch /tmp/tk-pause
		sleep 1.5
		;;
	esac
	# permctl assumes the address (the ARP policy gives it to node 2) and the kernel takes
	# the connection over, then announces the address (gratuitous ARP, unsolicited NA) so
	# that the client's frames come to the peer.
	check "IPv$fam $when: takeover of node 1" sh -c \
		'/bin/ip netns exec peer permctl --json takeover --node 1 | tee /dev/stderr | grep -q "\"taken\":1"'
	check "IPv$fam $when: the peer assumed the address" sh -c \
		"/bin/ip -n peer addr show dev eth0 | grep -q ' $addr/'"
	t_done=$(uptime_ms)
	touch /tmp/tk-pause
	wait $client_pid
	client_rc=$?
	sed 's/^/# client: /' /tmp/tk-pause.out
	[ $client_rc = 0 ] && ktap_result ok "IPv$fam $when: the client finished every round with the right bytes" ||
		ktap_result fail "IPv$fam $when: the client finished every round with the right bytes"
	if [ $when != between ]; then
		worst=$(sed -n 's/.*worst_round_ms=\([0-9]*\).*/\1/p' /tmp/tk-pause.out)
		echo "# request sent $((t_done - t_req)) ms before the takeover command returned;" \
			"answered within $((worst - (t_done - t_req))) ms after it (round took $worst ms)"
	fi
	check_fails "IPv$fam $when: a second takeover of the same node is refused" 1 "already taken over" \
		in_peer permctl takeover --node 1
	check "IPv$fam $when: the taken-over connection left the mirror" sh -c \
		'/bin/ip netns exec peer permctl --json conns | grep -q "^\[\]$"'
	case_done "IPv$fam $when: kernel log clean" $peer_pid $client_pid
}

part=0
for when in between unanswered outage; do
	family_part 4 $part 7 "IPv4 $when" && takeover_case 4 10.0.0.1 10.0.0.1 $when
	family_part 6 $part 7 "IPv6 $when" && takeover_case 6 "[fd00::1]" fd00::1 $when
	part=$((part + 1))
done
ktap_finish
