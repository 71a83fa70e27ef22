// SPDX-License-Identifier: GPL-2.0

//! Netlink attributes: a strict parser and a writer into a fixed buffer.
//!
//! Requests are checked twice. The C glue (`permtcp_glue.c`) gives genetlink a policy per
//! command for the top-level attributes only (which attributes the command takes, their types,
//! exact lengths and ranges; commands without one get genetlink's reject-all policy), applied
//! strictly. Then the whole payload is parsed here again, including the nested contents no C
//! policy describes, so that every rule is Rust code the host can test and fuzz. Parsing is
//! strict, like `NL_VALIDATE_STRICT`: malformed lengths, trailing bytes and wrong payload sizes
//! are errors. Integers are in host byte order, as netlink mandates.

use super::errno::{code, inval, Error};

/// Size of `struct nlattr`.
pub const HDRLEN: usize = 4;
/// `NLA_F_NESTED`.
pub const F_NESTED: u16 = 1 << 15;
/// `NLA_F_NET_BYTEORDER`.
pub const F_NET_BYTEORDER: u16 = 1 << 14;
/// `NLA_TYPE_MASK`.
pub const TYPE_MASK: u16 = !(F_NESTED | F_NET_BYTEORDER);

/// Rounds `len` up to netlink's 4-byte attribute alignment.
pub const fn align(len: usize) -> usize {
    (len + 3) & !3
}

/// One attribute: its type (flags masked off) and its payload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Attr<'a> {
    /// Attribute type without `NLA_F_*` flags.
    pub kind: u16,
    /// Whether the sender set `NLA_F_NESTED`.
    pub is_nested: bool,
    /// Payload, without header or padding.
    pub data: &'a [u8],
}

impl<'a> Attr<'a> {
    fn fixed<const N: usize>(&self, msg: &'static core::ffi::CStr) -> Result<[u8; N], Error> {
        self.data.try_into().or_else(|_| inval(msg))
    }

    /// The payload as a `u8`; exactly one byte.
    pub fn u8(&self) -> Result<u8, Error> {
        Ok(self.fixed::<1>(c"attribute must be a u8")?[0])
    }

    /// The payload as a host-order `u16`.
    pub fn u16(&self) -> Result<u16, Error> {
        Ok(u16::from_ne_bytes(self.fixed(c"attribute must be a u16")?))
    }

    /// The payload as a host-order `u32`.
    pub fn u32(&self) -> Result<u32, Error> {
        Ok(u32::from_ne_bytes(self.fixed(c"attribute must be a u32")?))
    }

    /// The payload as a host-order `u64`.
    pub fn u64(&self) -> Result<u64, Error> {
        Ok(u64::from_ne_bytes(self.fixed(c"attribute must be a u64")?))
    }

    /// A zero-length flag attribute.
    pub fn flag(&self) -> Result<(), Error> {
        if self.data.is_empty() {
            Ok(())
        } else {
            inval(c"flag attribute must be empty")
        }
    }

    /// A NUL-terminated string without interior NULs; returns the bytes before the NUL.
    pub fn string(&self) -> Result<&'a [u8], Error> {
        match self.data.split_last() {
            Some((0, text)) if !text.contains(&0) => Ok(text),
            _ => inval(c"string attribute must be NUL-terminated"),
        }
    }

    /// The payload parsed as a nested attribute stream.
    pub fn nested(&self) -> Attrs<'a> {
        Attrs::new(self.data)
    }
}

/// Remembers which attribute types a parser has seen, to refuse an attribute given twice.
///
/// Attribute types of the family stay below 64 (a compile-time check in `ops.rs` keeps it so).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Seen(u64);

impl Seen {
    /// Records `kind`; an error when it was seen before (or is not below 64).
    pub fn once(&mut self, kind: u16) -> Result<(), Error> {
        let Some(bit) = 1u64.checked_shl(u32::from(kind)) else {
            return inval(c"unknown attribute");
        };
        if self.0 & bit != 0 {
            return inval(c"attribute given more than once");
        }
        self.0 |= bit;
        Ok(())
    }

    /// Whether `kind` was seen.
    pub fn has(&self, kind: u16) -> bool {
        1u64.checked_shl(u32::from(kind))
            .is_some_and(|bit| self.0 & bit != 0)
    }

    /// Whether every one of `kinds` was seen.
    pub fn all(&self, kinds: &[u16]) -> bool {
        kinds.iter().all(|&k| self.has(k))
    }
}

/// Iterator over an attribute stream; yields an error (once) on malformed input.
#[derive(Clone, Debug)]
pub struct Attrs<'a> {
    rest: &'a [u8],
}

impl<'a> Attrs<'a> {
    /// Parses `buf`, the bytes following the generic netlink header (or a nest's payload).
    pub fn new(buf: &'a [u8]) -> Self {
        Self { rest: buf }
    }
}

