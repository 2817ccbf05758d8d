//! WebSocket (RFC 6455) through the HTTP/1.1 reverse proxy, against the real binary and a
//! tungstenite origin on loopback (tests/common/ws.rs): the upgrade and its 101, the tunnel
//! (echo, fragments, 16 MiB, ping, close handshakes both ways, half-closes, idleness, drain),
//! refusals, malformed upgrades, h2c upgrades served as HTTP/1.1, and bytes a client sends after
//! the upgrade request (request smuggling): the next request after a refusal, tunnel data after
//! a 101, never before the upstream has answered.

mod common;

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use common::http::*;
use common::ws::*;
use common::*;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tungstenite::protocol::frame::coding::{CloseCode, Data, OpCode};
use tungstenite::protocol::frame::Frame;
use tungstenite::protocol::CloseFrame;
use tungstenite::{Message, WebSocket};

/// A WebSocket client through the proxy to `path` (Host `ws.test`); the 101 as the client saw
/// it.
fn ws_connect(
    proxy: SocketAddr,
    path: &str,
) -> (
    WebSocket<TcpStream>,
    tungstenite::handshake::client::Response,
) {
    let stream = connect(proxy);
    let _ = stream.set_nodelay(true);
    tungstenite::client::client_with_config(
        format!("ws://ws.test{path}"),
        stream,
        Some(ws_config()),
    )
    .unwrap_or_else(|e| panic!("WebSocket handshake to {path}: {e}"))
}

fn upgrade_request(path: &str) -> String {
    format!(
        "GET {path} HTTP/1.1\r\nHost: ws.test\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
}

fn next_message(ws: &mut WebSocket<TcpStream>) -> Message {
    loop {
        match ws.read() {
            Ok(Message::Pong(_)) => continue,
            Ok(m) => return m,
            Err(e) => panic!("reading a message: {e}"),
        }
    }
}

fn ws_metric(proxy: &Proxy, name: &str) -> f64 {
    metric(&metrics_text(proxy), name, &[]).unwrap_or_else(|| panic!("{name} is not exported"))
}

fn wait_ws_metric(proxy: &Proxy, name: &str, want: f64) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let got = ws_metric(proxy, name);
        if got == want {
            return;
        }
        assert!(Instant::now() < deadline, "{name} = {got}, expected {want}");
        thread::sleep(Duration::from_millis(25));
    }
}

// ---------------------------------------------------------------------------------------------
// The tunnel.

