// SPDX-License-Identifier: GPL-2.0

//! Parsing of the IPv4/IPv6 and TCP headers of a snooped frame.
//!
//! The netfilter hook hands over the first bytes of the network header (linear, up to
//! [`HEADER_MAX`]) and the length of the whole L3 packet (`skb->len`, which includes the
//! Ethernet padding of short frames, and for GSO/GRO super-packets exceeds the MTU). The IP
//! length fields decide, as `ip_rcv()` and `ipv6_rcv()` do: a length past the frame or shorter
//! than the headers is malformed, and 0 stands for the packet's own length only in a GSO
//! super-packet (BIG TCP, [`parse_gso`]). Payload bytes are not parsed here: the tracker copies
//! the parts it keeps through [`Payload`](crate::logic::seqbuf::Payload).
//!
//! IP options are skipped, not interpreted; fragments, extension headers other than the
//! usual skippable ones, and malformed headers are rejected with a reason that the caller
//! counts.

use crate::logic::seq::Seq;

/// Bytes of network header the caller should provide: IPv6 with a few extension headers plus
/// a TCP header with full options.
pub const HEADER_MAX: usize = 256;

/// An IPv4 address mapped into 16 bytes (`::ffff:a.b.c.d`) or an IPv6 address.
///
/// Ordered as its bytes are (lexicographically), compared as one big-endian `u128`: the
/// derived order compares byte slices through `memcmp`, which the kernel implements a byte
/// at a time, and every mirror lookup, takeover sort and served-set search compares keys
/// whose first twelve bytes are the same for all IPv4 addresses.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Addr(pub [u8; 16]);

impl Ord for Addr {
    fn cmp(&self, other: &Self) -> core::cmp::Ordering {
        u128::from_be_bytes(self.0).cmp(&u128::from_be_bytes(other.0))
    }
}

impl PartialOrd for Addr {
    fn partial_cmp(&self, other: &Self) -> Option<core::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Addr {
    /// The IPv4-mapped form of an IPv4 address.
    pub fn v4(a: [u8; 4]) -> Self {
        let mut b = [0u8; 16];
        b[10] = 0xff;
        b[11] = 0xff;
        b[12..].copy_from_slice(&a);
        Addr(b)
    }

    /// The IPv4 address, when this is an IPv4-mapped address.
    pub fn as_v4(&self) -> Option<[u8; 4]> {
        if self.0[..10] == [0; 10] && self.0[10] == 0xff && self.0[11] == 0xff {
            let mut a = [0u8; 4];
            a.copy_from_slice(&self.0[12..]);
            Some(a)
        } else {
            None
        }
    }
}

/// TCP flags.
pub mod flags {
    /// FIN.
    pub const FIN: u8 = 0x01;
    /// SYN.
    pub const SYN: u8 = 0x02;
    /// RST.
    pub const RST: u8 = 0x04;
    /// PSH.
    pub const PSH: u8 = 0x08;
    /// ACK.
    pub const ACK: u8 = 0x10;
    /// URG.
    pub const URG: u8 = 0x20;
}

/// TCP options of one segment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Options {
    /// MSS option (SYN only).
    pub mss: Option<u16>,
    /// Window scale shift (SYN only).
    pub wscale: Option<u8>,
    /// SACK permitted (SYN only).
    pub sack_perm: bool,
    /// Timestamps: (TSval, TSecr).
    pub ts: Option<(u32, u32)>,
    /// Number of SACK blocks carried.
    pub sack_blocks: u8,
}

/// A parsed TCP segment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Segment {
    /// Source address.
    pub src: Addr,
    /// Destination address.
    pub dst: Addr,
    /// Source port.
    pub sport: u16,
    /// Destination port.
    pub dport: u16,
    /// Sequence number.
    pub seq: Seq,
    /// Acknowledgement number (meaningful with ACK).
    pub ack: Seq,
    /// TCP flags.
    pub flags: u8,
    /// Raw (unscaled) window field.
    pub window: u16,
    /// Options.
    pub opts: Options,
    /// Offset of the TCP header from the start of the network header.
    pub l4_off: u32,
    /// Offset of the payload from the start of the network header.
    pub payload_off: u32,
    /// Payload length (GSO super-packets included).
    pub payload_len: u32,
}

