//! Protocol sniffing against the real binary on loopback: one clear-text listener with
//! `protocols = ["http1", "h2c", "tcp"]` serves HTTP/1.1 (hyper and raw bytes), h2c with prior
//! knowledge (the `h2` crate) and raw TCP (client-first and server-speaks-first) on one port; a
//! listener that accepts HTTP/1.1 only refuses the rest; the per-protocol counters in /metrics
//! match what was sent. TLS on sniffing listeners is in tls.rs.

mod common;

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::http::*;
use common::*;

/// What the raw TCP origin says as soon as a connection opens (then it echoes).
const BANNER: &[u8] = b"SSH-2.0-StraitTestOrigin\r\n";
const SNIFF_TIMEOUT: Duration = Duration::from_millis(100);
const LISTENER: &str = "edge";

/// A server-speaks-first origin: the banner on connect, then an echo until end-of-file.
fn banner_origin() -> Origin {
    Origin::start(|mut s| {
        if s.write_all(BANNER).is_err() {
            return;
        }
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match s.read(&mut buf) {
                Ok(0) => {
                    let _ = s.shutdown(Shutdown::Write);
                    return;
                }
                Ok(n) => {
                    if s.write_all(&buf[..n]).is_err() {
                        return;
                    }
                }
                Err(_) => return,
            }
        }
    })
}

/// One sniffing listener, `edge`: HTTP (clear text, both versions) to `web` by a catch-all
/// route, everything else to `raw`.
fn sniff_proxy(web: SocketAddr, raw: SocketAddr, driver: &str) -> Proxy {
    config_proxy(
        &format!(
            r#"
[[listener]]
name = "{LISTENER}"
address = "LISTEN"
protocols = ["http1", "h2c", "tcp"]
sniff_timeout = "100ms"
cluster = "raw"

[[listener.route]]
name = "web"
cluster = "web"

[[cluster]]
name = "web"
endpoints = [{{ address = "{web}" }}]

[[cluster]]
name = "raw"
endpoints = [{{ address = "{raw}" }}]
"#
        ),
        &["--io-driver", driver],
    )
}

/// Waits for `name{listener="edge", labels}` to equal `want`; fails if it is not exported.
fn expect_metric(proxy: &Proxy, name: &str, labels: &[(&str, &str)], want: f64) {
    let mut all = vec![("listener", LISTENER)];
    all.extend_from_slice(labels);
    match wait_metric(proxy, name, &all, want) {
        Ok(true) => {}
        Ok(false) => panic!("{name} is not exported"),
        Err(e) => panic!("{e}"),
    }
}

fn expect_protocol(proxy: &Proxy, protocol: &str, want: f64) {
    expect_metric(
        proxy,
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

/// One HTTP/1.1 request with hyper on a fresh connection.
fn hyper_get(addr: SocketAddr, path: &str, host: &str) -> (u16, hyper::HeaderMap, Bytes) {
    block_on(Duration::from_secs(10), async move {
        let mut s = hyper_connect(addr).await;
        send(&mut s, request("GET", path, host, empty()))
            .await
            .unwrap_or_else(|e| panic!("GET {path}: {e}"))
    })
}

/// Requests over one h2c (prior knowledge) connection, all in flight at once; returns
/// `(status, body)` of each, in order.
fn h2c_requests(
    addr: SocketAddr,
    reqs: Vec<(&'static str, String, Vec<u8>)>,
) -> Vec<(u16, String)> {
    block_on(Duration::from_secs(10), async move {
        let tcp = tokio::net::TcpStream::connect(addr)
            .await
            .unwrap_or_else(|e| panic!("connect {addr}: {e}"));
        let (client, conn) = h2::client::handshake(tcp).await.expect("h2 handshake");
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                eprintln!("h2 connection: {e}");
            }
        });
        let mut pending = Vec::new();
        for (method, path, body) in reqs {
            let mut client = client.clone().ready().await.expect("h2 ready");
            let req = ::http::Request::builder()
                .method(method)
                .uri(format!("http://h2c.test{path}"))
                .body(())
                .expect("request");
            let (resp, mut stream) = client
                .send_request(req, body.is_empty())
                .expect("send_request");
            if !body.is_empty() {
                stream
                    .send_data(Bytes::from(body), true)
                    .expect("send_data");
            }
            pending.push(resp);
        }
        let mut out = Vec::new();
        for resp in pending {
            let resp = resp.await.expect("h2 response");
            let status = resp.status().as_u16();
            let mut body = resp.into_body();
            let mut got = Vec::new();
            while let Some(chunk) = body.data().await {
                let chunk = chunk.expect("h2 body");
                let _ = body.flow_control().release_capacity(chunk.len());
                got.extend_from_slice(&chunk);
            }
            out.push((status, String::from_utf8_lossy(&got).into_owned()));
        }
        out
    })
}

