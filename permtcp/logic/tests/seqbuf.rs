// SPDX-License-Identifier: GPL-2.0

//! Host tests of the retained data (`seqbuf.rs`): bytes kept at their sequence position through
//! retransmissions, overlaps and reordering, released behind the acknowledgement down to one
//! window, and the per-direction capacity.

mod common;

use common::*;
use permtcp_logic::packet::flags::*;
use permtcp_logic::seqbuf::{CAPACITY, CHUNK};
use permtcp_logic::track::{NotReady, Side};
use std::sync::Arc;

#[test]
fn data_both_ways_is_retained_exactly() {
    for v6 in [false, true] {
        let mut w = Wire::new(v6);
        w.handshake(1000, 5000, 7, 7);
        let req = bytes(300, 1);
        w.data(Side::Client, &req);
        let resp = bytes(9000, 2);
        for part in resp.chunks(1448) {
            w.data(Side::Owner, part);
        }
        assert_eq!(w.ready(), Ok(()), "v6={v6}");
        assert_eq!(w.retained(Side::Client, 300), req);
        assert_eq!(w.retained(Side::Owner, 9000), resp);
        let k = w.key();
        let c = w.map.get_mut_conn(&k);
        assert_eq!(c.side(Side::Owner).nxt, 5001 + 9000);
        assert_eq!(c.side(Side::Owner).bytes, 9000);
        assert_eq!(c.side(Side::Client).una, 1001 + 300, "the owner's acks");
    }
}

#[test]
fn retransmissions_and_overlaps_keep_the_bytes() {
    let mut w = Wire::new(false);
    w.handshake(1000, 5000, 7, 7);
    let d = bytes(3000, 3);
    w.data(Side::Owner, &d[..1000]);
    // Retransmission of the same segment, then a segment overlapping it.
    w.send_raw(
        Side::Owner,
        5001,
        1001,
        ACK,
        502,
        &Opts::default(),
        &d[..1000],
    );
    w.send_raw(
        Side::Owner,
        5501,
        1001,
        ACK,
        502,
        &Opts::default(),
        &d[500..2000],
    );
    w.send_raw(
        Side::Owner,
        7001,
        1001,
        ACK,
        502,
        &Opts::default(),
        &d[2000..],
    );
    w.nxt[0] = 8001;
    w.sent[0] = d.clone();
    assert_eq!(w.ready(), Ok(()));
    assert_eq!(w.retained(Side::Owner, 3000), d);
    let k = w.key();
    assert_eq!(w.map.get_mut_conn(&k).side(Side::Owner).bytes, 4500);
}

#[test]
fn out_of_order_hole_then_filled() {
    let mut w = Wire::new(false);
    w.handshake(1000, 5000, 7, 7);
    let d = bytes(2000, 4);
    // Second half first: a hole the snooper must not paper over.
    w.send_raw(
        Side::Owner,
        6001,
        1001,
        ACK,
        502,
        &Opts::default(),
        &d[1000..],
    );
    assert_eq!(w.ready(), Err(NotReady::Hole(Side::Owner)));
    w.send_raw(
        Side::Owner,
        5001,
        1001,
        ACK,
        502,
        &Opts::default(),
        &d[..1000],
    );
    w.nxt[0] = 7001;
    assert_eq!(w.ready(), Ok(()));
    assert_eq!(w.retained(Side::Owner, 2000), d);
}

#[test]
fn acked_data_is_released_but_one_window_stays() {
    let mut w = Wire::new(false);
    w.handshake(1000, 5000, 0, 0);
    // Unscaled 16 KiB windows from both ends.
    let d = bytes(400_000, 8);
    for part in d.chunks(1448) {
        w.data(Side::Owner, part);
        w.ack(Side::Client, 16384);
    }
    assert_eq!(w.ready(), Ok(()));
    let k = w.key();
    let held = w.map.get_mut_conn(&k).side(Side::Owner).data.held() as usize;
    // The largest window the client advertised was its SYN's, 64240 bytes.
    assert!(held >= 64240, "one window kept behind the ack, held {held}");
    assert!(held <= 64240 + 2 * CHUNK, "released as acked, held {held}");
    assert_eq!(w.retained(Side::Owner, 16384), d[d.len() - 16384..]);
    assert!(w.alloc.used <= (64240 + 3 * CHUNK) as u64);
}

