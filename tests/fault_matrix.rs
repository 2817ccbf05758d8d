//! The fault matrix of the unified fault table (issue 10): every upstream fault gives the same
//! answer, access-log line and counters whatever the client speaks (HTTP/1.1, h2c with prior
//! knowledge, h2 over TLS by ALPN) and whatever the cluster speaks (`http1`, `h2c`).
//!
//! Two proxies (the real binary) run side by side, one per upstream protocol. Each has one
//! sniffing TLS + HTTP/1.1 + h2c listener with a route per fault, each route to its own cluster
//! and origin (a threaded HTTP/1.1 origin, or an h2c origin written frame by frame so it can send
//! what an HTTP/2 library will not), plus a second listener with `upstream_response_timeout =
//! "300ms"` for the head-timeout route. Every cell runs one request and checks what the client
//! saw, the request's JSON access-log line (found by its `x-request-id`) and the counter deltas
//! of `/stats`. Mismatches are collected over all cells and reported together, so one run
//! shows the whole matrix.
//!
//! Counters: the nine fault counters (route `upstream_errors`, `upstream_timeouts`,
//! `unavailable`, `client_errors`; `clusters[c].unavailable`; `clusters[c].http` `pool_full`,
//! `retries`, `upstream_timeouts`, `upstream_protocol_errors`) are checked in every cell, at 0
//! unless the row says otherwise (one fault, one route counter, one cluster counter); response
//! classes only where the row names them.

mod common;

