#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# `make bench` in the guest: the owner's bulk throughput to the client without a snooping
# peer, with one, and with Linux conntrack tracking the same connection in the owner's
# namespace; the CPU time each costs per frame on the link (from /proc/stat, all CPUs), and
# the peer's time per frame inside its hook. Figures, not pass/fail.
. /selftests/lib.sh

BYTES=${BYTES:-30000000}
RUNS=5
insmod /lib/modules/permtcp.ko
cluster_up >/dev/null
in_peer permctl snoop stop >/dev/null

busy() { # CPU ticks not idle, all CPUs
	awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 }' /proc/stat
}

port=80
run() { # -> "median-MB/s mean-busy-ticks"
	for i in $(seq $RUNS); do
		d=/tmp/bench-$port
		mkdir -p $d && touch $d/go
		in_owner ptcp-testapp serve 10.0.0.1:$port down:$BYTES $d &
		sleep 0.3
		b0=$(busy)
		mbps=$(in_client ptcp-testapp client 10.0.0.1:$port down:$BYTES | sed 's/.*MBps=//')
		b1=$(busy)
		wait
		echo "$mbps $((b1 - b0))"
		port=$((port + 1))
		[ $port -le 90 ] || port=80
		sleep 0.2
	done | sort -n | awk -v n=$RUNS '{ m[NR] = $1; t += $2 } END { printf "%s %.1f\n", m[int((n + 1) / 2)], t / n }'
}

set -- $(run)
plain=$1 plain_t=$2
in_peer permctl snoop start --dev eth0 >/dev/null
set -- $(run)
snoop=$1 snoop_t=$2
stats=$(in_peer permctl --json stats)
ns=$(echo "$stats" | sed 's/.*"hook_ns":\([0-9]*\).*/\1/')
frames=$(echo "$stats" | sed 's/.*"hook_frames":\([0-9]*\).*/\1/')
in_peer permctl snoop stop >/dev/null

ct=0 ct_t=0
if command -v nft >/dev/null; then
	in_owner nft add table inet bench &&
		in_owner nft add chain inet bench pre '{ type filter hook prerouting priority 0; }' &&
		in_owner nft add chain inet bench out '{ type filter hook output priority 0; }' &&
		in_owner nft add rule inet bench pre ct state established counter &&
		in_owner nft add rule inet bench out ct state established counter &&
		set -- $(run) && ct=$1 ct_t=$2
	in_owner nft delete table inet bench
fi

echo "permtcp benchmark in QEMU (TCG, 2 vCPUs): bulk transfer of $BYTES bytes, owner to client,"
echo "$RUNS runs each; throughput is the median, CPU time the mean (ticks of 10 ms, all CPUs)"
printf '  %-34s %8s MB/s  %6s ticks\n' "no snooping peer" "$plain" "$plain_t"
printf '  %-34s %8s MB/s  %6s ticks\n' "peer snooping" "$snoop" "$snoop_t"
printf '  %-34s %8s MB/s  %6s ticks\n' "conntrack on the owner" "$ct" "$ct_t"
awk -v pt="$plain_t" -v st="$snoop_t" -v ct="$ct_t" -v ns="$ns" -v fr="$frames" -v runs=$RUNS 'BEGIN {
	if (fr == 0) exit;
	per = fr / runs;
	printf "  frames on the link per transfer: %d (GSO/GRO super-packets)\n", per;
	printf "  peer hook, measured inside:      %d ns per frame (clock reads included)\n", ns / fr;
	s = (st - pt) * 10e6 / per; printf "  snooping, from CPU time:         %d ns per frame\n", s;
	if (ct > 0) { c = (ct - pt) * 10e6 / per; printf "  conntrack, from CPU time:        %d ns per frame\n", c;
		if (c > 0) printf "  snooping/conntrack ratio:        %.2f\n", s / c;
		else printf "  conntrack cost below the noise of this measurement: no ratio\n"; }
}'
cluster_down
rmmod permtcp
