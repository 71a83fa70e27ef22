// SPDX-License-Identifier: GPL-2.0

//! The `permtcp` generic netlink family: names and numbers.
//!
//! This mirrors `include/uapi/linux/permtcp.h` value for value; a host test compares the two.
//! See Documentation/netlink.rst for what each command and attribute means.

/// Generic netlink family name.
pub const FAMILY_NAME: &str = "permtcp";
/// Family version carried in the generic netlink header.
pub const FAMILY_VERSION: u8 = 1;
/// The multicast group of the notifications (the `*_NTF` commands).
pub const MCGRP_EVENTS: &str = "events";

/// Commands.
pub mod cmd {
    /// Reserved.
    pub const UNSPEC: u8 = 0;
    /// Add one ownership declaration (CAP_NET_ADMIN).
    pub const DECL_ADD: u8 = 1;
    /// Delete the declaration of a node id (CAP_NET_ADMIN).
    pub const DECL_DEL: u8 = 2;
    /// List all declarations of the caller's network namespace.
    pub const DECL_GET: u8 = 3;
    /// Module and namespace status.
    pub const STATUS_GET: u8 = 4;
    /// Start snooping on a device of the namespace (CAP_NET_ADMIN).
    pub const SNOOP_START: u8 = 5;
    /// Stop snooping; forget every mirrored connection (CAP_NET_ADMIN).
    pub const SNOOP_STOP: u8 = 6;
    /// Dump the mirrored connections.
    pub const CONN_GET: u8 = 7;
    /// Snooping counters and limits.
    pub const STATS_GET: u8 = 8;
    /// Read the data a mirrored connection retains in one direction (CAP_NET_ADMIN).
    pub const CONN_DATA_GET: u8 = 9;
    /// Declare a node failed and take over the connections the policy gives this node
    /// (CAP_NET_ADMIN).
    pub const TAKEOVER: u8 = 10;
    /// Dump the connections this node took over: stream offsets for the restarted
    /// application, and how much of its sent data is kept for it to verify.
    pub const TAKEN_GET: u8 = 11;
    /// A fail-over directive: take over one connection of a failed node that the previous
    /// peer could not (CAP_NET_ADMIN).
    pub const DIRECTIVE: u8 = 12;
    /// Renew (or release) this node's lease on its owned bindings; once a lease was set,
    /// the node's own segments from its bindings are dropped whenever it has run out
    /// (CAP_NET_ADMIN).
    pub const LEASE_SET: u8 = 13;
    /// Notification: a node was declared failed here and taken over.
    pub const NODE_FAILED_NTF: u8 = 14;
    /// Notification: a connection was taken over (its record, as TAKEN_GET gives it).
    pub const CONN_TAKEN_NTF: u8 = 15;
    /// Notification: a connection no peer can take over was reset.
    pub const CONN_RESET_NTF: u8 = 16;
    /// Notification: a connection was handed to the next peer with a directive.
    pub const DIRECTIVE_NTF: u8 = 17;
    /// Notification: a connection of the failed node was not ready to take over here.
    pub const CONN_NOT_READY_NTF: u8 = 18;
    /// An owner-recovery directive: the connections of this node's bindings a peer serves
    /// (it took them over while this node was down); this node follows them, drops its own
    /// resets of them and refuses a SYN that would reuse one until it ends (CAP_NET_ADMIN).
    pub const RECOVERY: u8 = 19;
    /// Planned handoff, on the node serving a binding: stops the output of its established
    /// connections (held) and reports where each stands (CAP_NET_ADMIN).
    pub const HANDOFF_HOLD: u8 = 20;
    /// Planned handoff, on the peer: takes the held connections over from its mirror, each
    /// only when the mirror has seen everything the serving node sent (CAP_NET_ADMIN).
    pub const HANDOFF_TAKE: u8 = 21;
    /// Planned handoff, on the node that served: drops the connections the peer took,
    /// silently, following them until they end; resumes the others (CAP_NET_ADMIN).
    pub const HANDOFF_DONE: u8 = 22;
    /// Owner recovery, on a peer: a node declared failed here is back and a member again: its
    /// new connections are mirrored, a later failure is taken over again; the connections of
    /// it that other nodes serve stay followed, never taken over here (CAP_NET_ADMIN).
    pub const REJOIN: u8 = 23;
    /// Highest command number.
    pub const MAX: u8 = REJOIN;
}

