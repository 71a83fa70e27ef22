// SPDX-License-Identifier: GPL-2.0

//! The kernel side of snooping: the namespace's connection table, fed by the netfilter hook
//! in softirq context and read by netlink handlers.
//!
//! All decisions (parsing, matching, tracking, limits) are made by `logic::snoop`'s
//! [`Rules`]; this file provides the table and its allocator. The table is split into
//! [`shard_count`] shards, each an rbtree keyed by the 4-tuple behind its own IRQ-safe
//! spinlock; the table and its filter are published with RCU. A frame takes no lock but
//! its connection's shard's: frames of connections in different shards are tracked on
//! different CPUs at once. Connections are counted and the byte budget charged with atomic
//! operations ([`Pool`]); counters are kept per shard and summed when read. A few table
//! entries are allocated ahead for SYNs ([`SynReserve`]).

use crate::glue::HeldSkb;
use crate::glue::{Dump, PerCpuCounters, RcuBox, Skb};
use crate::logic::errno::Error as LogicError;
use crate::logic::ops::{DataChunk, MAX_DATA_CHUNK};
use crate::logic::packet::Skip;
use crate::logic::packet::{tcp_csum_ok, Segment};
use crate::logic::seq;
use crate::logic::seqbuf::{ChunkAlloc, Extent, FrameRef, Pool, Pooled, Slots};
use crate::logic::snoop::{
    pick, shard_count, Counters, Filter, FlowKey, FlowMap, Inserted, Limits, Outcome, Pick, Rules,
};
use crate::logic::snoopnl::{ConnInfo, StatsInfo};
use crate::logic::track::{Conn, Side, State};
use crate::logic::uapi::cmd;
use crate::netns::FrameSeg;
use core::ffi::c_long;
use core::pin::Pin;
use core::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use kernel::alloc::flags::{__GFP_NOWARN, GFP_ATOMIC, GFP_KERNEL, GFP_KERNEL_ACCOUNT, GFP_NOWAIT};
use kernel::alloc::Flags;
use kernel::prelude::*;
use kernel::rbtree::{RBTree, RBTreeNodeReservation};
use kernel::sync::{rcu, Arc, Mutex, SpinLockIrq};
use kernel::{new_mutex, new_spinlock_irq};

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

/// A growable table of extent slots.
#[derive(Default)]
pub(crate) struct KSlots(KVec<Option<Extent<Chunk>>>);

impl KSlots {
    /// A table of `n` empty slots allocated with `flags` (KUnit's buffers, made in process
    /// context: the mirror's own tables grow atomically, [`Slots::grow_to`]).
    #[cfg(CONFIG_KUNIT = "y")]
    pub(crate) fn with_len(n: usize, flags: kernel::alloc::Flags) -> Option<Self> {
        let mut v = KVec::with_capacity(n, flags).ok()?;
        while v.len() < n {
            v.push_within_capacity(None).ok()?;
        }
        Some(KSlots(v))
    }
}

impl Slots<Extent<Chunk>> for KSlots {
    fn as_slice(&self) -> &[Option<Extent<Chunk>>] {
        &self.0
    }

    fn as_mut_slice(&mut self) -> &mut [Option<Extent<Chunk>>] {
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

/// Chunks from the slab, atomically: the hook runs in softirq context; with `views`, also
/// views of large frames (zero-copy retention).
pub(crate) struct KernelChunks {
    views: bool,
}

impl KernelChunks {
    /// Chunks that copy every byte (no views).
    pub(crate) fn copying() -> Self {
        KernelChunks { views: false }
    }
}

/// The allocator connections use: slab chunks behind the namespace's byte budget, shared
/// by the shards.
pub(crate) type Alloc = Pooled<KernelChunks, Arc<Pool>>;

impl ChunkAlloc for KernelChunks {
    type Chunk = Chunk;
    type Slots = KSlots;
    type Held = HeldSkb;

    fn alloc(&mut self) -> Option<Chunk> {
        Chunk::new(mirror_gfp())
    }

    fn hold(&mut self, frame: FrameRef<'_>) -> Option<HeldSkb> {
        if !self.views || !crate::glue::zerocopy_enabled() {
            return None;
        }
        HeldSkb::of(frame)
    }

    fn view(&mut self, held: HeldSkb, frame_off: u32, len: u32, cost: u64) -> Option<Chunk> {
        Chunk::view(held, frame_off, len, cost)
    }

    fn free(&mut self, chunk: Chunk) {
        drop(chunk);
    }
}

/// The connections of one shard, ordered by 4-tuple, as [`Rules`] sees them: its length is
/// the whole table's, and an insertion past [`Limits::max_conns`] is refused (the count is
/// reserved atomically: shards insert concurrently).
pub(crate) struct ShardMap<'a> {
    tree: &'a mut RBTree<FlowKey, Conn<Alloc>>,
    len: &'a mut usize,
    total: &'a AtomicUsize,
    max: usize,
    /// Entries for SYNs that find memory short, if the table keeps them.
    reserve: Option<&'a SynReserve>,
}

impl ShardMap<'_> {
    /// Inserts `conn` as `key`, in a node allocated now or, for a SYN (`syn`) when memory
    /// is short, one from the reserve.
    fn put(&mut self, key: FlowKey, conn: Conn<Alloc>, syn: bool) -> Inserted {
        let max = self.max;
        let reserved = self
            .total
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                (n < max).then_some(n + 1)
            })
            .is_ok();
        if !reserved {
            return Inserted::No;
        }
        let (node, how) = match Reservation::new(mirror_gfp()) {
            Ok(node) => (node, Inserted::Yes),
            Err(_) => match self.reserve.filter(|_| syn).and_then(SynReserve::take) {
                Some(node) => (node, Inserted::Reserved),
                None => {
                    self.total.fetch_sub(1, Ordering::Relaxed);
                    return Inserted::No;
                }
            },
        };
        match self.tree.insert(node.into_node(key, conn)) {
            None => *self.len += 1,
            Some(_old) => {
                self.total.fetch_sub(1, Ordering::Relaxed);
            }
        }
        how
    }
}

