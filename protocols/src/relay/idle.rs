//! Idle timeouts for every relayed connection of a core, driven by one timer.
//!
//! Owns: the per-core table of connections' last-activity stamps and the sweep that expires them.
//! A timer per connection (monoio's `Sleep`, 768 bytes because its entry is cache-padded) was the
//! largest part of an idle connection's memory; an entry here is a small `Rc`. Expiry is late by at
//! most one tick (an eighth of the shortest idle timeout, 10 ms to 1 s).
//! Must not: be shared between cores (`Rc`/`Cell`), or touch sockets — it only wakes the relay,
//! which decides what an expiry means.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

pub struct IdleTimers {
    entries: RefCell<Vec<Rc<IdleEntry>>>,
    tick: Duration,
}

pub(crate) struct IdleEntry {
    last_activity: Cell<Instant>,
    timeout: Duration,
    expired: Cell<bool>,
    waker: Cell<Option<Waker>>,
}

impl IdleTimers {
    pub fn new(tick: Duration) -> IdleTimers {
        IdleTimers {
            entries: RefCell::new(Vec::new()),
            tick,
        }
    }

    /// The sweep interval for a set of idle timeouts: an eighth of the shortest, 10 ms to 1 s.
    pub fn tick_for(shortest_timeout: Duration) -> Duration {
        (shortest_timeout / 8).clamp(Duration::from_millis(10), Duration::from_secs(1))
    }

    pub(crate) fn register(&self, timeout: Duration) -> Rc<IdleEntry> {
        let entry = Rc::new(IdleEntry {
            last_activity: Cell::new(Instant::now()),
            timeout,
            expired: Cell::new(false),
            waker: Cell::new(None),
        });
        self.entries.borrow_mut().push(entry.clone());
        entry
    }

    /// Runs for the life of the core: every tick, expires idle connections and forgets finished
    /// ones.
    pub async fn run(&self) {
        loop {
            monoio::time::sleep(self.tick).await;
            self.sweep(Instant::now());
        }
    }

    fn sweep(&self, now: Instant) {
        self.entries.borrow_mut().retain(|e| {
            if Rc::strong_count(e) == 1 {
                return false; // the connection is gone
            }
            if now.saturating_duration_since(e.last_activity.get()) >= e.timeout {
                e.expired.set(true);
                if let Some(w) = e.waker.take() {
                    w.wake(); // schedules the relay; never runs it inside this borrow
                }
                return false;
            }
            true
        });
    }

    /// Connections currently tracked (for tests and stats).
    pub fn len(&self) -> usize {
        self.entries.borrow().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl IdleEntry {
    #[inline]
    pub(crate) fn touch(&self, now: Instant) {
        self.last_activity.set(now);
    }

    pub(crate) fn expired(&self) -> Expired<'_> {
        Expired(self)
    }
}

/// Resolves once the sweep has found the connection idle for its whole timeout.
pub(crate) struct Expired<'a>(&'a IdleEntry);

impl Future for Expired<'_> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.0.expired.get() {
            return Poll::Ready(());
        }
        // The relay polls this on every wake-up of either direction: clone the waker only when
        // it changed.
        let stored = self.0.waker.take();
        let waker = match stored {
            Some(w) if w.will_wake(cx.waker()) => w,
            _ => cx.waker().clone(),
        };
        self.0.waker.set(Some(waker));
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_scale_with_the_shortest_timeout_within_bounds() {
        assert_eq!(
            IdleTimers::tick_for(Duration::from_secs(300)),
            Duration::from_secs(1)
        );
        assert_eq!(
            IdleTimers::tick_for(Duration::from_millis(800)),
            Duration::from_millis(100)
        );
        assert_eq!(
            IdleTimers::tick_for(Duration::from_millis(1)),
            Duration::from_millis(10)
        );
    }

    #[test]
    fn a_sweep_expires_idle_entries_keeps_busy_ones_and_forgets_finished_ones() {
        let timers = IdleTimers::new(Duration::from_millis(10));
        let t0 = Instant::now();
        let idle = timers.register(Duration::from_secs(5));
        let busy = timers.register(Duration::from_secs(5));
        drop(timers.register(Duration::from_secs(5))); // finished connection
        idle.touch(t0);
        busy.touch(t0 + Duration::from_secs(4));
        timers.sweep(t0 + Duration::from_secs(6));
        assert!(idle.expired.get());
        assert!(!busy.expired.get());
        assert_eq!(timers.len(), 1, "expired and finished entries are dropped");
        timers.sweep(t0 + Duration::from_secs(9));
        assert!(busy.expired.get());
        assert!(timers.is_empty());
    }
}
