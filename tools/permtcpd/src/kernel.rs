// SPDX-License-Identifier: GPL-2.0

//! What the daemon asks of the local permtcp module, as a trait.
//!
//! [`crate::netlink::NetlinkKernel`] implements it over permctl's netlink client (DECL_GET,
//! DECL_ADD, DECL_DEL, SNOOP_START, TAKEOVER with the address assumption, DIRECTIVE, and for
//! owner recovery TAKEN_GET with the live sockets, the addresses handed back, RECOVERY); the
//! recording [`FakeKernel`] stands in for it in the tests. Calls are made from one worker
//! thread, in order, so they may block.

use crate::config::Snoop;
use permtcp_logic::decl::Declaration;
use permtcp_logic::handoff::HandoffConn;
use permtcp_logic::snoop::FlowKey;
use permtcp_logic::snoopnl::{DirectiveInfo, DirectiveRequest};
use permtcp_logic::uapi::handoff_status;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A failed kernel request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KernelError {
    /// The failed node is not taken over here yet (`EAGAIN`): try the directive again soon.
    NotYet,
    /// Anything else, explained.
    Other(String),
}

impl std::fmt::Display for KernelError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KernelError::NotYet => f.write_str("the failed node is not taken over here yet"),
            KernelError::Other(s) => f.write_str(s),
        }
    }
}

/// What a takeover did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TakeoverResult {
    /// Connections taken over.
    pub taken: u32,
    /// Of those, waiting for a listener.
    pub parked: u32,
    /// Connections not ready here (those directed and those reset included).
    pub not_ready: u32,
    /// Connections the policy gives to other nodes.
    pub not_mine: u32,
    /// Connections whose rebuild failed.
    pub failed: u32,
    /// Connections reset (no peer can take them over).
    pub reset: u32,
    /// Time the kernel spent rebuilding, ns.
    pub rebuild_ns: u64,
    /// The failed node's addresses this node assumed (its ARP policy names this node).
    pub assumed: Vec<std::net::IpAddr>,
    /// Connections this node could not take over, each with the next peer to direct it to.
    pub directives: Vec<DirectiveInfo>,
}

/// What became of a directive here.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DirectiveResult {
    /// Taken over (`parked`: waiting for a listener).
    Taken {
        /// Waiting for a listener.
        parked: bool,
    },
    /// Not ready here: direct it to `next`.
    PassOn {
        /// The next peer.
        next: u32,
    },
    /// No peer can take it: reset.
    Reset,
    /// Rebuilding it failed.
    Failed,
}

