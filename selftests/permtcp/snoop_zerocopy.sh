#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# Zero-copy retention (Documentation/snooping.rst, "Zero-copy retention"): a bulk transfer
# over veth reaches the peer as GSO frames of up to 64 KB; with permtcp.zerocopy (the
# default) the missing piece of such a frame is one view of it, without it copies. Either
# way the retained bytes equal the stream (ptcp-testapp compare: the owner's kernel is the
# oracle), views are counted while held and all released when snooping stops (the budget
# back at 0 bytes), and the
# module unloads with views held (kernel log clean; kmemleak on the sanitizer kernel).
. /selftests/lib.sh

# The owner's GSO frames are sized by its pacing rate (tcp_tso_autosize(): about a
# millisecond of data, at least tcp_min_tso_segs segments). On a sanitizer kernel under TCG
# a transfer runs at well under 1 MB/s, and its frames would be two segments, too small to
# cover a chunk: the owner and the client (the sender of the upload) are made to send up to
# 44 segments a frame at any rate.
big_frames() {
	for ns in owner client; do
		/bin/ip netns exec $ns sh -c 'echo 44 >/proc/sys/net/ipv4/tcp_min_tso_segs'
	done
}

ktap_plan 18

wait_file() { # file seconds
	t=0
	while [ ! -e "$1" ]; do
		sleep 0.1
		t=$((t + 1))
		[ $t -lt $(($2 * 10 * SLOW)) ] || return 1
	done
}

views() { in_peer permctl --json stats | sed 's/.*"views":\([0-9]*\).*/\1/'; }

# A bulk transfer of $2 bytes ($1: down or up) to the owner's port $3 over IPv$4, paused
# at its quiescent point (the server waits for $dir/go); sets dir.
transfer() { # down|up bytes port family
	if [ "$4" = 6 ]; then addr="[fd00::1]"; else addr=10.0.0.1; fi
	dir=/tmp/zc-$1-$3
	owner=$addr:$3
	rm -rf "$dir"
	mkdir -p "$dir"
	in_owner ptcp-testapp serve "$addr:$3" "$1:$2" "$dir" 2>"$dir/serve.err" &
	wait_file "$dir/listening" 10 || return 1
	in_client ptcp-testapp client "$addr:$3" "$1:$2" 2>"$dir/client.err" &
	wait_file "$dir/state.json" 120
}

for zc in 1 0; do
	if [ $zc = 0 ] && quick; then
		ktap_skip 7 "zerocopy=0" "short form (make check): zerocopy on only; make selftests runs both"
		continue
	fi
	load_module
	echo $zc >/sys/module/permtcp/parameters/zerocopy
	check "zerocopy=$zc: cluster up, peer snooping eth0" cluster_up
	big_frames
	port=80
	for kind in down up; do
		fam=4
		[ $kind = up ] && fam=6
		if transfer $kind 4000000 $port $fam; then
			v=$(views)
			echo "# zerocopy=$zc $kind IPv$fam: $v views held at the quiescent point, $(in_peer permctl --json stats | sed 's/.*"bytes_held":\([0-9]*\).*/\1/') bytes held"
			if [ $zc = 1 ]; then
				check "zerocopy=$zc: $kind, IPv$fam: the retained window is held by reference" \
					test "$v" -gt 0
			else
				check "zerocopy=$zc: $kind, IPv$fam: no view without zerocopy" test "$v" = 0
			fi
			oracle_read "$dir" "$owner"
			check "zerocopy=$zc: $kind, IPv$fam: the mirror equals the owner's kernel" \
				ptcp-testapp compare "$dir"
		else
			cat "$dir"/*.err | sed 's/^/# /'
			touch "$dir/go"
			ktap_result fail "zerocopy=$zc: $kind, IPv$fam: the retained window is held by reference"
			ktap_result fail "zerocopy=$zc: $kind, IPv$fam: the mirror equals the owner's kernel"
		fi
		port=$((port + 1))
	done
	in_peer permctl snoop stop >/dev/null
	check "zerocopy=$zc: snooping stopped: every view released" test "$(views)" = 0
	# Each view gives back the cost it was charged: nothing is left charged to the budget.
	check "zerocopy=$zc: snooping stopped: every byte given back to the budget" \
		test "$(in_peer permctl --json stats | sed 's/.*"bytes_held":\([0-9]*\).*/\1/')" = 0
	cluster_down
	unload_module
done

# Unloading the module while the mirror holds views: their clones go with the table.
load_module
check "rmmod with views held: cluster up" cluster_up
big_frames
transfer down 4000000 90 4
v=$(views)
echo "# $v views held"
check "rmmod with views held: views held" test "$v" -gt 0
check "rmmod with views held: the module unloads" unload_module
touch "$dir/go"
wait
cluster_down
check "kernel log clean" kernel_log_clean
ktap_finish
