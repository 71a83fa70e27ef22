// SPDX-License-Identifier: GPL-2.0

//! The C edge, Rust side: every function of the C glue (`permtcp_glue.c`), declared once and
//! wrapped in one safe type per C object.
//!
//! In the style of `rust/kernel/net/phy.rs`: each C object the module touches has exactly one
//! wrapper with one `from_raw` constructor, and the methods of that wrapper are the only
//! places its C functions are called:
//!
//! | C object              | Wrapper       | What it offers                                    |
//! |-----------------------|---------------|---------------------------------------------------|
//! | module registrations  | [`Registration`] | pernet ops, netdevice notifier, genl family     |
//! | `struct genl_info`    | [`Request`]   | a `doit` request: its reply and extack message      |
//! | dump skb + callback   | [`Dump`]      | one round of a `dumpit`: multipart messages         |
//! | `struct ptcp_net`     | [`Net`]       | the namespace's device hook, packets, listeners     |
//! | `struct sk_buff`      | [`Skb`]       | a frame being processed: header, copy, checksum     |
//! | `struct socket`       | [`KernelSocket`] | a kernel TCP socket in repair mode               |
//! | `struct sock`         | [`Detached`]  | a rebuilt connection on its way to `accept()`       |
//!
//! The entry points C calls into Rust (`permtcp_rs_*`) are all in `adapter.rs`. Together the
//! two files are the module's only `unsafe` code (`make lint` counts it).
//!
//! Kernel constants come from the generated bindings (`kernel::bindings`); the TCP-level
//! socket options and `struct tcp_repair_*` that the bindings do not include are exported
//! by the C glue from the kernel's own headers ([`TcpAbi`]).

use crate::logic::errno::{code, Error as LogicError};
use crate::logic::nla::Writer;
use crate::logic::packet::{parse_in_place, Addr, Segment, Skip, HEADER_MAX};
use crate::logic::seqbuf::{ChunkMem, FrameRef, Payload, RawFrame, CHUNK};
use crate::logic::snoop::FlowKey;
use core::cell::Cell;
use core::ffi::{c_int, c_void};
use core::marker::{PhantomData, PhantomPinned};
use core::mem::MaybeUninit;
use core::ptr::NonNull;
use kernel::bindings;
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
    /// `struct ptcp_net`: the C glue's per-namespace objects (snooped device and hooks).
    PtcpNet;
    /// `struct ptcp_par`: work queued on another CPU ([`join`]).
    Par;
    /// `struct socket`.
    Socket;
    /// `struct sock`.
    Sock;
}

/// Mirrors `struct ptcp_msg` in `include/permtcp/glue.h`.
#[repr(C)]
struct PtcpMsg {
    skb: *mut SkBuff,
    hdr: *mut c_void,
    buf: *mut u8,
    cap: u32,
}

const _: () = assert!(core::mem::size_of::<PtcpMsg>() == 32);

impl PtcpMsg {
    const fn empty() -> Self {
        PtcpMsg {
            skb: core::ptr::null_mut(),
            hdr: core::ptr::null_mut(),
            buf: core::ptr::null_mut(),
            cap: 0,
        }
    }
}

/// What the hooks read of a frame once, in C: `struct ptcp_frame` in
/// `include/permtcp/glue.h` ([`Skb`] keeps it).
#[repr(C)]
#[derive(Clone, Copy)]
pub(crate) struct FrameFacts {
    /// `skb->data`: the network header at the hooks.
    data: *const u8,
    /// `skb_headlen()`: bytes of it in place from `data`.
    headlen: u32,
    /// `skb->len`, from the network header.
    len: u32,
    /// `skb->truesize`.
    truesize: u32,
    /// `skb_is_gso()`.
    gso: bool,
    /// The device or a local sender vouches for the checksum (`CHECKSUM_UNNECESSARY`, or
    /// `CHECKSUM_PARTIAL`, which cannot be checked).
    csum_verified: bool,
}

const _: () = assert!(core::mem::size_of::<FrameFacts>() == 24);
const _: () = assert!(core::mem::offset_of!(FrameFacts, csum_verified) == 21);

/// The TCP socket-option ABI from `<uapi/linux/tcp.h>` and `<net/tcp.h>`, which the Rust
/// bindings do not include: `struct ptcp_tcp_abi` in `include/permtcp/glue.h`, filled by
/// the C glue from the kernel's own definitions.
#[repr(C)]
pub(crate) struct TcpAbi {
    pub(crate) maxseg: c_int,
    pub(crate) repair: c_int,
    pub(crate) repair_queue: c_int,
    pub(crate) queue_seq: c_int,
    pub(crate) repair_options: c_int,
    pub(crate) timestamp: c_int,
    pub(crate) repair_window: c_int,
    pub(crate) recv_queue: c_int,
    pub(crate) send_queue: c_int,
    pub(crate) opt_mss: u32,
    pub(crate) opt_window: u32,
    pub(crate) opt_sack_perm: u32,
    pub(crate) opt_timestamp: u32,
    pub(crate) repair_window_size: u32,
    pub(crate) repair_opt_size: u32,
    pub(crate) repair_off_no_wp: c_int,
}

const _: () = assert!(core::mem::size_of::<TcpAbi>() == 64);

/// `struct tcp_repair_window` (its size is checked against [`TcpAbi::repair_window_size`]).
#[repr(C)]
pub(crate) struct RepairWindow {
    pub(crate) snd_wl1: u32,
    pub(crate) snd_wnd: u32,
    pub(crate) max_window: u32,
    pub(crate) rcv_wnd: u32,
    pub(crate) rcv_wup: u32,
}

/// `struct tcp_repair_opt` (its size is checked against [`TcpAbi::repair_opt_size`]).
#[repr(C)]
#[derive(Clone, Copy)]
pub(crate) struct RepairOpt {
    pub(crate) code: u32,
    pub(crate) val: u32,
}

