// SPDX-License-Identifier: GPL-2.0

//! Planned live handoff: a binding's established connections move from the node serving
//! them to a peer that mirrors them (Documentation/handoff.rst). The decisions and messages
//! are in `logic/handoff.rs`; this file carries out the three commands:
//!
//! - [`hold`] (HANDOFF_HOLD, on the serving node): each connection whose application's bytes
//!   are all on the wire is put in the `held` set (the LOCAL_OUT hook drops its every
//!   segment from then on), and its socket's sequence numbers are read under its lock.
//! - [`take`] (HANDOFF_TAKE, on the peer): each held connection whose mirror
//!   [`check`](crate::logic::handoff::check) accepts is moved out of the mirror and rebuilt
//!   as a takeover rebuilds it (`takeover.rs`); the others are left as they were.
//! - [`done`] (HANDOFF_DONE, on the serving node): the connections the peer took are
//!   followed as owner recovery follows the connections peers serve (their stack's resets
//!   dropped, a SYN reusing one refused) and their sockets aborted silently; the others
//!   resume.

use crate::glue::{ConnKey, Net, SockSeqs};
use crate::logic::decl::Declaration;
use crate::logic::errno::{code, Error as LogicError};
use crate::logic::handoff::{check, Handoff, HandoffConn, HoldRequest, MAX_HELD};
use crate::logic::ops::Counts;
use crate::logic::policy::{declares, takeover_order};
use crate::logic::recovery::Handed;
use crate::logic::snoop::FlowKey;
use crate::logic::uapi::handoff_status as status;
use crate::netns::{Cluster, NetState};
use crate::rebuild::Plan;
use crate::snoop::Taking;
use crate::takeover::{carry_out, Fallback, Takeover};
use core::sync::atomic::Ordering;
use kernel::prelude::*;

/// Grace periods waited at most for the segments in flight at a hold's seeding.
const RESEED_ROUNDS: u32 = 4;

fn enomem() -> LogicError {
    LogicError::new(code::ENOMEM, c"out of memory")
}

/// This node's declaration.
fn local(c: &Cluster) -> Result<&Declaration, LogicError> {
    c.all().find(|d| d.local).ok_or(LogicError::new(
        code::EINVAL,
        c"no local declaration: this node owns no binding",
    ))
}

/// Updates the hook's view of `held`'s length.
fn held_changed(state: &NetState, len: usize) {
    state.held_len.store(len, Ordering::Relaxed);
}

