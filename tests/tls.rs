//! TLS against the real binary on loopback, with real rustls clients (tokio-rustls) and
//! certificates issued by a test CA (rcgen): HTTP/1.1 and h2 by ALPN over TLS 1.3 and 1.2, the
//! certificate chosen by SNI, session resumption, passthrough by SNI to a TLS origin next to
//! termination on the same port, TLS-terminated TCP, sniffing inside TLS when no ALPN was agreed,
//! handshake failures counted by reason, start-up errors for unusable certificate files, and
//! certificate reload. Clear-text sniffing is in sniff.rs.

mod common;

use std::io::Write;
use std::net::{Shutdown, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use common::http::*;
use common::tls::*;
use common::*;
use hyper_util::rt::TokioIo;
use rustls::{HandshakeKind, ProtocolVersion};
use rustls_pki_types::CertificateDer;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

const EDGE: &str = "edge";

// ---------------------------------------------------------------------------------------------
// Fixtures.

/// The proxy's CA and certificates on disk: `default` (first: no SNI or an unknown name; also
/// valid for 127.0.0.1), `a.test` and `*.wild.test`.
struct Certs {
    dir: PathBuf,
    ca: Ca,
    default: Leaf,
    a: Leaf,
    wild: Leaf,
}

impl Certs {
    fn new() -> Certs {
        let dir = temp_dir("tls");
        let ca = Ca::new("strait test CA");
        let default = ca.issue(&["default.test", "127.0.0.1"]);
        let a = ca.issue(&["a.test"]);
        let wild = ca.issue(&["*.wild.test"]);
        Certs {
            dir,
            ca,
            default,
            a,
            wild,
        }
    }

    /// `[[listener.tls.certificate]]` tables for every certificate, the default first.
    fn tables(&self) -> String {
        let mut out = String::new();
        for (stem, leaf) in [
            ("default", &self.default),
            ("a", &self.a),
            ("wild", &self.wild),
        ] {
            let (cert, key) = leaf.write(&self.dir, stem);
            out.push_str(&format!(
                "[[listener.tls.certificate]]\ncert = \"{}\"\nkey = \"{}\"\n\n",
                cert.display(),
                key.display()
            ));
        }
        out
    }
}

impl Drop for Certs {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The origins behind the `edge` listener: HTTP routes, raw TCP (inside TLS or not) and a TLS
/// origin for passthrough, with its own CA.
struct Origins {
    web: HttpOrigin,
    raw: Origin,
    origin_ca: Ca,
    origin_leaf: Leaf,
    tls: TlsOrigin,
}

impl Origins {
    fn new() -> Origins {
        let origin_ca = Ca::new("origin CA");
        let origin_leaf = origin_ca.issue(&["db.test"]);
        let tls = TlsOrigin::start(&origin_leaf);
        Origins {
            web: HttpOrigin::echo(),
            raw: Origin::echo(),
            origin_ca,
            origin_leaf,
            tls,
        }
    }
}

/// `edge`: one port, every protocol, TLS terminated with the three certificates, `db.test` and
/// `*.pass.test` passed through to the TLS origin.
fn edge_proxy(certs: &Certs, o: &Origins) -> Proxy {
    config_proxy(
        &format!(
            r#"
[[listener]]
name = "{EDGE}"
address = "LISTEN"
protocols = ["tls", "http1", "h2c", "tcp"]
sniff_timeout = "100ms"
cluster = "raw"

[listener.tls]
min_version = "1.2"

{}
[[listener.tls.passthrough]]
server_name = "db.test"
cluster = "db"

[[listener.tls.passthrough]]
server_name = "*.pass.test"
cluster = "db"

[[listener.route]]
name = "web"
cluster = "web"

[[cluster]]
name = "web"
endpoints = [{{ address = "{}" }}]

[[cluster]]
name = "raw"
endpoints = [{{ address = "{}" }}]

[[cluster]]
name = "db"
endpoints = [{{ address = "{}" }}]
"#,
            certs.tables(),
            o.web.addr,
            o.raw.addr,
            o.tls.addr
        ),
        &[],
    )
}

/// Waits for `name{listener, labels}` to equal `want`; fails if it is not exported.
fn expect_metric(proxy: &Proxy, listener: &str, name: &str, labels: &[(&str, &str)], want: f64) {
    let mut all = vec![("listener", listener)];
    all.extend_from_slice(labels);
    match wait_metric(proxy, name, &all, want) {
        Ok(true) => {}
        Ok(false) => panic!("{name} is not exported"),
        Err(e) => panic!("{e}"),
    }
}

fn expect_protocol(proxy: &Proxy, listener: &str, protocol: &str, want: f64) {
    expect_metric(
        proxy,
        listener,
        "strait_listener_protocol_connections_total",
        &[("protocol", protocol)],
        want,
    );
}

/// The body HttpOrigin::echo answers for a request.
fn echo_body(method: &str, target: &str, body: &[u8]) -> String {
    format!(
        "{method} {target} len={} sum={}",
        body.len(),
        checksum(body)
    )
}

fn version_name(v: &[&rustls::SupportedProtocolVersion]) -> &'static str {
    if v == TLS12 {
        "TLS 1.2"
    } else {
        "TLS 1.3"
    }
}

fn protocol_of(v: &[&rustls::SupportedProtocolVersion]) -> ProtocolVersion {
    if v == TLS12 {
        ProtocolVersion::TLSv1_2
    } else {
        ProtocolVersion::TLSv1_3
    }
}

/// HTTP/1.1 GETs of `paths` on one connection over `io`; returns the bodies (status 200 checked).
async fn http1_gets<T>(io: T, host: &str, paths: &[&str]) -> Vec<String>
where
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io))
        .await
        .expect("hyper handshake");
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            eprintln!("hyper connection: {e}");
        }
    });
    let mut out = Vec::new();
    for p in paths {
        let (status, _, body) = send(&mut sender, request("GET", p, host, empty()))
            .await
            .unwrap_or_else(|e| panic!("GET {p}: {e}"));
        assert_eq!(status, 200, "GET {p}");
        out.push(String::from_utf8_lossy(&body).into_owned());
    }
    out
}

