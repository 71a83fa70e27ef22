// SPDX-License-Identifier: GPL-2.0

//! The TOML configuration file, checked into a [`Config`], and the incarnation state file.
//!
//! The local declaration takes the values `permctl decl add` takes, in the same syntax
//! (`"8000-8099@2,3"` port ranges, `node:ID` ARP policy, ...), parsed by permctl's own
//! parsers (`permctl::spec`), and becomes a `permtcp_logic::decl::Declaration` checked by the
//! same `validate` the kernel runs.

use permctl::spec::{self, DeclSpec};
use permtcp_logic::decl::Declaration;
use serde::Deserialize;
use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Default UDP port of the cluster channel.
pub const DEFAULT_PORT: u16 = 7415;

fn default_incarnation_file() -> PathBuf {
    "/var/lib/permtcpd/incarnation".into()
}
fn default_key_file() -> PathBuf {
    "/etc/permtcpd/keys".into()
}
fn default_lease_margin() -> u64 {
    20
}

fn default_interval() -> u64 {
    100
}
fn default_missed() -> u32 {
    3
}
fn default_fence_timeout() -> u64 {
    30_000
}
fn default_directive_retry() -> u64 {
    200
}
fn default_directive_retries() -> u32 {
    10
}
fn default_status_socket() -> PathBuf {
    "/run/permtcpd/status.sock".into()
}
fn default_control_socket() -> PathBuf {
    "/run/permtcpd/control.sock".into()
}
fn default_handoff_timeout() -> u64 {
    10_000
}
fn default_proto() -> String {
    "tcp".into()
}
fn default_failover() -> String {
    "smallest-id".into()
}
fn default_arp() -> String {
    "follow".into()
}
fn default_rx() -> String {
    "unanswered".into()
}
fn default_mid_response() -> String {
    "continue".into()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    cluster_id: u32,
    node_id: u32,
    #[serde(default = "default_incarnation_file")]
    incarnation_file: PathBuf,
    #[serde(default = "default_key_file")]
    key_file: PathBuf,
    send_key_id: u32,
    bind: Vec<SocketAddr>,
    interface: Option<String>,
    #[serde(default = "default_interval")]
    heartbeat_interval_ms: u64,
    #[serde(default = "default_missed")]
    missed_heartbeats: u32,
    startup_grace_ms: Option<u64>,
    #[serde(default = "default_lease_margin")]
    lease_margin_ms: u64,
    fence_command: Option<Vec<String>>,
    #[serde(default = "default_fence_timeout")]
    fence_timeout_ms: u64,
    park_ms: Option<u32>,
    #[serde(default = "default_directive_retry")]
    directive_retry_ms: u64,
    #[serde(default = "default_directive_retries")]
    directive_retries: u32,
    #[serde(default = "default_status_socket")]
    status_socket: PathBuf,
    #[serde(default = "default_control_socket")]
    control_socket: PathBuf,
    #[serde(default = "default_handoff_timeout")]
    handoff_timeout_ms: u64,
    #[serde(default)]
    peer: Vec<RawPeer>,
    declaration: RawDecl,
    snoop: Option<RawSnoop>,
    keepalived: Option<RawKeepalived>,
    #[serde(default)]
    manage_addresses: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawKeepalived {
    fifo: Option<PathBuf>,
    hold_file: Option<PathBuf>,
    instances: BTreeMap<String, u32>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSnoop {
    device: Option<String>,
    max_conns: Option<u32>,
    max_bytes: Option<u64>,
    keep_received: Option<u32>,
    max_conn_bytes: Option<u64>,
    syn_timeout_ms: Option<u32>,
    idle_timeout_ms: Option<u32>,
    #[serde(default = "default_true")]
    enable: bool,
}

fn default_true() -> bool {
    true
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPeer {
    node_id: u32,
    addrs: Vec<SocketAddr>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDecl {
    addrs: Vec<IpAddr>,
    #[serde(default)]
    macs: Vec<String>,
    ports: Vec<String>,
    #[serde(default = "default_proto")]
    proto: String,
    #[serde(default = "default_failover")]
    failover: String,
    #[serde(default = "default_arp")]
    arp: String,
    #[serde(default)]
    apps: Vec<String>,
    #[serde(default = "default_rx")]
    rx: String,
    #[serde(default = "default_mid_response")]
    mid_response: String,
}

/// A configured peer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Peer {
    /// Its node id.
    pub node_id: u32,
    /// Its cluster addresses: messages go to each, and come only from their IPs.
    pub addrs: Vec<SocketAddr>,
}

/// The fence command.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fence {
    /// Program and arguments; `{node}` and `{incarnation}` are replaced.
    pub argv: Vec<String>,
    /// How long it may run before it is killed and counted failed.
    pub timeout: Duration,
}

/// Snooping, started at start (`SNOOP_START`): the device and the limits.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Snoop {
    /// The cluster-facing device the owners' frames are mirrored from.
    pub device: String,
    /// Limits; `None`: the module's defaults.
    pub limits: permctl::SnoopLimits,
}

/// The checked configuration.
#[derive(Clone, Debug)]
pub struct Config {
    /// Cluster id: messages of other clusters are dropped.
    pub cluster_id: u32,
    /// This node's id (its declaration's node id).
    pub node_id: u32,
    /// State file holding the last incarnation.
    pub incarnation_file: PathBuf,
    /// Key file.
    pub key_file: PathBuf,
    /// Key id messages are sent with.
    pub send_key_id: u32,
    /// Addresses the daemon listens on (never a wildcard).
    pub bind: Vec<SocketAddr>,
    /// Device the sockets are bound to (`SO_BINDTODEVICE`).
    pub interface: Option<String>,
    /// Heartbeat interval.
    pub interval: Duration,
    /// Heartbeats missed before a peer is suspected.
    pub missed: u32,
    /// How long after the start a peer never heard is suspected (`None`: never; it is
    /// declared down only after it was heard once).
    pub startup_grace: Option<Duration>,
    /// The lease ends this long before the earliest possible verdict on this node.
    pub lease_margin: Duration,
    /// The fence command, if any.
    pub fence: Option<Fence>,
    /// How long taken-over connections wait for a listener (kernel default if `None`).
    pub park_ms: Option<u32>,
    /// Directive retransmission interval.
    pub directive_retry: Duration,
    /// Directive transmissions before giving up.
    pub directive_retries: u32,
    /// Unix socket `permtcpd --status` reads the daemon's status from (`None`: none).
    pub status_socket: Option<PathBuf>,
    /// Unix socket (mode 0600) `permtcpd --handoff` asks the daemon for a planned handoff on
    /// (`None`: none).
    pub control_socket: Option<PathBuf>,
    /// How long a planned handoff waits for the peer's answers before it aborts the
    /// connections not answered for.
    pub handoff_timeout: Duration,
    /// Snooping on the cluster device, if this node is a permanency peer.
    pub snoop: Option<Snoop>,
    /// The other nodes.
    pub peers: Vec<Peer>,
    /// This node's declaration (`local` set).
    pub declaration: Declaration,
    /// keepalived mode (`[keepalived]`), if configured.
    pub keepalived: Option<Keepalived>,
    /// Owner recovery: this daemon adds the declaration's addresses to the snooped device,
    /// and announces them, once every live peer's recovery list is installed (failback
    /// waits for the resynchronisation), instead of whoever configures the machine.
    pub manage_addresses: bool,
}

/// keepalived mode: keepalived decides when the mapped owners are taken over
/// ([`crate::keepalived`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Keepalived {
    /// keepalived's `vrrp_notify_fifo`, read by this daemon (`None`: keepalived does not
    /// run here; this node acts on the other peers' word only).
    pub fifo: Option<PathBuf>,
    /// A file keepalived tracks (`track_file`, weight 0: non-zero is a fault) that holds
    /// this node's own instances down: created `0`; `1` once a peer says that it took this
    /// node over (peers say so at the takeover, and again whenever they hear the node come
    /// back); `0` again once owner recovery installed every live peer's list.
    pub hold_file: Option<PathBuf>,
    /// VRRP instance name to the owner node whose address it moves.
    pub instances: BTreeMap<String, u32>,
}

