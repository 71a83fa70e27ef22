// SPDX-License-Identifier: GPL-2.0

//! Per-network-namespace state and its locks.
//!
//! Every namespace has its own cluster view (ownership declarations, failed nodes), mirror,
//! parked connections and takeover records: a cluster node's view of its peers is a property
//! of the network it is attached to, and containers sharing a kernel must not see each other's
//! clusters. The C glue keeps a pointer to a [`NetState`] in the namespace's `net_generic`
//! slot (`adapter.rs` creates and frees it).
//!
//! This file holds the state and the operations that touch only it; the takeover's
//! orchestration is in `takeover.rs`, the mirror's table in `snoop.rs`.
//!
//! # Lock order
//!
//! `control` (mutex: one changing command at a time) before `cluster` (mutex) before `snoop`
//! (IRQ-safe spinlock) before `rebuilding` (IRQ-safe spinlock); `fence` (IRQ-safe spinlock)
//! after `cluster`, with no other spinlock held. `parking` and `taken` (mutexes) are taken
//! alone, never with another of these held.

use crate::glue::{Net, OutVerdict, Skb};
use crate::logic::decl::{check_insert, Declaration, MAX_DECLS};
use crate::logic::errno::{code, Error as LogicError};
use crate::logic::fence::{arp_claim, ndisc_claim, Fence};
use crate::logic::ops::StatusReply;
use crate::logic::packet::{flags, parse, HEADER_MAX};
use crate::logic::snoop::{Filter, FlowKey, Limits};
use crate::logic::snoopnl::StatsInfo;
use crate::logic::track::Side;
use crate::logic::uapi::FAMILY_VERSION;
use crate::snoop::SnoopTable;
use crate::takeover::{Parking, TakenList};
use core::sync::atomic::{AtomicU64, Ordering};
use kernel::prelude::*;
use kernel::sync::{Mutex, SpinLockIrq};
use kernel::{new_mutex, new_spinlock_irq};

/// The cluster as this namespace sees it: declarations and the nodes declared failed.
pub(crate) struct Cluster {
    /// Stored declarations, in insertion order; at most `MAX_DECLS`, checked as a set.
    pub(crate) decls: KVec<KBox<Declaration>>,
    /// Nodes declared failed and taken over.
    pub(crate) failed: KVec<u32>,
}

impl Cluster {
    /// Every stored declaration.
    pub(crate) fn all(&self) -> impl Iterator<Item = &Declaration> + Clone {
        self.decls.iter().map(|b| &**b)
    }

    /// Whether `node` was declared failed here.
    pub(crate) fn is_failed(&self, node: u32) -> bool {
        self.failed.contains(&node)
    }

    /// The declaration of `node` and the local node's id.
    pub(crate) fn roles(&self, node: u32) -> Result<(&Declaration, u32), LogicError> {
        let owner = self
            .all()
            .find(|d| d.node_id == node)
            .ok_or(LogicError::new(
                code::ENOENT,
                c"no declaration for this node id",
            ))?;
        let me = self
            .all()
            .find(|d| d.local)
            .map(|d| d.node_id)
            .ok_or(LogicError::new(
                code::EINVAL,
                c"no local declaration: this node is in no cluster",
            ))?;
        Ok((owner, me))
    }

    /// The snooped bindings: those the declarations give this node, failed nodes'
    /// track-only.
    pub(crate) fn filter(&self) -> Filter {
        Filter::compile_failed(self.all(), &|n| self.is_failed(n))
    }

    /// Brings the mirror's filter and the fence up to date with the cluster view.
    pub(crate) fn apply(&self, state: &NetState) {
        state.snoop.lock().refilter(self.filter());
        state
            .fence
            .lock()
            .refresh(self.all(), &|n| self.is_failed(n));
    }
}

