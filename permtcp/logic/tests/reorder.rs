// SPDX-License-Identifier: GPL-2.0

//! Host tests of the tracker (`track.rs`) when the two directions of a connection reach the
//! snooping peer in another order than the ends sent and received them: on a bridge, the
//! owner's and the client's frames come in through different ports (issue #11). Each end's
//! own frames still arrive in the order it sent them.
//!
//! A segment may begin up to one of the receiver's windows past the edge the peer saw the
//! receiver allow (the window update that allowed it may come later); an acknowledgement of
//! bytes not seen yet, within the edge the acknowledging end allowed, keeps the segment
//! (its data is stored) and holds the connection not ready until the bytes show up, and so
//! does one up to a window past it (the update that moved the edge may have been lost on
//! the peer's port); further than that it is rejected as forged.

mod common;

use common::*;
use permtcp_logic::packet::flags::*;
use permtcp_logic::snoopnl::{reason_code, reason_name};
use permtcp_logic::track::{NotReady, Side, State};
use permtcp_logic::uapi::not_ready;

/// The frame `from` sends next with `fl`, `win` and `data`, built now and fed later: the wire
/// model moves on as if the other end got it at once (as [`Wire::data`] does).
fn later(w: &mut Wire, from: Side, fl: u8, win: u16, data: &[u8]) -> Vec<u8> {
    let i = from as usize;
    let (s, d) = w.ends(from);
    let opts = Opts {
        ts: Some((w.now as u32 * 10, 1)),
        ..Default::default()
    };
    let pkt = frame(s, d, w.nxt[i], w.rcv[i], fl, win, &opts, data);
    let len = data.len() as u32 + u32::from(fl & FIN != 0);
    w.nxt[i] = w.nxt[i].wrapping_add(len);
    w.rcv[1 - i] = w.nxt[i];
    w.sent[i].extend_from_slice(data);
    pkt
}

fn invalid(w: &mut Wire) -> u32 {
    let k = w.key();
    w.map.get_mut_conn(&k).invalid
}

#[test]
fn owner_data_past_the_known_edge_before_the_window_update_is_kept() {
    let mut w = Wire::new(false);
    w.handshake(1000, 5000, 7, 7);
    // The owner fills the client's window (502 << 7 bytes), all within the edge seen.
    let win = 502usize << 7;
    for part in bytes(win, 1).chunks(1448) {
        w.data(Side::Owner, part);
    }
    // The client acknowledges it all, opening a window as large again; the owner sends the
    // next window at once. The peer sees the owner's frames before the client's ACK.
    let update = later(&mut w, Side::Client, ACK, 502, &[]);
    let next = bytes(win, 2);
    let frames: Vec<_> = next
        .chunks(1448)
        .map(|p| later(&mut w, Side::Owner, ACK | PSH, 502, p))
        .collect();
    for f in &frames {
        w.feed(f);
    }
    assert_eq!(invalid(&mut w), 0, "the owner's data is genuine");
    let k = w.key();
    assert_eq!(w.map.get_mut_conn(&k).side(Side::Owner).nxt, w.nxt[0]);
    assert_eq!(w.retained(Side::Owner, win), next);
    assert_eq!(w.ready(), Ok(()));
    w.feed(&update);
    w.ack(Side::Client, 502);
    w.assert_mirror();
    assert_eq!(invalid(&mut w), 0);
}

#[test]
fn client_data_acknowledging_owner_data_not_seen_yet_is_kept_and_waits_for_it() {
    let mut w = quiet_connection();
    // The owner's reply is on its way; the client's next request, which acknowledges the
    // reply, reaches the peer first.
    let reply = later(&mut w, Side::Owner, ACK | PSH, 502, &bytes(3000, 3));
    let request = bytes(500, 4);
    w.data(Side::Client, &request);
    assert_eq!(invalid(&mut w), 0);
    assert_eq!(
        w.retained(Side::Client, 500),
        request,
        "the request is kept"
    );
    assert_eq!(w.ready(), Err(NotReady::AckAhead(Side::Owner)));
    let k = w.key();
    let o = w.map.get_mut_conn(&k).side(Side::Owner);
    assert_eq!(o.una, w.nxt[0] - 3000, "taken only as far as what was seen");
    assert_eq!(o.ahead(), Some(w.nxt[0]));
    // The reply comes: ready, the acknowledgement taken in full.
    w.feed(&reply);
    assert_eq!(w.ready(), Ok(()));
    let o = w.map.get_mut_conn(&k).side(Side::Owner);
    assert_eq!((o.una, o.ahead()), (w.nxt[0], None));
    w.ack(Side::Owner, 502);
    w.assert_mirror();
}

