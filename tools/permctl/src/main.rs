// SPDX-License-Identifier: GPL-2.0

//! `permctl`: control tool for the permtcp kernel module.
//!
//! This file defines the command line and dispatches each command to its family's module:
//! `decl` (declarations, status), `snoop` (snooping, connections, statistics, retained data),
//! `takeover` (takeover, taken-over connections), `fence` (the lease, notifications),
//! `generate` (completions and man pages). They print; the netlink client, its typed calls
//! and the command-line values are the `permctl` library (`lib.rs`), which `permtcpd` uses
//! too.
//!
//! Exit status: 0 on success, 1 when the kernel refuses a request or netlink fails, 2 for a
//! usage error, 3 when the permtcp module is not loaded.

mod decl;
mod fence;
mod generate;
mod snoop;
mod takeover;

use clap::{Args, Parser, Subcommand};
use permctl::spec::{self, done, DeclSpec};
use permctl::{Client, CtlError};
use permtcp_logic::decl::{ArpPolicy, FailoverPolicy, MidResponse, PortRange, RxPolicy};
use permtcp_logic::track::Side;
use std::net::IpAddr;
use std::path::PathBuf;
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
    /// (needs CAP_NET_ADMIN). Connections for the next peers are listed: permtcpd, which
    /// normally runs the takeover, delivers those directives on its authenticated channel.
    Takeover {
        /// The failed node's id.
        #[arg(long)]
        node: u32,
        /// How long taken-over connections wait for the application to listen before they
        /// are reset, in ms (default 60000, at most one hour).
        #[arg(long)]
        park_ms: Option<u32>,
        /// Do not assume the failed node's addresses (the cluster software does).
        #[arg(long)]
        no_assume: bool,
    },
    /// Renew this node's lease on its own bindings for MS milliseconds (0: release it at
    /// once). Once a lease was set, the kernel drops every segment of this node's bindings
    /// while it has run out: the cluster daemon renews it (needs CAP_NET_ADMIN).
    Lease {
        /// The lease's length from now, in ms (at most 60000).
        #[arg(long)]
        ms: u32,
    },
    /// Print the module's notifications as they come: node failed, connection taken, reset,
    /// handed on with a directive, not ready.
    Events {
        /// Exit after this many notifications.
        #[arg(long)]
        count: Option<u64>,
    },
    /// Owner recovery, on the recovered owner: peer NODE serves these connections of this
    /// node's bindings (it took them over while this node was down). The kernel follows
    /// them, drops this node's resets of them and refuses a SYN that would reuse one until it
    /// ends. Replaces the peer's earlier list (none: clears it); permtcpd sends it.
    Recovery {
        /// The peer serving the connections.
        #[arg(long)]
        node: u32,
        /// A served connection: the owner's end and the client's,
        /// OWNER_ADDR:PORT,CLIENT_ADDR:PORT (IPv6 as [ADDR]:PORT); repeatable.
        #[arg(long = "conn", value_parser = parse_conn)]
        conns: Vec<(std::net::SocketAddr, std::net::SocketAddr)>,
        /// Add to the peer's earlier list instead of replacing it.
        #[arg(long)]
        append: bool,
    },
    /// Owner recovery, on a peer: the connections of node NODE's bindings this node took
    /// over and still serves, one OWNER,CLIENT a line (the --conn values of the recovery
    /// directive for NODE).
    Served {
        /// The recovered node.
        #[arg(long)]
        node: u32,
    },
    /// Owner recovery, on a peer: node NODE is back; the addresses of it this node answers
    /// ARP for go back to it (this node keeps them quietly on its loopback for the
    /// connections it serves, and removes them from the snooped device).
    HandBack {
        /// The recovered node.
        #[arg(long)]
        node: u32,
    },
    /// Owner recovery, on a peer, once node NODE (declared failed here by a takeover) is back
    /// and its recovery list installed: NODE is a member again. Its new connections are
    /// mirrored and a later failure of it is taken over again; its connections other nodes
    /// serve stay followed here, never taken over or reset by this node.
    Rejoin {
        /// The recovered node.
        #[arg(long)]
        node: u32,
    },
    /// Planned live handoff of a binding's established connections to a peer that mirrors
    /// them (Documentation/handoff.rst): `hold` on the serving node, `take` on the peer,
    /// `done` on the serving node, each reading the JSON lines the step before printed.
    #[command(subcommand)]
    Handoff(HandoffCommand),
    /// Testing aids.
    #[command(subcommand)]
    Debug(DebugCommand),
    /// Write shell completions (bash, zsh, fish) and man pages to a directory (for
    /// packaging; `make install` runs it).
    #[command(hide = true)]
    Generate {
        /// Output directory (created if missing).
        #[arg(long)]
        out: PathBuf,
    },
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
        /// Limit on the bytes the mirror holds: data, slot tables, entries (default 64 MiB).
        #[arg(long)]
        max_bytes: Option<u64>,
        /// Client bytes to keep behind the owner's acknowledgement at least, for an owner
        /// application that reads late (default: one window; at most 8 MiB).
        #[arg(long)]
        keep_received: Option<u32>,
        /// Bytes one connection may hold at most (default a sixteenth of --max-bytes, at
        /// least --keep-received plus 1 MiB).
        #[arg(long)]
        max_conn_bytes: Option<u64>,
        /// Milliseconds without a segment before an incomplete handshake is forgotten
        /// (default 20000; 1000 to 600000).
        #[arg(long)]
        syn_timeout_ms: Option<u32>,
        /// Milliseconds without a segment before any other connection but one in TIME-WAIT
        /// is forgotten (default 10800000, 3 hours; at least 1000).
        #[arg(long)]
        idle_timeout_ms: Option<u32>,
    },
    /// Stop snooping and forget the mirrored connections (needs CAP_NET_ADMIN).
    Stop,
}

