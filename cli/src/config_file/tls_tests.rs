//! Tests of the sniffing, TLS and HTTP/2 part of the schema: `protocols`, `sniff_timeout`,
//! `[listener.tls]` (certificates, passthrough), `[listener.h2]` and a cluster's `protocol`.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use strait_engine::config::http::defaults as http_defaults;
use strait_engine::config::tls::defaults;
use strait_engine::config::{
    CertificateConfig, ClusterConfig, Config, EndpointConfig, H2Settings, HostMatch,
    ListenerConfig, ListenerProtocol, PassthroughRoute, PathMatch, ProtocolSet, ProxyProtocol,
    RouteConfig, SniffConfig, TlsListenerConfig, TlsVersion, UpstreamHttpConfig, UpstreamProtocol,
};

use super::tests::addr;
use super::{load_str, Diagnostic};

/// A directory with dummy certificate and key files (PEM is not parsed by the loader), removed
/// when dropped.
struct Dir(PathBuf);

const FILES: &[&str] = &[
    "certs/example.pem",
    "certs/example.key",
    "certs/legacy.pem",
    "certs/legacy.key",
    "certs/cache.pem",
    "certs/cache.key",
];

impl Dir {
    fn new() -> Dir {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("strait-tls-test-{}-{n}", std::process::id()));
        std::fs::create_dir_all(dir.join("certs")).unwrap();
        for f in FILES {
            std::fs::write(dir.join(f), "dummy\n").unwrap();
        }
        Dir(dir)
    }

    fn file(&self, rel: &str) -> PathBuf {
        self.0.join(rel)
    }

    fn load(&self, text: &str) -> Result<Config, Vec<Diagnostic>> {
        load_str(&self.0.join("strait.toml"), text)
    }

    fn loaded(&self, text: &str) -> Config {
        self.load(text).unwrap_or_else(|d| panic!("{d:#?}"))
    }

    /// The diagnostics of a bad file, as printed, with the directory written `DIR`.
    fn errors(&self, text: &str) -> Vec<String> {
        let dir = self.0.display().to_string();
        match self.load(text) {
            Ok(c) => panic!("expected errors, got {c:#?}"),
            Err(diags) => diags
                .iter()
                .map(|d| d.to_string().replace(&dir, "DIR"))
                .collect(),
        }
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The "Complete sniffing and TLS example" block of docs/config.md.
fn doc_tls_example() -> &'static str {
    let doc = include_str!("../../../docs/config.md");
    let section = &doc[doc
        .find("### Complete sniffing and TLS example")
        .expect("TLS example section")..];
    let start = section.find("```toml\n").expect("toml block") + "```toml\n".len();
    let len = section[start..].find("\n```").expect("end of block") + 1;
    &section[start..start + len]
}

fn cluster(name: &str, addrs: &[&str]) -> ClusterConfig {
    ClusterConfig {
        name: name.into(),
        endpoints: addrs
            .iter()
            .map(|a| EndpointConfig {
                address: addr(a),
                weight: 1,
            })
            .collect(),
        connect_timeout: Duration::from_secs(3),
        connect_attempts: 3,
        proxy_protocol: ProxyProtocol::Off,
        http: UpstreamHttpConfig::default(),
    }
}

