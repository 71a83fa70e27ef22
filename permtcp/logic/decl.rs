// SPDX-License-Identifier: GPL-2.0

//! Ownership declarations (Documentation/design.rst, "Ownership declarations"), parsed,
//! validated and written back as netlink attributes.
//!
//! A declaration says which addresses, MACs and port ranges a cluster node owns, with which
//! protocol, how its connections and its ARP ownership fail over, which applications must run
//! and what happens to received data the application may not have read. Parsing is strict and
//! checks one declaration on its own ([`Declaration::parse`]); [`Declaration::conflicts_with`]
//! checks it against a declaration already stored.

use super::bounded::Bounded;
use super::errno::{code, inval, Error};
use super::nla::{Attr, Attrs, Seen, Writer};
use super::uapi::{arp, attr, decl_attr, failover, midresp, proto, range_attr, rxdata};

/// Maximum IPv4 addresses per declaration.
pub const MAX_ADDRS4: usize = 16;
/// Maximum IPv6 addresses per declaration.
pub const MAX_ADDRS6: usize = 16;
/// Maximum MAC addresses per declaration.
pub const MAX_MACS: usize = 8;
/// Maximum port ranges per declaration.
pub const MAX_RANGES: usize = 16;
/// Maximum peers in one port range's peer list.
pub const MAX_PEERS: usize = 8;
/// Maximum applications per declaration.
pub const MAX_APPS: usize = 4;
/// Maximum length of an application name, without its NUL.
pub const APP_NAME_MAX: usize = 63;
/// Maximum declarations per network namespace.
pub const MAX_DECLS: usize = 64;

/// A port range with its optional ordered peer list.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PortRange {
    /// First port.
    pub lo: u16,
    /// Last port, inclusive.
    pub hi: u16,
    /// Peers that take this range over, in order (peer-list policy only).
    pub peers: Bounded<u32, MAX_PEERS>,
}

impl PortRange {
    /// Whether the two ranges share a port.
    pub fn overlaps(&self, other: &PortRange) -> bool {
        self.lo <= other.hi && other.lo <= self.hi
    }

    /// Whether `port` lies in the range.
    pub fn contains(&self, port: u16) -> bool {
        self.lo <= port && port <= self.hi
    }
}

/// An application name: 1 to [`APP_NAME_MAX`] printable ASCII bytes.
///
/// # Invariants
///
/// `len <= APP_NAME_MAX` and `bytes[..len]` is printable ASCII.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct AppName {
    bytes: [u8; APP_NAME_MAX],
    len: u8,
}

impl Default for AppName {
    fn default() -> Self {
        Self {
            bytes: [0; APP_NAME_MAX],
            len: 0,
        }
    }
}

impl AppName {
    /// Validates and copies a name.
    pub fn new(name: &[u8]) -> Result<Self, Error> {
        if name.is_empty() || name.len() > APP_NAME_MAX {
            return inval(c"application name must be 1 to 63 bytes");
        }
        if !name.iter().all(|b| (0x20..0x7f).contains(b)) {
            return inval(c"application name must be printable ASCII");
        }
        let mut app = Self::default();
        app.bytes[..name.len()].copy_from_slice(name);
        app.len = name.len() as u8;
        Ok(app)
    }

    /// The name's bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len as usize]
    }
}

impl core::fmt::Debug for AppName {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        // INVARIANT: the bytes are printable ASCII, hence UTF-8.
        f.write_str(core::str::from_utf8(self.as_bytes()).unwrap_or("?"))
    }
}

/// Which peer takes the connections over when the owner fails.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum FailoverPolicy {
    /// The live peer with the smallest node id.
    #[default]
    SmallestId,
    /// Each port range's own ordered peer list.
    PeerList,
}

/// Which node answers ARP for the owner's addresses after a failure.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ArpPolicy {
    /// The node that takes the connections over.
    #[default]
    FollowFailover,
    /// The live peer with the smallest node id.
    SmallestId,
    /// This node.
    Fixed(u32),
}

