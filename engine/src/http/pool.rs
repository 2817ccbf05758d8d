//! Per-core pools of idle keep-alive connections to upstream endpoints.
//!
//! Owns: the idle connections of every endpoint of every cluster on this core (LIFO, so the
//! warmest connection is reused and the oldest ones age out), the per-endpoint connection count
//! and its cap, staleness checks before reuse, and the idle sweep. Must not: connect, read or
//! write requests (the proxy does), be shared with another core, or keep a connection whose
//! last response was not read to its end.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::upstream_conn::UpstreamConn;
use strait_protocols::relay::sys;

use crate::config::Config;
use crate::stats::{Carried, CoreStats};

struct Idle {
    stream: UpstreamConn,
    since: Instant,
}

#[derive(Default)]
struct EndpointPool {
    /// Oldest first; reuse pops the newest.
    idle: Vec<Idle>,
    /// Busy plus idle connections of this endpoint on this core.
    open: u32,
}

/// Whether a checkout may hand out a pooled connection.
///
/// Every reuse is preceded by a non-blocking peek: besides a close by the upstream it catches
/// bytes the upstream sent after its last response ended (a body on a 204, more than its
/// Content-Length, an unsolicited 408), which would otherwise be read as the next client's
/// response. Skipping the peek for retryable requests was measured, and refused for that reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reuse {
    /// A pooled connection that passes the peek, else a new one.
    Pooled,
    /// A new connection (the retry after a reused one failed).
    Never,
}

/// Why a checkout found nothing to reuse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Checkout {
    /// A pooled connection that passed the staleness check.
    Reused,
    /// No usable idle connection; a new one may be opened.
    Connect,
    /// The endpoint is at `max_connections_per_endpoint` on this core.
    Full,
}

pub(crate) struct Pools {
    /// [cluster][endpoint]
    endpoints: Vec<Vec<EndpointPool>>,
    /// Per cluster: (max idle, idle timeout, max connections).
    limits: Vec<(usize, Duration, u32)>,
    /// This core's counters: stale discards and the idle gauge.
    stats: Arc<CoreStats>,
}

impl Pools {
    pub fn new(config: &Config, stats: Arc<CoreStats>) -> Pools {
        Pools {
            endpoints: config
                .clusters
                .iter()
                .map(|c| {
                    c.endpoints
                        .iter()
                        .map(|_| EndpointPool::default())
                        .collect()
                })
                .collect(),
            limits: config
                .clusters
                .iter()
                .map(|c| {
                    (
                        c.http.pool_max_idle as usize,
                        c.http.pool_idle_timeout,
                        c.http.max_connections_per_endpoint,
                    )
                })
                .collect(),
            stats,
        }
    }

    /// A usable idle connection, or whether a new one may be opened. A `Connect` answer reserves
    /// the connection slot: call [`closed`](Self::closed) if connecting fails.
    pub fn checkout(
        &mut self,
        cluster: usize,
        endpoint: usize,
        now: Instant,
        reuse: Reuse,
    ) -> (Checkout, Option<UpstreamConn>) {
        let Some(pool) = self
            .endpoints
            .get_mut(cluster)
            .and_then(|c| c.get_mut(endpoint))
        else {
            return (Checkout::Full, None);
        };
        let (_, idle_timeout, max_open) = self.limits[cluster];
        let counters = &self.stats.cluster_http[cluster];
        if reuse == Reuse::Never && pool.open >= max_open && !pool.idle.is_empty() {
            // Make room for the retry's new connection by closing the oldest idle one.
            pool.idle.remove(0);
            pool.open = pool.open.saturating_sub(1);
            counters.pool_idle.dec();
        }
        let candidates = if reuse == Reuse::Pooled {
            pool.idle.len()
        } else {
            0
        };
        for _ in 0..candidates {
            let Some(idle) = pool.idle.pop() else { break };
            counters.pool_idle.dec();
            let fresh = now.saturating_duration_since(idle.since) < idle_timeout;
            if fresh && sys::idle_stream_usable(idle.stream.fd()) {
                return (Checkout::Reused, Some(idle.stream));
            }
            // Closed (or about to be) by the upstream, or too old: never send a request on it.
            pool.open = pool.open.saturating_sub(1);
            if fresh {
                counters.pool_stale.inc();
            }
        }
        if pool.open >= max_open {
            return (Checkout::Full, None);
        }
        pool.open += 1;
        (Checkout::Connect, None)
    }

