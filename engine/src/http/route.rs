//! The per-listener route table: compiled once from the listener's routes at start-up, matched
//! once per request on the hot path.
//!
//! Owns: the precedence between routes, host normalisation for matching (case, port, IPv6
//! brackets, trailing dot), method/header/path conditions, and the upstream path rewrite
//! ([`rewrite_path`]).
//! Must not: allocate, lock or use regexes in [`RouteTable::find`]; parse HTTP (the caller hands
//! in the raw host, path, method and a header lookup); decode or normalise paths; or know what a
//! route does once it is chosen.
//!
//! # Precedence
//!
//! Routes are grouped by host: the routes naming the request's exact host, then each wildcard
//! (suffix) group matching the host, longest suffix first, then the routes with any host. Within
//! a group, `path` (exact) routes come before `path_prefix` routes, longer prefixes before
//! shorter ones, and file order breaks ties. The groups are tried in that order and, inside each,
//! the candidates in that order; the first candidate whose path, methods (empty: any) and header
//! conditions (all must hold) match wins. So a request whose exact-host group has no matching
//! candidate falls through to the matching wildcard groups and then to the any-host group; when
//! nothing matches, [`RouteTable::find`] returns `None` (the caller answers 404).
//!
//! # Hosts
//!
//! Compared case-insensitively, without the port (`name:port`, `[v6]:port`, `[v6]`, `name`), with
//! one trailing dot ignored. `Suffix(".example.com")` matches `a.example.com` and
//! `a.b.example.com`, never `example.com`. An absent Host (HTTP/1.0) or an empty one only reaches
//! the any-host group.
//!
//! # Paths
//!
//! Matched on the path before `?`, byte for byte as sent: no percent-decoding, no dot-segment
//! removal, no case folding. The upstream receives exactly these bytes (after an optional prefix
//! rewrite of them), so routing on the same bytes means we never route on one path and forward
//! another: a normalising match would send `/api/%2e%2e/admin` by the rules for `/admin` while
//! the upstream gets, and interprets, the bytes as sent. The flip side is that a route is no
//! access-control rule against such paths (`/x/../admin` does not match `/admin`); normalising
//! is the upstream's job. A prefix not ending in `/` matches on a segment boundary (`/api`
//! matches `/api`, `/api/x` and `/api?q`, not `/apix`). Paths not starting with `/`, such as the
//! asterisk-form `*` of `OPTIONS *`, match no route.

use std::cmp::Reverse;
use std::collections::HashMap;

use crate::config::{HostMatch, PathMatch, PrefixRewrite, RouteConfig};

/// Request hosts up to this long are lowercased on the stack for the exact-host lookup. Longer
/// ones are compared in place against every exact host (only possible with hosts longer than a
/// DNS name, which the config validator rejects).
const HOST_BUF: usize = 256;

/// A listener's routes compiled into per-host-group candidate lists.
#[derive(Debug)]
pub(crate) struct RouteTable {
    /// Indexed like the routes given to [`RouteTable::compile`].
    routes: Box<[Matcher]>,
    /// Lowercase normalised host → its group.
    exact: HashMap<Box<[u8]>, Group>,
    /// Longest key in `exact`: a longer request host cannot match and skips the lookup.
    exact_max_len: usize,
    /// Longest suffix first.
    suffixes: Box<[SuffixGroup]>,
    /// Routes with any host.
    any: Group,
    /// Set when there are no host groups and the any group starts with an unconditional `/`
    /// prefix: every request with an origin-form path takes that route, the host unread.
    catch_all: Option<usize>,
}

/// Indices of one host group's routes, in precedence order (exact paths, then prefixes longest
/// first, file order within each).
type Group = Box<[usize]>;

#[derive(Debug)]
struct SuffixGroup {
    /// Lowercase, with its leading dot.
    suffix: Box<[u8]>,
    group: Group,
}

/// One route's request conditions, copied out of its [`RouteConfig`] as bytes.
#[derive(Debug)]
struct Matcher {
    path: PathRule,
    /// Empty: any method.
    methods: Box<[Box<[u8]>]>,
    /// All must hold.
    headers: Box<[HeaderRule]>,
}

#[derive(Debug)]
struct HeaderRule {
    /// Lowercase.
    name: Box<[u8]>,
    /// The exact value the first field of `name` must have; `None`: the field must be present.
    value: Option<Box<[u8]>>,
}

#[derive(Debug)]
enum PathRule {
    Exact(Box<[u8]>),
    Prefix(Box<[u8]>),
}