use std::fmt;
use std::io::{self, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use ::h2::Reason;
use bytes::Bytes;
use common::faults::{
    cluster_stats, counter_at, log_error, route_stats, AccessLog, H2Script, RawH2Origin,
    ORIGIN_MARK,
};
use common::h2_support::{h2_tls_connect, h2c_connect, H2Client, TestCert};
use common::http::{config_proxy, temp_dir, HttpOrigin, RawConn, Reply, Wire};
use common::{dead_addr, free_addr, Proxy};
use http::{Method, Request};

/// How long a client waits for an answer (the slowest expected one is the 300 ms head timeout).
const CLIENT_WAIT: Duration = Duration::from_secs(3);
/// How long a cell waits for its access-log line (flushed every 100 ms).
const LOG_WAIT: Duration = Duration::from_secs(2);
/// How long counters may lag behind the access-log line.
const STATS_GRACE: Duration = Duration::from_millis(400);
const HOST: &str = "fm.test";
/// The listener of every route but the head timeout.
const MAIN: &str = "fm";
/// The listener of the head-timeout route (`upstream_response_timeout = "300ms"`).
const SLOW: &str = "fm-timeout";
/// A request body the client-gone cells announce, and the part of it they send.
const ANNOUNCED: usize = 100_000;
const SENT: &[u8] = b"0123456789";

// ---------------------------------------------------------------------------------------------
// The matrix.

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Fault {
    ConnectRefused,
    ResetBeforeHead,
    PartialHead,
    /// The partial head on a connection that answered a request before: still no retry (a
    /// response byte arrived).
    PartialHeadReused,
    HeadTimeout,
    Upstream503,
    ClientGone,
    ReusedGet,
    ReusedPut,
}

/// What the client sees.
#[derive(Clone, Copy, Debug)]
enum Sees {
    /// A response the proxy made itself, with this status.
    ProxyMade(u16),
    /// The origin's response (it carries [`ORIGIN_MARK`]), with this status.
    Origin(u16),
    /// Nothing: the client went away first.
    Nothing,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Counter {
    RouteUpstreamErrors,
    RouteUpstreamTimeouts,
    RouteUnavailable,
    RouteClientErrors,
    Route2xx,
    Route5xx,
    ClusterUnavailable,
    PoolFull,
    Retries,
    ClusterUpstreamTimeouts,
    UpstreamProtocolErrors,
}

use Counter::*;
use Fault::*;
use Sees::*;

/// One row: the fault, what the client sees, the access log's `error` and `status`, and the
/// counter deltas (fault counters not named must stay at +0). Identical for all six pairs.
struct Row(Fault, Sees, &'static str, u16, &'static [(Counter, i64)]);

#[rustfmt::skip]
const MATRIX: &[Row] = &[
    Row(ConnectRefused,    ProxyMade(502), "connect_failed",    502, &[(RouteUpstreamErrors, 1), (ClusterUnavailable, 1)]),
    Row(ResetBeforeHead,   ProxyMade(502), "upstream_closed",   502, &[(RouteUpstreamErrors, 1), (UpstreamProtocolErrors, 1), (Retries, 0)]),
    Row(PartialHead,       ProxyMade(502), "upstream_protocol", 502, &[(RouteUpstreamErrors, 1), (UpstreamProtocolErrors, 1), (Retries, 0)]),
    Row(PartialHeadReused, ProxyMade(502), "upstream_protocol", 502, &[(RouteUpstreamErrors, 1), (UpstreamProtocolErrors, 1), (Retries, 0)]),
    Row(HeadTimeout,       ProxyMade(504), "upstream_timeout",  504, &[(RouteUpstreamTimeouts, 1), (ClusterUpstreamTimeouts, 1)]),
    Row(Upstream503,       Origin(503),    "",                  503, &[(Route5xx, 1), (RouteUpstreamErrors, 0), (Retries, 0)]),
    Row(ClientGone,        Nothing,        "client_gone",       499, &[(RouteClientErrors, 1)]),
    Row(ReusedGet,         Origin(200),    "",                  200, &[(Retries, 1), (Route2xx, 1)]),
    Row(ReusedPut,         Origin(200),    "",                  200, &[(Retries, 1), (Route2xx, 1)]),
];

impl Fault {
    /// Its route, and the cluster of that route (same name).
    fn route(self) -> &'static str {
        match self {
            ConnectRefused => "connect-refused",
            ResetBeforeHead => "reset-before-head",
            PartialHead => "partial-head",
            PartialHeadReused => "partial-head-reused",
            HeadTimeout => "head-timeout",
            Upstream503 => "upstream-503",
            ClientGone => "client-gone",
            ReusedGet | ReusedPut => "reused-conn",
        }
    }

    fn label(self) -> &'static str {
        match self {
            ReusedGet => "reused-conn GET",
            ReusedPut => "reused-conn PUT",
            f => f.route(),
        }
    }

    fn listener(self) -> &'static str {
        if self == HeadTimeout {
            SLOW
        } else {
            MAIN
        }
    }

    fn method(self) -> Method {
        match self {
            ReusedPut => Method::PUT,
            ClientGone => Method::POST,
            _ => Method::GET,
        }
    }

    /// Whether the cell first leaves a connection that answered once in the pool.
    fn warms_up(self) -> bool {
        matches!(self, PartialHeadReused | ReusedGet | ReusedPut)
    }
}

/// Every route (some faults share one).
const ROUTES: &[Fault] = &[
    ConnectRefused,
    ResetBeforeHead,
    PartialHead,
    PartialHeadReused,
    HeadTimeout,
    Upstream503,
    ClientGone,
    ReusedGet,
];

impl Counter {
    /// Checked in every cell: +0 unless the row names them.
    const FAULT_COUNTERS: [Counter; 9] = [
        RouteUpstreamErrors,
        RouteUpstreamTimeouts,
        RouteUnavailable,
        RouteClientErrors,
        ClusterUnavailable,
        PoolFull,
        Retries,
        ClusterUpstreamTimeouts,
        UpstreamProtocolErrors,
    ];

    /// Where it is in `/stats`: (route or cluster entry, path below it).
    fn place(self) -> (bool, &'static str) {
        match self {
            RouteUpstreamErrors => (true, "upstream_errors"),
            RouteUpstreamTimeouts => (true, "upstream_timeouts"),
            RouteUnavailable => (true, "unavailable"),
            RouteClientErrors => (true, "client_errors"),
            Route2xx => (true, "responses/2xx"),
            Route5xx => (true, "responses/5xx"),
            ClusterUnavailable => (false, "unavailable"),
            PoolFull => (false, "http/pool_full"),
            Retries => (false, "http/retries"),
            ClusterUpstreamTimeouts => (false, "http/upstream_timeouts"),
            UpstreamProtocolErrors => (false, "http/upstream_protocol_errors"),
        }
    }

