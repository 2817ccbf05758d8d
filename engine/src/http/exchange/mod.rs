//! The one upstream exchange: everything between "this request goes to that cluster" and "the
//! response head is in", for every pair of client protocol (HTTP/1.1, h2, h2c) and upstream
//! protocol (HTTP/1.1 clear or TLS, h2c, h2).
//!
//! Owns, once for all pairs: endpoint choice (the cluster's balancer with the request's
//! [`PickContext`](strait_balancer::PickContext) and failover), the admission step, the
//! connection of each attempt ([`acquire`]: a pooled HTTP/1.1 connection or a stream on a
//! multiplexed h2 one), the response-head deadline, reading an HTTP/1.1 head and awaiting an h2
//! one, the classification of what went wrong into one [`Symptom`] and one [`Fault`], the retry
//! decision ([`retry`]), and one outcome report per attempt (counters and the upstream latency
//! histogram; passive health checks plug in here).
//!
//! What differs per pair is only the conversion: how a request is written to an upstream of one
//! protocol from a client of another, and how the response is relayed back. A client protocol
//! implements [`Downstream`] (`via_h1`, `via_h2`: one attempt on a connection of that protocol);
//! [`Exchange::run`] drives the attempts. Must not: parse HTTP (the codec does), build heads
//! (`head.rs`, `h2/fields.rs`), or hold a `RefCell` borrow across an `.await`.

mod acquire;
pub(crate) mod response_head;
pub(crate) mod retry;

use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

use strait_balancer::TriedSet;
use strait_protocols::http1::Limits;

pub(crate) use acquire::{H1Attempt, H2Attempt};
pub(crate) use retry::RequestFacts;

use super::fault::Fault;
use super::pipeline::Peer;
use super::pool::Reuse;
use crate::config::UpstreamProtocol;
use crate::context::CoreContext;

/// What went wrong in one attempt, before anything of a response reached the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Symptom {
    /// Writing the request upstream failed, and no answer came.
    SendFailed,
    /// The connection or stream ended (closed, reset) before any byte of a response.
    ClosedBeforeHead,
    /// The upstream said the request was not processed (h2 `REFUSED_STREAM`, a GOAWAY past our
    /// stream).
    Refused,
    /// Part of a head and then the end, or a malformed head.
    InvalidHead,
    /// No head within the deadline.
    HeadTimeout,
    /// The client side failed during the attempt (its body too large, too slow or malformed; the
    /// client gone).
    Client(Fault),
}

/// A failed attempt, as a [`Downstream`] reports it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Failure {
    pub symptom: Symptom,
    /// The attempt's connection had carried earlier requests.
    pub reused: bool,
}

/// A client protocol's side of the exchange: one attempt over a connection of each upstream
/// protocol. An attempt either relays a response (`Ok`, whatever happens to its body) or fails
/// before anything reached the client (`Err`). It gives its connection back through
/// [`Exchange::release`] or [`Exchange::discard`] (h1), or drops its stream slot (h2).
pub(crate) trait Downstream {
    /// What a relayed response leaves behind (the HTTP/1.1 connection's next step).
    type Done;

    async fn via_h1(
        &mut self,
        ex: &mut Exchange<'_>,
        attempt: H1Attempt,
    ) -> Result<Self::Done, Failure>;

    async fn via_h2(
        &mut self,
        ex: &mut Exchange<'_>,
        attempt: H2Attempt,
    ) -> Result<Self::Done, Failure>;
}

/// One request's way to one cluster: its attempts, their accounting and their latency.
pub(crate) struct Exchange<'a> {
    pub ctx: &'a Rc<CoreContext>,
    pub cluster: usize,
    request: RequestFacts,
    /// The request's affinity key for keyed balancers.
    hash: Option<u64>,
    /// How long each attempt may wait for its response head.
    head_wait: Duration,
    /// An absolute end (a gRPC request's `grpc-timeout`): no attempt waits past it.
    deadline: Option<Instant>,
    /// Codec limits applied to HTTP/1.1 upstream responses (the listener's).
    pub limits: Limits,
    tried: TriedSet,
    retried: bool,
    /// The endpoint of the latest attempt (for the access log).
    pub upstream: Option<SocketAddr>,
    /// From the request sent to its response head, for the access log.
    pub upstream_micros: Option<u64>,
    sent_at: Instant,
}

