// SPDX-License-Identifier: GPL-2.0

//! Membership: who is alive, who is suspected, and when the cluster declares a node down.
//!
//! Pure and deterministic: time is passed in (`now`, a [`Duration`] since an arbitrary
//! origin), and every decision is returned as an [`Event`] for the daemon to carry out.
//!
//! Rules (see `Documentation/cluster.rst`):
//!
//! - A peer is *suspected* when nothing authenticated came from it for the dead time
//!   (`interval * missed`). A peer never heard since this node started is never suspected
//!   (it is *unknown*, no vote, and not declared down: a node that starts late must not be
//!   declared down, and fenced, at cluster start), unless a start-up grace is configured and
//!   has passed.
//! - A node whose own loop stalled for a dead time or more (a paused VM, a stopped process)
//!   renews no lease for one dead time after it runs again: the datagrams queued for it
//!   meanwhile are stale, and may give it a quorum it no longer has before the verdicts
//!   queued behind them tell it that it was declared down.
//! - Peers vote through their heartbeat views (a node listed `Suspect` or `Down`) and through
//!   immediate `NodeDown` votes. A node reaches a *verdict* on N when it has quorum and a
//!   majority of the declared nodes (N included in the count, N's own voice never) vote N
//!   down: this node if it suspects N, plus every live, unsuspected peer whose latest view
//!   does. A verdict heard from a live peer is adopted.
//! - Two-node clusters have no majority without the dead node: a verdict comes only from a
//!   configured fence command that succeeded; without one, never.
//! - Quorum: a majority of the declared nodes heard and unsuspected, this node included.
//! - The lease ([`Membership::lease_until`]) runs until the earliest moment a verdict on
//!   this node could be reached, less a margin: every peer echoes in its heartbeat view the
//!   sequence number of the latest message it accepted from this node, whose sending time
//!   this node knows; a peer cannot vote before a dead time after that. A verdict needs the
//!   votes of `votes_needed` peers, so the lease runs to the `votes_needed`-th earliest such
//!   moment, a peer not live here counting as "any time". The peers then take over at their
//!   verdict, with no lease wait. No lease without quorum (in two-node clusters: only while
//!   the peer is alive or fenced), and never after this node learnt it was declared down.
//! - A node declared down stays down for that incarnation: its messages are counted as a
//!   split-brain alarm and otherwise ignored; it comes back only with a newer incarnation.

use crate::wire::{NodeDown, NodeState, ViewEntry};
use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

/// The membership's fixed parameters.
#[derive(Clone, Debug)]
pub struct Params {
    /// This node.
    pub self_id: u32,
    /// This node's incarnation.
    pub incarnation: u64,
    /// The other declared nodes.
    pub peers: Vec<u32>,
    /// Heartbeat interval.
    pub interval: Duration,
    /// Heartbeats missed before a peer is suspected.
    pub missed: u32,
    /// Whether a fence command is configured.
    pub fence: bool,
    /// After this long without being heard since this node started, a peer is suspected
    /// (`None`: a peer never heard in this run is never suspected).
    pub startup_grace: Option<Duration>,
    /// The lease ends this long before the earliest possible verdict on this node: the
    /// frames already queued or on the wire when it ends, and timer slack.
    pub lease_margin: Duration,
}

impl Params {
    /// Time without a message after which a peer is suspected.
    pub fn dead_time(&self) -> Duration {
        self.interval * self.missed
    }

    /// Declared nodes, this one included.
    pub fn declared(&self) -> usize {
        self.peers.len() + 1
    }

    /// A majority of the declared nodes.
    pub fn majority(&self) -> usize {
        self.declared() / 2 + 1
    }

    /// Whether this is a two-node cluster (verdicts only through fencing).
    pub fn two_node(&self) -> bool {
        self.declared() == 2
    }

    /// Votes a verdict needs (`None`: no verdict is ever reached).
    pub fn votes_needed(&self) -> Option<usize> {
        match (self.two_node(), self.fence) {
            (true, true) => Some(1),
            (true, false) => None,
            (false, _) => Some(self.majority()),
        }
    }

    /// Nodes, this one included, that must be alive for quorum.
    pub fn quorum(&self) -> usize {
        if self.two_node() {
            1
        } else {
            self.majority()
        }
    }
}

/// What the daemon has to do or report.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    /// A peer was heard for the first time, or with a newer incarnation (daemon restart).
    Joined {
        /// The node.
        node: u32,
        /// Its incarnation.
        incarnation: u64,
    },
    /// A node declared down came back with a newer incarnation.
    Rejoined {
        /// The node.
        node: u32,
        /// Its new incarnation.
        incarnation: u64,
    },
    /// This node started suspecting `node`: send the vote to every peer.
    Suspect {
        /// The node.
        node: u32,
        /// Its incarnation as known here.
        incarnation: u64,
    },
    /// A suspected node was heard again before a verdict.
    Cleared {
        /// The node.
        node: u32,
    },
    /// This node reached a verdict: send it to every peer.
    Verdict {
        /// The node declared down.
        node: u32,
        /// Its incarnation.
        incarnation: u64,
    },
    /// A peer's verdict was adopted.
    Adopted {
        /// The node declared down.
        node: u32,
        /// Its incarnation.
        incarnation: u64,
        /// The peer whose verdict it was.
        from: u32,
    },
    /// Run the fence command for `node`, then report with [`Membership::fence_done`].
    Fence {
        /// The node.
        node: u32,
        /// Its incarnation.
        incarnation: u64,
    },
    /// The fence command failed.
    FenceFailed {
        /// The node.
        node: u32,
    },
    /// Take over `node` (exactly once per declared-down incarnation).
    Takeover {
        /// The node.
        node: u32,
        /// Its incarnation.
        incarnation: u64,
    },
    /// This node lost quorum.
    QuorumLost,
    /// This node has quorum again.
    QuorumRegained,
    /// A message came from a node declared down, in the incarnation declared down.
    SplitBrain {
        /// The node.
        node: u32,
        /// Its incarnation.
        incarnation: u64,
    },
    /// A live peer reports this node, in this incarnation, declared down.
    SelfDeclaredDown {
        /// The peer.
        by: u32,
    },
    /// This node's own loop did not run for `gap` (a dead time or more): no lease renewal
    /// for one dead time.
    Stalled {
        /// How long it did not run.
        gap: Duration,
    },
}