    fn name(self) -> String {
        match self.place() {
            (true, path) => format!("route {}", path.replace('/', " ")),
            (false, "unavailable") => "clusters[c].unavailable".to_string(),
            (false, path) => format!("cluster_http {}", path.trim_start_matches("http/")),
        }
    }

    fn read(self, stats: &serde_json::Value, fault: Fault) -> Option<i64> {
        match self.place() {
            (true, path) => counter_at(route_stats(stats, fault.listener(), fault.route()), path),
            (false, path) => counter_at(cluster_stats(stats, fault.route()), path),
        }
    }
}

/// The counters a row checks, with their expected deltas.
fn checked(row: &Row) -> Vec<(Counter, i64)> {
    let mut out: Vec<(Counter, i64)> = Counter::FAULT_COUNTERS
        .iter()
        .map(|&c| {
            let want = row.4.iter().find(|(n, _)| *n == c).map_or(0, |(_, d)| *d);
            (c, want)
        })
        .collect();
    for &(c, d) in row.4 {
        if !out.iter().any(|(n, _)| *n == c) {
            out.push((c, d));
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// The six pairs.

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Client {
    Http11,
    H2c,
    H2Tls,
}

impl Client {
    const ALL: [Client; 3] = [Client::Http11, Client::H2c, Client::H2Tls];

    fn label(self) -> &'static str {
        match self {
            Client::Http11 => "HTTP/1.1",
            Client::H2c => "h2c",
            Client::H2Tls => "h2 (TLS)",
        }
    }

    fn slug(self) -> &'static str {
        match self {
            Client::Http11 => "h1",
            Client::H2c => "h2c",
            Client::H2Tls => "h2tls",
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Upstream {
    Http1,
    H2c,
}

impl Upstream {
    fn label(self) -> &'static str {
        match self {
            Upstream::Http1 => "http1",
            Upstream::H2c => "h2c",
        }
    }
}

/// An origin behind one route.
enum AnyOrigin {
    Dead(SocketAddr),
    H1(HttpOrigin),
    H2(RawH2Origin),
}

impl AnyOrigin {
    fn addr(&self) -> SocketAddr {
        match self {
            AnyOrigin::Dead(a) => *a,
            AnyOrigin::H1(o) => o.addr,
            AnyOrigin::H2(o) => o.addr,
        }
    }

    /// Requests (HTTP/1.1) or request streams (h2c) that reached it.
    fn requests(&self) -> usize {
        match self {
            AnyOrigin::Dead(_) => 0,
            AnyOrigin::H1(o) => o.request_count(),
            AnyOrigin::H2(o) => o.streams(),
        }
    }
}

/// What the HTTP/1.1 partial-head origins send before closing.
const PARTIAL_HEAD: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Le";

fn origin_for(up: Upstream, route: Fault) -> AnyOrigin {
    match (up, route) {
        (_, ConnectRefused) => AnyOrigin::Dead(dead_addr()),
        (Upstream::Http1, f) => AnyOrigin::H1(match f {
            // Reads the request, closes without a byte.
            ResetBeforeHead => HttpOrigin::start(|_| Reply::hang_up()),
            PartialHead => HttpOrigin::start(|_| Reply::garbage(PARTIAL_HEAD)),
            // Answers the first request of a connection, then a partial head on the reused one.
            PartialHeadReused => HttpOrigin::start(|seen| {
                if seen.nth == 0 {
                    Reply::ok("ok").header(ORIGIN_MARK, "1")
                } else {
                    Reply::garbage(PARTIAL_HEAD)
                }
            }),
            // Reads the request and stays silent (then closes, long after the 300 ms).
            HeadTimeout => HttpOrigin::start(|_| Reply::raw_hold(b"", Duration::from_secs(2))),
            Upstream503 => {
                HttpOrigin::start(|_| Reply::new(503).body("origin 503").header(ORIGIN_MARK, "1"))
            }
            // Never answers: the body never completes.
            ClientGone => HttpOrigin::start(|_| Reply::ok("late").header(ORIGIN_MARK, "1")),
            // The first request of a connection is answered keep-alive; the next one on it
            // is read and the connection closed without an answer.
            _ => HttpOrigin::start(|seen| {
                if seen.nth == 0 {
                    Reply::ok("ok").header(ORIGIN_MARK, "1")
                } else {
                    Reply::hang_up()
                }
            }),
        }),
        (Upstream::H2c, f) => AnyOrigin::H2(RawH2Origin::start(match f {
            ResetBeforeHead => H2Script::ResetBeforeHead,
            PartialHead => H2Script::NoStatus,
            PartialHeadReused => H2Script::FirstThenNoStatus,
            HeadTimeout | ClientGone => H2Script::Silent,
            Upstream503 => H2Script::Status(503),
            _ => H2Script::FirstThenClose,
        })),
    }
}

/// One proxy in front of one origin per route, all of one upstream protocol.
struct Bench<'a> {
    up: Upstream,
    proxy: Proxy,
    /// The `fm-timeout` listener.
    slow: SocketAddr,
    log: AccessLog,
    origins: Vec<(Fault, AnyOrigin)>,
    cert: &'a TestCert,
}

fn listener_toml(
    name: &str,
    address: &str,
    extra: &str,
    cert: &TestCert,
    routes: &[Fault],
) -> String {
    let mut t = format!(
        "[[listener]]\nname = \"{name}\"\naddress = \"{address}\"\n\
         protocols = [\"tls\", \"http1\", \"h2c\"]\n{extra}\n\
         [listener.tls]\n\n[[listener.tls.certificate]]\ncert = \"{}\"\nkey = \"{}\"\n\n",
        cert.cert_path.display(),
        cert.key_path.display()
    );
    for r in routes {
        let n = r.route();
        t.push_str(&format!(
            "[[listener.route]]\nname = \"{n}\"\npath_prefix = \"/{n}\"\ncluster = \"{n}\"\n\n"
        ));
    }
    t
}

impl<'a> Bench<'a> {
    fn start(up: Upstream, cert: &'a TestCert, log_path: &Path) -> Bench<'a> {
        let origins: Vec<(Fault, AnyOrigin)> =
            ROUTES.iter().map(|&f| (f, origin_for(up, f))).collect();
        let slow = free_addr();
        let mut toml = format!(
            "[access_log]\npath = \"{}\"\nformat = \"json\"\nsample = 1\n\n",
            log_path.display()
        );
        let main_routes: Vec<Fault> = ROUTES
            .iter()
            .copied()
            .filter(|&f| f != HeadTimeout)
            .collect();
        toml.push_str(&listener_toml(MAIN, "LISTEN", "", cert, &main_routes));
        toml.push_str(&listener_toml(
            SLOW,
            &slow.to_string(),
            "upstream_response_timeout = \"300ms\"\n",
            cert,
            &[HeadTimeout],
        ));
        for (f, o) in &origins {
            toml.push_str(&format!(
                "[[cluster]]\nname = \"{}\"\nprotocol = \"{}\"\nconnect_timeout = \"1s\"\n\
                 connect_attempts = 1\nendpoints = [{{ address = \"{}\" }}]\n\n",
                f.route(),
                up.label(),
                o.addr()
            ));
        }
        Bench {
            up,
            proxy: config_proxy(&toml, &[]),
            slow,
            log: AccessLog::new(log_path),
            origins,
            cert,
        }
    }

    fn addr(&self, fault: Fault) -> SocketAddr {
        if fault.listener() == SLOW {
            self.slow
        } else {
            self.proxy.listen
        }
    }

    fn origin(&self, fault: Fault) -> &AnyOrigin {
        let route = fault.route();
        &self
            .origins
            .iter()
            .find(|(f, _)| f.route() == route)
            .expect("an origin per route")
            .1
    }
}

// ---------------------------------------------------------------------------------------------
// Clients.

/// What the client saw.
#[derive(Debug)]
enum Got {
    Response {
        status: u16,
        from_origin: bool,
    },
    /// The stream was reset (h2).
    Reset(String),
    /// The connection ended without a response.
    Closed(String),
    TimedOut,
    /// Nothing: the client went away before any answer.
    Nothing,
    Other(String),
}

impl fmt::Display for Got {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Got::Response {
                status,
                from_origin: true,
            } => write!(f, "{status} from the origin"),
            Got::Response { status, .. } => write!(f, "{status} from the proxy"),
            Got::Reset(r) => write!(f, "stream reset {r}"),
            Got::Closed(why) => write!(f, "connection closed without a response ({why})"),
            Got::TimedOut => write!(f, "no answer within {CLIENT_WAIT:?}"),
            Got::Nothing => write!(f, "nothing"),
            Got::Other(s) => write!(f, "{s}"),
        }
    }
}

impl fmt::Display for Sees {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProxyMade(s) => write!(f, "{s} from the proxy"),
            Origin(s) => write!(f, "{s} from the origin"),
            Nothing => write!(f, "nothing"),
        }
    }
}

