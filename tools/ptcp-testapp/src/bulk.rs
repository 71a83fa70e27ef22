// SPDX-License-Identifier: GPL-2.0

//! Bulk transfers that survive a takeover.
//!
//! The stream is position-addressable ([`byte_at`]), so a server restarted on the peer can
//! continue it from the offsets permtcp reports for a taken-over connection (`permctl
//! taken`), check the sent bytes permtcp kept against its own regeneration (`permctl
//! conn-data --side owner`), and the client can check every byte it receives against a
//! crash-free run.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

/// Byte `off` of the test stream.
pub fn byte_at(off: u64) -> u8 {
    let x = (off / 8 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    (x >> ((off % 8) * 8)) as u8
}

fn fill(off: u64, buf: &mut [u8]) {
    for (i, b) in buf.iter_mut().enumerate() {
        *b = byte_at(off + i as u64);
    }
}

/// The offset of the first byte of `got`, received at stream offset `off`, that differs
/// from the stream.
fn first_wrong(off: u64, got: &[u8]) -> Option<u64> {
    (0..got.len() as u64)
        .find(|&i| got[i as usize] != byte_at(off + i))
        .map(|i| off + i)
}

/// FNV-1a over the stream's first `n` bytes, or over received bytes.
struct Fnv(u64);

impl Fnv {
    fn new() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
    fn add(&mut self, data: &[u8]) {
        for &b in data {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x100_0000_01b3);
        }
    }
}

/// `stream-sum BYTES`: the checksum a crash-free run delivers.
pub fn stream_sum(n: u64) {
    let mut f = Fnv::new();
    let mut buf = vec![0u8; 65536];
    let mut off = 0;
    while off < n {
        let k = (n - off).min(buf.len() as u64) as usize;
        fill(off, &mut buf[..k]);
        f.add(&buf[..k]);
        off += k as u64;
    }
    println!("fnv={:016x}", f.0);
}

/// Where a taken-over connection resumes.
#[derive(Clone, Copy)]
pub struct Resume {
    /// Offset of the next byte to send.
    pub sent: u64,
    /// Offset of the first byte to read.
    pub recv: u64,
    data_offset: u64,
    data_len: u64,
}

fn canonical(a: SocketAddr) -> SocketAddr {
    SocketAddr::new(a.ip().to_canonical(), a.port())
}

type Records = Vec<(String, String, Resume)>;

/// permtcp's taken-over connections, read once and again when one is missing.
static TAKEN: std::sync::Mutex<Records> = std::sync::Mutex::new(Vec::new());