impl<'a> Iterator for Attrs<'a> {
    type Item = Result<Attr<'a>, Error>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        let fail = |s: &mut Self, msg| {
            s.rest = &[];
            Some(inval(msg))
        };
        if self.rest.len() < HDRLEN {
            return fail(self, c"trailing bytes after the last attribute");
        }
        let len = u16::from_ne_bytes([self.rest[0], self.rest[1]]) as usize;
        let raw_kind = u16::from_ne_bytes([self.rest[2], self.rest[3]]);
        let (kind, is_nested) = (raw_kind & TYPE_MASK, raw_kind & F_NESTED != 0);
        if len < HDRLEN || len > self.rest.len() {
            return fail(self, c"malformed attribute length");
        }
        let data = &self.rest[HDRLEN..len];
        self.rest = self.rest.get(align(len)..).unwrap_or(&[]);
        Some(Ok(Attr {
            kind,
            is_nested,
            data,
        }))
    }
}

/// Serializes attributes into a caller-provided buffer (for the kernel: an skb's tailroom).
///
/// # Invariants
///
/// `len <= buf.len()`, and `buf[..len]` is a well-formed attribute stream once every nest
/// opened with [`Writer::nest_start`] has been closed with [`Writer::nest_end`].
pub struct Writer<'a> {
    buf: &'a mut [u8],
    len: usize,
}

/// An open nest: the offset of its header in the writer.
#[must_use = "a nest must be closed with Writer::nest_end"]
pub struct Nest(usize);

impl<'a> Writer<'a> {
    /// A writer filling `buf` from its start.
    pub fn new(buf: &'a mut [u8]) -> Self {
        Self { buf, len: 0 }
    }

    /// Bytes written so far.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether nothing has been written.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The bytes written so far.
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }

    fn header(&mut self, kind: u16, payload: usize) -> Result<usize, Error> {
        let total = HDRLEN + payload;
        let end = self.len + align(total);
        if total > u16::MAX as usize || end > self.buf.len() {
            return Err(Error::new(
                code::EMSGSIZE,
                c"reply does not fit the message",
            ));
        }
        let at = self.len;
        self.buf[at..at + 2].copy_from_slice(&(total as u16).to_ne_bytes());
        self.buf[at + 2..at + 4].copy_from_slice(&kind.to_ne_bytes());
        // Zero the padding so that no stale buffer bytes leak into the message.
        self.buf[at + total..end].fill(0);
        self.len = end;
        Ok(at + HDRLEN)
    }

    /// Appends an attribute with an arbitrary payload.
    pub fn put(&mut self, kind: u16, data: &[u8]) -> Result<(), Error> {
        let at = self.header(kind, data.len())?;
        self.buf[at..at + data.len()].copy_from_slice(data);
        Ok(())
    }

    /// Appends an attribute of `len` bytes that `fill` writes in place; `fill` returning
    /// `false` cancels the attribute.
    pub fn put_with(
        &mut self,
        kind: u16,
        len: usize,
        fill: impl FnOnce(&mut [u8]) -> bool,
    ) -> Result<(), Error> {
        let start = self.len;
        let at = self.header(kind, len)?;
        if fill(&mut self.buf[at..at + len]) {
            Ok(())
        } else {
            self.len = start;
            Err(Error::new(code::EINVAL, c"attribute data unavailable"))
        }
    }

    /// Appends a `u8` attribute.
    pub fn put_u8(&mut self, kind: u16, v: u8) -> Result<(), Error> {
        self.put(kind, &[v])
    }

    /// Appends a `u16` attribute.
    pub fn put_u16(&mut self, kind: u16, v: u16) -> Result<(), Error> {
        self.put(kind, &v.to_ne_bytes())
    }

    /// Appends a `u32` attribute.
    pub fn put_u32(&mut self, kind: u16, v: u32) -> Result<(), Error> {
        self.put(kind, &v.to_ne_bytes())
    }

    /// Appends a `u64` attribute (x86-64 reads it unaligned; no pad attribute is needed there).
    pub fn put_u64(&mut self, kind: u16, v: u64) -> Result<(), Error> {
        self.put(kind, &v.to_ne_bytes())
    }

    /// Appends a flag attribute.
    pub fn put_flag(&mut self, kind: u16) -> Result<(), Error> {
        self.put(kind, &[])
    }

    /// Appends `text` as a NUL-terminated string attribute.
    pub fn put_str(&mut self, kind: u16, text: &[u8]) -> Result<(), Error> {
        let at = self.header(kind, text.len() + 1)?;
        self.buf[at..at + text.len()].copy_from_slice(text);
        self.buf[at + text.len()] = 0;
        Ok(())
    }

    /// Opens a nested attribute; close it with [`Writer::nest_end`].
    pub fn nest_start(&mut self, kind: u16) -> Result<Nest, Error> {
        let at = self.len;
        self.header(kind | F_NESTED, 0)?;
        Ok(Nest(at))
    }

    /// Closes a nest, fixing up its length.
    pub fn nest_end(&mut self, nest: Nest) -> Result<(), Error> {
        let total = self.len - nest.0;
        if total > u16::MAX as usize {
            return Err(Error::new(code::EMSGSIZE, c"nested attribute too large"));
        }
        self.buf[nest.0..nest.0 + 2].copy_from_slice(&(total as u16).to_ne_bytes());
        Ok(())
    }

    /// Drops everything written after `nest` was opened, including its header.
    pub fn nest_cancel(&mut self, nest: Nest) {
        self.len = nest.0;
    }
}
