//! The HTTP proxy's request routing and header handling against the real binary: host, path,
//! method and header precedence, rewrites, weighted splits, fixed responses and redirects;
//! X-Forwarded-*, X-Request-ID, Via, hop-by-hop removal and route header edits.

mod common;

use std::time::Duration;

use common::http::*;
use common::*;

// ---------------------------------------------------------------------------------------------
// Routing.

/// Answers `<letter>|<x-route seen>|<target>`.
fn labelled_origin(letter: &'static str) -> HttpOrigin {
    HttpOrigin::start(move |r| {
        Reply::ok(format!(
            "{letter}|{}|{}",
            r.header("x-route").unwrap_or("-"),
            r.target
        ))
    })
}

fn routing_config(a: &HttpOrigin, b: &HttpOrigin) -> String {
    let route = |name: &str, matcher: &str, cluster: &str| {
        format!(
            "[[listener.route]]\nname = \"{name}\"\n{matcher}\ncluster = \"{cluster}\"\n\
             request_headers = {{ set = {{ \"x-route\" = \"{name}\" }} }}\n\n"
        )
    };
    let mut s = format!(
        "[[cluster]]\nname = \"a\"\nendpoints = [{{ address = \"{}\" }}]\n\n\
         [[cluster]]\nname = \"b\"\nendpoints = [{{ address = \"{}\" }}]\n\n\
         [[listener]]\nname = \"web\"\naddress = \"LISTEN\"\nprotocol = \"http\"\n\n",
        a.addr, b.addr
    );
    // File order is deliberately the opposite of precedence where precedence is tested.
    s += &route("p-short", "path_prefix = \"/p\"", "a");
    s += &route("p-long", "path_prefix = \"/p/long\"", "b");
    s += &route("exact-prefix", "path_prefix = \"/exact\"", "a");
    s += &route("exact", "path = \"/exact\"", "b");
    s += &route("any-host-wild", "path_prefix = \"/wild\"", "a");
    s += &route("wild", "host = \"*.example.com\"\npath_prefix = \"/\"", "b");
    s += &route(
        "wild-deep",
        "host = \"*.deep.example.com\"\npath_prefix = \"/\"",
        "a",
    );
    s += &route(
        "www",
        "host = \"www.example.com\"\npath_prefix = \"/\"",
        "a",
    );
    s += &route(
        "m-post",
        "host = \"m.test\"\npath_prefix = \"/\"\nmethods = [\"POST\", \"PUT\"]",
        "b",
    );
    s += &route(
        "m-canary",
        "host = \"m.test\"\npath_prefix = \"/\"\nheaders = [{ name = \"x-canary\", value = \"1\" }]",
        "a",
    );
    s += &route("ft-only", "host = \"ft.test\"\npath = \"/only\"", "b");
    s += &route(
        "strip",
        "path_prefix = \"/strip\"\nstrip_prefix = \"/strip\"",
        "a",
    );
    s += &route(
        "rewrite",
        "path_prefix = \"/old\"\nrewrite_prefix = \"/new\"",
        "b",
    );
    s += "[[listener.route]]\nname = \"split\"\npath_prefix = \"/split\"\n\
          clusters = [{ cluster = \"a\", weight = 3 }, { cluster = \"b\", weight = 1 }]\n\n\
          [[listener.route]]\nname = \"fixed\"\npath = \"/fixed\"\n\
          respond = { status = 403, body = \"go away\\n\", content_type = \"text/x-test\" }\n\n\
          [[listener.route]]\nname = \"redir\"\npath = \"/redir\"\n\
          redirect = { status = 301, location = \"https://example.org/new\" }\n";
    s
}

