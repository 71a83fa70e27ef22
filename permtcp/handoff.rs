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

use crate::glue::{ConnKey, Net};
use crate::logic::decl::Declaration;
use crate::logic::errno::{code, Error as LogicError};
use crate::logic::handoff::{check, Handoff, HandoffConn, HoldRequest, MAX_HELD};
use crate::logic::ops::Counts;
use crate::logic::policy::{declares, takeover_order};
use crate::logic::recovery::Handed;
use crate::logic::uapi::handoff_status as status;
use crate::netns::{Cluster, NetState};
use crate::rebuild::Plan;
use crate::snoop::Taking;
use crate::takeover::{carry_out, Fallback, Takeover};
use core::sync::atomic::Ordering;
use kernel::prelude::*;

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
/// `r.addr`:`r.port`, one of this node's, not held yet; returns each with its status (held,
/// or busy and not held) and its socket's sequence numbers.
pub(crate) fn hold(
    state: &NetState,
    net: &Net<'_>,
    r: &HoldRequest,
) -> Result<KVec<HandoffConn>, LogicError> {
    let _control = state.control.lock();
    {
        let c = state.cluster.lock();
        if !declares(local(&c)?, &r.addr, r.port) {
            return Err(LogicError::new(
                code::EINVAL,
                c"the binding is not one of this node's",
            ));
        }
    }
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
            if !h.contains(&k) && !fresh.contains(&k) {
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
                    if fitted {
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
    Ok(out)
}

/// HANDOFF_TAKE: takes over the connections of `r` that node `r.node` holds and this node's
/// mirror has level and ready; returns each with its status.
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
    let mut plans = KVec::with_capacity(n, GFP_KERNEL).map_err(|_| enomem())?;
    let cluster = state.cluster.lock();
    let (owner, me) = cluster.roles(node)?;
    if me == node {
        return Err(LogicError::new(
            code::EINVAL,
            c"the local node cannot take its own connections",
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
        let mut table = state.snoop.lock();
        for want in r.conns.iter() {
            let k = &want.key;
            let peer = declares(owner, &k.owner_addr, k.owner_port)
                && takeover_order(cluster.all(), owner, k.owner_port, &is_failed)
                    .as_slice()
                    .contains(&me);
            let st = if !peer {
                status::NOT_PEER
            } else {
                match table.get(k) {
                    None => status::NOT_MIRRORED,
                    Some(c) => check(c, &want, owner.rx),
                }
            };
            if st == status::TAKEN {
                // Within the capacity reserved above: no allocation.
                let _ = table.take_key(k, &mut taking);
                let _ = keys.push_within_capacity(*k);
            }
            let _ = out.push_within_capacity(HandoffConn { status: st, ..want });
        }
        keys.sort_unstable();
        // Their resets are dropped until they are rebuilt.
        *state.rebuilding.lock() = keys;
    }
    let mut t = Takeover::new();
    for (k, c) in taking.iter() {
        match Plan::new(k, c, now, owner.rx) {
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
    // The plans copied what they need: the mirror copies go back to the budget.
    state
        .snoop
        .lock()
        .put_back(&mut taking, |_| false, &mut KVec::new());
    t.plans = plans;
    let done = carry_out(state, net, node, &mut t, now, park_ms);
    let _old = core::mem::take(&mut *state.rebuilding.lock());
    for c in out.iter_mut() {
        if c.status == status::TAKEN && t.kept.contains(&c.key) {
            c.status = status::FAILED;
        }
    }
    Ok((out, done))
}

/// HANDOFF_DONE: the connections of `r` peer `r.node` took are followed (their stack's
/// resets dropped, a SYN reusing one refused, until they end) and their sockets aborted;
/// the others resume.
pub(crate) fn done(state: &NetState, net: &Net<'_>, r: &Handoff<'_>) -> Result<(), LogicError> {
    let node = r.need_node()?;
    let _control = state.control.lock();
    {
        let c = state.cluster.lock();
        if node == local(&c)?.node_id || !c.all().any(|d| d.node_id == node) {
            return Err(LogicError::new(
                code::EINVAL,
                c"the peer is not a declared node",
            ));
        }
    }
    let taken = r.conns.iter().filter(|c| c.status == status::TAKEN).count();
    let mut fresh = KVec::with_capacity(taken, GFP_KERNEL).map_err(|_| enomem())?;
    for c in r.conns.iter().filter(|c| c.status == status::TAKEN) {
        let _ = fresh.push_within_capacity(Handed::new(c.key, node));
    }
    state.hand(fresh, None, crate::glue::now_ms())?;
    // Followed and still held: the resets tcp_abort() sends are dropped.
    for c in r.conns.iter().filter(|c| c.status == status::TAKEN) {
        // An error means it is gone already: nothing to abort.
        let _ = net.abort_conn(&c.key);
    }
    let mut h = state.held.lock();
    for c in r.conns.iter() {
        h.remove(&c.key);
    }
    held_changed(state, h.len());
    Ok(())
}
