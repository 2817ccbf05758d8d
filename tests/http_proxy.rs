//! The HTTP/1.1 reverse proxy against the real binary and real origins on loopback: upstream
//! keep-alive pooling and its failure modes, timeouts, slowloris, proxy error codes, the access
//! log and drain. Wire framing and refusals are in http_framing.rs; routing and header handling
//! in http_routing.rs.

mod common;

use std::io::Write;
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::http::*;
use common::*;
use http_body_util::{BodyExt, Full};

// ---------------------------------------------------------------------------------------------
// Upstream keep-alive and the pool.

/// 50 requests on one client connection, then 20 on a fresh client connection each: the origin
/// sees a single connection throughout.
fn keep_alive_reuse(driver: &str) {
    let origin = HttpOrigin::start(|r| Reply::ok(format!("hello {}", r.target)));
    let proxy = quick_http(&[origin.addr], &["--io-driver", driver]);
    let addr = proxy.listen;
    let ids = block_on(Duration::from_secs(30), async move {
        let mut ids = Vec::new();
        let mut check = |i: usize, r: Result<(u16, hyper::HeaderMap, Bytes), String>, what| {
            let (status, h, body) = r.unwrap_or_else(|e| panic!("{what} request {i}: {e}"));
            assert_eq!(status, 200, "{what} {i}");
            assert_eq!(body, format!("hello /{what}/{i}"));
            assert_eq!(h["via"], "1.1 strait");
            ids.push(
                h["x-request-id"]
                    .to_str()
                    .expect("ascii request id")
                    .to_string(),
            );
        };
        let mut s = hyper_connect(addr).await;
        for i in 0..50 {
            let r = send(
                &mut s,
                request("GET", &format!("/one/{i}"), "ka.test", empty()),
            )
            .await;
            check(i, r, "one");
        }
        drop(s);
        for i in 0..20 {
            let mut s = hyper_connect(addr).await;
            let r = send(
                &mut s,
                request("GET", &format!("/fresh/{i}"), "ka.test", empty()),
            )
            .await;
            check(i, r, "fresh");
        }
        ids
    });
    assert_eq!(
        origin.connections(),
        1,
        "{driver}: upstream connections were not reused"
    );
    let seen = origin.requests();
    assert_eq!(seen.len(), 70);
    let mut unique = ids.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), 70, "request ids repeat");
    for (s, id) in seen.iter().zip(&ids) {
        assert!(is_generated_id(id), "{id}");
        assert_eq!(s.header_all("x-request-id"), [id.as_str()]);
    }
    assert_metrics(
        &proxy,
        "keep_alive_reuse",
        &[
            (
                "strait_cluster_pool_hits_total",
                &[("cluster", "upstream")],
                69.0,
            ),
            (
                "strait_cluster_pool_misses_total",
                &[("cluster", "upstream")],
                1.0,
            ),
            (
                "strait_http_requests_total",
                &[("listener", "main"), ("route", "default")],
                70.0,
            ),
            (
                "strait_http_responses_total",
                &[("listener", "main"), ("route", "default"), ("class", "2xx")],
                70.0,
            ),
        ],
    );
}

#[test]
fn keep_alive_reuses_one_upstream_connection_uring() {
    keep_alive_reuse("uring");
}

#[test]
fn keep_alive_reuses_one_upstream_connection_epoll() {
    keep_alive_reuse("epoll");
}

/// The origin closes every connection 200 ms after answering: a pooled connection it closed is
/// never used, so requests spaced past that all succeed.
fn stale_pool_connections(driver: &str) {
    let origin = HttpOrigin::start(|r| {
        Reply::ok(format!("ok {}", r.target)).idle_close(Duration::from_millis(200))
    });
    let proxy = quick_http(&[origin.addr], &["--io-driver", driver]);
    let mut c = RawConn::connect(proxy.listen);
    // Back to back: one upstream connection.
    for i in 0..3 {
        let r = c
            .exchange(&get(&format!("/quick/{i}"), "s.test"))
            .expect("quick");
        assert_eq!(r.status, 200);
    }
    assert_eq!(origin.connections(), 1);
    for i in 0..5 {
        thread::sleep(Duration::from_millis(400));
        let r = c
            .exchange(&get(&format!("/spaced/{i}"), "s.test"))
            .unwrap_or_else(|e| panic!("{driver} spaced {i}: {e}\n{}", proxy.logs()));
        assert_eq!(
            (r.status, r.text()),
            (200, format!("ok /spaced/{i}")),
            "{driver} spaced request {i}"
        );
    }
    assert_eq!(origin.connections(), 6, "{driver}");
    // No request was lost on a connection the origin had closed.
    assert_eq!(
        origin.request_count(),
        8,
        "{driver}: {:?}",
        origin.requests()
    );
    let cluster = [("cluster", "upstream")];
    let stale_before = metric_now(&proxy, "strait_cluster_pool_stale_total", &cluster);
    let retries_before = metric_now(&proxy, "strait_cluster_http_retries_total", &cluster);
    // Idempotent requests may skip the staleness check and be retried instead; either way each
    // of the five spaced requests found its pooled connection dead exactly once.
    assert_eq!(
        stale_before + retries_before,
        5.0,
        "{driver}: stale {stale_before} + retries {retries_before}"
    );
    // A POST cannot be retried: the staleness check must catch the closed connection.
    for i in 0..3 {
        thread::sleep(Duration::from_millis(400));
        let req =
            format!("POST /post/{i} HTTP/1.1\r\nHost: s.test\r\nContent-Length: 4\r\n\r\nbody");
        let r = c
            .exchange(req.as_bytes())
            .unwrap_or_else(|e| panic!("{driver} POST {i}: {e}\n{}", proxy.logs()));
        assert_eq!(
            (r.status, r.text()),
            (200, format!("ok /post/{i}")),
            "{driver} POST {i} on a stale pooled connection"
        );
    }
    assert_eq!(
        metric_now(&proxy, "strait_cluster_pool_stale_total", &cluster),
        stale_before + 3.0,
        "{driver}"
    );
    assert_eq!(
        metric_now(&proxy, "strait_cluster_http_retries_total", &cluster),
        retries_before,
        "{driver}: a POST was retried"
    );
}

