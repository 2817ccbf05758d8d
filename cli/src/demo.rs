//! `strait demo`: Strait in front of two built-in origins on loopback, ready for curl and nc.
//!
//! Owns: the demo origins (blocking threads: they are scenery, not the thing measured), the
//! demo's self-signed certificate (written to a private temporary directory, removed on drop),
//! and the embedded demo configuration: an HTTP listener speaking HTTP/1.1 and h2c with routes
//! (`/api/...` round robin over both origins with the prefix stripped, `/ws` to the origins'
//! WebSocket echo, a redirect, a static home page), a sniffing listener that serves the same
//! routes over TLS (h2 and HTTP/1.1 by ALPN), HTTP/1.1 and h2c in clear text, and relays anything
//! else as raw TCP to the origins, and a TCP listener relaying raw bytes to the same origins.
//! An origin answers an HTTP/1.x request with a short page naming itself and the path it got,
//! a WebSocket upgrade with a 101 and then echoes every message, and echoes any other bytes back
//! unchanged.

use std::fs::{DirBuilder, OpenOptions};
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use strait_engine::config::http::defaults as http_defaults;
use strait_engine::config::tls::defaults as tls_defaults;
use strait_engine::config::{
    AccessLogConfig, AccessLogFormat, AccessLogTarget, AdminConfig, CertificateConfig,
    ClusterConfig, Config, EndpointConfig, FixedResponse, ForwardAction, HeaderEdits, HostMatch,
    HttpListenerConfig, ListenerConfig, ListenerProtocol, LogConfig, PathMatch, PrefixRewrite,
    ProtocolSet, ProxyProtocol, RouteAction, RouteConfig, RuntimeConfig, SniffConfig,
    TlsListenerConfig, TlsVersion, UpstreamHttpConfig, WeightedCluster,
};
use strait_engine::Server;

const MAX_ORIGIN_CONNECTIONS: usize = 256;

/// Everything the demo runs besides the proxy: the origins and the certificate files.
pub struct Demo {
    pub origins: Origins,
    pub certificate: Certificate,
}

impl Demo {
    /// Starts the origins and writes the certificate.
    pub fn start() -> Result<Demo, String> {
        let origins = start_origins().map_err(|e| format!("cannot start the demo origins: {e}"))?;
        let certificate = Certificate::create()
            .map_err(|e| format!("cannot write the demo's TLS certificate: {e}"))?;
        Ok(Demo {
            origins,
            certificate,
        })
    }

    pub fn config(&self, listen: Listen) -> Config {
        config(listen, &self.origins, &self.certificate)
    }
}

/// Where the demo's three listeners listen.
#[derive(Debug, Clone, Copy)]
pub struct Listen {
    /// HTTP/1.1 and h2c, with routes.
    pub http: SocketAddr,
    /// Raw TCP to the origins.
    pub tcp: SocketAddr,
    /// Sniffing: TLS, HTTP/1.1, h2c, and raw TCP for anything else.
    pub tls: SocketAddr,
}

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

