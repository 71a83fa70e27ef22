// SPDX-License-Identifier: GPL-2.0

//! Retained stream data of one direction of a snooped connection.
//!
//! Bytes are kept in extents: runs of consecutive sequence numbers, ordered and disjoint,
//! each backed by one piece of memory ([`ChunkMem`]). An interval set records which bytes are
//! present, so retransmissions, overlaps and reordering need no special case: only the
//! missing pieces of a segment are stored, and a missing byte is visible as a hole rather than
//! papered over. Memory comes from [`ChunkAlloc`] (the kernel allocates atomically from
//! softirq context and enforces a per-namespace byte budget) and goes back when
//! acknowledgements and window advertisements move the retained window past an extent.
//!
//! Zero-copy retention: a missing piece that a frame can lend ([`Payload::frame`],
//! [`ChunkAlloc::hold`]) becomes one extent that is a view of the frame
//! ([`ChunkAlloc::view`]) when it is large enough ([`FrameRef::worth_viewing`]: at least
//! [`VIEW_MIN`] bytes, as a GRO or GSO aggregate's, or at least [`VIEW_MIN_FULL`] bytes that
//! are most of the frame's memory, as a full-size segment's): no byte is copied, one
//! reference to the frame is taken for the whole piece, the frame's memory (its share of the
//! frame's truesize, [`frame_share`]) is charged, and the reference is dropped when the
//! window moves past the piece. Smaller pieces are copied, appended to the copy extent they
//! continue while it has room ([`CHUNK`] bytes each), so a stream of small segments fills
//! whole chunks.

use crate::logic::seq::{self, Seq};
use core::marker::{PhantomData, PhantomPinned};
use core::mem::MaybeUninit;
use core::ops::Deref;
use core::sync::atomic::{AtomicU64, Ordering};

/// Bytes per copy chunk.
pub const CHUNK: usize = 4096;
/// Extents per direction at most. The slot table grows on demand (its memory is charged
/// too); the connection's share of the namespace's byte budget is the real bound.
pub const MAX_EXTENTS: usize = 4096;
/// Bytes one direction can retain: 16 MiB.
pub const CAPACITY: u32 = (CHUNK * MAX_EXTENTS) as u32;
/// Bytes of a frame's missing piece from which it is held by reference rather than copied.
pub const VIEW_MIN: u32 = CHUNK as u32;
/// Bytes of a frame's missing piece from which it is held by reference when the frame takes
/// at most twice as much memory ([`FrameRef::worth_viewing`]): a full-size segment (1448
/// bytes of payload in a 2 KiB buffer) is held, not copied; a smaller one, or a piece of a
/// frame mostly held already, is copied, which takes less memory.
pub const VIEW_MIN_FULL: u32 = 1024;
/// Present-byte intervals tracked; more disjoint pieces than this is too much reordering.
pub const MAX_RANGES: usize = 8;

/// Memory of one chunk of [`CHUNK`] bytes (slab memory in the kernel, heap on the host),
/// never zeroed when allocated: the stream's bytes overwrite it anyway. A byte becomes
/// readable once stored; a load of a byte never stored fails rather than reading it.
/// Implementations need `unsafe` (reading memory known to be initialised), so they live at
/// the module's C edge (`permtcp/glue.rs`) and in the host tests' helpers.
pub trait ChunkMem {
    /// Stores the `len` bytes at `[at, at + len)` of the chunk, copied from `src` starting at
    /// `src_off`; `false` when the range is not within the chunk or the frame does not hold
    /// the bytes (those of them stored before stay readable).
    fn store<P: Payload + ?Sized>(&mut self, at: usize, len: usize, src: &P, src_off: u32) -> bool;
    /// Copies the bytes at `[at, at + out.len())` of the chunk to `out`; `false`, leaving
    /// `out` unchanged, when any of them was never stored.
    fn load(&self, at: usize, out: &mut [u8]) -> bool;
    /// Bytes of memory the chunk is charged for: [`CHUNK`] for a copy, its share of the
    /// frame's memory for the bytes it views ([`ChunkAlloc::view`]).
    fn cost(&self) -> u64 {
        CHUNK as u64
    }
    /// Whether the chunk is a view of a frame ([`ChunkAlloc::view`]), not a copy.
    fn is_view(&self) -> bool {
        false
    }
}

/// A received frame, opaque: only the environment that makes references to it interprets
/// them (the module's C edge: an skb; the host tests' helpers: their frames). It has no
/// constructor: a reference to one comes from a cast at that edge, from the frame a
/// [`Payload`] reads.
pub struct RawFrame {
    _opaque: [u8; 0],
    _marker: PhantomData<(*mut u8, PhantomPinned)>,
}

/// A frame that a payload is read from, as [`Payload::frame`] gives it, for as long as the
/// payload is borrowed (`'a`), with the memory it takes and its length (for the share of
/// that memory a view of one chunk is charged).
#[derive(Clone, Copy)]
pub struct FrameRef<'a> {
    frame: &'a RawFrame,
    truesize: u32,
    len: u32,
}

impl<'a> FrameRef<'a> {
    /// `frame`, taking `truesize` bytes of memory for `len` bytes.
    pub fn new(frame: &'a RawFrame, truesize: u32, len: u32) -> Self {
        FrameRef {
            frame,
            truesize,
            len,
        }
    }

