#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# Builds the debug variant of the test kernel (kernel/permtcp-debug.config: lockdep,
# DEBUG_ATOMIC_SLEEP, DEBUG_LIST, DEBUG_NET, ...), builds permtcp.ko for it out of a copy of
# the sources (a module is built for exactly one kernel), and runs the QEMU selftests there.
# Any lockdep splat, warning or oops fails the scripts' kernel-log checks or the guest.
set -euo pipefail
export PERMTCP_KVARIANT=debug
. "$(dirname "$0")/common.sh"

"$PERMTCP_ROOT/scripts/build-kernel.sh"
kdir=$(kernel_build_dir)
src=$PERMTCP_ROOT/target/module-debug
rm -rf "$src"
mkdir -p "$src"
cp -r "$PERMTCP_ROOT"/{Kbuild,permtcp.rs,permtcp,permtcp_glue.c,include} "$src/"
rm -rf "$src/permtcp/logic/tests" "$src/permtcp/logic/benches"
make -s -C "$kdir" M="$src" modules
KDIR=$kdir MODULE=$src/permtcp.ko bash "$PERMTCP_ROOT/selftests/run_vm.sh" --timeout 1800 "$@"
