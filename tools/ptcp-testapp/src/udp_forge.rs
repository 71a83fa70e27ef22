// SPDX-License-Identifier: GPL-2.0

//! Forged cluster traffic for the permtcpd selftests: UDP datagrams sent with any source
//! address (as an attacker on the cluster link can), datagrams captured off the link for
//! replay, a datagram tagged again with another key, and the plain fail-over directive the
//! retired `permctl directives` accepted.
//!
//! - `udp-spoof IFACE DST_MAC SRC_ADDR:PORT DST_ADDR:PORT HEX`: one IPv4 UDP datagram with
//!   payload HEX through an AF_PACKET socket.
//! - `udp-capture IFACE SRC_ADDR DST_ADDR:PORT COUNT TIMEOUT_MS`: prints the payloads (hex, one
//!   a line) of the first COUNT UDP datagrams from SRC_ADDR to DST_ADDR:PORT the interface
//!   sees (the test bridge floods, so any namespace sees the others' frames).
//! - `reseal HEX KEY_ID KEY_HEX`: the permtcpd datagram HEX with its key id set to KEY_ID and
//!   its HMAC-SHA256 tag made again with KEY_HEX (a sender holding another key).
//! - `directive-hex NODE OWNER_ADDR:PORT CLIENT_ADDR:PORT [FROM]`: the old plain UDP directive
//!   (`PTCPDIR1` and the DIRECTIVE request's attributes) for that connection of NODE, as
//!   node FROM sent it.

use hmac::{Hmac, KeyInit, Mac};
use permtcp_logic::nla::Writer;
use permtcp_logic::ops::{DirectiveRequest, DIRECTIVE_MAGIC};
use permtcp_logic::packet::Addr;
use permtcp_logic::snoop::FlowKey;
use std::net::{IpAddr, SocketAddr};

/// Size of permtcpd's tag.
const TAG_LEN: usize = 32;
/// Offset of the key id in permtcpd's header.
const KEY_ID_AT: usize = 20;

pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

pub fn unhex(s: &str) -> Vec<u8> {
    let s = s.trim();
    assert!(s.len() % 2 == 0, "odd hex");
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
        .collect()
}

fn ifindex(iface: &str) -> i32 {
    let name = std::ffi::CString::new(iface).unwrap();
    // SAFETY: a valid NUL-terminated string.
    let i = unsafe { libc::if_nametoindex(name.as_ptr()) } as i32;
    assert!(i > 0, "no interface {iface}");
    i
}

fn packet_socket() -> i32 {
    // SAFETY: a plain socket call.
    let fd = unsafe {
        libc::socket(
            libc::AF_PACKET,
            libc::SOCK_DGRAM,
            (libc::ETH_P_IP as u16).to_be() as i32,
        )
    };
    assert!(
        fd >= 0,
        "packet socket: {}",
        std::io::Error::last_os_error()
    );
    fd
}

/// `udp-spoof`.
pub fn udp_spoof(iface: &str, dst_mac: &str, src: SocketAddr, dst: SocketAddr, payload: &str) {
    let (SocketAddr::V4(s), SocketAddr::V4(d)) = (src, dst) else {
        panic!("IPv4 only")
    };
    let payload = unhex(payload);
    let mac: Vec<u8> = dst_mac
        .split(':')
        .map(|h| u8::from_str_radix(h, 16).unwrap())
        .collect();
    let udp_len = 8 + payload.len();
    let mut udp = Vec::with_capacity(udp_len);
    udp.extend(s.port().to_be_bytes());
    udp.extend(d.port().to_be_bytes());
    udp.extend((udp_len as u16).to_be_bytes());
    udp.extend([0, 0]); // no checksum (IPv4)
    udp.extend(&payload);
    let total = (20 + udp_len) as u16;
    let mut ip = vec![0x45, 0];
    ip.extend(total.to_be_bytes());
    ip.extend([0, 0, 0x40, 0, 64, 17, 0, 0]);
    ip.extend(s.ip().octets());
    ip.extend(d.ip().octets());
    let c = crate::csum(&ip, 0);
    ip[10..12].copy_from_slice(&c.to_be_bytes());
    ip.extend(udp);
    let fd = packet_socket();
    // SAFETY: plain libc calls with valid arguments; the buffers outlive the calls.
    unsafe {
        let mut sll: libc::sockaddr_ll = std::mem::zeroed();
        sll.sll_family = libc::AF_PACKET as u16;
        sll.sll_protocol = (libc::ETH_P_IP as u16).to_be();
        sll.sll_ifindex = ifindex(iface);
        sll.sll_halen = 6;
        sll.sll_addr[..6].copy_from_slice(&mac);
        let r = libc::sendto(
            fd,
            ip.as_ptr() as *const _,
            ip.len(),
            0,
            &sll as *const _ as *const libc::sockaddr,
            std::mem::size_of::<libc::sockaddr_ll>() as u32,
        );
        assert_eq!(
            r,
            ip.len() as isize,
            "sendto: {}",
            std::io::Error::last_os_error()
        );
        libc::close(fd);
    }
}

