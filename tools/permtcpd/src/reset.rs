// SPDX-License-Identifier: GPL-2.0

//! A visible end for a held connection whose handoff got no answer (Documentation/
//! handoff.rst, "Through permtcpd"): the serving node cannot know whether the peer took it,
//! so it never resumes it; it drops its socket silently (as if taken) and tells the client
//! with a reset, so that the client fails at once instead of waiting for its retransmissions
//! to give up.
//!
//! The kernel drops every reset the stack sends for such a connection (it is held, then
//! followed), so the reset is built here ([`rst`], pure, tested) and sent as a raw frame on
//! the cluster-facing device (an `AF_PACKET` socket: no netfilter hook on its way), to the
//! client's MAC address from the neighbour table ([`neighbour`], rtnetlink).

use crate::announce::{mac_of, send_frame};
use permtcp_logic::handoff::HandoffConn;
use std::net::IpAddr;

/// The one's-complement sum of `b` added to `sum` (not folded).
fn sum16(b: &[u8], mut sum: u32) -> u32 {
    for w in b.chunks(2) {
        sum += u32::from(u16::from_be_bytes([w[0], *w.get(1).unwrap_or(&0)]));
    }
    sum
}

fn fold(mut sum: u32) -> u16 {
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// A reset with acknowledgement from `src` to `dst` (addresses of one family), sequence
/// `seq`, acknowledging `ack`, as an Ethernet frame from `smac` to `dmac`. `None` when the
/// addresses' families differ.
pub fn rst(
    smac: [u8; 6],
    dmac: [u8; 6],
    src: std::net::SocketAddr,
    dst: std::net::SocketAddr,
    seq: u32,
    ack: u32,
) -> Option<Vec<u8>> {
    let mut tcp = [0u8; 20];
    tcp[0..2].copy_from_slice(&src.port().to_be_bytes());
    tcp[2..4].copy_from_slice(&dst.port().to_be_bytes());
    tcp[4..8].copy_from_slice(&seq.to_be_bytes());
    tcp[8..12].copy_from_slice(&ack.to_be_bytes());
    tcp[12] = 5 << 4;
    tcp[13] = 0x14; // RST, ACK
    let mut f = Vec::with_capacity(74);
    f.extend_from_slice(&dmac);
    f.extend_from_slice(&smac);
    match (src.ip(), dst.ip()) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            f.extend_from_slice(&0x0800u16.to_be_bytes());
            let mut ip = [0u8; 20];
            ip[0] = 0x45;
            ip[2..4].copy_from_slice(&40u16.to_be_bytes());
            ip[6] = 0x40; // don't fragment
            ip[8] = 64;
            ip[9] = 6;
            ip[12..16].copy_from_slice(&s.octets());
            ip[16..20].copy_from_slice(&d.octets());
            let c = fold(sum16(&ip, 0));
            ip[10..12].copy_from_slice(&c.to_be_bytes());
            let pseudo = sum16(&s.octets(), sum16(&d.octets(), 6 + 20));
            let c = fold(sum16(&tcp, pseudo));
            tcp[16..18].copy_from_slice(&c.to_be_bytes());
            f.extend_from_slice(&ip);
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            f.extend_from_slice(&0x86ddu16.to_be_bytes());
            let mut ip = [0u8; 40];
            ip[0] = 0x60;
            ip[4..6].copy_from_slice(&20u16.to_be_bytes());
            ip[6] = 6;
            ip[7] = 64;
            ip[8..24].copy_from_slice(&s.octets());
            ip[24..40].copy_from_slice(&d.octets());
            let pseudo = sum16(&s.octets(), sum16(&d.octets(), 6 + 20));
            let c = fold(sum16(&tcp, pseudo));
            tcp[16..18].copy_from_slice(&c.to_be_bytes());
            f.extend_from_slice(&ip);
        }
        _ => return None,
    }
    f.extend_from_slice(&tcp);
    Some(f)
}

