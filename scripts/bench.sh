#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# `make bench`: the host tracker benchmark, then the QEMU benchmark (selftests/bench.sh),
# their full output, and one table of the figures side by side, with the ratios. Arguments
# go to run_vm.sh --bench (parts: snoop, scale, takeover); PERMTCP_CONNS picks the takeover
# sizes.
set -euo pipefail
. "$(dirname "$0")/common.sh"
cd "$PERMTCP_ROOT"
out=$PERMTCP_ROOT/target/bench
mkdir -p "$out"
cargo bench --locked -p permtcp-logic 2>/dev/null | tee "$out/host.txt"
bash selftests/run_vm.sh --timeout 3600 --bench "$@" | tee "$out/vm.txt"

num() { sed -n "$1" "$2" | head -n 1; }
h64=$(num 's/^small segments.* \([0-9.]*\) Mpps.*/\1/p' "$out/host.txt")
h1448=$(num 's/^full-size segments.* \([0-9.]*\) Mpps.*/\1/p' "$out/host.txt")
mem=$(num 's/^memory per tracked connection: \([0-9]*\) bytes (table entry), \([0-9]*\) bytes.*/\1 B entry, \2 B with data/p' "$out/host.txt")
snoop=$(num 's/.*snooping, from CPU time: *\(.*\)/\1/p' "$out/vm.txt")
ct=$(num 's/.*conntrack, from CPU time: *\(.*\)/\1/p' "$out/vm.txt")
hook=$(num 's/.*peer hook, measured inside: *\([0-9]*\) ns.*/\1/p' "$out/vm.txt")
ratio=$(num 's/.*snooping\/conntrack ratio: *\(.*\)/\1/p' "$out/vm.txt")
echo
echo "== permtcp benchmark summary (one run; QEMU TCG figures under the host's load) =="
printf '  %-44s %s\n' "host tracker, 64-byte segments" "${h64:--} Mpps/core"
printf '  %-44s %s\n' "host tracker, 1448-byte segments" "${h1448:--} Mpps/core"
printf '  %-44s %s\n' "memory per tracked connection" "${mem:--}"
printf '  %-44s %s\n' "snooping (permtcp), guest CPU time" "${snoop:--}"
printf '  %-44s %s\n' "conntrack on the owner, guest CPU time" "${ct:--}"
printf '  %-44s %s\n' "snooping / conntrack" "${ratio:-no ratio (conntrack below the noise)}"
printf '  %-44s %s\n' "peer hook, measured inside" "${hook:--} ns per frame"
awk '/^  +table +hook ns/ { t = 1; next } t && /^ +[0-9]+ / {
	printf "  %-44s %s ns per frame, %s bytes per entry\n", "peer hook with " $1 " connections mirrored", $2, $4; next }
	{ t = 0 }' "$out/vm.txt"
echo "  takeover, same VM, kernel vs userspace TCP_REPAIR restore:"
printf '    %6s  %10s %10s %8s  %10s %10s %8s  %10s %10s %10s\n' conns "kernel us" "user us" "user/k" \
	"kernel ms" "user ms" "user/k" "1st answer" "1st answer" "1st answer"
printf '    %6s  %10s %10s %8s  %10s %10s %8s  %10s %10s %10s\n' "" "per conn" "per conn" "" \
	"whole" "whole" "" "k ms" "u ms" "k,permctl"
awk '/^  conns  kernel us/ { t = 1; next } t && /^ *[0-9]+ / {
	n = $1; k = $2; u = $3; r = $4; kw = $5; uw = $6; ka = $7; ua = $8;
	wr = (kw ~ /^[0-9]+$/ && uw ~ /^[0-9]+$/ && kw > 0) ? sprintf("%.2f", uw / kw) : "-";
	printf "    %6s  %10s %10s %8s  %10s %10s %8s  %10s %10s %10s\n", n, k, u, r, kw, uw, wr, ka, ua, $9 }
	/^kernel rebuild by step/ { t = 0 }' "$out/vm.txt"
