// SPDX-License-Identifier: GPL-2.0

//! Host tests of planned handoff (`handoff.rs`): the messages round-trip and refuse what
//! they must, and the peer takes a held connection over only when its mirror is ready and
//! has seen exactly what the serving node sent.

mod common;

use common::{bytes, GetConn, Wire};
use permtcp_logic::decl::RxPolicy;
use permtcp_logic::errno::code;
use permtcp_logic::handoff::{
    check, seeded, Handoff, HandoffConn, HoldRequest, Snapshot, HANDOFF_BATCH,
};
use permtcp_logic::nla::Writer;
use permtcp_logic::ops::List;
use permtcp_logic::packet::Addr;
use permtcp_logic::seq;
use permtcp_logic::snoop::FlowKey;
use permtcp_logic::snoop::{Filter, Limits, Snooper};
use permtcp_logic::track::NotReady;
use permtcp_logic::track::Side;
use permtcp_logic::uapi::{attr, handoff_attr, handoff_status as status};

fn enc(write: impl FnOnce(&mut Writer<'_>) -> Result<(), permtcp_logic::errno::Error>) -> Vec<u8> {
    let mut buf = vec![0u8; 1 << 20];
    let mut w = Writer::new(&mut buf);
    write(&mut w).unwrap();
    let n = w.len();
    buf.truncate(n);
    buf
}

fn key(port: u16) -> FlowKey {
    FlowKey {
        owner_addr: Addr::v4([10, 0, 0, 1]),
        owner_port: 80,
        client_addr: Addr([0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0]),
        client_port: port,
    }
}

fn conn(port: u16, st: u8) -> HandoffConn {
    HandoffConn {
        key: key(port),
        snd_nxt: 0xffff_fff0,
        snd_una: 0xffff_ff00,
        rcv_nxt: 7,
        status: st,
    }
}

#[test]
fn messages_round_trip() {
    let conns = [conn(40000, status::HELD), conn(40001, status::BUSY)];
    for (node, park_ms) in [(None, None), (Some(2), Some(5000)), (Some(3), None)] {
        let m = Handoff {
            node,
            park_ms,
            conns: List::from_slice(&conns),
        };
        let msg = enc(|w| m.write(w));
        let back = Handoff::parse(&msg).unwrap();
        assert_eq!(back, m);
        assert_eq!(back.conns.iter().collect::<Vec<_>>(), conns);
    }
    let hold = HoldRequest {
        addr: Addr::v4([10, 0, 0, 1]),
        port: 80,
        max: Some(7),
    };
    let msg = enc(|w| hold.write(w));
    assert_eq!(HoldRequest::parse(&msg), Ok(hold));
    assert_eq!(HoldRequest::parse(&msg).unwrap().limit(), 7);
    let dflt = HoldRequest { max: None, ..hold };
    assert_eq!(
        HoldRequest::parse(&enc(|w| dflt.write(w))).unwrap().limit(),
        HANDOFF_BATCH
    );
}

#[test]
fn messages_refuse_what_they_must() {
    // A hold without its port, with a limit of 0 or above a batch.
    let no_port = enc(|w| w.put(attr::OWNER_ADDR, &Addr::v4([10, 0, 0, 1]).0));
    assert_eq!(
        HoldRequest::parse(&no_port).unwrap_err().errno,
        code::EINVAL
    );
    for max in [0, HANDOFF_BATCH as u32 + 1] {
        let r = HoldRequest {
            addr: Addr::v4([10, 0, 0, 1]),
            port: 80,
            max: Some(max),
        };
        let msg = enc(|w| r.write(w));
        assert_eq!(HoldRequest::parse(&msg).unwrap_err().errno, code::ERANGE);
    }
    // A connection without its status, with an unknown status, listed twice; too many.
    let partial = enc(|w| {
        let n = w.nest_start(attr::HANDOFF)?;
        let k = key(1);
        w.put(handoff_attr::OWNER_ADDR, &k.owner_addr.0)?;
        w.put_u16(handoff_attr::OWNER_PORT, k.owner_port)?;
        w.put(handoff_attr::CLIENT_ADDR, &k.client_addr.0)?;
        w.put_u16(handoff_attr::CLIENT_PORT, k.client_port)?;
        w.put_u32(handoff_attr::SND_NXT, 1)?;
        w.put_u32(handoff_attr::SND_UNA, 1)?;
        w.put_u32(handoff_attr::RCV_NXT, 1)?;
        w.nest_end(n)
    });
    assert_eq!(Handoff::parse(&partial).unwrap_err().errno, code::EINVAL);
    let unknown = [conn(1, status::GONE + 1)];
    let msg = enc(|w| {
        Handoff {
            conns: List::from_slice(&unknown),
            ..Default::default()
        }
        .write(w)
    });
    assert_eq!(Handoff::parse(&msg).unwrap_err().errno, code::EINVAL);
    let twice = [conn(1, status::HELD), conn(1, status::HELD)];
    let msg = enc(|w| {
        Handoff {
            conns: List::from_slice(&twice),
            ..Default::default()
        }
        .write(w)
    });
    assert_eq!(Handoff::parse(&msg).unwrap_err().errno, code::EINVAL);
    let many: Vec<_> = (0..=HANDOFF_BATCH as u16)
        .map(|p| conn(p, status::HELD))
        .collect();
    let msg = enc(|w| {
        Handoff {
            conns: List::from_slice(&many),
            ..Default::default()
        }
        .write(w)
    });
    assert_eq!(Handoff::parse(&msg).unwrap_err().errno, code::E2BIG);
    assert!(Handoff::parse(&msg[..msg.len() - 40]).is_err());
    // The node twice, parking above an hour.
    let two = enc(|w| {
        w.put_u32(attr::NODE_ID, 1)?;
        w.put_u32(attr::NODE_ID, 2)
    });
    assert_eq!(Handoff::parse(&two).unwrap_err().errno, code::EINVAL);
    let park = enc(|w| w.put_u32(attr::PARK_MS, 3_600_001));
    assert_eq!(Handoff::parse(&park).unwrap_err().errno, code::ERANGE);
    assert_eq!(
        Handoff::parse(&[]).unwrap().need_node().unwrap_err().errno,
        code::EINVAL
    );
}

/// What the serving node reports for the wire's connection once held: the owner's next
/// sequence number as the wire model has it.
fn held(w: &Wire) -> HandoffConn {
    HandoffConn {
        key: w.key(),
        snd_nxt: w.nxt[0],
        snd_una: w.rcv[1],
        rcv_nxt: w.rcv[0],
        status: status::HELD,
    }
}

/// A connection after one request and its answer, both acknowledged.
fn exchanged() -> Wire {
    let mut w = Wire::new(false);
    w.handshake(1000, 5000, 7, 7);
    w.data(Side::Client, b"GET / HTTP/1.0\r\n\r\n");
    w.data(Side::Owner, &bytes(3000, 1));
    w.ack(Side::Client, 502);
    w
}

#[test]
fn peer_takes_only_a_level_ready_mirror() {
    let mut w = exchanged();
    let k = w.key();
    let want = held(&w);
    assert_eq!(
        check(w.map.get_mut_conn(&k), &want, RxPolicy::Unanswered),
        status::TAKEN
    );

    // The serving node sent a segment the mirror has not seen yet: behind, for now.
    let ahead = HandoffConn {
        snd_nxt: want.snd_nxt.wrapping_add(100),
        ..want
    };
    assert_eq!(
        check(w.map.get_mut_conn(&k), &ahead, RxPolicy::Unanswered),
        status::BEHIND
    );
    // It arrives: level again.
    w.data(Side::Owner, &bytes(100, 9));
    assert_eq!(
        check(w.map.get_mut_conn(&k), &ahead, RxPolicy::Unanswered),
        status::TAKEN
    );
    // The mirror saw more than the socket says it sent: not that socket's state.
    assert_eq!(
        check(w.map.get_mut_conn(&k), &want, RxPolicy::Unanswered),
        status::MISMATCH
    );
}

#[test]
fn peer_refuses_a_mirror_not_ready() {
    // Acknowledged owner bytes the mirror never saw: not ready, whatever the socket says.
    let mut w = Wire::new(true);
    w.handshake(1, 2, 7, 7);
    w.data(Side::Client, b"request");
    let lost = bytes(500, 3);
    let i = Side::Owner as usize;
    w.nxt[i] = w.nxt[i].wrapping_add(lost.len() as u32);
    w.rcv[1 - i] = w.nxt[i];
    w.data(Side::Owner, b"tail");
    w.ack(Side::Client, 502);
    let k = w.key();
    assert!(w.ready().is_err());
    let want = held(&w);
    assert_eq!(
        check(w.map.get_mut_conn(&k), &want, RxPolicy::Unanswered),
        status::NOT_READY
    );
}

#[test]
fn peer_refuses_a_response_not_all_on_the_wire() {
    // The owner's last bytes carry no PSH: its write was not all sent when it was held.
    let mut w = Wire::new(false);
    w.handshake(10, 20, 7, 7);
    w.data(Side::Client, b"GET /big\r\n\r\n");
    let part = bytes(1000, 5);
    let i = Side::Owner as usize;
    let (seq, ack) = (w.nxt[i], w.rcv[i]);
    w.send_raw(
        Side::Owner,
        seq,
        ack,
        permtcp_logic::packet::flags::ACK,
        502,
        &Default::default(),
        &part,
    );
    w.nxt[i] = w.nxt[i].wrapping_add(part.len() as u32);
    w.rcv[1 - i] = w.nxt[i];
    w.ack(Side::Client, 502);
    let k = w.key();
    let want = held(&w);
    assert_eq!(
        check(w.map.get_mut_conn(&k), &want, RxPolicy::Unanswered),
        status::MID_RESPONSE
    );
    // The rest, pushed: a boundary again.
    w.data(Side::Owner, b"end");
    w.ack(Side::Client, 502);
    let want = held(&w);
    assert_eq!(
        check(w.map.get_mut_conn(&k), &want, RxPolicy::Unanswered),
        status::TAKEN
    );
}

/// What the serving node's locked socket says of the wire's connection: every byte each
/// end sent was acknowledged (both ends acknowledge first).
fn snapshot(w: &Wire, isn_o: u32, isn_c: u32) -> Snapshot {
    Snapshot {
        snd_nxt: w.nxt[0],
        snd_una: w.rcv[1],
        rcv_nxt: w.rcv[0],
        isn: isn_o,
        client_isn: isn_c,
        snd_wnd: 502 << 7,
        rcv_wnd: 502 << 7,
        client_mss: 1460,
        wscale: Some((7, 7)),
        sack: true,
        ts: true,
    }
}

/// Replaces the wire's mirrored connection (if any) by one seeded from `snap`.
fn reseed(w: &mut Wire, snap: &Snapshot) {
    let k = w.key();
    if let Some(mut old) = w.map.0.remove(&k) {
        old.release(&mut w.alloc);
    }
    let now = w.now;
    assert!(w.snoop.seed(&mut w.map, &mut w.alloc, k, seeded(snap, now)));
}

#[test]
fn a_seeded_mirror_follows_from_the_snapshot_on() {
    // The peer's mirror of the connection is dropped (it took it over) and the node that
    // served it seeds one from its socket: the traffic that follows keeps it level.
    let mut w = exchanged();
    let k = w.key();
    let snap = snapshot(&w, 5000, 1000);
    reseed(&mut w, &snap);
    // A filter that snoops the binding: not counted as a seeded connection of its own.
    assert_eq!(w.snoop.seeded, 0);
    assert_eq!(w.ready(), Ok(()));
    w.data(Side::Client, b"GET /next HTTP/1.0\r\n\r\n");
    w.data(Side::Owner, &bytes(5000, 2));
    w.ack(Side::Client, 502);
    w.assert_mirror();
    assert_eq!(w.retained(Side::Owner, 5000), bytes(5000, 2));
    // Stream offsets count from the ISNs the snapshot gave.
    let c = w.map.get_mut_conn(&k);
    assert_eq!(
        seq::dist(
            c.side(Side::Owner).isn.wrapping_add(1),
            c.side(Side::Owner).nxt
        ),
        8000
    );
}

#[test]
fn a_seeded_mirror_with_unacknowledged_bytes_is_not_ready_until_they_are() {
    let mut w = Wire::new(true);
    w.handshake(1, 2, 7, 7);
    w.data(Side::Client, b"req");
    w.data(Side::Owner, &bytes(700, 4));
    // The client has not acknowledged the answer yet: the snapshot's snd_una is behind.
    let mut snap = snapshot(&w, 2, 1);
    snap.snd_una = snap.snd_nxt.wrapping_sub(700);
    reseed(&mut w, &snap);
    assert_eq!(w.ready(), Err(NotReady::Hole(Side::Owner)));
    w.ack(Side::Client, 502);
    assert_eq!(w.ready(), Ok(()));
}

#[test]
fn a_seeded_connection_of_an_unsnooped_binding_is_followed() {
    // The node's own binding (its filter snoops none): only the seeded connection is
    // followed, another connection of the binding is not.
    let mut w = Wire::new(false);
    w.snoop = Snooper::new(Filter::compile([].iter()), Limits::default());
    let snap = Snapshot {
        snd_nxt: 5001,
        snd_una: 5001,
        rcv_nxt: 1001,
        isn: 5000,
        client_isn: 1000,
        snd_wnd: 502 << 7,
        rcv_wnd: 502 << 7,
        client_mss: 1460,
        wscale: Some((7, 7)),
        sack: true,
        ts: false,
    };
    w.ts = false;
    reseed(&mut w, &snap);
    assert_eq!(w.snoop.seeded, 1);
    w.nxt = [5001, 1001];
    w.rcv = [1001, 5001];
    w.data(Side::Client, b"hello");
    w.data(Side::Owner, &bytes(2000, 7));
    w.ack(Side::Client, 502);
    w.assert_mirror();
    assert_eq!(w.retained(Side::Client, 5), b"hello");
    // Another client of the same binding: not followed.
    w.client.port += 1;
    w.handshake(77, 88, 7, 7);
    assert!(!w.map.0.contains_key(&w.key()));
    // The expiry pass recounts.
    let now = w.now;
    w.snoop.expire(&mut w.map, &mut w.alloc, now);
    assert_eq!(w.snoop.seeded, 1);
}
