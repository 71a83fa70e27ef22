// SPDX-License-Identifier: GPL-2.0

//! One mirrored connection rebuilt as a real TCP socket, in named steps.
//!
//! This is how CRIU's libsoccr restores a socket, done in the kernel with the stable
//! TCP_REPAIR interface. A [`Plan`] is copied out of the mirror first (under no lock that
//! the hook takes); [`rebuild`] then runs the steps in order, each failing with its own
//! [`Step`]:
//!
//! 1. [`Step::Open`]: a kernel TCP socket in repair mode;
//! 2. [`Step::Sequences`]: the send queue's sequence number (the owner's first
//!    unacknowledged byte) and the receive queue's (the first client byte the application
//!    reads);
//! 3. [`Step::Addresses`]: the client's MSS, then bind to the service address (which may not
//!    be local yet: freebind) and a repair-mode connect to the client, which sends nothing;
//! 4. [`Step::Options`]: the options both SYNs negotiated (MSS, window scaling, SACK,
//!    timestamps) and the timestamp clock continued past the owner's last TSval (PAWS); the
//!    RTT estimator seeded with the mirror's estimate of the owner's RTT (else the socket's
//!    retransmission timeout would be 3 s);
//! 5. [`Step::Queues`]: the client's bytes the application has not read, into the receive
//!    queue;
//! 6. [`Step::Window`]: both windows, as the mirror last saw them;
//! 7. [`Step::Live`]: repair off (with a window probe, which prompts the client's ACK, when
//!    the client has bytes the owner had not acknowledged) and `SO_REUSEADDR` (repair off
//!    cleared it; an application binding the port needs it);
//! 8. [`Step::Resend`]: the owner's unacknowledged bytes, sent again as new data (restoring
//!    them into the send queue would wait for a 3 s RTO);
//! 9. [`Step::Fin`]: the owner's FIN again (shutdown), and the client's FIN fed to the stack
//!    as a received segment so that the socket's own FIN processing makes it CLOSE_WAIT.
//!
//! The result is a [`Detached`] sock, ready for a listener's accept queue. [`StepTimes`]
//! sums the time each step takes, for the figures `permctl takeover` reports in the log.

use crate::glue::{
    Birth, Detached, KernelSocket, Net, RepairOpt, RepairQueue, RepairWindow, SockOpt,
};
use crate::logic::decl::RxPolicy;
use crate::logic::errno::{code, Error as LogicError};
use crate::logic::packet::{flags, Control, CONTROL_MAX};
use crate::logic::resume::{resume, Resume};
use crate::logic::seq;
use crate::logic::seqbuf::SeqBuf;
use crate::logic::snoop::FlowKey;
use crate::logic::track::{Conn, Half, Side, State};
use crate::snoop::Alloc;
use kernel::prelude::*;

/// What one connection is rebuilt from, copied out of the mirror.
pub(crate) struct Plan {
    pub(crate) key: FlowKey,
    pub(crate) v6: bool,
    /// Byte ranges and stream offsets (see [`resume`]).
    pub(crate) r: Resume,
    pub(crate) rx: RxPolicy,
    mss: u16,
    wscale: Option<(u8, u8)>,
    sack: bool,
    /// The owner's last TSval and how long ago it was seen.
    ts: Option<(u32, u64)>,
    /// The mirror's estimate of the owner's RTT (SRTT, RTTVAR in microseconds).
    rtt: Option<(u32, u32)>,
    window: RepairWindow,
    /// The owner's retained sent bytes `[r.sent_from, r.sent_end)`: those from `r.sent_una`
    /// are sent again, all are kept for the application to verify.
    pub(crate) sent: Sent,
    /// The client's bytes `[r.recv_from, r.recv_end)`, queued for the application.
    recv: KVVec<u8>,
    /// The owner had sent its FIN (its application shut down writing).
    owner_fin: bool,
    /// The client had sent its FIN: the segment that delivers it to the rebuilt socket.
    client_fin: Option<([u8; CONTROL_MAX], usize)>,
    /// The client's last TSval, when timestamps were negotiated.
    client_tsval: Option<u32>,
}