fn sees_matches(want: Sees, got: &Got) -> bool {
    match (want, got) {
        (
            ProxyMade(s),
            Got::Response {
                status,
                from_origin,
            },
        ) => *status == s && !from_origin,
        (
            Origin(s),
            Got::Response {
                status,
                from_origin,
            },
        ) => *status == s && *from_origin,
        (Nothing, Got::Nothing) => true,
        _ => false,
    }
}

fn io_got(e: io::Error) -> Got {
    match e.kind() {
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => Got::TimedOut,
        io::ErrorKind::UnexpectedEof => Got::Closed("EOF".into()),
        io::ErrorKind::ConnectionReset => Got::Closed("TCP reset".into()),
        _ => Got::Closed(e.to_string()),
    }
}

fn h2_got(e: h2::Error) -> Got {
    match e.reason() {
        Some(r) if e.is_reset() => Got::Reset(format!("RST_STREAM({r:?})")),
        Some(r) if e.is_go_away() => Got::Closed(format!("GOAWAY({r:?})")),
        _ => Got::Closed(e.to_string()),
    }
}

fn h1_connect(addr: SocketAddr) -> io::Result<TcpStream> {
    let s = TcpStream::connect_timeout(&addr, CLIENT_WAIT)?;
    s.set_read_timeout(Some(CLIENT_WAIT))?;
    s.set_write_timeout(Some(CLIENT_WAIT))?;
    let _ = s.set_nodelay(true);
    Ok(s)
}

