//! One HTTP/2 request stream, from its headers to its last DATA frame or reset.
//!
//! Owns: routing an h2 request with the listener's route table, fixed responses, handing the
//! request to the exchange (`http::exchange`; this stream's side of it is [`Leg`], whose
//! attempts are in [`super::to_h1`] and [`super::to_h2`]), proxy error responses (in gRPC form
//! for gRPC requests), `grpc-timeout` as the exchange's deadline, accounting and the access
//! log. Must not: hold a `RefCell` borrow across an `.await`, or buffer a body beyond one read
//! or one h2 window.

use std::rc::Rc;
use std::time::{Instant, SystemTime};

use bytes::Bytes;
use h2::server::SendResponse;
use h2::RecvStream;
use http::{HeaderMap, HeaderValue, Request, Response, StatusCode};
use strait_protocols::http1::Method;

use super::fields;
use super::H2Conn;
use crate::config::{
    FixedResponse, HeaderEdits, HttpListenerConfig, HttpTimeouts, RouteAction, RouteConfig,
};
use crate::context::CoreContext;
use crate::http::access_log::AccessRecord;
use crate::http::exchange::{Downstream, Exchange, Failure, H1Attempt, H2Attempt, RequestFacts};
use crate::http::fault::Fault;
use crate::http::pipeline::{Filter, H2View, HeaderPolicy, Peer, Pipeline, RequestView};
use crate::http::route::rewrite_path;

pub(super) use super::to_h2::client_reset;

/// The stream's accounting record.
pub(super) struct Record {
    pub(super) started: Instant,
    pub(super) time: SystemTime,
    pub(super) slot: usize,
    pub(super) request_id: String,
    pub(super) status: u16,
    pub(super) bytes_in: u64,
    pub(super) bytes_out: u64,
    pub(super) upstream: Option<std::net::SocketAddr>,
    pub(super) upstream_micros: Option<u64>,
    pub(super) fault: Option<Fault>,
    /// Kept for the access log when the request's fields go upstream (only when logging).
    pub(super) user_agent: Option<HeaderValue>,
    pub(super) referer: Option<HeaderValue>,
}

/// Decrements the connection's active stream count however the task ends.
struct ActiveStream(Rc<H2Conn>);

impl Drop for ActiveStream {
    fn drop(&mut self) {
        self.0.active.set(self.0.active.get().saturating_sub(1));
    }
}

/// The request as the stream task keeps it.
pub(super) struct Incoming {
    pub(super) parts: http::request::Parts,
    pub(super) body: RecvStream,
    grpc: bool,
    /// The client's `grpc-timeout` as an instant. It bounds the wait for the response head (the
    /// exchange takes the tighter of it and the route's `upstream_response_timeout`); getting a
    /// connection and the body transfer keep their own timeouts.
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
    let route = {
        let view = H2View {
            parts: &parts,
            client: conn.peer,
            tls: conn.tls,
        };
        state.table.find(
            view.authority(),
            view.path_and_query(),
            view.method(),
            |name: &[u8]| view.header(name),
        )
    };
    let (mut x, generated) = open_record(
        ctx,
        ctx.http.route_slots.slot(&ctx.config, li, route),
        &parts,
    );
    let grpc = fields::is_grpc(&parts.headers);
    let deadline = fields::grpc_timeout(&parts.headers).map(|t| x.started + t);
    let mut incoming = Incoming {
        parts,
        body,
        grpc,
        deadline,
    };
    let pipeline = route.map(|r| &state.routes[r]);
    let decision = {
        let view = H2View {
            parts: &incoming.parts,
            client: conn.peer,
            tls: conn.tls,
        };
        decide(&state.pipeline, pipeline, &view)
    };
    let outcome = match decision {
        Decision::Refuse(fault) => Err(fault),
        Decision::Respond(fixed, pipeline) => {
            respond_fixed(&mut respond, &incoming, &mut x, fixed, pipeline)
        }
        Decision::Forward(peer, pipeline) => {
            let route = route.map(|r| &config.routes[r]);
            let forward = Forwarding {
                conn: &conn,
                config,
                limits: state.limits,
                route,
                generated,
            };
            forward
                .run(peer, pipeline, &mut incoming, &mut respond, &mut x)
                .await
        }
    };
    if let Err(fault) = outcome {
        x.fault = Some(fault);
        fault.count(&ctx.stats.routes[x.slot]);
        if x.status == 0 && fault != Fault::ClientGone {
            x.status = fault.status();
            let n = send_fault(&mut respond, fault, incoming.grpc, &x.request_id);
            x.bytes_out += n;
        } else if x.status == 0 {
            x.status = fault.status();
        }
    }
    if let Some(p) = pipeline {
        p.logging(x.status, x.fault);
    }
    finish(&conn, &x, &incoming.parts, route.map(|r| &config.routes[r]));
}