#[test]
fn stale_pooled_connections_are_discarded_uring() {
    stale_pool_connections("uring");
}

#[test]
fn stale_pooled_connections_are_discarded_epoll() {
    stale_pool_connections("epoll");
}

/// A reused connection that dies after the request was written (before any response byte) is
/// retried once on a new connection for an idempotent bodiless request, never for a POST.
#[test]
fn a_reused_connection_that_dies_is_retried_once_for_idempotent_requests() {
    let origin = HttpOrigin::start(|r| {
        if r.nth == 1 {
            Reply::hang_up()
        } else {
            Reply::ok(format!("{} {}", r.method, r.target))
        }
    });
    let proxy = quick_http(&[origin.addr], &[]);
    let mut c = RawConn::connect(proxy.listen);
    let r = c.exchange(&get("/warm", "r.test")).expect("warm");
    assert_eq!(r.status, 200);
    let r = c.exchange(&get("/retried", "r.test")).expect("retried");
    assert_eq!(
        (r.status, r.text().as_str()),
        (200, "GET /retried"),
        "{}",
        proxy.logs()
    );
    let seen: Vec<(usize, String)> = origin
        .requests()
        .iter()
        .map(|s| (s.conn, s.target.clone()))
        .collect();
    assert_eq!(
        seen,
        [
            (0, "/warm".to_string()),
            (0, "/retried".to_string()),
            (1, "/retried".to_string())
        ]
    );
    // A POST is not replayed: the same failure is a 502.
    let r = c
        .exchange(b"POST /once HTTP/1.1\r\nHost: r.test\r\nContent-Length: 1\r\n\r\nx")
        .expect("post");
    check_proxy_error(&r, 502).unwrap();
    assert_eq!(
        origin
            .requests()
            .iter()
            .filter(|s| s.target == "/once")
            .count(),
        1
    );
    assert_metrics(
        &proxy,
        "retry",
        &[(
            "strait_cluster_http_retries_total",
            &[("cluster", "upstream")],
            1.0,
        )],
    );
}

/// Two concurrent requests open two upstream connections; the one returned last is reused first
/// (LIFO). `pool_max_idle` caps what is kept, and `pool_idle_timeout` closes idle connections.
#[test]
fn the_pool_is_lifo_bounded_and_swept() {
    let origin = || {
        HttpOrigin::start(|r| {
            let delay = match r.target.rsplit('/').next() {
                Some("a") => Duration::from_millis(400),
                Some("b") => Duration::from_millis(50),
                _ => Duration::ZERO,
            };
            Reply::ok(format!("conn={}", r.conn)).delay(delay)
        })
    };
    let (lifo, one, short) = (origin(), origin(), origin());
    let proxy = config_proxy(
        &format!(
            r#"
[[cluster]]
name = "lifo"
endpoints = [{{ address = "{}" }}]

[[cluster]]
name = "one"
endpoints = [{{ address = "{}" }}]
pool_max_idle = 1

[[cluster]]
name = "short"
endpoints = [{{ address = "{}" }}]
pool_idle_timeout = "300ms"

[[listener]]
name = "web"
address = "LISTEN"
protocol = "http"

[[listener.route]]
name = "lifo"
path_prefix = "/lifo"
cluster = "lifo"

[[listener.route]]
name = "one"
path_prefix = "/one"
cluster = "one"

[[listener.route]]
name = "short"
path_prefix = "/short"
cluster = "short"
"#,
            lifo.addr, one.addr, short.addr
        ),
        &[],
    );
    let listen = proxy.listen;
    // A (slow) on upstream connection 0, then B (fast) on connection 1: B is checked in first.
    let concurrent = |prefix: &'static str, origin: &HttpOrigin| {
        let a = thread::spawn(move || one_request(listen, &get(&format!("{prefix}/a"), "p.test")));
        let deadline = Instant::now() + Duration::from_secs(5);
        while origin.request_count() == 0 {
            assert!(Instant::now() < deadline, "{prefix}: A never arrived");
            thread::sleep(Duration::from_millis(5));
        }
        let b = one_request(listen, &get(&format!("{prefix}/b"), "p.test")).expect("B");
        let a = a.join().expect("A thread").expect("A");
        assert_eq!(
            (a.text(), b.text()),
            ("conn=0".into(), "conn=1".into()),
            "{prefix}"
        );
    };
    let next = |path: &str| {
        one_request(listen, &get(path, "p.test"))
            .expect(path)
            .text()
    };

    concurrent("/lifo", &lifo);
    assert_eq!(
        next("/lifo/next"),
        "conn=0",
        "the last connection checked in is reused first"
    );
    assert_eq!(next("/lifo/again"), "conn=0");
    assert_eq!(lifo.connections(), 2);

    concurrent("/one", &one);
    assert_eq!(
        one.wait_closed(1, Duration::from_secs(3)),
        1,
        "pool_max_idle = 1 kept both"
    );
    assert_eq!(
        next("/one/next"),
        "conn=1",
        "the idle connection kept is the first returned"
    );
    assert_eq!(one.connections(), 2);

    assert_eq!(next("/short/1"), "conn=0");
    assert_eq!(
        short.wait_closed(1, Duration::from_secs(3)),
        1,
        "the idle connection outlived pool_idle_timeout"
    );
    assert_eq!(next("/short/2"), "conn=1");

    assert_metrics(
        &proxy,
        "pool",
        &[
            (
                "strait_cluster_pool_hits_total",
                &[("cluster", "lifo")],
                2.0,
            ),
            (
                "strait_cluster_pool_misses_total",
                &[("cluster", "lifo")],
                2.0,
            ),
            (
                "strait_cluster_pool_misses_total",
                &[("cluster", "short")],
                2.0,
            ),
        ],
    );
}

