//! HTTP/2 through the real binary on loopback: h2c (prior knowledge) and h2 over TLS (ALPN)
//! clients from the `h2` crate, to HTTP/1.1 origins (the recording origin of common::http) and
//! to h2c origins (common::h2_support). Stream concurrency, header conversion, flow control with
//! big bodies both ways, trailers both ways, full duplex, resets both ways, upstream
//! multiplexing, proxy errors, the rapid-reset flood defence and drain.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use ::h2::Reason;
use bytes::Bytes;
use common::h2_support::*;
use common::http::{block_on, config_proxy, metric_now, HttpOrigin, Reply};
use common::{checksum, dead_addr, payload, Proxy};
use http::Method;

const LIMIT: Duration = Duration::from_secs(25);
const LISTENER: &str = "edge";

/// Size of the big transfers.
const BIG: usize = 16 * 1024 * 1024;

/// FNV-1a of nothing: the `sum=` of a bodiless request at the HTTP/1.1 origin.
const FNV: u64 = common::http::FNV_START;

/// What the test proxy is made of.
#[derive(Default)]
struct Setup<'a> {
    /// The HTTP/1.1 origin behind `/h1`.
    h1: Option<SocketAddr>,
    /// The h2c origin behind `/h2`.
    h2: Option<SocketAddr>,
    /// TLS on the same port (sniffed), with this certificate.
    tls: Option<&'a TestCert>,
    /// Lines of `[listener.h2]`.
    h2_settings: &'a str,
    extra: &'a [&'a str],
}

/// One sniffing listener (`edge`) accepting h2c and HTTP/1.1 (and TLS when asked), with routes
/// `/h1` (HTTP/1.1 cluster), `/h2` (h2c cluster) and `/dead` (a cluster whose endpoint refuses
/// connections). Nothing else routes.
fn proxy(s: Setup<'_>) -> Proxy {
    let protocols = if s.tls.is_some() {
        r#"["tls", "h2c", "http1"]"#
    } else {
        r#"["h2c", "http1"]"#
    };
    let mut toml = format!(
        "[[listener]]\nname = \"{LISTENER}\"\naddress = \"LISTEN\"\nprotocols = {protocols}\n\n"
    );
    if let Some(cert) = s.tls {
        toml.push_str(&format!(
            "[listener.tls]\n\n[[listener.tls.certificate]]\ncert = \"{}\"\nkey = \"{}\"\n\n",
            cert.cert_path.display(),
            cert.key_path.display()
        ));
    }
    if !s.h2_settings.is_empty() {
        toml.push_str(&format!("[listener.h2]\n{}\n\n", s.h2_settings));
    }
    let dead = dead_addr();
    let h1 = s.h1.unwrap_or(dead);
    let h2 = s.h2.unwrap_or(dead);
    toml.push_str(&format!(
        r#"
[[listener.route]]
name = "h1"
path_prefix = "/h1"
cluster = "h1"

[[listener.route]]
name = "h2"
path_prefix = "/h2"
cluster = "h2"

[[listener.route]]
name = "dead"
path_prefix = "/dead"
cluster = "dead"

[[cluster]]
name = "h1"
endpoints = [{{ address = "{h1}" }}]

[[cluster]]
name = "h2"
protocol = "h2c"
endpoints = [{{ address = "{h2}" }}]

[[cluster]]
name = "dead"
connect_timeout = "1s"
endpoints = [{{ address = "{dead}" }}]
"#
    ));
    config_proxy(&toml, s.extra)
}

/// The HTTP/1.1 origin, by path:
/// - `/h1/download/<n>`: `n` bytes of `payload(n, 7)` with a Content-Length;
/// - `/h1/chunked/<n>`: the same, chunked, with trailers `x-checksum` (FNV-1a) and `grpc-status`;
/// - `/h1/headers`: `x-origin: yes` plus fields an HTTP/2 response must not carry;
/// - `/h1/many/…`: the path, after 200 ms;
/// - `/h1/slow…`: `finished` after 1.5 s;
/// - anything else: `METHOD target len=N sum=S`.
fn h1_origin() -> HttpOrigin {
    HttpOrigin::start(|r| {
        let t = r.target.as_str();
        if let Some(n) = t.strip_prefix("/h1/download/") {
            let n: usize = n.parse().unwrap_or(0);
            Reply::ok(payload(n, 7))
        } else if let Some(n) = t.strip_prefix("/h1/chunked/") {
            let n: usize = n.parse().unwrap_or(0);
            let body = payload(n, 9);
            let sum = checksum(&body).to_string();
            Reply::ok(body).chunked(&[("x-checksum", &sum), ("grpc-status", "0")])
        } else if t == "/h1/headers" {
            Reply::ok("headers")
                .header("x-origin", "yes")
                .header("keep-alive", "timeout=5")
                .header("proxy-connection", "keep-alive")
                .header("connection", "keep-alive, x-hop")
                .header("x-hop", "hop-by-hop")
        } else if t.starts_with("/h1/many/") {
            Reply::ok(t.to_string()).delay(Duration::from_millis(200))
        } else if t.starts_with("/h1/slow") {
            Reply::ok("finished").delay(Duration::from_millis(1500))
        } else {
            Reply::ok(format!(
                "{} {} len={} sum={}",
                r.method, r.target, r.body_len, r.body_sum
            ))
        }
    })
}

fn h1_proxy(origin: &HttpOrigin) -> Proxy {
    proxy(Setup {
        h1: Some(origin.addr),
        ..Setup::default()
    })
}

// ---------------------------------------------------------------------------------------------
// h2c → HTTP/1.1.

