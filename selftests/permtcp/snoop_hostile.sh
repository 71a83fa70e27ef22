#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# Hostile traffic from a third namespace on the cluster link (raw frames, AF_PACKET):
#  - segments forged against a live, quiet connection (ACKs of data past the window the other
#    end allowed, old ACKs, RSTs in the window but not at the next sequence number, segments
#    far outside the window, data without ACK, forged owner segments) change neither the
#    owner's kernel nor the mirror (an ACK of unsent data short of that edge may be genuine
#    data still on its way to the peer: snoop_reorder.sh):
#    the oracle (snoop_oracle.sh) still finds the mirror equal to the owner's TCP_REPAIR state;
#  - a SYN flood fills the table only to its limit, a real connection is still mirrored, and
#    the flood's entries go after the handshake timeout;
#  - a client that vanishes without FIN or RST is forgotten after the idle timeout.
. /selftests/lib.sh

FORGED="ack-unsent data-ack-unsent ack-old rst-window rst-behind ack-far data-far data-noack
owner-rst-window owner-ack-unsent"
NFORGED=10

ktap_plan 13
load_module
check "cluster up, peer snooping eth0" cluster_up
/bin/ip netns add attacker
/bin/ip link add vattacker type veth peer name eth0 netns attacker
br_port vattacker
/bin/ip -n attacker link set eth0 address 02:00:00:00:00:66 up
in_attacker() { /bin/ip netns exec attacker "$@"; }

stat() { /bin/ip netns exec peer permctl --json stats | sed "s/.*\"$1\":\([0-9]*\).*/\1/"; }
count_state() { # state
	/bin/ip netns exec peer permctl --json conns | tr '{' '\n' | grep -c "\"state\":\"$1\""
}

