// SPDX-License-Identifier: GPL-2.0

//! Test traffic for permtcp's selftests, and the oracle: the owner's own kernel state.
//!
//! ```text
//! ptcp-testapp serve  ADDR:PORT PATTERN DIR   accept one connection, run PATTERN, and at the
//!                                             quiescent point write DIR/state.json (the
//!                                             socket's state read with TCP_REPAIR, as CRIU
//!                                             does), DIR/sent.bin and DIR/recv.bin; with
//!                                             PTCP_HOLD set, first create DIR/quiet and wait
//!                                             for DIR/forged (hostile segments sent);
//!                                             with PTCP_QUIET_FILE set, first wait for
//!                                             the client to create that file
//! ptcp-testapp client ADDR:PORT PATTERN       the other end of PATTERN; with
//!                                             PTCP_QUIET_FILE set, create that file once
//!                                             it has read and sent everything and
//!                                             nothing is left in flight
//! ptcp-testapp syn IFACE DSTMAC SRC DST GOOD  send one SYN SRC -> DST (ADDR:PORT, IPv4 or
//!                                             IPv6) as a raw Ethernet frame (no checksum
//!                                             offload), with a correct TCP checksum if GOOD
//!                                             is `good`
//! ptcp-testapp forge IFACE DSTMAC CONNS_JSON PORT KIND [pad=N]
//!                                             one raw segment against the connection of the
//!                                             owner's PORT in the peer's `permctl --json
//!                                             conns` output (forge.rs lists the KINDs), with
//!                                             N bytes of Ethernet padding
//! ptcp-testapp flood IFACE DSTMAC SRCIP DST N send N raw SYNs SRCIP:10000.. -> DST
//! ptcp-testapp lossy-relay A B PERCENT [SEED [LOG]]  relay frames between interfaces A
//!                                             and B, dropping PERCENT % of those from A to
//!                                             B (a lossy switch port; relay.rs); LOG: each
//!                                             TCP segment A to B, relayed or dropped
//! ptcp-testapp nlfuzz SECONDS SEED            random and mutated requests to the permtcp
//!                                             netlink family for SECONDS (nlfuzz.rs)
//! ptcp-testapp echo-serve ADDR:PORT [--wait-bind] [--resume] [--stall-at-round=N]
//!                                             accept connections forever; answer each 8-byte
//!                                             request (a round number) with 1000 bytes
//!                                             derived from it; --wait-bind retries a refused
//!                                             bind; --resume continues taken-over
//!                                             connections at permctl's offsets, answering
//!                                             redelivered requests only where the dead server
//!                                             had not; --stall-at-round=N reads request N,
//!                                             creates /tmp/echo-stalled and never answers;
//!                                             [--backlog=N] listen() backlog (default 4096);
//!                                             [--reuseport=K] K listeners in a reuseport
//!                                             group, listener i writing how many it accepted
//!                                             to /tmp/echo-accepted.i; [--event-loop] all
//!                                             connections answered from one thread (epoll,
//!                                             evloop.rs), not a thread each
//! ptcp-testapp bind ADDR:PORT                 one bind(); prints the outcome, exit 1 if refused
//! ptcp-testapp listen ADDR:PORT               listen (backlog 4096) and never accept: the
//!                                             connections wait in the accept queue (the
//!                                             takeover profile, selftests/prof/takeover.sh)
//! ptcp-testapp down-serve ADDR:PORT BYTES [--resume] [--read-first]
//!                                             send a position-addressable stream's first
//!                                             BYTES to each client; --resume: from where
//!                                             permctl says the taken-over connection stands;
//!                                             --read-first: after the client's request and FIN
//! ptcp-testapp down-client ADDR:PORT BYTES PAUSE [--half-close] [--trace FILE]
//!                                             read and check BYTES; pause after a quarter
//!                                             (PAUSE `-`: never); --half-close: send a
//!                                             request and FIN first; --trace: write the
//!                                             monotonic clock (ns) and the bytes received
//!                                             so far after every read
//! ptcp-testapp up-serve ADDR:PORT BYTES [--resume] [--stall-at N FILE] [--greet]
//!                                             read and check a client's BYTES, answer OK;
//!                                             --greet: greet and send FIN first, the outcome
//!                                             goes to /tmp/up-result
//! ptcp-testapp up-client ADDR:PORT BYTES [--greeted]
//!                                             send BYTES, read the answer (--greeted: read
//!                                             the greeting up to its FIN first)
//! ptcp-testapp stream-sum BYTES               the checksum of a crash-free run
//! ptcp-testapp echo-client ADDR:PORT ROUNDS PAUSE [--interval-ms N] [--trace FILE]
//!                                             ROUNDS requests, checking every answer; after
//!                                             half of them create PAUSE.wait and wait for
//!                                             PAUSE (`-`: no pause); N ms between rounds;
//!                                             --trace as down-client's, per answer
//! ptcp-testapp timeline TRACE OUT.svg [--zero NS] [--title T] [--mark LABEL@SECONDS]...
//!                                             draw a trace's bytes over time as an SVG, in
//!                                             seconds after NS (the trace's clock), with
//!                                             the marks as vertical lines
//! ptcp-testapp echo-steady ADDR:PORT CONNS STOP [--interval-ms N]  CONNS connections, a
//!                                     round every N ms (20) on each until file STOP exists
//!                                     (STOP.wait once all started), spread over N ms;
//!                                     prints each one's worst round (median, 90th and 99th
//!                                     percentiles, largest), in all and per phase (STOP.1,
//!                                     STOP.2, ... start phases 1, 2, ...)
//! ptcp-testapp echo-many ADDR:PORT CONNS PAUSE  CONNS connections, a round on each before
//!                                             and after a pause (a mass takeover)
//! ptcp-testapp timed CMD ARGS...              run CMD, print its wall time (wall_us=)
//! ptcp-testapp restore [--event-loop]         restore the failed owner's mirrored
//!                                             connections from userspace and serve them
//!                                             (restore.rs)
//! ptcp-testapp compare DIR                    compare DIR/state.json with the peer's mirror
//!                                             (DIR/conns.json, DIR/out.bin, DIR/in.bin,
//!                                             DIR/out.txt, DIR/in.txt); prints KTAP lines
//! ptcp-testapp compare --lossy DIR [LOG]      the same after frames were lost on the way
//!                                             to the peer: held bytes right, ready only
//!                                             when complete (or when the relay's LOG shows
//!                                             every frame that would tell lost), a reason
//!                                             when not
//! ptcp-testapp udp-spoof IFACE DSTMAC SRC DST HEX   forged cluster traffic (udp_forge.rs):
//! ptcp-testapp udp-capture IFACE SRCIP DST COUNT MS one UDP datagram from any source,
//! ptcp-testapp reseal HEX KEY_ID KEY_HEX            capture for replay, a permtcpd datagram
//! ptcp-testapp directive-hex NODE OWNER CLIENT [FROM] tagged with another key, the old
//!                                                   plain UDP directive
//! ```
//!
//! PATTERN is `down:BYTES` (server to client), `up:BYTES` (client to server) or
//! `rr:ROUNDS:REQ:RESP` (request/response). Payload bytes come from a seeded generator so
//! that both ends know the stream. After the pattern, both ends wait until everything is
//! acknowledged, the server reads its state, and both exchange one byte to finish.

