// SPDX-License-Identifier: GPL-2.0

//! Owner recovery, on the recovered owner: the connections of its own bindings that peers
//! took over while it was down and still serve (Documentation/design.rst, "Owner
//! recovery"). Each peer lists them in an owner-recovery directive (RECOVERY); the owner
//! follows each on the link until it ends, drops its own stack's resets of it, and refuses a
//! SYN that would open a new connection on the same addresses and ports meanwhile: its stack
//! would answer it, and the client's segments of two connections would then meet.
//!
//! Following is track-only, without sequence numbers (the peer's socket knows them): a
//! connection ends when the service's side (the peer's socket) resets it, or when both
//! FINs were seen and the TIME-WAIT time has passed; a peer's next directive replaces its
//! list (a connection it no longer serves ends at once). A client's reset is not taken on
//! its own word: the peer's socket checks it, and the peer's next list says.

use super::packet::{flags, Segment};
use super::snoop::FlowKey;
use super::track::{Side, TIME_WAIT_MARGIN_MS, TIME_WAIT_MS};

/// A connection of this node's bindings that peer `node` serves.
///
/// # Invariants
///
/// `ends_ms` is set exactly when both FINs were seen (`fins == BOTH_FINS`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Handed {
    /// The connection.
    pub key: FlowKey,
    /// The peer that serves it.
    pub node: u32,
    /// Which ends sent a FIN (bit 0 the service's, bit 1 the client's).
    fins: u8,
    /// When it ends (both FINs seen, plus the TIME-WAIT time).
    ends_ms: Option<u64>,
}

const BOTH_FINS: u8 = 0b11;

impl Handed {
    /// A connection `node` serves, just listed.
    pub fn new(key: FlowKey, node: u32) -> Self {
        Handed {
            key,
            node,
            fins: 0,
            ends_ms: None,
        }
    }

    /// Whether it ended by `now_ms` (both FINs and the TIME-WAIT time).
    pub fn over(&self, now_ms: u64) -> bool {
        self.ends_ms.is_some_and(|t| now_ms >= t)
    }

    /// Keeps what was seen of the same connection in `old` (an earlier list's entry).
    pub fn carry(&mut self, old: &Handed) {
        (self.fins, self.ends_ms) = (old.fins, old.ends_ms);
    }
}

/// What a segment on the link means for the handed-back connections.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Seen {
    /// Not one of them, or nothing that matters.
    Nothing,
    /// A client's SYN that would reuse the connection at this index: drop it.
    Refuse,
    /// The connection at this index ended (the service's side reset it): remove it.
    Ended(usize),
}

/// Looks `seg` up in `list` (sorted by key) and notes what it shows at `now_ms`: a client's
/// SYN for a listed connection is refused, a FIN from either end is noted, a reset from the
/// service's side ends the connection.
pub fn observe(list: &mut [Handed], seg: &Segment, now_ms: u64) -> Seen {
    // From the client to the service, or from the service (the peer's socket) to the client.
    let found = [Side::Client, Side::Owner].into_iter().find_map(|from| {
        let key = FlowKey::of(seg, from);
        list.binary_search_by(|h| h.key.cmp(&key))
            .ok()
            .map(|i| (from, i))
    });
    let Some((from, i)) = found else {
        return Seen::Nothing;
    };
    if seg.has(flags::RST) {
        return if from == Side::Owner {
            Seen::Ended(i)
        } else {
            Seen::Nothing
        };
    }
    if from == Side::Client && seg.is_new_syn() && !list[i].over(now_ms) {
        return Seen::Refuse;
    }
    let h = &mut list[i];
    if seg.has(flags::FIN) {
        h.fins |= match from {
            Side::Owner => 0b01,
            Side::Client => 0b10,
        };
        if h.fins == BOTH_FINS && h.ends_ms.is_none() {
            // INVARIANT: set once, when both FINs were seen.
            h.ends_ms = Some(now_ms + TIME_WAIT_MS + TIME_WAIT_MARGIN_MS);
        }
    }
    Seen::Nothing
}
