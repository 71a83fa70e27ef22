// SPDX-License-Identifier: GPL-2.0

//! The node taking a failed owner over assumes the owner's addresses whose ARP ownership the
//! declaration's policy gives it, before the kernel rebuilds the connections and announces
//! them: the rebuilt sockets' first segments prompt the client, whose answers must find the
//! address local. The same policy code (`permtcp_logic::policy::arp_owner`) decides here and
//! in the kernel; the failed nodes come from STATUS_GET.

use crate::directive::declarations;
use crate::netlink::{u32s, Client, CtlError};
use permtcp_logic::packet::Addr;
use permtcp_logic::policy::arp_owner;
use permtcp_logic::snoopnl::StatsInfo;
use permtcp_logic::uapi::{attr, cmd};
use std::net::IpAddr;

/// Adds the addresses of failed node `node` that this node becomes the ARP owner of to the
/// snooped device; returns what it did, one line each.
pub fn assume(c: &Client, node: u32) -> Result<Vec<String>, CtlError> {
    let decls = declarations(c)?;
    let (Some(owner), Some(me)) = (
        decls.iter().find(|d| d.node_id == node),
        decls.iter().find(|d| d.local).map(|d| d.node_id),
    ) else {
        // The kernel's TAKEOVER says what is wrong.
        return Ok(Vec::new());
    };
    let status = c.request(cmd::STATUS_GET, &[], false)?;
    let failed: Vec<u32> = status
        .iter()
        .flat_map(|a| u32s(a, attr::FAILED_NODE))
        .collect();
    let is_failed = |n: u32| n == node || failed.contains(&n);
    let stats = c.request(cmd::STATS_GET, &[], false)?;
    let ifindex = stats
        .iter()
        .flatten()
        .find(|(k, _)| *k == attr::STATS)
        .and_then(|(_, v)| StatsInfo::parse(v).ok())
        .map_or(0, |s| s.ifindex);
    if ifindex == 0 {
        return Ok(Vec::new());
    }
    let route = Client::connect_route()?;
    let mut done = Vec::new();
    let v4 = owner
        .addrs4
        .iter()
        .map(|a| (Addr::v4(*a), IpAddr::from(*a)));
    let v6 = owner.addrs6.iter().map(|a| (Addr(*a), IpAddr::from(*a)));
    for (a, ip) in v4.chain(v6) {
        if arp_owner(decls.iter(), owner, &a, &is_failed) == Some(me) {
            route.add_address(ifindex, ip)?;
            done.push(format!("assumed {ip} on interface {ifindex}"));
        }
    }
    Ok(done)
}
