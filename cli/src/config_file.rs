//! Loads a Strait TOML configuration file into the validated model
//! [`strait_engine::config::Config`].
//!
//! Owns: the file schema (which tables and keys exist, their types and defaults) and the
//! diagnostics for a bad file. Must not: decide what a valid configuration is beyond the file's
//! shape — value parsers, limits and cross-field rules live in `strait_engine::config`, and
//! `Config::validate` runs last as a backstop.
//!
//! Every problem in the file is reported, each with `file:line:column`, the dotted key path
//! (`listener[0].cluster`), what is wrong and what would be valid. The document is parsed into
//! toml's spanned tree and walked by hand with a table cursor (see `cursor`), so unknown keys,
//! type errors and bad values are all collected instead of stopping at the first one. The HTTP
//! part of the schema (routes, cluster HTTP settings, the access log) lives in `http`; sniffing,
//! TLS and HTTP/2 settings (`protocols`, `[listener.tls]`, `[listener.h2]`) in `tls`.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};

use strait_engine::config::{
    limits, parse_core_list, AdminConfig, ClusterConfig, Config, ConfigIssue, EndpointConfig,
    IoDriver, ListenerConfig, ListenerProtocol, LogConfig, LogFormat, LogLevel, ProtocolSet,
    ProxyProtocol, RelayMode, RuntimeConfig, SniffConfig, UpstreamHttpConfig,
};
use toml::de::{DeTable, DeValue};

mod cursor;
mod http;
#[cfg(test)]
mod http_tests;
#[cfg(test)]
mod tests;
mod tls;
#[cfg(test)]
mod tls_tests;
mod values;

pub(crate) use tls::check_readable;

use cursor::{Ctx, Field, Span, TableCursor};
use values::{address, choice, duration, int_in, name, size};

/// One problem in a configuration file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub file: PathBuf,
    /// 1-based; 0 when the problem is not at a place in the file (it could not be read).
    pub line: usize,
    /// 1-based, in characters; 0 together with `line`.
    pub column: usize,
    /// Dotted key path such as `cluster[1].endpoints[2].weight`; empty for syntax errors.
    pub key: String,
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if self.line > 0 {
            write!(f, ":{}:{}", self.line, self.column)?;
        }
        f.write_str(": ")?;
        if !self.key.is_empty() {
            write!(f, "{}: ", self.key)?;
        }
        f.write_str(&self.message)
    }
}

impl std::error::Error for Diagnostic {}

/// Reads and loads `path`. A file that cannot be read gives one diagnostic at line 0, column 0.
pub fn load_file(path: &Path) -> Result<Config, Vec<Diagnostic>> {
    match std::fs::read_to_string(path) {
        Ok(text) => load_str(path, &text),
        Err(e) => Err(vec![Diagnostic {
            file: path.to_path_buf(),
            line: 0,
            column: 0,
            key: String::new(),
            message: format!("cannot read the configuration file: {e}"),
        }]),
    }
}

/// Loads configuration text. `path` labels diagnostics, and relative certificate and key paths
/// are resolved against its directory (those files are checked to be readable).
pub fn load_str(path: &Path, text: &str) -> Result<Config, Vec<Diagnostic>> {
    let mut ctx = Ctx::new(text);
    let (root, syntax_errors) = DeTable::parse_recoverable(text);
    if !syntax_errors.is_empty() {
        // The recovered tree is partial; walking it would add confusing follow-up errors.
        let mut seen = Vec::new();
        for e in &syntax_errors {
            let span = e.span().unwrap_or(text.len()..text.len());
            let message = syntax_message(text, e.message(), &span);
            if !seen.contains(&(span.start, message.clone())) {
                seen.push((span.start, message.clone()));
                ctx.error(&span, "", message);
            }
        }
        return Err(ctx.into_diagnostics(path));
    }

    let root_span = root.span();
    let config = walk_in(&mut ctx, root_span, root.get_ref(), &base_dir(path));
    if let Err(issues) = config.validate() {
        add_issues(&mut ctx, issues);
    }
    if ctx.has_errors() {
        Err(ctx.into_diagnostics(path))
    } else {
        Ok(config)
    }
}

/// The absolute directory of the configuration file at `path` (relative to the working directory
/// when `path` is relative), without `.` components.
fn base_dir(path: &Path) -> PathBuf {
    let dir = path.parent().unwrap_or(Path::new(""));
    let dir = match std::env::current_dir() {
        Ok(cwd) if dir.is_relative() => cwd.join(dir),
        _ => dir.to_path_buf(),
    };
    dir.components().collect()
}

