#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# Taken-over connections born from their listener (permtcp.born=1), the way the kernel
# makes an accepted child, instead of rebuilt with TCP_REPAIR:
#  - the same takeover of 200 connections (IPv4, to a dual-stack listener already running on
#    the peer) with the module parameter off, then on: the kernel's time per connection of
#    each path side by side (its log's step line: "born" against open..detach); with it on,
#    no repair socket is opened and every connection answers correctly afterwards;
#  - IPv6;
#  - no listener at takeover time: the connections are rebuilt with TCP_REPAIR and parked
#    (the fallback), and answer once the application listens;
#  - each connection's record names its socket: the records' cookies are the cookies
#    (SO_COOKIE, ss's "sk:") of the peer's sockets, born or parked, which the restarted
#    application's lookups (permtcp-resume) match against its accepted sockets.
. /selftests/lib.sh

CONNS=200
ktap_plan 13

steps() { dmesg | grep "takeover of $1 connections, ns per connection" | tail -n 1; }
step() { # line name -> ns
	echo "$1" | sed -n "s/.* $2=\([0-9]*\).*/\1/p"
}
repair_ns() { # line -> open..detach summed
	s_=0
	for n_ in open sequences addresses options queues window live resend fin detach; do
		s_=$((s_ + $(step "$1" $n_)))
	done
	echo $s_
}

# run BORN ADDR [late]: N connections to ADDR taken over, the peer's application
# listening (late: started after the takeover).
run() {
	load_module
	echo "$1" >/sys/module/permtcp/parameters/born
	SNOOP_OPTS="--max-conns $((CONNS + 4096))" cluster_up >/dev/null
	in_owner ptcp-testapp echo-serve "[::]:80" &
	owner_pid=$!
	[ "${3:-}" = late ] || in_peer ptcp-testapp echo-serve "[::]:80" --resume &
	peer_pid=$!
	sleep 0.5
	paused_client /tmp/born 6000 ptcp-testapp echo-many "$2" $CONNS /tmp/born
	sleep 1
	crash_owner $owner_pid
	dmesg -c >/dev/null
	in_peer permctl --json takeover --node 1 >/tmp/born.takeover
	line=$(steps $CONNS)
	echo "# born=$1 $2: ${line#*permtcp: }"
	# The records' socket cookies, and those of the peer's sockets of the service port.
	in_peer permctl --json taken | grep -o '"cookie":[0-9]*' | cut -d: -f2 | sort >/tmp/born.rec
	# ss -e also names each socket's cgroup, and iproute2 prints "Failed to find cgroup2
	# mount" or "Failed to open cgroup2 by ID" on stderr for every socket it cannot name
	# (440 lines a run); only the sk: cookies count here.
	in_peer ss -tenH state established '( sport = :80 )' 2>/dev/null | grep -o ' sk:[0-9a-f]*' |
		cut -d: -f2 | while read -r h; do printf '%d\n' "0x$h"; done | sort >/tmp/born.sk
	cookies="$(wc -l </tmp/born.rec) records, $(sort -u /tmp/born.rec | grep -vcx 0) distinct cookies, $(wc -l </tmp/born.sk) sockets"
	echo "# cookies: $cookies"
	cmp -s /tmp/born.rec /tmp/born.sk && cookies_ok=1 || cookies_ok=0
	if [ "${3:-}" = late ]; then
		in_peer ptcp-testapp echo-serve "[::]:80" --resume &
		peer_pid=$!
	fi
	touch /tmp/born
	wait $client_pid
	rc=$?
	sed 's/^/# client: /' /tmp/born.out
}

run 0 10.0.0.1:80
repair=$(repair_ns "$line")
check "repair path: every connection answered correctly" test $rc = 0
case_done "repair path: kernel log clean" $peer_pid
run 1 10.0.0.1:80
born=$(step "$line" born)
echo "# kernel, ns per connection: TCP_REPAIR rebuild $repair, born from the listener $born"
check "born: every connection taken over" grep -q "\"taken\":$CONNS," /tmp/born.takeover
check "born: no repair socket opened" test "$(step "$line" open)" = 0 -a "${born:-0}" -gt 0
check "born: every connection answered correctly" test $rc = 0
check "born: each record carries its socket's cookie" test $cookies_ok = 1 -a \
	"$cookies" = "$CONNS records, $CONNS distinct cookies, $CONNS sockets"
case_done "born: kernel log clean" $peer_pid

CONNS=20
run 1 "[fd00::1]:80"
check "born, IPv6: no repair socket opened, every connection answered correctly" \
	test "$(step "$line" open)" = 0 -a $rc = 0
case_done "born, IPv6: kernel log clean" $peer_pid

CONNS=20
run 1 10.0.0.1:80 late
check "no listener: rebuilt with TCP_REPAIR (the fallback)" \
	test "$(step "$line" open)" -gt 0 -a "$(step "$line" born)" = 0
check "no listener: every connection answered correctly once the application listened" \
	test $rc = 0
check "no listener: each record carries its parked socket's cookie" test $cookies_ok = 1 -a \
	"$cookies" = "$CONNS records, $CONNS distinct cookies, $CONNS sockets"
case_done "no listener: kernel log clean" $peer_pid
ktap_finish
