#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# The owner crashes while a connection is half-closed (link cut, process killed):
# - the client sent its request and FIN and reads a 16 MB answer (more than the buffers hold
#   before the crash); the owner had sent part of
#   it. The peer rebuilds the connection, feeds it the client's FIN, and its application
#   reads the request up to end-of-file and sends the rest of the answer: the client reads
#   every byte right, then the server's FIN;
# - the server had greeted and sent its FIN, and the client uploads 4 MB. The peer rebuilds
#   the connection and sends the server's FIN again; its application reads the rest of the
#   upload (16 MB: more than the owner's buffers take before it crashes); nothing is lost.
# IPv4 and IPv6; the client is unmodified and sees no error.
. /selftests/lib.sh

ktap_plan 24
BYTES=16000000

take_over() { # family
	crash_owner $owner_pid
	check "IPv$1: takeover of the half-closed connection" sh -c \
		'/bin/ip netns exec peer permctl --json takeover --node 1 | tee /dev/stderr | grep -q "\"taken\":1"'
}

half_closed_state() {
	in_peer permctl conns | sed 's/^/# /'
	in_peer permctl --json conns | grep -q '"state":"FIN-SEEN"'
}

client_fin_case() { # family service-address
	fam=$1 vip=$2
	load_module
	check "IPv$fam client FIN: cluster up" cluster_up
	in_owner ptcp-testapp down-serve "[::]:80" $BYTES --read-first 2>/dev/null &
	owner_pid=$!
	in_peer ptcp-testapp down-serve "[::]:80" $BYTES --resume --read-first 2>/tmp/hc-app.err &
	peer_pid=$!
	sleep 0.5
	paused_client /tmp/hc 100 ptcp-testapp down-client "$vip:80" $BYTES /tmp/hc --half-close
	sleep 1
	check "IPv$fam client FIN: the mirror shows the connection half-closed" half_closed_state
	take_over $fam
	touch /tmp/hc
	wait $client_pid
	client_rc=$?
	sed 's/^/# client: /' /tmp/hc.out
	sed 's/^/# app: /' /tmp/hc-app.err
	want=$(ptcp-testapp stream-sum $BYTES)
	[ $client_rc = 0 ] && grep -q "$want" /tmp/hc.out &&
		ktap_result ok "IPv$fam client FIN: every byte right, then the server's FIN" ||
		ktap_result fail "IPv$fam client FIN: every byte right, then the server's FIN"
	check "IPv$fam client FIN: the application read the request to end-of-file" \
		grep -q "then the client's FIN" /tmp/hc-app.err
	case_done "IPv$fam client FIN: kernel log clean" $peer_pid
}

owner_fin_case() { # family service-address
	fam=$1 vip=$2
	load_module
	SNOOP_OPTS="--keep-received 8388608"
	check "IPv$fam server FIN: cluster up" cluster_up
	SNOOP_OPTS=
	rm -f /tmp/hc-read /tmp/up-result
	in_owner ptcp-testapp up-serve "[::]:80" $BYTES --greet --stall-at 300000 /tmp/hc-read &
	owner_pid=$!
	in_peer ptcp-testapp up-serve "[::]:80" $BYTES --resume --greet 2>/tmp/hc-app.err &
	peer_pid=$!
	sleep 0.5
	in_client ptcp-testapp up-client "$vip:80" $BYTES --greeted >/tmp/hc.out 2>&1 &
	client_pid=$!
	wait_file /tmp/hc-read
	sleep 1
	check "IPv$fam server FIN: the mirror shows the connection half-closed" half_closed_state
	take_over $fam
	wait $client_pid
	client_rc=$?
	sed 's/^/# client: /' /tmp/hc.out
	sed 's/^/# app: /' /tmp/hc-app.err
	[ $client_rc = 0 ] && ktap_result ok "IPv$fam server FIN: the client sent everything, no error" ||
		ktap_result fail "IPv$fam server FIN: the client sent everything, no error"
	wait_file /tmp/up-result
	echo "# peer application: $(cat /tmp/up-result 2>/dev/null); the owner's read $(cat /tmp/hc-read)"
	check "IPv$fam server FIN: the peer's application got every byte (none lost)" sh -c \
		'grep -q "^OK" /tmp/up-result &&
		 [ $(cut -d" " -f3 /tmp/up-result) -le $(cat /tmp/hc-read) ]'
	case_done "IPv$fam server FIN: kernel log clean" $peer_pid
}

family_part 4 0 6 "IPv4 client FIN" && client_fin_case 4 10.0.0.1
family_part 6 0 6 "IPv6 client FIN" && client_fin_case 6 "[fd00::1]"
family_part 4 1 6 "IPv4 server FIN" && owner_fin_case 4 10.0.0.1
family_part 6 1 6 "IPv6 server FIN" && owner_fin_case 6 "[fd00::1]"
ktap_finish
