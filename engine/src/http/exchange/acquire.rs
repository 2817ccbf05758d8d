//! The connection of one attempt: endpoint choice (the cluster's balancer, given the request's
//! [`PickContext`]: its hash key and the endpoints already tried) with failover, and the
//! connection itself: a pooled HTTP/1.1 one (clear text or TLS) or a stream slot on one of the
//! core's multiplexed h2 connections (opened here, with its driver task, when every connection is
//! busy).
//!
//! Owns: [`h1`] and [`h2`], [`H1Attempt`]/[`H2Attempt`], and the registration of an attempt's
//! socket for the drain deadline. Must not: send requests or read responses (the legs and the
//! exchange do), decide retries, or hold a `RefCell` borrow across an `.await`.

use std::cell::Cell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use strait_balancer::{Balancer, PickContext, TriedSet};
use tracing::debug;

use crate::context::CoreContext;
use crate::http::h2::upstream::{free_slot, Client, InFlight, Opened, Slot};
use crate::http::pool::{Checkout, Reuse};
use crate::http::upstream_conn::UpstreamConn;
use crate::upstream::OpenUpstream;

/// Why no connection could be had.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Unavailable {
    /// Every endpoint tried is at `max_connections_per_endpoint` on this core (503).
    Full,
    /// No connection could be opened (502).
    Failed,
}

/// An HTTP/1.1 connection held by one attempt.
pub(crate) struct H1Attempt {
    pub conn: UpstreamConn,
    pub endpoint: usize,
    /// Taken from the pool (a failure before any answer may be a close the peek missed).
    pub reused: bool,
    /// The socket is in the core's open-socket slab while the attempt holds it, so the drain
    /// deadline resets it (for HTTP/1.1 and h2 clients alike).
    pub registered: OpenUpstream,
}

impl H1Attempt {
    fn new(ctx: &Rc<CoreContext>, conn: UpstreamConn, endpoint: usize, reused: bool) -> Self {
        let registered = OpenUpstream::register(ctx, conn.fd());
        H1Attempt {
            conn,
            endpoint,
            reused,
            registered,
        }
    }
}

/// A stream slot on a multiplexed h2 connection, held by one attempt.
pub(crate) struct H2Attempt {
    pub slot: InFlight,
    pub endpoint: usize,
    /// On a connection that carried earlier streams.
    pub reused: bool,
}

/// A pooled or new HTTP/1.1 connection to an endpoint of `cluster`, balancing over the endpoints
/// not in `tried` with failover, up to the cluster's `connect_attempts` connects. `Full` when no
/// connection could be had and an endpoint was skipped for being at
/// `max_connections_per_endpoint` (503 rather than 502).
pub(crate) async fn h1(
    ctx: &Rc<CoreContext>,
    cluster: usize,
    hash: Option<u64>,
    tried: &mut TriedSet,
    reuse: Reuse,
) -> Result<H1Attempt, Unavailable> {
    let mut any_full = false;
    let attempts = ctx.config.clusters[cluster].connect_attempts;
    let counters = &ctx.stats.cluster_http[cluster];
    let mut connects = 0;
    while connects < attempts {
        let picked = ctx.balancers[cluster]
            .borrow_mut()
            .pick(&PickContext { hash, tried }, &|_| false);
        let Some(endpoint) = picked else { break };
        let (checkout, stream) =
            ctx.http
                .pools
                .borrow_mut()
                .checkout(cluster, endpoint, Instant::now(), reuse);
        match (checkout, stream) {
            (Checkout::Reused, Some(stream)) => {
                // Not marked tried: the retry path may come back to this endpoint.
                counters.pool_hits.inc();
                return Ok(H1Attempt::new(ctx, stream, endpoint, true));
            }
            (Checkout::Full, _) => {
                tried.insert(endpoint);
                any_full = true;
                continue;
            }
            _ => {
                tried.insert(endpoint);
            }
        }
        connects += 1;
        match connect_h1(ctx, cluster, endpoint).await {
            Some(stream) => {
                counters.pool_misses.inc();
                return Ok(H1Attempt::new(ctx, stream, endpoint, false));
            }
            None => ctx.http.pools.borrow_mut().closed(cluster, endpoint),
        }
    }
    Err(if any_full {
        Unavailable::Full
    } else {
        Unavailable::Failed
    })
}

