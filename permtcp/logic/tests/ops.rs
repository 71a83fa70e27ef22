// SPDX-License-Identifier: GPL-2.0

//! Every operation's request and reply (`ops.rs`): each round-trips through its `write` and its
//! `parse`, and malformed messages (truncated, unknown, duplicate, short or missing attributes)
//! are refused.

use permtcp_logic::decl::{Declaration, PortRange};
use permtcp_logic::errno::code;
use permtcp_logic::nla::{Attrs, Writer};
use permtcp_logic::ops::*;
use permtcp_logic::packet::Addr;
use permtcp_logic::snoop::FlowKey;
use permtcp_logic::track::Side;
use permtcp_logic::uapi::{attr, cmd, proto, FAMILY_VERSION};
use std::fmt::Debug;

fn key(n: u8) -> FlowKey {
    FlowKey {
        owner_addr: Addr::v4([10, 0, 0, 1]),
        client_addr: Addr([0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, n]),
        owner_port: 80,
        client_port: 40000 + u16::from(n),
    }
}

fn decl(node: u32) -> Declaration {
    let mut d = Declaration {
        node_id: node,
        local: node == 1,
        proto: proto::TCP,
        ..Default::default()
    };
    d.addrs4.push([192, 0, 2, node as u8]).unwrap();
    d.ranges
        .push(PortRange {
            lo: 80,
            hi: 81,
            ..Default::default()
        })
        .unwrap();
    d
}

