// SPDX-License-Identifier: GPL-2.0

//! Host tests of the header parser, and a randomized robustness run of parser and tracker.

mod common;

use common::*;
use permtcp_logic::packet::{
    checksum, flags::*, parse, parse_gso, parse_in_place, parse_options, tcp_csum_ok, tcp_flags,
    Skip,
};
use permtcp_logic::seqbuf::Budget;
use permtcp_logic::snoop::{Frame, Limits};
use permtcp_logic::track::entry_bytes;

#[test]
fn ipv4_segment_fields() {
    let o = Opts::syn_full(1460, 7, 123456);
    let pkt = frame(
        v4([10, 0, 0, 100], 40000),
        v4([10, 0, 0, 1], 80),
        0xdeadbeef,
        0,
        SYN,
        64240,
        &o,
        &[],
    );
    let s = parse(&pkt, pkt.len()).unwrap();
    assert_eq!(
        (s.sport, s.dport, s.seq, s.flags, s.window),
        (40000, 80, 0xdeadbeef, SYN, 64240)
    );
    assert_eq!(s.opts.mss, Some(1460));
    assert_eq!(s.opts.wscale, Some(7));
    assert!(s.opts.sack_perm);
    assert_eq!(s.opts.ts, Some((123456, 0)));
    assert_eq!(s.payload_len, 0);
    assert_eq!(s.seq_len(), 1);
    assert_eq!(s.src.as_v4(), Some([10, 0, 0, 100]));
}

#[test]
fn ipv4_options_ethernet_padding_and_gso_lengths() {
    let mut pkt = frame(
        v4([10, 0, 0, 100], 1),
        v4([10, 0, 0, 1], 80),
        1,
        2,
        ACK,
        1,
        &Opts::default(),
        b"hello",
    );
    // Insert 4 bytes of IP options (NOPs): IHL 6.
    pkt[0] = 0x46;
    pkt.splice(20..20, [1, 1, 1, 1]);
    let tot = u16::from_be_bytes([pkt[2], pkt[3]]) + 4;
    pkt[2..4].copy_from_slice(&tot.to_be_bytes());
    let s = parse(&pkt, pkt.len()).unwrap();
    assert_eq!((s.payload_off, s.payload_len), (44, 5));
    // Ethernet padding after the IP packet is not payload.
    let mut padded = pkt.clone();
    padded.extend([0u8; 10]);
    assert_eq!(parse(&padded, padded.len()).unwrap().payload_len, 5);
    // A GSO super-packet (BIG TCP): the skb is longer than any MTU and tot_len is 0.
    let mut gso = pkt.clone();
    gso[2..4].copy_from_slice(&[0, 0]);
    assert_eq!(parse_gso(&gso, 44 + 65000).unwrap().payload_len, 65000);
}

#[test]
fn ipv6_with_extension_headers() {
    let pkt = frame(
        v6(100, 40000),
        v6(1, 80),
        7,
        8,
        ACK,
        9,
        &Opts::default(),
        b"abc",
    );
    let s = parse(&pkt, pkt.len()).unwrap();
    assert_eq!((s.seq, s.ack, s.payload_len, s.payload_off), (7, 8, 3, 60));
    // Hop-by-hop options header (8 bytes) in front of TCP.
    let mut h = pkt.clone();
    h[6] = 0;
    h.splice(40..40, [6, 0, 1, 4, 0, 0, 0, 0]);
    let plen = u16::from_be_bytes([h[4], h[5]]) + 8;
    h[4..6].copy_from_slice(&plen.to_be_bytes());
    let s = parse(&h, h.len()).unwrap();
    assert_eq!((s.payload_off, s.payload_len), (68, 3));
    // Jumbogram length 0 in a GSO super-packet: the packet's own length counts.
    let mut j = pkt.clone();
    j[4..6].copy_from_slice(&[0, 0]);
    assert_eq!(parse_gso(&j, 60 + 100_000).unwrap().payload_len, 100_000);
    // A fragment header.
    let mut f = pkt.clone();
    f[6] = 44;
    assert_eq!(parse(&f, f.len()), Err(Skip::Fragment));
}