/// 200 streams in flight at once on one connection, each answered with its own path; the
/// origin takes 200 ms per request, so this finishes quickly only if they really overlap.
#[test]
fn h2c_200_concurrent_streams_to_an_h1_origin() {
    let origin = h1_origin();
    let proxy = h1_proxy(&origin);
    let addr = proxy.listen;
    let took = block_on(LIMIT, async move {
        let client = h2c_connect(addr).await;
        let started = Instant::now();
        let mut tasks = Vec::new();
        for i in 0..200 {
            let send = client.send.clone();
            tasks.push(tokio::spawn(async move {
                let path = format!("/h1/many/{i}");
                let r = exchange(&send, get(&path), None, None).await;
                (path, r)
            }));
        }
        for t in tasks {
            let (path, r) = t.await.expect("task");
            let r = r.unwrap_or_else(|e| panic!("{path}: {e}"));
            assert_eq!((r.status, r.text()), (200, path.clone()));
            assert_eq!(r.header("via"), Some("1.1 strait"), "{path}");
        }
        started.elapsed()
    });
    assert!(
        took < Duration::from_secs(10),
        "200 streams of 200 ms took {took:?}: not concurrent"
    );
    let seen = origin.requests();
    assert_eq!(seen.len(), 200);
    let mut paths: Vec<String> = seen.iter().map(|s| s.target.clone()).collect();
    paths.sort();
    paths.dedup();
    assert_eq!(paths.len(), 200, "a path was lost or duplicated");
    let streams = metric_now(&proxy, "strait_h2_streams_total", &[("listener", LISTENER)]);
    assert_eq!(streams, 200.0);
}

#[test]
fn h2c_request_and_response_fields_are_converted_for_an_h1_origin() {
    let origin = h1_origin();
    let proxy = h1_proxy(&origin);
    let addr = proxy.listen;
    let r = block_on(LIMIT, async move {
        let client = h2c_connect(addr).await;
        let mut req = request(Method::GET, "h2.test", "/h1/headers");
        let h = req.headers_mut();
        h.insert("te", "trailers".parse().unwrap());
        h.insert("x-custom", "a".parse().unwrap());
        h.insert("x-forwarded-for", "6.6.6.6".parse().unwrap());
        h.insert("user-agent", "h2-test/1".parse().unwrap());
        exchange(&client.send, req, None, None)
            .await
            .expect("exchange")
    });
    // A response with connection-specific fields is malformed in HTTP/2: the h2 client would
    // have failed the stream. They were removed, the end-to-end ones kept.
    assert_eq!((r.status, r.text().as_str()), (200, "headers"));
    assert_eq!(r.header("x-origin"), Some("yes"));
    for name in ["connection", "keep-alive", "proxy-connection", "x-hop"] {
        assert!(r.headers.get(name).is_none(), "{name} reached the client");
    }
    assert_eq!(r.header("via"), Some("1.1 strait"));
    assert!(r.header("x-request-id").is_some());

    let seen = origin.last();
    assert_eq!(seen.version, 1, "HTTP/1.1 upstream");
    assert_eq!(seen.header_all("host"), ["h2.test"]);
    assert_eq!(seen.header("te"), Some("trailers"));
    assert_eq!(seen.header("x-custom"), Some("a"));
    assert_eq!(seen.header("user-agent"), Some("h2-test/1"));
    assert_eq!(
        seen.header_all("x-forwarded-for"),
        ["127.0.0.1"],
        "untrusted X-Forwarded-For must be replaced"
    );
    assert_eq!(seen.header("x-forwarded-proto"), Some("http"));
    assert_eq!(seen.header("x-forwarded-host"), Some("h2.test"));
    assert!(seen.header("via").is_some_and(|v| v.contains("2 strait")));
    assert!(seen.header("x-request-id").is_some());
    for (name, _) in &seen.headers {
        let n = name.to_ascii_lowercase();
        assert!(!n.starts_with(':'), "pseudo-header {name} sent upstream");
        assert!(
            ![
                "connection",
                "keep-alive",
                "proxy-connection",
                "upgrade",
                "transfer-encoding",
                "content-length"
            ]
            .contains(&n.as_str()),
            "{name} reached the origin for a bodiless GET: {:?}",
            seen.headers
        );
    }
}

/// 16 MiB up and 16 MiB down on one connection: flow control end to end, checksums equal.
#[test]
fn h2c_16_mib_upload_and_download_through_an_h1_origin() {
    let origin = h1_origin();
    let proxy = h1_proxy(&origin);
    let addr = proxy.listen;
    let data = Bytes::from(payload(BIG, 3));
    let want_up = checksum(&data);
    let (up, down) = block_on(LIMIT, async move {
        let client = h2c_connect(addr).await;
        let mut req = request(Method::POST, "h2.test", "/h1/upload");
        req.headers_mut()
            .insert("content-length", BIG.to_string().parse().unwrap());
        let up = exchange(&client.send, req, Some(data), None)
            .await
            .expect("upload");
        let down = exchange(
            &client.send,
            get(&format!("/h1/download/{BIG}")),
            None,
            None,
        )
        .await
        .expect("download");
        (up, down)
    });
    assert_eq!(up.status, 200);
    assert_eq!(
        up.text(),
        format!("POST /h1/upload len={BIG} sum={want_up}")
    );
    let seen = origin
        .requests()
        .into_iter()
        .find(|s| s.target == "/h1/upload")
        .expect("upload seen");
    assert_eq!(
        seen.header("content-length"),
        Some(BIG.to_string().as_str())
    );
    assert!(seen.header("transfer-encoding").is_none());
    assert_eq!(down.status, 200);
    assert_eq!(down.body.len(), BIG);
    assert_eq!(checksum(&down.body), checksum(&payload(BIG, 7)));
    assert_eq!(
        down.header("content-length"),
        Some(BIG.to_string().as_str())
    );
}

