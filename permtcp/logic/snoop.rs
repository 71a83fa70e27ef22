// SPDX-License-Identifier: GPL-2.0

//! The snooper of one network namespace: which frames matter, the table of mirrored
//! connections, its bounds and its counters.
//!
//! The bindings snooped are those of other nodes' declarations that name this node as a
//! permanency peer: with the smallest-id policy every other node of the cluster is a peer,
//! with the peer-list policy only the nodes listed for a port range are. A node without a
//! local declaration is not part of any cluster and snoops nothing.
//!
//! The table itself is the caller's (the kernel uses an rbtree, the host tests a BTreeMap),
//! behind [`FlowMap`]; everything else is here.

use crate::logic::bounded::Bounded;
use crate::logic::decl::{Declaration, FailoverPolicy};
use crate::logic::packet::{self, flags, Addr, Segment, Skip};
use crate::logic::seqbuf::{ChunkAlloc, Payload};
use crate::logic::track::{entry_bytes, Conn, Side, State, Verdict};

/// Maximum snooped bindings (address and port range pairs) per namespace.
pub const MAX_BINDINGS: usize = 64;

/// Most declared MACs a [`Filter`] knows the node of (the rest are unknown: see
/// [`Filter::node_of_mac`]). Small: filters are built on kernel stacks.
pub const MAX_FILTER_MACS: usize = 16;

/// A connection's identity: the owner's end first. Keys order by binding (the owner's
/// address, then port), then client: a binding's connections are contiguous in any sorted
/// run of keys, which the takeover relies on to hand them to their listener together.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct FlowKey {
    /// The owner's (service) address.
    pub owner_addr: Addr,
    /// The owner's port.
    pub owner_port: u16,
    /// The client's address.
    pub client_addr: Addr,
    /// The client's port.
    pub client_port: u16,
}

/// Words of a dump cursor that hold a [`FlowKey`] ([`FlowKey::to_words`]).
pub const KEY_WORDS: usize = 5;

impl FlowKey {
    /// The key as five words, to be kept in a netlink dump's `cb->args` between its rounds
    /// (a dump of the connection table resumes after the last key it sent, so connections
    /// coming and going between rounds neither repeat nor hide others). The first word has
    /// bit 32 set: all zeroes means no key.
    pub fn to_words(&self) -> [u64; KEY_WORDS] {
        let half = |a: &Addr, i: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&a.0[i * 8..i * 8 + 8]);
            u64::from_le_bytes(b)
        };
        [
            1 << 32 | u64::from(self.owner_port) << 16 | u64::from(self.client_port),
            half(&self.owner_addr, 0),
            half(&self.owner_addr, 1),
            half(&self.client_addr, 0),
            half(&self.client_addr, 1),
        ]
    }

    /// The key [`FlowKey::to_words`] stored, or `None` for words that hold none.
    pub fn from_words(w: &[u64; KEY_WORDS]) -> Option<Self> {
        if w[0] >> 32 != 1 {
            return None;
        }
        let addr = |lo: u64, hi: u64| {
            let mut a = [0u8; 16];
            a[..8].copy_from_slice(&lo.to_le_bytes());
            a[8..].copy_from_slice(&hi.to_le_bytes());
            Addr(a)
        };
        Some(FlowKey {
            owner_addr: addr(w[1], w[2]),
            client_addr: addr(w[3], w[4]),
            owner_port: (w[0] >> 16) as u16,
            client_port: w[0] as u16,
        })
    }

    /// The connection of `seg`, whose `owner` end sent it.
    pub fn of(seg: &Segment, owner: Side) -> Self {
        let ((oa, op), (ca, cp)) = match owner {
            Side::Owner => ((seg.src, seg.sport), (seg.dst, seg.dport)),
            Side::Client => ((seg.dst, seg.dport), (seg.src, seg.sport)),
        };
        FlowKey {
            owner_addr: oa,
            owner_port: op,
            client_addr: ca,
            client_port: cp,
        }
    }
}

/// Most shards a sharded table has (see [`shard_count`]).
pub const MAX_SHARDS: usize = 4096;

/// How many shards (each with its own lock) a table of at most `max_conns` connections has:
/// about eight connections each, a power of two between 64 and [`MAX_SHARDS`] (the default
/// 4096 connections: 512 shards; 100,000: 4096, about 25 each).
pub fn shard_count(max_conns: u32) -> usize {
    (max_conns as usize / 8)
        .next_power_of_two()
        .clamp(64, MAX_SHARDS)
}

