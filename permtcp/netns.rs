// SPDX-License-Identifier: GPL-2.0

//! Per-network-namespace state and its locks.
//!
//! Every namespace has its own cluster view (ownership declarations, failed nodes), mirror,
//! parked connections and takeover records: a cluster node's view of its peers is a property
//! of the network it is attached to, and containers sharing a kernel must not see each other's
//! clusters. The C glue keeps a pointer to a [`NetState`] in the namespace's `net_generic`
//! slot (`adapter.rs` creates and frees it).
//!
//! This file holds the state and the operations that touch only it; the takeover's
//! orchestration is in `takeover.rs`, the mirror's table in `snoop.rs`.
//!
//! # Lock order
//!
//! `control` (mutex: one changing command at a time) before `cluster` (mutex) before `snoop`
//! (a shard's IRQ-safe spinlock, one at a time); `rebuilding` (IRQ-safe spinlock) is taken
//! with no other spinlock held: a takeover publishes the keys it takes before it moves their
//! connections out of the shards, so the LOCAL_OUT hook, which looks in the shard and then
//! in `rebuilding`, never misses one. `fence` and a shard of `handed` (IRQ-safe spinlocks,
//! one at a time) after `cluster`, with no other spinlock held. A shard of `served` (IRQ-safe spinlocks, one at a
//! time) may be taken under `held`. `parking`, `taken` and
//! `released` (mutexes) are taken alone, never with another of these held.

use crate::glue::{Net, OutVerdict, Skb};
use crate::logic::decl::{check_insert, Declaration, MAX_DECLS};
use crate::logic::errno::{code, Error as LogicError};
use crate::logic::fence::{arp_claim, mac_word, ndisc_claim, Fence, MAX_FAILED_MACS};
use crate::logic::ops::StatusReply;
use crate::logic::ops::{RecoveryRequest, MAX_HANDED};
use crate::logic::packet::{flags, tcp_flags, Segment, Skip, HEADER_MAX};
use crate::logic::policy::declares;
use crate::logic::recovery::{observe, Handed, Seen};
use crate::logic::snoop::{Filter, FlowKey, Limits, Outcome};
use crate::logic::snoopnl::StatsInfo;
use crate::logic::track::Side;
use crate::logic::uapi::FAMILY_VERSION;
use crate::snoop::{Released, Snoop};
use crate::takeover::{Parking, TakenList};
use core::mem::MaybeUninit;
use core::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use kernel::prelude::*;
use kernel::sync::{LockClassKey, Mutex, SpinLockIrq};
use kernel::{new_mutex, new_spinlock_irq};

/// The cluster as this namespace sees it: declarations and the nodes declared failed.
pub(crate) struct Cluster {
    /// Stored declarations, in insertion order; at most `MAX_DECLS`, checked as a set.
    pub(crate) decls: KVec<KBox<Declaration>>,
    /// Nodes declared failed and taken over.
    pub(crate) failed: KVec<u32>,
}

impl Cluster {
    /// Every stored declaration.
    pub(crate) fn all(&self) -> impl Iterator<Item = &Declaration> + Clone {
        self.decls.iter().map(|b| &**b)
    }

    /// Whether `node` was declared failed here.
    pub(crate) fn is_failed(&self, node: u32) -> bool {
        self.failed.contains(&node)
    }

    /// The declaration of `node` and the local node's id.
    pub(crate) fn roles(&self, node: u32) -> Result<(&Declaration, u32), LogicError> {
        let owner = self
            .all()
            .find(|d| d.node_id == node)
            .ok_or(LogicError::new(
                code::ENOENT,
                c"no declaration for this node id",
            ))?;
        let me = self
            .all()
            .find(|d| d.local)
            .map(|d| d.node_id)
            .ok_or(LogicError::new(
                code::EINVAL,
                c"no local declaration: this node is in no cluster",
            ))?;
        Ok((owner, me))
    }

    /// The snooped bindings: those the declarations give this node, failed nodes'
    /// track-only.
    pub(crate) fn filter(&self) -> Filter {
        Filter::compile_failed(self.all(), &|n| self.is_failed(n))
    }

    /// Brings the mirror's filter and the fence up to date with the cluster view.
    pub(crate) fn apply(&self, state: &NetState) {
        match KBox::new(self.filter(), GFP_KERNEL) {
            Ok(f) => state.snoop.refilter(f),
            // An order-0 GFP_KERNEL allocation: this takes an OOM kill, and the old filter
            // stays in place.
            Err(_) => pr_err!("permtcp: out of memory: the snooping filter was not updated\n"),
        }
        state.refresh_fence(self);
    }
}