#[test]
fn rejects_what_is_not_a_whole_tcp_header() {
    let pkt = frame(
        v4([1, 1, 1, 1], 1),
        v4([2, 2, 2, 2], 2),
        1,
        1,
        ACK,
        1,
        &Opts::default(),
        &[],
    );
    assert_eq!(parse(&pkt[..30], 30), Err(Skip::Malformed));
    let mut udp = pkt.clone();
    udp[9] = 17;
    assert_eq!(parse(&udp, udp.len()), Err(Skip::NotTcp));
    let mut frag = pkt.clone();
    frag[6] = 0x20; // MF
    assert_eq!(parse(&frag, frag.len()), Err(Skip::Fragment));
    let mut doff = pkt.clone();
    doff[32] = 0x40; // data offset 16 bytes
    assert_eq!(parse(&doff, doff.len()), Err(Skip::Malformed));
    let mut big = pkt.clone();
    big[32] = 0xf0; // data offset 60 bytes, past the end
    assert_eq!(parse(&big, big.len()), Err(Skip::Malformed));
    assert_eq!(parse(&[0x50], 1), Err(Skip::NotTcp));
    assert_eq!(parse(&[], 0), Err(Skip::NotTcp));
}

#[test]
fn option_parsing_edge_cases() {
    assert_eq!(
        parse_options(&[1, 1, 0, 99]).unwrap(),
        Default::default(),
        "EOL ends parsing"
    );
    assert_eq!(
        parse_options(&[2, 4, 5]),
        Err(Skip::Malformed),
        "truncated MSS"
    );
    assert_eq!(
        parse_options(&[2, 3, 5, 0]),
        Err(Skip::Malformed),
        "MSS of the wrong length"
    );
    assert_eq!(
        parse_options(&[3, 3, 20]).unwrap().wscale,
        Some(14),
        "shift clamped to 14"
    );
    assert_eq!(
        parse_options(&[30, 4, 0, 0]).unwrap(),
        Default::default(),
        "unknown option skipped"
    );
    assert_eq!(
        parse_options(&[30, 1]),
        Err(Skip::Malformed),
        "length below 2"
    );
}

/// Linux's layout of the timestamps alone (two NOPs first) takes a fast path: it must give
/// what the general parser gives for the same option elsewhere, and only that layout may.
#[test]
fn aligned_timestamps_parse_as_the_general_parser_does() {
    let ts = [0x01, 0x02, 0x03, 0x04, 0xf1, 0xf2, 0xf3, 0xf4];
    let aligned = [&[1u8, 1, 8, 10][..], &ts].concat();
    let at_end = [&[8u8, 10][..], &ts, &[1, 0]].concat();
    let want = Some((0x0102_0304, 0xf1f2_f3f4));
    assert_eq!(parse_options(&aligned).unwrap().ts, want);
    assert_eq!(parse_options(&aligned), parse_options(&at_end));
    // Twelve bytes that are not that layout go through the general parser.
    let mut mss = aligned.clone();
    mss[2..4].copy_from_slice(&[2, 4]);
    assert_eq!(
        parse_options(&mss),
        Err(Skip::Malformed),
        "an MSS of length 4 then garbage"
    );
    let mut short = aligned.clone();
    short[3] = 9;
    assert_eq!(
        parse_options(&short),
        Err(Skip::Malformed),
        "timestamps of the wrong length"
    );
}

