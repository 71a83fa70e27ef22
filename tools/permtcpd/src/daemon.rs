// SPDX-License-Identifier: GPL-2.0

//! The daemon: UDP sockets on the configured addresses, the receive loop, timers, and the
//! glue between [`Auth`], [`Membership`] and the [`Kernel`].
//!
//! Everything but the kernel calls and the fence command runs on one tokio task. Kernel calls
//! run in order on one worker thread (a takeover may take hundreds of milliseconds and must
//! not delay heartbeats); lease renewals run on a thread of their own, so that they never
//! wait behind a takeover; fence commands run on threads of their own. Their outcomes come
//! back to the loop through a channel.
//!
//! The takeover of a node declared down starts at the verdict: the node's lease ran out
//! before any verdict on it was possible ([`Membership::lease_until`]), so there is no lease
//! wait.

use crate::auth::{Auth, Counters, DropReason, Keyring};
use crate::config::{Config, Snoop};
use crate::keepalived::{self, Action};
use crate::kernel::{DirectiveResult, Kernel, KernelError, TakeoverResult};
use crate::log::{DEBUG, ERR, INFO, NOTICE, WARNING};
use crate::membership::{Admit, Event, Membership, Params};
use crate::wire::{
    Ack, AckResult, Body, Directive, Failover, HandoffPart, Heartbeat, NodeDown, NodeState,
    Recovery, RecoveryAck, ViewEntry, HANDOFF_PART, HB_LEASE, HB_QUORUM, MAX_DATAGRAM,
};
use permtcp_logic::decl::{check_insert, Declaration};
use permtcp_logic::handoff::HandoffConn;
use permtcp_logic::snoop::FlowKey;
use permtcp_logic::snoopnl::DirectiveRequest;
use permtcp_logic::uapi::handoff_status as hs;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::time::{Duration, Instant};
use tokio::io::ReadBuf;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;

/// How long a directive the kernel is not ready for (`EAGAIN`) is retried.
const DIRECTIVE_NOT_YET_FOR: Duration = Duration::from_secs(10);
/// Retry interval of such a directive.
const DIRECTIVE_NOT_YET_RETRY: Duration = Duration::from_millis(50);
/// How long a handled directive's outcome (and a handoff part's answer) is remembered, for
/// retransmissions: longer than the longest handoff_timeout_ms, after which the serving node
/// sends no part again.
const HANDLED_KEEP: Duration = Duration::from_secs(60);
/// Version of this node's declaration (it does not change while the daemon runs).
const DECL_VERSION: u32 = 1;
/// How often the kernel's declarations and snooping are checked again (a module reloaded, a
/// declaration deleted by hand).
const RESYNC: Duration = Duration::from_secs(5);

/// What the daemon shows of itself: for status output and tests.
#[derive(Clone, Debug, Default)]
pub struct Status {
    /// Datagrams accepted and dropped by reason.
    pub auth: Counters,
    /// Messages from nodes already declared down.
    pub split_brain: u64,
    /// This node's current view.
    pub view: Vec<ViewEntry>,
    /// Whether it has quorum.
    pub quorum: bool,
    /// Whether it renews its lease.
    pub lease: bool,
    /// Nodes taken over (once per declared-down incarnation).
    pub takeovers: Vec<u32>,
    /// Nodes whose declaration this node holds, itself included.
    pub declarations: Vec<u32>,
    /// Directives sent, first transmissions.
    pub directives_sent: u64,
    /// Directive acknowledgements received.
    pub acks_received: u64,
    /// Directives received and handed to the kernel.
    pub directives_applied: u64,
    /// Whether a live peer reported this node declared down.
    pub self_down: bool,
    /// Owner recovery: per peer, the connections of this node's bindings it still serves,
    /// as installed in this node's kernel (this incarnation).
    pub recovered_from: BTreeMap<u32, usize>,
    /// Owner recovery: peers that acknowledged this node's list for them.
    pub recovery_acked: Vec<u32>,
    /// Owner recovery: nodes taken over here that rejoined (REJOIN): members again in this
    /// node's kernel, mirrored and taken over again if they fail.
    pub rejoined: Vec<u32>,
    /// `manage_addresses`: the own addresses were taken (every live peer's list installed).
    pub addresses_taken: bool,
    /// Planned handoffs this node ran as the serving node, to their end.
    pub handoffs: u64,
    /// Whether one runs now.
    pub handoff_running: bool,
    /// Handoff parts this node answered as the peer taking them (first answers).
    pub handoff_parts: u64,
    /// Kernel requests that failed.
    pub kernel_errors: u64,
    /// The last of them.
    pub last_kernel_error: Option<String>,
}

/// A view of a running daemon's [`Status`].
#[derive(Clone, Default)]
pub struct Handle(Arc<Mutex<Status>>);

impl Handle {
    /// The latest status.
    pub fn status(&self) -> Status {
        self.0.lock().unwrap().clone()
    }
}

/// Requests to a running daemon.
#[derive(Debug)]
pub enum Control {
    /// Use these keys, sending with this key id (key rotation).
    Keys(Keyring, u32),
    /// Hand the established connections of `binding` (this node's, or a peer's: those
    /// served here, a hand back) off to peer `to`; the JSON summary
    /// (or `{"error": ...}`) goes to `reply` ([`handoff_summary`]).
    Handoff {
        /// The binding, one of this node's.
        binding: SocketAddr,
        /// The peer taking them.
        to: u32,
        /// Where the outcome goes.
        reply: tokio::sync::oneshot::Sender<String>,
    },
}

/// A handoff part received: sender, its incarnation, the handoff id, the part.
type PartKey = (u32, u64, u64, u16);

enum Job {
    SetDeclarations(Vec<Declaration>),
    StartSnooping(Snoop),
    /// A takeover; `true`: assume the addresses first.
    Takeover(u32, bool),
    Directive(DirKey, DirectiveRequest),
    /// Owner recovery: the connections this node serves for `node` (incarnation), to send.
    Served(u32, u64),
    /// Owner recovery: install peer `node`'s list `id`.
    Recovery(u32, u64, Vec<FlowKey>),
    /// Owner recovery: `node` installed this node's list; hand its addresses back.
    HandBack(u32),
    /// Owner recovery: `node` is a member again in this node's kernel.
    Rejoin(u32),
    /// The nodes the kernel holds declared failed (at start).
    FailedNodes,
    /// Owner recovery: every live peer's list is installed; take the own addresses on this
    /// device.
    OwnAddresses(String),
    /// Planned handoff `id`: hold the binding's connections.
    HandoffHold(u64, SocketAddr),
    /// Planned handoff, on the peer: take this part's connections from its sender.
    HandoffTake(PartKey, HandoffPart),
    /// Planned handoff `id` to a peer: DONE for those it answered for, abort for the others
    /// (resets on the device, if any).
    HandoffDone(u64, u32, Vec<HandoffConn>, Vec<HandoffConn>, Option<String>),
}

/// A lease renewal: valid for this long from when it was asked for.
type Renewal = (Duration, Instant);

/// A received directive: sender, its incarnation, the directive id.
type DirKey = (u32, u64, u64);