impl Segment {
    /// Whether the segment travels over IPv6.
    pub fn is_v6(&self) -> bool {
        self.src.as_v4().is_none()
    }

    /// Whether the segment has all of `f`.
    pub fn has(&self, f: u8) -> bool {
        self.flags & f == f
    }

    /// Whether it opens a connection: a SYN without ACK.
    pub fn is_new_syn(&self) -> bool {
        self.has(flags::SYN) && !self.has(flags::ACK)
    }

    /// Length of the TCP header and payload, as the IP length fields give it: what the TCP
    /// checksum covers.
    pub fn l4_len(&self) -> u32 {
        self.payload_off - self.l4_off + self.payload_len
    }

    /// Sequence space the segment occupies: payload plus one for SYN and for FIN.
    pub fn seq_len(&self) -> u32 {
        self.payload_len + u32::from(self.has(flags::SYN)) + u32::from(self.has(flags::FIN))
    }
}

/// Why a frame was not parsed as a TCP segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Skip {
    /// Not IPv4 or IPv6, or not TCP: not for us.
    NotTcp,
    /// A non-first or first-of-several IP fragment.
    Fragment,
    /// A header is truncated or inconsistent.
    Malformed,
}

#[inline(always)]
fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

#[inline(always)]
fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// Parses TCP options (`opts` is the options area of the header).
#[inline(always)]
pub fn parse_options(opts: &[u8]) -> Result<Options, Skip> {
    // What nearly every segment of an established Linux connection carries: two NOPs, then
    // the timestamps (tcp_parse_aligned_timestamp()).
    if opts.len() == 12 && opts[..4] == [1, 1, 8, 10] {
        return Ok(Options {
            ts: Some((be32(opts, 4), be32(opts, 8))),
            ..Options::default()
        });
    }
    let mut o = Options::default();
    let mut i = 0;
    while i < opts.len() {
        match opts[i] {
            0 => break,
            1 => i += 1,
            kind => {
                let len = *opts.get(i + 1).ok_or(Skip::Malformed)? as usize;
                if len < 2 || i + len > opts.len() {
                    return Err(Skip::Malformed);
                }
                let body = &opts[i + 2..i + len];
                match (kind, len) {
                    (2, 4) => o.mss = Some(be16(body, 0)),
                    (3, 3) => o.wscale = Some(body[0].min(14)),
                    (4, 2) => o.sack_perm = true,
                    (5, _) if (len - 2) % 8 == 0 => o.sack_blocks = ((len - 2) / 8) as u8,
                    (8, 10) => o.ts = Some((be32(body, 0), be32(body, 4))),
                    (2 | 3 | 4 | 5 | 8, _) => return Err(Skip::Malformed),
                    _ => {}
                }
                i += len;
            }
        }
    }
    Ok(o)
}

/// Parses the TCP header at `hdr[off..]`; `l4_len` is the L4 length (header plus payload).
#[inline(always)]
fn parse_tcp(hdr: &[u8], off: usize, l4_len: usize, src: Addr, dst: Addr) -> Result<Segment, Skip> {
    let t = hdr.get(off..).ok_or(Skip::Malformed)?;
    if t.len() < 20 || l4_len < 20 {
        return Err(Skip::Malformed);
    }
    let doff = (t[12] >> 4) as usize * 4;
    if doff < 20 || doff > l4_len || doff > t.len() {
        return Err(Skip::Malformed);
    }
    Ok(Segment {
        src,
        dst,
        sport: be16(t, 0),
        dport: be16(t, 2),
        seq: be32(t, 4),
        ack: be32(t, 8),
        flags: t[13] & 0x3f,
        window: be16(t, 14),
        opts: parse_options(&t[20..doff])?,
        l4_off: off as u32,
        payload_off: (off + doff) as u32,
        payload_len: (l4_len - doff) as u32,
    })
}

