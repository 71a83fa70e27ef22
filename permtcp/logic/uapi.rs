// SPDX-License-Identifier: GPL-2.0

//! The `permtcp` generic netlink family: names and numbers.
//!
//! This mirrors `include/uapi/linux/permtcp.h` value for value; a host test compares the two.
//! See Documentation/netlink.rst for what each command and attribute means.

/// Generic netlink family name.
pub const FAMILY_NAME: &str = "permtcp";
/// Family version carried in the generic netlink header.
pub const FAMILY_VERSION: u8 = 1;

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
    /// Highest command number.
    pub const MAX: u8 = STATUS_GET;
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
    /// Highest attribute number.
    pub const MAX: u16 = NETNS_COOKIE;
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
    /// u8: received-data policy ([`super::rxdata`]); default deliver.
    pub const RX_POLICY: u16 = 11;
    /// flag: this is the declaration of the node the namespace runs on.
    pub const LOCAL: u16 = 12;
    /// Highest attribute number.
    pub const MAX: u16 = LOCAL;
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

/// Fail-over policies.
pub mod failover {
    /// The live peer with the numerically smallest node id takes over (the seed's default).
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
