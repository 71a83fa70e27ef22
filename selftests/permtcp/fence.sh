#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# Fencing: once a lease was set (LEASE_SET, `permctl lease`), the owner's kernel drops every
# segment of its own bindings while the lease has run out, and sends them again once it is
# renewed; other traffic is untouched. Nor does it answer ARP or neighbour solicitations for
# its addresses meanwhile (the client's cache would point back at it). A zombie owner (a paused VM, a hung daemon) therefore
# sends nothing for connections the peers may have taken over. The peer counts frames from a
# node it declared failed (split-brain alarm), and a takeover's notifications reach a
# listener. IPv4 and IPv6.
. /selftests/lib.sh

ktap_plan 44

fenced_count() { in_owner permctl --json status | sed -n 's/.*"fenced":\([0-9]*\).*/\1/p'; }

fence_case() { # family service-address address client-address client-service-address
	fam=$1 vip=$2 addr=$3 caddr=$4 cvip=$5
	load_module
	check "IPv$fam: cluster up" cluster_up
	check "IPv$fam: no lease set: nothing fenced" sh -c \
		'/bin/ip netns exec owner permctl status | grep -q "none set (not fenced)"'
	check "IPv$fam: the owner takes a lease" in_owner permctl lease --ms 60000
	echo_session "$vip" /tmp/fc-pause
	# The owner fences itself; its answers to the rest of the session are dropped.
	check "IPv$fam: the owner releases its lease" in_owner permctl lease --ms 0
	touch /tmp/fc-pause
	sleep 1.5
	check "IPv$fam: the fenced owner's segments were dropped" sh -c "[ \$(/bin/ip netns exec owner permctl --json status | sed -n 's/.*\"fenced\":\([0-9]*\).*/\1/p') -gt 0 ]"
	check "IPv$fam: the client is still waiting (no answer reached it)" kill -0 $client_pid
	check "IPv$fam: status says the lease ran out" sh -c \
		'/bin/ip netns exec owner permctl status | grep -q "run out: fenced"'
	# Traffic outside the owner's bindings (80-90) is not fenced (between neighbours already
	# known: the owner claims its address in no ARP or neighbour message, below).
	check "IPv$fam: ping from the owner still works" in_owner ping -c 1 -W 2 $caddr
	in_client ptcp-testapp echo-serve "[::]:9000" &
	other_pid=$!
	sleep 0.3
	touch /tmp/fc-go
	check "IPv$fam: the owner's connection to another service works" \
		in_owner ptcp-testapp echo-client $cvip:9000 4 /tmp/fc-go
	# Nor does it answer ARP or neighbour solicitations for its address: the client's cache
	# would point back at a node that may no longer serve it.
	check "IPv$fam: the fenced owner answers no ARP / neighbour solicitation for $addr" sh -c \
		"/bin/ip -n client neigh flush all && ! /bin/ip netns exec client ping -c 1 -W 1 $addr >/dev/null"
	# Renewed: the owner's retransmissions go out, the session completes right.
	check "IPv$fam: the owner renews its lease" in_owner permctl lease --ms 60000
	check "IPv$fam: the client reaches $addr again" sh -c \
		"/bin/ip -n client neigh flush all && /bin/ip netns exec client ping -c 1 -W 2 $addr >/dev/null"
	before=$(fenced_count)
	wait $client_pid
	client_rc=$?
	sed 's/^/# client: /' /tmp/fc-pause.out
	[ $client_rc = 0 ] && ktap_result ok "IPv$fam: after the renewal the client finished every round right" ||
		ktap_result fail "IPv$fam: after the renewal the client finished every round right"
	check "IPv$fam: nothing more was dropped" sh -c "[ \$(/bin/ip netns exec owner permctl --json status | sed -n 's/.*\"fenced\":\([0-9]*\).*/\1/p') = $before ]"
	case_done "IPv$fam: kernel log clean" $owner_pid $other_pid
}

fence_case 4 10.0.0.1 10.0.0.1 10.0.0.100 10.0.0.100
fence_case 6 "[fd00::1]" fd00::1 fd00::100 "[fd00::100]"

# A lease that is not renewed runs out by itself.
load_module
check "expiry: cluster up" cluster_up
check "expiry: a 3 s lease" in_owner permctl lease --ms 3000
check "expiry: it holds at first" sh -c \
	'/bin/ip netns exec owner permctl status | grep -q "ms left"'
sleep 3.5
check "expiry: it ran out" sh -c '/bin/ip netns exec owner permctl status | grep -q "run out"'
check_fails "expiry: a lease above one minute is refused" 1 "" in_owner permctl lease --ms 60001
check_fails "expiry: an unprivileged lease is refused" 1 "Operation not permitted" \
	su -s /bin/sh nobody -c "permctl lease --ms 100"
case_done "expiry: kernel log clean"

# Split brain: the peer takes node 1 over while node 1 still runs (a partition that healed,
# or a zombie); its frames are counted by the peer, and the takeover's notifications reach a
# listener.
load_module
check "split brain: cluster up" cluster_up
echo_session 10.0.0.1 /tmp/fc-sb
# Issue 11, finding 8: an unprivileged caller sees the mirrored connection without the
# sequence numbers a blind injection needs; the privileged one sees them.
check "redaction: the privileged caller sees the sequence numbers" sh -c \
	'/bin/ip netns exec peer permctl --json conns | grep -q "\"isn\":[1-9]"'
check "redaction: an unprivileged caller sees none" sh -c \
	'/bin/ip netns exec peer su -s /bin/sh nobody -c "permctl --json conns" | tee /dev/stderr |
	 grep -q "\"state\":\"ESTAB\"" &&
	 ! /bin/ip netns exec peer su -s /bin/sh nobody -c "permctl --json conns" |
	 grep -q -E "\"(isn|snd_nxt|snd_una)\":[1-9]"'
in_peer permctl events >/tmp/fc-events 2>/tmp/fc-events.err &
events_pid=$!
wait_file /tmp/fc-events.err 30
sleep 0.2
check "split brain: the peer takes node 1 over (node 1 still runs)" sh -c \
	'/bin/ip netns exec peer permctl --json takeover --node 1 | tee /dev/stderr | grep -q "\"taken\":1"'
in_owner ping -c 3 -i 0.2 -W 1 10.0.0.100 >/dev/null
check "split brain: the peer counted node 1's frames" sh -c \
	'/bin/ip netns exec peer permctl --json status | grep -q "\"split_brain\":[1-9]"'
sleep 0.2
sed 's/^/# event: /' /tmp/fc-events
check "events: node-failed and taken notifications" sh -c \
	'grep -q "^node-failed node=1$" /tmp/fc-events &&
	 grep -q "^taken node=1 owner=10.0.0.1:80 client=10.0.0.100:" /tmp/fc-events'
case_done "split brain: kernel log clean" $owner_pid $client_pid $events_pid
ktap_finish