#[derive(Subcommand)]
enum HandoffCommand {
    /// On the serving node: holds the binding's established connections whose bytes are
    /// all on the wire (their output stops), and prints one JSON line per connection: its
    /// ends, its socket's sequence numbers and its status (held, busy, gone).
    Hold {
        /// The binding, ADDR:PORT (one of this node's).
        #[arg(long)]
        binding: std::net::SocketAddr,
        /// Hold at most this many.
        #[arg(long)]
        max: Option<usize>,
        /// How long to keep asking for a connection with bytes still to send.
        #[arg(long, default_value_t = 500)]
        wait_ms: u64,
    },
    /// On the peer: takes over the held connections of node NODE listed in FILE (the
    /// output of `hold`; `-`: standard input) from this node's mirror, and prints them
    /// with their status (taken, or why not).
    Take {
        /// The serving node.
        #[arg(long)]
        from: u32,
        /// The held connections, JSON lines.
        #[arg(long, default_value = "-")]
        file: PathBuf,
        /// How long a connection waits for its listener, in milliseconds.
        #[arg(long)]
        park_ms: Option<u32>,
        /// How long to wait for the mirror to see a connection's last segments.
        #[arg(long, default_value_t = 200)]
        wait_ms: u64,
    },
    /// On the serving node: the connections peer NODE took (FILE: the output of `take`)
    /// are dropped silently and followed until they end; the others resume.
    Done {
        /// The peer that took them.
        #[arg(long)]
        to: u32,
        /// The peer's answer, JSON lines.
        #[arg(long, default_value = "-")]
        file: PathBuf,
    },
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
    /// Received-data policy: unanswered (client bytes that arrived after the owner's last
    /// output), deliver (all kept) or drop (only those not acknowledged).
    #[arg(long, default_value = "unanswered", value_parser = spec::parse_rx)]
    rx: RxPolicy,
    /// Connections whose owner was mid-response: continue (rebuilt for an application that
    /// resumes by the offsets) or reset (at once, for unmodified servers).
    #[arg(long, default_value = "continue", value_parser = spec::parse_mid)]
    mid_response: MidResponse,
}