/// Whether a connection in `state` (and ready) is rebuilt: established, or half-closed or
/// closing with a FIN not yet acknowledged on both sides.
pub(crate) fn rebuildable(state: State) -> bool {
    matches!(state, State::Established | State::FinSeen | State::Closing)
}

fn copy_out(c: &Conn<Alloc>, side: Side, from: u32, to: u32) -> Option<KVVec<u8>> {
    let n = seq::dist(from, to) as usize;
    let mut v = KVVec::from_elem(0u8, n, GFP_KERNEL).ok()?;
    c.side(side).data.read(from, &mut v).then_some(v)
}

/// The owner's sent bytes `[from, from + len)` of a connection let go: the mirror's own
/// chunks and views, handed over rather than copied ([`Conn::hand_over`]: the mirror's
/// budget no longer counts them), freed when this is dropped. A takeover keeps them for the
/// application to verify its regenerated output against (CONN_DATA_GET), and sends the
/// unacknowledged ones again from them. Copying them out had been a quarter of a takeover's
/// instructions (1000 connections of 20 KB each: `selftests/prof/takeover.sh`).
///
/// # Invariants
///
/// `data` holds every byte of `[from, from + len)`.
pub(crate) struct Sent {
    data: SeqBuf<Alloc>,
    from: u32,
    len: u32,
    /// The memory `data` takes: [`Sent::memory`].
    mem: usize,
}

impl Default for Sent {
    /// No bytes.
    fn default() -> Self {
        Sent {
            data: SeqBuf::new(0),
            from: 0,
            len: 0,
            mem: 0,
        }
    }
}

impl Sent {
    /// Takes `[from, to)` out of `c`'s owner side (`alloc`, the mirror's, stops counting
    /// it); `None`, with `c` unchanged, when a byte of it is missing.
    fn take(c: &mut Conn<Alloc>, alloc: &mut Alloc, from: u32, to: u32) -> Option<Sent> {
        if !c.side(Side::Owner).data.contains(from, to) {
            return None;
        }
        let data = c.hand_over(alloc, Side::Owner, from);
        Some(Sent {
            mem: Self::memory_of(&data),
            data,
            from,
            len: seq::dist(from, to),
        })
    }

    /// What `data` takes: its chunks (a copy's 4 KiB, a view's share of its frame's memory,
    /// as the mirror charged them) and its slot table.
    fn memory_of(data: &SeqBuf<Alloc>) -> usize {
        (data.chunk_bytes() + data.slot_table_bytes()) as usize
    }

    /// The memory it holds: its chunks, as the mirror charged them (a view, its share of the
    /// frame it keeps), and its slot table; at least its bytes.
    pub(crate) fn memory(&self) -> usize {
        self.mem
    }

    /// The bytes `[from, from + len)` of `data` (KUnit's records); `None` when one of them
    /// is missing.
    #[cfg(CONFIG_KUNIT = "y")]
    pub(crate) fn from_buf(data: SeqBuf<Alloc>, from: u32, len: u32) -> Option<Sent> {
        // INVARIANT: checked here.
        data.contains(from, from.wrapping_add(len)).then(|| Sent {
            mem: Self::memory_of(&data),
            data,
            from,
            len,
        })
    }

    /// How many bytes.
    pub(crate) fn len(&self) -> usize {
        self.len as usize
    }

    /// Sequence number of the first byte.
    pub(crate) fn from(&self) -> u32 {
        self.from
    }

    /// Reads `out.len()` bytes from sequence number `at`; `false` when they are not all
    /// within `[from, from + len)`.
    pub(crate) fn read(&self, at: u32, out: &mut [u8]) -> bool {
        let start = seq::dist(self.from, at) as usize;
        start
            .checked_add(out.len())
            .is_some_and(|end| end <= self.len())
            && self.data.read(at, out)
    }

