// SPDX-License-Identifier: GPL-2.0

//! Host tests of TCP sequence-number arithmetic modulo 2^32 (`seq.rs`).

use permtcp_logic::seq::{after, at_or_after, before, between, dist, max};

#[test]
fn order_is_modulo_two_to_the_32() {
    assert!(before(1, 2) && after(2, 1));
    assert!(!before(5, 5) && !after(5, 5) && at_or_after(5, 5));
    // Across the wrap: u32::MAX comes just before 0.
    assert!(before(u32::MAX, 0));
    assert!(after(3, u32::MAX - 3));
    assert!(at_or_after(0, u32::MAX));
    assert!(!at_or_after(u32::MAX, 0));
    // Up to 2^31 - 1 ahead is "after"; the comparison is antisymmetric there.
    let half = 1u32 << 31;
    assert!(after(half - 1, 0) && before(0, half - 1));
    // Exactly 2^31 apart, as the kernel's before(): each is before the other.
    assert!(before(0, half) && before(half, 0));
}

#[test]
fn between_is_inclusive_and_wraps() {
    assert!(between(10, 10, 20) && between(20, 10, 20) && between(15, 10, 20));
    assert!(!between(9, 10, 20) && !between(21, 10, 20));
    let lo = u32::MAX - 5;
    assert!(between(u32::MAX, lo, 4) && between(0, lo, 4) && between(4, lo, 4));
    assert!(!between(5, lo, 4) && !between(lo - 1, lo, 4));
}

#[test]
fn max_and_distance_follow_the_wrapped_order() {
    assert_eq!(max(1, 2), 2);
    assert_eq!(max(u32::MAX, 3), 3, "3 is after u32::MAX");
    assert_eq!(max(7, 7), 7);
    assert_eq!(dist(100, 150), 50);
    assert_eq!(dist(u32::MAX - 9, 10), 20);
    assert_eq!(dist(42, 42), 0);
}
