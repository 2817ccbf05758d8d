//! The L4 TCP proxy against real origins: integrity, half-close, failover, timeouts, limits,
//! PROXY protocol and hostile peers — on both IO drivers where the driver matters.

mod common;

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use common::*;

fn echo_proxy(driver: &str, relay: &str, extra: &[&str]) -> (Origin, Proxy) {
    let origin = Origin::echo();
    let mut a = args(&[
        "--upstream",
        &origin.addr.to_string(),
        "--io-driver",
        driver,
        "--relay",
        relay,
    ]);
    a.extend(args(extra));
    let proxy = Proxy::quick(&a);
    (origin, proxy)
}

fn driver_name(driver: &str) -> &'static str {
    if driver == "uring" {
        "io_uring"
    } else {
        "epoll"
    }
}

/// 48 concurrent connections of 1 MiB each plus one of 48 MiB: every byte back, in order.
fn many_concurrent_transfers(driver: &str, relay: &str) {
    let (_origin, proxy) = echo_proxy(driver, relay, &["--cores", "0-1"]);
    let stats = proxy.stats();
    for core in stats["cores"].as_array().unwrap() {
        assert_eq!(core["driver"], driver_name(driver), "{stats:#}");
    }
    let mut handles = Vec::new();
    for i in 0..48u64 {
        let addr = proxy.listen;
        let len = if i == 0 { 48 << 20 } else { 1 << 20 };
        handles.push(thread::spawn(move || {
            let data = Arc::new(payload(len, i + 1));
            let got = round_trip(addr, data.clone()).expect("round trip");
            assert_eq!(got.len(), data.len(), "connection {i}: length");
            assert_eq!(checksum(&got), checksum(&data), "connection {i}: checksum");
        }));
    }
    for h in handles {
        h.join().expect("transfer thread");
    }
    let expected_bytes = (48u64 << 20) + 47 * (1 << 20);
    let s = proxy.wait_stats("all 48 connections closed", |s| {
        s["listeners"][0]["connections_closed"] == 48
    });
    let l = &s["listeners"][0];
    assert_eq!(l["connections_accepted"], 48);
    assert_eq!(l["received_bytes"], expected_bytes);
    assert_eq!(l["sent_bytes"], expected_bytes);
    assert_eq!(l["client_errors"], 0);
    assert_eq!(l["upstream_errors"], 0);
    let spliced: u64 = s["cores"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["relayed_splice"].as_u64().unwrap())
        .sum();
    let copied: u64 = s["cores"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["relayed_copy"].as_u64().unwrap())
        .sum();
    if relay == "splice" {
        assert_eq!(spliced, 48, "{s:#}");
    } else {
        assert_eq!(copied, 48, "{s:#}");
    }
}

#[test]
fn concurrent_transfers_are_byte_exact_uring_splice() {
    many_concurrent_transfers("uring", "splice");
}

#[test]
fn concurrent_transfers_are_byte_exact_epoll_splice() {
    many_concurrent_transfers("epoll", "splice");
}

#[test]
fn concurrent_transfers_are_byte_exact_uring_copy() {
    many_concurrent_transfers("uring", "copy");
}

#[test]
fn concurrent_transfers_are_byte_exact_epoll_copy() {
    many_concurrent_transfers("epoll", "copy");
}

/// Client finishes sending first: the origin must see EOF (our shutdown), then still be able to
/// answer on the other direction.
fn client_half_close(driver: &str) {
    let origin = Origin::start(|mut s| {
        let Some(total) = count_until_eof(&mut s) else {
            return;
        };
        let _ = s.write_all(format!("received {total}\n").as_bytes());
    });
    let proxy = Proxy::quick(&args(&[
        "--upstream",
        &origin.addr.to_string(),
        "--io-driver",
        driver,
    ]));
    let mut s = connect(proxy.listen);
    let data = payload(3 << 20, 7);
    s.write_all(&data).unwrap();
    s.shutdown(Shutdown::Write).unwrap();
    let (reply, end) = read_until_closed(&mut s);
    end.expect("clean close after the reply");
    assert_eq!(
        String::from_utf8_lossy(&reply),
        format!("received {}\n", 3 << 20)
    );
}

#[test]
fn client_half_close_keeps_the_reply_direction_open_uring() {
    client_half_close("uring");
}

#[test]
fn client_half_close_keeps_the_reply_direction_open_epoll() {
    client_half_close("epoll");
}