    /// A copy of the bytes from sequence number `at` to the end; `None` without memory.
    fn copy_from(&self, at: u32) -> Option<KVVec<u8>> {
        let n = self.len().checked_sub(seq::dist(self.from, at) as usize)?;
        let mut v = KVVec::from_elem(0u8, n, GFP_KERNEL).ok()?;
        self.read(at, &mut v).then_some(v)
    }
}

impl Plan {
    /// The plan for a ready, rebuildable connection taken out of the mirror; `None` when it
    /// is not, or its bytes cannot be copied.
    ///
    /// The owner's sent bytes move into the plan ([`Sent`]): `c`, being let go, keeps none.
    /// `alloc` is the mirror's allocator, which stops counting them.
    pub(crate) fn new(
        key: &FlowKey,
        c: &mut Conn<Alloc>,
        alloc: &mut Alloc,
        now_ms: u64,
        rx: RxPolicy,
    ) -> Option<Plan> {
        if c.readiness().is_err() || !rebuildable(c.state) {
            return None;
        }
        let (o, cl) = (c.side(Side::Owner), c.side(Side::Client));
        let r = resume(c, rx);
        let ts = |h: &Half<Alloc>| h.ts().filter(|_| c.ts_ok);
        let client_fin = cl.fin().map(|fin| {
            // As the client sent it: its last acknowledgement, window and timestamp.
            let mut seg = [0u8; CONTROL_MAX];
            let n = Control {
                src: (key.client_addr, key.client_port),
                dst: (key.owner_addr, key.owner_port),
                seq: fin,
                ack: o.una,
                flags: flags::FIN | flags::ACK,
                window: (cl.win >> c.wscale(Side::Client)).min(0xffff) as u16,
                ts: ts(cl),
            }
            .build(&mut seg);
            (seg, n)
        });
        let mut plan = Plan {
            key: *key,
            v6: key.owner_addr.as_v4().is_none(),
            r,
            rx,
            mss: cl.syn_opts.mss().unwrap_or(536),
            wscale: c
                .ws_ok
                .then(|| (c.wscale(Side::Client), c.wscale(Side::Owner))),
            sack: c.sack_ok,
            ts: if c.ts_ok {
                o.ts().map(|(val, _)| (val, c.idle_ms(now_ms)))
            } else {
                None
            },
            rtt: c.rtt.estimate(),
            window: RepairWindow {
                snd_wl1: cl.win_seq,
                snd_wnd: cl.win,
                max_window: cl.max_win.max(cl.win),
                rcv_wnd: o.win,
                rcv_wup: r.recv_una,
            },
            recv: copy_out(c, Side::Client, r.recv_from, r.recv_end)?,
            sent: Sent::default(),
            owner_fin: o.fin().is_some(),
            client_fin,
            client_tsval: ts(cl).map(|(val, _)| val),
        };
        // Last: nothing fails after the bytes leave the connection.
        plan.sent = Sent::take(c, alloc, r.sent_from, r.sent_end)?;
        Some(plan)
    }

    /// The plan as a connection born from its listener ([`Net::born`]) takes it, when that
    /// path can: nothing of the owner's to send again (no unacknowledged bytes, no FIN), and
    /// the client's bytes within one segment.
    pub(crate) fn birth(&self) -> Option<Birth<'_>> {
        if self.resend_len() > 0 || self.owner_fin || self.recv.len() > 65000 {
            return None;
        }
        let client_shift = self.wscale.map_or(0, |w| w.0);
        Some(Birth {
            key: self.key,
            recv_from: self.r.recv_from,
            sent_una: self.r.sent_una,
            data: &self.recv,
            fin: self.client_fin.is_some(),
            mss: self.mss,
            wscale: self.wscale,
            sack: self.sack,
            ts: self.ts.map(|(tsval, age)| {
                (
                    self.client_tsval.unwrap_or(0),
                    tsval.wrapping_add(age as u32).wrapping_add(2),
                )
            }),
            window: (self.window.snd_wnd >> client_shift).min(0xffff) as u16,
            max_window: self.window.max_window,
            rcv_wnd: seq::dist(
                self.r.recv_from,
                self.window.rcv_wup.wrapping_add(self.window.rcv_wnd),
            ),
            rtt: self.rtt,
        })
    }

    /// How many of the owner's bytes are unacknowledged: sent again after repair.
    fn resend_len(&self) -> usize {
        self.sent
            .len()
            .saturating_sub(seq::dist(self.r.sent_from, self.r.sent_una) as usize)
    }
}