mod bulk;
mod evloop;
mod forge;
mod nlfuzz;
mod relay;
mod restore;
mod timeline;
mod udp_forge;

use serde::{Deserialize, Serialize};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

const TCP_REPAIR: i32 = 19;
const TCP_REPAIR_QUEUE: i32 = 20;
const TCP_QUEUE_SEQ: i32 = 21;
const TCP_TIMESTAMP: i32 = 24;
const TCP_REPAIR_WINDOW: i32 = 29;
const TCP_RECV_QUEUE: i32 = 1;
const TCP_SEND_QUEUE: i32 = 2;
const TCP_REPAIR_OFF_NO_WP: i32 = -1;
const SIOCOUTQ: libc::c_ulong = 0x5411;

#[derive(Clone, Copy)]
enum Pattern {
    Down(usize),
    Up(usize),
    Rr(usize, usize, usize),
}

fn parse_pattern(s: &str) -> Pattern {
    let n: Vec<usize> = s
        .split(':')
        .skip(1)
        .map(|v| v.parse().expect("number"))
        .collect();
    match (s.split(':').next(), n.as_slice()) {
        (Some("down"), [b]) => Pattern::Down(*b),
        (Some("up"), [b]) => Pattern::Up(*b),
        (Some("rr"), [r, q, p]) => Pattern::Rr(*r, *q, *p),
        _ => panic!("bad pattern {s}"),
    }
}

/// The deterministic stream one direction carries.
struct Stream(u64);

impl Stream {
    fn take(&mut self, n: usize) -> Vec<u8> {
        (0..n)
            .map(|_| {
                self.0 = self
                    .0
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                (self.0 >> 56) as u8
            })
            .collect()
    }
}

fn sockopt_get<T: Default>(fd: i32, opt: i32) -> T {
    let mut v = T::default();
    let mut len = std::mem::size_of::<T>() as libc::socklen_t;
    // SAFETY: `v` is a writable T of `len` bytes.
    let r = unsafe {
        libc::getsockopt(
            fd,
            libc::IPPROTO_TCP,
            opt,
            &mut v as *mut T as *mut _,
            &mut len,
        )
    };
    assert_eq!(
        r,
        0,
        "getsockopt {opt}: {}",
        std::io::Error::last_os_error()
    );
    v
}

fn sockopt_set(fd: i32, opt: i32, v: i32) {
    // SAFETY: passes a valid i32.
    let r =
        unsafe { libc::setsockopt(fd, libc::IPPROTO_TCP, opt, &v as *const i32 as *const _, 4) };
    assert_eq!(
        r,
        0,
        "setsockopt {opt}={v}: {}",
        std::io::Error::last_os_error()
    );
}

fn outq(fd: i32) -> i32 {
    let mut v: i32 = 0;
    // SAFETY: SIOCOUTQ writes an int.
    unsafe { libc::ioctl(fd, SIOCOUTQ, &mut v) };
    v
}

/// Waits until everything this end sent is acknowledged, then lets delayed ACKs go out.
fn quiesce(s: &TcpStream) {
    let start = Instant::now();
    while outq(s.as_raw_fd()) != 0 {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "data never acknowledged"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    std::thread::sleep(Duration::from_millis(600));
}

#[repr(C)]
#[derive(Default)]
struct RepairWindow {
    snd_wl1: u32,
    snd_wnd: u32,
    max_window: u32,
    rcv_wnd: u32,
    rcv_wup: u32,
}

/// What the owner's kernel holds for the connection.
#[derive(Serialize, Deserialize, Debug)]
struct State {
    local: String,
    peer: String,
    snd_nxt: u32,
    rcv_nxt: u32,
    snd_wl1: u32,
    snd_wnd: u32,
    max_window: u32,
    rcv_wnd: u32,
    rcv_wup: u32,
    snd_wscale: u8,
    rcv_wscale: u8,
    opt_timestamps: bool,
    opt_sack: bool,
    opt_wscale: bool,
    mss_clamp: u32,
    ts_now: u32,
    sent: usize,
    received: usize,
    /// Segments the owner's kernel coalesced in a socket's backlog (`TcpExt:
    /// TCPBacklogCoalesce` of its namespace) while the connection ran: the window of each
    /// merged acknowledgement but the last never reached `tcp_ack()`.
    #[serde(default)]
    backlog_coalesced: u64,
}

/// `TcpExt: TCPBacklogCoalesce` of this process's network namespace (0 when unknown).
fn backlog_coalesce_count() -> u64 {
    let text = std::fs::read_to_string("/proc/net/netstat").unwrap_or_default();
    let mut rows = text.lines().filter(|l| l.starts_with("TcpExt:"));
    let (Some(names), Some(values)) = (rows.next(), rows.next()) else {
        return 0;
    };
    names
        .split_whitespace()
        .zip(values.split_whitespace())
        .find(|(n, _)| *n == "TCPBacklogCoalesce")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0)
}

fn read_state(s: &TcpStream, sent: usize, received: usize) -> State {
    let fd = s.as_raw_fd();
    sockopt_set(fd, TCP_REPAIR, 1);
    sockopt_set(fd, TCP_REPAIR_QUEUE, TCP_SEND_QUEUE);
    let snd_nxt: u32 = sockopt_get(fd, TCP_QUEUE_SEQ);
    sockopt_set(fd, TCP_REPAIR_QUEUE, TCP_RECV_QUEUE);
    let rcv_nxt: u32 = sockopt_get(fd, TCP_QUEUE_SEQ);
    let w: RepairWindow = sockopt_get(fd, TCP_REPAIR_WINDOW);
    let mss_clamp: u32 = sockopt_get(fd, libc::TCP_MAXSEG);
    let ts_now: u32 = sockopt_get(fd, TCP_TIMESTAMP);
    let info: [u8; 232] = {
        let mut b = [0u8; 232];
        let mut len = b.len() as libc::socklen_t;
        // SAFETY: `b` is writable for `len` bytes.
        unsafe {
            libc::getsockopt(
                fd,
                libc::IPPROTO_TCP,
                libc::TCP_INFO,
                b.as_mut_ptr() as *mut _,
                &mut len,
            )
        };
        b
    };
    sockopt_set(fd, TCP_REPAIR, TCP_REPAIR_OFF_NO_WP);
    State {
        local: s.local_addr().unwrap().to_string(),
        peer: s.peer_addr().unwrap().to_string(),
        snd_nxt,
        rcv_nxt,
        snd_wl1: w.snd_wl1,
        snd_wnd: w.snd_wnd,
        max_window: w.max_window,
        rcv_wnd: w.rcv_wnd,
        rcv_wup: w.rcv_wup,
        snd_wscale: info[6] & 0xf,
        rcv_wscale: info[6] >> 4,
        opt_timestamps: info[5] & 1 != 0,
        opt_sack: info[5] & 2 != 0,
        opt_wscale: info[5] & 4 != 0,
        mss_clamp,
        ts_now,
        sent,
        received,
        backlog_coalesced: 0,
    }
}

