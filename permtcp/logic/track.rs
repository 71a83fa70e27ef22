// SPDX-License-Identifier: GPL-2.0

//! The snooping state machine of one connection, from the permanency peer's point of view.
//!
//! The peer sees both directions of the owner's connection on the shared link and never sends.
//! It simulates the three-way handshake (a SYN from either side; a duplicate SYN replaces the
//! stored one; simultaneous open decided by which SYN came first; ESTABLISHED only after the
//! opener's final ACK), records the options both SYNs carried, tracks sequence numbers,
//! acknowledgements, windows and timestamps in both directions, keeps one window of data each
//! way (and at least one window of sent data whether acknowledged or not), and simulates FIN
//! and RST. It keeps no timers and does no RTT or congestion work: the caller passes the time
//! in, and the only deadline is the end of TIME_WAIT.
//!
//! Deliberate differences from a full TCP are listed in Documentation/snooping.rst.

use crate::logic::packet::{flags, Options, Segment};
use crate::logic::seq::{self, Seq};
use crate::logic::seqbuf::{ChunkAlloc, Payload, SeqBuf, WriteError, CAPACITY};

/// TIME_WAIT as Linux holds it (`TCP_TIMEWAIT_LEN`), in milliseconds.
pub const TIME_WAIT_MS: u64 = 60_000;
/// How much longer than [`TIME_WAIT_MS`] a mirrored connection stays in TIME-WAIT: a peer cannot
/// know exactly when the owner's TIME-WAIT began (Documentation/design.rst, "Half-closed
/// connections and TIME-WAIT").
pub const TIME_WAIT_MARGIN_MS: u64 = 5_000;

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
}

/// One direction: what one endpoint sent, and what it announced.
pub struct Half<A: ChunkAlloc> {
    /// Initial sequence number (from its SYN).
    pub isn: Seq,
    /// Its SYN was seen.
    pub syn_seen: bool,
    /// Options of its SYN.
    pub syn_opts: Options,
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
    /// Last (TSval, TSecr) it sent.
    pub ts: Option<(u32, u32)>,
    /// Sequence number of its FIN.
    pub fin: Option<Seq>,
    /// Segments seen from it.
    pub segs: u64,
    /// Payload bytes seen from it, retransmissions included.
    pub bytes: u64,
    /// End of a stretch of its data the other side acknowledged but the snooper never saw;
    /// it matters until it falls out of the retained window.
    pub unseen: Option<Seq>,
    /// Why the last write into the buffer failed, reported while bytes are missing.
    pub write_error: Option<NotReady>,
    /// Retained data it sent.
    pub data: SeqBuf<A>,
}

impl<A: ChunkAlloc> Half<A> {
    fn new() -> Self {
        Half {
            isn: 0,
            syn_seen: false,
            syn_opts: Options::default(),
            syn_window: 0,
            nxt: 0,
            una: 0,
            win: 0,
            max_win: 0,
            win_seq: 0,
            ts: None,
            fin: None,
            segs: 0,
            bytes: 0,
            unseen: None,
            write_error: None,
            data: SeqBuf::new(0),
        }
    }

    fn syn(&mut self, seg: &Segment) {
        self.isn = seg.seq;
        self.syn_seen = true;
        self.syn_opts = seg.opts;
        self.syn_window = seg.window;
        self.nxt = seg.seq.wrapping_add(1);
        self.una = seg.seq;
        self.win = u32::from(seg.window);
        self.max_win = self.win;
        self.win_seq = seg.seq;
        self.ts = seg.opts.ts;
        self.data = SeqBuf::new(seg.seq.wrapping_add(1));
    }

