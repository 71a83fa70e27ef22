#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# Netlink fuzzing (issue 11): random and mutated requests for every command of the permtcp
# family, for a bounded time (NLFUZZ_SECONDS, default 15), as root and as an unprivileged
# user, against a namespace with declarations, a snooped device and a mirrored connection.
# Every bad request gets an error; afterwards the kernel log is clean and the stored state is
# consistent (the status counts what the dumps list, the module unloads).
. /selftests/lib.sh

ktap_plan 8
# 15 s as root and 5 s as nobody; 6 s and 2 s in the short form (make check).
SECS=${NLFUZZ_SECONDS:-15}
quick && SECS=${NLFUZZ_SECONDS:-6}

consistent() {
	n=$(in_peer permctl --json status | sed -n 's/.*"declarations":\([0-9]*\).*/\1/p')
	listed=$(in_peer permctl --json decl list | grep -o '"node_id"' | wc -l)
	echo "# status: $n declarations; the dump lists $listed"
	[ -n "$n" ] && [ "$n" = "$listed" ] && in_peer permctl conns >/dev/null && in_peer permctl stats >/dev/null &&
		in_peer permctl taken >/dev/null
}

load_module
check "cluster up, a mirrored connection" cluster_up
echo_session 10.0.0.1 /tmp/nf-pause
in_peer ptcp-testapp nlfuzz $SECS 7 >/tmp/nf-root 2>&1
sed 's/^/# root: /' /tmp/nf-root
check "root: $SECS s of random and mutated requests" grep -q '^ok requests=[1-9]' /tmp/nf-root
check "root: the stored state is consistent" consistent
check "root: kernel log clean" kernel_log_clean
in_peer su -s /bin/sh nobody -c "ptcp-testapp nlfuzz $((SECS / 3)) 11" >/tmp/nf-nobody 2>&1
sed 's/^/# nobody: /' /tmp/nf-nobody
check "nobody: $((SECS / 3)) s of the same, unprivileged" grep -q '^ok requests=[1-9]' /tmp/nf-nobody
check "nobody: the stored state is consistent" consistent
check "the module unloads" sh -c 'kill -9 '"$owner_pid $client_pid"' 2>/dev/null; sleep 0.3; rmmod permtcp'
load_module
case_done "kernel log clean"
ktap_finish