/// Origin finishes sending first: the client must read EOF, and its later bytes must still reach
/// the origin.
fn upstream_half_close(driver: &str) {
    let received = Arc::new(AtomicUsize::new(usize::MAX));
    let r = received.clone();
    let origin = Origin::start(move |mut s| {
        let _ = s.write_all(b"banner\n");
        let _ = s.shutdown(Shutdown::Write);
        let Some(total) = count_until_eof(&mut s) else {
            return;
        };
        r.store(total, Ordering::SeqCst);
    });
    let proxy = Proxy::quick(&args(&[
        "--upstream",
        &origin.addr.to_string(),
        "--io-driver",
        driver,
    ]));
    let mut s = connect(proxy.listen);
    let mut banner = Vec::new();
    s.try_clone()
        .unwrap()
        .read_to_end(&mut banner)
        .expect("EOF after banner");
    assert_eq!(banner, b"banner\n");
    let data = payload(2 << 20, 9);
    s.write_all(&data).unwrap();
    s.shutdown(Shutdown::Write).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while received.load(Ordering::SeqCst) == usize::MAX && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(received.load(Ordering::SeqCst), 2 << 20);
    proxy.wait_stats("the connection closed cleanly", |s| {
        s["listeners"][0]["connections_closed"] == 1 && s["listeners"][0]["upstream_errors"] == 0
    });
}

#[test]
fn upstream_half_close_keeps_the_client_direction_open_uring() {
    upstream_half_close("uring");
}

#[test]
fn upstream_half_close_keeps_the_client_direction_open_epoll() {
    upstream_half_close("epoll");
}

#[test]
fn failed_endpoints_are_skipped_for_the_next_one() {
    let origin = Origin::echo();
    let dead1 = dead_addr();
    let dead2 = dead_addr();
    let proxy = Proxy::quick(&args(&[
        "--upstream",
        &dead1.to_string(),
        "--upstream",
        &dead2.to_string(),
        "--upstream",
        &origin.addr.to_string(),
        "--cores",
        "0",
    ]));
    for i in 0..12u64 {
        let data = Arc::new(payload(10_000, i));
        let got = round_trip(proxy.listen, data.clone()).expect("round trip");
        assert_eq!(checksum(&got), checksum(&data), "connection {i}");
    }
    let s = proxy.stats();
    let c = &s["clusters"][0];
    assert_eq!(c["upstream_connections"], 12);
    assert_eq!(c["unavailable"], 0);
    // Round robin starts on a different endpoint each time, so both dead ones were tried.
    assert!(c["connect_failures"].as_u64().unwrap() >= 8, "{s:#}");
    assert_eq!(c["endpoints"][2]["connections"], 12);
    assert_eq!(origin.connection_count(), 12);
}

#[test]
fn all_endpoints_down_closes_the_client_and_counts_it() {
    let proxy = Proxy::quick(&args(&[
        "--upstream",
        &dead_addr().to_string(),
        "--upstream",
        &dead_addr().to_string(),
        "--connect-attempts",
        "5",
    ]));
    let started = Instant::now();
    if let Some(mut s) = connect_or_reset(proxy.listen) {
        let (got, _) = read_until_closed(&mut s);
        assert!(got.is_empty());
    }
    assert!(started.elapsed() < Duration::from_secs(5));
    let st = proxy.wait_stats("an unavailable cluster", |s| {
        s["clusters"][0]["unavailable"] == 1
    });
    // Each endpoint is tried at most once per client connection even with more attempts allowed.
    assert_eq!(st["clusters"][0]["connect_failures"], 2);
    assert_eq!(st["listeners"][0]["no_upstream"], 1);
}

/// A listener whose accept queue is full drops SYNs, so connecting to it hangs: a loopback-only
/// way to exercise the connect timeout.
fn blackhole() -> (socket2::Socket, Vec<TcpStream>, SocketAddr) {
    use socket2::{Domain, Socket, Type};
    let sock = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    sock.bind(&"127.0.0.1:0".parse::<SocketAddr>().unwrap().into())
        .unwrap();
    sock.listen(0).unwrap();
    let addr = sock.local_addr().unwrap().as_socket().unwrap();
    let mut fillers = Vec::new();
    for _ in 0..8 {
        if let Ok(s) = TcpStream::connect_timeout(&addr, Duration::from_millis(200)) {
            fillers.push(s);
        }
    }
    (sock, fillers, addr)
}