/// HTTP/2 GETs of `paths`, all in flight at once on one connection over `io`; returns the bodies
/// (status 200 checked).
async fn h2_gets<T>(io: T, authority: &str, paths: &[&str]) -> Vec<String>
where
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (client, conn) = h2::client::handshake(io).await.expect("h2 handshake");
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            eprintln!("h2 connection: {e}");
        }
    });
    let mut pending = Vec::new();
    for p in paths {
        let mut client = client.clone().ready().await.expect("h2 ready");
        let req = ::http::Request::builder()
            .uri(format!("https://{authority}{p}"))
            .body(())
            .expect("request");
        let (resp, _) = client.send_request(req, true).expect("send_request");
        pending.push(resp);
    }
    let mut out = Vec::new();
    for (p, resp) in paths.iter().zip(pending) {
        let resp = resp.await.unwrap_or_else(|e| panic!("h2 GET {p}: {e}"));
        assert_eq!(resp.status(), 200, "h2 GET {p}");
        let mut body = resp.into_body();
        let mut got = Vec::new();
        while let Some(chunk) = body.data().await {
            let chunk = chunk.expect("h2 body");
            let _ = body.flow_control().release_capacity(chunk.len());
            got.extend_from_slice(&chunk);
        }
        out.push(String::from_utf8_lossy(&got).into_owned());
    }
    out
}

/// The leaf a fresh client (no session to resume) is shown for `name`.
async fn leaf_for(
    addr: SocketAddr,
    config: Arc<rustls::ClientConfig>,
    name: &str,
) -> CertificateDer<'static> {
    let s = tls_connect(addr, config, name)
        .await
        .unwrap_or_else(|e| panic!("TLS handshake as {name:?}: {e}"));
    assert_eq!(s.get_ref().1.handshake_kind(), Some(HandshakeKind::Full));
    peer_leaf(&s)
}

/// Runs `strait <args>` expecting it to fail at start: its exit status and stderr.
fn start_fails(args: &[String]) -> (ExitStatus, String) {
    let log = temp_dir("start-fails").join("stderr");
    let mut child = Command::new(binary())
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).expect("stderr file"))
        .spawn()
        .expect("spawn strait");
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "strait did not exit; stderr:\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        }
        thread::sleep(Duration::from_millis(20));
    };
    let stderr = std::fs::read_to_string(&log).unwrap_or_default();
    let _ = std::fs::remove_dir_all(log.parent().expect("dir"));
    (status, stderr)
}

fn quick_tls_args(mode: &str, upstream: SocketAddr, cert: &Path, key: &Path) -> Vec<String> {
    args(&[
        "--mode",
        mode,
        "--upstream",
        &upstream.to_string(),
        "--tls-cert",
        cert.to_str().expect("utf-8 path"),
        "--tls-key",
        key.to_str().expect("utf-8 path"),
        "--cores",
        "0",
    ])
}

// ---------------------------------------------------------------------------------------------
// HTTP over TLS.

