#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# Planned live handoff (Documentation/handoff.rst): node 1 serves echo sessions on port 80
# while node 2 mirrors them; with traffic running, `permctl handoff` holds them on node 1,
# node 2 takes them over from its mirror, node 1 drops them silently. The client's
# connections go on without a reset, every answer right, now answered by node 2's stock
# server (the client still sends to node 1's MAC: node 2 takes those frames off the
# flooding link); node 1's own stack's resets of them are dropped; a new connection still
# goes to node 1. Then a refused handoff: node 2 does not mirror (snooping stopped), nothing
# moves and the sessions go on with node 1. IPv4 and IPv6.
#
# PERMTCP_HANDOFF_CONNS (run_vm.sh; comma-separated, default 20) sets the connection counts
# of the IPv4 case; each run prints the pause the client saw (its connections' worst round)
# and the times of the steps.
. /selftests/lib.sh

COUNTS=$(sed -n 's/.*permtcp\.handoff=\([0-9,]*\).*/\1/p' /proc/cmdline | tr , ' ')
COUNTS=${COUNTS:-20}
n_counts=$(echo $COUNTS | wc -w)
ktap_plan $((n_counts * 18 + 18 + 5))

# Namespace $1 has $2 established connections on port 80 (ss counts them).
established() { # namespace count
	n_=$(/bin/ip netns exec $1 ss -Htn state established '( sport = :80 )' | wc -l)
	echo "# $1: $n_ established on port 80"
	[ "$n_" = "$2" ]
}

# Namespace $1 mirrors $2 connections, established and ready to take over.
mirrored() { # namespace count
	n_=$(/bin/ip netns exec $1 permctl --json conns | grep -o '"state":"ESTAB"[^}]*"ready":true' | wc -l)
	[ "$n_" -ge "$2" ] && return
	# What is not: the entries that are not ready or not established, and why.
	/bin/ip netns exec $1 permctl conns | grep -v '^ESTAB  *yes' | sed "s/^/# $1 mirror: /" | tail -n 12
	dmesg | grep 'handoff:' | tail -n 4 | sed 's/^/# /'
	return 1
}

# One handoff of binding $2 from namespace $1 (node $3) to namespace $4 (node $5), the
# outputs in /tmp/ho.held and /tmp/ho.taken; prints the steps' times.
handoff() { # from-ns binding from-node to-ns to-node
	t0=$(uptime_ms)
	/bin/ip netns exec $1 permctl handoff hold --binding "$2" >/tmp/ho.held 2>/tmp/ho.err
	t1=$(uptime_ms)
	/bin/ip netns exec $4 permctl handoff take --from $3 --file /tmp/ho.held >/tmp/ho.taken 2>>/tmp/ho.err
	t2=$(uptime_ms)
	/bin/ip netns exec $1 permctl handoff done --to $5 --file /tmp/ho.taken 2>>/tmp/ho.err
	t3=$(uptime_ms)
	sed 's/^/# /' /tmp/ho.err
	echo "# hold $((t1 - t0)) ms, take $((t2 - t1)) ms, done $((t3 - t2)) ms (shell clock, 10 ms, permctl's start included)"
}

# Node 2 holds address $1 (brackets allowed) on its loopback only, and for IPv4 answers ARP
# on eth0 for eth0's own addresses only.
quiet_on_peer() {
	a_=$(echo "$1" | tr -d '[]')
	/bin/ip -n peer addr show dev lo | grep -q " $a_/" &&
		! /bin/ip -n peer addr show dev eth0 | grep -q " $a_/" || return 1
	case $a_ in
	*:*) ;;
	*) [ "$(in_peer cat /proc/sys/net/ipv4/conf/eth0/arp_ignore)" = 1 ] ;;
	esac
}

# Lines of status $2 in handoff output $1.
lines() { grep -c "\"status\":\"$2\"" "$1"; }