fn echo(driver: &str) {
    let origin = WsOrigin::start(Duration::ZERO);
    let proxy = quick_http(&[origin.addr], &["--io-driver", driver]);
    let (mut ws, response) = ws_connect(proxy.listen, "/chat");
    assert_eq!(response.status(), 101);
    let h = response.headers();
    assert_eq!(h["upgrade"], "websocket");
    assert_eq!(h["connection"], "upgrade");
    assert_eq!(h["via"], "1.1 strait");
    assert!(h.contains_key("sec-websocket-accept"));
    assert!(is_generated_id(h["x-request-id"].to_str().expect("ascii")));
    assert!(!h.contains_key("content-length"));

    // What the origin saw: the upgrade fields (ours), the end-to-end Sec-WebSocket-* fields, and
    // the usual forwarding fields.
    let seen = origin.requests();
    assert_eq!(seen.len(), 1, "{seen:?}");
    let s = &seen[0];
    assert_eq!((s.method.as_str(), s.target.as_str()), ("GET", "/chat"));
    assert_eq!(s.header("upgrade"), Some("websocket"));
    assert_eq!(s.header("connection"), Some("upgrade"));
    assert_eq!(s.header("sec-websocket-version"), Some("13"));
    assert!(s.header("sec-websocket-key").is_some());
    assert_eq!(s.header("via"), Some("1.1 strait"));
    assert_eq!(s.header("x-forwarded-for"), Some("127.0.0.1"));

    // Text and binary.
    ws.send(Message::text("hello")).expect("send text");
    assert_eq!(next_message(&mut ws), Message::text("hello"));
    ws.send(Message::binary(vec![0u8, 1, 2, 255]))
        .expect("send binary");
    assert_eq!(next_message(&mut ws), Message::binary(vec![0u8, 1, 2, 255]));

    // A fragmented text message: three frames, FIN only on the last.
    let frames = [
        Frame::message("frag", OpCode::Data(Data::Text), false),
        Frame::message("ment", OpCode::Data(Data::Continue), false),
        Frame::message("ed", OpCode::Data(Data::Continue), true),
    ];
    for f in frames {
        ws.write(Message::Frame(f)).expect("write frame");
    }
    ws.flush().expect("flush frames");
    assert_eq!(next_message(&mut ws), Message::text("fragmented"));

    // Ping → pong (answered by the origin, through the tunnel).
    ws.send(Message::Ping(b"are you there".to_vec().into()))
        .expect("ping");
    match ws.read().expect("pong") {
        Message::Pong(p) => assert_eq!(&p[..], b"are you there"),
        other => panic!("expected a pong, got {other:?}"),
    }

    // 16 MiB binary message, intact.
    let big = payload(16 << 20, 7);
    let sum = checksum(&big);
    ws.send(Message::binary(big)).expect("send 16 MiB");
    match next_message(&mut ws) {
        Message::Binary(b) => {
            assert_eq!(b.len(), 16 << 20);
            assert_eq!(checksum(&b), sum, "the 16 MiB message changed on the way");
        }
        other => panic!("expected the 16 MiB echo, got {:?}", other.len()),
    }

    // Client-initiated close: the origin sees our close frame, we get its reply, then EOF.
    ws.close(Some(CloseFrame {
        code: CloseCode::Normal,
        reason: "done".into(),
    }))
    .expect("close");
    loop {
        match ws.read() {
            Ok(Message::Close(Some(f))) => {
                assert_eq!(f.code, CloseCode::Normal);
                assert_eq!(f.reason.as_str(), "done");
            }
            Ok(other) => panic!("after close: {other:?}"),
            Err(tungstenite::Error::ConnectionClosed) => break,
            Err(e) => panic!("close handshake: {e}"),
        }
    }
    origin.wait_event("the client's close", |e| {
        e.iter().any(|x| x == "client-close 1000 done")
    });
    assert!(
        eof_within(ws.get_mut(), Duration::from_secs(5)),
        "the connection stayed open after the close handshake"
    );
    origin.wait_event("the origin's end", |e| e.iter().any(|x| x == "closed"));

    wait_ws_metric(&proxy, "strait_websocket_upgrades_total", 1.0);
    wait_ws_metric(&proxy, "strait_websocket_refused_total", 0.0);
    let tunnel_bytes = metric_now(&proxy, "strait_listener_received_bytes_total", &[]);
    assert!(
        tunnel_bytes > (16 << 20) as f64,
        "tunnel bytes not counted: {tunnel_bytes}"
    );
}

#[test]
fn websocket_echo_uring() {
    echo("uring");
}

#[test]
fn websocket_echo_epoll() {
    echo("epoll");
}

/// The origin sends a frame in the same write as its 101 (the proxy reads both at once and must
/// pass the frame on), then starts the close handshake itself.
fn server_first_and_server_close(driver: &str) {
    let origin = WsOrigin::start(Duration::ZERO);
    let proxy = quick_http(&[origin.addr], &["--io-driver", driver]);
    let (mut ws, response) = ws_connect(proxy.listen, "/greet");
    assert_eq!(response.status(), 101);
    assert_eq!(next_message(&mut ws), Message::text("hello from origin"));
    ws.send(Message::text("echo me")).expect("send");
    assert_eq!(next_message(&mut ws), Message::text("echo me"));
    ws.send(Message::text("server-close")).expect("send");
    match ws.read() {
        Ok(Message::Close(Some(f))) => {
            assert_eq!(f.code, CloseCode::Normal);
            assert_eq!(f.reason.as_str(), "bye");
        }
        other => panic!("expected the origin's close, got {other:?}"),
    }
    // tungstenite replied with our close; the origin then closes the TCP connection.
    match ws.read() {
        Err(tungstenite::Error::ConnectionClosed) => {}
        other => panic!("after the close handshake: {other:?}"),
    }
    origin.wait_event("our close reply at the origin", |e| {
        e.iter().any(|x| x == "server-close done")
    });
    assert!(
        eof_within(ws.get_mut(), Duration::from_secs(5)),
        "the origin's close did not reach the client"
    );
}

#[test]
fn server_frames_and_server_initiated_close_uring() {
    server_first_and_server_close("uring");
}

