// SPDX-License-Identifier: GPL-2.0

//! The cluster message format.
//!
//! A datagram is a fixed 40-byte header, a body of `body_len` bytes and a 32-byte
//! HMAC-SHA256 tag over header and body (see [`crate::auth`]). Header fields and the fixed
//! fields of bodies are big-endian. Declarations and directives travel as the netlink
//! attributes `permtcp-logic` already reads and writes for the kernel ([`Declaration::write`],
//! [`DirectiveRequest::write`]), so there is no second format for them; netlink attributes are
//! in host byte order, and the module's architecture (x86-64) is little-endian.
//!
//! ```text
//!  0       4    5    6         8           12          16          20          24
//!  | magic | ver| typ| body_len| cluster id| from node | to node   | key id    |
//!  24                      32                      40
//!  | incarnation           | sequence              | body ... | tag (32) |
//! ```
//!
//! Every parser here takes hostile bytes: it returns [`Malformed`] and never panics.

use permtcp_logic::decl::{parse_add_request, Declaration};
use permtcp_logic::handoff::HandoffConn;
use permtcp_logic::nla::Writer;
use permtcp_logic::packet::Addr;
use permtcp_logic::snoop::FlowKey;
use permtcp_logic::snoopnl::DirectiveRequest;

#[cfg(target_endian = "big")]
compile_error!("permtcpd carries netlink attributes in little-endian order; big-endian hosts are not supported");

/// First bytes of every cluster datagram.
pub const MAGIC: [u8; 4] = *b"PTCD";
/// Format version this code speaks.
pub const VERSION: u8 = 2;
/// Length of the fixed header.
pub const HEADER_LEN: usize = 40;
/// Length of the HMAC-SHA256 tag.
pub const TAG_LEN: usize = 32;
/// Largest body accepted or sent.
pub const MAX_BODY: usize = 8192;
/// Largest datagram accepted or sent.
pub const MAX_DATAGRAM: usize = HEADER_LEN + MAX_BODY + TAG_LEN;
/// Most entries in a heartbeat's view (the kernel's declaration limit).
pub const MAX_VIEW: usize = permtcp_logic::decl::MAX_DECLS;

/// Why bytes are not a message; a static explanation for logs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Malformed(pub &'static str);

impl std::fmt::Display for Malformed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}

/// Message types.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Kind {
    /// A node's ownership declaration (Hello when solicited).
    Declaration = 1,
    /// Liveness and the sender's view of the cluster.
    Heartbeat = 2,
    /// A vote that a node is suspected down, or a verdict that it is.
    NodeDown = 3,
    /// A fail-over directive: one connection to take over.
    Directive = 4,
    /// Acknowledgement of a directive.
    Ack = 5,
    /// The sender took a node over on its HA engine's word (keepalived): take over too.
    Failover = 6,
    /// Owner recovery: the connections of the receiver's bindings the sender serves.
    Recovery = 7,
    /// Acknowledgement of a recovery list.
    RecoveryAck = 8,
    /// Planned handoff: connections the sender holds, for the receiver to take.
    Handoff = 9,
    /// Planned handoff: what the sender did with a [`Kind::Handoff`] part.
    HandoffResult = 10,
}

impl Kind {
    fn from_u8(v: u8) -> Option<Self> {
        Some(match v {
            1 => Kind::Declaration,
            2 => Kind::Heartbeat,
            3 => Kind::NodeDown,
            4 => Kind::Directive,
            5 => Kind::Ack,
            6 => Kind::Failover,
            7 => Kind::Recovery,
            8 => Kind::RecoveryAck,
            9 => Kind::Handoff,
            10 => Kind::HandoffResult,
            _ => return None,
        })
    }
}

/// The fixed header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// Message type.
    pub kind: Kind,
    /// Cluster the message belongs to.
    pub cluster: u32,
    /// Sending node.
    pub from: u32,
    /// Node the message is for (every message is addressed to one node).
    pub to: u32,
    /// Id of the key whose tag follows the body.
    pub key_id: u32,
    /// The sender's incarnation (grows at every start of its daemon); non-zero.
    pub incarnation: u64,
    /// Per-incarnation sequence number of the sender; non-zero.
    pub seq: u64,
}

fn be32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

fn be64(b: &[u8]) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[..8]);
    u64::from_be_bytes(a)
}

impl Header {
    /// Writes the header for a body of `body_len` bytes.
    pub fn write(&self, body_len: usize, out: &mut Vec<u8>) {
        out.extend_from_slice(&MAGIC);
        out.push(VERSION);
        out.push(self.kind as u8);
        out.extend_from_slice(&(body_len as u16).to_be_bytes());
        out.extend_from_slice(&self.cluster.to_be_bytes());
        out.extend_from_slice(&self.from.to_be_bytes());
        out.extend_from_slice(&self.to.to_be_bytes());
        out.extend_from_slice(&self.key_id.to_be_bytes());
        out.extend_from_slice(&self.incarnation.to_be_bytes());
        out.extend_from_slice(&self.seq.to_be_bytes());
    }
}

