// SPDX-License-Identifier: GPL-2.0

//! Takeover: a failed owner's mirrored connections become real TCP sockets that the
//! application's listener returns from a plain `accept()`. See Documentation/design.rst
//! ("Takeover") for the design and Documentation/takeover.rst for the details.
//!
//! The file reads in the order a takeover runs:
//!
//! 1. **Plan** ([`plan_takeover`], [`plan_directive`]): under the cluster lock, the node is
//!    declared failed, the connections the fail-over policy gives this node are moved out of
//!    the mirror (still covered by reset suppression), and each is filed: a [`Plan`] when it
//!    is ready to rebuild, a directive naming the next peer when it is not, or a [`Reset`]
//!    when no peer is left. The failed owner's addresses whose ARP ownership comes here are
//!    listed for announcing.
//! 2. **Carry out** ([`carry_out`]; [`takeover`] and [`directive`] run both steps): each
//!    plan is rebuilt (`rebuild.rs`) and handed to the listener of its service address, or
//!    parked; the unrebuildable ones are reset; the addresses are announced.
//! 3. **Park** ([`Parking`], [`poll_parked`]): a rebuilt connection whose application does
//!    not listen yet waits (it acknowledges and buffers the client's data); a poll hands it
//!    over as soon as the application listens, or resets it when none does in time.
//! 4. **Records** ([`TakenList`]): what the restarted application may ask about each
//!    connection (TAKEN_GET: stream offsets) and the sent bytes kept for it to verify its
//!    regenerated output (CONN_DATA_GET).
//!
//! A fail-over directive (DIRECTIVE) runs the same steps for one connection another peer
//! could not take over.

use crate::glue::{Detached, Dump, Listener, ListenerFamily, Net};
use crate::logic::decl::{Declaration, MidResponse, RxPolicy};
use crate::logic::errno::{code, Error as LogicError};
use crate::logic::ops::{Counts, DataChunk, Event, MAX_DATA_CHUNK};
use crate::logic::packet::{flags, Addr, Control, CONTROL_MAX};
use crate::logic::policy::{arp_owner, declares, next_after, takeover_order};
use crate::logic::snoop::{Filter, FlowKey};
use crate::logic::snoopnl::{reason_code, DirectiveInfo, DirectiveRequest, TakenInfo};
use crate::logic::track::{Conn, Side};
use crate::logic::uapi::cmd;
use crate::netns::NetState;
use crate::rebuild::{rebuild, Phase, Plan, Sent, StepTimes, PHASES};
use crate::snoop::{Alloc, Released, Take, Taking};
use core::ffi::c_long;
use kernel::prelude::*;
use kernel::rbtree::RBTreeNodeReservation;
use kernel::time::{Instant, Monotonic};

/// How long a taken-over connection waits for the application to listen before it is reset,
/// unless the request says otherwise.
pub(crate) const PARK_TIMEOUT_MS: u64 = 60_000;

fn enomem() -> LogicError {
    LogicError::new(code::ENOMEM, c"out of memory")
}

// ---------------------------------------------------------------------------------------
// 1. Plan
// ---------------------------------------------------------------------------------------

/// What becomes of a connection whose rebuild fails: the next peer gets it, or it is reset,
/// as for a connection that was not ready.
pub(crate) enum Fallback {
    /// A directive to this peer.
    Next(u32),
    /// No peer is left.
    Reset(Reset),
    /// A planned handoff: the serving node keeps it (its connection resumes there).
    Keep,
}

/// What a takeover (or a directive) found: plans to rebuild, connections for the next peer
/// or to reset, and the connections left alone.
pub(crate) struct Takeover {
    /// The connections to rebuild, each with what becomes of it if its rebuild fails.
    /// Ten thousand plans of a few hundred bytes each: megabytes, past the largest kmalloc
    /// block (vmalloc then).
    pub(crate) plans: KVVec<(Plan, Fallback)>,
    /// The failed owner's addresses whose ARP ownership comes to this node.
    pub(crate) announce: KVec<Addr>,
    /// Connections this node cannot take over, for the next peer.
    pub(crate) directives: KVec<DirectiveInfo>,
    /// Connections no peer after this one can take over.
    pub(crate) resets: KVec<Reset>,
    /// This node's connections that could not be handled (no memory).
    pub(crate) not_ready: u32,
    /// The failed node's connections the policy gives other nodes.
    pub(crate) not_mine: u32,
    /// Why each of this node's connections that cannot be rebuilt here was not ready
    /// ([`crate::logic::uapi::not_ready`]), for the notifications.
    pub(crate) reasons: KVec<(FlowKey, u8)>,
    /// Connections reset because their owner was mid-response (declared `reset`).
    pub(crate) mid_response: u32,
    /// Connections of a planned handoff whose rebuild failed: the serving node keeps them.
    pub(crate) kept: KVec<FlowKey>,
    /// The mirror's copies of the connections moved out for good (the plans copied what
    /// they need): released once the connections are live ([`release_later`]).
    pub(crate) released: Option<Released>,
    /// Where the plan's time went, in ns ([`PLAN_STEPS`]), for the log.
    pub(crate) plan_ns: [u64; PLAN_STEPS.len()],
}

/// The steps of a takeover's plan, as the log names them: reserving memory, the filter
/// swap, picking the connections this node takes, sorting their keys, moving the
/// connections out of the mirror (on two CPUs), copying their bytes out (on two CPUs, with
/// filing the first half), filing the rest, and putting back those handed to the next peer.
const PLAN_STEPS: [&str; 8] = [
    "reserve", "refilter", "pick", "sort", "take", "copy", "file", "put_back",
];

/// Timestamps of a plan's steps.
struct Marks {
    last: Instant<Monotonic>,
    ns: [u64; PLAN_STEPS.len()],
}

impl Marks {
    fn new() -> Self {
        Marks {
            last: Instant::<Monotonic>::now(),
            ns: [0; PLAN_STEPS.len()],
        }
    }

    /// Step `i` ended now.
    fn end(&mut self, i: usize) {
        let now = Instant::<Monotonic>::now();
        self.ns[i] += (now - self.last).as_nanos() as u64;
        self.last = now;
    }
}

impl Takeover {
    pub(crate) fn new() -> Self {
        Takeover {
            plans: KVVec::new(),
            announce: KVec::new(),
            directives: KVec::new(),
            resets: KVec::new(),
            not_ready: 0,
            not_mine: 0,
            reasons: KVec::new(),
            mid_response: 0,
            kept: KVec::new(),
            released: None,
            plan_ns: [0; PLAN_STEPS.len()],
        }
    }

