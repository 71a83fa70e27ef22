// SPDX-License-Identifier: GPL-2.0

//! The `permtcp` generic netlink family's dispatcher: parse -> call -> reply.
//!
//! genetlink has already checked permissions (CAP_NET_ADMIN over the namespace for changing
//! commands) and the top-level attributes against per-command policies (`permtcp_glue.c`).
//! Here each request is parsed strictly by the shared logic, handed to the file that owns
//! its concern (`netns.rs` for declarations, status, snooping and owner recovery, `takeover.rs` for takeovers
//! and directives, `snoop.rs` for the mirror), and answered; every error carries an
//! extended-ACK message. The family is described in Documentation/netlink/specs/permtcp.yaml.

use crate::glue::{now_ms, Dump, Net, Request};
use crate::handoff;
use crate::logic::errno::{code, Error as LogicError};
use crate::logic::handoff::{Handoff, HoldRequest};
use crate::logic::ops::List;
use crate::logic::ops::{
    ConnGetRequest, ConnReply, DataRequest, DeclAddRequest, DeclDelRequest, DeclGetRequest,
    DirectiveReply, DirectiveRequest, Directives, LeaseRequest, RecoveryRequest, RejoinRequest,
    SnoopStopRequest, StartRequest, StatsReply, StatsRequest, StatusRequest, TakenGetRequest,
    TakenKeyRequest, TakenReply, TakeoverReply, TakeoverRequest,
};
use crate::logic::snoop::{FlowKey, KEY_WORDS};
use crate::logic::track::Side;
use crate::logic::uapi::cmd;
use crate::netns::NetState;
use crate::takeover::{self, PARK_TIMEOUT_MS};
use core::ffi::c_long;

/// Room for a handoff reply of `n` connections (about 84 bytes each).
fn handoff_size(n: usize) -> u32 {
    (128 + 96 * n) as u32
}

/// SNOOP_START: the request's limits over the defaults, then the device is hooked.
fn snoop_start(state: &NetState, net: &Net<'_>, req: &StartRequest) -> Result<(), LogicError> {
    let limits = req.limits();
    if !net.initial_userns() && !limits.within_defaults() {
        return Err(LogicError::new(
            code::EPERM,
            c"limits above the defaults need a namespace of the initial user namespace",
        ));
    }
    state
        .snoop_start(net, req.ifindex, limits)
        .map_err(|e| match -e.to_errno() {
            code::ENODEV => LogicError::new(code::ENODEV, c"no such device in this namespace"),
            code::EBUSY => LogicError::new(code::EBUSY, c"already snooping a device"),
            _ => LogicError::new(code::EINVAL, c"could not hook the device"),
        })
}

/// Serves one `doit` request: each command's request type (`logic::ops`) parses it, the file
/// owning the concern serves it, and the command's reply type answers.
pub(crate) fn doit(
    state: &NetState,
    net: &Net<'_>,
    command: u8,
    payload: &[u8],
    req: &Request<'_>,
) -> Result<(), LogicError> {
    match command {
        cmd::DECL_ADD => state.add(&DeclAddRequest::parse(payload)?.decl),
        cmd::DECL_DEL => state.delete(DeclDelRequest::parse(payload)?.node),
        cmd::STATUS_GET => {
            StatusRequest::parse(payload)?;
            let st = state.status();
            req.reply(cmd::STATUS_GET, 512, |w| st.write(w))
        }
        cmd::SNOOP_START => snoop_start(state, net, &StartRequest::parse(payload)?),
        cmd::SNOOP_STOP => {
            SnoopStopRequest::parse(payload)?;
            state
                .snoop_stop(net)
                .map_err(|_| LogicError::new(code::ENOENT, c"not snooping"))
        }
        cmd::STATS_GET => {
            StatsRequest::parse(payload)?;
            let stats = StatsReply {
                stats: state.stats(net, now_ms()),
            };
            req.reply(cmd::STATS_GET, 512, |w| stats.write(w))
        }
        cmd::TAKEOVER => {
            let r = TakeoverRequest::parse(payload)?;
            let park_ms = r.park_ms.map_or(PARK_TIMEOUT_MS, u64::from);
            let (t, counts) = takeover::takeover(state, net, r.node, park_ms)?;
            let reply = TakeoverReply {
                counts,
                // Resets of ready connections whose owner was mid-response are counted as
                // resets only.
                not_ready: t.not_ready + (t.directives.len() + t.resets.len()) as u32
                    - t.mid_response,
                not_mine: t.not_mine,
                directives: Directives::from_slice(&t.directives),
            };
            let size = 128 + 64 * t.directives.len();
            req.reply(cmd::TAKEOVER, size as u32, |w| reply.write(w))
        }
        cmd::DIRECTIVE => {
            let r = DirectiveRequest::parse(payload)?;
            let park_ms = r.park_ms.map_or(PARK_TIMEOUT_MS, u64::from);
            let (t, counts) = takeover::directive(state, net, &r, park_ms)?;
            let reply = DirectiveReply {
                counts,
                next_node: t.directives.first().map(|d| d.next),
            };
            req.reply(cmd::DIRECTIVE, 128, |w| reply.write(w))
        }
        cmd::LEASE_SET => {
            state.lease(LeaseRequest::parse(payload)?.ms);
            Ok(())
        }
        cmd::RECOVERY => state.recovery(&RecoveryRequest::parse(payload)?, now_ms()),
        cmd::HANDOFF_HOLD => {
            let held = handoff::hold(state, net, &HoldRequest::parse(payload)?)?;
            let reply = Handoff {
                conns: List::from_slice(&held),
                ..Default::default()
            };
            req.reply(cmd::HANDOFF_HOLD, handoff_size(held.len()), |w| {
                reply.write(w)
            })
        }
        cmd::HANDOFF_TAKE => {
            let r = Handoff::parse(payload)?;
            let park_ms = r.park_ms.map_or(PARK_TIMEOUT_MS, u64::from);
            let (conns, _) = handoff::take(state, net, &r, park_ms)?;
            let reply = Handoff {
                conns: List::from_slice(&conns),
                ..Default::default()
            };
            req.reply(cmd::HANDOFF_TAKE, handoff_size(conns.len()), |w| {
                reply.write(w)
            })
        }
        cmd::HANDOFF_DONE => handoff::done(state, net, &Handoff::parse(payload)?),
        cmd::REJOIN => takeover::rejoin(state, RejoinRequest::parse(payload)?.node),
        _ => Err(LogicError::new(code::EOPNOTSUPP, c"unknown command")),
    }
}