/// Attributes of a taken-over connection ([`attr::TAKEN_CONN`]).
///
/// Offsets count stream bytes from the first byte after the SYN, modulo 2^32 (sequence
/// space); the application knows which 4 GiB lap it is on.
pub mod taken_attr {
    /// 16 bytes: the service (owner) address.
    pub const OWNER_ADDR: u16 = 1;
    /// u16: the service port.
    pub const OWNER_PORT: u16 = 2;
    /// 16 bytes: the client's address.
    pub const CLIENT_ADDR: u16 = 3;
    /// u16: the client's port.
    pub const CLIENT_PORT: u16 = 4;
    /// u32: offset of the next byte the application sends (all before reached the wire).
    pub const SENT_OFFSET: u16 = 5;
    /// u32: offset of the first client byte the application reads.
    pub const RECV_OFFSET: u16 = 6;
    /// u32: offset of the first kept sent byte (CONN_DATA_GET, owner side, reads them).
    pub const DATA_OFFSET: u16 = 7;
    /// u32: kept sent bytes, ending at [`SENT_OFFSET`].
    pub const DATA_LEN: u16 = 8;
    /// Flag: received data is delivered again (the declared policy), else dropped.
    pub const RX_DELIVER: u16 = 9;
    /// u64: milliseconds since the takeover.
    pub const AGE_MS: u16 = 10;
    /// u8: the declared received-data policy ([`super::rxdata`]).
    pub const RX_POLICY: u16 = 11;
    /// u64: the cookie of the socket the connection was given (`SO_COOKIE`): the accepted
    /// socket's, so that a cached record is matched to its socket, not only to a 4-tuple a
    /// later takeover may reuse.
    pub const COOKIE: u16 = 12;
}

/// Attributes of a fail-over directive ([`attr::DIRECTIVE`]).
pub mod directive_attr {
    /// 16 bytes: the service (owner) address.
    pub const OWNER_ADDR: u16 = 1;
    /// u16: the service port.
    pub const OWNER_PORT: u16 = 2;
    /// 16 bytes: the client's address.
    pub const CLIENT_ADDR: u16 = 3;
    /// u16: the client's port.
    pub const CLIENT_PORT: u16 = 4;
    /// u32: the peer the directive goes to.
    pub const NEXT_NODE: u16 = 5;
}

/// Attributes nested in [`attr::HANDOFF`]: a connection of a planned handoff.
pub mod handoff_attr {
    /// 16 bytes: the service (owner) address.
    pub const OWNER_ADDR: u16 = 1;
    /// u16: the service port.
    pub const OWNER_PORT: u16 = 2;
    /// 16 bytes: the client's address.
    pub const CLIENT_ADDR: u16 = 3;
    /// u16: the client's port.
    pub const CLIENT_PORT: u16 = 4;
    /// u32: the serving node's next sequence number to send, once held.
    pub const SND_NXT: u16 = 5;
    /// u32: the serving node's oldest unacknowledged sequence number, once held.
    pub const SND_UNA: u16 = 6;
    /// u32: the serving node's next sequence number expected from the client, once held.
    pub const RCV_NXT: u16 = 7;
    /// u8: where the connection stands ([`super::handoff_status`]).
    pub const STATUS: u16 = 8;
}