    /// Files one of this node's connections: a plan when it can be rebuilt (or a reset when
    /// its owner was mid-response and `owner` declares `reset` for that), else a directive
    /// to the peer `next` names, else a reset.
    /// `plan` is [`Plan::new`]'s for the connection.
    fn settle(
        &mut self,
        k: &FlowKey,
        c: &Conn<Alloc>,
        plan: Option<Plan>,
        owner: &Declaration,
        next: impl FnOnce() -> Option<u32>,
    ) {
        let fallback = match next() {
            Some(n) => Fallback::Next(n),
            None => Fallback::Reset(Reset::new(k, c)),
        };
        if let Some(p) = plan {
            if owner.mid == MidResponse::Reset && p.r.mid_response.is_some() {
                // Any peer would decide the same: no directive, a prompt reset.
                if self.resets.push(Reset::new(k, c), GFP_KERNEL).is_err() {
                    self.not_ready += 1;
                } else {
                    self.mid_response += 1;
                }
                return;
            }
            if self.plans.push((p, fallback), GFP_KERNEL).is_err() {
                self.not_ready += 1;
            }
            return;
        }
        let reason = match c.readiness() {
            Err(r) => reason_code(r).0,
            // Ready but not copyable (no memory), or in a state not rebuilt.
            Ok(()) => crate::logic::uapi::not_ready::NO_MEMORY,
        };
        self.fall_back(k, reason, fallback);
    }

    /// Files a connection this node cannot take over (why: `reason`) as `fallback` says.
    fn fall_back(&mut self, k: &FlowKey, reason: u8, fallback: Fallback) {
        // Only the notification is lost when this fails.
        let _ = self.reasons.push((*k, reason), GFP_KERNEL);
        match fallback {
            Fallback::Next(n) => self.forward(k, n),
            Fallback::Reset(r) => {
                if self.resets.push(r, GFP_KERNEL).is_err() {
                    self.not_ready += 1;
                }
            }
            Fallback::Keep => {
                // Without room the serving node is told nothing of it and keeps it held
                // until HANDOFF_DONE lists it otherwise (it is not listed as taken).
                let _ = self.kept.push(*k, GFP_KERNEL);
            }
        }
    }

    fn forward(&mut self, key: &FlowKey, next: u32) {
        let d = DirectiveInfo { key: *key, next };
        if self.directives.push(d, GFP_KERNEL).is_err() {
            self.not_ready += 1;
        }
    }
}

/// Declares `node` failed and plans the takeover of the connections the policy gives this
/// node.
fn plan_takeover(state: &NetState, node: u32, now_ms: u64) -> Result<Takeover, LogicError> {
    let mut marks = Marks::new();
    let mut guard = state.cluster.lock();
    let me = guard.roles(node)?.1;
    if me == node {
        return Err(LogicError::new(
            code::EINVAL,
            c"the local node cannot take itself over",
        ));
    }
    if guard.is_failed(node) {
        return Err(LogicError::new(code::EALREADY, c"node already taken over"));
    }
    // Everything that can fail comes before the node is marked failed, so that a failed
    // takeover can be retried: room for the mark, the addresses to announce, and every
    // mirrored connection (reserved before the shards' spinlocks: the table's connections
    // move out under them, and their bytes are copied after, as large copies need
    // GFP_KERNEL).
    guard.failed.reserve(1, GFP_KERNEL).map_err(|_| enomem())?;
    let addrs = {
        let o = guard.roles(node)?.0;
        o.addrs4.len() + o.addrs6.len()
    };
    let mut announce = KVec::with_capacity(addrs, GFP_KERNEL).map_err(|_| enomem())?;
    let room = state.snoop.len();
    // The failed node's bindings become track-only, before its connections are taken:
    // from then on none of them starts being mirrored, and those another peer takes over
    // (or that a directive may bring here) are followed.
    let mut filter = KBox::new(Filter::default(), GFP_KERNEL).map_err(|_| enomem())?;
    let mut taking = Taking::with_capacity(room, GFP_KERNEL).map_err(|_| enomem())?;
    // The other CPU's share of them while they move out (at most half), appended after.
    let mut taking_there = Taking::with_capacity(room / 2 + 1, GFP_KERNEL).map_err(|_| enomem())?;
    // Their keys, sorted (with a scratch copy, which then keeps them for the moves while
    // `keys` is published for reset suppression).
    let mut keys = KVec::with_capacity(room, GFP_KERNEL).map_err(|_| enomem())?;
    let mut scratch = KVVec::with_capacity(room, GFP_KERNEL).map_err(|_| enomem())?;
    let mut made = KVVec::with_capacity(room / 2 + 1, GFP_KERNEL).map_err(|_| enomem())?;
    let plans = KVVec::with_capacity(room, GFP_KERNEL).map_err(|_| enomem())?;
    // Within the capacity reserved above: cannot fail.
    let _ = guard.failed.push(node, GFP_KERNEL);
    let cluster = &*guard;
    let owner = cluster.roles(node)?.0;
    let is_failed = |n: u32| cluster.is_failed(n);
    // The answer depends on the binding only, and each shard yields its connections in key
    // order, binding by binding: the last binding's answer is kept (ten thousand
    // connections of one binding ask the policy once per shard, not ten thousand times).
    let last = core::cell::Cell::new(None);
    let whose = |k: &FlowKey| {
        if let Some((a, p, w)) = last.get() {
            if (a, p) == (k.owner_addr, k.owner_port) {
                return w;
            }
        }
        let w = declares(owner, &k.owner_addr, k.owner_port).then(|| {
            let order = takeover_order(cluster.all(), owner, k.owner_port, &is_failed);
            order.iter().next() == Some(&me)
        });
        last.set(Some((k.owner_addr, k.owner_port, w)));
        w
    };
    let v4 = owner.addrs4.iter().map(|a| Addr::v4(*a));
    let v6 = owner.addrs6.iter().map(|a| Addr(*a));
    for a in Iterator::chain(v4, v6) {
        if arp_owner(cluster.all(), owner, &a, &is_failed) == Some(me) {
            // Within the capacity reserved above.
            let _ = announce.push(a, GFP_KERNEL);
        }
    }
    let mut t = Takeover::new();
    t.announce = announce;
    *filter = cluster.filter();
    marks.end(0);
    state.snoop.refilter(filter);
    marks.end(1);
    // Which connections this node takes: their keys, read shard by shard, each shard locked
    // for its own walk only.
    (t.not_ready, t.not_mine) = state.snoop.pick_mine(whose, &mut keys);
    marks.end(2);
    // In key order, which is binding by binding: the plans come out grouped for
    // `carry_out` and the served set's keys sorted. Each shard's keys come in order, the
    // shards' order is a hash's: a merge sort of the keys alone (not of the connections,
    // which are larger to move).
    let _ = scratch.extend_from_slice(&keys, GFP_KERNEL);
    crate::logic::sort::merge_sort_by(&mut keys, &mut scratch, |a, b| a < b);
    scratch.clear();
    // Within the capacity: the same number of keys.
    let _ = scratch.extend_from_slice(&keys, GFP_KERNEL);
    marks.end(3);
    // Published before any of them leaves the mirror: the LOCAL_OUT hook looks in the
    // mirror, then in `rebuilding`, so that a connection is covered by reset suppression
    // all along, until it is rebuilt. The lock is held for the swap alone.
    let none = core::mem::replace(&mut *state.rebuilding.lock(), keys);
    drop(none);
    // Moved out in key order, half of them on another CPU from PAR_MIN connections on.
    let n = scratch.len();
    let there = if n >= PAR_MIN {
        (n / 2).min(taking_there.capacity())
    } else {
        0
    };
    let (here_keys, there_keys) = scratch.split_at(n - there);
    let (mut stayed_here, mut stayed_there) = (0, 0);
    let snoop = &state.snoop;
    crate::glue::join(
        || stayed_here = snoop.take_keys(here_keys, &mut taking),
        || stayed_there = snoop.take_keys(there_keys, &mut taking_there),
    );
    drop(scratch);
    if stayed_here + stayed_there > 0 {
        // Gone, over or followed since they were picked: they stay in the mirror (which
        // covers them), and out of `rebuilding` (sorted, as `taking` and `taking_there`
        // are).
        let has = |v: &Taking, k: &FlowKey| v.binary_search_by(|(x, _)| x.cmp(k)).is_ok();
        state
            .rebuilding
            .lock()
            .retain(|k| has(&taking, k) || has(&taking_there, k));
    }
    marks.end(4);
    // Frames from its MACs now raise the split-brain alarm.
    state.refresh_fence(cluster);
    t.plans = plans;
    // The next peer depends on the port only: kept for the last port asked about (the
    // connections come port by port), as `whose` is.
    let last_next = core::cell::Cell::new(None);
    let settle = |t: &mut Takeover, k: &FlowKey, c: &Conn<Alloc>, plan: Option<Plan>| {
        let next = || match last_next.get() {
            Some((port, n)) if port == k.owner_port => n,
            _ => {
                let order = takeover_order(cluster.all(), owner, k.owner_port, &is_failed);
                let n = next_after(&order, me);
                last_next.set(Some((k.owner_port, n)));
                n
            }
        };
        t.settle(k, c, plan, owner, next);
    };
    // A plan copies its connection's bytes out of the mirror: the second half's plans (the
    // other CPU moved those connections out) are made on another CPU meanwhile, then filed
    // in order.
    let (here, there) = (&mut taking[..], &mut taking_there[..]);
    let rx = owner.rx;
    let (mut alloc_here, mut alloc_there) = (snoop.alloc(), snoop.alloc());
    crate::glue::join(
        || {
            for (k, c) in here.iter_mut() {
                let plan = Plan::new(k, c, &mut alloc_here, now_ms, rx);
                settle(&mut t, k, c, plan);
            }
        },
        || {
            for (k, c) in there.iter_mut() {
                // Within the capacity reserved above (half the table).
                let plan = Plan::new(k, c, &mut alloc_there, now_ms, rx);
                let _ = made.push_within_capacity(plan);
            }
        },
    );
    marks.end(5);
    // Those the capacity did not cover (none) come last: their plans are missing, as
    // without memory.
    let mut made = made.into_iter();
    for (k, c) in there.iter() {
        settle(&mut t, k, c, made.next().flatten());
    }
    marks.end(6);
    return_to_mirror(state, &mut taking, taking_there, &mut t);
    marks.end(7);
    t.plan_ns = marks.ns;
    Ok(t)
}

