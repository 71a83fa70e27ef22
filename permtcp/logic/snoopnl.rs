// SPDX-License-Identifier: GPL-2.0

//! Netlink encoding of the snooper's state: mirrored connections and counters.
//!
//! The kernel writes these with [`ConnInfo::write`] and [`StatsInfo::write`]; permctl reads
//! them back with the `parse` functions, the same code on both sides.

use crate::logic::errno::{inval, Error};
use crate::logic::nla::{Attr, Attrs, Seen, Writer};
use crate::logic::packet::Addr;
use crate::logic::seqbuf::ChunkAlloc;
use crate::logic::snoop::{Counters, FlowKey};
use crate::logic::track::{Conn, NotReady, Side, State};
use crate::logic::uapi::{
    attr, conn_attr, conn_state, directive_attr, half_attr, not_ready, stats_attr, taken_attr,
};

/// One direction of a mirrored connection, as reported.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HalfInfo {
    /// Initial sequence number.
    pub isn: u32,
    /// snd_nxt.
    pub nxt: u32,
    /// snd_una.
    pub una: u32,
    /// Last advertised window, bytes.
    pub win: u32,
    /// Largest advertised window, bytes.
    pub max_win: u32,
    /// Window scale shift of its windows (0 when not negotiated).
    pub wscale: u8,
    /// MSS option of its SYN.
    pub mss: Option<u16>,
    /// Window field of its SYN.
    pub syn_win: u16,
    /// Last (TSval, TSecr).
    pub ts: Option<(u32, u32)>,
    /// Sequence number of its FIN.
    pub fin: Option<u32>,
    /// Retained bytes.
    pub held: u32,
    /// Segments seen.
    pub segs: u64,
    /// Payload bytes seen.
    pub bytes: u64,
    /// First retained sequence number.
    pub data_start: u32,
    /// Sequence number that last set its window.
    pub win_seq: u32,
}

/// A mirrored connection, as reported.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ConnInfo {
    /// Its identity.
    pub key: FlowKey,
    /// [`conn_state`] value.
    pub state: u8,
    /// 0 the owner opened, 1 the client.
    pub opener: u8,
    /// `None` when ready; else the [`not_ready`] reason and the side it concerns.
    pub not_ready: Option<(u8, u8)>,
    /// Window scaling negotiated.
    pub ws_ok: bool,
    /// SACK negotiated.
    pub sack_ok: bool,
    /// Timestamps negotiated.
    pub ts_ok: bool,
    /// Owner (0) and client (1) directions.
    pub half: [HalfInfo; 2],
    /// Segments ignored as invalid.
    pub invalid: u64,
    /// Milliseconds since first seen.
    pub age_ms: u64,
    /// Milliseconds since the last segment.
    pub idle_ms: u64,
}

fn state_code(s: State) -> u8 {
    match s {
        State::SynSent => conn_state::SYN_SENT,
        State::SimultaneousOpen => conn_state::SIMULTANEOUS_OPEN,
        State::SynReceived => conn_state::SYN_RECEIVED,
        State::Established => conn_state::ESTABLISHED,
        State::FinSeen => conn_state::FIN_SEEN,
        State::Closing => conn_state::CLOSING,
        State::TimeWait => conn_state::TIME_WAIT,
        State::Closed => conn_state::CLOSED,
        State::Unsynced => conn_state::UNSYNCED,
    }
}

/// Name of a [`conn_state`] value.
pub fn state_name(code: u8) -> &'static str {
    match code {
        conn_state::SYN_SENT => "SYN-SENT",
        conn_state::SIMULTANEOUS_OPEN => "SIM-OPEN",
        conn_state::SYN_RECEIVED => "SYN-RECV",
        conn_state::ESTABLISHED => "ESTAB",
        conn_state::FIN_SEEN => "FIN-SEEN",
        conn_state::CLOSING => "CLOSING",
        conn_state::TIME_WAIT => "TIME-WAIT",
        conn_state::CLOSED => "CLOSED",
        conn_state::UNSYNCED => "UNSYNCED",
        _ => "?",
    }
}