/// Top-level attributes.
pub mod attr {
    /// Reserved.
    pub const UNSPEC: u16 = 0;
    /// Nested declaration (see [`super::decl_attr`]); repeated in DECL_GET replies.
    pub const DECL: u16 = 1;
    /// u32: a cluster-node id (DECL_DEL).
    pub const NODE_ID: u16 = 2;
    /// u32: family version of the running module (STATUS_GET).
    pub const VERSION: u16 = 3;
    /// u32: declarations stored in this namespace.
    pub const DECL_COUNT: u16 = 4;
    /// u32: maximum declarations per namespace.
    pub const DECL_MAX: u16 = 5;
    /// u32: node id of this node's own declaration (absent when none is marked local).
    pub const LOCAL_NODE: u16 = 6;
    /// u64: the network namespace cookie the request was served in.
    pub const NETNS_COOKIE: u16 = 7;
    /// u32: interface index of the snooped device.
    pub const IFINDEX: u16 = 8;
    /// u32: limit on mirrored connections.
    pub const MAX_CONNS: u16 = 9;
    /// u64: limit on retained bytes.
    pub const MAX_BYTES: u16 = 10;
    /// Nested (see [`super::conn_attr`]): one mirrored connection.
    pub const CONN: u16 = 11;
    /// Nested (see [`super::stats_attr`]): snooping counters.
    pub const STATS: u16 = 12;
    /// 16 bytes: the owner's address (IPv4-mapped for IPv4).
    pub const OWNER_ADDR: u16 = 13;
    /// u16: the owner's port.
    pub const OWNER_PORT: u16 = 14;
    /// 16 bytes: the client's address (IPv4-mapped for IPv4).
    pub const CLIENT_ADDR: u16 = 15;
    /// u16: the client's port.
    pub const CLIENT_PORT: u16 = 16;
    /// u8: 0 the owner's sent data, 1 the client's.
    pub const SIDE: u16 = 17;
    /// Binary: retained stream bytes.
    pub const DATA: u16 = 18;
    /// u32: sequence number of the first byte of [`DATA`].
    pub const DATA_SEQ: u16 = 19;
    /// u32: connections taken over (TAKEOVER reply).
    pub const TAKEN: u16 = 20;
    /// u32: connections of the failed node not ready for takeover.
    pub const NOT_READY_COUNT: u16 = 21;
    /// u32: connections the policy gives to another node.
    pub const NOT_MINE: u16 = 22;
    /// u32: connections whose rebuild or hand-off failed.
    pub const FAILED: u16 = 23;
    /// u32: taken-over connections waiting for a listener (TAKEOVER: parked by it;
    /// STATUS_GET: parked now).
    pub const PARKED: u16 = 24;
    /// u32: parked connections handed to a listener later (STATUS_GET).
    pub const PARK_QUEUED: u16 = 25;
    /// u32: parked connections reset because no listener came in time (STATUS_GET).
    pub const PARK_RESET: u16 = 26;
    /// u32: how long taken-over connections wait for a listener, ms (TAKEOVER request).
    pub const PARK_MS: u16 = 27;
    /// u64: time the takeover spent rebuilding and handing off connections, ns (TAKEOVER
    /// reply).
    pub const REBUILD_NS: u16 = 28;
    /// Nested [`super::taken_attr`]: one taken-over connection (TAKEN_GET).
    pub const TAKEN_CONN: u16 = 29;
    /// u32: client bytes kept behind the owner's acknowledgement (SNOOP_START).
    pub const KEEP_RECEIVED: u16 = 30;
    /// Nested [`super::directive_attr`]: a connection to hand to the next peer (TAKEOVER
    /// reply).
    pub const DIRECTIVE: u16 = 31;
    /// u32: the node a connection goes to next (DIRECTIVE reply).
    pub const NEXT_NODE: u16 = 32;
    /// u32: connections reset because no peer can take them over (TAKEOVER, DIRECTIVE
    /// replies).
    pub const RESET: u16 = 33;
    /// u32, repeated: a node declared failed here (STATUS_GET).
    pub const FAILED_NODE: u16 = 34;
    /// u32: the lease's length from now, in ms; 0 releases it (LEASE_SET).
    pub const LEASE_MS: u16 = 35;
    /// u64: what is left of the lease, in ms, while one is set (STATUS_GET).
    pub const LEASE_LEFT_MS: u16 = 36;
    /// u64: this node's segments the fence dropped because its lease had run out
    /// (STATUS_GET).
    pub const FENCED: u16 = 37;
    /// u64: frames received from the MAC of a node declared failed here: a split-brain
    /// alarm (STATUS_GET).
    pub const SPLIT_BRAIN: u16 = 38;
    /// u8: why a connection was not ready ([`super::not_ready`]; CONN_NOT_READY_NTF).
    pub const NOT_READY_REASON: u16 = 39;
    /// u32: the peer that sends a directive (DIRECTIVE): only the next peer after it in the
    /// policy's order acts on it.
    pub const FROM_NODE: u16 = 40;
    /// u64: bytes one mirrored connection may hold at most (SNOOP_START).
    pub const MAX_CONN_BYTES: u16 = 41;
    /// u32: milliseconds without a segment after which an incomplete handshake is forgotten
    /// (SNOOP_START).
    pub const SYN_TIMEOUT_MS: u16 = 42;
    /// u32: milliseconds without a segment after which an established (or half-closed, or
    /// not seen from its SYN) connection is forgotten (SNOOP_START).
    pub const IDLE_TIMEOUT_MS: u16 = 43;
    /// nested, repeated: a connection a peer serves (RECOVERY), its key as in
    /// [`directive_attr`] (`OWNER_ADDR` to `CLIENT_PORT`).
    pub const SERVED: u16 = 44;
    /// flag: the RECOVERY list adds to the peer's earlier one instead of replacing it.
    pub const APPEND: u16 = 45;
    /// nested, repeated: a connection of a planned handoff and where it stands
    /// ([`super::handoff_attr`]; HANDOFF_HOLD, HANDOFF_TAKE, HANDOFF_DONE).
    pub const HANDOFF: u16 = 46;
    /// Highest attribute number.
    pub const MAX: u16 = HANDOFF;
}