/// State of one network namespace.
#[pin_data]
pub(crate) struct NetState {
    /// The namespace's cookie, reported by STATUS_GET so tests can tell namespaces apart.
    pub(crate) cookie: u64,
    /// Held by the commands that change the namespace's state (SNOOP_START, SNOOP_STOP,
    /// TAKEOVER, DIRECTIVE): genetlink runs handlers in parallel.
    #[pin]
    pub(crate) control: Mutex<()>,
    /// Declarations and failed nodes.
    #[pin]
    pub(crate) cluster: Mutex<Cluster>,
    /// Mirrored connections; shared with the netfilter hook (softirq): sharded, each shard
    /// behind its own IRQ-safe lock, the table published with RCU.
    #[pin]
    pub(crate) snoop: Snoop,
    /// Connections a takeover moved out of the mirror and is rebuilding, sorted: the local
    /// stack's resets of them are dropped as for mirrored ones.
    #[pin]
    pub(crate) rebuilding: SpinLockIrq<KVec<FlowKey>>,
    /// Taken-over connections waiting for their listener.
    #[pin]
    pub(crate) parking: Mutex<Parking>,
    /// The mirror's copies of taken-over connections, released by the namespace's work
    /// ([`crate::takeover::release_later`]).
    #[pin]
    pub(crate) released: Mutex<KVec<Released>>,
    /// Records of taken-over connections for the restarted application.
    #[pin]
    pub(crate) taken: Mutex<TakenList>,
    /// This node's lease, its own bindings and the failed nodes' MACs; read by both hooks.
    #[pin]
    pub(crate) fence: SpinLockIrq<Fence>,
    /// The lease's end as the fence has it (`u64::MAX` while no lease was ever set), for the
    /// LOCAL_OUT hook to skip the fence's lock (namespace-wide) while the lease holds.
    /// Written under that lock, after the fence.
    lease_until_ns: AtomicU64,
    /// Segments the fence dropped.
    fenced: AtomicU64,
    /// The fence's count of failed nodes' MACs, and the MACs ([`mac_word`]s, the first
    /// `failed_macs` of them): the snooping hook looks for a frame's MAC in this copy,
    /// without the fence's lock (namespace-wide, IRQ-off), which every frame took while a
    /// node was declared failed. Written under that lock, the words before the count: a
    /// frame that races with a refresh may be checked against the old list or the new.
    failed_macs: AtomicUsize,
    failed_mac_words: [AtomicU64; MAX_FAILED_MACS],
    /// Frames received from a node declared failed here (split-brain alarm).
    split_brain: AtomicU64,
    /// Frames for another node's MAC delivered here: connections this node took over.
    steered: AtomicU64,
    /// Connections of this node's bindings that peers serve (RECOVERY), sorted by key; read
    /// by both hooks.
    #[pin]
    pub(crate) handed: HandedShards,
    /// SYNs refused because they would reuse a connection a peer serves.
    syn_refused: AtomicU64,
    /// Connections held for a planned handoff (HANDOFF_HOLD): the LOCAL_OUT hook drops
    /// their every segment.
    #[pin]
    pub(crate) held: SpinLockIrq<KeySet>,
    /// `held`'s length, for the LOCAL_OUT hook to skip the lock while nothing is held.
    pub(crate) held_len: AtomicUsize,
    /// Segments of held connections dropped.
    pub(crate) held_dropped: AtomicU64,
    /// Connections of other nodes' bindings this node serves (taken over, or handed off to
    /// it): not mirrored, and their client's frames addressed to another node's MAC are
    /// delivered here while a socket of them exists.
    #[pin]
    pub(crate) served: KeyShards,
}

/// A sorted set of connections.
#[derive(Default)]
pub(crate) struct KeySet {
    keys: KVec<FlowKey>,
}

impl KeySet {
    /// Whether `key` is in the set.
    pub(crate) fn contains(&self, key: &FlowKey) -> bool {
        self.keys.binary_search(key).is_ok()
    }

    /// How many there are.
    pub(crate) fn len(&self) -> usize {
        self.keys.len()
    }

    /// Removes `key`; whether it was there.
    pub(crate) fn remove(&mut self, key: &FlowKey) -> bool {
        match self.keys.binary_search(key) {
            Ok(i) => self.keys.remove(i).is_ok(),
            Err(_) => false,
        }
    }

    /// Makes room for more keys: moves them into `room`, a vector with capacity for them
    /// and the keys to come, and returns the old vector, for the caller to free after the
    /// lock.
    pub(crate) fn grow(&mut self, mut room: KVec<FlowKey>) -> KVec<FlowKey> {
        for k in self.keys.iter() {
            let _ = room.push_within_capacity(*k);
        }
        core::mem::replace(&mut self.keys, room)
    }

    /// Inserts `key` within the capacity [`Self::grow`] made; whether it fitted (a key
    /// already there fits).
    pub(crate) fn insert(&mut self, key: FlowKey) -> bool {
        match self.keys.binary_search(&key) {
            Ok(_) => true,
            Err(i) => self.keys.insert_within_capacity(i, key).is_ok(),
        }
    }

