// SPDX-License-Identifier: GPL-2.0

//! Typed calls of the `permtcp` family, one method of [`Client`] per operation, returning
//! what the kernel answered as data (nothing is printed here): `permctl`'s commands and
//! `permtcpd`'s kernel side both go through them.
//!
//! [`Client::assume_addresses`] is the address assumption of a takeover, exactly as
//! `permctl takeover` does it before TAKEOVER: the node the failed owner's ARP policy names
//! adds the owner's addresses to the snooped device.

use crate::netlink::{replies, reply, Client, CtlError};
use permtcp_logic::decl::Declaration;
use permtcp_logic::nla::Writer;
use permtcp_logic::ops::{
    ConnGetRequest, Counts, DataRequest, DeclAddRequest, DeclDelRequest, DeclGetRequest,
    DirectiveReply, DirectiveRequest, LeaseRequest, RecoveryRequest, RejoinRequest, Served,
    SnoopStopRequest, StartRequest, StatsRequest, StatusReply, StatusRequest, TakenGetRequest,
    TakenKeyRequest, TakeoverRequest,
};
use permtcp_logic::packet::Addr;
use permtcp_logic::policy::{hold, Hold};
use permtcp_logic::snoop::FlowKey;
use permtcp_logic::snoopnl::{ConnInfo, DirectiveInfo, StatsInfo, TakenInfo};
use permtcp_logic::track::Side;
use std::net::IpAddr;

/// errno `EAGAIN`: a DIRECTIVE for a node not declared failed here (yet).
pub const EAGAIN: i32 = 11;
/// errno `EALREADY`: a second TAKEOVER of the same node.
pub const EALREADY: i32 = 114;
/// errno `EBUSY`: SNOOP_START while snooping.
pub const EBUSY: i32 = 16;

/// Limits of SNOOP_START; `None`: the module's default.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SnoopLimits {
    /// Mirrored connections at most.
    pub max_conns: Option<u32>,
    /// Retained bytes at most.
    pub max_bytes: Option<u64>,
    /// Client bytes kept behind the owner's acknowledgement at least.
    pub keep_received: Option<u32>,
    /// Bytes one connection may hold at most.
    pub max_conn_bytes: Option<u64>,
    /// Milliseconds without a segment before an incomplete handshake is forgotten.
    pub syn_timeout_ms: Option<u32>,
    /// Milliseconds without a segment before another connection (not in TIME-WAIT) is
    /// forgotten.
    pub idle_timeout_ms: Option<u32>,
}

/// What a TAKEOVER did, its directives copied out of the reply.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TakeoverOutcome {
    /// Taken, parked, failed, reset, rebuild time.
    pub counts: Counts,
    /// The failed node's connections not ready here (those directed and reset included).
    pub not_ready: u32,
    /// Connections the policy gives to other nodes.
    pub not_mine: u32,
    /// One per connection this node could not take over: the next peer to direct it to.
    pub directives: Vec<DirectiveInfo>,
}

/// The index of network device `dev` in this namespace.
pub fn ifindex(dev: &str) -> Result<u32, CtlError> {
    let name =
        std::ffi::CString::new(dev).map_err(|_| CtlError::Transport("bad device name".into()))?;
    // SAFETY: `name` is a valid NUL-terminated string for the duration of the call.
    match unsafe { libc::if_nametoindex(name.as_ptr()) } {
        0 => Err(CtlError::Usage(format!(
            "no network device '{dev}' in this namespace"
        ))),
        i => Ok(i),
    }
}

impl Client {
    /// STATUS_GET.
    pub fn status(&self) -> Result<StatusReply, CtlError> {
        let msgs = self.call(&StatusRequest)?;
        reply::<StatusRequest>(&msgs, "status")
    }

    /// DECL_GET: the declarations of this namespace.
    pub fn declarations(&self) -> Result<Vec<Declaration>, CtlError> {
        let msgs = self.call(&DeclGetRequest)?;
        Ok(replies::<DeclGetRequest>(&msgs)?
            .into_iter()
            .map(|r| r.decl)
            .collect())
    }

    /// DECL_ADD.
    pub fn decl_add(&self, decl: &Declaration) -> Result<(), CtlError> {
        self.call(&DeclAddRequest { decl: *decl }).map(drop)
    }

    /// DECL_DEL.
    pub fn decl_del(&self, node: u32) -> Result<(), CtlError> {
        self.call(&DeclDelRequest { node }).map(drop)
    }

    /// SNOOP_START on device `ifindex`.
    pub fn snoop_start(&self, ifindex: u32, limits: SnoopLimits) -> Result<(), CtlError> {
        self.call(&StartRequest {
            ifindex,
            max_conns: limits.max_conns,
            max_bytes: limits.max_bytes,
            keep_received: limits.keep_received,
            max_conn_bytes: limits.max_conn_bytes,
            syn_timeout_ms: limits.syn_timeout_ms,
            idle_timeout_ms: limits.idle_timeout_ms,
        })
        .map(drop)
    }

