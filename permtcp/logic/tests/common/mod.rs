// SPDX-License-Identifier: GPL-2.0

//! Helpers shared by the host tests (each `tests/*.rs` declares `mod common;`), the benchmark
//! and the `snoop` fuzz target: frames built byte by byte, a BTreeMap connection table, a heap
//! allocator, and [`Wire`], a conversation between an owner and a client that a peer snoops.

#![allow(dead_code)]

use permtcp_logic::decl::{Declaration, FailoverPolicy, PortRange};
use permtcp_logic::packet::flags::*;
use permtcp_logic::packet::Addr;
use permtcp_logic::seqbuf::{
    Budget, ChunkAlloc, ChunkMem, Extent, FrameRef, Payload, RawFrame, Slots, CHUNK,
};
use permtcp_logic::snoop::{Filter, FlowKey, FlowMap, Frame, Limits, Snooper};
use permtcp_logic::track::{Conn, NotReady, Side, State};
use permtcp_logic::uapi::proto;
use std::collections::BTreeMap;
use std::mem::MaybeUninit;
use std::sync::Arc;

/// A chunk as the module's (`permtcp/glue.rs`): memory not zeroed when allocated, with a
/// high-water mark of what was stored, or a view of a held frame; 16 bytes in a slot, as
/// the module's (the benchmark pays what the module pays).
///
/// # Invariants
///
/// A copy: the first `init` bytes of `mem` are initialised; `init <= CHUNK`. A view: its
/// bytes are the frame's `[off, off + len)`.
pub struct Chunk(Kind);

enum Kind {
    Copy {
        mem: Box<MaybeUninit<[u8; CHUNK]>>,
        init: u16,
    },
    // The module's view keeps a 32-bit offset and length and reads its cost from the skb;
    // host frames are at most 64 KiB, so 16-bit ones leave room for the cost.
    View {
        frame: Arc<Vec<u8>>,
        off: u16,
        len: u16,
        cost: u32,
    },
}

impl ChunkMem for Chunk {
    fn store<P: Payload + ?Sized>(&mut self, at: usize, len: usize, src: &P, src_off: u32) -> bool {
        let Some(end) = at.checked_add(len).filter(|&e| e <= CHUNK) else {
            return false;
        };
        let Kind::Copy { mem, init } = &mut self.0 else {
            return false; // a view is never written
        };
        // SAFETY: same size and alignment; any byte of either may be uninitialised.
        let bytes = unsafe { &mut *mem.as_mut_ptr().cast::<[MaybeUninit<u8>; CHUNK]>() };
        let upto_init = usize::from(*init);
        if at > upto_init {
            bytes[upto_init..at].fill(MaybeUninit::new(0));
        }
        let ok = src.copy(src_off, &mut bytes[at..end]);
        *init = (*init).max(if ok { end } else { at } as u16);
        ok
    }

    fn load(&self, at: usize, out: &mut [u8]) -> bool {
        let end = at + out.len();
        match &self.0 {
            Kind::Copy { mem, init } if end <= usize::from(*init) => {
                // SAFETY: within the first `init` bytes, which are initialised.
                let src = unsafe {
                    std::slice::from_raw_parts(mem.as_ptr().cast::<u8>().add(at), out.len())
                };
                out.copy_from_slice(src);
                true
            }
            Kind::View {
                frame, off, len, ..
            } if end <= usize::from(*len) => {
                let from = usize::from(*off) + at;
                match frame.get(from..from + out.len()) {
                    Some(b) => {
                        out.copy_from_slice(b);
                        true
                    }
                    None => false,
                }
            }
            _ => false,
        }
    }

    fn cost(&self) -> u64 {
        match &self.0 {
            Kind::Copy { .. } => CHUNK as u64,
            Kind::View { cost, .. } => u64::from(*cost),
        }
    }

    fn is_view(&self) -> bool {
        matches!(self.0, Kind::View { .. })
    }
}

/// A received frame that chunks may reference (zero-copy retention), as an skb is in the
/// module: its bytes from the network header on, and the memory it takes.
pub struct HeldFrame {
    pub bytes: Arc<Vec<u8>>,
    pub truesize: u32,
    /// Its length from the network header (as the skb's `len`).
    pub payload_len: u32,
}

impl Payload for HeldFrame {
    fn copy(&self, offset: u32, out: &mut [MaybeUninit<u8>]) -> bool {
        self.bytes[..].copy(offset, out)
    }

