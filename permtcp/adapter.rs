// SPDX-License-Identifier: GPL-2.0

//! The C edge, entry side: every function the C glue calls into Rust (`permtcp_rs_*`, declared
//! in `include/permtcp/glue.h`), in one place, as `rust/kernel/net/phy.rs`'s `Adapter` does.
//!
//! Each entry point turns its raw arguments into the safe wrappers of `glue.rs` (whose
//! `from_raw` constructors state what C guarantees) and calls safe code:
//!
//! | Entry point             | Called from (C)                    | Goes to              |
//! |-------------------------|------------------------------------|----------------------|
//! | `permtcp_rs_net_init`   | pernet `.init`                     | [`NetState::new`]    |
//! | `permtcp_rs_net_exit`   | pernet `.exit`                     | drop of the state    |
//! | `permtcp_rs_doit`       | every genl `doit`                  | [`genl::doit`]       |
//! | `permtcp_rs_dumpit`     | every genl `dumpit`                | [`genl::dumpit`]     |
//! | `permtcp_rs_frame`      | the NF_NETDEV_INGRESS hook         | [`NetState::frame`]  |
//! | `permtcp_rs_out`        | the NF_INET_LOCAL_OUT hooks        | [`NetState::out`]    |
//! | `permtcp_rs_park_poll`  | the parking delayed work           | [`takeover::poll_parked`] |
//! | `permtcp_rs_snoop_lost` | the netdevice notifier (unregister) | [`NetState::snoop_lost`] |
//!
//! # Lifetime of the state
//!
//! The pointer the C glue keeps in the namespace's `net_generic` slot comes from
//! [`permtcp_rs_net_init`] and goes back to [`permtcp_rs_net_exit`] exactly once. Every other
//! entry point only borrows it: the C glue unregisters the family before any namespace state
//! is freed, unregisters a namespace's hooks and disables its parking poll before its state is
//! freed, and so no entry point runs on a freed state.

use crate::genl;
use crate::glue::{
    Dump, FrameFacts, GenlInfo, Net, NetlinkCallback, PtcpNet, Request, SkBuff, Skb,
};
use crate::netns::NetState;
use crate::takeover;
use core::ffi::{c_int, c_long, c_void};
use kernel::prelude::*;
use kernel::types::ForeignOwnable;

/// The pointer type stored in the namespace's `net_generic` slot.
type Stored = Pin<KBox<NetState>>;

/// Borrows the state behind a `net_generic` slot.
///
/// # Safety
///
/// `ptr` must come from [`permtcp_rs_net_init`], and [`permtcp_rs_net_exit`] must not run for
/// it before the borrow ends (see the module documentation for why C guarantees this).
unsafe fn borrow<'a>(ptr: *mut c_void) -> Pin<&'a NetState> {
    // SAFETY: per this function's contract, `ptr` came from `into_foreign` and is alive.
    unsafe { <Stored as ForeignOwnable>::borrow(ptr) }
}

/// Creates the state of a new namespace; returns NULL on allocation failure.
#[no_mangle]
extern "C" fn permtcp_rs_net_init(cookie: u64) -> *mut c_void {
    match KBox::pin_init(NetState::new(cookie), GFP_KERNEL) {
        Ok(state) => state.into_foreign(),
        Err(_) => core::ptr::null_mut(),
    }
}

/// Frees the state of a namespace that is going away.
///
/// # Safety
///
/// `state` must come from [`permtcp_rs_net_init`] and is not used again after this call.
#[no_mangle]
unsafe extern "C" fn permtcp_rs_net_exit(state: *mut c_void) {
    // SAFETY: per this function's contract the pointer came from `into_foreign` and ownership
    // comes back exactly once.
    drop(unsafe { <Stored as ForeignOwnable>::from_foreign(state) });
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
    // SAFETY: the state outlives every handler (module documentation).
    let state = unsafe { borrow(state) };
    // SAFETY: `pn` is this namespace's `struct ptcp_net`, valid during the handler.
    let net = unsafe { Net::from_raw(pn) };
    // SAFETY: the caller passes the request's attribute bytes.
    let payload = unsafe { core::slice::from_raw_parts(payload, len as usize) };
    // SAFETY: `info` is valid for this call.
    let req = unsafe { Request::from_raw(info) };
    match genl::doit(&state, &net, command, payload, &req) {
        Ok(()) => 0,
        Err(e) => {
            req.set_err_msg(&e);
            -e.errno
        }
    }
}