/// The link-layer address the neighbour table has for `ip` on device `ifindex` (an entry
/// neither failed nor incomplete), read with an RTM_GETNEIGH dump.
pub fn neighbour(ifindex: u32, ip: IpAddr) -> std::io::Result<Option<[u8; 6]>> {
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    const RTM_NEWNEIGH: u16 = 28;
    const RTM_GETNEIGH: u16 = 30;
    const NLMSG_ERROR: u16 = 2;
    const NLMSG_DONE: u16 = 3;
    const NDA_DST: u16 = 1;
    const NDA_LLADDR: u16 = 2;
    const NUD_INCOMPLETE: u16 = 0x01;
    const NUD_FAILED: u16 = 0x20;
    let (family, want): (u8, Vec<u8>) = match ip {
        IpAddr::V4(a) => (libc::AF_INET as u8, a.octets().to_vec()),
        IpAddr::V6(a) => (libc::AF_INET6 as u8, a.octets().to_vec()),
    };
    // SAFETY: plain socket(2); the result is checked.
    let fd = unsafe {
        libc::socket(
            libc::AF_NETLINK,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC,
            libc::NETLINK_ROUTE,
        )
    };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: `fd` is a socket this function owns from here and closes once.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    // nlmsghdr (16) + ndmsg (12): the family's whole table.
    let mut req = [0u8; 28];
    req[0..4].copy_from_slice(&28u32.to_ne_bytes());
    req[4..6].copy_from_slice(&RTM_GETNEIGH.to_ne_bytes());
    req[6..8].copy_from_slice(&((libc::NLM_F_REQUEST | libc::NLM_F_DUMP) as u16).to_ne_bytes());
    req[8..12].copy_from_slice(&1u32.to_ne_bytes());
    req[16] = family;
    // SAFETY: `req` is valid for its length during the call.
    if unsafe { libc::send(fd.as_raw_fd(), req.as_ptr().cast(), req.len(), 0) } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    let mut buf = vec![0u8; 32768];
    let mut found = None;
    loop {
        // SAFETY: `buf` is valid for its length during the call.
        let n = unsafe { libc::recv(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
        if n < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let mut m = &buf[..n as usize];
        if m.is_empty() {
            return Ok(found);
        }
        while m.len() >= 16 {
            let len = u32::from_ne_bytes(m[0..4].try_into().unwrap()) as usize;
            let kind = u16::from_ne_bytes([m[4], m[5]]);
            if len < 16 || len > m.len() {
                return Ok(found);
            }
            match kind {
                NLMSG_DONE => return Ok(found),
                NLMSG_ERROR => {
                    let e = i32::from_ne_bytes(m[16..20].try_into().unwrap_or([0; 4]));
                    return Err(std::io::Error::from_raw_os_error(-e));
                }
                RTM_NEWNEIGH if len >= 28 => {
                    let nd = &m[16..28];
                    let dev = i32::from_ne_bytes(nd[4..8].try_into().unwrap()) as u32;
                    let state = u16::from_ne_bytes([nd[8], nd[9]]);
                    let (mut dst, mut ll) = (None, None);
                    let mut a = &m[28..len];
                    while a.len() >= 4 {
                        let alen = usize::from(u16::from_ne_bytes([a[0], a[1]]));
                        let akind = u16::from_ne_bytes([a[2], a[3]]);
                        if alen < 4 || alen > a.len() {
                            break;
                        }
                        match akind {
                            NDA_DST => dst = Some(&a[4..alen]),
                            NDA_LLADDR if alen == 10 => ll = Some(&a[4..10]),
                            _ => {}
                        }
                        let step = (alen + 3) & !3;
                        if step >= a.len() {
                            break;
                        }
                        a = &a[step..];
                    }
                    if dev == ifindex
                        && state & (NUD_INCOMPLETE | NUD_FAILED) == 0
                        && dst == Some(&want[..])
                    {
                        if let Some(ll) = ll {
                            found = Some(ll.try_into().unwrap());
                        }
                    }
                }
                _ => {}
            }
            let step = (len + 3) & !3;
            if step >= m.len() {
                break;
            }
            m = &m[step..];
        }
    }
}

/// Sends a reset to the client of each of `conns` on device `dev`, from the service address,
/// with the held connection's `snd_nxt` (and its `snd_una` too when they differ: the client
/// accepts a reset at exactly the sequence number it expects). Returns how many connections
/// got one; a client whose MAC address is not known gets none (logged).
pub fn reset_clients(dev: &str, conns: &[HandoffConn]) -> std::io::Result<usize> {
    let ifindex = permctl::ifindex(dev).map_err(|e| std::io::Error::other(e.to_string()))?;
    let smac = mac_of(dev)?;
    let mut sent = 0;
    for c in conns {
        let (owner, client) = permctl::spec::ends(&c.key);
        let Some(dmac) = neighbour(ifindex, client.ip())? else {
            crate::log!(
                crate::log::WARNING,
                "handoff: no neighbour entry for {client} on {dev}: its connection was aborted without a reset"
            );
            continue;
        };
        let mut seqs = vec![c.snd_nxt];
        if c.snd_una != c.snd_nxt {
            seqs.push(c.snd_una);
        }
        for seq in seqs {
            if let Some(f) = rst(smac, dmac, owner, client, seq, c.rcv_nxt) {
                send_frame(ifindex, &f)?;
            }
        }
        sent += 1;
    }
    Ok(sent)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verify(f: &[u8]) {
        // The checksums over the headers with them included fold to 0.
        let (ip, tcp, pseudo) = if f[12..14] == [0x08, 0x00] {
            let ip = &f[14..34];
            assert_eq!(fold(sum16(ip, 0)), 0);
            (ip, &f[34..54], sum16(&ip[12..20], 6 + 20))
        } else {
            let ip = &f[14..54];
            (ip, &f[54..74], sum16(&ip[8..40], 6 + 20))
        };
        assert_eq!(fold(sum16(tcp, pseudo)), 0, "tcp checksum");
        assert_eq!(tcp[13], 0x14);
        let _ = ip;
    }

    #[test]
    fn resets_check_out_and_parse_as_the_kernel_parses_them() {
        let (a, b) = ([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 0x64]);
        let f = rst(
            a,
            b,
            "10.0.0.1:80".parse().unwrap(),
            "10.0.0.100:40000".parse().unwrap(),
            0xdead_beef,
            7,
        )
        .unwrap();
        assert_eq!(f.len(), 54);
        verify(&f);
        let seg = permtcp_logic::packet::parse(&f[14..], f.len() - 14).unwrap();
        assert_eq!((seg.sport, seg.dport, seg.seq), (80, 40000, 0xdead_beef));
        assert!(seg.has(permtcp_logic::packet::flags::RST));
        let f6 = rst(
            a,
            b,
            "[fd00::1]:80".parse().unwrap(),
            "[fd00::64]:40000".parse().unwrap(),
            1,
            2,
        )
        .unwrap();
        assert_eq!(f6.len(), 74);
        verify(&f6);
        let seg = permtcp_logic::packet::parse(&f6[14..], f6.len() - 14).unwrap();
        assert_eq!((seg.ack, seg.dport), (2, 40000));
        assert!(rst(
            a,
            b,
            "10.0.0.1:80".parse().unwrap(),
            "[fd00::64]:1".parse().unwrap(),
            1,
            1
        )
        .is_none());
    }

    #[test]
    fn the_loopback_neighbour_table_answers() {
        // A dump works unprivileged; nothing is known on the loopback device.
        match neighbour(1, "127.0.0.2".parse().unwrap()) {
            Ok(m) => assert_eq!(m, None),
            Err(e) => eprintln!("no rtnetlink here: {e}"),
        }
    }
}
