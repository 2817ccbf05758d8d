//! The HTTP/1.1 proxy on the wire: message framing both ways (big bodies, chunked, close-delimited,
//! HEAD/204/304, trailers, HTTP/1.0), pipelining, 100-continue, and every request the strict codec
//! refuses (docs/http1.md) — against the real binary and real origins on loopback.

mod common;

use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::http::*;
use common::*;

// ---------------------------------------------------------------------------------------------
// Big bodies, both drivers.

const BIG: usize = 32 << 20;
const CHUNKED_UPLOAD: usize = 8 << 20;

/// 32 MiB up with Content-Length, 8 MiB up chunked (streamed by hyper), 32 MiB down with
/// Content-Length, chunked and close-delimited: every checksum equal on both sides, and the one
/// client connection survives all of it.
fn big_bodies(driver: &str) {
    let down = Arc::new(payload(BIG, 42));
    let down_sum = checksum(&down);
    let d = down.clone();
    let origin = HttpOrigin::start(move |r| match r.target.as_str() {
        "/upload" => Reply::ok(format!("len={} sum={}", r.body_len, r.body_sum)),
        "/download/length" => Reply::new(200).shared_body(d.clone()),
        "/download/chunked" => Reply::new(200)
            .shared_body(d.clone())
            .chunked(&[("x-sum", &down_sum.to_string())]),
        "/download/close" => Reply::new(200).shared_body(d.clone()).close_delimited(),
        _ => Reply::ok("small"),
    });
    let proxy = quick_http(&[origin.addr], &["--io-driver", driver]);
    let addr = proxy.listen;
    let up = Arc::new(payload(BIG, 7));
    let up_chunked = Arc::new(payload(CHUNKED_UPLOAD, 8));
    let (u1, u2) = (up.clone(), up_chunked.clone());
    let results = block_on(Duration::from_secs(50), async move {
        let mut s = hyper_connect(addr).await;
        let mut out = Vec::new();
        let mut req = request(
            "POST",
            "/upload",
            "big.test",
            full(Bytes::from(u1.to_vec())),
        );
        req.headers_mut()
            .insert("content-length", BIG.to_string().parse().expect("value"));
        out.push(("upload length", send(&mut s, req).await));
        let req = request("POST", "/upload", "big.test", StreamingBody::boxed_from(u2));
        out.push(("upload chunked", send(&mut s, req).await));
        for path in [
            "/download/length",
            "/download/chunked",
            "/download/close",
            "/after",
        ] {
            let req = request("GET", path, "big.test", empty());
            out.push((path, send(&mut s, req).await));
        }
        out
    });
    let mut it = results.into_iter();
    let mut next = |what: &str| {
        let (name, r) = it.next().expect("a result");
        assert_eq!(name, what);
        r.unwrap_or_else(|e| panic!("{driver} {what}: {e}\n{}", proxy.logs()))
    };

    let (status, _, body) = next("upload length");
    assert_eq!(status, 200);
    assert_eq!(body, format!("len={BIG} sum={}", checksum(&up)));
    let (status, _, body) = next("upload chunked");
    assert_eq!(status, 200);
    assert_eq!(
        body,
        format!("len={CHUNKED_UPLOAD} sum={}", checksum(&up_chunked))
    );
    let (status, h, body) = next("/download/length");
    assert_eq!(status, 200);
    assert_eq!(h["content-length"], BIG.to_string());
    assert_eq!(body.len(), BIG);
    assert_eq!(checksum(&body), down_sum, "{driver}: length download");
    for what in ["/download/chunked", "/download/close"] {
        let (status, h, body) = next(what);
        assert_eq!(status, 200, "{what}");
        assert_eq!(h["transfer-encoding"], "chunked", "{what}: {h:?}");
        assert!(h.get("content-length").is_none(), "{what}: {h:?}");
        assert_eq!(body.len(), BIG, "{driver} {what}");
        assert_eq!(checksum(&body), down_sum, "{driver} {what}");
    }
    // The close-delimited body was re-framed, so the client connection is still usable.
    let (status, _, body) = next("/after");
    assert_eq!((status, &body[..]), (200, &b"small"[..]));

    let seen = origin.requests();
    assert_eq!(seen.len(), 6);
    assert_eq!(seen[0].header("content-length"), Some("33554432"));
    assert!(seen[0].header("transfer-encoding").is_none());
    assert!(seen[0].complete && seen[0].body_len == BIG as u64);
    assert_eq!(seen[1].header("transfer-encoding"), Some("chunked"));
    assert!(seen[1].header("content-length").is_none());
    // One upstream connection until the close-delimited response ended it.
    let conns: Vec<usize> = seen.iter().map(|s| s.conn).collect();
    assert_eq!(conns, [0, 0, 0, 0, 0, 1], "{driver}");
    assert_eq!(origin.connections(), 2);
}

