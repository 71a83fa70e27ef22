// SPDX-License-Identifier: GPL-2.0

//! KUnit tests: the shared logic, run inside the test kernel.
//!
//! The host runs a larger suite of the same logic with `cargo test`; these cases prove that
//! the kernel build of those files behaves the same. They run when the module loads on a
//! kernel built with `CONFIG_KUNIT=y`. They never unwrap: a Rust panic in the kernel is an
//! oops, and a failed case must be reported, not crash the test machine.

#[kernel::macros::kunit_tests(permtcp_logic)]
mod tests {
    use crate::logic::decl::{parse_add_request, Declaration, FailoverPolicy, PortRange};
    use crate::logic::errno::{code, Error};
    use crate::logic::nla::{Attrs, Writer};
    use crate::logic::uapi::proto;

    fn range(lo: u16, hi: u16) -> PortRange {
        PortRange {
            lo,
            hi,
            ..Default::default()
        }
    }

    fn sample() -> Declaration {
        let mut d = Declaration {
            node_id: 7,
            proto: proto::TCP,
            ..Default::default()
        };
        assert!(d.addrs4.push([10, 0, 0, 1]).is_ok());
        assert!(d.macs.push([2, 0, 0, 0, 0, 7]).is_ok());
        assert!(d.ranges.push(range(80, 90)).is_ok());
        d
    }

    /// Encodes `d` as a DECL_ADD payload and parses it back.
    fn round_trip(d: &Declaration) -> Result<Declaration, Error> {
        let mut buf = [0u8; 512];
        let mut w = Writer::new(&mut buf);
        d.write(&mut w)?;
        let n = w.len();
        parse_add_request(&buf[..n])
    }

    fn is_einval(r: Result<Declaration, Error>, msg: &str) -> bool {
        matches!(r, Err(e) if e.errno == code::EINVAL && e.text() == msg)
    }

    #[test]
    fn declaration_round_trip() {
        let d = sample();
        assert_eq!(round_trip(&d), Ok(d));
    }

    #[test]
    fn overlapping_ranges_rejected() {
        let mut d = sample();
        assert!(d.ranges.push(range(85, 100)).is_ok());
        assert!(is_einval(round_trip(&d), "overlapping port ranges"));
    }

    #[test]
    fn peer_list_needs_policy() {
        let mut d = sample();
        assert!(d.ranges.as_mut_slice()[0].peers.push(3).is_ok());
        assert!(d.validate().is_err());
        d.failover = FailoverPolicy::PeerList;
        assert!(d.validate().is_ok());
    }

    #[test]
    fn truncated_attribute_rejected() {
        // nla_len 8 but only 6 bytes present.
        let buf = [8u8, 0, 1, 0, 0, 0];
        let first = Attrs::new(&buf).next();
        assert!(matches!(first, Some(Err(e)) if e.errno == code::EINVAL));
    }

    #[test]
    fn duplicate_node_rejected() {
        let r = sample().conflicts_with(&sample());
        assert!(matches!(r, Err(e) if e.errno == code::EEXIST));
    }
}

/// The snooper with the kernel's own table (rbtree) and allocator (atomic slab chunks under
/// a byte budget), on frames built here.
#[kernel::macros::kunit_tests(permtcp_snoop)]
mod snoop_tests {
    use crate::logic::decl::{Declaration, PortRange};
    use crate::logic::packet::{flags, Addr};
    use crate::logic::seqbuf::{ChunkMem, Pool, CHUNK};
    use crate::logic::snoop::{Filter, FlowKey, FlowMap, Frame, Limits, Snooper};
    use crate::logic::track::{NotReady, Side, State};
    use crate::logic::uapi::proto;
    use crate::snoop::{Chunk, Shard, SynReserve, SYN_RESERVE};
    use core::sync::atomic::AtomicUsize;
    use kernel::prelude::{KVec, GFP_KERNEL};
    use kernel::sync::Arc;

    const OWNER: [u8; 4] = [10, 0, 0, 1];
    const CLIENT: [u8; 4] = [10, 0, 0, 100];

