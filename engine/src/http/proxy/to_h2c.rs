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
use std::net::SocketAddr;

use bytes::Bytes;
use h2::{RecvStream, SendStream};
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
        let mut slot = up.slot;
        let address = self.conn.ctx.config.clusters[ex.cluster].endpoints[up.endpoint].address;

        // 1. The request's fields.
        let (request, request_id) = self.h2_request(ex.cluster, address).map_err(fail)?;
        let is_head = request.method() == http::Method::HEAD;
        let c = &mut *self.conn;
        let body = BodyDecoder::for_request(request_head(&c.head).framing(), &c.state.limits);
        let bodiless = body.is_done();

        // 2. The request, then its body as it arrives (the client's reads are the window).
        ex.sending();
        let (response, mut up) = match slot.send_request(request, bodiless) {
            Ok(sent) => sent,
            Err(e) => return Err(fail(h2_symptom(&e))),
        };
        c.start = c.head_len;
        // The upstream stopped taking the body (it answered early and reset the stream, e.g. a
        // 413): its answer is still relayed, and the client connection closes after it (the rest
        // of the body is never read).
        let cut_short = !bodiless && self.send_body(body, &mut up).await.map_err(fail)?;

        // 3. The response head.
        let keep_alive = self.keep_alive && !cut_short;
        self.conn.unread_input |= cut_short;
        let response = ex.await_h2_head(response).await.map_err(fail)?;
        ex.answered();
        let (parts, up_body) = response.into_parts();
        let end_stream = up_body.is_end_stream();
        let head = self.write_response_head(parts, end_stream, is_head, keep_alive, &request_id);
        if matches!(head.framing, Out::None) || is_head {
            drop(up_body);
            return match self.conn.write_out_to_client(self.x).await {
                Ok(()) if head.close => Ok(Next::Close),
                Ok(()) => Ok(Next::KeepAlive),
                Err(_) => Ok(Next::Abort),
            };
        }

        // 4. The body, one DATA frame at a time; the upstream's window opens as the client takes
        // the bytes.
        Ok(self.relay_body(ex, up_body, head).await)
    }

    /// The parsed HTTP/1.1 request as an h2 request to `address` of `cluster`, and the request
    /// id it carries (the response carries it back).
    fn h2_request(
        &self,
        cluster: usize,
        address: SocketAddr,
    ) -> Result<(http::Request<()>, String), Symptom> {
        let c = &*self.conn;
        let ctx = c.ctx;
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
        let request_id = String::from_utf8_lossy(self.x.request_id()).into_owned();
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
                generated_request_id: self.x.generated_id.then_some(request_id.as_str()),
                edits: &self.pipeline.upstream_fields(&view),
                via: fields::VIA_H1,
            },
        );
        let Ok(method) = http::Method::from_bytes(head.method_bytes(buf)) else {
            return Err(Symptom::InvalidHead);
        };
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
            return Err(Symptom::InvalidHead);
        };
        let mut request = http::Request::new(());
        *request.method_mut() = method;
        *request.uri_mut() = uri;
        *request.headers_mut() = h;
        Ok((request, request_id))
    }

    /// Streams the client's body (any framing, decoded by `body`) into the h2 stream `up` as it
    /// arrives; `start` is past what was sent. `Ok(true)`: the upstream stopped taking it (the
    /// body was cut short).
    async fn send_body(
        &mut self,
        mut body: BodyDecoder,
        up: &mut SendStream<Bytes>,
    ) -> Result<bool, Symptom> {
        let (x, max_body) = (&mut *self.x, self.pipeline.max_body);
        let c = &mut *self.conn;
        let ctx = c.ctx;
        let head_len = c.head_len;
        let t = c.config.timeouts;
        let mut total: u64 = 0;
        loop {
            let step = match body.decode(&c.buf[c.start..]) {
                Ok(step) => step,
                Err(e) => {
                    up.send_reset(h2::Reason::CANCEL);
                    return Err(Symptom::Client(Fault::Client(e)));
                }
            };
            match step.event {
                Event::Data(range) => {
                    let data =
                        Bytes::copy_from_slice(&c.buf[c.start + range.start..c.start + range.end]);
                    total += data.len() as u64;
                    c.start += step.consumed;
                    if total > max_body {
                        up.send_reset(h2::Reason::CANCEL);
                        return Err(Symptom::Client(Fault::BodyTooLarge));
                    }
                    if crate::http::h2::send_all(up, data, false, t.upstream_body)
                        .await
                        .is_err()
                    {
                        return Ok(true);
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
                            return Err(Symptom::Client(Fault::BodyTimeout));
                        }
                        Ok(Ok(0)) | Ok(Err(_)) => {
                            up.send_reset(h2::Reason::CANCEL);
                            return Err(Symptom::Client(Fault::ClientGone));
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
                        _ => crate::http::h2::send_all(up, Bytes::new(), true, t.upstream_body)
                            .await
                            .is_ok(),
                    };
                    return Ok(!sent);
                }
            }
        }
    }

    /// Writes the HTTP/1.1 head of the h2 response `parts` into `out` (not sent yet): the status
    /// line, the upstream's fields (connection-specific ones and Content-Length dropped, ours
    /// added) and the framing chosen for the client. `end_stream`: the upstream's HEADERS ended
    /// the stream.
    fn write_response_head(
        &mut self,
        parts: http::response::Parts,
        end_stream: bool,
        is_head: bool,
        keep_alive: bool,
        request_id: &str,
    ) -> ClientHead {
        let c = &mut *self.conn;
        let http10 = crate::http::head::is_http10(request_head(&c.head).version());
        let status = parts.status.as_u16();
        self.x.status = status;
        let no_body = is_head || status == 204 || status == 304 || (100..200).contains(&status);
        let length = parts
            .headers
            .get("content-length")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        let out_framing = if no_body || end_stream && length.is_none() && !is_head {
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
        let close = !keep_alive
            || matches!(out_framing, Out::UntilClose)
            || c.ctx.draining.get()
            || c.ctx.superseded();
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
            request_id,
            &self.pipeline.response_fields(status),
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
        ClientHead {
            framing: out_framing,
            length,
            close,
        }
    }

    /// Relays the response body (the head waits in `out`), then its trailers to a chunked
    /// client; returns what to do with the client connection.
    async fn relay_body(
        &mut self,
        ex: &Exchange<'_>,
        mut up_body: RecvStream,
        head: ClientHead,
    ) -> Next {
        let (x, c) = (&mut *self.x, &mut *self.conn);
        let t = c.config.timeouts;
        let chunked = matches!(head.framing, Out::Chunked);
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
                        return Next::Abort;
                    }
                }
                Ok(None) => break,
                // Reset by the upstream or timed out mid-body: the client must not take a cut
                // body for a whole one.
                Ok(Some(Err(_))) => {
                    c.body_failed(x, ex, Fault::UpstreamClosed);
                    return Next::Abort;
                }
                Err(_) => {
                    c.body_failed(x, ex, Fault::UpstreamTimeout);
                    return Next::Abort;
                }
            }
        }
        if head.length.is_some_and(|l| l != sent) {
            c.body_failed(x, ex, Fault::UpstreamProtocol);
            return Next::Abort;
        }
        // An empty body (END_STREAM on the upstream's HEADERS): the head is still waiting.
        if !chunked && !c.out.is_empty() && c.write_out_to_client(x).await.is_err() {
            return Next::Abort;
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
                return Next::Abort;
            }
        }
        if matches!(head.framing, Out::UntilClose) || head.close {
            Next::Close
        } else {
            Next::KeepAlive
        }
    }
}

/// Framing of the response toward the client.
enum Out {
    None,
    Length,
    Chunked,
    UntilClose,
}

/// How the response goes to the client, decided with its head.
struct ClientHead {
    framing: Out,
    /// The upstream's Content-Length (the body relayed must match it).
    length: Option<u64>,
    /// The client connection closes after this response.
    close: bool,
}
