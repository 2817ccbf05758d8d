//! One client connection on an HTTP listener, from its first request to close.
//!
//! Owns: the request loop (read a head under the header deadline, route, answer or forward,
//! stream both bodies, decide keep-alive), upstream selection with failover and the one safe
//! retry on a reused connection, proxy error responses, timeouts, per-route accounting and the
//! access log record, and the WebSocket upgrade up to its `101` (the tunnel after it is
//! [`tunnel`](super::tunnel)'s). Must not: parse or frame HTTP itself (the codec does), hold a
//! `RefCell` borrow across an `.await`, buffer a body beyond one read, or log at info/warn for
//! events a client can cause at will (those are counted; the access log records them).
//! Split by concern: the request loop is here, the proxy's own answers and the accounting in
//! `answer`, the upstream legs in `to_h1` and `to_h2c`.
//!
//! Memory per connection: between requests, the task, a 320-byte boxed state and a 1 KiB read
//! buffer (doubling only as far as the head limits need); the parsed-head tables and the 64 KiB
//! upstream and output buffers are lent by the core per request (`HttpCore`). Requests are served
//! one at a time, so pipelined requests are answered in order by construction.

use std::io;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::rc::Rc;
use std::time::{Duration, Instant};

use monoio::io::{AsyncReadRent, Canceller};
use monoio::net::TcpStream;
use strait_protocols::http1::{HeadScanner, RequestFraming, RequestHead, ResponseHead};
use strait_protocols::relay::sys;

use super::exchange::{Exchange, RequestFacts};
use super::fault::Fault;
use super::head::{self, Upgrade};
use super::pipeline::{Filter, H1View, Peer, Pipeline};
use super::route::rewrite_path;
use super::tunnel;
use super::HttpListenerState;
use crate::client_stream::{read_more, ClientStream, TimedOut};
use crate::config::{FixedResponse, HttpListenerConfig, RouteAction};
use crate::context::CoreContext;
use crate::upstream::ConnectionGuard;

mod answer;
mod to_h1;
mod to_h2c;

use answer::Record;
use to_h1::Leg;

/// Initial client read buffer: most request heads fit; larger ones grow it by doubling.
const CLIENT_BUFFER: usize = 1024;
const UPSTREAM_BUFFER: usize = super::REQUEST_BUFFER;
/// Largest read buffer for bulk bodies (grown by doubling while reads fill it).
const BULK_BUFFER: usize = 256 * 1024;
/// Output is written once it holds this much (a head plus body data, or re-framed chunks).
const FLUSH_AT: usize = 64 * 1024;
/// Body data up to this size is copied behind its head so both go out in one write.
const COALESCE_MAX: usize = 32 * 1024;
/// Client-supplied request ids longer than this are replaced by our own.
const MAX_REQUEST_ID: usize = 200;

/// Serves one accepted connection on a clear-text HTTP listener.
/// (A plain function returning the future, so the task is no bigger than [`serve_stream`]'s.)
pub(crate) fn serve(
    guard: ConnectionGuard,
    client: TcpStream,
    peer: SocketAddr,
) -> impl std::future::Future<Output = ()> {
    let _ = client.set_nodelay(true);
    let _ = sys::disable_quickack(client.as_raw_fd());
    serve_stream(guard, client, peer, Vec::new())
}