#[test]
fn routes_follow_host_path_method_and_header_precedence() {
    let a = labelled_origin("A");
    let b = labelled_origin("B");
    let proxy = config_proxy(&routing_config(&a, &b), &[]);
    // (host, request line start, extra fields, expected body or "404")
    let cases: &[(&str, &str, &str, &str)] = &[
        ("www.example.com", "GET /exact", "", "A|www|/exact"),
        ("WWW.Example.COM:8080", "GET /y", "", "A|www|/y"),
        ("a.example.com", "GET /x", "", "B|wild|/x"),
        ("x.deep.example.com", "GET /z", "", "A|wild-deep|/z"),
        ("deep.example.com", "GET /z", "", "B|wild|/z"),
        ("example.com", "GET /p/1", "", "A|p-short|/p/1"),
        ("other.test", "GET /exact", "", "B|exact|/exact"),
        ("other.test", "GET /exact?q=1", "", "B|exact|/exact?q=1"),
        (
            "other.test",
            "GET /exact/sub",
            "",
            "A|exact-prefix|/exact/sub",
        ),
        ("other.test", "GET /p/long/x", "", "B|p-long|/p/long/x"),
        ("other.test", "GET /p/long", "", "B|p-long|/p/long"),
        ("other.test", "GET /p/longer", "", "A|p-short|/p/longer"),
        ("other.test", "GET /plong", "", "404"),
        ("other.test", "GET /nothing", "", "404"),
        ("m.test", "POST /", "Content-Length: 0\r\n", "B|m-post|/"),
        ("m.test", "PUT /", "Content-Length: 0\r\n", "B|m-post|/"),
        ("m.test", "GET /", "X-Canary: 1\r\n", "A|m-canary|/"),
        ("m.test", "GET /", "X-Canary: 2\r\n", "404"),
        ("m.test", "GET /", "", "404"),
        ("m.test", "GET /p/q", "", "A|p-short|/p/q"),
        ("ft.test", "GET /only", "", "B|ft-only|/only"),
        ("ft.test", "GET /exact", "", "B|exact|/exact"),
        ("a.example.com", "GET /wild", "", "B|wild|/wild"),
        ("other.test", "GET /wild", "", "A|any-host-wild|/wild"),
        ("other.test", "GET /strip/a/b?q=1", "", "A|strip|/a/b?q=1"),
        ("other.test", "GET /strip?q=1", "", "A|strip|/?q=1"),
        ("other.test", "GET /old/x?y=2", "", "B|rewrite|/new/x?y=2"),
        ("other.test", "GET /old", "", "B|rewrite|/new"),
    ];
    let mut c = RawConn::connect(proxy.listen);
    let mut failures = Vec::new();
    let mut not_found = 0;
    for (host, line, fields, want) in cases {
        let req = format!("{line} HTTP/1.1\r\nHost: {host}\r\n{fields}\r\n");
        let got = match c.exchange(req.as_bytes()) {
            Ok(r) if *want == "404" => {
                not_found += 1;
                check_proxy_error(&r, 404).err()
            }
            Ok(r) if r.status == 200 && r.text() == *want => None,
            Ok(r) => Some(format!("got {} {:?}", r.status, r.text())),
            Err(e) => {
                c = RawConn::connect(proxy.listen);
                Some(format!("no response: {e}"))
            }
        };
        if let Some(e) = got {
            failures.push(format!("  {host} {line} {fields:?}: expected {want}, {e}"));
        }
    }
    assert!(
        failures.is_empty(),
        "routing cases failed:\n{}",
        failures.join("\n")
    );

    // Fixed responses and redirects, on the same (kept-alive) connection.
    let r = c.exchange(&get("/fixed", "other.test")).expect("fixed");
    assert_eq!(r.status, 403);
    assert_eq!(r.text(), "go away\n");
    assert_eq!(r.header("content-type"), Some("text/x-test"));
    let r = c
        .exchange(b"HEAD /fixed HTTP/1.1\r\nHost: other.test\r\n\r\n")
        .expect("HEAD fixed");
    assert_eq!(r.status, 403);
    assert_eq!(r.header("content-length"), Some("8"));
    assert!(
        c.silent_for(Duration::from_millis(100)),
        "HEAD got body bytes"
    );
    let r = c.exchange(&get("/redir", "other.test")).expect("redirect");
    assert_eq!(r.status, 301);
    assert_eq!(r.header("location"), Some("https://example.org/new"));
    let before = a.request_count() + b.request_count();

    // A 3:1 split over 400 requests on one core lands exactly 300/100.
    let mut counts = (0, 0);
    for i in 0..400 {
        let r = c
            .exchange(&get(&format!("/split/{i}"), "other.test"))
            .expect("split");
        match r.text().split('|').next() {
            Some("A") => counts.0 += 1,
            Some("B") => counts.1 += 1,
            other => panic!("split {i}: {other:?} {}", r.text()),
        }
    }
    assert_eq!(counts, (300, 100));
    assert_eq!(a.request_count() + b.request_count(), before + 400);

    // No route for a request with a body: 404, and the unread body closes the connection.
    let r = c
        .exchange(b"POST /nothing HTTP/1.1\r\nHost: other.test\r\nContent-Length: 5\r\n\r\nhello")
        .expect("404 with body");
    check_proxy_error(&r, 404).unwrap();
    assert!(r.has_token("connection", "close"), "{:?}", r.headers);
    c.closed_within(Duration::from_secs(3)).expect("closed");
    not_found += 1;

    assert_metrics(
        &proxy,
        "routing",
        &[
            (
                "strait_http_requests_total",
                &[("listener", "web"), ("route", "split")],
                400.0,
            ),
            (
                "strait_http_requests_total",
                &[("listener", "web"), ("route", "-")],
                not_found as f64,
            ),
            (
                "strait_http_responses_total",
                &[("listener", "web"), ("route", "-"), ("class", "4xx")],
                not_found as f64,
            ),
            (
                "strait_http_responses_total",
                &[("listener", "web"), ("route", "redir"), ("class", "3xx")],
                1.0,
            ),
        ],
    );
}

