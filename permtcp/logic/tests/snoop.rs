// SPDX-License-Identifier: GPL-2.0

//! Host tests of the snooping state machine on packet sequences built byte by byte.

mod common;

use common::*;
use permtcp_logic::decl::{Declaration, FailoverPolicy, PortRange};
use permtcp_logic::packet::flags::*;
use permtcp_logic::seqbuf::{Budget, CAPACITY, CHUNK};
use permtcp_logic::snoop::{Filter, FlowKey, Limits, Snooper};
use permtcp_logic::track::{NotReady, Side, State, TIME_WAIT_MARGIN_MS, TIME_WAIT_MS};
use permtcp_logic::uapi::proto;

const OWNER_NODE: u32 = 1;
const ME: u32 = 2;

fn decls(
    owner_addrs: &[[u8; 4]],
    with_v6: bool,
    policy: FailoverPolicy,
    peers: &[u32],
) -> Vec<Declaration> {
    let mut owner = Declaration {
        node_id: OWNER_NODE,
        proto: proto::TCP,
        failover: policy,
        ..Default::default()
    };
    for a in owner_addrs {
        owner.addrs4.push(*a).unwrap();
    }
    if with_v6 {
        owner.addrs6.push(v6(1, 0).addr.0).unwrap();
    }
    let mut r = PortRange {
        lo: 80,
        hi: 90,
        ..Default::default()
    };
    for p in peers {
        r.peers.push(*p).unwrap();
    }
    owner.ranges.push(r).unwrap();
    let mut me = Declaration {
        node_id: ME,
        proto: proto::TCP,
        local: true,
        ..Default::default()
    };
    me.addrs4.push([10, 0, 0, 2]).unwrap();
    me.ranges
        .push(PortRange {
            lo: 80,
            hi: 80,
            ..Default::default()
        })
        .unwrap();
    vec![owner, me]
}

/// A conversation between an owner and a client, snooped by a peer.
struct Wire {
    snoop: Snooper,
    map: Map,
    alloc: Budget<Heap>,
    owner: End,
    client: End,
    now: u64,
    /// Next sequence number each side sends: [owner, client].
    nxt: [u32; 2],
    /// What each side has received in order: the ack it sends.
    rcv: [u32; 2],
    ts: bool,
    sent: [Vec<u8>; 2],
}

impl Wire {
    fn new(v6_addrs: bool) -> Self {
        let (owner, client) = if v6_addrs {
            (v6(1, 80), v6(100, 40000))
        } else {
            (v4([10, 0, 0, 1], 80), v4([10, 0, 0, 100], 40000))
        };
        let d = decls(&[[10, 0, 0, 1]], true, FailoverPolicy::SmallestId, &[]);
        Wire {
            snoop: Snooper::new(Filter::compile(d.iter()), Limits::default()),
            map: Map::default(),
            alloc: Budget::new(Heap::default(), 64 << 20),
            owner,
            client,
            now: 1000,
            nxt: [0; 2],
            rcv: [0; 2],
            ts: true,
            sent: [Vec::new(), Vec::new()],
        }
    }

    fn key(&self) -> FlowKey {
        FlowKey {
            owner_addr: self.owner.addr,
            owner_port: self.owner.port,
            client_addr: self.client.addr,
            client_port: self.client.port,
        }
    }

    fn ends(&self, from: Side) -> (End, End) {
        match from {
            Side::Owner => (self.owner, self.client),
            Side::Client => (self.client, self.owner),
        }
    }

    fn feed(&mut self, pkt: &[u8]) {
        self.now += 1;
        let now = self.now;
        self.snoop.on_frame(
            &mut self.map,
            &mut self.alloc,
            pkt,
            pkt.len(),
            pkt,
            |_| true,
            now,
        );
    }

    #[allow(clippy::too_many_arguments)]
    fn send_raw(
        &mut self,
        from: Side,
        seq: u32,
        ack: u32,
        fl: u8,
        win: u16,
        opts: &Opts,
        data: &[u8],
    ) -> Vec<u8> {
        let (s, d) = self.ends(from);
        let mut o = opts.clone();
        if self.ts && o.ts.is_none() {
            o.ts = Some((self.now as u32 * 10, 1));
        }
        let pkt = frame(s, d, seq, ack, fl, win, &o, data);
        self.feed(&pkt);
        pkt
    }