/// A peer's stage.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    /// A member: alive, suspected, or not heard yet.
    Member,
    /// Two-node cluster: suspected, the fence command runs (or runs again at `retry`).
    Fencing {
        /// When the next attempt is due, after a failure.
        retry: Option<Duration>,
    },
    /// Declared down in its current incarnation.
    Down {
        /// The fence command runs; the takeover waits for it.
        fence_pending: bool,
    },
}

#[derive(Clone, Debug)]
struct Peer {
    incarnation: u64,
    /// The highest sequence number accepted from it in `incarnation` (0: none).
    heard_seq: u64,
    /// When this node sent the latest of its messages the peer reports having accepted, in
    /// this node's clock: the peer cannot vote this node down before a dead time after it.
    echo: Option<Duration>,
    last_seen: Duration,
    heard: bool,
    stage: Stage,
    /// Its latest view: node -> (incarnation, state).
    view: BTreeMap<u32, (u64, NodeState)>,
    vote_sent: bool,
}

/// Whether an authenticated message is let through.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Admit {
    /// Process it.
    Accept,
    /// From a node declared down in this incarnation: counted, ignored.
    Zombie,
    /// From an older incarnation than known.
    Stale,
    /// From a node that is not a declared peer.
    Unknown,
}

/// One node's membership state.
#[derive(Clone, Debug)]
pub struct Membership {
    p: Params,
    peers: BTreeMap<u32, Peer>,
    next_heartbeat: Duration,
    quorum: bool,
    self_down: bool,
    events: Vec<Event>,
    split_brain: u64,
    /// When this node started.
    started: Duration,
    /// The last [`Membership::tick`].
    last_tick: Option<Duration>,
    /// No lease renewal before this (after a stall).
    renew_after: Duration,
    /// This node's recent messages: (sequence number, when sent), oldest first.
    sent: VecDeque<(u64, Duration)>,
}

/// Messages remembered in [`Membership::sent`]: echoes of older ones are ignored (a peer
/// echoes the newest it accepted, at most an interval old, and a node sends a few
/// messages per peer and interval).
const SENT_LOG: usize = 4096;

impl Membership {
    /// Starts at `now`: no peer heard yet; none is suspected before it was heard (or before
    /// the start-up grace passed).
    pub fn new(p: Params, now: Duration) -> Self {
        let peers = p
            .peers
            .iter()
            .map(|&n| {
                (
                    n,
                    Peer {
                        incarnation: 0,
                        heard_seq: 0,
                        echo: None,
                        last_seen: now,
                        heard: false,
                        stage: Stage::Member,
                        view: BTreeMap::new(),
                        vote_sent: false,
                    },
                )
            })
            .collect();
        Self {
            p,
            peers,
            next_heartbeat: now,
            quorum: false,
            self_down: false,
            events: Vec::new(),
            split_brain: 0,
            started: now,
            last_tick: None,
            renew_after: Duration::ZERO,
            sent: VecDeque::new(),
        }
    }

    /// This node sent a message with sequence number `seq` at `now`.
    pub fn sent(&mut self, seq: u64, now: Duration) {
        if self.sent.back().is_some_and(|&(s, _)| s >= seq) {
            return;
        }
        if self.sent.len() == SENT_LOG {
            self.sent.pop_front();
        }
        self.sent.push_back((seq, now));
    }

    /// When this node sent its message `seq`, or an earlier one (never later): `None` when
    /// it is older than the log.
    fn sent_at(&self, seq: u64) -> Option<Duration> {
        let i = self.sent.partition_point(|&(s, _)| s <= seq);
        i.checked_sub(1).map(|i| self.sent[i].1)
    }

    /// The parameters.
    pub fn params(&self) -> &Params {
        &self.p
    }

    /// Events since the last call.
    pub fn take_events(&mut self) -> Vec<Event> {
        std::mem::take(&mut self.events)
    }

    /// Messages counted from nodes already declared down.
    pub fn split_brain(&self) -> u64 {
        self.split_brain
    }

    /// A peer's stage and incarnation.
    pub fn peer(&self, node: u32) -> Option<(Stage, u64)> {
        self.peers.get(&node).map(|p| (p.stage, p.incarnation))
    }

    fn suspected(&self, p: &Peer, now: Duration) -> bool {
        if !p.heard {
            return self
                .p
                .startup_grace
                .is_some_and(|g| now.saturating_sub(self.started) >= g);
        }
        now.saturating_sub(p.last_seen) >= self.p.dead_time()
    }

    fn live(&self, p: &Peer, now: Duration) -> bool {
        p.stage == Stage::Member && p.heard && !self.suspected(p, now)
    }

    /// Whether a heartbeat is due; if so, schedules the next one.
    pub fn heartbeat_due(&mut self, now: Duration) -> bool {
        if now < self.next_heartbeat {
            return false;
        }
        self.next_heartbeat += self.p.interval;
        if self.next_heartbeat <= now {
            // Late (a stalled process): no burst of catch-up heartbeats.
            self.next_heartbeat = now + self.p.interval;
        }
        true
    }

    /// Lets an authenticated message from `from` in `incarnation`, sequence number `seq`,
    /// through, or not.
    pub fn admit(&mut self, from: u32, incarnation: u64, seq: u64, now: Duration) -> Admit {
        let Some(p) = self.peers.get_mut(&from) else {
            return Admit::Unknown;
        };
        if incarnation < p.incarnation {
            return Admit::Stale;
        }
        if let Stage::Down { .. } = p.stage {
            if incarnation == p.incarnation {
                self.split_brain += 1;
                self.events.push(Event::SplitBrain {
                    node: from,
                    incarnation,
                });
                return Admit::Zombie;
            }
            p.stage = Stage::Member;
            p.view.clear();
            p.vote_sent = false;
            p.incarnation = incarnation;
            p.heard_seq = 0;
            p.echo = None;
            self.events.push(Event::Rejoined {
                node: from,
                incarnation,
            });
        } else if let Stage::Fencing { retry: Some(_) } = p.stage {
            // Two-node cluster, the fence failed and the peer is heard again: no verdict.
            p.stage = Stage::Member;
            p.vote_sent = false;
            self.events.push(Event::Cleared { node: from });
            if incarnation > p.incarnation {
                p.incarnation = incarnation;
                p.view.clear();
                p.heard_seq = 0;
                p.echo = None;
            }
        } else if incarnation > p.incarnation || !p.heard {
            p.incarnation = incarnation;
            p.view.clear();
            p.heard_seq = 0;
            p.echo = None;
            self.events.push(Event::Joined {
                node: from,
                incarnation,
            });
        }
        p.heard = true;
        p.last_seen = now;
        p.heard_seq = p.heard_seq.max(seq);
        self.evaluate(now);
        Admit::Accept
    }