    /// Adds the keys of `more` (sorted) into `room`, a vector with capacity for them and
    /// this set's keys, in one pass; returns the old vector, for the caller to free after
    /// the lock.
    pub(crate) fn merge(&mut self, more: &[FlowKey], mut room: KVec<FlowKey>) -> KVec<FlowKey> {
        let (mut a, mut b) = (self.keys.iter().peekable(), more.iter().peekable());
        loop {
            let next = match (a.peek(), b.peek()) {
                (Some(x), Some(y)) if y < x => b.next(),
                (Some(x), Some(y)) if x == y => {
                    b.next();
                    a.next()
                }
                (Some(_), _) => a.next(),
                (None, _) => b.next(),
            };
            let Some(&k) = next else { break };
            if room.last() != Some(&k) {
                // Within the capacity the caller reserved.
                let _ = room.push_within_capacity(k);
            }
        }
        core::mem::replace(&mut self.keys, room)
    }
}

/// Shards of a [`KeyShards`] set (a power of two; a shard's index is kept in a byte).
const KEY_SHARDS: usize = 32;
const _: () = assert!(KEY_SHARDS.is_power_of_two() && KEY_SHARDS <= 256);

/// What a shard holds: a sorted collection of connections, counted.
pub(crate) trait ShardContent: Default + Unpin {
    /// How many connections it holds.
    fn count(&self) -> usize;
}

impl ShardContent for KeySet {
    fn count(&self) -> usize {
        self.len()
    }
}

impl ShardContent for HandedList {
    fn count(&self) -> usize {
        self.list.len()
    }
}

/// Connections the hooks look frames up in, split by key into [`KEY_SHARDS`] collections,
/// each under an IRQ-safe spinlock of its own: frames of different connections on
/// different CPUs rarely take the same lock, where one lock for the namespace serialised
/// them all. Only process context adds (under `control`).
///
/// # Invariants
///
/// `len` is the sum of the shards' counts, each shard's changes added under its lock.
#[pin_data]
pub(crate) struct Shards<T> {
    #[pin]
    shards: [SpinLockIrq<T>; KEY_SHARDS],
    /// Random: which shard a key goes to cannot be aimed at from outside.
    seed: u64,
    /// Connections in all shards, for the hooks to skip the lookup while there are none.
    len: AtomicUsize,
}

/// The connections this node serves for other nodes' bindings.
pub(crate) type KeyShards = Shards<KeySet>;

/// The connections peers serve for this recovered owner: the snooping hook follows every
/// frame of the link in them while any is listed.
pub(crate) type HandedShards = Shards<HandedList>;

impl<T: ShardContent> Shards<T> {
    /// Empty shards, their locks of class `key` named `name`.
    pub(crate) fn new(name: &'static CStr, key: Pin<&'static LockClassKey>) -> impl PinInit<Self> {
        pin_init!(Self {
            shards <- pin_init::pin_init_array_from_fn(|_| SpinLockIrq::new(
                T::default(),
                name,
                key
            )),
            seed: crate::glue::random_u64(),
            len: AtomicUsize::new(0),
        })
    }

    fn shard_of(&self, key: &FlowKey) -> usize {
        key.shard(self.seed, KEY_SHARDS)
    }

    /// How many connections it holds.
    pub(crate) fn len(&self) -> usize {
        self.len.load(Ordering::Relaxed)
    }

    /// Runs `f` on shard `i`, locked, and keeps the count up to date with what `f` removed
    /// or added.
    fn with<R>(&self, i: usize, f: impl FnOnce(&mut T) -> R) -> R {
        let mut h = self.shards[i].lock();
        let before = h.count();
        let r = f(&mut h);
        let after = h.count();
        // INVARIANT: the shard's difference, added while its lock is held: a shard's
        // changes reach `len` in their order, so it never counts a removal before the
        // addition it undoes.
        if after >= before {
            self.len.fetch_add(after - before, Ordering::Relaxed);
        } else {
            self.len.fetch_sub(before - after, Ordering::Relaxed);
        }
        drop(h);
        r
    }
}

impl KeyShards {
    /// Whether `key` is in the set.
    pub(crate) fn contains(&self, key: &FlowKey) -> bool {
        self.shards[self.shard_of(key)].lock().contains(key)
    }

    /// Removes `key`; whether it was there.
    pub(crate) fn remove(&self, key: &FlowKey) -> bool {
        self.with(self.shard_of(key), |s| s.remove(key))
    }

