// SPDX-License-Identifier: GPL-2.0

//! `permctl snoop start|stop`, `conns`, `stats` and `conn-data`: the snooping side of
//! permtcp.

use permctl::spec::{ends, key_of};
use permctl::{ifindex, Client, CtlError, SnoopLimits};
use permtcp_logic::snoopnl::{reason_name, state_name, ConnInfo, HalfInfo};
use permtcp_logic::track::Side;
use permtcp_logic::uapi::not_ready;
use serde::Serialize;
use std::net::SocketAddr;

/// `permctl snoop start`: snooping on `dev` with `limits`.
pub fn start(c: &Client, dev: &str, limits: SnoopLimits) -> Result<String, CtlError> {
    c.snoop_start(ifindex(dev)?, limits)?;
    Ok(format!("snooping on {dev}"))
}

/// `permctl snoop stop`.
pub fn stop(c: &Client) -> Result<String, CtlError> {
    c.snoop_stop()?;
    Ok("snooping stopped".into())
}

/// One direction, for JSON.
#[derive(Serialize)]
pub struct HalfView {
    pub isn: u32,
    pub snd_nxt: u32,
    pub snd_una: u32,
    pub window: u32,
    pub max_window: u32,
    pub wscale: u8,
    pub mss: Option<u16>,
    pub syn_window: u16,
    pub tsval: Option<u32>,
    pub tsecr: Option<u32>,
    pub fin_seq: Option<u32>,
    pub bytes_held: u32,
    pub data_start: u32,
    pub window_seq: u32,
    pub segments: u64,
    pub bytes: u64,
}

impl From<&HalfInfo> for HalfView {
    fn from(h: &HalfInfo) -> Self {
        HalfView {
            isn: h.isn,
            snd_nxt: h.nxt,
            snd_una: h.una,
            window: h.win,
            max_window: h.max_win,
            wscale: h.wscale,
            mss: h.mss,
            syn_window: h.syn_win,
            tsval: h.ts.map(|t| t.0),
            tsecr: h.ts.map(|t| t.1),
            fin_seq: h.fin,
            bytes_held: h.held,
            data_start: h.data_start,
            window_seq: h.win_seq,
            segments: h.segs,
            bytes: h.bytes,
        }
    }
}

/// A connection, for JSON.
#[derive(Serialize)]
pub struct ConnView {
    pub owner: String,
    pub client: String,
    pub state: &'static str,
    pub opened_by: &'static str,
    pub ready: bool,
    pub not_ready: Option<String>,
    pub window_scaling: bool,
    pub sack: bool,
    pub timestamps: bool,
    pub owner_sent: HalfView,
    pub client_sent: HalfView,
    pub invalid_segments: u64,
    pub age_ms: u64,
    pub idle_ms: u64,
}

fn side_name(s: u8) -> &'static str {
    if s == 0 {
        "owner"
    } else {
        "client"
    }
}

impl From<&ConnInfo> for ConnView {
    fn from(c: &ConnInfo) -> Self {
        let (owner, client) = ends(&c.key);
        ConnView {
            owner: owner.to_string(),
            client: client.to_string(),
            state: state_name(c.state),
            opened_by: side_name(c.opener),
            ready: c.not_ready.is_none(),
            not_ready: c.not_ready.map(|(r, s)| match r {
                not_ready::HOLE
                | not_ready::ACKED_UNSEEN
                | not_ready::OVERFLOW
                | not_ready::NO_MEMORY
                | not_ready::ACK_AHEAD => format!("{} ({} data)", reason_name(r), side_name(s)),
                _ => reason_name(r).to_string(),
            }),
            window_scaling: c.ws_ok,
            sack: c.sack_ok,
            timestamps: c.ts_ok,
            owner_sent: (&c.half[0]).into(),
            client_sent: (&c.half[1]).into(),
            invalid_segments: c.invalid,
            age_ms: c.age_ms,
            idle_ms: c.idle_ms,
        }
    }
}

/// `permctl conns`.
pub fn conns(c: &Client, json: bool) -> Result<(), CtlError> {
    let views: Vec<ConnView> = c.conns()?.iter().map(ConnView::from).collect();
    if json {
        println!("{}", serde_json::to_string(&views).expect("serializable"));
        return Ok(());
    }
    println!(
        "{:<10} {:<5} {:<26} {:<26} {:>10} {:>10} {:>8} {:>8} {:<10}",
        "State",
        "Ready",
        "Owner",
        "Client",
        "Owner-nxt",
        "Client-nxt",
        "Held-out",
        "Held-in",
        "Options"
    );
    for v in &views {
        let mut opts = Vec::new();
        if v.window_scaling {
            opts.push(format!(
                "ws{}/{}",
                v.owner_sent.wscale, v.client_sent.wscale
            ));
        }
        if v.sack {
            opts.push("sack".to_string());
        }
        if v.timestamps {
            opts.push("ts".to_string());
        }
        println!(
            "{:<10} {:<5} {:<26} {:<26} {:>10} {:>10} {:>8} {:>8} {:<10}",
            v.state,
            if v.ready { "yes" } else { "no" },
            v.owner,
            v.client,
            v.owner_sent.snd_nxt,
            v.client_sent.snd_nxt,
            v.owner_sent.bytes_held,
            v.client_sent.bytes_held,
            opts.join(",")
        );
        if let Some(r) = &v.not_ready {
            println!("           not ready: {r}");
        }
    }
    Ok(())
}

