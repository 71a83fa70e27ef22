// SPDX-License-Identifier: GPL-2.0

//! Announcing this node's own addresses when it takes them back after owner recovery, as
//! IPaddr2 does: gratuitous ARP for IPv4 and unsolicited neighbour advertisements for IPv6,
//! five of each 200 ms apart. (The kernel announces neither for an address added without
//! duplicate address detection, which a node taking its address back must skip: the peer
//! that held it may still answer for a moment.)
//!
//! The frames are built here ([`garp`], [`una`], pure, tested) and sent on an `AF_PACKET`
//! socket: the only place permtcpd writes raw frames.

use std::net::{Ipv4Addr, Ipv6Addr};

/// A gratuitous ARP request for `ip` from `mac`: broadcast, sender and target address both
/// `ip` (RFC 5227's announcement).
pub fn garp(mac: [u8; 6], ip: Ipv4Addr) -> [u8; 42] {
    let mut f = [0u8; 42];
    f[0..6].copy_from_slice(&[0xff; 6]);
    f[6..12].copy_from_slice(&mac);
    f[12..14].copy_from_slice(&0x0806u16.to_be_bytes());
    // Ethernet, IPv4, address lengths 6 and 4, request.
    f[14..22].copy_from_slice(&[0, 1, 0x08, 0x00, 6, 4, 0, 1]);
    f[22..28].copy_from_slice(&mac);
    f[28..32].copy_from_slice(&ip.octets());
    f[38..42].copy_from_slice(&ip.octets());
    f
}

/// An unsolicited neighbour advertisement for `ip` from `mac` (RFC 4861 7.2.6): to all
/// nodes, override set, with the target link-layer address option.
pub fn una(mac: [u8; 6], ip: Ipv6Addr) -> [u8; 86] {
    const ALL_NODES: [u8; 16] = [0xff, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
    let mut f = [0u8; 86];
    f[0..6].copy_from_slice(&[0x33, 0x33, 0, 0, 0, 1]);
    f[6..12].copy_from_slice(&mac);
    f[12..14].copy_from_slice(&0x86ddu16.to_be_bytes());
    // IPv6: payload 32 bytes, ICMPv6, hop limit 255.
    f[14..22].copy_from_slice(&[0x60, 0, 0, 0, 0, 32, 58, 255]);
    f[22..38].copy_from_slice(&ip.octets());
    f[38..54].copy_from_slice(&ALL_NODES);
    // Neighbour advertisement, override flag, the target, its link-layer address.
    f[54] = 136;
    f[58] = 0x20;
    f[62..78].copy_from_slice(&ip.octets());
    f[78..80].copy_from_slice(&[2, 1]);
    f[80..86].copy_from_slice(&mac);
    let sum = checksum(&ip.octets(), &ALL_NODES, &f[54..86]);
    f[56..58].copy_from_slice(&sum.to_be_bytes());
    f
}

/// The ICMPv6 checksum of `msg` (its checksum field zero) from `src` to `dst`.
fn checksum(src: &[u8; 16], dst: &[u8; 16], msg: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    let mut add = |b: &[u8]| {
        for w in b.chunks(2) {
            sum += u32::from(u16::from_be_bytes([w[0], *w.get(1).unwrap_or(&0)]));
        }
    };
    add(src);
    add(dst);
    add(&(msg.len() as u32).to_be_bytes());
    add(&[0, 0, 0, 58]);
    add(msg);
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// The MAC address of device `dev`, from sysfs.
pub fn mac_of(dev: &str) -> std::io::Result<[u8; 6]> {
    let text = std::fs::read_to_string(format!("/sys/class/net/{dev}/address"))?;
    let bad = || std::io::Error::new(std::io::ErrorKind::InvalidData, "not a MAC address");
    let mut mac = [0u8; 6];
    let mut parts = text.trim().split(':');
    for b in mac.iter_mut() {
        *b = u8::from_str_radix(parts.next().ok_or_else(bad)?, 16).map_err(|_| bad())?;
    }
    Ok(mac)
}

/// Sends `frame` on device `ifindex` (an `AF_PACKET` socket, CAP_NET_RAW).
pub fn send_frame(ifindex: u32, frame: &[u8]) -> std::io::Result<()> {
    // SAFETY: plain socket(2); the result is checked.
    let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW, 0) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: `fd` is a socket this function owns from here and closes once.
    let fd = unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) };
    // SAFETY: sockaddr_ll is plain old data; all-zero is a valid value.
    let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    sll.sll_family = libc::AF_PACKET as u16;
    sll.sll_ifindex = ifindex as i32;
    sll.sll_halen = 6;
    sll.sll_addr[..6].copy_from_slice(&frame[..6]);
    // SAFETY: `frame` and `sll` are valid for the lengths given for the duration of the call.
    let n = unsafe {
        libc::sendto(
            std::os::fd::AsRawFd::as_raw_fd(&fd),
            frame.as_ptr().cast(),
            frame.len(),
            0,
            (&sll as *const libc::sockaddr_ll).cast(),
            std::mem::size_of::<libc::sockaddr_ll>() as u32,
        )
    };
    if n < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_gratuitous_arp_names_the_address_as_sender_and_target() {
        let f = garp([2, 0, 0, 0, 0, 1], Ipv4Addr::new(10, 0, 0, 1));
        let text: Vec<String> = f.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(
            text.concat(),
            "ffffffffffff020000000001080600010800060400010200000000010a000001000000000000\
             0a000001"
        );
        // As the kernel's fence reads it: a request claiming 10.0.0.1.
        let claim = permtcp_logic::fence::arp_claim(&f[14..]);
        assert_eq!(claim, Some(permtcp_logic::packet::Addr::v4([10, 0, 0, 1])));
    }

    #[test]
    fn an_unsolicited_advertisement_checks_out() {
        let ip: Ipv6Addr = "fd00::1".parse().unwrap();
        let f = una([2, 0, 0, 0, 0, 1], ip);
        // The checksum over the message with it included is 0 (folded: 0xffff complement).
        let dst: [u8; 16] = f[38..54].try_into().unwrap();
        assert_eq!(checksum(&ip.octets(), &dst, &f[54..86]), 0);
        // The value tcpdump -vv accepts ("icmp6 sum ok") for this very frame.
        assert_eq!(u16::from_be_bytes([f[56], f[57]]), 0x5a9b);
        let claim = permtcp_logic::fence::ndisc_claim(&f[14..]);
        assert_eq!(claim, Some(permtcp_logic::packet::Addr(ip.octets())));
    }
}
