//! The admin HTTP endpoint: `/metrics`, `/stats`, `/healthz`, `/readyz`.
//!
//! Owns: a small, bounded HTTP/1.1 server on its own thread (blocking std sockets: admin traffic is
//! rare, and keeping it off the cores keeps a scrape from ever delaying a proxied byte). Each request
//! gets a fresh connection-scoped thread, at most `MAX_CONCURRENT`, with read/write timeouts, a
//! bounded request head, and `Connection: close`.
//! Must not: run on a core's thread, or accept anything but GET/HEAD.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use tracing::{debug, warn};

use crate::metrics;
use crate::shared::Shared;

const MAX_CONCURRENT: usize = 8;
const MAX_HEAD: usize = 8 * 1024;
const IO_TIMEOUT: Duration = Duration::from_secs(2);

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
                if let Err(e) = handle(stream, &shared) {
                    debug!(client = %peer, error = %e, "admin request failed");
                }
                counter.fetch_sub(1, Ordering::SeqCst);
            });
        if spawned.is_err() {
            in_flight.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

fn handle(mut stream: TcpStream, shared: &Shared) -> io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(IO_TIMEOUT))?;
    stream.set_write_timeout(Some(IO_TIMEOUT))?;
    let mut buf = vec![0u8; MAX_HEAD];
    let mut len = 0;
    let (method, path) = loop {
        let n = stream.read(&mut buf[len..])?;
        if n == 0 {
            return Ok(());
        }
        len += n;
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut req = httparse::Request::new(&mut headers);
        match req.parse(&buf[..len]) {
            Ok(httparse::Status::Complete(_)) => {
                let method = req.method.unwrap_or("").to_owned();
                let path = req.path.unwrap_or("/").to_owned();
                break (method, path);
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
    let head_only = method == "HEAD";
    if method != "GET" && !head_only {
        return respond(
            &mut stream,
            false,
            405,
            "text/plain",
            b"only GET and HEAD\n",
        );
    }
    let route = path.split('?').next().unwrap_or("");
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
            b"not found; try /metrics, /stats, /healthz or /readyz\n",
        ),
    }
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
        404 => "Not Found",
        405 => "Method Not Allowed",
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
