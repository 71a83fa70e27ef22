#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# Build the permtcp test kernel from the cached source and kernel/permtcp.config into
# $PERMTCP_CACHE/kbuild/linux-<version>-<fragment hash>.  Reused when already built.
set -euo pipefail
. "$(dirname "$0")/common.sh"

src=$PERMTCP_CACHE/src/linux
[ -d "$src" ] || die "no kernel source in $src: run scripts/setup.sh"
out=$(kernel_build_dir)
if [ -f "$out/.permtcp-built" ]; then
	exit 0
fi

log "building the test kernel $(kernel_version) in $out (7-10 min on 2 cores)"
mkdir -p "$out"
export LIBCLANG_PATH=/usr/lib/llvm-$LLVM_VERSION/lib
mk=(make -s -C "$src" O="$out" CLANG=clang-$LLVM_VERSION)
"${mk[@]}" tinyconfig
"$src/scripts/kconfig/merge_config.sh" -m -O "$out" "$out/.config" \
	"$src/kernel/configs/kvm_guest.config" $(kernel_fragments) >/dev/null
"${mk[@]}" olddefconfig
"${mk[@]}" rustavailable >/dev/null || die "the kernel's Rust support is not available (rustc/bindgen/libclang)"

# Every option in the fragment must have survived (a silently dropped dependency is a bug).
bad=0
while IFS= read -r line; do
	case "$line" in CONFIG_*=*) ;; *) continue ;; esac
	grep -qx -- "$line" "$out/.config" || { log "config option lost: $line"; bad=1; }
done < <(cat $(kernel_fragments))
[ "$bad" = 0 ] || die "kernel configuration incomplete"

"${mk[@]}" -j"$(($(nproc) + 1))" bzImage modules
touch "$out/.permtcp-built"
log "test kernel ready: $out/arch/x86/boot/bzImage"