/// An upstream response that ends its connection (`Connection: close`, or HTTP/1.0 without
/// keep-alive) is never pooled, while the client connection stays open.
#[test]
fn upstream_responses_that_forbid_reuse_are_not_pooled() {
    let origin = HttpOrigin::start(|r| match r.target.as_str() {
        "/close" => Reply::ok("closing").header("Connection", "close"),
        "/http10" => Reply::raw(b"HTTP/1.0 200 OK\r\nContent-Length: 4\r\n\r\nold!"),
        _ => Reply::ok(format!("conn={}", r.conn)),
    });
    let proxy = quick_http(&[origin.addr], &[]);
    let mut c = RawConn::connect(proxy.listen);
    let mut step = |path: &str, want: &str| {
        let r = c
            .exchange(&get(path, "n.test"))
            .unwrap_or_else(|e| panic!("{path}: {e}"));
        assert_eq!((r.status, r.text().as_str()), (200, want), "{path}");
        assert!(
            !r.has_token("connection", "close"),
            "{path}: {:?}",
            r.headers
        );
    };
    step("/close", "closing");
    step("/after-close", "conn=1");
    step("/http10", "old!");
    step("/after-http10", "conn=2");
    step("/again", "conn=2");
    assert_metrics(
        &proxy,
        "no_reuse",
        &[(
            "strait_cluster_http_retries_total",
            &[("cluster", "upstream")],
            0.0,
        )],
    );
}

