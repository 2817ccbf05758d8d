//! Per-core statistics: counters written by one core, summed by readers.
//!
//! Owns: the counter types, each core's cache-line-aligned counter blocks, the core-local latency
//! histograms, and the merged read-side view. Invariant: every counter has exactly one writer — the
//! core that owns its `CoreStats` — so an increment is a relaxed load and store (no locked
//! instruction), and blocks of different cores never share a cache line. Histograms never leave
//! their core except as a copy sent on request (see `control`).
//! Must not: be written from any thread but the owner, or be read on the hot path.

use std::sync::atomic::{AtomicI64, AtomicU64, AtomicU8, Ordering::Relaxed};
use std::sync::Arc;

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
    pub fn sub(&self, n: i64) {
        self.0.store(self.0.load(Relaxed) - n, Relaxed);
    }

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
    /// Access log lines dropped because the writer thread fell behind.
    pub access_log_dropped: Counter,
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
    /// Connections by the protocol they turned out to speak (see [`Detected`]).
    pub detected: [Counter; Detected::COUNT],
    /// Sniffing listeners: connections closed because they spoke a protocol the listener does
    /// not accept.
    pub sniff_refused: Counter,
    pub tls_handshakes: Counter,
    /// TLS handshakes that failed, by [`HandshakeFailure`](crate::tls_stream::HandshakeFailure).
    pub tls_handshake_failures: [Counter; 7],
    /// TLS connections relayed undecrypted by SNI.
    pub tls_passthrough: Counter,
    /// HTTP/2 streams opened by clients (h2 and h2c).
    pub h2_streams: Counter,
    /// HTTP/2 connections closed for abuse (flood limits: resets, frames, headers).
    pub h2_abuse: Counter,
    /// WebSocket upgrades that reached 101 (the connection became a tunnel).
    pub ws_upgrades: Counter,
    /// WebSocket upgrade requests the upstream refused (no 101).
    pub ws_refused: Counter,
}

/// The protocol a connection was served as, after sniffing and TLS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Detected {
    Http1,
    /// HTTP/2 in clear text (prior knowledge).
    H2c,
    /// HTTP/2 inside TLS.
    H2,
    /// HTTP/1.x inside TLS.
    Https1,
    /// Raw TCP (sniffed as nothing known, or a server-speaks-first client).
    Tcp,
    /// Raw TCP inside terminated TLS.
    TlsTcp,
    Udp,
}

impl Detected {
    pub const COUNT: usize = 7;
    pub const ALL: [Detected; Detected::COUNT] = [
        Detected::Http1,
        Detected::H2c,
        Detected::H2,
        Detected::Https1,
        Detected::Tcp,
        Detected::TlsTcp,
        Detected::Udp,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Detected::Http1 => "http1",
            Detected::H2c => "h2c",
            Detected::H2 => "h2",
            Detected::Https1 => "https1",
            Detected::Tcp => "tcp",
            Detected::TlsTcp => "tls_tcp",
            Detected::Udp => "udp",
        }
    }
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

/// HTTP requests of one route (or of one listener's unrouted requests: those refused before a
/// route was chosen, and those no route matched).
#[repr(align(128))]
#[derive(Default, Debug)]
pub struct RouteCounters {
    pub requests: Counter,
    /// Responses sent, by status class: [1xx, 2xx, 3xx, 4xx, 5xx].
    pub responses: [Counter; 5],
    /// Request bytes read from clients (heads and bodies).
    pub received_bytes: Counter,
    /// Response bytes written to clients.
    pub sent_bytes: Counter,
    /// 502s (the upstream could not be reached, closed early or answered something invalid), and
    /// responses cut short by the upstream after their head was relayed.
    pub upstream_errors: Counter,
    /// 504s (no response head within `upstream_response_timeout`), and response bodies that
    /// stalled past `upstream_body_timeout` after their head was relayed.
    pub upstream_timeouts: Counter,
    /// 503s: no connection could be had and an endpoint was at its per-core cap
    /// (`max_connections_per_endpoint`); connect failures are 502s (`upstream_errors`).
    pub unavailable: Counter,
    /// Requests refused as malformed or over a limit (400, 408, 413, 414, 431, 505).
    pub client_errors: Counter,
}

impl RouteCounters {
    pub fn response(&self, status: u16) {
        if let Some(c) = self
            .responses
            .get(usize::from(status / 100).wrapping_sub(1))
        {
            c.inc();
        }
    }
}

