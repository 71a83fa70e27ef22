// SPDX-License-Identifier: GPL-2.0

//! Fuzzes the frame parser and the connection tracker together: the input is a sequence of
//! frames (a length byte pair, a flags byte, then the frame), fed to a snooper whose bindings
//! cover 10.0.0.1 and 2001:db8::1 port 80. Nothing may panic, and every byte the mirror holds
//! (chunks, slot tables, entries) must be accounted for by the byte budget.

#![no_main]

use libfuzzer_sys::fuzz_target;
use permtcp_logic::seqbuf::{Budget, CHUNK};
use permtcp_logic::snoop::{Frame, Limits};

// The host tests' heap allocator, slot table, connection map and snooper.
#[path = "../../permtcp/logic/tests/common/mod.rs"]
mod common;

use common::{snooper, Heap, Map, A};
use permtcp_logic::track::entry_bytes;

fuzz_target!(|data: &[u8]| {
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
        let len = u16::from_le_bytes([rest[0], rest[1]]) as usize % 2048;
        let flags = rest[2];
        rest = &rest[3..];
        let frame = &rest[..len.min(rest.len())];
        rest = &rest[frame.len()..];
        // Claimed network-layer length: the frame's, or larger as for GSO super-packets.
        let l3 = frame.len() + (flags as usize & 3) * 30_000;
        now += u64::from(flags >> 2) * 997;
        let f = Frame {
            hdr: frame,
            l3_len: l3,
            gso: flags & 3 != 0,
            payload: frame,
            src_mac: (flags & 0x20 != 0).then_some([2, 0, 0, 0, 0, flags & 3]),
        };
        s.on_frame(&mut map, &mut alloc, f, |_| flags & 0x80 == 0, now);
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
    for c in map.0.values() {
        let chunks = (c.half[0].data.chunks() + c.half[1].data.chunks()) as u64;
        let slots = c.half[0].data.slot_table_bytes() + c.half[1].data.slot_table_bytes();
        assert_eq!(u64::from(c.mem), chunks * CHUNK as u64 + slots + entry_bytes::<A>());
    }
    for (_, mut c) in std::mem::take(&mut map.0) {
        c.release(&mut alloc);
    }
    assert_eq!(alloc.used, 0);
});
