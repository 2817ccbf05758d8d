//! Helpers for the fault matrix (tests/fault_matrix.rs): an h2c origin written frame by frame, so
//! that it can misbehave in ways a well-behaved HTTP/2 library will not (a response HEADERS
//! without `:status`, a stream reset before any HEADERS, a connection closed under a request),
//! a reader for the proxy's JSON access log, and lookups of the `/stats` counters the fault
//! table names.
//!
//! Every read has a timeout and no origin thread ever panics on a network result: a broken
//! connection is dropped, so a proxy bug fails the matrix cell that exercises it.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use super::h2_support::{frame, FRAME_DATA, FRAME_GOAWAY, FRAME_HEADERS, FRAME_RST_STREAM};
use super::h2_support::{FRAME_SETTINGS, PREFACE};

const FRAME_PING: u8 = 0x6;
const FRAME_CONTINUATION: u8 = 0x9;
const FLAG_END_STREAM: u8 = 0x1;
const FLAG_ACK: u8 = 0x1;
const FLAG_END_HEADERS: u8 = 0x4;
const NO_ERROR: u32 = 0x0;
const INTERNAL_ERROR: u32 = 0x2;

/// The header every answer of the fault origins carries, so a test can tell a relayed origin
/// response from one the proxy made itself.
pub const ORIGIN_MARK: &str = "x-fault-origin";

// ---------------------------------------------------------------------------------------------
// HPACK, encoder side only: literals without indexing (RFC 7541 §6.2.2), so no block depends on
// the ones before and the peer's dynamic table is never touched.

/// An HPACK integer with an `n`-bit prefix; `first` holds the bits above the prefix.
fn hpack_int(out: &mut Vec<u8>, first: u8, n: u32, mut value: usize) {
    let max = (1usize << n) - 1;
    if value < max {
        out.push(first | value as u8);
        return;
    }
    out.push(first | max as u8);
    value -= max;
    while value >= 128 {
        out.push((value % 128) as u8 | 0x80);
        value /= 128;
    }
    out.push(value as u8);
}

fn hpack_string(out: &mut Vec<u8>, s: &str) {
    hpack_int(out, 0x00, 7, s.len()); // no Huffman
    out.extend_from_slice(s.as_bytes());
}

/// A field whose name is entry `index` of the static table (RFC 7541 Appendix A).
fn hpack_indexed_name(out: &mut Vec<u8>, index: usize, value: &str) {
    hpack_int(out, 0x00, 4, index);
    hpack_string(out, value);
}

/// A field with a literal name.
fn hpack_new_name(out: &mut Vec<u8>, name: &str, value: &str) {
    out.push(0x00);
    hpack_string(out, name);
    hpack_string(out, value);
}

const STATIC_STATUS: usize = 8; // :status 200
const STATIC_CONTENT_LENGTH: usize = 28;
const STATIC_CONTENT_TYPE: usize = 31;

/// A response header block: `:status`, `content-length` of `body_len`, and [`ORIGIN_MARK`].
fn response_block(status: u16, body_len: usize) -> Vec<u8> {
    let mut b = Vec::new();
    hpack_indexed_name(&mut b, STATIC_STATUS, &status.to_string());
    hpack_indexed_name(&mut b, STATIC_CONTENT_LENGTH, &body_len.to_string());
    hpack_new_name(&mut b, ORIGIN_MARK, "1");
    b
}

// ---------------------------------------------------------------------------------------------
// The raw h2c origin.

/// What a [`RawH2Origin`] does with each request stream (once its header block is complete).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum H2Script {
    /// RST_STREAM(INTERNAL_ERROR) before any HEADERS, then GOAWAY(last stream = this one) and
    /// close: every request of this origin arrives on a new connection.
    ResetBeforeHead,
    /// A malformed response: HEADERS (END_STREAM) with `content-type` but no `:status`
    /// (RFC 9113 §8.3.2), then GOAWAY and close like `ResetBeforeHead`.
    NoStatus,
    /// The first stream of each connection is answered `200 ok`; later ones get the malformed
    /// HEADERS of `NoStatus` (then GOAWAY and close).
    FirstThenNoStatus,
    /// Never answers; the connection stays open (SETTINGS and PINGs are still acknowledged).
    Silent,
    /// Answers this status with the body `origin <status>` and [`ORIGIN_MARK`].
    Status(u16),
    /// The first stream of each connection is answered `200 ok` (with [`ORIGIN_MARK`]); the
    /// next request on that connection closes the connection (TCP FIN, no GOAWAY) unanswered.
    FirstThenClose,
}

