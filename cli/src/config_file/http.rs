//! The HTTP part of the file schema: `[access_log]`, the HTTP keys of `[[cluster]]` and
//! `[[listener]]`, and the listener's routes (each `[[listener.route]]` is `route`'s, its action
//! tables `action`'s, its header conditions and edits `headers`'s). `[listener.h2]` is one of the
//! listener's HTTP keys; `tls` reads its values.
//!
//! Owns: the listener's HTTP settings (limits, timeouts, `trust_forwarded`, `h2`), whether its
//! HTTP keys are allowed at all, and the catch-all route its `cluster` adds (or the error when an
//! HTTP listener has no route). Works like the parent module: every problem is reported into
//! `Ctx` with its key path and position, and a value that is missing or invalid is replaced by a
//! placeholder that passes `Config::validate`, so the backstop does not repeat (at a vaguer
//! position) what was reported here. Cluster references resolve to indices through the parent's
//! `resolve_cluster`. Must not: read a route's keys itself.

use std::path::PathBuf;

use strait_engine::config::http::{defaults, is_field_value, limits as http_limits};
use strait_engine::config::{
    AccessLogConfig, AccessLogFormat, AccessLogTarget, FixedResponse, HeaderEdits, HostMatch,
    HttpListenerConfig, ListenerProtocol, PathMatch, RouteAction, RouteConfig, UpstreamHttpConfig,
};
use toml::de::DeValue;

use super::cursor::{Ctx, Field, Span, TableCursor};
use super::values::{boolean, choice, duration, int_in, size_u64};
use super::NameAt;

mod action;
mod headers;
mod route;

pub(super) use route::host_match;
use route::route;

pub(super) const ACCESS_LOG_KEYS: &[&str] = &["path", "format", "sample"];
/// The keys of `[[listener]]` only http listeners take (`LISTENER_KEYS` lists them too).
pub(super) const LISTENER_HTTP_KEYS: &[&str] = &[
    "route",
    "trust_forwarded",
    "max_request_line",
    "max_header_size",
    "max_headers",
    "max_body_size",
    "header_read_timeout",
    "client_body_timeout",
    "keepalive_timeout",
    "upstream_response_timeout",
    "upstream_body_timeout",
    "h2",
];

/// Content type of `respond` (and `redirect`) answers unless `content_type` says otherwise.
pub(super) const DEFAULT_CONTENT_TYPE: &str = "text/plain; charset=utf-8";

pub(super) fn access_log(ctx: &mut Ctx<'_>, mut t: TableCursor<'_, '_>) -> AccessLogConfig {
    let mut log = AccessLogConfig {
        target: AccessLogTarget::Stdout,
        format: AccessLogFormat::Json,
        sample: 1,
    };
    if let Some(f) = t.require(ctx, "path") {
        if let Some(p) = f.str(ctx, "a string: \"stdout\" or a file path") {
            match p {
                "stdout" => {}
                "" => f.error(
                    ctx,
                    "expected \"stdout\" or a file path, found an empty string",
                ),
                "stderr" => f.error(
                    ctx,
                    "the access log goes to \"stdout\" or a file; write \"./stderr\" for a file \
                     named stderr",
                ),
                _ => log.target = AccessLogTarget::File(PathBuf::from(p)),
            }
        }
    }
    if let Some(f) = t.get(ctx, "format") {
        if let Some(v) = choice(ctx, &f, AccessLogFormat::parse, AccessLogFormat::VALID) {
            log.format = v;
        }
    }
    if let Some(f) = t.get(ctx, "sample") {
        if let Some(n) = int_in(ctx, &f, 1, u32::MAX.into()) {
            log.sample = n as u32;
        }
    }
    t.finish(ctx);
    log
}

/// The HTTP keys of one `[[cluster]]`.
pub(super) fn upstream(
    ctx: &mut Ctx<'_>,
    t: &mut TableCursor<'_, '_>,
    http: &mut UpstreamHttpConfig,
    base: &std::path::Path,
) {
    if let Some(f) = t.get(ctx, "host") {
        if let Some(h) = f.str(ctx, "a host name (a string) such as \"api.internal\"") {
            let ok = !h.is_empty() && is_field_value(h) && !h.contains([' ', '\t', '/']);
            if ok {
                http.host = Some(h.to_owned());
            } else {
                f.error(
                    ctx,
                    format!(
                        "invalid host {h:?}: expected the Host header to send upstream, a host \
                         name with an optional port such as \"api.internal\" or \
                         \"api.internal:8443\" (no scheme, path or spaces)"
                    ),
                );
            }
        }
    }
    if let Some(f) = t.get(ctx, "pool_max_idle") {
        if let Some(n) = int_in(ctx, &f, 0, http_limits::MAX_POOL_IDLE.into()) {
            http.pool_max_idle = n as u32;
        }
    }
    if let Some(f) = t.get(ctx, "pool_idle_timeout") {
        if let Some(d) = duration(ctx, &f, true) {
            http.pool_idle_timeout = d;
        }
    }
    if let Some(f) = t.get(ctx, "max_connections_per_endpoint") {
        if let Some(n) = int_in(ctx, &f, 1, u32::MAX.into()) {
            http.max_connections_per_endpoint = n as u32;
        }
    }
    let protocol = t.get(ctx, "protocol");
    if let Some(f) = &protocol {
        if let Some(p) = super::tls::upstream_protocol(ctx, f) {
            http.protocol = p;
        }
    }
    let tls = t.get(ctx, "tls");
    match (http.protocol, &tls) {
        (strait_engine::config::UpstreamProtocol::H2, Some(f)) => {
            http.tls = super::tls::upstream_tls(ctx, f, base);
        }
        (strait_engine::config::UpstreamProtocol::H2, None) => {
            // Defaults: the system's CAs, SNI from `host` or the endpoint address.
            http.tls = Some(Default::default());
        }
        (strait_engine::config::UpstreamProtocol::H2c, Some(f)) => f.error(
            ctx,
            "h2c is HTTP/2 in clear text: use protocol = \"h2\" for HTTP/2 over TLS (or \
             \"http1\" for HTTP/1.1 over TLS)"
                .to_string(),
        ),
        (_, Some(f)) => http.tls = super::tls::upstream_tls(ctx, f, base),
        (_, None) => {}
    }
}

