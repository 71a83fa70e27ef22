// SPDX-License-Identifier: GPL-2.0

//! Where a taken-over connection resumes: the byte ranges rebuilt into the socket and the
//! stream offsets the restarted application continues from.
//!
//! Sent data: every byte up to the owner's last sent one reached the wire, so the application
//! continues at that offset ([`Resume::sent_offset`]); the owner's unacknowledged bytes are
//! sent again by the rebuilt socket, and the run of retained sent bytes ending there is kept
//! for the application to check its regenerated output against.
//!
//! Received data (the declaration's received-data policy): the owner acknowledged client
//! bytes its application may not have read. With [`RxPolicy::Deliver`] the rebuilt socket's
//! receive queue starts at the first retained byte of the run ending at the last received
//! byte, so the application reads some bytes again and skips them by offset; with
//! [`RxPolicy::Drop`] it starts at the owner's acknowledgement (only unacknowledged bytes are
//! queued) and the application asks its client again for what it missed; with
//! [`RxPolicy::Unanswered`] it starts at the acknowledgement the owner's last new data carried
//! (every client byte that had reached the owner when it last sent new data counts as
//! answered), or at the first retained byte when that is further on, so that an unmodified
//! request/response server reads the requests it had not answered and none it had.
//!
//! Mid-response ([`Resume::mid_response`]): whether the owner was in the middle of its output
//! when it stopped, as far as the wire shows it; an unmodified server cannot continue such a
//! response, and its client waits for the rest.

use crate::logic::decl::RxPolicy;
use crate::logic::seq::{self, Seq};
use crate::logic::seqbuf::ChunkAlloc;
use crate::logic::track::{Conn, Side};

/// Why the owner is taken to have been in the middle of its output.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MidReason {
    /// Its last bytes on the wire came without a push: the rest of that write was still in
    /// its send queue (Linux pushes the tail of every write).
    Unpushed,
    /// Its last new data filled the client's receive window (to within one MSS): it was held
    /// back by the client. (The client's later window updates, sent while the owner was
    /// dead, do not count.)
    WindowFull,
}

/// Byte ranges and offsets of one connection at takeover.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Resume {
    /// First retained sent byte of the run ending at `sent_end`.
    pub sent_from: Seq,
    /// The owner's first unacknowledged byte (sent again from here), at most `sent_end`.
    pub sent_una: Seq,
    /// One past the owner's last sent byte (its FIN excluded).
    pub sent_end: Seq,
    /// The client's first byte the owner had not acknowledged, at most `recv_end`.
    pub recv_una: Seq,
    /// First client byte queued for the application.
    pub recv_from: Seq,
    /// One past the client's last byte (its FIN excluded).
    pub recv_end: Seq,
    /// Stream offset of `sent_end`: the next byte the application sends.
    pub sent_offset: u32,
    /// Stream offset of `sent_from`.
    pub data_offset: u32,
    /// Stream offset of `recv_from`: the first byte the application reads.
    pub recv_offset: u32,
    /// The owner was in the middle of its output, and why; `None` when its output ended
    /// with a completed write (or its FIN).
    pub mid_response: Option<MidReason>,
}

/// Start of the retained run of `side` that reaches `at`, or `at` when none does.
fn run_start<A: ChunkAlloc>(c: &Conn<A>, side: Side, at: Seq) -> Seq {
    c.side(side)
        .data
        .ranges()
        .find(|&(s, e)| seq::at_or_after(at, s) && seq::at_or_after(e, at))
        .map_or(at, |(s, _)| s)
}

/// Where `c` resumes under the received-data policy `rx`. Meaningful for a connection
/// tracked from its SYNs (the offsets count from the initial sequence numbers).
pub fn resume<A: ChunkAlloc>(c: &Conn<A>, rx: RxPolicy) -> Resume {
    let (o, cl) = (c.side(Side::Owner), c.side(Side::Client));
    // An acknowledged FIN moves `una` one past the last byte.
    let upto = |una: Seq, end: Seq| if seq::after(una, end) { end } else { una };
    let sent_end = o.data_end();
    let sent_una = upto(o.una, sent_end);
    let sent_from = run_start(c, Side::Owner, sent_una);
    let recv_end = cl.data_end();
    let recv_una = upto(cl.una, recv_end);
    let recv_from = match rx {
        RxPolicy::Deliver => run_start(c, Side::Client, recv_una),
        RxPolicy::Drop => recv_una,
        RxPolicy::Unanswered => {
            let start = run_start(c, Side::Client, recv_una);
            match o.answered().map(|a| upto(a, recv_una)) {
                Some(a) if seq::after(a, start) => a,
                _ => start,
            }
        }
    };
    let mid_response = if o.fin().is_some() {
        None
    } else if seq::after(sent_end, o.push_end) {
        Some(MidReason::Unpushed)
    } else if o.limited() {
        Some(MidReason::WindowFull)
    } else {
        None
    };
    let offset = |isn: Seq, s: Seq| seq::dist(isn.wrapping_add(1), s);
    Resume {
        sent_from,
        sent_una,
        sent_end,
        recv_una,
        recv_from,
        recv_end,
        sent_offset: offset(o.isn, sent_end),
        data_offset: offset(o.isn, sent_from),
        recv_offset: offset(cl.isn, recv_from),
        mid_response,
    }
}
