// SPDX-License-Identifier: GPL-2.0

//! Planned live handoff (Documentation/handoff.rst): the established connections of a
//! binding move from the node serving them to a peer that mirrors them, with no reset and no
//! byte lost or repeated.
//!
//! Three requests, each to one node's kernel:
//! 1. `HANDOFF_HOLD` on the serving node: each connection whose application's bytes are all
//!    on the wire is *held* (its output dropped from then on, so that what the link saw of
//!    it is final) and reported with its sequence numbers ([`HandoffConn`]).
//! 2. `HANDOFF_TAKE` on the peer: each held connection is taken over from the mirror when
//!    [`check`] finds the mirror ready and level with what the serving node sent.
//! 3. `HANDOFF_DONE` on the serving node: the connections taken are aborted silently and
//!    followed until they end (as owner recovery follows the connections peers serve); the
//!    others are released and resume as if nothing happened (a held connection lost at most
//!    some segments, which TCP sends again).
//!
//! This file holds the messages' attributes and the peer's decision; both ends build them
//! from the same code.

use super::decl::RxPolicy;
use super::errno::{code, inval, Error};
use super::nla::{Attrs, Seen, Writer};
use super::ops::{require, List, Listed};
use super::packet::Addr;
use super::resume::resume;
use super::seq::{self, Seq};
use super::seqbuf::ChunkAlloc;
use super::snoop::FlowKey;
use super::snoopnl::{key_attr, put_key};
use super::track::{Conn, Side, State};
use super::uapi::{attr, handoff_attr, handoff_status as status};

/// The most connections one request holds or lists (about 24 KiB of attributes: a reply
/// stays within the 32 KiB neli, and many netlink users, read at once).
pub const HANDOFF_BATCH: usize = 256;

/// The most connections held on one node at a time.
pub const MAX_HELD: usize = 16384;

/// One connection of a planned handoff: its key, where the serving node's socket stood when
/// it was held, and its status ([`super::uapi::handoff_status`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HandoffConn {
    /// The connection.
    pub key: FlowKey,
    /// The serving node's next sequence number to send.
    pub snd_nxt: Seq,
    /// Its oldest unacknowledged sequence number.
    pub snd_una: Seq,
    /// Its next sequence number expected from the client.
    pub rcv_nxt: Seq,
    /// Where the connection stands.
    pub status: u8,
}

impl HandoffConn {
    /// Writes the connection as one nested [`attr::HANDOFF`].
    pub fn write(&self, w: &mut Writer<'_>) -> Result<(), Error> {
        let nest = w.nest_start(attr::HANDOFF)?;
        put_key(w, handoff_attr::OWNER_ADDR, &self.key)?;
        w.put_u32(handoff_attr::SND_NXT, self.snd_nxt)?;
        w.put_u32(handoff_attr::SND_UNA, self.snd_una)?;
        w.put_u32(handoff_attr::RCV_NXT, self.rcv_nxt)?;
        w.put_u8(handoff_attr::STATUS, self.status)?;
        w.nest_end(nest)
    }
}

impl Listed for HandoffConn {
    const ATTR: u16 = attr::HANDOFF;

    /// Parses one connection strictly: every attribute once, all of them, a known status.
    fn parse_item(payload: &[u8]) -> Result<Self, Error> {
        let mut c = HandoffConn::default();
        let mut seen = Seen::default();
        for a in Attrs::new(payload) {
            let a = a?;
            seen.once(a.kind)?;
            if key_attr(&a, handoff_attr::OWNER_ADDR, &mut c.key)?.is_some() {
                continue;
            }
            match a.kind {
                handoff_attr::SND_NXT => c.snd_nxt = a.u32()?,
                handoff_attr::SND_UNA => c.snd_una = a.u32()?,
                handoff_attr::RCV_NXT => c.rcv_nxt = a.u32()?,
                handoff_attr::STATUS => c.status = a.u8()?,
                _ => return inval(c"unknown attribute in a handoff connection"),
            }
        }
        require(
            &seen,
            &[
                handoff_attr::OWNER_ADDR,
                handoff_attr::OWNER_PORT,
                handoff_attr::CLIENT_ADDR,
                handoff_attr::CLIENT_PORT,
                handoff_attr::SND_NXT,
                handoff_attr::SND_UNA,
                handoff_attr::RCV_NXT,
                handoff_attr::STATUS,
            ],
            c"a handoff connection needs its key, sequence numbers and status",
        )?;
        if !(status::HELD..=status::GONE).contains(&c.status) {
            return inval(c"unknown handoff status");
        }
        Ok(c)
    }
}