/// One bodiless request (a PUT says `Content-Length: 0`) on a new HTTP/1.1 connection.
fn h1_request(addr: SocketAddr, method: &Method, path: &str, id: &str) -> Got {
    let s = match h1_connect(addr) {
        Ok(s) => s,
        Err(e) => return Got::Other(format!("connect: {e}")),
    };
    let length = if *method == Method::PUT {
        "Content-Length: 0\r\n"
    } else {
        ""
    };
    let mut c = RawConn { wire: Wire::new(s) };
    let req =
        format!("{method} {path} HTTP/1.1\r\nHost: {HOST}\r\nX-Request-Id: {id}\r\n{length}\r\n");
    if let Err(e) = c.send(req.as_bytes()) {
        return Got::Other(format!("send: {e}"));
    }
    match c.read_response(*method == Method::HEAD) {
        Ok(r) => Got::Response {
            status: r.status,
            from_origin: r.header(ORIGIN_MARK) == Some("1"),
        },
        Err(e) => io_got(e),
    }
}

async fn h2_connect(client: Client, addr: SocketAddr, cert: &TestCert) -> H2Client {
    match client {
        Client::H2Tls => h2_tls_connect(addr, cert, HOST).await,
        _ => h2c_connect(addr).await,
    }
}

fn h2_head(
    client: Client,
    method: Method,
    path: &str,
    id: &str,
    length: Option<usize>,
) -> Request<()> {
    let scheme = if client == Client::H2Tls {
        "https"
    } else {
        "http"
    };
    let mut b = Request::builder()
        .method(method)
        .uri(format!("{scheme}://{HOST}{path}"))
        .header("x-request-id", id);
    if let Some(n) = length {
        b = b.header("content-length", n);
    }
    b.body(()).expect("request")
}

