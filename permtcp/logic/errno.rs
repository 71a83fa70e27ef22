// SPDX-License-Identifier: GPL-2.0

//! Errors of the shared logic: a Linux errno together with a human-readable message.
//!
//! The message is a static, NUL-terminated string so that the kernel can hand it to netlink's
//! extended ACK (`extack->_msg`) without copying; it must outlive the request, which `'static`
//! guarantees.

use core::ffi::CStr;

/// Linux errno values used by permtcp (x86-64 and generic numbering).
pub mod code {
    /// No such file or directory.
    pub const ENOENT: i32 = 2;
    /// Argument list too long.
    pub const E2BIG: i32 = 7;
    /// Out of memory.
    pub const ENOMEM: i32 = 12;
    /// Operation not permitted.
    pub const EPERM: i32 = 1;
    /// File exists.
    pub const EEXIST: i32 = 17;
    /// Invalid argument.
    pub const EINVAL: i32 = 22;
    /// No space left on device.
    pub const ENOSPC: i32 = 28;
    /// Result out of range.
    pub const ERANGE: i32 = 34;
    /// Message too long.
    pub const EMSGSIZE: i32 = 90;
    /// Protocol error.
    pub const EPROTO: i32 = 71;
    /// Protocol not supported.
    pub const EPROTONOSUPPORT: i32 = 93;
    /// Operation not supported.
    pub const EOPNOTSUPP: i32 = 95;
    /// Address already in use.
    pub const EADDRINUSE: i32 = 98;
    /// Device or resource busy.
    pub const EBUSY: i32 = 16;
    /// No such device.
    pub const ENODEV: i32 = 19;
    /// Operation already in progress (done).
    pub const EALREADY: i32 = 114;
    /// Try again.
    pub const EAGAIN: i32 = 11;
}

/// An errno with its explanation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Error {
    /// Positive errno value.
    pub errno: i32,
    /// What went wrong, for netlink's extended ACK and for logs.
    pub msg: &'static CStr,
}

impl Error {
    /// Builds an error from a positive errno and a static message.
    pub const fn new(errno: i32, msg: &'static CStr) -> Self {
        Self { errno, msg }
    }

    /// The message as UTF-8 text (messages are ASCII literals).
    pub fn text(&self) -> &'static str {
        self.msg.to_str().unwrap_or("?")
    }
}

/// Shorthand for `Err(Error::new(EINVAL, msg))`.
pub const fn inval<T>(msg: &'static CStr) -> Result<T, Error> {
    Err(Error::new(code::EINVAL, msg))
}
