//! The byte tunnel an HTTP/1.1 client connection becomes after the upstream switched protocols
//! (a WebSocket `101`). The two-way copy itself is `strait_protocols::relay::copy_both`, shared
//! with TLS-terminated TCP (`tcp_proxy::serve_tls_to`).
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

use std::rc::Rc;
use std::time::Duration;

use super::upstream_conn::UpstreamConn;
use strait_protocols::relay::{copy_both, BothEnd, Direction};
use tracing::debug;

use crate::client_stream::ClientStream;
use crate::context::CoreContext;

/// The upstream side of a tunnel, and where its pool accounting goes back to.
pub(crate) struct Upstream {
    pub stream: UpstreamConn,
    pub cluster: usize,
    pub endpoint: usize,
    /// Keeps the socket in the open-socket slab (the drain deadline resets it).
    pub _registered: crate::upstream::OpenUpstream,
}

/// Where a tunnel's bytes are counted and how long it may idle.
pub(crate) struct Tunnel<'a> {
    pub ctx: &'a Rc<CoreContext>,
    pub listener_index: usize,
    /// The route slot of the upgrade request (its byte counters).
    pub route_slot: usize,
    /// No byte either way for this long closes the tunnel.
    pub idle: Duration,
}

/// How a tunnel ended.
pub(crate) type End = BothEnd;

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
        &|buf| t.ctx.http.give_buffer(buf),
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
    end
}