/// HTTP traffic of one cluster on one core.
#[repr(align(128))]
#[derive(Default, Debug)]
pub struct ClusterHttpCounters {
    pub requests: Counter,
    /// Requests sent on a pooled keep-alive connection.
    pub pool_hits: Counter,
    /// Requests that needed a new upstream connection.
    pub pool_misses: Counter,
    /// Pooled connections found closed by the upstream at reuse and discarded.
    pub pool_stale: Counter,
    /// Requests refused because every endpoint was at `max_connections_per_endpoint`.
    pub pool_full: Counter,
    /// Requests retried on a new connection after a reused one failed before any response byte.
    pub retries: Counter,
    /// Idle keep-alive connections in this core's pool.
    pub pool_idle: Gauge,
    pub upstream_timeouts: Counter,
    /// Malformed responses, and connections lost mid-response.
    pub upstream_protocol_errors: Counter,
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
    // Each object's block is its own allocation (`Arc`), so that a configuration reload can
    // build the next `CoreStats` around the same blocks for the objects that still exist
    // ([`CoreStats::carry_over`]): connections of the old and the new configuration count into
    // one block (same core, so still one writer), and no counter resets.
    pub totals: Arc<CoreCounters>,
    pub listeners: Box<[Arc<ListenerCounters>]>,
    pub clusters: Box<[Arc<ClusterCounters>]>,
    pub endpoints: Box<[Box<[Arc<EndpointCounters>]>]>,
    /// See [`RouteSlots`].
    pub routes: Box<[Arc<RouteCounters>]>,
    pub cluster_http: Box<[Arc<ClusterHttpCounters>]>,
}

/// The flat numbering of per-route statistics: for each HTTP listener, one slot per route and
/// one more for its unrouted requests. Built from the config in the same order everywhere.
#[derive(Debug, Clone, Default)]
pub struct RouteSlots {
    /// Per listener: the first slot (meaningful only for HTTP listeners).
    pub base: Vec<usize>,
    /// Per slot: (listener index, route index or `None` for unrouted).
    pub slots: Vec<(usize, Option<usize>)>,
}

impl RouteSlots {
    pub fn new(config: &Config) -> RouteSlots {
        let mut out = RouteSlots::default();
        for (l, listener) in config.listeners.iter().enumerate() {
            out.base.push(out.slots.len());
            if let Some(http) = &listener.http {
                out.slots
                    .extend((0..http.routes.len()).map(|r| (l, Some(r))));
                out.slots.push((l, None));
            }
        }
        out
    }

    /// The slot of `route` (or the unrouted slot) of HTTP listener `listener`.
    pub fn slot(&self, config: &Config, listener: usize, route: Option<usize>) -> usize {
        let base = self.base.get(listener).copied().unwrap_or(0);
        let routes = config.listeners[listener]
            .http
            .as_ref()
            .map_or(0, |h| h.routes.len());
        base + route.unwrap_or(routes)
    }

    /// Label of a slot: the route name, or `-` for unrouted requests.
    pub fn route_name<'c>(&self, config: &'c Config, slot: usize) -> (&'c str, &'c str) {
        let (l, r) = self.slots[slot];
        let listener = &config.listeners[l];
        let route = match (r, &listener.http) {
            (Some(r), Some(http)) => http.routes[r].name.as_str(),
            _ => "-",
        };
        (listener.name.as_str(), route)
    }
}

/// Where each object of a reloaded configuration was in the previous one (by name; endpoints by
/// cluster name and address; route slots by listener and route name), for carrying state over.
pub struct Carried {
    pub listeners: Vec<Option<usize>>,
    pub clusters: Vec<Option<usize>>,
    /// Per new cluster, per endpoint: (old cluster, old endpoint), by address (the n-th
    /// endpoint of an address maps to the n-th of the old cluster's with that address).
    pub endpoints: Vec<Vec<Option<(usize, usize)>>>,
    /// The same, for open upstream connections: only where the cluster's way of connecting
    /// (protocol, TLS settings, PROXY protocol) is unchanged, so no connection made under the
    /// old settings serves the new ones.
    pub connections: Vec<Vec<Option<(usize, usize)>>>,
    /// Per new route slot ([`RouteSlots`]): the old slot.
    pub routes: Vec<Option<usize>>,
}

