// SPDX-License-Identifier: GPL-2.0

//! Command-line values to and from what the kernel takes and reports: parsing of addresses,
//! MACs, port ranges, policies and raw hex, the human and JSON views of declarations and
//! connection endpoints, and the one-line confirmation of a changing command.

use permtcp_logic::decl::{
    AppName, ArpPolicy, Declaration, FailoverPolicy, MidResponse, PortRange, RxPolicy,
};
use permtcp_logic::packet::Addr;
use permtcp_logic::snoop::FlowKey;
use permtcp_logic::uapi::proto;
use serde::Serialize;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// Parses `aa:bb:cc:dd:ee:ff`.
pub fn parse_mac(s: &str) -> Result<[u8; 6], String> {
    let parts: Vec<&str> = s.split(':').collect();
    if parts.len() != 6 {
        return Err(format!("'{s}' is not a MAC address (aa:bb:cc:dd:ee:ff)"));
    }
    let mut mac = [0u8; 6];
    for (b, p) in mac.iter_mut().zip(parts) {
        if p.len() != 2 {
            return Err(format!("'{s}' is not a MAC address (aa:bb:cc:dd:ee:ff)"));
        }
        *b = u8::from_str_radix(p, 16).map_err(|_| format!("'{s}' is not a MAC address"))?;
    }
    Ok(mac)
}

/// Formats a MAC address.
pub fn fmt_mac(m: &[u8; 6]) -> String {
    m.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// Parses `PORT`, `LO-HI`, optionally followed by `@PEER,PEER,...` (the range's peer list).
pub fn parse_range(s: &str) -> Result<PortRange, String> {
    let (ports, peers) = match s.split_once('@') {
        Some((p, l)) => (p, Some(l)),
        None => (s, None),
    };
    let port = |p: &str| {
        p.trim()
            .parse::<u16>()
            .map_err(|_| format!("'{p}' is not a port number (0-65535)"))
    };
    let (lo, hi) = match ports.split_once('-') {
        Some((a, b)) => (port(a)?, port(b)?),
        None => {
            let p = port(ports)?;
            (p, p)
        }
    };
    let mut r = PortRange {
        lo,
        hi,
        ..Default::default()
    };
    if let Some(list) = peers {
        for p in list.split(',') {
            let id = p
                .trim()
                .parse::<u32>()
                .map_err(|_| format!("'{p}' is not a node id"))?;
            r.peers
                .push(id)
                .map_err(|_| format!("too many peers in '{s}'"))?;
        }
    }
    Ok(r)
}

/// Formats a port range the way [`parse_range`] reads it.
pub fn fmt_range(r: &PortRange) -> String {
    let mut s = if r.lo == r.hi {
        r.lo.to_string()
    } else {
        format!("{}-{}", r.lo, r.hi)
    };
    if !r.peers.is_empty() {
        let peers: Vec<String> = r.peers.iter().map(u32::to_string).collect();
        s.push('@');
        s.push_str(&peers.join(","));
    }
    s
}

/// Parses `smallest-id` or `peer-list`.
pub fn parse_failover(s: &str) -> Result<FailoverPolicy, String> {
    match s {
        "smallest-id" => Ok(FailoverPolicy::SmallestId),
        "peer-list" => Ok(FailoverPolicy::PeerList),
        _ => Err(format!(
            "unknown fail-over policy '{s}' (smallest-id, peer-list)"
        )),
    }
}

/// Parses `follow`, `smallest-id` or `node:ID`.
pub fn parse_arp(s: &str) -> Result<ArpPolicy, String> {
    match s {
        "follow" => Ok(ArpPolicy::FollowFailover),
        "smallest-id" => Ok(ArpPolicy::SmallestId),
        _ => match s.strip_prefix("node:").map(str::parse::<u32>) {
            Some(Ok(n)) => Ok(ArpPolicy::Fixed(n)),
            _ => Err(format!(
                "unknown ARP policy '{s}' (follow, smallest-id, node:ID)"
            )),
        },
    }
}

/// Parses `unanswered`, `deliver` or `drop`.
pub fn parse_rx(s: &str) -> Result<RxPolicy, String> {
    match s {
        "unanswered" => Ok(RxPolicy::Unanswered),
        "deliver" => Ok(RxPolicy::Deliver),
        "drop" => Ok(RxPolicy::Drop),
        _ => Err(format!(
            "unknown received-data policy '{s}' (unanswered, deliver, drop)"
        )),
    }
}

/// The name of a received-data policy, as `--rx` takes it.
pub fn rx_name(rx: RxPolicy) -> &'static str {
    match rx {
        RxPolicy::Unanswered => "unanswered",
        RxPolicy::Deliver => "deliver",
        RxPolicy::Drop => "drop",
    }
}

/// Parses `continue` or `reset`.
pub fn parse_mid(s: &str) -> Result<MidResponse, String> {
    match s {
        "continue" => Ok(MidResponse::Continue),
        "reset" => Ok(MidResponse::Reset),
        _ => Err(format!(
            "unknown mid-response choice '{s}' (continue, reset)"
        )),
    }
}

