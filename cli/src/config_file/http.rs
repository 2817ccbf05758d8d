//! The HTTP part of the file schema: `[access_log]`, the HTTP keys of `[[cluster]]` and
//! `[[listener]]`, and `[[listener.route]]` with its conditions, action, rewrite and header edits.
//! `[listener.h2]` is one of the listener's HTTP keys; `tls` reads its values.
//!
//! Works like the parent module: every problem is reported into `Ctx` with its key path and
//! position, and a value that is missing or invalid is replaced by a placeholder that passes
//! `Config::validate`, so the backstop does not repeat (at a vaguer position) what was reported
//! here. Cluster references resolve to indices through the parent's `resolve_cluster`.

use std::path::PathBuf;

use strait_engine::config::http::{
    defaults, is_field_value, is_reserved_header, is_token, limits as http_limits,
};
use strait_engine::config::{
    limits, AccessLogConfig, AccessLogFormat, AccessLogTarget, FixedResponse, ForwardAction,
    HeaderEdits, HeaderMatch, HostMatch, HttpListenerConfig, ListenerProtocol, PathMatch,
    PrefixRewrite, RouteAction, RouteConfig, UpstreamHttpConfig, WeightedCluster,
};
use toml::de::DeValue;

use super::cursor::{Ctx, Field, Span, TableCursor};
use super::values::{boolean, choice, duration, int_in, name, size_u64};
use super::{resolve_cluster, NameAt};

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
const ROUTE_KEYS: &[&str] = &[
    "name",
    "host",
    "path_prefix",
    "path",
    "methods",
    "headers",
    "cluster",
    "clusters",
    "respond",
    "redirect",
    "strip_prefix",
    "rewrite_prefix",
    "request_headers",
    "response_headers",
    "max_body_size",
];
const HEADER_MATCH_KEYS: &[&str] = &["name", "value"];
const WEIGHTED_KEYS: &[&str] = &["cluster", "weight"];
const RESPOND_KEYS: &[&str] = &["status", "body", "content_type"];
const REDIRECT_KEYS: &[&str] = &["status", "location"];
const EDIT_KEYS: &[&str] = &["remove", "set", "add"];

const ACTIONS: &str = "\"cluster\", \"clusters\", \"respond\" or \"redirect\"";
/// Content type of `respond` (and `redirect`) answers unless `content_type` says otherwise.
pub(super) const DEFAULT_CONTENT_TYPE: &str = "text/plain; charset=utf-8";
const DEFAULT_REDIRECT_STATUS: u16 = 302;
const REDIRECT_STATUSES: &[u16] = &[301, 302, 303, 307, 308];
/// Methods whose lowercase spelling is certainly a mistake (method names are case-sensitive).
const STANDARD_METHODS: &[&str] = &[
    "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH",
];
const TOKEN_CHARS: &str = "letters, digits and !#$%&'*+-.^_`|~";
const WEIGHTED_EXAMPLE: &str = "{ cluster = \"a\", weight = 90 }";
const HEADER_MATCH_EXAMPLE: &str = "{ name = \"x-canary\", value = \"1\" }";

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

    // `route` as written, if at all (an empty array or a value of the wrong type included).
    let route_field = keys.get("route");
    let reserved = (!matches!(catch_all, CatchAll::None)).then_some(defaults::ROUTE_NAME);
    if let Some(f) = route_field {
        if let Some(items) = f.elements(ctx, "an array of tables ([[listener.route]])") {
            let mut names: Vec<(String, Span)> = Vec::new();
            for item in &items {
                http.routes
                    .push(route(ctx, item, &mut names, reserved, clusters));
            }
        }
    }
    let collision =
        reserved.is_some() && http.routes.iter().any(|r| r.name == defaults::ROUTE_NAME);
    match catch_all {
        _ if collision => {}
        CatchAll::Cluster(c) => http.routes.push(defaults::catch_all_route(c)),
        CatchAll::Unresolved => http
            .routes
            .push(placeholder_route(defaults::ROUTE_NAME.into())),
        CatchAll::None if http.routes.is_empty() => {
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
                http.routes
                    .push(placeholder_route(defaults::ROUTE_NAME.into()));
            } else if !wrong_type {
                let span = route_field.map_or_else(|| listener.span(), Field::span);
                ctx.error(&span, format!("{}.route", listener.path), message);
            }
        }
        CatchAll::None => {}
    }
    http
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