enum Done {
    Takeover(u32, Result<TakeoverResult, KernelError>, Duration),
    Directive(
        DirKey,
        DirectiveRequest,
        Result<DirectiveResult, KernelError>,
    ),
    Fence(u32, bool),
    Failed(&'static str, KernelError),
    Served(u32, u64, Result<Vec<FlowKey>, KernelError>),
    Recovery(u32, u64, usize, Result<(), KernelError>),
    HandBack(u32, Result<Vec<std::net::IpAddr>, KernelError>),
    Rejoin(u32, Result<(), KernelError>),
    FailedNodes(Result<Vec<u32>, KernelError>),
    OwnAddresses(String, Result<Vec<std::net::IpAddr>, KernelError>),
    HandoffHold(u64, Result<Vec<HandoffConn>, KernelError>, Duration),
    HandoffTake(PartKey, HandoffPart, Duration),
    HandoffEnded(
        u64,
        Result<(), KernelError>,
        Result<usize, KernelError>,
        Duration,
    ),
}

/// A planned handoff this node runs as the serving node (one at a time).
struct HandoffOut {
    id: u64,
    binding: SocketAddr,
    to: u32,
    /// The peer's incarnation when the handoff started: a peer that restarted forgot it.
    to_inc: u64,
    reply: Option<tokio::sync::oneshot::Sender<String>>,
    /// When it was asked for.
    asked: Duration,
    /// The hold's connections, each as the kernel answered (held, busy, gone).
    conns: Vec<HandoffConn>,
    hold: Duration,
    parts: Vec<HandoffPart>,
    /// The peer's answer per part.
    results: Vec<Option<Vec<HandoffConn>>>,
    /// When the parts were first sent, and when they are sent again.
    first_sent: Duration,
    next_at: Duration,
    /// When the connections not answered for are aborted.
    deadline: Duration,
    /// From the first transmission to the last answer (or the give-up).
    take: Duration,
    /// Why the waiting ended: "answered", "timeout", "peer down".
    end: &'static str,
    /// Connections aborted (no answer for them).
    aborted: usize,
    /// DONE has been asked of the kernel.
    finishing: bool,
}

/// A handoff part received (as the peer taking them): its answer once the kernel gave it.
struct HandoffIn {
    result: Option<HandoffPart>,
    first: Duration,
}

/// A recovery list sent to a node that came back, until it acknowledges it.
struct RecoveryOut {
    parts: Vec<Recovery>,
    sent: u32,
    next_at: Duration,
}

/// Transmissions of a recovery list before giving up (at the directive retry interval).
const RECOVERY_RETRIES: u32 = 50;

struct Pending {
    to: u32,
    req: DirectiveRequest,
    sent: u32,
    next_at: Duration,
}

struct Handled {
    result: Option<AckResult>,
    first: Duration,
}

struct PeerDecl {
    incarnation: u64,
    version: u32,
    decl: Declaration,
}

/// One node's daemon.
pub struct Daemon {
    cfg: Config,
    auth: Auth,
    members: Membership,
    start: Instant,
    socks: Vec<UdpSocket>,
    peer_addrs: BTreeMap<u32, Vec<SocketAddr>>,
    decls: BTreeMap<u32, PeerDecl>,
    jobs: std::sync::mpsc::Sender<Job>,
    leases: std::sync::mpsc::Sender<Renewal>,
    done_tx: mpsc::UnboundedSender<Done>,
    done_rx: mpsc::UnboundedReceiver<Done>,
    pending: BTreeMap<u64, Pending>,
    next_directive: u64,
    handled: HashMap<DirKey, Handled>,
    not_yet: Vec<(Duration, DirKey, DirectiveRequest)>,
    last_solicit: HashMap<u32, Duration>,
    status: Status,
    handle: Handle,
    last_counters_log: Duration,
    /// When a split-brain alarm was last logged, per node.
    last_alarm_log: HashMap<u32, Duration>,
    logged_counters: u64,
    /// When each peer was last heard (an authenticated message accepted).
    last_heard: HashMap<u32, Duration>,
    /// Per node taken over: when it was declared down, its silence then, and when its
    /// takeover was queued (after the fence command, if one is configured).
    takeover_queued: HashMap<u32, (Duration, Option<Duration>, Duration)>,
    /// The end of the lease last asked of the kernel.
    lease_asked: Option<Duration>,
    last_resync: Duration,
    /// keepalived mode: the instance map ([`keepalived::Map`]).
    engine: Option<keepalived::Map>,
    /// Nodes taken over on keepalived's word (here, or a peer's `Failover`).
    engine_taken: HashSet<u32>,
    /// Nodes declared failed in this node's kernel by a takeover here, until they rejoin.
    failed_here: HashSet<u32>,
    /// Owner recovery: nodes taken over here that acknowledged this node's recovery list
    /// (their current incarnation follows what this node serves).
    acked_here: HashSet<u32>,
    /// keepalived mode: nodes whose instance this node is MASTER of (it holds their address).
    master_of: HashSet<u32>,
    /// Owner recovery: lists sent, per node, until acknowledged.
    recovery_out: HashMap<u32, RecoveryOut>,
    /// Owner recovery: the id of the next list sent.
    next_recovery: u64,
    /// Owner recovery: lists being received.
    recovery_in: crate::recovery::Inbox,
    /// `manage_addresses`: the own addresses were asked for.
    own_asked: bool,
    /// keepalived mode's hold file ([`crate::config::Keepalived::hold_file`]).
    hold: Option<std::path::PathBuf>,
    /// keepalived mode: the hold file says 1 (taken over; released once recovered).
    held: bool,
    /// Planned handoff: the one this node runs as the serving node.
    handoff_out: Option<HandoffOut>,
    /// Planned handoff: the id of the next one.
    next_handoff: u64,
    /// Planned handoff: the parts received as the peer taking them, until forgotten.
    handoff_in: HashMap<PartKey, HandoffIn>,
    /// Requests from the control socket, as [`Control`].
    internal_tx: mpsc::UnboundedSender<Control>,
    internal_rx: Option<mpsc::UnboundedReceiver<Control>>,
}

/// Announces this node's addresses on `dev`: five gratuitous ARPs (IPv4) and unsolicited
/// neighbour advertisements (IPv6) 200 ms apart, as IPaddr2 does, on a thread of its own.
fn announce(dev: String, ips: Vec<std::net::IpAddr>) {
    if ips.is_empty() {
        return;
    }
    let spawned = std::thread::Builder::new()
        .name("permtcpd-announce".into())
        .spawn(move || {
            let sent = crate::announce::mac_of(&dev).and_then(|mac| {
                let ifindex =
                    permctl::ifindex(&dev).map_err(|e| std::io::Error::other(e.to_string()))?;
                for i in 0..5 {
                    if i > 0 {
                        std::thread::sleep(Duration::from_millis(200));
                    }
                    for ip in &ips {
                        match ip {
                            std::net::IpAddr::V4(a) => crate::announce::send_frame(
                                ifindex,
                                &crate::announce::garp(mac, *a),
                            )?,
                            std::net::IpAddr::V6(a) => crate::announce::send_frame(
                                ifindex,
                                &crate::announce::una(mac, *a),
                            )?,
                        }
                    }
                }
                Ok(())
            });
            if let Err(e) = sent {
                crate::log!(ERR, "announcing {ips:?} on {dev}: {e}");
            }
        });
    if let Err(e) = spawned {
        crate::log!(ERR, "announcing: {e}");
    }
}

/// Writes `value` ("1": held down, "0": not) to the hold file keepalived tracks.
fn write_hold(path: &std::path::Path, value: &str) {
    if let Err(e) = std::fs::write(path, format!("{value}\n")) {
        crate::log!(ERR, "keepalived hold file {}: {e}", path.display());
    }
}

/// Reads keepalived's `vrrp_notify_fifo` line by line into `tx`, on a thread of its own.
/// The FIFO is created (mode 0600) when missing, and opened for reading and writing, so
/// that it never reads end-of-file while keepalived restarts.
fn fifo_reader(path: std::path::PathBuf, tx: mpsc::UnboundedSender<String>) {
    use std::io::BufRead;
    use std::os::unix::ffi::OsStrExt;
    let mut logged = false;
    loop {
        if !path.exists() {
            if let Ok(c) = std::ffi::CString::new(path.as_os_str().as_bytes()) {
                // SAFETY: a valid NUL-terminated path.
                unsafe { libc::mkfifo(c.as_ptr(), 0o600) };
            }
        }
        match std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
        {
            Ok(f) => {
                crate::log!(
                    INFO,
                    "reading keepalived's notifications from {}",
                    path.display()
                );
                logged = false;
                let mut r = std::io::BufReader::new(f);
                let mut line = Vec::new();
                loop {
                    line.clear();
                    match r.read_until(b'\n', &mut line) {
                        Ok(0) => break,
                        Ok(_) => {
                            let l = String::from_utf8_lossy(&line).trim_end().to_string();
                            if tx.send(l).is_err() {
                                return;
                            }
                        }
                        Err(e) => {
                            crate::log!(ERR, "keepalived FIFO {}: {e}", path.display());
                            break;
                        }
                    }
                }
            }
            Err(e) if !logged => {
                crate::log!(ERR, "keepalived FIFO {}: {e}", path.display());
                logged = true;
            }
            Err(_) => {}
        }
        if tx.is_closed() {
            return;
        }
        std::thread::sleep(Duration::from_secs(1));
    }
}

/// The next line from the keepalived FIFO reader; never, without one.
async fn next_fifo_line(rx: &mut Option<mpsc::UnboundedReceiver<String>>) -> Option<String> {
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

fn bind(addr: SocketAddr, interface: Option<&str>) -> Result<UdpSocket, String> {
    let s = std::net::UdpSocket::bind(addr).map_err(|e| format!("bind {addr}: {e}"))?;
    if let Some(dev) = interface {
        use std::os::fd::AsRawFd;
        // SAFETY: a valid socket, and a buffer of the given length.
        let rc = unsafe {
            libc::setsockopt(
                s.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_BINDTODEVICE,
                dev.as_ptr().cast(),
                dev.len() as libc::socklen_t,
            )
        };
        if rc != 0 {
            return Err(format!(
                "bind {addr} to device {dev}: {}",
                std::io::Error::last_os_error()
            ));
        }
    }
    s.set_nonblocking(true)
        .map_err(|e| format!("bind {addr}: {e}"))?;
    UdpSocket::from_std(s).map_err(|e| format!("bind {addr}: {e}"))
}

fn kernel_worker(
    kernel: Arc<dyn Kernel>,
    park_ms: Option<u32>,
    jobs: std::sync::mpsc::Receiver<Job>,
    done: mpsc::UnboundedSender<Done>,
) {
    while let Ok(job) = jobs.recv() {
        let out = match job {
            Job::SetDeclarations(d) => match kernel.set_declarations(&d) {
                Ok(()) => continue,
                Err(e) => Done::Failed("setting the declarations", e),
            },
            Job::StartSnooping(s) => match kernel.start_snooping(&s) {
                Ok(()) => continue,
                Err(e) => Done::Failed("starting to snoop", e),
            },
            Job::Takeover(node, assume) => {
                let t0 = Instant::now();
                let r = kernel.takeover(node, park_ms, assume);
                Done::Takeover(node, r, t0.elapsed())
            }
            Job::Directive(key, req) => Done::Directive(key, req, kernel.directive(&req)),
            Job::Served(node, inc) => Done::Served(node, inc, kernel.served(node)),
            Job::Recovery(node, id, served) => {
                let r = kernel.recovery(node, &served);
                Done::Recovery(node, id, served.len(), r)
            }
            Job::HandBack(node) => Done::HandBack(node, kernel.hand_back(node)),
            Job::Rejoin(node) => Done::Rejoin(node, kernel.rejoin(node)),
            Job::FailedNodes => Done::FailedNodes(kernel.failed_nodes()),
            Job::OwnAddresses(dev) => {
                let r = kernel.own_addresses(&dev);
                Done::OwnAddresses(dev, r)
            }
            Job::HandoffHold(id, binding) => {
                let t0 = Instant::now();
                let r = kernel.handoff_hold(binding);
                Done::HandoffHold(id, r, t0.elapsed())
            }
            Job::HandoffTake(key, part) => {
                let t0 = Instant::now();
                let conns = kernel.handoff_take(key.0, &part.conns, park_ms);
                Done::HandoffTake(key, HandoffPart { conns, ..part }, t0.elapsed())
            }
            Job::HandoffDone(id, to, done, abort, dev) => {
                let t0 = Instant::now();
                let d = if done.is_empty() {
                    Ok(())
                } else {
                    kernel.handoff_done(to, &done)
                };
                let a = if abort.is_empty() {
                    Ok(0)
                } else {
                    kernel.handoff_abort(to, &abort, dev.as_deref())
                };
                Done::HandoffEnded(id, d, a, t0.elapsed())
            }
        };
        if done.send(out).is_err() {
            return;
        }
    }
}

/// Renews the lease, on a thread of its own: never behind a takeover or a declaration
/// change. Renewals that queued up meanwhile are one: the newest.
fn lease_worker(
    kernel: Arc<dyn Kernel>,
    leases: std::sync::mpsc::Receiver<Renewal>,
    done: mpsc::UnboundedSender<Done>,
) {
    while let Ok(mut r) = leases.recv() {
        while let Ok(newer) = leases.try_recv() {
            r = newer;
        }
        let (valid, asked) = r;
        let left = valid.saturating_sub(asked.elapsed());
        if left.is_zero() {
            continue;
        }
        if let Err(e) = kernel.renew_lease(left) {
            if done.send(Done::Failed("renewing the lease", e)).is_err() {
                return;
            }
        }
    }
}

fn run_fence(argv: Vec<String>, timeout: Duration) -> bool {
    let mut child = match std::process::Command::new(&argv[0])
        .args(&argv[1..])
        .stdin(std::process::Stdio::null())
        .spawn()
    {
        Ok(c) => c,
        Err(e) => {
            crate::log!(ERR, "fence command {}: {e}", argv[0]);
            return false;
        }
    };
    let start = Instant::now();
    loop {
        match child.try_wait() {
            Ok(Some(st)) => return st.success(),
            Ok(None) if start.elapsed() < timeout => std::thread::sleep(Duration::from_millis(10)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                crate::log!(ERR, "fence command timed out after {timeout:?}");
                return false;
            }
        }
    }
}

impl Daemon {
    /// Binds the sockets and starts the kernel worker; nothing is sent before [`Daemon::run`].
    pub fn new(
        cfg: Config,
        keys: Keyring,
        incarnation: u64,
        kernel: Arc<dyn Kernel>,
    ) -> Result<(Self, Handle), String> {
        let peer_addrs: BTreeMap<u32, Vec<SocketAddr>> = cfg
            .peers
            .iter()
            .map(|p| (p.node_id, p.addrs.clone()))
            .collect();
        let sources: HashMap<u32, Vec<IpAddr>> = peer_addrs
            .iter()
            .map(|(&n, a)| (n, a.iter().map(SocketAddr::ip).collect()))
            .collect();
        let auth = Auth::new(
            cfg.cluster_id,
            cfg.node_id,
            incarnation,
            keys,
            cfg.send_key_id,
            sources,
        )?;
        let socks = cfg
            .bind
            .iter()
            .map(|a| bind(*a, cfg.interface.as_deref()))
            .collect::<Result<Vec<_>, _>>()?;
        let start = Instant::now();
        let members = Membership::new(
            Params {
                self_id: cfg.node_id,
                incarnation,
                peers: peer_addrs.keys().copied().collect(),
                interval: cfg.interval,
                missed: cfg.missed,
                fence: cfg.fence.is_some(),
                startup_grace: cfg.startup_grace,
                lease_margin: cfg.lease_margin,
            },
            Duration::ZERO,
        );
        let (jobs, jobs_rx) = std::sync::mpsc::channel();
        let (done_tx, done_rx) = mpsc::unbounded_channel();
        let worker_done = done_tx.clone();
        let park_ms = cfg.park_ms;
        let lease_kernel = kernel.clone();
        std::thread::Builder::new()
            .name("permtcpd-kernel".into())
            .spawn(move || kernel_worker(kernel, park_ms, jobs_rx, worker_done))
            .map_err(|e| format!("kernel worker: {e}"))?;
        let (leases, leases_rx) = std::sync::mpsc::channel();
        let lease_done = done_tx.clone();
        std::thread::Builder::new()
            .name("permtcpd-lease".into())
            .spawn(move || lease_worker(lease_kernel, leases_rx, lease_done))
            .map_err(|e| format!("lease worker: {e}"))?;
        let handle = Handle::default();
        let (internal_tx, internal_rx) = mpsc::unbounded_channel();
        let engine = cfg.keepalived.as_ref().map(|k| keepalived::Map {
            self_id: cfg.node_id,
            instances: k.instances.clone(),
        });
        let d = Daemon {
            cfg,
            auth,
            members,
            start,
            socks,
            peer_addrs,
            decls: BTreeMap::new(),
            jobs,
            leases,
            done_tx,
            done_rx,
            pending: BTreeMap::new(),
            next_directive: 1,
            handled: HashMap::new(),
            not_yet: Vec::new(),
            last_solicit: HashMap::new(),
            status: Status::default(),
            handle: handle.clone(),
            last_counters_log: Duration::ZERO,
            logged_counters: 0,
            last_alarm_log: HashMap::new(),
            last_heard: HashMap::new(),
            takeover_queued: HashMap::new(),
            lease_asked: None,
            last_resync: Duration::ZERO,
            engine,
            engine_taken: HashSet::new(),
            failed_here: HashSet::new(),
            acked_here: HashSet::new(),
            master_of: HashSet::new(),
            recovery_out: HashMap::new(),
            next_recovery: 1,
            recovery_in: Default::default(),
            own_asked: false,
            hold: None,
            held: false,
            handoff_out: None,
            next_handoff: 1,
            handoff_in: HashMap::new(),
            internal_tx,
            internal_rx: Some(internal_rx),
        };
        Ok((d, handle))
    }

    /// The local addresses of the sockets (to learn ephemeral ports in tests).
    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        self.socks
            .iter()
            .filter_map(|s| s.local_addr().ok())
            .collect()
    }

    fn now(&self) -> Duration {
        self.start.elapsed()
    }

    /// The moment `at` of this daemon's clock ([`Daemon::now`]), for tokio's timer.
    fn instant(&self, at: Duration) -> tokio::time::Instant {
        tokio::time::Instant::from_std(self.start + at)
    }

    /// When [`Daemon::on_tick`] next runs, the last having run at `last`: a quarter
    /// interval (`tick`) later while anything is in motion (directives or recovery lists to
    /// retransmit or retry, a handoff, this node's addresses or keepalived hold waiting, a
    /// peer suspected, fenced or not yet in the quorum evaluated). Otherwise only when
    /// membership has work ([`Membership::quiet_until`]: the next heartbeat or the earliest
    /// suspicion), and at least every interval and every half dead time (so that a tick's
    /// gap never looks like a stall of this node). In a quiet cluster that is one wake-up
    /// per heartbeat instead of four: the daemon's time-driven work on the owner, which
    /// competes with the service for its CPU, was 2.5 M instructions a second under TCG
    /// (Documentation/testing.rst, "The owner's own work, counted").
    fn next_tick(&self, last: Duration, tick: Duration) -> Duration {
        let busy = last + tick;
        let in_motion = !self.pending.is_empty()
            || !self.not_yet.is_empty()
            || !self.recovery_out.is_empty()
            || self.handoff_out.is_some()
            || self.held
            || (self.cfg.manage_addresses && self.cfg.snoop.is_some() && !self.own_asked);
        if in_motion {
            return busy;
        }
        let Some(quiet) = self.members.quiet_until(self.now()) else {
            return busy;
        };
        let dead = self.members.params().dead_time();
        let cap = last + self.cfg.interval.min(dead / 2);
        quiet
            .min(cap)
            .min(self.last_resync + RESYNC)
            .max(last + Duration::from_millis(1))
    }

    /// Runs until `shutdown` completes (`Ok`) or this node learns that the cluster declared
    /// it down (`Err`: restart with a newer incarnation).
    pub async fn run(
        mut self,
        shutdown: impl Future<Output = ()>,
        mut control: mpsc::UnboundedReceiver<Control>,
    ) -> Result<(), String> {
        crate::log!(
            INFO,
            "node {} of cluster {}, incarnation {}, listening on {:?}",
            self.cfg.node_id,
            self.cfg.cluster_id,
            self.auth.incarnation(),
            self.local_addrs()
        );
        self.install_declarations();
        self.start_snooping();
        // A takeover by an earlier run of this daemon left nodes failed in the kernel: they
        // rejoin when they are back, as if this run had taken them over.
        let _ = self.jobs.send(Job::FailedNodes);
        for to in self.peer_ids() {
            self.send_declaration(to, true);
        }
        let status_listener = match &self.cfg.status_socket {
            Some(p) => Some(status_listener(p)?),
            None => None,
        };
        let control_listener = match &self.cfg.control_socket {
            Some(p) => Some(control_listener(p)?),
            None => None,
        };
        let mut internal = self.internal_rx.take().expect("run once");
        let tick = (self.cfg.interval / 4).max(Duration::from_millis(1));
        let mut last_tick = self.now();
        let wake = tokio::time::sleep_until(self.instant(last_tick + tick));
        tokio::pin!(wake);
        let socks = std::mem::take(&mut self.socks);
        let mut buf = vec![0u8; MAX_DATAGRAM + 1];
        tokio::pin!(shutdown);
        let mut control_open = true;
        // The hold file: created "0" when missing or unreadable; a "1" (this node was taken
        // over, and not recovered) stays until an operator writes "0".
        if let Some(path) = self
            .cfg
            .keepalived
            .as_ref()
            .and_then(|k| k.hold_file.clone())
        {
            match std::fs::read_to_string(&path).map(|v| v.trim().to_string()) {
                Ok(v) if v == "0" || v == "1" => {
                    crate::log!(INFO, "keepalived hold file {}: {v}", path.display())
                }
                _ => {
                    write_hold(&path, "0");
                    crate::log!(INFO, "keepalived hold file {}: 0 (created)", path.display());
                }
            }
            self.hold = Some(path);
        }
        let mut fifo = None;
        if let Some(path) = self.cfg.keepalived.as_ref().and_then(|k| k.fifo.clone()) {
            let (tx, rx) = mpsc::unbounded_channel();
            std::thread::Builder::new()
                .name("permtcpd-fifo".into())
                .spawn(move || fifo_reader(path, tx))
                .map_err(|e| format!("keepalived FIFO reader: {e}"))?;
            fifo = Some(rx);
        }
        loop {
            let recv = std::future::poll_fn(|cx| {
                for s in &socks {
                    let mut rb = ReadBuf::new(&mut buf);
                    if let Poll::Ready(r) = s.poll_recv_from(cx, &mut rb) {
                        return Poll::Ready(r.map(|from| (rb.filled().len(), from)));
                    }
                }
                Poll::Pending
            });
            tokio::select! {
                _ = &mut shutdown => break,
                r = recv => match r {
                    Ok((n, from)) => {
                        let data = buf[..n].to_vec();
                        self.on_datagram(&socks, &data, from);
                        // A peer's echo moves the lease on: asked for now, not at the next
                        // tick, which may be an interval away.
                        self.renew_lease(self.now());
                    }
                    Err(e) => crate::log!(WARNING, "receive: {e}"),
                },
                _ = &mut wake => {
                    self.on_tick(&socks);
                    last_tick = self.now();
                }
                c = accept_status(status_listener.as_ref()) => {
                    if let Ok((conn, _)) = c {
                        let text = self.status_json();
                        // Small enough for the socket buffer; a reader that is gone is fine.
                        let _ = conn.try_write(text.as_bytes());
                    }
                }
                Some(done) = self.done_rx.recv() => self.on_done(&socks, done),
                Some(line) = next_fifo_line(&mut fifo) => self.on_keepalived(&socks, &line),
                c = control.recv(), if control_open => match c {
                    Some(c) => self.on_control(&socks, c),
                    None => control_open = false,
                },
                Some(c) = internal.recv() => self.on_control(&socks, c),
                c = accept_status(control_listener.as_ref()) => {
                    if let Ok((conn, _)) = c {
                        tokio::spawn(control_conn(conn, self.internal_tx.clone()));
                    }
                }
            }
            self.publish();
            let next = self.next_tick(last_tick, tick);
            wake.as_mut().reset(self.instant(next));
            if self.members.self_down() {
                return Err(format!(
                    "the cluster declared this node (incarnation {}) down",
                    self.auth.incarnation()
                ));
            }
        }
        Ok(())
    }

    fn on_control(&mut self, socks: &[UdpSocket], c: Control) {
        match c {
            Control::Keys(keys, id) => match self.auth.set_keys(keys, id) {
                Ok(()) => crate::log!(NOTICE, "keys reloaded, sending with key id {id}"),
                Err(e) => crate::log!(ERR, "keys not reloaded: {e}"),
            },
            Control::Handoff { binding, to, reply } => {
                if let Err(e) = self.start_handoff(socks, binding, to, reply) {
                    crate::log!(
                        WARNING,
                        "handoff of {binding} to node {to} refused: {}",
                        e.0
                    );
                    let _ = e.1.send(error_json(&e.0));
                }
            }
        }
    }

    /// Starts a planned handoff of `binding` to `to`, after the checks: `to` is a live peer
    /// and the binding is one of this node's; none runs already.
    #[allow(clippy::type_complexity)]
    fn start_handoff(
        &mut self,
        _socks: &[UdpSocket],
        binding: SocketAddr,
        to: u32,
        reply: tokio::sync::oneshot::Sender<String>,
    ) -> Result<(), (String, tokio::sync::oneshot::Sender<String>)> {
        let now = self.now();
        if to == self.cfg.node_id || !self.peer_addrs.contains_key(&to) {
            return Err((
                format!("node {to} is not a peer of this node (unknown node)"),
                reply,
            ));
        }
        let live = self
            .members
            .view(now)
            .iter()
            .find(|v| v.node == to)
            .filter(|v| v.state == NodeState::Alive && v.incarnation != 0)
            .map(|v| v.incarnation);
        let Some(to_inc) = live else {
            return Err((format!("node {to} is not live here"), reply));
        };
        // This node's binding (a handoff), or a peer's (a hand back: the connections this
        // node serves for it).
        let addr = permctl::spec::to_addr(binding.ip());
        let declared = std::iter::once(&self.cfg.declaration)
            .chain(self.decls.values().map(|p| &p.decl))
            .any(|d| permtcp_logic::policy::declares(d, &addr, binding.port()));
        if !declared {
            return Err((
                format!("{binding} is not one of this node's bindings (nor a peer's)"),
                reply,
            ));
        }
        if let Some(h) = &self.handoff_out {
            return Err((
                format!(
                    "handoff {} of {} to node {} is running",
                    h.id, h.binding, h.to
                ),
                reply,
            ));
        }
        let id = self.next_handoff;
        self.next_handoff += 1;
        crate::log!(
            NOTICE,
            "handoff {id}: holding the connections of {binding} for node {to}"
        );
        self.handoff_out = Some(HandoffOut {
            id,
            binding,
            to,
            to_inc,
            reply: Some(reply),
            asked: now,
            conns: Vec::new(),
            hold: Duration::ZERO,
            parts: Vec::new(),
            results: Vec::new(),
            first_sent: now,
            next_at: Duration::MAX,
            deadline: Duration::MAX,
            take: Duration::ZERO,
            end: "answered",
            aborted: 0,
            finishing: false,
        });
        let _ = self.jobs.send(Job::HandoffHold(id, binding));
        Ok(())
    }

    /// The hold of handoff `id` is done: its held connections go to the peer, in parts.
    fn on_handoff_held(
        &mut self,
        socks: &[UdpSocket],
        id: u64,
        r: Result<Vec<HandoffConn>, KernelError>,
        took: Duration,
    ) {
        let now = self.now();
        let timeout = self.cfg.handoff_timeout;
        let Some(h) = self.handoff_out.as_mut().filter(|h| h.id == id) else {
            return;
        };
        h.hold = took;
        let conns = match r {
            Ok(c) => c,
            Err(e) => {
                let h = self.handoff_out.take().expect("running");
                // The kernel may have held some before the error; their list is lost with the
                // reply, and a connection held is never resumed blindly: they stay held.
                let text = format!(
                    "holding {}: {e} (connections held before the error, if any, stay held)",
                    h.binding
                );
                crate::log!(ERR, "handoff {id}: {text}");
                if let Some(reply) = h.reply {
                    let _ = reply.send(error_json(&text));
                }
                self.kernel_error(&e);
                return;
            }
        };
        let held: Vec<HandoffConn> = conns
            .iter()
            .filter(|c| c.status == hs::HELD)
            .copied()
            .collect();
        h.conns = conns;
        let inc = h.to_inc;
        h.parts = held
            .chunks(HANDOFF_PART)
            .enumerate()
            .map(|(i, c)| HandoffPart {
                id,
                incarnation: inc,
                part: i as u16,
                parts: held.len().div_ceil(HANDOFF_PART) as u16,
                conns: c.to_vec(),
            })
            .collect();
        h.results = vec![None; h.parts.len()];
        h.first_sent = now;
        h.deadline = now + timeout;
        crate::log!(
            NOTICE,
            "handoff {id}: {} held ({} ms), {} busy, {} gone; asking node {} to take them",
            held.len(),
            took.as_millis(),
            h.conns.iter().filter(|c| c.status == hs::BUSY).count(),
            h.conns.iter().filter(|c| c.status == hs::GONE).count(),
            h.to
        );
        if h.parts.is_empty() || held.len() > HANDOFF_PART * usize::from(u16::MAX) {
            self.finish_handoff("answered");
            return;
        }
        self.transmit_handoff(socks);
    }

    /// Sends the parts of the running handoff the peer has not answered (again).
    fn transmit_handoff(&mut self, socks: &[UdpSocket]) {
        let now = self.now();
        let retry = self.cfg.directive_retry;
        let Some(h) = self.handoff_out.as_mut().filter(|h| !h.finishing) else {
            return;
        };
        h.next_at = now + retry;
        let to = h.to;
        let due: Vec<HandoffPart> = h
            .parts
            .iter()
            .zip(&h.results)
            .filter(|(_, r)| r.is_none())
            .map(|(p, _)| p.clone())
            .collect();
        for p in due {
            self.send(socks, to, &Body::Handoff(p));
        }
    }

    /// The peer's answer for a part of the running handoff.
    fn on_handoff_result(&mut self, from: u32, inc: u64, r: HandoffPart) {
        let me = self.auth.incarnation();
        let Some(h) = self.handoff_out.as_mut() else {
            return;
        };
        if h.finishing
            || h.to != from
            || h.to_inc != inc
            || h.id != r.id
            || r.incarnation != me
            || usize::from(r.parts) != h.parts.len()
        {
            crate::log!(DEBUG, "node {from}: a handoff answer for another handoff");
            return;
        }
        let i = usize::from(r.part);
        if h.results[i].is_some() {
            return;
        }
        // Only the part's own connections count; one missing stays unknown.
        let sent = &h.parts[i].conns;
        h.results[i] = Some(
            r.conns
                .into_iter()
                .filter(|c| sent.iter().any(|s| s.key == c.key))
                .collect(),
        );
        if h.results.iter().all(Option::is_some) {
            self.finish_handoff("answered");
        }
    }

    /// Ends the wait of the running handoff: DONE for the connections the peer answered
    /// for (taken: dropped here; refused: resumed), abort for the others (never resumed:
    /// the peer may have taken them).
    fn finish_handoff(&mut self, why: &'static str) {
        let now = self.now();
        let dev = self.cfg.snoop.as_ref().map(|s| s.device.clone());
        let Some(h) = self.handoff_out.as_mut() else {
            return;
        };
        if h.finishing {
            return;
        }
        h.finishing = true;
        h.end = why;
        h.take = now.saturating_sub(h.first_sent);
        let answered: HashMap<FlowKey, u8> = h
            .results
            .iter()
            .flatten()
            .flatten()
            .map(|c| (c.key, c.status))
            .collect();
        let (mut done, mut abort) = (Vec::new(), Vec::new());
        for c in h.conns.iter().filter(|c| c.status == hs::HELD) {
            match answered.get(&c.key) {
                Some(&s) if s == hs::TAKEN || is_refusal(s) => {
                    done.push(HandoffConn { status: s, ..*c })
                }
                _ => abort.push(*c),
            }
        }
        h.aborted = abort.len();
        if !abort.is_empty() {
            crate::log!(
                ERR,
                "handoff {}: node {} did not answer for {} connections ({why}): they are aborted, never resumed (the peer may have taken them); their clients get a reset",
                h.id,
                h.to,
                abort.len()
            );
        }
        let _ = self
            .jobs
            .send(Job::HandoffDone(h.id, h.to, done, abort, dev));
    }

    /// The running handoff's DONE is done: its summary to the asker.
    fn on_handoff_done(
        &mut self,
        id: u64,
        d: Result<(), KernelError>,
        a: Result<usize, KernelError>,
        took: Duration,
    ) {
        if self.handoff_out.as_ref().is_none_or(|h| h.id != id) {
            return;
        }
        let mut h = self.handoff_out.take().expect("running");
        let total = self.now().saturating_sub(h.asked);
        let answered: Vec<HandoffConn> = h.results.iter().flatten().flatten().copied().collect();
        let mut err = Vec::new();
        if let Err(e) = &d {
            self.kernel_error(e);
            err.push(format!(
                "HANDOFF_DONE: {e}; the connections stay held (permctl handoff done --to {} with their lines)",
                h.to
            ));
        }
        let resets = match a {
            Ok(n) => n,
            Err(e) => {
                self.kernel_error(&e);
                err.push(format!("aborting the connections not answered for: {e}"));
                0
            }
        };
        let text = handoff_summary(&HandoffFigures {
            id,
            binding: h.binding,
            to: h.to,
            conns: &h.conns,
            answered: &answered,
            aborted: h.aborted,
            resets,
            end: h.end,
            hold: h.hold,
            take: h.take,
            done: took,
            total,
            error: (!err.is_empty()).then(|| err.join("; ")),
        });
        crate::log!(NOTICE, "handoff {id} done: {}", text.trim_end());
        self.status.handoffs += 1;
        if let Some(r) = h.reply.take() {
            let _ = r.send(text);
        }
    }

    /// A handoff part from `from` (incarnation `inc`), as the peer taking them: taken once;
    /// a part seen again gets the same answer again (or none while the kernel works on it).
    fn on_handoff_part(&mut self, socks: &[UdpSocket], from: u32, inc: u64, p: HandoffPart) {
        if p.incarnation != self.auth.incarnation() {
            crate::log!(
                DEBUG,
                "node {from}'s handoff part for incarnation {} of this node: not this one",
                p.incarnation
            );
            return;
        }
        let key = (from, inc, p.id, p.part);
        match self.handoff_in.get(&key) {
            Some(HandoffIn {
                result: Some(r), ..
            }) => {
                let r = r.clone();
                self.send(socks, from, &Body::HandoffResult(r));
            }
            Some(_) => {}
            None => {
                let first = self.now();
                self.handoff_in.insert(
                    key,
                    HandoffIn {
                        result: None,
                        first,
                    },
                );
                let _ = self.jobs.send(Job::HandoffTake(key, p));
            }
        }
    }

    /// The kernel answered a handoff part: remembered, and sent to its sender.
    fn on_handoff_taken(
        &mut self,
        socks: &[UdpSocket],
        key: PartKey,
        p: HandoffPart,
        took: Duration,
    ) {
        let answer = HandoffPart {
            incarnation: key.1,
            ..p
        };
        let taken = answer
            .conns
            .iter()
            .filter(|c| c.status == hs::TAKEN)
            .count();
        crate::log!(
            NOTICE,
            "handoff {} part {}/{} from node {}: {taken} of {} taken ({} ms)",
            key.2,
            usize::from(key.3) + 1,
            answer.parts,
            key.0,
            answer.conns.len(),
            took.as_millis()
        );
        self.status.handoff_parts += 1;
        if let Some(e) = self.handoff_in.get_mut(&key) {
            e.result = Some(answer.clone());
        }
        self.send(socks, key.0, &Body::HandoffResult(answer));
    }

    /// Whether this node has quorum and every live peer's recovery list for this incarnation
    /// is installed (owner recovery: the failback may go on).
    fn synced(&self, now: Duration) -> bool {
        let me = self.cfg.node_id;
        self.members.has_quorum(now)
            && self.members.view(now).iter().all(|v| {
                v.node == me
                    || v.state != NodeState::Alive
                    || self.status.recovered_from.contains_key(&v.node)
            })
    }

    /// `manage_addresses`: once this node has quorum and every live peer's recovery list is
    /// installed, takes its own addresses (failback waits for the resynchronisation); in
    /// keepalived mode, releases the hold file then.
    fn take_own_addresses(&mut self, now: Duration) {
        if self.held && self.synced(now) {
            // keepalived mode: the hold is released once the recovery lists are in.
            self.held = false;
            if let Some(path) = &self.hold {
                crate::log!(
                    NOTICE,
                    "owner recovery: every live peer's list installed: keepalived may give this node its address back"
                );
                write_hold(path, "0");
            }
        }
        if !self.cfg.manage_addresses || self.own_asked || !self.synced(now) {
            return;
        }
        let Some(snoop) = &self.cfg.snoop else {
            return;
        };
        self.own_asked = true;
        let _ = self.jobs.send(Job::OwnAddresses(snoop.device.clone()));
    }

    /// Sends `node` (incarnation `incarnation`) the list of the connections of its bindings
    /// this node serves, and keeps sending it until it is acknowledged.
    fn send_recovery(
        &mut self,
        socks: &[UdpSocket],
        node: u32,
        incarnation: u64,
        served: &[FlowKey],
    ) {
        if self.members.peer(node).map(|(_, inc)| inc) != Some(incarnation) {
            return;
        }
        let id = self.next_recovery;
        self.next_recovery += 1;
        let Some(parts) = crate::recovery::split(id, incarnation, served) else {
            crate::log!(
                ERR,
                "owner recovery: {} connections for node {node}: too many",
                served.len()
            );
            return;
        };
        if !served.is_empty() {
            crate::log!(
                NOTICE,
                "owner recovery: node {node} is back; this node serves {} of its connections: telling it",
                served.len()
            );
        }
        self.recovery_out.insert(
            node,
            RecoveryOut {
                parts,
                sent: 0,
                next_at: self.now(),
            },
        );
        self.transmit_recovery(socks, node);
    }

    /// Sends the recovery list for `node` (again).
    fn transmit_recovery(&mut self, socks: &[UdpSocket], node: u32) {
        let now = self.now();
        let Some(o) = self.recovery_out.get_mut(&node) else {
            return;
        };
        o.sent += 1;
        o.next_at = now + self.cfg.directive_retry;
        let parts = o.parts.clone();
        for p in parts {
            self.send(socks, node, &Body::Recovery(p));
        }
    }

    /// The running handoff, waiting for the peer: its parts sent again; ended when the
    /// peer is declared down or came back in another incarnation (it forgot the handoff),
    /// or at the timeout.
    fn tick_handoff(&mut self, socks: &[UdpSocket], now: Duration) {
        let Some(h) = self
            .handoff_out
            .as_ref()
            .filter(|h| !h.finishing && !h.parts.is_empty())
        else {
            return;
        };
        let (to, to_inc, deadline, next_at) = (h.to, h.to_inc, h.deadline, h.next_at);
        let gone = self
            .members
            .view(now)
            .iter()
            .any(|v| v.node == to && (v.state == NodeState::Down || v.incarnation != to_inc));
        if gone {
            self.finish_handoff("peer down");
        } else if now >= deadline {
            self.finish_handoff("timeout");
        } else if now >= next_at {
            self.transmit_handoff(socks);
        }
    }

    fn queue_takeover(&mut self, node: u32) {
        let now = self.now();
        if let Some(q) = self.takeover_queued.get_mut(&node) {
            q.2 = now;
            crate::log!(
                INFO,
                "node {node}: taking over, {} ms after the verdict",
                now.saturating_sub(q.0).as_millis()
            );
        }
        let _ = self.jobs.send(Job::Takeover(node, true));
    }

    /// A line from keepalived's FIFO.
    fn on_keepalived(&mut self, socks: &[UdpSocket], line: &str) {
        let n = match keepalived::parse_line(line) {
            Ok(n) => n,
            Err(e) => {
                crate::log!(WARNING, "keepalived FIFO: {line:?} ignored: {}", e.0);
                return;
            }
        };
        let Some(map) = &self.engine else {
            return;
        };
        match map.action(&n) {
            Action::TakeOver { node, instance } => {
                crate::log!(NOTICE, "keepalived: this node is MASTER of {instance} (node {node}'s address)");
                self.master_of.insert(node);
                self.engine_takeover(socks, node, true);
            }
            Action::LostOwn { instance, state } => crate::log!(
                WARNING,
                "keepalived: this node's own instance {instance} is {state:?}: its address went elsewhere"
            ),
            Action::Released { node, instance } if self.engine_taken.contains(&node) => {
                crate::log!(
                    NOTICE,
                    "keepalived: {instance} (node {node}'s address) left this node: the address is held quietly for the connections served here"
                );
                let _ = self.jobs.send(Job::HandBack(node));
                self.master_of.remove(&node);
                self.maybe_rejoin(node);
            }
            Action::Released { .. } | Action::None => crate::log!(DEBUG, "keepalived: {line}"),
        }
    }

    /// Owner recovery: once `node`, declared failed in this node's kernel, installed this
    /// node's recovery list (and, in keepalived mode, once this node no longer holds its
    /// address: keepalived moved it back), it is a member again here (REJOIN): its new
    /// connections are mirrored, and a later failure is taken over again; those of its
    /// connections other nodes serve stay followed.
    fn maybe_rejoin(&mut self, node: u32) {
        if self.failed_here.contains(&node)
            && self.acked_here.contains(&node)
            && !self.master_of.contains(&node)
        {
            let _ = self.jobs.send(Job::Rejoin(node));
        }
    }

    /// Tells `node`, heard again, that it was taken over on keepalived's word, so that it
    /// keeps its instances held down.
    fn tell_if_taken(&mut self, socks: &[UdpSocket], node: u32) {
        if self.engine_taken.contains(&node) {
            self.send(socks, node, &Body::Failover(Failover { node }));
        }
    }

    /// Takes `node` over on keepalived's word: at once (keepalived decided; no lease wait)
    /// and without assuming its addresses (keepalived holds them); with `tell`, asks every
    /// peer to take over its share too. Once per node.
    fn engine_takeover(&mut self, socks: &[UdpSocket], node: u32, tell: bool) {
        if !self.engine_taken.insert(node) {
            crate::log!(INFO, "node {node}: already taken over on keepalived's word");
            return;
        }
        if tell {
            self.broadcast(socks, &Body::Failover(Failover { node }));
        }
        if !self.decls.contains_key(&node) {
            crate::log!(
                NOTICE,
                "node {node} declared nothing here: nothing to take over"
            );
            return;
        }
        let now = self.now();
        let silence = self.last_heard.get(&node).map(|t| now.saturating_sub(*t));
        self.status.takeovers.push(node);
        self.takeover_queued.insert(node, (now, silence, now));
        crate::log!(NOTICE, "node {node}: taking over on keepalived's word, keeping its addresses where keepalived put them");
        let _ = self.jobs.send(Job::Takeover(node, false));
    }

    fn peer_ids(&self) -> Vec<u32> {
        self.peer_addrs.keys().copied().collect()
    }

    fn publish(&mut self) {
        let now = self.now();
        self.status.handoff_running = self.handoff_out.is_some();
        self.status.auth = self.auth.counters().clone();
        self.status.split_brain = self.members.split_brain();
        self.status.view = self.members.view(now);
        self.status.quorum = self.members.has_quorum(now);
        self.status.lease = self.members.lease_ok(now);
        self.status.self_down = self.members.self_down();
        self.status.declarations = std::iter::once(self.cfg.node_id)
            .chain(self.decls.keys().copied())
            .collect();
        *self.handle.0.lock().unwrap() = self.status.clone();
    }

    fn send(&mut self, socks: &[UdpSocket], to: u32, body: &Body) {
        let Some(addrs) = self.peer_addrs.get(&to).cloned() else {
            return;
        };
        for addr in addrs {
            let Some(sock) = socks
                .iter()
                .find(|s| s.local_addr().is_ok_and(|l| l.is_ipv4() == addr.is_ipv4()))
            else {
                continue;
            };
            match self.auth.seal(to, body) {
                Ok(bytes) => {
                    let now = self.now();
                    self.members.sent(self.auth.last_seq(), now);
                    if let Err(e) = sock.try_send_to(&bytes, addr) {
                        crate::log!(DEBUG, "send to node {to} at {addr}: {e}");
                    }
                }
                Err(e) => crate::log!(ERR, "cannot encode a message for node {to}: {e}"),
            }
        }
    }

    fn broadcast(&mut self, socks: &[UdpSocket], body: &Body) {
        for to in self.peer_ids() {
            self.send(socks, to, body);
        }
    }

    /// Sends this node's declaration to `to`; with `solicit`, asks for `to`'s. Only before
    /// [`Daemon::run`] takes the sockets.
    fn send_declaration(&mut self, to: u32, solicit: bool) {
        let body = Body::Declaration {
            solicit,
            version: DECL_VERSION,
            decl: Box::new(self.cfg.declaration),
        };
        let socks = std::mem::take(&mut self.socks);
        self.send(&socks, to, &body);
        self.socks = socks;
    }

    fn install_declarations(&mut self) {
        let mut all = vec![self.cfg.declaration];
        all.extend(self.decls.values().map(|p| p.decl));
        let _ = self.jobs.send(Job::SetDeclarations(all));
    }

    fn start_snooping(&mut self) {
        if let Some(s) = &self.cfg.snoop {
            let _ = self.jobs.send(Job::StartSnooping(s.clone()));
        }
    }

    /// The status as `permtcpd --status` prints it (Documentation/cluster.rst).
    pub fn status_json(&self) -> String {
        status_json(&self.status, &self.cfg, self.auth.incarnation())
    }

    fn on_datagram(&mut self, socks: &[UdpSocket], data: &[u8], src: SocketAddr) {
        let now = self.now();
        let o = match self.auth.open(data, src.ip()) {
            Ok(o) => o,
            Err(r) => {
                // Counted; logged in sum once a minute (a flood must not flood the journal).
                crate::log!(DEBUG, "dropped a datagram from {src}: {}", r.name());
                return;
            }
        };
        let (from, inc) = (o.header.from, o.header.incarnation);
        match self.members.admit(from, inc, o.header.seq, now) {
            Admit::Accept => {
                self.last_heard.insert(from, now);
            }
            _ => {
                self.handle_events(socks);
                return;
            }
        }
        match o.body {
            Body::Declaration {
                solicit,
                version,
                decl,
            } => {
                self.on_declaration(from, inc, version, *decl);
                if solicit {
                    self.send(
                        socks,
                        from,
                        &Body::Declaration {
                            solicit: false,
                            version: DECL_VERSION,
                            decl: Box::new(self.cfg.declaration),
                        },
                    );
                }
            }
            Body::Heartbeat(hb) => {
                self.members.on_view(from, &hb.view, now);
                let current = self
                    .decls
                    .get(&from)
                    .is_some_and(|p| p.incarnation == inc && p.version == hb.decl_version);
                let recently = self
                    .last_solicit
                    .get(&from)
                    .is_some_and(|t| now.saturating_sub(*t) < self.cfg.interval * self.cfg.missed);
                if !current && hb.decl_version != 0 && !recently {
                    self.last_solicit.insert(from, now);
                    self.send(
                        socks,
                        from,
                        &Body::Declaration {
                            solicit: true,
                            version: DECL_VERSION,
                            decl: Box::new(self.cfg.declaration),
                        },
                    );
                }
            }
            Body::NodeDown(nd) => self.members.on_node_down(from, &nd, now),
            Body::Failover(f) if f.node == self.cfg.node_id && f.node != from => {
                crate::log!(
                    WARNING,
                    "node {from} took this node over on keepalived's word: this node's instances stay held down until every live peer's recovery list is installed"
                );
                if let Some(path) = &self.hold {
                    write_hold(path, "1");
                    self.held = true;
                }
            }
            Body::Failover(f) if f.node != from => {
                crate::log!(
                    NOTICE,
                    "node {from} took node {} over on keepalived's word",
                    f.node
                );
                self.engine_takeover(socks, f.node, false);
            }
            Body::Failover(f) => crate::log!(
                WARNING,
                "node {from} sent a failover of node {}: ignored",
                f.node
            ),
            Body::Recovery(r) if r.incarnation == self.auth.incarnation() => {
                if let Some((id, served)) = self.recovery_in.add(from, inc, r) {
                    let _ = self.jobs.send(Job::Recovery(from, id, served));
                }
            }
            Body::Recovery(r) => crate::log!(
                DEBUG,
                "node {from}'s recovery list for incarnation {} of this node: not this one",
                r.incarnation
            ),
            Body::RecoveryAck(a) => {
                if self
                    .recovery_out
                    .get(&from)
                    .is_some_and(|o| o.parts[0].id == a.id)
                {
                    self.recovery_out.remove(&from);
                    self.status.recovery_acked.push(from);
                    // Its kernel follows the connections served here: the addresses this
                    // node took over from it go back.
                    // (keepalived mode: when keepalived takes the address away, below.)
                    let engine = self.engine.as_ref().is_some_and(|m| m.manages(from));
                    if self.status.takeovers.contains(&from) && !engine {
                        let _ = self.jobs.send(Job::HandBack(from));
                    }
                    self.acked_here.insert(from);
                    self.maybe_rejoin(from);
                }
            }
            Body::Handoff(p) => self.on_handoff_part(socks, from, inc, p),
            Body::HandoffResult(r) => self.on_handoff_result(from, inc, r),
            Body::Directive(d) => self.on_directive(socks, (from, inc, d.id), d.req),
            Body::Ack(a) => {
                if let Some(p) = self.pending.remove(&a.id) {
                    self.status.acks_received += 1;
                    crate::log!(
                        INFO,
                        "directive {} for a connection of node {}: node {} answers {:?}",
                        a.id,
                        p.req.node,
                        from,
                        a.result
                    );
                }
            }
        }
        self.handle_events(socks);
    }

    fn on_declaration(&mut self, from: u32, inc: u64, version: u32, decl: Declaration) {
        if decl.node_id != from {
            crate::log!(
                WARNING,
                "node {from} sent a declaration for node {}: ignored",
                decl.node_id
            );
            return;
        }
        if self
            .decls
            .get(&from)
            .is_some_and(|p| p.incarnation == inc && p.version == version && p.decl == decl)
        {
            return;
        }
        let others = std::iter::once(&self.cfg.declaration)
            .chain(
                self.decls
                    .iter()
                    .filter(|(&n, _)| n != from)
                    .map(|(_, p)| &p.decl),
            )
            .collect::<Vec<_>>();
        if let Err(e) = check_insert(&decl, others.into_iter()) {
            crate::log!(
                ERR,
                "the declaration of node {from} conflicts with the cluster's: {}",
                e.text()
            );
            return;
        }
        crate::log!(INFO, "declaration of node {from} (incarnation {inc})");
        self.decls.insert(
            from,
            PeerDecl {
                incarnation: inc,
                version,
                decl,
            },
        );
        self.install_declarations();
    }

    fn on_directive(&mut self, socks: &[UdpSocket], key: DirKey, mut req: DirectiveRequest) {
        // The kernel acts only if this node is the next peer after the sender: the sender is
        // the authenticated one, whatever the message says.
        req.from = Some(key.0);
        let now = self.now();
        match self.handled.get(&key) {
            Some(Handled {
                result: Some(r), ..
            }) => {
                let r = *r;
                self.send(
                    socks,
                    key.0,
                    &Body::Ack(Ack {
                        id: key.2,
                        result: r,
                    }),
                );
            }
            Some(_) => {}
            None => {
                self.handled.insert(
                    key,
                    Handled {
                        result: None,
                        first: now,
                    },
                );
                self.status.directives_applied += 1;
                let _ = self.jobs.send(Job::Directive(key, req));
            }
        }
    }

    fn send_directive(&mut self, socks: &[UdpSocket], to: u32, mut req: DirectiveRequest) {
        req.from = Some(self.cfg.node_id);
        let id = self.next_directive;
        self.next_directive += 1;
        self.status.directives_sent += 1;
        self.send(socks, to, &Body::Directive(Directive { id, req }));
        let next_at = self.now() + self.cfg.directive_retry;
        self.pending.insert(
            id,
            Pending {
                to,
                req,
                sent: 1,
                next_at,
            },
        );
    }

    fn on_done(&mut self, socks: &[UdpSocket], done: Done) {
        match done {
            Done::Takeover(node, Ok(r), took) => {
                self.failed_here.insert(node);
                let now = self.now();
                let (since_verdict, silence, wait) = match self.takeover_queued.get(&node) {
                    Some(&(verdict, silence, queued)) => (
                        Some(now.saturating_sub(verdict)),
                        silence,
                        queued.saturating_sub(verdict),
                    ),
                    None => (None, None, Duration::ZERO),
                };
                crate::log!(
                    NOTICE,
                    "took over node {node}: {} connections ({} parked), {} not ready ({} directed to other peers, {} reset), {} for other nodes, {} failed; lease wait {} ms, kernel {} ms, done {} ms after the verdict, {} ms after node {node} was last heard",
                    r.taken,
                    r.parked,
                    r.not_ready,
                    r.directives.len(),
                    r.reset,
                    r.not_mine,
                    r.failed,
                    wait.as_millis(),
                    took.as_millis(),
                    since_verdict.map_or(0, |d| d.as_millis()),
                    silence.map_or("?".into(), |s| (s + since_verdict.unwrap_or_default()).as_millis().to_string()),
                );
                for d in r.directives {
                    let req = DirectiveRequest {
                        node,
                        key: d.key,
                        park_ms: self.cfg.park_ms,
                        from: Some(self.cfg.node_id),
                    };
                    self.send_directive(socks, d.next, req);
                }
            }
            Done::Takeover(node, Err(e), _) => {
                self.kernel_error(&e);
                crate::log!(ERR, "takeover of node {node} failed: {e}");
            }
            Done::Directive(key, req, r) => {
                let now = self.now();
                let (owner, client) = permctl::spec::ends(&req.key);
                let since = self
                    .handled
                    .get(&key)
                    .map_or(0, |h| now.saturating_sub(h.first).as_millis());
                match &r {
                    Err(KernelError::NotYet) => {}
                    Ok(res) => crate::log!(
                        INFO,
                        "directive {} from node {} for {owner} <- {client} of node {}: {res:?} ({since} ms after it arrived)",
                        key.2,
                        key.0,
                        req.node
                    ),
                    Err(e) => self.kernel_error(e),
                }
                let result = match r {
                    Ok(DirectiveResult::Taken { .. }) => AckResult::Taken,
                    Ok(DirectiveResult::PassOn { next }) => {
                        self.send_directive(socks, next, req);
                        AckResult::PassedOn
                    }
                    Ok(DirectiveResult::Reset) => AckResult::Reset,
                    Ok(DirectiveResult::Failed) => AckResult::Failed,
                    Err(KernelError::NotYet)
                        if self.handled.get(&key).is_some_and(|h| {
                            now.saturating_sub(h.first) < DIRECTIVE_NOT_YET_FOR
                        }) =>
                    {
                        self.not_yet.push((now + DIRECTIVE_NOT_YET_RETRY, key, req));
                        return;
                    }
                    Err(e) => {
                        crate::log!(ERR, "directive from node {}: {e}", key.0);
                        AckResult::Failed
                    }
                };
                if let Some(h) = self.handled.get_mut(&key) {
                    h.result = Some(result);
                }
                self.send(socks, key.0, &Body::Ack(Ack { id: key.2, result }));
            }
            Done::Fence(node, ok) => {
                let now = self.now();
                self.members.fence_done(node, ok, now);
                self.handle_events(socks);
            }
            Done::Failed(what, e) => {
                self.kernel_error(&e);
                crate::log!(ERR, "{what}: {e}")
            }
            Done::Served(node, inc, Ok(served)) => self.send_recovery(socks, node, inc, &served),
            Done::Served(node, _, Err(e)) => {
                self.kernel_error(&e);
                crate::log!(ERR, "owner recovery: the connections served for node {node}: {e}")
            }
            Done::Recovery(from, id, n, Ok(())) => {
                let new = self.status.recovered_from.insert(from, n) != Some(n);
                if new {
                    crate::log!(
                        NOTICE,
                        "owner recovery: node {from} serves {n} connections of this node's; installed"
                    );
                }
                self.send(socks, from, &Body::RecoveryAck(RecoveryAck { id }));
                let now = self.now();
                let live: Vec<u32> = self
                    .members
                    .view(now)
                    .iter()
                    .filter(|v| v.node != self.cfg.node_id && v.state == NodeState::Alive)
                    .map(|v| v.node)
                    .collect();
                if new && live.iter().all(|p| self.status.recovered_from.contains_key(p)) {
                    crate::log!(
                        NOTICE,
                        "owner recovery: every live peer's list installed ({live:?})"
                    );
                }
            }
            Done::Recovery(from, _, _, Err(e)) => {
                self.kernel_error(&e);
                crate::log!(ERR, "owner recovery: installing node {from}'s list: {e}")
            }
            Done::HandBack(node, Ok(addrs)) => crate::log!(
                NOTICE,
                "owner recovery: node {node} follows the connections served here; its addresses {addrs:?} handed back"
            ),
            Done::OwnAddresses(dev, Ok(ips)) => {
                crate::log!(
                    NOTICE,
                    "owner recovery: every live peer's list installed: this node takes {ips:?} on {dev}"
                );
                self.status.addresses_taken = true;
                announce(dev, ips);
            }
            Done::OwnAddresses(dev, Err(e)) => {
                self.kernel_error(&e);
                self.own_asked = false;
                crate::log!(ERR, "owner recovery: taking this node's addresses on {dev}: {e}")
            }
            Done::Rejoin(node, Ok(())) => {
                self.failed_here.remove(&node);
                self.acked_here.remove(&node);
                // keepalived's next MASTER for it is a new failure, taken over again.
                self.engine_taken.remove(&node);
                self.status.rejoined.push(node);
                crate::log!(
                    NOTICE,
                    "owner recovery: node {node} rejoined: its new connections are mirrored here again"
                );
            }
            Done::FailedNodes(Ok(nodes)) => {
                for node in nodes {
                    if self.failed_here.insert(node) {
                        crate::log!(
                            NOTICE,
                            "node {node} is declared failed in this node's kernel (an earlier takeover): it rejoins once it is back"
                        );
                        self.maybe_rejoin(node);
                    }
                }
            }
            Done::FailedNodes(Err(e)) => {
                self.kernel_error(&e);
                crate::log!(ERR, "reading the kernel's failed nodes: {e}")
            }
            Done::Rejoin(node, Err(e)) => {
                self.kernel_error(&e);
                crate::log!(ERR, "owner recovery: node {node} rejoining: {e}")
            }
            Done::HandBack(node, Err(e)) => {
                self.kernel_error(&e);
                crate::log!(ERR, "owner recovery: handing node {node}'s addresses back: {e}")
            }
            Done::HandoffHold(id, r, took) => self.on_handoff_held(socks, id, r, took),
            Done::HandoffTake(key, p, took) => self.on_handoff_taken(socks, key, p, took),
            Done::HandoffEnded(id, d, a, took) => self.on_handoff_done(id, d, a, took),
        }
    }

    fn kernel_error(&mut self, e: &KernelError) {
        self.status.kernel_errors += 1;
        self.status.last_kernel_error = Some(e.to_string());
    }

    /// Asks the kernel for the lease [`Membership::lease_until`] allows, when it moved.
    fn renew_lease(&mut self, now: Duration) {
        let Some(until) = self.members.lease_until(now).filter(|&u| u > now) else {
            return;
        };
        if self.lease_asked.is_some_and(|a| a >= until) {
            return;
        }
        self.lease_asked = Some(until);
        let _ = self.leases.send((until - now, self.start + now));
    }

    fn on_tick(&mut self, socks: &[UdpSocket]) {
        let now = self.now();
        if now.saturating_sub(self.last_resync) >= RESYNC {
            self.last_resync = now;
            self.install_declarations();
            self.start_snooping();
        }
        self.members.tick(now);
        self.handle_events(socks);
        self.renew_lease(now);
        if self.members.heartbeat_due(now) {
            let lease = self.members.lease_ok(now);
            let flags = if self.members.has_quorum(now) {
                HB_QUORUM
            } else {
                0
            } | if lease { HB_LEASE } else { 0 };
            let hb = Body::Heartbeat(Heartbeat {
                flags,
                decl_version: DECL_VERSION,
                view: self.members.view(now),
            });
            self.broadcast(socks, &hb);
        }
        self.take_own_addresses(now);
        self.tick_handoff(socks, now);
        // Recovery lists: retransmit the unacknowledged.
        let due: Vec<u32> = self
            .recovery_out
            .iter()
            .filter(|(_, o)| o.next_at <= now)
            .map(|(&n, _)| n)
            .collect();
        for node in due {
            if self.recovery_out[&node].sent >= RECOVERY_RETRIES {
                crate::log!(
                    ERR,
                    "owner recovery: node {node} never acknowledged this node's list{}",
                    if self.status.takeovers.contains(&node) {
                        "; the addresses taken over from it stay here"
                    } else {
                        ""
                    }
                );
                self.recovery_out.remove(&node);
                continue;
            }
            self.transmit_recovery(socks, node);
        }
        // Directives: retransmit the unacknowledged, retry those the kernel was not ready for.
        let due: Vec<u64> = self
            .pending
            .iter()
            .filter(|(_, p)| p.next_at <= now)
            .map(|(&id, _)| id)
            .collect();
        for id in due {
            let p = self.pending.get_mut(&id).unwrap();
            if p.sent >= self.cfg.directive_retries {
                let p = self.pending.remove(&id).unwrap();
                crate::log!(
                    ERR,
                    "directive {id} to node {} unacknowledged after {} tries: given up",
                    p.to,
                    p.sent
                );
                continue;
            }
            p.sent += 1;
            p.next_at = now + self.cfg.directive_retry;
            let (to, req) = (p.to, p.req);
            self.send(socks, to, &Body::Directive(Directive { id, req }));
        }
        let (retry, keep): (Vec<_>, Vec<_>) =
            self.not_yet.drain(..).partition(|(at, _, _)| *at <= now);
        self.not_yet = keep;
        for (_, key, req) in retry {
            let _ = self.jobs.send(Job::Directive(key, req));
        }
        self.handled
            .retain(|_, h| h.result.is_none() || now.saturating_sub(h.first) < HANDLED_KEEP);
        self.handoff_in
            .retain(|_, h| h.result.is_none() || now.saturating_sub(h.first) < HANDLED_KEEP);
        // Drop counters, at most once a minute when they changed.
        let dropped = self.auth.counters().total_dropped() + self.members.split_brain();
        if dropped != self.logged_counters
            && now.saturating_sub(self.last_counters_log) >= Duration::from_secs(60)
        {
            self.logged_counters = dropped;
            self.last_counters_log = now;
            let c = self.auth.counters();
            let list: Vec<String> = DropReason::ALL
                .iter()
                .filter(|r| c.get(**r) > 0)
                .map(|r| format!("{} {}", r.name(), c.get(*r)))
                .collect();
            crate::log!(
                WARNING,
                "dropped datagrams: {}; split-brain alarms {}",
                list.join(", "),
                self.members.split_brain()
            );
        }
    }

    fn handle_events(&mut self, socks: &[UdpSocket]) {
        for e in self.members.take_events() {
            match e {
                Event::Joined { node, incarnation } => {
                    self.tell_if_taken(socks, node);
                    crate::log!(INFO, "node {node} joined (incarnation {incarnation})");
                    let _ = self.jobs.send(Job::Served(node, incarnation));
                    if self
                        .decls
                        .get(&node)
                        .is_none_or(|p| p.incarnation != incarnation)
                    {
                        self.last_solicit.insert(node, self.now());
                        self.send(
                            socks,
                            node,
                            &Body::Declaration {
                                solicit: true,
                                version: DECL_VERSION,
                                decl: Box::new(self.cfg.declaration),
                            },
                        );
                    }
                }
                Event::Rejoined { node, incarnation } => {
                    self.tell_if_taken(socks, node);
                    // A new incarnation: what the last one acknowledged does not count.
                    self.acked_here.remove(&node);
                    crate::log!(
                        NOTICE,
                        "node {node} declared down earlier rejoined (incarnation {incarnation})"
                    );
                    let _ = self.jobs.send(Job::Served(node, incarnation));
                    self.send(
                        socks,
                        node,
                        &Body::Declaration {
                            solicit: true,
                            version: DECL_VERSION,
                            decl: Box::new(self.cfg.declaration),
                        },
                    );
                }
                Event::Suspect { node, incarnation } => {
                    crate::log!(
                        WARNING,
                        "node {node} suspected down ({})",
                        self.silence(node)
                    );
                    let body = Body::NodeDown(NodeDown {
                        node,
                        incarnation,
                        verdict: false,
                    });
                    self.broadcast(socks, &body);
                }
                Event::Cleared { node } => {
                    crate::log!(INFO, "node {node} heard again")
                }
                Event::Verdict { node, incarnation } => {
                    crate::log!(
                        NOTICE,
                        "verdict: node {node} (incarnation {incarnation}) is down ({})",
                        self.silence(node)
                    );
                    let body = Body::NodeDown(NodeDown {
                        node,
                        incarnation,
                        verdict: true,
                    });
                    self.broadcast(socks, &body);
                }
                Event::Adopted {
                    node,
                    incarnation,
                    from,
                } => crate::log!(
                    NOTICE,
                    "node {from}'s verdict: node {node} (incarnation {incarnation}) is down ({})",
                    self.silence(node)
                ),
                Event::Fence { node, incarnation } => self.fence(node, incarnation),
                Event::FenceFailed { node } => {
                    crate::log!(ERR, "fencing node {node} failed")
                }
                Event::Takeover { node, .. }
                    if self.engine_taken.contains(&node)
                        || self.engine.as_ref().is_some_and(|m| m.manages(node)) =>
                {
                    crate::log!(
                        NOTICE,
                        "node {node} is down by permtcpd's verdict: keepalived decides its takeover{}",
                        if self.engine_taken.contains(&node) { " (done)" } else { "" }
                    );
                }
                Event::Takeover { node, .. } => {
                    self.status.takeovers.push(node);
                    if self.decls.contains_key(&node) {
                        let now = self.now();
                        let silence = self.last_heard.get(&node).map(|t| now.saturating_sub(*t));
                        self.takeover_queued.insert(node, (now, silence, now));
                        self.queue_takeover(node);
                    } else {
                        crate::log!(
                            NOTICE,
                            "node {node} is down, and declared nothing here: nothing to take over"
                        );
                    }
                }
                Event::QuorumLost => {
                    crate::log!(WARNING, "quorum lost: the lease is no longer renewed")
                }
                Event::QuorumRegained => crate::log!(NOTICE, "quorum"),
                Event::SplitBrain { node, incarnation } => {
                    // Every message of a zombie is counted; a line every 10 s is enough.
                    let now = self.now();
                    let last = self.last_alarm_log.get(&node).copied();
                    if last.is_none_or(|t| now.saturating_sub(t) >= Duration::from_secs(10)) {
                        self.last_alarm_log.insert(node, now);
                        crate::log!(
                            WARNING,
                            "split-brain alarm: node {node} (incarnation {incarnation}) was declared down and still sends ({} messages so far)",
                            self.members.split_brain()
                        );
                    }
                }
                Event::SelfDeclaredDown { by } => crate::log!(
                    ERR,
                    "node {by} reports this node declared down: the lease is no longer renewed"
                ),
                Event::Stalled { gap } => crate::log!(
                    WARNING,
                    "this daemon did not run for {} ms: no lease renewal for a dead time",
                    gap.as_millis()
                ),
            }
        }
    }

    /// How long `node` has been silent, for the log.
    fn silence(&self, node: u32) -> String {
        match self.last_heard.get(&node) {
            Some(t) => format!(
                "last heard {} ms ago",
                self.now().saturating_sub(*t).as_millis()
            ),
            None => "never heard in this run".into(),
        }
    }

    fn fence(&mut self, node: u32, incarnation: u64) {
        let Some(f) = self.cfg.fence.clone() else {
            return;
        };
        let argv: Vec<String> = f
            .argv
            .iter()
            .map(|a| {
                a.replace("{node}", &node.to_string())
                    .replace("{incarnation}", &incarnation.to_string())
            })
            .collect();
        crate::log!(NOTICE, "fencing node {node}: {}", argv.join(" "));
        let done = self.done_tx.clone();
        let spawned = std::thread::Builder::new()
            .name("permtcpd-fence".into())
            .spawn(move || {
                let ok = run_fence(argv, f.timeout);
                let _ = done.send(Done::Fence(node, ok));
            });
        if spawned.is_err() {
            let _ = self.done_tx.send(Done::Fence(node, false));
        }
    }
}

/// Binds the status socket at `path`, replacing a stale one (a running daemon's is refused).
fn status_listener(path: &std::path::Path) -> Result<tokio::net::UnixListener, String> {
    let e = |e: std::io::Error| format!("status socket {}: {e}", path.display());
    if std::os::unix::net::UnixStream::connect(path).is_ok() {
        return Err(format!(
            "status socket {}: another permtcpd answers there",
            path.display()
        ));
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(e)?;
    }
    match std::fs::remove_file(path) {
        Err(x) if x.kind() != std::io::ErrorKind::NotFound => return Err(e(x)),
        _ => {}
    }
    tokio::net::UnixListener::bind(path).map_err(e)
}

async fn accept_status(
    l: Option<&tokio::net::UnixListener>,
) -> std::io::Result<(tokio::net::UnixStream, tokio::net::unix::SocketAddr)> {
    match l {
        Some(l) => l.accept().await,
        None => std::future::pending().await,
    }
}

fn state_name(s: crate::wire::NodeState) -> &'static str {
    match s {
        crate::wire::NodeState::Alive => "alive",
        crate::wire::NodeState::Suspect => "suspect",
        crate::wire::NodeState::Down => "down",
        crate::wire::NodeState::Unknown => "unknown",
    }
}

