//! The TLS and protocol-sniffing part of the validated configuration snapshot.
//!
//! Owns: the typed model of a listener's TLS termination (certificates chosen by SNI, versions,
//! ALPN, session tickets, passthrough by SNI), of which protocols a sniffing listener accepts, and
//! of the HTTP/2 settings and flood limits of HTTP listeners.
//! Must not: read certificate files (the engine loads them at start and on reload, reporting
//! the file and the reason) or parse TOML.

use std::path::PathBuf;
use std::time::Duration;

use super::HostMatch;

/// Which protocols a sniffing listener (`protocols = [...]`) accepts; the first bytes decide.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProtocolSet {
    /// A TLS ClientHello: terminated (or passed through by SNI), then sniffed again inside.
    pub tls: bool,
    /// An HTTP/1.x request line (WebSocket upgrades included).
    pub http1: bool,
    /// The HTTP/2 connection preface in clear text (h2c, prior knowledge).
    pub h2c: bool,
    /// Anything else, and clients that send nothing within the sniff timeout (server-speaks-first
    /// protocols): relayed to the listener's `cluster`.
    pub tcp: bool,
}

impl ProtocolSet {
    pub const VALID: &'static str = "\"tls\", \"http1\", \"h2c\" or \"tcp\"";
    pub const ALL: ProtocolSet = ProtocolSet {
        tls: true,
        http1: true,
        h2c: true,
        tcp: true,
    };
    pub const NONE: ProtocolSet = ProtocolSet {
        tls: false,
        http1: false,
        h2c: false,
        tcp: false,
    };

    /// Adds one protocol by its configuration name; `false` if the name is unknown.
    pub fn insert(&mut self, name: &str) -> bool {
        match name {
            "tls" => self.tls = true,
            "http1" | "http" => self.http1 = true,
            "h2c" => self.h2c = true,
            "tcp" => self.tcp = true,
            _ => return false,
        }
        true
    }

    pub fn names(&self) -> Vec<&'static str> {
        let mut v = Vec::new();
        for (on, name) in [
            (self.tls, "tls"),
            (self.http1, "http1"),
            (self.h2c, "h2c"),
            (self.tcp, "tcp"),
        ] {
            if on {
                v.push(name);
            }
        }
        v
    }

    /// Whether any accepted protocol needs HTTP routes (TLS carries HTTP unless the listener
    /// forwards everything inside TLS as raw TCP).
    pub fn speaks_http(&self) -> bool {
        self.http1 || self.h2c
    }
}

/// How a sniffing listener classifies a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SniffConfig {
    pub protocols: ProtocolSet,
    /// A client that sends no byte for this long is taken for a server-speaks-first protocol and
    /// relayed as TCP (when `tcp` is accepted; otherwise closed).
    pub timeout: Duration,
}

/// TLS termination on a listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsListenerConfig {
    /// Chosen by the client's SNI: exact names first, then wildcards (longest first); the first
    /// certificate answers clients without SNI or with a name no certificate covers.
    pub certificates: Vec<CertificateConfig>,
    /// Oldest version offered; TLS 1.3 is always on.
    pub min_version: TlsVersion,
    /// Protocols offered by ALPN, in preference order (`h2`, `http/1.1`); empty: no ALPN.
    pub alpn: Vec<String>,
    /// Stateless session resumption (TLS 1.3 tickets and TLS 1.2 tickets; keys rotate every 6 h
    /// and live only in this process).
    pub session_tickets: bool,
    /// From the first byte until the handshake is complete.
    pub handshake_timeout: Duration,
    /// Connections whose SNI matches are relayed undecrypted to an L4 cluster; tried in order.
    pub passthrough: Vec<PassthroughRoute>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateConfig {
    /// PEM file: the leaf certificate first, then its chain.
    pub cert: PathBuf,
    /// PEM file: the private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
    /// Names this certificate answers for (`*.example.com` allowed); empty: the DNS names of the
    /// certificate's subjectAltName extension.
    pub server_names: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsVersion {
    Tls12,
    Tls13,
}

impl TlsVersion {
    pub const VALID: &'static str = "\"1.2\" or \"1.3\"";

    pub fn parse(s: &str) -> Option<TlsVersion> {
        match s {
            "1.2" | "tls1.2" => Some(TlsVersion::Tls12),
            "1.3" | "tls1.3" => Some(TlsVersion::Tls13),
            _ => None,
        }
    }
}

/// A TLS connection whose SNI matches `server_name` is relayed without decryption to `cluster`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PassthroughRoute {
    pub server_name: HostMatch,
    /// Index into [`Config::clusters`](super::Config::clusters).
    pub cluster: usize,
}