impl RawDecl {
    /// The declaration, parsed by the very code `permctl decl add` parses its options with
    /// (`permctl::spec`), then checked with the kernel's own rules.
    fn build(&self, node: u32) -> Result<Declaration, String> {
        let spec = DeclSpec {
            node,
            local: true,
            addrs: self.addrs.clone(),
            macs: self
                .macs
                .iter()
                .map(|m| spec::parse_mac(m))
                .collect::<Result<_, _>>()?,
            ranges: self
                .ports
                .iter()
                .map(|r| spec::parse_range(r))
                .collect::<Result<_, _>>()?,
            proto: spec::parse_proto(&self.proto)?,
            failover: spec::parse_failover(&self.failover)?,
            arp: spec::parse_arp(&self.arp)?,
            apps: self.apps.clone(),
            rx: spec::parse_rx(&self.rx)?,
            mid: spec::parse_mid(&self.mid_response)?,
        };
        let d = spec.build()?;
        d.validate().map_err(|e| e.text().to_string())?;
        Ok(d)
    }
}

impl Config {
    /// Parses and checks the configuration text.
    pub fn parse(text: &str) -> Result<Self, String> {
        let raw: RawConfig = toml::from_str(text).map_err(|e| e.to_string())?;
        let decl = raw
            .declaration
            .build(raw.node_id)
            .map_err(|e| format!("[declaration]: {e}"))?;
        if raw.node_id == 0 {
            return Err("node_id: 0 is reserved".into());
        }
        if raw.bind.is_empty() {
            return Err("bind: at least one address to listen on is needed".into());
        }
        if let Some(a) = raw.bind.iter().find(|a| a.ip().is_unspecified()) {
            return Err(format!(
                "bind: {a} is a wildcard; give the cluster interface's own addresses"
            ));
        }
        if raw.interface.as_deref().is_some_and(|i| {
            i.is_empty() || i.len() >= libc::IFNAMSIZ || i.contains('/') || i.contains(' ')
        }) {
            return Err("interface: not a valid device name".into());
        }
        if !(10..=10_000).contains(&raw.heartbeat_interval_ms) {
            return Err("heartbeat_interval_ms: must be 10 to 10000".into());
        }
        if !(1..=100).contains(&raw.missed_heartbeats) {
            return Err("missed_heartbeats: must be 1 to 100".into());
        }
        if raw
            .startup_grace_ms
            .is_some_and(|g| g < raw.heartbeat_interval_ms * u64::from(raw.missed_heartbeats))
        {
            return Err(
                "startup_grace_ms: at least the dead time (heartbeat_interval_ms * missed_heartbeats)"
                    .into(),
            );
        }
        if raw.lease_margin_ms >= raw.heartbeat_interval_ms * u64::from(raw.missed_heartbeats) {
            return Err(
                "lease_margin_ms: less than the dead time (heartbeat_interval_ms * missed_heartbeats)"
                    .into(),
            );
        }
        if raw.fence_command.as_ref().is_some_and(|c| c.is_empty()) {
            return Err(
                "fence_command: give the program and its arguments, or leave it out".into(),
            );
        }
        if raw
            .park_ms
            .is_some_and(|ms| ms > permtcp_logic::decl::MAX_PARK_MS)
        {
            return Err("park_ms: at most one hour (3600000)".into());
        }
        // Below the minute a peer remembers its answers for (a part sent again after it
        // forgot would be taken again: refused, the connection gone from its mirror).
        if !(100..=50_000).contains(&raw.handoff_timeout_ms) {
            return Err("handoff_timeout_ms: between 100 and 50000".into());
        }
        if raw.directive_retry_ms == 0 || raw.directive_retries == 0 {
            return Err("directive_retry_ms and directive_retries must be positive".into());
        }
        let mut ids = BTreeSet::from([raw.node_id]);
        for p in &raw.peer {
            if p.node_id == 0 || !ids.insert(p.node_id) {
                return Err(format!(
                    "[[peer]] node_id {}: 0, this node's id, or listed twice",
                    p.node_id
                ));
            }
            if p.addrs.is_empty() {
                return Err(format!("[[peer]] node_id {}: no address", p.node_id));
            }
            if let Some(a) = p.addrs.iter().find(|a| a.ip().is_unspecified()) {
                return Err(format!("[[peer]] node_id {}: {a} is a wildcard", p.node_id));
            }
            for a in &p.addrs {
                if !raw.bind.iter().any(|b| b.is_ipv4() == a.is_ipv4()) {
                    return Err(format!(
                        "[[peer]] node_id {}: no bind address of {a}'s family",
                        p.node_id
                    ));
                }
            }
        }
        let valid_dev = |i: &str| {
            !i.is_empty() && i.len() < libc::IFNAMSIZ && !i.contains('/') && !i.contains(' ')
        };
        let snoop = match raw.snoop {
            Some(RawSnoop { enable: false, .. }) => None,
            Some(s) => {
                let device = s
                    .device
                    .or_else(|| raw.interface.clone())
                    .ok_or("[snoop]: give the device (or interface), or enable = false")?;
                if !valid_dev(&device) {
                    return Err("[snoop] device: not a valid device name".into());
                }
                if s.max_bytes
                    .is_some_and(|b| b < permtcp_logic::ops::MIN_SNOOP_BYTES)
                {
                    return Err("[snoop] max_bytes: at least 4096".into());
                }
                if s.keep_received
                    .is_some_and(|b| b > permtcp_logic::ops::MAX_KEEP_RECEIVED)
                {
                    return Err("[snoop] keep_received: at most 8 MiB".into());
                }
                Some(Snoop {
                    device,
                    limits: permctl::SnoopLimits {
                        max_conns: s.max_conns,
                        max_bytes: s.max_bytes,
                        keep_received: s.keep_received,
                        max_conn_bytes: s.max_conn_bytes,
                        syn_timeout_ms: s.syn_timeout_ms,
                        idle_timeout_ms: s.idle_timeout_ms,
                    },
                })
            }
            // Without a [snoop] table: snoop on the cluster interface, if one is given.
            None => raw.interface.clone().map(|device| Snoop {
                device,
                limits: Default::default(),
            }),
        };
        let keepalived = match raw.keepalived {
            None => None,
            Some(k) => {
                if k.instances.is_empty() {
                    return Err(
                        "[keepalived] instances: map at least one instance to an owner node".into(),
                    );
                }
                for (name, node) in &k.instances {
                    if name.is_empty() || name.contains('"') {
                        return Err(format!(
                            "[keepalived] instances: bad instance name {name:?}"
                        ));
                    }
                    if !ids.contains(node) {
                        return Err(format!(
                            "[keepalived] instances: {name} = {node} is neither this node nor a [[peer]]"
                        ));
                    }
                }
                if k.fifo.as_ref().is_some_and(|f| f.as_os_str().is_empty()) {
                    return Err("[keepalived] fifo: empty path".into());
                }
                if k.hold_file
                    .as_ref()
                    .is_some_and(|f| f.as_os_str().is_empty())
                {
                    return Err("[keepalived] hold_file: empty path".into());
                }
                Some(Keepalived {
                    fifo: k.fifo,
                    hold_file: k.hold_file,
                    instances: k.instances,
                })
            }
        };
        if raw.manage_addresses && snoop.is_none() {
            return Err(
                "manage_addresses: the addresses go on the snooped device; give one ([snoop] or interface)"
                    .into(),
            );
        }
        if ids.len() > permtcp_logic::decl::MAX_DECLS {
            return Err(format!(
                "at most {} nodes per cluster",
                permtcp_logic::decl::MAX_DECLS
            ));
        }
        Ok(Config {
            cluster_id: raw.cluster_id,
            node_id: raw.node_id,
            incarnation_file: raw.incarnation_file,
            key_file: raw.key_file,
            send_key_id: raw.send_key_id,
            bind: raw.bind,
            interface: raw.interface,
            interval: Duration::from_millis(raw.heartbeat_interval_ms),
            missed: raw.missed_heartbeats,
            startup_grace: raw.startup_grace_ms.map(Duration::from_millis),
            lease_margin: Duration::from_millis(raw.lease_margin_ms),
            fence: raw.fence_command.map(|argv| Fence {
                argv,
                timeout: Duration::from_millis(raw.fence_timeout_ms),
            }),
            park_ms: raw.park_ms,
            directive_retry: Duration::from_millis(raw.directive_retry_ms),
            directive_retries: raw.directive_retries,
            status_socket: Some(raw.status_socket).filter(|p| !p.as_os_str().is_empty()),
            control_socket: Some(raw.control_socket).filter(|p| !p.as_os_str().is_empty()),
            handoff_timeout: Duration::from_millis(raw.handoff_timeout_ms),
            snoop,
            peers: raw
                .peer
                .into_iter()
                .map(|p| Peer {
                    node_id: p.node_id,
                    addrs: p.addrs,
                })
                .collect(),
            declaration: decl,
            keepalived,
            manage_addresses: raw.manage_addresses,
        })
    }