#[test]
fn big_bodies_keep_their_checksums_uring() {
    big_bodies("uring");
}

#[test]
fn big_bodies_keep_their_checksums_epoll() {
    big_bodies("epoll");
}

// ---------------------------------------------------------------------------------------------
// Response framing per client version; trailers; HEAD/204/304; interim responses.

fn framing_origin() -> HttpOrigin {
    HttpOrigin::start(|r| {
        let path = r.target.as_str();
        match path {
            "/chunked" => Reply::new(200)
                .body("chunky ".repeat(5000))
                .header("x-kind", "chunked")
                .chunked(&[("x-checksum", "abc123"), ("x-more", "2")]),
            "/chunked-plain" => Reply::new(200).body("no trailers").chunked(&[]),
            "/close" => Reply::new(200).body(payload(100_000, 3)).close_delimited(),
            "/head" => Reply::ok("").header("content-length", "1234"),
            "/204" => Reply::new(204).header("x-kind", "204"),
            "/304" => Reply::new(304).header("etag", "\"v1\""),
            "/early" => Reply::ok("final").interim(103),
            _ => Reply::ok(format!("{} {}", r.method, r.target)),
        }
    })
}

#[test]
fn chunked_and_close_delimited_responses_are_reframed_for_http11_clients() {
    let origin = framing_origin();
    let proxy = quick_http(&[origin.addr], &[]);
    let mut c = RawConn::connect(proxy.listen);

    let r = c.exchange(&get("/chunked", "f.test")).expect("chunked");
    assert_eq!(r.status, 200);
    assert_eq!(r.framing, "chunked");
    assert_eq!(r.text(), "chunky ".repeat(5000));
    assert_eq!(r.header("x-kind"), Some("chunked"));
    assert_eq!(
        find(&r.trailers, "x-checksum"),
        Some("abc123"),
        "trailers: {:?}",
        r.trailers
    );
    assert_eq!(find(&r.trailers, "x-more"), Some("2"));

    let r = c
        .exchange(&get("/chunked-plain", "f.test"))
        .expect("chunked");
    assert_eq!((r.status, r.framing), (200, "chunked"));
    assert_eq!(r.text(), "no trailers");
    assert!(r.trailers.is_empty(), "{:?}", r.trailers);

    let r = c
        .exchange(&get("/close", "f.test"))
        .expect("close-delimited");
    assert_eq!(r.status, 200);
    assert_eq!(r.framing, "chunked", "{:?}", r.headers);
    assert!(!r.has_token("connection", "close"), "{:?}", r.headers);
    assert_eq!(r.body, payload(100_000, 3));

    let r = c
        .exchange(&get("/plain", "f.test"))
        .expect("after reframing");
    assert_eq!((r.status, r.framing), (200, "length"));
    assert_eq!(r.text(), "GET /plain");
    assert!(c.silent_for(Duration::from_millis(100)), "stray bytes");
}