    /// Writes an IPv4/TCP frame without options into `buf`; returns its length.
    #[allow(clippy::too_many_arguments)]
    fn frame(
        buf: &mut [u8],
        from_owner: bool,
        cport: u16,
        seq: u32,
        ack: u32,
        fl: u8,
        data: &[u8],
    ) -> usize {
        let len = 40 + data.len();
        let (src, dst, sport, dport) = if from_owner {
            (OWNER, CLIENT, 80u16, cport)
        } else {
            (CLIENT, OWNER, cport, 80u16)
        };
        buf[..len].fill(0);
        buf[0] = 0x45;
        buf[2..4].copy_from_slice(&(len as u16).to_be_bytes());
        buf[8] = 64;
        buf[9] = 6;
        buf[12..16].copy_from_slice(&src);
        buf[16..20].copy_from_slice(&dst);
        buf[20..22].copy_from_slice(&sport.to_be_bytes());
        buf[22..24].copy_from_slice(&dport.to_be_bytes());
        buf[24..28].copy_from_slice(&seq.to_be_bytes());
        buf[28..32].copy_from_slice(&ack.to_be_bytes());
        buf[32] = 5 << 4;
        buf[33] = fl;
        buf[34..36].copy_from_slice(&65535u16.to_be_bytes());
        buf[40..len].copy_from_slice(data);
        len
    }

    /// `n` bytes of `v` on the heap: a KUnit case runs on a kthread's 16 KiB stack, which the
    /// KCSAN kernel's instrumented frames overflowed with the cases' buffers on it.
    fn heap(v: u8, n: usize) -> KVec<u8> {
        KVec::from_elem(v, n, GFP_KERNEL).unwrap_or_default()
    }

    fn snooper(limits: Limits) -> Snooper {
        // The declarations (1.5 KiB each) on the heap: kernel stacks are small.
        let mut decls = KVec::new();
        for _ in 0..2 {
            assert!(decls.push(Declaration::default(), GFP_KERNEL).is_ok());
        }
        let range = PortRange {
            lo: 80,
            hi: 80,
            ..Default::default()
        };
        // Two declarations unless the pushes above failed (and said so).
        if let [owner, me] = &mut decls[..] {
            (owner.node_id, owner.proto) = (1, proto::TCP);
            (me.node_id, me.proto, me.local) = (2, proto::TCP, true);
            let ok = owner.addrs4.push(OWNER).is_ok()
                && owner.ranges.push(range).is_ok()
                && me.addrs4.push([10, 0, 0, 2]).is_ok()
                && me.ranges.push(range).is_ok();
            assert!(ok);
        }
        Snooper::new(Filter::compile(decls.iter()), limits)
    }

    /// The retained-data chunk is never zeroed when allocated: only what was stored can be
    /// read, a store past the stored part zeroes the gap, a failed copy keeps what was there.
    #[test]
    fn chunk_reads_only_what_was_stored() {
        let Some(mut c) = Chunk::new(GFP_KERNEL) else {
            assert!(false);
            return;
        };
        let src = [0xabu8; 64];
        let mut out = [0u8; 16];
        assert!(!c.load(0, &mut out[..1]));
        assert!(c.store(0, 16, &src[..], 0));
        assert!(c.load(0, &mut out));
        assert!(out == [0xab; 16]);
        assert!(!c.load(8, &mut out));
        // Out of order: [100, 116) stored; the gap [16, 100) reads as zeroes.
        assert!(c.store(100, 16, &src[..], 0));
        assert!(c.load(90, &mut out));
        assert!(out[..10] == [0; 10] && out[10..] == [0xab; 6]);
        assert!(!c.load(110, &mut out));
        // A copy beyond the frame fails; what was stored stays.
        assert!(!c.store(200, 16, &src[..], 60));
        assert!(c.load(184, &mut out));
        assert!(out == [0; 16]);
        assert!(!c.load(200, &mut out[..1]));
        // Past the chunk's end.
        assert!(!c.store(CHUNK - 8, 16, &src[..], 0));
        assert!(c.store(CHUNK - 16, 16, &src[..], 0));
        assert!(c.load(CHUNK - 16, &mut out));
        assert!(!c.load(CHUNK - 8, &mut out));
    }

