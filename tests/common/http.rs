//! HTTP test helpers: a recording HTTP/1.1 origin on plain threads, a raw-socket client that sees
//! the exact bytes the proxy sends, config-file proxies, `/metrics` lookups and hyper plumbing.
//!
//! Every socket has a timeout, every loop a bound, and the origin never panics on a network
//! result: a broken connection is logged and dropped, so a proxy bug fails the test that
//! exercises it instead of hanging the binary.

use std::convert::Infallible;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::thread;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::{Body, Frame, Incoming};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;

use super::{args, free_addr, http_get, Proxy, IO_TIMEOUT};

/// Read timeout of raw client sockets: long enough for a loaded CI box, short enough that a
/// proxy that never answers fails the test quickly.
pub const RAW_TIMEOUT: Duration = Duration::from_secs(5);
/// A head (request or response) larger than this is a test failure, not a limit under test.
const MAX_HEAD: usize = 256 * 1024;
/// Requests served on one origin connection before it is closed (a bound, never reached).
const MAX_REQUESTS_PER_CONNECTION: usize = 100_000;
/// Body bytes kept in a [`Seen`] for content assertions; longer bodies are checksummed only.
const KEEP_BODY: usize = 64 * 1024;
/// Chunk sizes the origin cycles through, so chunk boundaries fall everywhere.
const CHUNK_SIZES: &[usize] = &[1, 7, 100, 4096, 65_536, 100_003, 16_384];

pub const FNV_START: u64 = 0xcbf2_9ce4_8422_2325;

/// Incremental FNV-1a, equal to `common::checksum` over the concatenation of the pieces.
pub fn fnv(mut h: u64, data: &[u8]) -> u64 {
    for &b in data {
        h ^= b as u64;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// Case-insensitive lookup of the first field named `name`.
pub fn find<'a>(fields: &'a [(String, String)], name: &str) -> Option<&'a str> {
    fields
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// Every value of the fields named `name`, in order.
pub fn find_all<'a>(fields: &'a [(String, String)], name: &str) -> Vec<&'a str> {
    fields
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Buffered socket reading shared by the origin and the raw client.

/// A socket with a read buffer: `buf[pos..]` is unread.
pub struct Wire {
    pub stream: TcpStream,
    buf: Vec<u8>,
    pos: usize,
}

impl Wire {
    pub fn new(stream: TcpStream) -> Wire {
        Wire {
            stream,
            buf: Vec::with_capacity(64 * 1024),
            pos: 0,
        }
    }

    pub fn buffered(&self) -> &[u8] {
        &self.buf[self.pos..]
    }

    fn consume(&mut self, n: usize) {
        self.pos += n;
        if self.pos == self.buf.len() {
            self.buf.clear();
            self.pos = 0;
        }
    }

