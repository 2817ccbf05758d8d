//! The proxy's own answers to an HTTP/1.1 client, and the accounting of every request.
//!
//! Owns: the per-request [`Record`] (timing, request id, status, bytes, upstream, fault), the
//! answers the proxy writes itself (refusals before routing, a route's fixed responses, proxy
//! error responses with their cause), writing the output buffer to the client under its
//! deadline, and a finished request's route counters, latency histogram and access log line.
//! Must not: read from the client or an upstream, route or decide keep-alive (the request loop
//! in [`proxy`](super) does; a drain only forces a close), or log at info/warn for answers a
//! client can cause at will.

use std::io;
use std::net::SocketAddr;
use std::time::{Instant, SystemTime};

use monoio::io::AsyncWriteRentExt;
use strait_protocols::http1::Method;
use tracing::debug;

use super::{request_head, ClientStream, Conn, Next, CLIENT_BUFFER, MAX_REQUEST_ID};
use crate::config::{FixedResponse, RouteConfig};
use crate::http::access_log::AccessRecord;
use crate::http::fault::Fault;
use crate::http::head::{self, LocalResponse};
use crate::http::pipeline::Pipeline;

/// Per-request facts for accounting and the access log.
pub(super) struct Record {
    pub(super) started: Instant,
    pub(super) time: SystemTime,
    pub(super) slot: usize,
    pub(super) request_id: [u8; MAX_REQUEST_ID],
    pub(super) request_id_len: usize,
    pub(super) status: u16,
    pub(super) bytes_in: u64,
    pub(super) bytes_out: u64,
    pub(super) upstream: Option<SocketAddr>,
    pub(super) upstream_micros: Option<u64>,
    pub(super) fault: Option<Fault>,
    /// `self.head` describes this request (false when it was refused before its head parsed).
    pub(super) head_parsed: bool,
    /// The request id was made here (the client sent none, or an unusable one): the upstream
    /// request gets an `x-request-id` field carrying it.
    pub(super) generated_id: bool,
}

impl Record {
    pub(super) fn request_id(&self) -> &[u8] {
        &self.request_id[..self.request_id_len]
    }
}

