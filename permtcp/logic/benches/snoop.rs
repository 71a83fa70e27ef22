// SPDX-License-Identifier: GPL-2.0

//! Host cost of the snooper's fast path: parse + track, per frame, for small and full-size
//! segments of an established connection (data one way, ACKs the other, as on the wire).
//! Prints ns per frame and Mpps on one core. Run: `cargo bench -p permtcp-logic`.
//!
//! Each frame's header is in the cache when the tracker sees it, as a received frame's is
//! (the driver prefetched it, and it and the stack have read it): the benchmark prefetches
//! the next frame's; the figures without it (every frame flushed from the caches before the
//! run, [`evict`]) follow. One measurement runs first, unreported (see `main`).
//! Frames are offered as the module's hook offers skbs: as frames a view may hold, with the
//! memory a NIC driver's skb of their size takes ([`truesize`]); the store decides what it
//! copies (small segments) and what it holds. Chunks come back from a free list, as the
//! module's come from the `kmalloc-4k` slab ([`common::Heap`]).

#[path = "../tests/common/mod.rs"]
mod common;

use common::*;
use permtcp_logic::packet::flags::*;
use permtcp_logic::seqbuf::Budget;
use permtcp_logic::snoop::{Frame, Limits};
use permtcp_logic::track::entry_bytes;
use std::hint::black_box;
use std::time::Instant;

/// Frames of one connection: handshake, then `rounds` of (data segment, ACK).
fn conversation(payload: usize, rounds: usize) -> (Vec<Vec<u8>>, usize) {
    let (o, c) = (v4([10, 0, 0, 1], 80), v4([10, 0, 0, 100], 40000));
    let ts = |v| Opts {
        ts: Some((v, v)),
        ..Default::default()
    };
    let mut f = vec![
        frame(c, o, 1000, 0, SYN, 64240, &Opts::syn_full(1460, 7, 1), &[]),
        frame(
            o,
            c,
            5000,
            1001,
            SYN | ACK,
            65160,
            &Opts::syn_full(1460, 7, 1),
            &[],
        ),
        frame(c, o, 1001, 5001, ACK, 20000, &ts(2), &[]),
    ];
    let setup = f.len();
    let data = vec![0x5au8; payload];
    let mut seq = 5001u32;
    for i in 0..rounds {
        f.push(frame(
            o,
            c,
            seq,
            1001,
            ACK | PSH,
            20000,
            &ts(10 + i as u32),
            &data,
        ));
        seq = seq.wrapping_add(payload as u32);
        f.push(frame(c, o, 1001, seq, ACK, 20000, &ts(10 + i as u32), &[]));
    }
    (f, setup)
}

/// The memory a received frame of `len` bytes (from the network header) takes, as a NIC
/// driver's skb: a frame up to 1536 bytes in a 2 KiB buffer, a larger (GRO) one in its
/// pages, plus the `sk_buff` and `skb_shared_info` (`SKB_TRUESIZE`).
fn truesize(len: usize) -> u32 {
    let data = if len <= 1536 { 2048 } else { len + 4096 };
    data as u32 + 256
}

/// A frame as the module's hook gets it: its bytes, and the frame itself, which a view may
/// hold (whether one does is the store's decision: [`seqbuf`]'s thresholds).
fn as_skb(bytes: Vec<u8>) -> HeldFrame {
    HeldFrame {
        truesize: truesize(bytes.len()),
        payload_len: bytes.len() as u32,
        bytes: std::sync::Arc::new(bytes),
    }
}

fn feed(
    s: &mut permtcp_logic::snoop::Snooper,
    map: &mut Map,
    alloc: &mut A,
    h: &HeldFrame,
    held: bool,
    now: u64,
) -> permtcp_logic::snoop::Outcome {
    if held {
        let f = Frame {
            hdr: &h.bytes,
            l3_len: h.bytes.len(),
            gso: false,
            payload: h,
            src_mac: None,
        };
        s.on_frame(map, alloc, f, |_| true, now)
    } else {
        s.on_frame(map, alloc, Frame::of(&h.bytes), |_| true, now)
    }
}

