// SPDX-License-Identifier: GPL-2.0

//! Logging to stderr, with syslog level prefixes (`<3>`) the journal reads when stderr is a
//! journal stream.

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::OnceLock;

/// Errors.
pub const ERR: u8 = 3;
/// Warnings.
pub const WARNING: u8 = 4;
/// Notable events (verdicts, takeovers, quorum changes).
pub const NOTICE: u8 = 5;
/// Informational (declarations, directives).
pub const INFO: u8 = 6;
/// Every dropped datagram.
pub const DEBUG: u8 = 7;

static LEVEL: AtomicU8 = AtomicU8::new(INFO);

/// Logs messages up to `level` (0: nothing).
pub fn set_level(level: u8) {
    LEVEL.store(level, Ordering::Relaxed);
}

/// Whether `level` is logged.
pub fn enabled(level: u8) -> bool {
    level <= LEVEL.load(Ordering::Relaxed)
}

fn journal() -> bool {
    static J: OnceLock<bool> = OnceLock::new();
    *J.get_or_init(|| std::env::var_os("JOURNAL_STREAM").is_some())
}

/// Writes one line.
pub fn line(level: u8, text: std::fmt::Arguments<'_>) {
    if !enabled(level) {
        return;
    }
    if journal() {
        eprintln!("<{level}>{text}");
    } else {
        let tag = match level {
            0..=ERR => "error: ",
            WARNING => "warning: ",
            _ => "",
        };
        eprintln!("permtcpd: {tag}{text}");
    }
}

/// `log!(level, "format", args...)`.
#[macro_export]
macro_rules! log {
    ($level:expr, $($arg:tt)*) => {
        $crate::log::line($level, format_args!($($arg)*))
    };
}
