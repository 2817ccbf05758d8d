//! UDP listeners against real UDP origins: many flows, per-client sessions, round robin, idle
//! expiry, the per-core limit, large datagrams — on both IO drivers.

mod common;

use std::net::{SocketAddr, UdpSocket};
use std::thread;
use std::time::Duration;

use common::*;

fn client() -> UdpSocket {
    let c = UdpSocket::bind("127.0.0.1:0").expect("bind client");
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    c
}

fn ask(c: &UdpSocket, to: SocketAddr, payload: &[u8]) -> Vec<u8> {
    c.send_to(payload, to).expect("send");
    let mut buf = vec![0u8; 65_535];
    let (n, from) = c.recv_from(&mut buf).expect("reply");
    assert_eq!(from, to, "the reply must come from the listener's address");
    buf.truncate(n);
    buf
}

fn udp_proxy(upstreams: &[SocketAddr], extra: &[&str]) -> Proxy {
    let mut a = args(&["--mode", "udp"]);
    for u in upstreams {
        a.extend(args(&["--upstream", &u.to_string()]));
    }
    a.extend(args(extra));
    // The quick form binds --listen for UDP; readiness is checked through the admin API.
    Proxy::quick(&a)
}

fn many_flows(driver: &str) {
    let origin = udp_origin("o");
    let proxy = udp_proxy(&[origin], &["--io-driver", driver, "--cores", "0-1"]);
    let listen = proxy.listen;
    let handles: Vec<_> = (0..32)
        .map(|i| {
            thread::spawn(move || {
                let c = client();
                for j in 0..25 {
                    let msg = format!("flow {i} datagram {j}");
                    assert_eq!(
                        ask(&c, listen, msg.as_bytes()),
                        format!("o:{msg}").into_bytes()
                    );
                }
            })
        })
        .collect();
    for h in handles {
        h.join().expect("flow");
    }
    let s = proxy.wait_stats("800 datagrams each way", |s| {
        s["listeners"][0]["datagrams_sent"] == 800
    });
    let l = &s["listeners"][0];
    assert_eq!(l["protocol"], "udp");
    assert_eq!(l["datagrams_received"], 800);
    assert_eq!(l["datagrams_dropped"], 0);
    // One session per client address, kept for all of its datagrams.
    assert_eq!(l["connections_accepted"], 32, "{s:#}");
}

#[test]
fn many_flows_get_their_own_replies_uring() {
    many_flows("uring");
}

#[test]
fn many_flows_get_their_own_replies_epoll() {
    many_flows("epoll");
}

#[test]
fn sessions_are_balanced_and_sticky() {
    let a = udp_origin("a");
    let b = udp_origin("b");
    let proxy = udp_proxy(&[a, b], &["--cores", "0"]);
    let mut seen = Vec::new();
    for _ in 0..6 {
        let c = client();
        let first = ask(&c, proxy.listen, b"x");
        // Every later datagram of the same client goes to the same origin.
        for _ in 0..3 {
            assert_eq!(ask(&c, proxy.listen, b"x"), first);
        }
        seen.push(first[0]);
    }
    assert_eq!(seen, b"ababab", "round robin across sessions");
}

#[test]
fn idle_sessions_expire_and_a_new_datagram_opens_a_new_one() {
    let origin = udp_origin("o");
    let proxy = udp_proxy(&[origin], &["--idle-timeout", "300ms", "--cores", "0"]);
    let c = client();
    assert_eq!(ask(&c, proxy.listen, b"1"), b"o:1");
    proxy.wait_stats("the idle session expired", |s| {
        s["listeners"][0]["idle_timeouts"] == 1 && s["listeners"][0]["connections_active"] == 0
    });
    assert_eq!(ask(&c, proxy.listen, b"2"), b"o:2");
    let s = proxy.stats();
    assert_eq!(s["listeners"][0]["connections_accepted"], 2);
}

#[test]
fn the_per_core_limit_drops_datagrams_of_new_clients_only() {
    let origin = udp_origin("o");
    let proxy = udp_proxy(
        &[origin],
        &["--cores", "0", "--max-connections-per-core", "2"],
    );
    let (c1, c2, c3) = (client(), client(), client());
    assert_eq!(ask(&c1, proxy.listen, b"1"), b"o:1");
    assert_eq!(ask(&c2, proxy.listen, b"2"), b"o:2");
    c3.set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    c3.send_to(b"3", proxy.listen).unwrap();
    let mut buf = [0u8; 16];
    assert!(
        c3.recv_from(&mut buf).is_err(),
        "a third session must not be created"
    );
    // Existing sessions keep working.
    assert_eq!(ask(&c1, proxy.listen, b"again"), b"o:again");
    let s = proxy.stats();
    let l = &s["listeners"][0];
    assert_eq!(l["connections_rejected"], 1, "{s:#}");
    assert_eq!(l["datagrams_dropped"], 1);
    assert_eq!(l["connections_active"], 2);
}

#[test]
fn large_datagrams_pass_intact() {
    let origin = udp_origin("o");
    let proxy = udp_proxy(&[origin], &["--cores", "0"]);
    let c = client();
    let big = payload(60_000, 3);
    let reply = ask(&c, proxy.listen, &big);
    assert_eq!(&reply[..2], b"o:");
    assert_eq!(checksum(&reply[2..]), checksum(&big));
}

#[test]
fn draining_keeps_open_sessions_refuses_new_ones_and_exits_when_they_end() {
    let origin = udp_origin("o");
    let mut proxy = udp_proxy(
        &[origin],
        &[
            "--cores",
            "0",
            "--idle-timeout",
            "600ms",
            "--drain-timeout",
            "20s",
        ],
    );
    let old = client();
    assert_eq!(ask(&old, proxy.listen, b"before"), b"o:before");
    proxy.signal(libc::SIGTERM);
    proxy.wait_stats("draining", |s| s["draining"] == true);
    // The open session still gets replies from the listener's address...
    assert_eq!(ask(&old, proxy.listen, b"during"), b"o:during");
    // ...while a new client gets nothing.
    let new = client();
    new.set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    new.send_to(b"new", proxy.listen).unwrap();
    let mut buf = [0u8; 16];
    assert!(
        new.recv_from(&mut buf).is_err(),
        "no new sessions while draining"
    );
    // Once the last session idles out, the drain completes long before its 20 s deadline.
    let started = std::time::Instant::now();
    let status = proxy.wait_exit(Duration::from_secs(10));
    assert!(status.success(), "{status}");
    assert!(started.elapsed() < Duration::from_secs(5));
}
