// SPDX-License-Identifier: GPL-2.0

//! `ptcp-testapp restore`: the failed owner's mirrored connections restored from userspace
//! with TCP_REPAIR, as CRIU (libsoccr) restores sockets, for comparison with the in-kernel
//! takeover (`permctl takeover`, permtcp/takeover.rs, whose order of steps this follows).
//!
//! Run in the peer's namespace after the owner failed, with the service address assumed but
//! not yet announced. The mirror is read by running `permctl --json conns` and, for a side
//! with unacknowledged bytes, `permctl conn-data`. Every ready, established connection is
//! restored; then one line goes to stdout:
//!
//! ```text
//! restored=N failed=F skipped=S recv_bytes=R send_bytes=B fetch_ms=.. restore_us=.. per_conn_us=..
//! ```
//!
//! `fetch_ms` is reading the mirror, `restore_us` the restore loop alone (socket creation to
//! the owner's unacknowledged bytes sent again), `recv_bytes`/`send_bytes` the client's bytes
//! queued for reading and the owner's bytes sent again. Then each restored connection is
//! served with the echo protocol of `echo-serve` (a thread each, or with `--event-loop` all
//! from one thread: evloop.rs); the command exits when all are closed.

use serde::Deserialize;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::{FromRawFd, OwnedFd};
use std::process::Command;
use std::time::Instant;

/// One direction of a mirrored connection (`permctl --json conns`).
#[derive(Deserialize)]
struct Half {
    snd_nxt: u32,
    snd_una: u32,
    window: u32,
    max_window: u32,
    window_seq: u32,
    wscale: u8,
    mss: Option<u16>,
    tsval: Option<u32>,
}

#[derive(Deserialize)]
struct Conn {
    owner: SocketAddr,
    client: SocketAddr,
    state: String,
    ready: bool,
    window_scaling: bool,
    sack: bool,
    timestamps: bool,
    idle_ms: u64,
    owner_sent: Half,
    client_sent: Half,
}

/// A connection to restore: the mirror's view and the unacknowledged bytes of both sides.
struct Plan {
    c: Conn,
    /// The owner's unacknowledged bytes, sent again after repair.
    send: Vec<u8>,
    /// The client's bytes the owner had not acknowledged, queued for reading.
    recv: Vec<u8>,
}

/// `struct tcp_repair_opt`.
#[repr(C)]
struct RepairOpt {
    code: u32,
    val: u32,
}

const TCPOPT_MSS: u32 = 2;
const TCPOPT_WINDOW: u32 = 3;
const TCPOPT_SACK_PERM: u32 = 4;
const TCPOPT_TIMESTAMP: u32 = 8;