/// A request body of unknown length (no content-length) goes upstream chunked, and its h2
/// trailers become the chunked body's trailer section.
#[test]
fn h2c_post_without_length_reaches_an_h1_origin_chunked_with_trailers() {
    let origin = h1_origin();
    let proxy = h1_proxy(&origin);
    let addr = proxy.listen;
    let pieces: Vec<Bytes> = (0..5u64)
        .map(|i| Bytes::from(payload(10_000 + i as usize * 777, i)))
        .collect();
    let whole: Vec<u8> = pieces.iter().flat_map(|p| p.to_vec()).collect();
    let want = checksum(&whole);
    let r = block_on(LIMIT, async move {
        let client = h2c_connect(addr).await;
        let mut s = ready(&client.send).await.expect("ready");
        let (resp, mut stream) = s
            .send_request(request(Method::POST, "h2.test", "/h1/chunked-up"), false)
            .expect("send request");
        for p in pieces {
            send_body(&mut stream, p, false).await.expect("data");
            tokio::time::sleep(Duration::from_millis(30)).await;
        }
        stream
            .send_trailers(header_map(&[("x-upload-sum", "abc"), ("x-more", "1")]))
            .expect("trailers");
        let resp = resp.await.expect("response");
        let status = resp.status().as_u16();
        let mut body = resp.into_body();
        let (body, _) = read_rest(&mut body).await.expect("body");
        (status, String::from_utf8_lossy(&body).into_owned())
    });
    assert_eq!(
        r,
        (
            200,
            format!("POST /h1/chunked-up len={} sum={want}", whole.len())
        )
    );
    let seen = origin.last();
    assert_eq!(seen.header("transfer-encoding"), Some("chunked"));
    assert!(seen.header("content-length").is_none());
    assert!(seen.complete);
    let t: Vec<(&str, &str)> = seen
        .trailers
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect();
    assert!(t.contains(&("x-upload-sum", "abc")), "{t:?}");
    assert!(t.contains(&("x-more", "1")), "{t:?}");
}

/// A chunked HTTP/1.1 response with trailers reaches the h2 client as DATA then trailers. (The
/// response is small: the origin writes it at once, so the proxy reads it in one piece; see
/// the test below for bodies that arrive in pieces.)
#[test]
fn h1_chunked_response_trailers_become_h2_trailers() {
    let origin = h1_origin();
    let proxy = h1_proxy(&origin);
    let addr = proxy.listen;
    let n = 3000;
    let r = block_on(LIMIT, async move {
        let client = h2c_connect(addr).await;
        exchange(&client.send, get(&format!("/h1/chunked/{n}")), None, None)
            .await
            .expect("exchange")
    });
    assert_eq!(r.status, 200);
    let body = payload(n, 9);
    assert_eq!(r.body.len(), n);
    assert_eq!(checksum(&r.body), checksum(&body));
    assert!(r.headers.get("transfer-encoding").is_none());
    let sum = checksum(&body).to_string();
    assert_eq!(
        r.trailer("x-checksum"),
        Some(sum.as_str()),
        "{:?}",
        r.trailers
    );
    assert_eq!(r.trailer("grpc-status"), Some("0"), "{:?}", r.trailers);
}

/// A raw HTTP/1.1 origin that answers every request with a chunked response written in the
/// given pieces, 100 ms apart.
fn split_chunked_origin(pieces: &'static [&'static [u8]]) -> common::Origin {
    common::Origin::start(move |mut s| {
        let _ = s.set_nodelay(true);
        let mut head = Vec::new();
        let mut buf = [0u8; 4096];
        while !head.windows(4).any(|w| w == b"\r\n\r\n") {
            match std::io::Read::read(&mut s, &mut buf) {
                Ok(0) | Err(_) => return,
                Ok(n) => head.extend_from_slice(&buf[..n]),
            }
        }
        let _ = std::io::Write::write_all(
            &mut s,
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n",
        );
        for p in pieces {
            if std::io::Write::write_all(&mut s, p).is_err() {
                return;
            }
            thread::sleep(Duration::from_millis(100));
        }
    })
}

/// Chunk framing split across reads: a read that ends right after a chunk-size line (or inside
/// one, or inside the trailer section) must not lose its place in the body.
#[test]
fn h1_chunked_response_arriving_in_pieces_is_relayed_intact() {
    static PIECES: &[&[u8]] = &[
        b"5\r\n",
        b"hello\r\n1",
        b"0\r\n0123456789abcdef\r\n0\r\nx-t",
        b"railer: yes\r\n",
        b"\r\n",
    ];
    let origin = split_chunked_origin(PIECES);
    let proxy = proxy(Setup {
        h1: Some(origin.addr),
        ..Setup::default()
    });
    let addr = proxy.listen;
    let r = block_on(LIMIT, async move {
        let client = h2c_connect(addr).await;
        exchange(&client.send, get("/h1/split"), None, None).await
    });
    let r = r.unwrap_or_else(|e| panic!("the split chunked response failed: {e:?}"));
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "hello0123456789abcdef");
    assert_eq!(r.trailer("x-trailer"), Some("yes"), "{:?}", r.trailers);
}