/// The local module's operations.
pub trait Kernel: Send + Sync + 'static {
    /// Makes the kernel's declarations `decls` (one of them local), the ones the cluster
    /// announced; see [`crate::netlink::plan`] for those of peers not yet heard from.
    fn set_declarations(&self, decls: &[Declaration]) -> Result<(), KernelError>;
    /// Snoops on the configured device with its limits (already snooping on it: nothing to
    /// do).
    fn start_snooping(&self, snoop: &Snoop) -> Result<(), KernelError>;
    /// Takes over the connections of failed node `node` the policy gives this node; with
    /// `assume`, first assumes the addresses its ARP policy gives this node (not when an HA
    /// engine such as keepalived holds them).
    fn takeover(
        &self,
        node: u32,
        park_ms: Option<u32>,
        assume: bool,
    ) -> Result<TakeoverResult, KernelError>;
    /// Applies a fail-over directive from a peer.
    fn directive(&self, req: &DirectiveRequest) -> Result<DirectiveResult, KernelError>;
    /// Renews this node's lease for `valid_for` from now.
    fn renew_lease(&self, valid_for: Duration) -> Result<(), KernelError>;
    /// Owner recovery, on a peer: the connections of recovered node `node`'s bindings this
    /// node still serves (the list of its owner-recovery directive to `node`).
    fn served(&self, node: u32) -> Result<Vec<FlowKey>, KernelError>;
    /// Owner recovery, on a peer: `node` is back; the addresses of it this node answers ARP
    /// for go back to it (kept quietly for the connections this node serves).
    fn hand_back(&self, node: u32) -> Result<Vec<std::net::IpAddr>, KernelError>;
    /// Owner recovery, on a peer: `node`, taken over here, is back and installed this node's
    /// recovery list: a member again (REJOIN), mirrored and taken over again if it fails.
    fn rejoin(&self, node: u32) -> Result<(), KernelError>;
    /// The nodes the kernel holds declared failed (a takeover here, perhaps by an earlier
    /// run of the daemon): owner recovery rejoins them once they are back.
    fn failed_nodes(&self) -> Result<Vec<u32>, KernelError>;
    /// Owner recovery, on the recovered owner: peer `node` serves `served` of this node's
    /// bindings (its owner-recovery directive, replacing its earlier one).
    fn recovery(&self, node: u32, served: &[FlowKey]) -> Result<(), KernelError>;
    /// Owner recovery, on the recovered owner: adds the local declaration's addresses to
    /// device `dev` (IPv6 without duplicate address detection); returns them.
    fn own_addresses(&self, dev: &str) -> Result<Vec<std::net::IpAddr>, KernelError>;
    /// Planned handoff, on the serving node: holds the established connections of binding
    /// `binding` (HANDOFF_HOLD); returns each with its status (held, busy, gone).
    fn handoff_hold(&self, binding: std::net::SocketAddr) -> Result<Vec<HandoffConn>, KernelError>;
    /// Planned handoff, on the peer: holds the service addresses of `conns` quietly and takes
    /// over those node `node` holds (HANDOFF_TAKE, asked again while the mirror is behind).
    /// Returns each of `conns` with its final status: taken, a refusal, or held when it is
    /// not known whether it was taken (a request that failed on its way): never a refusal
    /// for a connection that may have been taken.
    fn handoff_take(
        &self,
        node: u32,
        conns: &[HandoffConn],
        park_ms: Option<u32>,
    ) -> Vec<HandoffConn>;
    /// Planned handoff, on the serving node: HANDOFF_DONE for the connections peer `node`
    /// answered for: those it took are dropped silently, the others resume.
    fn handoff_done(&self, node: u32, conns: &[HandoffConn]) -> Result<(), KernelError>;
    /// Planned handoff, on the serving node: connections held for peer `node` whose fate is
    /// not known (no answer) are aborted, never resumed: dropped silently as if taken (the
    /// application sees its connection aborted) and a reset sent to each client on device
    /// `dev`, so that the client fails at once rather than hang. Returns the resets sent.
    fn handoff_abort(
        &self,
        node: u32,
        conns: &[HandoffConn],
        dev: Option<&str>,
    ) -> Result<usize, KernelError>;
}

/// One call made to a [`FakeKernel`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Call {
    /// `set_declarations`, with the node ids (the local one first).
    SetDeclarations(Vec<u32>),
    /// `start_snooping` on a device.
    StartSnooping(String),
    /// `takeover` of a node, assuming its addresses.
    Takeover(u32),
    /// `takeover` of a node without assuming its addresses (keepalived holds them).
    TakeoverKeepAddresses(u32),
    /// `directive` for a failed node's connection.
    Directive(DirectiveRequest),
    /// `hand_back` of a recovered node's addresses.
    HandBack(u32),
    Rejoin(u32),
    /// `recovery`: a peer and the connections it serves.
    Recovery(u32, Vec<FlowKey>),
    /// `own_addresses` on a device.
    OwnAddresses(String),
    /// `handoff_hold` of a binding.
    HandoffHold(std::net::SocketAddr),
    /// `handoff_take` from a node, the connections asked for.
    HandoffTake(u32, Vec<HandoffConn>),
    /// `handoff_done` to a node, with the statuses given.
    HandoffDone(u32, Vec<HandoffConn>),
    /// `handoff_abort` for a node.
    HandoffAbort(u32, Vec<HandoffConn>),
}

/// A test double that records calls and answers as scripted; not the kernel.
#[derive(Clone, Default)]
pub struct FakeKernel {
    inner: Arc<Mutex<FakeState>>,
}

