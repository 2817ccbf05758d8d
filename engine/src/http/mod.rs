//! The HTTP/1.1 reverse proxy phase of the engine.
//!
//! Owns: serving one client connection on an HTTP listener ([`proxy`]) — reading requests with
//! the strict codec in `strait_protocols::http1`, routing them ([`route`]), forwarding them
//! through per-core upstream connection pools ([`pool`]), writing heads ([`head`]), streaming
//! bodies both ways, answering proxy errors, and logging ([`access_log`]) — plus the per-core
//! state all of that reads ([`HttpCore`]). Must not: parse HTTP itself (the codec does), cross
//! cores, take locks, or buffer whole bodies.

pub(crate) mod access_log;
pub(crate) mod exchange;
pub(crate) mod fault;
pub(crate) mod h2;
pub(crate) mod head;
pub(crate) mod pipeline;
pub(crate) mod pool;
pub(crate) mod proxy;
pub(crate) mod route;
pub(crate) mod tunnel;
pub(crate) mod upstream_conn;

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use strait_protocols::http1::{Limits, RequestHead, ResponseHead};

use crate::config::Config;
use crate::stats::{Carried, CoreStats, RouteSlots};
use access_log::CoreAccessLog;
use pipeline::Pipeline;
use pool::Pools;
use route::RouteTable;

/// How often each core hands its access log buffer to the writer thread.
pub(crate) const ACCESS_LOG_FLUSH: Duration = Duration::from_millis(100);

/// Everything the HTTP proxy keeps per core, built once from the config snapshot.
pub(crate) struct HttpCore {
    /// Per listener; `None` for TCP and UDP listeners.
    pub listeners: Vec<Option<HttpListenerState>>,
    pub pools: RefCell<Pools>,
    /// Multiplexed connections to h2c clusters.
    pub h2_clients: h2::upstream::H2Clients,
    /// Shared by every configuration version of this core (one batch buffer per core).
    pub access_log: Rc<RefCell<Option<CoreAccessLog>>>,
    /// Whether `access_log` is set (read per request without a borrow).
    pub logging: bool,
    pub route_slots: RouteSlots,
    /// Shared by every configuration version of this core, so ids never repeat.
    request_ids: Rc<RequestIds>,
    /// Upstream and output buffers of requests in flight, lent per request: a keep-alive
    /// connection between requests holds none.
    buffers: RefCell<Vec<Vec<u8>>>,
    /// Parsed-head tables (2.6 KiB each), lent the same way. Boxed so lending moves a pointer,
    /// not the table.
    #[allow(clippy::vec_box)]
    request_heads: RefCell<Vec<Box<RequestHead>>>,
    #[allow(clippy::vec_box)]
    response_heads: RefCell<Vec<Box<ResponseHead>>>,
}

/// Size of a lent request buffer: a 16 KiB response with its head arrives in one read.
pub(crate) const REQUEST_BUFFER: usize = 64 * 1024;
/// Idle lent buffers kept per core (bounds memory kept after a burst, not per connection).
const BUFFERS_KEPT: usize = 256;

pub(crate) struct HttpListenerState {
    pub table: RouteTable,
    pub limits: Limits,
    /// The listener's own request-phase policies, run before any route's.
    pub pipeline: Pipeline,
    /// Per route: its compiled request-phase policies (`pipeline`).
    pub routes: Vec<Pipeline>,
}

impl HttpCore {
    pub fn new(
        config: &Config,
        stats: &Arc<CoreStats>,
        access_log: Option<CoreAccessLog>,
    ) -> HttpCore {
        let core_index = stats.index;
        HttpCore {
            listeners: listener_states(config, core_index),
            pools: RefCell::new(Pools::new(config, stats.clone())),
            h2_clients: h2::upstream::H2Clients::new(&config.clusters),
            logging: access_log.is_some(),
            access_log: Rc::new(RefCell::new(access_log)),
            route_slots: RouteSlots::new(config),
            request_ids: Rc::new(RequestIds::new(core_index)),
            buffers: RefCell::new(Vec::new()),
            request_heads: RefCell::new(Vec::new()),
            response_heads: RefCell::new(Vec::new()),
        }
    }

    /// The HTTP state of the next configuration version on this core: routes and policies
    /// compiled anew; idle upstream connections (HTTP/1.1 pools and multiplexed h2 ones) of
    /// endpoints that still exist move over; the access log and request ids are shared.
    pub fn next(&self, old: &Config, config: &Config, stats: &Arc<CoreStats>) -> HttpCore {
        let carried = Carried::new(old, config);
        HttpCore {
            listeners: listener_states(config, stats.index),
            pools: RefCell::new(Pools::carry_over(
                &mut self.pools.borrow_mut(),
                config,
                &carried,
                stats.clone(),
            )),
            h2_clients: self.h2_clients.carry_over(config, &carried),
            logging: self.logging,
            access_log: self.access_log.clone(),
            route_slots: RouteSlots::new(config),
            request_ids: self.request_ids.clone(),
            buffers: RefCell::new(Vec::new()),
            request_heads: RefCell::new(Vec::new()),
            response_heads: RefCell::new(Vec::new()),
        }
    }