/// Random frames, and random mutations of valid ones, through the whole snooper: nothing may
/// panic, and every chunk taken must be accounted for.
#[test]
fn randomized_frames_never_panic() {
    let mut snoop = snooper(Limits {
        max_conns: 64,
        max_bytes: 1 << 20,
        max_conn_bytes: 256 << 10,
        syn_timeout_ms: 20_000,
        ..Limits::default()
    });
    let mut map = Map::default();
    let mut alloc = Budget::new(Heap::default(), 1 << 20);
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let flag_sets = [SYN, SYN | ACK, ACK, ACK | PSH, FIN | ACK, RST, RST | ACK];
    for i in 0..60_000u64 {
        let v = rng.below(2) == 0;
        let (o, c) = if v {
            (
                v4([10, 0, 0, 1], 80),
                v4([10, 0, 0, 100], 40000 + rng.below(8) as u16),
            )
        } else {
            (v6(1, 80), v6(100, 40000 + rng.below(8) as u16))
        };
        let (src, dst) = if rng.below(2) == 0 { (o, c) } else { (c, o) };
        let base = [1000u32, u32::MAX - 3000][rng.below(2) as usize];
        let seq = base.wrapping_add(rng.below(400_000) as u32);
        let ack = base.wrapping_add(rng.below(400_000) as u32);
        let fl = flag_sets[rng.below(flag_sets.len() as u64) as usize];
        let opts = if rng.below(3) == 0 {
            Opts::syn_full(1460, rng.below(16) as u8, 5)
        } else {
            Opts::default()
        };
        let data = vec![i as u8; rng.below(3000) as usize];
        let mut pkt = frame(
            src,
            dst,
            seq,
            ack,
            fl,
            rng.below(65536) as u16,
            &opts,
            &data,
        );
        for _ in 0..rng.below(4) {
            let at = rng.below(pkt.len() as u64) as usize;
            pkt[at] = rng.next() as u8;
        }
        if rng.below(10) == 0 {
            pkt.truncate(rng.below(pkt.len() as u64) as usize);
        }
        let l3 = pkt.len() + rng.below(3) as usize * 1000;
        // Parsed in place from any cut of the frame, with the copy when needed: the same
        // answer as from the copy alone (the module's way).
        let gso = l3 > pkt.len();
        let copy = &pkt[..pkt.len().min(permtcp_logic::packet::HEADER_MAX)];
        let cut = rng.below(pkt.len() as u64 + 1) as usize;
        let from_copy = if gso {
            parse_gso(copy, l3)
        } else {
            parse(copy, l3)
        };
        assert_eq!(
            parse_in_place(&pkt[..cut], l3, gso, || Some(copy)),
            from_copy
        );
        // The flags read without a parse, from any cut, are the parsed segment's.
        if let (Some(f), Ok(s)) = (tcp_flags(&pkt[..cut]), &from_copy) {
            assert_eq!(f, s.flags, "frame {i}: flags read without a parse");
        }
        let good = rng.below(50) != 0;
        let f = Frame {
            hdr: &pkt,
            l3_len: l3,
            gso,
            payload: &pkt[..],
            src_mac: None,
        };
        snoop.on_frame(&mut map, &mut alloc, f, |_| good, i);
        if i % 5000 == 0 {
            snoop.expire(&mut map, &mut alloc, i + 70_000);
        }
        for c in map.0.values() {
            let _ = c.readiness();
        }
    }
    assert_eq!(
        alloc.used,
        map.0.values().map(|c| u64::from(c.mem)).sum::<u64>(),
        "every byte accounted for"
    );
    for c in map.0.values() {
        let chunks = c.half[0].data.chunk_bytes() + c.half[1].data.chunk_bytes();
        let slots = c.half[0].data.slot_table_bytes() + c.half[1].data.slot_table_bytes();
        assert_eq!(u64::from(c.mem), chunks + slots + entry_bytes::<A>());
        assert!(c.mem <= 256 << 10);
    }
    for (_, mut c) in std::mem::take(&mut map.0) {
        c.release(&mut alloc);
    }
    assert_eq!(alloc.used, 0);
    assert_eq!(alloc.inner.live, 0);
    assert!(snoop.counters.matched > 10_000 && snoop.counters.malformed > 0);
}

