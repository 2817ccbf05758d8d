//! Upstream HTTP/2 through the real binary on loopback: HTTP/1.1 (and 1.0) clients forwarded to
//! an h2c cluster (framing of the response for each client version, uploads, trailers,
//! keep-alive, hop-by-hop fields, WebSocket refusal, upstream resets mid-body), and h2 clusters
//! over TLS (verification by `ca_file`, SNI from `server_name`, `host` or the address, `insecure`,
//! ALPN, start-up errors, many streams over few TLS connections). The origin is the tokio HTTP/2
//! origin of common::upstream_h2, in clear text or behind tokio-rustls.

mod common;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use common::h2_support::{exchange, get as h2_get, h2c_connect};
use common::http::{
    block_on, check_proxy_error, config_proxy, fnv, full, get, hyper_connect, is_generated_id,
    metric_now, one_request, request, send, temp_dir, RawConn, RawResponse, StreamingBody,
    FNV_START,
};
use common::tls::{Ca, Leaf};
use common::upstream_h2::*;
use common::{args, checksum, dead_addr, free_addr, payload, Proxy};

const LIMIT: Duration = Duration::from_secs(15);
const CLUSTER: &str = "up";
const PROTOCOL_ERRORS: &str = "strait_cluster_upstream_protocol_errors_total";

/// One sniffing listener accepting HTTP/1.x and h2c, every path routed to the cluster `up`
/// described by `cluster` (a whole `[[cluster]]` table).
fn proxy(cluster: &str) -> Proxy {
    let toml = format!(
        r#"
[[listener]]
name = "edge"
address = "LISTEN"
protocols = ["h2c", "http1"]

[[listener.route]]
name = "all"
path_prefix = "/"
cluster = "{CLUSTER}"

{cluster}
"#
    );
    config_proxy(&toml, &[])
}

fn h2c_cluster(addr: SocketAddr) -> String {
    format!(
        "[[cluster]]\nname = \"{CLUSTER}\"\nprotocol = \"h2c\"\nendpoints = [{{ address = \"{addr}\" }}]\n"
    )
}

/// An h2 cluster; `host` is the cluster's `host` key, `tls` the lines of `[cluster.tls]`.
fn h2_cluster(addr: SocketAddr, host: Option<&str>, tls: &str) -> String {
    let host = host.map_or(String::new(), |h| format!("host = \"{h}\"\n"));
    format!(
        "[[cluster]]\nname = \"{CLUSTER}\"\nprotocol = \"h2\"\nconnect_timeout = \"2s\"\n{host}\
         endpoints = [{{ address = \"{addr}\" }}]\n\n[cluster.tls]\n{tls}\n"
    )
}

fn h2c_proxy(origin: &H2Backend) -> Proxy {
    proxy(&h2c_cluster(origin.addr))
}

fn ok_text(r: &RawResponse) -> (u16, String) {
    (r.status, r.text())
}

// ---------------------------------------------------------------------------------------------
// HTTP/1.1 clients to an h2c cluster.

#[test]
fn a_content_length_from_the_h2_upstream_is_kept_for_an_http11_client() {
    let origin = H2Backend::h2c();
    let proxy = h2c_proxy(&origin);
    let mut c = RawConn::connect(proxy.listen);

    let r = c.exchange(&get("/len/100000", "app.test")).expect("GET");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.framing, "length");
    assert_eq!(r.header("content-length"), Some("100000"));
    assert!(r.header("transfer-encoding").is_none());
    assert!(r.body == payload(100_000, BODY_SEED), "body differs");
    assert_eq!(r.header("x-origin-conn"), Some("0"));
    assert!(!r.has_token("connection", "close"));

    let r = c.exchange(&get("/len/5", "app.test")).expect("second GET");
    assert!(r.body == payload(5, BODY_SEED));

    let seen = origin
        .wait_request("/len/100000", LIMIT)
        .expect("origin saw it");
    assert_eq!(seen.method, "GET");
    assert_eq!(seen.scheme, "http");
    assert_eq!(seen.authority, "app.test");
}