#[test]
fn unacked_data_beyond_capacity_is_an_overflow() {
    let mut w = Wire::new(false);
    w.handshake(1000, 5000, 14, 14);
    // A 1 GiB window; the client never acks; more in flight than a direction can hold.
    w.ack(Side::Client, 65535);
    for part in bytes(CAPACITY as usize + 100 * 1024, 9).chunks(1448) {
        let i = 0;
        let pkt = frame(
            w.owner,
            w.client,
            w.nxt[i],
            1001,
            ACK,
            502,
            &Opts::default(),
            part,
        );
        w.nxt[i] = w.nxt[i].wrapping_add(part.len() as u32);
        w.feed(&pkt);
    }
    assert_eq!(w.ready(), Err(NotReady::Overflow(Side::Owner)));
}

#[test]
fn overflow_clears_once_the_missing_bytes_are_acknowledged() {
    let mut w = Wire::new(false);
    w.handshake(1000, 5000, 14, 14);
    w.ack(Side::Client, 65535);
    let d = bytes(CAPACITY as usize + 100 * 1024, 14);
    for part in d.chunks(1448) {
        let pkt = frame(
            w.owner,
            w.client,
            w.nxt[0],
            1001,
            ACK,
            502,
            &Opts::default(),
            part,
        );
        w.nxt[0] = w.nxt[0].wrapping_add(part.len() as u32);
        w.feed(&pkt);
    }
    assert_eq!(w.ready(), Err(NotReady::Overflow(Side::Owner)));
    // The client acknowledges everything: nothing unacknowledged is missing any more.
    w.rcv[1] = w.nxt[0];
    w.ack(Side::Client, 4);
    assert_eq!(w.ready(), Ok(()));
    // New data after that is retained again.
    let more = bytes(5000, 15);
    w.data(Side::Owner, &more);
    assert_eq!(w.retained(Side::Owner, 5000), more);
}

/// Shards charging one [`Pool`] from several threads at once never pass its cap, and every
/// byte comes back: the kernel's shards allocate on different CPUs without a common lock.
#[test]
fn pool_cap_holds_under_concurrent_shards() {
    use permtcp_logic::seqbuf::{ChunkAlloc, Pool, Pooled};
    let pool = Pool::new(16 * CHUNK as u64);
    std::thread::scope(|s| {
        for t in 0..4 {
            let pool = &pool;
            s.spawn(move || {
                let mut shard = Pooled {
                    inner: Heap::default(),
                    pool,
                };
                let mut held = Vec::new();
                for i in 0..20_000 {
                    if (i + t) % 3 != 0 {
                        if let Some(c) = shard.alloc() {
                            held.push(c);
                        }
                    } else if let Some(c) = held.pop() {
                        shard.free(c);
                    }
                    if shard.charge(100) {
                        assert!(pool.used() <= pool.max(), "cap passed: {}", pool.used());
                        shard.uncharge(100);
                    }
                    assert!(pool.used() <= pool.max(), "cap passed: {}", pool.used());
                }
                for c in held {
                    shard.free(c);
                }
            });
        }
    });
    assert_eq!(pool.used(), 0, "bytes not returned");
    assert!(
        pool.refused() > 0,
        "the cap never refused: the test proves nothing"
    );
}

/// A frame that counts the bytes copied out of it.
struct Counted<'a> {
    bytes: &'a [u8],
    copied: core::cell::Cell<usize>,
}

impl permtcp_logic::seqbuf::Payload for Counted<'_> {
    fn copy(&self, offset: u32, out: &mut [core::mem::MaybeUninit<u8>]) -> bool {
        self.copied.set(self.copied.get() + out.len());
        self.bytes.copy(offset, out)
    }
}