/// Plans a fail-over directive for `r.key` of failed node `r.node`: takes the connection
/// over if this node can, else says where it goes next (or that it is reset).
fn plan_directive(
    state: &NetState,
    r: &DirectiveRequest,
    now_ms: u64,
) -> Result<Takeover, LogicError> {
    let cluster = state.cluster.lock();
    let (owner, me) = cluster.roles(r.node)?;
    if !cluster.is_failed(r.node) {
        return Err(LogicError::new(
            code::EAGAIN,
            c"the node is not declared failed here (yet)",
        ));
    }
    if !declares(owner, &r.key.owner_addr, r.key.owner_port) {
        return Err(LogicError::new(
            code::EINVAL,
            c"the connection is not one of the failed node's bindings",
        ));
    }
    let is_failed = |n: u32| cluster.is_failed(n);
    let order = takeover_order(cluster.all(), owner, r.key.owner_port, &is_failed);
    if !order.as_slice().contains(&me) {
        return Err(LogicError::new(
            code::EINVAL,
            c"this node is not a peer of that binding",
        ));
    }
    // Only the next peer in the policy's order acts: after the sender when it is known; the
    // first peer never gets a directive (its own takeover handled the connection).
    let expected = match r.from {
        Some(from) => next_after(&order, from) == Some(me),
        None => order.iter().next() != Some(&me),
    };
    if !expected {
        return Err(LogicError::new(
            code::EINVAL,
            c"this node is not the next peer for that directive",
        ));
    }
    let mut taking = Taking::with_capacity(1, GFP_KERNEL).map_err(|_| enomem())?;
    let found = match state.snoop.take_key(&r.key, &mut taking) {
        Take::Over => {
            return Err(LogicError::new(
                code::EINVAL,
                c"the connection is over (TIME-WAIT): nothing to take over",
            ))
        }
        t => t == Take::Taken,
    };
    let mut t = Takeover::new();
    let next = || next_after(&order, me);
    match taking.first_mut() {
        Some((k, c)) => {
            let plan = Plan::new(k, c, &mut state.snoop.alloc(), now_ms, owner.rx);
            t.settle(k, c, plan, owner, next)
        }
        // Not mirrored here: the next peer may have it; the last one cannot reset it.
        None => match next() {
            Some(n) => t.forward(&r.key, n),
            None => {
                return Err(LogicError::new(
                    code::ENOENT,
                    c"no such connection here and no further peer",
                ))
            }
        },
    }
    if found {
        return_to_mirror(state, &mut taking, KVVec::new(), &mut t);
    }
    Ok(t)
}

/// Returns the connections moved out of the mirror for this takeover or directive: those
/// passed on to the next peer go back, followed (track-only) as the failed node's other
/// connections are, so that this node, when it holds their address (it answers ARP for it
/// and the client's frames reach its stack), drops its stack's resets of them while the next
/// peer serves them; the others are kept in `t.released`, to be released once the
/// rebuilt connections are live. Runs before the rebuilds (the mirror's copy of a connection
/// another peer serves must not lag behind).
///
/// `more` are more of them, moved out on another CPU: put back with the others when some
/// connections go back (rare), else released with them as they are.
fn return_to_mirror(state: &NetState, taking: &mut Taking, mut more: Taking, t: &mut Takeover) {
    if !t.directives.is_empty() {
        for c in more.drain_all() {
            // Within the capacity: `taking` has room for every key picked, and both hold
            // some of those.
            let _ = taking.push_within_capacity(c);
        }
    }
    let mut passed = KVec::with_capacity(t.directives.len(), GFP_KERNEL).unwrap_or(KVec::new());
    let mut nodes = KVec::with_capacity(t.directives.len(), GFP_KERNEL).unwrap_or(KVec::new());
    for d in t.directives.iter() {
        // Within the capacity reserved above: cannot fail. Without a node the connection
        // is released, as before directives kept it.
        let Ok(node) = RBTreeNodeReservation::new(GFP_KERNEL) else {
            break;
        };
        let _ = passed.push(d.key, GFP_KERNEL);
        let _ = nodes.push(node, GFP_KERNEL);
    }
    crate::logic::sort::sort(&mut passed);
    let mut released =
        state
            .snoop
            .put_back(taking, |k| passed.binary_search(k).is_ok(), &mut nodes);
    released.add(more);
    t.released = Some(released);
}