#[derive(Default)]
struct FakeState {
    calls: Vec<Call>,
    decls: Vec<Declaration>,
    leases: u64,
    lease_end: Option<Instant>,
    takeovers_at: Vec<(u32, Instant)>,
    takeover_directives: Vec<DirectiveInfo>,
    directive_result: Option<DirectiveResult>,
    not_yet: u32,
    takeover_delay: Duration,
    recovery_delay: Duration,
    served: Vec<FlowKey>,
    failed: Vec<u32>,
    held: Vec<HandoffConn>,
    take_status: Option<u8>,
    take_delay: Duration,
}

impl FakeKernel {
    /// `handoff_hold` answers these connections (all held, whatever their status).
    pub fn with_held(self, held: Vec<HandoffConn>) -> Self {
        self.inner.lock().unwrap().held = held;
        self
    }

    /// `handoff_take` answers this status for every connection (default: taken), after
    /// `delay`.
    pub fn with_take(self, status: u8, delay: Duration) -> Self {
        let mut s = self.inner.lock().unwrap();
        s.take_status = Some(status);
        s.take_delay = delay;
        drop(s);
        self
    }

    /// The `handoff_take` calls so far (a retransmitted part must never be taken twice).
    pub fn takes(&self) -> Vec<Vec<HandoffConn>> {
        self.calls()
            .into_iter()
            .filter_map(|c| match c {
                Call::HandoffTake(_, v) => Some(v),
                _ => None,
            })
            .collect()
    }

    /// A fake whose takeovers direct nothing and whose directives are taken.
    pub fn new() -> Self {
        Self::default()
    }

    /// Every takeover answers with these directives.
    pub fn with_takeover_directives(self, d: Vec<DirectiveInfo>) -> Self {
        self.inner.lock().unwrap().takeover_directives = d;
        self
    }

    /// `served` answers these connections.
    pub fn with_served(self, served: Vec<FlowKey>) -> Self {
        self.inner.lock().unwrap().served = served;
        self
    }

    /// A kernel that holds `failed` declared failed (an earlier run's takeover).
    pub fn with_failed(self, failed: Vec<u32>) -> Self {
        self.inner.lock().unwrap().failed = failed;
        self
    }

    /// Every `recovery` takes this long (a slow kernel).
    pub fn with_recovery_delay(self, d: Duration) -> Self {
        self.inner.lock().unwrap().recovery_delay = d;
        self
    }

    /// Every takeover takes this long (a slow rebuild).
    pub fn with_takeover_delay(self, d: Duration) -> Self {
        self.inner.lock().unwrap().takeover_delay = d;
        self
    }

    /// Directives answer `r` (default: taken), after `not_yet` answers of [`KernelError::NotYet`].
    pub fn with_directive_result(self, r: DirectiveResult, not_yet: u32) -> Self {
        let mut s = self.inner.lock().unwrap();
        s.directive_result = Some(r);
        s.not_yet = not_yet;
        drop(s);
        self
    }

    /// The calls so far.
    pub fn calls(&self) -> Vec<Call> {
        self.inner.lock().unwrap().calls.clone()
    }

    /// The declarations last set.
    pub fn declarations(&self) -> Vec<Declaration> {
        self.inner.lock().unwrap().decls.clone()
    }

    /// Lease renewals so far.
    pub fn leases(&self) -> u64 {
        self.inner.lock().unwrap().leases
    }

    /// When the last lease asked for ends.
    pub fn lease_end(&self) -> Option<Instant> {
        self.inner.lock().unwrap().lease_end
    }

    /// When the first takeover of `node` started.
    pub fn first_takeover_of(&self, node: u32) -> Option<Instant> {
        let s = self.inner.lock().unwrap();
        s.takeovers_at.iter().find(|t| t.0 == node).map(|t| t.1)
    }

    /// Takeovers of `node` so far.
    pub fn takeovers_of(&self, node: u32) -> usize {
        self.calls()
            .iter()
            .filter(|c| **c == Call::Takeover(node) || **c == Call::TakeoverKeepAddresses(node))
            .count()
    }
}

impl Kernel for FakeKernel {
    fn set_declarations(&self, decls: &[Declaration]) -> Result<(), KernelError> {
        let mut s = self.inner.lock().unwrap();
        s.calls.push(Call::SetDeclarations(
            decls.iter().map(|d| d.node_id).collect(),
        ));
        s.decls = decls.to_vec();
        Ok(())
    }

