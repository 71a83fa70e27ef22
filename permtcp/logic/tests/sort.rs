// SPDX-License-Identifier: GPL-2.0

//! The module's heapsort against the standard library's sort.

use permtcp_logic::sort::{
    keep_last_by_key, merge_replacing_by_key, merge_sort_by, sort, sort_by, sort_by_key,
};

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

/// The standard library's answer: `old` with `new`'s entries replacing those of their key.
fn merged_as_std(old: &[(u8, u32)], new: &[(u8, u32)]) -> Vec<(u8, u32)> {
    let mut m = std::collections::BTreeMap::new();
    m.extend(old.iter().copied());
    m.extend(new.iter().copied());
    m.into_iter().collect()
}

/// Sorted by key, unique: a random subset of keys `0..spread`, each with a value.
fn sorted_unique(x: &mut u64, n: usize, spread: u64) -> Vec<(u8, u32)> {
    let mut v: Vec<(u8, u32)> = (0..n)
        .map(|_| ((rng(x) % spread) as u8, rng(x) as u32))
        .collect();
    v.sort_by_key(|e| e.0);
    v.dedup_by_key(|e| e.0);
    v
}

#[test]
fn a_merge_replacing_by_key_is_the_union_with_the_new_entries_winning() {
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    for round in 0..2000 {
        let spread = [4u64, 40, 256][round % 3];
        let (a, b) = (rng(&mut x) % 60, rng(&mut x) % 60);
        let old = sorted_unique(&mut x, a as usize, spread);
        let new = sorted_unique(&mut x, b as usize, spread);
        let mut v = old.clone();
        // Room for both, filled with what must not survive.
        v.resize(old.len() + new.len() + (round % 3), (0xff, 0xdead));
        let n = merge_replacing_by_key(&mut v, old.len(), &new, |e| e.0).unwrap();
        assert_eq!(
            &v[..n],
            &merged_as_std(&old, &new)[..],
            "old {old:?} new {new:?}"
        );
    }
}

#[test]
fn a_merge_without_room_changes_nothing() {
    let old = vec![(1u8, 1u32), (3, 3)];
    let mut v = old.clone();
    v.push((9, 9));
    assert_eq!(
        merge_replacing_by_key(&mut v, 2, &[(0, 0), (2, 2)], |e| e.0),
        None
    );
    assert_eq!(v, [(1, 1), (3, 3), (9, 9)]);
    assert_eq!(
        merge_replacing_by_key(&mut v, usize::MAX, &[(0, 0)], |e| e.0),
        None
    );
    // Nothing new: the old entries as they were.
    assert_eq!(merge_replacing_by_key(&mut v, 2, &[], |e| e.0), Some(2));
    assert_eq!(v[..2], old[..]);
}

#[test]
fn the_last_of_equal_keys_is_kept() {
    let mut v = [(1u8, 1u32), (1, 2), (2, 3), (4, 4), (4, 5), (4, 6), (7, 7)];
    let n = keep_last_by_key(&mut v, |e| e.0);
    assert_eq!(&v[..n], &[(1, 2), (2, 3), (4, 6), (7, 7)]);
    let mut none: [(u8, u32); 0] = [];
    assert_eq!(keep_last_by_key(&mut none, |e| e.0), 0);
}