/// Bytes already held are not copied again (issue 13): a retransmission costs no copy, an
/// overlapping segment copies only its new bytes, and the first copy of a byte is the one
/// kept (a forged or corrupt retransmission cannot overwrite it). Fails on the old `write`,
/// which stored every byte of every segment.
#[test]
fn held_bytes_are_not_copied_again() {
    use permtcp_logic::seqbuf::{Budget, SeqBuf};
    let mut alloc = Budget::new(Heap::default(), 1 << 30);
    let mut b: SeqBuf<A> = SeqBuf::new(1000);
    let d = bytes(12_000, 9);
    let send = |b: &mut SeqBuf<A>, alloc: &mut A, from: usize, to: usize, fill: Option<u8>| {
        let other;
        let src: &[u8] = match fill {
            Some(v) => {
                other = vec![v; to - from];
                &other
            }
            None => &d[from..to],
        };
        let f = Counted {
            bytes: src,
            copied: core::cell::Cell::new(0),
        };
        b.write(alloc, 1000 + from as u32, (to - from) as u32, &f, 0)
            .unwrap();
        f.copied.get()
    };
    assert_eq!(send(&mut b, &mut alloc, 0, 3000, None), 3000);
    // The same bytes again, but different on the wire: nothing copied, the first kept.
    assert_eq!(send(&mut b, &mut alloc, 0, 1000, Some(0xee)), 0);
    // Out of order, leaving [3000, 5000) missing.
    assert_eq!(send(&mut b, &mut alloc, 5000, 6000, None), 1000);
    // Overlapping both present pieces and the hole between them: only the hole is copied.
    assert_eq!(send(&mut b, &mut alloc, 2000, 5500, None), 2000);
    // Past the end, overlapping it, across a chunk boundary.
    assert_eq!(send(&mut b, &mut alloc, 5800, 12_000, None), 6000);
    let mut out = vec![0u8; 12_000];
    assert!(b.read(1000, &mut out));
    assert_eq!(out, d, "every byte is the first copy of it");
    assert_eq!(b.ranges().collect::<Vec<_>>(), vec![(1000, 13_000)]);
    b.clear(&mut alloc);
}