/// One bodiless request on a new h2 connection.
async fn h2_request(
    b: &Bench<'_>,
    client: Client,
    addr: SocketAddr,
    method: Method,
    path: &str,
    id: &str,
) -> Got {
    let conn = h2_connect(client, addr, b.cert).await;
    let mut send = match tokio::time::timeout(CLIENT_WAIT, conn.send.clone().ready()).await {
        Err(_) => return Got::Other("the connection took no stream".into()),
        Ok(Err(e)) => return h2_got(e),
        Ok(Ok(s)) => s,
    };
    let (response, _body) = match send.send_request(h2_head(client, method, path, id, None), true) {
        Ok(r) => r,
        Err(e) => return h2_got(e),
    };
    let resp = match tokio::time::timeout(CLIENT_WAIT, response).await {
        Err(_) => return Got::TimedOut,
        Ok(Err(e)) => return h2_got(e),
        Ok(Ok(r)) => r,
    };
    let status = resp.status().as_u16();
    let from_origin = resp.headers().get(ORIGIN_MARK).is_some_and(|v| v == "1");
    let mut body = resp.into_body();
    loop {
        match tokio::time::timeout(CLIENT_WAIT, body.data()).await {
            Err(_) => return Got::Other(format!("{status}, then the body stalled")),
            Ok(Some(Err(e))) => return Got::Other(format!("{status}, then the body failed: {e}")),
            Ok(Some(Ok(d))) => {
                let _ = body.flow_control().release_capacity(d.len());
            }
            Ok(None) => break,
        }
    }
    Got::Response {
        status,
        from_origin,
    }
}

async fn request(b: &Bench<'_>, client: Client, fault: Fault, method: Method, id: &str) -> Got {
    let addr = b.addr(fault);
    let path = format!("/{}/{id}", fault.route());
    match client {
        Client::Http11 => h1_request(addr, &method, &path, id),
        _ => h2_request(b, client, addr, method, &path, id).await,
    }
}