impl FlowKey {
    /// The shard of the key among `n` (a power of two), mixed with the table's random
    /// `seed` so that an off-path sender cannot aim its connections at one shard. Both
    /// directions of a connection have the same key, hence the same shard.
    ///
    /// Each word is folded in with one multiplication and a rotation (the running value,
    /// hence the seed, enters every step), and splitmix64's finaliser mixes the result
    /// once: about a third of the instructions of the finaliser run after every word, which
    /// every frame paid.
    #[inline(always)]
    pub fn shard(&self, seed: u64, n: usize) -> usize {
        let mut h = seed;
        for w in self.to_words() {
            h = (h ^ w).wrapping_mul(0x9e37_79b9_7f4a_7c15).rotate_left(29);
        }
        h = (h ^ (h >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        h = (h ^ (h >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        h ^= h >> 31;
        (h as usize) & (n - 1)
    }
}

/// A snooped binding: an owned address with a port range.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Binding {
    /// Owned address.
    pub addr: Addr,
    /// First port.
    pub lo: u16,
    /// Last port.
    pub hi: u16,
    /// The owner's node id.
    pub owner: u32,
    /// The owner failed: its connections still mirrored are followed (another peer may
    /// have taken them over, or a fail-over directive may ask for them), no new one starts.
    pub track_only: bool,
}

/// The snooped bindings of a namespace, compiled from its declarations.
///
/// # Invariants
///
/// Every binding's port range lies within `ports` (only [`Filter::compile_failed`] adds
/// bindings, and it widens `ports` with each).
#[derive(Clone, Copy, Debug, Default)]
pub struct Filter {
    /// The bindings.
    pub bindings: Bounded<Binding, MAX_BINDINGS>,
    /// The lowest first port and the highest last port of the bindings (empty: `(0, 0)`,
    /// which no binding's range is outside of): a port outside is no binding's, whatever
    /// the address, which rules out a client's end at once.
    ports: (u16, u16),
    /// Every declared MAC with its node, within [`MAX_FILTER_MACS`]: which node sends a
    /// connection's owner-side frames (see [`Conn::followed`]).
    pub macs: Bounded<([u8; 6], u32), MAX_FILTER_MACS>,
    /// Bindings that did not fit (counted, reported).
    pub dropped: u32,
}

impl Filter {
    /// Builds the filter for the node whose declaration is marked local.
    pub fn compile<'a>(decls: impl Iterator<Item = &'a Declaration> + Clone) -> Filter {
        Self::compile_failed(decls, &|_| false)
    }

    /// [`Self::compile`], with the bindings of nodes `failed` says failed track-only.
    pub fn compile_failed<'a>(
        decls: impl Iterator<Item = &'a Declaration> + Clone,
        failed: &dyn Fn(u32) -> bool,
    ) -> Filter {
        let mut f = Filter::default();
        let Some(me) = decls.clone().find(|d| d.local).map(|d| d.node_id) else {
            return f;
        };
        for d in decls.clone() {
            for m in d.macs.iter() {
                // Past the table a MAC is unknown: its frames change nothing.
                let _ = f.macs.push((*m, d.node_id));
            }
        }
        for d in decls.filter(|d| !d.local) {
            for r in &d.ranges {
                let mine = match d.failover {
                    FailoverPolicy::SmallestId => true,
                    FailoverPolicy::PeerList => r.peers.as_slice().contains(&me),
                };
                if !mine {
                    continue;
                }
                let addrs = d
                    .addrs4
                    .iter()
                    .map(|a| Addr::v4(*a))
                    .chain(d.addrs6.iter().map(|a| Addr(*a)));
                for addr in addrs {
                    let b = Binding {
                        addr,
                        lo: r.lo,
                        hi: r.hi,
                        owner: d.node_id,
                        track_only: failed(d.node_id),
                    };
                    if f.bindings.push(b).is_err() {
                        f.dropped += 1;
                    } else if f.bindings.len() == 1 {
                        f.ports = (b.lo, b.hi);
                    } else {
                        f.ports = (f.ports.0.min(b.lo), f.ports.1.max(b.hi));
                    }
                }
            }
        }
        f
    }

    /// The bindings `addr:port` belongs to.
    fn at<'a>(&'a self, addr: &'a Addr, port: u16) -> impl Iterator<Item = &'a Binding> {
        self.bindings
            .iter()
            .filter(move |b| b.lo <= port && port <= b.hi && b.addr == *addr)
    }

    /// The node that declared `mac`, if the filter knows it.
    pub fn node_of_mac(&self, mac: &[u8; 6]) -> Option<u32> {
        self.macs.iter().find(|(m, _)| m == mac).map(|&(_, n)| n)
    }

    /// Whether `addr:port` is a snooped binding's (the owner's end of a connection).
    pub fn snoops(&self, addr: &Addr, port: u16) -> bool {
        self.at(addr, port).next().is_some()
    }

    /// Whether `other` has the same bindings, in the same order, whatever their track-only
    /// flags: the same connections are snooped under either.
    pub fn same_bindings(&self, other: &Filter) -> bool {
        let key = |b: &Binding| (b.addr, b.lo, b.hi, b.owner);
        self.bindings.len() == other.bindings.len()
            && self
                .bindings
                .iter()
                .zip(other.bindings.iter())
                .all(|(a, b)| key(a) == key(b))
    }

    /// Whether a new connection to `addr:port` may start being mirrored (its owner is live).
    pub fn starts(&self, addr: &Addr, port: u16) -> bool {
        self.at(addr, port).any(|b| !b.track_only)
    }

    /// Which end of `seg` is the owner's, if the segment belongs to a snooped binding.
    pub fn classify(&self, seg: &Segment) -> Option<(Side, FlowKey)> {
        self.classify_bound(seg).map(|(from, key, _)| (from, key))
    }

    /// [`Self::classify`], with what the filter says of the binding (one pass over the
    /// bindings per end, which the frame's tracking then needs no more).
    #[inline(always)]
    pub fn classify_bound(&self, seg: &Segment) -> Option<(Side, FlowKey, Bound)> {
        self.classify_side(seg)
            .map(|(from, b)| (from, FlowKey::of(seg, from), b))
    }

    /// [`Self::classify_bound`] without the key: which end sent the segment, and what the
    /// filter says of the binding. The frame path builds the key once, where it keeps it
    /// (a key built here and moved out with its side was copied again, read wider than
    /// its ports had been written: a store-forwarding stall on every frame, on the host).
    #[inline(always)]
    pub fn classify_side(&self, seg: &Segment) -> Option<(Side, Bound)> {
        if let Some(b) = self.bound(&seg.dst, seg.dport) {
            Some((Side::Client, b))
        } else {
            self.bound(&seg.src, seg.sport).map(|b| (Side::Owner, b))
        }
    }

    /// What the bindings `addr:port` belongs to say, in one pass: the first one's owner
    /// and whether any is live ([`Self::starts`]); `None` when it is not snooped
    /// ([`Self::snoops`]).
    #[inline(always)]
    pub fn bound(&self, addr: &Addr, port: u16) -> Option<Bound> {
        if port < self.ports.0 || port > self.ports.1 {
            return None;
        }
        // A plain loop: the iterator of [`Self::at`] was a call of its own on every frame
        // (not inlined on the host).
        let mut found: Option<Bound> = None;
        for b in self.bindings.iter() {
            if b.lo <= port && port <= b.hi && b.addr == *addr {
                let f = found.get_or_insert(Bound {
                    owner: b.owner,
                    starts: false,
                });
                f.starts |= !b.track_only;
            }
        }
        found
    }
}

/// What the filter says of a snooped connection's binding ([`Filter::bound`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Bound {
    /// The node that declared it (the first binding's).
    pub owner: u32,
    /// A live owner's binding: new connections start being mirrored ([`Filter::starts`]).
    /// Otherwise its owner failed and its connections are only followed (served by the
    /// peers that took them over).
    pub starts: bool,
}