    /// A heartbeat's view from an admitted peer.
    pub fn on_view(&mut self, from: u32, view: &[ViewEntry], now: Duration) {
        let me = (self.p.self_id, self.p.incarnation);
        let echo = view
            .iter()
            .find(|e| (e.node, e.incarnation) == me && e.heard_seq != 0)
            .and_then(|e| self.sent_at(e.heard_seq));
        let Some(p) = self.peers.get_mut(&from) else {
            return;
        };
        if echo > p.echo {
            p.echo = echo;
        }
        p.view = view
            .iter()
            .map(|e| (e.node, (e.incarnation, e.state)))
            .collect();
        for e in view {
            if e.state == NodeState::Down {
                self.verdict_heard(from, e.node, e.incarnation, now);
            }
        }
        self.evaluate(now);
    }

    /// A `NodeDown` vote or verdict from an admitted peer.
    pub fn on_node_down(&mut self, from: u32, nd: &NodeDown, now: Duration) {
        if let Some(p) = self.peers.get_mut(&from) {
            let state = if nd.verdict {
                NodeState::Down
            } else {
                NodeState::Suspect
            };
            p.view.insert(nd.node, (nd.incarnation, state));
        }
        if nd.verdict {
            self.verdict_heard(from, nd.node, nd.incarnation, now);
        }
        self.evaluate(now);
    }

    fn verdict_heard(&mut self, from: u32, node: u32, incarnation: u64, now: Duration) {
        if node == self.p.self_id {
            if incarnation == self.p.incarnation && !self.self_down {
                self.self_down = true;
                self.events.push(Event::SelfDeclaredDown { by: from });
            }
            return;
        }
        if self.p.two_node() || node == from {
            return;
        }
        let from_live = self.peers.get(&from).is_some_and(|p| self.live(p, now));
        let Some(t) = self.peers.get_mut(&node) else {
            return;
        };
        if !from_live || t.stage != Stage::Member || incarnation < t.incarnation {
            return;
        }
        t.incarnation = incarnation;
        self.events.push(Event::Adopted {
            node,
            incarnation,
            from,
        });
        self.declare_down(node);
    }

    /// Marks `node` down and asks for the fence or the takeover.
    fn declare_down(&mut self, node: u32) {
        let fence = self.p.fence;
        let Some(t) = self.peers.get_mut(&node) else {
            return;
        };
        t.stage = Stage::Down {
            fence_pending: fence,
        };
        let incarnation = t.incarnation;
        self.events.push(if fence {
            Event::Fence { node, incarnation }
        } else {
            Event::Takeover { node, incarnation }
        });
    }

    /// The outcome of a fence command asked for by [`Event::Fence`].
    pub fn fence_done(&mut self, node: u32, ok: bool, now: Duration) {
        let dead = self.p.dead_time();
        let heard_lately = self
            .peers
            .get(&node)
            .is_some_and(|p| p.heard && !self.suspected(p, now));
        let Some(t) = self.peers.get_mut(&node) else {
            return;
        };
        let incarnation = t.incarnation;
        match t.stage {
            Stage::Down {
                fence_pending: true,
            } => {
                // Majority verdict: the fence is extra; the takeover goes on either way.
                if !ok {
                    self.events.push(Event::FenceFailed { node });
                }
                t.stage = Stage::Down {
                    fence_pending: false,
                };
                self.events.push(Event::Takeover { node, incarnation });
            }
            Stage::Fencing { .. } if ok => {
                t.stage = Stage::Down {
                    fence_pending: false,
                };
                self.events.push(Event::Verdict { node, incarnation });
                self.events.push(Event::Takeover { node, incarnation });
            }
            Stage::Fencing { .. } => {
                self.events.push(Event::FenceFailed { node });
                if heard_lately {
                    t.stage = Stage::Member;
                    t.vote_sent = false;
                    self.events.push(Event::Cleared { node });
                } else {
                    t.stage = Stage::Fencing {
                        retry: Some(now + dead),
                    };
                }
            }
            _ => {}
        }
        self.evaluate(now);
    }

    fn votes(&self, node: u32, now: Duration) -> usize {
        let Some(t) = self.peers.get(&node) else {
            return 0;
        };
        let own = usize::from(self.suspected(t, now));
        let peers = self
            .peers
            .iter()
            .filter(|(&n, p)| n != node && self.live(p, now))
            .filter(|(_, p)| match p.view.get(&node) {
                Some((_, NodeState::Suspect)) => true,
                Some((inc, NodeState::Down)) => *inc >= t.incarnation,
                _ => false,
            })
            .count();
        own + peers
    }

    /// Nodes alive as seen here, this one included.
    pub fn alive(&self, now: Duration) -> usize {
        1 + self.peers.values().filter(|p| self.live(p, now)).count()
    }

    /// Whether this node has quorum.
    pub fn has_quorum(&self, now: Duration) -> bool {
        self.alive(now) >= self.p.quorum()
    }

    /// Whether this node may renew its lease.
    pub fn lease_ok(&self, now: Duration) -> bool {
        self.lease_until(now).is_some_and(|u| u > now)
    }

    /// Until when this node may serve its bindings (`None`: not at all): the earliest moment
    /// the cluster could reach a verdict on it, less the margin (see the module's rules).
    pub fn lease_until(&self, now: Duration) -> Option<Duration> {
        if self.self_down || now < self.renew_after || !self.has_quorum(now) {
            return None;
        }
        let dead = self.p.dead_time();
        let Some(needed) = self.p.votes_needed() else {
            // Two nodes, no fence command: nobody ever takes this node over.
            return Some(now + dead);
        };
        if self.p.two_node() {
            // The peer could fence us and take over: only while it is alive, or fenced.
            let p = self.peers.values().next()?;
            if p.stage
                == (Stage::Down {
                    fence_pending: false,
                })
            {
                return Some(now + dead);
            }
        }
        // Earliest vote of each peer; one not live here could vote any time (`None` sorts
        // first).
        let mut votes: Vec<Option<Duration>> = self
            .peers
            .values()
            .map(|p| p.echo.filter(|_| self.live(p, now)).map(|e| e + dead))
            .collect();
        votes.sort_unstable();
        let verdict = (*votes.get(needed.checked_sub(1)?)?)?;
        verdict.checked_sub(self.p.lease_margin)
    }