    /// Reads and checks the configuration file.
    pub fn load(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        Self::parse(&text).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// Warnings about a configuration that works but may not do what is wanted.
    pub fn warnings(&self) -> Vec<String> {
        let mut w = Vec::new();
        match (self.peers.len(), &self.fence) {
            (0, _) => w.push("no peers configured: nothing to watch".into()),
            (1, None) => w.push(
                "two-node cluster without fence_command: a node-down verdict is never reached"
                    .into(),
            ),
            _ => {}
        }
        if self.snoop.is_none() {
            w.push(
                "no [snoop] device and no interface: this node mirrors nothing and can take nothing over"
                    .into(),
            );
        }
        w
    }
}

/// Reads the last incarnation from `path` (none: 0) and stores and returns the next one:
/// above the last, and at least `now_ms` (the wall clock in ms), so that a lost state file
/// still yields an incarnation newer than the previous run's.
pub fn next_incarnation(path: &Path, now_ms: u64) -> Result<u64, String> {
    use std::io::Write;
    let err = |e: std::io::Error| format!("incarnation file {}: {e}", path.display());
    let last = match std::fs::read_to_string(path) {
        Ok(s) => s.trim().parse::<u64>().map_err(|_| {
            format!(
                "incarnation file {}: not a number; remove it to start afresh",
                path.display()
            )
        })?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
        Err(e) => return Err(err(e)),
    };
    let next = (last + 1).max(now_ms);
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(err)?;
    }
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::File::create(&tmp).map_err(err)?;
    writeln!(f, "{next}").map_err(err)?;
    f.sync_all().map_err(err)?;
    std::fs::rename(&tmp, path).map_err(err)?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(err)?;
    }
    Ok(next)
}

