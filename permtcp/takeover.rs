// SPDX-License-Identifier: GPL-2.0

//! Takeover: a failed owner's mirrored connections become real TCP sockets that the
//! application's listener returns from a plain `accept()`.
//!
//! Each ready connection is rebuilt with TCP_REPAIR, as CRIU restores sockets: sequence
//! numbers, options negotiated by both SYNs, timestamps continued past the owner's last TSval
//! (PAWS), the client's bytes the owner had not acknowledged in the receive queue, windows,
//! then repair is switched off (the window probe it sends prompts the client's ACK) and the
//! owner's unacknowledged bytes are sent again. The socket is then detached from its kernel
//! `struct socket` and put on the listener's accept queue.
//!
//! Afterwards the failed owner's addresses this node takes ARP ownership of (by the
//! declaration's ARP policy) are announced: gratuitous ARP, unsolicited neighbour
//! advertisements.
//!
//! A connection whose listener does not exist yet is rebuilt all the same (it acknowledges
//! and buffers the client's data) and parked: a poll hands it over as soon as the application
//! listens, or resets it when none does in time. Without a listener to tell the family, an
//! IPv4 connection is rebuilt as an IPv6 socket with IPv4-mapped addresses, which either kind
//! of listener accepts.
//!
//! Half-closed and closing connections are rebuilt established, then the owner's FIN is sent
//! again (shutdown) and the client's FIN is fed to the stack as a received segment.
//!
//! A connection this node cannot take over (not seen from its SYN, or otherwise not ready)
//! goes to the next peer in the policy's order with a fail-over directive (permctl carries
//! it); the last peer resets it.

use crate::glue::{PtcpNet, Snooped, Sock, Socket};
use crate::logic::decl::RxPolicy;
use crate::logic::errno::{code, Error as LogicError};
use crate::logic::packet::{build_control, flags, CONTROL_MAX};
use crate::logic::resume::{resume, Resume};
use crate::logic::seq;
use crate::logic::snoop::FlowKey;
use crate::logic::snoopnl::TakenInfo;
use crate::logic::track::{Conn, Side, State};
use crate::snoop::Alloc;
use core::ffi::{c_int, c_void};
use core::ptr::NonNull;
use kernel::prelude::*;

const SOL_IP: c_int = 0;
const SOL_SOCKET: c_int = 1;
const SOL_TCP: c_int = 6;
const SOL_IPV6: c_int = 41;
const SO_REUSEADDR: c_int = 2;
const SO_SNDBUFFORCE: c_int = 32;
const IP_FREEBIND: c_int = 15;
const IPV6_FREEBIND: c_int = 78;
const TCP_MAXSEG: c_int = 2;
const TCP_REPAIR: c_int = 19;
const TCP_REPAIR_QUEUE: c_int = 20;
const TCP_QUEUE_SEQ: c_int = 21;
const TCP_REPAIR_OPTIONS: c_int = 22;
const TCP_TIMESTAMP: c_int = 24;
const TCP_REPAIR_WINDOW: c_int = 29;
const TCP_RECV_QUEUE: c_int = 1;
const TCP_SEND_QUEUE: c_int = 2;
const TCPOPT_MSS: u32 = 2;
const TCPOPT_WINDOW: u32 = 3;
const TCPOPT_SACK_PERM: u32 = 4;
const TCPOPT_TIMESTAMP: u32 = 8;

/// `struct tcp_repair_window`.
#[repr(C)]
struct RepairWindow {
    snd_wl1: u32,
    snd_wnd: u32,
    max_window: u32,
    rcv_wnd: u32,
    rcv_wup: u32,
}

/// `struct tcp_repair_opt`.
#[repr(C)]
#[derive(Clone, Copy)]
struct RepairOpt {
    code: u32,
    val: u32,
}

/// What one connection is rebuilt from, copied out of the mirror.
pub(crate) struct Plan {
    key: FlowKey,
    v6: bool,
    /// Byte ranges and stream offsets (see [`resume`]).
    r: Resume,
    rx: RxPolicy,
    mss: u16,
    wscale: Option<(u8, u8)>,
    sack: bool,
    /// The owner's last TSval and how long ago it was seen.
    ts: Option<(u32, u64)>,
    window: RepairWindow,
    /// The owner's retained sent bytes `[r.sent_from, r.sent_end)`: those from `r.sent_una`
    /// are sent again, all are kept for the application to verify.
    sent: KVVec<u8>,
    /// The client's bytes `[r.recv_from, r.recv_end)`, queued for the application.
    recv: KVVec<u8>,
    /// The owner had sent its FIN (its application shut down writing).
    owner_fin: bool,
    /// The client had sent its FIN: the segment that delivers it to the rebuilt socket.
    client_fin: Option<([u8; CONTROL_MAX], usize)>,
}