    fn handshake(&mut self, isn_c: u32, isn_o: u32, ws_c: u8, ws_o: u8) {
        self.send_raw(
            Side::Client,
            isn_c,
            0,
            SYN,
            64240,
            &Opts::syn_full(1460, ws_c, 100),
            &[],
        );
        self.send_raw(
            Side::Owner,
            isn_o,
            isn_c.wrapping_add(1),
            SYN | ACK,
            65160,
            &Opts::syn_full(1400, ws_o, 200),
            &[],
        );
        self.nxt = [isn_o.wrapping_add(1), isn_c.wrapping_add(1)];
        self.rcv = [isn_c.wrapping_add(1), isn_o.wrapping_add(1)];
        self.ack(Side::Client, 502);
    }

    fn ack(&mut self, from: Side, win: u16) {
        let i = from as usize;
        self.send_raw(
            from,
            self.nxt[i],
            self.rcv[i],
            ACK,
            win,
            &Opts::default(),
            &[],
        );
    }

    /// Sends data in order; the receiver is assumed to get it (its ack moves on when it acks).
    fn data(&mut self, from: Side, data: &[u8]) -> Vec<u8> {
        let i = from as usize;
        let pkt = self.send_raw(
            from,
            self.nxt[i],
            self.rcv[i],
            ACK | PSH,
            502,
            &Opts::default(),
            data,
        );
        self.nxt[i] = self.nxt[i].wrapping_add(data.len() as u32);
        self.rcv[1 - i] = self.nxt[i];
        self.sent[i].extend_from_slice(data);
        pkt
    }

    fn state(&mut self) -> State {
        let k = self.key();
        self.map.get_mut_conn(&k).state
    }

    fn ready(&mut self) -> Result<(), NotReady> {
        let k = self.key();
        self.map.get_mut_conn(&k).readiness()
    }

    /// The last `n` bytes `from` sent, read back from the snooper.
    fn retained(&mut self, from: Side, n: usize) -> Vec<u8> {
        let k = self.key();
        let i = from as usize;
        let end = self.nxt[i];
        let c = self.map.get_mut_conn(&k);
        let mut out = vec![0u8; n];
        assert!(
            c.half[i].data.read(end.wrapping_sub(n as u32), &mut out),
            "bytes missing"
        );
        out
    }
}

trait GetConn {
    fn get_mut_conn(&mut self, k: &FlowKey) -> &mut permtcp_logic::track::Conn<A>;
}

impl GetConn for Map {
    fn get_mut_conn(&mut self, k: &FlowKey) -> &mut permtcp_logic::track::Conn<A> {
        self.0.get_mut(k).expect("connection tracked")
    }
}