/// A step of [`rebuild`], named as its failure is reported.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Step {
    /// Creating the socket and entering repair mode.
    Open,
    /// Setting both queues' sequence numbers.
    Sequences,
    /// MSS, bind to the service address and the repair-mode connect.
    Addresses,
    /// Negotiated options and the timestamp clock.
    Options,
    /// Queueing the client's unread bytes.
    Queues,
    /// Setting both windows.
    Window,
    /// Leaving repair mode.
    Live,
    /// Sending the owner's unacknowledged bytes again.
    Resend,
    /// The owner's and the client's FINs.
    Fin,
}

/// A failed [`rebuild`]: which step, and the kernel's errno.
#[derive(Clone, Copy, Debug)]
pub(crate) struct RebuildError {
    pub(crate) step: Step,
    pub(crate) errno: i32,
}

impl RebuildError {
    /// The error as netlink and the logs report it.
    pub(crate) fn to_logic(self) -> LogicError {
        let msg = match self.step {
            Step::Open => c"rebuild: creating the repair socket failed",
            Step::Sequences => c"rebuild: setting the sequence numbers failed",
            Step::Addresses => c"rebuild: binding or connecting in repair mode failed",
            Step::Options => c"rebuild: restoring the negotiated options failed",
            Step::Queues => c"rebuild: queueing the client's bytes failed",
            Step::Window => c"rebuild: restoring the windows failed",
            Step::Live => c"rebuild: leaving repair mode failed",
            Step::Resend => c"rebuild: resending unacknowledged data failed",
            Step::Fin => c"rebuild: restoring a FIN failed",
        };
        LogicError::new(self.errno, msg)
    }
}

/// Tags a step's kernel errors with the step.
trait At<T> {
    fn at(self, step: Step) -> Result<T, RebuildError>;
}

impl<T> At<T> for Result<T> {
    fn at(self, step: Step) -> Result<T, RebuildError> {
        self.map_err(|e| RebuildError {
            step,
            errno: -e.to_errno(),
        })
    }
}

/// Queues all of `data` (a repair queue, or the send buffer once live).
fn send_all(s: &KernelSocket, mut data: &[u8], step: Step) -> Result<(), RebuildError> {
    while !data.is_empty() {
        let n = data.len().min(16384);
        let sent = s.send(&data[..n]).at(step)?;
        if sent == 0 {
            return Err(RebuildError {
                step,
                errno: code::ENOSPC,
            });
        }
        data = &data[sent..];
    }
    Ok(())
}

fn open(net: &Net<'_>, v6sock: bool) -> Result<KernelSocket, RebuildError> {
    let s = net.socket(v6sock).at(Step::Open)?;
    s.set(SockOpt::Repair, 1).at(Step::Open)?;
    Ok(s)
}

fn sequences(s: &KernelSocket, p: &Plan) -> Result<(), RebuildError> {
    s.repair_queue(RepairQueue::Send).at(Step::Sequences)?;
    s.set(SockOpt::QueueSeq, p.r.sent_una as i32)
        .at(Step::Sequences)?;
    s.repair_queue(RepairQueue::Recv).at(Step::Sequences)?;
    s.set(SockOpt::QueueSeq, p.r.recv_from as i32)
        .at(Step::Sequences)
}

