#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# Installation checks, part of make check's build step: `make install-ocf install-dkms`
# into a temporary DESTDIR puts both Pacemaker agents, executable, under
# /usr/lib/ocf/resource.d/permtcp and the DKMS source tree under /usr/src/permtcp-VERSION;
# that tree alone builds permtcp.ko against KDIR, as DKMS's MAKE line does (so no file the
# build needs is missing from it); and modinfo shows the module's description, author and
# license (GPL v2, the SPDX GPL-2.0 of its sources) and no parameters (it has none:
# everything goes through netlink).
#
#   scripts/install-check.sh [KDIR]
set -euo pipefail
. "$(dirname "$0")/common.sh"
cd "$PERMTCP_ROOT"

KDIR=${1:-${KDIR:-$(bash scripts/kdir.sh)}}
[ -n "$KDIR" ] || die "no kernel build tree: run 'make setup' or pass KDIR"
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
fail() { log "install check: $*"; exit 1; }

make -s install-ocf install-dkms DESTDIR="$stage" >/dev/null
for a in peer owner; do
	[ -x "$stage/usr/lib/ocf/resource.d/permtcp/$a" ] || fail "agent $a not installed executable"
	cmp -s "tools/ocf/$a" "$stage/usr/lib/ocf/resource.d/permtcp/$a" || fail "agent $a differs"
done
version=$(sed -n 's/^PACKAGE_VERSION="\(.*\)"/\1/p' dkms.conf)
src=$stage/usr/src/permtcp-$version
[ -f "$src/dkms.conf" ] || fail "no $src/dkms.conf"
# DKMS builds in a copy of the source tree: build in one too, with dkms.conf's MAKE command.
build=$stage/build
cp -r "$src" "$build"
make_cmd=$(sed -n 's/^MAKE\[0\]="\(.*\)"/\1/p' dkms.conf)
make_cmd=${make_cmd//'${kernel_source_dir}'/$KDIR}
make_cmd=${make_cmd//'${dkms_tree}/${PACKAGE_NAME}/${PACKAGE_VERSION}/build'/$build}
log "install check: building the DKMS tree: $make_cmd"
$make_cmd -s >"$stage/build.log" 2>&1 || { cat "$stage/build.log" >&2; fail "the DKMS tree does not build"; }
ko=$build/permtcp.ko
[ -f "$ko" ] || fail "the DKMS build made no permtcp.ko"
for field in description author; do
	[ -n "$(modinfo -F "$field" "$ko")" ] || fail "modinfo: no $field"
done
[ "$(modinfo -F license "$ko")" = "GPL v2" ] || fail "modinfo: license is '$(modinfo -F license "$ko")', not GPL v2"
[ -z "$(modinfo -F parm "$ko")" ] || fail "modinfo lists parameters the documentation does not: $(modinfo -F parm "$ko")"
log "install check: agents installed, DKMS tree builds, modinfo: $(modinfo -F description "$ko") ($(modinfo -F license "$ko"))"