#[test]
fn server_frames_and_server_initiated_close_epoll() {
    server_first_and_server_close("epoll");
}

/// Half-closes go through both ways: the client's FIN reaches the origin while the origin can
/// still answer, and the origin's FIN then reaches the client.
#[test]
fn half_closes_are_propagated() {
    let origin = WsOrigin::start(Duration::ZERO);
    let proxy = quick_http(&[origin.addr], &[]);
    let mut c = RawConn::connect(proxy.listen);
    c.send(upgrade_request("/raw").as_bytes()).expect("send");
    let r = c.response().expect("101");
    assert_eq!(r.status, 101);
    c.send(b"some tunnel bytes").expect("send");
    c.wire.stream.shutdown(Shutdown::Write).expect("half-close");
    origin.wait_event("the client's FIN at the origin", |e| {
        e.iter().any(|x| x == "raw eof")
    });
    assert_eq!(origin.raw(), b"some tunnel bytes");
    let (got, end) = read_until_closed(&mut c.wire.stream);
    end.expect("a clean close after the origin's answer");
    assert_eq!(got, b"origin got 17 bytes");
}

/// No byte either way for `upstream_body_timeout` cuts the tunnel; traffic in either direction
/// keeps it open.
#[test]
fn an_idle_tunnel_is_cut_after_the_upstream_body_timeout() {
    let origin = WsOrigin::start(Duration::ZERO);
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
cluster = "a"
upstream_body_timeout = "600ms"
"#,
            origin.addr
        ),
        &[],
    );
    let (mut ws, _) = ws_connect(proxy.listen, "/chat");
    // Busy for twice the limit: still open.
    let started = Instant::now();
    while started.elapsed() < Duration::from_millis(1200) {
        ws.send(Message::text("tick")).expect("send while busy");
        assert_eq!(next_message(&mut ws), Message::text("tick"));
        thread::sleep(Duration::from_millis(150));
    }
    // Then silent: cut.
    let idle_from = Instant::now();
    assert!(
        eof_within(ws.get_mut(), Duration::from_secs(5)),
        "an idle tunnel stayed open"
    );
    let took = idle_from.elapsed();
    assert!(
        took >= Duration::from_millis(450) && took < Duration::from_secs(3),
        "cut after {took:?}"
    );
    origin.wait_event("the origin's side closed", |e| {
        e.iter().any(|x| x == "closed" || x.starts_with("error"))
    });
}

/// A tunnel is an in-flight connection: SIGTERM leaves it working until the drain deadline,
/// which then cuts it.
#[test]
fn a_tunnel_runs_until_the_drain_deadline() {
    let origin = WsOrigin::start(Duration::ZERO);
    let mut proxy = quick_http(&[origin.addr], &["--drain-timeout", "1500ms"]);
    let (mut ws, _) = ws_connect(proxy.listen, "/chat");
    proxy.signal(libc::SIGTERM);
    let signalled = Instant::now();
    thread::sleep(Duration::from_millis(300));
    ws.send(Message::text("still here"))
        .expect("send during the drain");
    assert_eq!(next_message(&mut ws), Message::text("still here"));
    assert!(
        eof_within(ws.get_mut(), Duration::from_secs(5)),
        "the tunnel outlived the drain deadline"
    );
    let took = signalled.elapsed();
    assert!(
        took >= Duration::from_millis(1200),
        "cut after {took:?}, before the drain deadline"
    );
    let status = proxy.wait_exit(Duration::from_secs(8));
    assert!(status.success(), "{status}");
}

// ---------------------------------------------------------------------------------------------
// Refusals and request smuggling.

/// A refused upgrade is relayed as is, counted, and the client connection goes on with the next
/// request; the upgrade's upstream connection is never reused.
#[test]
fn a_refused_upgrade_is_relayed_and_the_connection_stays_usable() {
    let origin = WsOrigin::start(Duration::ZERO);
    let proxy = quick_http(&[origin.addr], &[]);
    let mut c = RawConn::connect(proxy.listen);
    let r = c
        .exchange(upgrade_request("/refuse").as_bytes())
        .expect("403");
    assert_eq!((r.status, r.text().as_str()), (403, "forbidden"));
    assert_eq!(r.header("via"), Some("1.1 strait"));
    assert!(!r.has_token("connection", "close"), "{:?}", r.headers);
    assert!(r.header("upgrade").is_none(), "{:?}", r.headers);
    let r = c.exchange(&get("/after", "ws.test")).expect("next request");
    assert_eq!((r.status, r.text().as_str()), (200, "plain /after"));
    let seen = origin.requests();
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert_ne!(
        seen[0].conn, seen[1].conn,
        "the upgrade's upstream connection was reused"
    );
    wait_ws_metric(&proxy, "strait_websocket_refused_total", 1.0);
    wait_ws_metric(&proxy, "strait_websocket_upgrades_total", 0.0);
}

