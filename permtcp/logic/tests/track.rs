// SPDX-License-Identifier: GPL-2.0

//! Host tests of the connection tracker (`track.rs`): the handshake and its options, sequence,
//! acknowledgement and timestamp tracking, teardown and TIME-WAIT, and readiness, on segments
//! built byte by byte and fed through a snooper.

mod common;

use common::*;
use permtcp_logic::packet::flags::*;
use permtcp_logic::track::{
    entry_bytes, NotReady, Side, State, TIME_WAIT_MARGIN_MS, TIME_WAIT_MS, UNSYNCED_WINDOW,
};

#[test]
fn handshake_records_options_and_establishes_on_final_ack() {
    let mut w = Wire::new(false);
    w.client_syn();
    assert_eq!(w.state(), State::SynSent);
    w.send_raw(
        Side::Owner,
        5000,
        1001,
        SYN | ACK,
        65160,
        &Opts::syn_full(1400, 9, 200),
        &[],
    );
    assert_eq!(w.state(), State::SynReceived);
    assert_eq!(w.ready(), Err(NotReady::Handshake));
    w.send_raw(Side::Client, 1001, 5001, ACK, 502, &Opts::default(), &[]);
    assert_eq!(w.state(), State::Established);
    assert_eq!(w.ready(), Ok(()));
    let k = w.key();
    let c = w.map.get_mut_conn(&k);
    assert!(c.ws_ok && c.sack_ok && c.ts_ok);
    assert_eq!(c.side(Side::Client).syn_opts.mss(), Some(1460));
    assert_eq!(c.side(Side::Owner).syn_opts.mss(), Some(1400));
    assert_eq!((c.wscale(Side::Client), c.wscale(Side::Owner)), (7, 9));
    // The final ACK's window is scaled by the client's shift.
    assert_eq!(c.side(Side::Client).win, 502 << 7);
    assert_eq!(c.side(Side::Owner).isn, 5000);
    assert_eq!(c.side(Side::Owner).una, 5001);
    assert_eq!(w.snoop.counters.conns_synced, 1);
}

#[test]
fn options_only_when_both_syns_carry_them() {
    let mut w = Wire::new(false);
    w.ts = false;
    w.send_raw(
        Side::Client,
        1,
        0,
        SYN,
        64240,
        &Opts {
            mss: Some(1460),
            wscale: Some(7),
            ..Default::default()
        },
        &[],
    );
    w.send_raw(
        Side::Owner,
        9,
        2,
        SYN | ACK,
        65160,
        &Opts {
            mss: Some(1460),
            sack_perm: true,
            ..Default::default()
        },
        &[],
    );
    w.send_raw(Side::Client, 2, 10, ACK, 1000, &Opts::default(), &[]);
    let k = w.key();
    let c = w.map.get_mut_conn(&k);
    assert!(!c.ws_ok && !c.sack_ok && !c.ts_ok);
    assert_eq!(
        c.side(Side::Client).win,
        1000,
        "no scaling without both wscale options"
    );
}

#[test]
fn duplicate_syn_replaces_the_stored_one() {
    let mut w = Wire::new(false);
    w.client_syn();
    w.send_raw(
        Side::Client,
        7777,
        0,
        SYN,
        64240,
        &Opts::syn_full(1200, 6, 150),
        &[],
    );
    let k = w.key();
    let c = w.map.get_mut_conn(&k);
    assert_eq!(c.side(Side::Client).isn, 7777);
    assert_eq!(c.side(Side::Client).syn_opts.mss(), Some(1200));
    // A SYN-ACK for the old ISN is not the answer.
    w.send_raw(
        Side::Owner,
        5000,
        1001,
        SYN | ACK,
        65160,
        &Opts::syn_full(1400, 9, 200),
        &[],
    );
    assert_eq!(w.state(), State::SynSent);
    w.send_raw(
        Side::Owner,
        5000,
        7778,
        SYN | ACK,
        65160,
        &Opts::syn_full(1400, 9, 200),
        &[],
    );
    assert_eq!(w.state(), State::SynReceived);
}