/// Sends `parts` (pausing `gap` between them), half-closes, and reads until end-of-file.
fn send_in_parts(addr: SocketAddr, parts: &[&[u8]], gap: Duration) -> Vec<u8> {
    let s = connect(addr);
    let _ = s.set_nodelay(true);
    let mut w = s.try_clone().expect("clone");
    let parts: Vec<Vec<u8>> = parts.iter().map(|p| p.to_vec()).collect();
    let writer = thread::spawn(move || {
        for (i, p) in parts.iter().enumerate() {
            if i > 0 {
                thread::sleep(gap);
            }
            w.write_all(p).expect("write");
        }
        w.shutdown(Shutdown::Write).expect("half-close");
    });
    let mut r = s;
    let (got, end) = read_until_closed(&mut r);
    end.expect("the relayed connection failed");
    writer.join().expect("writer");
    got
}

// ---------------------------------------------------------------------------------------------
// HTTP/1.1 and h2c on the sniffing port.

#[test]
fn http1_requests_reach_the_http_origin() {
    let web = HttpOrigin::echo();
    let raw = banner_origin();
    let proxy = sniff_proxy(web.addr, raw.addr, "uring");

    let (status, h, body) = hyper_get(proxy.listen, "/hello?x=1", "sniff.test");
    assert_eq!(status, 200);
    assert_eq!(body, echo_body("GET", "/hello?x=1", b""));
    assert_eq!(h["via"], "1.1 strait");

    // Raw bytes, the request line trickled in so the sniffer needs several reads.
    let mut c = RawConn::connect(proxy.listen);
    c.send(b"PO").unwrap();
    thread::sleep(Duration::from_millis(30));
    c.send(b"ST /form HTTP/1.1\r\nHost: sniff.test\r\nContent-Length: 5\r\n\r\nhello")
        .unwrap();
    let r = c.response().expect("response to the trickled request");
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), echo_body("POST", "/form", b"hello"));

    let seen = web.requests();
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert_eq!(seen[0].target, "/hello?x=1");
    assert_eq!(seen[0].header("host"), Some("sniff.test"));
    assert_eq!(seen[1].method, "POST");
    assert_eq!(seen[1].body, b"hello");
    assert_eq!(raw.connection_count(), 0, "HTTP went to the TCP cluster");
    expect_protocol(&proxy, "http1", 2.0);
    expect_protocol(&proxy, "tcp", 0.0);
}

#[test]
fn h2c_prior_knowledge_reaches_the_http_origin() {
    let web = HttpOrigin::echo();
    let raw = banner_origin();
    let proxy = sniff_proxy(web.addr, raw.addr, "uring");

    let got = h2c_requests(
        proxy.listen,
        vec![
            ("GET", "/a".into(), Vec::new()),
            ("GET", "/b?q=2".into(), Vec::new()),
            ("POST", "/c".into(), b"xyz".to_vec()),
        ],
    );
    assert_eq!(
        got,
        vec![
            (200, echo_body("GET", "/a", b"")),
            (200, echo_body("GET", "/b?q=2", b"")),
            (200, echo_body("POST", "/c", b"xyz")),
        ]
    );
    let seen = web.requests();
    assert_eq!(seen.len(), 3);
    for s in &seen {
        assert_eq!(s.header("host"), Some("h2c.test"), "{s:?}");
        assert_eq!(s.version, 1, "HTTP/1.1 upstream: {s:?}");
    }
    assert_eq!(raw.connection_count(), 0, "h2c went to the TCP cluster");
    expect_protocol(&proxy, "h2c", 1.0);
    expect_protocol(&proxy, "http1", 0.0);
    expect_protocol(&proxy, "tcp", 0.0);
}

// ---------------------------------------------------------------------------------------------
// Raw TCP on the sniffing port.