impl FlowMap<Alloc> for ShardMap<'_> {
    fn get_mut(&mut self, key: &FlowKey) -> Option<&mut Conn<Alloc>> {
        self.tree.get_mut(key)
    }

    fn insert(&mut self, key: FlowKey, conn: Conn<Alloc>) -> bool {
        self.put(key, conn, false) != Inserted::No
    }

    fn insert_syn(&mut self, key: FlowKey, conn: Conn<Alloc>) -> Inserted {
        self.put(key, conn, true)
    }

    fn remove(&mut self, key: &FlowKey) -> Option<Conn<Alloc>> {
        let c = self.tree.remove(key);
        if c.is_some() {
            *self.len -= 1;
            self.total.fetch_sub(1, Ordering::Relaxed);
        }
        c
    }

    fn len(&self) -> usize {
        self.total.load(Ordering::Relaxed)
    }

    fn scanned(&self) -> usize {
        *self.len
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
            *self.len -= 1;
            self.total.fetch_sub(1, Ordering::Relaxed);
            // remove_current() falls back to the previous node at the end: stop there.
            cursor = next.filter(|n| n.current().0 > &key);
        }
    }
}

/// One shard: the connections whose keys hash to it, what the frames tracked in it counted,
/// and its allocator.
pub(crate) struct Shard {
    conns: RBTree<FlowKey, Conn<Alloc>>,
    len: usize,
    counters: Counters,
    /// Connections of bindings the filter does not snoop (seeded), an upper bound.
    seeded: usize,
    last_gc_ms: u64,
    alloc: Alloc,
}

impl Shard {
    /// An empty shard charging `pool`, whose connections keep views of large frames with
    /// `views`.
    pub(crate) fn new(pool: Arc<Pool>, views: bool) -> Self {
        Shard {
            conns: RBTree::new(),
            len: 0,
            counters: Counters::default(),
            seeded: 0,
            last_gc_ms: 0,
            alloc: Pooled {
                inner: KernelChunks { views },
                pool,
            },
        }
    }

    /// Its map (counted in `total`, at most `max` in all, SYNs taking entries from
    /// `reserve` when memory is short), its counters and its allocator, for [`Rules`].
    pub(crate) fn parts<'a>(
        &'a mut self,
        total: &'a AtomicUsize,
        max: usize,
        reserve: Option<&'a SynReserve>,
    ) -> (ShardMap<'a>, &'a mut Counters, &'a mut Alloc) {
        (
            ShardMap {
                tree: &mut self.conns,
                len: &mut self.len,
                total,
                max,
                reserve,
            },
            &mut self.counters,
            &mut self.alloc,
        )
    }

    /// Moves connection `key` out (into `out`, which must have room).
    fn take(&mut self, total: &AtomicUsize, key: &FlowKey, out: &mut Taking) -> bool {
        let Some(c) = self.conns.remove(key) else {
            return false;
        };
        self.len -= 1;
        total.fetch_sub(1, Ordering::Relaxed);
        // The caller checked the spare capacity: no allocation, cannot fail.
        out.push((*key, c), GFP_ATOMIC | __GFP_NOWARN).is_ok()
    }
}

impl Drop for Shard {
    fn drop(&mut self) {
        let alloc = &mut self.alloc;
        for (_, c) in self.conns.iter_mut() {
            c.release(alloc);
        }
    }
}

/// A table node allocated ahead, for [`Snoop::put_back`] under a shard's spinlock, or for a
/// SYN ([`SynReserve`]).
pub(crate) type Reservation = RBTreeNodeReservation<FlowKey, Conn<Alloc>>;

/// Table entries a table keeps allocated ahead for SYNs: 32 of about 512 bytes (16 KiB per
/// snooping namespace), against a burst of SYNs while atomic allocations fail.
pub(crate) const SYN_RESERVE: usize = 32;