#[test]
fn connect_timeout_fails_over_to_a_live_endpoint() {
    let (_hole, _fillers, hole_addr) = blackhole();
    if TcpStream::connect_timeout(&hole_addr, Duration::from_millis(300)).is_ok() {
        eprintln!("skipped: this kernel did not drop SYNs to a full accept queue");
        return;
    }
    let origin = Origin::echo();
    let proxy = Proxy::quick(&args(&[
        "--upstream",
        &hole_addr.to_string(),
        "--upstream",
        &origin.addr.to_string(),
        "--connect-timeout",
        "200ms",
        "--cores",
        "0",
    ]));
    for i in 0..4u64 {
        let data = Arc::new(payload(1000, i));
        let got = round_trip(proxy.listen, data.clone()).expect("round trip");
        assert_eq!(got, *data);
    }
    let s = proxy.stats();
    assert!(
        s["clusters"][0]["connect_timeouts"].as_u64().unwrap() >= 1,
        "{s:#}"
    );
    assert_eq!(s["clusters"][0]["endpoints"][0]["connections"], 0);
    assert_eq!(s["clusters"][0]["endpoints"][1]["connections"], 4);
}

#[test]
fn idle_connections_are_closed_and_counted() {
    let (_origin, proxy) = echo_proxy("uring", "splice", &["--idle-timeout", "300ms"]);
    let mut idle = connect(proxy.listen);
    // A busy connection trickling bytes under the timeout must survive it.
    let mut busy = connect(proxy.listen);
    let started = Instant::now();
    for _ in 0..8 {
        busy.write_all(b"x").unwrap();
        let mut one = [0u8; 1];
        busy.read_exact(&mut one).unwrap();
        thread::sleep(Duration::from_millis(100));
    }
    let (got, _) = read_until_closed(&mut idle);
    assert!(got.is_empty());
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(250),
        "closed too early: {waited:?}"
    );
    busy.write_all(b"y").unwrap();
    let mut one = [0u8; 1];
    busy.read_exact(&mut one)
        .expect("busy connection still open");
    assert_eq!(&one, b"y");
    proxy.wait_stats("one idle timeout", |s| {
        s["listeners"][0]["idle_timeouts"] == 1
    });
}

#[test]
fn connections_over_the_per_core_limit_are_closed_at_once() {
    let (_origin, proxy) = echo_proxy(
        "uring",
        "splice",
        &["--cores", "0", "--max-connections-per-core", "2"],
    );
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut s = connect(proxy.listen);
        s.write_all(b"ping").unwrap();
        let mut buf = [0u8; 4];
        s.read_exact(&mut buf).unwrap();
        held.push(s);
    }
    let started = Instant::now();
    // The reset can arrive before connect(2) has even returned; either way it is a rejection.
    if let Some(mut extra) = connect_or_reset(proxy.listen) {
        let _ = extra.write_all(b"ping");
        let (got, _) = read_until_closed(&mut extra);
        assert!(
            got.is_empty(),
            "the rejected connection must not reach the origin"
        );
    }
    assert!(started.elapsed() < Duration::from_secs(2));
    let s = proxy.wait_stats("one rejection", |s| {
        s["cores"][0]["connections_rejected"] == 1
    });
    assert_eq!(s["listeners"][0]["connections_rejected"], 1);
    assert_eq!(s["listeners"][0]["connections_active"], 2);
    // Capacity comes back when a connection closes.
    drop(held.pop());
    proxy.wait_stats("one active connection", |s| {
        s["listeners"][0]["connections_active"] == 1
    });
    let data = Arc::new(payload(5000, 3));
    assert_eq!(round_trip(proxy.listen, data.clone()).unwrap(), *data);
}