/// A daemon's status as JSON: what `permtcpd --status` prints.
pub fn status_json(s: &Status, cfg: &Config, incarnation: u64) -> String {
    let dropped: serde_json::Map<String, serde_json::Value> = DropReason::ALL
        .iter()
        .map(|r| (r.name().to_string(), s.auth.get(*r).into()))
        .collect();
    let view: Vec<serde_json::Value> = s
        .view
        .iter()
        .map(|v| {
            serde_json::json!({
                "node": v.node,
                "state": state_name(v.state),
                "incarnation": v.incarnation,
            })
        })
        .collect();
    let j = serde_json::json!({
        "cluster": cfg.cluster_id,
        "node": cfg.node_id,
        "incarnation": incarnation,
        "quorum": s.quorum,
        "lease": s.lease,
        "self_down": s.self_down,
        "view": view,
        "declarations": s.declarations,
        "takeovers": s.takeovers,
        "recovery": {
            "installed_from": s.recovered_from,
            "acknowledged_by": s.recovery_acked,
            "rejoined": s.rejoined,
            "addresses_taken": s.addresses_taken,
        },
        "handoff": {
            "running": s.handoff_running,
            "done": s.handoffs,
            "parts_answered": s.handoff_parts,
        },
        "directives": {
            "sent": s.directives_sent,
            "acknowledged": s.acks_received,
            "applied": s.directives_applied,
        },
        "datagrams": {
            "accepted": s.auth.accepted,
            "dropped": s.auth.total_dropped(),
            "dropped_by_reason": dropped,
            "split_brain": s.split_brain,
        },
        "kernel": {
            "errors": s.kernel_errors,
            "last_error": s.last_kernel_error,
        },
    });
    serde_json::to_string_pretty(&j).expect("serializable") + "\n"
}