    /// Whether a live peer reported this node down.
    pub fn self_down(&self) -> bool {
        self.self_down
    }

    /// While nothing is in motion, the moment [`Membership::tick`] next has work: the next
    /// heartbeat, the earliest moment a peer becomes suspect (its last message plus the
    /// dead time), the end of the start-up grace, or the end of a stall's pause of the
    /// lease, whichever comes first. Nothing in motion means: every peer a member that is
    /// not suspected (heard, or not heard and not yet suspected), or down with no fence
    /// pending; the quorum as last evaluated; no event waiting. `None` otherwise: the caller
    /// ticks every quarter interval then, as suspicions, votes and fencing need.
    pub fn quiet_until(&self, now: Duration) -> Option<Duration> {
        if !self.events.is_empty() || self.self_down || self.quorum != self.has_quorum(now) {
            return None;
        }
        let dead = self.p.dead_time();
        let mut until = self.next_heartbeat;
        if self.renew_after > now {
            until = until.min(self.renew_after);
        }
        for p in self.peers.values() {
            match p.stage {
                Stage::Member if p.vote_sent => return None,
                Stage::Member if p.heard => until = until.min(p.last_seen + dead),
                Stage::Member => {
                    if let Some(g) = self.p.startup_grace {
                        until = until.min(self.started + g);
                    }
                }
                Stage::Down {
                    fence_pending: false,
                } => {}
                _ => return None,
            }
        }
        Some(until)
    }

    /// Advances time: suspicions, verdicts, fence retries, quorum changes. Called at least
    /// every half dead time, and every quarter interval while anything is in motion
    /// ([`Membership::quiet_until`]): a gap of a dead time is a stall of this node (see
    /// [`Event::Stalled`]).
    pub fn tick(&mut self, now: Duration) {
        let dead = self.p.dead_time();
        if let Some(last) = self.last_tick {
            let gap = now.saturating_sub(last);
            if gap >= dead {
                self.renew_after = now + dead;
                self.events.push(Event::Stalled { gap });
            }
        }
        self.last_tick = Some(now);
        self.evaluate(now);
    }

    fn evaluate(&mut self, now: Duration) {
        let nodes: Vec<u32> = self.peers.keys().copied().collect();
        for &n in &nodes {
            let p = &self.peers[&n];
            if p.stage != Stage::Member {
                continue;
            }
            let suspected = self.suspected(p, now);
            if suspected != p.vote_sent {
                let incarnation = p.incarnation;
                self.peers.get_mut(&n).unwrap().vote_sent = suspected;
                self.events.push(if suspected {
                    Event::Suspect {
                        node: n,
                        incarnation,
                    }
                } else {
                    Event::Cleared { node: n }
                });
            }
        }
        let quorum = self.has_quorum(now);
        if quorum != self.quorum {
            self.quorum = quorum;
            self.events.push(if quorum {
                Event::QuorumRegained
            } else {
                Event::QuorumLost
            });
        }
        if self.self_down {
            return;
        }
        for &n in &nodes {
            let p = &self.peers[&n];
            match p.stage {
                Stage::Member if quorum && self.suspected(p, now) => {
                    let Some(needed) = self.p.votes_needed() else {
                        continue;
                    };
                    if self.votes(n, now) < needed {
                        continue;
                    }
                    let incarnation = p.incarnation;
                    if self.p.two_node() {
                        self.peers.get_mut(&n).unwrap().stage = Stage::Fencing { retry: None };
                        self.events.push(Event::Fence {
                            node: n,
                            incarnation,
                        });
                    } else {
                        self.events.push(Event::Verdict {
                            node: n,
                            incarnation,
                        });
                        self.declare_down(n);
                    }
                }
                Stage::Fencing { retry: Some(at) } if now >= at => {
                    let incarnation = p.incarnation;
                    self.peers.get_mut(&n).unwrap().stage = Stage::Fencing { retry: None };
                    self.events.push(Event::Fence {
                        node: n,
                        incarnation,
                    });
                }
                _ => {}
            }
        }
    }