/// A new connection to an endpoint: TCP, then TLS when the cluster has `tls`.
async fn connect_h1(ctx: &CoreContext, cluster: usize, endpoint: usize) -> Option<UpstreamConn> {
    let stream = crate::upstream::connect_endpoint(ctx, cluster, endpoint).await?;
    if ctx.config.clusters[cluster].http.tls.is_none() {
        return Some(UpstreamConn::Plain(stream));
    }
    // Boxed: the handshake's state would otherwise sit in every HTTP connection's task.
    let tls = Box::pin(crate::upstream::connect_tls(ctx, cluster, endpoint, stream)).await?;
    Some(UpstreamConn::Tls(Box::new(tls)))
}

/// A stream slot on a multiplexed h2 connection to an endpoint of `cluster` (opening a
/// connection if needed), ready to send a request; failover over endpoints not in `tried`.
pub(crate) async fn h2(
    ctx: &Rc<CoreContext>,
    cluster: usize,
    hash: Option<u64>,
    tried: &mut TriedSet,
) -> Result<H2Attempt, Unavailable> {
    let config = &ctx.config.clusters[cluster];
    let max_open = config.http.max_connections_per_endpoint as usize;
    let mut any_full = false;
    for _ in 0..config.connect_attempts {
        let Some(endpoint) = ctx.balancers[cluster]
            .borrow_mut()
            .pick(&PickContext { hash, tried }, &|_| false)
        else {
            break;
        };
        // An opener may take a connect timeout for TCP, TLS and the h2 handshake each.
        let deadline = Instant::now() + config.connect_timeout * 3;
        // A connection that turns out unusable (an upstream GOAWAY) is forgotten and the same
        // endpoint tried again, a bounded number of times.
        for _ in 0..4 {
            let found = loop {
                match free_slot(&ctx.http.h2_clients, cluster, endpoint, max_open) {
                    Slot::Free(send, count, alive) => {
                        ctx.stats.cluster_http[cluster].pool_hits.inc();
                        break Some((send, count, alive, true));
                    }
                    Slot::Full => {
                        any_full = true;
                        break None;
                    }
                    Slot::Open => {
                        let opened = connect_h2(ctx, cluster, endpoint).await;
                        if opened.is_some() {
                            ctx.stats.cluster_http[cluster].pool_misses.inc();
                        }
                        break opened.map(|(s, c, a)| (s, c, a, false));
                    }
                    Slot::Wait if Instant::now() < deadline => {
                        // Another stream is opening a connection to this endpoint: use it.
                        monoio::time::sleep(Duration::from_millis(1)).await;
                    }
                    Slot::Wait => break None,
                }
            };
            let Some((send, count, alive, reused)) = found else {
                break;
            };
            count.set(count.get() + 1);
            let mut slot = InFlight { send, count };
            // Polled in place: a clone of an h2 `SendRequest` takes the connection's lock.
            let ready = std::future::poll_fn(|cx| slot.send.poll_ready(cx)).await;
            match ready {
                Ok(()) => {
                    // Not marked tried: a retry (after the upstream closed this connection, or
                    // refused the stream) may come back to this endpoint, on a new stream or
                    // connection, as the HTTP/1.1 pool's reuse does.
                    return Ok(H2Attempt {
                        slot,
                        endpoint,
                        reused,
                    });
                }
                Err(e) => {
                    debug!(error = %e, "upstream h2 connection not usable (GOAWAY or closed); forgetting it");
                    alive.set(false);
                }
            }
        }
        tried.insert(endpoint);
    }
    Err(if any_full {
        Unavailable::Full
    } else {
        Unavailable::Failed
    })
}

/// Opens an h2c connection (prior knowledge, RFC 9113 §3.3) and starts its driver task.
async fn connect_h2(ctx: &Rc<CoreContext>, cluster: usize, endpoint: usize) -> Option<Opened> {
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
            // Boxed: the wrapper's armed read and write futures point into it, and `poll_write`
            // returns before its write completes; the handshake's connection is moved (out of
            // the handshake, into its driver task) with a write in flight, so the wrapper must
            // not move with it (it did, and the in-flight write corrupted memory).
            Box::new(monoio_compat::StreamWrapper::new(tls)),
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
