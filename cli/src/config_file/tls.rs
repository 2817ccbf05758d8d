//! The sniffing, TLS and HTTP/2 part of the file schema: `protocols` of a sniffing listener,
//! `[listener.tls]` with `[[listener.tls.certificate]]` and `[[listener.tls.passthrough]]`, and
//! `[listener.h2]`.
//!
//! Works like the parent module: every problem is reported into `Ctx` with its key path and
//! position, and values that are missing or invalid are replaced by placeholders. What a listener
//! of each kind may have (a cluster, routes, TLS, ALPN ids) is decided by the parent, which knows
//! the kind; this module reads the values. Certificate and key files are checked to be readable
//! regular files at load time (the engine parses them at start).

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use strait_engine::config::tls::defaults;
use strait_engine::config::{
    CertificateConfig, H2Settings, HostMatch, PassthroughRoute, ProtocolSet, TlsListenerConfig,
    TlsVersion,
};
use toml::de::DeValue;

use super::cursor::{Ctx, Field, Span};
use super::http::host_match;
use super::values::{boolean, duration, int_in, pick, size_u64};
use super::{resolve_cluster, NameAt};

const TLS_KEYS: &[&str] = &[
    "min_version",
    "alpn",
    "session_tickets",
    "handshake_timeout",
    "certificate",
    "passthrough",
];
const CERTIFICATE_KEYS: &[&str] = &["cert", "key", "server_names"];
const PASSTHROUGH_KEYS: &[&str] = &["server_name", "cluster"];
const H2_KEYS: &[&str] = &[
    "max_concurrent_streams",
    "initial_stream_window",
    "initial_connection_window",
    "max_frame_size",
    "max_pending_accept_reset_streams",
    "max_local_error_reset_streams",
    "max_send_buffer",
];
const PROTOCOL_NAMES: &[&str] = &["tls", "http1", "h2c", "tcp"];
const UPSTREAM_PROTOCOL_NAMES: &[&str] = &["http1", "h2c", "h2"];
const UPSTREAM_TLS_KEYS: &[&str] = &["server_name", "ca_file", "insecure"];
const ALPN_HTTP: &[&str] = &["h2", "http/1.1"];
const MISSING_CERTIFICATE: &str =
    "TLS termination needs at least one [[listener.tls.certificate]] (cert and key)";

/// RFC 9113 §6.9.2: flow-control windows are at least the initial 65535 and at most 2^31-1.
const MIN_WINDOW: u64 = 65_535;
const MAX_WINDOW: u64 = (1 << 31) - 1;
/// RFC 9113 §4.2: SETTINGS_MAX_FRAME_SIZE.
const MIN_FRAME: u64 = 1 << 14;
const MAX_FRAME: u64 = (1 << 24) - 1;
const MAX_PENDING_ACCEPT_RESETS: i128 = 10_000;
const MAX_LOCAL_ERROR_RESETS: i128 = 100_000;
const MIN_SEND_BUFFER: u64 = 16 << 10;
const MAX_SEND_BUFFER: u64 = 16 << 20;

/// `protocols = [...]` as written and usable: the set, and where `tls` and `tcp` are named (the
/// errors about what they require point there).
pub(super) struct Protocols {
    pub(super) set: ProtocolSet,
    pub(super) tls_at: Option<Span>,
    pub(super) tcp_at: Option<Span>,
}

impl Protocols {
    /// `"tls", "tcp"`: the accepted protocols as a message shows them.
    pub(super) fn describe(&self) -> String {
        let names: Vec<String> = self.set.names().iter().map(|n| format!("{n:?}")).collect();
        names.join(", ")
    }
}

fn protocol_hint(s: &str) -> Option<&'static str> {
    match s {
        "h2" | "http2" | "http/2" => Some(
            "HTTP/2 over TLS is negotiated by ALPN inside \"tls\"; in clear text it is \"h2c\"",
        ),
        "https" | "ssl" => Some("HTTPS is \"tls\" on a listener with HTTP routes"),
        "http/1.1" | "http/1" | "http1.1" => Some("did you mean \"http1\"?"),
        "udp" => Some("UDP is not sniffed: give it its own listener with protocol = \"udp\""),
        _ => None,
    }
}

fn parse_protocol(s: &str) -> Option<ProtocolSet> {
    let mut one = ProtocolSet::NONE;
    one.insert(s).then_some(one)
}

