// SPDX-License-Identifier: GPL-2.0

//! The `permtcp` generic netlink family's dispatcher: parse -> call -> reply.
//!
//! genetlink has already checked permissions (CAP_NET_ADMIN over the namespace for changing
//! commands) and the top-level attributes against per-command policies (`permtcp_glue.c`).
//! Here each request is parsed strictly by the shared logic, handed to the file that owns
//! its concern (`netns.rs` for declarations, status and snooping, `takeover.rs` for takeovers
//! and directives, `snoop.rs` for the mirror), and answered; every error carries an
//! extended-ACK message. The family is described in Documentation/netlink/specs/permtcp.yaml.

use crate::glue::{now_ms, Dump, Net, Request};
use crate::logic::decl::{self, MAX_DECLS};
use crate::logic::errno::{code, Error as LogicError};
use crate::logic::nla::Writer;
use crate::logic::snoop::Limits;
use crate::logic::snoopnl::{parse_data_request, parse_start_request, DirectiveRequest};
use crate::logic::track::Side;
use crate::logic::uapi::{attr, cmd, FAMILY_VERSION};
use crate::netns::NetState;
use crate::takeover::{self, Done, PARK_TIMEOUT_MS};
use core::ffi::c_long;

/// Writes what a takeover or a directive did.
fn write_done(d: &Done, w: &mut Writer<'_>) -> Result<(), LogicError> {
    w.put_u32(attr::TAKEN, d.taken)?;
    w.put_u32(attr::PARKED, d.parked)?;
    w.put_u32(attr::FAILED, d.failed)?;
    w.put_u32(attr::RESET, d.reset)?;
    w.put_u64(attr::REBUILD_NS, d.rebuild_ns)
}

/// SNOOP_START: the request's limits over the defaults, then the device is hooked.
fn snoop_start(state: &NetState, net: &Net<'_>, payload: &[u8]) -> Result<(), LogicError> {
    let req = parse_start_request(payload)?;
    let defaults = Limits::default();
    let limits = Limits {
        max_conns: req.max_conns.unwrap_or(defaults.max_conns),
        max_bytes: req.max_bytes.unwrap_or(defaults.max_bytes),
        keep_received: req.keep_received.unwrap_or(defaults.keep_received),
    };
    state
        .snoop_start(net, req.ifindex, limits)
        .map_err(|e| match -e.to_errno() {
            code::ENODEV => LogicError::new(code::ENODEV, c"no such device in this namespace"),
            code::EBUSY => LogicError::new(code::EBUSY, c"already snooping a device"),
            _ => LogicError::new(code::EINVAL, c"could not hook the device"),
        })
}

/// Serves one `doit` request.
pub(crate) fn doit(
    state: &NetState,
    net: &Net<'_>,
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
        cmd::SNOOP_START => snoop_start(state, net, payload),
        cmd::SNOOP_STOP => {
            decl::parse_empty_request(payload)?;
            state
                .snoop_stop(net)
                .map_err(|_| LogicError::new(code::ENOENT, c"not snooping"))
        }
        cmd::STATS_GET => {
            decl::parse_empty_request(payload)?;
            let stats = state.stats(net, now_ms());
            req.reply(cmd::STATS_GET, 512, |w| stats.write(w))
        }
        cmd::TAKEOVER => {
            let r = decl::parse_takeover_request(payload)?;
            let park_ms = r.park_ms.map_or(PARK_TIMEOUT_MS, u64::from);
            let (t, done) = takeover::takeover(state, net, r.node, park_ms)?;
            let not_ready = t.not_ready + (t.directives.len() + t.resets.len()) as u32;
            let size = 128 + 64 * t.directives.len();
            req.reply(cmd::TAKEOVER, size as u32, |w| {
                write_done(&done, w)?;
                w.put_u32(attr::NOT_READY_COUNT, not_ready)?;
                w.put_u32(attr::NOT_MINE, t.not_mine)?;
                t.directives.iter().try_for_each(|d| d.write(w))
            })
        }
        cmd::DIRECTIVE => {
            let r = DirectiveRequest::parse(payload)?;
            let park_ms = r.park_ms.map_or(PARK_TIMEOUT_MS, u64::from);
            let (t, done) = takeover::directive(state, net, &r, park_ms)?;
            req.reply(cmd::DIRECTIVE, 128, |w| {
                write_done(&done, w)?;
                match t.directives.first() {
                    Some(d) => w.put_u32(attr::NEXT_NODE, d.next),
                    None => Ok(()),
                }
            })
        }
        _ => Err(LogicError::new(code::EOPNOTSUPP, c"unknown command")),
    }
}

/// Fills one round of a dump; `pos` is the command's resume position.
pub(crate) fn dumpit(
    state: &NetState,
    command: u8,
    payload: &[u8],
    dump: &mut Dump<'_>,
    pos: &mut c_long,
) -> Result<(), LogicError> {
    match command {
        cmd::DECL_GET => loop {
            let r = state.with_decl(*pos as usize, |d| dump.add(cmd::DECL_GET, |w| d.write(w)));
            match r.transpose()? {
                Some(true) => *pos += 1,
                None | Some(false) => return Ok(()),
            }
        },
        cmd::CONN_GET => {
            let now = now_ms();
            loop {
                let info = state.snoop.lock().nth(*pos as usize, now);
                let Some(info) = info else { return Ok(()) };
                if !dump.add(cmd::CONN_GET, |w| info.write(w))? {
                    return Ok(());
                }
                *pos += 1;
            }
        }
        cmd::TAKEN_GET => {
            let now = now_ms();
            loop {
                let Some(info) = takeover::taken_info(state, *pos as usize, now) else {
                    return Ok(());
                };
                if !dump.add(cmd::TAKEN_GET, |w| info.write(w))? {
                    return Ok(());
                }
                *pos += 1;
            }
        }
        cmd::CONN_DATA_GET => {
            let req = parse_data_request(payload)?;
            let mirrored = state.snoop.lock().dump_data(&req.key, req.side, dump, pos);
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