/// HANDOFF_HOLD request: the binding whose connections are held, and at most how many.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HoldRequest {
    /// [`attr::OWNER_ADDR`]: the service address.
    pub addr: Addr,
    /// [`attr::OWNER_PORT`]: the service port.
    pub port: u16,
    /// [`attr::MAX_CONNS`]: at most this many (1 to [`HANDOFF_BATCH`]; default the
    /// latter).
    pub max: Option<u32>,
}

impl HoldRequest {
    /// Its command.
    pub const CMD: u8 = super::uapi::cmd::HANDOFF_HOLD;

    /// Writes the binding and the limit, if given.
    pub fn write(&self, w: &mut Writer<'_>) -> Result<(), Error> {
        w.put(attr::OWNER_ADDR, &self.addr.0)?;
        w.put_u16(attr::OWNER_PORT, self.port)?;
        if let Some(m) = self.max {
            w.put_u32(attr::MAX_CONNS, m)?;
        }
        Ok(())
    }

    /// Parses a request strictly: the binding once, the limit at most once and in range.
    pub fn parse(payload: &[u8]) -> Result<Self, Error> {
        let mut r = Self::default();
        let mut seen = Seen::default();
        for a in Attrs::new(payload) {
            let a = a?;
            seen.once(a.kind)?;
            match a.kind {
                attr::OWNER_ADDR => {
                    r.addr = Addr(
                        a.data
                            .try_into()
                            .or_else(|_| inval(c"address must be 16 bytes"))?,
                    )
                }
                attr::OWNER_PORT => r.port = a.u16()?,
                attr::MAX_CONNS => {
                    let m = a.u32()?;
                    if m == 0 || m as usize > HANDOFF_BATCH {
                        return Err(Error::new(
                            code::ERANGE,
                            c"max-conns must be between 1 and 256",
                        ));
                    }
                    r.max = Some(m);
                }
                _ => return inval(c"unknown attribute in request"),
            }
        }
        require(
            &seen,
            &[attr::OWNER_ADDR, attr::OWNER_PORT],
            c"a hold needs the binding's address and port",
        )?;
        Ok(r)
    }

    /// How many connections it holds at most.
    pub fn limit(&self) -> usize {
        self.max.map_or(HANDOFF_BATCH, |m| m as usize)
    }
}

/// A list of handoff connections, with the other node: HANDOFF_HOLD's reply (no node),
/// HANDOFF_TAKE's request (the serving node) and reply (no node), HANDOFF_DONE's request
/// (the peer that took them).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Handoff<'a> {
    /// [`attr::NODE_ID`]: the other node, where the command needs one.
    pub node: Option<u32>,
    /// [`attr::PARK_MS`] (HANDOFF_TAKE): how long a connection waits for a listener.
    pub park_ms: Option<u32>,
    /// The connections, at most [`HANDOFF_BATCH`].
    pub conns: List<'a, HandoffConn>,
}

impl<'a> Handoff<'a> {
    /// Writes the node and parking time, if given, and one nest per connection.
    pub fn write(&self, w: &mut Writer<'_>) -> Result<(), Error> {
        if let Some(n) = self.node {
            w.put_u32(attr::NODE_ID, n)?;
        }
        if let Some(p) = self.park_ms {
            w.put_u32(attr::PARK_MS, p)?;
        }
        for c in self.conns.iter() {
            c.write(w)?;
        }
        Ok(())
    }

    /// Parses a message strictly: the node and parking time at most once (parking at most
    /// [`super::ops::MAX_PARK_MS`]), every connection complete, at most
    /// [`HANDOFF_BATCH`] of them, no connection twice.
    pub fn parse(payload: &'a [u8]) -> Result<Self, Error> {
        let mut r = Self::default();
        let mut count = 0usize;
        for a in Attrs::new(payload) {
            let a = a?;
            match a.kind {
                attr::NODE_ID if r.node.is_none() => r.node = Some(a.u32()?),
                attr::PARK_MS if r.park_ms.is_none() => {
                    let p = a.u32()?;
                    if p > super::ops::MAX_PARK_MS {
                        return Err(Error::new(code::ERANGE, c"park time above one hour"));
                    }
                    r.park_ms = Some(p);
                }
                attr::NODE_ID | attr::PARK_MS => return inval(c"attribute given more than once"),
                attr::HANDOFF => {
                    HandoffConn::parse_item(a.data)?;
                    count += 1;
                    if count > HANDOFF_BATCH {
                        return Err(Error::new(code::E2BIG, c"too many handoff connections"));
                    }
                }
                _ => return inval(c"unknown attribute in request"),
            }
        }
        r.conns = List::from_message(payload, count);
        // Quadratic, on at most HANDOFF_BATCH items, without allocating.
        for (i, c) in r.conns.iter().enumerate() {
            if r.conns.iter().skip(i + 1).any(|d| d.key == c.key) {
                return inval(c"a connection is listed twice");
            }
        }
        Ok(r)
    }

