// SPDX-License-Identifier: GPL-2.0

//! The fence: a lease that runs out drops exactly this node's own bindings' segments, and
//! the split-brain alarm recognises the failed nodes' MACs.

use permtcp_logic::decl::{Declaration, PortRange};
use permtcp_logic::fence::{mac_word, Fence, Lease};
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

/// The words the module's frame path compares (its lock-free copy of the failed MACs) say
/// what `from_failed` says.
#[test]
fn failed_mac_words_match_the_list() {
    let decls = [
        decl(1, false, [10, 0, 0, 1], 1, 80, 80),
        decl(2, true, [10, 0, 0, 2], 2, 80, 80),
        decl(3, false, [10, 0, 0, 3], 3, 80, 80),
    ];
    let mut f = Fence::default();
    f.refresh(decls.iter(), &|n| n != 2);
    let words: Vec<u64> = f.failed_mac_words().collect();
    assert_eq!(words.len(), f.failed_macs());
    for last in 0..=255u8 {
        for first in [0u8, 2, 0xff] {
            let mac = [first, 0, 0, 0, 0, last];
            assert_eq!(words.contains(&mac_word(&mac)), f.from_failed(&mac));
        }
    }
    // No MAC is the empty slot's 0, and different MACs have different words.
    assert_ne!(mac_word(&[0; 6]), 0);
    assert_ne!(mac_word(&[0, 0, 0, 0, 0, 1]), mac_word(&[1, 0, 0, 0, 0, 0]));
    assert_ne!(
        mac_word(&[0xff; 6]),
        mac_word(&[0xff, 0xff, 0xff, 0xff, 0xff, 0xfe])
    );
}

/// An ARP packet for IPv4 over Ethernet: operation, sender and target addresses.
fn arp(op: u8, spa: [u8; 4], tpa: [u8; 4]) -> Vec<u8> {
    let mut p = vec![0, 1, 0x08, 0x00, 6, 4, 0, op];
    p.extend_from_slice(&[2, 0, 0, 0, 0, 1]);
    p.extend_from_slice(&spa);
    p.extend_from_slice(&[0; 6]);
    p.extend_from_slice(&tpa);
    p
}

/// An IPv6 header (ICMPv6, no extension header) and an ICMPv6 neighbour message of `kind`
/// with `target`.
fn ndisc(kind: u8, src: [u8; 16], target: [u8; 16]) -> Vec<u8> {
    let mut p = vec![0x60, 0, 0, 0, 0, 32, 58, 255];
    p.extend_from_slice(&src);
    p.extend_from_slice(&[0xff, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
    p.extend_from_slice(&[kind, 0, 0, 0, 0x20, 0, 0, 0]);
    p.extend_from_slice(&target);
    p
}

#[test]
fn neighbour_messages_claim_their_senders_address() {
    use permtcp_logic::fence::{arp_claim, ndisc_claim};
    let own = [10, 0, 0, 1];
    // Replies and requests (gratuitous ARP is a request from and for the address).
    assert_eq!(arp_claim(&arp(2, own, [10, 0, 0, 9])), Some(Addr::v4(own)));
    assert_eq!(arp_claim(&arp(1, own, own)), Some(Addr::v4(own)));
    // An ARP probe claims nothing (sender 0.0.0.0); other operations, hardware or
    // protocols, and short packets neither.
    assert_eq!(arp_claim(&arp(1, [0; 4], own)), None);
    assert_eq!(arp_claim(&arp(3, own, own)), None);
    let mut ieee802 = arp(2, own, own);
    ieee802[1] = 6;
    assert_eq!(arp_claim(&ieee802), None);
    assert_eq!(arp_claim(&arp(2, own, own)[..17]), None);
    assert_eq!(arp_claim(&[]), None);

    let a6 = [0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
    let ll = [0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 7];
    // An advertisement claims its target, whatever its source; a solicitation its source.
    assert_eq!(ndisc_claim(&ndisc(136, ll, a6)), Some(Addr(a6)));
    assert_eq!(ndisc_claim(&ndisc(135, a6, ll)), Some(Addr(a6)));
    // Duplicate address detection (unspecified source), other ICMPv6, other headers, IPv4.
    assert_eq!(ndisc_claim(&ndisc(135, [0; 16], a6)), None);
    assert_eq!(ndisc_claim(&ndisc(128, a6, a6)), None);
    let mut tcp = ndisc(136, ll, a6);
    tcp[6] = 6;
    assert_eq!(ndisc_claim(&tcp), None);
    assert_eq!(ndisc_claim(&ndisc(136, ll, a6)[..60]), None);
    assert_eq!(ndisc_claim(&[0x45; 64]), None);
}

#[test]
fn a_fenced_node_announces_none_of_its_addresses() {
    let mut f = Fence::default();
    let local = decl(1, true, [10, 0, 0, 1], 1, 80, 90);
    let other = decl(2, false, [10, 0, 0, 2], 2, 80, 90);
    f.refresh([&local, &other].into_iter(), &|_| false);
    let own = Addr::v4([10, 0, 0, 1]);
    let own6 = Addr([0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
    let theirs = Addr::v4([10, 0, 0, 2]);
    // No lease ever set: nothing is silenced.
    assert!(!f.silences(&own, 0));
    f.lease.renew(0, 100);
    assert!(!f.silences(&own, 99 * MS));
    // Run out: its own addresses (both families, any port) only.
    assert!(f.silences(&own, 100 * MS));
    assert!(f.silences(&own6, 100 * MS));
    assert!(!f.silences(&theirs, 100 * MS));
    // Renewed: announced again.
    f.lease.renew(200 * MS, 100);
    assert!(!f.silences(&own, 250 * MS));
}
