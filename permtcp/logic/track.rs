// SPDX-License-Identifier: GPL-2.0

//! The snooping state machine of one connection, from the permanency peer's point of view.
//!
//! The peer sees both directions of the owner's connection on the shared link and never sends.
//! It simulates the three-way handshake (a SYN from either side; a duplicate SYN replaces the
//! stored one; simultaneous open decided by which SYN came first; ESTABLISHED only after the
//! opener's final ACK), records the options both SYNs carried, tracks sequence numbers,
//! acknowledgements, windows and timestamps in both directions, keeps one window of data each
//! way (and at least one window of sent data whether acknowledged or not), and simulates FIN
//! and RST. It keeps no timers and does no congestion work: the caller passes the time in, and
//! the only deadline is the end of TIME_WAIT. It estimates the owner's round-trip time to the
//! client (`rtt.rs`), for the rebuilt socket's retransmission timeout.
//!
//! A segment changes the mirror only when the owner's stack would accept it: a segment to
//! the owner passes the checks of the owner's `tcp_validate_incoming()` and `tcp_ack()` (PAWS,
//! the receive window, RFC 5961's exact reset and acknowledgement limits); a segment from
//! the owner must be one the owner could have sent (within the client's window, acknowledging
//! nothing the client never sent), as `nf_conntrack_proto_tcp.c`'s `tcp_in_window()` checks.
//! Anything else is counted as invalid and ignored, so a forger knowing only the 4-tuple
//! cannot move the mirror away from the owner's kernel.
//!
//! The two directions reach the peer through different ports (of a bridge), so one can
//! overtake the other; each end's own segments still arrive in order. A segment may begin up
//! to one window past the edge the receiver was seen to allow (the update may come later),
//! and an acknowledgement may run ahead of the bytes seen, up to one window past the edge
//! the acknowledging end was seen to allow (the update may have been lost on the snooper's
//! port): it is taken as the bytes show up, and the connection is not ready until then
//! ([`NotReady::AckAhead`]).
//!
//! Deliberate differences from a full TCP are listed in Documentation/snooping.rst.

use crate::logic::packet::{flags, Options, Segment};
use crate::logic::rtt::Rtt;
use crate::logic::seq::{self, Seq};
use crate::logic::seqbuf::{
    Alloc, ChunkAlloc, Payload, SeqBuf, Share, WriteError, CAPACITY, CHUNK,
};
use crate::logic::snoop::FlowKey;

/// TIME_WAIT as Linux holds it (`TCP_TIMEWAIT_LEN`), in milliseconds.
pub const TIME_WAIT_MS: u64 = 60_000;
/// How much longer than [`TIME_WAIT_MS`] a mirrored connection stays in TIME-WAIT: a peer cannot
/// know exactly when the owner's TIME-WAIT began (Documentation/design.rst, "Half-closed
/// connections and TIME-WAIT").
pub const TIME_WAIT_MARGIN_MS: u64 = 5_000;

/// How far from what was seen, either way, a segment of a connection not seen from its SYN
/// may lie (its window scale, hence its real window, is unknown): 64 KiB.
pub const UNSYNCED_WINDOW: u32 = 65536;

/// Which endpoint sent a segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    /// The owner of the binding (the server being backed up).
    Owner = 0,
    /// The remote client.
    Client = 1,
}

impl Side {
    /// The other endpoint.
    pub fn other(self) -> Side {
        match self {
            Side::Owner => Side::Client,
            Side::Client => Side::Owner,
        }
    }

    fn idx(self) -> usize {
        self as usize
    }
}

/// Connection state as the snooper simulates it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    /// A SYN was seen from the opener.
    SynSent,
    /// Both endpoints sent a SYN before either SYN-ACK (simultaneous open).
    SimultaneousOpen,
    /// The SYN-ACK answering the opener's SYN was seen.
    SynReceived,
    /// The opener's final ACK was seen.
    Established,
    /// One endpoint sent a FIN (the connection is half-closed).
    FinSeen,
    /// Both endpoints sent a FIN; not all of it is acknowledged yet.
    Closing,
    /// Both FINs are acknowledged; held until the deadline.
    TimeWait,
    /// Reset.
    Closed,
    /// Not seen from its SYN: tracked for visibility only.
    Unsynced,
}

/// Why a connection cannot be taken over now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NotReady {
    /// The connection was not seen from its SYN: MSS and window scale are unknown.
    NotFromSyn,
    /// The three-way handshake has not completed.
    Handshake,
    /// Bytes sent by this side and not yet acknowledged are missing.
    Hole(Side),
    /// This side's bytes were acknowledged by the other but never seen.
    AckedUnseen(Side),
    /// More unacknowledged data than the buffer holds, or too fragmented.
    Overflow(Side),
    /// The namespace's byte budget or memory was exhausted.
    NoMemory(Side),
    /// Closed or in TIME_WAIT: nothing to take over.
    Closed,
    /// The other side acknowledged bytes of this side that have not been seen yet (they may
    /// still be on their way: the two directions reach the peer through different ports).
    AckAhead(Side),
}

/// What a SYN offered, kept for the connection's life: its options without the parts that
/// belong to the segment (timestamp values, SACK blocks).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SynOpts {
    /// MSS option, 0 without (an MSS of 0 is no MSS; an `Option` would take 2 bytes more).
    mss: u16,
    /// Window scale shift.
    pub wscale: Option<u8>,
    /// SACK permitted.
    pub sack_perm: bool,
    /// It carried the timestamps option.
    pub ts: bool,
}

impl SynOpts {
    /// The MSS option.
    pub fn mss(&self) -> Option<u16> {
        (self.mss != 0).then_some(self.mss)
    }