/// Zero-copy retention (issue 13): the missing piece of a large frame is one extent that
/// is a view of it, charged its share of the frame's memory and holding one reference, with
/// no byte copied, not even at its edges; a small frame is copied; the bytes read back are
/// the stream's either way, and the reference goes when the window moves past the piece.
#[test]
fn large_frames_are_held_not_copied() {
    use permtcp_logic::seqbuf::{frame_share, Budget, SeqBuf};
    let mut alloc = Budget::new(Heap::default(), 1 << 30);
    let mut b: SeqBuf<A> = SeqBuf::new(1000);
    let d = bytes(80_000, 4);
    // A 1448-byte segment in a 4 KiB page, then a GRO frame of 64,000 bytes behind a
    // 40-byte header, with a truesize of 66,000 bytes.
    let small = HeldFrame {
        bytes: Arc::new(d[..1448].to_vec()),
        truesize: 4_864,
        payload_len: 1448,
    };
    b.write(&mut alloc, 1000, 1448, &small, 0).unwrap();
    assert_eq!(
        alloc.inner.views, 0,
        "a frame smaller than a chunk that takes more than twice its bytes is copied"
    );
    assert_eq!(Arc::strong_count(&small.bytes), 1, "and not held");
    let mut big_bytes = vec![0u8; 40];
    big_bytes.extend_from_slice(&d[1448..65_448]);
    let big = HeldFrame {
        bytes: Arc::new(big_bytes),
        truesize: 66_000,
        payload_len: 64_040,
    };
    let used = alloc.used;
    b.write(&mut alloc, 1000 + 1448, 64_000, &big, 40).unwrap();
    assert_eq!(
        (alloc.inner.views, b.chunks()),
        (1, 2),
        "one view, one copy"
    );
    assert_eq!(
        Arc::strong_count(&big.bytes),
        2,
        "one reference for the whole piece"
    );
    assert_eq!(
        alloc.used - used,
        frame_share(66_000, 64_040, 64_000),
        "the view is charged its share of the frame, no chunk for its edges"
    );
    assert_eq!(frame_share(66_000, 64_040, 64_000), 65_959);
    let mut out = vec![0u8; 65_448];
    assert!(b.read(1000, &mut out));
    assert_eq!(out[..], d[..65_448], "the bytes are the stream's");
    // Reads that start and end inside extents, and cross from the copy into the view.
    let mut part = vec![0u8; 3000];
    assert!(b.read(1000 + 1000, &mut part));
    assert_eq!(part[..], d[1000..4000]);
    let mut end = vec![0u8; 5448];
    assert!(b.read(1000 + 60_000, &mut end));
    assert_eq!(end[..], d[60_000..65_448]);
    assert!(
        !b.read(1000 + 60_000, &mut [0u8; 5449]),
        "past what is held"
    );
    // A retransmission of the frame: nothing new to hold or copy.
    let holds = alloc.inner.holds;
    b.write(&mut alloc, 1000 + 1448, 64_000, &big, 40).unwrap();
    assert_eq!(
        alloc.inner.holds, holds,
        "present bytes: no reference taken"
    );
    // A small segment after the view starts a copy extent of its own.
    let tail = HeldFrame {
        bytes: Arc::new(d[65_448..66_000].to_vec()),
        truesize: 1_280,
        payload_len: 552,
    };
    b.write(&mut alloc, 1000 + 65_448, 552, &tail, 0).unwrap();
    assert_eq!((alloc.inner.views, b.chunks()), (1, 3));
    // The window moves to 40,960: the copy below the view goes; the view, which holds
    // bytes beyond it, stays whole, and the base moves to its first byte.
    b.release_below(&mut alloc, 1000 + 40_960);
    assert_eq!((alloc.inner.views, b.chunks()), (1, 2));
    assert_eq!(b.base(), 1000 + 1448);
    assert_eq!(Arc::strong_count(&big.bytes), 2);
    let mut out = vec![0u8; 66_000 - 40_960];
    assert!(b.read(1000 + 40_960, &mut out));
    assert_eq!(out[..], d[40_960..66_000]);
    // Past the view's end: its reference goes.
    b.release_below(&mut alloc, 1000 + 65_448);
    assert_eq!((alloc.inner.views, b.chunks()), (0, 1));
    assert_eq!(Arc::strong_count(&big.bytes), 1, "no reference left");
    assert_eq!(b.base(), 1000 + 65_448);
    b.clear(&mut alloc);
    assert_eq!(
        (alloc.inner.live, alloc.used),
        (0, 0),
        "every byte uncharged"
    );
}

/// Full-size segments (1448 bytes of payload in a 2 KiB buffer) are held as views, not
/// copied: nothing is copied of a bulk transfer without GRO either. A piece under
/// [`VIEW_MIN_FULL`], or one whose frame would take more than twice its bytes (a small piece
/// of a large frame, a segment in a whole page), is copied: it takes less memory.
#[test]
fn full_size_segments_are_held_when_the_frame_is_mostly_them() {
    use permtcp_logic::seqbuf::{frame_share, Budget, SeqBuf, VIEW_MIN_FULL};
    let d = bytes(20_000, 6);
    let seg = |from: usize, to: usize, truesize: u32| HeldFrame {
        bytes: Arc::new(d[from..to].to_vec()),
        truesize,
        payload_len: (to - from) as u32,
    };
    let mut alloc = Budget::new(Heap::default(), 1 << 30);
    let mut b: SeqBuf<A> = SeqBuf::new(0);
    for i in 0..4 {
        let f = seg(i * 1448, (i + 1) * 1448, 2_304);
        b.write(&mut alloc, (i * 1448) as u32, 1448, &f, 0).unwrap();
        assert_eq!(Arc::strong_count(&f.bytes), 2, "held");
    }
    assert_eq!((alloc.inner.views, alloc.inner.copies), (4, 0));
    assert_eq!(
        alloc.used - 16 * permtcp_logic::seqbuf::slot_bytes::<A>(),
        4 * frame_share(2_304, 1448, 1448)
    );
    // Below the threshold; a whole page for one segment; 1448 bytes of a 64 KiB frame.
    let small = (VIEW_MIN_FULL - 1) as usize;
    let at = 4 * 1448;
    let f = seg(at, at + small, 2_304);
    b.write(&mut alloc, at as u32, small as u32, &f, 0).unwrap();
    let at = at + small;
    let f = seg(at, at + 1448, 4_864);
    b.write(&mut alloc, at as u32, 1448, &f, 0).unwrap();
    let at = at + 1448;
    let f = seg(at, at + 1448, 66_000);
    b.write(&mut alloc, at as u32, 1448, &f, 0).unwrap();
    assert_eq!(alloc.inner.views, 4, "three copies");
    assert_eq!(Arc::strong_count(&f.bytes), 1, "not held");
    let end = at + 1448;
    let mut out = vec![0u8; end];
    assert!(b.read(0, &mut out));
    assert_eq!(out[..], d[..end]);
    b.clear(&mut alloc);
    assert_eq!((alloc.inner.live, alloc.used), (0, 0));
}

