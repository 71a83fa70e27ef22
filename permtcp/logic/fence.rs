// SPDX-License-Identifier: GPL-2.0

//! Fencing: two nodes must never answer for one connection.
//!
//! Once a node's cluster daemon has set a lease (LEASE_SET), the node may send segments from
//! its own bindings (the local declaration's addresses and port ranges) only while the lease
//! runs; the daemon renews it while the node has quorum. A node that stops (a SIGSTOP'd VM, a
//! hung kernel), is cut off by a partition or loses quorum stops renewing, and its kernel
//! drops every segment of its bindings from the moment the lease ends, before the peers,
//! whose failure detection takes longer than the lease, take its connections over. Until a
//! lease was ever set nothing is fenced (a node without a cluster daemon works as before).
//! See Documentation/design.rst, "Cluster membership, failure detection and fencing".
//!
//! Also here: the split-brain alarm's test, whether a frame comes from the MAC of a node
//! already declared failed.

use super::bounded::Bounded;
use super::decl::{Declaration, MAX_ADDRS4, MAX_ADDRS6, MAX_RANGES};
use super::packet::Addr;

/// The lease on this node's bindings, in nanoseconds of a monotonic clock.
///
/// # Invariants
///
/// `until_ns` is `None` while no lease was ever set (nothing is fenced).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Lease {
    until_ns: Option<u64>,
}

impl Lease {
    /// Renews the lease for `ms` from `now_ns`; `ms == 0` releases it at once (the node fences
    /// itself).
    pub fn renew(&mut self, now_ns: u64, ms: u32) {
        self.until_ns = Some(now_ns.saturating_add(u64::from(ms) * 1_000_000));
    }

    /// Whether a lease was ever set: from then on the node is fenced whenever it ran out.
    pub fn armed(&self) -> bool {
        self.until_ns.is_some()
    }

    /// Whether the node may send from its bindings at `now_ns`.
    pub fn holds(&self, now_ns: u64) -> bool {
        self.until_ns.is_none_or(|u| now_ns < u)
    }

    /// Where the lease ends, in ns; `None` while no lease was set.
    pub fn until_ns(&self) -> Option<u64> {
        self.until_ns
    }

    /// Milliseconds left at `now_ns` (0 once run out); `None` while no lease was set.
    pub fn left_ms(&self, now_ns: u64) -> Option<u64> {
        self.until_ns.map(|u| u.saturating_sub(now_ns) / 1_000_000)
    }
}

/// At most this many failed nodes' MACs are remembered for the split-brain alarm.
pub const MAX_FAILED_MACS: usize = 64;

/// What the fence and the split-brain alarm check, compiled from the declarations: this
/// node's own bindings (every address of the local declaration with every port range of it),
/// and the MACs of the nodes declared failed.
#[derive(Debug, Default)]
pub struct Fence {
    /// The lease.
    pub lease: Lease,
    addrs: Bounded<Addr, { MAX_ADDRS4 + MAX_ADDRS6 }>,
    ranges: Bounded<(u16, u16), MAX_RANGES>,
    failed_macs: Bounded<[u8; 6], MAX_FAILED_MACS>,
}