#[test]
fn a_response_without_length_is_chunked_for_http11_and_close_delimited_for_http10() {
    let origin = H2Backend::h2c();
    let proxy = h2c_proxy(&origin);
    let want = payload(123_457, BODY_SEED);

    // HTTP/1.1: chunked, and the connection stays usable.
    let mut c = RawConn::connect(proxy.listen);
    let r = c.exchange(&get("/nolen/123457", "app.test")).expect("GET");
    assert_eq!(r.status, 200);
    assert_eq!(r.framing, "chunked");
    assert!(r.header("content-length").is_none());
    assert!(
        r.body == want,
        "chunked body differs ({} bytes)",
        r.body.len()
    );
    assert!(!r.has_token("connection", "close"));
    let r = c
        .exchange(&get("/after-chunked", "app.test"))
        .expect("next");
    assert_eq!(ok_text(&r), (200, "/after-chunked".into()));

    // HTTP/1.0: delimited by the close, and said so.
    for keep_alive in ["", "Connection: keep-alive\r\n"] {
        let mut c = RawConn::connect(proxy.listen);
        let req = format!("GET /nolen/123457 HTTP/1.0\r\nHost: app.test\r\n{keep_alive}\r\n");
        let r = c.exchange(req.as_bytes()).expect("HTTP/1.0 GET");
        assert_eq!(r.status, 200, "{keep_alive:?}");
        assert_eq!(r.framing, "close", "{keep_alive:?}: {:?}", r.headers);
        assert!(r.has_token("connection", "close"), "{:?}", r.headers);
        assert!(r.header("transfer-encoding").is_none());
        assert!(
            r.body == want,
            "close-delimited body differs ({} bytes)",
            r.body.len()
        );
    }

    // HTTP/1.0 with keep-alive and a length: the connection is kept.
    let mut c = RawConn::connect(proxy.listen);
    let req = b"GET /len/1000 HTTP/1.0\r\nHost: app.test\r\nConnection: keep-alive\r\n\r\n";
    let r = c.exchange(req).expect("HTTP/1.0 keep-alive");
    assert_eq!((r.status, r.framing), (200, "length"));
    assert!(r.has_token("connection", "keep-alive"), "{:?}", r.headers);
    let r = c.exchange(req).expect("second HTTP/1.0 request");
    assert!(r.body == payload(1000, BODY_SEED));
}

#[test]
fn uploads_of_4_mib_chunked_and_with_content_length_arrive_intact() {
    let origin = H2Backend::h2c();
    let proxy = h2c_proxy(&origin);
    let addr = proxy.listen;
    let data = Arc::new(payload(4 << 20, 21));
    let want = format!("len={} sum={}", data.len(), checksum(&data));
    let sent = data.clone();
    let (chunked, length) = block_on(LIMIT, async move {
        let mut s = hyper_connect(addr).await;
        let body = StreamingBody::boxed_from(sent.clone());
        let chunked = send(&mut s, request("POST", "/upload/chunked", "app.test", body))
            .await
            .expect("chunked POST");
        let body = full(sent.to_vec());
        let length = send(&mut s, request("POST", "/upload/length", "app.test", body))
            .await
            .expect("Content-Length POST");
        (chunked, length)
    });
    for (name, (status, _, body)) in [("chunked", chunked), ("length", length)] {
        assert_eq!(status, 200, "{name}");
        assert_eq!(String::from_utf8_lossy(&body), want, "{name}");
    }
    let seen = origin.wait_request("/upload/chunked", LIMIT).expect("seen");
    assert_eq!(seen.method, "POST");
    assert!(seen.header("transfer-encoding").is_none());
    // Both requests went over the one upstream connection.
    assert_eq!(origin.connections(), 1);
}

/// A response whose HEADERS frame ends the stream (`content-length: 0`, or no length and no
/// body) is a complete, empty response for the HTTP/1.1 client.
#[test]
fn an_empty_h2_response_reaches_an_http11_client() {
    let origin = H2Backend::h2c();
    let proxy = h2c_proxy(&origin);
    for path in ["/len/0", "/empty"] {
        let mut c = RawConn::connect(proxy.listen);
        let r = c
            .exchange(&get(path, "app.test"))
            .unwrap_or_else(|e| panic!("{path}: no response ({e})"));
        assert_eq!((r.status, r.framing), (200, "length"), "{path}");
        assert_eq!(r.header("content-length"), Some("0"), "{path}");
        // Keep-alive: the next request on the connection is answered.
        let r = c.exchange(&get("/next", "app.test")).expect("next");
        assert_eq!(ok_text(&r), (200, "/next".into()), "{path}");
    }
    // HTTP/1.0 too.
    let r = one_request(
        proxy.listen,
        b"GET /empty HTTP/1.0\r\nHost: app.test\r\n\r\n",
    )
    .expect("HTTP/1.0: no response");
    assert_eq!((r.status, r.body.len()), (200, 0));
}