/// The demo's self-signed certificate and key, PEM files in a fresh private directory
/// (mode 0700; the key 0600) under the system's temporary directory. Dropping it removes them.
pub struct Certificate {
    pub dir: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl Certificate {
    /// The names the certificate is issued for (`127.0.0.1` as an IP address SAN).
    pub const NAMES: [&'static str; 3] = ["localhost", "127.0.0.1", "*.localhost"];

    pub fn create() -> io::Result<Certificate> {
        Certificate::create_in(&std::env::temp_dir())
    }

    fn create_in(parent: &Path) -> io::Result<Certificate> {
        let mut params =
            rcgen::CertificateParams::new(Certificate::NAMES.map(String::from).to_vec())
                .map_err(io::Error::other)?;
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "Strait demo");
        let key = rcgen::KeyPair::generate().map_err(io::Error::other)?;
        let cert = params.self_signed(&key).map_err(io::Error::other)?;
        let dir = private_dir(parent)?;
        // From here on, dropping `certificate` (on an error too) removes the directory.
        let certificate = Certificate {
            cert: dir.join("cert.pem"),
            key: dir.join("key.pem"),
            dir,
        };
        write_new(&certificate.cert, cert.pem().as_bytes(), 0o644)?;
        write_new(&certificate.key, key.serialize_pem().as_bytes(), 0o600)?;
        Ok(certificate)
    }
}

impl Drop for Certificate {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A directory that did not exist before, readable by this user only.
fn private_dir(parent: &Path) -> io::Result<PathBuf> {
    let pid = std::process::id();
    for attempt in 0..1000u32 {
        let dir = match attempt {
            0 => parent.join(format!("strait-demo-{pid}")),
            _ => parent.join(format!("strait-demo-{pid}-{attempt}")),
        };
        match DirBuilder::new().mode(0o700).create(&dir) {
            Ok(()) => return Ok(dir),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e),
        }
    }
    Err(io::Error::new(
        io::ErrorKind::AlreadyExists,
        format!(
            "no fresh strait-demo-{pid}-N directory in {}",
            parent.display()
        ),
    ))
}

fn write_new(path: &Path, contents: &[u8], mode: u32) -> io::Result<()> {
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)?
        .write_all(contents)
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
        let raw = String::from_utf8_lossy(&buf[..end]).into_owned();
        let head = raw.to_ascii_lowercase();
        if let Some(key) = websocket_key(&raw) {
            let response = format!(
                "HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: Upgrade\r\n\
                 sec-websocket-accept: {}\r\nx-demo-origin: {n}\r\n\r\n",
                websocket_accept(key)
            );
            stream.write_all(response.as_bytes())?;
            let early = buf[end + 4..filled].to_vec();
            return websocket_echo(stream, early);
        }
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

/// The `Sec-WebSocket-Key` of a WebSocket upgrade request head (RFC 6455 §4.2.1), if it is one.
fn websocket_key(head: &str) -> Option<&str> {
    let mut upgrade = false;
    let mut key = None;
    for line in head.split("\r\n").skip(1) {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("upgrade") {
            upgrade |= value
                .split(',')
                .any(|p| p.trim().eq_ignore_ascii_case("websocket"));
        } else if name.eq_ignore_ascii_case("sec-websocket-key") {
            key = Some(value);
        }
    }
    key.filter(|_| upgrade && head.starts_with("GET "))
}

/// `Sec-WebSocket-Accept` for a key: base64(SHA-1(key + GUID)) (RFC 6455 §4.2.2).
fn websocket_accept(key: &str) -> String {
    const GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
    base64(&sha1(format!("{key}{GUID}").as_bytes()))
}

/// Largest message payload the demo echoes; a bigger one is answered with close 1009.
const MAX_WEBSOCKET_PAYLOAD: u64 = 1024 * 1024;

/// Echoes WebSocket frames (RFC 6455 §5): data frames back with the same opcode and FIN bit,
/// unmasked; a ping with a pong; a close with a close, then the connection ends.
fn websocket_echo(mut stream: TcpStream, mut pending: Vec<u8>) -> io::Result<()> {
    let mut buf = [0u8; 16 * 1024];
    loop {
        let Some((header, len)) = frame_header(&pending) else {
            let got = stream.read(&mut buf)?;
            if got == 0 {
                return Ok(());
            }
            pending.extend_from_slice(&buf[..got]);
            continue;
        };
        let (first, masked, payload_len) = (pending[0], pending[1] & 0x80 != 0, len);
        if payload_len > MAX_WEBSOCKET_PAYLOAD {
            return stream.write_all(&[0x88, 2, 0x03, 0xF1]);
        }
        let mask_len = if masked { 4 } else { 0 };
        let total = header + mask_len + payload_len as usize;
        while pending.len() < total {
            let got = stream.read(&mut buf)?;
            if got == 0 {
                return Ok(());
            }
            pending.extend_from_slice(&buf[..got]);
        }
        let mut payload = pending[header + mask_len..total].to_vec();
        if masked {
            let mask = &pending[header..header + 4];
            for (i, b) in payload.iter_mut().enumerate() {
                *b ^= mask[i % 4];
            }
        }
        pending.drain(..total);
        let opcode = first & 0x0F;
        let reply_first = match opcode {
            0x9 => 0x80 | 0xA,
            0xA => continue,
            _ => first & 0x8F,
        };
        let mut frame = vec![reply_first];
        match payload.len() {
            l @ 0..=125 => frame.push(l as u8),
            l @ 126..=0xFFFF => {
                frame.push(126);
                frame.extend_from_slice(&(l as u16).to_be_bytes());
            }
            l => {
                frame.push(127);
                frame.extend_from_slice(&(l as u64).to_be_bytes());
            }
        }
        frame.extend_from_slice(&payload);
        stream.write_all(&frame)?;
        if opcode == 0x8 {
            return Ok(());
        }
    }
}

/// The length of a frame's header (without the masking key) and its payload length, once the
/// bytes hold the whole header.
fn frame_header(bytes: &[u8]) -> Option<(usize, u64)> {
    let len7 = *bytes.get(1)? & 0x7F;
    match len7 {
        126 => Some((
            4,
            u16::from_be_bytes(bytes.get(2..4)?.try_into().ok()?).into(),
        )),
        127 => Some((10, u64::from_be_bytes(bytes.get(2..10)?.try_into().ok()?))),
        l => Some((2, l.into())),
    }
}

/// SHA-1 (FIPS 180-4), for the WebSocket handshake only.
fn sha1(data: &[u8]) -> [u8; 20] {
    let mut h: [u32; 5] = [
        0x6745_2301,
        0xEFCD_AB89,
        0x98BA_DCFE,
        0x1032_5476,
        0xC3D2_E1F0,
    ];
    let mut message = data.to_vec();
    message.push(0x80);
    while message.len() % 64 != 56 {
        message.push(0);
    }
    message.extend_from_slice(&(data.len() as u64).wrapping_mul(8).to_be_bytes());
    for block in message.chunks_exact(64) {
        let mut w = [0u32; 80];
        for (word, bytes) in w.iter_mut().zip(block.chunks_exact(4)) {
            *word = u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
        }
        for t in 16..80 {
            w[t] = (w[t - 3] ^ w[t - 8] ^ w[t - 14] ^ w[t - 16]).rotate_left(1);
        }
        let [mut a, mut b, mut c, mut d, mut e] = h;
        for (t, &word) in w.iter().enumerate() {
            let (f, k) = match t {
                0..=19 => ((b & c) | (!b & d), 0x5A82_7999),
                20..=39 => (b ^ c ^ d, 0x6ED9_EBA1),
                40..=59 => ((b & c) | (b & d) | (c & d), 0x8F1B_BCDC),
                _ => (b ^ c ^ d, 0xCA62_C1D6),
            };
            let temp = a
                .rotate_left(5)
                .wrapping_add(f)
                .wrapping_add(e)
                .wrapping_add(k)
                .wrapping_add(word);
            e = d;
            d = c;
            c = b.rotate_left(30);
            b = a;
            a = temp;
        }
        for (x, v) in h.iter_mut().zip([a, b, c, d, e]) {
            *x = x.wrapping_add(v);
        }
    }
    let mut out = [0u8; 20];
    for (o, x) in out.chunks_exact_mut(4).zip(h) {
        o.copy_from_slice(&x.to_be_bytes());
    }
    out
}

/// Standard base64 with padding (RFC 4648 §4).
fn base64(data: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let n = (u32::from(chunk[0]) << 16)
            | (u32::from(*chunk.get(1).unwrap_or(&0)) << 8)
            | u32::from(*chunk.get(2).unwrap_or(&0));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 0x3F) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

const HOME_PAGE: &str = "<!doctype html><title>Strait demo</title>\n\
<h1>Strait demo</h1>\n\
<p>This page is a fixed response of the route <code>home</code>. Try <code>/api/anything</code> \
(round robin over two origins, prefix stripped), <code>/ws</code> (a WebSocket echo) and \
<code>/old</code> (a redirect).</p>\n";

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

fn to_origins(rewrite: Option<PrefixRewrite>) -> RouteAction {
    RouteAction::Forward(ForwardAction {
        clusters: vec![WeightedCluster {
            cluster: 0,
            weight: 1,
        }],
        rewrite,
    })
}

/// The routes of both HTTP-speaking listeners.
fn routes() -> Vec<RouteConfig> {
    let mut api = route(
        "api",
        PathMatch::Prefix("/api".into()),
        to_origins(Some(PrefixRewrite {
            from: "/api".into(),
            to: String::new(),
        })),
    );
    api.response_headers
        .set
        .push(("x-demo-route".into(), "api".into()));
    vec![
        api,
        route("ws", PathMatch::Exact("/ws".into()), to_origins(None)),
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
    ]
}

fn http_settings() -> Option<Box<HttpListenerConfig>> {
    Some(Box::new(HttpListenerConfig {
        routes: routes(),
        limits: http_defaults::LIMITS,
        timeouts: http_defaults::TIMEOUTS,
        trust_forwarded: false,
        h2: tls_defaults::H2,
    }))
}

/// The demo's configuration: HTTP/1.1 and h2c on `listen.http`, raw TCP on `listen.tcp`, every
/// protocol (TLS with `certificate`, HTTP/1.1, h2c, raw TCP) on `listen.tls`, admin on 9901, an
/// access log on stdout.
pub fn config(listen: Listen, origins: &Origins, certificate: &Certificate) -> Config {
    Config {
        runtime: RuntimeConfig::default(),
        admin: Some(AdminConfig::at(SocketAddr::from(([127, 0, 0, 1], 9901)))),
        log: LogConfig::default(),
        listeners: vec![
            ListenerConfig {
                name: "demo-http".into(),
                address: listen.http,
                protocol: ListenerProtocol::Auto,
                cluster: None,
                idle_timeout: Duration::from_secs(300),
                backlog: 1024,
                http: http_settings(),
                sniff: Some(SniffConfig {
                    protocols: ProtocolSet {
                        http1: true,
                        h2c: true,
                        ..ProtocolSet::NONE
                    },
                    // No raw TCP here, so no server-speaks-first guess to make quickly: give a
                    // client typing by hand as long as it gets for a request head.
                    timeout: http_defaults::TIMEOUTS.header_read,
                }),
                tls: None,
            },
            ListenerConfig {
                name: "demo-tcp".into(),
                address: listen.tcp,
                protocol: ListenerProtocol::Tcp,
                cluster: Some(0),
                idle_timeout: Duration::from_secs(300),
                backlog: 1024,
                http: None,
                sniff: None,
                tls: None,
            },
            ListenerConfig {
                name: "demo-tls".into(),
                address: listen.tls,
                protocol: ListenerProtocol::Auto,
                // Connections that are neither TLS nor HTTP: the origins echo them.
                cluster: Some(0),
                idle_timeout: Duration::from_secs(300),
                backlog: 1024,
                http: http_settings(),
                sniff: Some(SniffConfig {
                    protocols: ProtocolSet::ALL,
                    timeout: tls_defaults::SNIFF_TIMEOUT,
                }),
                tls: Some(Box::new(TlsListenerConfig {
                    certificates: vec![CertificateConfig {
                        cert: certificate.cert.clone(),
                        key: certificate.key.clone(),
                        server_names: Vec::new(),
                    }],
                    min_version: TlsVersion::Tls12,
                    alpn: tls_defaults::alpn_http(),
                    session_tickets: true,
                    handshake_timeout: tls_defaults::HANDSHAKE_TIMEOUT,
                    passthrough: Vec::new(),
                })),
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

/// `host:port` for a URL: `localhost` for a loopback address (the certificate's name), the
/// address itself otherwise.
fn tls_authority(address: SocketAddr) -> String {
    if address.ip().is_loopback() || address.ip().is_unspecified() {
        format!("localhost:{}", address.port())
    } else {
        address.to_string()
    }
}

pub fn print_banner(server: &Server, demo: &Demo) {
    let addresses = server.listener_addresses();
    let (http, tcp, tls) = (addresses[0], addresses[1], addresses[2]);
    let https = tls_authority(tls);
    let origin_list: Vec<String> = demo
        .origins
        .addresses
        .iter()
        .map(ToString::to_string)
        .collect();
    println!("Strait demo is running (Ctrl-C to stop).");
    println!(
        "  HTTP proxy  {http}  ->  HTTP/1.1 and h2c; routes: /api/* round robin over demo origins {} \
         (prefix stripped), /ws WebSocket echo, /old redirect, / home page",
        origin_list.join(", ")
    );
    println!(
        "  every protocol  {tls}  ->  sniffed: TLS (h2 and http/1.1 by ALPN), HTTP/1.1 and h2c \
         take the same routes; anything else is relayed as raw TCP to the origins"
    );
    println!(
        "  certificate {}  (self-signed for {}; removed on exit)",
        demo.certificate.cert.display(),
        Certificate::NAMES.join(", ")
    );
    println!("  TCP proxy   {tcp}  ->  the same origins, raw bytes (round robin)");
    if let Some(admin) = server.admin_address() {
        println!("  admin       http://{admin}/  (metrics, stats, healthz, readyz)");
    }
    println!("  access log JSON lines on stdout, below");
    println!();
    println!("Try:");
    println!("  curl -s http://{http}/api/users       # origin 1, then 2, ... (it sees /users)");
    println!("  curl -si --http2-prior-knowledge http://{http}/api/users    # h2c, to the same HTTP/1.1 origins");
    println!("  curl -sik --http1.1 https://{https}/api/users    # TLS, HTTP/1.1 by ALPN (-k: the certificate is self-signed)");
    println!("  curl -sik --http2 https://{https}/api/users      # TLS, h2 by ALPN");
    println!(
        "  curl -si --cacert {} https://{https}/api/users    # TLS, verified against the demo certificate",
        demo.certificate.cert.display()
    );
    println!(
        "  printf 'hello\\n' | nc -N {} {}    # neither TLS nor HTTP: sniffed as raw TCP, echoed by an origin",
        tls.ip(),
        tls.port()
    );
    println!(
        "  curl -i -N -H 'Connection: Upgrade' -H 'Upgrade: websocket' -H 'Sec-WebSocket-Version: 13' \
         -H 'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==' http://{http}/ws    # 101, then a WebSocket echo tunnel (Ctrl-C)"
    );
    println!("  curl -si http://{http}/old            # 301 to /");
    println!("  curl -s http://{http}/                # the home page, answered by Strait itself");
    println!(
        "  printf 'hello\\n' | nc -N {} {}    # raw TCP, echoed back",
        tcp.ip(),
        tcp.port()
    );
    if let Some(admin) = server.admin_address() {
        println!("  curl -s http://{admin}/stats");
        println!("  curl -s http://{admin}/metrics | grep ^strait_listener_protocol");
    }
    println!();
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    use std::os::unix::fs::PermissionsExt;

    fn listen() -> Listen {
        Listen {
            http: "127.0.0.1:8080".parse().unwrap(),
            tcp: "127.0.0.1:8081".parse().unwrap(),
            tls: "127.0.0.1:8443".parse().unwrap(),
        }
    }

    fn origins() -> Origins {
        Origins {
            addresses: vec![
                "127.0.0.1:9000".parse().unwrap(),
                "127.0.0.1:9001".parse().unwrap(),
            ],
        }
    }

    #[test]
    fn demo_config_validates_with_every_protocol_on_the_tls_listener() {
        let certificate = Certificate::create().unwrap();
        let c = config(listen(), &origins(), &certificate);
        assert_eq!(c.validate(), Ok(()));
        let names: Vec<&str> = c.listeners.iter().map(|l| l.name.as_str()).collect();
        assert_eq!(names, ["demo-http", "demo-tcp", "demo-tls"]);
        let http = &c.listeners[0];
        assert_eq!(http.accepted().names(), ["http1", "h2c"]);
        let tls = &c.listeners[2];
        assert_eq!(tls.address, listen().tls);
        assert_eq!(tls.accepted(), ProtocolSet::ALL);
        assert_eq!(tls.cluster, Some(0));
        let t = tls.tls.as_ref().unwrap();
        assert_eq!(t.alpn, ["h2", "http/1.1"]);
        assert_eq!(t.certificates[0].cert, certificate.cert);
        assert_eq!(t.certificates[0].key, certificate.key);
        // Both HTTP listeners take the same routes.
        assert_eq!(
            http.http.as_ref().unwrap().routes,
            tls.http.as_ref().unwrap().routes
        );
        // The engine can load what the demo wrote.
        let loaded = strait_engine::tls::load_certificate(&t.certificates[0]).unwrap();
        assert_eq!(loaded.names, ["localhost", "*.localhost"]);
    }

    #[test]
    fn the_certificate_files_are_private_parse_and_name_localhost() {
        let certificate = Certificate::create().unwrap();
        let dir = certificate.dir.clone();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&certificate.key), 0o600);
        assert!(dir.starts_with(std::env::temp_dir()));

        let chain: Vec<CertificateDer> = CertificateDer::pem_file_iter(&certificate.cert)
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(chain.len(), 1);
        PrivateKeyDer::from_pem_file(&certificate.key).unwrap();
        // The names, in DER: two DNS names and the IP address 127.0.0.1.
        let der = chain[0].as_ref();
        let contains = |needle: &[u8]| der.windows(needle.len()).any(|w| w == needle);
        assert!(contains(b"\x82\x09localhost"));
        assert!(contains(b"\x82\x0b*.localhost"));
        assert!(contains(b"\x87\x04\x7f\x00\x00\x01"));

        // A second certificate gets its own directory; dropping removes the files.
        let other = Certificate::create().unwrap();
        assert_ne!(other.dir, dir);
        drop(certificate);
        assert!(!dir.exists());
        assert!(other.cert.exists());
    }

    #[test]
    fn sha1_and_base64_match_the_standard_vectors() {
        let hex = |d: [u8; 20]| d.iter().map(|b| format!("{b:02x}")).collect::<String>();
        assert_eq!(hex(sha1(b"")), "da39a3ee5e6b4b0d3255bfef95601890afd80709");
        assert_eq!(
            hex(sha1(b"abc")),
            "a9993e364706816aba3e25717850c26c9cd0d89d"
        );
        assert_eq!(
            hex(sha1(
                b"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"
            )),
            "84983e441c3bd26ebaae4aa1f95129e5e54670f1"
        );
        assert_eq!(
            hex(sha1(&[b'a'; 1_000_000])),
            "34aa973cd4c4daa4f61eeb2bdbad27316534016f"
        );
        for (input, output) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(input.as_bytes()), output);
        }
        // RFC 6455 §1.3.
        assert_eq!(
            websocket_accept("dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }

    #[test]
    fn an_origin_upgrades_to_websocket_and_echoes_messages() {
        use tungstenite::Message;
        let origins = start_origins().unwrap();
        let stream = TcpStream::connect(origins.addresses[0]).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let url = format!("ws://{}/ws", origins.addresses[0]);
        // tungstenite checks Sec-WebSocket-Accept.
        let (mut ws, response) = tungstenite::client(url.as_str(), stream).unwrap();
        assert_eq!(response.status(), 101);
        ws.send(Message::text("hello")).unwrap();
        assert_eq!(ws.read().unwrap(), Message::text("hello"));
        let big = vec![7u8; 70_000];
        ws.send(Message::binary(big.clone())).unwrap();
        assert_eq!(ws.read().unwrap(), Message::binary(big));
        ws.send(Message::Ping(vec![1, 2].into())).unwrap();
        assert_eq!(ws.read().unwrap(), Message::Pong(vec![1, 2].into()));
        ws.close(None).unwrap();
        loop {
            match ws.read() {
                Ok(Message::Close(_)) => {}
                Err(tungstenite::Error::ConnectionClosed) => break,
                other => panic!("unexpected {other:?}"),
            }
        }
    }

    #[test]
    fn an_origin_still_answers_plain_requests_and_echoes_bytes() {
        let origins = start_origins().unwrap();
        let mut s = TcpStream::connect(origins.addresses[1]).unwrap();
        s.write_all(b"GET /x HTTP/1.1\r\nhost: a\r\nconnection: close\r\n\r\n")
            .unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        assert!(out.starts_with("HTTP/1.1 200 OK\r\n"), "{out}");
        assert!(out.contains("you asked for /x"));
        let mut s = TcpStream::connect(origins.addresses[1]).unwrap();
        s.write_all(b"hello\n").unwrap();
        s.shutdown(std::net::Shutdown::Write).unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        assert_eq!(out, "hello\n");
    }
}