handoff_case() { # family service-address binding conns
	fam=$1 vip=$2 binding=$3 conns=$4
	d="IPv$fam, $conns connections"
	load_module
	cluster_up
	in_owner permctl snoop start --dev eth0 >/dev/null
	in_owner ptcp-testapp echo-serve "[::]:80" &
	owner_pid=$!
	in_peer ptcp-testapp echo-serve "[::]:80" &
	peer_pid=$!
	sleep 0.5
	rm -f /tmp/ho /tmp/ho.wait /tmp/ho.[0-9]
	# About 100 requests a second in all (at least one every 20 ms on each connection):
	# TCG serves no more beside the handoffs.
	interval=$((conns < 5 ? 20 : conns * 10))
	in_client ptcp-testapp echo-steady "$vip:80" $conns /tmp/ho --interval-ms $interval \
		>/tmp/ho.out 2>&1 &
	client_pid=$!
	wait_file /tmp/ho.wait $((600 + conns))
	check "$d: node 2 mirrors them" wait_until "the mirror" 300 mirrored peer $conns
	# A round on every connection (the baseline) before the handoff.
	sleep $(((interval + 999) / 1000))
	touch /tmp/ho.1
	handoff owner "$binding" 1 peer 2
	check "$d: node 1 held every connection" [ "$(lines /tmp/ho.held held)" = $conns ]
	check "$d: node 2 took every one over" [ "$(lines /tmp/ho.taken taken)" = $conns ]
	check "$d: node 1 has none left" established owner 0
	check "$d: node 2 serves them" established peer $conns
	check "$d: node 2 holds the address quietly (loopback, no ARP answers)" quiet_on_peer "$vip"
	# Traffic runs on, now through node 2; node 1 mirrors the connections from their
	# sockets' state on.
	check "$d: node 1 mirrors them, ready to take them back" wait_until "node 1's mirror" 300 mirrored owner $conns
	# Within one round of every connection (requests are spread over the interval).
	check "$d: node 2 took their frames for node 1's MAC" \
		wait_until "steering" $((interval / 100 + 50)) stat_set peer steered
	check "$d: node 1 dropped its stack's resets of them" \
		wait_until "dropped resets" $((interval / 100 + 50)) stat_set owner rst_dropped
	# Hand back: node 2 holds them, node 1 takes them back from its mirror.
	touch /tmp/ho.2
	handoff peer "$binding" 2 owner 1
	check "$d: hand back: node 2 held every one" [ "$(lines /tmp/ho.held held)" = $conns ]
	check "$d: hand back: node 1 took every one back" [ "$(lines /tmp/ho.taken taken)" = $conns ]
	check "$d: hand back: node 1 serves them again" established owner $conns
	check "$d: hand back: node 2 has none left" established peer 0
	dmesg | grep 'held connections mirrored' | tail -n 1 | sed 's/^/# node 2 kernel: /'
	check "$d: node 2 mirrors them again, ready for a takeover" wait_until "node 2's mirror" 300 mirrored peer $conns
	rm -f /tmp/ho-new /tmp/ho-new.wait
	in_client ptcp-testapp echo-steady "$vip:80" 1 /tmp/ho-new >/tmp/ho-new.out 2>&1 &
	new_pid=$!
	wait_file /tmp/ho-new.wait 100
	check "$d: a new connection goes to node 1" established owner $((conns + 1))
	touch /tmp/ho-new
	wait $new_pid
	rm -f /tmp/ho-new
	# Node 1 crashes: node 2 takes the connections over from the mirror it seeded when it
	# handed them back.
	sleep 0.5
	touch /tmp/ho.3
	crash_owner $owner_pid
	check "$d: node 1 crashed, node 2 takes every one over" sh -c \
		"/bin/ip netns exec peer permctl --json takeover --node 1 | tee /dev/stderr | grep -q '\"taken\":$conns,'"
	sleep 1
	touch /tmp/ho
	client_wait $((300 + conns / 5))
	sed 's/^/# client: /' /tmp/ho.out
	check "$d: every session went on through both handoffs and the crash, every answer right" [ $client_rc = 0 ]
	# Phases: 0 before, 1 the handoff, 2 the hand back, 3 the crash and takeover.
	grep '^phase=' /tmp/ho.out | sed "s/^phase=1/handoff:/;s/^phase=2/hand back:/;s/^phase=3/crash+takeover:/;s/^phase=0/before:/;s/^/# $d, /"
	case_done "$d: kernel log clean" $owner_pid $peer_pid
}

# Node 2 does not mirror them: every connection is refused, nothing moves.
refused_case() {
	d="IPv6, refused"
	load_module
	cluster_up
	in_owner ptcp-testapp echo-serve "[::]:80" &
	owner_pid=$!
	sleep 0.5
	rm -f /tmp/ho /tmp/ho.wait /tmp/ho.[0-9]
	in_client ptcp-testapp echo-steady "[fd00::1]:80" 5 /tmp/ho >/tmp/ho.out 2>&1 &
	client_pid=$!
	wait_file /tmp/ho.wait 300
	in_peer permctl snoop stop >/dev/null
	handoff owner "[fd00::1]:80" 1 peer 2
	check "$d: node 2 refuses every one: not mirrored" [ "$(lines /tmp/ho.taken not-mirrored)" = 5 ]
	check "$d: node 1 still serves them" established owner 5
	sleep 1
	touch /tmp/ho
	client_wait 300
	sed 's/^/# client: /' /tmp/ho.out
	check "$d: the sessions went on with node 1, every answer right" [ $client_rc = 0 ]
	check_fails "$d: a hold of a binding nobody declared is refused" 1 "not declared" \
		in_owner permctl handoff hold --binding "10.0.0.9:80"
	case_done "$d: kernel log clean" $owner_pid
}

for n in $COUNTS; do
	handoff_case 4 10.0.0.1 10.0.0.1:80 $n
done
family_part 6 0 18 "IPv6 handoff" && handoff_case 6 "[fd00::1]" "[fd00::1]:80" 3
refused_case
ktap_finish