    #[test]
    fn handshake_data_and_readback() {
        let mut s = snooper(Limits::default());
        let Ok(pool) = Arc::new(Pool::new(1 << 20), GFP_KERNEL) else {
            assert!(false);
            return;
        };
        // One shard of the kernel's table, as the hook uses it.
        let mut shard = Shard::new(pool.clone(), false);
        let total = AtomicUsize::new(0);
        let (mut map, _, alloc) = shard.parts(&total, 4096, None);
        let mut buf = heap(0, 1500);
        let mut data = heap(0, 1000);
        assert!(buf.len() == 1500 && data.len() == 1000);
        for (i, b) in data.iter_mut().enumerate() {
            *b = i as u8;
        }
        let steps: [(bool, u32, u32, u8, &[u8]); 4] = [
            (false, 100, 0, flags::SYN, &[]),
            (true, 900, 101, flags::SYN | flags::ACK, &[]),
            (false, 101, 901, flags::ACK, &[]),
            (true, 901, 101, flags::ACK | flags::PSH, &data),
        ];
        for (from_owner, seq, ack, fl, payload) in steps {
            let n = frame(&mut buf, from_owner, 40000, seq, ack, fl, payload);
            s.on_frame(&mut map, alloc, Frame::of(&buf[..n]), |_| true, 1);
        }
        let key = FlowKey {
            owner_addr: Addr::v4(OWNER),
            owner_port: 80,
            client_addr: Addr::v4(CLIENT),
            client_port: 40000,
        };
        let Some(c) = map.get_mut(&key) else {
            // Fails the case (the macro turns assert! into a KUnit assertion); no panic.
            assert!(false);
            return;
        };
        assert_eq!(c.state, State::Established);
        assert_eq!(c.readiness(), Ok(()));
        assert_eq!(c.side(Side::Owner).data.held(), 1000);
        let mut back = heap(0, 1000);
        assert!(back.len() == 1000 && c.side(Side::Owner).data.read(901, &mut back));
        assert!(back[..] == data[..]);
        // One chunk of data, plus the slot table and the entry: all of it counted.
        assert_eq!(c.side(Side::Owner).data.chunks(), 1);
        assert!(pool.used() > CHUNK as u64);
        assert_eq!(pool.used(), u64::from(c.mem));
        c.release(alloc);
        assert_eq!(pool.used(), 0);
    }

    #[test]
    fn limits_are_enforced() {
        let mut s = snooper(Limits {
            max_conns: 1,
            max_bytes: CHUNK as u64,
            ..Limits::default()
        });
        let Ok(pool) = Arc::new(Pool::new(CHUNK as u64), GFP_KERNEL) else {
            assert!(false);
            return;
        };
        let mut shard = Shard::new(pool.clone(), false);
        let total = AtomicUsize::new(0);
        let (mut map, _, alloc) = shard.parts(&total, 1, None);
        let mut buf = heap(0, 1500);
        assert!(buf.len() == 1500);
        let n = frame(&mut buf, false, 1000, 7, 0, flags::SYN, &[]);
        s.on_frame(&mut map, alloc, Frame::of(&buf[..n]), |_| true, 1);
        let n = frame(&mut buf, true, 1000, 50, 8, flags::SYN | flags::ACK, &[]);
        s.on_frame(&mut map, alloc, Frame::of(&buf[..n]), |_| true, 1);
        let n = frame(&mut buf, false, 1000, 8, 51, flags::ACK, &[]);
        s.on_frame(&mut map, alloc, Frame::of(&buf[..n]), |_| true, 1);
        // The table is full of an established connection: a new one is not tracked.
        let n = frame(&mut buf, false, 1001, 7, 0, flags::SYN, &[]);
        s.on_frame(&mut map, alloc, Frame::of(&buf[..n]), |_| true, 1);
        assert_eq!(map.len(), 1);
        assert_eq!(s.counters.conn_limit, 1);
        // Two chunks of data against a one-chunk budget.
        let big = heap(7, 1400);
        assert!(big.len() == 1400);
        let mut seq = 51u32;
        for _ in 0..4 {
            let n = frame(&mut buf, true, 1000, seq, 8, flags::ACK, &big);
            s.on_frame(&mut map, alloc, Frame::of(&buf[..n]), |_| true, 1);
            seq += 1400;
        }
        assert!(pool.refused() > 0);
        let key = FlowKey {
            owner_addr: Addr::v4(OWNER),
            owner_port: 80,
            client_addr: Addr::v4(CLIENT),
            client_port: 1000,
        };
        let Some(c) = map.get_mut(&key) else {
            // Fails the case (the macro turns assert! into a KUnit assertion); no panic.
            assert!(false);
            return;
        };
        assert_eq!(c.readiness(), Err(NotReady::NoMemory(Side::Owner)));
        c.release(alloc);
    }

