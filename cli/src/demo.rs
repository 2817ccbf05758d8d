//! `strait demo`: Strait in front of two built-in origins on loopback, ready for curl and nc.
//!
//! Owns: the demo origins (blocking threads: they are scenery, not the thing measured) and the
//! embedded demo configuration. An origin answers an HTTP/1.x request with a short page naming
//! itself, and echoes any other bytes back unchanged, so both `curl` and `nc` show the round robin.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use strait_engine::config::{
    AdminConfig, ClusterConfig, Config, EndpointConfig, ListenerConfig, ListenerProtocol,
    LogConfig, ProxyProtocol, RuntimeConfig, UpstreamHttpConfig,
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
        let body = format!("hello from demo origin {n} ({address}) via strait\n");
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

pub fn config(listen: SocketAddr, origins: &Origins) -> Config {
    Config {
        runtime: RuntimeConfig::default(),
        admin: Some(AdminConfig {
            address: SocketAddr::from(([127, 0, 0, 1], 9901)),
        }),
        log: LogConfig::default(),
        listeners: vec![ListenerConfig {
            name: "demo-tcp".into(),
            address: listen,
            protocol: ListenerProtocol::Tcp,
            cluster: Some(0),
            idle_timeout: Duration::from_secs(300),
            backlog: 1024,
            http: None,
        }],
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
        access_log: None,
    }
}

pub fn print_banner(server: &Server, origins: &Origins) {
    let listen = server.listener_addresses()[0];
    let origin_list: Vec<String> = origins.addresses.iter().map(ToString::to_string).collect();
    println!("Strait demo is running (Ctrl-C to stop).");
    println!(
        "  TCP proxy  {listen}  ->  demo origins {} (round robin)",
        origin_list.join(", ")
    );
    if let Some(admin) = server.admin_address() {
        println!("  admin      http://{admin}/  (metrics, stats, healthz, readyz)");
    }
    println!();
    println!("Try:");
    println!("  curl -s http://{listen}/              # answered by origin 1, then 2, ...");
    println!(
        "  printf 'hello\\n' | nc -N {} {}    # raw TCP, echoed back",
        listen.ip(),
        listen.port()
    );
    if let Some(admin) = server.admin_address() {
        println!("  curl -s http://{admin}/stats");
        println!("  curl -s http://{admin}/metrics | grep ^strait_listener");
    }
}