/// What [`FlowMap::insert_syn`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Inserted {
    /// Inserted.
    Yes,
    /// Inserted with an entry allocated ahead: memory was short.
    Reserved,
    /// Not inserted: memory is short (and no entry was left ahead).
    No,
}

/// The connection table, provided by the caller.
pub trait FlowMap<A: ChunkAlloc> {
    /// The connection of `key`.
    fn get_mut(&mut self, key: &FlowKey) -> Option<&mut Conn<A>>;
    /// Inserts a connection (it holds no retained data yet); `false` when memory is short.
    fn insert(&mut self, key: FlowKey, conn: Conn<A>) -> bool;
    /// [`Self::insert`] for a connection seen from its SYN, the one segment that carries its
    /// options (window scale, MSS, SACK): one missed is tracked from mid-stream and is never
    /// ready to take over. Where memory is short, a map may give it an entry allocated ahead
    /// (the module's table keeps `SYN_RESERVE` of them, `permtcp/snoop.rs`); by default, as
    /// [`Self::insert`].
    fn insert_syn(&mut self, key: FlowKey, conn: Conn<A>) -> Inserted {
        if self.insert(key, conn) {
            Inserted::Yes
        } else {
            Inserted::No
        }
    }
    /// Removes a connection.
    fn remove(&mut self, key: &FlowKey) -> Option<Conn<A>>;
    /// Number of connections.
    fn len(&self) -> usize;
    /// Whether the table is empty.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Calls `f` for each connection; removes those for which it returns `false`.
    fn retain(&mut self, f: impl FnMut(&FlowKey, &mut Conn<A>) -> bool);
    /// How many connections [`Self::retain`] visits: [`Self::len`], or a shard's own count
    /// when the map is one shard of a larger table.
    fn scanned(&self) -> usize {
        self.len()
    }
}

/// Default handshake timeout: 20 s without a segment in SYN-SENT, SIM-OPEN or SYN-RECV.
///
/// Linux retransmits a SYN or SYN-ACK after 1, 2, 4, 8, 16 and 32 s: an entry idle for 20 s
/// outlives every gap up to the fifth retransmission (a handshake that loses four segments in
/// a row still completes, 31 s after the first SYN). conntrack's 120 s (SYN-SENT) and 60 s
/// (SYN-RECV) would let a flood of spoofed SYNs hold the table six times longer; the oldest
/// of these entries also make room for new connections when the table is full.
pub const SYN_TIMEOUT_MS: u32 = 20_000;

/// Default idle timeout: 3 hours without a segment in any other state but TIME-WAIT.
///
/// Longer than Linux's keepalive interval (`tcp_keepalive_time`, 2 h), so every connection
/// that uses keepalives stays; shorter than conntrack's 5 days for ESTABLISHED, because a
/// mirrored connection also holds its data, and a client that vanished without FIN or RST
/// should not hold a slot and its bytes for days.
pub const IDLE_TIMEOUT_MS: u32 = 3 * 3600 * 1000;