fn bytes(n: usize, seed: u8) -> Vec<u8> {
    (0..n)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

#[test]
fn handshake_records_options_and_establishes_on_final_ack() {
    let mut w = Wire::new(false);
    w.send_raw(
        Side::Client,
        1000,
        0,
        SYN,
        64240,
        &Opts::syn_full(1460, 7, 100),
        &[],
    );
    assert_eq!(w.state(), State::SynSent);
    w.send_raw(
        Side::Owner,
        5000,
        1001,
        SYN | ACK,
        65160,
        &Opts::syn_full(1400, 9, 200),
        &[],
    );
    assert_eq!(w.state(), State::SynReceived);
    assert_eq!(w.ready(), Err(NotReady::Handshake));
    w.send_raw(Side::Client, 1001, 5001, ACK, 502, &Opts::default(), &[]);
    assert_eq!(w.state(), State::Established);
    assert_eq!(w.ready(), Ok(()));
    let k = w.key();
    let c = w.map.get_mut_conn(&k);
    assert!(c.ws_ok && c.sack_ok && c.ts_ok);
    assert_eq!(c.side(Side::Client).syn_opts.mss, Some(1460));
    assert_eq!(c.side(Side::Owner).syn_opts.mss, Some(1400));
    assert_eq!((c.wscale(Side::Client), c.wscale(Side::Owner)), (7, 9));
    // The final ACK's window is scaled by the client's shift.
    assert_eq!(c.side(Side::Client).win, 502 << 7);
    assert_eq!(c.side(Side::Owner).isn, 5000);
    assert_eq!(c.side(Side::Owner).una, 5001);
    assert_eq!(w.snoop.counters.conns_synced, 1);
}

#[test]
fn options_only_when_both_syns_carry_them() {
    let mut w = Wire::new(false);
    w.ts = false;
    w.send_raw(
        Side::Client,
        1,
        0,
        SYN,
        64240,
        &Opts {
            mss: Some(1460),
            wscale: Some(7),
            ..Default::default()
        },
        &[],
    );
    w.send_raw(
        Side::Owner,
        9,
        2,
        SYN | ACK,
        65160,
        &Opts {
            mss: Some(1460),
            sack_perm: true,
            ..Default::default()
        },
        &[],
    );
    w.send_raw(Side::Client, 2, 10, ACK, 1000, &Opts::default(), &[]);
    let k = w.key();
    let c = w.map.get_mut_conn(&k);
    assert!(!c.ws_ok && !c.sack_ok && !c.ts_ok);
    assert_eq!(
        c.side(Side::Client).win,
        1000,
        "no scaling without both wscale options"
    );
}

#[test]
fn duplicate_syn_replaces_the_stored_one() {
    let mut w = Wire::new(false);
    w.send_raw(
        Side::Client,
        1000,
        0,
        SYN,
        64240,
        &Opts::syn_full(1460, 7, 100),
        &[],
    );
    w.send_raw(
        Side::Client,
        7777,
        0,
        SYN,
        64240,
        &Opts::syn_full(1200, 6, 150),
        &[],
    );
    let k = w.key();
    let c = w.map.get_mut_conn(&k);
    assert_eq!(c.side(Side::Client).isn, 7777);
    assert_eq!(c.side(Side::Client).syn_opts.mss, Some(1200));
    // A SYN-ACK for the old ISN is not the answer.
    w.send_raw(
        Side::Owner,
        5000,
        1001,
        SYN | ACK,
        65160,
        &Opts::syn_full(1400, 9, 200),
        &[],
    );
    assert_eq!(w.state(), State::SynSent);
    w.send_raw(
        Side::Owner,
        5000,
        7778,
        SYN | ACK,
        65160,
        &Opts::syn_full(1400, 9, 200),
        &[],
    );
    assert_eq!(w.state(), State::SynReceived);
}

#[test]
fn simultaneous_open_first_syn_decides() {
    let mut w = Wire::new(false);
    w.send_raw(
        Side::Owner,
        5000,
        0,
        SYN,
        65160,
        &Opts::syn_full(1400, 9, 200),
        &[],
    );
    w.send_raw(
        Side::Client,
        1000,
        0,
        SYN,
        64240,
        &Opts::syn_full(1460, 7, 100),
        &[],
    );
    assert_eq!(w.state(), State::SimultaneousOpen);
    let k = w.key();
    assert_eq!(w.map.get_mut_conn(&k).opener, Side::Owner);
    w.send_raw(
        Side::Owner,
        5000,
        1001,
        SYN | ACK,
        65160,
        &Opts::syn_full(1400, 9, 200),
        &[],
    );
    assert_eq!(w.state(), State::SimultaneousOpen);
    w.send_raw(
        Side::Client,
        1000,
        5001,
        SYN | ACK,
        64240,
        &Opts::syn_full(1460, 7, 100),
        &[],
    );
    assert_eq!(w.state(), State::Established);
    assert_eq!(w.ready(), Ok(()));
}

#[test]
fn data_both_ways_is_retained_exactly() {
    for v6 in [false, true] {
        let mut w = Wire::new(v6);
        w.handshake(1000, 5000, 7, 7);
        let req = bytes(300, 1);
        w.data(Side::Client, &req);
        let resp = bytes(9000, 2);
        for part in resp.chunks(1448) {
            w.data(Side::Owner, part);
        }
        assert_eq!(w.ready(), Ok(()), "v6={v6}");
        assert_eq!(w.retained(Side::Client, 300), req);
        assert_eq!(w.retained(Side::Owner, 9000), resp);
        let k = w.key();
        let c = w.map.get_mut_conn(&k);
        assert_eq!(c.side(Side::Owner).nxt, 5001 + 9000);
        assert_eq!(c.side(Side::Owner).bytes, 9000);
        assert_eq!(c.side(Side::Client).una, 1001 + 300, "the owner's acks");
    }
}

#[test]
fn retransmissions_and_overlaps_keep_the_bytes() {
    let mut w = Wire::new(false);
    w.handshake(1000, 5000, 7, 7);
    let d = bytes(3000, 3);
    w.data(Side::Owner, &d[..1000]);
    // Retransmission of the same segment, then a segment overlapping it.
    w.send_raw(
        Side::Owner,
        5001,
        1001,
        ACK,
        502,
        &Opts::default(),
        &d[..1000],
    );
    w.send_raw(
        Side::Owner,
        5501,
        1001,
        ACK,
        502,
        &Opts::default(),
        &d[500..2000],
    );
    w.send_raw(
        Side::Owner,
        7001,
        1001,
        ACK,
        502,
        &Opts::default(),
        &d[2000..],
    );
    w.nxt[0] = 8001;
    w.sent[0] = d.clone();
    assert_eq!(w.ready(), Ok(()));
    assert_eq!(w.retained(Side::Owner, 3000), d);
    let k = w.key();
    assert_eq!(w.map.get_mut_conn(&k).side(Side::Owner).bytes, 4500);
}

#[test]
fn out_of_order_hole_then_filled() {
    let mut w = Wire::new(false);
    w.handshake(1000, 5000, 7, 7);
    let d = bytes(2000, 4);
    // Second half first: a hole the snooper must not paper over.
    w.send_raw(
        Side::Owner,
        6001,
        1001,
        ACK,
        502,
        &Opts::default(),
        &d[1000..],
    );
    assert_eq!(w.ready(), Err(NotReady::Hole(Side::Owner)));
    w.send_raw(
        Side::Owner,
        5001,
        1001,
        ACK,
        502,
        &Opts::default(),
        &d[..1000],
    );
    w.nxt[0] = 7001;
    assert_eq!(w.ready(), Ok(()));
    assert_eq!(w.retained(Side::Owner, 2000), d);
}

#[test]
fn acknowledged_but_unseen_data_is_a_fault_while_in_the_window() {
    let mut w = Wire::new(false);
    w.handshake(1000, 5000, 7, 7);
    // The client acks 500 bytes of owner data the snooper never saw.
    w.send_raw(Side::Client, 1001, 5501, ACK, 502, &Opts::default(), &[]);
    assert_eq!(w.ready(), Err(NotReady::AckedUnseen(Side::Owner)));
    w.nxt[0] = 5501;
    w.rcv[1] = 5501;
    w.data(Side::Owner, &bytes(100, 5));
    assert_eq!(
        w.ready(),
        Err(NotReady::AckedUnseen(Side::Owner)),
        "stays not ready"
    );
}

#[test]
fn sack_blocks_are_parsed_and_do_not_move_the_ack() {
    let mut w = Wire::new(false);
    w.handshake(1000, 5000, 7, 7);
    w.data(Side::Owner, &bytes(1000, 6));
    let opts = Opts {
        sack: vec![(7001, 8001), (9001, 9501)],
        ..Default::default()
    };
    let pkt = frame(w.client, w.owner, 1001, 5001, ACK, 502, &opts, &[]);
    let seg = permtcp_logic::packet::parse(&pkt, pkt.len()).unwrap();
    assert_eq!(seg.opts.sack_blocks, 2);
    w.feed(&pkt);
    let k = w.key();
    assert_eq!(w.map.get_mut_conn(&k).side(Side::Owner).una, 5001);
}

#[test]
fn sequence_numbers_wrap() {
    let mut w = Wire::new(false);
    let isn_o = u32::MAX - 1500;
    w.handshake(u32::MAX - 10, isn_o, 7, 7);
    let d = bytes(6000, 7);
    for part in d.chunks(1448) {
        w.data(Side::Owner, part);
    }
    w.ack(Side::Client, 502);
    assert_eq!(w.ready(), Ok(()));
    assert_eq!(w.retained(Side::Owner, 6000), d);
    let k = w.key();
    assert_eq!(
        w.map.get_mut_conn(&k).side(Side::Owner).una,
        isn_o.wrapping_add(6001)
    );
}

#[test]
fn acked_data_is_released_but_one_window_stays() {
    let mut w = Wire::new(false);
    w.handshake(1000, 5000, 0, 0);
    // Unscaled 16 KiB windows from both ends.
    let d = bytes(400_000, 8);
    for part in d.chunks(1448) {
        w.data(Side::Owner, part);
        w.ack(Side::Client, 16384);
    }
    assert_eq!(w.ready(), Ok(()));
    let k = w.key();
    let held = w.map.get_mut_conn(&k).side(Side::Owner).data.held() as usize;
    // The largest window the client advertised was its SYN's, 64240 bytes.
    assert!(held >= 64240, "one window kept behind the ack, held {held}");
    assert!(held <= 64240 + 2 * CHUNK, "released as acked, held {held}");
    assert_eq!(w.retained(Side::Owner, 16384), d[d.len() - 16384..]);
    assert!(w.alloc.used <= (64240 + 3 * CHUNK) as u64);
}

#[test]
fn unacked_data_beyond_capacity_is_an_overflow() {
    let mut w = Wire::new(false);
    w.handshake(1000, 5000, 14, 14);
    // A 1 GiB window; the client never acks; more in flight than a direction can hold.
    w.ack(Side::Client, 65535);
    for part in bytes(CAPACITY as usize + 100 * 1024, 9).chunks(1448) {
        let i = 0;
        let pkt = frame(
            w.owner,
            w.client,
            w.nxt[i],
            1001,
            ACK,
            502,
            &Opts::default(),
            part,
        );
        w.nxt[i] = w.nxt[i].wrapping_add(part.len() as u32);
        w.feed(&pkt);
    }
    assert_eq!(w.ready(), Err(NotReady::Overflow(Side::Owner)));
}

#[test]
fn fin_from_owner_first_then_time_wait_then_expiry() {
    let mut w = Wire::new(false);
    w.handshake(1000, 5000, 7, 7);
    w.data(Side::Client, b"GET /");
    w.send_raw(
        Side::Owner,
        w.nxt[0],
        w.rcv[0],
        FIN | ACK,
        502,
        &Opts::default(),
        &[],
    );
    assert_eq!(w.state(), State::FinSeen);
    w.send_raw(
        Side::Client,
        w.nxt[1],
        w.nxt[0] + 1,
        FIN | ACK,
        502,
        &Opts::default(),
        &[],
    );
    assert_eq!(w.state(), State::Closing);
    w.send_raw(
        Side::Owner,
        w.nxt[0] + 1,
        w.nxt[1] + 1,
        ACK,
        502,
        &Opts::default(),
        &[],
    );
    assert_eq!(w.state(), State::TimeWait);
    assert_eq!(w.ready(), Err(NotReady::Closed));
    let now = w.now;
    w.snoop.expire(&mut w.map, &mut w.alloc, now + TIME_WAIT_MS);
    assert_eq!(
        w.map.0.len(),
        1,
        "held a little longer than the standard time"
    );
    w.snoop.expire(
        &mut w.map,
        &mut w.alloc,
        now + TIME_WAIT_MS + TIME_WAIT_MARGIN_MS,
    );
    assert_eq!(w.map.0.len(), 0);
    assert_eq!(w.snoop.counters.expired, 1);
    assert_eq!(w.alloc.inner.live, 0, "chunks returned");
}

#[test]
fn half_closed_by_the_client_stays_ready() {
    let mut w = Wire::new(false);
    w.handshake(1000, 5000, 7, 7);
    w.data(Side::Client, b"upload done");
    w.send_raw(
        Side::Client,
        w.nxt[1],
        w.rcv[1],
        FIN | ACK,
        502,
        &Opts::default(),
        &[],
    );
    w.nxt[1] += 1;
    w.rcv[0] = w.nxt[1];
    w.data(Side::Owner, &bytes(5000, 10));
    assert_eq!(w.state(), State::FinSeen);
    assert_eq!(w.ready(), Ok(()));
    let k = w.key();
    assert_eq!(
        w.map.get_mut_conn(&k).side(Side::Client).fin,
        Some(1001 + 11)
    );
}

#[test]
fn rst_in_window_removes_out_of_window_is_ignored() {
    let mut w = Wire::new(false);
    w.handshake(1000, 5000, 7, 7);
    w.send_raw(
        Side::Client,
        1001 + 10_000_000,
        0,
        RST,
        0,
        &Opts::default(),
        &[],
    );
    assert_eq!(w.state(), State::Established);
    assert_eq!(w.snoop.counters.invalid, 1);
    w.send_raw(Side::Client, 1001, 0, RST, 0, &Opts::default(), &[]);
    assert!(w.map.0.is_empty());
    assert_eq!(w.snoop.counters.resets, 1);
}

#[test]
fn refused_connection() {
    let mut w = Wire::new(false);
    w.send_raw(
        Side::Client,
        1000,
        0,
        SYN,
        64240,
        &Opts::syn_full(1460, 7, 100),
        &[],
    );
    w.send_raw(Side::Owner, 0, 1001, RST | ACK, 0, &Opts::default(), &[]);
    assert!(w.map.0.is_empty());
}

#[test]
fn new_syn_ends_time_wait_at_once() {
    let mut w = Wire::new(false);
    w.handshake(1000, 5000, 7, 7);
    w.send_raw(
        Side::Client,
        1001,
        5001,
        FIN | ACK,
        502,
        &Opts::default(),
        &[],
    );
    w.send_raw(
        Side::Owner,
        5001,
        1002,
        FIN | ACK,
        502,
        &Opts::default(),
        &[],
    );
    w.send_raw(Side::Client, 1002, 5002, ACK, 502, &Opts::default(), &[]);
    assert_eq!(w.state(), State::TimeWait);
    w.send_raw(
        Side::Client,
        900_000,
        0,
        SYN,
        64240,
        &Opts::syn_full(1460, 7, 100),
        &[],
    );
    assert_eq!(w.state(), State::SynSent);
    assert_eq!(w.snoop.counters.tw_reused, 1);
    let k = w.key();
    assert_eq!(w.map.get_mut_conn(&k).side(Side::Client).isn, 900_000);
}

#[test]
fn connection_not_seen_from_syn() {
    let mut w = Wire::new(false);
    w.send_raw(
        Side::Owner,
        5000,
        1000,
        ACK,
        502,
        &Opts::default(),
        &bytes(100, 11),
    );
    assert_eq!(w.state(), State::Unsynced);
    assert_eq!(w.ready(), Err(NotReady::NotFromSyn));
    assert_eq!(w.snoop.counters.conns_unsynced, 1);
}

#[test]
fn limits_on_connections_and_bytes() {
    let mut w = Wire::new(false);
    w.snoop.limits.max_conns = 2;
    for port in 0..3u16 {
        w.client.port = 50000 + port;
        w.send_raw(
            Side::Client,
            1000,
            0,
            SYN,
            64240,
            &Opts::syn_full(1460, 7, 100),
            &[],
        );
    }
    assert_eq!(w.map.0.len(), 2);
    assert_eq!(w.snoop.counters.conn_limit, 1);

    let mut w = Wire::new(false);
    w.alloc.max = 2 * CHUNK as u64;
    w.handshake(1000, 5000, 7, 7);
    for part in bytes(3 * CHUNK, 12).chunks(1448) {
        w.data(Side::Owner, part);
    }
    assert_eq!(w.ready(), Err(NotReady::NoMemory(Side::Owner)));
    assert!(w.alloc.refused > 0);
    assert!(w.alloc.used <= 2 * CHUNK as u64);
}

#[test]
fn segments_of_other_bindings_are_ignored() {
    let mut w = Wire::new(false);
    w.owner.port = 443;
    w.send_raw(
        Side::Client,
        1000,
        0,
        SYN,
        64240,
        &Opts::syn_full(1460, 7, 100),
        &[],
    );
    assert!(w.map.0.is_empty());
    assert_eq!(w.snoop.counters.matched, 0);
}

#[test]
fn filter_follows_the_fail_over_policy() {
    let d = decls(&[[10, 0, 0, 1]], false, FailoverPolicy::PeerList, &[3, ME]);
    assert_eq!(Filter::compile(d.iter()).bindings.len(), 1);
    let d = decls(&[[10, 0, 0, 1]], false, FailoverPolicy::PeerList, &[3]);
    assert_eq!(
        Filter::compile(d.iter()).bindings.len(),
        0,
        "not listed as a peer"
    );
    let d = decls(
        &[[10, 0, 0, 1], [10, 0, 0, 5]],
        true,
        FailoverPolicy::SmallestId,
        &[],
    );
    let f = Filter::compile(d.iter());
    assert_eq!(f.bindings.len(), 3, "every address of the range, v4 and v6");
    assert!(f
        .bindings
        .iter()
        .all(|b| b.owner == OWNER_NODE && b.lo == 80 && b.hi == 90));
    let mut d = decls(&[[10, 0, 0, 1]], false, FailoverPolicy::SmallestId, &[]);
    d[1].local = false;
    assert_eq!(
        Filter::compile(d.iter()).bindings.len(),
        0,
        "no local node, no snooping"
    );
}

#[test]
fn bad_checksum_frames_are_not_tracked() {
    let mut w = Wire::new(false);
    let pkt = frame(
        w.client,
        w.owner,
        1000,
        0,
        SYN,
        64240,
        &Opts::syn_full(1460, 7, 100),
        &[],
    );
    w.snoop.on_frame(
        &mut w.map,
        &mut w.alloc,
        &pkt,
        pkt.len(),
        &pkt[..],
        |_| false,
        1,
    );
    assert!(w.map.0.is_empty());
    assert_eq!(w.snoop.counters.bad_csum, 1);
}

#[test]
fn timestamps_tracked_each_way() {
    let mut w = Wire::new(false);
    w.handshake(1000, 5000, 7, 7);
    w.send_raw(
        Side::Owner,
        5001,
        1001,
        ACK,
        502,
        &Opts {
            ts: Some((777_000, 555)),
            ..Default::default()
        },
        b"x",
    );
    // An older TSval (reordered segment) does not move it back.
    w.send_raw(
        Side::Owner,
        5001,
        1001,
        ACK,
        502,
        &Opts {
            ts: Some((776_000, 554)),
            ..Default::default()
        },
        b"x",
    );
    let k = w.key();
    assert_eq!(
        w.map.get_mut_conn(&k).side(Side::Owner).ts,
        Some((777_000, 555))
    );
}

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
        rst_dropped: 3,
    };
    let mut wr = Writer::new(&mut buf);
    stats.write(&mut wr).unwrap();
    let n = wr.len();
    let outer = Attrs::new(&buf[..n]).next().unwrap().unwrap();
    assert_eq!(StatsInfo::parse(outer.data).unwrap(), stats);
    assert!(stats.counters.matched >= 4);

    // A connection that is not ready reports why.
    w.send_raw(
        Side::Client,
        w.nxt[1],
        9_000_000,
        ACK,
        502,
        &Opts::default(),
        &[],
    );
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
fn overflow_clears_once_the_missing_bytes_are_acknowledged() {
    let mut w = Wire::new(false);
    w.handshake(1000, 5000, 14, 14);
    w.ack(Side::Client, 65535);
    let d = bytes(CAPACITY as usize + 100 * 1024, 14);
    for part in d.chunks(1448) {
        let pkt = frame(
            w.owner,
            w.client,
            w.nxt[0],
            1001,
            ACK,
            502,
            &Opts::default(),
            part,
        );
        w.nxt[0] = w.nxt[0].wrapping_add(part.len() as u32);
        w.feed(&pkt);
    }
    assert_eq!(w.ready(), Err(NotReady::Overflow(Side::Owner)));
    // The client acknowledges everything: nothing unacknowledged is missing any more.
    w.rcv[1] = w.nxt[0];
    w.ack(Side::Client, 4);
    assert_eq!(w.ready(), Ok(()));
    // New data after that is retained again.
    let more = bytes(5000, 15);
    w.data(Side::Owner, &more);
    assert_eq!(w.retained(Side::Owner, 5000), more);
}