/// Table entries allocated ahead for SYNs ([`FlowMap::insert_syn`]).
///
/// The mirror allocates in the hook, atomically (`GFP_NOWAIT`): under memory pressure, or
/// at its memory cgroup's limit, an allocation fails where one in process context would
/// have reclaimed memory and succeeded. A connection whose SYN finds no table entry is only
/// tracked from a later segment, without the SYN's options (window scale, MSS, SACK): it
/// is never ready to take over. A SYN that finds memory short takes one of these entries
/// instead, as a mempool gives its reserved elements out. The entries are allocated when the
/// table is (process context, charged to the caller's memory cgroup, the one snooping then
/// charges), and the hook replaces those taken once its own allocations succeed again, so a
/// reserve covers a burst of [`SYN_RESERVE`] SYNs per pressure episode. Not counted in the
/// byte budget until a connection takes one (then as every connection is).
pub(crate) struct SynReserve {
    nodes: Pin<KBox<SpinLockIrq<KVec<Reservation>>>>,
    /// Some were taken: [`SynReserve::top_up`] has work.
    low: AtomicBool,
}

impl SynReserve {
    /// [`SYN_RESERVE`] entries, allocated with `flags` (process context).
    pub(crate) fn new(flags: Flags) -> Result<Self> {
        let mut v = KVec::with_capacity(SYN_RESERVE, GFP_KERNEL)?;
        for _ in 0..SYN_RESERVE {
            v.push(Reservation::new(flags)?, GFP_KERNEL)?;
        }
        Ok(SynReserve {
            nodes: KBox::pin_init(new_spinlock_irq!(v, "permtcp_syn_reserve"), GFP_KERNEL)?,
            low: AtomicBool::new(false),
        })
    }

    /// An entry, if any is left.
    pub(crate) fn take(&self) -> Option<Reservation> {
        self.low.store(true, Ordering::Relaxed);
        self.nodes.lock().pop()
    }

    /// Entries left.
    pub(crate) fn len(&self) -> usize {
        self.nodes.lock().len()
    }

    /// Replaces the entries taken, as far as atomic allocations (`flags`) succeed; in the
    /// hook, where the mirror's allocations are charged.
    pub(crate) fn top_up(&self, flags: Flags) {
        if !self.low.load(Ordering::Relaxed) {
            return;
        }
        let missing = SYN_RESERVE.saturating_sub(self.len());
        for _ in 0..missing {
            let Ok(node) = Reservation::new(flags) else {
                return;
            };
            let mut v = self.nodes.lock();
            if v.len() >= SYN_RESERVE {
                break;
            }
            // Within the capacity allocated with the vector: no allocation.
            if v.push(node, GFP_NOWAIT | __GFP_NOWARN).is_err() {
                return;
            }
        }
        self.low.store(false, Ordering::Relaxed);
    }
}

/// Connections moved out of the table by a takeover. Their chunks count against the
/// namespace's budget until [`Snoop::put_back`] returns them.
pub(crate) type Taking = KVVec<(FlowKey, Conn<Alloc>)>;

/// Connections moved out of the table for good, with the allocator their retained data is
/// charged to.
///
/// # Invariants
///
/// `alloc` charges the namespace's pool, as the shards' allocators do: dropping this
/// releases every connection's data there (nothing is left charged).
pub(crate) struct Released {
    conns: Taking,
    /// More of them, moved out on another CPU ([`Released::add`]).
    more: Taking,
    alloc: Alloc,
}

impl Released {
    /// Keeps `c` for release, or releases it now when there is no room.
    fn keep(&mut self, k: FlowKey, c: Conn<Alloc>) {
        if let Err(e) = self.conns.push_within_capacity((k, c)) {
            let (_, mut c) = e.0;
            c.release(&mut self.alloc);
        }
    }

    /// Keeps `more` for release too: moved as it is when it is the first such batch.
    pub(crate) fn add(&mut self, more: Taking) {
        if self.more.is_empty() {
            self.more = more;
            return;
        }
        for (k, c) in more.into_iter() {
            self.keep(k, c);
        }
    }

    /// How many connections it holds.
    pub(crate) fn len(&self) -> usize {
        self.conns.len() + self.more.len()
    }
}

impl Drop for Released {
    fn drop(&mut self) {
        while let Some((_, mut c)) = self.conns.pop().or_else(|| self.more.pop()) {
            c.release(&mut self.alloc);
        }
    }
}

/// What [`Snoop::take_key`] found.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Take {
    /// Moved out of the table.
    Taken,
    /// Not mirrored here.
    Absent,
    /// Mirrored, but over (TIME-WAIT or closed): left where it is.
    Over,
}

/// Counts of the frames a table saw, and of those skipped before any shard is chosen: per
/// CPU, as every frame adds to one (a namespace's atomics shared their cache line among the
/// CPUs' frames).
struct Skipped(PerCpuCounters<4>);