/// The HTTP-only keys written in one `[[listener]]`, taken from its cursor (so they are never
/// reported unknown) before the protocol decides whether they are allowed.
pub(super) struct HttpKeys<'a, 'i>(Vec<(&'static str, Field<'a, 'i>)>);

impl<'a, 'i> HttpKeys<'a, 'i> {
    pub(super) fn take(ctx: &mut Ctx<'_>, t: &mut TableCursor<'a, 'i>) -> Self {
        HttpKeys(
            LISTENER_HTTP_KEYS
                .iter()
                .filter_map(|&k| t.get(ctx, k).map(|f| (k, f)))
                .collect(),
        )
    }

    fn get(&self, key: &str) -> Option<&Field<'a, 'i>> {
        self.0.iter().find(|(k, _)| *k == key).map(|(_, f)| f)
    }

    /// Whether any HTTP key is written.
    pub(super) fn any(&self) -> bool {
        !self.0.is_empty()
    }

    /// Reports every key written on a tcp or udp listener; `written`: whether the file sets the
    /// protocol (else it is the default).
    pub(super) fn reject(&self, ctx: &mut Ctx<'_>, protocol: ListenerProtocol, written: bool) {
        let default = if written { "" } else { " (the default)" };
        let is = format!("is {:?}{default}", protocol.as_str());
        self.reject_because(ctx, "protocol = \"http\"", &is);
    }

    /// Reports every key written on a sniffing listener that serves no HTTP; `accepts` lists
    /// its protocols (`"tls", "tcp"`).
    pub(super) fn reject_sniffing(&self, ctx: &mut Ctx<'_>, accepts: &str) {
        self.reject_because(
            ctx,
            "HTTP among the listener's `protocols` (\"http1\", \"h2c\", or \"tls\" with \"h2\" \
             or \"http/1.1\" in tls.alpn)",
            &format!("accepts {accepts}"),
        );
    }

    /// `{what} {needs}, and this listener {is}` for every key written.
    fn reject_because(&self, ctx: &mut Ctx<'_>, needs: &str, is: &str) {
        for (key, f) in &self.0 {
            let what = match *key {
                "route" => "routes need",
                "h2" => "HTTP/2 settings need",
                _ => "an HTTP setting; it needs",
            };
            f.error(ctx, format!("{what} {needs}, and this listener {is}"));
        }
    }
}

/// What the `cluster` key of an http listener asks for: a catch-all route after the others.
pub(super) enum CatchAll {
    None,
    /// Written but not resolved (already reported).
    Unresolved,
    Cluster(usize),
}

/// Which listener the HTTP keys belong to, for the checks that depend on it.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Serving {
    /// `protocol = "http"`.
    Http,
    /// A sniffing listener with HTTP among its protocols: its `cluster` is the raw-TCP fallback,
    /// not a catch-all route.
    Sniffing,
    /// The protocol is invalid or incomplete (already reported): no follow-up errors.
    Unknown,
}

/// Builds the HTTP part of a listener from its keys. `listener` is the `[[listener]]` element.
pub(super) fn listener(
    ctx: &mut Ctx<'_>,
    listener: &Field<'_, '_>,
    keys: &HttpKeys<'_, '_>,
    catch_all: CatchAll,
    serving: Serving,
    clusters: &[NameAt],
) -> HttpListenerConfig {
    let mut http = HttpListenerConfig {
        routes: Vec::new(),
        limits: defaults::LIMITS,
        timeouts: defaults::TIMEOUTS,
        trust_forwarded: false,
        h2: strait_engine::config::tls::defaults::H2,
    };
    settings(ctx, keys, &mut http);
    routes_with_catch_all(
        ctx,
        listener,
        keys,
        catch_all,
        serving,
        clusters,
        &mut http.routes,
    );
    http
}

/// `trust_forwarded`, the size limits, `h2` and the timeouts.
fn settings(ctx: &mut Ctx<'_>, keys: &HttpKeys<'_, '_>, http: &mut HttpListenerConfig) {
    if let Some(f) = keys.get("trust_forwarded") {
        if let Some(b) = boolean(ctx, f) {
            http.trust_forwarded = b;
        }
    }
    let head = http_limits::MAX_HEAD_BYTES as u64;
    if let Some(f) = keys.get("max_request_line") {
        let min = http_limits::MIN_REQUEST_LINE as u64;
        if let Some(n) = size_u64(ctx, f, min, head).and_then(|n| usize::try_from(n).ok()) {
            http.limits.max_request_line = n;
        }
    }
    if let Some(f) = keys.get("max_header_size") {
        let min = http_limits::MIN_HEADER_SIZE as u64;
        if let Some(n) = size_u64(ctx, f, min, head).and_then(|n| usize::try_from(n).ok()) {
            http.limits.max_header_size = n;
        }
    }
    if let Some(f) = keys.get("max_headers") {
        if let Some(n) = int_in(ctx, f, 1, http_limits::MAX_HEADERS as i128) {
            http.limits.max_headers = n as usize;
        }
    }
    if let Some(f) = keys.get("max_body_size") {
        if let Some(n) = size_u64(ctx, f, 0, u64::MAX) {
            http.limits.max_body_size = n;
        }
    }
    if let Some(f) = keys.get("h2") {
        http.h2 = super::tls::h2(ctx, f);
    }
    let t = &mut http.timeouts;
    for (key, slot) in [
        ("header_read_timeout", &mut t.header_read),
        ("client_body_timeout", &mut t.client_body),
        ("keepalive_timeout", &mut t.keepalive),
        ("upstream_response_timeout", &mut t.upstream_response),
        ("upstream_body_timeout", &mut t.upstream_body),
    ] {
        if let Some(d) = keys.get(key).and_then(|f| duration(ctx, f, true)) {
            *slot = d;
        }
    }
}

/// The routes as written, then the catch-all route of the listener's `cluster` (or the error
/// when an HTTP listener ends up with no route at all).
fn routes_with_catch_all(
    ctx: &mut Ctx<'_>,
    listener: &Field<'_, '_>,
    keys: &HttpKeys<'_, '_>,
    catch_all: CatchAll,
    serving: Serving,
    clusters: &[NameAt],
    routes: &mut Vec<RouteConfig>,
) {
    // `route` as written, if at all (an empty array or a value of the wrong type included).
    let route_field = keys.get("route");
    let reserved = (!matches!(catch_all, CatchAll::None)).then_some(defaults::ROUTE_NAME);
    if let Some(f) = route_field {
        if let Some(items) = f.elements(ctx, "an array of tables ([[listener.route]])") {
            let mut names: Vec<(String, Span)> = Vec::new();
            for item in &items {
                routes.push(route(ctx, item, &mut names, reserved, clusters));
            }
        }
    }
    let collision = reserved.is_some() && routes.iter().any(|r| r.name == defaults::ROUTE_NAME);
    match catch_all {
        _ if collision => {}
        CatchAll::Cluster(c) => routes.push(defaults::catch_all_route(c)),
        CatchAll::Unresolved => routes.push(placeholder_route(defaults::ROUTE_NAME.into())),
        CatchAll::None if routes.is_empty() => {
            let wrong_type =
                route_field.is_some_and(|f| !matches!(f.value.get_ref(), DeValue::Array(_)));
            let message = match serving {
                Serving::Http => {
                    "an http listener needs at least one [[listener.route]], or a `cluster` to \
                     forward every request to"
                }
                Serving::Sniffing => {
                    "a listener accepting HTTP (\"http1\", \"h2c\", or \"h2\" or \"http/1.1\" by \
                     ALPN inside \"tls\") needs at least one [[listener.route]]; on a listener \
                     with `protocols`, `cluster` only receives raw TCP"
                }
                Serving::Unknown => "",
            };
            if serving == Serving::Unknown {
                routes.push(placeholder_route(defaults::ROUTE_NAME.into()));
            } else if !wrong_type {
                let span = route_field.map_or_else(|| listener.span(), Field::span);
                ctx.error(&span, format!("{}.route", listener.path), message);
            }
        }
        CatchAll::None => {}
    }
}

/// A route that passes validation, standing in for one whose problems were reported.
fn placeholder_route(name: String) -> RouteConfig {
    RouteConfig {
        name,
        host: HostMatch::Any,
        path: PathMatch::Prefix("/".into()),
        methods: Vec::new(),
        headers: Vec::new(),
        action: RouteAction::Respond(FixedResponse {
            status: 404,
            body: String::new(),
            content_type: DEFAULT_CONTENT_TYPE.into(),
            location: None,
        }),
        request_headers: HeaderEdits::default(),
        response_headers: HeaderEdits::default(),
        max_body_size: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listener_http_keys_are_valid_listener_keys() {
        for k in LISTENER_HTTP_KEYS {
            assert!(super::super::listener::LISTENER_KEYS.contains(k), "{k}");
        }
    }
}
