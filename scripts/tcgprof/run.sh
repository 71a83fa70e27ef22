#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# A flat profile of the guest kernel under TCG: the instructions each function ran
# (tcgprof.c counts them per translation block; a TCG guest has no PMU to sample).
#
#   scripts/tcgprof/run.sh NAME [guest-parameter...] -- script.sh...
#
# boots the test kernel with the plugin (selftests/run_vm.sh), runs the scripts, and keeps
# the counts, the System.map and the module in target/tcgprof/NAME for report.py. The
# module's .text address comes from a "# text: ADDR" line of the scripts' output
# (/sys/module/permtcp/sections/.text), else the first module's. Two profiles of the same
# workload, with and without what is measured, give what it added (report.py NAME BASE):
#
#   scripts/tcgprof/run.sh snoop permtcp.prof=snoop -- ../prof/snoop.sh
#   scripts/tcgprof/run.sh plain permtcp.prof=plain -- ../prof/snoop.sh
#   scripts/tcgprof/report.py target/tcgprof/snoop target/tcgprof/plain
set -euo pipefail
. "$(dirname "$0")/../common.sh"
name=$1
shift
# KUnit's suites run when the module loads, with counts that differ from boot to boot (one
# pair of profiles differed by 414 instructions per frame in the takeover suite's functions,
# which the snooping workload never calls): profiles run without them.
params=(kunit.enable=0)
while [ $# -gt 0 ] && [ "$1" != -- ]; do params+=("$1"); shift; done
[ "${1:-}" = -- ] && shift
[ $# -gt 0 ] || die "usage: $0 NAME [guest-parameter...] -- script.sh..."
out=$PERMTCP_ROOT/target/tcgprof/$name
rm -rf "$out"
mkdir -p "$out"
plugin=$PERMTCP_ROOT/target/tcgprof/tcgprof.so
if [ ! -e "$plugin" ] || [ "$(dirname "$0")/tcgprof.c" -nt "$plugin" ]; then
	gcc -O2 -shared -fPIC -Wall -Werror -o "$plugin" "$(dirname "$0")/tcgprof.c"
fi
. "$PERMTCP_ROOT/selftests/vm.sh"
vm_inputs
cp "$KDIR/System.map" "$out/"
cp "$module" "$out/permtcp.ko"
PERMTCP_KVM=0 PERMTCP_VM_QEMU_ARGS="-plugin $plugin,out=$out/prof.txt" \
	PERMTCP_VM_APPEND="${params[*]}" bash "$PERMTCP_ROOT/selftests/run_vm.sh" "$@" | tee "$out/run.log"
sed -n 's/.*# text: \(0x[0-9a-f]*\).*/\1/p' "$out/run.log" | tail -n1 >"$out/text"
[ -s "$out/text" ] || echo 0xffffffffa0000000 >"$out/text"
log "profile in $out: scripts/tcgprof/report.py $out [BASELINE]"
