//! gRPC through the real binary: a tonic client and a tonic server (hand-written service, no
//! protoc) on loopback, the proxy listening for h2c and speaking h2c to the cluster. Unary,
//! server/client/bidirectional streaming, status trailers, deadlines, and errors the proxy makes
//! itself, which must come in gRPC form (HTTP 200 + `grpc-status`), not as transport failures.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::grpc::*;
use common::h2_support::H2Origin;
use common::http::{block_on, config_proxy};
use common::{dead_addr, Proxy};
use tonic::{Code, Request};

const LIMIT: Duration = Duration::from_secs(20);

/// A listener accepting h2c only, with routes to the tonic origin (`/strait.test.Echo`), to an
/// h2c origin that answers after 2 s and knows nothing of `grpc-timeout` (`/strait.test.Slow`),
/// and to a cluster whose only endpoint refuses connections (`/strait.test.Down`). Nothing else
/// routes.
fn grpc_proxy(origin: SocketAddr, slow: SocketAddr) -> Proxy {
    let toml = format!(
        r#"
[[listener]]
name = "grpc"
address = "LISTEN"
protocols = ["h2c"]

[[listener.route]]
name = "echo"
path_prefix = "/strait.test.Echo"
cluster = "echo"

[[listener.route]]
name = "down"
path_prefix = "/strait.test.Down"
cluster = "down"

[[listener.route]]
name = "slow"
path_prefix = "/strait.test.Slow"
rewrite_prefix = "/h2/sleep/2000"
cluster = "slow"

[[cluster]]
name = "echo"
protocol = "h2c"
endpoints = [{{ address = "{origin}" }}]

[[cluster]]
name = "down"
protocol = "h2c"
connect_timeout = "1s"
endpoints = [{{ address = "{dead}" }}]

[[cluster]]
name = "slow"
protocol = "h2c"
endpoints = [{{ address = "{slow}" }}]
"#,
        dead = dead_addr()
    );
    config_proxy(&toml, &[])
}

struct Setup {
    origin: GrpcOrigin,
    slow: H2Origin,
    proxy: Proxy,
}

fn setup() -> Setup {
    let origin = GrpcOrigin::start();
    let slow = H2Origin::start();
    let proxy = grpc_proxy(origin.addr, slow.addr);
    Setup {
        origin,
        slow,
        proxy,
    }
}

#[test]
fn unary_call_round_trips_with_proxy_headers() {
    let Setup {
        origin,
        slow: _slow,
        proxy,
    } = setup();
    let addr = proxy.listen;
    block_on(LIMIT, async move {
        let mut client = channel_client(addr).await;
        for i in 0..20 {
            let msg = format!("hello {i}");
            let resp = unary(&mut client, Request::new(echo_request(&msg)))
                .await
                .unwrap_or_else(|s| panic!("unary {i}: {s:?}"));
            assert_eq!(resp.get_ref().message, msg);
            assert_eq!(
                resp.metadata().get("via").and_then(|v| v.to_str().ok()),
                Some("2 strait"),
                "{:?}",
                resp.metadata()
            );
            assert!(resp.metadata().get("x-request-id").is_some());
        }
    });
    assert_eq!(origin.calls(), 20);
}

#[test]
fn server_streaming_delivers_100_messages_in_order() {
    let Setup {
        origin: _origin,
        slow: _slow,
        proxy,
    } = setup();
    let addr = proxy.listen;
    block_on(LIMIT, async move {
        let mut client = channel_client(addr).await;
        client.ready().await.expect("ready");
        let req = EchoRequest {
            message: "item".into(),
            count: 100,
            ..EchoRequest::default()
        };
        let resp = client
            .server_streaming(Request::new(req), path("ServerStream"), codec())
            .await
            .expect("server streaming call");
        let mut stream = resp.into_inner();
        let mut got = Vec::new();
        while let Some(m) = stream.message().await.expect("stream message") {
            got.push(m);
        }
        assert_eq!(got.len(), 100);
        for (i, m) in got.iter().enumerate() {
            assert_eq!(m.seq, i as u32);
            assert_eq!(m.message, format!("item {i}"));
        }
        // The end of the stream carried grpc-status 0 (a missing status would be an error).
        let trailers = stream.trailers().await.expect("trailers");
        assert!(trailers.is_some(), "no trailers after the stream");
    });
}

#[test]
fn client_streaming_collects_every_message() {
    let Setup {
        origin: _origin,
        slow: _slow,
        proxy,
    } = setup();
    let addr = proxy.listen;
    block_on(LIMIT, async move {
        let mut client = channel_client(addr).await;
        client.ready().await.expect("ready");
        let msgs: Vec<EchoRequest> = (0..50).map(|i| echo_request(&format!("m{i}"))).collect();
        let want: Vec<String> = (0..50).map(|i| format!("m{i}")).collect();
        let resp = client
            .client_streaming(
                Request::new(tokio_stream::iter(msgs)),
                path("ClientStream"),
                codec(),
            )
            .await
            .expect("client streaming call");
        assert_eq!(resp.get_ref().seq, 50);
        assert_eq!(resp.get_ref().message, want.join(","));
    });
}