#[test]
fn h2_response_trailers_become_a_chunked_trailer_section() {
    let origin = H2Backend::h2c();
    let proxy = h2c_proxy(&origin);
    let mut c = RawConn::connect(proxy.listen);
    let r = c.exchange(&get("/trailers", "app.test")).expect("GET");
    assert_eq!(r.status, 200);
    assert_eq!(r.framing, "chunked");
    assert_eq!(r.text(), TRAILERS_BODY);
    let sum = fnv(FNV_START, TRAILERS_BODY.as_bytes()).to_string();
    let find = |n: &str| {
        r.trailers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(n))
            .map(|(_, v)| v.as_str())
    };
    assert_eq!(find("x-checksum"), Some(sum.as_str()), "{:?}", r.trailers);
    assert_eq!(find("grpc-status"), Some("0"), "{:?}", r.trailers);
    // The trailer section ended where it should: the next response parses.
    let r = c
        .exchange(&get("/after-trailers", "app.test"))
        .expect("next");
    assert_eq!(ok_text(&r), (200, "/after-trailers".into()));
}

#[test]
fn fifty_sequential_requests_on_one_keep_alive_connection() {
    let origin = H2Backend::h2c();
    let proxy = h2c_proxy(&origin);
    let mut c = RawConn::connect(proxy.listen);
    for i in 0..50usize {
        let (path, n) = if i % 2 == 0 {
            (format!("/len/{}", i * 100 + 3), i * 100 + 3)
        } else {
            (format!("/nolen/{}", i * 100 + 1), i * 100 + 1)
        };
        let r = c
            .exchange(&get(&path, "app.test"))
            .unwrap_or_else(|e| panic!("request {i} ({path}): {e}"));
        assert_eq!(r.status, 200, "request {i}");
        assert!(r.body == payload(n, BODY_SEED), "request {i}: body differs");
        assert!(!r.has_token("connection", "close"), "request {i}");
    }
    let seen = origin.requests();
    assert_eq!(seen.len(), 50);
    assert!(seen.iter().all(|s| s.conn == 0), "one upstream connection");
    assert_eq!(origin.connections(), 1);
}

#[test]
fn hop_by_hop_fields_do_not_reach_the_origin_and_via_names_http11() {
    let origin = H2Backend::h2c();
    let proxy = h2c_proxy(&origin);
    let req = b"GET /fields?q=1 HTTP/1.1\r\nHost: app.test\r\nConnection: x, keep-alive\r\n\
        x: 1\r\nKeep-Alive: timeout=5\r\nTE: gzip\r\nProxy-Connection: keep-alive\r\n\
        X-Kept: yes\r\n\r\n";
    let r = one_request(proxy.listen, req).expect("GET");
    assert_eq!(ok_text(&r), (200, "/fields?q=1".into()));
    let seen = origin.wait_request("/fields?q=1", LIMIT).expect("seen");
    for name in [
        "connection",
        "x",
        "keep-alive",
        "te",
        "proxy-connection",
        "transfer-encoding",
        "upgrade",
        "host",
    ] {
        assert!(
            seen.headers.get(name).is_none(),
            "{name} reached the origin: {:?}",
            seen.headers
        );
    }
    assert_eq!(seen.header("x-kept"), Some("yes"));
    assert_eq!(seen.header("via"), Some("1.1 strait"));
    assert_eq!(seen.header("x-forwarded-for"), Some("127.0.0.1"));
    assert_eq!(seen.header("x-forwarded-proto"), Some("http"));
    assert_eq!(seen.authority, "app.test");
    let id = seen.header("x-request-id").expect("x-request-id");
    assert!(is_generated_id(id), "{id}");
    assert_eq!(r.header("x-request-id"), Some(id));
}

