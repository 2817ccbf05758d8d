//! The L4 TCP proxy phase: one accepted client connection, from connect to close.
//!
//! Owns: choosing an endpoint through the cluster's balancer with bounded failover, the connect
//! timeout, the optional PROXY protocol header, running the relay, and the connection's accounting
//! (an RAII guard, so a connection dropped by the drain deadline is accounted too).
//! Must not: allocate or take locks per connection beyond the relay's pooled pipes, or log at
//! info/warn for events a client can trigger at will (those are debug and counted instead).

use std::net::SocketAddr;
use std::os::fd::AsRawFd;

use monoio::net::TcpStream;
use strait_balancer::{Balancer, PickContext, TriedSet};
use strait_protocols::proxy_protocol;
use strait_protocols::relay::{self, sys, Direction, RelayEnd, RelayObserver, Side};
use tracing::debug;

use crate::config::ProxyProtocol;
use crate::context::CoreContext;
use crate::stats::{ClusterCounters, ListenerCounters};
use crate::upstream::connect_endpoint;
use crate::upstream::{ConnectionGuard, EndpointGuard};

/// Serves one accepted connection. `guard` was opened by the accept loop, so the connection counts
/// against the per-core limit from the moment it is accepted, not from when this task first runs.
/// (A plain function returning the future, so the task is no bigger than [`serve_to`]'s.)
pub(crate) fn serve(
    guard: ConnectionGuard,
    client: TcpStream,
    peer: SocketAddr,
) -> impl std::future::Future<Output = ()> {
    let cluster = guard.context().config.listeners[guard.listener_index()].l4_cluster();
    serve_to(guard, client, peer, cluster, Vec::new())
}

/// Relays `client` to `cluster_index`, sending `prefix` (bytes already read from the client
/// by the sniffer, e.g. a ClientHello passed through by SNI) upstream first.
pub(crate) async fn serve_to(
    guard: ConnectionGuard,
    client: TcpStream,
    peer: SocketAddr,
    cluster_index: usize,
    prefix: Vec<u8>,
) {
    let ctx = guard.context().clone();
    let listener_index = guard.listener_index();
    let listener = &ctx.config.listeners[listener_index];
    let stats = &ctx.stats;
    let _ = client.set_nodelay(true);

    // Boxed: the connect state (with its timeout's timer entry) is needed only until the upstream
    // answers; inline, it would stay in every idle connection's task for its whole life.
    let Some((upstream, endpoint_index)) = Box::pin(connect(&ctx, cluster_index, peer)).await
    else {
        stats.listeners[listener_index].no_upstream.inc();
        abort(&client);
        return;
    };
    let _endpoint_guard = EndpointGuard::open(ctx.clone(), cluster_index, endpoint_index);
    ctx.open_sockets
        .borrow_mut()
        .set_upstream(guard.slot(), upstream.as_raw_fd());
    let cluster = &ctx.config.clusters[cluster_index];

    if cluster.proxy_protocol != ProxyProtocol::Off {
        let sent = send_proxy_header(cluster.proxy_protocol, &client, &upstream, peer).await;
        if let Err(e) = sent {
            stats.listeners[listener_index].upstream_errors.inc();
            debug!(listener = %listener.name, cluster = %cluster.name, error = %e, "cannot send PROXY header");
            abort(&client);
            abort(&upstream);
            return;
        }
    }

    let observer = ByteCounters {
        listener: &stats.listeners[listener_index],
        cluster: &stats.clusters[cluster_index],
    };
    if !prefix.is_empty() {
        // Bounded: an upstream that accepts but never reads must not hold the connection.
        let written = monoio::time::timeout(
            cluster.connect_timeout,
            relay::write_all(&upstream, &prefix),
        )
        .await
        .unwrap_or_else(|_| Err(std::io::ErrorKind::TimedOut.into()));
        if let Err(e) = written {
            stats.listeners[listener_index].upstream_errors.inc();
            debug!(listener = %listener.name, cluster = %cluster.name, error = %e, "cannot send the sniffed bytes upstream");
            abort(&client);
            abort(&upstream);
            return;
        }
        observer.on_bytes(Direction::ClientToUpstream, prefix.len());
    }
    drop(prefix);
    let outcome = relay::relay(
        &client,
        &upstream,
        &ctx.relay_options[listener_index],
        &ctx.relay,
        &observer,
    )
    .await;
    if outcome.spliced {
        stats.totals.relayed_splice.inc();
    } else {
        stats.totals.relayed_copy.inc();
    }
    let counters = &stats.listeners[listener_index];
    match outcome.end {
        RelayEnd::Completed => {}
        RelayEnd::IdleTimeout => {
            counters.idle_timeouts.inc();
            debug!(listener = %listener.name, client = %peer, "idle timeout");
        }
        RelayEnd::Failed(e) => {
            match e.side {
                Side::Client => counters.client_errors.inc(),
                Side::Upstream => counters.upstream_errors.inc(),
            }
            debug!(listener = %listener.name, client = %peer, side = e.side.as_str(), error = %e.error,
                sent = outcome.client_to_upstream, received = outcome.upstream_to_client, "connection aborted");
        }
    }
}

async fn send_proxy_header(
    protocol: ProxyProtocol,
    client: &TcpStream,
    upstream: &TcpStream,
    peer: SocketAddr,
) -> std::io::Result<()> {
    let version = match protocol {
        ProxyProtocol::V1 => proxy_protocol::Version::V1,
        _ => proxy_protocol::Version::V2,
    };
    let header = proxy_protocol::encode(version, peer, client.local_addr()?);
    relay::write_all(upstream, header.as_bytes()).await
}

