// SPDX-License-Identifier: GPL-2.0

//! Host tests of the snooper (`snoop.rs`): the filter compiled from the declarations and the
//! fail-over policy, frames of other bindings or with bad checksums, the connection and byte
//! limits, and a failed owner's track-only bindings.

mod common;

use common::*;
use permtcp_logic::decl::FailoverPolicy;
use permtcp_logic::packet::flags::*;
use permtcp_logic::seqbuf::{Budget, FrameRef, Payload, CHUNK};
use permtcp_logic::snoop::{Filter, FlowKey, FlowMap, Frame, Inserted, Limits, Outcome, Snooper};
use permtcp_logic::track::{Conn, NotReady, Side};
use std::cell::Cell;
use std::mem::MaybeUninit;
use std::sync::Arc;

#[test]
fn limits_on_connections_and_bytes() {
    let mut w = Wire::new(false);
    w.snoop.limits.max_conns = 2;
    for port in 0..3u16 {
        w.client.port = 50000 + port;
        w.client_syn();
    }
    // The third takes the place of the oldest incomplete handshake.
    assert_eq!(w.map.0.len(), 2);
    assert_eq!(w.snoop.counters.early_drops, 1);
    assert!(!w.map.0.keys().any(|k| k.client_port == 50000));
    // A table full of established connections refuses a new one.
    for port in 1..3u16 {
        w.client.port = 50000 + port;
        w.send_raw(
            Side::Owner,
            5000,
            1001,
            SYN | ACK,
            65160,
            &Opts::syn_full(1400, 7, 200),
            &[],
        );
        w.send_raw(Side::Client, 1001, 5001, ACK, 502, &Opts::default(), &[]);
        assert_eq!(w.ready(), Ok(()));
    }
    w.client.port = 50003;
    w.client_syn();
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
    w.client_syn();
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
    w.snoop
        .on_frame(&mut w.map, &mut w.alloc, Frame::of(&pkt), |_| false, 1);
    assert!(w.map.0.is_empty());
    assert_eq!(w.snoop.counters.bad_csum, 1);
}

#[test]
fn a_failed_owners_filter_has_the_same_bindings_another_owners_has_not() {
    let d = decls(&[[10, 0, 0, 1]], true, FailoverPolicy::SmallestId, &[]);
    let live = Filter::compile(d.iter());
    let failed = Filter::compile_failed(d.iter(), &|n| n == OWNER_NODE);
    assert!(!live.bindings.is_empty());
    assert!(live.same_bindings(&failed) && failed.same_bindings(&live));
    // Another address, or one binding fewer, snoops other connections.
    let other = decls(&[[10, 0, 0, 2]], true, FailoverPolicy::SmallestId, &[]);
    assert!(!live.same_bindings(&Filter::compile(other.iter())));
    let v4_only = decls(&[[10, 0, 0, 1]], false, FailoverPolicy::SmallestId, &[]);
    assert!(!live.same_bindings(&Filter::compile(v4_only.iter())));
    assert!(!live.same_bindings(&Filter::default()));
}

#[test]
fn what_the_filter_says_of_a_binding_in_one_pass() {
    use permtcp_logic::packet::Addr;
    use permtcp_logic::snoop::Bound;
    let d = decls(&[[10, 0, 0, 1]], true, FailoverPolicy::SmallestId, &[]);
    let owner = Addr::v4([10, 0, 0, 1]);
    let live = Filter::compile(d.iter());
    let failed = Filter::compile_failed(d.iter(), &|n| n == OWNER_NODE);
    for (f, starts) in [(&live, true), (&failed, false)] {
        for port in [80, 85, 90] {
            let b = f.bound(&owner, port);
            assert_eq!(
                b,
                Some(Bound {
                    owner: OWNER_NODE,
                    starts
                })
            );
            // The same answers as the separate questions.
            assert_eq!(b.is_some(), f.snoops(&owner, port));
            assert_eq!(starts, f.starts(&owner, port));
        }
        // Outside the range, another address, the local node's own binding.
        assert_eq!(f.bound(&owner, 79), None);
        assert_eq!(f.bound(&owner, 91), None);
        assert_eq!(f.bound(&Addr::v4([10, 0, 0, 3]), 80), None);
        assert_eq!(f.bound(&Addr::v4([10, 0, 0, 2]), 80), None);
    }
    // A segment's owner end is found whichever way it travels.
    let (o, c) = (v4([10, 0, 0, 1], 85), v4([10, 0, 0, 100], 40000));
    for (src, dst, from) in [(c, o, Side::Client), (o, c, Side::Owner)] {
        let pkt = frame(src, dst, 1, 1, ACK, 100, &Opts::default(), &[]);
        let seg = permtcp_logic::packet::parse(&pkt, pkt.len()).unwrap();
        let (side, key, b) = failed.classify_bound(&seg).unwrap();
        assert_eq!((side, key.owner_port, key.client_port), (from, 85, 40000));
        assert!(!b.starts);
        assert_eq!(failed.classify(&seg), Some((side, key)));
    }
}

