// SPDX-License-Identifier: GPL-2.0

//! The kernel side of snooping: the namespace's connection table behind an IRQ-safe
//! spinlock, fed by the netfilter hook in softirq context and read by netlink handlers.
//!
//! All decisions (parsing, matching, tracking, limits) are made by `logic::snoop`; this file
//! provides its table (an rbtree keyed by the 4-tuple), its chunk allocator (atomic, since the
//! hook runs in softirq) and access to the skb.

use crate::glue::{Dump, Skb};
use crate::logic::errno::Error as LogicError;
use crate::logic::ops::{DataChunk, MAX_DATA_CHUNK};
use crate::logic::packet::{tcp_csum_ok, Segment, HEADER_MAX};
use crate::logic::seq;
use crate::logic::seqbuf::{Budget, ChunkAlloc, Slots};
use crate::logic::snoop::{pick, Filter, FlowKey, FlowMap, Frame, Limits, Outcome, Pick, Snooper};
use crate::logic::snoopnl::{ConnInfo, StatsInfo};
use crate::logic::track::{Conn, Side, State};
use crate::logic::uapi::cmd;
use core::ffi::c_long;
use kernel::alloc::flags::{__GFP_NOWARN, GFP_ATOMIC, GFP_KERNEL, GFP_KERNEL_ACCOUNT, GFP_NOWAIT};
use kernel::alloc::Flags;
use kernel::prelude::*;
use kernel::rbtree::{RBTree, RBTreeNode, RBTreeNodeReservation};

/// Allocation flags of the mirror on the frame path (chunks, slot tables, table nodes): no
/// sleeping (softirq), no dipping into the atomic reserves the stack keeps for real traffic,
/// no warning (a failure marks the connection not ready, with the reason), and accounted:
/// charged to the memory cgroup the hook makes active (`set_active_memcg()`: the cgroup of
/// whoever started snooping), within that cgroup's limit (a charge over `memory.max` fails
/// like any other allocation: `GFP_NOWAIT` is never forced through as `GFP_ATOMIC` is).
fn mirror_gfp() -> Flags {
    GFP_NOWAIT | __GFP_NOWARN | (GFP_KERNEL_ACCOUNT & !GFP_KERNEL)
}

pub(crate) use crate::glue::Chunk;

/// A growable table of chunk slots.
#[derive(Default)]
pub(crate) struct KSlots(KVec<Option<Chunk>>);

impl Slots<Chunk> for KSlots {
    fn as_slice(&self) -> &[Option<Chunk>] {
        &self.0
    }

    fn as_mut_slice(&mut self) -> &mut [Option<Chunk>] {
        &mut self.0
    }

    fn grow_to(&mut self, n: usize) -> bool {
        let more = n.saturating_sub(self.0.len());
        if self.0.reserve(more, mirror_gfp()).is_err() {
            return false;
        }
        while self.0.len() < n {
            // Capacity was reserved above, so this cannot fail.
            if self.0.push_within_capacity(None).is_err() {
                return false;
            }
        }
        true
    }
}

/// Chunks from the slab, atomically: the hook runs in softirq context.
pub(crate) struct KernelChunks;

/// The allocator connections use: slab chunks behind the namespace's byte budget.
pub(crate) type Alloc = Budget<KernelChunks>;

impl ChunkAlloc for KernelChunks {
    type Chunk = Chunk;
    type Slots = KSlots;

    fn alloc(&mut self) -> Option<Chunk> {
        Chunk::new(mirror_gfp())
    }

    fn free(&mut self, chunk: Chunk) {
        drop(chunk);
    }
}

/// The mirrored connections, ordered by 4-tuple.
pub(crate) struct ConnMap {
    tree: RBTree<FlowKey, Conn<Alloc>>,
    len: usize,
}

impl ConnMap {
    /// An empty table.
    pub(crate) fn new() -> Self {
        ConnMap {
            tree: RBTree::new(),
            len: 0,
        }
    }
}

impl FlowMap<Alloc> for ConnMap {
    fn get_mut(&mut self, key: &FlowKey) -> Option<&mut Conn<Alloc>> {
        self.tree.get_mut(key)
    }