/// The client writes the upgrade request and another request in one write. The origin refuses
/// the upgrade: the second request reaches it as a request of its own, parsed and forwarded by
/// the proxy, and nothing but the upgrade request arrives before the refusal.
#[test]
fn bytes_after_a_refused_upgrade_are_the_next_request() {
    let origin = WsOrigin::start(Duration::from_millis(300));
    let proxy = quick_http(&[origin.addr], &[]);
    let mut c = RawConn::connect(proxy.listen);
    let mut both = upgrade_request("/refuse").into_bytes();
    both.extend_from_slice(b"GET /secret HTTP/1.1\r\nHost: ws.test\r\n\r\n");
    c.send(&both).expect("send");
    let r = c.response().expect("403");
    assert_eq!(r.status, 403);
    let r = c.response().expect("the second response");
    assert_eq!((r.status, r.text().as_str()), (200, "plain /secret"));
    let seen = origin.requests();
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert_eq!(seen[0].target, "/refuse");
    assert!(
        seen[0].early.is_empty(),
        "bytes after the upgrade request were forwarded before the answer: {:?}",
        String::from_utf8_lossy(&seen[0].early)
    );
    let secret = &seen[1];
    assert_eq!(secret.target, "/secret");
    assert_ne!(secret.conn, seen[0].conn);
    // Parsed and forwarded by the proxy, not relayed as raw bytes.
    assert_eq!(secret.header("via"), Some("1.1 strait"));
    assert!(secret.header("x-request-id").is_some());
    assert!(origin.raw().is_empty());
}

/// The same, but the origin accepts: the second request is tunnel data, delivered only after the
/// 101, and never parsed as a request.
#[test]
fn bytes_after_an_accepted_upgrade_are_tunnel_data_after_the_101() {
    let origin = WsOrigin::start(Duration::from_millis(300));
    let proxy = quick_http(&[origin.addr], &[]);
    let mut c = RawConn::connect(proxy.listen);
    let mut both = upgrade_request("/raw").into_bytes();
    let extra = b"GET /secret HTTP/1.1\r\nHost: ws.test\r\n\r\n";
    both.extend_from_slice(extra);
    c.send(&both).expect("send");
    let r = c.response().expect("101");
    assert_eq!(r.status, 101);
    origin.wait_raw(extra);
    let seen = origin.requests();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert!(
        seen[0].early.is_empty(),
        "bytes after the upgrade request were forwarded before the 101: {:?}",
        String::from_utf8_lossy(&seen[0].early)
    );
    c.wire.stream.shutdown(Shutdown::Write).expect("half-close");
    let (got, _) = read_until_closed(&mut c.wire.stream);
    assert_eq!(got, format!("origin got {} bytes", extra.len()).as_bytes());
}

/// An upgrade the codec accepts but RFC 6455 forbids is refused 400 and never forwarded.
#[test]
fn malformed_websocket_upgrades_are_refused_and_never_forwarded() {
    let origin = WsOrigin::start(Duration::ZERO);
    let proxy = quick_http(&[origin.addr], &[]);
    let cases: [&[u8]; 4] = [
        b"POST /chat HTTP/1.1\r\nHost: ws.test\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\
          Content-Length: 5\r\n\r\nhello",
        b"GET /chat HTTP/1.1\r\nHost: ws.test\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\
          Content-Length: 5\r\n\r\nhello",
        b"GET /chat HTTP/1.1\r\nHost: ws.test\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\
          Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
        b"GET /chat HTTP/1.0\r\nHost: ws.test\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n",
    ];
    for raw in cases {
        let mut c = RawConn::connect(proxy.listen);
        let r = c.exchange(raw).expect("an answer");
        let what = String::from_utf8_lossy(raw);
        check_proxy_error(&r, 400).unwrap_or_else(|e| panic!("{what}: {e}"));
        assert!(r.has_token("connection", "close"), "{what}");
        c.closed_within(Duration::from_secs(3))
            .unwrap_or_else(|e| panic!("{what}: {e}"));
    }
    assert!(origin.requests().is_empty(), "{:?}", origin.requests());
    assert_eq!(origin.connections(), 0);
}

