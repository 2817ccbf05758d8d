//! Configuration reloads against the real binary (issue 11): SIGHUP re-reads the `--config`
//! file; new connections use the new configuration at once, open ones (a TCP tunnel, a
//! keep-alive HTTP connection) go on untouched (the HTTP one is closed after its next answer, so
//! its client reconnects to the current configuration); counters carry over by name; an invalid file or
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
    /// The `[admin]` keys the file was started with (kept on rewrites).
    admin_keys: String,
    admin: SocketAddr,
    listen: SocketAddr,
    tcp: SocketAddr,
}

impl Reloadable {
    fn start(body: &str) -> Reloadable {
        Reloadable::start_with(body, "")
    }

    /// `admin_keys`: more `[admin]` keys (paths relative to the file's directory).
    fn start_with(body: &str, admin_keys: &str) -> Reloadable {
        let listen = free_addr();
        let tcp = free_addr();
        let admin = free_addr();
        let dir = temp_dir("reload");
        let path = dir.join("strait.toml");
        std::fs::write(dir.join("token"), "s3cret-token\n").expect("token");
        std::fs::write(&path, render(body, admin_keys, admin, listen, tcp)).expect("write config");
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
            admin_keys: admin_keys.to_string(),
            admin,
            listen,
            tcp,
        }
    }

    /// Rewrites the file and sends SIGHUP; waits for the reload's outcome in the metrics.
    fn rewrite(&self, body: &str) {
        let text = render(body, &self.admin_keys, self.admin, self.listen, self.tcp);
        std::fs::write(&self.path, text).expect("rewrite config");
    }

    fn reload(&self, body: &str, expect_version: u64, expect_failures: u64) {
        self.rewrite(body);
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

fn render(
    body: &str,
    admin_keys: &str,
    admin: SocketAddr,
    listen: SocketAddr,
    tcp: SocketAddr,
) -> String {
    format!("[admin]\naddress = \"{admin}\"\n{admin_keys}\n\n{body}")
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
    // Start-up-only settings ([log] here) are refused, not reported as applied.
    let log_changed = format!(
        "[log]\nlevel = \"debug\"\n{}",
        config(one.addr, two.addr, echo.addr, ROUTE_B)
    );
    p.reload(&log_changed, 1, 3);

    // Twenty more reloads (the route comes and goes); the tunnel and the keep-alive connection
    // stay usable through all of them.
    for i in 0..20u64 {
        let extra = if i % 2 == 0 { "" } else { ROUTE_B };
        p.reload(&config(one.addr, two.addr, echo.addr, extra), 2 + i, 3);
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
    // Its version was replaced: the answer closes it, so the client reconnects to the current
    // configuration.
    assert!(r.has_token("connection", "close"), "{:?}", r.headers);

    // Counters carried over by name: route "a" counted every request across the reloads.
    let text = metrics_text(&p.proxy);
    let a_requests = metric(
        &text,
        "strait_http_requests_total",
        &[("listener", "web"), ("route", "a")],
    );
    assert_eq!(a_requests, Some(4.0), "{text}");
    // Histograms too: the kept connection's last request ran on version 0 after 22 reloads and
    // is counted with the others (a replaced version's samples are reported with the current).
    let a_durations = metric(
        &text,
        "strait_http_request_duration_seconds_count",
        &[("listener", "web"), ("route", "a")],
    );
    assert_eq!(a_durations, Some(4.0), "{text}");
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

/// `POST /config/reload` with the raw bytes of `auth` (an `Authorization` line or nothing).
fn post_reload(admin: SocketAddr, auth: &str, content_length: usize) -> (u16, String) {
    let mut s = connect(admin);
    let head = format!(
        "POST /config/reload HTTP/1.1\r\nhost: admin\r\n{auth}content-length: {content_length}\r\nconnection: close\r\n\r\n"
    );
    s.write_all(head.as_bytes()).expect("write");
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    let text = String::from_utf8_lossy(&raw).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, text)
}

fn strait_reload(admin: SocketAddr, token_file: Option<&std::path::Path>) -> (bool, String) {
    let mut cmd = std::process::Command::new(binary());
    cmd.args(["reload", "--admin", &admin.to_string()]);
    if let Some(t) = token_file {
        cmd.arg("--token-file").arg(t);
    }
    let out = cmd.output().expect("strait reload");
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// The admin API's reload: the token is required (401 without or with a wrong one), bodies are
/// bounded (413), `strait reload` applies a changed file or reports its errors, and every write
/// (refused or not) and every reload (API or signal) is in the audit log with its peer,
/// versions and result.
#[test]
fn the_admin_api_reloads_with_a_token_and_audits_every_write() {
    let (one, two, echo) = (labelled("one"), labelled("two"), Origin::echo());
    let p = Reloadable::start_with(
        &config(one.addr, two.addr, echo.addr, ""),
        "token_file = \"token\"\naudit_log = \"audit.log\"",
    );
    let dir = p.path.parent().expect("dir").to_path_buf();
    let token = dir.join("token");

    assert_eq!(post_reload(p.admin, "", 0).0, 401);
    assert_eq!(
        post_reload(p.admin, "authorization: Bearer wrong\r\n", 0).0,
        401
    );
    assert_eq!(
        post_reload(
            p.admin,
            "authorization: Bearer s3cret-token\r\n",
            2 * 1024 * 1024
        )
        .0,
        413
    );

    p.rewrite(&config(one.addr, two.addr, echo.addr, ROUTE_B));
    let (ok, out) = strait_reload(p.admin, Some(&token));
    assert!(ok, "{out}");
    assert!(out.contains("\"version\":1"), "{out}");
    assert_eq!(get(p.listen, "/b/x"), (200, "two /b/x".into()));

    p.rewrite("[[listener]]\nname = 1\n");
    let (ok, out) = strait_reload(p.admin, Some(&token));
    assert!(!ok, "an invalid file was reported as applied: {out}");
    assert!(out.contains("400") && out.contains("errors"), "{out}");
    let (ok, out) = strait_reload(p.admin, None);
    assert!(!ok && out.contains("401"), "{out}");
    assert_eq!(
        get(p.listen, "/b/y"),
        (200, "two /b/y".into()),
        "nothing changed"
    );

    // A signal reload is audited too.
    p.reload(&config(one.addr, two.addr, echo.addr, ""), 2, 1);

    let audit = std::fs::read_to_string(dir.join("audit.log")).expect("audit log");
    let lines: Vec<serde_json::Value> = audit
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    let summary: Vec<(String, String)> = lines
        .iter()
        .map(|l| {
            (
                l["source"].as_str().unwrap_or("").to_string(),
                l["result"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    let want: Vec<(String, String)> = [
        ("api", "refused"),
        ("api", "refused"),
        ("api", "refused"),
        ("api", "success"),
        ("api", "failure"),
        ("api", "refused"),
        ("signal", "success"),
    ]
    .iter()
    .map(|(a, b)| (a.to_string(), b.to_string()))
    .collect();
    assert_eq!(summary, want, "{audit}");
    assert!(lines[0]["peer"]
        .as_str()
        .is_some_and(|p| p.starts_with("127.0.0.1:")));
    assert_eq!(lines[3]["version_before"], 0);
    assert_eq!(lines[3]["version_after"], 1);
    assert!(lines[4]["errors"].as_array().is_some_and(|e| !e.is_empty()));
    assert_eq!(lines[2]["status"], 413);
}

/// Without `[admin] token_file`, writes are refused with 403 and say how to enable them.
#[test]
fn writes_are_refused_without_a_token_file() {
    let (one, two, echo) = (labelled("one"), labelled("two"), Origin::echo());
    let p = Reloadable::start(&config(one.addr, two.addr, echo.addr, ""));
    let (status, text) = post_reload(p.admin, "authorization: Bearer anything\r\n", 0);
    assert_eq!(status, 403, "{text}");
    assert!(text.contains("token_file"), "{text}");
}

fn admin_request(admin: SocketAddr, method: &str, path: &str, body: &[u8]) -> (u16, String) {
    let mut s = connect(admin);
    let head = format!(
        "{method} {path} HTTP/1.1\r\nhost: admin\r\nauthorization: Bearer s3cret-token\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).expect("write");
    s.write_all(body).expect("write body");
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    let text = String::from_utf8_lossy(&raw).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_string();
    (status, body)
}

/// Versions: every applied configuration is numbered with its SHA-256, time and source;
/// `GET /config` is the current text, `/config/diff` the unified diff of two versions,
/// `POST /config` applies TOML from the body (not written to the file without `persist`),
/// `POST /config/rollback?to=N` applies version N's text as a new version (404 for a version not
/// in the history).
#[test]
fn versions_diff_replace_and_rollback_round_trip() {
    let (one, two, echo) = (labelled("one"), labelled("two"), Origin::echo());
    let p = Reloadable::start_with(
        &config(one.addr, two.addr, echo.addr, ""),
        "token_file = \"token\"",
    );
    let v0 = std::fs::read_to_string(&p.path).expect("file");
    p.rewrite(&config(one.addr, two.addr, echo.addr, ROUTE_B));
    assert_eq!(admin_request(p.admin, "POST", "/config/reload", b"").0, 200);
    let v1 = std::fs::read_to_string(&p.path).expect("file");

    let (status, versions) = admin_request(p.admin, "GET", "/config/versions", b"");
    assert_eq!(status, 200);
    let json: serde_json::Value = serde_json::from_str(&versions).expect("JSON");
    assert_eq!(json["current"], 1);
    let list = json["versions"].as_array().expect("versions");
    assert_eq!(list.len(), 2);
    assert_eq!(list[0]["version"], 0);
    assert_eq!(list[1]["source"], "file");
    assert_eq!(list[1]["sha256"].as_str().map(str::len), Some(64));
    assert!(list[1]["applied_at"]
        .as_str()
        .is_some_and(|t| t.ends_with('Z')));

    let (status, current) = admin_request(p.admin, "GET", "/config", b"");
    assert_eq!((status, current.as_str()), (200, v1.as_str()));
    let (status, diff) = admin_request(p.admin, "GET", "/config/diff?from=0&to=1", b"");
    assert_eq!(status, 200);
    assert!(
        diff.starts_with("--- version 0\n+++ version 1\n@@"),
        "{diff}"
    );
    assert!(diff.contains("\n+name = \"b\"\n"), "{diff}");

    // Replace with TOML from the body: a route /c to cluster "two".
    let replaced = v1.replace("path_prefix = \"/b\"", "path_prefix = \"/c\"");
    let (status, body) = admin_request(p.admin, "POST", "/config", replaced.as_bytes());
    assert_eq!((status, body.trim()), (200, "{\"version\":2}"));
    assert_eq!(get(p.listen, "/c/1"), (200, "two /c/1".into()));
    assert_eq!(get(p.listen, "/b/1").0, 404);
    assert_eq!(
        std::fs::read_to_string(&p.path).expect("file"),
        v1,
        "persist is off"
    );
    let (status, _) = admin_request(p.admin, "POST", "/config", b"\xff\xfe not utf-8");
    assert_eq!(status, 400);

    // Roll back to the start: a new version with version 0's text.
    assert_eq!(
        admin_request(p.admin, "POST", "/config/rollback?to=99", b"").0,
        404
    );
    let (status, body) = admin_request(p.admin, "POST", "/config/rollback?to=0", b"");
    assert_eq!((status, body.trim()), (200, "{\"version\":3}"));
    assert_eq!(get(p.listen, "/c/2").0, 404);
    let (_, current) = admin_request(p.admin, "GET", "/config", b"");
    assert_eq!(current, v0);
    let (_, versions) = admin_request(p.admin, "GET", "/config/versions", b"");
    let json: serde_json::Value = serde_json::from_str(&versions).expect("JSON");
    assert_eq!(json["versions"][3]["source"], "rollback");
    assert_eq!(json["versions"][3]["sha256"], json["versions"][0]["sha256"]);

    // The diff compares normalised TOML: comments, blank lines and spacing are not changes.
    let cosmetic = format!("# a comment\n\n{}", v0.replace(" = ", "   =   "));
    let (status, body) = admin_request(p.admin, "POST", "/config", cosmetic.as_bytes());
    assert_eq!((status, body.trim()), (200, "{\"version\":4}"));
    let (status, diff) = admin_request(p.admin, "GET", "/config/diff?from=3&to=4", b"");
    assert_eq!(status, 200);
    assert!(
        !diff
            .lines()
            .any(|l| l.starts_with(['+', '-']) && !l.starts_with("+++") && !l.starts_with("---")),
        "{diff}"
    );
    let (_, current) = admin_request(p.admin, "GET", "/config", b"");
    assert_eq!(
        current, cosmetic,
        "GET /config still answers the text as given"
    );
}

/// `[runtime] watch_config = true`: a change to the file is applied without a signal.
#[test]
fn watch_config_reloads_a_changed_file() {
    let (one, two, echo) = (labelled("one"), labelled("two"), Origin::echo());
    let watched = |extra: &str| {
        format!(
            "[runtime]\nwatch_config = true\n{}",
            config(one.addr, two.addr, echo.addr, extra)
        )
    };
    let p = Reloadable::start(&watched(""));
    assert_eq!(get(p.listen, "/b/1").0, 404);
    // Modification times can be coarse: make sure the size changes too.
    p.rewrite(&watched(ROUTE_B));
    let deadline = Instant::now() + Duration::from_secs(8);
    while get(p.listen, "/b/1").0 != 200 {
        assert!(
            Instant::now() < deadline,
            "the changed file was not reloaded"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(get(p.listen, "/b/2"), (200, "two /b/2".into()));
}

fn udp_ask(c: &std::net::UdpSocket, to: SocketAddr, payload: &str) -> String {
    c.send_to(payload.as_bytes(), to).expect("send datagram");
    let mut buf = [0u8; 2048];
    let (n, _) = c.recv_from(&mut buf).expect("UDP reply");
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

fn udp_config(cluster: &str, one: SocketAddr, two: SocketAddr, web: SocketAddr) -> String {
    format!(
        r#"
[[listener]]
name = "web"
address = "LISTEN"
protocol = "http"
cluster = "web"

[[listener]]
name = "datagrams"
address = "TCPADDR"
protocol = "udp"
cluster = "{cluster}"

[[cluster]]
name = "web"
endpoints = [{{ address = "{web}" }}]

[[cluster]]
name = "one"
endpoints = [{{ address = "{one}" }}]

[[cluster]]
name = "two"
endpoints = [{{ address = "{two}" }}]
"#
    )
}

#[test]
fn a_reload_sends_new_udp_sessions_to_the_new_cluster_and_keeps_open_ones() {
    let (one, two, web) = (udp_origin("one"), udp_origin("two"), labelled("web"));
    let p = Reloadable::start(&udp_config("one", one, two, web.addr));
    let udp = p.tcp; // the UDP listener shares the TCP test address
    let client = |timeout| {
        let c = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind client");
        c.set_read_timeout(Some(timeout)).expect("timeout");
        c
    };
    let old = client(Duration::from_secs(5));
    assert_eq!(udp_ask(&old, udp, "a"), "one:a");

    p.reload(&udp_config("two", one, two, web.addr), 1, 0);
    // A new client address opens a session under the new version.
    let new = client(Duration::from_secs(5));
    assert_eq!(udp_ask(&new, udp, "b"), "two:b");
    // The session opened before the reload keeps its endpoint.
    assert_eq!(udp_ask(&old, udp, "c"), "one:c");

    let text = metrics_text(&p.proxy);
    // One session each: the old client's later datagram reused its session.
    for cluster in ["one", "two"] {
        let sessions = metric(
            &text,
            "strait_cluster_upstream_connections_total",
            &[("cluster", cluster)],
        );
        assert_eq!(sessions, Some(1.0), "{cluster}\n{text}");
    }
}
