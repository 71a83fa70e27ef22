// SPDX-License-Identifier: GPL-2.0

//! Handlers of the `permtcp` generic netlink family.
//!
//! genetlink has already checked permissions (CAP_NET_ADMIN over the namespace for changing
//! commands) and the top-level attributes against per-command policies. Here each request is
//! parsed strictly by the shared logic, applied to the namespace's state, and answered; every
//! error carries an extended-ACK message.

use crate::glue::{
    now_ms, Dump, DumpStop, GenlInfo, NetlinkCallback, PtcpNet, Request, SkBuff, Snooped,
};
use crate::logic::decl::{self, MAX_DECLS};
use crate::logic::errno::{code, Error as LogicError};
use crate::logic::seq;
use crate::logic::snoop::Limits;
use crate::logic::snoopnl::{parse_data_request, parse_start_request, DirectiveRequest, TakenInfo};
use crate::logic::track::Side;
use crate::logic::uapi::{attr, cmd, FAMILY_VERSION};
use crate::netns::{self, NetState};
use crate::takeover::Outcome;
use core::ffi::{c_int, c_long, c_void};
use kernel::prelude::*;
use kernel::time::{Instant, Monotonic};

/// Bytes of retained data per dump message.
const DATA_PER_MSG: u32 = 8192;

fn snoop_start(state: &NetState, pn: &Snooped, payload: &[u8]) -> Result<(), LogicError> {
    let req = parse_start_request(payload)?;
    let defaults = Limits::default();
    let limits = Limits {
        max_conns: req.max_conns.unwrap_or(defaults.max_conns),
        max_bytes: req.max_bytes.unwrap_or(defaults.max_bytes),
        keep_received: req.keep_received.unwrap_or(defaults.keep_received),
    };
    if pn.ifindex() != 0 {
        return Err(LogicError::new(code::EBUSY, c"already snooping a device"));
    }
    state.snoop_start(limits);
    pn.attach(req.ifindex).map_err(|e| {
        state.snoop.lock().stop();
        match -e.to_errno() {
            code::ENODEV => LogicError::new(code::ENODEV, c"no such device in this namespace"),
            code::EBUSY => LogicError::new(code::EBUSY, c"already snooping a device"),
            _ => LogicError::new(code::EINVAL, c"could not hook the device"),
        }
    })
}

fn handle(
    state: &NetState,
    pn: &Snooped,
    command: u8,
    payload: &[u8],
    req: &Request<'_>,
) -> Result<(), LogicError> {
    match command {
        cmd::DECL_ADD => state.add(&decl::parse_add_request(payload)?),
        cmd::DECL_DEL => state.delete(decl::parse_del_request(payload)?),
        cmd::STATUS_GET => {
            decl::parse_empty_request(payload)?;
            let st = state.status();
            req.reply(cmd::STATUS_GET, 512, |w| {
                w.put_u32(attr::VERSION, FAMILY_VERSION.into())?;
                w.put_u32(attr::DECL_COUNT, st.decls)?;
                w.put_u32(attr::DECL_MAX, MAX_DECLS as u32)?;
                if let Some(n) = st.local_node {
                    w.put_u32(attr::LOCAL_NODE, n)?;
                }
                w.put_u32(attr::PARKED, st.parked)?;
                w.put_u32(attr::PARK_QUEUED, st.park_queued)?;
                w.put_u32(attr::PARK_RESET, st.park_reset)?;
                for n in &st.failed[..st.n_failed] {
                    w.put_u32(attr::FAILED_NODE, *n)?;
                }
                w.put_u64(attr::NETNS_COOKIE, state.cookie)
            })
        }
        cmd::SNOOP_START => snoop_start(state, pn, payload),
        cmd::SNOOP_STOP => {
            decl::parse_empty_request(payload)?;
            pn.detach()
                .map_err(|_| LogicError::new(code::ENOENT, c"not snooping"))?;
            state.snoop.lock().stop();
            Ok(())
        }
        cmd::TAKEOVER => {
            let r = decl::parse_takeover_request(payload)?;
            let now = now_ms();
            let park_ms = r.park_ms.map_or(netns::PARK_TIMEOUT_MS, u64::from);
            let mut t = state.plan_takeover(r.node, now)?;
            let done = carry_out(state, pn, &mut t, now, park_ms);
            state.rebuilt();
            for a in t.announce.iter() {
                if let Err(e) = crate::takeover::announce(pn, a) {
                    pr_warn!("announcing a taken-over address failed: {}\n", e.text());
                }
            }
            let not_ready = t.not_ready + (t.directives.len() + t.resets.len()) as u32;
            let size = 128 + 64 * t.directives.len();
            req.reply(cmd::TAKEOVER, size as u32, |w| {
                done.write(w)?;
                w.put_u32(attr::NOT_READY_COUNT, not_ready)?;
                w.put_u32(attr::NOT_MINE, t.not_mine)?;
                t.directives.iter().try_for_each(|d| d.write(w))
            })
        }
        cmd::DIRECTIVE => {
            let r = DirectiveRequest::parse(payload)?;
            let now = now_ms();
            let park_ms = r.park_ms.map_or(netns::PARK_TIMEOUT_MS, u64::from);
            let mut t = state.directive(&r, now)?;
            let done = carry_out(state, pn, &mut t, now, park_ms);
            req.reply(cmd::DIRECTIVE, 128, |w| {
                done.write(w)?;
                match t.directives.first() {
                    Some(d) => w.put_u32(attr::NEXT_NODE, d.next),
                    None => Ok(()),
                }
            })
        }
        cmd::STATS_GET => {
            decl::parse_empty_request(payload)?;
            let mut stats = {
                let mut t = state.snoop.lock();
                t.gc(now_ms());
                t.stats(pn.ifindex())
            };
            (stats.hook_ns, stats.hook_frames) = pn.hook_cost();
            stats.rst_dropped = pn.rst_dropped();
            req.reply(cmd::STATS_GET, 512, |w| stats.write(w))
        }
        _ => Err(LogicError::new(code::EOPNOTSUPP, c"unknown command")),
    }
}

