// SPDX-License-Identifier: GPL-2.0

//! Where a taken-over connection resumes, asked from the restarted application's own process:
//! one netlink query (TAKEN_GET with the socket's 4-tuple, answered from an index in the
//! kernel) per accepted socket, instead of running `permctl taken` and searching its list.
//!
//! ```no_run
//! # use std::net::TcpListener;
//! let l = TcpListener::bind("[::]:80").unwrap();
//! for s in l.incoming() {
//!     let s = s.unwrap();
//!     match permtcp_resume::of_stream(&s) {
//!         Ok(Some(r)) => { /* continue at r.sent_offset / r.recv_offset */ }
//!         Ok(None) => { /* a new connection */ }
//!         Err(e) => eprintln!("permtcp: {e}"),
//!     }
//! }
//! ```
//!
//! From C, link `libpermtcp_resume.a` (built with this crate; `-lpthread -ldl -lm`) and
//! include `permtcp_resume.h`:
//!
//! ```c
//! #include "permtcp_resume.h"
//!
//! int fd = accept(lfd, NULL, NULL);
//! struct ptcp_resume r;
//! int found = ptcp_resume_get(fd, &r);   /* 1: taken over, 0: new, < 0: -errno */
//! if (found == 1)
//!         continue_stream(fd, r.sent_offset, r.recv_offset);
//! ```
//!
//! The process keeps up to four generic netlink sockets (each opened, and the family
//! resolved, at its first use) in the namespace it runs in: queries from several threads run
//! side by side on them, and take turns beyond four.
//! No privilege is needed: TAKEN_GET is open to every user of the namespace.

use permctl::{Client, CtlError};
use permtcp_logic::packet::Addr;
use permtcp_logic::snoop::FlowKey;
use std::hash::{Hash, Hasher};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::os::fd::{AsRawFd, RawFd};
use std::sync::{Mutex, MutexGuard, TryLockError};

pub use permtcp_logic::snoopnl::TakenInfo;

fn addr(ip: IpAddr) -> Addr {
    match ip {
        IpAddr::V4(a) => Addr::v4(a.octets()),
        IpAddr::V6(a) => Addr(a.octets()),
    }
}

/// The key permtcp files a connection under: the service's end (`local`, the accepted
/// socket's own address) and the client's; IPv4 as IPv4-mapped addresses, as a dual-stack
/// socket reports them.
pub fn key(local: SocketAddr, peer: SocketAddr) -> FlowKey {
    FlowKey {
        owner_addr: addr(local.ip()),
        owner_port: local.port(),
        client_addr: addr(peer.ip()),
        client_port: peer.port(),
    }
}

/// How many netlink sockets the process queries through at once: a restarted server
/// accepting thousands of taken-over connections asks for each from its own thread.
const SLOTS: usize = 4;

/// The process's sockets, each opened at its first query.
static CLIENTS: [Mutex<Option<Client>>; SLOTS] = [const { Mutex::new(None) }; SLOTS];

/// A free socket slot, or, when all are busy, the one this thread waits for.
fn slot() -> MutexGuard<'static, Option<Client>> {
    for c in &CLIENTS {
        match c.try_lock() {
            Ok(g) => return g,
            Err(TryLockError::Poisoned(e)) => return e.into_inner(),
            Err(TryLockError::WouldBlock) => {}
        }
    }
    let mut h = std::hash::DefaultHasher::new();
    std::thread::current().id().hash(&mut h);
    CLIENTS[h.finish() as usize % SLOTS]
        .lock()
        .unwrap_or_else(|e| e.into_inner())
}

/// The record of connection `local` <- `peer`: `None` when it was not taken over here.
pub fn of_addrs(local: SocketAddr, peer: SocketAddr) -> Result<Option<TakenInfo>, CtlError> {
    let mut c = slot();
    if c.is_none() {
        *c = Some(Client::connect()?);
    }
    let r = c.as_ref().map(|c| c.taken_one(&key(local, peer)));
    if r.as_ref().is_some_and(|r| r.is_err()) {
        // A broken socket is opened again at the next query.
        *c = None;
    }
    r.unwrap_or(Ok(None))
}

/// The record of the connected socket `s`.
pub fn of_stream(s: &TcpStream) -> Result<Option<TakenInfo>, CtlError> {
    let io = |e: std::io::Error| CtlError::Transport(e.to_string());
    of_addrs(s.local_addr().map_err(io)?, s.peer_addr().map_err(io)?)
}

