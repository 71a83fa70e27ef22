// SPDX-License-Identifier: GPL-2.0

//! Per-network-namespace state.
//!
//! Every namespace has its own set of ownership declarations: a cluster node's view of its
//! peers is a property of the network it is attached to, and containers sharing a kernel must
//! not see each other's clusters. The C glue keeps a pointer to a [`NetState`] in the
//! namespace's `net_generic` slot; these entry points create and free it.

use crate::glue::SkBuff;
use crate::glue::{PtcpNet, Snooped};
use crate::logic::decl::{check_insert, Declaration, MAX_DECLS};
use crate::logic::errno::{code, Error as LogicError};
use crate::logic::snoop::{Filter, FlowKey};
use crate::logic::snoopnl::DirectiveInfo;
use crate::snoop::SnoopTable;
use crate::takeover::{Parked, Reset, Taken};
use core::ffi::c_void;
use kernel::prelude::*;
use kernel::sync::{Mutex, SpinLockIrq};
use kernel::types::ForeignOwnable;
use kernel::{new_mutex, new_spinlock_irq};

/// State of one network namespace.
#[pin_data]
pub(crate) struct NetState {
    /// The namespace's cookie, reported by STATUS_GET so tests can tell namespaces apart.
    pub(crate) cookie: u64,
    /// Stored declarations, in insertion order; at most `MAX_DECLS`, checked as a set.
    /// Lock order: `decls` before `snoop`.
    #[pin]
    decls: Mutex<KVec<KBox<Declaration>>>,
    /// Nodes declared failed and taken over. Lock order: `decls`, `failed`, `snoop`.
    #[pin]
    failed: Mutex<KVec<u32>>,
    /// Mirrored connections; shared with the netfilter hook (softirq), hence IRQ-safe.
    #[pin]
    pub(crate) snoop: SpinLockIrq<SnoopTable>,
    /// Taken-over connections waiting for their listener. Taken alone (never with another
    /// of these locks held).
    #[pin]
    parking: Mutex<Parking>,
    /// Records of taken-over connections for the restarted application. Taken alone.
    #[pin]
    taken: Mutex<TakenList>,
    /// Connections a takeover moved out of the mirror and is rebuilding, sorted: the local
    /// stack's resets of them are dropped as for mirrored ones. Taken after `snoop`, or alone.
    #[pin]
    rebuilding: SpinLockIrq<KVec<FlowKey>>,
}

/// At most this many taken-over connection records are kept...
pub(crate) const MAX_TAKEN: usize = 4096;
/// ...holding at most this many sent bytes for verification.
pub(crate) const MAX_TAKEN_BYTES: usize = 64 << 20;

/// Taken-over connections, oldest first.
#[derive(Default)]
struct TakenList {
    recs: KVec<Taken>,
    /// Kept sent bytes, all records.
    bytes: usize,
}

/// How long a taken-over connection waits for the application to listen before it is reset.
pub(crate) const PARK_TIMEOUT_MS: u64 = 60_000;

/// Taken-over connections without a listener yet, and what became of earlier ones.
#[derive(Default)]
struct Parking {
    parked: KVec<Parked>,
    /// Handed to a listener after waiting.
    queued: u32,
    /// Reset because no listener came in time.
    reset: u32,
}

/// The declaration of `node` and the local node's id.
fn roles(decls: &KVec<KBox<Declaration>>, node: u32) -> Result<(&Declaration, u32), LogicError> {
    let owner = decls
        .iter()
        .find(|d| d.node_id == node)
        .ok_or(LogicError::new(
            code::ENOENT,
            c"no declaration for this node id",
        ))?;
    let me = decls
        .iter()
        .find(|d| d.local)
        .map(|d| d.node_id)
        .ok_or(LogicError::new(
            code::EINVAL,
            c"no local declaration: this node is in no cluster",
        ))?;
    Ok((owner, me))
}

/// The snooped bindings: those the declarations give this node, failed nodes' track-only.
fn filter(decls: &KVec<KBox<Declaration>>, failed: &KVec<u32>) -> Filter {
    Filter::compile_failed(decls.iter().map(|b| &**b), &|n| failed.contains(&n))
}

/// What a takeover (or a directive) found: plans to rebuild, connections for the next peer
/// or to reset, and the connections left alone.
pub(crate) struct Takeover {
    pub(crate) plans: KVec<crate::takeover::Plan>,
    /// The failed owner's addresses whose ARP ownership comes to this node.
    pub(crate) announce: KVec<crate::logic::packet::Addr>,
    /// Connections this node cannot take over, for the next peer.
    pub(crate) directives: KVec<DirectiveInfo>,
    /// Connections no peer after this one can take over.
    pub(crate) resets: KVec<Reset>,
    /// This node's connections that could not be handled (no memory).
    pub(crate) not_ready: u32,
    pub(crate) not_mine: u32,
}

