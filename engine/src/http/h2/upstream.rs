//! The core's HTTP/2 (h2c) connections to upstream endpoints, multiplexed across requests.
//!
//! Owns: per cluster and endpoint, a few h2c client connections shared by every stream on this
//! core; at most [`STREAMS_PER_CONNECTION`] requests in flight on each (a new connection is
//! opened when all are saturated, and never more than `max_connections_per_endpoint`); the
//! driver task of each connection; forgetting connections that closed or received GOAWAY.
//! Must not: be shared between cores (an `h2::client::SendRequest` is cheap to clone but its
//! connection belongs to this core's runtime).

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use bytes::Bytes;
use h2::client::SendRequest;
use strait_balancer::{Balancer, TriedSet};
use tracing::debug;

use crate::core::CoreContext;

/// Requests in flight per upstream h2 connection before another is opened: the value most
/// servers advertise as SETTINGS_MAX_CONCURRENT_STREAMS (RFC 9113 §6.5.2 recommends ≥ 100).
pub(crate) const STREAMS_PER_CONNECTION: usize = 100;

/// One upstream h2c connection.
struct Client {
    send: SendRequest<Bytes>,
    /// Streams in flight (a stream holds an [`InFlight`] guard).
    in_flight: Rc<Cell<usize>>,
    /// Cleared by the driver task when the connection ends.
    alive: Rc<Cell<bool>>,
}

/// Per core: `[cluster][endpoint]` → open connections.
#[derive(Default)]
pub(crate) struct H2Clients {
    clients: RefCell<Vec<Vec<Vec<Client>>>>,
}

impl H2Clients {
    pub(crate) fn new(clusters: &[crate::config::ClusterConfig]) -> H2Clients {
        H2Clients {
            clients: RefCell::new(
                clusters
                    .iter()
                    .map(|c| c.endpoints.iter().map(|_| Vec::new()).collect())
                    .collect(),
            ),
        }
    }

    /// Closes every connection (drain).
    pub(crate) fn clear(&self) {
        for endpoints in self.clients.borrow_mut().iter_mut() {
            for list in endpoints.iter_mut() {
                list.clear();
            }
        }
    }
}

/// A stream slot on an upstream connection, released on drop.
pub(crate) struct InFlight {
    pub send: SendRequest<Bytes>,
    count: Rc<Cell<usize>>,
}

impl InFlight {
    pub(crate) fn send_request(
        &mut self,
        request: http::Request<()>,
        end_of_stream: bool,
    ) -> Result<(h2::client::ResponseFuture, h2::SendStream<Bytes>), h2::Error> {
        self.send.send_request(request, end_of_stream)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.count.set(self.count.get().saturating_sub(1));
    }
}

/// A connection with a free stream slot to an endpoint of `cluster` (opening one if needed),
/// ready to send a request: `(slot, endpoint)`.
pub(crate) async fn client(ctx: &Rc<CoreContext>, cluster: usize) -> Option<(InFlight, usize)> {
    let attempts = ctx.config.clusters[cluster].connect_attempts;
    let max_open = ctx.config.clusters[cluster]
        .http
        .max_connections_per_endpoint as usize;
    let mut tried = TriedSet::new();
    for _ in 0..attempts {
        let endpoint = ctx.balancers[cluster]
            .borrow_mut()
            .pick(&|i| tried.contains(i))?;
        tried.insert(endpoint);
        // Reuse: the least busy live connection with a free slot.
        let existing = {
            let mut all = ctx.http.h2_clients.clients.borrow_mut();
            let list = &mut all[cluster][endpoint];
            list.retain(|c| c.alive.get());
            let open = list.len();
            let best = list
                .iter()
                .filter(|c| c.in_flight.get() < STREAMS_PER_CONNECTION)
                .min_by_key(|c| c.in_flight.get())
                .map(|c| (c.send.clone(), c.in_flight.clone()));
            (best, open)
        };
        let (send, count) = match existing {
            (Some(found), _) => {
                ctx.stats.cluster_http[cluster].pool_hits.inc();
                found
            }
            (None, open) if open >= max_open => {
                ctx.stats.cluster_http[cluster].pool_full.inc();
                continue;
            }
            (None, _) => match connect(ctx, cluster, endpoint).await {
                Some(found) => {
                    ctx.stats.cluster_http[cluster].pool_misses.inc();
                    found
                }
                None => continue,
            },
        };
        count.set(count.get() + 1);
        let slot = InFlight { send, count };
        let ready = std::future::poll_fn(|cx| {
            let mut s = slot.send.clone();
            s.poll_ready(cx)
        })
        .await;
        match ready {
            Ok(()) => return Some((slot, endpoint)),
            Err(e) => {
                debug!(error = %e, "upstream h2 connection not usable");
                continue;
            }
        }
    }
    None
}

/// Opens an h2c connection (prior knowledge, RFC 9113 §3.3) and starts its driver task.
async fn connect(
    ctx: &Rc<CoreContext>,
    cluster: usize,
    endpoint: usize,
) -> Option<(SendRequest<Bytes>, Rc<Cell<usize>>)> {
    let stream = crate::tcp_proxy::connect_endpoint(ctx, cluster, endpoint).await?;
    let io = monoio_compat::StreamWrapper::new(stream);
    let mut builder = h2::client::Builder::new();
    builder
        .initial_window_size(1024 * 1024)
        .initial_connection_window_size(8 * 1024 * 1024)
        .max_concurrent_reset_streams(1024)
        .max_send_buffer_size(256 * 1024);
    let timeout = ctx.config.clusters[cluster].connect_timeout;
    let (send, connection) = match monoio::time::timeout(timeout, builder.handshake(io)).await {
        Ok(Ok(pair)) => pair,
        Ok(Err(e)) => {
            debug!(error = %e, "upstream h2 handshake failed");
            ctx.stats.cluster_http[cluster]
                .upstream_protocol_errors
                .inc();
            return None;
        }
        Err(_) => {
            ctx.stats.cluster_http[cluster].upstream_timeouts.inc();
            return None;
        }
    };
    let alive = Rc::new(Cell::new(true));
    let in_flight = Rc::new(Cell::new(0));
    let driver_alive = alive.clone();
    monoio::spawn(async move {
        if let Err(e) = connection.await {
            debug!(error = %e, "upstream h2 connection ended");
        }
        driver_alive.set(false);
    });
    ctx.http.h2_clients.clients.borrow_mut()[cluster][endpoint].push(Client {
        send: send.clone(),
        in_flight: in_flight.clone(),
        alive,
    });
    Some((send, in_flight))
}
