#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# A binding's connections are handed to its listener in one batch (one lookup, one hold of
# the accept queue's lock, one wake-up): what does not fit in the listener's backlog is
# parked and accepted as the application makes room, every connection answering correctly;
# in a reuseport group, where the kernel picks a listener per client, the connections are
# spread over the group's listeners as the kernel would spread their handshakes.
. /selftests/lib.sh

CONNS=100
ktap_plan 11

# The takeover's JSON has key $1 above 0.
above_zero() { # file key
	n_=$(sed -n "s/.*\"$2\":\([0-9]*\).*/\1/p" "$1")
	echo "# $2: $n_"
	[ "${n_:-0}" -gt 0 ]
}

# Takes over node 1 with $CONNS echo sessions open, the peer's application started with
# options $2...; checks the takeover and every answer after it ($1 names the case).
batch_case() { # description peer-app-options...
	d=$1
	shift
	load_module
	check "$d: cluster up, peer snooping eth0" cluster_up
	in_owner ptcp-testapp echo-serve "[::]:80" &
	owner_pid=$!
	rm -f /tmp/echo-accepted.*
	in_peer ptcp-testapp echo-serve "[::]:80" --resume "$@" &
	peer_pid=$!
	sleep 0.5
	paused_client /tmp/batch 6000 ptcp-testapp echo-many 10.0.0.1:80 $CONNS /tmp/batch
	sleep 1
	crash_owner $owner_pid
	in_peer permctl --json takeover --node 1 >/tmp/batch.takeover
	sed 's/^/# takeover: /' /tmp/batch.takeover
	dmesg | grep "takeover of $CONNS connections, ns per connection" | tail -n 1 |
		sed 's/^.*permtcp: /# steps: /'
	check "$d: all $CONNS connections taken over" grep -q "\"taken\":$CONNS," /tmp/batch.takeover
}

# The client resumes; every connection must answer correctly.
batch_answers() { # description
	touch /tmp/batch
	wait $client_pid
	rc_=$?
	sed 's/^/# client: /' /tmp/batch.out
	check "$1: every connection answered correctly after the takeover" [ $rc_ = 0 ]
}

# A backlog of 8: the batch fills the accept queue (9 fit: the kernel's own limit), the
# others wait parked and go to the queue as the application accepts.
batch_case "backlog 8" --backlog=8
check "backlog 8: the ones beyond the backlog were parked" above_zero /tmp/batch.takeover parked
batch_answers "backlog 8"
check "backlog 8: every parked one was accepted later, none reset" sh -c \
	"/bin/ip netns exec peer permctl --json status | tee /dev/stderr |
	grep -q '\"parked\":0,\"park_queued\":$(sed -n 's/.*"parked":\([0-9]*\).*/\1/p' /tmp/batch.takeover),\"park_reset\":0'"
case_done "backlog 8: kernel log clean" $peer_pid

# Two listeners in a reuseport group: each accepts some of them.
batch_case "reuseport" --reuseport=2
batch_answers "reuseport"
a0=$(cat /tmp/echo-accepted.0 2>/dev/null || echo 0)
a1=$(cat /tmp/echo-accepted.1 2>/dev/null || echo 0)
echo "# listener 0 accepted $a0, listener 1 accepted $a1"
check "reuseport: both listeners of the group got connections, $CONNS in all" \
	[ "$a0" -gt 0 -a "$a1" -gt 0 -a $((a0 + a1)) = $CONNS ]
case_done "reuseport: kernel log clean" $peer_pid
ktap_finish