/// State of one network namespace.
#[pin_data]
pub(crate) struct NetState {
    /// The namespace's cookie, reported by STATUS_GET so tests can tell namespaces apart.
    pub(crate) cookie: u64,
    /// Held by the commands that change the namespace's state (SNOOP_START, SNOOP_STOP,
    /// TAKEOVER, DIRECTIVE): genetlink runs handlers in parallel.
    #[pin]
    pub(crate) control: Mutex<()>,
    /// Declarations and failed nodes.
    #[pin]
    pub(crate) cluster: Mutex<Cluster>,
    /// Mirrored connections; shared with the netfilter hook (softirq), hence IRQ-safe.
    #[pin]
    pub(crate) snoop: SpinLockIrq<SnoopTable>,
    /// Connections a takeover moved out of the mirror and is rebuilding, sorted: the local
    /// stack's resets of them are dropped as for mirrored ones.
    #[pin]
    pub(crate) rebuilding: SpinLockIrq<KVec<FlowKey>>,
    /// Taken-over connections waiting for their listener.
    #[pin]
    pub(crate) parking: Mutex<Parking>,
    /// Records of taken-over connections for the restarted application.
    #[pin]
    pub(crate) taken: Mutex<TakenList>,
    /// This node's lease, its own bindings and the failed nodes' MACs; read by both hooks.
    #[pin]
    pub(crate) fence: SpinLockIrq<Fence>,
    /// Segments the fence dropped.
    fenced: AtomicU64,
    /// Frames received from a node declared failed here (split-brain alarm).
    split_brain: AtomicU64,
}

fn enomem() -> LogicError {
    LogicError::new(code::ENOMEM, c"out of memory")
}

impl NetState {
    /// The state of a new namespace.
    pub(crate) fn new(cookie: u64) -> impl PinInit<Self> {
        pin_init!(Self {
            cookie,
            control <- new_mutex!((), "permtcp_control"),
            cluster <- new_mutex!(
                Cluster {
                    decls: KVec::new(),
                    failed: KVec::new(),
                },
                "permtcp_cluster"
            ),
            snoop <- new_spinlock_irq!(SnoopTable::new(), "permtcp_snoop"),
            rebuilding <- new_spinlock_irq!(KVec::new(), "permtcp_rebuilding"),
            parking <- new_mutex!(Parking::default(), "permtcp_parking"),
            taken <- new_mutex!(TakenList::default(), "permtcp_taken"),
            fence <- new_spinlock_irq!(Fence::default(), "permtcp_fence"),
            fenced: AtomicU64::new(0),
            split_brain: AtomicU64::new(0),
        })
    }

    /// Adds a validated declaration unless it conflicts with the stored set.
    pub(crate) fn add(&self, d: &Declaration) -> Result<(), LogicError> {
        // Allocate before taking the lock; on any error the stored set is unchanged.
        let boxed = KBox::new(*d, GFP_KERNEL).map_err(|_| enomem())?;
        let mut c = self.cluster.lock();
        check_insert(d, c.decls.iter().map(|b| &**b))?;
        c.decls.push(boxed, GFP_KERNEL).map_err(|_| enomem())?;
        c.apply(self);
        Ok(())
    }

    /// Deletes the declaration of `node_id`.
    pub(crate) fn delete(&self, node_id: u32) -> Result<(), LogicError> {
        let mut c = self.cluster.lock();
        let i = c
            .decls
            .iter()
            .position(|d| d.node_id == node_id)
            .ok_or(LogicError::new(
                code::ENOENT,
                c"no declaration for this node id",
            ))?;
        // The index is in bounds, so removal cannot fail.
        let _ = c.decls.remove(i);
        c.apply(self);
        Ok(())
    }

    /// Runs `f` on the declaration at position `index`, if any, under the lock.
    pub(crate) fn with_decl<R>(
        &self,
        index: usize,
        f: impl FnOnce(&Declaration) -> R,
    ) -> Option<R> {
        self.cluster.lock().decls.get(index).map(|d| f(d))
    }

    /// The STATUS_GET reply.
    pub(crate) fn status(&self) -> StatusReply {
        let mut st = StatusReply {
            version: FAMILY_VERSION.into(),
            decl_max: MAX_DECLS as u32,
            netns_cookie: self.cookie,
            ..StatusReply::default()
        };
        {
            let c = self.cluster.lock();
            st.decl_count = c.decls.len() as u32;
            st.local_node = c.all().find(|d| d.local).map(|d| d.node_id);
            // At most MAX_DECLS nodes can be declared failed: every push fits.
            for &n in c.failed.iter() {
                let _ = st.failed.push(n);
            }
        }
        let p = self.parking.lock();
        st.parked = p.parked.len() as u32;
        st.park_queued = p.queued;
        st.park_reset = p.reset;
        st.lease_left_ms = self.fence.lock().lease.left_ms(crate::glue::now_ns());
        st.fenced = self.fenced.load(Ordering::Relaxed);
        st.split_brain = self.split_brain.load(Ordering::Relaxed);
        st
    }