impl Takeover {
    /// Files one of this node's connections: a plan when it can be rebuilt, else a
    /// directive to the peer `next` names, else a reset.
    fn settle(
        &mut self,
        k: &crate::logic::snoop::FlowKey,
        c: &crate::logic::track::Conn<crate::snoop::Alloc>,
        now_ms: u64,
        rx: crate::logic::decl::RxPolicy,
        next: impl FnOnce() -> Option<u32>,
    ) {
        let ready = c.readiness().is_ok() && crate::takeover::rebuildable(c.state);
        if ready {
            if let Some(p) = crate::takeover::Plan::new(k, c, now_ms, rx) {
                if self.plans.push(p, GFP_KERNEL).is_err() {
                    self.not_ready += 1;
                }
                return;
            }
        }
        match next() {
            Some(n) => self.forward(k, n),
            None => {
                if self.resets.push(Reset::new(k, c), GFP_KERNEL).is_err() {
                    self.not_ready += 1;
                }
            }
        }
    }

    fn forward(&mut self, key: &crate::logic::snoop::FlowKey, next: u32) {
        let d = DirectiveInfo { key: *key, next };
        if self.directives.push(d, GFP_KERNEL).is_err() {
            self.not_ready += 1;
        }
    }
}

/// A snapshot for STATUS_GET.
pub(crate) struct Status {
    pub(crate) decls: u32,
    pub(crate) local_node: Option<u32>,
    /// Taken-over connections waiting for a listener now.
    pub(crate) parked: u32,
    /// Parked connections handed to a listener later.
    pub(crate) park_queued: u32,
    /// Parked connections reset because no listener came in time.
    pub(crate) park_reset: u32,
    /// Nodes declared failed here: the first `n_failed`.
    pub(crate) failed: [u32; MAX_DECLS],
    pub(crate) n_failed: usize,
}

impl NetState {
    fn new(cookie: u64) -> impl PinInit<Self> {
        pin_init!(Self {
            cookie,
            decls <- new_mutex!(KVec::new(), "permtcp_decls"),
            failed <- new_mutex!(KVec::new(), "permtcp_failed"),
            snoop <- new_spinlock_irq!(SnoopTable::new(), "permtcp_snoop"),
            parking <- new_mutex!(Parking::default(), "permtcp_parking"),
            taken <- new_mutex!(TakenList::default(), "permtcp_taken"),
            rebuilding <- new_spinlock_irq!(KVec::new(), "permtcp_rebuilding"),
        })
    }

    /// Adds a validated declaration unless it conflicts with the stored set.
    pub(crate) fn add(&self, d: &Declaration) -> Result<(), LogicError> {
        let enomem = || LogicError::new(code::ENOMEM, c"out of memory");
        // Allocate before taking the lock; on any error the stored set is unchanged.
        let boxed = KBox::new(*d, GFP_KERNEL).map_err(|_| enomem())?;
        let mut decls = self.decls.lock();
        check_insert(d, decls.iter().map(|b| &**b))?;
        decls.push(boxed, GFP_KERNEL).map_err(|_| enomem())?;
        let failed = self.failed.lock();
        self.snoop.lock().refilter(filter(&decls, &failed));
        Ok(())
    }

    /// Deletes the declaration of `node_id`.
    pub(crate) fn delete(&self, node_id: u32) -> Result<(), LogicError> {
        let mut decls = self.decls.lock();
        let i = decls
            .iter()
            .position(|d| d.node_id == node_id)
            .ok_or(LogicError::new(
                code::ENOENT,
                c"no declaration for this node id",
            ))?;
        // The index is in bounds, so removal cannot fail.
        let _ = decls.remove(i);
        let failed = self.failed.lock();
        self.snoop.lock().refilter(filter(&decls, &failed));
        Ok(())
    }

