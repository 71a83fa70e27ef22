#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# `make demo-single`: a small cluster in network namespaces inside one QEMU guest.  The owner
# and its permanency peer exchange ownership declarations through permtcp's netlink family;
# the client talks to the service address while the peer snoops the shared link and mirrors
# the connection; then the owner crashes mid-session and the peer takes the session over
# (typed here; `make demo` is the multi-VM form: four VMs running permtcpd, the owner's VM
# killed, nobody typing anything).
. /selftests/lib.sh
set -e

say() { printf '\n=== %s\n' "$*"; }
run() { printf '%s$ %s\n' "${NS:-guest}" "$*"; "$@"; }
in_ns() { NS=$1; shift; printf '%s$ %s\n' "$NS" "$*"; /bin/ip netns exec "$NS" "$@"; NS=; }

say "load permtcp.ko"
run insmod /lib/modules/permtcp.ko
dmesg | grep 'permtcp: loaded' | sed 's/^\[[^]]*\] /kernel: /'

say "topology: client, owner (node 1) and peer (node 2) on one flooding bridge"
cluster_net
echo "service address 10.0.0.1:80 is owned by node 1; node 2 is its permanency peer"

say "each server declares what it owns; peers record each other's declarations"
OWNER="--node 1 --addr 10.0.0.1 --mac 02:00:00:00:00:01 --ports 80 --ports 8000-8099 --app travel-query --rx unanswered"
PEER="--node 2 --addr 10.0.0.2 --mac 02:00:00:00:00:02 --ports 9000 --app travel-query"
in_ns owner permctl decl add $OWNER --local
in_ns owner permctl decl add $PEER
in_ns peer permctl decl add $PEER --local
in_ns peer permctl decl add $OWNER

say "the peer's view"
in_ns peer permctl status
in_ns peer permctl decl list

say "the same, as JSON"
in_ns owner permctl --json decl list

say "the client's namespace has no declarations of its own"
in_ns client permctl decl list

say "bad input is refused with a reason, and nothing changes"
set +e
in_ns peer permctl decl add --node 3 --addr 10.0.0.3 --ports 100-200 --ports 150-250
in_ns peer permctl decl add --node 1 --addr 10.0.0.9 --ports 1
in_ns peer su -s /bin/sh nobody -c "permctl decl del --node 1   # as user nobody"
set -e
in_ns peer permctl status

say "the peer snoops the shared link"
in_ns peer permctl snoop start --dev eth0

say "the client queries the service (20 requests of 300 bytes, answers of 5000 bytes)"
mkdir -p /tmp/demo
/bin/ip netns exec owner ptcp-testapp serve 10.0.0.1:80 rr:20:300:5000 /tmp/demo &
sleep 0.5
in_ns client ptcp-testapp client 10.0.0.1:80 rr:20:300:5000 &
while [ ! -e /tmp/demo/state.json ]; do sleep 0.1; done

say "mid-session, the peer holds the owner's connection as the owner's kernel does"
in_ns peer permctl conns
echo "the owner's kernel (TCP_REPAIR): $(cat /tmp/demo/state.json)"

say "the session ends; the peer follows it into TIME-WAIT"
touch /tmp/demo/go
wait
in_ns peer permctl conns
in_ns peer permctl stats

say "a travel agent's session survives the owner's crash"
/bin/ip netns exec owner ptcp-testapp echo-serve "[::]:8000" &
owner_pid=$!
/bin/ip netns exec peer ptcp-testapp echo-serve "[::]:8000" --resume &
peer_pid=$!
sleep 0.5
rm -f /tmp/crash /tmp/crash.wait
echo "client: 40 queries to 10.0.0.1:8000, each answer checked; the owner crashes after 20,"
echo "        and the client sends query 21 while it is down"
/bin/ip netns exec client ptcp-testapp echo-client 10.0.0.1:8000 40 /tmp/crash >/tmp/agent.out 2>&1 &
agent=$!
while [ ! -e /tmp/crash.wait ]; do sleep 0.1; done
echo "next to it, an unmodified web server (Debian's lighttpd) on 10.0.0.1:8080 and peer,"
echo "and Debian's curl: one keep-alive connection, a 20 KB file every 2 s, 5 times"
mkdir -p /tmp/www && head -c 20000 /dev/urandom >/tmp/www/f.bin
for ns in owner peer; do
	printf 'server.document-root = "/tmp/www"\nserver.port = 8080\nserver.errorlog = "/tmp/lt-%s.log"\nserver.upload-dirs = ("/tmp")\n' \
		$ns >/tmp/lt-$ns.conf
	/bin/ip netns exec $ns lighttpd -D -f /tmp/lt-$ns.conf &
	eval lt_$ns=$!
done
sleep 1
rm -f /tmp/curl.out
/bin/ip netns exec client curl -sS --rate 30/m -w '%{stderr}%{num_connects} %{local_port} %{http_code} %{time_total}\n' \
	-o /tmp/f1 http://10.0.0.1:8080/f.bin -o /tmp/f2 http://10.0.0.1:8080/f.bin \
	-o /tmp/f3 http://10.0.0.1:8080/f.bin -o /tmp/f4 http://10.0.0.1:8080/f.bin \
	-o /tmp/f5 http://10.0.0.1:8080/f.bin 2>/tmp/curl.out &
curl_pid=$!
wait_lines /tmp/curl.out 2
in_ns peer permctl conns
echo "*** owner crash: link cut, both server processes killed; nothing is sent"
crash_owner $owner_pid
kill -9 $lt_owner
t0=$(uptime_ms)
touch /tmp/crash
sleep 1
echo "*** one second later the cluster software has noticed (heartbeats): the peer takes over"
in_ns peer permctl takeover --node 1
t1=$(uptime_ms)
wait $agent && echo "client: $(cat /tmp/agent.out)  (no error, no reset, every byte checked)" ||
	{ echo "client FAILED:"; cat /tmp/agent.out; }
worst=$(sed -n 's/.*worst_round_ms=\([0-9]*\).*/\1/p' /tmp/agent.out)
echo "the client's stall: query 21 took ${worst} ms; it was sent $((t1 - t0)) ms before the takeover"
echo "returned, and answered $((worst - (t1 - t0))) ms after it. Without the prompt it would have"
awk -v t=$((t1 - t0)) 'BEGIN { n = split("200 600 1400 3000 6200 12600", r, " ");
	for (i = 1; i <= n; i++) if (r[i] > t) { printf "waited for the client'"'"'s next retransmission, about %d ms after sending\n", r[i]; exit } }'
echo "(its timer backs off: about 0.2, 0.6, 1.4, 3 s ... after sending)"
wait $curl_pid
echo "curl (new connections, local port, status, seconds per request):"
sed 's/^/  /' /tmp/curl.out
ok=yes
for i in 1 2 3 4 5; do cmp -s /tmp/f$i /tmp/www/f.bin || ok=; done
[ "$(awk '{ c += $1 } END { print c }' /tmp/curl.out)" = 1 ] || ok=
[ -n "$ok" ] && echo "lighttpd on the peer answered the rest: one connection, every body right" ||
	echo "lighttpd: FAILED"
kill -9 $peer_pid $lt_peer 2>/dev/null

say "unload with namespaces and declarations present"
run rmmod permtcp
in_ns client permctl status || true
kernel_log_clean && echo "kernel log clean: no warnings, no oops"
