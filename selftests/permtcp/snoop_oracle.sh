#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# The oracle is the owner's own kernel: at a quiescent point of real transfers, the peer's
# mirrored sequence numbers, windows and options must equal what the owner's kernel holds for
# the same connection (read by the test server with TCP_REPAIR, as CRIU does), and the bytes
# the peer retains must be the bytes actually sent.
. /selftests/lib.sh

CASES="v4-bulk-down:4:down:1000000:
v4-bulk-up:4:up:1000000:
v4-request-response:4:rr:20:300:5000:
v6-bulk-down:6:down:1000000:
v6-bulk-up:6:up:1000000:
v6-request-response:6:rr:20:300:5000:
v4-bulk-down-no-ts-no-sack:4:down:300000:plain
v6-request-response-no-ts-no-sack:6:rr:10:100:2000:plain"

ktap_plan 10
load_module
check "cluster up, peer snooping eth0" cluster_up

wait_file() { # file seconds
	t=0
	while [ ! -e "$1" ]; do
		sleep 0.1
		t=$((t + 1))
		[ $t -lt $(($2 * 10)) ] || return 1
	done
}

port=80
echo "$CASES" | while IFS=: read -r name fam kind a b c extra; do
	case "$kind" in
	rr) pattern="rr:$a:$b:$c" ;;
	*) pattern="$kind:$a" extra=$b ;;
	esac
	[ "$kind" = rr ] || extra=$b
	if [ "$fam" = 6 ]; then addr="[fd00::1]"; else addr=10.0.0.1; fi
	dir=/tmp/oracle-$name
	rm -rf "$dir"
	mkdir -p "$dir"
	if [ "$extra" = plain ]; then
		in_client sysctl -q -w net.ipv4.tcp_timestamps=0 net.ipv4.tcp_sack=0
	fi
	# The owner's kernel is read once the client has read everything (ptcp-testapp: its
	# reads send window updates).
	PTCP_QUIET_FILE=$dir/client-quiet in_owner ptcp-testapp serve "$addr:$port" "$pattern" \
		"$dir" 2>"$dir/serve.err" &
	wait_file "$dir/listening" 10
	PTCP_QUIET_FILE=$dir/client-quiet in_client ptcp-testapp client "$addr:$port" "$pattern" \
		2>"$dir/client.err" &
	if wait_file "$dir/state.json" 120; then
		oracle_read "$dir" "$addr:$port"
		if ptcp-testapp compare "$dir" >"$dir/compare.txt" 2>&1; then
			sed 's/^/    /' "$dir/compare.txt"
			ktap_result ok "$name ($pattern): mirror equals the owner's kernel"
		else
			sed 's/^/    /' "$dir/compare.txt"
			ktap_result fail "$name ($pattern): mirror equals the owner's kernel"
		fi
	else
		cat "$dir"/*.err | sed 's/^/# /'
		touch "$dir/go"
		kill %1 %2 2>/dev/null
		wait
		ktap_result fail "$name ($pattern): transfer finished"
	fi
	if [ "$extra" = plain ]; then
		in_client sysctl -q -w net.ipv4.tcp_timestamps=1 net.ipv4.tcp_sack=1
	fi
	port=$((port + 1))
done > /tmp/oracle.out
cat /tmp/oracle.out
# The loop ran in a subshell: count its results here.
KTAP_N=$(grep -c -E '^(not )?ok ' /tmp/oracle.out)
KTAP_N=$((KTAP_N + 1))
KTAP_FAILED=$(grep -c '^not ok ' /tmp/oracle.out)
check "no segment was refused as invalid or malformed" sh -c \
	'/bin/ip netns exec peer permctl --json stats | grep -q "\"malformed\":0,\"bad_checksum\":0,.*\"invalid\":0,"'
cluster_down
unload_module
ktap_finish