#[cfg(test)]
mod tests {
    use super::*;
    use permtcp_logic::decl::{ArpPolicy, FailoverPolicy, MidResponse, RxPolicy};
    use permtcp_logic::uapi::proto;

    const EXAMPLE: &str = include_str!("../permtcpd.toml.example");

    fn minimal() -> String {
        r#"
cluster_id = 1
node_id = 1
send_key_id = 1
bind = ["10.1.0.1:7415"]
[[peer]]
node_id = 2
addrs = ["10.1.0.2:7415"]
[[peer]]
node_id = 3
addrs = ["10.1.0.3:7415"]
[declaration]
addrs = ["10.0.0.1"]
ports = ["80"]
"#
        .to_string()
    }

    #[test]
    fn example_parses() {
        let c = Config::parse(EXAMPLE).unwrap();
        assert_eq!(c.node_id, 1);
        assert_eq!(c.interval, Duration::from_millis(100));
        assert_eq!(c.missed, 3);
        assert_eq!(c.peers.len(), 2);
        assert!(c.declaration.local);
        assert_eq!(c.declaration.node_id, 1);
        assert!(c.warnings().is_empty());
    }

    #[test]
    fn defaults() {
        let c = Config::parse(&minimal()).unwrap();
        assert_eq!(c.interval, Duration::from_millis(100));
        assert_eq!(c.missed, 3);
        assert_eq!(c.startup_grace, None);
        assert_eq!(c.fence, None);
        assert_eq!(c.key_file, PathBuf::from("/etc/permtcpd/keys"));
        let d = c.declaration;
        assert_eq!(d.proto, proto::TCP);
        assert_eq!(
            (d.failover, d.arp, d.rx),
            (
                FailoverPolicy::SmallestId,
                ArpPolicy::FollowFailover,
                RxPolicy::Unanswered
            )
        );
        assert_eq!(d.mid, MidResponse::Continue);
    }