#[test]
fn http10_clients_get_close_delimited_bodies_and_keep_alive_when_asked() {
    let origin = framing_origin();
    let proxy = quick_http(&[origin.addr], &[]);

    // Chunked upstream, HTTP/1.0 client: no chunked framing, the body ends with the connection.
    let mut c = RawConn::connect(proxy.listen);
    let r = c
        .exchange(b"GET /chunked HTTP/1.0\r\nHost: f.test\r\n\r\n")
        .expect("1.0 chunked");
    assert_eq!(r.status, 200);
    assert_eq!(r.framing, "close", "{:?}", r.headers);
    assert!(r.header("transfer-encoding").is_none());
    assert_eq!(r.text(), "chunky ".repeat(5000));
    let seen = origin.last();
    assert_eq!(seen.version, 1, "forwarded as HTTP/1.1");

    // HTTP/1.0 keep-alive with a Content-Length response stays open, and says so.
    let mut c = RawConn::connect(proxy.listen);
    for i in 0..3 {
        let r = c
            .exchange(
                format!("GET /ka{i} HTTP/1.0\r\nHost: f.test\r\nConnection: keep-alive\r\n\r\n")
                    .as_bytes(),
            )
            .expect("1.0 keep-alive");
        assert_eq!(r.status, 200);
        assert_eq!(r.text(), format!("GET /ka{i}"));
        assert!(r.has_token("connection", "keep-alive"), "{:?}", r.headers);
    }
    // ...until a response that can only be close-delimited for it.
    let r = c
        .exchange(b"GET /close HTTP/1.0\r\nHost: f.test\r\nConnection: keep-alive\r\n\r\n")
        .expect("1.0 close-delimited");
    assert_eq!(r.framing, "close");
    assert!(!r.has_token("connection", "keep-alive"), "{:?}", r.headers);
    assert_eq!(r.body, payload(100_000, 3));

    // HTTP/1.0 without keep-alive: closed after the response.
    let mut c = RawConn::connect(proxy.listen);
    let r = c
        .exchange(b"GET /plain HTTP/1.0\r\nHost: f.test\r\n\r\n")
        .expect("1.0");
    assert_eq!(r.status, 200);
    c.closed_within(Duration::from_secs(3))
        .expect("HTTP/1.0 without keep-alive is closed");
}

#[test]
fn head_204_304_and_interim_responses_carry_no_body_and_keep_the_connection() {
    let origin = framing_origin();
    let proxy = quick_http(&[origin.addr], &[]);
    let mut c = RawConn::connect(proxy.listen);

    let r = c
        .exchange(b"HEAD /head HTTP/1.1\r\nHost: f.test\r\n\r\n")
        .expect("HEAD");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-length"), Some("1234"));
    assert!(c.silent_for(Duration::from_millis(150)), "HEAD body bytes");

    let r = c.exchange(&get("/204", "f.test")).expect("204");
    assert_eq!(r.status, 204);
    assert_eq!(r.header("x-kind"), Some("204"));
    assert!(r.header("transfer-encoding").is_none(), "{:?}", r.headers);
    assert!(c.silent_for(Duration::from_millis(150)), "204 body bytes");

    let r = c.exchange(&get("/304", "f.test")).expect("304");
    assert_eq!(r.status, 304);
    assert_eq!(r.header("etag"), Some("\"v1\""));
    assert!(r.header("transfer-encoding").is_none(), "{:?}", r.headers);
    assert!(c.silent_for(Duration::from_millis(150)), "304 body bytes");

    // A 103 before the final response: whatever the proxy does with it, the final response
    // arrives intact and the connection stays in sync.
    c.send(&get("/early", "f.test")).expect("send");
    let (r, interim) = c.final_response(false).expect("after 103");
    assert!(interim <= 1);
    assert_eq!((r.status, r.text().as_str()), (200, "final"));

    let r = c.exchange(&get("/after", "f.test")).expect("after");
    assert_eq!((r.status, r.text().as_str()), (200, "GET /after"));
    assert_eq!(origin.connections(), 1);
    assert!(origin.requests().iter().all(|s| s.conn == 0));
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    let origin = HttpOrigin::echo();
    let proxy = quick_http(&[origin.addr], &[]);
    let mut c = RawConn::connect(proxy.listen);
    c.send(
        b"GET /first HTTP/1.1\r\nHost: p.test\r\n\r\n\
          POST /second HTTP/1.1\r\nHost: p.test\r\nContent-Length: 5\r\n\r\nhello\
          PUT /third HTTP/1.1\r\nHost: p.test\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n\
          GET /fourth HTTP/1.1\r\nHost: p.test\r\nConnection: close\r\n\r\n",
    )
    .expect("one write");
    let expected = [
        format!("GET /first len=0 sum={}", checksum(b"")),
        format!("POST /second len=5 sum={}", checksum(b"hello")),
        format!("PUT /third len=3 sum={}", checksum(b"abc")),
        format!("GET /fourth len=0 sum={}", checksum(b"")),
    ];
    for (i, want) in expected.iter().enumerate() {
        let r = c
            .response()
            .unwrap_or_else(|e| panic!("response {i}: {e}\n{}", proxy.logs()));
        assert_eq!(r.status, 200, "response {i}");
        assert_eq!(&r.text(), want, "response {i} out of order");
        assert_eq!(r.has_token("connection", "close"), i == 3, "response {i}");
    }
    c.closed_within(Duration::from_secs(3))
        .expect("closed after Connection: close");
    let seen: Vec<String> = origin.requests().iter().map(|s| s.target.clone()).collect();
    assert_eq!(seen, ["/first", "/second", "/third", "/fourth"]);
}