/// A large frame that arrives out of order and one that fills the hole before it are each
/// held for exactly their missing bytes: a view starts where the frame's missing piece
/// starts, not at its first byte, and small segments continuing a copy fill whole chunks.
#[test]
fn views_fill_holes_and_copies_fill_chunks() {
    use permtcp_logic::seqbuf::{Budget, SeqBuf};
    let mut alloc = Budget::new(Heap::default(), 1 << 30);
    let mut b: SeqBuf<A> = SeqBuf::new(0);
    let d = bytes(100_000, 11);
    let held = |from: usize, to: usize| HeldFrame {
        bytes: Arc::new(d[from..to].to_vec()),
        truesize: (to - from) as u32 + 1024,
        payload_len: (to - from) as u32,
    };
    // Ten 1448-byte segments, each in a 4 KiB page: 14,480 bytes in 4 copy chunks, not 10.
    for i in 0..10 {
        let mut f = held(i * 1448, (i + 1) * 1448);
        f.truesize = 4_864;
        b.write(&mut alloc, (i * 1448) as u32, 1448, &f, 0).unwrap();
    }
    assert_eq!((b.chunks(), alloc.inner.views), (4, 0));
    // [30,000, 60,000) out of order, then [10,000, 40,000) overlapping it and the copies:
    // only [14,480, 30,000) of it is missing, held from its byte 4,480 on.
    let late = held(30_000, 60_000);
    b.write(&mut alloc, 30_000, 30_000, &late, 0).unwrap();
    assert_eq!(b.ranges().count(), 2, "a hole");
    let fill = held(10_000, 40_000);
    b.write(&mut alloc, 10_000, 30_000, &fill, 0).unwrap();
    assert_eq!((b.chunks(), alloc.inner.views), (6, 2));
    assert_eq!(b.ranges().collect::<Vec<_>>(), vec![(0, 60_000)]);
    let mut out = vec![0u8; 60_000];
    assert!(b.read(0, &mut out));
    assert_eq!(out[..], d[..60_000]);
    b.clear(&mut alloc);
    assert_eq!((alloc.inner.live, alloc.used), (0, 0));
    assert_eq!(Arc::strong_count(&fill.bytes), 1);
}

