//! Per-core statistics: counters written by one core, summed by readers.
//!
//! Owns: the counter types, each core's cache-line-aligned counter blocks, the core-local latency
//! histograms, and the merged read-side view. Invariant: every counter has exactly one writer — the
//! core that owns its `CoreStats` — so an increment is a relaxed load and store (no locked
//! instruction), and blocks of different cores never share a cache line. Histograms never leave
//! their core except as a copy sent on request (see `control`).
//! Must not: be written from any thread but the owner, or be read on the hot path.

use std::sync::atomic::{AtomicI64, AtomicU64, AtomicU8, Ordering::Relaxed};

use hdrhistogram::Histogram;

use crate::config::Config;

/// A monotonically increasing count with a single writer.
#[derive(Default, Debug)]
pub struct Counter(AtomicU64);

impl Counter {
    #[inline]
    pub fn add(&self, n: u64) {
        // Single writer: a plain load + store is enough and avoids a `lock` prefix per event.
        self.0.store(self.0.load(Relaxed).wrapping_add(n), Relaxed);
    }

    #[inline]
    pub fn inc(&self) {
        self.add(1);
    }

    pub fn get(&self) -> u64 {
        self.0.load(Relaxed)
    }
}

/// A value that goes up and down, with a single writer.
#[derive(Default, Debug)]
pub struct Gauge(AtomicI64);

impl Gauge {
    #[inline]
    pub fn inc(&self) {
        self.0.store(self.0.load(Relaxed) + 1, Relaxed);
    }

    #[inline]
    pub fn dec(&self) {
        self.0.store(self.0.load(Relaxed) - 1, Relaxed);
    }

    pub fn get(&self) -> i64 {
        self.0.load(Relaxed)
    }
}

#[repr(align(128))]
#[derive(Default, Debug)]
pub struct CoreCounters {
    pub accepted: Counter,
    pub active: Gauge,
    pub closed: Counter,
    pub rejected_max_connections: Counter,
    pub accept_errors: Counter,
    pub relayed_splice: Counter,
    pub relayed_copy: Counter,
}

#[repr(align(128))]
#[derive(Default, Debug)]
pub struct ListenerCounters {
    pub accepted: Counter,
    pub active: Gauge,
    pub closed: Counter,
    pub rejected_max_connections: Counter,
    /// Bytes read from clients (and written upstream).
    pub received_bytes: Counter,
    /// Bytes written to clients.
    pub sent_bytes: Counter,
    pub idle_timeouts: Counter,
    pub client_errors: Counter,
    pub upstream_errors: Counter,
    /// Connections closed because no endpoint of the cluster could be reached.
    pub no_upstream: Counter,
    /// UDP only: datagrams from clients, datagrams back to clients, and datagrams dropped (no
    /// session could be created: limit, draining, or no endpoint).
    pub datagrams_received: Counter,
    pub datagrams_sent: Counter,
    pub datagrams_dropped: Counter,
}

#[repr(align(128))]
#[derive(Default, Debug)]
pub struct ClusterCounters {
    pub connections: Counter,
    pub connect_failures: Counter,
    pub connect_timeouts: Counter,
    /// Client connections for which every attempt failed.
    pub unavailable: Counter,
    pub sent_bytes: Counter,
    pub received_bytes: Counter,
}

#[repr(align(128))]
#[derive(Default, Debug)]
pub struct EndpointCounters {
    pub connections: Counter,
    pub active: Gauge,
    pub connect_failures: Counter,
    pub connect_timeouts: Counter,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum DriverKind {
    Starting = 0,
    Uring = 1,
    Epoll = 2,
}

impl DriverKind {
    pub fn as_str(self) -> &'static str {
        match self {
            DriverKind::Starting => "starting",
            DriverKind::Uring => "io_uring",
            DriverKind::Epoll => "epoll",
        }
    }
}

/// Everything one core counts. Allocated up front for the config's listeners and clusters.
#[derive(Debug)]
pub struct CoreStats {
    /// Position in the core set (0..n).
    pub index: usize,
    /// The CPU this core's thread is pinned to.
    pub cpu: usize,
    driver: AtomicU8,
    pub totals: CoreCounters,
    pub listeners: Box<[ListenerCounters]>,
    pub clusters: Box<[ClusterCounters]>,
    pub endpoints: Box<[Box<[EndpointCounters]>]>,
}

