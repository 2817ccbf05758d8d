//! The byte tunnel an HTTP/1.1 client connection becomes after the upstream switched protocols
//! (a WebSocket `101`).
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
use std::rc::Rc;
use std::time::{Duration, Instant};

use super::upstream_conn::UpstreamConn;
use monoio::io::{AsyncReadRent, AsyncWriteRent, AsyncWriteRentExt};
use strait_protocols::relay::sys;
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

#[derive(Clone, Copy)]
enum Direction {
    ToUpstream,
    ToClient,
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
    let client_fd = client.fd();
    let upstream_fd = upstream.stream.fd();
    let (client_read, client_write) = client.into_halves();
    let (upstream_read, upstream_write) = upstream.stream.into_halves();
    let last_active = Cell::new(Instant::now());
    let end = {
        let mut up = std::pin::pin!(pump(
            &t,
            client_read,
            upstream_write,
            to_upstream,
            Direction::ToUpstream,
            &last_active,
        ));
        let mut down = std::pin::pin!(pump(
            &t,
            upstream_read,
            client_write,
            to_client,
            Direction::ToClient,
            &last_active,
        ));
        let mut idle = std::pin::pin!(idle_for(t.idle, &last_active));
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
            t.ctx.http.give_buffer(buf);
            if done.is_err() {
                break End::Failed;
            }
            if up_done && down_done {
                break End::Closed;
            }
        }
    };
    if end != End::Closed {
        // A cut tunnel must not look like a clean close to either side.
        let _ = sys::set_linger_zero(client_fd);
        let _ = sys::set_linger_zero(upstream_fd);
        debug!(listener = %t.ctx.config.listeners[t.listener_index].name, end = ?end,
            "WebSocket tunnel cut");
    }
    // The halves are dropped with the futures above: both sockets are closed now.
    t.ctx
        .http
        .pools
        .borrow_mut()
        .closed(upstream.cluster, upstream.endpoint);
    t.ctx.open_sockets.borrow_mut().set_upstream(t.slot, -1);
    end
}

/// Copies one direction: first what is already in `buf`, then every read, until EOF (then shuts
/// the writer down, so the half-close reaches the other side) or an error. Returns the buffer.
async fn pump<R: AsyncReadRent, W: AsyncWriteRent>(
    t: &Tunnel<'_>,
    mut from: R,
    mut to: W,
    mut buf: Vec<u8>,
    direction: Direction,
    last_active: &Cell<Instant>,
) -> (io::Result<()>, Vec<u8>) {
    let listener = &t.ctx.stats.listeners[t.listener_index];
    let route = &t.ctx.stats.routes[t.route_slot];
    loop {
        if !buf.is_empty() {
            let n = buf.len() as u64;
            let (res, b) = to.write_all(buf).await;
            buf = b;
            buf.clear();
            if let Err(e) = res {
                return (Err(e), buf);
            }
            last_active.set(Instant::now());
            if let Direction::ToClient = direction {
                listener.sent_bytes.add(n);
                route.sent_bytes.add(n);
            }
        }
        // `read` fills the buffer from its start, up to its capacity.
        let (res, b) = from.read(buf).await;
        buf = b;
        match res {
            Ok(0) => return (to.shutdown().await, buf),
            Ok(n) => {
                last_active.set(Instant::now());
                if let Direction::ToUpstream = direction {
                    listener.received_bytes.add(n as u64);
                    route.received_bytes.add(n as u64);
                }
            }
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