/// What happens to received bytes the owner's application may not have read
/// (Documentation/takeover.rst, "Received data").
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum RxPolicy {
    /// Delivered to the restarted application from the first retained byte, which discards
    /// duplicates by the stream offsets.
    Deliver,
    /// Dropped; the application asks for them again.
    Drop,
    /// Only the bytes that arrived after the owner last sent new data are delivered: an
    /// unmodified request/response server never reads a request it had answered.
    #[default]
    Unanswered,
}

/// What a takeover does with a connection whose owner was in the middle of its output.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum MidResponse {
    /// Rebuilt as any other: an application resuming by the stream offsets continues.
    #[default]
    Continue,
    /// Reset at once, so that an unmodified client fails fast instead of waiting.
    Reset,
}

/// One node's ownership declaration.
///
/// # Invariants
///
/// A value returned by [`Declaration::parse`] satisfies every rule of [`Declaration::validate`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Declaration {
    /// Cluster-node id, non-zero and unique per namespace.
    pub node_id: u32,
    /// Whether this is the declaration of the node the namespace runs on.
    pub local: bool,
    /// Owned IPv4 addresses, network byte order.
    pub addrs4: Bounded<[u8; 4], MAX_ADDRS4>,
    /// Owned IPv6 addresses.
    pub addrs6: Bounded<[u8; 16], MAX_ADDRS6>,
    /// MAC addresses tied to the IP addresses.
    pub macs: Bounded<[u8; 6], MAX_MACS>,
    /// Port ranges that must survive a crash, pairwise disjoint.
    pub ranges: Bounded<PortRange, MAX_RANGES>,
    /// IP protocol; TCP only.
    pub proto: u8,
    /// Fail-over policy.
    pub failover: FailoverPolicy,
    /// ARP-ownership policy.
    pub arp: ArpPolicy,
    /// Applications that must run.
    pub apps: Bounded<AppName, MAX_APPS>,
    /// Received-data policy.
    pub rx: RxPolicy,
    /// Mid-response choice.
    pub mid: MidResponse,
}

fn push<T: Copy + Default, const N: usize>(
    list: &mut Bounded<T, N>,
    v: T,
    msg: &'static core::ffi::CStr,
) -> Result<(), Error> {
    list.push(v).map_err(|_| Error::new(code::E2BIG, msg))
}

fn has_duplicates<T: PartialEq>(items: &[T]) -> bool {
    items
        .iter()
        .enumerate()
        .any(|(i, a)| items[i + 1..].contains(a))
}

fn parse_range(a: &Attr<'_>) -> Result<PortRange, Error> {
    let mut r = PortRange::default();
    let (mut lo, mut hi) = (None, None);
    let mut seen = Seen::default();
    for sub in a.nested() {
        let sub = sub?;
        match sub.kind {
            range_attr::LO => {
                seen.once(sub.kind)?;
                lo = Some(sub.u16()?);
            }
            range_attr::HI => {
                seen.once(sub.kind)?;
                hi = Some(sub.u16()?);
            }
            range_attr::PEER => push(&mut r.peers, sub.u32()?, c"too many peers in a port range")?,
            _ => return inval(c"unknown port range attribute"),
        }
    }
    match (lo, hi) {
        (Some(lo), Some(hi)) => {
            r.lo = lo;
            r.hi = hi;
            Ok(r)
        }
        _ => inval(c"port range needs both its first and last port"),
    }
}

fn ipv4_usable(a: &[u8; 4]) -> bool {
    *a != [0; 4] && *a != [255; 4] && (a[0] & 0xf0) != 0xe0
}

fn ipv6_usable(a: &[u8; 16]) -> bool {
    *a != [0; 16] && a[0] != 0xff
}

fn mac_usable(m: &[u8; 6]) -> bool {
    *m != [0; 6] && m[0] & 1 == 0
}

