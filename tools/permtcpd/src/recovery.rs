// SPDX-License-Identifier: GPL-2.0

//! Owner recovery between daemons: the lists of connections peers still serve for a node
//! that came back (Documentation/cluster.rst, "Owner recovery").
//!
//! A peer that learns a node's new incarnation sends it, in [`Recovery`] parts, the
//! connections of that node's bindings it still serves (the kernel's `served` list; empty
//! when it serves none, so that the node knows it heard from every peer); the node installs
//! each complete list in its kernel (`RECOVERY`: it follows those connections, never resets
//! them and refuses a SYN reusing one) and acknowledges it; only then does the peer hand the
//! node's addresses back. Pure: the daemon sends, retransmits and calls the kernel.

use crate::wire::{Recovery, RECOVERY_PART};
use permtcp_logic::snoop::FlowKey;
use std::collections::HashMap;

/// The parts of list `id` of `served` for the receiver's incarnation `incarnation`: one part
/// per [`RECOVERY_PART`] connections, and one empty part for an empty list. `None` when the
/// list has more parts than a u16 counts (more than 13 million connections).
pub fn split(id: u64, incarnation: u64, served: &[FlowKey]) -> Option<Vec<Recovery>> {
    let chunks: Vec<&[FlowKey]> = if served.is_empty() {
        vec![&[]]
    } else {
        served.chunks(RECOVERY_PART).collect()
    };
    let parts = u16::try_from(chunks.len()).ok()?;
    Some(
        chunks
            .into_iter()
            .enumerate()
            .map(|(i, c)| Recovery {
                id,
                incarnation,
                part: i as u16,
                parts,
                served: c.to_vec(),
            })
            .collect(),
    )
}

/// A list being received: the sender's incarnation, the list's id, its parts so far.
type Partial = (u64, u64, Vec<Option<Vec<FlowKey>>>);

/// Lists being received, per sending peer: the newest one.
#[derive(Debug, Default)]
pub struct Inbox {
    lists: HashMap<u32, Partial>,
}

impl Inbox {
    /// Adds a part from `from` in incarnation `inc`; returns the list when it is complete
    /// (each time a part of a complete list arrives again: retransmissions are acknowledged
    /// again). A part of an older list than the newest one seen from `from` in `inc` is
    /// ignored; a newer list, or any list of a newer incarnation (whose ids start again),
    /// replaces it.
    pub fn add(&mut self, from: u32, inc: u64, r: Recovery) -> Option<(u64, Vec<FlowKey>)> {
        let fresh = |r: &Recovery| (inc, r.id, vec![None; usize::from(r.parts)]);
        let e = self.lists.entry(from).or_insert_with(|| fresh(&r));
        if inc < e.0 || (inc == e.0 && r.id < e.1) {
            return None;
        }
        if inc > e.0 || r.id > e.1 || e.2.len() != usize::from(r.parts) {
            *e = fresh(&r);
        }
        e.2[usize::from(r.part)] = Some(r.served);
        if e.2.iter().any(Option::is_none) {
            return None;
        }
        Some((e.1, e.2.iter().flatten().flatten().copied().collect()))
    }

    /// Forgets every list (this node's incarnation changed).
    pub fn clear(&mut self) {
        self.lists.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use permtcp_logic::packet::Addr;

    fn key(i: u16) -> FlowKey {
        FlowKey {
            owner_addr: Addr::v4([10, 0, 0, 1]),
            client_addr: Addr::v4([10, 0, 0, 100]),
            owner_port: 80,
            client_port: i,
        }
    }

    #[test]
    fn a_list_goes_in_parts_and_comes_back_whole() {
        let served: Vec<FlowKey> = (0..450).map(key).collect();
        let parts = split(7, 9, &served).unwrap();
        assert_eq!(parts.len(), 3);
        assert!(parts
            .iter()
            .all(|p| p.parts == 3 && p.id == 7 && p.incarnation == 9));
        assert_eq!(parts[2].served.len(), 50);
        let mut inbox = Inbox::default();
        // Out of order, one part twice: complete only with the last missing part.
        assert_eq!(inbox.add(2, 1, parts[2].clone()), None);
        assert_eq!(inbox.add(2, 1, parts[2].clone()), None);
        assert_eq!(inbox.add(2, 1, parts[0].clone()), None);
        let (id, all) = inbox.add(2, 1, parts[1].clone()).unwrap();
        let mut sorted = all.clone();
        sorted.sort_by_key(|k| k.client_port);
        assert_eq!((id, sorted), (7, served.clone()));
        // A retransmitted part of a complete list: complete again (acknowledged again).
        assert_eq!(inbox.add(2, 1, parts[0].clone()).unwrap().1.len(), 450);
        // Another peer's list is its own.
        assert_eq!(inbox.add(3, 1, parts[0].clone()), None);
    }

    #[test]
    fn an_empty_list_is_one_empty_part() {
        let parts = split(1, 1, &[]).unwrap();
        assert_eq!(parts.len(), 1);
        assert_eq!((parts[0].part, parts[0].parts), (0, 1));
        let mut inbox = Inbox::default();
        assert_eq!(inbox.add(5, 1, parts[0].clone()), Some((1, vec![])));
    }

    #[test]
    fn a_newer_list_replaces_an_older_one_and_older_parts_are_ignored() {
        let old = split(1, 1, &(0..300).map(key).collect::<Vec<_>>()).unwrap();
        let new = split(2, 1, &[key(7)]).unwrap();
        let mut inbox = Inbox::default();
        assert_eq!(inbox.add(2, 1, old[0].clone()), None);
        assert_eq!(inbox.add(2, 1, new[0].clone()), Some((2, vec![key(7)])));
        assert_eq!(inbox.add(2, 1, old[1].clone()), None, "older list");
        // The sender restarted (a newer incarnation): its ids start again.
        assert_eq!(inbox.add(2, 2, old[0].clone()), None);
        assert_eq!(inbox.add(2, 2, old[1].clone()).unwrap().1.len(), 300);
        assert_eq!(inbox.add(2, 1, new[0].clone()), None, "older incarnation");
        inbox.clear();
        assert_eq!(inbox.add(2, 2, old[0].clone()), None);
    }
}