/// Reads `protocols`; `None` when it is unusable (reported): not an array, empty, or with an
/// element that is not a protocol or is listed twice.
pub(super) fn protocols(ctx: &mut Ctx<'_>, f: &Field<'_, '_>) -> Option<Protocols> {
    let items = f.elements(
        ctx,
        "an array of protocol names such as [\"http1\", \"tcp\"]",
    )?;
    if items.is_empty() {
        f.error(
            ctx,
            format!(
                "name at least one of {}, e.g. protocols = [\"http1\", \"tcp\"]",
                ProtocolSet::VALID
            ),
        );
        return None;
    }
    let mut out = Protocols {
        set: ProtocolSet::NONE,
        tls_at: None,
        tcp_at: None,
    };
    let mut ok = true;
    // Each protocol's canonical name, as written, and where.
    let mut seen: Vec<(&'static str, &str, Span)> = Vec::new();
    for item in &items {
        let Some(one) = pick(
            ctx,
            item,
            parse_protocol,
            ProtocolSet::VALID,
            PROTOCOL_NAMES,
            protocol_hint,
        ) else {
            ok = false;
            continue;
        };
        let canonical = one.names()[0];
        let written = match item.value.get_ref() {
            DeValue::String(s) => s.as_ref(),
            _ => "",
        };
        if let Some((_, first, at)) = seen.iter().find(|(c, ..)| *c == canonical) {
            let (line, column) = ctx.line_col(at.start);
            let same = match [*first, written].into_iter().find(|w| *w != canonical) {
                Some(alias) => format!(" ({alias:?} is another name for {canonical:?})"),
                None => String::new(),
            };
            item.error(
                ctx,
                format!(
                    "duplicate protocol {canonical:?}{same}; already listed at line {line}, \
                     column {column}"
                ),
            );
            ok = false;
            continue;
        }
        seen.push((canonical, written, item.span()));
        out.set.insert(canonical);
        match canonical {
            "tls" => out.tls_at = Some(item.span()),
            "tcp" => out.tcp_at = Some(item.span()),
            _ => {}
        }
    }
    ok.then_some(out)
}

/// `[listener.tls]` as read. `alpn` is `None` when not written: its default depends on whether
/// the listener serves HTTP, which the caller decides (see [`TlsTable::finish`]).
pub(super) struct TlsTable<'a, 'i> {
    config: TlsListenerConfig,
    alpn: Option<Vec<(String, Field<'a, 'i>)>>,
}

impl<'a, 'i> TlsTable<'a, 'i> {
    /// Whether the written `alpn` offers an HTTP protocol; `None` when `alpn` is not written.
    pub(super) fn alpn_offers_http(&self) -> Option<bool> {
        self.alpn
            .as_ref()
            .map(|ids| ids.iter().any(|(id, _)| ALPN_HTTP.contains(&id.as_str())))
    }

    /// The configuration, with the ALPN default for a listener that does (or does not) serve
    /// HTTP; reports HTTP ALPN ids on a listener that does not. `kind` names the listener in
    /// that message (`"tcp"`).
    pub(super) fn finish(
        self,
        ctx: &mut Ctx<'_>,
        serves_http: bool,
        kind: &str,
    ) -> TlsListenerConfig {
        let mut config = self.config;
        match self.alpn {
            None if serves_http => config.alpn = defaults::alpn_http(),
            None => {}
            Some(ids) => {
                for (id, f) in &ids {
                    if !serves_http && ALPN_HTTP.contains(&id.as_str()) {
                        f.error(
                            ctx,
                            format!(
                                "{id:?} is an HTTP protocol, and a {kind} listener relays the \
                                 decrypted bytes as they are; offer it on a listener with HTTP \
                                 routes (protocol = \"http\", or HTTP among `protocols`)"
                            ),
                        );
                    }
                }
                config.alpn = ids.into_iter().map(|(id, _)| id).collect();
            }
        }
        config
    }
}

/// Reads `[listener.tls]`; `None` when it is not a table (reported). `base` is the directory
/// relative certificate and key paths are resolved against.
pub(super) fn table<'a, 'i>(
    ctx: &mut Ctx<'_>,
    f: &Field<'a, 'i>,
    clusters: &[NameAt],
    base: &Path,
) -> Option<TlsTable<'a, 'i>> {
    let mut t = f.table(ctx, "[listener.tls]", TLS_KEYS)?;
    let mut config = TlsListenerConfig {
        certificates: Vec::new(),
        min_version: TlsVersion::Tls12,
        alpn: Vec::new(),
        session_tickets: true,
        handshake_timeout: defaults::HANDSHAKE_TIMEOUT,
        passthrough: Vec::new(),
    };
    if let Some(f) = t.get(ctx, "min_version") {
        let hint = |s: &str| {
            matches!(s, "1.0" | "1.1" | "tls1.0" | "tls1.1")
                .then_some("TLS 1.0 and 1.1 are not supported, RFC 8996")
        };
        if let Some(v) = pick(ctx, &f, TlsVersion::parse, TlsVersion::VALID, &[], hint) {
            config.min_version = v;
        }
    }
    let alpn = t.get(ctx, "alpn").map(|f| alpn(ctx, &f));
    if let Some(f) = t.get(ctx, "session_tickets") {
        if let Some(b) = boolean(ctx, &f) {
            config.session_tickets = b;
        }
    }
    if let Some(f) = t.get(ctx, "handshake_timeout") {
        if let Some(d) = duration(ctx, &f, true) {
            config.handshake_timeout = d;
        }
    }
    match t.get(ctx, "certificate") {
        Some(f) => config.certificates = certificates(ctx, &f, base),
        None => ctx.error(&f.span(), t.key_path("certificate"), MISSING_CERTIFICATE),
    }
    if let Some(f) = t.get(ctx, "passthrough") {
        config.passthrough = passthrough(ctx, &f, clusters);
    }
    t.finish(ctx);
    Some(TlsTable { config, alpn })
}

/// `alpn = ["h2", "http/1.1"]`: the ids that are usable, with their fields.
fn alpn<'a, 'i>(ctx: &mut Ctx<'_>, f: &Field<'a, 'i>) -> Vec<(String, Field<'a, 'i>)> {
    let mut out: Vec<(String, Field<'a, 'i>)> = Vec::new();
    let Some(items) = f.elements(
        ctx,
        "an array of ALPN protocol ids such as [\"h2\", \"http/1.1\"]",
    ) else {
        return out;
    };
    for item in items {
        let Some(id) = item.str(ctx, "an ALPN protocol id (a string) such as \"h2\"") else {
            continue;
        };
        let lower = id.to_ascii_lowercase();
        let problem = if id.is_empty() || id.len() > 255 {
            Some("an ALPN protocol id is 1 to 255 bytes".to_owned())
        } else if lower != id && ALPN_HTTP.contains(&lower.as_str()) {
            Some(format!(
                "ALPN ids are compared byte for byte (did you mean {lower:?}?)"
            ))
        } else if lower == "h2c" {
            Some(
                "\"h2c\" is never negotiated over TLS (RFC 9113 §3.1); HTTP/2 over TLS is \"h2\""
                    .to_owned(),
            )
        } else if let Some((_, first)) = out.iter().find(|(o, _)| o == id) {
            let (line, column) = ctx.line_col(first.span().start);
            Some(format!(
                "{id:?} is already listed at line {line}, column {column}"
            ))
        } else {
            None
        };
        match problem {
            Some(p) => item.error(ctx, p),
            None => out.push((id.to_owned(), item)),
        }
    }
    out
}

const CERTIFICATE_EXAMPLE: &str =
    "[[listener.tls.certificate]] with cert = \"cert.pem\" and key = \"key.pem\"";

fn certificates(ctx: &mut Ctx<'_>, f: &Field<'_, '_>, base: &Path) -> Vec<CertificateConfig> {
    let expected = format!("an array of tables ({CERTIFICATE_EXAMPLE})");
    let Some(items) = f.elements(ctx, &expected) else {
        return Vec::new();
    };
    if items.is_empty() {
        f.error(ctx, MISSING_CERTIFICATE);
    }
    let mut out = Vec::new();
    // Every server name of the certificates so far, with the index of its certificate.
    let mut names: Vec<(String, usize)> = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let mut c = CertificateConfig {
            cert: PathBuf::new(),
            key: PathBuf::new(),
            server_names: Vec::new(),
        };
        if !matches!(item.value.get_ref(), DeValue::Table(_)) {
            item.type_error(
                ctx,
                "a certificate table such as { cert = \"cert.pem\", key = \"key.pem\" }",
            );
        } else if let Some(mut t) =
            item.table(ctx, "[[listener.tls.certificate]]", CERTIFICATE_KEYS)
        {
            if let Some(f) = t.require(ctx, "cert") {
                c.cert = pem_file(ctx, &f, base, "certificate chain");
            }
            if let Some(f) = t.require(ctx, "key") {
                c.key = pem_file(ctx, &f, base, "private key");
            }
            if let Some(f) = t.get(ctx, "server_names") {
                let expected =
                    "an array of server names such as [\"example.com\", \"*.example.com\"]";
                for name_field in f.elements(ctx, expected).unwrap_or_default() {
                    let Some(n) = server_name(ctx, &name_field) else {
                        continue;
                    };
                    if let Some((_, j)) = names.iter().find(|(o, _)| *o == n) {
                        let whose = if *j == i {
                            "this certificate".to_owned()
                        } else {
                            format!("certificate[{j}]")
                        };
                        name_field.error(ctx, format!("{n:?} is already a name of {whose}"));
                        continue;
                    }
                    names.push((n.clone(), i));
                    c.server_names.push(n);
                }
            }
            t.finish(ctx);
        }
        out.push(c);
    }
    out
}

