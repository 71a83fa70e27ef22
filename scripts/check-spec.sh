#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# Validates the YAML netlink spec (Documentation/netlink/specs/permtcp.yaml) against the
# kernel's JSON schema for its protocol (Documentation/netlink/genetlink-legacy.yaml of the
# cached kernel source) with the kernel's own YNL (tools/net/ynl), under Debian's python3
# with python3-yaml and python3-jsonschema (make setup installs them).
set -euo pipefail
. "$(dirname "$0")/common.sh"

spec=$PERMTCP_ROOT/Documentation/netlink/specs/permtcp.yaml
ksrc=$PERMTCP_CACHE/src/linux
proto=$(sed -n 's/^protocol: *//p' "$spec")
schema=$ksrc/Documentation/netlink/${proto:-genetlink}.yaml
[ -f "$schema" ] && [ -f "$ksrc/tools/net/ynl/pyynl/cli.py" ] ||
	die "no kernel source with YNL in $ksrc (run make setup)"
/usr/bin/python3 -c 'import yaml, jsonschema' 2>/dev/null ||
	die "Debian's python3 lacks python3-yaml or python3-jsonschema (run make setup)"
/usr/bin/python3 "$ksrc/tools/net/ynl/pyynl/cli.py" --spec "$spec" --schema "$schema" --validate
log "$(basename "$spec") is valid against $(basename "$schema") of Linux $(kernel_version)"
