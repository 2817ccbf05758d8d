//! HTTP/2 test helpers: h2 clients (h2c with prior knowledge, h2 over TLS by ALPN) on tokio, an
//! h2c origin that behaves by path and records what it saw, a raw-frame client for flood tests,
//! and a self-signed certificate for the TLS listener.
//!
//! Every wait is bounded: a proxy that never answers fails the test instead of hanging it.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use bytes::Bytes;
use h2::client::SendRequest;
use h2::{Reason, RecvStream, SendStream};
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode};
use tokio::task::JoinHandle;

use super::http::{fnv, temp_dir, FNV_START};

/// How long one h2 operation may take before the test fails.
pub const H2_TIMEOUT: Duration = Duration::from_secs(15);

// ---------------------------------------------------------------------------------------------
// Clients.

/// One client connection: the request handle and its driver task (which ends with the
/// connection, with the error that ended it if any).
pub struct H2Client {
    pub send: SendRequest<Bytes>,
    pub driver: JoinHandle<Result<(), h2::Error>>,
}

fn client_builder() -> h2::client::Builder {
    let mut b = h2::client::Builder::new();
    // Modest windows so that big transfers exercise flow control end to end.
    b.initial_window_size(256 * 1024)
        .initial_connection_window_size(1024 * 1024)
        .max_concurrent_reset_streams(4096);
    b
}

/// h2c with prior knowledge (RFC 9113 §3.3).
pub async fn h2c_connect(addr: SocketAddr) -> H2Client {
    let tcp = tokio::time::timeout(H2_TIMEOUT, tokio::net::TcpStream::connect(addr))
        .await
        .unwrap_or_else(|_| panic!("connect {addr}: timed out"))
        .unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    let _ = tcp.set_nodelay(true);
    handshake(tcp).await
}

async fn handshake<IO>(io: IO) -> H2Client
where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (send, conn) = tokio::time::timeout(H2_TIMEOUT, client_builder().handshake(io))
        .await
        .expect("h2 handshake timed out")
        .expect("h2 handshake");
    let driver = tokio::spawn(conn);
    H2Client { send, driver }
}

/// h2 over TLS, negotiated by ALPN; panics unless the server picked `h2`.
pub async fn h2_tls_connect(addr: SocketAddr, cert: &TestCert, server_name: &str) -> H2Client {
    let tcp = tokio::net::TcpStream::connect(addr)
        .await
        .unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    let _ = tcp.set_nodelay(true);
    let connector = tokio_rustls::TlsConnector::from(Arc::new(cert.client_config(&[b"h2"])));
    let name = rustls_pki_types::ServerName::try_from(server_name.to_string()).expect("name");
    let tls = tokio::time::timeout(H2_TIMEOUT, connector.connect(name, tcp))
        .await
        .expect("TLS handshake timed out")
        .expect("TLS handshake");
    let alpn = tls.get_ref().1.alpn_protocol().map(<[u8]>::to_vec);
    assert_eq!(alpn.as_deref(), Some(&b"h2"[..]), "ALPN did not pick h2");
    handshake(tls).await
}

/// A request with an absolute URI (`http://authority/path`), as h2 clients send it.
pub fn request(method: Method, authority: &str, path: &str) -> Request<()> {
    Request::builder()
        .method(method)
        .uri(format!("http://{authority}{path}"))
        .body(())
        .expect("request")
}

pub fn get(path: &str) -> Request<()> {
    request(Method::GET, "h2.test", path)
}

/// A response as the client received it.
#[derive(Debug, Default)]
pub struct H2Response {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
    pub trailers: Option<HeaderMap>,
}

impl H2Response {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn trailer(&self, name: &str) -> Option<&str> {
        self.trailers
            .as_ref()
            .and_then(|t| t.get(name))
            .and_then(|v| v.to_str().ok())
    }
}

/// Waits for the connection to accept one more stream.
pub async fn ready(send: &SendRequest<Bytes>) -> Result<SendRequest<Bytes>, h2::Error> {
    tokio::time::timeout(H2_TIMEOUT, send.clone().ready())
        .await
        .unwrap_or_else(|_| panic!("the connection did not accept a stream within {H2_TIMEOUT:?}"))
}