    /// End of this side's data, FIN excluded.
    pub fn data_end(&self) -> Seq {
        match self.fin {
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
    /// Milliseconds: when the connection was created.
    pub created_ms: u64,
    /// Milliseconds: last segment.
    pub last_ms: u64,
    /// Milliseconds: end of TIME_WAIT.
    pub expires_ms: Option<u64>,
    /// Segments ignored as out of window or inconsistent.
    pub invalid: u64,
    /// Client bytes kept behind the owner's acknowledgement at least (see
    /// [`crate::logic::snoop::Limits::keep_received`]).
    pub keep_received: u32,
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
        h.data = SeqBuf::new(seg.seq);
        if seg.has(flags::ACK) {
            let o = &mut c.half[from.other().idx()];
            (o.isn, o.nxt, o.una, o.win_seq) = (seg.ack, seg.ack, seg.ack, seg.ack);
            o.data = SeqBuf::new(seg.ack);
        }
        c
    }

    fn empty(opener: Side, state: State, now_ms: u64) -> Self {
        Conn {
            state,
            opener,
            half: [Half::new(), Half::new()],
            ws_ok: false,
            sack_ok: false,
            ts_ok: false,
            created_ms: now_ms,
            last_ms: now_ms,
            expires_ms: None,
            invalid: 0,
            keep_received: 0,
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
            // data it had not read; sent data to verify) while they are within the window.
            if h.unseen.is_some_and(|end| seq::after(end, h.data.base())) {
                return Err(NotReady::AckedUnseen(side));
            }
            // Everything not yet acknowledged must be at hand to retransmit or deliver.
            let from = seq::max(h.una, h.data.base());
            if !h.data.contains(from, h.data_end())
                || seq::before(h.una, h.data.base()) && seq::before(h.una, h.data_end())
            {
                return Err(h.write_error.unwrap_or(NotReady::Hole(side)));
            }
        }
        Ok(())
    }

    /// Processes one segment sent by `from`; `payload` gives access to its data.
    pub fn on_segment(
        &mut self,
        alloc: &mut A,
        from: Side,
        seg: &Segment,
        payload: &(impl Payload + ?Sized),
        now_ms: u64,
    ) -> Verdict {
        self.last_ms = now_ms;
        let (f, o) = (from.idx(), from.other().idx());
        self.half[f].segs += 1;
        self.half[f].bytes += u64::from(seg.payload_len);

        if seg.has(flags::RST) {
            return self.on_rst(from, seg);
        }
        if seg.has(flags::SYN) {
            return self.on_syn(from, seg);
        }
        match self.state {
            State::SynSent | State::SimultaneousOpen => return self.invalid(),
            State::SynReceived => {
                // The opener's final ACK completes the handshake.
                let resp = &self.half[o];
                if from == self.opener
                    && seg.has(flags::ACK)
                    && seq::at_or_after(seg.ack, resp.isn.wrapping_add(1))
                {
                    self.state = State::Established;
                } else if from != self.opener {
                    // Data from the responder before the final ACK: the client must have
                    // sent it, as the responder only sends data once established.
                    return self.invalid();
                } else {
                    return self.invalid();
                }
            }
            State::Closed => return self.invalid(),
            _ => {}
        }

        // Acceptability: the data must fit in what the receiver ever allowed.
        let h = &self.half[f];
        let end = seg.seq.wrapping_add(seg.seq_len());
        let limit = h
            .una
            .wrapping_add(self.half[o].max_win.max(1))
            .wrapping_add(1);
        if self.state != State::Unsynced && seq::after(end, limit) && seg.payload_len > 0 {
            return self.invalid();
        }

        if seg.payload_len > 0 {
            self.store(alloc, from, seg, payload);
        }
        let h = &mut self.half[f];
        h.nxt = seq::max(h.nxt, end);
        if seg.has(flags::FIN) {
            let fin = seg.seq.wrapping_add(seg.payload_len);
            h.fin = Some(fin);
        }
        if seg.has(flags::ACK) {
            self.on_ack(alloc, from, seg);
        }
        if self.ts_ok {
            if let Some((val, ecr)) = seg.opts.ts {
                let h = &mut self.half[f];
                if h.ts.is_none_or(|(last, _)| seq::at_or_after(val, last)) {
                    h.ts = Some((val, ecr));
                }
            }
        }
        self.update_close_state(now_ms);
        Verdict::Keep
    }

    fn invalid(&mut self) -> Verdict {
        self.invalid += 1;
        Verdict::Invalid
    }

    fn on_rst(&mut self, from: Side, seg: &Segment) -> Verdict {
        let (f, o) = (from.idx(), from.other().idx());
        let valid = match self.state {
            // A refused connection: the RST acknowledges the SYN.
            State::SynSent => {
                from != self.opener
                    && seg.has(flags::ACK)
                    && seg.ack == self.half[o].isn.wrapping_add(1)
            }
            // RFC 5961: a RST is accepted when its sequence number is in the window.
            _ => {
                let h = &self.half[f];
                let win = self.half[o].max_win.max(1);
                self.state == State::Unsynced
                    || seq::between(seg.seq, h.una, h.nxt.wrapping_add(win))
            }
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
                self.half[o].una = seg.ack;
                self.state = State::SynReceived;
                self.negotiate();
            }
            // A retransmitted SYN-ACK.
            (State::SynReceived, true) if from != self.opener && acks_other(self) => {
                self.half[f].syn(seg);
                self.half[o].una = seg.ack;
                self.negotiate();
            }
            // Simultaneous open: each side's SYN-ACK acknowledges the other's SYN; the
            // opener's SYN-ACK plays the part of the final ACK.
            (State::SimultaneousOpen, true) if acks_other(self) => {
                self.half[o].una = seg.ack;
                let h = &self.half;
                if seq::after(h[0].una, h[0].isn) && seq::after(h[1].una, h[1].isn) {
                    self.state = State::Established;
                }
            }
            _ => return self.invalid(),
        }
        Verdict::Keep
    }