extern "C" {
    static ptcp_tcp_abi: TcpAbi;
    fn ptcp_glue_register() -> c_int;
    fn ptcp_glue_unregister();
    fn ptcp_reply_new(info: *mut GenlInfo, cmd: u8, size: u32, m: *mut PtcpMsg) -> c_int;
    fn ptcp_reply_send(info: *mut GenlInfo, m: *mut PtcpMsg, used: u32) -> c_int;
    fn ptcp_msg_free(m: *mut PtcpMsg);
    fn ptcp_notify_new(pn: *mut PtcpNet, cmd: u8, size: u32, m: *mut PtcpMsg) -> c_int;
    fn ptcp_notify_send(pn: *mut PtcpNet, m: *mut PtcpMsg, used: u32) -> c_int;
    fn ptcp_now_ns() -> u64;
    fn ptcp_skb_src_mac(skb: *const SkBuff, mac: *mut u8) -> bool;
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
    fn ptcp_net_initial_userns(pn: *const PtcpNet) -> bool;
    fn ptcp_views_allowed(pn: *const PtcpNet) -> bool;
    fn ptcp_skb_header(skb: *const SkBuff, buf: *mut u8, len: u32) -> *const u8;
    fn ptcp_skb_copy(skb: *const SkBuff, offset: u32, to: *mut u8, len: u32) -> bool;
    fn ptcp_skb_otherhost(skb: *const SkBuff) -> bool;
    fn ptcp_skb_conn_sock(
        skb: *const SkBuff,
        local: *const u8,
        lport: u16,
        remote: *const u8,
        rport: u16,
        ipv6: bool,
    ) -> bool;
    fn ptcp_skb_set_host(skb: *mut SkBuff);
    fn ptcp_skb_l4_sum(skb: *const SkBuff, off: u32, len: u32, sw: bool, sum: *mut u16) -> c_int;
    fn ptcp_park_kick(pn: *mut PtcpNet);
    fn ptcp_rst_dropped(pn: *const PtcpNet) -> u64;
    fn ptcp_now_ms() -> u64;
    fn ptcp_hook_cost(pn: *const PtcpNet, ns: *mut u64, frames: *mut u64, kept: *mut u64);
    fn ptcp_ct_cost(pn: *const PtcpNet, ns: *mut u64, frames: *mut u64);
    fn ptcp_sock_new(pn: *mut PtcpNet, ipv6: bool, res: *mut *mut Socket) -> c_int;
    fn ptcp_sock_setopt(
        sock: *mut Socket,
        level: c_int,
        opt: c_int,
        val: *const c_void,
        len: u32,
    ) -> c_int;
    fn ptcp_sock_bind(sock: *mut Socket, addr: *const u8, port: u16, ipv6: bool) -> c_int;
    fn ptcp_sock_connect(sock: *mut Socket, addr: *const u8, port: u16, ipv6: bool) -> c_int;
    fn ptcp_sock_send(sock: *mut Socket, data: *const u8, len: u32) -> c_int;
    fn ptcp_sock_release(sock: *mut Socket);
    fn ptcp_sock_set_sndbuf(sock: *mut Socket, bytes: c_int);
    fn ptcp_sock_seed_rtt(sock: *mut Socket, srtt_us: u32, rttvar_us: u32);
    fn ptcp_sock_shutdown_wr(sock: *mut Socket) -> c_int;
    fn ptcp_receive_packet(pn: *mut PtcpNet, data: *const u8, len: u32, ipv6: bool) -> c_int;
    fn ptcp_send_packet(
        pn: *mut PtcpNet,
        dst: *const u8,
        data: *const u8,
        len: u32,
        ipv6: bool,
    ) -> c_int;
    fn ptcp_sock_detach(sock: *mut Socket) -> *mut Sock;
    fn ptcp_sock_close_detached(sk: *mut Sock);
    fn ptcp_sock_cookie(sk: *mut Sock) -> u64;
    fn ptcp_kvfree_rcu(p: *mut c_void);
    fn ptcp_pcpu_alloc(n: u32) -> *mut u64;
    fn ptcp_pcpu_free(p: *mut u64);
    fn ptcp_pcpu_inc(p: *mut u64, i: u32);
    fn ptcp_pcpu_sum(p: *mut u64, i: u32) -> u64;
    fn ptcp_born(lsk: *mut Sock, b: *const BirthC, child: *mut *mut Sock) -> c_int;
    fn ptcp_born_enabled() -> bool;
    fn ptcp_par_start(f: unsafe extern "C" fn(arg: *mut c_void), arg: *mut c_void) -> *mut Par;
    fn ptcp_par_wait(p: *mut Par);
    fn ptcp_zerocopy_enabled() -> bool;
    fn ptcp_skb_hold(skb: *mut SkBuff) -> *mut SkBuff;
    fn ptcp_skb_keep(skb: *mut SkBuff) -> *mut SkBuff;
    fn ptcp_skb_get(skb: *mut SkBuff);
    fn ptcp_skb_put(skb: *mut SkBuff);
    fn ptcp_announce(pn: *mut PtcpNet, addr: *const u8, ipv6: bool) -> c_int;
    fn ptcp_listener(
        pn: *mut PtcpNet,
        vip: *const u8,
        port: u16,
        client: *const u8,
        cport: u16,
        ipv6: bool,
        family: *mut c_int,
        shared: *mut bool,
    ) -> *mut Sock;
    fn ptcp_listener_put(lsk: *mut Sock);
    fn ptcp_listener_room(lsk: *const Sock) -> u32;
    fn ptcp_inject_batch(lsk: *mut Sock, children: *mut *mut Sock, n: u32) -> u32;
    fn ptcp_binding_conns(
        pn: *mut PtcpNet,
        addr: *const u8,
        port: u16,
        ipv6: bool,
        out: *mut ConnKey,
        max: c_int,
    ) -> c_int;
    fn ptcp_conn_lock(
        pn: *mut PtcpNet,
        k: *const ConnKey,
        ipv6: bool,
        out: *mut SockSeqs,
    ) -> *mut Sock;
    fn ptcp_conn_unlock(sk: *mut Sock);
    fn ptcp_conn_abort(pn: *mut PtcpNet, k: *const ConnKey, ipv6: bool) -> c_int;
}

/// A connection's key as the C glue takes it: `struct ptcp_conn_key` (the service end is
/// local).
#[repr(C)]
#[derive(Clone, Copy, Default)]
pub(crate) struct ConnKey {
    laddr: [u8; 16],
    raddr: [u8; 16],
    lport: u16,
    rport: u16,
}

impl ConnKey {
    fn of(k: &FlowKey) -> Self {
        ConnKey {
            laddr: k.owner_addr.0,
            raddr: k.client_addr.0,
            lport: k.owner_port,
            rport: k.client_port,
        }
    }

    pub(crate) fn key(&self) -> FlowKey {
        FlowKey {
            owner_addr: crate::logic::packet::Addr(self.laddr),
            owner_port: self.lport,
            client_addr: crate::logic::packet::Addr(self.raddr),
            client_port: self.rport,
        }
    }
}

/// A connection's socket, locked with `lock_sock()`, and where it stood when locked.
///
/// # Invariants
///
/// `sk` is a full TCP socket this guard holds a reference to and has locked; dropping the
/// guard unlocks it and puts the reference.
pub(crate) struct LockedConn {
    sk: NonNull<Sock>,
    /// Where the socket stood.
    pub(crate) seqs: SockSeqs,
}

impl Drop for LockedConn {
    fn drop(&mut self) {
        // SAFETY: `sk` is locked by this guard and referenced (type invariant); this ends
        // both, once.
        unsafe { ptcp_conn_unlock(self.sk.as_ptr()) };
    }
}

/// Where a connection's socket stands: `struct ptcp_conn_seqs`.
#[repr(C)]
#[derive(Clone, Copy, Default)]
pub(crate) struct SockSeqs {
    pub(crate) snd_nxt: u32,
    pub(crate) snd_una: u32,
    pub(crate) write_seq: u32,
    pub(crate) rcv_nxt: u32,
    pub(crate) isn: u32,
    pub(crate) client_isn: u32,
    pub(crate) snd_wnd: u32,
    pub(crate) rcv_wnd: u32,
    pub(crate) client_mss: u16,
    pub(crate) snd_wscale: u8,
    pub(crate) rcv_wscale: u8,
    pub(crate) wscale_ok: bool,
    pub(crate) sack_ok: bool,
    pub(crate) tstamp_ok: bool,
    pub(crate) established: bool,
}

impl SockSeqs {
    /// What a mirror seeded from the socket starts from.
    pub(crate) fn snapshot(&self) -> crate::logic::handoff::Snapshot {
        crate::logic::handoff::Snapshot {
            snd_nxt: self.snd_nxt,
            snd_una: self.snd_una,
            rcv_nxt: self.rcv_nxt,
            isn: self.isn,
            client_isn: self.client_isn,
            snd_wnd: self.snd_wnd,
            rcv_wnd: self.rcv_wnd,
            client_mss: self.client_mss,
            wscale: self.wscale_ok.then_some((self.snd_wscale, self.rcv_wscale)),
            sack: self.sack_ok,
            ts: self.tstamp_ok,
        }
    }
}

/// The TCP socket-option numbers and repair struct sizes of the running kernel.
pub(crate) fn tcp_abi() -> &'static TcpAbi {
    // SAFETY: `ptcp_tcp_abi` is a `const` object of the C glue, initialised at compile time
    // and never written: a shared reference to it is valid for the module's lifetime.
    unsafe { &*core::ptr::addr_of!(ptcp_tcp_abi) }
}

/// Milliseconds of the kernel's coarse clock (jiffies).
pub(crate) fn now_ms() -> u64 {
    // SAFETY: reads jiffies; no preconditions.
    unsafe { ptcp_now_ms() }
}

/// Runs `a` here and `b` at the same time on another online CPU (in a kworker of the
/// system's high-priority workqueue), and returns once both have run: `rayon::join` for the
/// kernel, for work that sleeps (GFP_KERNEL allocations). With one CPU online, or without
/// memory for the work item, `b` runs here after `a`.
pub(crate) fn join(a: impl FnOnce(), b: impl FnOnce() + Send) {
    /// Runs the closure `arg` points to, once.
    ///
    /// # Safety
    ///
    /// `arg` points to an `Option<F>` that nothing else uses until this returns.
    unsafe extern "C" fn run<F: FnOnce()>(arg: *mut c_void) {
        // SAFETY: per the contract, the option is ours for the call.
        let f = unsafe { &mut *arg.cast::<Option<F>>() };
        if let Some(f) = f.take() {
            f();
        }
    }
    fn start<F: FnOnce() + Send>(job: &mut Option<F>) -> *mut Par {
        // SAFETY: `run::<F>` takes the `Option<F>` it is given, which `join` keeps alive and
        // leaves alone until `ptcp_par_wait` has returned: the work has run by then. `F` is
        // `Send`: it may run on another thread.
        unsafe { ptcp_par_start(run::<F>, core::ptr::from_mut(job).cast()) }
    }
    let mut job = Some(b);
    let par = start(&mut job);
    a();
    if !par.is_null() {
        // SAFETY: `par` was queued above and is waited for once.
        unsafe { ptcp_par_wait(par) };
    }
    // Not queued (one CPU, no memory): it runs here.
    if let Some(b) = job.take() {
        b();
    }
}