/// Hands the mirror's copies `t` no longer needs to the namespace's work (the parking
/// poll's), which releases them: freeing ten thousand connections' retained data takes
/// about as long as planning their takeover, and the clients need not wait for it.
pub(crate) fn release_later(state: &NetState, net: &Net<'_>, t: &mut Takeover) {
    let Some(r) = t.released.take().filter(|r| r.len() > 0) else {
        return;
    };
    let mut later = state.released.lock();
    // Without room it is released here and now.
    if later.push(r, GFP_KERNEL).is_ok() {
        drop(later);
        net.park_kick();
    }
}

/// Releases the mirror's copies [`release_later`] handed over (from the namespace's work).
pub(crate) fn release_taken(state: &NetState) {
    let all = core::mem::take(&mut *state.released.lock());
    let n: usize = all.iter().map(Released::len).sum();
    if n == 0 {
        return;
    }
    let started = Instant::<Monotonic>::now();
    drop(all);
    pr_info!(
        "released the mirror's copies of {} taken connections in {} us\n",
        n,
        started.elapsed().as_nanos() / 1000
    );
}

// ---------------------------------------------------------------------------------------
// 2. Carry out
// ---------------------------------------------------------------------------------------

/// What became of a rebuilt connection.
enum Outcome {
    /// On a listener's accept queue.
    Queued,
    /// Waiting for a listener.
    Parked(Parked),
}

/// Gives `p` its socket: the child `tried` born from its listener, or, when no birth was
/// tried or it left nothing behind, rebuilt with TCP_REPAIR.
fn give_socket(
    net: &Net<'_>,
    listener: Option<&Listener>,
    p: &Plan,
    tried: Option<Result<Detached>>,
    t: &mut StepTimes,
) -> Result<Detached, LogicError> {
    match tried {
        Some(Ok(child)) => return Ok(child),
        Some(Err(e)) if e == EPROTO => {
            return Err(LogicError::new(
                code::EPROTO,
                c"born from the listener: the handshake's ACK was refused",
            ))
        }
        _ => {}
    }
    // An IPv4 listener takes an IPv4 socket; anything else (an IPv6 listener, or none yet)
    // an IPv6 one.
    let v6sock = p.v6 || listener.is_none_or(|l| l.family() != ListenerFamily::V4);
    rebuild(net, p, v6sock, t).map_err(|e| e.to_logic())
}

/// Work on this many connections or more (their plans, a binding's births) is shared with
/// another CPU.
const PAR_MIN: usize = 64;

/// Gives each of `group`'s connections whose plan allows it its socket from listener `l`
/// (the way the kernel gives an accepted connection one), into `out` in order (`None`: no
/// birth tried). With [`PAR_MIN`] or more, the second half is born on another CPU
/// meanwhile ([`crate::glue::join`]): births are independent, as handshakes completing on
/// several CPUs are. `t` sums the time of every birth, on both CPUs.
fn births(
    l: &Listener,
    group: &[(Plan, Fallback)],
    t: &mut StepTimes,
    out: &mut KVVec<Option<Result<Detached>>>,
) -> Result<(), LogicError> {
    fn run(
        l: &Listener,
        plans: &[(Plan, Fallback)],
        t: &mut StepTimes,
        out: &mut KVVec<Option<Result<Detached>>>,
    ) {
        for (p, _) in plans {
            t.start();
            let r = p.birth().map(|b| l.born(&b));
            t.end(Phase::Born);
            // Within the capacity the caller reserved.
            let _ = out.push_within_capacity(r);
        }
    }
    let there = if group.len() >= PAR_MIN {
        group.len() / 2
    } else {
        0
    };
    let (here, there) = group.split_at(group.len() - there);
    let mut other = KVVec::with_capacity(there.len(), GFP_KERNEL).map_err(|_| enomem())?;
    let mut other_t = StepTimes::default();
    crate::glue::join(
        || run(l, here, t, out),
        || run(l, there, &mut other_t, &mut other),
    );
    t.add(&other_t);
    for r in other {
        let _ = out.push_within_capacity(r);
    }
    Ok(())
}

/// Gives each of `group`'s connections (all of one service address and port) its socket and
/// hands them to their listener together: one listener lookup, one hold of its accept
/// queue's lock and one wake-up of `accept()` for the whole group. `taken` is called once
/// for the group, with the cookie of each connection's socket (`None`: not given one),
/// before any joins the queue (so that its record exists when the application accepts it). Without a listener, or without room in its backlog, a
/// connection is parked until `deadline_ms`. In a reuseport group, where the kernel picks a
/// listener per client, each connection is looked up and handed over on its own. Appends one
/// outcome per plan to `out`, in order.
fn take_binding(
    net: &Net<'_>,
    group: &mut [(Plan, Fallback)],
    deadline_ms: u64,
    t: &mut StepTimes,
    taken: &mut impl FnMut(&mut [(Plan, Fallback)], &[Option<u64>]),
    out: &mut KVVec<Result<Outcome, LogicError>>,
) -> Result<(), LogicError> {
    let Some((first, _)) = group.first() else {
        return Ok(());
    };
    t.start();
    let listener = net.listener(&first.key, first.v6);
    t.end(Phase::Listener);
    if group.len() > 1 && listener.as_ref().is_some_and(Listener::shared) {
        drop(listener);
        for one in group.chunks_mut(1) {
            take_binding(net, one, deadline_ms, t, taken, out)?;
        }
        return Ok(());
    }
    let n = group.len();
    // The sockets given, in order, and each plan's result.
    let mut batch = KVVec::with_capacity(n, GFP_KERNEL).map_err(|_| enomem())?;
    let mut results = KVVec::with_capacity(n, GFP_KERNEL).map_err(|_| enomem())?;
    // Born from the listener first, where births are on and the plan allows one.
    let mut born = KVVec::with_capacity(n, GFP_KERNEL).map_err(|_| enomem())?;
    if let Some(l) = listener.as_ref().filter(|_| crate::glue::born_enabled()) {
        births(l, group, t, &mut born)?;
    }
    let mut born = born.into_iter();
    for (p, _) in group.iter() {
        // Within the capacities reserved above.
        let tried = born.next().flatten();
        let r = give_socket(net, listener.as_ref(), p, tried, t).map(|child| {
            let _ = batch.push_within_capacity(Some(child));
        });
        let _ = results.push_within_capacity(r);
        t.start();
    }
    // `batch` holds the sockets of the plans given one, in order: each record carries its
    // socket's cookie.
    t.start();
    let mut given = batch.iter();
    let mut cookies = KVVec::with_capacity(n, GFP_KERNEL).map_err(|_| enomem())?;
    for r in results.iter() {
        let cookie = r.is_ok().then(|| {
            given
                .next()
                .and_then(Option::as_ref)
                .map_or(0, Detached::cookie)
        });
        // Within the capacity reserved above.
        let _ = cookies.push_within_capacity(cookie);
    }
    taken(group, &cookies);
    t.end(Phase::Record);
    if let Some(l) = listener.as_ref() {
        l.inject(&mut batch);
    }
    t.end(Phase::Inject);
    // Those on the accept queue have their entries `None`; the others are parked.
    let mut rest = batch.into_iter();
    for ((p, _), r) in group.iter().zip(results) {
        let r = r.map(|()| match rest.next().flatten() {
            Some(child) => Outcome::Parked(Parked {
                key: p.key,
                v6: p.v6,
                child: Some(child),
                deadline_ms,
            }),
            None => Outcome::Queued,
        });
        out.push_within_capacity(r).map_err(|_| enomem())?;
    }
    Ok(())
}

