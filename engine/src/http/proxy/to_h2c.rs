//! HTTP/1.1 clients to h2c and h2 clusters: one request of a client connection forwarded as a stream on
//! the core's multiplexed upstream h2c connections.
//!
//! Owns: turning the parsed HTTP/1.1 request into h2 fields (hop-by-hop fields dropped, Host
//! becomes `:authority`, the forwarding fields of `h2::fields`), streaming the client's body
//! (any framing) into the h2 stream, and writing the h2 response back as HTTP/1.1 (Content-Length
//! kept when the upstream sent one, else chunked for 1.1 clients and close-delimited for 1.0
//! ones; trailers become a chunked trailer section). Must not: touch the HTTP/1.1 pools, or
//! forward an upgrade (WebSocket over h2 needs RFC 8441, which Strait does not speak).

use std::io::Write as _;

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue};
use strait_protocols::http1::{BodyDecoder, ChunkHeader, Event, CHUNK_DATA_END, LAST_CHUNK};

use super::to_h1::Leg;
use super::{request_head, ClientStream, Next, TimedOut};
use crate::http::exchange::response_head::h2_symptom;
use crate::http::exchange::{Exchange, Failure, H2Attempt, Symptom};
use crate::http::fault::Fault;
use crate::http::h2::fields::{self, Forwarding};
use crate::http::pipeline::H1View;

