//! Helpers for the upstream HTTP/2 tests (HTTP/1.1 clients to h2c clusters, h2 over TLS to
//! upstreams): an HTTP/2 origin on tokio that speaks h2c or h2 over TLS (tokio-rustls, with the
//! ALPN list a test chooses), answers by path, and records the requests, the SNI and ALPN of each
//! TLS handshake and the streams open at once per connection; and a runner for start-up failures.
//!
//! Every wait is bounded: a proxy that never answers fails the test instead of hanging it.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use bytes::Bytes;
use h2::{Reason, RecvStream};
use http::{HeaderMap, HeaderValue, Request, Response, StatusCode};

use super::h2_support::send_body;
use super::http::{fnv, temp_dir, FNV_START};
use super::tls::{Leaf, TLS_TIMEOUT};
use super::{binary, payload};

/// Seed of the bodies `/len/<n>` and `/nolen/<n>` answer with: `payload(n, BODY_SEED)`.
pub const BODY_SEED: u64 = 11;

/// The trailers `/trailers` ends with (after the body [`TRAILERS_BODY`]).
pub const TRAILERS_BODY: &str = "a body, then trailers";

/// One request as the origin received it.
#[derive(Debug, Clone)]
pub struct UpSeen {
    /// Which HTTP/2 connection (0-based, in accept order) carried it.
    pub conn: usize,
    pub method: String,
    pub scheme: String,
    pub authority: String,
    pub path: String,
    pub headers: HeaderMap,
}

impl UpSeen {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// How a TLS handshake with the origin went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Handshake {
    pub sni: Option<String>,
    pub alpn: Option<String>,
}

#[derive(Default)]
struct State {
    /// TCP connections accepted.
    accepted: AtomicUsize,
    /// TLS handshakes that failed (or timed out).
    tls_failures: AtomicUsize,
    /// Completed TLS handshakes, in order.
    handshakes: Mutex<Vec<Handshake>>,
    /// HTTP/2 connections established (after TLS, if any).
    connections: AtomicUsize,
    requests: Mutex<Vec<UpSeen>>,
    /// Streams open right now, per connection.
    open: Mutex<HashMap<usize, usize>>,
    /// The most streams open at once on one connection.
    max_open: AtomicUsize,
}

/// Counts a stream as open on its connection while alive.
struct OpenStream {
    state: Arc<State>,
    conn: usize,
}

impl OpenStream {
    fn new(state: &Arc<State>, conn: usize) -> OpenStream {
        let mut open = state.open.lock().unwrap_or_else(|e| e.into_inner());
        let n = open.entry(conn).or_insert(0);
        *n += 1;
        state.max_open.fetch_max(*n, Ordering::SeqCst);
        OpenStream {
            state: state.clone(),
            conn,
        }
    }
}

impl Drop for OpenStream {
    fn drop(&mut self) {
        let mut open = self.state.open.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = open.get_mut(&self.conn) {
            *n = n.saturating_sub(1);
        }
    }
}

/// An HTTP/2 origin on 127.0.0.1 (its own thread and current-thread tokio runtime). By path:
///
/// - `/len/<n>…`: `n` bytes of `payload(n, BODY_SEED)` with a `content-length`;
/// - `/nolen/<n>…`: the same bytes without a `content-length`, in DATA frames of 10 000 bytes;
/// - `/trailers…`: [`TRAILERS_BODY`] without a length, then trailers `x-checksum` (FNV-1a of the
///   body) and `grpc-status: 0`;
/// - `/upload…`: reads the whole body, answers `len=N sum=S` (FNV-1a) with a length;
/// - `/reset/chunked…`: 200 without a length, 48 KiB of body, then RST_STREAM(INTERNAL_ERROR);
/// - `/reset/length…`: 200 with `content-length: 1000000`, 48 KiB of body, then the same reset;
/// - `/empty…`: 200 without a length or body: END_STREAM on the HEADERS frame;
/// - `/sleep/<ms>…`: the path, with a length, after that many milliseconds;
/// - anything else: the path, with a length.
///
/// Every response carries `x-origin-conn` (the connection index). With TLS the origin speaks
/// HTTP/2 whatever ALPN agreed on (or did not): a proxy that ignored ALPN would get answers.
pub struct H2Backend {
    pub addr: SocketAddr,
    state: Arc<State>,
}

impl H2Backend {
    /// HTTP/2 in clear text (prior knowledge).
    pub fn h2c() -> H2Backend {
        H2Backend::start(None)
    }

    /// HTTP/2 over TLS with `leaf`'s certificate, offering `alpn` (empty: no ALPN extension in
    /// the ServerHello).
    pub fn tls(leaf: &Leaf, alpn: &[&str]) -> H2Backend {
        let mut config = leaf.server_config();
        config.alpn_protocols = alpn.iter().map(|a| a.as_bytes().to_vec()).collect();
        H2Backend::start(Some(tokio_rustls::TlsAcceptor::from(Arc::new(config))))
    }

