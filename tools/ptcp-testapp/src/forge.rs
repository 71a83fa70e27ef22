// SPDX-License-Identifier: GPL-2.0

//! Raw TCP segments injected through an AF_PACKET socket (no checksum offload: the receivers
//! see CHECKSUM_NONE), for the hostile-traffic selftests: segments forged against a live
//! connection as the peer's mirror shows it, Ethernet-padded short frames, and SYN floods.

use serde_json::Value;
use std::net::{IpAddr, SocketAddr};

/// One segment to build.
pub struct Seg {
    pub src: SocketAddr,
    pub dst: SocketAddr,
    pub seq: u32,
    pub ack: u32,
    pub flags: u8,
    pub win: u16,
    pub ts: Option<(u32, u32)>,
    pub data: Vec<u8>,
    /// Bytes of padding after the IP packet (its length fields do not count them).
    pub pad: usize,
}

fn sum(data: &[u8], mut s: u32) -> u32 {
    for c in data.chunks(2) {
        s += u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]));
    }
    s
}

fn fold(mut s: u32) -> u16 {
    while s > 0xffff {
        s = (s & 0xffff) + (s >> 16);
    }
    !(s as u16)
}

impl Seg {
    /// The IP packet, checksums right, padding appended.
    pub fn bytes(&self) -> Vec<u8> {
        let mut tcp = vec![0u8; 20];
        tcp[0..2].copy_from_slice(&self.src.port().to_be_bytes());
        tcp[2..4].copy_from_slice(&self.dst.port().to_be_bytes());
        tcp[4..8].copy_from_slice(&self.seq.to_be_bytes());
        tcp[8..12].copy_from_slice(&self.ack.to_be_bytes());
        tcp[13] = self.flags;
        tcp[14..16].copy_from_slice(&self.win.to_be_bytes());
        if let Some((v, e)) = self.ts {
            tcp.extend([1, 1, 8, 10]);
            tcp.extend(v.to_be_bytes());
            tcp.extend(e.to_be_bytes());
        }
        tcp[12] = ((tcp.len() / 4) as u8) << 4;
        tcp.extend(&self.data);
        let len = tcp.len();
        let mut out = match (self.src.ip(), self.dst.ip()) {
            (IpAddr::V4(s), IpAddr::V4(d)) => {
                let pseudo = sum(&s.octets(), sum(&d.octets(), 6 + len as u32));
                let c = fold(sum(&tcp, pseudo));
                tcp[16..18].copy_from_slice(&c.to_be_bytes());
                let mut ip = vec![0x45, 0];
                ip.extend(((20 + len) as u16).to_be_bytes());
                ip.extend([0, 0, 0x40, 0, 64, 6, 0, 0]);
                ip.extend(s.octets());
                ip.extend(d.octets());
                let ic = fold(sum(&ip, 0));
                ip[10..12].copy_from_slice(&ic.to_be_bytes());
                ip
            }
            (IpAddr::V6(s), IpAddr::V6(d)) => {
                let pseudo = sum(&s.octets(), sum(&d.octets(), 6 + len as u32));
                let c = fold(sum(&tcp, pseudo));
                tcp[16..18].copy_from_slice(&c.to_be_bytes());
                let mut ip = vec![0x60, 0, 0, 0];
                ip.extend((len as u16).to_be_bytes());
                ip.extend([6, 64]);
                ip.extend(s.octets());
                ip.extend(d.octets());
                ip
            }
            _ => panic!("mixed address families"),
        };
        out.extend(tcp);
        out.extend(std::iter::repeat_n(0u8, self.pad));
        out
    }
}

/// An AF_PACKET socket sending IP packets to one MAC address on one interface.
pub struct Link {
    fd: i32,
    sll: libc::sockaddr_ll,
}

impl Link {
    pub fn open(iface: &str, dst_mac: &str, v6: bool) -> Link {
        let mac: Vec<u8> = dst_mac
            .split(':')
            .map(|h| u8::from_str_radix(h, 16).unwrap())
            .collect();
        let proto = if v6 { libc::ETH_P_IPV6 } else { libc::ETH_P_IP } as u16;
        let name = std::ffi::CString::new(iface).unwrap();
        // SAFETY: plain libc calls with valid arguments.
        unsafe {
            let ifindex = libc::if_nametoindex(name.as_ptr()) as i32;
            assert!(ifindex > 0, "no interface {iface}");
            let fd = libc::socket(libc::AF_PACKET, libc::SOCK_DGRAM, proto.to_be() as i32);
            assert!(
                fd >= 0,
                "packet socket: {}",
                std::io::Error::last_os_error()
            );
            let mut sll: libc::sockaddr_ll = std::mem::zeroed();
            sll.sll_family = libc::AF_PACKET as u16;
            sll.sll_protocol = proto.to_be();
            sll.sll_ifindex = ifindex;
            sll.sll_halen = 6;
            sll.sll_addr[..6].copy_from_slice(&mac);
            Link { fd, sll }
        }
    }