#[test]
fn simultaneous_open_first_syn_decides() {
    let mut w = Wire::new(false);
    w.send_raw(
        Side::Owner,
        5000,
        0,
        SYN,
        65160,
        &Opts::syn_full(1400, 9, 200),
        &[],
    );
    w.client_syn();
    assert_eq!(w.state(), State::SimultaneousOpen);
    let k = w.key();
    assert_eq!(w.map.get_mut_conn(&k).opener, Side::Owner);
    w.send_raw(
        Side::Owner,
        5000,
        1001,
        SYN | ACK,
        65160,
        &Opts::syn_full(1400, 9, 200),
        &[],
    );
    assert_eq!(w.state(), State::SimultaneousOpen);
    w.send_raw(
        Side::Client,
        1000,
        5001,
        SYN | ACK,
        64240,
        &Opts::syn_full(1460, 7, 100),
        &[],
    );
    assert_eq!(w.state(), State::Established);
    assert_eq!(w.ready(), Ok(()));
}

#[test]
fn acknowledged_but_unseen_data_is_a_fault_while_in_the_window() {
    let mut w = Wire::new(false);
    w.handshake(1000, 5000, 7, 7);
    // The snooper misses 500 bytes of owner data; the owner's next segment shows the gap and
    // the client acknowledges everything.
    w.nxt[0] = 5501;
    w.data(Side::Owner, &bytes(100, 5));
    w.ack(Side::Client, 502);
    assert_eq!(w.ready(), Err(NotReady::AckedUnseen(Side::Owner)));
    w.data(Side::Owner, &bytes(100, 5));
    assert_eq!(
        w.ready(),
        Err(NotReady::AckedUnseen(Side::Owner)),
        "stays not ready"
    );
}

#[test]
fn sack_blocks_are_parsed_and_do_not_move_the_ack() {
    let mut w = Wire::new(false);
    w.handshake(1000, 5000, 7, 7);
    w.data(Side::Owner, &bytes(1000, 6));
    let opts = Opts {
        sack: vec![(7001, 8001), (9001, 9501)],
        ..Default::default()
    };
    let pkt = frame(w.client, w.owner, 1001, 5001, ACK, 502, &opts, &[]);
    let seg = permtcp_logic::packet::parse(&pkt, pkt.len()).unwrap();
    assert_eq!(seg.opts.sack_blocks, 2);
    w.feed(&pkt);
    let k = w.key();
    assert_eq!(w.map.get_mut_conn(&k).side(Side::Owner).una, 5001);
}

#[test]
fn sequence_numbers_wrap() {
    let mut w = Wire::new(false);
    let isn_o = u32::MAX - 1500;
    w.handshake(u32::MAX - 10, isn_o, 7, 7);
    let d = bytes(6000, 7);
    for part in d.chunks(1448) {
        w.data(Side::Owner, part);
    }
    w.ack(Side::Client, 502);
    assert_eq!(w.ready(), Ok(()));
    assert_eq!(w.retained(Side::Owner, 6000), d);
    let k = w.key();
    assert_eq!(
        w.map.get_mut_conn(&k).side(Side::Owner).una,
        isn_o.wrapping_add(6001)
    );
}

#[test]
fn fin_from_owner_first_then_time_wait_then_expiry() {
    time_wait_then_expiry(1000, true);
}

/// The table keeps times on the low 32 bits of the millisecond clock: a TIME-WAIT whose
/// deadline lies past the wrap (the clock at 2^32 - 30 s) ends on time all the same.
#[test]
fn time_wait_ends_on_time_across_the_32_bit_clock_wrap() {
    time_wait_then_expiry((1 << 32) - 30_000, false);
}