/// A datagram cut into its parts, before the tag is checked.
#[derive(Clone, Copy, Debug)]
pub struct Frame<'a> {
    /// The parsed header.
    pub header: Header,
    /// Header and body: the bytes the tag covers.
    pub signed: &'a [u8],
    /// The body.
    pub body: &'a [u8],
    /// The tag.
    pub tag: &'a [u8],
}

/// Splits a datagram: magic, version, type, lengths and non-zero fields are checked; the
/// tag is not.
pub fn split(d: &[u8]) -> Result<Frame<'_>, Malformed> {
    if d.len() < HEADER_LEN + TAG_LEN {
        return Err(Malformed("shorter than header and tag"));
    }
    if d.len() > MAX_DATAGRAM {
        return Err(Malformed("datagram too long"));
    }
    if d[..4] != MAGIC {
        return Err(Malformed("bad magic"));
    }
    if d[4] != VERSION {
        return Err(Malformed("unsupported version"));
    }
    let kind = Kind::from_u8(d[5]).ok_or(Malformed("unknown message type"))?;
    let body_len = u16::from_be_bytes([d[6], d[7]]) as usize;
    if HEADER_LEN + body_len + TAG_LEN != d.len() {
        return Err(Malformed("body length does not match the datagram"));
    }
    let header = Header {
        kind,
        cluster: be32(&d[8..]),
        from: be32(&d[12..]),
        to: be32(&d[16..]),
        key_id: be32(&d[20..]),
        incarnation: be64(&d[24..]),
        seq: be64(&d[32..]),
    };
    if header.from == 0 || header.to == 0 || header.incarnation == 0 || header.seq == 0 {
        return Err(Malformed("zero node id, incarnation or sequence number"));
    }
    let end = HEADER_LEN + body_len;
    Ok(Frame {
        header,
        signed: &d[..end],
        body: &d[HEADER_LEN..end],
        tag: &d[end..],
    })
}

/// A node's state in a sender's view.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum NodeState {
    /// Heard within the dead time.
    Alive = 1,
    /// Not heard for the dead time: a vote that it is down.
    Suspect = 2,
    /// Declared down (a verdict).
    Down = 3,
    /// Not heard yet, within the grace period after the sender's start: no vote.
    Unknown = 4,
}

/// One node in a heartbeat's view.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ViewEntry {
    /// The node.
    pub node: u32,
    /// Its incarnation as the sender knows it (0: never heard).
    pub incarnation: u64,
    /// Its state.
    pub state: NodeState,
    /// The sequence number of the latest message the sender accepted from it in that
    /// incarnation (0: none, and always 0 for the sender itself). Echoed back to a node, it
    /// tells the node when the sender last heard it, in the node's own clock: the lease
    /// (Documentation/cluster.rst, "Fencing and the lease").
    pub heard_seq: u64,
}

/// Heartbeat flag: the sender has quorum.
pub const HB_QUORUM: u8 = 1;
/// Heartbeat flag: the sender renews its lease.
pub const HB_LEASE: u8 = 2;

/// A heartbeat: the sender's flags, the version of its declaration and its view.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Heartbeat {
    /// [`HB_QUORUM`], [`HB_LEASE`].
    pub flags: u8,
    /// Version of the sender's declaration in this incarnation (0: none).
    pub decl_version: u32,
    /// The sender's view of every declared node, itself included.
    pub view: Vec<ViewEntry>,
}

/// A vote (`verdict == false`) or a verdict that `node` in `incarnation` is down.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NodeDown {
    /// The node.
    pub node: u32,
    /// Its incarnation as the sender knows it (0: never heard).
    pub incarnation: u64,
    /// A verdict rather than a vote.
    pub verdict: bool,
}

/// A fail-over directive: the kernel's DIRECTIVE request, to the node named in the header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Directive {
    /// Sender-chosen id, the same in retransmissions; acknowledged by [`Ack`].
    pub id: u64,
    /// The request: failed node, connection, parking time.
    pub req: DirectiveRequest,
}

/// What became of a directive.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum AckResult {
    /// Taken over (or waiting for a listener).
    Taken = 1,
    /// Not ready here: passed on to the next peer.
    PassedOn = 2,
    /// No peer can take it: reset.
    Reset = 3,
    /// The kernel failed to take it over or refused the directive.
    Failed = 4,
}

/// Acknowledgement of the directive `id`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ack {
    /// The directive's id.
    pub id: u64,
    /// Its outcome.
    pub result: AckResult,
}

/// The sender took `node` over because its HA engine (keepalived) gave it the node's
/// address: every receiver takes over its own share of `node`'s connections (so that it
/// can act on the sender's directives), without assuming the address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Failover {
    /// The failed owner.
    pub node: u32,
}

/// Most connections in one [`Recovery`] part (36 bytes each: within [`MAX_BODY`]).
pub const RECOVERY_PART: usize = 200;