/// The netlink code of a not-ready reason ([`not_ready`]) and the side it concerns (0 owner,
/// 1 client; 0 when it concerns none).
pub fn reason_code(r: NotReady) -> (u8, u8) {
    let s = |side: Side| side as u8;
    match r {
        NotReady::NotFromSyn => (not_ready::NOT_FROM_SYN, 0),
        NotReady::Handshake => (not_ready::HANDSHAKE, 0),
        NotReady::Hole(side) => (not_ready::HOLE, s(side)),
        NotReady::AckedUnseen(side) => (not_ready::ACKED_UNSEEN, s(side)),
        NotReady::Overflow(side) => (not_ready::OVERFLOW, s(side)),
        NotReady::NoMemory(side) => (not_ready::NO_MEMORY, s(side)),
        NotReady::Closed => (not_ready::CLOSED, 0),
        NotReady::AckAhead(side) => (not_ready::ACK_AHEAD, s(side)),
    }
}

/// Text of a [`not_ready`] reason.
pub fn reason_name(code: u8) -> &'static str {
    match code {
        not_ready::NOT_FROM_SYN => "not seen from its SYN",
        not_ready::HANDSHAKE => "handshake incomplete",
        not_ready::HOLE => "unacknowledged data missing",
        not_ready::ACKED_UNSEEN => "acknowledged data never seen",
        not_ready::OVERFLOW => "more unacknowledged data than the buffer holds",
        not_ready::NO_MEMORY => "byte limit or memory exhausted",
        not_ready::CLOSED => "closed",
        not_ready::ACK_AHEAD => "acknowledged data not seen yet",
        _ => "?",
    }
}

impl ConnInfo {
    /// The connection as an unprivileged caller may see it: without the sequence numbers,
    /// windows' edges and timestamps that would let anyone on the host inject segments into
    /// it blindly (state, readiness, options and byte counts stay).
    pub fn redacted(mut self) -> Self {
        for h in &mut self.half {
            h.isn = 0;
            h.nxt = 0;
            h.una = 0;
            h.ts = None;
            h.fin = h.fin.map(|_| 0);
            h.data_start = 0;
            h.win_seq = 0;
        }
        self
    }

    /// Snapshot of a tracked connection at `now_ms`.
    pub fn from_conn<A: ChunkAlloc>(key: &FlowKey, c: &Conn<A>, now_ms: u64) -> Self {
        let half = |side: Side| {
            let h = c.side(side);
            HalfInfo {
                isn: h.isn,
                nxt: h.nxt,
                una: h.una,
                win: h.win,
                max_win: h.max_win,
                wscale: c.wscale(side),
                mss: h.syn_opts.mss(),
                syn_win: h.syn_window,
                ts: h.ts(),
                fin: h.fin(),
                held: h.data.held(),
                segs: h.segs,
                bytes: h.bytes,
                data_start: h.data.ranges().next().map_or(h.data.base(), |r| r.0),
                win_seq: h.win_seq,
            }
        };
        ConnInfo {
            key: *key,
            state: state_code(c.state),
            opener: c.opener as u8,
            not_ready: c.readiness().err().map(reason_code),
            ws_ok: c.ws_ok,
            sack_ok: c.sack_ok,
            ts_ok: c.ts_ok,
            half: [half(Side::Owner), half(Side::Client)],
            invalid: u64::from(c.invalid),
            age_ms: c.age_ms(now_ms),
            idle_ms: c.idle_ms(now_ms),
        }
    }