#[test]
fn expect_100_continue_is_answered_by_the_proxy() {
    let origin = HttpOrigin::echo();
    let proxy = quick_http(&[origin.addr], &[]);

    // curl-style: send the head, wait for 100 Continue, then the body.
    let mut c = RawConn::connect(proxy.listen);
    c.send(
        b"PUT /up HTTP/1.1\r\nHost: c.test\r\nContent-Length: 11\r\nExpect: 100-continue\r\n\r\n",
    )
    .expect("head");
    let interim = c.read_response(false).expect("100 Continue");
    assert_eq!((interim.status, interim.version), (100, 1), "{interim:?}");
    assert!(interim.body.is_empty());
    c.send(b"hello world").expect("body");
    let r = c.response().expect("final");
    assert_eq!(r.status, 200);
    assert_eq!(
        r.text(),
        format!("PUT /up len=11 sum={}", checksum(b"hello world"))
    );
    let seen = origin.last();
    assert!(seen.header("expect").is_none(), "{:?}", seen.headers);
    assert_eq!(seen.body, b"hello world");

    // A client that sends the body right away gets the final response (no stray 100 after it).
    let mut c = RawConn::connect(proxy.listen);
    c.send(b"POST /eager HTTP/1.1\r\nHost: c.test\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\nabc")
        .expect("send");
    let (r, interim) = c.final_response(false).expect("final");
    assert!(interim <= 1);
    assert_eq!(r.status, 200);
    c.send(&get("/next", "c.test")).expect("send");
    let r2 = c.read_response(false).expect("next");
    assert_eq!(
        r2.status, 200,
        "a stray interim response after the final one"
    );
    assert_eq!(r2.text(), format!("GET /next len=0 sum={}", checksum(b"")));

    // No upstream: no 100 Continue, a 502 instead, and the unread body closes the connection.
    let dead = quick_http(&[dead_addr()], &[]);
    let mut c = RawConn::connect(dead.listen);
    c.send(
        b"PUT /up HTTP/1.1\r\nHost: c.test\r\nContent-Length: 11\r\nExpect: 100-continue\r\n\r\n",
    )
    .expect("head");
    let r = c.read_response(false).expect("502");
    check_proxy_error(&r, 502).unwrap();
    assert!(r.has_token("connection", "close"), "{:?}", r.headers);
}

// ---------------------------------------------------------------------------------------------
// Rejections: one case per rule of docs/http1.md.

struct Case {
    name: &'static str,
    request: Vec<u8>,
    status: u16,
    /// The head is valid and forwarded; the error is in the (streamed) chunked body.
    in_body: bool,
}

fn case(name: &'static str, request: &str, status: u16) -> Case {
    Case {
        name,
        request: request.as_bytes().to_vec(),
        status,
        in_body: false,
    }
}

fn body_case(name: &'static str, body: &str) -> Case {
    Case {
        name,
        request: format!(
            "POST /r/{name} HTTP/1.1\r\nHost: r.test\r\nTransfer-Encoding: chunked\r\n\r\n{body}"
        )
        .into_bytes(),
        status: 400,
        in_body: true,
    }
}