/// Parses a protocol name or number.
pub fn parse_proto(s: &str) -> Result<u8, String> {
    match s {
        "tcp" => Ok(proto::TCP),
        "udp" => Ok(proto::UDP),
        "sctp" => Ok(proto::SCTP),
        _ => s.parse().map_err(|_| format!("unknown protocol '{s}'")),
    }
}

/// What the user asked to declare, before the kernel's validation.
#[derive(Default)]
pub struct DeclSpec {
    pub node: u32,
    pub local: bool,
    pub addrs: Vec<IpAddr>,
    pub macs: Vec<[u8; 6]>,
    pub ranges: Vec<PortRange>,
    pub proto: u8,
    pub failover: FailoverPolicy,
    pub arp: ArpPolicy,
    pub apps: Vec<String>,
    pub rx: RxPolicy,
    pub mid: MidResponse,
}

impl DeclSpec {
    /// Builds the declaration. Only capacity limits are checked here; every semantic rule is
    /// left to the kernel so that its error messages are the ones users see. (Use
    /// [`Declaration::validate`] to check locally.)
    pub fn build(&self) -> Result<Declaration, String> {
        let mut d = Declaration {
            node_id: self.node,
            local: self.local,
            proto: self.proto,
            failover: self.failover,
            arp: self.arp,
            rx: self.rx,
            mid: self.mid,
            ..Default::default()
        };
        for a in &self.addrs {
            match a {
                IpAddr::V4(v4) => d
                    .addrs4
                    .push(v4.octets())
                    .map_err(|_| "too many IPv4 addresses")?,
                IpAddr::V6(v6) => d
                    .addrs6
                    .push(v6.octets())
                    .map_err(|_| "too many IPv6 addresses")?,
            }
        }
        for m in &self.macs {
            d.macs.push(*m).map_err(|_| "too many MAC addresses")?;
        }
        for r in &self.ranges {
            d.ranges.push(*r).map_err(|_| "too many port ranges")?;
        }
        for a in &self.apps {
            let name = AppName::new(a.as_bytes())
                .map_err(|e| format!("application '{a}': {}", e.text()))?;
            d.apps.push(name).map_err(|_| "too many applications")?;
        }
        Ok(d)
    }
}

/// A declaration as shown to users (JSON and text).
#[derive(Serialize, Debug, PartialEq)]
pub struct DeclView {
    pub node_id: u32,
    pub local: bool,
    pub addresses: Vec<String>,
    pub macs: Vec<String>,
    pub ports: Vec<String>,
    pub protocol: String,
    pub failover: String,
    pub arp: String,
    pub applications: Vec<String>,
    pub rx_data: String,
    pub mid_response: String,
}

impl From<&Declaration> for DeclView {
    fn from(d: &Declaration) -> Self {
        let mut addresses: Vec<String> = d
            .addrs4
            .iter()
            .map(|a| Ipv4Addr::from(*a).to_string())
            .collect();
        addresses.extend(d.addrs6.iter().map(|a| Ipv6Addr::from(*a).to_string()));
        DeclView {
            node_id: d.node_id,
            local: d.local,
            addresses,
            macs: d.macs.iter().map(fmt_mac).collect(),
            ports: d.ranges.iter().map(fmt_range).collect(),
            protocol: match d.proto {
                proto::TCP => "tcp".into(),
                p => p.to_string(),
            },
            failover: match d.failover {
                FailoverPolicy::SmallestId => "smallest-id".into(),
                FailoverPolicy::PeerList => "peer-list".into(),
            },
            arp: match d.arp {
                ArpPolicy::FollowFailover => "follow".into(),
                ArpPolicy::SmallestId => "smallest-id".into(),
                ArpPolicy::Fixed(n) => format!("node:{n}"),
            },
            applications: d
                .apps
                .iter()
                .map(|a| String::from_utf8_lossy(a.as_bytes()).into_owned())
                .collect(),
            rx_data: rx_name(d.rx).into(),
            mid_response: match d.mid {
                MidResponse::Continue => "continue".into(),
                MidResponse::Reset => "reset".into(),
            },
        }
    }
}

impl DeclView {
    /// One block of text per declaration.
    pub fn text(&self) -> String {
        let list = |v: &[String]| {
            if v.is_empty() {
                "-".to_string()
            } else {
                v.join(" ")
            }
        };
        format!(
            "node {}{}\n  addresses     {}\n  macs          {}\n  ports         {} ({})\n  failover      {}\n  arp           {}\n  applications  {}\n  rx-data       {}\n  mid-response  {}\n",
            self.node_id,
            if self.local { " (local)" } else { "" },
            list(&self.addresses),
            list(&self.macs),
            list(&self.ports),
            self.protocol,
            self.failover,
            self.arp,
            list(&self.applications),
            self.rx_data,
            self.mid_response,
        )
    }
}