/// Whether a connection in `state` (and ready) is rebuilt: established, or half-closed or
/// closing with a FIN not yet acknowledged on both sides.
pub(crate) fn rebuildable(state: State) -> bool {
    matches!(state, State::Established | State::FinSeen | State::Closing)
}

fn copy_out(c: &Conn<Alloc>, side: Side, from: u32, to: u32) -> Option<KVVec<u8>> {
    let n = seq::dist(from, to) as usize;
    let mut v = KVVec::from_elem(0u8, n, GFP_KERNEL).ok()?;
    c.side(side).data.read(from, &mut v).then_some(v)
}

impl Plan {
    /// The plan for a ready, established connection taken out of the mirror; `None` when
    /// its bytes cannot be copied.
    pub(crate) fn new(key: &FlowKey, c: &Conn<Alloc>, now_ms: u64, rx: RxPolicy) -> Option<Plan> {
        if c.readiness().is_err() || !rebuildable(c.state) {
            return None;
        }
        let (o, cl) = (c.side(Side::Owner), c.side(Side::Client));
        let r = resume(c, rx);
        let ts = |h: &crate::logic::track::Half<Alloc>| h.ts.filter(|_| c.ts_ok);
        let client_fin = cl.fin.map(|fin| {
            // As the client sent it: its last acknowledgement, window and timestamp.
            let mut seg = [0u8; CONTROL_MAX];
            let n = build_control(
                &mut seg,
                (key.client_addr, key.client_port),
                (key.owner_addr, key.owner_port),
                fin,
                o.una,
                flags::FIN | flags::ACK,
                (cl.win >> c.wscale(Side::Client)).min(0xffff) as u16,
                ts(cl),
            );
            (seg, n)
        });
        Some(Plan {
            key: *key,
            v6: key.owner_addr.as_v4().is_none(),
            r,
            rx,
            mss: cl.syn_opts.mss.unwrap_or(536),
            wscale: c
                .ws_ok
                .then(|| (c.wscale(Side::Client), c.wscale(Side::Owner))),
            sack: c.sack_ok,
            ts: if c.ts_ok {
                o.ts.map(|(val, _)| (val, now_ms.saturating_sub(c.last_ms)))
            } else {
                None
            },
            window: RepairWindow {
                snd_wl1: cl.win_seq,
                snd_wnd: cl.win,
                max_window: cl.max_win.max(cl.win),
                rcv_wnd: o.win,
                rcv_wup: r.recv_una,
            },
            sent: copy_out(c, Side::Owner, r.sent_from, r.sent_end)?,
            recv: copy_out(c, Side::Client, r.recv_from, r.recv_end)?,
            owner_fin: o.fin.is_some(),
            client_fin,
        })
    }

    /// The owner's unacknowledged bytes, sent again after repair.
    fn resend(&self) -> &[u8] {
        &self.sent[seq::dist(self.r.sent_from, self.r.sent_una) as usize..]
    }

    /// What the restarted application is told about this connection, and its kept bytes.
    pub(crate) fn into_record(self, now_ms: u64) -> Taken {
        Taken {
            info: TakenInfo {
                key: self.key,
                sent_offset: self.r.sent_offset,
                recv_offset: self.r.recv_offset,
                data_offset: self.r.data_offset,
                data_len: self.sent.len() as u32,
                rx_deliver: self.rx == RxPolicy::Deliver,
                age_ms: 0,
            },
            sent_from: self.r.sent_from,
            at_ms: now_ms,
            sent: self.sent,
        }
    }
}

/// A taken-over connection as the restarted application may ask about it (TAKEN_GET), with
/// the sent bytes it may verify its regenerated output against (CONN_DATA_GET).
pub(crate) struct Taken {
    pub(crate) info: TakenInfo,
    /// Sequence number of `sent[0]`.
    pub(crate) sent_from: u32,
    /// When it was taken over.
    pub(crate) at_ms: u64,
    pub(crate) sent: KVVec<u8>,
}

extern "C" {
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
    fn ptcp_inject(
        pn: *mut PtcpNet,
        child: *mut Sock,
        vip: *const u8,
        port: u16,
        client: *const u8,
        cport: u16,
        ipv6: bool,
    ) -> c_int;
    fn ptcp_sock_close_detached(sk: *mut Sock);
    fn ptcp_announce(pn: *mut PtcpNet, addr: *const u8, ipv6: bool) -> c_int;
    fn ptcp_listener_family(
        pn: *mut PtcpNet,
        vip: *const u8,
        port: u16,
        client: *const u8,
        cport: u16,
        ipv6: bool,
    ) -> c_int;
}

