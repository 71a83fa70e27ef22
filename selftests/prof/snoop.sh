#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# The workload of scripts/tcgprof's snooping profile: the bench's bulk transfers (five of
# 30 MB, owner to client), with the peer snooping them (permtcp.prof=snoop on the guest's
# command line), conntrack tracking them in the owner's and the client's namespaces (ct),
# or neither (plain). Prints the frames the transfers took through the owner's namespace
# and the module's .text address, for report.py and compare.py.
. /selftests/lib.sh
ktap_plan 1
load_module
PORTS=80-100 cluster_up >/dev/null
in_peer permctl snoop stop >/dev/null
mode=$(sed -n 's/.*permtcp\.prof=\([a-z]*\).*/\1/p' /proc/cmdline)
[ "$mode" = snoop ] && in_peer permctl snoop start --dev eth0 >/dev/null
[ "$mode" = ct ] && conntrack_on owner client
# The frames through the owner's namespace, either way: what each conntrack sees (the
# client's sees the same), and the peer's hook too (every frame of the link once).
link_frames() {
	echo $(($(in_owner cat /sys/class/net/eth0/statistics/rx_packets) +
		$(in_owner cat /sys/class/net/eth0/statistics/tx_packets)))
}
frames0=$(link_frames)
done_=0
for i in 1 2 3 4 5; do
	port=$((80 + i)) d=/tmp/p$i
	mkdir -p $d && touch $d/go
	in_owner ptcp-testapp serve 10.0.0.1:$port down:30000000 $d &
	while [ ! -e $d/listening ]; do sleep 0.05; done
	out=$(in_client ptcp-testapp client 10.0.0.1:$port down:30000000 2>&1)
	echo "# $out"
	case $out in *MBps=*) done_=$((done_ + 1)) ;; esac
	wait
done
echo "# link frames: $(($(link_frames) - frames0))"
in_peer permctl --json stats | sed 's/^/# /'
echo "# text: $(cat /sys/module/permtcp/sections/.text)"
check "the five transfers completed" test $done_ = 5
cluster_down
