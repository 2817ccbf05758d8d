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
//! type errors and bad values are all collected instead of stopping at the first one. This
//! module reads the top level, `[runtime]`, `[admin]` and `[log]`; `[[listener]]` lives in
//! `listener`, `[[cluster]]` in `cluster`; the HTTP part of the schema (routes, cluster HTTP
//! settings, the access log) in `http`; sniffing, TLS and HTTP/2 settings (`protocols`,
//! `[listener.tls]`, `[listener.h2]`) in `tls`.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};

use strait_engine::config::{
    limits, parse_core_list, AdminConfig, Config, ConfigIssue, IoDriver, LogConfig, LogFormat,
    LogLevel, RelayMode, RuntimeConfig,
};
use toml::de::DeTable;

mod cluster;
mod cursor;
mod http;
#[cfg(test)]
mod http_tests;
mod listener;
#[cfg(test)]
mod tests;
mod tls;
#[cfg(test)]
mod tls_tests;
mod values;

pub(crate) use tls::check_readable;

use cursor::{Ctx, Field, Span, TableCursor};
use values::{address, choice, duration, int_in, size};

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
    "watch_config",
];
const ADMIN_KEYS: &[&str] = &[
    "address",
    "token_file",
    "audit_log",
    "persist",
    "max_versions",
];
const LOG_KEYS: &[&str] = &["level", "format"];

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
            let token_file = t.get(ctx, "token_file").and_then(|f| {
                let s = f.str(ctx, "a path to a file holding the bearer token, a string")?;
                let path = base.join(s);
                if let Err(e) = tls::check_readable(&path) {
                    f.error(ctx, e);
                }
                Some(path)
            });
            let audit_log = t.get(ctx, "audit_log").and_then(|f| {
                let s = f.str(ctx, "a path to the audit log file, a string")?;
                if s.is_empty() {
                    f.error(ctx, "expected a file path, found an empty string");
                    return None;
                }
                Some(base.join(s))
            });
            let persist = t
                .get(ctx, "persist")
                .and_then(|f| values::boolean(ctx, &f))
                .unwrap_or(false);
            let max_versions = t
                .get(ctx, "max_versions")
                .and_then(|f| values::int_in(ctx, &f, 1, 1024))
                .map_or(AdminConfig::DEFAULT_MAX_VERSIONS, |n| n as usize);
            t.finish(ctx);
            address.map(|address| AdminConfig {
                address,
                token_file,
                audit_log,
                persist,
                max_versions,
            })
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
        Some(f) => cluster::clusters(ctx, &f, base),
        None => (Vec::new(), Vec::new()),
    };
    let listeners = match top.get(ctx, "listener") {
        Some(f) => listener::listeners(ctx, &f, &cluster_names, base),
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
    if let Some(f) = t.get(ctx, "watch_config") {
        if let Some(b) = values::boolean(ctx, &f) {
            rt.watch_config = b;
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
