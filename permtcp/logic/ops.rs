// SPDX-License-Identifier: GPL-2.0

//! The `permtcp` generic netlink family described once: one request type and one reply type
//! per command.
//!
//! Every type has `write(&self, w: &mut Writer) -> Result<(), Error>`, which appends the
//! message's top-level attributes (what follows the generic netlink header), and
//! `parse(payload: &[u8]) -> Result<Self, Error>`, which reads them back strictly: an unknown
//! attribute, an attribute given twice (unless it is a list), a wrong length or a missing
//! required attribute is an error with a static message, as in the rest of the logic. The
//! kernel parses requests and writes replies with them; `permctl` writes requests and parses
//! replies with the very same code.
//!
//! | Command         | Request              | Reply (one per message)   | Dump |
//! |-----------------|----------------------|---------------------------|------|
//! | `DECL_ADD`      | [`DeclAddRequest`]   | [`Ack`]                   | no   |
//! | `DECL_DEL`      | [`DeclDelRequest`]   | [`Ack`]                   | no   |
//! | `DECL_GET`      | [`DeclGetRequest`]   | [`DeclReply`]             | yes  |
//! | `STATUS_GET`    | [`StatusRequest`]    | [`StatusReply`]           | no   |
//! | `SNOOP_START`   | [`StartRequest`]     | [`Ack`]                   | no   |
//! | `SNOOP_STOP`    | [`SnoopStopRequest`] | [`Ack`]                   | no   |
//! | `CONN_GET`      | [`ConnGetRequest`]   | [`ConnReply`]             | yes  |
//! | `STATS_GET`     | [`StatsRequest`]     | [`StatsReply`]            | no   |
//! | `CONN_DATA_GET` | [`DataRequest`]      | [`DataChunk`]             | yes  |
//! | `TAKEOVER`      | [`TakeoverRequest`]  | [`TakeoverReply`]         | no   |
//! | `TAKEN_GET`     | [`TakenGetRequest`]  | [`TakenReply`]            | yes  |
//! | `TAKEN_GET`     | [`TakenKeyRequest`]  | [`TakenReply`]            | yes  |
//! | `DIRECTIVE`     | [`DirectiveRequest`] | [`DirectiveReply`]        | no   |
//! | `RECOVERY`      | [`RecoveryRequest`]  | [`Ack`]                   | no   |
//! | `HANDOFF_HOLD`  | [`HoldRequest`]      | [`Handoff`]               | no   |
//! | `HANDOFF_TAKE`  | [`Handoff`]          | [`Handoff`]               | no   |
//! | `HANDOFF_DONE`  | [`Handoff`]          | [`Ack`]                   | no   |
//! | `REJOIN`        | [`RejoinRequest`]    | [`Ack`]                   | no   |
//!
//! The handoff messages are in `handoff.rs`.
//!
//! The [`Operation`] trait ties each request type to its command number, whether it is a dump,
//! and its reply type, for code that handles every command alike (permctl's client). The
//! nested payloads the replies carry ([`Declaration`], [`ConnInfo`], [`StatsInfo`],
//! [`TakenInfo`], [`DirectiveInfo`]) are defined next to the state they describe
//! (`decl.rs`, `snoopnl.rs`) and re-exported here.
//!
//! [`HoldRequest`]: super::handoff::HoldRequest
//! [`Handoff`]: super::handoff::Handoff

use super::bounded::Bounded;
use super::errno::{code, inval, Error};
use super::nla::{Attr, Attrs, Seen, Writer};
use super::seqbuf::CAPACITY;
use super::snoop::{FlowKey, Limits};
use super::snoopnl::{key_attr, put_key};
use super::track::Side;
use super::uapi::{attr, cmd, directive_attr};
use core::ffi::CStr;

pub use super::decl::{Declaration, MAX_DECLS};
pub use super::snoopnl::{ConnInfo, DirectiveInfo, HalfInfo, StatsInfo, TakenInfo};

// `Seen` tracks attribute types in a u64.
const _: () = assert!(attr::MAX < 64);

/// The longest a taken-over connection may wait for a listener: one hour (TAKEOVER and
/// DIRECTIVE requests' `PARK_MS`).
///
/// `permtcp_glue.c` repeats the number in its attribute policy (`ptcp_park_range`); the two
/// must stay equal.
pub const MAX_PARK_MS: u32 = 3_600_000;

/// The most retained bytes one CONN_DATA_GET message carries.
pub const MAX_DATA_CHUNK: usize = 8192;

/// The least `MAX_BYTES` a SNOOP_START request may set: one 4 KiB chunk.
pub const MIN_SNOOP_BYTES: u64 = 4096;

/// The least `SYN_TIMEOUT_MS` or `IDLE_TIMEOUT_MS` a SNOOP_START request may set: one second.
///
/// `permtcp_glue.c` repeats the timeout bounds in its attribute policy; they must stay equal.
pub const MIN_TIMEOUT_MS: u32 = 1000;

/// The most `SYN_TIMEOUT_MS` a SNOOP_START request may set: ten minutes.
pub const MAX_SYN_TIMEOUT_MS: u32 = 600_000;

/// The most `KEEP_RECEIVED` a SNOOP_START request may set: half a direction's buffer, 8 MiB.
pub const MAX_KEEP_RECEIVED: u32 = CAPACITY / 2;

/// First bytes of a directive datagram between peers (then a [`DirectiveRequest`]'s
/// attributes).
pub const DIRECTIVE_MAGIC: &[u8; 8] = b"PTCPDIR1";