/// Serves HTTP/1.x on `client` (clear text or TLS). `initial`: bytes already read from it (by
/// the sniffer), the start of the first request.
pub(crate) async fn serve_stream<C: ClientStream>(
    guard: ConnectionGuard,
    client: C,
    peer: SocketAddr,
    mut initial: Vec<u8>,
) {
    let ctx = guard.context().clone();
    let listener_index = guard.listener_index();
    let (Some(config), Some(state)) = (
        ctx.config.listeners[listener_index].http.as_deref(),
        ctx.http.listeners[listener_index].as_ref(),
    ) else {
        return;
    };
    initial.reserve(CLIENT_BUFFER.saturating_sub(initial.len()));
    let mut conn = Box::new(Conn {
        ctx: &ctx,
        listener_index,
        slot: guard.slot(),
        config,
        state,
        client,
        peer,
        buf: initial,
        start: 0,
        head: None,
        head_len: 0,
        response: None,
        response_len: 0,
        // Allocated when the first request is forwarded (fixed responses and refusals never
        // need it; a connection-per-request client pays for one buffer, not three).
        upbuf: Vec::new(),
        out: Vec::new(),
        path: Vec::new(),
        served: 0,
        unread_input: false,
        input_shut: false,
        read_abandoned: false,
        body_canceller: None,
        upgraded: None,
    });
    conn.run().await;
    let Some(upgraded) = conn.upgraded.take() else {
        conn.return_buffers();
        drop(guard);
        return;
    };
    // The bytes each side sent past its head go first: the client's after the upgrade request,
    // the upstream's after its 101.
    let mut to_upstream = ctx.http.take_buffer();
    to_upstream.extend_from_slice(&conn.buf[conn.start..]);
    let mut to_client = std::mem::take(&mut conn.upbuf);
    to_client.drain(..conn.response_len.min(to_client.len()));
    conn.return_buffers();
    let Conn { client, .. } = *conn;
    let Upgraded {
        upstream,
        route_slot,
    } = *upgraded;
    let t = tunnel::Tunnel {
        ctx: &ctx,
        listener_index,
        route_slot,
        idle: config.timeouts.upstream_body,
    };
    // Boxed: the tunnel's state is not part of every connection's task.
    Box::pin(tunnel::run(t, client, upstream, to_upstream, to_client)).await;
    drop(guard);
}

/// A request whose upstream answered 101: what the tunnel takes over from the request loop.
struct Upgraded {
    upstream: tunnel::Upstream,
    /// The route slot of the upgrade request (the tunnel's bytes are counted there).
    route_slot: usize,
}

struct Conn<'c, C> {
    ctx: &'c Rc<CoreContext>,
    listener_index: usize,
    slot: usize,
    config: &'c HttpListenerConfig,
    state: &'c HttpListenerState,
    client: C,
    peer: SocketAddr,
    /// Bytes read from the client; `buf[start..]` are not consumed yet.
    buf: Vec<u8>,
    start: usize,
    /// Lent from the core while a request is being served (see [`request_head`]).
    head: Option<Box<RequestHead>>,
    /// Length of the current request head at the start of `buf`.
    head_len: usize,
    /// Lent from the core while a request is forwarded (see [`response_head`]).
    response: Option<Box<ResponseHead>>,
    /// Length of the current response head at the start of `upbuf`.
    response_len: usize,
    upbuf: Vec<u8>,
    out: Vec<u8>,
    /// The rewritten path of the current request.
    path: Vec<u8>,
    served: u64,
    /// The client may still be sending (a refused or unread request): close with a linger.
    unread_input: bool,
    /// The drain shut the read side while this connection looked idle: only bytes already read
    /// can be served.
    input_shut: bool,
    /// A read from a TLS client was dropped at its deadline: TLS bytes that read may have taken
    /// are gone, so the session can no longer be read (it would fail on the gap); it can still
    /// be written and closed.
    read_abandoned: bool,
    /// Cancels a timed-out body read so its buffer comes back (see [`read_keeping_buffer`]).
    body_canceller: Option<Canceller>,
    /// Set with [`Next::Upgrade`]: the connection becomes a tunnel once the loop returns.
    upgraded: Option<Box<Upgraded>>,
}

/// What happens to the client connection after a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Next {
    KeepAlive,
    Close,
    /// The response could not be completed: reset so the client never takes a cut body for a
    /// whole one.
    Abort,
    /// The upstream switched protocols (101 sent to the client): leave the loop, the connection
    /// is a tunnel now (`Conn::upgraded`).
    Upgrade,
}