#[test]
fn built_control_segments_parse_back_with_valid_checksums() {
    use permtcp_logic::packet::{checksum, flags, parse, Addr, Control, CONTROL_MAX};
    let v4 = (Addr::v4([10, 0, 0, 100]), 40000);
    let vip4 = (Addr::v4([10, 0, 0, 1]), 80);
    let mut v6a = [0u8; 16];
    v6a[0] = 0xfd;
    v6a[15] = 0x64;
    let mut v6b = v6a;
    v6b[15] = 1;
    let cases = [
        (v4, vip4, Some((7, 9))),
        (v4, vip4, None),
        ((Addr(v6a), 40000), (Addr(v6b), 80), Some((7, 9))),
    ];
    for (src, dst, ts) in cases {
        let mut buf = [0u8; CONTROL_MAX];
        let n = Control {
            src,
            dst,
            seq: 1000,
            ack: 2000,
            flags: flags::FIN | flags::ACK,
            window: 502,
            ts,
        }
        .build(&mut buf);
        let p = &buf[..n];
        let s = parse(p, n).unwrap();
        assert_eq!(
            (s.src, s.sport, s.dst, s.dport),
            (src.0, src.1, dst.0, dst.1)
        );
        assert_eq!((s.seq, s.ack, s.flags, s.window), (1000, 2000, 0x11, 502));
        assert_eq!(s.payload_len, 0);
        assert_eq!(s.opts.ts, ts);
        let l4 = s.l4_off as usize;
        // Verifying a checksum over the data including it gives zero.
        let mut pseudo = Vec::new();
        if s.is_v6() {
            pseudo.extend(src.0 .0);
            pseudo.extend(dst.0 .0);
        } else {
            assert_eq!(checksum(0, &p[..20]), 0, "IPv4 header checksum");
            pseudo.extend(src.0.as_v4().unwrap());
            pseudo.extend(dst.0.as_v4().unwrap());
        }
        pseudo.extend([0, 6]);
        pseudo.extend(((n - l4) as u16).to_be_bytes());
        pseudo.extend(&p[l4..]);
        assert_eq!(checksum(0, &pseudo), 0, "TCP checksum");
    }
}

#[test]
fn ip_lengths_must_agree_with_the_frame() {
    let pkt = frame(
        v4([10, 0, 0, 100], 1),
        v4([10, 0, 0, 1], 80),
        1,
        2,
        ACK,
        1,
        &Opts::default(),
        b"hello",
    );
    let with_len = |p: &[u8], at: usize, len: usize| {
        let mut p = p.to_vec();
        p[at..at + 2].copy_from_slice(&(len as u16).to_be_bytes());
        p
    };
    // ip_rcv drops all of these: a length of 0 outside a GSO super-packet, a length past the
    // frame (truncated), a length shorter than the headers.
    for len in [0, pkt.len() + 1, 1500, 20, 39] {
        let p = with_len(&pkt, 2, len);
        assert_eq!(parse(&p, p.len()), Err(Skip::Malformed), "tot_len {len}");
    }
    let p = with_len(&pkt, 2, pkt.len() + 1);
    assert_eq!(parse_gso(&p, p.len()), Err(Skip::Malformed), "even in GSO");
    let pkt6 = frame(v6(100, 1), v6(1, 80), 1, 2, ACK, 1, &Opts::default(), b"hi");
    for len in [0, pkt6.len() - 40 + 1, 1000, 19] {
        let p = with_len(&pkt6, 4, len);
        assert_eq!(
            parse(&p, p.len()),
            Err(Skip::Malformed),
            "payload_len {len}"
        );
    }
}

/// The packet with its TCP checksum filled in.
fn with_tcp_csum(mut pkt: Vec<u8>) -> Vec<u8> {
    let s = parse(&pkt, pkt.len()).unwrap();
    let (off, len) = (s.l4_off as usize, s.l4_len() as usize);
    pkt[off + 16..off + 18].copy_from_slice(&[0, 0]);
    let mut total = u32::from(!checksum(0, &pkt[off..off + len])) + u32::from(pseudo(&s));
    while total > 0xffff {
        total = (total & 0xffff) + (total >> 16);
    }
    pkt[off + 16..off + 18].copy_from_slice(&(!(total as u16)).to_be_bytes());
    pkt
}

