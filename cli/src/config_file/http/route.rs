//! One `[[listener.route]]`: its name, conditions (host, path, methods, headers), action, path
//! rewrite, header edits and body limit; and the value readers only routes use (host patterns,
//! paths, methods).
//!
//! Owns: the route table's keys, the rule that a route has exactly one action, which rewrites
//! can apply to which paths and actions, and `host_match` (shared with `tls` for passthrough
//! SNI patterns). Works like the parent module: problems are reported into `Ctx`, and what is
//! invalid keeps the placeholder's value. Must not: read the action tables themselves (`action`)
//! or header names and values (`headers`), or decide what the listener does without routes (the
//! parent's catch-all logic).

use strait_engine::config::http::is_token;
use strait_engine::config::{
    ForwardAction, HostMatch, PathMatch, PrefixRewrite, RouteAction, RouteConfig, WeightedCluster,
};
use toml::de::DeValue;

use super::action::{redirect, respond, weighted};
use super::headers::{header_edits, header_match, HEADER_MATCH_EXAMPLE, TOKEN_CHARS};
use super::placeholder_route;
use crate::config_file::cursor::{Ctx, Field, Span, TableCursor};
use crate::config_file::values::{size_u64, unique_name};
use crate::config_file::{resolve_cluster, NameAt};

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

const ACTIONS: &str = "\"cluster\", \"clusters\", \"respond\" or \"redirect\"";
/// Methods whose lowercase spelling is certainly a mistake (method names are case-sensitive).
const STANDARD_METHODS: &[&str] = &[
    "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH",
];

/// One `[[listener.route]]`; `names` are the route names seen so far in this listener, and
/// `reserved` the name taken by the catch-all route of the listener's `cluster`.
pub(super) fn route(
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
    route_name(ctx, &mut t, names, reserved, &mut r);
    route_host(ctx, &mut t, &mut r);
    let path = route_path(ctx, &mut t, &mut r);
    route_conditions(ctx, &mut t, &mut r);
    let kind = route_action(ctx, &mut t, item, clusters, &mut r);
    let rewrite = route_rewrite(ctx, &mut t, &r, kind, &path);
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

/// `name`: required, unique in the listener, not the catch-all route's.
fn route_name(
    ctx: &mut Ctx<'_>,
    t: &mut TableCursor<'_, '_>,
    names: &mut Vec<(String, Span)>,
    reserved: Option<&str>,
    r: &mut RouteConfig,
) {
    if let Some(f) = t.require(ctx, "name") {
        if let Some(n) = unique_name(ctx, &f, names.iter(), "route", " in this listener") {
            if names.iter().all(|(o, _)| *o != n) && reserved == Some(n.as_str()) {
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
}

fn route_host(ctx: &mut Ctx<'_>, t: &mut TableCursor<'_, '_>, r: &mut RouteConfig) {
    if let Some(f) = t.get(ctx, "host") {
        let expected = "a host name (a string) such as \"api.example.com\" or \"*.example.com\"";
        if let Some(s) = f.str(ctx, expected) {
            match host_match(s) {
                Ok(h) => r.host = h,
                Err(e) => f.error(ctx, e),
            }
        }
    }
}

/// Which path keys a route wrote, for the rewrite checks.
struct PathKeys {
    /// `path_prefix` is written.
    prefix: bool,
    /// `path` is written.
    exact: bool,
    /// Whether the route's path is known to be what the file says (rewrite checks rely on it).
    ok: bool,
}

/// Path: `path_prefix`, or `path`, or neither (every path).
fn route_path(ctx: &mut Ctx<'_>, t: &mut TableCursor<'_, '_>, r: &mut RouteConfig) -> PathKeys {
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
    PathKeys {
        prefix: prefix.is_some(),
        exact: exact.is_some(),
        ok: path_ok,
    }
}

/// `methods` and `headers`: entries with problems are reported and left out.
fn route_conditions(ctx: &mut Ctx<'_>, t: &mut TableCursor<'_, '_>, r: &mut RouteConfig) {
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
}

/// The action: exactly one of the four keys. Returns the key when there is exactly one.
fn route_action(
    ctx: &mut Ctx<'_>,
    t: &mut TableCursor<'_, '_>,
    item: &Field<'_, '_>,
    clusters: &[NameAt],
    r: &mut RouteConfig,
) -> Option<&'static str> {
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
    match actions.as_mut_slice() {
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
    }
}

/// `strip_prefix` or `rewrite_prefix`; they apply to forwarded requests only. `kind` is the
/// route's action key, `path` which path keys it wrote.
fn route_rewrite(
    ctx: &mut Ctx<'_>,
    t: &mut TableCursor<'_, '_>,
    r: &RouteConfig,
    kind: Option<&str>,
    path: &PathKeys,
) -> Option<PrefixRewrite> {
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
                if let Some(problem) = path.ok.then(|| strip_never_applies(&r.path, &p)).flatten() {
                    f.error(ctx, problem);
                } else {
                    rewrite = Some(PrefixRewrite {
                        from: p,
                        to: String::new(),
                    });
                }
            } else if path.exact || !path.prefix {
                if path.ok {
                    let has = if path.exact {
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
            } else if let (true, PathMatch::Prefix(from)) = (path.ok, &r.path) {
                rewrite = Some(PrefixRewrite {
                    from: from.clone(),
                    to: p,
                });
            }
        }
    }
    rewrite
}

fn forward(clusters: Vec<WeightedCluster>) -> RouteAction {
    RouteAction::Forward(ForwardAction {
        clusters,
        rewrite: None,
    })
}

/// `*` → any host, `*.example.com` → a suffix, else an exact (lowercased) host without a port.
pub(in crate::config_file) fn host_match(s: &str) -> Result<HostMatch, String> {
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

#[cfg(test)]
mod tests {
    use super::*;

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