/// A view the budget cannot take is not made: the frame's bytes are copied if a chunk still
/// fits, and the write fails as any other short of memory does when none does.
#[test]
fn a_view_past_the_budget_falls_back_to_a_copy() {
    use permtcp_logic::seqbuf::{Budget, SeqBuf, WriteError};
    let d = bytes(16_384, 5);
    let frame = HeldFrame {
        bytes: Arc::new(d.clone()),
        truesize: 80_000,
        payload_len: 16_384,
    };
    // Room for 4 chunks' copies and the slot table, not for one view (charged 20,000
    // bytes: the frame takes 5 times its payload).
    let table = 16 * permtcp_logic::seqbuf::slot_bytes::<A>();
    let mut alloc = Budget::new(Heap::default(), 4 * CHUNK as u64 + table);
    let mut b: SeqBuf<A> = SeqBuf::new(0);
    b.write(&mut alloc, 0, 16_384, &frame, 0).unwrap();
    assert_eq!(alloc.inner.views, 0);
    let mut out = vec![0u8; 16_384];
    assert!(b.read(0, &mut out));
    assert_eq!(out, d);
    // Full: more bytes fail, nothing is held.
    let more = HeldFrame {
        bytes: Arc::new(d.clone()),
        truesize: 80_000,
        payload_len: 16_384,
    };
    assert_eq!(
        b.write(&mut alloc, 16_384, 16_384, &more, 0),
        Err(WriteError::NoMemory)
    );
    assert_eq!(Arc::strong_count(&more.bytes), 1);
    b.clear(&mut alloc);
    assert_eq!(alloc.used, 0);
    assert!(
        alloc.refused > 0,
        "the budget never refused: the test proves nothing"
    );
}

/// Zero-copy retention through the tracker: GRO-sized segments of the owner's are retained
/// as views of their frames (the payload offset counted from the network header, after the
/// TCP options), the connection is ready with the stream's bytes, and views go as the
/// client's acknowledgements release the window, down to the one window kept.
#[test]
fn the_tracker_keeps_large_segments_by_reference() {
    for v6 in [false, true] {
        let mut w = Wire::new(v6);
        w.hold_overhead = Some(2048);
        w.handshake(1000, 5000, 7, 7);
        let d = bytes(80_000, 6);
        for part in d[..40_000].chunks(10_000) {
            w.data(Side::Owner, part);
        }
        // Four GRO-sized segments: four views, nothing copied.
        assert_eq!((w.alloc.inner.views, w.alloc.inner.live), (4, 4), "v6={v6}");
        assert_eq!(w.ready(), Ok(()), "v6={v6}");
        assert_eq!(w.retained(Side::Owner, 40_000), d[..40_000], "v6={v6}");
        w.ack(Side::Client, 502);
        for part in d[40_000..].chunks(10_000) {
            w.data(Side::Owner, part);
        }
        assert_eq!(w.alloc.inner.views, 8, "v6={v6}");
        assert_eq!(w.retained(Side::Owner, 80_000), d, "v6={v6}");
        // All acknowledged: one window (502 << 7 = 64,256 bytes) stays; the segment wholly
        // below 80,000 - 64,256 = 15,744 goes, the one holding byte 15,744 stays whole.
        w.ack(Side::Client, 502);
        assert_eq!(w.alloc.inner.views, 7, "v6={v6}");
        let k = w.key();
        w.map.0.remove(&k).unwrap().release(&mut w.alloc);
        assert_eq!(w.alloc.inner.views, 0);
        assert_eq!((w.alloc.inner.live, w.alloc.used), (0, 0), "v6={v6}");
    }
}

/// A bulk transfer whose kept window fills the connection's budget gives up acknowledged
/// bytes before each large segment is written, not after a write failed half way (and
/// counts the short budget as a refusal, as the failed write did): every segment is held
/// as one view, none is partly copied first (issue 13: the copy of the
/// first 4 KiB of every frame, made before the budget refused the view, cost a third of the
/// hook's time), and the stream stays ready with its unacknowledged bytes.
#[test]
fn a_full_budget_makes_room_before_the_write() {
    let mut w = Wire::new(false);
    w.hold_overhead = Some(2048);
    w.handshake(1000, 5000, 7, 7);
    // Windows of 8 MiB: every acknowledged byte would be kept but for the budget.
    w.alloc.max = 400_000;
    let d = bytes(2_000_000, 12);
    for part in d.chunks(40_000) {
        w.data(Side::Owner, part);
        w.ack(Side::Client, 65535);
        assert_eq!(w.ready(), Ok(()));
    }
    assert_eq!(
        w.alloc.inner.copies, 0,
        "nothing copied: room was made first"
    );
    assert!(w.alloc.refused > 0, "the short budget is counted");
    assert!(w.alloc.inner.views > 0);
    assert!(w.alloc.used <= w.alloc.max);
    assert_eq!(w.retained(Side::Owner, 40_000), d[d.len() - 40_000..]);
}

