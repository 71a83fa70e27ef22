#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# The whole QEMU suite on the sanitizer kernel (kernel/permtcp-sanitizers.config: KASAN,
# KMEMLEAK scanned at the end, lockdep, the netns/netdev reference trackers), then the
# concurrency-heavy scripts on the KCSAN kernel (kernel/permtcp-kcsan.config). Both kernels
# are built with clang the first time (about 10 minutes each on 2 cores) and cached.
#
#   scripts/check-sanitizers.sh [--kcsan-only | --kasan-only]
set -euo pipefail
here=$(dirname "$0")
# The scripts whose hooks, handlers and polls run concurrently.
KCSAN_SCRIPTS=(concurrency.sh cgroup.sh snoop_basic.sh snoop_limits.sh takeover_many.sh takeover_bulk.sh takeover_later.sh
	fence.sh handoff.sh takeover_born.sh takeover_batch.sh snoop_zerocopy.sh)
rc=0
if [ "${1:-}" != --kcsan-only ]; then
	bash "$here/check-variant.sh" sanitizers || rc=1
fi
if [ "${1:-}" != --kasan-only ]; then
	bash "$here/check-variant.sh" kcsan "${KCSAN_SCRIPTS[@]}" || rc=1
fi
exit $rc