    /// Adds `keys` (sorted), all of them or, when memory is short, none (process context;
    /// the caller holds the lock that makes it the only one to add). Everything is
    /// allocated before any shard's lock is taken.
    pub(crate) fn add(&self, keys: &[FlowKey]) -> Result {
        let mut counts = [0usize; KEY_SHARDS];
        let mut at = KVec::with_capacity(keys.len(), GFP_KERNEL)?;
        for k in keys {
            let i = self.shard_of(k);
            counts[i] += 1;
            // Within the capacity reserved above.
            let _ = at.push_within_capacity(i as u8);
        }
        // Per shard: its new keys (sorted, as `keys` is), and room for them and the keys it
        // holds. The hooks only remove meanwhile: the room stays enough.
        let mut plan = KVec::with_capacity(KEY_SHARDS, GFP_KERNEL)?;
        let mut slot = [0usize; KEY_SHARDS];
        for (i, &n) in counts.iter().enumerate() {
            if n == 0 {
                continue;
            }
            let had = self.shards[i].lock().len();
            let room = KVec::with_capacity(had + n, GFP_KERNEL)?;
            let mine = KVec::with_capacity(n, GFP_KERNEL)?;
            slot[i] = plan.len();
            // Within the capacity reserved above: one per shard at most.
            let _ = plan.push_within_capacity((i, mine, room));
        }
        // The keys dealt to their shards in one pass, in order (a pass over all of them per
        // shard was most of a takeover's time in this function: 385 instructions a key).
        for (k, &s) in keys.iter().zip(at.iter()) {
            if let Some((_, mine, _)) = plan.get_mut(slot[usize::from(s)]) {
                // Within the capacity reserved above: the shard's count.
                let _ = mine.push_within_capacity(*k);
            }
        }
        for (i, mine, room) in plan.into_iter() {
            let old = self.with(i, |s| s.merge(&mine, room));
            // Freed after the spinlock.
            drop(old);
        }
        Ok(())
    }
}

/// The connections peers hand back to this recovered owner ([`crate::logic::recovery`]).
#[derive(Default)]
pub(crate) struct HandedList {
    /// Sorted by key, at most [`MAX_HANDED`].
    list: KVec<Handed>,
    /// When ended connections were last removed.
    last_gc_ms: u64,
}

impl HandedList {
    /// Removes the connections that ended, at most once a second.
    fn gc(&mut self, now_ms: u64) {
        if now_ms.wrapping_sub(self.last_gc_ms) >= 1000 {
            self.last_gc_ms = now_ms;
            self.list.retain(|h| !h.over(now_ms));
        }
    }

    fn holds(&self, key: &FlowKey) -> bool {
        self.list.binary_search_by(|h| h.key.cmp(key)).is_ok()
    }
}

impl HandedShards {
    /// Whether `key` is listed.
    pub(crate) fn holds(&self, key: &FlowKey) -> bool {
        self.shards[self.shard_of(key)].lock().holds(key)
    }

    /// Notes what `seg` shows of a listed connection (in the shard of its key as the
    /// client's segment, then as the service's); whether it is a SYN to refuse.
    pub(crate) fn follow(&self, seg: &Segment, now_ms: u64) -> bool {
        let client = self.shard_of(&FlowKey::of(seg, Side::Client));
        let owner = self.shard_of(&FlowKey::of(seg, Side::Owner));
        let shards = [client, owner];
        let n = if client == owner { 1 } else { 2 };
        for &i in &shards[..n] {
            let seen = self.with(i, |h| {
                h.gc(now_ms);
                match observe(&mut h.list, seg, now_ms) {
                    Seen::Ended(at) => {
                        let _ = h.list.remove(at);
                        Some(false)
                    }
                    Seen::Refuse => Some(true),
                    Seen::Nothing => None,
                }
            });
            if let Some(refuse) = seen {
                return refuse;
            }
        }
        false
    }

    /// Forgets the connections that ended, in every shard (process context, for a count
    /// that shards no frame came to would otherwise keep).
    pub(crate) fn gc(&self, now_ms: u64) {
        for i in 0..KEY_SHARDS {
            self.with(i, |h| h.gc(now_ms));
        }
    }