/// Owner recovery: part `part` of `parts` of the list of the connections of the receiver's
/// bindings the sender still serves (its owner-recovery directive), for the receiver in
/// incarnation `incarnation`. An empty list (one part, no connection) says "none": the
/// receiver knows it heard from every peer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Recovery {
    /// The list's id (per sender; a newer list replaces an older one).
    pub id: u64,
    /// The receiver's incarnation the list is for.
    pub incarnation: u64,
    /// This part, from 0.
    pub part: u16,
    /// Parts of the list, at least 1.
    pub parts: u16,
    /// The connections in this part, at most [`RECOVERY_PART`].
    pub served: Vec<FlowKey>,
}

/// The receiver's recovery list `id` was installed in the sender's kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecoveryAck {
    /// The list's id.
    pub id: u64,
}

/// Most connections in one [`HandoffPart`] (52 bytes each: within [`MAX_BODY`]).
pub const HANDOFF_PART: usize = 128;

/// Planned handoff (Documentation/handoff.rst, "Through permtcpd"): part `part` of `parts`
/// of handoff `id`, for the receiver in incarnation `incarnation`. As [`Kind::Handoff`]
/// (serving node to peer): connections the sender holds, status held, for the receiver to
/// take. As [`Kind::HandoffResult`] (peer to serving node): the same part's connections, each
/// with what became of it (taken, a refusal, or held: not known, perhaps taken).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HandoffPart {
    /// The handoff's id (per serving node and incarnation).
    pub id: u64,
    /// The receiver's incarnation the part is for.
    pub incarnation: u64,
    /// This part, from 0.
    pub part: u16,
    /// Parts of the handoff, at least 1.
    pub parts: u16,
    /// The connections in this part, at most [`HANDOFF_PART`].
    pub conns: Vec<HandoffConn>,
}

/// The statuses a handoff connection may have on the wire.
const HANDOFF_STATUSES: std::ops::RangeInclusive<u8> =
    permtcp_logic::uapi::handoff_status::HELD..=permtcp_logic::uapi::handoff_status::GONE;

/// Declaration flag: the sender asks for the receiver's declaration.
pub const DECL_SOLICIT: u8 = 1;

/// A message body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Body {
    /// A node's own declaration (`local` cleared), with the solicit flag.
    Declaration {
        /// Asks the receiver to answer with its own declaration.
        solicit: bool,
        /// Version of the declaration in the sender's incarnation.
        version: u32,
        /// The declaration; its node id is the sender's.
        decl: Box<Declaration>,
    },
    /// See [`Heartbeat`].
    Heartbeat(Heartbeat),
    /// See [`NodeDown`].
    NodeDown(NodeDown),
    /// See [`Directive`].
    Directive(Directive),
    /// See [`Ack`].
    Ack(Ack),
    /// See [`Failover`].
    Failover(Failover),
    /// See [`Recovery`].
    Recovery(Recovery),
    /// See [`RecoveryAck`].
    RecoveryAck(RecoveryAck),
    /// See [`HandoffPart`]: connections held, to take.
    Handoff(HandoffPart),
    /// See [`HandoffPart`]: what became of them.
    HandoffResult(HandoffPart),
}

/// Runs a netlink attribute writer into a fresh buffer.
fn attrs(
    f: impl FnOnce(&mut Writer<'_>) -> Result<(), permtcp_logic::errno::Error>,
) -> Result<Vec<u8>, Malformed> {
    let mut buf = vec![0u8; MAX_BODY];
    let mut w = Writer::new(&mut buf);
    f(&mut w).map_err(|e| Malformed(e.text()))?;
    let n = w.len();
    buf.truncate(n);
    Ok(buf)
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], Malformed> {
        if self.0.len() < n {
            return Err(Malformed("body too short"));
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Ok(a)
    }
    fn u8(&mut self) -> Result<u8, Malformed> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> Result<u16, Malformed> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }
    fn u32(&mut self) -> Result<u32, Malformed> {
        Ok(be32(self.take(4)?))
    }
    fn u64(&mut self) -> Result<u64, Malformed> {
        Ok(be64(self.take(8)?))
    }
    /// A connection's key: owner and client addresses, then their ports.
    fn key(&mut self) -> Result<FlowKey, Malformed> {
        Ok(FlowKey {
            owner_addr: Addr(self.take(16)?.try_into().unwrap()),
            client_addr: Addr(self.take(16)?.try_into().unwrap()),
            owner_port: self.u16()?,
            client_port: self.u16()?,
        })
    }
    /// The head of a list in parts ([`put_part_head`]): id, incarnation, part, parts and
    /// the count, at most `max`.
    fn part_head(&mut self, max: usize) -> Result<(u64, u64, u16, u16, usize), Malformed> {
        let id = self.u64()?;
        let incarnation = self.u64()?;
        let part = self.u16()?;
        let parts = self.u16()?;
        let n = usize::from(self.u16()?);
        if self.take(2)? != [0; 2] || parts == 0 || part >= parts || n > max {
            return Err(Malformed("part out of range"));
        }
        Ok((id, incarnation, part, parts, n))
    }
    fn end(&self) -> Result<(), Malformed> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(Malformed("trailing bytes in body"))
        }
    }
}