/// Whether handoff status `s` is the peer's refusal (not taken: the connection resumes).
fn is_refusal(s: u8) -> bool {
    (hs::NOT_MIRRORED..=hs::NOT_PEER).contains(&s)
}

/// `{"error": TEXT}`, the control socket's answer to a request that failed.
pub fn error_json(text: &str) -> String {
    serde_json::json!({ "error": text }).to_string() + "\n"
}

/// What a planned handoff did, for [`handoff_summary`].
pub struct HandoffFigures<'a> {
    /// Its id.
    pub id: u64,
    /// The binding.
    pub binding: SocketAddr,
    /// The peer.
    pub to: u32,
    /// The hold's connections (held, busy, gone).
    pub conns: &'a [HandoffConn],
    /// The peer's answers (taken or a refusal; held: not known).
    pub answered: &'a [HandoffConn],
    /// Connections aborted: no answer.
    pub aborted: usize,
    /// Resets sent to their clients.
    pub resets: usize,
    /// Why the wait ended.
    pub end: &'static str,
    /// The hold, in the kernel (busy connections asked again included).
    pub hold: Duration,
    /// From the parts' first transmission to the last answer.
    pub take: Duration,
    /// DONE (and the aborts).
    pub done: Duration,
    /// From the request to the end.
    pub total: Duration,
    /// What went wrong after the hold, if anything.
    pub error: Option<String>,
}