    #[test]
    fn syn_reserve_gives_out_and_is_topped_up() {
        let Ok(r) = SynReserve::new(GFP_KERNEL) else {
            assert!(false);
            return;
        };
        assert_eq!(r.len(), SYN_RESERVE);
        for _ in 0..3 {
            assert!(r.take().is_some());
        }
        assert_eq!(r.len(), SYN_RESERVE - 3);
        r.top_up(GFP_KERNEL);
        assert_eq!(r.len(), SYN_RESERVE);
        // Emptied, it gives nothing more until it is topped up.
        for _ in 0..SYN_RESERVE {
            assert!(r.take().is_some());
        }
        assert!(r.take().is_none());
        r.top_up(GFP_KERNEL);
        assert_eq!(r.len(), SYN_RESERVE);
    }
}

/// What a takeover keeps: the records of taken-over connections (TAKEN_GET, CONN_DATA_GET),
/// bounded in count and bytes, each key's newest record found by its key, the bounds kept
/// without shifting the list once a record; and the set of served connections, merged in one
/// pass, and split in shards.
#[kernel::macros::kunit_tests(permtcp_takeover)]
mod takeover_tests {
    use crate::glue::{Chunk, HeldSkb};
    use crate::logic::packet::Addr;
    use crate::logic::seqbuf::{ChunkAlloc, SeqBuf, CHUNK};
    use crate::logic::snoop::{Filter, FlowKey, Limits};
    use crate::logic::snoopnl::TakenInfo;
    use crate::logic::track::{Conn, Side, State};
    use crate::netns::{HandedShards, KeySet, KeyShards};
    use crate::rebuild::Sent;
    use crate::snoop::{Alloc, KSlots};
    use crate::snoop::{Snoop, Taking};
    use crate::takeover::{Taken, TakenList, MAX_TAKEN, MAX_TAKEN_BYTES};
    use kernel::prelude::*;

    fn key(i: u32) -> FlowKey {
        FlowKey {
            owner_addr: Addr::v4([10, 0, 0, 1]),
            owner_port: 80,
            client_addr: Addr::v4([10, 1, (i >> 8) as u8, i as u8]),
            client_port: 1000,
        }
    }

    /// Chunks from the slab with GFP_KERNEL: the mirror's own (GFP_NOWAIT, for softirq
    /// context) fail now and then when a suite takes tens of megabytes in a row, and a
    /// failed assertion ends a KUnit test without dropping what it holds.
    struct ProcessChunks;

    impl ChunkAlloc for ProcessChunks {
        type Chunk = Chunk;
        type Slots = KSlots;
        type Held = HeldSkb;

        fn alloc(&mut self) -> Option<Chunk> {
            Chunk::new(GFP_KERNEL)
        }

        fn free(&mut self, chunk: Chunk) {
            drop(chunk);
        }
    }

    /// `n` sent bytes `b` from sequence number 0, as a takeover hands them over; `None`
    /// without memory.
    fn sent_bytes(b: u8, n: usize) -> Option<Sent> {
        let bytes = KVVec::from_elem(b, n, GFP_KERNEL).ok()?;
        let len = u32::try_from(n).ok()?;
        let slots = KSlots::with_len(n.div_ceil(CHUNK), GFP_KERNEL)?;
        let mut data = SeqBuf::<Alloc>::with_slots(0, slots);
        data.write(&mut ProcessChunks, 0, len, &bytes[..], 0).ok()?;
        Sent::from_buf(data, 0, len)
    }

    /// A record of connection `i` (reported offset `offset`) with `sent` bytes, or `None`
    /// without memory.
    fn record(i: u32, offset: u32, sent: usize) -> Option<Taken> {
        let sent = sent_bytes(i as u8, sent)?;
        let info = TakenInfo {
            key: key(i),
            sent_offset: offset,
            ..Default::default()
        };
        Some(Taken {
            info,
            at_ms: 0,
            sent,
        })
    }

    /// Keeps a record of connection `i` (reported offset `offset`) with `sent` bytes;
    /// whether there was memory for it.
    fn push(list: &mut TakenList, i: u32, offset: u32, sent: usize) -> bool {
        record(i, offset, sent).map(|t| list.push(t)).is_some()
    }

