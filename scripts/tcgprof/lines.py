#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Folds tcgprof's counts for the module into source lines.

  lines.py PROFILE DEBUG_KO [BASELINE] [--top=N] [--per=N] [--function=SYMBOL]

DEBUG_KO is the profiled module's code built with line tables (the same sources built with
KRUSTFLAGS=-Cdebuginfo=1: its .text is byte for byte the module's, which this checks
against PROFILE/permtcp.ko). A translation block runs from its first instruction to the
first jump, call or return; its count (its instructions times its runs) is spread over the
lines of those instructions, each line being the innermost one the compiler recorded (an
inlined function's own line). With BASELINE, the difference; with --per=N, counts are
divided by N (frames, say); with --function=SYMBOL, only the instructions of the symbols
whose (mangled) names contain SYMBOL (a function and what the compiler inlined into it,
every instance of a generic one) count.
"""
import bisect
import os
import re
import subprocess
import sys

ENDS = re.compile(r"^(j[a-z]*|call|ret[a-z]*|ud2|int3|hlt|iret[a-z]*|sysret[a-z]*)$")


def text_bytes(ko):
    out = subprocess.run(["objcopy", "-O", "binary", "--only-section=.text", ko, "/dev/stdout"],
                         capture_output=True, check=True).stdout
    return out


def instructions(ko, function=None):
    """(offset, mnemonic, 'file:line') for every instruction of .text (of symbol `function`
    only, when given)."""
    out = subprocess.run(["objdump", "-d", "-l", "--no-show-raw-insn", "-j", ".text", ko],
                         capture_output=True, text=True, check=True).stdout
    insns = []
    line = "?"
    sym = None
    for s in out.splitlines():
        m = re.match(r"^[0-9a-f]+ <(\S+)>:$", s)
        if m:
            # A function's first line comes after its header; the C glue has none (only
            # the Rust is built with line tables): its instructions count under its name,
            # not under the last Rust line before it.
            sym = m.group(1)
            line = f"<{sym}>"
            continue
        m = re.match(r"^(/\S+?):(\d+)", s)
        if m:
            line = "/".join(m.group(1).split("/")[-2:]) + ":" + m.group(2)
            continue
        m = re.match(r"^\s+([0-9a-f]+):\s+(\S+)", s)
        if m:
            keep = function is None or (sym is not None and function in sym)
            insns.append((int(m.group(1), 16), m.group(2), line if keep else None))
    return insns


def fold(prof, insns, text):
    offs = [o for o, _, _ in insns]
    per = {}
    with open(os.path.join(prof, "prof.txt")) as f:
        for s in f:
            a, n = s.split()
            off = int(a, 16) - text
            i = bisect.bisect_left(offs, off)
            if off < 0 or i >= len(offs) or offs[i] != off:
                continue
            j = i
            while j < len(insns) - 1 and not ENDS.match(insns[j][1]):
                j += 1
            runs = int(n) / (j - i + 1)
            for k in range(i, j + 1):
                if insns[k][2] is None:
                    continue
                per[insns[k][2]] = per.get(insns[k][2], 0) + runs
    return per


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    opts = dict(a[2:].split("=", 1) for a in sys.argv[1:] if a.startswith("--"))
    top, div = int(opts.get("top", 40)), float(opts.get("per", 1))
    prof, ko = args[0], args[1]
    if text_bytes(ko) != text_bytes(os.path.join(prof, "permtcp.ko")):
        sys.exit(f"{ko}: its .text is not the profiled module's")
    insns = instructions(ko, opts.get("function"))
    per = {}
    for sign, p in [(1, prof)] + [(-1, b) for b in args[2:3]]:
        with open(os.path.join(p, "text")) as f:
            text = int(f.read().split()[0], 16)
        for k, v in fold(p, insns, text).items():
            per[k] = per.get(k, 0) + sign * v
    rows = sorted(per.items(), key=lambda kv: -kv[1])[:top]
    for k, v in rows:
        print(f"{v / div:14,.1f}  {k}")
    print(f"module: {sum(per.values()) / div:,.1f} instructions")


if __name__ == "__main__":
    main()