/// The TCP pseudo-header's one's-complement sum, written out independently of the parser.
fn pseudo(s: &permtcp_logic::packet::Segment) -> u16 {
    let mut p = Vec::new();
    match (s.src.as_v4(), s.dst.as_v4()) {
        (Some(a), Some(b)) => {
            p.extend(a);
            p.extend(b);
        }
        _ => {
            p.extend(s.src.0);
            p.extend(s.dst.0);
        }
    }
    p.extend([0, 6]);
    p.extend((s.l4_len() as u16).to_be_bytes());
    !checksum(0, &p)
}

#[test]
fn checksum_covers_exactly_the_ip_length_not_the_ethernet_padding() {
    for v6addrs in [false, true] {
        let (c, o) = if v6addrs {
            (v6(100, 40000), v6(1, 80))
        } else {
            (v4([10, 0, 0, 100], 40000), v4([10, 0, 0, 1], 80))
        };
        // The segments short enough to be padded: RST, and pure ACK and FIN without options.
        for (fl, payload) in [
            (RST, &b""[..]),
            (ACK, b""),
            (ACK | FIN, b""),
            (ACK | PSH, b"x"),
        ] {
            let pkt = with_tcp_csum(frame(c, o, 1000, 2000, fl, 502, &Opts::default(), payload));
            for pad in [&[0u8; 6][..], &[0xa5; 6][..], &[0u8; 26][..]] {
                let mut padded = pkt.clone();
                padded.extend_from_slice(pad);
                let s = parse(&padded, padded.len()).unwrap();
                let (off, len) = (s.l4_off as usize, s.l4_len() as usize);
                assert_eq!(off + len, pkt.len(), "the IP length, not the frame's");
                let sum = !checksum(0, &padded[off..off + len]);
                assert!(
                    tcp_csum_ok(&s, sum),
                    "{fl:#x} v6={v6addrs} pad {}",
                    pad.len()
                );
                // What nf_checksum() over skb->len did: padding included, in the data and
                // in the pseudo-header's length.
                let mut whole = s;
                whole.payload_len += pad.len() as u32;
                let sum_whole = !checksum(0, &padded[off..]);
                assert!(!tcp_csum_ok(&whole, sum_whole), "padding breaks it");
                // A corrupted byte is still caught.
                let mut bad = padded.clone();
                bad[off + 4] ^= 1;
                let sum_bad = !checksum(0, &bad[off..off + len]);
                assert!(!tcp_csum_ok(&s, sum_bad));
            }
        }
    }
}

#[test]
fn addresses_order_as_their_bytes() {
    use permtcp_logic::packet::Addr;
    // Edge bytes at every position, IPv4-mapped and IPv6, and a pseudo-random spread.
    let mut addrs = vec![Addr::default(), Addr([0xff; 16]), Addr::v4([10, 0, 0, 1])];
    for i in 0..16 {
        for v in [1u8, 0x7f, 0x80, 0xff] {
            let mut b = [0u8; 16];
            b[i] = v;
            addrs.push(Addr(b));
            addrs.push(Addr::v4([b[i], b[(i + 1) % 16], v, i as u8]));
        }
    }
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    for _ in 0..200 {
        let mut b = [0u8; 16];
        for byte in b.iter_mut() {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            *byte = x as u8;
        }
        addrs.push(Addr(b));
    }
    for a in &addrs {
        for b in &addrs {
            assert_eq!(a.cmp(b), a.0.cmp(&b.0), "{a:?} {b:?}");
            assert_eq!(a.partial_cmp(b), Some(a.0.cmp(&b.0)));
        }
    }
}

