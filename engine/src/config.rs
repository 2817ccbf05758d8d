//! The validated configuration snapshot every core reads.
//!
//! Owns: the typed, already-validated model of a Strait configuration, plus the pure parsers for
//! values the CLI and the TOML loader share (core lists, durations, byte sizes).
//! Must not: read files, know about TOML, or hold anything mutable. A `Config` is built once (by the
//! CLI from flags and/or a file), checked by [`Config::validate`], wrapped in an `Arc` and never
//! changed; a reload builds a new one. Cross references are resolved to indices here so the hot path
//! never looks anything up by name.

use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

pub mod http;
pub mod tls;
mod validate;

pub use http::{
    AccessLogConfig, AccessLogFormat, AccessLogTarget, FixedResponse, ForwardAction, HeaderEdits,
    HeaderMatch, HostMatch, HttpLimits, HttpListenerConfig, HttpTimeouts, PathMatch, PrefixRewrite,
    RouteAction, RouteConfig, UpstreamHttpConfig, WeightedCluster,
};
pub use tls::{
    CertificateConfig, H2Settings, PassthroughRoute, ProtocolSet, SniffConfig, TlsListenerConfig,
    TlsVersion, UpstreamProtocol, UpstreamTlsConfig,
};

/// A complete, validated configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub runtime: RuntimeConfig,
    pub admin: Option<AdminConfig>,
    pub log: LogConfig,
    pub listeners: Vec<ListenerConfig>,
    pub clusters: Vec<ClusterConfig>,
    /// Access log of every HTTP listener; `None`: no access log.
    pub access_log: Option<AccessLogConfig>,
}

