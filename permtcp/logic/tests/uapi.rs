// SPDX-License-Identifier: GPL-2.0

//! The Rust constants must equal the C UAPI header's, name for name.

use permtcp_logic::uapi::*;
use std::collections::HashMap;

fn header_values() -> HashMap<String, i64> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../include/uapi/linux/permtcp.h"
    );
    let text = std::fs::read_to_string(path).expect("UAPI header");
    let mut map = HashMap::new();
    for line in text.lines() {
        let line = line.trim();
        if let Some((name, rest)) = line.split_once(" = ") {
            let value = rest
                .split_whitespace()
                .next()
                .unwrap()
                .trim_end_matches(',');
            map.insert(name.trim().to_string(), value.parse().unwrap());
        } else if let Some(rest) = line.strip_prefix("#define ") {
            let mut it = rest.split_whitespace();
            if let (Some(n), Some(v)) = (it.next(), it.next()) {
                if let Ok(v) = v.parse() {
                    map.insert(n.to_string(), v);
                }
            }
        }
    }
    map
}

#[test]
fn constants_match_the_c_header() {
    let h = header_values();
    let check = |name: &str, v: i64| assert_eq!(h.get(name), Some(&v), "{name}");
    check("PERMTCP_FAMILY_VERSION", FAMILY_VERSION.into());
    for (n, v) in [
        ("DECL_ADD", cmd::DECL_ADD),
        ("DECL_DEL", cmd::DECL_DEL),
        ("DECL_GET", cmd::DECL_GET),
        ("STATUS_GET", cmd::STATUS_GET),
    ] {
        check(&format!("PERMTCP_CMD_{n}"), v.into());
    }
    for (n, v) in [
        ("DECL", attr::DECL),
        ("NODE_ID", attr::NODE_ID),
        ("VERSION", attr::VERSION),
        ("DECL_COUNT", attr::DECL_COUNT),
        ("DECL_MAX", attr::DECL_MAX),
        ("LOCAL_NODE", attr::LOCAL_NODE),
        ("NETNS_COOKIE", attr::NETNS_COOKIE),
    ] {
        check(&format!("PERMTCP_A_{n}"), v.into());
    }
    for (n, v) in [
        ("NODE_ID", decl_attr::NODE_ID),
        ("ADDR4", decl_attr::ADDR4),
        ("ADDR6", decl_attr::ADDR6),
        ("MAC", decl_attr::MAC),
        ("PORTS", decl_attr::PORTS),
        ("PROTO", decl_attr::PROTO),
        ("FAILOVER", decl_attr::FAILOVER),
        ("ARP_POLICY", decl_attr::ARP_POLICY),
        ("ARP_NODE", decl_attr::ARP_NODE),
        ("APP", decl_attr::APP),
        ("RX_POLICY", decl_attr::RX_POLICY),
        ("LOCAL", decl_attr::LOCAL),
    ] {
        check(&format!("PERMTCP_DECL_A_{n}"), v.into());
    }
    for (n, v) in [
        ("LO", range_attr::LO),
        ("HI", range_attr::HI),
        ("PEER", range_attr::PEER),
    ] {
        check(&format!("PERMTCP_RANGE_A_{n}"), v.into());
    }
    check("PERMTCP_FAILOVER_SMALLEST_ID", failover::SMALLEST_ID.into());
    check("PERMTCP_FAILOVER_PEER_LIST", failover::PEER_LIST.into());
    check("PERMTCP_ARP_FOLLOW_FAILOVER", arp::FOLLOW_FAILOVER.into());
    check("PERMTCP_ARP_SMALLEST_ID", arp::SMALLEST_ID.into());
    check("PERMTCP_ARP_FIXED", arp::FIXED.into());
    check("PERMTCP_RX_DELIVER", rxdata::DELIVER.into());
    check("PERMTCP_RX_DROP", rxdata::DROP.into());
}