impl From<AddArgs> for DeclSpec {
    fn from(a: AddArgs) -> Self {
        DeclSpec {
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
            mid: a.mid_response,
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let json = cli.json;
    let result = match cli.command {
        Command::Generate { out } => generate::write_all(&out)
            .map(|files| files.iter().for_each(|f| println!("{}", f.display())))
            .map_err(|e| CtlError::Transport(format!("{}: {e}", out.display()))),
        command => Client::connect().and_then(|c| run(&c, command, json)),
    };
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

/// Reads the JSON lines of a handoff step from `file` (`-`: standard input).
fn read_lines(
    file: &std::path::Path,
) -> Result<Vec<permtcp_logic::handoff::HandoffConn>, CtlError> {
    let text = if file.as_os_str() == "-" {
        std::io::read_to_string(std::io::stdin())
    } else {
        std::fs::read_to_string(file)
    }
    .map_err(|e| CtlError::Usage(format!("{}: {e}", file.display())))?;
    permctl::handoff::parse_lines(&text).map_err(CtlError::Usage)
}

/// Prints the connections of a handoff step as JSON lines, and a count per status on
/// standard error.
fn print_lines(conns: &[permtcp_logic::handoff::HandoffConn]) {
    use permctl::handoff::{status_name, Line};
    let mut counts = std::collections::BTreeMap::new();
    for c in conns {
        println!(
            "{}",
            serde_json::to_string(&Line::of(c)).unwrap_or_default()
        );
        *counts.entry(status_name(c.status)).or_insert(0usize) += 1;
    }
    let summary: Vec<_> = counts.iter().map(|(s, n)| format!("{n} {s}")).collect();
    eprintln!(
        "permctl: {}",
        if summary.is_empty() {
            "no connections".into()
        } else {
            summary.join(", ")
        }
    );
}

/// `permctl handoff`.
fn handoff(c: &Client, h: HandoffCommand) -> Result<(), CtlError> {
    match h {
        HandoffCommand::Hold {
            binding,
            max,
            wait_ms,
        } => {
            let addr = permctl::spec::key_of(binding, binding).owner_addr;
            let t = std::time::Instant::now();
            let conns = c.handoff_hold(
                addr,
                binding.port(),
                max,
                std::time::Duration::from_millis(wait_ms),
            )?;
            let us = t.elapsed().as_micros();
            print_lines(&conns);
            eprintln!("permctl: hold took {us} us");
            Ok(())
        }
        HandoffCommand::Take {
            from,
            file,
            park_ms,
            wait_ms,
        } => {
            let held = read_lines(&file)?;
            let t = std::time::Instant::now();
            c.handoff_addresses(&held)?;
            let out = c.handoff_take(
                from,
                &held,
                park_ms,
                std::time::Duration::from_millis(wait_ms),
            )?;
            let us = t.elapsed().as_micros();
            print_lines(&out);
            eprintln!("permctl: take took {us} us");
            Ok(())
        }
        HandoffCommand::Done { to, file } => {
            let conns = read_lines(&file)?;
            let t = std::time::Instant::now();
            c.handoff_done(to, &conns)?;
            eprintln!("permctl: done took {} us", t.elapsed().as_micros());
            let taken = conns
                .iter()
                .filter(|x| x.status == permtcp_logic::uapi::handoff_status::TAKEN)
                .count();
            eprintln!(
                "permctl: {taken} dropped here (taken by node {to}), {} resumed",
                conns.len() - taken
            );
            Ok(())
        }
    }
}

/// Runs a command that talks to the module.
fn run(c: &Client, command: Command, json: bool) -> Result<(), CtlError> {
    match command {
        Command::Status => decl::status(c, json),
        Command::Decl(DeclCommand::List) => decl::list(c, json),
        Command::Decl(DeclCommand::Add(a)) => decl::add(c, &a.into(), json),
        Command::Decl(DeclCommand::Del { node }) => decl::del(c, node, json),
        Command::Snoop(SnoopCommand::Start {
            dev,
            max_conns,
            max_bytes,
            keep_received,
            max_conn_bytes,
            syn_timeout_ms,
            idle_timeout_ms,
        }) => {
            let limits = permctl::SnoopLimits {
                max_conns,
                max_bytes,
                keep_received,
                max_conn_bytes,
                syn_timeout_ms,
                idle_timeout_ms,
            };
            snoop::start(c, &dev, limits).map(|m| done(json, &m))
        }
        Command::Snoop(SnoopCommand::Stop) => snoop::stop(c).map(|m| done(json, &m)),
        Command::Conns => snoop::conns(c, json),
        Command::Taken => takeover::taken(c, json),
        Command::Takeover {
            node,
            park_ms,
            no_assume,
        } => takeover::takeover(c, node, park_ms, !no_assume, json),
        Command::Lease { ms } => fence::lease(c, ms).map(|()| done(json, "lease set")),
        Command::Served { node } => c.served(node).map(|keys| {
            let ends: Vec<_> = keys.iter().map(permctl::spec::ends).collect();
            if json {
                let v: Vec<_> = ends
                    .iter()
                    .map(|(o, cl)| serde_json::json!({"owner": o.to_string(), "client": cl.to_string()}))
                    .collect();
                println!("{}", serde_json::Value::from(v));
            } else {
                ends.iter().for_each(|(o, cl)| println!("{o},{cl}"));
            }
        }),
        Command::HandBack { node } => c.hand_back_addresses(node).map(|ips| {
            let list: Vec<_> = ips.iter().map(|ip| ip.to_string()).collect();
            done(json, &format!("handed back: {}", list.join(" ")))
        }),
        Command::Rejoin { node } => c
            .rejoin(node)
            .map(|()| done(json, &format!("node {node} rejoined"))),
        Command::Recovery {
            node,
            conns,
            append,
        } => {
            let keys: Vec<_> = conns
                .iter()
                .map(|&(o, cl)| permctl::spec::key_of(o, cl))
                .collect();
            c.recovery(node, &keys, append).map(|()| {
                done(
                    json,
                    &format!("node {node} serves {} connections here", keys.len()),
                )
            })
        }
        Command::Events { count } => fence::events(c, json, count),
        Command::Handoff(h) => handoff(c, h),
        Command::Stats => snoop::stats(c, json),
        Command::ConnData {
            owner,
            client,
            side,
            out,
        } => {
            let side = if side == "client" {
                Side::Client
            } else {
                Side::Owner
            };
            snoop::data(c, owner, client, side, &out).map(|m| done(json, &m))
        }
        Command::Debug(DebugCommand::Raw { cmd, dump, hex }) => spec::parse_hex(&hex.concat())
            .map_err(CtlError::Transport)
            .and_then(|bytes| c.request_raw(cmd, &bytes, dump))
            .map(|n| done(json, &format!("accepted, {n} reply messages"))),
        Command::Generate { .. } => unreachable!("handled before connecting"),
    }
}

/// A connection on the command line: OWNER_ADDR:PORT,CLIENT_ADDR:PORT.
fn parse_conn(s: &str) -> Result<(std::net::SocketAddr, std::net::SocketAddr), String> {
    let (o, c) = s
        .split_once(',')
        .ok_or_else(|| format!("{s}: expected OWNER_ADDR:PORT,CLIENT_ADDR:PORT"))?;
    let end = |x: &str| x.parse().map_err(|e| format!("{x}: {e}"));
    Ok((end(o)?, end(c)?))
}
