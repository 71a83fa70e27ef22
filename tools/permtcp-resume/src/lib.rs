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
//!
//! A takeover hands the application many connections at once, so a socket's query that finds
//! its record (one the process had not seen) also fetches every record, in one TAKEN_GET
//! dump, into a cache keyed by socket cookie (`SO_COOKIE`; each record carries the cookie of
//! the socket the kernel gave the connection, which is the socket `accept()` returns). The
//! next sockets of that takeover are answered from the cache without a query, with one
//! system call each (`getsockopt(SO_COOKIE)`: the socket's addresses are looked up only for
//! a query of its own). A cookie
//! names one socket for the kernel's lifetime, so a cached record never answers for another
//! socket, even one with the same 4-tuple; and a socket whose 4-tuple's newest record names
//! another socket was not taken over (a new connection reusing the 4-tuple).

use permctl::{Client, CtlError};
use permtcp_logic::packet::Addr;
use permtcp_logic::snoop::FlowKey;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::os::fd::{AsRawFd, RawFd};
use std::sync::{LazyLock, Mutex, MutexGuard, TryLockError};
use std::time::Instant;

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

/// The records of the last TAKEN_GET dump, by the cookie of the socket each connection was
/// given (records without one, from an older module, are not kept).
#[derive(Debug, Default)]
pub struct Cache {
    by_cookie: HashMap<u64, TakenInfo>,
    /// When the dump was made: a record's age is its age then plus the time since.
    at: Option<Instant>,
    /// Dumps so far: a thread that missed fetches the records again only if nobody did
    /// since its miss.
    generation: u64,
}

impl Cache {
    /// The record of the socket whose cookie is `cookie`, aged to `now`.
    pub fn get(&self, cookie: u64, now: Instant) -> Option<TakenInfo> {
        let t = self.by_cookie.get(&cookie).filter(|_| cookie != 0)?;
        let since = now.saturating_duration_since(self.at?).as_millis();
        Some(TakenInfo {
            age_ms: t
                .age_ms
                .saturating_add(u64::try_from(since).unwrap_or(u64::MAX)),
            ..*t
        })
    }

    /// Replaces the records with those of a dump made at `at` (the kernel keeps a bounded
    /// number, so the cache is bounded too).
    pub fn fill(&mut self, records: impl IntoIterator<Item = TakenInfo>, at: Instant) {
        self.by_cookie = records
            .into_iter()
            .filter(|t| t.cookie != 0)
            .map(|t| (t.cookie, t))
            .collect();
        self.at = Some(at);
        self.generation += 1;
    }

    /// How many dumps filled it.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Records held.
    pub fn len(&self) -> usize {
        self.by_cookie.len()
    }

    /// Whether it holds no record.
    pub fn is_empty(&self) -> bool {
        self.by_cookie.is_empty()
    }
}

/// What a socket's own query says, given its cookie (0: unknown): `found` is the newest
/// record of its 4-tuple. A record naming another socket is not this socket's: this one is
/// a new connection that reuses the 4-tuple. Returns the answer and whether the record was
/// this socket's own (the takeover that gave it probably gave others: worth a dump).
pub fn judge(cookie: u64, found: Option<TakenInfo>) -> (Option<TakenInfo>, bool) {
    match found {
        Some(t) if cookie != 0 && t.cookie != 0 && t.cookie != cookie => (None, false),
        Some(t) => (Some(t), cookie != 0 && t.cookie == cookie),
        None => (None, false),
    }
}

/// The process's cache of records.
static CACHE: LazyLock<Mutex<Cache>> = LazyLock::new(Mutex::default);

fn cache() -> MutexGuard<'static, Cache> {
    CACHE.lock().unwrap_or_else(|e| e.into_inner())
}

/// The cookie of socket `fd` (`SO_COOKIE`), 0 when it has none to tell.
fn socket_cookie(fd: RawFd) -> u64 {
    let mut v = 0u64;
    let mut len = std::mem::size_of::<u64>() as libc::socklen_t;
    // SAFETY: `v` is `len` writable bytes.
    let r = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_COOKIE,
            (&mut v as *mut u64).cast(),
            &mut len,
        )
    };
    if r == 0 {
        v
    } else {
        0
    }
}

/// Fetches every record into the cache, unless another thread did since `generation`.
fn refresh(generation: u64) -> Result<(), CtlError> {
    let mut c = cache();
    if c.generation() != generation {
        return Ok(());
    }
    let mut s = slot();
    if s.is_none() {
        *s = Some(Client::connect()?);
    }
    let r = s.as_ref().map(Client::taken).unwrap_or(Ok(Vec::new()));
    match r {
        Ok(records) => {
            c.fill(records, Instant::now());
            Ok(())
        }
        Err(e) => {
            *s = None;
            Err(e)
        }
    }
}

/// The record of the connected TCP socket `fd`: from the cache when a dump holds it (its
/// cookie names it: no other call is made), else by its own query, for the 4-tuple `ends`
/// gives (called only then: the two address lookups are two system calls per socket, which
/// the cached answers, all but the first of a takeover's, do without).
fn of_socket(
    fd: RawFd,
    ends: impl FnOnce() -> std::io::Result<(SocketAddr, SocketAddr)>,
) -> Result<Option<TakenInfo>, CtlError> {
    let cookie = socket_cookie(fd);
    let generation = {
        let c = cache();
        if let Some(t) = c.get(cookie, Instant::now()) {
            return Ok(Some(t));
        }
        c.generation()
    };
    // A failed system call keeps its errno (ptcp_resume_get() returns it, negated).
    let (local, peer) = ends().map_err(|e| match e.raw_os_error() {
        Some(errno) => CtlError::Kernel {
            errno,
            msg: Some("the socket's addresses".into()),
        },
        None => CtlError::Transport(e.to_string()),
    })?;
    let (answer, own) = judge(cookie, of_addrs(local, peer)?);
    if own {
        // Only faster for the next sockets: a failed dump leaves them their own queries.
        let _ = refresh(generation);
    }
    Ok(answer)
}