/// The head of a list in parts: its id, the receiver's incarnation, the part, the parts, the
/// count of items in this part and two reserved bytes.
fn put_part_head(out: &mut Vec<u8>, id: u64, inc: u64, part: u16, parts: u16, n: usize) {
    out.extend_from_slice(&id.to_be_bytes());
    out.extend_from_slice(&inc.to_be_bytes());
    out.extend_from_slice(&part.to_be_bytes());
    out.extend_from_slice(&parts.to_be_bytes());
    out.extend_from_slice(&(n as u16).to_be_bytes());
    out.extend_from_slice(&[0; 2]);
}

/// A connection's key, as [`Reader::key`] reads it.
fn put_key(out: &mut Vec<u8>, k: &FlowKey) {
    out.extend_from_slice(&k.owner_addr.0);
    out.extend_from_slice(&k.client_addr.0);
    out.extend_from_slice(&k.owner_port.to_be_bytes());
    out.extend_from_slice(&k.client_port.to_be_bytes());
}

impl Body {
    /// The message type of this body.
    pub fn kind(&self) -> Kind {
        match self {
            Body::Declaration { .. } => Kind::Declaration,
            Body::Heartbeat(_) => Kind::Heartbeat,
            Body::NodeDown(_) => Kind::NodeDown,
            Body::Directive(_) => Kind::Directive,
            Body::Ack(_) => Kind::Ack,
            Body::Failover(_) => Kind::Failover,
            Body::Recovery(_) => Kind::Recovery,
            Body::RecoveryAck(_) => Kind::RecoveryAck,
            Body::Handoff(_) => Kind::Handoff,
            Body::HandoffResult(_) => Kind::HandoffResult,
        }
    }

    /// Encodes the body.
    pub fn encode(&self) -> Result<Vec<u8>, Malformed> {
        let mut out = Vec::new();
        match self {
            Body::Declaration {
                solicit,
                version,
                decl,
            } => {
                out.push(if *solicit { DECL_SOLICIT } else { 0 });
                out.extend_from_slice(&[0; 3]);
                out.extend_from_slice(&version.to_be_bytes());
                let mut d = **decl;
                d.local = false;
                out.extend(attrs(|w| d.write(w))?);
            }
            Body::Heartbeat(h) => {
                if h.view.len() > MAX_VIEW {
                    return Err(Malformed("view has too many nodes"));
                }
                out.push(h.flags);
                out.push(h.view.len() as u8);
                out.extend_from_slice(&[0; 2]);
                out.extend_from_slice(&h.decl_version.to_be_bytes());
                for e in &h.view {
                    out.extend_from_slice(&e.node.to_be_bytes());
                    out.push(e.state as u8);
                    out.extend_from_slice(&[0; 3]);
                    out.extend_from_slice(&e.incarnation.to_be_bytes());
                    out.extend_from_slice(&e.heard_seq.to_be_bytes());
                }
            }
            Body::NodeDown(n) => {
                out.extend_from_slice(&n.node.to_be_bytes());
                out.push(u8::from(n.verdict));
                out.extend_from_slice(&[0; 3]);
                out.extend_from_slice(&n.incarnation.to_be_bytes());
            }
            Body::Directive(d) => {
                out.extend_from_slice(&d.id.to_be_bytes());
                out.extend(attrs(|w| d.req.write(w))?);
            }
            Body::Ack(a) => {
                out.extend_from_slice(&a.id.to_be_bytes());
                out.push(a.result as u8);
                out.extend_from_slice(&[0; 3]);
            }
            Body::Failover(f) => {
                out.extend_from_slice(&f.node.to_be_bytes());
                out.extend_from_slice(&[0; 4]);
            }
            Body::Recovery(r) => {
                if r.served.len() > RECOVERY_PART || r.parts == 0 || r.part >= r.parts {
                    return Err(Malformed("recovery part out of range"));
                }
                put_part_head(
                    &mut out,
                    r.id,
                    r.incarnation,
                    r.part,
                    r.parts,
                    r.served.len(),
                );
                for k in &r.served {
                    put_key(&mut out, k);
                }
            }
            Body::RecoveryAck(a) => out.extend_from_slice(&a.id.to_be_bytes()),
            Body::Handoff(h) | Body::HandoffResult(h) => {
                if h.conns.len() > HANDOFF_PART || h.parts == 0 || h.part >= h.parts {
                    return Err(Malformed("handoff part out of range"));
                }
                put_part_head(
                    &mut out,
                    h.id,
                    h.incarnation,
                    h.part,
                    h.parts,
                    h.conns.len(),
                );
                for c in &h.conns {
                    if !HANDOFF_STATUSES.contains(&c.status) {
                        return Err(Malformed("unknown handoff status"));
                    }
                    put_key(&mut out, &c.key);
                    out.extend_from_slice(&c.snd_nxt.to_be_bytes());
                    out.extend_from_slice(&c.snd_una.to_be_bytes());
                    out.extend_from_slice(&c.rcv_nxt.to_be_bytes());
                    out.push(c.status);
                    out.extend_from_slice(&[0; 3]);
                }
            }
        }
        if out.len() > MAX_BODY {
            return Err(Malformed("body too long"));
        }
        Ok(out)
    }