/// TLS 1.3 and TLS 1.2, each with ALPN `http/1.1` (hyper) and `h2` (the h2 crate).
#[test]
fn http1_and_h2_by_alpn_over_tls13_and_tls12() {
    let certs = Certs::new();
    let o = Origins::new();
    let proxy = edge_proxy(&certs, &o);
    let addr = proxy.listen;
    let ca = &certs.ca;
    let mut handshakes = 0.0;
    for versions in [TLS13, TLS12] {
        let v = version_name(versions);
        let h1 = client(ca, versions, &["http/1.1"]);
        let h2 = client(ca, versions, &["h2"]);
        let both = client(ca, versions, &["h2", "http/1.1"]);
        let (bodies1, bodies2, preferred) = block_on(Duration::from_secs(15), async move {
            let s = tls_connect(addr, h1, "a.test")
                .await
                .expect("TLS (http/1.1)");
            assert_eq!(alpn(&s).as_deref(), Some("http/1.1"), "{v}");
            assert_eq!(
                s.get_ref().1.protocol_version(),
                Some(protocol_of(versions))
            );
            let bodies1 = http1_gets(s, "a.test", &["/one", "/two?x=1"]).await;

            let s = tls_connect(addr, h2, "a.test").await.expect("TLS (h2)");
            assert_eq!(alpn(&s).as_deref(), Some("h2"), "{v}");
            assert_eq!(
                s.get_ref().1.protocol_version(),
                Some(protocol_of(versions))
            );
            let bodies2 = h2_gets(s, "a.test", &["/three", "/four", "/five"]).await;

            // Offered both: the server prefers h2.
            let s = tls_connect(addr, both, "a.test").await.expect("TLS (both)");
            let preferred = alpn(&s);
            drop(s);
            (bodies1, bodies2, preferred)
        });
        assert_eq!(
            bodies1,
            [
                echo_body("GET", "/one", b""),
                echo_body("GET", "/two?x=1", b"")
            ],
            "{v}"
        );
        assert_eq!(
            bodies2,
            [
                echo_body("GET", "/three", b""),
                echo_body("GET", "/four", b""),
                echo_body("GET", "/five", b""),
            ],
            "{v}"
        );
        assert_eq!(preferred.as_deref(), Some("h2"), "{v}");
        handshakes += 3.0;
    }
    let seen = o.web.requests();
    assert_eq!(seen.len(), 10);
    for s in &seen {
        assert_eq!(s.header("host"), Some("a.test"), "{s:?}");
    }
    expect_protocol(&proxy, EDGE, "https1", 2.0);
    expect_protocol(&proxy, EDGE, "h2", 4.0);
    expect_metric(&proxy, EDGE, "strait_tls_handshakes_total", &[], handshakes);
    expect_metric(
        &proxy,
        EDGE,
        "strait_tls_handshake_failures_total",
        &[],
        0.0,
    );
    assert_eq!(o.raw.connection_count(), 0);
    assert_eq!(o.tls.handshakes(), 0);
}

/// Exact names, then a wildcard covering exactly one label, then the first certificate (also
/// for clients that send no SNI), on TLS 1.3 and TLS 1.2.
#[test]
fn certificate_is_chosen_by_sni() {
    let certs = Certs::new();
    let o = Origins::new();
    let proxy = edge_proxy(&certs, &o);
    let addr = proxy.listen;
    let mut handshakes = 0.0;
    for versions in [TLS13, TLS12] {
        let v = version_name(versions);
        // Names the certificates cover: verified against the CA, as a browser would.
        let verified = [
            ("a.test", &certs.a),
            ("x.wild.test", &certs.wild),
            ("other-label.wild.test", &certs.wild),
            ("default.test", &certs.default),
            // Connecting by IP address: no SNI at all.
            ("127.0.0.1", &certs.default),
        ];
        for (name, want) in verified {
            let config = client(&certs.ca, versions, &["http/1.1"]);
            let got = block_on(Duration::from_secs(10), leaf_for(addr, config, name));
            assert!(got == want.der, "{v}: {name:?} got the wrong certificate");
            handshakes += 1.0;
        }
        // Names no certificate covers get the default one.
        for name in ["a.b.wild.test", "wild.test", "unknown.test", "xa.test"] {
            let config = any_cert_client(versions, &["http/1.1"]);
            let got = block_on(Duration::from_secs(10), leaf_for(addr, config, name));
            assert!(
                got == certs.default.der,
                "{v}: {name:?} did not get the default certificate"
            );
            handshakes += 1.0;
        }
    }
    expect_metric(&proxy, EDGE, "strait_tls_handshakes_total", &[], handshakes);
    expect_metric(&proxy, EDGE, "strait_tls_passthrough_total", &[], 0.0);
}