fn addresses(s: &KernelSocket, p: &Plan, v6sock: bool) -> Result<(), RebuildError> {
    // The client's MSS before connect(), or the socket stays at the minimum.
    s.set(SockOpt::MaxSeg, p.mss.into()).at(Step::Addresses)?;
    s.set(SockOpt::FreeBind { v6: v6sock }, 1)
        .at(Step::Addresses)?;
    let k = &p.key;
    s.bind(&k.owner_addr, k.owner_port, v6sock)
        .at(Step::Addresses)?;
    s.connect(&k.client_addr, k.client_port, v6sock)
        .at(Step::Addresses)
}

fn options(s: &KernelSocket, p: &Plan) -> Result<(), RebuildError> {
    let t = crate::glue::tcp_abi();
    let mut opts = [RepairOpt {
        code: t.opt_mss,
        val: p.mss.into(),
    }; 4];
    let mut n = 1;
    if let Some((snd, rcv)) = p.wscale {
        opts[n] = RepairOpt {
            code: t.opt_window,
            val: u32::from(snd) | u32::from(rcv) << 16,
        };
        n += 1;
    }
    if p.sack {
        opts[n] = RepairOpt {
            code: t.opt_sack_perm,
            val: 0,
        };
        n += 1;
    }
    if p.ts.is_some() {
        opts[n] = RepairOpt {
            code: t.opt_timestamp,
            val: 0,
        };
        n += 1;
    }
    s.repair_options(&opts[..n]).at(Step::Options)?;
    if let Some((tsval, age)) = p.ts {
        // Continue the owner's clock past its last TSval (PAWS); bit 0 flags usec clocks.
        let v = tsval.wrapping_add(age as u32).wrapping_add(2) & !1;
        s.set(SockOpt::Timestamp, v as i32).at(Step::Options)?;
    }
    if let Some((srtt, rttvar)) = p.rtt {
        // After connect (which set the 3 s timeout of a socket without a sample), before
        // anything is sent.
        s.seed_rtt(srtt, rttvar);
    }
    Ok(())
}

fn queues(s: &KernelSocket, p: &Plan) -> Result<(), RebuildError> {
    if p.recv.is_empty() {
        return Ok(());
    }
    s.repair_queue(RepairQueue::Recv).at(Step::Queues)?;
    send_all(s, &p.recv, Step::Queues)
}

fn live(s: &KernelSocket, p: &Plan) -> Result<(), RebuildError> {
    // The window probe acknowledges the client's bytes the owner had not: the client stops
    // waiting for its retransmission timer. Without such bytes it waits for nothing (the
    // owner's unacknowledged bytes sent again, or its FIN, prompt it), and the probe would
    // only cost a round trip through the client's stack per connection.
    let probe = seq::after(p.r.recv_end, p.r.recv_una);
    let off = if probe {
        0
    } else {
        crate::glue::tcp_abi().repair_off_no_wp
    };
    s.set(SockOpt::Repair, off).at(Step::Live)?;
    s.set(SockOpt::ReuseAddr, 1).at(Step::Live)
}

fn resend(s: &KernelSocket, p: &Plan) -> Result<(), RebuildError> {
    if p.resend_len() == 0 {
        return Ok(());
    }
    // Copied out of the handed-over chunks: the socket takes them from one buffer.
    let data = p
        .sent
        .copy_from(p.r.sent_una)
        .ok_or(kernel::error::code::ENOMEM)
        .at(Step::Resend)?;
    // Room for all of it at once: a new socket's send buffer is small, and a window of
    // unacknowledged bytes can be megabytes.
    let room = (data.len() + (64 << 10)).min(i32::MAX as usize) as i32;
    s.set_sndbuf(room);
    send_all(s, &data, Step::Resend)
}

fn fin(net: &Net<'_>, s: &KernelSocket, p: &Plan) -> Result<(), RebuildError> {
    if p.owner_fin {
        // The owner's FIN again, at the same sequence number.
        s.shutdown_wr().at(Step::Fin)?;
    }
    if let Some((seg, n)) = &p.client_fin {
        // The client's FIN, fed to the stack as received (as libsoccr does with a raw
        // socket).
        net.receive_packet(&seg[..*n], p.v6).at(Step::Fin)?;
    }
    Ok(())
}