impl Skipped {
    const FRAMES: usize = 0;
    const NOT_TCP: usize = 1;
    const FRAGMENTS: usize = 2;
    const MALFORMED: usize = 3;

    /// The counts, into `c`.
    fn read(&self, c: &mut Counters) {
        c.frames = self.0.sum::<{ Self::FRAMES }>();
        c.not_tcp = self.0.sum::<{ Self::NOT_TCP }>();
        c.fragments = self.0.sum::<{ Self::FRAGMENTS }>();
        c.malformed = self.0.sum::<{ Self::MALFORMED }>();
    }
}

/// A snooping run's table: from SNOOP_START to SNOOP_STOP.
pub(crate) struct Table {
    /// The snooped bindings; replaced when the declarations change.
    filter: RcuBox<Filter>,
    limits: Limits,
    /// The shards' hash seed, random per run.
    seed: u64,
    shards: KVec<Pin<KBox<SpinLockIrq<Shard>>>>,
    /// Connections in all shards.
    len: AtomicUsize,
    /// The shards' seeded counts summed: while 0, a frame the filter passes over is not
    /// looked up.
    seeded: AtomicUsize,
    skipped: Skipped,
    /// The next shard a frame expires, if due (every shard is looked at about once a
    /// second under traffic, one at a time).
    gc_next: AtomicUsize,
    /// When (ms) a frame next looks at another shard than its own: a shard's share of a
    /// second. Between two looks a frame pays one relaxed load, not a lock attempt.
    gc_due_ms: AtomicU64,
    /// Entries for SYNs that find memory short.
    reserve: SynReserve,
}

impl Table {
    fn new(limits: Limits, filter: Filter, pool: &Arc<Pool>, views: bool) -> Result<KBox<Self>> {
        let n = shard_count(limits.max_conns);
        let mut shards = KVec::with_capacity(n, GFP_KERNEL)?;
        for _ in 0..n {
            let shard = KBox::pin_init(
                new_spinlock_irq!(Shard::new(pool.clone(), views), "permtcp_shard"),
                GFP_KERNEL,
            )?;
            shards.push(shard, GFP_KERNEL)?;
        }
        let t = KBox::new(
            Table {
                filter: RcuBox::empty(),
                limits,
                seed: crate::glue::random_u64(),
                shards,
                len: AtomicUsize::new(0),
                seeded: AtomicUsize::new(0),
                skipped: Skipped(PerCpuCounters::new()?),
                gc_next: AtomicUsize::new(0),
                gc_due_ms: AtomicU64::new(0),
                reserve: SynReserve::new(GFP_KERNEL_ACCOUNT)?,
            },
            GFP_KERNEL,
        )?;
        drop(t.filter.replace(Some(KBox::new(filter, GFP_KERNEL)?)));
        Ok(t)
    }

    fn shard(&self, key: &FlowKey) -> &SpinLockIrq<Shard> {
        &self.shards[key.shard(self.seed, self.shards.len())]
    }

    fn max(&self) -> usize {
        self.limits.max_conns as usize
    }

    /// Expires shard `s`'s connections whose time is up, if a second has passed since it
    /// last did. The check is inlined into every frame's path; the expiry, once a second
    /// per shard, is not (the call had cost every frame about 30 instructions).
    #[inline(always)]
    fn gc_shard(&self, s: &mut Shard, filter: &Filter, now_ms: u64) {
        if now_ms.wrapping_sub(s.last_gc_ms) >= 1000 {
            self.expire_shard(s, filter, now_ms);
        }
    }

    /// [`Self::gc_shard`]'s expiry.
    #[inline(never)]
    #[cold]
    fn expire_shard(&self, s: &mut Shard, filter: &Filter, now_ms: u64) {
        s.last_gc_ms = now_ms;
        let rules = Rules {
            filter,
            limits: &self.limits,
        };
        let old = s.seeded;
        let (mut map, c, alloc) = s.parts(&self.len, self.max(), Some(&self.reserve));
        let seeded = rules.expire(c, &mut map, alloc, now_ms);
        s.seeded = seeded;
        // Recounted (the removals included): the sum stays an upper bound.
        if seeded >= old {
            self.seeded.fetch_add(seeded - old, Ordering::Relaxed);
        } else {
            self.seeded.fetch_sub(old - seeded, Ordering::Relaxed);
        }
    }

    /// Which end sent `seg`, if the table holds it as a seeded connection.
    fn seeded_side(&self, seg: &Segment) -> Option<Side> {
        if self.seeded.load(Ordering::Relaxed) == 0 {
            return None;
        }
        [Side::Client, Side::Owner].into_iter().find(|&from| {
            let k = FlowKey::of(seg, from);
            self.shard(&k).lock().conns.get(&k).is_some()
        })
    }

