// SPDX-License-Identifier: GPL-2.0

//! The `permtcp` generic netlink client shared by `permctl` and `permtcpd`.
//!
//! - [`netlink`]: the connection ([`Client`]), its errors ([`CtlError`]) and the framing;
//!   every request and reply is encoded and decoded by `permtcp_logic::ops`, the code the
//!   kernel module runs.
//! - [`calls`]: one typed method of [`Client`] per operation (status, declarations,
//!   snooping, statistics, connections, takeover and its directives, directive, taken-over
//!   connections) and the address assumption of a takeover.
//! - [`recovery`]: owner recovery on a peer: the connections it still serves of a recovered
//!   node, and the node's addresses handed back.
//! - [`spec`]: the textual values users and configuration files give (addresses, MACs, port
//!   ranges, policies) and the views of declarations and connection ends.

pub mod calls;
pub mod handoff;
pub mod netlink;
pub mod recovery;
pub mod spec;

pub use calls::{ifindex, SnoopLimits, TakeoverOutcome};
pub use netlink::{Client, CtlError};