fn proxy_protocol_reaches_the_origin(version: &str) {
    type Seen = Arc<Mutex<Option<(Option<SocketAddr>, Option<SocketAddr>)>>>;
    let seen: Seen = Arc::new(Mutex::new(None));
    let seen2 = seen.clone();
    let origin = Origin::start(move |mut s| {
        let mut buf = Vec::new();
        let mut chunk = [0u8; 512];
        let rest = loop {
            let n = match s.read(&mut chunk) {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            buf.extend_from_slice(&chunk[..n]);
            match strait_protocols::proxy_protocol::decode(&buf) {
                Ok(strait_protocols::proxy_protocol::Decoded::Incomplete) => continue,
                Ok(strait_protocols::proxy_protocol::Decoded::Header { src, dst, consumed }) => {
                    *seen2.lock().unwrap() = Some((src, dst));
                    break buf[consumed..].to_vec();
                }
                Err(e) => panic!("bad PROXY header: {e}"),
            }
        };
        let _ = s.write_all(&rest);
        let mut b = [0u8; 4096];
        while let Ok(n) = s.read(&mut b) {
            if n == 0 || s.write_all(&b[..n]).is_err() {
                break;
            }
        }
        let _ = s.shutdown(Shutdown::Write);
    });
    let proxy = Proxy::quick(&args(&[
        "--upstream",
        &origin.addr.to_string(),
        "--proxy-protocol",
        version,
    ]));
    let mut s = connect(proxy.listen);
    let client_addr = s.local_addr().unwrap();
    s.write_all(b"after the header").unwrap();
    s.shutdown(Shutdown::Write).unwrap();
    let (got, end) = read_until_closed(&mut s);
    end.unwrap();
    assert_eq!(got, b"after the header");
    let (src, dst) = seen.lock().unwrap().expect("origin saw a header");
    assert_eq!(src, Some(client_addr));
    assert_eq!(dst, Some(proxy.listen));
}

#[test]
fn proxy_protocol_v1_announces_the_client() {
    proxy_protocol_reaches_the_origin("v1");
}

#[test]
fn proxy_protocol_v2_announces_the_client() {
    proxy_protocol_reaches_the_origin("v2");
}

fn set_linger_zero(s: &TcpStream) {
    socket2::SockRef::from(s)
        .set_linger(Some(Duration::ZERO))
        .unwrap();
}

#[test]
fn resets_on_either_side_abort_the_other_and_the_proxy_keeps_serving() {
    // Origin that reads a little, then resets.
    let resetting = Origin::start(|mut s| {
        let mut buf = [0u8; 1024];
        let _ = s.read(&mut buf);
        set_linger_zero(&s);
    });
    let proxy = Proxy::quick(&args(&["--upstream", &resetting.addr.to_string()]));
    let mut c = connect(proxy.listen);
    c.write_all(b"hello").unwrap();
    let (_, end) = read_until_closed(&mut c);
    let err = end.expect_err("an upstream reset must reach the client as a reset, not a clean EOF");
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionReset, "{err}");
    proxy.wait_stats("an upstream error", |s| {
        s["listeners"][0]["upstream_errors"] == 1
    });

    // Client that resets in the middle of a transfer, against an echo origin.
    let (_echo, proxy) = echo_proxy("uring", "splice", &[]);
    for _ in 0..5 {
        let mut c = connect(proxy.listen);
        c.write_all(&payload(256 * 1024, 1)).unwrap();
        set_linger_zero(&c);
        drop(c);
    }
    // Garbage is just bytes at L4: echoed untouched.
    let garbage = Arc::new((0..=255u8).cycle().take(100_000).collect::<Vec<u8>>());
    assert_eq!(round_trip(proxy.listen, garbage.clone()).unwrap(), *garbage);
    let s = proxy.wait_stats("all six closed", |s| {
        s["listeners"][0]["connections_closed"] == 6
    });
    assert!(
        s["listeners"][0]["client_errors"].as_u64().unwrap() >= 1,
        "{s:#}"
    );
}

#[test]
fn file_descriptor_exhaustion_is_survived() {
    let origin = Origin::echo();
    let listen = free_addr();
    let admin = free_addr();
    let a = args(&[
        "run",
        "--listen",
        &listen.to_string(),
        "--upstream",
        &origin.addr.to_string(),
        "--admin",
        &admin.to_string(),
        "--cores",
        "0",
        "--log-format",
        "json",
    ]);
    let mut proxy = Proxy::spawn(&a, Some("ulimit -n 48"), listen, admin);
    // Far more connections than 48 descriptors allow: some wait in the backlog or are refused.
    let mut clients = Vec::new();
    for _ in 0..40 {
        if let Ok(s) = TcpStream::connect_timeout(&listen, Duration::from_secs(2)) {
            s.set_read_timeout(Some(Duration::from_millis(200)))
                .unwrap();
            clients.push(s);
        }
    }
    thread::sleep(Duration::from_millis(500));
    assert!(
        proxy.child.try_wait().unwrap().is_none(),
        "strait died:\n{}",
        proxy.logs()
    );
    drop(clients);
    // Once descriptors are free again, service resumes.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let data = Arc::new(payload(4096, 5));
        if let Ok(got) = round_trip(listen, data.clone()) {
            if got == *data {
                break;
            }
        }
        assert!(Instant::now() < deadline, "no recovery:\n{}", proxy.logs());
        thread::sleep(Duration::from_millis(100));
    }
    let logs = proxy.logs();
    assert!(
        logs.contains("out of resources") || logs.contains("Too many open files"),
        "exhaustion should be logged:\n{logs}"
    );
    assert!(proxy.child.try_wait().unwrap().is_none());
    proxy.signal(libc::SIGTERM);
    assert!(proxy.wait_exit(Duration::from_secs(10)).success());
}