/// An empty read is a read of everything, even below the base: it once computed the
/// offset of a sequence number the window had passed and overflowed (found by the seqbuf
/// fuzz target; with the kernel's overflow checks, a panic).
#[test]
fn an_empty_read_below_the_base_succeeds() {
    use permtcp_logic::seqbuf::{Budget, SeqBuf};
    let mut alloc = Budget::new(Heap::default(), 1 << 20);
    let mut b: SeqBuf<A> = SeqBuf::new(1000);
    let d = bytes(3000, 2);
    b.write(&mut alloc, 1000, 3000, &d[..], 0).unwrap();
    b.release_below(&mut alloc, 5000);
    assert_eq!(b.base(), 5000);
    assert!(b.read(900, &mut []));
    assert!(b.read(4999, &mut []), "the byte right below the base");
    assert!(!b.read(900, &mut [0u8; 1]));
    b.clear(&mut alloc);
}

/// A connection let go hands its sent bytes over without copying them: the buffer it
/// returns reads the same bytes (copies and views alike), the budget and the connection's
/// share no longer count them, and releasing the rest of the connection gives the budget
/// back all it had charged, the handed-over memory aside, which goes with the buffer.
#[test]
fn handed_over_bytes_leave_the_budget_and_read_the_same() {
    for v6 in [false, true] {
        let mut w = Wire::new(v6);
        w.hold_overhead = Some(2048);
        w.handshake(1000, 5000, 7, 7);
        w.data(Side::Client, &bytes(300, 3));
        // Small segments copied, large ones held by reference.
        let small = bytes(5_000, 4);
        for part in small.chunks(500) {
            w.data(Side::Owner, part);
        }
        let large = bytes(30_000, 5);
        for part in large.chunks(10_000) {
            w.data(Side::Owner, part);
        }
        let sent = [small, large].concat();
        let k = w.key();
        let end = w.nxt[Side::Owner as usize];
        let start = end.wrapping_sub(sent.len() as u32);
        let (used, live, views) = (w.alloc.used, w.alloc.inner.live, w.alloc.inner.views);
        assert_eq!(views, 3, "v6={v6}");
        let c = w.map.0.get_mut(&k).unwrap();
        let mem = u64::from(c.mem);
        // Past the first 4 KiB chunk: that one is released (whole extents only).
        let from = start.wrapping_add(4500);
        let out = c.hand_over(&mut w.alloc, Side::Owner, from);
        let mut got = vec![0u8; sent.len() - 4500];
        assert!(out.read(from, &mut got), "v6={v6}");
        assert_eq!(got, sent[4500..], "v6={v6}");
        let mut first = [0u8; 1];
        assert!(!out.read(start, &mut first), "v6={v6}");
        // Neither the budget nor the connection counts the buffer's memory any more.
        let handed = mem - u64::from(c.mem);
        assert_eq!(used - w.alloc.used, handed, "v6={v6}");
        assert!(handed >= out.slot_table_bytes() + 3 * 10_000, "v6={v6}");
        assert_eq!(w.alloc.inner.views, 0, "v6={v6}");
        assert!(w.alloc.inner.live < live, "v6={v6}");
        assert_eq!(c.side(Side::Owner).data.held(), 0, "v6={v6}");
        // The rest of the connection goes back whole (its share counts its table entry and
        // the client's bytes), nothing twice.
        let mut c = w.map.0.remove(&k).unwrap();
        c.release(&mut w.alloc);
        assert_eq!(w.alloc.used, 0, "v6={v6}");
        assert_eq!(w.alloc.inner.live, 0, "v6={v6}");
        drop(out);
    }
}
