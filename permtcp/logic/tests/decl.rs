// SPDX-License-Identifier: GPL-2.0

//! Host tests of declaration parsing, validation, set rules and encoding.

use permtcp_logic::decl::*;
use permtcp_logic::errno::code;
use permtcp_logic::nla::Writer;
use permtcp_logic::uapi::{arp, attr, decl_attr, proto, range_attr};

fn sample(node: u32) -> Declaration {
    let mut d = Declaration {
        node_id: node,
        proto: proto::TCP,
        ..Default::default()
    };
    d.addrs4.push([192, 0, 2, node as u8]).unwrap();
    d.addrs6
        .push([
            0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, node as u8,
        ])
        .unwrap();
    d.macs.push([2, 0, 0, 0, 0, node as u8]).unwrap();
    d.ranges
        .push(PortRange {
            lo: 80,
            hi: 80,
            ..Default::default()
        })
        .unwrap();
    d.ranges
        .push(PortRange {
            lo: 8000,
            hi: 8999,
            ..Default::default()
        })
        .unwrap();
    d.apps.push(AppName::new(b"travel-query").unwrap()).unwrap();
    d
}

/// Encodes a full DECL_ADD payload.
fn encode(d: &Declaration) -> Vec<u8> {
    let mut buf = vec![0u8; 8192];
    let mut w = Writer::new(&mut buf);
    d.write(&mut w).unwrap();
    let n = w.len();
    buf.truncate(n);
    buf
}

