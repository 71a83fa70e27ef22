#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# One direction overtaking the other on the link (issue #11): on a bridge the owner's and the
# client's frames reach the peer through different ports, so the peer can see data before
# the window update that let it through, or an acknowledgement before the data. Raw frames
# (ptcp-testapp forge, to a MAC nobody has: only the peer takes them) against a quiet
# connection, IPv4 and IPv6:
#  - owner data up to four segments past one of the client's largest windows past its
#    acknowledgement, then the client's ACK of it all: the mirror keeps it all, stays ready;
#  - client data acknowledging 1000 owner bytes not seen yet: kept, the connection not ready
#    ("acknowledged data not seen yet"); the owner's bytes come: ready, the ACK taken.
. /selftests/lib.sh

ktap_plan 12
load_module
check "cluster up, peer snooping eth0" cluster_up

stat() { /bin/ip netns exec peer permctl --json stats | sed "s/.*\"$1\":\([0-9]*\).*/\1/"; }
nowhere=02:00:00:00:00:77

for fam in 4 6; do
	if [ $fam = 6 ]; then addr="[fd00::1]" port=88; else addr=10.0.0.1 port=89; fi
	d=/tmp/reorder-$fam
	rm -rf $d && mkdir -p $d
	PTCP_HOLD=1 in_owner ptcp-testapp serve "$addr:$port" rr:3:200:3000 $d 2>$d/serve.err &
	wait_file $d/listening 100
	in_client ptcp-testapp client "$addr:$port" rr:3:200:3000 >/dev/null 2>$d/client.err &
	wait_file $d/quiet 300
	conn="[c for c in d if c['owner'].endswith(':$port')][0]"

	in_peer permctl --json conns >$d/before.json
	i0=$(stat invalid)
	out=$(in_client ptcp-testapp forge eth0 $nowhere $d/before.json $port window-race)
	echo "# IPv$fam window race: $out"
	nxt=${out#owner_nxt=}
	nxt=${nxt%% *}
	sleep 0.3
	check_json "IPv$fam: owner data past the edge seen, before the window update, is kept" \
		"${conn}['owner_sent']['snd_nxt'] == $nxt and ${conn}['owner_sent']['snd_una'] == $nxt" \
		in_peer permctl --json conns
	check "IPv$fam: none of it was refused" test "$(stat invalid)" = "$i0"
	check_json "IPv$fam: the connection is ready" "${conn}['ready']" in_peer permctl --json conns

	in_peer permctl --json conns >$d/mid.json
	out=$(in_client ptcp-testapp forge eth0 $nowhere $d/mid.json $port ack-ahead)
	echo "# IPv$fam acknowledgement ahead: $out"
	cnxt=${out#client_nxt=}
	cnxt=${cnxt%% *}
	ack=${out#*owner_ack=}
	sleep 0.3
	check_json "IPv$fam: client data acknowledging owner data not seen yet: kept, not ready" \
		"${conn}['client_sent']['snd_nxt'] == $cnxt and not ${conn}['ready'] and \
${conn}['not_ready'] == 'acknowledged data not seen yet (owner data)'" \
		in_peer permctl --json conns
	in_peer permctl --json conns >$d/ahead.json
	out=$(in_client ptcp-testapp forge eth0 $nowhere $d/ahead.json $port owner-data)
	echo "# IPv$fam the owner's data: $out"
	sleep 0.3
	check_json "IPv$fam: the owner's data comes: ready, the acknowledgement taken" \
		"${conn}['ready'] and ${conn}['owner_sent']['snd_una'] == $ack and \
${conn}['owner_sent']['snd_nxt'] == $ack" \
		in_peer permctl --json conns
	echo "# invalid $i0 -> $(stat invalid)"

	touch $d/forged $d/go
	sleep 0.5
	kill %1 %2 2>/dev/null
	wait
done
cluster_down
unload_module
check "kernel log clean" kernel_log_clean
ktap_finish