#[test]
fn acknowledged_unseen_bytes_stop_mattering_out_of_the_window() {
    let mut w = Wire::new(false);
    w.handshake(1000, 5000, 0, 0);
    w.send_raw(Side::Client, 1001, 5501, ACK, 8192, &Opts::default(), &[]);
    assert_eq!(w.ready(), Err(NotReady::AckedUnseen(Side::Owner)));
    w.nxt[0] = 5501;
    w.rcv[1] = 5501;
    // Much more data, acknowledged with 8 KiB windows: the unseen bytes leave the window.
    for part in bytes(200 * 1024, 16).chunks(1448) {
        w.data(Side::Owner, part);
        w.ack(Side::Client, 8192);
    }
    assert_eq!(w.ready(), Ok(()));
}

#[test]
fn resume_offsets_follow_the_received_data_policy() {
    use permtcp_logic::decl::RxPolicy;
    use permtcp_logic::resume::resume;
    let mut w = Wire::new(false);
    w.handshake(1000, 5000, 7, 7);
    w.data(Side::Client, &bytes(300, 1));
    w.data(Side::Owner, &bytes(4000, 2)); // acknowledges the 300
    w.ack(Side::Client, 502); // acknowledges the 4000
    w.data(Side::Client, &bytes(200, 3)); // not acknowledged by the owner
                                          // 1000 more from the owner, still acknowledging only the first 300 client bytes.
    let nxt = w.nxt[0];
    w.send_raw(
        Side::Owner,
        nxt,
        1301,
        ACK | PSH,
        502,
        &Opts::default(),
        &bytes(1000, 4),
    );
    w.nxt[0] = nxt.wrapping_add(1000);
    assert_eq!(w.ready(), Ok(()));
    let k = w.key();
    let c = w.map.get_mut_conn(&k);
    let r = resume(c, RxPolicy::Deliver);
    assert_eq!((r.sent_from, r.sent_una, r.sent_end), (5001, 9001, 10001));
    assert_eq!((r.sent_offset, r.data_offset), (5000, 0));
    assert_eq!((r.recv_from, r.recv_end, r.recv_offset), (1001, 1501, 0));
    let r = resume(c, RxPolicy::Drop);
    assert_eq!((r.recv_from, r.recv_end, r.recv_offset), (1301, 1501, 300));
    assert_eq!(
        r.sent_offset, 5000,
        "the policy is about received data only"
    );
    // The client half-closes; the owner acknowledges its bytes and the FIN.
    let cnxt = w.nxt[1];
    w.send_raw(
        Side::Client,
        cnxt,
        10001,
        FIN | ACK,
        502,
        &Opts::default(),
        &[],
    );
    let onxt = w.nxt[0];
    w.send_raw(Side::Owner, onxt, 1502, ACK, 502, &Opts::default(), &[]);
    assert_eq!(w.state(), State::FinSeen);
    assert_eq!(w.ready(), Ok(()));
    let c = w.map.get_mut_conn(&k);
    assert_eq!(c.side(Side::Client).una, 1502, "past the FIN");
    let r = resume(c, RxPolicy::Drop);
    assert_eq!((r.recv_una, r.recv_from, r.recv_end), (1501, 1501, 1501));
    assert_eq!((r.sent_una, r.sent_end), (10001, 10001));
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
        ..t
    };
    let mut wr = Writer::new(&mut buf);
    plain.write(&mut wr).unwrap();
    let n = wr.len();
    let a = Attrs::new(&buf[..n]).next().unwrap().unwrap();
    assert_eq!(TakenInfo::parse(a.data), Ok(plain));
}

