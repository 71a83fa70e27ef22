# SPDX-License-Identifier: GPL-2.0
# Shared paths for the permtcp build scripts; sourced, never run.
#
# The cache lives outside the work tree so that a clean clone reuses it.
PERMTCP_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PERMTCP_CACHE=${PERMTCP_CACHE:-/var/cache/permtcp}
PERMTCP_FRAGMENT=$PERMTCP_ROOT/kernel/permtcp.config
# Kernel variant: empty for the test kernel, "debug" for the one with lock debugging.
PERMTCP_KVARIANT=${PERMTCP_KVARIANT:-}
# Minimum kernel series the module is written against.
PERMTCP_KSERIES=7.3
BINDGEN_VERSION=0.72.1
LLVM_VERSION=19

log() { printf '[permtcp] %s\n' "$*" >&2; }
die() { printf '[permtcp] error: %s\n' "$*" >&2; exit 1; }

# Kernel source version extracted into the cache (e.g. 7.3.4), empty if none.
kernel_version() {
	cat "$PERMTCP_CACHE/src/VERSION" 2>/dev/null || true
}

# Config fragments of the selected variant, in merge order.
kernel_fragments() {
	echo "$PERMTCP_FRAGMENT"
	[ -z "$PERMTCP_KVARIANT" ] || echo "$PERMTCP_ROOT/kernel/permtcp-$PERMTCP_KVARIANT.config"
}

# Hash of everything that decides the test kernel's configuration.
fragment_hash() {
	cat $(kernel_fragments) "$PERMTCP_ROOT/scripts/build-kernel.sh" | sha256sum | cut -c1-12
}

# Build directory of the cached test kernel.
kernel_build_dir() {
	local v
	v=$(kernel_version)
	[ -n "$v" ] || return 1
	printf '%s/kbuild/linux-%s%s-%s\n' "$PERMTCP_CACHE" "$v" "${PERMTCP_KVARIANT:+-$PERMTCP_KVARIANT}" "$(fragment_hash)"
}