    /// Parses the body of a message of type `kind`.
    pub fn parse(kind: Kind, b: &[u8]) -> Result<Self, Malformed> {
        let mut r = Reader(b);
        let body = match kind {
            Kind::Declaration => {
                let flags = r.u8()?;
                if flags & !DECL_SOLICIT != 0 || r.take(3)? != [0; 3] {
                    return Err(Malformed("unknown declaration flags"));
                }
                let version = r.u32()?;
                let decl =
                    parse_add_request(r.take(r.0.len())?).map_err(|e| Malformed(e.text()))?;
                if decl.local {
                    return Err(Malformed("a declaration on the wire is never local"));
                }
                Body::Declaration {
                    solicit: flags & DECL_SOLICIT != 0,
                    version,
                    decl: Box::new(decl),
                }
            }
            Kind::Heartbeat => {
                let flags = r.u8()?;
                if flags & !(HB_QUORUM | HB_LEASE) != 0 {
                    return Err(Malformed("unknown heartbeat flags"));
                }
                let n = r.u8()? as usize;
                if r.take(2)? != [0; 2] {
                    return Err(Malformed("reserved bytes not zero"));
                }
                if n > MAX_VIEW {
                    return Err(Malformed("view has too many nodes"));
                }
                let decl_version = r.u32()?;
                let mut view = Vec::with_capacity(n);
                for _ in 0..n {
                    let node = r.u32()?;
                    let state = match r.u8()? {
                        1 => NodeState::Alive,
                        2 => NodeState::Suspect,
                        3 => NodeState::Down,
                        4 => NodeState::Unknown,
                        _ => return Err(Malformed("unknown node state")),
                    };
                    if r.take(3)? != [0; 3] {
                        return Err(Malformed("reserved bytes not zero"));
                    }
                    let incarnation = r.u64()?;
                    let heard_seq = r.u64()?;
                    if node == 0 || view.iter().any(|e: &ViewEntry| e.node == node) {
                        return Err(Malformed("view names node 0 or a node twice"));
                    }
                    view.push(ViewEntry {
                        node,
                        incarnation,
                        state,
                        heard_seq,
                    });
                }
                Body::Heartbeat(Heartbeat {
                    flags,
                    decl_version,
                    view,
                })
            }
            Kind::NodeDown => {
                let node = r.u32()?;
                let verdict = match r.u8()? {
                    0 => false,
                    1 => true,
                    _ => return Err(Malformed("unknown node-down kind")),
                };
                if r.take(3)? != [0; 3] {
                    return Err(Malformed("reserved bytes not zero"));
                }
                let incarnation = r.u64()?;
                if node == 0 {
                    return Err(Malformed("node-down for node 0"));
                }
                Body::NodeDown(NodeDown {
                    node,
                    incarnation,
                    verdict,
                })
            }
            Kind::Directive => {
                let id = r.u64()?;
                let req =
                    DirectiveRequest::parse(r.take(r.0.len())?).map_err(|e| Malformed(e.text()))?;
                if req.node == 0 {
                    return Err(Malformed("directive for node 0"));
                }
                Body::Directive(Directive { id, req })
            }
            Kind::Ack => {
                let id = r.u64()?;
                let result = match r.u8()? {
                    1 => AckResult::Taken,
                    2 => AckResult::PassedOn,
                    3 => AckResult::Reset,
                    4 => AckResult::Failed,
                    _ => return Err(Malformed("unknown directive result")),
                };
                if r.take(3)? != [0; 3] {
                    return Err(Malformed("reserved bytes not zero"));
                }
                Body::Ack(Ack { id, result })
            }
            Kind::Failover => {
                let node = r.u32()?;
                if r.take(4)? != [0; 4] {
                    return Err(Malformed("reserved bytes not zero"));
                }
                if node == 0 {
                    return Err(Malformed("failover of node 0"));
                }
                Body::Failover(Failover { node })
            }
            Kind::Recovery => {
                let (id, incarnation, part, parts, n) = r
                    .part_head(RECOVERY_PART)
                    .map_err(|_| Malformed("recovery part out of range"))?;
                let mut served = Vec::with_capacity(n);
                for _ in 0..n {
                    served.push(r.key()?);
                }
                Body::Recovery(Recovery {
                    id,
                    incarnation,
                    part,
                    parts,
                    served,
                })
            }
            Kind::RecoveryAck => Body::RecoveryAck(RecoveryAck { id: r.u64()? }),
            Kind::Handoff | Kind::HandoffResult => {
                let (id, incarnation, part, parts, n) = r
                    .part_head(HANDOFF_PART)
                    .map_err(|_| Malformed("handoff part out of range"))?;
                let mut conns: Vec<HandoffConn> = Vec::with_capacity(n);
                for _ in 0..n {
                    let key = r.key()?;
                    let (snd_nxt, snd_una, rcv_nxt) = (r.u32()?, r.u32()?, r.u32()?);
                    let status = r.u8()?;
                    if r.take(3)? != [0; 3] {
                        return Err(Malformed("reserved bytes not zero"));
                    }
                    if !HANDOFF_STATUSES.contains(&status) {
                        return Err(Malformed("unknown handoff status"));
                    }
                    if conns.iter().any(|c| c.key == key) {
                        return Err(Malformed("a connection is listed twice"));
                    }
                    conns.push(HandoffConn {
                        key,
                        snd_nxt,
                        snd_una,
                        rcv_nxt,
                        status,
                    });
                }
                let h = HandoffPart {
                    id,
                    incarnation,
                    part,
                    parts,
                    conns,
                };
                if kind == Kind::Handoff {
                    Body::Handoff(h)
                } else {
                    Body::HandoffResult(h)
                }
            }
        };
        r.end()?;
        Ok(body)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use permtcp_logic::decl::{ArpPolicy, PortRange};
    use permtcp_logic::packet::Addr;
    use permtcp_logic::snoop::FlowKey;
    use permtcp_logic::uapi::proto;

    pub(crate) fn decl(node: u32) -> Declaration {
        let mut d = Declaration {
            node_id: node,
            proto: proto::TCP,
            arp: ArpPolicy::SmallestId,
            ..Default::default()
        };
        d.addrs4.push([10, 0, 0, node as u8]).unwrap();
        d.macs.push([2, 0, 0, 0, 0, node as u8]).unwrap();
        d.ranges
            .push(PortRange {
                lo: 80,
                hi: 80,
                ..Default::default()
            })
            .unwrap();
        d
    }

    pub(crate) fn samples() -> Vec<Body> {
        vec![
            Body::Declaration {
                solicit: true,
                version: 3,
                decl: Box::new(decl(2)),
            },
            Body::Heartbeat(Heartbeat {
                flags: HB_QUORUM | HB_LEASE,
                decl_version: 1,
                view: vec![
                    ViewEntry {
                        node: 1,
                        incarnation: 7,
                        state: NodeState::Alive,
                        heard_seq: 0,
                    },
                    ViewEntry {
                        node: 3,
                        incarnation: 0,
                        state: NodeState::Suspect,
                        heard_seq: 0,
                    },
                    ViewEntry {
                        node: 4,
                        incarnation: u64::MAX,
                        state: NodeState::Down,
                        heard_seq: u64::MAX,
                    },
                ],
            }),
            Body::NodeDown(NodeDown {
                node: 3,
                incarnation: 9,
                verdict: true,
            }),
            Body::Directive(Directive {
                id: 42,
                req: DirectiveRequest {
                    node: 1,
                    key: FlowKey {
                        owner_addr: Addr::v4([10, 0, 0, 1]),
                        client_addr: Addr::v4([192, 0, 2, 7]),
                        owner_port: 80,
                        client_port: 40000,
                    },
                    park_ms: Some(5000),
                    from: None,
                },
            }),
            Body::Ack(Ack {
                id: 42,
                result: AckResult::PassedOn,
            }),
            Body::Failover(Failover { node: 1 }),
            Body::Recovery(Recovery {
                id: 3,
                incarnation: 1 << 40,
                part: 1,
                parts: 2,
                served: vec![
                    FlowKey {
                        owner_addr: Addr::v4([10, 0, 0, 1]),
                        client_addr: Addr::v4([10, 0, 0, 100]),
                        owner_port: 80,
                        client_port: 40000,
                    },
                    FlowKey {
                        owner_addr: Addr([0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]),
                        client_addr: Addr([0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x64]),
                        owner_port: 443,
                        client_port: 65535,
                    },
                ],
            }),
            Body::Recovery(Recovery {
                id: 4,
                incarnation: 9,
                part: 0,
                parts: 1,
                served: vec![],
            }),
            Body::RecoveryAck(RecoveryAck { id: u64::MAX }),
            Body::Handoff(HandoffPart {
                id: 5,
                incarnation: 1 << 41,
                part: 0,
                parts: 2,
                conns: vec![
                    HandoffConn {
                        key: FlowKey {
                            owner_addr: Addr::v4([10, 0, 0, 1]),
                            client_addr: Addr::v4([10, 0, 0, 100]),
                            owner_port: 80,
                            client_port: 40001,
                        },
                        snd_nxt: 7,
                        snd_una: u32::MAX,
                        rcv_nxt: 1 << 31,
                        status: 1,
                    },
                    HandoffConn {
                        key: FlowKey {
                            owner_addr: Addr([0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]),
                            client_addr: Addr([
                                0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x64,
                            ]),
                            owner_port: 80,
                            client_port: 40002,
                        },
                        snd_nxt: 1,
                        snd_una: 1,
                        rcv_nxt: 2,
                        status: 1,
                    },
                ],
            }),
            Body::HandoffResult(HandoffPart {
                id: 5,
                incarnation: 9,
                part: 1,
                parts: 2,
                conns: vec![HandoffConn {
                    key: FlowKey {
                        owner_addr: Addr::v4([10, 0, 0, 1]),
                        client_addr: Addr::v4([10, 0, 0, 100]),
                        owner_port: 80,
                        client_port: 40003,
                    },
                    snd_nxt: 3,
                    snd_una: 2,
                    rcv_nxt: 1,
                    status: 3,
                }],
            }),
        ]
    }

    /// The body of a full part of `kind` (id, incarnation, part, parts, count first) with a
    /// part beyond the parts, no part, a count above `max`, or one byte short, is refused.
    fn parts_are_checked(kind: Kind, bytes: &[u8], max: usize) {
        for (at, v) in [(16, [0, 1]), (18, [0, 0])] {
            let mut b = bytes.to_vec();
            b[at..at + 2].copy_from_slice(&v);
            assert!(Body::parse(kind, &b).is_err(), "{at}");
        }
        let mut b = bytes.to_vec();
        b[20..22].copy_from_slice(&(max as u16 + 1).to_be_bytes());
        assert!(Body::parse(kind, &b).is_err());
        assert!(Body::parse(kind, &bytes[..bytes.len() - 1]).is_err());
    }

    #[test]
    fn handoff_parts_are_checked() {
        let conn = |port: u16| HandoffConn {
            key: FlowKey {
                owner_addr: Addr::v4([10, 0, 0, 1]),
                client_addr: Addr::v4([10, 0, 0, 2]),
                owner_port: 80,
                client_port: port,
            },
            snd_nxt: 1,
            snd_una: 1,
            rcv_nxt: 1,
            status: 1,
        };
        let full = Body::Handoff(HandoffPart {
            id: 1,
            incarnation: 1,
            part: 0,
            parts: 1,
            conns: (0..HANDOFF_PART as u16).map(conn).collect(),
        });
        let bytes = full.encode().unwrap();
        assert!(bytes.len() <= MAX_BODY);
        assert_eq!(Body::parse(Kind::Handoff, &bytes).unwrap(), full);
        let mut over = full.clone();
        if let Body::Handoff(h) = &mut over {
            h.conns.push(conn(9999));
        }
        assert!(over.encode().is_err());
        parts_are_checked(Kind::Handoff, &bytes, HANDOFF_PART);
        // An unknown status, a connection twice.
        let mut b = bytes.clone();
        b[24 + 48] = 0;
        assert!(Body::parse(Kind::Handoff, &b).is_err());
        let mut b = bytes.clone();
        b[24 + 52 + 34..24 + 52 + 36].copy_from_slice(&0u16.to_be_bytes());
        assert!(Body::parse(Kind::Handoff, &b).is_err());
    }

    #[test]
    fn recovery_parts_are_checked() {
        let full = Body::Recovery(Recovery {
            id: 1,
            incarnation: 1,
            part: 0,
            parts: 1,
            served: vec![
                FlowKey {
                    owner_addr: Addr::v4([10, 0, 0, 1]),
                    client_addr: Addr::v4([10, 0, 0, 2]),
                    owner_port: 80,
                    client_port: 1,
                };
                RECOVERY_PART
            ],
        });
        let bytes = full.encode().unwrap();
        assert!(bytes.len() <= MAX_BODY);
        assert_eq!(Body::parse(Kind::Recovery, &bytes).unwrap(), full);
        // One connection too many, a part beyond the parts, no part, a short list.
        let mut over = full.clone();
        if let Body::Recovery(r) = &mut over {
            r.served.push(r.served[0]);
        }
        assert!(over.encode().is_err());
        parts_are_checked(Kind::Recovery, &bytes, RECOVERY_PART);
    }

    #[test]
    fn bodies_round_trip() {
        for b in samples() {
            let bytes = b.encode().unwrap();
            assert_eq!(Body::parse(b.kind(), &bytes).unwrap(), b, "{b:?}");
        }
    }

    #[test]
    fn declaration_body_is_the_netlink_encoding() {
        let d = decl(5);
        let bytes = Body::Declaration {
            solicit: false,
            version: 1,
            decl: Box::new(d),
        }
        .encode()
        .unwrap();
        // After the flags and the version: exactly what DECL_ADD carries to the kernel.
        assert_eq!(parse_add_request(&bytes[8..]).unwrap(), d);
        // A local declaration is sent as a remote one.
        let local = Declaration { local: true, ..d };
        let bytes = Body::Declaration {
            solicit: false,
            version: 1,
            decl: Box::new(local),
        }
        .encode()
        .unwrap();
        match Body::parse(Kind::Declaration, &bytes).unwrap() {
            Body::Declaration { decl, .. } => assert!(!decl.local),
            _ => unreachable!(),
        }
    }

    #[test]
    fn header_round_trip_and_checks() {
        let h = Header {
            kind: Kind::Heartbeat,
            cluster: 0xdead_beef,
            from: 1,
            to: 2,
            key_id: 3,
            incarnation: 1 << 40,
            seq: 99,
        };
        let body = [1u8, 2, 3];
        let mut d = Vec::new();
        h.write(body.len(), &mut d);
        assert_eq!(d.len(), HEADER_LEN);
        d.extend_from_slice(&body);
        d.extend_from_slice(&[0xaa; TAG_LEN]);
        let f = split(&d).unwrap();
        assert_eq!(f.header, h);
        assert_eq!(f.body, body);
        assert_eq!(f.signed.len(), HEADER_LEN + 3);
        assert_eq!(f.tag, [0xaa; TAG_LEN]);
        let mut bad = d.clone();
        bad[4] = VERSION - 1; // the format before view entries echoed sequence numbers
        assert_eq!(split(&bad).unwrap_err().0, "unsupported version");
        let mut bad = d.clone();
        bad.push(0);
        assert!(split(&bad).is_err());
        let mut bad = d.clone();
        bad[32..40].fill(0);
        assert!(split(&bad).is_err());
        assert!(split(&d[..HEADER_LEN + TAG_LEN - 1]).is_err());
    }

    #[test]
    fn strict_bodies() {
        let hb = samples()[1].encode().unwrap();
        for cut in 0..hb.len() {
            assert!(Body::parse(Kind::Heartbeat, &hb[..cut]).is_err(), "{cut}");
        }
        let mut dup = hb.clone();
        dup[8..12].copy_from_slice(&3u32.to_be_bytes()); // first entry names node 3 too
        assert!(Body::parse(Kind::Heartbeat, &dup).is_err());
        let mut flags = hb.clone();
        flags[0] = 0x80;
        assert!(Body::parse(Kind::Heartbeat, &flags).is_err());
        let ack = samples()[4].encode().unwrap();
        let mut longer = ack.clone();
        longer.push(0);
        assert!(Body::parse(Kind::Ack, &longer).is_err());
        let fo = samples()[5].encode().unwrap();
        assert_eq!(fo.len(), 8);
        for cut in 0..fo.len() {
            assert!(Body::parse(Kind::Failover, &fo[..cut]).is_err(), "{cut}");
        }
        let mut reserved = fo.clone();
        reserved[7] = 1;
        assert!(Body::parse(Kind::Failover, &reserved).is_err());
        assert!(Body::parse(Kind::Failover, &[0; 8]).is_err(), "node 0");
        // Without its parking time a directive is still whole; without its client port
        // too, the kernel's own parser refuses it.
        let dir = samples()[3].encode().unwrap();
        assert!(Body::parse(Kind::Directive, &dir[..dir.len() - 8]).is_ok());
        assert!(Body::parse(Kind::Directive, &dir[..dir.len() - 16]).is_err());
    }

    /// xorshift64*: deterministic pseudo-random bytes for the fuzz loops.
    pub(crate) struct Rng(pub u64);

    impl Rng {
        pub(crate) fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }
        pub(crate) fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
    }

