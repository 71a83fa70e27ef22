#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# The QEMU selftests on the debug variant of the test kernel (kernel/permtcp-debug.config:
# lockdep, DEBUG_ATOMIC_SLEEP, DEBUG_LIST, DEBUG_NET, ...).
exec bash "$(dirname "$0")/check-variant.sh" debug "$@"