/// One command of the family: its number, whether it is a dump, and how its request and its
/// reply are encoded. Implemented by each request type.
pub trait Operation: Sized {
    /// The command ([`cmd`]).
    const CMD: u8;
    /// Whether the request is a dump (`NLM_F_DUMP`): then the reply is one message per item.
    const DUMP: bool;
    /// The reply of one message.
    type Reply<'a>;
    /// Writes the request's attributes (the request type's `write`).
    fn write_request(&self, w: &mut Writer<'_>) -> Result<(), Error>;
    /// Parses a request (the request type's `parse`).
    fn parse_request(payload: &[u8]) -> Result<Self, Error>;
    /// Parses one reply message (the reply type's `parse`).
    fn parse_reply(payload: &[u8]) -> Result<Self::Reply<'_>, Error>;
}

macro_rules! operation {
    ($($req:ty => <$lt:lifetime> $rep:ty, $cmd:expr, dump: $dump:literal;)*) => {$(
        impl Operation for $req {
            const CMD: u8 = $cmd;
            const DUMP: bool = $dump;
            type Reply<$lt> = $rep;
            fn write_request(&self, w: &mut Writer<'_>) -> Result<(), Error> {
                self.write(w)
            }
            fn parse_request(payload: &[u8]) -> Result<Self, Error> {
                Self::parse(payload)
            }
            fn parse_reply<$lt>(payload: &$lt [u8]) -> Result<$rep, Error> {
                <$rep>::parse(payload)
            }
        }
    )*};
}

operation! {
    DeclAddRequest => <'a> Ack, cmd::DECL_ADD, dump: false;
    DeclDelRequest => <'a> Ack, cmd::DECL_DEL, dump: false;
    DeclGetRequest => <'a> DeclReply, cmd::DECL_GET, dump: true;
    StatusRequest => <'a> StatusReply, cmd::STATUS_GET, dump: false;
    StartRequest => <'a> Ack, cmd::SNOOP_START, dump: false;
    SnoopStopRequest => <'a> Ack, cmd::SNOOP_STOP, dump: false;
    ConnGetRequest => <'a> ConnReply, cmd::CONN_GET, dump: true;
    StatsRequest => <'a> StatsReply, cmd::STATS_GET, dump: false;
    DataRequest => <'a> DataChunk<'a>, cmd::CONN_DATA_GET, dump: true;
    TakeoverRequest => <'a> TakeoverReply<'a>, cmd::TAKEOVER, dump: false;
    TakenGetRequest => <'a> TakenReply, cmd::TAKEN_GET, dump: true;
    TakenKeyRequest => <'a> TakenReply, cmd::TAKEN_GET, dump: true;
    DirectiveRequest => <'a> DirectiveReply, cmd::DIRECTIVE, dump: false;
    LeaseRequest => <'a> Ack, cmd::LEASE_SET, dump: false;
    RejoinRequest => <'a> Ack, cmd::REJOIN, dump: false;
}

/// Checks that a message carries no attribute (the requests and replies that have none).
pub fn parse_empty(payload: &[u8]) -> Result<(), Error> {
    match Attrs::new(payload).next() {
        None => Ok(()),
        Some(Err(e)) => Err(e),
        Some(Ok(_)) => inval(c"this command takes no attributes"),
    }
}

macro_rules! empty_message {
    ($($(#[$doc:meta])* $name:ident;)*) => {$(
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
        pub struct $name;

        impl $name {
            /// Writes nothing: the message has no attributes.
            pub fn write(&self, _w: &mut Writer<'_>) -> Result<(), Error> {
                Ok(())
            }

            /// Checks that the message carries no attribute ([`parse_empty`]).
            pub fn parse(payload: &[u8]) -> Result<Self, Error> {
                parse_empty(payload).map(|()| Self)
            }
        }
    )*};
}

empty_message! {
    /// The reply of a command that answers with an acknowledgement only (DECL_ADD, DECL_DEL,
    /// SNOOP_START, SNOOP_STOP): there is no reply message, netlink's ACK says it succeeded.
    Ack;
    /// DECL_GET request (a dump): no attributes.
    DeclGetRequest;
    /// STATUS_GET request: no attributes.
    StatusRequest;
    /// SNOOP_STOP request: no attributes.
    SnoopStopRequest;
    /// CONN_GET request (a dump): no attributes.
    ConnGetRequest;
    /// STATS_GET request: no attributes.
    StatsRequest;
    /// TAKEN_GET request (a dump): no attributes.
    TakenGetRequest;
}

/// The one attribute of a message that carries exactly one, of type `kind`.
fn single<'a>(payload: &'a [u8], kind: u16, missing: &'static CStr) -> Result<Attr<'a>, Error> {
    let mut found = None;
    for a in Attrs::new(payload) {
        let a = a?;
        if a.kind != kind {
            return inval(c"unknown attribute in message");
        }
        if found.replace(a).is_some() {
            return inval(c"attribute given more than once");
        }
    }
    found.map_or_else(|| inval(missing), Ok)
}

/// Checks that every one of `kinds` was seen.
pub(super) fn require(seen: &Seen, kinds: &[u16], msg: &'static CStr) -> Result<(), Error> {
    if seen.all(kinds) {
        Ok(())
    } else {
        inval(msg)
    }
}

/// DECL_ADD request: one nested [`attr::DECL`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DeclAddRequest {
    /// The declaration to add; [`DeclAddRequest::parse`] validates it on its own
    /// ([`Declaration::validate`]), not against the stored set.
    pub decl: Declaration,
}

impl DeclAddRequest {
    /// Writes the nested declaration.
    pub fn write(&self, w: &mut Writer<'_>) -> Result<(), Error> {
        self.decl.write(w)
    }

    /// Finds the single [`attr::DECL`] and parses and validates it.
    pub fn parse(payload: &[u8]) -> Result<Self, Error> {
        let mut found = None;
        for a in Attrs::new(payload) {
            let a = a?;
            match a.kind {
                attr::DECL if found.is_none() => found = Some(a),
                attr::DECL => return inval(c"one declaration per request"),
                _ => return inval(c"unknown attribute in request"),
            }
        }
        match found {
            Some(a) => Declaration::parse(a.data).map(|decl| Self { decl }),
            None => inval(c"request carries no declaration"),
        }
    }
}

/// DECL_DEL request: [`attr::NODE_ID`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DeclDelRequest {
    /// The node whose declaration is removed.
    pub node: u32,
}

impl DeclDelRequest {
    /// Writes the node id.
    pub fn write(&self, w: &mut Writer<'_>) -> Result<(), Error> {
        w.put_u32(attr::NODE_ID, self.node)
    }

    /// Parses the node id, given once.
    pub fn parse(payload: &[u8]) -> Result<Self, Error> {
        parse_node(payload).map(|node| Self { node })
    }
}

/// Parses a request whose one attribute is [`attr::NODE_ID`], given once.
fn parse_node(payload: &[u8]) -> Result<u32, Error> {
    let mut node = None;
    for a in Attrs::new(payload) {
        let a = a?;
        match a.kind {
            attr::NODE_ID if node.is_none() => node = Some(a.u32()?),
            attr::NODE_ID => return inval(c"attribute given more than once"),
            _ => return inval(c"unknown attribute in request"),
        }
    }
    node.map_or_else(|| inval(c"request carries no node id"), Ok)
}

/// One message of the DECL_GET dump: one nested [`attr::DECL`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DeclReply {
    /// A stored declaration.
    pub decl: Declaration,
}

impl DeclReply {
    /// Writes the nested declaration.
    pub fn write(&self, w: &mut Writer<'_>) -> Result<(), Error> {
        self.decl.write(w)
    }

    /// Parses the message's single declaration.
    pub fn parse(payload: &[u8]) -> Result<Self, Error> {
        let a = single(payload, attr::DECL, c"message carries no declaration")?;
        Declaration::parse(a.data).map(|decl| Self { decl })
    }
}