fn rejection_cases() -> Vec<Case> {
    let post = |name: &str, fields: &str| {
        format!("POST /r/{name} HTTP/1.1\r\nHost: r.test\r\n{fields}\r\nhello")
    };
    let get_with = |name: &str, fields: &str| format!("GET /r/{name} HTTP/1.1\r\n{fields}\r\n");
    vec![
        case(
            "content_length_with_transfer_encoding",
            &post(
                "cl_te",
                "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n",
            ),
            400,
        ),
        case(
            "duplicate_content_length",
            &post("dup", "Content-Length: 5\r\nContent-Length: 5\r\n"),
            400,
        ),
        case(
            "conflicting_content_length",
            &post("conflict", "Content-Length: 5\r\nContent-Length: 6\r\n"),
            400,
        ),
        case(
            "content_length_list",
            &post("list", "Content-Length: 5, 5\r\n"),
            400,
        ),
        case(
            "content_length_with_sign",
            &post("sign", "Content-Length: +5\r\n"),
            400,
        ),
        case(
            "content_length_with_space_inside",
            &post("space", "Content-Length: 5 5\r\n"),
            400,
        ),
        case(
            "content_length_not_digits",
            &post("hex", "Content-Length: 0x5\r\n"),
            400,
        ),
        case(
            "content_length_overflow",
            &post("overflow", "Content-Length: 99999999999999999999999\r\n"),
            400,
        ),
        case(
            "transfer_encoding_chunked_not_final",
            &post("te1", "Transfer-Encoding: chunked, gzip\r\n"),
            400,
        ),
        case(
            "transfer_encoding_gzip_only",
            &post("te2", "Transfer-Encoding: gzip\r\n"),
            400,
        ),
        case(
            "transfer_encoding_chunked_twice",
            &post("te3", "Transfer-Encoding: chunked, chunked\r\n"),
            400,
        ),
        case(
            "transfer_encoding_unsupported_coding",
            &post("te4", "Transfer-Encoding: gzip, chunked\r\n"),
            501,
        ),
        case(
            "transfer_encoding_in_http10",
            "POST /r/te10 HTTP/1.0\r\nHost: r.test\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
            400,
        ),
        body_case("chunk_size_not_hex", "zz\r\nhello\r\n0\r\n\r\n"),
        body_case(
            "chunk_size_overflow",
            "11111111111111111\r\nhello\r\n0\r\n\r\n",
        ),
        body_case("chunk_data_without_crlf", "5\r\nhelloXX0\r\n\r\n"),
        body_case("chunk_line_bare_lf", "5\nhello\r\n0\r\n\r\n"),
        body_case(
            "chunk_forbidden_trailer",
            "5\r\nhello\r\n0\r\nContent-Length: 5\r\n\r\n",
        ),
        case(
            "obs_fold",
            &get_with("fold", "Host: r.test\r\nX-A: one\r\n two\r\n"),
            400,
        ),
        case(
            "space_before_colon",
            &get_with("colon", "Host: r.test\r\nX-A : one\r\n"),
            400,
        ),
        case(
            "whitespace_after_start_line",
            &get_with("ws", " Host: r.test\r\n"),
            400,
        ),
        case(
            "nul_in_value",
            &get_with("nul", "Host: r.test\r\nX-A: a\0b\r\n"),
            400,
        ),
        case(
            "bare_cr_in_value",
            &get_with("cr", "Host: r.test\r\nX-A: a\rb\r\n"),
            400,
        ),
        case(
            "invalid_field_name",
            &get_with("name", "Host: r.test\r\nX(A): 1\r\n"),
            400,
        ),
        case("missing_host_http11", &get_with("nohost", ""), 400),
        case(
            "two_hosts",
            &get_with("twohosts", "Host: r.test\r\nHost: r.test\r\n"),
            400,
        ),
        case("invalid_host", &get_with("badhost", "Host: a b\r\n"), 400),
        case(
            "host_with_userinfo",
            &get_with("userinfo", "Host: user@r.test\r\n"),
            400,
        ),
        case(
            "connection_names_host",
            &get_with("connhost", "Host: r.test\r\nConnection: host\r\n"),
            400,
        ),
        case(
            "unsupported_expectation",
            &get_with("expect", "Host: r.test\r\nExpect: teapot\r\n"),
            417,
        ),
        case("http09_request_line", "GET /r/http09\r\n\r\n", 400),
        case(
            "http2_version",
            "GET /r/h2 HTTP/2.0\r\nHost: r.test\r\n\r\n",
            505,
        ),
        case(
            "http12_version",
            "GET /r/h12 HTTP/1.2\r\nHost: r.test\r\n\r\n",
            505,
        ),
        case(
            "lowercase_version",
            "GET /r/lower http/1.1\r\nHost: r.test\r\n\r\n",
            400,
        ),
        case(
            "double_space_in_request_line",
            "GET  /r/sp HTTP/1.1\r\nHost: r.test\r\n\r\n",
            400,
        ),
        case(
            "asterisk_form_with_get",
            "GET * HTTP/1.1\r\nHost: r.test\r\n\r\n",
            400,
        ),
        case(
            "fragment_in_target",
            "GET /r/frag#x HTTP/1.1\r\nHost: r.test\r\n\r\n",
            400,
        ),
        case(
            "absolute_form_host_mismatch",
            "GET http://other.test/r/abs HTTP/1.1\r\nHost: r.test\r\n\r\n",
            400,
        ),
        case(
            "bare_lf_line_endings",
            "GET /r/lf HTTP/1.1\nHost: r.test\n\n",
            400,
        ),
        case(
            "tls_client_hello",
            "\u{16}\u{3}\u{1}\u{2}\u{0}\u{1}\u{0}\u{1}\u{fc}\u{3}\u{3}",
            400,
        ),
    ]
}

