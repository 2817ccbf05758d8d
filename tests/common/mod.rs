//! Test helpers: spawn the real `strait` binary, real origins on loopback, and read its admin API.
//!
//! Every socket operation has a timeout so a broken proxy fails a test instead of hanging it.
#![allow(dead_code)]

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

pub const IO_TIMEOUT: Duration = Duration::from_secs(20);

pub fn binary() -> &'static str {
    env!("CARGO_BIN_EXE_strait")
}

/// A loopback address with a port nobody listens on right now.
///
/// Ports come from 20000..32000, below the kernel's ephemeral range (32768 and up), so the
/// outgoing connections of other tests running in parallel cannot take the port between this
/// check and the proxy's bind (an ephemeral port from `bind(0)` could be). Picks are scattered
/// (a hash of the process, a counter and the clock), so test processes running at once rarely
/// try the same port; the check binds without `SO_REUSEPORT`, so a port another proxy holds is
/// never handed out.
pub fn free_addr() -> SocketAddr {
    use std::hash::{BuildHasher, Hasher};
    use std::sync::atomic::{AtomicU64, Ordering};
    const FIRST: u64 = 20_000;
    const SPAN: u64 = 12_000;
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    for _ in 0..1000 {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u32(std::process::id());
        h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
        h.write_u128(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos()),
        );
        let port = (FIRST + h.finish() % SPAN) as u16;
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let tcp = TcpListener::bind(addr).is_ok();
        if tcp && std::net::UdpSocket::bind(addr).is_ok() {
            return addr;
        }
    }
    let l = TcpListener::bind("127.0.0.1:0").expect("bind ephemeral port");
    l.local_addr().expect("local addr")
}

/// An address that refuses connections (bound once, then released).
pub fn dead_addr() -> SocketAddr {
    free_addr()
}

pub fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect_timeout(&addr, IO_TIMEOUT)
        .unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    s.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    s.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
    s
}

/// Connects to a proxy that may reset the connection at once (rejection, no upstream). Such a reset
/// can arrive before connect(2) has returned; `None` means it did.
pub fn connect_or_reset(addr: SocketAddr) -> Option<TcpStream> {
    match TcpStream::connect_timeout(&addr, IO_TIMEOUT) {
        Ok(s) => {
            s.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
            s.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
            Some(s)
        }
        Err(e) if e.kind() == io::ErrorKind::ConnectionReset => None,
        Err(e) => panic!("connect {addr}: {e}"),
    }
}