#[test]
fn the_documented_tls_example_loads_with_every_value() {
    let dir = Dir::new();
    let c = dir.loaded(doc_tls_example());
    let cert = |name: &str, server_names: &[&str]| CertificateConfig {
        cert: dir.file(&format!("certs/{name}.pem")),
        key: dir.file(&format!("certs/{name}.key")),
        server_names: server_names.iter().map(|s| s.to_string()).collect(),
    };
    let (web, grpc, ssh, db, cache) = (0, 1, 2, 3, 4);
    let mut edge_http = http_defaults::catch_all(web);
    edge_http.routes = vec![
        RouteConfig {
            name: "grpc".into(),
            path: PathMatch::Prefix("/helloworld.Greeter".into()),
            ..http_defaults::catch_all_route(grpc)
        },
        RouteConfig {
            name: "web".into(),
            ..http_defaults::catch_all_route(web)
        },
    ];
    edge_http.limits.max_body_size = 16 << 20;
    edge_http.h2 = H2Settings {
        max_concurrent_streams: 128,
        initial_stream_window: 1 << 20,
        initial_connection_window: 4 << 20,
        max_frame_size: 32 << 10,
        max_pending_accept_reset_streams: 20,
        max_local_error_reset_streams: 100,
        max_send_buffer: 512 << 10,
    };
    let listener = |name: &str, address: &str, protocol| ListenerConfig {
        name: name.into(),
        address: addr(address),
        protocol,
        cluster: None,
        idle_timeout: Duration::from_secs(300),
        backlog: 1024,
        http: None,
        sniff: None,
        tls: None,
    };
    let expected = Config {
        runtime: Default::default(),
        admin: None,
        log: Default::default(),
        listeners: vec![
            ListenerConfig {
                cluster: Some(ssh),
                http: Some(Box::new(edge_http)),
                sniff: Some(SniffConfig {
                    protocols: ProtocolSet::ALL,
                    timeout: Duration::from_millis(500),
                }),
                tls: Some(Box::new(TlsListenerConfig {
                    certificates: vec![
                        cert("example", &["example.com", "*.example.com"]),
                        cert("legacy", &[]),
                    ],
                    min_version: TlsVersion::Tls12,
                    alpn: vec!["h2".into(), "http/1.1".into()],
                    session_tickets: true,
                    handshake_timeout: Duration::from_secs(5),
                    passthrough: vec![PassthroughRoute {
                        server_name: HostMatch::Exact("db.example.com".into()),
                        cluster: db,
                    }],
                })),
                ..listener("edge", "0.0.0.0:443", ListenerProtocol::Auto)
            },
            ListenerConfig {
                http: Some(Box::new(http_defaults::catch_all(web))),
                tls: Some(Box::new(TlsListenerConfig {
                    certificates: vec![cert("example", &[])],
                    min_version: TlsVersion::Tls12,
                    alpn: defaults::alpn_http(),
                    session_tickets: true,
                    handshake_timeout: defaults::HANDSHAKE_TIMEOUT,
                    passthrough: Vec::new(),
                })),
                ..listener("https", "0.0.0.0:8443", ListenerProtocol::Http)
            },
            ListenerConfig {
                cluster: Some(cache),
                tls: Some(Box::new(TlsListenerConfig {
                    certificates: vec![cert("cache", &[])],
                    min_version: TlsVersion::Tls13,
                    alpn: Vec::new(),
                    session_tickets: false,
                    handshake_timeout: defaults::HANDSHAKE_TIMEOUT,
                    passthrough: Vec::new(),
                })),
                ..listener("cache-tls", "0.0.0.0:6380", ListenerProtocol::Tcp)
            },
        ],
        clusters: vec![
            cluster("web", &["10.0.1.1:8080", "10.0.1.2:8080"]),
            ClusterConfig {
                http: UpstreamHttpConfig {
                    protocol: UpstreamProtocol::H2c,
                    ..UpstreamHttpConfig::default()
                },
                ..cluster("grpc", &["10.0.1.3:50051"])
            },
            cluster("ssh", &["10.0.2.1:22"]),
            cluster("db", &["10.0.3.1:5432"]),
            cluster("cache", &["10.0.4.1:6379"]),
        ],
        access_log: None,
    };
    assert_eq!(c, expected);
    assert_eq!(c.listeners[0].accepted(), ProtocolSet::ALL);
}

/// A listener's fields other than its kind, at their defaults.
fn base_listener(name: &str, address: &str, protocol: ListenerProtocol) -> ListenerConfig {
    ListenerConfig {
        name: name.into(),
        address: addr(address),
        protocol,
        cluster: None,
        idle_timeout: Duration::from_secs(300),
        backlog: 1024,
        http: None,
        sniff: None,
        tls: None,
    }
}

fn tls_with(certificates: Vec<CertificateConfig>, alpn: Vec<String>) -> TlsListenerConfig {
    TlsListenerConfig {
        certificates,
        min_version: TlsVersion::Tls12,
        alpn,
        session_tickets: true,
        handshake_timeout: defaults::HANDSHAKE_TIMEOUT,
        passthrough: Vec::new(),
    }
}