/// `Upgrade: h2c` (RFC 7540 §3.2, gone from RFC 9113) is ignored: the request is served as plain
/// HTTP/1.1 and the upgrade fields never reach the origin.
#[test]
fn an_h2c_upgrade_is_served_as_http11() {
    let origin = WsOrigin::start(Duration::ZERO);
    let proxy = quick_http(&[origin.addr], &[]);
    let mut c = RawConn::connect(proxy.listen);
    let r = c
        .exchange(
            b"GET /h2c HTTP/1.1\r\nHost: ws.test\r\nConnection: Upgrade, HTTP2-Settings\r\n\
              Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\n\r\n",
        )
        .expect("a response");
    assert_eq!((r.status, r.text().as_str()), (200, "plain /h2c"));
    assert!(r.header("upgrade").is_none(), "{:?}", r.headers);
    let r = c.exchange(&get("/again", "ws.test")).expect("keep-alive");
    assert_eq!(r.status, 200);
    let seen = origin.requests();
    assert_eq!(seen.len(), 2);
    for name in ["upgrade", "connection", "http2-settings"] {
        assert!(seen[0].header(name).is_none(), "{name} reached the origin");
    }
    wait_ws_metric(&proxy, "strait_websocket_upgrades_total", 0.0);
    wait_ws_metric(&proxy, "strait_websocket_refused_total", 0.0);
}

/// A 101 switching to a protocol the client did not ask for, or answering a request that did
/// not ask to upgrade at all, is the upstream's fault: 502.
#[test]
fn a_101_to_another_protocol_or_to_no_upgrade_is_a_502() {
    let origin = WsOrigin::start(Duration::ZERO);
    let proxy = quick_http(&[origin.addr], &[]);
    let r = one_request(proxy.listen, &get("/unrequested-101", "ws.test")).expect("an answer");
    check_proxy_error(&r, 502).unwrap_or_else(|e| panic!("{e}"));
    let mut c = RawConn::connect(proxy.listen);
    let r = c
        .exchange(upgrade_request("/h2c-101").as_bytes())
        .expect("an answer");
    check_proxy_error(&r, 502).unwrap_or_else(|e| panic!("{e}"));
    c.closed_within(Duration::from_secs(3))
        .unwrap_or_else(|e| panic!("{e}"));
}

/// Many tunnels at once on one core, each echoing its own data.
#[test]
fn concurrent_tunnels_stay_separate() {
    let origin = WsOrigin::start(Duration::ZERO);
    let proxy = quick_http(&[origin.addr], &[]);
    let listen = proxy.listen;
    let clients: Vec<_> = (0..16u64)
        .map(|i| {
            thread::spawn(move || {
                let (mut ws, _) = ws_connect(listen, &format!("/chat/{i}"));
                for round in 0..20u64 {
                    let data = payload(
                        1000 + (i * 997 + round * 13) as usize % 70_000,
                        i * 100 + round,
                    );
                    ws.send(Message::binary(data.clone())).expect("send");
                    assert_eq!(next_message(&mut ws), Message::binary(data));
                }
                let _ = ws.close(None);
                while ws.read().is_ok() {}
            })
        })
        .collect();
    for c in clients {
        c.join().expect("client");
    }
    wait_ws_metric(&proxy, "strait_websocket_upgrades_total", 16.0);
}

// ---------------------------------------------------------------------------------------------
// wss: the tunnel behind TLS termination.