/// Client-first raw TCP of several shapes is relayed byte-exactly, the sniffed bytes included:
/// what comes back is the origin's banner, then the echo of everything sent.
fn raw_tcp_relayed_byte_exactly(driver: &str) {
    let web = HttpOrigin::echo();
    let raw = banner_origin();
    let proxy = sniff_proxy(web.addr, raw.addr, driver);
    let expect = |sent: &[u8]| [BANNER, sent].concat();

    // A binary blob (first byte 0x00: no protocol starts like that).
    let mut blob = vec![0u8, 1, 2, 0xff];
    blob.extend(payload(256 * 1024, 7));
    let blob = Arc::new(blob);
    let got = round_trip(proxy.listen, blob.clone()).expect("blob round trip");
    assert_eq!(got.len(), BANNER.len() + blob.len());
    assert_eq!(checksum(&got), checksum(&expect(&blob)), "{driver}: blob");

    // An SSH identification line, which looks like `method SP target` but is not HTTP.
    let ssh = b"SSH-2.0-OpenSSH_9.6 FreeBSD-20240104\r\n".to_vec();
    let got = round_trip(proxy.listen, Arc::new(ssh.clone())).expect("ssh round trip");
    assert_eq!(got, expect(&ssh), "{driver}: SSH banner line");

    // A word that could still become a method, then a line end that makes it something else:
    // the sniffer reads twice and must replay both reads.
    let got = send_in_parts(
        proxy.listen,
        &[b"PI", b"NG\r\n\x01\x02 not http\n"],
        Duration::from_millis(30),
    );
    assert_eq!(
        got,
        expect(b"PING\r\n\x01\x02 not http\n"),
        "{driver}: trickled"
    );

    // A Redis RESP command: a first word that ends its line.
    let resp = b"*1\r\n$4\r\nPING\r\n".to_vec();
    let got = round_trip(proxy.listen, Arc::new(resp.clone())).expect("resp");
    assert_eq!(got, expect(&resp), "{driver}: RESP");

    assert_eq!(raw.connection_count(), 4);
    assert_eq!(web.connections(), 0, "raw TCP went to the HTTP cluster");
    expect_protocol(&proxy, "tcp", 4.0);
    expect_protocol(&proxy, "http1", 0.0);
}

#[test]
fn raw_tcp_is_relayed_byte_exactly_uring() {
    raw_tcp_relayed_byte_exactly("uring");
}

#[test]
fn raw_tcp_is_relayed_byte_exactly_epoll() {
    raw_tcp_relayed_byte_exactly("epoll");
}

/// Request lines that are malformed in the ways a lenient parser may still accept (the issue's
/// examples and more of the same classes). The sniffer must hand each to the strict codec,
/// which answers an error; none may fall back to the TCP route.
fn malformed_request_lines() -> Vec<Vec<u8>> {
    let mut long_method = vec![b'A'; 100_000];
    long_method.extend_from_slice(b" / HTTP/1.1\r\nHost: a\r\n\r\n");
    let mut lines: Vec<Vec<u8>> = [
        &b"GET  / HTTP/1.1\r\nHost: a\r\n\r\n"[..],
        b"GET\t/ HTTP/1.1\r\nHost: a\r\n\r\n",
        b"GET /\tHTTP/1.1\r\nHost: a\r\n\r\n",
        b"GET HTTP/1.1\r\nHost: a\r\n\r\n",
        b"GET  HTTP/1.1\r\nHost: a\r\n\r\n",
        b"G\xffET / HTTP/1.1\r\nHost: a\r\n\r\n",
        b"\xc3\x89T / HTTP/1.1\r\nHost: a\r\n\r\n",
        b" GET / HTTP/1.1\r\nHost: a\r\n\r\n",
        b"\tPOST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n",
        b"GET/ HTTP/1.1\r\nHost: a\r\n\r\n",
        b"FOO/ HTTP/1.1\r\nHost: a\r\n\r\n",
        b"GET\r\nHost: a\r\n\r\n",
        b"get\r\n\r\n",
        b"GET\x00/ HTTP/1.1\r\nHost: a\r\n\r\n",
        b"\nGET / HTTP/1.1\r\nHost: a\r\n\r\n",
        b"\r\r\r\r\r\r\r\r\r\rGET / HTTP/1.1\r\nHost: a\r\n\r\n",
    ]
    .iter()
    .map(|l| l.to_vec())
    .collect();
    lines.push(long_method);
    lines
}