#[test]
fn sniffing_and_tls_defaults_follow_the_listener() {
    let dir = Dir::new();
    let text = r#"[[listener]]
name = "plain"
address = "127.0.0.1:8001"
protocols = ["http1", "h2c", "tcp"]
cluster = "app"

[[listener.route]]
name = "r"
cluster = "app"

[[listener]]
name = "https-sniffed"
address = "127.0.0.1:8002"
protocol = "auto"
protocols = ["tls"]            # routes written: h2 and http/1.1 by ALPN

[[listener.route]]
name = "r"
cluster = "app"

[[listener.tls.certificate]]
cert = "./certs/example.pem"
key = "certs/../certs/example.key"

[[listener]]
name = "sni-router"
address = "127.0.0.1:8003"
protocols = ["tls", "tcp"]     # no routes: no ALPN; decrypted TCP goes to "app"
cluster = "app"

[[listener.tls.certificate]]
cert = "CERT"
key = "certs/example.key"

[[listener.tls.passthrough]]
server_name = "*.DB.example.com"
cluster = "db"

[[listener]]
name = "https-no-alpn"
address = "127.0.0.1:8004"
protocol = "http"
cluster = "app"

[listener.tls]
alpn = []

[[listener.tls.certificate]]
cert = "certs/example.pem"
key = "certs/example.key"
server_names = ["WWW.Example.com"]

[[cluster]]
name = "app"
endpoints = [{ address = "127.0.0.1:9000" }]

[[cluster]]
name = "db"
protocol = "http/1.1"
endpoints = [{ address = "127.0.0.1:9001" }]
"#;
    // An absolute path is kept as written.
    let absolute = dir.file("certs/legacy.pem");
    let c = dir.loaded(&text.replace("CERT", &absolute.display().to_string()));
    let example = |server_names: &[&str]| CertificateConfig {
        cert: dir.file("certs/example.pem"),
        key: dir.file("certs/example.key"),
        server_names: server_names.iter().map(|s| s.to_string()).collect(),
    };
    let routes = || Some(Box::new(http_defaults::catch_all(0)));
    let mut only_r = routes().unwrap();
    only_r.routes[0].name = "r".into();
    assert_eq!(
        c.listeners,
        vec![
            ListenerConfig {
                cluster: Some(0),
                http: Some(only_r.clone()),
                sniff: Some(SniffConfig {
                    protocols: ProtocolSet {
                        tls: false,
                        ..ProtocolSet::ALL
                    },
                    timeout: defaults::SNIFF_TIMEOUT,
                }),
                ..base_listener("plain", "127.0.0.1:8001", ListenerProtocol::Auto)
            },
            ListenerConfig {
                http: Some(only_r),
                sniff: Some(SniffConfig {
                    protocols: ProtocolSet {
                        tls: true,
                        ..ProtocolSet::NONE
                    },
                    timeout: defaults::SNIFF_TIMEOUT,
                }),
                tls: Some(Box::new(tls_with(
                    vec![CertificateConfig {
                        key: dir.file("certs/../certs/example.key"),
                        ..example(&[])
                    }],
                    defaults::alpn_http(),
                ))),
                ..base_listener("https-sniffed", "127.0.0.1:8002", ListenerProtocol::Auto)
            },
            ListenerConfig {
                cluster: Some(0),
                sniff: Some(SniffConfig {
                    protocols: ProtocolSet {
                        tls: true,
                        tcp: true,
                        ..ProtocolSet::NONE
                    },
                    timeout: defaults::SNIFF_TIMEOUT,
                }),
                tls: Some(Box::new(TlsListenerConfig {
                    passthrough: vec![PassthroughRoute {
                        server_name: HostMatch::Suffix(".db.example.com".into()),
                        cluster: 1,
                    }],
                    ..tls_with(
                        vec![CertificateConfig {
                            cert: absolute,
                            ..example(&[])
                        }],
                        Vec::new(),
                    )
                })),
                ..base_listener("sni-router", "127.0.0.1:8003", ListenerProtocol::Auto)
            },
            ListenerConfig {
                http: routes(),
                tls: Some(Box::new(tls_with(
                    vec![example(&["www.example.com"])],
                    Vec::new()
                ))),
                ..base_listener("https-no-alpn", "127.0.0.1:8004", ListenerProtocol::Http)
            },
        ]
    );
    assert_eq!(c.clusters[1].http.protocol, UpstreamProtocol::Http1);
    assert_eq!(c.listeners[1].accepted().names(), ["tls"]);
    assert_eq!(c.listeners[3].accepted().names(), ["tls"]);
}

