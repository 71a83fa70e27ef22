// SPDX-License-Identifier: GPL-2.0

//! Host tests of the snooping and takeover netlink encodings (`snoopnl.rs`): connection,
//! statistics, taken-over and directive attributes round-trip, and requests are checked.

mod common;

use common::*;
use permtcp_logic::track::Side;

#[test]
fn connection_and_stats_reports_round_trip() {
    use permtcp_logic::nla::{Attrs, Writer};
    use permtcp_logic::snoopnl::*;
    let mut w = Wire::new(true);
    w.handshake(1000, 5000, 7, 9);
    w.data(Side::Owner, &bytes(3000, 13));
    let k = w.key();
    let now = w.now + 25;
    let info = ConnInfo::from_conn(&k, w.map.get_mut_conn(&k), now);
    assert_eq!(info.not_ready, None);
    assert_eq!(info.half[0].held, 3000);
    assert_eq!((info.half[0].wscale, info.half[1].wscale), (9, 7));
    assert_eq!(info.half[1].mss, Some(1460));
    assert_eq!(info.idle_ms, 25);
    let mut buf = vec![0u8; 2048];
    let mut wr = Writer::new(&mut buf);
    info.write(&mut wr).unwrap();
    let n = wr.len();
    let outer = Attrs::new(&buf[..n]).next().unwrap().unwrap();
    assert_eq!(ConnInfo::parse(outer.data).unwrap(), info);

    let stats = StatsInfo {
        ifindex: 3,
        conns: 1,
        max_conns: 4096,
        bytes: 8192,
        max_bytes: 1 << 26,
        bindings: 2,
        counters: w.snoop.counters,
        alloc_failed: 0,
        hook_ns: 123_456,
        hook_frames: 42,
        frames_kept: 17,
        rst_dropped: 3,
        steered: 5,
        handed: 2,
        syn_refused: 1,
        views: 12,
        ct_ns: 13,
        ct_frames: 14,
    };
    let mut wr = Writer::new(&mut buf);
    stats.write(&mut wr).unwrap();
    let n = wr.len();
    let outer = Attrs::new(&buf[..n]).next().unwrap().unwrap();
    assert_eq!(StatsInfo::parse(outer.data).unwrap(), stats);
    assert!(stats.counters.matched >= 4);

    // A connection that is not ready reports why: owner bytes the snooper missed (the
    // owner's next segment starts past them) were acknowledged.
    w.nxt[0] += 1000;
    w.data(Side::Owner, &bytes(10, 14));
    w.ack(Side::Client, 502);
    let info = ConnInfo::from_conn(&k, w.map.get_mut_conn(&k), now);
    assert_eq!(
        info.not_ready,
        Some((permtcp_logic::uapi::not_ready::ACKED_UNSEEN, 0))
    );
    assert_eq!(
        reason_name(info.not_ready.unwrap().0),
        "acknowledged data never seen"
    );
}

#[test]
fn snoop_requests_are_checked() {
    use permtcp_logic::nla::Writer;
    use permtcp_logic::snoopnl::*;
    use permtcp_logic::uapi::attr;
    let mut buf = [0u8; 128];
    let mut wr = Writer::new(&mut buf);
    wr.put_u32(attr::IFINDEX, 4).unwrap();
    wr.put_u32(attr::MAX_CONNS, 10).unwrap();
    let n = wr.len();
    let r = parse_start_request(&buf[..n]).unwrap();
    assert_eq!((r.ifindex, r.max_conns, r.max_bytes), (4, Some(10), None));
    assert!(parse_start_request(&[]).is_err());
    let mut wr = Writer::new(&mut buf);
    wr.put_u32(attr::IFINDEX, 4).unwrap();
    wr.put_u64(attr::MAX_BYTES, 100).unwrap();
    let n = wr.len();
    assert_eq!(
        parse_start_request(&buf[..n]).unwrap_err().text(),
        "limits must allow one connection and one 4 KiB chunk"
    );
    for (keep, ok) in [(8 << 20, true), ((8 << 20) + 1, false)] {
        let mut wr = Writer::new(&mut buf);
        wr.put_u32(attr::IFINDEX, 4).unwrap();
        wr.put_u32(attr::KEEP_RECEIVED, keep).unwrap();
        let n = wr.len();
        match parse_start_request(&buf[..n]) {
            Ok(r) => assert!(ok && r.keep_received == Some(keep)),
            Err(e) => assert!(
                !ok && e.text() == "at most 8 MiB of received data can be kept",
                "{keep}"
            ),
        }
    }

    let mut wr = Writer::new(&mut buf);
    wr.put(attr::OWNER_ADDR, &v6(1, 0).addr.0).unwrap();
    wr.put_u16(attr::OWNER_PORT, 80).unwrap();
    wr.put(attr::CLIENT_ADDR, &v6(2, 0).addr.0).unwrap();
    wr.put_u16(attr::CLIENT_PORT, 5555).unwrap();
    let partial = wr.len();
    wr.put_u8(attr::SIDE, 1).unwrap();
    let n = wr.len();
    let r = parse_data_request(&buf[..n]).unwrap();
    assert_eq!((r.key.client_port, r.side), (5555, Side::Client));
    assert!(
        parse_data_request(&buf[..partial]).is_err(),
        "side required"
    );
}