    /// The frame.
    pub fn frame(&self) -> &'a RawFrame {
        self.frame
    }

    /// What a view of `bytes` of it is charged: [`frame_share`].
    pub fn share(&self, bytes: u32) -> u64 {
        frame_share(self.truesize, self.len, bytes)
    }

    /// At least [`Self::share`], without its division where the frame holds `bytes`: the
    /// frame's memory or the bytes, whichever is more.
    pub fn share_bound(&self, bytes: u32) -> u64 {
        if bytes <= self.len {
            u64::from(self.truesize.max(bytes))
        } else {
            self.share(bytes)
        }
    }

    /// Whether its bytes `[off, off + n)` exist (a frame may claim more than it holds: a
    /// view is made only of bytes it holds, as a copy is only of bytes it could read).
    pub fn holds(&self, off: u32, n: u32) -> bool {
        off.checked_add(n).is_some_and(|end| end <= self.len)
    }

    /// Whether its bytes `[off, off + n)` are kept as a view of it rather than copied: it
    /// holds them, and they are at least [`VIEW_MIN`] bytes, or at least [`VIEW_MIN_FULL`]
    /// bytes for which the frame takes no more than twice their size in memory (the whole
    /// frame stays allocated while the view lives, whatever share of it is charged).
    pub fn worth_viewing(&self, off: u32, n: u32) -> bool {
        self.holds(off, n)
            && (n >= VIEW_MIN
                || (n >= VIEW_MIN_FULL && u64::from(self.truesize) <= 2 * u64::from(n)))
    }
}

/// What a view of `bytes` of a frame of `len` bytes taking `truesize` bytes of memory is
/// charged: the frame's memory in proportion, and never less than the bytes themselves (a
/// view is not cheaper in memory than a copy, only in time).
pub fn frame_share(truesize: u32, len: u32, bytes: u32) -> u64 {
    (u64::from(truesize) * u64::from(bytes))
        .div_ceil(u64::from(len.max(1)))
        .max(u64::from(bytes))
}

/// What an allocator that holds no frames holds: nothing ([`ChunkAlloc::Held`]).
#[derive(Clone, Debug)]
pub enum NoFrame {}

/// A run of retained bytes: `len` bytes from sequence number `seq`, held in `mem` from its
/// first byte on.
pub struct Extent<C> {
    seq: Seq,
    len: u32,
    mem: C,
}

impl<C> Extent<C> {
    /// Sequence number of its first byte.
    pub fn seq(&self) -> Seq {
        self.seq
    }

    /// Bytes it holds.
    pub fn len(&self) -> u32 {
        self.len
    }

    /// Whether it holds no byte (never, in a [`SeqBuf`]).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// A growable table of extent slots (`KVec` in the kernel, `Vec` on the host).
pub trait Slots<C>: Default {
    /// The slots.
    fn as_slice(&self) -> &[Option<C>];
    /// The slots, mutably.
    fn as_mut_slice(&mut self) -> &mut [Option<C>];
    /// Grows the table to `n` empty slots at its end; `false`, leaving it as it was, when
    /// memory is short.
    fn grow_to(&mut self, n: usize) -> bool;
}

/// Where chunks and slot tables come from, and where chunks go back to.
pub trait ChunkAlloc {
    /// A chunk.
    type Chunk: ChunkMem;
    /// A slot table.
    type Slots: Slots<Extent<Self::Chunk>>;
    /// A counted reference to a frame, for views ([`NoFrame`] where there are none).
    type Held;
    /// A new chunk, or `None` when memory or the byte budget is exhausted.
    fn alloc(&mut self) -> Option<Self::Chunk>;
    /// A reference to `frame`, kept while the views made from it live; `None` (the
    /// default) when frames are not held here, or it cannot be taken: the bytes are copied.
    fn hold(&mut self, _frame: FrameRef<'_>) -> Option<Self::Held> {
        None
    }
    /// A chunk whose bytes are the held frame's `[frame_off, frame_off + len)` (counted from
    /// its network header), keeping `held`, charged `cost` bytes; `None`, dropping `held`,
    /// when memory or the byte budget is short (the bytes are then copied, if they can be).
    fn view(
        &mut self,
        _held: Self::Held,
        _frame_off: u32,
        _len: u32,
        _cost: u64,
    ) -> Option<Self::Chunk> {
        None
    }
    /// Returns a chunk.
    fn free(&mut self, chunk: Self::Chunk);
    /// `chunk` leaves this allocator's accounting without being freed, as
    /// [`ChunkAlloc::free`] would account for it: its memory now belongs to whoever holds
    /// it, and goes when that drops it ([`SeqBuf::hand_over`]). Nothing by default.
    fn hand_over(&mut self, _chunk: &Self::Chunk) {}
    /// Accounts for `bytes` of other memory the mirror is about to allocate (slot tables,
    /// table entries); `false` when the byte budget cannot take them.
    fn charge(&mut self, _bytes: u64) -> bool {
        true
    }
    /// Gives back what [`ChunkAlloc::charge`] took.
    fn uncharge(&mut self, _bytes: u64) {}
    /// An allocation was refused in front of this allocator (a connection's share): counted
    /// with the budget's own refusals.
    fn refuse(&mut self) {}
    /// Bytes that can still be charged before a refusal (unlimited by default).
    fn room(&self) -> u64 {
        u64::MAX
    }
}

/// Bytes one slot of a slot table takes.
pub const fn slot_bytes<A: ChunkAlloc>() -> u64 {
    core::mem::size_of::<Option<Extent<A::Chunk>>>() as u64
}

/// One connection's share of a [`Budget`]: everything allocated through it is counted in
/// `used` as well, and refused past `max`.
pub struct Share<'a, A> {
    /// The allocator shared by every connection.
    pub inner: &'a mut A,
    /// What this connection holds.
    pub used: &'a mut u64,
    /// Its share.
    pub max: u64,
}