    /// The pools of a reloaded configuration: the idle connections of endpoints that still
    /// exist (see [`Carried`]) move here from `old`; the rest are closed with `old`. Busy
    /// connections of the old configuration go back to `old` when their exchange ends (and are
    /// closed with it), so an endpoint may briefly have up to twice its cap on this core.
    pub fn carry_over(
        old: &mut Pools,
        config: &Config,
        carried: &Carried,
        stats: Arc<CoreStats>,
    ) -> Pools {
        let mut next = Pools::new(config, stats);
        for (c, endpoints) in carried.connections.iter().enumerate() {
            for (e, at) in endpoints.iter().enumerate() {
                let Some((oc, oe)) = *at else { continue };
                let Some(from) = old.endpoints.get_mut(oc).and_then(|x| x.get_mut(oe)) else {
                    continue;
                };
                let moved = std::mem::take(&mut from.idle);
                from.open = from.open.saturating_sub(moved.len() as u32);
                if let Some(to) = next.endpoints.get_mut(c).and_then(|x| x.get_mut(e)) {
                    to.open += moved.len() as u32;
                    to.idle = moved;
                }
            }
        }
        next
    }

    /// Returns a connection whose last response was read completely and that may carry another
    /// request.
    pub fn checkin(&mut self, cluster: usize, endpoint: usize, stream: UpstreamConn, now: Instant) {
        let max_idle = self.limits.get(cluster).map_or(0, |l| l.0);
        if let Some(pool) = self
            .endpoints
            .get_mut(cluster)
            .and_then(|c| c.get_mut(endpoint))
        {
            if pool.idle.len() < max_idle {
                self.stats.cluster_http[cluster].pool_idle.inc();
                pool.idle.push(Idle { stream, since: now });
            } else {
                pool.open = pool.open.saturating_sub(1);
            }
        }
    }

    /// Closes a connection from `checkout` that must not be reused (a failed or cut exchange)
    /// with a reset, so the upstream never takes the cut for a complete request.
    pub fn discard(&mut self, cluster: usize, endpoint: usize, conn: UpstreamConn) {
        let _ = sys::set_linger_zero(conn.fd());
        drop(conn);
        self.closed(cluster, endpoint);
    }

    /// A connection from `checkout` (reused or newly opened) was closed instead of checked in.
    pub fn closed(&mut self, cluster: usize, endpoint: usize) {
        if let Some(pool) = self
            .endpoints
            .get_mut(cluster)
            .and_then(|c| c.get_mut(endpoint))
        {
            pool.open = pool.open.saturating_sub(1);
        }
    }

    /// Closes idle connections older than their cluster's idle timeout.
    pub fn sweep(&mut self, now: Instant) {
        for (cluster, endpoints) in self.endpoints.iter_mut().enumerate() {
            let idle_timeout = self.limits[cluster].1;
            for pool in endpoints {
                let expired = pool
                    .idle
                    .iter()
                    .take_while(|i| now.saturating_duration_since(i.since) >= idle_timeout)
                    .count();
                if expired > 0 {
                    pool.idle.drain(..expired);
                    pool.open = pool.open.saturating_sub(expired as u32);
                    self.stats.cluster_http[cluster]
                        .pool_idle
                        .sub(expired as i64);
                }
            }
        }
    }

    /// Drops every idle connection (drain).
    pub fn clear(&mut self) {
        for (cluster, endpoints) in self.endpoints.iter_mut().enumerate() {
            for pool in endpoints {
                pool.open = pool.open.saturating_sub(pool.idle.len() as u32);
                self.stats.cluster_http[cluster]
                    .pool_idle
                    .sub(pool.idle.len() as i64);
                pool.idle.clear();
            }
        }
    }

    /// The sweep period for these pools: half the shortest idle timeout, at least 100 ms.
    pub fn sweep_period(config: &Config) -> Duration {
        config
            .clusters
            .iter()
            .map(|c| c.http.pool_idle_timeout / 2)
            .min()
            .unwrap_or(Duration::from_secs(1))
            .max(Duration::from_millis(100))
    }
}

impl Drop for Pools {
    /// The idle gauge counts connections in every configuration version's pools; those still
    /// idle in a replaced version's pools close now.
    fn drop(&mut self) {
        for (cluster, endpoints) in self.endpoints.iter().enumerate() {
            let idle: usize = endpoints.iter().map(|p| p.idle.len()).sum();
            if let Some(c) = self.stats.cluster_http.get(cluster) {
                c.pool_idle.sub(idle as i64);
            }
        }
    }
}