#[test]
fn an_acknowledgement_past_the_edge_the_client_allowed_is_rejected() {
    let mut w = quiet_connection();
    // The client allowed the owner up to its acknowledgement plus window (and a FIN), and
    // may have moved that edge by up to its largest window in an update the peer lost: an
    // acknowledgement past that acknowledges what the owner cannot have sent.
    let slack = 502 << 7;
    let edge = w.nxt[0] + (502 << 7) + slack;
    for ack in [edge + 2, edge + 100_000, edge.wrapping_add(1 << 30)] {
        w.send_raw(
            Side::Client,
            w.nxt[1],
            ack,
            ACK | PSH,
            502,
            &Opts::default(),
            &bytes(100, 5),
        );
        w.send_raw(Side::Client, w.nxt[1], ack, ACK, 502, &Opts::default(), &[]);
    }
    assert_eq!(invalid(&mut w), 6);
    w.assert_mirror();
    let k = w.key();
    assert_eq!(w.map.get_mut_conn(&k).side(Side::Owner).ahead(), None);
    // The same from the owner: it allowed the client up to its own edge (here its SYN-ACK's
    // unscaled window went furthest), plus its largest window.
    let edge = w.map.get_mut_conn(&k).side(Side::Client).right;
    assert_eq!(edge, 1001 + 65160);
    let owner_slack = w.map.get_mut_conn(&k).side(Side::Owner).max_win;
    w.send_raw(
        Side::Owner,
        w.nxt[0],
        edge + owner_slack + 2,
        ACK,
        502,
        &Opts::default(),
        &[],
    );
    assert_eq!(invalid(&mut w), 7);
    w.assert_mirror();
    // Up to a window past the edge (and one more, for a FIN) it may be genuine: kept, not
    // ready.
    let owner_edge = w.map.get_mut_conn(&k).side(Side::Owner).right;
    w.send_raw(
        Side::Owner,
        w.nxt[0],
        edge + owner_slack,
        ACK,
        502,
        &Opts::default(),
        &[],
    );
    assert_eq!(w.ready(), Err(NotReady::AckAhead(Side::Client)));
    let ack = owner_edge + slack + 1;
    w.send_raw(Side::Client, w.nxt[1], ack, ACK, 502, &Opts::default(), &[]);
    assert_eq!(w.ready(), Err(NotReady::AckAhead(Side::Owner)));
    assert_eq!(invalid(&mut w), 7);
    let c = w.map.get_mut_conn(&k);
    assert_eq!(c.side(Side::Owner).ahead(), Some(owner_edge + slack + 1));
    assert_eq!(c.side(Side::Client).ahead(), Some(edge + owner_slack));
}