impl RouteTable {
    /// Builds the lookup structures from routes in file order. Route indices returned by
    /// [`find`](Self::find) are indices into `routes`.
    pub fn compile(routes: &[RouteConfig]) -> RouteTable {
        let matchers: Box<[Matcher]> = routes.iter().map(Matcher::new).collect();
        let mut exact: HashMap<Box<[u8]>, Vec<usize>> = HashMap::new();
        let mut suffixes: Vec<(Box<[u8]>, Vec<usize>)> = Vec::new();
        let mut any = Vec::new();
        for (i, r) in routes.iter().enumerate() {
            match &r.host {
                HostMatch::Any => any.push(i),
                HostMatch::Exact(h) => exact.entry(exact_key(h)).or_default().push(i),
                HostMatch::Suffix(s) => {
                    let key = suffix_key(s);
                    match suffixes.iter_mut().find(|(k, _)| *k == key) {
                        Some((_, group)) => group.push(i),
                        None => suffixes.push((key, vec![i])),
                    }
                }
            }
        }
        // Stable sorts: indices were pushed in file order, which thus breaks ties. Suffixes of
        // equal length are distinct, so at most one of them can match a host.
        suffixes.sort_by_key(|(k, _)| Reverse(k.len()));
        let order = |mut group: Vec<usize>| -> Group {
            group.sort_by_key(|&i| matchers[i].path.rank());
            group.into_boxed_slice()
        };
        let exact: HashMap<Box<[u8]>, Group> =
            exact.into_iter().map(|(k, g)| (k, order(g))).collect();
        let suffixes: Box<[SuffixGroup]> = suffixes
            .into_iter()
            .map(|(suffix, g)| SuffixGroup {
                suffix,
                group: order(g),
            })
            .collect();
        let any = order(any);
        // Prefix `/` is the shortest path rule, so when it leads the any group every later
        // candidate is a `/` prefix too and cannot match a path the first one rejects.
        let catch_all = any
            .first()
            .copied()
            .filter(|&i| exact.is_empty() && suffixes.is_empty() && matchers[i].is_catch_all());
        RouteTable {
            exact_max_len: exact.keys().map(|k| k.len()).max().unwrap_or(0),
            routes: matchers,
            exact,
            suffixes,
            any,
            catch_all,
        }
    }

    /// The index of the route a request takes, by the precedence in the module docs; `None` when
    /// no route matches.
    ///
    /// `host`: the request's Host field value or absolute-form authority exactly as sent (any
    /// case, may carry a port, may be an IPv6 literal in brackets such as `[::1]:8080`, may have
    /// a trailing dot) or `None` when absent (HTTP/1.0). `path`: the request target's
    /// path-and-query as sent (origin-form, e.g. `/api/x?q=1`; for asterisk-form `*`). `method`:
    /// the method token. `header`: looks up the first field value of a lowercase name.
    pub fn find<'b>(
        &self,
        host: Option<&[u8]>,
        path: &[u8],
        method: &[u8],
        header: impl Fn(&[u8]) -> Option<&'b [u8]>,
    ) -> Option<usize> {
        if let Some(i) = self.catch_all {
            return (path.first() == Some(&b'/')).then_some(i);
        }
        let path = path_before_query(path);
        let first = |group: &[usize]| {
            group
                .iter()
                .copied()
                .find(|&i| self.routes[i].matches(path, method, &header))
        };
        if let Some(host) = host.filter(|_| !self.exact.is_empty() || !self.suffixes.is_empty()) {
            let host = host_name(host);
            if let Some(i) = self.exact_group(host).and_then(first) {
                return Some(i);
            }
            for s in self.suffixes.iter() {
                if ends_with_ignore_case(host, &s.suffix) {
                    if let Some(i) = first(&s.group) {
                        return Some(i);
                    }
                }
            }
        }
        first(&self.any)
    }

    /// The candidates of the exact host group `host` (port and trailing dot already removed,
    /// any case), without allocating.
    fn exact_group(&self, host: &[u8]) -> Option<&[usize]> {
        if host.len() > self.exact_max_len {
            return None;
        }
        if host.len() <= HOST_BUF {
            let mut buf = [0u8; HOST_BUF];
            let lower = &mut buf[..host.len()];
            lower.copy_from_slice(host);
            lower.make_ascii_lowercase();
            self.exact.get(&*lower).map(|g| &**g)
        } else {
            self.exact
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(host))
                .map(|(_, g)| &**g)
        }
    }
}

impl Matcher {
    fn new(r: &RouteConfig) -> Matcher {
        let bytes = |s: &str| Box::<[u8]>::from(s.as_bytes());
        Matcher {
            path: match &r.path {
                PathMatch::Exact(p) => PathRule::Exact(bytes(p)),
                PathMatch::Prefix(p) => PathRule::Prefix(bytes(p)),
            },
            methods: r.methods.iter().map(|m| bytes(m)).collect(),
            headers: r
                .headers
                .iter()
                .map(|h| {
                    let mut name = bytes(&h.name);
                    name.make_ascii_lowercase();
                    HeaderRule {
                        name,
                        value: h.value.as_deref().map(bytes),
                    }
                })
                .collect(),
        }
    }