impl<C: ClientStream> Leg<'_, '_, C> {
    /// One attempt on a stream of a multiplexed h2 connection.
    pub(super) async fn attempt_h2(
        &mut self,
        ex: &mut Exchange<'_>,
        up: H2Attempt,
    ) -> Result<Next, Failure> {
        let reused = up.reused;
        let fail = |symptom| Failure { symptom, reused };
        let (x, pipeline) = (&mut *self.x, self.pipeline);
        let max_body = pipeline.max_body;
        let c = &mut *self.conn;
        let ctx = c.ctx;
        let cluster = ex.cluster;
        let head_len = c.head_len;
        let t = c.config.timeouts;
        let mut slot = up.slot;
        let address = ctx.config.clusters[cluster].endpoints[up.endpoint].address;

        // 1. The request's fields.
        let head = request_head(&c.head);
        let buf = &c.buf[..];
        let mut h = HeaderMap::with_capacity(head.headers().len() + 4);
        for (i, field) in head.headers().iter(buf).enumerate() {
            if head.is_hop_by_hop(i)
                || field.name.eq_ignore_ascii_case(b"host")
                || field.name.eq_ignore_ascii_case(b"expect")
                || field.name.eq_ignore_ascii_case(b"content-length")
                || fields::is_connection_specific(field.name)
            {
                continue;
            }
            if let (Ok(n), Ok(v)) = (
                HeaderName::from_bytes(field.name),
                HeaderValue::from_bytes(field.value),
            ) {
                h.append(n, v);
            }
        }
        let client_host = head
            .authority(buf)
            .and_then(|a| std::str::from_utf8(a).ok());
        let authority = ctx.config.clusters[cluster]
            .http
            .host
            .clone()
            .or_else(|| client_host.map(str::to_string))
            .unwrap_or_else(|| address.to_string());
        let has_id = head
            .headers()
            .find(b"x-request-id", buf)
            .is_some_and(|id| id == x.request_id());
        let request_id = String::from_utf8_lossy(x.request_id()).into_owned();
        let view = H1View {
            head,
            buf,
            client: c.peer,
            tls: C::TLS,
        };
        fields::forward_request_fields(
            &mut h,
            &Forwarding {
                client_ip: c.peer.ip(),
                tls: C::TLS,
                trust_forwarded: c.config.trust_forwarded,
                host: client_host,
                generated_request_id: (!has_id).then_some(request_id.as_str()),
                edits: &pipeline.upstream_fields(&view),
                via: fields::VIA_H1,
            },
        );
        let Ok(method) = http::Method::from_bytes(head.method_bytes(buf)) else {
            return Err(fail(Symptom::InvalidHead));
        };
        let is_head = method == http::Method::HEAD;
        let scheme = match ctx.config.clusters[cluster].http.protocol {
            crate::config::UpstreamProtocol::H2 => "https",
            _ => "http",
        };
        let uri = http::Uri::builder()
            .scheme(scheme)
            .authority(authority.as_str())
            .path_and_query(c.path.as_slice())
            .build();
        let Ok(uri) = uri else {
            return Err(fail(Symptom::InvalidHead));
        };
        let mut request = http::Request::new(());
        *request.method_mut() = method;
        *request.uri_mut() = uri;
        *request.headers_mut() = h;
        let framing = head.framing();
        let http10 = crate::http::head::is_http10(head.version());
        let mut body = BodyDecoder::for_request(framing, &c.state.limits);
        let bodiless = body.is_done();

        // 2. The request, then its body as it arrives (the client's reads are the window).
        ex.sending();
        let (response, mut up) = match slot.send_request(request, bodiless) {
            Ok(sent) => sent,
            Err(e) => return Err(fail(h2_symptom(&e))),
        };
        c.start = head_len;
        // The upstream stopped taking the body (it answered early and reset the stream, e.g. a
        // 413): its answer is still relayed, and the client connection closes after it (the rest
        // of the body is never read).
        let mut cut_short = false;
        if !bodiless {
            let mut total: u64 = 0;
            loop {
                let step = match body.decode(&c.buf[c.start..]) {
                    Ok(step) => step,
                    Err(e) => {
                        up.send_reset(h2::Reason::CANCEL);
                        return Err(fail(Symptom::Client(Fault::Client(e))));
                    }
                };
                match step.event {
                    Event::Data(range) => {
                        let data = Bytes::copy_from_slice(
                            &c.buf[c.start + range.start..c.start + range.end],
                        );
                        total += data.len() as u64;
                        c.start += step.consumed;
                        if total > max_body {
                            up.send_reset(h2::Reason::CANCEL);
                            return Err(fail(Symptom::Client(Fault::BodyTooLarge)));
                        }
                        if crate::http::h2::send_all(&mut up, data, false, t.upstream_body)
                            .await
                            .is_err()
                        {
                            cut_short = true;
                            break;
                        }
                    }
                    Event::NeedMore => {
                        c.start += step.consumed;
                        c.buf.drain(head_len..c.start);
                        c.start = head_len;
                        match c
                            .client
                            .read_keeping(&mut c.buf, t.client_body, &mut c.body_canceller)
                            .await
                        {
                            Err(TimedOut) => {
                                c.read_abandoned |= C::TLS;
                                up.send_reset(h2::Reason::CANCEL);
                                return Err(fail(Symptom::Client(Fault::BodyTimeout)));
                            }
                            Ok(Ok(0)) | Ok(Err(_)) => {
                                up.send_reset(h2::Reason::CANCEL);
                                return Err(fail(Symptom::Client(Fault::ClientGone)));
                            }
                            Ok(Ok(n)) => {
                                x.bytes_in += n as u64;
                                ctx.stats.listeners[c.listener_index]
                                    .received_bytes
                                    .add(n as u64);
                            }
                        }
                    }
                    Event::End { trailers } => {
                        let block = &c.buf[c.start + trailers.start..c.start + trailers.end];
                        let trailers = (block.len() > 2).then(|| fields::trailers_from_h1(block));
                        c.start += step.consumed;
                        let sent = match trailers {
                            Some(t) if !t.is_empty() => up.send_trailers(t).is_ok(),
                            _ => crate::http::h2::send_all(
                                &mut up,
                                Bytes::new(),
                                true,
                                t.upstream_body,
                            )
                            .await
                            .is_ok(),
                        };
                        cut_short = !sent;
                        break;
                    }
                }
            }
        }

        // 3. The response head.
        let keep_alive = self.keep_alive && !cut_short;
        c.unread_input |= cut_short;
        let response = ex.await_h2_head(response).await.map_err(fail)?;
        ex.answered();
        let (parts, mut up_body) = response.into_parts();
        let status = parts.status.as_u16();
        x.status = status;
        let no_body = is_head || status == 204 || status == 304 || (100..200).contains(&status);
        let length = parts
            .headers
            .get("content-length")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        // Framing toward the client.
        enum Out {
            None,
            Length,
            Chunked,
            UntilClose,
        }
        let out_framing = if no_body || up_body.is_end_stream() && length.is_none() && !is_head {
            if no_body {
                Out::None
            } else {
                Out::Length
            }
        } else if length.is_some() {
            Out::Length
        } else if http10 {
            Out::UntilClose
        } else {
            Out::Chunked
        };
        let close = !keep_alive || matches!(out_framing, Out::UntilClose) || ctx.draining.get();
        c.fresh_out();
        let _ = write!(
            c.out,
            "HTTP/1.1 {} {}\r\n",
            status,
            crate::http::head::canonical_reason(status)
        );
        let mut fields = parts.headers;
        fields::finish_response_fields(
            &mut fields,
            fields::VIA_H2,
            &request_id,
            &pipeline.response_fields(status),
        );
        for (name, value) in &fields {
            let n = name.as_str().as_bytes();
            if n == b"content-length" || fields::is_connection_specific(n) {
                continue;
            }
            c.out.extend_from_slice(n);
            c.out.extend_from_slice(b": ");
            c.out.extend_from_slice(value.as_bytes());
            c.out.extend_from_slice(b"\r\n");
        }
        match out_framing {
            Out::Length => {
                let _ = write!(c.out, "content-length: {}\r\n", length.unwrap_or(0));
            }
            Out::Chunked => c.out.extend_from_slice(b"transfer-encoding: chunked\r\n"),
            Out::None | Out::UntilClose => {}
        }
        if close {
            c.out.extend_from_slice(b"connection: close\r\n");
        } else if http10 {
            c.out.extend_from_slice(b"connection: keep-alive\r\n");
        }
        c.out.extend_from_slice(b"\r\n");
        if matches!(out_framing, Out::None) || is_head {
            drop(up_body);
            return match c.write_out_to_client(x).await {
                Ok(()) if close => Ok(Next::Close),
                Ok(()) => Ok(Next::KeepAlive),
                Err(_) => Ok(Next::Abort),
            };
        }

        // 4. The body, one DATA frame at a time; the upstream's window opens as the client takes
        // the bytes.
        let chunked = matches!(out_framing, Out::Chunked);
        let mut sent: u64 = 0;
        loop {
            let next = monoio::time::timeout(t.upstream_body, up_body.data()).await;
            match next {
                Ok(Some(Ok(data))) => {
                    let n = data.len();
                    sent += n as u64;
                    if chunked && n > 0 {
                        if let Some(h) = ChunkHeader::new(n as u64) {
                            c.out.extend_from_slice(h.as_bytes());
                        }
                        c.out.extend_from_slice(&data);
                        c.out.extend_from_slice(CHUNK_DATA_END);
                    } else {
                        c.out.extend_from_slice(&data);
                    }
                    let _ = up_body.flow_control().release_capacity(n);
                    if c.write_out_to_client(x).await.is_err() {
                        return Ok(Next::Abort);
                    }
                }
                Ok(None) => break,
                // Reset by the upstream or timed out mid-body: the client must not take a cut
                // body for a whole one.
                Ok(Some(Err(_))) => {
                    c.body_failed(x, ex, Fault::UpstreamClosed);
                    return Ok(Next::Abort);
                }
                Err(_) => {
                    c.body_failed(x, ex, Fault::UpstreamTimeout);
                    return Ok(Next::Abort);
                }
            }
        }
        if length.is_some_and(|l| l != sent) {
            c.body_failed(x, ex, Fault::UpstreamProtocol);
            return Ok(Next::Abort);
        }
        // An empty body (END_STREAM on the upstream's HEADERS): the head is still waiting.
        if !chunked && !c.out.is_empty() && c.write_out_to_client(x).await.is_err() {
            return Ok(Next::Abort);
        }
        if chunked {
            c.out.extend_from_slice(LAST_CHUNK);
            if let Ok(Ok(Some(trailers))) =
                monoio::time::timeout(t.upstream_body, up_body.trailers()).await
            {
                fields::write_h1_trailers(&trailers, &mut c.out);
            }
            c.out.extend_from_slice(b"\r\n");
            if c.write_out_to_client(x).await.is_err() {
                return Ok(Next::Abort);
            }
        }
        if matches!(out_framing, Out::UntilClose) || close {
            Ok(Next::Close)
        } else {
            Ok(Next::KeepAlive)
        }
    }
}
