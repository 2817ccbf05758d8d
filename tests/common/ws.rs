//! A WebSocket origin for the tunnel tests: plain threads, tungstenite for the frames, its own
//! reading of request heads so it can tell what arrived when.
//!
//! What it answers depends on the request target:
//! - a WebSocket upgrade to `/refuse…`: `403 Forbidden` (keep-alive), never a 101;
//! - to `/raw…`: 101, then records every byte that follows, raw, until EOF; then sends
//!   `origin got <n> bytes` and closes;
//! - to `/greet…`: 101 with a text frame `hello from origin` in the same write, then echoes;
//! - to `/h2c-101…`: a 101 switching to `h2c` (not what was asked for);
//! - to anything else: 101, then echoes every text and binary message. The text
//!   `server-close` makes it start the close handshake (1000, `bye`) instead.
//! - a request that is not an upgrade: `200` with body `plain <target>`, except
//!   `/unrequested-101…`, answered with a 101 nobody asked for.
//!
//! After reading an upgrade request's head, it waits `hold` before answering and records what
//! arrived meanwhile: a proxy must forward nothing after an upgrade request until it has the
//! answer.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use tungstenite::protocol::frame::coding::CloseCode;
use tungstenite::protocol::{CloseFrame, Role, WebSocketConfig};
use tungstenite::{Message, WebSocket};

use super::http::{find, Wire};
use super::IO_TIMEOUT;

/// Frames and messages up to this size both ways (the default frame limit is 16 MiB).
pub const MAX_MESSAGE: usize = 64 << 20;

pub fn ws_config() -> WebSocketConfig {
    WebSocketConfig::default()
        .max_message_size(Some(MAX_MESSAGE))
        .max_frame_size(Some(MAX_MESSAGE))
}

/// One request head as the origin read it.
#[derive(Clone, Debug, Default)]
pub struct WsSeen {
    /// Which accepted connection (0, 1, …) it came on.
    pub conn: usize,
    pub method: String,
    pub target: String,
    pub headers: Vec<(String, String)>,
    /// Bytes that arrived after this upgrade request's head while the origin held its answer.
    pub early: Vec<u8>,
}

impl WsSeen {
    pub fn header(&self, name: &str) -> Option<&str> {
        find(&self.headers, name)
    }
}

#[derive(Default)]
struct State {
    requests: Mutex<Vec<WsSeen>>,
    /// What `/raw` connections received after their 101.
    raw: Mutex<Vec<u8>>,
    /// Close handshakes and the like, in order: `client-close 1000 done`, `server-close done`.
    events: Mutex<Vec<String>>,
    connections: AtomicUsize,
}

pub struct WsOrigin {
    pub addr: SocketAddr,
    state: Arc<State>,
}

impl WsOrigin {
    /// `hold`: how long to wait before answering an upgrade request.
    pub fn start(hold: Duration) -> WsOrigin {
        let listener = TcpListener::bind("127.0.0.1:0").expect("ws origin bind");
        let addr = listener.local_addr().expect("ws origin addr");
        let state = Arc::new(State::default());
        let st = state.clone();
        thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let conn = st.connections.fetch_add(1, Ordering::SeqCst);
                let st = st.clone();
                thread::spawn(move || serve(&st, stream, conn, hold));
            }
        });
        WsOrigin { addr, state }
    }

    pub fn requests(&self) -> Vec<WsSeen> {
        lock(&self.state.requests).clone()
    }

    pub fn raw(&self) -> Vec<u8> {
        lock(&self.state.raw).clone()
    }

    pub fn events(&self) -> Vec<String> {
        lock(&self.state.events).clone()
    }

    pub fn connections(&self) -> usize {
        self.state.connections.load(Ordering::SeqCst)
    }

    /// Waits until `pred` holds for the events, or panics with them.
    pub fn wait_event(&self, what: &str, pred: impl Fn(&[String]) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let events = self.events();
            if pred(&events) {
                return;
            }
            assert!(Instant::now() < deadline, "never saw {what}: {events:?}");
            thread::sleep(Duration::from_millis(10));
        }
    }

    /// Waits until the raw bytes after a `/raw` 101 are `want`.
    pub fn wait_raw(&self, want: &[u8]) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let raw = self.raw();
            if raw == want {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "raw tunnel bytes {:?}, expected {:?}",
                String::from_utf8_lossy(&raw),
                String::from_utf8_lossy(want)
            );
            thread::sleep(Duration::from_millis(10));
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn event(state: &State, e: String) {
    lock(&state.events).push(e);
}

