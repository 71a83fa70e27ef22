// SPDX-License-Identifier: GPL-2.0

//! The owner's round-trip time to its client, estimated by the snooping peer.
//!
//! A rebuilt socket has no RTT sample of its own: the kernel gives it a 3 s retransmission
//! timeout (`tcp_init_metrics`), so a segment lost right after a takeover would wait 3 s.
//! The peer sits on the owner's link and sees both directions, so it times what the owner's
//! stack times: from the owner's new data to the client's acknowledgement covering it. One
//! probe at a time (as BSD did); a retransmission of the probed bytes cancels the probe
//! (Karn's algorithm: its acknowledgement is ambiguous). Samples go through RFC 6298's
//! estimator (`srtt`, `rttvar`), which `tcp_rtt_estimator()` also implements.
//!
//! Time comes in milliseconds (the snooping hook's clock): a sample below the clock's
//! resolution counts as [`MIN_SAMPLE_US`]. The rebuilt socket's RTO is at least
//! `tcp_rto_min` (200 ms) anyway, so the resolution does not matter for the timeout.

use super::seq::{self, Seq};

/// The least sample: 1 ms, the resolution of the clock samples are taken with.
pub const MIN_SAMPLE_US: u32 = 1000;
/// Samples are capped at one minute (a connection idle longer than that is no sample).
pub const MAX_SAMPLE_US: u32 = 60_000_000;

/// The estimator of one connection.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Rtt {
    /// The probe: the owner's data being timed (`[start, end)`), and when it was sent (the
    /// low 32 bits of the millisecond clock: a probe spans less than 49 days).
    probe: Option<(Seq, Seq, u32)>,
    /// Smoothed RTT, microseconds (RFC 6298 `SRTT`); 0 before the first sample.
    pub srtt_us: u32,
    /// RTT variation, microseconds (RFC 6298 `RTTVAR`).
    pub rttvar_us: u32,
    /// Samples taken.
    pub samples: u32,
}

impl Rtt {
    /// The owner sent payload `[seq, end)` at `now_ms`; `nxt` is the highest sequence number
    /// it had sent before. New data starts a probe when none runs; a retransmission of the
    /// probed bytes cancels it.
    #[inline(always)]
    pub fn sent(&mut self, seq: Seq, end: Seq, nxt: Seq, now_ms: u64) {
        if seq::before(seq, nxt) {
            let overlaps =
                |(start, e, _): (Seq, Seq, u32)| seq::before(seq, e) && seq::after(end, start);
            if self.probe.is_some_and(overlaps) {
                self.probe = None;
            }
            return;
        }
        if self.probe.is_none() && seq::after(end, seq) {
            self.probe = Some((seq, end, now_ms as u32));
        }
    }

    /// The client acknowledged up to `ack` at `now_ms`: a sample when that covers the probe.
    #[inline(always)]
    pub fn acked(&mut self, ack: Seq, now_ms: u64) {
        let Some((_, end, at)) = self.probe else {
            return;
        };
        if seq::before(ack, end) {
            return;
        }
        self.probe = None;
        // Elapsed on the wrapping 32-bit clock; a clock that went back counts as no time.
        let ms = match (now_ms as u32).wrapping_sub(at) {
            d if d < 1 << 31 => u64::from(d),
            _ => 0,
        };
        let us = ms.saturating_mul(1000).min(u64::from(MAX_SAMPLE_US)) as u32;
        self.sample(us.max(MIN_SAMPLE_US));
    }

    /// RFC 6298, 2.2 and 2.3 (alpha 1/8, beta 1/4).
    fn sample(&mut self, m: u32) {
        if self.samples == 0 {
            self.srtt_us = m;
            self.rttvar_us = m / 2;
        } else {
            let err = self.srtt_us.abs_diff(m);
            self.rttvar_us = self.rttvar_us - self.rttvar_us / 4 + err / 4;
            self.srtt_us = self.srtt_us - self.srtt_us / 8 + m / 8;
        }
        self.samples = self.samples.saturating_add(1);
    }

    /// `(srtt, rttvar)` in microseconds once there was a sample.
    pub fn estimate(&self) -> Option<(u32, u32)> {
        (self.samples > 0).then_some((self.srtt_us, self.rttvar_us))
    }

    /// The retransmission timeout RFC 6298 derives, in microseconds (`SRTT + 4 RTTVAR`,
    /// at least `min_us`), once there was a sample.
    pub fn rto_us(&self, min_us: u32) -> Option<u32> {
        self.estimate()
            .map(|(s, v)| s.saturating_add(v.saturating_mul(4)).max(min_us))
    }
}