/// A second connection with the same client configuration resumes (stateless tickets), on
/// TLS 1.3 and TLS 1.2, and works.
#[test]
fn sessions_resume_on_tls13_and_tls12() {
    let certs = Certs::new();
    let o = Origins::new();
    let proxy = edge_proxy(&certs, &o);
    let addr = proxy.listen;
    for versions in [TLS13, TLS12] {
        let v = version_name(versions);
        let config = client(&certs.ca, versions, &["http/1.1"]);
        let kinds = block_on(Duration::from_secs(15), async move {
            let mut kinds = Vec::new();
            for i in 0..3 {
                let s = tls_connect(addr, config.clone(), "a.test")
                    .await
                    .unwrap_or_else(|e| panic!("{v}: connection {i}: {e}"));
                kinds.push(s.get_ref().1.handshake_kind());
                assert_eq!(
                    s.get_ref().1.protocol_version(),
                    Some(protocol_of(versions))
                );
                // A request and its response: TLS 1.3 tickets arrive after the handshake.
                let path = format!("/resume/{i}");
                let bodies = http1_gets(s, "a.test", &[&path]).await;
                assert_eq!(bodies, [echo_body("GET", &path, b"")]);
            }
            kinds
        });
        assert_eq!(
            kinds,
            [
                Some(HandshakeKind::Full),
                Some(HandshakeKind::Resumed),
                Some(HandshakeKind::Resumed)
            ],
            "{v}"
        );
    }
    expect_metric(&proxy, EDGE, "strait_tls_handshakes_total", &[], 6.0);
    expect_protocol(&proxy, EDGE, "https1", 6.0);
}

// ---------------------------------------------------------------------------------------------
// Passthrough, TLS-terminated TCP, sniffing inside TLS.

/// `db.test` and `*.pass.test` reach the TLS origin still encrypted (the client completes its
/// handshake with the origin's certificate, from another CA), while `a.test` on the same port is
/// terminated by the proxy.
#[test]
fn passthrough_by_sni_next_to_termination_on_the_same_port() {
    let certs = Certs::new();
    let o = Origins::new();
    let proxy = edge_proxy(&certs, &o);
    let addr = proxy.listen;
    let via_origin_ca = client(&o.origin_ca, ANY_VERSION, &[]);
    let via_origin_ca_12 = client(&o.origin_ca, TLS12, &[]);
    let any = any_cert_client(ANY_VERSION, &[]);
    let proxy_ca = client(&certs.ca, ANY_VERSION, &["http/1.1"]);
    let origin_der = o.origin_leaf.der.clone();
    block_on(Duration::from_secs(15), async move {
        for (config, name) in [
            (via_origin_ca, "db.test"),
            (via_origin_ca_12, "db.test"),
            (any, "x.pass.test"),
        ] {
            let mut s = tls_connect(addr, config, name)
                .await
                .unwrap_or_else(|e| panic!("passthrough handshake as {name}: {e}"));
            assert!(
                peer_leaf(&s) == origin_der,
                "{name}: not the origin's certificate"
            );
            let greeting = format!("origin sni={name}\n");
            let got = read_exactly(&mut s, greeting.len(), Duration::from_secs(5))
                .await
                .expect("greeting from the origin");
            assert_eq!(String::from_utf8_lossy(&got), greeting);
            let msg = payload(100_000, 3);
            s.write_all(&msg).await.expect("write through");
            let back = read_exactly(&mut s, msg.len(), Duration::from_secs(5))
                .await
                .expect("echo through");
            assert!(back == msg, "{name}: echo differs");
        }
        let s = tls_connect(addr, proxy_ca, "a.test")
            .await
            .expect("terminated handshake");
        let bodies = http1_gets(s, "a.test", &["/terminated"]).await;
        assert_eq!(bodies, [echo_body("GET", "/terminated", b"")]);
    });
    assert_eq!(o.tls.handshakes(), 3);
    assert_eq!(
        o.tls.names(),
        [
            Some("db.test".to_string()),
            Some("db.test".to_string()),
            Some("x.pass.test".to_string())
        ]
    );
    expect_metric(&proxy, EDGE, "strait_tls_passthrough_total", &[], 3.0);
    expect_protocol(&proxy, EDGE, "tcp", 3.0);
    expect_metric(&proxy, EDGE, "strait_tls_handshakes_total", &[], 1.0);
    expect_protocol(&proxy, EDGE, "https1", 1.0);
}