/// What the request phases decided for a request.
enum Decision<'p> {
    Refuse(Fault),
    Respond(&'p FixedResponse, &'p Pipeline),
    /// The peer, the pipeline, and whether the request asks for a WebSocket upgrade.
    Forward(Peer, &'p Pipeline, bool),
}

/// The outcome of the upstream part of a request.
enum Forwarded {
    Done(Next),
    /// Answer this instead (nothing was sent to the client yet).
    Fault(Fault, Next),
}

impl<'c, C: ClientStream> Conn<'c, C> {
    async fn run(&mut self) {
        loop {
            let next = match self.read_head().await {
                Ok(true) => self.handle().await,
                Ok(false) => Next::Close,
                Err(fault) => {
                    self.refuse_unrouted(fault).await;
                    Next::Close
                }
            };
            self.served += 1;
            match next {
                Next::KeepAlive => {}
                Next::Close => {
                    // A client whose request we read completely is done sending; closing at once
                    // cannot reset our answer. Otherwise linger (RFC 9112 §9.6).
                    if self.unread_input || self.start < self.buf.len() {
                        self.linger_close().await;
                    }
                    return;
                }
                Next::Abort => {
                    let _ = sys::set_linger_zero(self.client.fd());
                    return;
                }
                Next::Upgrade => return,
            }
        }
    }