fn permctl(args: &[&str]) -> Result<Vec<u8>, String> {
    let out = Command::new("permctl")
        .args(args)
        .output()
        .map_err(|e| format!("permctl: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "permctl {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(out.stdout)
}

/// The unacknowledged bytes of one side: the tail of what the mirror retains, which ends at
/// `snd_nxt` (a ready connection has no hole from `snd_una` on).
fn unacked(c: &Conn, side: &str, h: &Half) -> Result<Vec<u8>, String> {
    let n = h.snd_nxt.wrapping_sub(h.snd_una) as usize;
    if n == 0 {
        return Ok(Vec::new());
    }
    let file = std::env::temp_dir().join(format!("ptcp-restore-{}", std::process::id()));
    let path = file.to_str().expect("UTF-8 temp dir");
    let (owner, client) = (c.owner.to_string(), c.client.to_string());
    permctl(&[
        "conn-data",
        "--owner",
        &owner,
        "--client",
        &client,
        "--side",
        side,
        "--out",
        path,
    ])?;
    let all = std::fs::read(path).map_err(|e| format!("{path}: {e}"))?;
    let _ = std::fs::remove_file(path);
    all.get(all.len().wrapping_sub(n)..)
        .map(<[u8]>::to_vec)
        .ok_or_else(|| format!("{owner} {client}: {side} retains {} < {n} bytes", all.len()))
}

/// Reads the mirror: every ready, established connection, and how many others there are.
fn fetch() -> Result<(Vec<Plan>, usize), String> {
    let conns: Vec<Conn> = serde_json::from_slice(&permctl(&["--json", "conns"])?)
        .map_err(|e| format!("permctl conns: {e}"))?;
    let total = conns.len();
    let mut plans = Vec::new();
    for c in conns {
        if c.ready && c.state == "ESTAB" {
            let send = unacked(&c, "owner", &c.owner_sent)?;
            let recv = unacked(&c, "client", &c.client_sent)?;
            plans.push(Plan { c, send, recv });
        }
    }
    let skipped = total - plans.len();
    Ok((plans, skipped))
}

fn set<T: ?Sized>(fd: i32, level: i32, opt: i32, v: &T, what: &str) -> Result<(), String> {
    let len = std::mem::size_of_val(v) as libc::socklen_t;
    // SAFETY: `v` is readable for `len` bytes; the kernel copies them.
    let r = unsafe { libc::setsockopt(fd, level, opt, (v as *const T).cast(), len) };
    if r == 0 {
        Ok(())
    } else {
        Err(format!("{what}: {}", std::io::Error::last_os_error()))
    }
}

/// bind() or connect() `fd` to `a`.
fn sockaddr_call(
    fd: i32,
    a: SocketAddr,
    call: unsafe extern "C" fn(i32, *const libc::sockaddr, libc::socklen_t) -> i32,
    what: &str,
) -> Result<(), String> {
    let r = match a {
        SocketAddr::V4(v4) => {
            let sin = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: v4.port().to_be(),
                sin_addr: libc::in_addr {
                    s_addr: u32::from_ne_bytes(v4.ip().octets()),
                },
                sin_zero: [0; 8],
            };
            let len = std::mem::size_of_val(&sin) as libc::socklen_t;
            // SAFETY: `sin` is a valid sockaddr_in of `len` bytes for the call's duration.
            unsafe { call(fd, (&sin as *const libc::sockaddr_in).cast(), len) }
        }
        SocketAddr::V6(v6) => {
            let sin6 = libc::sockaddr_in6 {
                sin6_family: libc::AF_INET6 as libc::sa_family_t,
                sin6_port: v6.port().to_be(),
                sin6_flowinfo: 0,
                sin6_addr: libc::in6_addr {
                    s6_addr: v6.ip().octets(),
                },
                sin6_scope_id: v6.scope_id(),
            };
            let len = std::mem::size_of_val(&sin6) as libc::socklen_t;
            // SAFETY: `sin6` is a valid sockaddr_in6 of `len` bytes for the call's duration.
            unsafe { call(fd, (&sin6 as *const libc::sockaddr_in6).cast(), len) }
        }
    };
    if r == 0 {
        Ok(())
    } else {
        Err(format!("{what} {a}: {}", std::io::Error::last_os_error()))
    }
}

/// Restores one connection, in the order of permtcp/takeover.rs `rebuild()`; `fetched` is
/// when the mirror was read (the owner's timestamp clock ran on since).
fn restore(p: &Plan, fetched: Instant) -> Result<TcpStream, String> {
    let (c, o, cl) = (&p.c, &p.c.owner_sent, &p.c.client_sent);
    let v6 = c.owner.is_ipv6();
    let family = if v6 { libc::AF_INET6 } else { libc::AF_INET };
    // SAFETY: socket() has no memory arguments.
    let fd = unsafe { libc::socket(family, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(format!("socket: {}", std::io::Error::last_os_error()));
    }
    // SAFETY: `fd` is a socket just created and owned by nobody else.
    let mut s = TcpStream::from(unsafe { OwnedFd::from_raw_fd(fd) });
    let tcp = libc::IPPROTO_TCP;
    set(fd, tcp, libc::TCP_REPAIR, &1i32, "TCP_REPAIR")?;
    set(
        fd,
        tcp,
        libc::TCP_REPAIR_QUEUE,
        &crate::TCP_SEND_QUEUE,
        "queue",
    )?;
    set(fd, tcp, libc::TCP_QUEUE_SEQ, &o.snd_una, "send seq")?;
    set(
        fd,
        tcp,
        libc::TCP_REPAIR_QUEUE,
        &crate::TCP_RECV_QUEUE,
        "queue",
    )?;
    set(fd, tcp, libc::TCP_QUEUE_SEQ, &cl.snd_una, "recv seq")?;
    // The client's MSS before connect(), or the socket stays at the minimum.
    let mss = u32::from(cl.mss.unwrap_or(536));
    set(fd, tcp, libc::TCP_MAXSEG, &mss, "TCP_MAXSEG")?;
    let (level, freebind) = if v6 {
        (libc::IPPROTO_IPV6, libc::IPV6_FREEBIND)
    } else {
        (libc::IPPROTO_IP, libc::IP_FREEBIND)
    };
    set(fd, level, freebind, &1i32, "freebind")?;
    // Repair mode lets every restored socket bind the same address and port; connect()
    // sends nothing and establishes the socket at once.
    sockaddr_call(fd, c.owner, libc::bind, "bind")?;
    sockaddr_call(fd, c.client, libc::connect, "connect")?;
    let mut opts = vec![RepairOpt {
        code: TCPOPT_MSS,
        val: mss,
    }];
    if c.window_scaling {
        let val = u32::from(cl.wscale) | u32::from(o.wscale) << 16;
        opts.push(RepairOpt {
            code: TCPOPT_WINDOW,
            val,
        });
    }
    if c.sack {
        opts.push(RepairOpt {
            code: TCPOPT_SACK_PERM,
            val: 0,
        });
    }
    let ts = o.tsval.filter(|_| c.timestamps);
    if ts.is_some() {
        opts.push(RepairOpt {
            code: TCPOPT_TIMESTAMP,
            val: 0,
        });
    }
    set(fd, tcp, libc::TCP_REPAIR_OPTIONS, &opts[..], "options")?;
    if let Some(tsval) = ts {
        // Continue the owner's clock past its last TSval (PAWS); bit 0 flags usec clocks.
        let age = c.idle_ms + fetched.elapsed().as_millis() as u64;
        let v = tsval.wrapping_add(age as u32).wrapping_add(2) & !1;
        set(fd, tcp, libc::TCP_TIMESTAMP, &v, "TCP_TIMESTAMP")?;
    }
    if !p.recv.is_empty() {
        // In repair mode, what is sent on the receive queue is queued for reading.
        set(
            fd,
            tcp,
            libc::TCP_REPAIR_QUEUE,
            &crate::TCP_RECV_QUEUE,
            "queue",
        )?;
        s.write_all(&p.recv)
            .map_err(|e| format!("queueing received data: {e}"))?;
    }
    let w = crate::RepairWindow {
        snd_wl1: cl.window_seq,
        snd_wnd: cl.window,
        max_window: cl.max_window.max(cl.window),
        rcv_wnd: o.window,
        rcv_wup: cl.snd_una,
    };
    set(fd, tcp, libc::TCP_REPAIR_WINDOW, &w, "TCP_REPAIR_WINDOW")?;
    // Repair off sends a window probe, which acknowledges the client's bytes the owner had
    // not, so that the client answers at once; as the kernel does, only when there are such
    // bytes.
    let off = if p.recv.is_empty() {
        crate::TCP_REPAIR_OFF_NO_WP
    } else {
        0
    };
    set(fd, tcp, libc::TCP_REPAIR, &off, "repair off")?;
    set(
        fd,
        libc::SOL_SOCKET,
        libc::SO_REUSEADDR,
        &1i32,
        "SO_REUSEADDR",
    )?;
    s.write_all(&p.send)
        .map_err(|e| format!("resending unacknowledged data: {e}"))?;
    Ok(s)
}

/// Serves the echo protocol of `echo-serve` on `s` until the client closes it.
fn echo(mut s: TcpStream) {
    let mut req = [0u8; 8];
    while s.read_exact(&mut req).is_ok() {
        if s.write_all(&crate::answer(u64::from_be_bytes(req)))
            .is_err()
        {
            break;
        }
    }
}

/// `restore`: fetch, restore, report, serve. Exits 1 if the mirror cannot be read or a
/// connection could not be restored.
pub fn run(event_loop: bool) -> bool {
    // One descriptor per connection: ten thousand exceed the default limits.
    crate::raise_nofile(1 << 17);
    let t0 = Instant::now();
    let (plans, skipped) = match fetch() {
        Ok(f) => f,
        Err(e) => {
            eprintln!("reading the mirror: {e}");
            return false;
        }
    };
    let fetched = Instant::now();
    let fetch_ms = (fetched - t0).as_secs_f64() * 1e3;
    let mut socks = Vec::with_capacity(plans.len());
    let mut errors = Vec::new();
    for p in &plans {
        match restore(p, fetched) {
            Ok(s) => socks.push(s),
            Err(e) => errors.push(format!("{} <-> {}: {e}", p.c.owner, p.c.client)),
        }
    }
    let restore_us = fetched.elapsed().as_micros();
    for e in errors.iter().take(10) {
        eprintln!("restore failed: {e}");
    }
    let (recv, send) = plans
        .iter()
        .fold((0, 0), |(r, s), p| (r + p.recv.len(), s + p.send.len()));
    println!(
        "restored={} failed={} skipped={skipped} recv_bytes={recv} send_bytes={send} fetch_ms={fetch_ms:.1} restore_us={restore_us} per_conn_us={}",
        socks.len(),
        errors.len(),
        restore_us / plans.len().max(1) as u128
    );
    if event_loop {
        crate::evloop::serve_all(socks);
        return errors.is_empty();
    }
    let threads: Vec<_> = socks
        .into_iter()
        .map(|s| {
            std::thread::Builder::new()
                .stack_size(128 << 10)
                .spawn(move || echo(s))
                .expect("thread")
        })
        .collect();
    for t in threads {
        let _ = t.join();
    }
    errors.is_empty()
}