#[test]
fn the_filters_port_span_rules_out_only_ports_of_no_binding() {
    use permtcp_logic::decl::PortRange;
    use permtcp_logic::packet::Addr;
    // Two owners' ranges far apart, on two addresses: the span the filter checks first
    // covers 80-9010, with a gap inside it that only the bindings themselves rule out.
    let mut d = decls(&[[10, 0, 0, 1]], true, FailoverPolicy::SmallestId, &[]);
    d[0].ranges
        .push(PortRange {
            lo: 9000,
            hi: 9010,
            ..Default::default()
        })
        .unwrap();
    let f = Filter::compile(d.iter());
    assert_eq!(f.bindings.len(), 4);
    for addr in [
        Addr::v4([10, 0, 0, 1]),
        v6(1, 0).addr,
        Addr::v4([10, 0, 0, 2]),
    ] {
        for port in 0..=u16::MAX {
            assert_eq!(
                f.bound(&addr, port).is_some(),
                f.snoops(&addr, port),
                "{addr:?} port {port}"
            );
        }
    }
    let owner = Addr::v4([10, 0, 0, 1]);
    assert!(f.bound(&owner, 9010).is_some() && f.bound(&owner, 80).is_some());
    assert!(f.bound(&owner, 79).is_none() && f.bound(&owner, 91).is_none());
    assert!(f.bound(&owner, 9011).is_none());
    assert!(Filter::default().bound(&owner, 0).is_none());
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

#[test]
fn a_failed_owners_client_segments_are_for_the_node_serving_them() {
    let d = decls(&[[10, 0, 0, 1]], true, FailoverPolicy::SmallestId, &[]);
    let mut w = Wire::new(false);
    w.handshake(1000, 5000, 7, 7);
    let k = w.key();
    let feed = |w: &mut Wire, from: Side, fl: u8| {
        let (s, d) = w.ends(from);
        let pkt = frame(s, d, 1001, 5001, fl, 502, &Opts::default(), &[]);
        w.snoop
            .on_frame(&mut w.map, &mut w.alloc, Frame::of(&pkt), |_| true, 1)
    };
    // While the owner lives its connections are only tracked: nobody else serves them.
    assert_eq!(feed(&mut w, Side::Client, ACK), Outcome::Tracked);
    w.snoop.filter = Filter::compile_failed(d.iter(), &|n| n == OWNER_NODE);
    // Once it failed, the client's segments may be for a peer that took the connection over
    // (mirrored here or not)...
    assert_eq!(feed(&mut w, Side::Client, ACK), Outcome::ToFailed(k));
    w.client.port = 40001;
    let other = w.key();
    assert_eq!(
        feed(&mut w, Side::Client, ACK | PSH),
        Outcome::ToFailed(other)
    );
    // ...but not a new connection's SYN, nor what the failed owner's address sends.
    assert_eq!(feed(&mut w, Side::Client, SYN), Outcome::Tracked);
    assert_eq!(feed(&mut w, Side::Owner, ACK), Outcome::Tracked);
    // Other bindings are not the snooper's business.
    w.owner.port = 443;
    assert_eq!(feed(&mut w, Side::Client, ACK), Outcome::Ignored);
}

/// A payload that records whether the snooper said the frame goes on to this host's stack
/// ([`Payload::goes_on`]), and whether a chunk looked at the frame to hold it before that.
struct Onward {
    frame: HeldFrame,
    went_on: Cell<bool>,
    looked_before: Cell<usize>,
}

impl Payload for Onward {
    fn copy(&self, offset: u32, out: &mut [MaybeUninit<u8>]) -> bool {
        self.frame.copy(offset, out)
    }
    fn frame(&self) -> Option<FrameRef<'_>> {
        if !self.went_on.get() {
            self.looked_before.set(self.looked_before.get() + 1);
        }
        self.frame.frame()
    }
    fn goes_on(&self) {
        self.went_on.set(true);
    }
}