impl<A: ChunkAlloc> ChunkAlloc for Share<'_, A> {
    type Chunk = A::Chunk;
    type Slots = A::Slots;
    type Held = A::Held;

    fn alloc(&mut self) -> Option<A::Chunk> {
        if *self.used + CHUNK as u64 > self.max {
            self.inner.refuse();
            return None;
        }
        let c = self.inner.alloc()?;
        *self.used += CHUNK as u64;
        Some(c)
    }

    fn hold(&mut self, frame: FrameRef<'_>) -> Option<A::Held> {
        self.inner.hold(frame)
    }

    fn view(&mut self, held: A::Held, frame_off: u32, len: u32, cost: u64) -> Option<A::Chunk> {
        if *self.used + cost > self.max {
            self.inner.refuse();
            return None;
        }
        let c = self.inner.view(held, frame_off, len, cost)?;
        *self.used += cost;
        Some(c)
    }

    fn free(&mut self, chunk: A::Chunk) {
        *self.used -= chunk.cost();
        self.inner.free(chunk);
    }

    fn hand_over(&mut self, chunk: &A::Chunk) {
        *self.used -= chunk.cost();
        self.inner.hand_over(chunk);
    }

    fn charge(&mut self, bytes: u64) -> bool {
        if *self.used + bytes > self.max {
            self.inner.refuse();
            return false;
        }
        if !self.inner.charge(bytes) {
            return false;
        }
        *self.used += bytes;
        true
    }

    fn uncharge(&mut self, bytes: u64) {
        *self.used -= bytes;
        self.inner.uncharge(bytes);
    }

    fn refuse(&mut self) {
        self.inner.refuse();
    }

    fn room(&self) -> u64 {
        self.max.saturating_sub(*self.used).min(self.inner.room())
    }
}

/// Copies bytes out of a frame.
pub trait Payload {
    /// Copies `out.len()` bytes starting `offset` bytes after the start of the network
    /// header into `out`, which may be uninitialised memory; `true` when every byte of `out`
    /// was written.
    fn copy(&self, offset: u32, out: &mut [MaybeUninit<u8>]) -> bool;
    /// The frame the bytes are read from, when chunks may reference it instead of copying
    /// ([`ChunkAlloc::hold`]); `None` (the default) when they may not.
    fn frame(&self) -> Option<FrameRef<'_>> {
        None
    }
    /// Says, before any chunk holds the frame, that it may go on to this host's own stack
    /// once processed ([`crate::snoop::Outcome::ToFailed`]): a hold must then leave the
    /// frame to the stack (the module clones it rather than keeping it). The default does
    /// nothing.
    fn goes_on(&self) {}
}

impl Payload for [u8] {
    fn copy(&self, offset: u32, out: &mut [MaybeUninit<u8>]) -> bool {
        let start = offset as usize;
        match self.get(start..start + out.len()) {
            Some(src) => {
                // A byte-wise copy the compiler turns into `memcpy`.
                for (o, s) in out.iter_mut().zip(src) {
                    o.write(*s);
                }
                true
            }
            None => false,
        }
    }
}

/// Why bytes could not be retained.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WriteError {
    /// Past the capacity of the direction's buffer.
    Capacity,
    /// The allocator refused a chunk (memory or the namespace's byte budget).
    NoMemory,
    /// The present bytes are split into more than [`MAX_RANGES`] pieces.
    Fragmented,
    /// The payload could not be copied out of the frame.
    Copy,
}

/// Retained bytes of one direction.
///
/// # Invariants
///
/// The `count` extents, extent `i` in slot `(head + i) % slots.len()` (every other slot
/// empty), are non-empty, ordered, disjoint, start at or after `base` and end within
/// [`CAPACITY`] bytes of it; a copy extent holds at most [`CHUNK`] bytes. The bytes they
/// hold are exactly those of `ranges[..nranges]`: sorted, disjoint, non-adjacent
/// `[start, end)` offsets from `base`.
pub struct SeqBuf<A: ChunkAlloc> {
    base: Seq,
    head: u32,
    count: u16,
    nranges: u8,
    slots: A::Slots,
    ranges: [(u32, u32); MAX_RANGES],
}

impl<A: ChunkAlloc> SeqBuf<A> {
    /// An empty buffer whose first byte will have sequence number `base`.
    pub fn new(base: Seq) -> Self {
        Self {
            base,
            head: 0,
            count: 0,
            slots: A::Slots::default(),
            ranges: [(0, 0); MAX_RANGES],
            nranges: 0,
        }
    }

    /// An empty buffer at `base` with the slot table `slots`, whose slots must all be empty
    /// (made ahead, where the table's own growth would allocate atomically).
    pub fn with_slots(base: Seq, slots: A::Slots) -> Self {
        Self {
            slots,
            ..Self::new(base)
        }
    }

    /// Sequence number of the first byte the buffer can hold.
    pub fn base(&self) -> Seq {
        self.base
    }

    /// How many intervals are present (a `u8` field: at most [`MAX_RANGES`]).
    fn nr(&self) -> usize {
        usize::from(self.nranges)
    }

    /// How many extents there are (a `u16` field: at most [`MAX_EXTENTS`]).
    fn count(&self) -> usize {
        usize::from(self.count)
    }