fn serve(state: &State, stream: TcpStream, conn: usize, hold: Duration) {
    let _ = stream.set_nodelay(true);
    let _ = stream.set_read_timeout(Some(IO_TIMEOUT));
    let _ = stream.set_write_timeout(Some(IO_TIMEOUT));
    let mut wire = Wire::new(stream);
    loop {
        let head = match wire.read_head() {
            Ok(Some(h)) => h,
            _ => return,
        };
        let mut fields = [httparse::EMPTY_HEADER; 64];
        let mut req = httparse::Request::new(&mut fields);
        if !matches!(req.parse(&head), Ok(httparse::Status::Complete(_))) {
            return;
        }
        let mut seen = WsSeen {
            conn,
            method: req.method.unwrap_or_default().to_string(),
            target: req.path.unwrap_or_default().to_string(),
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
            early: Vec::new(),
        };
        let upgrade = seen
            .header("upgrade")
            .is_some_and(|u| u.eq_ignore_ascii_case("websocket"));
        if !upgrade && seen.target.starts_with("/unrequested-101") {
            lock(&state.requests).push(seen);
            let _ = wire.stream.write_all(
                b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
            );
            return;
        }
        if !upgrade {
            let body = format!("plain {}", seen.target);
            lock(&state.requests).push(seen);
            let reply = format!(
                "HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n{body}",
                body.len()
            );
            if wire.stream.write_all(reply.as_bytes()).is_err() {
                return;
            }
            continue;
        }
        // Hold the answer and see whether anything else arrives meanwhile.
        let _ = wire
            .stream
            .set_read_timeout(Some(hold.max(Duration::from_millis(1))));
        let held = Instant::now();
        while held.elapsed() < hold {
            match wire.fill() {
                Ok(0) => break,
                Ok(_) => {}
                Err(_) => {}
            }
        }
        let _ = wire.stream.set_read_timeout(Some(IO_TIMEOUT));
        seen.early = wire.buffered().to_vec();
        let key = seen.header("sec-websocket-key").unwrap_or("").to_string();
        let target = seen.target.clone();
        lock(&state.requests).push(seen);
        if target.starts_with("/refuse") {
            let body = "forbidden";
            let reply = format!(
                "HTTP/1.1 403 Forbidden\r\ncontent-length: {}\r\n\r\n{body}",
                body.len()
            );
            if wire.stream.write_all(reply.as_bytes()).is_err() {
                return;
            }
            continue;
        }
        let accept = tungstenite::handshake::derive_accept_key(key.as_bytes());
        let protocol = if target.starts_with("/h2c-101") {
            "h2c"
        } else {
            "websocket"
        };
        let mut out = format!(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: {protocol}\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Accept: {accept}\r\n\r\n"
        )
        .into_bytes();
        if target.starts_with("/greet") {
            // An unmasked server text frame, in the same write as the 101 head.
            let text = b"hello from origin";
            out.extend_from_slice(&[0x81, text.len() as u8]);
            out.extend_from_slice(text);
        }
        if wire.stream.write_all(&out).is_err() {
            return;
        }
        let rest = wire.buffered().to_vec();
        let stream = wire.stream;
        if target.starts_with("/raw") {
            raw_tunnel(state, stream, rest);
        } else {
            echo(state, stream, rest);
        }
        return;
    }
}

/// Records every byte until EOF, then reports the count and closes.
fn raw_tunnel(state: &State, mut stream: TcpStream, rest: Vec<u8>) {
    let mut total = rest.len();
    lock(&state.raw).extend_from_slice(&rest);
    let mut buf = [0u8; 16 * 1024];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                total += n;
                lock(&state.raw).extend_from_slice(&buf[..n]);
            }
            Err(_) => return,
        }
    }
    event(state, "raw eof".to_string());
    let _ = stream.write_all(format!("origin got {total} bytes").as_bytes());
    let _ = stream.shutdown(Shutdown::Both);
}

fn echo(state: &State, stream: TcpStream, rest: Vec<u8>) {
    let mut ws = WebSocket::from_partially_read(stream, rest, Role::Server, Some(ws_config()));
    let mut closing = false;
    loop {
        match ws.read() {
            Ok(Message::Text(t)) if t.as_str() == "server-close" => {
                closing = true;
                let frame = CloseFrame {
                    code: CloseCode::Normal,
                    reason: "bye".into(),
                };
                if ws.close(Some(frame)).is_err() {
                    break;
                }
            }
            Ok(m @ (Message::Text(_) | Message::Binary(_))) => {
                if ws.send(m).is_err() {
                    break;
                }
            }
            Ok(Message::Close(frame)) => {
                if closing {
                    event(state, "server-close done".to_string());
                } else {
                    let (code, reason) = frame
                        .map(|f| (u16::from(f.code), f.reason.as_str().to_string()))
                        .unwrap_or((0, String::new()));
                    event(state, format!("client-close {code} {reason}"));
                }
                // tungstenite queued the reply; it goes out on the next read or flush.
                match ws.flush() {
                    Ok(()) => {}
                    Err(
                        tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed,
                    ) => {
                        event(state, "closed".to_string());
                        break;
                    }
                    Err(e) => {
                        event(state, format!("error {e}"));
                        break;
                    }
                }
            }
            Ok(_) => {
                let _ = ws.flush();
            }
            Err(tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed) => {
                if closing {
                    event(state, "server-close done".to_string());
                }
                event(state, "closed".to_string());
                break;
            }
            Err(e) => {
                event(state, format!("error {e}"));
                break;
            }
        }
    }
    // The server closes the TCP connection first (RFC 6455 §7.1.1).
    let _ = ws.get_mut().shutdown(Shutdown::Both);
}

/// Reads and discards until EOF or `within` passes; true on EOF or reset.
pub fn eof_within(stream: &mut TcpStream, within: Duration) -> bool {
    let _ = stream.set_read_timeout(Some(within));
    let deadline = Instant::now() + within;
    let mut buf = [0u8; 16 * 1024];
    let res = loop {
        match stream.read(&mut buf) {
            Ok(0) => break true,
            Ok(_) if Instant::now() < deadline => {}
            Ok(_) => break false,
            Err(e) => {
                break !matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                )
            }
        }
    };
    let _ = stream.set_read_timeout(Some(IO_TIMEOUT));
    res
}
