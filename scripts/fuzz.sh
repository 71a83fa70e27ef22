#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# Builds the libFuzzer targets in fuzz/ with sanitizer-coverage instrumentation (stable
# rustc flags only) and runs each for SECONDS (default 30) from a seed corpus.
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]
set -euo pipefail
. "$(dirname "$0")/common.sh"
cd "$PERMTCP_ROOT/fuzz"
secs=${1:-30}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(snoop seqbuf decl)

export RUSTFLAGS="-Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
-Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
-Cllvm-args=-sanitizer-coverage-trace-compares --cfg fuzzing -Cdebug-assertions -Coverflow-checks"
# With an explicit --target, RUSTFLAGS reach the fuzzed code but not build scripts.
triple=$(rustc -vV | sed -n 's/^host: //p')
cargo build --release --quiet --target "$triple" --target-dir "$PERMTCP_ROOT/target/fuzz" --bins
bin=$PERMTCP_ROOT/target/fuzz/$triple/release
for t in "${targets[@]}"; do
	corpus=$PERMTCP_ROOT/target/fuzz/corpus/$t
	mkdir -p "$corpus"
	log "fuzzing $t for ${secs}s"
	out=$PERMTCP_ROOT/target/fuzz/$t.log
	rc=0
	"$bin/$t" -max_total_time="$secs" -print_final_stats=1 -max_len=65536 \
		-artifact_prefix="$PERMTCP_ROOT/target/fuzz/$t-" "$corpus" "$PERMTCP_ROOT/fuzz/seeds/$t" \
		>"$out" 2>&1 || rc=$?
	grep -E "^(Done|stat::number_of_executed_units|stat::average_exec_per_sec)" "$out" || true
	if [ "$rc" != 0 ]; then
		tail -n 40 "$out" >&2
		die "fuzz target $t failed (exit $rc); the crashing input is in target/fuzz/"
	fi
done
