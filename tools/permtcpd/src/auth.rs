// SPDX-License-Identifier: GPL-2.0

//! Authentication of cluster messages: the key file, HMAC-SHA256 tags, and replay protection.
//!
//! Key file: one key a line, `KEY_ID SECRET`, where the secret is hex (optionally prefixed by
//! `hex:`) or `base64:` standard base64, at least 32 bytes; `#` starts a comment. The file
//! must not be accessible to group or others. Every key in the file is accepted on receipt;
//! messages are sent with the configured current key id, so a key is rotated by adding the
//! new key on every node, then switching the current id, then removing the old key.
//!
//! Replay protection: per sending node, its current incarnation and a sliding window of the
//! last [`WINDOW`] sequence numbers. A newer incarnation resets the window, an older one is
//! dropped. Each drop has a reason and a counter.

use crate::wire::{self, Body, Header, Kind, TAG_LEN};
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::path::Path;

type HmacSha256 = Hmac<Sha256>;

/// Shortest secret accepted, in bytes.
pub const MIN_SECRET: usize = 32;
/// Sequence numbers remembered below the highest one seen.
pub const WINDOW: u64 = 1024;

/// The shared keys, by key id, each held as an HMAC already keyed with it: a message's tag
/// starts from a copy of it, without hashing the key's two padded blocks again: a third of
/// the daemon's SHA-256 work in the multi-VM bench (Documentation/testing.rst, "The owner's
/// own work, counted").
#[derive(Clone)]
pub struct Keyring {
    keys: BTreeMap<u32, HmacSha256>,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the secrets.
        f.debug_struct("Keyring")
            .field("ids", &self.keys.keys().collect::<Vec<_>>())
            .finish()
    }
}

fn hex(s: &str) -> Option<Vec<u8>> {
    if s.len() % 2 != 0 || !s.is_ascii() {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).ok())
        .collect()
}

fn base64(s: &str) -> Option<Vec<u8>> {
    let s = s.trim_end_matches('=');
    let val = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    };
    let mut out = Vec::new();
    let (mut acc, mut bits) = (0u32, 0);
    for c in s.bytes() {
        acc = (acc << 6) | val(c)?;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    // Leftover bits must be padding zeros, and a lone sextet is not base64.
    (bits < 6 && acc == 0).then_some(out)
}

impl Keyring {
    /// Parses the key file's text.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut keys = BTreeMap::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            let at = |m: &str| format!("key file line {}: {m}", n + 1);
            let mut words = line.split_whitespace();
            let (Some(id), Some(secret), None) = (words.next(), words.next(), words.next()) else {
                return Err(at("expected 'KEY_ID SECRET'"));
            };
            let id: u32 = id
                .parse()
                .map_err(|_| at(&format!("'{id}' is not a key id (0 to 4294967295)")))?;
            let bytes = if let Some(b) = secret.strip_prefix("base64:") {
                base64(b).ok_or_else(|| at("secret is not valid base64"))?
            } else {
                hex(secret.strip_prefix("hex:").unwrap_or(secret))
                    .ok_or_else(|| at("secret is not hex (or prefix it with base64:)"))?
            };
            if bytes.len() < MIN_SECRET {
                return Err(at(&format!(
                    "secret has {} bytes, at least {MIN_SECRET} are needed",
                    bytes.len()
                )));
            }
            let mac = <HmacSha256 as KeyInit>::new_from_slice(&bytes)
                .map_err(|_| at("HMAC-SHA256 does not take this key"))?;
            if keys.insert(id, mac).is_some() {
                return Err(at(&format!("key id {id} given twice")));
            }
        }
        if keys.is_empty() {
            return Err("key file holds no key".into());
        }
        Ok(Self { keys })
    }

    /// Reads the key file, refusing one that group or others may access.
    pub fn load(path: &Path) -> Result<Self, String> {
        use std::os::unix::fs::PermissionsExt;
        let meta =
            std::fs::metadata(path).map_err(|e| format!("key file {}: {e}", path.display()))?;
        let mode = meta.permissions().mode();
        if mode & 0o077 != 0 {
            return Err(format!(
                "key file {} is accessible to group or others (mode {:o}); chmod 600 it",
                path.display(),
                mode & 0o777
            ));
        }
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("key file {}: {e}", path.display()))?;
        Self::parse(&text).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// Whether the key id is known.
    pub fn has(&self, id: u32) -> bool {
        self.keys.contains_key(&id)
    }

    fn mac(&self, id: u32) -> Option<HmacSha256> {
        self.keys.get(&id).cloned()
    }
}

