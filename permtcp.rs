// SPDX-License-Identifier: GPL-2.0

//! permtcp: permanent TCP connections that survive a server crash.
//!
//! Crate root of the kernel module. The module keeps per-network-namespace state (the
//! ownership declarations of the cluster's nodes) and serves the `permtcp` generic netlink
//! family through which `permctl` manages it. See Documentation/architecture.rst.
//!
//! Layout:
//! - `permtcp/logic/`: `no_std` logic shared with the host build (parsing, validation, netlink
//!   attribute encoding); tested by `cargo test` and by KUnit.
//! - `permtcp/glue.rs`: the Rust side of the C glue in `permtcp_glue.c`, wrapped in safe types.
//! - `permtcp/netns.rs`: per-namespace state.
//! - `permtcp/genl.rs`: the generic netlink command handlers.
//! - `permtcp/snoop.rs`: the mirrored-connection table fed by the netfilter hook.

use kernel::prelude::*;

#[path = "permtcp/genl.rs"]
mod genl;
#[path = "permtcp/glue.rs"]
mod glue;
#[path = "permtcp/kunit.rs"]
mod kunit;
#[path = "permtcp/logic/mod.rs"]
pub mod logic;
#[path = "permtcp/netns.rs"]
mod netns;
#[path = "permtcp/snoop.rs"]
mod snoop;
#[path = "permtcp/takeover.rs"]
mod takeover;

module! {
    type: PermTcp,
    name: "permtcp",
    authors: ["permtcp developers"],
    description: "Permanent TCP connections: snooping peers take over a crashed owner's connections",
    license: "GPL",
}

/// The loaded module: while it exists, the netlink family and the per-netns state are registered.
struct PermTcp {
    _registration: glue::Registration,
}

impl kernel::Module for PermTcp {
    fn init(_module: &'static ThisModule) -> Result<Self> {
        let registration = glue::Registration::new()?;
        pr_info!("loaded (netlink family {})\n", logic::uapi::FAMILY_NAME);
        Ok(PermTcp {
            _registration: registration,
        })
    }
}

impl Drop for PermTcp {
    fn drop(&mut self) {
        pr_info!("unloading\n");
    }
}