impl Declaration {
    /// Parses and validates the payload of a [`attr::DECL`] attribute.
    pub fn parse(payload: &[u8]) -> Result<Self, Error> {
        let mut d = Declaration::default();
        let mut seen = Seen::default();
        let mut node = None;
        let mut protocol = None;
        let mut arp_policy = None;
        let mut arp_node = None;
        for a in Attrs::new(payload) {
            let a = a?;
            match a.kind {
                decl_attr::NODE_ID => {
                    seen.once(a.kind)?;
                    node = Some(a.u32()?);
                }
                decl_attr::ADDR4 => {
                    let v = a
                        .data
                        .try_into()
                        .or_else(|_| inval(c"IPv4 address must be 4 bytes"))?;
                    push(&mut d.addrs4, v, c"too many IPv4 addresses")?;
                }
                decl_attr::ADDR6 => {
                    let v = a
                        .data
                        .try_into()
                        .or_else(|_| inval(c"IPv6 address must be 16 bytes"))?;
                    push(&mut d.addrs6, v, c"too many IPv6 addresses")?;
                }
                decl_attr::MAC => {
                    let v = a
                        .data
                        .try_into()
                        .or_else(|_| inval(c"MAC address must be 6 bytes"))?;
                    push(&mut d.macs, v, c"too many MAC addresses")?;
                }
                decl_attr::PORTS => push(&mut d.ranges, parse_range(&a)?, c"too many port ranges")?,
                decl_attr::PROTO => {
                    seen.once(a.kind)?;
                    protocol = Some(a.u8()?);
                }
                decl_attr::FAILOVER => {
                    seen.once(a.kind)?;
                    d.failover = match a.u8()? {
                        failover::SMALLEST_ID => FailoverPolicy::SmallestId,
                        failover::PEER_LIST => FailoverPolicy::PeerList,
                        _ => return inval(c"unknown fail-over policy"),
                    };
                }
                decl_attr::ARP_POLICY => {
                    seen.once(a.kind)?;
                    arp_policy = Some(a.u8()?);
                }
                decl_attr::ARP_NODE => {
                    seen.once(a.kind)?;
                    arp_node = Some(a.u32()?);
                }
                decl_attr::APP => push(
                    &mut d.apps,
                    AppName::new(a.string()?)?,
                    c"too many applications",
                )?,
                decl_attr::RX_POLICY => {
                    seen.once(a.kind)?;
                    d.rx = match a.u8()? {
                        rxdata::DELIVER => RxPolicy::Deliver,
                        rxdata::DROP => RxPolicy::Drop,
                        rxdata::UNANSWERED => RxPolicy::Unanswered,
                        _ => return inval(c"unknown received-data policy"),
                    };
                }
                decl_attr::MID_RESPONSE => {
                    seen.once(a.kind)?;
                    d.mid = match a.u8()? {
                        midresp::CONTINUE => MidResponse::Continue,
                        midresp::RESET => MidResponse::Reset,
                        _ => return inval(c"unknown mid-response choice"),
                    };
                }
                decl_attr::LOCAL => {
                    seen.once(a.kind)?;
                    a.flag()?;
                    d.local = true;
                }
                _ => return inval(c"unknown declaration attribute"),
            }
        }
        d.node_id = match node {
            Some(n) => n,
            None => return inval(c"declaration needs a node id"),
        };
        d.proto = match protocol {
            Some(p) => p,
            None => return inval(c"declaration needs a protocol"),
        };
        d.arp = match (arp_policy, arp_node) {
            (None | Some(arp::FOLLOW_FAILOVER), None) => ArpPolicy::FollowFailover,
            (Some(arp::SMALLEST_ID), None) => ArpPolicy::SmallestId,
            (Some(arp::FIXED), Some(n)) => ArpPolicy::Fixed(n),
            (Some(arp::FIXED), None) => return inval(c"fixed ARP policy needs an ARP node"),
            (Some(arp::FOLLOW_FAILOVER | arp::SMALLEST_ID) | None, Some(_)) => {
                return inval(c"ARP node is only valid with the fixed ARP policy")
            }
            (Some(_), _) => return inval(c"unknown ARP policy"),
        };
        d.validate()?;
        Ok(d)
    }