    /// The slot `j` places after the head. The head is a slot and `j` at most the table's
    /// length, so one subtraction wraps it: a division on every extent looked up was three
    /// per segment stored. Any other `j` is reduced by `checked_rem` (no division-by-zero
    /// panic path in the module, though the table is never empty when it is asked).
    fn wrap(&self, j: usize) -> usize {
        let (x, len) = (self.head as usize + j, self.slots.as_slice().len());
        if x < len {
            x
        } else if x - len < len {
            x - len
        } else {
            x.checked_rem(len).unwrap_or(0)
        }
    }

    /// The slot of extent `i`, if there is one.
    fn slot(&self, i: usize) -> Option<usize> {
        (i < self.count()).then(|| self.wrap(i))
    }

    /// Extent `i`.
    fn ext(&self, i: usize) -> Option<&Extent<A::Chunk>> {
        self.slot(i)
            .and_then(|s| self.slots.as_slice().get(s))
            .and_then(Option::as_ref)
    }

    /// Extent `i`, mutably.
    fn ext_mut(&mut self, i: usize) -> Option<&mut Extent<A::Chunk>> {
        let s = self.slot(i)?;
        self.slots
            .as_mut_slice()
            .get_mut(s)
            .and_then(Option::as_mut)
    }

    /// Offsets from the base of extent `i`'s first byte and of the byte after its last.
    fn span(&self, i: usize) -> Option<(u32, u32)> {
        self.ext(i).map(|e| {
            let a = seq::dist(self.base, e.seq);
            (a, a + e.len)
        })
    }