    /// LEASE_SET: this node may send from its bindings for `ms` more (0: not at all).
    pub(crate) fn lease(&self, ms: u32) {
        self.fence.lock().lease.renew(crate::glue::now_ns(), ms);
    }

    /// Starts snooping device `ifindex` with `limits`, for the current declarations.
    pub(crate) fn snoop_start(&self, net: &Net<'_>, ifindex: u32, limits: Limits) -> Result {
        let _control = self.control.lock();
        if net.ifindex() != 0 {
            return Err(EBUSY);
        }
        {
            let c = self.cluster.lock();
            self.snoop.lock().start(limits, c.filter());
        }
        net.attach(ifindex)
            .inspect_err(|_| self.snoop.lock().stop())
    }

    /// Stops snooping; every mirrored connection is forgotten.
    pub(crate) fn snoop_stop(&self, net: &Net<'_>) -> Result {
        let _control = self.control.lock();
        net.detach()?;
        self.snoop.lock().stop();
        Ok(())
    }

    /// The snooped device went away: the hook is gone, the mirror is forgotten.
    pub(crate) fn snoop_lost(&self) {
        self.snoop.lock().stop();
    }

    /// One frame from the snooping hook; one from a node declared failed here raises the
    /// split-brain alarm.
    pub(crate) fn frame(&self, skb: &Skb<'_>, now_ms: u64) {
        if let Some(mac) = skb.src_mac() {
            if self.fence.lock().from_failed(&mac) {
                self.split_brain.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.snoop.lock().on_frame(skb, now_ms);
    }

    /// What the LOCAL_OUT hook does with `skb`, a TCP segment this host sends at `now_ns`:
    /// drop it when it is from this node's own bindings and the lease has run out (fencing),
    /// or when it is a reset of a connection mirrored here or being rebuilt (reset
    /// suppression).
    pub(crate) fn out(&self, skb: &Skb<'_>, now_ns: u64) -> OutVerdict {
        let mut buf = [0u8; HEADER_MAX];
        let Some(seg) = skb
            .header(&mut buf)
            .and_then(|hdr| parse(hdr, skb.len() as usize).ok())
        else {
            return match skb.header(&mut buf).and_then(ndisc_claim) {
                Some(claim) => self.silence(&claim, now_ns),
                None => OutVerdict::Accept,
            };
        };
        if self.fence.lock().drops(&seg.src, seg.sport, now_ns) {
            self.fenced.fetch_add(1, Ordering::Relaxed);
            return OutVerdict::DropFenced;
        }
        if !seg.has(flags::RST) {
            return OutVerdict::Accept;
        }
        let key = FlowKey::of(&seg, Side::Owner);
        let mirrored = self.snoop.lock().holds(&key);
        if mirrored || self.rebuilding.lock().binary_search(&key).is_ok() {
            OutVerdict::DropReset
        } else {
            OutVerdict::Accept
        }
    }

    /// The ARP_OUT hook (`arp` from the ARP header on): a fenced node claims none of its
    /// addresses.
    pub(crate) fn arp_out(&self, arp: &[u8], now_ns: u64) -> OutVerdict {
        match arp_claim(arp) {
            Some(claim) => self.silence(&claim, now_ns),
            None => OutVerdict::Accept,
        }
    }

    /// Drops a neighbour message claiming `claim` when the fence says so (counted as
    /// fenced).
    fn silence(&self, claim: &crate::logic::packet::Addr, now_ns: u64) -> OutVerdict {
        if self.fence.lock().silences(claim, now_ns) {
            self.fenced.fetch_add(1, Ordering::Relaxed);
            OutVerdict::DropFenced
        } else {
            OutVerdict::Accept
        }
    }

    /// Snooping counters and limits, the hook's cost included.
    pub(crate) fn stats(&self, net: &Net<'_>, now_ms: u64) -> StatsInfo {
        let mut stats = {
            let mut t = self.snoop.lock();
            t.gc(now_ms);
            t.stats(net.ifindex())
        };
        (stats.hook_ns, stats.hook_frames) = net.hook_cost();
        stats.rst_dropped = net.rst_dropped();
        stats
    }
}
