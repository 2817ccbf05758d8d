//! The admin HTTP endpoint: `/metrics`, `/stats`, `/healthz`, `/readyz`, `/config`,
//! `/config/versions` and `/config/diff` to read; `POST /config/reload`, `POST /config` (TOML in
//! the body) and `POST /config/rollback?to=N` to write.
//!
//! Owns: a small, bounded HTTP/1.1 server on its own thread (blocking std sockets: admin traffic is
//! rare, and keeping it off the cores keeps a scrape from ever delaying a proxied byte). Each request
//! gets a fresh connection-scoped thread, at most `MAX_CONCURRENT`, with read/write timeouts, a
//! bounded request head and body (1 MiB), and `Connection: close`. Writes need
//! `Authorization: Bearer <token>` (`[admin] token_file`, compared in constant time; without a
//! token file they answer 403), and every write, refused or not, reaches the audit log.
//! Must not: run on a core's thread, or write anything without the token.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use tracing::{debug, warn};

use crate::audit::Trigger;
use crate::metrics;
use crate::shared::{Request, Shared};

const MAX_CONCURRENT: usize = 8;
const MAX_HEAD: usize = 8 * 1024;
const IO_TIMEOUT: Duration = Duration::from_secs(2);
/// The whole request (head and body) must arrive within this.
const REQUEST_DEADLINE: Duration = Duration::from_secs(10);
/// Largest request body a write endpoint reads.
const MAX_BODY: usize = 1024 * 1024;