/// Fills one round of a dump; `args` (the dump's `cb->args`, zero at its first round) is
/// where it resumes. A round never resumes by position in a list that may change between
/// rounds (that would repeat or skip entries): declarations resume at the next node id,
/// connections after the last key sent, taken-over records at an absolute record number;
/// CONN_DATA_GET's position is a byte offset in one connection's data. An unprivileged
/// caller gets the mirrored connections without their sequence numbers and timestamps.
pub(crate) fn dumpit(
    state: &NetState,
    command: u8,
    payload: &[u8],
    dump: &mut Dump<'_>,
    args: &mut [c_long; 6],
    privileged: bool,
) -> Result<(), LogicError> {
    match command {
        cmd::DECL_GET => {
            DeclGetRequest::parse(payload)?;
            // args[0]: the smallest node id not sent yet.
            loop {
                // `DeclReply::write` is the declaration's own encoding, written from the
                // stored declaration in place (no copy of it on the stack).
                let r = state.with_decl_from(args[0] as u64, |d| {
                    (d.node_id, dump.add(cmd::DECL_GET, |w| d.write(w)))
                });
                match r {
                    Some((id, Ok(true))) => args[0] = c_long::from(id) + 1,
                    Some((_, Err(e))) => return Err(e),
                    None | Some((_, Ok(false))) => return Ok(()),
                }
            }
        }
        cmd::CONN_GET => {
            ConnGetRequest::parse(payload)?;
            let now = now_ms();
            // args[1..6]: the last key sent (none at the first round).
            let mut words = [0u64; KEY_WORDS];
            for (w, a) in words.iter_mut().zip(&args[1..]) {
                *w = *a as u64;
            }
            let mut last = FlowKey::from_words(&words);
            if last.is_none() {
                state.snoop.gc(now);
            }
            loop {
                // One lookup per entry, O(log n) in one shard, under the lock a frame of that
                // shard takes: never a walk from the start.
                let next = state.snoop.next_after(last.as_ref(), now);
                let Some((key, conn)) = next else { break };
                let conn = if privileged { conn } else { conn.redacted() };
                if !dump.add(cmd::CONN_GET, |w| ConnReply { conn }.write(w))? {
                    break;
                }
                last = Some(key);
            }
            if let Some(k) = last {
                for (a, w) in args[1..].iter_mut().zip(k.to_words()) {
                    *a = w as c_long;
                }
            }
            Ok(())
        }
        cmd::TAKEN_GET if !payload.is_empty() => {
            // One connection: its newest record, if any.
            let req = TakenKeyRequest::parse(payload)?;
            let pos = &mut args[0];
            if *pos > 0 {
                return Ok(());
            }
            if let Some(taken) = takeover::taken_by_key(state, &req.key, now_ms()) {
                if !dump.add(cmd::TAKEN_GET, |w| TakenReply { taken }.write(w))? {
                    return Ok(());
                }
            }
            *pos = 1;
            Ok(())
        }
        cmd::TAKEN_GET => {
            TakenGetRequest::parse(payload)?;
            let now = now_ms();
            // args[0]: the number (among all records ever kept) of the next record: records
            // the list dropped meanwhile are skipped, none is sent twice.
            let pos = &mut args[0];
            loop {
                let Some((n, taken)) = takeover::taken_info(state, *pos as u64, now) else {
                    return Ok(());
                };
                *pos = n as c_long;
                if !dump.add(cmd::TAKEN_GET, |w| TakenReply { taken }.write(w))? {
                    return Ok(());
                }
                *pos += 1;
            }
        }
        cmd::CONN_DATA_GET => {
            let req = DataRequest::parse(payload)?;
            let pos = &mut args[0];
            let mirrored = state.snoop.dump_data(&req.key, req.side, dump, pos);
            // A taken-over connection: the sent bytes kept for the application.
            let found = match mirrored {
                None if req.side == Side::Owner => takeover::dump_sent(state, &req.key, dump, pos),
                other => other,
            };
            match found {
                Some(r) => r,
                None if *pos == 0 => Err(LogicError::new(code::ENOENT, c"no such connection")),
                None => Ok(()),
            }
        }
        _ => Err(LogicError::new(code::EOPNOTSUPP, c"unknown command")),
    }
}
