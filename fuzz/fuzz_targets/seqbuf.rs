// SPDX-License-Identifier: GPL-2.0

//! Fuzzes one direction's retained data (`seqbuf.rs`, issue 13's extents) against a model:
//! the first byte written at each stream offset. The input is a sequence of
//! operations (an op byte, then its arguments): writes of held frames (views when at least
//! 4 KiB is missing) or of copied payloads, in any order, overlapping, retransmitted with
//! other bytes; releases below a point; reads. After every operation the buffer's present
//! intervals are the model's above the base, every present byte reads back as the model's
//! first copy, and the budget is charged exactly the extents' memory and the slot table.
//! At the end every chunk, view and frame reference is returned.

#![no_main]

use libfuzzer_sys::fuzz_target;
use permtcp_logic::seqbuf::{Budget, SeqBuf, WriteError};
use std::sync::Arc;

#[path = "../../permtcp/logic/tests/common/mod.rs"]
mod common;

use common::{Heap, HeldFrame, A};

/// Stream offsets are relative to this first sequence number (near the wrap on purpose).
const ISN: u32 = 0xffff_0000;
/// The model's span: writes start within it.
const SPAN: u32 = 1 << 16;
/// Bytes one write carries at most: held (GRO-sized, views from 4 KiB) and copied.
const HELD_MAX: u32 = 16384;
const COPY_MAX: u32 = 2048;
/// The model: the first byte written at each offset, `None` where none is present.
type Model = Vec<Option<u8>>;

/// The stream's byte at `off`, or a forged one (a retransmission that disagrees).
fn byte(off: u32, forged: bool) -> u8 {
    let b = (off.wrapping_mul(2_654_435_761) >> 13) as u8;
    if forged {
        !b
    } else {
        b
    }
}

/// Takes `n` bytes of the input (zeroes past its end).
fn take<const N: usize>(rest: &mut &[u8]) -> [u8; N] {
    let mut out = [0u8; N];
    let n = rest.len().min(N);
    out[..n].copy_from_slice(&rest[..n]);
    *rest = &rest[n..];
    out
}

/// The model's present intervals, as stream offsets.
fn intervals(model: &Model) -> Vec<(u32, u32)> {
    let mut out: Vec<(u32, u32)> = Vec::new();
    for (o, _) in model.iter().enumerate().filter(|(_, v)| v.is_some()) {
        let o = o as u32;
        match out.last_mut() {
            Some(last) if last.1 == o => last.1 += 1,
            _ => out.push((o, o + 1)),
        }
    }
    out
}

fuzz_target!(|data: &[u8]| {
    let mut alloc = Budget::new(Heap::default(), 2 << 20);
    let mut b: SeqBuf<A> = SeqBuf::new(ISN);
    let mut model: Model = vec![None; (SPAN + HELD_MAX) as usize];
    let mut frames: Vec<Arc<Vec<u8>>> = Vec::new();
    let mut rest = data;
    while !rest.is_empty() {
        let [op] = take::<1>(&mut rest);
        let [a0, a1, a2, l0, l1] = take::<5>(&mut rest);
        let off = u32::from_le_bytes([a0, a1, a2, 0]) % SPAN;
        let len = u32::from(u16::from_le_bytes([l0, l1]));
        let base_off = b.base().wrapping_sub(ISN);
        match op % 4 {
            // A write: held (a frame that may be viewed) or copied, true or forged bytes,
            // behind a header of 0-63 bytes.
            0 | 1 => {
                let held = op & 0x10 != 0;
                let forged = op & 0x20 != 0;
                let hdr = u32::from(op >> 6) * 20;
                let len = len % if held { HELD_MAX } else { COPY_MAX };
                let mut bytes = vec![0xa5u8; hdr as usize];
                bytes.extend((0..len).map(|i| byte(off + i, forged)));
                let bytes = Arc::new(bytes);
                let frame = HeldFrame {
                    truesize: bytes.len() as u32 + 768,
                    payload_len: bytes.len() as u32,
                    bytes: bytes.clone(),
                };
                let seq = ISN.wrapping_add(off);
                let r = if held {
                    b.write(&mut alloc, seq, len, &frame, hdr)
                } else {
                    b.write(&mut alloc, seq, len, &frame.bytes[..], hdr)
                };
                if r.is_ok() {
                    // Bytes at or above the base, not present yet, take the written value.
                    for o in off.max(base_off)..off + len {
                        model[o as usize].get_or_insert(byte(o, forged));
                    }
                } else {
                    assert!(
                        matches!(r, Err(WriteError::NoMemory | WriteError::Fragmented)),
                        "{r:?}"
                    );
                    // A failed write keeps a prefix of the missing bytes: learn what it
                    // kept from the buffer (checked against the stream below).
                    for (s, e) in b.ranges() {
                        let (s, e) = (s.wrapping_sub(ISN), e.wrapping_sub(ISN));
                        for o in s..e {
                            model[o as usize].get_or_insert(byte(o, forged));
                        }
                    }
                }
                frames.push(bytes);
            }
            // The window moves: everything below `off` may go.
            2 => {
                b.release_below(&mut alloc, ISN.wrapping_add(off));
                let kept_from = b.base().wrapping_sub(ISN);
                assert!(kept_from <= off.max(base_off), "the base passed the point");
                let below = (kept_from as usize).min(model.len());
                model[..below].fill(None);
            }
            // A read of `len` bytes from `off`: the model's bytes, or false when one is
            // missing.
            _ => {
                let len = len % 9000;
                let mut out = vec![0u8; len as usize];
                let all =
                    (off..off + len).all(|o| model.get(o as usize).is_some_and(|v| v.is_some()));
                let ok = b.read(ISN.wrapping_add(off), &mut out);
                assert_eq!(
                    ok,
                    all && (len == 0 || off >= base_off),
                    "read at {off}+{len}"
                );
                if ok {
                    for (i, v) in out.iter().enumerate() {
                        assert_eq!(
                            Some(*v),
                            model[off as usize + i],
                            "byte {}",
                            off as usize + i
                        );
                    }
                }
            }
        }
        // The buffer's present intervals are the model's, and read back as its bytes.
        let base_off = b.base().wrapping_sub(ISN);
        let want = intervals(&model);
        assert!(
            want.first().is_none_or(|w| w.0 >= base_off),
            "a byte below the base"
        );
        let have: Vec<(u32, u32)> = b
            .ranges()
            .map(|(s, e)| (s.wrapping_sub(ISN), e.wrapping_sub(ISN)))
            .collect();
        assert_eq!(have, want, "present intervals");
        for &(s, e) in &have {
            let mut out = vec![0u8; (e - s) as usize];
            assert!(b.read(ISN.wrapping_add(s), &mut out));
            for (i, v) in out.iter().enumerate() {
                assert_eq!(Some(*v), model[s as usize + i], "byte {}", s as usize + i);
            }
        }
        assert_eq!(
            alloc.used,
            b.chunk_bytes() + b.slot_table_bytes(),
            "every byte charged is an extent's or the table's"
        );
        assert_eq!(alloc.inner.views, b.views());
        assert_eq!(alloc.inner.live, b.chunks());
    }
    b.clear(&mut alloc);
    assert_eq!((alloc.inner.live, alloc.inner.views, alloc.used), (0, 0, 0));
    for f in &frames {
        assert_eq!(Arc::strong_count(f), 1, "a frame reference left");
    }
});