#[test]
fn sniffing_errors_name_the_key_and_the_valid_form() {
    let dir = Dir::new();
    let text = r#"[[listener]]
name = "typos"
address = "127.0.0.1:8001"
protocols = ["tls", "htp1", "h2", "tcp", "tcp", "http", "http1", 5]
cluster = "app"

[[listener]]
name = "auto-alone"
address = "127.0.0.1:8002"
protocol = "auto"
cluster = "app"

[[listener]]
name = "http-sniff"
address = "127.0.0.1:8003"
protocol = "http"
protocols = ["http1"]
cluster = "app"

[[listener]]
name = "empty"
address = "127.0.0.1:8004"
protocols = []

[[listener]]
name = "no-fallback"
address = "127.0.0.1:8005"
protocols = ["http1", "tcp"]
sniff_timout = "1s"

[[listener.route]]
name = "r"
cluster = "app"

[[listener]]
name = "fallback-without-tcp"
address = "127.0.0.1:8006"
protocols = ["h2c"]
cluster = "app"
sniff_timeout = "0s"

[[listener.route]]
name = "r"
cluster = "app"

[[listener]]
name = "no-routes"
address = "127.0.0.1:8007"
protocols = ["http1", "tcp"]
cluster = "app"

[[listener]]
name = "routes-no-http"
address = "127.0.0.1:8008"
protocols = ["tcp"]
cluster = "app"
max_headers = 10

[[listener.route]]
name = "r"
cluster = "app"

[listener.h2]
# no keep-alive PING setting: idle connections close after keepalive_timeout

[[listener]]
name = "tcp"
address = "127.0.0.1:8009"
cluster = "app"
sniff_timeout = "1s"

[[cluster]]
name = "app"
endpoints = [{ address = "127.0.0.1:9000" }]
"#;
    assert_eq!(
        dir.errors(text),
        [
            "DIR/strait.toml:4:21: listener[0].protocols[1]: invalid value \"htp1\"; expected \
             \"tls\", \"http1\", \"h2c\" or \"tcp\" (did you mean \"http1\"?)",
            "DIR/strait.toml:4:29: listener[0].protocols[2]: invalid value \"h2\"; expected \"tls\", \
             \"http1\", \"h2c\" or \"tcp\" (HTTP/2 over TLS is negotiated by ALPN inside \"tls\"; in \
             clear text it is \"h2c\")",
            "DIR/strait.toml:4:42: listener[0].protocols[4]: duplicate protocol \"tcp\"; already \
             listed at line 4, column 35",
            "DIR/strait.toml:4:57: listener[0].protocols[6]: duplicate protocol \"http1\" (\"http\" \
             is another name for \"http1\"); already listed at line 4, column 49",
            "DIR/strait.toml:4:66: listener[0].protocols[7]: expected a string (\"tls\", \"http1\", \
             \"h2c\" or \"tcp\"), found an integer",
            "DIR/strait.toml:10:12: listener[1].protocols: protocol = \"auto\" needs `protocols`: \
             some of \"tls\", \"http1\", \"h2c\" or \"tcp\", e.g. protocols = [\"http1\", \"tcp\"]",
            "DIR/strait.toml:17:13: listener[2].protocols: a listener with `protocols` sniffs each \
             connection: write protocol = \"auto\" or leave `protocol` out (this listener is \
             \"http\")",
            "DIR/strait.toml:23:13: listener[3].protocols: name at least one of \"tls\", \"http1\", \
             \"h2c\" or \"tcp\", e.g. protocols = [\"http1\", \"tcp\"]",
            "DIR/strait.toml:28:23: listener[4].cluster: a listener accepting \"tcp\" needs a \
             `cluster` to relay raw TCP connections to",
            "DIR/strait.toml:29:1: listener[4].sniff_timout: unknown key \"sniff_timout\" (did you \
             mean \"sniff_timeout\"?); valid keys in [[listener]]: \"name\", \"address\", \
             \"protocol\", \"protocols\", \"sniff_timeout\", \"cluster\", \"idle_timeout\", \
             \"backlog\", \"tls\", \"route\", \"trust_forwarded\", \"max_request_line\", \
             \"max_header_size\", \"max_headers\", \"max_body_size\", \"header_read_timeout\", \
             \"client_body_timeout\", \"keepalive_timeout\", \"upstream_response_timeout\", \
             \"upstream_body_timeout\", \"h2\"",
            "DIR/strait.toml:39:11: listener[5].cluster: on a listener with `protocols`, `cluster` \
             receives the raw TCP connections, and this listener accepts \"h2c\"; add \"tcp\" to \
             `protocols` (HTTP goes by [[listener.route]])",
            "DIR/strait.toml:40:17: listener[5].sniff_timeout: must be greater than 0, found \"0s\"",
            "DIR/strait.toml:46:1: listener[6].route: a listener accepting HTTP (\"http1\", \"h2c\", \
             or \"h2\" or \"http/1.1\" by ALPN inside \"tls\") needs at least one \
             [[listener.route]]; on a listener with `protocols`, `cluster` only receives raw TCP",
            "DIR/strait.toml:57:15: listener[7].max_headers: an HTTP setting; it needs HTTP among \
             the listener's `protocols` (\"http1\", \"h2c\", or \"tls\" with \"h2\" or \"http/1.1\" \
             in tls.alpn), and this listener accepts \"tcp\"",
            "DIR/strait.toml:59:1: listener[7].route: routes need HTTP among the listener's \
             `protocols` (\"http1\", \"h2c\", or \"tls\" with \"h2\" or \"http/1.1\" in tls.alpn), \
             and this listener accepts \"tcp\"",
            "DIR/strait.toml:63:1: listener[7].h2: HTTP/2 settings need HTTP among the listener's \
             `protocols` (\"http1\", \"h2c\", or \"tls\" with \"h2\" or \"http/1.1\" in tls.alpn), \
             and this listener accepts \"tcp\"",
            "DIR/strait.toml:70:17: listener[8].sniff_timeout: a sniffing setting; it needs \
             `protocols` (protocol = \"auto\"), and this listener is \"tcp\" (the default)",
        ]
    );
}