    /// Tracks one frame.
    fn on_frame(
        &self,
        filter: &Filter,
        skb: &Skb<'_>,
        seg: &mut FrameSeg<'_, '_>,
        now_ms: u64,
    ) -> Outcome {
        let k = &self.skipped.0;
        k.inc::<{ Skipped::FRAMES }>();
        // Borrowed where it was parsed: a move out of the result copied the segment (about
        // 90 bytes) for every frame.
        let seg = match seg.get() {
            Ok(seg) => seg,
            Err(why) => {
                match why {
                    Skip::NotTcp => k.inc::<{ Skipped::NOT_TCP }>(),
                    Skip::Fragment => k.inc::<{ Skipped::FRAGMENTS }>(),
                    Skip::Malformed => k.inc::<{ Skipped::MALFORMED }>(),
                }
                return Outcome::Ignored;
            }
        };
        let Some((from, bound)) = filter
            .classify_side(seg)
            .map(|(from, b)| (from, Some(b)))
            .or_else(|| self.seeded_side(seg).map(|from| (from, None)))
        else {
            return Outcome::Ignored;
        };
        let key = FlowKey::of(seg, from);
        // Verified before the shard's lock is taken: the costly part of a large frame.
        let csum_ok = skb.csum_ok(seg.l4_off, seg.l4_len(), |s| tcp_csum_ok(seg, s));
        let i = key.shard(self.seed, self.shards.len());
        // The sender's MAC tells who serves a connection ([`Rules::track`]): only the
        // service end's frames of a snooped binding need it, read before the lock.
        let src_mac = if from == Side::Owner && bound.is_some() {
            skb.src_mac()
        } else {
            None
        };
        let outcome = {
            let mut s = self.shards[i].lock();
            if !csum_ok {
                s.counters.bad_csum += 1;
                return Outcome::Ignored;
            }
            let rules = Rules {
                filter,
                limits: &self.limits,
            };
            let (mut map, c, alloc) = s.parts(&self.len, self.max(), Some(&self.reserve));
            let outcome = rules.track(
                c,
                &mut map,
                alloc,
                (from, &key),
                bound,
                seg,
                skb,
                src_mac,
                now_ms,
            );
            self.gc_shard(&mut s, filter, now_ms);
            outcome
        };
        // One more shard, not the frame's, if it is free and due: idle shards expire too,
        // the shards in turn, all of them about once a second while frames come.
        let due = self.gc_due_ms.load(Ordering::Relaxed);
        let step = (1000 / self.shards.len() as u64).max(1);
        if now_ms >= due
            && self
                .gc_due_ms
                .compare_exchange(due, now_ms + step, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            let g = self.gc_next.fetch_add(1, Ordering::Relaxed) & (self.shards.len() - 1);
            if g != i {
                if let Some(mut s) = self.shards[g].try_lock() {
                    self.gc_shard(&mut s, filter, now_ms);
                }
            }
            // Entries SYNs took from the reserve are replaced here, in the hook, charged as
            // the mirror's other allocations are.
            self.reserve.top_up(mirror_gfp());
        }
        outcome
    }
}

/// What the last run counted, reported after SNOOP_STOP until the next SNOOP_START.
#[derive(Default)]
struct Last {
    counters: Counters,
    limits: Limits,
    bindings: u32,
}

/// A namespace's snooping state: the table of the current run, if any, and the byte budget
/// every run charges.
#[pin_data]
pub(crate) struct Snoop {
    table: RcuBox<Table>,
    pool: Arc<Pool>,
    #[pin]
    last: Mutex<Last>,
}

impl Snoop {
    /// Not snooping.
    pub(crate) fn new() -> impl PinInit<Self, Error> {
        try_pin_init!(Snoop {
            table: RcuBox::empty(),
            pool: Arc::new(Pool::new(0), GFP_KERNEL)?,
            last <- new_mutex!(Last::default(), "permtcp_snoop_last"),
        }? Error)
    }