    /// Reads until `self.head` holds a complete request head at `buf[start..]`. `Ok(false)`: the
    /// client closed or went idle between requests (nothing to answer).
    async fn read_head(&mut self) -> Result<bool, Fault> {
        if self.start > 0 {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        // Bulk transfers grew the buffers; an idle keep-alive connection keeps small ones.
        if self.buf.capacity() > CLIENT_BUFFER * 4 && self.buf.len() <= CLIENT_BUFFER {
            self.buf.shrink_to(CLIENT_BUFFER);
        }
        if self.buf.is_empty() {
            // Between requests: the lent buffers go back to the core (pipelined requests keep
            // them).
            self.return_buffers();
        }
        let t = &self.config.timeouts;
        let mut scanner = HeadScanner::new();
        let mut deadline = (!self.buf.is_empty()).then(|| Instant::now() + t.header_read);
        let mut parse_now = !self.buf.is_empty();
        loop {
            if parse_now || scanner.should_parse(&self.buf, &self.state.limits) {
                parse_now = false;
                let ctx = self.ctx;
                let head = self
                    .head
                    .get_or_insert_with(|| ctx.http.take_request_head());
                match head.parse(&self.buf, &self.state.limits) {
                    Ok(Some(n)) => {
                        self.head_len = n;
                        return Ok(true);
                    }
                    Ok(None) => {}
                    Err(e) => return Err(Fault::Client(e)),
                }
            }
            let wait = match deadline {
                Some(d) => d.saturating_duration_since(Instant::now()),
                None if self.ctx.draining.get() => return Ok(false),
                None if self.served == 0 => t.header_read,
                None => t.keepalive,
            };
            if wait.is_zero() {
                return Err(Fault::HeaderTimeout);
            }
            let idle = deadline.is_none();
            if idle {
                self.ctx.open_sockets.borrow_mut().set_idle(self.slot);
            }
            let read =
                monoio::time::timeout(wait, read_more(&mut self.client, &mut self.buf)).await;
            if idle {
                self.input_shut |= self.ctx.open_sockets.borrow_mut().end_idle(self.slot);
            }
            if read.is_err() {
                self.read_abandoned |= C::TLS;
            }
            match read {
                Err(_) if idle => return Ok(false),
                Err(_) => return Err(Fault::HeaderTimeout),
                Ok(Ok(0)) | Ok(Err(_)) => return Ok(false),
                Ok(Ok(n)) => {
                    self.stats().listeners[self.listener_index]
                        .received_bytes
                        .add(n as u64);
                    if deadline.is_none() {
                        deadline = Some(Instant::now() + t.header_read);
                        // Parse after the first read so garbage (TLS to a plaintext port) is
                        // refused at once rather than when the head limit is reached.
                        parse_now = true;
                    }
                }
            }
        }
    }

    /// This response is the connection's last: let its final bytes leave with the FIN.
    fn cork_for_close(&self) {
        let _ = sys::set_cork(self.client.fd());
    }

    /// Empties `out`, first borrowing a buffer from the core if it has none of full size (so
    /// heads and bodies never grow a small one by reallocation).
    fn fresh_out(&mut self) {
        if self.out.capacity() < UPSTREAM_BUFFER {
            let small = std::mem::replace(&mut self.out, self.ctx.http.take_buffer());
            self.ctx.http.give_buffer(small);
        }
        self.out.clear();
    }

    /// Between requests (and at the end): the lent buffers and heads go back to the core, so an
    /// idle keep-alive connection holds only its task, socket and read buffer.
    fn return_buffers(&mut self) {
        for buf in [
            std::mem::take(&mut self.upbuf),
            std::mem::take(&mut self.out),
        ] {
            if buf.capacity() > 0 {
                self.ctx.http.give_buffer(buf);
            }
        }
        if let Some(head) = self.head.take() {
            self.ctx.http.give_request_head(head);
        }
        if let Some(head) = self.response.take() {
            self.ctx.http.give_response_head(head);
        }
    }

    fn stats(&self) -> &crate::stats::CoreStats {
        &self.ctx.stats
    }

    /// One request whose head is parsed in `buf[..consumed]`: routed, then through the
    /// request phases (`http::pipeline`), answered here or forwarded through the exchange.
    async fn handle(&mut self) -> Next {
        let (route, mut x) = self.route_request();
        let head = request_head(&self.head);
        // A connection of a replaced configuration version closes after this request: its
        // client reconnects and gets the current routes.
        let keep_alive = head.keep_alive() && !self.ctx.draining.get() && !self.ctx.superseded();
        let http10 = head::is_http10(head.version());
        let has_body = !matches!(
            head.framing(),
            RequestFraming::None | RequestFraming::ContentLength(0)
        );
        let state = self.state;
        let pipeline = route.map(|r| &state.routes[r]);
        let next = match self.decide(pipeline) {
            Decision::Refuse(fault) => {
                self.start = self.head_len;
                // A refused body is not read: closing is the only way to stay in sync.
                let close = !matches!(fault, Fault::NoRoute) || !keep_alive || has_body;
                self.respond_fault(&mut x, fault, close, http10).await
            }
            Decision::Respond(fixed, pipeline) => {
                self.respond_fixed(&mut x, fixed, pipeline, keep_alive && !has_body, has_body)
                    .await
            }
            Decision::Forward(peer, pipeline, websocket) => {
                self.rewrite_target(route);
                let request = (!has_body, websocket);
                match self
                    .forward(&mut x, pipeline, peer, keep_alive, request)
                    .await
                {
                    Forwarded::Done(next) => next,
                    Forwarded::Fault(fault, next) => {
                        let close = next != Next::KeepAlive || !keep_alive;
                        self.respond_fault(&mut x, fault, close, http10).await
                    }
                }
            }
        };
        self.finish(&x, route.map(|r| &self.config.routes[r]), pipeline);
        next
    }

    /// Routes the request and opens its accounting record (request id, route counters).
    fn route_request(&self) -> (Option<usize>, Record) {
        let buf = &self.buf[..];
        let head = request_head(&self.head);
        let route = self.state.table.find(
            head.authority(buf),
            routing_path(head.path_and_query(buf)),
            head.method_bytes(buf),
            |name| head.headers().find(name, buf),
        );
        let mut x = self.exchange(route, true);
        x.bytes_in = self.head_len as u64;
        match head.headers().find(b"x-request-id", buf) {
            Some(id) if !id.is_empty() && id.len() <= MAX_REQUEST_ID => {
                x.request_id[..id.len()].copy_from_slice(id);
                x.request_id_len = id.len();
            }
            _ => {
                let id = self.ctx.http.next_request_id();
                x.request_id[..32].copy_from_slice(&id);
                x.request_id_len = 32;
                x.generated_id = true;
            }
        }
        self.ctx.stats.routes[x.slot].requests.inc();
        (route, x)
    }

    /// `request_filter` and `upstream_peer` for this request (the listener's policies, then the
    /// route's), and the two checks only an HTTP/1.1 connection has: a malformed Upgrade, and a
    /// body that can no longer be read because the drain shut the read side.
    fn decide(&self, pipeline: Option<&'c Pipeline>) -> Decision<'c> {
        let state = self.state;
        let head = request_head(&self.head);
        let view = H1View {
            head,
            buf: &self.buf,
            client: self.peer,
            tls: C::TLS,
        };
        if let Filter::Refuse(fault) = state.pipeline.request_filter(&view) {
            return Decision::Refuse(fault);
        }
        let upgrade = head::upgrade_of(head, &self.buf);
        if upgrade == Upgrade::Malformed {
            // Never forwarded: an upstream could take the body (or what follows an HTTP/1.0
            // request) for tunnel data.
            return Decision::Refuse(Fault::BadUpgrade);
        }
        let Some(pipeline) = pipeline else {
            return Decision::Refuse(Fault::NoRoute);
        };
        let body_buffered = match head.framing() {
            RequestFraming::None => true,
            RequestFraming::ContentLength(n) => (self.buf.len() - self.head_len) as u64 >= n,
            RequestFraming::Chunked => false,
        };
        if self.input_shut && !body_buffered {
            // Nothing more can be read: never forward a request whose body would be cut.
            return Decision::Refuse(Fault::Draining);
        }
        match pipeline.request_filter(&view) {
            Filter::Refuse(fault) => Decision::Refuse(fault),
            Filter::Respond(fixed) => Decision::Respond(fixed, pipeline),
            Filter::Continue => match pipeline.upstream_peer(&view) {
                Some(peer) => Decision::Forward(peer, pipeline, upgrade == Upgrade::WebSocket),
                None => Decision::Refuse(Fault::NoRoute),
            },
        }
    }

    /// The target sent upstream: the route's prefix rewrite, `OPTIONS *` as is, and `/` for an
    /// absolute-form target with an empty path (RFC 9112 §3.2.2).
    fn rewrite_target(&mut self, route: Option<usize>) {
        self.path.clear();
        let sent = request_head(&self.head).path_and_query(&self.buf);
        let rewrite = route.and_then(|r| match &self.config.routes[r].action {
            RouteAction::Forward(f) => f.rewrite.as_ref(),
            RouteAction::Respond(_) => None,
        });
        match rewrite {
            Some(rw) if sent != b"*" => rewrite_path(rw, routing_path(sent), &mut self.path),
            _ => self
                .path
                .extend_from_slice(if sent.is_empty() { b"/" } else { sent }),
        }
    }

    /// Forwards the current request to `cluster` through the exchange and relays the response.
    /// `bodiless` and `websocket` were read from the head when the request was routed.
    async fn forward(
        &mut self,
        x: &mut Record,
        pipeline: &Pipeline,
        peer: Peer,
        keep_alive: bool,
        (bodiless, websocket): (bool, bool),
    ) -> Forwarded {
        let ctx = self.ctx;
        let cluster = peer.cluster;
        let head_len = self.head_len;
        let head = request_head(&self.head);
        if websocket && ctx.config.clusters[cluster].http.protocol.is_h2() {
            // WebSocket over HTTP/2 needs extended CONNECT (RFC 8441): not spoken here.
            self.start = head_len;
            return Forwarded::Fault(Fault::UpstreamProtocol, Next::Close);
        }
        let facts = RequestFacts::new(head.method(), bodiless, websocket);
        let ex = Exchange::new(
            ctx,
            peer,
            facts,
            self.config.timeouts.upstream_response,
            None,
            self.state.limits,
        );
        let leg = Leg {
            conn: self,
            x: &mut *x,
            pipeline,
            keep_alive,
            websocket,
        };
        // Boxed: the exchange's state exists only while a request is forwarded, so an idle
        // keep-alive connection's task does not carry it (docs/performance.md, idle memory).
        let ran = Box::pin(ex.run(leg)).await;
        x.upstream = ran.upstream;
        x.upstream_micros = ran.upstream_micros;
        match ran.result {
            Ok(next) => Forwarded::Done(next),
            Err(Fault::ClientGone) => {
                self.client_gone(x);
                Forwarded::Done(Next::Abort)
            }
            Err(fault) => {
                // The body (if any) was not read whole: closing is the only way to stay in sync.
                let unsent = matches!(
                    fault,
                    Fault::ConnectFailed | Fault::PoolFull | Fault::Draining
                );
                self.start = self.start.max(head_len);
                let next = if unsent && bodiless {
                    Next::KeepAlive
                } else {
                    Next::Close
                };
                Forwarded::Fault(fault, next)
            }
        }
    }

    /// Closes after a final response without losing it: stop sending, then read and discard
    /// what the client still sends for a short while, so our close does not turn into a reset
    /// that destroys the response in the client's receive buffer (RFC 9112 §9.6).
    async fn linger_close(&mut self) {
        if self.client.close_write().await.is_err() || self.read_abandoned {
            return;
        }
        let deadline = Instant::now() + std::time::Duration::from_secs(2);
        let mut discarded = 0usize;
        self.buf.clear();
        self.start = 0;
        while discarded < 256 * 1024 {
            let wait = deadline.saturating_duration_since(Instant::now());
            if wait.is_zero() {
                break;
            }
            match monoio::time::timeout(wait, read_more(&mut self.client, &mut self.buf)).await {
                Ok(Ok(n)) if n > 0 => {
                    discarded += n;
                    self.buf.clear();
                }
                _ => break,
            }
        }
    }
}

static NO_REQUEST: RequestHead = RequestHead::new();
static NO_RESPONSE: ResponseHead = ResponseHead::new();

/// The current request head. Only read after a successful parse put one there; an empty head
/// stands in otherwise (no unwrap on a path the network drives).
fn request_head(head: &Option<Box<RequestHead>>) -> &RequestHead {
    head.as_deref().unwrap_or(&NO_REQUEST)
}

/// The current response head (see [`request_head`]).
fn response_head(head: &Option<Box<ResponseHead>>) -> &ResponseHead {
    head.as_deref().unwrap_or(&NO_RESPONSE)
}

async fn read_with_timeout<S: AsyncReadRent>(
    stream: &mut S,
    buf: &mut Vec<u8>,
    wait: Duration,
) -> Result<io::Result<usize>, TimedOut> {
    monoio::time::timeout(wait, read_more(stream, buf))
        .await
        .map_err(|_| TimedOut)
}

/// The path routes match on: `*` (OPTIONS) and an empty absolute-form path route as `/`.
fn routing_path(path_and_query: &[u8]) -> &[u8] {
    match path_and_query {
        b"" | b"*" => b"/",
        p => p,
    }
}

/// The connection task lives as long as the connection, so its size is memory per connection.
#[cfg(test)]
mod size_guard {
    use super::*;
    use crate::config::ListenerProtocol;
    use crate::tcp_proxy::size_guard::connection_task_size;

    #[test]
    fn the_connection_task_and_state_stay_small() {
        let size = connection_task_size(ListenerProtocol::Http, serve);
        let state = std::mem::size_of::<Conn<'static, TcpStream>>();
        eprintln!("http connection task future: {size} B, boxed state: {state} B");
        // Measured 2,176 B and 320 B (the parsed heads, 2.6 KiB each, are lent per request; the
        // exchange's state is boxed per forwarded request). 2,944 B before the exchange.
        assert!(size <= 2304, "the connection task grew to {size} bytes");
        assert!(
            state <= 512,
            "the boxed connection state grew to {state} bytes"
        );
    }
}
