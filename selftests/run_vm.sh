#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# Boot the permtcp test kernel in QEMU with a minimal busybox initramfs and run the
# kselftest-style scripts (or the demo) inside it.
#
#   selftests/run_vm.sh [--demo] [--timeout SECONDS] [script.sh ...]
#
# Prints the guest's KTAP, then a summary; exits non-zero when a test fails, the guest
# crashes or the run times out.  Environment: KDIR (kernel build tree, default: the cached
# test kernel), MODULE (permtcp.ko built for it), PERMTCP_KVM (auto|0|1, default auto: KVM
# only when a probe boot works), PERMTCP_VM_MEM (guest MB, default 1024), PERMTCP_VM_CPU (the TCG
# guest's -cpu, default max,-fsrm,-erms: see vm_cpu in vm.sh; KVM runs -cpu host), PERMTCP_CONNS
# (connection counts for takeover_many.sh and the bench's takeover part),
# PERMTCP_HANDOFF_CONNS (comma-separated connection counts of handoff.sh's IPv4 case),
# PERMTCP_SCRIPT_TIMEOUT (seconds one script may run in the guest, default 300),
# PERMTCP_QUICK (1: the short form `make check` runs, some parts on one address family),
# PERMTCP_VM_QEMU_ARGS (more QEMU arguments, split on spaces: scripts/tcgprof's plugin).
set -euo pipefail
. "$(dirname "$0")/../scripts/common.sh"
# shellcheck source=vm.sh
. "$(dirname "$0")/vm.sh"

mode=selftests
vm_timeout=1500
tests=()
while [ $# -gt 0 ]; do
	case "$1" in
	--demo) mode=demo ;;
	--bench) mode=bench ;;
	--timeout) vm_timeout=$2; shift ;;
	-*) die "unknown option $1" ;;
	*) tests+=("$1") ;;
	esac
	shift
done

vm_inputs

# One directory per kernel build and run, so that runs for different kernels (make
# check-debug next to make check), or two runs at once, share no initramfs and no log; the
# last run's stays in target/vm/<kernel>/last.
base=$PERMTCP_ROOT/target/vm${KDIR:+/$(basename "$KDIR")}
work=$base/run.$$
rm -rf "$work"
mkdir -p "$work"
trap 'rm -rf "$base/last"; mv "$work" "$base/last" 2>/dev/null || true' EXIT
# The selftests get Python and the kernel's YNL client too, for ynl.sh; they and the demo
# get the unmodified Debian servers and clients; the selftests ocf-tester and the OCF agents,
# and keepalived.
case $mode in
selftests) build_initramfs "$work" python servers ocf keepalived ;;
demo) build_initramfs "$work" servers ;;
*) build_initramfs "$work" ;;
esac

qemu() { # accel mode timeout log
	local cmdline="console=ttyS0 quiet loglevel=3 panic=-1 oops=panic"
	cmdline+=" permtcp.mode=$2 permtcp.timeout=${PERMTCP_SCRIPT_TIMEOUT:-300}"
	[ ${#tests[@]} -eq 0 ] || cmdline+=" permtcp.tests=$(IFS=,; echo "${tests[*]}")"
	[ -z "${PERMTCP_CONNS:-}" ] || cmdline+=" permtcp.conns=$PERMTCP_CONNS"
	[ -z "${PERMTCP_HANDOFF_CONNS:-}" ] || cmdline+=" permtcp.handoff=$PERMTCP_HANDOFF_CONNS"
	[ "${PERMTCP_QUICK:-0}" = 0 ] || cmdline+=" permtcp.quick=1"
	# Extra kernel parameters (e.g. cgroup_disable=memory to compare a run without memcg).
	[ -z "${PERMTCP_VM_APPEND:-}" ] || cmdline+=" $PERMTCP_VM_APPEND"
	local cpu
	cpu=$(vm_cpu "$1")
	# Under TCG the kernel distrusts QEMU's TSC and falls back to refined-jiffies: every
	# timing in the guest would have a 4 ms resolution. QEMU's TSC follows the host clock.
	[ "$1" = kvm ] || cmdline+=" clocksource=tsc tsc=reliable"
	cmdline+=$(vm_tcg_append "$1")
	timeout --foreground "$3" qemu-system-x86_64 -accel "$1" -cpu "$cpu" -m "${PERMTCP_VM_MEM:-1024}" -smp 2 \
		-nographic -no-reboot -nic none -kernel "$bzimage" -initrd "$work/initramfs.cpio" \
		-append "$cmdline" ${PERMTCP_VM_QEMU_ARGS:-} </dev/null 2>&1 | sed -u 's/\r$//' |
		sed -u -e 's/\x1bc//g' -e 's/\x1b\[[?0-9;]*[a-zA-Z]//g' | tee "$4"
}

accel=$(vm_accel "$work")
log=$work/$mode.log
log "booting $(basename "$bzimage") ($(kernel_version)) under ${accel^^}, mode $mode"
start=$(date +%s)
set +e
qemu "$accel" "$mode" "$vm_timeout" "$log" | grep -v -e '^PERMTCP-DONE' -e '^SeaBIOS' -e '^Booting from' \
	-e 'iPXE' -e '^\s*$' -E -e '^\[ *[0-9]+\.[0-9]+\]'
set -e
elapsed=$(($(date +%s) - start))

if ! grep -q '^PERMTCP-DONE rc=' "$log"; then
	log "FAIL: the guest did not finish (crash or timeout after ${elapsed}s); log: $log"
	grep -E -A3 'panicked at|Kernel panic|BUG:|Oops|WARNING:' "$log" | head -n 20 >&2
	exit 1
fi
guest_rc=$(sed -n 's/^PERMTCP-DONE rc=\([0-9]*\).*/\1/p' "$log")

if [ "$mode" = selftests ]; then
	# Case lines of the scripts ("# ok N ...") and of KUnit ("# # kunit:     ok N ...").
	st_pass=$(grep -E '^# ok [0-9]+ ' "$log" | grep -c -v ' # SKIP ' || true)
	st_skip=$(grep -E '^# ok [0-9]+ ' "$log" | grep -c ' # SKIP ' || true)
	st_fail=$(grep -c -E '^# not ok [0-9]+ ' "$log" || true)
	ku_pass=$(grep -c -E '^# # kunit:     ok [0-9]+ ' "$log" || true)
	ku_fail=$(grep -c -E '^# # kunit:     not ok [0-9]+ ' "$log" || true)
	scripts=$(grep -c -E '^(not )?ok [0-9]+ selftests: ' "$log" || true)
	# A script that failed outside its cases (did not start, missed its plan) counts too.
	scripts_failed=$(grep -c -E '^not ok [0-9]+ selftests: ' "$log" || true)
	planned=$(sed -n 's/^1\.\.\([0-9]*\)$/\1/p' "$log" | head -n1)
	echo "kunit: $ku_pass passed, $ku_fail failed"
	echo "selftests: $st_pass passed, $st_fail failed, $st_skip skipped ($scripts of ${planned:-?} scripts ran, $scripts_failed failed, ${elapsed}s under ${accel^^})"
	[ "$scripts_failed" = 0 ] || guest_rc=1
	[ "$scripts" = "$planned" ] || guest_rc=1
	[ "$st_fail" = 0 ] && [ "$ku_fail" = 0 ] || guest_rc=1
	[ "$ku_pass" -gt 0 ] || { [ ${#tests[@]} -gt 0 ] || guest_rc=1; }
fi
exit "$guest_rc"