/// Per-namespace limits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Connections tracked at most; past it a new connection (a SYN) takes the place of the
    /// oldest connections whose handshake is incomplete or that were not seen from their SYN,
    /// or is not tracked when there are none.
    pub max_conns: u32,
    /// Bytes the mirror may allocate at most (retained data, slot tables, table entries);
    /// past it connections lose readiness.
    pub max_bytes: u64,
    /// Client bytes kept behind the owner's acknowledgement at least, for an owner
    /// application that lags behind its kernel (the received-data policy); 0: one window.
    pub keep_received: u32,
    /// Bytes one connection may hold at most, so that one cannot starve the others.
    pub max_conn_bytes: u64,
    /// Milliseconds without a segment after which an incomplete handshake is forgotten.
    pub syn_timeout_ms: u32,
    /// Milliseconds without a segment after which any other connection but one in TIME-WAIT
    /// is forgotten.
    pub idle_timeout_ms: u32,
}

impl Limits {
    /// The default share of one connection for a byte limit and a received-data floor: a
    /// sixteenth of the limit (4 MiB of the default 64 MiB), or the floor plus 1 MiB if that is
    /// more, never more than the limit.
    pub fn conn_share(max_bytes: u64, keep_received: u32) -> u64 {
        (max_bytes / 16)
            .max(u64::from(keep_received) + (1 << 20))
            .min(max_bytes)
    }

    /// Whether these limits hold no more than the defaults do (more connections, bytes or
    /// longer timeouts need the initial user namespace: a container's root must not pin more
    /// kernel memory than a default mirror).
    pub fn within_defaults(&self) -> bool {
        let d = Limits::default();
        self.max_conns <= d.max_conns
            && self.max_bytes <= d.max_bytes
            && self.keep_received <= d.max_bytes as u32 / 16
            && self.max_conn_bytes <= d.max_conn_bytes
            && self.syn_timeout_ms <= d.syn_timeout_ms
            && self.idle_timeout_ms <= d.idle_timeout_ms
    }
}

impl Default for Limits {
    fn default() -> Self {
        let max_bytes = 64 << 20;
        Limits {
            max_conns: 4096,
            max_bytes,
            keep_received: 0,
            max_conn_bytes: Self::conn_share(max_bytes, 0),
            syn_timeout_ms: SYN_TIMEOUT_MS,
            idle_timeout_ms: IDLE_TIMEOUT_MS,
        }
    }
}

/// Counters, all monotonic.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// Frames handed to the snooper.
    pub frames: u64,
    /// Frames that were not TCP over IPv4/IPv6.
    pub not_tcp: u64,
    /// IP fragments (not tracked).
    pub fragments: u64,
    /// Malformed headers.
    pub malformed: u64,
    /// Checksum failures.
    pub bad_csum: u64,
    /// Segments of snooped bindings.
    pub matched: u64,
    /// Connections created from a SYN.
    pub conns_synced: u64,
    /// Connections first seen after their SYN.
    pub conns_unsynced: u64,
    /// New connections (SYNs) not tracked because the table was full or memory short.
    pub conn_limit: u64,
    /// Chunks refused because the byte budget was spent.
    pub byte_limit: u64,
    /// Connections removed after a RST.
    pub resets: u64,
    /// TIME_WAIT connections that ended.
    pub expired: u64,
    /// TIME_WAIT connections ended early by a new SYN on the same binding.
    pub tw_reused: u64,
    /// Segments ignored as out of window or inconsistent.
    pub invalid: u64,
    /// Incomplete handshakes forgotten after [`Limits::syn_timeout_ms`].
    pub syn_timeouts: u64,
    /// Connections forgotten after [`Limits::idle_timeout_ms`] without a segment.
    pub idle_timeouts: u64,
    /// Connections (incomplete handshakes, not seen from their SYN) dropped, oldest first,
    /// to make room for a new one in a full table.
    pub early_drops: u64,
    /// SYNs tracked with a table entry allocated ahead ([`FlowMap::insert_syn`]), memory
    /// being short then.
    pub syn_reserved: u64,
}

/// A received frame as the snooper reads it.
pub struct Frame<'a, P: Payload + ?Sized> {
    /// The first bytes of its network header (at most [`packet::HEADER_MAX`] are parsed).
    pub hdr: &'a [u8],
    /// Its network-layer length (for GSO/GRO frames, all their segments together; for short
    /// frames, Ethernet padding included).
    pub l3_len: usize,
    /// It is a GSO/GRO super-packet: an IP length field of 0 means `l3_len` (BIG TCP).
    pub gso: bool,
    /// Reads any of its bytes, counted from the network header.
    pub payload: &'a P,
    /// Its source MAC, when the device has Ethernet headers.
    pub src_mac: Option<[u8; 6]>,
}

impl<'a> Frame<'a, [u8]> {
    /// A frame whose bytes are all in `bytes`.
    pub fn of(bytes: &'a [u8]) -> Self {
        Frame {
            hdr: bytes,
            l3_len: bytes.len(),
            gso: false,
            payload: bytes,
            src_mac: None,
        }
    }
}