pub struct AdminServer {
    address: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl AdminServer {
    pub fn start(address: SocketAddr, shared: Arc<Shared>) -> io::Result<AdminServer> {
        let listener = TcpListener::bind(address)?;
        listener.set_nonblocking(true)?;
        let address = listener.local_addr()?;
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = stop.clone();
        let thread = std::thread::Builder::new()
            .name("strait-admin".into())
            .spawn(move || serve(listener, shared, stop2))?;
        Ok(AdminServer {
            address,
            stop,
            thread: Some(thread),
        })
    }

    pub fn address(&self) -> SocketAddr {
        self.address
    }

    pub fn stop(mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn serve(listener: TcpListener, shared: Arc<Shared>, stop: Arc<AtomicBool>) {
    let in_flight = Arc::new(AtomicUsize::new(0));
    while !stop.load(Ordering::SeqCst) {
        let mut pfd = libc::pollfd {
            fd: listener.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: `pfd` is one valid pollfd; the 200 ms timeout bounds how late `stop` is noticed.
        let ready = unsafe { libc::poll(&mut pfd, 1, 200) };
        if ready <= 0 {
            continue;
        }
        let (mut stream, peer) = match listener.accept() {
            Ok(s) => s,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            Err(e) => {
                warn!(error = %e, "admin accept failed");
                std::thread::sleep(Duration::from_millis(50));
                continue;
            }
        };
        if in_flight.load(Ordering::SeqCst) >= MAX_CONCURRENT {
            let _ = stream.set_nonblocking(false);
            let _ = stream.set_write_timeout(Some(IO_TIMEOUT));
            let _ = respond(&mut stream, false, 503, "text/plain", b"admin busy\n");
            continue;
        }
        in_flight.fetch_add(1, Ordering::SeqCst);
        let shared = shared.clone();
        let counter = in_flight.clone();
        let spawned = std::thread::Builder::new()
            .name("strait-admin-conn".into())
            .spawn(move || {
                if let Err(e) = handle(stream, &shared, peer) {
                    debug!(client = %peer, error = %e, "admin request failed");
                }
                counter.fetch_sub(1, Ordering::SeqCst);
            });
        if spawned.is_err() {
            in_flight.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

/// What a request's head says that the write endpoints need.
struct Head {
    method: String,
    path: String,
    authorization: Option<Vec<u8>>,
    content_length: usize,
    /// Bytes of the head in the read buffer (a body may follow).
    len: usize,
}

fn handle(mut stream: TcpStream, shared: &Shared, peer: SocketAddr) -> io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(IO_TIMEOUT))?;
    // One deadline for the whole request (head and body), so a client trickling bytes cannot
    // hold one of the few admin threads for longer than that.
    let deadline = std::time::Instant::now() + REQUEST_DEADLINE;
    stream.set_write_timeout(Some(IO_TIMEOUT))?;
    let mut buf = vec![0u8; MAX_HEAD];
    let mut len = 0;
    let head = loop {
        if !within(&stream, deadline)? {
            return respond(&mut stream, false, 408, "text/plain", b"request too slow\n");
        }
        let n = stream.read(&mut buf[len..])?;
        if n == 0 {
            return Ok(());
        }
        len += n;
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut req = httparse::Request::new(&mut headers);
        match req.parse(&buf[..len]) {
            Ok(httparse::Status::Complete(head_len)) => {
                let field = |name: &str| {
                    req.headers
                        .iter()
                        .find(|h| h.name.eq_ignore_ascii_case(name))
                        .map(|h| h.value.to_vec())
                };
                let content_length = field("content-length")
                    .and_then(|v| std::str::from_utf8(&v).ok()?.trim().parse().ok())
                    .unwrap_or(0);
                break Head {
                    method: req.method.unwrap_or("").to_owned(),
                    path: req.path.unwrap_or("/").to_owned(),
                    authorization: field("authorization"),
                    content_length,
                    len: head_len,
                };
            }
            Ok(httparse::Status::Partial) if len < MAX_HEAD => continue,
            Ok(httparse::Status::Partial) => {
                return respond(
                    &mut stream,
                    false,
                    431,
                    "text/plain",
                    b"request head too large\n",
                )
            }
            Err(_) => return respond(&mut stream, false, 400, "text/plain", b"bad request\n"),
        }
    };
    let route = head.path.split('?').next().unwrap_or("").to_owned();
    if head.method == "POST" {
        let body_start = head.len.min(len);
        return write_endpoint(
            &mut stream,
            shared,
            peer,
            &head,
            &route,
            &buf[body_start..len],
            deadline,
        );
    }
    let head_only = head.method == "HEAD";
    if head.method != "GET" && !head_only {
        return respond(
            &mut stream,
            false,
            405,
            "text/plain",
            b"GET and HEAD read; POST /config/reload, /config and /config/rollback write\n",
        );
    }
    let route = route.as_str();
    if let Some((status, content_type, body)) = config_reads(shared, route, &head.path) {
        return respond(&mut stream, head_only, status, content_type, &body);
    }
    match route {
        "/metrics" => {
            let body = metrics::render_prometheus(shared);
            respond(
                &mut stream,
                head_only,
                200,
                "text/plain; version=0.0.4; charset=utf-8",
                body.as_bytes(),
            )
        }
        "/stats" => {
            let mut body = serde_json::to_vec_pretty(&metrics::render_json(shared))
                .unwrap_or_else(|_| b"{}".to_vec());
            body.push(b'\n');
            respond(&mut stream, head_only, 200, "application/json", &body)
        }
        "/healthz" => respond(&mut stream, head_only, 200, "text/plain", b"ok\n"),
        "/readyz" => {
            if shared.draining.load(Ordering::Relaxed) {
                respond(&mut stream, head_only, 503, "text/plain", b"draining\n")
            } else {
                respond(&mut stream, head_only, 200, "text/plain", b"ready\n")
            }
        }
        _ => respond(
            &mut stream,
            head_only,
            404,
            "text/plain",
            b"not found; try /metrics, /stats, /healthz, /readyz, /config, /config/versions or /config/diff\n",
        ),
    }
}

/// A write: authorised, its body bounded and read, then done; refusals are audited here, reloads
/// by the reload itself (whatever triggered it).
fn write_endpoint(
    stream: &mut TcpStream,
    shared: &Shared,
    peer: SocketAddr,
    head: &Head,
    route: &str,
    body_start: &[u8],
    deadline: std::time::Instant,
) -> io::Result<()> {
    let trigger = Trigger {
        source: "api",
        peer: Some(peer),
    };
    let refuse = |stream: &mut TcpStream, status: u16, why: &str| {
        if let Some(audit) = &shared.audit {
            audit.record_refusal(
                trigger,
                serde_json::json!({"action": route, "result": "refused", "status": status, "errors": [why]}),
            );
        }
        let body = serde_json::json!({ "errors": [why] }).to_string() + "\n";
        respond(stream, false, status, "application/json", body.as_bytes())
    };
    let Some(token) = &shared.admin_token else {
        return refuse(
            stream,
            403,
            "write endpoints are disabled: set [admin] token_file to a file holding a bearer token",
        );
    };
    let given = head
        .authorization
        .as_deref()
        .and_then(|v| v.strip_prefix(b"Bearer "))
        .unwrap_or(b"");
    if !constant_time_eq(given, token) {
        return refuse(
            stream,
            401,
            "missing or wrong bearer token (Authorization: Bearer <token>)",
        );
    }
    if head.content_length > MAX_BODY {
        return refuse(stream, 413, "request body over 1 MiB");
    }
    let mut body = body_start[..body_start.len().min(head.content_length)].to_vec();
    let mut chunk = [0u8; 8192];
    while body.len() < head.content_length {
        if !within(stream, deadline)? {
            return refuse(stream, 408, "the request body was not received in time");
        }
        let want = (head.content_length - body.len()).min(chunk.len());
        let n = stream.read(&mut chunk[..want])?;
        if n == 0 {
            break;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    if body.len() != head.content_length {
        return refuse(
            stream,
            400,
            "the request body ended before its Content-Length",
        );
    }
    let request = match route {
        "/config/reload" => Request::File,
        "/config" => match std::str::from_utf8(&body) {
            Ok(text) => Request::Text(text),
            Err(e) => return refuse(stream, 400, &format!("the body is not UTF-8 TOML: {e}")),
        },
        "/config/rollback" => match query(&head.path, "to").and_then(|v| v.parse().ok()) {
            Some(n) => Request::Rollback(n),
            None => return refuse(stream, 400, "POST /config/rollback?to=VERSION"),
        },
        _ => {
            return refuse(
                stream,
                404,
                "no such write endpoint; POST /config/reload, /config or /config/rollback?to=N",
            )
        }
    };
    let Some(reload) = shared.reload_hook.get() else {
        return refuse(
            stream,
            409,
            "this process runs without --config: there is no configuration file to reload or replace",
        );
    };
    match reload(trigger, request) {
        Ok(version) => {
            let body = serde_json::json!({ "version": version }).to_string() + "\n";
            respond(stream, false, 200, "application/json", body.as_bytes())
        }
        Err(refused) => {
            let body = serde_json::json!({ "errors": refused.errors }).to_string() + "\n";
            respond(
                stream,
                false,
                refused.status,
                "application/json",
                body.as_bytes(),
            )
        }
    }
}

/// Sets the next read's timeout to what is left before `deadline`; false once it has passed.
fn within(stream: &TcpStream, deadline: std::time::Instant) -> io::Result<bool> {
    let left = deadline.saturating_duration_since(std::time::Instant::now());
    if left.is_zero() {
        return Ok(false);
    }
    stream.set_read_timeout(Some(left.min(IO_TIMEOUT)))?;
    Ok(true)
}

/// The value of `name` in the query of `path`.
fn query<'p>(path: &'p str, name: &str) -> Option<&'p str> {
    let (_, q) = path.split_once('?')?;
    q.split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// `GET /config`, `/config/versions`, `/config/diff?from=A&to=B`.
fn config_reads(shared: &Shared, route: &str, path: &str) -> Option<(u16, &'static str, Vec<u8>)> {
    if !route.starts_with("/config") {
        return None;
    }
    let versions = shared.versions.lock().ok()?;
    let text = |s: &str| s.as_bytes().to_vec();
    Some(match route {
        "/config" => match versions.current() {
            Some(v) => (200, "text/plain; charset=utf-8", text(&v.text)),
            None => (
                404,
                "text/plain",
                text("started without --config: no configuration text\n"),
            ),
        },
        "/config/versions" => {
            let list: Vec<serde_json::Value> = versions
                .iter()
                .map(|v| {
                    serde_json::json!({
                        "version": v.version,
                        "sha256": v.sha256,
                        "applied_at": crate::versions::rfc3339(v.applied_at),
                        "source": v.source,
                        "peer": v.peer,
                    })
                })
                .collect();
            let current = versions.current().map(|v| v.version);
            let mut body = serde_json::to_vec_pretty(&serde_json::json!({
                "current": current,
                "versions": list,
            }))
            .unwrap_or_default();
            body.push(b'\n');
            (200, "application/json", body)
        }
        "/config/diff" => {
            let number = |name| query(path, name).and_then(|v| v.parse::<u64>().ok());
            let to = number("to").or(versions.current().map(|v| v.version));
            let pair = (
                number("from").and_then(|f| versions.get(f)).cloned(),
                to.and_then(|t| versions.get(t)).cloned(),
            );
            // The texts are copied out: a reload never waits for a diff.
            drop(versions);
            match pair {
                (Some(a), Some(b)) => {
                    let diff = crate::versions::unified_diff(
                        &a.normalised,
                        &b.normalised,
                        &format!("version {}", a.version),
                        &format!("version {}", b.version),
                    );
                    (200, "text/plain; charset=utf-8", text(&diff))
                }
                _ => (
                    404,
                    "text/plain",
                    text("GET /config/diff?from=A&to=B: both versions must be in GET /config/versions\n"),
                ),
            }
        }
        _ => return None,
    })
}

/// Compares without an early exit, so the time taken says nothing about where a guess differs.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = a.len() ^ b.len();
    for (i, &x) in b.iter().enumerate() {
        diff |= usize::from(x ^ a.get(i).copied().unwrap_or(0));
    }
    diff == 0
}

fn respond(
    stream: &mut TcpStream,
    head_only: bool,
    status: u16,
    content_type: &str,
    body: &[u8],
) -> io::Result<()> {
    let reason = match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        409 => "Conflict",
        413 => "Content Too Large",
        431 => "Request Header Fields Too Large",
        503 => "Service Unavailable",
        _ => "",
    };
    let head = format!(
        "HTTP/1.1 {status} {reason}\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\ncache-control: no-store\r\nconnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes())?;
    if !head_only {
        stream.write_all(body)?;
    }
    stream.flush()
}
