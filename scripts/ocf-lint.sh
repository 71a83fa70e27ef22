#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# Host checks of the Pacemaker resource agents (tools/ocf), part of make lint: shellcheck as
# POSIX sh (Debian runs them with dash), dash's own parse, and each agent's meta-data
# against the OCF RA API's DTD (resource-agents), as ocf-tester checks it. The agents' actions
# run in QEMU, where the module is (selftests/permtcp/ocf.sh).
set -euo pipefail
. "$(dirname "$0")/common.sh"

dtd=/usr/share/resource-agents/ra-api-1.dtd
for tool in shellcheck xmllint dash; do
	command -v "$tool" >/dev/null || die "missing $tool (run make setup)"
done
[ -f "$dtd" ] || die "missing $dtd (run make setup)"
for agent in "$PERMTCP_ROOT"/tools/ocf/*; do
	shellcheck -s sh "$agent"
	dash -n "$agent"
	[ -x "$agent" ] || die "$agent is not executable"
	OCF_ROOT=/usr/lib/ocf "$agent" meta-data | (cd "$(dirname "$dtd")" && xmllint --noout --valid -) ||
		die "$agent: meta-data does not conform to ra-api-1.dtd"
done
log "OCF agents: shellcheck, dash and meta-data clean"