    /// How many extents start before `off` (an offset from the base): the index an extent
    /// starting at `off` goes to.
    fn before_count(&self, off: u32) -> usize {
        let (mut lo, mut hi) = (0, self.count());
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            match self.span(mid) {
                Some((a, _)) if a < off => lo = mid + 1,
                _ => hi = mid,
            }
        }
        lo
    }

    /// [`Self::before_count`], looking at the last extent first: a stream written in order
    /// appends.
    fn index_for(&self, off: u32) -> usize {
        match self.count().checked_sub(1).and_then(|l| self.span(l)) {
            Some((a, _)) if a < off => self.count(),
            _ => self.before_count(off),
        }
    }

    /// Puts `e` at index `i`, growing the slot table (its memory is charged to `alloc`);
    /// when it cannot, `e`'s memory goes back to `alloc`.
    fn insert(
        &mut self,
        alloc: &mut impl Alloc<A>,
        i: usize,
        e: Extent<A::Chunk>,
    ) -> Result<(), WriteError> {
        if let Err(err) = self.make_room(alloc) {
            alloc.free(e.mem);
            return Err(err);
        }
        // Shift extents i.. one slot on (there is an empty slot after the last).
        let mut j = self.count();
        while j > i {
            let (from, to) = (self.wrap(j - 1), self.wrap(j));
            let moved = self.slots.as_mut_slice()[from].take();
            self.slots.as_mut_slice()[to] = moved;
            j -= 1;
        }
        let at = self.wrap(i);
        self.slots.as_mut_slice()[at] = Some(e);
        self.count += 1;
        Ok(())
    }

    /// Makes sure one more extent fits in the slot table.
    fn make_room(&mut self, alloc: &mut impl Alloc<A>) -> Result<(), WriteError> {
        let len = self.slots.as_slice().len();
        if self.count() < len {
            return Ok(());
        }
        if len >= MAX_EXTENTS {
            return Err(WriteError::Capacity);
        }
        let want = (len * 2).clamp(16, MAX_EXTENTS);
        let more = (want - len) as u64 * slot_bytes::<A>();
        if !alloc.charge(more) {
            return Err(WriteError::NoMemory);
        }
        let head = self.head as usize;
        self.slots.as_mut_slice().rotate_left(head);
        self.head = 0;
        // A table that cannot grow stays as it was.
        if !self.slots.grow_to(want) {
            alloc.uncharge(more);
            return Err(WriteError::NoMemory);
        }
        Ok(())
    }

    /// Bytes the slot table takes.
    pub fn slot_table_bytes(&self) -> u64 {
        self.slots.as_slice().len() as u64 * slot_bytes::<A>()
    }

    /// Bytes present.
    pub fn held(&self) -> u32 {
        self.ranges[..self.nr()].iter().map(|r| r.1 - r.0).sum()
    }

    /// Bytes the extents are charged for ([`ChunkMem::cost`]: a chunk's size for a copy, its
    /// share of the frame for a view).
    pub fn chunk_bytes(&self) -> u64 {
        self.slots
            .as_slice()
            .iter()
            .flatten()
            .map(|e| e.mem.cost())
            .sum()
    }

    /// Extents (copies and views).
    pub fn chunks(&self) -> usize {
        self.count()
    }

    /// Extents that are views of frames.
    pub fn views(&self) -> usize {
        self.slots
            .as_slice()
            .iter()
            .flatten()
            .filter(|e| e.mem.is_view())
            .count()
    }

    /// Present intervals as sequence numbers.
    pub fn ranges(&self) -> impl Iterator<Item = (Seq, Seq)> + '_ {
        self.ranges[..self.nr()]
            .iter()
            .map(move |r| (self.base.wrapping_add(r.0), self.base.wrapping_add(r.1)))
    }

    /// Whether every byte of `[from, to)` is present.
    pub fn contains(&self, from: Seq, to: Seq) -> bool {
        if !seq::before(from, to) {
            return true;
        }
        if seq::before(from, self.base) {
            return false;
        }
        let (a, b) = (seq::dist(self.base, from), seq::dist(self.base, to));
        self.ranges[..self.nr()]
            .iter()
            .any(|r| r.0 <= a && b <= r.1)
    }

    /// The first missing sequence number at or after `from` and before `to`, if any.
    pub fn first_hole(&self, from: Seq, to: Seq) -> Option<Seq> {
        if !seq::before(from, to) {
            return None;
        }
        if seq::before(from, self.base) {
            return Some(from);
        }
        let a = seq::dist(self.base, from);
        let b = seq::dist(self.base, to);
        let mut at = a;
        for r in &self.ranges[..self.nr()] {
            if r.0 <= at && at < r.1 {
                at = r.1;
            }
        }
        (at < b).then(|| self.base.wrapping_add(at))
    }

    /// Whether `[a, ...)` starts within or right at the end of the last present interval
    /// (or nothing is present): the in-order case, where adding it merges with nothing else.
    fn appends(&self, a: u32) -> bool {
        match self.nr() {
            0 => true,
            n => {
                let last = self.ranges[n - 1];
                last.0 <= a && a <= last.1
            }
        }
    }

    /// Adds `[a, b)` in order ([`Self::appends`]): the last interval grows (or becomes the
    /// first).
    fn grow_last(&mut self, a: u32, b: u32) {
        match self.nr() {
            0 => {
                self.ranges[0] = (a, b);
                self.nranges = 1;
            }
            n => self.ranges[n - 1].1 = self.ranges[n - 1].1.max(b),
        }
    }

    fn add_range(&mut self, a: u32, b: u32) -> Result<(), WriteError> {
        if self.appends(a) {
            self.grow_last(a, b);
            return Ok(());
        }
        let (out, n) = self.merged(a, b)?;
        // Element-wise: a generic copy_from_slice instantiation here would bring in a panic
        // helper that objtool (7.3) does not know as noreturn with rustc 1.95.
        for (dst, src) in self.ranges.iter_mut().zip(&out[..n]) {
            *dst = *src;
        }
        self.nranges = n as u8;
        Ok(())
    }

    /// The present intervals with `[a, b)` added, or [`WriteError::Fragmented`].
    fn merged(&self, a: u32, b: u32) -> Result<([(u32, u32); MAX_RANGES + 1], usize), WriteError> {
        let (mut a, mut b) = (a, b);
        let mut out = [(0u32, 0u32); MAX_RANGES + 1];
        let mut n = 0;
        let mut placed = false;
        for &r in &self.ranges[..self.nr()] {
            if r.1 < a {
                out[n] = r;
                n += 1;
            } else if b < r.0 {
                if !placed {
                    out[n] = (a, b);
                    n += 1;
                    placed = true;
                }
                out[n] = r;
                n += 1;
            } else {
                a = a.min(r.0);
                b = b.max(r.1);
            }
        }
        if !placed {
            out[n] = (a, b);
            n += 1;
        }
        if n > MAX_RANGES {
            return Err(WriteError::Fragmented);
        }
        Ok((out, n))
    }

    /// Stores `len` payload bytes with first sequence number `seq`, read from `src` starting
    /// at `src_off`. Bytes before the base (already released) are skipped, and so are bytes
    /// already present: a retransmission is not copied again, and the first copy of a byte
    /// is the one kept, as a receiving TCP keeps the first copy of in-order data (a later
    /// segment that disagrees is a duplicate to it). Bytes past the capacity are not stored
    /// and reported as [`WriteError::Capacity`] after the rest is.
    pub fn write(
        &mut self,
        alloc: &mut impl Alloc<A>,
        seq: Seq,
        len: u32,
        src: &(impl Payload + ?Sized),
        src_off: u32,
    ) -> Result<(), WriteError> {
        let end = seq.wrapping_add(len);
        let (mut from, mut skip) = (seq, 0u32);
        if seq::before(seq, self.base) {
            if !seq::after(end, self.base) {
                return Ok(());
            }
            skip = seq::dist(seq, self.base);
            from = self.base;
        }
        let a = seq::dist(self.base, from);
        let want_end = seq::dist(self.base, end);
        let b = want_end.min(CAPACITY);
        if want_end <= CAPACITY && self.appended(a, b, src, src_off + skip) {
            return Ok(());
        }
        if want_end <= CAPACITY {
            if let Some(r) = self.in_order(alloc, a, b, src, src_off + skip) {
                return r;
            }
        }
        if a >= b {
            return if want_end > CAPACITY {
                Err(WriteError::Capacity)
            } else {
                Ok(())
            };
        }
        // Too fragmented: refuse before allocating memory no interval would account for (in
        // order, nothing can fragment).
        if !self.appends(a) {
            self.merged(a, b)?;
        }
        // The missing pieces of [a, b), in order: each is stored and recorded before the
        // next is looked for (recording one can only merge intervals).
        let src_at = |off: u32| src_off + skip + (off - a);
        let mut at = a;
        while let Some((x, y)) = self.next_gap(at, b) {
            let (stored, failure) = self.store_span(alloc, x, y, src, src_at(x));
            // Keep whatever was stored before a failure.
            if stored > x {
                self.add_range(x, stored)?;
            }
            if let Some(e) = failure {
                return Err(e);
            }
            at = y;
        }
        if want_end > CAPACITY {
            Err(WriteError::Capacity)
        } else {
            Ok(())
        }
    }

    /// The in-order case of [`Self::write`], when it takes no new memory: `[a, b)` (offsets
    /// from the base, `a < b`) begins right where the last present interval ends, too short
    /// to be a view ([`VIEW_MIN_FULL`]), and the last extent is a copy that ends there too
    /// with room for all of it. Its bytes are copied at the copy's end, and the interval
    /// grows: what [`Self::write`] would do, without its search for gaps and extents (a
    /// stream of small segments in order, every time). `false` in any other case, having
    /// changed nothing the buffer reads: a copy that fails part way leaves its bytes past
    /// the extent's length, unread, and the general path then tries it again and reports it.
    fn appended(&mut self, a: u32, b: u32, src: &(impl Payload + ?Sized), src_a: u32) -> bool {
        let n = self.nr();
        let Some(last) = n.checked_sub(1).map(|l| self.ranges[l]) else {
            return false;
        };
        if a >= b || last.1 != a || b - a >= VIEW_MIN_FULL {
            return false;
        }
        let here = self.base.wrapping_add(a);
        let Some(e) = self
            .count()
            .checked_sub(1)
            .and_then(|l| self.ext_mut(l))
            .filter(|e| !e.mem.is_view() && here == e.seq.wrapping_add(e.len))
        else {
            return false;
        };
        if e.len as usize + (b - a) as usize > CHUNK
            || !e.mem.store(e.len as usize, (b - a) as usize, src, src_a)
        {
            // A failed copy is retried by the general path, which reports it.
            return false;
        }
        e.len += b - a;
        self.ranges[n - 1].1 = b;
        true
    }

    /// The in-order case of [`Self::write`] that [`Self::appended`] leaves (a segment worth
    /// a view, or one that needs a new chunk): `[a, b)` (offsets from the base, within the
    /// capacity) begins where the last present interval ends, or nothing is present, and
    /// no extent ends past `a`. Then `[a, b)` is the one gap, its extents go after the last
    /// one, and adding it merges with nothing: it is stored as the general path stores a
    /// gap ([`Self::store_span`]: a view when it can, else copies) and the last interval
    /// grows, without the general path's search for gaps and its checks of the intervals
    /// (every segment of a bulk transfer in order). `None` when it does not apply, having
    /// changed nothing; else what [`Self::write`] returns.
    fn in_order(
        &mut self,
        alloc: &mut impl Alloc<A>,
        a: u32,
        b: u32,
        src: &(impl Payload + ?Sized),
        src_a: u32,
    ) -> Option<Result<(), WriteError>> {
        let n = self.nr();
        if a >= b || n.checked_sub(1).is_some_and(|l| self.ranges[l].1 != a) {
            return None;
        }
        let last = self.count().checked_sub(1).and_then(|l| self.span(l));
        if last.is_some_and(|(_, end)| end > a) {
            return None;
        }
        let (stored, failure) = self.store_span(alloc, a, b, src, src_a);
        // Keep whatever was stored before a failure, as the general path does.
        if stored > a {
            self.grow_last(a, stored);
        }
        Some(failure.map_or(Ok(()), Err))
    }

    /// The first missing piece `[x, y)` of `[at, b)` (offsets from the base), if any.
    fn next_gap(&self, at: u32, b: u32) -> Option<(u32, u32)> {
        let mut x = at;
        for r in &self.ranges[..self.nr()] {
            if r.1 <= x {
                continue;
            }
            if r.0 <= x {
                x = r.1;
                continue;
            }
            // The first interval after x: the gap ends where it starts.
            return (x < b).then(|| (x, r.0.min(b)));
        }
        (x < b).then_some((x, b))
    }

    /// Stores the missing piece `[x, y)` (offsets from the base) from `src`, whose byte
    /// `src_x` is the one at `x`: as one view of the frame when it is large enough and the
    /// frame can be held, else copied into copy extents. How far it got, and why it
    /// stopped short.
    fn store_span(
        &mut self,
        alloc: &mut impl Alloc<A>,
        x: u32,
        y: u32,
        src: &(impl Payload + ?Sized),
        src_x: u32,
    ) -> (u32, Option<WriteError>) {
        let n = y - x;
        if n >= VIEW_MIN_FULL {
            let view = src
                .frame()
                .filter(|f| f.worth_viewing(src_x, n))
                .and_then(|f| Some((f, alloc.hold(f)?)))
                .and_then(|(f, h)| alloc.view(h, src_x, n, f.share(n)));
            if let Some(mem) = view {
                let e = Extent {
                    seq: self.base.wrapping_add(x),
                    len: n,
                    mem,
                };
                let i = self.index_for(x);
                return match self.insert(alloc, i, e) {
                    Ok(()) => (y, None),
                    Err(err) => (x, Some(err)),
                };
            }
        }
        let mut off = x;
        while off < y {
            let i = self.index_for(off);
            let here = self.base.wrapping_add(off);
            // The copy extent that ends right here, if it has room: the bytes continue it.
            if let Some(e) = i
                .checked_sub(1)
                .and_then(|p| self.ext_mut(p))
                .filter(|e| !e.mem.is_view() && (e.len as usize) < CHUNK)
            {
                if here == e.seq.wrapping_add(e.len) {
                    let k = (CHUNK as u32 - e.len).min(y - off);
                    if !e
                        .mem
                        .store(e.len as usize, k as usize, src, src_x + (off - x))
                    {
                        return (off, Some(WriteError::Copy));
                    }
                    e.len += k;
                    off += k;
                    continue;
                }
            }
            let Some(mut mem) = alloc.alloc() else {
                return (off, Some(WriteError::NoMemory));
            };
            let k = (CHUNK as u32).min(y - off);
            if !mem.store(0, k as usize, src, src_x + (off - x)) {
                alloc.free(mem);
                return (off, Some(WriteError::Copy));
            }
            let e = Extent {
                seq: here,
                len: k,
                mem,
            };
            if let Err(err) = self.insert(alloc, i, e) {
                return (off, Some(err));
            }
            off += k;
        }
        (off, None)
    }

    /// Copies the bytes at `[seq, seq + out.len())` out; `false` if any is missing.
    pub fn read(&self, seq: Seq, out: &mut [u8]) -> bool {
        // Nothing to read (anywhere, even below the base) is a read of everything.
        if out.is_empty() {
            return true;
        }
        if !self.contains(seq, seq.wrapping_add(out.len() as u32)) {
            return false;
        }
        // Within the present intervals, so within CAPACITY of the base: no overflow below.
        let mut off = seq::dist(self.base, seq);
        // The last extent starting at or before `off`.
        let Some(mut i) = self.before_count(off + 1).checked_sub(1) else {
            return false;
        };
        let mut done = 0;
        while done < out.len() {
            let Some((e, (a, b))) = self.ext(i).zip(self.span(i)) else {
                return false;
            };
            if off < a || off >= b {
                return false;
            }
            let n = ((b - off) as usize).min(out.len() - done);
            if !e.mem.load((off - a) as usize, &mut out[done..done + n]) {
                return false;
            }
            done += n;
            off += n as u32;
            i += 1;
        }
        true
    }

    /// Releases every extent wholly below `to` and moves the base up to `to`, or to the
    /// first byte of the extent `to` falls in: bytes below `to` in a kept extent stay.
    pub fn release_below(&mut self, alloc: &mut impl Alloc<A>, to: Seq) {
        if !seq::after(to, self.base) {
            return;
        }
        let d = seq::dist(self.base, to);
        while let Some((_, b)) = self.span(0) {
            if b > d {
                break;
            }
            let Some(s) = self.slot(0) else { break };
            if let Some(e) = self.slots.as_mut_slice()[s].take() {
                alloc.free(e.mem);
            }
            self.head = self.wrap(1) as u32;
            self.count -= 1;
        }
        if self.count == 0 {
            self.head = 0;
        }
        let shift = self.span(0).map_or(d, |(a, _)| a.min(d));
        self.base = self.base.wrapping_add(shift);
        // Shift the intervals down, dropping what fell below the base.
        let mut n = 0;
        for i in 0..self.nr() {
            let (a, b) = self.ranges[i];
            if b > shift {
                self.ranges[n] = (a.saturating_sub(shift), b - shift);
                n += 1;
            }
        }
        self.nranges = n as u8;
    }

    /// Moves the buffer out, leaving an empty one at the same base: its extents and slot
    /// table leave `alloc`'s accounting as if freed ([`ChunkAlloc::hand_over`],
    /// [`ChunkAlloc::uncharge`]), and the returned buffer owns their memory, which goes when
    /// it is dropped (or cleared with any allocator of the same chunks). A takeover keeps a
    /// connection's sent bytes this way, without copying them out of the mirror.
    pub fn hand_over(&mut self, alloc: &mut impl Alloc<A>) -> Self {
        for e in self.slots.as_slice().iter().flatten() {
            alloc.hand_over(&e.mem);
        }
        alloc.uncharge(self.slot_table_bytes());
        let base = self.base;
        core::mem::replace(self, Self::new(base))
    }

    /// Returns every extent and the slot table to the allocator.
    pub fn clear(&mut self, alloc: &mut impl Alloc<A>) {
        for e in self.slots.as_mut_slice().iter_mut() {
            if let Some(e) = e.take() {
                alloc.free(e.mem);
            }
        }
        alloc.uncharge(self.slot_table_bytes());
        self.slots = A::Slots::default();
        self.head = 0;
        self.count = 0;
        self.nranges = 0;
    }
}