#[test]
fn keep_received_holds_client_bytes_an_application_has_not_read() {
    use permtcp_logic::decl::RxPolicy;
    use permtcp_logic::resume::resume;
    // The owner advertises 502 << 7 = 64256 bytes; the client sends 200000, all acknowledged.
    let run = |keep: u32| {
        let mut w = Wire::new(false);
        w.snoop.limits.keep_received = keep;
        w.handshake(1000, 5000, 7, 7);
        for part in bytes(200_000, 9).chunks(1448) {
            w.data(Side::Client, part);
            w.ack(Side::Owner, 502);
        }
        assert_eq!(w.ready(), Ok(()));
        let k = w.key();
        let c = w.map.get_mut_conn(&k);
        assert_eq!(c.side(Side::Client).una, 1001 + 200_000);
        resume(c, RxPolicy::Deliver).recv_offset
    };
    let one_window = run(0);
    assert!(
        one_window > 0 && 200_000 - one_window >= 502 << 7,
        "one window kept by default: resumes at {one_window}"
    );
    assert_eq!(run(256 << 10), 0, "everything kept with keep_received");
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

#[test]
fn a_failed_owners_connections_are_followed_but_none_starts() {
    let d = decls(&[[10, 0, 0, 1]], true, FailoverPolicy::SmallestId, &[]);
    let mut w = Wire::new(false);
    w.handshake(1000, 5000, 7, 7);
    w.data(Side::Client, &bytes(100, 1));
    // The owner fails: its binding becomes track-only.
    w.snoop.filter = Filter::compile_failed(d.iter(), &|n| n == OWNER_NODE);
    assert!(w.snoop.filter.snoops(&w.owner.addr, 80));
    assert!(!w.snoop.filter.starts(&w.owner.addr, 80));
    w.data(Side::Owner, &bytes(300, 2));
    let k = w.key();
    assert_eq!(w.map.get_mut_conn(&k).side(Side::Owner).bytes, 300);
    // A new connection on the binding is not mirrored.
    w.client.port = 40001;
    w.send_raw(
        Side::Client,
        7000,
        0,
        SYN,
        64240,
        &Opts::syn_full(1460, 7, 100),
        &[],
    );
    assert_eq!(w.map.0.len(), 1);
}