/// Runs one rejection case; `Err` says what was wrong.
fn check_rejection(proxy: &Proxy, origin: &HttpOrigin, case: &Case) -> Result<(), String> {
    let before = origin.request_count();
    let mut c = RawConn::connect(proxy.listen);
    c.send(&case.request).map_err(|e| format!("send: {e}"))?;
    let r = c.response().map_err(|e| format!("no response: {e}"))?;
    check_proxy_error(&r, case.status)?;
    if !r.has_token("connection", "close") {
        return Err(format!("no `connection: close`: {:?}", r.headers));
    }
    c.closed_within(Duration::from_secs(3))
        .map_err(|e| format!("connection not closed after the error: {e}"))?;
    if !case.in_body {
        let after = origin.requests();
        if after.len() != before {
            return Err(format!("the origin received {:?}", &after[before..]));
        }
        return Ok(());
    }
    // The head may have been forwarded before the body went bad; the origin must then see the
    // body cut off (its connection closed), never a complete request.
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let fresh: Vec<Seen> = origin.requests().split_off(before);
        if let Some(s) = fresh.iter().find(|s| s.complete) {
            return Err(format!(
                "the origin received a complete request: {} {} body {:?}",
                s.method,
                s.target,
                s.body_text()
            ));
        }
        if fresh.iter().all(|s| s.aborted) {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!(
                "the origin is still waiting for the rest of the body (upstream connection not \
                 closed): {fresh:?}"
            ));
        }
        thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn malformed_requests_are_refused_and_never_reach_the_origin() {
    let origin = HttpOrigin::echo();
    let proxy = quick_http(&[origin.addr], &[]);

    // Controls: valid requests of the same shapes pass.
    let ok = one_request(proxy.listen, &get("/r/control", "r.test")).expect("control");
    assert_eq!(ok.status, 200, "{}", proxy.logs());
    let ok = one_request(
        proxy.listen,
        b"GET http://r.test/r/absolute?x=1 HTTP/1.1\r\nHost: r.test\r\n\r\n",
    )
    .expect("absolute-form");
    assert_eq!(ok.status, 200);
    let seen = origin.last();
    assert_eq!(seen.target, "/r/absolute?x=1");
    assert_eq!(seen.header("host"), Some("r.test"));
    let ok = one_request(
        proxy.listen,
        b"POST /r/chunked HTTP/1.1\r\nHost: r.test\r\nTransfer-Encoding: chunked\r\n\r\n\
          5;ext=1\r\nhello\r\n0\r\nX-T: 1\r\n\r\n",
    )
    .expect("valid chunked");
    assert_eq!(ok.status, 200);
    let seen = origin.last();
    assert_eq!(seen.body, b"hello");
    assert_eq!(
        find(&seen.trailers, "x-t"),
        Some("1"),
        "request trailers forwarded"
    );
    let controls = origin.request_count();

    let cases = rejection_cases();
    let mut failures = Vec::new();
    for case in &cases {
        if let Err(e) = check_rejection(&proxy, &origin, case) {
            failures.push(format!("  {}: {e}", case.name));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} rejection cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
    assert!(origin.requests()[controls..].iter().all(|s| !s.complete));

    let head_errors = cases.iter().filter(|c| !c.in_body).count() as f64;
    let body_errors = cases.iter().filter(|c| c.in_body).count() as f64;
    assert_metrics(
        &proxy,
        "rejections",
        &[
            (
                "strait_http_client_errors_total",
                &[("listener", "main"), ("route", "-")],
                head_errors,
            ),
            (
                "strait_http_client_errors_total",
                &[("listener", "main"), ("route", "default")],
                body_errors,
            ),
            (
                "strait_http_requests_total",
                &[("listener", "main"), ("route", "-")],
                head_errors,
            ),
        ],
    );
}

// ---------------------------------------------------------------------------------------------
// Limits.

#[test]
fn limits_answer_414_431_and_413() {
    let origin = HttpOrigin::echo();
    let proxy = config_proxy(
        &format!(
            r#"
[[cluster]]
name = "a"
endpoints = [{{ address = "{}" }}]

[[listener]]
name = "web"
address = "LISTEN"
protocol = "http"
max_request_line = "1KiB"
max_header_size = "4KiB"
max_headers = 10

[[listener.route]]
name = "small"
path_prefix = "/small"
cluster = "a"
max_body_size = "1KiB"

[[listener.route]]
name = "rest"
path_prefix = "/"
cluster = "a"
"#,
            origin.addr
        ),
        &[],
    );
    let headers = |n: usize| -> String { (0..n).map(|i| format!("X-H{i}: {i}\r\n")).collect() };
    let refused: Vec<(&str, String, u16)> = vec![
        (
            "request_line_over_limit",
            format!("GET /{} HTTP/1.1\r\nHost: l.test\r\n\r\n", "a".repeat(1100)),
            414,
        ),
        (
            "one_huge_header",
            format!(
                "GET /big HTTP/1.1\r\nHost: l.test\r\nX-Big: {}\r\n\r\n",
                "b".repeat(5000)
            ),
            431,
        ),
        (
            "too_many_headers",
            format!("GET /many HTTP/1.1\r\nHost: l.test\r\n{}\r\n", headers(10)),
            431,
        ),
        (
            "content_length_over_route_limit",
            "POST /small/x HTTP/1.1\r\nHost: l.test\r\nContent-Length: 1025\r\n\r\n".into(),
            413,
        ),
    ];
    let mut failures = Vec::new();
    for (name, request, status) in &refused {
        let before = origin.request_count();
        let mut c = RawConn::connect(proxy.listen);
        let outcome = c
            .send(request.as_bytes())
            .map_err(|e| format!("send: {e}"))
            .and_then(|_| c.response().map_err(|e| format!("no response: {e}")))
            .and_then(|r| {
                check_proxy_error(&r, *status)?;
                if !r.has_token("connection", "close") {
                    return Err(format!("no connection: close: {:?}", r.headers));
                }
                Ok(())
            })
            .and_then(|_| {
                c.closed_within(Duration::from_secs(3))
                    .map(drop)
                    .map_err(|e| format!("not closed: {e}"))
            })
            .and_then(|_| match origin.request_count() - before {
                0 => Ok(()),
                n => Err(format!("the origin received {n} request(s)")),
            });
        if let Err(e) = outcome {
            failures.push(format!("  {name}: {e}"));
        }
    }
    assert!(
        failures.is_empty(),
        "limit cases failed:\n{}",
        failures.join("\n")
    );

    // At the limits: accepted.
    let at_limits: Vec<(&str, Vec<u8>)> = vec![
        (
            "request_line_at_limit",
            format!("GET /{} HTTP/1.1\r\nHost: l.test\r\n\r\n", "a".repeat(1000)).into_bytes(),
        ),
        (
            "ten_headers",
            format!("GET /ten HTTP/1.1\r\nHost: l.test\r\n{}\r\n", headers(9)).into_bytes(),
        ),
        ("body_at_route_limit", {
            let mut r =
                b"POST /small/y HTTP/1.1\r\nHost: l.test\r\nContent-Length: 1024\r\n\r\n".to_vec();
            r.extend(payload(1024, 1));
            r
        }),
        ("big_body_on_another_route", {
            let mut r =
                b"POST /other HTTP/1.1\r\nHost: l.test\r\nContent-Length: 5000\r\n\r\n".to_vec();
            r.extend(payload(5000, 2));
            r
        }),
    ];
    for (name, request) in &at_limits {
        let r = one_request(proxy.listen, request).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(r.status, 200, "{name}: {}", r.text());
    }
    assert_eq!(origin.last().body_len, 5000);

    // A chunked body crossing the route's limit: 413, and the origin never gets all of it.
    let before = origin.request_count();
    let mut c = RawConn::connect(proxy.listen);
    let mut req =
        b"POST /small/z HTTP/1.1\r\nHost: l.test\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    for _ in 0..2 {
        req.extend_from_slice(b"258\r\n");
        req.extend(payload(600, 5));
        req.extend_from_slice(b"\r\n");
    }
    req.extend_from_slice(b"0\r\n\r\n");
    c.send(&req).expect("send");
    let r = c.response().expect("413");
    check_proxy_error(&r, 413).unwrap();
    assert!(r.has_token("connection", "close"));
    c.closed_within(Duration::from_secs(3)).expect("closed");
    thread::sleep(Duration::from_millis(200));
    let fresh = origin.requests().split_off(before);
    assert!(
        fresh.iter().all(|s| !s.complete && s.body_len <= 1024),
        "{fresh:?}"
    );

    // Over the limit with Expect: refused before the body is asked for.
    let before = origin.request_count();
    let mut c = RawConn::connect(proxy.listen);
    c.send(
        b"PUT /small/e HTTP/1.1\r\nHost: l.test\r\nContent-Length: 4096\r\n\
          Expect: 100-continue\r\n\r\n",
    )
    .expect("send");
    let r = c.read_response(false).expect("413 without 100");
    check_proxy_error(&r, 413).unwrap();
    assert_eq!(origin.request_count(), before);

    assert_metrics(
        &proxy,
        "limits",
        &[
            (
                "strait_http_client_errors_total",
                &[("listener", "web"), ("route", "-")],
                3.0,
            ),
            (
                "strait_http_client_errors_total",
                &[("listener", "web"), ("route", "small")],
                3.0,
            ),
        ],
    );
}

