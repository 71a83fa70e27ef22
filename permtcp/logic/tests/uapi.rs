// SPDX-License-Identifier: GPL-2.0

//! The Rust UAPI constants must equal the C UAPI header's, name for name, in both directions.
//!
//! Both files are read as text: every `pub const` of a module of uapi.rs maps to the C name
//! `PREFIX` + its name, and every enumerator of the header with a known prefix must exist in
//! uapi.rs with the same value.

use std::collections::HashMap;

const PREFIXES: &[(&str, &str)] = &[
    ("cmd", "PERMTCP_CMD_"),
    ("attr", "PERMTCP_A_"),
    ("decl_attr", "PERMTCP_DECL_A_"),
    ("range_attr", "PERMTCP_RANGE_A_"),
    ("conn_attr", "PERMTCP_CONN_A_"),
    ("half_attr", "PERMTCP_HALF_A_"),
    ("taken_attr", "PERMTCP_TAKEN_A_"),
    ("directive_attr", "PERMTCP_DIRECTIVE_A_"),
    ("stats_attr", "PERMTCP_STATS_A_"),
    ("conn_state", "PERMTCP_CONN_STATE_"),
    ("not_ready", "PERMTCP_NOT_READY_"),
    ("failover", "PERMTCP_FAILOVER_"),
    ("arp", "PERMTCP_ARP_"),
    ("rxdata", "PERMTCP_RX_"),
];

fn read(rel: &str) -> String {
    std::fs::read_to_string(format!("{}/{rel}", env!("CARGO_MANIFEST_DIR"))).expect(rel)
}

/// C name -> value, for the header's enumerators (`NAME = NUMBER,`).
fn header() -> HashMap<String, i64> {
    let mut map = HashMap::new();
    for line in read("../../include/uapi/linux/permtcp.h").lines() {
        if let Some((name, rest)) = line.trim().split_once(" = ") {
            let v = rest
                .split_whitespace()
                .next()
                .unwrap()
                .trim_end_matches(',');
            map.insert(name.to_string(), v.parse().unwrap());
        }
    }
    map
}

/// C name -> value, for uapi.rs's numeric constants (the `MAX` aliases are skipped).
fn rust() -> HashMap<String, i64> {
    let mut map = HashMap::new();
    let mut prefix = None;
    for line in read("uapi.rs").lines() {
        if let Some(m) = line
            .strip_prefix("pub mod ")
            .and_then(|l| l.strip_suffix(" {"))
        {
            prefix = PREFIXES.iter().find(|(r, _)| *r == m).map(|(_, c)| *c);
            // IP protocol numbers are IANA's, not part of the header.
            assert!(
                prefix.is_some() || m == "proto",
                "module {m} has no C prefix"
            );
            continue;
        }
        let (Some(p), Some(decl)) = (prefix, line.trim().strip_prefix("pub const ")) else {
            continue;
        };
        let (name, rest) = decl.split_once(':').unwrap();
        let value = rest.split('=').nth(1).unwrap().trim().trim_end_matches(';');
        if let Ok(v) = value.parse() {
            map.insert(format!("{p}{name}"), v);
        }
    }
    map
}

#[test]
fn constants_match_the_c_header() {
    let (h, r) = (header(), rust());
    assert!(r.len() > 100, "parsed {} Rust constants", r.len());
    for (name, v) in &r {
        assert_eq!(
            h.get(name),
            Some(v),
            "{name} differs or is missing in the header"
        );
    }
    for (name, v) in &h {
        if name.ends_with("_UNSPEC") {
            assert_eq!(*v, 0, "{name}");
            continue;
        }
        if PREFIXES.iter().any(|(_, p)| name.starts_with(p)) {
            assert_eq!(
                r.get(name),
                Some(v),
                "{name} differs or is missing in uapi.rs"
            );
        }
    }
}

#[test]
fn family_name_and_version() {
    let text = read("../../include/uapi/linux/permtcp.h");
    assert!(text.contains(&format!(
        "#define PERMTCP_FAMILY_NAME\t\"{}\"",
        permtcp_logic::uapi::FAMILY_NAME
    )));
    assert!(text.contains(&format!(
        "#define PERMTCP_FAMILY_VERSION\t{}",
        permtcp_logic::uapi::FAMILY_VERSION
    )));
}