/// `dumpit` entry point: DECL_GET, CONN_GET, CONN_DATA_GET and TAKEN_GET.
///
/// # Safety
///
/// `state` is the namespace's live state pointer; `payload` points to `len` readable bytes
/// of the request; `skb`, `cb` and `pos` (`cb->args`) are the valid arguments of the running
/// dump call;
/// `privileged` tells whether the caller has CAP_NET_ADMIN over the namespace.
#[no_mangle]
unsafe extern "C" fn permtcp_rs_dumpit(
    state: *mut c_void,
    command: u8,
    payload: *const u8,
    len: u32,
    skb: *mut SkBuff,
    cb: *mut NetlinkCallback,
    pos: *mut c_long,
    privileged: bool,
) -> c_int {
    // SAFETY: the state outlives every handler (module documentation).
    let state = unsafe { borrow(state) };
    // SAFETY: the caller passes the request's attribute bytes.
    let payload = unsafe { core::slice::from_raw_parts(payload, len as usize) };
    // SAFETY: valid for this call, per the contract.
    let mut d = unsafe { Dump::from_raw(skb, cb) };
    // SAFETY: `pos` points to `cb->args[0]` of the array `long args[6]`, which only this
    // dump uses.
    let args = unsafe { &mut *pos.cast::<[c_long; 6]>() };
    match genl::dumpit(&state, command, payload, &mut d, args, privileged) {
        Ok(()) => d.len() as c_int,
        Err(e) => -e.errno,
    }
}

/// One frame from the netdev ingress hook (softirq); returns what the hook does with it:
/// accept it, drop it, or give it to the mirror, which keeps it (`enum ptcp_frame_verdict`).
///
/// # Safety
///
/// `state` is a live state pointer (the hook is unregistered before the state is freed) and
/// `skb` the frame being processed, `f` what `ptcp_frame_fill()` read of it, valid for the
/// call.
#[no_mangle]
unsafe extern "C" fn permtcp_rs_frame(
    state: *mut c_void,
    skb: *mut SkBuff,
    f: *const FrameFacts,
    now_ms: u64,
) -> u8 {
    // SAFETY: per the contract the state is alive for the hook's duration.
    let state = unsafe { borrow(state) };
    // SAFETY: `skb` is valid for this call and `f` points to what the hook read of it
    // (contract).
    let skb = unsafe { Skb::from_raw(skb, &*f) };
    let drop = state.frame(&skb, now_ms);
    // `enum ptcp_frame_verdict` in include/permtcp/glue.h. A kept frame leaves the stack
    // as a dropped one would (the hook steals it).
    if skb.kept() {
        2
    } else if drop {
        1
    } else {
        0
    }
}

/// An ARP packet this host sends (ARP_OUT hook) at `now_ns`, `len` bytes of it from its ARP
/// header: what the hook does with it (`enum ptcp_out_verdict`: fencing).
///
/// # Safety
///
/// `state` as for [`permtcp_rs_out`]; `arp` points to `len` bytes readable for the call.
#[no_mangle]
unsafe extern "C" fn permtcp_rs_arp_out(
    state: *mut c_void,
    arp: *const u8,
    len: u32,
    now_ns: u64,
) -> u8 {
    // SAFETY: per the contract the state is alive for the hook's duration.
    let state = unsafe { borrow(state) };
    // SAFETY: `arp` points to `len` readable bytes for this call (contract), not written
    // meanwhile (a copy on the hook's stack, or the skb's linear data it holds).
    let arp = unsafe { core::slice::from_raw_parts(arp, len as usize) };
    state.arp_out(arp, now_ns) as u8
}

/// A locally generated TCP segment or neighbour message (LOCAL_OUT hook) at `now_ns`: what
/// the hook does with it (`enum ptcp_out_verdict`: reset suppression, fencing).
///
/// # Safety
///
/// `state` is a live state pointer (the hooks are unregistered in `.pre_exit`, and the state
/// is freed in `.exit` after an RCU grace period), `skb` the packet being sent and `f` what
/// `ptcp_frame_fill()` read of it, valid for the call.
#[no_mangle]
unsafe extern "C" fn permtcp_rs_out(
    state: *mut c_void,
    skb: *mut SkBuff,
    f: *const FrameFacts,
    now_ns: u64,
) -> u8 {
    // SAFETY: per the contract the state is alive for the hook's duration.
    let state = unsafe { borrow(state) };
    // SAFETY: `skb` is valid for this call and `f` points to what the hook read of it
    // (contract).
    let skb = unsafe { Skb::from_raw(skb, &*f) };
    state.out(&skb, now_ns) as u8
}

/// The namespace's work (system workqueue): releases the mirror's copies of taken-over
/// connections, then polls the parked ones; returns whether to poll again.
///
/// # Safety
///
/// `state` is a live state pointer and `pn` the same namespace's `struct ptcp_net`: the C
/// glue disables the poll before it frees either.
#[no_mangle]
unsafe extern "C" fn permtcp_rs_park_poll(state: *mut c_void, pn: *mut PtcpNet) -> bool {
    // SAFETY: per the contract the state is alive.
    let state = unsafe { borrow(state) };
    // SAFETY: per the contract `pn` is valid for the call.
    let net = unsafe { Net::from_raw(pn) };
    takeover::release_taken(&state);
    takeover::poll_parked(&state, &net, crate::glue::now_ms())
}

/// The snooped device went away (RTNL held, hook already unregistered).
///
/// # Safety
///
/// `state` is a live state pointer.
#[no_mangle]
unsafe extern "C" fn permtcp_rs_snoop_lost(state: *mut c_void) {
    // SAFETY: per the contract the state is alive.
    let state = unsafe { borrow(state) };
    state.snoop_lost();
}
