#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# The owner crashes mid-session (link cut, process killed, nothing sent); the peer declares
# it failed, takes the snooped connection over and its application, already listening,
# accept()s it and answers the client's next requests. The client is unmodified and sees no
# error and no wrong byte. IPv4 and IPv6.
. /selftests/lib.sh

ktap_plan 12

takeover_case() { # family service-address peer-address-arg
	fam=$1 vip=$2 add=$3
	load_module
	check "IPv$fam: cluster up, peer snooping eth0" cluster_up
	# The peer's application listens too (hot standby) and will accept() the socket.
	in_peer ptcp-testapp echo-serve "[::]:80" &
	peer_pid=$!
	echo_session "$vip" /tmp/tk-pause
	in_peer permctl conns | sed 's/^/# /'
	crash_owner $owner_pid
	# The peer assumes the address and takes the connections over; the module announces the
	# address (gratuitous ARP, unsolicited NA) so the client's frames come to the peer.
	/bin/ip -n peer addr add $add dev eth0
	check "IPv$fam: takeover of node 1" sh -c \
		'/bin/ip netns exec peer permctl --json takeover --node 1 | tee /dev/stderr | grep -q "\"taken\":1"'
	touch /tmp/tk-pause
	wait $client_pid
	client_rc=$?
	sed 's/^/# client: /' /tmp/tk-pause.out
	[ $client_rc = 0 ] && ktap_result ok "IPv$fam: the client finished every round with the right bytes" ||
		ktap_result fail "IPv$fam: the client finished every round with the right bytes"
	check_fails "IPv$fam: a second takeover of the same node is refused" 1 "already taken over" \
		in_peer permctl takeover --node 1
	check "IPv$fam: the taken-over connection left the mirror" sh -c \
		'/bin/ip netns exec peer permctl --json conns | grep -q "^\[\]$"'
	kill -9 $peer_pid $client_pid 2>/dev/null
	wait
	cluster_down
	unload_module
	check "IPv$fam: kernel log clean" kernel_log_clean
}

takeover_case 4 10.0.0.1 10.0.0.1/24
takeover_case 6 "[fd00::1]" "fd00::1/64 nodad"
ktap_finish