#[test]
fn a_frame_that_may_go_on_to_the_stack_is_said_so_before_it_is_held() {
    let d = decls(&[[10, 0, 0, 1]], true, FailoverPolicy::SmallestId, &[]);
    let mut w = Wire::new(false);
    w.handshake(1000, 5000, 7, 7);
    let payload = bytes(1448, 9);
    let send = |w: &mut Wire, seq: u32| {
        let (s, d) = w.ends(Side::Client);
        let pkt = frame(s, d, seq, 5001, ACK | PSH, 502, &Opts::default(), &payload);
        let held = Onward {
            frame: HeldFrame {
                truesize: 2048,
                payload_len: pkt.len() as u32,
                bytes: Arc::new(pkt.clone()),
            },
            went_on: Cell::new(false),
            looked_before: Cell::new(0),
        };
        let f = Frame {
            hdr: &pkt,
            l3_len: pkt.len(),
            gso: false,
            payload: &held,
            src_mac: None,
        };
        let out = w.snoop.on_frame(&mut w.map, &mut w.alloc, f, |_| true, 1);
        (out, held.went_on.get(), held.looked_before.get() > 0)
    };
    let holds = w.alloc.inner.holds;
    // While the owner lives, its client's full-size segment is held (a view) and stays with
    // the snooper: the module may keep the frame itself.
    assert_eq!(send(&mut w, 1001), (Outcome::Tracked, false, true));
    assert_eq!(w.alloc.inner.holds, holds + 1);
    // Once it failed, the next one may be for this host: said before anything holds it
    // (the module then holds a clone), and it is still retained.
    w.snoop.filter = Filter::compile_failed(d.iter(), &|n| n == OWNER_NODE);
    assert_eq!(
        send(&mut w, 1001 + 1448),
        (Outcome::ToFailed(w.key()), true, false)
    );
    assert_eq!(w.alloc.inner.holds, holds + 2);
}

/// A connection between the client's port `port` and the owner, ready, with `owner_bytes`
/// of owner data sent and acknowledged with a window of `win` << `ws` bytes.
fn connection(w: &mut Wire, port: u16, ws: u8, win: u16, owner_bytes: usize) {
    w.client.port = port;
    w.handshake(1000, 5000, ws, 7);
    for part in bytes(owner_bytes, 3).chunks(16 * 1448) {
        w.data(Side::Owner, part);
        w.ack(Side::Client, win);
    }
}

#[test]
fn a_syn_flood_neither_blocks_new_connections_nor_stays() {
    let mut w = Wire::new(false);
    let real = w.client;
    // 10,000 spoofed SYNs from an address that never answers.
    w.client.addr = v4([10, 0, 0, 200], 0).addr;
    for i in 0..10_000u32 {
        w.client.port = 10_000 + i as u16;
        w.send_raw(
            Side::Client,
            i.wrapping_mul(7919),
            0,
            SYN,
            64240,
            &Opts::syn_full(1460, 7, 100),
            &[],
        );
    }
    let after_flood = w.map.0.len();
    println!(
        "after 10,000 SYNs: {after_flood} entries, {} early drops, {} refused",
        w.snoop.counters.early_drops, w.snoop.counters.conn_limit
    );
    assert!(after_flood <= Limits::default().max_conns as usize);
    // A real client connecting now is mirrored: the oldest embryonic entries make room.
    w.client = real;
    w.handshake(1000, 5000, 7, 7);
    assert_eq!(w.ready(), Ok(()));
    // Once the handshake timeout has passed, only the real connection is left.
    let now = w.now + u64::from(Limits::default().syn_timeout_ms);
    w.snoop.expire(&mut w.map, &mut w.alloc, now);
    println!(
        "after the handshake timeout: {} entries, {} timed out",
        w.map.0.len(),
        w.snoop.counters.syn_timeouts
    );
    assert_eq!(w.map.0.len(), 1);
    assert_eq!(w.ready(), Ok(()));
}