    fn frame(&self) -> Option<FrameRef<'_>> {
        // SAFETY: `RawFrame` is an opaque zero-sized type: the reference stands for the Vec
        // behind the Arc, borrowed as long as `self`, as Heap::hold reads it back.
        let f = unsafe { &*Arc::as_ptr(&self.bytes).cast::<RawFrame>() };
        Some(FrameRef::new(f, self.truesize, self.payload_len))
    }
}

/// Heap chunks, counting what is outstanding. Freed copy chunks are kept for reuse (at most
/// [`SPARE_CHUNKS`]), as the module's come from the kernel's `kmalloc-4k` slab, whose
/// per-CPU free lists hand back recently freed, cache-hot objects: without it the benchmark
/// measured the C library returning 4 KiB blocks to the system and faulting in (zeroed)
/// pages again, which the module never pays.
#[derive(Default)]
pub struct Heap {
    pub live: usize,
    /// Views outstanding.
    pub views: usize,
    /// References to frames taken (for views or while writing).
    pub holds: usize,
    /// Copy chunks ever allocated.
    pub copies: usize,
    /// Freed copy chunks, for the next allocations.
    spare: Vec<Box<MaybeUninit<[u8; CHUNK]>>>,
}

/// Freed chunks a [`Heap`] keeps at most (a slab's worth: `kmalloc-4k` slabs are 8 pages).
pub const SPARE_CHUNKS: usize = 8;

/// A slot table on the heap.
#[derive(Default)]
pub struct VecSlots(pub Vec<Option<Extent<Chunk>>>);

