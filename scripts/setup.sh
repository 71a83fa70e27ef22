#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# Idempotent set-up of a fresh Debian 12 machine (as root): host packages, the Rust pieces the
# kernel's Rust support needs, the Linux 7.3 source and the cached test kernel.  A second run
# finds everything in place and returns in about a second.
set -euo pipefail
. "$(dirname "$0")/common.sh"

[ "$(id -u)" = 0 ] || die "setup needs root (it installs Debian packages)"

PKGS=(make gcc flex bison bc libelf-dev libssl-dev cpio busybox-static qemu-system-x86 kmod
      iproute2 xz-utils "clang-$LLVM_VERSION" "libclang-$LLVM_VERSION-dev" "lld-$LLVM_VERSION"
      "llvm-$LLVM_VERSION" python3 python3-yaml python3-jsonschema ca-certificates nftables
      tcpdump lighttpd curl memcached resource-agents libxml2-utils shellcheck
      keepalived dkms)

missing=()
for p in "${PKGS[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
	log "installing Debian packages: ${missing[*]}"
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
	# lighttpd, memcached and keepalived are only copied into the test guest (logd comes with
	# resource-agents, whose OCF library and ocf-tester are too): the host's own
	# services that installing them may have started are stopped and disabled.
	if [ -d /run/systemd/system ]; then
		systemctl disable --now lighttpd memcached keepalived logd >/dev/null 2>&1 || true
	fi
fi

# Rust: the kernel's Rust build needs the core library source and bindgen.
if ! rustup component list --installed 2>/dev/null | grep -q '^rust-src'; then
	log "adding rust-src"
	rustup component add rust-src
fi
if ! bindgen --version 2>/dev/null | grep -q "$BINDGEN_VERSION"; then
	log "installing bindgen-cli $BINDGEN_VERSION (about 1.5 min)"
	LIBCLANG_PATH=/usr/lib/llvm-$LLVM_VERSION/lib \
		cargo install bindgen-cli --version "$BINDGEN_VERSION" --locked --quiet
fi

# Kernel source: Debian's linux-source-7.3 from trixie-backports, downloaded only, never installed.
if [ -z "$(kernel_version)" ]; then
	"$PERMTCP_ROOT/scripts/fetch-kernel-source.sh"
fi

"$PERMTCP_ROOT/scripts/build-kernel.sh"
log "setup complete: KDIR=$(kernel_build_dir)"