/// Rebuilds the planned connections (handing them to their listener, or parking them until
/// `park_ms` from `now`), records them for the application, resets those no peer can take
/// over, and announces the addresses that come to this node.
pub(crate) fn carry_out(
    state: &NetState,
    net: &Net<'_>,
    node: u32,
    t: &mut Takeover,
    now: u64,
    park_ms: u64,
) -> Counts {
    let started = Instant::<Monotonic>::now();
    let mut d = Counts::default();
    let mut parked = KVec::new();
    let mut times = StepTimes::default();
    let mut served = KVec::with_capacity(t.plans.len(), GFP_KERNEL).unwrap_or(KVec::new());
    // One binding's connections after another: each binding's go to its listener together.
    let mut plans = core::mem::take(&mut t.plans);
    // A takeover's plans come in key order, which is binding by binding: the sort only
    // checks that (a heapsort of ten thousand plans of a few hundred bytes each would move
    // them all around).
    let binding = |(p, _): &(Plan, Fallback)| (p.key.owner_addr, p.key.owner_port);
    crate::logic::sort::sort_by_key(&mut plans, binding);
    let mut outcomes = KVVec::new();
    let mut taken = |group: &mut [(Plan, Fallback)], cookies: &[Option<u64>]| {
        for ((p, _), c) in group.iter().zip(cookies) {
            if c.is_some() {
                d.taken += 1;
                // Without room it is only steered while its owner is declared failed here.
                let _ = served.push_within_capacity(p.key);
            }
        }
        record_all(state, group, cookies, now, |taken| {
            notify(net, &Event::Taken { node, taken })
        });
    };
    let given = outcomes
        .reserve(plans.len(), GFP_KERNEL)
        .map_err(|_| enomem())
        .and_then(|()| {
            plans
                .chunk_by_mut(|(a, _), (b, _)| {
                    (a.key.owner_addr, a.key.owner_port) == (b.key.owner_addr, b.key.owner_port)
                })
                .try_for_each(|g| {
                    take_binding(net, g, now + park_ms, &mut times, &mut taken, &mut outcomes)
                })
        });
    if let Err(e) = given {
        pr_warn!("takeover: {} ({})\n", e.text(), e.errno);
    }
    let mut outcomes = outcomes.into_iter();
    for (p, fallback) in plans {
        // Without memory for the outcomes, those not given a socket fail (and fall back).
        match outcomes.next().unwrap_or_else(|| Err(enomem())) {
            Ok(Outcome::Queued) => {}
            Ok(Outcome::Parked(c)) => {
                // A failed push drops the connection, which resets the client.
                if parked.push(c, GFP_KERNEL).is_err() {
                    d.failed += 1;
                }
            }
            Err(e) => {
                // Not lost silently: the next peer gets it, or the client a reset.
                d.failed += 1;
                pr_warn!(
                    "takeover of a connection failed: {} ({})\n",
                    e.text(),
                    e.errno
                );
                t.fall_back(&p.key, crate::logic::uapi::not_ready::NO_MEMORY, fallback);
            }
        }
    }
    // The resets this node sends itself must not be suppressed.
    if !t.resets.is_empty() {
        state
            .rebuilding
            .lock()
            .retain(|k| !t.resets.iter().any(|r| r.key == *k));
    }
    d.rebuild_ns = started.elapsed().as_nanos() as u64;
    log_steps(&times, d.taken);
    state.serve(served);
    d.parked = parked.len() as u32;
    if d.parked > 0 {
        d.failed += park(state, parked);
        net.park_kick();
    }
    for r in t.resets.iter() {
        match reset(net, r) {
            Ok(()) => {
                d.reset += 1;
                notify(net, &Event::Reset { node, key: r.key });
            }
            Err(e) => pr_warn!("resetting a connection failed: {}\n", e.text()),
        }
    }
    for &(key, reason) in t.reasons.iter() {
        notify(net, &Event::NotReady { node, key, reason });
    }
    for &directive in t.directives.iter() {
        notify(net, &Event::Directive { node, directive });
    }
    d
}

/// Logs where the rebuild time of `n` connections went, in nanoseconds per connection and
/// step (the benchmark's per-step table).
fn log_steps(t: &StepTimes, n: u32) {
    if n == 0 {
        return;
    }
    let per = |i: usize| t.ns[i] / u64::from(n);
    pr_info!(
        "takeover of {} connections, ns per connection: {}={} {}={} {}={} {}={} {}={} {}={} {}={} {}={} {}={} {}={} {}={} {}={} {}={} {}={}\n",
        n,
        PHASES[0].1, per(0), PHASES[1].1, per(1), PHASES[2].1, per(2), PHASES[3].1, per(3),
        PHASES[4].1, per(4), PHASES[5].1, per(5), PHASES[6].1, per(6), PHASES[7].1, per(7),
        PHASES[8].1, per(8), PHASES[9].1, per(9), PHASES[10].1, per(10), PHASES[11].1, per(11),
        PHASES[12].1, per(12), PHASES[13].1, per(13)
    );
}

/// Multicasts `e` to the namespace's `events` group. Best effort, as netlink notifications
/// are: a listener that falls behind sees ENOBUFS on its socket and resynchronises with a
/// dump (TAKEN_GET, STATUS_GET).
fn notify(net: &Net<'_>, e: &Event) {
    let _ = net.notify(e.cmd(), 256, |w| e.write(w));
}