/// A response body cut short by the upstream must not look complete to the client: the client
/// connection is reset.
#[test]
fn truncated_upstream_bodies_reset_the_client_connection() {
    let origin = HttpOrigin::start(|r| match r.target.as_str() {
        "/short-length" => {
            Reply::garbage(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly this")
        }
        "/cut-chunked" => {
            Reply::garbage(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n")
        }
        "/bad-chunk" => Reply::garbage(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\nzz\r\n",
        ),
        _ => Reply::ok("fine"),
    });
    let proxy = quick_http(&[origin.addr], &[]);
    let mut failures = Vec::new();
    for path in ["/short-length", "/cut-chunked", "/bad-chunk"] {
        let mut c = RawConn::connect(proxy.listen);
        match c.exchange(&get(path, "t.test")) {
            Ok(r) => failures.push(format!(
                "  {path}: the client got a complete response: {} {:?}",
                r.status,
                r.text()
            )),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
            Err(e) => failures.push(format!("  {path}: ended by {e} instead of a reset")),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    let r = one_request(proxy.listen, &get("/ok", "t.test")).expect("still serving");
    assert_eq!(r.text(), "fine");
}

/// A client that goes away mid-download or mid-upload: the upstream connection is dropped (never
/// pooled with a body half read or half sent) and the proxy keeps serving.
#[test]
fn a_client_that_vanishes_mid_transfer_does_not_poison_the_pool() {
    let origin = HttpOrigin::start(|r| match r.target.as_str() {
        "/big" => Reply::new(200).body(payload(16 << 20, 1)),
        _ => Reply::ok(format!("conn={} len={}", r.conn, r.body_len)),
    });
    let proxy = quick_http(&[origin.addr], &[]);

    let mut c = RawConn::connect(proxy.listen);
    c.send(&get("/big", "v.test")).expect("send");
    let mut got = 0;
    while got < 100_000 {
        match c.wire.fill() {
            Ok(0) | Err(_) => panic!("download ended early after {got} bytes"),
            Ok(n) => got += n,
        }
    }
    drop(c);
    assert_eq!(
        origin.wait_closed(1, Duration::from_secs(5)),
        1,
        "the upstream connection of the abandoned download was kept"
    );
    let r = one_request(proxy.listen, &get("/after-download", "v.test")).expect("after");
    assert_eq!(r.text(), "conn=1 len=0");

    let mut c = RawConn::connect(proxy.listen);
    c.send(b"POST /upload HTTP/1.1\r\nHost: v.test\r\nContent-Length: 1000000\r\n\r\n")
        .expect("head");
    c.send(&payload(100_000, 2)).expect("part of the body");
    let deadline = Instant::now() + Duration::from_secs(5);
    while !origin.requests().iter().any(|s| s.target == "/upload") {
        assert!(Instant::now() < deadline, "the upload never started");
        thread::sleep(Duration::from_millis(5));
    }
    // Let part of the body through before the client vanishes.
    thread::sleep(Duration::from_millis(100));
    drop(c);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let up = origin
            .requests()
            .into_iter()
            .find(|s| s.target == "/upload")
            .expect("upload");
        assert!(!up.complete, "{up:?}");
        if up.aborted {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the origin still waits for the rest of an abandoned upload"
        );
        thread::sleep(Duration::from_millis(10));
    }
    let r = one_request(proxy.listen, &get("/after-upload", "v.test")).expect("after");
    assert_eq!(r.status, 200);
    assert!(r.text().ends_with("len=0"), "{}", r.text());
}

// ---------------------------------------------------------------------------------------------
// Timeouts.

fn timeout_proxy(origin: &HttpOrigin) -> Proxy {
    config_proxy(
        &format!(
            r#"
[[cluster]]
name = "a"
endpoints = [{{ address = "{}" }}]

[[listener]]
name = "web"
address = "LISTEN"
protocol = "http"
cluster = "a"
header_read_timeout = "500ms"
client_body_timeout = "500ms"
upstream_response_timeout = "500ms"
keepalive_timeout = "500ms"
upstream_body_timeout = "500ms"
"#,
            origin.addr
        ),
        &[],
    )
}

/// Waits for a proxy error response on `c` and checks it and the elapsed time.
fn timed_error(c: &mut RawConn, status: u16, started: Instant) -> Result<Duration, String> {
    let r = c.response().map_err(|e| format!("no response: {e}"))?;
    let took = started.elapsed();
    check_proxy_error(&r, status)?;
    if !r.has_token("connection", "close") {
        return Err(format!("no connection: close: {:?}", r.headers));
    }
    c.closed_within(Duration::from_secs(3))
        .map_err(|e| format!("not closed: {e}"))?;
    if took < Duration::from_millis(400) || took > Duration::from_secs(3) {
        return Err(format!("answered after {took:?}, expected about 500ms"));
    }
    Ok(took)
}

#[test]
fn timeouts_answer_408_and_504_and_close_idle_connections() {
    let origin = HttpOrigin::start(|r| match r.target.as_str() {
        "/hang" => Reply::ok("late").delay(Duration::from_secs(2)),
        "/stall-body" => Reply::raw_hold(
            b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial",
            Duration::from_secs(3),
        ),
        _ => Reply::ok("fast"),
    });
    let proxy = timeout_proxy(&origin);
    let addr = proxy.listen;
    type Check = fn(std::net::SocketAddr) -> Result<Duration, String>;
    let cases: Vec<(&str, Check)> = vec![
        ("slow_head", |addr| {
            let mut c = RawConn::connect(addr);
            let started = Instant::now();
            c.send(b"GET /slow HTTP/1.1\r\nHost: t.test\r\n")
                .map_err(|e| e.to_string())?;
            timed_error(&mut c, 408, started)
        }),
        ("trickled_head", |addr| {
            // Every byte arrives well within the timeout; the head as a whole does not.
            let mut c = RawConn::connect(addr);
            let started = Instant::now();
            for b in b"GET /trickle HTTP/1.1\r\nHost: t.test\r\nX-Slow: aaaaaaaaaaaa" {
                if c.send(&[*b]).is_err() || c.readable_within(Duration::from_millis(60)) {
                    break;
                }
            }
            timed_error(&mut c, 408, started)
        }),
        ("stalled_body", |addr| {
            let mut c = RawConn::connect(addr);
            c.send(
                b"POST /stall HTTP/1.1\r\nHost: t.test\r\nContent-Length: 100\r\n\r\n0123456789",
            )
            .map_err(|e| e.to_string())?;
            timed_error(&mut c, 408, Instant::now())
        }),
        ("upstream_response_timeout", |addr| {
            let mut c = RawConn::connect(addr);
            let started = Instant::now();
            c.send(&get("/hang", "t.test")).map_err(|e| e.to_string())?;
            timed_error(&mut c, 504, started)
        }),
        ("upstream_body_timeout", |addr| {
            let mut c = RawConn::connect(addr);
            let started = Instant::now();
            match c.exchange(&get("/stall-body", "t.test")) {
                Ok(r) => Err(format!("a complete response: {} {:?}", r.status, r.text())),
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {
                    let took = started.elapsed();
                    if took < Duration::from_millis(400) || took > Duration::from_secs(3) {
                        return Err(format!("reset after {took:?}, expected about 500ms"));
                    }
                    Ok(took)
                }
                Err(e) => Err(format!("ended by {e} instead of a reset")),
            }
        }),
        ("keepalive_timeout", |addr| {
            let mut c = RawConn::connect(addr);
            let r = c
                .exchange(&get("/fast", "t.test"))
                .map_err(|e| e.to_string())?;
            if r.status != 200 {
                return Err(format!("status {}", r.status));
            }
            let took = c.closed_within(Duration::from_secs(3))?;
            if took < Duration::from_millis(400) {
                return Err(format!(
                    "closed after {took:?}, before the keep-alive timeout"
                ));
            }
            Ok(took)
        }),
        ("silent_new_connection", |addr| {
            let mut c = RawConn::connect(addr);
            let took = c.closed_within(Duration::from_secs(3))?;
            if took < Duration::from_millis(400) {
                return Err(format!("closed after {took:?}"));
            }
            Ok(took)
        }),
    ];
    let started = Instant::now();
    let handles: Vec<_> = cases
        .into_iter()
        .map(|(name, f)| (name, thread::spawn(move || f(addr))))
        .collect();
    let mut failures = Vec::new();
    for (name, h) in handles {
        match h.join() {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => failures.push(format!("  {name}: {e}")),
            Err(_) => failures.push(format!("  {name}: panicked")),
        }
    }
    assert!(
        failures.is_empty(),
        "timeout cases failed:\n{}\n{}",
        failures.join("\n"),
        proxy.logs()
    );
    assert!(started.elapsed() < Duration::from_secs(8));
    // The stalled body reached the origin only partly.
    let stalled: Vec<Seen> = origin
        .requests()
        .into_iter()
        .filter(|s| s.target == "/stall")
        .collect();
    assert!(stalled.iter().all(|s| !s.complete), "{stalled:?}");
}

/// 200 connections trickle a header byte every 100 ms while a normal client makes 100 requests:
/// the normal client is served promptly throughout.
#[test]
fn slowloris_connections_do_not_starve_normal_clients() {
    let origin = HttpOrigin::ok();
    let proxy = quick_http(&[origin.addr], &[]);
    let addr = proxy.listen;
    let mut slow: Vec<TcpStream> = (0..200)
        .map(|i| {
            let s = TcpStream::connect_timeout(&addr, RAW_TIMEOUT)
                .unwrap_or_else(|e| panic!("slow connection {i}: {e}"));
            s.set_write_timeout(Some(RAW_TIMEOUT)).expect("timeout");
            let _ = s.set_nodelay(true);
            s
        })
        .collect();
    let stop = Arc::new(AtomicBool::new(false));
    let written = Arc::new(AtomicUsize::new(0));
    let failed = Arc::new(AtomicUsize::new(0));
    let trickler = {
        let (stop, written, failed) = (stop.clone(), written.clone(), failed.clone());
        thread::spawn(move || {
            let prefix = b"GET /slow HTTP/1.1\r\nHost: s.test\r\nX-Slow: ";
            let mut dead = vec![false; slow.len()];
            for tick in 0..200usize {
                if stop.load(Ordering::SeqCst) {
                    break;
                }
                let byte = prefix.get(tick).copied().unwrap_or(b'a');
                for (s, d) in slow.iter_mut().zip(dead.iter_mut()) {
                    if *d {
                        continue;
                    }
                    if s.write_all(&[byte]).is_ok() {
                        written.fetch_add(1, Ordering::SeqCst);
                    } else {
                        *d = true;
                        failed.fetch_add(1, Ordering::SeqCst);
                    }
                }
                thread::sleep(Duration::from_millis(100));
            }
            slow
        })
    };
    thread::sleep(Duration::from_millis(300));
    let started = Instant::now();
    let statuses = block_on(Duration::from_secs(20), async move {
        let client =
            hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                .build_http::<Full<Bytes>>();
        let mut statuses = Vec::new();
        for i in 0..100 {
            let uri: hyper::Uri = format!("http://{addr}/normal/{i}").parse().expect("uri");
            let status = match client.get(uri).await {
                Ok(resp) => {
                    let status = resp.status().as_u16();
                    match resp.into_body().collect().await.map(|b| b.to_bytes()) {
                        Ok(b) if b == "ok" => status,
                        _ => 0,
                    }
                }
                Err(e) => {
                    eprintln!("normal request {i}: {e}");
                    0
                }
            };
            statuses.push(status);
        }
        statuses
    });
    let took = started.elapsed();
    stop.store(true, Ordering::SeqCst);
    let slow = trickler.join().expect("trickler");
    assert!(
        statuses.iter().all(|&s| s == 200),
        "normal requests failed: {statuses:?}"
    );
    assert!(took < Duration::from_secs(5), "100 requests took {took:?}");
    // The attack was real: every slow connection stayed open and kept trickling.
    assert_eq!(failed.load(Ordering::SeqCst), 0);
    assert!(written.load(Ordering::SeqCst) >= 200 * 3);
    assert_eq!(
        origin.request_count(),
        100,
        "no slow request reached the origin"
    );
    drop(slow);
}

// ---------------------------------------------------------------------------------------------
// Upstream failures: 502, 503.

#[test]
fn upstream_failures_are_answered_502_and_503_and_counted() {
    let garbage = HttpOrigin::start(|r| match r.target.as_str() {
        "/garbage/text" => Reply::garbage(b"THIS IS NOT HTTP AT ALL\r\n\r\n"),
        "/garbage/cl-te" => Reply::garbage(
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        ),
        "/garbage/status" => Reply::garbage(b"HTTP/1.1 2000 OK\r\nContent-Length: 0\r\n\r\n"),
        _ => Reply::ok("?"),
    });
    let hangup = HttpOrigin::start(|_| Reply::hang_up());
    let slow = HttpOrigin::start(|r| match r.target.as_str() {
        "/slow/wait" => Reply::ok("waited").delay(Duration::from_millis(1000)),
        _ => Reply::ok("quick"),
    });
    let dead = dead_addr();
    let proxy = config_proxy(
        &format!(
            r#"
[[cluster]]
name = "dead"
endpoints = [{{ address = "{dead}" }}]
connect_timeout = "1s"

[[cluster]]
name = "garbage"
endpoints = [{{ address = "{}" }}]

[[cluster]]
name = "hangup"
endpoints = [{{ address = "{}" }}]

[[cluster]]
name = "slow"
endpoints = [{{ address = "{}" }}]
max_connections_per_endpoint = 1

[[listener]]
name = "web"
address = "LISTEN"
protocol = "http"

[[listener.route]]
name = "dead"
path_prefix = "/dead"
cluster = "dead"

[[listener.route]]
name = "garbage"
path_prefix = "/garbage"
cluster = "garbage"

[[listener.route]]
name = "hangup"
path_prefix = "/hangup"
cluster = "hangup"

[[listener.route]]
name = "slow"
path_prefix = "/slow"
cluster = "slow"
"#,
            garbage.addr, hangup.addr, slow.addr
        ),
        &[],
    );

    // Connect failure: 502, and the keep-alive connection stays usable.
    let mut c = RawConn::connect(proxy.listen);
    for i in 0..2 {
        let r = c.exchange(&get("/dead", "e.test")).expect("dead");
        check_proxy_error(&r, 502).unwrap_or_else(|e| panic!("dead {i}: {e}"));
        assert!(!r.has_token("connection", "close"), "{:?}", r.headers);
    }

    let mut failures = Vec::new();
    for path in [
        "/garbage/text",
        "/garbage/cl-te",
        "/garbage/status",
        "/hangup",
    ] {
        match one_request(proxy.listen, &get(path, "e.test")) {
            Ok(r) => {
                if let Err(e) = check_proxy_error(&r, 502) {
                    failures.push(format!("  {path}: {e}"));
                }
            }
            Err(e) => failures.push(format!("  {path}: {e}")),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert_eq!(hangup.request_count(), 1, "a new connection is not retried");

    // One connection allowed to the slow origin: a second concurrent request is refused at once.
    let listen = proxy.listen;
    let first = thread::spawn(move || one_request(listen, &get("/slow/wait", "e.test")));
    let deadline = Instant::now() + Duration::from_secs(5);
    while slow.request_count() == 0 {
        assert!(Instant::now() < deadline, "the first request never arrived");
        thread::sleep(Duration::from_millis(5));
    }
    let mut c = RawConn::connect(proxy.listen);
    let started = Instant::now();
    let r = c.exchange(&get("/slow/second", "e.test")).expect("503");
    check_proxy_error(&r, 503).unwrap();
    assert!(started.elapsed() < Duration::from_millis(800));
    assert!(!r.has_token("connection", "close"), "{:?}", r.headers);
    let r = first.join().expect("first").expect("first response");
    assert_eq!((r.status, r.text().as_str()), (200, "waited"));
    // Capacity is back once the first request is done.
    let r = c.exchange(&get("/slow/third", "e.test")).expect("third");
    assert_eq!((r.status, r.text().as_str()), (200, "quick"));
    assert_eq!(slow.request_count(), 2);

    assert_metrics(
        &proxy,
        "upstream_failures",
        &[
            (
                "strait_http_responses_total",
                &[("listener", "web"), ("route", "dead"), ("class", "5xx")],
                2.0,
            ),
            (
                "strait_http_responses_total",
                &[("listener", "web"), ("route", "garbage"), ("class", "5xx")],
                3.0,
            ),
            (
                "strait_http_responses_total",
                &[("listener", "web"), ("route", "hangup"), ("class", "5xx")],
                1.0,
            ),
            (
                "strait_http_responses_total",
                &[("listener", "web"), ("route", "slow"), ("class", "5xx")],
                1.0,
            ),
            (
                "strait_http_responses_total",
                &[("listener", "web"), ("route", "slow"), ("class", "2xx")],
                2.0,
            ),
            (
                "strait_http_requests_total",
                &[("listener", "web"), ("route", "slow")],
                3.0,
            ),
        ],
    );
}

// ---------------------------------------------------------------------------------------------
// Access log and drain.

#[test]
fn access_log_has_one_json_line_per_request() {
    let origin = HttpOrigin::echo();
    let dir = temp_dir("access-log");
    let log_path = dir.join("access.log");
    let mut proxy = config_proxy(
        &format!(
            r#"
[access_log]
path = "{}"
format = "json"
sample = 1

[[cluster]]
name = "a"
endpoints = [{{ address = "{}" }}]

[[listener]]
name = "web"
address = "LISTEN"
protocol = "http"

[[listener.route]]
name = "app"
path_prefix = "/app"
cluster = "a"
"#,
            log_path.display(),
            origin.addr
        ),
        &[],
    );
    let requests: Vec<(&str, &str, Vec<u8>, u16)> = vec![
        (
            "GET",
            "/app/1",
            b"GET /app/1 HTTP/1.1\r\nHost: log.test\r\nUser-Agent: test-agent/1.0\r\n\
              Referer: http://ref.test/page\r\n\r\n"
                .to_vec(),
            200,
        ),
        (
            "POST",
            "/app/2",
            b"POST /app/2 HTTP/1.1\r\nHost: log.test\r\nContent-Length: 5\r\n\r\nhello".to_vec(),
            200,
        ),
        (
            "GET",
            "/app/3?q=x",
            b"GET /app/3?q=x HTTP/1.1\r\nHost: log.test\r\nX-Request-ID: client-id-3\r\n\r\n"
                .to_vec(),
            200,
        ),
        (
            "HEAD",
            "/app/4",
            b"HEAD /app/4 HTTP/1.1\r\nHost: log.test\r\n\r\n".to_vec(),
            200,
        ),
        (
            "GET",
            "/missing",
            b"GET /missing HTTP/1.1\r\nHost: log.test\r\n\r\n".to_vec(),
            404,
        ),
    ];
    let mut c = RawConn::connect(proxy.listen);
    let client = c.wire.stream.local_addr().expect("local addr").to_string();
    let mut ids = Vec::new();
    for (i, (method, path, raw, status)) in requests.iter().enumerate() {
        let r = c
            .exchange(raw)
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        assert_eq!(r.status, *status, "{method} {path}");
        ids.push(r.header("x-request-id").expect("x-request-id").to_string());
        if i == 0 {
            // Flushed periodically while running, not only at exit.
            let deadline = Instant::now() + Duration::from_secs(3);
            while !std::fs::read_to_string(&log_path).is_ok_and(|t| t.contains(&ids[0])) {
                assert!(
                    Instant::now() < deadline,
                    "the first line was not written within 3 s"
                );
                thread::sleep(Duration::from_millis(20));
            }
        }
    }
    assert_eq!(ids[2], "client-id-3");
    drop(c);
    proxy.signal(libc::SIGTERM);
    let status = proxy.wait_exit(Duration::from_secs(10));
    assert!(status.success(), "{status}\n{}", proxy.logs());

    let text = std::fs::read_to_string(&log_path).expect("access log file");
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    assert_eq!(lines.len(), 5, "{text}");
    for ((method, path, _, status), id) in requests.iter().zip(&ids) {
        let line = lines
            .iter()
            .find(|l| l["request_id"] == id.as_str())
            .unwrap_or_else(|| panic!("no line for {method} {path} ({id}):\n{text}"));
        let ctx = format!("{method} {path}: {line}");
        assert_eq!(line["method"], *method, "{ctx}");
        assert_eq!(line["path"], *path, "{ctx}");
        assert_eq!(line["status"], *status, "{ctx}");
        assert_eq!(line["listener"], "web", "{ctx}");
        assert_eq!(line["host"], "log.test", "{ctx}");
        assert_eq!(line["protocol"], "HTTP/1.1", "{ctx}");
        assert_eq!(line["client"], client.as_str(), "{ctx}");
        assert!(line["bytes_out"].as_u64().is_some_and(|n| n > 0), "{ctx}");
        assert!(line["bytes_in"].as_u64().is_some_and(|n| n > 0), "{ctx}");
        assert!(line["total_ms"].is_number(), "{ctx}");
        assert!(
            line["time"].as_str().is_some_and(|t| t.ends_with('Z')),
            "{ctx}"
        );
        for key in ["user_agent", "referer"] {
            assert!(line.get(key).is_some(), "{key} missing: {ctx}");
        }
        if *status == 404 {
            assert!(
                line["route"] == "" || line["route"] == "-",
                "unrouted route: {ctx}"
            );
            assert!(line["upstream"].is_null(), "{ctx}");
            assert_eq!(line["error"], "no_route", "{ctx}");
        } else {
            assert_eq!(line["route"], "app", "{ctx}");
            assert_eq!(line["upstream"], origin.addr.to_string().as_str(), "{ctx}");
            assert!(line["upstream_ms"].is_number(), "{ctx}");
            assert!(line.get("error").is_none_or(|e| e == ""), "{ctx}");
        }
    }
    let first = &lines
        .iter()
        .find(|l| l["request_id"] == ids[0].as_str())
        .expect("first");
    assert_eq!(first["user_agent"], "test-agent/1.0");
    assert_eq!(first["referer"], "http://ref.test/page");
    let post = &lines
        .iter()
        .find(|l| l["request_id"] == ids[1].as_str())
        .expect("post");
    assert!(post["bytes_in"].as_u64().unwrap_or(0) >= 5 + 40, "{post}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn sigterm_closes_idle_keep_alive_connections_and_finishes_in_flight_requests() {
    let origin = HttpOrigin::start(|r| match r.target.as_str() {
        "/slow" => Reply::ok("finished").delay(Duration::from_millis(800)),
        _ => Reply::ok("ok"),
    });
    let mut proxy = quick_http(&[origin.addr], &["--drain-timeout", "10s"]);
    let mut idle = RawConn::connect(proxy.listen);
    let r = idle.exchange(&get("/first", "d.test")).expect("first");
    assert_eq!(r.status, 200);

    let listen = proxy.listen;
    let busy = thread::spawn(move || {
        let mut c = RawConn::connect(listen);
        let r = c.exchange(&get("/slow", "d.test"));
        let closed = c.closed_within(Duration::from_secs(3));
        (r, closed)
    });
    let deadline = Instant::now() + Duration::from_secs(5);
    while !origin.requests().iter().any(|s| s.target == "/slow") {
        assert!(Instant::now() < deadline, "the slow request never arrived");
        thread::sleep(Duration::from_millis(5));
    }
    proxy.signal(libc::SIGTERM);
    let took = idle
        .closed_within(Duration::from_secs(1))
        .unwrap_or_else(|e| panic!("idle keep-alive connection after SIGTERM: {e}"));
    assert!(took < Duration::from_secs(1));
    let (r, closed) = busy.join().expect("busy client");
    let r = r.expect("in-flight response");
    assert_eq!((r.status, r.text().as_str()), (200, "finished"));
    closed.expect("closed after the in-flight response");
    let status = proxy.wait_exit(Duration::from_secs(8));
    assert!(status.success(), "{status}\n{}", proxy.logs());
}

/// A response completed after SIGTERM is the last on its connection, and says so: a client that
/// reuses the connection would otherwise race the close (core.rs: busy connections "answer it
/// with `connection: close`").
#[test]
fn a_response_finished_during_drain_announces_connection_close() {
    let origin = HttpOrigin::start(|_| Reply::ok("finished").delay(Duration::from_millis(600)));
    let mut proxy = quick_http(&[origin.addr], &["--drain-timeout", "10s"]);
    let mut c = RawConn::connect(proxy.listen);
    c.send(&get("/slow", "d.test")).expect("send");
    let deadline = Instant::now() + Duration::from_secs(5);
    while origin.request_count() == 0 {
        assert!(Instant::now() < deadline, "the request never arrived");
        thread::sleep(Duration::from_millis(5));
    }
    proxy.signal(libc::SIGTERM);
    let r = c.response().expect("in-flight response");
    assert_eq!((r.status, r.text().as_str()), (200, "finished"));
    let closed = c.closed_within(Duration::from_secs(3));
    let status = proxy.wait_exit(Duration::from_secs(8));
    assert!(status.success(), "{status}");
    closed.expect("closed after the response");
    assert!(
        r.has_token("connection", "close"),
        "the last response before the drain close lacks `connection: close`: {:?}",
        r.headers
    );
}

/// An origin may answer an upload before reading all of it (413, 401) and close: RFC 9112 §9.6
/// says a client sending a body SHOULD watch for such a response. The proxy should relay it, not
/// turn it into its own 502.
#[test]
fn an_early_upstream_response_to_an_upload_is_relayed() {
    let origin = Origin::start(|mut s| {
        let mut head = Vec::new();
        let mut buf = [0u8; 16 * 1024];
        while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 64 * 1024 {
            match std::io::Read::read(&mut s, &mut buf) {
                Ok(0) | Err(_) => return,
                Ok(n) => head.extend_from_slice(&buf[..n]),
            }
        }
        let _ = s.write_all(
            b"HTTP/1.1 413 Payload Too Large\r\nContent-Length: 4\r\nConnection: close\r\n\r\nbig!",
        );
        thread::sleep(Duration::from_millis(200));
    });
    let proxy = quick_http(&[origin.addr], &[]);
    let mut c = RawConn::connect(proxy.listen);
    let mut writer = c.wire.stream.try_clone().expect("clone");
    let upload = thread::spawn(move || {
        let _ = writer
            .write_all(b"POST /upload HTTP/1.1\r\nHost: u.test\r\nContent-Length: 8388608\r\n\r\n");
        let chunk = vec![b'a'; 64 * 1024];
        for _ in 0..128 {
            if writer.write_all(&chunk).is_err() {
                break;
            }
        }
    });
    let r = c.response().expect("a response");
    let _ = upload.join();
    assert_eq!(
        (r.status, r.text().as_str()),
        (413, "big!"),
        "the origin's early answer was replaced by {} {:?}",
        r.status,
        r.text()
    );
}

/// Bytes an upstream sends after its response ended (here a stray second response on a
/// keep-alive connection) must never be read as the answer to another client's request: the
/// connection is discarded before reuse, and every client gets its own answer.
#[test]
fn late_bytes_from_an_upstream_never_answer_another_request() {
    let origin = Origin::start(|mut s| {
        let mut wire = Wire::new(s.try_clone().expect("clone"));
        let mut n = 0;
        while let Ok(Some(head)) = wire.read_head() {
            n += 1;
            let target = String::from_utf8_lossy(&head)
                .split(' ')
                .nth(1)
                .unwrap_or("?")
                .to_string();
            let body = format!("for {target}");
            let reply = format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            );
            if s.write_all(reply.as_bytes()).is_err() {
                return;
            }
            if n == 1 {
                // A second, unsolicited response a moment later.
                thread::sleep(Duration::from_millis(100));
                let _ = s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nSECRET");
            }
        }
    });
    let proxy = quick_http(&[origin.addr], &[]);
    let first = http_get(proxy.listen, "/a").expect("first request");
    assert_eq!(first, (200, "for /a".to_string()));
    thread::sleep(Duration::from_millis(300));
    // Each new upstream connection misbehaves after its first response; the stray bytes have
    // arrived by the time the next request is sent (bytes racing a request in flight cannot be
    // told apart from its answer by any HTTP/1.1 client).
    for path in ["/b", "/c", "/d"] {
        let got = http_get(proxy.listen, path).expect("request");
        assert_eq!(
            got,
            (200, format!("for {path}")),
            "{path} got another answer"
        );
        thread::sleep(Duration::from_millis(300));
    }
}

/// A chunked response whose trailer section arrives in pieces is relayed whole, promptly.
#[test]
fn a_trailer_section_split_across_reads_is_relayed() {
    let origin = Origin::start(|mut s| {
        let mut wire = Wire::new(s.try_clone().expect("clone"));
        if let Ok(Some(_)) = wire.read_head() {
            let _ = s.write_all(
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\nX-Foo: b",
            );
            let _ = s.flush();
            thread::sleep(Duration::from_millis(300));
            let _ = s.write_all(b"ar\r\n\r");
            let _ = s.flush();
            thread::sleep(Duration::from_millis(100));
            let _ = s.write_all(b"\n");
            thread::sleep(Duration::from_millis(500));
        }
    });
    let proxy = quick_http(&[origin.addr], &[]);
    let mut c = RawConn::connect(proxy.listen);
    let started = Instant::now();
    c.send(b"GET /t HTTP/1.1\r\nHost: t.test\r\n\r\n")
        .expect("send");
    let r = c.response().expect("a response");
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "hello");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "the split trailer section stalled the response for {:?}",
        started.elapsed()
    );
}
