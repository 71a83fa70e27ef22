// SPDX-License-Identifier: GPL-2.0

//! Fencing and notifications: `permctl lease` renews (or releases) this node's lease on its
//! own bindings, as the cluster daemon does every heartbeat; `permctl events` prints the
//! family's notifications (node failed, connection taken, reset, directive, not ready) as
//! they come. See Documentation/design.rst, "Cluster membership, failure detection and
//! fencing".

use permctl::spec::ends;
use permctl::{Client, CtlError};
use permtcp_logic::ops::Event;
use permtcp_logic::uapi::not_ready;
use serde_json::json;

/// `permctl lease --ms MS`.
pub fn lease(c: &Client, ms: u32) -> Result<(), CtlError> {
    c.lease(ms)
}

fn reason(code: u8) -> &'static str {
    match code {
        not_ready::NOT_FROM_SYN => "not-from-syn",
        not_ready::HANDSHAKE => "handshake",
        not_ready::HOLE => "hole",
        not_ready::ACKED_UNSEEN => "acked-unseen",
        not_ready::OVERFLOW => "overflow",
        not_ready::NO_MEMORY => "no-memory",
        not_ready::CLOSED => "closed",
        not_ready::ACK_AHEAD => "ack-ahead",
        _ => "?",
    }
}

/// One event as a line of text or JSON.
fn show(e: &Event, as_json: bool) -> String {
    let (kind, node, conn, extra) = match e {
        Event::NodeFailed { node } => ("node-failed", *node, None, json!({})),
        Event::Taken { node, taken } => (
            "taken",
            *node,
            Some(ends(&taken.key)),
            json!({"sent_offset": taken.sent_offset, "recv_offset": taken.recv_offset}),
        ),
        Event::Reset { node, key } => ("reset", *node, Some(ends(key)), json!({})),
        Event::Directive { node, directive } => (
            "directive",
            *node,
            Some(ends(&directive.key)),
            json!({"next": directive.next}),
        ),
        Event::NotReady {
            node,
            key,
            reason: r,
        } => (
            "not-ready",
            *node,
            Some(ends(key)),
            json!({"reason": reason(*r)}),
        ),
    };
    if as_json {
        let mut v = json!({"event": kind, "node": node});
        if let Some((o, c)) = conn {
            v["owner"] = json!(o.to_string());
            v["client"] = json!(c.to_string());
        }
        if let (Some(m), Some(x)) = (v.as_object_mut(), extra.as_object()) {
            m.extend(x.clone());
        }
        return v.to_string();
    }
    let mut line = format!("{kind} node={node}");
    if let Some((o, c)) = conn {
        line += &format!(" owner={o} client={c}");
    }
    if let Some(x) = extra.as_object() {
        for (k, v) in x {
            line += &format!(" {k}={}", v.as_str().map_or(v.to_string(), str::to_string));
        }
    }
    line
}

/// `permctl events [--count N]`: prints notifications until `count` were printed (or
/// forever).
pub fn events(c: &Client, as_json: bool, count: Option<u64>) -> Result<(), CtlError> {
    c.subscribe_events()?;
    let mut seen = 0u64;
    // Tell a waiting test that the subscription is in place.
    eprintln!("listening for permtcp events");
    loop {
        for (cmd, attrs) in c.next_events()? {
            let e = Event::parse(cmd, &attrs).map_err(|e| {
                CtlError::Transport(format!("malformed notification: {}", e.text()))
            })?;
            println!("{}", show(&e, as_json));
            seen += 1;
            if count.is_some_and(|n| seen >= n) {
                return Ok(());
            }
        }
    }
}