    /// [`NetState::hand`]'s work, `fresh` sorted by key without duplicates: in two passes
    /// over the shards, the first counting what the lists would hold (nothing changes when
    /// that is more than [`MAX_HANDED`]), the second building each shard's new list (its
    /// memory allocated before its lock). Only process context adds, under `control`; the
    /// hooks only shorten the lists in between, so the first pass's count still bounds.
    pub(crate) fn hand(
        &self,
        fresh: &[Handed],
        replace: Option<u32>,
        now_ms: u64,
    ) -> Result<(), LogicError> {
        let keeps = |old: &Handed| {
            fresh.binary_search_by(|f| f.key.cmp(&old.key)).is_err() && Some(old.node) != replace
        };
        let mut total = fresh.len();
        for sh in self.shards.iter() {
            total += sh.lock().list.iter().filter(|o| keeps(o)).count();
        }
        if total > MAX_HANDED {
            return Err(LogicError::new(
                code::ENOSPC,
                c"too many connections of this node's bindings served by peers",
            ));
        }
        // Every shard's memory first: short of it, nothing changes.
        let mut plan = KVec::with_capacity(KEY_SHARDS, GFP_KERNEL).map_err(|_| enomem())?;
        for i in 0..KEY_SHARDS {
            let n = fresh.iter().filter(|f| self.shard_of(&f.key) == i).count();
            let had = self.shards[i].lock().list.len();
            if n == 0 && (had == 0 || replace.is_none()) {
                continue;
            }
            let mut mine = KVec::with_capacity(n, GFP_KERNEL).map_err(|_| enomem())?;
            for f in fresh.iter().filter(|f| self.shard_of(&f.key) == i) {
                // Within the capacity reserved above.
                let _ = mine.push_within_capacity(*f);
            }
            let next = KVec::with_capacity(had + n, GFP_KERNEL).map_err(|_| enomem())?;
            // Within the capacity reserved above: one per shard at most.
            let _ = plan.push_within_capacity((i, mine, next));
        }
        for (i, mut mine, mut next) in plan.into_iter() {
            let old = self.with(i, |h| {
                for old in h.list.iter() {
                    match mine.binary_search_by(|f| f.key.cmp(&old.key)) {
                        // The newest word on a connection wins; what was seen of it stays.
                        Ok(j) => mine[j].carry(old),
                        Err(_) if Some(old.node) == replace => {}
                        // Within the capacity reserved above (the list only shrank).
                        Err(_) => {
                            let _ = next.push_within_capacity(*old);
                        }
                    }
                }
                for f in mine.iter() {
                    let _ = next.push_within_capacity(*f);
                }
                crate::logic::sort::sort_by_key(&mut next, |a| a.key);
                let old = core::mem::replace(&mut h.list, next);
                h.gc(now_ms);
                old
            });
            // Freed after the spinlock.
            drop(old);
        }
        Ok(())
    }

    /// Forgets the connections of `keys` (sorted).
    pub(crate) fn unhand(&self, keys: &[FlowKey]) {
        for i in 0..KEY_SHARDS {
            self.with(i, |h| {
                h.list.retain(|x| keys.binary_search(&x.key).is_err());
            });
        }
    }
}

/// The TCP segment `skb` carries, if it parses.
/// A frame's TCP segment, parsed by the first of the hook's steps that needs it and kept for
/// the others: a frame of a connection served or handed back here went through the parse
/// twice, once for that check and once for the mirror.
pub(crate) struct FrameSeg<'a, 'b> {
    skb: &'a Skb<'b>,
    seg: Option<core::result::Result<Segment, Skip>>,
}

impl<'a, 'b> FrameSeg<'a, 'b> {
    /// `skb`'s segment, not parsed yet.
    pub(crate) fn new(skb: &'a Skb<'b>) -> Self {
        FrameSeg { skb, seg: None }
    }

    /// The segment, or why the frame has none.
    pub(crate) fn get(&mut self) -> &core::result::Result<Segment, Skip> {
        let skb = self.skb;
        self.seg.get_or_insert_with(|| {
            let mut buf = [MaybeUninit::uninit(); HEADER_MAX];
            skb.parse(&mut buf)
        })
    }
}

/// The most connections of other nodes' bindings this node steers as their server.
pub(crate) const MAX_SERVED: usize = 65536;

fn enomem() -> LogicError {
    LogicError::new(code::ENOMEM, c"out of memory")
}

impl NetState {
    /// The state of a new namespace.
    pub(crate) fn new(cookie: u64) -> impl PinInit<Self, Error> {
        try_pin_init!(Self {
            cookie,
            control <- new_mutex!((), "permtcp_control"),
            cluster <- new_mutex!(
                Cluster {
                    decls: KVec::new(),
                    failed: KVec::new(),
                },
                "permtcp_cluster"
            ),
            snoop <- Snoop::new(),
            rebuilding <- new_spinlock_irq!(KVec::new(), "permtcp_rebuilding"),
            parking <- new_mutex!(Parking::default(), "permtcp_parking"),
            released <- new_mutex!(KVec::new(), "permtcp_released"),
            taken <- new_mutex!(TakenList::default(), "permtcp_taken"),
            fence <- new_spinlock_irq!(Fence::default(), "permtcp_fence"),
            lease_until_ns: AtomicU64::new(u64::MAX),
            fenced: AtomicU64::new(0),
            failed_macs: AtomicUsize::new(0),
            failed_mac_words: [const { AtomicU64::new(0) }; MAX_FAILED_MACS],
            split_brain: AtomicU64::new(0),
            steered: AtomicU64::new(0),
            handed <- HandedShards::new(c"permtcp_handed", kernel::static_lock_class!()),
            syn_refused: AtomicU64::new(0),
            held <- new_spinlock_irq!(KeySet::default(), "permtcp_held"),
            held_len: AtomicUsize::new(0),
            held_dropped: AtomicU64::new(0),
            served <- KeyShards::new(c"permtcp_served", kernel::static_lock_class!()),
        }? Error)
    }

    /// Adds a validated declaration unless it conflicts with the stored set.
    pub(crate) fn add(&self, d: &Declaration) -> Result<(), LogicError> {
        // Allocate before taking the lock; on any error the stored set is unchanged.
        let boxed = KBox::new(*d, GFP_KERNEL).map_err(|_| enomem())?;
        let mut c = self.cluster.lock();
        check_insert(d, c.decls.iter().map(|b| &**b))?;
        c.decls.push(boxed, GFP_KERNEL).map_err(|_| enomem())?;
        c.apply(self);
        Ok(())
    }