#[test]
fn taken_info_round_trips() {
    use permtcp_logic::nla::{Attrs, Writer};
    use permtcp_logic::snoopnl::TakenInfo;
    let t = TakenInfo {
        key: Wire::new(true).key(),
        sent_offset: 5000,
        recv_offset: 300,
        data_offset: 10,
        data_len: 4990,
        rx_deliver: true,
        age_ms: 12,
        rx_policy: permtcp_logic::uapi::rxdata::DELIVER,
        cookie: 0x8000_0000_0000_0001,
    };
    let mut buf = [0u8; 256];
    let mut wr = Writer::new(&mut buf);
    t.write(&mut wr).unwrap();
    let n = wr.len();
    let a = Attrs::new(&buf[..n]).next().unwrap().unwrap();
    assert_eq!(a.kind, permtcp_logic::uapi::attr::TAKEN_CONN);
    assert_eq!(TakenInfo::parse(a.data), Ok(t));
    let plain = TakenInfo {
        rx_deliver: false,
        rx_policy: permtcp_logic::uapi::rxdata::UNANSWERED,
        cookie: 0,
        ..t
    };
    let mut wr = Writer::new(&mut buf);
    plain.write(&mut wr).unwrap();
    let n = wr.len();
    let a = Attrs::new(&buf[..n]).next().unwrap().unwrap();
    assert_eq!(TakenInfo::parse(a.data), Ok(plain));
}

#[test]
fn directive_messages_round_trip_and_are_strict() {
    use permtcp_logic::nla::{Attrs, Writer};
    use permtcp_logic::snoopnl::{DirectiveInfo, DirectiveRequest};
    use permtcp_logic::uapi::attr;
    let key = Wire::new(true).key();
    let r = DirectiveRequest {
        node: 1,
        key,
        park_ms: Some(250),
        from: None,
    };
    let mut buf = [0u8; 256];
    let mut w = Writer::new(&mut buf);
    r.write(&mut w).unwrap();
    let n = w.len();
    assert_eq!(DirectiveRequest::parse(&buf[..n]), Ok(r));
    // Without the client's port it is incomplete; an unknown attribute is refused.
    let partial = |extra: bool| {
        let mut buf = [0u8; 256];
        let mut w = Writer::new(&mut buf);
        w.put_u32(attr::NODE_ID, 1).unwrap();
        w.put(attr::OWNER_ADDR, &key.owner_addr.0).unwrap();
        w.put_u16(attr::OWNER_PORT, 80).unwrap();
        w.put(attr::CLIENT_ADDR, &key.client_addr.0).unwrap();
        if extra {
            w.put_u32(attr::TAKEN, 1).unwrap();
        }
        let n = w.len();
        DirectiveRequest::parse(&buf[..n]).unwrap_err().text()
    };
    assert_eq!(
        partial(false),
        "a directive needs the node, both addresses and both ports"
    );
    assert_eq!(partial(true), "unknown attribute in request");

    let d = DirectiveInfo { key, next: 3 };
    let mut w = Writer::new(&mut buf);
    d.write(&mut w).unwrap();
    let n = w.len();
    let a = Attrs::new(&buf[..n]).next().unwrap().unwrap();
    assert_eq!(a.kind, attr::DIRECTIVE);
    assert_eq!(DirectiveInfo::parse(a.data), Ok(d));
}
