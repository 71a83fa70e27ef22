// SPDX-License-Identifier: GPL-2.0

//! Host build of the module's `no_std` logic: the same files, as a crate of their own.
#![no_std]
#![warn(missing_docs)]

#[path = "mod.rs"]
mod logic;
pub use logic::*;
