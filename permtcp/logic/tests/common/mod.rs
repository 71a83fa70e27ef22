// SPDX-License-Identifier: GPL-2.0

//! Test support: frames built byte by byte, a BTreeMap connection table, a heap allocator.

#![allow(dead_code)]

use permtcp_logic::packet::Addr;
use permtcp_logic::seqbuf::{ChunkAlloc, Slots, CHUNK};
use permtcp_logic::snoop::{FlowKey, FlowMap};
use permtcp_logic::track::Conn;
use std::collections::BTreeMap;

pub type Chunk = Box<[u8; CHUNK]>;

/// Heap chunks, counting what is outstanding.
#[derive(Default)]
pub struct Heap {
    pub live: usize,
}

/// A slot table on the heap.
#[derive(Default)]
pub struct VecSlots(pub Vec<Option<Chunk>>);

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

impl ChunkAlloc for Heap {
    type Chunk = Chunk;
    type Slots = VecSlots;
    fn alloc(&mut self) -> Option<Chunk> {
        self.live += 1;
        Some(Box::new([0u8; CHUNK]))
    }
    fn free(&mut self, _c: Chunk) {
        self.live -= 1;
    }
}

pub type A = permtcp_logic::seqbuf::Budget<Heap>;

#[derive(Default)]
pub struct Map(pub BTreeMap<FlowKey, Conn<A>>);

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

/// TCP options to put in a built segment.
#[derive(Clone, Default)]
pub struct Opts {
    pub mss: Option<u16>,
    pub wscale: Option<u8>,
    pub sack_perm: bool,
    pub ts: Option<(u32, u32)>,
    pub sack: Vec<(u32, u32)>,
}

impl Opts {
    pub fn syn_full(mss: u16, ws: u8, ts: u32) -> Self {
        Opts {
            mss: Some(mss),
            wscale: Some(ws),
            sack_perm: true,
            ts: Some((ts, 0)),
            sack: vec![],
        }
    }

    fn bytes(&self) -> Vec<u8> {
        let mut o = Vec::new();
        if let Some(m) = self.mss {
            o.extend([2, 4]);
            o.extend(m.to_be_bytes());
        }
        if self.sack_perm {
            o.extend([4, 2]);
        }
        if let Some((v, e)) = self.ts {
            o.extend([8, 10]);
            o.extend(v.to_be_bytes());
            o.extend(e.to_be_bytes());
        }
        if let Some(w) = self.wscale {
            o.extend([1, 3, 3, w]);
        }
        if !self.sack.is_empty() {
            o.extend([1, 1, 5, 2 + 8 * self.sack.len() as u8]);
            for (a, b) in &self.sack {
                o.extend(a.to_be_bytes());
                o.extend(b.to_be_bytes());
            }
        }
        while o.len() % 4 != 0 {
            o.push(0);
        }
        o
    }
}

/// One endpoint: address and port.
#[derive(Clone, Copy)]
pub struct End {
    pub addr: Addr,
    pub port: u16,
}

pub fn v4(a: [u8; 4], port: u16) -> End {
    End {
        addr: Addr::v4(a),
        port,
    }
}

pub fn v6(last: u8, port: u16) -> End {
    let mut a = [0u8; 16];
    a[0] = 0x20;
    a[1] = 0x01;
    a[2] = 0x0d;
    a[3] = 0xb8;
    a[15] = last;
    End {
        addr: Addr(a),
        port,
    }
}

/// Builds a complete IPv4 or IPv6 packet (network header onwards).
#[allow(clippy::too_many_arguments)]
pub fn frame(
    src: End,
    dst: End,
    seq: u32,
    ack: u32,
    flags: u8,
    win: u16,
    opts: &Opts,
    payload: &[u8],
) -> Vec<u8> {
    let o = opts.bytes();
    let mut tcp = Vec::new();
    tcp.extend(src.port.to_be_bytes());
    tcp.extend(dst.port.to_be_bytes());
    tcp.extend(seq.to_be_bytes());
    tcp.extend(ack.to_be_bytes());
    tcp.push((((20 + o.len()) / 4) as u8) << 4);
    tcp.push(flags);
    tcp.extend(win.to_be_bytes());
    tcp.extend([0, 0, 0, 0]);
    tcp.extend(&o);
    tcp.extend(payload);
    let mut p = Vec::new();
    match (src.addr.as_v4(), dst.addr.as_v4()) {
        (Some(s), Some(d)) => {
            p.extend([0x45, 0]);
            p.extend(((20 + tcp.len()) as u16).to_be_bytes());
            p.extend([0, 0, 0x40, 0, 64, 6, 0, 0]);
            p.extend(s);
            p.extend(d);
        }
        _ => {
            p.extend([0x60, 0, 0, 0]);
            p.extend((tcp.len() as u16).to_be_bytes());
            p.extend([6, 64]);
            p.extend(src.addr.0);
            p.extend(dst.addr.0);
        }
    }
    p.extend(tcp);
    p
}

/// A peer (node 2) snooping node 1's binding 10.0.0.1 / 2001:db8::1 port 80.
pub fn snooper(limits: permtcp_logic::snoop::Limits) -> permtcp_logic::snoop::Snooper {
    use permtcp_logic::decl::{Declaration, PortRange};
    let mut owner = Declaration {
        node_id: 1,
        proto: permtcp_logic::uapi::proto::TCP,
        ..Default::default()
    };
    owner.addrs4.push([10, 0, 0, 1]).unwrap();
    owner.addrs6.push(v6(1, 0).addr.0).unwrap();
    owner
        .ranges
        .push(PortRange {
            lo: 80,
            hi: 80,
            ..Default::default()
        })
        .unwrap();
    let mut me = owner;
    me.node_id = 2;
    me.local = true;
    permtcp_logic::snoop::Snooper::new(
        permtcp_logic::snoop::Filter::compile([owner, me].iter()),
        limits,
    )
}
