#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# Prints the cached test kernel's build tree, or nothing when it is not built yet.
. "$(dirname "$0")/common.sh"
dir=$(kernel_build_dir) || exit 1
[ -f "$dir/.permtcp-built" ] && echo "$dir"
