#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# The application is not listening when the peer takes over. Its bind() to the service
# address is refused while the owner lives (the address is the owner's: EADDRNOTAVAIL) and
# accepted after the takeover; the taken-over connection waits, parked, acknowledging and
# buffering the client's request, and the application's plain accept() returns it once it
# listens. A connection nobody listens for is reset when its parking time runs out.
. /selftests/lib.sh

ktap_plan 18

status_has() { # json-fragment
	in_peer permctl --json status | tee /dev/stderr | grep -q "$1"
}

later_case() { # family service-address when-the-app-starts
	fam=$1 vip=$2 when=$3
	load_module
	check "IPv$fam: cluster up, peer snooping eth0" cluster_up
	echo_session "$vip" /tmp/tl-pause
	check_fails "IPv$fam: the peer's bind() to the owner's address is refused while it lives" \
		1 "Cannot assign requested address" in_peer ptcp-testapp bind "$vip:80"
	if [ "$when" = before ]; then
		# Restarted before the crash, the application retries its refused bind().
		in_peer ptcp-testapp echo-serve "$vip:80" --wait-bind --resume 2>/tmp/tl-app.err &
		peer_pid=$!
		sleep 0.3
	fi
	crash_owner $owner_pid
	if [ "$when" = before ]; then
		# The address is local now: the application's retried bind() may win the race
		# with the takeover (then the connection goes straight to its accept queue).
		check "IPv$fam: takeover of node 1" sh -c \
			'/bin/ip netns exec peer permctl --json takeover --node 1 | tee /dev/stderr | grep -q "\"taken\":1"'
	else
		check "IPv$fam: takeover parks the connection (no listener yet)" sh -c \
			'/bin/ip netns exec peer permctl --json takeover --node 1 | tee /tmp/tl-takeover.json &&
			grep -q "\"taken\":1" /tmp/tl-takeover.json && grep -q "\"parked\":1" /tmp/tl-takeover.json'
	fi
	# The client's next request reaches the parked socket, which acknowledges and keeps it.
	touch /tmp/tl-pause
	if [ "$when" = after ]; then
		sleep 1
		check "IPv$fam: one connection parked while nobody listens" status_has '"parked":1,'
		in_peer ptcp-testapp echo-serve "$vip:80" --resume 2>/tmp/tl-app.err &
		peer_pid=$!
	fi
	wait $client_pid
	client_rc=$?
	sed 's/^/# client: /' /tmp/tl-pause.out
	sed 's/^/# app: /' /tmp/tl-app.err
	[ $client_rc = 0 ] && ktap_result ok "IPv$fam: the client finished every round with the right bytes" ||
		ktap_result fail "IPv$fam: the client finished every round with the right bytes"
	if [ "$when" = after ]; then
		check "IPv$fam: the parked connection went to the application's accept()" \
			status_has '"parked":0,"park_queued":1,"park_reset":0'
	else
		check "IPv$fam: the application's bind() was refused, then accepted" sh -c \
			'grep -q refused /tmp/tl-app.err && grep -q "accepted after" /tmp/tl-app.err'
	fi
	case_done "IPv$fam: kernel log clean" $peer_pid $client_pid
}

# Nobody listens: after the parking time the client is reset, not left hanging.
timeout_case() {
	load_module
	check "parking timeout: cluster up" cluster_up
	echo_session 10.0.0.1 /tmp/tl-pause
	crash_owner $owner_pid
	check "parking timeout: takeover parks the connection for 300 ms" sh -c \
		'/bin/ip netns exec peer permctl --json takeover --node 1 --park-ms 300 | grep -q "\"parked\":1"'
	touch /tmp/tl-pause
	wait $client_pid
	client_rc=$?
	sed 's/^/# client: /' /tmp/tl-pause.out
	[ $client_rc != 0 ] && grep -q "reset" /tmp/tl-pause.out &&
		ktap_result ok "parking timeout: the client got a reset" ||
		ktap_result fail "parking timeout: the client got a reset"
	check "parking timeout: counted as reset" status_has '"parked":0,"park_queued":0,"park_reset":1'
	cluster_down
	unload_module
	check "parking timeout: kernel log clean" kernel_log_clean
}

# An IPv4 connection parked without a listener is an IPv6 socket with mapped addresses: the
# application's IPv4 listener on the specific address takes it.
later_case 4 10.0.0.1 after
later_case 6 "[fd00::1]" before
timeout_case
ktap_finish
