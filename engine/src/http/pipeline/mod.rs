//! The request pipeline: the phases every request goes through, whatever protocol it arrived
//! in, and the per-route list of policies that implement them.
//!
//! The phases are named like Pingora's, in the order they run:
//! 1. `request_filter`: may answer the request itself ([`Filter::Respond`]) or refuse it
//!    ([`Filter::Refuse`] with a [`Fault`]); the listener's policies run first, then the route's;
//! 2. `upstream_peer`: which cluster (a weighted split) and the request's affinity key for keyed
//!    balancers ([`Peer`]);
//! 3. `upstream_request_filter`: the header fields sent upstream ([`HeaderSink`]);
//! 4. `response_filter`: the header fields sent to the client;
//! 5. `logging`: the request is over (status and fault known).
//!
//! Owns: the [`Phases`] trait (every method has a default that does nothing, so a policy
//! implements only its phases), the compiled per-route [`Pipeline`] (built once per core from
//! the configuration: no lock, no `Send`, no allocation per request), and the adapters the head
//! writers use ([`HeaderPolicy`]). Policies read the request through [`RequestView`], so each is
//! written once for HTTP/1.1, h2 and h2c clients. Must not: do IO, hold per-request state, or
//! know the protocol (the client's side of the exchange does).
//!
//! Adding a per-request feature: a new file in `policies/` with a type implementing [`Phases`],
//! and one line in [`Pipeline::for_route`] (or [`Pipeline::for_listener`]) that adds it when its
//! configuration is present (docs/architecture.md, "How to add a per-request feature").

pub(crate) mod policies;
mod sink;
mod view;

use tracing::debug;

pub(crate) use sink::{H1Fields, HeaderSink};
pub(crate) use view::{H1View, H2View, RequestView};

use crate::config::{FixedResponse, HttpListenerConfig, RouteAction, RouteConfig};
use crate::http::fault::Fault;

/// What `request_filter` decided.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Filter<'p> {
    /// On to the next policy, then upstream.
    Continue,
    /// Answer with this response (fixed responses, redirects).
    Respond(&'p FixedResponse),
    /// Refuse with the proxy's own error response.
    Refuse(Fault),
}

/// What `upstream_peer` decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Peer {
    /// Index into the configuration's clusters.
    pub cluster: usize,
    /// The request's affinity key, for keyed balancers (`None`: not keyed).
    pub hash: Option<u64>,
}

/// One policy's part in the phases. Every method defaults to doing nothing.
pub(crate) trait Phases {
    /// For logs and tests.
    fn name(&self) -> &'static str;

    /// `request_filter`.
    fn request_filter(&self, _req: &dyn RequestView) -> Filter<'_> {
        Filter::Continue
    }

    /// `upstream_peer`: may set the cluster and the affinity key.
    fn upstream_peer(&self, _req: &dyn RequestView, _peer: &mut Option<Peer>) {}

    /// Whether `upstream_request_filter` removes or replaces the request's field of that
    /// (lowercase) name (one-pass HTTP/1.1 writers skip it while they copy).
    fn drops_upstream(&self, _name: &[u8]) -> bool {
        false
    }

    /// `upstream_request_filter`: edits the fields sent upstream. Must call `remove` (or `set`)
    /// for every name `drops_upstream` answers true for.
    fn upstream_request_filter(&self, _req: &dyn RequestView, _fields: &mut dyn HeaderSink) {}

    /// True for a policy that implements `upstream_request_filter`: the pipeline skips that
    /// phase (and keeps h2 fields moved rather than copied) when no policy does.
    fn edits_upstream(&self) -> bool {
        false
    }

    /// Whether `response_filter` removes or replaces the response's field of that name.
    fn drops_response(&self, _name: &[u8]) -> bool {
        false
    }

    /// `response_filter`: edits the fields sent to the client (upstream responses and the
    /// route's fixed responses alike).
    fn response_filter(&self, _status: u16, _fields: &mut dyn HeaderSink) {}

    /// `logging`: the request is over.
    fn logging(&self, _status: u16, _fault: Option<Fault>) {}
}

/// The policies of a route (or a listener), in phase order, compiled once per core.
pub(crate) struct Pipeline {
    policies: Vec<Box<dyn Phases>>,
    /// Some policy implements `upstream_request_filter`.
    edits_upstream: bool,
    /// The largest request body the route accepts (streamed bodies are counted against it as
    /// they arrive; a declared length is refused by `request_filter` before any upstream).
    pub max_body: u64,
}

impl Pipeline {
    /// The listener's own policies, run before any route's (and for requests no route matched).
    pub(crate) fn for_listener(listener: &HttpListenerConfig) -> Pipeline {
        Pipeline::new(
            vec![Box::new(policies::RefuseConnect)],
            listener.limits.max_body_size,
        )
    }