/// Positions `Config::validate` issues at the key they name (or the nearest enclosing table that
/// was written), skipping those already reported while walking.
fn add_issues(ctx: &mut Ctx<'_>, issues: Vec<ConfigIssue>) {
    for issue in issues {
        if !ctx.covered(&issue.path) {
            let span = ctx.span_for(&issue.path);
            ctx.error(&span, issue.path, issue.message);
        }
    }
}

fn syntax_message(text: &str, message: &str, span: &Span) -> String {
    let snippet = text.get(span.clone()).unwrap_or("").trim();
    if message == "duplicate key" && !snippet.is_empty() {
        return format!(
            "TOML syntax error: duplicate key {snippet:?}: a key or table may be defined only once \
             (repeatable tables such as [[listener]] use double brackets)"
        );
    }
    let mut out = format!("TOML syntax error: {message}");
    // An unquoted word after `=` is read as a number, boolean or date and fails as one; say so.
    let before = text.get(..span.start).unwrap_or("");
    let after_equals = before[before.rfind('\n').map_or(0, |i| i + 1)..].contains('=');
    let bare = !snippet.is_empty()
        && snippet
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:+".contains(&b));
    if after_equals && bare && !message.contains("must be quoted") {
        out.push_str(&format!(
            "; if this is meant as a string, quote it: \"{snippet}\""
        ));
    }
    out
}

const ROOT_KEYS: &[&str] = &[
    "runtime",
    "admin",
    "log",
    "access_log",
    "listener",
    "cluster",
];
const RUNTIME_KEYS: &[&str] = &[
    "cores",
    "io_driver",
    "uring_entries",
    "drain_timeout",
    "max_connections_per_core",
    "relay",
    "relay_buffer_size",
];
const ADMIN_KEYS: &[&str] = &["address"];
const LOG_KEYS: &[&str] = &["level", "format"];
/// Ends with `http::LISTENER_HTTP_KEYS`.
const LISTENER_KEYS: &[&str] = &[
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
const CLUSTER_KEYS: &[&str] = &[
    "name",
    "connect_timeout",
    "connect_attempts",
    "proxy_protocol",
    "endpoints",
    "host",
    "pool_max_idle",
    "pool_idle_timeout",
    "max_connections_per_endpoint",
    "protocol",
    "tls",
];
const ENDPOINT_KEYS: &[&str] = &["address", "weight"];

use strait_engine::config::defaults::{
    BACKLOG as DEFAULT_BACKLOG, CONNECT_ATTEMPTS as DEFAULT_CONNECT_ATTEMPTS,
    CONNECT_TIMEOUT as DEFAULT_CONNECT_TIMEOUT, IDLE_TIMEOUT as DEFAULT_IDLE_TIMEOUT,
};
use strait_engine::config::tls::defaults::SNIFF_TIMEOUT as DEFAULT_SNIFF_TIMEOUT;
const DEFAULT_WEIGHT: u32 = 1;
const MAX_BACKLOG: i128 = 65535;

/// Placeholder for an address that is missing or invalid (an error has been reported for it).
const NO_ADDRESS: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0);

/// [`walk_in`], resolving relative certificate and key paths against the working directory.
#[cfg(test)]
fn walk(ctx: &mut Ctx<'_>, root_span: Span, root: &DeTable<'_>) -> Config {
    walk_in(ctx, root_span, root, Path::new(""))
}

/// Walks the document, reporting problems into `ctx`. Values that are missing or invalid are
/// replaced by placeholders so the indices of listeners, clusters and endpoints always match the
/// file (and so the key paths of `Config::validate` issues do too); the caller discards the result
/// when any error was reported. Relative certificate and key paths are resolved against `base`.
fn walk_in(ctx: &mut Ctx<'_>, root_span: Span, root: &DeTable<'_>, base: &Path) -> Config {
    let mut top = TableCursor::new(
        ctx,
        String::new(),
        "the top level",
        root_span,
        root,
        ROOT_KEYS,
    );

    let runtime = match top
        .get(ctx, "runtime")
        .and_then(|f| f.table(ctx, "[runtime]", RUNTIME_KEYS))
    {
        Some(t) => runtime(ctx, t),
        None => RuntimeConfig::default(),
    };
    let admin = match top
        .get(ctx, "admin")
        .and_then(|f| f.table(ctx, "[admin]", ADMIN_KEYS))
    {
        Some(mut t) => {
            let address = t.require(ctx, "address").and_then(|f| address(ctx, &f));
            t.finish(ctx);
            address.map(|address| AdminConfig { address })
        }
        None => None,
    };
    let log = match top
        .get(ctx, "log")
        .and_then(|f| f.table(ctx, "[log]", LOG_KEYS))
    {
        Some(t) => log(ctx, t),
        None => LogConfig::default(),
    };
    let access_log = top
        .get(ctx, "access_log")
        .and_then(|f| f.table(ctx, "[access_log]", http::ACCESS_LOG_KEYS))
        .map(|t| http::access_log(ctx, t));
    let (clusters, cluster_names) = match top.get(ctx, "cluster") {
        Some(f) => clusters(ctx, &f, base),
        None => (Vec::new(), Vec::new()),
    };
    let listeners = match top.get(ctx, "listener") {
        Some(f) => listeners(ctx, &f, &cluster_names, base),
        None => {
            ctx.error(&(0..0), "listener", "at least one [[listener]] is required");
            Vec::new()
        }
    };
    top.finish(ctx);

    Config {
        runtime,
        admin,
        log,
        listeners,
        clusters,
        access_log,
    }
}

