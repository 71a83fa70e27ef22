#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Folds one process's user-space counts into its functions (tcgprof.c, user=2).

  usyms.py ROOT [--top=N] [--minus=BASE] PROF MAPS [PROF MAPS ...]

PROF is a profile (prof.txt's format, delta.py's sums of snapshots say) and MAPS the
process's /proc/PID/maps while PROF was counted; ROOT is the guest's root tree (the
initramfs), where the mapped files are. The blocks within the process's mappings of files
count under the function of that file they fall in (its symbol table, else its dynamic
symbols); every other user block belongs to another process and is left out. Several
pairs add up (a daemon restarted between profiles has new maps). Prints the functions,
most first, and the process's total. A shared library's functions are named by the nearest
symbol it exports (the libraries in the guest have no other symbols).

The test guests run without address-space randomisation: every process's executable and
libraries sit at the same addresses (a PIE at 0x555555554000), so another process's blocks
fall within this one's mappings too. With --minus=BASE, a profile of the same workload
without this process, BASE's counts are taken from the first PROF's block by block first:
the other processes' blocks then cancel, and what is left is this one's.
"""
import bisect
import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from delta import KERNEL, load  # noqa: E402

_files = {}


def file_syms(path):
    """(load segments [(vaddr, offset, size)], sorted symbol addresses, names) of an ELF."""
    if path in _files:
        return _files[path]
    segs = []
    out = subprocess.run(["readelf", "-lW", path], capture_output=True, text=True).stdout
    for line in out.splitlines():
        f = line.split()
        if f and f[0] == "LOAD":
            segs.append((int(f[2], 16), int(f[1], 16), int(f[5], 16)))
    syms = []
    for flag in ([], ["-D"]):
        out = subprocess.run(["nm", "-C", "--defined-only", *flag, path],
                             capture_output=True, text=True).stdout
        for line in out.splitlines():
            parts = line.split(" ", 2)
            if len(parts) == 3 and parts[1] in "tTwWiI":
                syms.append((int(parts[0], 16), parts[2]))
        if syms:
            break
    syms.sort()
    _files[path] = (segs, [a for a, _ in syms], [n for _, n in syms])
    return _files[path]


def short(name):
    """A Rust name without its generic parameters and hash."""
    while True:
        s = re.sub(r"<[^<>]*>", "", name)
        if s == name:
            break
        name = s
    return re.sub(r"::h[0-9a-f]{16}$", "", name)


def fold(root, counts, maps, per):
    ranges = []
    with open(maps) as f:
        for line in f:
            p = line.split()
            if len(p) < 6 or "x" not in p[1] or not p[5].startswith("/"):
                continue
            lo, hi = (int(x, 16) for x in p[0].split("-"))
            ranges.append((lo, hi, int(p[2], 16), p[5]))
    ranges.sort()
    starts = [r[0] for r in ranges]
    total = 0
    for addr, n in counts.items():
        if addr >= KERNEL or n == 0:
            continue
        i = bisect.bisect_right(starts, addr) - 1
        if i < 0 or addr >= ranges[i][1]:
            continue
        lo, _, off, path = ranges[i]
        segs, addrs, names = file_syms(os.path.join(root, path.lstrip("/")))
        foff = addr - lo + off
        vaddr = next((v + foff - o for v, o, s in segs if o <= foff < o + s), None)
        j = bisect.bisect_right(addrs, vaddr) - 1 if vaddr is not None else -1
        name = short(names[j]) if j >= 0 else "?"
        key = f"{os.path.basename(path)}: {name}"
        per[key] = per.get(key, 0) + n
        total += n
    return total


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    opts = dict(a[2:].split("=", 1) for a in sys.argv[1:] if a.startswith("--") and "=" in a)
    if len(args) < 3 or len(args) % 2 == 0:
        sys.exit(__doc__)
    root, pairs = args[0], args[1:]
    counts = [load(p) for p in pairs[::2]]
    if "minus" in opts:
        for addr, n in load(opts["minus"]).items():
            counts[0][addr] = counts[0].get(addr, 0) - n
    per = {}
    total = sum(fold(root, c, m, per) for c, m in zip(counts, pairs[1::2]))
    for k, v in sorted(per.items(), key=lambda kv: -kv[1])[:int(opts.get("top", 20))]:
        print(f"{100 * v / max(total, 1):6.2f}% {v:>14,}  {k}")
    print(f"process: {total:,} instructions")


if __name__ == "__main__":
    main()
