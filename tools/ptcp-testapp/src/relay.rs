// SPDX-License-Identifier: GPL-2.0

//! A lossy link for the selftests (`lossy-relay`): frames are copied between two interfaces
//! through AF_PACKET sockets, and a given share of those going one way is dropped. Put on a
//! node's switch port, it is a lossy port (the kernel has no `tc netem` here). The sockets
//! use `PACKET_VNET_HDR`, so checksum offload and GSO state cross with each frame (a veth
//! frame keeps its partial checksum and its segmentation, as it would through a tap).

use std::io::Write;

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

/// Copies frames from `from` to `to` for ever, dropping `percent` of them (a seeded
/// xorshift decides, so a run is repeatable); each drop is reported on stdout.
fn forward(from: Port, to: Port, percent: u64, mut rng: u64, what: &'static str) {
    let mut buf = vec![0u8; BUF];
    let (mut passed, mut dropped, mut refused) = (0u64, 0u64, 0u64);
    loop {
        let n = from.recv(&mut buf);
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        if percent > 0 && rng % 100 < percent {
            dropped += 1;
            println!("{what}: dropped {dropped} (passed {passed}, refused {refused})");
            let _ = std::io::stdout().flush();
            continue;
        }
        if to.send(&buf[..n]) {
            passed += 1;
        } else {
            refused += 1;
        }
    }
}

/// `lossy-relay A B PERCENT [SEED]`: relays frames between interfaces A and B, dropping
/// PERCENT % of those from A to B.
pub fn run(args: &[String]) {
    let [a, b, percent, rest @ ..] = args else {
        eprintln!("usage: lossy-relay A B PERCENT [SEED]");
        std::process::exit(2);
    };
    let percent: u64 = percent.parse().expect("PERCENT");
    let seed: u64 = rest
        .first()
        .map_or(0x9e37_79b9_7f4a_7c15, |s| s.parse().expect("SEED"));
    let (pa, pb) = (Port::open(a), Port::open(b));
    std::thread::spawn(move || forward(pb, pa, 0, 1, "back"));
    forward(pa, pb, percent, seed | 1, "lossy");
}