/// The stream's accounting record (its request id: the client's, or a new one) and the route
/// counter. `true` with it: the id was generated here.
fn open_record(ctx: &CoreContext, slot: usize, parts: &http::request::Parts) -> (Record, bool) {
    ctx.stats.routes[slot].requests.inc();
    let (request_id, generated) = match parts.headers.get("x-request-id") {
        Some(id) if !id.is_empty() && id.len() <= 200 && id.to_str().is_ok() => {
            (id.to_str().unwrap_or_default().to_string(), false)
        }
        _ => {
            let id = ctx.http.next_request_id();
            (String::from_utf8_lossy(&id).into_owned(), true)
        }
    };
    let mut x = Record {
        started: Instant::now(),
        time: crate::http::access_log::wall_clock(ctx.http.logging),
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
    (x, generated)
}

/// What the request phases decided for a stream.
enum Decision<'p> {
    Refuse(Fault),
    Respond(&'p FixedResponse, &'p Pipeline),
    Forward(Peer, &'p Pipeline),
}

/// `request_filter` (the listener's policies, then the route's) and `upstream_peer`.
fn decide<'p>(
    listener: &'p Pipeline,
    route: Option<&'p Pipeline>,
    view: &dyn RequestView,
) -> Decision<'p> {
    if let Filter::Refuse(fault) = listener.request_filter(view) {
        return Decision::Refuse(fault);
    }
    let Some(pipeline) = route else {
        return Decision::Refuse(Fault::NoRoute);
    };
    match pipeline.request_filter(view) {
        Filter::Refuse(fault) => Decision::Refuse(fault),
        Filter::Respond(fixed) => Decision::Respond(fixed, pipeline),
        Filter::Continue => match pipeline.upstream_peer(view) {
            Some(peer) => Decision::Forward(peer, pipeline),
            None => Decision::Refuse(Fault::NoRoute),
        },
    }
}

/// A route's fixed response (its `response_filter` edits applied).
fn respond_fixed(
    respond: &mut SendResponse<Bytes>,
    incoming: &Incoming,
    x: &mut Record,
    fixed: &FixedResponse,
    pipeline: &Pipeline,
) -> Result<(), Fault> {
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
        respond,
        resp,
        fields,
        if head_only { Bytes::new() } else { body },
        &x.request_id,
        &pipeline.response_fields(fixed.status),
    )
    .map(|n| x.bytes_out += n)
    .map_err(|_| Fault::ClientGone)
}

/// What forwarding a stream needs from its connection and listener.
struct Forwarding<'a> {
    conn: &'a Rc<H2Conn>,
    config: &'a HttpListenerConfig,
    limits: strait_protocols::http1::Limits,
    route: Option<&'a RouteConfig>,
    /// The request id was generated here (it is added to the upstream request).
    generated: bool,
}

