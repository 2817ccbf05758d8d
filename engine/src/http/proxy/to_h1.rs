//! HTTP/1.1 clients to HTTP/1.1 upstreams: one attempt of the exchange on a pooled connection.
//!
//! Owns: writing the request head (`head::write_upstream_request`) and streaming the body
//! (re-framed, `100-continue` answered once an upstream is ready), relaying an early answer to an
//! upload the upstream cut short, relaying the response (re-framed for the client's version,
//! large data written straight from the upstream buffer), checking the connection back in or
//! discarding it, and the WebSocket `101` up to the tunnel. Must not: choose endpoints, retry or
//! classify faults (the exchange does), or parse HTTP itself.

use std::io;
use std::net::SocketAddr;

use monoio::buf::IoBuf;
use monoio::io::AsyncWriteRentExt;
use strait_protocols::http1::{
    BodyDecoder, ChunkHeader, Event, RequestFraming, ResponseContext, ResponseFraming,
    CHUNK_DATA_END, LAST_CHUNK,
};

use super::{
    read_with_timeout, request_head, response_head, ClientStream, Conn, Next, Record, TimedOut,
    Upgraded, BULK_BUFFER, CLIENT_BUFFER, COALESCE_MAX, FLUSH_AT, UPSTREAM_BUFFER,
};
use crate::http::exchange::{Downstream, Exchange, Failure, H1Attempt, H2Attempt, Symptom};
use crate::http::fault::Fault;
use crate::http::head::{self, ClientFraming, ClientResponse, UpstreamRequest};
use crate::http::pipeline::{H1View, Pipeline};
use crate::http::tunnel;
use crate::http::upstream_conn::UpstreamConn;

#[derive(Debug)]
pub(super) enum SendError {
    /// Writing to the upstream failed.
    Upstream,
    /// The client's body was invalid, too large or too slow, or the client went away.
    Client(Fault),
}

/// The response relay cannot go on (the client could not be written, or the upstream failed):
/// the upstream connection is discarded and the client's aborted.
struct Aborted;

/// One request of an HTTP/1.1 connection on its way through the exchange.
pub(super) struct Leg<'r, 'c, C> {
    pub conn: &'r mut Conn<'c, C>,
    pub x: &'r mut Record,
    /// The route's request phases (header edits, the body limit).
    pub pipeline: &'r Pipeline,
    pub keep_alive: bool,
    pub websocket: bool,
}

impl<C: ClientStream> Downstream for Leg<'_, '_, C> {
    type Done = Next;

    async fn via_h1(&mut self, ex: &mut Exchange<'_>, up: H1Attempt) -> Result<Next, Failure> {
        self.attempt_h1(ex, up).await
    }

    async fn via_h2(&mut self, ex: &mut Exchange<'_>, up: H2Attempt) -> Result<Next, Failure> {
        // Boxed: only requests to h2 clusters pay for this state in their task.
        Box::pin(self.attempt_h2(ex, up)).await
    }
}

impl<C: ClientStream> Leg<'_, '_, C> {
    /// One attempt on an HTTP/1.1 connection.
    async fn attempt_h1(
        &mut self,
        ex: &mut Exchange<'_>,
        mut up: H1Attempt,
    ) -> Result<Next, Failure> {
        let c = &mut *self.conn;
        let reused = up.reused;
        let fail = |symptom| Failure { symptom, reused };
        // Only a 101 to an upgrade we forwarded is valid (a 101 to anything else is a 502).
        let context = ResponseContext {
            method: request_head(&c.head).method(),
            upgrade_requested: self.websocket,
        };
        let address = ex.upstream.unwrap_or(([0, 0, 0, 0], 0).into());
        ex.sending();
        let sent = c
            .send_request(
                self.x,
                self.pipeline,
                ex.cluster,
                address,
                &mut up.conn,
                self.websocket,
            )
            .await;
        match sent {
            Ok(()) => {}
            Err(SendError::Client(fault)) => {
                ex.discard(up);
                return Err(fail(Symptom::Client(fault)));
            }
            Err(SendError::Upstream) if request_head(&c.head).framing() == RequestFraming::None => {
                ex.discard(up);
                return Err(fail(Symptom::SendFailed));
            }
            Err(SendError::Upstream) => {
                // The upstream may have answered early (e.g. 413 before reading an upload) and
                // closed: relay that answer rather than inventing a 502 (RFC 9112 §9.6). The
                // client's body is left unread, so its connection closes afterwards. (A 101 to
                // an upgrade request that did not go out whole is no answer.)
                let early = c
                    .read_response_head(ex, &mut up.conn, context)
                    .await
                    .is_ok()
                    && !response_head(&c.response).is_switching_protocols();
                if !early {
                    ex.discard(up);
                    return Err(fail(Symptom::SendFailed));
                }
                ex.answered();
                if self.websocket {
                    c.ctx.stats.listeners[c.listener_index].ws_refused.inc();
                }
                c.unread_input = true;
                let next = c
                    .relay_response(self.x, self.pipeline, ex, up, false, false)
                    .await;
                return Ok(if next == Next::KeepAlive {
                    Next::Close
                } else {
                    next
                });
            }
        }
        // Nothing more is read from the client until this head is in: bytes it sent after an
        // upgrade request are tunnel data only if the answer is a 101, else the next request.
        if let Err(symptom) = c.read_response_head(ex, &mut up.conn, context).await {
            ex.discard(up);
            return Err(fail(symptom));
        }
        ex.answered();
        // A refused upgrade is relayed like any response, but its connection is not pooled.
        if self.websocket {
            if response_head(&c.response).is_switching_protocols() {
                return c.open_tunnel(self.x, self.pipeline, ex, up).await;
            }
            c.ctx.stats.listeners[c.listener_index].ws_refused.inc();
        }
        Ok(c.relay_response(
            self.x,
            self.pipeline,
            ex,
            up,
            self.keep_alive,
            !self.websocket,
        )
        .await)
    }
}

