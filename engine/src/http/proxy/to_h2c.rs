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

use super::{request_head, ClientStream, Conn, Exchange, Fault, Forwarded, Next, TimedOut};
use crate::config::RouteConfig;
use crate::http::h2::fields::{self, Forwarding};
use crate::http::h2::upstream;

impl<C: ClientStream> Conn<'_, C> {
    /// Forwards the current request to the h2c cluster `cluster`.
    pub(super) async fn forward_h2c(
        &mut self,
        x: &mut Exchange,
        route: &RouteConfig,
        cluster: usize,
        keep_alive: bool,
        max_body: u64,
    ) -> Forwarded {
        let ctx = self.ctx;
        let head_len = self.head_len;
        let t = self.config.timeouts;
        ctx.stats.cluster_http[cluster].requests.inc();
        // Held until the exchange ends: it is this request's stream slot upstream.
        let (mut slot, endpoint) = match upstream::client(ctx, cluster).await {
            Ok(found) => found,
            Err(e) => {
                self.start = head_len;
                let fault = match e {
                    upstream::Unavailable::Full => Fault::PoolFull,
                    upstream::Unavailable::Failed => {
                        ctx.stats.clusters[cluster].unavailable.inc();
                        Fault::ConnectFailed
                    }
                };
                return Forwarded::Fault(fault, Next::Close);
            }
        };
        let address = ctx.config.clusters[cluster].endpoints[endpoint].address;
        x.upstream = Some(address);

        // 1. The request's fields.
        let head = request_head(&self.head);
        let buf = &self.buf[..];
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
        fields::forward_request_fields(
            &mut h,
            &Forwarding {
                client_ip: self.peer.ip(),
                tls: C::TLS,
                trust_forwarded: self.config.trust_forwarded,
                host: client_host,
                generated_request_id: (!has_id).then_some(request_id.as_str()),
                edits: &route.request_headers,
                via: fields::VIA_H1,
            },
        );
        let method = match http::Method::from_bytes(head.method_bytes(buf)) {
            Ok(m) => m,
            Err(_) => {
                self.start = head_len;
                return Forwarded::Fault(Fault::UpstreamProtocol, Next::Close);
            }
        };
        let is_head = method == http::Method::HEAD;
        let scheme = match ctx.config.clusters[cluster].http.protocol {
            crate::config::UpstreamProtocol::H2 => "https",
            _ => "http",
        };
        let uri = http::Uri::builder()
            .scheme(scheme)
            .authority(authority.as_str())
            .path_and_query(self.path.as_slice())
            .build();
        let Ok(uri) = uri else {
            self.start = head_len;
            return Forwarded::Fault(Fault::UpstreamProtocol, Next::Close);
        };
        let mut request = http::Request::new(());
        *request.method_mut() = method;
        *request.uri_mut() = uri;
        *request.headers_mut() = h;
        let framing = head.framing();
        let http10 = crate::http::head::is_http10(head.version());
        let mut body = BodyDecoder::for_request(framing, &self.state.limits);
        let bodiless = body.is_done();

        // 2. The request, then its body as it arrives (the client's reads are the window).
        let sent_at = std::time::Instant::now();
        let Ok((response, mut up)) = slot.send_request(request, bodiless) else {
            self.start = head_len;
            return Forwarded::Fault(Fault::UpstreamClosed, Next::Close);
        };
        self.start = head_len;
        // The upstream stopped taking the body (it answered early and reset the stream, e.g. a
        // 413): its answer is still relayed, and the client connection closes after it (the rest
        // of the body is never read).
        let mut cut_short = false;
        if !bodiless {
            let mut total: u64 = 0;
            loop {
                let step = match body.decode(&self.buf[self.start..]) {
                    Ok(step) => step,
                    Err(e) => {
                        up.send_reset(h2::Reason::CANCEL);
                        return Forwarded::Fault(Fault::Client(e), Next::Close);
                    }
                };
                match step.event {
                    Event::Data(range) => {
                        let data = Bytes::copy_from_slice(
                            &self.buf[self.start + range.start..self.start + range.end],
                        );
                        total += data.len() as u64;
                        self.start += step.consumed;
                        if total > max_body {
                            up.send_reset(h2::Reason::CANCEL);
                            return Forwarded::Fault(Fault::BodyTooLarge, Next::Close);
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
                        self.start += step.consumed;
                        self.buf.drain(head_len..self.start);
                        self.start = head_len;
                        match self
                            .client
                            .read_keeping(&mut self.buf, t.client_body, &mut self.body_canceller)
                            .await
                        {
                            Err(TimedOut) => {
                                up.send_reset(h2::Reason::CANCEL);
                                return Forwarded::Fault(Fault::BodyTimeout, Next::Close);
                            }
                            Ok(Ok(0)) | Ok(Err(_)) => {
                                up.send_reset(h2::Reason::CANCEL);
                                return Forwarded::Done(Next::Abort);
                            }
                            Ok(Ok(n)) => {
                                x.bytes_in += n as u64;
                                ctx.stats.listeners[self.listener_index]
                                    .received_bytes
                                    .add(n as u64);
                            }
                        }
                    }
                    Event::End { trailers } => {
                        let block =
                            &self.buf[self.start + trailers.start..self.start + trailers.end];
                        let trailers = (block.len() > 2).then(|| fields::trailers_from_h1(block));
                        self.start += step.consumed;
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
        let keep_alive = keep_alive && !cut_short;
        self.unread_input |= cut_short;
        let next_if_ok = if keep_alive {
            Next::KeepAlive
        } else {
            Next::Close
        };
        let response = match monoio::time::timeout(t.upstream_response, response).await {
            Err(_) => {
                ctx.stats.cluster_http[cluster].upstream_timeouts.inc();
                return Forwarded::Fault(Fault::UpstreamTimeout, next_if_ok);
            }
            Ok(Err(_)) => return Forwarded::Fault(Fault::UpstreamClosed, next_if_ok),
            Ok(Ok(r)) => r,
        };
        x.upstream_micros = Some(sent_at.elapsed().as_micros() as u64);
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
        self.fresh_out();
        let _ = write!(
            self.out,
            "HTTP/1.1 {} {}\r\n",
            status,
            crate::http::head::canonical_reason(status)
        );
        let mut fields = parts.headers;
        fields::finish_response_fields(
            &mut fields,
            fields::VIA_H2,
            &request_id,
            &route.response_headers,
        );
        for (name, value) in &fields {
            let n = name.as_str().as_bytes();
            if n == b"content-length" || fields::is_connection_specific(n) {
                continue;
            }
            self.out.extend_from_slice(n);
            self.out.extend_from_slice(b": ");
            self.out.extend_from_slice(value.as_bytes());
            self.out.extend_from_slice(b"\r\n");
        }
        match out_framing {
            Out::Length => {
                let _ = write!(self.out, "content-length: {}\r\n", length.unwrap_or(0));
            }
            Out::Chunked => self
                .out
                .extend_from_slice(b"transfer-encoding: chunked\r\n"),
            Out::None | Out::UntilClose => {}
        }
        if close {
            self.out.extend_from_slice(b"connection: close\r\n");
        } else if http10 {
            self.out.extend_from_slice(b"connection: keep-alive\r\n");
        }
        self.out.extend_from_slice(b"\r\n");
        if matches!(out_framing, Out::None) || is_head {
            drop(up_body);
            return match self.write_out_to_client(x).await {
                Ok(()) if close => Forwarded::Done(Next::Close),
                Ok(()) => Forwarded::Done(Next::KeepAlive),
                Err(_) => Forwarded::Done(Next::Abort),
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
                            self.out.extend_from_slice(h.as_bytes());
                        }
                        self.out.extend_from_slice(&data);
                        self.out.extend_from_slice(CHUNK_DATA_END);
                    } else {
                        self.out.extend_from_slice(&data);
                    }
                    let _ = up_body.flow_control().release_capacity(n);
                    if self.write_out_to_client(x).await.is_err() {
                        return Forwarded::Done(Next::Abort);
                    }
                }
                Ok(None) => break,
                // Reset by the upstream or timed out mid-body: the client must not take a cut
                // body for a whole one.
                Ok(Some(Err(_))) | Err(_) => return Forwarded::Done(Next::Abort),
            }
        }
        if length.is_some_and(|l| l != sent) {
            return Forwarded::Done(Next::Abort);
        }
        // An empty body (END_STREAM on the upstream's HEADERS): the head is still waiting.
        if !chunked && !self.out.is_empty() && self.write_out_to_client(x).await.is_err() {
            return Forwarded::Done(Next::Abort);
        }
        if chunked {
            self.out.extend_from_slice(LAST_CHUNK);
            if let Ok(Ok(Some(trailers))) =
                monoio::time::timeout(t.upstream_body, up_body.trailers()).await
            {
                fields::write_h1_trailers(&trailers, &mut self.out);
            }
            self.out.extend_from_slice(b"\r\n");
            if self.write_out_to_client(x).await.is_err() {
                return Forwarded::Done(Next::Abort);
            }
        }
        if matches!(out_framing, Out::UntilClose) || close {
            Forwarded::Done(Next::Close)
        } else {
            Forwarded::Done(Next::KeepAlive)
        }
    }
}