    /// Checks the rules a declaration must satisfy on its own.
    pub fn validate(&self) -> Result<(), Error> {
        if self.node_id == 0 {
            return inval(c"node id 0 is reserved");
        }
        match self.proto {
            proto::TCP => {}
            proto::UDP | proto::SCTP => {
                return Err(Error::new(code::EPROTONOSUPPORT, c"only TCP is supported"))
            }
            _ => return inval(c"unknown protocol"),
        }
        if self.addrs4.is_empty() && self.addrs6.is_empty() {
            return inval(c"declaration needs at least one IP address");
        }
        if !self.addrs4.iter().all(ipv4_usable) || !self.addrs6.iter().all(ipv6_usable) {
            return inval(c"unspecified, broadcast or multicast IP address");
        }
        if has_duplicates(self.addrs4.as_slice()) || has_duplicates(self.addrs6.as_slice()) {
            return inval(c"IP address listed twice");
        }
        if !self.macs.iter().all(mac_usable) {
            return inval(c"zero or multicast MAC address");
        }
        if has_duplicates(self.macs.as_slice()) {
            return inval(c"MAC address listed twice");
        }
        if self.ranges.is_empty() {
            return inval(c"declaration needs at least one port range");
        }
        let ranges = self.ranges.as_slice();
        for (i, r) in ranges.iter().enumerate() {
            if r.lo == 0 || r.lo > r.hi {
                return inval(c"empty port range or port 0");
            }
            if ranges[i + 1..].iter().any(|o| o.overlaps(r)) {
                return inval(c"overlapping port ranges");
            }
            match self.failover {
                FailoverPolicy::SmallestId if !r.peers.is_empty() => {
                    return inval(c"peer lists need the peer-list fail-over policy")
                }
                FailoverPolicy::PeerList if r.peers.is_empty() => {
                    return inval(c"peer-list policy needs a peer list on every port range")
                }
                _ => {}
            }
            if r.peers.iter().any(|&p| p == 0 || p == self.node_id) {
                return inval(c"peer list names node 0 or the declaring node");
            }
            if has_duplicates(r.peers.as_slice()) {
                return inval(c"peer listed twice in a port range");
            }
        }
        if let ArpPolicy::Fixed(n) = self.arp {
            if n == 0 || n == self.node_id {
                return inval(c"ARP node must be another, non-zero node id");
            }
        }
        Ok(())
    }

    /// Whether `self` and `other` claim a common address.
    pub fn shares_address(&self, other: &Declaration) -> bool {
        self.addrs4
            .iter()
            .any(|a| other.addrs4.as_slice().contains(a))
            || self
                .addrs6
                .iter()
                .any(|a| other.addrs6.as_slice().contains(a))
    }

    /// Checks a new declaration against one already stored in the same namespace.
    pub fn conflicts_with(&self, stored: &Declaration) -> Result<(), Error> {
        if self.node_id == stored.node_id {
            return Err(Error::new(
                code::EEXIST,
                c"a declaration for this node id exists",
            ));
        }
        if self.local && stored.local {
            return Err(Error::new(
                code::EEXIST,
                c"another declaration is already local",
            ));
        }
        let ranges_overlap = || {
            self.ranges
                .iter()
                .any(|r| stored.ranges.iter().any(|s| r.overlaps(s)))
        };
        if self.shares_address(stored) && ranges_overlap() {
            return Err(Error::new(
                code::EADDRINUSE,
                c"address and port range already declared by another node",
            ));
        }
        Ok(())
    }

    /// Writes the declaration as a nested [`attr::DECL`] attribute.
    pub fn write(&self, w: &mut Writer<'_>) -> Result<(), Error> {
        let nest = w.nest_start(attr::DECL)?;
        match self.write_body(w) {
            Ok(()) => w.nest_end(nest),
            Err(e) => {
                w.nest_cancel(nest);
                Err(e)
            }
        }
    }