impl Fence {
    /// Compiles the bindings of the local declaration and the MACs of the nodes `failed`
    /// says failed; the lease is kept.
    pub fn refresh<'a>(
        &mut self,
        decls: impl Iterator<Item = &'a Declaration>,
        failed: &dyn Fn(u32) -> bool,
    ) {
        self.addrs.clear();
        self.ranges.clear();
        self.failed_macs.clear();
        for d in decls {
            if d.local {
                // Within the bounds: a declaration holds no more than these.
                for a in d.addrs4.iter() {
                    let _ = self.addrs.push(Addr::v4(*a));
                }
                for a in d.addrs6.iter() {
                    let _ = self.addrs.push(Addr(*a));
                }
                for r in d.ranges.iter() {
                    let _ = self.ranges.push((r.lo, r.hi));
                }
            } else if failed(d.node_id) {
                for m in d.macs.iter() {
                    // Beyond the bound, the alarm misses that MAC: it only counts.
                    let _ = self.failed_macs.push(*m);
                }
            }
        }
    }

    /// Whether `addr:port` is one of this node's own bindings.
    pub fn owns(&self, addr: &Addr, port: u16) -> bool {
        self.addrs.iter().any(|a| a == addr)
            && self.ranges.iter().any(|&(lo, hi)| lo <= port && port <= hi)
    }

    /// Whether a segment this node sends from `addr:port` must be dropped at `now_ns`: it
    /// is one of its bindings' and its lease has run out.
    pub fn drops(&self, addr: &Addr, port: u16, now_ns: u64) -> bool {
        !self.lease.holds(now_ns) && self.owns(addr, port)
    }

    /// Whether this node, at `now_ns`, must not send a neighbour message claiming `addr`
    /// ([`arp_claim`], [`ndisc_claim`]): one of its own addresses, its lease run out. Such a
    /// message would point the neighbours' caches, the client's included, back at a node
    /// that no longer serves the address.
    pub fn silences(&self, addr: &Addr, now_ns: u64) -> bool {
        !self.lease.holds(now_ns) && self.addrs.iter().any(|a| a == addr)
    }

    /// Whether a frame from `mac` comes from a node declared failed here.
    pub fn from_failed(&self, mac: &[u8; 6]) -> bool {
        self.failed_macs.iter().any(|m| m == mac)
    }

    /// How many MACs of failed nodes it knows (while none, no frame raises the alarm).
    pub fn failed_macs(&self) -> usize {
        self.failed_macs.len()
    }

    /// The failed nodes' MACs as [`mac_word`]s, in order, for a copy the frame path reads
    /// without the fence's lock.
    pub fn failed_mac_words(&self) -> impl Iterator<Item = u64> + '_ {
        self.failed_macs.iter().map(mac_word)
    }
}

/// A MAC as one word: its six bytes and a seventh, 1, so that no MAC's word is 0 (an empty
/// slot of a copy of [`Fence::failed_mac_words`]).
pub fn mac_word(mac: &[u8; 6]) -> u64 {
    let [a, b, c, d, e, f] = *mac;
    u64::from_le_bytes([a, b, c, d, e, f, 1, 0])
}
/// The IPv4 address an ARP packet (from its ARP header on) claims for its sender: the
/// sender protocol address of a request or reply for IPv4 over Ethernet (gratuitous ARP
/// included). `None` for anything else.
pub fn arp_claim(arp: &[u8]) -> Option<Addr> {
    // htype 1 (Ethernet), ptype 0x0800, hlen 6, plen 4, then the operation, sha, spa.
    let [0, 1, 0x08, 0x00, 6, 4, 0, op, ..] = *arp else {
        return None;
    };
    if !(1..=2).contains(&op) {
        return None;
    }
    let spa: [u8; 4] = arp.get(14..18)?.try_into().ok()?;
    (spa != [0; 4]).then(|| Addr::v4(spa))
}

/// The IPv6 address a neighbour discovery message (from its IPv6 header on) claims for its
/// sender: the target of a neighbour advertisement, the source of a neighbour solicitation
/// (which also updates the receiver's cache). `None` for anything else.
pub fn ndisc_claim(ip6: &[u8]) -> Option<Addr> {
    const ICMPV6: u8 = 58;
    const NS: u8 = 135;
    const NA: u8 = 136;
    if ip6.first()? >> 4 != 6 || *ip6.get(6)? != ICMPV6 {
        return None;
    }
    let at = |from: usize| -> Option<Addr> {
        let a: [u8; 16] = ip6.get(from..from + 16)?.try_into().ok()?;
        (a != [0; 16]).then_some(Addr(a))
    };
    match *ip6.get(40)? {
        NS => at(8),
        NA => at(48),
        _ => None,
    }
}