/// An allocator of the same chunks and slot tables as `A`: `A` itself, or a [`Share`] of it.
pub trait Alloc<A: ChunkAlloc>:
    ChunkAlloc<Chunk = A::Chunk, Slots = A::Slots, Held = A::Held>
{
}

impl<A: ChunkAlloc, B: ChunkAlloc<Chunk = A::Chunk, Slots = A::Slots, Held = A::Held>> Alloc<A>
    for B
{
}

/// A byte budget in front of an allocator: the per-namespace cap on the mirror's memory
/// (chunks, slot tables and table entries).
pub struct Budget<A> {
    /// The allocator that provides chunks.
    pub inner: A,
    /// Bytes handed out and not returned.
    pub used: u64,
    /// Cap on `used`.
    pub max: u64,
    /// Allocations refused because of the cap, or of a connection's [`Share`].
    pub refused: u64,
    /// Chunks the inner allocator failed to provide.
    pub failed: u64,
}

impl<A> Budget<A> {
    /// A budget of `max` bytes over `inner`.
    pub fn new(inner: A, max: u64) -> Self {
        Budget {
            inner,
            used: 0,
            max,
            refused: 0,
            failed: 0,
        }
    }
}

impl<A: ChunkAlloc> ChunkAlloc for Budget<A> {
    type Chunk = A::Chunk;
    type Slots = A::Slots;
    type Held = A::Held;