// A test CA and a leaf for `ws.test` it signed (P-256, valid until 2126).
const CA: &str = "-----BEGIN CERTIFICATE-----
MIIBiTCCAS+gAwIBAgIUeiUeR++amj8Ehik1nxbUcsrAHNMwCgYIKoZIzj0EAwIw
GTEXMBUGA1UEAwwOU3RyYWl0IHRlc3QgQ0EwIBcNMjYxMTIyMTAwNzE0WhgPMjEy
NjEwMjkxMDA3MTRaMBkxFzAVBgNVBAMMDlN0cmFpdCB0ZXN0IENBMFkwEwYHKoZI
zj0CAQYIKoZIzj0DAQcDQgAE9nFQ4clfmPlWpAdVhVwL072BH1paM0MViIXlZrOq
KcY3/9SoYL4uU9ygEzGrHKzat2hcZB0+yE+N8nhFlq/yNKNTMFEwHQYDVR0OBBYE
FPwKSUmKaBGLIYprgCTtIsm5ziDiMB8GA1UdIwQYMBaAFPwKSUmKaBGLIYprgCTt
Ism5ziDiMA8GA1UdEwEB/wQFMAMBAf8wCgYIKoZIzj0EAwIDSAAwRQIhAN/dwVvy
8wdwitIzQz3Bm8wNl0LGh4VukdjqsoVwiqwxAiAzqPGfvC08MsBsDkDTrZ0w/WhL
8bMdGp6hT9MCdhiP5g==
-----END CERTIFICATE-----
";
const LEAF: &str = "-----BEGIN CERTIFICATE-----
MIIBtzCCAV2gAwIBAgIUKadNeIlbD3Tjo6ZlTXDq/PoeoGUwCgYIKoZIzj0EAwIw
GTEXMBUGA1UEAwwOU3RyYWl0IHRlc3QgQ0EwIBcNMjYxMTIyMTAwNzE0WhgPMjEy
NjEwMjkxMDA3MTRaMBIxEDAOBgNVBAMMB3dzLnRlc3QwWTATBgcqhkjOPQIBBggq
hkjOPQMBBwNCAATmCEA53K1Zn8xAt8Z5TtzCFfXsEUkjC+HoJ7DFsAc/lZkGW+Qm
PbPHeTCQy1/dkfdUqYiOtV/N2rPsd+pTBQAVo4GHMIGEMBIGA1UdEQQLMAmCB3dz
LnRlc3QwDAYDVR0TAQH/BAIwADALBgNVHQ8EBAMCB4AwEwYDVR0lBAwwCgYIKwYB
BQUHAwEwHQYDVR0OBBYEFIW3JM2rSm5WK41yw61VpLi83X2+MB8GA1UdIwQYMBaA
FPwKSUmKaBGLIYprgCTtIsm5ziDiMAoGCCqGSM49BAMCA0gAMEUCIDtyFmstK/6N
y/DrzGWb1TvoHXpJsu7zQ7TufdQHThjxAiEA5gfh1rnftUh09VzwKuj0OwR/VkSb
ZvkBRDu23qrRY2s=
-----END CERTIFICATE-----
";
const LEAF_KEY: &str = "-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgT8pweTnG7Rnwg35W
qHMAyyJHnhVx2vP8xJxw+O4MnpihRANCAATmCEA53K1Zn8xAt8Z5TtzCFfXsEUkj
C+HoJ7DFsAc/lZkGW+QmPbPHeTCQy1/dkfdUqYiOtV/N2rPsd+pTBQAV
-----END PRIVATE KEY-----
";

type Tls = rustls::StreamOwned<rustls::ClientConnection, TcpStream>;

/// An HTTPS listener (HTTP/1.1 by ALPN) in front of `origin`, on `driver`; `None` (the test is
/// skipped, and says so) when this build does not take TLS listeners from its configuration.
fn wss_proxy(origin: SocketAddr, driver: &str) -> Option<Proxy> {
    let dir = temp_dir("wss");
    let (cert, key) = (dir.join("ws.test.pem"), dir.join("ws.test.key"));
    std::fs::write(&cert, LEAF).expect("cert file");
    std::fs::write(&key, LEAF_KEY).expect("key file");
    let toml = format!(
        r#"
[[cluster]]
name = "a"
endpoints = [{{ address = "{origin}" }}]

[[listener]]
name = "web"
address = "LISTEN"
protocol = "http"
cluster = "a"
header_read_timeout = "400ms"

[listener.tls]
alpn = ["http/1.1"]

[[listener.tls.certificate]]
cert = "{}"
key = "{}"
"#,
        cert.display(),
        key.display()
    );
    let check = dir.join("check.toml");
    std::fs::write(&check, toml.replace("LISTEN", "127.0.0.1:1")).expect("config");
    let checked = std::process::Command::new(binary())
        .args(["check", "--config", check.to_str().expect("utf-8 path")])
        .output()
        .expect("strait check");
    if !checked.status.success() {
        eprintln!(
            "SKIPPED: this build refuses TLS listeners: {}",
            String::from_utf8_lossy(&checked.stderr)
        );
        return None;
    }
    Some(config_proxy(&toml, &["--io-driver", driver]))
}

