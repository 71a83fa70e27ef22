// SPDX-License-Identifier: GPL-2.0

//! `permctl takeover` and `permctl taken`: taking a failed owner's connections over, with the
//! assumption of its addresses, and what was taken over.
//!
//! The node taking a failed owner over assumes the owner's addresses whose ARP ownership the
//! declaration's policy gives it, before the kernel rebuilds the connections and announces
//! them: the rebuilt sockets' first segments prompt the client, whose answers must find the
//! address local. The same policy code (`permtcp_logic::policy::arp_owner`) decides here and
//! in the kernel; the failed nodes come from STATUS_GET.

use crate::decl::declarations;
use crate::directives;
use crate::netlink::{replies, reply, Client, CtlError};
use crate::snoop::stats_info;
use permtcp_logic::ops::{StatusRequest, TakenGetRequest, TakeoverRequest};
use permtcp_logic::packet::Addr;
use permtcp_logic::policy::arp_owner;
use serde::Serialize;
use std::net::IpAddr;

/// Adds the addresses of failed node `node` that this node becomes the ARP owner of to the
/// snooped device; returns what it did, one line each.
fn assume(c: &Client, node: u32) -> Result<Vec<String>, CtlError> {
    let decls = declarations(c)?;
    let (Some(owner), Some(me)) = (
        decls.iter().find(|d| d.node_id == node),
        decls.iter().find(|d| d.local).map(|d| d.node_id),
    ) else {
        // The kernel's TAKEOVER says what is wrong.
        return Ok(Vec::new());
    };
    let msgs = c.call(&StatusRequest)?;
    let failed = reply::<StatusRequest>(&msgs, "status")?.failed;
    let is_failed = |n: u32| n == node || failed.as_slice().contains(&n);
    let ifindex = stats_info(c)?.ifindex;
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

/// `permctl takeover`: takes over, then sends a fail-over directive to the next peer for
/// each connection this node cannot take over.
pub fn takeover(
    c: &Client,
    node: u32,
    park_ms: Option<u32>,
    directive_port: u16,
    assume_addrs: bool,
    json: bool,
) -> Result<(), CtlError> {
    let assumed = if assume_addrs {
        assume(c, node)?
    } else {
        Vec::new()
    };
    if !json {
        assumed.iter().for_each(|l| println!("{l}"));
    }
    let msgs = c.call(&TakeoverRequest { node, park_ms })?;
    let r = reply::<TakeoverRequest>(&msgs, "takeover reply")?;
    let k = r.counts;
    let (taken, parked, not_ready, not_mine, failed, reset) = (
        k.taken,
        k.parked,
        r.not_ready,
        r.not_mine,
        k.failed,
        k.reset,
    );
    let rebuild_ns = k.rebuild_ns;
    let mut sent = Vec::new();
    // Read once, when the first directive needs the next peers' addresses.
    let mut decls = None;
    for d in r.directives {
        if decls.is_none() {
            decls = Some(declarations(c)?);
        }
        let decls = decls.as_deref().unwrap_or_default();
        let line = directives::send(decls, node, &d, directive_port, park_ms)?;
        if !json {
            println!("{line}");
        }
        let (owner, client) = crate::spec::ends(&d.key);
        sent.push(serde_json::json!({
            "owner": owner.to_string(),
            "client": client.to_string(),
            "next": d.next,
        }));
    }
    if json {
        println!(
            "{}",
            serde_json::json!({"node": node, "taken": taken, "parked": parked, "not_ready": not_ready, "not_mine": not_mine, "failed": failed, "reset": reset, "rebuild_ns": rebuild_ns, "directives": sent, "assumed": assumed})
        );
    } else {
        println!(
            "node {node} failed: {taken} connections taken over ({parked} waiting for a listener), {not_ready} not ready ({} sent to the next peer, {reset} reset), {not_mine} for other nodes, {failed} failed; rebuilt in {} us",
            sent.len(),
            rebuild_ns / 1000
        );
    }
    Ok(())
}

/// A taken-over connection, as `permctl taken` shows it.
#[derive(Serialize)]
pub struct TakenView {
    pub owner: String,
    pub client: String,
    /// Stream offset of the next byte the application sends.
    pub sent_offset: u32,
    /// Stream offset of the first byte the application reads.
    pub recv_offset: u32,
    /// Stream offset of the first kept sent byte (`permctl conn-data --side owner`).
    pub data_offset: u32,
    pub data_len: u32,
    /// The declared received-data policy: `deliver` or `drop`.
    pub received_data: &'static str,
    pub age_ms: u64,
}

/// `permctl taken`.
pub fn taken(c: &Client, json: bool) -> Result<(), CtlError> {
    let msgs = c.call(&TakenGetRequest)?;
    let views: Vec<TakenView> = replies::<TakenGetRequest>(&msgs)?
        .iter()
        .map(|r| {
            let t = &r.taken;
            let (owner, client) = crate::spec::ends(&t.key);
            TakenView {
                owner: owner.to_string(),
                client: client.to_string(),
                sent_offset: t.sent_offset,
                recv_offset: t.recv_offset,
                data_offset: t.data_offset,
                data_len: t.data_len,
                received_data: if t.rx_deliver { "deliver" } else { "drop" },
                age_ms: t.age_ms,
            }
        })
        .collect();
    if json {
        println!("{}", serde_json::to_string(&views).expect("serializable"));
        return Ok(());
    }
    println!(
        "{:<26} {:<26} {:>11} {:>11} {:>11} {:>9} {:<8} {:>8}",
        "Owner", "Client", "Sent-off", "Recv-off", "Kept-off", "Kept", "Rx", "Age-ms"
    );
    for v in &views {
        println!(
            "{:<26} {:<26} {:>11} {:>11} {:>11} {:>9} {:<8} {:>8}",
            v.owner,
            v.client,
            v.sent_offset,
            v.recv_offset,
            v.data_offset,
            v.data_len,
            v.received_data,
            v.age_ms
        );
    }
    Ok(())
}
