// SPDX-License-Identifier: GPL-2.0

//! Host tests of the resume offsets (`resume.rs`): where a taken-over stream continues under
//! each received-data policy, and how much unread client data `keep_received` preserves.

mod common;

use common::*;
use permtcp_logic::packet::flags::*;
use permtcp_logic::track::{Side, State};

#[test]
fn resume_offsets_follow_the_received_data_policy() {
    use permtcp_logic::decl::RxPolicy;
    use permtcp_logic::resume::resume;
    let mut w = Wire::new(false);
    w.handshake(1000, 5000, 7, 7);
    w.data(Side::Client, &bytes(300, 1));
    // The owner's 4000 bytes acknowledge the 300; the client acknowledges the 4000.
    w.data(Side::Owner, &bytes(4000, 2));
    w.ack(Side::Client, 502);
    // 200 client bytes the owner does not acknowledge: 1000 more from the owner still
    // acknowledge only the first 300.
    w.data(Side::Client, &bytes(200, 3));
    let nxt = w.nxt[0];
    w.send_raw(
        Side::Owner,
        nxt,
        1301,
        ACK | PSH,
        502,
        &Opts::default(),
        &bytes(1000, 4),
    );
    w.nxt[0] = nxt.wrapping_add(1000);
    assert_eq!(w.ready(), Ok(()));
    let k = w.key();
    let c = w.map.get_mut_conn(&k);
    let r = resume(c, RxPolicy::Deliver);
    assert_eq!((r.sent_from, r.sent_una, r.sent_end), (5001, 9001, 10001));
    assert_eq!((r.sent_offset, r.data_offset), (5000, 0));
    assert_eq!((r.recv_from, r.recv_end, r.recv_offset), (1001, 1501, 0));
    let r = resume(c, RxPolicy::Drop);
    assert_eq!((r.recv_from, r.recv_end, r.recv_offset), (1301, 1501, 300));
    assert_eq!(
        r.sent_offset, 5000,
        "the policy is about received data only"
    );
    // The client half-closes; the owner acknowledges its bytes and the FIN.
    let cnxt = w.nxt[1];
    w.send_raw(
        Side::Client,
        cnxt,
        10001,
        FIN | ACK,
        502,
        &Opts::default(),
        &[],
    );
    let onxt = w.nxt[0];
    w.send_raw(Side::Owner, onxt, 1502, ACK, 502, &Opts::default(), &[]);
    assert_eq!(w.state(), State::FinSeen);
    assert_eq!(w.ready(), Ok(()));
    let c = w.map.get_mut_conn(&k);
    assert_eq!(c.side(Side::Client).una, 1502, "past the FIN");
    let r = resume(c, RxPolicy::Drop);
    assert_eq!((r.recv_una, r.recv_from, r.recv_end), (1501, 1501, 1501));
    assert_eq!((r.sent_una, r.sent_end), (10001, 10001));
}

#[test]
fn keep_received_holds_client_bytes_an_application_has_not_read() {
    use permtcp_logic::decl::RxPolicy;
    use permtcp_logic::resume::resume;
    // The owner advertises 502 << 7 = 64256 bytes; the client sends 200000, all acknowledged.
    let run = |keep: u32| {
        let mut w = Wire::new(false);
        w.snoop.limits.keep_received = keep;
        w.handshake(1000, 5000, 7, 7);
        for part in bytes(200_000, 9).chunks(1448) {
            w.data(Side::Client, part);
            w.ack(Side::Owner, 502);
        }
        assert_eq!(w.ready(), Ok(()));
        let k = w.key();
        let c = w.map.get_mut_conn(&k);
        assert_eq!(c.side(Side::Client).una, 1001 + 200_000);
        resume(c, RxPolicy::Deliver).recv_offset
    };
    let one_window = run(0);
    assert!(
        one_window > 0 && 200_000 - one_window >= 502 << 7,
        "one window kept by default: resumes at {one_window}"
    );
    assert_eq!(run(256 << 10), 0, "everything kept with keep_received");
}

/// Where the restarted application reads from, as a client stream offset, under `rx`.
fn recv_offset(w: &mut Wire, rx: permtcp_logic::decl::RxPolicy) -> u32 {
    let k = w.key();
    permtcp_logic::resume::resume(w.map.get_mut_conn(&k), rx).recv_offset
}