fn runtime(ctx: &mut Ctx<'_>, mut t: TableCursor<'_, '_>) -> RuntimeConfig {
    let mut rt = RuntimeConfig::default();
    if let Some(f) = t.get(ctx, "cores") {
        if let Some(s) = f.str(ctx, "a core list string such as \"0-3,6\" or \"all\"") {
            match parse_core_list(s) {
                Ok(cores) => rt.cores = cores,
                Err(e) => f.error(ctx, e),
            }
        }
    }
    if let Some(f) = t.get(ctx, "io_driver") {
        if let Some(v) = choice(ctx, &f, IoDriver::parse, IoDriver::VALID) {
            rt.io_driver = v;
        }
    }
    if let Some(f) = t.get(ctx, "uring_entries") {
        let (min, max) = (limits::MIN_URING_ENTRIES, limits::MAX_URING_ENTRIES);
        if let Some(n) = int_in(ctx, &f, min.into(), max.into()) {
            rt.uring_entries = n as u32;
        }
    }
    if let Some(f) = t.get(ctx, "drain_timeout") {
        if let Some(d) = duration(ctx, &f, false) {
            rt.drain_timeout = d;
        }
    }
    if let Some(f) = t.get(ctx, "max_connections_per_core") {
        if let Some(n) = int_in(ctx, &f, 1, u32::MAX.into()) {
            rt.max_connections_per_core = n as u32;
        }
    }
    if let Some(f) = t.get(ctx, "relay") {
        if let Some(v) = choice(ctx, &f, RelayMode::parse, RelayMode::VALID) {
            rt.relay = v;
        }
    }
    if let Some(f) = t.get(ctx, "relay_buffer_size") {
        if let Some(n) = size(ctx, &f, limits::MIN_RELAY_BUFFER, limits::MAX_RELAY_BUFFER) {
            rt.relay_buffer_size = n;
        }
    }
    t.finish(ctx);
    rt
}

fn log(ctx: &mut Ctx<'_>, mut t: TableCursor<'_, '_>) -> LogConfig {
    let mut log = LogConfig::default();
    if let Some(f) = t.get(ctx, "level") {
        if let Some(v) = choice(ctx, &f, LogLevel::parse, LogLevel::VALID) {
            log.level = v;
        }
    }
    if let Some(f) = t.get(ctx, "format") {
        if let Some(v) = choice(ctx, &f, LogFormat::parse, LogFormat::VALID) {
            log.format = v;
        }
    }
    t.finish(ctx);
    log
}

/// A name as written (even when invalid, so references to it do not cascade) and where.
type NameAt = Option<(String, Span)>;