    /// Records kept a takeover's batch at a time find the same newest record per key as
    /// records kept one by one: keys taken over again (in an earlier batch, and twice in
    /// one), batches out of key order, and batches past the bound that trim the list.
    #[test]
    fn records_kept_by_batch_are_found_as_one_by_one() {
        let (mut one, mut batch) = (TakenList::default(), TakenList::default());
        // Connection `i`'s offset tells its records apart: batch `b` gives it `b`.
        let batches: [&[u32]; 5] = [
            &[1, 2, 3, 5, 8],
            &[9, 7, 5, 3, 1],
            &[4, 4, 6, 2],
            &[],
            &[0, 10, 11],
        ];
        for (b, keys) in batches.iter().enumerate() {
            let mut recs = KVec::new();
            for &i in keys.iter() {
                assert!(push(&mut one, i, b as u32 * 100 + i, 8));
                let Some(t) = record(i, b as u32 * 100 + i, 8) else {
                    assert!(false);
                    return;
                };
                assert!(recs.push(t, GFP_KERNEL).is_ok());
            }
            batch.push_all(keys.len(), recs.into_iter());
        }
        // The batch `[4, 4, ...]` gave 4 two records: both kept, the second found.
        assert_eq!((batch.len(), batch.keys()), (one.len(), one.keys()));
        assert_eq!((batch.len(), batch.keys()), (17, 12));
        for i in 0..13 {
            let off = |l: &TakenList| l.find(&key(i)).map(|t| t.info.sent_offset);
            assert_eq!(off(&batch), off(&one));
        }
        assert_eq!(batch.find(&key(5)).map(|t| t.info.sent_offset), Some(105));
        assert_eq!(batch.find(&key(4)).map(|t| t.info.sent_offset), Some(204));
        assert!(batch.find(&key(12)).is_none());
        // A batch past the bound: the oldest go, with their keys; the batch's are found.
        let n = MAX_TAKEN as u32;
        let mut recs = KVec::new();
        for i in 1000..1000 + n {
            let Some(t) = record(i, i, 0) else {
                assert!(false);
                return;
            };
            assert!(recs.push(t, GFP_KERNEL).is_ok());
        }
        batch.push_all(n as usize, recs.into_iter());
        assert_eq!(batch.len(), MAX_TAKEN - MAX_TAKEN / 8);
        assert_eq!(batch.keys(), batch.len());
        assert!(batch.find(&key(5)).is_none());
        assert!(batch
            .find(&key(1000 + n - batch.len() as u32 - 1))
            .is_none());
        assert_eq!(
            batch
                .find(&key(1000 + n - batch.len() as u32))
                .map(|t| t.info.sent_offset),
            Some(1000 + n - batch.len() as u32)
        );
        assert_eq!(
            batch.find(&key(999 + n)).map(|t| t.info.sent_offset),
            Some(999 + n)
        );
    }

    #[test]
    fn records_are_bounded_in_count_and_found_by_key() {
        let mut list = TakenList::default();
        let total = (MAX_TAKEN + MAX_TAKEN / 4) as u32;
        let mut most = 0;
        for i in 0..total {
            // No bytes: the count is bounded here (bytes are, below).
            assert!(push(&mut list, i, i, 0));
            most = most.max(list.len());
        }
        assert!(most <= MAX_TAKEN);
        // Trimmed to seven eighths whenever past the bound, then filled again.
        let mut kept = 0;
        for _ in 0..total {
            kept += 1;
            if kept > MAX_TAKEN {
                kept = MAX_TAKEN - MAX_TAKEN / 8;
            }
        }
        assert!(kept < MAX_TAKEN);
        assert_eq!((list.len(), list.keys()), (kept, kept));
        // The oldest went, the newest are there, each with its own record.
        assert!(list.find(&key(0)).is_none());
        assert!(list.find(&key(total - kept as u32 - 1)).is_none());
        let first = total - kept as u32;
        assert_eq!(
            list.find(&key(first)).map(|t| t.info.sent_offset),
            Some(first)
        );
        assert_eq!(
            list.find(&key(total - 1)).map(|t| t.info.sent_offset),
            Some(total - 1)
        );
        // A connection taken over again: its newer record is the one found.
        assert!(push(&mut list, total - 1, 7, 0));
        assert_eq!(
            list.find(&key(total - 1)).map(|t| t.info.sent_offset),
            Some(7)
        );
        assert_eq!((list.len(), list.keys()), (kept + 1, kept));
    }

