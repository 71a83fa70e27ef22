// SPDX-License-Identifier: GPL-2.0

//! Planned live handoff (Documentation/handoff.rst): the calls of its three steps, each on
//! one node, and the JSON lines their commands read and print, so that a script (or
//! `permtcpd`) carries the list from the serving node to the peer and back.
//!
//! - [`Client::handoff_hold`] on the serving node (HANDOFF_HOLD, as many rounds as the
//!   binding has connections);
//! - [`Client::handoff_take`] on the peer (HANDOFF_TAKE): a connection its mirror has not
//!   seen level yet is asked again until `wait` has passed;
//! - [`Client::handoff_done`] on the serving node (HANDOFF_DONE).

use crate::netlink::{Client, CtlError};
use crate::spec::{ends, key_of};
use permtcp_logic::handoff::{Handoff, HandoffConn, HoldRequest, HANDOFF_BATCH};
use permtcp_logic::nla::Writer;
use permtcp_logic::ops::List;
use permtcp_logic::packet::Addr;
use permtcp_logic::uapi::{cmd, handoff_status as status};
use serde::{Deserialize, Serialize};
use std::time::{Duration, Instant};

/// The status names of [`status`], in order from [`status::HELD`].
const NAMES: [&str; 11] = [
    "held",
    "busy",
    "taken",
    "not-mirrored",
    "not-ready",
    "behind",
    "mismatch",
    "mid-response",
    "failed",
    "not-peer",
    "gone",
];

/// The name of status `s`.
pub fn status_name(s: u8) -> &'static str {
    NAMES
        .get(usize::from(s).wrapping_sub(1))
        .copied()
        .unwrap_or("unknown")
}

/// One connection as a JSON line.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Line {
    /// The service end, ADDR:PORT.
    pub owner: std::net::SocketAddr,
    /// The client's end.
    pub client: std::net::SocketAddr,
    /// The serving node's next sequence number to send.
    pub snd_nxt: u32,
    /// Its oldest unacknowledged one.
    pub snd_una: u32,
    /// Its next one expected from the client.
    pub rcv_nxt: u32,
    /// Where the connection stands ([`status_name`]).
    pub status: String,
}

impl Line {
    /// The line of `c`.
    pub fn of(c: &HandoffConn) -> Self {
        let (owner, client) = ends(&c.key);
        Line {
            owner,
            client,
            snd_nxt: c.snd_nxt,
            snd_una: c.snd_una,
            rcv_nxt: c.rcv_nxt,
            status: status_name(c.status).into(),
        }
    }

    /// The connection of the line.
    pub fn conn(&self) -> Result<HandoffConn, String> {
        let s = NAMES
            .iter()
            .position(|n| *n == self.status)
            .ok_or_else(|| format!("{}: unknown status", self.status))?;
        Ok(HandoffConn {
            key: key_of(self.owner, self.client),
            snd_nxt: self.snd_nxt,
            snd_una: self.snd_una,
            rcv_nxt: self.rcv_nxt,
            status: s as u8 + status::HELD,
        })
    }
}

/// Parses JSON lines (blank lines skipped).
pub fn parse_lines(text: &str) -> Result<Vec<HandoffConn>, String> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            serde_json::from_str::<Line>(l)
                .map_err(|e| format!("{l}: {e}"))
                .and_then(|x| x.conn())
        })
        .collect()
}

impl Client {
    fn handoff_call(&self, command: u8, m: &Handoff<'_>) -> Result<Vec<HandoffConn>, CtlError> {
        let mut buf = vec![0u8; 128 + 96 * m.conns.len()];
        let mut w = Writer::new(&mut buf);
        m.write(&mut w)
            .map_err(|e| CtlError::Transport(e.text().into()))?;
        let n = w.len();
        let replies = self.request_doit(command, &buf[..n])?;
        let mut out = Vec::new();
        for r in replies.iter() {
            let parsed = Handoff::parse(r).map_err(|e| CtlError::Transport(e.text().into()))?;
            out.extend(parsed.conns.iter());
        }
        Ok(out)
    }