/// Runs the pattern; returns (sent, received) bytes.
fn run(s: &mut TcpStream, p: Pattern, server: bool) -> (Vec<u8>, Vec<u8>) {
    let (mut down, mut up) = (Stream(1), Stream(2));
    let (mut sent, mut recv) = (Vec::new(), Vec::new());
    let mut xfer = |s: &mut TcpStream, n: usize, sending: bool, gen: &mut Stream| {
        if sending {
            let data = gen.take(n);
            s.write_all(&data).unwrap();
            sent.extend_from_slice(&data);
        } else {
            let mut buf = vec![0u8; n];
            s.read_exact(&mut buf).unwrap();
            assert_eq!(buf, gen.take(n), "stream corrupted");
            recv.extend_from_slice(&buf);
        }
    };
    match p {
        Pattern::Down(n) => xfer(s, n, server, &mut down),
        Pattern::Up(n) => xfer(s, n, !server, &mut up),
        Pattern::Rr(rounds, q, r) => {
            for _ in 0..rounds {
                xfer(s, q, !server, &mut up);
                xfer(s, r, server, &mut down);
            }
        }
    }
    (sent, recv)
}

fn finish(s: &mut TcpStream, server: bool) {
    // One byte each way after the state was read, so neither end closes early.
    let mut b = [0u8; 1];
    if server {
        s.write_all(b"!").unwrap();
        s.read_exact(&mut b).unwrap();
    } else {
        s.read_exact(&mut b).unwrap();
        s.write_all(b"!").unwrap();
    }
}

fn serve(addr: SocketAddr, p: Pattern, dir: &str) {
    let l = TcpListener::bind(addr).expect("bind");
    std::fs::write(format!("{dir}/listening"), b"").unwrap();
    let (mut s, _) = l.accept().unwrap();
    let coalesced = backlog_coalesce_count();
    let (sent, recv) = run(&mut s, p, true);
    // The client may still be reading what it was sent, and each read can send a window
    // update: the owner's kernel is read once the client said it is done.
    if let Some(f) = std::env::var_os("PTCP_QUIET_FILE") {
        wait_for(f, "the client never went quiet");
    }
    quiesce(&s);
    if std::env::var_os("PTCP_HOLD").is_some() {
        // The test forges segments against the quiet connection now; the state is read after
        // the owner's kernel has dealt with them (challenge ACKs included).
        std::fs::write(format!("{dir}/quiet"), b"").unwrap();
        wait_for(format!("{dir}/forged"), "never forged");
        quiesce(&s);
    }
    let mut st = read_state(&s, sent.len(), recv.len());
    st.backlog_coalesced = backlog_coalesce_count().saturating_sub(coalesced);
    std::fs::write(format!("{dir}/sent.bin"), &sent).unwrap();
    std::fs::write(format!("{dir}/recv.bin"), &recv).unwrap();
    std::fs::write(
        format!("{dir}/state.json"),
        serde_json::to_string(&st).unwrap(),
    )
    .unwrap();
    // The test script snapshots the peer's mirror now, then lets the server finish.
    wait_for(format!("{dir}/go"), "no go");
    finish(&mut s, true);
}

/// Waits up to a minute for file `f` to exist; panics with `why` past that.
fn wait_for(f: impl AsRef<std::path::Path>, why: &str) {
    let start = Instant::now();
    while !f.as_ref().exists() {
        assert!(start.elapsed() < Duration::from_secs(60), "{why}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn client(addr: SocketAddr, p: Pattern) {
    let mut s = TcpStream::connect(addr).expect("connect");
    let start = Instant::now();
    let (sent, recv) = run(&mut s, p, false);
    let secs = start.elapsed().as_secs_f64();
    let bytes = sent.len() + recv.len();
    println!(
        "bytes={bytes} secs={secs:.3} MBps={:.1}",
        bytes as f64 / secs / 1e6
    );
    quiesce(&s);
    if let Some(f) = std::env::var_os("PTCP_QUIET_FILE") {
        std::fs::write(f, b"").unwrap();
    }
    finish(&mut s, false);
}

#[derive(Deserialize)]
struct Half {
    isn: u32,
    snd_nxt: u32,
    snd_una: u32,
    window: u32,
    max_window: u32,
    wscale: u8,
    mss: Option<u16>,
    tsval: Option<u32>,
    bytes_held: u32,
    syn_window: u16,
}

#[derive(Deserialize)]
struct Conn {
    owner: String,
    client: String,
    state: String,
    ready: bool,
    #[serde(default)]
    not_ready: Option<String>,
    window_scaling: bool,
    sack: bool,
    timestamps: bool,
    owner_sent: Half,
    client_sent: Half,
}

struct Ktap(usize, usize);

impl Ktap {
    fn check(&mut self, what: &str, ok: bool, detail: String) {
        self.0 += 1;
        if ok {
            println!("ok {} {what}", self.0);
        } else {
            self.1 += 1;
            println!("# {detail}");
            println!("not ok {} {what}", self.0);
        }
    }
}

fn first_seq(txt: &str) -> u32 {
    txt.split_whitespace()
        .chain(txt.split('"'))
        .find_map(|w| {
            w.strip_prefix("first_seq=")?
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        })
        .expect("first_seq in conn-data output")
}

/// Checks that `data`, retained from sequence `seq`, is the stream `all` at the right offset
/// and ends where the stream ends. An empty stream must retain nothing.
fn matches_stream(all: &[u8], isn: u32, seq: u32, data: &[u8]) -> Result<(), String> {
    if all.is_empty() || data.is_empty() {
        return if all.is_empty() == data.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "{} bytes retained of a {}-byte stream",
                data.len(),
                all.len()
            ))
        };
    }
    let off = seq.wrapping_sub(isn).wrapping_sub(1) as usize;
    if off + data.len() != all.len() {
        return Err(format!(
            "retained [{off}, {}) does not end at {}",
            off + data.len(),
            all.len()
        ));
    }
    match all.get(off..off + data.len()) {
        Some(expect) if expect == data => Ok(()),
        Some(_) => Err(format!(
            "{} bytes at stream offset {off} differ",
            data.len()
        )),
        None => Err(format!(
            "{} bytes at offset {off} beyond the {} sent",
            data.len(),
            all.len()
        )),
    }
}