/// Sliding window over one incarnation's sequence numbers.
#[derive(Clone, Debug, Default)]
pub struct ReplayWindow {
    /// Highest sequence number accepted (0: none).
    highest: u64,
    /// Bit `i`: `highest - i` was accepted.
    bits: [u64; (WINDOW / 64) as usize],
}

impl ReplayWindow {
    fn bit(&self, back: u64) -> bool {
        self.bits[(back / 64) as usize] & (1 << (back % 64)) != 0
    }

    /// Accepts `seq` once; refuses it when seen or older than the window.
    pub fn accept(&mut self, seq: u64) -> bool {
        if seq > self.highest {
            let shift = seq - self.highest;
            if shift >= WINDOW {
                self.bits = Default::default();
            } else {
                // Shift the bitmap towards older positions by `shift` bits.
                let (words, bits) = ((shift / 64) as usize, (shift % 64) as u32);
                let n = self.bits.len();
                for i in (0..n).rev() {
                    let src = i.checked_sub(words);
                    let hi = src.map_or(0, |s| self.bits[s]);
                    let lo = src
                        .and_then(|s| s.checked_sub(1))
                        .map_or(0, |s| self.bits[s]);
                    self.bits[i] = if bits == 0 {
                        hi
                    } else {
                        (hi << bits) | (lo >> (64 - bits))
                    };
                }
            }
            self.highest = seq;
            self.bits[0] |= 1;
            return true;
        }
        let back = self.highest - seq;
        if back >= WINDOW || self.bit(back) {
            return false;
        }
        self.bits[(back / 64) as usize] |= 1 << (back % 64);
        true
    }
}

/// Why a datagram was dropped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DropReason {
    /// Not a well-formed message (header or, after authentication, body).
    Malformed,
    /// Another cluster id.
    UnknownCluster,
    /// Addressed to another node.
    Misdirected,
    /// Sender is not a configured node.
    UnknownNode,
    /// Source address is not one configured for the sender.
    WrongSource,
    /// Key id not in the key file.
    UnknownKey,
    /// Tag does not verify.
    BadTag,
    /// Older incarnation than the sender's current one.
    StaleIncarnation,
    /// Sequence number already seen or older than the window.
    Replay,
}

impl DropReason {
    /// Every reason, in counter order.
    pub const ALL: [DropReason; 9] = [
        DropReason::Malformed,
        DropReason::UnknownCluster,
        DropReason::Misdirected,
        DropReason::UnknownNode,
        DropReason::WrongSource,
        DropReason::UnknownKey,
        DropReason::BadTag,
        DropReason::StaleIncarnation,
        DropReason::Replay,
    ];

    /// Name for logs and counters.
    pub fn name(self) -> &'static str {
        match self {
            DropReason::Malformed => "malformed",
            DropReason::UnknownCluster => "unknown_cluster",
            DropReason::Misdirected => "misdirected",
            DropReason::UnknownNode => "unknown_node",
            DropReason::WrongSource => "wrong_source",
            DropReason::UnknownKey => "unknown_key",
            DropReason::BadTag => "bad_tag",
            DropReason::StaleIncarnation => "stale_incarnation",
            DropReason::Replay => "replay",
        }
    }
}

/// Counters of accepted and dropped datagrams.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// Datagrams accepted.
    pub accepted: u64,
    /// Datagrams dropped, by reason.
    pub dropped: BTreeMap<DropReason, u64>,
}

impl Counters {
    /// Drops counted for `r`.
    pub fn get(&self, r: DropReason) -> u64 {
        self.dropped.get(&r).copied().unwrap_or(0)
    }

    /// All drops.
    pub fn total_dropped(&self) -> u64 {
        self.dropped.values().sum()
    }
}

/// Seals outgoing and opens incoming messages for one node.
pub struct Auth {
    cluster: u32,
    node: u32,
    incarnation: u64,
    send_key: u32,
    keys: Keyring,
    /// Configured peers and the source addresses they may send from.
    peers: HashMap<u32, Vec<IpAddr>>,
    /// Per peer: its current incarnation and that incarnation's window.
    windows: HashMap<u32, (u64, ReplayWindow)>,
    next_seq: u64,
    counters: Counters,
}

