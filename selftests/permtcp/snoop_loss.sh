#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# Loss on the snooping link (issue 11): the peer's switch port loses 10 % of the frames
# going to the peer (`ptcp-testapp lossy-relay` between the bridge and the peer's veth: the
# test kernel has no tc netem; the relay keeps each frame's checksum-offload and GSO state).
# The owner and the client lose nothing: only the peer's copy has holes. After real
# transfers (the oracle's patterns), the mirror must never hold a wrong byte, call a
# connection ready only when it has every byte up to where both ends stand, and otherwise
# say why it is not ready. Loss this heavy must leave some connection not ready.
. /selftests/lib.sh

CASES="v4-request-response:4:rr:20:300:5000
v6-request-response:6:rr:20:300:5000
v4-bulk-down:4:down:300000
v6-bulk-up:6:up:300000"

ktap_plan 9
load_module
check "cluster up, peer snooping eth0" cluster_up
# The peer's port through the relay: bridge - vrelbr=vrel - relay - vpeer=eth0 (peer).
/bin/ip link set vpeer nomaster
/bin/ip link add vrel type veth peer name vrelbr
br_port vrelbr
/bin/ip link set vrel up
# Each TCP segment it relays to the peer or drops goes to /tmp/loss-frames: a mirror that
# stands short while the port had let no frame through past it when the mirror was read
# (every data frame and every acknowledgement beyond lost) cannot know, and is not expected
# to.
ptcp-testapp lossy-relay vrel vpeer 10 7 /tmp/loss-frames >/tmp/loss-relay.out 2>&1 &
relay_pid=$!
sleep 0.3
check "the peer reaches the client through the relay" in_peer ping -c 5 -i 0.2 -W 2 10.0.0.100

# The relay forwards on its own thread, on the other CPU: frames the owner sent before its
# quiescent point may still be in it, and a frame it has sent may still wait in the peer's
# backlog (for ksoftirqd, under TCG sometimes for long). Whether the relay's log and the
# peer's mirror (its clocks aside) both stopped changing for 300 ms.
mirror_now() {
	wc -l </tmp/loss-frames
	in_peer permctl --json conns | sed -e 's/"age_ms":[0-9]*//g' -e 's/"idle_ms":[0-9]*//g'
}
mirror_settled() {
	ms_a=$(mirror_now)
	sleep 0.3
	ms_b=$(mirror_now)
	[ "$ms_a" = "$ms_b" ]
}

port=80
echo "$CASES" | while IFS=: read -r name fam kind a b c; do
	case "$kind" in
	rr) pattern="rr:$a:$b:$c" ;;
	*) pattern="$kind:$a" ;;
	esac
	if [ "$fam" = 6 ]; then addr="[fd00::1]"; else addr=10.0.0.1; fi
	dir=/tmp/loss-$name
	rm -rf "$dir"
	mkdir -p "$dir"
	in_owner ptcp-testapp serve "$addr:$port" "$pattern" "$dir" 2>"$dir/serve.err" &
	wait_file "$dir/listening" 100
	in_client ptcp-testapp client "$addr:$port" "$pattern" 2>"$dir/client.err" &
	if wait_file "$dir/state.json" 1200; then
		wait_until "the peer's mirror to settle" 50 mirror_settled
		# What the port had relayed or dropped before the mirror was read (the relay logs
		# a frame once it has sent it): later frames (the end of the exchange) do not
		# count. Taken before the read: a frame logged after it was read could count
		# against a mirror that had not seen it yet.
		head -n "$(wc -l </tmp/loss-frames)" /tmp/loss-frames >"$dir/frames"
		# Every frame of that log is in the peer's backlog at least: the mirror has taken
		# each once it settles again.
		wait_until "the peer's mirror to settle" 50 mirror_settled
		in_peer permctl --json conns >"$dir/conns.json"
		client=$(sed 's/.*"peer":"\([^"]*\)".*/\1/' "$dir/state.json")
		for side in owner client; do
			f=out
			[ $side = owner ] || f=in
			in_peer permctl conn-data --owner "$addr:$port" --client "$client" --side $side \
				--out "$dir/$f.bin" >"$dir/$f.txt" 2>&1 || : >"$dir/$f.bin"
		done
		touch "$dir/go"
		wait
		if ptcp-testapp compare --lossy "$dir" "$dir/frames" >"$dir/compare.txt" 2>&1; then
			sed 's/^/    /' "$dir/compare.txt"
			ktap_result ok "$name ($pattern): no wrong byte, ready only when complete"
		else
			sed 's/^/    /' "$dir/compare.txt"
			# Whether the mirror moved on after it was read, and what the peer refused.
			sleep 1
			echo "# the peer's mirror a second later:"
			in_peer permctl conns | sed 's/^/#   /'
			echo "# the peer's counters: $(in_peer permctl --json stats |
				grep -o '"\(frames\|matched\|invalid\|malformed\|bad_checksum\|resets\)":[0-9]*' |
				tr '\n' ' ')"
			ktap_result fail "$name ($pattern): no wrong byte, ready only when complete"
		fi
	else
		cat "$dir"/*.err | sed 's/^/# /'
		touch "$dir/go"
		kill %1 %2 2>/dev/null
		wait
		ktap_result fail "$name ($pattern): transfer finished"
	fi
	port=$((port + 1))
done >/tmp/loss.out
cat /tmp/loss.out
# The loop ran in a subshell: count its results here.
KTAP_N=$((KTAP_N + $(grep -c -E '^(not )?ok ' /tmp/loss.out)))
KTAP_FAILED=$((KTAP_FAILED + $(grep -c '^not ok ' /tmp/loss.out)))
dropped=$(grep -c '^lossy: dropped' /tmp/loss-relay.out)
echo "# the peer's port lost $dropped frames: $(tail -n 1 /tmp/loss-relay.out)"
for f in /tmp/loss-*/not-ready; do [ -e "$f" ] && echo "# $(dirname "$f"): not ready: $(cat "$f")"; done
check "the port lost frames" sh -c "[ $dropped -gt 0 ]"
check "some connection was left not ready by the loss, with its reason" sh -c \
	"cat /tmp/loss-*/not-ready 2>/dev/null | grep -q ."
kill -9 $relay_pid 2>/dev/null
wait
/bin/ip link del vrel 2>/dev/null
cluster_down
unload_module
check "kernel log clean" kernel_log_clean
ktap_finish
