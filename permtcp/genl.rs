// SPDX-License-Identifier: GPL-2.0

//! Handlers of the `permtcp` generic netlink family.
//!
//! genetlink has already checked permissions (CAP_NET_ADMIN over the namespace for changing
//! commands) and the top-level attributes against per-command policies. Here each request is
//! parsed strictly by the shared logic, applied to the namespace's state, and answered; every
//! error carries an extended-ACK message.

use crate::glue::{Dump, DumpStop, GenlInfo, NetlinkCallback, Request, SkBuff};
use crate::logic::decl::{self, MAX_DECLS};
use crate::logic::errno::{code, Error as LogicError};
use crate::logic::uapi::{attr, cmd, FAMILY_VERSION};
use crate::netns::{self, NetState};
use core::ffi::{c_int, c_long, c_void};
use kernel::prelude::*;

fn handle(
    state: &NetState,
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
            req.reply(cmd::STATUS_GET, 128, |w| {
                w.put_u32(attr::VERSION, FAMILY_VERSION.into())?;
                w.put_u32(attr::DECL_COUNT, st.decls)?;
                w.put_u32(attr::DECL_MAX, MAX_DECLS as u32)?;
                if let Some(n) = st.local_node {
                    w.put_u32(attr::LOCAL_NODE, n)?;
                }
                w.put_u64(attr::NETNS_COOKIE, state.cookie)
            })
        }
        _ => Err(LogicError::new(code::EOPNOTSUPP, c"unknown command")),
    }
}

/// `doit` entry point for every command but the DECL_GET dump.
///
/// # Safety
///
/// `state` is the namespace's live state pointer, `payload` points to `len` readable bytes of
/// the request, and `info` is the request's valid `genl_info`, all for the call's duration.
#[no_mangle]
unsafe extern "C" fn permtcp_rs_doit(
    state: *mut c_void,
    command: u8,
    payload: *const u8,
    len: u32,
    info: *mut GenlInfo,
) -> c_int {
    // SAFETY: the state outlives every handler (see `netns::borrow`).
    let state = unsafe { netns::borrow(state) };
    // SAFETY: the caller passes the request's attribute bytes.
    let payload = unsafe { core::slice::from_raw_parts(payload, len as usize) };
    // SAFETY: `info` is valid for this call.
    let req = unsafe { Request::new(info) };
    match handle(&state, command, payload, &req) {
        Ok(()) => 0,
        Err(e) => {
            req.set_err_msg(&e);
            -e.errno
        }
    }
}

/// `dumpit` of DECL_GET: one multipart message per declaration, resuming at `*pos`.
///
/// # Safety
///
/// `state` is the namespace's live state pointer; `skb`, `cb` and `pos` are the valid
/// arguments of the running dump call.
#[no_mangle]
unsafe extern "C" fn permtcp_rs_dump_decls(
    state: *mut c_void,
    skb: *mut SkBuff,
    cb: *mut NetlinkCallback,
    pos: *mut c_long,
) -> c_int {
    // SAFETY: the state outlives every handler (see `netns::borrow`).
    let state = unsafe { netns::borrow(state) };
    // SAFETY: valid for this call, per the contract.
    let mut dump = unsafe { Dump::new(skb, cb) };
    // SAFETY: `pos` points to `cb->args[0]`, which only this dump uses.
    let pos = unsafe { &mut *pos };
    loop {
        let index = *pos as usize;
        let added = state.with_decl(index, |d| dump.add(cmd::DECL_GET, |w| d.write(w)));
        match added {
            None => break,
            Some(Ok(())) => *pos += 1,
            Some(Err(DumpStop::Full)) if dump.len() > 0 => break,
            Some(Err(DumpStop::Full)) => return -code::EMSGSIZE,
            Some(Err(DumpStop::Error(e))) => return -e.errno,
        }
    }
    dump.len() as c_int
}
