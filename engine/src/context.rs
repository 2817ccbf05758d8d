//! A core's context: the one record every task on a core shares.
//!
//! Owns: [`CoreContext`] (the configuration snapshot, this core's counters and histograms, its
//! balancers, relay pools, per-listener TLS copies and everything HTTP keeps per core) and the
//! [`OpenSockets`] slab of the core's open descriptors. Everything in it is core-private:
//! `Cell`/`RefCell`, never shared with another core. Must not: import anything that serves
//! connections (proxies, the exchange, entry, core's loops): it sits below all of them, so any of
//! them can take a `&CoreContext` without an import cycle (docs/architecture.md, "Layers").

use std::cell::{Cell, RefCell};
use std::os::fd::RawFd;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use strait_balancer::{ClusterBalancer, WeightedRoundRobin};
use strait_protocols::relay::{
    sys, BufferPool, IdleTimers, PipePool, RelayCore, RelayOptions, Transfer,
};

use crate::config::{Config, ListenerProtocol, RelayMode};
use crate::http::{access_log::CoreAccessLog, HttpCore};
use crate::log_limit::LogLimit;
use crate::stats::{CoreHistograms, CoreStats};

/// Empty pipes kept per core for reuse by new connections (two per connection while in use).
const PIPE_POOL_IDLE: usize = 256;
/// Idle copy buffers kept per core. Buffers are lent only while bytes are in flight, so this
/// bounds memory kept after a burst, not memory per connection.
const BUFFER_POOL_IDLE: usize = 64;

pub(crate) struct CoreContext {
    /// The configuration version this context was built from (0 at start; grows by one per
    /// reload). A reload builds the next context ([`CoreContext::next`]); connections keep the
    /// context they started with, new ones take the core's current one.
    pub version: u64,
    /// The core's current version (shared by every version of the core): a connection whose
    /// version is older answers its next response with `connection: close` (HTTP/1.1) or
    /// sends GOAWAY (h2), so its client reconnects to the current configuration.
    pub current_version: Rc<Cell<u64>>,
    pub config: Arc<Config>,
    pub stats: Arc<CoreStats>,
    pub histograms: RefCell<CoreHistograms>,
    /// One balancer per cluster, private to this core.
    pub balancers: Vec<RefCell<ClusterBalancer>>,
    /// Per core, shared by every configuration version of this core.
    pub relay: Rc<RelayCore>,
    /// Per listener.
    pub relay_options: Vec<RelayOptions>,
    /// Open connections of this core, whatever configuration version they run on.
    pub active: Rc<Cell<u32>>,
    pub draining: Rc<Cell<bool>>,
    /// Sockets of open connections (every version's), so the drain deadline can abort them.
    pub open_sockets: Rc<RefCell<OpenSockets>>,
    /// Per cluster: throttles "upstream connect failed" warnings.
    pub connect_warnings: Vec<LogLimit>,
    /// HTTP listeners' routes, upstream pools and access log.
    pub http: HttpCore,
    /// Per listener: this core's own copy of the TLS configuration (swapped on reload).
    pub tls: RefCell<Vec<Option<Arc<rustls::ServerConfig>>>>,
    /// Per cluster: this core's own copy of the upstream TLS configuration.
    pub upstream_tls: RefCell<Vec<Option<Arc<rustls::ClientConfig>>>>,
}

/// Slots of (client, upstream) descriptors of this core's open connections. Insert and remove are
/// O(1) and allocation-free once the slab has grown to the peak connection count.
#[derive(Default)]
pub(crate) struct OpenSockets {
    slots: Vec<OpenSocket>,
    free: Vec<usize>,
}

#[derive(Clone, Copy)]
struct OpenSocket {
    client: RawFd,
    upstream: RawFd,
    /// An HTTP connection waiting for its next request: closed at once when the drain begins.
    idle: bool,
    /// The drain shut this connection's read side while it looked idle.
    shut: bool,
}

impl OpenSocket {
    const EMPTY: OpenSocket = OpenSocket {
        client: -1,
        upstream: -1,
        idle: false,
        shut: false,
    };
}

impl OpenSockets {
    pub fn insert(&mut self, client: RawFd) -> usize {
        let entry = OpenSocket {
            client,
            ..OpenSocket::EMPTY
        };
        match self.free.pop() {
            Some(i) => {
                self.slots[i] = entry;
                i
            }
            None => {
                self.slots.push(entry);
                self.slots.len() - 1
            }
        }
    }