#[test]
fn a_websocket_upgrade_to_an_h2c_cluster_is_a_502() {
    let origin = H2Backend::h2c();
    let proxy = h2c_proxy(&origin);
    let mut c = RawConn::connect(proxy.listen);
    let r = c
        .exchange(
            b"GET /ws HTTP/1.1\r\nHost: app.test\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
              Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
        )
        .expect("upgrade request");
    check_proxy_error(&r, 502).unwrap();
    c.closed_within(Duration::from_secs(3))
        .expect("the connection closes after the refused upgrade");
    // A plain request still goes through; the upgrade never reached the origin.
    let r = one_request(proxy.listen, &get("/plain", "app.test")).expect("GET");
    assert_eq!(ok_text(&r), (200, "/plain".into()));
    let paths: Vec<String> = origin.requests().into_iter().map(|s| s.path).collect();
    assert_eq!(paths, vec!["/plain".to_string()]);
}

/// Sends GET `path` and reads the head and whatever body bytes arrive until the proxy closes the
/// connection; panics if it stays open.
fn read_cut_response(addr: SocketAddr, path: &str) -> (String, Vec<u8>) {
    let mut c = RawConn::connect(addr);
    c.send(&get(path, "app.test")).expect("send");
    let head = c
        .wire
        .read_head()
        .expect("response head")
        .expect("a response head before the close");
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match c.wire.fill() {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break,
            Err(e) => panic!("{path}: the connection stayed open ({e})"),
        }
        assert!(Instant::now() < deadline, "{path}: still sending");
    }
    (
        String::from_utf8_lossy(&head).to_ascii_lowercase(),
        c.wire.buffered().to_vec(),
    )
}

#[test]
fn an_upstream_reset_mid_body_aborts_the_client_connection() {
    let origin = H2Backend::h2c();
    let proxy = h2c_proxy(&origin);

    let (head, body) = read_cut_response(proxy.listen, "/reset/chunked");
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert!(head.contains("transfer-encoding: chunked"), "{head}");
    assert!(!body.is_empty(), "no body byte before the reset");
    assert!(
        !body.ends_with(b"0\r\n\r\n"),
        "a reset body was ended like a whole one"
    );

    let (head, body) = read_cut_response(proxy.listen, "/reset/length");
    assert!(head.contains("content-length: 1000000"), "{head}");
    assert!(body.len() < 1_000_000, "{} bytes", body.len());

    // The upstream connection survived the stream resets.
    let r = one_request(proxy.listen, &get("/after-reset", "app.test")).expect("GET");
    assert_eq!(ok_text(&r), (200, "/after-reset".into()));
    assert_eq!(origin.connections(), 1);
}

// ---------------------------------------------------------------------------------------------
// h2 clusters (TLS).

/// A test CA (written to `ca.pem`), the origin's certificate for `backend.test` from it, and a
/// certificate for the same name from a CA nobody trusts.
struct Pki {
    dir: PathBuf,
    ca_file: PathBuf,
    ca: Ca,
    leaf: Leaf,
    stranger: Leaf,
}

impl Pki {
    fn new() -> Pki {
        let dir = temp_dir("upstream-h2-pki");
        let ca = Ca::new("upstream h2 test CA");
        let ca_file = dir.join("ca.pem");
        std::fs::write(&ca_file, certificate_pem(&ca.der())).expect("write CA file");
        let leaf = ca.issue(&["backend.test"]);
        let stranger = Ca::new("a CA nobody trusts").issue(&["backend.test"]);
        Pki {
            dir,
            ca_file,
            ca,
            leaf,
            stranger,
        }
    }

    /// `[cluster.tls]` lines trusting the test CA.
    fn trust(&self, server_name: Option<&str>) -> String {
        let name = server_name.map_or(String::new(), |n| format!("server_name = \"{n}\"\n"));
        format!("{name}ca_file = \"{}\"", self.ca_file.display())
    }
}

impl Drop for Pki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// GET `path` from an h2c client and from an HTTP/1.1 client: (status, body) of each.
fn both_clients(addr: SocketAddr, path: &str) -> ((u16, String), (u16, String)) {
    let p = path.to_string();
    let h2 = block_on(LIMIT, async move {
        let client = h2c_connect(addr).await;
        let r = exchange(&client.send, h2_get(&format!("{p}/h2c")), None, None)
            .await
            .expect("h2c exchange");
        (r.status, r.text())
    });
    let r = one_request(addr, &get(&format!("{path}/h1"), "app.test")).expect("HTTP/1.1 GET");
    (h2, ok_text(&r))
}

