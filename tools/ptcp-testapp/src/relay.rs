// SPDX-License-Identifier: GPL-2.0

//! A lossy link for the selftests (`lossy-relay`): frames are copied between two interfaces
//! through AF_PACKET sockets, and a given share of those going one way is dropped. Put on a
//! node's switch port, it is a lossy port (the kernel has no `tc netem` here). The sockets
//! use `PACKET_VNET_HDR`, so checksum offload and GSO state cross with each frame (a veth
//! frame keeps its partial checksum and its segmentation, as it would through a tap).

use std::io::Write;
use std::net::{IpAddr, SocketAddr};

const PACKET_VNET_HDR: i32 = 15;
const PACKET_IGNORE_OUTGOING: i32 = 23;
/// Room for a GSO super-packet and its virtio-net header.
const BUF: usize = 70_000;

/// A raw packet socket bound to one interface, seeing every frame it receives (not the
/// ones sent through it). One thread receives on it while the other sends through it; it is
/// never closed (the relay runs until killed).
#[derive(Clone, Copy)]
struct Port(i32);

impl Port {
    fn open(iface: &str) -> Port {
        let name = std::ffi::CString::new(iface).unwrap();
        let proto = (libc::ETH_P_ALL as u16).to_be();
        // SAFETY: plain libc calls with valid arguments and sizes.
        unsafe {
            let ifindex = libc::if_nametoindex(name.as_ptr()) as i32;
            assert!(ifindex > 0, "no interface {iface}");
            let fd = libc::socket(libc::AF_PACKET, libc::SOCK_RAW, i32::from(proto));
            assert!(
                fd >= 0,
                "packet socket: {}",
                std::io::Error::last_os_error()
            );
            let one: i32 = 1;
            for opt in [PACKET_VNET_HDR, PACKET_IGNORE_OUTGOING] {
                let r =
                    libc::setsockopt(fd, libc::SOL_PACKET, opt, &one as *const i32 as *const _, 4);
                assert_eq!(
                    r,
                    0,
                    "packet option {opt}: {}",
                    std::io::Error::last_os_error()
                );
            }
            let mut sll: libc::sockaddr_ll = std::mem::zeroed();
            sll.sll_family = libc::AF_PACKET as u16;
            sll.sll_protocol = proto;
            sll.sll_ifindex = ifindex;
            let r = libc::bind(
                fd,
                &sll as *const _ as *const libc::sockaddr,
                std::mem::size_of::<libc::sockaddr_ll>() as u32,
            );
            assert_eq!(r, 0, "bind {iface}: {}", std::io::Error::last_os_error());
            Port(fd)
        }
    }

    fn recv(&self, buf: &mut [u8]) -> usize {
        // SAFETY: `buf` is valid for writes of its length.
        let n = unsafe { libc::recv(self.0, buf.as_mut_ptr() as *mut _, buf.len(), 0) };
        assert!(n >= 0, "recv: {}", std::io::Error::last_os_error());
        n as usize
    }

    /// Sends a frame (with its virtio-net header); a frame the interface refuses is lost,
    /// as on a real link.
    fn send(&self, frame: &[u8]) -> bool {
        // SAFETY: `frame` is valid for reads of its length.
        let n = unsafe { libc::send(self.0, frame.as_ptr() as *const _, frame.len(), 0) };
        n == frame.len() as isize
    }
}

/// The TCP segment a relayed frame (virtio-net header, Ethernet, IPv4 or IPv6 without
/// extension headers) carries: source, destination, sequence and acknowledgement numbers,
/// payload length (a GSO frame's whole payload), flags.
pub struct Seen {
    pub src: SocketAddr,
    pub dst: SocketAddr,
    pub seq: u32,
    pub ack: u32,
    pub len: u32,
    pub flags: u8,
}