// ---------------------------------------------------------------------------------------------
// Header handling.

fn header_origin() -> HttpOrigin {
    HttpOrigin::start(|r| match r.target.as_str() {
        "/edits" => Reply::ok("edited")
            .header("Cache-Control", "public, max-age=60")
            .header("X-Origin-Secret", "s3cr3t")
            .header("X-Kept", "k"),
        "/hop" => Reply::ok("hop")
            .header("Connection", "x-foo")
            .header("X-Foo", "1")
            .header("Keep-Alive", "timeout=5")
            .header("Proxy-Authenticate", "Basic realm=x")
            .header("X-Bar", "2"),
        "/rid-upstream" => Reply::ok("rid").header("X-Request-ID", "from-origin"),
        "/cookies" => Reply::ok("cookies")
            .header("Set-Cookie", "a=1; Path=/")
            .header("Set-Cookie", "b=2; HttpOnly")
            .header("Set-Cookie", "c=3"),
        "/no-reason" => Reply::raw(b"HTTP/1.1 200\r\nContent-Length: 2\r\n\r\nok"),
        _ => Reply::ok("plain"),
    })
}

fn header_proxy(origin: &HttpOrigin, trusted: std::net::SocketAddr) -> Proxy {
    config_proxy(
        &format!(
            r#"
[[cluster]]
name = "plain"
endpoints = [{{ address = "{o}" }}]

[[cluster]]
name = "override"
endpoints = [{{ address = "{o}" }}]
host = "override.internal"

[[listener]]
name = "untrusted"
address = "LISTEN"
protocol = "http"

[[listener.route]]
name = "edits"
path_prefix = "/edits"
cluster = "plain"
request_headers = {{ remove = ["x-internal"], set = {{ "x-env" = "prod" }}, add = {{ "x-tag" = "a" }} }}
response_headers = {{ remove = ["x-origin-secret"], set = {{ "cache-control" = "no-store" }} }}

[[listener.route]]
name = "override"
path_prefix = "/override"
cluster = "override"

[[listener.route]]
name = "rest"
path_prefix = "/"
cluster = "plain"

[[listener]]
name = "trusted"
address = "{trusted}"
protocol = "http"
cluster = "plain"
trust_forwarded = true
"#,
            o = origin.addr
        ),
        &[],
    )
}

/// Collects failed expectations so one run reports all of them.
#[derive(Default)]
struct Checks(Vec<String>);

impl Checks {
    fn expect(&mut self, what: &str, ok: bool, detail: String) {
        if !ok {
            self.0.push(format!("  {what}: {detail}"));
        }
    }

    fn finish(self, test: &str) {
        assert!(self.0.is_empty(), "{test}:\n{}", self.0.join("\n"));
    }
}