#[derive(Serialize)]
struct StatsView {
    device_ifindex: u32,
    connections: u32,
    max_connections: u32,
    bytes_held: u64,
    max_bytes: u64,
    bindings: u32,
    frames: u64,
    not_tcp: u64,
    fragments: u64,
    malformed: u64,
    bad_checksum: u64,
    matched: u64,
    conns_from_syn: u64,
    conns_unsynced: u64,
    conn_limit_hits: u64,
    byte_limit_hits: u64,
    resets: u64,
    time_wait_expired: u64,
    time_wait_reused: u64,
    invalid: u64,
    handshake_timeouts: u64,
    idle_timeouts: u64,
    early_drops: u64,
    alloc_failed: u64,
    hook_ns: u64,
    hook_frames: u64,
    /// Frames the mirror keeps itself for views of their payload, instead of a clone.
    frames_kept: u64,
    /// Resets of mirrored connections this host's stack sent, dropped.
    rst_dropped: u64,
    /// Frames for another node's MAC delivered to this host's stack (connections taken
    /// over here while another node answers ARP for their address).
    steered: u64,
    /// Connections of this node's bindings that peers serve (owner recovery), followed.
    handed: u64,
    /// SYNs refused because they would reuse a connection a peer serves.
    syn_refused: u64,
    /// Chunks of retained data that are views of received frames (zero-copy retention).
    views: u64,
    /// Nanoseconds Linux conntrack spent on the frames `permtcp.ctprobe` timed (benchmarks).
    ct_ns: u64,
    /// Frames whose conntrack work `permtcp.ctprobe` timed.
    ct_frames: u64,
    /// SYNs tracked with a table entry allocated ahead, memory being short then.
    syn_reserved: u64,
}

/// `permctl stats`.
pub fn stats(c: &Client, json: bool) -> Result<(), CtlError> {
    let s = c.stats()?;
    let k = s.counters;
    let v = StatsView {
        device_ifindex: s.ifindex,
        connections: s.conns,
        max_connections: s.max_conns,
        bytes_held: s.bytes,
        max_bytes: s.max_bytes,
        bindings: s.bindings,
        frames: k.frames,
        not_tcp: k.not_tcp,
        fragments: k.fragments,
        malformed: k.malformed,
        bad_checksum: k.bad_csum,
        matched: k.matched,
        conns_from_syn: k.conns_synced,
        conns_unsynced: k.conns_unsynced,
        conn_limit_hits: k.conn_limit,
        byte_limit_hits: k.byte_limit,
        resets: k.resets,
        time_wait_expired: k.expired,
        time_wait_reused: k.tw_reused,
        invalid: k.invalid,
        handshake_timeouts: k.syn_timeouts,
        idle_timeouts: k.idle_timeouts,
        early_drops: k.early_drops,
        alloc_failed: s.alloc_failed,
        hook_ns: s.hook_ns,
        hook_frames: s.hook_frames,
        frames_kept: s.frames_kept,
        rst_dropped: s.rst_dropped,
        steered: s.steered,
        handed: s.handed,
        syn_refused: s.syn_refused,
        views: s.views,
        ct_ns: s.ct_ns,
        ct_frames: s.ct_frames,
        syn_reserved: k.syn_reserved,
    };
    if json {
        println!("{}", serde_json::to_string(&v).expect("serializable"));
        return Ok(());
    }
    let value = serde_json::to_value(&v).expect("serializable");
    for (name, val) in value.as_object().expect("object") {
        println!("{name:<20} {val}");
    }
    Ok(())
}

/// `permctl conn-data`: the retained bytes of one direction, written to `out` one piece
/// after the other; returns a summary (first sequence number, byte count, pieces, and each
/// piece as `SEQ+LEN`).
pub fn data(
    c: &Client,
    owner: SocketAddr,
    client: SocketAddr,
    side: Side,
    out: &str,
) -> Result<String, CtlError> {
    let pieces_in = c.conn_data(key_of(owner, client), side)?;
    let mut bytes = Vec::new();
    let (mut first, mut next) = (None, 0u32);
    // (first sequence number, length) of each contiguous piece.
    let mut pieces: Vec<(u32, usize)> = Vec::new();
    for (seq, data) in pieces_in {
        match pieces.last_mut() {
            Some(p) if seq == next => p.1 += data.len(),
            _ => pieces.push((seq, data.len())),
        }
        first.get_or_insert(seq);
        next = seq.wrapping_add(data.len() as u32);
        bytes.extend_from_slice(&data);
    }
    std::fs::write(out, &bytes).map_err(|e| CtlError::Transport(format!("{out}: {e}")))?;
    let list: Vec<String> = pieces.iter().map(|(s, n)| format!("{s}+{n}")).collect();
    Ok(format!(
        "first_seq={} bytes={} pieces={} ranges={}",
        first.unwrap_or(0),
        bytes.len(),
        pieces.len(),
        list.join(",")
    ))
}