/// Headers are parsed where they are when they are all there; the copy is read only when the
/// bytes in place stop inside them, and gives the same segment as parsing the whole frame.
#[test]
fn headers_in_place_are_not_copied() {
    use permtcp_logic::packet::HEADER_MAX;
    let (o, c) = (v4([10, 0, 0, 1], 80), v4([10, 0, 0, 100], 40000));
    let mut full = Opts::syn_full(1460, 7, 5);
    full.sack = vec![(1, 2), (3, 4)];
    let data = vec![7u8; 3000];
    for (src, dst) in [(o, c), (v6(1, 80), v6(100, 40000))] {
        let pkt = frame(src, dst, 1000, 0, SYN, 64240, &full, &data);
        let whole = parse(&pkt, pkt.len()).unwrap();
        let hdr_len = whole.payload_off as usize;
        let copy = &pkt[..pkt.len().min(HEADER_MAX)];
        for cut in [
            pkt.len(),
            HEADER_MAX,
            hdr_len,
            hdr_len - 1,
            hdr_len - 13,
            21,
            19,
            0,
        ] {
            let mut copied = false;
            let got = parse_in_place(&pkt[..cut], pkt.len(), false, || {
                copied = true;
                Some(copy)
            });
            assert_eq!(got, Ok(whole), "{cut} bytes in place");
            assert_eq!(copied, cut < hdr_len, "{cut} bytes in place");
            // Without the copy, a cut header is malformed, never another segment.
            let alone = parse_in_place(&pkt[..cut], pkt.len(), false, || None);
            assert_eq!(
                alone,
                if cut < hdr_len {
                    Err(Skip::Malformed)
                } else {
                    Ok(whole)
                }
            );
        }
    }
    // What is not TCP is known from the bytes in place: nothing is copied.
    let mut udp = frame(o, c, 1, 1, ACK, 100, &Opts::default(), &data);
    udp[9] = 17;
    let r = parse_in_place(&udp[..20], udp.len(), false, || panic!("copied"));
    assert_eq!(r, Err(Skip::NotTcp));
    // A short frame (shorter than HEADER_MAX) whole in place is never copied, even malformed.
    let mut bad = frame(o, c, 1, 1, ACK, 100, &Opts::default(), &[]);
    bad[32] = 0xf0; // data offset 60: past the frame
    let r = parse_in_place(&bad, bad.len(), false, || panic!("copied"));
    assert_eq!(r, Err(Skip::Malformed));
}

#[test]
fn tcp_flags_without_a_parse() {
    let o = Opts::syn_full(1460, 7, 1);
    for (src, dst) in [
        (v4([10, 0, 0, 100], 40000), v4([10, 0, 0, 1], 80)),
        (v6(100, 40000), v6(1, 80)),
    ] {
        for fl in [SYN, SYN | ACK, ACK, ACK | PSH, FIN | ACK, RST, RST | ACK] {
            let pkt = frame(src, dst, 1, 2, fl, 1000, &o, b"data");
            assert_eq!(tcp_flags(&pkt), Some(fl));
            assert_eq!(tcp_flags(&pkt), Some(parse(&pkt, pkt.len()).unwrap().flags));
            // Not all of the TCP header's first 14 bytes: the caller must parse.
            let th = if src.addr.as_v4().is_some() { 20 } else { 40 };
            assert_eq!(tcp_flags(&pkt[..th + 13]), None);
            assert_eq!(tcp_flags(&pkt[..th + 14]), Some(fl));
        }
    }
    let mut pkt = frame(
        v4([10, 0, 0, 100], 40000),
        v4([10, 0, 0, 1], 80),
        1,
        2,
        RST,
        0,
        &Opts::default(),
        &[],
    );
    // A later fragment carries no TCP header; another protocol has none.
    pkt[6] = 0x00;
    pkt[7] = 0x10;
    assert_eq!(tcp_flags(&pkt), None);
    pkt[7] = 0;
    pkt[9] = 17;
    assert_eq!(tcp_flags(&pkt), None);
    assert_eq!(tcp_flags(&[]), None);
}