/// STATUS_GET reply: module and namespace status.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StatusReply {
    /// [`attr::VERSION`]: the family version of the module (`uapi::FAMILY_VERSION`).
    pub version: u32,
    /// [`attr::DECL_COUNT`]: declarations stored in the namespace.
    pub decl_count: u32,
    /// [`attr::DECL_MAX`]: declarations a namespace holds at most ([`MAX_DECLS`]).
    pub decl_max: u32,
    /// [`attr::LOCAL_NODE`]: the node id of the local declaration, if there is one.
    pub local_node: Option<u32>,
    /// [`attr::PARKED`]: taken-over connections waiting for a listener now.
    pub parked: u32,
    /// [`attr::PARK_QUEUED`]: parked connections handed to a listener later.
    pub park_queued: u32,
    /// [`attr::PARK_RESET`]: parked connections reset because no listener came in time.
    pub park_reset: u32,
    /// [`attr::FAILED_NODE`], repeated: the nodes declared failed here, in order.
    pub failed: Bounded<u32, MAX_DECLS>,
    /// [`attr::NETNS_COOKIE`]: the cookie of the namespace the request was served in.
    pub netns_cookie: u64,
    /// [`attr::LEASE_LEFT_MS`]: what is left of this node's lease, while one is set.
    pub lease_left_ms: Option<u64>,
    /// [`attr::FENCED`]: this node's segments dropped because its lease had run out.
    pub fenced: u64,
    /// [`attr::SPLIT_BRAIN`]: frames received from a node declared failed here.
    pub split_brain: u64,
}

impl StatusReply {
    /// Writes the status, in the order above.
    pub fn write(&self, w: &mut Writer<'_>) -> Result<(), Error> {
        w.put_u32(attr::VERSION, self.version)?;
        w.put_u32(attr::DECL_COUNT, self.decl_count)?;
        w.put_u32(attr::DECL_MAX, self.decl_max)?;
        if let Some(n) = self.local_node {
            w.put_u32(attr::LOCAL_NODE, n)?;
        }
        w.put_u32(attr::PARKED, self.parked)?;
        w.put_u32(attr::PARK_QUEUED, self.park_queued)?;
        w.put_u32(attr::PARK_RESET, self.park_reset)?;
        for &n in &self.failed {
            w.put_u32(attr::FAILED_NODE, n)?;
        }
        w.put_u64(attr::NETNS_COOKIE, self.netns_cookie)?;
        if let Some(ms) = self.lease_left_ms {
            w.put_u64(attr::LEASE_LEFT_MS, ms)?;
        }
        w.put_u64(attr::FENCED, self.fenced)?;
        w.put_u64(attr::SPLIT_BRAIN, self.split_brain)
    }

    /// Parses a status; every attribute but the local node and the failed nodes is required.
    pub fn parse(payload: &[u8]) -> Result<Self, Error> {
        let mut s = Self::default();
        let mut seen = Seen::default();
        for a in Attrs::new(payload) {
            let a = a?;
            if a.kind == attr::FAILED_NODE {
                s.failed
                    .push(a.u32()?)
                    .map_err(|_| Error::new(code::E2BIG, c"too many failed nodes"))?;
                continue;
            }
            let slot = match a.kind {
                attr::VERSION => &mut s.version,
                attr::DECL_COUNT => &mut s.decl_count,
                attr::DECL_MAX => &mut s.decl_max,
                attr::PARKED => &mut s.parked,
                attr::PARK_QUEUED => &mut s.park_queued,
                attr::PARK_RESET => &mut s.park_reset,
                attr::LOCAL_NODE => s.local_node.insert(0),
                attr::NETNS_COOKIE | attr::LEASE_LEFT_MS | attr::FENCED | attr::SPLIT_BRAIN => {
                    seen.once(a.kind)?;
                    let v = a.u64()?;
                    match a.kind {
                        attr::NETNS_COOKIE => s.netns_cookie = v,
                        attr::LEASE_LEFT_MS => s.lease_left_ms = Some(v),
                        attr::FENCED => s.fenced = v,
                        _ => s.split_brain = v,
                    }
                    continue;
                }
                _ => return inval(c"unknown attribute in status"),
            };
            seen.once(a.kind)?;
            *slot = a.u32()?;
        }
        require(
            &seen,
            &[
                attr::VERSION,
                attr::DECL_COUNT,
                attr::DECL_MAX,
                attr::PARKED,
                attr::PARK_QUEUED,
                attr::PARK_RESET,
                attr::NETNS_COOKIE,
                attr::FENCED,
                attr::SPLIT_BRAIN,
            ],
            c"status attribute missing",
        )?;
        Ok(s)
    }
}

/// SNOOP_START request: the device and optional limits.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StartRequest {
    /// [`attr::IFINDEX`]: the device to snoop on (non-zero).
    pub ifindex: u32,
    /// [`attr::MAX_CONNS`]: connection limit (non-zero), if given.
    pub max_conns: Option<u32>,
    /// [`attr::MAX_BYTES`]: byte limit (at least [`MIN_SNOOP_BYTES`]), if given.
    pub max_bytes: Option<u64>,
    /// [`attr::KEEP_RECEIVED`]: client bytes kept behind the owner's acknowledgement (at most
    /// [`MAX_KEEP_RECEIVED`]), if given.
    pub keep_received: Option<u32>,
    /// [`attr::MAX_CONN_BYTES`]: one connection's share (at least [`MIN_SNOOP_BYTES`]), if
    /// given.
    pub max_conn_bytes: Option<u64>,
    /// [`attr::SYN_TIMEOUT_MS`]: handshake timeout ([`MIN_TIMEOUT_MS`] to
    /// [`MAX_SYN_TIMEOUT_MS`]), if given.
    pub syn_timeout_ms: Option<u32>,
    /// [`attr::IDLE_TIMEOUT_MS`]: idle timeout (at least [`MIN_TIMEOUT_MS`]), if given.
    pub idle_timeout_ms: Option<u32>,
}

impl StartRequest {
    /// Writes the device and the limits given.
    pub fn write(&self, w: &mut Writer<'_>) -> Result<(), Error> {
        w.put_u32(attr::IFINDEX, self.ifindex)?;
        if let Some(n) = self.max_conns {
            w.put_u32(attr::MAX_CONNS, n)?;
        }
        if let Some(b) = self.max_bytes {
            w.put_u64(attr::MAX_BYTES, b)?;
        }
        if let Some(k) = self.keep_received {
            w.put_u32(attr::KEEP_RECEIVED, k)?;
        }
        if let Some(b) = self.max_conn_bytes {
            w.put_u64(attr::MAX_CONN_BYTES, b)?;
        }
        if let Some(t) = self.syn_timeout_ms {
            w.put_u32(attr::SYN_TIMEOUT_MS, t)?;
        }
        if let Some(t) = self.idle_timeout_ms {
            w.put_u32(attr::IDLE_TIMEOUT_MS, t)?;
        }
        Ok(())
    }