/// A certificate or key path, resolved against `base`; reports a file that cannot be read.
fn pem_file(ctx: &mut Ctx<'_>, f: &Field<'_, '_>, base: &Path, what: &str) -> PathBuf {
    let Some(s) = f.str(ctx, &format!("a path to a PEM file ({what}), a string")) else {
        return PathBuf::new();
    };
    if s.is_empty() {
        f.error(
            ctx,
            format!("expected a path to a PEM file ({what}), found an empty string"),
        );
        return PathBuf::new();
    }
    let path = base.join(s);
    if let Err(e) = check_readable(&path) {
        f.error(ctx, e);
    }
    path
}

/// Checks that `path` is a regular file this process can open, as `cannot read "PATH": reason`.
pub(crate) fn check_readable(path: &Path) -> Result<(), String> {
    let reason = match std::fs::metadata(path) {
        Err(e) => io_reason(&e),
        Ok(m) if m.is_dir() => "it is a directory, not a file".to_owned(),
        Ok(m) if !m.is_file() => "not a regular file".to_owned(),
        Ok(_) => match std::fs::File::open(path) {
            Ok(_) => return Ok(()),
            Err(e) => io_reason(&e),
        },
    };
    Err(format!("cannot read \"{}\": {reason}", path.display()))
}

/// The operating system's reason without its ` (os error N)` suffix.
fn io_reason(e: &std::io::Error) -> String {
    let s = e.to_string();
    match s.rfind(" (os error ") {
        Some(i) if s.ends_with(')') => s[..i].to_owned(),
        _ => s,
    }
}