#[test]
fn an_acknowledgement_past_an_edge_moved_in_a_lost_update_is_not_ready() {
    // snoop_loss.sh once saw this (2026-12-01): the peer's port lost the client's window
    // update and the owner's data it let through, then passed the client's acknowledgement
    // of that data. Rejected as past the edge, it left a mirror behind the client that
    // called itself ready: a takeover would have sent new bytes at sequence numbers the
    // client had already acknowledged.
    let mut w = quiet_connection();
    let win = 502usize << 7;
    // The owner fills the client's window; the peer sees it.
    for part in bytes(win, 1).chunks(1448) {
        w.data(Side::Owner, part);
    }
    // Lost on the peer's port: the client's acknowledgement, which opens a window as large
    // again, and the owner's next 40000 bytes, which that window let through.
    let _update = later(&mut w, Side::Client, ACK, 502, &[]);
    let _lost: Vec<_> = bytes(40_000, 2)
        .chunks(1448)
        .map(|p| later(&mut w, Side::Owner, ACK | PSH, 502, p))
        .collect();
    // The client's acknowledgement of those bytes reaches the peer: past the edge it saw.
    let k = w.key();
    let edge = w.map.get_mut_conn(&k).side(Side::Owner).right;
    assert!(
        seq_after(w.nxt[0], edge.wrapping_add(1)),
        "past the edge seen"
    );
    w.ack(Side::Client, 502);
    assert_eq!(invalid(&mut w), 0, "not taken for a forgery");
    assert_eq!(w.ready(), Err(NotReady::AckAhead(Side::Owner)));
    let o = w.map.get_mut_conn(&k).side(Side::Owner);
    assert_eq!(o.ahead(), Some(w.nxt[0]));
    // The owner's next segment shows the bytes were sent and missed.
    w.ack(Side::Owner, 502);
    assert_eq!(w.ready(), Err(NotReady::AckedUnseen(Side::Owner)));
}

fn seq_after(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) > 0
}

#[test]
fn an_acknowledgement_ahead_whose_data_never_comes_keeps_the_connection_not_ready() {
    let mut w = quiet_connection();
    // 2000 owner bytes the peer never gets (lost on its port), acknowledged by the client.
    let _lost = later(&mut w, Side::Owner, ACK | PSH, 502, &bytes(2000, 6));
    w.ack(Side::Client, 502);
    assert_eq!(w.ready(), Err(NotReady::AckAhead(Side::Owner)));
    // The client goes on (its data is kept), the owner sends nothing the peer sees: a
    // takeover now must not rebuild a socket behind the client's acknowledgement.
    for n in 0..5 {
        w.data(Side::Client, &bytes(300, n));
        w.ack(Side::Client, 502);
        assert_eq!(w.ready(), Err(NotReady::AckAhead(Side::Owner)));
    }
    assert_eq!(invalid(&mut w), 0);
    let k = w.key();
    let c = w.map.get_mut_conn(&k);
    assert_eq!(c.side(Side::Client).nxt, w.nxt[1]);
    let o = c.side(Side::Owner);
    assert_eq!((o.nxt, o.una), (w.nxt[0] - 2000, w.nxt[0] - 2000));
    // Were nobody able to take it over, its reset must carry the client's next expected
    // sequence number (RFC 5961): past what the mirror saw, at what the client acknowledged.
    let seqs = o.reset_seqs();
    assert!(seqs.contains(&w.nxt[0]), "{seqs:?} lacks {}", w.nxt[0]);
    assert!(seqs.contains(&o.nxt));
    // Reported as such over netlink and by permctl.
    let code = reason_code(c.readiness().unwrap_err());
    assert_eq!(code, (not_ready::ACK_AHEAD, 0));
    assert_eq!(reason_name(code.0), "acknowledged data not seen yet");
    // The owner's next segment shows the bytes were sent, and missed: acknowledged, never
    // seen.
    w.ack(Side::Owner, 502);
    assert_eq!(w.ready(), Err(NotReady::AckedUnseen(Side::Owner)));
}

#[test]
fn a_forged_acknowledgement_within_the_window_holds_readiness_until_the_owner_passes_it() {
    let mut w = quiet_connection();
    // A forger that guessed the client's sequence number acknowledges 1000 owner bytes not
    // yet sent: indistinguishable from bytes on their way, so not ready...
    w.send_raw(
        Side::Client,
        w.nxt[1],
        w.nxt[0] + 1000,
        ACK,
        502,
        &Opts::default(),
        &[],
    );
    assert_eq!(w.ready(), Err(NotReady::AckAhead(Side::Owner)));
    // ...until the owner's data passes it.
    w.data(Side::Owner, &bytes(600, 7));
    assert_eq!(w.ready(), Err(NotReady::AckAhead(Side::Owner)));
    w.data(Side::Owner, &bytes(600, 8));
    assert_eq!(w.ready(), Ok(()));
    w.ack(Side::Client, 502);
    w.assert_mirror();
}

