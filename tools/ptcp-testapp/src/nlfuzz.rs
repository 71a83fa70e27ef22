// SPDX-License-Identifier: GPL-2.0

//! `ptcp-testapp nlfuzz SECONDS SEED`: random and mutated requests to the `permtcp` family,
//! for a bounded time, to check that hostile netlink input gets an error and never hurts the
//! kernel (the selftest then checks the kernel log and that the stored state is consistent).
//!
//! Each request is one command number (the family's, a few around them, and 0), a payload that
//! is either a valid request of that command mutated (bytes flipped, truncated, attributes
//! repeated, lengths and types changed, the nested flag toggled) or random bytes, and a dump or
//! do flag. Runs with whatever privilege the caller has: unprivileged, most commands must be
//! refused outright.

use permctl::netlink::encode;
use permctl::Client;
use permtcp_logic::decl::{Declaration, PortRange};
use permtcp_logic::ops::*;
use permtcp_logic::packet::Addr;
use permtcp_logic::snoop::FlowKey;
use permtcp_logic::track::Side;
use permtcp_logic::uapi::cmd;
use std::time::{Duration, Instant};

/// xorshift64*: reproducible from the seed, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

fn key(r: &mut Rng) -> FlowKey {
    FlowKey {
        owner_addr: Addr::v4([10, 0, 0, 1 + r.below(3) as u8]),
        client_addr: Addr::v4([10, 0, 0, 100]),
        owner_port: 80 + r.below(12) as u16,
        client_port: r.next() as u16,
    }
}

fn decl(r: &mut Rng) -> Declaration {
    let n = 1 + r.below(6) as u32;
    let mut d = Declaration {
        node_id: n,
        local: r.below(4) == 0,
        ..Default::default()
    };
    let _ = d.addrs4.push([10, 0, 0, n as u8]);
    let _ = d.macs.push([2, 0, 0, 0, 0, n as u8]);
    let lo = 80 + r.below(20) as u16;
    let _ = d.ranges.push(PortRange {
        lo,
        hi: lo + r.below(10) as u16,
        ..Default::default()
    });
    d
}

/// A valid request of a random command, and its command number and dump flag.
fn valid(r: &mut Rng) -> (u8, Vec<u8>, bool) {
    let enc = |b: Result<Vec<u8>, permctl::CtlError>| b.unwrap_or_default();
    match r.below(12) {
        0 => (
            cmd::DECL_ADD,
            enc(encode(&DeclAddRequest { decl: decl(r) })),
            false,
        ),
        1 => (
            cmd::DECL_DEL,
            enc(encode(&DeclDelRequest {
                node: 1 + r.below(6) as u32,
            })),
            false,
        ),
        2 => (cmd::DECL_GET, Vec::new(), true),
        3 => (cmd::STATUS_GET, Vec::new(), false),
        4 => (
            cmd::SNOOP_START,
            enc(encode(&StartRequest {
                ifindex: 1 + r.below(4) as u32,
                max_conns: Some(1 + r.below(100) as u32),
                ..Default::default()
            })),
            false,
        ),
        5 => (cmd::SNOOP_STOP, Vec::new(), false),
        6 => (cmd::CONN_GET, Vec::new(), true),
        7 => (cmd::STATS_GET, Vec::new(), false),
        8 => (
            cmd::CONN_DATA_GET,
            enc(encode(&DataRequest {
                key: key(r),
                side: if r.below(2) == 0 {
                    Side::Owner
                } else {
                    Side::Client
                },
            })),
            true,
        ),
        9 => (
            cmd::TAKEOVER,
            enc(encode(&TakeoverRequest {
                node: 1 + r.below(6) as u32,
                park_ms: Some(r.below(2000) as u32),
            })),
            false,
        ),
        10 => (
            cmd::DIRECTIVE,
            enc(encode(&DirectiveRequest {
                node: 1 + r.below(6) as u32,
                key: key(r),
                park_ms: None,
                from: Some(r.below(7) as u32),
            })),
            false,
        ),
        _ => (
            cmd::LEASE_SET,
            enc(encode(&LeaseRequest {
                ms: r.below(70_000) as u32,
            })),
            false,
        ),
    }
}

/// Mutates `b` in place: a few of the ways a hostile or buggy sender goes wrong.
fn mutate(r: &mut Rng, b: &mut Vec<u8>) {
    for _ in 0..1 + r.below(3) {
        match r.below(7) {
            0 if !b.is_empty() => {
                let i = r.below(b.len());
                b[i] ^= 1 << r.below(8);
            }
            1 if !b.is_empty() => b.truncate(r.below(b.len())),
            2 if b.len() >= 4 => {
                // Repeat the first attribute.
                let n = (u16::from_le_bytes([b[0], b[1]]) as usize).clamp(4, b.len());
                let first = b[..n].to_vec();
                b.extend(first);
            }
            3 if b.len() >= 4 => {
                let len = r.next() as u16;
                b[..2].copy_from_slice(&len.to_le_bytes());
            }
            4 if b.len() >= 4 => {
                let kind = (r.below(48) as u16) | (r.below(2) as u16) << 15;
                b[2..4].copy_from_slice(&kind.to_le_bytes());
            }
            5 => b.extend((0..r.below(24)).map(|_| r.next() as u8)),
            _ => {}
        }
    }
}

/// Runs for `secs` seconds from `seed`; prints how many requests were sent, accepted and
/// refused.
pub fn run(args: &[String]) {
    let secs: u64 = args.first().and_then(|s| s.parse().ok()).unwrap_or(10);
    let mut r = Rng(args.get(1).and_then(|s| s.parse().ok()).unwrap_or(1) | 1);
    let c = Client::connect().expect("the permtcp family");
    let end = Instant::now() + Duration::from_secs(secs);
    let (mut sent, mut accepted) = (0u64, 0u64);
    while Instant::now() < end {
        let (mut command, mut payload, mut dump) = if r.below(4) == 0 {
            let n = r.below(64);
            let random: Vec<u8> = (0..n).map(|_| r.next() as u8).collect();
            (
                r.below(cmd::MAX as usize + 4) as u8,
                random,
                r.below(2) == 0,
            )
        } else {
            valid(&mut r)
        };
        if r.below(3) > 0 {
            mutate(&mut r, &mut payload);
        }
        if r.below(16) == 0 {
            command = r.below(cmd::MAX as usize + 4) as u8;
        }
        if r.below(16) == 0 {
            dump = !dump;
        }
        sent += 1;
        if c.request_raw(command, &payload, dump).is_ok() {
            accepted += 1;
        }
    }
    println!(
        "ok requests={sent} accepted={accepted} refused={}",
        sent - accepted
    );
}
