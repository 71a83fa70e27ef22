// SPDX-License-Identifier: GPL-2.0

//! permtcp: permanent TCP connections that survive a server crash.
//!
//! Crate root of the kernel module. The module keeps per-network-namespace state (the
//! cluster's ownership declarations, the mirror of the owners' connections, taken-over
//! connections) and serves the `permtcp` generic netlink family through which `permctl`
//! manages it. See Documentation/design.rst for the design and
//! Documentation/architecture.rst for how the code is laid out.
//!
//! Layout, one concern per file:
//! - `permtcp/logic/`: `no_std` logic shared with the host build (parsing, validation,
//!   tracking, policies, netlink encoding); tested by `cargo test` and by KUnit.
//! - `permtcp/glue.rs`: the C edge, Rust side: every C function, wrapped in one safe type
//!   per C object.
//! - `permtcp/adapter.rs`: the C edge, entry side: every `permtcp_rs_*` function C calls.
//! - `permtcp/genl.rs`: the netlink dispatcher (parse -> call -> reply).
//! - `permtcp/netns.rs`: per-namespace state and its locks.
//! - `permtcp/snoop.rs`: the mirrored-connection table fed by the snooping hook.
//! - `permtcp/takeover.rs`: a takeover from plan to accept queue, parking and records.
//! - `permtcp/rebuild.rs`: one connection rebuilt with TCP_REPAIR, in named steps.
//! - `permtcp/kunit.rs`: the in-kernel tests.
//!
//! Only `glue.rs` and `adapter.rs` contain `unsafe` code (`make lint` checks it).

use kernel::prelude::*;

#[path = "permtcp/adapter.rs"]
mod adapter;
#[path = "permtcp/genl.rs"]
mod genl;
#[path = "permtcp/glue.rs"]
mod glue;
#[path = "permtcp/handoff.rs"]
mod handoff;
#[path = "permtcp/kunit.rs"]
mod kunit;
#[path = "permtcp/logic/mod.rs"]
pub mod logic;
#[path = "permtcp/netns.rs"]
mod netns;
#[path = "permtcp/rebuild.rs"]
mod rebuild;
#[path = "permtcp/snoop.rs"]
mod snoop;
#[path = "permtcp/takeover.rs"]
mod takeover;

module! {
    type: PermTcp,
    name: "permtcp",
    authors: ["permtcp developers"],
    description: "Permanent TCP connections: snooping peers take over a crashed owner's connections",
    license: "GPL v2",
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