/// The TCP flags of the segment `hdr` (from the network header on) carries, read without
/// parsing it: an IPv4 packet of protocol TCP at fragment offset 0, or an IPv6 packet whose
/// first next header is TCP, the flags byte within `hdr`. `None` for anything else (another
/// protocol, IPv6 extension headers, a later fragment, too few bytes): the caller parses.
/// Wherever [`parse`] reads a segment from `hdr`, this reads its flags from the same byte,
/// so a caller that only acts on some flags may skip the parse when they are clear.
#[inline(always)]
pub fn tcp_flags(hdr: &[u8]) -> Option<u8> {
    let th = match hdr.first()? >> 4 {
        4 if hdr.len() >= 20 && hdr[9] == 6 && be16(hdr, 6) & 0x1fff == 0 => {
            (hdr[0] & 0xf) as usize * 4
        }
        6 if hdr.len() >= 40 && hdr[6] == 6 => 40,
        _ => return None,
    };
    hdr.get(th + 13).map(|f| f & 0x3f)
}

/// Parses a frame's network header. `hdr` holds its first bytes (at least the IP and TCP
/// headers, when they exist); `l3_len` is the length of the whole network-layer packet,
/// padding included.
pub fn parse(hdr: &[u8], l3_len: usize) -> Result<Segment, Skip> {
    parse_len(hdr, l3_len, false)
}

/// [`parse`] for a GSO/GRO super-packet (`skb_is_gso()`): an IP length field of 0 stands for
/// the packet's own length (BIG TCP, `iph_totlen()`).
pub fn parse_gso(hdr: &[u8], l3_len: usize) -> Result<Segment, Skip> {
    parse_len(hdr, l3_len, true)
}

/// Parses a frame whose first `linear.len()` bytes from the network header can be read in
/// place (an skb's linear part), reading `copy()` (its first [`HEADER_MAX`] bytes, as many as
/// it has, copied out) only when those do not hold all its headers; `gso` as for
/// [`parse_gso`]. Most frames' headers are all in place, and copying [`HEADER_MAX`] bytes out of
/// a frame whose payload is in pages cost more than parsing them: a header cut short is only
/// ever [`Skip::Malformed`] (or, with no byte in place, unknown), so only that asks for the
/// copy.
pub fn parse_in_place<'c>(
    linear: &[u8],
    l3_len: usize,
    gso: bool,
    copy: impl FnOnce() -> Option<&'c [u8]>,
) -> Result<Segment, Skip> {
    let whole = l3_len.min(HEADER_MAX);
    let linear = &linear[..linear.len().min(whole)];
    // Nothing in place says nothing of the version either (it would read as not IP).
    let parsed = if linear.is_empty() && whole > 0 {
        Err(Skip::Malformed)
    } else {
        parse_len(linear, l3_len, gso)
    };
    match parsed {
        Err(Skip::Malformed) if linear.len() < whole => match copy() {
            Some(hdr) => parse_len(hdr, l3_len, gso),
            None => Err(Skip::Malformed),
        },
        r => r,
    }
}

#[inline(always)]
fn parse_len(hdr: &[u8], l3_len: usize, gso: bool) -> Result<Segment, Skip> {
    match hdr.first().map(|b| b >> 4) {
        Some(4) => parse_v4(hdr, l3_len, gso),
        Some(6) => parse_v6(hdr, l3_len, gso),
        _ => Err(Skip::NotTcp),
    }
}