/// HANDOFF_HOLD: holds up to `r.limit()` established connections of binding
/// `r.addr`:`r.port` not held yet: one of this node's, or of another node's those this node
/// serves (taken over or handed off here: a hand back); returns each with its status (held,
/// or busy and not held) and its socket's sequence numbers.
pub(crate) fn hold(
    state: &NetState,
    net: &Net<'_>,
    r: &HoldRequest,
) -> Result<KVec<HandoffConn>, LogicError> {
    let _control = state.control.lock();
    // Whether the binding is this node's, and whether this node mirrors its connections
    // once a peer serves them: its own (to take them back), or a peer's of which it is a
    // peer (to take them over should that node fail).
    let (mine, mirror) = {
        let c = state.cluster.lock();
        let me = local(&c)?;
        let Some(b) = c.all().find(|d| declares(d, &r.addr, r.port)) else {
            return Err(LogicError::new(
                code::EINVAL,
                c"the binding is not declared: not one of this node's, nor of a peer's",
            ));
        };
        let is_failed = |x: u32| c.is_failed(x);
        let mine = b.node_id == me.node_id;
        let peer = takeover_order(c.all(), b, r.port, &is_failed)
            .as_slice()
            .contains(&me.node_id);
        (mine, mine || peer)
    };
    let had = state.held.lock().len();
    if had >= MAX_HELD {
        return Err(LogicError::new(
            code::ENOSPC,
            c"too many connections held: finish a handoff first",
        ));
    }
    let limit = r.limit().min(MAX_HELD - had);
    // The walk returns held ones too: room for all of them and `limit` more.
    let mut found = KVVec::with_capacity(had + limit, GFP_KERNEL).map_err(|_| enomem())?;
    net.binding_conns(&r.addr, r.port, &mut found);
    let mut fresh = KVec::with_capacity(limit + had, GFP_KERNEL).map_err(|_| enomem())?;
    {
        let h = state.held.lock();
        for k in found.iter().map(ConnKey::key) {
            if fresh.len() == limit {
                break;
            }
            if !h.contains(&k) && !fresh.contains(&k) && (mine || state.served.contains(&k)) {
                // Within the capacity reserved above.
                let _ = fresh.push_within_capacity(k);
            }
        }
    }
    let mut out = KVec::with_capacity(fresh.len(), GFP_KERNEL).map_err(|_| enomem())?;
    // Room in the set for all of them, made before the spinlock.
    let room = KVec::with_capacity(had + fresh.len(), GFP_KERNEL).map_err(|_| enomem())?;
    {
        let mut h = state.held.lock();
        let old = h.grow(room);
        drop(h);
        drop(old);
    }
    let now = crate::glue::now_ms();
    let mut seeded = KVec::with_capacity(fresh.len(), GFP_KERNEL).map_err(|_| enomem())?;
    for k in fresh.iter() {
        // Each is held while its socket is locked: its application cannot write meanwhile,
        // so what was read is exactly what reached the wire, and all it writes from here
        // on is dropped.
        let c = match net.lock_conn(k) {
            None => HandoffConn {
                key: *k,
                status: status::GONE,
                ..Default::default()
            },
            Some(locked) => {
                let s = locked.seqs;
                let st = if !s.established {
                    status::GONE
                } else if s.write_seq != s.snd_nxt {
                    status::BUSY
                } else {
                    let mut h = state.held.lock();
                    let fitted = h.insert(*k);
                    held_changed(state, h.len());
                    drop(h);
                    if fitted {
                        // Mirrored from this moment on, from the socket's state (the peer
                        // takes it from a mirror level with the same moment, and sends at
                        // once); one this node serves for a peer is no longer steered here
                        // (its socket is held) but followed.
                        if !mine {
                            state.served.remove(k);
                        }
                        if mirror && seed(state, k, &s, now) {
                            let _ = seeded.push_within_capacity(*k);
                        }
                        status::HELD
                    } else {
                        status::BUSY
                    }
                };
                HandoffConn {
                    key: *k,
                    snd_nxt: s.snd_nxt,
                    snd_una: s.snd_una,
                    rcv_nxt: s.rcv_nxt,
                    status: st,
                }
            }
        };
        // Within the capacity reserved above.
        let _ = out.push_within_capacity(c);
    }
    // A segment that reached the hook before a connection's mirror was seeded, but its
    // socket after the seeding read the socket, is in neither the mirror nor what was read:
    // once the socket has taken it, its mirror starts again from where the socket stands
    // (nothing of it was retained yet: nothing is lost). The hook runs in an RCU read-side
    // section that lasts until the socket has taken the frame or put it on its backlog, and
    // the backlog is processed before `lock_conn` gets the socket: after a grace period
    // the comparison below sees every such segment, however late its CPU ran it.
    let mut reseeded = 0u32;
    let mut behind_left = 0u32;
    for round in 0..RESEED_ROUNDS {
        kernel::sync::rcu::synchronize_rcu();
        let mut again = 0u32;
        for k in seeded.iter() {
            let Some(locked) = net.lock_conn(k) else {
                continue;
            };
            let s = locked.seqs;
            let behind = state.snoop.with_conn(k, |c| {
                c.is_none_or(|c| {
                    crate::logic::seq::before(
                        c.side(crate::logic::track::Side::Client).nxt,
                        s.rcv_nxt,
                    )
                })
            });
            if behind {
                if round + 1 < RESEED_ROUNDS && seed(state, k, &s, now) {
                    again += 1;
                } else {
                    // Never left mirrored wrong: not mirrored is said as such.
                    state.snoop.forget(k);
                    behind_left += 1;
                }
            }
        }
        reseeded += again;
        if again == 0 {
            break;
        }
    }
    if !seeded.is_empty() {
        pr_info!(
            "handoff: {} held connections mirrored from their sockets ({} seeded again, {} not mirrored)\n",
            seeded.len(),
            reseeded,
            behind_left
        );
    }
    Ok(out)
}

/// Mirrors connection `k` from now on, seeded from its socket's state `s`.
fn seed(state: &NetState, k: &FlowKey, s: &SockSeqs, now: u64) -> bool {
    let conn = crate::logic::handoff::seeded(&s.snapshot(), now);
    state.snoop.seed(*k, conn)
}

