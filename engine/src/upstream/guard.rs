//! RAII accounting of open connections: a client connection (per-core active count, the
//! open-socket slab, the listener's counters and lifetime histogram) and an upstream connection
//! to one endpoint (its active gauge).
//!
//! Owns: counting a connection open for exactly as long as its guard lives, however its task
//! ends (the drain deadline drops tasks). Must not: do IO or hold a `RefCell` borrow beyond a
//! call (drops during runtime teardown use `try_borrow_mut`).

use std::os::fd::RawFd;
use std::rc::Rc;
use std::time::Instant;

use crate::context::CoreContext;

/// Counts a client connection open for exactly as long as it lives, however its task ends.
pub(crate) struct ConnectionGuard {
    ctx: Rc<CoreContext>,
    listener_index: usize,
    opened: Instant,
    /// Slot in the core's open-socket registry.
    slot: usize,
}

impl ConnectionGuard {
    pub(crate) fn context(&self) -> &Rc<CoreContext> {
        &self.ctx
    }

    pub(crate) fn listener_index(&self) -> usize {
        self.listener_index
    }

    pub(crate) fn slot(&self) -> usize {
        self.slot
    }

    pub(crate) fn open(ctx: &Rc<CoreContext>, listener_index: usize, client_fd: RawFd) -> Self {
        let slot = ctx.open_sockets.borrow_mut().insert(client_fd);
        ctx.active.set(ctx.active.get() + 1);
        let s = &ctx.stats;
        s.totals.accepted.inc();
        s.totals.active.inc();
        s.listeners[listener_index].accepted.inc();
        s.listeners[listener_index].active.inc();
        ConnectionGuard {
            ctx: ctx.clone(),
            listener_index,
            opened: Instant::now(),
            slot,
        }
    }
}

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        let ctx = &*self.ctx;
        if let Ok(mut open) = ctx.open_sockets.try_borrow_mut() {
            open.remove(self.slot);
        }
        ctx.active.set(ctx.active.get().saturating_sub(1));
        let s = &ctx.stats;
        s.totals.active.dec();
        s.totals.closed.inc();
        s.listeners[self.listener_index].active.dec();
        s.listeners[self.listener_index].closed.inc();
        let millis = self.opened.elapsed().as_millis() as u64;
        // try_borrow: a drop during runtime teardown must never panic on a borrow.
        if let Ok(mut h) = ctx.histograms.try_borrow_mut() {
            if let Some(h) = h.duration_millis.get_mut(self.listener_index) {
                h.saturating_record(millis.max(1));
            }
        }
    }
}

/// Counts an upstream connection (or UDP session) open to one endpoint for as long as it lives.
pub(crate) struct EndpointGuard {
    ctx: Rc<CoreContext>,
    cluster: usize,
    endpoint: usize,
}

impl EndpointGuard {
    pub(crate) fn open(ctx: Rc<CoreContext>, cluster: usize, endpoint: usize) -> Self {
        ctx.stats.endpoints[cluster][endpoint].active.inc();
        EndpointGuard {
            ctx,
            cluster,
            endpoint,
        }
    }
}

impl Drop for EndpointGuard {
    fn drop(&mut self) {
        self.ctx.stats.endpoints[self.cluster][self.endpoint]
            .active
            .dec();
    }
}

/// Keeps an upstream socket in the core's open-socket slab while an exchange holds it, so the
/// drain deadline resets it; removed however the exchange ends (its task may be dropped).
pub(crate) struct OpenUpstream {
    ctx: Rc<CoreContext>,
    slot: usize,
}

impl OpenUpstream {
    pub(crate) fn register(ctx: &Rc<CoreContext>, fd: RawFd) -> Self {
        let slot = ctx.open_sockets.borrow_mut().insert_upstream(fd);
        OpenUpstream {
            ctx: ctx.clone(),
            slot,
        }
    }
}

impl Drop for OpenUpstream {
    fn drop(&mut self) {
        if let Ok(mut open) = self.ctx.open_sockets.try_borrow_mut() {
            open.remove(self.slot);
        }
    }
}