#[test]
fn tls_errors_name_the_key_and_the_valid_form() {
    let dir = Dir::new();
    let text = r#"[[listener]]
name = "no-tls-table"
address = "127.0.0.1:8001"
protocols = ["tls", "tcp"]
cluster = "app"

[[listener]]
name = "no-cert"
address = "127.0.0.1:8002"
protocol = "http"
cluster = "app"

[listener.tls]
min_verison = "1.3"

[[listener]]
name = "tcp-h2"
address = "127.0.0.1:8003"
cluster = "app"

[listener.tls]
min_version = "1.1"
alpn = ["h2", "imap", "H2", "h2c", "imap", ""]
handshake_timeout = "0s"
session_tickets = "yes"

[[listener.tls.certificate]]
cert = "certs/missing.pem"
key = "certs"
server_names = ["*", "10.0.0.1", "a.example.com:443", "Example.com", "example.com"]

[[listener.tls.certificate]]
cert = "/nonexistent/c.pem"
key = "certs/example.key"
server_names = ["example.com"]
sni = []

[[listener.tls.passthrough]]
server_name = "db.example.com"
cluster = "dbb"

[[listener.tls.passthrough]]
server_name = "DB.example.com"
cluster = "app"

[[listener.tls.passthrough]]
server_name = "*"

[[cluster]]
name = "app"
endpoints = [{ address = "127.0.0.1:9000" }]
"#;
    assert_eq!(
        dir.errors(text),
        [
            "DIR/strait.toml:4:14: listener[0].tls: a listener accepting \"tls\" needs \
             [listener.tls] with at least one [[listener.tls.certificate]] (cert and key)",
            "DIR/strait.toml:13:1: listener[1].tls.certificate: TLS termination needs at least one \
             [[listener.tls.certificate]] (cert and key)",
            "DIR/strait.toml:14:1: listener[1].tls.min_verison: unknown key \"min_verison\" (did \
             you mean \"min_version\"?); valid keys in [listener.tls]: \"min_version\", \"alpn\", \
             \"session_tickets\", \"handshake_timeout\", \"certificate\", \"passthrough\"",
            "DIR/strait.toml:22:15: listener[2].tls.min_version: invalid value \"1.1\"; expected \
             \"1.2\" or \"1.3\" (TLS 1.0 and 1.1 are not supported, RFC 8996)",
            "DIR/strait.toml:23:9: listener[2].tls.alpn[0]: \"h2\" is an HTTP protocol, and a tcp \
             listener relays the decrypted bytes as they are; offer it on a listener with HTTP \
             routes (protocol = \"http\", or HTTP among `protocols`)",
            "DIR/strait.toml:23:23: listener[2].tls.alpn[2]: ALPN ids are compared byte for byte \
             (did you mean \"h2\"?)",
            "DIR/strait.toml:23:29: listener[2].tls.alpn[3]: \"h2c\" is never negotiated over TLS \
             (RFC 9113 §3.1); HTTP/2 over TLS is \"h2\"",
            "DIR/strait.toml:23:36: listener[2].tls.alpn[4]: \"imap\" is already listed at line 23, \
             column 15",
            "DIR/strait.toml:23:44: listener[2].tls.alpn[5]: an ALPN protocol id is 1 to 255 bytes",
            "DIR/strait.toml:24:21: listener[2].tls.handshake_timeout: must be greater than 0, \
             found \"0s\"",
            "DIR/strait.toml:25:19: listener[2].tls.session_tickets: expected a boolean (true or \
             false), found a string",
            "DIR/strait.toml:28:8: listener[2].tls.certificate[0].cert: cannot read \
             \"DIR/certs/missing.pem\": No such file or directory",
            "DIR/strait.toml:29:7: listener[2].tls.certificate[0].key: cannot read \"DIR/certs\": \
             it is a directory, not a file",
            "DIR/strait.toml:30:17: listener[2].tls.certificate[0].server_names[0]: invalid server \
             name \"*\": \"*\" would match every client; name a host such as \"example.com\" or \
             \"*.example.com\"",
            "DIR/strait.toml:30:22: listener[2].tls.certificate[0].server_names[1]: invalid server \
             name \"10.0.0.1\": SNI carries host names, never IP addresses (RFC 6066 §3)",
            "DIR/strait.toml:30:34: listener[2].tls.certificate[0].server_names[2]: invalid server \
             name \"a.example.com:443\": a server name has no port; write \"a.example.com\"",
            "DIR/strait.toml:30:70: listener[2].tls.certificate[0].server_names[4]: \"example.com\" \
             is already a name of this certificate",
            "DIR/strait.toml:33:8: listener[2].tls.certificate[1].cert: cannot read \
             \"/nonexistent/c.pem\": No such file or directory",
            "DIR/strait.toml:35:17: listener[2].tls.certificate[1].server_names[0]: \"example.com\" \
             is already a name of certificate[0]",
            "DIR/strait.toml:36:1: listener[2].tls.certificate[1].sni: unknown key \"sni\"; valid \
             keys in [[listener.tls.certificate]]: \"cert\", \"key\", \"server_names\"",
            "DIR/strait.toml:40:11: listener[2].tls.passthrough[0].cluster: unknown cluster \
             \"dbb\"; defined clusters: \"app\"",
            "DIR/strait.toml:43:15: listener[2].tls.passthrough[1].server_name: \"DB.example.com\" \
             is already passed through at line 39; the first match wins, so this one never would",
            "DIR/strait.toml:46:1: listener[2].tls.passthrough[2].cluster: missing required key \
             \"cluster\" in [[listener.tls.passthrough]]",
            "DIR/strait.toml:47:15: listener[2].tls.passthrough[2].server_name: invalid server \
             name \"*\": \"*\" would match every client; name a host such as \"example.com\" or \
             \"*.example.com\"",
        ]
    );
}