    fn write_body(&self, w: &mut Writer<'_>) -> Result<(), Error> {
        w.put_u32(decl_attr::NODE_ID, self.node_id)?;
        if self.local {
            w.put_flag(decl_attr::LOCAL)?;
        }
        for a in &self.addrs4 {
            w.put(decl_attr::ADDR4, a)?;
        }
        for a in &self.addrs6 {
            w.put(decl_attr::ADDR6, a)?;
        }
        for m in &self.macs {
            w.put(decl_attr::MAC, m)?;
        }
        for r in &self.ranges {
            let nest = w.nest_start(decl_attr::PORTS)?;
            w.put_u16(range_attr::LO, r.lo)?;
            w.put_u16(range_attr::HI, r.hi)?;
            for &p in &r.peers {
                w.put_u32(range_attr::PEER, p)?;
            }
            w.nest_end(nest)?;
        }
        w.put_u8(decl_attr::PROTO, self.proto)?;
        w.put_u8(
            decl_attr::FAILOVER,
            match self.failover {
                FailoverPolicy::SmallestId => failover::SMALLEST_ID,
                FailoverPolicy::PeerList => failover::PEER_LIST,
            },
        )?;
        match self.arp {
            ArpPolicy::FollowFailover => w.put_u8(decl_attr::ARP_POLICY, arp::FOLLOW_FAILOVER)?,
            ArpPolicy::SmallestId => w.put_u8(decl_attr::ARP_POLICY, arp::SMALLEST_ID)?,
            ArpPolicy::Fixed(n) => {
                w.put_u8(decl_attr::ARP_POLICY, arp::FIXED)?;
                w.put_u32(decl_attr::ARP_NODE, n)?;
            }
        }
        for app in &self.apps {
            w.put_str(decl_attr::APP, app.as_bytes())?;
        }
        w.put_u8(
            decl_attr::RX_POLICY,
            match self.rx {
                RxPolicy::Deliver => rxdata::DELIVER,
                RxPolicy::Drop => rxdata::DROP,
                RxPolicy::Unanswered => rxdata::UNANSWERED,
            },
        )?;
        w.put_u8(
            decl_attr::MID_RESPONSE,
            match self.mid {
                MidResponse::Continue => midresp::CONTINUE,
                MidResponse::Reset => midresp::RESET,
            },
        )
    }
}

// The requests of the declaration commands live with every other operation in `ops.rs`;
// these names stay for the callers that predate it.
pub use super::ops::{TakeoverRequest, MAX_PARK_MS};

/// Parses a DECL_ADD request: [`super::ops::DeclAddRequest::parse`].
pub fn parse_add_request(payload: &[u8]) -> Result<Declaration, Error> {
    super::ops::DeclAddRequest::parse(payload).map(|r| r.decl)
}

/// Parses a DECL_DEL request's node id: [`super::ops::DeclDelRequest::parse`].
pub fn parse_del_request(payload: &[u8]) -> Result<u32, Error> {
    super::ops::DeclDelRequest::parse(payload).map(|r| r.node)
}

/// Parses a TAKEOVER request: [`TakeoverRequest::parse`].
pub fn parse_takeover_request(payload: &[u8]) -> Result<TakeoverRequest, Error> {
    TakeoverRequest::parse(payload)
}

/// Requests without attributes must be empty: [`super::ops::parse_empty`].
pub fn parse_empty_request(payload: &[u8]) -> Result<(), Error> {
    super::ops::parse_empty(payload)
}

/// The declarations stored in one namespace, checked as a set.
///
/// Generic over how the caller stores declarations (the kernel keeps boxed values in a `KVec`),
/// so the rules live here, testable on the host.
pub fn check_insert<'a>(
    new: &Declaration,
    stored: impl ExactSizeIterator<Item = &'a Declaration>,
) -> Result<(), Error> {
    if stored.len() >= MAX_DECLS {
        return Err(Error::new(code::ENOSPC, c"declaration table full"));
    }
    for s in stored {
        new.conflicts_with(s)?;
    }
    Ok(())
}