fn read_taken() -> Records {
    let out = Command::new("permctl")
        .args(["--json", "taken"])
        .output()
        .expect("run permctl");
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).expect("permctl json");
    let num = |r: &serde_json::Value, k: &str| r[k].as_u64().unwrap();
    list.as_array()
        .map(|l| {
            l.iter()
                .map(|r| {
                    let end = |k: &str| r[k].as_str().unwrap().to_string();
                    let res = Resume {
                        sent: num(r, "sent_offset"),
                        recv: num(r, "recv_offset"),
                        data_offset: num(r, "data_offset"),
                        data_len: num(r, "data_len"),
                    };
                    (end("owner"), end("client"), res)
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Where the connection `s` resumes if permtcp took it over; `None` for a new connection.
/// Asked from this process, one query per socket (`permtcp-resume`: TAKEN_GET by the
/// socket's 4-tuple); with `PTCP_RESUME_PERMCTL` set, from `permctl --json taken` (the list,
/// read once and again when a connection is missing), for comparison.
pub fn taken_over(s: &TcpStream) -> Option<Resume> {
    taken_over_fd(s, || Ok((s.local_addr()?, s.peer_addr()?)))
}

/// [`taken_over`] for any connected socket `fd` (a tokio stream too), `addrs` giving its
/// local and remote addresses where the permctl list is searched.
pub fn taken_over_fd(
    fd: &impl std::os::fd::AsRawFd,
    addrs: impl FnOnce() -> std::io::Result<(SocketAddr, SocketAddr)>,
) -> Option<Resume> {
    if std::env::var_os("PTCP_RESUME_PERMCTL").is_none() {
        let t =
            permtcp_resume::of_fd(fd).unwrap_or_else(|e| panic!("permtcp resume lookup: {e}"))?;
        return Some(Resume {
            sent: t.sent_offset.into(),
            recv: t.recv_offset.into(),
            data_offset: t.data_offset.into(),
            data_len: t.data_len.into(),
        });
    }
    let (local, peer) = addrs().ok()?;
    let (local, peer) = (canonical(local).to_string(), canonical(peer).to_string());
    let find = |recs: &Records| {
        recs.iter()
            .rev()
            .find(|(o, c, _)| *o == local && *c == peer)
            .map(|r| r.2)
    };
    let mut recs = TAKEN.lock().unwrap();
    find(&recs).or_else(|| {
        *recs = read_taken();
        find(&recs)
    })
}

/// The record of the taken-over connection `s`, after checking the sent bytes permtcp kept
/// against `regen`, which regenerates the bytes sent from an offset.
fn resume_of(s: &TcpStream, regen: fn(u64, &mut [u8])) -> Resume {
    let (local, peer) = (
        canonical(s.local_addr().unwrap()),
        canonical(s.peer_addr().unwrap()),
    );
    let r =
        taken_over(s).unwrap_or_else(|| panic!("{local} <- {peer} is not a taken-over connection"));
    let file = format!("/tmp/kept-{}", peer.port());
    let st = Command::new("permctl")
        .args(["conn-data", "--side", "owner", "--out", &file])
        .args(["--owner", &local.to_string(), "--client", &peer.to_string()])
        .status()
        .expect("run permctl");
    assert!(st.success(), "permctl conn-data failed");
    let kept = std::fs::read(&file).unwrap();
    assert_eq!(kept.len() as u64, r.data_len, "kept bytes");
    let mut want = vec![0u8; kept.len()];
    regen(r.data_offset, &mut want);
    assert!(
        kept == want,
        "kept sent bytes differ from the regenerated stream"
    );
    eprintln!(
        "resume {peer}: sent_offset={} recv_offset={} verified {} kept sent bytes",
        r.sent, r.recv, r.data_len
    );
    r
}

fn listener(addr: SocketAddr) -> TcpListener {
    TcpListener::bind(addr).unwrap_or_else(|e| panic!("bind {addr}: {e}"))
}

/// `down-serve ADDR BYTES [--resume] [--read-first]`: sends the stream's first BYTES bytes
/// to each client, from where the taken-over connection stands with `--resume`; with
/// `--read-first` after reading the client's request up to its FIN (a half-closed client).
pub fn down_serve(addr: SocketAddr, n: u64, resume: bool, read_first: bool) {
    for s in listener(addr).incoming() {
        let Ok(mut s) = s else { continue };
        std::thread::spawn(move || {
            let mut off = if resume { resume_of(&s, fill).sent } else { 0 };
            if read_first {
                let mut req = Vec::new();
                if s.read_to_end(&mut req).is_err() {
                    return;
                }
                eprintln!("request: {} bytes, then the client's FIN", req.len());
            }
            let mut buf = vec![0u8; 16384];
            while off < n {
                let k = (n - off).min(buf.len() as u64) as usize;
                fill(off, &mut buf[..k]);
                if s.write_all(&buf[..k]).is_err() {
                    return;
                }
                off += k as u64;
            }
        });
    }
}

/// Waits for `pause` after creating `pause.wait`.
fn pause_here(pause: &str) {
    std::fs::write(format!("{pause}.wait"), b"").unwrap();
    while !Path::new(pause).exists() {
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// `down-client ADDR BYTES PAUSE [--half-close] [--trace FILE]`: reads BYTES bytes checking
/// each, then the server's FIN; stops reading after a quarter until PAUSE exists (the
/// server's buffers fill: a crash then loses data in flight; PAUSE `-`: no pause).
/// `--half-close` first sends a request and shuts down its sending side; `trace` records
/// every read.
pub fn down_client(
    addr: SocketAddr,
    n: u64,
    pause: &str,
    half_close: bool,
    mut trace: crate::timeline::Trace,
) {
    let mut s = TcpStream::connect(addr).expect("connect");
    if half_close {
        s.write_all(b"GET /stream\n").expect("send the request");
        s.shutdown(std::net::Shutdown::Write).expect("shutdown");
    }
    let mut buf = vec![0u8; 65536];
    let (mut off, mut f, mut paused) = (0u64, Fnv::new(), false);
    let mut worst = Duration::ZERO;
    let mut last = Instant::now();
    trace.read(0);
    while off < n {
        if !paused && off >= n / 4 && pause != "-" {
            pause_here(pause);
            paused = true;
            last = Instant::now();
        }
        let k = s
            .read(&mut buf)
            .unwrap_or_else(|e| panic!("at byte {off}: {e}"));
        assert!(k > 0, "connection closed at byte {off} of {n}");
        if let Some(at) = first_wrong(off, &buf[..k]) {
            panic!("wrong byte at offset {at}");
        }
        f.add(&buf[..k]);
        off += k as u64;
        trace.read(off);
        worst = worst.max(last.elapsed());
        last = Instant::now();
    }
    let k = s
        .read(&mut buf)
        .unwrap_or_else(|e| panic!("after the stream: {e}"));
    assert_eq!(k, 0, "bytes after the stream's end");
    println!(
        "ok bytes={off} fnv={:016x} worst_gap_ms={}",
        f.0,
        worst.as_millis()
    );
}

/// How `up-serve` behaves.
#[derive(Clone, Default)]
pub struct UpOpts {
    /// Start at the taken-over connection's receive offset.
    pub resume: bool,
    /// Stop reading after N bytes, writing N to FILE (an application that falls behind).
    pub stall: Option<(u64, String)>,
    /// Greet the client and shut down the sending side first (a half-closed server); the
    /// outcome goes to `/tmp/up-result` instead of an answer.
    pub greet: bool,
}

const GREETING: &[u8] = b"HELLO, SEND YOUR DATA\n";

/// What an `up-serve` sends from `off`: its greeting (or nothing).
fn greeting_at(off: u64, out: &mut [u8]) {
    let from = (off as usize).min(GREETING.len());
    out.copy_from_slice(&GREETING[from..from + out.len()]);
}

/// `up-serve ADDR BYTES [--resume] [--stall-at N FILE] [--greet]`: reads a client's BYTES
/// bytes, checking each at its offset, and answers `OK <checked> <first-offset>`.
pub fn up_serve(addr: SocketAddr, n: u64, o: UpOpts) {
    for s in listener(addr).incoming() {
        let Ok(mut s) = s else { continue };
        let (stall, resume, greet) = (o.stall.clone(), o.resume, o.greet);
        std::thread::spawn(move || {
            let r = resume.then(|| resume_of(&s, greeting_at));
            let first = r.map_or(0, |r| r.recv);
            if greet {
                // What the dead server had not sent of the greeting, then the FIN.
                let from = r.map_or(0, |r| r.sent as usize).min(GREETING.len());
                let _ = s.write_all(&GREETING[from..]);
                let _ = s.shutdown(std::net::Shutdown::Write);
            }
            let (mut off, mut buf) = (first, vec![0u8; 65536]);
            while off < n {
                let mut room = buf.len();
                if let Some((at, file)) = &stall {
                    if off >= *at {
                        std::fs::write(file, off.to_string()).unwrap();
                        loop {
                            std::thread::sleep(Duration::from_secs(60));
                        }
                    }
                    room = room.min((*at - off) as usize);
                }
                let k = match s.read(&mut buf[..room]) {
                    Ok(0) | Err(_) => return,
                    Ok(k) => k,
                };
                if let Some(at) = first_wrong(off, &buf[..k]) {
                    report(&mut s, greet, &format!("BAD {at}"));
                    return;
                }
                off += k as u64;
            }
            report(&mut s, greet, &format!("OK {} {first}", off - first));
        });
    }
}

/// The outcome of an upload: to the client, or to `/tmp/up-result` when the server shut
/// down its sending side.
fn report(s: &mut TcpStream, to_file: bool, what: &str) {
    if to_file {
        std::fs::write("/tmp/up-result", format!("{what}\n")).unwrap();
    } else {
        let _ = writeln!(s, "{what}");
    }
}

/// `up-client ADDR BYTES [--greeted]`: sends the stream's first BYTES bytes, then reads the
/// answer; `--greeted` first reads the server's greeting up to its FIN, and after sending
/// waits until every byte is acknowledged (there is no answer).
pub fn up_client(addr: SocketAddr, n: u64, greeted: bool) {
    let mut s = TcpStream::connect(addr).expect("connect");
    if greeted {
        let mut g = Vec::new();
        s.read_to_end(&mut g).expect("read the greeting");
        assert!(g == GREETING, "greeting {:?}", String::from_utf8_lossy(&g));
    }
    let mut buf = vec![0u8; 16384];
    let mut off = 0u64;
    let start = Instant::now();
    while off < n {
        let k = (n - off).min(buf.len() as u64) as usize;
        fill(off, &mut buf[..k]);
        s.write_all(&buf[..k])
            .unwrap_or_else(|e| panic!("at byte {off}: {e}"));
        off += k as u64;
    }
    let mut answer = String::new();
    if greeted {
        // No answer can come: wait until the server acknowledged every byte.
        let t = Instant::now();
        while crate::outq(std::os::fd::AsRawFd::as_raw_fd(&s)) > 0 {
            assert!(
                t.elapsed() < Duration::from_secs(60),
                "bytes never acknowledged"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        s.shutdown(std::net::Shutdown::Write)
            .unwrap_or_else(|e| panic!("shutdown: {e}"));
        answer.push_str("OK (half-closed server acknowledged everything)");
    } else {
        s.read_to_string(&mut answer)
            .unwrap_or_else(|e| panic!("reading the answer: {e}"));
        assert!(answer.starts_with("OK "), "server answered {answer:?}");
    }
    println!(
        "ok sent={off} answer={:?} secs={:.3}",
        answer.trim(),
        start.elapsed().as_secs_f64()
    );
}