/// The length the IP header's length field gives (`field`, counted from `from`), checked
/// against the frame as the stack does: 0 only in a GSO super-packet, never past the frame.
fn ip_len(field: usize, from: usize, l3_len: usize, gso: bool) -> Result<usize, Skip> {
    match field {
        0 if gso => Ok(l3_len),
        0 => Err(Skip::Malformed),
        n if from + n > l3_len => Err(Skip::Malformed),
        n => Ok(from + n),
    }
}

#[inline(always)]
fn parse_v4(h: &[u8], l3_len: usize, gso: bool) -> Result<Segment, Skip> {
    if h.len() < 20 {
        return Err(Skip::Malformed);
    }
    let ihl = (h[0] & 0xf) as usize * 4;
    if h[9] != 6 {
        return Err(Skip::NotTcp);
    }
    let frag = be16(h, 6);
    if frag & 0x3fff != 0 {
        // MF set or a non-zero offset.
        return Err(Skip::Fragment);
    }
    // Ethernet padding makes skb->len longer than tot_len for short frames: tot_len counts.
    let len = ip_len(be16(h, 2) as usize, 0, l3_len, gso)?;
    if ihl < 20 || ihl > len {
        return Err(Skip::Malformed);
    }
    let src = Addr::v4([h[12], h[13], h[14], h[15]]);
    let dst = Addr::v4([h[16], h[17], h[18], h[19]]);
    parse_tcp(h, ihl, len - ihl, src, dst)
}

fn parse_v6(h: &[u8], l3_len: usize, gso: bool) -> Result<Segment, Skip> {
    if h.len() < 40 {
        return Err(Skip::Malformed);
    }
    // 0 means a jumbogram (BIG TCP): the real length is the packet's.
    let len = ip_len(be16(h, 4) as usize, 40, l3_len, gso)?;
    let mut src = [0u8; 16];
    let mut dst = [0u8; 16];
    src.copy_from_slice(&h[8..24]);
    dst.copy_from_slice(&h[24..40]);
    let mut next = h[6];
    let mut off = 40;
    // Skip hop-by-hop, routing and destination options headers; refuse fragments.
    loop {
        match next {
            6 => {
                return parse_tcp(
                    h,
                    off,
                    len.checked_sub(off).ok_or(Skip::Malformed)?,
                    Addr(src),
                    Addr(dst),
                )
            }
            0 | 43 | 60 => {
                let e = h.get(off..off + 2).ok_or(Skip::Malformed)?;
                next = e[0];
                off += (e[1] as usize + 1) * 8;
                if off > len {
                    return Err(Skip::Malformed);
                }
            }
            44 => return Err(Skip::Fragment),
            _ => return Err(Skip::NotTcp),
        }
    }
}

/// Length of the largest segment [`Control::build`] writes: IPv6, TCP and the timestamp option.
pub const CONTROL_MAX: usize = 40 + 20 + 12;

fn csum_add(mut sum: u32, data: &[u8]) -> u32 {
    let mut chunks = data.chunks_exact(2);
    for c in &mut chunks {
        sum += u32::from(u16::from_be_bytes([c[0], c[1]]));
    }
    if let [b] = chunks.remainder() {
        sum += u32::from(*b) << 8;
    }
    sum
}

/// The Internet checksum (RFC 1071) of `data`, starting from `sum`.
pub fn checksum(sum: u32, data: &[u8]) -> u16 {
    let mut s = csum_add(sum, data);
    while s > 0xffff {
        s = (s & 0xffff) + (s >> 16);
    }
    !(s as u16)
}

/// Whether `seg`'s TCP checksum is right, given `l4_sum`: the one's-complement sum (RFC 1071,
/// folded to 16 bits, as a number) of exactly its [`Segment::l4_len`] bytes from
/// [`Segment::l4_off`] — not of the frame's length, which includes any Ethernet padding.
pub fn tcp_csum_ok(seg: &Segment, l4_sum: u16) -> bool {
    let pseudo = match (seg.src.as_v4(), seg.dst.as_v4()) {
        (Some(s), Some(d)) => csum_add(csum_add(0, &s), &d),
        _ => csum_add(csum_add(0, &seg.src.0), &seg.dst.0),
    };
    // The pseudo-header's protocol and length; a jumbogram's length has 32 bits.
    let len = seg.l4_len();
    let sum = pseudo + 6 + (len >> 16) + (len & 0xffff) + u32::from(l4_sum);
    checksum(sum, &[]) == 0
}

