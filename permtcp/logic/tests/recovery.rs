// SPDX-License-Identifier: GPL-2.0

//! Host tests of owner recovery's following (`recovery.rs`): a client's SYN that would reuse
//! a connection a peer serves is refused, the service's reset ends it, both FINs end it after
//! the TIME-WAIT time, and other connections are not concerned.

mod common;

use common::*;
use permtcp_logic::packet::flags::*;
use permtcp_logic::packet::parse;
use permtcp_logic::recovery::{observe, Handed, Seen};
use permtcp_logic::track::Side;

/// The segment `from` sends on `w`'s connection, parsed.
fn seg(w: &Wire, from: Side, fl: u8) -> permtcp_logic::packet::Segment {
    let (s, d) = w.ends(from);
    let pkt = frame(s, d, 1000, 5000, fl, 502, &Opts::default(), &[]);
    parse(&pkt, pkt.len()).unwrap()
}

#[test]
fn a_handed_back_connection_is_followed_until_it_ends() {
    let mut w = Wire::new(false);
    let mut list = vec![Handed::new(w.key(), 2)];
    // A client's SYN reusing it is refused; its data, ACKs and the service's are not.
    assert_eq!(
        observe(&mut list, &seg(&w, Side::Client, SYN), 0),
        Seen::Refuse
    );
    assert_eq!(
        observe(&mut list, &seg(&w, Side::Client, ACK | PSH), 0),
        Seen::Nothing
    );
    assert_eq!(
        observe(&mut list, &seg(&w, Side::Owner, ACK), 0),
        Seen::Nothing
    );
    // A client's reset is the peer socket's to check: it ends nothing here.
    assert_eq!(
        observe(&mut list, &seg(&w, Side::Client, RST), 0),
        Seen::Nothing
    );
    // Both FINs: the connection ends after the TIME-WAIT time, refusing SYNs until then.
    assert_eq!(
        observe(&mut list, &seg(&w, Side::Owner, FIN | ACK), 10),
        Seen::Nothing
    );
    assert!(!list[0].over(100_000));
    assert_eq!(
        observe(&mut list, &seg(&w, Side::Client, FIN | ACK), 20),
        Seen::Nothing
    );
    assert!(!list[0].over(20 + 60_000));
    assert_eq!(
        observe(&mut list, &seg(&w, Side::Client, SYN), 30),
        Seen::Refuse
    );
    assert!(list[0].over(20 + 65_000));
    assert_eq!(
        observe(&mut list, &seg(&w, Side::Client, SYN), 20 + 65_000),
        Seen::Nothing
    );
    // The service's reset ends it at once.
    let mut list = vec![Handed::new(w.key(), 2)];
    assert_eq!(
        observe(&mut list, &seg(&w, Side::Owner, RST), 0),
        Seen::Ended(0)
    );
    // Another connection (another client port) is not concerned.
    w.client.port += 1;
    assert_eq!(
        observe(&mut list, &seg(&w, Side::Client, SYN), 0),
        Seen::Nothing
    );
    assert_eq!(
        observe(&mut list, &seg(&w, Side::Owner, RST), 0),
        Seen::Nothing
    );
}

#[test]
fn the_lookup_finds_any_entry_of_a_sorted_list() {
    let mut w = Wire::new(false);
    let mut list = Vec::new();
    for port in 0..50u16 {
        w.client.port = 40000 + port * 7;
        list.push(Handed::new(w.key(), 3));
    }
    list.sort_by_key(|a| a.key);
    for port in 0..50u16 {
        w.client.port = 40000 + port * 7;
        assert_eq!(
            observe(&mut list, &seg(&w, Side::Client, SYN), 0),
            Seen::Refuse
        );
        w.client.port += 1;
        assert_eq!(
            observe(&mut list, &seg(&w, Side::Client, SYN), 0),
            Seen::Nothing
        );
    }
}
