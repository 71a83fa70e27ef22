// SPDX-License-Identifier: GPL-2.0

//! TCP sequence-number arithmetic modulo 2^32 (RFC 9293 §3.4), as the kernel's `before()` and
//! `after()` in include/net/tcp.h.

/// A sequence number.
pub type Seq = u32;

/// `a` comes strictly before `b`.
pub fn before(a: Seq, b: Seq) -> bool {
    (a.wrapping_sub(b) as i32) < 0
}

/// `a` comes strictly after `b`.
pub fn after(a: Seq, b: Seq) -> bool {
    before(b, a)
}

/// `a` is at or after `b`.
pub fn at_or_after(a: Seq, b: Seq) -> bool {
    !before(a, b)
}

/// `a` lies in `[lo, hi]`, wrapping.
pub fn between(a: Seq, lo: Seq, hi: Seq) -> bool {
    hi.wrapping_sub(lo) >= a.wrapping_sub(lo)
}

/// The later of two sequence numbers.
pub fn max(a: Seq, b: Seq) -> Seq {
    if after(a, b) {
        a
    } else {
        b
    }
}

/// Distance from `from` forward to `to` (`to - from`), for `to` at or after `from`.
pub fn dist(from: Seq, to: Seq) -> u32 {
    to.wrapping_sub(from)
}