/// Polls `cond` (with async sleeps, so h2 drivers keep running) for up to `within`.
async fn eventually(within: Duration, cond: impl Fn() -> bool) -> bool {
    let deadline = Instant::now() + within;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The client announces a 100 000-byte body, sends 10 bytes, waits for the request to reach
/// the origin, and goes: HTTP/1.1 closes the socket, h2 resets the stream with CANCEL (keeping
/// its connection, returned so that it stays open until the cell is settled).
async fn client_gone(b: &Bench<'_>, client: Client, id: &str) -> (Got, Option<H2Client>) {
    let fault = ClientGone;
    let addr = b.addr(fault);
    let path = format!("/{}/{id}", fault.route());
    let origin = b.origin(fault);
    let before = origin.requests();
    if client == Client::Http11 {
        let mut s = match h1_connect(addr) {
            Ok(s) => s,
            Err(e) => return (Got::Other(format!("connect: {e}")), None),
        };
        let mut req = format!(
            "POST {path} HTTP/1.1\r\nHost: {HOST}\r\nX-Request-Id: {id}\r\n\
             Content-Length: {ANNOUNCED}\r\n\r\n"
        )
        .into_bytes();
        req.extend_from_slice(SENT);
        if let Err(e) = s.write_all(&req) {
            return (Got::Other(format!("send: {e}")), None);
        }
        let reached = eventually(CLIENT_WAIT, || origin.requests() > before).await;
        let _ = s.set_nonblocking(true);
        let mut first = [0u8; 64];
        let got = match s.peek(&mut first) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Got::Nothing,
            Ok(0) => Got::Other("the proxy closed the connection before the client went".into()),
            Ok(n) => Got::Other(format!(
                "the proxy answered before the client went: {:?}",
                String::from_utf8_lossy(&first[..n])
            )),
            Err(e) => Got::Other(format!("the connection failed before the client went: {e}")),
        };
        drop(s);
        if !reached {
            return (
                Got::Other(format!("the request never reached the origin ({got})")),
                None,
            );
        }
        return (got, None);
    }
    let conn = h2_connect(client, addr, b.cert).await;
    let mut send = match tokio::time::timeout(CLIENT_WAIT, conn.send.clone().ready()).await {
        Err(_) => {
            return (
                Got::Other("the connection took no stream".into()),
                Some(conn),
            )
        }
        Ok(Err(e)) => return (h2_got(e), Some(conn)),
        Ok(Ok(s)) => s,
    };
    let head = h2_head(client, Method::POST, &path, id, Some(ANNOUNCED));
    let (response, mut body) = match send.send_request(head, false) {
        Ok(r) => r,
        Err(e) => return (h2_got(e), Some(conn)),
    };
    if let Err(e) = body.send_data(Bytes::from_static(SENT), false) {
        return (Got::Other(format!("sending 10 bytes: {e}")), Some(conn));
    }
    let reached = eventually(CLIENT_WAIT, || origin.requests() > before).await;
    let mut response = Box::pin(response);
    let got = match tokio::time::timeout(Duration::from_millis(20), &mut response).await {
        Err(_) => Got::Nothing,
        Ok(Ok(r)) => Got::Other(format!(
            "the proxy answered {} before the client went",
            r.status().as_u16()
        )),
        Ok(Err(e)) => Got::Other(format!("before the client went: {}", h2_got(e))),
    };
    body.send_reset(Reason::CANCEL);
    if !reached {
        return (
            Got::Other(format!("the request never reached the origin ({got})")),
            Some(conn),
        );
    }
    (got, Some(conn))
}

// ---------------------------------------------------------------------------------------------
// Cells.

