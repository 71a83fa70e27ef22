// SPDX-License-Identifier: GPL-2.0

//! Owner recovery, the peers' side (Documentation/design.rst, "Owner recovery"): which of a
//! recovered node's connections this node still serves (the list of its owner-recovery
//! directive), and handing the node's addresses back (this node keeps them quietly, for the
//! connections it serves, and stops answering ARP for them). The owner's side is
//! [`Client::recovery`].

use crate::calls::hold_quietly;
use crate::netlink::{Client, CtlError};
use permtcp_logic::packet::Addr;
use permtcp_logic::policy::{declares, Hold};
use permtcp_logic::snoop::FlowKey;
use std::collections::BTreeSet;
use std::net::IpAddr;

/// The connections with a socket in `/proc/net/tcp` and `/proc/net/tcp6` text `tables`
/// that are not over (neither TIME-WAIT, closed nor listening), keyed with the local end as
/// the owner's: IPv4 ones (IPv4-mapped in `tcp6` too) with IPv4-mapped addresses.
pub fn live_connections<'a>(tables: impl IntoIterator<Item = &'a str>) -> BTreeSet<FlowKey> {
    let mut out = BTreeSet::new();
    for table in tables {
        for line in table.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            let (Some(local), Some(remote), Some(st)) = (f.get(1), f.get(2), f.get(3)) else {
                continue;
            };
            // TIME_WAIT, CLOSE, LISTEN (include/net/tcp_states.h).
            if matches!(*st, "06" | "07" | "0A") {
                continue;
            }
            if let (Some((la, lp)), Some((ra, rp))) = (end(local), end(remote)) {
                out.insert(FlowKey {
                    owner_addr: la,
                    owner_port: lp,
                    client_addr: ra,
                    client_port: rp,
                });
            }
        }
    }
    out
}

/// One end as `/proc/net/tcp{,6}` prints it: the address as 32-bit words in host order (one
/// for IPv4, four for IPv6), then the port, in hex.
fn end(s: &str) -> Option<(Addr, u16)> {
    let (a, p) = s.split_once(':')?;
    let port = u16::from_str_radix(p, 16).ok()?;
    let word = |i: usize| {
        a.get(i * 8..i * 8 + 8)
            .and_then(|w| u32::from_str_radix(w, 16).ok())
            .map(u32::to_ne_bytes)
    };
    let addr = match a.len() {
        8 => Addr::v4(word(0)?),
        32 => {
            let mut b = [0u8; 16];
            for i in 0..4 {
                b[i * 4..i * 4 + 4].copy_from_slice(&word(i)?);
            }
            Addr(b)
        }
        _ => return None,
    };
    Some((addr, port))
}

impl Client {
    /// The connections of node `node`'s bindings this node took over and still serves (a
    /// socket holds each: the rebuilt one, accepted or parked): the list of the
    /// owner-recovery directive for `node` when it comes back.
    pub fn served(&self, node: u32) -> Result<Vec<FlowKey>, CtlError> {
        let decls = self.declarations()?;
        let Some(owner) = decls.iter().find(|d| d.node_id == node) else {
            return Ok(Vec::new());
        };
        let read = |p: &str| {
            std::fs::read_to_string(p).map_err(|e| CtlError::Transport(format!("{p}: {e}")))
        };
        let (v4, v6) = (read("/proc/net/tcp")?, read("/proc/net/tcp6")?);
        let live = live_connections([v4.as_str(), v6.as_str()]);
        let mut keys: Vec<FlowKey> = self
            .taken()?
            .into_iter()
            .map(|t| t.key)
            .filter(|k| declares(owner, &k.owner_addr, k.owner_port) && live.contains(k))
            .collect();
        keys.sort_unstable();
        keys.dedup();
        Ok(keys)
    }

    /// Node `node` is back: the addresses of it this node answers ARP for (it assumed them
    /// at the takeover) are handed back. This node keeps each quietly on its loopback, for
    /// the connections it still serves ([`Hold::Quiet`]: no ARP or neighbour answer, the
    /// frames of those connections taken off the link by the kernel), and removes it from
    /// the snooped device; the owner then announces it. Returns the addresses handed back.
    pub fn hand_back_addresses(&self, node: u32) -> Result<Vec<IpAddr>, CtlError> {
        let mut done = Vec::new();
        self.each_address(node, |route, ifindex, ip, h| {
            if h == Hold::Announced {
                hold_quietly(route, ifindex, ip)?;
                route.del_address(ifindex, ip)?;
                done.push(ip);
            }
            Ok(())
        })?;
        Ok(done)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TCP: &str = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000:0050 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1 0000000000000000 100 0 0 10 0
   1: 0100000A:0050 6400000A:B0A4 01 00000000:00000000 00:00000000 00000000     0        0 2 1 0000000000000000 20 4 30 10 -1
   2: 0100000A:0050 6400000A:B0A6 06 00000000:00000000 03:00000000 00000000     0        0 0 3 0000000000000000
";
    const TCP6: &str = "  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0000000000000000FFFF00000100000A:0050 0000000000000000FFFF00006400000A:B0A8 08 00000000:00000000 00:00000000 00000000     0        0 3 1 0000000000000000 20 4 0 10 -1
   1: 000000FD000000000000000001000000:0051 000000FD000000000000000000010000:9C41 01 00000000:00000000 00:00000000 00000000     0        0 4 1 0000000000000000 20 4 0 10 -1
";

    fn key(o: Addr, op: u16, c: Addr, cp: u16) -> FlowKey {
        FlowKey {
            owner_addr: o,
            owner_port: op,
            client_addr: c,
            client_port: cp,
        }
    }

    #[test]
    fn live_connections_of_both_tables() {
        let live = live_connections([TCP, TCP6]);
        let (vip, client) = (Addr::v4([10, 0, 0, 1]), Addr::v4([10, 0, 0, 100]));
        // Established IPv4; not the listener, not TIME-WAIT.
        assert!(live.contains(&key(vip, 80, client, 0xb0a4)));
        assert!(!live.contains(&key(vip, 80, client, 0xb0a6)));
        // An IPv4 connection of an IPv6 socket (IPv4-mapped), in CLOSE-WAIT: still served.
        assert!(live.contains(&key(vip, 80, client, 0xb0a8)));
        // IPv6 (fd00::1 port 81, fd00::100 port 40001), words in host order.
        if cfg!(target_endian = "little") {
            let mut a = [0u8; 16];
            a[0] = 0xfd;
            let (mut o, mut c) = (a, a);
            o[15] = 1;
            (c[14], c[15]) = (1, 0);
            assert!(live.contains(&key(Addr(o), 81, Addr(c), 40001)));
        }
        assert_eq!(live.len(), 3);
        // Malformed lines are skipped.
        assert!(live_connections(["header\n 0: zz:0050 0100000A:0050 01\n"]).is_empty());
    }
}
