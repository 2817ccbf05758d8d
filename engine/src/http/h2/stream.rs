//! One HTTP/2 request stream, from its headers to its last DATA frame or reset.
//!
//! Owns: routing an h2 request with the listener's route table, fixed responses, forwarding
//! to an HTTP/1.1 upstream (the core's keep-alive pools, with the one safe retry) or an h2c
//! upstream (the core's multiplexed clients, [`super::upstream`]), streaming both bodies under
//! flow control, trailers both ways, resets both ways, proxy error responses (in gRPC form for
//! gRPC requests), timeouts (with `grpc-timeout` as a tighter deadline), accounting and the
//! access log. Must not: hold a `RefCell` borrow across an `.await`, or buffer a body beyond
//! one read or one h2 window.

use std::rc::Rc;
use std::time::{Duration, Instant, SystemTime};

use crate::http::upstream_conn::UpstreamConn;
use bytes::Bytes;
use h2::server::SendResponse;
use h2::{RecvStream, SendStream};
use http::{HeaderMap, HeaderValue, Request, Response, StatusCode};
use monoio::io::AsyncWriteRentExt;
use strait_balancer::TriedSet;
use strait_protocols::http1::{
    BodyDecoder, Event, Method, ResponseContext, ResponseFraming, ResponseHead,
};

use super::fields::{self, Forwarding, H1Body};
use super::{send_all, H2Conn};
use crate::client_stream::read_more;
use crate::config::{RouteAction, RouteConfig, UpstreamProtocol};
use crate::http::access_log::AccessRecord;
use crate::http::pool::{upstream_connection, Reuse};
use crate::http::route::rewrite_path;

/// Why the proxy answered a stream itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    NoRoute,
    MethodNotAllowed,
    BodyTooLarge,
    BodyTimeout,
    ConnectFailed,
    PoolFull,
    UpstreamTimeout,
    UpstreamProtocol,
    UpstreamClosed,
    /// The client reset the stream or went away: nothing can be answered.
    ClientGone,
}

impl Fault {
    fn status(self) -> u16 {
        match self {
            Fault::NoRoute => 404,
            Fault::MethodNotAllowed => 405,
            Fault::BodyTooLarge => 413,
            Fault::BodyTimeout => 408,
            Fault::ConnectFailed | Fault::UpstreamProtocol | Fault::UpstreamClosed => 502,
            Fault::PoolFull => 503,
            Fault::UpstreamTimeout => 504,
            Fault::ClientGone => 499,
        }
    }

    fn cause(self) -> &'static str {
        match self {
            Fault::NoRoute => "no_route",
            Fault::MethodNotAllowed => "method_not_allowed",
            Fault::BodyTooLarge => "body_too_large",
            Fault::BodyTimeout => "client_body_timeout",
            Fault::ConnectFailed => "connect_failed",
            Fault::PoolFull => "upstream_full",
            Fault::UpstreamTimeout => "upstream_timeout",
            Fault::UpstreamProtocol => "upstream_protocol_error",
            Fault::UpstreamClosed => "upstream_closed",
            Fault::ClientGone => "client_gone",
        }
    }

    fn count(self, c: &crate::stats::RouteCounters) {
        match self {
            Fault::BodyTooLarge | Fault::BodyTimeout | Fault::MethodNotAllowed => {
                c.client_errors.inc()
            }
            Fault::ClientGone => c.client_errors.inc(),
            Fault::NoRoute => {}
            Fault::ConnectFailed | Fault::UpstreamProtocol | Fault::UpstreamClosed => {
                c.upstream_errors.inc()
            }
            Fault::PoolFull => c.unavailable.inc(),
            Fault::UpstreamTimeout => c.upstream_timeouts.inc(),
        }
    }
}

impl From<super::SendFailed> for Fault {
    /// A send toward the client failed (sends toward an upstream map their own errors).
    fn from(e: super::SendFailed) -> Fault {
        match e {
            super::SendFailed::Reset => Fault::ClientGone,
            super::SendFailed::Timeout => Fault::UpstreamTimeout,
        }
    }
}

/// The stream's accounting record.
struct Exchange {
    started: Instant,
    time: SystemTime,
    slot: usize,
    request_id: String,
    status: u16,
    bytes_in: u64,
    bytes_out: u64,
    upstream: Option<std::net::SocketAddr>,
    upstream_micros: Option<u64>,
    fault: Option<Fault>,
    /// Kept for the access log when the request's fields go upstream (only when logging).
    user_agent: Option<HeaderValue>,
    referer: Option<HeaderValue>,
}

/// Decrements the connection's active stream count however the task ends.
struct ActiveStream(Rc<H2Conn>);

impl Drop for ActiveStream {
    fn drop(&mut self) {
        self.0.active.set(self.0.active.get().saturating_sub(1));
    }
}