/// Encodes with `write`.
fn enc(write: impl FnOnce(&mut Writer<'_>) -> Result<(), permtcp_logic::errno::Error>) -> Vec<u8> {
    let mut buf = vec![0u8; 65536];
    let mut w = Writer::new(&mut buf);
    write(&mut w).unwrap();
    let n = w.len();
    buf.truncate(n);
    buf
}

/// Appends raw attributes to an encoded message.
fn plus(mut msg: Vec<u8>, write: impl FnOnce(&mut Writer<'_>)) -> Vec<u8> {
    msg.extend(enc(|w| {
        write(w);
        Ok(())
    }));
    msg
}

/// The request round-trips through the `Operation` trait and the inherent methods alike.
fn request_round_trip<O: Operation + PartialEq + Debug>(req: O) -> Vec<u8> {
    let bytes = enc(|w| req.write_request(w));
    assert_eq!(O::parse_request(&bytes).as_ref(), Ok(&req));
    bytes
}

/// Every attribute boundary short of the end, and every cut inside an attribute, is refused
/// (only the last attribute's padding may be missing, as netlink allows).
fn prefixes_fail<T: Debug>(
    bytes: &[u8],
    parse: impl Fn(&[u8]) -> Result<T, permtcp_logic::errno::Error>,
) {
    let last = Attrs::new(bytes).last().unwrap().unwrap();
    let pad = permtcp_logic::nla::align(last.data.len()) - last.data.len();
    for n in 1..bytes.len() - pad {
        assert!(
            parse(&bytes[..n]).is_err(),
            "prefix of {n} of {} bytes parsed",
            bytes.len()
        );
    }
}

/// The first attribute of `msg` given twice is refused.
fn duplicate_first(msg: &[u8]) -> Vec<u8> {
    let first = Attrs::new(msg).next().unwrap().unwrap();
    let len = permtcp_logic::nla::align(permtcp_logic::nla::HDRLEN + first.data.len());
    let mut v = msg[..len].to_vec();
    v.extend_from_slice(msg);
    v
}

fn status() -> StatusReply {
    let mut s = StatusReply {
        version: FAMILY_VERSION.into(),
        decl_count: 3,
        decl_max: MAX_DECLS as u32,
        local_node: Some(2),
        parked: 4,
        park_queued: 5,
        park_reset: 6,
        netns_cookie: 0x1234_5678_9abc,
        lease_left_ms: Some(250),
        fenced: 9,
        split_brain: 11,
        ..Default::default()
    };
    s.failed.push(1).unwrap();
    s.failed.push(7).unwrap();
    s
}

#[test]
fn every_command_has_one_operation() {
    let cmds = [
        DeclAddRequest::CMD,
        DeclDelRequest::CMD,
        DeclGetRequest::CMD,
        StatusRequest::CMD,
        StartRequest::CMD,
        SnoopStopRequest::CMD,
        ConnGetRequest::CMD,
        StatsRequest::CMD,
        DataRequest::CMD,
        TakeoverRequest::CMD,
        TakenGetRequest::CMD,
        DirectiveRequest::CMD,
        LeaseRequest::CMD,
        RejoinRequest::CMD,
    ];
    let mut sorted = cmds.to_vec();
    // The notifications are no requests: each is an Event.
    sorted.extend([
        Event::NodeFailed { node: 1 }.cmd(),
        Event::Taken {
            node: 1,
            taken: Default::default(),
        }
        .cmd(),
        Event::Reset {
            node: 1,
            key: key(1),
        }
        .cmd(),
        Event::Directive {
            node: 1,
            directive: DirectiveInfo {
                key: key(1),
                next: 2,
            },
        }
        .cmd(),
        Event::NotReady {
            node: 1,
            key: key(1),
            reason: 1,
        }
        .cmd(),
    ]);
    // RECOVERY's list borrows its request: no Operation.
    sorted.push(RecoveryRequest::CMD);
    // Nor do planned handoff's (handoff.rs): one message type serves three commands.
    sorted.extend([
        permtcp_logic::handoff::HoldRequest::CMD,
        cmd::HANDOFF_TAKE,
        cmd::HANDOFF_DONE,
    ]);
    sorted.sort();
    assert_eq!(sorted, (1..=cmd::MAX).collect::<Vec<_>>());
    let dumps = [
        DeclGetRequest::DUMP,
        ConnGetRequest::DUMP,
        DataRequest::DUMP,
        TakenGetRequest::DUMP,
    ];
    assert!(dumps.iter().all(|d| *d));
    assert!(![
        DeclAddRequest::DUMP,
        StatusRequest::DUMP,
        StatsRequest::DUMP,
        TakeoverRequest::DUMP,
        DirectiveRequest::DUMP,
    ]
    .iter()
    .any(|d| *d));
}

#[test]
fn requests_round_trip() {
    let b = request_round_trip(DeclAddRequest { decl: decl(1) });
    assert_eq!(Attrs::new(&b).next().unwrap().unwrap().kind, attr::DECL);
    assert_eq!(
        request_round_trip(DeclDelRequest { node: 9 }),
        enc(|w| w.put_u32(attr::NODE_ID, 9))
    );
    assert_eq!(
        request_round_trip(RejoinRequest { node: 3 }),
        enc(|w| w.put_u32(attr::NODE_ID, 3))
    );
    // REJOIN names the node once, and nothing else.
    assert!(RejoinRequest::parse(&[]).is_err());
    assert!(RejoinRequest::parse(&enc(|w| {
        w.put_u32(attr::NODE_ID, 3)?;
        w.put_u32(attr::NODE_ID, 4)
    }))
    .is_err());
    assert!(RejoinRequest::parse(&enc(|w| {
        w.put_u32(attr::NODE_ID, 3)?;
        w.put_u32(attr::PARK_MS, 4)
    }))
    .is_err());
    for empty in [
        request_round_trip(DeclGetRequest),
        request_round_trip(StatusRequest),
        request_round_trip(SnoopStopRequest),
        request_round_trip(ConnGetRequest),
        request_round_trip(StatsRequest),
        request_round_trip(TakenGetRequest),
    ] {
        assert!(empty.is_empty());
    }
    request_round_trip(StartRequest {
        ifindex: 3,
        ..Default::default()
    });
    request_round_trip(StartRequest {
        ifindex: 3,
        max_conns: Some(10),
        max_bytes: Some(1 << 20),
        keep_received: Some(MAX_KEEP_RECEIVED),
        max_conn_bytes: Some(MIN_SNOOP_BYTES),
        syn_timeout_ms: Some(MAX_SYN_TIMEOUT_MS),
        idle_timeout_ms: Some(MIN_TIMEOUT_MS),
    });
    for side in [Side::Owner, Side::Client] {
        request_round_trip(DataRequest { key: key(1), side });
    }
    request_round_trip(TakeoverRequest {
        node: 2,
        park_ms: None,
    });
    request_round_trip(TakeoverRequest {
        node: 2,
        park_ms: Some(MAX_PARK_MS),
    });
    request_round_trip(DirectiveRequest {
        node: 2,
        key: key(3),
        park_ms: Some(250),
        from: Some(2),
    });
    request_round_trip(DirectiveRequest {
        node: 2,
        key: key(3),
        park_ms: None,
        from: None,
    });
}

#[test]
fn data_request_is_what_the_kernel_reads() {
    // Written by the type, read by the former parser the kernel calls.
    let r = DataRequest {
        key: key(4),
        side: Side::Client,
    };
    let b = enc(|w| r.write(w));
    assert_eq!(permtcp_logic::snoopnl::parse_data_request(&b), Ok(r));
    let kinds: Vec<u16> = Attrs::new(&b).map(|a| a.unwrap().kind).collect();
    assert_eq!(
        kinds,
        [
            attr::OWNER_ADDR,
            attr::OWNER_PORT,
            attr::CLIENT_ADDR,
            attr::CLIENT_PORT,
            attr::SIDE
        ]
    );
}

#[test]
fn replies_round_trip() {
    let s = status();
    let b = enc(|w| s.write(w));
    assert_eq!(StatusReply::parse(&b), Ok(s));
    assert_eq!(StatusRequest::parse_reply(&b), Ok(s));
    let none = StatusReply {
        local_node: None,
        failed: Default::default(),
        lease_left_ms: None,
        ..s
    };
    assert_eq!(StatusReply::parse(&enc(|w| none.write(w))), Ok(none));

    assert_eq!(Ack::parse(&[]), Ok(Ack));
    assert!(enc(|w| Ack.write(w)).is_empty());

    let d = DeclReply { decl: decl(5) };
    assert_eq!(DeclReply::parse(&enc(|w| d.write(w))), Ok(d));

    let c = ConnReply {
        conn: ConnInfo {
            key: key(1),
            state: 4,
            not_ready: Some((3, 1)),
            ws_ok: true,
            ts_ok: true,
            age_ms: 77,
            ..Default::default()
        },
    };
    assert_eq!(ConnReply::parse(&enc(|w| c.write(w))), Ok(c));

    let st = StatsReply {
        stats: StatsInfo {
            ifindex: 2,
            conns: 5,
            max_bytes: 1 << 26,
            rst_dropped: 9,
            steered: 4,
            handed: 6,
            syn_refused: 7,
            views: 11,
            ct_ns: 12,
            ct_frames: 13,
            ..Default::default()
        },
    };
    assert_eq!(StatsReply::parse(&enc(|w| st.write(w))), Ok(st));

    let t = TakenReply {
        taken: TakenInfo {
            key: key(2),
            sent_offset: 100,
            rx_deliver: true,
            ..Default::default()
        },
    };
    assert_eq!(TakenReply::parse(&enc(|w| t.write(w))), Ok(t));

    let data = [7u8; MAX_DATA_CHUNK];
    let chunk = DataChunk {
        seq: 0xffff_fff0,
        data: &data,
    };
    let b = enc(|w| chunk.write(w));
    assert_eq!(DataChunk::parse(&b), Ok(chunk));
    assert_eq!(DataRequest::parse_reply(&b), Ok(chunk));
    let filled = enc(|w| {
        DataChunk::write_with(w, 5, 3, |buf| {
            buf.copy_from_slice(b"abc");
            true
        })
    });
    assert_eq!(
        DataChunk::parse(&filled),
        Ok(DataChunk {
            seq: 5,
            data: b"abc"
        })
    );

    let dr = DirectiveReply {
        counts: Counts {
            taken: 1,
            parked: 1,
            rebuild_ns: 12345,
            ..Default::default()
        },
        next_node: None,
    };
    assert_eq!(DirectiveReply::parse(&enc(|w| dr.write(w))), Ok(dr));
    let on = DirectiveReply {
        next_node: Some(4),
        ..dr
    };
    assert_eq!(DirectiveRequest::parse_reply(&enc(|w| on.write(w))), Ok(on));
}

#[test]
fn takeover_reply_round_trips_with_its_directives() {
    let list: Vec<DirectiveInfo> = (1..=40)
        .map(|n| DirectiveInfo {
            key: key(n),
            next: u32::from(n % 3) + 2,
        })
        .collect();
    let r = TakeoverReply {
        counts: Counts {
            taken: 3,
            parked: 1,
            failed: 2,
            reset: 4,
            rebuild_ns: 1 << 40,
        },
        not_ready: 44,
        not_mine: 6,
        directives: Directives::from_slice(&list),
    };
    let b = enc(|w| r.write(w));
    let p = TakeoverReply::parse(&b).unwrap();
    assert_eq!(p, r);
    assert_eq!(p.directives.len(), 40);
    assert_eq!(p.directives.iter().collect::<Vec<_>>(), list);
    assert_eq!(TakeoverRequest::parse_reply(&b), Ok(r));

    let none = TakeoverReply {
        directives: Directives::default(),
        ..r
    };
    let b = enc(|w| none.write(w));
    let p = TakeoverReply::parse(&b).unwrap();
    assert!(p.directives.is_empty());
    assert_eq!(p.directives.into_iter().count(), 0);

    // A directive missing its next node spoils the whole reply.
    let bad = plus(enc(|w| none.write(w)), |w| {
        let n = w.nest_start(attr::DIRECTIVE).unwrap();
        w.put(1, &key(1).owner_addr.0).unwrap();
        w.nest_end(n).unwrap();
    });
    assert_eq!(
        TakeoverReply::parse(&bad).unwrap_err().text(),
        "a directive needs both addresses, both ports and the next node"
    );
    // Counts are required.
    let b = enc(|w| {
        w.put_u32(attr::TAKEN, 1)?;
        w.put_u32(attr::NOT_READY_COUNT, 0)?;
        w.put_u32(attr::NOT_MINE, 0)
    });
    assert_eq!(
        TakeoverReply::parse(&b).unwrap_err().text(),
        "takeover reply count missing"
    );
}

#[test]
fn truncated_messages_are_refused() {
    prefixes_fail(&enc(|w| status().write(w)), StatusReply::parse);
    prefixes_fail(
        &enc(|w| DeclDelRequest { node: 1 }.write(w)),
        DeclDelRequest::parse,
    );
    prefixes_fail(
        &enc(|w| RejoinRequest { node: 1 }.write(w)),
        RejoinRequest::parse,
    );
    prefixes_fail(
        &enc(|w| DeclAddRequest { decl: decl(1) }.write(w)),
        DeclAddRequest::parse,
    );
    prefixes_fail(
        &enc(|w| {
            DataRequest {
                key: key(1),
                side: Side::Owner,
            }
            .write(w)
        }),
        DataRequest::parse,
    );
    prefixes_fail(
        &enc(|w| {
            DataChunk {
                seq: 1,
                data: b"xyz",
            }
            .write(w)
        }),
        |b| DataChunk::parse(b).map(|c| c.seq),
    );
    prefixes_fail(
        &enc(|w| {
            DirectiveRequest {
                node: 1,
                key: key(1),
                park_ms: None,
                from: None,
            }
            .write(w)
        }),
        DirectiveRequest::parse,
    );
    prefixes_fail(
        &enc(|w| DirectiveReply::default().write(w)),
        DirectiveReply::parse,
    );
    let t = TakenReply::default();
    prefixes_fail(&enc(|w| t.write(w)), TakenReply::parse);
    prefixes_fail(&enc(|w| StatsReply::default().write(w)), StatsReply::parse);
    prefixes_fail(&enc(|w| ConnReply::default().write(w)), ConnReply::parse);
}

#[test]
fn duplicate_attributes_are_refused() {
    type Refused = fn(&[u8]) -> bool;
    let msgs: Vec<(Vec<u8>, Refused)> = vec![
        (enc(|w| status().write(w)), |b| {
            StatusReply::parse(b).is_err()
        }),
        (enc(|w| DeclDelRequest { node: 1 }.write(w)), |b| {
            DeclDelRequest::parse(b).is_err()
        }),
        (
            enc(|w| {
                StartRequest {
                    ifindex: 1,
                    ..Default::default()
                }
                .write(w)
            }),
            |b| StartRequest::parse(b).is_err(),
        ),
        (
            enc(|w| {
                DataRequest {
                    key: key(1),
                    side: Side::Owner,
                }
                .write(w)
            }),
            |b| DataRequest::parse(b).is_err(),
        ),
        (enc(|w| DataChunk { seq: 1, data: b"x" }.write(w)), |b| {
            DataChunk::parse(b).is_err()
        }),
        (
            enc(|w| {
                TakeoverRequest {
                    node: 1,
                    park_ms: None,
                }
                .write(w)
            }),
            |b| TakeoverRequest::parse(b).is_err(),
        ),
        (enc(|w| TakeoverReply::default().write(w)), |b| {
            TakeoverReply::parse(b).is_err()
        }),
        (enc(|w| DirectiveReply::default().write(w)), |b| {
            DirectiveReply::parse(b).is_err()
        }),
        (
            enc(|w| {
                DirectiveRequest {
                    node: 1,
                    key: key(1),
                    park_ms: None,
                    from: None,
                }
                .write(w)
            }),
            |b| DirectiveRequest::parse(b).is_err(),
        ),
        (enc(|w| DeclReply { decl: decl(1) }.write(w)), |b| {
            DeclReply::parse(b).is_err()
        }),
        (enc(|w| StatsReply::default().write(w)), |b| {
            StatsReply::parse(b).is_err()
        }),
        (enc(|w| TakenReply::default().write(w)), |b| {
            TakenReply::parse(b).is_err()
        }),
        (enc(|w| ConnReply::default().write(w)), |b| {
            ConnReply::parse(b).is_err()
        }),
    ];
    for (i, (msg, refused)) in msgs.iter().enumerate() {
        assert!(refused(&duplicate_first(msg)), "message {i}");
    }
    assert_eq!(
        StatusReply::parse(&duplicate_first(&enc(|w| status().write(w))))
            .unwrap_err()
            .text(),
        "attribute given more than once"
    );
    // Inside the nests as well.
    let conn = enc(|w| ConnReply::default().conn.write(w));
    let inner = Attrs::new(&conn).next().unwrap().unwrap();
    assert_eq!(
        ConnInfo::parse(&duplicate_first(inner.data))
            .unwrap_err()
            .text(),
        "attribute given more than once"
    );
}

#[test]
fn unknown_and_short_attributes_are_refused() {
    let extra = |msg: Vec<u8>| plus(msg, |w| w.put_u32(attr::IFINDEX, 1).unwrap());
    assert!(StatusReply::parse(&extra(enc(|w| status().write(w)))).is_err());
    assert!(DirectiveReply::parse(&extra(enc(|w| DirectiveReply::default().write(w)))).is_err());
    assert!(TakeoverReply::parse(&extra(enc(|w| TakeoverReply::default().write(w)))).is_err());
    assert!(DataChunk::parse(&extra(enc(|w| DataChunk::default().write(w)))).is_err());
    assert!(DeclReply::parse(&extra(enc(|w| DeclReply { decl: decl(1) }.write(w)))).is_err());
    assert!(StatsReply::parse(&extra(enc(|w| StatsReply::default().write(w)))).is_err());
    assert_eq!(StatusRequest::parse(&[]), Ok(StatusRequest));
    assert_eq!(StatsRequest::parse(&[]), Ok(StatsRequest));
    assert_eq!(SnoopStopRequest::parse(&[]), Ok(SnoopStopRequest));
    assert_eq!(DeclGetRequest::parse(&[]), Ok(DeclGetRequest));
    assert_eq!(ConnGetRequest::parse(&[]), Ok(ConnGetRequest));
    assert_eq!(TakenGetRequest::parse(&[]), Ok(TakenGetRequest));
    let one = enc(|w| w.put_u32(attr::NODE_ID, 1));
    for text in [
        StatusRequest::parse(&one).unwrap_err().text(),
        StatsRequest::parse(&one).unwrap_err().text(),
        SnoopStopRequest::parse(&one).unwrap_err().text(),
        Ack::parse(&one).unwrap_err().text(),
    ] {
        assert_eq!(text, "this command takes no attributes");
    }

    // A u32 given as a u16.
    let short = enc(|w| w.put_u16(attr::NODE_ID, 1));
    assert_eq!(
        DeclDelRequest::parse(&short).unwrap_err().text(),
        "attribute must be a u32"
    );
    assert!(TakeoverRequest::parse(&short).is_err());
    let short_cookie = {
        let s = status();
        enc(|w| {
            w.put_u32(attr::VERSION, s.version)?;
            w.put_u32(attr::DECL_COUNT, 0)?;
            w.put_u32(attr::DECL_MAX, 64)?;
            w.put_u32(attr::PARKED, 0)?;
            w.put_u32(attr::PARK_QUEUED, 0)?;
            w.put_u32(attr::PARK_RESET, 0)?;
            w.put_u32(attr::NETNS_COOKIE, 1)
        })
    };
    assert_eq!(
        StatusReply::parse(&short_cookie).unwrap_err().text(),
        "attribute must be a u64"
    );
    let no_cookie = enc(|w| {
        w.put_u32(attr::VERSION, 1)?;
        w.put_u32(attr::DECL_COUNT, 0)?;
        w.put_u32(attr::DECL_MAX, 64)?;
        w.put_u32(attr::PARKED, 0)?;
        w.put_u32(attr::PARK_QUEUED, 0)?;
        w.put_u32(attr::PARK_RESET, 0)
    });
    assert_eq!(
        StatusReply::parse(&no_cookie).unwrap_err().text(),
        "status attribute missing"
    );
}

#[test]
fn limits_are_checked() {
    // More failed nodes than declarations.
    let mut b = enc(|w| status().write(w));
    for n in 0..MAX_DECLS as u32 {
        b = plus(b, |w| w.put_u32(attr::FAILED_NODE, 100 + n).unwrap());
    }
    assert_eq!(StatusReply::parse(&b).unwrap_err().errno, code::E2BIG);
    // A data chunk above 8 KiB, written or read.
    let big = [0u8; MAX_DATA_CHUNK + 1];
    let mut buf = vec![0u8; 2 * MAX_DATA_CHUNK];
    let mut w = Writer::new(&mut buf);
    assert!(DataChunk { seq: 0, data: &big }.write(&mut w).is_err());
    let raw = enc(|w| {
        w.put_u32(attr::DATA_SEQ, 0)?;
        w.put(attr::DATA, &big)
    });
    assert_eq!(
        DataChunk::parse(&raw).unwrap_err().text(),
        "data chunk above 8 KiB"
    );
    // Parking times, in both requests that carry one.
    let over = TakeoverRequest {
        node: 1,
        park_ms: Some(MAX_PARK_MS + 1),
    };
    assert!(TakeoverRequest::parse(&enc(|w| over.write(w))).is_err());
    let over = DirectiveRequest {
        node: 1,
        key: key(1),
        park_ms: Some(MAX_PARK_MS + 1),
        from: None,
    };
    assert!(DirectiveRequest::parse(&enc(|w| over.write(w))).is_err());
    // Snooping limits.
    for bad in [
        StartRequest {
            ifindex: 0,
            ..Default::default()
        },
        StartRequest {
            ifindex: 1,
            max_conns: Some(0),
            ..Default::default()
        },
        StartRequest {
            ifindex: 1,
            max_bytes: Some(MIN_SNOOP_BYTES - 1),
            ..Default::default()
        },
        StartRequest {
            ifindex: 1,
            keep_received: Some(MAX_KEEP_RECEIVED + 1),
            ..Default::default()
        },
        StartRequest {
            ifindex: 1,
            max_conn_bytes: Some(MIN_SNOOP_BYTES - 1),
            ..Default::default()
        },
        StartRequest {
            ifindex: 1,
            syn_timeout_ms: Some(MIN_TIMEOUT_MS - 1),
            ..Default::default()
        },
        StartRequest {
            ifindex: 1,
            syn_timeout_ms: Some(MAX_SYN_TIMEOUT_MS + 1),
            ..Default::default()
        },
        StartRequest {
            ifindex: 1,
            idle_timeout_ms: Some(MIN_TIMEOUT_MS - 1),
            ..Default::default()
        },
    ] {
        assert!(
            StartRequest::parse(&enc(|w| bad.write(w))).is_err(),
            "{bad:?}"
        );
    }
    // A side other than owner or client.
    let b = plus(
        enc(|w| {
            w.put(attr::OWNER_ADDR, &key(1).owner_addr.0)?;
            w.put_u16(attr::OWNER_PORT, 1)?;
            w.put(attr::CLIENT_ADDR, &key(1).client_addr.0)?;
            w.put_u16(attr::CLIENT_PORT, 2)
        }),
        |w| w.put_u8(attr::SIDE, 2).unwrap(),
    );
    assert!(DataRequest::parse(&b).is_err());
}

#[test]
fn the_glue_policy_has_the_same_parking_limit() {
    // permtcp_glue.c validates PARK_MS before the Rust parser does; the two limits must agree.
    let glue =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../permtcp_glue.c"))
            .expect("permtcp_glue.c");
    let line = glue
        .lines()
        .find(|l| l.contains("ptcp_park_range") && l.contains(".max"))
        .expect("the PARK_MS range policy");
    let max: u32 = line
        .split(".max =")
        .nth(1)
        .and_then(|r| {
            r.trim()
                .trim_end_matches(['}', ';', ' '])
                .trim()
                .parse()
                .ok()
        })
        .expect("a number");
    assert_eq!(max, MAX_PARK_MS);
}

#[test]
fn lease_requests_round_trip_and_are_bounded() {
    request_round_trip(LeaseRequest { ms: 300 });
    request_round_trip(LeaseRequest { ms: 0 });
    let long = enc(|w| w.put_u32(attr::LEASE_MS, MAX_LEASE_MS + 1));
    assert_eq!(LeaseRequest::parse(&long).unwrap_err().errno, code::EINVAL);
    assert_eq!(LeaseRequest::parse(&[]).unwrap_err().errno, code::EINVAL);
    let twice = duplicate_first(&enc(|w| LeaseRequest { ms: 5 }.write(w)));
    assert!(LeaseRequest::parse(&twice).is_err());
}

#[test]
fn events_round_trip_and_must_match_their_command() {
    let events = [
        Event::NodeFailed { node: 3 },
        Event::Taken {
            node: 3,
            taken: TakenInfo {
                key: key(2),
                sent_offset: 10,
                recv_offset: 20,
                data_offset: 5,
                data_len: 5,
                rx_deliver: true,
                age_ms: 0,
                rx_policy: 1,
                cookie: 0x1234_5678_9abc,
            },
        },
        Event::Reset {
            node: 3,
            key: key(4),
        },
        Event::Directive {
            node: 3,
            directive: DirectiveInfo {
                key: key(5),
                next: 7,
            },
        },
        Event::NotReady {
            node: 3,
            key: key(6),
            reason: 4,
        },
    ];
    for e in events {
        let b = enc(|w| e.write(w));
        assert_eq!(Event::parse(e.cmd(), &b), Ok(e));
        // The same attributes under another command are refused.
        for other in events.iter().filter(|o| o.cmd() != e.cmd()) {
            assert!(Event::parse(other.cmd(), &b).is_err(), "{e:?} as {other:?}");
        }
        // Without the node id, refused.
        let no_node: Vec<u8> = {
            let mut out = Vec::new();
            for a in Attrs::new(&b) {
                let a = a.unwrap();
                if a.kind != attr::NODE_ID {
                    out.extend(enc(|w| w.put(a.kind, a.data)));
                }
            }
            out
        };
        assert!(Event::parse(e.cmd(), &no_node).is_err());
    }
}

/// SNOOP_START's limits over the defaults: a connection's share follows the byte limit and
/// the received-data floor unless given; the timeouts default to the documented values.
#[test]
fn snoop_start_limits_over_the_defaults() {
    use permtcp_logic::snoop::{Limits, IDLE_TIMEOUT_MS, SYN_TIMEOUT_MS};
    let d = StartRequest {
        ifindex: 1,
        ..Default::default()
    }
    .limits();
    assert_eq!(d, Limits::default());
    assert_eq!(
        (d.syn_timeout_ms, d.idle_timeout_ms),
        (20_000, 3 * 3600 * 1000)
    );
    assert_eq!((SYN_TIMEOUT_MS, IDLE_TIMEOUT_MS), (20_000, 10_800_000));
    assert_eq!(d.max_conn_bytes, 4 << 20);
    let l = StartRequest {
        ifindex: 1,
        max_bytes: Some(1 << 30),
        keep_received: Some(8 << 20),
        syn_timeout_ms: Some(2000),
        idle_timeout_ms: Some(5000),
        ..Default::default()
    }
    .limits();
    assert_eq!(l.max_conn_bytes, 64 << 20);
    assert_eq!((l.syn_timeout_ms, l.idle_timeout_ms), (2000, 5000));
    let small = StartRequest {
        ifindex: 1,
        max_bytes: Some(8192),
        ..Default::default()
    }
    .limits();
    assert_eq!(small.max_conn_bytes, 8192, "never more than the byte limit");
    let given = StartRequest {
        ifindex: 1,
        max_conn_bytes: Some(65536),
        ..Default::default()
    }
    .limits();
    assert_eq!(given.max_conn_bytes, 65536);
}

/// The timeout bounds of SNOOP_START in the C policy are the Rust ones.
#[test]
fn the_c_policy_has_the_timeout_bounds() {
    let c = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../permtcp_glue.c"))
        .unwrap();
    let range = |name: &str| {
        let at = c.find(&format!("{name} = {{")).expect(name);
        let body = &c[at..at + c[at..].find("};").unwrap()];
        let num = |key: &str| {
            let v = body.split(key).nth(1).unwrap();
            let v: String = v
                .trim_start_matches([' ', '='])
                .chars()
                .take_while(|ch| ch.is_ascii_alphanumeric() || *ch == '_')
                .collect();
            v
        };
        (num(".min"), num(".max"))
    };
    assert_eq!(
        range("ptcp_syn_timeout_range"),
        (MIN_TIMEOUT_MS.to_string(), MAX_SYN_TIMEOUT_MS.to_string())
    );
    assert_eq!(
        range("ptcp_idle_timeout_range"),
        (MIN_TIMEOUT_MS.to_string(), "U32_MAX".to_string())
    );
}

#[test]
fn taken_get_for_one_connection() {
    let b = request_round_trip(TakenKeyRequest { key: key(3) });
    assert_eq!(TakenKeyRequest::CMD, TakenGetRequest::CMD);
    const { assert!(TakenKeyRequest::DUMP) };
    prefixes_fail(&b, TakenKeyRequest::parse);
    // The whole list has no attributes; one connection needs all four key attributes.
    assert!(TakenKeyRequest::parse(&[]).is_err());
    assert!(TakenGetRequest::parse(&b).is_err());
    let side = enc(|w| {
        DataRequest {
            key: key(3),
            side: Side::Owner,
        }
        .write(w)
    });
    assert!(TakenKeyRequest::parse(&side).is_err());
}

#[test]
fn recovery_round_trip_and_refusals() {
    let keys = [
        FlowKey {
            owner_addr: Addr::v4([10, 0, 0, 1]),
            owner_port: 80,
            client_addr: Addr::v4([10, 0, 0, 100]),
            client_port: 40000,
        },
        FlowKey {
            owner_addr: Addr([0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]),
            owner_port: 81,
            client_addr: Addr([0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0]),
            client_port: 40001,
        },
    ];
    for append in [false, true] {
        let r = RecoveryRequest {
            node: 2,
            append,
            served: Served::from_slice(&keys),
        };
        let msg = enc(|w| r.write(w));
        let back = RecoveryRequest::parse(&msg).unwrap();
        assert_eq!(back, r);
        assert_eq!(back.served.len(), 2);
        assert_eq!(back.served.iter().collect::<Vec<_>>(), keys);
    }
    // An empty list (clears the peer's) is a valid request.
    let empty = RecoveryRequest {
        node: 3,
        ..Default::default()
    };
    let msg = enc(|w| empty.write(w));
    assert!(RecoveryRequest::parse(&msg).unwrap().served.is_empty());
    // No node, the node twice, an incomplete or unknown served attribute, another attribute.
    let one = RecoveryRequest {
        node: 2,
        append: false,
        served: Served::from_slice(&keys[..1]),
    };
    let no_node = enc(|w| {
        let n = w.nest_start(attr::SERVED)?;
        w.put_u16(2, 80)?;
        w.nest_end(n)
    });
    assert_eq!(
        RecoveryRequest::parse(&no_node).unwrap_err().errno,
        code::EINVAL
    );
    let twice = plus(enc(|w| one.write(w)), |w| {
        w.put_u32(attr::NODE_ID, 3).unwrap()
    });
    assert_eq!(
        RecoveryRequest::parse(&twice).unwrap_err().errno,
        code::EINVAL
    );
    let partial = plus(enc(|w| one.write(w)), |w| {
        let n = w.nest_start(attr::SERVED).unwrap();
        w.put_u16(2, 80).unwrap();
        w.nest_end(n).unwrap();
    });
    assert_eq!(
        RecoveryRequest::parse(&partial).unwrap_err().errno,
        code::EINVAL
    );
    let unknown = plus(enc(|w| one.write(w)), |w| {
        let n = w.nest_start(attr::SERVED).unwrap();
        w.put_u32(5, 3).unwrap();
        w.nest_end(n).unwrap();
    });
    assert_eq!(
        RecoveryRequest::parse(&unknown).unwrap_err().errno,
        code::EINVAL
    );
    let other = plus(enc(|w| one.write(w)), |w| {
        w.put_u32(attr::PARK_MS, 1).unwrap()
    });
    assert_eq!(
        RecoveryRequest::parse(&other).unwrap_err().errno,
        code::EINVAL
    );
    // At most MAX_HANDED connections.
    let many = vec![keys[0]; MAX_HANDED + 1];
    let r = RecoveryRequest {
        node: 2,
        append: false,
        served: Served::from_slice(&many),
    };
    let mut buf = vec![0u8; 2 << 20];
    let mut w = Writer::new(&mut buf);
    r.write(&mut w).unwrap();
    let n = w.len();
    assert_eq!(
        RecoveryRequest::parse(&buf[..n]).unwrap_err().errno,
        code::E2BIG
    );
}
