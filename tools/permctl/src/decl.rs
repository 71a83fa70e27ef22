// SPDX-License-Identifier: GPL-2.0

//! `permctl decl add|del|list` and `permctl status`: ownership declarations and the module's
//! status in this network namespace.

use permctl::spec::{done, DeclSpec, DeclView};
use permctl::{Client, CtlError};
use serde::Serialize;

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
    /// What is left of this node's lease, in ms, while one is set.
    lease_left_ms: Option<u64>,
    /// This node's segments the fence dropped (lease run out).
    fenced: u64,
    /// Frames received from nodes declared failed here (split-brain alarm).
    split_brain: u64,
    /// Nodes declared failed here (taken over, or being taken over), ascending.
    failed_nodes: Vec<u32>,
}

/// `permctl status`.
pub fn status(c: &Client, json: bool) -> Result<(), CtlError> {
    let s = c.status()?;
    let v = StatusView {
        version: s.version,
        declarations: s.decl_count,
        max_declarations: s.decl_max,
        local_node: s.local_node,
        netns_cookie: s.netns_cookie,
        parked: s.parked,
        park_queued: s.park_queued,
        park_reset: s.park_reset,
        lease_left_ms: s.lease_left_ms,
        fenced: s.fenced,
        split_brain: s.split_brain,
        failed_nodes: {
            let mut f = s.failed.as_slice().to_vec();
            f.sort_unstable();
            f
        },
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
        match v.lease_left_ms {
            Some(0) => println!(
                "lease             run out: fenced, {} segments dropped",
                v.fenced
            ),
            Some(ms) => println!(
                "lease             {ms} ms left, {} segments dropped",
                v.fenced
            ),
            None => println!("lease             none set (not fenced)"),
        }
        println!(
            "split brain       {} frames from nodes declared failed",
            v.split_brain
        );
        if v.failed_nodes.is_empty() {
            println!("failed nodes      none");
        } else {
            let l: Vec<String> = v.failed_nodes.iter().map(u32::to_string).collect();
            println!("failed nodes      {}", l.join(" "));
        }
    }
    Ok(())
}

/// `permctl decl list`.
pub fn list(c: &Client, json: bool) -> Result<(), CtlError> {
    let views: Vec<DeclView> = c.declarations()?.iter().map(DeclView::from).collect();
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

/// `permctl decl add`.
pub fn add(c: &Client, spec: &DeclSpec, json: bool) -> Result<(), CtlError> {
    let decl = spec.build().map_err(CtlError::Transport)?;
    c.decl_add(&decl)?;
    done(json, &format!("declaration of node {} added", decl.node_id));
    Ok(())
}

/// `permctl decl del`.
pub fn del(c: &Client, node: u32, json: bool) -> Result<(), CtlError> {
    c.decl_del(node)?;
    done(json, &format!("declaration of node {node} deleted"));
    Ok(())
}