/// With `ts`, the segments carry timestamps; a clock started near the wrap needs none: the
/// harness derives TSvals from its clock, and PAWS would reject them against the SYNs' fixed
/// ones.
fn time_wait_then_expiry(start_ms: u64, ts: bool) {
    let mut w = Wire::new(false);
    w.now = start_ms;
    w.ts = ts;
    w.handshake(1000, 5000, 7, 7);
    w.data(Side::Client, b"GET /");
    w.send_raw(
        Side::Owner,
        w.nxt[0],
        w.rcv[0],
        FIN | ACK,
        502,
        &Opts::default(),
        &[],
    );
    assert_eq!(w.state(), State::FinSeen);
    w.send_raw(
        Side::Client,
        w.nxt[1],
        w.nxt[0] + 1,
        FIN | ACK,
        502,
        &Opts::default(),
        &[],
    );
    assert_eq!(w.state(), State::Closing);
    w.send_raw(
        Side::Owner,
        w.nxt[0] + 1,
        w.nxt[1] + 1,
        ACK,
        502,
        &Opts::default(),
        &[],
    );
    assert_eq!(w.state(), State::TimeWait);
    assert_eq!(w.ready(), Err(NotReady::Closed));
    let now = w.now;
    w.snoop.expire(&mut w.map, &mut w.alloc, now + TIME_WAIT_MS);
    assert_eq!(
        w.map.0.len(),
        1,
        "held a little longer than the standard time"
    );
    w.snoop.expire(
        &mut w.map,
        &mut w.alloc,
        now + TIME_WAIT_MS + TIME_WAIT_MARGIN_MS,
    );
    assert_eq!(w.map.0.len(), 0);
    assert_eq!(w.snoop.counters.expired, 1);
    assert_eq!(w.alloc.inner.live, 0, "chunks returned");
}

#[test]
fn half_closed_by_the_client_stays_ready() {
    let mut w = Wire::new(false);
    w.handshake(1000, 5000, 7, 7);
    w.data(Side::Client, b"upload done");
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
    w.data(Side::Owner, &bytes(5000, 10));
    assert_eq!(w.state(), State::FinSeen);
    assert_eq!(w.ready(), Ok(()));
    let k = w.key();
    assert_eq!(
        w.map.get_mut_conn(&k).side(Side::Client).fin(),
        Some(1001 + 11)
    );
}

#[test]
fn rst_in_window_removes_out_of_window_is_ignored() {
    let mut w = Wire::new(false);
    w.handshake(1000, 5000, 7, 7);
    w.send_raw(
        Side::Client,
        1001 + 10_000_000,
        0,
        RST,
        0,
        &Opts::default(),
        &[],
    );
    assert_eq!(w.state(), State::Established);
    assert_eq!(w.snoop.counters.invalid, 1);
    w.send_raw(Side::Client, 1001, 0, RST, 0, &Opts::default(), &[]);
    assert!(w.map.0.is_empty());
    assert_eq!(w.snoop.counters.resets, 1);
}

#[test]
fn refused_connection() {
    let mut w = Wire::new(false);
    w.client_syn();
    w.send_raw(Side::Owner, 0, 1001, RST | ACK, 0, &Opts::default(), &[]);
    assert!(w.map.0.is_empty());
}

#[test]
fn new_syn_ends_time_wait_at_once() {
    let mut w = Wire::new(false);
    w.handshake(1000, 5000, 7, 7);
    w.send_raw(
        Side::Client,
        1001,
        5001,
        FIN | ACK,
        502,
        &Opts::default(),
        &[],
    );
    w.send_raw(
        Side::Owner,
        5001,
        1002,
        FIN | ACK,
        502,
        &Opts::default(),
        &[],
    );
    w.send_raw(Side::Client, 1002, 5002, ACK, 502, &Opts::default(), &[]);
    assert_eq!(w.state(), State::TimeWait);
    w.send_raw(
        Side::Client,
        900_000,
        0,
        SYN,
        64240,
        &Opts::syn_full(1460, 7, 100),
        &[],
    );
    assert_eq!(w.state(), State::SynSent);
    assert_eq!(w.snoop.counters.tw_reused, 1);
    let k = w.key();
    assert_eq!(w.map.get_mut_conn(&k).side(Side::Client).isn, 900_000);
}