    /// Declares `node` failed and collects the connections this node takes over from it.
    pub(crate) fn plan_takeover(&self, node: u32, now_ms: u64) -> Result<Takeover, LogicError> {
        use crate::logic::policy::{declares, next_after, takeover_order};
        let decls = self.decls.lock();
        let (owner, me) = roles(&decls, node)?;
        if me == node {
            return Err(LogicError::new(
                code::EINVAL,
                c"the local node cannot take itself over",
            ));
        }
        let mut failed = self.failed.lock();
        if failed.contains(&node) {
            return Err(LogicError::new(code::EALREADY, c"node already taken over"));
        }
        failed
            .push(node, GFP_KERNEL)
            .map_err(|_| LogicError::new(code::ENOMEM, c"out of memory"))?;
        let is_failed = |n: u32| failed.contains(&n);
        let all = || decls.iter().map(|b| &**b);
        let whose = |k: &crate::logic::snoop::FlowKey| {
            if !declares(owner, &k.owner_addr, k.owner_port) {
                return None;
            }
            let order = takeover_order(all(), owner, k.owner_port, &is_failed);
            Some(order.iter().next() == Some(&me))
        };
        let mut announce = KVec::new();
        let v4 = owner
            .addrs4
            .iter()
            .map(|a| crate::logic::packet::Addr::v4(*a));
        let v6 = owner.addrs6.iter().map(|a| crate::logic::packet::Addr(*a));
        let addrs = Iterator::chain(v4, v6);
        for a in addrs {
            if crate::logic::policy::arp_owner(all(), owner, &a, &is_failed) == Some(me) {
                announce
                    .push(a, GFP_KERNEL)
                    .map_err(|_| LogicError::new(code::ENOMEM, c"out of memory"))?;
            }
        }
        // Room for every mirrored connection, reserved before the spinlock: the table's
        // connections move out under it, and their bytes are copied after it (large copies
        // need GFP_KERNEL).
        let room = self.snoop.lock().len();
        let enomem = || LogicError::new(code::ENOMEM, c"out of memory");
        let mut taking = KVVec::with_capacity(room, GFP_KERNEL).map_err(|_| enomem())?;
        let mut keys = KVec::with_capacity(room, GFP_KERNEL).map_err(|_| enomem())?;
        let (no_room, not_mine) = {
            let mut table = self.snoop.lock();
            let counts = table.take_mine(whose, &mut taking);
            // Still covered by reset suppression until they are rebuilt: the keys go in
            // before the lock is released (within the reserved capacity: no allocation).
            for (k, _) in taking.iter() {
                let _ = keys.push(*k, GFP_ATOMIC);
            }
            keys.sort_unstable();
            *self.rebuilding.lock() = keys;
            // The failed node's bindings become track-only: its connections another peer
            // takes over (or that a directive may bring here) are followed, none starts.
            table.refilter(filter(&decls, &failed));
            counts
        };
        let rx = owner.rx;
        let mut t = Takeover {
            plans: KVec::with_capacity(taking.len(), GFP_KERNEL).unwrap_or_default(),
            announce,
            directives: KVec::new(),
            resets: KVec::new(),
            not_ready: no_room,
            not_mine,
        };
        for (k, c) in taking.iter() {
            let next = || {
                let order = takeover_order(all(), owner, k.owner_port, &is_failed);
                next_after(&order, me)
            };
            t.settle(k, c, now_ms, rx, next);
        }
        self.snoop.lock().release(&mut taking);
        Ok(t)
    }

    /// A fail-over directive for `r.key` of failed node `r.node`: takes the connection over
    /// if this node can, else says where it goes next (or that it is reset).
    pub(crate) fn directive(
        &self,
        r: &crate::logic::snoopnl::DirectiveRequest,
        now_ms: u64,
    ) -> Result<Takeover, LogicError> {
        use crate::logic::policy::{declares, next_after, takeover_order};
        let decls = self.decls.lock();
        let failed = self.failed.lock();
        let (owner, me) = roles(&decls, r.node)?;
        if !failed.contains(&r.node) {
            return Err(LogicError::new(
                code::EAGAIN,
                c"the node is not declared failed here (yet)",
            ));
        }
        if !declares(owner, &r.key.owner_addr, r.key.owner_port) {
            return Err(LogicError::new(
                code::EINVAL,
                c"the connection is not one of the failed node's bindings",
            ));
        }
        let is_failed = |n: u32| failed.contains(&n);
        let all = || decls.iter().map(|b| &**b);
        let order = takeover_order(all(), owner, r.key.owner_port, &is_failed);
        if !order.as_slice().contains(&me) {
            return Err(LogicError::new(
                code::EINVAL,
                c"this node is not a peer of that binding",
            ));
        }
        let mut taking = KVVec::with_capacity(1, GFP_KERNEL)
            .map_err(|_| LogicError::new(code::ENOMEM, c"out of memory"))?;
        let found = self.snoop.lock().take_key(&r.key, &mut taking);
        let mut t = Takeover {
            plans: KVec::new(),
            announce: KVec::new(),
            directives: KVec::new(),
            resets: KVec::new(),
            not_ready: 0,
            not_mine: 0,
        };
        let next = || next_after(&order, me);
        match taking.first() {
            Some((k, c)) => t.settle(k, c, now_ms, owner.rx, next),
            // Not mirrored here: the next peer may have it; the last one cannot reset it.
            None => match next() {
                Some(n) => t.forward(&r.key, n),
                None => {
                    return Err(LogicError::new(
                        code::ENOENT,
                        c"no such connection here and no further peer",
                    ))
                }
            },
        }
        if found {
            self.snoop.lock().release(&mut taking);
        }
        Ok(t)
    }