/// Sends `bytes` (from a thread: the proxy may answer and close before reading them all) and
/// returns the status line of what comes back, if any.
fn status_line_for(addr: SocketAddr, bytes: Vec<u8>) -> Option<String> {
    let s = connect(addr);
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let mut w = s.try_clone().expect("clone");
    let writer = thread::spawn(move || {
        let _ = w.write_all(&bytes);
    });
    let mut r = s;
    let (got, _) = read_until_closed(&mut r);
    let _ = writer.join();
    let end = got.windows(2).position(|w| w == b"\r\n")?;
    Some(String::from_utf8_lossy(&got[..end]).into_owned())
}

#[track_caller]
fn assert_refused_by_the_codec(addr: SocketAddr, line: &[u8]) {
    let shown = String::from_utf8_lossy(&line[..line.len().min(40)]).into_owned();
    let status =
        status_line_for(addr, line.to_vec()).unwrap_or_else(|| panic!("no answer to {shown:?}"));
    let code: u16 = status
        .strip_prefix("HTTP/1.1 ")
        .and_then(|r| r.get(..3))
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP answer to {shown:?}: {status:?}"));
    assert!((400..500).contains(&code), "{shown:?} got {status:?}");
}

/// The issue-16 finding: on a sniffing listener, malformed HTTP never reaches the TCP route's
/// upstream (nor the HTTP cluster): the codec answers it.
#[test]
fn malformed_http_is_answered_by_the_codec_never_relayed() {
    let web = HttpOrigin::echo();
    let raw = banner_origin();
    let proxy = sniff_proxy(web.addr, raw.addr, "uring");
    for line in malformed_request_lines() {
        assert_refused_by_the_codec(proxy.listen, &line);
    }
    // Well-formed HTTP and other protocols on the same port still go where they should.
    let (status, _, _) = hyper_get(proxy.listen, "/ok", "sniff.test");
    assert_eq!(status, 200);
    let hello = round_trip(proxy.listen, Arc::new(b"hello\n".to_vec())).expect("hello");
    assert_eq!(hello, [BANNER, b"hello\n"].concat());
    assert_eq!(
        raw.connection_count(),
        1,
        "malformed HTTP reached the TCP origin"
    );
    assert_eq!(web.requests().len(), 1, "{:?}", web.requests());
    let n = malformed_request_lines().len() as f64;
    expect_protocol(&proxy, "http1", n + 1.0);
    expect_protocol(&proxy, "tcp", 1.0);
}

/// The same with `--mode auto`, where the TCP fallback's upstream is the HTTP origin itself:
/// not one malformed byte reaches it.
#[test]
fn malformed_http_never_reaches_the_origin_in_auto_mode() {
    let web = HttpOrigin::echo();
    let proxy = Proxy::quick(&args(&[
        "--upstream",
        &web.addr.to_string(),
        "--mode",
        "auto",
        "--cores",
        "0",
    ]));
    for line in malformed_request_lines() {
        assert_refused_by_the_codec(proxy.listen, &line);
    }
    assert_eq!(web.connections(), 0, "malformed HTTP reached the origin");
}

/// A client that says nothing (SSH, SMTP, MySQL clients wait for the server) is relayed as TCP
/// once the sniff timeout passes: the origin's banner arrives, then the echo works.
fn server_speaks_first(driver: &str) {
    let web = HttpOrigin::echo();
    let raw = banner_origin();
    let proxy = sniff_proxy(web.addr, raw.addr, driver);

    let mut s = connect(proxy.listen);
    s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    let started = Instant::now();
    let mut banner = vec![0u8; BANNER.len()];
    s.read_exact(&mut banner)
        .unwrap_or_else(|e| panic!("{driver}: no banner from a server-speaks-first origin: {e}"));
    let waited = started.elapsed();
    assert_eq!(banner, BANNER);
    assert!(
        waited >= SNIFF_TIMEOUT - Duration::from_millis(20),
        "{driver}: the banner came after {waited:?}, before the sniff timeout ({SNIFF_TIMEOUT:?})"
    );
    assert!(
        waited < Duration::from_secs(2),
        "{driver}: the banner took {waited:?}"
    );

    // Then the conversation goes on both ways.
    for line in [&b"client hello\r\n"[..], b"\x00\x01binary\xff"] {
        s.write_all(line).unwrap();
        let mut back = vec![0u8; line.len()];
        s.read_exact(&mut back).expect("echo after the banner");
        assert_eq!(back, line);
    }
    s.shutdown(Shutdown::Write).unwrap();
    let (rest, end) = read_until_closed(&mut s);
    end.expect("close after the half-close");
    assert!(rest.is_empty(), "{rest:?}");
    assert_eq!(raw.connection_count(), 1);
    expect_protocol(&proxy, "tcp", 1.0);
}

