//! h2 clients to HTTP/1.1 upstreams: one attempt of the exchange on a pooled connection.
//!
//! Owns: writing the h2 request as an HTTP/1.1 head (`fields::write_h1_request`), streaming the
//! body from the h2 stream (releasing the client's window only as the upstream takes the
//! bytes; chunked when the length is unknown, trailers as a trailer section), and relaying the
//! HTTP/1.1 response as h2 (fields converted, trailers as a trailing HEADERS frame). Must not:
//! choose endpoints, retry or classify (the exchange does).

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode};
use monoio::io::AsyncWriteRentExt;
use strait_protocols::http1::{
    BodyDecoder, Event, Method, ResponseContext, ResponseFraming, ResponseHead,
};

use super::fields::{self, H1Body};
use super::send_all;
use super::stream::{client_reset, content_length, Leg};
use crate::client_stream::read_more;
use crate::http::exchange::{Exchange, Failure, H1Attempt, Symptom};
use crate::http::fault::Fault;
use crate::http::upstream_conn::UpstreamConn;

impl Leg<'_> {
    /// One attempt on an HTTP/1.1 connection.
    pub(super) async fn attempt_h1(
        &mut self,
        ex: &mut Exchange<'_>,
        mut up: H1Attempt,
    ) -> Result<(), Failure> {
        let ctx = self.conn.ctx.clone();
        let reused = up.reused;
        let fail = |symptom| Failure { symptom, reused };
        let bodiless = self.incoming.body.is_end_stream();
        let framing = if bodiless {
            H1Body::None
        } else {
            match content_length(&self.headers) {
                Some(n) => H1Body::ContentLength(n),
                None => H1Body::Chunked,
            }
        };
        let address = ctx.config.clusters[ex.cluster].endpoints[up.endpoint].address;
        let mut head = ctx.http.take_buffer();
        let host = match &self.host {
            Some(h) => h.clone(),
            None => address.to_string(),
        };
        fields::write_h1_request(
            &self.incoming.parts.method,
            &self.target,
            &host,
            &self.headers,
            framing,
            &mut head,
        );
        // 1. The head, then the body as it arrives.
        ex.sending();
        let (res, head) = up.conn.write_all(head).await;
        ctx.http.give_buffer(head);
        let mut sent = res.is_ok();
        if sent && !bodiless {
            match self.send_h1_body(&mut up.conn, framing).await {
                Ok(()) => {}
                Err(Some(fault)) => {
                    ex.discard(up);
                    return Err(fail(Symptom::Client(fault)));
                }
                Err(None) => sent = false,
            }
        }
        if !sent {
            ex.discard(up);
            return Err(fail(Symptom::SendFailed));
        }
        // 2. The response head; a client that resets the stream ends the exchange at once (the
        // upstream connection is closed rather than held until it answers).
        let mut upbuf = ctx.http.take_buffer();
        let mut response = ctx.http.take_response_head();
        let method = Method::from_bytes(self.incoming.parts.method.as_str().as_bytes());
        let read = {
            let head = ex.read_h1_head(
                &mut up.conn,
                &mut upbuf,
                &mut response,
                ResponseContext::new(method),
            );
            monoio::select! {
                read = head => read,
                _ = client_reset(self.respond) => Err(Symptom::Client(Fault::ClientGone)),
            }
        };
        let result = match read {
            Err(symptom) => {
                ex.discard(up);
                Err(fail(symptom))
            }
            Ok(consumed) => {
                ex.answered();
                // 3. The response.
                let relayed = self
                    .relay_h1_response(&mut up.conn, &mut upbuf, consumed, &response, method)
                    .await;
                match relayed {
                    Ok(reusable) => {
                        ex.release(up, reusable);
                        Ok(())
                    }
                    Err(fault) if self.x.status == 0 => {
                        // Nothing reached the client: the exchange answers it.
                        ex.discard(up);
                        Err(fail(match fault {
                            Fault::ClientGone => Symptom::Client(fault),
                            _ => Symptom::InvalidHead,
                        }))
                    }
                    Err(fault) => {
                        ex.discard(up);
                        self.body_failed(ex, fault);
                        Ok(())
                    }
                }
            }
        };
        ctx.http.give_response_head(response);
        ctx.http.give_buffer(upbuf);
        result
    }

    /// A response that failed after its head went to the client: recorded and counted once
    /// (route and cluster); the client's stream was reset.
    pub(super) fn body_failed(&mut self, ex: &Exchange<'_>, fault: Fault) {
        self.x.fault = Some(fault);
        fault.count(&self.conn.ctx.stats.routes[self.x.slot]);
        ex.body_failed(fault);
    }

    /// Streams the request body from the h2 stream to an HTTP/1.1 upstream, releasing the
    /// client's flow-control window only as the upstream takes the bytes. `Err(None)`: writing
    /// upstream failed; `Err(Some)`: answer this.
    async fn send_h1_body(
        &mut self,
        upstream: &mut UpstreamConn,
        framing: H1Body,
    ) -> Result<(), Option<Fault>> {
        let ctx = &self.conn.ctx;
        let t = self.timeouts;
        let incoming = &mut *self.incoming;
        let x = &mut *self.x;
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
            if total > self.pipeline.max_body {
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
    async fn relay_h1_response(
        &mut self,
        upstream: &mut UpstreamConn,
        upbuf: &mut Vec<u8>,
        consumed: usize,
        head: &ResponseHead,
        method: Method,
    ) -> Result<bool, Fault> {
        let t = self.timeouts;
        let respond = &mut *self.respond;
        let x = &mut *self.x;
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
            &self.pipeline.response_fields(head.status()),
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
        let mut decoder = BodyDecoder::for_response(framing, &self.limits);
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
}