/// What carrying out a takeover or a directive did.
struct Done {
    taken: u32,
    parked: u32,
    failed: u32,
    reset: u32,
    rebuild_ns: u64,
}

impl Done {
    fn write(&self, w: &mut crate::logic::nla::Writer<'_>) -> Result<(), LogicError> {
        w.put_u32(attr::TAKEN, self.taken)?;
        w.put_u32(attr::PARKED, self.parked)?;
        w.put_u32(attr::FAILED, self.failed)?;
        w.put_u32(attr::RESET, self.reset)?;
        w.put_u64(attr::REBUILD_NS, self.rebuild_ns)
    }
}

/// Rebuilds the planned connections (handing them to their listener, or parking them until
/// `park_ms` from `now`), records them for the application, and resets those no peer can
/// take over.
fn carry_out(
    state: &NetState,
    pn: &Snooped,
    t: &mut netns::Takeover,
    now: u64,
    park_ms: u64,
) -> Done {
    let started = Instant::<Monotonic>::now();
    let mut d = Done {
        taken: 0,
        parked: 0,
        failed: 0,
        reset: 0,
        rebuild_ns: 0,
    };
    let mut parked = KVec::new();
    for p in core::mem::take(&mut t.plans) {
        match crate::takeover::take_over(pn, &p, now + park_ms) {
            Ok(outcome) => {
                d.taken += 1;
                state.record_taken(p.into_record(now));
                if let Outcome::Parked(c) = outcome {
                    // A failed push drops the connection, which resets the client.
                    if parked.push(c, GFP_KERNEL).is_err() {
                        d.failed += 1;
                    }
                }
            }
            Err(e) => {
                d.failed += 1;
                pr_warn!(
                    "takeover of a connection failed: {} ({})\n",
                    e.text(),
                    e.errno
                );
            }
        }
    }
    d.rebuild_ns = started.elapsed().as_nanos() as u64;
    d.parked = parked.len() as u32;
    if d.parked > 0 {
        d.failed += state.park(parked);
        pn.park_kick();
    }
    for r in t.resets.iter() {
        match crate::takeover::reset(pn, r) {
            Ok(()) => d.reset += 1,
            Err(e) => pr_warn!("resetting a connection failed: {}\n", e.text()),
        }
    }
    d
}

/// `doit` entry point of every non-dump command.
///
/// # Safety
///
/// `state` is the namespace's live state pointer and `pn` its `struct ptcp_net`, `payload`
/// points to `len` readable bytes of the request, and `info` is the request's valid
/// `genl_info`, all for the call's duration.
#[no_mangle]
unsafe extern "C" fn permtcp_rs_doit(
    state: *mut c_void,
    pn: *mut PtcpNet,
    command: u8,
    payload: *const u8,
    len: u32,
    info: *mut GenlInfo,
) -> c_int {
    // SAFETY: the state outlives every handler (see `netns::borrow`).
    let state = unsafe { netns::borrow(state) };
    // SAFETY: `pn` is this namespace's `struct ptcp_net`, valid during the handler.
    let pn = unsafe { Snooped::new(pn) };
    // SAFETY: the caller passes the request's attribute bytes.
    let payload = unsafe { core::slice::from_raw_parts(payload, len as usize) };
    // SAFETY: `info` is valid for this call.
    let req = unsafe { Request::new(info) };
    match handle(&state, &pn, command, payload, &req) {
        Ok(()) => 0,
        Err(e) => {
            req.set_err_msg(&e);
            -e.errno
        }
    }
}