#[test]
fn forwarding_headers_follow_the_listener_trust() {
    let origin = header_origin();
    let trusted = free_addr();
    let proxy = header_proxy(&origin, trusted);
    let forwarded = "GET /fw HTTP/1.1\r\nHost: fw.test\r\nX-Forwarded-For: 192.0.2.1\r\n\
                     X-Forwarded-Proto: https\r\nX-Forwarded-Host: outer.test\r\n\
                     traceparent: 00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01\r\n\
                     tracestate: congo=t61rcWkgMzE\r\n\r\n";
    let mut checks = Checks::default();
    let mut expect = |what: &str, ok: bool, detail: String| checks.expect(what, ok, detail);

    // Untrusted listener: incoming X-Forwarded-* replaced; trace context passed on.
    let r = one_request(proxy.listen, forwarded.as_bytes()).expect("untrusted");
    let s = origin.last();
    expect("status", r.status == 200, format!("{}", r.status));
    expect(
        "x-forwarded-for (untrusted)",
        s.header_all("x-forwarded-for") == ["127.0.0.1"],
        format!("{:?}", s.header_all("x-forwarded-for")),
    );
    expect(
        "x-forwarded-proto (untrusted)",
        s.header_all("x-forwarded-proto") == ["http"],
        format!("{:?}", s.header_all("x-forwarded-proto")),
    );
    expect(
        "x-forwarded-host (untrusted)",
        s.header_all("x-forwarded-host") == ["fw.test"],
        format!("{:?}", s.header_all("x-forwarded-host")),
    );
    expect(
        "traceparent",
        s.header("traceparent") == Some("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"),
        format!("{:?}", s.header("traceparent")),
    );
    expect(
        "tracestate",
        s.header("tracestate") == Some("congo=t61rcWkgMzE"),
        format!("{:?}", s.header("tracestate")),
    );
    expect(
        "via upstream",
        s.header_all("via") == ["1.1 strait"],
        format!("{:?}", s.header_all("via")),
    );
    expect(
        "via downstream",
        r.header_all("via") == ["1.1 strait"],
        format!("{:?}", r.header_all("via")),
    );
    expect(
        "host passed through",
        s.header_all("host") == ["fw.test"],
        format!("{:?}", s.header_all("host")),
    );

    // Trusted listener: extended and kept.
    let r = one_request(trusted, forwarded.as_bytes()).expect("trusted");
    let s = origin.last();
    expect("trusted status", r.status == 200, format!("{}", r.status));
    expect(
        "x-forwarded-for (trusted)",
        s.header_all("x-forwarded-for") == ["192.0.2.1, 127.0.0.1"],
        format!("{:?}", s.header_all("x-forwarded-for")),
    );
    expect(
        "x-forwarded-proto (trusted)",
        s.header_all("x-forwarded-proto") == ["https"],
        format!("{:?}", s.header_all("x-forwarded-proto")),
    );
    expect(
        "x-forwarded-host (trusted)",
        s.header_all("x-forwarded-host") == ["outer.test"],
        format!("{:?}", s.header_all("x-forwarded-host")),
    );
    let r = one_request(
        trusted,
        b"GET /fw-two HTTP/1.1\r\nHost: fw.test\r\nX-Forwarded-For: 192.0.2.1\r\n\
          X-Forwarded-For: 198.51.100.2\r\n\r\n",
    )
    .expect("trusted, two lines");
    let s = origin.last();
    expect(
        "x-forwarded-for (trusted, two field lines)",
        r.status == 200
            && s.header_all("x-forwarded-for") == ["192.0.2.1, 198.51.100.2, 127.0.0.1"],
        format!("{:?}", s.header_all("x-forwarded-for")),
    );
    let r = one_request(trusted, &get("/fw-none", "fw.test")).expect("trusted, none");
    let s = origin.last();
    expect(
        "x-forwarded-for (trusted, none incoming)",
        r.status == 200 && s.header_all("x-forwarded-for") == ["127.0.0.1"],
        format!("{:?}", s.header_all("x-forwarded-for")),
    );

    checks.finish("forwarding_headers_follow_the_listener_trust");
}