impl<C: ClientStream> Conn<'_, C> {
    pub(super) fn exchange(&self, route: Option<usize>, head_parsed: bool) -> Record {
        Record {
            started: Instant::now(),
            time: crate::http::access_log::wall_clock(self.ctx.http.logging),
            slot: self
                .ctx
                .http
                .route_slots
                .slot(&self.ctx.config, self.listener_index, route),
            request_id: [0; MAX_REQUEST_ID],
            request_id_len: 0,
            status: 0,
            bytes_in: 0,
            bytes_out: 0,
            upstream: None,
            upstream_micros: None,
            fault: None,
            head_parsed,
            generated_id: false,
        }
    }

    /// Answers a request refused before routing (malformed, over a limit, or too slow).
    pub(super) async fn refuse_unrouted(&mut self, fault: Fault) {
        let mut x = self.exchange(None, false);
        x.bytes_in = (self.buf.len() - self.start) as u64;
        self.stats().routes[x.slot].requests.inc();
        let id = self.ctx.http.next_request_id();
        x.request_id[..32].copy_from_slice(&id);
        x.request_id_len = 32;
        self.respond_fault(&mut x, fault, true, false).await;
        self.finish(&x, None, None);
    }

    /// A route's fixed response (its `response_filter` edits applied).
    pub(super) async fn respond_fixed(
        &mut self,
        x: &mut Record,
        fixed: &FixedResponse,
        pipeline: &Pipeline,
        keep_alive: bool,
        has_body: bool,
    ) -> Next {
        self.start = self.head_len;
        self.fresh_out();
        let head_only = request_head(&self.head).method() == Method::Head;
        let http10 = head::is_http10(request_head(&self.head).version());
        let close = !keep_alive;
        if close {
            self.cork_for_close();
        }
        self.unread_input |= has_body;
        head::write_local_response(
            &LocalResponse {
                status: fixed.status,
                content_type: &fixed.content_type,
                body: fixed.body.as_bytes(),
                location: fixed.location.as_deref(),
                request_id: x.request_id(),
                close,
                keep_alive_1_0: http10 && !close,
                head_only,
                edits: Some(&pipeline.response_fields(fixed.status)),
            },
            &mut self.out,
        );
        x.status = fixed.status;
        match self.write_out_to_client(x).await {
            Ok(()) if close => Next::Close,
            Ok(()) => Next::KeepAlive,
            Err(_) => Next::Abort,
        }
    }

    /// Writes a proxy error response; returns what to do with the connection.
    pub(super) async fn respond_fault(
        &mut self,
        x: &mut Record,
        fault: Fault,
        close: bool,
        http10: bool,
    ) -> Next {
        let close = close || self.ctx.draining.get() || self.ctx.superseded();
        if close {
            self.cork_for_close();
        }
        x.fault = Some(fault);
        x.status = fault.status();
        fault.count(&self.ctx.stats.routes[x.slot]);
        self.unread_input |= close;
        let mut body = [0u8; 160];
        let text = {
            use std::io::Write;
            let mut cursor = io::Cursor::new(&mut body[..]);
            let _ = writeln!(
                cursor,
                "{} {}: {}",
                x.status,
                head::canonical_reason(x.status),
                fault.cause()
            );
            cursor.position() as usize
        };
        self.fresh_out();
        head::write_local_response(
            &LocalResponse {
                status: x.status,
                content_type: "text/plain; charset=utf-8",
                body: &body[..text],
                location: None,
                request_id: x.request_id(),
                close,
                keep_alive_1_0: http10 && !close,
                head_only: false,
                edits: None,
            },
            &mut self.out,
        );
        debug!(listener = %self.ctx.config.listeners[self.listener_index].name, client = %self.peer,
            status = x.status, cause = fault.log_name(), "request answered by the proxy");
        match self.write_out_to_client(x).await {
            Ok(()) if close => Next::Close,
            Ok(()) => Next::KeepAlive,
            Err(_) => Next::Abort,
        }
    }

    /// The client went away during the exchange: nothing can be answered; it is logged (499)
    /// and counted.
    pub(super) fn client_gone(&self, x: &mut Record) {
        x.fault = Some(Fault::ClientGone);
        x.status = Fault::ClientGone.status();
        Fault::ClientGone.count(&self.ctx.stats.routes[x.slot]);
    }

    pub(super) async fn write_out_to_client(&mut self, x: &mut Record) -> io::Result<()> {
        let n = self.out.len();
        let deadline = self.config.timeouts.upstream_body;
        let out = std::mem::take(&mut self.out);
        let (res, out) = match monoio::time::timeout(deadline, self.client.write_all(out)).await {
            Ok(r) => r,
            Err(_) => {
                self.out = Vec::with_capacity(CLIENT_BUFFER);
                return Err(io::ErrorKind::TimedOut.into());
            }
        };
        self.out = out;
        self.out.clear();
        res?;
        x.bytes_out += n as u64;
        self.ctx.stats.listeners[self.listener_index]
            .sent_bytes
            .add(n as u64);
        Ok(())
    }

    /// Accounting and the access log line for a finished exchange.
    pub(super) fn finish(
        &self,
        x: &Record,
        route: Option<&RouteConfig>,
        pipeline: Option<&Pipeline>,
    ) {
        if let Some(p) = pipeline {
            p.logging(x.status, x.fault);
        }
        let counters = &self.ctx.stats.routes[x.slot];
        counters.response(x.status);
        counters.received_bytes.add(x.bytes_in);
        counters.sent_bytes.add(x.bytes_out);
        let micros = x.started.elapsed().as_micros() as u64;
        if let Ok(mut h) = self.ctx.histograms.try_borrow_mut() {
            if let Some(h) = h.request_micros.get_mut(x.slot) {
                h.saturating_record(micros.max(1));
            }
        }
        let Ok(mut log) = self.ctx.http.access_log.try_borrow_mut() else {
            return;
        };
        let Some(log) = log.as_mut() else { return };
        if !log.wants(x.status) {
            return;
        }
        let buf = &self.buf[..];
        let head = request_head(&self.head);
        let parsed = x.head_parsed;
        let field = |name: &[u8]| {
            if parsed {
                head.headers().find(name, buf).unwrap_or(b"")
            } else {
                b""
            }
        };
        log.log(&AccessRecord {
            time: x.time,
            listener: &self.ctx.config.listeners[self.listener_index].name,
            route: route.map_or("", |r| r.name.as_str()),
            request_id: x.request_id(),
            client: self.peer,
            method: if parsed { head.method_bytes(buf) } else { b"" },
            host: if parsed {
                head.authority(buf).unwrap_or(b"")
            } else {
                b""
            },
            path: if parsed {
                head.path_and_query(buf)
            } else {
                b""
            },
            protocol: if parsed { head.version().as_str() } else { "" },
            status: x.status,
            bytes_in: x.bytes_in,
            bytes_out: x.bytes_out,
            upstream: x.upstream,
            upstream_micros: x.upstream_micros,
            total_micros: micros,
            user_agent: field(b"user-agent"),
            referer: field(b"referer"),
            error: x.fault.map_or("", Fault::log_name),
        });
    }
}