    /// Writes a nested [`attr::CONN`].
    pub fn write(&self, w: &mut Writer<'_>) -> Result<(), Error> {
        let nest = w.nest_start(attr::CONN)?;
        put_key(w, conn_attr::OWNER_ADDR, &self.key)?;
        w.put_u8(conn_attr::STATE, self.state)?;
        w.put_u8(conn_attr::OPENER, self.opener)?;
        match self.not_ready {
            None => w.put_flag(conn_attr::READY)?,
            Some((r, s)) => {
                w.put_u8(conn_attr::NOT_READY, r)?;
                w.put_u8(conn_attr::NOT_READY_SIDE, s)?;
            }
        }
        for (ok, kind) in [
            (self.ws_ok, conn_attr::WS_OK),
            (self.sack_ok, conn_attr::SACK_OK),
            (self.ts_ok, conn_attr::TS_OK),
        ] {
            if ok {
                w.put_flag(kind)?;
            }
        }
        for (h, kind) in [
            (&self.half[0], conn_attr::OWNER),
            (&self.half[1], conn_attr::CLIENT),
        ] {
            let n = w.nest_start(kind)?;
            w.put_u32(half_attr::ISN, h.isn)?;
            w.put_u32(half_attr::NXT, h.nxt)?;
            w.put_u32(half_attr::UNA, h.una)?;
            w.put_u32(half_attr::WIN, h.win)?;
            w.put_u32(half_attr::MAX_WIN, h.max_win)?;
            w.put_u8(half_attr::WSCALE, h.wscale)?;
            if let Some(m) = h.mss {
                w.put_u16(half_attr::MSS, m)?;
            }
            w.put_u16(half_attr::SYN_WIN, h.syn_win)?;
            if let Some((v, e)) = h.ts {
                w.put_u32(half_attr::TSVAL, v)?;
                w.put_u32(half_attr::TSECR, e)?;
            }
            if let Some(f) = h.fin {
                w.put_u32(half_attr::FIN, f)?;
            }
            w.put_u32(half_attr::HELD, h.held)?;
            w.put_u64(half_attr::SEGS, h.segs)?;
            w.put_u64(half_attr::BYTES, h.bytes)?;
            w.put_u32(half_attr::DATA_START, h.data_start)?;
            w.put_u32(half_attr::WIN_SEQ, h.win_seq)?;
            w.nest_end(n)?;
        }
        w.put_u64(conn_attr::INVALID, self.invalid)?;
        w.put_u64(conn_attr::AGE_MS, self.age_ms)?;
        w.put_u64(conn_attr::IDLE_MS, self.idle_ms)?;
        w.nest_end(nest)
    }

    /// Parses the payload of an [`attr::CONN`].
    pub fn parse(payload: &[u8]) -> Result<Self, Error> {
        let mut c = ConnInfo::default();
        let mut reason = None;
        let mut side = 0;
        let mut seen = Seen::default();
        for a in Attrs::new(payload) {
            let a = a?;
            seen.once(a.kind)?;
            if key_attr(&a, conn_attr::OWNER_ADDR, &mut c.key)?.is_some() {
                continue;
            }
            match a.kind {
                conn_attr::STATE => c.state = a.u8()?,
                conn_attr::OPENER => c.opener = a.u8()?,
                conn_attr::READY => a.flag()?,
                conn_attr::NOT_READY => reason = Some(a.u8()?),
                conn_attr::NOT_READY_SIDE => side = a.u8()?,
                conn_attr::WS_OK => {
                    a.flag()?;
                    c.ws_ok = true;
                }
                conn_attr::SACK_OK => {
                    a.flag()?;
                    c.sack_ok = true;
                }
                conn_attr::TS_OK => {
                    a.flag()?;
                    c.ts_ok = true;
                }
                conn_attr::OWNER => c.half[0] = parse_half(&a)?,
                conn_attr::CLIENT => c.half[1] = parse_half(&a)?,
                conn_attr::INVALID => c.invalid = a.u64()?,
                conn_attr::AGE_MS => c.age_ms = a.u64()?,
                conn_attr::IDLE_MS => c.idle_ms = a.u64()?,
                _ => return inval(c"unknown connection attribute"),
            }
        }
        c.not_ready = reason.map(|r| (r, side));
        Ok(c)
    }
}