    /// Parses and checks a request: a device, limits within their bounds.
    pub fn parse(payload: &[u8]) -> Result<Self, Error> {
        let mut r = Self::default();
        let mut dev = None;
        let mut seen = Seen::default();
        for a in Attrs::new(payload) {
            let a = a?;
            match a.kind {
                attr::IFINDEX => dev = Some(a.u32()?),
                attr::MAX_CONNS => r.max_conns = Some(a.u32()?),
                attr::MAX_BYTES => r.max_bytes = Some(a.u64()?),
                attr::KEEP_RECEIVED => r.keep_received = Some(a.u32()?),
                attr::MAX_CONN_BYTES => r.max_conn_bytes = Some(a.u64()?),
                attr::SYN_TIMEOUT_MS => r.syn_timeout_ms = Some(a.u32()?),
                attr::IDLE_TIMEOUT_MS => r.idle_timeout_ms = Some(a.u32()?),
                _ => return inval(c"unknown attribute in request"),
            }
            seen.once(a.kind)?;
        }
        r.ifindex = match dev {
            Some(i) if i > 0 => i,
            _ => return inval(c"request needs the device's interface index"),
        };
        let bytes_too_few = |b: Option<u64>| b.is_some_and(|b| b < MIN_SNOOP_BYTES);
        if r.max_conns == Some(0) || bytes_too_few(r.max_bytes) || bytes_too_few(r.max_conn_bytes) {
            return inval(c"limits must allow one connection and one 4 KiB chunk");
        }
        if r.keep_received.is_some_and(|k| k > MAX_KEEP_RECEIVED) {
            return inval(c"at most 8 MiB of received data can be kept");
        }
        if r.syn_timeout_ms
            .is_some_and(|t| !(MIN_TIMEOUT_MS..=MAX_SYN_TIMEOUT_MS).contains(&t))
            || r.idle_timeout_ms.is_some_and(|t| t < MIN_TIMEOUT_MS)
        {
            return inval(c"timeouts run from 1 s (the handshake's to 10 min)");
        }
        Ok(r)
    }

    /// The limits the request sets, over the defaults: a connection's share defaults to
    /// [`Limits::conn_share`] of the request's byte limit and received-data floor.
    pub fn limits(&self) -> Limits {
        let d = Limits::default();
        let max_bytes = self.max_bytes.unwrap_or(d.max_bytes);
        let keep_received = self.keep_received.unwrap_or(d.keep_received);
        Limits {
            max_conns: self.max_conns.unwrap_or(d.max_conns),
            max_bytes,
            keep_received,
            max_conn_bytes: self
                .max_conn_bytes
                .unwrap_or_else(|| Limits::conn_share(max_bytes, keep_received)),
            syn_timeout_ms: self.syn_timeout_ms.unwrap_or(d.syn_timeout_ms),
            idle_timeout_ms: self.idle_timeout_ms.unwrap_or(d.idle_timeout_ms),
        }
    }
}

/// One message of the CONN_GET dump: one nested [`attr::CONN`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ConnReply {
    /// A mirrored connection.
    pub conn: ConnInfo,
}

impl ConnReply {
    /// Writes the nested connection.
    pub fn write(&self, w: &mut Writer<'_>) -> Result<(), Error> {
        self.conn.write(w)
    }

    /// Parses the message's single connection.
    pub fn parse(payload: &[u8]) -> Result<Self, Error> {
        let a = single(payload, attr::CONN, c"message carries no connection")?;
        ConnInfo::parse(a.data).map(|conn| Self { conn })
    }
}

/// STATS_GET reply: one nested [`attr::STATS`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StatsReply {
    /// Snooping counters and limits.
    pub stats: StatsInfo,
}

impl StatsReply {
    /// Writes the nested statistics.
    pub fn write(&self, w: &mut Writer<'_>) -> Result<(), Error> {
        self.stats.write(w)
    }

    /// Parses the message's single statistics nest.
    pub fn parse(payload: &[u8]) -> Result<Self, Error> {
        let a = single(payload, attr::STATS, c"message carries no statistics")?;
        StatsInfo::parse(a.data).map(|stats| Self { stats })
    }
}

/// CONN_DATA_GET request (a dump): which connection, which direction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DataRequest {
    /// [`attr::OWNER_ADDR`] to [`attr::CLIENT_PORT`]: the connection (addresses 16 bytes,
    /// IPv4-mapped).
    pub key: FlowKey,
    /// [`attr::SIDE`]: whose sent data (0 owner, 1 client).
    pub side: Side,
}

impl DataRequest {
    /// Writes the connection's key and the side.
    pub fn write(&self, w: &mut Writer<'_>) -> Result<(), Error> {
        put_key(w, attr::OWNER_ADDR, &self.key)?;
        w.put_u8(attr::SIDE, self.side as u8)
    }

    /// Parses a request: both addresses, both ports and the side, once each.
    pub fn parse(payload: &[u8]) -> Result<Self, Error> {
        let mut key = FlowKey::default();
        let mut side = None;
        let mut seen = Seen::default();
        for a in Attrs::new(payload) {
            let a = a?;
            seen.once(a.kind)?;
            if key_attr(&a, attr::OWNER_ADDR, &mut key)?.is_some() {
                continue;
            }
            match a.kind {
                attr::SIDE => {
                    side = Some(match a.u8()? {
                        0 => Side::Owner,
                        1 => Side::Client,
                        _ => return inval(c"side must be 0 (owner) or 1 (client)"),
                    })
                }
                _ => return inval(c"unknown attribute in request"),
            }
        }
        let key_seen = seen.all(&[
            attr::OWNER_ADDR,
            attr::OWNER_PORT,
            attr::CLIENT_ADDR,
            attr::CLIENT_PORT,
        ]);
        match side {
            Some(side) if key_seen => Ok(Self { key, side }),
            _ => inval(c"request needs both addresses, both ports and a side"),
        }
    }
}

/// TAKEN_GET request for one connection (a dump of at most one record, its newest): what a
/// restarted application asks for each socket it accepts. [`TakenGetRequest`], without
/// attributes, lists them all.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TakenKeyRequest {
    /// [`attr::OWNER_ADDR`] to [`attr::CLIENT_PORT`]: the connection (addresses 16 bytes,
    /// IPv4-mapped).
    pub key: FlowKey,
}

impl TakenKeyRequest {
    /// Writes the connection's key.
    pub fn write(&self, w: &mut Writer<'_>) -> Result<(), Error> {
        put_key(w, attr::OWNER_ADDR, &self.key)
    }

