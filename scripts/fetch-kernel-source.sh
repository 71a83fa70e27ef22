#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# Fetch Debian's linux-source-7.3 (trixie-backports) and extract it into the cache.
# The suite is added with pin priority 1 so that nothing on the machine is ever upgraded
# from it; the package is downloaded with `apt-get download` and unpacked by hand.
set -euo pipefail
. "$(dirname "$0")/common.sh"

src_list=/etc/apt/sources.list.d/permtcp-trixie-backports.sources
pin=/etc/apt/preferences.d/permtcp-trixie-backports
if [ ! -f "$src_list" ]; then
	# Reuse the Debian mirror this machine is already configured with.
	uri=$(awk '/^URIs:/ && $2 ~ /debian\/?$/ {print $2; exit}' /etc/apt/sources.list.d/*.sources 2>/dev/null || true)
	if [ -z "$uri" ]; then
		uri=$(awk '/^deb / && $3 ~ /^bookworm$/ {print $2; exit}' /etc/apt/sources.list 2>/dev/null || true)
	fi
	[ -n "$uri" ] || die "no Debian mirror found in the apt configuration"
	log "adding trixie-backports (download only) from the configured mirror"
	cat >"$src_list" <<EOS
Types: deb
URIs: $uri
Suites: trixie-backports
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOS
	cat >"$pin" <<EOS
Package: *
Pin: release n=trixie-backports
Pin-Priority: 1
EOS
	apt-get update -qq
fi

work=$PERMTCP_CACHE/download
mkdir -p "$work"
pkg=linux-source-$PERMTCP_KSERIES
if ! ls "$work"/"$pkg"_*.deb >/dev/null 2>&1; then
	log "downloading $pkg (about 170 MB)"
	(cd "$work" && apt-get download -qq "$pkg/trixie-backports")
fi
deb=$(ls "$work"/"$pkg"_*.deb | tail -n1)

tmp=$(mktemp -d "$PERMTCP_CACHE/extract.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
dpkg-deb --fsys-tarfile "$deb" | tar -x -C "$tmp" --wildcards "./usr/src/$pkg.tar.*"
tarball=$(ls "$tmp"/usr/src/"$pkg".tar.*)
log "extracting $(basename "$tarball")"
rm -rf "$PERMTCP_CACHE/src"
mkdir -p "$PERMTCP_CACHE/src"
tar -xf "$tarball" -C "$PERMTCP_CACHE/src"
mv "$PERMTCP_CACHE/src/$pkg" "$PERMTCP_CACHE/src/linux"
ver=$(make -s -C "$PERMTCP_CACHE/src/linux" kernelversion)
echo "$ver" >"$PERMTCP_CACHE/src/VERSION"
rm -f "$deb"
log "kernel source $ver ready"
