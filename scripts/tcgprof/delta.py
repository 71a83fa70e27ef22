#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""What a guest ran between snapshots of tcgprof's counts (tcgprof.c, snap=1).

  delta.py OUT BEFORE AFTER [BEFORE AFTER ...]

writes OUT, in prof.txt's format, with each block's count summed over the pairs (AFTER
minus BEFORE), and prints "KERNEL USER": the kernel's instructions and user space's (the
block at address 1 with tcgprof's user=1, every block below the kernel's with user=2)
in those sums.
"""
import sys

KERNEL = 0xFFFF800000000000


def load(path):
    per = {}
    with open(path) as f:
        for line in f:
            a, n = line.split()
            per[int(a, 16)] = int(n)
    return per


def main():
    args = sys.argv[1:]
    if len(args) < 3 or len(args) % 2 == 0:
        sys.exit(__doc__)
    out, pairs = args[0], args[1:]
    total = {}
    for before, after in zip(pairs[::2], pairs[1::2]):
        b, a = load(before), load(after)
        for addr, n in a.items():
            d = n - b.get(addr, 0)
            if d:
                total[addr] = total.get(addr, 0) + d
    with open(out, "w") as f:
        for addr in sorted(total):
            if total[addr] > 0:
                f.write(f"{addr:x} {total[addr]}\n")
    # User space: the block at address 1 (user=1), or every block below the kernel's half
    # of the address space (user=2).
    user = sum(n for addr, n in total.items() if addr < KERNEL)
    print(sum(total.values()) - user, user)


if __name__ == "__main__":
    main()