    /// Deletes the declaration of `node_id`.
    pub(crate) fn delete(&self, node_id: u32) -> Result<(), LogicError> {
        let mut c = self.cluster.lock();
        let i = c
            .decls
            .iter()
            .position(|d| d.node_id == node_id)
            .ok_or(LogicError::new(
                code::ENOENT,
                c"no declaration for this node id",
            ))?;
        // The index is in bounds, so removal cannot fail.
        let _ = c.decls.remove(i);
        c.apply(self);
        Ok(())
    }

    /// Runs `f` on the declaration with the smallest node id at least `from`, if any, under
    /// the lock (a dump resumes by node id: one added or deleted meanwhile moves no other).
    pub(crate) fn with_decl_from<R>(
        &self,
        from: u64,
        f: impl FnOnce(&Declaration) -> R,
    ) -> Option<R> {
        let c = self.cluster.lock();
        c.decls
            .iter()
            .filter(|d| u64::from(d.node_id) >= from)
            .min_by_key(|d| d.node_id)
            .map(|d| f(d))
    }

    /// The STATUS_GET reply.
    pub(crate) fn status(&self) -> StatusReply {
        let mut st = StatusReply {
            version: FAMILY_VERSION.into(),
            decl_max: MAX_DECLS as u32,
            netns_cookie: self.cookie,
            ..StatusReply::default()
        };
        {
            let c = self.cluster.lock();
            st.decl_count = c.decls.len() as u32;
            st.local_node = c.all().find(|d| d.local).map(|d| d.node_id);
            // At most MAX_DECLS nodes can be declared failed: every push fits.
            for &n in c.failed.iter() {
                let _ = st.failed.push(n);
            }
        }
        let p = self.parking.lock();
        st.parked = p.parked.len() as u32;
        st.park_queued = p.queued;
        st.park_reset = p.reset;
        st.lease_left_ms = self.fence.lock().lease.left_ms(crate::glue::now_ns());
        st.fenced = self.fenced.load(Ordering::Relaxed);
        st.split_brain = self.split_brain.load(Ordering::Relaxed);
        st
    }

    /// Brings the fence up to date with the cluster view: this node's own bindings and the
    /// failed nodes' MACs.
    pub(crate) fn refresh_fence(&self, cluster: &Cluster) {
        let mut f = self.fence.lock();
        f.refresh(cluster.all(), &|n| cluster.is_failed(n));
        let mut words = f.failed_mac_words();
        for w in self.failed_mac_words.iter() {
            w.store(words.next().unwrap_or(0), Ordering::Relaxed);
        }
        self.failed_macs.store(f.failed_macs(), Ordering::Release);
    }

    /// LEASE_SET: this node may send from its bindings for `ms` more (0: not at all).
    pub(crate) fn lease(&self, ms: u32) {
        let mut f = self.fence.lock();
        f.lease.renew(crate::glue::now_ns(), ms);
        self.lease_until_ns
            .store(f.lease.until_ns().unwrap_or(u64::MAX), Ordering::Relaxed);
    }

    /// Whether the lease certainly holds at `now_ns` (or none was ever set): nothing is
    /// fenced, and the fence's lock need not be taken. A hook that reads the end of a lease
    /// just renewed or released races with the renewal as it would for the lock.
    fn lease_holds(&self, now_ns: u64) -> bool {
        now_ns < self.lease_until_ns.load(Ordering::Relaxed)
    }

    /// Starts snooping device `ifindex` with `limits`, for the current declarations.
    pub(crate) fn snoop_start(&self, net: &Net<'_>, ifindex: u32, limits: Limits) -> Result {
        let _control = self.control.lock();
        if net.ifindex() != 0 {
            return Err(EBUSY);
        }
        {
            let c = self.cluster.lock();
            self.snoop.start(limits, c.filter(), net.views_allowed())?;
        }
        net.attach(ifindex).inspect_err(|_| self.snoop.stop())
    }

    /// Stops snooping; every mirrored connection is forgotten.
    pub(crate) fn snoop_stop(&self, net: &Net<'_>) -> Result {
        let _control = self.control.lock();
        net.detach()?;
        self.snoop.stop();
        Ok(())
    }

    /// The snooped device went away: the hook is gone, the mirror is forgotten.
    pub(crate) fn snoop_lost(&self) {
        self.snoop.stop();
    }