fn compare(dir: &str) -> bool {
    let rd = |f: &str| std::fs::read(format!("{dir}/{f}")).unwrap_or_else(|e| panic!("{f}: {e}"));
    let st: State = serde_json::from_slice(&rd("state.json")).unwrap();
    let conns: Vec<Conn> = serde_json::from_slice(&rd("conns.json")).unwrap();
    let mut k = Ktap(0, 0);
    let c = conns
        .iter()
        .find(|c| c.owner == st.local && c.client == st.peer);
    k.check(
        "peer mirrors the connection",
        c.is_some(),
        format!("{} <-> {} not in the mirror", st.local, st.peer),
    );
    let Some(c) = c else { return false };
    let (o, cl) = (&c.owner_sent, &c.client_sent);
    let eq = |a: u64, b: u64| (a == b, format!("peer {a} != owner kernel {b}"));
    let mut chk = |what: &str, (ok, d): (bool, String)| k.check(what, ok, d);
    chk(
        "state ESTAB and ready",
        (
            c.state == "ESTAB" && c.ready,
            format!("{} ready={}", c.state, c.ready),
        ),
    );
    chk("snd_nxt", eq(o.snd_nxt.into(), st.snd_nxt.into()));
    chk(
        "snd_una (all acknowledged)",
        eq(o.snd_una.into(), st.snd_nxt.into()),
    );
    chk("rcv_nxt", eq(cl.snd_nxt.into(), st.rcv_nxt.into()));
    chk(
        "rcv_wnd: window the owner last advertised",
        eq(o.window.into(), st.rcv_wnd.into()),
    );
    chk(
        "snd_wnd: window the client last advertised",
        eq(cl.window.into(), st.snd_wnd.into()),
    );
    // The owner's kernel merges acknowledgements queued while its socket is busy
    // (tcp_add_backlog()); the merged segment carries the last one's window, so a larger
    // window advertised in between reaches the wire, and the mirror, but never the kernel's
    // max_window. A larger mirror is taken only when the kernel says it merged some.
    let max_window = match (cl.max_window, st.max_window) {
        (m, k) if m == k => (true, String::new()),
        (m, k) if m > k && st.backlog_coalesced > 0 => {
            println!(
                "# max_window: peer {m} > owner kernel {k}, which merged {} segments in its \
                 backlog (their windows never reached tcp_ack)",
                st.backlog_coalesced
            );
            (true, String::new())
        }
        (m, k) => (
            false,
            format!(
                "peer {m} != owner kernel {k} (backlog merges: {})",
                st.backlog_coalesced
            ),
        ),
    };
    chk("max_window", max_window);
    chk(
        "window scaling negotiated",
        eq(c.window_scaling.into(), st.opt_wscale.into()),
    );
    chk(
        "owner's window scale (rcv_wscale)",
        eq(o.wscale.into(), st.rcv_wscale.into()),
    );
    chk(
        "client's window scale (snd_wscale)",
        eq(cl.wscale.into(), st.snd_wscale.into()),
    );
    chk("SACK negotiated", eq(c.sack.into(), st.opt_sack.into()));
    chk(
        "timestamps negotiated",
        eq(c.timestamps.into(), st.opt_timestamps.into()),
    );
    chk(
        "MSS: the client's SYN MSS is the owner's mss_clamp",
        eq(cl.mss.unwrap_or(0).into(), st.mss_clamp.into()),
    );
    if st.opt_timestamps {
        let tsval = o.tsval.unwrap_or(0);
        let lag = st.ts_now.wrapping_sub(tsval);
        chk(
            "owner's last TSval trails its clock by < 10 s",
            (lag < 10_000, format!("TSval {tsval}, clock {}", st.ts_now)),
        );
    } else {
        chk(
            "no TSval recorded without timestamps",
            (o.tsval.is_none(), format!("{:?}", o.tsval)),
        );
    }
    let sent = rd("sent.bin");
    let recv = rd("recv.bin");
    let out = rd("out.bin");
    let inb = rd("in.bin");
    let out_txt = String::from_utf8_lossy(&rd("out.txt")).into_owned();
    let in_txt = String::from_utf8_lossy(&rd("in.txt")).into_owned();
    let (out_seq, in_seq) = (first_seq(&out_txt), first_seq(&in_txt));
    chk(
        "owner bytes retained in one piece",
        (
            out_txt.contains("pieces=1") || out.is_empty(),
            out_txt.clone(),
        ),
    );
    chk(
        "client bytes retained in one piece",
        (
            in_txt.contains("pieces=1") || inb.is_empty(),
            in_txt.clone(),
        ),
    );
    chk(
        "bytes held (owner) = bytes read back",
        eq(o.bytes_held.into(), out.len() as u64),
    );
    chk(
        "bytes held (client) = bytes read back",
        eq(cl.bytes_held.into(), inb.len() as u64),
    );
    let r = matches_stream(&sent, o.isn, out_seq, &out);
    chk(
        "retained owner bytes are the last bytes it sent",
        (r.is_ok(), format!("{r:?}")),
    );
    let r = matches_stream(&recv, cl.isn, in_seq, &inb);
    chk(
        "retained client bytes are the last bytes it sent",
        (r.is_ok(), format!("{r:?}")),
    );
    // Behind the acknowledgement the snooper keeps the largest window the receiver had
    // advertised when the bytes were released; the receiver's SYN window is the least of
    // those (windows only grow that maximum), so at least that much must be kept.
    let want = |all: &[u8], win: u16| all.len().min(win as usize);
    let (w_out, w_in) = (want(&sent, cl.syn_window), want(&recv, o.syn_window));
    chk(
        "at least one (initial) window of owner data kept",
        (out.len() >= w_out, format!("{} < {w_out}", out.len())),
    );
    chk(
        "at least one (initial) window of client data kept",
        (inb.len() >= w_in, format!("{} < {w_in}", inb.len())),
    );
    k.1 == 0
}

/// Each piece of a `permctl conn-data` summary's `ranges=SEQ+LEN,...`.
fn ranges(txt: &str) -> Vec<(u32, usize)> {
    txt.split_whitespace()
        .find_map(|w| w.strip_prefix("ranges="))
        .unwrap_or("")
        .split(',')
        .filter(|r| !r.is_empty())
        .map(|r| {
            let (s, n) = r.split_once('+').expect("SEQ+LEN");
            (s.parse().unwrap(), n.parse().unwrap())
        })
        .collect()
}

