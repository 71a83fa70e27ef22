#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# The peer mirrors the owner's connections on the shared link: start/stop, what is and is
# not tracked, counters, errors.
. /selftests/lib.sh

ktap_plan 17
load_module
check "cluster up, peer snooping eth0" cluster_up
check_fails "a second start is refused" 1 "already snooping" in_peer permctl snoop start --dev eth0
check_fails "unknown device" 2 "no network device" in_peer permctl snoop start --dev nosuch0
check_fails "unprivileged start refused" 1 "Operation not permitted" \
	in_peer su -s /bin/sh nobody -c "permctl snoop stop"

mkdir -p /tmp/basic && touch /tmp/basic/go
in_owner ptcp-testapp serve 10.0.0.1:80 down:20000 /tmp/basic &
sleep 1
check "client fetches 20000 bytes from the owner" in_client ptcp-testapp client 10.0.0.1:80 down:20000
wait
in_peer permctl conns | sed 's/^/# /'
check "the peer mirrored the connection from its SYN" sh -c \
	'/bin/ip netns exec peer permctl --json conns | grep -q "\"owner\":\"10.0.0.1:80\""'
# 20000 bytes of pattern and the test's one closing byte.
check "the owner's 20001 bytes were seen" sh -c \
	'/bin/ip netns exec peer permctl --json conns | grep -q "\"bytes\":20001"'
check "counters: frames matched, connection synced" sh -c \
	'/bin/ip netns exec peer permctl --json stats | grep -q "\"conns_from_syn\":1,"'
# Traffic of a port outside the declared ranges is not tracked.
in_owner sh -c 'echo hi | nc -l -p 443 > /dev/null' &
sleep 1
in_client nc -w 2 10.0.0.1 443 </dev/null >/dev/null
wait
check "other ports are not tracked" sh -c \
	'[ "$(/bin/ip netns exec peer permctl --json stats | sed "s/.*\"connections\":\([0-9]*\).*/\1/")" = 1 ]'
# Raw frames (CHECKSUM_NONE at the peer): the TCP checksum is verified there.
in_client ptcp-testapp syn eth0 02:00:00:00:00:01 10.0.0.100:50001 10.0.0.1:81 bad
check "a SYN with a bad TCP checksum is counted and not tracked" sh -c \
	'/bin/ip netns exec peer permctl --json stats | grep -q "\"bad_checksum\":1,.*\"conns_from_syn\":1,"'
in_client ptcp-testapp syn eth0 02:00:00:00:00:01 10.0.0.100:50002 10.0.0.1:81 good
check "the same SYN with a good checksum is tracked" sh -c \
	'/bin/ip netns exec peer permctl --json stats | grep -q "\"bad_checksum\":1,.*\"conns_from_syn\":2,"'
# The C hook's own count (per CPU, summed) is of the same frames as the mirror's: equal
# once no frame is between the two (a frame counts in the mirror first; read again then).
hook_counts_match() {
	for _ in 1 2 3 4 5; do
		st=$(/bin/ip netns exec peer permctl --json stats)
		f=$(echo "$st" | sed 's/.*"frames":\([0-9]*\).*/\1/')
		h=$(echo "$st" | sed 's/.*"hook_frames":\([0-9]*\).*/\1/')
		[ "$h" -gt 0 ] && [ "$h" = "$f" ] && return 0
		sleep 0.2
	done
	echo "# hook_frames $h, frames $f"
	return 1
}
check "the hook counted the frames the mirror saw" hook_counts_match
# Its time only with the hook_timing parameter (benchmarks): no clock read per frame else.
check "the hook is not timed by default" sh -c \
	'/bin/ip netns exec peer permctl --json stats | grep -q "\"hook_ns\":0,"'
echo 1 >/sys/module/permtcp/parameters/hook_timing
in_client ptcp-testapp syn eth0 02:00:00:00:00:01 10.0.0.100:50003 10.0.0.1:81 good
echo 0 >/sys/module/permtcp/parameters/hook_timing
check "with hook_timing, the hook's time is counted" sh -c \
	'/bin/ip netns exec peer permctl --json stats | grep -q "\"hook_ns\":[1-9]"'
check "stop" in_peer permctl snoop stop
check "stopped: no connections, no device" sh -c \
	'/bin/ip netns exec peer permctl --json stats | grep -q "\"device_ifindex\":0,\"connections\":0,"'
cluster_down
unload_module
check "kernel log clean" kernel_log_clean
ktap_finish
