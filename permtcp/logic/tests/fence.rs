// SPDX-License-Identifier: GPL-2.0

//! The fence: a lease that runs out drops exactly this node's own bindings' segments, and
//! the split-brain alarm recognises the failed nodes' MACs.

use permtcp_logic::decl::{Declaration, PortRange};
use permtcp_logic::fence::{Fence, Lease};
use permtcp_logic::packet::Addr;

const MS: u64 = 1_000_000;

fn decl(node: u32, local: bool, addr: [u8; 4], mac: u8, lo: u16, hi: u16) -> Declaration {
    let mut d = Declaration {
        node_id: node,
        local,
        ..Default::default()
    };
    d.addrs4.push(addr).unwrap();
    d.addrs6
        .push([0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, node as u8])
        .unwrap();
    d.macs.push([2, 0, 0, 0, 0, mac]).unwrap();
    d.ranges
        .push(PortRange {
            lo,
            hi,
            ..Default::default()
        })
        .unwrap();
    d
}

#[test]
fn a_lease_never_set_fences_nothing() {
    let l = Lease::default();
    assert!(!l.armed());
    assert!(l.holds(0) && l.holds(u64::MAX));
    assert_eq!(l.left_ms(5), None);
}

#[test]
fn a_lease_holds_until_it_runs_out_and_a_renewal_extends_it() {
    let mut l = Lease::default();
    l.renew(1000 * MS, 300);
    assert!(l.armed());
    assert!(l.holds(1000 * MS) && l.holds(1299 * MS));
    assert!(!l.holds(1300 * MS));
    assert_eq!(l.left_ms(1100 * MS), Some(200));
    assert_eq!(l.left_ms(2000 * MS), Some(0));
    l.renew(1250 * MS, 300);
    assert!(l.holds(1500 * MS));
    // Released: fenced at once, and it stays armed.
    l.renew(1260 * MS, 0);
    assert!(!l.holds(1260 * MS));
    assert!(l.armed());
}

#[test]
fn an_expired_lease_drops_only_the_local_bindings() {
    let decls = [
        decl(1, true, [10, 0, 0, 1], 1, 80, 90),
        decl(2, false, [10, 0, 0, 2], 2, 80, 90),
    ];
    let mut f = Fence::default();
    f.refresh(decls.iter(), &|_| false);
    let own = Addr::v4([10, 0, 0, 1]);
    let own6 = Addr([0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
    // Never leased: nothing dropped.
    assert!(!f.drops(&own, 80, 0));
    f.lease.renew(0, 100);
    assert!(!f.drops(&own, 80, 50 * MS));
    for (addr, port, dropped) in [
        (own, 80, true),
        (own, 90, true),
        (own6, 85, true),
        (own, 91, false),
        (own, 79, false),
        (Addr::v4([10, 0, 0, 2]), 80, false),
        (Addr::v4([10, 0, 0, 9]), 80, false),
    ] {
        assert_eq!(f.drops(&addr, port, 100 * MS), dropped, "{addr:?}:{port}");
    }
}

#[test]
fn a_refresh_keeps_the_lease_and_follows_the_declarations() {
    let mut decls = [
        decl(1, true, [10, 0, 0, 1], 1, 80, 80),
        decl(2, false, [10, 0, 0, 2], 2, 80, 80),
    ];
    let mut f = Fence::default();
    f.lease.renew(0, 10);
    f.refresh(decls.iter(), &|_| false);
    assert!(f.drops(&Addr::v4([10, 0, 0, 1]), 80, 20 * MS));
    decls[0] = decl(1, true, [10, 0, 0, 5], 1, 80, 80);
    f.refresh(decls.iter(), &|_| false);
    assert!(f.lease.armed());
    assert!(!f.drops(&Addr::v4([10, 0, 0, 1]), 80, 20 * MS));
    assert!(f.drops(&Addr::v4([10, 0, 0, 5]), 80, 20 * MS));
}

#[test]
fn frames_from_a_failed_nodes_mac_raise_the_alarm() {
    let decls = [
        decl(1, false, [10, 0, 0, 1], 1, 80, 80),
        decl(2, true, [10, 0, 0, 2], 2, 80, 80),
        decl(3, false, [10, 0, 0, 3], 3, 80, 80),
    ];
    let mut f = Fence::default();
    f.refresh(decls.iter(), &|_| false);
    assert!(!f.from_failed(&[2, 0, 0, 0, 0, 1]));
    f.refresh(decls.iter(), &|n| n == 1);
    assert!(f.from_failed(&[2, 0, 0, 0, 0, 1]));
    assert!(!f.from_failed(&[2, 0, 0, 0, 0, 3]));
    // The local node's own MAC never counts, even if listed as failed by mistake.
    f.refresh(decls.iter(), &|n| n == 2);
    assert!(!f.from_failed(&[2, 0, 0, 0, 0, 2]));
}
