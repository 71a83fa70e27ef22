// SPDX-License-Identifier: GPL-2.0

//! Fuzzes the frame parser and the connection tracker together: the input is a sequence of
//! frames (a length byte pair, a flags byte, then the frame), fed to a snooper whose bindings
//! cover the addresses the input can use. Nothing may panic, and every retained chunk must be
//! accounted for by the byte budget.

#![no_main]

use libfuzzer_sys::fuzz_target;
use permtcp_logic::decl::{Declaration, PortRange};
use permtcp_logic::seqbuf::{Budget, ChunkAlloc, Slots, CHUNK};
use permtcp_logic::snoop::{Filter, FlowKey, FlowMap, Limits, Snooper};
use permtcp_logic::track::Conn;
use permtcp_logic::uapi::proto;
use std::collections::BTreeMap;

type Chunk = Box<[u8; CHUNK]>;

#[derive(Default)]
struct VecSlots(Vec<Option<Chunk>>);

impl Slots<Chunk> for VecSlots {
    fn as_slice(&self) -> &[Option<Chunk>] {
        &self.0
    }
    fn as_mut_slice(&mut self) -> &mut [Option<Chunk>] {
        &mut self.0
    }
    fn grow_to(&mut self, n: usize) -> bool {
        self.0.resize_with(n, || None);
        true
    }
}

struct Heap;

impl ChunkAlloc for Heap {
    type Chunk = Chunk;
    type Slots = VecSlots;
    fn alloc(&mut self) -> Option<Chunk> {
        Some(Box::new([0u8; CHUNK]))
    }
    fn free(&mut self, _c: Chunk) {}
}

type A = Budget<Heap>;

#[derive(Default)]
struct Map(BTreeMap<FlowKey, Conn<A>>);

impl FlowMap<A> for Map {
    fn get_mut(&mut self, k: &FlowKey) -> Option<&mut Conn<A>> {
        self.0.get_mut(k)
    }
    fn insert(&mut self, k: FlowKey, c: Conn<A>) -> bool {
        self.0.insert(k, c);
        true
    }
    fn remove(&mut self, k: &FlowKey) -> Option<Conn<A>> {
        self.0.remove(k)
    }
    fn len(&self) -> usize {
        self.0.len()
    }
    fn retain(&mut self, mut f: impl FnMut(&FlowKey, &mut Conn<A>) -> bool) {
        self.0.retain(|k, c| f(k, c));
    }
}

fn snooper() -> Snooper {
    let mut owner = Declaration { node_id: 1, proto: proto::TCP, ..Default::default() };
    owner.addrs4.push([10, 0, 0, 1]).unwrap();
    let mut v6 = [0u8; 16];
    v6[0] = 0xfd;
    v6[15] = 1;
    owner.addrs6.push(v6).unwrap();
    owner.ranges.push(PortRange { lo: 0x50, hi: 0x50, ..Default::default() }).unwrap();
    let mut me = owner;
    me.node_id = 2;
    me.local = true;
    let decls = [owner, me];
    Snooper::new(Filter::compile(decls.iter()), Limits { max_conns: 16, max_bytes: 1 << 20 })
}

fuzz_target!(|data: &[u8]| {
    let mut s = snooper();
    let mut map = Map::default();
    let mut alloc = Budget::new(Heap, 1 << 20);
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
        s.on_frame(&mut map, &mut alloc, frame, l3, frame, |_| flags & 0x80 == 0, now);
        if flags & 0x40 != 0 {
            s.expire(&mut map, &mut alloc, now);
        }
        for c in map.0.values() {
            let _ = c.readiness();
        }
    }
    let chunks: usize = map.0.values().map(|c| c.half[0].data.chunks() + c.half[1].data.chunks()).sum();
    assert_eq!(alloc.used, (chunks * CHUNK) as u64, "byte budget out of step with chunks");
    for (_, mut c) in std::mem::take(&mut map.0) {
        c.release(&mut alloc);
    }
    assert_eq!(alloc.used, 0);
});