    #[test]
    fn declaration_like_permctl() {
        let text = minimal().replace(
            "ports = [\"80\"]",
            r#"ports = ["80@2,3", "8000-8099@3"]
macs = ["02:00:00:00:00:01"]
failover = "peer-list"
arp = "node:2"
apps = ["travel-query"]
rx = "drop"
mid_response = "reset""#,
        );
        let d = Config::parse(&text).unwrap().declaration;
        assert_eq!(d.ranges.len(), 2);
        assert_eq!(d.ranges.as_slice()[0].peers.as_slice(), &[2, 3]);
        assert_eq!(
            (d.ranges.as_slice()[1].lo, d.ranges.as_slice()[1].hi),
            (8000, 8099)
        );
        assert_eq!(d.arp, ArpPolicy::Fixed(2));
        assert_eq!(d.rx, RxPolicy::Drop);
        assert_eq!(d.mid, MidResponse::Reset);
        assert_eq!(d.apps.as_slice()[0].as_bytes(), b"travel-query");
        assert_eq!(d.macs.as_slice(), &[[2, 0, 0, 0, 0, 1]]);
    }

    #[test]
    fn clear_errors() {
        let cases: &[(&str, &str, &str)] = &[
            ("node_id = 1", "node_id = 0", "node id 0"),
            ("bind = [\"10.1.0.1:7415\"]", "bind = []", "at least one"),
            ("10.1.0.1:7415", "0.0.0.0:7415", "wildcard"),
            (
                "send_key_id = 1",
                "send_key_id = 1\nheartbeat_interval_ms = 1",
                "10 to 10000",
            ),
            (
                "send_key_id = 1",
                "send_key_id = 1\nmissed_heartbeats = 0",
                "1 to 100",
            ),
            (
                "send_key_id = 1",
                "send_key_id = 1\nfence_command = []",
                "fence_command",
            ),
            (
                "send_key_id = 1",
                "send_key_id = 1\nstartup_grace_ms = 200",
                "startup_grace_ms",
            ),
            (
                "send_key_id = 1",
                "send_key_id = 1\nlease_margin_ms = 300",
                "lease_margin_ms",
            ),
            (
                "send_key_id = 1",
                "send_key_id = 1\nmanage_addresses = true",
                "manage_addresses",
            ),
            (
                "send_key_id = 1",
                "send_key_id = 1\npark_ms = 3600001",
                "one hour",
            ),
            (
                "send_key_id = 1",
                "send_key_id = 1\nbogus = 2",
                "unknown field",
            ),
            ("node_id = 2\n", "node_id = 1\n", "listed twice"),
            ("node_id = 3\n", "node_id = 1\n", "this node's id"),
            ("\"10.1.0.3:7415\"", "\"[fd00::3]:7415\"", "family"),
            ("ports = [\"80\"]", "ports = [\"0\"]", "port 0"),
            ("ports = [\"80\"]", "ports = [\"80-x\"]", "not a port"),
            (
                "ports = [\"80\"]",
                "ports = [\"80\"]\narp = \"me\"",
                "unknown ARP policy",
            ),
            (
                "ports = [\"80\"]",
                "ports = [\"80\"]\nproto = \"udp\"",
                "only TCP",
            ),
            (
                "ports = [\"80\"]",
                "ports = [\"80\"]\nmacs = [\"02:00\"]",
                "MAC",
            ),
            ("ports = [\"80\"]", "ports = [\"80@2\"]", "peer-list"),
            (
                "addrs = [\"10.0.0.1\"]",
                "addrs = [\"224.0.0.1\"]",
                "multicast",
            ),
            (
                "addrs = [\"10.0.0.1\"]",
                "addrs = [\"10.0.0.x\"]",
                "invalid",
            ),
        ];
        for (from, to, want) in cases {
            let text = minimal().replacen(from, to, 1);
            assert_ne!(text, minimal(), "{from}");
            let e = Config::parse(&text).unwrap_err();
            assert!(e.contains(want), "{to}: {e}");
        }
        let two = minimal().replace("[[peer]]\nnode_id = 3\naddrs = [\"10.1.0.3:7415\"]\n", "");
        let c = Config::parse(&two).unwrap();
        assert!(c.warnings()[0].contains("never reached"));
        assert!(Config::load(Path::new("/nonexistent/permtcpd.toml"))
            .unwrap_err()
            .contains("/nonexistent"));
    }