/// Nanoseconds of the monotonic clock, read from the clocksource.
pub(crate) fn now_ns() -> u64 {
    // SAFETY: reads the clock; no preconditions.
    unsafe { ptcp_now_ns() }
}

/// What the LOCAL_OUT hook does with a segment this host sends: `enum ptcp_out_verdict`.
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum OutVerdict {
    /// Sent.
    Accept = 0,
    /// Dropped: a reset of a connection mirrored here or being rebuilt.
    DropReset = 1,
    /// Dropped: from this node's own bindings while its lease has run out.
    DropFenced = 2,
    /// Dropped: of a connection held for a planned handoff.
    DropHeld = 3,
}

/// Converts a C return value (a count or a negative errno) into a `Result`.
fn check(ret: c_int) -> Result<c_int> {
    if ret < 0 {
        Err(Error::from_errno(ret))
    } else {
        Ok(ret)
    }
}

/// The module's registrations: per-netns state, the netdevice notifier, then the generic
/// netlink family.
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

/// Maps a failed message allocation or send to the request's error.
fn msg_error(e: Error) -> LogicError {
    match -e.to_errno() {
        code::ENOMEM => LogicError::new(code::ENOMEM, c"out of memory"),
        _ => LogicError::new(code::EMSGSIZE, c"reply does not fit the message"),
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
    pub(crate) unsafe fn from_raw(info: *mut GenlInfo) -> Self {
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
        let mut m = PtcpMsg::empty();
        // SAFETY: `info` is valid (type invariant) and `m` is a valid place to fill.
        check(unsafe { ptcp_reply_new(self.info, cmd, size, &mut m) }).map_err(msg_error)?;
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
        check(unsafe { ptcp_reply_send(self.info, &mut m, used) })
            .map(|_| ())
            .map_err(msg_error)
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

impl<'a> Dump<'a> {
    /// Wraps the arguments of a `dumpit` call.
    ///
    /// # Safety
    ///
    /// `skb` and `cb` must be valid for the duration of `'a`, the dump call.
    pub(crate) unsafe fn from_raw(skb: *mut SkBuff, cb: *mut NetlinkCallback) -> Self {
        // INVARIANT: guaranteed by the caller.
        Self {
            skb,
            cb,
            _p: PhantomData,
        }
    }

    /// Appends one multipart message of command `cmd` whose attributes `fill` writes:
    /// `Ok(false)` when this round's skb is full (netlink calls the dump again for the rest).
    pub(crate) fn add(
        &mut self,
        cmd: u8,
        fill: impl FnOnce(&mut Writer<'_>) -> core::result::Result<(), LogicError>,
    ) -> core::result::Result<bool, LogicError> {
        let mut m = PtcpMsg::empty();
        // SAFETY: `skb` and `cb` are valid (type invariant); `m` is a valid place to fill.
        if unsafe { ptcp_dump_begin(self.skb, self.cb, cmd, &mut m) } < 0 {
            return Ok(false);
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
                Ok(true)
            }
            Err(e) => {
                // SAFETY: the message was begun above and is not committed.
                unsafe { ptcp_dump_cancel(&mut m) };
                if e.errno == code::EMSGSIZE {
                    Ok(false)
                } else {
                    Err(e)
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

/// A listener's address family.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum ListenerFamily {
    /// An IPv4 listener.
    V4,
    /// An IPv6 listener (dual-stack or not).
    V6,
}

/// The C glue's per-namespace objects: the snooped device, its hooks, the parking poll.
///
/// # Invariants
///
/// `pn` points to the live `struct ptcp_net` of a namespace for the whole lifetime `'a` (a
/// handler's, a hook's or the parking poll's duration).
pub(crate) struct Net<'a> {
    pn: *mut PtcpNet,
    _p: PhantomData<&'a PtcpNet>,
}

impl<'a> Net<'a> {
    /// Wraps the `struct ptcp_net` a handler, hook or work item was given.
    ///
    /// # Safety
    ///
    /// `pn` must be a namespace's live `struct ptcp_net` for the duration of `'a`.
    pub(crate) unsafe fn from_raw(pn: *mut PtcpNet) -> Self {
        // INVARIANT: guaranteed by the caller.
        Self {
            pn,
            _p: PhantomData,
        }
    }

    /// Hooks device `ifindex`; its frames start flowing to the namespace's state.
    pub(crate) fn attach(&self, ifindex: u32) -> Result {
        // SAFETY: `pn` is valid (type invariant); the C side takes RTNL.
        check(unsafe { ptcp_snoop_attach(self.pn, ifindex) }).map(|_| ())
    }

    /// Unhooks the device; no hook runs once this returns.
    pub(crate) fn detach(&self) -> Result {
        // SAFETY: `pn` is valid (type invariant); the C side takes RTNL.
        check(unsafe { ptcp_snoop_detach(self.pn) }).map(|_| ())
    }

    /// The snooped device, 0 when none.
    pub(crate) fn ifindex(&self) -> u32 {
        // SAFETY: `pn` is valid (type invariant).
        unsafe { ptcp_snoop_ifindex(self.pn) }
    }

    /// Whether the namespace belongs to the initial user namespace.
    pub(crate) fn initial_userns(&self) -> bool {
        // SAFETY: `pn` is valid (type invariant).
        unsafe { ptcp_net_initial_userns(self.pn) }
    }

    /// Whether the mirror may hold frames by reference for the calling task (zero-copy
    /// retention): only where nothing would be charged to a memory cgroup for them (a
    /// namespace of the initial user namespace, a caller in the root memory cgroup).
    pub(crate) fn views_allowed(&self) -> bool {
        // SAFETY: `pn` is valid (type invariant); called in the caller's task.
        unsafe { ptcp_views_allowed(self.pn) }
    }

    /// Nanoseconds spent in the hook and frames it processed since snooping started.
    pub(crate) fn hook_cost(&self) -> (u64, u64, u64) {
        let (mut ns, mut frames, mut kept) = (0, 0, 0);
        // SAFETY: `pn` is valid (type invariant); the outputs are valid u64 places.
        unsafe { ptcp_hook_cost(self.pn, &mut ns, &mut frames, &mut kept) };
        (ns, frames, kept)
    }

    /// Nanoseconds Linux conntrack spent on the frames the `permtcp.ctprobe` probes timed in
    /// this namespace, and how many: (0, 0) without the probes.
    pub(crate) fn ct_cost(&self) -> (u64, u64) {
        let (mut ns, mut frames) = (0, 0);
        // SAFETY: `pn` is valid (type invariant); the outputs are valid u64 places.
        unsafe { ptcp_ct_cost(self.pn, &mut ns, &mut frames) };
        (ns, frames)
    }

    /// Resets of mirrored connections the LOCAL_OUT hook dropped.
    pub(crate) fn rst_dropped(&self) -> u64 {
        // SAFETY: `pn` is valid (type invariant).
        unsafe { ptcp_rst_dropped(self.pn) }
    }

    /// Runs the parking poll now, from the system workqueue.
    pub(crate) fn park_kick(&self) {
        // SAFETY: `pn` is valid (type invariant); the work item lives in it.
        unsafe { ptcp_park_kick(self.pn) }
    }

    /// Tells the link that `addr` now lives at the snooped device's MAC (gratuitous ARP or
    /// unsolicited neighbour advertisement). `ENODEV` when not snooping.
    pub(crate) fn announce(&self, addr: &Addr) -> Result {
        let v6 = addr.as_v4().is_none();
        // SAFETY: `pn` is valid (type invariant); `addr` is 16 readable bytes.
        check(unsafe { ptcp_announce(self.pn, addr.0.as_ptr(), v6) }).map(|_| ())
    }

    /// Sends the complete IP packet `pkt` (header included) to `dst` through a raw socket.
    pub(crate) fn send_packet(&self, dst: &Addr, pkt: &[u8], v6: bool) -> Result {
        let len = pkt.len() as u32;
        // SAFETY: `pn` is valid (type invariant); `dst` is 16 readable bytes and `pkt` holds
        // `len` readable bytes.
        check(unsafe { ptcp_send_packet(self.pn, dst.0.as_ptr(), pkt.as_ptr(), len, v6) })
            .map(|_| ())
    }

    /// Feeds the complete IP packet `pkt` to the stack as if the snooped device received it.
    pub(crate) fn receive_packet(&self, pkt: &[u8], v6: bool) -> Result {
        let len = pkt.len() as u32;
        // SAFETY: `pn` is valid (type invariant); `pkt` holds `len` readable bytes.
        check(unsafe { ptcp_receive_packet(self.pn, pkt.as_ptr(), len, v6) }).map(|_| ())
    }

    /// The listener connection `k` would reach (an IPv6 one when `v6`, or a dual-stack
    /// one), if there is one.
    pub(crate) fn listener(&self, k: &FlowKey, v6: bool) -> Option<Listener> {
        let (vip, client) = (k.owner_addr.0.as_ptr(), k.client_addr.0.as_ptr());
        let (mut family, mut shared) = (0, false);
        // SAFETY: `pn` is valid (type invariant); the addresses are 16 readable bytes; the
        // out pointers are valid and written only when a listener is returned.
        let sk = unsafe {
            ptcp_listener(
                self.pn,
                vip,
                k.owner_port,
                client,
                k.client_port,
                v6,
                &mut family,
                &mut shared,
            )
        };
        let family = if family as u32 == bindings::AF_INET {
            ListenerFamily::V4
        } else {
            ListenerFamily::V6
        };
        // INVARIANT: a non-NULL return is a listener whose reference is handed to us.
        NonNull::new(sk).map(|sk| Listener { sk, family, shared })
    }

    /// Up to `out`'s spare capacity of the established connections of binding
    /// `addr`:`port` here, appended to `out`.
    pub(crate) fn binding_conns(&self, addr: &Addr, port: u16, out: &mut KVVec<ConnKey>) {
        let room = out.capacity() - out.len();
        let v6 = addr.as_v4().is_none();
        // SAFETY: `pn` is valid (type invariant); `addr` is 16 readable bytes; the spare
        // capacity of `out` has room for `room` keys, which the C function writes at most.
        let n = unsafe {
            ptcp_binding_conns(
                self.pn,
                addr.0.as_ptr(),
                port,
                v6,
                out.as_mut_ptr().add(out.len()),
                room.min(c_int::MAX as usize) as c_int,
            )
        };
        // SAFETY: the C function initialised `n` (at most `room`) keys past the length.
        unsafe { out.inc_len(n.max(0) as usize) };
    }

    /// The socket of connection `k`, locked (its application can neither write nor read,
    /// its timers and incoming segments wait) until the guard is dropped; `None` when there
    /// is none.
    pub(crate) fn lock_conn(&self, k: &FlowKey) -> Option<LockedConn> {
        let mut seqs = SockSeqs::default();
        let ck = ConnKey::of(k);
        // SAFETY: `pn` is valid (type invariant); `ck` and `seqs` are valid for the call.
        let sk = unsafe { ptcp_conn_lock(self.pn, &ck, k.owner_addr.as_v4().is_none(), &mut seqs) };
        // INVARIANT: a non-NULL return is a locked socket we hold a reference to.
        NonNull::new(sk).map(|sk| LockedConn { sk, seqs })
    }

    /// Aborts the socket of connection `k` here (its application sees ECONNABORTED).
    pub(crate) fn abort_conn(&self, k: &FlowKey) -> Result {
        let ck = ConnKey::of(k);
        // SAFETY: `pn` is valid (type invariant); `ck` is valid for the call.
        check(unsafe { ptcp_conn_abort(self.pn, &ck, k.owner_addr.as_v4().is_none()) }).map(|_| ())
    }

    /// Multicasts a notification of command `cmd` with room for `size` bytes of attributes,
    /// filled by `fill`, to the namespace's `events` group; does nothing when nobody listens.
    pub(crate) fn notify(
        &self,
        cmd: u8,
        size: u32,
        fill: impl FnOnce(&mut Writer<'_>) -> core::result::Result<(), LogicError>,
    ) -> core::result::Result<(), LogicError> {
        let mut m = PtcpMsg::empty();
        // SAFETY: `pn` is valid (type invariant) and `m` is a valid place to fill.
        match check(unsafe { ptcp_notify_new(self.pn, cmd, size, &mut m) }) {
            Err(e) if e == ENOENT => return Ok(()),
            r => r.map_err(msg_error)?,
        };
        // SAFETY: on success `m.buf` points to `m.cap` writable tailroom bytes of `m.skb`,
        // which we own exclusively until it is sent or freed below.
        let buf = unsafe { core::slice::from_raw_parts_mut(m.buf, m.cap as usize) };
        let mut w = Writer::new(buf);
        if let Err(e) = fill(&mut w) {
            // SAFETY: `m.skb` is owned by us and not sent.
            unsafe { ptcp_msg_free(&mut m) };
            return Err(e);
        }
        let used = w.len() as u32;
        // SAFETY: `used <= m.cap` by the writer's invariant; the call consumes `m.skb`. A
        // multicast nobody receives any more (ESRCH) is no error.
        match check(unsafe { ptcp_notify_send(self.pn, &mut m, used) }) {
            Err(e) if e != ESRCH => Err(msg_error(e)),
            _ => Ok(()),
        }
    }

    /// A new kernel TCP socket in this namespace (IPv6 when `v6`).
    pub(crate) fn socket(&self, v6: bool) -> Result<KernelSocket> {
        let mut s = core::ptr::null_mut();
        // SAFETY: `pn` is valid (type invariant); `s` is a valid out pointer.
        check(unsafe { ptcp_sock_new(self.pn, v6, &mut s) })?;
        // INVARIANT: created above, owned from here on.
        NonNull::new(s).map(KernelSocket).ok_or(ENOMEM)
    }
}

/// A frame being processed by a hook.
///
/// # Invariants
///
/// `skb` points to a valid `struct sk_buff` for the lifetime `'a` (the hook's duration), and
/// `f` holds what the hook read of it ([`FrameFacts`]): `f.headlen` readable bytes at
/// `f.data`, which stay so and unchanged for `'a`.
pub(crate) struct Skb<'a> {
    skb: *mut SkBuff,
    f: FrameFacts,
    /// Whether the mirror keeps the frame itself rather than a clone ([`HeldSkb::of`]).
    keep: Cell<Keep>,
    _p: PhantomData<&'a SkBuff>,
}

/// Whether a frame is kept by the mirror itself ([`HeldSkb::of`]).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Keep {
    /// Not asked yet.
    Unknown,
    /// A view holds the frame itself: the hook gives it to the mirror (`PTCP_FRAME_KEPT`).
    Kept,
    /// Views hold clones: the frame goes on to the stack, or someone else may want it.
    Clone,
}

impl<'a> Skb<'a> {
    /// Wraps the frame a hook is processing.
    ///
    /// # Safety
    ///
    /// `skb` must be valid for the duration of `'a`, and `f` what the C glue's
    /// `ptcp_frame_fill()` read of it when the hook began (the hook pulls nothing: the
    /// network header stays at `skb->data`, and the frame is not changed meanwhile).
    pub(crate) unsafe fn from_raw(skb: *mut SkBuff, f: &FrameFacts) -> Self {
        // INVARIANT: guaranteed by the caller.
        Self {
            skb,
            f: *f,
            keep: Cell::new(Keep::Unknown),
            _p: PhantomData,
        }
    }

    /// Whether a view holds the frame itself ([`HeldSkb::of`]): the hook must then give it
    /// to the mirror (`PTCP_FRAME_KEPT`).
    pub(crate) fn kept(&self) -> bool {
        self.keep.get() == Keep::Kept
    }

    /// The first `min(len, buf.len())` bytes from the network header: in the skb when they
    /// are linear there, else copied into `buf`.
    pub(crate) fn header<'b>(&'b self, buf: &'b mut [MaybeUninit<u8>]) -> Option<&'b [u8]> {
        let n = (self.f.len as usize).min(buf.len());
        // SAFETY: `skb` is valid (type invariant) and `buf` has room for `n` bytes, which
        // skb_header_pointer only writes (it never reads `buf`).
        let p = unsafe { ptcp_skb_header(self.skb, buf.as_mut_ptr().cast(), n as u32) };
        if p.is_null() {
            return None;
        }
        // SAFETY: skb_header_pointer returned `n` readable, initialised bytes: in the skb
        // (valid for `'a`, which outlives `'b`), or copied into `buf` (borrowed for `'b`),
        // all `n` of them, as it returns NULL when it cannot copy them all.
        Some(unsafe { core::slice::from_raw_parts(p, n) })
    }

    /// Its bytes from the network header that are linear (`skb_headlen()`), in place.
    pub(crate) fn linear(&self) -> &'a [u8] {
        if self.f.data.is_null() || self.f.headlen == 0 {
            return &[];
        }
        // SAFETY: `f.headlen` bytes at `f.data` are readable and unchanged for `'a` (type
        // invariant).
        unsafe { core::slice::from_raw_parts(self.f.data, self.f.headlen as usize) }
    }

    /// Parses its IP and TCP headers, read in place when its linear part holds them, else
    /// copied out into `buf` ([`parse_in_place`]).
    pub(crate) fn parse<'b>(
        &'b self,
        buf: &'b mut [MaybeUninit<u8>; HEADER_MAX],
    ) -> core::result::Result<Segment, Skip> {
        parse_in_place(self.linear(), self.f.len as usize, self.f.gso, || {
            self.header(buf)
        })
    }

    /// The Ethernet source address of a received frame, if it has one.
    pub(crate) fn src_mac(&self) -> Option<[u8; 6]> {
        let mut mac = [0u8; 6];
        // SAFETY: `skb` is valid (type invariant); `mac` has room for 6 bytes.
        unsafe { ptcp_skb_src_mac(self.skb, mac.as_mut_ptr()) }.then_some(mac)
    }

    /// Whether the frame was addressed to another host's MAC (`PACKET_OTHERHOST`).
    pub(crate) fn for_other_host(&self) -> bool {
        // SAFETY: `skb` is valid (type invariant).
        unsafe { ptcp_skb_otherhost(self.skb) }
    }

    /// Whether a TCP socket of this host (established or in TIME-WAIT) holds connection
    /// `key`, the service address being the local end.
    pub(crate) fn has_socket(&self, key: &FlowKey) -> bool {
        let v6 = key.owner_addr.as_v4().is_none();
        // SAFETY: `skb` is valid (type invariant); both addresses are 16 readable bytes; the
        // C function only reads.
        unsafe {
            ptcp_skb_conn_sock(
                self.skb,
                key.owner_addr.0.as_ptr(),
                key.owner_port,
                key.client_addr.0.as_ptr(),
                key.client_port,
                v6,
            )
        }
    }

    /// Has this host's stack take the frame although it was addressed to another host's
    /// MAC. Only for the ingress hook's frame, before the IP layer sees it.
    pub(crate) fn deliver_here(&self) {
        // SAFETY: `skb` is valid (type invariant) and the ingress hook owns it while it runs:
        // no one else reads or writes its `pkt_type` concurrently.
        unsafe { ptcp_skb_set_host(self.skb) }
    }

    /// The TCP checksum of the segment at `l4off`, `l4len` bytes long as its IP header says
    /// (not the frame's length, which may include Ethernet padding), checked by `ok` from the
    /// one's-complement sum of those bytes; frames the device or a local sender vouches for
    /// count as right.
    pub(crate) fn csum_ok(&self, l4off: u32, l4len: u32, ok: impl Fn(u16) -> bool) -> bool {
        // As the C function would answer, without the call (nearly every frame).
        if self.f.csum_verified {
            return true;
        }
        let sum = |sw: bool| {
            let mut s = 0u16;
            // SAFETY: `skb` is valid (type invariant) and `s` a valid out pointer; the C
            // function only reads the skb.
            let r = unsafe { ptcp_skb_l4_sum(self.skb, l4off, l4len, sw, &mut s) };
            (r, s)
        };
        // PTCP_CSUM_* in include/permtcp/glue.h.
        match sum(false) {
            (2, _) => true,
            (0, s) => ok(s),
            // The device's sum: if it does not verify, the bytes decide.
            (1, s) => ok(s) || matches!(sum(true), (0, s) if ok(s)),
            _ => false,
        }
    }
}

impl Payload for Skb<'_> {
    fn copy(&self, offset: u32, out: &mut [MaybeUninit<u8>]) -> bool {
        // SAFETY: `skb` is valid (type invariant), and `out` is a writable buffer of
        // `out.len()` bytes (uninitialised bytes may be written); skb_copy_bits checks the
        // range against the skb and writes all of `out` when it returns success.
        unsafe { ptcp_skb_copy(self.skb, offset, out.as_mut_ptr().cast(), out.len() as u32) }
    }

    fn frame(&self) -> Option<FrameRef<'_>> {
        // SAFETY: `RawFrame` is opaque and zero-sized: the reference stands for this `Skb`,
        // borrowed as long as it, as [`HeldSkb::of`] reads it back (in the module, only this
        // makes `RawFrame`s). The truesize and length a view's cost is computed from: the
        // skb's, as the hook passed them (type invariant), without two calls into C per
        // look. The view keeps the cost it was charged ([`Chunk::view`]).
        let frame = unsafe { &*core::ptr::from_ref(self).cast::<RawFrame>() };
        Some(FrameRef::new(frame, self.f.truesize, self.f.len))
    }

    fn goes_on(&self) {
        if self.keep.get() == Keep::Unknown {
            self.keep.set(Keep::Clone);
        }
    }
}

/// A received frame the mirror holds, what views of its payload keep alive (zero-copy
/// retention): a private clone sharing the frame's data, or the frame itself where the
/// ingress hook gives it to the mirror (`ptcp_skb_keep()`: one for another host's MAC, which
/// nothing else wanted).
///
/// # Invariants
///
/// `skb` is a valid `struct sk_buff` that this value holds one reference to; no one writes
/// it or its data (a clone's data is shared read-only, and a kept frame is the mirror's
/// alone once its hook returns).
pub(crate) struct HeldSkb {
    skb: NonNull<SkBuff>,
}

// SAFETY: a reference to an skb may be dropped and its data read on any CPU, in any context.
unsafe impl Send for HeldSkb {}
// SAFETY: shared references only read the frame's data (skb_copy_bits).
unsafe impl Sync for HeldSkb {}

impl HeldSkb {
    /// A hold on the frame `frame` points to (as [`Skb`]'s [`Payload::frame`] gives it):
    /// the frame itself where the ingress hook may give it to the mirror
    /// (`ptcp_skb_keep()`: no `sk_buff` allocated, and none freed later), else a clone
    /// sharing its data; `None` when memory is short.
    pub(crate) fn of(frame: FrameRef<'_>) -> Option<Self> {
        // SAFETY: in the module only `Skb::frame` makes `RawFrame` references, from an
        // `Skb` that lives as long as the reference.
        let frame = unsafe { &*core::ptr::from_ref::<RawFrame>(frame.frame()).cast::<Skb<'_>>() };
        let clone = || {
            // SAFETY: `frame.skb` is valid while `frame` lives (type invariant of `Skb`).
            unsafe { ptcp_skb_hold(frame.skb) }
        };
        let skb = match frame.keep.get() {
            Keep::Kept => {
                // SAFETY: as above; the new reference is the returned value's.
                unsafe { ptcp_skb_get(frame.skb) };
                frame.skb
            }
            Keep::Unknown => {
                // SAFETY: as above; called from the ingress hook (only it makes `Skb`s that
                // chunks hold), under its RCU read lock.
                let kept = unsafe { ptcp_skb_keep(frame.skb) };
                if kept.is_null() {
                    frame.keep.set(Keep::Clone);
                    clone()
                } else {
                    frame.keep.set(Keep::Kept);
                    kept
                }
            }
            Keep::Clone => clone(),
        };
        // INVARIANT: a new reference (to a clone, or to the frame the hook gives up to the
        // mirror), which this value holds.
        NonNull::new(skb).map(|skb| HeldSkb { skb })
    }
}

impl Clone for HeldSkb {
    fn clone(&self) -> Self {
        // SAFETY: `skb` is valid (type invariant); the new value holds the new reference.
        unsafe { ptcp_skb_get(self.skb.as_ptr()) };
        HeldSkb { skb: self.skb }
    }
}

impl Drop for HeldSkb {
    fn drop(&mut self) {
        // SAFETY: this value's reference (type invariant), dropped once.
        unsafe { ptcp_skb_put(self.skb.as_ptr()) };
    }
}

/// Whether large frames are retained by reference (`permtcp.zerocopy`, on by default).
pub(crate) fn zerocopy_enabled() -> bool {
    // SAFETY: reads a module parameter.
    unsafe { ptcp_zerocopy_enabled() }
}

/// A chunk of retained stream data: slab memory that is not zeroed when allocated (the
/// stream's bytes overwrite it), or a view of a held frame's payload (zero-copy retention).
/// A stream is mostly written in order, so a copy keeps a high-water mark of what is
/// initialised; a store beyond it zeroes only the gap (data that arrived out of order), and
/// a load beyond it fails.
///
/// # Invariants
///
/// A copy: the first `init` bytes of `mem` are initialised; `init <= CHUNK`. A view: the
/// chunk's bytes are the frame's `[off, off + len)` (from its network header).
pub(crate) struct Chunk(Kind);

enum Kind {
    Copy {
        mem: KBox<MaybeUninit<[u8; CHUNK]>>,
        init: u16,
    },
    View {
        skb: HeldSkb,
        off: u32,
        len: u32,
        /// What the view was charged
        /// ([`frame_share`](crate::logic::seqbuf::frame_share)), given back as it is:
        /// released without recomputing it (two calls into C and a division, twice per
        /// release).
        cost: u32,
    },
}

// A cost kept in the view keeps the chunk (hence every extent slot) the size it was.
const _: () = assert!(core::mem::size_of::<Chunk>() == 24);

impl Chunk {
    /// A chunk with nothing stored, or `None` when the allocation fails.
    pub(crate) fn new(flags: kernel::alloc::Flags) -> Option<Self> {
        Some(Chunk(Kind::Copy {
            mem: KBox::new_uninit(flags).ok()?,
            init: 0,
        }))
    }

    /// A view of `held`'s bytes `[off, off + len)`, keeping `held`'s reference, charged
    /// `cost` ([`frame_share`](crate::logic::seqbuf::frame_share): at most the frame's
    /// truesize or `len`, which are `u32`s); `None`, dropping `held`, for a cost past
    /// `u32::MAX`, which no frame has.
    pub(crate) fn view(held: HeldSkb, off: u32, len: u32, cost: u64) -> Option<Self> {
        let cost = u32::try_from(cost).ok()?;
        // INVARIANT: the retained stream's bytes of this extent are the frame's from `off`
        // (the caller's, `SeqBuf::store_span`).
        Some(Chunk(Kind::View {
            skb: held,
            off,
            len,
            cost,
        }))
    }
}

impl ChunkMem for Chunk {
    fn store<P: Payload + ?Sized>(&mut self, at: usize, len: usize, src: &P, src_off: u32) -> bool {
        let Some(end) = at.checked_add(len).filter(|&e| e <= CHUNK) else {
            return false;
        };
        // A view is never written: the bytes it covers are all present.
        let Kind::Copy { mem, init } = &mut self.0 else {
            return false;
        };
        // SAFETY: `MaybeUninit<[u8; CHUNK]>` and `[MaybeUninit<u8>; CHUNK]` have the same
        // size and alignment, and any byte of either may be uninitialised.
        let bytes = unsafe { &mut *mem.as_mut_ptr().cast::<[MaybeUninit<u8>; CHUNK]>() };
        let upto_init = usize::from(*init);
        if at > upto_init {
            bytes[upto_init..at].fill(MaybeUninit::new(0));
        }
        let ok = src.copy(src_off, &mut bytes[at..end]);
        // INVARIANT: `[init, at)` was zeroed above; `[at, end)` was written when the copy
        // succeeded. `end <= CHUNK <= u16::MAX`.
        let upto = if ok { end } else { at };
        *init = (*init).max(upto as u16);
        ok
    }

    fn load(&self, at: usize, out: &mut [u8]) -> bool {
        let Some(end) = at.checked_add(out.len()) else {
            return false;
        };
        match &self.0 {
            Kind::Copy { mem, init } if end <= usize::from(*init) => {
                // SAFETY: `[at, end)` lies within the first `init` bytes of `mem`, which are
                // initialised (type invariant), so they may be read as `u8`.
                let src = unsafe {
                    core::slice::from_raw_parts(mem.as_ptr().cast::<u8>().add(at), out.len())
                };
                out.copy_from_slice(src);
                true
            }
            Kind::View { skb, off, len, .. } if end <= *len as usize => {
                // SAFETY: `skb` is valid (HeldSkb's invariant) and `out` a writable buffer of
                // `out.len()` bytes; skb_copy_bits checks the range against the frame.
                unsafe {
                    ptcp_skb_copy(
                        skb.skb.as_ptr(),
                        off + at as u32,
                        out.as_mut_ptr(),
                        out.len() as u32,
                    )
                }
            }
            _ => false,
        }
    }

    fn cost(&self) -> u64 {
        match &self.0 {
            Kind::Copy { .. } => CHUNK as u64,
            Kind::View { cost, .. } => u64::from(*cost),
        }
    }

    fn is_view(&self) -> bool {
        matches!(self.0, Kind::View { .. })
    }
}

/// The options a rebuilt socket is given, by name.
#[derive(Clone, Copy)]
pub(crate) enum SockOpt {
    /// `TCP_REPAIR`: enter (1) or leave (0) repair mode.
    Repair,
    /// `TCP_REPAIR_QUEUE`: which queue the next `QueueSeq` or send fills.
    RepairQueue,
    /// `TCP_QUEUE_SEQ`: the selected queue's sequence number.
    QueueSeq,
    /// `TCP_MAXSEG`.
    MaxSeg,
    /// `TCP_TIMESTAMP`: the timestamp clock's offset.
    Timestamp,
    /// `IP_FREEBIND` or `IPV6_FREEBIND`, by the socket's family.
    FreeBind { v6: bool },
    /// `SO_REUSEADDR`.
    ReuseAddr,
}

/// Which repair queue ([`SockOpt::RepairQueue`]).
#[derive(Clone, Copy)]
pub(crate) enum RepairQueue {
    /// The receive queue.
    Recv,
    /// The send queue.
    Send,
}

/// A kernel TCP socket being rebuilt.
///
/// # Invariants
///
/// `0` is a socket from `ptcp_sock_new` that this value owns.
pub(crate) struct KernelSocket(NonNull<Socket>);

impl KernelSocket {
    fn setopt_raw(&self, level: u32, opt: c_int, val: *const c_void, len: usize) -> Result {
        // SAFETY: the socket is owned (type invariant); the caller passes `val` readable for
        // `len` bytes.
        check(unsafe { ptcp_sock_setopt(self.0.as_ptr(), level as c_int, opt, val, len as u32) })
            .map(|_| ())
    }

    /// Sets an integer option.
    pub(crate) fn set(&self, opt: SockOpt, v: i32) -> Result {
        let t = tcp_abi();
        let (level, opt) = match opt {
            SockOpt::Repair => (bindings::SOL_TCP, t.repair),
            SockOpt::RepairQueue => (bindings::SOL_TCP, t.repair_queue),
            SockOpt::QueueSeq => (bindings::SOL_TCP, t.queue_seq),
            SockOpt::MaxSeg => (bindings::SOL_TCP, t.maxseg),
            SockOpt::Timestamp => (bindings::SOL_TCP, t.timestamp),
            SockOpt::FreeBind { v6: true } => {
                (bindings::SOL_IPV6, bindings::IPV6_FREEBIND as c_int)
            }
            SockOpt::FreeBind { v6: false } => (bindings::SOL_IP, bindings::IP_FREEBIND as c_int),
            SockOpt::ReuseAddr => (bindings::SOL_SOCKET, bindings::SO_REUSEADDR as c_int),
        };
        let val: *const i32 = &v;
        self.setopt_raw(level, opt, val.cast(), core::mem::size_of::<i32>())
    }

    /// Selects the repair queue the next sequence number or send fills.
    pub(crate) fn repair_queue(&self, q: RepairQueue) -> Result {
        let t = tcp_abi();
        let q = match q {
            RepairQueue::Recv => t.recv_queue,
            RepairQueue::Send => t.send_queue,
        };
        self.set(SockOpt::RepairQueue, q)
    }

    /// `TCP_REPAIR_OPTIONS`: the options both SYNs negotiated.
    pub(crate) fn repair_options(&self, opts: &[RepairOpt]) -> Result {
        if tcp_abi().repair_opt_size as usize != core::mem::size_of::<RepairOpt>() {
            return Err(EINVAL);
        }
        let len = core::mem::size_of_val(opts);
        self.setopt_raw(
            bindings::SOL_TCP,
            tcp_abi().repair_options,
            opts.as_ptr().cast(),
            len,
        )
    }

    /// `TCP_REPAIR_WINDOW`.
    pub(crate) fn repair_window(&self, w: &RepairWindow) -> Result {
        if tcp_abi().repair_window_size as usize != core::mem::size_of::<RepairWindow>() {
            return Err(EINVAL);
        }
        let val: *const RepairWindow = w;
        let len = core::mem::size_of::<RepairWindow>();
        self.setopt_raw(bindings::SOL_TCP, tcp_abi().repair_window, val.cast(), len)
    }

    /// Binds to `addr`:`port` (IPv4-mapped `addr` for an IPv4 socket).
    pub(crate) fn bind(&self, addr: &Addr, port: u16, v6: bool) -> Result {
        // SAFETY: the socket is owned (type invariant); `addr` is 16 readable bytes.
        check(unsafe { ptcp_sock_bind(self.0.as_ptr(), addr.0.as_ptr(), port, v6) }).map(|_| ())
    }

    /// Connects to `addr`:`port`; in repair mode this sends nothing and establishes at once.
    pub(crate) fn connect(&self, addr: &Addr, port: u16, v6: bool) -> Result {
        // SAFETY: the socket is owned (type invariant); `addr` is 16 readable bytes.
        check(unsafe { ptcp_sock_connect(self.0.as_ptr(), addr.0.as_ptr(), port, v6) }).map(|_| ())
    }

    /// Queues `data` (into the selected repair queue in repair mode, else for sending),
    /// without blocking; returns how many bytes were taken.
    pub(crate) fn send(&self, data: &[u8]) -> Result<usize> {
        let n = data.len().min(i32::MAX as usize) as u32;
        // SAFETY: the socket is owned (type invariant); `data` is readable for `n` bytes.
        check(unsafe { ptcp_sock_send(self.0.as_ptr(), data.as_ptr(), n) }).map(|n| n as usize)
    }

    /// Locks the send buffer at room for `bytes`, as `SO_SNDBUFFORCE` would (without its
    /// check of CAP_NET_ADMIN in the initial namespace: the module sizes its own socket).
    pub(crate) fn set_sndbuf(&self, bytes: i32) {
        // SAFETY: the socket is owned (type invariant); the helper takes the sock's lock.
        unsafe { ptcp_sock_set_sndbuf(self.0.as_ptr(), bytes) }
    }

    /// Seeds the RTT estimator (RFC 6298 SRTT and RTTVAR, microseconds) and the
    /// retransmission timeout derived from it, as a first RTT sample would.
    pub(crate) fn seed_rtt(&self, srtt_us: u32, rttvar_us: u32) {
        // SAFETY: the socket is owned (type invariant); the helper takes the sock's lock.
        unsafe { ptcp_sock_seed_rtt(self.0.as_ptr(), srtt_us, rttvar_us) }
    }

    /// Shuts the sending side down: sends a FIN.
    pub(crate) fn shutdown_wr(&self) -> Result {
        // SAFETY: the socket is owned (type invariant).
        check(unsafe { ptcp_sock_shutdown_wr(self.0.as_ptr()) }).map(|_| ())
    }

    /// Detaches the sock for the accept queue; the `struct socket` is released.
    pub(crate) fn detach(self) -> Detached {
        let s = self.0.as_ptr();
        core::mem::forget(self);
        // SAFETY: `s` is an owned, connected socket; the helper consumes it.
        let sk = unsafe { ptcp_sock_detach(s) };
        // INVARIANT: the helper returns the socket's sock, whose reference we now own.
        Detached(NonNull::new(sk).expect("a connected socket has a sock"))
    }
}

impl Drop for KernelSocket {
    fn drop(&mut self) {
        // SAFETY: owned (type invariant), released once.
        unsafe { ptcp_sock_release(self.0.as_ptr()) };
    }
}

/// Whether taken-over connections are born from their listener (`permtcp.born`, off by
/// default while the path is experimental).
pub(crate) fn born_enabled() -> bool {
    // SAFETY: reads a module parameter.
    unsafe { ptcp_born_enabled() }
}

/// A connection as [`Net::born`] makes it: the parts of a rebuild plan the handshake's
/// request sock and final ACK carry.
pub(crate) struct Birth<'a> {
    pub(crate) key: FlowKey,
    /// The first client byte the application reads.
    pub(crate) recv_from: u32,
    /// The owner's first unacknowledged byte (nothing is unacknowledged: the caller checks).
    pub(crate) sent_una: u32,
    /// The client's bytes from `recv_from`.
    pub(crate) data: &'a [u8],
    /// The client's FIN follows them.
    pub(crate) fin: bool,
    /// The client's MSS.
    pub(crate) mss: u16,
    /// The client's and the owner's window scale shifts, when negotiated.
    pub(crate) wscale: Option<(u8, u8)>,
    pub(crate) sack: bool,
    /// Timestamps negotiated: the client's last TSval, the owner's next.
    pub(crate) ts: Option<(u32, u32)>,
    /// The client's last window field (unscaled) and its largest window in bytes.
    pub(crate) window: u16,
    pub(crate) max_window: u32,
    /// The owner's window, counted from `recv_from`.
    pub(crate) rcv_wnd: u32,
    /// The mirror's RTT estimate (SRTT, RTTVAR in microseconds).
    pub(crate) rtt: Option<(u32, u32)>,
}

/// `struct ptcp_birth` (include/permtcp/glue.h), field for field.
#[repr(C)]
struct BirthC {
    data: *const u8,
    vip: [u8; 16],
    client: [u8; 16],
    rcv_isn: u32,
    snt_isn: u32,
    ts_recent: u32,
    tsval: u32,
    rcv_wnd: u32,
    max_window: u32,
    srtt_us: u32,
    rttvar_us: u32,
    len: u32,
    vport: u16,
    cport: u16,
    mss: u16,
    window: u16,
    snd_wscale: u8,
    rcv_wscale: u8,
    ipv6: u8,
    wscale_ok: u8,
    sack_ok: u8,
    tstamp_ok: u8,
    fin: u8,
}

/// A listening socket found for a taken-over connection: one lookup serves a binding's
/// connections together, born from it and handed to it in one batch.
///
/// # Invariants
///
/// `sk` is a TCP listener sock (it may have closed since) whose reference this value owns;
/// `family` and `shared` are its family and whether it is in a reuseport group.
pub(crate) struct Listener {
    sk: NonNull<Sock>,
    family: ListenerFamily,
    shared: bool,
}

impl Listener {
    /// Its family: [`ListenerFamily::V4`] or [`ListenerFamily::V6`].
    pub(crate) fn family(&self) -> ListenerFamily {
        self.family
    }

    /// Whether it is one of a reuseport group, in which the kernel picks a listener per
    /// client: another connection of the binding may reach another one.
    pub(crate) fn shared(&self) -> bool {
        self.shared
    }

    /// Gives connection `b.key` its socket from its listener, as the kernel makes an
    /// accepted child (`ptcp_born()`): established (or CLOSE_WAIT), the client's bytes
    /// queued, not yet on the accept queue. `EAGAIN` (the listener closed, or a full accept queue),
    /// `EOPNOTSUPP`, `EEXIST` and `ENOMEM` leave nothing behind (TCP_REPAIR may rebuild it
    /// instead); `EPROTO`: the born socket refused the handshake's ACK and was reset.
    pub(crate) fn born(&self, b: &Birth<'_>) -> Result<Detached> {
        let k = &b.key;
        let c = BirthC {
            data: b.data.as_ptr(),
            vip: k.owner_addr.0,
            client: k.client_addr.0,
            rcv_isn: b.recv_from.wrapping_sub(1),
            snt_isn: b.sent_una.wrapping_sub(1),
            ts_recent: b.ts.map_or(0, |t| t.0),
            tsval: b.ts.map_or(0, |t| t.1),
            rcv_wnd: b.rcv_wnd,
            max_window: b.max_window,
            srtt_us: b.rtt.map_or(0, |r| r.0),
            rttvar_us: b.rtt.map_or(0, |r| r.1),
            len: b.data.len() as u32,
            vport: k.owner_port,
            cport: k.client_port,
            mss: b.mss,
            window: b.window,
            snd_wscale: b.wscale.map_or(0, |w| w.0),
            rcv_wscale: b.wscale.map_or(0, |w| w.1),
            ipv6: u8::from(k.owner_addr.as_v4().is_none()),
            wscale_ok: u8::from(b.wscale.is_some()),
            sack_ok: u8::from(b.sack),
            tstamp_ok: u8::from(b.ts.is_some()),
            fin: u8::from(b.fin),
        };
        let mut child = core::ptr::null_mut();
        // SAFETY: `sk` is a listener we hold a reference to (type invariant); `c` and the
        // `b.data` bytes it points to
        // live through the call; `child` is written only on success.
        check(unsafe { ptcp_born(self.sk.as_ptr(), &c, &mut child) })?;
        // INVARIANT: on success `child` is an established sock without a `struct socket`
        // whose one reference is handed to us.
        NonNull::new(child).map(Detached).ok_or(EINVAL)
    }

    /// How many more connections its accept queue takes now (racy: a handshake completing
    /// or an `accept()` changes it; [`Self::inject`] checks again under the queue's lock).
    pub(crate) fn room(&self) -> usize {
        // SAFETY: `sk` is a listener we hold a reference to (type invariant); the C function
        // only reads two of its fields.
        unsafe { ptcp_listener_room(self.sk.as_ptr()) as usize }
    }

    /// Appends the children of `children` to the accept queue, under one hold of its lock,
    /// and wakes `accept()` once; returns how many it queued. Each queued entry is `None`
    /// from then on (the queue owns it); the others are left as they were: no room in the
    /// backlog, the listener closed, or a child of a family that cannot sit under it.
    pub(crate) fn inject(&self, children: &mut [Option<Detached>]) -> usize {
        // `Option<Detached>` has the layout of `*mut Sock`: `Detached` is a
        // `repr(transparent)` wrapper of `NonNull`, and `None` is the null pointer.
        let ptrs = children.as_mut_ptr().cast::<*mut Sock>();
        // SAFETY: `sk` is a listener we hold a reference to (type invariant); `ptrs` points
        // to `children.len()` entries, each null or an owned detached sock (`Detached`'s
        // invariant). The C function sets to null exactly the entries whose reference it
        // took, which leaves `None` in their place without dropping them.
        unsafe { ptcp_inject_batch(self.sk.as_ptr(), ptrs, children.len() as u32) as usize }
    }
}

// SAFETY: what a shared reference allows (births, injection, its family) may run on
// several CPUs at once: `ptcp_born()` runs the steps the receive path runs for a handshake's
// final ACK, which the kernel runs concurrently on every CPU for one listener, and
// `ptcp_inject_batch()` takes the accept queue's lock.
unsafe impl Sync for Listener {}

impl Drop for Listener {
    fn drop(&mut self) {
        // SAFETY: the reference is ours (type invariant).
        unsafe { ptcp_listener_put(self.sk.as_ptr()) };
    }
}

/// A rebuilt connection waiting for the accept queue; dropping it resets the connection.
///
/// # Invariants
///
/// `0` is an established TCP sock without a `struct socket` whose reference this value owns.
#[repr(transparent)]
pub(crate) struct Detached(NonNull<Sock>);

// SAFETY: a sock reference may be used and released from any thread; the sock has its own
// lock and the helpers take it.
unsafe impl Send for Detached {}

impl Detached {
    /// The socket's cookie (`SO_COOKIE`), which the application sees on the socket it
    /// accepts: the connection's record carries it.
    pub(crate) fn cookie(&self) -> u64 {
        // SAFETY: the sock is alive (a reference owned, type invariant); the cookie is set
        // atomically, at most once.
        unsafe { ptcp_sock_cookie(self.0.as_ptr()) }
    }
}

impl Drop for Detached {
    fn drop(&mut self) {
        // SAFETY: owned (type invariant); closing consumes the reference.
        unsafe { ptcp_sock_close_detached(self.0.as_ptr()) };
    }
}

/// 64 random bits from the kernel's CRNG.
pub(crate) fn random_u64() -> u64 {
    // SAFETY: `get_random_u64()` has no preconditions and may be called in any context.
    unsafe { bindings::get_random_u64() }
}

/// `N` counters kept per CPU (`alloc_percpu`): each CPU adds to its own, so frames on
/// different CPUs share no cache line for them; a read sums the CPUs'.
///
/// # Invariants
///
/// `ptr` is a live per-CPU allocation of `N` `u64`s (zeroed when made), owned by this value.
pub(crate) struct PerCpuCounters<const N: usize> {
    ptr: NonNull<u64>,
}

// SAFETY: the counters are updated with this_cpu_inc() and read whole, from any CPU; the
// allocation is freed by whichever CPU drops the value.
unsafe impl<const N: usize> Send for PerCpuCounters<N> {}
// SAFETY: as above: `inc` and `sum` only take `&self`, and both are safe concurrently.
unsafe impl<const N: usize> Sync for PerCpuCounters<N> {}

impl<const N: usize> PerCpuCounters<N> {
    /// `N` counters at 0 (process context).
    pub(crate) fn new() -> Result<Self> {
        const { assert!(N > 0 && N <= 64) };
        // SAFETY: no preconditions; process context, as the callers are.
        let p = unsafe { ptcp_pcpu_alloc(N as u32) };
        // INVARIANT: a fresh, zeroed allocation of `N` counters, owned from here on.
        NonNull::new(p).map(|ptr| Self { ptr }).ok_or(ENOMEM)
    }

    /// Adds one to counter `I` of this CPU.
    pub(crate) fn inc<const I: usize>(&self) {
        const { assert!(I < N) };
        // SAFETY: `ptr` is live (type invariant) and `I` is within its `N` counters.
        unsafe { ptcp_pcpu_inc(self.ptr.as_ptr(), I as u32) }
    }

    /// Counter `I`, summed over the CPUs.
    pub(crate) fn sum<const I: usize>(&self) -> u64 {
        const { assert!(I < N) };
        // SAFETY: as for `inc`.
        unsafe { ptcp_pcpu_sum(self.ptr.as_ptr(), I as u32) }
    }
}

impl<const N: usize> Drop for PerCpuCounters<N> {
    fn drop(&mut self) {
        // SAFETY: `ptr` is owned by this value (type invariant) and no longer used.
        unsafe { ptcp_pcpu_free(self.ptr.as_ptr()) }
    }
}

/// A boxed value that readers use under the RCU read lock, without a lock of their own, and
/// that writers replace: the old value is freed only after a grace period, when no reader
/// can still hold it (the snooping hook reads the connection table and the filter this way:
/// frames on different CPUs share no lock).
///
/// # Invariants
///
/// `ptr` is null or comes from [`KBox::into_raw`] and is owned by this value. A pointer
/// swapped out is freed only by [`Retired`]'s drop, after `synchronize_rcu()`.
pub(crate) struct RcuBox<T> {
    ptr: core::sync::atomic::AtomicPtr<T>,
}

// SAFETY: readers get `&T` on any CPU (`T: Sync`); the value is dropped on whichever CPU
// drops the last owner (`T: Send`).
unsafe impl<T: Send + Sync> Sync for RcuBox<T> {}
// SAFETY: as above.
unsafe impl<T: Send + Sync> Send for RcuBox<T> {}

impl<T> RcuBox<T> {
    /// Empty.
    pub(crate) const fn empty() -> Self {
        RcuBox {
            ptr: core::sync::atomic::AtomicPtr::new(core::ptr::null_mut()),
        }
    }

    /// The current value, for as long as the read lock `_guard` is held.
    pub(crate) fn get<'g>(&self, _guard: &'g kernel::sync::rcu::Guard) -> Option<&'g T> {
        let p = self.ptr.load(core::sync::atomic::Ordering::Acquire);
        // SAFETY: by the invariant `p` is null or a live box; a replaced box is freed only
        // after a grace period, which cannot end while `_guard` holds the read lock, and the
        // reference does not outlive `_guard`.
        unsafe { p.as_ref() }
    }

    /// Publishes `new` (nothing with `None`) and returns the value it replaces, to be freed
    /// after a grace period.
    pub(crate) fn replace(&self, new: Option<KBox<T>>) -> Retired<T> {
        let p = new.map_or(core::ptr::null_mut(), KBox::into_raw);
        let old = self.ptr.swap(p, core::sync::atomic::Ordering::AcqRel);
        // INVARIANT: `old` left `ptr` in the swap above: nobody else frees it.
        Retired(NonNull::new(old))
    }
}