    /// Options take effect only when both SYNs carried them (RFC 7323, RFC 2018).
    fn negotiate(&mut self) {
        let (a, b) = (&self.half[0].syn_opts, &self.half[1].syn_opts);
        self.ws_ok = a.wscale.is_some() && b.wscale.is_some();
        self.sack_ok = a.sack_perm && b.sack_perm;
        self.ts_ok = a.ts.is_some() && b.ts.is_some();
    }

    fn store(
        &mut self,
        alloc: &mut A,
        from: Side,
        seg: &Segment,
        payload: &(impl Payload + ?Sized),
    ) {
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
        let written = h
            .data
            .write(alloc, seg.seq, seg.payload_len, payload, seg.payload_off);
        h.write_error = match written {
            Ok(()) => h.write_error,
            Err(WriteError::NoMemory) => Some(NotReady::NoMemory(from)),
            Err(WriteError::Capacity | WriteError::Fragmented | WriteError::Copy) => {
                Some(NotReady::Overflow(from))
            }
        };
    }

    fn on_ack(&mut self, alloc: &mut A, from: Side, seg: &Segment) {
        let (f, o) = (from.idx(), from.other().idx());
        let shift = self.wscale(from);
        // The acknowledgement moves the other side's snd_una.
        {
            let peer = &mut self.half[o];
            if seq::after(seg.ack, peer.nxt) {
                // Acknowledging bytes the snooper never saw: they are lost to it for good.
                if self.state != State::Unsynced {
                    peer.unseen = Some(seg.ack);
                }
                peer.nxt = seg.ack;
            }
            if seq::after(seg.ack, peer.una) {
                peer.una = seg.ack;
            }
        }
        // The window this side advertises (RFC 9293: only from a newer segment).
        let h = &mut self.half[f];
        if seq::at_or_after(seg.seq, h.win_seq) {
            h.win = u32::from(seg.window) << shift;
            h.max_win = h.max_win.max(h.win);
            h.win_seq = seg.seq;
        }
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
        let keep = h.max_win.max(floor).clamp(1, CAPACITY / 2);
        let peer = &mut self.half[o];
        let release_to = peer.una.wrapping_sub(keep);
        if seq::after(release_to, peer.data.base()) && seq::before(release_to, peer.una) {
            peer.data.release_below(alloc, release_to);
        }
    }

    fn update_close_state(&mut self, now_ms: u64) {
        let fin_acked = |h: &Half<A>| h.fin.is_some_and(|f| seq::after(h.una, f));
        let (a, b) = (&self.half[0], &self.half[1]);
        let next = match (a.fin.is_some(), b.fin.is_some()) {
            (false, false) => return,
            (true, true) if fin_acked(a) && fin_acked(b) => State::TimeWait,
            (true, true) => State::Closing,
            _ => State::FinSeen,
        };
        if self.state == State::Unsynced {
            return;
        }
        if next == State::TimeWait && self.state != State::TimeWait {
            self.expires_ms = Some(now_ms + TIME_WAIT_MS + TIME_WAIT_MARGIN_MS);
        }
        self.state = next;
    }

    /// Whether TIME_WAIT is over at `now_ms`.
    pub fn expired(&self, now_ms: u64) -> bool {
        self.expires_ms.is_some_and(|t| now_ms >= t)
    }

    /// Returns the retained data's chunks to the allocator.
    pub fn release(&mut self, alloc: &mut A) {
        for h in self.half.iter_mut() {
            h.data.clear(alloc);
        }
    }

    /// Bytes retained, both directions.
    pub fn held(&self) -> u32 {
        self.half[0].data.held() + self.half[1].data.held()
    }
}
