// SPDX-License-Identifier: GPL-2.0

//! The daemon's [`Kernel`] over the permtcp module's generic netlink family, through
//! permctl's client (`permctl::Client`, whose requests and replies are `permtcp_logic::ops`,
//! the kernel's own code).
//!
//! - Declarations: DECL_GET, then DECL_DEL and DECL_ADD of the difference ([`plan`]), the
//!   local declaration (from the configuration) marked local.
//! - Snooping: SNOOP_START on the configured device with the configured limits; `EBUSY` on
//!   the same device is fine (a restarted daemon).
//! - Takeover: the address assumption `permctl takeover` does
//!   (`Client::assume_addresses`: the addresses the failed owner's ARP policy gives this
//!   node), then TAKEOVER; the reply's directives go back to the daemon, which sends them.
//! - Directive: DIRECTIVE, with the authenticated sender as `FROM_NODE` (the kernel acts only
//!   as the next peer after it); `EAGAIN` is [`KernelError::NotYet`].
//! - The lease: LEASE_SET for what is left of the dead time at each heartbeat; once set, the
//!   kernel drops this node's own bindings' segments when it runs out (a node without
//!   quorum, or declared down, or whose daemon died, stops serving).
//!
//! Each change is logged with its duration. The netlink socket is opened on first use and
//! again after a transport failure (the module was reloaded, say). The lease has a socket of
//! its own: the daemon renews it from another thread, which must never wait for a takeover
//! to finish on the first socket.

use crate::config::Snoop;
use crate::kernel::{DirectiveResult, Kernel, KernelError, TakeoverResult};
use crate::log::{INFO, NOTICE};
use permctl::calls::{EAGAIN, EBUSY};
use permctl::{Client, CtlError};
use permtcp_logic::decl::Declaration;
use permtcp_logic::handoff::HandoffConn;
use permtcp_logic::snoop::FlowKey;
use permtcp_logic::snoopnl::DirectiveRequest;
use permtcp_logic::uapi::handoff_status as hs;
use std::collections::BTreeSet;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// What to change in the kernel's declarations.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Plan {
    /// Node ids to delete (DECL_DEL), first.
    pub delete: Vec<u32>,
    /// Declarations to add (DECL_ADD) after the deletions, the local one first.
    pub add: Vec<Declaration>,
}

impl Plan {
    /// Nothing to change.
    pub fn is_empty(&self) -> bool {
        self.delete.is_empty() && self.add.is_empty()
    }
}

/// The changes that make the kernel's declarations `kernel` into `wanted` (the local
/// declaration and every one the cluster announced). A declaration in the kernel that differs
/// from the wanted one of its node is replaced (deleted, then added). One of a configured peer
/// that has not announced itself in this run yet (`peers` minus the wanted) is kept, unless it
/// is marked local: deleting it would drop the peer's mirrored connections every time the
/// daemon restarts, before the peer's announcement arrives a few milliseconds later. Any
/// other declaration is deleted.
pub fn plan(kernel: &[Declaration], wanted: &[Declaration], peers: &BTreeSet<u32>) -> Plan {
    let mut p = Plan::default();
    for k in kernel {
        match wanted.iter().find(|w| w.node_id == k.node_id) {
            Some(w) if w == k => {}
            Some(_) => p.delete.push(k.node_id),
            None if peers.contains(&k.node_id) && !k.local => {}
            None => p.delete.push(k.node_id),
        }
    }
    let mut add: Vec<Declaration> = wanted
        .iter()
        .filter(|w| !kernel.contains(w))
        .copied()
        .collect();
    add.sort_by_key(|d| (!d.local, d.node_id));
    p.add = add;
    p
}

/// How long a hold asks again for connections with bytes still to send (busy).
const HOLD_WAIT: Duration = Duration::from_millis(500);
/// How long a take asks again for connections whose mirror is behind.
const TAKE_WAIT: Duration = Duration::from_millis(1000);

/// The kernel side of a running daemon.
pub struct NetlinkKernel {
    client: Mutex<Option<Client>>,
    lease_client: Mutex<Option<Client>>,
    peers: BTreeSet<u32>,
}

