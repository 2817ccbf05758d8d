//! h2 clients to h2 and h2c upstreams: one attempt of the exchange on a stream of a
//! multiplexed upstream connection.
//!
//! Owns: sending the request's fields as they are (connection-specific ones were dropped when
//! the request arrived), both bodies at once (a gRPC bidirectional call sends while it receives)
//! under flow control, trailers both ways, resets both ways, and relaying the response. Must
//! not: choose endpoints, retry or classify (the exchange does).

use std::cell::Cell;
use std::time::{Duration, Instant};

use bytes::Bytes;
use h2::client::ResponseFuture;
use h2::server::SendResponse;
use h2::{RecvStream, SendStream};
use http::{Request, Response};

use super::fields;
use super::send_all;
use super::stream::{Leg, Record};
use crate::config::UpstreamProtocol;
use crate::http::exchange::response_head::h2_symptom;
use crate::http::exchange::{Exchange, Failure, H2Attempt, Symptom};
use crate::http::fault::Fault;
use crate::http::pipeline::Pipeline;

/// How an h2 attempt ended badly: before the response head reached the client (the exchange
/// decides what to answer), or after (recorded, the client's stream reset).
enum Outcome {
    Failed(Symptom),
    BodyFailed(Fault),
}

impl Leg<'_> {
    /// One attempt on a stream of a multiplexed h2 connection.
    pub(super) async fn attempt_h2(
        &mut self,
        ex: &mut Exchange<'_>,
        up: H2Attempt,
    ) -> Result<(), Failure> {
        let ctx = self.conn.ctx.clone();
        let t = self.timeouts;
        let reused = up.reused;
        let fail = |symptom| Failure { symptom, reused };
        // Held until the stream ends: it is this stream's slot on the upstream connection.
        let mut slot = up.slot;
        let cluster = ex.cluster;
        let address = ctx.config.clusters[cluster].endpoints[up.endpoint].address;
        let authority = self.host.clone().unwrap_or_else(|| address.to_string());
        let scheme = if ctx.config.clusters[cluster].http.protocol == UpstreamProtocol::H2 {
            "https"
        } else {
            "http"
        };
        let uri = http::Uri::builder()
            .scheme(scheme)
            .authority(authority.as_str())
            .path_and_query(self.target.as_slice())
            .build()
            .map_err(|_| fail(Symptom::InvalidHead))?;
        let mut req = Request::new(());
        *req.method_mut() = self.incoming.parts.method.clone();
        *req.uri_mut() = uri;
        // Kept for a retry only while one is possible (it sends the same fields again); a
        // request with a body, or on its second attempt, hands its fields over.
        *req.headers_mut() = if ex.may_retry() {
            self.headers.clone()
        } else {
            std::mem::take(&mut self.headers)
        };
        req.headers_mut().remove(http::header::HOST);
        let bodiless = self.incoming.body.is_end_stream();
        ex.sending();
        let (response, mut up_send) = slot
            .send_request(req, bodiless)
            .map_err(|e| fail(h2_symptom(&e)))?;
        let marks = Marks::default();
        let bytes_in = std::cell::Cell::new(0u64);
        let outcome = {
            let max_body = self.pipeline.max_body;
            let body = &mut self.incoming.body;
            // Both directions at once: a streaming (gRPC bidi) call sends while it receives.
            let request_pump = async {
                if bodiless {
                    return Ok(());
                }
                pump_h2_body(body, &mut up_send, t.client_body, max_body, &bytes_in).await
            };
            let response_pump = pump_response(
                ex,
                response,
                self.respond,
                self.x,
                self.pipeline,
                t.upstream_body,
                &marks,
            );
            // The response decides when the exchange is over: a deadline (or the upstream's answer)
            // ends it even while the client is still sending. A request body that fails before any
            // response head was sent is answered by its own fault.
            let mut request_pump = std::pin::pin!(request_pump);
            let mut response_pump = std::pin::pin!(response_pump);
            let mut request_done = false;
            loop {
                if request_done {
                    break (&mut response_pump).await;
                }
                monoio::select! {
                    sent = &mut request_pump => {
                        request_done = true;
                        if let Err(f) = sent {
                            if !marks.head_sent.get() {
                                break Err(Outcome::Failed(match f {
                                    // Sending to the upstream failed: its reset or close.
                                    Fault::UpstreamClosed => Symptom::SendFailed,
                                    f => Symptom::Client(f),
                                }));
                            }
                        }
                    }
                    received = &mut response_pump => break received,
                }
            }
        };
        drop(slot);
        self.x.bytes_in += bytes_in.get();
        if let Some(at) = marks.head_at.get() {
            ex.answered_at(at);
        }
        match outcome {
            Ok(()) => Ok(()),
            Err(Outcome::Failed(symptom)) => Err(fail(symptom)),
            Err(Outcome::BodyFailed(fault)) => {
                self.body_failed(ex, fault);
                Ok(())
            }
        }
    }
}