    #[test]
    fn snooping() {
        // None without [snoop] and without interface; the interface by default.
        let c = Config::parse(&minimal()).unwrap();
        assert_eq!(c.snoop, None);
        assert!(c.warnings().iter().any(|w| w.contains("mirrors nothing")));
        let with_if = minimal().replace("send_key_id = 1", "send_key_id = 1\ninterface = \"eth1\"");
        let s = Config::parse(&with_if).unwrap().snoop.unwrap();
        assert_eq!(s.device, "eth1");
        assert_eq!(s.limits, permctl::SnoopLimits::default());
        let text = format!(
            "{}\n[snoop]\ndevice = \"eth0\"\nmax_conns = 10\nmax_bytes = 65536\nkeep_received = 4096\n",
            with_if
        );
        let s = Config::parse(&text).unwrap().snoop.unwrap();
        assert_eq!(s.device, "eth0");
        assert_eq!(
            s.limits,
            permctl::SnoopLimits {
                max_conns: Some(10),
                max_bytes: Some(65536),
                keep_received: Some(4096),
                ..Default::default()
            }
        );
        let off = format!("{with_if}\n[snoop]\nenable = false\n");
        assert_eq!(Config::parse(&off).unwrap().snoop, None);
        for (bad, want) in [
            ("[snoop]\nmax_bytes = 1\n", "at least 4096"),
            ("[snoop]\nkeep_received = 99999999\n", "8 MiB"),
            ("[snoop]\ndevice = \"a/b\"\n", "device name"),
            ("[snoop]\nbogus = 1\n", "unknown field"),
        ] {
            let e = Config::parse(&format!("{with_if}\n{bad}")).unwrap_err();
            assert!(e.contains(want), "{bad}: {e}");
        }
        let e = Config::parse(&format!("{}\n[snoop]\n", minimal())).unwrap_err();
        assert!(e.contains("give the device"), "{e}");
        // The status socket: a default, or none.
        assert_eq!(
            Config::parse(&minimal()).unwrap().status_socket,
            Some(PathBuf::from("/run/permtcpd/status.sock"))
        );
        let none = minimal().replace("send_key_id = 1", "send_key_id = 1\nstatus_socket = \"\"");
        assert_eq!(Config::parse(&none).unwrap().status_socket, None);
        // The control socket and the handoff timeout: defaults, none, out of range.
        let c = Config::parse(&minimal()).unwrap();
        assert_eq!(
            c.control_socket,
            Some(PathBuf::from("/run/permtcpd/control.sock"))
        );
        assert_eq!(c.handoff_timeout, Duration::from_secs(10));
        let none = minimal().replace("send_key_id = 1", "send_key_id = 1\ncontrol_socket = \"\"");
        assert_eq!(Config::parse(&none).unwrap().control_socket, None);
        for bad in [0, 99, 50_001] {
            let t = minimal().replace(
                "send_key_id = 1",
                &format!("send_key_id = 1\nhandoff_timeout_ms = {bad}"),
            );
            assert!(Config::parse(&t)
                .unwrap_err()
                .contains("handoff_timeout_ms"));
        }
    }