    fn insert(&mut self, key: FlowKey, conn: Conn<Alloc>) -> bool {
        match RBTreeNode::new(key, conn, mirror_gfp()) {
            Ok(node) => {
                if self.tree.insert(node).is_none() {
                    self.len += 1;
                }
                true
            }
            Err(_) => false,
        }
    }

    fn remove(&mut self, key: &FlowKey) -> Option<Conn<Alloc>> {
        let c = self.tree.remove(key);
        if c.is_some() {
            self.len -= 1;
        }
        c
    }

    fn len(&self) -> usize {
        self.len
    }

    fn retain(&mut self, mut f: impl FnMut(&FlowKey, &mut Conn<Alloc>) -> bool) {
        let mut cursor = self.tree.cursor_front_mut();
        while let Some(mut c) = cursor {
            let (key, conn) = c.current_mut();
            let key = *key;
            if f(&key, conn) {
                cursor = c.move_next();
                continue;
            }
            let (next, _removed) = c.remove_current();
            self.len -= 1;
            // remove_current() falls back to the previous node at the end: stop there.
            cursor = next.filter(|n| n.current().0 > &key);
        }
    }
}

/// A table node allocated ahead, for [`SnoopTable::put_back`] under the spinlock.
pub(crate) type Reservation = RBTreeNodeReservation<FlowKey, Conn<Alloc>>;

/// Connections moved out of the table by a takeover. Their chunks count against the table's
/// budget until [`SnoopTable::put_back`] returns them.
pub(crate) type Taking = KVVec<(FlowKey, Conn<Alloc>)>;

/// What [`SnoopTable::take_key`] found.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Take {
    /// Moved out of the table.
    Taken,
    /// Not mirrored here.
    Absent,
    /// Mirrored, but over (TIME-WAIT or closed): left where it is.
    Over,
}

/// A namespace's snooping state.
pub(crate) struct SnoopTable {
    /// Whether a device is hooked.
    pub(crate) active: bool,
    snooper: Snooper,
    conns: ConnMap,
    alloc: Alloc,
    last_gc_ms: u64,
}

impl SnoopTable {
    /// An inactive table.
    pub(crate) fn new() -> Self {
        let limits = Limits::default();
        SnoopTable {
            active: false,
            snooper: Snooper::new(Filter::default(), limits),
            conns: ConnMap {
                tree: RBTree::new(),
                len: 0,
            },
            alloc: Budget::new(KernelChunks, limits.max_bytes),
            last_gc_ms: 0,
        }
    }

    /// Starts afresh with `limits`, snooping the bindings of `filter`.
    pub(crate) fn start(&mut self, limits: Limits, filter: Filter) {
        self.clear();
        self.snooper = Snooper::new(filter, limits);
        self.alloc.max = limits.max_bytes;
        self.active = true;
    }

    /// Stops and forgets every connection (counters stay readable).
    pub(crate) fn stop(&mut self) {
        self.clear();
        self.active = false;
    }

    fn clear(&mut self) {
        let alloc = &mut self.alloc;
        self.conns.retain(|_, c| {
            c.release(alloc);
            false
        });
    }

    /// Declarations changed: snoop the new set of bindings, dropping connections of bindings
    /// that are no longer snooped.
    pub(crate) fn refilter(&mut self, filter: Filter) {
        self.snooper.filter = filter;
        let (filter, alloc) = (&self.snooper.filter, &mut self.alloc);
        self.conns.retain(|k, c| {
            let keep = filter.snoops(&k.owner_addr, k.owner_port);
            if !keep {
                c.release(alloc);
            }
            keep
        });
    }

