//! The HTTP part of the validated configuration snapshot: per-listener routes, limits, timeouts
//! and forwarding policy; per-cluster upstream settings; the access log.
//!
//! Owns: the typed model of an HTTP listener and the checks on it ([`check_listener`]), and the
//! defaults both the TOML loader and the quick CLI form use ([`defaults`]).
//! Must not: parse files or match requests. Routes are compiled into lookup structures by the
//! engine's `http::route` at start-up; this module only describes them.

use std::path::PathBuf;
use std::time::Duration;

/// One HTTP listener's behaviour (the listener's address, name and backlog are on
/// [`ListenerConfig`](super::ListenerConfig)).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpListenerConfig {
    /// Tried by the precedence documented in docs/config.md (host group, then path, then file
    /// order); at least one. A request no route matches is answered 404.
    pub routes: Vec<RouteConfig>,
    pub limits: HttpLimits,
    pub timeouts: HttpTimeouts,
    /// Keep X-Forwarded-For/-Proto/-Host sent by clients and append to them (only behind a trusted
    /// load balancer), or drop them and write our own (the default).
    pub trust_forwarded: bool,
    /// Downstream HTTP/2 (h2 over TLS and h2c).
    pub h2: super::H2Settings,
}

/// Size limits for requests on one listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpLimits {
    /// Longest request line; exceeding it answers 414.
    pub max_request_line: usize,
    /// Largest header block after the request line; exceeding it answers 431.
    pub max_header_size: usize,
    /// Most header fields; one more answers 431.
    pub max_headers: usize,
    /// Largest request body, unless the route sets its own; exceeding it answers 413.
    pub max_body_size: u64,
}

/// Timeouts of one HTTP listener's connections, client and upstream side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpTimeouts {
    /// From the first byte of a request until its head is complete (slowloris defence); 408.
    pub header_read: Duration,
    /// Longest pause while reading a request body from the client; 408.
    pub client_body: Duration,
    /// A keep-alive client connection with no request in progress is closed after this long.
    pub keepalive: Duration,
    /// From the request being sent until the upstream's response head is complete; 504.
    pub upstream_response: Duration,
    /// Longest pause while reading a response body from the upstream (or writing a request
    /// body to it, or a response body to the client).
    pub upstream_body: Duration,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteConfig {
    /// Unique within the listener; the `route` label in metrics and logs.
    pub name: String,
    pub host: HostMatch,
    pub path: PathMatch,
    /// Method tokens (case-sensitive, as RFC 9110 §9.1 says); empty matches any method.
    pub methods: Vec<String>,
    /// Every one must match.
    pub headers: Vec<HeaderMatch>,
    pub action: RouteAction,
    /// Applied to the request sent upstream, after the hop-by-hop headers are removed.
    pub request_headers: HeaderEdits,
    /// Applied to the response sent to the client.
    pub response_headers: HeaderEdits,
    /// Overrides the listener's `max_body_size`.
    pub max_body_size: Option<u64>,
}

