// SPDX-License-Identifier: GPL-2.0

//! Fail-over directives between peers (Documentation/design.rst, "Fail-over directives").
//! `permctl takeover` sends one,
//! over UDP, to the next peer in the policy's order for each connection this node cannot
//! take over (not seen from its SYN); `permctl directives` on every peer receives them, asks
//! its kernel to take the connection over (netlink DIRECTIVE) and passes it on again when
//! that kernel cannot either. The last peer resets the connection.
//!
//! A datagram is [`DIRECTIVE_MAGIC`] followed by the DIRECTIVE request's netlink attributes;
//! only datagrams from an address some declaration names are accepted. They are not
//! authenticated: the cluster link is trusted (see Documentation/design.rst, "Cluster
//! membership, failure detection and fencing").

use crate::decl::declarations;
use crate::netlink::{encode, reply, Client, CtlError};
use crate::spec::ends;
use permtcp_logic::decl::Declaration;
use permtcp_logic::ops::{DirectiveInfo, DirectiveReply, DirectiveRequest, DIRECTIVE_MAGIC};
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

/// UDP port directives travel on, unless given.
pub const DEFAULT_PORT: u16 = 7414;

fn addrs(d: &Declaration) -> impl Iterator<Item = IpAddr> + '_ {
    let v4 = d.addrs4.iter().map(|a| IpAddr::from(*a));
    v4.chain(d.addrs6.iter().map(|a| IpAddr::from(*a)))
}

/// Sends the directive for `d` (a connection of failed node `node`) to peer `d.next`, at
/// the first address its declaration (in `decls`) names.
pub fn send(
    decls: &[Declaration],
    node: u32,
    d: &DirectiveInfo,
    port: u16,
    park_ms: Option<u32>,
) -> Result<String, CtlError> {
    let to = decls
        .iter()
        .find(|x| x.node_id == d.next)
        .and_then(|x| addrs(x).next())
        .ok_or_else(|| CtlError::Transport(format!("node {} declares no address", d.next)))?;
    let req = DirectiveRequest {
        node,
        key: d.key,
        park_ms,
        // The kernel of `d.next` acts only if it is the next peer after this node.
        from: decls.iter().find(|x| x.local).map(|x| x.node_id),
    };
    let mut msg = DIRECTIVE_MAGIC.to_vec();
    msg.extend(encode(&req)?);
    let local: SocketAddr = if to.is_ipv4() {
        "0.0.0.0:0".parse().unwrap()
    } else {
        "[::]:0".parse().unwrap()
    };
    let sock = UdpSocket::bind(local).map_err(|e| CtlError::Transport(e.to_string()))?;
    sock.send_to(&msg, (to, port))
        .map_err(|e| CtlError::Transport(format!("directive to {to}: {e}")))?;
    let (owner, client) = ends(&d.key);
    Ok(format!(
        "directive: {owner} <- {client} goes to node {} at {to}",
        d.next
    ))
}

/// Asks the kernel to take the directive's connection over; retries for a while when the
/// failed node is not declared failed here yet (the failure reaches peers at different
/// times).
fn apply(c: &Client, req: &DirectiveRequest) -> Result<Vec<Vec<u8>>, CtlError> {
    let start = Instant::now();
    loop {
        match c.call(req) {
            Err(CtlError::Kernel { errno: 11, .. })
                if start.elapsed() < Duration::from_secs(10) =>
            {
                std::thread::sleep(Duration::from_millis(50));
            }
            r => return r,
        }
    }
}

/// `permctl directives`: receives directives until killed.
pub fn listen(c: &Client, port: u16) -> Result<(), CtlError> {
    let sock = UdpSocket::bind(("::", port)).map_err(|e| CtlError::Transport(e.to_string()))?;
    println!("listening for fail-over directives on UDP port {port}");
    let mut buf = [0u8; 512];
    loop {
        let (n, from) = sock
            .recv_from(&mut buf)
            .map_err(|e| CtlError::Transport(e.to_string()))?;
        let src = from.ip().to_canonical();
        let Some(body) = buf[..n].strip_prefix(DIRECTIVE_MAGIC) else {
            println!("ignored a datagram from {src}: not a directive");
            continue;
        };
        let decls = declarations(c)?;
        if !decls.iter().any(|d| addrs(d).any(|a| a == src)) {
            println!("ignored a directive from {src}: no declaration names that address");
            continue;
        }
        let req = match DirectiveRequest::parse(body) {
            Ok(r) => r,
            Err(e) => {
                println!("ignored a directive from {src}: {}", e.text());
                continue;
            }
        };
        let (owner, client) = ends(&req.key);
        let conn = format!("{owner} <- {client}");
        match apply(c, &req).and_then(|msgs| reply::<DirectiveRequest>(&msgs, "directive reply")) {
            Ok(DirectiveReply { counts, next_node }) => {
                if let Some(next) = next_node {
                    let d = DirectiveInfo { key: req.key, next };
                    match send(&decls, req.node, &d, port, req.park_ms) {
                        Ok(line) => println!("{conn} (from {src}): not ready here; {line}"),
                        Err(e) => println!("{conn} (from {src}): passing it on failed: {e}"),
                    }
                } else if counts.taken == 1 {
                    let parked = if counts.parked == 1 {
                        " (waiting for a listener)"
                    } else {
                        ""
                    };
                    println!("{conn} (from {src}): taken over{parked}");
                } else if counts.reset == 1 {
                    println!("{conn} (from {src}): no peer can take it over: reset");
                } else {
                    println!("{conn} (from {src}): rebuilding it failed");
                }
            }
            Err(e) => println!("{conn} (from {src}): {e}"),
        }
    }
}