/// Attributes nested in [`attr::DECL`].
pub mod decl_attr {
    /// Reserved.
    pub const UNSPEC: u16 = 0;
    /// u32, required: the cluster-node id, unique per namespace, non-zero.
    pub const NODE_ID: u16 = 1;
    /// 4 bytes, network order, repeatable: an IPv4 address the node owns.
    pub const ADDR4: u16 = 2;
    /// 16 bytes, repeatable: an IPv6 address the node owns.
    pub const ADDR6: u16 = 3;
    /// 6 bytes, repeatable: a MAC address tied to the addresses.
    pub const MAC: u16 = 4;
    /// Nested (see [`super::range_attr`]), repeatable, at least one: a port range to keep permanent.
    pub const PORTS: u16 = 5;
    /// u8, required: IP protocol number; only TCP (6) is supported.
    pub const PROTO: u16 = 6;
    /// u8: fail-over policy ([`super::failover`]); default smallest node id.
    pub const FAILOVER: u16 = 7;
    /// u8: ARP-ownership policy ([`super::arp`]); default follows the fail-over.
    pub const ARP_POLICY: u16 = 8;
    /// u32: the node that takes ARP ownership under [`super::arp::FIXED`].
    pub const ARP_NODE: u16 = 9;
    /// NUL-terminated string, repeatable: an application that must run.
    pub const APP: u16 = 10;
    /// u8: received-data policy ([`super::rxdata`]); default unanswered.
    pub const RX_POLICY: u16 = 11;
    /// flag: this is the declaration of the node the namespace runs on.
    pub const LOCAL: u16 = 12;
    /// u8: what a takeover does with a connection whose owner was mid-response
    /// ([`super::midresp`]); default continue.
    pub const MID_RESPONSE: u16 = 13;
    /// Highest attribute number.
    pub const MAX: u16 = MID_RESPONSE;
}

/// Attributes nested in [`decl_attr::PORTS`].
pub mod range_attr {
    /// Reserved.
    pub const UNSPEC: u16 = 0;
    /// u16, required: first port of the range.
    pub const LO: u16 = 1;
    /// u16, required: last port of the range (inclusive).
    pub const HI: u16 = 2;
    /// u32, repeatable: the peers that take this range over, in order (peer-list policy only).
    pub const PEER: u16 = 3;
    /// Highest attribute number.
    pub const MAX: u16 = PEER;
}

