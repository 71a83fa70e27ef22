// SPDX-License-Identifier: GPL-2.0

//! Host tests of the fail-over policy.

use permtcp_logic::decl::{ArpPolicy, Declaration, FailoverPolicy, PortRange};
use permtcp_logic::packet::Addr;
use permtcp_logic::policy::*;
use permtcp_logic::uapi::proto;

fn node(id: u32, addr: [u8; 4], ranges: &[(u16, u16, &[u32])]) -> Declaration {
    let mut d = Declaration {
        node_id: id,
        proto: proto::TCP,
        ..Default::default()
    };
    d.addrs4.push(addr).unwrap();
    for &(lo, hi, peers) in ranges {
        let mut r = PortRange {
            lo,
            hi,
            ..Default::default()
        };
        for &p in peers {
            r.peers.push(p).unwrap();
        }
        d.ranges.push(r).unwrap();
    }
    if ranges.iter().any(|r| !r.2.is_empty()) {
        d.failover = FailoverPolicy::PeerList;
    }
    d
}

fn cluster() -> Vec<Declaration> {
    vec![
        node(5, [10, 0, 0, 5], &[(80, 80, &[])]),
        node(3, [10, 0, 0, 3], &[(80, 80, &[])]),
        node(9, [10, 0, 0, 9], &[(80, 80, &[])]),
        node(1, [10, 0, 0, 1], &[(80, 80, &[]), (8000, 8999, &[])]),
    ]
}

#[test]
fn smallest_live_id_takes_over() {
    let c = cluster();
    let owner = owner_of(c.iter(), &Addr::v4([10, 0, 0, 1]), 8080).unwrap();
    assert_eq!(owner.node_id, 1);
    let none = |_| false;
    let order = takeover_order(c.iter(), owner, 8080, &none);
    assert_eq!(order.as_slice(), &[3, 5, 9]);
    // Node 3 failed too: 5 is next.
    let three = |n| n == 3;
    assert_eq!(
        takeover_order(c.iter(), owner, 80, &three).as_slice(),
        &[5, 9]
    );
    assert_eq!(next_after(&order, 3), Some(5));
    assert_eq!(
        next_after(&order, 9),
        None,
        "last peer: the connection is reset"
    );
    assert_eq!(next_after(&order, 42), None);
    assert!(owner_of(c.iter(), &Addr::v4([10, 0, 0, 1]), 443).is_none());
}

#[test]
fn per_range_peer_lists() {
    let mut c = cluster();
    c[3] = node(1, [10, 0, 0, 1], &[(80, 80, &[9, 5]), (8000, 8999, &[3])]);
    let owner = &c[3];
    let none = |_| false;
    assert_eq!(
        takeover_order(c.iter(), owner, 80, &none).as_slice(),
        &[9, 5]
    );
    assert_eq!(
        takeover_order(c.iter(), owner, 8500, &none).as_slice(),
        &[3]
    );
    let nine = |n| n == 9;
    assert_eq!(takeover_order(c.iter(), owner, 80, &nine).as_slice(), &[5]);
}

#[test]
fn arp_ownership() {
    let mut c = cluster();
    let addr = Addr::v4([10, 0, 0, 1]);
    let none = |_| false;
    assert_eq!(
        arp_owner(c.iter(), &c[3], &addr, &none),
        Some(3),
        "follows the fail-over"
    );
    c[3].arp = ArpPolicy::Fixed(9);
    assert_eq!(arp_owner(c.iter(), &c[3], &addr, &none), Some(9));
    let nine = |n| n == 9;
    assert_eq!(
        arp_owner(c.iter(), &c[3], &addr, &nine),
        Some(3),
        "fixed node failed: smallest"
    );
    c[3] = node(1, [10, 0, 0, 1], &[(80, 80, &[9, 5])]);
    assert_eq!(
        arp_owner(c.iter(), &c[3], &addr, &none),
        Some(9),
        "first range's first peer"
    );
    c[3].arp = ArpPolicy::SmallestId;
    assert_eq!(arp_owner(c.iter(), &c[3], &addr, &none), Some(3));
    assert_eq!(
        arp_owner(c.iter(), &c[3], &Addr::v4([10, 0, 0, 7]), &none),
        None
    );
}

#[test]
fn every_peer_holds_the_address_one_answers_for_it() {
    let mut c = cluster();
    c[3] = node(1, [10, 0, 0, 1], &[(80, 80, &[9, 5]), (8000, 8999, &[3])]);
    let addr = Addr::v4([10, 0, 0, 1]);
    let none = |_| false;
    // Node 9 takes port 80 first and answers ARP; node 5 may get port 80's connections by
    // a directive, node 3 those of 8000-8999: both hold the address quietly.
    assert_eq!(hold(c.iter(), &c[3], &addr, 9, &none), Hold::Announced);
    assert_eq!(hold(c.iter(), &c[3], &addr, 5, &none), Hold::Quiet);
    assert_eq!(hold(c.iter(), &c[3], &addr, 3, &none), Hold::Quiet);
    // Neither the owner itself, nor a node no range names, nor another address.
    assert_eq!(hold(c.iter(), &c[3], &addr, 1, &none), Hold::No);
    c[3] = node(1, [10, 0, 0, 1], &[(80, 80, &[9])]);
    assert_eq!(hold(c.iter(), &c[3], &addr, 5, &none), Hold::No);
    let other = Addr::v4([10, 0, 0, 7]);
    assert_eq!(hold(c.iter(), &c[3], &other, 9, &none), Hold::No);
    // Node 9 failed too: 3 (smallest) answers ARP.
    let nine = |n| n == 9;
    c[3].arp = ArpPolicy::SmallestId;
    assert_eq!(hold(c.iter(), &c[3], &addr, 3, &nine), Hold::Announced);
    // The smallest-id policy makes every live node a peer.
    let c = cluster();
    assert_eq!(hold(c.iter(), &c[3], &addr, 3, &none), Hold::Announced);
    assert_eq!(hold(c.iter(), &c[3], &addr, 9, &none), Hold::Quiet);
}