/// An address as the kernel reports it (16 bytes, IPv4-mapped), IPv4 ones as IPv4.
pub fn ip(a: &Addr) -> IpAddr {
    match a.as_v4() {
        Some(v4) => IpAddr::from(v4),
        None => IpAddr::V6(Ipv6Addr::from(a.0)),
    }
}

/// An address as the kernel takes it.
pub fn to_addr(ip: IpAddr) -> Addr {
    match ip {
        IpAddr::V4(v4) => Addr::v4(v4.octets()),
        IpAddr::V6(v6) => Addr(v6.octets()),
    }
}

/// The owner's and the client's ends of a connection, as shown: `ADDR:PORT`, `[ADDR]:PORT`.
pub fn ends(k: &FlowKey) -> (SocketAddr, SocketAddr) {
    (
        SocketAddr::new(ip(&k.owner_addr), k.owner_port),
        SocketAddr::new(ip(&k.client_addr), k.client_port),
    )
}

/// The connection between `owner` and `client`.
pub fn key_of(owner: SocketAddr, client: SocketAddr) -> FlowKey {
    FlowKey {
        owner_addr: to_addr(owner.ip()),
        client_addr: to_addr(client.ip()),
        owner_port: owner.port(),
        client_port: client.port(),
    }
}

/// Parses hex digits (whitespace ignored) into bytes.
pub fn parse_hex(s: &str) -> Result<Vec<u8>, String> {
    let digits: String = s.chars().filter(|c| !c.is_whitespace()).collect();
    if digits.len() % 2 != 0 {
        return Err("odd number of hex digits".into());
    }
    (0..digits.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&digits[i..i + 2], 16))
        .collect::<Result<_, _>>()
        .map_err(|_| "invalid hex".into())
}

/// Confirms a changing command: `text`, or `{"ok":true,"message":text}` with `--json`.
pub fn done(json: bool, text: &str) {
    if json {
        println!("{}", serde_json::json!({ "ok": true, "message": text }));
    } else {
        println!("{text}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_parse_and_print_back() {
        for s in ["80", "8000-8999", "443@2,3", "1-65535@7"] {
            assert_eq!(fmt_range(&parse_range(s).unwrap()), s);
        }
        let r = parse_range("10-20@5,4").unwrap();
        assert_eq!((r.lo, r.hi, r.peers.as_slice()), (10, 20, &[5, 4][..]));
        assert!(parse_range("70000").is_err());
        assert!(parse_range("a-b").is_err());
        assert!(parse_range("1-2@x").is_err());
        assert!(parse_range("1-2@1,2,3,4,5,6,7,8,9")
            .unwrap_err()
            .contains("too many peers"));
    }

    #[test]
    fn macs() {
        assert_eq!(
            parse_mac("02:00:0a:0b:0c:ff").unwrap(),
            [2, 0, 10, 11, 12, 255]
        );
        assert_eq!(fmt_mac(&[2, 0, 10, 11, 12, 255]), "02:00:0a:0b:0c:ff");
        for bad in [
            "02:00",
            "02:00:0a:0b:0c:fg",
            "2:0:a:b:c:d",
            "02-00-0a-0b-0c-0d",
        ] {
            assert!(parse_mac(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn policies() {
        assert_eq!(parse_arp("node:4"), Ok(ArpPolicy::Fixed(4)));
        assert!(parse_arp("node:x").is_err());
        assert_eq!(parse_failover("peer-list"), Ok(FailoverPolicy::PeerList));
        assert!(parse_failover("random").is_err());
        assert_eq!(parse_rx("drop"), Ok(RxPolicy::Drop));
        assert_eq!(parse_rx("unanswered"), Ok(RxPolicy::Unanswered));
        assert!(parse_rx("answered").is_err());
        assert_eq!(parse_mid("reset"), Ok(MidResponse::Reset));
        assert_eq!(parse_mid("continue"), Ok(MidResponse::Continue));
        assert!(parse_mid("abort").is_err());
        assert_eq!(parse_proto("tcp"), Ok(6));
        assert_eq!(parse_proto("17"), Ok(17));
        assert!(parse_proto("icmp").is_err());
    }

    #[test]
    fn spec_to_view() {
        let spec = DeclSpec {
            node: 2,
            local: true,
            addrs: vec!["10.0.0.1".parse().unwrap(), "fd00::1".parse().unwrap()],
            macs: vec![[2, 0, 0, 0, 0, 2]],
            ranges: vec![parse_range("80").unwrap()],
            proto: proto::TCP,
            apps: vec!["web".into()],
            ..Default::default()
        };
        let d = spec.build().unwrap();
        assert!(d.validate().is_ok());
        let v = DeclView::from(&d);
        assert_eq!(v.addresses, vec!["10.0.0.1", "fd00::1"]);
        assert_eq!(v.arp, "follow");
        let json = serde_json::to_value(&v).unwrap();
        assert_eq!(json["node_id"], 2);
        assert_eq!(json["ports"][0], "80");
        assert!(v.text().starts_with("node 2 (local)\n"));
        let bad = DeclSpec {
            apps: vec!["bad\tname".into()],
            ..Default::default()
        };
        assert!(bad.build().is_err());
    }
}