const AF_INET: c_int = 2;

/// Tells the link that `addr` now lives here (gratuitous ARP or unsolicited NA), twice.
pub(crate) fn announce(pn: &Snooped, addr: &crate::logic::packet::Addr) -> Result<(), LogicError> {
    for _ in 0..2 {
        // SAFETY: `pn` is live; `addr` is 16 readable bytes.
        let ret = unsafe { ptcp_announce(pn.raw(), addr.0.as_ptr(), addr.as_v4().is_none()) };
        check(ret, c"cannot announce the address: not snooping")?;
    }
    Ok(())
}

fn check(ret: c_int, msg: &'static core::ffi::CStr) -> Result<c_int, LogicError> {
    if ret < 0 {
        Err(LogicError::new(-ret, msg))
    } else {
        Ok(ret)
    }
}

/// A kernel TCP socket being rebuilt.
///
/// # Invariants
///
/// `0` is a socket from `ptcp_sock_new` that this value owns.
struct KernelSocket(NonNull<Socket>);

impl KernelSocket {
    fn new(pn: &Snooped, v6: bool) -> Result<Self, LogicError> {
        let mut s = core::ptr::null_mut();
        // SAFETY: `pn` is the namespace's live `struct ptcp_net`; `s` is a valid out pointer.
        let ret = unsafe { ptcp_sock_new(pn.raw(), v6, &mut s) };
        check(ret, c"socket creation failed")?;
        // INVARIANT: created above, owned from here on.
        NonNull::new(s)
            .map(Self)
            .ok_or(LogicError::new(code::ENOMEM, c"socket creation failed"))
    }

    fn set<T>(
        &self,
        level: c_int,
        opt: c_int,
        val: &T,
        msg: &'static core::ffi::CStr,
    ) -> Result<(), LogicError> {
        let len = core::mem::size_of::<T>() as u32;
        let val: *const c_void = core::ptr::from_ref(val).cast();
        // SAFETY: the socket is owned (type invariant); `val` is readable for `len` bytes.
        let ret = unsafe { ptcp_sock_setopt(self.0.as_ptr(), level, opt, val, len) };
        check(ret, msg).map(|_| ())
    }

    fn set_int(
        &self,
        level: c_int,
        opt: c_int,
        v: i32,
        msg: &'static core::ffi::CStr,
    ) -> Result<(), LogicError> {
        self.set(level, opt, &v, msg)
    }

    fn send(&self, mut data: &[u8], msg: &'static core::ffi::CStr) -> Result<(), LogicError> {
        while !data.is_empty() {
            let n = data.len().min(16384);
            // SAFETY: the socket is owned (type invariant); `data` is readable for `n` bytes.
            let ret = unsafe { ptcp_sock_send(self.0.as_ptr(), data.as_ptr(), n as u32) };
            let sent = check(ret, msg)?;
            if sent == 0 {
                return Err(LogicError::new(code::ENOSPC, msg));
            }
            data = &data[sent as usize..];
        }
        Ok(())
    }