#[test]
fn owner_fin_acknowledged_before_it_is_seen() {
    let mut w = quiet_connection();
    let fin = later(&mut w, Side::Owner, FIN | ACK, 502, &[]);
    w.ack(Side::Client, 502);
    assert_eq!(w.ready(), Err(NotReady::AckAhead(Side::Owner)));
    w.feed(&fin);
    assert_eq!(w.state(), State::FinSeen);
    assert_eq!(w.ready(), Ok(()));
    let k = w.key();
    assert_eq!(w.map.get_mut_conn(&k).side(Side::Owner).una, w.nxt[0]);
    w.send_raw(
        Side::Client,
        w.nxt[1],
        w.rcv[1],
        FIN | ACK,
        502,
        &Opts::default(),
        &[],
    );
    w.nxt[1] += 1;
    w.rcv[0] = w.nxt[1];
    w.ack(Side::Owner, 502);
    assert_eq!(w.state(), State::TimeWait);
    assert_eq!(invalid(&mut w), 0);
}

#[test]
fn a_retransmission_fills_in_acknowledged_bytes_the_peer_missed() {
    let mut w = quiet_connection();
    // The peer misses 1000 owner bytes; the owner's next segment shows the gap and the
    // client acknowledges both.
    let at = w.nxt[0];
    let missed = bytes(1000, 9);
    let _lost = later(&mut w, Side::Owner, ACK | PSH, 502, &missed);
    w.data(Side::Owner, &bytes(500, 10));
    w.ack(Side::Client, 502);
    assert_eq!(w.ready(), Err(NotReady::AckedUnseen(Side::Owner)));
    // The owner did not get that acknowledgement and sends the bytes again: the mirror
    // holds everything once more.
    w.send_raw(
        Side::Owner,
        at,
        w.rcv[0],
        ACK | PSH,
        502,
        &Opts::default(),
        &missed,
    );
    assert_eq!(w.ready(), Ok(()));
    let k = w.key();
    let mut out = vec![0u8; 1000];
    assert!(w.map.get_mut_conn(&k).half[0].data.read(at, &mut out));
    assert_eq!(out, missed);
    w.ack(Side::Client, 502);
    assert_eq!(w.ready(), Ok(()));
    let o = w.map.get_mut_conn(&k).side(Side::Owner);
    assert_eq!((o.nxt, o.una), (w.nxt[0], w.nxt[0]));
}

// ---------------------------------------------------------------------------------------
// Random conversations, reordered between the directions
// ---------------------------------------------------------------------------------------

/// One end of the model: the ends deliver to each other at once and in order.
#[derive(Default)]
struct End {
    nxt: u32,
    /// How far the other end allows it to send (largest acknowledgement plus window).
    edge: u32,
    /// What it has received: the acknowledgement it sends.
    rcv: u32,
    win: u16,
    tsval: u32,
    sent: Vec<u8>,
}

/// Largest segment, reorder bound (frames), smallest and largest window of the model: a
/// sender gets at most `REORDER` segments past the edge the peer saw before it sees the
/// update, less than the smallest window (the SYNs' windows are the smallest one).
const SEG: u32 = 400;
const REORDER: u32 = 8;
const WMIN: u32 = 400;
const WMAX: u32 = 1600;
const WSYN: u16 = 4000;

/// A frame as sent: who sent it, the frame, its sequence number and its acknowledgement.
struct Sent {
    from: Side,
    pkt: Vec<u8>,
    seq: u32,
    ack: u32,
}

