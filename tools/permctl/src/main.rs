// SPDX-License-Identifier: GPL-2.0

//! `permctl`: control tool for the permtcp kernel module.
//!
//! Exit status: 0 on success, 1 when the kernel refuses a request or netlink fails, 2 for a
//! usage error, 3 when the permtcp module is not loaded.

mod assume;
mod directive;
mod netlink;
mod snoop;
mod spec;

use clap::{Args, Parser, Subcommand};
use netlink::{u32_of, u64_of, Client, CtlError};
use permtcp_logic::decl::{ArpPolicy, Declaration, FailoverPolicy, PortRange, RxPolicy};
use permtcp_logic::nla::Writer;
use permtcp_logic::uapi::{attr, cmd};
use serde::Serialize;
use spec::{DeclSpec, DeclView};
use std::net::IpAddr;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "permctl",
    version,
    about = "Manage permtcp: permanent TCP connections"
)]
struct Cli {
    /// Print machine-readable JSON instead of text.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Show the module's status in this network namespace.
    Status,
    /// Manage ownership declarations.
    #[command(subcommand)]
    Decl(DeclCommand),
    /// Snoop the owners' connections on a device (permanency peer).
    #[command(subcommand)]
    Snoop(SnoopCommand),
    /// List the mirrored connections (ss-like).
    Conns,
    /// List the connections this node took over: where the restarted application resumes
    /// (stream offsets) and how many sent bytes are kept for it to verify.
    Taken,
    /// Snooping counters and limits.
    Stats,
    /// Write the data a mirrored connection retains in one direction to a file.
    ConnData {
        /// The owner's end, ADDR:PORT (IPv6 as [ADDR]:PORT).
        #[arg(long)]
        owner: std::net::SocketAddr,
        /// The client's end.
        #[arg(long)]
        client: std::net::SocketAddr,
        /// Whose sent data: owner or client.
        #[arg(long, value_parser = ["owner", "client"])]
        side: String,
        /// Output file.
        #[arg(long)]
        out: String,
    },
    /// Declare a node failed and take over the connections the policy gives this node
    /// (needs CAP_NET_ADMIN).
    Takeover {
        /// The failed node's id.
        #[arg(long)]
        node: u32,
        /// How long taken-over connections wait for the application to listen before they
        /// are reset, in ms (default 60000, at most one hour).
        #[arg(long)]
        park_ms: Option<u32>,
        /// UDP port of the peers' `permctl directives`.
        #[arg(long, default_value_t = directive::DEFAULT_PORT)]
        directive_port: u16,
        /// Do not assume the failed node's addresses (the cluster software does).
        #[arg(long)]
        no_assume: bool,
    },
    /// Receive fail-over directives from other peers and take their connections over, or
    /// pass them on (runs until killed; needs CAP_NET_ADMIN).
    Directives {
        /// UDP port to listen on.
        #[arg(long, default_value_t = directive::DEFAULT_PORT)]
        port: u16,
    },
    /// Testing aids.
    #[command(subcommand)]
    Debug(DebugCommand),
}

#[derive(Subcommand)]
enum SnoopCommand {
    /// Start snooping on the cluster-facing device (needs CAP_NET_ADMIN).
    Start {
        /// Network device, e.g. eth0.
        #[arg(long)]
        dev: String,
        /// Limit on mirrored connections (default 4096).
        #[arg(long)]
        max_conns: Option<u32>,
        /// Limit on retained bytes (default 64 MiB).
        #[arg(long)]
        max_bytes: Option<u64>,
        /// Client bytes to keep behind the owner's acknowledgement at least, for an owner
        /// application that reads late (default: one window; at most 8 MiB).
        #[arg(long)]
        keep_received: Option<u32>,
    },
    /// Stop snooping and forget the mirrored connections (needs CAP_NET_ADMIN).
    Stop,
}

#[derive(Subcommand)]
enum DebugCommand {
    /// Send a command with raw, unchecked attribute bytes (hex) to test the kernel's checks.
    Raw {
        /// Command number.
        #[arg(long)]
        cmd: u8,
        /// Ask for a dump.
        #[arg(long)]
        dump: bool,
        /// Attribute bytes as hex words, e.g. 08000200 01000000.
        hex: Vec<String>,
    },
}