/// Tries endpoints until one accepts, each at most once, up to `connect_attempts`.
async fn connect(
    ctx: &CoreContext,
    cluster_index: usize,
    peer: SocketAddr,
) -> Option<(TcpStream, usize)> {
    let cluster = &ctx.config.clusters[cluster_index];
    let counters = &ctx.stats.clusters[cluster_index];
    let mut tried = TriedSet::new();
    for _ in 0..cluster.connect_attempts {
        // The borrow ends before the await below: no RefCell borrow is ever held across a yield.
        let picked = ctx.balancers[cluster_index]
            .borrow_mut()
            .pick(&PickContext::new(&tried), &|_| false);
        let Some(endpoint_index) = picked else { break };
        tried.insert(endpoint_index);
        if let Some(stream) = connect_endpoint(ctx, cluster_index, endpoint_index).await {
            return Some((stream, endpoint_index));
        }
    }
    counters.unavailable.inc();
    // Counted always; logged at debug because every failed attempt above was already warned about.
    debug!(cluster = %cluster.name, client = %peer, attempts = tried.len(), "no endpoint reachable; closing client connection");
    None
}

/// Close with RST: the peer must not read a clean EOF as a complete exchange.
fn abort(stream: &TcpStream) {
    let _ = sys::set_linger_zero(stream.as_raw_fd());
}

struct ByteCounters<'a> {
    listener: &'a ListenerCounters,
    cluster: &'a ClusterCounters,
}

impl RelayObserver for ByteCounters<'_> {
    #[inline]
    fn on_bytes(&self, direction: Direction, n: usize) {
        let n = n as u64;
        match direction {
            Direction::ClientToUpstream => {
                self.listener.received_bytes.add(n);
                self.cluster.sent_bytes.add(n);
            }
            Direction::UpstreamToClient => {
                self.listener.sent_bytes.add(n);
                self.cluster.received_bytes.add(n);
            }
        }
    }
}

/// Relays a client whose TLS we terminated to `cluster_index` in clear text, sending `prefix`
/// (bytes already read from inside TLS by the sniffer) first. The plaintext comes out of
/// rustls, so it cannot be spliced: the two-way copy is the WebSocket tunnel's
/// (`relay::copy_both`: lent buffers, half-closes, the listener's idle timeout over both
/// directions, resets when cut).
pub(crate) async fn serve_tls_to(
    guard: ConnectionGuard,
    client: crate::tls_stream::TlsClient,
    peer: SocketAddr,
    cluster_index: usize,
    prefix: Vec<u8>,
) {
    use crate::client_stream::ClientStream;
    use monoio::io::Splitable;
    use strait_protocols::relay::{copy_both, BothEnd as End};

    let ctx = guard.context().clone();
    let listener_index = guard.listener_index();
    let listener = &ctx.config.listeners[listener_index];
    let stats = &ctx.stats;
    let Some((upstream, endpoint_index)) = Box::pin(connect(&ctx, cluster_index, peer)).await
    else {
        stats.listeners[listener_index].no_upstream.inc();
        let _ = sys::set_linger_zero(client.fd());
        return;
    };
    let _endpoint_guard = EndpointGuard::open(ctx.clone(), cluster_index, endpoint_index);
    let fds = (client.fd(), upstream.as_raw_fd());
    ctx.open_sockets
        .borrow_mut()
        .set_upstream(guard.slot(), fds.1);
    let observer = ByteCounters {
        listener: &stats.listeners[listener_index],
        cluster: &stats.clusters[cluster_index],
    };
    let mut to_upstream = ctx.http.take_buffer();
    to_upstream.extend_from_slice(&prefix);
    drop(prefix);
    let end = copy_both(
        &|buf| ctx.http.give_buffer(buf),
        client.into_halves(),
        upstream.into_split(),
        fds,
        (to_upstream, ctx.http.take_buffer()),
        ctx.relay_options[listener_index].idle_timeout,
        &|direction, n| observer.on_bytes(direction, n),
    )
    .await;
    match end {
        End::Closed => {}
        End::Idle => stats.listeners[listener_index].idle_timeouts.inc(),
        End::Failed => {
            stats.listeners[listener_index].client_errors.inc();
            debug!(listener = %listener.name, client = %peer, "TLS relay ended with an error");
        }
    }
}

/// The connection task lives as long as the connection, so its size is memory per connection.
#[cfg(test)]
pub(crate) mod size_guard {
    use std::future::Future;
    use std::rc::Rc;
    use std::sync::Arc;

    use super::*;
    use crate::config::{test_support, ListenerProtocol};
    use crate::stats::CoreStats;

    /// The size of the future `serve` returns for one connection on a `protocol` listener.
    pub(crate) fn connection_task_size<F: Future>(
        protocol: ListenerProtocol,
        serve: impl FnOnce(ConnectionGuard, TcpStream, SocketAddr) -> F,
    ) -> usize {
        let config = test_support::one_listener(protocol, "127.0.0.1:0", "127.0.0.1:9");
        let stats = Arc::new(CoreStats::new(0, 0, &config));
        let ctx = Rc::new(CoreContext::new(Arc::new(config), stats, None));
        let mut rt = monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
            .enable_timer()
            .build()
            .expect("runtime");
        rt.block_on(async {
            let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
            let peer = l.local_addr().expect("addr");
            let client = TcpStream::connect_addr(peer).await.expect("connect");
            let guard = ConnectionGuard::open(&ctx, 0, client.as_raw_fd());
            let task = serve(guard, client, peer);
            std::mem::size_of_val(&task)
        })
    }

    #[test]
    fn the_connection_task_stays_small() {
        let size = connection_task_size(ListenerProtocol::Tcp, serve);
        eprintln!("connection task future: {size} B");
        // 1920 B before the connect future was boxed; the relay future is 960 B of this.
        assert!(size <= 1536, "the connection task grew to {size} bytes");
    }
}