/// TLS where it cannot be used is one error, whatever the table holds.
#[test]
fn tls_where_it_cannot_be_used_is_one_error() {
    let dir = Dir::new();
    let text = r#"[[listener]]
name = "udp"
address = "127.0.0.1:8001"
protocol = "udp"
cluster = "app"

[listener.tls]
certificate = []
min_version = "9"

[[listener]]
name = "tls-not-accepted"
address = "127.0.0.1:8002"
protocols = ["http1"]

[[listener.route]]
name = "r"
cluster = "app"

[[listener.tls.certificate]]
cert = "certs/nope.pem"
key = "certs/example.key"

[[listener]]
name = "bad-kind"
address = "127.0.0.1:8003"
protocol = "htp"
tls = 1

[[cluster]]
name = "app"
endpoints = [{ address = "127.0.0.1:9000" }]
"#;
    assert_eq!(
        dir.errors(text),
        [
            "DIR/strait.toml:7:1: listener[0].tls: TLS is for TCP listeners (DTLS is not \
             supported); this listener is \"udp\"",
            "DIR/strait.toml:20:12: listener[1].tls: add \"tls\" to `protocols` to use these TLS \
             settings (this listener accepts \"http1\")",
            "DIR/strait.toml:27:12: listener[2].protocol: invalid value \"htp\"; expected \"tcp\", \
             \"udp\", \"http\" or \"auto\"",
            "DIR/strait.toml:28:7: listener[2].tls: expected a table ([listener.tls]), found an \
             integer",
        ]
    );
}