/// `compare --lossy DIR [FRAMES]`: the mirror of a connection whose frames the peer's port
/// partly lost. What it holds must still be right: every retained piece equals the stream at
/// its sequence numbers; a connection it calls ready must have every byte up to where both
/// ends stand (`snd_nxt`, `rcv_nxt` as the owner's kernel has them), unless the port (whose
/// relay logged each segment to FRAMES, `lossy-relay`) let no frame through that carried or
/// acknowledged a byte past where the mirror stands: no passive mirror can know of those;
/// one it does not call ready must say why. Writes DIR/not-ready with the reason when there
/// is one.
fn compare_lossy(dir: &str, frames: Option<&str>) -> bool {
    let rd = |f: &str| std::fs::read(format!("{dir}/{f}")).unwrap_or_else(|e| panic!("{f}: {e}"));
    let st: State = serde_json::from_slice(&rd("state.json")).unwrap();
    let conns: Vec<Conn> = serde_json::from_slice(&rd("conns.json")).unwrap();
    let mut k = Ktap(0, 0);
    let Some(c) = conns
        .iter()
        .find(|c| c.owner == st.local && c.client == st.peer)
    else {
        // Every frame of it lost, or an entry early-dropped: nothing held, nothing wrong.
        println!("# {} <-> {} not mirrored", st.local, st.peer);
        std::fs::write(format!("{dir}/not-ready"), "not mirrored").unwrap();
        return true;
    };
    let (o, cl) = (&c.owner_sent, &c.client_sent);
    let txt = |f: &str| String::from_utf8_lossy(&rd(f)).into_owned();
    for (what, all, isn, bin, summary) in [
        (
            "owner",
            rd("sent.bin"),
            o.isn,
            rd("out.bin"),
            txt("out.txt"),
        ),
        (
            "client",
            rd("recv.bin"),
            cl.isn,
            rd("in.bin"),
            txt("in.txt"),
        ),
    ] {
        let mut at = 0usize;
        let mut bad = Vec::new();
        let pieces = ranges(&summary);
        for &(seq, len) in &pieces {
            let off = seq.wrapping_sub(isn).wrapping_sub(1) as usize;
            let held = bin.get(at..at + len);
            if held.is_none() || all.get(off..off + len) != held {
                bad.push(format!("{len} bytes at stream offset {off}"));
            }
            at += len;
        }
        k.check(
            &format!(
                "every retained {what} byte is the byte sent ({} pieces)",
                pieces.len()
            ),
            bad.is_empty() && at == bin.len(),
            format!("{summary}: wrong: {bad:?}"),
        );
    }
    if c.ready {
        // A mirror that is behind while the port relayed nothing past where it stands (no
        // byte beyond it, no acknowledgement of one) cannot know: every frame that would
        // have told it was lost. The relay's log says which frames it let through.
        let (own, cli): (SocketAddr, SocketAddr) = (
            st.local.parse().expect("local address"),
            st.peer.parse().expect("peer address"),
        );
        let passed: Vec<relay::Seen> = frames
            .map(|f| std::fs::read_to_string(f).unwrap_or_else(|e| panic!("{f}: {e}")))
            .unwrap_or_default()
            .lines()
            .filter_map(relay::Seen::parse)
            .filter(|(v, _)| v == "pass")
            .map(|(_, s)| s)
            .collect();
        // The relayed frames that carried or acknowledged a byte of `from`'s past `nxt`.
        let told = |from: SocketAddr, to: SocketAddr, nxt: u32| -> Vec<String> {
            let past = |x: u32| (x.wrapping_sub(nxt) as i32) > 0;
            passed
                .iter()
                .filter(|f| {
                    let end = f.seq.wrapping_add(f.len + u32::from(f.flags & 0x3 != 0));
                    (f.src == from && f.dst == to && past(end))
                        || (f.src == to && f.dst == from && f.flags & 0x10 != 0 && past(f.ack))
                })
                .map(|f| f.line("relayed"))
                .collect()
        };
        for (what, mirror, kernel, from, to) in [
            ("the owner's snd_nxt", o.snd_nxt, st.snd_nxt, own, cli),
            (
                "the client's (the owner's rcv_nxt)",
                cl.snd_nxt,
                st.rcv_nxt,
                cli,
                own,
            ),
        ] {
            let told = if mirror == kernel {
                Vec::new()
            } else {
                told(from, to, mirror)
            };
            let lost = mirror != kernel && frames.is_some() && told.is_empty();
            if lost {
                println!(
                    "# {what}: the mirror stands {} bytes short, and the port relayed no frame past it (every one lost)",
                    kernel.wrapping_sub(mirror)
                );
            }
            k.check(
                &format!("ready: {what}"),
                mirror == kernel || lost,
                format!(
                    "peer {mirror} != owner kernel {kernel}; relayed past it: {:?}",
                    &told[..told.len().min(4)]
                ),
            );
        }
    } else {
        let why = c.not_ready.clone().unwrap_or_default();
        println!("# not ready: {why} ({})", c.state);
        k.check(
            "not ready, with the reason",
            !why.is_empty(),
            format!("{c:?}", c = c.state),
        );
        std::fs::write(format!("{dir}/not-ready"), why).unwrap();
    }
    k.1 == 0
}

/// Raises the open-file limit (soft and hard; the guest runs as root) to `n`, for tens of
/// thousands of connections in one process.
pub fn raise_nofile(n: u64) {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `lim` is a valid rlimit to read into, then to pass back.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 {
            lim.rlim_max = lim.rlim_max.max(n);
            lim.rlim_cur = lim.rlim_max;
            if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                // Not privileged: as far as the hard limit goes.
                libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim);
                lim.rlim_cur = lim.rlim_max;
                libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
            }
        }
    }
}

/// Starts a connection's thread with a small stack: a server may hold ten thousand.
pub fn spawn_small(f: impl FnOnce() + Send + 'static) {
    std::thread::Builder::new()
        .stack_size(128 << 10)
        .spawn(f)
        .expect("thread");
}

fn answer(round: u64) -> Vec<u8> {
    Stream(round.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1).take(1000)
}

