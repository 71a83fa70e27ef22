// SPDX-License-Identifier: GPL-2.0

//! Fuzzes the frame parser and the connection tracker together: the input is a sequence of
//! frames (a length byte pair, a flags byte, then the frame), fed to a snooper whose bindings
//! cover 10.0.0.1 and 2001:db8::1 port 80. Nothing may panic, and every byte the mirror holds
//! (chunks, slot tables, entries) must be accounted for by the byte budget. The input runs
//! twice: frames copied, and frames that may be held by reference (zero-copy retention);
//! where neither run was refused memory, both mirrors hold the same connections, equally
//! ready, with the same bytes.

#![no_main]

use libfuzzer_sys::fuzz_target;
use permtcp_logic::seqbuf::Budget;
use permtcp_logic::snoop::{FlowKey, Frame, Limits};
use permtcp_logic::track::{NotReady, Side};
use std::sync::Arc;

// The host tests' heap allocator, slot table, connection map and snooper.
#[path = "../../permtcp/logic/tests/common/mod.rs"]
mod common;

use common::{snooper, HeldFrame, Heap, Map, A};
use permtcp_logic::track::entry_bytes;

/// Per connection: its readiness and each side's present ranges with their bytes.
type Mirror = Vec<(FlowKey, Result<(), NotReady>, Vec<(u32, u32, Vec<u8>)>)>;

/// Runs the input; the mirror at the end, and whether memory was ever refused.
fn run(data: &[u8], held: bool) -> (Mirror, bool) {
    let mut s = snooper(Limits {
        max_conns: 16,
        max_bytes: 1 << 20,
        keep_received: 1 << 16,
        max_conn_bytes: 256 << 10,
        ..Limits::default()
    });
    let mut map = Map::default();
    let mut alloc = Budget::new(Heap::default(), 1 << 20);
    let mut rest = data;
    let mut now = 0u64;
    while rest.len() >= 3 {
        let flags = rest[2];
        // Frames up to 2 KiB, or up to 16 KiB (GRO-sized: whole chunks to view) with 0x10.
        let max = if flags & 0x10 != 0 { 16384 } else { 2048 };
        let len = u16::from_le_bytes([rest[0], rest[1]]) as usize % max;
        rest = &rest[3..];
        let frame = &rest[..len.min(rest.len())];
        rest = &rest[frame.len()..];
        // Claimed network-layer length: the frame's, or larger as for GSO super-packets.
        let l3 = frame.len() + (flags as usize & 3) * 30_000;
        now += u64::from(flags >> 2) * 997;
        let h = HeldFrame {
            bytes: Arc::new(frame.to_vec()),
            truesize: frame.len() as u32 + 512,
            payload_len: frame.len() as u32,
        };
        let src_mac = (flags & 0x20 != 0).then_some([2, 0, 0, 0, 0, flags & 3]);
        let ours = |_: &_| flags & 0x80 == 0;
        if held {
            let f = Frame {
                hdr: frame,
                l3_len: l3,
                gso: flags & 3 != 0,
                payload: &h,
                src_mac,
            };
            s.on_frame(&mut map, &mut alloc, f, ours, now);
        } else {
            let f = Frame {
                hdr: frame,
                l3_len: l3,
                gso: flags & 3 != 0,
                payload: frame,
                src_mac,
            };
            s.on_frame(&mut map, &mut alloc, f, ours, now);
        }
        if flags & 0x40 != 0 {
            s.expire(&mut map, &mut alloc, now);
        }
        for c in map.0.values() {
            let _ = c.readiness();
        }
    }
    // Every byte the mirror holds is some connection's: chunks, slot tables, entries.
    assert_eq!(
        alloc.used,
        map.0.values().map(|c| u64::from(c.mem)).sum::<u64>(),
        "byte budget out of step with the connections"
    );
    let mut mirror = Mirror::new();
    for (k, c) in &map.0 {
        let chunks = c.half[0].data.chunk_bytes() + c.half[1].data.chunk_bytes();
        let slots = c.half[0].data.slot_table_bytes() + c.half[1].data.slot_table_bytes();
        assert_eq!(u64::from(c.mem), chunks + slots + entry_bytes::<A>());
        let mut sides = Vec::new();
        for side in [Side::Owner, Side::Client] {
            for (a, b) in c.side(side).data.ranges() {
                let mut bytes = vec![0u8; b.wrapping_sub(a) as usize];
                assert!(
                    c.side(side).data.read(a, &mut bytes),
                    "a present range reads (held {held}, {a}..{b}, chunks {})",
                    c.side(side).data.chunks()
                );
                sides.push((a, b, bytes));
            }
        }
        mirror.push((*k, c.readiness(), sides));
    }
    for (_, mut c) in std::mem::take(&mut map.0) {
        c.release(&mut alloc);
    }
    assert_eq!(alloc.used, 0);
    assert_eq!((alloc.inner.live, alloc.inner.views), (0, 0), "chunks or views left");
    (mirror, alloc.refused + alloc.failed > 0)
}

fuzz_target!(|data: &[u8]| {
    let (copied, short_c) = run(data, false);
    let (held, short_h) = run(data, true);
    if !short_c && !short_h {
        assert_eq!(copied, held, "views and copies disagree");
    }
});