/// Attributes nested in [`attr::CONN`].
pub mod conn_attr {
    /// 16 bytes: the owner's address.
    pub const OWNER_ADDR: u16 = 1;
    /// u16: the owner's port.
    pub const OWNER_PORT: u16 = 2;
    /// 16 bytes: the client's address.
    pub const CLIENT_ADDR: u16 = 3;
    /// u16: the client's port.
    pub const CLIENT_PORT: u16 = 4;
    /// u8: simulated state ([`super::conn_state`]).
    pub const STATE: u16 = 5;
    /// u8: who opened: 0 owner, 1 client.
    pub const OPENER: u16 = 6;
    /// flag: ready for takeover.
    pub const READY: u16 = 7;
    /// u8: why not ready ([`super::not_ready`]).
    pub const NOT_READY: u16 = 8;
    /// u8: the side the reason concerns: 0 owner, 1 client.
    pub const NOT_READY_SIDE: u16 = 9;
    /// flag: window scaling negotiated.
    pub const WS_OK: u16 = 10;
    /// flag: SACK negotiated.
    pub const SACK_OK: u16 = 11;
    /// flag: timestamps negotiated.
    pub const TS_OK: u16 = 12;
    /// Nested ([`super::half_attr`]): what the owner sent and announced.
    pub const OWNER: u16 = 13;
    /// Nested ([`super::half_attr`]): what the client sent and announced.
    pub const CLIENT: u16 = 14;
    /// u64: segments ignored as out of window or inconsistent.
    pub const INVALID: u16 = 15;
    /// u64: milliseconds since the connection was first seen.
    pub const AGE_MS: u16 = 16;
    /// u64: milliseconds since its last segment.
    pub const IDLE_MS: u16 = 17;
}

/// Attributes nested in [`conn_attr::OWNER`] and [`conn_attr::CLIENT`].
pub mod half_attr {
    /// u32: initial sequence number.
    pub const ISN: u16 = 1;
    /// u32: next sequence number (snd_nxt, FIN included).
    pub const NXT: u16 = 2;
    /// u32: highest acknowledgement received (snd_una).
    pub const UNA: u16 = 3;
    /// u32: last advertised window, bytes.
    pub const WIN: u16 = 4;
    /// u32: largest advertised window, bytes.
    pub const MAX_WIN: u16 = 5;
    /// u8: window scale shift of the windows it sends (when negotiated).
    pub const WSCALE: u16 = 6;
    /// u16: MSS option of its SYN.
    pub const MSS: u16 = 7;
    /// u16: window field of its SYN.
    pub const SYN_WIN: u16 = 8;
    /// u32: last TSval sent.
    pub const TSVAL: u16 = 9;
    /// u32: last TSecr sent.
    pub const TSECR: u16 = 10;
    /// u32: sequence number of its FIN.
    pub const FIN: u16 = 11;
    /// u32: bytes of its data retained.
    pub const HELD: u16 = 12;
    /// u64: segments seen.
    pub const SEGS: u16 = 13;
    /// u64: payload bytes seen, retransmissions included.
    pub const BYTES: u16 = 14;
    /// u32: sequence number of the first retained byte.
    pub const DATA_START: u16 = 15;
    /// u32: sequence number of the segment that last set its window.
    pub const WIN_SEQ: u16 = 16;
}