#[test]
fn request_ids_are_generated_propagated_and_echoed() {
    let origin = header_origin();
    let proxy = header_proxy(&origin, free_addr());
    let mut checks = Checks::default();
    let mut expect = |what: &str, ok: bool, detail: String| checks.expect(what, ok, detail);
    // Request ids: generated, propagated, the upstream's own, and a too-long one replaced.
    let r = one_request(proxy.listen, &get("/rid", "rid.test")).expect("rid");
    let s = origin.last();
    let id = r.header("x-request-id").unwrap_or("").to_string();
    expect("generated id", is_generated_id(&id), id.clone());
    expect(
        "generated id sent upstream once",
        s.header_all("x-request-id") == [id.as_str()],
        format!("{:?} vs {id}", s.header_all("x-request-id")),
    );
    let r = one_request(
        proxy.listen,
        b"GET /rid HTTP/1.1\r\nHost: rid.test\r\nX-Request-ID: trace-abc-123\r\n\r\n",
    )
    .expect("client rid");
    let s = origin.last();
    expect(
        "client id echoed",
        r.header_all("x-request-id") == ["trace-abc-123"],
        format!("{:?}", r.header_all("x-request-id")),
    );
    expect(
        "client id propagated once",
        s.header_all("x-request-id") == ["trace-abc-123"],
        format!("{:?}", s.header_all("x-request-id")),
    );
    let r = one_request(proxy.listen, &get("/rid-upstream", "rid.test")).expect("upstream rid");
    expect(
        "upstream id wins",
        r.header_all("x-request-id") == ["from-origin"],
        format!("{:?}", r.header_all("x-request-id")),
    );
    for (what, value) in [("too long", "x".repeat(201)), ("empty", String::new())] {
        let req = format!("GET /rid HTTP/1.1\r\nHost: rid.test\r\nX-Request-ID: {value}\r\n\r\n");
        let r = one_request(proxy.listen, req.as_bytes()).expect("bad rid");
        let s = origin.last();
        let echoed = r.header("x-request-id").unwrap_or("").to_string();
        expect(
            &format!("{what} client id replaced"),
            is_generated_id(&echoed),
            echoed.clone(),
        );
        expect(
            &format!("{what} client id: upstream sees exactly the echoed id"),
            s.header_all("x-request-id") == [echoed.as_str()],
            format!(
                "upstream saw {:?}, client got {echoed:?}",
                s.header_all("x-request-id")
            ),
        );
    }

    checks.finish("request_ids_are_generated_propagated_and_echoed");
}

