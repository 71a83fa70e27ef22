// SPDX-License-Identifier: GPL-2.0

//! Fail-over policy: which node takes a failed owner's connections and its ARP ownership,
//! and which peer a fail-over directive goes to next.
//!
//! The default is the live node with the numerically smallest cluster-node id; a declaration
//! may instead list, per port range, the peers in the order they take over (Documentation/
//! design.rst, "Takeover").
//! Nodes the owner's declaration does not know (no declaration of theirs is stored) are not
//! candidates under the smallest-id policy: a peer must have declared itself.

use crate::logic::bounded::Bounded;
use crate::logic::decl::{ArpPolicy, Declaration, FailoverPolicy, MAX_DECLS, MAX_PEERS};
use crate::logic::packet::Addr;

/// Candidates for a binding, in take-over order.
pub type Order = Bounded<u32, MAX_DECLS>;

fn owns(d: &Declaration, addr: &Addr) -> bool {
    match addr.as_v4() {
        Some(v4) => d.addrs4.as_slice().contains(&v4),
        None => d.addrs6.as_slice().contains(&addr.0),
    }
}

/// Whether `d` declares `addr:port`.
pub fn declares(d: &Declaration, addr: &Addr, port: u16) -> bool {
    owns(d, addr) && d.ranges.iter().any(|r| r.contains(port))
}

/// The declaration that owns `addr:port`, if any.
pub fn owner_of<'a>(
    decls: impl Iterator<Item = &'a Declaration>,
    addr: &Addr,
    port: u16,
) -> Option<&'a Declaration> {
    decls
        .into_iter()
        .find(|d| owns(d, addr) && d.ranges.iter().any(|r| r.contains(port)))
}

/// The nodes that take over `owner`'s binding on `port`, best first, skipping failed nodes.
pub fn takeover_order<'a>(
    decls: impl Iterator<Item = &'a Declaration> + Clone,
    owner: &Declaration,
    port: u16,
    failed: &dyn Fn(u32) -> bool,
) -> Order {
    let mut order = Order::default();
    match owner.failover {
        FailoverPolicy::PeerList => {
            let peers: Bounded<u32, MAX_PEERS> = owner
                .ranges
                .iter()
                .find(|r| r.contains(port))
                .map(|r| r.peers)
                .unwrap_or_default();
            for &p in &peers {
                if !failed(p) && p != owner.node_id {
                    // MAX_PEERS < MAX_DECLS: always fits.
                    let _ = order.push(p);
                }
            }
        }
        FailoverPolicy::SmallestId => {
            let mut ids: Bounded<u32, MAX_DECLS> = Bounded::default();
            for d in decls {
                if d.node_id != owner.node_id && !failed(d.node_id) {
                    let _ = ids.push(d.node_id);
                }
            }
            crate::logic::sort::sort(ids.as_mut_slice());
            order = ids;
        }
    }
    order
}

/// The node after `me` in `order`: where a fail-over directive for a connection `me` cannot
/// take over goes. `None` when `me` is last (the connection is then reset).
pub fn next_after(order: &Order, me: u32) -> Option<u32> {
    let i = order.iter().position(|&n| n == me)?;
    order.as_slice().get(i + 1).copied()
}

/// The node that answers ARP (and neighbour solicitations) for `addr` of a failed `owner`.
pub fn arp_owner<'a>(
    decls: impl Iterator<Item = &'a Declaration> + Clone,
    owner: &Declaration,
    addr: &Addr,
    failed: &dyn Fn(u32) -> bool,
) -> Option<u32> {
    if !owns(owner, addr) {
        return None;
    }
    let smallest = |decls: &mut dyn Iterator<Item = &'a Declaration>| {
        decls
            .filter(|d| d.node_id != owner.node_id && !failed(d.node_id))
            .map(|d| d.node_id)
            .min()
    };
    match owner.arp {
        ArpPolicy::FollowFailover => {
            // The node taking over the address's first port range.
            let first = owner.ranges.iter().map(|r| r.lo).min()?;
            takeover_order(decls, owner, first, failed)
                .iter()
                .next()
                .copied()
        }
        ArpPolicy::SmallestId => smallest(&mut decls.clone()),
        ArpPolicy::Fixed(n) if !failed(n) => Some(n),
        ArpPolicy::Fixed(_) => smallest(&mut decls.clone()),
    }
}

/// How node `me` holds an address of a failed owner after the takeover.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hold {
    /// It answers ARP and neighbour solicitations for the address and announces it: the
    /// client's frames are addressed to its MAC.
    Announced,
    /// It serves connections of the address (those the policy or a fail-over directive
    /// gives it) while another node answers ARP for it: it holds the address without
    /// answering for it or announcing it, and takes those connections' frames, addressed to
    /// the ARP owner's MAC, off the flooding link.
    Quiet,
    /// Neither: it is no peer of the address's bindings.
    No,
}

/// How `me` holds `addr` of the failed `owner` ([`Hold`]).
pub fn hold<'a>(
    decls: impl Iterator<Item = &'a Declaration> + Clone,
    owner: &Declaration,
    addr: &Addr,
    me: u32,
    failed: &dyn Fn(u32) -> bool,
) -> Hold {
    if !owns(owner, addr) || me == owner.node_id {
        return Hold::No;
    }
    if arp_owner(decls.clone(), owner, addr, failed) == Some(me) {
        return Hold::Announced;
    }
    let peer = owner.ranges.iter().any(|r| {
        takeover_order(decls.clone(), owner, r.lo, failed)
            .as_slice()
            .contains(&me)
    });
    if peer {
        Hold::Quiet
    } else {
        Hold::No
    }
}