    /// A route's policies. `core` seeds the per-core state of policies that keep some (the
    /// weighted split's picker starts at a different cluster on each core).
    pub(crate) fn for_route(
        route: &RouteConfig,
        listener: &HttpListenerConfig,
        core: usize,
    ) -> Pipeline {
        let max_body = route.max_body_size.unwrap_or(listener.limits.max_body_size);
        let mut list: Vec<Box<dyn Phases>> = vec![Box::new(policies::BodyLimit(max_body))];
        match &route.action {
            RouteAction::Respond(fixed) => list.push(Box::new(policies::Respond(fixed.clone()))),
            RouteAction::Forward(f) => {
                list.push(Box::new(policies::ClusterChoice::new(&f.clusters, core)))
            }
        }
        if !route.request_headers.is_empty() || !route.response_headers.is_empty() {
            list.push(Box::new(policies::HeaderEditsPolicy {
                request: route.request_headers.clone(),
                response: route.response_headers.clone(),
            }));
        }
        Pipeline::new(list, max_body)
    }

    pub(crate) fn new(policies: Vec<Box<dyn Phases>>, max_body: u64) -> Pipeline {
        Pipeline {
            edits_upstream: policies.iter().any(|p| p.edits_upstream()),
            policies,
            max_body,
        }
    }

    /// Whether `upstream_request_filter` does anything for this route.
    pub(crate) fn edits_upstream(&self) -> bool {
        self.edits_upstream
    }

    /// `request_filter`: the first policy that answers or refuses decides.
    pub(crate) fn request_filter(&self, req: &dyn RequestView) -> Filter<'_> {
        for p in &self.policies {
            match p.request_filter(req) {
                Filter::Continue => {}
                decided => {
                    if let Filter::Refuse(fault) = decided {
                        debug!(
                            policy = p.name(),
                            error = fault.log_name(),
                            "request refused"
                        );
                    }
                    return decided;
                }
            }
        }
        Filter::Continue
    }

    /// `upstream_peer`: `None` when no policy chose a cluster (a route that answers itself).
    pub(crate) fn upstream_peer(&self, req: &dyn RequestView) -> Option<Peer> {
        let mut peer = None;
        for p in &self.policies {
            p.upstream_peer(req, &mut peer);
        }
        peer
    }

    /// The `upstream_request_filter` phase as the head writers take it.
    pub(crate) fn upstream_fields<'p>(&'p self, req: &'p dyn RequestView) -> UpstreamFields<'p> {
        UpstreamFields {
            pipeline: self,
            req,
        }
    }

    /// The `response_filter` phase as the head writers take it.
    pub(crate) fn response_fields(&self, status: u16) -> ResponseFields<'_> {
        ResponseFields {
            pipeline: self,
            status,
        }
    }

    /// `logging`.
    pub(crate) fn logging(&self, status: u16, fault: Option<Fault>) {
        for p in &self.policies {
            p.logging(status, fault);
        }
    }

    #[cfg(test)]
    pub(crate) fn names(&self) -> Vec<&'static str> {
        self.policies.iter().map(|p| p.name()).collect()
    }
}

/// Header edits as a head writer applies them: which of the message's own fields to skip, and
/// what to write (removals included, for writers that edit in place).
pub(crate) trait HeaderPolicy {
    fn drops(&self, name: &[u8]) -> bool;
    fn write(&self, fields: &mut dyn HeaderSink);
}

/// A route's `upstream_request_filter` for one request.
pub(crate) struct UpstreamFields<'p> {
    pipeline: &'p Pipeline,
    req: &'p dyn RequestView,
}

impl HeaderPolicy for UpstreamFields<'_> {
    fn drops(&self, name: &[u8]) -> bool {
        self.pipeline.edits_upstream
            && self
                .pipeline
                .policies
                .iter()
                .any(|p| p.drops_upstream(name))
    }

    fn write(&self, fields: &mut dyn HeaderSink) {
        if !self.pipeline.edits_upstream {
            return;
        }
        for p in &self.pipeline.policies {
            p.upstream_request_filter(self.req, fields);
        }
    }
}

/// A route's `response_filter` for one response.
pub(crate) struct ResponseFields<'p> {
    pipeline: &'p Pipeline,
    status: u16,
}

impl HeaderPolicy for ResponseFields<'_> {
    fn drops(&self, name: &[u8]) -> bool {
        self.pipeline
            .policies
            .iter()
            .any(|p| p.drops_response(name))
    }

    fn write(&self, fields: &mut dyn HeaderSink) {
        for p in &self.pipeline.policies {
            p.response_filter(self.status, fields);
        }
    }
}

#[cfg(test)]
mod tests;