#[test]
fn h2_settings_and_cluster_protocol_errors() {
    let dir = Dir::new();
    let text = r#"[[listener]]
name = "web"
address = "127.0.0.1:8001"
protocol = "http"
cluster = "app"

[listener.h2]
max_concurrent_streams = 0
initial_stream_window = "4GiB"
initial_connection_window = 1000
max_frame_size = "16MiB"
max_pending_accept_reset_streams = 0
max_local_error_reset_streams = 100001
max_send_buffer = "1KiB"
# no keep-alive PING setting: idle connections close after keepalive_timeout
max_concurent_streams = 1

[[listener]]
name = "tcp"
address = "127.0.0.1:8002"
cluster = "app"

[listener.h2]
max_concurrent_streams = 100

[[cluster]]
name = "app"
protocol = "http2"
endpoints = [{ address = "127.0.0.1:9000" }]

[[cluster]]
name = "other"
protocol = "HTTP1"
endpoints = [{ address = "127.0.0.1:9001" }]

[[cluster]]
name = "third"
protocol = "h2d"
endpoints = [{ address = "127.0.0.1:9002" }]
"#;
    assert_eq!(
        dir.errors(text),
        [
            "DIR/strait.toml:8:26: listener[0].h2.max_concurrent_streams: must be at least 1, \
             found 0",
            "DIR/strait.toml:9:25: listener[0].h2.initial_stream_window: must be between 65535 and \
             2147483647 bytes (RFC 9113 §6.9.2), found 4294967296 bytes",
            "DIR/strait.toml:10:29: listener[0].h2.initial_connection_window: must be between \
             65535 and 2147483647 bytes (RFC 9113 §6.9.2), found 1000 bytes",
            "DIR/strait.toml:11:18: listener[0].h2.max_frame_size: must be between 16384 and \
             16777215 bytes (RFC 9113 §4.2), found 16777216 bytes",
            "DIR/strait.toml:12:36: listener[0].h2.max_pending_accept_reset_streams: must be \
             between 1 and 10000, found 0",
            "DIR/strait.toml:13:33: listener[0].h2.max_local_error_reset_streams: must be between \
             1 and 100000, found 100001",
            "DIR/strait.toml:14:19: listener[0].h2.max_send_buffer: must be between 16KiB and \
             16MiB (16384 and 16777216 bytes), found 1024 bytes",
            "DIR/strait.toml:16:1: listener[0].h2.max_concurent_streams: unknown key \
             \"max_concurent_streams\" (did you mean \"max_concurrent_streams\"?); valid keys in \
             [listener.h2]: \"max_concurrent_streams\", \"initial_stream_window\", \
             \"initial_connection_window\", \"max_frame_size\", \
             \"max_pending_accept_reset_streams\", \"max_local_error_reset_streams\", \
             \"max_send_buffer\"",
            "DIR/strait.toml:23:1: listener[1].h2: HTTP/2 settings need protocol = \"http\", and \
             this listener is \"tcp\" (the default)",
            "DIR/strait.toml:28:12: cluster[0].protocol: invalid value \"http2\"; expected \
             \"http1\", \"h2c\" or \"h2\" (\"h2\" for HTTP/2 over TLS, \"h2c\" for HTTP/2 in \
             clear text)",
            "DIR/strait.toml:33:12: cluster[1].protocol: invalid value \"HTTP1\"; expected \
             \"http1\", \"h2c\" or \"h2\" (did you mean \"http1\"?)",
            "DIR/strait.toml:38:12: cluster[2].protocol: invalid value \"h2d\"; expected \
             \"http1\", \"h2c\" or \"h2\" (did you mean \"h2c\"?)",
        ]
    );
}