    fn start(tls: Option<tokio_rustls::TlsAcceptor>) -> H2Backend {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("h2 backend bind");
        listener.set_nonblocking(true).expect("nonblocking");
        let addr = listener.local_addr().expect("addr");
        let state = Arc::new(State::default());
        let st = state.clone();
        thread::spawn(move || {
            super::http::runtime().block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).expect("tokio listener");
                loop {
                    let Ok((tcp, _)) = listener.accept().await else {
                        tokio::time::sleep(Duration::from_millis(10)).await;
                        continue;
                    };
                    let _ = tcp.set_nodelay(true);
                    st.accepted.fetch_add(1, Ordering::SeqCst);
                    let st = st.clone();
                    match tls.clone() {
                        None => {
                            tokio::spawn(serve_connection(st, tcp));
                        }
                        Some(acceptor) => {
                            tokio::spawn(async move {
                                let accept =
                                    tokio::time::timeout(TLS_TIMEOUT, acceptor.accept(tcp));
                                let Ok(Ok(tls)) = accept.await else {
                                    st.tls_failures.fetch_add(1, Ordering::SeqCst);
                                    return;
                                };
                                let (_, session) = tls.get_ref();
                                let seen = Handshake {
                                    sni: session.server_name().map(str::to_string),
                                    alpn: session
                                        .alpn_protocol()
                                        .map(|a| String::from_utf8_lossy(a).into_owned()),
                                };
                                st.handshakes
                                    .lock()
                                    .unwrap_or_else(|e| e.into_inner())
                                    .push(seen);
                                serve_connection(st, tls).await;
                            });
                        }
                    }
                }
            });
        });
        H2Backend { addr, state }
    }

    /// TCP connections accepted.
    pub fn accepted(&self) -> usize {
        self.state.accepted.load(Ordering::SeqCst)
    }

    /// HTTP/2 connections established.
    pub fn connections(&self) -> usize {
        self.state.connections.load(Ordering::SeqCst)
    }

    pub fn tls_failures(&self) -> usize {
        self.state.tls_failures.load(Ordering::SeqCst)
    }

    pub fn handshakes(&self) -> Vec<Handshake> {
        self.state
            .handshakes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The most streams that were open at once on one connection.
    pub fn max_streams_per_connection(&self) -> usize {
        self.state.max_open.load(Ordering::SeqCst)
    }

    pub fn requests(&self) -> Vec<UpSeen> {
        self.state
            .requests
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Polls until a request for `path` arrived.
    pub fn wait_request(&self, path: &str, within: Duration) -> Option<UpSeen> {
        let deadline = Instant::now() + within;
        loop {
            if let Some(s) = self.requests().into_iter().find(|s| s.path == path) {
                return Some(s);
            }
            if Instant::now() > deadline {
                return None;
            }
            thread::sleep(Duration::from_millis(5));
        }
    }

    /// Polls until at least `n` TCP connections were accepted and every one of them either
    /// completed or failed its TLS handshake (so what [`handshakes`](Self::handshakes) and
    /// [`tls_failures`](Self::tls_failures) say is final for them).
    pub fn wait_tls_settled(&self, n: usize, within: Duration) {
        let deadline = Instant::now() + within;
        loop {
            let accepted = self.accepted();
            let settled = self.handshakes().len() + self.tls_failures();
            if accepted >= n && settled >= accepted {
                return;
            }
            if Instant::now() > deadline {
                panic!("{accepted} connections accepted, {settled} handshakes settled");
            }
            thread::sleep(Duration::from_millis(5));
        }
    }
}

async fn serve_connection<IO>(state: Arc<State>, io: IO)
where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let mut b = h2::server::Builder::new();
    b.max_concurrent_streams(1000)
        .initial_window_size(256 * 1024)
        .initial_connection_window_size(1024 * 1024);
    let Ok(Ok(mut connection)) =
        tokio::time::timeout(Duration::from_secs(5), b.handshake::<_, Bytes>(io)).await
    else {
        return;
    };
    let conn = state.connections.fetch_add(1, Ordering::SeqCst);
    while let Some(next) = connection.accept().await {
        match next {
            Ok((req, respond)) => {
                tokio::spawn(serve_stream(state.clone(), conn, req, respond));
            }
            Err(_) => return,
        }
    }
}

fn response(conn: usize, length: Option<usize>) -> Response<()> {
    let mut r = Response::new(());
    *r.status_mut() = StatusCode::OK;
    r.headers_mut()
        .insert("x-origin-conn", HeaderValue::from(conn));
    if let Some(n) = length {
        r.headers_mut()
            .insert("content-length", HeaderValue::from(n));
    }
    r
}

/// Answers `body` with a `content-length`.
async fn answer(respond: &mut h2::server::SendResponse<Bytes>, conn: usize, body: Vec<u8>) {
    if let Ok(mut s) = respond.send_response(response(conn, Some(body.len())), body.is_empty()) {
        if !body.is_empty() {
            let _ = send_body(&mut s, Bytes::from(body), true).await;
        }
    }
}