/// The address of `fd`'s local (`peer` false) or remote end.
fn sockaddr(fd: RawFd, peer: bool) -> std::io::Result<SocketAddr> {
    // SAFETY: a zeroed sockaddr_storage is a valid value to fill.
    let mut ss: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of_val(&ss) as libc::socklen_t;
    let p = (&mut ss as *mut libc::sockaddr_storage).cast();
    // SAFETY: `p` points to `len` writable bytes.
    let r = unsafe {
        if peer {
            libc::getpeername(fd, p, &mut len)
        } else {
            libc::getsockname(fd, p, &mut len)
        }
    };
    if r != 0 {
        return Err(std::io::Error::last_os_error());
    }
    match i32::from(ss.ss_family) {
        libc::AF_INET => {
            // SAFETY: the kernel filled a sockaddr_in.
            let a: libc::sockaddr_in = unsafe { *(p as *const libc::sockaddr_in) };
            let ip = std::net::Ipv4Addr::from(u32::from_be(a.sin_addr.s_addr));
            Ok(SocketAddr::new(ip.into(), u16::from_be(a.sin_port)))
        }
        libc::AF_INET6 => {
            // SAFETY: the kernel filled a sockaddr_in6.
            let a: libc::sockaddr_in6 = unsafe { *(p as *const libc::sockaddr_in6) };
            let ip = std::net::Ipv6Addr::from(a.sin6_addr.s6_addr);
            Ok(SocketAddr::new(ip.into(), u16::from_be(a.sin6_port)))
        }
        _ => Err(std::io::Error::from_raw_os_error(libc::EAFNOSUPPORT)),
    }
}

/// The record of the connected TCP socket `fd`.
pub fn of_fd(fd: &impl AsRawFd) -> Result<Option<TakenInfo>, CtlError> {
    let fd = fd.as_raw_fd();
    let io = |e: std::io::Error| CtlError::Transport(e.to_string());
    of_addrs(
        sockaddr(fd, false).map_err(io)?,
        sockaddr(fd, true).map_err(io)?,
    )
}

// The layout of `struct ptcp_resume`.
const _: () = assert!(std::mem::size_of::<PtcpResume>() == 32);

/// `struct ptcp_resume` of `permtcp_resume.h`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct PtcpResume {
    /// Stream offset (from the first byte after the SYN, modulo 2^32) of the next byte the
    /// application sends.
    pub sent_offset: u32,
    /// Stream offset of the first client byte the application reads.
    pub recv_offset: u32,
    /// Stream offset of the first sent byte kept for verification (`permctl conn-data`).
    pub data_offset: u32,
    /// Kept sent bytes, ending at `sent_offset`.
    pub data_len: u32,
    /// 1 when received bytes are delivered again (the declared `deliver` policy).
    pub rx_deliver: u32,
    /// Milliseconds since the takeover.
    pub age_ms: u64,
}

/// C: `int ptcp_resume_get(int fd, struct ptcp_resume *out)`: 1 and `*out` filled when the
/// connected TCP socket `fd` was taken over, 0 when not, a negative errno on failure.
///
/// # Safety
///
/// `out` must be null or point to a writable `struct ptcp_resume`.
#[no_mangle]
pub unsafe extern "C" fn ptcp_resume_get(fd: libc::c_int, out: *mut PtcpResume) -> libc::c_int {
    let (local, peer) = match (sockaddr(fd, false), sockaddr(fd, true)) {
        (Ok(l), Ok(p)) => (l, p),
        (Err(e), _) | (_, Err(e)) => return -e.raw_os_error().unwrap_or(libc::EINVAL),
    };
    match of_addrs(local, peer) {
        Ok(Some(t)) => {
            if !out.is_null() {
                let r = PtcpResume {
                    sent_offset: t.sent_offset,
                    recv_offset: t.recv_offset,
                    data_offset: t.data_offset,
                    data_len: t.data_len,
                    rx_deliver: t.rx_deliver.into(),
                    age_ms: t.age_ms,
                };
                // SAFETY: the caller passes a writable `struct ptcp_resume`.
                unsafe { out.write(r) };
            }
            1
        }
        // Without the module nothing was taken over.
        Ok(None) | Err(CtlError::NotLoaded) => 0,
        Err(CtlError::Kernel { errno, .. }) => -errno.abs(),
        Err(_) => -libc::EIO,
    }
}