/// The record of the connected socket `s`.
pub fn of_stream(s: &TcpStream) -> Result<Option<TakenInfo>, CtlError> {
    of_socket(s.as_raw_fd(), || Ok((s.local_addr()?, s.peer_addr()?)))
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
    of_socket(fd, || Ok((sockaddr(fd, false)?, sockaddr(fd, true)?)))
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
    let ends = || Ok((sockaddr(fd, false)?, sockaddr(fd, true)?));
    match of_socket(fd, ends) {
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;
    use std::os::fd::{FromRawFd, OwnedFd};
    use std::time::Duration;

    fn rec(port: u16, cookie: u64, age_ms: u64) -> TakenInfo {
        let a: SocketAddr = "10.0.0.1:80".parse().unwrap();
        let c = SocketAddr::new("10.0.0.100".parse().unwrap(), port);
        TakenInfo {
            key: key(a, c),
            sent_offset: u32::from(port),
            cookie,
            age_ms,
            ..Default::default()
        }
    }

    #[test]
    fn the_cache_answers_by_cookie_and_ages_its_records() {
        let mut c = Cache::default();
        let t0 = Instant::now();
        assert_eq!(c.get(7, t0), None);
        // Records without a cookie (an older module) are not kept; cookie 0 finds nothing.
        c.fill([rec(1, 7, 5), rec(2, 9, 0), rec(3, 0, 0)], t0);
        assert_eq!((c.len(), c.generation()), (2, 1));
        assert_eq!(c.get(0, t0), None);
        assert_eq!(c.get(8, t0), None);
        let t = c.get(7, t0 + Duration::from_millis(40)).unwrap();
        assert_eq!((t.sent_offset, t.age_ms), (1, 45));
        // A later dump replaces everything: a record gone from the kernel goes here too.
        c.fill([rec(4, 11, 0)], t0);
        assert_eq!((c.len(), c.generation()), (1, 2));
        assert_eq!(c.get(7, t0), None);
        assert_eq!(c.get(11, t0).map(|t| t.sent_offset), Some(4));
    }

    #[test]
    fn a_record_naming_another_socket_is_not_this_ones() {
        // Its own record: the answer, and worth a dump.
        assert_eq!(judge(7, Some(rec(1, 7, 0))), (Some(rec(1, 7, 0)), true));
        // The 4-tuple's newest record is another socket's: this one is a new connection.
        assert_eq!(judge(7, Some(rec(1, 8, 0))), (None, false));
        // Without a cookie on either side the 4-tuple decides, as before cookies.
        assert_eq!(judge(0, Some(rec(1, 8, 0))), (Some(rec(1, 8, 0)), false));
        assert_eq!(judge(7, Some(rec(1, 0, 0))), (Some(rec(1, 0, 0)), false));
        assert_eq!(judge(7, None), (None, false));
    }

    #[test]
    fn sockets_have_distinct_cookies() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let a = TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (b, _) = l.accept().unwrap();
        let (ca, cb) = (socket_cookie(a.as_raw_fd()), socket_cookie(b.as_raw_fd()));
        assert!(ca != 0 && cb != 0 && ca != cb, "{ca} {cb}");
        assert_eq!(
            socket_cookie(a.as_raw_fd()),
            ca,
            "a socket keeps its cookie"
        );
        assert_eq!(socket_cookie(-1), 0);
    }

    #[test]
    fn a_cached_socket_is_answered_without_looking_up_its_addresses() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let _a = TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (b, _) = l.accept().unwrap();
        let cookie = socket_cookie(b.as_raw_fd());
        cache().fill([rec(7, cookie, 3)], Instant::now());
        let t = of_socket(b.as_raw_fd(), || {
            panic!("addresses looked up for a cached socket")
        })
        .unwrap()
        .unwrap();
        assert_eq!((t.sent_offset, t.cookie), (7, cookie));
    }

    #[test]
    fn the_c_call_returns_the_errno_of_a_socket_it_cannot_look_up() {
        let f = std::fs::File::open("/dev/null").unwrap();
        // SAFETY: a null `out` is allowed.
        let r = unsafe { ptcp_resume_get(f.as_raw_fd(), std::ptr::null_mut()) };
        assert_eq!(r, -libc::ENOTSOCK);
        // SAFETY: as above.
        let r = unsafe { ptcp_resume_get(-1, std::ptr::null_mut()) };
        assert_eq!(r, -libc::EBADF);
        // SAFETY: socket() has no memory arguments.
        let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0) };
        // SAFETY: `fd` is ours, an unconnected TCP socket.
        let s = unsafe { OwnedFd::from_raw_fd(fd) };
        // SAFETY: as above.
        let r = unsafe { ptcp_resume_get(s.as_raw_fd(), std::ptr::null_mut()) };
        assert_eq!(r, -libc::ENOTCONN);
    }
}
