#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# Installation checks, part of make check's build step: `make install-ocf install-dkms`
# into a temporary DESTDIR puts both Pacemaker agents, executable, under
# /usr/lib/ocf/resource.d/permtcp and the DKMS source tree under /usr/src/permtcp-VERSION;
# Debian's dkms builds permtcp.ko from that tree against KDIR (DKMS trees in temporary
# directories: nothing is registered on the host), and refuses, with its exit status 77, a
# kernel whose .config lacks CONFIG_RUST (BUILD_EXCLUSIVE_CONFIG); and modinfo shows the
# built module's description, author and license (GPL v2, the SPDX GPL-2.0 of its sources)
# and no parameters (it has none: everything goes through netlink).
#
#   scripts/install-check.sh [KDIR]
set -euo pipefail
. "$(dirname "$0")/common.sh"
cd "$PERMTCP_ROOT"

KDIR=${1:-${KDIR:-$(bash scripts/kdir.sh)}}
[ -n "$KDIR" ] || die "no kernel build tree: run 'make setup' or pass KDIR"
command -v dkms >/dev/null || die "missing dkms (run make setup)"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { log "install check: $*"; exit 1; }

stage=$tmp/stage
make -s install-ocf install-dkms DESTDIR="$stage" >/dev/null
for a in peer owner; do
	[ -x "$stage/usr/lib/ocf/resource.d/permtcp/$a" ] || fail "agent $a not installed executable"
	cmp -s "tools/ocf/$a" "$stage/usr/lib/ocf/resource.d/permtcp/$a" || fail "agent $a differs"
done
version=$(sed -n 's/^PACKAGE_VERSION="\(.*\)"/\1/p' dkms.conf)
[ -f "$stage/usr/src/permtcp-$version/dkms.conf" ] || fail "no dkms.conf in the source tree"

# dkms with every tree of its own in $tmp.
dkms_build() { # kernel-release kernel-dir
	mkdir -p "$tmp/dkms-$1" "$tmp/install"
	dkms build -m permtcp -v "$version" -k "$1" --sourcetree "$stage/usr/src" \
		--dkmstree "$tmp/dkms-$1" --installtree "$tmp/install" --kernelsourcedir "$2" \
		>"$tmp/dkms-$1.log" 2>&1
}
release=$(cat "$KDIR/include/config/kernel.release")
log "install check: dkms build of permtcp/$version for $release"
dkms_build "$release" "$KDIR" || { cat "$tmp/dkms-$release.log" >&2; fail "dkms build failed"; }
ko=$tmp/dkms-$release/permtcp/$version/$release/$(uname -m)/module/permtcp.ko
[ -f "$ko" ] || { cat "$tmp/dkms-$release.log" >&2; fail "dkms built no $ko"; }
mkdir -p "$tmp/norust"
echo "# CONFIG_RUST is not set" >"$tmp/norust/.config"
rc=0
dkms_build 0.0.0-norust "$tmp/norust" || rc=$?
[ $rc = 77 ] || { cat "$tmp/dkms-0.0.0-norust.log" >&2; fail "dkms for a kernel without CONFIG_RUST: exit $rc, not 77"; }
for field in description author; do
	[ -n "$(modinfo -F "$field" "$ko")" ] || fail "modinfo: no $field"
done
[ "$(modinfo -F license "$ko")" = "GPL v2" ] || fail "modinfo: license is '$(modinfo -F license "$ko")', not GPL v2"
# Every module parameter is documented (as /sys/module/permtcp/parameters/NAME).
for parm in $(modinfo -F parm "$ko" | cut -d: -f1); do
	grep -rqs -- "parameters/$parm" "$PERMTCP_ROOT/Documentation" ||
		fail "modinfo lists a parameter the documentation does not: $parm"
done
log "install check: agents installed; dkms builds the module, skips a kernel without Rust; modinfo: $(modinfo -F description "$ko") ($(modinfo -F license "$ko"))"