/// What the snooper did with one frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Not a segment of a snooped binding.
    Ignored,
    /// Tracked.
    Tracked,
    /// A client's segment to a binding whose owner failed (track-only), other than a new
    /// connection's SYN: tracked if mirrored, and to be steered into this host's stack when
    /// this node serves the connection after a takeover (a socket of it exists here), even
    /// though the frame is addressed to another node's MAC (the address's ARP owner's).
    ToFailed(FlowKey),
}

/// What a takeover of a failed node does with one mirrored connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pick {
    /// Left as it is: not the failed node's, over (TIME-WAIT: followed until its deadline,
    /// neither rebuilt, passed on nor reset), or served elsewhere since an earlier takeover.
    Leave,
    /// The policy gives it to this node: taken out of the mirror and rebuilt.
    Take,
    /// The policy gives it to another peer: left in the mirror, followed from now on, since
    /// another node serves it (marked [`Conn::followed`]).
    Other,
}

/// What a takeover does with `conn`; `whose`: `None` when it is not a connection of the
/// failed node's bindings, else whether the fail-over policy ranks this node first for it.
///
/// A connection marked followed was given to another node by an earlier takeover of the same
/// owner: when the owner rejoined (REJOIN) and failed again, that node (not the owner) still
/// serves it, so this node must neither rebuild it (two nodes would answer for it) nor reset
/// it.
pub fn pick<A: ChunkAlloc>(conn: &Conn<A>, whose: Option<bool>) -> Pick {
    let over = matches!(conn.state, State::TimeWait | State::Closed);
    match whose {
        None => Pick::Leave,
        Some(_) if over || conn.followed => Pick::Leave,
        Some(false) => Pick::Other,
        Some(true) => Pick::Take,
    }
}

/// A namespace's snooper over one table: the host tests' and the fuzzers' form of the
/// snooping path. The kernel splits its table into shards, each behind its own lock, and
/// applies the same [`Rules`] to the shard of each frame's connection.
pub struct Snooper {
    /// Snooped bindings.
    pub filter: Filter,
    /// Bounds.
    pub limits: Limits,
    /// Counters.
    pub counters: Counters,
    /// At least how many connections of bindings the filter does not snoop the table holds
    /// ([`Self::seed`]: this node's own, handed off to a peer): while there are any, a
    /// segment the filter passes over is looked up in the table.
    pub seeded: usize,
}

impl Counters {
    /// Counts a frame [`parse_frame`] skipped.
    pub fn skipped(&mut self, why: Skip) {
        match why {
            Skip::NotTcp => self.not_tcp += 1,
            Skip::Fragment => self.fragments += 1,
            Skip::Malformed => self.malformed += 1,
        }
    }

    /// Adds `o`'s counts to these (the kernel sums its shards' counters).
    pub fn add(&mut self, o: &Counters) {
        let mine = [
            &mut self.frames,
            &mut self.not_tcp,
            &mut self.fragments,
            &mut self.malformed,
            &mut self.bad_csum,
            &mut self.matched,
            &mut self.conns_synced,
            &mut self.conns_unsynced,
            &mut self.conn_limit,
            &mut self.byte_limit,
            &mut self.resets,
            &mut self.expired,
            &mut self.tw_reused,
            &mut self.invalid,
            &mut self.syn_timeouts,
            &mut self.idle_timeouts,
            &mut self.early_drops,
            &mut self.syn_reserved,
        ];
        let theirs = [
            o.frames,
            o.not_tcp,
            o.fragments,
            o.malformed,
            o.bad_csum,
            o.matched,
            o.conns_synced,
            o.conns_unsynced,
            o.conn_limit,
            o.byte_limit,
            o.resets,
            o.expired,
            o.tw_reused,
            o.invalid,
            o.syn_timeouts,
            o.idle_timeouts,
            o.early_drops,
            o.syn_reserved,
        ];
        for (m, t) in mine.into_iter().zip(theirs) {
            *m = m.wrapping_add(t);
        }
    }
}

/// The TCP segment a frame carries, parsed, or why the snooper skips it (counted by
/// [`Counters::skipped`]). Needs no table: the kernel parses before it takes a lock.
pub fn parse_frame<P: Payload + ?Sized>(frame: &Frame<'_, P>) -> Result<Segment, Skip> {
    if frame.gso {
        packet::parse_gso(frame.hdr, frame.l3_len)
    } else {
        packet::parse(frame.hdr, frame.l3_len)
    }
}

/// What the snooper decides, read-only: its filter and its limits. Applied to a table, or
/// to the one shard of a sharded table that holds the connection at hand (the kernel's:
/// every decision about a connection involves only its own entry, so shards need no common
/// lock; [`FlowMap::len`] is the whole table's count and [`FlowMap::insert`] refuses past
/// [`Limits::max_conns`]). The counters and the map are the caller's.
#[derive(Clone, Copy)]
pub struct Rules<'a> {
    /// Snooped bindings.
    pub filter: &'a Filter,
    /// Bounds.
    pub limits: &'a Limits,
}