    /// Parses a request: both addresses and both ports, once each.
    pub fn parse(payload: &[u8]) -> Result<Self, Error> {
        let mut key = FlowKey::default();
        let mut seen = Seen::default();
        for a in Attrs::new(payload) {
            let a = a?;
            seen.once(a.kind)?;
            if key_attr(&a, attr::OWNER_ADDR, &mut key)?.is_none() {
                return inval(c"unknown attribute in request");
            }
        }
        require(
            &seen,
            &[
                attr::OWNER_ADDR,
                attr::OWNER_PORT,
                attr::CLIENT_ADDR,
                attr::CLIENT_PORT,
            ],
            c"request needs both addresses and both ports",
        )?;
        Ok(Self { key })
    }
}

/// One message of the CONN_DATA_GET dump: retained bytes and the sequence number of the
/// first, borrowed from the message.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DataChunk<'a> {
    /// [`attr::DATA_SEQ`]: sequence number of `data[0]`.
    pub seq: u32,
    /// [`attr::DATA`]: at most [`MAX_DATA_CHUNK`] bytes.
    pub data: &'a [u8],
}

impl<'a> DataChunk<'a> {
    /// Writes the sequence number and the bytes.
    pub fn write(&self, w: &mut Writer<'_>) -> Result<(), Error> {
        Self::write_with(w, self.seq, self.data.len(), |buf| {
            buf.copy_from_slice(self.data);
            true
        })
    }

    /// Writes a chunk of `len` bytes starting at `seq` that `fill` copies in place (the kernel
    /// reads them out of a connection's buffer); `fill` returning `false` is an error.
    pub fn write_with(
        w: &mut Writer<'_>,
        seq: u32,
        len: usize,
        fill: impl FnOnce(&mut [u8]) -> bool,
    ) -> Result<(), Error> {
        if len > MAX_DATA_CHUNK {
            return Err(Error::new(code::EMSGSIZE, c"data chunk above 8 KiB"));
        }
        w.put_u32(attr::DATA_SEQ, seq)?;
        w.put_with(attr::DATA, len, fill)
    }

    /// Parses a chunk: the sequence number and the bytes, once each.
    pub fn parse(payload: &'a [u8]) -> Result<Self, Error> {
        let (mut seq, mut data) = (None, None);
        let mut seen = Seen::default();
        for a in Attrs::new(payload) {
            let a = a?;
            match a.kind {
                attr::DATA_SEQ => seq = Some(a.u32()?),
                attr::DATA if a.data.len() <= MAX_DATA_CHUNK => data = Some(a.data),
                attr::DATA => return inval(c"data chunk above 8 KiB"),
                _ => return inval(c"unknown attribute in data chunk"),
            }
            seen.once(a.kind)?;
        }
        match (seq, data) {
            (Some(seq), Some(data)) => Ok(Self { seq, data }),
            _ => inval(c"data chunk needs its sequence number and its bytes"),
        }
    }
}

/// TAKEOVER request: the failed node and how long its connections may wait for a listener.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TakeoverRequest {
    /// [`attr::NODE_ID`]: the failed node.
    pub node: u32,
    /// [`attr::PARK_MS`]: how long connections wait for a listener before they are reset (at
    /// most [`MAX_PARK_MS`]); `None`: the module's default.
    pub park_ms: Option<u32>,
}

impl TakeoverRequest {
    /// Writes the node and the parking time, if given.
    pub fn write(&self, w: &mut Writer<'_>) -> Result<(), Error> {
        w.put_u32(attr::NODE_ID, self.node)?;
        match self.park_ms {
            Some(ms) => w.put_u32(attr::PARK_MS, ms),
            None => Ok(()),
        }
    }

    /// Parses a request: a node id and an optional parking time, once each.
    pub fn parse(payload: &[u8]) -> Result<Self, Error> {
        let (mut node, mut park_ms) = (None, None);
        for a in Attrs::new(payload) {
            let a = a?;
            let slot = match a.kind {
                attr::NODE_ID => &mut node,
                attr::PARK_MS => &mut park_ms,
                _ => return inval(c"unknown attribute in request"),
            };
            if slot.is_some() {
                return inval(c"attribute given more than once");
            }
            *slot = Some(a.u32()?);
        }
        let Some(node) = node else {
            return inval(c"request carries no node id");
        };
        if park_ms.is_some_and(|ms| ms > MAX_PARK_MS) {
            return inval(c"parking time above one hour");
        }
        Ok(Self { node, park_ms })
    }
}

/// What carrying out a takeover or a directive did: the counts TAKEOVER and DIRECTIVE replies
/// share.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    /// [`attr::TAKEN`]: connections rebuilt and handed to a listener or parked.
    pub taken: u32,
    /// [`attr::PARKED`]: of those, connections waiting for a listener.
    pub parked: u32,
    /// [`attr::FAILED`]: connections whose rebuild or hand-off failed.
    pub failed: u32,
    /// [`attr::RESET`]: connections reset because no peer can take them over.
    pub reset: u32,
    /// [`attr::REBUILD_NS`]: time spent rebuilding and handing off, ns.
    pub rebuild_ns: u64,
}

impl Counts {
    const KINDS: [u16; 5] = [
        attr::TAKEN,
        attr::PARKED,
        attr::FAILED,
        attr::RESET,
        attr::REBUILD_NS,
    ];

    /// Writes the five counts.
    pub fn write(&self, w: &mut Writer<'_>) -> Result<(), Error> {
        w.put_u32(attr::TAKEN, self.taken)?;
        w.put_u32(attr::PARKED, self.parked)?;
        w.put_u32(attr::FAILED, self.failed)?;
        w.put_u32(attr::RESET, self.reset)?;
        w.put_u64(attr::REBUILD_NS, self.rebuild_ns)
    }

    /// Stores `a` when it is one of the counts (`Ok(false)`: another attribute).
    fn take(&mut self, a: &Attr<'_>) -> Result<bool, Error> {
        match a.kind {
            attr::TAKEN => self.taken = a.u32()?,
            attr::PARKED => self.parked = a.u32()?,
            attr::FAILED => self.failed = a.u32()?,
            attr::RESET => self.reset = a.u32()?,
            attr::REBUILD_NS => self.rebuild_ns = a.u64()?,
            _ => return Ok(false),
        }
        Ok(true)
    }
}

/// TAKEOVER reply: the counts, and one nested [`attr::DIRECTIVE`] per connection handed to
/// the next peer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TakeoverReply<'a> {
    /// What carrying out the takeover did.
    pub counts: Counts,
    /// [`attr::NOT_READY_COUNT`]: the failed node's connections not ready here (those handed
    /// on and those reset included).
    pub not_ready: u32,
    /// [`attr::NOT_MINE`]: connections the policy gives to another node.
    pub not_mine: u32,
    /// The connections for the next peers, in order.
    pub directives: Directives<'a>,
}