    #[test]
    fn records_are_bounded_in_memory() {
        // The bound scaled down 1024 times: the same trim as 64 MiB of records of 5 MiB,
        // without 80 MiB of chunks allocated and freed at every module load (every
        // selftest's load runs the suites).
        let max = MAX_TAKEN_BYTES >> 10;
        let mut list = TakenList::with_max_bytes(max);
        let each = 5 << 10;
        // A record's memory: its two 4 KiB chunks and its slot table, more than its bytes.
        let Some(mem) = record(99, 0, each).map(|t| t.sent.memory()) else {
            assert!(false);
            return;
        };
        assert!(mem >= 2 * CHUNK);
        for i in 0..16 {
            assert!(push(&mut list, i, i, each));
        }
        // 64 KiB hold seven records of 8 KiB and a little: the nine oldest went (counting
        // bytes, twelve of 5 KiB stayed).
        let kept = max / mem;
        assert_eq!(kept, 7);
        assert_eq!((list.len(), list.keys()), (kept, kept));
        assert!(list.memory() <= max && list.memory() == kept * mem);
        let first = 16 - kept as u32;
        assert!(list.find(&key(first - 1)).is_none());
        assert_eq!(
            list.find(&key(first)).map(|t| t.info.sent_offset),
            Some(first)
        );
    }

    /// A takeover's two passes over the mirror: the connections this node takes are picked
    /// (keys only, nothing moves), then moved out by key; one closed or gone in between
    /// stays, as the policy's other peer's does (marked followed).
    #[test]
    fn picked_then_taken_by_key() {
        let Ok(snoop) = KBox::pin_init(Snoop::new(), GFP_KERNEL) else {
            assert!(false);
            return;
        };
        assert!(snoop
            .start(Limits::default(), Filter::default(), false)
            .is_ok());
        let live = || Conn::empty(Side::Client, State::Established, 0);
        for i in 1..=4 {
            assert!(snoop.seed(key(i), live()));
        }
        // Connection 2 is another peer's; without room for one key, one is not picked.
        let whose = |k: &FlowKey| Some(*k != key(2));
        let (Ok(mut keys), Ok(mut one)) = (
            KVec::with_capacity(8, GFP_KERNEL),
            KVec::with_capacity(1, GFP_KERNEL),
        ) else {
            assert!(false);
            return;
        };
        assert_eq!(snoop.pick_mine(whose, &mut one), (2, 1));
        // Connection 2, followed since the first pick, is left alone now.
        assert_eq!(snoop.pick_mine(whose, &mut keys), (0, 0));
        crate::logic::sort::sort(&mut keys);
        assert!(keys[..] == [key(1), key(3), key(4)]);
        assert_eq!(snoop.len(), 4);
        // Picking moved nothing; connection 2 is followed from now on.
        assert!(snoop.with_conn(&key(2), |c| c.is_some_and(|c| c.followed)));
        // In between, connection 3 goes and connection 4 is over (TIME-WAIT).
        snoop.forget(&key(3));
        assert!(snoop.seed(key(4), Conn::empty(Side::Client, State::TimeWait, 0)));
        let Ok(mut out) = Taking::with_capacity(3, GFP_KERNEL) else {
            assert!(false);
            return;
        };
        assert_eq!(snoop.take_keys(&keys, &mut out), 2);
        assert_eq!(out.len(), 1);
        assert!(out[0].0 == key(1));
        assert!(!snoop.holds(&key(1)) && !snoop.holds(&key(3)));
        assert!(snoop.holds(&key(2)) && snoop.holds(&key(4)));
        assert_eq!(snoop.len(), 2);
        // Their data goes back to the budget (none here), and the run ends.
        drop(snoop.put_back(&mut out, |_| false, &mut KVec::new()));
        snoop.stop();
    }

