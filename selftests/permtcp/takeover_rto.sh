#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# A segment lost right after a takeover is repaired in RTT time, not after the 3 s timeout
# of a socket without an RTT sample: the rebuilt socket's RTT estimator is seeded with the
# mirror's estimate of the owner's RTT (logic/rtt.rs). The client drops the first data
# segment the peer sends it (nft: the first one per connection longer than 500 bytes, the
# answer to its first request after the takeover); the round must still take < 1 s (the
# restarted application's offset lookup included).
. /selftests/lib.sh

ktap_plan 7
load_module
check "cluster up, peer snooping eth0" cluster_up
in_peer ptcp-testapp echo-serve "[::]:80" --resume &
peer_pid=$!
echo_session 10.0.0.1 /tmp/rto
in_peer permctl conns | sed 's/^/# /'
crash_owner $owner_pid
dropping=no
if command -v nft >/dev/null &&
	in_client nft -f - <<'NFT'
table inet loss {
	set seen { type inet_service; }
	chain in {
		type filter hook input priority 0;
		ip saddr 10.0.0.1 tcp sport 80 meta length > 500 tcp dport @seen accept
		ip saddr 10.0.0.1 tcp sport 80 meta length > 500 add @seen { tcp dport } counter drop
	}
}
NFT
then
	dropping=yes
fi
check "takeover of node 1" sh -c \
	'/bin/ip netns exec peer permctl --json takeover --node 1 | tee /dev/stderr | grep -q "\"taken\":1"'
# The seeded timeout, before any of the rebuilt socket's data was acknowledged.
sk=$(in_peer ss -tin state established '( sport = :80 )' 2>/dev/null | tr -s ' \t' ' ')
echo "# peer socket:$sk"
rto=$(echo "$sk" | sed -n 's/.* rto:\([0-9.]*\).*/\1/p' | cut -d. -f1)
check "the rebuilt socket's RTO is seeded (${rto:-?} ms, not 3000)" test "${rto:-3000}" -lt 1000
touch /tmp/rto
wait $client_pid
client_rc=$?
sed 's/^/# client: /' /tmp/rto.out
[ $client_rc = 0 ] && ktap_result ok "the client finished every round with the right bytes" ||
	ktap_result fail "the client finished every round with the right bytes"
worst=$(sed -n 's/.*worst_round_ms=\([0-9]*\).*/\1/p' /tmp/rto.out)
if [ $dropping = yes ]; then
	in_client nft list table inet loss | grep counter | sed 's/^[[:space:]]*/# nft: /'
	check "the first segment after the takeover was dropped" sh -c \
		"/bin/ip netns exec client nft list table inet loss | grep -q 'counter packets 1 '"
	check "the lost segment was repaired in < 1 s (slowest round ${worst:-?} ms)" \
		test "${worst:-99999}" -lt 1000
else
	ktap_result "ok" "# SKIP no nft: the first segment after the takeover was dropped"
	ktap_result "ok" "# SKIP no nft: the lost segment was repaired in < 1 s"
fi
echo "# rto_after_takeover_ms=${rto:-?} slowest_round_ms=${worst:-?} dropped=$dropping"
case_done "kernel log clean" $peer_pid
ktap_finish