/// `udp-capture`.
pub fn udp_capture(iface: &str, src: IpAddr, dst: SocketAddr, count: usize, timeout_ms: u64) {
    let (IpAddr::V4(src), SocketAddr::V4(dst)) = (src, dst) else {
        panic!("IPv4 only")
    };
    let fd = packet_socket();
    let deadline = std::time::Instant::now() + std::time::Duration::from_millis(timeout_ms);
    let mut got = 0;
    let mut buf = vec![0u8; 65536];
    // SAFETY: plain libc calls with valid arguments; the buffers outlive the calls.
    unsafe {
        let mut sll: libc::sockaddr_ll = std::mem::zeroed();
        sll.sll_family = libc::AF_PACKET as u16;
        sll.sll_protocol = (libc::ETH_P_IP as u16).to_be();
        sll.sll_ifindex = ifindex(iface);
        let r = libc::bind(
            fd,
            &sll as *const _ as *const libc::sockaddr,
            std::mem::size_of::<libc::sockaddr_ll>() as u32,
        );
        assert_eq!(r, 0, "bind: {}", std::io::Error::last_os_error());
        let tv = libc::timeval {
            tv_sec: 0,
            tv_usec: 100_000,
        };
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            &tv as *const _ as *const _,
            std::mem::size_of::<libc::timeval>() as u32,
        );
        while got < count && std::time::Instant::now() < deadline {
            let n = libc::recv(fd, buf.as_mut_ptr() as *mut _, buf.len(), 0);
            if n < 20 {
                continue;
            }
            let p = &buf[..n as usize];
            let ihl = usize::from(p[0] & 0x0f) * 4;
            if p[0] >> 4 != 4 || p[9] != 17 || p.len() < ihl + 8 {
                continue;
            }
            if p[12..16] != src.octets() || p[16..20] != dst.ip().octets() {
                continue;
            }
            let udp = &p[ihl..];
            if u16::from_be_bytes([udp[2], udp[3]]) != dst.port() {
                continue;
            }
            let len = usize::from(u16::from_be_bytes([udp[4], udp[5]]));
            if len < 8 || len > udp.len() {
                continue;
            }
            println!("{}", hex(&udp[8..len]));
            got += 1;
        }
        libc::close(fd);
    }
    if got < count {
        eprintln!("captured {got} of {count} datagrams");
        std::process::exit(1);
    }
}

/// `reseal`.
pub fn reseal(datagram: &str, key_id: u32, key: &str) {
    let mut d = unhex(datagram);
    assert!(d.len() > 40 + TAG_LEN, "not a permtcpd datagram");
    d[KEY_ID_AT..KEY_ID_AT + 4].copy_from_slice(&key_id.to_be_bytes());
    let signed = d.len() - TAG_LEN;
    let mut mac = <Hmac<sha2::Sha256> as KeyInit>::new_from_slice(&unhex(key)).expect("key");
    mac.update(&d[..signed]);
    let tag = mac.finalize().into_bytes();
    d[signed..].copy_from_slice(&tag);
    println!("{}", hex(&d));
}

fn addr(ip: IpAddr) -> Addr {
    match ip {
        IpAddr::V4(a) => Addr::v4(a.octets()),
        IpAddr::V6(a) => Addr(a.octets()),
    }
}

/// `directive-hex`.
pub fn directive_hex(node: u32, owner: SocketAddr, client: SocketAddr, from: Option<u32>) {
    let req = DirectiveRequest {
        node,
        key: FlowKey {
            owner_addr: addr(owner.ip()),
            client_addr: addr(client.ip()),
            owner_port: owner.port(),
            client_port: client.port(),
        },
        park_ms: None,
        from,
    };
    let mut buf = vec![0u8; 512];
    let mut w = Writer::new(&mut buf);
    req.write(&mut w).expect("fits");
    let n = w.len();
    let mut out = DIRECTIVE_MAGIC.to_vec();
    out.extend(&buf[..n]);
    println!("{}", hex(&out));
}