#[test]
fn relative_paths_start_at_the_config_files_directory() {
    let text = r#"[[listener]]
name = "tls"
address = "127.0.0.1:8001"
cluster = "app"

[[listener.tls.certificate]]
cert = "certs/c.pem"
key = "/nonexistent/k.pem"

[[cluster]]
name = "app"
endpoints = [{ address = "127.0.0.1:9000" }]
"#;
    let cwd = std::env::current_dir().unwrap();
    let got: Vec<String> = load_str(Path::new("./conf/strait.toml"), text)
        .unwrap_err()
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        got,
        [
            format!(
                "./conf/strait.toml:7:8: listener[0].tls.certificate[0].cert: cannot read \"{}\": \
                 No such file or directory",
                cwd.join("conf/certs/c.pem").display()
            ),
            "./conf/strait.toml:8:7: listener[0].tls.certificate[0].key: cannot read \
             \"/nonexistent/k.pem\": No such file or directory"
                .to_owned(),
        ]
    );
}

#[test]
fn truncated_or_mangled_tls_files_never_panic() {
    let dir = Dir::new();
    let text = doc_tls_example();
    for end in (0..=text.len()).filter(|&i| text.is_char_boundary(i)) {
        if let Err(diags) = dir.load(&text[..end]) {
            assert!(!diags.is_empty());
            for d in &diags {
                assert!(d.line >= 1 && d.column >= 1, "{end}: {d}");
            }
        }
        if let Some(c) = text[end..].chars().next() {
            let mangled = format!("{}{}", &text[..end], &text[end + c.len_utf8()..]);
            let _ = dir.load(&mangled);
        }
    }
}

#[test]
fn h2_clusters_speak_tls_with_system_or_given_cas() {
    let dir = Dir::new();
    let ca = dir.file("ca.pem");
    std::fs::write(&ca, "dummy\n").expect("ca file");
    let text = r#"[[listener]]
name = "web"
address = "127.0.0.1:8001"
protocol = "http"

[[listener.route]]
name = "a"
cluster = "secure"

[[listener.route]]
name = "b"
path_prefix = "/b"
cluster = "lab"

[[listener.route]]
name = "c"
path_prefix = "/c"
cluster = "system"

[[cluster]]
name = "secure"
protocol = "h2"
endpoints = [{ address = "127.0.0.1:9443" }]
[cluster.tls]
server_name = "API.internal"
ca_file = "ca.pem"

[[cluster]]
name = "lab"
protocol = "h2"
endpoints = [{ address = "127.0.0.1:9444" }]
tls = { insecure = true }

[[cluster]]
name = "system"
protocol = "h2"
endpoints = [{ address = "127.0.0.1:9445" }]
"#;
    let c = dir.load(text).expect("valid");
    let tls = |i: usize| c.clusters[i].http.tls.clone().expect("tls");
    assert_eq!(tls(0).server_name.as_deref(), Some("api.internal"));
    assert_eq!(tls(0).ca_file.as_deref(), Some(ca.as_path()));
    assert!(!tls(0).insecure);
    assert!(tls(1).insecure);
    assert_eq!(
        tls(2),
        Default::default(),
        "defaults: system CAs, SNI from host/address"
    );

    let bad = r#"[[listener]]
name = "web"
address = "127.0.0.1:8001"
protocol = "http"
cluster = "plain"

[[cluster]]
name = "plain"
protocol = "h2c"
endpoints = [{ address = "127.0.0.1:9000" }]
tls = { insecure = true }

[[cluster]]
name = "both"
protocol = "h2"
endpoints = [{ address = "127.0.0.1:9001" }]
tls = { ca_file = "ca.pem", insecure = true, sni = "x" }

[[cluster]]
name = "missing"
protocol = "h2"
endpoints = [{ address = "127.0.0.1:9002" }]
tls = { ca_file = "nope.pem", server_name = "bad name" }
"#;
    assert_eq!(
        dir.errors(bad),
        [
            "DIR/strait.toml:11:7: cluster[0].tls: h2c is HTTP/2 in clear text: use protocol = \
             \"h2\" for HTTP/2 over TLS (or \"http1\" for HTTP/1.1 over TLS)",
            "DIR/strait.toml:17:40: cluster[1].tls.insecure: `insecure = true` skips certificate \
             verification, so `ca_file` would be ignored: give one of them",
            "DIR/strait.toml:17:46: cluster[1].tls.sni: unknown key \"sni\"; valid keys in \
             [cluster.tls]: \"server_name\", \"ca_file\", \"insecure\"",
            "DIR/strait.toml:23:19: cluster[2].tls.ca_file: cannot read \"DIR/nope.pem\": No such \
             file or directory",
            "DIR/strait.toml:23:45: cluster[2].tls.server_name: invalid server name \"bad name\": \
             expected a DNS name or an IP address",
        ]
    );
}