/// TAKEOVER: declares `node` failed and takes over the connections the policy gives this
/// node; connections wait at most `park_ms` for their listener. Returns what was planned
/// (for the directives and counts of the reply) and what was done.
pub(crate) fn takeover(
    state: &NetState,
    net: &Net<'_>,
    node: u32,
    park_ms: u64,
) -> Result<(Takeover, Counts), LogicError> {
    let _control = state.control.lock();
    let started = Instant::<Monotonic>::now();
    let now = crate::glue::now_ms();
    let mut t = plan_takeover(state, node, now)?;
    let planned = started.elapsed().as_nanos() as u64;
    notify(net, &Event::NodeFailed { node });
    let done = carry_out(state, net, node, &mut t, now, park_ms);
    let carried = started.elapsed().as_nanos() as u64;
    // Rebuilt (or reset): their resets are no longer dropped. Dropped after the lock.
    let old = core::mem::take(&mut *state.rebuilding.lock());
    drop(old);
    for a in t.announce.iter() {
        // Twice: a single gratuitous ARP or NA may be lost.
        if (0..2).any(|_| net.announce(a).is_err()) {
            pr_warn!("announcing a taken-over address failed: not snooping\n");
        }
    }
    release_later(state, net, &mut t);
    if done.taken > 0 {
        let us = |ns: u64| ns / 1000;
        let p = |i: usize| us(t.plan_ns[i]);
        pr_info!(
            "takeover of {} connections, us: plan={} ({}={} {}={} {}={} {}={} {}={} {}={} {}={} {}={}) rebuild={} after={} announce={} total={}\n",
            done.taken,
            us(planned),
            PLAN_STEPS[0], p(0), PLAN_STEPS[1], p(1), PLAN_STEPS[2], p(2), PLAN_STEPS[3], p(3),
            PLAN_STEPS[4], p(4), PLAN_STEPS[5], p(5), PLAN_STEPS[6], p(6), PLAN_STEPS[7], p(7),
            us(done.rebuild_ns),
            us(carried.saturating_sub(planned + done.rebuild_ns)),
            us(started.elapsed().as_nanos() as u64 - carried),
            us(started.elapsed().as_nanos() as u64)
        );
    }
    Ok((t, done))
}

/// REJOIN: `node`, declared failed here by a takeover, is back and a member again. Its
/// bindings are mirrored again from their next connection and its MACs no longer raise the
/// split-brain alarm; a later failure is taken over again (TAKEOVER no longer answers
/// `EALREADY`). The connections of it that the takeover gave other nodes stay in the mirror
/// marked followed ([`crate::logic::snoop::pick`]): a later takeover neither rebuilds nor
/// resets them. Those this node serves are in its served set, steered, never mirrored.
pub(crate) fn rejoin(state: &NetState, node: u32) -> Result<(), LogicError> {
    let _control = state.control.lock();
    let mut cluster = state.cluster.lock();
    if !cluster.is_failed(node) {
        return Err(LogicError::new(
            code::EALREADY,
            c"the node is not declared failed here",
        ));
    }
    cluster.failed.retain(|n| *n != node);
    cluster.apply(state);
    Ok(())
}

/// DIRECTIVE: takes over the one connection of `r`, or names the next peer for it.
pub(crate) fn directive(
    state: &NetState,
    net: &Net<'_>,
    r: &DirectiveRequest,
    park_ms: u64,
) -> Result<(Takeover, Counts), LogicError> {
    let _control = state.control.lock();
    let now = crate::glue::now_ms();
    let mut t = plan_directive(state, r, now)?;
    let done = carry_out(state, net, r.node, &mut t, now, park_ms);
    release_later(state, net, &mut t);
    Ok((t, done))
}

/// A connection no peer can take over: it is reset, so that its client does not hang.
pub(crate) struct Reset {
    key: FlowKey,
    v6: bool,
    /// Where the client's next expected sequence number may be
    /// ([`crate::logic::track::Half::reset_seqs`]).
    seqs: [u32; 4],
}

impl Reset {
    /// The reset for `c`, from what the mirror saw of it.
    fn new(key: &FlowKey, c: &Conn<Alloc>) -> Reset {
        Reset {
            key: *key,
            v6: key.owner_addr.as_v4().is_none(),
            seqs: c.side(Side::Owner).reset_seqs(),
        }
    }
}