    /// Sets [`SynOpts::mss`].
    pub fn set_mss(&mut self, mss: Option<u16>) {
        self.mss = mss.unwrap_or(0);
    }

    /// The SYN options of a segment's options.
    pub fn of(o: &Options) -> Self {
        SynOpts {
            mss: o.mss.unwrap_or(0),
            wscale: o.wscale,
            sack_perm: o.sack_perm,
            ts: o.ts.is_some(),
        }
    }
}

/// One direction: what one endpoint sent, and what it announced.
pub struct Half<A: ChunkAlloc> {
    /// Initial sequence number (from its SYN).
    pub isn: Seq,
    /// What its SYN offered.
    pub syn_opts: SynOpts,
    /// Raw window field of its SYN (never scaled).
    pub syn_window: u16,
    /// One past the highest sequence number it sent (`snd_nxt`, FIN included).
    pub nxt: Seq,
    /// Highest acknowledgement the other endpoint sent for this data (`snd_una`).
    pub una: Seq,
    /// Last window it advertised, in bytes (scaled when window scaling is on).
    pub win: u32,
    /// Largest window it advertised, in bytes.
    pub max_win: u32,
    /// Sequence number its last window update was sent with (`snd_wl1` of the other side).
    pub win_seq: Seq,
    /// The furthest sequence number the other endpoint allowed it to send: the largest
    /// acknowledgement plus window the other endpoint advertised (`rcv_mwnd_seq` of the
    /// receiver, conntrack's `td_maxend`).
    pub right: Seq,
    /// Segments seen from it.
    pub segs: u64,
    /// Payload bytes seen from it, retransmissions included.
    pub bytes: u64,
    /// Retained data it sent.
    pub data: SeqBuf<A>,
    /// One past the last byte of the highest segment it sent with PSH: where its last write
    /// seen complete on the wire ended (Linux pushes the tail of every write; a later byte
    /// without a push after it belongs to a write still going out).
    pub push_end: Seq,
    /// The optional sequence numbers and the flags below (accessors generated by `marks!`
    /// and `flags!`).
    marks: Marks,
}

/// Optional sequence numbers, the last timestamps and the flags of a [`Half`], packed: five
/// `Option<Seq>`, an `Option<(u32, u32)>` and three `bool` take 55 bytes, these 30 (a table
/// entry per connection: issue 13's memory goal). Bits 0-4 say which numbers are present,
/// bits 5-7 are the flags, bit 8 says the timestamps are present.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Marks {
    v: [Seq; 5],
    ts: (u32, u32),
    set: u16,
    /// See [`Half::write_error`] (here, it fills what would be the struct's padding).
    write_error: Option<NotReady>,
}

/// The bit of [`Marks::set`] for [`Marks::ts`].
const TS_BIT: usize = 8;

impl Marks {
    fn get(&self, i: usize) -> Option<Seq> {
        (self.set & (1 << i) != 0).then_some(self.v[i])
    }

    fn put(&mut self, i: usize, v: Option<Seq>) {
        match v {
            Some(s) => {
                self.v[i] = s;
                self.set |= 1 << i;
            }
            None => self.set &= !(1 << i),
        }
    }

    fn flag(&self, i: usize) -> bool {
        self.set & (1 << i) != 0
    }

    fn put_flag(&mut self, i: usize, on: bool) {
        if on {
            self.set |= 1 << i;
        } else {
            self.set &= !(1 << i);
        }
    }
}