    fn is_catch_all(&self) -> bool {
        matches!(&self.path, PathRule::Prefix(p) if **p == *b"/")
            && self.methods.is_empty()
            && self.headers.is_empty()
    }

    /// `path` is already cut at `?`.
    fn matches<'b>(
        &self,
        path: &[u8],
        method: &[u8],
        header: &impl Fn(&[u8]) -> Option<&'b [u8]>,
    ) -> bool {
        self.path.matches(path)
            && (self.methods.is_empty() || self.methods.iter().any(|m| **m == *method))
            && self.headers.iter().all(|h| match header(&h.name) {
                None => false,
                Some(value) => h.value.as_deref().is_none_or(|w| w == value),
            })
    }
}

impl PathRule {
    /// Sort key for the order inside a host group: exact paths, then prefixes longest first.
    fn rank(&self) -> (u8, Reverse<usize>) {
        match self {
            PathRule::Exact(_) => (0, Reverse(0)),
            PathRule::Prefix(p) => (1, Reverse(p.len())),
        }
    }

    fn matches(&self, path: &[u8]) -> bool {
        match self {
            PathRule::Exact(p) => path == &**p,
            PathRule::Prefix(p) => {
                path.starts_with(p)
                    && (p.last() == Some(&b'/') || path.len() == p.len() || path[p.len()] == b'/')
            }
        }
    }
}

/// Writes the path-and-query sent upstream after applying `rewrite` to the part before `?`;
/// appends to `out`. The query is kept.
///
/// `from` is known to be a prefix of the path when the route matched (a path it is not a prefix
/// of is written unchanged). `from` and `to` are joined on the segment boundary, so a trailing
/// `/` on either does not double or drop the slash before the rest: with `from = "/api"`,
/// `/api/x` becomes `/x` for `to = ""` or `to = "/"`, and `/v2/x` for `to = "/v2"` or
/// `to = "/v2/"`. A path equal to `from` becomes `to` as written, and an empty result path
/// becomes `/` (`/api` → `/`, `/api?q` → `/?q` when stripping `/api`).
pub(crate) fn rewrite_path(rewrite: &PrefixRewrite, path_and_query: &[u8], out: &mut Vec<u8>) {
    let q = path_and_query
        .iter()
        .position(|&b| b == b'?')
        .unwrap_or(path_and_query.len());
    let (path, query) = path_and_query.split_at(q);
    let from = rewrite.from.as_bytes();
    let to = rewrite.to.as_bytes();
    if !path.starts_with(from) {
        out.extend_from_slice(path_and_query);
        return;
    }
    let start = out.len();
    // Compare without a trailing '/' on `from`, so the rest keeps its leading '/'.
    let from = from.strip_suffix(b"/").unwrap_or(from);
    let rest = &path[from.len()..];
    if rest.is_empty() {
        out.extend_from_slice(to);
    } else {
        let to = to.strip_suffix(b"/").unwrap_or(to);
        out.extend_from_slice(to);
        if to.is_empty() && rest[0] != b'/' {
            out.push(b'/');
        }
        out.extend_from_slice(rest);
    }
    if out.len() == start {
        out.push(b'/');
    }
    out.extend_from_slice(query);
}

fn path_before_query(path: &[u8]) -> &[u8] {
    match path.iter().position(|&b| b == b'?') {
        Some(q) => &path[..q],
        None => path,
    }
}

/// The host name of a Host value or authority: without the port, IPv6 brackets or one trailing
/// dot; case untouched. A value that does not parse as `name[:port]` or `[v6][:port]` is
/// returned as it is (it then matches no exact host and, most likely, no suffix).
fn host_name(raw: &[u8]) -> &[u8] {
    let is_port = |p: &[u8]| p.iter().all(u8::is_ascii_digit);
    let name = if let Some(inner) = raw.strip_prefix(b"[") {
        match inner.iter().position(|&b| b == b']') {
            Some(end) => match &inner[end + 1..] {
                [] => &inner[..end],
                [b':', port @ ..] if is_port(port) => &inner[..end],
                _ => raw,
            },
            None => raw,
        }
    } else {
        match raw.iter().rposition(|&b| b == b':') {
            // More than one colon: a bare IPv6 literal, no port.
            Some(c) if !raw[..c].contains(&b':') && is_port(&raw[c + 1..]) => &raw[..c],
            _ => raw,
        }
    };
    name.strip_suffix(b".").unwrap_or(name)
}

