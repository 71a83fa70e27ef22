#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# Short frames: Ethernet pads a 40-byte IPv4 segment (a RST, a pure ACK or FIN without
# options) to its 60-byte minimum, and at the ingress hook skb->len still counts the padding.
# Raw frames from an AF_PACKET socket in the client's namespace (no checksum offload: the peer
# sees CHECKSUM_NONE), padded, must have their TCP checksum verified over the IP length and
# be tracked; a padded frame with a wrong checksum is still refused.
. /selftests/lib.sh

ktap_plan 9
load_module
check "cluster up, peer snooping eth0" cluster_up

stat() { /bin/ip netns exec peer permctl --json stats | sed "s/.*\"$1\":\([0-9]*\).*/\1/"; }
conn_state() { # port
	/bin/ip netns exec peer permctl --json conns | tr '{' '\n' | grep "\"owner\":\"[^\"]*:$1\"" |
		sed 's/.*"state":"\([^"]*\)".*/\1/'
}

for fam in 4 6; do
	if [ $fam = 6 ]; then addr="[fd00::1]" port=82; else addr=10.0.0.1 port=81; fi
	d=/tmp/padded-$fam
	rm -rf $d && mkdir -p $d
	PTCP_HOLD=1 in_owner ptcp-testapp serve "$addr:$port" rr:2:100:1000 $d 2>$d/serve.err &
	wait_file $d/listening 100
	in_client ptcp-testapp client "$addr:$port" rr:2:100:1000 >/dev/null 2>$d/client.err &
	wait_file $d/quiet 300
	in_peer permctl --json conns >$d/conns.json
	m0=$(stat matched) b0=$(stat bad_checksum) i0=$(stat invalid)
	# A duplicate of the client's last pure ACK, padded (IPv4: 40 + 6 bytes, a 60-byte frame).
	in_client ptcp-testapp forge eth0 02:00:00:00:00:01 $d/conns.json $port ack pad=6
	sleep 0.3
	m1=$(stat matched) b1=$(stat bad_checksum) i1=$(stat invalid)
	echo "# IPv$fam padded ACK: matched $m0 -> $m1, bad_checksum $b0 -> $b1, invalid $i0 -> $i1"
	check "IPv$fam: a padded pure ACK passes the checksum and is tracked" \
		test "$m1" -gt "$m0" -a "$b1" = "$b0" -a "$i1" = "$i0"
	in_client ptcp-testapp forge eth0 02:00:00:00:00:01 $d/conns.json $port rst pad=6 bad
	sleep 0.3
	check "IPv$fam: a padded RST with a wrong checksum is refused" \
		test "$(stat bad_checksum)" = $((b1 + 1)) -a "$(conn_state $port)" = ESTAB
	r0=$(stat resets)
	in_client ptcp-testapp forge eth0 02:00:00:00:00:01 $d/conns.json $port rst pad=6
	sleep 0.3
	echo "# IPv$fam padded RST: resets $r0 -> $(stat resets)"
	check "IPv$fam: a padded RST at the next sequence number resets the mirror" \
		test "$(stat resets)" = $((r0 + 1)) -a -z "$(conn_state $port)"
	touch $d/forged $d/go
	sleep 0.5
	kill %1 %2 2>/dev/null
	wait
done
check "no padded frame was counted as malformed" test "$(stat malformed)" = 0
cluster_down
unload_module
check "kernel log clean" kernel_log_clean
ktap_finish