/// The request as the stream task keeps it.
struct Incoming {
    parts: http::request::Parts,
    body: RecvStream,
    grpc: bool,
    /// The tighter of the route's upstream timeouts and the client's `grpc-timeout`.
    deadline: Option<Instant>,
}

pub(super) async fn serve(
    conn: Rc<H2Conn>,
    request: Request<RecvStream>,
    mut respond: SendResponse<Bytes>,
) {
    let _active = ActiveStream(conn.clone());
    let ctx = &conn.ctx;
    let li = conn.listener_index;
    let (Some(config), Some(state)) = (
        ctx.config.listeners[li].http.as_deref(),
        ctx.http.listeners[li].as_ref(),
    ) else {
        respond.send_reset(h2::Reason::INTERNAL_ERROR);
        return;
    };
    let (parts, body) = request.into_parts();
    // Owned copies: `parts` moves into the stream's state below (both are short).
    let host: Option<Vec<u8>> = parts
        .uri
        .authority()
        .map(|a| a.as_str().as_bytes().to_vec())
        .or_else(|| {
            parts
                .headers
                .get(http::header::HOST)
                .map(|v| v.as_bytes().to_vec())
        });
    let path: Vec<u8> = parts
        .uri
        .path_and_query()
        .map_or(b"/".to_vec(), |p| p.as_str().as_bytes().to_vec());
    let host = host.as_deref();
    let path = path.as_slice();
    let headers = &parts.headers;
    let route = state.table.find(
        host,
        path,
        parts.method.as_str().as_bytes(),
        |name: &[u8]| {
            std::str::from_utf8(name)
                .ok()
                .and_then(|n| headers.get(n))
                .map(HeaderValue::as_bytes)
        },
    );
    let slot = ctx.http.route_slots.slot(&ctx.config, li, route);
    let counters = &ctx.stats.routes[slot];
    counters.requests.inc();
    let (request_id, generated) = match parts.headers.get("x-request-id") {
        Some(id) if !id.is_empty() && id.len() <= 200 && id.to_str().is_ok() => {
            (id.to_str().unwrap_or_default().to_string(), false)
        }
        _ => {
            let id = ctx.http.next_request_id();
            (String::from_utf8_lossy(&id).into_owned(), true)
        }
    };
    let mut x = Exchange {
        started: Instant::now(),
        time: if ctx.http.logging {
            SystemTime::now()
        } else {
            SystemTime::UNIX_EPOCH
        },
        slot,
        request_id,
        status: 0,
        bytes_in: 0,
        bytes_out: 0,
        upstream: None,
        upstream_micros: None,
        fault: None,
        user_agent: None,
        referer: None,
    };
    if ctx.http.logging {
        x.user_agent = parts.headers.get("user-agent").cloned();
        x.referer = parts.headers.get("referer").cloned();
    }
    let grpc = fields::is_grpc(&parts.headers);
    let deadline = fields::grpc_timeout(&parts.headers).map(|t| x.started + t);
    let mut incoming = Incoming {
        parts,
        body,
        grpc,
        deadline,
    };
    let route_config = route.map(|r| &config.routes[r]);
    let outcome = match route_config {
        _ if incoming.parts.method == http::Method::CONNECT => Err(Fault::MethodNotAllowed),
        None => Err(Fault::NoRoute),
        Some(r) => {
            let max_body = r.max_body_size.unwrap_or(config.limits.max_body_size);
            let declared = content_length(&incoming.parts.headers);
            if declared.is_some_and(|n| n > max_body) {
                Err(Fault::BodyTooLarge)
            } else {
                match &r.action {
                    RouteAction::Respond(fixed) => {
                        let mut resp = Response::builder().status(fixed.status);
                        if !fixed.content_type.is_empty() {
                            resp = resp.header("content-type", fixed.content_type.as_str());
                        }
                        if let Some(loc) = &fixed.location {
                            resp = resp.header("location", loc.as_str());
                        }
                        let body = Bytes::from(fixed.body.clone().into_bytes());
                        let mut fields = HeaderMap::new();
                        fields.insert("content-length", HeaderValue::from(body.len()));
                        x.status = fixed.status;
                        let head_only = incoming.parts.method == http::Method::HEAD;
                        send_local(
                            &mut respond,
                            resp,
                            fields,
                            if head_only { Bytes::new() } else { body },
                            &x.request_id,
                            r,
                        )
                        .map(|n| x.bytes_out += n)
                        .map_err(|_| Fault::ClientGone)
                    }
                    RouteAction::Forward(forward) => {
                        let cluster = match forward.clusters.as_slice() {
                            [only] => only.cluster,
                            all => {
                                use strait_balancer::Balancer;
                                let picked = route
                                    .and_then(|ri| state.splits[ri].as_ref())
                                    .and_then(|s| {
                                        s.borrow_mut()
                                            .pick(&strait_balancer::PickContext::FIRST, &|_| false)
                                    });
                                all[picked.unwrap_or(0)].cluster
                            }
                        };
                        let mut target = Vec::with_capacity(path.len());
                        match &forward.rewrite {
                            Some(rw) => rewrite_path(rw, path, &mut target),
                            None => target.extend_from_slice(path),
                        }
                        let forwarding_host = host.and_then(|h| std::str::from_utf8(h).ok());
                        let forwarding = Forwarding {
                            client_ip: conn.peer.ip(),
                            tls: conn.tls,
                            trust_forwarded: config.trust_forwarded,
                            host: forwarding_host,
                            generated_request_id: generated.then_some(x.request_id.as_str()),
                            edits: &r.request_headers,
                            via: fields::VIA_H2,
                        };
                        let host_override = ctx.config.clusters[cluster].http.host.clone();
                        let upstream_host =
                            host_override.or_else(|| forwarding_host.map(str::to_string));
                        // Moved, not copied: the access log kept what it needs above.
                        let mut fwd_headers = std::mem::take(&mut incoming.parts.headers);
                        fields::forward_request_fields(&mut fwd_headers, &forwarding);
                        let job = Forward {
                            conn: &conn,
                            route: r,
                            cluster,
                            target,
                            host: upstream_host,
                            headers: fwd_headers,
                            max_body,
                        };
                        match ctx.config.clusters[cluster].http.protocol {
                            // Boxed: only the state of the one that runs is allocated (inline,
                            // both would make every stream's task as big as the larger).
                            UpstreamProtocol::Http1 => {
                                Box::pin(job.forward_h1(&mut incoming, &mut respond, &mut x)).await
                            }
                            UpstreamProtocol::H2c | UpstreamProtocol::H2 => {
                                Box::pin(job.forward_h2c(&mut incoming, &mut respond, &mut x)).await
                            }
                        }
                    }
                }
            }
        }
    };
    if let Err(fault) = outcome {
        x.fault = Some(fault);
        fault.count(counters);
        if x.status == 0 && fault != Fault::ClientGone {
            x.status = fault.status();
            let n = send_fault(&mut respond, fault, incoming.grpc, &x.request_id);
            x.bytes_out += n;
        } else if x.status == 0 {
            x.status = fault.status();
        }
    }
    finish(&conn, &x, &incoming.parts, route_config);
}

