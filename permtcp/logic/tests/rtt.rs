// SPDX-License-Identifier: GPL-2.0

//! Host tests of the RTT estimator (`rtt.rs`), alone and fed by the tracker (`track.rs`).

mod common;

use common::*;
use permtcp_logic::packet::flags::*;
use permtcp_logic::rtt::{Rtt, MIN_SAMPLE_US};
use permtcp_logic::track::Side;

#[test]
fn first_sample_sets_srtt_and_half_of_it_as_variation() {
    let mut r = Rtt::default();
    assert_eq!(r.estimate(), None);
    r.sent(1000, 2000, 1000, 10);
    r.acked(1999, 30); // short of the probe's end: no sample
    assert_eq!(r.estimate(), None);
    r.acked(2000, 50);
    assert_eq!(r.estimate(), Some((40_000, 20_000)));
    // RFC 6298: RTO = SRTT + 4 RTTVAR, at least the minimum.
    assert_eq!(r.rto_us(200_000), Some(200_000));
    assert_eq!(r.rto_us(1_000), Some(120_000));
}

#[test]
fn later_samples_are_smoothed_as_rfc6298() {
    let mut r = Rtt::default();
    for (i, ms) in [40u64, 40, 80].iter().enumerate() {
        let base = 1000 + i as u32 * 1000;
        let t = i as u64 * 1000;
        r.sent(base, base + 1000, base, t);
        r.acked(base + 1000, t + ms);
    }
    // 40: srtt 40, var 20; 40: var 15, srtt 40; 80: var 15 - 3 + 10 = 21.25, srtt 45.
    assert_eq!(r.samples, 3);
    assert_eq!(r.srtt_us, 45_000);
    assert_eq!(r.rttvar_us, 21_250);
}

#[test]
fn one_probe_at_a_time_and_karn_cancels_a_retransmitted_one() {
    let mut r = Rtt::default();
    r.sent(1000, 2000, 1000, 0);
    // More data while the probe runs does not restart it.
    r.sent(2000, 3000, 2000, 5);
    r.acked(2000, 10);
    assert_eq!(r.estimate(), Some((10_000, 5_000)));
    // The bytes up to 3000 were not probed: their ack is no sample.
    r.acked(3000, 500);
    assert_eq!(r.samples, 1);
    // A retransmission of probed bytes: their acknowledgement is ambiguous.
    r.sent(3000, 4000, 3000, 600);
    r.sent(3000, 4000, 4000, 900);
    r.acked(4000, 901);
    assert_eq!(r.samples, 1);
    // A retransmission of bytes before the probe leaves it alone.
    r.sent(4000, 5000, 4000, 1000);
    r.sent(3500, 4000, 5000, 1001);
    r.acked(5000, 1003);
    assert_eq!(r.samples, 2);
}

#[test]
fn samples_below_the_clock_count_as_its_resolution() {
    let mut r = Rtt::default();
    r.sent(1, 100, 1, 7);
    r.acked(100, 7);
    assert_eq!(r.estimate(), Some((MIN_SAMPLE_US, MIN_SAMPLE_US / 2)));
}

#[test]
fn tracker_times_owner_data_to_the_clients_ack() {
    let mut w = Wire::new(false);
    w.handshake(1000, 5000, 7, 7);
    let k = w.key();
    assert_eq!(w.map.get_mut_conn(&k).rtt.estimate(), None);
    // Client data and the owner's ack are no sample: only the owner's RTT to the client.
    w.data(Side::Client, &bytes(100, 1));
    w.now += 30;
    w.ack(Side::Owner, 502);
    assert_eq!(w.map.get_mut_conn(&k).rtt.estimate(), None);
    for _ in 0..3 {
        w.data(Side::Owner, &bytes(1000, 2));
        w.now += 25; // the next frame is 1 ms later still
        w.ack(Side::Client, 502);
    }
    let c = w.map.get_mut_conn(&k);
    assert_eq!(c.rtt.samples, 3);
    assert_eq!(c.rtt.srtt_us, 26_000);
    // A retransmission of the owner's last bytes before the ack: no sample (Karn).
    let (nxt, rcv) = (w.nxt[0], w.rcv[0]);
    w.data(Side::Owner, &bytes(500, 3));
    w.send_raw(
        Side::Owner,
        nxt,
        rcv,
        ACK | PSH,
        502,
        &Default::default(),
        &bytes(500, 3),
    );
    w.now += 100;
    w.ack(Side::Client, 502);
    assert_eq!(w.map.get_mut_conn(&k).rtt.samples, 3);
}
