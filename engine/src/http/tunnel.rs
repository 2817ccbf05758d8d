//! The byte tunnel an HTTP/1.1 client connection becomes after the upstream switched protocols
//! (a WebSocket `101`); its two-way copy ([`copy_both`]) also relays TLS-terminated TCP
//! (`tcp_proxy::serve_tls_to`), where the plaintext comes out of rustls and cannot be spliced.
//!
//! Owns: copying bytes both ways at once between the client and its upstream connection, the
//! bytes each side sent before the tunnel existed (sent first), half-closes (an EOF one way
//! shuts the other side's sending down), the idle limit, byte accounting, and handing the
//! upstream connection's pool slot back at the end. Must not: look inside the bytes (they belong
//! to the new protocol), cancel a read that may have completed (its bytes would be lost), or
//! allocate per read (each direction has one lent buffer).
//!
//! Each direction is its own loop over split halves (`ClientStream::into_halves`, TCP's
//! `into_split`); the two run side by side in this one task. A third future watches for idleness:
//! when it fires, or when one direction fails, the tunnel is cut with resets both ways. The
//! drain does not end a tunnel: it is an in-flight connection and runs until the drain deadline.

use std::cell::Cell;
use std::io;
use std::os::fd::RawFd;
use std::rc::Rc;
use std::time::{Duration, Instant};

use super::upstream_conn::UpstreamConn;
use monoio::io::{AsyncReadRent, AsyncWriteRent, AsyncWriteRentExt};
use strait_protocols::relay::{sys, Direction};
use tracing::debug;

use crate::client_stream::ClientStream;
use crate::core::CoreContext;

/// The upstream side of a tunnel, and where its pool accounting goes back to.
pub(crate) struct Upstream {
    pub stream: UpstreamConn,
    pub cluster: usize,
    pub endpoint: usize,
}

/// Where a tunnel's bytes are counted and how long it may idle.
pub(crate) struct Tunnel<'a> {
    pub ctx: &'a Rc<CoreContext>,
    pub listener_index: usize,
    /// The connection's slot in `open_sockets`.
    pub slot: usize,
    /// The route slot of the upgrade request (its byte counters).
    pub route_slot: usize,
    /// No byte either way for this long closes the tunnel.
    pub idle: Duration,
}

/// How a tunnel ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum End {
    /// Both directions reached EOF.
    Closed,
    /// A read or write failed: both sides were reset.
    Failed,
    /// Nothing moved for the idle limit: both sides were reset.
    Idle,
}

/// Runs the tunnel until both directions end, one fails, or it idles out. `to_upstream`: client
/// bytes read after the upgrade request's head; `to_client`: upstream bytes read after the 101
/// head. Both are lent buffers and go back to the core.
pub(crate) async fn run<C: ClientStream>(
    t: Tunnel<'_>,
    client: C,
    upstream: Upstream,
    to_upstream: Vec<u8>,
    to_client: Vec<u8>,
) -> End {
    let listener = &t.ctx.stats.listeners[t.listener_index];
    let route = &t.ctx.stats.routes[t.route_slot];
    let count = |direction: Direction, n: usize| {
        let n = n as u64;
        match direction {
            Direction::ClientToUpstream => {
                listener.received_bytes.add(n);
                route.received_bytes.add(n);
            }
            Direction::UpstreamToClient => {
                listener.sent_bytes.add(n);
                route.sent_bytes.add(n);
            }
        }
    };
    let fds = (client.fd(), upstream.stream.fd());
    let end = copy_both(
        t.ctx,
        client.into_halves(),
        upstream.stream.into_halves(),
        fds,
        (to_upstream, to_client),
        t.idle,
        &count,
    )
    .await;
    if end != End::Closed {
        debug!(listener = %t.ctx.config.listeners[t.listener_index].name, end = ?end,
            "WebSocket tunnel cut");
    }
    t.ctx
        .http
        .pools
        .borrow_mut()
        .closed(upstream.cluster, upstream.endpoint);
    t.ctx.open_sockets.borrow_mut().set_upstream(t.slot, -1);
    end
}

/// Copies both ways at once between a client's halves and an upstream's, each direction first
/// sending what its buffer already holds (`pending`: to the upstream, to the client; lent
/// buffers, given back to the core), until both reach EOF, one fails, or nothing moves for
/// `idle`. A tunnel that did not close cleanly is cut with resets on both sockets (`fds`:
/// client, upstream), so neither peer takes it for a clean close. `count` sees every byte moved.
pub(crate) async fn copy_both<CR, CW, UR, UW>(
    ctx: &CoreContext,
    (client_read, client_write): (CR, CW),
    (upstream_read, upstream_write): (UR, UW),
    (client_fd, upstream_fd): (RawFd, RawFd),
    (to_upstream, to_client): (Vec<u8>, Vec<u8>),
    idle: Duration,
    count: &dyn Fn(Direction, usize),
) -> End
where
    CR: AsyncReadRent,
    CW: AsyncWriteRent,
    UR: AsyncReadRent,
    UW: AsyncWriteRent,
{
    let last_active = Cell::new(Instant::now());
    let end = {
        let mut up = std::pin::pin!(pump(
            client_read,
            upstream_write,
            to_upstream,
            Direction::ClientToUpstream,
            &last_active,
            count,
        ));
        let mut down = std::pin::pin!(pump(
            upstream_read,
            client_write,
            to_client,
            Direction::UpstreamToClient,
            &last_active,
            count,
        ));
        let mut idle = std::pin::pin!(idle_for(idle, &last_active));
        let mut up_done = false;
        let mut down_done = false;
        loop {
            let (done, buf) = monoio::select! {
                r = &mut up, if !up_done => {
                    up_done = true;
                    r
                }
                r = &mut down, if !down_done => {
                    down_done = true;
                    r
                }
                _ = &mut idle => break End::Idle,
            };
            ctx.http.give_buffer(buf);
            if done.is_err() {
                break End::Failed;
            }
            if up_done && down_done {
                break End::Closed;
            }
        }
    };
    // The halves were dropped with the futures above: both sockets are closed now (after the
    // resets below take effect on close).
    if end != End::Closed {
        let _ = sys::set_linger_zero(client_fd);
        let _ = sys::set_linger_zero(upstream_fd);
    }
    end
}

/// Copies one direction: first what is already in `buf`, then every read, until EOF (then shuts
/// the writer down, so the half-close reaches the other side) or an error. Returns the buffer.
async fn pump<R: AsyncReadRent, W: AsyncWriteRent>(
    mut from: R,
    mut to: W,
    mut buf: Vec<u8>,
    direction: Direction,
    last_active: &Cell<Instant>,
    count: &dyn Fn(Direction, usize),
) -> (io::Result<()>, Vec<u8>) {
    loop {
        if !buf.is_empty() {
            let n = buf.len();
            let (res, b) = to.write_all(buf).await;
            buf = b;
            buf.clear();
            if let Err(e) = res {
                return (Err(e), buf);
            }
            last_active.set(Instant::now());
            count(direction, n);
        }
        // `read` fills the buffer from its start, up to its capacity.
        let (res, b) = from.read(buf).await;
        buf = b;
        match res {
            Ok(0) => return (to.shutdown().await, buf),
            Ok(_) => last_active.set(Instant::now()),
            Err(e) => return (Err(e), buf),
        }
    }
}

/// Returns once nothing moved either way for `limit`.
async fn idle_for(limit: Duration, last_active: &Cell<Instant>) {
    loop {
        let since = last_active.get().elapsed();
        if since >= limit {
            return;
        }
        monoio::time::sleep(limit - since).await;
    }
}
