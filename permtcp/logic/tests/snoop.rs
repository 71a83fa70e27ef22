// SPDX-License-Identifier: GPL-2.0

//! Host tests of the snooper (`snoop.rs`): the filter compiled from the declarations and the
//! fail-over policy, frames of other bindings or with bad checksums, the connection and byte
//! limits, and a failed owner's track-only bindings.

mod common;

use common::*;
use permtcp_logic::decl::FailoverPolicy;
use permtcp_logic::packet::flags::*;
use permtcp_logic::seqbuf::CHUNK;
use permtcp_logic::snoop::{Filter, Frame};
use permtcp_logic::track::{NotReady, Side};

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
    w.snoop
        .on_frame(&mut w.map, &mut w.alloc, Frame::of(&pkt), |_| false, 1);
    assert!(w.map.0.is_empty());
    assert_eq!(w.snoop.counters.bad_csum, 1);
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