    /// The current run's table and filter, while `guard` holds the RCU read lock; `None`
    /// when not snooping.
    fn current<'g>(&self, guard: &'g rcu::Guard) -> Option<(&'g Table, &'g Filter)> {
        let t = self.table.get(guard)?;
        Some((t, t.filter.get(guard)?))
    }

    /// Calls `f` with the current run's table and filter, under the RCU read lock (`f` must
    /// not sleep); `None` when not snooping.
    fn with<R>(&self, f: impl FnOnce(&Table, &Filter) -> R) -> Option<R> {
        let guard = rcu::read_lock();
        let (t, filter) = self.current(&guard)?;
        Some(f(t, filter))
    }

    /// Whether a device is snooped.
    pub(crate) fn active(&self) -> bool {
        self.with(|_, _| ()).is_some()
    }

    /// Starts afresh with `limits`, snooping the bindings of `filter` (process context: it
    /// allocates the shards, and waits for the frames of an earlier run to finish); large
    /// frames are retained by reference with `views` (nothing charges a memory cgroup for
    /// them: only where the caller's would not be, [`crate::glue::Net::views_allowed`]).
    pub(crate) fn start(&self, limits: Limits, filter: Filter, views: bool) -> Result {
        let table = Table::new(limits, filter, &self.pool, views)?;
        self.pool.set_max(limits.max_bytes);
        self.retire(self.table.replace(Some(table)));
        Ok(())
    }

    /// Stops and forgets every connection (counters stay readable); process context.
    pub(crate) fn stop(&self) {
        self.retire(self.table.replace(None));
    }

    /// Keeps a replaced table's counters, then frees it after a grace period.
    fn retire(&self, old: crate::glue::Retired<Table>) {
        if !old.is_some() {
            return;
        }
        // Frames still being tracked finish first (the grace period), then the counts are
        // final.
        let mut last = Last::default();
        if let Some(t) = old.wait() {
            t.skipped.read(&mut last.counters);
            for s in t.shards.iter() {
                last.counters.add(&s.lock().counters);
            }
            last.limits = t.limits;
            let guard = rcu::read_lock();
            last.bindings = t.filter.get(&guard).map_or(0, |f| f.bindings.len() as u32);
        }
        *self.last.lock() = last;
    }

    /// Declarations changed: snoop the new set of bindings, dropping connections of bindings
    /// that are no longer snooped (process context: waits for a grace period).
    pub(crate) fn refilter(&self, filter: KBox<Filter>) {
        let guard = rcu::read_lock();
        let Some(t) = self.table.get(&guard) else {
            return;
        };
        let same = t
            .filter
            .get(&guard)
            .is_some_and(|old| old.same_bindings(&filter));
        let old = t.filter.replace(Some(filter));
        drop(guard);
        if same {
            // The same bindings (a failed owner's made track-only): no connection to drop,
            // so nothing waits for the frames classified by the old filter.
            old.free_later();
            return;
        }
        // Frames classified by the old filter are done before connections are dropped.
        drop(old);
        let _ = self.with(|t, filter| {
            for s in t.shards.iter() {
                let mut s = s.lock();
                let (mut map, _, alloc) = s.parts(&t.len, t.max(), Some(&t.reserve));
                map.retain(|k, c| {
                    let keep = filter.snoops(&k.owner_addr, k.owner_port);
                    if !keep {
                        c.release(alloc);
                    }
                    keep
                });
            }
        });
    }

    /// One frame from the hook: what the snooper did with it.
    pub(crate) fn on_frame(
        &self,
        skb: &Skb<'_>,
        seg: &mut FrameSeg<'_, '_>,
        now_ms: u64,
    ) -> Outcome {
        self.with(|t, filter| t.on_frame(filter, skb, seg, now_ms))
            .unwrap_or(Outcome::Ignored)
    }

    /// Mirrors connection `key` from now on as `conn` describes it (see [`Rules::seed`]);
    /// `false` when not snooping, or the table or budget is full.
    pub(crate) fn seed(&self, key: FlowKey, conn: Conn<Alloc>) -> bool {
        self.with(|t, filter| {
            let mut s = t.shard(&key).lock();
            let rules = Rules {
                filter,
                limits: &t.limits,
            };
            let (mut map, _, alloc) = s.parts(&t.len, t.max(), Some(&t.reserve));
            let ok = rules.seed(&mut map, alloc, key, conn);
            if ok && !filter.snoops(&key.owner_addr, key.owner_port) {
                s.seeded += 1;
                t.seeded.fetch_add(1, Ordering::Relaxed);
            }
            ok
        })
        .unwrap_or(false)
    }

    /// Stops mirroring connection `key`, if it was.
    pub(crate) fn forget(&self, key: &FlowKey) {
        let _ = self.with(|t, _| {
            let mut s = t.shard(key).lock();
            let (mut map, _, alloc) = s.parts(&t.len, t.max(), Some(&t.reserve));
            if let Some(mut c) = map.remove(key) {
                c.release(alloc);
            }
        });
    }

    /// Calls `f` with the mirrored connection `key` (`None` if there is none), under its
    /// shard's lock.
    pub(crate) fn with_conn<R>(
        &self,
        key: &FlowKey,
        f: impl FnOnce(Option<&Conn<Alloc>>) -> R,
    ) -> R {
        let guard = rcu::read_lock();
        match self.current(&guard) {
            Some((t, _)) => f(t.shard(key).lock().conns.get(key)),
            None => f(None),
        }
    }

    /// Whether the connection `key` is mirrored.
    pub(crate) fn holds(&self, key: &FlowKey) -> bool {
        self.with(|t, _| t.shard(key).lock().conns.get(key).is_some())
            .unwrap_or(false)
    }

    /// Connections in the table.
    pub(crate) fn len(&self) -> usize {
        self.with(|t, _| t.len.load(Ordering::Relaxed)).unwrap_or(0)
    }

    /// Expires every shard's connections whose time is up, if due (process context: a dump
    /// shows the table as it is after its timeouts, even where no frame came meanwhile).
    pub(crate) fn gc(&self, now_ms: u64) {
        // One read-side section per shard: a large table is not walked with preemption off.
        let mut i = 0;
        while let Some(Some(())) = self.with(|t, filter| {
            let s = t.shards.get(i)?;
            t.gc_shard(&mut s.lock(), filter, now_ms);
            Some(())
        }) {
            i += 1;
        }
    }

    /// Counters and limits (every shard expired first, if due).
    pub(crate) fn stats(&self, ifindex: u32, now_ms: u64) -> StatsInfo {
        self.gc(now_ms);
        let now = self.with(|t, filter| {
            let mut counters = Counters::default();
            t.skipped.read(&mut counters);
            for s in t.shards.iter() {
                counters.add(&s.lock().counters);
            }
            (
                counters,
                t.limits,
                filter.bindings.len() as u32,
                t.len.load(Ordering::Relaxed) as u32,
            )
        });
        let (mut counters, limits, bindings, conns) = match now {
            Some(x) => x,
            None => {
                let l = self.last.lock();
                (l.counters, l.limits, l.bindings, 0)
            }
        };
        counters.byte_limit = self.pool.refused();
        StatsInfo {
            ifindex,
            conns,
            max_conns: limits.max_conns,
            bytes: self.pool.used(),
            max_bytes: limits.max_bytes,
            bindings,
            counters,
            alloc_failed: self.pool.failed(),
            views: self.pool.views(),
            hook_ns: 0,
            hook_frames: 0,
            frames_kept: 0,
            rst_dropped: 0,
            steered: 0,
            handed: 0,
            syn_refused: 0,
            ct_ns: 0,
            ct_frames: 0,
        }
    }

    /// The first connection after `after` in the table's order (shard by shard, by 4-tuple
    /// within a shard; the first of all with `None`): where a dump resumes. The order does
    /// not change during a run, so connections coming and going between rounds neither
    /// repeat nor hide others.
    pub(crate) fn next_after(
        &self,
        after: Option<&FlowKey>,
        now_ms: u64,
    ) -> Option<(FlowKey, ConnInfo)> {
        self.with(|t, _| {
            let n = t.shards.len();
            let (mut i, mut after) = match after {
                None => (0, None),
                Some(k) => (k.shard(t.seed, n), Some(k)),
            };
            while i < n {
                let s = t.shards[i].lock();
                let c = match after {
                    None => s.conns.cursor_front(),
                    Some(k) => s.conns.cursor_lower_bound(k),
                };
                let info = |(k, conn): (&FlowKey, &Conn<Alloc>)| {
                    (*k, ConnInfo::from_conn(k, conn, now_ms))
                };
                let found = c.and_then(|c| match c.current() {
                    (k, _) if Some(k) == after => c.peek_next().map(info),
                    current => Some(info(current)),
                });
                if found.is_some() {
                    return found;
                }
                i += 1;
                after = None;
            }
            None
        })
        .flatten()
    }

    /// The keys of the connections `whose` gives this node (`Some(true)`), as [`pick`]
    /// decides, into `out` within its spare capacity, shard by shard (each shard's in key
    /// order); returns how many of them found no room and how many of the failed node's
    /// connections the policy gives other nodes (they stay, marked followed). Nothing
    /// leaves the table: [`Self::take_keys`] moves them out once the keys are published for
    /// reset suppression, so that each shard's lock is held for its own walk only.
    pub(crate) fn pick_mine(
        &self,
        whose: impl Fn(&FlowKey) -> Option<bool>,
        out: &mut KVec<FlowKey>,
    ) -> (u32, u32) {
        let (mut no_room, mut not_mine) = (0u32, 0u32);
        let _ = self.with(|t, _| {
            for s in t.shards.iter() {
                let mut s = s.lock();
                for (key, conn) in s.conns.iter_mut() {
                    match pick(conn, whose(key)) {
                        Pick::Leave => {}
                        Pick::Other => {
                            conn.followed = true;
                            not_mine += 1;
                        }
                        Pick::Take => {
                            if out.push_within_capacity(*key).is_err() {
                                no_room += 1;
                            }
                        }
                    }
                }
            }
        });
        (no_room, not_mine)
    }

    /// Moves the connections `keys` names (which [`Self::pick_mine`] picked) into `out`, in
    /// that order, each one's shard locked for it alone; one that is gone, over or followed
    /// by now stays (as [`pick`] would leave it), and so does one `out` has no spare room
    /// for. Returns how many stayed.
    pub(crate) fn take_keys(&self, keys: &[FlowKey], out: &mut Taking) -> u32 {
        let mut stayed = 0u32;
        let _ = self.with(|t, _| {
            for key in keys {
                let mut s = t.shard(key).lock();
                let s = &mut *s;
                let found = s.conns.find_mut(key);
                let Some(e) = found.filter(|e| pick(e.get(), Some(true)) == Pick::Take) else {
                    stayed += 1;
                    continue;
                };
                if out.len() == out.capacity() {
                    stayed += 1;
                    continue;
                }
                let c = e.remove();
                s.len -= 1;
                t.len.fetch_sub(1, Ordering::Relaxed);
                // Within the spare capacity checked above: cannot fail.
                let _ = out.push_within_capacity((*key, c));
            }
        });
        stayed
    }

    /// Moves the connection `key` out of the table into `out` (which has room for it), unless
    /// it is over (TIME-WAIT or closed: followed until its deadline, never rebuilt, passed
    /// on or reset, as [`Self::pick_mine`] leaves it).
    pub(crate) fn take_key(&self, key: &FlowKey, out: &mut Taking) -> Take {
        self.with(|t, _| {
            let mut s = t.shard(key).lock();
            let over = s
                .conns
                .get(key)
                .map(|c| matches!(c.state, State::TimeWait | State::Closed));
            match over {
                None => Take::Absent,
                Some(true) => Take::Over,
                Some(false) if out.len() == out.capacity() => Take::Absent,
                Some(false) if s.take(&t.len, key, out) => Take::Taken,
                Some(false) => Take::Absent,
            }
        })
        .unwrap_or(Take::Absent)
    }

    /// Decides on the mirrored connection `key` (`None` if there is none) under its shard's
    /// lock: `decide` returns an answer and whether to move the connection into `out`
    /// (done when it has room and the connection is not over, as [`Self::take_key`]).
    pub(crate) fn take_when<R>(
        &self,
        key: &FlowKey,
        out: &mut Taking,
        decide: impl FnOnce(Option<&Conn<Alloc>>) -> (R, bool),
    ) -> R {
        let guard = rcu::read_lock();
        let Some((t, _)) = self.current(&guard) else {
            return decide(None).0;
        };
        let mut s = t.shard(key).lock();
        let conn = s.conns.get(key);
        let over = conn.is_some_and(|c| matches!(c.state, State::TimeWait | State::Closed));
        let (r, take) = decide(conn);
        if take && !over && out.len() < out.capacity() {
            s.take(&t.len, key, out);
        }
        r
    }

    /// Puts the connections moved out by [`Self::take_keys`] or [`Self::take_key`] that
    /// `back` names into the table again, one reserved node from `nodes` each (without one,
    /// or when the run ended meanwhile, a connection is released as the others are), and
    /// returns the others, whose retained data is released when the [`Released`] is dropped
    /// (the takeover drops it after its connections are live). `taken` is left empty.
    pub(crate) fn put_back(
        &self,
        taken: &mut Taking,
        back: impl Fn(&FlowKey) -> bool,
        nodes: &mut KVec<Reservation>,
    ) -> Released {
        let mut rest = Released {
            conns: KVVec::new(),
            more: KVVec::new(),
            alloc: self.alloc(),
        };
        if nodes.is_empty() {
            // Nothing goes back (the common case): all of them are released, later.
            rest.conns = core::mem::take(taken);
            return rest;
        }
        // Without room for the rest, each is released at once instead.
        let _ = rest.conns.reserve(taken.len(), GFP_KERNEL);
        let _ = self.with(|t, _| {
            while let Some((k, mut c)) = taken.pop() {
                let node = if back(&k) { nodes.pop() } else { None };
                let Some(node) = node else {
                    rest.keep(k, c);
                    continue;
                };
                let mut s = t.shard(&k).lock();
                let s = &mut *s;
                // Passed on: another node serves it from now on.
                c.followed = true;
                match s.conns.insert(node.into_node(k, c)) {
                    None => {
                        s.len += 1;
                        t.len.fetch_add(1, Ordering::Relaxed);
                    }
                    Some(old) => old.to_key_value().1.release(&mut s.alloc),
                }
            }
        });
        // Not snooping any more: nothing goes back.
        while let Some((k, c)) = taken.pop() {
            rest.keep(k, c);
        }
        rest
    }

    /// An allocator charging the namespace's budget, for connections moved out of the table
    /// (their release, the hand-over of their bytes: [`crate::rebuild::Plan::new`]).
    pub(crate) fn alloc(&self) -> Alloc {
        Pooled {
            inner: KernelChunks::copying(),
            pool: self.pool.clone(),
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
        self.with(|t, _| {
            let s = t.shard(key).lock();
            let c = s.conns.get(key)?;
            Some(Self::dump_side(c, side, dump, pos))
        })
        .flatten()
    }

    /// The bytes `side` of `c` sent that the mirror retains, from stream position `*pos` on.
    fn dump_side(
        c: &Conn<Alloc>,
        side: Side,
        dump: &mut Dump<'_>,
        pos: &mut c_long,
    ) -> Result<(), LogicError> {
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
                    Ok(false) => return Ok(()),
                    Err(e) => return Err(e),
                }
                *pos += c_long::from(n);
                at = at.wrapping_add(n);
            }
        }
        Ok(())
    }
}