for fam in 4 6; do
	if [ $fam = 6 ]; then addr="[fd00::1]" port=83; else addr=10.0.0.1 port=84; fi
	d=/tmp/hostile-$fam
	rm -rf $d && mkdir -p $d
	PTCP_HOLD=1 PTCP_QUIET_FILE=$d/client-quiet in_owner ptcp-testapp serve "$addr:$port" \
		rr:5:300:5000 $d 2>$d/serve.err &
	wait_file $d/listening 100
	PTCP_QUIET_FILE=$d/client-quiet in_client ptcp-testapp client "$addr:$port" rr:5:300:5000 \
		>/dev/null 2>$d/client.err &
	wait_file $d/quiet 300
	in_peer permctl --json conns >$d/before.json
	i0=$(stat invalid)
	for kind in $FORGED; do
		case $kind in
		owner-*) mac=02:00:00:00:00:03 ;;
		*) mac=02:00:00:00:00:01 ;;
		esac
		in_attacker ptcp-testapp forge eth0 $mac $d/before.json $port $kind
	done
	sleep 0.5
	touch $d/forged
	if wait_file $d/state.json 300; then
		in_peer permctl --json conns >$d/conns.json
		client=$(sed 's/.*"peer":"\([^"]*\)".*/\1/' $d/state.json)
		in_peer permctl conn-data --owner "$addr:$port" --client "$client" --side owner \
			--out $d/out.bin >$d/out.txt
		in_peer permctl conn-data --owner "$addr:$port" --client "$client" --side client \
			--out $d/in.bin >$d/in.txt
		echo "# IPv$fam: invalid $i0 -> $(stat invalid) after $NFORGED forged segments"
		check "IPv$fam: every forged segment was refused" test "$(stat invalid)" -ge $((i0 + NFORGED))
		check "IPv$fam: the connection is still mirrored and ready" \
			grep -q "\"owner\":\"[^\"]*:$port\",[^{]*\"state\":\"ESTAB\",[^{]*\"ready\":true" \
			$d/conns.json
		if ptcp-testapp compare $d >$d/compare.txt 2>&1; then
			sed 's/^/    /' $d/compare.txt
			ktap_result ok "IPv$fam: after the forgeries the mirror equals the owner's kernel"
		else
			sed 's/^/    /' $d/compare.txt
			ktap_result fail "IPv$fam: after the forgeries the mirror equals the owner's kernel"
		fi
	else
		cat $d/*.err | sed 's/^/# /'
		ktap_result fail "IPv$fam: the owner's state was read"
		ktap_result fail "IPv$fam: (skipped)"
		ktap_result fail "IPv$fam: (skipped)"
	fi
	touch $d/go
	wait
done

# A SYN flood against a short handshake timeout and a small table.
in_peer permctl snoop stop >/dev/null
in_peer permctl snoop start --dev eth0 --max-conns 1024 --syn-timeout-ms $((2000 * SLOW)) \
	--idle-timeout-ms $((4000 * SLOW)) >/dev/null
in_attacker ptcp-testapp flood eth0 02:00:00:00:00:01 10.0.0.200 10.0.0.1:85 10000
echo "# after 10000 SYNs: $(stat connections) connections, $(stat early_drops) early drops," \
	"$(stat handshake_timeouts) handshakes timed out, $(stat conn_limit_hits) refused"
# Every SYN past the limit made room by dropping the oldest incomplete handshake of its
# shard, found none there and was not tracked (refused), or found the room an expired one
# left (a flood slower than the handshake timeout: a sanitizer kernel under TCG).
check "the flood fills the table only to its limit" \
	test "$(stat connections)" -le 1024 -a \
	$(($(stat early_drops) + $(stat conn_limit_hits) + $(stat handshake_timeouts))) -ge 8976
d=/tmp/hostile-flood
rm -rf $d && mkdir -p $d
PTCP_HOLD=1 in_owner ptcp-testapp serve 10.0.0.1:86 rr:1:10:10 $d 2>$d/serve.err &
wait_file $d/listening 100
in_client ptcp-testapp client 10.0.0.1:86 rr:1:10:10 >/dev/null 2>$d/client.err &
wait_file $d/quiet 300
check "a real connection after the flood is mirrored and ready" sh -c \
	'/bin/ip netns exec peer permctl --json conns | grep -q "\"client\":\"10.0.0.100:[0-9]*\",\"state\":\"ESTAB\",[^{]*\"ready\":true"'
touch $d/forged $d/go
wait
sleep $((3 * SLOW))
echo "# $((3 * SLOW)) s later: $(stat connections) connections, $(stat handshake_timeouts) handshakes" \
	"timed out"
check "the flood's entries go after the handshake timeout" \
	test "$(count_state SYN-SENT)" = 0 -a "$(stat handshake_timeouts)" -ge 1000

# Clients that vanish without FIN or RST.
in_owner ptcp-testapp echo-serve "[::]:87" >/dev/null 2>&1 &
owner_pid=$!
sleep 0.5
clients=
for i in 1 2 3; do
	paused_client /tmp/vanish-$i 100 ptcp-testapp echo-client 10.0.0.1:87 10 /tmp/vanish-$i
	clients="$clients $client_pid"
done
established=$(count_state ESTAB)
/bin/ip -n client link set eth0 down
kill -9 $clients 2>/dev/null
i0=$(stat idle_timeouts)
sleep $((5 * SLOW))
echo "# vanished clients: $established established, idle timeouts $i0 -> $(stat idle_timeouts)," \
	"$(count_state ESTAB) left"
check "vanished clients are forgotten after the idle timeout" \
	test "$established" -ge 3 -a "$(count_state ESTAB)" = 0 -a "$(stat idle_timeouts)" -ge $((i0 + 3))
kill -9 $owner_pid 2>/dev/null
wait
# Frames that are no TCP segment are counted as such (per-CPU counters, summed), three UDP
# datagrams exactly: nothing else on the link is UDP.
n0=$(stat not_tcp) f0=$(stat frames)
for i in 1 2 3; do
	in_attacker ptcp-testapp udp-spoof eth0 02:00:00:00:00:01 10.0.0.66:5000 10.0.0.1:5000 00
done
sleep 0.3
echo "# not TCP $n0 -> $(stat not_tcp), frames $f0 -> $(stat frames)"
check "UDP frames are counted as not TCP" \
	test "$(stat not_tcp)" -ge $((n0 + 3)) -a "$(stat frames)" -ge $((f0 + 3))
/bin/ip link del vattacker
/bin/ip netns del attacker
cluster_down
unload_module
check "kernel log clean" kernel_log_clean
ktap_finish