impl Forwarding<'_> {
    /// The forwarding fields' inputs (`X-Forwarded-*`, the request id, Via, the route's edits).
    fn forwarding<'f>(
        &'f self,
        host: Option<&'f str>,
        request_id: &'f str,
        edits: &'f dyn HeaderPolicy,
    ) -> fields::Forwarding<'f> {
        fields::Forwarding {
            client_ip: self.conn.peer.ip(),
            tls: self.conn.tls,
            trust_forwarded: self.config.trust_forwarded,
            host,
            generated_request_id: self.generated.then_some(request_id),
            edits,
            via: fields::VIA_H2,
        }
    }

    /// Through the exchange to the cluster `upstream_peer` chose.
    async fn run(
        &self,
        peer: Peer,
        pipeline: &Pipeline,
        incoming: &mut Incoming,
        respond: &mut SendResponse<Bytes>,
        x: &mut Record,
    ) -> Result<(), Fault> {
        let ctx = &self.conn.ctx;
        let path = incoming
            .parts
            .uri
            .path_and_query()
            .map_or(&b"/"[..], |p| p.as_str().as_bytes());
        let mut target = Vec::with_capacity(path.len());
        match self.route.and_then(|r| match &r.action {
            RouteAction::Forward(f) => f.rewrite.as_ref(),
            RouteAction::Respond(_) => None,
        }) {
            Some(rw) => rewrite_path(rw, path, &mut target),
            None => target.extend_from_slice(path),
        }
        let view = H2View {
            parts: &incoming.parts,
            client: self.conn.peer,
            tls: self.conn.tls,
        };
        let client_host = view.authority().and_then(|h| std::str::from_utf8(h).ok());
        let upstream_host = ctx.config.clusters[peer.cluster]
            .http
            .host
            .clone()
            .or_else(|| client_host.map(str::to_string));
        let client_host = client_host.map(str::to_string);
        let host = client_host.as_deref();
        let id = x.request_id.as_str();
        // The fields are moved to the upstream request, unless a policy edits them: it reads
        // the request as it arrived, so they are copied then.
        let headers = if pipeline.edits_upstream() {
            let mut headers = incoming.parts.headers.clone();
            let edits = pipeline.upstream_fields(&view);
            fields::forward_request_fields(&mut headers, &self.forwarding(host, id, &edits));
            headers
        } else {
            let mut headers = std::mem::take(&mut incoming.parts.headers);
            let edits = &HeaderEdits::EMPTY;
            fields::forward_request_fields(&mut headers, &self.forwarding(host, id, edits));
            headers
        };
        let facts = RequestFacts::new(
            Method::from_bytes(incoming.parts.method.as_str().as_bytes()),
            incoming.body.is_end_stream(),
            false,
        );
        let ex = Exchange::new(
            ctx,
            peer,
            facts,
            self.config.timeouts.upstream_response,
            incoming.deadline,
            self.limits,
        );
        let leg = Leg {
            conn: self.conn,
            pipeline,
            target,
            host: upstream_host,
            headers,
            timeouts: self.config.timeouts,
            limits: self.limits,
            incoming,
            respond,
            x: &mut *x,
        };
        // Boxed: allocated per forwarded stream, so fixed responses and refusals do not carry
        // the exchange's state in their task.
        let ran = Box::pin(ex.run(leg)).await;
        x.upstream = ran.upstream;
        x.upstream_micros = ran.upstream_micros;
        ran.result
    }
}

pub(super) fn content_length(h: &HeaderMap) -> Option<u64> {
    h.get("content-length")?.to_str().ok()?.parse().ok()
}

/// Sends a complete response the proxy made itself; returns the bytes of body sent.
fn send_local(
    respond: &mut SendResponse<Bytes>,
    builder: http::response::Builder,
    mut extra: HeaderMap,
    body: Bytes,
    request_id: &str,
    edits: &dyn HeaderPolicy,
) -> Result<u64, h2::Error> {
    let mut resp = builder.body(()).unwrap_or_default();
    resp.headers_mut().extend(extra.drain());
    fields::finish_response_fields(resp.headers_mut(), fields::VIA_H2, request_id, edits);
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
        // The access log's name: stable and machine-readable for gRPC clients.
        h.insert("grpc-message", HeaderValue::from_static(fault.log_name()));
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

/// A request being forwarded: this stream's side of the exchange.
pub(super) struct Leg<'a> {
    pub(super) conn: &'a Rc<H2Conn>,
    /// The route's request phases (header edits, the body limit).
    pub(super) pipeline: &'a Pipeline,
    pub(super) target: Vec<u8>,
    /// Authority sent upstream: the cluster's `host`, else the client's.
    pub(super) host: Option<String>,
    /// The request's fields as they go upstream.
    pub(super) headers: HeaderMap,
    pub(super) timeouts: HttpTimeouts,
    /// The listener's codec limits, also applied to HTTP/1.1 upstream responses.
    pub(super) limits: strait_protocols::http1::Limits,
    pub(super) incoming: &'a mut Incoming,
    pub(super) respond: &'a mut SendResponse<Bytes>,
    pub(super) x: &'a mut Record,
}

impl Downstream for Leg<'_> {
    type Done = ();

    async fn via_h1(&mut self, ex: &mut Exchange<'_>, up: H1Attempt) -> Result<(), Failure> {
        self.attempt_h1(ex, up).await
    }

    // Boxed: the h2 attempt's state (two pumps at once) is the larger; requests to HTTP/1.1
    // clusters should not allocate it.
    async fn via_h2(&mut self, ex: &mut Exchange<'_>, up: H2Attempt) -> Result<(), Failure> {
        Box::pin(self.attempt_h2(ex, up)).await
    }
}

fn finish(conn: &H2Conn, x: &Record, parts: &http::request::Parts, route: Option<&RouteConfig>) {
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
        error: x.fault.map_or("", Fault::log_name),
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
        // Measured 1,344 B (the exchange is boxed, allocated per forwarded stream).
        assert!(size <= 1536, "the h2 stream task grew to {size} bytes");
    }
}