/// A TCP segment without payload, to be built with [`Control::build`]: for feeding the local
/// stack a segment the snooped peer sent (a half-closed client's FIN), or for resetting a
/// connection no peer can take over.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Control {
    /// Source address and port (an IPv4 packet when both ends are IPv4-mapped, else IPv6).
    pub src: (Addr, u16),
    /// Destination address and port.
    pub dst: (Addr, u16),
    /// Sequence number.
    pub seq: Seq,
    /// Acknowledgement number.
    pub ack: Seq,
    /// TCP flags ([`flags`]).
    pub flags: u8,
    /// Window field, as sent (unscaled).
    pub window: u16,
    /// The timestamp option (TSval, TSecr), if any.
    pub ts: Option<(u32, u32)>,
}

impl Control {
    /// Writes the segment with correct IP and TCP checksums; returns its length.
    pub fn build(&self, out: &mut [u8; CONTROL_MAX]) -> usize {
        let Control {
            src,
            dst,
            seq,
            ack,
            flags,
            window,
            ts,
        } = *self;
        let tcp_len = if ts.is_some() { 32 } else { 20 };
        let v4 = src.0.as_v4().zip(dst.0.as_v4());
        let ip_len = if v4.is_some() { 20 } else { 40 };
        let total = ip_len + tcp_len;
        out.fill(0);
        // The TCP pseudo-header sum.
        let mut pseudo = u32::from(6u16) + tcp_len as u32;
        match v4 {
            Some((s, d)) => {
                let ip = &mut out[..20];
                ip[0] = 0x45;
                ip[2..4].copy_from_slice(&(total as u16).to_be_bytes());
                ip[6] = 0x40; // DF
                ip[8] = 64;
                ip[9] = 6;
                ip[12..16].copy_from_slice(&s);
                ip[16..20].copy_from_slice(&d);
                let c = checksum(0, ip);
                ip[10..12].copy_from_slice(&c.to_be_bytes());
                pseudo = csum_add(csum_add(pseudo, &s), &d);
            }
            None => {
                let ip = &mut out[..40];
                ip[0] = 0x60;
                ip[4..6].copy_from_slice(&(tcp_len as u16).to_be_bytes());
                ip[6] = 6;
                ip[7] = 64;
                ip[8..24].copy_from_slice(&src.0 .0);
                ip[24..40].copy_from_slice(&dst.0 .0);
                pseudo = csum_add(csum_add(pseudo, &src.0 .0), &dst.0 .0);
            }
        }
        let tcp = &mut out[ip_len..total];
        tcp[0..2].copy_from_slice(&src.1.to_be_bytes());
        tcp[2..4].copy_from_slice(&dst.1.to_be_bytes());
        tcp[4..8].copy_from_slice(&seq.to_be_bytes());
        tcp[8..12].copy_from_slice(&ack.to_be_bytes());
        tcp[12] = ((tcp_len / 4) as u8) << 4;
        tcp[13] = flags;
        tcp[14..16].copy_from_slice(&window.to_be_bytes());
        if let Some((val, ecr)) = ts {
            // NOP, NOP, TIMESTAMP: the layout Linux itself sends.
            tcp[20..24].copy_from_slice(&[1, 1, 8, 10]);
            tcp[24..28].copy_from_slice(&val.to_be_bytes());
            tcp[28..32].copy_from_slice(&ecr.to_be_bytes());
        }
        let c = checksum(pseudo, tcp);
        tcp[16..18].copy_from_slice(&c.to_be_bytes());
        total
    }
}