/// What an exchange leaves for the access log.
pub(crate) struct Ran<T> {
    pub result: Result<T, Fault>,
    /// The endpoint of the last attempt.
    pub upstream: Option<SocketAddr>,
    /// From the request sent to its response head.
    pub upstream_micros: Option<u64>,
}

/// The connection of one attempt.
enum Connection {
    H1(H1Attempt),
    H2(H2Attempt),
}

impl<'a> Exchange<'a> {
    /// An exchange with the cluster and affinity key the `upstream_peer` phase chose.
    pub(crate) fn new(
        ctx: &'a Rc<CoreContext>,
        peer: Peer,
        request: RequestFacts,
        head_wait: Duration,
        deadline: Option<Instant>,
        limits: Limits,
    ) -> Self {
        Exchange {
            ctx,
            cluster: peer.cluster,
            request,
            hash: peer.hash,
            head_wait,
            deadline,
            limits,
            tried: TriedSet::new(),
            retried: false,
            upstream: None,
            upstream_micros: None,
            sent_at: Instant::now(),
        }
    }

    /// Runs attempts until one relays a response, or says which fault to answer instead. Takes
    /// the exchange and the client's side by value, so that a caller boxing this future keeps
    /// all of the exchange's state out of its connection's task.
    pub(crate) async fn run<D: Downstream>(mut self, mut d: D) -> Ran<D::Done> {
        let result = self.attempts(&mut d).await;
        Ran {
            result,
            upstream: self.upstream,
            upstream_micros: self.upstream_micros,
        }
    }

    async fn attempts<D: Downstream>(&mut self, d: &mut D) -> Result<D::Done, Fault> {
        self.ctx.stats.cluster_http[self.cluster].requests.inc();
        self.admit()?;
        loop {
            let result = match self.connect().await? {
                Connection::H1(a) => d.via_h1(self, a).await,
                Connection::H2(a) => d.via_h2(self, a).await,
            };
            match result {
                Ok(done) => return Ok(done),
                Err(failure) => self.failed(failure)?,
            }
        }
    }

    /// The admission step: whether this cluster takes the request now (circuit breakers and
    /// overload protection plug in here). Today: no new WebSocket tunnel on a draining core (it
    /// would be cut at the drain deadline; the client retries on the next process).
    fn admit(&self) -> Result<(), Fault> {
        if self.request.upgrade && self.ctx.draining.get() {
            return Err(Fault::Draining);
        }
        Ok(())
    }

    /// Endpoint choice and the connection, with failover over endpoints.
    async fn connect(&mut self) -> Result<Connection, Fault> {
        let ctx = self.ctx;
        let got = match ctx.config.clusters[self.cluster].http.protocol {
            UpstreamProtocol::Http1 => {
                // A retry or an upgrade always gets a new connection.
                let reuse = if self.retried || self.request.upgrade {
                    Reuse::Never
                } else {
                    Reuse::Pooled
                };
                acquire::h1(ctx, self.cluster, self.hash, &mut self.tried, reuse)
                    .await
                    .map(Connection::H1)
            }
            // Boxed: the h2 connect and handshake state is large, and only requests to h2
            // clusters should carry it in their task.
            UpstreamProtocol::H2c | UpstreamProtocol::H2 => {
                Box::pin(acquire::h2(ctx, self.cluster, self.hash, &mut self.tried))
                    .await
                    .map(Connection::H2)
            }
        };
        let endpoint = match &got {
            Ok(Connection::H1(a)) => a.endpoint,
            Ok(Connection::H2(a)) => a.endpoint,
            Err(acquire::Unavailable::Full) => {
                ctx.stats.cluster_http[self.cluster].pool_full.inc();
                return Err(Fault::PoolFull);
            }
            Err(acquire::Unavailable::Failed) => {
                ctx.stats.clusters[self.cluster].unavailable.inc();
                return Err(Fault::ConnectFailed);
            }
        };
        self.upstream = Some(ctx.config.clusters[self.cluster].endpoints[endpoint].address);
        self.sent_at = Instant::now();
        got.map_err(|_| Fault::ConnectFailed)
    }

