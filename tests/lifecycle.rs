//! Process lifecycle against the real binary: graceful drain, drain deadline, second signal,
//! per-core spread, and the admin endpoint.

mod common;

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use common::*;

#[test]
fn sigterm_drains_an_in_flight_transfer_then_exits_zero() {
    let origin = Origin::echo();
    let mut proxy = Proxy::quick(&args(&[
        "--upstream",
        &origin.addr.to_string(),
        "--drain-timeout",
        "20s",
    ]));
    let data = Arc::new(payload(8 << 20, 11));
    let mut s = connect(proxy.listen);
    let reader = {
        let mut r = s.try_clone().unwrap();
        thread::spawn(move || {
            let mut got = Vec::new();
            r.read_to_end(&mut got).map(|_| got)
        })
    };
    s.write_all(&data[..1 << 20]).unwrap();

    proxy.signal(libc::SIGTERM);
    // Not ready any more, and new connections are refused once listeners are closed...
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let ready = http_get(proxy.admin, "/readyz")
            .map(|(st, _)| st)
            .unwrap_or(0);
        let refused =
            TcpStream::connect_timeout(&proxy.listen, Duration::from_millis(200)).is_err();
        if ready == 503 && refused {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "readyz={ready} refused={refused}\n{}",
            proxy.logs()
        );
        thread::sleep(Duration::from_millis(20));
    }
    assert!(
        proxy.child.try_wait().unwrap().is_none(),
        "must wait for the open connection"
    );
    // ...while the open connection keeps flowing to the last byte.
    for chunk in data[1 << 20..].chunks(256 * 1024) {
        s.write_all(chunk).unwrap();
        thread::sleep(Duration::from_millis(5));
    }
    s.shutdown(Shutdown::Write).unwrap();
    let got = reader.join().unwrap().expect("read echo");
    assert_eq!(got.len(), data.len());
    assert_eq!(checksum(&got), checksum(&data));
    let status = proxy.wait_exit(Duration::from_secs(10));
    assert!(status.success(), "{status}\n{}", proxy.logs());
    assert!(proxy.logs().contains("drained"));
}

#[test]
fn drain_deadline_closes_stragglers_and_exits_zero() {
    let origin = Origin::echo();
    let mut proxy = Proxy::quick(&args(&[
        "--upstream",
        &origin.addr.to_string(),
        "--drain-timeout",
        "400ms",
    ]));
    let mut idle = connect(proxy.listen);
    idle.write_all(b"hi").unwrap();
    let mut two = [0u8; 2];
    idle.read_exact(&mut two).unwrap();
    let started = Instant::now();
    proxy.signal(libc::SIGTERM);
    let status = proxy.wait_exit(Duration::from_secs(10));
    assert!(status.success(), "{status}");
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(350),
        "exited before the drain timeout: {took:?}"
    );
    // A stream cut by the deadline must not look complete: the client sees a reset, not EOF.
    let (_, end) = read_until_closed(&mut idle);
    let err = end.expect_err("the straggler must be reset");
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionReset, "{err}");
    assert!(proxy.logs().contains("drain timeout reached"));
}

#[test]
fn a_second_signal_exits_at_once() {
    let origin = Origin::echo();
    let mut proxy = Proxy::quick(&args(&[
        "--upstream",
        &origin.addr.to_string(),
        "--drain-timeout",
        "60s",
    ]));
    let mut held = connect(proxy.listen);
    held.write_all(b"x").unwrap();
    let mut one = [0u8; 1];
    held.read_exact(&mut one).unwrap();
    proxy.signal(libc::SIGTERM);
    thread::sleep(Duration::from_millis(300));
    assert!(
        proxy.child.try_wait().unwrap().is_none(),
        "drain should still be waiting"
    );
    proxy.signal(libc::SIGINT);
    let status = proxy.wait_exit(Duration::from_secs(5));
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(
        status.code(),
        Some(128 + libc::SIGINT),
        "{status:?} {:?}",
        status.signal()
    );
}

#[test]
fn connections_spread_over_two_cores_and_stats_show_it() {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    if cores < 2 {
        eprintln!("skipped: needs 2 cores, this machine has {cores}");
        return;
    }
    let origin = Origin::echo();
    let proxy = Proxy::quick(&args(&[
        "--upstream",
        &origin.addr.to_string(),
        "--cores",
        "0-1",
    ]));
    for i in 0..200u64 {
        let data = Arc::new(payload(64, i));
        assert_eq!(round_trip(proxy.listen, data.clone()).unwrap(), *data);
    }
    let s = proxy.wait_stats("200 closed", |s| {
        s["listeners"][0]["connections_closed"] == 200
    });
    let per_core: Vec<u64> = s["cores"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["connections_accepted"].as_u64().unwrap())
        .collect();
    assert_eq!(per_core.len(), 2);
    assert_eq!(per_core.iter().sum::<u64>(), 200);
    // SO_REUSEPORT hashes each 4-tuple; a fair spread of 200 puts ~100 on each core. 40 is more
    // than eight standard deviations below that.
    assert!(
        per_core.iter().all(|&n| n >= 40),
        "uneven spread {per_core:?}"
    );
    let jain = s["fairness"]["jain_index"].as_f64().unwrap();
    assert!(jain > 0.9, "{s:#}");
    assert_eq!(
        s["fairness"]["connections_accepted"],
        serde_json::json!(per_core)
    );
    let cpus: Vec<u64> = s["cores"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["cpu"].as_u64().unwrap())
        .collect();
    assert_eq!(cpus, [0, 1]);
}