    /// The takeover's connections are rebuilt (or reset): their resets are no longer dropped.
    pub(crate) fn rebuilt(&self) {
        // Dropped after the lock is released.
        let _old = core::mem::take(&mut *self.rebuilding.lock());
    }

    /// Keeps `t` for the restarted application (TAKEN_GET); the oldest records go first
    /// beyond [`MAX_TAKEN`] records or [`MAX_TAKEN_BYTES`] kept bytes.
    pub(crate) fn record_taken(&self, t: Taken) {
        let mut list = self.taken.lock();
        let n = t.sent.len();
        if list.recs.push(t, GFP_KERNEL).is_err() {
            return;
        }
        list.bytes += n;
        while list.recs.len() > MAX_TAKEN || list.bytes > MAX_TAKEN_BYTES {
            match list.recs.remove(0) {
                Ok(old) => list.bytes -= old.sent.len(),
                Err(_) => break,
            }
        }
    }

    /// Runs `f` on the taken-over connection record at `index`, if any.
    pub(crate) fn with_taken<R>(&self, index: usize, f: impl FnOnce(&Taken) -> R) -> Option<R> {
        self.taken.lock().recs.get(index).map(f)
    }

    /// Runs `f` on the newest record of the taken-over connection `key`, if any.
    pub(crate) fn with_taken_key<R>(
        &self,
        key: &crate::logic::snoop::FlowKey,
        f: impl FnOnce(&Taken) -> R,
    ) -> Option<R> {
        let list = self.taken.lock();
        list.recs.iter().rev().find(|t| t.info.key == *key).map(f)
    }

    /// Resets the snooping table for `limits` and the current declarations.
    pub(crate) fn snoop_start(&self, limits: crate::logic::snoop::Limits) {
        let decls = self.decls.lock();
        let failed = self.failed.lock();
        self.snoop.lock().start(limits, filter(&decls, &failed));
    }

    /// Runs `f` on the declaration at position `index`, if any, under the lock.
    pub(crate) fn with_decl<R>(
        &self,
        index: usize,
        f: impl FnOnce(&Declaration) -> R,
    ) -> Option<R> {
        let decls = self.decls.lock();
        decls.get(index).map(|d| f(d))
    }

    /// Counts for STATUS_GET.
    pub(crate) fn status(&self) -> Status {
        let (decls, local_node) = {
            let decls = self.decls.lock();
            let local = decls.iter().find(|d| d.local).map(|d| d.node_id);
            (decls.len() as u32, local)
        };
        let mut failed = [0u32; MAX_DECLS];
        let n_failed = {
            let f = self.failed.lock();
            let n = f.len().min(MAX_DECLS);
            failed[..n]
                .iter_mut()
                .zip(f.iter())
                .for_each(|(d, s)| *d = *s);
            n
        };
        let p = self.parking.lock();
        Status {
            decls,
            local_node,
            parked: p.parked.len() as u32,
            park_queued: p.queued,
            park_reset: p.reset,
            failed,
            n_failed,
        }
    }

    /// Parks `conns` until their listener appears; returns how many could not be kept (they
    /// are reset).
    pub(crate) fn park(&self, conns: KVec<Parked>) -> u32 {
        let mut p = self.parking.lock();
        let mut lost = 0;
        for c in conns {
            // A failed push drops the connection, which resets the client.
            if p.parked.push(c, GFP_KERNEL).is_err() {
                lost += 1;
            }
        }
        p.reset += lost;
        lost
    }