/// Ping-pong: each request message is sent only after the reply to the previous one arrived,
/// so the call completes only if both directions stream at the same time through the proxy.
#[test]
fn bidirectional_streaming_ping_pong_interleaves() {
    let Setup {
        origin: _origin,
        slow: _slow,
        proxy,
    } = setup();
    let addr = proxy.listen;
    block_on(LIMIT, async move {
        let mut client = channel_client(addr).await;
        client.ready().await.expect("ready");
        let (tx, rx) = tokio::sync::mpsc::channel::<EchoRequest>(1);
        tx.send(echo_request("0")).await.expect("first ping");
        let resp = client
            .streaming(
                Request::new(tokio_stream::wrappers::ReceiverStream::new(rx)),
                path("Bidi"),
                codec(),
            )
            .await
            .expect("bidi call");
        let mut replies = resp.into_inner();
        for round in 0..50u32 {
            let reply = tokio::time::timeout(Duration::from_secs(5), replies.message())
                .await
                .unwrap_or_else(|_| panic!("round {round}: no pong within 5 s"))
                .unwrap_or_else(|s| panic!("round {round}: {s:?}"))
                .unwrap_or_else(|| panic!("round {round}: the stream ended"));
            assert_eq!(reply.message, format!("pong {round}"));
            assert_eq!(reply.seq, round);
            if round < 49 {
                tx.send(echo_request(&(round + 1).to_string()))
                    .await
                    .expect("ping");
            }
        }
        drop(tx);
        let end = tokio::time::timeout(Duration::from_secs(5), replies.message())
            .await
            .expect("the stream did not end after the client's half-close");
        assert!(matches!(end, Ok(None)), "{end:?}");
    });
}

#[test]
fn status_and_message_from_the_server_are_delivered() {
    let Setup {
        origin: _origin,
        slow: _slow,
        proxy,
    } = setup();
    let addr = proxy.listen;
    block_on(LIMIT, async move {
        let mut client = channel_client(addr).await;
        for (code, message) in [
            (Code::NotFound, "x"),
            (Code::PermissionDenied, "no entry: 100% / ünïcode"),
            (Code::ResourceExhausted, "slow down"),
        ] {
            let req = EchoRequest {
                message: message.into(),
                code: code as i32,
                ..EchoRequest::default()
            };
            let status = unary(&mut client, Request::new(req))
                .await
                .expect_err("the server failed the call");
            assert_eq!(status.code(), code, "{status:?}");
            assert_eq!(status.message(), message, "{status:?}");
        }
        // The connection is still good for a successful call.
        let ok = unary(&mut client, Request::new(echo_request("after")))
            .await
            .expect("call after errors");
        assert_eq!(ok.get_ref().message, "after");
    });
}

/// `grpc-timeout: 200m` from a client transport that does not enforce it itself, to an upstream
/// that takes 2 s and ignores the header: the proxy ends the call with DEADLINE_EXCEEDED (in
/// gRPC form) well within a second.
#[test]
fn grpc_timeout_is_enforced_by_the_proxy() {
    let Setup {
        origin: _origin,
        slow,
        proxy,
    } = setup();
    let addr = proxy.listen;
    block_on(LIMIT, async move {
        let mut client = bare_client(addr).await;
        let mut req = Request::new(echo_request("slow"));
        req.metadata_mut()
            .insert("grpc-timeout", "200m".parse().expect("value"));
        client.ready().await.expect("ready");
        let started = Instant::now();
        let status = client
            .unary(
                req,
                "/strait.test.Slow/Unary".parse().expect("path"),
                codec(),
            )
            .await
            .expect_err("the call must not succeed");
        let took = started.elapsed();
        assert_eq!(status.code(), Code::DeadlineExceeded, "{status:?}");
        assert_eq!(status.message(), "upstream_timeout", "{status:?}");
        assert!(took < Duration::from_secs(1), "took {took:?}");
        assert!(took >= Duration::from_millis(150), "took {took:?}");
        // The same connection goes on working.
        let ok = unary(&mut client, Request::new(echo_request("after")))
            .await
            .expect("call after the deadline");
        assert_eq!(ok.get_ref().message, "after");
    });
    let seen = slow
        .wait_request("/h2/sleep/2000/Unary", Duration::from_secs(1))
        .expect("the call reached the upstream");
    assert_eq!(
        seen.headers.get("grpc-timeout").map(|v| v.as_bytes()),
        Some(&b"200m"[..]),
        "grpc-timeout is passed upstream"
    );
}