/// The segment of `frame`, if it carries TCP.
fn tcp_of(frame: &[u8]) -> Option<Seen> {
    const VNET: usize = 10;
    let eth = frame.get(VNET..)?;
    let ip = eth.get(14..)?;
    let be16 = |b: &[u8], i: usize| Some(u16::from_be_bytes([*b.get(i)?, *b.get(i + 1)?]));
    let (src, dst, l4) = match be16(eth, 12)? {
        0x0800 if ip.get(9) == Some(&6) => {
            let ihl = usize::from(ip[0] & 0xf) * 4;
            let a = |i: usize| -> Option<IpAddr> {
                let b: [u8; 4] = ip.get(i..i + 4)?.try_into().ok()?;
                Some(IpAddr::from(b))
            };
            (a(12)?, a(16)?, ip.get(ihl..)?)
        }
        0x86dd if ip.get(6) == Some(&6) => {
            let a = |i: usize| -> Option<IpAddr> {
                let b: [u8; 16] = ip.get(i..i + 16)?.try_into().ok()?;
                Some(IpAddr::from(b))
            };
            (a(8)?, a(24)?, ip.get(40..)?)
        }
        _ => return None,
    };
    let be32 = |i: usize| Some(u32::from_be_bytes(l4.get(i..i + 4)?.try_into().ok()?));
    let doff = usize::from(*l4.get(12)? >> 4) * 4;
    Some(Seen {
        src: SocketAddr::new(src, be16(l4, 0)?),
        dst: SocketAddr::new(dst, be16(l4, 2)?),
        seq: be32(4)?,
        ack: be32(8)?,
        len: l4.len().checked_sub(doff)? as u32,
        flags: *l4.get(13)?,
    })
}

/// Copies frames from `from` to `to` for ever, dropping `percent` of them (a seeded
/// xorshift decides, so a run is repeatable); each drop is reported on stdout. With `log`,
/// every TCP segment relayed or dropped that way is written there ([`Seen::line`]), so that
/// a test can tell what the far side could have seen.
fn forward(
    from: Port,
    to: Port,
    percent: u64,
    mut rng: u64,
    what: &'static str,
    mut log: Option<std::fs::File>,
) {
    let mut buf = vec![0u8; BUF];
    let (mut passed, mut dropped, mut refused) = (0u64, 0u64, 0u64);
    loop {
        let n = from.recv(&mut buf);
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        let drop = percent > 0 && rng % 100 < percent;
        let sent = !drop && to.send(&buf[..n]);
        // Logged once sent (or not): a frame the log calls passed is already in the far
        // side's backlog, not still in this thread, which the scheduler may hold back for
        // a while under TCG (logged before the send, a frame could be "passed" in the log
        // and not yet seen by the peer when a test read both). A frame the far side
        // refused never reached it: logged as dropped.
        if let (Some(f), Some(seg)) = (log.as_mut(), tcp_of(&buf[..n])) {
            let _ = writeln!(f, "{}", seg.line(if sent { "pass" } else { "drop" }));
        }
        if drop {
            dropped += 1;
            println!("{what}: dropped {dropped} (passed {passed}, refused {refused})");
            let _ = std::io::stdout().flush();
            continue;
        }
        if sent {
            passed += 1;
        } else {
            refused += 1;
        }
    }
}

impl Seen {
    /// `VERDICT SRC DST SEQ ACK LEN FLAGS`, one line; [`Seen::parse`] reads it back.
    pub fn line(&self, verdict: &str) -> String {
        format!(
            "{verdict} {} {} {} {} {} {}",
            self.src, self.dst, self.seq, self.ack, self.len, self.flags
        )
    }

    /// A line of [`Seen::line`]: the verdict and the segment.
    pub fn parse(line: &str) -> Option<(String, Seen)> {
        let w: Vec<&str> = line.split_whitespace().collect();
        let [verdict, src, dst, seq, ack, len, flags] = w[..] else {
            return None;
        };
        Some((
            verdict.to_string(),
            Seen {
                src: src.parse().ok()?,
                dst: dst.parse().ok()?,
                seq: seq.parse().ok()?,
                ack: ack.parse().ok()?,
                len: len.parse().ok()?,
                flags: flags.parse().ok()?,
            },
        ))
    }
}

/// `lossy-relay A B PERCENT [SEED [LOG]]`: relays frames between interfaces A and B,
/// dropping PERCENT % of those from A to B; with LOG, each TCP segment from A to B is
/// written there, relayed or dropped.
pub fn run(args: &[String]) {
    let [a, b, percent, rest @ ..] = args else {
        eprintln!("usage: lossy-relay A B PERCENT [SEED [LOG]]");
        std::process::exit(2);
    };
    let percent: u64 = percent.parse().expect("PERCENT");
    let seed: u64 = rest
        .first()
        .map_or(0x9e37_79b9_7f4a_7c15, |s| s.parse().expect("SEED"));
    let log = rest
        .get(1)
        .map(|p| std::fs::File::create(p).unwrap_or_else(|e| panic!("{p}: {e}")));
    let (pa, pb) = (Port::open(a), Port::open(b));
    std::thread::spawn(move || forward(pb, pa, 0, 1, "back", None));
    forward(pa, pb, percent, seed | 1, "lossy", log);
}