async fn wait_line(log: &AccessLog, id: &str) -> Option<serde_json::Value> {
    let deadline = Instant::now() + LOG_WAIT;
    loop {
        if let Some(l) = log.find(id) {
            return Some(l);
        }
        if Instant::now() > deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn deltas(
    row: &Row,
    before: &serde_json::Value,
    after: &serde_json::Value,
) -> Vec<(Counter, Option<i64>, i64)> {
    checked(row)
        .into_iter()
        .map(|(c, want)| {
            let got = c
                .read(after, row.0)
                .zip(c.read(before, row.0))
                .map(|(a, b)| a - b);
            (c, got, want)
        })
        .collect()
}

/// Runs one cell; `Err` lists how it differs from its row.
async fn cell(b: &Bench<'_>, row: &Row, client: Client) -> Result<(), String> {
    let Row(fault, sees, error, status, _) = *row;
    let id = format!(
        "fm-{}-{}-{}",
        b.up.label(),
        client.slug(),
        fault.label().replace(' ', "-").to_lowercase()
    );
    let mut diffs = Vec::new();
    if fault.warms_up() {
        // Leaves a connection that answered one request in the pool (or, when the pool held
        // one, retries on it and leaves the new one).
        let warm = format!("{id}-warm");
        let got = request(b, client, fault, Method::GET, &warm).await;
        if !sees_matches(Origin(200), &got) {
            diffs.push(format!("warm-up GET: client saw {got}"));
        }
        wait_line(&b.log, &warm).await;
    }
    let before = b.proxy.stats();
    let (got, hold) = if fault == ClientGone {
        client_gone(b, client, &id).await
    } else {
        (request(b, client, fault, fault.method(), &id).await, None)
    };
    let line = wait_line(&b.log, &id).await;
    let settle_until = Instant::now() + STATS_GRACE;
    let counted = loop {
        let after = b.proxy.stats();
        let d = deltas(row, &before, &after);
        if d.iter().all(|(_, got, want)| *got == Some(*want)) || Instant::now() > settle_until {
            break d;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    };
    drop(hold);

    if !sees_matches(sees, &got) {
        diffs.push(format!("client saw {got}, want {sees}"));
    }
    match &line {
        None => diffs.push(format!("no access-log line for x-request-id {id}")),
        Some(l) => {
            let (e, s) = (log_error(l), l["status"].as_u64().unwrap_or(0));
            if e != error || s != u64::from(status) {
                diffs.push(format!(
                    "access log error {e:?} status {s}, want {error:?} {status}"
                ));
            }
        }
    }
    let wrong: Vec<String> = counted
        .iter()
        .filter(|(_, got, want)| *got != Some(*want))
        .map(|(c, got, want)| match got {
            Some(g) => format!("{} {g:+} (want {want:+})", c.name()),
            None => format!("{} missing from /stats", c.name()),
        })
        .collect();
    if !wrong.is_empty() {
        diffs.push(wrong.join(", "));
    }
    if diffs.is_empty() {
        Ok(())
    } else {
        Err(diffs.join("; "))
    }
}

/// What the cells of one upstream protocol gave.
#[derive(Default)]
struct Half {
    /// One line per cell, `ok` or `FAIL`.
    report: Vec<String>,
    /// The failing cells and how they differ from their row.
    failures: Vec<String>,
}

/// Runs the cells of one upstream protocol.
fn run_upstream(up: Upstream, cert: &TestCert) -> Half {
    let dir = temp_dir("fault-matrix");
    let bench = Bench::start(up, cert, &dir.join("access.log"));
    let rt = common::http::runtime();
    let mut half = Half::default();
    for row in MATRIX {
        for client in Client::ALL {
            let pair = format!(
                "{:>8} → {:<5} {:<18}",
                client.label(),
                up.label(),
                row.0.label()
            );
            match rt.block_on(cell(&bench, row, client)) {
                Ok(()) => half.report.push(format!("ok    {pair}")),
                Err(why) => {
                    half.report.push(format!("FAIL  {pair} {why}"));
                    half.failures.push(format!("{pair} {why}"));
                }
            }
        }
    }
    drop(bench);
    let _ = std::fs::remove_dir_all(&dir);
    half
}

fn panic_text(p: &(dyn std::any::Any + Send)) -> String {
    p.downcast_ref::<String>()
        .cloned()
        .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "a panic".to_string())
}

#[test]
fn every_fault_is_answered_logged_and_counted_alike_for_all_six_protocol_pairs() {
    let started = Instant::now();
    let cert = Arc::new(TestCert::new(&[HOST]));
    let runs: Vec<(Upstream, thread::JoinHandle<Half>)> = [Upstream::Http1, Upstream::H2c]
        .into_iter()
        .map(|up| {
            let cert = cert.clone();
            (up, thread::spawn(move || run_upstream(up, &cert)))
        })
        .collect();
    let mut report = Vec::new();
    let mut failures = Vec::new();
    for (up, run) in runs {
        match run.join() {
            Ok(half) => {
                report.extend(half.report);
                failures.extend(half.failures);
            }
            Err(p) => {
                let why = format!("the {} half did not run: {}", up.label(), panic_text(&*p));
                report.push(format!("FAIL  {why}"));
                failures.push(why);
            }
        }
    }
    let elapsed = started.elapsed();
    eprintln!("fault matrix ({elapsed:.1?}):\n{}", report.join("\n"));
    assert!(
        failures.is_empty(),
        "{} of {} cells differ from the fault table (in {elapsed:.1?}):\n{}",
        failures.len(),
        MATRIX.len() * Client::ALL.len() * 2,
        failures.join("\n")
    );
}