impl<T> Drop for RcuBox<T> {
    fn drop(&mut self) {
        drop(self.replace(None));
    }
}

/// A value an [`RcuBox`] no longer publishes; dropping it waits for a grace period
/// (`synchronize_rcu()`: process context only), then frees it.
///
/// # Invariants
///
/// The pointer, if any, comes from [`KBox::into_raw`], is no longer published, and has no
/// other owner.
pub(crate) struct Retired<T>(Option<NonNull<T>>);

impl<T> Retired<T> {
    /// Whether a value was replaced.
    pub(crate) fn is_some(&self) -> bool {
        self.0.is_some()
    }

    /// Frees the value after a grace period without waiting for it (process context): for a
    /// value whose drop does nothing but free its memory.
    pub(crate) fn free_later(mut self) {
        const { assert!(!core::mem::needs_drop::<T>()) };
        if let Some(p) = self.0.take() {
            // SAFETY: by the invariant `p` came from `KBox::into_raw` (kmalloc'd memory) and
            // this is its only owner; readers that loaded it before it was replaced may still
            // use it, and the memory is freed only after they are done. `T` needs no drop.
            unsafe { ptcp_kvfree_rcu(p.as_ptr().cast()) };
        }
    }

    /// Waits for a grace period and returns the value, no longer shared with any reader.
    pub(crate) fn wait(mut self) -> Option<KBox<T>> {
        let p = self.0.take()?;
        kernel::sync::rcu::synchronize_rcu();
        // SAFETY: by the invariant `p` came from `KBox::into_raw` and this is its only
        // owner; after the grace period no reader holds it.
        Some(unsafe { KBox::from_raw(p.as_ptr()) })
    }
}

impl<T> Drop for Retired<T> {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            // Readers that loaded the pointer before it was replaced finish first.
            kernel::sync::rcu::synchronize_rcu();
            // SAFETY: by the invariant `p` came from `KBox::into_raw` and this is its only
            // owner; after the grace period no reader holds it.
            drop(unsafe { KBox::from_raw(p.as_ptr()) });
        }
    }
}