/// A name a client may send by SNI: an exact host name or `*.suffix`, lowercased (the route
/// `host` rules, without `*` and IP addresses, which SNI never carries).
fn sni_match(s: &str) -> Result<HostMatch, String> {
    let m = host_match(s).map_err(|e| {
        e.replacen("invalid host", "invalid server name", 1)
            .replacen(
                "routes match the host without its port",
                "a server name has no port",
                1,
            )
    })?;
    let ip = match &m {
        HostMatch::Any => {
            return Err(format!(
                "invalid server name {s:?}: \"*\" would match every client; name a host such as \
                 \"example.com\" or \"*.example.com\""
            ))
        }
        HostMatch::Exact(h) => h.starts_with('[') || h.parse::<IpAddr>().is_ok(),
        HostMatch::Suffix(_) => false,
    };
    if ip {
        return Err(format!(
            "invalid server name {s:?}: SNI carries host names, never IP addresses (RFC 6066 §3)"
        ));
    }
    Ok(m)
}

fn server_name(ctx: &mut Ctx<'_>, f: &Field<'_, '_>) -> Option<String> {
    let s = f.str(
        ctx,
        "a server name (a string) such as \"example.com\" or \"*.example.com\"",
    )?;
    match sni_match(s) {
        Ok(HostMatch::Suffix(suffix)) => Some(format!("*{suffix}")),
        Ok(HostMatch::Exact(h)) => Some(h),
        Ok(HostMatch::Any) => None,
        Err(e) => {
            f.error(ctx, e);
            None
        }
    }
}