#[derive(Default)]
struct RawH2State {
    connections: AtomicUsize,
    /// Request header blocks received (one per stream).
    streams: AtomicUsize,
    /// DATA payload bytes received.
    data_bytes: AtomicUsize,
    /// RST_STREAM frames received.
    resets: AtomicUsize,
}

/// An h2c origin on 127.0.0.1 run on plain threads (one per connection) that speaks HTTP/2 by
/// hand: preface, SETTINGS and their ACKs, PING ACKs, and per stream what its [`H2Script`] says.
/// It does not decode the proxy's header blocks (nothing in them decides what it does).
pub struct RawH2Origin {
    pub addr: SocketAddr,
    state: Arc<RawH2State>,
}

impl RawH2Origin {
    pub fn start(script: H2Script) -> RawH2Origin {
        let listener = TcpListener::bind("127.0.0.1:0").expect("raw h2 origin bind");
        let addr = listener.local_addr().expect("raw h2 origin addr");
        let state = Arc::new(RawH2State::default());
        let st = state.clone();
        thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else {
                    thread::sleep(Duration::from_millis(10));
                    continue;
                };
                st.connections.fetch_add(1, Ordering::SeqCst);
                let st = st.clone();
                thread::spawn(move || {
                    let _ = serve_raw_h2(&st, script, stream);
                });
            }
        });
        RawH2Origin { addr, state }
    }

    pub fn connections(&self) -> usize {
        self.state.connections.load(Ordering::SeqCst)
    }

    /// Request streams whose header block arrived.
    pub fn streams(&self) -> usize {
        self.state.streams.load(Ordering::SeqCst)
    }

    pub fn data_bytes(&self) -> usize {
        self.state.data_bytes.load(Ordering::SeqCst)
    }

    pub fn resets_received(&self) -> usize {
        self.state.resets.load(Ordering::SeqCst)
    }
}

/// One frame: (type, flags, stream id, payload).
fn read_frame(s: &mut TcpStream) -> io::Result<(u8, u8, u32, Vec<u8>)> {
    let mut head = [0u8; 9];
    s.read_exact(&mut head)?;
    let len = (head[0] as usize) << 16 | (head[1] as usize) << 8 | head[2] as usize;
    let id = u32::from_be_bytes([head[5], head[6], head[7], head[8]]) & 0x7fff_ffff;
    let mut payload = vec![0u8; len];
    s.read_exact(&mut payload)?;
    Ok((head[3], head[4], id, payload))
}

/// Half-closes, then reads (and drops) whatever the proxy still sends until it closes too, so
/// the connection ends with FIN both ways rather than a reset that could destroy frames the
/// proxy has not read yet.
fn close_gracefully(mut s: TcpStream) {
    let _ = s.flush();
    let _ = s.shutdown(Shutdown::Write);
    let _ = s.set_read_timeout(Some(Duration::from_millis(200)));
    let deadline = Instant::now() + Duration::from_secs(2);
    let mut sink = [0u8; 16 * 1024];
    while Instant::now() < deadline {
        match s.read(&mut sink) {
            Ok(0) => return,
            Ok(_) => {}
            Err(e)
                if e.kind() == io::ErrorKind::WouldBlock || e.kind() == io::ErrorKind::TimedOut => {
            }
            Err(_) => return,
        }
    }
}

fn goaway(last_stream: u32, code: u32) -> Vec<u8> {
    let mut p = last_stream.to_be_bytes().to_vec();
    p.extend_from_slice(&code.to_be_bytes());
    frame(FRAME_GOAWAY, 0, 0, &p)
}