/// One `[[listener.route]]`; `names` are the route names seen so far in this listener, and
/// `reserved` the name taken by the catch-all route of the listener's `cluster`.
fn route(
    ctx: &mut Ctx<'_>,
    item: &Field<'_, '_>,
    names: &mut Vec<(String, Span)>,
    reserved: Option<&str>,
    clusters: &[NameAt],
) -> RouteConfig {
    let mut r = placeholder_route(String::new());
    if !matches!(item.value.get_ref(), DeValue::Table(_)) {
        item.type_error(
            ctx,
            "a route table such as { name = \"api\", path_prefix = \"/api\", cluster = \"api\" }",
        );
        return r;
    }
    let Some(mut t) = item.table(ctx, "[[listener.route]]", ROUTE_KEYS) else {
        return r;
    };
    if let Some(f) = t.require(ctx, "name") {
        if let Some(n) = name(ctx, &f) {
            if let Some((_, first)) = names.iter().find(|(o, _)| *o == n) {
                let (line, _) = ctx.line_col(first.start);
                f.error(
                    ctx,
                    format!(
                        "duplicate route name {n:?} in this listener; first defined at line {line}"
                    ),
                );
            } else if reserved == Some(n.as_str()) {
                f.error(
                    ctx,
                    format!(
                        "the route name {n:?} is taken by the catch-all route that the listener's \
                         `cluster` adds; rename this route"
                    ),
                );
            }
            names.push((n.clone(), f.span()));
            r.name = n;
        }
    }
    if let Some(f) = t.get(ctx, "host") {
        let expected = "a host name (a string) such as \"api.example.com\" or \"*.example.com\"";
        if let Some(s) = f.str(ctx, expected) {
            match host_match(s) {
                Ok(h) => r.host = h,
                Err(e) => f.error(ctx, e),
            }
        }
    }

    // Path: `path_prefix`, or `path`, or neither (every path).
    let prefix = t.get(ctx, "path_prefix");
    let exact = t.get(ctx, "path");
    // Whether the route's path is known to be what the file says (rewrite checks rely on it).
    let mut path_ok = true;
    match (&prefix, &exact) {
        (Some(p), Some(e)) => {
            let later = if p.span().start > e.span().start {
                p
            } else {
                e
            };
            later.error(
                ctx,
                "give either path (matches one exact path) or path_prefix (matches a path and \
                 everything under it), not both",
            );
            path_ok = false;
        }
        (Some(f), None) => match path_value(ctx, f) {
            Some(p) => r.path = PathMatch::Prefix(p),
            None => path_ok = false,
        },
        (None, Some(f)) => match path_value(ctx, f) {
            Some(p) => r.path = PathMatch::Exact(p),
            None => path_ok = false,
        },
        (None, None) => {}
    }
    if let Some(f) = &prefix {
        // `Config::validate` names the route's path `path` whichever key wrote it.
        ctx.record(&t.key_path("path"), f.span());
    }

    if let Some(f) = t.get(ctx, "methods") {
        if let Some(items) = f.elements(ctx, "an array of method names such as [\"GET\", \"HEAD\"]")
        {
            for m in &items {
                if let Some(s) = method(ctx, m) {
                    r.methods.push(s);
                }
            }
        }
    }
    if let Some(f) = t.get(ctx, "headers") {
        let expected = format!("an array of header conditions such as [{HEADER_MATCH_EXAMPLE}]");
        if let Some(items) = f.elements(ctx, &expected) {
            for h in &items {
                if let Some(m) = header_match(ctx, h) {
                    r.headers.push(m);
                }
            }
        }
    }

    // The action: exactly one of the four keys.
    let mut actions: Vec<(&'static str, Span, Option<RouteAction>)> = Vec::new();
    if let Some(f) = t.get(ctx, "cluster") {
        let action = resolve_cluster(ctx, &f, clusters)
            .map(|cluster| forward(vec![WeightedCluster { cluster, weight: 1 }]));
        actions.push(("cluster", f.span(), action));
    }
    if let Some(f) = t.get(ctx, "clusters") {
        actions.push((
            "clusters",
            f.span(),
            weighted(ctx, &f, clusters).map(forward),
        ));
    }
    if let Some(f) = t.get(ctx, "respond") {
        actions.push((
            "respond",
            f.span(),
            respond(ctx, &f).map(RouteAction::Respond),
        ));
    }
    if let Some(f) = t.get(ctx, "redirect") {
        actions.push((
            "redirect",
            f.span(),
            redirect(ctx, &f).map(RouteAction::Respond),
        ));
    }
    actions.sort_by_key(|(_, span, _)| span.start);
    let kind = match actions.as_mut_slice() {
        [] => {
            ctx.error(
                &item.span(),
                item.path.clone(),
                format!("a route needs an action: one of {ACTIONS}"),
            );
            None
        }
        [(kind, _, action)] => {
            if let Some(a) = action.take() {
                r.action = a;
            }
            Some(*kind)
        }
        [(first, ..), rest @ ..] => {
            for (key, span, _) in rest.iter() {
                ctx.error(
                    span,
                    t.key_path(key),
                    format!("a route takes exactly one of {ACTIONS}; this one also has {first:?}"),
                );
            }
            None
        }
    };

    // Rewrites apply to forwarded requests only.
    let strip = t.get(ctx, "strip_prefix");
    let rewrite_to = t.get(ctx, "rewrite_prefix");
    let mut rewrite = None;
    if let (Some(s), Some(w)) = (&strip, &rewrite_to) {
        let later = if s.span().start > w.span().start {
            s
        } else {
            w
        };
        later.error(
            ctx,
            "give either strip_prefix (removes a prefix) or rewrite_prefix (replaces the \
             path_prefix), not both",
        );
    } else if let Some(f) = strip.as_ref().or(rewrite_to.as_ref()) {
        let key = if strip.is_some() {
            "strip_prefix"
        } else {
            "rewrite_prefix"
        };
        if let Some(p) = path_value(ctx, f) {
            if let Some(k @ ("respond" | "redirect")) = kind {
                f.error(
                    ctx,
                    format!(
                        "{key} applies to routes that forward (cluster or clusters), not to a \
                         {k} route"
                    ),
                );
            } else if strip.is_some() {
                if let Some(problem) = path_ok.then(|| strip_never_applies(&r.path, &p)).flatten() {
                    f.error(ctx, problem);
                } else {
                    rewrite = Some(PrefixRewrite {
                        from: p,
                        to: String::new(),
                    });
                }
            } else if exact.is_some() || prefix.is_none() {
                if path_ok {
                    let has = if exact.is_some() {
                        "an exact `path`"
                    } else {
                        "no path_prefix"
                    };
                    f.error(
                        ctx,
                        format!(
                            "rewrite_prefix replaces the route's path_prefix, and this route has \
                             {has}; add path_prefix = \"/...\", or use strip_prefix"
                        ),
                    );
                }
            } else if let (true, PathMatch::Prefix(from)) = (path_ok, &r.path) {
                rewrite = Some(PrefixRewrite {
                    from: from.clone(),
                    to: p,
                });
            }
        }
    }
    if let RouteAction::Forward(f) = &mut r.action {
        f.rewrite = rewrite;
    }

    if let Some(f) = t.get(ctx, "request_headers") {
        r.request_headers = header_edits(ctx, &f);
    }
    if let Some(f) = t.get(ctx, "response_headers") {
        r.response_headers = header_edits(ctx, &f);
    }
    if let Some(f) = t.get(ctx, "max_body_size") {
        r.max_body_size = size_u64(ctx, &f, 0, u64::MAX);
    }
    t.finish(ctx);
    r
}

fn forward(clusters: Vec<WeightedCluster>) -> RouteAction {
    RouteAction::Forward(ForwardAction {
        clusters,
        rewrite: None,
    })
}

/// `*` → any host, `*.example.com` → a suffix, else an exact (lowercased) host without a port.
pub(super) fn host_match(s: &str) -> Result<HostMatch, String> {
    if s == "*" {
        return Ok(HostMatch::Any);
    }
    let lower = s.to_ascii_lowercase();
    let (wildcard, host) = match lower.strip_prefix("*.") {
        Some(rest) => (true, rest),
        None => (false, lower.as_str()),
    };
    let bad = |why: String| Err(format!("invalid host {s:?}: {why}"));
    if host.is_empty() {
        return bad("expected a host name such as \"api.example.com\" or \"*.example.com\"".into());
    }
    if !host.is_ascii() {
        return bad("write internationalized names in their ASCII (\"xn--\") form".into());
    }
    if host.contains('*') {
        return bad("a wildcard may only be the whole first label, as in \"*.example.com\"".into());
    }
    if let Some(inner) = host.strip_prefix('[') {
        // An IPv6 literal, as it appears in a Host header.
        let Some((addr, after)) = inner.split_once(']') else {
            return bad("an IPv6 address needs its closing \"]\"".into());
        };
        if !after.is_empty() {
            return bad(format!(
                "routes match the host without its port; write \"[{addr}]\""
            ));
        }
        if wildcard || addr.parse::<std::net::Ipv6Addr>().is_err() {
            return bad("expected an IPv6 address in brackets, such as \"[::1]\"".into());
        }
    } else if host.contains(':') {
        // A bare IPv6 literal is fine (the engine compares it like "[::1]"); anything else with a
        // colon carries a port.
        if wildcard || host.parse::<std::net::Ipv6Addr>().is_err() {
            let name = host.rsplit_once(':').map_or(host, |(n, _)| n);
            let star = if wildcard { "*." } else { "" };
            return bad(format!(
                "routes match the host without its port; write \"{star}{name}\""
            ));
        }
    } else if host.len() > 253
        || !host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._".contains(&b))
    {
        return bad(
            "expected a host name of letters, digits, \"-\", \"_\" and \".\" (at most 253 \
             characters) such as \"api.example.com\" or \"*.example.com\""
                .into(),
        );
    }
    Ok(if wildcard {
        HostMatch::Suffix(format!(".{host}"))
    } else {
        HostMatch::Exact(host.to_owned())
    })
}

/// A URL path for `path`, `path_prefix`, `strip_prefix` and `rewrite_prefix`.
fn path_value(ctx: &mut Ctx<'_>, f: &Field<'_, '_>) -> Option<String> {
    let s = f.str(ctx, "a path string such as \"/api\"")?;
    let problem = if !s.starts_with('/') {
        "must start with \"/\""
    } else if s.bytes().any(|b| !(b'!'..=b'~').contains(&b)) {
        "must hold no spaces, control or non-ASCII characters (percent-encode them)"
    } else if s.contains(['?', '#']) {
        "routes see the path without its query (\"?\") or fragment (\"#\")"
    } else {
        return Some(s.to_owned());
    };
    f.error(ctx, format!("invalid path {s:?}: {problem}"));
    None
}

/// Why stripping `strip` can never apply to a request this route matches, if so.
fn strip_never_applies(path: &PathMatch, strip: &str) -> Option<String> {
    match path {
        PathMatch::Prefix(p) if !p.starts_with(strip) && !strip.starts_with(p.as_str()) => {
            Some(format!(
                "strip_prefix {strip:?} never applies: this route only matches paths under {p:?}"
            ))
        }
        PathMatch::Exact(p) if !p.starts_with(strip) => Some(format!(
            "strip_prefix {strip:?} never applies: this route only matches the path {p:?}"
        )),
        _ => None,
    }
}

fn method(ctx: &mut Ctx<'_>, f: &Field<'_, '_>) -> Option<String> {
    let s = f.str(ctx, "a method name (a string) such as \"GET\"")?;
    let upper = s.to_ascii_uppercase();
    if !is_token(s) {
        f.error(
            ctx,
            format!(
                "invalid method {s:?}: expected a method name such as \"GET\" or \"POST\" \
                 ({TOKEN_CHARS}; no spaces)"
            ),
        );
    } else if upper != s && STANDARD_METHODS.contains(&upper.as_str()) {
        f.error(
            ctx,
            format!(
                "invalid method {s:?}: method names are case-sensitive (did you mean {upper:?}?)"
            ),
        );
    } else {
        return Some(s.to_owned());
    }
    None
}

/// A header name, lowercased; `None` (after reporting) when it is not a field name.
fn header_name(s: &str) -> Result<String, String> {
    if is_token(s) {
        Ok(s.to_ascii_lowercase())
    } else {
        Err(format!(
            "invalid header name {s:?}: expected a field name such as \"x-request-id\" \
             ({TOKEN_CHARS}; no spaces or colons)"
        ))
    }
}

/// A header value Strait may write or compare; `what` names it in the message.
fn field_value(ctx: &mut Ctx<'_>, f: &Field<'_, '_>, what: &str) -> Option<String> {
    let s = f.str(ctx, &format!("{what} (a string)"))?;
    if is_field_value(s) {
        return Some(s.to_owned());
    }
    f.error(
        ctx,
        format!(
            "invalid {what} {s:?}: use visible ASCII characters and spaces, without leading or \
             trailing whitespace"
        ),
    );
    None
}

fn header_match(ctx: &mut Ctx<'_>, f: &Field<'_, '_>) -> Option<HeaderMatch> {
    if !matches!(f.value.get_ref(), DeValue::Table(_)) {
        f.type_error(
            ctx,
            &format!("a header condition such as {HEADER_MATCH_EXAMPLE}"),
        );
        return None;
    }
    let mut t = f.table(ctx, "a header condition", HEADER_MATCH_KEYS)?;
    let name = t.require(ctx, "name").and_then(|f| {
        let s = f.str(ctx, "a header name (a string)")?;
        header_name(s).map_err(|e| f.error(ctx, e)).ok()
    });
    let value = match t.get(ctx, "value") {
        Some(f) => field_value(ctx, &f, "header value").map(Some),
        None => Some(None),
    };
    t.finish(ctx);
    Some(HeaderMatch {
        name: name?,
        value: value?,
    })
}

/// `clusters = [{ cluster = "a", weight = 90 }, …]`; `None` when any entry is unusable.
fn weighted(
    ctx: &mut Ctx<'_>,
    f: &Field<'_, '_>,
    clusters: &[NameAt],
) -> Option<Vec<WeightedCluster>> {
    let expected = format!("an array of weighted clusters such as [{WEIGHTED_EXAMPLE}]");
    let items = f.elements(ctx, &expected)?;
    if items.is_empty() {
        f.error(
            ctx,
            format!("needs at least one cluster, e.g. clusters = [{WEIGHTED_EXAMPLE}]"),
        );
        return None;
    }
    let mut out = Vec::new();
    let mut ok = true;
    let mut seen: Vec<(usize, Span)> = Vec::new();
    for item in &items {
        if !matches!(item.value.get_ref(), DeValue::Table(_)) {
            item.type_error(
                ctx,
                &format!("a weighted cluster such as {WEIGHTED_EXAMPLE}"),
            );
            ok = false;
            continue;
        }
        let Some(mut t) = item.table(ctx, "a weighted cluster", WEIGHTED_KEYS) else {
            ok = false;
            continue;
        };
        let cluster = t.require(ctx, "cluster").and_then(|f| {
            let c = resolve_cluster(ctx, &f, clusters)?;
            if let Some((_, first)) = seen.iter().find(|(o, _)| *o == c) {
                let (line, column) = ctx.line_col(first.start);
                f.error(
                    ctx,
                    format!(
                        "this cluster is already listed at line {line}, column {column}; give it \
                         one entry with the combined weight"
                    ),
                );
                return None;
            }
            seen.push((c, f.span()));
            Some(c)
        });
        let weight = match t.get(ctx, "weight") {
            Some(f) => int_in(ctx, &f, 1, limits::MAX_WEIGHT.into()).map(|n| n as u32),
            None => Some(1),
        };
        t.finish(ctx);
        match (cluster, weight) {
            (Some(cluster), Some(weight)) => out.push(WeightedCluster { cluster, weight }),
            _ => ok = false,
        }
    }
    ok.then_some(out)
}

/// `respond = { status = 404, body = "…", content_type = "…" }`.
fn respond(ctx: &mut Ctx<'_>, f: &Field<'_, '_>) -> Option<FixedResponse> {
    if !matches!(f.value.get_ref(), DeValue::Table(_)) {
        f.type_error(
            ctx,
            "a table such as { status = 404, body = \"not found\\n\" }",
        );
        return None;
    }
    let mut t = f.table(ctx, "a respond table", RESPOND_KEYS)?;
    let status_field = t.require(ctx, "status");
    let mut status = status_field
        .as_ref()
        .and_then(|f| int_in(ctx, f, 200, 599))
        .map(|n| n as u16);
    if let (Some(s), Some(f)) = (status, &status_field) {
        if (300..=399).contains(&s) && s != 304 {
            f.error(
                ctx,
                format!(
                    "a {s} answer needs a location: write redirect = {{ status = {s}, location = \
                     \"...\" }} instead"
                ),
            );
            status = None;
        }
    }
    let body_field = t.get(ctx, "body");
    let body = match &body_field {
        Some(f) => f.str(ctx, "a string").map(str::to_owned),
        None => Some(String::new()),
    };
    if let (Some(s @ (204 | 304)), Some(b), Some(f)) = (status, &body, &body_field) {
        if !b.is_empty() {
            f.error(
                ctx,
                format!("a {s} response has no body; remove `body` or pick another status"),
            );
            status = None;
        }
    }
    let content_type = match t.get(ctx, "content_type") {
        Some(f) => field_value(ctx, &f, "content type").filter(|v| {
            let ok = !v.is_empty();
            if !ok {
                f.error(ctx, "must not be empty; e.g. \"text/html; charset=utf-8\"");
            }
            ok
        }),
        None => Some(DEFAULT_CONTENT_TYPE.into()),
    };
    t.finish(ctx);
    Some(FixedResponse {
        status: status?,
        body: body?,
        content_type: content_type?,
        location: None,
    })
}

/// `redirect = { status = 301, location = "https://example.com/" }`.
fn redirect(ctx: &mut Ctx<'_>, f: &Field<'_, '_>) -> Option<FixedResponse> {
    if !matches!(f.value.get_ref(), DeValue::Table(_)) {
        f.type_error(
            ctx,
            "a table such as { status = 301, location = \"https://example.com/\" }",
        );
        return None;
    }
    let mut t = f.table(ctx, "a redirect table", REDIRECT_KEYS)?;
    let status = match t.get(ctx, "status") {
        Some(f) => f.int(ctx).and_then(|n| {
            match u16::try_from(n)
                .ok()
                .filter(|s| REDIRECT_STATUSES.contains(s))
            {
                Some(s) => Some(s),
                None => {
                    f.error(ctx, format!("must be 301, 302, 303, 307 or 308, found {n}"));
                    None
                }
            }
        }),
        None => Some(DEFAULT_REDIRECT_STATUS),
    };
    let location = t.require(ctx, "location").and_then(|f| {
        let s = f.str(
            ctx,
            "a URL or path (a string) such as \"https://example.com/\"",
        )?;
        if !s.is_empty() && s.bytes().all(|b| (b'!'..=b'~').contains(&b)) {
            return Some(s.to_owned());
        }
        f.error(
            ctx,
            format!(
                "invalid location {s:?}: expected a URL or path such as \"https://example.com/\" \
                 or \"/new\" (visible ASCII without spaces; percent-encode others)"
            ),
        );
        None
    });
    t.finish(ctx);
    Some(FixedResponse {
        status: status?,
        body: String::new(),
        content_type: DEFAULT_CONTENT_TYPE.into(),
        location: Some(location?),
    })
}

/// `request_headers` / `response_headers`: `{ remove = [...], set = {...}, add = {...} }`. Entries
/// with problems are reported and left out.
fn header_edits(ctx: &mut Ctx<'_>, f: &Field<'_, '_>) -> HeaderEdits {
    let mut edits = HeaderEdits::default();
    if !matches!(f.value.get_ref(), DeValue::Table(_)) {
        f.type_error(
            ctx,
            "a table such as { remove = [\"x-internal\"], set = { \"x-env\" = \"prod\" } }",
        );
        return edits;
    }
    let Some(mut t) = f.table(ctx, "a header edits table", EDIT_KEYS) else {
        return edits;
    };
    if let Some(f) = t.get(ctx, "remove") {
        if let Some(items) = f.elements(ctx, "an array of header names such as [\"x-internal\"]") {
            for item in &items {
                let Some(s) = item.str(ctx, "a header name (a string)") else {
                    continue;
                };
                match editable_name(s) {
                    Ok(n) => edits.remove.push(n),
                    Err(e) => item.error(ctx, e),
                }
            }
        }
    }
    for key in ["set", "add"] {
        let Some(f) = t.get(ctx, key) else {
            continue;
        };
        let expected = "a table of header names and values such as { \"x-env\" = \"prod\" }";
        let Some(entries) = f.entries(ctx, expected) else {
            continue;
        };
        let mut out: Vec<(String, String)> = Vec::new();
        for e in &entries {
            let name = match editable_name(e.key) {
                Ok(n) if key == "set" && out.iter().any(|(o, _)| *o == n) => {
                    ctx.error(
                        &e.key_span,
                        e.field.path.clone(),
                        format!("{n:?} is set twice (header names are case-insensitive)"),
                    );
                    None
                }
                Ok(n) => Some(n),
                Err(message) => {
                    ctx.error(&e.key_span, e.field.path.clone(), message);
                    None
                }
            };
            let value = field_value(ctx, &e.field, "header value");
            if let (Some(n), Some(v)) = (name, value) {
                out.push((n, v));
            }
        }
        if key == "set" {
            edits.set = out;
        } else {
            edits.add = out;
        }
    }
    t.finish(ctx);
    edits
}

/// A header name a route may edit, lowercased.
fn editable_name(s: &str) -> Result<String, String> {
    let n = header_name(s)?;
    if is_reserved_header(&n) {
        let hint = if n == "host" {
            " (set the cluster's `host` to change the Host sent upstream)"
        } else {
            ""
        };
        return Err(format!(
            "{n:?} is managed by the proxy and cannot be edited{hint}"
        ));
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listener_http_keys_are_valid_listener_keys() {
        for k in LISTENER_HTTP_KEYS {
            assert!(super::super::LISTENER_KEYS.contains(k), "{k}");
        }
    }

    #[test]
    fn hosts_parse_into_matches() {
        assert_eq!(host_match("*"), Ok(HostMatch::Any));
        assert_eq!(
            host_match("API.Example.com"),
            Ok(HostMatch::Exact("api.example.com".into()))
        );
        assert_eq!(
            host_match("*.Example.com"),
            Ok(HostMatch::Suffix(".example.com".into()))
        );
        assert_eq!(host_match("[::1]"), Ok(HostMatch::Exact("[::1]".into())));
        assert_eq!(
            host_match("2001:DB8::1"),
            Ok(HostMatch::Exact("2001:db8::1".into()))
        );
        assert_eq!(
            host_match("10.0.0.1"),
            Ok(HostMatch::Exact("10.0.0.1".into()))
        );
        for (bad, why) in [
            ("", "expected a host name"),
            ("*.", "expected a host name"),
            ("a.*.com", "wildcard"),
            ("*example.com", "wildcard"),
            ("a.com:80", "write \"a.com\""),
            ("*.a.com:80", "write \"*.a.com\""),
            ("[::1]:80", "write \"[::1]\""),
            ("[::1", "closing"),
            ("[nope]", "IPv6"),
            ("[::1]x", "without its port"),
            ("a b", "letters, digits"),
            ("bücher.de", "xn--"),
        ] {
            let e = host_match(bad).expect_err(bad);
            assert!(e.contains(why), "{bad}: {e}");
        }
    }

    #[test]
    fn strips_that_can_never_apply_are_found() {
        let p = |s: &str| PathMatch::Prefix(s.into());
        assert_eq!(strip_never_applies(&p("/api"), "/api"), None);
        assert_eq!(strip_never_applies(&p("/api/v1"), "/api"), None);
        assert_eq!(strip_never_applies(&p("/"), "/api"), None);
        assert!(strip_never_applies(&p("/api"), "/v1").is_some());
        assert_eq!(
            strip_never_applies(&PathMatch::Exact("/a/b".into()), "/a"),
            None
        );
        assert!(strip_never_applies(&PathMatch::Exact("/a".into()), "/b").is_some());
    }
}
