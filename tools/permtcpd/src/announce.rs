// SPDX-License-Identifier: GPL-2.0

//! Announcing this node's own addresses when it takes them back after owner recovery:
//! gratuitous ARP for IPv4 (as IPaddr2 does, five of them 200 ms apart), and for IPv6 the
//! kernel's unsolicited neighbour advertisement on a new address (`ndisc_notify`).
//!
//! The frame is built here ([`garp`], pure, tested) and sent on an `AF_PACKET` socket: the
//! only place permtcpd writes raw frames.

use std::net::Ipv4Addr;

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
}