#[test]
fn vanished_clients_expire_after_the_idle_timeout() {
    vanished_client_expires(1000, true);
}

/// Idle times are taken on the low 32 bits of the millisecond clock: a connection whose
/// idle timeout runs across the wrap (2^32 ms, 49 days of uptime), or that starts at it or
/// past 2^31, goes on time, not early and not never.
#[test]
fn idle_timeouts_run_across_the_32_bit_clock_wrap() {
    vanished_client_expires(1 << 32, false);
    vanished_client_expires(3 << 30, false);
    vanished_client_expires((1 << 32) - 1000, false);
}

/// With `ts`, the segments carry timestamps; a clock started near the wrap needs none: the
/// harness derives TSvals from its clock, and PAWS would reject them against the SYNs' fixed
/// ones.
fn vanished_client_expires(start_ms: u64, ts: bool) {
    let mut w = Wire::new(false);
    w.now = start_ms;
    w.ts = ts;
    connection(&mut w, 40000, 7, 502, 100_000);
    let idle = u64::from(Limits::default().idle_timeout_ms);
    let last = w.now;
    w.snoop.expire(&mut w.map, &mut w.alloc, last + idle - 1);
    assert_eq!(w.map.0.len(), 1);
    w.snoop.expire(&mut w.map, &mut w.alloc, last + idle);
    assert!(w.map.0.is_empty());
    assert_eq!(w.snoop.counters.idle_timeouts, 1);
    assert_eq!(w.alloc.used, 0, "every byte returned");
    assert_eq!(w.alloc.inner.live, 0);
}

#[test]
fn timeouts_are_settable() {
    let mut w = Wire::new(false);
    w.snoop.limits.syn_timeout_ms = 100;
    w.snoop.limits.idle_timeout_ms = 1000;
    w.send_raw(
        Side::Client,
        1,
        0,
        SYN,
        64240,
        &Opts::syn_full(1460, 7, 1),
        &[],
    );
    w.client.port = 40001;
    w.handshake(1000, 5000, 7, 7);
    let now = w.now;
    w.snoop.expire(&mut w.map, &mut w.alloc, now + 100);
    assert_eq!(w.map.0.len(), 1, "the handshake that never completed went");
    w.snoop.expire(&mut w.map, &mut w.alloc, now + 1000);
    assert!(w.map.0.is_empty());
}

#[test]
fn big_windows_do_not_starve_an_ordinary_connection() {
    let mut w = Wire::new(false);
    // Eight clients advertise 16 MiB windows and take 8 MiB each, all acknowledged.
    for port in 0..8u16 {
        connection(&mut w, 41000 + port, 8, 65535, 8 << 20);
    }
    let held = w.alloc.used;
    println!(
        "8 big-window connections hold {held} bytes of {}",
        w.alloc.max
    );
    // An ordinary connection with unacknowledged data still gets it stored.
    w.client.port = 42000;
    w.handshake(1000, 5000, 7, 7);
    w.data(Side::Owner, &bytes(100_000, 4));
    assert_eq!(w.ready(), Ok(()));
    for (k, c) in w.map.0.iter() {
        assert!(
            u64::from(c.mem) <= Limits::default().max_conn_bytes,
            "{k:?} holds {} bytes",
            c.mem
        );
    }
}

#[test]
fn every_byte_is_counted_slot_tables_and_entries_too() {
    let mut w = Wire::new(false);
    connection(&mut w, 40000, 7, 502, 300_000);
    let k = w.key();
    let c = w.map.get_mut_conn(&k);
    let chunks = (c.half[0].data.chunks() + c.half[1].data.chunks()) as u64;
    assert!(
        w.alloc.used > chunks * CHUNK as u64,
        "slot tables and the entry are counted"
    );
    assert_eq!(w.alloc.used, u64::from(c.mem));
    let mut c = w.map.0.remove(&k).unwrap();
    c.release(&mut w.alloc);
    assert_eq!(w.alloc.used, 0);
}