    /// One frame from the snooping hook; one from a node declared failed here raises the
    /// split-brain alarm.
    ///
    /// A client's frame of a failed owner's connection that this node took over is delivered
    /// to this host's stack even when it is addressed to another node's MAC: on a flooding
    /// link the client sends to the address's ARP owner, which need not be the node that
    /// serves the connection (a fail-over directive moved it, or the policy gave its port
    /// range to another peer). The rebuilt socket (or its TIME-WAIT) decides that the
    /// connection is served here; once it is gone, the frames are left to the ARP owner.
    ///
    /// Returns whether the hook drops the frame: a client's SYN that would reuse a
    /// connection of this node's bindings that a peer serves (owner recovery).
    pub(crate) fn frame(&self, skb: &Skb<'_>, now_ms: u64) -> bool {
        // A failed node's MAC is looked for only while a node is declared failed (the
        // frame's MAC is a call into C).
        let failed = self.failed_macs.load(Ordering::Acquire);
        if failed > 0 {
            if let Some(mac) = skb.src_mac() {
                let w = mac_word(&mac);
                if self.failed_mac_words[..failed.min(MAX_FAILED_MACS)]
                    .iter()
                    .any(|x| x.load(Ordering::Relaxed) == w)
                {
                    self.split_brain.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        let mut seg = FrameSeg::new(skb);
        if self.handed.len() > 0 && self.follow_handed(&mut seg, now_ms) {
            self.syn_refused.fetch_add(1, Ordering::Relaxed);
            return true;
        }
        if self.served.len() > 0 && self.serve_frame(skb, &mut seg) {
            return false;
        }
        let outcome = self.snoop.on_frame(skb, &mut seg, now_ms);
        if let Outcome::ToFailed(key) = outcome {
            if skb.for_other_host() && skb.has_socket(&key) {
                skb.deliver_here();
                self.steered.fetch_add(1, Ordering::Relaxed);
            }
        }
        false
    }

    /// A client's frame of a connection this node serves for another node's binding: not
    /// mirrored, and delivered to this host's stack when addressed to another node's MAC
    /// while a socket of it exists here (once none does, the connection leaves the set).
    /// Returns whether the frame was one of them.
    fn serve_frame(&self, skb: &Skb<'_>, seg: &mut FrameSeg<'_, '_>) -> bool {
        let Ok(seg) = seg.get() else {
            return false;
        };
        let key = FlowKey::of(seg, Side::Client);
        if !self.served.contains(&key) {
            return false;
        }
        if skb.for_other_host() {
            if skb.has_socket(&key) {
                skb.deliver_here();
                self.steered.fetch_add(1, Ordering::Relaxed);
            } else {
                self.served.remove(&key);
            }
        }
        true
    }

    /// Adds `keys` to the connections this node serves for other nodes' bindings, within
    /// [`MAX_SERVED`] (past it a connection is only steered while its owner is declared
    /// failed here).
    pub(crate) fn serve(&self, mut keys: KVec<FlowKey>) {
        let room = MAX_SERVED.saturating_sub(self.served.len());
        keys.truncate(room);
        // Sorted before the locks (a takeover's come sorted: this only checks).
        crate::logic::sort::sort(&mut keys);
        // Only `control`'s holder adds (the hooks only remove). Short of memory, none is
        // added: those connections are steered here only while their owner is failed.
        let _ = self.served.add(&keys);
    }

    /// Follows the connections peers hand back on `skb`'s segment; returns whether it is a
    /// SYN to refuse.
    fn follow_handed(&self, seg: &mut FrameSeg<'_, '_>, now_ms: u64) -> bool {
        let Ok(seg) = seg.get() else {
            return false;
        };
        self.handed.follow(seg, now_ms)
    }

    /// RECOVERY: peer `r.node` serves the connections of `r` of this node's bindings; they
    /// replace its earlier list (or add to it). Checked whole before anything changes: a
    /// local declaration, snooping (the connections are followed on the snooped device), a
    /// declared peer, every connection one of this node's bindings, at most [`MAX_HANDED`]
    /// in all.
    pub(crate) fn recovery(&self, r: &RecoveryRequest<'_>, now_ms: u64) -> Result<(), LogicError> {
        let _control = self.control.lock();
        if !self.snoop.active() {
            return Err(LogicError::new(
                code::EINVAL,
                c"not snooping: handed-back connections are followed on the snooped device",
            ));
        }
        let mut fresh = KVec::with_capacity(r.served.len(), GFP_KERNEL).map_err(|_| enomem())?;
        {
            let c = self.cluster.lock();
            let me = c.all().find(|d| d.local).ok_or(LogicError::new(
                code::EINVAL,
                c"no local declaration: this node owns no binding",
            ))?;
            if r.node == me.node_id || !c.all().any(|d| d.node_id == r.node) {
                return Err(LogicError::new(
                    code::EINVAL,
                    c"the serving node is not a declared peer",
                ));
            }
            for k in r.served.iter() {
                if !declares(me, &k.owner_addr, k.owner_port) {
                    return Err(LogicError::new(
                        code::EINVAL,
                        c"a served connection is not one of this node's bindings",
                    ));
                }
                // Within the capacity reserved above.
                let _ = fresh.push(Handed::new(k, r.node), GFP_KERNEL);
            }
        }
        self.hand(fresh, (!r.append).then_some(r.node), now_ms)
    }

    /// Peers serve the connections of `fresh` (of this node's bindings) from now on: they
    /// join the connections followed (a connection already listed takes the newest word,
    /// keeping what was seen of it). With `replace`, that peer's earlier entries not in
    /// `fresh` end (its list replaces the earlier one). At most [`MAX_HANDED`] in all;
    /// nothing changes when they do not fit. Owner recovery (RECOVERY) and planned handoff
    /// (HANDOFF_DONE) both add this way.
    pub(crate) fn hand(
        &self,
        mut fresh: KVec<Handed>,
        replace: Option<u32>,
        now_ms: u64,
    ) -> Result<(), LogicError> {
        crate::logic::sort::sort_by_key(&mut fresh, |a| a.key);
        let mut prev = None;
        fresh.retain(|h| prev.replace(h.key) != Some(h.key));
        self.handed.hand(&fresh, replace, now_ms)
    }

    /// This node serves the connections of `keys` (of its own bindings, sorted) again: no
    /// longer followed for a peer.
    pub(crate) fn unhand(&self, keys: &[FlowKey]) {
        if keys.is_empty() {
            return;
        }
        self.handed.unhand(keys);
    }

    /// What the LOCAL_OUT hook does with `skb`, a TCP segment this host sends at `now_ns`:
    /// drop it when it is from this node's own bindings and the lease has run out (fencing),
    /// or when it is a reset of a connection mirrored here, being rebuilt, or of this node's
    /// bindings and served by a peer (reset suppression).
    pub(crate) fn out(&self, skb: &Skb<'_>, now_ns: u64) -> OutVerdict {
        // Nearly every segment: the lease holds, nothing is held and it is no reset, so none
        // of the checks below could drop it. It goes on without a parse or a lock.
        if self.lease_holds(now_ns)
            && self.held_len.load(Ordering::Relaxed) == 0
            && tcp_flags(skb.linear()).is_some_and(|f| f & flags::RST == 0)
        {
            return OutVerdict::Accept;
        }
        let mut buf = [MaybeUninit::uninit(); HEADER_MAX];
        let Ok(seg) = skb.parse(&mut buf) else {
            return match skb.header(&mut buf).and_then(ndisc_claim) {
                Some(claim) => self.silence(&claim, now_ns),
                None => OutVerdict::Accept,
            };
        };
        if !self.lease_holds(now_ns) && self.fence.lock().drops(&seg.src, seg.sport, now_ns) {
            self.fenced.fetch_add(1, Ordering::Relaxed);
            return OutVerdict::DropFenced;
        }
        let key = FlowKey::of(&seg, Side::Owner);
        if self.held_len.load(Ordering::Relaxed) > 0 && self.held.lock().contains(&key) {
            self.held_dropped.fetch_add(1, Ordering::Relaxed);
            return OutVerdict::DropHeld;
        }
        if !seg.has(flags::RST) {
            return OutVerdict::Accept;
        }
        let mirrored = self.snoop.holds(&key);
        let handed = self.handed.len() > 0 && self.handed.holds(&key);
        if mirrored || handed || self.rebuilding.lock().binary_search(&key).is_ok() {
            OutVerdict::DropReset
        } else {
            OutVerdict::Accept
        }
    }

    /// The ARP_OUT hook (`arp` from the ARP header on): a fenced node claims none of its
    /// addresses.
    pub(crate) fn arp_out(&self, arp: &[u8], now_ns: u64) -> OutVerdict {
        match arp_claim(arp) {
            Some(claim) => self.silence(&claim, now_ns),
            None => OutVerdict::Accept,
        }
    }

    /// Drops a neighbour message claiming `claim` when the fence says so (counted as
    /// fenced).
    fn silence(&self, claim: &crate::logic::packet::Addr, now_ns: u64) -> OutVerdict {
        if !self.lease_holds(now_ns) && self.fence.lock().silences(claim, now_ns) {
            self.fenced.fetch_add(1, Ordering::Relaxed);
            OutVerdict::DropFenced
        } else {
            OutVerdict::Accept
        }
    }

    /// Snooping counters and limits, the hook's cost included.
    pub(crate) fn stats(&self, net: &Net<'_>, now_ms: u64) -> StatsInfo {
        let mut stats = self.snoop.stats(net.ifindex(), now_ms);
        (stats.hook_ns, stats.hook_frames, stats.frames_kept) = net.hook_cost();
        (stats.ct_ns, stats.ct_frames) = net.ct_cost();
        stats.rst_dropped = net.rst_dropped();
        stats.steered = self.steered.load(Ordering::Relaxed);
        // Ended connections go first: a shard no frame came to still counts them.
        self.handed.gc(now_ms);
        stats.handed = self.handed.len() as u64;
        stats.syn_refused = self.syn_refused.load(Ordering::Relaxed);
        stats
    }
}
