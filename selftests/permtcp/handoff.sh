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
# HANDOFF_CONNS (space-separated, default "20") sets the connection counts of the IPv4
# case; each run prints the pause the client saw (its connections' worst round).
. /selftests/lib.sh

COUNTS=${HANDOFF_CONNS:-20}
n_counts=$(echo $COUNTS | wc -w)
ktap_plan $((n_counts * 11 + 11 + 5))

# Namespace $1 has $2 established connections on port 80 (ss counts them).
established() { # namespace count
	n_=$(/bin/ip netns exec $1 ss -Htn state established '( sport = :80 )' | wc -l)
	echo "# $1: $n_ established on port 80"
	[ "$n_" = "$2" ]
}

# Node 2 mirrors $1 connections, all established.
mirrored() { # count
	n_=$(in_peer permctl --json conns | grep -o '"state":"ESTAB"' | wc -l)
	[ "$n_" -ge "$1" ]
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
	in_owner ptcp-testapp echo-serve "[::]:80" &
	owner_pid=$!
	in_peer ptcp-testapp echo-serve "[::]:80" &
	peer_pid=$!
	sleep 0.5
	rm -f /tmp/ho /tmp/ho.wait
	interval=$((conns < 100 ? 20 : conns * 2 / 5))
	in_client ptcp-testapp echo-steady "$vip:80" $conns /tmp/ho --interval-ms $interval \
		>/tmp/ho.out 2>&1 &
	client_pid=$!
	wait_file /tmp/ho.wait 600
	check "$d: node 2 mirrors them" wait_until "the mirror" 100 mirrored $conns
	sleep 0.5
	t0=$(uptime_ms)
	in_owner permctl handoff hold --binding "$binding" >/tmp/ho.held 2>/tmp/ho.err
	t1=$(uptime_ms)
	in_peer permctl handoff take --from 1 --file /tmp/ho.held >/tmp/ho.taken 2>>/tmp/ho.err
	t2=$(uptime_ms)
	in_owner permctl handoff done --to 2 --file /tmp/ho.taken 2>>/tmp/ho.err
	t3=$(uptime_ms)
	sed 's/^/# /' /tmp/ho.err
	echo "# hold $((t1 - t0)) ms, take $((t2 - t1)) ms, done $((t3 - t2)) ms (shell clock, 10 ms)"
	check "$d: node 1 held every connection" [ "$(lines /tmp/ho.held held)" = $conns ]
	check "$d: node 2 took every one over" [ "$(lines /tmp/ho.taken taken)" = $conns ]
	check "$d: node 1 has none left" established owner 0
	check "$d: node 2 serves them" established peer $conns
	check "$d: node 2 holds the address quietly (loopback, no ARP answers)" quiet_on_peer "$vip"
	# Traffic runs on for a second, now through node 2.
	sleep 1
	touch /tmp/ho
	client_wait 300
	sed 's/^/# client: /' /tmp/ho.out
	check "$d: every session went on, every answer right" [ $client_rc = 0 ]
	grep -o 'pause_[a-z]*_ms=[0-9]*' /tmp/ho.out | tr '\n' ' ' | sed "s/^/# $d: /;s/\$/\n/"
	echo "# node 2 stats: $(in_peer permctl --json stats | grep -o '"steered":[0-9]*')"
	echo "# node 1 stats: $(in_owner permctl --json stats | grep -o '"rst_dropped":[0-9]*')"
	check "$d: node 2 took their frames for node 1's MAC" stat_set peer steered
	check "$d: node 1 dropped its stack's resets of them" stat_set owner rst_dropped
	rm -f /tmp/ho-new /tmp/ho-new.wait
	in_client ptcp-testapp echo-steady "$vip:80" 1 /tmp/ho-new >/tmp/ho-new.out 2>&1 &
	new_pid=$!
	wait_file /tmp/ho-new.wait 100
	check "$d: a new connection goes to node 1" established owner 1
	touch /tmp/ho-new
	wait $new_pid
	rm -f /tmp/ho-new
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
	rm -f /tmp/ho /tmp/ho.wait
	in_client ptcp-testapp echo-steady "[fd00::1]:80" 5 /tmp/ho >/tmp/ho.out 2>&1 &
	client_pid=$!
	wait_file /tmp/ho.wait 300
	in_peer permctl snoop stop >/dev/null
	in_owner permctl handoff hold --binding "[fd00::1]:80" >/tmp/ho.held 2>/tmp/ho.err
	in_peer permctl handoff take --from 1 --file /tmp/ho.held >/tmp/ho.taken 2>>/tmp/ho.err
	in_owner permctl handoff done --to 2 --file /tmp/ho.taken 2>>/tmp/ho.err
	sed 's/^/# /' /tmp/ho.err
	check "$d: node 2 refuses every one: not mirrored" [ "$(lines /tmp/ho.taken not-mirrored)" = 5 ]
	check "$d: node 1 still serves them" established owner 5
	sleep 1
	touch /tmp/ho
	client_wait 300
	sed 's/^/# client: /' /tmp/ho.out
	check "$d: the sessions went on with node 1, every answer right" [ $client_rc = 0 ]
	check_fails "$d: a hold of another node's binding is refused" 1 "not one of this node's" \
		in_owner permctl handoff hold --binding "10.0.0.2:80"
	case_done "$d: kernel log clean" $owner_pid
}

for n in $COUNTS; do
	handoff_case 4 10.0.0.1 10.0.0.1:80 $n
done
handoff_case 6 "[fd00::1]" "[fd00::1]:80" 3
refused_case
ktap_finish
