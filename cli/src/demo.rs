//! `strait demo`: Strait in front of two built-in origins on loopback, ready for curl and nc.
//!
//! Owns: the demo origins (blocking threads: they are scenery, not the thing measured) and the
//! embedded demo configuration: an HTTP listener with routes (`/api/...` round robin over both
//! origins with the prefix stripped, a redirect, a static home page) and a TCP listener relaying
//! raw bytes to the same origins. An origin answers an HTTP/1.x request with a short page naming
//! itself and the path it got, and echoes any other bytes back unchanged.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use strait_engine::config::http::defaults as http_defaults;
use strait_engine::config::{
    AccessLogConfig, AccessLogFormat, AccessLogTarget, AdminConfig, ClusterConfig, Config,
    EndpointConfig, FixedResponse, ForwardAction, HeaderEdits, HostMatch, HttpListenerConfig,
    ListenerConfig, ListenerProtocol, LogConfig, PathMatch, PrefixRewrite, ProxyProtocol,
    RouteAction, RouteConfig, RuntimeConfig, UpstreamHttpConfig, WeightedCluster,
};
use strait_engine::Server;

const MAX_ORIGIN_CONNECTIONS: usize = 256;

pub struct Origins {
    pub addresses: Vec<SocketAddr>,
}

pub fn start_origins() -> io::Result<Origins> {
    let mut addresses = Vec::new();
    for n in 1..=2 {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let address = listener.local_addr()?;
        addresses.push(address);
        let open = Arc::new(AtomicUsize::new(0));
        std::thread::Builder::new()
            .name(format!("demo-origin-{n}"))
            .spawn(move || {
                for stream in listener.incoming().flatten() {
                    if open.load(Ordering::SeqCst) >= MAX_ORIGIN_CONNECTIONS {
                        continue;
                    }
                    open.fetch_add(1, Ordering::SeqCst);
                    let open = open.clone();
                    let _ = std::thread::Builder::new().spawn(move || {
                        let _ = serve_origin(stream, n, address);
                        open.fetch_sub(1, Ordering::SeqCst);
                    });
                }
            })?;
    }
    Ok(Origins { addresses })
}

fn looks_like_http(head: &[u8]) -> bool {
    const METHODS: [&[u8]; 9] = [
        b"GET ",
        b"HEAD ",
        b"POST ",
        b"PUT ",
        b"DELETE ",
        b"OPTIONS ",
        b"PATCH ",
        b"TRACE ",
        b"CONNECT ",
    ];
    METHODS.iter().any(|m| head.starts_with(m))
}

fn serve_origin(mut stream: TcpStream, n: usize, address: SocketAddr) -> io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(300)))?;
    let mut buf = vec![0u8; 64 * 1024];
    // HTTP clients send the request line in their first segment; decide on it once.
    let filled = stream.read(&mut buf)?;
    if filled == 0 {
        return Ok(());
    }
    if looks_like_http(&buf[..filled]) {
        return serve_http(stream, buf, filled, n, address);
    }
    // Echo: everything back, unchanged, until the client half-closes.
    stream.write_all(&buf[..filled])?;
    loop {
        let got = stream.read(&mut buf)?;
        if got == 0 {
            return stream.shutdown(std::net::Shutdown::Write);
        }
        stream.write_all(&buf[..got])?;
    }
}

fn serve_http(
    mut stream: TcpStream,
    mut buf: Vec<u8>,
    mut filled: usize,
    n: usize,
    address: SocketAddr,
) -> io::Result<()> {
    loop {
        let Some(end) = buf[..filled].windows(4).position(|w| w == b"\r\n\r\n") else {
            if filled == buf.len() {
                return stream.write_all(b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
            }
            let got = stream.read(&mut buf[filled..])?;
            if got == 0 {
                return Ok(());
            }
            filled += got;
            continue;
        };
        let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
        let close = head.contains("connection: close") || head.contains("http/1.0");
        let request_line = head.lines().next().unwrap_or("");
        let target = request_line.split(' ').nth(1).unwrap_or("?");
        let request_id = head
            .lines()
            .find_map(|l| l.strip_prefix("x-request-id:"))
            .map_or("-", str::trim);
        let body = format!(
            "hello from demo origin {n} ({address}): you asked for {target}, request id {request_id}\n"
        );
        let response = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: {}\r\nx-demo-origin: {n}\r\n{}\r\n{body}",
            body.len(),
            if close { "connection: close\r\n" } else { "" }
        );
        stream.write_all(response.as_bytes())?;
        if close {
            return Ok(());
        }
        // Request bodies are not expected by the demo; drop the head and keep what follows.
        buf.copy_within(end + 4..filled, 0);
        filled -= end + 4;
    }
}

const HOME_PAGE: &str = "<!doctype html><title>Strait demo</title>\n\
<h1>Strait demo</h1>\n\
<p>This page is a fixed response of the route <code>home</code>. Try <code>/api/anything</code> \
(round robin over two origins, prefix stripped) and <code>/old</code> (a redirect).</p>\n";