    #[test]
    fn incarnations_grow() {
        let dir = std::env::temp_dir().join(format!("permtcpd-inc-{}", std::process::id()));
        let p = dir.join("sub/incarnation");
        let a = next_incarnation(&p, 5).unwrap();
        assert_eq!(a, 5);
        assert_eq!(next_incarnation(&p, 5).unwrap(), 6);
        assert_eq!(next_incarnation(&p, 1000).unwrap(), 1000);
        // The clock went backwards: still newer.
        assert_eq!(next_incarnation(&p, 7).unwrap(), 1001);
        std::fs::write(&p, "junk").unwrap();
        assert!(next_incarnation(&p, 7)
            .unwrap_err()
            .contains("not a number"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn keepalived_section() {
        let c = Config::parse(&minimal()).unwrap();
        assert_eq!(c.keepalived, None);
        let text = minimal()
            + "[keepalived]\nfifo = \"/run/keepalived/permtcp.fifo\"\n[keepalived.instances]\nVI_1 = 1\nVI_2 = 2\n";
        let k = Config::parse(&text).unwrap().keepalived.unwrap();
        assert_eq!(k.fifo, Some(PathBuf::from("/run/keepalived/permtcp.fifo")));
        assert_eq!(k.instances.get("VI_2"), Some(&2));
        // Without a FIFO: a peer that runs no keepalived acts on the others' word.
        let text = minimal() + "[keepalived]\ninstances = { VI_1 = 2 }\n";
        assert_eq!(Config::parse(&text).unwrap().keepalived.unwrap().fifo, None);
        for bad in [
            "[keepalived]\ninstances = {}\n",
            "[keepalived]\ninstances = { VI_1 = 9 }\n",
            "[keepalived]\ninstances = { \"\" = 2 }\n",
            "[keepalived]\nfifo = \"\"\ninstances = { VI_1 = 2 }\n",
            "[keepalived]\nhold_file = \"\"\ninstances = { VI_1 = 2 }\n",
            "[keepalived]\nfifo = \"/f\"\n",
            "[keepalived]\ninstances = { VI_1 = 2 }\nscript = \"x\"\n",
        ] {
            assert!(Config::parse(&(minimal() + bad)).is_err(), "{bad}");
        }
    }
}