// Every attribute set that names a connection numbers its four key attributes
// consecutively, in this order: [`put_key`] and [`key_attr`] rely on it.
const _: () = {
    let sets = [
        (
            attr::OWNER_ADDR,
            attr::OWNER_PORT,
            attr::CLIENT_ADDR,
            attr::CLIENT_PORT,
        ),
        (
            conn_attr::OWNER_ADDR,
            conn_attr::OWNER_PORT,
            conn_attr::CLIENT_ADDR,
            conn_attr::CLIENT_PORT,
        ),
        (
            taken_attr::OWNER_ADDR,
            taken_attr::OWNER_PORT,
            taken_attr::CLIENT_ADDR,
            taken_attr::CLIENT_PORT,
        ),
        (
            directive_attr::OWNER_ADDR,
            directive_attr::OWNER_PORT,
            directive_attr::CLIENT_ADDR,
            directive_attr::CLIENT_PORT,
        ),
    ];
    let mut i = 0;
    while i < sets.len() {
        let (oa, op, ca, cp) = sets[i];
        assert!(op == oa + 1 && ca == oa + 2 && cp == oa + 3);
        i += 1;
    }
};

/// Writes a connection's key: owner address, owner port, client address and client port as
/// the attributes numbered from `first`.
pub(crate) fn put_key(w: &mut Writer<'_>, first: u16, k: &FlowKey) -> Result<(), Error> {
    w.put(first, &k.owner_addr.0)?;
    w.put_u16(first + 1, k.owner_port)?;
    w.put(first + 2, &k.client_addr.0)?;
    w.put_u16(first + 3, k.client_port)
}

/// Stores `a` in `k` when it is one of the key attributes numbered from `first` (see
/// [`put_key`]); returns its position among them (0 to 3), `None` for another attribute.
pub(crate) fn key_attr(a: &Attr<'_>, first: u16, k: &mut FlowKey) -> Result<Option<u16>, Error> {
    let Some(i) = a.kind.checked_sub(first).filter(|i| *i < 4) else {
        return Ok(None);
    };
    match i {
        0 => k.owner_addr = addr(a)?,
        1 => k.owner_port = a.u16()?,
        2 => k.client_addr = addr(a)?,
        _ => k.client_port = a.u16()?,
    }
    Ok(Some(i))
}

fn addr(a: &Attr<'_>) -> Result<Addr, Error> {
    Ok(Addr(
        a.data
            .try_into()
            .or_else(|_| inval(c"address must be 16 bytes"))?,
    ))
}

fn parse_half(a: &Attr<'_>) -> Result<HalfInfo, Error> {
    let mut h = HalfInfo::default();
    let (mut tsval, mut tsecr) = (None, None);
    let mut seen = Seen::default();
    for a in a.nested() {
        let a = a?;
        seen.once(a.kind)?;
        match a.kind {
            half_attr::ISN => h.isn = a.u32()?,
            half_attr::NXT => h.nxt = a.u32()?,
            half_attr::UNA => h.una = a.u32()?,
            half_attr::WIN => h.win = a.u32()?,
            half_attr::MAX_WIN => h.max_win = a.u32()?,
            half_attr::WSCALE => h.wscale = a.u8()?,
            half_attr::MSS => h.mss = Some(a.u16()?),
            half_attr::SYN_WIN => h.syn_win = a.u16()?,
            half_attr::TSVAL => tsval = Some(a.u32()?),
            half_attr::TSECR => tsecr = Some(a.u32()?),
            half_attr::FIN => h.fin = Some(a.u32()?),
            half_attr::HELD => h.held = a.u32()?,
            half_attr::SEGS => h.segs = a.u64()?,
            half_attr::BYTES => h.bytes = a.u64()?,
            half_attr::DATA_START => h.data_start = a.u32()?,
            half_attr::WIN_SEQ => h.win_seq = a.u32()?,
            _ => return inval(c"unknown connection direction attribute"),
        }
    }
    h.ts = tsval.zip(tsecr);
    Ok(h)
}