    /// Detaches the sock for the accept queue; the `struct socket` is released.
    fn detach(self) -> Detached {
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

/// A rebuilt connection waiting for the accept queue.
///
/// # Invariants
///
/// `0` is an established TCP sock without a `struct socket` whose reference this value owns.
struct Detached(NonNull<Sock>);

// SAFETY: a sock reference may be used and released from any thread; the sock has its own
// lock and the helpers take it.
unsafe impl Send for Detached {}

impl Drop for Detached {
    fn drop(&mut self) {
        // SAFETY: owned (type invariant); closing consumes the reference.
        unsafe { ptcp_sock_close_detached(self.0.as_ptr()) };
    }
}

/// Rebuilds one connection as a socket in repair mode, then live. `v6sock`: an IPv6 socket
/// (an IPv4 connection then uses IPv4-mapped addresses, for a dual-stack listener).
fn rebuild(pn: &Snooped, p: &Plan, v6sock: bool) -> Result<Detached, LogicError> {
    let s = KernelSocket::new(pn, v6sock)?;
    s.set_int(SOL_TCP, TCP_REPAIR, 1, c"TCP_REPAIR failed")?;
    s.set_int(
        SOL_TCP,
        TCP_REPAIR_QUEUE,
        TCP_SEND_QUEUE,
        c"repair queue failed",
    )?;
    s.set_int(
        SOL_TCP,
        TCP_QUEUE_SEQ,
        p.r.sent_una as i32,
        c"send sequence failed",
    )?;
    s.set_int(
        SOL_TCP,
        TCP_REPAIR_QUEUE,
        TCP_RECV_QUEUE,
        c"repair queue failed",
    )?;
    s.set_int(
        SOL_TCP,
        TCP_QUEUE_SEQ,
        p.r.recv_from as i32,
        c"receive sequence failed",
    )?;
    // The client's MSS before connect(), or the socket stays at the minimum.
    s.set_int(SOL_TCP, TCP_MAXSEG, p.mss.into(), c"TCP_MAXSEG failed")?;
    // The service address may not be local yet.
    let (level, opt) = if v6sock {
        (SOL_IPV6, IPV6_FREEBIND)
    } else {
        (SOL_IP, IP_FREEBIND)
    };
    s.set_int(level, opt, 1, c"freebind failed")?;
    let k = &p.key;
    let sock = s.0.as_ptr();
    // SAFETY: the socket is owned; the addresses are 16 readable bytes.
    let ret = unsafe { ptcp_sock_bind(sock, k.owner_addr.0.as_ptr(), k.owner_port, v6sock) };
    check(ret, c"bind to the service address failed")?;
    // SAFETY: as above; in repair mode connect() sends nothing and establishes at once.
    let ret = unsafe { ptcp_sock_connect(sock, k.client_addr.0.as_ptr(), k.client_port, v6sock) };
    check(ret, c"connect in repair mode failed")?;
    let mut opts = [RepairOpt {
        code: TCPOPT_MSS,
        val: p.mss.into(),
    }; 4];
    let mut n = 1;
    if let Some((snd, rcv)) = p.wscale {
        opts[n] = RepairOpt {
            code: TCPOPT_WINDOW,
            val: u32::from(snd) | u32::from(rcv) << 16,
        };
        n += 1;
    }
    if p.sack {
        opts[n] = RepairOpt {
            code: TCPOPT_SACK_PERM,
            val: 0,
        };
        n += 1;
    }
    if p.ts.is_some() {
        opts[n] = RepairOpt {
            code: TCPOPT_TIMESTAMP,
            val: 0,
        };
        n += 1;
    }
    let len = (n * core::mem::size_of::<RepairOpt>()) as u32;
    let optp = opts.as_ptr().cast();
    // SAFETY: the socket is owned; `opts[..n]` is readable for `len` bytes.
    let ret = unsafe { ptcp_sock_setopt(sock, SOL_TCP, TCP_REPAIR_OPTIONS, optp, len) };
    check(ret, c"TCP_REPAIR_OPTIONS failed")?;
    if let Some((tsval, age)) = p.ts {
        // Continue the owner's clock past its last TSval (PAWS); bit 0 flags usec clocks.
        let v = tsval.wrapping_add(age as u32).wrapping_add(2) & !1;
        s.set_int(SOL_TCP, TCP_TIMESTAMP, v as i32, c"TCP_TIMESTAMP failed")?;
    }
    if !p.recv.is_empty() {
        s.set_int(
            SOL_TCP,
            TCP_REPAIR_QUEUE,
            TCP_RECV_QUEUE,
            c"repair queue failed",
        )?;
        s.send(&p.recv, c"queueing received data failed")?;
    }
    s.set(
        SOL_TCP,
        TCP_REPAIR_WINDOW,
        &p.window,
        c"TCP_REPAIR_WINDOW failed",
    )?;
    // Repair off sends a window probe: the client answers at once with its state.
    s.set_int(SOL_TCP, TCP_REPAIR, 0, c"leaving repair mode failed")?;
    // An application binding the port after the takeover needs this (repair off cleared it).
    s.set_int(SOL_SOCKET, SO_REUSEADDR, 1, c"SO_REUSEADDR failed")?;
    let resend = p.resend();
    if !resend.is_empty() {
        // Room for all of it at once: a new socket's send buffer is small, and a window of
        // unacknowledged bytes can be megabytes.
        let room = (resend.len() + (64 << 10)).min(i32::MAX as usize) as i32;
        s.set_int(SOL_SOCKET, SO_SNDBUFFORCE, room, c"SO_SNDBUFFORCE failed")?;
    }
    s.send(resend, c"resending unacknowledged data failed")?;
    if p.owner_fin {
        // The owner's FIN again, at the same sequence number.
        // SAFETY: the socket is owned (type invariant).
        let ret = unsafe { ptcp_sock_shutdown_wr(s.0.as_ptr()) };
        check(ret, c"shutting down the sending side failed")?;
    }
    if let Some((seg, n)) = &p.client_fin {
        // The client's FIN, fed to the stack as received: the socket's own FIN processing
        // makes it CLOSE_WAIT (as CRIU's libsoccr does with a raw socket).
        // SAFETY: `pn` is live; `seg` holds `n` readable bytes.
        let ret = unsafe { ptcp_receive_packet(pn.raw(), seg.as_ptr(), *n as u32, p.v6) };
        check(ret, c"delivering the client's FIN failed")?;
    }
    Ok(s.detach())
}

/// A connection no peer can take over: it is reset, so that its client does not hang.
pub(crate) struct Reset {
    key: FlowKey,
    v6: bool,
    /// Where the client's next expected sequence number may be (RFC 5961: a reset is
    /// taken only at exactly that number when its window is closed): the owner's first
    /// unacknowledged byte, its next one, and one past it (a mirror that saw only a window
    /// probe, sent one below the next byte, is one short).
    seqs: [u32; 3],
}

impl Reset {
    /// The reset for `c`, from what the mirror saw of it.
    pub(crate) fn new(key: &FlowKey, c: &Conn<Alloc>) -> Reset {
        let o = c.side(Side::Owner);
        Reset {
            key: *key,
            v6: key.owner_addr.as_v4().is_none(),
            seqs: [o.una, o.nxt, o.nxt.wrapping_add(1)],
        }
    }
}

/// Sends the client of `r` resets from the service address.
pub(crate) fn reset(pn: &Snooped, r: &Reset) -> Result<(), LogicError> {
    let k = &r.key;
    for (i, &seq) in r.seqs.iter().enumerate() {
        if r.seqs[..i].contains(&seq) {
            continue;
        }
        let mut seg = [0u8; CONTROL_MAX];
        let len = build_control(
            &mut seg,
            (k.owner_addr, k.owner_port),
            (k.client_addr, k.client_port),
            seq,
            0,
            flags::RST,
            0,
            None,
        );
        // SAFETY: `pn` is live; the address is 16 readable bytes, `seg` holds `len`.
        let ret = unsafe {
            ptcp_send_packet(
                pn.raw(),
                k.client_addr.0.as_ptr(),
                seg.as_ptr(),
                len as u32,
                r.v6,
            )
        };
        check(ret, c"sending a reset failed")?;
    }
    Ok(())
}

/// A rebuilt connection whose listener does not exist yet.
pub(crate) struct Parked {
    key: FlowKey,
    v6: bool,
    child: Detached,
    /// When it is reset if no listener took it (`now_ms` clock).
    pub(crate) deadline_ms: u64,
}

impl Parked {
    /// Hands the connection to the listener of its service address; gives it back while
    /// there is none (or the backlog is full).
    pub(crate) fn try_inject(self, pn: &Snooped) -> Result<(), Parked> {
        let k = &self.key;
        // SAFETY: `pn` is live; `child` is an owned detached sock; addresses are 16 bytes.
        let r = unsafe {
            ptcp_inject(
                pn.raw(),
                self.child.0.as_ptr(),
                k.owner_addr.0.as_ptr(),
                k.owner_port,
                k.client_addr.0.as_ptr(),
                k.client_port,
                self.v6,
            )
        };
        if r == 0 {
            // The accept queue owns the reference now.
            core::mem::forget(self.child);
            Ok(())
        } else {
            Err(self)
        }
    }
}

/// What became of a rebuilt connection.
pub(crate) enum Outcome {
    /// On a listener's accept queue.
    Queued,
    /// Waiting for a listener.
    Parked(Parked),
}

/// Rebuilds `p` and hands it to the listener of its service address, or parks it until
/// `deadline_ms` when there is none.
pub(crate) fn take_over(pn: &Snooped, p: &Plan, deadline_ms: u64) -> Result<Outcome, LogicError> {
    let k = &p.key;
    let (vip, client) = (k.owner_addr.0.as_ptr(), k.client_addr.0.as_ptr());
    // SAFETY: `pn` is live; the addresses are 16 readable bytes.
    let family =
        unsafe { ptcp_listener_family(pn.raw(), vip, k.owner_port, client, k.client_port, p.v6) };
    // An IPv4 listener takes an IPv4 socket; anything else (an IPv6 listener, or none yet)
    // an IPv6 one.
    let v6sock = p.v6 || family != AF_INET;
    let parked = Parked {
        key: p.key,
        v6: p.v6,
        child: rebuild(pn, p, v6sock)?,
        deadline_ms,
    };
    Ok(match parked.try_inject(pn) {
        Ok(()) => Outcome::Queued,
        Err(parked) => Outcome::Parked(parked),
    })
}