/// The number after `prefix` in `path` (digits up to the next non-digit).
fn number_after(path: &str, prefix: &str) -> Option<usize> {
    path.strip_prefix(prefix)?
        .split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()
}

async fn serve_stream(
    state: Arc<State>,
    conn: usize,
    req: Request<RecvStream>,
    mut respond: h2::server::SendResponse<Bytes>,
) {
    let _open = OpenStream::new(&state, conn);
    let (parts, mut body) = req.into_parts();
    let path = parts
        .uri
        .path_and_query()
        .map_or("/".to_string(), |p| p.as_str().to_string());
    state
        .requests
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(UpSeen {
            conn,
            method: parts.method.to_string(),
            scheme: parts.uri.scheme_str().unwrap_or_default().to_string(),
            authority: parts
                .uri
                .authority()
                .map(|a| a.to_string())
                .unwrap_or_default(),
            path: path.clone(),
            headers: parts.headers.clone(),
        });
    if let Some(n) = number_after(&path, "/len/") {
        answer(&mut respond, conn, payload(n, BODY_SEED)).await;
    } else if let Some(n) = number_after(&path, "/nolen/") {
        let Ok(mut s) = respond.send_response(response(conn, None), false) else {
            return;
        };
        let data = payload(n, BODY_SEED);
        for piece in data.chunks(10_000) {
            if send_body(&mut s, Bytes::copy_from_slice(piece), false)
                .await
                .is_err()
            {
                return;
            }
        }
        let _ = s.send_data(Bytes::new(), true);
    } else if path.starts_with("/trailers") {
        let Ok(mut s) = respond.send_response(response(conn, None), false) else {
            return;
        };
        if send_body(&mut s, Bytes::from_static(TRAILERS_BODY.as_bytes()), false)
            .await
            .is_err()
        {
            return;
        }
        let mut t = HeaderMap::new();
        let sum = fnv(FNV_START, TRAILERS_BODY.as_bytes());
        t.insert("x-checksum", HeaderValue::from(sum));
        t.insert("grpc-status", HeaderValue::from_static("0"));
        let _ = s.send_trailers(t);
    } else if path.starts_with("/upload") {
        let mut len = 0u64;
        let mut sum = FNV_START;
        loop {
            match tokio::time::timeout(Duration::from_secs(10), body.data()).await {
                Ok(None) => break,
                Ok(Some(Ok(d))) => {
                    len += d.len() as u64;
                    sum = fnv(sum, &d);
                    let _ = body.flow_control().release_capacity(d.len());
                }
                Ok(Some(Err(_))) | Err(_) => {
                    respond.send_reset(Reason::CANCEL);
                    return;
                }
            }
        }
        answer(
            &mut respond,
            conn,
            format!("len={len} sum={sum}").into_bytes(),
        )
        .await;
    } else if let Some(rest) = path.strip_prefix("/reset/") {
        let length = rest.starts_with("length").then_some(1_000_000);
        let Ok(mut s) = respond.send_response(response(conn, length), false) else {
            return;
        };
        let _ = send_body(&mut s, Bytes::from(payload(48 * 1024, 5)), false).await;
        // Let the bytes reach the client before the reset.
        tokio::time::sleep(Duration::from_millis(150)).await;
        s.send_reset(Reason::INTERNAL_ERROR);
    } else if path.starts_with("/empty") {
        let _ = respond.send_response(response(conn, None), true);
    } else if let Some(ms) = number_after(&path, "/sleep/") {
        tokio::time::sleep(Duration::from_millis(ms as u64)).await;
        answer(&mut respond, conn, path.into_bytes()).await;
    } else {
        answer(&mut respond, conn, path.into_bytes()).await;
    }
}

/// Runs `strait <args>` expecting it to fail at start: its exit status and stderr.
pub fn start_fails(args: &[String]) -> (ExitStatus, String) {
    let log = temp_dir("upstream-h2-start-fails").join("stderr");
    let mut child = Command::new(binary())
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).expect("stderr file"))
        .spawn()
        .expect("spawn strait");
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "strait did not exit; stderr:\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        }
        thread::sleep(Duration::from_millis(20));
    };
    let stderr = std::fs::read_to_string(&log).unwrap_or_default();
    let _ = std::fs::remove_dir_all(log.parent().expect("dir"));
    (status, stderr)
}

/// A DER certificate as a PEM `CERTIFICATE` block (for CA files: the test CA only hands out DER).
pub fn certificate_pem(der: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut b64 = String::with_capacity(der.len().div_ceil(3) * 4);
    for group in der.chunks(3) {
        let n = group
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, &b)| n | (b as u32) << (16 - 8 * i));
        for i in 0..4 {
            if i <= group.len() {
                b64.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                b64.push('=');
            }
        }
    }
    let mut pem = String::from("-----BEGIN CERTIFICATE-----\n");
    for line in b64.as_bytes().chunks(64) {
        pem.push_str(std::str::from_utf8(line).expect("base64 is ASCII"));
        pem.push('\n');
    }
    pem.push_str("-----END CERTIFICATE-----\n");
    pem
}