    pub fn send(&self, pkt: &[u8]) {
        // SAFETY: `pkt` and `sll` are valid for the call.
        let r = unsafe {
            libc::sendto(
                self.fd,
                pkt.as_ptr() as *const _,
                pkt.len(),
                0,
                &self.sll as *const _ as *const libc::sockaddr,
                std::mem::size_of::<libc::sockaddr_ll>() as u32,
            )
        };
        assert_eq!(
            r,
            pkt.len() as isize,
            "sendto: {}",
            std::io::Error::last_os_error()
        );
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        // SAFETY: our own descriptor.
        unsafe { libc::close(self.fd) };
    }
}

fn num(v: &Value, k: &str) -> u32 {
    v[k].as_u64().unwrap_or_else(|| panic!("no {k} in {v}")) as u32
}

/// `ptcp-testapp forge IFACE DSTMAC CONNS_JSON OWNER_PORT KIND [pad=N] [bad]`: one segment
/// against the connection of the owner's port in the peer's `permctl --json conns` output,
/// sent to DSTMAC, with N bytes of Ethernet padding, with a wrong TCP checksum if `bad`. KIND
/// (client's side unless it starts with `owner-`):
///
/// ```text
/// ack             a duplicate pure ACK, exactly what the client last sent (valid)
/// fin             a FIN at the client's next sequence number (valid)
/// rst             a RST at the client's next sequence number (valid: resets)
/// ack-unsent      an ACK of owner bytes 1000 past twice the client's largest window (the
///                 edge it allowed, and one window more for an update lost on the peer's
///                 port; forged)
/// data-ack-unsent 100 bytes of data with that ACK (forged)
/// ack-old         an ACK 1 GiB behind the owner's snd_una, with 100 bytes (forged)
/// rst-window      a RST 1000 bytes past the client's next sequence number (forged)
/// rst-behind      a RST one byte before it (forged)
/// ack-far         a pure ACK 100 MB past the client's next sequence number (forged)
/// data-far        100 bytes 100 MB past it (forged)
/// data-noack      100 bytes at the right place without the ACK flag (forged)
/// owner-rst-window a RST from the owner 10 bytes past its next sequence number (forged)
/// owner-ack-unsent an ACK from the owner of client bytes 5000 past twice its largest
///                 window (forged)
/// ```
///
/// and, sent where neither end takes them (an unused MAC), what the peer would see when one
/// direction overtakes the other on the link (snoop_reorder.sh); each prints the mirror's
/// state it should lead to:
///
/// ```text
/// window-race     owner data from its next sequence number to 4 segments past one of the
///                 client's largest windows past its acknowledgement, then the client's ACK
///                 of it all (the window update that let it through, seen late)
/// ack-ahead       100 bytes of client data acknowledging 1000 owner bytes not sent yet
/// owner-data      1000 bytes of owner data at its next sequence number
/// ```
pub fn forge(args: &[String]) {
    let (iface, mac, file, port, kind) = (&args[0], &args[1], &args[2], &args[3], &args[4]);
    let pad = args
        .iter()
        .find_map(|a| a.strip_prefix("pad="))
        .map_or(0, |n| n.parse().unwrap());
    let conns: Value = serde_json::from_str(&std::fs::read_to_string(file).unwrap()).unwrap();
    let c = conns
        .as_array()
        .unwrap()
        .iter()
        .find(|c| {
            c["owner"]
                .as_str()
                .is_some_and(|o| o.ends_with(&format!(":{port}")))
        })
        .unwrap_or_else(|| panic!("no connection of port {port} in {file}"));
    let owner: SocketAddr = c["owner"].as_str().unwrap().parse().unwrap();
    let client: SocketAddr = c["client"].as_str().unwrap().parse().unwrap();
    let (o, cl) = (&c["owner_sent"], &c["client_sent"]);
    let (o_nxt, c_nxt, o_una) = (num(o, "snd_nxt"), num(cl, "snd_nxt"), num(o, "snd_una"));
    let (c_una, o_maxwin, c_maxwin) = (
        num(cl, "snd_una"),
        num(o, "max_window"),
        num(cl, "max_window"),
    );
    // The raw window field the client last sent, and timestamps that pass PAWS (none in a
    // padded frame: a 40-byte IPv4 segment is what Ethernet pads).
    let win = (num(cl, "window") >> num(cl, "wscale")).min(65535) as u16;
    let c_ts = cl["tsval"]
        .as_u64()
        .filter(|_| pad == 0)
        .map(|v| (v as u32 + 1, num(o, "tsval")));
    let o_ts = o["tsval"]
        .as_u64()
        .map(|v| (v as u32 + 1, num(cl, "tsval")));
    const A: u8 = 0x10;
    const FIN: u8 = 0x01;
    const RST: u8 = 0x04;
    const PSH: u8 = 0x08;
    let data = vec![0x5a; 100];
    let far = 100_000_000u32;
    let from_client = |seq: u32, ack: u32, flags: u8, data: Vec<u8>| Seg {
        src: client,
        dst: owner,
        seq,
        ack,
        flags,
        win,
        ts: c_ts,
        data,
        pad,
    };
    let s = match kind.as_str() {
        "ack" => from_client(c_nxt, o_nxt, A, vec![]),
        "fin" => from_client(c_nxt, o_nxt, A | FIN, vec![]),
        "rst" => Seg {
            ts: None,
            ..from_client(c_nxt, 0, RST, vec![])
        },
        // Past the edge the client allowed the owner (at most its acknowledgement plus its
        // largest window): bytes the owner cannot have sent. (Short of it they may be on
        // their way to the peer, which then holds the connection not ready.)
        "ack-unsent" => from_client(c_nxt, o_una.wrapping_add(2 * c_maxwin + 1000), A, vec![]),
        "data-ack-unsent" => from_client(
            c_nxt,
            o_una.wrapping_add(2 * c_maxwin + 1000),
            A | PSH,
            data,
        ),
        "ack-old" => from_client(c_nxt, o_una.wrapping_sub(1 << 30), A | PSH, data),
        "rst-window" => Seg {
            ts: None,
            ..from_client(c_nxt.wrapping_add(1000), 0, RST, vec![])
        },
        "rst-behind" => Seg {
            ts: None,
            ..from_client(c_nxt.wrapping_sub(1), 0, RST, vec![])
        },
        "ack-far" => from_client(c_nxt.wrapping_add(far), o_nxt, A, vec![]),
        "data-far" => from_client(c_nxt.wrapping_add(far), o_nxt, A | PSH, data),
        "data-noack" => from_client(c_nxt, 0, PSH, data),
        "owner-rst-window" => Seg {
            src: owner,
            dst: client,
            seq: o_nxt.wrapping_add(10),
            ack: 0,
            flags: RST,
            win: 0,
            ts: None,
            data: vec![],
            pad,
        },
        "owner-ack-unsent" => Seg {
            src: owner,
            dst: client,
            seq: o_nxt,
            ack: c_una.wrapping_add(2 * o_maxwin + 5000),
            flags: A,
            win: 502,
            ts: o_ts,
            data: vec![],
            pad,
        },
        "window-race" | "ack-ahead" | "owner-data" => {
            let o_win = (num(o, "window") >> num(o, "wscale")).min(65535) as u16;
            let from_owner = |seq: u32, ack: u32, flags: u8, data: Vec<u8>| Seg {
                src: owner,
                dst: client,
                seq,
                ack,
                flags,
                win: o_win,
                ts: o_ts,
                data,
                pad,
            };
            let link = Link::open(iface, mac, owner.is_ipv6());
            match kind.as_str() {
                "window-race" => {
                    let end = o_una.wrapping_add(c_maxwin + 4 * 1400);
                    let mut seq = o_nxt;
                    while (end.wrapping_sub(seq) as i32) > 0 {
                        let n = end.wrapping_sub(seq).min(1400);
                        link.send(&from_owner(seq, c_nxt, A, vec![0x6b; n as usize]).bytes());
                        seq = seq.wrapping_add(n);
                    }
                    let ts = c_ts.map(|(v, _)| (v, o_ts.map_or(0, |t| t.0)));
                    link.send(
                        &Seg {
                            ts,
                            ..from_client(c_nxt, end, A, vec![])
                        }
                        .bytes(),
                    );
                    println!(
                        "owner_nxt={end} past_edge_from={}",
                        o_una.wrapping_add(c_maxwin)
                    );
                }
                "ack-ahead" => {
                    let ack = o_nxt.wrapping_add(1000);
                    link.send(&from_client(c_nxt, ack, A | PSH, data).bytes());
                    println!("client_nxt={} owner_ack={ack}", c_nxt.wrapping_add(100));
                }
                _ => {
                    let d = vec![0x6c; 1000];
                    link.send(&from_owner(o_nxt, c_nxt, A | PSH, d).bytes());
                    println!("owner_nxt={}", o_nxt.wrapping_add(1000));
                }
            }
            return;
        }
        other => panic!("unknown kind {other}"),
    };
    let mut pkt = s.bytes();
    if args.iter().any(|a| a == "bad") {
        // A wrong TCP checksum (the low byte of the window field, left out of the sum).
        let l4 = if owner.is_ipv6() { 40 } else { 20 };
        pkt[l4 + 15] ^= 0x01;
    }
    Link::open(iface, mac, owner.is_ipv6()).send(&pkt);
}

/// `ptcp-testapp flood IFACE DSTMAC SRC_IP DST COUNT`: COUNT SYNs to DST from SRC_IP, source
/// ports 10000 on.
pub fn flood(args: &[String]) {
    let (iface, mac) = (&args[0], &args[1]);
    let src: IpAddr = args[2].parse().unwrap();
    let dst: SocketAddr = args[3].parse().unwrap();
    let count: u32 = args[4].parse().unwrap();
    let link = Link::open(iface, mac, dst.is_ipv6());
    for i in 0..count {
        let s = Seg {
            src: SocketAddr::new(src, 10_000 + (i % 50_000) as u16),
            dst,
            seq: i.wrapping_mul(2_654_435_761),
            ack: 0,
            flags: 0x02,
            win: 64240,
            ts: None,
            data: vec![],
            pad: 0,
        };
        link.send(&s.bytes());
    }
}