/// `protocol = "tcp"` with TLS: 4 MiB through TLS to a plain echo origin and back, checksummed,
/// then the client's close_notify and half-close reach the origin and its close comes back.
#[test]
fn tls_terminated_tcp_round_trips_4mib() {
    let dir = temp_dir("tls-tcp");
    let ca = Ca::new("tcp CA");
    let (cert, key) = ca.issue(&["tcp.test"]).write(&dir, "tcp");
    let echo = Origin::echo();
    let proxy = Proxy::quick(&quick_tls_args("tcp", echo.addr, &cert, &key));
    let config = client(&ca, ANY_VERSION, &[]);
    let addr = proxy.listen;
    let data = Arc::new(payload(4 << 20, 11));
    let sent = data.clone();
    let (got, eof) = block_on(Duration::from_secs(20), async move {
        let s = tls_connect(addr, config, "tcp.test").await.expect("TLS");
        assert_eq!(alpn(&s), None, "a TCP listener offers no ALPN");
        let (mut r, mut w) = tokio::io::split(s);
        let writer = tokio::spawn(async move {
            for chunk in sent.chunks(100_003) {
                w.write_all(chunk).await.expect("write");
            }
            w.shutdown().await.expect("close_notify");
            w
        });
        let got = read_exactly(&mut r, data.len(), Duration::from_secs(15))
            .await
            .expect("the echo of 4 MiB");
        let _w = writer.await.expect("writer");
        let mut rest = Vec::new();
        let eof = tokio::time::timeout(Duration::from_secs(5), r.read_to_end(&mut rest)).await;
        (got, eof.map(|r| r.map(|_| rest)))
    });
    assert_eq!(got.len(), 4 << 20);
    assert_eq!(checksum(&got), checksum(&payload(4 << 20, 11)));
    match eof {
        Ok(Ok(rest)) => assert!(rest.is_empty(), "{} bytes after the echo", rest.len()),
        Ok(Err(e)) => panic!("the connection failed after the echo: {e}"),
        Err(_) => panic!("the half-close did not come back through the proxy within 5 s"),
    }
    assert_eq!(echo.connection_count(), 1);
    expect_protocol(&proxy, "main", "tls_tcp", 1.0);
    expect_metric(&proxy, "main", "strait_tls_handshakes_total", &[], 1.0);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Without ALPN, the proxy sniffs inside TLS: HTTP/1.1 and the h2 preface go to the routes, raw
/// bytes to the TCP cluster, and a client silent past the sniff timeout is TCP too (even if it
/// then sends an HTTP request line).
#[test]
fn without_alpn_the_proxy_sniffs_inside_tls() {
    let certs = Certs::new();
    let o = Origins::new();
    let proxy = edge_proxy(&certs, &o);
    let addr = proxy.listen;
    let no_alpn = client(&certs.ca, ANY_VERSION, &[]);
    block_on(Duration::from_secs(15), async move {
        let s = tls_connect(addr, no_alpn.clone(), "a.test")
            .await
            .expect("TLS (http)");
        assert_eq!(alpn(&s), None);
        let bodies = http1_gets(s, "inner.test", &["/inner/1", "/inner/2"]).await;
        assert_eq!(
            bodies,
            [
                echo_body("GET", "/inner/1", b""),
                echo_body("GET", "/inner/2", b"")
            ]
        );

        let s = tls_connect(addr, no_alpn.clone(), "a.test")
            .await
            .expect("TLS (h2)");
        let bodies = h2_gets(s, "inner.test", &["/inner/h2"]).await;
        assert_eq!(bodies, [echo_body("GET", "/inner/h2", b"")]);

        let mut s = tls_connect(addr, no_alpn.clone(), "x.wild.test")
            .await
            .expect("TLS (raw)");
        let mut blob = vec![0u8, 0xfe];
        blob.extend(payload(200_000, 5));
        s.write_all(&blob).await.expect("write raw");
        let back = read_exactly(&mut s, blob.len(), Duration::from_secs(5))
            .await
            .expect("echo of the raw bytes");
        assert!(
            back == blob,
            "raw bytes inside TLS were not relayed exactly"
        );
        s.shutdown().await.expect("close_notify");
        let mut rest = Vec::new();
        let eof = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut rest)).await;
        assert!(
            matches!(eof, Ok(Ok(0))),
            "the origin's close did not come back: {eof:?}"
        );
    });
    assert_eq!(o.web.request_count(), 3);
    assert_eq!(o.raw.connection_count(), 1);
    expect_protocol(&proxy, EDGE, "https1", 1.0);
    expect_protocol(&proxy, EDGE, "h2", 1.0);
    expect_protocol(&proxy, EDGE, "tls_tcp", 1.0);
    expect_metric(&proxy, EDGE, "strait_tls_handshakes_total", &[], 3.0);
}