    /// Reads more bytes into the buffer; `Ok(0)` is end-of-file.
    pub fn fill(&mut self) -> io::Result<usize> {
        if self.pos > 0 && self.pos > self.buf.len() / 2 {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
        let mut chunk = [0u8; 64 * 1024];
        let n = self.stream.read(&mut chunk)?;
        self.buf.extend_from_slice(&chunk[..n]);
        Ok(n)
    }

    /// A whole head up to and including its empty line. `Ok(None)`: clean EOF before any byte.
    pub fn read_head(&mut self) -> io::Result<Option<Vec<u8>>> {
        let mut scanned = 0;
        loop {
            let avail = self.buffered();
            if let Some(i) = avail[scanned..].windows(4).position(|w| w == b"\r\n\r\n") {
                let end = scanned + i + 4;
                let head = avail[..end].to_vec();
                self.consume(end);
                return Ok(Some(head));
            }
            scanned = avail.len().saturating_sub(3);
            if avail.len() > MAX_HEAD {
                return Err(io::Error::other("head too large"));
            }
            if self.fill()? == 0 {
                return if self.buffered().is_empty() {
                    Ok(None)
                } else {
                    Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        format!(
                            "EOF inside a head: {:?}",
                            String::from_utf8_lossy(self.buffered())
                        ),
                    ))
                };
            }
        }
    }

    /// One CRLF-terminated line, without the CRLF.
    fn read_line(&mut self, max: usize) -> io::Result<Vec<u8>> {
        loop {
            let avail = self.buffered();
            if let Some(i) = avail.windows(2).position(|w| w == b"\r\n") {
                let line = avail[..i].to_vec();
                self.consume(i + 2);
                return Ok(line);
            }
            if avail.len() > max {
                return Err(io::Error::other("line too long"));
            }
            if self.fill()? == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
        }
    }

    /// Reads exactly `n` body bytes, handing them to `sink` piece by piece.
    fn read_exact_to(&mut self, mut n: u64, sink: &mut dyn FnMut(&[u8])) -> io::Result<()> {
        while n > 0 {
            if self.buffered().is_empty() && self.fill()? == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            let avail = self.buffered();
            let take = avail.len().min(n.min(usize::MAX as u64) as usize);
            sink(&avail[..take]);
            self.consume(take);
            n -= take as u64;
        }
        Ok(())
    }

    /// Reads a chunked body; returns its trailers.
    fn read_chunked_to(
        &mut self,
        sink: &mut dyn FnMut(&[u8]),
    ) -> io::Result<Vec<(String, String)>> {
        for _ in 0..10_000_000 {
            let line = self.read_line(4096)?;
            let size_hex = line.split(|&b| b == b';').next().unwrap_or(&[]);
            let size_str = std::str::from_utf8(size_hex).map_err(io::Error::other)?;
            let size = u64::from_str_radix(size_str.trim(), 16)
                .map_err(|e| io::Error::other(format!("bad chunk size {:?}: {e}", size_str)))?;
            if size == 0 {
                let mut trailers = Vec::new();
                for _ in 0..1000 {
                    let t = self.read_line(64 * 1024)?;
                    if t.is_empty() {
                        return Ok(trailers);
                    }
                    let t = String::from_utf8_lossy(&t).into_owned();
                    let (n, v) = t
                        .split_once(':')
                        .ok_or_else(|| io::Error::other(format!("bad trailer {t:?}")))?;
                    trailers.push((n.to_string(), v.trim().to_string()));
                }
                return Err(io::Error::other("too many trailers"));
            }
            self.read_exact_to(size, sink)?;
            let mut crlf = Vec::new();
            self.read_exact_to(2, &mut |b| crlf.extend_from_slice(b))?;
            if crlf != b"\r\n" {
                return Err(io::Error::other(format!(
                    "chunk data not followed by CRLF: {crlf:?}"
                )));
            }
        }
        Err(io::Error::other("too many chunks"))
    }

    /// Reads until EOF.
    fn read_to_eof(&mut self, sink: &mut dyn FnMut(&[u8])) -> io::Result<()> {
        loop {
            if !self.buffered().is_empty() {
                let n = self.buffered().len();
                sink(self.buffered());
                self.consume(n);
            }
            if self.fill()? == 0 {
                return Ok(());
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The recording origin.

/// One request as the origin received it.
#[derive(Clone, Debug, Default)]
pub struct Seen {
    /// Which accepted connection (0-based) carried it.
    pub conn: usize,
    /// Its position on that connection (0-based).
    pub nth: usize,
    pub method: String,
    pub target: String,
    /// HTTP/1.x minor version.
    pub version: u8,
    pub headers: Vec<(String, String)>,
    /// The first `KEEP_BODY` bytes of the body.
    pub body: Vec<u8>,
    pub body_len: u64,
    pub body_sum: u64,
    pub trailers: Vec<(String, String)>,
    /// The whole body (and the head) arrived.
    pub complete: bool,
    /// The connection failed while the body was being read.
    pub aborted: bool,
}

impl Seen {
    pub fn header(&self, name: &str) -> Option<&str> {
        find(&self.headers, name)
    }

    pub fn header_all(&self, name: &str) -> Vec<&str> {
        find_all(&self.headers, name)
    }

    pub fn body_text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// How the origin frames a response body.
#[derive(Clone, Debug)]
pub enum Framing {
    /// Content-Length (added unless the handler set one).
    Length,
    /// Chunked, with these trailers.
    Chunked(Vec<(String, String)>),
    /// Until the origin closes (`connection: close`, no length).
    Close,
}

/// What the origin does instead of a normal answer.
#[derive(Clone, Debug)]
pub enum Action {
    Respond,
    /// Writes these bytes and closes.
    Garbage(Vec<u8>),
    /// Writes these bytes and goes on serving the connection.
    Raw(Vec<u8>),
    /// Writes these bytes, holds the connection open this long, then closes it.
    RawHold(Vec<u8>, Duration),
    /// Closes without answering.
    HangUp,
}

/// The origin's answer to one request.
#[derive(Clone, Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Arc<Vec<u8>>,
    pub framing: Framing,
    /// 1xx responses sent before the final one.
    pub interim: Vec<u16>,
    /// Wait this long before answering.
    pub delay: Duration,
    pub action: Action,
    /// Close the connection if no new request starts within this long after the answer.
    pub idle_close: Option<Duration>,
}

impl Reply {
    pub fn new(status: u16) -> Reply {
        Reply {
            status,
            headers: Vec::new(),
            body: Arc::new(Vec::new()),
            framing: Framing::Length,
            interim: Vec::new(),
            delay: Duration::ZERO,
            action: Action::Respond,
            idle_close: None,
        }
    }

    pub fn ok(body: impl Into<Vec<u8>>) -> Reply {
        Reply::new(200).body(body)
    }

    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Reply {
        self.body = Arc::new(body.into());
        self
    }

    pub fn shared_body(mut self, body: Arc<Vec<u8>>) -> Reply {
        self.body = body;
        self
    }

    pub fn header(mut self, name: &str, value: &str) -> Reply {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }

    pub fn chunked(mut self, trailers: &[(&str, &str)]) -> Reply {
        self.framing = Framing::Chunked(
            trailers
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect(),
        );
        self
    }

    pub fn close_delimited(mut self) -> Reply {
        self.framing = Framing::Close;
        self
    }

    pub fn interim(mut self, status: u16) -> Reply {
        self.interim.push(status);
        self
    }

    pub fn delay(mut self, d: Duration) -> Reply {
        self.delay = d;
        self
    }

    pub fn idle_close(mut self, d: Duration) -> Reply {
        self.idle_close = Some(d);
        self
    }

    pub fn garbage(bytes: &[u8]) -> Reply {
        let mut r = Reply::new(0);
        r.action = Action::Garbage(bytes.to_vec());
        r
    }

    /// Exact response bytes; the connection stays open for the next request.
    pub fn raw(bytes: &[u8]) -> Reply {
        let mut r = Reply::new(0);
        r.action = Action::Raw(bytes.to_vec());
        r
    }

    /// Exact bytes, then silence for `hold`, then close.
    pub fn raw_hold(bytes: &[u8], hold: Duration) -> Reply {
        let mut r = Reply::new(0);
        r.action = Action::RawHold(bytes.to_vec(), hold);
        r
    }

    pub fn hang_up() -> Reply {
        let mut r = Reply::new(0);
        r.action = Action::HangUp;
        r
    }
}

type Handler = dyn Fn(&Seen) -> Reply + Send + Sync;

struct OriginState {
    handler: Box<Handler>,
    connections: AtomicUsize,
    closed: AtomicUsize,
    requests: Mutex<Vec<Seen>>,
}

impl OriginState {
    fn record(&self, seen: &Seen) -> usize {
        let mut r = self.requests.lock().unwrap_or_else(|e| e.into_inner());
        r.push(seen.clone());
        r.len() - 1
    }

    fn update(&self, index: usize, seen: &Seen) {
        let mut r = self.requests.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(slot) = r.get_mut(index) {
            *slot = seen.clone();
        }
    }
}

/// A threaded HTTP/1.1 origin on 127.0.0.1 that records every request and answers through a
/// per-test handler.
pub struct HttpOrigin {
    pub addr: SocketAddr,
    state: Arc<OriginState>,
}

impl HttpOrigin {
    pub fn start<F>(handler: F) -> HttpOrigin
    where
        F: Fn(&Seen) -> Reply + Send + Sync + 'static,
    {
        let listener = TcpListener::bind("127.0.0.1:0").expect("origin bind");
        let addr = listener.local_addr().expect("origin addr");
        let state = Arc::new(OriginState {
            handler: Box::new(handler),
            connections: AtomicUsize::new(0),
            closed: AtomicUsize::new(0),
            requests: Mutex::new(Vec::new()),
        });
        let st = state.clone();
        thread::spawn(move || {
            for stream in listener.incoming() {
                let stream = match stream {
                    Ok(s) => s,
                    Err(e) => {
                        eprintln!("origin {addr}: accept: {e}");
                        thread::sleep(Duration::from_millis(10));
                        continue;
                    }
                };
                let conn = st.connections.fetch_add(1, Ordering::SeqCst);
                let st = st.clone();
                thread::spawn(move || {
                    serve_connection(&st, stream, conn);
                    st.closed.fetch_add(1, Ordering::SeqCst);
                });
            }
        });
        HttpOrigin { addr, state }
    }

    /// Answers every request `200` with body `ok`.
    pub fn ok() -> HttpOrigin {
        HttpOrigin::start(|_| Reply::ok("ok"))
    }

    /// Answers with a description of the request: `METHOD target len=N sum=S`.
    pub fn echo() -> HttpOrigin {
        HttpOrigin::start(|r| {
            Reply::ok(format!(
                "{} {} len={} sum={}",
                r.method, r.target, r.body_len, r.body_sum
            ))
        })
    }

    pub fn connections(&self) -> usize {
        self.state.connections.load(Ordering::SeqCst)
    }

    /// Connections that ended (closed by either side, or dropped by the origin).
    pub fn closed_connections(&self) -> usize {
        self.state.closed.load(Ordering::SeqCst)
    }

    /// Polls until `n` connections have ended; returns how many did.
    pub fn wait_closed(&self, n: usize, within: Duration) -> usize {
        let deadline = Instant::now() + within;
        loop {
            let c = self.closed_connections();
            if c >= n || Instant::now() > deadline {
                return c;
            }
            thread::sleep(Duration::from_millis(10));
        }
    }

    pub fn requests(&self) -> Vec<Seen> {
        self.state
            .requests
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub fn request_count(&self) -> usize {
        self.state
            .requests
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .len()
    }

    /// The most recent request; panics when there is none.
    pub fn last(&self) -> Seen {
        self.requests()
            .pop()
            .expect("the origin received no request")
    }

    /// Polls until at least `n` requests were recorded (or `within` passes); returns them all.
    pub fn wait_requests(&self, n: usize, within: Duration) -> Vec<Seen> {
        let deadline = Instant::now() + within;
        loop {
            let r = self.requests();
            if r.len() >= n || Instant::now() > deadline {
                return r;
            }
            thread::sleep(Duration::from_millis(10));
        }
    }
}

fn parse_request_head(head: &[u8]) -> io::Result<Seen> {
    let mut fields = [httparse::EMPTY_HEADER; 256];
    let mut req = httparse::Request::new(&mut fields);
    match req.parse(head) {
        Ok(httparse::Status::Complete(_)) => {}
        Ok(httparse::Status::Partial) => return Err(io::Error::other("partial head")),
        Err(e) => {
            return Err(io::Error::other(format!(
                "unparsable request head ({e}): {:?}",
                String::from_utf8_lossy(head)
            )))
        }
    }
    Ok(Seen {
        method: req.method.unwrap_or_default().to_string(),
        target: req.path.unwrap_or_default().to_string(),
        version: req.version.unwrap_or(1),
        headers: req
            .headers
            .iter()
            .map(|h| {
                (
                    h.name.to_string(),
                    String::from_utf8_lossy(h.value).into_owned(),
                )
            })
            .collect(),
        ..Seen::default()
    })
}

fn has_token(fields: &[(String, String)], name: &str, token: &str) -> bool {
    find_all(fields, name)
        .iter()
        .any(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
}

fn serve_connection(state: &OriginState, stream: TcpStream, conn: usize) {
    let peer = stream
        .peer_addr()
        .map(|a| a.to_string())
        .unwrap_or_default();
    let _ = stream.set_nodelay(true);
    let _ = stream.set_read_timeout(Some(IO_TIMEOUT));
    let _ = stream.set_write_timeout(Some(IO_TIMEOUT));
    let mut w = Wire::new(stream);
    let mut idle_close: Option<Duration> = None;
    for nth in 0..MAX_REQUESTS_PER_CONNECTION {
        if let Some(d) = idle_close.take() {
            if w.buffered().is_empty() {
                let _ = w.stream.set_read_timeout(Some(d));
                match w.fill() {
                    Ok(n) if n > 0 => {}
                    _ => return, // idle past `d` (or closed): close it
                }
                let _ = w.stream.set_read_timeout(Some(IO_TIMEOUT));
            }
        }
        let head = match w.read_head() {
            Ok(Some(h)) => h,
            Ok(None) => return,
            Err(e) => {
                eprintln!("origin: connection {conn} from {peer}: reading a head: {e}");
                return;
            }
        };
        let mut seen = match parse_request_head(&head) {
            Ok(s) => s,
            Err(e) => {
                eprintln!("origin: connection {conn}: {e}");
                return;
            }
        };
        seen.conn = conn;
        seen.nth = nth;
        seen.body_sum = FNV_START;
        let index = state.record(&seen);
        let chunked = has_token(&seen.headers, "transfer-encoding", "chunked");
        let length = find(&seen.headers, "content-length").map(|v| v.trim().parse::<u64>());
        let mut len = 0u64;
        let mut sum = FNV_START;
        let mut kept = Vec::new();
        let mut sink = |data: &[u8]| {
            len += data.len() as u64;
            sum = fnv(sum, data);
            if kept.len() < KEEP_BODY {
                let room = KEEP_BODY - kept.len();
                kept.extend_from_slice(&data[..data.len().min(room)]);
            }
        };
        let body = if chunked {
            w.read_chunked_to(&mut sink)
        } else {
            match length {
                Some(Ok(n)) => w.read_exact_to(n, &mut sink).map(|_| Vec::new()),
                Some(Err(e)) => Err(io::Error::other(format!("bad content-length: {e}"))),
                None => Ok(Vec::new()),
            }
        };
        seen.body = kept;
        seen.body_len = len;
        seen.body_sum = sum;
        match body {
            Ok(trailers) => {
                seen.trailers = trailers;
                seen.complete = true;
                state.update(index, &seen);
            }
            Err(e) => {
                seen.aborted = true;
                state.update(index, &seen);
                eprintln!(
                    "origin: connection {conn}: body of {} {} aborted after {len} bytes: {e}",
                    seen.method, seen.target
                );
                return;
            }
        }
        let reply = (state.handler)(&seen);
        let client_close = if seen.version == 0 {
            !has_token(&seen.headers, "connection", "keep-alive")
        } else {
            has_token(&seen.headers, "connection", "close")
        };
        match write_reply(&mut w.stream, &seen, &reply) {
            Ok(close) if close || client_close => {
                let _ = w.stream.shutdown(Shutdown::Both);
                return;
            }
            Ok(_) => {}
            Err(e) => {
                eprintln!("origin: connection {conn}: writing a response: {e}");
                return;
            }
        }
        idle_close = reply.idle_close;
    }
}

pub fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        103 => "Early Hints",
        200 => "OK",
        204 => "No Content",
        301 => "Moved Permanently",
        304 => "Not Modified",
        404 => "Not Found",
        500 => "Internal Server Error",
        _ => "Whatever",
    }
}

/// Writes `reply`; `Ok(true)`: close the connection afterwards.
fn write_reply(s: &mut TcpStream, req: &Seen, reply: &Reply) -> io::Result<bool> {
    if !reply.delay.is_zero() {
        thread::sleep(reply.delay);
    }
    match &reply.action {
        Action::Respond => {}
        Action::Garbage(bytes) => {
            s.write_all(bytes)?;
            return Ok(true);
        }
        Action::Raw(bytes) => {
            s.write_all(bytes)?;
            return Ok(false);
        }
        Action::RawHold(bytes, hold) => {
            s.write_all(bytes)?;
            thread::sleep(*hold);
            return Ok(true);
        }
        Action::HangUp => return Ok(true),
    }
    let close_after = has_token(&reply.headers, "connection", "close");
    for code in &reply.interim {
        write!(
            s,
            "HTTP/1.1 {code} {}\r\nlink: </style.css>; rel=preload\r\n\r\n",
            reason(*code)
        )?;
    }
    let no_body =
        req.method == "HEAD" || reply.status == 204 || reply.status == 304 || reply.status < 200;
    let mut head = Vec::with_capacity(1024);
    write!(
        head,
        "HTTP/1.1 {} {}\r\n",
        reply.status,
        reason(reply.status)
    )?;
    for (n, v) in &reply.headers {
        write!(head, "{n}: {v}\r\n")?;
    }
    match &reply.framing {
        Framing::Length => {
            if find(&reply.headers, "content-length").is_none() && reply.status != 204 {
                write!(head, "content-length: {}\r\n", reply.body.len())?;
            }
        }
        Framing::Chunked(_) => {
            if !no_body {
                head.extend_from_slice(b"transfer-encoding: chunked\r\n");
            }
        }
        Framing::Close => head.extend_from_slice(b"connection: close\r\n"),
    }
    head.extend_from_slice(b"\r\n");
    if no_body {
        s.write_all(&head)?;
        return Ok(close_after || matches!(reply.framing, Framing::Close));
    }
    let body = &reply.body[..];
    match &reply.framing {
        Framing::Length | Framing::Close => {
            if body.len() <= 64 * 1024 {
                head.extend_from_slice(body);
                s.write_all(&head)?;
            } else {
                s.write_all(&head)?;
                s.write_all(body)?;
            }
            Ok(close_after || matches!(reply.framing, Framing::Close))
        }
        Framing::Chunked(trailers) => {
            let mut out = io::BufWriter::with_capacity(128 * 1024, &mut *s);
            out.write_all(&head)?;
            let mut pos = 0;
            let mut i = 0;
            while pos < body.len() {
                let n = CHUNK_SIZES[i % CHUNK_SIZES.len()].min(body.len() - pos);
                i += 1;
                write!(out, "{n:x}\r\n")?;
                out.write_all(&body[pos..pos + n])?;
                out.write_all(b"\r\n")?;
                pos += n;
            }
            out.write_all(b"0\r\n")?;
            for (n, v) in trailers {
                write!(out, "{n}: {v}\r\n")?;
            }
            out.write_all(b"\r\n")?;
            out.flush()?;
            Ok(close_after)
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The raw-socket client.

/// A response as read off the wire.
#[derive(Clone, Debug, Default)]
pub struct RawResponse {
    pub status: u16,
    pub reason: String,
    /// HTTP/1.x minor version of the status line.
    pub version: u8,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub trailers: Vec<(String, String)>,
    /// How the body was framed: "length", "chunked", "close" or "none".
    pub framing: &'static str,
}

impl RawResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        find(&self.headers, name)
    }

    pub fn header_all(&self, name: &str) -> Vec<&str> {
        find_all(&self.headers, name)
    }

    pub fn has_token(&self, name: &str, token: &str) -> bool {
        has_token(&self.headers, name, token)
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// A client connection that writes exact bytes and parses what comes back.
pub struct RawConn {
    pub wire: Wire,
}

impl RawConn {
    pub fn connect(addr: SocketAddr) -> RawConn {
        let s = TcpStream::connect_timeout(&addr, RAW_TIMEOUT)
            .unwrap_or_else(|e| panic!("connect {addr}: {e}"));
        s.set_read_timeout(Some(RAW_TIMEOUT)).expect("timeout");
        s.set_write_timeout(Some(RAW_TIMEOUT)).expect("timeout");
        let _ = s.set_nodelay(true);
        RawConn { wire: Wire::new(s) }
    }

    pub fn send(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.wire.stream.write_all(bytes)
    }

    /// The next response to a request that is not HEAD.
    pub fn response(&mut self) -> io::Result<RawResponse> {
        self.read_response(false)
    }

    /// The next final response (1xx heads are skipped; how many is returned).
    pub fn final_response(&mut self, head_request: bool) -> io::Result<(RawResponse, usize)> {
        for skipped in 0..10 {
            let r = self.read_response(head_request)?;
            if r.status >= 200 {
                return Ok((r, skipped));
            }
        }
        Err(io::Error::other("more than ten interim responses"))
    }

    /// Sends `request` and reads the final response to it.
    pub fn exchange(&mut self, request: &[u8]) -> io::Result<RawResponse> {
        self.send(request)?;
        let head = request.starts_with(b"HEAD ");
        self.final_response(head).map(|(r, _)| r)
    }

    /// The next response head and its body; `head_request` when it answers HEAD.
    pub fn read_response(&mut self, head_request: bool) -> io::Result<RawResponse> {
        let head = self
            .wire
            .read_head()?
            .ok_or_else(|| io::Error::new(io::ErrorKind::UnexpectedEof, "closed, no response"))?;
        let mut fields = [httparse::EMPTY_HEADER; 256];
        let mut resp = httparse::Response::new(&mut fields);
        match resp.parse(&head) {
            Ok(httparse::Status::Complete(_)) => {}
            other => {
                return Err(io::Error::other(format!(
                    "bad response head ({other:?}): {:?}",
                    String::from_utf8_lossy(&head)
                )))
            }
        }
        let mut r = RawResponse {
            status: resp.code.unwrap_or(0),
            reason: resp.reason.unwrap_or_default().to_string(),
            version: resp.version.unwrap_or(1),
            headers: resp
                .headers
                .iter()
                .map(|h| {
                    (
                        h.name.to_string(),
                        String::from_utf8_lossy(h.value).into_owned(),
                    )
                })
                .collect(),
            ..RawResponse::default()
        };
        let mut body = Vec::new();
        let mut sink = |d: &[u8]| body.extend_from_slice(d);
        if head_request || r.status < 200 || r.status == 204 || r.status == 304 {
            r.framing = "none";
        } else if r.has_token("transfer-encoding", "chunked") {
            r.framing = "chunked";
            r.trailers = self.wire.read_chunked_to(&mut sink)?;
        } else if let Some(cl) = r.header("content-length").map(str::to_string) {
            r.framing = "length";
            let n: u64 = cl
                .trim()
                .parse()
                .map_err(|e| io::Error::other(format!("bad content-length {cl:?}: {e}")))?;
            self.wire.read_exact_to(n, &mut sink)?;
        } else {
            r.framing = "close";
            self.wire.read_to_eof(&mut sink)?;
        }
        r.body = body;
        Ok(r)
    }

    /// Whether the proxy closes the connection (EOF or reset) within `within`, with nothing more
    /// sent. `Err` describes what happened instead.
    pub fn closed_within(&mut self, within: Duration) -> Result<Duration, String> {
        if !self.wire.buffered().is_empty() {
            return Err(format!(
                "unexpected bytes: {:?}",
                String::from_utf8_lossy(self.wire.buffered())
            ));
        }
        let started = Instant::now();
        let _ = self.wire.stream.set_read_timeout(Some(within));
        let mut b = [0u8; 4096];
        let res = self.wire.stream.read(&mut b);
        let _ = self.wire.stream.set_read_timeout(Some(RAW_TIMEOUT));
        match res {
            Ok(0) => Ok(started.elapsed()),
            Ok(n) => Err(format!(
                "unexpected bytes: {:?}",
                String::from_utf8_lossy(&b[..n])
            )),
            Err(e) if e.kind() == io::ErrorKind::ConnectionReset => Ok(started.elapsed()),
            Err(e) => Err(format!("still open after {within:?} ({e})")),
        }
    }

    /// Whether the connection stays open and silent for `d` (nothing is consumed).
    pub fn silent_for(&mut self, d: Duration) -> bool {
        !self.readable_within(d)
    }

    /// Whether bytes (or end-of-file) arrive within `d`; peeks, consuming nothing.
    pub fn readable_within(&mut self, d: Duration) -> bool {
        if !self.wire.buffered().is_empty() {
            return true;
        }
        let _ = self.wire.stream.set_read_timeout(Some(d));
        let mut b = [0u8; 1];
        let res = self.wire.stream.peek(&mut b);
        let _ = self.wire.stream.set_read_timeout(Some(RAW_TIMEOUT));
        !matches!(res, Err(ref e) if e.kind() == io::ErrorKind::WouldBlock
            || e.kind() == io::ErrorKind::TimedOut)
    }
}

/// `GET path` with a Host, keeping the connection alive.
pub fn get(path: &str, host: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n").into_bytes()
}

/// One request on a fresh connection; the response or a description of the failure.
pub fn one_request(addr: SocketAddr, request: &[u8]) -> io::Result<RawResponse> {
    let mut c = RawConn::connect(addr);
    c.exchange(request)
}

/// Checks the shape of a response the proxy made itself: status, plain-text body
/// `"<code> <reason>: <cause>\n"` with a matching Content-Length, and an x-request-id.
pub fn check_proxy_error(r: &RawResponse, status: u16) -> Result<(), String> {
    if r.status != status {
        return Err(format!(
            "status {} (expected {status}), body {:?}",
            r.status,
            r.text()
        ));
    }
    let body = r.text();
    let prefix = format!("{status} {}: ", r.reason);
    if !body.starts_with(&prefix) || !body.ends_with('\n') || body.len() <= prefix.len() + 1 {
        return Err(format!("body {body:?} is not {prefix:?} + cause + newline"));
    }
    if !r
        .header("content-type")
        .is_some_and(|t| t.starts_with("text/plain"))
    {
        return Err(format!("content-type {:?}", r.header("content-type")));
    }
    if r.header("content-length") != Some(&r.body.len().to_string()) {
        return Err(format!("content-length {:?}", r.header("content-length")));
    }
    if !r.header("x-request-id").is_some_and(is_generated_id) {
        return Err(format!("x-request-id {:?}", r.header("x-request-id")));
    }
    Ok(())
}

/// 32 lowercase hex digits.
pub fn is_generated_id(id: &str) -> bool {
    id.len() == 32
        && id
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

// ---------------------------------------------------------------------------------------------
// Proxies from config files, admin metrics.

/// A fresh empty directory under the system temp dir.
pub fn temp_dir(name: &str) -> PathBuf {
    static SEQ: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "strait-http-{}-{}-{name}",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::SeqCst)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

/// Runs `strait run --config` on `toml` with `LISTEN` replaced by a free loopback address and an
/// `[admin]` table added; `extra` are further flags (`--cores 0` unless they name cores).
pub fn config_proxy(toml: &str, extra: &[&str]) -> Proxy {
    let listen = free_addr();
    let admin = free_addr();
    let dir = temp_dir("config");
    let text = format!(
        "[admin]\naddress = \"{admin}\"\n\n{}",
        toml.replace("LISTEN", &listen.to_string())
    );
    let path = dir.join("strait.toml");
    std::fs::write(&path, &text).expect("write config");
    let mut a = args(&[
        "run",
        "--config",
        path.to_str().expect("utf-8 path"),
        "--log-format",
        "json",
        "--log-level",
        "debug",
    ]);
    if !extra.contains(&"--cores") {
        a.extend(args(&["--cores", "0"]));
    }
    a.extend(args(extra));
    let proxy = Proxy::spawn(&a, None, listen, admin);
    // Read once at start-up (there is no reload): nothing to keep around.
    let _ = std::fs::remove_dir_all(&dir);
    proxy
}

/// A quick-form HTTP proxy (`--mode http`, one core) in front of `upstreams`.
pub fn quick_http(upstreams: &[SocketAddr], extra: &[&str]) -> Proxy {
    let mut a = args(&["--mode", "http"]);
    for u in upstreams {
        a.extend(args(&["--upstream", &u.to_string()]));
    }
    if !extra.contains(&"--cores") {
        a.extend(args(&["--cores", "0"]));
    }
    a.extend(args(extra));
    Proxy::quick(&a)
}

pub fn metrics_text(proxy: &Proxy) -> String {
    match http_get(proxy.admin, "/metrics") {
        Ok((200, body)) => body,
        other => panic!("GET /metrics: {other:?}"),
    }
}

/// The sum of every sample of `name` whose labels include all of `labels`; `None` when `name`
/// has no sample at all (the metric does not exist).
pub fn metric(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let mut found = false;
    let mut sum = 0.0;
    for line in text.lines() {
        if line.starts_with('#') {
            continue;
        }
        let Some(rest) = line.strip_prefix(name) else {
            continue;
        };
        let (label_text, value) = if let Some(r) = rest.strip_prefix('{') {
            match r.split_once('}') {
                Some((l, v)) => (l, v),
                None => continue,
            }
        } else if rest.starts_with(' ') {
            ("", rest)
        } else {
            continue; // a longer metric name
        };
        found = true;
        let all = labels
            .iter()
            .all(|(k, v)| label_text.contains(&format!("{k}=\"{v}\"")));
        if all {
            sum += value.trim().parse::<f64>().unwrap_or(0.0);
        }
    }
    found.then_some(sum)
}

/// The current value of `name{labels}` (panics if it does not exist).
pub fn metric_now(proxy: &Proxy, name: &str, labels: &[(&str, &str)]) -> f64 {
    let text = metrics_text(proxy);
    metric(&text, name, labels).unwrap_or_else(|| panic!("{name} is not exported"))
}

/// Whether this build exports the HTTP metrics at all.
pub fn http_metrics_exported(proxy: &Proxy) -> bool {
    metrics_text(proxy).contains("strait_http_requests_total")
}

/// Polls `/metrics` until `name{labels}` equals `want`. `Ok(false)`: the metric does not exist
/// (reported by the caller as skipped). `Err`: it exists and never reached `want`.
pub fn wait_metric(
    proxy: &Proxy,
    name: &str,
    labels: &[(&str, &str)],
    want: f64,
) -> Result<bool, String> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let text = metrics_text(proxy);
        match metric(&text, name, labels) {
            None if !text.contains(name) => return Ok(false),
            Some(v) if v == want => return Ok(true),
            got => {
                if Instant::now() > deadline {
                    let related: Vec<&str> = text.lines().filter(|l| l.contains(name)).collect();
                    return Err(format!(
                        "{name}{labels:?} = {got:?}, expected {want}\n{}",
                        related.join("\n")
                    ));
                }
            }
        }
        thread::sleep(Duration::from_millis(25));
    }
}

/// One expected sample: metric name, labels it must carry, value.
pub type Expected<'a> = (&'a str, &'a [(&'a str, &'a str)], f64);

/// Asserts metrics, or notes that the HTTP metrics are not exported by this build.
pub fn assert_metrics(proxy: &Proxy, test: &str, expected: &[Expected<'_>]) {
    if !http_metrics_exported(proxy) {
        eprintln!("{test}: SKIPPED metric assertions: strait_http_* metrics are not exported");
        return;
    }
    let mut failures = Vec::new();
    for (name, labels, want) in expected {
        match wait_metric(proxy, name, labels, *want) {
            Ok(true) => {}
            Ok(false) => failures.push(format!("{name} is not exported")),
            Err(e) => failures.push(e),
        }
    }
    assert!(failures.is_empty(), "{test}: {}", failures.join("\n"));
}

// ---------------------------------------------------------------------------------------------
// hyper.

pub type ReqBody = BoxBody<Bytes, Infallible>;

pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// Runs `fut` on a fresh current-thread runtime, failing the test after `limit`.
pub fn block_on<F: std::future::Future>(limit: Duration, fut: F) -> F::Output {
    runtime().block_on(async move {
        tokio::time::timeout(limit, fut)
            .await
            .unwrap_or_else(|_| panic!("the hyper client did not finish within {limit:?}"))
    })
}

/// A hyper HTTP/1.1 client connection (its driver runs on the current runtime).
pub async fn hyper_connect(addr: SocketAddr) -> SendRequest<ReqBody> {
    let stream = tokio::net::TcpStream::connect(addr)
        .await
        .unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    let _ = stream.set_nodelay(true);
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .expect("hyper handshake");
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            eprintln!("hyper connection: {e}");
        }
    });
    sender
}

pub fn full(data: impl Into<Bytes>) -> ReqBody {
    Full::new(data.into()).boxed()
}

pub fn empty() -> ReqBody {
    full(Bytes::new())
}

/// A request body streamed in irregular pieces with no length: hyper sends it chunked.
pub struct StreamingBody {
    data: Arc<Vec<u8>>,
    pos: usize,
    piece: usize,
}

impl StreamingBody {
    pub fn boxed_from(data: Arc<Vec<u8>>) -> ReqBody {
        StreamingBody {
            data,
            pos: 0,
            piece: 0,
        }
        .boxed()
    }
}

impl Body for StreamingBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if self.pos >= self.data.len() {
            return Poll::Ready(None);
        }
        let n = CHUNK_SIZES[self.piece % CHUNK_SIZES.len()].min(self.data.len() - self.pos);
        self.piece += 1;
        let start = self.pos;
        self.pos += n;
        Poll::Ready(Some(Ok(Frame::data(Bytes::copy_from_slice(
            &self.data[start..start + n],
        )))))
    }
}

/// A request to `path` with Host `host`.
pub fn request(method: &str, path: &str, host: &str, body: ReqBody) -> hyper::Request<ReqBody> {
    hyper::Request::builder()
        .method(method)
        .uri(path)
        .header("host", host)
        .body(body)
        .expect("request")
}

/// Sends `req` and collects the whole response: (status, headers, body).
pub async fn send(
    sender: &mut SendRequest<ReqBody>,
    req: hyper::Request<ReqBody>,
) -> Result<(u16, hyper::HeaderMap, Bytes), String> {
    sender
        .ready()
        .await
        .map_err(|e| format!("connection not ready: {e}"))?;
    let resp: hyper::Response<Incoming> = sender
        .send_request(req)
        .await
        .map_err(|e| format!("request failed: {e}"))?;
    let status = resp.status().as_u16();
    let (parts, body) = resp.into_parts();
    let body = body
        .collect()
        .await
        .map_err(|e| format!("body failed: {e}"))?
        .to_bytes();
    Ok((status, parts.headers, body))
}