    /// Whether this core serves any HTTP listener (and so needs the housekeeping task).
    pub fn is_active(&self) -> bool {
        self.listeners.iter().any(Option::is_some)
    }

    /// An empty buffer with at least [`REQUEST_BUFFER`] capacity, reused when one is idle.
    pub fn take_buffer(&self) -> Vec<u8> {
        self.buffers
            .borrow_mut()
            .pop()
            .unwrap_or_else(|| Vec::with_capacity(REQUEST_BUFFER))
    }

    /// Gives a buffer back; buffers grown for bulk bodies (or never grown) are freed instead.
    pub fn give_buffer(&self, mut buf: Vec<u8>) {
        if (REQUEST_BUFFER..=2 * REQUEST_BUFFER).contains(&buf.capacity()) {
            let mut kept = self.buffers.borrow_mut();
            if kept.len() < BUFFERS_KEPT {
                buf.clear();
                kept.push(buf);
            }
        }
    }

    pub fn take_request_head(&self) -> Box<RequestHead> {
        self.request_heads
            .borrow_mut()
            .pop()
            .unwrap_or_else(|| Box::new(RequestHead::new()))
    }

    pub fn give_request_head(&self, head: Box<RequestHead>) {
        let mut kept = self.request_heads.borrow_mut();
        if kept.len() < BUFFERS_KEPT {
            kept.push(head);
        }
    }

    pub fn take_response_head(&self) -> Box<ResponseHead> {
        self.response_heads
            .borrow_mut()
            .pop()
            .unwrap_or_else(|| Box::new(ResponseHead::new()))
    }

    pub fn give_response_head(&self, head: Box<ResponseHead>) {
        let mut kept = self.response_heads.borrow_mut();
        if kept.len() < BUFFERS_KEPT {
            kept.push(head);
        }
    }

    /// A new request id: 32 lowercase hex digits, unique per process run.
    pub fn next_request_id(&self) -> [u8; 32] {
        self.request_ids.next()
    }
}

/// Per HTTP listener: its route table, codec limits and compiled request phases.
fn listener_states(config: &Config, core: usize) -> Vec<Option<HttpListenerState>> {
    config
        .listeners
        .iter()
        .map(|l| {
            l.http.as_ref().map(|http| HttpListenerState {
                table: RouteTable::compile(&http.routes),
                limits: Limits {
                    max_request_line: http.limits.max_request_line,
                    max_header_block: http.limits.max_header_size,
                    max_headers: http.limits.max_headers,
                    ..Limits::DEFAULT
                },
                pipeline: Pipeline::for_listener(http),
                routes: http
                    .routes
                    .iter()
                    .map(|r| Pipeline::for_route(r, http, core))
                    .collect(),
            })
        })
        .collect()
}

/// Request ids: a per-process random prefix mixed with the core index, then a per-core counter.
/// Unique without coordination between cores, cheap (no syscall per request).
struct RequestIds {
    prefix: u64,
    counter: Cell<u64>,
}

impl RequestIds {
    fn new(core_index: usize) -> RequestIds {
        RequestIds {
            prefix: process_seed() ^ ((core_index as u64) << 56),
            counter: Cell::new(0),
        }
    }

    fn next(&self) -> [u8; 32] {
        let n = self.counter.get().wrapping_add(1);
        self.counter.set(n);
        let mut out = [0u8; 32];
        hex_into(&mut out[..16], self.prefix);
        hex_into(&mut out[16..], n);
        out
    }
}

fn hex_into(out: &mut [u8], mut v: u64) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for slot in out.iter_mut().rev() {
        *slot = DIGITS[(v & 0xf) as usize];
        v >>= 4;
    }
}

/// 64 random bits per process: from the kernel when possible, else time and pid.
fn process_seed() -> u64 {
    use std::io::Read;
    let mut bytes = [0u8; 8];
    if std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .is_ok()
    {
        return u64::from_ne_bytes(bytes);
    }
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    nanos ^ (u64::from(std::process::id()) << 32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_are_hex_and_distinct_per_core_and_call() {
        let a = RequestIds::new(0);
        let b = RequestIds::new(1);
        let (a1, a2, b1) = (a.next(), a.next(), b.next());
        assert_ne!(a1, a2);
        assert_ne!(a1, b1);
        assert!(a1.iter().all(|c| c.is_ascii_hexdigit()));
        assert_eq!(&a1[16..], b"0000000000000001");
    }
}