    fn start_snooping(&self, snoop: &Snoop) -> Result<(), KernelError> {
        let mut s = self.inner.lock().unwrap();
        s.calls.push(Call::StartSnooping(snoop.device.clone()));
        Ok(())
    }

    fn takeover(
        &self,
        node: u32,
        _park_ms: Option<u32>,
        assume: bool,
    ) -> Result<TakeoverResult, KernelError> {
        let (directives, delay) = {
            let mut s = self.inner.lock().unwrap();
            s.calls.push(if assume {
                Call::Takeover(node)
            } else {
                Call::TakeoverKeepAddresses(node)
            });
            s.takeovers_at.push((node, Instant::now()));
            (s.takeover_directives.clone(), s.takeover_delay)
        };
        std::thread::sleep(delay);
        Ok(TakeoverResult {
            directives,
            ..Default::default()
        })
    }

    fn directive(&self, req: &DirectiveRequest) -> Result<DirectiveResult, KernelError> {
        let mut s = self.inner.lock().unwrap();
        s.calls.push(Call::Directive(*req));
        if s.not_yet > 0 {
            s.not_yet -= 1;
            return Err(KernelError::NotYet);
        }
        Ok(s.directive_result
            .unwrap_or(DirectiveResult::Taken { parked: false }))
    }

    fn renew_lease(&self, valid_for: Duration) -> Result<(), KernelError> {
        let mut s = self.inner.lock().unwrap();
        s.leases += 1;
        s.lease_end = Some(Instant::now() + valid_for);
        Ok(())
    }

    fn served(&self, _node: u32) -> Result<Vec<FlowKey>, KernelError> {
        Ok(self.inner.lock().unwrap().served.clone())
    }

    fn hand_back(&self, node: u32) -> Result<Vec<std::net::IpAddr>, KernelError> {
        self.inner.lock().unwrap().calls.push(Call::HandBack(node));
        Ok(Vec::new())
    }

    fn rejoin(&self, node: u32) -> Result<(), KernelError> {
        self.inner.lock().unwrap().calls.push(Call::Rejoin(node));
        Ok(())
    }

    fn failed_nodes(&self) -> Result<Vec<u32>, KernelError> {
        Ok(self.inner.lock().unwrap().failed.clone())
    }

    fn recovery(&self, node: u32, served: &[FlowKey]) -> Result<(), KernelError> {
        let delay = {
            let mut s = self.inner.lock().unwrap();
            s.calls.push(Call::Recovery(node, served.to_vec()));
            s.recovery_delay
        };
        std::thread::sleep(delay);
        Ok(())
    }

    fn own_addresses(&self, dev: &str) -> Result<Vec<std::net::IpAddr>, KernelError> {
        let mut s = self.inner.lock().unwrap();
        s.calls.push(Call::OwnAddresses(dev.to_string()));
        Ok(Vec::new())
    }

    fn handoff_hold(&self, binding: std::net::SocketAddr) -> Result<Vec<HandoffConn>, KernelError> {
        let mut s = self.inner.lock().unwrap();
        s.calls.push(Call::HandoffHold(binding));
        Ok(s.held.clone())
    }

    fn handoff_take(
        &self,
        node: u32,
        conns: &[HandoffConn],
        _park_ms: Option<u32>,
    ) -> Vec<HandoffConn> {
        let (status, delay) = {
            let mut s = self.inner.lock().unwrap();
            s.calls.push(Call::HandoffTake(node, conns.to_vec()));
            (s.take_status.unwrap_or(handoff_status::TAKEN), s.take_delay)
        };
        std::thread::sleep(delay);
        conns.iter().map(|c| HandoffConn { status, ..*c }).collect()
    }

    fn handoff_done(&self, node: u32, conns: &[HandoffConn]) -> Result<(), KernelError> {
        let mut s = self.inner.lock().unwrap();
        s.calls.push(Call::HandoffDone(node, conns.to_vec()));
        Ok(())
    }

    fn handoff_abort(
        &self,
        node: u32,
        conns: &[HandoffConn],
        _dev: Option<&str>,
    ) -> Result<usize, KernelError> {
        let mut s = self.inner.lock().unwrap();
        s.calls.push(Call::HandoffAbort(node, conns.to_vec()));
        Ok(conns.len())
    }
}