#[test]
fn connection_not_seen_from_syn() {
    let mut w = Wire::new(false);
    w.send_raw(
        Side::Owner,
        5000,
        1000,
        ACK,
        502,
        &Opts::default(),
        &bytes(100, 11),
    );
    assert_eq!(w.state(), State::Unsynced);
    assert_eq!(w.ready(), Err(NotReady::NotFromSyn));
    assert_eq!(w.snoop.counters.conns_unsynced, 1);
}

#[test]
fn timestamps_tracked_each_way() {
    let mut w = Wire::new(false);
    w.handshake(1000, 5000, 7, 7);
    w.send_raw(
        Side::Owner,
        5001,
        1001,
        ACK,
        502,
        &Opts {
            ts: Some((777_000, 555)),
            ..Default::default()
        },
        b"x",
    );
    // An older TSval (reordered segment) does not move it back.
    w.send_raw(
        Side::Owner,
        5001,
        1001,
        ACK,
        502,
        &Opts {
            ts: Some((776_000, 554)),
            ..Default::default()
        },
        b"x",
    );
    let k = w.key();
    assert_eq!(
        w.map.get_mut_conn(&k).side(Side::Owner).ts(),
        Some((777_000, 555))
    );
}

#[test]
fn acknowledged_unseen_bytes_stop_mattering_out_of_the_window() {
    let mut w = Wire::new(false);
    w.handshake(1000, 5000, 0, 0);
    // 500 owner bytes missed, found by the next segment, then acknowledged.
    w.nxt[0] = 5501;
    w.data(Side::Owner, &bytes(100, 5));
    w.ack(Side::Client, 8192);
    assert_eq!(w.ready(), Err(NotReady::AckedUnseen(Side::Owner)));
    // Much more data, acknowledged with 8 KiB windows: the unseen bytes leave the window.
    for part in bytes(200 * 1024, 16).chunks(1448) {
        w.data(Side::Owner, part);
        w.ack(Side::Client, 8192);
    }
    assert_eq!(w.ready(), Ok(()));
}

#[test]
fn forged_acks_of_unsent_data_change_nothing() {
    let mut w = quiet_connection();
    // A forger knowing only the 4-tuple acknowledges owner bytes never sent, past the edge
    // the client allowed the owner (its acknowledgement plus window, and a FIN) and the
    // window more an update lost on the peer's port may have moved it: the owner's stack
    // drops the whole segment (tcp_ack: "ack of unsent data"), data included. (Short of
    // that the bytes may be on their way to the peer, or lost to it: see tests/reorder.rs.)
    let edge = w.nxt[0] + 2 * (502 << 7);
    for ack in [edge + 2, w.nxt[0] + 200_000, w.nxt[0].wrapping_add(1 << 30)] {
        w.send_raw(Side::Client, w.nxt[1], ack, ACK, 502, &Opts::default(), &[]);
        w.send_raw(
            Side::Client,
            w.nxt[1],
            ack,
            ACK | PSH,
            502,
            &Opts::default(),
            &bytes(100, 3),
        );
    }
    // The same from the owner's side: acknowledging client bytes never sent.
    w.send_raw(
        Side::Owner,
        w.nxt[0],
        w.nxt[1] + 200_000,
        ACK,
        502,
        &Opts::default(),
        &[],
    );
    w.assert_mirror();
    assert_eq!(w.snoop.counters.invalid, 7);
}

