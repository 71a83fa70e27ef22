#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# Builds a variant of the test kernel (kernel/permtcp-VARIANT.config merged over
# kernel/permtcp.config), builds permtcp.ko for it out of a copy of the sources (a module is
# built for exactly one kernel), and runs the QEMU selftests there (all of them, or the
# scripts named). A fragment marked "# permtcp: llvm" is built with clang/LLVM (Rust with
# KASAN or KCSAN needs it). Any sanitizer report, lockdep splat, warning or oops fails the
# scripts' kernel-log checks or the guest; a KMEMLEAK kernel is scanned at the end.
#
#   scripts/check-variant.sh VARIANT [script.sh ...]
set -euo pipefail
variant=${1:?variant}
shift
export PERMTCP_KVARIANT=$variant
. "$(dirname "$0")/common.sh"

frag=$PERMTCP_ROOT/kernel/permtcp-$variant.config
[ -f "$frag" ] || die "no kernel fragment $frag"
if grep -q '^# permtcp: llvm' "$frag"; then
	# Kbuild reads LLVM from the environment.
	export LLVM=-$LLVM_VERSION
fi
"$PERMTCP_ROOT/scripts/build-kernel.sh"
kdir=$(kernel_build_dir)
src=$PERMTCP_ROOT/target/module-$variant
rm -rf "$src"
mkdir -p "$src"
cp -r "$PERMTCP_ROOT"/{Kbuild,permtcp.rs,permtcp,permtcp_glue.c,include} "$src/"
rm -rf "$src/permtcp/logic/tests" "$src/permtcp/logic/benches"
make -s -C "$kdir" M="$src" modules
# A sanitizer kernel runs the suite 3 to 5 times slower under TCG: the whole suite takes
# well over an hour, and one script (takeover_unmodified_http.sh: about 3.5 minutes on the
# normal kernel) more than the normal 300 s per script.
export PERMTCP_SCRIPT_TIMEOUT=${PERMTCP_SCRIPT_TIMEOUT:-1500}
KDIR=$kdir MODULE=$src/permtcp.ko bash "$PERMTCP_ROOT/selftests/run_vm.sh" --timeout "${PERMTCP_VARIANT_TIMEOUT:-10800}" "$@"