    /// SNOOP_STOP.
    pub fn snoop_stop(&self) -> Result<(), CtlError> {
        self.call(&SnoopStopRequest).map(drop)
    }

    /// STATS_GET: the snooping counters and limits.
    pub fn stats(&self) -> Result<StatsInfo, CtlError> {
        let msgs = self.call(&StatsRequest)?;
        Ok(reply::<StatsRequest>(&msgs, "statistics")?.stats)
    }

    /// CONN_GET: the mirrored connections.
    pub fn conns(&self) -> Result<Vec<ConnInfo>, CtlError> {
        let msgs = self.call(&ConnGetRequest)?;
        Ok(replies::<ConnGetRequest>(&msgs)?
            .into_iter()
            .map(|r| r.conn)
            .collect())
    }

    /// CONN_DATA_GET: the retained bytes of one direction, as (sequence number, bytes)
    /// pieces in order.
    pub fn conn_data(&self, key: FlowKey, side: Side) -> Result<Vec<(u32, Vec<u8>)>, CtlError> {
        let msgs = self.call(&DataRequest { key, side })?;
        Ok(replies::<DataRequest>(&msgs)?
            .into_iter()
            .map(|c| (c.seq, c.data.to_vec()))
            .collect())
    }

    /// TAKEOVER of failed node `node` (addresses are not assumed: see
    /// [`Client::assume_addresses`]).
    pub fn takeover(&self, node: u32, park_ms: Option<u32>) -> Result<TakeoverOutcome, CtlError> {
        let msgs = self.call(&TakeoverRequest { node, park_ms })?;
        let r = reply::<TakeoverRequest>(&msgs, "takeover reply")?;
        Ok(TakeoverOutcome {
            counts: r.counts,
            not_ready: r.not_ready,
            not_mine: r.not_mine,
            directives: r.directives.iter().collect(),
        })
    }

    /// DIRECTIVE: take over one connection of a failed node another peer directed here.
    /// `EAGAIN` (the node is not declared failed here yet) comes back as
    /// [`CtlError::Kernel`] with errno [`EAGAIN`].
    pub fn directive(&self, req: &DirectiveRequest) -> Result<DirectiveReply, CtlError> {
        let msgs = self.call(req)?;
        reply::<DirectiveRequest>(&msgs, "directive reply")
    }

    /// RECOVERY, an owner-recovery directive to this (recovered) node's kernel: peer `node`
    /// serves `served` of this node's bindings. Replaces the peer's earlier list, or with
    /// `append` adds to it; a long list goes in several requests (the first replacing, the
    /// others appending), at most [`RECOVERY_BATCH`] connections each.
    pub fn recovery(&self, node: u32, served: &[FlowKey], append: bool) -> Result<(), CtlError> {
        let mut batches = served.chunks(RECOVERY_BATCH);
        let first = batches.next().unwrap_or(&[]);
        for (i, batch) in std::iter::once(first).chain(batches).enumerate() {
            let req = RecoveryRequest {
                node,
                append: append || i > 0,
                served: Served::from_slice(batch),
            };
            let mut buf = vec![0u8; 64 + batch.len() * 64];
            let mut w = Writer::new(&mut buf);
            req.write(&mut w)
                .map_err(|e| CtlError::Transport(e.text().into()))?;
            let n = w.len();
            self.request_raw(RecoveryRequest::CMD, &buf[..n], false)?;
        }
        Ok(())
    }

    /// LEASE_SET: this node's lease on its own bindings for `ms` from now (0: release it).
    pub fn lease(&self, ms: u32) -> Result<(), CtlError> {
        self.call(&LeaseRequest { ms }).map(drop)
    }

    /// REJOIN: node `node`, declared failed here, is back and a member again (owner
    /// recovery, on a peer).
    pub fn rejoin(&self, node: u32) -> Result<(), CtlError> {
        self.call(&RejoinRequest { node }).map(drop)
    }

    /// TAKEN_GET: the connections taken over here.
    pub fn taken(&self) -> Result<Vec<TakenInfo>, CtlError> {
        let msgs = self.call(&TakenGetRequest)?;
        Ok(replies::<TakenGetRequest>(&msgs)?
            .into_iter()
            .map(|r| r.taken)
            .collect())
    }

    /// TAKEN_GET for one connection: its newest record, `None` when it was not taken over
    /// here (or its record is gone).
    pub fn taken_one(&self, key: &FlowKey) -> Result<Option<TakenInfo>, CtlError> {
        let msgs = self.call(&TakenKeyRequest { key: *key })?;
        Ok(replies::<TakenKeyRequest>(&msgs)?
            .into_iter()
            .next()
            .map(|r| r.taken))
    }