impl<'a> TakeoverReply<'a> {
    /// Writes the counts, then the directives.
    pub fn write(&self, w: &mut Writer<'_>) -> Result<(), Error> {
        self.counts.write(w)?;
        w.put_u32(attr::NOT_READY_COUNT, self.not_ready)?;
        w.put_u32(attr::NOT_MINE, self.not_mine)?;
        self.directives.iter().try_for_each(|d| d.write(w))
    }

    /// Parses a reply: every count once, then any number of directives, each checked
    /// ([`DirectiveInfo::parse`]); [`TakeoverReply::directives`] iterates over them in the
    /// message without copying.
    pub fn parse(payload: &'a [u8]) -> Result<Self, Error> {
        let mut r = Self::default();
        let mut seen = Seen::default();
        let mut count = 0;
        for a in Attrs::new(payload) {
            let a = a?;
            if a.kind == attr::DIRECTIVE {
                DirectiveInfo::parse(a.data)?;
                count += 1;
                continue;
            }
            seen.once(a.kind)?;
            if r.counts.take(&a)? {
                continue;
            }
            match a.kind {
                attr::NOT_READY_COUNT => r.not_ready = a.u32()?,
                attr::NOT_MINE => r.not_mine = a.u32()?,
                _ => return inval(c"unknown attribute in takeover reply"),
            }
        }
        require(&seen, &Counts::KINDS, c"takeover reply count missing")?;
        require(
            &seen,
            &[attr::NOT_READY_COUNT, attr::NOT_MINE],
            c"takeover reply count missing",
        )?;
        r.directives = Directives::from_message(payload, count);
        Ok(r)
    }
}

/// An item of a list a message carries as repeated nested attributes of one kind.
pub trait Listed: Copy {
    /// The attribute each item is nested in.
    const ATTR: u16;
    /// Parses one item's nested attributes strictly.
    fn parse_item(payload: &[u8]) -> Result<Self, Error>;
}

/// The items of a list in a message: a slice when they are written ([`List::from_slice`]),
/// the parsed message when they are read (its parser checked every item).
#[derive(Clone, Copy, Debug)]
pub struct List<'a, T>(ListSource<'a, T>);

#[derive(Clone, Copy, Debug)]
enum ListSource<'a, T> {
    Slice(&'a [T]),
    /// A parsed message whose `count` item attributes are all valid.
    Message {
        payload: &'a [u8],
        count: usize,
    },
}

impl<T> Default for List<'_, T> {
    fn default() -> Self {
        Self(ListSource::Slice(&[]))
    }
}

impl<T: Listed + PartialEq> PartialEq for List<'_, T> {
    fn eq(&self, other: &Self) -> bool {
        self.iter().eq(other.iter())
    }
}

impl<T: Listed + Eq> Eq for List<'_, T> {}

impl<'a, T: Listed> List<'a, T> {
    /// The items to write.
    pub const fn from_slice(list: &'a [T]) -> Self {
        Self(ListSource::Slice(list))
    }

    /// The `count` items of a parsed message, every one of which parses.
    pub(super) fn from_message(payload: &'a [u8], count: usize) -> Self {
        Self(ListSource::Message { payload, count })
    }

    /// How many there are.
    pub fn len(&self) -> usize {
        match self.0 {
            ListSource::Slice(s) => s.len(),
            ListSource::Message { count, .. } => count,
        }
    }

    /// Whether there is none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The items, in order.
    pub fn iter(&self) -> ListIter<'a, T> {
        ListIter(match self.0 {
            ListSource::Slice(s) => IterSource::Slice(s.iter()),
            ListSource::Message { payload, .. } => IterSource::Message(Attrs::new(payload)),
        })
    }
}

impl<'a, T: Listed> IntoIterator for List<'a, T> {
    type Item = T;
    type IntoIter = ListIter<'a, T>;

    fn into_iter(self) -> ListIter<'a, T> {
        self.iter()
    }
}

impl<'a, T: Listed> IntoIterator for &List<'a, T> {
    type Item = T;
    type IntoIter = ListIter<'a, T>;

    fn into_iter(self) -> ListIter<'a, T> {
        self.iter()
    }
}

/// Iterator over a [`List`].
#[derive(Clone, Debug)]
pub struct ListIter<'a, T>(IterSource<'a, T>);

#[derive(Clone, Debug)]
enum IterSource<'a, T> {
    Slice(core::slice::Iter<'a, T>),
    Message(Attrs<'a>),
}

impl<T: Listed> Iterator for ListIter<'_, T> {
    type Item = T;

    fn next(&mut self) -> Option<T> {
        match &mut self.0 {
            IterSource::Slice(it) => it.next().copied(),
            // The message's parser checked it: every attribute is well formed and every item
            // parses.
            IterSource::Message(attrs) => attrs.find_map(|a| match a {
                Ok(a) if a.kind == T::ATTR => T::parse_item(a.data).ok(),
                _ => None,
            }),
        }
    }
}

/// The directives of a [`TakeoverReply`]: a slice when the kernel writes the reply, the
/// parsed message when permctl reads it.
pub type Directives<'a> = List<'a, DirectiveInfo>;

/// Iterator over [`Directives`].
pub type DirectiveIter<'a> = ListIter<'a, DirectiveInfo>;

impl Listed for DirectiveInfo {
    const ATTR: u16 = attr::DIRECTIVE;

    fn parse_item(payload: &[u8]) -> Result<Self, Error> {
        DirectiveInfo::parse(payload)
    }
}

/// One message of the TAKEN_GET dump: one nested [`attr::TAKEN_CONN`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TakenReply {
    /// A taken-over connection.
    pub taken: TakenInfo,
}

impl TakenReply {
    /// Writes the nested connection.
    pub fn write(&self, w: &mut Writer<'_>) -> Result<(), Error> {
        self.taken.write(w)
    }

    /// Parses the message's single taken-over connection.
    pub fn parse(payload: &[u8]) -> Result<Self, Error> {
        let a = single(
            payload,
            attr::TAKEN_CONN,
            c"message carries no taken-over connection",
        )?;
        TakenInfo::parse(a.data).map(|taken| Self { taken })
    }
}

/// DIRECTIVE request: the failed node and one of its connections. Peers also send it to each
/// other over UDP, prefixed by [`DIRECTIVE_MAGIC`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DirectiveRequest {
    /// [`attr::NODE_ID`]: the failed node.
    pub node: u32,
    /// [`attr::OWNER_ADDR`] to [`attr::CLIENT_PORT`]: the connection.
    pub key: FlowKey,
    /// [`attr::PARK_MS`]: how long it waits for a listener (at most [`MAX_PARK_MS`]), if
    /// given.
    pub park_ms: Option<u32>,
    /// [`attr::FROM_NODE`]: the peer that sends the directive, if known; then only the next
    /// peer after it in the policy's order takes the connection.
    pub from: Option<u32>,
}

