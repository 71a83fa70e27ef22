// SPDX-License-Identifier: GPL-2.0

//! Host tests of the errors of the shared logic (`errno.rs`): the errno numbers the kernel
//! returns, and their messages for the extended ACK.

use permtcp_logic::errno::{code, inval, Error};
use std::io::ErrorKind;

/// Every errno the module uses.
const ALL: [i32; 16] = [
    code::EPERM,
    code::ENOENT,
    code::E2BIG,
    code::EAGAIN,
    code::ENOMEM,
    code::EBUSY,
    code::EEXIST,
    code::ENODEV,
    code::EINVAL,
    code::ENOSPC,
    code::ERANGE,
    code::EMSGSIZE,
    code::EPROTONOSUPPORT,
    code::EOPNOTSUPP,
    code::EADDRINUSE,
    code::EALREADY,
];

#[test]
fn numbers_are_distinct_and_positive() {
    let mut v = ALL.to_vec();
    v.sort_unstable();
    v.dedup();
    assert_eq!(v.len(), ALL.len(), "two names share a number");
    assert!(ALL.iter().all(|&e| e > 0), "errnos are positive here");
}

/// The host's C library agrees on the numbers std classifies (Linux numbering).
#[cfg(target_os = "linux")]
#[test]
fn numbers_are_the_hosts() {
    for (e, kind) in [
        (code::EPERM, ErrorKind::PermissionDenied),
        (code::ENOENT, ErrorKind::NotFound),
        (code::E2BIG, ErrorKind::ArgumentListTooLong),
        (code::EAGAIN, ErrorKind::WouldBlock),
        (code::ENOMEM, ErrorKind::OutOfMemory),
        (code::EBUSY, ErrorKind::ResourceBusy),
        (code::EEXIST, ErrorKind::AlreadyExists),
        (code::EINVAL, ErrorKind::InvalidInput),
        (code::ENOSPC, ErrorKind::StorageFull),
        (code::EADDRINUSE, ErrorKind::AddrInUse),
    ] {
        assert_eq!(
            std::io::Error::from_raw_os_error(e).kind(),
            kind,
            "errno {e}"
        );
    }
}

#[test]
fn an_error_carries_its_errno_and_static_message() {
    let e = Error::new(code::EEXIST, c"node id already declared");
    assert_eq!(e.errno, 17);
    assert_eq!(e.text(), "node id already declared");
    // NUL-terminated, as the extended ACK needs it.
    assert_eq!(e.msg.to_bytes_with_nul().last(), Some(&0));
    let r: Result<u8, Error> = inval(c"bad value");
    assert_eq!(r, Err(Error::new(code::EINVAL, c"bad value")));
    assert_eq!(r.unwrap_err().text(), "bad value");
}

#[test]
fn a_message_that_is_not_utf8_reads_as_a_question_mark() {
    let e = Error::new(code::EINVAL, c"\xff");
    assert_eq!(e.text(), "?");
}