fn serve_raw_h2(state: &RawH2State, script: H2Script, mut s: TcpStream) -> io::Result<()> {
    let _ = s.set_nodelay(true);
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    s.set_write_timeout(Some(Duration::from_secs(5)))?;
    let mut preface = [0u8; 24];
    s.read_exact(&mut preface)?;
    if preface != PREFACE {
        return Err(io::Error::other("not an HTTP/2 preface"));
    }
    s.write_all(&frame(FRAME_SETTINGS, 0, 0, &[]))?;
    // Streams whose header block is complete on this connection.
    let mut opened = 0usize;
    // A HEADERS frame waiting for its CONTINUATION.
    let mut pending: Option<u32> = None;
    loop {
        let (kind, flags, id, payload) = read_frame(&mut s)?;
        let completed = match kind {
            FRAME_SETTINGS if flags & FLAG_ACK == 0 => {
                s.write_all(&frame(FRAME_SETTINGS, FLAG_ACK, 0, &[]))?;
                None
            }
            FRAME_PING if flags & FLAG_ACK == 0 => {
                s.write_all(&frame(FRAME_PING, FLAG_ACK, 0, &payload))?;
                None
            }
            FRAME_HEADERS if flags & FLAG_END_HEADERS != 0 => Some(id),
            FRAME_HEADERS => {
                pending = Some(id);
                None
            }
            FRAME_CONTINUATION if flags & FLAG_END_HEADERS != 0 => pending.take(),
            FRAME_DATA => {
                state.data_bytes.fetch_add(payload.len(), Ordering::SeqCst);
                None
            }
            FRAME_RST_STREAM => {
                state.resets.fetch_add(1, Ordering::SeqCst);
                None
            }
            _ => None,
        };
        let Some(id) = completed else { continue };
        state.streams.fetch_add(1, Ordering::SeqCst);
        let nth = opened;
        opened += 1;
        // A connection that answered once before: the scripts that wait for reuse act now.
        let reused = nth > 0;
        match script {
            H2Script::Silent => {}
            H2Script::ResetBeforeHead => {
                let mut out = frame(FRAME_RST_STREAM, 0, id, &INTERNAL_ERROR.to_be_bytes());
                out.extend(goaway(id, NO_ERROR));
                s.write_all(&out)?;
                close_gracefully(s);
                return Ok(());
            }
            H2Script::Status(status) => {
                let body = format!("origin {status}");
                let mut out = frame(
                    FRAME_HEADERS,
                    FLAG_END_HEADERS,
                    id,
                    &response_block(status, body.len()),
                );
                out.extend(frame(FRAME_DATA, FLAG_END_STREAM, id, body.as_bytes()));
                s.write_all(&out)?;
            }
            H2Script::FirstThenClose | H2Script::FirstThenNoStatus if !reused => {
                let mut out = frame(FRAME_HEADERS, FLAG_END_HEADERS, id, &response_block(200, 2));
                out.extend(frame(FRAME_DATA, FLAG_END_STREAM, id, b"ok"));
                s.write_all(&out)?;
            }
            H2Script::NoStatus | H2Script::FirstThenNoStatus => {
                let mut block = Vec::new();
                hpack_indexed_name(&mut block, STATIC_CONTENT_TYPE, "text/plain");
                hpack_new_name(&mut block, ORIGIN_MARK, "1");
                let flags = FLAG_END_HEADERS | FLAG_END_STREAM;
                let mut out = frame(FRAME_HEADERS, flags, id, &block);
                out.extend(goaway(id, NO_ERROR));
                s.write_all(&out)?;
                close_gracefully(s);
                return Ok(());
            }
            H2Script::FirstThenClose => {
                close_gracefully(s);
                return Ok(());
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The JSON access log.

/// The proxy's `[access_log]` file (`format = "json"`, `sample = 1`).
pub struct AccessLog {
    pub path: PathBuf,
}

impl AccessLog {
    pub fn new(path: &Path) -> AccessLog {
        AccessLog {
            path: path.to_path_buf(),
        }
    }

    /// Every line written so far, parsed (a line that is not JSON is kept as a string).
    pub fn lines(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(&self.path)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|_| serde_json::json!(l)))
            .collect()
    }

    /// The line of the request with this `x-request-id`, if written yet.
    pub fn find(&self, request_id: &str) -> Option<serde_json::Value> {
        self.lines()
            .into_iter()
            .find(|l| l["request_id"] == request_id)
    }
}

/// The `error` field of an access-log line: an absent field is the empty name.
pub fn log_error(line: &serde_json::Value) -> String {
    line.get("error")
        .and_then(|e| e.as_str())
        .unwrap_or_default()
        .to_string()
}

// ---------------------------------------------------------------------------------------------
// `/stats` counters.

/// `http_routes[]` entry of `route` on `listener`.
pub fn route_stats<'a>(
    stats: &'a serde_json::Value,
    listener: &str,
    route: &str,
) -> Option<&'a serde_json::Value> {
    stats["http_routes"]
        .as_array()?
        .iter()
        .find(|r| r["listener"] == listener && r["route"] == route)
}

/// `clusters[]` entry named `cluster`.
pub fn cluster_stats<'a>(
    stats: &'a serde_json::Value,
    cluster: &str,
) -> Option<&'a serde_json::Value> {
    stats["clusters"]
        .as_array()?
        .iter()
        .find(|c| c["name"] == cluster)
}

/// A counter at a `/`-separated path below `v` (e.g. `responses/2xx`, `http/retries`).
pub fn counter_at(v: Option<&serde_json::Value>, path: &str) -> Option<i64> {
    let mut cur = v?;
    for key in path.split('/') {
        cur = cur.get(key)?;
    }
    cur.as_i64()
}