fn route(name: &str, path: PathMatch, action: RouteAction) -> RouteConfig {
    RouteConfig {
        name: name.into(),
        host: HostMatch::Any,
        path,
        methods: Vec::new(),
        headers: Vec::new(),
        action,
        request_headers: HeaderEdits::default(),
        response_headers: HeaderEdits::default(),
        max_body_size: None,
    }
}

/// The demo's configuration: HTTP on `listen`, raw TCP on `tcp_listen`, admin on 9901, an access
/// log on stdout.
pub fn config(listen: SocketAddr, tcp_listen: SocketAddr, origins: &Origins) -> Config {
    let mut api = route(
        "api",
        PathMatch::Prefix("/api".into()),
        RouteAction::Forward(ForwardAction {
            clusters: vec![WeightedCluster {
                cluster: 0,
                weight: 1,
            }],
            rewrite: Some(PrefixRewrite {
                from: "/api".into(),
                to: String::new(),
            }),
        }),
    );
    api.response_headers
        .set
        .push(("x-demo-route".into(), "api".into()));
    let routes = vec![
        api,
        route(
            "old",
            PathMatch::Exact("/old".into()),
            RouteAction::Respond(FixedResponse {
                status: 301,
                body: String::new(),
                content_type: "text/plain; charset=utf-8".into(),
                location: Some("/".into()),
            }),
        ),
        route(
            "home",
            PathMatch::Prefix("/".into()),
            RouteAction::Respond(FixedResponse {
                status: 200,
                body: HOME_PAGE.into(),
                content_type: "text/html; charset=utf-8".into(),
                location: None,
            }),
        ),
    ];
    Config {
        runtime: RuntimeConfig::default(),
        admin: Some(AdminConfig {
            address: SocketAddr::from(([127, 0, 0, 1], 9901)),
        }),
        log: LogConfig::default(),
        listeners: vec![
            ListenerConfig {
                name: "demo-http".into(),
                address: listen,
                protocol: ListenerProtocol::Http,
                cluster: None,
                idle_timeout: Duration::from_secs(300),
                backlog: 1024,
                http: Some(Box::new(HttpListenerConfig {
                    routes,
                    limits: http_defaults::LIMITS,
                    timeouts: http_defaults::TIMEOUTS,
                    trust_forwarded: false,
                    h2: strait_engine::config::tls::defaults::H2,
                })),
                sniff: None,
                tls: None,
            },
            ListenerConfig {
                name: "demo-tcp".into(),
                address: tcp_listen,
                protocol: ListenerProtocol::Tcp,
                cluster: Some(0),
                idle_timeout: Duration::from_secs(300),
                backlog: 1024,
                http: None,
                sniff: None,
                tls: None,
            },
        ],
        clusters: vec![ClusterConfig {
            name: "demo-origins".into(),
            endpoints: origins
                .addresses
                .iter()
                .map(|&address| EndpointConfig { address, weight: 1 })
                .collect(),
            connect_timeout: Duration::from_secs(3),
            connect_attempts: 2,
            proxy_protocol: ProxyProtocol::Off,
            http: UpstreamHttpConfig::default(),
        }],
        access_log: Some(AccessLogConfig {
            target: AccessLogTarget::Stdout,
            format: AccessLogFormat::Json,
            sample: 1,
        }),
    }
}

pub fn print_banner(server: &Server, origins: &Origins) {
    let addresses = server.listener_addresses();
    let (http, tcp) = (addresses[0], addresses[1]);
    let origin_list: Vec<String> = origins.addresses.iter().map(ToString::to_string).collect();
    println!("Strait demo is running (Ctrl-C to stop).");
    println!(
        "  HTTP proxy {http}  ->  routes: /api/* round robin over demo origins {} (prefix stripped), /old redirect, / home page",
        origin_list.join(", ")
    );
    println!("  TCP proxy  {tcp}  ->  the same origins, raw bytes (round robin)");
    if let Some(admin) = server.admin_address() {
        println!("  admin      http://{admin}/  (metrics, stats, healthz, readyz)");
    }
    println!("  access log JSON lines on stdout, below");
    println!();
    println!("Try:");
    println!("  curl -s http://{http}/api/users       # origin 1, then 2, ... (it sees /users)");
    println!("  curl -si http://{http}/old            # 301 to /");
    println!("  curl -s http://{http}/                # the home page, answered by Strait itself");
    println!(
        "  printf 'hello\\n' | nc -N {} {}    # raw TCP, echoed back",
        tcp.ip(),
        tcp.port()
    );
    if let Some(admin) = server.admin_address() {
        println!("  curl -s http://{admin}/stats");
        println!("  curl -s http://{admin}/metrics | grep ^strait_http_requests");
    }
    println!();
}