/// The lookup key of an exact host from the config: normalised like a request's host, lowercase.
fn exact_key(host: &str) -> Box<[u8]> {
    host_name(host.as_bytes()).to_ascii_lowercase().into()
}

/// The key of a wildcard host from the config: lowercase, one trailing dot removed, with a
/// leading dot (the config stores `*.example.com` as `.example.com`).
fn suffix_key(suffix: &str) -> Box<[u8]> {
    let s = suffix.as_bytes();
    let s = s.strip_suffix(b".").unwrap_or(s);
    let mut key = Vec::with_capacity(s.len() + 1);
    if s.first() != Some(&b'.') {
        key.push(b'.');
    }
    key.extend_from_slice(s);
    key.make_ascii_lowercase();
    key.into()
}

/// `host` ends with `suffix` (which starts with '.') and has at least one byte before it.
fn ends_with_ignore_case(host: &[u8], suffix: &[u8]) -> bool {
    host.len() > suffix.len() && host[host.len() - suffix.len()..].eq_ignore_ascii_case(suffix)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::http::defaults::catch_all_route;
    use crate::config::HeaderMatch;

    /// A route forwarding to cluster 0. `host`: `""` any, `"*.x"` wildcard, else exact.
    /// `path`: `"=/p"` exact, else a prefix.
    fn r(host: &str, path: &str) -> RouteConfig {
        let mut route = catch_all_route(0);
        route.host = match host {
            "" => HostMatch::Any,
            h if h.starts_with("*.") => HostMatch::Suffix(h[1..].into()),
            h => HostMatch::Exact(h.into()),
        };
        route.path = match path.strip_prefix('=') {
            Some(p) => PathMatch::Exact(p.into()),
            None => PathMatch::Prefix(path.into()),
        };
        route
    }

    fn methods(mut route: RouteConfig, m: &[&str]) -> RouteConfig {
        route.methods = m.iter().map(|&s| s.into()).collect();
        route
    }

    fn header(mut route: RouteConfig, name: &str, value: Option<&str>) -> RouteConfig {
        route.headers.push(HeaderMatch {
            name: name.into(),
            value: value.map(Into::into),
        });
        route
    }

    /// `find` for a GET without header fields.
    fn get(t: &RouteTable, host: Option<&str>, path: &str) -> Option<usize> {
        find(t, host, path, "GET", &[])
    }

    /// `find` with header fields given as (lowercase name, value); the first one of a name wins.
    fn find(
        t: &RouteTable,
        host: Option<&str>,
        path: &str,
        method: &str,
        fields: &[(&str, &str)],
    ) -> Option<usize> {
        t.find(
            host.map(str::as_bytes),
            path.as_bytes(),
            method.as_bytes(),
            |name| {
                fields
                    .iter()
                    .find(|(n, _)| n.as_bytes() == name)
                    .map(|(_, v)| v.as_bytes())
            },
        )
    }

    /// Checks (host, path, expected route) rows against one table, GET without headers.
    fn check(t: &RouteTable, rows: &[(Option<&str>, &str, Option<usize>)]) {
        for &(host, path, want) in rows {
            assert_eq!(get(t, host, path), want, "host {host:?} path {path:?}");
        }
    }

    fn rewritten(from: &str, to: &str, path: &str) -> String {
        let rw = PrefixRewrite {
            from: from.into(),
            to: to.into(),
        };
        let mut out = Vec::new();
        rewrite_path(&rw, path.as_bytes(), &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn single_catch_all_is_the_fast_path() {
        let t = RouteTable::compile(&[catch_all_route(0)]);
        assert_eq!(t.catch_all, Some(0));
        check(
            &t,
            &[
                (Some("example.com"), "/", Some(0)),
                (Some("EXAMPLE.com:80"), "/a/b?c=d", Some(0)),
                (None, "/x", Some(0)),
                (Some("[::1]:8080"), "/", Some(0)),
                (Some("a"), "*", None),
                (Some("a"), "", None),
            ],
        );
    }

    #[test]
    fn fast_path_needs_an_unconditional_any_host_root_prefix() {
        let cases = [
            vec![methods(r("", "/"), &["GET"])],
            vec![header(r("", "/"), "x-a", None)],
            vec![r("", "/api")],
            vec![r("a.com", "/")],
            vec![r("*.a.com", "/")],
            vec![r("", "/"), r("a.com", "/x")],
            vec![r("", "=/")],
        ];
        for routes in cases {
            assert_eq!(RouteTable::compile(&routes).catch_all, None, "{routes:?}");
        }
        // Another route ahead of the catch-all in file order does not stop the fast path when it
        // is itself an unconditional "/" prefix: it still wins by file order.
        let t = RouteTable::compile(&[r("", "/"), r("", "/")]);
        assert_eq!(t.catch_all, Some(0));
        // A longer prefix sorts first, so the fast path is off and "/api" still wins.
        let t = RouteTable::compile(&[r("", "/"), r("", "/api")]);
        assert_eq!(t.catch_all, None);
        check(&t, &[(None, "/api/x", Some(1)), (None, "/other", Some(0))]);
    }

    #[test]
    fn no_routes_match_nothing() {
        let t = RouteTable::compile(&[]);
        check(&t, &[(Some("a.com"), "/", None), (None, "/", None)]);
    }

    #[test]
    fn exact_host_then_longest_wildcard_then_any() {
        // File order is the reverse of the precedence.
        let t = RouteTable::compile(&[
            r("", "/"),
            r("*.example.com", "/"),
            r("*.b.example.com", "/"),
            r("x.b.example.com", "/"),
        ]);
        check(
            &t,
            &[
                (Some("x.b.example.com"), "/", Some(3)),
                (Some("y.b.example.com"), "/", Some(2)),
                (Some("z.y.b.example.com"), "/", Some(2)),
                (Some("b.example.com"), "/", Some(1)),
                (Some("y.example.com"), "/", Some(1)),
                (Some("example.com"), "/", Some(0)),
                (Some("other.org"), "/", Some(0)),
            ],
        );
    }

    #[test]
    fn host_group_outranks_path_specificity() {
        // An exact path in the any group does not beat a "/" prefix in the exact-host group.
        let t = RouteTable::compile(&[r("", "=/x"), r("*.a.com", "/"), r("a.com", "/")]);
        check(
            &t,
            &[
                (Some("a.com"), "/x", Some(2)),
                (Some("w.a.com"), "/x", Some(1)),
                (Some("b.com"), "/x", Some(0)),
                (Some("b.com"), "/y", None),
            ],
        );
    }

    #[test]
    fn falls_through_exact_to_wildcard_to_any_by_path() {
        let t = RouteTable::compile(&[
            r("api.example.com", "/api"),
            r("*.example.com", "/admin"),
            r("", "/"),
        ]);
        check(
            &t,
            &[
                (Some("api.example.com"), "/api/v1", Some(0)),
                (Some("api.example.com"), "/admin", Some(1)),
                (Some("api.example.com"), "/other", Some(2)),
                (Some("www.example.com"), "/api", Some(2)),
                (Some("www.example.com"), "/admin/x", Some(1)),
            ],
        );
    }

    #[test]
    fn falls_through_groups_on_method_and_header_conditions() {
        let t = RouteTable::compile(&[
            methods(r("a.com", "/"), &["POST"]),
            header(r("*.com", "/"), "x-canary", Some("1")),
            r("", "/"),
        ]);
        assert_eq!(find(&t, Some("a.com"), "/", "POST", &[]), Some(0));
        assert_eq!(
            find(&t, Some("a.com"), "/", "GET", &[("x-canary", "1")]),
            Some(1)
        );
        assert_eq!(
            find(&t, Some("a.com"), "/", "GET", &[("x-canary", "0")]),
            Some(2)
        );
        assert_eq!(find(&t, Some("a.com"), "/", "GET", &[]), Some(2));
    }

    #[test]
    fn no_match_in_any_group_is_none() {
        let t = RouteTable::compile(&[r("a.com", "/"), r("", "/api")]);
        check(
            &t,
            &[
                (Some("a.com"), "/x", Some(0)),
                (Some("b.com"), "/api", Some(1)),
                (Some("b.com"), "/x", None),
                (None, "/x", None),
            ],
        );
    }

    #[test]
    fn wildcard_matches_any_depth_but_not_the_apex() {
        let t = RouteTable::compile(&[r("*.example.com", "/")]);
        check(
            &t,
            &[
                (Some("a.example.com"), "/", Some(0)),
                (Some("a.b.example.com"), "/", Some(0)),
                (Some("example.com"), "/", None),
                (Some(".example.com"), "/", None),
                (Some("badexample.com"), "/", None),
                (Some("example.com.evil.org"), "/", None),
                (Some("a.example.org"), "/", None),
            ],
        );
    }

    #[test]
    fn equal_length_wildcards_do_not_interfere() {
        let t = RouteTable::compile(&[r("*.aaa.com", "/"), r("*.bbb.com", "/")]);
        check(
            &t,
            &[
                (Some("x.aaa.com"), "/", Some(0)),
                (Some("x.bbb.com"), "/", Some(1)),
                (Some("x.ccc.com"), "/", None),
            ],
        );
    }

    #[test]
    fn hosts_are_case_insensitive() {
        let t = RouteTable::compile(&[
            r("api.example.com", "/"),
            r("*.example.org", "/"),
            // Not valid config (the validator wants lowercase), still normalised.
            r("MiXeD.net", "/"),
        ]);
        check(
            &t,
            &[
                (Some("API.Example.COM"), "/", Some(0)),
                (Some("api.example.com"), "/", Some(0)),
                (Some("WWW.EXAMPLE.ORG"), "/", Some(1)),
                (Some("mixed.NET"), "/", Some(2)),
            ],
        );
    }

    #[test]
    fn ports_are_ignored() {
        let t = RouteTable::compile(&[r("a.com", "/"), r("*.b.com", "/"), r("", "/")]);
        check(
            &t,
            &[
                (Some("a.com:8080"), "/", Some(0)),
                (Some("A.COM:443"), "/", Some(0)),
                (Some("a.com:"), "/", Some(0)),
                (Some("x.b.com:80"), "/", Some(1)),
                // Not a port: the value matches no host.
                (Some("a.com:80x"), "/", Some(2)),
                (Some("a.com:8:8"), "/", Some(2)),
            ],
        );
    }

    #[test]
    fn ipv6_literals() {
        let t = RouteTable::compile(&[r("[::1]", "/"), r("fe80::1", "/"), r("", "/")]);
        check(
            &t,
            &[
                (Some("[::1]:8080"), "/", Some(0)),
                (Some("[::1]"), "/", Some(0)),
                (Some("[::1]:"), "/", Some(0)),
                (Some("[FE80::1]:443"), "/", Some(1)),
                (Some("[fe80::1]"), "/", Some(1)),
                (Some("::1"), "/", Some(0)),
                (Some("[::2]:8080"), "/", Some(2)),
                (Some("[::1]x"), "/", Some(2)),
                (Some("[::1"), "/", Some(2)),
            ],
        );
    }

    #[test]
    fn one_trailing_dot_is_ignored() {
        let t = RouteTable::compile(&[
            r("a.com", "/"),
            r("*.b.com", "/"),
            r("c.com.", "/"),
            r("", "/"),
        ]);
        check(
            &t,
            &[
                (Some("a.com."), "/", Some(0)),
                (Some("a.com.:8080"), "/", Some(0)),
                (Some("x.b.com."), "/", Some(1)),
                (Some("c.com"), "/", Some(2)),
                (Some("c.com."), "/", Some(2)),
                (Some("a.com.."), "/", Some(3)),
                (Some("b.com."), "/", Some(3)),
            ],
        );
    }

    #[test]
    fn missing_or_empty_host_only_reaches_the_any_group() {
        let t = RouteTable::compile(&[r("a.com", "/"), r("*.com", "/"), r("", "/any")]);
        check(
            &t,
            &[
                (None, "/", None),
                (None, "/any", Some(2)),
                (Some(""), "/", None),
                (Some(""), "/any", Some(2)),
                (Some(":80"), "/any", Some(2)),
            ],
        );
    }

    #[test]
    fn differently_spelled_exact_hosts_share_a_group() {
        let t = RouteTable::compile(&[
            methods(r("a.com.", "/"), &["POST"]),
            r("A.com", "/"),
            r("a.com", "/x"),
        ]);
        assert_eq!(t.exact.len(), 1);
        assert_eq!(find(&t, Some("a.com"), "/", "POST", &[]), Some(0));
        assert_eq!(find(&t, Some("a.com"), "/", "GET", &[]), Some(1));
        assert_eq!(find(&t, Some("a.com"), "/x", "GET", &[]), Some(2));
    }

    #[test]
    fn hosts_longer_than_the_stack_buffer() {
        let long = "a".repeat(300) + ".com";
        let t = RouteTable::compile(&[r(&long, "/"), r("", "/")]);
        assert_eq!(get(&t, Some(&long.to_ascii_uppercase()), "/"), Some(0));
        assert_eq!(get(&t, Some(&format!("{long}:80")), "/"), Some(0));
        assert_eq!(get(&t, Some(&("b".repeat(300) + ".com")), "/"), Some(1));
        // With short exact hosts only, a long request host skips the lookup.
        let t = RouteTable::compile(&[r("a.com", "/"), r("", "/")]);
        assert_eq!(get(&t, Some(&long), "/"), Some(1));
    }

    #[test]
    fn exact_path_before_prefix_then_longest_prefix() {
        let t = RouteTable::compile(&[
            r("", "/"),
            r("", "/api"),
            r("", "/api/v1"),
            r("", "=/api/v1/health"),
            r("", "=/api"),
        ]);
        check(
            &t,
            &[
                (None, "/api/v1/health", Some(3)),
                (None, "/api/v1/health?full", Some(3)),
                (None, "/api/v1/healthz", Some(2)),
                (None, "/api/v1/x", Some(2)),
                (None, "/api/v2", Some(1)),
                (None, "/api", Some(4)),
                (None, "/api/", Some(1)),
                (None, "/apiv1", Some(0)),
                (None, "/", Some(0)),
            ],
        );
    }

    #[test]
    fn file_order_breaks_ties() {
        let t = RouteTable::compile(&[
            r("", "/same"),
            r("", "/same"),
            r("", "=/e"),
            r("", "=/e"),
            r("", "/bbbb"),
            r("", "/aaaa"),
        ]);
        check(
            &t,
            &[
                (None, "/same/x", Some(0)),
                (None, "/e", Some(2)),
                (None, "/bbbb", Some(4)),
                (None, "/aaaa", Some(5)),
            ],
        );
        // A tie with conditions: the first whose conditions hold wins.
        let t = RouteTable::compile(&[
            header(r("", "/p"), "x-a", None),
            methods(r("", "/p"), &["GET"]),
            r("", "/p"),
        ]);
        assert_eq!(find(&t, None, "/p", "GET", &[("x-a", "")]), Some(0));
        assert_eq!(find(&t, None, "/p", "GET", &[]), Some(1));
        assert_eq!(find(&t, None, "/p", "PUT", &[]), Some(2));
    }

    #[test]
    fn prefix_without_trailing_slash_matches_on_a_segment_boundary() {
        let t = RouteTable::compile(&[r("", "/api")]);
        check(
            &t,
            &[
                (None, "/api", Some(0)),
                (None, "/api/", Some(0)),
                (None, "/api/x", Some(0)),
                (None, "/api/x/y", Some(0)),
                (None, "/api?x", Some(0)),
                (None, "/api?x/y", Some(0)),
                (None, "/apix", None),
                (None, "/ap", None),
                (None, "/", None),
                (None, "/API", None),
                (None, "//api", None),
            ],
        );
    }

    #[test]
    fn prefix_with_trailing_slash_needs_the_slash() {
        let t = RouteTable::compile(&[r("", "/api/")]);
        check(
            &t,
            &[
                (None, "/api/x", Some(0)),
                (None, "/api/", Some(0)),
                (None, "/api/?q", Some(0)),
                (None, "/api", None),
                (None, "/api?x/", None),
                (None, "/apix/", None),
            ],
        );
    }

    #[test]
    fn root_prefix_matches_every_origin_form_path() {
        // Not the fast path (a method condition), same answers.
        let t = RouteTable::compile(&[methods(r("", "/"), &["GET"])]);
        check(
            &t,
            &[
                (None, "/", Some(0)),
                (None, "/anything/at/all", Some(0)),
                (None, "/?q", Some(0)),
                (None, "*", None),
                (None, "", None),
            ],
        );
    }

    #[test]
    fn exact_path_compares_bytes_before_the_query() {
        let t = RouteTable::compile(&[r("", "=/health")]);
        check(
            &t,
            &[
                (None, "/health", Some(0)),
                (None, "/health?verbose=1", Some(0)),
                (None, "/health?", Some(0)),
                (None, "/health/", None),
                (None, "/healthz", None),
                (None, "/HEALTH", None),
                (None, "/health%3F", None),
            ],
        );
    }

    #[test]
    fn paths_are_not_decoded_or_normalised() {
        let t = RouteTable::compile(&[r("", "/api")]);
        check(
            &t,
            &[
                (None, "/%61pi/x", None),
                (None, "/x/../api", None),
                (None, "/./api", None),
                (None, "/api/../admin", Some(0)),
                (None, "/api%2Fx", None),
            ],
        );
    }

    #[test]
    fn methods_are_case_sensitive_and_empty_means_any() {
        let t = RouteTable::compile(&[methods(r("", "/"), &["GET", "HEAD"]), r("", "/any")]);
        for (method, path, want) in [
            ("GET", "/", Some(0)),
            ("HEAD", "/", Some(0)),
            ("POST", "/", None),
            ("get", "/", None),
            ("GE", "/", None),
            ("GETX", "/", None),
            ("PURGE", "/any", Some(1)),
            ("post", "/any", Some(1)),
        ] {
            assert_eq!(find(&t, None, path, method, &[]), want, "{method} {path}");
        }
    }

    #[test]
    fn header_presence_and_exact_value() {
        let t = RouteTable::compile(&[
            header(r("", "/"), "x-env", Some("canary")),
            header(r("", "/"), "authorization", None),
            r("", "/"),
        ]);
        for (fields, want) in [
            (&[("x-env", "canary")][..], Some(0)),
            (&[("x-env", "Canary")], Some(2)),
            (&[("x-env", "canary ")], Some(2)),
            (&[("x-env", "")], Some(2)),
            (&[("x-env", "prod"), ("x-env", "canary")], Some(2)),
            (&[("authorization", "")], Some(1)),
            (&[("authorization", "Bearer x")], Some(1)),
            (&[("x-env", "prod"), ("authorization", "a")], Some(1)),
            (&[], Some(2)),
        ] {
            assert_eq!(find(&t, None, "/", "GET", fields), want, "{fields:?}");
        }
    }

    #[test]
    fn all_header_conditions_must_hold_and_names_are_looked_up_lowercase() {
        let route = header(header(r("", "/"), "x-a", Some("1")), "X-B", None);
        let t = RouteTable::compile(&[route]);
        assert_eq!(
            find(&t, None, "/", "GET", &[("x-a", "1"), ("x-b", "")]),
            Some(0)
        );
        assert_eq!(find(&t, None, "/", "GET", &[("x-a", "1")]), None);
        assert_eq!(find(&t, None, "/", "GET", &[("x-b", "")]), None);
    }

    #[test]
    fn asterisk_form_matches_no_route() {
        let t = RouteTable::compile(&[r("a.com", "/"), r("", "/")]);
        assert_eq!(find(&t, Some("a.com"), "*", "OPTIONS", &[]), None);
        assert_eq!(find(&t, Some("b.com"), "*", "OPTIONS", &[]), None);
    }

    #[test]
    fn rewrite_cases() {
        for (from, to, path, want) in [
            // strip_prefix = "/api"
            ("/api", "", "/api/x", "/x"),
            ("/api", "", "/api", "/"),
            ("/api", "", "/api?q", "/?q"),
            ("/api", "", "/api/?q=1", "/?q=1"),
            ("/api", "", "/api/x/y?a=b&c", "/x/y?a=b&c"),
            // rewrite_prefix = "/v2"
            ("/api", "/v2", "/api/x", "/v2/x"),
            ("/api", "/v2", "/api", "/v2"),
            ("/api", "/v2", "/api?q", "/v2?q"),
            ("/api", "/v2", "/api/", "/v2/"),
            // Trailing slashes on either side join on the boundary.
            ("/api", "/", "/api/x", "/x"),
            ("/api", "/", "/api", "/"),
            ("/api", "/v2/", "/api/x", "/v2/x"),
            ("/api", "/v2/", "/api", "/v2/"),
            ("/api/", "", "/api/x", "/x"),
            ("/api/", "", "/api/", "/"),
            ("/api/", "/", "/api/x?q", "/x?q"),
            ("/api/", "/v2", "/api/x", "/v2/x"),
            ("/api/", "/v2/", "/api/x", "/v2/x"),
            // The root prefix.
            ("/", "/v2", "/x", "/v2/x"),
            ("/", "/v2", "/", "/v2/"),
            ("/", "", "/x?q", "/x?q"),
            ("/", "/", "/", "/"),
            // Exact-path routes.
            ("/old", "/new", "/old", "/new"),
            ("/old", "/new", "/old?a=1", "/new?a=1"),
            // The query is not rewritten even when it repeats the prefix.
            ("/api", "", "/api?next=/api/x", "/?next=/api/x"),
            // Bytes are kept as sent.
            ("/api", "/v2", "/api/%2e%2e/x", "/v2/%2e%2e/x"),
            // Not a prefix (no route would have matched): unchanged.
            ("/api", "/v2", "/other?q", "/other?q"),
        ] {
            assert_eq!(
                rewritten(from, to, path),
                want,
                "{from:?} -> {to:?} on {path:?}"
            );
        }
    }

    #[test]
    fn rewrite_appends_to_out() {
        let rw = PrefixRewrite {
            from: "/api".into(),
            to: String::new(),
        };
        let mut out = b"GET ".to_vec();
        rewrite_path(&rw, b"/api", &mut out);
        assert_eq!(out, b"GET /");
        out.extend_from_slice(b" | ");
        rewrite_path(&rw, b"/api/x?y", &mut out);
        assert_eq!(out, b"GET / | /x?y");
    }

    #[test]
    fn host_name_normalisation() {
        for (raw, want) in [
            ("example.com", "example.com"),
            ("Example.COM:8080", "Example.COM"),
            ("example.com.", "example.com"),
            ("example.com.:80", "example.com"),
            ("[::1]:8080", "::1"),
            ("[::1]", "::1"),
            ("::1", "::1"),
            ("10.0.0.1:80", "10.0.0.1"),
            ("[::1]junk", "[::1]junk"),
            ("a:b", "a:b"),
            ("", ""),
        ] {
            assert_eq!(host_name(raw.as_bytes()), want.as_bytes(), "{raw:?}");
        }
    }
}