/// A planned handoff's summary, one JSON line: `permtcpd --handoff` prints it.
pub fn handoff_summary(f: &HandoffFigures<'_>) -> String {
    let count = |s: u8| f.conns.iter().filter(|c| c.status == s).count();
    let mut refused = serde_json::Map::new();
    let mut taken = 0;
    for c in f.answered {
        if c.status == hs::TAKEN {
            taken += 1;
        } else if is_refusal(c.status) {
            let e = refused
                .entry(permctl::handoff::status_name(c.status))
                .or_insert(0.into());
            *e = (e.as_u64().unwrap_or(0) + 1).into();
        }
    }
    let us = |d: Duration| d.as_micros() as u64;
    let mut j = serde_json::json!({
        "id": f.id,
        "binding": f.binding.to_string(),
        "to": f.to,
        "held": count(hs::HELD),
        "busy": count(hs::BUSY),
        "gone": count(hs::GONE),
        "taken": taken,
        "refused": refused,
        "aborted": f.aborted,
        "resets_sent": f.resets,
        "end": f.end,
        "times_us": {
            "hold": us(f.hold),
            "take": us(f.take),
            "done": us(f.done),
            "total": us(f.total),
        },
    });
    if let Some(e) = &f.error {
        j["error"] = e.clone().into();
    }
    j.to_string() + "\n"
}