/// What the response pump reports to its attempt while both pumps run.
#[derive(Default)]
struct Marks {
    /// When the upstream's head arrived.
    head_at: Cell<Option<Instant>>,
    /// The head went to the client: a request body that fails after it is no longer the answer.
    head_sent: Cell<bool>,
}

/// The response side of an h2 attempt: awaits the upstream's head (or the client's reset),
/// sends it to the client with our fields, then relays its DATA (`idle`: the body deadline) and
/// its trailers or end of stream; a reset either way is passed on.
async fn pump_response(
    ex: &Exchange<'_>,
    response: ResponseFuture,
    respond: &mut SendResponse<Bytes>,
    x: &mut Record,
    pipeline: &Pipeline,
    idle: Duration,
    marks: &Marks,
) -> Result<(), Outcome> {
    let answered = async {
        monoio::select! {
            r = ex.await_h2_head(response) => r,
            // Dropping the upstream stream's handles resets it (CANCEL).
            _ = client_reset(respond) => Err(Symptom::Client(Fault::ClientGone)),
        }
    };
    let head = answered.await.map_err(Outcome::Failed)?;
    marks.head_at.set(Some(Instant::now()));
    let (parts, mut up_body) = head.into_parts();
    let mut resp = Response::from_parts(parts, ());
    resp.headers_mut().remove("connection");
    let status = resp.status().as_u16();
    fields::finish_response_fields(
        resp.headers_mut(),
        fields::VIA_H2,
        &x.request_id,
        &pipeline.response_fields(status),
    );
    let end = up_body.is_end_stream();
    let mut send = respond
        .send_response(resp, end)
        .map_err(|_| Outcome::Failed(Symptom::Client(Fault::ClientGone)))?;
    x.status = status;
    marks.head_sent.set(true);
    if end {
        return Ok(());
    }
    loop {
        match monoio::time::timeout(idle, up_body.data()).await {
            Err(_) => {
                send.send_reset(h2::Reason::CANCEL);
                return Err(Outcome::BodyFailed(Fault::UpstreamTimeout));
            }
            Ok(Some(Ok(data))) => {
                let n = data.len();
                x.bytes_out += n as u64;
                send_all(&mut send, data, false, idle)
                    .await
                    .map_err(|e| Outcome::BodyFailed(e.into()))?;
                let _ = up_body.flow_control().release_capacity(n);
            }
            Ok(Some(Err(e))) => {
                send.send_reset(e.reason().unwrap_or(h2::Reason::INTERNAL_ERROR));
                return Err(Outcome::BodyFailed(Fault::UpstreamClosed));
            }
            Ok(None) => break,
        }
    }
    match up_body.trailers().await {
        Ok(Some(trailers)) => send
            .send_trailers(trailers)
            .map_err(|_| Outcome::BodyFailed(Fault::ClientGone)),
        Ok(None) => send_all(&mut send, Bytes::new(), true, idle)
            .await
            .map_err(|e| Outcome::BodyFailed(e.into())),
        Err(e) => {
            send.send_reset(e.reason().unwrap_or(h2::Reason::INTERNAL_ERROR));
            Err(Outcome::BodyFailed(Fault::UpstreamClosed))
        }
    }
}

/// Resolves when the client resets the stream (or the connection goes away).
pub(super) fn client_reset(
    respond: &mut SendResponse<Bytes>,
) -> impl std::future::Future<Output = ()> + '_ {
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