    /// HANDOFF_HOLD on the serving node: holds the established connections of binding
    /// `addr`:`port` (at most `max`, all when `None`), in rounds of [`HANDOFF_BATCH`]; a
    /// connection with bytes still to send (busy) is asked again until `wait` has passed.
    /// Returns every connection seen, with its last status.
    pub fn handoff_hold(
        &self,
        addr: Addr,
        port: u16,
        max: Option<usize>,
        wait: Duration,
    ) -> Result<Vec<HandoffConn>, CtlError> {
        let deadline = Instant::now() + wait;
        let mut all: Vec<HandoffConn> = Vec::new();
        loop {
            let held = all.iter().filter(|c| c.status == status::HELD).count();
            let want = max.map_or(HANDOFF_BATCH, |m| m.saturating_sub(held).min(HANDOFF_BATCH));
            if want == 0 {
                break;
            }
            let req = HoldRequest {
                addr,
                port,
                max: Some(want as u32),
            };
            let mut buf = vec![0u8; 64];
            let mut w = Writer::new(&mut buf);
            req.write(&mut w)
                .map_err(|e| CtlError::Transport(e.text().into()))?;
            let n = w.len();
            let replies = self.request_doit(HoldRequest::CMD, &buf[..n])?;
            let mut round = Vec::new();
            for r in replies.iter() {
                let parsed = Handoff::parse(r).map_err(|e| CtlError::Transport(e.text().into()))?;
                round.extend(parsed.conns.iter());
            }
            let fresh = round.iter().filter(|c| c.status == status::HELD).count();
            let full = round.len() == want;
            for c in round {
                // A busy one seen again replaces its earlier line.
                all.retain(|a| a.key != c.key);
                all.push(c);
            }
            if full && fresh > 0 {
                continue;
            }
            if !all.iter().any(|c| c.status == status::BUSY) || Instant::now() >= deadline {
                break;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        Ok(all)
    }

    /// Holds the service addresses of `conns` on this node (the peer taking them over)
    /// quietly, as a takeover holds an address another node answers ARP for: on the
    /// loopback device, the snooped device answering ARP for its own addresses only. An
    /// address already local stays as it is.
    pub fn handoff_addresses(&self, conns: &[HandoffConn]) -> Result<(), CtlError> {
        let ifindex = self.stats()?.ifindex;
        if ifindex == 0 {
            // Not snooping: HANDOFF_TAKE says so for each connection.
            return Ok(());
        }
        let mut ips: Vec<std::net::IpAddr> = conns.iter().map(|c| ends(&c.key).0.ip()).collect();
        ips.sort();
        ips.dedup();
        let route = Client::connect_route()?;
        for ip in ips {
            // Binding succeeds only to a local address.
            if std::net::UdpSocket::bind((ip, 0)).is_err() {
                crate::calls::hold_quietly(&route, ifindex, ip)?;
            }
        }
        Ok(())
    }

    /// HANDOFF_TAKE on the peer: takes over the held connections of `conns` from node
    /// `node`, each waiting at most `park_ms` for its listener; a connection the mirror has
    /// not seen level yet ([`status::BEHIND`]) is asked again every millisecond or so until
    /// `wait` has passed. Returns every held connection with its final status.
    pub fn handoff_take(
        &self,
        node: u32,
        conns: &[HandoffConn],
        park_ms: Option<u32>,
        wait: Duration,
    ) -> Result<Vec<HandoffConn>, CtlError> {
        let deadline = Instant::now() + wait;
        let mut todo: Vec<HandoffConn> = conns
            .iter()
            .filter(|c| c.status == status::HELD)
            .copied()
            .collect();
        let mut out = Vec::new();
        loop {
            let mut behind = Vec::new();
            for batch in todo.chunks(HANDOFF_BATCH) {
                let m = Handoff {
                    node: Some(node),
                    park_ms,
                    conns: List::from_slice(batch),
                };
                for r in self.handoff_call(cmd::HANDOFF_TAKE, &m)? {
                    if r.status == status::BEHIND && Instant::now() < deadline {
                        behind.push(HandoffConn {
                            status: status::HELD,
                            ..r
                        });
                    } else {
                        out.push(r);
                    }
                }
            }
            if behind.is_empty() {
                return Ok(out);
            }
            todo = behind;
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// HANDOFF_DONE on the serving node: drops the connections `node` took (status taken)
    /// silently, and resumes the others of `conns`.
    pub fn handoff_done(&self, node: u32, conns: &[HandoffConn]) -> Result<(), CtlError> {
        for batch in conns.chunks(HANDOFF_BATCH) {
            let m = Handoff {
                node: Some(node),
                park_ms: None,
                conns: List::from_slice(batch),
            };
            self.handoff_call(cmd::HANDOFF_DONE, &m)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_round_trip() {
        for s in status::HELD..=status::GONE {
            let c = HandoffConn {
                key: key_of(
                    "10.0.0.1:80".parse().unwrap(),
                    "[fd00::1]:40000".parse().unwrap(),
                ),
                snd_nxt: 1,
                snd_una: u32::MAX,
                rcv_nxt: 7,
                status: s,
            };
            let text = serde_json::to_string(&Line::of(&c)).unwrap();
            assert_eq!(parse_lines(&text).unwrap(), vec![c]);
        }
        assert!(parse_lines("{\"owner\":\"10.0.0.1:80\"}").is_err());
        let bad = Line {
            status: "nope".into(),
            ..Line::of(&HandoffConn::default())
        };
        assert!(parse_lines(&serde_json::to_string(&bad).unwrap()).is_err());
    }
}