    /// The attempt's response head arrived: its outcome report.
    pub(crate) fn answered(&mut self) {
        self.answered_at(Instant::now());
    }

    /// The attempt's response head arrived at `at`.
    pub(crate) fn answered_at(&mut self, at: Instant) {
        let micros = at.saturating_duration_since(self.sent_at).as_micros() as u64;
        self.upstream_micros = Some(micros);
        if let Ok(mut h) = self.ctx.histograms.try_borrow_mut() {
            if let Some(h) = h.upstream_micros.get_mut(self.cluster) {
                h.saturating_record(micros.max(1));
            }
        }
    }

    /// A failed attempt's outcome report and the retry decision: `Ok` to try again, else the
    /// fault to answer.
    fn failed(&mut self, failure: Failure) -> Result<(), Fault> {
        let counters = &self.ctx.stats.cluster_http[self.cluster];
        if retry::allows(&self.request, &failure, self.retried) {
            self.retried = true;
            counters.retries.inc();
            return Ok(());
        }
        Err(self.classify(failure.symptom))
    }

    /// The fault a symptom is answered with, and the cluster counter it moves (the route
    /// counter moves where the fault is answered, [`Fault::count`]).
    pub(crate) fn classify(&self, symptom: Symptom) -> Fault {
        let counters = &self.ctx.stats.cluster_http[self.cluster];
        match symptom {
            Symptom::HeadTimeout => {
                counters.upstream_timeouts.inc();
                Fault::UpstreamTimeout
            }
            Symptom::InvalidHead => {
                counters.upstream_protocol_errors.inc();
                Fault::UpstreamProtocol
            }
            Symptom::SendFailed | Symptom::ClosedBeforeHead | Symptom::Refused => {
                counters.upstream_protocol_errors.inc();
                Fault::UpstreamClosed
            }
            Symptom::Client(fault) => fault,
        }
    }

    /// A response that failed after its head went to the client: counted on the cluster (the
    /// route counts it where the fault is recorded).
    pub(crate) fn body_failed(&self, fault: Fault) {
        let c = &self.ctx.stats.cluster_http[self.cluster];
        match fault {
            Fault::UpstreamTimeout => c.upstream_timeouts.inc(),
            Fault::ClientGone => {}
            _ => c.upstream_protocol_errors.inc(),
        }
    }

    /// How long the current attempt may still wait for its response head.
    pub(crate) fn head_wait(&self) -> Duration {
        let wait = self.head_wait;
        match self.deadline {
            Some(d) => d.saturating_duration_since(Instant::now()).min(wait),
            None => wait,
        }
    }

    /// Whether a failure of this attempt could still be retried (see [`retry::may_follow`]).
    pub(crate) fn may_retry(&self) -> bool {
        retry::may_follow(&self.request, self.retried)
    }

    /// The request goes out now (the upstream latency is measured from here).
    pub(crate) fn sending(&mut self) {
        self.sent_at = Instant::now();
    }

    /// An HTTP/1.1 connection whose response was read to its end and that may carry another
    /// request goes back to the pool (unless the core is draining); any other is discarded.
    pub(crate) fn release(&self, attempt: H1Attempt, reusable: bool) {
        if reusable && !self.ctx.draining.get() {
            let H1Attempt { conn, endpoint, .. } = attempt;
            self.ctx
                .http
                .pools
                .borrow_mut()
                .checkin(self.cluster, endpoint, conn, Instant::now());
        } else {
            self.discard(attempt);
        }
    }

    /// Closes an attempt's HTTP/1.1 connection with a reset (it must not carry another request).
    pub(crate) fn discard(&self, attempt: H1Attempt) {
        let H1Attempt { conn, endpoint, .. } = attempt;
        self.ctx
            .http
            .pools
            .borrow_mut()
            .discard(self.cluster, endpoint, conn);
    }

    /// Bytes found after a complete response: the connection is out of step.
    pub(crate) fn out_of_step(&self) {
        self.ctx.stats.cluster_http[self.cluster]
            .upstream_protocol_errors
            .inc();
    }
}