#[test]
fn unacknowledged_data_takes_precedence_within_a_connections_share() {
    let mut w = Wire::new(false);
    w.snoop.limits.max_conn_bytes = 1 << 20;
    // Acknowledged data kept for a 16 MiB window fills the share ...
    connection(&mut w, 40000, 8, 65535, 2 << 20);
    // ... and gives way to new, unacknowledged data.
    w.data(Side::Owner, &bytes(200_000, 5));
    assert_eq!(w.ready(), Ok(()));
    let k = w.key();
    assert!(w.map.get_mut_conn(&k).mem <= 1 << 20);
}

#[test]
fn only_the_defaults_or_less_are_within_the_defaults() {
    let d = permtcp_logic::snoop::Limits::default();
    assert!(d.within_defaults());
    let less = permtcp_logic::snoop::Limits {
        max_conns: 10,
        max_bytes: 1 << 20,
        ..d
    };
    assert!(less.within_defaults());
    for more in [
        permtcp_logic::snoop::Limits {
            max_conns: d.max_conns + 1,
            ..d
        },
        permtcp_logic::snoop::Limits {
            max_bytes: d.max_bytes + 1,
            ..d
        },
        permtcp_logic::snoop::Limits {
            idle_timeout_ms: d.idle_timeout_ms + 1,
            ..d
        },
    ] {
        assert!(!more.within_defaults());
    }
}

#[test]
fn after_a_rejoin_a_second_takeover_leaves_what_other_nodes_serve() {
    use permtcp_logic::snoop::{pick, Pick};
    let d = decls(&[[10, 0, 0, 1]], true, FailoverPolicy::SmallestId, &[]);
    let mut w = Wire::new(false);
    w.handshake(1000, 5000, 7, 7);
    w.data(Side::Client, &bytes(100, 1));
    w.data(Side::Owner, &bytes(200, 2));
    let old = w.key();
    assert_eq!(w.ready(), Ok(()));
    // The first takeover: the policy ranks this node first (taken) or another (followed from
    // then on); other bindings' connections are not concerned.
    let c = w.map.get_mut_conn(&old);
    assert_eq!(pick(c, Some(true)), Pick::Take);
    assert_eq!(pick(c, None), Pick::Leave);
    assert_eq!(pick(c, Some(false)), Pick::Other);
    c.followed = true;
    w.snoop.filter = Filter::compile_failed(d.iter(), &|n| n == OWNER_NODE);
    // Followed while another node serves it.
    w.data(Side::Owner, &bytes(50, 3));
    // The owner rejoins: its binding is live again, a new connection is mirrored...
    w.snoop.filter = Filter::compile(d.iter());
    w.data(Side::Client, &bytes(10, 4));
    assert!(w.map.get_mut_conn(&old).followed, "still served elsewhere");
    assert_eq!(w.map.get_mut_conn(&old).side(Side::Owner).bytes, 250);
    w.client.port = 40001;
    w.handshake(7000, 9000, 7, 7);
    w.data(Side::Client, &bytes(20, 5));
    let new = w.key();
    assert_eq!(w.ready(), Ok(()));
    // ...and when it fails again, this node takes the new connection, never the old one
    // (ready, but another node answers for it), whichever rank the policy gives it.
    assert_eq!(pick(w.map.get_mut_conn(&new), Some(true)), Pick::Take);
    let c = w.map.get_mut_conn(&old);
    assert_eq!(c.readiness(), Ok(()));
    assert_eq!(pick(c, Some(true)), Pick::Leave);
    assert_eq!(pick(c, Some(false)), Pick::Leave);
    // A connection over (TIME-WAIT) is never taken either.
    let c = w.map.get_mut_conn(&new);
    c.state = permtcp_logic::track::State::TimeWait;
    assert_eq!(pick(c, Some(true)), Pick::Leave);
}

