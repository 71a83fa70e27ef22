// SPDX-License-Identifier: GPL-2.0

//! Sorting for the module: an in-place unstable heapsort, O(n log n) comparisons, no
//! memory; and a stable merge sort that needs a scratch slice as long as the input, for
//! large sorts on a hot path: about half the heapsort's comparisons (n log2 n against
//! 2 n log2 n), made on neighbouring elements.
//!
//! `core`'s `sort_unstable` cannot be used in the module: its small-sort step ends in a call
//! to `panic_on_ord_violation`, which never returns, and Linux 7.3's objtool does not know it
//! among its Rust noreturn functions. Built with `-O2` (as distribution kernels are, so as
//! DKMS builds the module), every sort then warns "falls through to next function", and a
//! module build must have no warning. A heapsort needs no such check: a comparison that is
//! not a total order leaves the slice in some order, never out of bounds (every index is
//! checked).

/// Sorts `v` so that no element is `less` than the one before it. A slice already in order
/// (a takeover's keys come sorted) costs one pass of `n - 1` comparisons, and nothing moves;
/// a heapsort would take it apart and build it again.
pub fn sort_by<T>(v: &mut [T], mut less: impl FnMut(&T, &T) -> bool) {
    if v.is_sorted_by(|a, b| !less(b, a)) {
        return;
    }
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

/// Runs sorted by insertion before the merges.
const RUN: usize = 8;

/// Sorts `v` stably so that no element is `less` than the one before it, using `scratch`
/// (at least as long as `v`; a shorter one sorts with [`sort_by`], unstably). As with
/// [`sort_by`], a comparison that is not a total order leaves the elements in some order,
/// every one still there.
pub fn merge_sort_by<T: Copy>(
    v: &mut [T],
    scratch: &mut [T],
    mut less: impl FnMut(&T, &T) -> bool,
) {
    let n = v.len();
    let Some(scratch) = scratch.get_mut(..n) else {
        sort_by(v, less);
        return;
    };
    for run in v.chunks_mut(RUN) {
        for i in 1..run.len() {
            let mut j = i;
            while j > 0 && less(&run[j], &run[j - 1]) {
                run.swap(j, j - 1);
                j -= 1;
            }
        }
    }
    // Runs of `width` are merged pairwise from one slice into the other, back and forth.
    let mut width = RUN;
    let mut in_v = true;
    while width < n {
        let (src, dst): (&[T], &mut [T]) = if in_v {
            (&*v, &mut *scratch)
        } else {
            (&*scratch, &mut *v)
        };
        let mut at = 0;
        while at < n {
            let mid = (at + width).min(n);
            let end = (at + 2 * width).min(n);
            merge(&src[at..mid], &src[mid..end], &mut dst[at..end], &mut less);
            at = end;
        }
        in_v = !in_v;
        width *= 2;
    }
    if !in_v {
        v.copy_from_slice(scratch);
    }
}

/// Merges the sorted `a` and `b` into `out` (as long as both), `a`'s element first of equal
/// ones.
fn merge<T: Copy>(a: &[T], b: &[T], out: &mut [T], less: &mut impl FnMut(&T, &T) -> bool) {
    let (mut i, mut j) = (0, 0);
    for o in out.iter_mut() {
        let take_b = match (a.get(i), b.get(j)) {
            (Some(x), Some(y)) => less(y, x),
            (None, _) => true,
            (Some(_), None) => false,
        };
        if take_b {
            if let Some(y) = b.get(j) {
                *o = *y;
            }
            j += 1;
        } else {
            if let Some(x) = a.get(i) {
                *o = *x;
            }
            i += 1;
        }
    }
}

/// Keeps the last of each run of elements with equal keys in `v`, sorted by `key`, moved
/// to the front in order; returns how many are kept (`v[..n]`; the rest is left over).
/// The records' index has one entry per key, its newest record, which comes last.
pub fn keep_last_by_key<T: Copy, K: PartialEq>(v: &mut [T], key: impl Fn(&T) -> K) -> usize {
    let mut n = 0;
    for i in 0..v.len() {
        if v.get(i + 1).is_some_and(|next| key(next) == key(&v[i])) {
            continue;
        }
        v[n] = v[i];
        n += 1;
    }
    n
}

/// Merges `new` into `v[..old]`, both sorted by `key` with no key twice, into `v[..n]`;
/// returns `n`. An element of `new` replaces `v[..old]`'s of the same key. `v` must have
/// room for both (`v.len() >= old + new.len()`; what stands past `old` is overwritten);
/// with less, `v[..old]` is left as it was and `None` comes back.
///
/// The merge runs from the back, in place: the records' index takes a takeover's ten
/// thousand keys in one pass over it, where a search tree took an allocation and a search
/// per key.
pub fn merge_replacing_by_key<T: Copy, K: Ord>(
    v: &mut [T],
    old: usize,
    new: &[T],
    key: impl Fn(&T) -> K,
) -> Option<usize> {
    let end = old.checked_add(new.len()).filter(|&e| e <= v.len())?;
    // `w - i` is `j` plus the replaced ones so far: the write never reaches an element of
    // `v[..i]` not yet moved.
    let (mut i, mut j, mut w) = (old, new.len(), end);
    while j > 0 {
        w -= 1;
        let y = new[j - 1];
        match (i > 0).then(|| key(&v[i - 1]).cmp(&key(&y))) {
            Some(core::cmp::Ordering::Greater) => {
                v[w] = v[i - 1];
                i -= 1;
            }
            Some(core::cmp::Ordering::Equal) => {
                v[w] = y;
                i -= 1;
                j -= 1;
            }
            _ => {
                v[w] = y;
                j -= 1;
            }
        }
    }
    // `v[..i]` goes right before `v[w..end]`, then the whole down to the front.
    let gap = w - i;
    if gap > 0 {
        v.copy_within(0..i, gap);
        v.copy_within(gap..end, 0);
    }
    Some(end - gap)
}