    #[test]
    fn served_keys_merge_sorted_without_duplicates() {
        let mut set = KeySet::default();
        let keys = |ids: &[u32]| -> KVec<FlowKey> {
            let mut v = KVec::new();
            for &i in ids {
                let _ = v.push(key(i), GFP_KERNEL);
            }
            v
        };
        for (more, want) in [
            (&[3u32, 1, 5][..], &[1u32, 3, 5][..]),
            (&[0, 3, 6, 6, 2][..], &[0, 1, 2, 3, 5, 6][..]),
            (&[7][..], &[0, 1, 2, 3, 5, 6, 7][..]),
        ] {
            let mut more = keys(more);
            crate::logic::sort::sort(&mut more);
            let Ok(room) = KVec::with_capacity(set.len() + more.len(), GFP_KERNEL) else {
                assert!(false);
                return;
            };
            let _old = set.merge(&more, room);
            assert_eq!(set.len(), want.len());
            for &i in want {
                assert!(set.contains(&key(i)));
            }
            assert!(!set.contains(&key(4)));
        }
        assert!(set.remove(&key(3)));
        assert!(!set.contains(&key(3)) && set.len() == 6);
    }

    /// The served set split in shards: keys added (duplicates and keys already there
    /// counted once) are found in their shards, removed one by one, the count kept.
    #[test]
    fn served_keys_in_shards() {
        let Ok(set) = KBox::pin_init(
            KeyShards::new(c"test_served", kernel::static_lock_class!()),
            GFP_KERNEL,
        ) else {
            assert!(false);
            return;
        };
        let sorted = |ids: core::ops::Range<u32>| -> KVec<FlowKey> {
            let mut v = KVec::new();
            for i in ids {
                let _ = v.push(key(i), GFP_KERNEL);
            }
            crate::logic::sort::sort(&mut v);
            v
        };
        assert!(set.add(&sorted(0..300)).is_ok());
        assert_eq!(set.len(), 300);
        // 200..300 again: only 300..400 are new.
        assert!(set.add(&sorted(200..400)).is_ok());
        assert_eq!(set.len(), 400);
        assert!((0..400).all(|i| set.contains(&key(i))));
        assert!(!set.contains(&key(400)));
        for i in (0..400).step_by(2) {
            assert!(set.remove(&key(i)));
            assert!(!set.remove(&key(i)));
        }
        assert_eq!(set.len(), 200);
        assert!((0..400).all(|i| set.contains(&key(i)) == (i % 2 == 1)));
        assert!(set.add(&KVec::new()).is_ok());
        assert_eq!(set.len(), 200);
    }

    /// The list of handed-back connections split in shards: a peer's new list replaces its
    /// old one and leaves the other peers', the count follows, and a list past the bound
    /// changes nothing.
    #[test]
    fn handed_back_in_shards() {
        use crate::logic::ops::MAX_HANDED;
        use crate::logic::recovery::Handed;
        let Ok(list) = KBox::pin_init(
            HandedShards::new(c"test_handed", kernel::static_lock_class!()),
            GFP_KERNEL,
        ) else {
            assert!(false);
            return;
        };
        let handed = |ids: core::ops::Range<u32>, node: u32| -> KVec<Handed> {
            let mut v = KVec::new();
            for i in ids {
                let _ = v.push(Handed::new(key(i), node), GFP_KERNEL);
            }
            crate::logic::sort::sort_by_key(&mut v, |h| h.key);
            v
        };
        assert!(list.hand(&handed(0..100, 2), Some(2), 0).is_ok());
        assert!(list.hand(&handed(100..200, 3), Some(3), 0).is_ok());
        assert_eq!(list.len(), 200);
        // Node 2's new list: 50..60 stay (listed again), 0..50 and 60..100 go.
        assert!(list.hand(&handed(50..60, 2), Some(2), 0).is_ok());
        assert_eq!(list.len(), 110);
        assert!((0..200).all(|i| list.holds(&key(i)) == ((50..60).contains(&i) || i >= 100)));
        // Added to (no replacement): node 3's stay.
        assert!(list.hand(&handed(300..310, 3), None, 0).is_ok());
        assert_eq!(list.len(), 120);
        let mut gone = KVec::new();
        for i in 100..150 {
            let _ = gone.push(key(i), GFP_KERNEL);
        }
        crate::logic::sort::sort(&mut gone);
        list.unhand(&gone);
        assert_eq!(list.len(), 70);
        assert!(!list.holds(&key(120)) && list.holds(&key(150)));
        // More than the bound in all: refused, nothing changed.
        let n = (MAX_HANDED - 70 + 1) as u32;
        assert!(list.hand(&handed(1000..1000 + n, 4), None, 0).is_err());
        assert_eq!(list.len(), 70);
        assert!(!list.holds(&key(1000)));
    }
}
