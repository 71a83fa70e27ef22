// SPDX-License-Identifier: GPL-2.0

//! Fuzzes netlink attribute parsing of requests: any DECL_ADD payload either fails cleanly or
//! yields a valid declaration that encodes and parses back to itself; a RECOVERY payload that
//! parses lists as many connections as it counted, and encodes and parses back to itself.

#![no_main]

use libfuzzer_sys::fuzz_target;
use permtcp_logic::decl::parse_add_request;
use permtcp_logic::nla::Writer;
use permtcp_logic::ops::RecoveryRequest;
use permtcp_logic::snoopnl::{parse_data_request, parse_start_request, ConnInfo, StatsInfo};

fuzz_target!(|data: &[u8]| {
    let _ = parse_start_request(data);
    let _ = parse_data_request(data);
    let _ = ConnInfo::parse(data);
    let _ = StatsInfo::parse(data);
    if let Ok(r) = RecoveryRequest::parse(data) {
        let keys: Vec<_> = r.served.iter().collect();
        assert_eq!(keys.len(), r.served.len());
        let mut buf = vec![0u8; 64 + keys.len() * 64];
        let mut w = Writer::new(&mut buf);
        r.write(&mut w).expect("room for every connection");
        let n = w.len();
        assert_eq!(RecoveryRequest::parse(&buf[..n]), Ok(r));
    }
    if let Ok(d) = parse_add_request(data) {
        assert!(d.validate().is_ok());
        let mut buf = vec![0u8; 8192];
        let mut w = Writer::new(&mut buf);
        d.write(&mut w).expect("a valid declaration fits");
        let n = w.len();
        assert_eq!(parse_add_request(&buf[..n]), Ok(d));
    }
});