    /// Adds the addresses of failed node `node` whose ARP ownership the policy gives this
    /// node (the local declaration) to the snooped device, before TAKEOVER: the rebuilt
    /// sockets' first segments prompt the client, whose answers must find the address local.
    /// The failed node's other addresses of which this node is a peer (it may serve their
    /// connections: by the policy's order, or brought by a fail-over directive) are held
    /// quietly ([`Hold::Quiet`]): on the loopback device, with the snooped device set to
    /// answer ARP only for its own addresses and to use them in its own requests
    /// (`arp_ignore` 1, `arp_announce` 2, as LVS direct-routing servers hold their service
    /// address), so that the ARP owner alone answers for the address while the kernel hands
    /// this node's connections' frames, addressed to the ARP owner's MAC, to the local stack.
    /// The same policy code (`permtcp_logic::policy`) decides here and in the kernel; the
    /// other failed nodes come from STATUS_GET. Returns the addresses and the device index
    /// (the loopback's for a quiet one); nothing when the node or the local declaration is
    /// unknown (TAKEOVER then says what is wrong) or when this node does not snoop.
    pub fn assume_addresses(&self, node: u32) -> Result<Vec<(IpAddr, u32)>, CtlError> {
        let mut done = Vec::new();
        self.each_address(node, |route, ifindex, ip, h| {
            match h {
                Hold::Announced => {
                    route.add_address(ifindex, ip)?;
                    done.push((ip, ifindex));
                }
                Hold::Quiet => {
                    hold_quietly(route, ifindex, ip)?;
                    done.push((ip, LOOPBACK_IFINDEX));
                }
                Hold::No => {}
            }
            Ok(())
        })?;
        Ok(done)
    }

    /// Calls `f` for each address of node `node` with an rtnetlink connection, the snooped
    /// device's index and how this node holds the address while `node` (and the nodes
    /// STATUS_GET lists) are failed. Nothing when the node or the local declaration is
    /// unknown or when this node does not snoop.
    pub(crate) fn each_address(
        &self,
        node: u32,
        mut f: impl FnMut(&Client, u32, IpAddr, Hold) -> Result<(), CtlError>,
    ) -> Result<(), CtlError> {
        let decls = self.declarations()?;
        let (Some(owner), Some(me)) = (
            decls.iter().find(|d| d.node_id == node),
            decls.iter().find(|d| d.local).map(|d| d.node_id),
        ) else {
            return Ok(());
        };
        let failed = self.status()?.failed;
        let is_failed = |n: u32| n == node || failed.as_slice().contains(&n);
        let ifindex = self.stats()?.ifindex;
        if ifindex == 0 {
            return Ok(());
        }
        let route = Client::connect_route()?;
        let v4 = owner
            .addrs4
            .iter()
            .map(|a| (Addr::v4(*a), IpAddr::from(*a)));
        let v6 = owner.addrs6.iter().map(|a| (Addr(*a), IpAddr::from(*a)));
        for (a, ip) in v4.chain(v6) {
            f(
                &route,
                ifindex,
                ip,
                hold(decls.iter(), owner, &a, me, &is_failed),
            )?;
        }
        Ok(())
    }
}

/// Holds `ip` quietly ([`Hold::Quiet`]): on the loopback device, with the snooped device
/// `ifindex` answering ARP for none but its own addresses (over `route`, rtnetlink).
pub(crate) fn hold_quietly(route: &Client, ifindex: u32, ip: IpAddr) -> Result<(), CtlError> {
    if ip.is_ipv4() {
        quiet_arp(ifindex)?;
    }
    route.add_address(LOOPBACK_IFINDEX, ip)
}

/// The loopback device's index, the same in every network namespace.
const LOOPBACK_IFINDEX: u32 = 1;

/// Has device `ifindex` answer ARP only for addresses configured on it and name one of those
/// in its own requests (`arp_ignore` at least 1, `arp_announce` 2), so that an address held
/// on the loopback device is neither answered for nor used as the sender of its requests
/// (a client would then send the address's frames to this node's MAC).
fn quiet_arp(ifindex: u32) -> Result<(), CtlError> {
    let mut name = [0 as libc::c_char; libc::IF_NAMESIZE];
    // SAFETY: `name` has room for IF_NAMESIZE bytes, as if_indextoname requires.
    if unsafe { libc::if_indextoname(ifindex, name.as_mut_ptr()) }.is_null() {
        let e = std::io::Error::last_os_error();
        return Err(CtlError::Transport(format!("interface {ifindex}: {e}")));
    }
    // SAFETY: if_indextoname wrote a NUL-terminated name into `name`.
    let dev = unsafe { std::ffi::CStr::from_ptr(name.as_ptr()) }.to_string_lossy();
    for (knob, want) in [("arp_ignore", 1), ("arp_announce", 2)] {
        let path = format!("/proc/sys/net/ipv4/conf/{dev}/{knob}");
        let io = |e: std::io::Error| CtlError::Transport(format!("{path}: {e}"));
        let now: u32 = std::fs::read_to_string(&path)
            .map_err(io)?
            .trim()
            .parse()
            .unwrap_or(0);
        if now < want {
            std::fs::write(&path, format!("{want}\n")).map_err(io)?;
        }
    }
    Ok(())
}

/// The most connections one RECOVERY request carries (about 44 KiB of attributes: a netlink
/// request stays well within the 64 KiB a message may hold).
pub const RECOVERY_BATCH: usize = 1000;
