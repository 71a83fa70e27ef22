#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# `make bench` in the guest: the owner's bulk throughput to the client without a snooping
# peer, with one, and with Linux conntrack tracking the same connection in the owner's
# namespace; and the peer's time per frame in its hook. Figures, not pass/fail.
. /selftests/lib.sh

BYTES=${BYTES:-30000000}
RUNS=5
insmod /lib/modules/permtcp.ko
cluster_up >/dev/null
in_peer permctl snoop stop >/dev/null

port=80
run() { # label -> prints the median MB/s of $RUNS transfers
	for i in $(seq $RUNS); do
		d=/tmp/bench-$port
		mkdir -p $d && touch $d/go
		in_owner ptcp-testapp serve 10.0.0.1:$port down:$BYTES $d &
		sleep 0.3
		in_client ptcp-testapp client 10.0.0.1:$port down:$BYTES | sed 's/.*MBps=//'
		wait
		port=$((port + 1))
		[ $port -le 90 ] || port=80
		sleep 0.2
	done | sort -n | sed -n "$(((RUNS + 1) / 2))p"
}

plain=$(run)
in_peer permctl snoop start --dev eth0 >/dev/null
snoop=$(run)
stats=$(in_peer permctl --json stats)
ns=$(echo "$stats" | sed 's/.*"hook_ns":\([0-9]*\).*/\1/')
frames=$(echo "$stats" | sed 's/.*"hook_frames":\([0-9]*\).*/\1/')
in_peer permctl snoop stop >/dev/null

ct=skipped
if command -v nft >/dev/null; then
	in_owner nft add table inet bench &&
		in_owner nft add chain inet bench pre '{ type filter hook prerouting priority 0; }' &&
		in_owner nft add chain inet bench out '{ type filter hook output priority 0; }' &&
		in_owner nft add rule inet bench pre ct state established counter &&
		in_owner nft add rule inet bench out ct state established counter &&
		ct=$(run)
	in_owner nft delete table inet bench
fi

echo "permtcp benchmark in QEMU (TCG, 2 vCPUs): bulk transfer of $BYTES bytes, owner to client, median of $RUNS"
echo "  owner throughput, no snooping peer:        $plain MB/s"
echo "  owner throughput, peer snooping:           $snoop MB/s"
echo "  owner throughput, conntrack on the owner:  $ct MB/s"
if [ "$frames" -gt 0 ]; then
	echo "  peer hook: $frames frames, $((ns / frames)) ns per frame (clock reads included)"
fi
awk -v p="$plain" -v s="$snoop" -v c="$ct" 'BEGIN {
	if (p > 0 && s > 0) printf "  throughput cost of snooping: %.1f%%\n", (p - s) / p * 100;
	if (p > 0 && c > 0) printf "  throughput cost of conntrack: %.1f%%\n", (p - c) / p * 100;
	if (p > 0 && s > 0 && c > 0 && p > c) printf "  snooping/conntrack cost ratio: %.2f\n", (p - s) / (p - c);
	else if (c > 0) printf "  conntrack cost below run-to-run noise: no ratio\n";
}'
cluster_down
rmmod permtcp
