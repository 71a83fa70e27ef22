// SPDX-License-Identifier: GPL-2.0

//! The module's heapsort against the standard library's sort.

use permtcp_logic::sort::{sort, sort_by, sort_by_key};

fn rng(x: &mut u64) -> u64 {
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    *x
}

#[test]
fn sorts_as_the_standard_library_does() {
    let mut x = 0x2545_f491_4f6c_dd1du64;
    for n in (0..40).chain([100, 257, 1000, 4096]) {
        for spread in [2u64, 16, u64::MAX] {
            let v: Vec<u64> = (0..n).map(|_| rng(&mut x) % spread).collect();
            let mut want = v.clone();
            want.sort_unstable();
            let mut got = v.clone();
            sort(&mut got);
            assert_eq!(got, want, "n={n} spread={spread}");
            let mut rev = v.clone();
            sort_by(&mut rev, |a, b| a > b);
            want.reverse();
            assert_eq!(rev, want);
        }
    }
    // Sorted and reversed input, and keys.
    let mut up: Vec<u32> = (0..1000).collect();
    sort(&mut up);
    assert!(up.windows(2).all(|w| w[0] <= w[1]));
    let mut down: Vec<(u32, u8)> = (0..1000).rev().map(|i| (i, (i % 7) as u8)).collect();
    sort_by_key(&mut down, |p| p.0);
    assert_eq!(down.first(), Some(&(0, 0)));
    assert!(down.windows(2).all(|w| w[0].0 < w[1].0));
}

#[test]
fn a_comparison_that_is_no_order_neither_panics_nor_loses_elements() {
    let mut x = 7u64;
    let mut v: Vec<u64> = (0..500).collect();
    sort_by(&mut v, |_, _| rng(&mut x) % 2 == 0);
    v.sort_unstable();
    assert_eq!(v, (0..500).collect::<Vec<_>>());
}