/// A TLS client without ALPN that waits for the server to speak first (IMAPS, SMTPS, POP3S…)
/// is relayed as TCP once the sniff timeout passes inside TLS: what it sends afterwards, even an
/// HTTP request line, goes to the TCP cluster.
#[test]
fn a_client_silent_inside_tls_is_relayed_as_tcp() {
    let certs = Certs::new();
    let o = Origins::new();
    let proxy = edge_proxy(&certs, &o);
    let addr = proxy.listen;
    let no_alpn = client(&certs.ca, ANY_VERSION, &[]);
    let late = b"GET /late HTTP/1.1\r\nHost: inner.test\r\n\r\n";
    block_on(Duration::from_secs(15), async move {
        let mut s = tls_connect(addr, no_alpn, "a.test")
            .await
            .expect("TLS (silent)");
        assert_eq!(alpn(&s), None);
        // Well past the listener's sniff_timeout (100ms).
        tokio::time::sleep(Duration::from_millis(400)).await;
        s.write_all(late).await.expect("write late");
        let back = read_exactly(&mut s, late.len(), Duration::from_secs(5))
            .await
            .expect("the late request line echoed by the TCP origin");
        assert_eq!(&back[..], &late[..]);
    });
    assert_eq!(o.web.request_count(), 0);
    assert_eq!(o.raw.connection_count(), 1);
    expect_protocol(&proxy, EDGE, "tls_tcp", 1.0);
    // The proxy is still serving.
    let config = client(&certs.ca, ANY_VERSION, &["http/1.1"]);
    let bodies = block_on(Duration::from_secs(10), async move {
        let s = tls_connect(addr, config, "a.test")
            .await
            .expect("TLS after");
        http1_gets(s, "a.test", &["/after"]).await
    });
    assert_eq!(bodies, [echo_body("GET", "/after", b"")]);
}

// ---------------------------------------------------------------------------------------------
// Handshake failures.

/// Every way a handshake fails is counted once under its reason, on a listener that accepts
/// TLS 1.3 only (with or without passthrough routes, which read the ClientHello first).
fn handshake_failures(passthrough: bool) {
    let certs = Certs::new();
    let web = HttpOrigin::echo();
    let routes = if passthrough {
        "[[listener.tls.passthrough]]\nserver_name = \"db.test\"\ncluster = \"db\"\n"
    } else {
        ""
    };
    let proxy = config_proxy(
        &format!(
            r#"
[[cluster]]
name = "web"
endpoints = [{{ address = "{}" }}]

[[cluster]]
name = "db"
endpoints = [{{ address = "{}" }}]

[[listener]]
name = "{EDGE}"
address = "LISTEN"
protocols = ["tls", "http1"]

[listener.tls]
min_version = "1.3"
handshake_timeout = "500ms"

{}
{routes}
[[listener.route]]
name = "web"
cluster = "web"
"#,
            web.addr,
            dead_addr(),
            certs.tables()
        ),
        &[],
    );
    let addr = proxy.listen;
    let what = if passthrough {
        "with passthrough"
    } else {
        "without passthrough"
    };
    let reason = |r: &str, want: f64| {
        expect_metric(
            &proxy,
            EDGE,
            "strait_tls_handshake_failures_total",
            &[("reason", r)],
            want,
        )
    };

    // A client that trusts another CA rejects our certificate with an alert.
    let stranger = Ca::new("another CA");
    let config = client(&stranger, ANY_VERSION, &["http/1.1"]);
    let err = block_on(Duration::from_secs(10), tls_connect(addr, config, "a.test"))
        .expect_err("a client trusting another CA completed the handshake");
    assert!(
        format!("{err:?}").contains("UnknownIssuer"),
        "{what}: {err:?}"
    );
    reason("alert_received", 1.0);

    // TLS 1.2 only, against min_version = "1.3".
    let config = client(&certs.ca, TLS12, &["http/1.1"]);
    let err = block_on(Duration::from_secs(10), tls_connect(addr, config, "a.test"))
        .expect_err("TLS 1.2 completed against min_version 1.3");
    eprintln!("{what}: TLS 1.2 client: {err}");
    reason("incompatible", 1.0);

    // ALPN offered, none in common.
    let config = client(&certs.ca, ANY_VERSION, &["imap"]);
    let err = block_on(Duration::from_secs(10), tls_connect(addr, config, "a.test"))
        .expect_err("a handshake without a common ALPN protocol completed");
    eprintln!("{what}: ALPN imap: {err}");
    reason("no_application_protocol", 1.0);

    // A complete handshake record holding garbage: a ClientHello of two bytes.
    let mut s = connect(addr);
    s.write_all(&[
        0x16, 0x03, 0x01, 0x00, 0x06, 0x01, 0x00, 0x00, 0x02, 0xff, 0xff,
    ])
    .unwrap();
    s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    let (got, _) = read_until_closed(&mut s);
    // Whatever came back is at most a fatal alert record (content type 21).
    assert!(
        got.is_empty() || got[0] == 0x15,
        "{what}: answer to garbage: {got:02x?}"
    );
    reason("protocol_error", 1.0);

    // The start of a record, then silence: closed at the handshake timeout.
    let mut s = connect(addr);
    s.write_all(&[0x16, 0x03, 0x01, 0x00, 0x80, 0x01]).unwrap();
    let started = Instant::now();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let (_, _) = read_until_closed(&mut s);
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(400) && waited < Duration::from_secs(4),
        "{what}: a stalled handshake was closed after {waited:?} (handshake_timeout 500ms)"
    );
    reason("timeout", 1.0);

    // The start of a record, then the client goes away.
    let mut s = connect(addr);
    s.write_all(&[0x16, 0x03, 0x01, 0x00, 0x80, 0x01]).unwrap();
    thread::sleep(Duration::from_millis(50));
    s.shutdown(Shutdown::Both).unwrap();
    drop(s);
    reason("client_closed", 1.0);

    reason("other", 0.0);
    expect_metric(
        &proxy,
        EDGE,
        "strait_tls_handshake_failures_total",
        &[],
        6.0,
    );
    expect_metric(&proxy, EDGE, "strait_tls_handshakes_total", &[], 0.0);
    assert_eq!(web.request_count(), 0);

    // And a good client still gets through.
    let config = client(&certs.ca, TLS13, &["http/1.1"]);
    let bodies = block_on(Duration::from_secs(10), async move {
        let s = tls_connect(addr, config, "a.test")
            .await
            .expect("good client");
        http1_gets(s, "a.test", &["/fine"]).await
    });
    assert_eq!(bodies, [echo_body("GET", "/fine", b"")]);
    expect_metric(&proxy, EDGE, "strait_tls_handshakes_total", &[], 1.0);
}