/// HANDOFF_TAKE: takes over the connections of `r` that node `r.node` holds and this node's
/// mirror has level and ready: of `r.node`'s bindings when this node is a peer of them, or
/// of this node's own that `r.node` serves (a hand back). Returns each with its status.
pub(crate) fn take(
    state: &NetState,
    net: &Net<'_>,
    r: &Handoff<'_>,
    park_ms: u64,
) -> Result<(KVec<HandoffConn>, Counts), LogicError> {
    let node = r.need_node()?;
    let _control = state.control.lock();
    let now = crate::glue::now_ms();
    let n = r.conns.len();
    let mut out = KVec::with_capacity(n, GFP_KERNEL).map_err(|_| enomem())?;
    let mut taking = Taking::with_capacity(n, GFP_KERNEL).map_err(|_| enomem())?;
    let mut keys = KVec::with_capacity(n, GFP_KERNEL).map_err(|_| enomem())?;
    let mut rx = KVec::with_capacity(n, GFP_KERNEL).map_err(|_| enomem())?;
    let mut back = KVec::with_capacity(n, GFP_KERNEL).map_err(|_| enomem())?;
    let mut plans = KVVec::with_capacity(n, GFP_KERNEL).map_err(|_| enomem())?;
    let cluster = state.cluster.lock();
    let me = local(&cluster)?.node_id;
    if me == node || !cluster.all().any(|d| d.node_id == node) {
        return Err(LogicError::new(
            code::EINVAL,
            c"the serving node is not a declared peer",
        ));
    }
    if cluster.is_failed(node) {
        return Err(LogicError::new(
            code::EINVAL,
            c"the node is declared failed here: its connections were taken over",
        ));
    }
    let is_failed = |x: u32| cluster.is_failed(x);
    {
        let table = &state.snoop;
        for want in r.conns.iter() {
            let k = &want.key;
            let binding = cluster
                .all()
                .find(|d| declares(d, &k.owner_addr, k.owner_port));
            let allowed = binding.filter(|b| {
                b.node_id == me
                    || b.node_id == node
                        && takeover_order(cluster.all(), b, k.owner_port, &is_failed)
                            .as_slice()
                            .contains(&me)
            });
            // Checked and taken under the connection's shard lock.
            let st = table.take_when(k, &mut taking, |c| {
                let st = match (allowed, c) {
                    (None, _) => status::NOT_PEER,
                    (Some(_), None) => status::NOT_MIRRORED,
                    (Some(b), Some(c)) => check(c, &want, b.rx),
                };
                (st, st == status::TAKEN)
            });
            if let (status::TAKEN, Some(b)) = (st, allowed) {
                // Within the capacity reserved above: no allocation.
                let _ = keys.push_within_capacity(*k);
                let _ = rx.push_within_capacity((*k, b.rx));
                if b.node_id == me {
                    let _ = back.push_within_capacity(*k);
                }
            }
            let _ = out.push_within_capacity(HandoffConn { status: st, ..want });
        }
        crate::logic::sort::sort(&mut keys);
        // Their resets are dropped until they are rebuilt.
        *state.rebuilding.lock() = keys;
    }
    let mut t = Takeover::new();
    let mut alloc = state.snoop.alloc();
    for (k, c) in taking.iter_mut() {
        let policy = rx
            .iter()
            .find(|(x, _)| x == k)
            .map(|(_, p)| *p)
            .unwrap_or_default();
        match Plan::new(k, c, &mut alloc, now, policy) {
            Some(p) => {
                if plans.push_within_capacity((p, Fallback::Keep)).is_err() {
                    let _ = t.kept.push(*k, GFP_KERNEL);
                }
            }
            None => {
                let _ = t.kept.push(*k, GFP_KERNEL);
            }
        }
    }
    drop(cluster);
    // The plans copied what they need: the mirror copies go back to the budget once the
    // connections are live.
    t.released = Some(
        state
            .snoop
            .put_back(&mut taking, |_| false, &mut KVec::new()),
    );
    t.plans = plans;
    let done = carry_out(state, net, node, &mut t, now, park_ms);
    crate::takeover::release_later(state, net, &mut t);
    let _old = core::mem::take(&mut *state.rebuilding.lock());
    for c in out.iter_mut() {
        if c.status == status::TAKEN && t.kept.contains(&c.key) {
            c.status = status::FAILED;
        }
    }
    // This node's own connections back here: no longer followed for a peer.
    back.retain(|k| !t.kept.contains(k));
    crate::logic::sort::sort(&mut back);
    state.unhand(&back);
    Ok((out, done))
}

/// HANDOFF_DONE: of the connections of `r`, those peer `r.node` took stay mirrored here
/// (when HANDOFF_HOLD mirrored them) and their sockets are aborted; this node's own are
/// followed until they end (their stack's resets dropped, a SYN reusing one refused). The
/// connections not taken resume: no longer mirrored, and steered here again when they are
/// of a peer's binding.
pub(crate) fn done(state: &NetState, net: &Net<'_>, r: &Handoff<'_>) -> Result<(), LogicError> {
    let node = r.need_node()?;
    let _control = state.control.lock();
    let now = crate::glue::now_ms();
    let n = r.conns.len();
    let mut fresh = KVec::with_capacity(n, GFP_KERNEL).map_err(|_| enomem())?;
    let mut serve = KVec::with_capacity(n, GFP_KERNEL).map_err(|_| enomem())?;
    {
        let c = state.cluster.lock();
        let me = local(&c)?;
        if node == me.node_id || !c.all().any(|d| d.node_id == node) {
            return Err(LogicError::new(
                code::EINVAL,
                c"the peer is not a declared node",
            ));
        }
        for x in r.conns.iter() {
            let mine = declares(me, &x.key.owner_addr, x.key.owner_port);
            if x.status == status::TAKEN && mine {
                let _ = fresh.push_within_capacity(Handed::new(x.key, node));
            } else if x.status != status::TAKEN && !mine {
                let _ = serve.push_within_capacity(x.key);
            }
        }
    }
    state.hand(fresh, None, now)?;
    for x in r.conns.iter() {
        if x.status == status::TAKEN {
            // Still held: the reset tcp_abort() sends is dropped. An error means the
            // connection is gone already: nothing to abort.
            let _ = net.abort_conn(&x.key);
        } else {
            state.snoop.forget(&x.key);
        }
    }
    state.serve(serve);
    let mut h = state.held.lock();
    for c in r.conns.iter() {
        h.remove(&c.key);
    }
    held_changed(state, h.len());
    Ok(())
}