fn passthrough(ctx: &mut Ctx<'_>, f: &Field<'_, '_>, clusters: &[NameAt]) -> Vec<PassthroughRoute> {
    let Some(items) = f.elements(ctx, "an array of tables ([[listener.tls.passthrough]])") else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let mut seen: Vec<(HostMatch, Span)> = Vec::new();
    for item in &items {
        let mut p = PassthroughRoute {
            server_name: HostMatch::Exact(String::new()),
            cluster: usize::MAX,
        };
        if !matches!(item.value.get_ref(), DeValue::Table(_)) {
            item.type_error(
                ctx,
                "a passthrough table such as { server_name = \"db.example.com\", cluster = \"db\" }",
            );
        } else if let Some(mut t) =
            item.table(ctx, "[[listener.tls.passthrough]]", PASSTHROUGH_KEYS)
        {
            if let Some(f) = t.require(ctx, "server_name") {
                let expected =
                    "a server name (a string) such as \"db.example.com\" or \"*.example.com\"";
                if let Some(s) = f.str(ctx, expected) {
                    match sni_match(s) {
                        Ok(m) => {
                            if let Some((_, first)) = seen.iter().find(|(o, _)| *o == m) {
                                let (line, _) = ctx.line_col(first.start);
                                f.error(
                                    ctx,
                                    format!(
                                        "{s:?} is already passed through at line {line}; the \
                                         first match wins, so this one never would"
                                    ),
                                );
                            } else {
                                seen.push((m.clone(), f.span()));
                            }
                            p.server_name = m;
                        }
                        Err(e) => f.error(ctx, e),
                    }
                }
            }
            if let Some(f) = t.require(ctx, "cluster") {
                if let Some(c) = resolve_cluster(ctx, &f, clusters) {
                    p.cluster = c;
                }
            }
            t.finish(ctx);
        }
        out.push(p);
    }
    out
}

/// A byte size in `min..=max`, with the RFC section that sets the range.
fn size_in(ctx: &mut Ctx<'_>, f: &Field<'_, '_>, min: u64, max: u64, rfc: &str) -> Option<u32> {
    let n = size_u64(ctx, f, 0, u64::MAX)?;
    if (min..=max).contains(&n) {
        return u32::try_from(n).ok();
    }
    f.error(
        ctx,
        format!("must be between {min} and {max} bytes ({rfc}), found {n} bytes"),
    );
    None
}

/// `[listener.h2]`: HTTP/2 settings and flood limits, each defaulting to `tls::defaults::H2`.
pub(super) fn h2(ctx: &mut Ctx<'_>, f: &Field<'_, '_>) -> H2Settings {
    let mut h2 = defaults::H2;
    let Some(mut t) = f.table(ctx, "[listener.h2]", H2_KEYS) else {
        return h2;
    };
    if let Some(f) = t.get(ctx, "max_concurrent_streams") {
        if let Some(n) = int_in(ctx, &f, 1, u32::MAX.into()) {
            h2.max_concurrent_streams = n as u32;
        }
    }
    let windows = [
        ("initial_stream_window", &mut h2.initial_stream_window),
        (
            "initial_connection_window",
            &mut h2.initial_connection_window,
        ),
    ];
    for (key, slot) in windows {
        if let Some(f) = t.get(ctx, key) {
            if let Some(n) = size_in(ctx, &f, MIN_WINDOW, MAX_WINDOW, "RFC 9113 §6.9.2") {
                *slot = n;
            }
        }
    }
    if let Some(f) = t.get(ctx, "max_frame_size") {
        if let Some(n) = size_in(ctx, &f, MIN_FRAME, MAX_FRAME, "RFC 9113 §4.2") {
            h2.max_frame_size = n;
        }
    }
    if let Some(f) = t.get(ctx, "max_pending_accept_reset_streams") {
        if let Some(n) = int_in(ctx, &f, 1, MAX_PENDING_ACCEPT_RESETS) {
            h2.max_pending_accept_reset_streams = n as usize;
        }
    }
    if let Some(f) = t.get(ctx, "max_local_error_reset_streams") {
        if let Some(n) = int_in(ctx, &f, 1, MAX_LOCAL_ERROR_RESETS) {
            h2.max_local_error_reset_streams = n as usize;
        }
    }
    if let Some(f) = t.get(ctx, "max_send_buffer") {
        if let Some(n) = size_u64(ctx, &f, MIN_SEND_BUFFER, MAX_SEND_BUFFER) {
            h2.max_send_buffer = n as usize;
        }
    }
    t.finish(ctx);
    h2
}