#[test]
fn handshake_failures_are_counted_by_reason() {
    handshake_failures(false);
}

#[test]
fn handshake_failures_are_counted_by_reason_with_passthrough_routes() {
    handshake_failures(true);
}

/// A client whose ALPN protocols the server does not speak gets a fatal
/// `no_application_protocol` alert (RFC 7301 §3.2), not a bare close.
fn alpn_mismatch_alert(versions: &'static [&'static rustls::SupportedProtocolVersion]) {
    let dir = temp_dir("alpn");
    let ca = Ca::new("alpn CA");
    let (cert, key) = ca.issue(&["alpn.test"]).write(&dir, "alpn");
    let web = HttpOrigin::echo();
    let proxy = Proxy::quick(&quick_tls_args("http", web.addr, &cert, &key));
    let config = client(&ca, versions, &["imap", "pop3"]);
    let err = block_on(
        Duration::from_secs(10),
        tls_connect(proxy.listen, config, "alpn.test"),
    )
    .expect_err("a handshake without a common ALPN protocol completed");
    let alert = err
        .get_ref()
        .and_then(|e| e.downcast_ref::<rustls::Error>())
        .cloned();
    assert_eq!(
        alert,
        Some(rustls::Error::AlertReceived(
            rustls::AlertDescription::NoApplicationProtocol
        )),
        "{}: the client saw {err:?}",
        version_name(versions)
    );
    expect_metric(
        &proxy,
        "main",
        "strait_tls_handshake_failures_total",
        &[("reason", "no_application_protocol")],
        1.0,
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn alpn_mismatch_gets_the_no_application_protocol_alert_tls12() {
    alpn_mismatch_alert(TLS12);
}

#[test]
fn alpn_mismatch_gets_the_no_application_protocol_alert_tls13() {
    alpn_mismatch_alert(TLS13);
}

// ---------------------------------------------------------------------------------------------
// Start-up errors.

#[test]
fn a_key_that_does_not_match_the_certificate_stops_start_up() {
    let dir = temp_dir("mismatch");
    let ca = Ca::new("mismatch CA");
    let (cert, _) = ca.issue(&["one.test"]).write(&dir, "one");
    let (_, other_key) = ca.issue(&["two.test"]).write(&dir, "two");
    let key_name = other_key.display().to_string();

    // The quick form.
    let mut a = args(&["run", "--listen", &free_addr().to_string()]);
    a.extend(quick_tls_args("auto", dead_addr(), &cert, &other_key));
    let (status, stderr) = start_fails(&a);
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&key_name),
        "the key file is not named:\n{stderr}"
    );
    assert!(
        stderr.contains("does not belong to the certificate"),
        "{stderr}"
    );
    assert!(
        stderr.contains("\"main\""),
        "the listener is not named:\n{stderr}"
    );

    // A configuration file.
    let config = dir.join("strait.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[[listener]]
name = "secure"
address = "{}"
protocol = "tcp"
cluster = "c"

[[listener.tls.certificate]]
cert = "{}"
key = "{}"

[[cluster]]
name = "c"
endpoints = [{{ address = "{}" }}]
"#,
            free_addr(),
            cert.display(),
            other_key.display(),
            dead_addr()
        ),
    )
    .unwrap();
    let (status, stderr) = start_fails(&args(&[
        "run",
        "--config",
        config.to_str().unwrap(),
        "--cores",
        "0",
    ]));
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&key_name),
        "the key file is not named:\n{stderr}"
    );
    assert!(
        stderr.contains("does not belong to the certificate"),
        "{stderr}"
    );
    assert!(
        stderr.contains("\"secure\""),
        "the listener is not named:\n{stderr}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_missing_certificate_file_stops_start_up() {
    let dir = temp_dir("missing");
    let ca = Ca::new("missing CA");
    let (_, key) = ca.issue(&["one.test"]).write(&dir, "one");
    let missing = dir.join("nope.pem");
    let missing_name = missing.display().to_string();

    let mut a = args(&["run", "--listen", &free_addr().to_string()]);
    a.extend(quick_tls_args("tcp", dead_addr(), &missing, &key));
    let (status, stderr) = start_fails(&a);
    assert_ne!(status.code(), Some(0), "{stderr}");
    assert!(status.code().is_some(), "killed by a signal: {stderr}");
    assert!(
        stderr.contains(&missing_name),
        "the file is not named:\n{stderr}"
    );

    let config = dir.join("strait.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[[listener]]
name = "secure"
address = "{}"
protocol = "tcp"
cluster = "c"

[[listener.tls.certificate]]
cert = "{}"
key = "{}"

[[cluster]]
name = "c"
endpoints = [{{ address = "{}" }}]
"#,
            free_addr(),
            missing.display(),
            key.display(),
            dead_addr()
        ),
    )
    .unwrap();
    let (status, stderr) = start_fails(&args(&[
        "run",
        "--config",
        config.to_str().unwrap(),
        "--cores",
        "0",
    ]));
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&missing_name),
        "the file is not named:\n{stderr}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