    fn hold(&mut self, frame: FrameRef<'_>) -> Option<A::Held> {
        self.inner.hold(frame)
    }

    fn view(&mut self, held: A::Held, frame_off: u32, len: u32, cost: u64) -> Option<A::Chunk> {
        if self.used + cost > self.max {
            self.refused += 1;
            return None;
        }
        let c = self.inner.view(held, frame_off, len, cost);
        match c {
            Some(_) => self.used += cost,
            None => self.failed += 1,
        }
        c
    }

    fn alloc(&mut self) -> Option<A::Chunk> {
        if self.used + CHUNK as u64 > self.max {
            self.refused += 1;
            return None;
        }
        match self.inner.alloc() {
            Some(c) => {
                self.used += CHUNK as u64;
                Some(c)
            }
            None => {
                self.failed += 1;
                None
            }
        }
    }

    fn free(&mut self, chunk: A::Chunk) {
        self.used -= chunk.cost();
        self.inner.free(chunk);
    }

    fn hand_over(&mut self, chunk: &A::Chunk) {
        self.used -= chunk.cost();
        self.inner.hand_over(chunk);
    }

    fn charge(&mut self, bytes: u64) -> bool {
        if self.used + bytes > self.max {
            self.refused += 1;
            return false;
        }
        self.used += bytes;
        true
    }