#[test]
fn admin_serves_metrics_health_and_readiness() {
    let origin = Origin::echo();
    let proxy = Proxy::quick(&args(&[
        "--upstream",
        &origin.addr.to_string(),
        "--cores",
        "0",
    ]));
    let data = Arc::new(payload(1000, 1));
    round_trip(proxy.listen, data).unwrap();
    proxy.wait_stats("one closed", |s| {
        s["listeners"][0]["connections_closed"] == 1
    });

    let expected = [
        "strait_listener_connections_accepted_total{listener=\"main\"} 1",
        "strait_listener_received_bytes_total{listener=\"main\"} 1000",
        "strait_listener_sent_bytes_total{listener=\"main\"} 1000",
        "strait_cluster_upstream_connections_total{cluster=\"upstream\"} 1",
        "strait_cluster_connect_duration_seconds_count{cluster=\"upstream\"} 1",
        "strait_listener_connection_duration_seconds_count{listener=\"main\"} 1",
        "strait_core_info{core=\"0\",cpu=\"0\",driver=\"io_uring\"} 1",
        "# TYPE strait_listener_connections_active gauge",
        "# TYPE strait_cluster_connect_duration_seconds histogram",
        &format!(
            "strait_endpoint_connections_total{{cluster=\"upstream\",endpoint=\"{}\"}} 1",
            origin.addr
        ),
    ];
    // Histograms are copied from the cores with a bounded wait (a core too busy to answer within
    // it is left out of that scrape), so a loaded test machine may need a second scrape.
    let deadline = Instant::now() + Duration::from_secs(5);
    let body = loop {
        let (status, body) = http_get(proxy.admin, "/metrics").unwrap();
        assert_eq!(status, 200);
        let complete = expected.iter().all(|line| body.lines().any(|l| l == *line));
        if complete || Instant::now() > deadline {
            break body;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    for line in expected {
        assert!(
            body.lines().any(|l| l == line),
            "missing {line:?} in\n{body}"
        );
    }
    // Every sample line is `name{labels} value` with a numeric value.
    for l in body.lines().filter(|l| !l.starts_with('#')) {
        let value = l.rsplit(' ').next().unwrap();
        assert!(value.parse::<f64>().is_ok(), "bad sample {l:?}");
    }
    assert_eq!(http_get(proxy.admin, "/healthz").unwrap().0, 200);
    assert_eq!(http_get(proxy.admin, "/readyz").unwrap().0, 200);
    assert_eq!(http_get(proxy.admin, "/nope").unwrap().0, 404);
    let s = proxy.stats();
    assert_eq!(s["draining"], false);
    assert_eq!(s["clusters"][0]["connect_time_us"]["count"], 1);
}

#[test]
fn port_zero_listeners_share_one_port_across_cores() {
    let origin = Origin::echo();
    let admin = free_addr();
    let a = args(&[
        "run",
        "--listen",
        "127.0.0.1:0",
        "--upstream",
        &origin.addr.to_string(),
        "--admin",
        &admin.to_string(),
        "--cores",
        "0-1",
    ]);
    let proxy = Proxy::spawn(&a, None, "127.0.0.1:0".parse().unwrap(), admin);
    let s = proxy.stats();
    let addr: std::net::SocketAddr = s["listeners"][0]["address"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_ne!(addr.port(), 0);
    for i in 0..20u64 {
        let data = Arc::new(payload(100, i));
        assert_eq!(round_trip(addr, data.clone()).unwrap(), *data);
    }
}

/// With `NOTIFY_SOCKET` set (a systemd `Type=notify` unit), the service manager hears
/// `READY=1` once every core accepts, `RELOADING=1` with `MONOTONIC_USEC` and then `READY=1`
/// around a SIGHUP reload, and `STOPPING=1` when the drain begins.
#[test]
fn sd_notify_messages_reach_the_notify_socket() {
    use std::os::unix::net::UnixDatagram;
    let dir = std::env::temp_dir().join(format!("strait-notify-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    let path = dir.join("notify.sock");
    let _ = std::fs::remove_file(&path);
    let socket = UnixDatagram::bind(&path).expect("notify socket");
    socket
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let next = || {
        let mut buf = [0u8; 512];
        let n = socket.recv(&mut buf).expect("a notification");
        String::from_utf8_lossy(&buf[..n]).into_owned()
    };
    let origin = Origin::echo();
    let listen = free_addr();
    let admin = free_addr();
    let mut proxy = Proxy::spawn(
        &args(&[
            "run",
            "--listen",
            &listen.to_string(),
            "--admin",
            &admin.to_string(),
            "--upstream",
            &origin.addr.to_string(),
        ]),
        Some(&format!("export NOTIFY_SOCKET='{}'", path.display())),
        listen,
        admin,
    );
    let ready = next();
    assert!(ready.starts_with("READY=1\nMAINPID="), "{ready:?}");

    proxy.signal(libc::SIGHUP);
    let reloading = next();
    let usec: u64 = reloading
        .strip_prefix("RELOADING=1\nMONOTONIC_USEC=")
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{reloading:?}"));
    assert!(usec > 0);
    assert_eq!(next(), "READY=1");

    proxy.signal(libc::SIGTERM);
    assert_eq!(next(), "STOPPING=1");
    let status = proxy.wait_exit(Duration::from_secs(8));
    assert!(status.success(), "{status}");
    let _ = std::fs::remove_dir_all(&dir);
}