/// A random two-way exchange of `steps` segments after a handshake, each end sending within
/// the window the other allowed, then both ends acknowledging everything (and with `close`
/// both FINs, acknowledged). Returns the handshake's frames, the rest, and the ends.
fn conversation(rng: &mut Rng, steps: u32, close: bool) -> (Vec<Sent>, Vec<Sent>, [End; 2]) {
    let w = Wire::new(false);
    let (owner, client) = (w.owner, w.client);
    let isn = [rng.next() as u32, rng.next() as u32];
    let mut e: [End; 2] = Default::default();
    for (i, end) in e.iter_mut().enumerate() {
        end.nxt = isn[i].wrapping_add(1);
        end.rcv = isn[1 - i].wrapping_add(1);
        end.edge = isn[i].wrapping_add(1).wrapping_add(u32::from(WSYN));
        end.win = WSYN;
        end.tsval = 100 + rng.below32(1000);
    }
    let syn = |ts: u32| Opts {
        mss: Some(1460),
        wscale: Some(0),
        sack_perm: true,
        ts: Some((ts, 0)),
        sack: vec![],
    };
    let handshake = vec![
        Sent {
            from: Side::Client,
            pkt: frame(client, owner, isn[1], 0, SYN, WSYN, &syn(e[1].tsval), &[]),
            seq: isn[1],
            ack: 0,
        },
        Sent {
            from: Side::Owner,
            pkt: frame(
                owner,
                client,
                isn[0],
                e[0].rcv,
                SYN | ACK,
                WSYN,
                &syn(e[0].tsval),
                &[],
            ),
            seq: isn[0],
            ack: e[0].rcv,
        },
        Sent {
            from: Side::Client,
            pkt: frame(
                client,
                owner,
                e[1].nxt,
                e[1].rcv,
                ACK,
                WSYN,
                &Opts {
                    ts: Some((e[1].tsval + 1, e[0].tsval)),
                    ..Default::default()
                },
                &[],
            ),
            seq: e[1].nxt,
            ack: e[1].rcv,
        },
    ];
    e[1].tsval += 1;
    let mut frames = Vec::new();
    // Sends a segment from end `i` (its window field `win`), delivered to the other at once.
    let mut send = |e: &mut [End; 2], i: usize, fl: u8, data: &[u8]| {
        let (s, d) = if i == 0 {
            (owner, client)
        } else {
            (client, owner)
        };
        e[i].tsval += 1;
        let opts = Opts {
            ts: Some((e[i].tsval, e[1 - i].tsval)),
            ..Default::default()
        };
        let seq = e[i].nxt;
        let pkt = frame(s, d, seq, e[i].rcv, fl, e[i].win, &opts, data);
        let len = data.len() as u32 + u32::from(fl & FIN != 0);
        e[i].nxt = e[i].nxt.wrapping_add(len);
        e[i].sent.extend_from_slice(data);
        e[1 - i].rcv = e[i].nxt;
        let edge = e[i].rcv.wrapping_add(u32::from(e[i].win));
        if (edge.wrapping_sub(e[1 - i].edge) as i32) > 0 {
            e[1 - i].edge = edge;
        }
        frames.push(Sent {
            from: if i == 0 { Side::Owner } else { Side::Client },
            pkt,
            seq,
            ack: e[i].rcv,
        });
    };
    // How often each end sends (in tenths of the steps: the owner's share) and how often it
    // sends data rather than a bare window update (in tenths): both alike, or one sending
    // in bulk and the other mostly acknowledging.
    let (turn, eager) = match rng.below32(3) {
        0 => (5, [6, 6]),
        1 => (7, [9, 2]),
        _ => (3, [2, 9]),
    };
    for _ in 0..steps {
        let i = usize::from(rng.below32(10) >= turn);
        let room = e[i].edge.wrapping_sub(e[i].nxt);
        if rng.below32(10) < eager[i] && (room as i32) > 0 {
            // Mostly full segments, as in a bulk transfer.
            let len = if rng.below32(4) == 0 {
                1 + rng.below32(SEG)
            } else {
                SEG
            };
            let len = len.min(room);
            let data: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
            let psh = if rng.below32(2) == 0 { PSH } else { 0 };
            send(&mut e, i, ACK | psh, &data);
        } else {
            e[i].win = (WMIN + rng.below32(WMAX - WMIN)) as u16;
            send(&mut e, i, ACK, &[]);
        }
    }
    send(&mut e, 0, ACK, &[]);
    send(&mut e, 1, ACK, &[]);
    if close {
        send(&mut e, 0, FIN | ACK, &[]);
        send(&mut e, 1, ACK, &[]);
        send(&mut e, 1, FIN | ACK, &[]);
        send(&mut e, 0, ACK, &[]);
    }
    (handshake, frames, e)
}