/// What [`StepTimes`] times: the steps of [`rebuild`], detaching the sock, and (timed by
/// the caller) finding the listener and queueing the sock on it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Phase {
    /// A step of [`rebuild`].
    Step(Step),
    /// Detaching the sock from its kernel `struct socket`.
    Detach,
    /// Looking the listener up (its family decides the socket's).
    Listener,
    /// Appending the sock to the listener's accept queue, or parking it.
    Inject,
    /// Born from the listener instead of the steps of [`rebuild`].
    Born,
    /// Recording what the application looks up (`TAKEN_GET`) and notifying.
    Record,
}

/// The phases in the order they run, as [`StepTimes`] indexes and names them.
pub(crate) const PHASES: [(Phase, &str); 14] = [
    (Phase::Listener, "listener"),
    (Phase::Born, "born"),
    (Phase::Step(Step::Open), "open"),
    (Phase::Step(Step::Sequences), "sequences"),
    (Phase::Step(Step::Addresses), "addresses"),
    (Phase::Step(Step::Options), "options"),
    (Phase::Step(Step::Queues), "queues"),
    (Phase::Step(Step::Window), "window"),
    (Phase::Step(Step::Live), "live"),
    (Phase::Step(Step::Resend), "resend"),
    (Phase::Step(Step::Fin), "fin"),
    (Phase::Detach, "detach"),
    (Phase::Record, "record"),
    (Phase::Inject, "inject"),
];

/// Nanoseconds spent in each [`Phase`], summed over connections.
#[derive(Default)]
pub(crate) struct StepTimes {
    /// Indexed as [`PHASES`].
    pub(crate) ns: [u64; PHASES.len()],
    /// When the phase being timed began.
    mark: u64,
}

impl StepTimes {
    /// Starts timing.
    pub(crate) fn start(&mut self) {
        self.mark = crate::glue::now_ns();
    }

    /// Adds the times of `other` (timed on another CPU).
    pub(crate) fn add(&mut self, other: &StepTimes) {
        for (a, b) in self.ns.iter_mut().zip(other.ns.iter()) {
            *a += b;
        }
    }

    /// Ends `phase` now (and starts the next).
    pub(crate) fn end(&mut self, phase: Phase) {
        let now = crate::glue::now_ns();
        if let Some(i) = PHASES.iter().position(|(p, _)| *p == phase) {
            self.ns[i] += now.saturating_sub(self.mark);
        }
        self.mark = now;
    }
}

/// Rebuilds `p` as a live socket detached for an accept queue. `v6sock`: an IPv6 socket (an
/// IPv4 connection then uses IPv4-mapped addresses, for a dual-stack listener). Adds the time
/// of each step to `t`.
pub(crate) fn rebuild(
    net: &Net<'_>,
    p: &Plan,
    v6sock: bool,
    t: &mut StepTimes,
) -> Result<Detached, RebuildError> {
    t.start();
    let s = open(net, v6sock)?;
    t.end(Phase::Step(Step::Open));
    sequences(&s, p)?;
    t.end(Phase::Step(Step::Sequences));
    addresses(&s, p, v6sock)?;
    t.end(Phase::Step(Step::Addresses));
    options(&s, p)?;
    t.end(Phase::Step(Step::Options));
    queues(&s, p)?;
    t.end(Phase::Step(Step::Queues));
    s.repair_window(&p.window).at(Step::Window)?;
    t.end(Phase::Step(Step::Window));
    live(&s, p)?;
    t.end(Phase::Step(Step::Live));
    resend(&s, p)?;
    t.end(Phase::Step(Step::Resend));
    fin(net, &s, p)?;
    t.end(Phase::Step(Step::Fin));
    let d = s.detach();
    t.end(Phase::Detach);
    Ok(d)
}
