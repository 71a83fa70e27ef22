# SPDX-License-Identifier: GPL-2.0
#
# Helpers for permtcp's kselftest-style scripts, sourced inside the QEMU guest.
# Output is KTAP: each script prints its header and plan, then one result line per case.

# Debian's static busybox prefers its own applets over PATH: make `ip` mean iproute2's.
ip() { /bin/ip "$@"; }

KTAP_N=0
KTAP_FAILED=0
MOD=/lib/modules/permtcp.ko

ktap_plan() {
	echo "KTAP version 1"
	echo "1..$1"
}

ktap_result() { # status description
	KTAP_N=$((KTAP_N + 1))
	if [ "$1" = ok ]; then
		echo "ok $KTAP_N $2"
	else
		echo "not ok $KTAP_N $2"
		KTAP_FAILED=$((KTAP_FAILED + 1))
	fi
}

# check DESCRIPTION CMD...: the case passes when CMD exits 0.
check() {
	desc=$1
	shift
	if out=$("$@" 2>&1); then
		ktap_result ok "$desc"
	else
		echo "# command failed: $*"
		echo "$out" | sed 's/^/#   /'
		ktap_result fail "$desc"
	fi
}

# check_fails DESCRIPTION EXIT PATTERN CMD...: CMD must exit with EXIT and print PATTERN.
check_fails() {
	desc=$1 want=$2 pattern=$3
	shift 3
	out=$("$@" 2>&1)
	rc=$?
	if [ "$rc" = "$want" ] && echo "$out" | grep -q -- "$pattern"; then
		ktap_result ok "$desc"
	else
		echo "# expected exit $want and '$pattern' from: $*"
		echo "# got exit $rc:"
		echo "$out" | sed 's/^/#   /'
		ktap_result fail "$desc"
	fi
}

# Exit status of a script: non-zero when a case failed or the plan was not met.
ktap_finish() {
	[ "$KTAP_FAILED" = 0 ]
	exit $?
}

# Fails when the kernel log shows a warning, oops or refcount/list corruption report.
kernel_log_clean() {
	! dmesg | grep -E -q 'WARNING:|BUG:|Oops|Call Trace|refcount_t:|list_(add|del) corruption|general protection'
}

load_module() {
	insmod "$MOD"
}

unload_module() {
	rmmod permtcp
}

module_loaded() {
	grep -q '^permtcp ' /proc/modules
}

# Canonical sample declaration for node $1 (addresses derived from the node id).
add_decl() { # node [extra args...]
	n=$1
	shift
	permctl decl add --node "$n" --addr "192.0.2.$n" --addr "2001:db8::$n" \
		--mac "$(printf "02:00:00:00:00:%02x" "$n")" --ports 80 --ports 8000-8999 --app "svc$n" "$@"
}