#[test]
fn a_syn_flood_does_not_evict_connections_served_elsewhere() {
    let mut w = Wire::new(false);
    w.snoop.limits.max_conns = 4;
    // Two connections seen mid-stream (not from their SYN), one of them followed: another
    // node serves it since a takeover of its owner.
    for port in [50000u16, 50001] {
        w.client.port = port;
        w.send_raw(
            Side::Client,
            7000,
            9000,
            ACK,
            502,
            &Opts::default(),
            &bytes(10, 1),
        );
    }
    let followed = FlowKey {
        client_port: 50001,
        ..w.key()
    };
    w.map.get_mut_conn(&followed).followed = true;
    // A flood of SYNs: the table stays full, the oldest droppable entries make room.
    for port in 0..20u16 {
        w.client.port = 40000 + port;
        w.client_syn();
    }
    assert!(w.snoop.counters.early_drops > 0);
    assert!(!w.map.0.keys().any(|k| k.client_port == 50000), "dropped");
    assert!(w.map.0.contains_key(&followed), "the followed entry stays");
}

/// A full table drops the batch of its longest idle handshakes (a 64th of the table: two of
/// 128 here), and of handshakes idle exactly as long as the batch's shortest, only as many
/// as the batch holds: the first ones in key order.
#[test]
fn a_full_table_drops_its_longest_idle_handshakes_and_no_more() {
    let mut w = Wire::new(false);
    w.snoop.limits.max_conns = 128;
    let syn = |w: &mut Wire, port: u16| {
        w.client.port = port;
        w.client_syn();
    };
    // Port 30000 at 1 ms, the longest idle; 30001-30003 together at 11 ms; the rest later.
    w.now = 0;
    syn(&mut w, 30000);
    for p in 30001..30004 {
        w.now = 10;
        syn(&mut w, p);
    }
    w.now = 20;
    for p in 30004..30128 {
        syn(&mut w, p);
    }
    assert_eq!(w.map.0.len(), 128);
    // (Each frame fed moves the clock on by 1 ms.)
    w.now = 1000;
    syn(&mut w, 40000);
    assert_eq!(w.snoop.counters.early_drops, 2);
    assert_eq!(w.map.0.len(), 127);
    let has = |w: &Wire, p: u16| w.map.0.keys().any(|k| k.client_port == p);
    let gone: Vec<u16> = (30000..30128).filter(|&p| !has(&w, p)).collect();
    assert!(!has(&w, 30000), "the longest idle goes: {gone:?}");
    assert!(
        !has(&w, 30001),
        "then the first of those idle as long as the batch's last"
    );
    assert!(has(&w, 30002) && has(&w, 30003), "no more than the batch");
    assert!(has(&w, 30004) && has(&w, 40000));
}

#[test]
fn the_node_sending_a_connections_owner_side_frames_serves_it() {
    use permtcp_logic::snoop::{pick, Pick};
    let (owner_mac, my_mac, third_mac) =
        ([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2], [2, 0, 0, 0, 0, 3]);
    let mut d = decls(&[[10, 0, 0, 1]], true, FailoverPolicy::SmallestId, &[]);
    d[0].macs.push(owner_mac).unwrap();
    d[1].macs.push(my_mac).unwrap();
    let mut third = d[1];
    (third.node_id, third.local) = (3, false);
    third.macs = Default::default();
    third.macs.push(third_mac).unwrap();
    d.push(third);
    let mut w = Wire::new(false);
    w.snoop.filter = Filter::compile(d.iter());
    assert_eq!(w.snoop.filter.node_of_mac(&third_mac), Some(3));
    w.src_mac = Some(owner_mac);
    w.handshake(1000, 5000, 7, 7);
    w.data(Side::Client, &bytes(100, 1));
    w.data(Side::Owner, &bytes(200, 2));
    let k = w.key();
    assert!(!w.map.get_mut_conn(&k).followed);
    // Handed off to node 3 (or taken over by it): its frames now come from node 3's MAC.
    // This node follows the connection; a takeover of the owner would leave it.
    w.src_mac = Some(third_mac);
    w.data(Side::Owner, &bytes(300, 3));
    let c = w.map.get_mut_conn(&k);
    assert!(c.followed);
    assert_eq!(c.readiness(), Ok(()));
    assert_eq!(pick(c, Some(true)), Pick::Leave);
    // The client's frames say nothing of who serves; nor does a MAC nobody declared (a
    // router's, a forger's).
    w.data(Side::Client, &bytes(10, 4));
    w.src_mac = Some([2, 0, 0, 0, 0, 9]);
    w.data(Side::Owner, &bytes(10, 5));
    w.src_mac = None;
    w.data(Side::Owner, &bytes(10, 6));
    assert!(w.map.get_mut_conn(&k).followed);
    // A forged segment from the owner's MAC out of the window moves nothing.
    w.src_mac = Some(owner_mac);
    let (s, dst) = w.ends(Side::Owner);
    let seq = w.nxt[0].wrapping_add(1 << 30);
    let pkt = frame(s, dst, seq, w.rcv[0], ACK, 502, &Opts::default(), &[1]);
    w.feed(&pkt);
    assert!(w.snoop.counters.invalid > 0);
    assert!(w.map.get_mut_conn(&k).followed);
    // Handed back: the owner's MAC again, and the connection is its own again.
    w.src_mac = Some(owner_mac);
    w.ack(Side::Owner, 502);
    let c = w.map.get_mut_conn(&k);
    assert!(!c.followed);
    assert_eq!(pick(c, Some(true)), Pick::Take);
}