fn protocol_errors(proxy: &Proxy) -> f64 {
    metric_now(proxy, PROTOCOL_ERRORS, &[("cluster", CLUSTER)])
}

/// Polls until the cluster's protocol error counter is positive.
fn wait_protocol_errors(proxy: &Proxy) -> f64 {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let n = protocol_errors(proxy);
        if n > 0.0 || Instant::now() > deadline {
            return n;
        }
        thread::sleep(Duration::from_millis(25));
    }
}

#[test]
fn an_h2_cluster_verified_by_ca_file_with_server_name() {
    let pki = Pki::new();
    let origin = H2Backend::tls(&pki.leaf, &["h2"]);
    let proxy = proxy(&h2_cluster(
        origin.addr,
        None,
        &pki.trust(Some("backend.test")),
    ));
    let (h2, h1) = both_clients(proxy.listen, "/tls");
    assert_eq!(h2, (200, "/tls/h2c".into()));
    assert_eq!(h1, (200, "/tls/h1".into()));

    let hs = origin.handshakes();
    assert!(!hs.is_empty());
    for h in &hs {
        assert_eq!(h.sni.as_deref(), Some("backend.test"), "{hs:?}");
        assert_eq!(h.alpn.as_deref(), Some("h2"), "{hs:?}");
    }
    assert_eq!(
        origin.connections(),
        1,
        "both requests on one TLS connection"
    );
    for path in ["/tls/h2c", "/tls/h1"] {
        let seen = origin.wait_request(path, LIMIT).expect("seen");
        assert_eq!(seen.scheme, "https", "{path}");
    }
    assert_eq!(
        origin.wait_request("/tls/h1", LIMIT).unwrap().authority,
        "app.test"
    );
    assert_eq!(protocol_errors(&proxy), 0.0);
}

#[test]
fn sni_defaults_to_the_cluster_host_without_its_port() {
    let pki = Pki::new();
    let origin = H2Backend::tls(&pki.leaf, &["h2"]);
    let proxy = proxy(&h2_cluster(
        origin.addr,
        Some("backend.test:8443"),
        &pki.trust(None),
    ));
    let (h2, h1) = both_clients(proxy.listen, "/host");
    assert_eq!(h2, (200, "/host/h2c".into()));
    assert_eq!(h1, (200, "/host/h1".into()));
    let hs = origin.handshakes();
    assert!(!hs.is_empty());
    assert!(
        hs.iter().all(|h| h.sni.as_deref() == Some("backend.test")),
        "{hs:?}"
    );
    for path in ["/host/h2c", "/host/h1"] {
        let seen = origin.wait_request(path, LIMIT).expect("seen");
        assert_eq!(seen.authority, "backend.test:8443", "{path}");
    }
}

/// Without `server_name` or `host`, the endpoint's IP address is verified (and no SNI is sent):
/// a certificate for 127.0.0.1 passes, one for `backend.test` does not.
#[test]
fn without_server_name_or_host_the_endpoint_address_is_verified() {
    let pki = Pki::new();
    let by_ip = H2Backend::tls(&pki.ca.issue(&["127.0.0.1"]), &["h2"]);
    let proxy_ip = proxy(&h2_cluster(by_ip.addr, None, &pki.trust(None)));
    let r = one_request(proxy_ip.listen, &get("/ip", "app.test")).expect("GET");
    assert_eq!(ok_text(&r), (200, "/ip".into()));
    let hs = by_ip.handshakes();
    assert!(
        !hs.is_empty() && hs.iter().all(|h| h.sni.is_none()),
        "{hs:?}"
    );

    let by_name = H2Backend::tls(&pki.leaf, &["h2"]);
    let proxy_name = proxy(&h2_cluster(by_name.addr, None, &pki.trust(None)));
    let r = one_request(proxy_name.listen, &get("/ip", "app.test")).expect("GET");
    check_proxy_error(&r, 502).unwrap();
    assert!(by_name.requests().is_empty());
}