fn err(e: CtlError) -> KernelError {
    match e {
        CtlError::Kernel { errno: EAGAIN, .. } => KernelError::NotYet,
        e => KernelError::Other(e.to_string()),
    }
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

impl NetlinkKernel {
    /// The kernel side of a node whose configured peers are `peers`; connects on first use.
    pub fn new(peers: impl IntoIterator<Item = u32>) -> Self {
        Self {
            client: Mutex::new(None),
            lease_client: Mutex::new(None),
            peers: peers.into_iter().collect(),
        }
    }

    /// Runs `f` on the connection, opening it first if needed; a transport failure or a
    /// missing family closes it, so the next call opens it again.
    fn with<T>(&self, f: impl FnOnce(&Client) -> Result<T, CtlError>) -> Result<T, CtlError> {
        Self::on(&self.client, f)
    }

    fn on<T>(
        client: &Mutex<Option<Client>>,
        f: impl FnOnce(&Client) -> Result<T, CtlError>,
    ) -> Result<T, CtlError> {
        let mut slot = client.lock().unwrap_or_else(|p| p.into_inner());
        if slot.is_none() {
            *slot = Some(Client::connect()?);
        }
        let r = f(slot.as_ref().expect("connected"));
        if matches!(r, Err(CtlError::Transport(_) | CtlError::NotLoaded)) {
            *slot = None;
        }
        r
    }
}

impl Kernel for NetlinkKernel {
    fn set_declarations(&self, decls: &[Declaration]) -> Result<(), KernelError> {
        let t0 = Instant::now();
        self.with(|c| {
            let p = plan(&c.declarations()?, decls, &self.peers);
            if p.is_empty() {
                return Ok(());
            }
            for &n in &p.delete {
                c.decl_del(n)?;
            }
            for d in &p.add {
                c.decl_add(d)?;
            }
            let added: Vec<u32> = p.add.iter().map(|d| d.node_id).collect();
            crate::log!(
                INFO,
                "kernel declarations: added {added:?}, deleted {:?} ({})",
                p.delete,
                ms(t0.elapsed())
            );
            Ok(())
        })
        .map_err(err)
    }

    fn start_snooping(&self, snoop: &Snoop) -> Result<(), KernelError> {
        let t0 = Instant::now();
        self.with(|c| {
            let ifindex = permctl::ifindex(&snoop.device)?;
            match c.snoop_start(ifindex, snoop.limits) {
                Ok(()) => {
                    crate::log!(INFO, "snooping on {} ({})", snoop.device, ms(t0.elapsed()));
                    Ok(())
                }
                Err(CtlError::Kernel { errno: EBUSY, .. }) => {
                    let now = c.stats()?.ifindex;
                    if now == ifindex {
                        Ok(())
                    } else {
                        Err(CtlError::Usage(format!(
                            "the module snoops on interface {now}, not on {}",
                            snoop.device
                        )))
                    }
                }
                Err(e) => Err(e),
            }
        })
        .map_err(err)
    }

    fn takeover(
        &self,
        node: u32,
        park_ms: Option<u32>,
        assume: bool,
    ) -> Result<TakeoverResult, KernelError> {
        self.with(|c| {
            let t0 = Instant::now();
            let assumed: Vec<_> = if assume {
                c.assume_addresses(node)?
                    .into_iter()
                    .map(|(ip, _)| ip)
                    .collect()
            } else {
                Vec::new()
            };
            let t1 = Instant::now();
            if !assumed.is_empty() {
                crate::log!(NOTICE, "node {node}: assumed {assumed:?} ({})", ms(t1 - t0));
            }
            let r = c.takeover(node, park_ms)?;
            crate::log!(
                NOTICE,
                "node {node}: TAKEOVER took {} (rebuild {} us in the kernel)",
                ms(t1.elapsed()),
                r.counts.rebuild_ns / 1000
            );
            Ok(TakeoverResult {
                taken: r.counts.taken,
                parked: r.counts.parked,
                not_ready: r.not_ready,
                not_mine: r.not_mine,
                failed: r.counts.failed,
                reset: r.counts.reset,
                rebuild_ns: r.counts.rebuild_ns,
                assumed,
                directives: r.directives,
            })
        })
        .map_err(err)
    }

    fn directive(&self, req: &DirectiveRequest) -> Result<DirectiveResult, KernelError> {
        let r = self.with(|c| c.directive(req)).map_err(err)?;
        Ok(if let Some(next) = r.next_node {
            DirectiveResult::PassOn { next }
        } else if r.counts.taken > 0 {
            DirectiveResult::Taken {
                parked: r.counts.parked > 0,
            }
        } else if r.counts.reset > 0 {
            DirectiveResult::Reset
        } else {
            DirectiveResult::Failed
        })
    }

    fn served(&self, node: u32) -> Result<Vec<FlowKey>, KernelError> {
        self.with(|c| c.served(node)).map_err(err)
    }

    fn hand_back(&self, node: u32) -> Result<Vec<std::net::IpAddr>, KernelError> {
        self.with(|c| c.hand_back_addresses(node)).map_err(err)
    }

    fn rejoin(&self, node: u32) -> Result<(), KernelError> {
        self.with(|c| c.rejoin(node)).map_err(err)
    }

    fn failed_nodes(&self) -> Result<Vec<u32>, KernelError> {
        self.with(|c| Ok(c.status()?.failed.as_slice().to_vec()))
            .map_err(err)
    }

    fn recovery(&self, node: u32, served: &[FlowKey]) -> Result<(), KernelError> {
        self.with(|c| c.recovery(node, served, false)).map_err(err)
    }

    fn own_addresses(&self, dev: &str) -> Result<Vec<std::net::IpAddr>, KernelError> {
        self.with(|c| {
            let local = c.declarations()?.into_iter().find(|d| d.local);
            let Some(d) = local else {
                return Ok(Vec::new());
            };
            let ifindex = permctl::ifindex(dev)?;
            let route = permctl::Client::connect_route()?;
            let ips: Vec<std::net::IpAddr> = d
                .addrs4
                .iter()
                .map(|a| std::net::IpAddr::from(*a))
                .chain(d.addrs6.iter().map(|a| std::net::IpAddr::from(*a)))
                .collect();
            for ip in &ips {
                route.add_address(ifindex, *ip)?;
            }
            Ok(ips)
        })
        .map_err(err)
    }

    fn handoff_hold(&self, binding: std::net::SocketAddr) -> Result<Vec<HandoffConn>, KernelError> {
        let addr = permctl::spec::to_addr(binding.ip());
        self.with(|c| c.handoff_hold(addr, binding.port(), None, HOLD_WAIT))
            .map_err(err)
    }

    fn handoff_take(
        &self,
        node: u32,
        conns: &[HandoffConn],
        park_ms: Option<u32>,
    ) -> Vec<HandoffConn> {
        // Every connection starts unknown (held): only the kernel's own answer changes that.
        let mut out: Vec<HandoffConn> = conns
            .iter()
            .map(|c| HandoffConn {
                status: hs::HELD,
                ..*c
            })
            .collect();
        let refuse = |out: &mut Vec<HandoffConn>, keys: &[HandoffConn]| {
            for o in out.iter_mut() {
                if keys.iter().any(|k| k.key == o.key) {
                    o.status = hs::FAILED;
                }
            }
        };
        if let Err(e) = self.with(|c| c.handoff_addresses(conns)) {
            // Nothing asked of the kernel yet: nothing taken.
            crate::log!(
                NOTICE,
                "handoff from node {node}: the service addresses: {e}"
            );
            refuse(&mut out, conns);
            return out;
        }
        let deadline = Instant::now() + TAKE_WAIT;
        let mut todo: Vec<HandoffConn> = conns.to_vec();
        loop {
            // One request per round (a part is smaller than a request's batch), asked
            // again here for those behind, so that an error loses no answer already given.
            match self.with(|c| c.handoff_take(node, &todo, park_ms, Duration::ZERO)) {
                Ok(res) => {
                    let mut behind = Vec::new();
                    for r in res {
                        if r.status == hs::BEHIND && Instant::now() < deadline {
                            behind.push(HandoffConn {
                                status: hs::HELD,
                                ..r
                            });
                        } else if let Some(o) = out.iter_mut().find(|o| o.key == r.key) {
                            o.status = r.status;
                        }
                    }
                    if behind.is_empty() {
                        return out;
                    }
                    todo = behind;
                    std::thread::sleep(Duration::from_millis(1));
                }
                Err(e @ CtlError::Kernel { .. }) => {
                    // The kernel refused the request as a whole: none of it was taken.
                    crate::log!(
                        NOTICE,
                        "handoff from node {node}: HANDOFF_TAKE refused: {e}"
                    );
                    refuse(&mut out, &todo);
                    return out;
                }
                Err(e) => {
                    // Lost on its way: the kernel may have taken them. They stay unknown.
                    crate::log!(NOTICE, "handoff from node {node}: HANDOFF_TAKE: {e}");
                    return out;
                }
            }
        }
    }

    fn handoff_done(&self, node: u32, conns: &[HandoffConn]) -> Result<(), KernelError> {
        self.with(|c| c.handoff_done(node, conns)).map_err(err)
    }

    fn handoff_abort(
        &self,
        node: u32,
        conns: &[HandoffConn],
        dev: Option<&str>,
    ) -> Result<usize, KernelError> {
        let dropped: Vec<HandoffConn> = conns
            .iter()
            .map(|c| HandoffConn {
                status: hs::TAKEN,
                ..*c
            })
            .collect();
        self.with(|c| c.handoff_done(node, &dropped)).map_err(err)?;
        match dev {
            Some(dev) => crate::reset::reset_clients(dev, conns)
                .map_err(|e| KernelError::Other(format!("resets on {dev}: {e}"))),
            None => Ok(0),
        }
    }

    fn renew_lease(&self, valid_for: Duration) -> Result<(), KernelError> {
        let ms = u32::try_from(valid_for.as_millis())
            .unwrap_or(u32::MAX)
            .clamp(1, permtcp_logic::ops::MAX_LEASE_MS);
        Self::on(&self.lease_client, |c| c.lease(ms)).map_err(err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decl(node: u32, local: bool) -> Declaration {
        let mut d = permctl::spec::DeclSpec {
            node,
            local,
            addrs: vec![format!("10.0.0.{node}").parse().unwrap()],
            ranges: vec![permctl::spec::parse_range("80").unwrap()],
            proto: 6,
            ..Default::default()
        }
        .build()
        .unwrap();
        d.validate().unwrap();
        d.local = local;
        d
    }

    #[test]
    fn plan_adds_the_missing_local_first() {
        let p = plan(
            &[],
            &[decl(2, false), decl(1, true)],
            &BTreeSet::from([2, 3]),
        );
        assert!(p.delete.is_empty());
        let ids: Vec<(u32, bool)> = p.add.iter().map(|d| (d.node_id, d.local)).collect();
        assert_eq!(ids, vec![(1, true), (2, false)]);
    }

    #[test]
    fn plan_of_an_equal_set_is_empty() {
        let set = [decl(1, true), decl(2, false)];
        assert!(plan(&set, &set, &BTreeSet::from([2])).is_empty());
    }

    #[test]
    fn plan_replaces_changed_and_drops_strangers() {
        let mut changed = decl(2, false);
        changed.rx = permtcp_logic::decl::RxPolicy::Drop;
        let kernel = [decl(1, true), decl(2, false), decl(9, false)];
        let p = plan(&kernel, &[decl(1, true), changed], &BTreeSet::from([2, 3]));
        assert_eq!(p.delete, vec![2, 9]);
        assert_eq!(p.add, vec![changed]);
    }

    #[test]
    fn plan_keeps_unannounced_peers_but_not_a_wrong_local() {
        // Node 3 is a configured peer not heard yet: kept. The kernel's local declaration is
        // node 2's (an operator's mistake): deleted, and node 1's added as the local one.
        let kernel = [decl(2, true), decl(3, false)];
        let p = plan(&kernel, &[decl(1, true)], &BTreeSet::from([2, 3]));
        assert_eq!(p.delete, vec![2]);
        assert_eq!(p.add, vec![decl(1, true)]);
        // The local flag alone differs: replaced.
        let p = plan(&[decl(1, false)], &[decl(1, true)], &BTreeSet::new());
        assert_eq!(p.delete, vec![1]);
        assert_eq!(p.add, vec![decl(1, true)]);
    }
}