impl Carried {
    pub fn new(old: &Config, new: &Config) -> Carried {
        let listener_at = |name: &str| old.listeners.iter().position(|l| l.name == name);
        let cluster_at = |name: &str| old.clusters.iter().position(|c| c.name == name);
        let old_slots = RouteSlots::new(old);
        let route_at = |(l, r): (usize, Option<usize>)| {
            let listener = &new.listeners[l];
            let ol = listener_at(&listener.name)?;
            let old_http = old.listeners[ol].http.as_ref()?;
            let route = match (r, &listener.http) {
                (Some(r), Some(http)) => Some(
                    old_http
                        .routes
                        .iter()
                        .position(|o| o.name == http.routes[r].name)?,
                ),
                _ => None,
            };
            Some(old_slots.slot(old, ol, route))
        };
        let endpoints: Vec<Vec<Option<(usize, usize)>>> = new
            .clusters
            .iter()
            .map(|c| {
                let oc = cluster_at(&c.name);
                c.endpoints
                    .iter()
                    .enumerate()
                    .map(|(i, e)| {
                        let oc = oc?;
                        let nth = c.endpoints[..i]
                            .iter()
                            .filter(|x| x.address == e.address)
                            .count();
                        let oe = old.clusters[oc]
                            .endpoints
                            .iter()
                            .enumerate()
                            .filter(|(_, o)| o.address == e.address)
                            .nth(nth)?
                            .0;
                        Some((oc, oe))
                    })
                    .collect()
            })
            .collect();
        Carried {
            listeners: new.listeners.iter().map(|l| listener_at(&l.name)).collect(),
            clusters: new.clusters.iter().map(|c| cluster_at(&c.name)).collect(),
            endpoints: endpoints.clone(),
            connections: new
                .clusters
                .iter()
                .zip(&endpoints)
                .map(|(c, eps)| {
                    let same = cluster_at(&c.name).is_some_and(|oc| {
                        let o = &old.clusters[oc];
                        o.http.protocol == c.http.protocol
                            && o.http.tls == c.http.tls
                            && o.proxy_protocol == c.proxy_protocol
                    });
                    eps.iter().map(|&at| at.filter(|_| same)).collect()
                })
                .collect(),
            routes: RouteSlots::new(new)
                .slots
                .iter()
                .map(|&s| route_at(s))
                .collect(),
        }
    }
}

impl CoreStats {
    pub fn new(index: usize, cpu: usize, config: &Config) -> CoreStats {
        CoreStats {
            index,
            cpu,
            driver: AtomicU8::new(DriverKind::Starting as u8),
            totals: Arc::default(),
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
            routes: RouteSlots::new(config)
                .slots
                .iter()
                .map(|_| Default::default())
                .collect(),
            cluster_http: config.clusters.iter().map(|_| Default::default()).collect(),
        }
    }