/// Binds `addr` (SO_REUSEADDR, as std does); with `wait`, retries every 10 ms for up to two
/// minutes while the address is not local or in use, as an application restarted on a peer
/// before the takeover would.
fn bind_listener(addr: SocketAddr, wait: bool) -> TcpListener {
    let start = Instant::now();
    let mut refused = false;
    loop {
        match TcpListener::bind(addr) {
            Ok(l) => {
                if refused {
                    eprintln!(
                        "bind {addr}: accepted after {} ms",
                        start.elapsed().as_millis()
                    );
                }
                return l;
            }
            Err(e) if wait && start.elapsed() < Duration::from_secs(120) => {
                if !refused {
                    eprintln!("bind {addr}: refused ({e}), retrying");
                    refused = true;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(e) => panic!("bind {addr}: {e}"),
        }
    }
}

/// `listen ADDR`: a listener (backlog 4096) that never accepts, until killed.
fn listen_only(addr: SocketAddr) -> ! {
    let l = bind_listener(addr, false);
    // SAFETY: listen() on our own listening socket only changes its backlog.
    unsafe { libc::listen(l.as_raw_fd(), 4096) };
    loop {
        std::thread::park();
    }
}

/// `bind ADDR`: one bind attempt; prints the outcome, exits 1 if refused.
fn bind_once(addr: SocketAddr) {
    match TcpListener::bind(addr) {
        Ok(_) => println!("bind {addr}: ok"),
        Err(e) => {
            println!("bind {addr}: {e}");
            std::process::exit(1);
        }
    }
}

/// Answers the echo requests of a taken-over connection as a restarted server must: the
/// client's bytes are delivered again from `r.recv` (the declared "deliver" policy), and of
/// the answers (1000 bytes per 8-byte request, in order) only what the dead server had not
/// sent yet, from `r.sent`, goes out.
fn echo_resume(s: &mut TcpStream, r: bulk::Resume) -> std::io::Result<()> {
    // A partly delivered request's remainder first.
    let mut skip = vec![0u8; ((8 - r.recv % 8) % 8) as usize];
    s.read_exact(&mut skip)?;
    let mut round = r.recv.div_ceil(8);
    let mut req = [0u8; 8];
    while s.read_exact(&mut req).is_ok() {
        let (start, end) = (round * 1000, (round + 1) * 1000);
        if end > r.sent {
            let a = answer(u64::from_be_bytes(req));
            s.write_all(&a[r.sent.saturating_sub(start) as usize..])?;
        }
        round += 1;
    }
    Ok(())
}

/// How `echo-serve` behaves; see the usage text.
#[derive(Clone, Copy)]
struct EchoOpts {
    wait_bind: bool,
    resume: bool,
    /// Read this round's request, then never answer (a server that dies mid-request).
    stall_at: Option<u64>,
    /// The listen() backlog.
    backlog: i32,
    /// Listeners in one reuseport group (0: one plain listener).
    reuseport: usize,
    /// Serve from one event loop instead of a thread per connection (evloop.rs).
    event_loop: bool,
}

/// A listener of a reuseport group on `addr` (SO_REUSEADDR and SO_REUSEPORT set before
/// bind(), as a server that runs a listener per thread sets them).
fn reuseport_listener(addr: SocketAddr) -> TcpListener {
    use std::os::fd::FromRawFd;
    let v6 = addr.is_ipv6();
    // SAFETY: plain socket calls on a descriptor we create and own; the address structures
    // are initialised and their sizes passed.
    unsafe {
        let fd = libc::socket(
            if v6 { libc::AF_INET6 } else { libc::AF_INET },
            libc::SOCK_STREAM | libc::SOCK_CLOEXEC,
            0,
        );
        assert!(fd >= 0, "socket: {}", std::io::Error::last_os_error());
        let one: libc::c_int = 1;
        for opt in [libc::SO_REUSEADDR, libc::SO_REUSEPORT] {
            let r = libc::setsockopt(
                fd,
                libc::SOL_SOCKET,
                opt,
                (&one as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            );
            assert_eq!(r, 0, "setsockopt: {}", std::io::Error::last_os_error());
        }
        let r = match addr {
            SocketAddr::V6(a) => {
                let mut sa: libc::sockaddr_in6 = std::mem::zeroed();
                sa.sin6_family = libc::AF_INET6 as libc::sa_family_t;
                sa.sin6_port = a.port().to_be();
                sa.sin6_addr.s6_addr = a.ip().octets();
                libc::bind(
                    fd,
                    (&sa as *const libc::sockaddr_in6).cast(),
                    std::mem::size_of_val(&sa) as libc::socklen_t,
                )
            }
            SocketAddr::V4(a) => {
                let mut sa: libc::sockaddr_in = std::mem::zeroed();
                sa.sin_family = libc::AF_INET as libc::sa_family_t;
                sa.sin_port = a.port().to_be();
                sa.sin_addr.s_addr = u32::from_ne_bytes(a.ip().octets());
                libc::bind(
                    fd,
                    (&sa as *const libc::sockaddr_in).cast(),
                    std::mem::size_of_val(&sa) as libc::socklen_t,
                )
            }
        };
        assert_eq!(r, 0, "bind {addr}: {}", std::io::Error::last_os_error());
        TcpListener::from_raw_fd(fd)
    }
}

fn echo_serve(addr: SocketAddr, o: EchoOpts) {
    raise_nofile(1 << 17);
    if o.event_loop {
        assert!(
            o.reuseport == 0 && o.stall_at.is_none(),
            "--event-loop takes neither --reuseport nor --stall-at-round"
        );
        let l = bind_listener(addr, o.wait_bind);
        // SAFETY: listen() on our own listening socket only changes its backlog.
        unsafe { libc::listen(l.as_raw_fd(), o.backlog) };
        evloop::serve(l, o.resume);
        return;
    }
    if o.reuseport == 0 {
        echo_listen(bind_listener(addr, o.wait_bind), o, None);
        return;
    }
    let group: Vec<_> = (0..o.reuseport)
        .map(|i| (i, reuseport_listener(addr)))
        .collect();
    let threads: Vec<_> = group
        .into_iter()
        .map(|(i, l)| std::thread::spawn(move || echo_listen(l, o, Some(i))))
        .collect();
    for t in threads {
        let _ = t.join();
    }
}

/// Accepts connections on `l` forever and answers them; listener `index` of a reuseport
/// group writes how many it accepted to /tmp/echo-accepted.INDEX.
fn echo_listen(l: TcpListener, o: EchoOpts, index: Option<usize>) {
    // A deep accept queue by default: a takeover may queue a thousand connections at once.
    // SAFETY: listen() on our own listening socket only changes its backlog.
    unsafe { libc::listen(l.as_raw_fd(), o.backlog) };
    let mut accepted = 0u64;
    for s in l.incoming() {
        let Ok(mut s) = s else { continue };
        accepted += 1;
        if let Some(i) = index {
            std::fs::write(format!("/tmp/echo-accepted.{i}"), accepted.to_string()).unwrap();
        }
        let resume = o.resume;
        spawn_small(move || {
            if let Some(r) = resume.then(|| bulk::taken_over(&s)).flatten() {
                let _ = echo_resume(&mut s, r);
                return;
            }
            let mut req = [0u8; 8];
            while s.read_exact(&mut req).is_ok() {
                let round = u64::from_be_bytes(req);
                if o.stall_at == Some(round) {
                    std::fs::write("/tmp/echo-stalled", round.to_string()).unwrap();
                    loop {
                        std::thread::sleep(Duration::from_secs(60));
                    }
                }
                if s.write_all(&answer(round)).is_err() {
                    break;
                }
            }
        });
    }
}

fn echo_client(addr: SocketAddr, rounds: u64, pause: &str, opts: &[String]) {
    let mut trace = timeline::Trace::from_args(opts);
    let interval = opts
        .iter()
        .position(|a| a == "--interval-ms")
        .map(|i| Duration::from_millis(opts[i + 1].parse().expect("--interval-ms N")));
    let mut s = TcpStream::connect(addr).expect("connect");
    let start = Instant::now();
    let mut worst = Duration::ZERO;
    trace.read(0);
    for i in 0..rounds {
        if let Some(d) = interval.filter(|_| i > 0) {
            std::thread::sleep(d);
        }
        if i == rounds / 2 && pause != "-" {
            std::fs::write(format!("{pause}.wait"), b"").unwrap();
            while !std::path::Path::new(pause).exists() {
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        let t = Instant::now();
        s.write_all(&i.to_be_bytes()).expect("send");
        let mut buf = vec![0u8; 1000];
        s.read_exact(&mut buf)
            .unwrap_or_else(|e| panic!("round {i}: {e}"));
        assert!(buf == answer(i), "round {i}: wrong answer");
        trace.read((i + 1) * 1000);
        worst = worst.max(t.elapsed());
    }
    println!(
        "ok rounds={rounds} secs={:.3} worst_round_ms={}",
        start.elapsed().as_secs_f64(),
        worst.as_millis()
    );
}

/// `conns` connections, one round each, pause (PAUSE.wait, then wait for PAUSE), one more
/// round each: the takeover of many connections at once.
fn echo_many(addr: SocketAddr, conns: usize, pause: &str) {
    raise_nofile(1 << 17);
    let mut socks: Vec<TcpStream> = (0..conns)
        .map(|i| TcpStream::connect(addr).unwrap_or_else(|e| panic!("connection {i}: {e}")))
        .collect();
    let round = |socks: &mut Vec<TcpStream>, base: u64| {
        for (i, s) in socks.iter_mut().enumerate() {
            s.write_all(&(base + i as u64).to_be_bytes()).expect("send");
        }
        for (i, s) in socks.iter_mut().enumerate() {
            let mut buf = vec![0u8; 1000];
            s.read_exact(&mut buf)
                .unwrap_or_else(|e| panic!("connection {i}: {e}"));
            assert!(
                buf == answer(base + i as u64),
                "connection {i}: wrong answer"
            );
        }
    };
    round(&mut socks, 0);
    std::fs::write(format!("{pause}.wait"), b"").unwrap();
    while !std::path::Path::new(pause).exists() {
        std::thread::sleep(Duration::from_millis(10));
    }
    let t = Instant::now();
    round(&mut socks, 1_000_000);
    println!(
        "ok conns={conns} after_takeover_round_ms={}",
        t.elapsed().as_millis()
    );
}

/// The most phases `echo-steady` tells apart.
const PHASES: usize = 8;

/// The phase a client is in: the highest N (below [`PHASES`]) for which file `STOP.N`
/// exists, 0 when none does.
fn phase(stop: &str) -> usize {
    (1..PHASES)
        .rev()
        .find(|n| std::path::Path::new(&format!("{stop}.{n}")).exists())
        .unwrap_or(0)
}

/// `conns` connections, each on its own thread doing a round every `interval` until file
/// `stop` exists (`stop`.wait is written once every connection did its first round): a
/// service's clients with traffic running while its connections move (planned handoff).
/// A round counts in the phase current when it ends (files `stop`.1, `stop`.2, ...: a test
/// starts one just before each event). Prints, over all rounds and per phase, each
/// connection's worst round (the pause it saw): median, 90th and 99th percentiles and the
/// largest; exits 1 on a wrong answer or a broken connection.
fn echo_steady(addr: SocketAddr, conns: usize, stop: &str, opts: &[String]) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    raise_nofile(1 << 17);
    let interval = opts
        .iter()
        .position(|a| a == "--interval-ms")
        .map_or(Duration::from_millis(20), |i| {
            Duration::from_millis(opts[i + 1].parse().expect("--interval-ms N"))
        });
    let socks: Vec<TcpStream> = (0..conns)
        .map(|i| TcpStream::connect(addr).unwrap_or_else(|e| panic!("connection {i}: {e}")))
        .collect();
    let started = Arc::new(AtomicUsize::new(0));
    let threads: Vec<_> = socks
        .into_iter()
        .enumerate()
        .map(|(i, mut s)| {
            let (started, stop) = (started.clone(), stop.to_string());
            std::thread::Builder::new()
                .stack_size(64 << 10)
                .spawn(move || -> Result<(u64, [Duration; PHASES]), String> {
                    let mut worst = [Duration::ZERO; PHASES];
                    let mut round = 0u64;
                    loop {
                        let v = ((i as u64) << 32) | round;
                        let t = Instant::now();
                        s.write_all(&v.to_be_bytes())
                            .map_err(|e| format!("connection {i} round {round}: send: {e}"))?;
                        let mut buf = vec![0u8; 1000];
                        s.read_exact(&mut buf)
                            .map_err(|e| format!("connection {i} round {round}: {e}"))?;
                        if buf != answer(v) {
                            return Err(format!("connection {i} round {round}: wrong answer"));
                        }
                        if round > 0 {
                            let p = phase(&stop);
                            // At least 1 ms: a round was seen in the phase.
                            worst[p] = worst[p].max(t.elapsed()).max(Duration::from_millis(1));
                        } else {
                            started.fetch_add(1, Ordering::SeqCst);
                        }
                        round += 1;
                        if std::path::Path::new(&stop).exists() {
                            return Ok((round, worst));
                        }
                        // Spread over the interval: after its first round, connection i
                        // waits i/conns of it, then the whole of it between rounds, so that
                        // some request is always on its way.
                        std::thread::sleep(if round == 1 {
                            interval.mul_f64(i as f64 / conns as f64)
                        } else {
                            interval
                        });
                    }
                })
                .expect("spawn")
        })
        .collect();
    while started.load(Ordering::SeqCst) < conns {
        std::thread::sleep(Duration::from_millis(10));
    }
    std::fs::write(format!("{stop}.wait"), b"").unwrap();
    let mut worst: Vec<[u64; PHASES]> = Vec::new();
    let mut rounds = 0;
    let mut failed = 0;
    for t in threads {
        match t.join().expect("thread") {
            Ok((r, w)) => {
                rounds += r;
                worst.push(w.map(|d| d.as_millis() as u64));
            }
            Err(e) => {
                failed += 1;
                eprintln!("{e}");
            }
        }
    }
    if failed > 0 {
        println!("FAIL conns={conns} failed={failed}");
        std::process::exit(1);
    }
    // Over the connections that had a round in the phase (a worst round of 0 ms: none; the
    // guest's clock has a resolution of a few milliseconds at worst, a round takes more).
    let stats = |v: Vec<u64>| {
        let mut v: Vec<u64> = v.into_iter().filter(|&w| w > 0).collect();
        v.sort_unstable();
        let pct = |p: usize| v.get(v.len() * p / 100).copied().unwrap_or(0);
        format!(
            "conns_with_rounds={} pause_median_ms={} pause_p90_ms={} pause_p99_ms={} pause_max_ms={}",
            v.len(),
            pct(50),
            pct(90),
            pct(99),
            v.last().copied().unwrap_or(0)
        )
    };
    for p in 0..=phase(stop) {
        println!("phase={p} {}", stats(worst.iter().map(|w| w[p]).collect()));
    }
    let all = worst
        .iter()
        .map(|w| *w.iter().max().unwrap_or(&0))
        .collect();
    println!("ok conns={conns} rounds={rounds} {}", stats(all));
}

/// `timed CMD ARGS...`: runs CMD, passes its output and exit status on, and prints its wall
/// time to stderr as `wall_us=N` (the guest's shell clock has 10 ms resolution).
fn timed(cmd: &[String]) {
    let t = Instant::now();
    let st = std::process::Command::new(&cmd[0])
        .args(&cmd[1..])
        .status()
        .unwrap_or_else(|e| panic!("{}: {e}", cmd[0]));
    eprintln!("wall_us={}", t.elapsed().as_micros());
    std::process::exit(st.code().unwrap_or(1));
}

/// The one's-complement checksum of `data` over the running sum `sum`.
fn csum(data: &[u8], mut sum: u32) -> u16 {
    for c in data.chunks(2) {
        sum += u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]));
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// One SYN as a raw frame through an AF_PACKET socket (IPv4 or IPv6): the receiver sees
/// CHECKSUM_NONE and must verify the TCP checksum itself; `good` false spoils it.
fn raw_syn(iface: &str, dst_mac: &str, src: SocketAddr, dst: SocketAddr, good: bool) {
    let mut pkt = forge::Seg {
        src,
        dst,
        seq: 12345,
        ack: 0,
        flags: 0x02,
        win: 64240,
        ts: None,
        data: Vec::new(),
        pad: 0,
    }
    .bytes();
    if !good {
        // The TCP checksum: after the fixed IP header (20 bytes, IPv6 40).
        let at = if src.is_ipv4() { 20 } else { 40 } + 16;
        pkt[at] ^= 0x5a;
        pkt[at + 1] ^= 0x5a;
    }
    forge::Link::open(iface, dst_mac, src.is_ipv6()).send(&pkt);
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let arg = |i: usize| {
        args.get(i)
            .map(String::as_str)
            .unwrap_or_else(|| panic!("missing argument {i}"))
    };
    match arg(1) {
        "serve" => serve(arg(2).parse().unwrap(), parse_pattern(arg(3)), arg(4)),
        "client" => client(arg(2).parse().unwrap(), parse_pattern(arg(3))),
        "compare" if arg(2) == "--lossy" => {
            let frames = args.get(4).map(String::as_str);
            std::process::exit(if compare_lossy(arg(3), frames) { 0 } else { 1 })
        }
        "compare" => std::process::exit(if compare(arg(2)) { 0 } else { 1 }),
        "echo-serve" => echo_serve(
            arg(2).parse().unwrap(),
            EchoOpts {
                wait_bind: args[3..].iter().any(|a| a == "--wait-bind"),
                resume: args[3..].iter().any(|a| a == "--resume"),
                stall_at: args[3..]
                    .iter()
                    .find_map(|a| a.strip_prefix("--stall-at-round="))
                    .map(|n| n.parse().unwrap()),
                backlog: args[3..]
                    .iter()
                    .find_map(|a| a.strip_prefix("--backlog="))
                    .map_or(4096, |n| n.parse().unwrap()),
                reuseport: args[3..]
                    .iter()
                    .find_map(|a| a.strip_prefix("--reuseport="))
                    .map_or(0, |n| n.parse().unwrap()),
                event_loop: args[3..].iter().any(|a| a == "--event-loop"),
            },
        ),
        "bind" => bind_once(arg(2).parse().unwrap()),
        "listen" => listen_only(arg(2).parse().unwrap()),
        "down-serve" => bulk::down_serve(
            arg(2).parse().unwrap(),
            arg(3).parse().unwrap(),
            args[4..].iter().any(|a| a == "--resume"),
            args[4..].iter().any(|a| a == "--read-first"),
        ),
        "down-client" => bulk::down_client(
            arg(2).parse().unwrap(),
            arg(3).parse().unwrap(),
            arg(4),
            args[5..].iter().any(|a| a == "--half-close"),
            timeline::Trace::from_args(&args[5..]),
        ),
        "up-serve" => {
            let rest = &args[4..];
            let stall = rest.iter().position(|a| a == "--stall-at").map(|i| {
                let v = |k: usize| rest.get(i + k).expect("--stall-at N FILE");
                (v(1).parse().unwrap(), v(2).to_string())
            });
            bulk::up_serve(
                arg(2).parse().unwrap(),
                arg(3).parse().unwrap(),
                bulk::UpOpts {
                    resume: rest.iter().any(|a| a == "--resume"),
                    stall,
                    greet: rest.iter().any(|a| a == "--greet"),
                },
            )
        }
        "up-client" => bulk::up_client(
            arg(2).parse().unwrap(),
            arg(3).parse().unwrap(),
            args[4..].iter().any(|a| a == "--greeted"),
        ),
        "stream-sum" => bulk::stream_sum(arg(2).parse().unwrap()),
        "timed" => timed(&args[2..]),
        "echo-many" => echo_many(arg(2).parse().unwrap(), arg(3).parse().unwrap(), arg(4)),
        "echo-steady" => echo_steady(
            arg(2).parse().unwrap(),
            arg(3).parse().unwrap(),
            arg(4),
            &args[5..],
        ),
        "restore" => std::process::exit(
            if restore::run(args[2..].iter().any(|a| a == "--event-loop")) {
                0
            } else {
                1
            },
        ),
        "echo-client" => echo_client(
            arg(2).parse().unwrap(),
            arg(3).parse().unwrap(),
            arg(4),
            &args[5..],
        ),
        "timeline" => timeline::timeline(&args[2..]),
        "forge" => forge::forge(&args[2..]),
        "nlfuzz" => nlfuzz::run(&args[2..]),
        "flood" => forge::flood(&args[2..]),
        "lossy-relay" => relay::run(&args[2..]),
        "syn" => raw_syn(
            arg(2),
            arg(3),
            arg(4).parse().unwrap(),
            arg(5).parse().unwrap(),
            arg(6) == "good",
        ),
        "udp-spoof" => udp_forge::udp_spoof(
            arg(2),
            arg(3),
            arg(4).parse().unwrap(),
            arg(5).parse().unwrap(),
            arg(6),
        ),
        "udp-capture" => udp_forge::udp_capture(
            arg(2),
            arg(3).parse().unwrap(),
            arg(4).parse().unwrap(),
            arg(5).parse().unwrap(),
            arg(6).parse().unwrap(),
        ),
        "reseal" => udp_forge::reseal(arg(2), arg(3).parse().unwrap(), arg(4)),
        "directive-hex" => udp_forge::directive_hex(
            arg(2).parse().unwrap(),
            arg(3).parse().unwrap(),
            arg(4).parse().unwrap(),
            args.get(5).map(|f| f.parse().unwrap()),
        ),
        other => panic!("unknown command {other}"),
    }
}
