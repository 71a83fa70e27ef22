// SPDX-License-Identifier: GPL-2.0

//! Host tests of the netlink attribute parser and writer.

use permtcp_logic::errno::code;
use permtcp_logic::nla::{align, Attrs, Writer, F_NESTED};

fn collect(buf: &[u8]) -> Vec<Result<(u16, Vec<u8>), &'static str>> {
    Attrs::new(buf)
        .map(|a| a.map(|a| (a.kind, a.data.to_vec())).map_err(|e| e.text()))
        .collect()
}

#[test]
fn writes_kernel_layout() {
    let mut buf = [0xaau8; 64];
    let mut w = Writer::new(&mut buf);
    w.put_u8(1, 0x11).unwrap();
    w.put_u16(2, 0x2233).unwrap();
    w.put_str(3, b"ab").unwrap();
    w.put_flag(4).unwrap();
    let n = w.len();
    // u8: len 5, padded to 8, padding zeroed.
    assert_eq!(&buf[..8], &[5, 0, 1, 0, 0x11, 0, 0, 0]);
    assert_eq!(&buf[8..16], &[6, 0, 2, 0, 0x33, 0x22, 0, 0]);
    assert_eq!(&buf[16..24], &[7, 0, 3, 0, b'a', b'b', 0, 0]);
    assert_eq!(&buf[24..28], &[4, 0, 4, 0]);
    assert_eq!(n, 28);
    assert_eq!(buf[28], 0xaa, "nothing written past the end");
}

#[test]
fn nests_set_flag_and_length() {
    let mut buf = [0u8; 64];
    let mut w = Writer::new(&mut buf);
    let nest = w.nest_start(5).unwrap();
    w.put_u32(1, 7).unwrap();
    w.nest_end(nest).unwrap();
    let n = w.len();
    assert_eq!(u16::from_ne_bytes([buf[0], buf[1]]), 12);
    assert_eq!(u16::from_ne_bytes([buf[2], buf[3]]), 5 | F_NESTED);
    let outer = Attrs::new(&buf[..n]).next().unwrap().unwrap();
    assert_eq!(outer.kind, 5, "flags are masked off the type");
    let inner = outer.nested().next().unwrap().unwrap();
    assert_eq!(inner.u32(), Ok(7));
}

#[test]
fn parses_the_last_attribute_without_padding() {
    // A final attribute whose padding is missing is accepted, as in the kernel's nla_ok().
    let buf = [5u8, 0, 9, 0, 0x42];
    assert_eq!(collect(&buf), vec![Ok((9, vec![0x42]))]);
}

#[test]
fn rejects_malformed_streams() {
    assert_eq!(
        collect(&[3, 0, 1, 0]),
        vec![Err("malformed attribute length")]
    );
    assert_eq!(
        collect(&[9, 0, 1, 0, 0, 0, 0, 0]),
        vec![Err("malformed attribute length")]
    );
    assert_eq!(
        collect(&[4, 0, 1, 0, 0xff]),
        vec![
            Ok((1, vec![])),
            Err("trailing bytes after the last attribute")
        ]
    );
    // After an error the iterator stops.
    let mut it = Attrs::new(&[0, 0, 0, 0, 4, 0, 1, 0]);
    assert!(it.next().unwrap().is_err());
    assert!(it.next().is_none());
}

#[test]
fn typed_getters_check_length() {
    let mut buf = [0u8; 64];
    let mut w = Writer::new(&mut buf);
    w.put_u64(1, u64::MAX - 1).unwrap();
    w.put(2, &[1, 2, 3]).unwrap();
    w.put(3, b"a\0b\0").unwrap();
    let n = w.len();
    let attrs: Vec<_> = Attrs::new(&buf[..n]).map(Result::unwrap).collect();
    assert_eq!(attrs[0].u64(), Ok(u64::MAX - 1));
    assert_eq!(
        attrs[0].u32().unwrap_err().text(),
        "attribute must be a u32"
    );
    assert_eq!(attrs[1].u16().unwrap_err().errno, code::EINVAL);
    assert_eq!(
        attrs[2].string().unwrap_err().text(),
        "string attribute must be NUL-terminated"
    );
}

#[test]
fn writer_refuses_overflow() {
    let mut buf = [0u8; 10];
    let mut w = Writer::new(&mut buf);
    w.put_u32(1, 1).unwrap();
    assert_eq!(w.put_u32(2, 2).unwrap_err().errno, code::EMSGSIZE);
    assert_eq!(w.len(), 8);
    let mut big = vec![0u8; 70000];
    let mut w = Writer::new(&mut big);
    assert_eq!(
        w.put(1, &[0u8; 65532]).unwrap_err().errno,
        code::EMSGSIZE,
        "nla_len is a u16"
    );
    assert_eq!(align(5), 8);
}