/// Snooping counters and limits, as reported.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StatsInfo {
    /// Snooped device, 0 when not snooping.
    pub ifindex: u32,
    /// Mirrored connections.
    pub conns: u32,
    /// Connection limit.
    pub max_conns: u32,
    /// Retained bytes (allocated).
    pub bytes: u64,
    /// Byte limit.
    pub max_bytes: u64,
    /// Snooped bindings.
    pub bindings: u32,
    /// Counters.
    pub counters: Counters,
    /// Chunks the allocator failed to provide.
    pub alloc_failed: u64,
    /// Nanoseconds spent in the hook.
    pub hook_ns: u64,
    /// Frames the hook processed.
    pub hook_frames: u64,
    /// Frames the mirror keeps itself (views), instead of a clone.
    pub frames_kept: u64,
    /// Resets this host's stack sent for mirrored connections, dropped.
    pub rst_dropped: u64,
    /// Frames for another node's MAC delivered to this host's stack (connections taken over
    /// here while another node answers ARP for their address).
    pub steered: u64,
    /// Connections of this node's bindings that peers serve (RECOVERY), followed here.
    pub handed: u64,
    /// SYNs refused because they would reuse a connection a peer serves.
    pub syn_refused: u64,
    /// Chunks that are views of received frames, now.
    pub views: u64,
    /// Nanoseconds Linux conntrack spent on the frames timed by `permtcp.ctprobe`.
    pub ct_ns: u64,
    /// Frames whose conntrack work `permtcp.ctprobe` timed.
    pub ct_frames: u64,
}

macro_rules! counter_attrs {
    ($($field:ident => $attr:ident),* $(,)?) => {
        fn put_counters(w: &mut Writer<'_>, c: &Counters) -> Result<(), Error> {
            $(w.put_u64(stats_attr::$attr, c.$field)?;)*
            Ok(())
        }
        fn get_counter(c: &mut Counters, a: &Attr<'_>) -> Result<bool, Error> {
            match a.kind {
                $(stats_attr::$attr => c.$field = a.u64()?,)*
                _ => return Ok(false),
            }
            Ok(true)
        }
    };
}

counter_attrs! {
    frames => FRAMES,
    not_tcp => NOT_TCP,
    fragments => FRAGMENTS,
    malformed => MALFORMED,
    bad_csum => BAD_CSUM,
    matched => MATCHED,
    conns_synced => SYNCED,
    conns_unsynced => UNSYNCED,
    conn_limit => CONN_LIMIT,
    byte_limit => BYTE_LIMIT,
    resets => RESETS,
    expired => EXPIRED,
    tw_reused => TW_REUSED,
    invalid => INVALID,
    syn_timeouts => SYN_TIMEOUTS,
    idle_timeouts => IDLE_TIMEOUTS,
    early_drops => EARLY_DROPS,
    syn_reserved => SYN_RESERVED,
}

impl StatsInfo {
    /// Writes a nested [`attr::STATS`].
    pub fn write(&self, w: &mut Writer<'_>) -> Result<(), Error> {
        let nest = w.nest_start(attr::STATS)?;
        w.put_u32(stats_attr::IFINDEX, self.ifindex)?;
        w.put_u32(stats_attr::CONNS, self.conns)?;
        w.put_u32(stats_attr::MAX_CONNS, self.max_conns)?;
        w.put_u64(stats_attr::BYTES, self.bytes)?;
        w.put_u64(stats_attr::MAX_BYTES, self.max_bytes)?;
        w.put_u32(stats_attr::BINDINGS, self.bindings)?;
        put_counters(w, &self.counters)?;
        w.put_u64(stats_attr::ALLOC_FAILED, self.alloc_failed)?;
        w.put_u64(stats_attr::HOOK_NS, self.hook_ns)?;
        w.put_u64(stats_attr::HOOK_FRAMES, self.hook_frames)?;
        w.put_u64(stats_attr::FRAMES_KEPT, self.frames_kept)?;
        w.put_u64(stats_attr::RST_DROPPED, self.rst_dropped)?;
        w.put_u64(stats_attr::STEERED, self.steered)?;
        w.put_u64(stats_attr::HANDED, self.handed)?;
        w.put_u64(stats_attr::SYN_REFUSED, self.syn_refused)?;
        w.put_u64(stats_attr::VIEWS, self.views)?;
        w.put_u64(stats_attr::CT_NS, self.ct_ns)?;
        w.put_u64(stats_attr::CT_FRAMES, self.ct_frames)?;
        w.nest_end(nest)
    }