    /// An upstream socket held by an HTTP exchange (its own entry: an h2 client connection
    /// holds many at once).
    pub fn insert_upstream(&mut self, upstream: RawFd) -> usize {
        let slot = self.insert(-1);
        self.set_upstream(slot, upstream);
        slot
    }

    pub fn set_upstream(&mut self, slot: usize, upstream: RawFd) {
        if let Some(s) = self.slots.get_mut(slot) {
            s.upstream = upstream;
        }
    }

    pub fn set_idle(&mut self, slot: usize) {
        if let Some(s) = self.slots.get_mut(slot) {
            s.idle = true;
        }
    }

    /// The connection stopped waiting; true if the drain shut its read side meanwhile (a request
    /// that arrived just then can still be answered, but nothing more can be read).
    pub fn end_idle(&mut self, slot: usize) -> bool {
        self.slots.get_mut(slot).is_some_and(|s| {
            s.idle = false;
            s.shut
        })
    }

    pub fn remove(&mut self, slot: usize) {
        if let Some(s) = self.slots.get_mut(slot) {
            *s = OpenSocket::EMPTY;
            self.free.push(slot);
        }
    }

    /// Makes every open socket close with RST when its task is dropped: a stream cut by the drain
    /// deadline must not look complete to either peer.
    pub(crate) fn abort_all(&self) {
        let fds = self.slots.iter().flat_map(|s| [s.client, s.upstream]);
        for fd in fds.filter(|&fd| fd >= 0) {
            let _ = sys::set_linger_zero(fd);
        }
    }

    /// Ends the wait of every HTTP connection idle between requests: shutting down the read side
    /// makes its pending read return end-of-file, and the connection closes cleanly.
    pub(crate) fn close_idle(&mut self) {
        for s in self.slots.iter_mut().filter(|s| s.idle && s.client >= 0) {
            // SAFETY: shutdown(2) on a descriptor this core owns; it touches no memory.
            let _ = unsafe { libc::shutdown(s.client, libc::SHUT_RD) };
            s.shut = true;
        }
    }
}

impl CoreContext {
    pub fn new(
        config: Arc<Config>,
        stats: Arc<CoreStats>,
        access_log: Option<CoreAccessLog>,
    ) -> CoreContext {
        let rt = &config.runtime;
        CoreContext {
            histograms: RefCell::new(CoreHistograms::new(&config)),
            balancers: balancers(&config, stats.index),
            relay: Rc::new(RelayCore {
                pipes: PipePool::new(rt.relay_buffer_size as usize, PIPE_POOL_IDLE),
                buffers: BufferPool::new(rt.relay_buffer_size as usize, BUFFER_POOL_IDLE),
                idle: IdleTimers::new(IdleTimers::tick_for(
                    // HTTP connections use their own timeouts, not the relay's idle sweeper.
                    config
                        .listeners
                        .iter()
                        .filter(|l| l.protocol != ListenerProtocol::Http)
                        .map(|l| l.idle_timeout)
                        .min()
                        .unwrap_or(Duration::from_secs(1)),
                )),
            }),
            relay_options: relay_options(&config),
            active: Rc::default(),
            draining: Rc::default(),
            open_sockets: Rc::default(),
            connect_warnings: config
                .clusters
                .iter()
                .map(|_| LogLimit::per_second())
                .collect(),
            http: HttpCore::new(&config, &stats, access_log),
            version: 0,
            current_version: Rc::default(),
            tls: RefCell::new(vec![None; config.listeners.len()]),
            upstream_tls: RefCell::new(vec![None; config.clusters.len()]),
            config,
            stats,
        }
    }

