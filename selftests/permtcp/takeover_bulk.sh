#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# The owner crashes with data in flight (link cut and process killed, nothing sent):
# - a bulk download stalls with the owner's buffers full; the peer's application (plain
#   accept()) continues the stream from the offset permctl reports, after checking the sent
#   bytes permtcp kept against its own regeneration; the client's bytes equal a crash-free
#   run (every byte checked, and the checksum);
# - a bulk upload whose server application fell behind: with the default "unanswered"
#   policy (the owner never answered: every kept client byte is delivered, as with
#   "deliver") and the peer keeping up to 8 MiB of client data behind the owner's acknowledgement (the
#   owner's tcp_rmem maximum is 6 MiB), the peer's application reads again from at or before
#   where the dead one stopped, so no client byte is lost, and it answers the client.
# IPv4 and IPv6; the client is unmodified and sees no error.
. /selftests/lib.sh

ktap_plan 22
BYTES=16000000

crash_and_take_over() { # family
	sleep 1
	crash_owner $owner_pid
	check "IPv$1: takeover of node 1" sh -c \
		'/bin/ip netns exec peer permctl --json takeover --node 1 | tee /dev/stderr | grep -q "\"taken\":1"'
}

download_case() { # family service-address
	fam=$1 vip=$2
	load_module
	check "IPv$fam download: cluster up" cluster_up
	in_owner ptcp-testapp down-serve "[::]:80" $BYTES &
	owner_pid=$!
	in_peer ptcp-testapp down-serve "[::]:80" $BYTES --resume 2>/tmp/bd-app.err &
	peer_pid=$!
	sleep 0.5
	paused_client /tmp/bd 100 ptcp-testapp down-client "$vip:80" $BYTES /tmp/bd
	crash_and_take_over $fam
	in_peer permctl taken | sed 's/^/# /'
	touch /tmp/bd
	wait $client_pid
	client_rc=$?
	sed 's/^/# client: /' /tmp/bd.out
	sed 's/^/# app: /' /tmp/bd-app.err
	[ $client_rc = 0 ] && ktap_result ok "IPv$fam download: the client read every byte, each right" ||
		ktap_result fail "IPv$fam download: the client read every byte, each right"
	want=$(ptcp-testapp stream-sum $BYTES)
	check "IPv$fam download: the bytes equal a crash-free run ($want)" grep -q "$want" /tmp/bd.out
	check "IPv$fam download: the application verified the kept sent bytes and resumed" \
		grep -q "verified [1-9][0-9]* kept sent bytes" /tmp/bd-app.err
	case_done "IPv$fam download: kernel log clean" $peer_pid
}

upload_case() { # family service-address
	fam=$1 vip=$2
	load_module
	SNOOP_OPTS="--keep-received 8388608"
	check "IPv$fam upload: cluster up" cluster_up
	SNOOP_OPTS=""
	rm -f /tmp/bu-read
	# The owner's application stops reading after 300000 bytes; its kernel keeps
	# acknowledging until the receive buffer is full.
	in_owner ptcp-testapp up-serve "[::]:80" $BYTES --stall-at 300000 /tmp/bu-read &
	owner_pid=$!
	in_peer ptcp-testapp up-serve "[::]:80" $BYTES --resume 2>/tmp/bu-app.err &
	peer_pid=$!
	sleep 0.5
	in_client ptcp-testapp up-client "$vip:80" $BYTES >/tmp/bu.out 2>&1 &
	client_pid=$!
	t=0
	while [ ! -e /tmp/bu-read ] && [ $t -lt 100 ]; do sleep 0.1; t=$((t + 1)); done
	crash_and_take_over $fam
	in_peer permctl taken | sed 's/^/# /'
	read_by_owner=$(cat /tmp/bu-read)
	resumed=$(in_peer permctl --json taken | sed -n 's/.*"recv_offset":\([0-9]*\).*/\1/p')
	echo "# the owner's application read $read_by_owner bytes; the peer's resumes at $resumed"
	check "IPv$fam upload: no client byte lost (resume offset <= bytes the dead application read)" \
		test "${resumed:-999999999}" -le "$read_by_owner"
	wait $client_pid
	client_rc=$?
	sed 's/^/# client: /' /tmp/bu.out
	sed 's/^/# app: /' /tmp/bu-app.err
	[ $client_rc = 0 ] && grep -q "OK $((BYTES - resumed)) $resumed" /tmp/bu.out &&
		ktap_result ok "IPv$fam upload: the client sent everything and got the answer" ||
		ktap_result fail "IPv$fam upload: the client sent everything and got the answer"
	case_done "IPv$fam upload: kernel log clean" $peer_pid
}

family_part 4 0 6 "IPv4 download" && download_case 4 10.0.0.1
family_part 6 0 6 "IPv6 download" && download_case 6 "[fd00::1]"
family_part 4 1 5 "IPv4 upload" && upload_case 4 10.0.0.1
family_part 6 1 5 "IPv6 upload" && upload_case 6 "[fd00::1]"
ktap_finish