/// An accepted message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Opened {
    /// Its header.
    pub header: Header,
    /// Its body.
    pub body: Body,
}

impl Auth {
    /// Node `node` (incarnation `incarnation`) of cluster `cluster`, sending with key
    /// `send_key`, accepting messages from `peers` at their addresses.
    pub fn new(
        cluster: u32,
        node: u32,
        incarnation: u64,
        keys: Keyring,
        send_key: u32,
        peers: HashMap<u32, Vec<IpAddr>>,
    ) -> Result<Self, String> {
        if !keys.has(send_key) {
            return Err(format!("the key file has no key with id {send_key}"));
        }
        if incarnation == 0 {
            return Err("incarnation 0 is reserved".into());
        }
        Ok(Self {
            cluster,
            node,
            incarnation,
            send_key,
            keys,
            peers,
            windows: HashMap::new(),
            next_seq: 1,
            counters: Counters::default(),
        })
    }

    /// Replaces the keys and the current key id (key rotation without a restart).
    pub fn set_keys(&mut self, keys: Keyring, send_key: u32) -> Result<(), String> {
        if !keys.has(send_key) {
            return Err(format!("the key file has no key with id {send_key}"));
        }
        self.keys = keys;
        self.send_key = send_key;
        Ok(())
    }

    /// This node's incarnation.
    pub fn incarnation(&self) -> u64 {
        self.incarnation
    }

    /// The counters so far.
    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// The sequence number of the last message sealed (0: none yet).
    pub fn last_seq(&self) -> u64 {
        self.next_seq - 1
    }

    /// Encodes and tags a message for node `to`, with the next sequence number.
    pub fn seal(&mut self, to: u32, body: &Body) -> Result<Vec<u8>, wire::Malformed> {
        let bytes = body.encode()?;
        let header = Header {
            kind: body.kind(),
            cluster: self.cluster,
            from: self.node,
            to,
            key_id: self.send_key,
            incarnation: self.incarnation,
            seq: self.next_seq,
        };
        self.next_seq += 1;
        Ok(seal_raw(&self.keys, &header, &bytes))
    }

    fn drop(&mut self, r: DropReason) -> DropReason {
        *self.counters.dropped.entry(r).or_insert(0) += 1;
        r
    }

    /// Checks a datagram received from `source`; counts and returns the reason of a drop.
    pub fn open(&mut self, datagram: &[u8], source: IpAddr) -> Result<Opened, DropReason> {
        let f = wire::split(datagram).map_err(|_| self.drop(DropReason::Malformed))?;
        let h = f.header;
        if h.cluster != self.cluster {
            return Err(self.drop(DropReason::UnknownCluster));
        }
        if h.to != self.node {
            return Err(self.drop(DropReason::Misdirected));
        }
        let Some(addrs) = self.peers.get(&h.from) else {
            return Err(self.drop(DropReason::UnknownNode));
        };
        let source = source.to_canonical();
        if !addrs.iter().any(|a| a.to_canonical() == source) {
            return Err(self.drop(DropReason::WrongSource));
        }
        let Some(mut mac) = self.keys.mac(h.key_id) else {
            return Err(self.drop(DropReason::UnknownKey));
        };
        mac.update(f.signed);
        // Constant-time comparison.
        if mac.verify_slice(f.tag).is_err() {
            return Err(self.drop(DropReason::BadTag));
        }
        let (inc, window) = self.windows.entry(h.from).or_default();
        if h.incarnation < *inc {
            return Err(self.drop(DropReason::StaleIncarnation));
        }
        if h.incarnation > *inc {
            *inc = h.incarnation;
            *window = ReplayWindow::default();
        }
        if !window.accept(h.seq) {
            return Err(self.drop(DropReason::Replay));
        }
        let body = Body::parse(h.kind, f.body).map_err(|_| self.drop(DropReason::Malformed))?;
        self.counters.accepted += 1;
        Ok(Opened { header: h, body })
    }
}