#[test]
fn a_certificate_from_another_ca_is_a_502_and_a_protocol_error() {
    let pki = Pki::new();
    let origin = H2Backend::tls(&pki.stranger, &["h2"]);
    let proxy = proxy(&h2_cluster(
        origin.addr,
        None,
        &pki.trust(Some("backend.test")),
    ));
    let r = one_request(proxy.listen, &get("/stranger", "app.test")).expect("GET");
    check_proxy_error(&r, 502).unwrap();
    let addr = proxy.listen;
    let status = block_on(LIMIT, async move {
        let client = h2c_connect(addr).await;
        exchange(&client.send, h2_get("/stranger/h2c"), None, None)
            .await
            .expect("h2c exchange")
            .status
    });
    assert_eq!(status, 502);
    assert!(wait_protocol_errors(&proxy) > 0.0);
    origin.wait_tls_settled(1, LIMIT);
    assert!(origin.handshakes().is_empty(), "{:?}", origin.handshakes());
    assert!(origin.requests().is_empty());
}

#[test]
fn insecure_accepts_a_certificate_from_another_ca() {
    let pki = Pki::new();
    let origin = H2Backend::tls(&pki.stranger, &["h2"]);
    let proxy = proxy(&h2_cluster(
        origin.addr,
        None,
        "server_name = \"backend.test\"\ninsecure = true",
    ));
    let (h2, h1) = both_clients(proxy.listen, "/insecure");
    assert_eq!(h2, (200, "/insecure/h2c".into()));
    assert_eq!(h1, (200, "/insecure/h1".into()));
    let hs = origin.handshakes();
    assert!(
        hs.iter().all(|h| h.sni.as_deref() == Some("backend.test")),
        "{hs:?}"
    );
}

/// An origin that does not agree to `h2` by ALPN (it offers only `http/1.1`, or no ALPN at all)
/// is refused even though it would speak HTTP/2.
#[test]
fn an_origin_without_alpn_h2_is_a_502() {
    let pki = Pki::new();
    for alpn in [&["http/1.1"][..], &[][..]] {
        let origin = H2Backend::tls(&pki.leaf, alpn);
        let proxy = proxy(&h2_cluster(
            origin.addr,
            None,
            &pki.trust(Some("backend.test")),
        ));
        let r = one_request(proxy.listen, &get("/alpn", "app.test")).expect("GET");
        check_proxy_error(&r, 502).unwrap_or_else(|e| panic!("ALPN {alpn:?}: {e}"));
        assert!(wait_protocol_errors(&proxy) > 0.0, "ALPN {alpn:?}");
        assert!(origin.requests().is_empty(), "ALPN {alpn:?}");
    }
}

#[test]
fn a_ca_file_that_is_not_pem_stops_start_up() {
    let dir = temp_dir("upstream-h2-bad-ca");
    let ca_file = dir.join("not-a-ca.pem");
    std::fs::write(&ca_file, "this is not a certificate bundle\n").expect("write");
    let config = dir.join("strait.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[[listener]]
name = "edge"
address = "{}"
protocol = "http"
cluster = "secure-backend"

[[cluster]]
name = "secure-backend"
protocol = "h2"
endpoints = [{{ address = "{}" }}]

[cluster.tls]
ca_file = "{}"
"#,
            free_addr(),
            dead_addr(),
            ca_file.display()
        ),
    )
    .expect("write config");
    let (status, stderr) = start_fails(&args(&[
        "run",
        "--config",
        config.to_str().expect("utf-8 path"),
        "--cores",
        "0",
    ]));
    let _ = std::fs::remove_dir_all(&dir);
    assert!(status.code().is_some(), "killed by a signal: {stderr}");
    assert_ne!(status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("secure-backend"),
        "the cluster is not named:\n{stderr}"
    );
    assert!(
        stderr.contains(&ca_file.display().to_string()),
        "the file is not named:\n{stderr}"
    );
}

