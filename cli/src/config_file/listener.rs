//! `[[listener]]`: what each listener is (`protocol`, `protocols`), its name, address, cluster,
//! timeouts and backlog, and which of its TLS and HTTP keys apply.
//!
//! Owns: the listener's own keys, the unique names and addresses among listeners (TCP and UDP
//! may share an address), what each kind of listener needs and refuses (a tcp or udp listener's
//! `cluster`, a sniffing listener's raw-TCP `cluster` and `[listener.tls]`, HTTP keys only where
//! HTTP is served), and which placeholder kind an invalid listener gets. Works like the parent
//! module: every problem is reported into `Ctx`, and what is invalid keeps a placeholder. Must
//! not: read the HTTP keys (`http`) or the TLS table (`tls`) itself.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use strait_engine::config::defaults::{
    BACKLOG as DEFAULT_BACKLOG, IDLE_TIMEOUT as DEFAULT_IDLE_TIMEOUT,
};
use strait_engine::config::tls::defaults::SNIFF_TIMEOUT as DEFAULT_SNIFF_TIMEOUT;
use strait_engine::config::{ListenerConfig, ListenerProtocol, ProtocolSet, SniffConfig};

use super::cursor::{Ctx, Field, Span, TableCursor};
use super::values::{address, choice, duration, int_in, unique_name};
use super::{http, resolve_cluster, tls, NameAt, NO_ADDRESS};