/// The order the peer sees `frames` in: each end's frames in the order sent, each frame at
/// most `bound` frames later than sent relative to the other end's.
fn reorder(rng: &mut Rng, frames: Vec<Sent>, bound: u32) -> Vec<Sent> {
    let mut last = [0u64; 2];
    let mut keyed: Vec<(u64, usize, Sent)> = frames
        .into_iter()
        .enumerate()
        .map(|(n, f)| {
            let s = f.from as usize;
            let key = (n as u64 + u64::from(rng.below32(bound + 1))).max(last[s]);
            last[s] = key;
            (key, n, f)
        })
        .collect();
    keyed.sort_by_key(|(key, n, _)| (*key, *n));
    keyed.into_iter().map(|(_, _, f)| f).collect()
}

#[test]
fn random_conversations_reordered_between_the_directions_end_as_sent() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let (mut ahead_seen, mut past_edge) = (0, 0);
    for case in 0..1000 {
        let close = case % 3 == 0;
        let steps = 20 + rng.below32(200);
        let (handshake, frames, e) = conversation(&mut rng, steps, close);
        let bound = rng.below32(REORDER + 1);
        let frames = reorder(&mut rng, frames, bound);
        let mut w = Wire::new(false);
        for f in &handshake {
            w.feed(&f.pkt);
        }
        let k = w.key();
        // The furthest acknowledgement each end sent that the peer has seen.
        let mut acked: [Option<u32>; 2] = [None; 2];
        for (n, f) in frames.iter().enumerate() {
            let right = w.map.get_mut_conn(&k).side(f.from).right;
            if (f.seq.wrapping_sub(right) as i32) > 0 {
                past_edge += 1;
            }
            w.feed(&f.pkt);
            let c = w.map.get_mut_conn(&k);
            assert_eq!(c.invalid, 0, "case {case}: frame {n} rejected");
            acked[f.from as usize] = Some(f.ack);
            // Ready means the mirror has everything either end acknowledged: a socket rebuilt
            // from it is never behind the other end.
            match c.readiness() {
                Ok(()) => {
                    for side in [Side::Owner, Side::Client] {
                        if let Some(a) = acked[side.other() as usize] {
                            let nxt = c.side(side).nxt;
                            assert!(
                                (nxt.wrapping_sub(a) as i32) >= 0,
                                "case {case}: frame {n}: ready, {side:?} seen to {nxt}, \
                                 acknowledged to {a}"
                            );
                        }
                    }
                }
                Err(NotReady::AckAhead(_)) => ahead_seen += 1,
                Err(r) if close => assert_eq!(r, NotReady::Closed, "case {case}: frame {n}"),
                Err(r) => panic!("case {case}: frame {n}: not ready: {r:?}"),
            }
        }
        let c = w.map.get_mut_conn(&k);
        for (side, i) in [(Side::Owner, 0), (Side::Client, 1)] {
            let h = c.side(side);
            assert_eq!(h.nxt, e[i].nxt, "case {case}: {side:?} snd_nxt");
            assert_eq!(h.una, e[1 - i].rcv, "case {case}: {side:?} snd_una");
            assert_eq!(
                (h.ahead(), h.unseen()),
                (None, None),
                "case {case}: {side:?}"
            );
            // The bytes the peer keeps are the ones sent.
            let n = e[i].sent.len().min(WSYN as usize);
            let end = e[i].nxt.wrapping_sub(u32::from(close));
            let mut out = vec![0u8; n];
            assert!(
                h.data.read(end.wrapping_sub(n as u32), &mut out),
                "case {case}: {side:?}: bytes missing"
            );
            assert_eq!(
                out,
                e[i].sent[e[i].sent.len() - n..],
                "case {case}: {side:?}"
            );
        }
        if close {
            assert_eq!(c.state, State::TimeWait, "case {case}");
        } else {
            assert_eq!(c.readiness(), Ok(()), "case {case}");
        }
    }
    // The reordering did run acknowledgements ahead of the data.
    assert!(
        ahead_seen > 100,
        "only {ahead_seen} frames left a connection ahead"
    );
    assert!(
        past_edge > 100,
        "only {past_edge} frames began past the edge seen"
    );
    println!("{ahead_seen} frames left a connection ahead, {past_edge} began past the edge");
}
