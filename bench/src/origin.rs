//! The built-in origin: HTTP/1.1 keep-alive and h2c (prior knowledge) serving fixed bodies at
//! `/small` (13 B), `/16k` and `/1m`, on one thread per CPU it is given, each with its own
//! `SO_REUSEPORT` listeners and a single-threaded tokio runtime.
//!
//! Owns: the origin's sockets, request-head parsing (httparse) and the precomputed responses.
//! Must not: proxy, log per request, allocate per response, or listen anywhere but loopback.
//! It runs as the `strait-bench origin` subprocess so it can be pinned and stopped by PID.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::{Buf, Bytes, BytesMut};
use socket2::{Domain, Protocol, Socket, Type};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

pub const SMALL_BODY: &[u8] = b"Hello, world!";
pub const K16_LEN: usize = 16 * 1024;
pub const M1_LEN: usize = 1024 * 1024;
/// A request head larger than this is refused (431) and the connection closed.
const MAX_HEAD: usize = 64 * 1024;

/// The body served at a path, if any.
pub fn body_len(path: &str) -> Option<usize> {
    match path {
        "/small" => Some(SMALL_BODY.len()),
        "/16k" => Some(K16_LEN),
        "/1m" => Some(M1_LEN),
        _ => None,
    }
}

/// Precomputed bodies and complete HTTP/1.1 responses (head + body in one buffer).
struct Responses {
    bodies: [Bytes; 3],
    keep_alive: [Bytes; 4],
    close: [Bytes; 4],
}

impl Responses {
    fn new() -> Responses {
        let bodies = [
            Bytes::from_static(SMALL_BODY),
            Bytes::from(vec![b'a'; K16_LEN]),
            Bytes::from(vec![b'b'; M1_LEN]),
        ];
        let make = |close: bool| {
            let conn = if close { "Connection: close\r\n" } else { "" };
            let mut out: Vec<Bytes> = bodies
                .iter()
                .map(|b| {
                    let mut r = format!(
                        "HTTP/1.1 200 OK\r\nServer: strait-bench\r\nContent-Type: \
                         text/plain\r\nContent-Length: {}\r\n{conn}\r\n",
                        b.len()
                    )
                    .into_bytes();
                    r.extend_from_slice(b);
                    Bytes::from(r)
                })
                .collect();
            out.push(Bytes::from(format!(
                "HTTP/1.1 404 Not Found\r\nServer: strait-bench\r\nContent-Length: \
                 0\r\n{conn}\r\n"
            )));
            [
                out[0].clone(),
                out[1].clone(),
                out[2].clone(),
                out[3].clone(),
            ]
        };
        Responses {
            keep_alive: make(false),
            close: make(true),
            bodies,
        }
    }

    fn index(path: &str) -> usize {
        match path {
            "/small" => 0,
            "/16k" => 1,
            "/1m" => 2,
            _ => 3,
        }
    }

    fn h1(&self, path: &str, close: bool) -> &Bytes {
        let i = Self::index(path);
        if close {
            &self.close[i]
        } else {
            &self.keep_alive[i]
        }
    }

    fn body(&self, path: &str) -> Option<&Bytes> {
        self.bodies.get(Self::index(path))
    }
}

fn reuseport_listener(addr: SocketAddr) -> io::Result<std::net::TcpListener> {
    if !addr.ip().is_loopback() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("the origin listens on loopback only, not {addr}"),
        ));
    }
    let s = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    s.set_reuse_address(true)?;
    s.set_reuse_port(true)?;
    s.set_nonblocking(true)?;
    s.bind(&addr.into())?;
    s.listen(4096)?;
    Ok(s.into())
}

/// Runs the origin until the process is killed: `threads` threads, each with its own listeners.
/// Binding errors are returned before any thread starts serving.
pub fn serve(h1: SocketAddr, h2c: SocketAddr, threads: usize) -> io::Result<()> {
    let responses = Arc::new(Responses::new());
    let mut sockets = Vec::new();
    for _ in 0..threads.max(1) {
        sockets.push((reuseport_listener(h1)?, reuseport_listener(h2c)?));
    }
    let mut handles = Vec::new();
    for (i, (l1, l2)) in sockets.into_iter().enumerate() {
        let responses = responses.clone();
        handles.push(
            std::thread::Builder::new()
                .name(format!("origin-{i}"))
                .spawn(move || run_thread(l1, l2, responses))?,
        );
    }
    for h in handles {
        match h.join() {
            Ok(r) => r?,
            Err(_) => return Err(io::Error::other("an origin thread panicked")),
        }
    }
    Ok(())
}

fn run_thread(
    l1: std::net::TcpListener,
    l2: std::net::TcpListener,
    responses: Arc<Responses>,
) -> io::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()?;
    rt.block_on(async move {
        let l1 = TcpListener::from_std(l1)?;
        let l2 = TcpListener::from_std(l2)?;
        let r2 = responses.clone();
        tokio::spawn(async move {
            loop {
                if let Ok((s, _)) = l2.accept().await {
                    tokio::spawn(h2c_conn(s, r2.clone()));
                }
            }
        });
        loop {
            if let Ok((s, _)) = l1.accept().await {
                tokio::spawn(h1_conn(s, responses.clone()));
            }
        }
    })
}

/// What one parsed request head asks for.
#[derive(Debug, PartialEq)]
pub struct Head {
    pub len: usize,
    pub path: String,
    pub close: bool,
    pub has_body: bool,
}