    /// The counters of this core for `new`, a reloaded configuration: every listener, cluster,
    /// endpoint and route that exists in `old` too (by name; endpoints by cluster name and
    /// address; routes by listener and route name) keeps its block, so its counts go on; new
    /// objects start at zero; removed ones are left out (and disappear from /metrics).
    pub fn carry_over(&self, old: &Config, new: &Config) -> CoreStats {
        fn keep<T: Default>(blocks: &[Arc<T>], at: Option<usize>) -> Arc<T> {
            at.and_then(|i| blocks.get(i)).cloned().unwrap_or_default()
        }
        let m = Carried::new(old, new);
        CoreStats {
            index: self.index,
            cpu: self.cpu,
            driver: AtomicU8::new(self.driver.load(Relaxed)),
            totals: self.totals.clone(),
            listeners: m
                .listeners
                .iter()
                .map(|&at| keep(&self.listeners, at))
                .collect(),
            clusters: m
                .clusters
                .iter()
                .map(|&at| keep(&self.clusters, at))
                .collect(),
            endpoints: m
                .endpoints
                .iter()
                .map(|eps| {
                    eps.iter()
                        .map(|at| {
                            at.and_then(|(c, e)| self.endpoints.get(c)?.get(e).cloned())
                                .unwrap_or_default()
                        })
                        .collect()
                })
                .collect(),
            routes: m.routes.iter().map(|&at| keep(&self.routes, at)).collect(),
            cluster_http: m
                .clusters
                .iter()
                .map(|&at| keep(&self.cluster_http, at))
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
const REQUEST_MAX_MICROS: u64 = 3600 * 1_000_000;

/// Latency histograms of one core; owned by that core, copied out on request.
#[derive(Debug, Clone)]
pub struct CoreHistograms {
    /// Per cluster: upstream connect time in microseconds.
    pub connect_micros: Vec<Histogram<u64>>,
    /// Per listener: client connection lifetime in milliseconds.
    pub duration_millis: Vec<Histogram<u64>>,
    /// Per route slot ([`RouteSlots`]): request head received → response complete, microseconds.
    pub request_micros: Vec<Histogram<u64>>,
    /// Per cluster: request sent → response head received, microseconds.
    pub upstream_micros: Vec<Histogram<u64>>,
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
            request_micros: RouteSlots::new(config)
                .slots
                .iter()
                .map(|_| histogram(REQUEST_MAX_MICROS))
                .collect(),
            upstream_micros: config
                .clusters
                .iter()
                .map(|_| histogram(REQUEST_MAX_MICROS))
                .collect(),
        }
    }

    /// This core's histograms for a reloaded configuration: what still exists keeps its
    /// samples (see [`Carried`]), new objects start empty.
    pub fn carry_over(&self, old: &Config, new: &Config) -> CoreHistograms {
        let m = Carried::new(old, new);
        let pick =
            |from: &[Histogram<u64>], at: &[Option<usize>], max: u64| -> Vec<Histogram<u64>> {
                at.iter()
                    .map(|a| {
                        a.and_then(|i| from.get(i))
                            .cloned()
                            .unwrap_or_else(|| histogram(max))
                    })
                    .collect()
            };
        CoreHistograms {
            connect_micros: pick(&self.connect_micros, &m.clusters, CONNECT_MAX_MICROS),
            duration_millis: pick(&self.duration_millis, &m.listeners, DURATION_MAX_MILLIS),
            request_micros: pick(&self.request_micros, &m.routes, REQUEST_MAX_MICROS),
            upstream_micros: pick(&self.upstream_micros, &m.clusters, REQUEST_MAX_MICROS),
        }
    }

    /// Empties every histogram (a replaced version's samples moved to its successor).
    pub fn reset(&mut self) {
        for h in self
            .connect_micros
            .iter_mut()
            .chain(self.duration_millis.iter_mut())
            .chain(self.request_micros.iter_mut())
            .chain(self.upstream_micros.iter_mut())
        {
            h.reset();
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
        for (a, b) in self.request_micros.iter_mut().zip(&other.request_micros) {
            let _ = a.add(b);
        }
        for (a, b) in self.upstream_micros.iter_mut().zip(&other.upstream_micros) {
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

    /// A reload keeps the blocks of what still exists (by name), drops the rest, and starts
    /// new objects at zero; both configurations' connections then count into the same blocks.
    #[test]
    fn a_reload_carries_counters_over_by_name() {
        use crate::config::{test_support, EndpointConfig, ListenerProtocol};
        let mut old =
            test_support::one_listener(ListenerProtocol::Http, "127.0.0.1:1", "127.0.0.1:9");
        let mut second = old.clusters[0].clone();
        second.name = "gone".into();
        old.clusters.push(second);
        let stats = CoreStats::new(0, 0, &old);
        stats.totals.accepted.add(7);
        stats.listeners[0].accepted.add(5);
        stats.clusters[0].connections.add(3);
        stats.clusters[1].connections.add(99);
        stats.endpoints[0][0].connections.add(2);
        stats.routes[0].requests.add(4); // route "default"
        stats.routes[1].requests.add(1); // unrouted
        stats.cluster_http[0].requests.add(6);

        let mut new = old.clone();
        new.clusters.truncate(1);
        new.clusters[0].endpoints.insert(
            0,
            EndpointConfig {
                address: "127.0.0.1:8".parse().expect("addr"),
                weight: 1,
            },
        );
        let mut added = new.clusters[0].clone();
        added.name = "added".into();
        new.clusters.push(added);
        let next = stats.carry_over(&old, &new);
        assert_eq!(next.totals.accepted.get(), 7);
        assert_eq!(next.listeners[0].accepted.get(), 5);
        assert_eq!(next.clusters.len(), 2);
        assert_eq!(next.clusters[0].connections.get(), 3, "kept by name");
        assert_eq!(
            next.clusters[1].connections.get(),
            0,
            "a new cluster starts at zero"
        );
        assert_eq!(next.endpoints[0][0].connections.get(), 0, "a new endpoint");
        assert_eq!(next.endpoints[0][1].connections.get(), 2, "kept by address");
        assert_eq!(next.routes[0].requests.get(), 4);
        assert_eq!(next.routes[1].requests.get(), 1);
        assert_eq!(next.cluster_http[0].requests.get(), 6);
        // The same blocks: the old configuration's connections still count where the new
        // configuration's do.
        stats.clusters[0].connections.inc();
        assert_eq!(next.clusters[0].connections.get(), 4);
        assert!(Arc::ptr_eq(&stats.routes[0], &next.routes[0]));
    }

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
