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