/// Parses one request head at the start of `buf`: `Ok(None)` when incomplete.
pub fn parse_head(buf: &[u8]) -> Result<Option<Head>, httparse::Error> {
    let mut headers = [httparse::EMPTY_HEADER; 48];
    let mut req = httparse::Request::new(&mut headers);
    let len = match req.parse(buf)? {
        httparse::Status::Complete(n) => n,
        httparse::Status::Partial => return Ok(None),
    };
    let mut close = req.version == Some(0);
    let mut has_body = false;
    for h in req.headers.iter() {
        if h.name.eq_ignore_ascii_case("connection") {
            let v = String::from_utf8_lossy(h.value).to_ascii_lowercase();
            if v.contains("close") {
                close = true;
            } else if v.contains("keep-alive") {
                close = false;
            }
        } else if h.name.eq_ignore_ascii_case("content-length") {
            has_body |= h
                .value
                .iter()
                .any(|b| *b != b'0' && !b.is_ascii_whitespace());
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            has_body = true;
        }
    }
    let path = req.path.unwrap_or("/").to_string();
    Ok(Some(Head {
        len,
        path,
        close,
        has_body,
    }))
}

async fn h1_conn(mut s: TcpStream, responses: Arc<Responses>) {
    let _ = s.set_nodelay(true);
    let mut buf = BytesMut::with_capacity(4096);
    loop {
        loop {
            match parse_head(&buf) {
                Ok(Some(head)) => {
                    // Request bodies are not supported: answer and close.
                    let close = head.close || head.has_body;
                    if s.write_all(responses.h1(&head.path, close)).await.is_err() || close {
                        return;
                    }
                    buf.advance(head.len);
                }
                Ok(None) if buf.len() > MAX_HEAD => {
                    let _ = s
                        .write_all(b"HTTP/1.1 431 Request Header Fields Too Large\r\nConnection: close\r\nContent-Length: 0\r\n\r\n")
                        .await;
                    return;
                }
                Ok(None) => break,
                Err(_) => {
                    let _ = s
                        .write_all(b"HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Length: 0\r\n\r\n")
                        .await;
                    return;
                }
            }
        }
        match s.read_buf(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
    }
}

async fn h2c_conn(s: TcpStream, responses: Arc<Responses>) {
    let _ = s.set_nodelay(true);
    let handshake = h2::server::Builder::new()
        .max_concurrent_streams(256)
        .initial_window_size(1 << 20)
        .initial_connection_window_size(1 << 24)
        .handshake::<_, Bytes>(s)
        .await;
    let Ok(mut conn) = handshake else { return };
    while let Some(next) = conn.accept().await {
        let Ok((req, mut respond)) = next else { return };
        let body = responses.body(req.uri().path()).cloned();
        let status = if body.is_some() { 200 } else { 404 };
        let len = body.as_ref().map_or(0, Bytes::len);
        let Ok(resp) = http::Response::builder()
            .status(status)
            .header("content-type", "text/plain")
            .header("content-length", len)
            .body(())
        else {
            return;
        };
        match (respond.send_response(resp, body.is_none()), body) {
            (Ok(mut stream), Some(b)) => {
                let _ = stream.send_data(b, true);
            }
            (Ok(_), None) => {}
            (Err(_), _) => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heads_parse_with_keep_alive_and_close() {
        let h = parse_head(b"GET /small HTTP/1.1\r\nHost: x\r\n\r\nGET")
            .unwrap()
            .unwrap();
        assert_eq!(
            h,
            Head {
                len: 32,
                path: "/small".into(),
                close: false,
                has_body: false
            }
        );
        let h = parse_head(b"GET /1m HTTP/1.1\r\nConnection: Close\r\n\r\n")
            .unwrap()
            .unwrap();
        assert!(h.close);
        let h = parse_head(b"GET / HTTP/1.0\r\n\r\n").unwrap().unwrap();
        assert!(h.close);
        let h = parse_head(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
            .unwrap()
            .unwrap();
        assert!(!h.close);
        let h = parse_head(b"POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\n")
            .unwrap()
            .unwrap();
        assert!(h.has_body);
        let h = parse_head(b"GET / HTTP/1.1\r\nContent-Length: 0\r\n\r\n")
            .unwrap()
            .unwrap();
        assert!(!h.has_body);
        assert_eq!(parse_head(b"GET /small HTTP/1.1\r\nHo").unwrap(), None);
        assert!(parse_head(b"\x00\x01 garbage\r\n\r\n").is_err());
    }

    #[test]
    fn responses_have_exact_bodies() {
        let r = Responses::new();
        for (path, len) in [("/small", 13), ("/16k", K16_LEN), ("/1m", M1_LEN)] {
            assert_eq!(body_len(path), Some(len));
            let resp = r.h1(path, false);
            let text = String::from_utf8_lossy(&resp[..resp.len().min(200)]).to_string();
            assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
            assert!(text.contains(&format!("Content-Length: {len}\r\n")));
            assert!(!text.contains("Connection: close"));
            let closing = r.h1(path, true);
            let head = &closing[..closing.len() - len];
            assert!(String::from_utf8_lossy(head).ends_with("Connection: close\r\n\r\n"));
            assert_eq!(r.body(path).map(Bytes::len), Some(len));
        }
        assert!(r.h1("/nope", false).starts_with(b"HTTP/1.1 404"));
        assert_eq!(r.body("/nope"), None);
        assert!(r.h1("/small", false).ends_with(SMALL_BODY));
    }

    #[test]
    fn refuses_non_loopback() {
        assert!(reuseport_listener("0.0.0.0:0".parse().unwrap()).is_err());
    }
}
