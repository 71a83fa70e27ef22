#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Snooping against conntrack, by the instructions each ran per frame.

  compare.py SNOOP CT PLAIN

SNOOP, CT and PLAIN are three profiles of selftests/prof/snoop.sh (run.sh with
permtcp.prof=snoop, ct and plain: the same five transfers with the peer snooping, with
conntrack in the owner's and the client's namespaces, and with neither). The module's cost
is what its functions ran in SNOOP more than in PLAIN; conntrack's, what conntrack's own
functions (CONNTRACK below: the tracker, its hash and tuple, not the netfilter hook's
dispatch nor the nft rule that turns it on) ran in CT more than in PLAIN, over the two
namespaces. Each is divided by the frames its run's transfers took through the owner's
namespace (the "# link frames:" line), which every one of those hooks sees once. Unlike
times under TCG, these counts barely move from one run to the next. A second comparison
adds to each the kernel's skb and slab functions (HELPERS below) it made run more.
"""
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from report import fold, symbols  # noqa: E402

CONNTRACK = re.compile(r"conntrack|^_*nf_ct_|^nf_confirm|^_*siphash|^get_l4proto|^nf_l4proto"
                       r"|^tcp_in_window")
# The kernel's skb and slab functions, which a hook calls to hold frames and to allocate and
# free (cloning a frame, the slab and its memory-cgroup charge, freeing through the softnet
# completion queue): counted in the second comparison, for both, where the first counts
# each one's own functions only. Page-cache and page-table work (the programs each mode
# starts) is left out of both: it is not per frame.
HELPERS = re.compile(r"^_*skb_clone|^__copy_skb_header|^_*kmem_cache_|^_*kmalloc|^kfree$"
                     r"|^krealloc|^kvfree|^_*slab_|^___slab_|^refill_objects|^kfree_skbmem"
                     r"|^skb_release_|^skb_free_head|^_*napi_kfree_skb|^napi_skb_cache"
                     r"|^dev_kfree_skb_irq_reason|^net_tx_action|^_*kfree_skb|^consume_skb"
                     r"|^sk_skb_reason_drop|^skb_orphan|^sock_wfree|^tcp_wfree|^obj_cgroup_"
                     r"|^_*memcg_slab_|^refill_obj_stock|^consume_obj_stock|^drain_obj_stock")


def load(prof):
    with open(os.path.join(prof, "text")) as f:
        text = int(f.read().split()[0], 16)
    addrs, names = symbols(os.path.join(prof, "System.map"), os.path.join(prof, "permtcp.ko"),
                           text)
    per = fold(os.path.join(prof, "prof.txt"), addrs, names)
    frames = None
    with open(os.path.join(prof, "run.log")) as f:
        for line in f:
            m = re.search(r"# link frames: (\d+)", line)
            if m:
                frames = int(m.group(1))
    if not frames:
        sys.exit(f"{prof}: no '# link frames:' line in run.log")
    return per, frames


def added(per, base, keep):
    rows = {k: per.get(k, 0) - base.get(k, 0) for k in set(per) | set(base) if keep(k)}
    return sum(rows.values()), rows


def main():
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    (snoop, sf), (ct, cf), (plain, _) = (load(p) for p in sys.argv[1:4])
    mod, _ = added(snoop, plain, lambda k: k.startswith("[permtcp] "))
    ctr, rows = added(ct, plain, lambda k: CONNTRACK.search(k) is not None)
    m, c = mod / sf, ctr / cf / 2
    top = ", ".join(f"{k} {v / cf / 2:.0f}" for k, v in
                    sorted(rows.items(), key=lambda kv: -kv[1])[:4])
    print(f"module, snooping: {m:.0f} instructions per frame ({sf} frames)")
    print(f"conntrack: {c:.0f} instructions per frame and namespace ({cf} frames; {top})")
    print(f"snooping/conntrack by instructions: {m / c:.2f}")
    # The same with the kernel's skb and slab work each caused.
    mh, _ = added(snoop, plain, lambda k: HELPERS.search(k) is not None)
    ch, _ = added(ct, plain, lambda k: HELPERS.search(k) is not None)
    mt, ctt = m + mh / sf, c + ch / cf / 2
    print(f"with the kernel's skb and slab functions: module {mt:.0f}, conntrack {ctt:.0f}"
          f" per frame (+{mh / sf:.0f}, +{ch / cf / 2:.0f})")
    print(f"snooping/conntrack by instructions, skb and slab work included: {mt / ctt:.2f}")


if __name__ == "__main__":
    main()