#[test]
fn acks_older_than_a_window_drop_the_segment() {
    let mut w = quiet_connection();
    // RFC 5961 5.2: an ACK further behind snd_una than the largest window or all acknowledged
    // bytes (here before the ISN)
    // drops the segment with its data.
    w.send_raw(
        Side::Client,
        w.nxt[1],
        4000,
        ACK | PSH,
        502,
        &Opts::default(),
        &bytes(100, 4),
    );
    w.assert_mirror();
    // An old but recent ACK is ignored as an acknowledgement; the data is taken.
    w.send_raw(
        Side::Client,
        w.nxt[1],
        5001,
        ACK | PSH,
        502,
        &Opts::default(),
        &bytes(100, 4),
    );
    let k = w.key();
    let c = w.map.get_mut_conn(&k);
    assert_eq!(c.side(Side::Client).nxt, w.nxt[1] + 100);
    assert_eq!(c.side(Side::Owner).una, w.nxt[0]);
}

#[test]
fn rst_must_hit_the_next_expected_sequence_number_exactly() {
    let mut w = quiet_connection();
    // RFC 5961 3.2: in the window but not at rcv_nxt, the owner's stack answers with a
    // challenge ACK and keeps the connection.
    for off in [1u32, 2, 1000, 60_000] {
        w.send_raw(
            Side::Client,
            w.nxt[1] + off,
            0,
            RST,
            0,
            &Opts::default(),
            &[],
        );
        w.send_raw(
            Side::Client,
            w.nxt[1] + off,
            w.nxt[0],
            RST | ACK,
            0,
            &Opts::default(),
            &[],
        );
    }
    // Behind it (already acknowledged) is no better.
    w.send_raw(Side::Client, w.nxt[1] - 1, 0, RST, 0, &Opts::default(), &[]);
    // Nor an owner reset anywhere but at the owner's snd_nxt.
    w.send_raw(Side::Owner, w.nxt[0] + 10, 0, RST, 0, &Opts::default(), &[]);
    assert_eq!(w.state(), State::Established);
    w.assert_mirror();
    w.send_raw(Side::Client, w.nxt[1], 0, RST, 0, &Opts::default(), &[]);
    assert!(w.map.0.is_empty(), "an exact reset ends it");
    assert_eq!(w.snoop.counters.resets, 1);
}

#[test]
fn owner_reset_at_its_next_sequence_number_ends_the_connection() {
    let mut w = quiet_connection();
    w.send_raw(
        Side::Owner,
        w.nxt[0],
        w.nxt[1],
        RST | ACK,
        0,
        &Opts::default(),
        &[],
    );
    assert!(w.map.0.is_empty());
}

#[test]
fn segments_outside_the_receive_window_change_nothing() {
    let mut w = quiet_connection();
    // A pure ACK or data far beyond the client's window (owner's rcv_nxt + its window).
    for off in [200_000u32, 10_000_000, 1 << 30] {
        w.send_raw(
            Side::Client,
            w.nxt[1] + off,
            w.nxt[0],
            ACK,
            502,
            &Opts::default(),
            &[],
        );
        w.send_raw(
            Side::Client,
            w.nxt[1] + off,
            w.nxt[0],
            ACK | PSH,
            502,
            &Opts::default(),
            &bytes(10, 5),
        );
        w.send_raw(
            Side::Owner,
            w.nxt[0] + off,
            w.nxt[1],
            ACK,
            502,
            &Opts::default(),
            &[],
        );
    }
    // Data wholly before the owner's last acknowledgement (rcv_wup) is dropped too, with
    // the window it carries.
    w.send_raw(
        Side::Client,
        w.nxt[1] - 200,
        w.nxt[0],
        ACK | PSH,
        7,
        &Opts::default(),
        &bytes(100, 6),
    );
    w.assert_mirror();
    let k = w.key();
    assert_eq!(w.map.get_mut_conn(&k).side(Side::Client).win, 502 << 7);
}

#[test]
fn segments_without_ack_after_the_handshake_are_dropped() {
    let mut w = quiet_connection();
    w.send_raw(
        Side::Client,
        w.nxt[1],
        0,
        PSH,
        502,
        &Opts::default(),
        &bytes(50, 7),
    );
    w.assert_mirror();
}

