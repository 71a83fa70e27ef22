// SPDX-License-Identifier: GPL-2.0

//! In-place unstable sorting for the module: a heapsort, O(n log n) comparisons, no memory.
//!
//! `core`'s `sort_unstable` cannot be used in the module: its small-sort step ends in a call
//! to `panic_on_ord_violation`, which never returns, and Linux 7.3's objtool does not know it
//! among its Rust noreturn functions. Built with `-O2` (as distribution kernels are, so as
//! DKMS builds the module), every sort then warns "falls through to next function", and a
//! module build must have no warning. A heapsort needs no such check: a comparison that is
//! not a total order leaves the slice in some order, never out of bounds (every index is
//! checked).

/// Sorts `v` so that no element is `less` than the one before it.
pub fn sort_by<T>(v: &mut [T], mut less: impl FnMut(&T, &T) -> bool) {
    let n = v.len();
    for i in (0..n / 2).rev() {
        sift_down(v, i, n, &mut less);
    }
    for end in (1..n).rev() {
        v.swap(0, end);
        sift_down(v, 0, end, &mut less);
    }
}

/// Sorts `v` in ascending order.
pub fn sort<T: Ord>(v: &mut [T]) {
    sort_by(v, |a, b| a < b);
}

/// Sorts `v` by the keys `key` gives, in ascending order.
pub fn sort_by_key<T, K: Ord>(v: &mut [T], mut key: impl FnMut(&T) -> K) {
    sort_by(v, |a, b| key(a) < key(b));
}

/// Moves `v[node]` down the max-heap `v[..end]` until neither child is greater.
fn sift_down<T>(v: &mut [T], mut node: usize, end: usize, less: &mut impl FnMut(&T, &T) -> bool) {
    loop {
        let mut child = 2 * node + 1;
        if child >= end {
            return;
        }
        if child + 1 < end && less(&v[child], &v[child + 1]) {
            child += 1;
        }
        if !less(&v[node], &v[child]) {
            return;
        }
        v.swap(node, child);
        node = child;
    }
}
