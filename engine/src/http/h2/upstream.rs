//! The core's HTTP/2 (h2c) connections to upstream endpoints, multiplexed across requests.
//!
//! Owns: per cluster and endpoint, a few h2c client connections shared by every stream on this
//! core; at most [`STREAMS_PER_CONNECTION`] requests in flight on each (a new connection is
//! opened when all are saturated — one at a time per endpoint, so a burst of streams waits for
//! it instead of opening one each — and never more than `max_connections_per_endpoint`); the
//! driver task of each connection; forgetting connections that closed or received GOAWAY.
//! Must not: be shared between cores (an `h2::client::SendRequest` is cheap to clone but its
//! connection belongs to this core's runtime).

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use h2::client::SendRequest;
use strait_balancer::{Balancer, TriedSet};
use tracing::debug;

use crate::context::CoreContext;

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

/// Per core: `[cluster][endpoint]` → open connections, and whether one is being opened.
#[derive(Default)]
pub(crate) struct H2Clients {
    clients: RefCell<Vec<Vec<Vec<Client>>>>,
    /// `[cluster][endpoint]`: a connection is being opened. Streams that find no free slot wait
    /// for it instead of each opening their own (a burst of streams would otherwise open one
    /// connection per stream).
    connecting: RefCell<Vec<Vec<bool>>>,
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
            connecting: RefCell::new(
                clusters
                    .iter()
                    .map(|c| vec![false; c.endpoints.len()])
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

/// Why no stream slot could be had.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Unavailable {
    /// Every endpoint tried has `max_connections_per_endpoint` connections, all busy (503).
    Full,
    /// No connection could be opened (502).
    Failed,
}

/// A connection with a free stream slot to an endpoint of `cluster` (opening one if needed),
/// ready to send a request: `(slot, endpoint)`.
pub(crate) async fn client(
    ctx: &Rc<CoreContext>,
    cluster: usize,
) -> Result<(InFlight, usize), Unavailable> {
    let config = &ctx.config.clusters[cluster];
    let max_open = config.http.max_connections_per_endpoint as usize;
    let mut tried = TriedSet::new();
    let mut all_full = true;
    for _ in 0..config.connect_attempts {
        let Some(endpoint) = ctx.balancers[cluster]
            .borrow_mut()
            .pick(&strait_balancer::PickContext::new(&tried), &|_| false)
        else {
            break;
        };
        tried.insert(endpoint);
        // An opener may take a connect timeout for TCP, TLS and the h2 handshake each.
        let deadline = Instant::now() + config.connect_timeout * 3;
        // A connection that turns out unusable (an upstream GOAWAY) is forgotten and the same
        // endpoint tried again, a bounded number of times.
        for _ in 0..4 {
            let found = loop {
                match free_slot(ctx, cluster, endpoint, max_open) {
                    Slot::Free(send, count, alive) => {
                        ctx.stats.cluster_http[cluster].pool_hits.inc();
                        break Some((send, count, alive));
                    }
                    Slot::Full => {
                        ctx.stats.cluster_http[cluster].pool_full.inc();
                        break None;
                    }
                    Slot::Open => {
                        all_full = false;
                        let opened = connect(ctx, cluster, endpoint).await;
                        if opened.is_some() {
                            ctx.stats.cluster_http[cluster].pool_misses.inc();
                        }
                        break opened;
                    }
                    Slot::Wait if Instant::now() < deadline => {
                        // Another stream is opening a connection to this endpoint: use it.
                        monoio::time::sleep(Duration::from_millis(1)).await;
                    }
                    Slot::Wait => {
                        all_full = false;
                        break None;
                    }
                }
            };
            let Some((send, count, alive)) = found else {
                break;
            };
            count.set(count.get() + 1);
            let slot = InFlight { send, count };
            let ready = std::future::poll_fn(|cx| {
                let mut s = slot.send.clone();
                s.poll_ready(cx)
            })
            .await;
            match ready {
                Ok(()) => return Ok((slot, endpoint)),
                Err(e) => {
                    debug!(error = %e, "upstream h2 connection not usable (GOAWAY or closed); forgetting it");
                    alive.set(false);
                }
            }
        }
    }
    Err(if all_full {
        Unavailable::Full
    } else {
        Unavailable::Failed
    })
}

/// A new connection: its request handle, stream count and liveness.
type Opened = (SendRequest<Bytes>, Rc<Cell<usize>>, Rc<Cell<bool>>);

enum Slot {
    /// A live connection with a free stream slot (its stream count and liveness).
    Free(SendRequest<Bytes>, Rc<Cell<usize>>, Rc<Cell<bool>>),
    /// Every connection is busy and another is being opened.
    Wait,
    /// Every connection is busy: open one (marked as being opened).
    Open,
    /// Every connection is busy and the endpoint has `max_connections_per_endpoint`.
    Full,
}

/// The least busy live connection with a free slot, or what to do instead.
fn free_slot(ctx: &CoreContext, cluster: usize, endpoint: usize, max_open: usize) -> Slot {
    let mut all = ctx.http.h2_clients.clients.borrow_mut();
    let list = &mut all[cluster][endpoint];
    list.retain(|c| c.alive.get());
    let best = list
        .iter()
        .filter(|c| c.in_flight.get() < STREAMS_PER_CONNECTION)
        .min_by_key(|c| c.in_flight.get());
    if let Some(c) = best {
        return Slot::Free(c.send.clone(), c.in_flight.clone(), c.alive.clone());
    }
    let open = list.len();
    let mut connecting = ctx.http.h2_clients.connecting.borrow_mut();
    let flag = &mut connecting[cluster][endpoint];
    if *flag {
        Slot::Wait
    } else if open >= max_open {
        Slot::Full
    } else {
        *flag = true;
        Slot::Open
    }
}

/// Opens an h2c connection (prior knowledge, RFC 9113 §3.3) and starts its driver task.
async fn connect(ctx: &Rc<CoreContext>, cluster: usize, endpoint: usize) -> Option<Opened> {
    /// Clears the endpoint's "being opened" mark however the attempt ends (even if the
    /// attempt's future is dropped), so waiting streams never wait for nothing.
    struct Opening<'a>(&'a CoreContext, usize, usize);
    impl Drop for Opening<'_> {
        fn drop(&mut self) {
            if let Ok(mut c) = self.0.http.h2_clients.connecting.try_borrow_mut() {
                c[self.1][self.2] = false;
            }
        }
    }
    let _opening = Opening(ctx, cluster, endpoint);
    open(ctx, cluster, endpoint).await
}

async fn open(ctx: &Rc<CoreContext>, cluster: usize, endpoint: usize) -> Option<Opened> {
    let stream = crate::upstream::connect_endpoint(ctx, cluster, endpoint).await?;
    let config = &ctx.config.clusters[cluster];
    if config.http.protocol == crate::config::UpstreamProtocol::H2 {
        let tls = crate::upstream::connect_tls(ctx, cluster, endpoint, stream).await?;
        return handshake(
            ctx,
            cluster,
            endpoint,
            monoio_compat::StreamWrapper::new(tls),
        )
        .await;
    }
    // Clear text: readiness mode, so `h2` reads and writes the socket directly.
    match stream.try_into_poll_io() {
        Ok(io) => handshake(ctx, cluster, endpoint, io).await,
        Err((e, _)) => {
            debug!(error = %e, "cannot switch an upstream socket to readiness mode");
            None
        }
    }
}

async fn handshake<IO>(
    ctx: &Rc<CoreContext>,
    cluster: usize,
    endpoint: usize,
    io: IO,
) -> Option<Opened>
where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + 'static,
{
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
        alive: alive.clone(),
    });
    Some((send, in_flight, alive))
}
