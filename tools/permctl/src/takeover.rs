// SPDX-License-Identifier: GPL-2.0

//! `permctl takeover` and `permctl taken`: taking a failed owner's connections over, with the
//! assumption of its addresses, and what was taken over.
//!
//! The node taking a failed owner over assumes the owner's addresses whose ARP ownership the
//! declaration's policy gives it, before the kernel rebuilds the connections and announces
//! them ([`permctl::Client::assume_addresses`], which `permtcpd` runs too).
//!
//! The fail-over directives of the reply (connections this node could not take over, each
//! for the next peer) are listed, not sent: they travel between the peers' `permtcpd` on its
//! authenticated channel (Documentation/cluster.rst). The unauthenticated UDP receiver
//! `permctl directives` is gone.

use permctl::{Client, CtlError};
use permtcp_logic::uapi::rxdata;
use serde::Serialize;

/// `permctl takeover`: assumes the addresses, takes over, and lists the connections this
/// node could not take over with the peer each should be directed to.
pub fn takeover(
    c: &Client,
    node: u32,
    park_ms: Option<u32>,
    assume_addrs: bool,
    json: bool,
) -> Result<(), CtlError> {
    let assumed: Vec<String> = if assume_addrs {
        c.assume_addresses(node)?
            .iter()
            .map(|(ip, ifindex)| format!("assumed {ip} on interface {ifindex}"))
            .collect()
    } else {
        Vec::new()
    };
    if !json {
        assumed.iter().for_each(|l| println!("{l}"));
    }
    let r = c.takeover(node, park_ms)?;
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
    let mut directed = Vec::new();
    for d in &r.directives {
        let (owner, client) = permctl::spec::ends(&d.key);
        if !json {
            println!(
                "directive: {owner} <- {client} is for node {} (not sent: permtcpd delivers directives)",
                d.next
            );
        }
        directed.push(serde_json::json!({
            "owner": owner.to_string(),
            "client": client.to_string(),
            "next": d.next,
        }));
    }
    if json {
        println!(
            "{}",
            serde_json::json!({"node": node, "taken": taken, "parked": parked, "not_ready": not_ready, "not_mine": not_mine, "failed": failed, "reset": reset, "rebuild_ns": rebuild_ns, "directives": directed, "assumed": assumed})
        );
    } else {
        println!(
            "node {node} failed: {taken} connections taken over ({parked} waiting for a listener), {not_ready} not ready ({} for the next peer, {reset} reset), {not_mine} for other nodes, {failed} failed; rebuilt in {} us",
            directed.len(),
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
    /// The declared received-data policy: `unanswered`, `deliver` or `drop`.
    pub received_data: &'static str,
    pub age_ms: u64,
    /// The cookie of the socket it was given (`SO_COOKIE`; `ss -e` shows it as `sk:`, in
    /// hex); 0 from a module that does not report it.
    pub cookie: u64,
}

/// `permctl taken`.
pub fn taken(c: &Client, json: bool) -> Result<(), CtlError> {
    let views: Vec<TakenView> = c
        .taken()?
        .iter()
        .map(|t| {
            let (owner, client) = permctl::spec::ends(&t.key);
            TakenView {
                owner: owner.to_string(),
                client: client.to_string(),
                sent_offset: t.sent_offset,
                recv_offset: t.recv_offset,
                data_offset: t.data_offset,
                data_len: t.data_len,
                received_data: match t.rx_policy {
                    rxdata::UNANSWERED => "unanswered",
                    rxdata::DROP => "drop",
                    rxdata::DELIVER => "deliver",
                    // An older module reports only the flag.
                    _ if t.rx_deliver => "deliver",
                    _ => "drop",
                },
                age_ms: t.age_ms,
                cookie: t.cookie,
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