/// A dump cursor keeps the last key sent in five words: every key comes back as it was, in
/// either family, and words that hold none (a dump's first round: all zeroes) give none.
#[test]
fn flow_keys_round_trip_through_dump_cursor_words() {
    use permtcp_logic::packet::Addr;
    let keys = [
        FlowKey::default(),
        FlowKey {
            owner_addr: Addr::v4([10, 0, 0, 1]),
            client_addr: Addr::v4([10, 0, 0, 100]),
            owner_port: 80,
            client_port: 65535,
        },
        FlowKey {
            owner_addr: Addr([0xfd; 16]),
            client_addr: Addr(core::array::from_fn(|i| i as u8)),
            owner_port: 65535,
            client_port: 0,
        },
    ];
    for k in keys {
        assert_eq!(FlowKey::from_words(&k.to_words()), Some(k));
    }
    assert_eq!(FlowKey::from_words(&[0; 5]), None);
    assert_eq!(FlowKey::from_words(&[3 << 32, 0, 0, 0, 0]), None);
}

/// Keys spread evenly over the shards, differently for different seeds.
#[test]
fn keys_spread_over_shards() {
    use permtcp_logic::snoop::{shard_count, FlowKey, MAX_SHARDS};
    assert_eq!(shard_count(4096), 512);
    assert_eq!(shard_count(100_000), MAX_SHARDS);
    assert_eq!(shard_count(1), 64);
    let n = 512;
    let key = |i: u32| FlowKey {
        owner_addr: permtcp_logic::packet::Addr::v4([10, 0, 0, 1]),
        client_addr: permtcp_logic::packet::Addr::v4([10, 0, (i >> 16) as u8, 100]),
        owner_port: 80,
        client_port: i as u16,
    };
    for seed in [0u64, 0x1234_5678_9abc_def0] {
        let mut per = vec![0u32; n];
        for i in 0..(n as u32 * 64) {
            per[key(i).shard(seed, n)] += 1;
        }
        let (lo, hi) = (per.iter().min().unwrap(), per.iter().max().unwrap());
        // 64 expected per shard: a uniform hash stays well within [32, 112].
        assert!(*lo >= 32 && *hi <= 112, "uneven: {lo}..{hi}");
    }
    // Clients that differ in one byte of their address only, wherever that byte is (each
    // byte lies at another place of another word).
    for byte in 0..16 {
        let key = |i: u32| {
            let mut a = [0x20u8, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
            a[byte] = i as u8;
            let mut k = key(0);
            k.client_addr = permtcp_logic::packet::Addr(a);
            k
        };
        let mut per = vec![0u32; 64];
        for i in 0..256 {
            per[key(i).shard(0x1234_5678_9abc_def0, 64)] += 1;
        }
        // 4 expected per shard out of 64: none takes more than 16.
        let hi = per.iter().max().unwrap();
        assert!(*hi <= 16, "byte {byte}: {hi} of 256 in one shard");
    }
    let moved = (0..1000)
        .filter(|&i| key(i).shard(1, n) != key(i).shard(2, n))
        .count();
    assert!(
        moved > 900,
        "the seed changes little: {moved} of 1000 moved"
    );
}

/// A table whose allocations all fail (memory short), with `reserve` entries allocated ahead
/// for SYNs, as the module's table keeps them.
struct ShortMap {
    map: Map,
    reserve: usize,
}

impl FlowMap<A> for ShortMap {
    fn get_mut(&mut self, k: &FlowKey) -> Option<&mut Conn<A>> {
        self.map.get_mut(k)
    }
    fn insert(&mut self, _: FlowKey, _: Conn<A>) -> bool {
        false
    }
    fn insert_syn(&mut self, k: FlowKey, c: Conn<A>) -> Inserted {
        if self.reserve == 0 {
            return Inserted::No;
        }
        self.reserve -= 1;
        self.map.insert(k, c);
        Inserted::Reserved
    }
    fn remove(&mut self, k: &FlowKey) -> Option<Conn<A>> {
        self.map.remove(k)
    }
    fn len(&self) -> usize {
        self.map.len()
    }
    fn retain(&mut self, f: impl FnMut(&FlowKey, &mut Conn<A>) -> bool) {
        self.map.retain(f)
    }
}

#[test]
fn a_syn_takes_an_entry_allocated_ahead_when_memory_is_short() {
    let d = decls(&[[10, 0, 0, 1]], true, FailoverPolicy::SmallestId, &[]);
    let mut s = Snooper::new(Filter::compile(d.iter()), Limits::default());
    let mut map = ShortMap {
        map: Map::default(),
        reserve: 1,
    };
    let mut alloc = Budget::new(Heap::default(), 64 << 20);
    let owner = v4([10, 0, 0, 1], 80);
    let ts = |v| Opts {
        ts: Some((v, v)),
        ..Default::default()
    };
    // Two connections opened while memory is short: the handshake, then a segment of data.
    let mut feed = |s: &mut Snooper, map: &mut ShortMap, client: End| {
        let frames = [
            frame(
                client,
                owner,
                1000,
                0,
                SYN,
                64240,
                &Opts::syn_full(1460, 7, 1),
                &[],
            ),
            frame(
                owner,
                client,
                5000,
                1001,
                SYN | ACK,
                65160,
                &Opts::syn_full(1400, 7, 2),
                &[],
            ),
            frame(client, owner, 1001, 5001, ACK, 502, &ts(3), &[]),
            frame(client, owner, 1001, 5001, ACK | PSH, 502, &ts(4), b"query"),
        ];
        for f in &frames {
            s.on_frame(map, &mut alloc, Frame::of(f), |_| true, 1);
        }
    };
    let first = v4([10, 0, 0, 100], 40000);
    feed(&mut s, &mut map, first);
    // The first SYN got the entry allocated ahead: the connection is tracked from its SYN
    // (its window scale known), ready to take over with the client's request.
    let k = FlowKey {
        owner_addr: owner.addr,
        owner_port: 80,
        client_addr: first.addr,
        client_port: 40000,
    };
    let c = map.map.get_mut_conn(&k);
    assert_eq!(c.readiness(), Ok(()));
    assert_eq!(s.counters.conns_synced, 1);
    assert_eq!(s.counters.syn_reserved, 1);
    // The second finds the reserve empty: its SYN is counted as not tracked, and no later
    // segment opens it from mid-stream either (memory is still short).
    let second = v4([10, 0, 0, 100], 40001);
    feed(&mut s, &mut map, second);
    assert_eq!(map.map.len(), 1);
    assert_eq!(s.counters.conns_synced, 1);
    assert_eq!(s.counters.syn_reserved, 1);
    assert_eq!(s.counters.conns_unsynced, 0);
    assert!(s.counters.conn_limit >= 1);
    // With memory back, a connection first seen mid-stream is tracked (not from its SYN),
    // through the ordinary insertion: the reserve is for SYNs only.
    let mut map = ShortMap {
        map: Map::default(),
        reserve: 1,
    };
    let third = v4([10, 0, 0, 100], 40002);
    let f = frame(third, owner, 1001, 5001, ACK, 502, &ts(5), &[]);
    s.on_frame(&mut map, &mut alloc, Frame::of(&f), |_| true, 1);
    assert_eq!(
        map.reserve, 1,
        "a mid-stream opening never takes the SYNs' reserve"
    );
}