    /// This node's view for its heartbeats: itself and every peer.
    pub fn view(&self, now: Duration) -> Vec<ViewEntry> {
        let mut v = vec![ViewEntry {
            node: self.p.self_id,
            incarnation: self.p.incarnation,
            state: NodeState::Alive,
            heard_seq: 0,
        }];
        for (&node, p) in &self.peers {
            let state = match p.stage {
                Stage::Down { .. } => NodeState::Down,
                Stage::Fencing { .. } => NodeState::Suspect,
                Stage::Member if self.suspected(p, now) => NodeState::Suspect,
                Stage::Member if p.heard => NodeState::Alive,
                Stage::Member => NodeState::Unknown,
            };
            v.push(ViewEntry {
                node,
                incarnation: p.incarnation,
                state,
                heard_seq: p.heard_seq,
            });
        }
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::NodeDown;

    const MS: Duration = Duration::from_millis(1);

    /// A simulated cluster: every node's membership, a shared clock, and a network that
    /// delivers heartbeats and votes at once, except over cut links or from stopped nodes.
    struct Sim {
        nodes: BTreeMap<u32, Membership>,
        now: Duration,
        stopped: Vec<u32>,
        cut: Vec<(u32, u32)>,
        events: BTreeMap<u32, Vec<Event>>,
        /// Fence outcome per fencing node, when a fence command is configured.
        fence_ok: bool,
        zombie_drops: u64,
        /// Each node's last sequence number.
        seqs: BTreeMap<u32, u64>,
        /// The end of each node's kernel lease: the latest `lease_until` its daemon asked
        /// for (renewals only extend it).
        lease_end: BTreeMap<u32, Duration>,
        /// Whether a fence command is configured (a fenced node's lease does not matter).
        fence: bool,
        /// Each node ticks as permtcpd's loop does (`Daemon::next_tick`): at its
        /// [`Membership::quiet_until`] deadline, at least every interval and half dead time,
        /// every quarter interval while anything is in motion; its lease is also renewed as
        /// messages come in. Otherwise every node ticks every 10 ms step.
        deadline_ticks: bool,
        /// With `deadline_ticks`: when each node ticks next, and how many times it ticked.
        wake: BTreeMap<u32, Duration>,
        ticks: BTreeMap<u32, u32>,
        /// Steps at which a running node's kernel lease (`lease_end`) had run out.
        lease_lapses: u32,
    }

    fn params(id: u32, n: u32, inc: u64, fence: bool) -> Params {
        Params {
            self_id: id,
            incarnation: inc,
            peers: (1..=n).filter(|&p| p != id).collect(),
            interval: 100 * MS,
            missed: 3,
            fence,
            startup_grace: None,
            lease_margin: 20 * MS,
        }
    }

    impl Sim {
        fn new(n: u32, fence: bool) -> Self {
            let nodes = (1..=n)
                .map(|id| {
                    (
                        id,
                        Membership::new(params(id, n, 10, fence), Duration::ZERO),
                    )
                })
                .collect();
            Sim {
                nodes,
                now: Duration::ZERO,
                stopped: vec![],
                cut: vec![],
                events: BTreeMap::new(),
                fence_ok: true,
                zombie_drops: 0,
                seqs: BTreeMap::new(),
                lease_end: BTreeMap::new(),
                fence,
                deadline_ticks: false,
                wake: BTreeMap::new(),
                ticks: BTreeMap::new(),
                lease_lapses: 0,
            }
        }

        /// Node `id`'s kernel lease, renewed to what its membership allows now.
        fn renew(&mut self, id: u32) {
            let now = self.now;
            if let Some(u) = self.nodes[&id].lease_until(now).filter(|&u| u > now) {
                let end = self.lease_end.entry(id).or_default();
                *end = (*end).max(u);
            }
        }

        fn linked(&self, a: u32, b: u32) -> bool {
            !self.cut.contains(&(a, b)) && !self.cut.contains(&(b, a))
        }

        fn inc(&self, id: u32) -> u64 {
            self.nodes[&id].p.incarnation
        }

        /// Delivers one message's effect from `from` to `to`.
        fn deliver(&mut self, from: u32, to: u32, what: &dyn Fn(&mut Membership, Duration)) {
            let now = self.now;
            let seq = self.seqs.entry(from).or_insert(0);
            *seq += 1;
            let seq = *seq;
            self.nodes.get_mut(&from).unwrap().sent(seq, now);
            if self.stopped.contains(&to) || !self.linked(from, to) {
                return;
            }
            let inc = self.inc(from);
            let m = self.nodes.get_mut(&to).unwrap();
            match m.admit(from, inc, seq, now) {
                Admit::Accept => what(m, now),
                Admit::Zombie => self.zombie_drops += 1,
                _ => {}
            }
            if self.deadline_ticks {
                self.renew(to);
            }
        }

        /// Runs the daemons' reaction to events: votes and verdicts go out, fences succeed
        /// or fail as configured.
        fn drain(&mut self) {
            loop {
                let mut out = vec![];
                for (&id, m) in self.nodes.iter_mut() {
                    if self.stopped.contains(&id) {
                        continue;
                    }
                    for e in m.take_events() {
                        self.events.entry(id).or_default().push(e);
                        out.push((id, e));
                    }
                }
                if out.is_empty() {
                    return;
                }
                for (id, e) in out {
                    if let (Event::Takeover { node, .. }, false) = (e, self.fence) {
                        // Never two nodes answering for one connection.
                        let end = self.lease_end.get(&node).copied().unwrap_or_default();
                        assert!(
                            end <= self.now,
                            "node {id} takes node {node} over at {:?}, its lease ends at {end:?}",
                            self.now
                        );
                    }
                    let peers: Vec<u32> = self.nodes.keys().copied().filter(|&p| p != id).collect();
                    match e {
                        Event::Suspect { node, incarnation }
                        | Event::Verdict { node, incarnation } => {
                            let nd = NodeDown {
                                node,
                                incarnation,
                                verdict: matches!(e, Event::Verdict { .. }),
                            };
                            for p in peers {
                                self.deliver(id, p, &|m, now| m.on_node_down(id, &nd, now));
                            }
                        }
                        Event::Fence { node, .. } => {
                            let ok = self.fence_ok;
                            if ok {
                                self.stopped.push(node);
                            }
                            let now = self.now;
                            self.nodes.get_mut(&id).unwrap().fence_done(node, ok, now);
                        }
                        _ => {}
                    }
                }
            }
        }

        /// Advances the clock by `d` in 10 ms steps, with heartbeats as scheduled.
        fn run(&mut self, d: Duration) {
            let end = self.now + d;
            while self.now < end {
                self.now += 10 * MS;
                let ids: Vec<u32> = self.nodes.keys().copied().collect();
                for &id in &ids {
                    if self.stopped.contains(&id) {
                        continue;
                    }
                    let now = self.now;
                    if self.deadline_ticks {
                        if self.lease_end.get(&id).is_some_and(|&e| e <= now) {
                            self.lease_lapses += 1;
                        }
                        if self.wake.get(&id).is_some_and(|&w| now < w) {
                            continue;
                        }
                        *self.ticks.entry(id).or_default() += 1;
                    }
                    let m = self.nodes.get_mut(&id).unwrap();
                    m.tick(now);
                    self.renew(id);
                    let m = self.nodes.get_mut(&id).unwrap();
                    if m.heartbeat_due(now) {
                        let view = m.view(now);
                        for &p in ids.iter().filter(|&&p| p != id) {
                            self.deliver(id, p, &|m, now| m.on_view(id, &view, now));
                        }
                    }
                    if self.deadline_ticks {
                        let m = &self.nodes[&id];
                        let (interval, dead) = (m.p.interval, m.p.dead_time());
                        let next = match m.quiet_until(now) {
                            Some(q) => q.min(now + interval.min(dead / 2)),
                            None => now + interval / 4,
                        };
                        self.wake.insert(id, next);
                    }
                }
                self.drain();
            }
        }

        fn takeovers(&self, id: u32) -> Vec<u32> {
            self.events
                .get(&id)
                .into_iter()
                .flatten()
                .filter_map(|e| match e {
                    Event::Takeover { node, .. } => Some(*node),
                    _ => None,
                })
                .collect()
        }

        fn first_takeover_at(&mut self, ids: &[u32], limit: Duration) -> Option<Duration> {
            let start = self.now;
            while self.now < start + limit {
                self.run(10 * MS);
                if ids.iter().all(|&i| !self.takeovers(i).is_empty()) {
                    return Some(self.now - start);
                }
            }
            None
        }

        fn lease(&self, id: u32) -> bool {
            self.nodes[&id].lease_ok(self.now)
        }
    }

    #[test]
    fn parameters() {
        let p = params(1, 3, 1, false);
        assert_eq!((p.dead_time(), p.majority(), p.quorum()), (300 * MS, 2, 2));
        assert_eq!(p.votes_needed(), Some(2));
        let p = params(1, 2, 1, false);
        assert_eq!((p.majority(), p.quorum(), p.votes_needed()), (2, 1, None));
        assert_eq!(params(1, 2, 1, true).votes_needed(), Some(1));
        assert_eq!(params(1, 5, 1, false).majority(), 3);
        assert_eq!(params(1, 4, 1, false).majority(), 3);
    }

    #[test]
    fn normal_operation() {
        let mut s = Sim::new(3, false);
        s.run(5000 * MS);
        for id in 1..=3 {
            assert!(s.takeovers(id).is_empty());
            assert!(s.lease(id), "{id}");
            let m = &s.nodes[&id];
            assert!(m.view(s.now).iter().all(|e| e.state == NodeState::Alive));
            assert_eq!(m.alive(s.now), 3);
            let evs = &s.events[&id];
            assert!(evs
                .iter()
                .all(|e| matches!(e, Event::Joined { .. } | Event::QuorumRegained)));
        }
    }

    #[test]
    fn no_lease_before_peers_are_heard() {
        let mut s = Sim::new(3, false);
        s.stopped = vec![2, 3];
        s.run(1000 * MS);
        assert!(!s.lease(1));
        // Peers never heard are unknown, not suspected; one node alone reaches no verdict.
        assert!(s.takeovers(1).is_empty());
        assert_eq!(s.nodes[&1].view(s.now)[1].state, NodeState::Unknown);
        // With a start-up grace, they are suspected once it passed.
        let mut p = params(1, 3, 1, false);
        p.startup_grace = Some(500 * MS);
        let m = Membership::new(p, Duration::ZERO);
        assert_eq!(m.view(400 * MS)[1].state, NodeState::Unknown);
        assert_eq!(m.view(500 * MS)[1].state, NodeState::Suspect);
    }

    #[test]
    fn a_late_node_is_not_declared_down_at_cluster_start() {
        // Node 3 starts 2 s after the others: nobody declares it down meanwhile (with a fence
        // command, it would have been fenced at cluster start), and it joins.
        let mut s = Sim::new(3, true);
        s.stopped.push(3);
        s.run(2000 * MS);
        for id in [1, 2] {
            assert!(s.takeovers(id).is_empty(), "{id}");
            assert!(s.lease(id), "two of three: quorum");
            assert!(s.events[&id]
                .iter()
                .all(|e| !matches!(e, Event::Fence { .. } | Event::Suspect { .. })));
            assert_eq!(s.nodes[&id].view(s.now)[2].state, NodeState::Unknown);
        }
        s.stopped.clear();
        s.nodes
            .insert(3, Membership::new(params(3, 3, 10, true), s.now));
        s.run(500 * MS);
        assert!((1..=3).all(|id| s.lease(id)));
        // Once heard, a crash of it is taken over as any other's.
        s.stopped.push(3);
        s.run(1000 * MS);
        assert_eq!(s.takeovers(1), vec![3]);
        assert_eq!(s.takeovers(2), vec![3]);
    }

    #[test]
    fn a_node_never_heard_is_declared_down_after_the_startup_grace() {
        let mut s = Sim::new(3, false);
        for id in [1, 2] {
            let mut p = params(id, 3, 10, false);
            p.startup_grace = Some(1000 * MS);
            s.nodes.insert(id, Membership::new(p, Duration::ZERO));
        }
        s.stopped.push(3);
        s.run(900 * MS);
        assert!(s.takeovers(1).is_empty());
        s.run(300 * MS);
        assert_eq!(s.takeovers(1), vec![3]);
        assert_eq!(s.takeovers(2), vec![3]);
        assert_eq!(
            s.nodes[&1].peer(3).unwrap().1,
            0,
            "incarnation 0: never heard"
        );
    }

    /// Node 1 (of 3, incarnation 10) sends message `seq` at `now`, and peers 2 and 3 (whose
    /// own sequence numbers are `seq` too) answer with a heartbeat whose view echoes `echo`.
    fn exchange(m: &mut Membership, seq: u64, echo: u64, now: Duration) {
        m.sent(seq, now);
        let entry = |node: u32, heard_seq: u64| ViewEntry {
            node,
            incarnation: 10,
            state: NodeState::Alive,
            heard_seq,
        };
        for p in [2, 3] {
            assert_eq!(m.admit(p, 10, seq, now), Admit::Accept);
            m.on_view(p, &[entry(1, echo), entry(2, seq), entry(3, seq)], now);
        }
        m.tick(now);
    }

    /// Peer `from`'s heartbeat view names node 1 in `incarnation`, echoing `seq`.
    fn echo(m: &mut Membership, from: u32, incarnation: u64, seq: u64, now: Duration) {
        let entry = ViewEntry {
            node: 1,
            incarnation,
            state: NodeState::Alive,
            heard_seq: seq,
        };
        m.on_view(from, &[entry], now);
    }

    #[test]
    fn the_lease_runs_to_the_earliest_possible_verdict() {
        let mut m = Membership::new(params(1, 3, 10, false), Duration::ZERO);
        let mut now = Duration::ZERO;
        for seq in 1..=10 {
            now += 100 * MS;
            // The peers echo the message sent one round before.
            exchange(&mut m, seq, seq - 1, now);
        }
        // Message 9 went out at 900 ms: no peer can vote before 1200 ms; less the margin.
        assert_eq!(m.lease_until(now), Some(1180 * MS));
        // One peer echoes message 10 (sent at 1000 ms): a verdict needs both peers' votes
        // (two of three), and this one cannot vote before 1300 ms.
        echo(&mut m, 2, 10, 10, now);
        assert_eq!(m.lease_until(now), Some(1280 * MS));
        // The other's echo moves nothing further.
        echo(&mut m, 3, 10, 10, now);
        assert_eq!(m.lease_until(now), Some(1280 * MS));
        // An echo of an older incarnation of this node, or of a message never sent, moves
        // nothing back or forward.
        echo(&mut m, 3, 9, 1000, now);
        assert_eq!(m.lease_until(now), Some(1280 * MS));
        // Node 3 falls silent: node 1 keeps quorum with node 2, and node 3 alone can reach
        // no verdict, but its vote could come any time: the lease follows node 2's echoes.
        for seq in 11..=13 {
            now += 100 * MS;
            m.sent(seq, now);
            m.admit(2, 10, seq, now);
            echo(&mut m, 2, 10, seq, now);
            m.tick(now);
        }
        assert!(m.has_quorum(now));
        assert_eq!(m.lease_until(now), Some(now + 280 * MS), "node 2's echo");
        // Node 2 silent too: quorum lost, no lease.
        now += 300 * MS;
        m.tick(now);
        assert_eq!(m.lease_until(now), None);
    }

    #[test]
    fn a_stalled_node_renews_no_lease_on_stale_datagrams() {
        // Node 1 runs with quorum, then does not run for 2 s (SIGSTOP); its peers declared it
        // down meanwhile. When it runs again, it first reads the heartbeats queued for it,
        // sent before the verdict (everyone alive): they must not renew its lease before the
        // verdict queued behind them arrives.
        let mut m = Membership::new(params(1, 3, 10, false), Duration::ZERO);
        let mut now = Duration::ZERO;
        let mut seq = 0;
        while now < 1000 * MS {
            now += 25 * MS;
            seq += 1;
            exchange(&mut m, seq, seq, now);
        }
        assert!(m.lease_ok(now));
        now += 2000 * MS;
        // Queued: they echo the messages node 1 sent before it stopped.
        for p in [2, 3] {
            assert_eq!(m.admit(p, 10, seq + 1, now), Admit::Accept);
        }
        m.tick(now);
        assert!(m.has_quorum(now), "the stale heartbeats look fresh");
        assert!(m.take_events().contains(&Event::Stalled { gap: 2000 * MS }));
        assert!(!m.lease_ok(now), "but no lease for a dead time");
        // The verdict behind them.
        m.on_node_down(
            2,
            &NodeDown {
                node: 1,
                incarnation: 10,
                verdict: true,
            },
            now + MS,
        );
        assert!(m.self_down());
        assert!(!m.lease_ok(now + 400 * MS));
        // Without a verdict (a stall shorter than the cluster's patience), renewals resume
        // after one dead time, though fresh echoes come at once.
        let mut m2 = Membership::new(params(1, 3, 10, false), Duration::ZERO);
        m2.tick(Duration::ZERO);
        let mut now = 500 * MS;
        let mut seq = 1;
        exchange(&mut m2, seq, seq, now);
        assert!(!m2.lease_ok(500 * MS));
        while now < 800 * MS {
            now += 25 * MS;
            seq += 1;
            exchange(&mut m2, seq, seq, now);
            assert_eq!(m2.lease_ok(now), now >= 800 * MS, "{now:?}");
        }
    }

    #[test]
    fn deadline_driven_ticks_keep_leases_and_detect_a_crash_as_soon() {
        let mut s = Sim::new(3, false);
        s.deadline_ticks = true;
        s.run(2000 * MS);
        // About one tick per interval once every peer was heard (the first ticks, with
        // peers not heard yet, come every quarter interval), instead of four.
        for id in 1..=3 {
            let t = s.ticks[&id];
            assert!((19..=30).contains(&t), "node {id}: {t} ticks in 2 s");
            assert!(s.lease(id), "{id}");
        }
        // No lease ran out meanwhile: renewed as the peers' echoes came in.
        assert_eq!(s.lease_lapses, 0);
        s.stopped.push(3);
        let t = s.first_takeover_at(&[1, 2], 2000 * MS).expect("verdict");
        // As with a tick every 10 ms: the wake-up at the suspicion deadline, then quarter
        // intervals while the votes come.
        assert!(t <= 300 * MS + 30 * MS, "{t:?}");
        assert!(t >= 200 * MS, "{t:?}");
        s.run(2000 * MS);
        assert_eq!(s.takeovers(1), vec![3]);
        assert_eq!(s.takeovers(2), vec![3]);
        assert!(s.lease(1) && s.lease(2));
        assert_eq!(s.lease_lapses, 0);
    }

    #[test]
    fn crash_detected_within_dead_time() {
        let mut s = Sim::new(3, false);
        s.run(1000 * MS);
        s.stopped.push(3);
        let t = s.first_takeover_at(&[1, 2], 2000 * MS).expect("verdict");
        // Dead time 300 ms after the last heartbeat, which is at most one interval before.
        assert!(t <= 300 * MS + 20 * MS, "{t:?}");
        assert!(t >= 200 * MS, "{t:?}");
        s.run(3000 * MS);
        assert_eq!(s.takeovers(1), vec![3]);
        assert_eq!(s.takeovers(2), vec![3]);
        assert!(s.lease(1) && s.lease(2));
        assert_eq!(
            s.nodes[&1].peer(3),
            Some((
                Stage::Down {
                    fence_pending: false
                },
                10
            ))
        );
    }

    #[test]
    fn partitioned_minority_stops_its_lease() {
        let mut s = Sim::new(5, false);
        s.run(1000 * MS);
        for a in [1, 2] {
            for b in [3, 4, 5] {
                s.cut.push((a, b));
            }
        }
        s.run(2000 * MS);
        // The majority declares both minority nodes down, once.
        for id in [3, 4, 5] {
            let mut t = s.takeovers(id);
            t.sort();
            assert_eq!(t, vec![1, 2], "{id}");
            assert!(s.lease(id));
        }
        // The minority reaches no verdict and stops renewing.
        for id in [1, 2] {
            assert!(s.takeovers(id).is_empty());
            assert!(!s.lease(id));
            assert!(s.events[&id].contains(&Event::QuorumLost));
        }
        // The partition heals: the minority's old incarnations are zombies.
        s.cut.clear();
        s.run(500 * MS);
        assert!(s.zombie_drops > 0);
        assert!(s.nodes[&3].split_brain() > 0);
        // The minority learns it was declared down.
        assert!(s.nodes[&1].self_down());
        assert!(s.events[&1]
            .iter()
            .any(|e| matches!(e, Event::SelfDeclaredDown { .. })));
        for id in [3, 4, 5] {
            assert_eq!(s.takeovers(id).len(), 2);
        }
    }

    #[test]
    fn no_takeover_before_the_lease_ends_under_random_faults() {
        // Five nodes; at random moments links are cut and healed and nodes stop. Every
        // takeover is checked against the lease of the node taken over (in `Sim::drain`).
        let mut rng = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = |n: u64| {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            (rng % n) as u32
        };
        let mut takeovers = 0;
        for _ in 0..40 {
            let mut s = Sim::new(5, false);
            s.run((500 + next(500)) * MS);
            for _ in 0..4 {
                let (a, b) = (1 + next(5), 1 + next(5));
                match next(3) {
                    0 if a != b => s.cut.push((a, b)),
                    1 => s.stopped.push(a),
                    _ => s.cut.clear(),
                }
                s.run((10 + next(400)) * MS);
            }
            s.run(1000 * MS);
            takeovers += (1..=5).map(|id| s.takeovers(id).len()).sum::<usize>();
        }
        assert!(takeovers > 20, "the faults led to takeovers: {takeovers}");
    }

    #[test]
    fn two_nodes_without_fence_never_decide() {
        let mut s = Sim::new(2, false);
        s.run(1000 * MS);
        assert!(s.lease(1) && s.lease(2));
        s.stopped.push(2);
        s.run(3000 * MS);
        assert!(s.takeovers(1).is_empty());
        // Nobody can take node 1 over, so it keeps serving its own connections.
        assert!(s.lease(1));
        assert_eq!(s.nodes[&1].view(s.now)[1].state, NodeState::Suspect);
    }

    #[test]
    fn two_nodes_with_fence() {
        let mut s = Sim::new(2, true);
        s.run(1000 * MS);
        assert!(s.lease(1) && s.lease(2));
        s.stopped.push(2);
        let t = s
            .first_takeover_at(&[1], 2000 * MS)
            .expect("fenced verdict");
        assert!(t <= 320 * MS, "{t:?}");
        let evs = &s.events[&1];
        let fence = evs
            .iter()
            .position(|e| matches!(e, Event::Fence { node: 2, .. }));
        let take = evs
            .iter()
            .position(|e| matches!(e, Event::Takeover { node: 2, .. }));
        assert!(fence.unwrap() < take.unwrap());
        s.run(2000 * MS);
        assert_eq!(s.takeovers(1), vec![2]);
        assert!(s.lease(1));
    }

    #[test]
    fn two_nodes_fence_failure_blocks_takeover_and_lease() {
        let mut s = Sim::new(2, true);
        s.fence_ok = false;
        s.run(1000 * MS);
        s.cut.push((1, 2));
        s.run(2000 * MS);
        for id in [1, 2] {
            assert!(s.takeovers(id).is_empty());
            assert!(!s.lease(id));
            let fences = s.events[&id]
                .iter()
                .filter(|e| matches!(e, Event::Fence { .. }))
                .count();
            assert!(fences >= 2, "retried: {fences}");
        }
        // The link comes back before any fence succeeded: both are members again.
        s.cut.clear();
        s.run(1000 * MS);
        assert!(s.lease(1) && s.lease(2));
        assert!(s.takeovers(1).is_empty() && s.takeovers(2).is_empty());
    }

    #[test]
    fn zombie_needs_a_new_incarnation() {
        let mut s = Sim::new(3, false);
        s.run(1000 * MS);
        // SIGSTOP: node 3 is silent and does not run either.
        s.stopped.push(3);
        s.run(1000 * MS);
        assert_eq!(s.takeovers(1), vec![3]);
        // SIGCONT: same incarnation; its clock jumped.
        s.stopped.clear();
        s.run(500 * MS);
        assert!(s.nodes[&1].split_brain() > 0 && s.nodes[&2].split_brain() > 0);
        assert_eq!(
            s.nodes[&1].peer(3).unwrap().0,
            Stage::Down {
                fence_pending: false
            }
        );
        assert!(s.nodes[&3].self_down());
        assert!(!s.lease(3));
        // No second takeover, no rejoin.
        assert_eq!(s.takeovers(1), vec![3]);
        assert_eq!(s.takeovers(2), vec![3]);
        // Restarted with a newer incarnation: it rejoins.
        let mut p = params(3, 3, 11, false);
        p.incarnation = 11;
        s.nodes.insert(3, Membership::new(p, s.now));
        s.run(500 * MS);
        assert!(s.events[&1].contains(&Event::Rejoined {
            node: 3,
            incarnation: 11
        }));
        assert_eq!(s.nodes[&1].peer(3), Some((Stage::Member, 11)));
        assert!(s.lease(3));
        // And a later crash of the new incarnation is taken over again.
        s.stopped.push(3);
        s.run(1000 * MS);
        assert_eq!(s.takeovers(1), vec![3, 3]);
    }

    #[test]
    fn asymmetric_link_verdict_is_adopted() {
        // Node 4 still hears node 5, the other three do not: the majority decides and node
        // 4 adopts the verdict, so that it takes over its share too.
        let mut s = Sim::new(5, false);
        s.run(1000 * MS);
        for a in [1, 2, 3] {
            s.cut.push((a, 5));
        }
        s.run(1000 * MS);
        for id in 1..=4 {
            assert_eq!(s.takeovers(id), vec![5], "{id}");
        }
        assert!(s.events[&4]
            .iter()
            .any(|e| matches!(e, Event::Adopted { node: 5, .. })));
    }

    #[test]
    fn majority_with_fence_fences_before_takeover() {
        let mut s = Sim::new(3, true);
        s.fence_ok = false;
        s.run(1000 * MS);
        s.stopped.push(3);
        s.run(1000 * MS);
        // A failed fence is reported; the majority's verdict stands.
        for id in [1, 2] {
            assert_eq!(s.takeovers(id), vec![3]);
            assert!(s.events[&id].contains(&Event::FenceFailed { node: 3 }));
        }
    }

    #[test]
    fn a_suspicion_cleared_in_time_is_no_verdict() {
        let mut s = Sim::new(3, false);
        s.run(1000 * MS);
        s.cut.push((1, 3));
        s.run(1000 * MS);
        // Only node 1 suspects 3; node 2 still hears it: no majority.
        assert!(s.takeovers(1).is_empty() && s.takeovers(2).is_empty());
        assert!(s.events[&1].contains(&Event::Suspect {
            node: 3,
            incarnation: 10
        }));
        s.cut.clear();
        s.run(200 * MS);
        assert!(s.events[&1].contains(&Event::Cleared { node: 3 }));
        assert!((1..=3).all(|id| s.lease(id)));
    }
}