impl CoreStats {
    pub fn new(index: usize, cpu: usize, config: &Config) -> CoreStats {
        CoreStats {
            index,
            cpu,
            driver: AtomicU8::new(DriverKind::Starting as u8),
            totals: CoreCounters::default(),
            listeners: config
                .listeners
                .iter()
                .map(|_| Default::default())
                .collect(),
            clusters: config.clusters.iter().map(|_| Default::default()).collect(),
            endpoints: config
                .clusters
                .iter()
                .map(|c| c.endpoints.iter().map(|_| Default::default()).collect())
                .collect(),
        }
    }

    pub fn set_driver(&self, d: DriverKind) {
        self.driver.store(d as u8, Relaxed);
    }

    pub fn driver(&self) -> DriverKind {
        match self.driver.load(Relaxed) {
            1 => DriverKind::Uring,
            2 => DriverKind::Epoll,
            _ => DriverKind::Starting,
        }
    }
}

/// Upper bounds keep histograms a fixed size; larger values saturate into the top bucket.
const CONNECT_MAX_MICROS: u64 = 600 * 1_000_000;
const DURATION_MAX_MILLIS: u64 = 30 * 24 * 3600 * 1000;

/// Latency histograms of one core; owned by that core, copied out on request.
#[derive(Debug, Clone)]
pub struct CoreHistograms {
    /// Per cluster: upstream connect time in microseconds.
    pub connect_micros: Vec<Histogram<u64>>,
    /// Per listener: client connection lifetime in milliseconds.
    pub duration_millis: Vec<Histogram<u64>>,
}

fn histogram(max: u64) -> Histogram<u64> {
    // Two significant digits: ~1 % error, a few KiB per histogram.
    Histogram::new_with_bounds(1, max, 2).expect("static histogram bounds are valid")
}

impl CoreHistograms {
    pub fn new(config: &Config) -> CoreHistograms {
        CoreHistograms {
            connect_micros: config
                .clusters
                .iter()
                .map(|_| histogram(CONNECT_MAX_MICROS))
                .collect(),
            duration_millis: config
                .listeners
                .iter()
                .map(|_| histogram(DURATION_MAX_MILLIS))
                .collect(),
        }
    }

    pub fn merge(&mut self, other: &CoreHistograms) {
        for (a, b) in self.connect_micros.iter_mut().zip(&other.connect_micros) {
            // Same bounds on every core, so `add` cannot fail; ignore rather than panic regardless.
            let _ = a.add(b);
        }
        for (a, b) in self.duration_millis.iter_mut().zip(&other.duration_millis) {
            let _ = a.add(b);
        }
    }
}

/// Jain's fairness index of per-core counts: 1.0 is a perfectly even spread, 1/n all on one core.
pub fn jain_index(counts: &[u64]) -> f64 {
    let n = counts.len() as f64;
    let sum: f64 = counts.iter().map(|&c| c as f64).sum();
    let sum_sq: f64 = counts.iter().map(|&c| (c as f64) * (c as f64)).sum();
    if sum_sq == 0.0 {
        1.0
    } else {
        sum * sum / (n * sum_sq)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_add_and_gauges_move_both_ways() {
        let c = Counter::default();
        c.inc();
        c.add(41);
        assert_eq!(c.get(), 42);
        let g = Gauge::default();
        g.inc();
        g.inc();
        g.dec();
        assert_eq!(g.get(), 1);
    }

    #[test]
    fn counter_blocks_do_not_share_cache_lines() {
        assert_eq!(std::mem::align_of::<ListenerCounters>(), 128);
        assert_eq!(std::mem::size_of::<EndpointCounters>() % 128, 0);
    }

    #[test]
    fn jain_index_spans_even_to_skewed() {
        assert!((jain_index(&[500, 500]) - 1.0).abs() < 1e-12);
        assert!((jain_index(&[1000, 0]) - 0.5).abs() < 1e-12);
        assert!((jain_index(&[0, 0]) - 1.0).abs() < 1e-12);
        let j = jain_index(&[1007, 993]);
        assert!(j > 0.9999 && j < 1.0, "{j}");
    }
}