/// Sends the client of `r` resets from the service address.
fn reset(net: &Net<'_>, r: &Reset) -> Result<(), LogicError> {
    let k = &r.key;
    for (i, &seq) in r.seqs.iter().enumerate() {
        if r.seqs[..i].contains(&seq) {
            continue;
        }
        let mut seg = [0u8; CONTROL_MAX];
        let len = Control {
            src: (k.owner_addr, k.owner_port),
            dst: (k.client_addr, k.client_port),
            seq,
            ack: 0,
            flags: flags::RST,
            window: 0,
            ts: None,
        }
        .build(&mut seg);
        net.send_packet(&k.client_addr, &seg[..len], r.v6)
            .map_err(|e| LogicError::new(-e.to_errno(), c"sending a reset failed"))?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// 3. Park
// ---------------------------------------------------------------------------------------

/// A rebuilt connection whose listener does not exist yet, or has no room in its backlog.
pub(crate) struct Parked {
    key: FlowKey,
    v6: bool,
    /// Its socket; `None` once a listener took it (for the poll's round only).
    child: Option<Detached>,
    /// When it is reset if no listener took it (`now_ms` clock).
    deadline_ms: u64,
}

impl Parked {
    /// Its binding: service address and port.
    fn binding(&self) -> (Addr, u16) {
        (self.key.owner_addr, self.key.owner_port)
    }
}

/// Taken-over connections without a listener yet, and what became of earlier ones.
///
/// # Invariants
///
/// Between polls every entry of `parked` has its socket. Unless `unsorted`, `parked` is in
/// binding order. No entry's deadline is before `next_deadline_ms`.
#[derive(Default)]
pub(crate) struct Parking {
    pub(crate) parked: KVec<Parked>,
    /// Handed to a listener after waiting.
    pub(crate) queued: u32,
    /// Reset because no listener came in time.
    pub(crate) reset: u32,
    /// Connections were parked since the last poll: `parked` may be out of binding order.
    unsorted: bool,
    /// The earliest of the deadlines (or earlier): until then, a poll that hands nothing to a
    /// listener has nothing else to do.
    next_deadline_ms: u64,
}

/// Parks `conns` until their listener appears; returns how many could not be kept (they
/// are reset).
fn park(state: &NetState, conns: KVec<Parked>) -> u32 {
    let mut p = state.parking.lock();
    let mut lost = 0;
    for c in conns {
        let deadline = c.deadline_ms;
        // A failed push drops the connection, which resets the client.
        if p.parked.push(c, GFP_KERNEL).is_err() {
            lost += 1;
        } else if p.parked.len() == 1 {
            p.next_deadline_ms = deadline;
        } else {
            p.next_deadline_ms = p.next_deadline_ms.min(deadline);
        }
    }
    p.unsorted = true;
    p.reset += lost;
    lost
}

/// Offers listener `l` the first of `group`'s parked connections, as many as its backlog
/// has room for, in one batch; those it took are left without their socket. Returns how
/// many it took.
fn offer(l: &Listener, group: &mut [Parked]) -> usize {
    let n = l.room().min(group.len());
    if n == 0 {
        return 0;
    }
    let Ok(mut batch) = KVVec::with_capacity(n, GFP_KERNEL) else {
        return 0; // the next poll offers them again
    };
    for c in group[..n].iter_mut() {
        // Within the capacity reserved above.
        let _ = batch.push_within_capacity(c.child.take());
    }
    l.inject(&mut batch);
    // Those the queue did not take go back (the room may have shrunk meanwhile).
    let mut taken = 0;
    for (c, child) in group[..n].iter_mut().zip(batch) {
        taken += usize::from(child.is_none());
        c.child = child;
    }
    taken
}

/// The parking poll: hands parked connections to listeners with room for them, resets those
/// past their deadline; returns whether any are still parked. The poll runs every 5 ms
/// while an application accepts thousands of them: a binding without a listener, or whose
/// listener's backlog is full, costs one lookup and moves nothing, its connections are
/// found by a binary search in the list kept sorted, and a round that hands nothing over
/// before the earliest deadline looks at no connection (it had checked every connection's
/// order and deadline, every round).
pub(crate) fn poll_parked(state: &NetState, net: &Net<'_>, now_ms: u64) -> bool {
    let mut p = state.parking.lock();
    if p.unsorted {
        // A takeover's come in binding order: the sort only checks.
        crate::logic::sort::sort_by_key(&mut p.parked, Parked::binding);
        p.unsorted = false;
    }
    // A binding's connections go to its listener together (each on its own in a reuseport
    // group, where the kernel picks a listener per client).
    let mut moved = 0;
    let mut at = 0;
    while at < p.parked.len() {
        let binding = p.parked[at].binding();
        let end = at + p.parked[at..].partition_point(|c| c.binding() == binding);
        let group = &mut p.parked[at..end];
        at = end;
        let Some(l) = net.listener(&group[0].key, group[0].v6) else {
            continue;
        };
        if !l.shared() {
            moved += offer(&l, group);
            continue;
        }
        for one in group.chunks_mut(1) {
            if let Some(l) = net.listener(&one[0].key, one[0].v6) {
                moved += offer(&l, one);
            }
        }
    }
    if moved == 0 && now_ms < p.next_deadline_ms {
        // Every entry still has its socket, none is due.
        return !p.parked.is_empty();
    }
    let (mut queued, mut reset) = (0, 0);
    p.parked.retain(|c| match c.child {
        None => {
            queued += 1;
            false
        }
        // Dropping it closes it, which resets the client.
        Some(_) if now_ms >= c.deadline_ms => {
            reset += 1;
            false
        }
        Some(_) => true,
    });
    p.queued += queued;
    p.reset += reset;
    p.next_deadline_ms = p
        .parked
        .iter()
        .map(|c| c.deadline_ms)
        .min()
        .unwrap_or(u64::MAX);
    !p.parked.is_empty()
}

// ---------------------------------------------------------------------------------------
// 4. Records
// ---------------------------------------------------------------------------------------

/// At most this many taken-over connection records are kept...
pub(crate) const MAX_TAKEN: usize = 16384;
/// ...holding at most this much memory in sent bytes for verification ([`Sent::memory`]:
/// the chunks, as the mirror charged them, a view's share of the frame it keeps included).
pub(crate) const MAX_TAKEN_BYTES: usize = 64 << 20;

/// A taken-over connection as the restarted application may ask about it (TAKEN_GET), with
/// the sent bytes it may verify its regenerated output against (CONN_DATA_GET): the
/// mirror's own memory, handed over ([`Sent`]).
pub(crate) struct Taken {
    pub(crate) info: TakenInfo,
    /// When it was taken over.
    pub(crate) at_ms: u64,
    pub(crate) sent: Sent,
}

/// An entry of [`TakenList`]'s index: a key and the number of its newest record.
type IndexEntry = (FlowKey, u64);

/// Taken-over connections, oldest first.
///
/// # Invariants
///
/// `index` is sorted by key, with no key twice, and each entry's number is that of its
/// key's newest record, among those kept (`first..first + recs.len()`).
pub(crate) struct TakenList {
    /// Up to [`MAX_TAKEN`] of them: megabytes, from vmalloc when the slab has no block that
    /// large (a kmalloc of them failed now and then).
    recs: KVVec<Taken>,
    /// Memory of the kept sent bytes, all records ([`Sent::memory`]).
    mem: usize,
    /// The number of `recs[0]` among all records ever kept.
    first: u64,
    /// The number of each connection's newest record: a restarted application asks for its
    /// sockets one by one (TAKEN_GET with a key), ten thousand of them after a takeover.
    index: KVVec<IndexEntry>,
    /// Most memory of sent bytes kept, all records: [`MAX_TAKEN_BYTES`] (KUnit's lists take
    /// less).
    max_bytes: usize,
}

impl Default for TakenList {
    fn default() -> Self {
        TakenList {
            recs: KVVec::new(),
            mem: 0,
            first: 0,
            index: KVVec::new(),
            max_bytes: MAX_TAKEN_BYTES,
        }
    }
}

impl TakenList {
    /// Keeps `t` as its key's newest record, then drops the oldest beyond the bounds
    /// ([`Self::trim`]).
    pub(crate) fn push(&mut self, t: Taken) {
        let key = t.info.key;
        if let Some(id) = self.keep(t) {
            match self.index.binary_search_by(|e| e.0.cmp(&key)) {
                Ok(i) => self.index[i].1 = id,
                Err(i) => {
                    // Without memory the record is kept, only not found by its key (no
                    // older record of the key is: it had none).
                    if self.index.reserve(1, GFP_KERNEL).is_ok() {
                        let _ = self.index.insert_within_capacity(i, (key, id));
                    }
                }
            }
        }
        self.trim();
    }

    /// Keeps `t`, without indexing it or trimming; its number, or `None` without memory.
    fn keep(&mut self, t: Taken) -> Option<u64> {
        let n = t.sent.memory();
        self.recs.push(t, GFP_KERNEL).ok()?;
        self.mem += n;
        Some(self.first + self.recs.len() as u64 - 1)
    }

    /// [`Self::push`] for each of the `n` records of `recs` in order: the list grown once,
    /// their keys merged into the index in one pass, the list trimmed once. Without memory
    /// for that, one [`Self::push`] after another.
    pub(crate) fn push_all(&mut self, n: usize, recs: impl Iterator<Item = Taken>) {
        // Without room reserved ahead, each push grows the list as it can.
        let _ = self.recs.reserve(n, GFP_KERNEL);
        let Some(mut batch) = KVVec::with_capacity(n, GFP_KERNEL)
            .ok()
            .filter(|_| self.index.reserve(n, GFP_KERNEL).is_ok())
        else {
            recs.for_each(|t| self.push(t));
            return;
        };
        for t in recs {
            let key = t.info.key;
            if let Some(id) = self.keep(t) {
                // Within the capacity reserved above, for `n` records.
                let _ = batch.push_within_capacity((key, id));
            }
        }
        // A takeover's come sorted: the sort only checks. Of a key twice, the newer wins.
        crate::logic::sort::sort_by(&mut batch, |a, b| (a.0, a.1) < (b.0, b.1));
        let new = crate::logic::sort::keep_last_by_key(&mut batch, |e| e.0);
        batch.truncate(new);
        let old = self.index.len();
        // Within the capacity reserved above: allocates nothing.
        let room = batch.first().copied().unwrap_or_default();
        if self.index.extend_with(new, room, GFP_KERNEL).is_ok() {
            let len =
                crate::logic::sort::merge_replacing_by_key(&mut self.index, old, &batch, |e| e.0);
            self.index.truncate(len.unwrap_or(old));
        }
        self.trim();
    }

    /// An empty list whose sent bytes take at most `max_bytes` (KUnit: the bound checked
    /// without filling 64 MiB of chunks at every module load).
    #[cfg(CONFIG_KUNIT = "y")]
    pub(crate) fn with_max_bytes(max_bytes: usize) -> Self {
        TakenList {
            max_bytes,
            ..Self::default()
        }
    }

    /// How many records are kept.
    pub(crate) fn len(&self) -> usize {
        self.recs.len()
    }

    /// The memory their sent bytes take ([`Sent::memory`]).
    #[cfg(CONFIG_KUNIT = "y")]
    pub(crate) fn memory(&self) -> usize {
        self.mem
    }

    /// How many keys find a record.
    pub(crate) fn keys(&self) -> usize {
        self.index.len()
    }

    /// Drops the oldest records beyond the bounds, in one pass: past [`MAX_TAKEN`] records
    /// down to seven eighths of it (a takeover of thousands past the bound then shifts the
    /// list once every two thousand records, not once a record), and past
    /// [`MAX_TAKEN_BYTES`] of memory in sent bytes (`max_bytes`) down to the bound.
    fn trim(&mut self) {
        let len = self.recs.len();
        if len <= MAX_TAKEN && self.mem <= self.max_bytes {
            return;
        }
        let mut n = if len > MAX_TAKEN {
            len - (MAX_TAKEN - MAX_TAKEN / 8)
        } else {
            0
        };
        let mut mem = self.mem
            - self.recs[..n]
                .iter()
                .map(|r| r.sent.memory())
                .sum::<usize>();
        while mem > self.max_bytes && n < len {
            mem -= self.recs[n].sent.memory();
            n += 1;
        }
        let first = self.first + n as u64;
        // A key whose newest record goes is found no more.
        self.index.retain(|e| e.1 >= first);
        let mut i = 0;
        self.recs.retain(|_| {
            i += 1;
            i > n
        });
        self.first = first;
        self.mem = mem;
    }

    /// The newest record of `key`.
    pub(crate) fn find(&self, key: &FlowKey) -> Option<&Taken> {
        let i = self.index.binary_search_by(|e| e.0.cmp(key)).ok()?;
        self.recs
            .get(usize::try_from(self.index[i].1.checked_sub(self.first)?).ok()?)
    }
}

/// Keeps the records ([`record`]) of `group`'s connections given a socket (`cookies[i]`:
/// the cookie of plan `i`'s socket), under one hold of the records' lock, and passes each
/// to `told`. Without memory for the batch, one at a time.
fn record_all(
    state: &NetState,
    group: &mut [(Plan, Fallback)],
    cookies: &[Option<u64>],
    now_ms: u64,
    mut told: impl FnMut(TakenInfo),
) {
    let n = cookies.iter().flatten().count();
    let (Ok(mut recs), Ok(mut infos)) = (
        KVVec::with_capacity(n, GFP_KERNEL),
        KVVec::with_capacity(n, GFP_KERNEL),
    ) else {
        for ((p, _), c) in group.iter_mut().zip(cookies) {
            if let Some(cookie) = *c {
                told(record(state, p, now_ms, cookie));
            }
        }
        return;
    };
    for ((p, _), c) in group.iter_mut().zip(cookies) {
        if let Some(cookie) = *c {
            let t = taken_of(p, now_ms, cookie);
            // Within the capacities reserved above.
            let _ = infos.push_within_capacity(t.info);
            let _ = recs.push_within_capacity(t);
        }
    }
    state.taken.lock().push_all(n, recs.into_iter());
    // After the lock: `told` sends notifications.
    infos.into_iter().for_each(told);
}

/// Keeps what the restarted application is told about `p`'s connection, and its sent bytes;
/// the oldest records go first beyond [`MAX_TAKEN`] records or [`MAX_TAKEN_BYTES`] bytes.
/// `cookie` is the cookie of the socket it was given.
fn record(state: &NetState, p: &mut Plan, now_ms: u64, cookie: u64) -> TakenInfo {
    let t = taken_of(p, now_ms, cookie);
    let info = t.info;
    state.taken.lock().push(t);
    info
}

/// The record of `p`'s connection, taken over at `now_ms` and given a socket of cookie
/// `cookie`; its sent bytes move into it.
fn taken_of(p: &mut Plan, now_ms: u64, cookie: u64) -> Taken {
    Taken {
        info: TakenInfo {
            key: p.key,
            sent_offset: p.r.sent_offset,
            recv_offset: p.r.recv_offset,
            data_offset: p.r.data_offset,
            data_len: p.sent.len() as u32,
            rx_deliver: p.rx == RxPolicy::Deliver,
            age_ms: 0,
            rx_policy: match p.rx {
                RxPolicy::Deliver => crate::logic::uapi::rxdata::DELIVER,
                RxPolicy::Drop => crate::logic::uapi::rxdata::DROP,
                RxPolicy::Unanswered => crate::logic::uapi::rxdata::UNANSWERED,
            },
            cookie,
        },
        at_ms: now_ms,
        sent: core::mem::take(&mut p.sent),
    }
}

/// The record at `index`, as TAKEN_GET reports it at `now_ms`.
pub(crate) fn taken_info(state: &NetState, from: u64, now_ms: u64) -> Option<(u64, TakenInfo)> {
    let list = state.taken.lock();
    // Records before `first` were dropped: the next one kept comes instead.
    let n = from.max(list.first);
    let t = list.recs.get(usize::try_from(n - list.first).ok()?)?;
    Some((
        n,
        TakenInfo {
            age_ms: now_ms.saturating_sub(t.at_ms),
            ..t.info
        },
    ))
}

/// The newest record of connection `key`, as TAKEN_GET reports it at `now_ms`.
pub(crate) fn taken_by_key(state: &NetState, key: &FlowKey, now_ms: u64) -> Option<TakenInfo> {
    state.taken.lock().find(key).map(|t| TakenInfo {
        age_ms: now_ms.saturating_sub(t.at_ms),
        ..t.info
    })
}

/// One round of CONN_DATA_GET for a taken-over connection: the kept sent bytes of its
/// newest record, from byte `*pos` on. `None` when there is no record of `key`.
pub(crate) fn dump_sent(
    state: &NetState,
    key: &FlowKey,
    dump: &mut Dump<'_>,
    pos: &mut c_long,
) -> Option<Result<(), LogicError>> {
    let list = state.taken.lock();
    let t = list.find(key)?;
    let mut off = *pos as usize;
    while off < t.sent.len() {
        let n = (t.sent.len() - off).min(MAX_DATA_CHUNK);
        let at = t.sent.from().wrapping_add(off as u32);
        let added = dump.add(cmd::CONN_DATA_GET, |w| {
            DataChunk::write_with(w, at, n, |buf| t.sent.read(at, buf))
        });
        match added {
            Ok(true) => {}
            Ok(false) => return Some(Ok(())),
            Err(e) => return Some(Err(e)),
        }
        off += n;
        *pos = off as c_long;
    }
    Some(Ok(()))
}