// ---------------------------------------------------------------------------------------------
// Upgrade and CONNECT: h2c is not forwarded, an unrequested 101 is refused. (WebSocket upgrades
// are tunnelled: tests/websocket.rs.)

#[test]
fn upgrades_are_not_forwarded_and_connect_is_refused() {
    let origin = HttpOrigin::start(|r| {
        match r.target.as_str() {
        "/ws-101" => Reply::raw(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
        ),
        _ => Reply::ok(format!("{} {}", r.method, r.target)),
    }
    });
    let proxy = quick_http(&[origin.addr], &[]);

    // An h2c upgrade is dropped (hop-by-hop): the origin sees a plain request.
    let h2c = "GET /h2c-200 HTTP/1.1\r\nHost: u.test\r\nConnection: Upgrade, HTTP2-Settings\r\n\
               Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\n\r\n";
    let r = one_request(proxy.listen, h2c.as_bytes()).expect("upgrade ignored");
    assert_eq!((r.status, r.text().as_str()), (200, "GET /h2c-200"));
    let seen = origin.last();
    assert!(seen.header("upgrade").is_none(), "{:?}", seen.headers);
    assert!(seen.header("connection").is_none(), "{:?}", seen.headers);

    // A 101 to a request that did not ask to upgrade is one nobody asked for: 502.
    let r = one_request(proxy.listen, &get("/ws-101", "u.test")).expect("101");
    check_proxy_error(&r, 502).unwrap();

    // CONNECT: refused without reaching the origin.
    let before = origin.request_count();
    let mut c = RawConn::connect(proxy.listen);
    let r = c
        .exchange(b"CONNECT u.test:443 HTTP/1.1\r\nHost: u.test:443\r\n\r\n")
        .expect("CONNECT");
    check_proxy_error(&r, 405).unwrap();
    assert!(r.has_token("connection", "close"), "{:?}", r.headers);
    c.closed_within(Duration::from_secs(3)).expect("closed");
    assert_eq!(origin.request_count(), before);
}