/// Binds the control socket at `path` (mode 0600), replacing a stale one.
fn control_listener(path: &std::path::Path) -> Result<tokio::net::UnixListener, String> {
    use std::os::unix::fs::PermissionsExt;
    let l = status_listener(path).map_err(|e| e.replace("status socket", "control socket"))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .map_err(|e| format!("control socket {}: {e}", path.display()))?;
    Ok(l)
}

/// A request on the control socket: one JSON line, `{"handoff": "ADDR:PORT", "to": NODE}`.
pub fn parse_control(line: &str) -> Result<(SocketAddr, u32), String> {
    let v: serde_json::Value =
        serde_json::from_str(line.trim()).map_err(|e| format!("request: {e}"))?;
    let binding = v["handoff"]
        .as_str()
        .ok_or("request: no \"handoff\" binding")?
        .parse()
        .map_err(|e| format!("request: the binding: {e}"))?;
    let to = v["to"]
        .as_u64()
        .and_then(|n| u32::try_from(n).ok())
        .filter(|&n| n != 0)
        .ok_or("request: no \"to\" node")?;
    Ok((binding, to))
}

/// Serves one connection to the control socket: reads its request line, asks the daemon,
/// writes the answer.
async fn control_conn(conn: tokio::net::UnixStream, tx: mpsc::UnboundedSender<Control>) {
    let mut line = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), async {
        let mut b = [0u8; 1024];
        loop {
            conn.readable().await?;
            match conn.try_read(&mut b) {
                Ok(0) => return Ok::<(), std::io::Error>(()),
                Ok(n) => {
                    line.extend_from_slice(&b[..n]);
                    if line.contains(&b'\n') || line.len() > 4096 {
                        return Ok(());
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
        }
    })
    .await;
    let answer = match read {
        Ok(Ok(())) => match parse_control(&String::from_utf8_lossy(&line)) {
            Ok((binding, to)) => {
                let (reply, rx) = tokio::sync::oneshot::channel();
                if tx.send(Control::Handoff { binding, to, reply }).is_err() {
                    error_json("the daemon is stopping")
                } else {
                    rx.await
                        .unwrap_or_else(|_| error_json("the daemon is stopping"))
                }
            }
            Err(e) => error_json(&e),
        },
        _ => error_json("no request"),
    };
    let mut data = answer.as_bytes();
    while !data.is_empty() {
        if conn.writable().await.is_err() {
            return;
        }
        match conn.try_write(data) {
            Ok(n) => data = &data[n..],
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(_) => return,
        }
    }
}
