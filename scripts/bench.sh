#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# `make bench`: the host tracker benchmark, then the QEMU benchmark (selftests/bench.sh),
# their full output, and one table of the figures side by side, with the ratios. Arguments
# are the parts: snoop, scale and takeover go to run_vm.sh --bench; throughput runs the
# multi-VM tier's throughput benchmark (the owner's bulk throughput with and without
# snooping peers, each node its own VM); owner-cost counts the owner's own instructions per
# transfer in that tier (its VM under scripts/tcgprof's plugin); instructions profiles the
# snoop part's transfers
# (scripts/tcgprof/compare.py); all of them by default. PERMTCP_CONNS picks the takeover
# sizes.
set -euo pipefail
. "$(dirname "$0")/common.sh"
cd "$PERMTCP_ROOT"
out=$PERMTCP_ROOT/target/bench
mkdir -p "$out"
cargo bench --locked -p permtcp-logic 2>/dev/null | tee "$out/host.txt"
vm_parts=()
cluster=1
owner_cost=1
instructions=1
if [ $# -gt 0 ]; then
	cluster=0
	owner_cost=0
	instructions=0
	for a in "$@"; do
		case $a in
		throughput) cluster=1 ;;
		owner-cost) owner_cost=1 ;;
		instructions) instructions=1 ;;
		*) vm_parts+=("$a") ;;
		esac
	done