/// Where each frame's header and descriptor are, worked out before the timed loop: a
/// driver knows where its next frames are without reading them. ([`prefetch`] had read the
/// next frame's descriptor for the address of its bytes: a load from memory on every frame,
/// which made the prefetched runs slower than the others.)
fn addresses(frames: &[HeldFrame]) -> Vec<(*const i8, *const i8)> {
    frames
        .iter()
        .map(|f| {
            let arc = std::sync::Arc::as_ptr(&f.bytes).cast();
            (f.bytes.as_ptr().cast(), arc)
        })
        .collect()
}

/// Starts loading frame `next`'s header, and the frame after it's descriptor, into the cache,
/// as a NIC driver does (`net_prefetch()`) before it hands a received frame up: the hook
/// then finds the headers in the cache, which the driver and the stack have read already.
fn prefetch(at: &[(*const i8, *const i8)], next: usize) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        if let Some(&(_, arc)) = at.get(next + 1) {
            // SAFETY: a prefetch only hints the cache; any address may be given.
            unsafe { _mm_prefetch::<_MM_HINT_T0>(arc) };
        }
        if let Some(&(bytes, _)) = at.get(next) {
            // SAFETY: as above.
            unsafe { _mm_prefetch::<_MM_HINT_T0>(bytes) };
        }
    }
}

/// Evicts every frame's bytes and descriptor from the caches (`clflush`), so that a run
/// without [`prefetch`] reads each header from memory: 40,000 small frames would otherwise
/// stay in this machine's last-level cache from one run to the next, and "from memory"
/// measured a cached, unprefetched read.
fn evict(frames: &[HeldFrame]) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_mm_clflush, _mm_mfence};
        for f in frames {
            let arc = std::sync::Arc::as_ptr(&f.bytes).cast::<u8>();
            for at in (0..f.bytes.len()).step_by(64) {
                // SAFETY: `at` is within the frame's bytes, which are live.
                unsafe { _mm_clflush(f.bytes.as_ptr().add(at)) };
            }
            // SAFETY: a flush of the Arc's allocation, live for the call.
            unsafe { _mm_clflush(arc) };
        }
        // SAFETY: a fence has no operands.
        unsafe { _mm_mfence() };
    }
}

/// Runs of each measurement; the best counts. A run of 40,000 frames takes a few
/// milliseconds, and this shared machine's steal time moves single runs by half.
const RUNS: usize = 15;

/// ns per frame of a conversation of `payload`-byte segments and their ACKs, the best of
/// [`RUNS`] runs; with `held`, the frames can be held (zero-copy retention), as the module's
/// skbs can; with `received`, each frame's header is in the cache when it is processed
/// ([`prefetch`]), else it comes from memory (a frame built long before, as every one of
/// the 40,000 here is).
fn bench(payload: usize, held_frames: bool, received: bool) -> f64 {
    let rounds = 20_000;
    let (frames, setup) = conversation(payload, rounds);
    let frames: Vec<HeldFrame> = frames.into_iter().map(as_skb).collect();
    let mut best = f64::MAX;
    for _ in 0..RUNS {
        let mut s = snooper(Limits::default());
        let mut map = Map::default();
        let mut alloc = Budget::new(Heap::default(), 1 << 30);
        for f in &frames[..setup] {
            feed(&mut s, &mut map, &mut alloc, f, held_frames, 0);
        }
        if !received {
            evict(&frames[setup..]);
        }
        let at = addresses(&frames);
        let start = Instant::now();
        for (i, f) in frames.iter().enumerate().skip(setup) {
            if received {
                // Two frames ahead: about the time a load from memory takes.
                prefetch(&at, i + 2);
            }
            // The outcome by reference: kept, not copied (a copy of the whole struct right
            // after the call, read wider than it was written, stalled on store forwarding:
            // a harness cost the module's hook, which reads a field or two, does not pay).
            black_box(&feed(
                &mut s,
                &mut map,
                &mut alloc,
                black_box(f),
                held_frames,
                1,
            ));
        }
        let ns = start.elapsed().as_nanos() as f64 / (frames.len() - setup) as f64;
        best = best.min(ns);
        assert_eq!(s.counters.matched as usize, frames.len());
    }
    best
}