/// 300 streams at once from three h2c client connections, each held 300 ms by the origin: they
/// share at most four TLS connections (100 streams each on the one core).
#[test]
fn three_hundred_concurrent_streams_share_few_tls_connections() {
    let pki = Pki::new();
    let origin = H2Backend::tls(&pki.leaf, &["h2"]);
    let proxy = proxy(&h2_cluster(
        origin.addr,
        None,
        &pki.trust(Some("backend.test")),
    ));
    let addr = proxy.listen;
    let took = block_on(LIMIT, async move {
        let started = Instant::now();
        let mut tasks = Vec::new();
        for c in 0..3 {
            let client = h2c_connect(addr).await;
            for i in 0..100 {
                let send = client.send.clone();
                tasks.push(tokio::spawn(async move {
                    let path = format!("/sleep/300/{c}/{i}");
                    let r = exchange(&send, h2_get(&path), None, None).await;
                    (path, r)
                }));
            }
        }
        let mut ok = 0;
        for t in tasks {
            let (path, r) = t.await.expect("task");
            let r = r.unwrap_or_else(|e| panic!("{path}: {e}"));
            assert_eq!((r.status, r.text()), (200, path.clone()));
            ok += 1;
        }
        assert_eq!(ok, 300);
        started.elapsed()
    });
    assert!(
        took < Duration::from_secs(10),
        "300 streams of 300 ms took {took:?}: not concurrent"
    );
    let tls = origin.handshakes().len();
    assert!(
        (1..=4).contains(&tls),
        "{tls} TLS connections for 300 streams"
    );
    assert!(
        origin.accepted() <= 4,
        "{} TCP connections",
        origin.accepted()
    );
    assert!(
        origin.max_streams_per_connection() <= 100,
        "{} streams at once on one connection",
        origin.max_streams_per_connection()
    );
    assert_eq!(origin.requests().len(), 300);
}

// ---------------------------------------------------------------------------------------------
// HTTP/1.1 clusters over TLS (`protocol = "http1"` with `[cluster.tls]`).

/// An HTTPS HTTP/1.1 origin (tokio-rustls, ALPN `http/1.1`): answers every request with
/// `<sni> <method> <path> <body length>`, keeps connections alive, and counts connections.
struct Https1Origin {
    addr: SocketAddr,
    connections: Arc<std::sync::atomic::AtomicUsize>,
}

impl Https1Origin {
    fn start(leaf: &Leaf) -> Https1Origin {
        use std::sync::atomic::{AtomicUsize, Ordering};
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut config = leaf.server_config();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let std_listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind origin");
        std_listener.set_nonblocking(true).expect("nonblocking");
        let addr = std_listener.local_addr().expect("addr");
        let connections = Arc::new(AtomicUsize::new(0));
        let counted = connections.clone();
        thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(std_listener).expect("listener");
                loop {
                    let Ok((tcp, _)) = listener.accept().await else {
                        return;
                    };
                    let acceptor = acceptor.clone();
                    let counted = counted.clone();
                    tokio::spawn(async move {
                        let Ok(mut tls) = acceptor.accept(tcp).await else {
                            return;
                        };
                        counted.fetch_add(1, Ordering::Relaxed);
                        let sni = tls.get_ref().1.server_name().unwrap_or("-").to_string();
                        let mut buf = Vec::new();
                        loop {
                            let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
                                let mut chunk = [0u8; 4096];
                                match tls.read(&mut chunk).await {
                                    Ok(0) | Err(_) => return,
                                    Ok(n) => buf.extend_from_slice(&chunk[..n]),
                                }
                                continue;
                            };
                            let head = String::from_utf8_lossy(&buf[..end]).to_string();
                            let mut lines = head.split("\r\n");
                            let first = lines.next().unwrap_or("");
                            let length: usize = lines
                                .filter_map(|l| l.split_once(':'))
                                .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
                                .and_then(|(_, v)| v.trim().parse().ok())
                                .unwrap_or(0);
                            while buf.len() < end + 4 + length {
                                let mut chunk = [0u8; 65536];
                                match tls.read(&mut chunk).await {
                                    Ok(0) | Err(_) => return,
                                    Ok(n) => buf.extend_from_slice(&chunk[..n]),
                                }
                            }
                            let mut parts = first.split(' ');
                            let (method, path) =
                                (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
                            let body = format!("{sni} {method} {path} {length}");
                            let response = format!(
                                "HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n{body}",
                                body.len()
                            );
                            if tls.write_all(response.as_bytes()).await.is_err() {
                                return;
                            }
                            buf.drain(..end + 4 + length);
                        }
                    });
                }
            });
        });
        Https1Origin { addr, connections }
    }

    fn connections(&self) -> usize {
        self.connections.load(std::sync::atomic::Ordering::Relaxed)
    }
}