impl Rules<'_> {
    /// Mirrors connection `key` from now on, as `conn` (a [`crate::logic::handoff::seeded`]
    /// entry) describes it, in place of any entry it had; `false` when the table or the
    /// budget is full. A connection of a binding the filter does not snoop is followed too
    /// (the caller counts it among the seeded ones when this returns true and
    /// [`Filter::snoops`] does not).
    pub fn seed<A: ChunkAlloc, M: FlowMap<A>>(
        &self,
        map: &mut M,
        alloc: &mut A,
        key: FlowKey,
        mut conn: Conn<A>,
    ) -> bool {
        if let Some(mut old) = map.remove(&key) {
            old.release(alloc);
        }
        let entry = entry_bytes::<A>();
        if map.len() >= self.limits.max_conns as usize || !alloc.charge(entry) {
            return false;
        }
        conn.keep_received = self.limits.keep_received;
        conn.set_share(self.limits.max_conn_bytes, entry);
        if !map.insert(key, conn) {
            alloc.uncharge(entry);
            return false;
        }
        true
    }

    /// Tracks a segment of connection `key` that passed the filter (or is a seeded
    /// connection's) and its checksum check, which `from` sent; `src_mac` is its frame's
    /// source MAC. Counts it as matched.
    #[allow(clippy::too_many_arguments)]
    ///
    /// `bound` is what [`Filter::bound`] says of the connection's binding, as
    /// [`Filter::classify_bound`] found it (a seeded connection's binding is not snooped:
    /// `None`).
    pub fn track<A: ChunkAlloc, M: FlowMap<A>>(
        &self,
        c: &mut Counters,
        map: &mut M,
        alloc: &mut A,
        (from, key): (Side, &FlowKey),
        bound: Option<Bound>,
        seg: &Segment,
        payload: &(impl Payload + ?Sized),
        src_mac: Option<[u8; 6]>,
        now_ms: u64,
    ) -> Outcome {
        c.matched += 1;
        // Owner-side frames from a declared node other than the binding's owner: that node
        // serves the connection (it took it over or it was handed off to it) and it is
        // followed here ([`Conn::followed`]); from the owner: it serves it again (handed
        // back). A MAC nobody declared changes nothing.
        let followed = match (from, src_mac, bound) {
            (Side::Owner, Some(mac), Some(b)) => self
                .filter
                .node_of_mac(&mac)
                .map(|sender| sender != b.owner),
            _ => None,
        };
        let starts = bound.is_some_and(|b| b.starts);
        let to_failed =
            from == Side::Client && bound.is_some_and(|b| !b.starts) && !seg.is_new_syn();
        if to_failed {
            // The frame may go on to this host's stack ([`Outcome::ToFailed`]).
            payload.goes_on();
        }
        self.segment(
            c,
            map,
            alloc,
            (from, key),
            starts,
            followed,
            seg,
            payload,
            now_ms,
        );
        if to_failed {
            Outcome::ToFailed(*key)
        } else {
            Outcome::Tracked
        }
    }

    /// Processes a parsed segment of a snooped binding, which `from` sent on connection
    /// `key`.
    #[allow(clippy::too_many_arguments)]
    pub fn on_segment<A: ChunkAlloc, M: FlowMap<A>>(
        &self,
        c: &mut Counters,
        map: &mut M,
        alloc: &mut A,
        (from, key): (Side, FlowKey),
        seg: &Segment,
        payload: &(impl Payload + ?Sized),
        now_ms: u64,
    ) {
        let starts = self.filter.starts(&key.owner_addr, key.owner_port);
        self.segment(
            c,
            map,
            alloc,
            (from, &key),
            starts,
            None,
            seg,
            payload,
            now_ms,
        );
    }

    /// [`Self::on_segment`]: `starts` says whether a new connection of the binding starts
    /// being mirrored ([`Filter::starts`]); the connection's [`Conn::followed`] becomes
    /// `followed`, if any, unless the mirror refused the segment (out of window: a forged
    /// one does not move a connection to another node) or forgot the connection.
    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    fn segment<A: ChunkAlloc, M: FlowMap<A>>(
        &self,
        c: &mut Counters,
        map: &mut M,
        alloc: &mut A,
        (from, key): (Side, &FlowKey),
        starts: bool,
        followed: Option<bool>,
        seg: &Segment,
        payload: &(impl Payload + ?Sized),
        now_ms: u64,
    ) {
        let fresh_syn = seg.is_new_syn();
        if let Some(conn) = map.get_mut(key) {
            // A new connection on the binding ends TIME_WAIT (or a dead entry) at once.
            let over = matches!(
                conn.state,
                State::TimeWait | State::Closed | State::Unsynced
            );
            if !(fresh_syn && over) {
                match conn.on_segment(alloc, from, seg, payload, now_ms) {
                    Verdict::Keep => {
                        if let Some(f) = followed {
                            conn.followed = f;
                        }
                    }
                    Verdict::Invalid => c.invalid += 1,
                    Verdict::Reset => {
                        c.resets += 1;
                        if let Some(mut old) = map.remove(key) {
                            old.release(alloc);
                        }
                    }
                }
                return;
            }
            if conn.state == State::TimeWait {
                c.tw_reused += 1;
            }
            if let Some(mut old) = map.remove(key) {
                old.release(alloc);
            }
        }
        self.open(c, map, alloc, (from, key), starts, followed, seg, now_ms);
    }

    /// The rest of [`Self::segment`] for a segment of no connection in the table: a new
    /// entry, when the binding starts new connections and the table has room. Out of line:
    /// it builds a connection on the stack, which every frame of the hot path would
    /// otherwise make room for.
    #[allow(clippy::too_many_arguments)]
    #[inline(never)]
    #[cold]
    fn open<A: ChunkAlloc, M: FlowMap<A>>(
        &self,
        c: &mut Counters,
        map: &mut M,
        alloc: &mut A,
        (from, key): (Side, &FlowKey),
        starts: bool,
        followed: Option<bool>,
        seg: &Segment,
        now_ms: u64,
    ) {
        let fresh_syn = seg.is_new_syn();
        if seg.has(flags::RST) || !starts {
            return;
        }
        if map.len() >= self.limits.max_conns as usize && fresh_syn {
            // A full table makes room for a new connection as conntrack's early_drop does:
            // the oldest entries that are not (yet) worth anything to a takeover go.
            self.early_drop(c, map, alloc, now_ms);
        }
        if map.len() >= self.limits.max_conns as usize {
            // Counted once per connection (its SYN), not for each of its segments.
            if fresh_syn {
                c.conn_limit += 1;
            }
            return;
        }
        let entry = entry_bytes::<A>();
        if !alloc.charge(entry) {
            if fresh_syn {
                c.conn_limit += 1;
            }
            return;
        }
        let mut conn = if fresh_syn {
            Conn::from_syn(from, seg, now_ms)
        } else {
            Conn::unsynced(from, seg, now_ms)
        };
        conn.keep_received = self.limits.keep_received;
        conn.set_share(self.limits.max_conn_bytes, entry);
        if let Some(f) = followed {
            conn.followed = f;
        }
        let inserted = if !fresh_syn {
            map.insert(*key, conn)
        } else {
            match map.insert_syn(*key, conn) {
                Inserted::Yes => true,
                Inserted::Reserved => {
                    c.syn_reserved += 1;
                    true
                }
                Inserted::No => false,
            }
        };
        if !inserted {
            alloc.uncharge(entry);
            c.conn_limit += 1;
        } else if fresh_syn {
            c.conns_synced += 1;
        } else {
            c.conns_unsynced += 1;
        }
    }

    /// Removes the oldest (by last segment) connections whose handshake is incomplete or
    /// that were not seen from their SYN (unless followed: [`Conn::followed`]): a batch of a
    /// 64th of the table (at least one, at most 64), so that a flood pays for two scans of
    /// the table every so many SYNs. Given a shard, the scan and the batch are the shard's
    /// (as conntrack's early_drop looks at a few buckets only): the oldest of the shard the
    /// new connection hashes to go.
    #[inline(never)]
    fn early_drop<A: ChunkAlloc, M: FlowMap<A>>(
        &self,
        c: &mut Counters,
        map: &mut M,
        alloc: &mut A,
        now_ms: u64,
    ) {
        const MAX_BATCH: usize = 64;
        let batch = (map.scanned().min(self.limits.max_conns as usize) / 64).clamp(1, MAX_BATCH);
        // A followed connection (another node serves it) is worth keeping even when it was
        // not seen from its SYN: dropped, its next segment would start an entry that a later
        // takeover of its owner would take for one of its own.
        let droppable = |conn: &Conn<A>| {
            !conn.followed
                && matches!(
                    conn.state,
                    State::SynSent | State::SimultaneousOpen | State::SynReceived | State::Unsynced
                )
        };
        // Two walks, so that only ages are kept (this runs in the hook, on its stack: a
        // batch of keys took 3 KB of it). The first finds the `batch` longest idle times,
        // longest first; the second drops what is idle longer than the shortest of them, and
        // of those idle exactly as long, as many as the batch has, the first ones walked.
        let mut oldest = [0u64; MAX_BATCH];
        let mut n = 0;
        map.retain(|_, conn| {
            let idle = conn.idle_ms(now_ms);
            if droppable(conn) && (n < batch || idle > oldest[n - 1]) {
                let mut i = n.min(batch - 1);
                while i > 0 && oldest[i - 1] < idle {
                    oldest[i] = oldest[i - 1];
                    i -= 1;
                }
                oldest[i] = idle;
                n = (n + 1).min(batch);
            }
            true
        });
        let Some(&least) = oldest[..n].last() else {
            return;
        };
        let mut at_least = oldest[..n].iter().filter(|&&a| a == least).count();
        map.retain(|_, conn| {
            let idle = conn.idle_ms(now_ms);
            if !droppable(conn) || idle < least || (idle == least && at_least == 0) {
                return true;
            }
            if idle == least {
                at_least -= 1;
            }
            conn.release(alloc);
            c.early_drops += 1;
            false
        });
    }

    /// Forgets the connections whose time is up: TIME-WAIT past its deadline, handshakes
    /// idle for [`Limits::syn_timeout_ms`], anything else idle for
    /// [`Limits::idle_timeout_ms`]. Returns how many connections of bindings the filter
    /// does not snoop (seeded ones) remain.
    pub fn expire<A: ChunkAlloc, M: FlowMap<A>>(
        &self,
        c: &mut Counters,
        map: &mut M,
        alloc: &mut A,
        now_ms: u64,
    ) -> usize {
        let (syn, idle) = (
            u64::from(self.limits.syn_timeout_ms),
            u64::from(self.limits.idle_timeout_ms),
        );
        let filter = self.filter;
        let mut seeded = 0;
        map.retain(|key, conn| {
            if !filter.snoops(&key.owner_addr, key.owner_port) {
                seeded += 1;
            }
            let quiet = conn.idle_ms(now_ms);
            let counter = match conn.state {
                State::TimeWait if conn.expired(now_ms) => &mut c.expired,
                State::TimeWait => return true,
                State::SynSent | State::SimultaneousOpen | State::SynReceived if quiet >= syn => {
                    &mut c.syn_timeouts
                }
                _ if quiet >= idle => &mut c.idle_timeouts,
                _ => return true,
            };
            *counter += 1;
            conn.release(alloc);
            false
        });
        seeded
    }
}