/// Builds a DECL_ADD payload from raw inner attributes.
fn raw(build: impl FnOnce(&mut Writer<'_>)) -> Vec<u8> {
    let mut buf = vec![0u8; 8192];
    let mut w = Writer::new(&mut buf);
    let nest = w.nest_start(attr::DECL).unwrap();
    build(&mut w);
    w.nest_end(nest).unwrap();
    let n = w.len();
    buf.truncate(n);
    buf
}

fn minimal(w: &mut Writer<'_>) {
    w.put_u32(decl_attr::NODE_ID, 1).unwrap();
    w.put(decl_attr::ADDR4, &[10, 0, 0, 1]).unwrap();
    let r = w.nest_start(decl_attr::PORTS).unwrap();
    w.put_u16(range_attr::LO, 80).unwrap();
    w.put_u16(range_attr::HI, 80).unwrap();
    w.nest_end(r).unwrap();
    w.put_u8(decl_attr::PROTO, proto::TCP).unwrap();
}

fn err_of(payload: &[u8]) -> (i32, &'static str) {
    let e = parse_add_request(payload).unwrap_err();
    (e.errno, e.text())
}

#[test]
fn round_trip_every_field() {
    let mut d = sample(3);
    d.local = true;
    d.failover = FailoverPolicy::PeerList;
    d.ranges.as_mut_slice()[0].peers.push(5).unwrap();
    d.ranges.as_mut_slice()[0].peers.push(4).unwrap();
    d.ranges.as_mut_slice()[1].peers.push(9).unwrap();
    d.arp = ArpPolicy::Fixed(4);
    d.rx = RxPolicy::Drop;
    d.mid = MidResponse::Reset;
    d.apps.push(AppName::new(b"db").unwrap()).unwrap();
    let parsed = parse_add_request(&encode(&d)).unwrap();
    assert_eq!(parsed, d);
    // Peer order is part of the policy and must be kept.
    assert_eq!(parsed.ranges.as_slice()[0].peers.as_slice(), &[5, 4]);
}

#[test]
fn defaults_for_omitted_policies() {
    let d = parse_add_request(&raw(minimal)).unwrap();
    assert_eq!(d.failover, FailoverPolicy::SmallestId);
    assert_eq!(d.arp, ArpPolicy::FollowFailover);
    assert_eq!(d.rx, RxPolicy::Unanswered, "right for unmodified servers");
    assert_eq!(d.mid, MidResponse::Continue, "as before the choice existed");
    assert!(!d.local);
}

#[test]
fn every_received_data_policy_and_mid_response_choice_round_trips() {
    for rx in [RxPolicy::Deliver, RxPolicy::Drop, RxPolicy::Unanswered] {
        for mid in [MidResponse::Continue, MidResponse::Reset] {
            let mut d = sample(4);
            (d.rx, d.mid) = (rx, mid);
            assert_eq!(parse_add_request(&encode(&d)).unwrap(), d);
        }
    }
    for (kind, bad) in [(decl_attr::RX_POLICY, 4), (decl_attr::MID_RESPONSE, 3)] {
        let req = raw(|w| {
            minimal(w);
            w.put_u8(kind, bad).unwrap();
        });
        assert!(parse_add_request(&req).is_err(), "value {bad} of {kind}");
    }
}

#[test]
fn required_fields() {
    let no_node = raw(|w| {
        w.put(decl_attr::ADDR4, &[10, 0, 0, 1]).unwrap();
        w.put_u8(decl_attr::PROTO, proto::TCP).unwrap();
    });
    assert_eq!(
        err_of(&no_node),
        (code::EINVAL, "declaration needs a node id")
    );
    let no_proto = raw(|w| {
        w.put_u32(decl_attr::NODE_ID, 1).unwrap();
        w.put(decl_attr::ADDR4, &[10, 0, 0, 1]).unwrap();
    });
    assert_eq!(
        err_of(&no_proto),
        (code::EINVAL, "declaration needs a protocol")
    );
    let no_addr = raw(|w| {
        w.put_u32(decl_attr::NODE_ID, 1).unwrap();
        w.put_u8(decl_attr::PROTO, proto::TCP).unwrap();
        let r = w.nest_start(decl_attr::PORTS).unwrap();
        w.put_u16(range_attr::LO, 1).unwrap();
        w.put_u16(range_attr::HI, 2).unwrap();
        w.nest_end(r).unwrap();
    });
    assert_eq!(
        err_of(&no_addr),
        (code::EINVAL, "declaration needs at least one IP address")
    );
    let no_range = raw(|w| {
        w.put_u32(decl_attr::NODE_ID, 1).unwrap();
        w.put(decl_attr::ADDR4, &[10, 0, 0, 1]).unwrap();
        w.put_u8(decl_attr::PROTO, proto::TCP).unwrap();
    });
    assert_eq!(
        err_of(&no_range),
        (code::EINVAL, "declaration needs at least one port range")
    );
}

#[test]
fn bad_lengths() {
    for (kind, len, msg) in [
        (decl_attr::NODE_ID, 2, "attribute must be a u32"),
        (decl_attr::ADDR4, 5, "IPv4 address must be 4 bytes"),
        (decl_attr::ADDR6, 4, "IPv6 address must be 16 bytes"),
        (decl_attr::MAC, 8, "MAC address must be 6 bytes"),
        (decl_attr::PROTO, 4, "attribute must be a u8"),
    ] {
        let p = raw(|w| {
            minimal_without(w, kind);
            w.put(kind, &vec![1u8; len]).unwrap();
        });
        assert_eq!(err_of(&p), (code::EINVAL, msg), "attribute {kind}");
    }
}

/// `minimal` minus one attribute kind, so a test can supply its own.
fn minimal_without(w: &mut Writer<'_>, skip: u16) {
    if skip != decl_attr::NODE_ID {
        w.put_u32(decl_attr::NODE_ID, 1).unwrap();
    }
    if skip != decl_attr::ADDR4 {
        w.put(decl_attr::ADDR4, &[10, 0, 0, 1]).unwrap();
    }
    let r = w.nest_start(decl_attr::PORTS).unwrap();
    w.put_u16(range_attr::LO, 80).unwrap();
    w.put_u16(range_attr::HI, 80).unwrap();
    w.nest_end(r).unwrap();
    if skip != decl_attr::PROTO {
        w.put_u8(decl_attr::PROTO, proto::TCP).unwrap();
    }
}

#[test]
fn unknown_policies_and_protocols() {
    let cases: [(u16, u8, i32, &str); 6] = [
        (
            decl_attr::FAILOVER,
            9,
            code::EINVAL,
            "unknown fail-over policy",
        ),
        (decl_attr::ARP_POLICY, 0, code::EINVAL, "unknown ARP policy"),
        (
            decl_attr::RX_POLICY,
            4,
            code::EINVAL,
            "unknown received-data policy",
        ),
        (
            decl_attr::MID_RESPONSE,
            0,
            code::EINVAL,
            "unknown mid-response choice",
        ),
        (
            decl_attr::PROTO,
            proto::UDP,
            code::EPROTONOSUPPORT,
            "only TCP is supported",
        ),
        (decl_attr::PROTO, 200, code::EINVAL, "unknown protocol"),
    ];
    for (kind, v, errno, msg) in cases {
        let p = raw(|w| {
            minimal_without(
                w,
                if kind == decl_attr::PROTO {
                    kind
                } else {
                    u16::MAX
                },
            );
            w.put_u8(kind, v).unwrap();
        });
        assert_eq!(err_of(&p), (errno, msg), "attribute {kind} value {v}");
    }
}

#[test]
fn port_ranges() {
    let range = |lo: u16, hi: u16| PortRange {
        lo,
        hi,
        ..Default::default()
    };
    let mut d = sample(1);
    d.ranges = Default::default();
    d.ranges.push(range(100, 99)).unwrap();
    assert_eq!(
        d.validate().unwrap_err().text(),
        "empty port range or port 0"
    );
    d.ranges = Default::default();
    d.ranges.push(range(0, 10)).unwrap();
    assert_eq!(
        d.validate().unwrap_err().text(),
        "empty port range or port 0"
    );
    d.ranges = Default::default();
    d.ranges.push(range(10, 20)).unwrap();
    d.ranges.push(range(20, 30)).unwrap();
    assert_eq!(d.validate().unwrap_err().text(), "overlapping port ranges");
    d.ranges = Default::default();
    d.ranges.push(range(10, 20)).unwrap();
    d.ranges.push(range(21, 30)).unwrap();
    d.ranges.push(range(65535, 65535)).unwrap();
    assert!(d.validate().is_ok());
}

#[test]
fn range_needs_both_ends() {
    let p = raw(|w| {
        minimal(w);
        let r = w.nest_start(decl_attr::PORTS).unwrap();
        w.put_u16(range_attr::LO, 1000).unwrap();
        w.nest_end(r).unwrap();
    });
    assert_eq!(
        err_of(&p).1,
        "port range needs both its first and last port"
    );
}

#[test]
fn peer_lists() {
    let mut d = sample(2);
    d.ranges.as_mut_slice()[0].peers.push(3).unwrap();
    assert_eq!(
        d.validate().unwrap_err().text(),
        "peer lists need the peer-list fail-over policy"
    );
    d.failover = FailoverPolicy::PeerList;
    assert_eq!(
        d.validate().unwrap_err().text(),
        "peer-list policy needs a peer list on every port range"
    );
    d.ranges.as_mut_slice()[1].peers.push(3).unwrap();
    assert!(d.validate().is_ok());
    d.ranges.as_mut_slice()[1].peers.push(2).unwrap();
    assert_eq!(
        d.validate().unwrap_err().text(),
        "peer list names node 0 or the declaring node"
    );
    d.ranges.as_mut_slice()[1] = PortRange {
        lo: 8000,
        hi: 8999,
        ..Default::default()
    };
    d.ranges.as_mut_slice()[1].peers.push(4).unwrap();
    d.ranges.as_mut_slice()[1].peers.push(4).unwrap();
    assert_eq!(
        d.validate().unwrap_err().text(),
        "peer listed twice in a port range"
    );
}

#[test]
fn arp_policy_rules() {
    let with = |policy: Option<u8>, node: Option<u32>| {
        raw(|w| {
            minimal(w);
            if let Some(p) = policy {
                w.put_u8(decl_attr::ARP_POLICY, p).unwrap();
            }
            if let Some(n) = node {
                w.put_u32(decl_attr::ARP_NODE, n).unwrap();
            }
        })
    };
    assert_eq!(
        err_of(&with(Some(arp::FIXED), None)).1,
        "fixed ARP policy needs an ARP node"
    );
    assert_eq!(
        err_of(&with(None, Some(4))).1,
        "ARP node is only valid with the fixed ARP policy"
    );
    assert_eq!(
        err_of(&with(Some(arp::FIXED), Some(1))).1,
        "ARP node must be another, non-zero node id"
    );
    let ok = parse_add_request(&with(Some(arp::FIXED), Some(4))).unwrap();
    assert_eq!(ok.arp, ArpPolicy::Fixed(4));
    let ok = parse_add_request(&with(Some(arp::SMALLEST_ID), None)).unwrap();
    assert_eq!(ok.arp, ArpPolicy::SmallestId);
}

#[test]
fn addresses_and_macs() {
    let cases: [(u16, &[u8], &str); 6] = [
        (
            decl_attr::ADDR4,
            &[0, 0, 0, 0],
            "unspecified, broadcast or multicast IP address",
        ),
        (
            decl_attr::ADDR4,
            &[224, 0, 0, 1],
            "unspecified, broadcast or multicast IP address",
        ),
        (decl_attr::ADDR4, &[10, 0, 0, 1], "IP address listed twice"),
        (
            decl_attr::ADDR6,
            &[0xff, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1],
            "unspecified, broadcast or multicast IP address",
        ),
        (
            decl_attr::MAC,
            &[1, 0, 0x5e, 0, 0, 1],
            "zero or multicast MAC address",
        ),
        (decl_attr::MAC, &[0; 6], "zero or multicast MAC address"),
    ];
    for (kind, bytes, msg) in cases {
        let p = raw(|w| {
            minimal(w);
            w.put(kind, bytes).unwrap();
        });
        assert_eq!(err_of(&p), (code::EINVAL, msg), "{bytes:?}");
    }
}

#[test]
fn too_many_entries() {
    let p = raw(|w| {
        minimal(w);
        for i in 0..MAX_ADDRS4 as u8 {
            w.put(decl_attr::ADDR4, &[10, 1, 0, i + 1]).unwrap();
        }
    });
    assert_eq!(err_of(&p), (code::E2BIG, "too many IPv4 addresses"));
}

#[test]
fn duplicates_and_unknowns() {
    let dup = raw(|w| {
        minimal(w);
        w.put_u32(decl_attr::NODE_ID, 2).unwrap();
    });
    assert_eq!(
        err_of(&dup),
        (code::EINVAL, "attribute given more than once")
    );
    let unknown = raw(|w| {
        minimal(w);
        w.put_u32(decl_attr::MAX + 1, 2).unwrap();
    });
    assert_eq!(
        err_of(&unknown),
        (code::EINVAL, "unknown declaration attribute")
    );
    let bad_flag = raw(|w| {
        minimal(w);
        w.put_u8(decl_attr::LOCAL, 1).unwrap();
    });
    assert_eq!(
        err_of(&bad_flag),
        (code::EINVAL, "flag attribute must be empty")
    );
}

#[test]
fn application_names() {
    assert!(AppName::new(b"").is_err());
    assert!(AppName::new(&[b'a'; APP_NAME_MAX]).is_ok());
    assert!(AppName::new(&[b'a'; APP_NAME_MAX + 1]).is_err());
    assert!(AppName::new(b"tab\there").is_err());
    let unterminated = raw(|w| {
        minimal(w);
        w.put(decl_attr::APP, b"noterm").unwrap();
    });
    assert_eq!(
        err_of(&unterminated).1,
        "string attribute must be NUL-terminated"
    );
}

#[test]
fn request_envelopes() {
    assert_eq!(
        parse_add_request(&[]).unwrap_err().text(),
        "request carries no declaration"
    );
    let mut two = encode(&sample(1));
    two.extend(encode(&sample(2)));
    assert_eq!(
        parse_add_request(&two).unwrap_err().text(),
        "one declaration per request"
    );
    let mut buf = [0u8; 16];
    let mut w = Writer::new(&mut buf);
    w.put_u32(attr::NODE_ID, 42).unwrap();
    let n = w.len();
    assert_eq!(parse_del_request(&buf[..n]), Ok(42));
    assert!(parse_del_request(&[]).is_err());
    assert!(parse_empty_request(&[]).is_ok());
    assert!(parse_empty_request(&buf[..n]).is_err());
}

#[test]
fn set_rules() {
    let a = sample(1);
    let mut b = sample(1);
    assert_eq!(
        check_insert(&b, [a].iter()).unwrap_err().errno,
        code::EEXIST
    );
    b.node_id = 2;
    // Same IPv4 address as `a` (sample() derives it from the node id) and overlapping ports.
    b.addrs4 = a.addrs4;
    assert_eq!(
        check_insert(&b, [a].iter()).unwrap_err().errno,
        code::EADDRINUSE
    );
    // Same address, disjoint ports: two owners of one address (load sharing).
    b.ranges = Default::default();
    b.ranges
        .push(PortRange {
            lo: 9000,
            hi: 9100,
            ..Default::default()
        })
        .unwrap();
    b.addrs6 = a.addrs6;
    assert!(check_insert(&b, [a].iter()).is_ok());
    let mut la = a;
    la.local = true;
    let mut lb = sample(5);
    lb.local = true;
    assert_eq!(
        check_insert(&lb, [la].iter()).unwrap_err().text(),
        "another declaration is already local"
    );
    let full: Vec<Declaration> = (1..=MAX_DECLS as u32)
        .map(|n| {
            let mut d = a;
            d.node_id = n;
            d
        })
        .collect();
    let extra = sample(200);
    assert_eq!(
        check_insert(&extra, full.iter()).unwrap_err().errno,
        code::ENOSPC
    );
}

#[test]
fn largest_declaration_fits_a_dump_message() {
    // The kernel dumps one declaration per message; the largest must fit a default-sized skb.
    let mut d = sample(1);
    d.failover = FailoverPolicy::PeerList;
    d.addrs4 = Default::default();
    d.addrs6 = Default::default();
    d.ranges = Default::default();
    d.apps = Default::default();
    d.macs = Default::default();
    for i in 0..MAX_ADDRS4 {
        d.addrs4.push([10, 0, 1, i as u8 + 1]).unwrap();
    }
    for i in 0..MAX_ADDRS6 {
        d.addrs6
            .push([0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, i as u8])
            .unwrap();
    }
    for i in 0..MAX_MACS {
        d.macs.push([2, 0, 0, 0, 1, i as u8]).unwrap();
    }
    for i in 0..MAX_RANGES as u16 {
        let mut r = PortRange {
            lo: i * 100 + 1,
            hi: i * 100 + 50,
            ..Default::default()
        };
        for p in 0..MAX_PEERS as u32 {
            r.peers.push(100 + p).unwrap();
        }
        d.ranges.push(r).unwrap();
    }
    for i in 0..MAX_APPS {
        let mut name = [b'x'; APP_NAME_MAX];
        name[0] = b'a' + i as u8;
        d.apps.push(AppName::new(&name).unwrap()).unwrap();
    }
    let bytes = encode(&d);
    assert!(
        bytes.len() < 3500,
        "largest declaration is {} bytes",
        bytes.len()
    );
    assert_eq!(parse_add_request(&bytes).unwrap(), d);
    // The writer reports EMSGSIZE, never overruns, when the buffer is short.
    let mut small = vec![0u8; bytes.len() - 1];
    let mut w = Writer::new(&mut small);
    assert_eq!(d.write(&mut w).unwrap_err().errno, code::EMSGSIZE);
    assert_eq!(w.len(), 0, "a failed nest is cancelled");
}

#[test]
fn takeover_request() {
    let enc = |attrs: &[(u16, u32)]| {
        let mut buf = [0u8; 64];
        let mut w = Writer::new(&mut buf);
        for &(k, v) in attrs {
            w.put_u32(k, v).unwrap();
        }
        let n = w.len();
        buf[..n].to_vec()
    };
    let parse = |attrs: &[(u16, u32)]| parse_takeover_request(&enc(attrs));
    assert_eq!(
        parse(&[(attr::NODE_ID, 3)]),
        Ok(TakeoverRequest {
            node: 3,
            park_ms: None
        })
    );
    assert_eq!(
        parse(&[(attr::PARK_MS, 500), (attr::NODE_ID, 3)]),
        Ok(TakeoverRequest {
            node: 3,
            park_ms: Some(500)
        })
    );
    assert_eq!(
        parse(&[(attr::NODE_ID, 3), (attr::PARK_MS, MAX_PARK_MS)]).map(|r| r.park_ms),
        Ok(Some(MAX_PARK_MS))
    );
    let text = |attrs: &[(u16, u32)]| parse(attrs).unwrap_err().text();
    assert_eq!(
        text(&[(attr::NODE_ID, 3), (attr::PARK_MS, MAX_PARK_MS + 1)]),
        "parking time above one hour"
    );
    assert_eq!(text(&[(attr::PARK_MS, 5)]), "request carries no node id");
    assert_eq!(
        text(&[(attr::NODE_ID, 3), (attr::NODE_ID, 4)]),
        "attribute given more than once"
    );
    assert_eq!(
        text(&[(attr::NODE_ID, 3), (attr::TAKEN, 4)]),
        "unknown attribute in request"
    );
}