    /// Parses the payload of an [`attr::STATS`].
    pub fn parse(payload: &[u8]) -> Result<Self, Error> {
        let mut s = StatsInfo::default();
        let mut seen = Seen::default();
        for a in Attrs::new(payload) {
            let a = a?;
            seen.once(a.kind)?;
            if get_counter(&mut s.counters, &a)? {
                continue;
            }
            match a.kind {
                stats_attr::IFINDEX => s.ifindex = a.u32()?,
                stats_attr::CONNS => s.conns = a.u32()?,
                stats_attr::MAX_CONNS => s.max_conns = a.u32()?,
                stats_attr::BYTES => s.bytes = a.u64()?,
                stats_attr::MAX_BYTES => s.max_bytes = a.u64()?,
                stats_attr::BINDINGS => s.bindings = a.u32()?,
                stats_attr::ALLOC_FAILED => s.alloc_failed = a.u64()?,
                stats_attr::HOOK_NS => s.hook_ns = a.u64()?,
                stats_attr::HOOK_FRAMES => s.hook_frames = a.u64()?,
                stats_attr::FRAMES_KEPT => s.frames_kept = a.u64()?,
                stats_attr::RST_DROPPED => s.rst_dropped = a.u64()?,
                stats_attr::STEERED => s.steered = a.u64()?,
                stats_attr::HANDED => s.handed = a.u64()?,
                stats_attr::SYN_REFUSED => s.syn_refused = a.u64()?,
                stats_attr::VIEWS => s.views = a.u64()?,
                stats_attr::CT_NS => s.ct_ns = a.u64()?,
                stats_attr::CT_FRAMES => s.ct_frames = a.u64()?,
                _ => return inval(c"unknown statistics attribute"),
            }
        }
        Ok(s)
    }
}

// The requests of the snooping and takeover commands live with every other operation in
// `ops.rs`; these names stay for the callers that predate it.
pub use super::ops::{DataRequest, DirectiveRequest, StartRequest, DIRECTIVE_MAGIC};

/// Parses a SNOOP_START request: [`StartRequest::parse`].
pub fn parse_start_request(payload: &[u8]) -> Result<StartRequest, Error> {
    StartRequest::parse(payload)
}

/// Parses a CONN_DATA_GET request: [`DataRequest::parse`].
pub fn parse_data_request(payload: &[u8]) -> Result<DataRequest, Error> {
    DataRequest::parse(payload)
}

/// A taken-over connection, as reported by TAKEN_GET.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TakenInfo {
    /// Its identity.
    pub key: FlowKey,
    /// Stream offset of the next byte the application sends.
    pub sent_offset: u32,
    /// Stream offset of the first client byte the application reads.
    pub recv_offset: u32,
    /// Stream offset of the first kept sent byte.
    pub data_offset: u32,
    /// Kept sent bytes (ending at `sent_offset`).
    pub data_len: u32,
    /// Received data delivered again (the declared policy).
    pub rx_deliver: bool,
    /// Milliseconds since the takeover.
    pub age_ms: u64,
    /// The declared received-data policy ([`super::uapi::rxdata`]); 0 when not reported.
    pub rx_policy: u8,
    /// The cookie of the socket it was given (`SO_COOKIE`); 0 when not reported.
    pub cookie: u64,
}