#[test]
fn hop_by_hop_fields_are_dropped_and_route_edits_applied() {
    let origin = header_origin();
    let proxy = header_proxy(&origin, free_addr());
    let mut checks = Checks::default();
    let mut expect = |what: &str, ok: bool, detail: String| checks.expect(what, ok, detail);
    // Hop-by-hop fields are not forwarded, either way.
    let r = one_request(
        proxy.listen,
        b"GET /hop HTTP/1.1\r\nHost: hop.test\r\nConnection: keep-alive, x-secret\r\n\
          X-Secret: 1\r\nKeep-Alive: timeout=5\r\nTE: trailers\r\nTrailer: x-t\r\n\
          Upgrade: h2c\r\nProxy-Authorization: Basic eA==\r\nProxy-Connection: keep-alive\r\n\
          X-Keep: 1\r\n\r\n",
    )
    .expect("hop");
    let s = origin.last();
    for name in [
        "connection",
        "x-secret",
        "keep-alive",
        "te",
        "trailer",
        "upgrade",
        "proxy-authorization",
        "proxy-connection",
    ] {
        expect(
            &format!("request hop-by-hop {name}"),
            s.header(name).is_none(),
            format!("{:?}", s.headers),
        );
    }
    expect(
        "x-keep forwarded",
        s.header("x-keep") == Some("1"),
        format!("{:?}", s.headers),
    );
    for name in ["x-foo", "keep-alive", "proxy-authenticate"] {
        expect(
            &format!("response hop-by-hop {name}"),
            r.header(name).is_none(),
            format!("{:?}", r.headers),
        );
    }
    expect(
        "response connection field not relayed",
        !r.header_all("connection")
            .iter()
            .any(|v| v.contains("x-foo")),
        format!("{:?}", r.headers),
    );
    expect(
        "x-bar relayed",
        r.header("x-bar") == Some("2"),
        format!("{:?}", r.headers),
    );

    // Repeated response fields pass as they are; a missing reason phrase gets the canonical one.
    let r = one_request(proxy.listen, &get("/cookies", "c.test")).expect("cookies");
    expect(
        "set-cookie lines",
        r.header_all("set-cookie") == ["a=1; Path=/", "b=2; HttpOnly", "c=3"],
        format!("{:?}", r.header_all("set-cookie")),
    );
    let r = one_request(proxy.listen, &get("/no-reason", "c.test")).expect("no reason");
    expect(
        "empty reason phrase",
        r.status == 200 && r.reason == "OK" && r.text() == "ok",
        format!("{} {:?} {:?}", r.status, r.reason, r.text()),
    );

    // Route header edits.
    let r = one_request(
        proxy.listen,
        b"GET /edits HTTP/1.1\r\nHost: e.test\r\nX-Internal: secret\r\nX-Env: dev\r\n\
          X-Tag: client\r\n\r\n",
    )
    .expect("edits");
    let s = origin.last();
    expect(
        "x-internal removed",
        s.header("x-internal").is_none(),
        format!("{:?}", s.headers),
    );
    expect(
        "x-env set",
        s.header_all("x-env") == ["prod"],
        format!("{:?}", s.header_all("x-env")),
    );
    expect(
        "x-tag added",
        s.header_all("x-tag").contains(&"a") && s.header_all("x-tag").contains(&"client"),
        format!("{:?}", s.header_all("x-tag")),
    );
    expect(
        "cache-control set",
        r.header_all("cache-control") == ["no-store"],
        format!("{:?}", r.header_all("cache-control")),
    );
    expect(
        "x-origin-secret removed",
        r.header("x-origin-secret").is_none(),
        format!("{:?}", r.headers),
    );
    expect(
        "x-kept kept",
        r.header("x-kept") == Some("k"),
        format!("{:?}", r.headers),
    );

    // Cluster Host override; X-Forwarded-Host still names what the client asked for.
    let r = one_request(proxy.listen, &get("/override/x", "front.test")).expect("override");
    let s = origin.last();
    expect("override status", r.status == 200, format!("{}", r.status));
    expect(
        "host override",
        s.header_all("host") == ["override.internal"],
        format!("{:?}", s.header_all("host")),
    );
    expect(
        "x-forwarded-host with override",
        s.header_all("x-forwarded-host") == ["front.test"],
        format!("{:?}", s.header_all("x-forwarded-host")),
    );

    // HTTP/1.0 without Host: the upstream still gets one.
    let r = one_request(proxy.listen, b"GET /v10 HTTP/1.0\r\n\r\n").expect("1.0");
    let s = origin.last();
    expect("1.0 status", r.status == 200, format!("{}", r.status));
    expect(
        "1.0 fallback host",
        s.header_all("host").len() == 1,
        format!("{:?}", s.header_all("host")),
    );

    checks.finish("hop_by_hop_fields_are_dropped_and_route_edits_applied");
}

// ---------------------------------------------------------------------------------------------
// The request phases are the same for every client protocol.

/// One sniffing port (HTTP/1.1 and h2c) with the routes of the request phases' built-in
/// policies: header edits both ways, a redirect with a response edit, a body limit, CONNECT.
fn phases_proxy(origin: &HttpOrigin) -> Proxy {
    config_proxy(
        &format!(
            r#"
[[cluster]]
name = "plain"
endpoints = [{{ address = "{o}" }}]

[[listener]]
name = "both"
address = "LISTEN"
protocols = ["http1", "h2c"]

[[listener.route]]
name = "edits"
path_prefix = "/edits"
cluster = "plain"
max_body_size = "10"
request_headers = {{ remove = ["x-internal"], set = {{ "x-env" = "prod" }}, add = {{ "x-tag" = "a" }} }}
response_headers = {{ remove = ["x-origin-secret"], set = {{ "cache-control" = "no-store" }} }}

[[listener.route]]
name = "moved"
path_prefix = "/old"
redirect = {{ status = 301, location = "/new" }}
response_headers = {{ add = {{ "x-moved" = "yes" }} }}
"#,
            o = origin.addr
        ),
        &[],
    )
}