/// The same with the request stream still open when the deadline passes (a client-streaming
/// call whose client has more to send): the client is answered DEADLINE_EXCEEDED at the
/// deadline, not when it finally ends its stream.
#[test]
fn grpc_timeout_is_enforced_while_the_request_stream_is_open() {
    let Setup {
        origin: _origin,
        slow: _slow,
        proxy,
    } = setup();
    let addr = proxy.listen;
    block_on(LIMIT, async move {
        let mut client = bare_client(addr).await;
        let (tx, rx) = tokio::sync::mpsc::channel::<EchoRequest>(1);
        tx.send(echo_request("first")).await.expect("first message");
        let mut req = Request::new(tokio_stream::wrappers::ReceiverStream::new(rx));
        req.metadata_mut()
            .insert("grpc-timeout", "200m".parse().expect("value"));
        client.ready().await.expect("ready");
        let started = Instant::now();
        let call = client.client_streaming(
            req,
            "/strait.test.Slow/Stream".parse().expect("path"),
            codec(),
        );
        let status = tokio::time::timeout(Duration::from_secs(3), call)
            .await
            .unwrap_or_else(|_| {
                panic!("no answer 3 s after a 200 ms deadline while the request stream is open")
            })
            .expect_err("the call must not succeed");
        let took = started.elapsed();
        assert_eq!(status.code(), Code::DeadlineExceeded, "{status:?}");
        assert!(took < Duration::from_secs(1), "took {took:?}");
        drop(tx);
    });
}

/// A tonic client with a 200 ms timeout (`Request::set_timeout`) on a tonic method that sleeps
/// 2 s: the call fails with a deadline error within a second. Three timers race here (tonic's
/// client, the proxy, and tonic's server, which enforces `grpc-timeout` too); tonic reports the
/// expiry of its own timers as CANCELLED "Timeout expired", the proxy as DEADLINE_EXCEEDED.
#[test]
fn client_deadline_through_the_proxy() {
    let Setup {
        origin: _origin,
        slow: _slow,
        proxy,
    } = setup();
    let addr = proxy.listen;
    block_on(LIMIT, async move {
        let mut client = channel_client(addr).await;
        let mut req = Request::new(EchoRequest {
            message: "slow".into(),
            sleep_ms: 2000,
            ..EchoRequest::default()
        });
        req.set_timeout(Duration::from_millis(200));
        let started = Instant::now();
        let status = unary(&mut client, req)
            .await
            .expect_err("the call must not succeed");
        let took = started.elapsed();
        assert!(
            status.code() == Code::DeadlineExceeded
                || (status.code() == Code::Cancelled && status.message().contains("Timeout")),
            "{status:?}"
        );
        assert!(took < Duration::from_secs(1), "took {took:?}");
        let ok = unary(&mut client, Request::new(echo_request("after")))
            .await
            .expect("call after the deadline");
        assert_eq!(ok.get_ref().message, "after");
    });
}

#[test]
fn dead_upstream_is_unavailable_in_grpc_form() {
    let Setup {
        origin: _origin,
        slow: _slow,
        proxy,
    } = setup();
    let addr = proxy.listen;
    block_on(LIMIT, async move {
        let mut client = channel_client(addr).await;
        client.ready().await.expect("ready");
        let status = client
            .unary(
                Request::new(echo_request("anyone?")),
                "/strait.test.Down/Unary".parse().expect("path"),
                codec(),
            )
            .await
            .expect_err("the upstream is down");
        assert_eq!(status.code(), Code::Unavailable, "{status:?}");
        // Said by the proxy in grpc-status/grpc-message, not a transport failure.
        assert_eq!(status.message(), "connect_failed", "{status:?}");
        assert!(
            status.metadata().get("x-request-id").is_some(),
            "{status:?}"
        );
        let ok = unary(&mut client, Request::new(echo_request("still here")))
            .await
            .expect("a routable call on the same channel");
        assert_eq!(ok.get_ref().message, "still here");
    });
}

#[test]
fn unknown_path_is_unimplemented_in_grpc_form() {
    let Setup {
        origin,
        slow: _slow,
        proxy,
    } = setup();
    let addr = proxy.listen;
    block_on(LIMIT, async move {
        let mut client = channel_client(addr).await;
        client.ready().await.expect("ready");
        let status = client
            .unary(
                Request::new(echo_request("hm")),
                "/strait.test.Nope/Unary".parse().expect("path"),
                codec(),
            )
            .await
            .expect_err("no route");
        assert_eq!(status.code(), Code::Unimplemented, "{status:?}");
        assert_eq!(status.message(), "no_route", "{status:?}");
    });
    assert_eq!(origin.calls(), 0, "an unrouted call reached the origin");
}