    /// One frame from the hook: what the snooper did with it.
    pub(crate) fn on_frame(&mut self, skb: &Skb<'_>, now_ms: u64) -> Outcome {
        if !self.active {
            return Outcome::Ignored;
        }
        let mut buf = [0u8; HEADER_MAX];
        let Some(hdr) = skb.header(&mut buf) else {
            return Outcome::Ignored;
        };
        let csum = |seg: &Segment| skb.csum_ok(seg.l4_off, seg.l4_len(), |s| tcp_csum_ok(seg, s));
        let frame = Frame {
            hdr,
            l3_len: skb.len() as usize,
            gso: skb.is_gso(),
            payload: skb,
            src_mac: skb.src_mac(),
        };
        let outcome = self
            .snooper
            .on_frame(&mut self.conns, &mut self.alloc, frame, csum, now_ms);
        self.gc(now_ms);
        outcome
    }

    /// Mirrors connection `key` from now on as `conn` describes it (see
    /// [`Snooper::seed`]); `false` when not snooping, or the table or budget is full.
    pub(crate) fn seed(&mut self, key: FlowKey, conn: Conn<Alloc>) -> bool {
        self.active
            && self
                .snooper
                .seed(&mut self.conns, &mut self.alloc, key, conn)
    }

    /// Stops mirroring connection `key`, if it was.
    pub(crate) fn forget(&mut self, key: &FlowKey) {
        if let Some(mut c) = self.conns.remove(key) {
            c.release(&mut self.alloc);
        }
    }

    /// Ends expired TIME_WAIT entries, at most once a second (no timer runs for it).
    pub(crate) fn gc(&mut self, now_ms: u64) {
        if now_ms.wrapping_sub(self.last_gc_ms) >= 1000 {
            self.last_gc_ms = now_ms;
            self.snooper
                .expire(&mut self.conns, &mut self.alloc, now_ms);
        }
    }

    /// Counters and limits.
    pub(crate) fn stats(&self, ifindex: u32) -> StatsInfo {
        let mut counters = self.snooper.counters;
        counters.byte_limit = self.alloc.refused;
        StatsInfo {
            ifindex,
            conns: self.conns.len as u32,
            max_conns: self.snooper.limits.max_conns,
            bytes: self.alloc.used,
            max_bytes: self.snooper.limits.max_bytes,
            bindings: self.snooper.filter.bindings.len() as u32,
            counters,
            alloc_failed: self.alloc.failed,
            hook_ns: 0,
            hook_frames: 0,
            rst_dropped: 0,
            steered: 0,
            handed: 0,
            syn_refused: 0,
        }
    }

    /// The first connection after `after` in 4-tuple order (the first of all with `None`):
    /// one lookup, where a dump resumes.
    pub(crate) fn next_after(
        &self,
        after: Option<&FlowKey>,
        now_ms: u64,
    ) -> Option<(FlowKey, ConnInfo)> {
        let c = match after {
            None => self.conns.tree.cursor_front()?,
            Some(k) => self.conns.tree.cursor_lower_bound(k)?,
        };
        let (k, conn) = match c.current() {
            (k, _) if Some(k) == after => c.peek_next()?,
            current => current,
        };
        Some((*k, ConnInfo::from_conn(k, conn, now_ms)))
    }

    /// Connections in the table.
    pub(crate) fn len(&self) -> usize {
        self.conns.len
    }

    /// Moves the connections `whose` gives this node (`Some(true)`) into `out`, within its
    /// spare capacity, as [`pick`] decides; returns how many of them found no room and how
    /// many of the failed node's connections the policy gives other nodes (they stay,
    /// followed).
    pub(crate) fn take_mine(
        &mut self,
        whose: impl Fn(&FlowKey) -> Option<bool>,
        out: &mut Taking,
    ) -> (u32, u32) {
        let (mut no_room, mut not_mine) = (0u32, 0u32);
        let mut cursor = self.conns.tree.cursor_front_mut();
        while let Some(mut c) = cursor {
            let (key, conn) = c.current_mut();
            let key = *key;
            let take = match pick(conn, whose(&key)) {
                Pick::Leave => false,
                Pick::Other => {
                    conn.followed = true;
                    not_mine += 1;
                    false
                }
                Pick::Take => {
                    let room = out.len() < out.capacity();
                    if !room {
                        no_room += 1;
                    }
                    room
                }
            };
            if !take {
                cursor = c.move_next();
                continue;
            }
            let (next, node) = c.remove_current();
            self.conns.len -= 1;
            // Within the spare capacity checked above: no allocation, cannot fail.
            let _ = out.push(node.to_key_value(), GFP_ATOMIC | __GFP_NOWARN);
            // remove_current() falls back to the previous node at the end: stop there.
            cursor = next.filter(|n| n.current().0 > &key);
        }
        (no_room, not_mine)
    }