impl DirectiveRequest {
    /// Writes the node, the connection's key, the parking time and the sender, if given.
    pub fn write(&self, w: &mut Writer<'_>) -> Result<(), Error> {
        w.put_u32(attr::NODE_ID, self.node)?;
        put_key(w, attr::OWNER_ADDR, &self.key)?;
        if let Some(ms) = self.park_ms {
            w.put_u32(attr::PARK_MS, ms)?;
        }
        if let Some(n) = self.from {
            w.put_u32(attr::FROM_NODE, n)?;
        }
        Ok(())
    }

    /// Parses a request strictly: node, both addresses and ports, once each.
    pub fn parse(payload: &[u8]) -> Result<Self, Error> {
        let mut r = Self::default();
        let mut seen = Seen::default();
        for a in Attrs::new(payload) {
            let a = a?;
            match a.kind {
                _ if key_attr(&a, attr::OWNER_ADDR, &mut r.key)?.is_some() => {}
                attr::NODE_ID => r.node = a.u32()?,
                attr::PARK_MS => {
                    let ms = a.u32()?;
                    if ms > MAX_PARK_MS {
                        return inval(c"parking time above one hour");
                    }
                    r.park_ms = Some(ms);
                }
                attr::FROM_NODE => r.from = Some(a.u32()?),
                _ => return inval(c"unknown attribute in request"),
            }
            seen.once(a.kind)?;
        }
        require(
            &seen,
            &[
                attr::NODE_ID,
                attr::OWNER_ADDR,
                attr::OWNER_PORT,
                attr::CLIENT_ADDR,
                attr::CLIENT_PORT,
            ],
            c"a directive needs the node, both addresses and both ports",
        )?;
        Ok(r)
    }
}

/// DIRECTIVE reply: what taking the connection over did, and the next peer when it goes on.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DirectiveReply {
    /// What carrying out the directive did.
    pub counts: Counts,
    /// [`attr::NEXT_NODE`]: the peer the connection goes to next, when this node cannot take
    /// it over either.
    pub next_node: Option<u32>,
}

impl DirectiveReply {
    /// Writes the counts and the next node, if any.
    pub fn write(&self, w: &mut Writer<'_>) -> Result<(), Error> {
        self.counts.write(w)?;
        match self.next_node {
            Some(n) => w.put_u32(attr::NEXT_NODE, n),
            None => Ok(()),
        }
    }

    /// Parses a reply: every count once, the next node at most once.
    pub fn parse(payload: &[u8]) -> Result<Self, Error> {
        let mut r = Self::default();
        let mut seen = Seen::default();
        for a in Attrs::new(payload) {
            let a = a?;
            seen.once(a.kind)?;
            if r.counts.take(&a)? {
                continue;
            }
            match a.kind {
                attr::NEXT_NODE => r.next_node = Some(a.u32()?),
                _ => return inval(c"unknown attribute in directive reply"),
            }
        }
        require(&seen, &Counts::KINDS, c"directive reply count missing")?;
        Ok(r)
    }
}

/// LEASE_SET request: [`attr::LEASE_MS`], the lease's length from now (0 releases it).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LeaseRequest {
    /// Milliseconds from now; at most [`MAX_LEASE_MS`].
    pub ms: u32,
}

/// The longest lease: one minute (a daemon renews every heartbeat; a longer lease would only
/// delay the takeover after a crash).
pub const MAX_LEASE_MS: u32 = 60_000;

impl LeaseRequest {
    /// Writes the lease's length.
    pub fn write(&self, w: &mut Writer<'_>) -> Result<(), Error> {
        w.put_u32(attr::LEASE_MS, self.ms)
    }

    /// Parses the lease's length, given once and at most [`MAX_LEASE_MS`].
    pub fn parse(payload: &[u8]) -> Result<Self, Error> {
        let mut ms = None;
        for a in Attrs::new(payload) {
            let a = a?;
            match a.kind {
                attr::LEASE_MS if ms.is_none() => ms = Some(a.u32()?),
                attr::LEASE_MS => return inval(c"attribute given more than once"),
                _ => return inval(c"unknown attribute in request"),
            }
        }
        match ms {
            Some(ms) if ms <= MAX_LEASE_MS => Ok(Self { ms }),
            Some(_) => inval(c"lease above one minute"),
            None => inval(c"request carries no lease length"),
        }
    }
}

/// REJOIN request: [`attr::NODE_ID`], a node declared failed here that is back (owner
/// recovery done): it is a member again.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RejoinRequest {
    /// The node.
    pub node: u32,
}

impl RejoinRequest {
    /// Writes the node.
    pub fn write(&self, w: &mut Writer<'_>) -> Result<(), Error> {
        w.put_u32(attr::NODE_ID, self.node)
    }

    /// Parses a request: the node id, once.
    pub fn parse(payload: &[u8]) -> Result<Self, Error> {
        parse_node(payload).map(|node| Self { node })
    }
}

/// The most connections of this node's bindings that peers may hand back (RECOVERY), all
/// peers together.
pub const MAX_HANDED: usize = 16384;

/// RECOVERY request, an owner-recovery directive: peer [`attr::NODE_ID`] serves the
/// connections listed (one nested [`attr::SERVED`] each, the key's attributes as in
/// `directive_attr`) of this node's bindings. The list replaces the peer's earlier one, or
/// with [`attr::APPEND`] adds to it (a list too long for one message). An empty list without
/// `APPEND` clears it.
///
/// Not an [`Operation`]: its list borrows the request (the host's callers own the keys,
/// the kernel reads them in place).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RecoveryRequest<'a> {
    /// The peer serving the connections.
    pub node: u32,
    /// Whether the list adds to the peer's earlier one.
    pub append: bool,
    /// The connections.
    pub served: Served<'a>,
}

/// The connections of a [`RecoveryRequest`]: keys to write, or a parsed request's.
pub type Served<'a> = List<'a, FlowKey>;

impl Listed for FlowKey {
    const ATTR: u16 = attr::SERVED;

    fn parse_item(payload: &[u8]) -> Result<Self, Error> {
        parse_served(payload)
    }
}