    /// Random and mutated inputs never panic the parsers; valid encodings with one bit
    /// flipped either fail or parse to something that encodes back to the same bytes.
    #[test]
    fn hostile_bytes_never_panic() {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let seeds: Vec<(Kind, Vec<u8>)> = samples()
            .iter()
            .map(|b| (b.kind(), b.encode().unwrap()))
            .collect();
        let kinds = [
            Kind::Declaration,
            Kind::Heartbeat,
            Kind::NodeDown,
            Kind::Directive,
            Kind::Ack,
            Kind::Failover,
            Kind::Recovery,
            Kind::RecoveryAck,
            Kind::Handoff,
            Kind::HandoffResult,
        ];
        for i in 0..200_000 {
            let (kind, mut b) = if i % 4 == 0 {
                let n = rng.below(300);
                let b = (0..n).map(|_| rng.next() as u8).collect();
                (kinds[rng.below(kinds.len())], b)
            } else {
                seeds[rng.below(seeds.len())].clone()
            };
            for _ in 0..1 + rng.below(4) {
                if b.is_empty() {
                    break;
                }
                match rng.below(4) {
                    0 => {
                        let at = rng.below(b.len());
                        b[at] ^= 1 << rng.below(8);
                    }
                    1 => b.truncate(rng.below(b.len())),
                    2 => {
                        let at = rng.below(b.len());
                        b[at] = rng.next() as u8;
                    }
                    _ => b.push(rng.next() as u8),
                }
            }
            if let Ok(body) = Body::parse(kind, &b) {
                let again = body.encode().expect("a parsed body encodes");
                assert_eq!(Body::parse(kind, &again).unwrap(), body);
            }
            // The same bytes as a whole datagram.
            let _ = split(&b);
        }
    }
}