/// Fills one round of a dump; `pos` is the command's resume position.
fn dump(
    state: &NetState,
    command: u8,
    payload: &[u8],
    dump: &mut Dump<'_>,
    pos: &mut c_long,
) -> Result<(), LogicError> {
    let added = |r: Result<(), DumpStop>| -> Result<bool, LogicError> {
        match r {
            Ok(()) => Ok(true),
            Err(DumpStop::Full) => Ok(false),
            Err(DumpStop::Error(e)) => Err(e),
        }
    };
    match command {
        cmd::DECL_GET => loop {
            let r = state.with_decl(*pos as usize, |d| dump.add(cmd::DECL_GET, |w| d.write(w)));
            match r.map(added).transpose()? {
                Some(true) => *pos += 1,
                None | Some(false) => return Ok(()),
            }
        },
        cmd::CONN_GET => {
            let now = now_ms();
            loop {
                let info = state.snoop.lock().nth(*pos as usize, now);
                let Some(info) = info else { return Ok(()) };
                if !added(dump.add(cmd::CONN_GET, |w| info.write(w)))? {
                    return Ok(());
                }
                *pos += 1;
            }
        }
        cmd::TAKEN_GET => {
            let now = now_ms();
            loop {
                let info = state.with_taken(*pos as usize, |t| TakenInfo {
                    age_ms: now.saturating_sub(t.at_ms),
                    ..t.info
                });
                let Some(info) = info else { return Ok(()) };
                if !added(dump.add(cmd::TAKEN_GET, |w| info.write(w)))? {
                    return Ok(());
                }
                *pos += 1;
            }
        }
        cmd::CONN_DATA_GET => {
            let req = parse_data_request(payload)?;
            let side = crate::snoop::side_index(req.side);
            let table = state.snoop.lock();
            let found = table.with_conn(&req.key, |c| {
                let data = &c.half[side].data;
                // Skip what earlier rounds sent, then one message per piece.
                let mut skip = *pos as u32;
                for (start, end) in data.ranges() {
                    let len = seq::dist(start, end);
                    if skip >= len {
                        skip -= len;
                        continue;
                    }
                    let mut at = start.wrapping_add(skip);
                    skip = 0;
                    while seq::before(at, end) {
                        let n = seq::dist(at, end).min(DATA_PER_MSG);
                        let r = dump.add(cmd::CONN_DATA_GET, |w| {
                            w.put_u32(attr::DATA_SEQ, at)?;
                            w.put_with(attr::DATA, n as usize, |buf| data.read(at, buf))
                        });
                        if !added(r)? {
                            return Ok(());
                        }
                        *pos += c_long::from(n);
                        at = at.wrapping_add(n);
                    }
                }
                Ok(())
            });
            drop(table);
            let found = match found {
                Some(r) => Some(r),
                // A taken-over connection: the sent bytes kept for the application.
                None if req.side == Side::Owner => state.with_taken_key(&req.key, |t| {
                    let mut off = *pos as usize;
                    while off < t.sent.len() {
                        let n = (t.sent.len() - off).min(DATA_PER_MSG as usize);
                        let at = t.sent_from.wrapping_add(off as u32);
                        let r = dump.add(cmd::CONN_DATA_GET, |w| {
                            w.put_u32(attr::DATA_SEQ, at)?;
                            w.put(attr::DATA, &t.sent[off..off + n])
                        });
                        if !added(r)? {
                            return Ok(());
                        }
                        off += n;
                        *pos = off as c_long;
                    }
                    Ok(())
                }),
                None => None,
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

/// `dumpit` entry point: DECL_GET, CONN_GET, CONN_DATA_GET and TAKEN_GET.
///
/// # Safety
///
/// `state` is the namespace's live state pointer; `payload` points to `len` readable bytes
/// of the request; `skb`, `cb` and `pos` are the valid arguments of the running dump call.
#[no_mangle]
unsafe extern "C" fn permtcp_rs_dumpit(
    state: *mut c_void,
    command: u8,
    payload: *const u8,
    len: u32,
    skb: *mut SkBuff,
    cb: *mut NetlinkCallback,
    pos: *mut c_long,
) -> c_int {
    // SAFETY: the state outlives every handler (see `netns::borrow`).
    let state = unsafe { netns::borrow(state) };
    // SAFETY: the caller passes the request's attribute bytes.
    let payload = unsafe { core::slice::from_raw_parts(payload, len as usize) };
    // SAFETY: valid for this call, per the contract.
    let mut d = unsafe { Dump::new(skb, cb) };
    // SAFETY: `pos` points to `cb->args[0]`, which only this dump uses.
    let pos = unsafe { &mut *pos };
    match dump(&state, command, payload, &mut d, pos) {
        Ok(()) => d.len() as c_int,
        Err(e) => -e.errno,
    }
}