/// Ends with `http::LISTENER_HTTP_KEYS`.
pub(super) const LISTENER_KEYS: &[&str] = &[
    "name",
    "address",
    "protocol",
    "protocols",
    "sniff_timeout",
    "cluster",
    "idle_timeout",
    "backlog",
    "tls",
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
const MAX_BACKLOG: i128 = 65535;

/// What a listener is, from its `protocol` and `protocols`.
enum Kind {
    /// `protocol = "tcp"`, `"udp"` or `"http"` (written, or the default tcp).
    Fixed(ListenerProtocol),
    /// Sniffing: `protocols` written, `protocol` "auto" or left out.
    Sniffing(tls::Protocols),
    /// Invalid or incomplete (reported): the rest of the listener is read without the checks that
    /// depend on its kind. `sniffing`: whether it was meant to sniff.
    Unknown { sniffing: bool },
}

impl Kind {
    /// Whether the listener uses a TCP socket; `None` when the protocol is unknown.
    fn stream(&self) -> Option<bool> {
        match self {
            Kind::Fixed(p) => Some(p.is_stream()),
            Kind::Sniffing(_) | Kind::Unknown { sniffing: true } => Some(true),
            Kind::Unknown { sniffing: false } => None,
        }
    }
}

/// Reads `protocol` (already taken as `protocol_field`) and `protocols`.
fn listener_kind(
    ctx: &mut Ctx<'_>,
    t: &mut TableCursor<'_, '_>,
    protocol_field: Option<&Field<'_, '_>>,
) -> Kind {
    let protocol =
        protocol_field.map(|f| choice(ctx, f, ListenerProtocol::parse, ListenerProtocol::VALID));
    let protocols_field = t.get(ctx, "protocols");
    let protocols = protocols_field.as_ref().map(|f| tls::protocols(ctx, f));
    match (protocol, protocols) {
        (None, None) => Kind::Fixed(ListenerProtocol::Tcp),
        (Some(None), p) => Kind::Unknown {
            sniffing: p.is_some(),
        },
        (None | Some(Some(ListenerProtocol::Auto)), Some(Some(p))) => Kind::Sniffing(p),
        (None | Some(Some(ListenerProtocol::Auto)), Some(None)) => Kind::Unknown { sniffing: true },
        (Some(Some(ListenerProtocol::Auto)), None) => {
            if let Some(f) = protocol_field {
                ctx.error(
                    &f.span(),
                    t.key_path("protocols"),
                    format!(
                        "protocol = \"auto\" needs `protocols`: some of {}, e.g. protocols = \
                         [\"http1\", \"tcp\"]",
                        ProtocolSet::VALID
                    ),
                );
            }
            Kind::Unknown { sniffing: true }
        }
        (Some(Some(p)), protocols) => {
            if let (Some(f), Some(_)) = (&protocols_field, protocols) {
                f.error(
                    ctx,
                    format!(
                        "a listener with `protocols` sniffs each connection: write protocol = \
                         \"auto\" or leave `protocol` out (this listener is {:?})",
                        p.as_str()
                    ),
                );
            }
            Kind::Fixed(p)
        }
    }
}

/// Names and addresses of the listeners read so far, for the duplicate checks.
#[derive(Default)]
struct Seen {
    names: Vec<(String, Span)>,
    /// Address, whether it is a TCP socket, where.
    addresses: Vec<(SocketAddr, bool, Span)>,
}

pub(super) fn listeners(
    ctx: &mut Ctx<'_>,
    field: &Field<'_, '_>,
    clusters: &[NameAt],
    base: &Path,
) -> Vec<ListenerConfig> {
    let Some(items) = field.elements(ctx, "an array of tables ([[listener]])") else {
        return Vec::new();
    };
    if items.is_empty() {
        field.error(ctx, "at least one [[listener]] is required");
    }
    let mut seen = Seen::default();
    items
        .iter()
        .map(|item| listener(ctx, item, &mut seen, clusters, base))
        .collect()
}

/// The keys of one listener that its kind decides about, read before that decision.
struct Parts<'a, 'i> {
    /// Whether `protocol` is written (else it is the default).
    protocol_written: bool,
    sniff_timeout: Duration,
    cluster_field: Option<Field<'a, 'i>>,
    /// The cluster `cluster_field` names, when it resolves.
    cluster: Option<usize>,
    http_keys: http::HttpKeys<'a, 'i>,
    tls_field: Option<Field<'a, 'i>>,
    /// `[listener.tls]`, read where TLS is allowed.
    tls_table: Option<tls::TlsTable<'a, 'i>>,
}

impl Parts<'_, '_> {
    /// What the `cluster` key asks of an http listener.
    fn catch_all(&self) -> http::CatchAll {
        match (&self.cluster_field, self.cluster) {
            (None, _) => http::CatchAll::None,
            (Some(_), Some(c)) => http::CatchAll::Cluster(c),
            (Some(_), None) => http::CatchAll::Unresolved,
        }
    }
}

/// One `[[listener]]`; placeholders where it is invalid (so the indices still match the file).
fn listener(
    ctx: &mut Ctx<'_>,
    item: &Field<'_, '_>,
    seen: &mut Seen,
    clusters: &[NameAt],
    base: &Path,
) -> ListenerConfig {
    let mut l = ListenerConfig {
        name: String::new(),
        address: NO_ADDRESS,
        protocol: ListenerProtocol::Tcp,
        cluster: Some(usize::MAX),
        idle_timeout: DEFAULT_IDLE_TIMEOUT,
        backlog: DEFAULT_BACKLOG,
        http: None,
        sniff: None,
        tls: None,
    };
    let Some(mut t) = item.table(ctx, "[[listener]]", LISTENER_KEYS) else {
        return l;
    };
    listener_name(ctx, &mut t, &mut seen.names, &mut l);
    let protocol_field = t.get(ctx, "protocol");
    let kind = listener_kind(ctx, &mut t, protocol_field.as_ref());
    let default = if protocol_field.is_some() {
        ""
    } else {
        " (the default)"
    };
    listener_address(ctx, &mut t, &kind, &mut seen.addresses, &mut l);
    let sniff_timeout = sniff_timeout(ctx, &mut t, &kind, default);
    let (cluster_field, cluster) = listener_cluster(ctx, &mut t, &kind, clusters);
    let http_keys = http::HttpKeys::take(ctx, &mut t);
    let tls_field = t.get(ctx, "tls");
    // Read only where TLS is allowed (a listener of unknown kind may be meant to have it).
    let tls_allowed = match &kind {
        Kind::Fixed(p) => p.is_stream(),
        Kind::Sniffing(p) => p.set.tls,
        Kind::Unknown { .. } => true,
    };
    let tls_table = tls_field
        .as_ref()
        .filter(|_| tls_allowed)
        .and_then(|f| tls::table(ctx, f, clusters, base));
    if let Some(f) = t.get(ctx, "idle_timeout") {
        if let Some(d) = duration(ctx, &f, true) {
            l.idle_timeout = d;
        }
    }
    if let Some(f) = t.get(ctx, "backlog") {
        if let Some(n) = int_in(ctx, &f, 1, MAX_BACKLOG) {
            l.backlog = n as u32;
        }
    }
    t.finish(ctx);
    let parts = Parts {
        protocol_written: protocol_field.is_some(),
        sniff_timeout,
        cluster_field,
        cluster,
        http_keys,
        tls_field,
        tls_table,
    };
    match kind {
        Kind::Fixed(p @ (ListenerProtocol::Tcp | ListenerProtocol::Udp)) => {
            l4_listener(ctx, p, parts, &mut l);
        }
        Kind::Fixed(p) => {
            let h = http::listener(
                ctx,
                item,
                &parts.http_keys,
                parts.catch_all(),
                http::Serving::Http,
                clusters,
            );
            l.protocol = p;
            l.cluster = None;
            l.http = Some(Box::new(h));
            l.tls = parts
                .tls_table
                .map(|tls| Box::new(tls.finish(ctx, true, p.as_str())));
        }
        Kind::Sniffing(p) => sniffing_listener(ctx, item, p, parts, clusters, &mut l),
        Kind::Unknown { sniffing } => {
            let catch_all = if sniffing {
                http::CatchAll::None
            } else {
                parts.catch_all()
            };
            let h = http::listener(
                ctx,
                item,
                &parts.http_keys,
                catch_all,
                http::Serving::Unknown,
                clusters,
            );
            l.protocol = ListenerProtocol::Http;
            l.cluster = None;
            l.http = Some(Box::new(h));
            // Read for its own errors only.
            if let Some(tls) = parts.tls_table {
                tls.finish(ctx, true, "");
            }
        }
    }
    l
}

/// `name`: required, unique among the listeners.
fn listener_name(
    ctx: &mut Ctx<'_>,
    t: &mut TableCursor<'_, '_>,
    names: &mut Vec<(String, Span)>,
    l: &mut ListenerConfig,
) {
    if let Some(f) = t.require(ctx, "name") {
        if let Some(n) = unique_name(ctx, &f, names.iter(), "listener", "") {
            names.push((n.clone(), f.span()));
            l.name = n;
        }
    }
}

/// `address`: required, unique among the listeners of the same socket type.
fn listener_address(
    ctx: &mut Ctx<'_>,
    t: &mut TableCursor<'_, '_>,
    kind: &Kind,
    addresses: &mut Vec<(SocketAddr, bool, Span)>,
    l: &mut ListenerConfig,
) {
    if let Some(f) = t.require(ctx, "address") {
        // TCP and UDP sockets may share an address; with an unknown protocol, the address
        // is left out of the duplicate checks (here and in `Config::validate`).
        if let (Some(a), Some(stream)) = (address(ctx, &f), kind.stream()) {
            if a.port() != 0 {
                let same = |(o, s, _): &&(SocketAddr, bool, Span)| *o == a && *s == stream;
                if let Some((_, _, first)) = addresses.iter().find(same) {
                    let (line, _) = ctx.line_col(first.start);
                    f.error(
                        ctx,
                        format!("duplicate listener address {a}; first used at line {line}"),
                    );
                }
            }
            addresses.push((a, stream, f.span()));
            l.address = a;
        }
    }
}

/// `sniff_timeout`: only on sniffing listeners (and those of unknown kind). `default` says
/// whether the listener's protocol is the default one.
fn sniff_timeout(
    ctx: &mut Ctx<'_>,
    t: &mut TableCursor<'_, '_>,
    kind: &Kind,
    default: &str,
) -> Duration {
    let mut sniff_timeout = DEFAULT_SNIFF_TIMEOUT;
    if let Some(f) = t.get(ctx, "sniff_timeout") {
        match kind {
            Kind::Fixed(p) => f.error(
                ctx,
                format!(
                    "a sniffing setting; it needs `protocols` (protocol = \"auto\"), and \
                     this listener is {:?}{default}",
                    p.as_str()
                ),
            ),
            _ => {
                if let Some(d) = duration(ctx, &f, true) {
                    sniff_timeout = d;
                }
            }
        }
    }
    sniff_timeout
}

/// `cluster`: required for TCP and UDP; on an http listener, a catch-all route; on a sniffing
/// one, where raw TCP goes. Returns the field as written and the cluster it resolves to.
fn listener_cluster<'a, 'i>(
    ctx: &mut Ctx<'_>,
    t: &mut TableCursor<'a, 'i>,
    kind: &Kind,
    clusters: &[NameAt],
) -> (Option<Field<'a, 'i>>, Option<usize>) {
    let cluster_field = match kind {
        Kind::Fixed(ListenerProtocol::Tcp | ListenerProtocol::Udp) => t.require(ctx, "cluster"),
        _ => t.get(ctx, "cluster"),
    };
    let cluster = match (kind, &cluster_field) {
        (Kind::Sniffing(p), Some(f)) if !p.set.tcp => {
            f.error(
                ctx,
                format!(
                    "on a listener with `protocols`, `cluster` receives the raw TCP \
                     connections, and this listener accepts {}; add \"tcp\" to \
                     `protocols` (HTTP goes by [[listener.route]])",
                    p.describe()
                ),
            );
            None
        }
        (_, Some(f)) => resolve_cluster(ctx, f, clusters),
        (_, None) => None,
    };
    (cluster_field, cluster)
}

/// A tcp or udp listener: no HTTP keys, TLS only on tcp.
fn l4_listener(
    ctx: &mut Ctx<'_>,
    p: ListenerProtocol,
    parts: Parts<'_, '_>,
    l: &mut ListenerConfig,
) {
    parts.http_keys.reject(ctx, p, parts.protocol_written);
    l.protocol = p;
    l.cluster = Some(parts.cluster.unwrap_or(usize::MAX));
    match (&parts.tls_field, parts.tls_table) {
        (Some(f), _) if p == ListenerProtocol::Udp => f.error(
            ctx,
            "TLS is for TCP listeners (DTLS is not supported); this listener is \
             \"udp\"",
        ),
        (_, Some(tls)) => l.tls = Some(Box::new(tls.finish(ctx, false, "tcp"))),
        (_, None) => {}
    }
}

/// A sniffing listener: TLS settings exactly when it accepts "tls", HTTP keys where it serves
/// HTTP (directly or inside TLS), a `cluster` exactly when it accepts "tcp".
fn sniffing_listener(
    ctx: &mut Ctx<'_>,
    item: &Field<'_, '_>,
    p: tls::Protocols,
    parts: Parts<'_, '_>,
    clusters: &[NameAt],
    l: &mut ListenerConfig,
) {
    let set = p.set;
    let tls_table = match (parts.tls_table, &parts.tls_field) {
        (_, Some(f)) if !set.tls => {
            f.error(
                ctx,
                format!(
                    "add \"tls\" to `protocols` to use these TLS settings (this \
                     listener accepts {})",
                    p.describe()
                ),
            );
            None
        }
        (None, None) if set.tls => {
            let span = p.tls_at.clone().unwrap_or_else(|| item.span());
            ctx.error(
                &span,
                format!("{}.tls", item.path),
                "a listener accepting \"tls\" needs [listener.tls] with at least \
                 one [[listener.tls.certificate]] (cert and key)",
            );
            None
        }
        (tls, _) => tls,
    };
    // HTTP inside TLS: offered by ALPN, by default when HTTP keys are written.
    let http_in_tls = tls_table
        .as_ref()
        .is_some_and(|tls| tls.alpn_offers_http().unwrap_or(parts.http_keys.any()));
    let serves_http = set.speaks_http() || http_in_tls;
    if serves_http {
        let h = http::listener(
            ctx,
            item,
            &parts.http_keys,
            http::CatchAll::None,
            http::Serving::Sniffing,
            clusters,
        );
        l.http = Some(Box::new(h));
    } else {
        parts.http_keys.reject_sniffing(ctx, &p.describe());
    }
    l.tls = tls_table.map(|tls| Box::new(tls.finish(ctx, serves_http, "sniffing")));
    if set.tcp && parts.cluster_field.is_none() {
        let span = p.tcp_at.clone().unwrap_or_else(|| item.span());
        ctx.error(
            &span,
            format!("{}.cluster", item.path),
            "a listener accepting \"tcp\" needs a `cluster` to relay raw TCP \
             connections to",
        );
    }
    l.protocol = ListenerProtocol::Auto;
    l.cluster = set.tcp.then(|| parts.cluster.unwrap_or(usize::MAX));
    l.sniff = Some(SniffConfig {
        protocols: set,
        timeout: parts.sniff_timeout,
    });
}
