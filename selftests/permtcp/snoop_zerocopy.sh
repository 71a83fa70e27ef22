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

ktap_plan 28

stat() { in_peer permctl --json stats | sed "s/.*\"$1\":\([0-9]*\).*/\1/"; }

# A packet socket in the peer's namespace for IPv4 alone, on device $2 or on all of them
# (dev->ptype_specific or net->ptype_specific): it wants the frames for the owner's MAC
# too, so the mirror may not take them from the stack (it holds clones). It counts the data frames it receives for another host (PACKET_OTHERHOST, more
# than 1000 bytes: the owner's, which views hold) into $1 once $1.stop appears, and writes
# $1.ready when bound.
ip_tap() { # file [device]
	in_peer python3 -c '
import os, socket, sys, time
f = sys.argv[1]
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0800))
if len(sys.argv) > 2:
    s.bind((sys.argv[2], 0x0800))
s.settimeout(0.2)
open(f + ".ready", "w").close()
n = 0
while not os.path.exists(f + ".stop"):
    try:
        b, addr = s.recvfrom(65536)
    except socket.timeout:
        continue
    if addr[2] == socket.PACKET_OTHERHOST and len(b) > 1000:
        n += 1
open(f, "w").write(str(n))
' "$@"
}

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
	PTCP_QUIET_FILE=$dir/client-quiet in_owner ptcp-testapp serve "$addr:$3" "$1:$2" "$dir" \
		2>"$dir/serve.err" &
	wait_file "$dir/listening" 10 || return 1
	PTCP_QUIET_FILE=$dir/client-quiet in_client ptcp-testapp client "$addr:$3" "$1:$2" \
		2>"$dir/client.err" &
	wait_file "$dir/state.json" 120
}

for zc in 1 0; do
	if [ $zc = 0 ] && quick; then
		ktap_skip 8 "zerocopy=0" "short form (make check): zerocopy on only; make selftests runs both"
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
	# Frames for the owner, which the IP layer drops, are the mirror's own where nothing
	# after the hook wants them: no clone for their views (Documentation/snooping.rst).
	kept=$(stat frames_kept)
	echo "# zerocopy=$zc: $kept frames kept by the mirror itself"
	if [ $zc = 1 ]; then
		check "zerocopy=$zc: frames for the owner kept by the mirror itself" test "$kept" -gt 0
	else
		check "zerocopy=$zc: no frame kept without zerocopy" test "$kept" = 0
	fi
	in_peer permctl snoop stop >/dev/null
	check "zerocopy=$zc: snooping stopped: every view released" test "$(views)" = 0
	# Each view gives back the cost it was charged: nothing is left charged to the budget.
	check "zerocopy=$zc: snooping stopped: every byte given back to the budget" \
		test "$(in_peer permctl --json stats | sed 's/.*"bytes_held":\([0-9]*\).*/\1/')" = 0
	cluster_down
	unload_module
done

# A packet socket for IPv4 wants the owner's frames, bound to the peer's eth0 or to every
# device: the mirror holds clones of them, the socket receives them all the same, and the
# mirror is still exact.
port=85
for on in eth0 all; do
	load_module
	check "packet socket for IPv4 on $on: cluster up" cluster_up
	big_frames
	tap=/tmp/zc-tap-$on
	rm -f $tap $tap.ready $tap.stop
	if [ $on = all ]; then ip_tap $tap & else ip_tap $tap $on & fi
	wait_file $tap.ready 20
	kept0=$(stat frames_kept)
	if transfer down 4000000 $port 4; then
		kept1=$(stat frames_kept)
		echo "# packet socket on $on: $(views) views held, frames kept $kept0 -> $kept1"
		check "packet socket for IPv4 on $on: views of clones, no frame kept" \
			test "$kept1" = "$kept0" -a "$(views)" -gt 0
		touch $tap.stop
		wait_file $tap 20
		oracle_read "$dir" "$owner"
		check "packet socket for IPv4 on $on: the mirror equals the owner's kernel" \
			ptcp-testapp compare "$dir"
	else
		cat "$dir"/*.err | sed 's/^/# /'
		touch "$dir/go"
		ktap_result fail "packet socket for IPv4 on $on: views of clones, no frame kept"
		ktap_result fail "packet socket for IPv4 on $on: the mirror equals the owner's kernel"
	fi
	touch $tap.stop
	wait_file $tap 20
	echo "# the packet socket on $on received $(cat $tap 2>/dev/null) data frames for another host"
	check "packet socket for IPv4 on $on: it received the owner's data frames" \
		test "$(cat $tap 2>/dev/null || echo 0)" -gt 0
	wait
	cluster_down
	unload_module
	port=$((port + 1))
done

# Unloading the module while the mirror holds views: their frames go with the table.
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