// ---------------------------------------------------------------------------------------------
// Reload.

/// Overwriting the certificate and key files (temporary file + rename) switches new handshakes
/// to the new certificate within a few seconds; a connection opened before keeps working, and a
/// session from before the reload still resumes (the ticket keys survive it).
#[test]
fn certificates_reload_when_their_files_change() {
    let dir = temp_dir("reload");
    let ca = Ca::new("reload CA");
    let first = ca.issue(&["reload.test"]);
    let second = ca.issue(&["reload.test"]);
    let (cert, key) = first.write(&dir, "live");
    let echo = Origin::echo();
    let proxy = Proxy::quick(&quick_tls_args("tcp", echo.addr, &cert, &key));
    let addr = proxy.listen;
    let resuming = client(&ca, TLS13, &[]);

    let rt = runtime();
    let limit = Duration::from_secs(5);
    let (mut before, old_leaf) = rt.block_on(async {
        let mut s = tls_connect(addr, resuming.clone(), "reload.test")
            .await
            .expect("TLS before the reload");
        s.write_all(b"before\n").await.unwrap();
        let back = read_exactly(&mut s, 7, limit).await.expect("echo before");
        assert_eq!(&back[..], b"before\n");
        let leaf = peer_leaf(&s);
        (s, leaf)
    });
    assert!(old_leaf == first.der, "not the first certificate at start");

    // Certificates are renewed long after start: let the watcher's first poll (2 s) pass.
    thread::sleep(Duration::from_millis(2500));
    second.replace(&cert, &key);
    let replaced = Instant::now();
    let switched = loop {
        let fresh = client(&ca, ANY_VERSION, &[]);
        let leaf = rt.block_on(async {
            tokio::time::timeout(limit, leaf_for(addr, fresh, "reload.test")).await
        });
        let leaf = leaf.expect("handshake during the reload");
        if leaf == second.der {
            break replaced.elapsed();
        }
        assert!(leaf == first.der, "neither the old nor the new certificate");
        assert!(
            replaced.elapsed() < Duration::from_secs(6),
            "still the old certificate 6 s after the files changed:\n{}",
            proxy.logs()
        );
        thread::sleep(Duration::from_millis(100));
    };
    eprintln!("new certificate served {switched:?} after the change");

    rt.block_on(async {
        // The connection from before the reload still works.
        before.write_all(b"after\n").await.unwrap();
        let back = read_exactly(&mut before, 6, limit)
            .await
            .expect("echo on the old connection after the reload");
        assert_eq!(&back[..], b"after\n");
        assert!(peer_leaf(&before) == first.der);
        drop(before);

        // A session from before the reload resumes.
        let mut s = tls_connect(addr, resuming, "reload.test")
            .await
            .expect("resumption after the reload");
        assert_eq!(s.get_ref().1.handshake_kind(), Some(HandshakeKind::Resumed));
        s.write_all(b"resumed\n").await.unwrap();
        let back = read_exactly(&mut s, 8, limit).await.expect("echo resumed");
        assert_eq!(&back[..], b"resumed\n");
    });
    let _ = std::fs::remove_dir_all(&dir);
}
