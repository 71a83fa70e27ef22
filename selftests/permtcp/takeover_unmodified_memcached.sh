#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# An unmodified line-based request/response server (Debian's memcached, both nodes loaded
# with the same keys) and client (busybox nc, Debian's busybox-static, forwarding the
# commands of a pipe: one connection for all) survive the owner's crash under the default
# received-data policy, unanswered. IPv4 and IPv6, with the crash
# - between: between two requests;
# - unanswered: after a request reached the owner's kernel, its server stopped (SIGSTOP);
# - outage: before a request, which only the peer's mirror sees.
# The owner declares `--mid-response reset`: no complete answer is taken for an incomplete one.
# Every reply is checked against the value stored; the server's connection list shows the
# client's one connection (its port) before the crash on the owner and after it on the peer.
. /selftests/lib.sh

ktap_plan 30

N=8
mkdir -p /tmp/rv
for i in $(seq $N); do
	# 2 to 16 KB values, as text.
	head -c $((i * 1000)) /dev/urandom | od -An -tx1 | tr -d ' \n' >/tmp/rv/$i
done

# One request on a connection of its own to the local memcached of a namespace.
mc_local() { # namespace request
	(printf '%s\r\n' "$2"; sleep 0.3) | /bin/ip netns exec "$1" nc 127.0.0.1 81
}

# memcached on port 81 (every address, IPv4 and IPv6), loaded with the keys.
memcached_up() { # namespace
	/bin/ip netns exec "$1" memcached -p 81 -U 0 -u root -t 2 &
	pid_=$!
	t_=0
	until mc_local "$1" version 2>/dev/null | grep -q VERSION || [ $t_ -ge 30 ]; do
		t_=$((t_ + 1))
	done
	(
		for i in $(seq $N); do
			printf 'set k%s 0 0 %s\r\n%s\r\n' $i "$(($(wc -c </tmp/rv/$i)))" "$(cat /tmp/rv/$i)"
		done
		sleep 0.5
	) | /bin/ip netns exec "$1" nc 127.0.0.1 81 >/dev/null
}

# The client's requests, one get per line (its reply: VALUE line, value, END); after request 4 it waits for /tmp/rd-go, after
# the last for /tmp/rd-end (it stays connected). Each
# request's round trip (ms) goes to /tmp/rd.times.
feeder() {
	for i in $(seq $N); do
		[ $i = 5 ] && { touch /tmp/rd-go.wait; wait_file /tmp/rd-go 600; }
		t0=$(uptime_ms)
		echo "get k$i"
		wait_lines /tmp/rd.out $((3 * i)) 3000
		echo "$i $(($(uptime_ms) - t0))" >>/tmp/rd.times
	done
	# Connected until the peer's client list was read.
	wait_file /tmp/rd-end 600
}

# The port of the client's connection in a node's connection list.
client_port() { # namespace
	mc_local "$1" "stats conns" |
		sed -En 's/.*addr tcp6?:\[?(::ffff:)?(10\.0\.0\.100|fd00::100)\]?:([0-9]+).*/\3/p'
}

mc_case() { # family host when
	fam=$1 host=$2 when=$3
	d="IPv$fam $when"
	load_module
	# A complete answer must not count as mid-response.
	OWNER_OPTS="--mid-response reset"
	check "$d: cluster up, peer snooping eth0" cluster_up
	memcached_up owner
	owner_pid=$pid_
	# The restarted server, unmodified, already listening (hot standby).
	memcached_up peer
	peer_pid=$pid_
	rm -f /tmp/rd-go /tmp/rd-go.wait /tmp/rd-end /tmp/rd.out /tmp/rd.times
	feeder | in_client nc "$host" 81 >/tmp/rd.out 2>/tmp/rd.err &
	client_pid=$!
	wait_file /tmp/rd-go.wait 600
	before=$(client_port owner)
	case $when in
	between)
		crash_owner $owner_pid
		;;
	unanswered)
		netns_signal owner STOP
		touch /tmp/rd-go
		sleep 1
		crash_owner $owner_pid
		;;
	outage)
		crash_owner $owner_pid
		touch /tmp/rd-go
		sleep 1.5
		;;
	esac
	check "$d: takeover of node 1" sh -c \
		'/bin/ip netns exec peer permctl --json takeover --node 1 | tee /dev/stderr | grep -q "\"taken\":1"'
	t_done=$(uptime_ms)
	touch /tmp/rd-go
	wait_lines /tmp/rd.out 15
	t_next=$(uptime_ms)
	wait_lines /tmp/rd.out $((3 * N))
	after=$(client_port peer)
	touch /tmp/rd-end
	sed 's/^/# client request ms: /' /tmp/rd.times
	sed 's/^/# nc: /' /tmp/rd.err
	echo "# request 5 answered $((t_next - t_done)) ms after the takeover returned"
	ok=yes
	for i in $(seq $N); do
		printf 'VALUE k%s 0 %s\r\n%s\r\nEND\r\n' $i "$(($(wc -c </tmp/rv/$i)))" "$(cat /tmp/rv/$i)"
	done >/tmp/rd.want
	cmp /tmp/rd.want /tmp/rd.out || ok=
	[ -n "$ok" ] && ktap_result ok "$d: all $N replies right, in order" ||
		ktap_result fail "$d: all $N replies right, in order"
	echo "# client port on the owner before the crash: $before; on the peer after: $after"
	check "$d: the same connection throughout (the peer's one client is the owner's)" \
		sh -c "[ -n '$before' ] && [ '$before' = '$after' ]"
	case_done "$d: kernel log clean" $peer_pid $client_pid
}

part=0
for when in between unanswered outage; do
	family_part 4 $part 5 "IPv4 $when" && mc_case 4 10.0.0.1 $when
	family_part 6 $part 5 "IPv6 $when" && mc_case 6 fd00::1 $when
	part=$((part + 1))
done
ktap_finish
