// SPDX-License-Identifier: GPL-2.0

//! `permctl snoop`, `conns`, `stats` and `conn-data`: the snooping side of permtcp.

use crate::netlink::{reply_u32, reply_u64, Client, CtlError};
use permtcp_logic::nla::Writer;
use permtcp_logic::packet::Addr;
use permtcp_logic::snoopnl::{
    reason_name, state_name, ConnInfo, DirectiveInfo, HalfInfo, StatsInfo, TakenInfo,
};
use permtcp_logic::uapi::{attr, cmd, not_ready};
use serde::Serialize;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};

pub(crate) fn encode(
    build: impl FnOnce(&mut Writer<'_>) -> Result<(), permtcp_logic::errno::Error>,
) -> Result<Vec<u8>, CtlError> {
    let mut buf = vec![0u8; 256];
    let mut w = Writer::new(&mut buf);
    build(&mut w).map_err(|e| CtlError::Transport(e.text().into()))?;
    let n = w.len();
    buf.truncate(n);
    Ok(buf)
}

fn ifindex(dev: &str) -> Result<u32, CtlError> {
    let name =
        std::ffi::CString::new(dev).map_err(|_| CtlError::Transport("bad device name".into()))?;
    // SAFETY: `name` is a valid NUL-terminated string for the duration of the call.
    match unsafe { libc::if_nametoindex(name.as_ptr()) } {
        0 => Err(CtlError::Usage(format!(
            "no network device '{dev}' in this namespace"
        ))),
        i => Ok(i),
    }
}

/// `permctl snoop start`.
pub fn start(
    c: &Client,
    dev: &str,
    max_conns: Option<u32>,
    max_bytes: Option<u64>,
    keep_received: Option<u32>,
) -> Result<String, CtlError> {
    let index = ifindex(dev)?;
    let payload = encode(|w| {
        w.put_u32(attr::IFINDEX, index)?;
        if let Some(n) = max_conns {
            w.put_u32(attr::MAX_CONNS, n)?;
        }
        if let Some(b) = max_bytes {
            w.put_u64(attr::MAX_BYTES, b)?;
        }
        if let Some(k) = keep_received {
            w.put_u32(attr::KEEP_RECEIVED, k)?;
        }
        Ok(())
    })?;
    c.request(cmd::SNOOP_START, &payload, false)?;
    Ok(format!("snooping on {dev}"))
}

/// `permctl snoop stop`.
pub fn stop(c: &Client) -> Result<String, CtlError> {
    c.request(cmd::SNOOP_STOP, &[], false)?;
    Ok("snooping stopped".into())
}

pub(crate) fn ip(a: &Addr) -> IpAddr {
    match a.as_v4() {
        Some(v4) => IpAddr::from(v4),
        None => IpAddr::V6(Ipv6Addr::from(a.0)),
    }
}

fn to_addr(ip: IpAddr) -> Addr {
    match ip {
        IpAddr::V4(v4) => Addr::v4(v4.octets()),
        IpAddr::V6(v6) => Addr(v6.octets()),
    }
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
        ConnView {
            owner: SocketAddr::new(ip(&c.key.owner_addr), c.key.owner_port).to_string(),
            client: SocketAddr::new(ip(&c.key.client_addr), c.key.client_port).to_string(),
            state: state_name(c.state),
            opened_by: side_name(c.opener),
            ready: c.not_ready.is_none(),
            not_ready: c.not_ready.map(|(r, s)| match r {
                not_ready::HOLE
                | not_ready::ACKED_UNSEEN
                | not_ready::OVERFLOW
                | not_ready::NO_MEMORY => format!("{} ({} data)", reason_name(r), side_name(s)),
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

/// A taken-over connection, as `permctl taken` shows it.
#[derive(Serialize)]
pub struct TakenView {
    pub owner: String,
    pub client: String,
    /// Stream offset of the next byte the application sends.
    pub sent_offset: u32,
    /// Stream offset of the first byte the application reads.
    pub recv_offset: u32,
    /// Stream offset of the first kept sent byte (`permctl conn-data --side owner`).
    pub data_offset: u32,
    pub data_len: u32,
    /// The declared received-data policy: `deliver` or `drop`.
    pub received_data: &'static str,
    pub age_ms: u64,
}

/// `permctl taken`.
pub fn taken(c: &Client, json: bool) -> Result<(), CtlError> {
    let mut views = Vec::new();
    for reply in c.request(cmd::TAKEN_GET, &[], true)? {
        for (kind, payload) in reply {
            if kind == attr::TAKEN_CONN {
                let t =
                    TakenInfo::parse(&payload).map_err(|e| CtlError::Transport(e.text().into()))?;
                views.push(TakenView {
                    owner: SocketAddr::new(ip(&t.key.owner_addr), t.key.owner_port).to_string(),
                    client: SocketAddr::new(ip(&t.key.client_addr), t.key.client_port).to_string(),
                    sent_offset: t.sent_offset,
                    recv_offset: t.recv_offset,
                    data_offset: t.data_offset,
                    data_len: t.data_len,
                    received_data: if t.rx_deliver { "deliver" } else { "drop" },
                    age_ms: t.age_ms,
                });
            }
        }
    }
    if json {
        println!("{}", serde_json::to_string(&views).expect("serializable"));
        return Ok(());
    }
    println!(
        "{:<26} {:<26} {:>11} {:>11} {:>11} {:>9} {:<8} {:>8}",
        "Owner", "Client", "Sent-off", "Recv-off", "Kept-off", "Kept", "Rx", "Age-ms"
    );
    for v in &views {
        println!(
            "{:<26} {:<26} {:>11} {:>11} {:>11} {:>9} {:<8} {:>8}",
            v.owner,
            v.client,
            v.sent_offset,
            v.recv_offset,
            v.data_offset,
            v.data_len,
            v.received_data,
            v.age_ms
        );
    }
    Ok(())
}

/// `permctl conns`.
pub fn conns(c: &Client, json: bool) -> Result<(), CtlError> {
    let mut views = Vec::new();
    for reply in c.request(cmd::CONN_GET, &[], true)? {
        for (kind, payload) in reply {
            if kind == attr::CONN {
                let info =
                    ConnInfo::parse(&payload).map_err(|e| CtlError::Transport(e.text().into()))?;
                views.push(ConnView::from(&info));
            }
        }
    }
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
    alloc_failed: u64,
    hook_ns: u64,
    hook_frames: u64,
    /// Resets of mirrored connections this host's stack sent, dropped.
    rst_dropped: u64,
}

/// `permctl stats`.
pub fn stats(c: &Client, json: bool) -> Result<(), CtlError> {
    let replies = c.request(cmd::STATS_GET, &[], false)?;
    let payload = replies
        .iter()
        .flatten()
        .find(|(k, _)| *k == attr::STATS)
        .ok_or_else(|| CtlError::Transport("malformed reply: no statistics".into()))?;
    let s = StatsInfo::parse(&payload.1).map_err(|e| CtlError::Transport(e.text().into()))?;
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
        alloc_failed: s.alloc_failed,
        hook_ns: s.hook_ns,
        hook_frames: s.hook_frames,
        rst_dropped: s.rst_dropped,
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

/// `permctl conn-data`: the retained bytes of one direction, written to `out`; returns a
/// summary (first sequence number, byte count, pieces).
pub fn data(
    c: &Client,
    owner: SocketAddr,
    client: SocketAddr,
    side: u8,
    out: &str,
) -> Result<String, CtlError> {
    let payload = encode(|w| {
        w.put(attr::OWNER_ADDR, &to_addr(owner.ip()).0)?;
        w.put_u16(attr::OWNER_PORT, owner.port())?;
        w.put(attr::CLIENT_ADDR, &to_addr(client.ip()).0)?;
        w.put_u16(attr::CLIENT_PORT, client.port())?;
        w.put_u8(attr::SIDE, side)
    })?;
    let mut bytes = Vec::new();
    let (mut first, mut next, mut pieces) = (None, 0u32, 0);
    for reply in c.request(cmd::CONN_DATA_GET, &payload, true)? {
        let seq = reply.iter().find(|(k, _)| *k == attr::DATA_SEQ);
        let data = reply.iter().find(|(k, _)| *k == attr::DATA);
        let (Some((_, seq)), Some((_, data))) = (seq, data) else {
            continue;
        };
        let seq = u32::from_ne_bytes(
            seq.as_slice()
                .try_into()
                .map_err(|_| CtlError::Transport("bad DATA_SEQ".into()))?,
        );
        if first.is_none() || seq != next {
            pieces += 1;
        }
        first.get_or_insert(seq);
        next = seq.wrapping_add(data.len() as u32);
        bytes.extend_from_slice(data);
    }
    std::fs::write(out, &bytes).map_err(|e| CtlError::Transport(format!("{out}: {e}")))?;
    Ok(format!(
        "first_seq={} bytes={} pieces={}",
        first.unwrap_or(0),
        bytes.len(),
        pieces
    ))
}

/// `permctl takeover`.
/// `permctl takeover`: takes over, then sends a fail-over directive to the next peer for
/// each connection this node cannot take over.
pub fn takeover(
    c: &Client,
    node: u32,
    park_ms: Option<u32>,
    directive_port: u16,
    assume: bool,
    json: bool,
) -> Result<(), CtlError> {
    let assumed = if assume {
        crate::assume::assume(c, node)?
    } else {
        Vec::new()
    };
    if !json {
        assumed.iter().for_each(|l| println!("{l}"));
    }
    let payload = encode(|w| {
        w.put_u32(attr::NODE_ID, node)?;
        park_ms.map_or(Ok(()), |ms| w.put_u32(attr::PARK_MS, ms))
    })?;
    let replies = c.request(cmd::TAKEOVER, &payload, false)?;
    let get = |kind: u16| reply_u32(&replies, kind).unwrap_or(0);
    let (taken, parked, not_ready, not_mine, failed, reset) = (
        get(attr::TAKEN),
        get(attr::PARKED),
        get(attr::NOT_READY_COUNT),
        get(attr::NOT_MINE),
        get(attr::FAILED),
        get(attr::RESET),
    );
    let rebuild_ns = reply_u64(&replies, attr::REBUILD_NS).unwrap_or(0);
    let mut sent = Vec::new();
    // Read once, when the first directive needs the next peers' addresses.
    let mut decls = None;
    for (kind, payload) in replies.iter().flatten() {
        if *kind == attr::DIRECTIVE {
            let d =
                DirectiveInfo::parse(payload).map_err(|e| CtlError::Transport(e.text().into()))?;
            if decls.is_none() {
                decls = Some(crate::directive::declarations(c)?);
            }
            let decls = decls.as_deref().unwrap_or_default();
            let line = crate::directive::send(decls, node, &d, directive_port, park_ms)?;
            if !json {
                println!("{line}");
            }
            sent.push(serde_json::json!({
                "owner": SocketAddr::new(ip(&d.key.owner_addr), d.key.owner_port).to_string(),
                "client": SocketAddr::new(ip(&d.key.client_addr), d.key.client_port).to_string(),
                "next": d.next,
            }));
        }
    }
    if json {
        println!(
            "{}",
            serde_json::json!({"node": node, "taken": taken, "parked": parked, "not_ready": not_ready, "not_mine": not_mine, "failed": failed, "reset": reset, "rebuild_ns": rebuild_ns, "directives": sent, "assumed": assumed})
        );
    } else {
        println!(
            "node {node} failed: {taken} connections taken over ({parked} waiting for a listener), {not_ready} not ready ({} sent to the next peer, {reset} reset), {not_mine} for other nodes, {failed} failed; rebuilt in {} us",
            sent.len(),
            rebuild_ns / 1000
        );
    }
    Ok(())
}
