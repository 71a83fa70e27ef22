// SPDX-License-Identifier: GPL-2.0

//! Pure, allocation-free logic shared by the kernel module and host tests.
//!
//! Everything under this directory is `no_std`, uses only `core`, and never allocates: the
//! kernel module compiles these files as modules of its crate, and the host crate `permtcp-logic`
//! (`Cargo.toml` and `lib.rs` in this directory) compiles the very same files for `cargo test`,
//! the benchmark, fuzzing and `permctl`.

pub mod bounded;
pub mod decl;
pub mod errno;
pub mod fence;
pub mod handoff;
pub mod nla;
pub mod ops;
pub mod packet;
pub mod policy;
pub mod recovery;
pub mod resume;
pub mod rtt;
pub mod seq;
pub mod seqbuf;
pub mod snoop;
pub mod snoopnl;
pub mod sort;
pub mod track;
pub mod uapi;
