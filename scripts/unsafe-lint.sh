#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# The module's unsafe code stays at its C edge: permtcp/glue.rs (every C function, wrapped)
# and permtcp/adapter.rs (every entry point C calls).  Prints the unsafe blocks, functions
# and impls per file of the kernel side and fails when any other file has one, or when an
# `unsafe` block lacks its `// SAFETY:` comment.
#
#   scripts/unsafe-lint.sh
set -euo pipefail
cd "$(dirname "$0")/.."

edge=(permtcp/glue.rs permtcp/adapter.rs)
rc=0
printf '%-28s %s\n' file unsafe
for f in permtcp.rs permtcp/*.rs permtcp/logic/*.rs; do
	# Code only: comments and doc text may say "unsafe".
	n=$(sed -e 's://.*$::' "$f" | grep -c -E '\bunsafe\b' || true)
	[ "$n" -gt 0 ] || continue
	printf '%-28s %s\n' "$f" "$n"
	case " ${edge[*]} " in
	*" $f "*) ;;
	*) echo "error: $f has unsafe code; it belongs in ${edge[*]}" >&2; rc=1 ;;
	esac
done
# Every unsafe block is preceded by its justification.
for f in "${edge[@]}"; do
	awk -v f="$f" '
		/\/\/ SAFETY:/ { ok = NR }
		/^[[:space:]]*\/\// { next }
		/unsafe \{/ && !/fn / && (NR - ok > 6) {
			printf "error: %s:%d: unsafe block without a // SAFETY: comment\n", f, NR; bad = 1
		}
		END { exit bad }' "$f" >&2 || rc=1
done
exit "$rc"