/// The client's stream offset of its next byte.
fn client_at(w: &Wire) -> u32 {
    w.nxt[1].wrapping_sub(1001)
}

/// A keep-alive session: two requests, each answered (the answer's segment acknowledges it).
fn keep_alive() -> Wire {
    let mut w = Wire::new(false);
    w.handshake(1000, 5000, 7, 7);
    for (i, n) in [(1u8, 120usize), (2, 140)] {
        w.data(Side::Client, &bytes(n, i));
        w.ack(Side::Owner, 502);
        w.data(Side::Owner, &bytes(900, i + 10));
        w.ack(Side::Client, 502);
    }
    w
}

#[test]
fn unanswered_delivers_nothing_the_owner_had_answered() {
    use permtcp_logic::decl::RxPolicy;
    let mut w = keep_alive();
    assert_eq!(w.ready(), Ok(()));
    // Issue 10: with `deliver` an unmodified server reads both answered requests again and
    // answers them again, so the client gets an old answer for its next request.
    assert_eq!(recv_offset(&mut w, RxPolicy::Deliver), 0);
    assert_eq!(recv_offset(&mut w, RxPolicy::Drop), 260);
    assert_eq!(
        recv_offset(&mut w, RxPolicy::Unanswered),
        260,
        "nothing to read"
    );
}

#[test]
fn unanswered_delivers_a_request_that_arrived_after_the_last_answer() {
    use permtcp_logic::decl::RxPolicy;
    // Acknowledged by the owner's kernel, never answered (its application stalled).
    let mut w = keep_alive();
    let at = client_at(&w);
    w.data(Side::Client, &bytes(130, 3));
    w.ack(Side::Owner, 502);
    assert_eq!(recv_offset(&mut w, RxPolicy::Unanswered), at);
    assert_eq!(
        recv_offset(&mut w, RxPolicy::Drop),
        at + 130,
        "drop loses it"
    );
    // Sent during the outage: the owner never acknowledged it.
    let mut w = keep_alive();
    w.data(Side::Client, &bytes(130, 3));
    assert_eq!(recv_offset(&mut w, RxPolicy::Unanswered), at);
    assert_eq!(recv_offset(&mut w, RxPolicy::Drop), at);
    // Half a request, then the owner died: the half is read again, the rest follows.
    let mut w = keep_alive();
    w.data(Side::Client, &bytes(60, 3));
    w.ack(Side::Owner, 502);
    assert_eq!(recv_offset(&mut w, RxPolicy::Unanswered), at);
}

#[test]
fn unanswered_counts_what_reached_the_owner_not_what_the_peer_saw() {
    use permtcp_logic::decl::RxPolicy;
    // A request the peer saw but the owner had not received when it sent the rest of an
    // answer: that answer's acknowledgement stops before the request, which is delivered.
    let mut w = keep_alive();
    let at = client_at(&w);
    w.data(Side::Client, &bytes(100, 3));
    let onxt = w.nxt[0];
    w.send_raw(
        Side::Owner,
        onxt,
        1001 + at,
        ACK | PSH,
        502,
        &Opts::default(),
        &bytes(500, 4),
    );
    w.nxt[0] = onxt.wrapping_add(500);
    assert_eq!(recv_offset(&mut w, RxPolicy::Unanswered), at);
    // A retransmission of answered data carries a newer acknowledgement: it answers
    // nothing.
    let rto = w.nxt[0].wrapping_sub(500);
    w.send_raw(
        Side::Owner,
        rto,
        1001 + at + 100,
        ACK | PSH,
        502,
        &Opts::default(),
        &bytes(500, 4),
    );
    assert_eq!(recv_offset(&mut w, RxPolicy::Unanswered), at);
}

#[test]
fn unanswered_with_pipelined_requests() {
    use permtcp_logic::decl::RxPolicy;
    // Two requests in one segment, the owner answered the first: the second had reached the
    // owner before that answer, so it counts as answered and is not delivered (the wire
    // does not show where one request ends; Documentation/takeover.rst).
    let mut w = keep_alive();
    let at = client_at(&w);
    w.data(Side::Client, &bytes(200, 3));
    w.data(Side::Owner, &bytes(900, 13));
    assert_eq!(recv_offset(&mut w, RxPolicy::Unanswered), at + 200);
    assert_eq!(
        recv_offset(&mut w, RxPolicy::Deliver),
        0,
        "deliver repeats all"
    );
    // The second request sent after the first answer went out: delivered.
    let mut w = keep_alive();
    w.data(Side::Client, &bytes(100, 3));
    w.data(Side::Owner, &bytes(900, 13));
    let at = client_at(&w);
    w.data(Side::Client, &bytes(100, 4));
    w.ack(Side::Owner, 502);
    assert_eq!(recv_offset(&mut w, RxPolicy::Unanswered), at);
}

