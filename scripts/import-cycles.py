#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
#
# Fails when the modules of a userspace crate import each other in a circle (a -> b -> a):
# each module's file names the others it uses (`crate::name`, `super::name`, `use name::`
# from the crate root); a circle means no module of it can be read, or tested, alone.
#
#   scripts/import-cycles.py tools/permctl/src [more crate source directories...]
import re
import sys
from pathlib import Path


def graph(src: Path) -> dict[str, set[str]]:
    mods = {p.stem: p for p in src.glob("*.rs") if p.stem not in ("main", "lib")}
    g = {m: set() for m in mods}
    for m, p in mods.items():
        text = re.sub(r"//.*", "", p.read_text())
        for other in mods:
            if other != m and re.search(rf"\b(crate|super)::{other}\b", text):
                g[m].add(other)
    return g


def cycle(g: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(n: str) -> list[str] | None:
        state[n] = 1
        stack.append(n)
        for d in sorted(g[n]):
            if state.get(d) == 1:
                return stack[stack.index(d):] + [d]
            if d not in state and (c := visit(d)):
                return c
        stack.pop()
        state[n] = 2
        return None

    for n in sorted(g):
        if n not in state and (c := visit(n)):
            return c
    return None


rc = 0
for d in sys.argv[1:]:
    c = cycle(graph(Path(d)))
    if c:
        print(f"error: {d}: modules import each other in a circle: {' -> '.join(c)}",
              file=sys.stderr)
        rc = 1
sys.exit(rc)