fn parse_hex(s: &str) -> Result<Vec<u8>, CtlError> {
    let digits: String = s.chars().filter(|c| !c.is_whitespace()).collect();
    if digits.len() % 2 != 0 {
        return Err(CtlError::Transport("odd number of hex digits".into()));
    }
    (0..digits.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&digits[i..i + 2], 16))
        .collect::<Result<_, _>>()
        .map_err(|_| CtlError::Transport("invalid hex".into()))
}

#[derive(Subcommand)]
enum DeclCommand {
    /// Add a node's ownership declaration (needs CAP_NET_ADMIN).
    Add(AddArgs),
    /// Delete the declaration of a node id (needs CAP_NET_ADMIN).
    Del {
        /// Cluster-node id whose declaration is removed.
        #[arg(long)]
        node: u32,
    },
    /// List the declarations of this network namespace.
    List,
}

#[derive(Args)]
struct AddArgs {
    /// Cluster-node id (non-zero, unique in the namespace).
    #[arg(long)]
    node: u32,
    /// This is the declaration of the node permctl runs on.
    #[arg(long)]
    local: bool,
    /// An IPv4 or IPv6 address the node owns (repeatable).
    #[arg(long = "addr", required = true)]
    addrs: Vec<IpAddr>,
    /// A MAC address tied to the addresses, aa:bb:cc:dd:ee:ff (repeatable).
    #[arg(long = "mac", value_parser = spec::parse_mac)]
    macs: Vec<[u8; 6]>,
    /// A port range to keep permanent: PORT or LO-HI, optionally @PEER,PEER,... with the
    /// peer-list policy (repeatable).
    #[arg(long = "ports", required = true, value_parser = spec::parse_range)]
    ranges: Vec<PortRange>,
    /// Protocol: tcp (the only one supported), or a number.
    #[arg(long, default_value = "tcp", value_parser = spec::parse_proto)]
    proto: u8,
    /// Fail-over policy: smallest-id or peer-list.
    #[arg(long, default_value = "smallest-id", value_parser = spec::parse_failover)]
    failover: FailoverPolicy,
    /// ARP-ownership policy: follow, smallest-id or node:ID.
    #[arg(long, default_value = "follow", value_parser = spec::parse_arp)]
    arp: ArpPolicy,
    /// An application that must run (repeatable).
    #[arg(long = "app")]
    apps: Vec<String>,
    /// Received-data policy: deliver or drop.
    #[arg(long, default_value = "deliver", value_parser = spec::parse_rx)]
    rx: RxPolicy,
}

#[derive(Serialize)]
struct StatusView {
    version: u32,
    declarations: u32,
    max_declarations: u32,
    local_node: Option<u32>,
    netns_cookie: u64,
    /// Taken-over connections waiting for the application to listen.
    parked: u32,
    /// Parked connections handed to a listener later.
    park_queued: u32,
    /// Parked connections reset because no listener came in time.
    park_reset: u32,
}

fn protocol_error(what: &str) -> CtlError {
    CtlError::Transport(format!("malformed reply: {what}"))
}

fn status(c: &Client, json: bool) -> Result<(), CtlError> {
    let replies = c.request(cmd::STATUS_GET, &[], false)?;
    let a = replies.first().ok_or_else(|| protocol_error("no status"))?;
    let missing = || protocol_error("status attribute missing");
    let v = StatusView {
        version: u32_of(a, attr::VERSION).ok_or_else(missing)?,
        declarations: u32_of(a, attr::DECL_COUNT).ok_or_else(missing)?,
        max_declarations: u32_of(a, attr::DECL_MAX).ok_or_else(missing)?,
        local_node: u32_of(a, attr::LOCAL_NODE),
        netns_cookie: u64_of(a, attr::NETNS_COOKIE).ok_or_else(missing)?,
        parked: u32_of(a, attr::PARKED).unwrap_or(0),
        park_queued: u32_of(a, attr::PARK_QUEUED).unwrap_or(0),
        park_reset: u32_of(a, attr::PARK_RESET).unwrap_or(0),
    };
    if json {
        println!("{}", serde_json::to_string(&v).expect("serializable"));
    } else {
        println!(
            "permtcp module loaded, netlink family version {}",
            v.version
        );
        println!("netns cookie      {}", v.netns_cookie);
        println!(
            "declarations      {} of {}",
            v.declarations, v.max_declarations
        );
        match v.local_node {
            Some(n) => println!("local node        {n}"),
            None => println!("local node        none declared"),
        }
        println!(
            "parked            {} now, {} accepted later, {} reset (no listener in time)",
            v.parked, v.park_queued, v.park_reset
        );
    }
    Ok(())
}