    /// The node, required by HANDOFF_TAKE and HANDOFF_DONE.
    pub fn need_node(&self) -> Result<u32, Error> {
        self.node.ok_or(Error::new(
            code::EINVAL,
            c"the request needs the other node's id",
        ))
    }
}

/// The peer's decision on `want`, a connection the serving node holds, from its mirror `c`
/// and the binding's received-data policy `rx`: [`status::TAKEN`] when it can be taken over
/// (the caller then rebuilds it), else why not.
///
/// A connection whose serving node was in the middle of a response (its last write not all
/// on the wire, or the client's window full) is refused: the application taking it over
/// would not know it has a response to finish, and the serving node can finish it and be
/// asked again.
///
/// The serving node's output stopped at `want.snd_nxt`: a mirror that has not seen that far
/// yet ([`status::BEHIND`]) may still see the last segments (they were on their way); one
/// that saw further ([`status::MISMATCH`]) does not describe that socket. The client's side
/// needs no such check: the mirror follows what the serving node acknowledged on the wire,
/// and the client sends again whatever the rebuilt socket does not acknowledge.
pub fn check<A: ChunkAlloc>(c: &Conn<A>, want: &HandoffConn, rx: RxPolicy) -> u8 {
    if c.readiness().is_err() {
        return status::NOT_READY;
    }
    let nxt = c.side(Side::Owner).nxt;
    if seq::before(nxt, want.snd_nxt) {
        return status::BEHIND;
    }
    if nxt != want.snd_nxt {
        return status::MISMATCH;
    }
    if resume(c, rx).mid_response.is_some() {
        return status::MID_RESPONSE;
    }
    status::TAKEN
}

/// What a node knows of one of its connections' sockets (locked), to mirror it from now on
/// without having seen its SYN: after handing it off, the node that served it mirrors it
/// (it may take it back, or over when the peer fails).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// The service end's next sequence number to send (`snd_nxt`).
    pub snd_nxt: Seq,
    /// Its oldest unacknowledged one (`snd_una`).
    pub snd_una: Seq,
    /// The next one expected from the client (`rcv_nxt`).
    pub rcv_nxt: Seq,
    /// The service end's initial sequence number (from `bytes_acked`).
    pub isn: Seq,
    /// The client's (from `bytes_received`).
    pub client_isn: Seq,
    /// The window the client last advertised, in bytes (`snd_wnd`).
    pub snd_wnd: u32,
    /// The window the service end last advertised, in bytes (`rcv_wnd`).
    pub rcv_wnd: u32,
    /// The client's MSS (`rx_opt.mss_clamp`).
    pub client_mss: u16,
    /// Window scaling: the client's shift and the service end's (`snd_wscale`,
    /// `rcv_wscale`), when negotiated.
    pub wscale: Option<(u8, u8)>,
    /// SACK was negotiated.
    pub sack: bool,
    /// Timestamps were negotiated.
    pub ts: bool,
}

/// A mirror entry for the connection of `s`, established, from now on: both ends' sequence
/// numbers anchored where the socket stood, the options of its handshake, no data retained
/// (bytes sent and not yet acknowledged are missing: not ready until the client acknowledges
/// past them, as for any hole).
pub fn seeded<A: ChunkAlloc>(s: &Snapshot, now_ms: u64) -> Conn<A> {
    let mut c = Conn::empty(Side::Client, State::Established, now_ms);
    c.ws_ok = s.wscale.is_some();
    c.sack_ok = s.sack;
    c.ts_ok = s.ts;
    let (cws, ows) = s.wscale.unzip();
    let anchor = |h: &mut super::track::Half<A>, isn: Seq, una: Seq, nxt: Seq, win: u32| {
        h.isn = isn;
        h.set_syn_seen(true);
        h.nxt = nxt;
        h.una = una;
        h.win = win;
        h.max_win = win;
        h.win_seq = una;
        h.set_anchored(true);
        h.data = super::seqbuf::SeqBuf::new(nxt);
        h.push_end = nxt;
    };
    let o = &mut c.half[Side::Owner as usize];
    anchor(o, s.isn, s.snd_una, s.snd_nxt, s.rcv_wnd);
    o.syn_opts.wscale = ows;
    o.syn_opts.sack_perm = s.sack;
    // The service end may send up to what the client allowed.
    o.right = s.snd_una.wrapping_add(s.snd_wnd.max(1));
    let cl = &mut c.half[Side::Client as usize];
    anchor(cl, s.client_isn, s.rcv_nxt, s.rcv_nxt, s.snd_wnd);
    cl.syn_opts.set_mss(Some(s.client_mss));
    cl.syn_opts.wscale = cws;
    cl.syn_opts.sack_perm = s.sack;
    cl.right = s.rcv_nxt.wrapping_add(s.rcv_wnd.max(1));
    c
}
