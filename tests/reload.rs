//! Configuration reloads against the real binary (issue 11): SIGHUP re-reads the `--config`
//! file; new connections use the new configuration at once, open ones (a TCP tunnel, a
//! keep-alive HTTP connection) go on untouched; counters carry over by name; an invalid file or
//! a listener change changes nothing and is counted.

mod common;

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::http::*;
use common::*;

/// A proxy started from a file this test rewrites.
struct Reloadable {
    proxy: Proxy,
    path: PathBuf,
    admin: SocketAddr,
    listen: SocketAddr,
    tcp: SocketAddr,
}

impl Reloadable {
    fn start(body: &str) -> Reloadable {
        let listen = free_addr();
        let tcp = free_addr();
        let admin = free_addr();
        let dir = temp_dir("reload");
        let path = dir.join("strait.toml");
        let r = |body: &str| render(body, admin, listen, tcp);
        std::fs::write(&path, r(body)).expect("write config");
        let a = args(&[
            "run",
            "--config",
            path.to_str().expect("utf-8 path"),
            "--cores",
            "0",
        ]);
        let proxy = Proxy::spawn(&a, None, listen, admin);
        Reloadable {
            proxy,
            path,
            admin,
            listen,
            tcp,
        }
    }

    /// Rewrites the file and sends SIGHUP; waits for the reload's outcome in the metrics.
    fn reload(&self, body: &str, expect_version: u64, expect_failures: u64) {
        std::fs::write(&self.path, render(body, self.admin, self.listen, self.tcp))
            .expect("rewrite config");
        self.proxy.signal(libc::SIGHUP);
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let text = metrics_text(&self.proxy);
            let version = metric(&text, "strait_config_version", &[]);
            let failures = metric(
                &text,
                "strait_config_reloads_total",
                &[("result", "failure")],
            );
            if version == Some(expect_version as f64) && failures == Some(expect_failures as f64) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "version {version:?} (want {expect_version}), failures {failures:?} (want {expect_failures})\n{}",
                self.proxy.logs()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

fn render(body: &str, admin: SocketAddr, listen: SocketAddr, tcp: SocketAddr) -> String {
    format!("[admin]\naddress = \"{admin}\"\n\n{body}")
        .replace("LISTEN", &listen.to_string())
        .replace("TCPADDR", &tcp.to_string())
}

fn config(a: SocketAddr, b: SocketAddr, echo: SocketAddr, extra_route: &str) -> String {
    format!(
        r#"
[[listener]]
name = "web"
address = "LISTEN"
protocol = "http"

[[listener.route]]
name = "a"
path_prefix = "/a"
cluster = "one"
{extra_route}

[[listener]]
name = "raw"
address = "TCPADDR"
cluster = "echo"

[[cluster]]
name = "one"
endpoints = [{{ address = "{a}" }}]

[[cluster]]
name = "two"
endpoints = [{{ address = "{b}" }}]

[[cluster]]
name = "echo"
endpoints = [{{ address = "{echo}" }}]
"#
    )
}

const ROUTE_B: &str = r#"
[[listener.route]]
name = "b"
path_prefix = "/b"
cluster = "two"
"#;

fn labelled(letter: &'static str) -> HttpOrigin {
    HttpOrigin::start(move |r| Reply::ok(format!("{letter} {}", r.target)))
}

fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    let r = one_request(
        addr,
        format!("GET {path} HTTP/1.1\r\nHost: reload.test\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .expect("response");
    (r.status, r.text())
}

#[test]
fn sighup_reloads_routes_keeps_counters_and_open_connections() {
    let (one, two, echo) = (labelled("one"), labelled("two"), Origin::echo());
    let p = Reloadable::start(&config(one.addr, two.addr, echo.addr, ""));
    assert_eq!(get(p.listen, "/a/1"), (200, "one /a/1".into()));
    assert_eq!(get(p.listen, "/b/1").0, 404);

    // Held across the reloads: a TCP tunnel and a keep-alive HTTP connection.
    let mut tunnel = connect(p.tcp);
    tunnel.write_all(b"ping").expect("write");
    let mut got = [0u8; 4];
    tunnel.read_exact(&mut got).expect("echo");
    let mut kept = RawConn::connect(p.listen);
    let r = kept
        .exchange(b"GET /a/kept HTTP/1.1\r\nHost: reload.test\r\n\r\n")
        .expect("keep-alive request");
    assert_eq!(r.status, 200);

    // A route added: served at once.
    p.reload(&config(one.addr, two.addr, echo.addr, ROUTE_B), 1, 0);
    assert_eq!(get(p.listen, "/b/1"), (200, "two /b/1".into()));
    assert_eq!(get(p.listen, "/a/2"), (200, "one /a/2".into()));

    // An invalid file and a listener change: refused, nothing changes, counted.
    p.reload("this is not toml [", 1, 1);
    let mut moved = config(one.addr, two.addr, echo.addr, ROUTE_B);
    moved = moved.replace("name = \"raw\"", "name = \"renamed\"");
    p.reload(&moved, 1, 2);
    assert_eq!(get(p.listen, "/b/2"), (200, "two /b/2".into()));

    // Twenty more reloads (the route comes and goes); the tunnel and the keep-alive connection
    // stay usable through all of them.
    for i in 0..20u64 {
        let extra = if i % 2 == 0 { "" } else { ROUTE_B };
        p.reload(&config(one.addr, two.addr, echo.addr, extra), 2 + i, 2);
        tunnel
            .write_all(b"pong")
            .expect("tunnel write after a reload");
        tunnel
            .read_exact(&mut got)
            .expect("tunnel echo after a reload");
        assert_eq!(&got, b"pong");
    }
    let r = kept
        .exchange(b"GET /a/still HTTP/1.1\r\nHost: reload.test\r\n\r\n")
        .expect("the keep-alive connection survived");
    assert_eq!((r.status, r.text().as_str()), (200, "one /a/still"));

    // Counters carried over by name: route "a" counted every request across the reloads.
    let text = metrics_text(&p.proxy);
    let a_requests = metric(
        &text,
        "strait_http_requests_total",
        &[("listener", "web"), ("route", "a")],
    );
    assert_eq!(a_requests, Some(4.0), "{text}");
    let accepted = metric(
        &text,
        "strait_listener_connections_accepted_total",
        &[("listener", "raw")],
    );
    assert_eq!(accepted, Some(1.0));
    assert_eq!(
        metric(
            &text,
            "strait_config_reloads_total",
            &[("result", "success")]
        ),
        Some(21.0)
    );
}