fn clusters(
    ctx: &mut Ctx<'_>,
    field: &Field<'_, '_>,
    base: &Path,
) -> (Vec<ClusterConfig>, Vec<NameAt>) {
    let Some(items) = field.elements(ctx, "an array of tables ([[cluster]])") else {
        return (Vec::new(), Vec::new());
    };
    let mut clusters = Vec::new();
    let mut names: Vec<NameAt> = Vec::new();
    for item in &items {
        let mut c = ClusterConfig {
            name: String::new(),
            endpoints: Vec::new(),
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            connect_attempts: DEFAULT_CONNECT_ATTEMPTS,
            proxy_protocol: ProxyProtocol::Off,
            http: UpstreamHttpConfig::default(),
        };
        let mut name_at = None;
        if let Some(mut t) = item.table(ctx, "[[cluster]]", CLUSTER_KEYS) {
            if let Some(f) = t.require(ctx, "name") {
                if let Some(n) = name(ctx, &f) {
                    if let Some((_, first)) = names.iter().flatten().find(|(o, _)| *o == n) {
                        let (line, _) = ctx.line_col(first.start);
                        f.error(
                            ctx,
                            format!("duplicate cluster name {n:?}; first defined at line {line}"),
                        );
                    }
                    c.name = n.clone();
                    name_at = Some((n, f.span()));
                }
            }
            if let Some(f) = t.get(ctx, "connect_timeout") {
                if let Some(d) = duration(ctx, &f, true) {
                    c.connect_timeout = d;
                }
            }
            if let Some(f) = t.get(ctx, "connect_attempts") {
                if let Some(n) = int_in(ctx, &f, 1, limits::MAX_CONNECT_ATTEMPTS.into()) {
                    c.connect_attempts = n as u32;
                }
            }
            if let Some(f) = t.get(ctx, "proxy_protocol") {
                if let Some(v) = choice(ctx, &f, ProxyProtocol::parse, ProxyProtocol::VALID) {
                    c.proxy_protocol = v;
                }
            }
            if let Some(f) = t.require(ctx, "endpoints") {
                c.endpoints = endpoints(ctx, &f);
            }
            http::upstream(ctx, &mut t, &mut c.http, base);
            t.finish(ctx);
        }
        clusters.push(c);
        names.push(name_at);
    }
    (clusters, names)
}

const ENDPOINT_EXAMPLE: &str = "{ address = \"127.0.0.1:9000\", weight = 1 }";

fn endpoints(ctx: &mut Ctx<'_>, field: &Field<'_, '_>) -> Vec<EndpointConfig> {
    let expected = format!("an array of endpoint tables such as [{ENDPOINT_EXAMPLE}]");
    let Some(items) = field.elements(ctx, &expected) else {
        return Vec::new();
    };
    if items.is_empty() {
        field.error(
            ctx,
            format!("a cluster needs at least one endpoint, e.g. endpoints = [{ENDPOINT_EXAMPLE}]"),
        );
    }
    let mut out = Vec::new();
    for item in &items {
        let mut e = EndpointConfig {
            address: NO_ADDRESS,
            weight: DEFAULT_WEIGHT,
        };
        if !matches!(item.value.get_ref(), DeValue::Table(_)) {
            item.type_error(
                ctx,
                &format!("an endpoint table such as {ENDPOINT_EXAMPLE}"),
            );
        } else if let Some(mut t) = item.table(ctx, "an endpoint table", ENDPOINT_KEYS) {
            if let Some(f) = t.require(ctx, "address") {
                if let Some(a) = address(ctx, &f) {
                    if a.port() == 0 || a.ip().is_unspecified() {
                        f.error(
                            ctx,
                            format!("an endpoint needs a concrete IP address and a non-zero port, found {a}"),
                        );
                    }
                    e.address = a;
                }
            }
            if let Some(f) = t.get(ctx, "weight") {
                if let Some(n) = int_in(ctx, &f, 1, limits::MAX_WEIGHT.into()) {
                    e.weight = n as u32;
                }
            }
            t.finish(ctx);
        }
        out.push(e);
    }
    out
}

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