/// Tags `header` and an encoded body with the header's key; for [`Auth::seal`] and tests
/// that forge messages.
pub fn seal_raw(keys: &Keyring, header: &Header, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(wire::HEADER_LEN + body.len() + TAG_LEN);
    header.write(body.len(), &mut out);
    out.extend_from_slice(body);
    let tag = match keys.mac(header.key_id) {
        Some(mut mac) => {
            mac.update(&out);
            mac.finalize().into_bytes().to_vec()
        }
        None => vec![0; TAG_LEN],
    };
    out.extend_from_slice(&tag);
    out
}

/// The message type of a datagram, if its header parses (for logs of drops).
pub fn peek_kind(datagram: &[u8]) -> Option<Kind> {
    wire::split(datagram).ok().map(|f| f.header.kind)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::tests::{samples, Rng};
    use crate::wire::{Ack, AckResult};

    const K1: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";

    fn ring() -> Keyring {
        Keyring::parse(&format!(
            "# comment\n1 {K1}\n 2 base64:{} # trailing\n",
            "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVphYmNkZWY="
        ))
        .unwrap()
    }

    fn local() -> IpAddr {
        "127.0.0.1".parse().unwrap()
    }

    fn pair(inc_a: u64) -> (Auth, Auth) {
        let peers = |n: u32| HashMap::from([(n, vec![local()])]);
        (
            Auth::new(7, 1, inc_a, ring(), 1, peers(2)).unwrap(),
            Auth::new(7, 2, 5, ring(), 2, peers(1)).unwrap(),
        )
    }

    fn ack() -> Body {
        Body::Ack(Ack {
            id: 1,
            result: AckResult::Taken,
        })
    }

    #[test]
    fn key_file_format() {
        let r = ring();
        assert!(r.has(1) && r.has(2) && !r.has(3));
        assert_eq!(base64("QUJD").unwrap(), b"ABC");
        assert_eq!(base64("QUI=").unwrap(), b"AB");
        assert_eq!(base64("QQ==").unwrap(), b"A");
        assert!(base64("Q").is_none());
        assert!(base64("QR==").is_none());
        for (text, err) in [
            ("", "no key"),
            ("1", "expected"),
            ("x 00", "not a key id"),
            ("1 0011", "at least 32"),
            ("1 zz", "not hex"),
            ("1 base64:!!", "base64"),
            (&format!("1 {K1}\n1 {K1}"), "twice"),
            (&format!("1 {K1} extra"), "expected"),
        ] {
            let e = Keyring::parse(text).unwrap_err();
            assert!(e.contains(err), "{text}: {e}");
        }
        assert!(!format!("{:?}", ring()).contains("0011"));
    }

    #[test]
    fn key_file_permissions() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("permtcpd-keys-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("keys");
        std::fs::write(&p, format!("4 {K1}\n")).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o640)).unwrap();
        assert!(Keyring::load(&p).unwrap_err().contains("chmod 600"));
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert!(Keyring::load(&p).unwrap().has(4));
        assert!(Keyring::load(&dir.join("missing")).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn seal_open_and_rotation() {
        let (mut a, mut b) = pair(3);
        let d = a.seal(2, &ack()).unwrap();
        let o = b.open(&d, local()).unwrap();
        assert_eq!((o.header.from, o.header.key_id, o.body), (1, 1, ack()));
        // b sends with key 2, a accepts any configured key.
        let d = b.seal(1, &ack()).unwrap();
        assert_eq!(a.open(&d, local()).unwrap().header.key_id, 2);
        // Rotation: a drops key 1 and sends with 2; b still accepts.
        a.set_keys(Keyring::parse(&format!("2 {K1}")).unwrap(), 2)
            .unwrap();
        assert!(a.set_keys(ring(), 9).is_err());
        let d = a.seal(2, &ack()).unwrap();
        // Same id, another secret on b's side: the tag fails.
        assert_eq!(b.open(&d, local()), Err(DropReason::BadTag));
        assert_eq!(b.counters().accepted, 1);
    }

    #[test]
    fn every_drop_reason_is_counted() {
        let (mut a, mut b) = pair(3);
        let good = a.seal(2, &ack()).unwrap();
        let forge = |h: Header, keys: &Keyring| seal_raw(keys, &h, &ack().encode().unwrap());
        let base = wire::split(&good).unwrap().header;
        let other = Keyring::parse(&format!("1 {}", "ab".repeat(32))).unwrap();
        let cases: Vec<(Vec<u8>, IpAddr, DropReason)> = vec![
            (b"garbage".to_vec(), local(), DropReason::Malformed),
            (
                forge(Header { cluster: 8, ..base }, &ring()),
                local(),
                DropReason::UnknownCluster,
            ),
            (
                forge(Header { to: 3, ..base }, &ring()),
                local(),
                DropReason::Misdirected,
            ),
            (
                forge(Header { from: 9, ..base }, &ring()),
                local(),
                DropReason::UnknownNode,
            ),
            (
                good.clone(),
                "10.9.9.9".parse().unwrap(),
                DropReason::WrongSource,
            ),
            (
                forge(Header { key_id: 77, ..base }, &ring()),
                local(),
                DropReason::UnknownKey,
            ),
            (forge(base, &other), local(), DropReason::BadTag),
        ];
        for (d, src, why) in &cases {
            assert_eq!(b.open(d, *src), Err(*why));
        }
        assert!(b.open(&good, local()).is_ok());
        assert_eq!(b.open(&good, local()), Err(DropReason::Replay));
        // A newer incarnation resets the window; the older one is then stale.
        let (mut a2, _) = pair(4);
        let newer = a2.seal(2, &ack()).unwrap();
        assert!(b.open(&newer, local()).is_ok());
        let old = a.seal(2, &ack()).unwrap();
        assert_eq!(b.open(&old, local()), Err(DropReason::StaleIncarnation));
        // Authenticated but malformed body.
        let mut h = base;
        h.incarnation = 4;
        h.seq = 100;
        let bad_body = seal_raw(&ring(), &h, &[1, 2, 3]);
        assert_eq!(b.open(&bad_body, local()), Err(DropReason::Malformed));
        let c = b.counters();
        for r in DropReason::ALL {
            let want = if r == DropReason::Malformed { 2 } else { 1 };
            assert_eq!(c.get(r), want, "{}", r.name());
        }
        assert_eq!(c.accepted, 2);
    }

    #[test]
    fn tampering_any_byte_is_caught() {
        let (mut a, mut b) = pair(3);
        let good = a.seal(2, &samples()[1]).unwrap();
        for i in 0..good.len() {
            let mut d = good.clone();
            d[i] ^= 0x01;
            assert!(b.open(&d, local()).is_err(), "byte {i}");
        }
        assert!(b.open(&good, local()).is_ok());
    }

    #[test]
    fn window_slides() {
        let mut w = ReplayWindow::default();
        assert!(w.accept(5));
        assert!(!w.accept(5));
        assert!(w.accept(3));
        assert!(w.accept(4));
        assert!(!w.accept(3));
        assert!(w.accept(100));
        assert!(w.accept(6));
        assert!(!w.accept(6));
        assert!(w.accept(100 + WINDOW - 1));
        assert!(!w.accept(99)); // fell out of the window
        assert!(w.accept(101));
        assert!(!w.accept(100));
        assert!(w.accept(100 + 5 * WINDOW));
        assert!(!w.accept(100 + WINDOW - 1));
        // Against a model: a set of accepted numbers within the window.
        let mut rng = Rng(77);
        let mut w = ReplayWindow::default();
        let mut seen = std::collections::BTreeSet::new();
        let mut top = 0u64;
        for _ in 0..50_000 {
            let seq = 1 + match rng.below(3) {
                0 => top + rng.below(200) as u64,
                _ => top.saturating_sub(rng.below(1200) as u64),
            };
            let fresh = !seen.contains(&seq) && seq + WINDOW > top.max(seq);
            assert_eq!(w.accept(seq), fresh, "seq {seq} top {top}");
            if fresh {
                seen.insert(seq);
                top = top.max(seq);
            }
        }
    }

    #[test]
    fn hostile_datagrams_never_panic() {
        let (mut a, mut b) = pair(3);
        let seeds: Vec<Vec<u8>> = samples().iter().map(|s| a.seal(2, s).unwrap()).collect();
        let mut rng = Rng(5);
        for _ in 0..50_000 {
            let mut d = seeds[rng.below(seeds.len())].clone();
            let at = rng.below(d.len());
            d[at] ^= 1 << rng.below(8);
            if rng.below(2) == 0 {
                d.truncate(rng.below(d.len() + 1));
            }
            assert!(b.open(&d, local()).is_err());
        }
    }
}