fn upstream_protocol_hint(s: &str) -> Option<&'static str> {
    match s {
        "http2" | "http/2" => Some("\"h2\" for HTTP/2 over TLS, \"h2c\" for HTTP/2 in clear text"),
        "http/1.1" | "http1.1" | "http" => Some("did you mean \"http1\"?"),
        _ => None,
    }
}

/// The `protocol` of a `[[cluster]]`: the HTTP version spoken to its endpoints.
pub(super) fn upstream_protocol(
    ctx: &mut Ctx<'_>,
    f: &Field<'_, '_>,
) -> Option<strait_engine::config::UpstreamProtocol> {
    use strait_engine::config::UpstreamProtocol;
    pick(
        ctx,
        f,
        UpstreamProtocol::parse,
        UpstreamProtocol::VALID,
        UPSTREAM_PROTOCOL_NAMES,
        upstream_protocol_hint,
    )
}

/// `[cluster.tls]` of an h2 cluster.
pub(super) fn upstream_tls(
    ctx: &mut Ctx<'_>,
    f: &Field<'_, '_>,
    base: &Path,
) -> Option<strait_engine::config::UpstreamTlsConfig> {
    let mut tls = strait_engine::config::UpstreamTlsConfig::default();
    let mut t = f.table(ctx, "[cluster.tls]", UPSTREAM_TLS_KEYS)?;
    if let Some(f) = t.get(ctx, "server_name") {
        if let Some(s) = f.str(ctx, "a host name (a string) such as \"api.internal\"") {
            let dns = !s.is_empty()
                && s.len() <= 253
                && s.split('.').all(|l| {
                    !l.is_empty()
                        && l.len() <= 63
                        && l.bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
                });
            match s.parse::<IpAddr>().is_ok() || dns {
                true => tls.server_name = Some(s.to_ascii_lowercase()),
                false => f.error(
                    ctx,
                    format!("invalid server name {s:?}: expected a DNS name or an IP address"),
                ),
            }
        }
    }
    let ca = t.get(ctx, "ca_file");
    if let Some(f) = &ca {
        tls.ca_file = Some(pem_file(ctx, f, base, "trusted CA certificates"));
    }
    if let Some(f) = t.get(ctx, "insecure") {
        if let Some(b) = boolean(ctx, &f) {
            tls.insecure = b;
            if b && ca.is_some() {
                f.error(
                    ctx,
                    "`insecure = true` skips certificate verification, so `ca_file` would be \
                     ignored: give one of them"
                        .to_string(),
                );
            }
        }
    }
    t.finish(ctx);
    Some(tls)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn os_error_numbers_are_dropped_from_reasons() {
        let e = std::io::Error::from_raw_os_error(2);
        assert_eq!(io_reason(&e), "No such file or directory");
        let e = std::io::Error::other("custom (not an os error)");
        assert_eq!(io_reason(&e), "custom (not an os error)");
    }

    #[test]
    fn server_names_are_hosts_without_ip_addresses_or_any() {
        assert_eq!(
            sni_match("DB.Example.com"),
            Ok(HostMatch::Exact("db.example.com".into()))
        );
        assert_eq!(
            sni_match("*.Example.com"),
            Ok(HostMatch::Suffix(".example.com".into()))
        );
        for (bad, why) in [
            ("*", "every client"),
            ("10.0.0.1", "never IP addresses"),
            ("[::1]", "never IP addresses"),
            ("::1", "never IP addresses"),
            ("a.com:443", "a server name has no port; write \"a.com\""),
        ] {
            let e = sni_match(bad).expect_err(bad);
            assert!(e.contains(why), "{bad}: {e}");
        }
    }

    #[test]
    fn check_readable_names_the_path_and_the_reason() {
        let dir = std::env::temp_dir();
        assert_eq!(
            check_readable(&dir),
            Err(format!(
                "cannot read \"{}\": it is a directory, not a file",
                dir.display()
            ))
        );
        assert_eq!(
            check_readable(Path::new("/nonexistent/strait/c.pem")),
            Err("cannot read \"/nonexistent/strait/c.pem\": No such file or directory".into())
        );
    }
}