/// Sends `data` as the peer's window allows, ending the stream with it when `end`.
pub async fn send_body(
    stream: &mut SendStream<Bytes>,
    mut data: Bytes,
    end: bool,
) -> Result<(), h2::Error> {
    if data.is_empty() {
        return stream.send_data(data, end);
    }
    while !data.is_empty() {
        stream.reserve_capacity(data.len().min(1024 * 1024));
        let n = tokio::time::timeout(
            H2_TIMEOUT,
            std::future::poll_fn(|cx| stream.poll_capacity(cx)),
        )
        .await
        .unwrap_or_else(|_| panic!("no send window within {H2_TIMEOUT:?}"));
        let n = match n {
            Some(Ok(n)) => n,
            Some(Err(e)) => return Err(e),
            None => return Err(h2::Error::from(Reason::STREAM_CLOSED)),
        };
        if n == 0 {
            continue;
        }
        let piece = data.split_to(n.min(data.len()));
        stream.send_data(piece, end && data.is_empty())?;
    }
    Ok(())
}

/// Reads the whole body (releasing the window as it goes) and the trailers.
pub async fn read_rest(body: &mut RecvStream) -> Result<(Vec<u8>, Option<HeaderMap>), h2::Error> {
    let mut out = Vec::new();
    loop {
        let next = tokio::time::timeout(H2_TIMEOUT, body.data())
            .await
            .unwrap_or_else(|_| panic!("no response data within {H2_TIMEOUT:?}"));
        match next {
            Some(Ok(d)) => {
                let _ = body.flow_control().release_capacity(d.len());
                out.extend_from_slice(&d);
            }
            Some(Err(e)) => return Err(e),
            None => break,
        }
    }
    let trailers = tokio::time::timeout(H2_TIMEOUT, body.trailers())
        .await
        .unwrap_or_else(|_| panic!("no trailers within {H2_TIMEOUT:?}"))?;
    Ok((out, trailers))
}

/// Reads until `n` more body bytes arrived (or the body ended); releases their window.
pub async fn read_exactly(body: &mut RecvStream, n: usize) -> Result<Vec<u8>, h2::Error> {
    let mut out = Vec::new();
    while out.len() < n {
        let next = tokio::time::timeout(H2_TIMEOUT, body.data())
            .await
            .unwrap_or_else(|_| panic!("{} of {n} bytes within {H2_TIMEOUT:?}", out.len()));
        match next {
            Some(Ok(d)) => {
                let _ = body.flow_control().release_capacity(d.len());
                out.extend_from_slice(&d);
            }
            Some(Err(e)) => return Err(e),
            None => break,
        }
    }
    Ok(out)
}

/// Sends `req` (with `body`, if any, then trailers, if any) and collects the response.
pub async fn exchange(
    send: &SendRequest<Bytes>,
    req: Request<()>,
    body: Option<Bytes>,
    trailers: Option<HeaderMap>,
) -> Result<H2Response, h2::Error> {
    let mut s = ready(send).await?;
    let bodiless = body.is_none() && trailers.is_none();
    let (response, mut stream) = s.send_request(req, bodiless)?;
    if let Some(b) = body {
        send_body(&mut stream, b, trailers.is_none()).await?;
    }
    if let Some(t) = trailers {
        stream.send_trailers(t)?;
    }
    let resp = tokio::time::timeout(H2_TIMEOUT, response)
        .await
        .unwrap_or_else(|_| panic!("no response head within {H2_TIMEOUT:?}"))?;
    let (parts, mut body) = resp.into_parts();
    let (data, trailers) = read_rest(&mut body).await?;
    Ok(H2Response {
        status: parts.status.as_u16(),
        headers: parts.headers,
        body: data,
        trailers,
    })
}