/// Attributes nested in [`attr::STATS`].
pub mod stats_attr {
    /// u32: snooped device (0: not snooping).
    pub const IFINDEX: u16 = 1;
    /// u32: mirrored connections.
    pub const CONNS: u16 = 2;
    /// u32: limit on connections.
    pub const MAX_CONNS: u16 = 3;
    /// u64: bytes the mirror holds (chunks, slot tables, entries).
    pub const BYTES: u16 = 4;
    /// u64: limit on the bytes the mirror holds.
    pub const MAX_BYTES: u16 = 5;
    /// u32: snooped bindings.
    pub const BINDINGS: u16 = 6;
    /// u64: frames seen.
    pub const FRAMES: u16 = 7;
    /// u64: frames not TCP.
    pub const NOT_TCP: u16 = 8;
    /// u64: IP fragments.
    pub const FRAGMENTS: u16 = 9;
    /// u64: malformed headers.
    pub const MALFORMED: u16 = 10;
    /// u64: checksum failures.
    pub const BAD_CSUM: u16 = 11;
    /// u64: segments of snooped bindings.
    pub const MATCHED: u16 = 12;
    /// u64: connections created from their SYN.
    pub const SYNCED: u16 = 13;
    /// u64: connections first seen after their SYN.
    pub const UNSYNCED: u16 = 14;
    /// u64: connections not tracked (connection limit or memory).
    pub const CONN_LIMIT: u16 = 15;
    /// u64: chunks refused by the byte limit.
    pub const BYTE_LIMIT: u16 = 16;
    /// u64: connections removed after a RST.
    pub const RESETS: u16 = 17;
    /// u64: TIME_WAIT connections ended.
    pub const EXPIRED: u16 = 18;
    /// u64: TIME_WAIT ended early by a new SYN.
    pub const TW_REUSED: u16 = 19;
    /// u64: segments ignored as invalid.
    pub const INVALID: u16 = 20;
    /// u64: chunks the allocator failed to provide.
    pub const ALLOC_FAILED: u16 = 21;
    /// u64: nanoseconds spent in the netfilter hook since snooping started.
    pub const HOOK_NS: u16 = 22;
    /// u64: frames the hook processed since snooping started.
    pub const HOOK_FRAMES: u16 = 23;
    /// u64: resets this host's stack sent for mirrored connections, dropped.
    pub const RST_DROPPED: u16 = 24;
    /// u64: incomplete handshakes forgotten after the handshake timeout.
    pub const SYN_TIMEOUTS: u16 = 25;
    /// u64: connections forgotten after the idle timeout.
    pub const IDLE_TIMEOUTS: u16 = 26;
    /// u64: connections dropped, oldest first, to make room in a full table.
    pub const EARLY_DROPS: u16 = 27;
    /// u64: frames addressed to another node's MAC delivered to this host's stack: client
    /// frames of connections this node took over while another node answers ARP for the
    /// address.
    pub const STEERED: u16 = 28;
    /// u64: connections of this node's bindings that peers serve (RECOVERY), followed here.
    pub const HANDED: u16 = 29;
    /// u64: SYNs refused because they would reuse a connection a peer serves.
    pub const SYN_REFUSED: u16 = 30;
    /// u64: chunks of retained data that are views of received frames (zero-copy
    /// retention), now.
    pub const VIEWS: u16 = 31;
    /// u64: nanoseconds Linux conntrack spent on the frames timed by the `permtcp.ctprobe`
    /// probes in this namespace (benchmarks).
    pub const CT_NS: u16 = 32;
    /// u64: frames whose conntrack work the `permtcp.ctprobe` probes timed.
    pub const CT_FRAMES: u16 = 33;
    /// u64: SYNs tracked with a table entry allocated ahead, memory being short then.
    pub const SYN_RESERVED: u16 = 34;
    /// u64: frames the mirror keeps itself, for views of their payload, instead of a clone
    /// (frames for another host's MAC that nothing else wanted).
    pub const FRAMES_KEPT: u16 = 35;
}

/// Values of [`conn_attr::STATE`].
pub mod conn_state {
    /// SYN seen from the opener.
    pub const SYN_SENT: u8 = 1;
    /// Both SYNs before any SYN-ACK.
    pub const SIMULTANEOUS_OPEN: u8 = 2;
    /// SYN-ACK seen.
    pub const SYN_RECEIVED: u8 = 3;
    /// Final ACK seen.
    pub const ESTABLISHED: u8 = 4;
    /// One FIN seen.
    pub const FIN_SEEN: u8 = 5;
    /// Both FINs seen.
    pub const CLOSING: u8 = 6;
    /// Both FINs acknowledged.
    pub const TIME_WAIT: u8 = 7;
    /// Reset.
    pub const CLOSED: u8 = 8;
    /// Not seen from its SYN.
    pub const UNSYNCED: u8 = 9;
}