fn content_length(h: &HeaderMap) -> Option<u64> {
    h.get("content-length")?.to_str().ok()?.parse().ok()
}

/// Sends a complete response the proxy made itself; returns the bytes of body sent.
fn send_local(
    respond: &mut SendResponse<Bytes>,
    builder: http::response::Builder,
    mut extra: HeaderMap,
    body: Bytes,
    request_id: &str,
    route: &RouteConfig,
) -> Result<u64, h2::Error> {
    let mut resp = builder.body(()).unwrap_or_default();
    resp.headers_mut().extend(extra.drain());
    fields::finish_response_fields(
        resp.headers_mut(),
        fields::VIA_H2,
        request_id,
        &route.response_headers,
    );
    let empty = body.is_empty();
    let mut send = respond.send_response(resp, empty)?;
    let n = body.len() as u64;
    if !empty {
        send.send_data(body, true)?;
    }
    Ok(n)
}

/// Answers a proxy error: a short text body, or for gRPC a trailers-only response with
/// `grpc-status` (HTTP 200, as gRPC clients expect).
fn send_fault(
    respond: &mut SendResponse<Bytes>,
    fault: Fault,
    grpc: bool,
    request_id: &str,
) -> u64 {
    let mut resp = Response::new(());
    let h = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(request_id) {
        h.insert("x-request-id", v);
    }
    h.insert("via", HeaderValue::from_static(fields::VIA_H2));
    if grpc {
        *resp.status_mut() = StatusCode::OK;
        let h = resp.headers_mut();
        h.insert("content-type", HeaderValue::from_static("application/grpc"));
        h.insert(
            "grpc-status",
            HeaderValue::from(fields::grpc_status(fault.status())),
        );
        h.insert("grpc-message", HeaderValue::from_static(fault.cause()));
        let _ = respond.send_response(resp, true);
        return 0;
    }
    *resp.status_mut() = StatusCode::from_u16(fault.status()).unwrap_or(StatusCode::BAD_GATEWAY);
    let body = format!(
        "{} {}: {}\n",
        fault.status(),
        crate::http::head::canonical_reason(fault.status()),
        fault.cause()
    );
    let h = resp.headers_mut();
    h.insert(
        "content-type",
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    h.insert("content-length", HeaderValue::from(body.len()));
    let n = body.len() as u64;
    match respond.send_response(resp, false) {
        Ok(mut send) => {
            let _ = send.send_data(Bytes::from(body), true);
            n
        }
        Err(_) => 0,
    }
}

/// A request being forwarded to one cluster.
struct Forward<'a> {
    conn: &'a Rc<H2Conn>,
    route: &'a RouteConfig,
    cluster: usize,
    target: Vec<u8>,
    /// Authority sent upstream: the cluster's `host`, else the client's.
    host: Option<String>,
    /// The request's fields as they go upstream.
    headers: HeaderMap,
    max_body: u64,
}