impl Slots<Extent<Chunk>> for VecSlots {
    fn as_slice(&self) -> &[Option<Extent<Chunk>>] {
        &self.0
    }
    fn as_mut_slice(&mut self) -> &mut [Option<Extent<Chunk>>] {
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
    type Held = Arc<Vec<u8>>;
    fn alloc(&mut self) -> Option<Chunk> {
        self.live += 1;
        self.copies += 1;
        Some(Chunk(Kind::Copy {
            mem: self.spare.pop().unwrap_or_else(Box::new_uninit),
            init: 0,
        }))
    }
    fn hold(&mut self, frame: FrameRef<'_>) -> Option<Arc<Vec<u8>>> {
        let ptr = std::ptr::from_ref::<RawFrame>(frame.frame()).cast::<Vec<u8>>();
        self.holds += 1;
        // SAFETY: host frames come from HeldFrame::frame, valid for the call (FrameRef's
        // lifetime): `ptr` is the value of a live `Arc<Vec<u8>>`, which one more reference
        // may count.
        unsafe {
            Arc::increment_strong_count(ptr);
            Some(Arc::from_raw(ptr))
        }
    }
    fn view(&mut self, held: Arc<Vec<u8>>, frame_off: u32, len: u32, cost: u64) -> Option<Chunk> {
        let off = u16::try_from(frame_off).ok()?;
        let len = u16::try_from(len).ok()?;
        let cost = u32::try_from(cost).ok()?;
        self.live += 1;
        self.views += 1;
        Some(Chunk(Kind::View {
            frame: held,
            off,
            len,
            cost,
        }))
    }
    fn free(&mut self, c: Chunk) {
        self.live -= 1;
        match c.0 {
            Kind::View { .. } => self.views -= 1,
            Kind::Copy { mem, .. } if self.spare.len() < SPARE_CHUNKS => self.spare.push(mem),
            Kind::Copy { .. } => {}
        }
    }
    fn hand_over(&mut self, c: &Chunk) {
        self.live -= 1;
        if let Kind::View { .. } = c.0 {
            self.views -= 1;
        }
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
            // Linux aligns them after two NOPs when they come alone (tcp_options_write()).
            if self.mss.is_none() && !self.sack_perm {
                o.extend([1, 1]);
            }
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

/// The owner's node id in [`decls`] and [`Wire`].
pub const OWNER_NODE: u32 = 1;
/// The snooping peer's node id.
pub const ME: u32 = 2;

/// Node 1 owning `owner_addrs` (and 2001:db8::1 with `with_v6`) ports 80-90 under `policy`
/// (with `peers` for the peer-list policy), and the local node 2.
pub fn decls(
    owner_addrs: &[[u8; 4]],
    with_v6: bool,
    policy: FailoverPolicy,
    peers: &[u32],
) -> Vec<Declaration> {
    let mut owner = Declaration {
        node_id: OWNER_NODE,
        proto: proto::TCP,
        failover: policy,
        ..Default::default()
    };
    for a in owner_addrs {
        owner.addrs4.push(*a).unwrap();
    }
    if with_v6 {
        owner.addrs6.push(v6(1, 0).addr.0).unwrap();
    }
    let mut r = PortRange {
        lo: 80,
        hi: 90,
        ..Default::default()
    };
    for p in peers {
        r.peers.push(*p).unwrap();
    }
    owner.ranges.push(r).unwrap();
    let mut me = Declaration {
        node_id: ME,
        proto: proto::TCP,
        local: true,
        ..Default::default()
    };
    me.addrs4.push([10, 0, 0, 2]).unwrap();
    me.ranges
        .push(PortRange {
            lo: 80,
            hi: 80,
            ..Default::default()
        })
        .unwrap();
    vec![owner, me]
}

/// A conversation between an owner and a client, snooped by a peer.
pub struct Wire {
    pub snoop: Snooper,
    pub map: Map,
    pub alloc: Budget<Heap>,
    pub owner: End,
    pub client: End,
    pub now: u64,
    /// Next sequence number each side sends: [owner, client].
    pub nxt: [u32; 2],
    /// What each side has received in order: the ack it sends.
    pub rcv: [u32; 2],
    pub ts: bool,
    pub sent: [Vec<u8>; 2],
    /// The source MAC of the frames fed from now on (none: not an Ethernet device).
    pub src_mac: Option<[u8; 6]>,
    /// Frames fed from now on may be held by reference (zero-copy retention), each taking
    /// its length plus this much memory (0: frames are plain bytes, always copied).
    pub hold_overhead: Option<u32>,
}

impl Wire {
    pub fn new(v6_addrs: bool) -> Self {
        let (owner, client) = if v6_addrs {
            (v6(1, 80), v6(100, 40000))
        } else {
            (v4([10, 0, 0, 1], 80), v4([10, 0, 0, 100], 40000))
        };
        let d = decls(&[[10, 0, 0, 1]], true, FailoverPolicy::SmallestId, &[]);
        Wire {
            snoop: Snooper::new(Filter::compile(d.iter()), Limits::default()),
            map: Map::default(),
            alloc: Budget::new(Heap::default(), 64 << 20),
            owner,
            client,
            now: 1000,
            nxt: [0; 2],
            rcv: [0; 2],
            ts: true,
            sent: [Vec::new(), Vec::new()],
            src_mac: None,
            hold_overhead: None,
        }
    }

    pub fn key(&self) -> FlowKey {
        FlowKey {
            owner_addr: self.owner.addr,
            owner_port: self.owner.port,
            client_addr: self.client.addr,
            client_port: self.client.port,
        }
    }

    pub fn ends(&self, from: Side) -> (End, End) {
        match from {
            Side::Owner => (self.owner, self.client),
            Side::Client => (self.client, self.owner),
        }
    }

    /// The client's SYN (sequence 1000, window 64240, MSS 1460, window scale 7, timestamps)
    /// from its current port: a new connection, as most tests open one.
    pub fn client_syn(&mut self) {
        self.send_raw(
            Side::Client,
            1000,
            0,
            SYN,
            64240,
            &Opts::syn_full(1460, 7, 100),
            &[],
        );
    }

    pub fn feed(&mut self, pkt: &[u8]) {
        self.now += 1;
        let now = self.now;
        if let Some(extra) = self.hold_overhead {
            let held = HeldFrame {
                bytes: Arc::new(pkt.to_vec()),
                truesize: pkt.len() as u32 + extra,
                payload_len: pkt.len() as u32,
            };
            let f = Frame {
                hdr: pkt,
                l3_len: pkt.len(),
                gso: false,
                payload: &held,
                src_mac: self.src_mac,
            };
            self.snoop
                .on_frame(&mut self.map, &mut self.alloc, f, |_| true, now);
            return;
        }
        let f = Frame {
            src_mac: self.src_mac,
            ..Frame::of(pkt)
        };
        self.snoop
            .on_frame(&mut self.map, &mut self.alloc, f, |_| true, now);
    }

    #[allow(clippy::too_many_arguments)]
    pub fn send_raw(
        &mut self,
        from: Side,
        seq: u32,
        ack: u32,
        fl: u8,
        win: u16,
        opts: &Opts,
        data: &[u8],
    ) -> Vec<u8> {
        let (s, d) = self.ends(from);
        let mut o = opts.clone();
        if self.ts && o.ts.is_none() {
            o.ts = Some(((self.now as u32).wrapping_mul(10), 1));
        }
        let pkt = frame(s, d, seq, ack, fl, win, &o, data);
        self.feed(&pkt);
        pkt
    }

    pub fn handshake(&mut self, isn_c: u32, isn_o: u32, ws_c: u8, ws_o: u8) {
        self.send_raw(
            Side::Client,
            isn_c,
            0,
            SYN,
            64240,
            &Opts::syn_full(1460, ws_c, 100),
            &[],
        );
        self.send_raw(
            Side::Owner,
            isn_o,
            isn_c.wrapping_add(1),
            SYN | ACK,
            65160,
            &Opts::syn_full(1400, ws_o, 200),
            &[],
        );
        self.nxt = [isn_o.wrapping_add(1), isn_c.wrapping_add(1)];
        self.rcv = [isn_c.wrapping_add(1), isn_o.wrapping_add(1)];
        self.ack(Side::Client, 502);
    }

    pub fn ack(&mut self, from: Side, win: u16) {
        let i = from as usize;
        self.send_raw(
            from,
            self.nxt[i],
            self.rcv[i],
            ACK,
            win,
            &Opts::default(),
            &[],
        );
    }

    /// Sends data in order; the receiver is assumed to get it (its ack moves on when it acks).
    pub fn data(&mut self, from: Side, data: &[u8]) -> Vec<u8> {
        let i = from as usize;
        let pkt = self.send_raw(
            from,
            self.nxt[i],
            self.rcv[i],
            ACK | PSH,
            502,
            &Opts::default(),
            data,
        );
        self.nxt[i] = self.nxt[i].wrapping_add(data.len() as u32);
        self.rcv[1 - i] = self.nxt[i];
        self.sent[i].extend_from_slice(data);
        pkt
    }

    pub fn state(&mut self) -> State {
        let k = self.key();
        self.map.get_mut_conn(&k).state
    }

    pub fn ready(&mut self) -> Result<(), NotReady> {
        let k = self.key();
        self.map.get_mut_conn(&k).readiness()
    }

    /// The last `n` bytes `from` sent, read back from the snooper.
    pub fn retained(&mut self, from: Side, n: usize) -> Vec<u8> {
        let k = self.key();
        let i = from as usize;
        let end = self.nxt[i];
        let c = self.map.get_mut_conn(&k);
        let mut out = vec![0u8; n];
        assert!(
            c.half[i].data.read(end.wrapping_sub(n as u32), &mut out),
            "bytes missing"
        );
        out
    }
}

/// The tracked connection of a key, which must exist.
pub trait GetConn {
    fn get_mut_conn(&mut self, k: &FlowKey) -> &mut permtcp_logic::track::Conn<A>;
}

impl GetConn for Map {
    fn get_mut_conn(&mut self, k: &FlowKey) -> &mut permtcp_logic::track::Conn<A> {
        self.0.get_mut(k).expect("connection tracked")
    }
}

/// xorshift64*: a small deterministic generator (the crate has no random test dependency).
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A number below `n` (not 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    /// [`Rng::below`] for 32-bit numbers.
    pub fn below32(&mut self, n: u32) -> u32 {
        self.below(u64::from(n)) as u32
    }
}

/// Both ends exchanged data and acknowledged everything (window scale 7, windows of 502 << 7
/// bytes): the mirror equals the wire model.
pub fn quiet_connection() -> Wire {
    let mut w = Wire::new(false);
    w.handshake(1000, 5000, 7, 7);
    w.data(Side::Client, &bytes(700, 1));
    w.data(Side::Owner, &bytes(3000, 2));
    w.ack(Side::Client, 502);
    w.ack(Side::Owner, 502);
    w.assert_mirror();
    w
}

/// `n` bytes of a pattern that starts at `first`.
pub fn bytes(n: usize, first: u8) -> Vec<u8> {
    (0..n)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(first))
        .collect()
}

impl Wire {
    /// The mirror still equals both ends as the wire model has them: each side's next
    /// sequence number and the acknowledgement the other end last sent for it (every test
    /// calling this has both ends acknowledge first), and the connection is ready.
    pub fn assert_mirror(&mut self) {
        let k = self.key();
        let (nxt, rcv) = (self.nxt, self.rcv);
        let c = self.map.get_mut_conn(&k);
        for (side, i) in [(Side::Owner, 0), (Side::Client, 1)] {
            let h = c.side(side);
            assert_eq!(h.nxt, nxt[i], "{side:?} snd_nxt");
            assert_eq!(h.una, rcv[1 - i], "{side:?} snd_una");
            assert_eq!(h.unseen(), None, "{side:?}: nothing acknowledged unseen");
        }
        assert_eq!(c.readiness(), Ok(()));
    }
}
