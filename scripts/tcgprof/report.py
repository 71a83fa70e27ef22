#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Folds tcgprof's counts (block address, instructions) into functions.

  report.py PROFILE [BASELINE] [--top=N]

PROFILE is a directory run.sh made: prof.txt (the counts), System.map (the test kernel has
no KASLR), permtcp.ko and text (its .text address in the guest). With BASELINE, a profile
of the same workload without what is measured, the difference per function is printed
instead: what the measured run added. The module's functions are also summed, and shown
without their generic parameters.
"""
import bisect
import os
import re
import subprocess
import sys


def symbols(system_map, ko, text):
    syms = []
    with open(system_map) as f:
        for line in f:
            a, t, name = line.split()[:3]
            if t in "tTwW":
                syms.append((int(a, 16), name))
    out = subprocess.run(["nm", "-C", "--defined-only", ko], capture_output=True, text=True,
                         check=True).stdout
    for line in out.splitlines():
        parts = line.split(" ", 2)
        if len(parts) == 3 and parts[1] in "tT":
            syms.append((text + int(parts[0], 16), "[permtcp] " + parts[2]))
    syms.sort()
    return [a for a, _ in syms], [n for _, n in syms]


def rows_all(per, base):
    keys = set(per) | set(base or {})
    return [(k, per.get(k, 0) - (base or {}).get(k, 0)) for k in keys]


def fold(path, addrs, names):
    per = {}
    with open(path) as f:
        for line in f:
            a, n = line.split()
            addr = int(a, 16)
            i = bisect.bisect_right(addrs, addr) - 1
            # User space (tcgprof.c: user=1 counts all of it at address 1, user=2 at the
            # blocks' own addresses): one row.
            name = "[user]" if addr < 0xFFFF800000000000 else names[i] if i >= 0 else "?"
            per[name] = per.get(name, 0) + int(n)
    return per


def short(name):
    """A Rust name without its generic parameters."""
    while True:
        s = re.sub(r"<[^<>]*>", "", name)
        if s == name:
            return s
        name = s


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--top")]
    top = 40
    for a in sys.argv[1:]:
        if a.startswith("--top="):
            top = int(a.split("=", 1)[1])
    if not args:
        sys.exit(__doc__)
    prof = args[0]
    with open(os.path.join(prof, "text")) as f:
        text = int(f.read().strip(), 16)
    addrs, names = symbols(os.path.join(prof, "System.map"), os.path.join(prof, "permtcp.ko"),
                           text)
    per = fold(os.path.join(prof, "prof.txt"), addrs, names)
    if len(args) > 1:
        base = fold(os.path.join(args[1], "prof.txt"), addrs, names)
        diff = {k: per.get(k, 0) - base.get(k, 0) for k in set(per) | set(base)}
        total = sum(v for v in diff.values() if v > 0)
        print(f"instructions added: {total:,} (functions that ran more)")
        rows = sorted(diff.items(), key=lambda kv: -kv[1])[:top]
    else:
        total = sum(per.values())
        print(f"guest kernel instructions: {total:,}")
        rows = sorted(per.items(), key=lambda kv: -kv[1])[:top]
    for name, n in rows:
        print(f"{100 * n / total:6.2f}%  {n:>14,}  {short(name)[:120]}")
    mod = sorted(((n, short(k)) for k, n in rows_all(per, base if len(args) > 1 else None)
                  if k.startswith("[permtcp]")), reverse=True)
    print(f"module: {sum(n for n, _ in mod):,} instructions")


if __name__ == "__main__":
    main()