impl Forward<'_> {
    fn timeouts(&self) -> crate::config::HttpTimeouts {
        let ctx = &self.conn.ctx;
        ctx.config.listeners[self.conn.listener_index]
            .http
            .as_deref()
            .map_or(crate::config::http::defaults::TIMEOUTS, |h| h.timeouts)
    }

    /// The time left for the upstream: the route's timeout, cut short by `grpc-timeout`.
    /// The listener's HTTP/1.1 codec limits, also applied to upstream responses (as the
    /// HTTP/1.1 proxy does).
    fn limits(&self) -> strait_protocols::http1::Limits {
        let ctx = &self.conn.ctx;
        ctx.http.listeners[self.conn.listener_index]
            .as_ref()
            .map_or(strait_protocols::http1::Limits::DEFAULT, |s| s.limits)
    }

    fn upstream_wait(&self, incoming: &Incoming, configured: Duration) -> Duration {
        match incoming.deadline {
            Some(d) => d.saturating_duration_since(Instant::now()).min(configured),
            None => configured,
        }
    }

    /// HTTP/1.1 upstream: one pooled connection per request.
    async fn forward_h1(
        self,
        incoming: &mut Incoming,
        respond: &mut SendResponse<Bytes>,
        x: &mut Exchange,
    ) -> Result<(), Fault> {
        let ctx = self.conn.ctx.clone();
        let limits = self.limits();
        let t = self.timeouts();
        let cluster_counters = &ctx.stats.cluster_http[self.cluster];
        cluster_counters.requests.inc();
        let bodiless = incoming.body.is_end_stream();
        let framing = if bodiless {
            H1Body::None
        } else {
            match content_length(&self.headers) {
                Some(n) => H1Body::ContentLength(n),
                None => H1Body::Chunked,
            }
        };
        let endpoints = &ctx.config.clusters[self.cluster].endpoints;
        let mut head = ctx.http.take_buffer();
        fields::write_h1_request(
            &incoming.parts.method,
            &self.target,
            self.host.as_deref().unwrap_or(""),
            &self.headers,
            framing,
            &mut head,
        );
        let idempotent = matches!(
            incoming.parts.method,
            http::Method::GET | http::Method::HEAD | http::Method::OPTIONS
        );
        let mut tried = TriedSet::new();
        let mut reuse = Reuse::Pooled;
        let mut retried = false;
        let mut upbuf = ctx.http.take_buffer();
        let outcome = loop {
            let mut any_full = false;
            let Some((mut upstream, endpoint, reused)) =
                upstream_connection(&ctx, self.cluster, &mut tried, &mut any_full, reuse).await
            else {
                break Err(if any_full {
                    cluster_counters.pool_full.inc();
                    Fault::PoolFull
                } else {
                    Fault::ConnectFailed
                });
            };
            let address = endpoints[endpoint].address;
            x.upstream = Some(address);
            if self.host.is_none() {
                head.clear();
                fields::write_h1_request(
                    &incoming.parts.method,
                    &self.target,
                    &address.to_string(),
                    &self.headers,
                    framing,
                    &mut head,
                );
            }
            let sent_at = Instant::now();
            // 1. The head (and the body, streamed as it arrives).
            let (res, h) = upstream.write_all(head).await;
            head = h;
            let mut sent = res.is_ok();
            if sent && !bodiless {
                match self
                    .send_h1_body(incoming, &mut upstream, framing, &t, &ctx, x)
                    .await
                {
                    Ok(()) => {}
                    Err(Some(fault)) => {
                        self.discard(&ctx, endpoint, upstream);
                        break Err(fault);
                    }
                    Err(None) => sent = false,
                }
            }
            // 2. The response head.
            upbuf.clear();
            let mut response = ctx.http.take_response_head();
            let method = Method::from_bytes(incoming.parts.method.as_str().as_bytes());
            let read = if sent {
                let wait = self.upstream_wait(incoming, t.upstream_response);
                let head = read_response_head(
                    &mut upstream,
                    &mut upbuf,
                    &mut response,
                    method,
                    wait,
                    &limits,
                );
                // A client that reset the stream stops the exchange at once: the upstream
                // connection is closed rather than held until it answers.
                monoio::select! {
                    read = head => read,
                    _ = client_reset(respond) => Err(HeadError::ClientGone),
                }
            } else {
                Err(HeadError::Closed)
            };
            match read {
                Ok(consumed) => {
                    x.upstream_micros = Some(sent_at.elapsed().as_micros() as u64);
                    let r = self
                        .relay_h1_response(
                            respond,
                            &mut upstream,
                            &mut upbuf,
                            consumed,
                            &response,
                            method,
                            x,
                            &t,
                        )
                        .await;
                    ctx.http.give_response_head(response);
                    match r {
                        Ok(reusable) if reusable => ctx.http.pools.borrow_mut().checkin(
                            self.cluster,
                            endpoint,
                            upstream,
                            Instant::now(),
                        ),
                        Ok(_) => self.discard(&ctx, endpoint, upstream),
                        Err(f) => {
                            self.discard(&ctx, endpoint, upstream);
                            break Err(f);
                        }
                    }
                    break Ok(());
                }
                Err(e) => {
                    ctx.http.give_response_head(response);
                    self.discard(&ctx, endpoint, upstream);
                    if reused && e == HeadError::Closed && bodiless && idempotent && !retried {
                        // The pooled connection was closed under us before any answer: the
                        // request cannot have been processed; one retry on a new connection.
                        cluster_counters.retries.inc();
                        retried = true;
                        reuse = Reuse::Never;
                        continue;
                    }
                    break Err(match e {
                        HeadError::ClientGone => Fault::ClientGone,
                        HeadError::Timeout => {
                            cluster_counters.upstream_timeouts.inc();
                            Fault::UpstreamTimeout
                        }
                        HeadError::Invalid => {
                            cluster_counters.upstream_protocol_errors.inc();
                            Fault::UpstreamProtocol
                        }
                        HeadError::Closed => Fault::UpstreamClosed,
                    });
                }
            }
        };
        ctx.http.give_buffer(head);
        ctx.http.give_buffer(upbuf);
        outcome
    }

    fn discard(&self, ctx: &crate::context::CoreContext, endpoint: usize, upstream: UpstreamConn) {
        ctx.http
            .pools
            .borrow_mut()
            .discard(self.cluster, endpoint, upstream);
    }

    /// Streams the request body from the h2 stream to an HTTP/1.1 upstream, releasing the
    /// client's flow-control window only as the upstream takes the bytes. `Err(None)`: writing
    /// upstream failed; `Err(Some)`: answer this.
    async fn send_h1_body(
        &self,
        incoming: &mut Incoming,
        upstream: &mut UpstreamConn,
        framing: H1Body,
        t: &crate::config::HttpTimeouts,
        ctx: &crate::context::CoreContext,
        x: &mut Exchange,
    ) -> Result<(), Option<Fault>> {
        let chunked = framing == H1Body::Chunked;
        let mut total: u64 = 0;
        let mut out = ctx.http.take_buffer();
        let result = loop {
            let next = monoio::time::timeout(t.client_body, incoming.body.data()).await;
            let data = match next {
                Err(_) => break Err(Some(Fault::BodyTimeout)),
                Ok(None) => break Ok(()),
                Ok(Some(Err(_))) => break Err(Some(Fault::ClientGone)),
                Ok(Some(Ok(d))) => d,
            };
            let n = data.len();
            total += n as u64;
            x.bytes_in += n as u64;
            if total > self.max_body {
                break Err(Some(Fault::BodyTooLarge));
            }
            out.clear();
            if chunked {
                let _ = std::io::Write::write_fmt(&mut out, format_args!("{n:x}\r\n"));
                out.extend_from_slice(&data);
                out.extend_from_slice(b"\r\n");
            } else {
                out.extend_from_slice(&data);
            }
            let (res, o) =
                match monoio::time::timeout(t.upstream_body, upstream.write_all(out)).await {
                    Ok(done) => done,
                    Err(_) => {
                        // The write (and its buffer) went with the timeout.
                        out = Vec::new();
                        break Err(Some(Fault::UpstreamTimeout));
                    }
                };
            out = o;
            if res.is_err() {
                break Err(None);
            }
            let _ = incoming.body.flow_control().release_capacity(n);
        };
        if result.is_ok() && chunked {
            out.clear();
            out.extend_from_slice(b"0\r\n");
            if let Ok(Ok(Some(trailers))) =
                monoio::time::timeout(t.client_body, incoming.body.trailers()).await
            {
                fields::write_h1_trailers(&trailers, &mut out);
            }
            out.extend_from_slice(b"\r\n");
            let (res, o) = upstream.write_all(out).await;
            out = o;
            if res.is_err() {
                ctx.http.give_buffer(out);
                return Err(None);
            }
        }
        ctx.http.give_buffer(out);
        result
    }

    /// Relays an HTTP/1.1 response (head already parsed from `upbuf[..consumed]`) to the h2
    /// stream. `Ok(true)`: the upstream connection may be reused.
    #[allow(clippy::too_many_arguments)]
    async fn relay_h1_response(
        &self,
        respond: &mut SendResponse<Bytes>,
        upstream: &mut UpstreamConn,
        upbuf: &mut Vec<u8>,
        consumed: usize,
        head: &ResponseHead,
        method: Method,
        x: &mut Exchange,
        t: &crate::config::HttpTimeouts,
    ) -> Result<bool, Fault> {
        let framing = head.framing();
        if framing == ResponseFraming::Tunnel || head.status() == 101 {
            return Err(Fault::UpstreamProtocol);
        }
        let mut resp = Response::new(());
        *resp.status_mut() =
            StatusCode::from_u16(head.status()).map_err(|_| Fault::UpstreamProtocol)?;
        *resp.headers_mut() = fields::response_fields_from_h1(
            head,
            upbuf,
            &x.request_id,
            &self.route.response_headers,
        );
        if let ResponseFraming::ContentLength(n) = framing {
            if method != Method::Head {
                resp.headers_mut()
                    .insert("content-length", HeaderValue::from(n));
            }
        }
        x.status = head.status();
        let no_body = matches!(
            framing,
            ResponseFraming::None | ResponseFraming::ContentLength(0)
        );
        let mut send = respond
            .send_response(resp, no_body)
            .map_err(|_| Fault::ClientGone)?;
        if no_body {
            return Ok(head.keep_alive() && upbuf.len() == consumed);
        }
        let limits = self.limits();
        let mut decoder = BodyDecoder::for_response(framing, &limits);
        let mut pos = consumed;
        loop {
            let step = decoder
                .decode(&upbuf[pos..])
                .map_err(|_| Fault::UpstreamProtocol)?;
            match step.event {
                Event::Data(range) => {
                    let data = Bytes::copy_from_slice(&upbuf[pos + range.start..pos + range.end]);
                    x.bytes_out += data.len() as u64;
                    pos += step.consumed;
                    send_all(&mut send, data, false, t.upstream_body).await?;
                }
                Event::End { trailers } => {
                    let block = &upbuf[pos + trailers.start..pos + trailers.end];
                    pos += step.consumed;
                    if block.len() > 2 {
                        let trailers = fields::trailers_from_h1(block);
                        send.send_trailers(trailers)
                            .map_err(|_| Fault::ClientGone)?;
                    } else {
                        send_all(&mut send, Bytes::new(), true, t.upstream_body).await?;
                    }
                    return Ok(head.keep_alive() && pos == upbuf.len());
                }
                Event::NeedMore => {
                    // The decoder used `step.consumed` bytes (e.g. a chunk-size line) without
                    // producing data: they must not be decoded again.
                    pos += step.consumed;
                    upbuf.drain(..pos);
                    pos = 0;
                    match monoio::time::timeout(t.upstream_body, read_more(upstream, upbuf)).await {
                        Err(_) => {
                            send.send_reset(h2::Reason::CANCEL);
                            return Err(Fault::UpstreamTimeout);
                        }
                        Ok(Ok(0)) if framing == ResponseFraming::CloseDelimited => {
                            send_all(&mut send, Bytes::new(), true, t.upstream_body).await?;
                            return Ok(false);
                        }
                        Ok(Ok(0)) | Ok(Err(_)) => {
                            // Cut short: the client must not take it for a whole body.
                            send.send_reset(h2::Reason::INTERNAL_ERROR);
                            return Err(Fault::UpstreamClosed);
                        }
                        Ok(Ok(_)) => {}
                    }
                }
            }
        }
    }

    /// h2c upstream: a stream on one of the core's multiplexed connections.
    async fn forward_h2c(
        mut self,
        incoming: &mut Incoming,
        respond: &mut SendResponse<Bytes>,
        x: &mut Exchange,
    ) -> Result<(), Fault> {
        let ctx = self.conn.ctx.clone();
        let t = self.timeouts();
        ctx.stats.cluster_http[self.cluster].requests.inc();
        // Held until the stream ends: it is this stream's slot on the upstream connection.
        let (mut slot, endpoint) =
            super::upstream::client(&ctx, self.cluster)
                .await
                .map_err(|e| match e {
                    super::upstream::Unavailable::Full => Fault::PoolFull,
                    super::upstream::Unavailable::Failed => Fault::ConnectFailed,
                })?;
        let address = ctx.config.clusters[self.cluster].endpoints[endpoint].address;
        x.upstream = Some(address);
        let authority = self.host.clone().unwrap_or_else(|| address.to_string());
        let scheme = if ctx.config.clusters[self.cluster].http.protocol == UpstreamProtocol::H2 {
            "https"
        } else {
            "http"
        };
        let uri = http::Uri::builder()
            .scheme(scheme)
            .authority(authority.as_str())
            .path_and_query(self.target.as_slice())
            .build()
            .map_err(|_| Fault::UpstreamProtocol)?;
        let mut req = Request::new(());
        *req.method_mut() = incoming.parts.method.clone();
        *req.uri_mut() = uri;
        *req.headers_mut() = std::mem::take(&mut self.headers);
        req.headers_mut().remove(http::header::HOST);
        let bodiless = incoming.body.is_end_stream();
        let sent_at = Instant::now();
        let (response, mut up_send) = slot
            .send_request(req, bodiless)
            .map_err(|_| Fault::UpstreamClosed)?;
        let max_body = self.max_body;
        let wait = self.upstream_wait(incoming, t.upstream_response);
        let head_sent = std::cell::Cell::new(false);
        let body = &mut incoming.body;
        let bytes_in = std::cell::Cell::new(0u64);
        // Both directions at once: a streaming (gRPC bidi) call sends while it receives.
        let request_pump = async {
            if bodiless {
                return Ok(());
            }
            pump_h2_body(body, &mut up_send, t.client_body, max_body, &bytes_in).await
        };
        let response_pump = async {
            let answered = async {
                monoio::select! {
                    r = monoio::time::timeout(wait, response) => Some(r),
                    _ = client_reset(respond) => None,
                }
            };
            let Some(answered) = answered.await else {
                // Dropping the upstream stream's handles resets it (CANCEL).
                return Err(Fault::ClientGone);
            };
            let head = match answered {
                Err(_) => {
                    ctx.stats.cluster_http[self.cluster].upstream_timeouts.inc();
                    return Err(Fault::UpstreamTimeout);
                }
                Ok(Err(e)) => {
                    return Err(match e.reason() {
                        Some(r) if e.is_reset() => {
                            // The upstream reset the stream: reset ours with the same reason.
                            respond.send_reset(r);
                            x.status = 502;
                            Fault::UpstreamClosed
                        }
                        _ => Fault::UpstreamClosed,
                    });
                }
                Ok(Ok(r)) => r,
            };
            x.upstream_micros = Some(sent_at.elapsed().as_micros() as u64);
            let (parts, mut up_body) = head.into_parts();
            let mut resp = Response::from_parts(parts, ());
            resp.headers_mut().remove("connection");
            fields::finish_response_fields(
                resp.headers_mut(),
                fields::VIA_H2,
                &x.request_id,
                &self.route.response_headers,
            );
            x.status = resp.status().as_u16();
            let end = up_body.is_end_stream();
            let mut send = respond
                .send_response(resp, end)
                .map_err(|_| Fault::ClientGone)?;
            head_sent.set(true);
            if end {
                return Ok(());
            }
            loop {
                match monoio::time::timeout(t.upstream_body, up_body.data()).await {
                    Err(_) => {
                        send.send_reset(h2::Reason::CANCEL);
                        return Err(Fault::UpstreamTimeout);
                    }
                    Ok(Some(Ok(data))) => {
                        let n = data.len();
                        x.bytes_out += n as u64;
                        send_all(&mut send, data, false, t.upstream_body).await?;
                        let _ = up_body.flow_control().release_capacity(n);
                    }
                    Ok(Some(Err(e))) => {
                        send.send_reset(e.reason().unwrap_or(h2::Reason::INTERNAL_ERROR));
                        return Err(Fault::UpstreamClosed);
                    }
                    Ok(None) => break,
                }
            }
            match up_body.trailers().await {
                Ok(Some(trailers)) => send.send_trailers(trailers).map_err(|_| Fault::ClientGone),
                Ok(None) => send_all(&mut send, Bytes::new(), true, t.upstream_body)
                    .await
                    .map_err(Fault::from),
                Err(e) => {
                    send.send_reset(e.reason().unwrap_or(h2::Reason::INTERNAL_ERROR));
                    Err(Fault::UpstreamClosed)
                }
            }
        };
        // The response decides when the exchange is over: a deadline (or the upstream's answer)
        // ends it even while the client is still sending. A request body that fails before any
        // response head was sent is answered by its own fault.
        let mut request_pump = std::pin::pin!(request_pump);
        let mut response_pump = std::pin::pin!(response_pump);
        let mut request_done = false;
        let outcome = loop {
            if request_done {
                break (&mut response_pump).await;
            }
            monoio::select! {
                sent = &mut request_pump => {
                    request_done = true;
                    if let Err(f) = sent {
                        if !head_sent.get() {
                            break Err(f);
                        }
                    }
                }
                received = &mut response_pump => break received,
            }
        };
        drop(slot);
        x.bytes_in += bytes_in.get();
        outcome
    }
}