/// Deterministic pseudo-random bytes (xorshift), so transfers are not trivially compressible
/// patterns and a reordered or dropped chunk changes the checksum.
pub fn payload(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// FNV-1a: enough to tell two byte streams apart in a test.
pub fn checksum(data: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in data {
        h ^= b as u64;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// Sends `data`, half-closes, and reads everything the other side sends until EOF — concurrently,
/// so a large transfer cannot deadlock on full socket buffers.
pub fn round_trip(addr: SocketAddr, data: Arc<Vec<u8>>) -> io::Result<Vec<u8>> {
    let s = connect(addr);
    let mut w = s.try_clone()?;
    let writer = thread::spawn(move || -> io::Result<()> {
        for chunk in data.chunks(64 * 1024) {
            w.write_all(chunk)?;
        }
        w.shutdown(Shutdown::Write)
    });
    let mut r = s;
    let mut got = Vec::new();
    r.read_to_end(&mut got)?;
    writer.join().expect("writer thread")?;
    Ok(got)
}

/// A TCP origin run on plain threads. `handler` serves one connection.
pub struct Origin {
    pub addr: SocketAddr,
    pub connections: Arc<AtomicUsize>,
}

impl Origin {
    pub fn start<F>(handler: F) -> Origin
    where
        F: Fn(TcpStream) + Send + Sync + 'static,
    {
        let listener = TcpListener::bind("127.0.0.1:0").expect("origin bind");
        let addr = listener.local_addr().unwrap();
        let connections = Arc::new(AtomicUsize::new(0));
        let count = connections.clone();
        let handler = Arc::new(handler);
        thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                count.fetch_add(1, Ordering::SeqCst);
                let h = handler.clone();
                let _ = stream.set_read_timeout(Some(IO_TIMEOUT));
                let _ = stream.set_write_timeout(Some(IO_TIMEOUT));
                thread::spawn(move || h(stream));
            }
        });
        Origin { addr, connections }
    }

    /// Echoes every byte back; half-closes its write side after reading EOF.
    pub fn echo() -> Origin {
        Origin::start(|mut s| {
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                match s.read(&mut buf) {
                    Ok(0) => {
                        let _ = s.shutdown(Shutdown::Write);
                        return;
                    }
                    Ok(n) => {
                        if s.write_all(&buf[..n]).is_err() {
                            return;
                        }
                    }
                    Err(_) => return,
                }
            }
        })
    }

    pub fn connection_count(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

/// The real binary, killed when dropped. Its stderr goes to a file shown on failure.
pub struct Proxy {
    pub child: Child,
    pub listen: SocketAddr,
    pub admin: SocketAddr,
    log: PathBuf,
}

impl Proxy {
    /// `strait run --listen <free> --admin <free> --log-format json --log-level debug <args>`
    pub fn quick(args: &[String]) -> Proxy {
        let listen = free_addr();
        let admin = free_addr();
        let mut full = vec![
            "run".to_string(),
            "--listen".into(),
            listen.to_string(),
            "--admin".into(),
            admin.to_string(),
            "--log-format".into(),
            "json".into(),
            "--log-level".into(),
            "debug".into(),
        ];
        full.extend_from_slice(args);
        Proxy::spawn(&full, None, listen, admin)
    }

    /// Runs `strait <args>`, optionally under a shell prefix (e.g. to lower `ulimit -n`).
    pub fn spawn(
        args: &[String],
        shell_prefix: Option<&str>,
        listen: SocketAddr,
        admin: SocketAddr,
    ) -> Proxy {
        static SEQ: AtomicUsize = AtomicUsize::new(0);
        let log = std::env::temp_dir().join(format!(
            "strait-test-{}-{}.log",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::SeqCst)
        ));
        let stderr = std::fs::File::create(&log).expect("log file");
        let mut cmd = match shell_prefix {
            Some(prefix) => {
                let quoted: Vec<String> = args.iter().map(|a| format!("'{a}'")).collect();
                let mut c = Command::new("bash");
                c.arg("-c").arg(format!(
                    "{prefix}; exec '{}' {}",
                    binary(),
                    quoted.join(" ")
                ));
                c
            }
            None => {
                let mut c = Command::new(binary());
                c.args(args);
                c
            }
        };
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .expect("spawn strait");
        let mut p = Proxy {
            child,
            listen,
            admin,
            log,
        };
        p.wait_ready();
        p
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("strait exited during start-up ({status}):\n{}", self.logs());
            }
            if let Ok((200, body)) = http_get(self.admin, "/stats") {
                if !body.contains("\"starting\"") {
                    return;
                }
            }
            thread::sleep(Duration::from_millis(25));
        }
        panic!("strait did not become ready:\n{}", self.logs());
    }

    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn stats(&self) -> serde_json::Value {
        let (status, body) = http_get(self.admin, "/stats").expect("GET /stats");
        assert_eq!(status, 200, "{body}");
        serde_json::from_str(&body).expect("stats JSON")
    }

    pub fn signal(&self, sig: libc::c_int) {
        // SAFETY: kill(2) on our own child's pid; an already-exited child yields ESRCH, ignored.
        unsafe {
            libc::kill(self.child.id() as libc::pid_t, sig);
        }
    }

    pub fn wait_exit(&mut self, within: Duration) -> ExitStatus {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            if Instant::now() > deadline {
                panic!("strait did not exit within {within:?}:\n{}", self.logs());
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Polls `/stats` until `pred` holds (counters are updated asynchronously by the cores).
    pub fn wait_stats(
        &self,
        what: &str,
        pred: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let s = self.stats();
            if pred(&s) {
                return s;
            }
            if Instant::now() > deadline {
                panic!("stats never showed {what}:\n{s:#}\nlogs:\n{}", self.logs());
            }
            thread::sleep(Duration::from_millis(25));
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if thread::panicking() {
            eprintln!(
                "--- strait log ({}) ---\n{}",
                self.log.display(),
                self.logs()
            );
        }
        let _ = std::fs::remove_file(&self.log);
    }
}

/// Minimal HTTP/1.1 GET over a fresh connection; returns (status, body).
pub fn http_get(addr: SocketAddr, path: &str) -> io::Result<(u16, String)> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: strait\r\nConnection: close\r\n\r\n"
    )?;
    let mut raw = String::new();
    s.read_to_string(&mut raw)?;
    let status = raw
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| io::Error::other(format!("bad response: {raw:?}")))?;
    let body = raw
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Ok((status, body))
}

/// A UDP origin on loopback that answers every datagram with `<tag>:` followed by the datagram.
pub fn udp_origin(tag: &'static str) -> SocketAddr {
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind UDP origin");
    let addr = sock.local_addr().expect("origin address");
    thread::spawn(move || {
        let mut buf = vec![0u8; 65_535];
        while let Ok((n, from)) = sock.recv_from(&mut buf) {
            let mut reply = tag.as_bytes().to_vec();
            reply.push(b':');
            reply.extend_from_slice(&buf[..n]);
            let _ = sock.send_to(&reply, from);
        }
    });
    addr
}

/// Strings for `Proxy::quick`.
pub fn args(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

/// Counts the bytes read until EOF; `None` if the stream failed first.
pub fn count_until_eof(s: &mut TcpStream) -> Option<usize> {
    let mut total = 0;
    let mut buf = [0u8; 32 * 1024];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return Some(total),
            Ok(n) => total += n,
            Err(_) => return None,
        }
    }
}

/// Reads until EOF or error; returns what was read and how it ended.
pub fn read_until_closed(s: &mut TcpStream) -> (Vec<u8>, io::Result<()>) {
    let mut got = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return (got, Ok(())),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) => return (got, Err(e)),
        }
    }
}

pub type Shared<T> = Arc<Mutex<T>>;

pub mod http;
pub mod tls;
pub mod ws;

pub mod faults;
pub mod grpc;
/// HTTP/2 helpers. Named `h2_support`, not `h2`: a glob `use common::*` must not shadow the
/// `h2` crate.
#[path = "h2.rs"]
pub mod h2_support;
pub mod upstream_h2;