impl Snooper {
    /// A snooper with the given filter and limits.
    pub fn new(filter: Filter, limits: Limits) -> Self {
        Snooper {
            filter,
            limits,
            counters: Counters::default(),
            seeded: 0,
        }
    }

    /// Its rules.
    pub fn rules(&self) -> Rules<'_> {
        Rules {
            filter: &self.filter,
            limits: &self.limits,
        }
    }

    /// Mirrors connection `key` from now on (see [`Rules::seed`]).
    pub fn seed<A: ChunkAlloc, M: FlowMap<A>>(
        &mut self,
        map: &mut M,
        alloc: &mut A,
        key: FlowKey,
        conn: Conn<A>,
    ) -> bool {
        let ok = self.rules().seed(map, alloc, key, conn);
        if ok && !self.filter.snoops(&key.owner_addr, key.owner_port) {
            self.seeded += 1;
        }
        ok
    }

    /// Processes one frame; `csum_ok` tells, for a segment of a snooped binding, whether its
    /// TCP checksum verified over its [`Segment::l4_len`] bytes (see
    /// [`packet::tcp_csum_ok`]), or cannot be verified, as with CHECKSUM_PARTIAL; it is not
    /// called for other traffic.
    pub fn on_frame<A: ChunkAlloc, M: FlowMap<A>, P: Payload + ?Sized>(
        &mut self,
        map: &mut M,
        alloc: &mut A,
        frame: Frame<'_, P>,
        csum_ok: impl FnOnce(&Segment) -> bool,
        now_ms: u64,
    ) -> Outcome {
        self.counters.frames += 1;
        // Borrowed where it was parsed, not moved out of the result (a copy).
        let parsed = parse_frame(&frame);
        let seg = match &parsed {
            Ok(s) => s,
            Err(why) => {
                self.counters.skipped(*why);
                return Outcome::Ignored;
            }
        };
        let mut seeded = |seg: &Segment| -> Option<Side> {
            if self.seeded == 0 {
                return None;
            }
            [Side::Client, Side::Owner]
                .into_iter()
                .find(|&from| map.get_mut(&FlowKey::of(seg, from)).is_some())
        };
        let Some((from, bound)) = self
            .filter
            .classify_side(seg)
            .map(|(from, b)| (from, Some(b)))
            .or_else(|| seeded(seg).map(|from| (from, None)))
        else {
            return Outcome::Ignored;
        };
        let key = FlowKey::of(seg, from);
        if !csum_ok(seg) {
            self.counters.bad_csum += 1;
            return Outcome::Ignored;
        }
        let rules = Rules {
            filter: &self.filter,
            limits: &self.limits,
        };
        rules.track(
            &mut self.counters,
            map,
            alloc,
            (from, &key),
            bound,
            seg,
            frame.payload,
            frame.src_mac,
            now_ms,
        )
    }

    /// Processes a parsed segment of a snooped binding (see [`Rules::on_segment`]).
    pub fn on_segment<A: ChunkAlloc, M: FlowMap<A>>(
        &mut self,
        map: &mut M,
        alloc: &mut A,
        fk: (Side, FlowKey),
        seg: &Segment,
        payload: &(impl Payload + ?Sized),
        now_ms: u64,
    ) {
        let rules = Rules {
            filter: &self.filter,
            limits: &self.limits,
        };
        rules.on_segment(&mut self.counters, map, alloc, fk, seg, payload, now_ms);
    }

    /// Forgets the connections whose time is up (see [`Rules::expire`]).
    pub fn expire<A: ChunkAlloc, M: FlowMap<A>>(
        &mut self,
        map: &mut M,
        alloc: &mut A,
        now_ms: u64,
    ) {
        let rules = Rules {
            filter: &self.filter,
            limits: &self.limits,
        };
        // Recounted (the removals included): the count stays an upper bound.
        self.seeded = rules.expire(&mut self.counters, map, alloc, now_ms);
    }
}
