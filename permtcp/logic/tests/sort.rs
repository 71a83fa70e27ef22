// SPDX-License-Identifier: GPL-2.0

//! The module's heapsort against the standard library's sort.

use permtcp_logic::sort::{merge_sort_by, sort, sort_by, sort_by_key};

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

#[test]
fn the_merge_sort_sorts_stably_as_the_standard_library_does() {
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    for n in (0..70).chain([100, 257, 1000, 4096, 10_000]) {
        for spread in [2u64, 16, u64::MAX] {
            // Keys with their original position: stability shows in the positions.
            let v: Vec<(u64, u32)> = (0..n).map(|i| (rng(&mut x) % spread, i as u32)).collect();
            let mut want = v.clone();
            want.sort_by_key(|p| p.0);
            let mut got = v.clone();
            let mut scratch = vec![(0, 0); n];
            merge_sort_by(&mut got, &mut scratch, |a, b| a.0 < b.0);
            assert_eq!(got, want, "n={n} spread={spread}");
            // A scratch too short: sorted all the same (by the heapsort).
            let mut short = v.clone();
            let mut little = vec![(0, 0); n / 2];
            merge_sort_by(&mut short, &mut little, |a, b| a.0 < b.0);
            assert!(short.windows(2).all(|w| w[0].0 <= w[1].0), "n={n}");
        }
    }
}

#[test]
fn a_merge_with_no_order_neither_panics_nor_loses_elements() {
    let mut x = 11u64;
    let mut v: Vec<u64> = (0..777).collect();
    let mut scratch = vec![0; 777];
    merge_sort_by(&mut v, &mut scratch, |_, _| rng(&mut x) % 2 == 0);
    v.sort_unstable();
    assert_eq!(v, (0..777).collect::<Vec<_>>());
}

#[test]
fn a_slice_in_order_is_checked_in_one_pass_and_left_as_it_is() {
    // Equal keys with tags: a heapsort would reorder them, the check moves nothing.
    let v: Vec<(u32, u32)> = (0..10_000).map(|i| (i / 3, i)).collect();
    let mut got = v.clone();
    let mut compared = 0;
    sort_by(&mut got, |a, b| {
        compared += 1;
        a.0 < b.0
    });
    assert_eq!(got, v);
    assert_eq!(compared, v.len() - 1);
    // One element out of place, at the end: sorted in full.
    let mut late = v.clone();
    late.push((0, 10_000));
    sort_by_key(&mut late, |p| p.0);
    assert!(late.windows(2).all(|w| w[0].0 <= w[1].0));
    assert_eq!(late.len(), v.len() + 1);
}
