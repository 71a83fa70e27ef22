// SPDX-License-Identifier: GPL-2.0

//! Safe wrappers over the C glue in `permtcp_glue.c`.
//!
//! The C side registers the generic netlink family and the per-netns slot and offers helpers
//! around static inlines; this file declares those functions and wraps them in types that own
//! what they must release, so that the rest of the module contains no `unsafe` netlink code.

use crate::logic::errno::Error as LogicError;
use crate::logic::nla::Writer;
use core::ffi::{c_int, c_void};
use core::marker::{PhantomData, PhantomPinned};
use kernel::ffi::c_char;
use kernel::prelude::*;

/// Declares an opaque C type that Rust only ever handles by pointer.
macro_rules! opaque {
    ($($(#[$m:meta])* $name:ident;)*) => {$(
        $(#[$m])*
        #[repr(C)]
        pub(crate) struct $name {
            _data: [u8; 0],
            _marker: PhantomData<(*mut u8, PhantomPinned)>,
        }
    )*};
}

opaque! {
    /// `struct genl_info`.
    GenlInfo;
    /// `struct netlink_callback`.
    NetlinkCallback;
    /// `struct sk_buff`.
    SkBuff;
    /// `struct ptcp_net`: the C glue's per-namespace objects (snooped device and hook).
    PtcpNet;
    /// `struct socket`.
    Socket;
    /// `struct sock`.
    Sock;
}

/// Mirrors `struct ptcp_msg` in `permtcp_glue.c`.
#[repr(C)]
struct PtcpMsg {
    skb: *mut SkBuff,
    hdr: *mut c_void,
    buf: *mut u8,
    cap: u32,
}

const _: () = assert!(core::mem::size_of::<PtcpMsg>() == 32);

extern "C" {
    fn ptcp_glue_register() -> c_int;
    fn ptcp_glue_unregister();
    fn ptcp_reply_new(info: *mut GenlInfo, cmd: u8, size: u32, m: *mut PtcpMsg) -> c_int;
    fn ptcp_reply_send(info: *mut GenlInfo, m: *mut PtcpMsg, used: u32) -> c_int;
    fn ptcp_msg_free(m: *mut PtcpMsg);
    fn ptcp_dump_begin(
        skb: *mut SkBuff,
        cb: *mut NetlinkCallback,
        cmd: u8,
        m: *mut PtcpMsg,
    ) -> c_int;
    fn ptcp_dump_commit(m: *mut PtcpMsg, used: u32);
    fn ptcp_dump_cancel(m: *mut PtcpMsg);
    fn ptcp_skb_len(skb: *const SkBuff) -> u32;
    fn ptcp_set_err_msg(info: *mut GenlInfo, msg: *const c_char);
    fn ptcp_snoop_attach(pn: *mut PtcpNet, ifindex: u32) -> c_int;
    fn ptcp_snoop_detach(pn: *mut PtcpNet) -> c_int;
    fn ptcp_snoop_ifindex(pn: *const PtcpNet) -> u32;
    pub(crate) fn ptcp_skb_header(skb: *const SkBuff, buf: *mut u8, len: u32) -> *const u8;
    pub(crate) fn ptcp_skb_copy(skb: *const SkBuff, offset: u32, to: *mut u8, len: u32) -> bool;
    pub(crate) fn ptcp_park_kick(pn: *mut PtcpNet);
    pub(crate) fn ptcp_rst_dropped(pn: *const PtcpNet) -> u64;
    pub(crate) fn ptcp_skb_csum_ok(skb: *mut SkBuff, l4off: u32, ipv6: bool) -> bool;
    fn ptcp_now_ms() -> u64;
    fn ptcp_hook_cost(pn: *const PtcpNet, ns: *mut u64, frames: *mut u64);
}

/// Milliseconds of the kernel's coarse clock (jiffies).
pub(crate) fn now_ms() -> u64 {
    // SAFETY: reads jiffies; no preconditions.
    unsafe { ptcp_now_ms() }
}

/// The C glue's per-namespace objects: the snooped device and its netfilter hook.
///
/// # Invariants
///
/// `0` points to the live `struct ptcp_net` of the namespace whose request is being served.
pub(crate) struct Snooped(*mut PtcpNet);

impl Snooped {
    /// Wraps the `struct ptcp_net` passed to a `doit` handler.
    ///
    /// # Safety
    ///
    /// `pn` must be the handler's namespace's `struct ptcp_net`, valid for the handler.
    pub(crate) unsafe fn new(pn: *mut PtcpNet) -> Self {
        // INVARIANT: guaranteed by the caller.
        Self(pn)
    }

    /// Runs the parking poll now, from the system workqueue.
    pub(crate) fn park_kick(&self) {
        // SAFETY: `self.0` is valid (type invariant); the work item lives in it.
        unsafe { ptcp_park_kick(self.0) }
    }

    /// The raw pointer, for the takeover helpers.
    pub(crate) fn raw(&self) -> *mut PtcpNet {
        self.0
    }

    /// Hooks device `ifindex`; its frames start flowing to the namespace's state.
    pub(crate) fn attach(&self, ifindex: u32) -> Result {
        // SAFETY: `self.0` is valid (type invariant); the C side takes RTNL.
        check(unsafe { ptcp_snoop_attach(self.0, ifindex) })
    }

    /// Unhooks the device; no hook runs once this returns.
    pub(crate) fn detach(&self) -> Result {
        // SAFETY: `self.0` is valid (type invariant); the C side takes RTNL.
        check(unsafe { ptcp_snoop_detach(self.0) })
    }

    /// Nanoseconds spent in the hook and frames it processed since snooping started.
    pub(crate) fn hook_cost(&self) -> (u64, u64) {
        let (mut ns, mut frames) = (0, 0);
        // SAFETY: `self.0` is valid (type invariant); the outputs are valid u64 places.
        unsafe { ptcp_hook_cost(self.0, &mut ns, &mut frames) };
        (ns, frames)
    }

    /// Resets of mirrored connections the LOCAL_OUT hook dropped.
    pub(crate) fn rst_dropped(&self) -> u64 {
        // SAFETY: `self.0` is valid (type invariant).
        unsafe { ptcp_rst_dropped(self.0) }
    }

    /// The snooped device, 0 when none.
    pub(crate) fn ifindex(&self) -> u32 {
        // SAFETY: `self.0` is valid (type invariant).
        unsafe { ptcp_snoop_ifindex(self.0) }
    }
}

/// Converts a C return value (0 or a negative errno) into a `Result`.
fn check(ret: c_int) -> Result {
    if ret < 0 {
        Err(Error::from_errno(ret))
    } else {
        Ok(())
    }
}

/// The module's registrations: per-netns state, then the generic netlink family.
///
/// # Invariants
///
/// While a value exists, `ptcp_glue_register()` has succeeded and has not been undone.
pub(crate) struct Registration(());

impl Registration {
    /// Registers the per-netns operations and the `permtcp` family.
    pub(crate) fn new() -> Result<Self> {
        // SAFETY: called once from module init; on failure nothing stays registered.
        check(unsafe { ptcp_glue_register() })?;
        // INVARIANT: registration succeeded.
        Ok(Self(()))
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        // SAFETY: by the type invariant the registrations are in place; this undoes them once.
        unsafe { ptcp_glue_unregister() };
    }
}

/// A generic netlink request being served: the `struct genl_info` of a `doit` handler.
///
/// # Invariants
///
/// `info` points to the valid `struct genl_info` of the request being handled for the whole
/// lifetime `'a` (the handler's duration).
pub(crate) struct Request<'a> {
    info: *mut GenlInfo,
    _p: PhantomData<&'a GenlInfo>,
}

impl<'a> Request<'a> {
    /// Wraps the `struct genl_info` a `doit` handler received.
    ///
    /// # Safety
    ///
    /// `info` must be valid for the duration of `'a`, i.e. the handler invocation.
    pub(crate) unsafe fn new(info: *mut GenlInfo) -> Self {
        // INVARIANT: guaranteed by the caller.
        Self {
            info,
            _p: PhantomData,
        }
    }

    /// Sets the extended-ACK message of the error returned for this request.
    pub(crate) fn set_err_msg(&self, e: &LogicError) {
        // SAFETY: `info` is valid (type invariant); the message is `'static`, as extack requires.
        unsafe { ptcp_set_err_msg(self.info, e.msg.as_char_ptr()) };
    }

    /// Builds a reply of command `cmd` with room for `size` bytes of attributes, filled by
    /// `fill`, and sends it.
    pub(crate) fn reply(
        &self,
        cmd: u8,
        size: u32,
        fill: impl FnOnce(&mut Writer<'_>) -> core::result::Result<(), LogicError>,
    ) -> core::result::Result<(), LogicError> {
        let mut m = PtcpMsg {
            skb: core::ptr::null_mut(),
            hdr: core::ptr::null_mut(),
            buf: core::ptr::null_mut(),
            cap: 0,
        };
        // SAFETY: `info` is valid (type invariant) and `m` is a valid place to fill.
        check(unsafe { ptcp_reply_new(self.info, cmd, size, &mut m) }).map_err(to_logic)?;
        // SAFETY: on success the C helper made `m.buf` point to `m.cap` writable tailroom bytes
        // of `m.skb`, which we own exclusively until it is sent or freed below.
        let buf = unsafe { core::slice::from_raw_parts_mut(m.buf, m.cap as usize) };
        let mut w = Writer::new(buf);
        if let Err(e) = fill(&mut w) {
            // SAFETY: `m.skb` is owned by us and not sent.
            unsafe { ptcp_msg_free(&mut m) };
            return Err(e);
        }
        let used = w.len() as u32;
        // SAFETY: `used <= m.cap` by the writer's invariant; the call consumes `m.skb`.
        check(unsafe { ptcp_reply_send(self.info, &mut m, used) }).map_err(to_logic)
    }
}

fn to_logic(e: Error) -> LogicError {
    use crate::logic::errno::code;
    match -e.to_errno() {
        code::ENOMEM => LogicError::new(code::ENOMEM, c"out of memory"),
        _ => LogicError::new(code::EMSGSIZE, c"reply does not fit the message"),
    }
}

/// A dump in progress: netlink's skb for this round and the callback state.
///
/// # Invariants
///
/// `skb` and `cb` are the valid arguments of the running `dumpit` call for `'a`.
pub(crate) struct Dump<'a> {
    skb: *mut SkBuff,
    cb: *mut NetlinkCallback,
    _p: PhantomData<&'a SkBuff>,
}

/// Why a dump round stopped adding messages.
pub(crate) enum DumpStop {
    /// The skb is full; netlink calls the dump again for the rest.
    Full,
    /// A real error.
    Error(LogicError),
}

impl<'a> Dump<'a> {
    /// Wraps the arguments of a `dumpit` call.
    ///
    /// # Safety
    ///
    /// `skb` and `cb` must be valid for the duration of `'a`, the dump call.
    pub(crate) unsafe fn new(skb: *mut SkBuff, cb: *mut NetlinkCallback) -> Self {
        // INVARIANT: guaranteed by the caller.
        Self {
            skb,
            cb,
            _p: PhantomData,
        }
    }

    /// Appends one multipart message of command `cmd` whose attributes `fill` writes.
    pub(crate) fn add(
        &mut self,
        cmd: u8,
        fill: impl FnOnce(&mut Writer<'_>) -> core::result::Result<(), LogicError>,
    ) -> core::result::Result<(), DumpStop> {
        let mut m = PtcpMsg {
            skb: core::ptr::null_mut(),
            hdr: core::ptr::null_mut(),
            buf: core::ptr::null_mut(),
            cap: 0,
        };
        // SAFETY: `skb` and `cb` are valid (type invariant); `m` is a valid place to fill.
        if unsafe { ptcp_dump_begin(self.skb, self.cb, cmd, &mut m) } < 0 {
            return Err(DumpStop::Full);
        }
        // SAFETY: on success `m.buf` points to `m.cap` bytes of tailroom of the dump skb that
        // nothing else writes while this round runs.
        let buf = unsafe { core::slice::from_raw_parts_mut(m.buf, m.cap as usize) };
        let mut w = Writer::new(buf);
        match fill(&mut w) {
            Ok(()) => {
                let used = w.len() as u32;
                // SAFETY: the message was begun above and `used <= m.cap`.
                unsafe { ptcp_dump_commit(&mut m, used) };
                Ok(())
            }
            Err(e) => {
                // SAFETY: the message was begun above and is not committed.
                unsafe { ptcp_dump_cancel(&mut m) };
                if e.errno == crate::logic::errno::code::EMSGSIZE {
                    Err(DumpStop::Full)
                } else {
                    Err(DumpStop::Error(e))
                }
            }
        }
    }

    /// Bytes in this round's skb (the value `dumpit` returns to continue).
    pub(crate) fn len(&self) -> u32 {
        // SAFETY: `skb` is valid (type invariant).
        unsafe { ptcp_skb_len(self.skb) }
    }
}