/// The same with a big chunked body (300 kB in chunks of varied sizes, so that reads end at
/// arbitrary points of the framing): checksums equal and trailers delivered, every time.
#[test]
fn h1_big_chunked_response_with_trailers_is_relayed_intact() {
    let origin = h1_origin();
    let proxy = h1_proxy(&origin);
    let addr = proxy.listen;
    let n = 300_000;
    let body = payload(n, 9);
    let sum = checksum(&body).to_string();
    for round in 0..10 {
        let r = block_on(LIMIT, async move {
            let client = h2c_connect(addr).await;
            exchange(&client.send, get(&format!("/h1/chunked/{n}")), None, None).await
        });
        let r = r.unwrap_or_else(|e| panic!("round {round}: {e:?}"));
        assert_eq!(r.status, 200);
        assert_eq!(r.body.len(), n, "round {round}");
        assert_eq!(checksum(&r.body), checksum(&body), "round {round}");
        assert_eq!(r.trailer("x-checksum"), Some(sum.as_str()), "round {round}");
    }
}

// ---------------------------------------------------------------------------------------------
// h2c → h2c.

fn h2_proxy(origin: &H2Origin) -> Proxy {
    proxy(Setup {
        h2: Some(origin.addr),
        ..Setup::default()
    })
}

/// Request trailers reach the h2 origin and its response trailers reach the client; the body
/// goes up and comes back piece by piece while the request is still open (full duplex).
#[test]
fn h2c_to_h2c_full_duplex_with_trailers_both_ways() {
    let origin = H2Origin::start();
    let proxy = h2_proxy(&origin);
    let addr = proxy.listen;
    let (head_via, echoed, trailers) = block_on(LIMIT, async move {
        let client = h2c_connect(addr).await;
        let mut s = ready(&client.send).await.expect("ready");
        let (resp, mut up) = s
            .send_request(request(Method::POST, "h2.test", "/h2/echo/duplex"), false)
            .expect("send request");
        let first = Bytes::from(payload(40_000, 100));
        send_body(&mut up, first.clone(), false)
            .await
            .expect("part 0");
        // The response head and the echo of part 0 come back before the request ends.
        let resp = tokio::time::timeout(Duration::from_secs(5), resp)
            .await
            .expect("no response head while the request is open: not full duplex")
            .expect("response");
        let via = resp
            .headers()
            .get("via")
            .map(|v| v.to_str().unwrap_or_default().to_string());
        let mut down = resp.into_body();
        let mut echoed = read_exactly(&mut down, first.len()).await.expect("echo 0");
        assert_eq!(echoed, first.to_vec(), "echo of part 0");
        for i in 1..10u64 {
            let part = Bytes::from(payload(30_000 + i as usize * 1_000, 100 + i));
            send_body(&mut up, part.clone(), false).await.expect("part");
            let back = read_exactly(&mut down, part.len()).await.expect("echo");
            assert_eq!(back, part.to_vec(), "echo of part {i}");
            echoed.extend_from_slice(&back);
        }
        up.send_trailers(header_map(&[("x-client-trailer", "abc")]))
            .expect("request trailers");
        let (rest, trailers) = read_rest(&mut down).await.expect("rest");
        assert!(rest.is_empty(), "{} unexpected bytes", rest.len());
        (via, echoed, trailers.expect("response trailers"))
    });
    assert_eq!(head_via.as_deref(), Some("2 strait"));
    let t = |n: &str| {
        trailers
            .get(n)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    assert_eq!(
        t("x-echo-x-client-trailer").as_deref(),
        Some("abc"),
        "{trailers:?}"
    );
    assert_eq!(t("x-origin-trailer").as_deref(), Some("done"));
    assert_eq!(
        t("x-origin-len"),
        Some(echoed.len().to_string()),
        "{trailers:?}"
    );
    assert_eq!(t("x-origin-sum"), Some(checksum(&echoed).to_string()));
    let seen = origin
        .wait_request("/h2/echo/duplex", Duration::from_secs(1))
        .expect("seen");
    assert_eq!(seen.authority, "h2.test");
    assert!(seen.headers.get("x-forwarded-for").is_some());
    assert!(seen
        .headers
        .get_all("via")
        .iter()
        .any(|v| v.to_str().unwrap_or_default().contains("2 strait")));
}

/// 16 MiB each way at the same time through an h2c origin that echoes.
#[test]
fn h2c_to_h2c_big_bodies_stream_both_ways_concurrently() {
    let origin = H2Origin::start();
    let proxy = h2_proxy(&origin);
    let addr = proxy.listen;
    let data = Bytes::from(payload(BIG, 11));
    let want = checksum(&data);
    let (got_len, got_sum, trailers) = block_on(LIMIT, async move {
        let client = h2c_connect(addr).await;
        let mut s = ready(&client.send).await.expect("ready");
        let (resp, mut up) = s
            .send_request(request(Method::POST, "h2.test", "/h2/echo/big"), false)
            .expect("send request");
        let writer = tokio::spawn(async move {
            for chunk in data.chunks(1024 * 1024) {
                send_body(&mut up, data.slice_ref(chunk), false)
                    .await
                    .expect("upload piece");
            }
            up.send_data(Bytes::new(), true).expect("end");
        });
        let resp = resp.await.expect("response head");
        let mut down = resp.into_body();
        let (body, trailers) = read_rest(&mut down).await.expect("echo");
        writer.await.expect("writer");
        (body.len(), checksum(&body), trailers)
    });
    assert_eq!(got_len, BIG);
    assert_eq!(got_sum, want);
    let trailers = trailers.expect("trailers");
    assert_eq!(trailers["x-origin-sum"], want.to_string().as_str());
}

/// RST_STREAM from the upstream before the response head is the exchange's to handle, as for
/// every client protocol: REFUSED_STREAM (not processed) is retried once, then answered 502
/// (the same as an HTTP/1.1 client gets); after the head (CANCEL) the client's stream is reset
/// with the upstream's reason. The connection goes on.
#[test]
fn upstream_stream_resets_are_propagated_to_the_client() {
    let origin = H2Origin::start();
    let proxy = h2_proxy(&origin);
    let addr = proxy.listen;
    block_on(LIMIT, async move {
        let client = h2c_connect(addr).await;
        let r = exchange(&client.send, get("/h2/refuse"), None, None)
            .await
            .expect("refused upstream: a response, not a stream error");
        assert_eq!(r.status, 502);
        assert_eq!(
            r.text(),
            "502 Bad Gateway: upstream closed the connection\n"
        );

        let mut s = ready(&client.send).await.expect("ready");
        let (resp, _) = s.send_request(get("/h2/cancel"), true).expect("send");
        let resp = resp.await.expect("head before the reset");
        assert_eq!(resp.status(), 200);
        let mut body = resp.into_body();
        let e = read_rest(&mut body)
            .await
            .expect_err("reset after the head");
        assert!(e.is_reset(), "{e:?}");
        assert_eq!(e.reason(), Some(Reason::CANCEL), "{e:?}");

        let ok = exchange(&client.send, get("/h2/fine"), None, None)
            .await
            .expect("after resets");
        assert_eq!((ok.status, ok.text().as_str()), (200, "/h2/fine"));
    });
}

/// `clients` client connections with `per_client` `/h2/hold` streams each, all in flight at
/// once (the origin answers when all are held); after `warm_up` sequential requests.
/// Returns how many connections the origin saw, and the most streams open at once on one.
fn held_streams(clients: usize, per_client: usize, warm_up: usize) -> (usize, usize) {
    let total = clients * per_client;
    let origin = H2Origin::start();
    origin.hold_until(total);
    let proxy = h2_proxy(&origin);
    let addr = proxy.listen;
    block_on(LIMIT, async move {
        let warm = h2c_connect(addr).await;
        for i in 0..warm_up {
            let r = exchange(&warm.send, get(&format!("/h2/warm/{i}")), None, None)
                .await
                .expect("warm-up");
            assert_eq!(r.status, 200);
        }
        let mut conns = Vec::new();
        let mut tasks = Vec::new();
        for c in 0..clients {
            let client = h2c_connect(addr).await;
            for i in 0..per_client {
                let send = client.send.clone();
                tasks.push(tokio::spawn(async move {
                    let path = format!("/h2/hold/{c}/{i}");
                    let r = exchange(&send, get(&path), None, None).await;
                    (path, r)
                }));
            }
            conns.push(client);
        }
        for t in tasks {
            let (path, r) = t.await.expect("task");
            let r = r.unwrap_or_else(|e| panic!("{path}: {e}"));
            assert_eq!((r.status, r.text()), (200, path));
        }
    });
    assert_eq!(origin.streams(), total + warm_up);
    (origin.connections(), origin.max_streams_per_connection())
}

/// Once an upstream connection exists, 100 concurrent streams share it.
#[test]
fn concurrent_streams_share_an_established_upstream_h2_connection() {
    let (conns, most) = held_streams(2, 50, 1);
    assert_eq!(conns, 1, "100 concurrent streams after a warm-up");
    assert_eq!(most, 100);
}

/// 300 requests in flight from 3 client connections travel over about 300/100 upstream
/// connections, each carrying at most 100 streams: whether or not an upstream connection
/// existed before the burst.
#[test]
fn many_streams_share_few_upstream_h2_connections() {
    let mut failures = Vec::new();
    for warm_up in [0, 1] {
        let (conns, most) = held_streams(3, 100, warm_up);
        if conns > 4 {
            failures.push(format!(
                "warm-up {warm_up}: 300 concurrent streams opened {conns} upstream connections \
                 (expected about 3)"
            ));
        }
        if most > 100 {
            failures.push(format!(
                "warm-up {warm_up}: {most} streams at once on one upstream connection (cap: 100)"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

// ---------------------------------------------------------------------------------------------
// Client resets.

/// A client that resets its stream in the middle of an upload: the upstream stream (h2c) is
/// reset and the upstream connection (HTTP/1.1) aborted; the proxy keeps serving.
#[test]
fn client_reset_mid_upload_stops_the_upstream() {
    let h1 = h1_origin();
    let h2 = H2Origin::start();
    let proxy = proxy(Setup {
        h1: Some(h1.addr),
        h2: Some(h2.addr),
        ..Setup::default()
    });
    let addr = proxy.listen;
    let h1_requests = {
        let h1 = &h1;
        move || h1.requests()
    };
    block_on(LIMIT, async {
        let client = h2c_connect(addr).await;
        for path in ["/h2/upload/reset", "/h1/upload/reset"] {
            let mut s = ready(&client.send).await.expect("ready");
            let mut req = request(Method::POST, "h2.test", path);
            req.headers_mut()
                .insert("content-length", "10000000".parse().unwrap());
            let (resp, mut up) = s.send_request(req, false).expect("send");
            send_body(&mut up, Bytes::from(payload(200_000, 5)), false)
                .await
                .expect("first part");
            // Let the first part reach the origin, then give up.
            tokio::time::sleep(Duration::from_millis(300)).await;
            up.send_reset(Reason::CANCEL);
            drop(resp);
        }
        // Same connection, then a new one: both still served.
        let ok = exchange(&client.send, get("/h2/after"), None, None)
            .await
            .expect("same connection after the resets");
        assert_eq!((ok.status, ok.text().as_str()), (200, "/h2/after"));
        let fresh = h2c_connect(addr).await;
        let ok = exchange(&fresh.send, get("/h1/after"), None, None)
            .await
            .expect("new connection after the resets");
        assert_eq!(ok.status, 200);
    });
    match h2.upload("/h2/upload/reset", Duration::from_secs(5)) {
        Some(BodyEnd::Reset { len, .. }) => assert!(len > 0, "nothing arrived before the reset"),
        other => panic!("h2 origin: the upload did not end with a reset: {other:?}"),
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let seen = h1_requests();
        let s = seen
            .iter()
            .find(|s| s.target == "/h1/upload/reset")
            .expect("the h1 upload arrived");
        if s.aborted {
            assert!(s.body_len > 0 && s.body_len < 10_000_000, "{}", s.body_len);
            break;
        }
        assert!(
            Instant::now() < deadline,
            "h1 origin: the upload was not aborted (complete={}, {} bytes)",
            s.complete,
            s.body_len
        );
        thread::sleep(Duration::from_millis(10));
    }
}

// ---------------------------------------------------------------------------------------------
// Errors the proxy answers itself.

#[test]
fn no_route_is_404_and_a_dead_upstream_502_as_h2_responses() {
    let origin = h1_origin();
    let proxy = h1_proxy(&origin);
    let addr = proxy.listen;
    block_on(LIMIT, async move {
        let client = h2c_connect(addr).await;
        let r = exchange(&client.send, get("/nowhere"), None, None)
            .await
            .expect("no route: a response, not a stream error");
        assert_eq!(r.status, 404);
        // The same text as for HTTP/1.1 clients (one fault table, http/fault.rs).
        assert_eq!(r.text(), "404 Not Found: no route for this host and path\n");
        assert!(r.header("x-request-id").is_some());

        let r = exchange(&client.send, get("/dead/x"), None, None)
            .await
            .expect("dead upstream: a response, not a stream error");
        assert_eq!(r.status, 502);
        assert_eq!(r.text(), "502 Bad Gateway: upstream connect failed\n");
        assert_eq!(
            r.header("content-length"),
            Some(r.body.len().to_string().as_str())
        );

        let r = exchange(&client.send, get("/h1/ok"), None, None)
            .await
            .expect("the connection survives");
        assert_eq!(r.status, 200);
    });
}

// ---------------------------------------------------------------------------------------------
// Flood defence.

/// Opens a raw h2c connection, opens and immediately resets 2000 streams as fast as it can
/// (CVE-2023-44487), and reads until the proxy closes it. Returns what came back, how many
/// pairs were written and the write error that stopped it, if any.
fn rapid_reset(addr: SocketAddr) -> (RawOutcome, u32, Option<String>) {
    let abuser = raw_h2c(addr);
    let reader = {
        let s = abuser.try_clone().expect("clone");
        thread::spawn(move || read_frames(s, Duration::from_secs(10)))
    };
    let mut w = abuser;
    let mut sent = 0;
    let mut write_error = None;
    for batch in 0..20u32 {
        let mut buf = Vec::new();
        for k in 0..100u32 {
            let id = 1 + 2 * (batch * 100 + k);
            buf.extend(open_and_reset(id, "h2.test", "/h1/flood"));
        }
        if let Err(e) = std::io::Write::write_all(&mut w, &buf) {
            write_error = Some(e.to_string());
            break;
        }
        sent += 100;
    }
    (reader.join().expect("reader"), sent, write_error)
}

/// Three connections, one after the other, each open and immediately reset 2000 streams: each is
/// sent GOAWAY(ENHANCE_YOUR_CALM) and closed, and counted. A well-behaved connection meanwhile
/// (on the same core) completes 200 requests, each well within 2 s.
#[test]
fn rapid_reset_flood_closes_the_abuser_and_spares_other_clients() {
    let origin = h1_origin();
    let proxy = proxy(Setup {
        h1: Some(origin.addr),
        h2_settings: "max_concurrent_streams = 128\nmax_pending_accept_reset_streams = 50",
        ..Setup::default()
    });
    let addr = proxy.listen;

    let (started_tx, started_rx) = std::sync::mpsc::channel::<()>();
    let good = thread::spawn(move || {
        block_on(LIMIT, async move {
            let client = h2c_connect(addr).await;
            let mut worst = Duration::ZERO;
            for round in 0..20 {
                let mut tasks = Vec::new();
                for i in 0..10 {
                    let send = client.send.clone();
                    tasks.push(tokio::spawn(async move {
                        let path = format!("/h1/good/{round}/{i}");
                        let started = Instant::now();
                        let r = exchange(&send, get(&path), None, None).await;
                        (path, r, started.elapsed())
                    }));
                }
                for t in tasks {
                    let (path, r, took) = t.await.expect("task");
                    let r = r.unwrap_or_else(|e| panic!("well-behaved {path}: {e}"));
                    assert_eq!(r.status, 200, "{path}");
                    assert_eq!(r.text(), format!("GET {path} len=0 sum={FNV}"));
                    worst = worst.max(took);
                }
                if round == 0 {
                    let _ = started_tx.send(());
                }
            }
            worst
        })
    });

    started_rx
        .recv_timeout(Duration::from_secs(10))
        .expect("the well-behaved client never got going");
    for abuser in 0..3 {
        let (outcome, sent, write_error) = rapid_reset(addr);
        assert!(
            outcome
                .goaways
                .contains(&u32::from(Reason::ENHANCE_YOUR_CALM)),
            "abuser {abuser}: no GOAWAY(ENHANCE_YOUR_CALM) after {sent} open+reset pairs \
             (write error: {write_error:?}): {outcome:?}"
        );
        assert!(
            outcome
                .end
                .as_ref()
                .is_some_and(|e| !e.as_ref().is_err_and(|m| m.starts_with("still open"))),
            "abuser {abuser}: the connection stayed open: {outcome:?}"
        );
    }
    let worst = good.join().expect("the well-behaved client failed");
    assert!(
        worst < Duration::from_secs(2),
        "a well-behaved request took {worst:?}"
    );
    let abuse = metric_now(
        &proxy,
        "strait_h2_abuse_closes_total",
        &[("listener", LISTENER)],
    );
    assert_eq!(abuse, 3.0, "strait_h2_abuse_closes_total");
    // The proxy is still healthy.
    block_on(LIMIT, async move {
        let client = h2c_connect(addr).await;
        let r = exchange(&client.send, get("/h1/after"), None, None)
            .await
            .expect("after the flood");
        assert_eq!(r.status, 200);
    });
}

// ---------------------------------------------------------------------------------------------
// Drain.

/// An HTTP/1.1 upstream connection held by an h2 stream at the drain deadline is reset, like
/// those of HTTP/1.1 clients (each exchange registers its upstream socket for the deadline); an
/// unregistered one would be closed with a FIN the upstream could take for a complete request.
#[test]
fn the_drain_deadline_resets_an_h2_streams_http1_upstream() {
    use std::io::Read;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("origin");
    let origin_addr = listener.local_addr().expect("addr");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let Ok((mut s, _)) = listener.accept() else {
            return;
        };
        // Read the request, never answer, then see how the proxy ends the connection.
        let mut buf = [0u8; 4096];
        let _ = s.read(&mut buf);
        let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
        let end = match s.read(&mut buf) {
            Ok(0) => "fin".to_string(),
            Ok(n) => format!("{n} more bytes"),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => "reset".to_string(),
            Err(e) => format!("{e}"),
        };
        let _ = tx.send(end);
    });
    let mut proxy = proxy(Setup {
        h1: Some(origin_addr),
        extra: &["--drain-timeout", "500ms"],
        ..Setup::default()
    });
    let addr = proxy.listen;
    let rt = common::http::runtime();
    let client = rt.block_on(h2c_connect(addr));
    let _pending = {
        let send = client.send.clone();
        rt.spawn(async move { exchange(&send, get("/h1/never"), None, None).await })
    };
    // Let the request reach the origin, then drain.
    rt.block_on(async { tokio::time::sleep(Duration::from_millis(300)).await });
    proxy.signal(libc::SIGTERM);
    let end = rx
        .recv_timeout(Duration::from_secs(8))
        .expect("the upstream connection outlived the drain deadline");
    assert_eq!(end, "reset", "the upstream connection ended with {end}");
    let status = proxy.wait_exit(Duration::from_secs(8));
    assert!(status.success(), "{status}");
}

/// SIGTERM while a slow response is in flight: that stream completes, the connection is sent
/// GOAWAY so new streams on it are refused, and the process exits 0 once it is done.
#[test]
fn sigterm_finishes_in_flight_streams_refuses_new_ones_and_exits_zero() {
    let origin = h1_origin();
    let mut proxy = proxy(Setup {
        h1: Some(origin.addr),
        extra: &["--drain-timeout", "10s"],
        ..Setup::default()
    });
    let addr = proxy.listen;
    let rt = common::http::runtime();
    let client = rt.block_on(h2c_connect(addr));
    let slow = {
        let send = client.send.clone();
        rt.spawn(async move { exchange(&send, get("/h1/slow"), None, None).await })
    };
    // Drive the runtime until the slow request reached the origin.
    rt.block_on(async {
        let deadline = Instant::now() + Duration::from_secs(5);
        while !origin.requests().iter().any(|s| s.target == "/h1/slow") {
            assert!(Instant::now() < deadline, "the slow request never arrived");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    });
    proxy.signal(libc::SIGTERM);
    let refused = rt.block_on(async {
        // The connection notices the drain within its 250 ms tick; GOAWAY then takes a PING
        // round trip to become final.
        tokio::time::sleep(Duration::from_millis(800)).await;
        exchange(&client.send, get("/h1/late"), None, None).await
    });
    match refused {
        Err(e) => assert!(
            e.is_go_away() || e.reason() == Some(Reason::REFUSED_STREAM),
            "a new stream after GOAWAY failed oddly: {e:?}"
        ),
        Ok(r) => panic!(
            "a new stream after SIGTERM was served: {} {:?}",
            r.status,
            r.text()
        ),
    }
    let r = rt
        .block_on(async { tokio::time::timeout(LIMIT, slow).await })
        .expect("the slow stream did not finish")
        .expect("task")
        .expect("the in-flight stream failed during the drain");
    assert_eq!((r.status, r.text().as_str()), (200, "finished"));
    assert!(
        !origin.requests().iter().any(|s| s.target == "/h1/late"),
        "the refused stream reached the origin"
    );
    let ended =
        rt.block_on(async { tokio::time::timeout(Duration::from_secs(5), client.driver).await });
    assert!(
        ended.is_ok(),
        "the connection stayed open after its last stream"
    );
    let status = proxy.wait_exit(Duration::from_secs(8));
    assert!(status.success(), "{status}\n{}", proxy.logs());
}

// ---------------------------------------------------------------------------------------------
// TLS.

/// h2 negotiated by ALPN on the same sniffing port: concurrent streams to the HTTP/1.1 origin
/// (which is told the client used https), a download with a checksum, and trailers both ways
/// with the h2c origin.
#[test]
fn h2_over_tls_by_alpn_to_both_kinds_of_origin() {
    let cert = TestCert::new(&["h2.test", "localhost"]);
    let h1 = h1_origin();
    let h2 = H2Origin::start();
    let proxy = proxy(Setup {
        h1: Some(h1.addr),
        h2: Some(h2.addr),
        tls: Some(&cert),
        ..Setup::default()
    });
    let addr = proxy.listen;
    let cert = Arc::new(cert);
    let c2 = cert.clone();
    block_on(LIMIT, async move {
        let client = h2_tls_connect(addr, &c2, "h2.test").await;
        let mut tasks = Vec::new();
        for i in 0..20 {
            let send = client.send.clone();
            tasks.push(tokio::spawn(async move {
                exchange(&send, get(&format!("/h1/tls/{i}")), None, None).await
            }));
        }
        for (i, t) in tasks.into_iter().enumerate() {
            let r = t.await.expect("task").expect("tls stream");
            assert_eq!(r.status, 200);
            assert_eq!(r.text(), format!("GET /h1/tls/{i} len=0 sum={FNV}"));
        }
        let n = 2 * 1024 * 1024;
        let r = exchange(&client.send, get(&format!("/h1/download/{n}")), None, None)
            .await
            .expect("download");
        assert_eq!(checksum(&r.body), checksum(&payload(n, 7)));

        let body = Bytes::from(payload(100_000, 1));
        let r = exchange(
            &client.send,
            request(Method::POST, "h2.test", "/h2/echo/tls"),
            Some(body.clone()),
            Some(header_map(&[("x-client-trailer", "tls")])),
        )
        .await
        .expect("echo over TLS");
        assert_eq!(r.body, body.to_vec());
        assert_eq!(r.trailer("x-echo-x-client-trailer"), Some("tls"));
        assert_eq!(r.trailer("x-origin-trailer"), Some("done"));
    });
    let seen = h1.requests();
    assert!(seen
        .iter()
        .all(|s| s.header("x-forwarded-proto") == Some("https")));
    let h2_seen = h2
        .wait_request("/h2/echo/tls", Duration::from_secs(1))
        .expect("seen");
    assert_eq!(
        h2_seen
            .headers
            .get("x-forwarded-proto")
            .map(|v| v.as_bytes()),
        Some(&b"https"[..])
    );
    let handshakes = metric_now(
        &proxy,
        "strait_tls_handshakes_total",
        &[("listener", LISTENER)],
    );
    assert_eq!(handshakes, 1.0);
    drop(cert);
}

// ---------------------------------------------------------------------------------------------
// Client resets release upstream work at once.

/// An HTTP/1.1 "origin" that reads requests and never answers, counting the connections open.
fn silent_origin() -> (SocketAddr, Arc<std::sync::atomic::AtomicUsize>) {
    use std::io::Read;
    use std::sync::atomic::{AtomicUsize, Ordering};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let open = Arc::new(AtomicUsize::new(0));
    let counted = open.clone();
    thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { return };
            let counted = counted.clone();
            counted.fetch_add(1, Ordering::SeqCst);
            thread::spawn(move || {
                let mut buf = [0u8; 4096];
                while matches!(conn.read(&mut buf), Ok(n) if n > 0) {}
                counted.fetch_sub(1, Ordering::SeqCst);
            });
        }
    });
    (addr, open)
}

/// A client that resets streams waiting on a slow upstream frees the upstream connections at
/// once (rapid reset must not pile up upstream work), and the proxy keeps serving.
#[test]
fn client_resets_release_upstream_connections_at_once() {
    use std::sync::atomic::Ordering;
    let (origin, open) = silent_origin();
    let proxy = proxy(Setup {
        h1: Some(origin),
        ..Setup::default()
    });
    let addr = proxy.listen;
    block_on(Duration::from_secs(20), async move {
        let client = h2c_connect(addr).await;
        let mut held = Vec::new();
        for i in 0..40 {
            let mut send = client.send.clone().ready().await.expect("ready");
            let request = http::Request::builder()
                .uri(format!("http://slow.test/h1/wait/{i}"))
                .body(())
                .expect("request");
            let (response, _) = send.send_request(request, true).expect("send");
            held.push(response);
        }
        // The origin sees them all waiting...
        let deadline = Instant::now() + Duration::from_secs(5);
        while open.load(Ordering::SeqCst) < 40 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(
            open.load(Ordering::SeqCst),
            40,
            "every request reached the origin"
        );
        // ...then the client resets every stream (dropping a response future resets it).
        drop(held);
        let deadline = Instant::now() + Duration::from_secs(3);
        while open.load(Ordering::SeqCst) > 0 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(
            open.load(Ordering::SeqCst),
            0,
            "the proxy closed the upstream connections of the reset streams"
        );
    });
}

/// An idle connection gets a graceful GOAWAY after `keepalive_timeout`; a client that never
/// acknowledges it (h2 waits for the answer to its PING) is still closed a few seconds later,
/// so it cannot hold the connection forever.
#[test]
fn an_idle_client_that_ignores_goaway_is_closed() {
    use std::io::{Read, Write};
    let dead = dead_addr();
    let proxy = config_proxy(
        &format!(
            r#"
[[listener]]
name = "{LISTENER}"
address = "LISTEN"
protocols = ["h2c"]
keepalive_timeout = "1s"

[[listener.route]]
name = "all"
cluster = "c"

[[cluster]]
name = "c"
endpoints = [{{ address = "{dead}" }}]
"#
        ),
        &[],
    );
    let mut s = std::net::TcpStream::connect(proxy.listen).expect("connect");
    // The preface and an empty SETTINGS frame, then silence: no SETTINGS ack, no PING answer.
    s.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\x04\0\0\0\0\0")
        .expect("preface");
    s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
    let started = Instant::now();
    let mut buf = [0u8; 4096];
    let closed = loop {
        match s.read(&mut buf) {
            Ok(0) => break true,
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break true,
            Err(_) => break false,
        }
    };
    assert!(closed, "the proxy never closed the connection");
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_secs(1) && waited < Duration::from_secs(12),
        "closed after {waited:?}"
    );
}
