// SPDX-License-Identifier: GPL-2.0

//! `permtcpd`, the permtcp cluster daemon: authenticated heartbeats between the nodes of a
//! permanency set, exchange of ownership declarations, node-down verdicts by majority, and
//! fail-over directives. See `Documentation/cluster.rst`.

pub mod announce;
pub mod auth;
pub mod config;
pub mod daemon;
pub mod keepalived;
pub mod kernel;
pub mod log;
pub mod membership;
pub mod netlink;
pub mod recovery;
pub mod reset;
pub mod wire;