#[test]
fn server_speaks_first_gets_the_banner_after_the_sniff_timeout_uring() {
    server_speaks_first("uring");
}

#[test]
fn server_speaks_first_gets_the_banner_after_the_sniff_timeout_epoll() {
    server_speaks_first("epoll");
}

// ---------------------------------------------------------------------------------------------
// Refusals and counters.

#[test]
fn http1_only_listener_refuses_raw_tcp_silence_and_h2c() {
    let web = HttpOrigin::echo();
    let proxy = config_proxy(
        &format!(
            r#"
[[listener]]
name = "{LISTENER}"
address = "LISTEN"
protocols = ["http1"]
sniff_timeout = "100ms"

[[listener.route]]
name = "web"
cluster = "web"

[[cluster]]
name = "web"
endpoints = [{{ address = "{}" }}]
"#,
            web.addr
        ),
        &[],
    );
    let refused = |name: &str, bytes: &[u8]| -> Duration {
        let Some(s) = connect_or_reset(proxy.listen) else {
            return Duration::ZERO;
        };
        let _ = s.set_nodelay(true);
        let mut c = RawConn { wire: Wire::new(s) };
        if !bytes.is_empty() {
            // The proxy may already have reset the connection: a failed write is a close too.
            let _ = c.send(bytes);
        }
        c.closed_within(Duration::from_secs(3))
            .unwrap_or_else(|e| panic!("{name}: the connection was not closed: {e}"))
    };
    refused("binary", b"\x00\x01\x02\x03 binary");
    let waited = refused("silent", b"");
    assert!(
        waited >= SNIFF_TIMEOUT - Duration::from_millis(20),
        "a silent client was closed after {waited:?}, before the sniff timeout"
    );
    refused("h2c", b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");
    expect_metric(&proxy, "strait_listener_sniff_refused_total", &[], 3.0);

    // HTTP/1.1 is still served.
    let (status, _, body) = hyper_get(proxy.listen, "/ok", "only.test");
    assert_eq!(status, 200);
    assert_eq!(body, echo_body("GET", "/ok", b""));
    assert_eq!(
        web.request_count(),
        1,
        "a refused connection reached the origin"
    );
    expect_protocol(&proxy, "http1", 1.0);
    expect_protocol(&proxy, "tcp", 0.0);
    expect_protocol(&proxy, "h2c", 0.0);
    expect_metric(&proxy, "strait_listener_sniff_refused_total", &[], 3.0);
}

#[test]
fn protocol_counters_match_what_was_sent() {
    let web = HttpOrigin::echo();
    let raw = banner_origin();
    let proxy = sniff_proxy(web.addr, raw.addr, "uring");

    for i in 0..3 {
        let (status, _, _) = hyper_get(proxy.listen, &format!("/h1/{i}"), "count.test");
        assert_eq!(status, 200);
    }
    for i in 0..2 {
        let got = h2c_requests(
            proxy.listen,
            vec![("GET", format!("/h2c/{i}"), Vec::new()); 2],
        );
        assert!(got.iter().all(|(s, _)| *s == 200), "{got:?}");
    }
    for i in 0..3u8 {
        let data = Arc::new(vec![0u8, i, 0xee]);
        let got = round_trip(proxy.listen, data.clone()).expect("raw round trip");
        assert_eq!(got, [BANNER, &data[..]].concat());
    }
    // And one server-speaks-first connection.
    let mut s = connect(proxy.listen);
    let mut banner = vec![0u8; BANNER.len()];
    s.read_exact(&mut banner).expect("banner");
    drop(s);

    assert_eq!(web.request_count(), 3 + 2 * 2);
    expect_protocol(&proxy, "http1", 3.0);
    expect_protocol(&proxy, "h2c", 2.0);
    expect_protocol(&proxy, "tcp", 4.0);
    for other in ["h2", "https1", "tls_tcp", "udp"] {
        expect_protocol(&proxy, other, 0.0);
    }
    expect_metric(&proxy, "strait_listener_sniff_refused_total", &[], 0.0);
    expect_metric(&proxy, "strait_tls_handshakes_total", &[], 0.0);
}