/// A getter and a setter for each optional sequence number of [`Half`].
macro_rules! marks {
    ($($(#[$doc:meta])* $i:literal $get:ident $set:ident;)*) => {
        impl<A: ChunkAlloc> Half<A> {
            $(
                $(#[$doc])*
                pub fn $get(&self) -> Option<Seq> {
                    self.marks.get($i)
                }

                #[doc = concat!("Sets [`Half::", stringify!($get), "`].")]
                pub fn $set(&mut self, v: Option<Seq>) {
                    self.marks.put($i, v)
                }
            )*
        }
    };
}

/// A getter and a setter for each flag of [`Half`].
macro_rules! flags {
    ($($(#[$doc:meta])* $i:literal $get:ident $set:ident;)*) => {
        impl<A: ChunkAlloc> Half<A> {
            $(
                $(#[$doc])*
                pub fn $get(&self) -> bool {
                    self.marks.flag($i)
                }

                #[doc = concat!("Sets [`Half::", stringify!($get), "`].")]
                pub fn $set(&mut self, on: bool) {
                    self.marks.put_flag($i, on)
                }
            )*
        }
    };
}

flags! {
    /// Its SYN was seen.
    5 syn_seen set_syn_seen;
    /// Its sequence numbers are known: from its SYN, or for a connection not seen from its
    /// SYN from a segment it sent or an acknowledgement of its data.
    6 anchored set_anchored;
    /// Its last new data reached (within one MSS) the right edge of the window the other
    /// side had advertised: the other side's receive window held it back.
    7 limited set_limited;
}

impl<A: ChunkAlloc> Half<A> {
    /// Why the last write into the buffer failed, reported while bytes are missing.
    pub fn write_error(&self) -> Option<NotReady> {
        self.marks.write_error
    }

    /// Last (TSval, TSecr) it sent.
    pub fn ts(&self) -> Option<(u32, u32)> {
        self.marks.flag(TS_BIT).then_some(self.marks.ts)
    }

    /// Sets [`Half::ts`].
    pub fn set_ts(&mut self, ts: Option<(u32, u32)>) {
        self.marks.put_flag(TS_BIT, ts.is_some());
        self.marks.ts = ts.unwrap_or_default();
    }
}

marks! {
    /// End of the latest stretch of its data the snooper missed (a segment began past
    /// `nxt`); once acknowledged, missing bytes there are [`Half::unseen`].
    0 gap set_gap;
    /// Sequence number of its FIN.
    1 fin set_fin;
    /// End of a stretch of its data the other side acknowledged but the snooper never saw;
    /// it matters until it falls out of the retained window.
    2 unseen set_unseen;
    /// The furthest acknowledgement of its data the other side sent beyond `nxt`, while
    /// `nxt` has not reached it: bytes acknowledged before the snooper saw them. It is
    /// applied to `una` as far as `nxt` goes, and in full once `nxt` reaches it.
    3 ahead set_ahead;
    /// The acknowledgement its last segment with new data carried: the other side's bytes
    /// that had reached it when it last sent new data (for the owner: the client bytes it
    /// demonstrably answered, `None` before it sent any data).
    4 answered set_answered;
}

impl<A: ChunkAlloc> Half<A> {
    /// The sequence numbers a reset from this side must try so that the other side takes one:
    /// RFC 5961 has a stack take a reset only at exactly its next expected sequence number
    /// while its window is closed (Linux does so), and the mirror knows that number only
    /// within a few candidates: this side's first unacknowledged byte, its next one, one past
    /// it (a mirror that saw only a window probe, sent one below the next byte, is one
    /// short), and the other side's acknowledgement beyond what the mirror saw
    /// ([`Half::ahead`]: it received bytes the mirror missed). Duplicates are for the caller
    /// to skip.
    pub fn reset_seqs(&self) -> [Seq; 4] {
        [
            self.una,
            self.nxt,
            self.nxt.wrapping_add(1),
            self.ahead().unwrap_or(self.nxt),
        ]
    }

    pub(crate) fn new() -> Self {
        Half {
            isn: 0,
            syn_opts: SynOpts::default(),
            syn_window: 0,
            nxt: 0,
            una: 0,
            win: 0,
            max_win: 0,
            win_seq: 0,
            right: 0,
            segs: 0,
            bytes: 0,
            data: SeqBuf::new(0),
            push_end: 0,
            marks: Marks::default(),
        }
    }

    fn syn(&mut self, seg: &Segment) {
        self.isn = seg.seq;
        self.set_syn_seen(true);
        self.syn_opts = SynOpts::of(&seg.opts);
        self.syn_window = seg.window;
        self.nxt = seg.seq.wrapping_add(1);
        self.una = seg.seq;
        self.win = u32::from(seg.window);
        self.max_win = self.win;
        self.win_seq = seg.seq;
        self.right = seg.seq.wrapping_add(1);
        self.set_anchored(true);
        self.set_ts(seg.opts.ts);
        self.data = SeqBuf::new(seg.seq.wrapping_add(1));
        self.push_end = self.nxt;
    }

    /// Where the receiver of this side's data stands (its `rcv_nxt`): the first byte missing
    /// from its acknowledgement on, or everything sent (FIN included). Bytes the snooper
    /// could not store count as received.
    pub fn rcv_nxt(&self) -> Seq {
        if self.marks.write_error.is_some() {
            return self.nxt;
        }
        let from = seq::max(self.una, self.data.base());
        self.data
            .first_hole(from, self.data_end())
            .unwrap_or(self.nxt)
    }

    /// End of this side's data, FIN excluded.
    pub fn data_end(&self) -> Seq {
        match self.fin() {
            Some(f) if seq::after(self.nxt, f) => f,
            _ => self.nxt,
        }
    }
}

/// What the caller should do with the connection after a segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Keep tracking.
    Keep,
    /// The segment was out of window or inconsistent and was ignored.
    Invalid,
    /// Reset: remove the connection now.
    Reset,
}

/// A snooped connection.
pub struct Conn<A: ChunkAlloc> {
    /// Simulated state.
    pub state: State,
    /// Who sent the first SYN.
    pub opener: Side,
    /// The two directions, indexed by [`Side`].
    pub half: [Half<A>; 2],
    /// Window scaling was negotiated (both SYNs carried it).
    pub ws_ok: bool,
    /// SACK was negotiated.
    pub sack_ok: bool,
    /// Timestamps were negotiated.
    pub ts_ok: bool,
    /// When the connection was created, the low 32 bits of the millisecond clock (see
    /// [`Conn::age_ms`]; 32 bits, as the kernel's jiffies compare, keep a table entry within
    /// issue 13's memory goal).
    created_ms: u32,
    /// Its last segment, on the same clock (see [`Conn::idle_ms`]).
    last_ms: u32,
    /// The end of TIME_WAIT on the same clock; 0 before (it is made 1 where it would be 0).
    expires_ms: u32,
    /// Segments ignored as out of window or inconsistent (saturating).
    pub invalid: u32,
    /// Client bytes kept behind the owner's acknowledgement at least (see
    /// [`crate::logic::snoop::Limits::keep_received`]).
    pub keep_received: u32,
    /// Bytes of the namespace's budget this connection holds: its table entry, slot tables
    /// and chunks (at most [`Conn::max_mem`]).
    pub mem: u32,
    /// Its share of the budget (see [`crate::logic::snoop::Limits::max_conn_bytes`]), at
    /// most 4 GiB (a connection holds two buffers of [`CAPACITY`] bytes at most).
    pub max_mem: u32,
    /// The owner's round-trip time to the client, from its data to the client's
    /// acknowledgement (seeds the rebuilt socket's retransmission timeout).
    pub rtt: Rtt,
    /// Served elsewhere: a takeover of its owner gave it to another node (or passed it on
    /// with a directive). Followed until it ends; a later takeover of the same owner (which
    /// rejoined in between) neither takes it nor resets it (see [`crate::logic::snoop::pick`]).
    pub followed: bool,
}

/// Bytes one table entry takes: the connection, its key and the tree node's links.
pub const fn entry_bytes<A: ChunkAlloc>() -> u64 {
    (core::mem::size_of::<Conn<A>>()
        + core::mem::size_of::<FlowKey>()
        + 3 * core::mem::size_of::<usize>()) as u64
}

/// How far past the furthest point `receiver` was seen to allow a segment to it may begin:
/// its largest window, at most the buffer's capacity. The segment that moved the window on
/// may reach the snooper later than the data it let through (the two directions come in
/// through different ports of a bridge).
fn reorder_slack<A: ChunkAlloc>(receiver: &Half<A>) -> u32 {
    receiver.max_win.min(CAPACITY)
}

impl<A: ChunkAlloc> Conn<A> {
    /// Starts tracking at a SYN from `from`.
    pub fn from_syn(from: Side, seg: &Segment, now_ms: u64) -> Self {
        let mut c = Self::empty(from, State::SynSent, now_ms);
        c.half[from.idx()].syn(seg);
        c
    }

    /// Starts tracking a connection whose SYN was missed (visible, never ready).
    pub fn unsynced(from: Side, seg: &Segment, now_ms: u64) -> Self {
        let mut c = Self::empty(from, State::Unsynced, now_ms);
        let end = seg.seq.wrapping_add(seg.seq_len());
        let h = &mut c.half[from.idx()];
        (h.isn, h.nxt, h.una, h.win_seq) = (seg.seq, end, seg.seq, seg.seq);
        h.set_anchored(true);
        h.push_end = end;
        h.data = SeqBuf::new(seg.seq);
        if seg.has(flags::ACK) {
            c.anchor(from.other(), seg.ack);
        }
        c
    }

    /// Sets the sequence numbers of `side` of a connection not seen from its SYN from the
    /// first acknowledgement of its data.
    fn anchor(&mut self, side: Side, ack: Seq) {
        let o = &mut self.half[side.idx()];
        (o.isn, o.nxt, o.una, o.win_seq) = (ack, ack, ack, ack);
        o.set_anchored(true);
        o.push_end = ack;
        o.data = SeqBuf::new(ack);
    }

    pub(crate) fn empty(opener: Side, state: State, now_ms: u64) -> Self {
        Conn {
            state,
            opener,
            half: [Half::new(), Half::new()],
            ws_ok: false,
            sack_ok: false,
            ts_ok: false,
            created_ms: now_ms as u32,
            last_ms: now_ms as u32,
            expires_ms: 0,
            invalid: 0,
            keep_received: 0,
            mem: 0,
            max_mem: u32::MAX,
            rtt: Rtt::default(),
            followed: false,
        }
    }

    /// The half of `side`.
    pub fn side(&self, side: Side) -> &Half<A> {
        &self.half[side.idx()]
    }

    /// Window scale shift applied to windows `side` advertises (0 without scaling).
    pub fn wscale(&self, side: Side) -> u8 {
        if self.ws_ok {
            self.half[side.idx()].syn_opts.wscale.unwrap_or(0)
        } else {
            0
        }
    }

    /// Whether the connection could be taken over now, and if not why.
    pub fn readiness(&self) -> Result<(), NotReady> {
        match self.state {
            State::Unsynced => return Err(NotReady::NotFromSyn),
            State::SynSent | State::SimultaneousOpen | State::SynReceived => {
                return Err(NotReady::Handshake)
            }
            State::TimeWait | State::Closed => return Err(NotReady::Closed),
            State::Established | State::FinSeen | State::Closing => {}
        }
        for side in [Side::Owner, Side::Client] {
            let h = &self.half[side.idx()];
            // Acknowledged bytes never seen: the application may still need them (received
            // data it had not read; sent data to verify) while they are within the window,
            // unless a late copy (a retransmission) has filled them in since.
            let base = h.data.base();
            if h.unseen()
                .is_some_and(|end| seq::after(end, base) && !h.data.contains(base, end))
            {
                return Err(NotReady::AckedUnseen(side));
            }
            // Bytes acknowledged before they were seen: until they show up the mirror is
            // behind the other end (a rebuilt socket would stall, sending from before what
            // the other end acknowledged).
            if h.ahead().is_some_and(|a| seq::after(a, h.nxt)) {
                return Err(NotReady::AckAhead(side));
            }
            // Everything not yet acknowledged must be at hand to retransmit or deliver.
            let from = seq::max(h.una, h.data.base());
            if !h.data.contains(from, h.data_end())
                || seq::before(h.una, h.data.base()) && seq::before(h.una, h.data_end())
            {
                return Err(h.write_error().unwrap_or(NotReady::Hole(side)));
            }
        }
        Ok(())
    }

    /// Processes one segment sent by `from`; `payload` gives access to its data.
    #[inline(always)]
    pub fn on_segment(
        &mut self,
        alloc: &mut A,
        from: Side,
        seg: &Segment,
        payload: &(impl Payload + ?Sized),
        now_ms: u64,
    ) -> Verdict {
        let f = from.idx();
        self.half[f].segs += 1;
        self.half[f].bytes += u64::from(seg.payload_len);
        let mut mem = u64::from(self.mem);
        let mut share = Share {
            inner: alloc,
            used: &mut mem,
            max: u64::from(self.max_mem),
        };
        let verdict = self.apply(&mut share, from, seg, payload, now_ms);
        // The share refuses anything past `max_mem`, a `u32`.
        self.mem = mem as u32;
        // Only what the owner would accept keeps an entry alive: a forger cannot hold it.
        if verdict != Verdict::Invalid {
            self.last_ms = now_ms as u32;
        }
        verdict
    }

    /// Milliseconds since the connection was created, at `now_ms` (modulo 2^32: 49 days).
    pub fn age_ms(&self, now_ms: u64) -> u64 {
        u64::from((now_ms as u32).wrapping_sub(self.created_ms))
    }

    /// Milliseconds since its last segment, at `now_ms` (modulo 2^32: 49 days; the idle
    /// timeout, a `u32` of milliseconds too, ends it before).
    pub fn idle_ms(&self, now_ms: u64) -> u64 {
        u64::from((now_ms as u32).wrapping_sub(self.last_ms))
    }

    #[inline(always)]
    fn apply(
        &mut self,
        alloc: &mut impl Alloc<A>,
        from: Side,
        seg: &Segment,
        payload: &(impl Payload + ?Sized),
        now_ms: u64,
    ) -> Verdict {
        let (f, o) = (from.idx(), from.other().idx());
        if seg.has(flags::RST) {
            return self.on_rst(from, seg);
        }
        if seg.has(flags::SYN) {
            return self.on_syn(from, seg);
        }
        let completes = match self.state {
            State::SynSent | State::SimultaneousOpen | State::Closed => return self.invalid(),
            // Only the opener's final ACK, acknowledging exactly the SYN-ACK, completes the
            // handshake (tcp_check_req); the responder sends nothing else before it.
            State::SynReceived => {
                if from == self.opener
                    && seg.has(flags::ACK)
                    && seg.ack == self.half[o].isn.wrapping_add(1)
                {
                    true
                } else {
                    return self.invalid();
                }
            }
            _ => false,
        };
        if !self.acceptable(from, seg) {
            return self.invalid();
        }
        if completes {
            self.state = State::Established;
        }

        let end = seg.seq.wrapping_add(seg.seq_len());
        let unsynced = self.state == State::Unsynced;
        if !unsynced {
            // A segment beginning past everything seen: the snooper missed what lies between.
            let h = &mut self.half[f];
            if seq::after(seg.seq, h.nxt) {
                h.set_gap(Some(seg.seq));
            }
            // A connection not seen from its SYN is never taken over here: its data is not kept.
            if seg.payload_len > 0 {
                self.store(alloc, from, seg, payload);
                self.note_output(from, seg);
            }
        }
        if from == Side::Owner && !unsynced && seg.payload_len > 0 {
            let data_end = seg.seq.wrapping_add(seg.payload_len);
            // New data the client acknowledged before it was seen is no probe.
            let h = &self.half[f];
            let acked = !seq::before(seg.seq, h.nxt)
                && h.ahead().is_some_and(|a| seq::at_or_after(a, data_end));
            if !acked {
                self.rtt.sent(seg.seq, data_end, h.nxt, now_ms);
            }
        }
        let h = &mut self.half[f];
        h.nxt = seq::max(h.nxt, end);
        if seg.has(flags::FIN) {
            let fin = seg.seq.wrapping_add(seg.payload_len);
            h.set_fin(Some(fin));
        }
        // The other side acknowledged these bytes before they were seen (on_ack()): its
        // acknowledgement now applies as far as they have come.
        if let Some(a) = h.ahead() {
            let to = if seq::after(a, h.nxt) {
                h.nxt
            } else {
                h.set_ahead(None);
                a
            };
            self.acknowledge(from, to);
        }
        if seg.has(flags::ACK) {
            let ack = self.on_ack(alloc, from, seg);
            if from == Side::Client {
                self.rtt.acked(ack, now_ms);
            }
        }
        if self.ts_ok {
            if let Some((val, ecr)) = seg.opts.ts {
                let h = &mut self.half[f];
                if h.ts().is_none_or(|(last, _)| seq::at_or_after(val, last)) {
                    h.set_ts(Some((val, ecr)));
                }
            }
        }
        self.update_close_state(now_ms);
        Verdict::Keep
    }

    /// Whether the owner's stack would accept `seg` from `from` (a segment to it), or could
    /// have sent it (a segment from it), past the handshake.
    #[inline(always)]
    fn acceptable(&self, from: Side, seg: &Segment) -> bool {
        let (s, r) = (&self.half[from.idx()], &self.half[from.other().idx()]);
        let end = seg.seq.wrapping_add(seg.seq_len());
        if self.state == State::Unsynced {
            // Nothing is known of the windows: stay within a window of what was seen.
            let near = |x: Seq, h: &Half<A>| {
                !h.anchored()
                    || seq::between(
                        x,
                        h.una.wrapping_sub(UNSYNCED_WINDOW),
                        h.nxt.wrapping_add(UNSYNCED_WINDOW),
                    )
            };
            return near(seg.seq, s) && (!seg.has(flags::ACK) || near(seg.ack, r));
        }
        // Past the handshake every segment carries an ACK (tcp_validate_incoming's caller
        // drops the others).
        if !seg.has(flags::ACK) {
            return false;
        }
        // PAWS (RFC 7323): a timestamp older than the last one seen from this end.
        if self.ts_ok {
            if let (Some((val, _)), Some((last, _))) = (seg.opts.ts, s.ts()) {
                if last != 0 && (last.wrapping_sub(val) as i32) > 1 {
                    return false;
                }
            }
        }
        // The sequence number: nothing beginning more than one window past the furthest
        // point the receiver was seen to allow (a FIN may end past it): the receiver's
        // segment that moved its window on may reach the snooper after the data it let
        // through, as the two directions come in through different ports. For the owner
        // as receiver nothing ending before its last acknowledgement (tcp_sequence:
        // rcv_wup); for the owner as sender nothing older than one window of the client's
        // (tcp_in_window).
        if seq::after(seg.seq, s.right.wrapping_add(reorder_slack(r))) {
            return false;
        }
        let oldest = match from {
            Side::Client => s.una,
            Side::Owner => s.nxt.wrapping_sub(r.max_win.max(1)),
        };
        if seq::before(end, oldest) {
            return false;
        }
        // The acknowledgement (tcp_ack, RFC 5961 5.2): nothing the other end could not have
        // sent, and not more than the acknowledging end's largest window (or all that was
        // acknowledged) behind snd_una. Past what was seen of the other end it may lie, as
        // the acknowledged bytes may still be on their way to the snooper (or were lost on
        // its port), but not more than one of this end's largest windows past the furthest
        // point this end was seen to allow it (plus a FIN): this end's own segments
        // advertised that edge, and the one that moved it furthest may have been lost on
        // the snooper's port, as the data it let through was. Such an acknowledgement is
        // not taken as it is (on_ack()): the connection is not ready until the bytes show
        // up. Rejected, it would leave a mirror behind the client claiming to be ready.
        if seq::after(seg.ack, r.nxt)
            && seq::after(
                seg.ack,
                r.right.wrapping_add(1).wrapping_add(reorder_slack(s)),
            )
        {
            return false;
        }
        let acked = seq::dist(r.isn.wrapping_add(1), r.una);
        let behind = s.max_win.min(acked);
        !seq::before(seg.ack, r.una.wrapping_sub(behind))
    }

    /// Records the write boundaries and the answered bytes of a segment with data (before
    /// `nxt` moves on).
    #[inline(always)]
    fn note_output(&mut self, from: Side, seg: &Segment) {
        let (f, o) = (from.idx(), from.other().idx());
        let data_end = seg.seq.wrapping_add(seg.payload_len);
        if seq::after(data_end, self.half[f].nxt) {
            let r = &self.half[o];
            let mss = u32::from(r.syn_opts.mss().unwrap_or(536));
            let edge = self.half[f].una.wrapping_add(r.win);
            self.half[f].set_limited(seq::after(data_end.wrapping_add(mss), edge));
        }
        let h = &mut self.half[f];
        if seg.has(flags::PSH) && seq::after(data_end, h.push_end) {
            h.push_end = data_end;
        }
        // New data: it goes past everything sent before (a retransmission carries a newer
        // acknowledgement than the data it repeats answered).
        if seg.has(flags::ACK)
            && seq::after(data_end, h.nxt)
            && h.answered().is_none_or(|a| seq::after(seg.ack, a))
        {
            h.set_answered(Some(seg.ack));
        }
    }

    fn invalid(&mut self) -> Verdict {
        self.invalid = self.invalid.saturating_add(1);
        Verdict::Invalid
    }

    fn on_rst(&mut self, from: Side, seg: &Segment) -> Verdict {
        let (f, o) = (from.idx(), from.other().idx());
        let h = &self.half[f];
        let valid = match (self.state, from) {
            // A refused connection: the RST acknowledges the SYN.
            (State::SynSent, _) => {
                from != self.opener
                    && seg.has(flags::ACK)
                    && seg.ack == self.half[o].isn.wrapping_add(1)
            }
            // Not seen from its SYN: at the sender's next sequence number, as far as known.
            (State::Unsynced, _) => h.anchored() && seq::between(seg.seq, h.una, h.nxt),
            // A request socket is reset by a RST anywhere in its window (tcp_check_req).
            (State::SimultaneousOpen | State::SynReceived, Side::Client) => {
                seq::between(seg.seq, h.nxt, h.nxt.wrapping_add(self.half[o].win.max(1)))
            }
            // RFC 5961 3.2, as the owner's tcp_validate_incoming(): only a RST at rcv_nxt, or
            // rcv_nxt - 1 after the client's FIN, or at the right edge of the highest SACK
            // block, resets; any other gets a challenge ACK.
            (_, Side::Client) => {
                let rcv_nxt = h.rcv_nxt();
                let owner_fin_acked = self.half[o]
                    .fin()
                    .is_some_and(|x| seq::after(self.half[o].una, x));
                seg.seq == rcv_nxt
                    || (h.fin().is_some() && !owner_fin_acked && seg.seq == rcv_nxt.wrapping_sub(1))
                    || (self.sack_ok && rcv_nxt != h.nxt && seg.seq == h.data_end())
            }
            // The owner resets at its snd_nxt (or, for a segment it has no socket for, at the
            // client's acknowledgement): only what the client could accept.
            (_, Side::Owner) => seq::between(seg.seq, h.una, h.nxt),
        };
        if valid {
            self.state = State::Closed;
            Verdict::Reset
        } else {
            self.invalid()
        }
    }

    fn on_syn(&mut self, from: Side, seg: &Segment) -> Verdict {
        let (f, o) = (from.idx(), from.other().idx());
        let acks_other = |c: &Self| seg.has(flags::ACK) && seg.ack == c.half[o].isn.wrapping_add(1);
        match (self.state, seg.has(flags::ACK)) {
            // A duplicate SYN (retransmitted, or a new ISN): it replaces the stored one.
            (State::SynSent, false) if from == self.opener => {
                self.half[f].syn(seg);
            }
            // The other endpoint's SYN before any SYN-ACK: simultaneous open. The first SYN
            // seen keeps its sender as the opener.
            (State::SynSent, false) => {
                self.half[f].syn(seg);
                self.state = State::SimultaneousOpen;
                self.negotiate();
            }
            (State::SynSent, true) if from != self.opener && acks_other(self) => {
                self.half[f].syn(seg);
                self.syn_acked(from, seg);
                self.state = State::SynReceived;
                self.negotiate();
            }
            // A retransmitted SYN-ACK.
            (State::SynReceived, true) if from != self.opener && acks_other(self) => {
                self.half[f].syn(seg);
                self.syn_acked(from, seg);
                self.negotiate();
            }
            // Simultaneous open: each side's SYN-ACK acknowledges the other's SYN; the
            // opener's SYN-ACK plays the part of the final ACK.
            (State::SimultaneousOpen, true) if acks_other(self) => {
                self.syn_acked(from, seg);
                let h = &self.half;
                if seq::after(h[0].una, h[0].isn) && seq::after(h[1].una, h[1].isn) {
                    self.state = State::Established;
                }
            }
            _ => return self.invalid(),
        }
        Verdict::Keep
    }

    /// A SYN-ACK from `from` acknowledged the other side's SYN and opened its window (SYN
    /// windows are never scaled).
    fn syn_acked(&mut self, from: Side, seg: &Segment) {
        let o = &mut self.half[from.other().idx()];
        o.una = seg.ack;
        o.right = seq::max(o.right, seg.ack.wrapping_add(u32::from(seg.window)));
    }

    /// Options take effect only when both SYNs carried them (RFC 7323, RFC 2018).
    fn negotiate(&mut self) {
        let (a, b) = (&self.half[0].syn_opts, &self.half[1].syn_opts);
        self.ws_ok = a.wscale.is_some() && b.wscale.is_some();
        self.sack_ok = a.sack_perm && b.sack_perm;
        self.ts_ok = a.ts && b.ts;
    }

    fn store(
        &mut self,
        alloc: &mut impl Alloc<A>,
        from: Side,
        seg: &Segment,
        payload: &(impl Payload + ?Sized),
    ) {
        // Unacknowledged data comes first within the connection's share too: give up the
        // oldest acknowledged bytes kept for the window, as many as the segment needs, then
        // if that is not enough all of them, both ways, and try again. Given up before the
        // write when the share has no room left for the segment (a bulk transfer whose
        // window fills the share does so on every frame): a write that fails half way
        // would have copied what a view then holds again.
        let need = seg.payload_len.saturating_add(2 * CHUNK as u32);
        let cost = |exact: bool| {
            let n = seg.payload_len;
            payload.frame().map_or(u64::from(n), |f| match exact {
                true => f.share(n),
                false => f.share_bound(n),
            }) + 2 * CHUNK as u64
        };
        // The bound first: with room for it, the share's division is not needed.
        let room = alloc.room();
        if room < cost(false) && room < cost(true) {
            // Counted as the refusal it saves (`byte_limit_hits`): the budget is short.
            alloc.refuse();
            self.give_up_acked(alloc, need, false);
        }
        let mut written = self.write(alloc, from, seg, payload);
        for all in [false, true] {
            if written != Err(WriteError::NoMemory) {
                break;
            }
            self.give_up_acked(alloc, need, all);
            written = self.write(alloc, from, seg, payload);
        }
        // Written only when there is an error to report: a store of the unchanged value on
        // every segment, two bytes, made the 32-bit read of the bits next to it in
        // `note_output` wait for it (no store forwarding).
        let error = match written {
            Ok(()) => return,
            Err(WriteError::NoMemory) => NotReady::NoMemory(from),
            Err(WriteError::Capacity | WriteError::Fragmented | WriteError::Copy) => {
                NotReady::Overflow(from)
            }
        };
        self.half[from.idx()].marks.write_error = Some(error);
    }

    /// Releases the oldest acknowledged bytes of both directions: `need` bytes past each
    /// base, or with `all` every acknowledged byte.
    fn give_up_acked(&mut self, alloc: &mut impl Alloc<A>, need: u32, all: bool) {
        for h in self.half.iter_mut() {
            let base = h.data.base();
            let to = if !all && seq::after(h.una, base.wrapping_add(need)) {
                base.wrapping_add(need)
            } else {
                h.una
            };
            if seq::after(to, base) {
                h.data.release_below(alloc, to);
            }
        }
    }

    fn write(
        &mut self,
        alloc: &mut impl Alloc<A>,
        from: Side,
        seg: &Segment,
        payload: &(impl Payload + ?Sized),
    ) -> Result<(), WriteError> {
        let h = &mut self.half[from.idx()];
        // Unacknowledged data comes first: give up acknowledged bytes kept for the window
        // when new data would not fit otherwise.
        let end = seg.seq.wrapping_add(seg.payload_len);
        if seq::after(end, h.data.base().wrapping_add(CAPACITY)) {
            let need = end.wrapping_sub(CAPACITY);
            let to = if seq::before(need, h.una) {
                need
            } else {
                h.una
            };
            if seq::after(to, h.data.base()) {
                h.data.release_below(alloc, to);
            }
        }
        h.data
            .write(alloc, seg.seq, seg.payload_len, payload, seg.payload_off)
    }

    /// Takes in the acknowledgement and the window of a segment from `from`; returns how far
    /// the acknowledgement was taken.
    #[inline(always)]
    fn on_ack(&mut self, alloc: &mut impl Alloc<A>, from: Side, seg: &Segment) -> Seq {
        let (f, o) = (from.idx(), from.other().idx());
        let shift = self.wscale(from);
        let unsynced = self.state == State::Unsynced;
        if unsynced && !self.half[o].anchored() {
            self.anchor(from.other(), seg.ack);
        }
        // The acknowledgement moves the other side's snd_una. A connection not seen from its
        // SYN learns how far the other side got. Past the handshake, bytes acknowledged
        // beyond what was seen of the other side (acceptable() kept it within the edge this
        // side allowed) may still be on their way to the snooper, or the acknowledgement may
        // be forged: it is taken only as far as what was seen, and the rest is remembered
        // (`ahead`) until the bytes show up (apply()); the connection is not ready meanwhile.
        let mut ack = seg.ack;
        {
            let peer = &mut self.half[o];
            if seq::after(ack, peer.nxt) {
                if unsynced {
                    peer.nxt = ack;
                } else {
                    peer.set_ahead(Some(peer.ahead().map_or(ack, |a| seq::max(a, ack))));
                    ack = peer.nxt;
                }
            }
        }
        self.acknowledge(from.other(), ack);
        // The window this side advertises (RFC 9293: only from a newer segment), and how far
        // it lets the other side send.
        let h = &mut self.half[f];
        let win = u32::from(seg.window) << shift;
        if seq::at_or_after(seg.seq, h.win_seq) {
            h.win = win;
            h.max_win = h.max_win.max(h.win);
            h.win_seq = seg.seq;
        }
        let edge = seg.ack.wrapping_add(win);
        let peer = &mut self.half[o];
        peer.right = seq::max(peer.right, edge);
        // Keep one window of the other side's data behind its acknowledgement: the largest
        // window this receiver advertised, so that at any time at least its current window is
        // kept; for the client's data at least `keep_received` (the owner's application may
        // lag further behind its kernel's acknowledgements). Never release what is not
        // acknowledged.
        let floor = if o == Side::Client.idx() {
            self.keep_received
        } else {
            0
        };
        let keep = self.half[f].max_win.max(floor).clamp(1, CAPACITY / 2);
        let peer = &mut self.half[o];
        let release_to = peer.una.wrapping_sub(keep);
        if seq::after(release_to, peer.data.base()) && seq::before(release_to, peer.una) {
            peer.data.release_below(alloc, release_to);
        }
        ack
    }

    /// The other end acknowledged `side`'s bytes up to `ack` (at most `nxt`): `side`'s
    /// snd_una moves on.
    #[inline(always)]
    fn acknowledge(&mut self, side: Side, ack: Seq) {
        let peer = &mut self.half[side.idx()];
        if !seq::after(ack, peer.una) {
            return;
        }
        // Bytes acknowledged now that the snooper missed (a gap it saw the sender skip, not
        // filled by a retransmission) are unseen: only a late copy can still bring them.
        let from_seq = seq::max(peer.una, peer.data.base());
        let to = seq::max(from_seq, ack);
        let to = if seq::after(to, peer.data_end()) {
            peer.data_end()
        } else {
            to
        };
        if let Some(g) = peer.gap() {
            if seq::after(g, from_seq) && !peer.data.contains(from_seq, to) {
                peer.set_unseen(Some(to));
            }
            if !seq::before(ack, g) {
                peer.set_gap(None);
            }
        }
        peer.una = ack;
    }

    #[inline(always)]
    fn update_close_state(&mut self, now_ms: u64) {
        let fin_acked = |h: &Half<A>| h.fin().is_some_and(|f| seq::after(h.una, f));
        let (a, b) = (&self.half[0], &self.half[1]);
        let next = match (a.fin().is_some(), b.fin().is_some()) {
            (false, false) => return,
            (true, true) if fin_acked(a) && fin_acked(b) => State::TimeWait,
            (true, true) => State::Closing,
            _ => State::FinSeen,
        };
        if self.state == State::Unsynced {
            return;
        }
        if next == State::TimeWait && self.state != State::TimeWait {
            self.expires_ms = ((now_ms + TIME_WAIT_MS + TIME_WAIT_MARGIN_MS) as u32).max(1);
        }
        self.state = next;
    }

    /// Whether TIME_WAIT is over at `now_ms`.
    pub fn expired(&self, now_ms: u64) -> bool {
        // Past the deadline on the wrapping clock (time_after_eq()).
        self.expires_ms != 0 && (now_ms as u32).wrapping_sub(self.expires_ms) as i32 >= 0
    }

    /// Gives the connection its share of the budget, `max` (at least its table entry, at
    /// most 4 GiB), and charges it its table entry, `entry` bytes.
    pub fn set_share(&mut self, max: u64, entry: u64) {
        self.max_mem = max.max(entry).min(u64::from(u32::MAX)) as u32;
        self.mem = entry as u32;
    }

    /// Returns everything the connection holds to the allocator: its chunks, its slot tables
    /// and its table entry (see [`Conn::mem`]).
    pub fn release(&mut self, alloc: &mut A) {
        let mut mem = u64::from(self.mem);
        let mut share = Share {
            inner: &mut *alloc,
            used: &mut mem,
            max: u64::MAX,
        };
        for h in self.half.iter_mut() {
            h.data.clear(&mut share);
        }
        alloc.uncharge(mem);
        self.mem = 0;
    }

    /// Moves the bytes `side` sent out of the connection, from `from` on (those before are
    /// released), without copying them: the connection's share and `alloc` no longer count
    /// them ([`SeqBuf::hand_over`]), and the returned buffer owns them. The connection keeps
    /// an empty buffer for that side: only a connection being let go hands its bytes over.
    pub fn hand_over(&mut self, alloc: &mut A, side: Side, from: Seq) -> SeqBuf<A> {
        let mut mem = u64::from(self.mem);
        let mut share = Share {
            inner: &mut *alloc,
            used: &mut mem,
            max: u64::MAX,
        };
        let data = &mut self.half[side.idx()].data;
        data.release_below(&mut share, from);
        let out = data.hand_over(&mut share);
        self.mem = mem as u32;
        out
    }

    /// Bytes retained, both directions.
    pub fn held(&self) -> u32 {
        self.half[0].data.held() + self.half[1].data.held()
    }
}