fn listeners(
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
    let mut listeners = Vec::new();
    let mut names: Vec<(String, Span)> = Vec::new();
    let mut addresses: Vec<(SocketAddr, bool, Span)> = Vec::new();
    for item in &items {
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
        if let Some(mut t) = item.table(ctx, "[[listener]]", LISTENER_KEYS) {
            if let Some(f) = t.require(ctx, "name") {
                if let Some(n) = name(ctx, &f) {
                    if let Some((_, first)) = names.iter().find(|(o, _)| *o == n) {
                        let (line, _) = ctx.line_col(first.start);
                        f.error(
                            ctx,
                            format!("duplicate listener name {n:?}; first defined at line {line}"),
                        );
                    }
                    names.push((n.clone(), f.span()));
                    l.name = n;
                }
            }
            let protocol_field = t.get(ctx, "protocol");
            let kind = listener_kind(ctx, &mut t, protocol_field.as_ref());
            let default = if protocol_field.is_some() {
                ""
            } else {
                " (the default)"
            };
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
                                format!(
                                    "duplicate listener address {a}; first used at line {line}"
                                ),
                            );
                        }
                    }
                    addresses.push((a, stream, f.span()));
                    l.address = a;
                }
            }
            let mut sniff_timeout = DEFAULT_SNIFF_TIMEOUT;
            if let Some(f) = t.get(ctx, "sniff_timeout") {
                match &kind {
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
            // Required for TCP and UDP; on an http listener, a catch-all route; on a sniffing
            // one, where raw TCP goes.
            let cluster_field = match kind {
                Kind::Fixed(ListenerProtocol::Tcp | ListenerProtocol::Udp) => {
                    t.require(ctx, "cluster")
                }
                _ => t.get(ctx, "cluster"),
            };
            let cluster = match (&kind, &cluster_field) {
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
            let catch_all = match (&cluster_field, cluster) {
                (None, _) => http::CatchAll::None,
                (Some(_), Some(c)) => http::CatchAll::Cluster(c),
                (Some(_), None) => http::CatchAll::Unresolved,
            };
            match kind {
                Kind::Fixed(p @ (ListenerProtocol::Tcp | ListenerProtocol::Udp)) => {
                    http_keys.reject(ctx, p, protocol_field.is_some());
                    l.protocol = p;
                    l.cluster = Some(cluster.unwrap_or(usize::MAX));
                    match (&tls_field, tls_table) {
                        (Some(f), _) if p == ListenerProtocol::Udp => f.error(
                            ctx,
                            "TLS is for TCP listeners (DTLS is not supported); this listener is \
                             \"udp\"",
                        ),
                        (_, Some(tls)) => l.tls = Some(Box::new(tls.finish(ctx, false, "tcp"))),
                        (_, None) => {}
                    }
                }
                Kind::Fixed(p) => {
                    let h = http::listener(
                        ctx,
                        item,
                        &http_keys,
                        catch_all,
                        http::Serving::Http,
                        clusters,
                    );
                    l.protocol = p;
                    l.cluster = None;
                    l.http = Some(Box::new(h));
                    l.tls = tls_table.map(|tls| Box::new(tls.finish(ctx, true, p.as_str())));
                }
                Kind::Sniffing(p) => {
                    let set = p.set;
                    let tls_table = match (tls_table, &tls_field) {
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
                        .is_some_and(|tls| tls.alpn_offers_http().unwrap_or(http_keys.any()));
                    let serves_http = set.speaks_http() || http_in_tls;
                    if serves_http {
                        let h = http::listener(
                            ctx,
                            item,
                            &http_keys,
                            http::CatchAll::None,
                            http::Serving::Sniffing,
                            clusters,
                        );
                        l.http = Some(Box::new(h));
                    } else {
                        http_keys.reject_sniffing(ctx, &p.describe());
                    }
                    l.tls = tls_table.map(|tls| Box::new(tls.finish(ctx, serves_http, "sniffing")));
                    if set.tcp && cluster_field.is_none() {
                        let span = p.tcp_at.clone().unwrap_or_else(|| item.span());
                        ctx.error(
                            &span,
                            format!("{}.cluster", item.path),
                            "a listener accepting \"tcp\" needs a `cluster` to relay raw TCP \
                             connections to",
                        );
                    }
                    l.protocol = ListenerProtocol::Auto;
                    l.cluster = set.tcp.then(|| cluster.unwrap_or(usize::MAX));
                    l.sniff = Some(SniffConfig {
                        protocols: set,
                        timeout: sniff_timeout,
                    });
                }
                Kind::Unknown { sniffing } => {
                    let catch_all = if sniffing {
                        http::CatchAll::None
                    } else {
                        catch_all
                    };
                    let h = http::listener(
                        ctx,
                        item,
                        &http_keys,
                        catch_all,
                        http::Serving::Unknown,
                        clusters,
                    );
                    l.protocol = ListenerProtocol::Http;
                    l.cluster = None;
                    l.http = Some(Box::new(h));
                    // Read for its own errors only.
                    if let Some(tls) = tls_table {
                        tls.finish(ctx, true, "");
                    }
                }
            }
        }
        listeners.push(l);
    }
    listeners
}

/// The index of the cluster a field names; reports an unknown name (listing the defined ones).
fn resolve_cluster(ctx: &mut Ctx<'_>, f: &Field<'_, '_>, clusters: &[NameAt]) -> Option<usize> {
    let n = f.str(ctx, "a cluster name (a string)")?;
    let found = clusters
        .iter()
        .position(|c| matches!(c, Some((o, _)) if o == n));
    if found.is_none() {
        f.error(ctx, unknown_cluster(n, clusters));
    }
    found
}

fn unknown_cluster(name: &str, clusters: &[NameAt]) -> String {
    let mut defined: Vec<String> = Vec::new();
    for (n, _) in clusters.iter().flatten() {
        let q = format!("{n:?}");
        if !defined.contains(&q) {
            defined.push(q);
        }
    }
    if defined.is_empty() {
        format!("unknown cluster {name:?}; no [[cluster]] is defined")
    } else {
        format!(
            "unknown cluster {name:?}; defined clusters: {}",
            defined.join(", ")
        )
    }
}