/// Process-wide runtime settings: which cores, which IO driver, drain, per-core limits.
#[derive(Debug, Clone, PartialEq)]
pub struct RuntimeConfig {
    pub cores: CoreSelection,
    pub io_driver: IoDriver,
    /// io_uring submission queue entries per core.
    pub uring_entries: u32,
    /// How long open connections may keep running after SIGTERM before they are closed.
    pub drain_timeout: Duration,
    /// Connections open at once on one core, over all its listeners. Excess connections are
    /// accepted and closed at once (and counted).
    pub max_connections_per_core: u32,
    /// How the L4 relay moves bytes.
    pub relay: RelayMode,
    /// Pipe capacity for splice (per direction) and buffer size for the copy relay.
    pub relay_buffer_size: u32,
    /// Reload the configuration file when it changes on disk (polled every 2 s).
    pub watch_config: bool,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        RuntimeConfig {
            cores: CoreSelection::All,
            io_driver: IoDriver::Auto,
            uring_entries: 1024,
            drain_timeout: Duration::from_secs(30),
            max_connections_per_core: 50_000,
            // Measured faster than splice on loopback (docs/performance.md); splice is one setting away.
            relay: RelayMode::Copy,
            relay_buffer_size: 256 * 1024,
            watch_config: false,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CoreSelection {
    /// Every core this process may run on (its affinity mask).
    All,
    /// Explicit CPU ids, sorted and without duplicates.
    List(Vec<usize>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IoDriver {
    /// io_uring with tuned flags, falling back to epoll when the ring cannot be built.
    Auto,
    Uring,
    Epoll,
}

impl IoDriver {
    pub const VALID: &'static str = "\"auto\", \"uring\" or \"epoll\"";

    pub fn parse(s: &str) -> Option<IoDriver> {
        match s {
            "auto" => Some(IoDriver::Auto),
            "uring" | "io_uring" => Some(IoDriver::Uring),
            "epoll" | "legacy" => Some(IoDriver::Epoll),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RelayMode {
    /// splice(2) through a per-connection pipe; falls back to copy when splice cannot be used.
    Splice,
    /// Read into a pooled user-space buffer (16 KiB, growing to `relay_buffer_size` for bulk
    /// flows) and write it out; the buffer is held only while bytes are in flight.
    Copy,
}

impl RelayMode {
    pub const VALID: &'static str = "\"splice\" or \"copy\"";

    pub fn parse(s: &str) -> Option<RelayMode> {
        match s {
            "splice" => Some(RelayMode::Splice),
            "copy" => Some(RelayMode::Copy),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminConfig {
    pub address: SocketAddr,
    /// A file holding the bearer token the admin API's write endpoints require; without one,
    /// they answer 403.
    pub token_file: Option<std::path::PathBuf>,
    /// Where every configuration write and reload is recorded (JSON lines).
    pub audit_log: Option<std::path::PathBuf>,
    /// A configuration applied from `POST /config` is also written to the file.
    pub persist: bool,
    /// How many configuration versions the history keeps.
    pub max_versions: usize,
}

impl AdminConfig {
    pub const DEFAULT_MAX_VERSIONS: usize = 16;

    /// The admin endpoint at `address`, writes disabled, no audit log.
    pub fn at(address: SocketAddr) -> AdminConfig {
        AdminConfig {
            address,
            token_file: None,
            audit_log: None,
            persist: false,
            max_versions: AdminConfig::DEFAULT_MAX_VERSIONS,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogConfig {
    pub level: LogLevel,
    pub format: LogFormat,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            level: LogLevel::Info,
            format: LogFormat::Text,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogLevel {
    Error,
    Warn,
    Info,
    Debug,
    Trace,
}

impl LogLevel {
    pub const VALID: &'static str = "\"error\", \"warn\", \"info\", \"debug\" or \"trace\"";

    pub fn parse(s: &str) -> Option<LogLevel> {
        match s {
            "error" => Some(LogLevel::Error),
            "warn" => Some(LogLevel::Warn),
            "info" => Some(LogLevel::Info),
            "debug" => Some(LogLevel::Debug),
            "trace" => Some(LogLevel::Trace),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            LogLevel::Error => "error",
            LogLevel::Warn => "warn",
            LogLevel::Info => "info",
            LogLevel::Debug => "debug",
            LogLevel::Trace => "trace",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

impl LogFormat {
    pub const VALID: &'static str = "\"text\" or \"json\"";

    pub fn parse(s: &str) -> Option<LogFormat> {
        match s {
            "text" => Some(LogFormat::Text),
            "json" => Some(LogFormat::Json),
            _ => None,
        }
    }
}

/// What a listener speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListenerProtocol {
    /// L4 TCP relay (TLS-terminated when the listener has `tls`).
    Tcp,
    /// UDP datagram relay: one session (upstream socket) per client address per core.
    Udp,
    /// HTTP reverse proxy with routes: HTTP/1.1 in clear text, or HTTPS (h2 and HTTP/1.1 by ALPN)
    /// when the listener has `tls`.
    Http,
    /// Sniffs the first bytes of each connection and serves the protocols of its
    /// [`SniffConfig`]: TLS, HTTP/1.1, h2c, raw TCP.
    Auto,
}

impl ListenerProtocol {
    pub const VALID: &'static str = "\"tcp\", \"udp\", \"http\" or \"auto\"";

    pub fn parse(s: &str) -> Option<ListenerProtocol> {
        match s {
            "tcp" => Some(ListenerProtocol::Tcp),
            "udp" => Some(ListenerProtocol::Udp),
            "http" => Some(ListenerProtocol::Http),
            "auto" => Some(ListenerProtocol::Auto),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ListenerProtocol::Tcp => "tcp",
            ListenerProtocol::Udp => "udp",
            ListenerProtocol::Http => "http",
            ListenerProtocol::Auto => "auto",
        }
    }

    /// Whether the listener uses a TCP socket (everything but UDP).
    pub fn is_stream(self) -> bool {
        !matches!(self, ListenerProtocol::Udp)
    }
}

/// Defaults shared by the TOML loader and the quick CLI form, so both build the same config.
pub mod defaults {
    use std::time::Duration;

    pub const IDLE_TIMEOUT: Duration = Duration::from_secs(5 * 60);
    pub const BACKLOG: u32 = 1024;
    pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
    pub const CONNECT_ATTEMPTS: u32 = 3;
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenerConfig {
    /// Unique name, used as the `listener` label in metrics and logs.
    pub name: String,
    pub address: SocketAddr,
    pub protocol: ListenerProtocol,
    /// Index into [`Config::clusters`]: where a TCP or UDP listener relays to. `None` for HTTP
    /// listeners, whose routes name their clusters.
    pub cluster: Option<usize>,
    /// A connection with no byte moving in either direction for this long is closed (TCP and
    /// UDP; HTTP listeners have their own timeouts in `http`).
    pub idle_timeout: Duration,
    /// listen(2) backlog of each per-core socket.
    pub backlog: u32,
    /// Present when the listener serves HTTP: `protocol` is `Http`, or `Auto` with HTTP among
    /// its protocols (directly or inside TLS).
    pub http: Option<Box<HttpListenerConfig>>,
    /// Present exactly when `protocol` is `Auto`.
    pub sniff: Option<SniffConfig>,
    /// TLS termination: on `Http` (HTTPS), `Tcp` (TLS-terminated TCP) and `Auto` listeners that
    /// accept `tls`.
    pub tls: Option<Box<TlsListenerConfig>>,
}

impl ListenerConfig {
    /// The cluster of a TCP or UDP listener; validated to exist, so only HTTP listeners (which
    /// never ask) see the fallback.
    pub fn l4_cluster(&self) -> usize {
        self.cluster.unwrap_or(0)
    }

    /// The protocols accepted on this listener's connections, before any sniffing.
    pub fn accepted(&self) -> ProtocolSet {
        match (self.protocol, &self.sniff) {
            (ListenerProtocol::Auto, Some(s)) => s.protocols,
            (ListenerProtocol::Http, _) => ProtocolSet {
                tls: self.tls.is_some(),
                http1: self.tls.is_none(),
                ..ProtocolSet::NONE
            },
            (ListenerProtocol::Tcp, _) => ProtocolSet {
                tls: self.tls.is_some(),
                tcp: self.tls.is_none(),
                ..ProtocolSet::NONE
            },
            _ => ProtocolSet::NONE,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterConfig {
    /// Unique name, used as the `cluster` label in metrics and logs.
    pub name: String,
    pub endpoints: Vec<EndpointConfig>,
    pub connect_timeout: Duration,
    /// Endpoints tried for one client connection before giving up (each at most once).
    pub connect_attempts: u32,
    /// PROXY protocol header sent to every endpoint right after connecting.
    pub proxy_protocol: ProxyProtocol,
    /// Used when HTTP routes forward to this cluster.
    pub http: UpstreamHttpConfig,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxyProtocol {
    Off,
    V1,
    V2,
}

impl ProxyProtocol {
    pub const VALID: &'static str = "\"off\", \"v1\" or \"v2\"";

    pub fn parse(s: &str) -> Option<ProxyProtocol> {
        match s {
            "off" => Some(ProxyProtocol::Off),
            "v1" => Some(ProxyProtocol::V1),
            "v2" => Some(ProxyProtocol::V2),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointConfig {
    pub address: SocketAddr,
    /// Relative share of new connections; 1..=1000.
    pub weight: u32,
}

/// Limits the validator enforces; shared with the TOML loader so both say the same thing.
pub mod limits {
    pub const MAX_WEIGHT: u32 = 1000;
    pub const MAX_CONNECT_ATTEMPTS: u32 = 16;
    pub const MIN_RELAY_BUFFER: u32 = 4 * 1024;
    pub const MAX_RELAY_BUFFER: u32 = 16 * 1024 * 1024;
    pub const MIN_URING_ENTRIES: u32 = 256;
    pub const MAX_URING_ENTRIES: u32 = 32768;
}

/// A semantic problem found by [`Config::validate`]; `path` names the offending key
/// (`listener[0].cluster`), so the TOML loader can attach a file position to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigIssue {
    pub path: String,
    pub message: String,
}

impl fmt::Display for ConfigIssue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// Names become metric labels and log fields: keep them short and plain.
pub fn check_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "invalid name {name:?}: use 1 to 64 characters from A-Z a-z 0-9 - _ ."
        ))
    }
}

/// Parses a core list such as `0-3,6` or `all`.
pub fn parse_core_list(s: &str) -> Result<CoreSelection, String> {
    let s = s.trim();
    if s.eq_ignore_ascii_case("all") {
        return Ok(CoreSelection::All);
    }
    const MAX_CPU: usize = 4095;
    let mut cores = Vec::new();
    for part in s.split(',') {
        let part = part.trim();
        if part.is_empty() {
            return Err(format!(
                "invalid core list {s:?}: empty element (expected e.g. \"0-3,6\" or \"all\")"
            ));
        }
        let parse_one = |t: &str| -> Result<usize, String> {
            let t = t.trim();
            match t.parse::<usize>() {
                Ok(n) if n <= MAX_CPU && t.bytes().all(|b| b.is_ascii_digit()) => Ok(n),
                _ => Err(format!(
                    "invalid core {t:?} in {s:?}: expected a CPU number from 0 to {MAX_CPU} (e.g. \"0-3,6\" or \"all\")"
                )),
            }
        };
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b) = (parse_one(a)?, parse_one(b)?);
                if a > b {
                    return Err(format!(
                        "invalid core range {part:?}: start is greater than end"
                    ));
                }
                cores.extend(a..=b);
            }
            None => cores.push(parse_one(part)?),
        }
    }
    cores.sort_unstable();
    cores.dedup();
    Ok(CoreSelection::List(cores))
}

/// Formats CPU ids compactly: `[0,1,2,3,6]` → `0-3,6`.
pub fn format_core_list(cores: &[usize]) -> String {
    let mut out = String::new();
    let mut i = 0;
    while i < cores.len() {
        let start = cores[i];
        let mut end = start;
        while i + 1 < cores.len() && cores[i + 1] == end + 1 {
            i += 1;
            end = cores[i];
        }
        if !out.is_empty() {
            out.push(',');
        }
        if start == end {
            out.push_str(&start.to_string());
        } else {
            out.push_str(&format!("{start}-{end}"));
        }
        i += 1;
    }
    out
}

pub const DURATION_HELP: &str =
    "expected a duration such as \"250ms\", \"5s\", \"2m\" or \"1h\" (units: ms, s, m, h)";

/// Parses `250ms`, `5s`, `2m`, `1h`, or a combination such as `1m30s`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let bad = || format!("invalid duration {s:?}: {DURATION_HELP}");
    let t = s.trim();
    if t.is_empty() {
        return Err(bad());
    }
    let mut total: u128 = 0;
    let mut rest = t;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 || digits > 12 {
            return Err(bad());
        }
        let n: u128 = rest[..digits].parse().map_err(|_| bad())?;
        rest = &rest[digits..];
        let unit_len = rest.bytes().take_while(u8::is_ascii_alphabetic).count();
        let millis_per = match &rest[..unit_len] {
            "ms" => 1,
            "s" => 1_000,
            "m" => 60_000,
            "h" => 3_600_000,
            _ => return Err(bad()),
        };
        rest = &rest[unit_len..];
        total += n * millis_per;
    }
    if total > u64::MAX as u128 {
        return Err(bad());
    }
    Ok(Duration::from_millis(total as u64))
}

pub const SIZE_HELP: &str =
    "expected a size such as \"64KiB\", \"1MiB\" or a number of bytes (units: B, KiB, MiB, GiB)";

/// Parses `65536`, `64KiB`, `1MiB`, `1GiB` (binary units; `K`/`M`/`G`/`KB`/`MB`/`GB` are read the same way).
pub fn parse_size(s: &str) -> Result<u64, String> {
    let bad = || format!("invalid size {s:?}: {SIZE_HELP}");
    let t = s.trim();
    let digits = t.bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 {
        return Err(bad());
    }
    let n: u64 = t[..digits].parse().map_err(|_| bad())?;
    let mult: u64 = match t[digits..].trim() {
        "" | "B" => 1,
        "K" | "KB" | "KiB" | "k" => 1 << 10,
        "M" | "MB" | "MiB" => 1 << 20,
        "G" | "GB" | "GiB" => 1 << 30,
        _ => return Err(bad()),
    };
    n.checked_mul(mult).ok_or_else(bad)
}

/// Configurations for the engine's unit tests.
#[cfg(test)]
pub(crate) mod test_support {
    use super::*;

    /// One listener of `protocol` on `listen` (an HTTP one with a catch-all route) in front of one
    /// cluster with one endpoint at `upstream`; every other value at its default.
    pub(crate) fn one_listener(protocol: ListenerProtocol, listen: &str, upstream: &str) -> Config {
        let http = protocol == ListenerProtocol::Http;
        Config {
            runtime: RuntimeConfig::default(),
            admin: None,
            log: LogConfig::default(),
            listeners: vec![ListenerConfig {
                name: "in".into(),
                address: listen.parse().expect("test address"),
                protocol,
                cluster: (!http).then_some(0),
                idle_timeout: Duration::from_secs(60),
                backlog: 1024,
                http: http.then(|| Box::new(http::defaults::catch_all(0))),
                sniff: None,
                tls: None,
            }],
            clusters: vec![ClusterConfig {
                name: "up".into(),
                endpoints: vec![EndpointConfig {
                    address: upstream.parse().expect("test address"),
                    weight: 1,
                }],
                connect_timeout: Duration::from_secs(3),
                connect_attempts: 3,
                proxy_protocol: ProxyProtocol::Off,
                http: UpstreamHttpConfig::default(),
            }],
            access_log: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn h2_settings_alpn_and_certificate_names_are_checked_for_configs_built_in_code() {
        let mut c =
            test_support::one_listener(ListenerProtocol::Http, "127.0.0.1:0", "127.0.0.1:9");
        let l = &mut c.listeners[0];
        if let Some(http) = l.http.as_mut() {
            http.h2.max_frame_size = 1000;
            http.h2.initial_stream_window = 10;
            http.h2.max_concurrent_streams = 0;
        }
        let cert = |name: &str| CertificateConfig {
            cert: "c.pem".into(),
            key: "k.pem".into(),
            server_names: vec![name.into()],
        };
        l.tls = Some(Box::new(TlsListenerConfig {
            certificates: vec![cert("a.test"), cert("A.test")],
            min_version: TlsVersion::Tls12,
            alpn: vec!["h2".into(), "h2".into()],
            session_tickets: true,
            handshake_timeout: std::time::Duration::from_secs(1),
            passthrough: Vec::new(),
        }));
        let issues = c.validate().expect_err("invalid");
        let paths: Vec<&str> = issues.iter().map(|i| i.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "listener[0].h2.max_concurrent_streams",
                "listener[0].h2.initial_stream_window",
                "listener[0].h2.max_frame_size",
                "listener[0].tls.alpn[1]",
                "listener[0].tls.certificate[1].server_names",
            ]
        );
    }

    #[test]
    fn core_lists_parse_ranges_singles_and_all() {
        assert_eq!(parse_core_list("all"), Ok(CoreSelection::All));
        assert_eq!(
            parse_core_list("0-3,6"),
            Ok(CoreSelection::List(vec![0, 1, 2, 3, 6]))
        );
        assert_eq!(
            parse_core_list(" 3, 1 ,1,2-2"),
            Ok(CoreSelection::List(vec![1, 2, 3]))
        );
        assert_eq!(parse_core_list("7"), Ok(CoreSelection::List(vec![7])));
    }

    #[test]
    fn core_lists_reject_garbage_with_a_reason() {
        for bad in [
            "", ",", "1,", "a", "3-1", "1-", "-1", "+1", "1-2-3", "99999",
        ] {
            let err = parse_core_list(bad).expect_err(bad);
            assert!(err.contains("core"), "{bad}: {err}");
        }
    }

    #[test]
    fn core_lists_format_compactly() {
        assert_eq!(format_core_list(&[0, 1, 2, 3, 6]), "0-3,6");
        assert_eq!(format_core_list(&[1]), "1");
        assert_eq!(format_core_list(&[0, 2, 4, 5]), "0,2,4-5");
        assert_eq!(format_core_list(&[]), "");
    }

    #[test]
    fn durations_parse_units_and_combinations() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("5s"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
    }

    #[test]
    fn durations_reject_missing_or_unknown_units() {
        for bad in [
            "",
            "5",
            "s",
            "5 s",
            "5sec",
            "-1s",
            "1.5s",
            "5d",
            "99999999999999s",
        ] {
            let err = parse_duration(bad).expect_err(bad);
            assert!(err.contains("ms, s, m, h"), "{bad}: {err}");
        }
    }

    #[test]
    fn sizes_parse_binary_units() {
        assert_eq!(parse_size("65536"), Ok(65536));
        assert_eq!(parse_size("64KiB"), Ok(65536));
        assert_eq!(parse_size("1MiB"), Ok(1 << 20));
        assert_eq!(parse_size("2 GiB"), Ok(2 << 30));
        for bad in ["", "KiB", "1.5MiB", "1TiB", "-1", "99999999999999999999"] {
            assert!(parse_size(bad).is_err(), "{bad}");
        }
    }

    fn sample() -> Config {
        test_support::one_listener(ListenerProtocol::Tcp, "127.0.0.1:8080", "127.0.0.1:9000")
    }

    #[test]
    fn a_sound_config_validates() {
        assert_eq!(sample().validate(), Ok(()));
    }

    #[test]
    fn validation_names_every_offending_path() {
        let mut c = sample();
        c.listeners.push(c.listeners[0].clone());
        c.listeners[1].cluster = Some(7);
        c.clusters[0].endpoints.clear();
        c.clusters[0].connect_attempts = 0;
        c.runtime.relay_buffer_size = 1;
        let issues = c.validate().unwrap_err();
        let paths: Vec<&str> = issues.iter().map(|i| i.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "listener[1].name",
                "listener[1].address",
                "listener[1].cluster",
                "cluster[0].endpoints",
                "cluster[0].connect_attempts",
                "runtime.relay_buffer_size",
            ]
        );
    }

    #[test]
    fn proxy_protocol_is_refused_on_clusters_behind_http_routes() {
        let mut c = sample();
        c.clusters[0].proxy_protocol = ProxyProtocol::V2;
        assert_eq!(
            c.validate(),
            Ok(()),
            "a TCP listener may send PROXY headers"
        );
        c.listeners[0].protocol = ListenerProtocol::Http;
        c.listeners[0].cluster = None;
        c.listeners[0].http = Some(Box::new(http::defaults::catch_all(0)));
        let issues = c.validate().unwrap_err();
        assert_eq!(issues.len(), 1, "{issues:?}");
        assert_eq!(issues[0].path, "cluster[0].proxy_protocol");
        assert!(issues[0].message.contains("HTTP routes"), "{issues:?}");
    }

    #[test]
    fn names_are_label_safe() {
        assert!(check_name("edge-1.tcp_a").is_ok());
        for bad in ["", "a b", "a\"b", "ü", &"x".repeat(65)] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
    }
}