fn tls_connect(addr: SocketAddr) -> Tls {
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(CA.as_bytes()).expect("ca"))
        .expect("root");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let name = ServerName::try_from("ws.test").expect("name");
    let conn = rustls::ClientConnection::new(Arc::new(config), name).expect("client");
    let sock = connect(addr);
    let mut tls = rustls::StreamOwned::new(conn, sock);
    while tls.conn.is_handshaking() {
        tls.conn.complete_io(&mut tls.sock).expect("TLS handshake");
    }
    tls
}

fn wss(driver: &str) {
    let origin = WsOrigin::start(Duration::ZERO);
    let Some(proxy) = wss_proxy(origin.addr, driver) else {
        return;
    };
    let (mut ws, response) = tungstenite::client::client_with_config(
        "wss://ws.test/greet",
        tls_connect(proxy.listen),
        Some(ws_config()),
    )
    .unwrap_or_else(|e| panic!("wss handshake: {e}"));
    assert_eq!(response.status(), 101);
    assert_eq!(
        next_tls_message(&mut ws),
        Message::text("hello from origin")
    );
    let seen = origin.requests();
    assert_eq!(seen[0].header("x-forwarded-proto"), Some("https"));
    for len in [1, 100_000, 4 << 20] {
        let data = payload(len, len as u64);
        ws.send(Message::binary(data.clone())).expect("send");
        assert_eq!(next_tls_message(&mut ws), Message::binary(data));
    }
    ws.close(None).expect("close");
    loop {
        match ws.read() {
            Ok(Message::Close(_)) => {}
            Ok(other) => panic!("after close: {other:?}"),
            Err(tungstenite::Error::ConnectionClosed) => break,
            Err(e) => panic!("close handshake: {e}"),
        }
    }
    origin.wait_event("the client's close", |e| {
        e.iter().any(|x| x.starts_with("client-close"))
    });

    // A forged TLS record while the proxy is blocked writing to a client that reads nothing:
    // the tunnel is cut, the proxy lives on.
    let (mut ws, _) = tungstenite::client::client_with_config(
        "wss://ws.test/chat",
        tls_connect(proxy.listen),
        Some(ws_config()),
    )
    .expect("second wss handshake");
    ws.send(Message::binary(payload(32 << 20, 1)))
        .expect("32 MiB out");
    thread::sleep(Duration::from_millis(500));
    let mut forged = vec![0x17, 0x03, 0x03, 0x00, 0x40];
    forged.extend_from_slice(&[0xAA; 0x40]);
    ws.get_mut().sock.write_all(&forged).expect("forged record");
    assert!(
        eof_within(&mut ws.get_mut().sock, Duration::from_secs(10)),
        "the tunnel survived a forged record"
    );

    // A TLS client that stops mid-head gets its 408 and the connection closes (its read was
    // dropped at the deadline: it must not be read again).
    let mut tls = tls_connect(proxy.listen);
    tls.write_all(b"GET / HTTP/1.1\r\nHost: ws.test\r\n")
        .expect("partial head");
    tls.flush().expect("flush");
    let mut got = Vec::new();
    let _ = tls.read_to_end(&mut got);
    let text = String::from_utf8_lossy(&got);
    assert!(text.starts_with("HTTP/1.1 408 "), "{text}");

    // Still serving.
    let (mut ws, _) = tungstenite::client::client_with_config(
        "wss://ws.test/chat",
        tls_connect(proxy.listen),
        Some(ws_config()),
    )
    .expect("wss after the forged record");
    ws.send(Message::text("alive")).expect("send");
    assert_eq!(next_tls_message(&mut ws), Message::text("alive"));
    wait_ws_metric(&proxy, "strait_websocket_upgrades_total", 3.0);
}

fn next_tls_message(ws: &mut WebSocket<Tls>) -> Message {
    loop {
        match ws.read() {
            Ok(Message::Pong(_)) => continue,
            Ok(m) => return m,
            Err(e) => panic!("reading a message: {e}"),
        }
    }
}

#[test]
fn wss_through_tls_termination_uring() {
    wss("uring");
}

#[test]
fn wss_through_tls_termination_epoll() {
    wss("epoll");
}