/// Values of [`conn_attr::NOT_READY`].
pub mod not_ready {
    /// Not seen from its SYN.
    pub const NOT_FROM_SYN: u8 = 1;
    /// Handshake not complete.
    pub const HANDSHAKE: u8 = 2;
    /// Unacknowledged bytes missing.
    pub const HOLE: u8 = 3;
    /// Acknowledged bytes never seen.
    pub const ACKED_UNSEEN: u8 = 4;
    /// Buffer capacity exceeded or too fragmented.
    pub const OVERFLOW: u8 = 5;
    /// Byte limit or memory exhausted.
    pub const NO_MEMORY: u8 = 6;
    /// Closed or in TIME_WAIT.
    pub const CLOSED: u8 = 7;
    /// Bytes acknowledged before they were seen (they may still be on their way).
    pub const ACK_AHEAD: u8 = 8;
}

/// Where a connection of a planned handoff stands ([`handoff_attr::STATUS`]).
pub mod handoff_status {
    /// Held on the serving node: its output stops there, its state is frozen.
    pub const HELD: u8 = 1;
    /// Not held: the serving node still has bytes of it to send.
    pub const BUSY: u8 = 2;
    /// Taken over by the peer.
    pub const TAKEN: u8 = 3;
    /// Refused by the peer: not in its mirror.
    pub const NOT_MIRRORED: u8 = 4;
    /// Refused by the peer: its mirror of it is not ready.
    pub const NOT_READY: u8 = 5;
    /// Refused by the peer for now: its mirror has not seen all the serving node sent yet.
    pub const BEHIND: u8 = 6;
    /// Refused by the peer: its mirror saw more than the serving node says it sent.
    pub const MISMATCH: u8 = 7;
    /// Refused by the peer: the serving node was in the middle of a response.
    pub const MID_RESPONSE: u8 = 8;
    /// Refused by the peer: the rebuild failed.
    pub const FAILED: u8 = 9;
    /// Refused by the peer: it is not a peer of the connection's binding.
    pub const NOT_PEER: u8 = 10;
    /// No such established connection on the serving node (it ended).
    pub const GONE: u8 = 11;
}

/// Fail-over policies.
pub mod failover {
    /// The live peer with the numerically smallest node id takes over (the default).
    pub const SMALLEST_ID: u8 = 1;
    /// Each port range lists its peers in order; the first live one takes over.
    pub const PEER_LIST: u8 = 2;
}

/// ARP-ownership policies.
pub mod arp {
    /// ARP ownership goes to the node that takes the connections over.
    pub const FOLLOW_FAILOVER: u8 = 1;
    /// ARP ownership goes to the live peer with the smallest node id.
    pub const SMALLEST_ID: u8 = 2;
    /// ARP ownership goes to the node named by [`super::decl_attr::ARP_NODE`].
    pub const FIXED: u8 = 3;
}

/// Received-data policies: what happens to client bytes the owner received but its application
/// may not have read when it crashed.
pub mod rxdata {
    /// Deliver them to the restarted application, which discards duplicates itself.
    pub const DELIVER: u8 = 1;
    /// Drop them; the application asks the client to send again.
    pub const DROP: u8 = 2;
    /// Deliver only those that arrived after the owner last sent new data (the default): an
    /// unmodified request/response server reads no request it had answered.
    pub const UNANSWERED: u8 = 3;
}

/// Mid-response choices: what a takeover does with a connection whose owner was in the middle
/// of its output (its last write not all on the wire, or the client's window full).
pub mod midresp {
    /// Rebuild it as any other (the default): an application that resumes by the stream
    /// offsets continues the output.
    pub const CONTINUE: u8 = 1;
    /// Reset it at once: an unmodified server cannot continue a response it does not know
    /// it was sending, and its client would wait for the rest until an idle timeout.
    pub const RESET: u8 = 2;
}

/// IP protocol numbers.
pub mod proto {
    /// TCP.
    pub const TCP: u8 = 6;
    /// UDP (not supported).
    pub const UDP: u8 = 17;
    /// SCTP (not supported).
    pub const SCTP: u8 = 132;
}