/// Other connections on a core stay responsive while bulk streams saturate it. (The relay's yield
/// budget, which guards the case where a source never runs dry, is proven by a unit test in
/// `protocols/src/relay`; on loopback the kernel usually returns EAGAIN often enough by itself.)
#[test]
fn a_bulk_stream_does_not_starve_other_connections_on_its_core() {
    let origin = Origin::start(|mut s| {
        let mut first = [0u8; 1];
        if s.read_exact(&mut first).is_err() {
            return;
        }
        if first[0] == b'B' {
            let chunk = vec![0x5au8; 256 * 1024];
            let until = Instant::now() + Duration::from_secs(4);
            while Instant::now() < until {
                if s.write_all(&chunk).is_err() {
                    return;
                }
            }
            return;
        }
        let mut buf = [0u8; 64];
        let _ = s.write_all(&first);
        while let Ok(n) = s.read(&mut buf) {
            if n == 0 || s.write_all(&buf[..n]).is_err() {
                return;
            }
        }
    });
    let proxy = Proxy::quick(&args(&[
        "--upstream",
        &origin.addr.to_string(),
        "--cores",
        "0",
    ]));
    // Several bulk streams make the proxy's core the bottleneck, so their sources never run dry:
    // exactly when a pump without a budget would never yield.
    let readers: Vec<_> = (0..3)
        .map(|_| {
            let mut bulk = connect(proxy.listen);
            bulk.write_all(b"B").unwrap();
            thread::spawn(move || {
                let (got, _) = read_until_closed(&mut bulk);
                got.len()
            })
        })
        .collect();
    thread::sleep(Duration::from_millis(300));
    let mut ping = connect(proxy.listen);
    let mut worst = Duration::ZERO;
    for _ in 0..40 {
        let t = Instant::now();
        ping.write_all(b"p").unwrap();
        let mut one = [0u8; 1];
        ping.read_exact(&mut one).unwrap();
        worst = worst.max(t.elapsed());
        thread::sleep(Duration::from_millis(25));
    }
    let bulk_bytes: usize = readers.into_iter().map(|r| r.join().unwrap()).sum();
    assert!(
        bulk_bytes > 64 << 20,
        "the bulk streams barely flowed ({bulk_bytes} bytes)"
    );
    // Generous: this checks starvation (seconds), not latency.
    assert!(
        worst < Duration::from_millis(500),
        "a ping waited {worst:?} behind the bulk stream"
    );
}

#[test]
fn a_burst_of_connections_never_exceeds_the_per_core_limit() {
    let (_origin, proxy) = echo_proxy(
        "uring",
        "copy",
        &["--cores", "0", "--max-connections-per-core", "5"],
    );
    let listen = proxy.listen;
    let clients: Vec<_> = (0..30)
        .map(|_| {
            thread::spawn(move || TcpStream::connect_timeout(&listen, Duration::from_secs(5)).ok())
        })
        .collect();
    let held: Vec<TcpStream> = clients
        .into_iter()
        .filter_map(|c| c.join().unwrap())
        .collect();
    let s = proxy.wait_stats("30 connections decided", |s| {
        s["listeners"][0]["connections_accepted"].as_u64().unwrap()
            + s["listeners"][0]["connections_rejected"].as_u64().unwrap()
            == 30
    });
    assert_eq!(s["listeners"][0]["connections_accepted"], 5, "{s:#}");
    assert_eq!(s["listeners"][0]["connections_active"], 5, "{s:#}");
    assert_eq!(s["listeners"][0]["connections_rejected"], 25, "{s:#}");
    drop(held);
}