    /// Hands parked connections to listeners that appeared, resets those past their
    /// deadline; returns whether any are still parked.
    fn poll_parked(&self, pn: &Snooped, now_ms: u64) -> bool {
        let mut p = self.parking.lock();
        let Ok(mut keep) = KVec::with_capacity(p.parked.len(), GFP_KERNEL) else {
            return true; // try again at the next poll
        };
        let parked = core::mem::take(&mut p.parked);
        for c in parked {
            match c.try_inject(pn) {
                Ok(()) => p.queued += 1,
                Err(c) if now_ms >= c.deadline_ms => {
                    // Closing it resets the client.
                    drop(c);
                    p.reset += 1;
                }
                // Within the reserved capacity: cannot fail.
                Err(c) => {
                    let _ = keep.push(c, GFP_KERNEL);
                }
            }
        }
        p.parked = keep;
        !p.parked.is_empty()
    }
}

/// The pointer type stored in the namespace's `net_generic` slot.
type Stored = Pin<KBox<NetState>>;

/// Borrows the state behind a `net_generic` slot.
///
/// # Safety
///
/// `ptr` must come from [`permtcp_rs_net_init`] and [`permtcp_rs_net_exit`] must not have run
/// for it before the borrow ends. The C glue guarantees this: handlers run only while the
/// family is registered, and the family is unregistered before any namespace state is freed.
pub(crate) unsafe fn borrow<'a>(ptr: *mut c_void) -> Pin<&'a NetState> {
    // SAFETY: per this function's contract, `ptr` came from `into_foreign` and is alive.
    unsafe { <Stored as ForeignOwnable>::borrow(ptr) }
}

/// Creates the state of a new namespace; returns NULL on allocation failure.
#[no_mangle]
extern "C" fn permtcp_rs_net_init(cookie: u64) -> *mut c_void {
    match KBox::pin_init(NetState::new(cookie), GFP_KERNEL) {
        Ok(state) => state.into_foreign(),
        Err(_) => core::ptr::null_mut(),
    }
}

/// One frame from the netfilter hook (softirq).
///
/// # Safety
///
/// `state` is a live state pointer (the hook is unregistered before the state is freed) and
/// `skb` the frame being processed, `len` bytes from its network header.
#[no_mangle]
unsafe extern "C" fn permtcp_rs_frame(state: *mut c_void, skb: *mut SkBuff, len: u32, now_ms: u64) {
    // SAFETY: per the contract the state is alive for the hook's duration.
    let state = unsafe { borrow(state) };
    // SAFETY: `skb` is valid for this call (contract).
    unsafe { state.snoop.lock().on_frame(skb, len, now_ms) };
}

/// A locally generated TCP segment (LOCAL_OUT hook): whether it is a reset of a connection
/// mirrored here, which the hook then drops.
///
/// # Safety
///
/// `state` is a live state pointer (the hook is unregistered before the state is freed) and
/// `skb` the packet being sent, `len` bytes from its network header.
#[no_mangle]
unsafe extern "C" fn permtcp_rs_rst_out(state: *mut c_void, skb: *mut SkBuff, len: u32) -> bool {
    // SAFETY: per the contract the state is alive for the hook's duration.
    let state = unsafe { borrow(state) };
    // SAFETY: `skb` is valid for this call (contract).
    let Some(key) = (unsafe { crate::snoop::reset_of(skb, len) }) else {
        return false;
    };
    let mirrored = state.snoop.lock().holds(&key);
    mirrored || state.rebuilding.lock().binary_search(&key).is_ok()
}

/// The parking poll (system workqueue); returns whether to poll again.
///
/// # Safety
///
/// `state` is a live state pointer and `pn` the same namespace's `struct ptcp_net`: the C
/// glue disables the poll before it frees either.
#[no_mangle]
unsafe extern "C" fn permtcp_rs_park_poll(state: *mut c_void, pn: *mut PtcpNet) -> bool {
    // SAFETY: per the contract the state is alive.
    let state = unsafe { borrow(state) };
    // SAFETY: per the contract `pn` is valid for the call.
    let pn = unsafe { Snooped::new(pn) };
    state.poll_parked(&pn, crate::glue::now_ms())
}

/// The snooped device went away (RTNL held, hook already unregistered).
///
/// # Safety
///
/// `state` is a live state pointer.
#[no_mangle]
unsafe extern "C" fn permtcp_rs_snoop_lost(state: *mut c_void) {
    // SAFETY: per the contract the state is alive.
    let state = unsafe { borrow(state) };
    state.snoop.lock().stop();
}

/// Frees the state of a namespace that is going away.
///
/// # Safety
///
/// `state` must come from [`permtcp_rs_net_init`] and is not used again after this call.
#[no_mangle]
unsafe extern "C" fn permtcp_rs_net_exit(state: *mut c_void) {
    // SAFETY: per this function's contract the pointer came from `into_foreign` and ownership
    // comes back exactly once.
    drop(unsafe { <Stored as ForeignOwnable>::from_foreign(state) });
}