pub fn header_map(fields: &[(&str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (n, v) in fields {
        h.append(
            http::header::HeaderName::from_bytes(n.as_bytes()).expect("name"),
            HeaderValue::from_str(v).expect("value"),
        );
    }
    h
}

// ---------------------------------------------------------------------------------------------
// The h2c origin.

/// One request as the h2 origin received it.
#[derive(Debug, Clone)]
pub struct H2Seen {
    /// Which accepted connection (0-based) carried it.
    pub conn: usize,
    pub method: Method,
    pub authority: String,
    pub path: String,
    pub headers: HeaderMap,
}

/// How a request body read by the origin ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BodyEnd {
    Complete {
        len: u64,
        sum: u64,
    },
    /// The stream was reset (or the connection failed) after `len` bytes.
    Reset {
        len: u64,
        reason: Option<Reason>,
    },
    /// Nothing happened for the origin's body timeout.
    Stalled {
        len: u64,
    },
}

#[derive(Default)]
struct H2State {
    connections: AtomicUsize,
    streams: AtomicUsize,
    /// `/h2/hold` streams waiting.
    held: AtomicUsize,
    /// `/h2/hold` streams answer once this many are held at once.
    release_at: AtomicUsize,
    requests: Mutex<Vec<H2Seen>>,
    uploads: Mutex<HashMap<String, BodyEnd>>,
    /// Streams open right now, per connection.
    open: Mutex<HashMap<usize, usize>>,
    /// The most streams open at once on any one connection.
    max_open: AtomicUsize,
}

/// Counts a stream as open on its connection while alive.
struct OpenStream {
    state: Arc<H2State>,
    conn: usize,
}

impl OpenStream {
    fn new(state: &Arc<H2State>, conn: usize) -> OpenStream {
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

/// A tokio h2c origin on 127.0.0.1. What it does depends on the path:
///
/// - `/h2/echo…`: answers at once and streams the request body back as it arrives (full
///   duplex); then trailers: each request trailer as `x-echo-<name>`, `x-origin-trailer: done`,
///   `x-origin-len` and `x-origin-sum` (FNV-1a of the request body).
/// - `/h2/refuse…`: resets the stream with REFUSED_STREAM before answering.
/// - `/h2/cancel…`: answers 200, sends `partial`, then resets the stream with CANCEL.
/// - `/h2/hold…`: waits until [`H2Origin::hold_until`] streams are held at once (at most 10 s),
///   then answers with the path.
/// - `/h2/sleep/<ms>…`: answers with the path after that many milliseconds.
/// - `/h2/upload…`: reads the body, records how it ended ([`H2Origin::upload`]), answers
///   `len=N sum=S`.
/// - anything else: 200 with the path as body.
///
/// Every response carries `x-origin-conn` (the connection index).
pub struct H2Origin {
    pub addr: SocketAddr,
    state: Arc<H2State>,
}

impl H2Origin {
    pub fn start() -> H2Origin {
        let listener = TcpListener::bind("127.0.0.1:0").expect("h2 origin bind");
        listener.set_nonblocking(true).expect("nonblocking");
        let addr = listener.local_addr().expect("addr");
        let state = Arc::new(H2State::default());
        let st = state.clone();
        thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("origin runtime");
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).expect("tokio listener");
                loop {
                    let Ok((tcp, _)) = listener.accept().await else {
                        tokio::time::sleep(Duration::from_millis(10)).await;
                        continue;
                    };
                    let _ = tcp.set_nodelay(true);
                    let conn = st.connections.fetch_add(1, Ordering::SeqCst);
                    tokio::spawn(serve_h2_connection(st.clone(), tcp, conn));
                }
            });
        });
        H2Origin { addr, state }
    }

    pub fn connections(&self) -> usize {
        self.state.connections.load(Ordering::SeqCst)
    }

    pub fn streams(&self) -> usize {
        self.state.streams.load(Ordering::SeqCst)
    }

    /// The most streams that were open at once on one connection.
    pub fn max_streams_per_connection(&self) -> usize {
        self.state.max_open.load(Ordering::SeqCst)
    }

    pub fn requests(&self) -> Vec<H2Seen> {
        self.state
            .requests
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Makes `/h2/hold` streams wait until `n` of them are held at once.
    pub fn hold_until(&self, n: usize) {
        self.state.release_at.store(n, Ordering::SeqCst);
    }

    pub fn held(&self) -> usize {
        self.state.held.load(Ordering::SeqCst)
    }

    /// How the body of the request to `path` ended, waiting up to `within` for it to end.
    pub fn upload(&self, path: &str, within: Duration) -> Option<BodyEnd> {
        let deadline = Instant::now() + within;
        loop {
            let got = self
                .state
                .uploads
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get(path)
                .cloned();
            if got.is_some() || Instant::now() > deadline {
                return got;
            }
            thread::sleep(Duration::from_millis(10));
        }
    }

    /// Polls until a request for `path` arrived.
    pub fn wait_request(&self, path: &str, within: Duration) -> Option<H2Seen> {
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
}

async fn serve_h2_connection(state: Arc<H2State>, tcp: tokio::net::TcpStream, conn: usize) {
    let mut b = h2::server::Builder::new();
    b.max_concurrent_streams(1000)
        .initial_window_size(256 * 1024)
        .initial_connection_window_size(1024 * 1024);
    let mut connection = match b.handshake::<_, Bytes>(tcp).await {
        Ok(c) => c,
        Err(e) => {
            eprintln!("h2 origin: connection {conn}: handshake: {e}");
            return;
        }
    };
    while let Some(next) = connection.accept().await {
        match next {
            Ok((req, respond)) => {
                state.streams.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(serve_h2_stream(state.clone(), conn, req, respond));
            }
            Err(e) => {
                eprintln!("h2 origin: connection {conn}: {e}");
                return;
            }
        }
    }
}

fn origin_response(conn: usize) -> Response<()> {
    let mut r = Response::new(());
    *r.status_mut() = StatusCode::OK;
    r.headers_mut()
        .insert("x-origin-conn", HeaderValue::from(conn));
    r
}

async fn answer(respond: &mut h2::server::SendResponse<Bytes>, conn: usize, body: String) {
    if let Ok(mut s) = respond.send_response(origin_response(conn), false) {
        let _ = send_body(&mut s, Bytes::from(body), true).await;
    }
}

async fn serve_h2_stream(
    state: Arc<H2State>,
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
        .push(H2Seen {
            conn,
            method: parts.method.clone(),
            authority: parts
                .uri
                .authority()
                .map(|a| a.to_string())
                .unwrap_or_default(),
            path: path.clone(),
            headers: parts.headers.clone(),
        });
    if path.starts_with("/h2/echo") {
        echo(conn, body, respond).await;
    } else if path.starts_with("/h2/refuse") {
        respond.send_reset(Reason::REFUSED_STREAM);
    } else if path.starts_with("/h2/cancel") {
        if let Ok(mut s) = respond.send_response(origin_response(conn), false) {
            let _ = s.send_data(Bytes::from_static(b"partial"), false);
            tokio::time::sleep(Duration::from_millis(50)).await;
            s.send_reset(Reason::CANCEL);
        }
    } else if path.starts_with("/h2/hold") {
        state.held.fetch_add(1, Ordering::SeqCst);
        let deadline = Instant::now() + Duration::from_secs(10);
        while state.held.load(Ordering::SeqCst) < state.release_at.load(Ordering::SeqCst)
            && Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        answer(&mut respond, conn, path).await;
        // Stay counted until every held stream was released.
        tokio::time::sleep(Duration::from_millis(200)).await;
        state.held.fetch_sub(1, Ordering::SeqCst);
    } else if let Some(rest) = path.strip_prefix("/h2/sleep/") {
        let ms: u64 = rest
            .split(|c: char| !c.is_ascii_digit())
            .next()
            .and_then(|d| d.parse().ok())
            .unwrap_or(0);
        tokio::time::sleep(Duration::from_millis(ms)).await;
        answer(&mut respond, conn, path).await;
    } else if path.starts_with("/h2/upload") {
        let end = read_upload(&mut body).await;
        state
            .uploads
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(path.clone(), end.clone());
        if let BodyEnd::Complete { len, sum } = end {
            answer(&mut respond, conn, format!("len={len} sum={sum}")).await;
        } else {
            respond.send_reset(Reason::CANCEL);
        }
    } else {
        answer(&mut respond, conn, path).await;
    }
}

async fn read_upload(body: &mut RecvStream) -> BodyEnd {
    let mut len = 0u64;
    let mut sum = FNV_START;
    loop {
        match tokio::time::timeout(Duration::from_secs(10), body.data()).await {
            Err(_) => return BodyEnd::Stalled { len },
            Ok(None) => return BodyEnd::Complete { len, sum },
            Ok(Some(Err(e))) => {
                return BodyEnd::Reset {
                    len,
                    reason: e.reason(),
                }
            }
            Ok(Some(Ok(d))) => {
                len += d.len() as u64;
                sum = fnv(sum, &d);
                let _ = body.flow_control().release_capacity(d.len());
            }
        }
    }
}

/// Streams the request body back as it arrives, then echoes the trailers.
async fn echo(conn: usize, mut body: RecvStream, mut respond: h2::server::SendResponse<Bytes>) {
    let Ok(mut out) = respond.send_response(origin_response(conn), false) else {
        return;
    };
    let mut len = 0u64;
    let mut sum = FNV_START;
    loop {
        match tokio::time::timeout(Duration::from_secs(10), body.data()).await {
            Err(_) => {
                out.send_reset(Reason::CANCEL);
                return;
            }
            Ok(None) => break,
            Ok(Some(Err(_))) => {
                out.send_reset(Reason::CANCEL);
                return;
            }
            Ok(Some(Ok(d))) => {
                let n = d.len();
                len += n as u64;
                sum = fnv(sum, &d);
                if send_body(&mut out, d, false).await.is_err() {
                    return;
                }
                let _ = body.flow_control().release_capacity(n);
            }
        }
    }
    let mut trailers = HeaderMap::new();
    if let Ok(Some(t)) = body.trailers().await {
        for (name, value) in &t {
            if let Ok(n) =
                http::header::HeaderName::from_bytes(format!("x-echo-{}", name.as_str()).as_bytes())
            {
                trailers.append(n, value.clone());
            }
        }
    }
    trailers.insert("x-origin-trailer", HeaderValue::from_static("done"));
    trailers.insert("x-origin-len", HeaderValue::from(len));
    trailers.insert("x-origin-sum", HeaderValue::from(sum));
    let _ = out.send_trailers(trailers);
}

// ---------------------------------------------------------------------------------------------
// Raw frames (for what a well-behaved client library will not do).

pub const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

pub const FRAME_DATA: u8 = 0x0;
pub const FRAME_HEADERS: u8 = 0x1;
pub const FRAME_RST_STREAM: u8 = 0x3;
pub const FRAME_SETTINGS: u8 = 0x4;
pub const FRAME_GOAWAY: u8 = 0x7;

pub fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = payload.len();
    let mut f = Vec::with_capacity(9 + len);
    f.extend_from_slice(&[(len >> 16) as u8, (len >> 8) as u8, len as u8, kind, flags]);
    f.extend_from_slice(&(stream & 0x7fff_ffff).to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// An HPACK block for `GET http://<authority><path>` using only the static table and literals
/// without indexing (so every block is independent of the ones before).
pub fn hpack_get(authority: &str, path: &str) -> Vec<u8> {
    fn literal(out: &mut Vec<u8>, index: u8, value: &str) {
        // Literal header field without indexing, indexed name (RFC 7541 §6.2.2); short values.
        assert!(index < 15 && value.len() < 127);
        out.push(index);
        out.push(value.len() as u8);
        out.extend_from_slice(value.as_bytes());
    }
    let mut b = vec![0x82, 0x86]; // :method GET, :scheme http
    literal(&mut b, 4, path); // :path
    literal(&mut b, 1, authority); // :authority
    b
}

/// HEADERS (END_STREAM | END_HEADERS) then RST_STREAM(CANCEL) for stream `id`.
pub fn open_and_reset(id: u32, authority: &str, path: &str) -> Vec<u8> {
    let mut out = frame(FRAME_HEADERS, 0x1 | 0x4, id, &hpack_get(authority, path));
    out.extend(frame(
        FRAME_RST_STREAM,
        0,
        id,
        &u32::from(Reason::CANCEL).to_be_bytes(),
    ));
    out
}

/// What a raw connection received before it ended.
#[derive(Debug, Default)]
pub struct RawOutcome {
    /// Error codes of the GOAWAY frames received, in order.
    pub goaways: Vec<u32>,
    pub frames: usize,
    /// How the connection ended: `Ok` for EOF, `Err` for a reset or a timeout.
    pub end: Option<Result<(), String>>,
}

/// Reads frames from `s` until EOF, an error or `within`; records GOAWAYs.
pub fn read_frames(mut s: TcpStream, within: Duration) -> RawOutcome {
    let deadline = Instant::now() + within;
    let _ = s.set_read_timeout(Some(Duration::from_millis(200)));
    let mut out = RawOutcome::default();
    let mut buf: Vec<u8> = Vec::new();
    let mut chunk = [0u8; 64 * 1024];
    loop {
        if Instant::now() > deadline {
            out.end = Some(Err(format!("still open after {within:?}")));
            return out;
        }
        match s.read(&mut chunk) {
            Ok(0) => {
                out.end = Some(Ok(()));
                return out;
            }
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e)
                if e.kind() == io::ErrorKind::WouldBlock || e.kind() == io::ErrorKind::TimedOut =>
            {
                continue
            }
            Err(e) => {
                out.end = Some(Err(e.to_string()));
                return out;
            }
        }
        while buf.len() >= 9 {
            let len = (buf[0] as usize) << 16 | (buf[1] as usize) << 8 | buf[2] as usize;
            if buf.len() < 9 + len {
                break;
            }
            out.frames += 1;
            if buf[3] == FRAME_GOAWAY && len >= 8 {
                let code = u32::from_be_bytes([buf[13], buf[14], buf[15], buf[16]]);
                out.goaways.push(code);
            }
            buf.drain(..9 + len);
        }
    }
}

/// Opens a raw h2c connection: preface and an empty SETTINGS frame sent.
pub fn raw_h2c(addr: SocketAddr) -> TcpStream {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))
        .unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    s.set_write_timeout(Some(Duration::from_secs(5))).unwrap();
    let _ = s.set_nodelay(true);
    let mut hello = PREFACE.to_vec();
    hello.extend(frame(FRAME_SETTINGS, 0, 0, &[]));
    s.write_all(&hello).expect("preface");
    s
}

// ---------------------------------------------------------------------------------------------
// TLS.

/// A self-signed certificate (also its own trust anchor) written to PEM files.
pub struct TestCert {
    pub dir: PathBuf,
    pub cert_path: PathBuf,
    pub key_path: PathBuf,
    pub der: rustls_pki_types::CertificateDer<'static>,
}

impl TestCert {
    pub fn new(names: &[&str]) -> TestCert {
        let ck = rcgen::generate_simple_self_signed(
            names.iter().map(|n| n.to_string()).collect::<Vec<_>>(),
        )
        .expect("rcgen");
        let dir = temp_dir("cert");
        let cert_path = dir.join("cert.pem");
        let key_path = dir.join("key.pem");
        std::fs::write(&cert_path, ck.cert.pem()).expect("write cert");
        std::fs::write(&key_path, ck.signing_key.serialize_pem()).expect("write key");
        TestCert {
            dir,
            cert_path,
            key_path,
            der: ck.cert.der().clone(),
        }
    }

    /// A client config trusting only this certificate, offering `alpn`.
    pub fn client_config(&self, alpn: &[&[u8]]) -> rustls::ClientConfig {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.der.clone()).expect("trust anchor");
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("protocol versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        config
    }
}

impl Drop for TestCert {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