    /// The context of the next configuration version on this core: the per-core parts (open
    /// connections, the drain flag, the open-socket slab, relay pools) are shared with this one;
    /// what depends on the configuration is built from `config`, carrying over by name what
    /// still exists: counters (`stats`, built by [`CoreStats::carry_over`]), histograms, idle
    /// upstream connections, the access log and request ids. Listeners are the same (the
    /// reload refused any other change), so their TLS copies carry over by position.
    pub fn next(
        &self,
        config: Arc<Config>,
        stats: Arc<CoreStats>,
        version: u64,
        upstream_tls: &[(usize, Arc<rustls::ClientConfig>)],
    ) -> CoreContext {
        // The samples move to the next version: this one's connections record from zero, and a
        // histogram read adds both (core.rs, answer_histograms) without counting any twice.
        let histograms = self.histograms.borrow().carry_over(&self.config, &config);
        if let Ok(mut h) = self.histograms.try_borrow_mut() {
            h.reset();
        }
        let next = CoreContext {
            version,
            current_version: self.current_version.clone(),
            histograms: RefCell::new(histograms),
            balancers: balancers(&config, stats.index),
            relay: self.relay.clone(),
            relay_options: relay_options(&config),
            active: self.active.clone(),
            draining: self.draining.clone(),
            open_sockets: self.open_sockets.clone(),
            connect_warnings: config
                .clusters
                .iter()
                .map(|_| LogLimit::per_second())
                .collect(),
            http: self.http.next(&self.config, &config, &stats),
            tls: RefCell::new(self.tls.borrow().clone()),
            upstream_tls: RefCell::new(vec![None; config.clusters.len()]),
            config,
            stats,
        };
        for (cluster, shared) in upstream_tls {
            next.set_upstream_tls(*cluster, shared);
        }
        next
    }

    /// A newer configuration version serves new connections: this connection's client should
    /// reconnect (after its current request or stream).
    pub fn superseded(&self) -> bool {
        self.current_version.get() != self.version
    }

    /// The TLS configuration for a new handshake on `listener`.
    pub fn tls_config(&self, listener: usize) -> Option<Arc<rustls::ServerConfig>> {
        self.tls.borrow().get(listener).cloned().flatten()
    }

    /// The TLS configuration for a new connection to `cluster`.
    pub fn upstream_tls_config(&self, cluster: usize) -> Option<Arc<rustls::ClientConfig>> {
        self.upstream_tls.borrow().get(cluster).cloned().flatten()
    }

    /// Installs a cluster's upstream TLS configuration (a copy of its own; see [`set_tls`]).
    pub fn set_upstream_tls(&self, cluster: usize, shared: &rustls::ClientConfig) {
        if let Some(slot) = self.upstream_tls.borrow_mut().get_mut(cluster) {
            *slot = Some(Arc::new(shared.clone()));
        }
    }

    /// Installs a listener's TLS configuration. The core keeps its own copy, so taking a
    /// reference per handshake touches no cache line another core writes.
    pub fn set_tls(&self, listener: usize, shared: &rustls::ServerConfig) {
        if let Some(slot) = self.tls.borrow_mut().get_mut(listener) {
            *slot = Some(Arc::new(shared.clone()));
        }
    }
}

/// One balancer per cluster, its start rotated by the core's index.
fn balancers(config: &Config, core: usize) -> Vec<RefCell<ClusterBalancer>> {
    config
        .clusters
        .iter()
        .map(|c| {
            let weights: Vec<u32> = c.endpoints.iter().map(|e| e.weight).collect();
            RefCell::new(ClusterBalancer::RoundRobin(WeightedRoundRobin::new(
                &weights, core,
            )))
        })
        .collect()
}

/// Per listener: how its TCP relays copy and when they idle out.
fn relay_options(config: &Config) -> Vec<RelayOptions> {
    let transfer = match config.runtime.relay {
        RelayMode::Splice => Transfer::Splice,
        RelayMode::Copy => Transfer::Copy,
    };
    config
        .listeners
        .iter()
        .map(|l| RelayOptions {
            transfer,
            idle_timeout: l.idle_timeout,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::io::Read;
    use std::os::fd::AsRawFd;
    use std::os::unix::net::UnixStream;

    use super::*;

    #[test]
    fn the_drain_shuts_only_connections_waiting_for_a_request() {
        let (mut idle_end, _idle_peer) = UnixStream::pair().expect("pair");
        let (busy_end, _busy_peer) = UnixStream::pair().expect("pair");
        let mut open = OpenSockets::default();
        let idle = open.insert(idle_end.as_raw_fd());
        let busy = open.insert(busy_end.as_raw_fd());
        open.set_idle(idle);
        open.close_idle();
        // The idle connection's read side is shut (a read sees end-of-file at once) and it is
        // told so when it wakes; the busy one is untouched.
        let mut byte = [0u8; 1];
        assert_eq!(idle_end.read(&mut byte).expect("read"), 0);
        assert!(open.end_idle(idle));
        assert!(!open.end_idle(busy));
        busy_end.set_nonblocking(true).expect("nonblocking");
        let mut busy_end = busy_end;
        assert!(
            busy_end.read(&mut byte).is_err(),
            "the busy socket must still be open for reading"
        );
    }
}