    /// The mirrored connection `key`, if any.
    pub(crate) fn get(&self, key: &FlowKey) -> Option<&Conn<Alloc>> {
        self.conns.tree.get(key)
    }

    /// Whether the connection `key` is mirrored.
    pub(crate) fn holds(&self, key: &FlowKey) -> bool {
        self.conns.tree.get(key).is_some()
    }

    /// Moves the connection `key` out of the table into `out` (which has room for it), unless
    /// it is over (TIME-WAIT or closed: followed until its deadline, never rebuilt, passed
    /// on or reset, as [`Self::take_mine`] leaves it).
    pub(crate) fn take_key(&mut self, key: &FlowKey, out: &mut Taking) -> Take {
        match self.conns.tree.get(key) {
            None => return Take::Absent,
            Some(c) if matches!(c.state, State::TimeWait | State::Closed) => return Take::Over,
            Some(_) if out.len() == out.capacity() => return Take::Absent,
            Some(_) => {}
        }
        let Some(c) = self.conns.remove(key) else {
            return Take::Absent;
        };
        // Within the spare capacity checked above: cannot fail.
        match out.push((*key, c), GFP_ATOMIC | __GFP_NOWARN) {
            Ok(()) => Take::Taken,
            Err(_) => Take::Absent,
        }
    }

    /// Puts the connections moved out by [`Self::take_mine`] or [`Self::take_key`] that
    /// `back` names into the table again, one reserved node from `nodes` each (without one,
    /// a connection is released as the others are), and returns the chunks of the others to
    /// the budget. `taken` is left empty, for the caller to free after the lock.
    pub(crate) fn put_back(
        &mut self,
        taken: &mut Taking,
        back: impl Fn(&FlowKey) -> bool,
        nodes: &mut KVec<Reservation>,
    ) {
        while let Some((k, mut c)) = taken.pop() {
            let node = if back(&k) { nodes.pop() } else { None };
            let Some(node) = node else {
                c.release(&mut self.alloc);
                continue;
            };
            // Passed on: another node serves it from now on.
            c.followed = true;
            match self.conns.tree.insert(node.into_node(k, c)) {
                None => self.conns.len += 1,
                Some(old) => old.to_key_value().1.release(&mut self.alloc),
            }
        }
    }

    /// One round of CONN_DATA_GET for the mirrored connection `key`: the bytes `side` sent
    /// that the mirror retains, from stream position `*pos` on, in messages of at most
    /// [`MAX_DATA_CHUNK`] bytes. `None` when the connection is not mirrored.
    pub(crate) fn dump_data(
        &self,
        key: &FlowKey,
        side: Side,
        dump: &mut Dump<'_>,
        pos: &mut c_long,
    ) -> Option<Result<(), LogicError>> {
        let c = self.conns.tree.get(key)?;
        let data = &c.side(side).data;
        // Skip what earlier rounds sent, then one message per piece.
        let mut skip = *pos as u32;
        for (start, end) in data.ranges() {
            let len = seq::dist(start, end);
            if skip >= len {
                skip -= len;
                continue;
            }
            let mut at = start.wrapping_add(skip);
            skip = 0;
            while seq::before(at, end) {
                let n = seq::dist(at, end).min(MAX_DATA_CHUNK as u32);
                let added = dump.add(cmd::CONN_DATA_GET, |w| {
                    DataChunk::write_with(w, at, n as usize, |buf| data.read(at, buf))
                });
                match added {
                    Ok(true) => {}
                    Ok(false) => return Some(Ok(())),
                    Err(e) => return Some(Err(e)),
                }
                *pos += c_long::from(n);
                at = at.wrapping_add(n);
            }
        }
        Some(Ok(()))
    }
}