fi
: >"$out/vm.txt"
: >"$out/cluster.txt"
[ $# -gt 0 ] || vm_parts=(snoop scale takeover)
# Each part in a guest of its own, as the parts run alone: in a complete run on 344d2b3 the
# takeover part, after the scale part's 100,000 connections in the same guest, gave 17.4 us
# per birth at 10,000 born; the part alone in a fresh guest, 9.5 to 13 us. A boot costs
# about 6 s.
for part in "${vm_parts[@]}"; do
	# 10,000 connections are a thread each in three processes: more than a 1 GB guest holds,
	# and a 2 GB one ran out of memory after the scale part's 100,000 mirrored connections.
	PERMTCP_VM_MEM=${PERMTCP_VM_MEM:-4096} bash selftests/run_vm.sh --timeout 3600 --bench "$part" | tee -a "$out/vm.txt"
done
if [ $cluster = 1 ]; then
	PERMTCP_BENCH=throughput bash selftests/cluster/run.sh --bench | tee "$out/cluster.txt"
fi
# The owner's own work per transfer, counted on its VM (scripts/tcgprof's plugin, TCG): a
# run of its own, as the plugin slows the owner. Four rounds: the counts move by about 1 %.
: >"$out/owner.txt"
if [ $owner_cost = 1 ]; then
	PERMTCP_KVM=0 PERMTCP_CRASHES=${PERMTCP_OWNER_ROUNDS:-4} PERMTCP_BENCH=owner-cost \
		bash selftests/cluster/run.sh --bench | tee "$out/owner.txt"
fi
# Snooping against conntrack by instructions (scripts/tcgprof: counts that barely move from
# one run to the next, where times under TCG move by half): the bench's transfers profiled
# with the peer snooping, with conntrack, and with neither, a boot each.
: >"$out/instructions.txt"
if [ $instructions = 1 ]; then
	for m in snoop ct plain; do
		log "instructions: profiling the transfers ($m)"
		bash scripts/tcgprof/run.sh "bench-$m" "permtcp.prof=$m" -- ../prof/snoop.sh \
			>"$out/prof-$m.log" 2>&1 || { tail -n 20 "$out/prof-$m.log"; die "profile $m failed"; }
	done
	python3 scripts/tcgprof/compare.py target/tcgprof/bench-snoop target/tcgprof/bench-ct \
		target/tcgprof/bench-plain | tee "$out/instructions.txt"
fi

num() { sed -n "$1" "$2" | head -n 1; }
h64=$(num 's/^small segments.* \([0-9.]*\) Mpps.*/\1/p' "$out/host.txt")
h1448=$(num 's/^full-size segments.* \([0-9.]*\) Mpps.*/\1/p' "$out/host.txt")
# The lines under each: headers from memory (no prefetch), and for 1448 bytes every byte copied.
under() { awk -v what="$1" -v which="$2" '/^[a-z]/ { in_part = index($0, what) == 1; next }
	in_part && index($0, which) { for (i = 1; i < NF; i++) if ($(i + 1) == "Mpps/core") { print $i; exit } }' "$out/host.txt"; }
h64_cold=$(under "small segments" "headers not in the cache")
h1448_cold=$(under "full-size segments" "headers not in the cache")
h1448_copy=$(under "full-size segments" "every byte copied")
mem=$(num 's/^memory per tracked connection: \([0-9]*\) bytes (table entry), \([0-9]*\) bytes.*/\1 B entry, \2 B with data/p' "$out/host.txt")
ct_owner=$(num 's/.*conntrack, owner: *\([0-9]* ns per frame, [0-9.]* ns per byte\).*/\1/p' "$out/vm.txt")
ct_client=$(num 's/.*conntrack, client: *\([0-9]* ns per frame, [0-9.]* ns per byte\).*/\1/p' "$out/vm.txt")
side=$(num 's/.*peer snooping hook: *\([0-9]* ns per frame, [0-9.]* ns per byte\).*/\1/p' "$out/vm.txt")
hook=$(num 's/.*peer hook, measured inside: *\([0-9]*\) ns.*/\1/p' "$out/vm.txt")
hook_copy=$(num 's/.*same, copying (zerocopy=0): *\(.*\)/\1/p' "$out/vm.txt")
ratio=$(num 's/.*snooping\/conntrack per frame: *\(.*\)/\1/p' "$out/vm.txt")
ratio_b=$(num 's/.*snooping\/conntrack per byte: *\(.*\)/\1/p' "$out/vm.txt")
owner_row() { num "s/^  $1: *\\(without permtcp .*\\)/\\1/p" "$out/cluster.txt"; }
owner=$(owner_row "as is")
owner_nice=$(owner_row "peers at nice 19")
owner_pin=$(owner_row "peers on host CPUs of their own")
echo
echo "== permtcp benchmark summary (one run; QEMU TCG figures under the host's load) =="
printf '  %-44s %s\n' "host tracker, 64-byte segments" "${h64:--} Mpps/core"
printf '  %-44s %s\n' "host tracker, 1448-byte segments" "${h1448:--} Mpps/core"
printf '  %-44s %s\n' "  headers from memory: 64 B, 1448 B" "${h64_cold:--}, ${h1448_cold:--} Mpps/core"
printf '  %-44s %s\n' "  1448 B, every byte copied" "${h1448_copy:--} Mpps/core"
printf '  %-44s %s\n' "memory per tracked connection" "${mem:--}"
echo "  same transfers, each hook timed inside (permtcp.ctprobe around conntrack):"
printf '  %-44s %s\n' "  peer snooping hook" "${side:--}"
printf '  %-44s %s\n' "  conntrack in the owner's namespace" "${ct_owner:--}"
printf '  %-44s %s\n' "  conntrack in the client's namespace" "${ct_client:--}"
printf '  %-44s %s\n' "snooping / conntrack per frame" "${ratio:--}"
printf '  %-44s %s\n' "snooping / conntrack per byte" "${ratio_b:--}"
ins_m=$(num 's/^module, snooping: \([0-9]*\) instructions.*/\1/p' "$out/instructions.txt")
ins_c=$(num 's/^conntrack: \([0-9]*\) instructions.*/\1/p' "$out/instructions.txt")
ins_r=$(num 's/^snooping\/conntrack by instructions: \(.*\)/\1/p' "$out/instructions.txt")
printf '  %-44s %s\n' "snooping / conntrack by instructions" \
	"${ins_r:--}${ins_r:+ (module $ins_m per frame, conntrack $ins_c per frame and namespace)}"
ins_hm=$(num 's/^with the kernel.s skb and slab functions: module \([0-9]*\), conntrack \([0-9]*\) .*/\1/p' "$out/instructions.txt")
ins_hc=$(num 's/^with the kernel.s skb and slab functions: module \([0-9]*\), conntrack \([0-9]*\) .*/\2/p' "$out/instructions.txt")
ins_hr=$(num 's/^snooping\/conntrack by instructions, skb and slab work included: \(.*\)/\1/p' "$out/instructions.txt")
printf '  %-44s %s\n' "  the same, skb and slab work included" \
	"${ins_hr:--}${ins_hr:+ (module $ins_hm per frame, conntrack $ins_hc)}"
printf '  %-44s %s\n' "peer hook, measured inside" "${hook:--} ns per frame"
printf '  %-44s %s\n' "peer hook, copying every byte (zerocopy=0)" "${hook_copy:--}"
printf '  %-44s %s\n' "owner throughput, separate VMs, as is" "${owner:--}"
printf '  %-44s %s\n' "  the same, peers at nice 19 (both states)" "${owner_nice:--}"
printf '  %-44s %s\n' "  the same, peers on host CPUs of their own" "${owner_pin:--}"
oc=$(num 's/.*owner throughput by instructions (without\/with): \([0-9.]*\).*/\1/p' "$out/owner.txt")
oc_bg=$(num 's/.*nothing transferred: .*: +\([0-9.]*\) M a second.*/\1/p' "$out/owner.txt")
oc_rest=$(num 's/.*first part (a CPU that runs the transfer in a fraction of the time), by instructions \([0-9.]*\).*/\1/p' "$out/owner.txt")
printf '  %-44s %s\n' "owner's work per transfer, without/with" \
	"${oc:--}${oc:+ by instructions (owner VM counted); +${oc_bg} M instructions a second in the background; $oc_rest without that}"
awk '/^  +table +hook ns/ { t = 1; next } t && /^ +[0-9]+ / {
	printf "  %-44s %s ns per frame, %s bytes per entry\n", "peer hook with " $1 " connections mirrored", $2, $4; next }
	{ t = 0 }' "$out/vm.txt"
echo "  takeover, same VM: kernel (repair: TCP_REPAIR + parking; born: from the listener)"
echo "  vs userspace TCP_REPAIR restore; answer: takeover start to every connection's first answer"
printf '    %6s  %8s %8s %8s %6s %6s  %8s %8s %8s  %8s %8s %8s\n' conns repair born user "user/" "user/" \
	repair born user repair born user
printf '    %6s  %8s %8s %8s %6s %6s  %8s %8s %8s  %8s %8s %8s\n' "" "us/conn" "us/conn" "us/conn" born repair \
	"whole ms" "whole ms" "whole ms" "answer" "answer" "answer"
awk '/^  conns +repair +born +user/ { t = 1; next } t && /^ *[0-9]+ / {
	rr = ($2 ~ /^[0-9.]+$/ && $4 ~ /^[0-9.]+$/ && $2 > 0) ? sprintf("%.2f", $4 / $2) : "-";
	printf "    %6s  %8s %8s %8s %6s %6s  %8s %8s %8s  %8s %8s %8s\n", $1, $2, $3, $4, $5, rr, $6, $7, $8, $9, $10, $11 }
	/^kernel takeover by step/ { t = 0 }' "$out/vm.txt"