fn print(name: &str, payload: usize, ns: f64) {
    println!(
        "{name:<28} {ns:>7.1} ns/frame  {:>6.2} Mpps/core  (frames of {} payload bytes and their ACKs)",
        1e3 / ns,
        payload
    );
}

/// Cost per GRO-sized frame (45,000 payload bytes, as a bulk transfer over veth delivers
/// them) and its ACK: every byte copied, or each frame kept as one view of it
/// (zero-copy retention; a host frame is an `Arc<Vec<u8>>`, an skb clone in the module).
fn bench_gso(held: bool) -> f64 {
    let rounds = 2_000;
    let (frames, setup) = conversation(45_000, rounds);
    let frames: Vec<HeldFrame> = frames.into_iter().map(as_skb).collect();
    let mut best = f64::MAX;
    for _ in 0..5 {
        let mut s = snooper(Limits::default());
        let mut map = Map::default();
        let mut alloc = Budget::new(Heap::default(), 1 << 30);
        for f in &frames[..setup] {
            feed(&mut s, &mut map, &mut alloc, f, held, 0);
        }
        let start = Instant::now();
        for f in &frames[setup..] {
            black_box(&feed(&mut s, &mut map, &mut alloc, black_box(f), held, 1));
        }
        let ns = start.elapsed().as_nanos() as f64 / (frames.len() - setup) as f64;
        best = best.min(ns);
        assert_eq!(alloc.inner.views > 0, held, "views made only when held");
    }
    let what = if held {
        "GRO frames (45,000 B), views"
    } else {
        "GRO frames (45,000 B), copied"
    };
    println!("{what:<28} {best:>7.1} ns/frame  (frames and their ACKs)");
    best
}

/// What one tracked connection costs the namespace's budget: its table entry alone, and
/// with the data a request/response connection of 1000-byte answers keeps (one window each
/// way, in 4 KiB chunks).
fn memory() {
    let (frames, _) = conversation(1000, 64);
    let mut s = snooper(Limits::default());
    let mut map = Map::default();
    let mut alloc = Budget::new(Heap::default(), 1 << 30);
    for f in &frames {
        s.on_frame(&mut map, &mut alloc, Frame::of(f), |_| true, 0);
    }
    println!(
        "memory per tracked connection: {} bytes (table entry), {} bytes with its data (after 64 rounds of 1000 bytes)",
        entry_bytes::<A>(),
        alloc.used
    );
}

/// `cargo bench -p permtcp-logic --bench snoop [small|full|gro|memory]` runs one part (to
/// profile it alone); without an argument, all of them.
fn main() {
    let only = std::env::args().skip(1).find(|a| !a.starts_with('-'));
    let run = |part: &str| only.as_deref().is_none_or(|o| o == part);
    println!("permtcp snooper, host, parse + track (best of {RUNS} runs of 40000 frames; GRO: 5 of 4000)");
    // A warm-up, not reported: the process's first measurement ran 20-25 % slower than the
    // same one repeated (70 against 56-59 ns per 64-byte frame, whichever mode came first),
    // the heap's memory being mapped by its first runs; the module's slab has it already.
    bench(64, true, true);
    if run("small") {
        print("small segments (64 B)", 64, bench(64, true, true));
        print("  headers not in the cache", 64, bench(64, true, false));
    }
    if run("full") {
        let held = bench(1448, true, true);
        print("full-size segments (1448 B)", 1448, held);
        print("  headers not in the cache", 1448, bench(1448, true, false));
        let copied = bench(1448, false, true);
        print("  every byte copied", 1448, copied);
        println!("zero-copy / copy, 1448 B:       {:.2}", held / copied);
    }
    if run("gro") {
        let copied = bench_gso(false);
        let viewed = bench_gso(true);
        println!("zero-copy / copy, GRO frames:   {:.2}", viewed / copied);
    }
    if run("memory") {
        memory();
    }
}
