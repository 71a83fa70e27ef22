#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# Every permtcp test, in order: lint (rustfmt, clippy for the host crates and the module),
# the YAML netlink spec against the kernel's schema, cargo test (host logic and permctl), the
# module build, then KUnit and the short form of the kselftest-style suites in QEMU, and the
# short form of the multi-VM tier (one IPv4 kill -9 case, permtcpd taking over).  Prints a count per kind and a total; exits non-zero
# on any failure.
#
#   scripts/check.sh [--lint-only]
set -uo pipefail
. "$(dirname "$0")/common.sh"
cd "$PERMTCP_ROOT"

KDIR=${KDIR:-$(bash scripts/kdir.sh)}
[ -n "$KDIR" ] || die "no test kernel: run 'make setup'"
out=$PERMTCP_ROOT/target/check
mkdir -p "$out"
failed=()
summary=()

step() { # name command...
	local name=$1 t0=$SECONDS
	shift
	log "== $name"
	if "$@"; then
		summary+=("$name: ok ($((SECONDS - t0)) s)")
	else
		summary+=("$name: FAILED ($((SECONDS - t0)) s)")
		failed+=("$name")
	fi
}

lint() {
	bash scripts/unsafe-lint.sh &&
		python3 scripts/import-cycles.py tools/*/src &&
		bash scripts/ocf-lint.sh &&
		cargo fmt --all --check &&
		rustfmt --check --edition 2021 permtcp.rs &&
		cargo clippy --locked --all-targets -q -- -D warnings &&
		# Kbuild's clippy run over the module's crate; any warning fails the lint.
		make -s -C "$KDIR" M="$PERMTCP_ROOT" CLIPPY=1 modules 2>&1 | tee "$out/clippy-module.log" &&
		! grep -q -E '^(warning|error)' "$out/clippy-module.log"
}

step lint lint
step "netlink spec (schema)" bash scripts/check-spec.sh
if [ "${1:-}" = --lint-only ]; then
	printf '%s\n' "${summary[@]}"
	[ ${#failed[@]} -eq 0 ]
	exit
fi

cargo_tests() {
	cargo test --locked --workspace 2>&1 | tee "$out/cargo-test.log"
	local rc=${PIPESTATUS[0]}
	cargo_pass=$(awk '/^test result:/ {s += $4} END {print s + 0}' "$out/cargo-test.log")
	cargo_fail=$(awk '/^test result:/ {s += $6} END {print s + 0}' "$out/cargo-test.log")
	return "$rc"
}
cargo_pass=0
cargo_fail=0
step "cargo test" cargo_tests

step "fuzz (bounded run)" bash scripts/fuzz.sh "${PERMTCP_FUZZ_SECONDS:-20}"

build() {
	make -s -C "$KDIR" M="$PERMTCP_ROOT" modules 2>&1 | tee "$out/build.log" &&
		! grep -q -E '^(warning|error)|: warning:' "$out/build.log" &&
		cargo build --locked --release -q -p permctl -p permtcpd -p ptcp-testapp &&
		# make install-ocf/install-dkms staged; dkms builds the module; modinfo.
		bash scripts/install-check.sh "$KDIR"
}
step "module and permctl build" build

# The selftests' short form: the parts that run on both address families run on one
# (alternating), fewer rounds of the concurrency script, no plain-keepalived control; `make
# selftests` runs them all.
vm() {
	PERMTCP_QUICK=1 bash selftests/run_vm.sh 2>&1 | tee "$out/selftests.log"
	return "${PIPESTATUS[0]}"
}
step "QEMU: KUnit and selftests" vm

# The owner as its own VM, killed with kill -9 mid-session; the peers' permtcpd take over
# (selftests/cluster/run.sh).
cluster() {
	bash selftests/cluster/run.sh --short 2>&1 | tee "$out/cluster.log"
	return "${PIPESTATUS[0]}"
}
step "QEMU: multi-VM cluster (short)" cluster

count() { # kind field log
	sed -n "s/^$1: \([0-9]*\) passed, \([0-9]*\) failed.*/\\$2/p" "$out/${3:-selftests}.log" | tail -n1
}
ku_pass=$(count kunit 1) ku_fail=$(count kunit 2)
st_pass=$(count selftests 1) st_fail=$(count selftests 2)
st_skip=$(sed -n 's/^selftests: .* failed, \([0-9]*\) skipped.*/\1/p' "$out/selftests.log" | tail -n1)
cl_pass=$(count cluster 1 cluster) cl_fail=$(count cluster 2 cluster)

# Each failed test with the lines its script printed before it (its diagnostics), so that
# the end of the output, which is all some CI systems keep, says what failed and why.
not_ok() { # log...
	awk -v ctx=40 -v after=6 '
		FNR == 1 { n = 0; left = 0; name = "" }
		/^(# )*(selftests: |\[ *[0-9.]+s\] case )/ { n = 0; name = $0; sub(/^(# )*/, "", name) }
		left > 0 { print "    " $0; left--; next }
		/^(# )*not ok / {
			printf "---- %s, line %d (%s):\n", FILENAME, FNR, name
			for (i = (n > ctx ? n - ctx : 0); i < n; i++) print "    " buf[i % ctx]
			print ">>> " $0
			n = 0; left = after; next
		}
		{ buf[n % ctx] = $0; n++ }
	' "$@" 2>/dev/null
}
# A failed step's digest: its failed tests, or the end of its log where none says "not ok"
# (a VM that did not boot, a script that timed out).
digest() { # step
	local log
	case "$1" in
	"cargo test")
		grep -E -A4 '^test .* FAILED$|panicked at|^failures:$' "$out/cargo-test.log" | head -n 60
		return
		;;
	"QEMU: KUnit and selftests") log=$out/selftests.log ;;
	"QEMU: multi-VM cluster (short)") log=$out/cluster.log ;;
	*) return ;;
	esac
	echo "== $1"
	not_ok "$log" | grep -q . && not_ok "$log" || tail -n 30 "$log"
}
if [ "${#failed[@]}" -gt 0 ]; then
	echo
	echo "permtcp check: what failed"
	for f in "${failed[@]}"; do digest "$f"; done 2>/dev/null | head -n "${PERMTCP_FAILURE_LINES:-150}"
fi

echo
echo "permtcp check summary"
printf '  %s\n' "${summary[@]}"
echo "  cargo test: ${cargo_pass} passed, ${cargo_fail} failed"
echo "  KUnit:      ${ku_pass:-0} passed, ${ku_fail:-0} failed"
echo "  selftests:  ${st_pass:-0} passed, ${st_fail:-0} failed, ${st_skip:-0} skipped (short form; make selftests runs all)"
echo "  cluster:    ${cl_pass:-0} passed, ${cl_fail:-0} failed"
total_pass=$((cargo_pass + ${ku_pass:-0} + ${st_pass:-0} + ${cl_pass:-0}))
total_fail=$((cargo_fail + ${ku_fail:-0} + ${st_fail:-0} + ${cl_fail:-0} + ${#failed[@]}))
echo "total: $total_pass passed, $total_fail failed (in $((SECONDS / 60)) min $((SECONDS % 60)) s)"
[ ${#failed[@]} -eq 0 ] && [ "$total_fail" -eq 0 ]