#[test]
fn an_http1_cluster_over_tls_is_verified_and_pooled() {
    let pki = Pki::new();
    let origin = Https1Origin::start(&pki.leaf);
    let proxy = proxy(&format!(
        "[[cluster]]\nname = \"{CLUSTER}\"\nendpoints = [{{ address = \"{}\" }}]\n[cluster.tls]\n{}\n",
        origin.addr,
        pki.trust(Some("backend.test"))
    ));
    // HTTP/1.1 clients, keep-alive: 20 requests, one upstream TLS connection.
    let mut conn = RawConn::connect(proxy.listen);
    for i in 0..20 {
        conn.send(&get(&format!("/one/{i}"), "app.test"))
            .expect("send");
        let r = conn.response().expect("response");
        assert_eq!(ok_text(&r), (200, format!("backend.test GET /one/{i} 0")));
    }
    // A body goes through TLS too.
    let body = payload(300_000, 7);
    let post = format!(
        "POST /upload HTTP/1.1\r\nHost: app.test\r\ncontent-length: {}\r\n\r\n",
        body.len()
    );
    let mut bytes = post.into_bytes();
    bytes.extend_from_slice(&body);
    let r = one_request(proxy.listen, &bytes).expect("POST");
    assert_eq!(
        ok_text(&r),
        (200, "backend.test POST /upload 300000".to_string())
    );
    // h2c clients reach the same HTTP/1.1-over-TLS cluster.
    let (h2, _) = both_clients(proxy.listen, "/both");
    assert_eq!(h2.0, 200);
    assert!(h2.1.starts_with("backend.test GET /both/h2c"), "{}", h2.1);
    assert!(
        origin.connections() <= 3,
        "pooled TLS connections are reused: {} opened",
        origin.connections()
    );
}

#[test]
fn an_http1_cluster_over_tls_refuses_an_untrusted_certificate() {
    let pki = Pki::new();
    let origin = Https1Origin::start(&pki.stranger);
    let proxy = proxy(&format!(
        "[[cluster]]\nname = \"{CLUSTER}\"\nendpoints = [{{ address = \"{}\" }}]\n[cluster.tls]\n{}\n",
        origin.addr,
        pki.trust(Some("backend.test"))
    ));
    let r = one_request(proxy.listen, &get("/x", "app.test")).expect("answer");
    check_proxy_error(&r, 502).unwrap();
    assert!(wait_protocol_errors(&proxy) > 0.0);
}

/// An h2c origin that refuses every request body at once: 413 with END_STREAM, then the stream
/// is reset (as NGINX does for a body over its limit).
fn refusing_h2c_origin() -> SocketAddr {
    let std_listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind origin");
    std_listener.set_nonblocking(true).expect("nonblocking");
    let addr = std_listener.local_addr().expect("addr");
    thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(std_listener).expect("listener");
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    return;
                };
                tokio::spawn(async move {
                    let Ok(mut conn) = h2::server::handshake(tcp).await else {
                        return;
                    };
                    while let Some(Ok((request, mut respond))) = conn.accept().await {
                        let response = http::Response::builder()
                            .status(413)
                            .body(())
                            .expect("response");
                        let _ = respond.send_response(response, true);
                        // Stop the upload: the body is not wanted.
                        drop(request);
                    }
                });
            }
        });
    });
    addr
}

/// An HTTP/1.1 client uploading to an h2 cluster whose upstream answers early and resets the
/// stream gets that answer (not a 502), and the connection closes after it.
#[test]
fn an_early_h2_answer_to_an_http1_upload_is_relayed() {
    let origin = refusing_h2c_origin();
    let proxy = proxy(&format!(
        "[[cluster]]\nname = \"{CLUSTER}\"\nprotocol = \"h2c\"\nendpoints = [{{ address = \"{origin}\" }}]\n"
    ));
    let body = payload(4 << 20, 9);
    let mut request = format!(
        "POST /upload HTTP/1.1\r\nHost: app.test\r\ncontent-length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    request.extend_from_slice(&body);
    // The upload is written from a thread: the proxy answers early, reads (and discards) only a
    // bounded part of the rest and closes, so the write may fail with EPIPE or a reset; the
    // answer must still arrive.
    let mut c = RawConn::connect(proxy.listen);
    let mut w = c.wire.stream.try_clone().expect("clone");
    let writer = std::thread::spawn(move || {
        let _ = std::io::Write::write_all(&mut w, &request);
    });
    let r = c.response().expect("an answer");
    let _ = writer.join();
    assert_eq!(r.status, 413, "{:?}", r.text());
}