/// HTTP/2 settings and flood limits of one HTTP listener (downstream h2 and h2c).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct H2Settings {
    /// SETTINGS_MAX_CONCURRENT_STREAMS advertised to clients.
    pub max_concurrent_streams: u32,
    /// Per-stream receive window (SETTINGS_INITIAL_WINDOW_SIZE): the most request body bytes
    /// buffered per stream before the client must wait for the upstream to take them.
    pub initial_stream_window: u32,
    /// Connection-level receive window.
    pub initial_connection_window: u32,
    /// SETTINGS_MAX_FRAME_SIZE.
    pub max_frame_size: u32,
    /// Rapid reset (CVE-2023-44487): streams reset by the client before we accepted them; more
    /// than this pending closes the connection with GOAWAY(ENHANCE_YOUR_CALM).
    pub max_pending_accept_reset_streams: usize,
    /// Locally provoked resets (CVE-2025-8671, "MadeYouReset"): streams we had to reset because
    /// of client errors; more than this closes the connection.
    pub max_local_error_reset_streams: usize,
    /// Response bytes buffered per stream while the client's window is closed.
    pub max_send_buffer: usize,
}

/// The ranges RFC 9113 allows, and bounds that keep a connection's memory in check (the TOML
/// loader reports the same with positions; this is the net for configurations built in code).
pub(super) fn check_h2(h: &H2Settings, at: &str, issue: &mut dyn FnMut(String, String)) {
    const WINDOW: std::ops::RangeInclusive<u32> = 65_535..=(1 << 31) - 1;
    if h.max_concurrent_streams == 0 {
        issue(
            format!("{at}.max_concurrent_streams"),
            "must be at least 1".into(),
        );
    }
    for (key, v) in [
        ("initial_stream_window", h.initial_stream_window),
        ("initial_connection_window", h.initial_connection_window),
    ] {
        if !WINDOW.contains(&v) {
            issue(
                format!("{at}.{key}"),
                "must be between 65535 and 2147483647 bytes (RFC 9113 §6.9.2)".into(),
            );
        }
    }
    if !(16_384..=16_777_215).contains(&h.max_frame_size) {
        issue(
            format!("{at}.max_frame_size"),
            "must be between 16384 and 16777215 bytes (RFC 9113 §4.2)".into(),
        );
    }
    if !(1..=10_000).contains(&h.max_pending_accept_reset_streams) {
        issue(
            format!("{at}.max_pending_accept_reset_streams"),
            "must be between 1 and 10000".into(),
        );
    }
    if !(1..=100_000).contains(&h.max_local_error_reset_streams) {
        issue(
            format!("{at}.max_local_error_reset_streams"),
            "must be between 1 and 100000".into(),
        );
    }
    if !(16 * 1024..=16 * 1024 * 1024).contains(&h.max_send_buffer) {
        issue(
            format!("{at}.max_send_buffer"),
            "must be between 16KiB and 16MiB".into(),
        );
    }
}

pub mod defaults {
    use std::time::Duration;

    use super::H2Settings;

    pub const SNIFF_TIMEOUT: Duration = Duration::from_millis(300);
    pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
    pub const H2: H2Settings = H2Settings {
        max_concurrent_streams: 256,
        initial_stream_window: 256 * 1024,
        initial_connection_window: 1024 * 1024,
        max_frame_size: 16 * 1024,
        max_pending_accept_reset_streams: 50,
        max_local_error_reset_streams: 256,
        max_send_buffer: 256 * 1024,
    };

    /// ALPN offered when the listener speaks HTTP: h2 first (RFC 9113 §3.2).
    pub fn alpn_http() -> Vec<String> {
        vec!["h2".into(), "http/1.1".into()]
    }
}

/// HTTP version spoken to a cluster's endpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpstreamProtocol {
    /// HTTP/1.1 over pooled keep-alive connections (one request at a time per connection).
    Http1,
    /// HTTP/2 with prior knowledge in clear text: few connections per core, many streams each.
    H2c,
    /// HTTP/2 over TLS (ALPN `h2`), multiplexed like `H2c`; see [`UpstreamTlsConfig`].
    H2,
}

impl UpstreamProtocol {
    pub const VALID: &'static str = "\"http1\", \"h2c\" or \"h2\"";

    pub fn parse(s: &str) -> Option<UpstreamProtocol> {
        match s {
            "http1" | "http/1.1" => Some(UpstreamProtocol::Http1),
            "h2c" => Some(UpstreamProtocol::H2c),
            "h2" => Some(UpstreamProtocol::H2),
            _ => None,
        }
    }

    /// HTTP/2, multiplexed over the core's shared upstream connections.
    pub fn is_h2(self) -> bool {
        matches!(self, UpstreamProtocol::H2c | UpstreamProtocol::H2)
    }
}

/// TLS to a cluster's endpoints (`protocol = "h2"`, or HTTP/1.1 clusters with `tls`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UpstreamTlsConfig {
    /// SNI and the name the certificate must carry; default: the cluster's `host` (without
    /// port), else the endpoint's IP address.
    pub server_name: Option<String>,
    /// PEM bundle of trusted CAs; default: the system's bundle
    /// (`/etc/ssl/certs/ca-certificates.crt` and the other usual places).
    pub ca_file: Option<PathBuf>,
    /// Accept any certificate (no verification at all). For tests and lab setups only; logged
    /// at start-up as a warning.
    pub insecure: bool,
}