/// What a client saw of one response: status and the fields the test looks at.
#[derive(Debug, PartialEq)]
struct Seen {
    status: u16,
    fields: Vec<(String, Option<String>)>,
}

const LOOKED_AT: [&str; 5] = [
    "cache-control",
    "x-origin-secret",
    "x-kept",
    "location",
    "x-moved",
];

fn h1_seen(addr: std::net::SocketAddr, raw: &str) -> Seen {
    let r = one_request(addr, raw.as_bytes()).expect("HTTP/1.1 response");
    Seen {
        status: r.status,
        fields: LOOKED_AT
            .iter()
            .map(|n| (n.to_string(), r.header(n).map(str::to_string)))
            .collect(),
    }
}

fn h2_seen(addr: std::net::SocketAddr, method: &str, path: &str, length: Option<u64>) -> Seen {
    use common::h2_support::{exchange, h2c_connect};
    block_on(Duration::from_secs(10), async move {
        let client = h2c_connect(addr).await;
        let mut req = ::http::Request::builder()
            .method(method)
            .uri(format!("http://phases.test{path}"))
            .header("x-internal", "drop me");
        if let Some(n) = length {
            req = req.header("content-length", n.to_string());
        }
        let body = length.map(|n| bytes::Bytes::from(vec![b'x'; n as usize]));
        let r = exchange(&client.send, req.body(()).expect("request"), body, None)
            .await
            .expect("h2c response");
        Seen {
            status: r.status,
            fields: LOOKED_AT
                .iter()
                .map(|n| (n.to_string(), r.header(n).map(str::to_string)))
                .collect(),
        }
    })
}

/// The same route edits, redirect, body limit and CONNECT refusal, whether the request arrived
/// as HTTP/1.1 or h2c: one policy list (engine/src/http/pipeline), one answer.
#[test]
fn request_phases_treat_http1_and_h2c_alike() {
    let origin = header_origin();
    let proxy = phases_proxy(&origin);
    let addr = proxy.listen;
    let h1 = |method: &str, path: &str, extra: &str| {
        h1_seen(
            addr,
            &format!(
                "{method} {path} HTTP/1.1\r\nHost: phases.test\r\nX-Internal: drop me\r\n{extra}\r\n"
            ),
        )
    };

    // Edits both ways.
    let a = h1("GET", "/edits", "");
    let up1 = origin.last();
    let b = h2_seen(addr, "GET", "/edits", None);
    let up2 = origin.last();
    assert_eq!(a, b);
    assert_eq!(a.status, 200);
    assert_eq!(a.fields[0].1.as_deref(), Some("no-store"), "{a:?}");
    assert_eq!(a.fields[1].1, None, "{a:?}");
    assert_eq!(a.fields[2].1.as_deref(), Some("k"), "{a:?}");
    for (proto, up) in [("HTTP/1.1", &up1), ("h2c", &up2)] {
        assert_eq!(up.header("x-internal"), None, "{proto}: {up:?}");
        assert_eq!(up.header_all("x-env"), ["prod"], "{proto}");
        assert_eq!(up.header_all("x-tag"), ["a"], "{proto}");
    }

    // A redirect answered by the proxy, with its response edit.
    let a = h1("GET", "/old/page", "");
    let b = h2_seen(addr, "GET", "/old/page", None);
    assert_eq!(a, b);
    assert_eq!(a.status, 301);
    assert_eq!(a.fields[3].1.as_deref(), Some("/new"), "{a:?}");
    assert_eq!(a.fields[4].1.as_deref(), Some("yes"), "{a:?}");

    // A declared body over the route's limit, refused before any upstream.
    let before = origin.requests().len();
    let a = h1("POST", "/edits", "Content-Length: 11\r\n");
    let b = h2_seen(addr, "POST", "/edits", Some(11));
    assert_eq!((a.status, b.status), (413, 413));
    assert_eq!(
        origin.requests().len(),
        before,
        "a refused body reached the origin"
    );
    let b = h2_seen(addr, "POST", "/edits", Some(10));
    assert_eq!(b.status, 200);
}