impl<C: ClientStream> Conn<'_, C> {
    /// A 101 to a WebSocket upgrade: its head goes to the client, then [`Next::Upgrade`] makes
    /// the connection a tunnel.
    async fn open_tunnel(
        &mut self,
        x: &mut Record,
        pipeline: &Pipeline,
        ex: &Exchange<'_>,
        up: H1Attempt,
    ) -> Result<Next, Failure> {
        let websocket = response_head(&self.response)
            .upgrade_protocols(&self.upbuf)
            .any(|p| p.eq_ignore_ascii_case(b"websocket"));
        if !websocket {
            // Switched to a protocol the client did not ask for.
            let reused = up.reused;
            ex.discard(up);
            return Err(Failure {
                symptom: Symptom::InvalidHead,
                reused,
            });
        }
        x.status = 101;
        self.fresh_out();
        head::write_client_response(
            &ClientResponse {
                buf: &self.upbuf,
                head: response_head(&self.response),
                framing: ClientFraming::AsIs,
                close: false,
                keep_alive_1_0: false,
                request_id: x.request_id(),
                edits: &pipeline.response_fields(101),
                upgrade: true,
            },
            &mut self.out,
        );
        if self.write_out_to_client(x).await.is_err() {
            ex.discard(up);
            return Ok(Next::Abort);
        }
        self.ctx.stats.listeners[self.listener_index]
            .ws_upgrades
            .inc();
        self.upgraded = Some(Box::new(Upgraded {
            upstream: tunnel::Upstream {
                stream: up.conn,
                cluster: ex.cluster,
                endpoint: up.endpoint,
                _registered: up.registered,
            },
            route_slot: x.slot,
        }));
        Ok(Next::Upgrade)
    }

    /// Reads the response head (skipping interim 1xx responses) into `upbuf`; on success
    /// `self.response` holds it and `upbuf` starts with it.
    async fn read_response_head(
        &mut self,
        ex: &Exchange<'_>,
        upstream: &mut UpstreamConn,
        context: ResponseContext,
    ) -> Result<(), Symptom> {
        self.upbuf.clear();
        if self.upbuf.capacity() < UPSTREAM_BUFFER {
            self.ctx.http.give_buffer(std::mem::take(&mut self.upbuf));
            self.upbuf = self.ctx.http.take_buffer();
        }
        let ctx = self.ctx;
        let response = self
            .response
            .get_or_insert_with(|| ctx.http.take_response_head());
        self.response_len = ex
            .read_h1_head(upstream, &mut self.upbuf, response, context)
            .await?;
        Ok(())
    }

    /// Writes the request head and streams its body upstream. On return `start` is past the
    /// request.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn send_request(
        &mut self,
        x: &mut Record,
        pipeline: &Pipeline,
        cluster: usize,
        endpoint: SocketAddr,
        upstream: &mut UpstreamConn,
        upgrade: bool,
    ) -> Result<(), SendError> {
        let head_len = self.head_len;
        let max_body = pipeline.max_body;
        let framing = request_head(&self.head).framing();
        let chunked = framing == RequestFraming::Chunked;
        self.fresh_out();
        let generated;
        {
            generated = x.generated_id.then(|| x.request_id());
            let view = H1View {
                head: request_head(&self.head),
                buf: &self.buf,
                client: self.peer,
                tls: C::TLS,
            };
            head::write_upstream_request(
                &UpstreamRequest {
                    buf: &self.buf,
                    head: request_head(&self.head),
                    target: &self.path,
                    host_override: self.ctx.config.clusters[cluster].http.host.as_deref(),
                    fallback_host: endpoint,
                    client_ip: self.peer.ip(),
                    trust_forwarded: self.config.trust_forwarded,
                    tls: C::TLS,
                    generated_request_id: generated,
                    edits: &pipeline.upstream_fields(&view),
                    chunked,
                    upgrade,
                },
                &mut self.out,
            );
        }
        self.start = head_len;
        let mut body = BodyDecoder::for_request(framing, &self.state.limits);
        if body.is_done() {
            return self.flush_upstream(upstream).await;
        }
        // 100-continue: we answer it ourselves once an upstream is ready for the body (the
        // Expect field is not forwarded), and only if the client is still waiting for it.
        if request_head(&self.head).expects_continue() && self.start == self.buf.len() {
            let wait = self.config.timeouts.client_body;
            match monoio::time::timeout(wait, self.client.write_all(head::CONTINUE)).await {
                Ok((Ok(_), _)) => {}
                _ => return Err(SendError::Client(Fault::ClientGone)),
            }
        }
        let mut total: u64 = 0;
        let body_timeout = self.config.timeouts.client_body;
        if !matches!(framing, RequestFraming::ContentLength(n) if n <= CLIENT_BUFFER as u64) {
            // A body larger than one small read: take bigger reads (given back in read_head).
            self.buf.reserve(BULK_BUFFER.saturating_sub(self.buf.len()));
        }
        loop {
            let step = body
                .decode(&self.buf[self.start..])
                .map_err(|e| SendError::Client(Fault::Client(e)))?;
            match step.event {
                Event::Data(range) => {
                    let data = &self.buf[self.start + range.start..self.start + range.end];
                    total += data.len() as u64;
                    if total > max_body {
                        return Err(SendError::Client(Fault::BodyTooLarge));
                    }
                    if chunked {
                        if let Some(h) = ChunkHeader::new(data.len() as u64) {
                            self.out.extend_from_slice(h.as_bytes());
                        }
                        self.out.extend_from_slice(data);
                        self.out.extend_from_slice(CHUNK_DATA_END);
                    } else {
                        self.out.extend_from_slice(data);
                    }
                    self.start += step.consumed;
                    if self.out.len() >= FLUSH_AT {
                        self.flush_upstream(upstream).await?;
                    }
                }
                Event::NeedMore => {
                    self.start += step.consumed;
                    self.flush_upstream(upstream).await?;
                    // Keep the head (its spans are read until the exchange is logged); drop the
                    // body bytes already forwarded.
                    self.buf.drain(head_len..self.start);
                    self.start = head_len;
                    match self
                        .client
                        .read_keeping(&mut self.buf, body_timeout, &mut self.body_canceller)
                        .await
                    {
                        Err(TimedOut) => {
                            self.read_abandoned |= C::TLS;
                            return Err(SendError::Client(Fault::BodyTimeout));
                        }
                        Ok(Ok(0)) | Ok(Err(_)) => return Err(SendError::Client(Fault::ClientGone)),
                        Ok(Ok(n)) => {
                            x.bytes_in += n as u64;
                            self.ctx.stats.listeners[self.listener_index]
                                .received_bytes
                                .add(n as u64);
                        }
                    }
                }
                Event::End { trailers } => {
                    if chunked {
                        self.out.extend_from_slice(LAST_CHUNK);
                        let t = &self.buf[self.start + trailers.start..self.start + trailers.end];
                        self.out.extend_from_slice(t);
                    }
                    self.start += step.consumed;
                    return self.flush_upstream(upstream).await;
                }
            }
        }
    }

    async fn flush_upstream(&mut self, upstream: &mut UpstreamConn) -> Result<(), SendError> {
        if self.out.is_empty() {
            return Ok(());
        }
        let out = std::mem::take(&mut self.out);
        let timeout = self.config.timeouts.upstream_body;
        match monoio::time::timeout(timeout, upstream.write_all(out)).await {
            Ok((res, mut out)) => {
                out.clear();
                self.out = out;
                res.map(drop).map_err(|_| SendError::Upstream)
            }
            Err(_) => Err(SendError::Upstream),
        }
    }

    /// Sends the response head and body to the client; checks the upstream connection back in
    /// when it can carry another request.
    #[allow(clippy::too_many_arguments)]
    async fn relay_response(
        &mut self,
        x: &mut Record,
        pipeline: &Pipeline,
        ex: &Exchange<'_>,
        mut up: H1Attempt,
        keep_alive: bool,
        // False when the request was not sent whole: the connection must not carry another.
        reusable: bool,
    ) -> Next {
        let http10 = head::is_http10(request_head(&self.head).version());
        let head_len = self.response_len;
        let upstream_framing = response_head(&self.response).framing();
        let client_framing = match upstream_framing {
            ResponseFraming::Chunked | ResponseFraming::CloseDelimited if http10 => {
                ClientFraming::Close
            }
            ResponseFraming::Chunked | ResponseFraming::CloseDelimited => ClientFraming::Chunked,
            _ => ClientFraming::AsIs,
        };
        // Re-read: the drain may have begun while the upstream was answering.
        let close = !keep_alive
            || client_framing == ClientFraming::Close
            || self.ctx.draining.get()
            || self.ctx.superseded();
        x.status = response_head(&self.response).status();
        self.fresh_out();
        head::write_client_response(
            &ClientResponse {
                buf: &self.upbuf,
                head: response_head(&self.response),
                framing: client_framing,
                close,
                keep_alive_1_0: http10 && !close,
                request_id: x.request_id(),
                edits: &pipeline.response_fields(response_head(&self.response).status()),
                upgrade: false,
            },
            &mut self.out,
        );
        let mut body = BodyDecoder::for_response(upstream_framing, &self.state.limits);
        let mut pos = head_len;
        let reframe = client_framing == ClientFraming::Chunked;
        let mut upstream_eof = false;
        loop {
            let step = match body.decode(&self.upbuf[pos..]) {
                Ok(step) => step,
                Err(_) => {
                    self.body_failed(x, ex, Fault::UpstreamProtocol);
                    ex.discard(up);
                    let _ = self.write_out_to_client(x).await;
                    return Next::Abort;
                }
            };
            match step.event {
                Event::Data(range) => {
                    let (a, b) = (pos + range.start, pos + range.end);
                    pos += step.consumed;
                    if self.relay_data(x, a, b, reframe).await.is_err() {
                        ex.discard(up);
                        return Next::Abort;
                    }
                }
                Event::NeedMore if upstream_eof => {
                    // The upstream closed: close-delimited bodies end here, anything else was
                    // cut short.
                    ex.discard(up);
                    let complete = body.on_eof().is_ok();
                    return self.end_at_eof(x, ex, complete, reframe, close).await;
                }
                Event::NeedMore => {
                    let consumed = pos + step.consumed;
                    match self.refill(x, ex, &mut up.conn, consumed).await {
                        Ok(eof) => upstream_eof = eof,
                        Err(Aborted) => {
                            ex.discard(up);
                            return Next::Abort;
                        }
                    }
                    pos = 0;
                }
                Event::End { trailers } => {
                    if reframe {
                        self.out.extend_from_slice(LAST_CHUNK);
                        let t = &self.upbuf[pos + trailers.start..pos + trailers.end];
                        self.out.extend_from_slice(t);
                    }
                    // (To an HTTP/1.0 client trailers cannot be sent; they are dropped.)
                    pos += step.consumed;
                    return self.end_of_body(x, ex, up, pos, reusable, close).await;
                }
            }
        }
    }

    /// Body data `upbuf[a..b]` toward the client: re-framed as a chunk, copied behind what `out`
    /// holds, or (large) written straight from `upbuf`; `out` is written once it is full. `Err`:
    /// the client could not be written.
    async fn relay_data(
        &mut self,
        x: &mut Record,
        a: usize,
        b: usize,
        reframe: bool,
    ) -> io::Result<()> {
        if reframe {
            if let Some(h) = ChunkHeader::new((b - a) as u64) {
                self.out.extend_from_slice(h.as_bytes());
            }
            self.out.extend_from_slice(&self.upbuf[a..b]);
            self.out.extend_from_slice(CHUNK_DATA_END);
        } else if b - a <= COALESCE_MAX
            || !self.out.is_empty() && self.out.len() + (b - a) <= FLUSH_AT
        {
            self.out.extend_from_slice(&self.upbuf[a..b]);
        } else {
            // Large data: write the pending head, then the data straight from the upstream buffer
            // (no copy).
            self.write_out_to_client(x).await?;
            self.write_upbuf_to_client(x, a, b).await?;
        }
        if self.out.len() >= FLUSH_AT {
            self.write_out_to_client(x).await?;
        }
        Ok(())
    }

    /// The decoder needs more of the body: writes what `out` holds, drops the `consumed` bytes
    /// of `upbuf` and reads more from the upstream. `Ok(true)`: the upstream closed. `Err`: the
    /// relay cannot go on (a failed read is counted here).
    async fn refill(
        &mut self,
        x: &mut Record,
        ex: &Exchange<'_>,
        upstream: &mut UpstreamConn,
        consumed: usize,
    ) -> Result<bool, Aborted> {
        if !self.out.is_empty() && self.write_out_to_client(x).await.is_err() {
            return Err(Aborted);
        }
        // Keep what the decoder has not consumed (a partial chunk line or trailer section); a read
        // that filled the buffer means a bulk body: read more per syscall.
        let full = self.upbuf.len() == self.upbuf.capacity();
        self.upbuf.drain(..consumed);
        if full && self.upbuf.capacity() < BULK_BUFFER {
            let grow = (self.upbuf.capacity() * 2).min(BULK_BUFFER);
            self.upbuf.reserve(grow - self.upbuf.len());
        }
        let timeout = self.config.timeouts.upstream_body;
        match read_with_timeout(upstream, &mut self.upbuf, timeout).await {
            Ok(Ok(0)) => Ok(true),
            Ok(Ok(_)) => Ok(false),
            Ok(Err(_)) => {
                self.body_failed(x, ex, Fault::UpstreamClosed);
                Err(Aborted)
            }
            Err(TimedOut) => {
                self.body_failed(x, ex, Fault::UpstreamTimeout);
                Err(Aborted)
            }
        }
    }

    /// The upstream closed where the body was not delimited yet (its connection is discarded):
    /// a close-delimited body ends here (`complete`), anything else was cut short.
    async fn end_at_eof(
        &mut self,
        x: &mut Record,
        ex: &Exchange<'_>,
        complete: bool,
        reframe: bool,
        close: bool,
    ) -> Next {
        if !complete {
            self.body_failed(x, ex, Fault::UpstreamClosed);
            let _ = self.write_out_to_client(x).await;
            return Next::Abort;
        }
        if reframe {
            self.out.extend_from_slice(b"0\r\n\r\n");
        }
        // A failed last write must not end in a clean close (or a keep-alive after an
        // unterminated chunked body).
        if close || !reframe {
            self.cork_for_close();
        }
        if self.write_out_to_client(x).await.is_err() {
            return Next::Abort;
        }
        if reframe && !close {
            Next::KeepAlive
        } else {
            Next::Close
        }
    }

    /// The response was read to its end at `upbuf[..end]` (the rest of it waits in `out`): the
    /// upstream connection goes back to the pool or is discarded, then the client gets the rest.
    async fn end_of_body(
        &mut self,
        x: &mut Record,
        ex: &Exchange<'_>,
        up: H1Attempt,
        end: usize,
        reusable: bool,
        close: bool,
    ) -> Next {
        let extra = end < self.upbuf.len();
        // The response was read to its end: decide about the upstream connection before a slow
        // client can keep it from the pool (not once the drain began: the pools were emptied
        // then).
        if extra {
            // Bytes after the response: the connection is out of step.
            ex.out_of_step();
        }
        let keep = response_head(&self.response).keep_alive() && !extra;
        ex.release(up, reusable && keep);
        // Only the last write is corked: earlier writes of a streamed body must not wait for a
        // full segment.
        if close {
            self.cork_for_close();
        }
        match self.write_out_to_client(x).await {
            Err(_) => Next::Abort,
            Ok(()) if close => Next::Close,
            Ok(()) => Next::KeepAlive,
        }
    }

    /// A response that failed after its head went to the client: counted once per route and
    /// cluster, and logged with its cause (the status stays the upstream's).
    pub(super) fn body_failed(&self, x: &mut Record, ex: &Exchange<'_>, fault: Fault) {
        x.fault = Some(fault);
        fault.count(&self.ctx.stats.routes[x.slot]);
        ex.body_failed(fault);
    }

    async fn write_upbuf_to_client(
        &mut self,
        x: &mut Record,
        a: usize,
        b: usize,
    ) -> io::Result<()> {
        let upbuf = std::mem::take(&mut self.upbuf);
        let timeout = self.config.timeouts.upstream_body;
        match monoio::time::timeout(timeout, self.client.write_all(upbuf.slice(a..b))).await {
            Ok((res, slice)) => {
                self.upbuf = slice.into_inner();
                res?;
                x.bytes_out += (b - a) as u64;
                self.ctx.stats.listeners[self.listener_index]
                    .sent_bytes
                    .add((b - a) as u64);
                Ok(())
            }
            Err(_) => {
                self.upbuf = Vec::with_capacity(UPSTREAM_BUFFER);
                Err(io::ErrorKind::TimedOut.into())
            }
        }
    }
}