#[test]
fn old_timestamps_are_rejected_as_the_owner_does() {
    let mut w = quiet_connection();
    // PAWS (RFC 7323): a TSval older than the last one seen.
    w.send_raw(
        Side::Client,
        w.nxt[1],
        w.nxt[0],
        ACK | PSH,
        502,
        &Opts {
            ts: Some((5, 1)),
            ..Default::default()
        },
        &bytes(50, 8),
    );
    w.assert_mirror();
}

#[test]
fn the_final_ack_must_acknowledge_exactly_the_syn_ack() {
    let mut w = Wire::new(false);
    w.client_syn();
    w.send_raw(
        Side::Owner,
        5000,
        1001,
        SYN | ACK,
        65160,
        &Opts::syn_full(1400, 7, 200),
        &[],
    );
    // tcp_check_req: an ACK other than ISN+1 does not complete the handshake.
    w.send_raw(Side::Client, 1001, 5002, ACK, 502, &Opts::default(), &[]);
    w.send_raw(Side::Client, 1001, 9000, ACK, 502, &Opts::default(), &[]);
    assert_eq!(w.state(), State::SynReceived);
    w.send_raw(Side::Client, 1001, 5001, ACK, 502, &Opts::default(), &[]);
    assert_eq!(w.state(), State::Established);
}

#[test]
fn a_missed_segment_is_still_found_when_the_sender_goes_on() {
    let mut w = quiet_connection();
    // The peer misses 1000 owner bytes (its NIC dropped them); the client acknowledges them.
    w.nxt[0] += 1000;
    w.rcv[1] = w.nxt[0];
    w.ack(Side::Client, 502);
    // Unverifiable on its own (a forger could send it, or the bytes may still be on their
    // way): not taken, but not ready until the bytes show up.
    assert_eq!(w.ready(), Err(NotReady::AckAhead(Side::Owner)));
    let k = w.key();
    assert_eq!(
        w.map.get_mut_conn(&k).side(Side::Owner).una,
        w.nxt[0] - 1000
    );
    // The owner's next segment starts past what the peer saw: the bytes between were sent,
    // and are acknowledged, but never seen.
    w.data(Side::Owner, &bytes(100, 9));
    assert_eq!(w.ready(), Err(NotReady::AckedUnseen(Side::Owner)));
    w.ack(Side::Client, 502);
    assert_eq!(w.ready(), Err(NotReady::AckedUnseen(Side::Owner)));
}

#[test]
fn a_forged_unsynced_entry_holds_no_data_and_stays_near_what_was_seen() {
    let mut w = Wire::new(false);
    w.ts = false;
    // Off-path forgeries: a mid-stream segment creates an entry, then segments scattered
    // over 16 MiB of sequence space, one chunk apart.
    for k in 0..4096u32 {
        w.send_raw(
            Side::Client,
            7_000_000 + k * 4096,
            1,
            ACK | PSH,
            65535,
            &Opts::default(),
            &bytes(100, 1),
        );
    }
    assert_eq!(w.state(), State::Unsynced);
    let k = w.key();
    let c = w.map.get_mut_conn(&k);
    println!(
        "unsynced forgery: {} bytes allocated, client snd_nxt {}",
        w.alloc.used,
        c.side(Side::Client).nxt
    );
    assert_eq!(w.alloc.used, entry_bytes::<A>(), "nothing but its entry");
    let nxt = c.side(Side::Client).nxt;
    // Only a segment within 64 KiB of what was seen moves it.
    for far in [nxt + UNSYNCED_WINDOW + 1, 7_000_000 - 2 * UNSYNCED_WINDOW] {
        w.send_raw(
            Side::Client,
            far,
            1,
            ACK,
            65535,
            &Opts::default(),
            &bytes(10, 2),
        );
        let c = w.map.get_mut_conn(&k);
        assert_eq!(c.side(Side::Client).nxt, nxt);
    }
    assert_eq!(w.snoop.counters.invalid, 2);
}