impl TakenInfo {
    /// Writes a nested [`attr::TAKEN_CONN`].
    pub fn write(&self, w: &mut Writer<'_>) -> Result<(), Error> {
        let nest = w.nest_start(attr::TAKEN_CONN)?;
        put_key(w, taken_attr::OWNER_ADDR, &self.key)?;
        w.put_u32(taken_attr::SENT_OFFSET, self.sent_offset)?;
        w.put_u32(taken_attr::RECV_OFFSET, self.recv_offset)?;
        w.put_u32(taken_attr::DATA_OFFSET, self.data_offset)?;
        w.put_u32(taken_attr::DATA_LEN, self.data_len)?;
        if self.rx_deliver {
            w.put_flag(taken_attr::RX_DELIVER)?;
        }
        w.put_u64(taken_attr::AGE_MS, self.age_ms)?;
        if self.rx_policy != 0 {
            w.put_u8(taken_attr::RX_POLICY, self.rx_policy)?;
        }
        if self.cookie != 0 {
            w.put_u64(taken_attr::COOKIE, self.cookie)?;
        }
        w.nest_end(nest)
    }

    /// Parses the payload of an [`attr::TAKEN_CONN`].
    pub fn parse(payload: &[u8]) -> Result<Self, Error> {
        let mut t = TakenInfo::default();
        let mut seen = Seen::default();
        for a in Attrs::new(payload) {
            let a = a?;
            seen.once(a.kind)?;
            if key_attr(&a, taken_attr::OWNER_ADDR, &mut t.key)?.is_some() {
                continue;
            }
            match a.kind {
                taken_attr::SENT_OFFSET => t.sent_offset = a.u32()?,
                taken_attr::RECV_OFFSET => t.recv_offset = a.u32()?,
                taken_attr::DATA_OFFSET => t.data_offset = a.u32()?,
                taken_attr::DATA_LEN => t.data_len = a.u32()?,
                taken_attr::RX_DELIVER => {
                    a.flag()?;
                    t.rx_deliver = true;
                }
                taken_attr::AGE_MS => t.age_ms = a.u64()?,
                taken_attr::RX_POLICY => t.rx_policy = a.u8()?,
                taken_attr::COOKIE => t.cookie = a.u64()?,
                _ => return inval(c"unknown taken-connection attribute"),
            }
        }
        Ok(t)
    }
}

/// A connection handed to the next peer by a fail-over directive.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DirectiveInfo {
    /// The connection.
    pub key: FlowKey,
    /// The peer it goes to.
    pub next: u32,
}

impl DirectiveInfo {
    /// Writes a nested [`attr::DIRECTIVE`].
    pub fn write(&self, w: &mut Writer<'_>) -> Result<(), Error> {
        let nest = w.nest_start(attr::DIRECTIVE)?;
        put_key(w, directive_attr::OWNER_ADDR, &self.key)?;
        w.put_u32(directive_attr::NEXT_NODE, self.next)?;
        w.nest_end(nest)
    }

    /// Parses the payload of an [`attr::DIRECTIVE`] strictly: both addresses, both ports and
    /// the next node, once each.
    pub fn parse(payload: &[u8]) -> Result<Self, Error> {
        let mut d = DirectiveInfo::default();
        let mut seen = Seen::default();
        for a in Attrs::new(payload) {
            let a = a?;
            seen.once(a.kind)?;
            if key_attr(&a, directive_attr::OWNER_ADDR, &mut d.key)?.is_some() {
                continue;
            }
            match a.kind {
                directive_attr::NEXT_NODE => d.next = a.u32()?,
                _ => return inval(c"unknown directive attribute"),
            }
        }
        if !seen.all(&[
            directive_attr::OWNER_ADDR,
            directive_attr::OWNER_PORT,
            directive_attr::CLIENT_ADDR,
            directive_attr::CLIENT_PORT,
            directive_attr::NEXT_NODE,
        ]) {
            return inval(c"a directive needs both addresses, both ports and the next node");
        }
        Ok(d)
    }
}