/// Resolves when the client resets the stream (or the connection goes away).
fn client_reset(respond: &mut SendResponse<Bytes>) -> impl std::future::Future<Output = ()> + '_ {
    std::future::poll_fn(move |cx| match respond.poll_reset(cx) {
        std::task::Poll::Ready(_) => std::task::Poll::Ready(()),
        std::task::Poll::Pending => std::task::Poll::Pending,
    })
}

/// Streams a client's request body to an upstream h2 stream, window by window.
async fn pump_h2_body(
    body: &mut RecvStream,
    up: &mut SendStream<Bytes>,
    idle: Duration,
    max_body: u64,
    total: &std::cell::Cell<u64>,
) -> Result<(), Fault> {
    loop {
        match monoio::time::timeout(idle, body.data()).await {
            Err(_) => {
                up.send_reset(h2::Reason::CANCEL);
                return Err(Fault::BodyTimeout);
            }
            Ok(None) => break,
            Ok(Some(Err(_))) => {
                up.send_reset(h2::Reason::CANCEL);
                return Err(Fault::ClientGone);
            }
            Ok(Some(Ok(data))) => {
                let n = data.len();
                total.set(total.get() + n as u64);
                if total.get() > max_body {
                    up.send_reset(h2::Reason::CANCEL);
                    return Err(Fault::BodyTooLarge);
                }
                send_all(up, data, false, idle)
                    .await
                    .map_err(|_| Fault::UpstreamClosed)?;
                let _ = body.flow_control().release_capacity(n);
            }
        }
    }
    match body.trailers().await {
        Ok(Some(trailers)) => up
            .send_trailers(trailers)
            .map_err(|_| Fault::UpstreamClosed),
        Ok(None) => send_all(up, Bytes::new(), true, idle)
            .await
            .map_err(|_| Fault::UpstreamClosed),
        Err(_) => {
            up.send_reset(h2::Reason::CANCEL);
            Err(Fault::ClientGone)
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum HeadError {
    /// The client reset the stream while we waited.
    ClientGone,
    Timeout,
    Invalid,
    /// Closed (or reset) before a complete head.
    Closed,
}

/// Reads an HTTP/1.1 response head into `upbuf`, skipping interim 1xx responses (h2 clients
/// get none from us; 100-continue is handled by flow control). Returns the head's length.
async fn read_response_head(
    upstream: &mut UpstreamConn,
    upbuf: &mut Vec<u8>,
    head: &mut ResponseHead,
    method: Method,
    wait: Duration,
    limits: &strait_protocols::http1::Limits,
) -> Result<usize, HeadError> {
    let deadline = Instant::now() + wait;
    loop {
        if !upbuf.is_empty() {
            match head.parse(upbuf, ResponseContext::new(method), limits) {
                Ok(Some(n)) if head.is_interim() => {
                    upbuf.drain(..n);
                    continue;
                }
                Ok(Some(n)) => return Ok(n),
                Ok(None) => {}
                Err(_) => return Err(HeadError::Invalid),
            }
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(HeadError::Timeout);
        }
        match monoio::time::timeout(left, read_more(upstream, upbuf)).await {
            Err(_) => return Err(HeadError::Timeout),
            Ok(Ok(0)) | Ok(Err(_)) => return Err(HeadError::Closed),
            Ok(Ok(_)) => {}
        }
    }
}

fn finish(conn: &H2Conn, x: &Exchange, parts: &http::request::Parts, route: Option<&RouteConfig>) {
    let ctx = &conn.ctx;
    let counters = &ctx.stats.routes[x.slot];
    counters.response(x.status);
    counters.received_bytes.add(x.bytes_in);
    counters.sent_bytes.add(x.bytes_out);
    let micros = x.started.elapsed().as_micros() as u64;
    if let Ok(mut h) = ctx.histograms.try_borrow_mut() {
        if let Some(h) = h.request_micros.get_mut(x.slot) {
            h.saturating_record(micros.max(1));
        }
    }
    let Ok(mut log) = ctx.http.access_log.try_borrow_mut() else {
        return;
    };
    let Some(log) = log.as_mut() else { return };
    if !log.wants(x.status) {
        return;
    }
    fn field(v: &Option<HeaderValue>) -> &[u8] {
        v.as_ref().map_or(&b""[..], HeaderValue::as_bytes)
    }
    log.log(&AccessRecord {
        time: x.time,
        listener: &ctx.config.listeners[conn.listener_index].name,
        route: route.map_or("", |r| r.name.as_str()),
        request_id: x.request_id.as_bytes(),
        client: conn.peer,
        method: parts.method.as_str().as_bytes(),
        host: parts
            .uri
            .authority()
            .map_or(&b""[..], |a| a.as_str().as_bytes()),
        path: parts
            .uri
            .path_and_query()
            .map_or(&b""[..], |p| p.as_str().as_bytes()),
        protocol: "HTTP/2.0",
        status: x.status,
        bytes_in: x.bytes_in,
        bytes_out: x.bytes_out,
        upstream: x.upstream,
        upstream_micros: x.upstream_micros,
        total_micros: micros,
        user_agent: field(&x.user_agent),
        referer: field(&x.referer),
        error: x.fault.map_or("", Fault::cause),
    });
}

#[cfg(test)]
mod size_guard {
    fn future_size<A, B, C, F: std::future::Future>(_: impl Fn(A, B, C) -> F) -> usize {
        std::mem::size_of::<F>()
    }

    /// Each stream's task is spawned (moved to the heap) once per request: its size is copied
    /// per request and held while the stream lives.
    #[test]
    fn the_stream_task_stays_small() {
        let size = future_size(super::serve);
        eprintln!("h2 stream task future: {size} B");
        // Measured 1,240 B (forward_h1 and forward_h2c are boxed, allocated per request).
        assert!(size <= 1536, "the h2 stream task grew to {size} bytes");
    }
}