#[test]
fn unanswered_with_a_server_that_answers_before_the_whole_request() {
    use permtcp_logic::decl::RxPolicy;
    // Headers, an interim answer (HTTP's "100 Continue"), then the body: the body arrived
    // after the owner's last output and is delivered, the headers are not.
    let mut w = keep_alive();
    w.data(Side::Client, &bytes(150, 3));
    w.data(Side::Owner, b"HTTP/1.1 100 Continue\r\n\r\n");
    let body = client_at(&w);
    w.data(Side::Client, &bytes(4000, 4));
    w.ack(Side::Owner, 502);
    assert_eq!(recv_offset(&mut w, RxPolicy::Unanswered), body);
}

#[test]
fn unanswered_bytes_beyond_the_kept_window_start_at_the_first_kept_byte() {
    use permtcp_logic::decl::RxPolicy;
    // An upload: the owner answered its greeting only; more than a window came after.
    let mut w = keep_alive();
    for part in bytes(200_000, 9).chunks(1448) {
        w.data(Side::Client, part);
        w.ack(Side::Owner, 502);
    }
    let deliver = recv_offset(&mut w, RxPolicy::Deliver);
    assert!(deliver > 260);
    assert_eq!(recv_offset(&mut w, RxPolicy::Unanswered), deliver);
}

#[test]
fn mid_response_is_an_unpushed_write_or_a_full_window() {
    use permtcp_logic::decl::RxPolicy;
    use permtcp_logic::resume::{resume, MidReason};
    let mid = |w: &mut Wire| {
        let k = w.key();
        resume(w.map.get_mut_conn(&k), RxPolicy::Unanswered).mid_response
    };
    // Every answer ended with a push: complete.
    let mut w = keep_alive();
    assert_eq!(mid(&mut w), None);
    // Part of a large answer, its write's tail not yet sent (no push).
    w.data(Side::Client, &bytes(100, 3));
    let (onxt, rcv) = (w.nxt[0], w.rcv[0]);
    for i in 0..4u32 {
        w.send_raw(
            Side::Owner,
            onxt.wrapping_add(i * 1400),
            rcv,
            ACK,
            502,
            &Opts::default(),
            &bytes(1400, 5),
        );
    }
    w.nxt[0] = onxt.wrapping_add(4 * 1400);
    assert_eq!(mid(&mut w), Some(MidReason::Unpushed));
    // The write's last segment (pushed) went out: complete again.
    let onxt = w.nxt[0];
    w.send_raw(
        Side::Owner,
        onxt,
        rcv,
        ACK | PSH,
        502,
        &Opts::default(),
        &bytes(700, 6),
    );
    w.nxt[0] = onxt.wrapping_add(700);
    assert_eq!(mid(&mut w), None);
    // The client's window (its ack of everything, 4 << 7 = 512 bytes) is smaller than
    // one MSS: a last write of 500 bytes, pushed, fills it; the owner was held back.
    let (cnxt, onxt) = (w.nxt[1], w.nxt[0]);
    w.send_raw(Side::Client, cnxt, onxt, ACK, 4, &Opts::default(), &[]);
    w.send_raw(
        Side::Owner,
        onxt,
        rcv,
        ACK | PSH,
        502,
        &Opts::default(),
        &bytes(500, 7),
    );
    w.nxt[0] = onxt.wrapping_add(500);
    assert_eq!(mid(&mut w), Some(MidReason::WindowFull));
    // The client reads on and opens its window after the owner died: still mid-response.
    w.send_raw(
        Side::Client,
        cnxt,
        onxt + 500,
        ACK,
        502,
        &Opts::default(),
        &[],
    );
    assert_eq!(mid(&mut w), Some(MidReason::WindowFull));
    // The owner's FIN ends its output whatever came before.
    let onxt = w.nxt[0];
    w.send_raw(
        Side::Owner,
        onxt,
        rcv,
        ACK | FIN,
        502,
        &Opts::default(),
        &[],
    );
    assert_eq!(mid(&mut w), None);
}