    fn uncharge(&mut self, bytes: u64) {
        self.used -= bytes;
    }

    fn refuse(&mut self) {
        self.refused += 1;
    }

    fn room(&self) -> u64 {
        self.max.saturating_sub(self.used)
    }
}

/// The byte budget of a table whose shards allocate concurrently (the kernel's: frames of
/// different connections are tracked on different CPUs at once): one cap, charged with
/// atomic operations, no lock. Shards allocate through [`Pooled`].
#[derive(Default)]
pub struct Pool {
    used: AtomicU64,
    max: AtomicU64,
    refused: AtomicU64,
    failed: AtomicU64,
    views: AtomicU64,
}

impl Pool {
    /// A pool of `max` bytes.
    pub const fn new(max: u64) -> Self {
        Pool {
            used: AtomicU64::new(0),
            max: AtomicU64::new(max),
            refused: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            views: AtomicU64::new(0),
        }
    }

    /// Changes the cap (bytes already charged stay charged).
    pub fn set_max(&self, max: u64) {
        self.max.store(max, Ordering::Relaxed);
    }

    /// Charges `bytes`, unless the cap would be passed (then counts a refusal). Exact under
    /// concurrency: `used` never exceeds the cap because of a charge.
    pub fn take(&self, bytes: u64) -> bool {
        let max = self.max.load(Ordering::Relaxed);
        let ok = self
            .used
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |u| {
                u.checked_add(bytes).filter(|&n| n <= max)
            })
            .is_ok();
        if !ok {
            self.refuse();
        }
        ok
    }

    /// Returns `bytes` charged by [`Self::take`].
    pub fn give(&self, bytes: u64) {
        self.used.fetch_sub(bytes, Ordering::Relaxed);
    }

    /// Counts a refusal made elsewhere (a connection's [`Share`]).
    pub fn refuse(&self) {
        self.refused.fetch_add(1, Ordering::Relaxed);
    }

    /// Bytes charged.
    pub fn used(&self) -> u64 {
        self.used.load(Ordering::Relaxed)
    }

    /// The cap.
    pub fn max(&self) -> u64 {
        self.max.load(Ordering::Relaxed)
    }

    /// Charges refused (cap or share).
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }

    /// Chunks the allocator failed to provide.
    pub fn failed(&self) -> u64 {
        self.failed.load(Ordering::Relaxed)
    }

    /// Chunks that are views of frames, now.
    pub fn views(&self) -> u64 {
        self.views.load(Ordering::Relaxed)
    }
}

/// An allocator behind a shared [`Pool`] (`P` points to it: a reference, or a counted
/// one); what [`Budget`] is to a single table, for one shard of a sharded one.
pub struct Pooled<A, P> {
    /// The allocator that provides chunks.
    pub inner: A,
    /// The pool charged.
    pub pool: P,
}

impl<A: ChunkAlloc, P: Deref<Target = Pool>> ChunkAlloc for Pooled<A, P> {
    type Chunk = A::Chunk;
    type Slots = A::Slots;
    type Held = A::Held;

    fn hold(&mut self, frame: FrameRef<'_>) -> Option<A::Held> {
        self.inner.hold(frame)
    }

    fn view(&mut self, held: A::Held, frame_off: u32, len: u32, cost: u64) -> Option<A::Chunk> {
        if !self.pool.take(cost) {
            return None;
        }
        let c = self.inner.view(held, frame_off, len, cost);
        match c {
            Some(_) => self.pool.views.fetch_add(1, Ordering::Relaxed),
            None => {
                self.pool.give(cost);
                self.pool.failed.fetch_add(1, Ordering::Relaxed)
            }
        };
        c
    }

    fn alloc(&mut self) -> Option<A::Chunk> {
        if !self.pool.take(CHUNK as u64) {
            return None;
        }
        let c = self.inner.alloc();
        if c.is_none() {
            self.pool.give(CHUNK as u64);
            self.pool.failed.fetch_add(1, Ordering::Relaxed);
        }
        c
    }

    fn free(&mut self, chunk: A::Chunk) {
        if chunk.is_view() {
            self.pool.views.fetch_sub(1, Ordering::Relaxed);
        }
        self.pool.give(chunk.cost());
        self.inner.free(chunk);
    }

    fn hand_over(&mut self, chunk: &A::Chunk) {
        if chunk.is_view() {
            self.pool.views.fetch_sub(1, Ordering::Relaxed);
        }
        self.pool.give(chunk.cost());
        self.inner.hand_over(chunk);
    }

    fn charge(&mut self, bytes: u64) -> bool {
        self.pool.take(bytes)
    }

    fn uncharge(&mut self, bytes: u64) {
        self.pool.give(bytes);
    }

    fn refuse(&mut self) {
        self.pool.refuse();
    }

    fn room(&self) -> u64 {
        self.pool.max().saturating_sub(self.pool.used())
    }
}