/// Parses one [`attr::SERVED`]: both addresses and both ports, once each.
fn parse_served(payload: &[u8]) -> Result<FlowKey, Error> {
    let mut k = FlowKey::default();
    let mut seen = Seen::default();
    for a in Attrs::new(payload) {
        let a = a?;
        seen.once(a.kind)?;
        if key_attr(&a, directive_attr::OWNER_ADDR, &mut k)?.is_none() {
            return inval(c"unknown attribute in a served connection");
        }
    }
    require(
        &seen,
        &[
            directive_attr::OWNER_ADDR,
            directive_attr::OWNER_PORT,
            directive_attr::CLIENT_ADDR,
            directive_attr::CLIENT_PORT,
        ],
        c"a served connection needs both addresses and both ports",
    )?;
    Ok(k)
}

impl<'a> RecoveryRequest<'a> {
    /// Its command (a `doit`; the kernel answers with an [`Ack`]).
    pub const CMD: u8 = cmd::RECOVERY;

    /// Writes the peer, the append flag and one nest per connection.
    pub fn write(&self, w: &mut Writer<'_>) -> Result<(), Error> {
        w.put_u32(attr::NODE_ID, self.node)?;
        if self.append {
            w.put_flag(attr::APPEND)?;
        }
        for k in self.served.iter() {
            let nest = w.nest_start(attr::SERVED)?;
            put_key(w, directive_attr::OWNER_ADDR, &k)?;
            w.nest_end(nest)?;
        }
        Ok(())
    }

    /// Parses a request strictly: the peer once, the flag at most once, every served
    /// connection complete, at most [`MAX_HANDED`] of them.
    pub fn parse(payload: &'a [u8]) -> Result<Self, Error> {
        let mut r = Self::default();
        let mut node = None;
        let mut count = 0usize;
        for a in Attrs::new(payload) {
            let a = a?;
            match a.kind {
                attr::NODE_ID if node.is_none() => node = Some(a.u32()?),
                attr::APPEND if !r.append => {
                    a.flag()?;
                    r.append = true;
                }
                attr::NODE_ID | attr::APPEND => return inval(c"attribute given more than once"),
                attr::SERVED => {
                    parse_served(a.data)?;
                    count += 1;
                    if count > MAX_HANDED {
                        return Err(Error::new(code::E2BIG, c"too many served connections"));
                    }
                }
                _ => return inval(c"unknown attribute in request"),
            }
        }
        r.node = node.ok_or(Error::new(
            code::EINVAL,
            c"a recovery directive needs the peer's node id",
        ))?;
        r.served = Served::from_message(payload, count);
        Ok(r)
    }
}

/// A notification of the `events` multicast group ([`super::uapi::MCGRP_EVENTS`]): what
/// happened, to which node's connections. Each has its own command.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    /// NODE_FAILED_NTF: `node` was declared failed here and its connections taken over.
    NodeFailed {
        /// The failed node.
        node: u32,
    },
    /// CONN_TAKEN_NTF: a connection of `node` was taken over.
    Taken {
        /// The failed node.
        node: u32,
        /// Its record (as TAKEN_GET gives it).
        taken: TakenInfo,
    },
    /// CONN_RESET_NTF: a connection of `node` no peer can take over was reset.
    Reset {
        /// The failed node.
        node: u32,
        /// The connection.
        key: FlowKey,
    },
    /// DIRECTIVE_NTF: a connection of `node` was handed to the next peer.
    Directive {
        /// The failed node.
        node: u32,
        /// The connection and the next peer.
        directive: DirectiveInfo,
    },
    /// CONN_NOT_READY_NTF: a connection of `node` was not ready to take over here.
    NotReady {
        /// The failed node.
        node: u32,
        /// The connection.
        key: FlowKey,
        /// Why ([`super::uapi::not_ready`]).
        reason: u8,
    },
}

impl Event {
    /// The notification's command.
    pub fn cmd(&self) -> u8 {
        match self {
            Event::NodeFailed { .. } => cmd::NODE_FAILED_NTF,
            Event::Taken { .. } => cmd::CONN_TAKEN_NTF,
            Event::Reset { .. } => cmd::CONN_RESET_NTF,
            Event::Directive { .. } => cmd::DIRECTIVE_NTF,
            Event::NotReady { .. } => cmd::CONN_NOT_READY_NTF,
        }
    }

    /// Writes the notification's attributes.
    pub fn write(&self, w: &mut Writer<'_>) -> Result<(), Error> {
        match self {
            Event::NodeFailed { node } => w.put_u32(attr::NODE_ID, *node),
            Event::Taken { node, taken } => {
                w.put_u32(attr::NODE_ID, *node)?;
                taken.write(w)
            }
            Event::Reset { node, key } => {
                w.put_u32(attr::NODE_ID, *node)?;
                put_key(w, attr::OWNER_ADDR, key)
            }
            Event::Directive { node, directive } => {
                w.put_u32(attr::NODE_ID, *node)?;
                directive.write(w)
            }
            Event::NotReady { node, key, reason } => {
                w.put_u32(attr::NODE_ID, *node)?;
                put_key(w, attr::OWNER_ADDR, key)?;
                w.put_u8(attr::NOT_READY_REASON, *reason)
            }
        }
    }

    /// Parses a notification of command `command`.
    pub fn parse(command: u8, payload: &[u8]) -> Result<Self, Error> {
        let mut node = None;
        let mut key = FlowKey::default();
        let mut keys = 0;
        let (mut taken, mut directive, mut reason) = (None, None, None);
        let mut seen = Seen::default();
        for a in Attrs::new(payload) {
            let a = a?;
            seen.once(a.kind)?;
            if key_attr(&a, attr::OWNER_ADDR, &mut key)?.is_some() {
                keys += 1;
                continue;
            }
            match a.kind {
                attr::NODE_ID => node = Some(a.u32()?),
                attr::TAKEN_CONN => taken = Some(TakenInfo::parse(a.data)?),
                attr::DIRECTIVE => directive = Some(DirectiveInfo::parse(a.data)?),
                attr::NOT_READY_REASON => reason = Some(a.u8()?),
                _ => return inval(c"unknown attribute in notification"),
            }
        }
        let Some(node) = node else {
            return inval(c"notification carries no node id");
        };
        let full_key = keys == 4;
        match (command, taken, directive, reason) {
            (cmd::NODE_FAILED_NTF, None, None, None) if keys == 0 => Ok(Event::NodeFailed { node }),
            (cmd::CONN_TAKEN_NTF, Some(taken), None, None) if keys == 0 => {
                Ok(Event::Taken { node, taken })
            }
            (cmd::CONN_RESET_NTF, None, None, None) if full_key => Ok(Event::Reset { node, key }),
            (cmd::DIRECTIVE_NTF, None, Some(directive), None) if keys == 0 => {
                Ok(Event::Directive { node, directive })
            }
            (cmd::CONN_NOT_READY_NTF, None, None, Some(reason)) if full_key => {
                Ok(Event::NotReady { node, key, reason })
            }
            _ => inval(c"notification attributes do not match its command"),
        }
    }
}