fn list(c: &Client, json: bool) -> Result<(), CtlError> {
    let mut views = Vec::new();
    for reply in c.request(cmd::DECL_GET, &[], true)? {
        for (kind, payload) in reply {
            if kind == attr::DECL {
                let d = Declaration::parse(&payload).map_err(|e| protocol_error(e.text()))?;
                views.push(DeclView::from(&d));
            }
        }
    }
    if json {
        println!("{}", serde_json::to_string(&views).expect("serializable"));
    } else if views.is_empty() {
        println!("no declarations");
    } else {
        for v in &views {
            print!("{}", v.text());
        }
    }
    Ok(())
}

fn add(c: &Client, a: AddArgs, json: bool) -> Result<(), CtlError> {
    let spec = DeclSpec {
        node: a.node,
        local: a.local,
        addrs: a.addrs,
        macs: a.macs,
        ranges: a.ranges,
        proto: a.proto,
        failover: a.failover,
        arp: a.arp,
        apps: a.apps,
        rx: a.rx,
    };
    let d = spec.build().map_err(CtlError::Transport)?;
    let mut buf = vec![0u8; 8192];
    let mut w = Writer::new(&mut buf);
    d.write(&mut w)
        .map_err(|e| CtlError::Transport(e.text().into()))?;
    let n = w.len();
    c.request(cmd::DECL_ADD, &buf[..n], false)?;
    done(json, &format!("declaration of node {} added", d.node_id));
    Ok(())
}

fn del(c: &Client, node: u32, json: bool) -> Result<(), CtlError> {
    let mut buf = [0u8; 8];
    let mut w = Writer::new(&mut buf);
    w.put_u32(attr::NODE_ID, node).expect("fits");
    c.request(cmd::DECL_DEL, &buf, false)?;
    done(json, &format!("declaration of node {node} deleted"));
    Ok(())
}

fn done(json: bool, text: &str) {
    if json {
        println!("{}", serde_json::json!({ "ok": true, "message": text }));
    } else {
        println!("{text}");
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let json = cli.json;
    let result = Client::connect().and_then(|c| match cli.command {
        Command::Status => status(&c, json),
        Command::Decl(DeclCommand::List) => list(&c, json),
        Command::Decl(DeclCommand::Add(a)) => add(&c, a, json),
        Command::Decl(DeclCommand::Del { node }) => del(&c, node, json),
        Command::Snoop(SnoopCommand::Start {
            dev,
            max_conns,
            max_bytes,
            keep_received,
        }) => snoop::start(&c, &dev, max_conns, max_bytes, keep_received).map(|m| done(json, &m)),
        Command::Snoop(SnoopCommand::Stop) => snoop::stop(&c).map(|m| done(json, &m)),
        Command::Conns => snoop::conns(&c, json),
        Command::Taken => snoop::taken(&c, json),
        Command::Takeover {
            node,
            park_ms,
            directive_port,
            no_assume,
        } => snoop::takeover(&c, node, park_ms, directive_port, !no_assume, json),
        Command::Directives { port } => directive::listen(&c, port),
        Command::Stats => snoop::stats(&c, json),
        Command::ConnData {
            owner,
            client,
            side,
            out,
        } => {
            snoop::data(&c, owner, client, u8::from(side == "client"), &out).map(|m| done(json, &m))
        }
        Command::Debug(DebugCommand::Raw { cmd, dump, hex }) => parse_hex(&hex.concat())
            .and_then(|bytes| c.request_raw(cmd, &bytes, dump))
            .map(|n| done(json, &format!("accepted, {n} reply messages"))),
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            if json {
                let errno = match &e {
                    CtlError::Kernel { errno, .. } => Some(*errno),
                    _ => None,
                };
                eprintln!(
                    "{}",
                    serde_json::json!({ "error": e.to_string(), "errno": errno })
                );
            } else {
                eprintln!("permctl: {e}");
            }
            match e {
                CtlError::NotLoaded => ExitCode::from(3),
                CtlError::Usage(_) => ExitCode::from(2),
                _ => ExitCode::from(1),
            }
        }
    }
}