/// Which Host (or absolute-form authority) a route accepts; compared case-insensitively,
/// without the port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostMatch {
    Any,
    /// Lowercase host name or IP literal.
    Exact(String),
    /// `*.example.com` is stored as `.example.com`: it matches `a.example.com` and
    /// `a.b.example.com`, not `example.com`.
    Suffix(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathMatch {
    /// The path (before `?`) starts with this, on a segment boundary when it does not end in `/`:
    /// `/api` matches `/api`, `/api/x` and `/api?q`, not `/apix`.
    Prefix(String),
    /// The path (before `?`) is exactly this.
    Exact(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeaderMatch {
    /// Lowercase field name.
    pub name: String,
    /// The first field of that name must have exactly this value; `None`: it must be present.
    pub value: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteAction {
    Forward(ForwardAction),
    Respond(FixedResponse),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForwardAction {
    /// One entry, or several for a weighted split (canary); smooth weighted round robin per core.
    pub clusters: Vec<WeightedCluster>,
    /// Rewrites the start of the path sent upstream.
    pub rewrite: Option<PrefixRewrite>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WeightedCluster {
    /// Index into [`Config::clusters`](super::Config).
    pub cluster: usize,
    pub weight: u32,
}

/// `strip_prefix = "/api"` is `{ from: "/api", to: "" }`; `rewrite_prefix = "/v2"` on a route
/// with `path_prefix = "/api"` is `{ from: "/api", to: "/v2" }`. A path left empty becomes `/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrefixRewrite {
    pub from: String,
    pub to: String,
}

/// A response Strait writes itself (e.g. 404 pages, redirects, health answers).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FixedResponse {
    pub status: u16,
    pub body: String,
    pub content_type: String,
    /// For redirects (3xx).
    pub location: Option<String>,
}

/// Header edits, applied in the order remove, set (replace all fields of that name), add.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HeaderEdits {
    /// Lowercase names.
    pub remove: Vec<String>,
    pub set: Vec<(String, String)>,
    pub add: Vec<(String, String)>,
}

impl HeaderEdits {
    /// No edits.
    pub const EMPTY: HeaderEdits = HeaderEdits {
        remove: Vec::new(),
        set: Vec::new(),
        add: Vec::new(),
    };

    pub fn is_empty(&self) -> bool {
        self.remove.is_empty() && self.set.is_empty() && self.add.is_empty()
    }

    /// Whether a field of this (lowercase) name from the message must be dropped because it is
    /// removed or replaced.
    pub fn drops(&self, name: &[u8]) -> bool {
        self.remove
            .iter()
            .map(String::as_bytes)
            .chain(self.set.iter().map(|(n, _)| n.as_bytes()))
            .any(|n| n.eq_ignore_ascii_case(name))
    }
}

/// Per-cluster HTTP settings (ignored by TCP and UDP listeners).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamHttpConfig {
    /// Host header sent upstream; `None` passes the client's through.
    pub host: Option<String>,
    /// Idle keep-alive connections kept per endpoint per core.
    pub pool_max_idle: u32,
    /// An idle pooled connection older than this is closed, not reused.
    pub pool_idle_timeout: Duration,
    /// Connections (busy and idle) per endpoint per core; a request that would need one more is
    /// answered 503.
    pub max_connections_per_endpoint: u32,
    /// HTTP version spoken to the endpoints.
    pub protocol: super::UpstreamProtocol,
    /// TLS to the endpoints: always with `H2`, optional with `Http1` (HTTPS upstreams), never
    /// with `H2c`.
    pub tls: Option<super::UpstreamTlsConfig>,
}

impl Default for UpstreamHttpConfig {
    fn default() -> Self {
        UpstreamHttpConfig {
            host: None,
            pool_max_idle: defaults::POOL_MAX_IDLE,
            pool_idle_timeout: defaults::POOL_IDLE_TIMEOUT,
            max_connections_per_endpoint: defaults::MAX_CONNECTIONS_PER_ENDPOINT,
            protocol: super::UpstreamProtocol::Http1,
            tls: None,
        }
    }
}

/// Where and how the access log is written (one per process; every HTTP listener logs to it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessLogConfig {
    pub target: AccessLogTarget,
    pub format: AccessLogFormat,
    /// Log one in `sample` requests answered 1xx–3xx; 4xx and 5xx are always logged. 1 logs all.
    pub sample: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccessLogTarget {
    Stdout,
    /// Appended to; created if missing.
    File(PathBuf),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccessLogFormat {
    /// One JSON object per line.
    Json,
    /// NGINX/Apache "combined" plus request id, upstream and times.
    Combined,
}

impl AccessLogFormat {
    pub const VALID: &'static str = "\"json\" or \"combined\"";

    pub fn parse(s: &str) -> Option<AccessLogFormat> {
        match s {
            "json" => Some(AccessLogFormat::Json),
            "combined" => Some(AccessLogFormat::Combined),
            _ => None,
        }
    }
}

/// Defaults shared by the TOML loader, the quick CLI form and the demo.
pub mod defaults {
    use std::time::Duration;

    use super::{HttpLimits, HttpTimeouts};

    pub const LIMITS: HttpLimits = HttpLimits {
        max_request_line: 8 * 1024,
        max_header_size: 16 * 1024,
        max_headers: 100,
        max_body_size: 64 * 1024 * 1024,
    };
    pub const TIMEOUTS: HttpTimeouts = HttpTimeouts {
        header_read: Duration::from_secs(10),
        client_body: Duration::from_secs(30),
        keepalive: Duration::from_secs(60),
        upstream_response: Duration::from_secs(60),
        upstream_body: Duration::from_secs(60),
    };
    pub const POOL_MAX_IDLE: u32 = 64;
    pub const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(30);
    pub const MAX_CONNECTIONS_PER_ENDPOINT: u32 = 4096;
    pub const ROUTE_NAME: &str = "default";

    /// An HTTP listener with default limits and timeouts whose one route forwards everything to
    /// `cluster` (the quick CLI form, and `cluster = ...` on an http listener in a file).
    pub fn catch_all(cluster: usize) -> super::HttpListenerConfig {
        super::HttpListenerConfig {
            routes: vec![catch_all_route(cluster)],
            limits: LIMITS,
            timeouts: TIMEOUTS,
            trust_forwarded: false,
            h2: crate::config::tls::defaults::H2,
        }
    }

    /// The route named [`ROUTE_NAME`] matching every request and forwarding it to `cluster`.
    pub fn catch_all_route(cluster: usize) -> super::RouteConfig {
        use super::*;
        RouteConfig {
            name: ROUTE_NAME.into(),
            host: HostMatch::Any,
            path: PathMatch::Prefix("/".into()),
            methods: Vec::new(),
            headers: Vec::new(),
            action: RouteAction::Forward(ForwardAction {
                clusters: vec![WeightedCluster { cluster, weight: 1 }],
                rewrite: None,
            }),
            request_headers: HeaderEdits::default(),
            response_headers: HeaderEdits::default(),
            max_body_size: None,
        }
    }
}

/// Bounds the validator enforces (the TOML loader quotes them).
pub mod limits {
    pub const MIN_REQUEST_LINE: usize = 64;
    pub const MIN_HEADER_SIZE: usize = 256;
    /// Heads are held in one per-connection buffer; past this a hostile client costs too much.
    pub const MAX_HEAD_BYTES: usize = 1024 * 1024;
    pub const MAX_HEADERS: usize = strait_protocols::http1::MAX_HEADERS_CAPACITY;
    pub const MAX_ROUTES: usize = 4096;
    pub const MAX_POOL_IDLE: u32 = 100_000;
}

/// A field name: an RFC 9110 token.
pub fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// A field value Strait may write: visible ASCII, spaces and tabs, no surrounding whitespace.
pub fn is_field_value(s: &str) -> bool {
    s.bytes().all(|b| b == b'\t' || (b' '..=b'~').contains(&b))
        && !s.starts_with([' ', '\t'])
        && !s.ends_with([' ', '\t'])
}

/// Header names a route may not edit: the proxy owns the message framing and connection
/// management, and Host has its own cluster setting.
pub fn is_reserved_header(name: &str) -> bool {
    const RESERVED: &[&str] = &[
        "connection",
        "content-length",
        "transfer-encoding",
        "keep-alive",
        "upgrade",
        "te",
        "trailer",
        "host",
        "proxy-connection",
    ];
    RESERVED.iter().any(|r| r.eq_ignore_ascii_case(name))
}

/// Checks one HTTP listener; `path` is the listener's key path (`listener[0]`).
pub(super) fn check_listener(
    http: &HttpListenerConfig,
    path: &str,
    clusters: usize,
    issue: &mut dyn FnMut(String, String),
) {
    let l = &http.limits;
    if !(limits::MIN_REQUEST_LINE..=limits::MAX_HEAD_BYTES).contains(&l.max_request_line) {
        issue(
            format!("{path}.max_request_line"),
            format!(
                "must be between {} and {} bytes",
                limits::MIN_REQUEST_LINE,
                limits::MAX_HEAD_BYTES
            ),
        );
    }
    if !(limits::MIN_HEADER_SIZE..=limits::MAX_HEAD_BYTES).contains(&l.max_header_size) {
        issue(
            format!("{path}.max_header_size"),
            format!(
                "must be between {} and {} bytes",
                limits::MIN_HEADER_SIZE,
                limits::MAX_HEAD_BYTES
            ),
        );
    }
    if l.max_headers == 0 || l.max_headers > limits::MAX_HEADERS {
        issue(
            format!("{path}.max_headers"),
            format!("must be between 1 and {}", limits::MAX_HEADERS),
        );
    }
    let t = &http.timeouts;
    for (key, d) in [
        ("header_read_timeout", t.header_read),
        ("client_body_timeout", t.client_body),
        ("keepalive_timeout", t.keepalive),
        ("upstream_response_timeout", t.upstream_response),
        ("upstream_body_timeout", t.upstream_body),
    ] {
        if d.is_zero() {
            issue(format!("{path}.{key}"), "must be greater than 0".into());
        }
    }
    if http.routes.is_empty() {
        issue(
            format!("{path}.route"),
            "an http listener needs at least one [[listener.route]] or a `cluster`".into(),
        );
    }
    if http.routes.len() > limits::MAX_ROUTES {
        issue(
            format!("{path}.route"),
            format!("at most {} routes per listener", limits::MAX_ROUTES),
        );
    }
    for (i, r) in http.routes.iter().enumerate() {
        let rp = format!("{path}.route[{i}]");
        if let Err(e) = super::check_name(&r.name) {
            issue(format!("{rp}.name"), e);
        }
        if http.routes[..i].iter().any(|o| o.name == r.name) {
            issue(
                format!("{rp}.name"),
                format!("duplicate route name {:?}", r.name),
            );
        }
        check_route(r, &rp, clusters, issue);
    }
}

fn check_route(r: &RouteConfig, rp: &str, clusters: usize, issue: &mut dyn FnMut(String, String)) {
    match &r.host {
        HostMatch::Any => {}
        HostMatch::Exact(h) | HostMatch::Suffix(h) => {
            let name = h.strip_prefix('.').unwrap_or(h);
            let ok = !name.is_empty()
                && h.len() <= 253
                && name.bytes().all(|b| {
                    b.is_ascii_lowercase() || b.is_ascii_digit() || b"-.:[]_".contains(&b)
                });
            if !ok {
                issue(
                    format!("{rp}.host"),
                    format!("invalid host {h:?}: expected a lowercase name such as \"api.example.com\" or \"*.example.com\""),
                );
            }
        }
    }
    let p = match &r.path {
        PathMatch::Prefix(p) | PathMatch::Exact(p) => p,
    };
    if !p.starts_with('/') || p.bytes().any(|b| !(b'!'..=b'~').contains(&b)) {
        issue(
            format!("{rp}.path"),
            format!("invalid path {p:?}: must start with \"/\" and hold no spaces or control characters"),
        );
    }
    for m in &r.methods {
        if !is_token(m) {
            issue(format!("{rp}.methods"), format!("invalid method {m:?}"));
        }
    }
    for h in &r.headers {
        if !is_token(&h.name) {
            issue(
                format!("{rp}.headers"),
                format!("invalid header name {:?}", h.name),
            );
        }
        if let Some(v) = &h.value {
            if !is_field_value(v) {
                issue(
                    format!("{rp}.headers"),
                    format!("invalid header value {v:?}"),
                );
            }
        }
    }
    for (key, edits) in [
        ("request_headers", &r.request_headers),
        ("response_headers", &r.response_headers),
    ] {
        let names = edits
            .remove
            .iter()
            .chain(edits.set.iter().map(|(n, _)| n))
            .chain(edits.add.iter().map(|(n, _)| n));
        for n in names {
            if !is_token(n) {
                issue(format!("{rp}.{key}"), format!("invalid header name {n:?}"));
            } else if is_reserved_header(n) {
                issue(
                    format!("{rp}.{key}"),
                    format!("{n:?} is managed by the proxy and cannot be edited (for Host use the cluster's `host`)"),
                );
            }
        }
        for (n, v) in edits.set.iter().chain(edits.add.iter()) {
            if !is_field_value(v) {
                issue(
                    format!("{rp}.{key}"),
                    format!("invalid value for {n:?}: {v:?} (visible ASCII only)"),
                );
            }
        }
    }
    match &r.action {
        RouteAction::Forward(f) => {
            if f.clusters.is_empty() {
                issue(
                    format!("{rp}.cluster"),
                    "a route needs a cluster, clusters, respond or redirect".into(),
                );
            }
            for (j, w) in f.clusters.iter().enumerate() {
                if w.cluster >= clusters {
                    issue(format!("{rp}.clusters[{j}]"), "refers to no cluster".into());
                }
                if w.weight == 0 || w.weight > super::limits::MAX_WEIGHT {
                    issue(
                        format!("{rp}.clusters[{j}].weight"),
                        format!("must be between 1 and {}", super::limits::MAX_WEIGHT),
                    );
                }
            }
            if let Some(rw) = &f.rewrite {
                if !rw.to.is_empty() && !rw.to.starts_with('/') {
                    issue(
                        format!("{rp}.rewrite_prefix"),
                        format!("{:?} must start with \"/\"", rw.to),
                    );
                }
                if rw.to.bytes().any(|b| !(b'!'..=b'~').contains(&b)) {
                    issue(
                        format!("{rp}.rewrite_prefix"),
                        "must hold no spaces or control characters".into(),
                    );
                }
            }
        }
        RouteAction::Respond(fixed) => {
            if !(200..=599).contains(&fixed.status) {
                issue(
                    format!("{rp}.respond.status"),
                    "must be between 200 and 599".into(),
                );
            }
            if let Some(loc) = &fixed.location {
                if !(300..=399).contains(&fixed.status) || !is_field_value(loc) || loc.is_empty() {
                    issue(
                        format!("{rp}.redirect"),
                        "a redirect needs a 3xx status and a location of visible ASCII".into(),
                    );
                }
            }
            if !is_field_value(&fixed.content_type) {
                issue(
                    format!("{rp}.respond.content_type"),
                    "must be visible ASCII".into(),
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_and_values() {
        assert!(is_token("x-request-id"));
        assert!(!is_token("x request"));
        assert!(!is_token(""));
        assert!(is_field_value("a b\tc"));
        assert!(!is_field_value("a\r\nb"));
        assert!(!is_field_value(" lead"));
        assert!(is_reserved_header("Content-Length"));
        assert!(!is_reserved_header("x-env"));
    }

    #[test]
    fn edits_drop_removed_and_replaced_names() {
        let e = HeaderEdits {
            remove: vec!["x-a".into()],
            set: vec![("x-b".into(), "1".into())],
            add: vec![("x-c".into(), "1".into())],
        };
        assert!(e.drops(b"X-A"));
        assert!(e.drops(b"x-b"));
        assert!(!e.drops(b"x-c"));
    }
}
