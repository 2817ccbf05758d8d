//! The HTTP access log: per-core formatting into batches, one process-wide writer thread.
//!
//! Owns: the one "strait-access-log" thread and the output it writes to (stdout, or a file opened
//! for append), the line formats (JSON lines and NGINX "combined" plus extras), the sampling
//! decision, and the recycling of batch buffers between the cores and the writer.
//!
//! Must not: block, lock or allocate per request on a core. A core formats a record straight into
//! its own buffer (no per-field allocation, no shared state); it touches the channels only when a
//! batch is handed over (over 64 KiB, or on the core's periodic `flush`), and then only with
//! `try_send`/`try_recv` (flume's internal lock is held for one push or pop; nothing waits for the
//! writer), so a slow or stuck output loses whole batches (counted in
//! [`CoreAccessLog::dropped_lines`]) instead of stalling traffic. All writing and every syscall on
//! the output happen on the writer thread.
//!
//! Header bytes (method, host, path, request id, user agent, referer) are not guaranteed to be
//! UTF-8, so both formats escape every byte outside printable ASCII rather than guess at an
//! encoding. In JSON a byte `b >= 0x80` becomes `\u00XX` with `XX` its value: the string then reads
//! as Latin-1, and a consumer gets the original bytes back by mapping each char (all below U+0100)
//! to one byte. UTF-8 text therefore shows as mojibake, never as invalid JSON or a lost byte. The
//! `&str` fields (listener, route, protocol, error) are valid UTF-8 and are passed through apart
//! from quotes, backslashes and control characters. In combined format everything is escaped the
//! way NGINX's default `escape=default` does: `"`, `\`, bytes below 0x20 and above 0x7E as `\xHH`.

use std::io::{self, Write};
use std::net::{IpAddr, SocketAddr};
use std::thread::JoinHandle;
use std::time::{SystemTime, UNIX_EPOCH};

use tracing::warn;

use crate::config::{AccessLogConfig, AccessLogFormat, AccessLogTarget};

/// A core hands its buffer to the writer once it holds this much.
const FLUSH_AT: usize = 64 * 1024;
/// Room for the threshold plus one more large line, so a batch normally never regrows.
const BUFFER_CAPACITY: usize = FLUSH_AT + 16 * 1024;
/// A buffer that grew past this (a few huge lines) is freed rather than recycled.
const MAX_RECYCLED_CAPACITY: usize = 4 * BUFFER_CAPACITY;
/// Batches waiting for the writer (process-wide), and recycled buffers waiting for a core: at most
/// about 128 × 80 KiB = 10 MiB each in the worst case.
const QUEUE_BATCHES: usize = 128;

/// Process-wide: owns the writer thread and the output (stdout or a file opened for append,
/// created if missing).
pub(crate) struct AccessLog {
    batches: flume::Sender<Vec<u8>>,
    recycled: flume::Receiver<Vec<u8>>,
    format: AccessLogFormat,
    sample: u32,
    thread: JoinHandle<()>,
}

impl AccessLog {
    /// Opens the target (an error if a file cannot be opened: the caller reports it at start-up)
    /// and starts the writer thread.
    pub fn start(config: &AccessLogConfig) -> io::Result<AccessLog> {
        let out: Box<dyn Write + Send> = match &config.target {
            AccessLogTarget::Stdout => Box::new(io::stdout()),
            AccessLogTarget::File(path) => Box::new(
                std::fs::OpenOptions::new()
                    .append(true)
                    .create(true)
                    .open(path)?,
            ),
        };
        AccessLog::spawn(out, config.format, config.sample, QUEUE_BATCHES)
    }

    /// Starts the writer thread on `out` with a batch queue of `queue` entries (tests use tiny
    /// queues and writers that stall).
    fn spawn(
        out: Box<dyn Write + Send>,
        format: AccessLogFormat,
        sample: u32,
        queue: usize,
    ) -> io::Result<AccessLog> {
        let (batches, batches_rx) = flume::bounded(queue);
        let (recycled_tx, recycled) = flume::bounded(queue);
        let thread = std::thread::Builder::new()
            .name("strait-access-log".into())
            .spawn(move || run_writer(out, batches_rx, recycled_tx))?;
        Ok(AccessLog {
            batches,
            recycled,
            format,
            sample: sample.max(1),
            thread,
        })
    }

    /// One per core. Allocates the core's first buffer.
    pub fn core_writer(&self) -> CoreAccessLog {
        CoreAccessLog {
            format: self.format,
            sample: self.sample,
            skip: 0,
            buf: Vec::with_capacity(BUFFER_CAPACITY),
            lines: 0,
            dropped: 0,
            batches: self.batches.clone(),
            recycled: self.recycled.clone(),
            #[cfg(test)]
            allocated: 1,
        }
    }

    /// Stops the writer after it has written everything queued so far, and joins it. Called once
    /// after all cores stopped (each [`CoreAccessLog`] flushed on its own first).
    ///
    /// A flume channel cannot be closed while a `CoreAccessLog` still holds a sender, so this
    /// queues an end marker (an empty batch; cores never send one) instead: shutdown cannot hang on
    /// a writer some core forgot to drop, and whatever such a core sends later is counted as
    /// dropped on its side once the writer is gone.
    pub fn shutdown(self) {
        // Blocks until there is room, which the writer makes; fails only if it already exited.
        let _ = self.batches.send(Vec::new());
        drop(self.batches);
        if self.thread.join().is_err() {
            warn!("the access log writer thread panicked");
        }
    }
}

/// The writer thread: writes batches in order, hands their buffers back for reuse.
fn run_writer(
    mut out: Box<dyn Write + Send>,
    batches: flume::Receiver<Vec<u8>>,
    recycled: flume::Sender<Vec<u8>>,
) {
    let mut failing = false;
    let mut lost_lines = 0u64;
    let mut write = |batch: &mut Vec<u8>| {
        match out.write_all(batch).and_then(|()| out.flush()) {
            Ok(()) if failing => {
                failing = false;
                warn!(lost_lines, "access log writes succeed again");
            }
            Ok(()) => {}
            Err(e) => {
                lost_lines += batch.iter().filter(|&&b| b == b'\n').count() as u64;
                if !failing {
                    failing = true;
                    warn!(error = %e, "cannot write the access log; dropping lines until it recovers");
                }
            }
        }
        batch.clear();
    };
    while let Ok(mut batch) = batches.recv() {
        if batch.is_empty() {
            // The end marker. Batches a late core queued behind it are still written, but only
            // those already there: a core that keeps logging cannot hold the shutdown up.
            for _ in 0..batches.len() {
                if let Ok(mut batch) = batches.try_recv() {
                    write(&mut batch);
                }
            }
            break;
        }
        write(&mut batch);
        if batch.capacity() <= MAX_RECYCLED_CAPACITY {
            // If that queue is full the cores have spares enough, and this buffer is freed.
            let _ = recycled.try_send(batch);
        }
    }
    if lost_lines > 0 {
        warn!(lost_lines, "access log lines lost to write errors");
    }
}

/// A request's start on the wall clock: read only when access logging is on (the access log
/// is its only reader), the epoch otherwise.
pub(crate) fn wall_clock(logging: bool) -> SystemTime {
    if logging {
        SystemTime::now()
    } else {
        UNIX_EPOCH
    }
}

/// Per core: formats records into a local buffer and hands the buffer to the writer thread when
/// it is over 64 KiB (inside [`log`](Self::log)) or when [`flush`](Self::flush) is called (the
/// core calls it every ~100 ms and at shutdown). Never blocks: if the queue is full the batch is
/// dropped and counted. Takes recycled buffers back from the writer, so steady state allocates
/// nothing.
pub(crate) struct CoreAccessLog {
    format: AccessLogFormat,
    /// At least 1.
    sample: u32,
    /// Successful requests to skip before the next one is logged.
    skip: u32,
    buf: Vec<u8>,
    /// Lines in `buf`.
    lines: u64,
    dropped: u64,
    batches: flume::Sender<Vec<u8>>,
    recycled: flume::Receiver<Vec<u8>>,
    /// Buffers this core allocated: its first, and one per hand-over that found none to reuse.
    #[cfg(test)]
    allocated: u64,
}

impl CoreAccessLog {
    /// Whether to log a request answered with `status`; ask before building the record. 4xx, 5xx
    /// and 0 (no response sent) always; anything else 1 in `sample` times, counted per core and
    /// deterministic: the first such request is logged, then every `sample`-th after it.
    pub fn wants(&mut self, status: u16) -> bool {
        if status == 0 || status >= 400 {
            return true;
        }
        if self.skip == 0 {
            self.skip = self.sample - 1;
            true
        } else {
            self.skip -= 1;
            false
        }
    }

    /// Appends one line; hands the batch over if it is now 64 KiB or more.
    pub fn log(&mut self, record: &AccessRecord<'_>) {
        match self.format {
            AccessLogFormat::Json => write_json(&mut self.buf, record),
            AccessLogFormat::Combined => write_combined(&mut self.buf, record),
        }
        self.lines += 1;
        if self.buf.len() >= FLUSH_AT {
            self.flush();
        }
    }

    /// Hands whatever is buffered to the writer thread, without waiting: if its queue is full (or
    /// it has stopped) the lines are dropped and counted, and the buffer is kept for reuse.
    pub fn flush(&mut self) {
        if self.buf.is_empty() {
            return;
        }
        let batch = std::mem::take(&mut self.buf);
        match self.batches.try_send(batch) {
            Ok(()) => {
                self.buf = match self.recycled.try_recv() {
                    Ok(recycled) => recycled,
                    Err(_) => {
                        #[cfg(test)]
                        {
                            self.allocated += 1;
                        }
                        Vec::with_capacity(BUFFER_CAPACITY)
                    }
                };
            }
            Err(flume::TrySendError::Full(mut batch))
            | Err(flume::TrySendError::Disconnected(mut batch)) => {
                self.dropped += self.lines;
                batch.clear();
                self.buf = batch;
            }
        }
        self.lines = 0;
    }

    /// Lines this core dropped because the writer could not keep up (or had stopped).
    pub fn dropped_lines(&self) -> u64 {
        self.dropped
    }
}

impl Drop for CoreAccessLog {
    /// A safety net: the core flushes at shutdown itself.
    fn drop(&mut self) {
        self.flush();
    }
}

/// One finished request, borrowed from the connection's state.
pub(crate) struct AccessRecord<'a> {
    /// When the request head was complete.
    pub time: SystemTime,
    pub listener: &'a str,
    /// `""` when no route matched.
    pub route: &'a str,
    pub request_id: &'a [u8],
    pub client: SocketAddr,
    pub method: &'a [u8],
    /// As sent; may be empty.
    pub host: &'a [u8],
    /// Path-and-query as sent by the client.
    pub path: &'a [u8],
    /// `"HTTP/1.1"` or `"HTTP/1.0"`.
    pub protocol: &'a str,
    /// 0 when no response could be sent.
    pub status: u16,
    /// Request bytes read from the client (head and body).
    pub bytes_in: u64,
    /// Response bytes written to the client (head and body).
    pub bytes_out: u64,
    pub upstream: Option<SocketAddr>,
    /// From the request being sent to the response head being received.
    pub upstream_micros: Option<u64>,
    pub total_micros: u64,
    pub user_agent: &'a [u8],
    pub referer: &'a [u8],
    /// Short proxy error cause (`"upstream_timeout"`, `"connect_failed"`, ...) or `""`.
    pub error: &'a str,
}

/// `{"time":"2026-11-22T07:41:03.123Z","listener":...}` and a newline.
fn write_json(buf: &mut Vec<u8>, r: &AccessRecord<'_>) {
    let t = UtcTime::from(r.time);
    buf.extend_from_slice(b"{\"time\":\"");
    put_u64(buf, t.year);
    buf.push(b'-');
    put_2(buf, t.month);
    buf.push(b'-');
    put_2(buf, t.day);
    buf.push(b'T');
    put_2(buf, t.hour);
    buf.push(b':');
    put_2(buf, t.minute);
    buf.push(b':');
    put_2(buf, t.second);
    buf.push(b'.');
    put_3(buf, t.millis);
    buf.extend_from_slice(b"Z\",\"listener\":");
    json_str(buf, r.listener);
    buf.extend_from_slice(b",\"route\":");
    json_str(buf, r.route);
    buf.extend_from_slice(b",\"request_id\":");
    json_bytes(buf, r.request_id);
    buf.extend_from_slice(b",\"client\":\"");
    put_socket_addr(buf, r.client);
    buf.extend_from_slice(b"\",\"method\":");
    json_bytes(buf, r.method);
    buf.extend_from_slice(b",\"host\":");
    json_bytes(buf, r.host);
    buf.extend_from_slice(b",\"path\":");
    json_bytes(buf, r.path);
    buf.extend_from_slice(b",\"protocol\":");
    json_str(buf, r.protocol);
    buf.extend_from_slice(b",\"status\":");
    put_u64(buf, r.status.into());
    buf.extend_from_slice(b",\"bytes_in\":");
    put_u64(buf, r.bytes_in);
    buf.extend_from_slice(b",\"bytes_out\":");
    put_u64(buf, r.bytes_out);
    buf.extend_from_slice(b",\"upstream\":");
    match r.upstream {
        Some(addr) => {
            buf.push(b'"');
            put_socket_addr(buf, addr);
            buf.push(b'"');
        }
        None => buf.extend_from_slice(b"null"),
    }
    buf.extend_from_slice(b",\"upstream_ms\":");
    match r.upstream_micros {
        Some(us) => put_fixed3(buf, us),
        None => buf.extend_from_slice(b"null"),
    }
    buf.extend_from_slice(b",\"total_ms\":");
    put_fixed3(buf, r.total_micros);
    buf.extend_from_slice(b",\"user_agent\":");
    json_bytes(buf, r.user_agent);
    buf.extend_from_slice(b",\"referer\":");
    json_bytes(buf, r.referer);
    if !r.error.is_empty() {
        buf.extend_from_slice(b",\"error\":");
        json_str(buf, r.error);
    }
    buf.extend_from_slice(b"}\n");
}

/// NGINX "combined" and extras, and a newline:
/// `127.0.0.1 - - [22/Nov/2026:07:41:03 +0000] "GET /path HTTP/1.1" 200 1234 "referer" "ua"
/// rid="..." route="..." upstream="..." ut=0.001 rt=0.002`, then ` err="..."` if there is an error.
///
/// As in NGINX: the client is the address without the port, an empty referer, user agent (and
/// here request id, route, upstream) is `"-"`, a missing upstream time is `-`, times are seconds
/// with millisecond resolution (truncated), and status 0 (no response) is `000`. Unlike NGINX's
/// `$body_bytes_sent`, the byte count includes the response head (it is `bytes_out`).
fn write_combined(buf: &mut Vec<u8>, r: &AccessRecord<'_>) {
    const MONTHS: [&[u8; 3]; 12] = [
        b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov",
        b"Dec",
    ];
    put_ip(buf, r.client.ip());
    buf.extend_from_slice(b" - - [");
    let t = UtcTime::from(r.time);
    put_2(buf, t.day);
    buf.push(b'/');
    buf.extend_from_slice(MONTHS[(t.month - 1) as usize]);
    buf.push(b'/');
    put_u64(buf, t.year);
    buf.push(b':');
    put_2(buf, t.hour);
    buf.push(b':');
    put_2(buf, t.minute);
    buf.push(b':');
    put_2(buf, t.second);
    buf.extend_from_slice(b" +0000] \"");
    if r.method.is_empty() && r.path.is_empty() {
        buf.push(b'-');
    } else {
        nginx_escape(buf, r.method);
        buf.push(b' ');
        nginx_escape(buf, r.path);
        if !r.protocol.is_empty() {
            buf.push(b' ');
            nginx_escape(buf, r.protocol.as_bytes());
        }
    }
    buf.extend_from_slice(b"\" ");
    put_3(buf, r.status.into());
    buf.push(b' ');
    put_u64(buf, r.bytes_out);
    buf.push(b' ');
    nginx_quoted(buf, r.referer);
    buf.push(b' ');
    nginx_quoted(buf, r.user_agent);
    buf.extend_from_slice(b" rid=");
    nginx_quoted(buf, r.request_id);
    buf.extend_from_slice(b" route=");
    nginx_quoted(buf, r.route.as_bytes());
    buf.extend_from_slice(b" upstream=");
    match r.upstream {
        Some(addr) => {
            buf.push(b'"');
            put_socket_addr(buf, addr);
            buf.push(b'"');
        }
        None => buf.extend_from_slice(b"\"-\""),
    }
    buf.extend_from_slice(b" ut=");
    match r.upstream_micros {
        Some(us) => put_fixed3(buf, us / 1000),
        None => buf.push(b'-'),
    }
    buf.extend_from_slice(b" rt=");
    put_fixed3(buf, r.total_micros / 1000);
    if !r.error.is_empty() {
        buf.extend_from_slice(b" err=");
        nginx_quoted(buf, r.error.as_bytes());
    }
    buf.push(b'\n');
}

/// A JSON string of arbitrary bytes: `"` and `\` backslash-escaped, controls, DEL and every byte
/// `>= 0x80` as `\u00XX` (see the module documentation).
fn json_bytes(buf: &mut Vec<u8>, s: &[u8]) {
    json_escape(buf, s, true);
}

/// A JSON string of valid UTF-8: as [`json_bytes`], but bytes `>= 0x80` pass through.
fn json_str(buf: &mut Vec<u8>, s: &str) {
    json_escape(buf, s.as_bytes(), false);
}

fn json_escape(buf: &mut Vec<u8>, s: &[u8], escape_high: bool) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    buf.push(b'"');
    let mut start = 0;
    for (i, &b) in s.iter().enumerate() {
        let plain = match b {
            b'"' | b'\\' | 0x7f => false,
            0x20..=0x7e => true,
            0x80.. => !escape_high,
            _ => false,
        };
        if plain {
            continue;
        }
        buf.extend_from_slice(&s[start..i]);
        match b {
            b'"' => buf.extend_from_slice(b"\\\""),
            b'\\' => buf.extend_from_slice(b"\\\\"),
            _ => buf.extend_from_slice(&[
                b'\\',
                b'u',
                b'0',
                b'0',
                HEX[usize::from(b >> 4)],
                HEX[usize::from(b & 15)],
            ]),
        }
        start = i + 1;
    }
    buf.extend_from_slice(&s[start..]);
    buf.push(b'"');
}

/// `"s"` escaped as NGINX does, or `"-"` when `s` is empty.
fn nginx_quoted(buf: &mut Vec<u8>, s: &[u8]) {
    buf.push(b'"');
    if s.is_empty() {
        buf.push(b'-');
    } else {
        nginx_escape(buf, s);
    }
    buf.push(b'"');
}

/// NGINX's default log escaping: `"`, `\`, and bytes below 0x20 or above 0x7E as `\xHH`.
fn nginx_escape(buf: &mut Vec<u8>, s: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut start = 0;
    for (i, &b) in s.iter().enumerate() {
        if (0x20..=0x7e).contains(&b) && b != b'"' && b != b'\\' {
            continue;
        }
        buf.extend_from_slice(&s[start..i]);
        buf.extend_from_slice(&[
            b'\\',
            b'x',
            HEX[usize::from(b >> 4)],
            HEX[usize::from(b & 15)],
        ]);
        start = i + 1;
    }
    buf.extend_from_slice(&s[start..]);
}

/// `1.2.3.4:80` or `[::1]:80`.
fn put_socket_addr(buf: &mut Vec<u8>, addr: SocketAddr) {
    match addr {
        SocketAddr::V4(a) => put_ip(buf, IpAddr::V4(*a.ip())),
        SocketAddr::V6(a) => {
            buf.push(b'[');
            put_ip(buf, IpAddr::V6(*a.ip()));
            buf.push(b']');
        }
    }
    buf.push(b':');
    put_u64(buf, addr.port().into());
}

fn put_ip(buf: &mut Vec<u8>, ip: IpAddr) {
    match ip {
        IpAddr::V4(v4) => {
            for (i, octet) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    buf.push(b'.');
                }
                put_u64(buf, octet.into());
            }
        }
        // IPv6 text form (zero compression, embedded IPv4) is not worth redoing; `Display` writes
        // into the Vec directly and does not allocate.
        IpAddr::V6(v6) => {
            let _ = write!(buf, "{v6}");
        }
    }
}

fn put_u64(buf: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    buf.extend_from_slice(&digits[i..]);
}

/// Two digits, zero-padded (`n < 100`).
fn put_2(buf: &mut Vec<u8>, n: u64) {
    buf.extend_from_slice(&[b'0' + (n / 10 % 10) as u8, b'0' + (n % 10) as u8]);
}

/// At least three digits, zero-padded.
fn put_3(buf: &mut Vec<u8>, n: u64) {
    if n < 100 {
        buf.push(b'0');
    }
    if n < 10 {
        buf.push(b'0');
    }
    put_u64(buf, n);
}

/// `thousandths` as a decimal with three places: 1500 → `1.500`.
fn put_fixed3(buf: &mut Vec<u8>, thousandths: u64) {
    put_u64(buf, thousandths / 1000);
    buf.push(b'.');
    let frac = thousandths % 1000;
    buf.extend_from_slice(&[
        b'0' + (frac / 100) as u8,
        b'0' + (frac / 10 % 10) as u8,
        b'0' + (frac % 10) as u8,
    ]);
}

/// A UTC instant broken down to the millisecond (proleptic Gregorian calendar).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct UtcTime {
    year: u64,
    month: u64,
    day: u64,
    hour: u64,
    minute: u64,
    second: u64,
    millis: u64,
}

impl From<SystemTime> for UtcTime {
    /// Times before 1970 (a clock set very wrong) are shown as the epoch.
    fn from(t: SystemTime) -> UtcTime {
        let since = t.duration_since(UNIX_EPOCH).unwrap_or_default();
        let secs = since.as_secs();
        let (year, month, day) = civil_from_days(secs / 86_400);
        let in_day = secs % 86_400;
        UtcTime {
            year,
            month,
            day,
            hour: in_day / 3600,
            minute: in_day / 60 % 60,
            second: in_day % 60,
            millis: u64::from(since.subsec_millis()),
        }
    }
}

/// Days since 1970-01-01 to (year, month 1–12, day 1–31): Howard Hinnant's `civil_from_days`,
/// for non-negative day numbers. Eras are 400-year cycles starting on March 1st, which puts the
/// leap day at the end of the (shifted) year.
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    // 0000-03-01 is day -719468.
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097; // day of era, [0, 146096]
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // [0, 399]
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // day of the March-based year, [0, 365]
    let mp = (5 * doy + 2) / 153; // March-based month, [0, 11]
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = era * 400 + yoe + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};
    use std::time::{Duration, Instant};

    use serde_json::Value;

    use super::*;

    fn at(secs: u64, millis: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(secs * 1000 + millis)
    }

    /// 2026-11-22T07:41:03.123Z.
    fn known_time() -> SystemTime {
        at(1_795_333_263, 123)
    }

    fn record() -> AccessRecord<'static> {
        AccessRecord {
            time: known_time(),
            listener: "web",
            route: "api",
            request_id: b"5f3a9c01",
            client: "127.0.0.1:51234".parse().unwrap(),
            method: b"GET",
            host: b"example.com",
            path: b"/path?q=1",
            protocol: "HTTP/1.1",
            status: 200,
            bytes_in: 312,
            bytes_out: 1234,
            upstream: Some("10.0.0.7:8080".parse().unwrap()),
            upstream_micros: Some(1_500),
            total_micros: 2_250,
            user_agent: b"curl/8.5.0",
            referer: b"https://example.com/",
            error: "",
        }
    }

    fn json(r: &AccessRecord<'_>) -> Vec<u8> {
        let mut buf = Vec::new();
        write_json(&mut buf, r);
        buf
    }

    fn parse_line(line: &[u8]) -> serde_json::Map<String, Value> {
        assert_eq!(line.last(), Some(&b'\n'), "a line ends in a newline");
        assert!(
            !line[..line.len() - 1].contains(&b'\n'),
            "one line per record"
        );
        match serde_json::from_slice(line).unwrap() {
            Value::Object(map) => map,
            other => panic!("not an object: {other}"),
        }
    }

    fn combined(r: &AccessRecord<'_>) -> String {
        let mut buf = Vec::new();
        write_combined(&mut buf, r);
        String::from_utf8(buf).unwrap()
    }

    #[test]
    fn json_line_has_every_field() {
        let line = json(&record());
        let m = parse_line(&line);
        let expected = serde_json::json!({
            "time": "2026-11-22T07:41:03.123Z",
            "listener": "web",
            "route": "api",
            "request_id": "5f3a9c01",
            "client": "127.0.0.1:51234",
            "method": "GET",
            "host": "example.com",
            "path": "/path?q=1",
            "protocol": "HTTP/1.1",
            "status": 200,
            "bytes_in": 312,
            "bytes_out": 1234,
            "upstream": "10.0.0.7:8080",
            "upstream_ms": 1.5,
            "total_ms": 2.25,
            "user_agent": "curl/8.5.0",
            "referer": "https://example.com/",
        });
        assert_eq!(Value::Object(m), expected);
        // Three decimals, as written (the parsed float does not show them).
        let text = std::str::from_utf8(&line).unwrap();
        assert!(
            text.contains("\"upstream_ms\":1.500,\"total_ms\":2.250,"),
            "{text}"
        );
    }

    #[test]
    fn json_line_without_upstream_with_error() {
        let r = AccessRecord {
            route: "",
            client: "[2001:db8::1]:443".parse().unwrap(),
            host: b"",
            status: 0,
            bytes_out: 0,
            upstream: None,
            upstream_micros: None,
            total_micros: 30_000_007,
            user_agent: b"",
            referer: b"",
            error: "connect_failed",
            ..record()
        };
        let line = json(&r);
        let m = parse_line(&line);
        assert_eq!(m.len(), 18);
        assert_eq!(m["route"], "");
        assert_eq!(m["client"], "[2001:db8::1]:443");
        assert_eq!(m["host"], "");
        assert_eq!(m["status"], 0);
        assert_eq!(m["upstream"], Value::Null);
        assert_eq!(m["upstream_ms"], Value::Null);
        let text = std::str::from_utf8(&line).unwrap();
        assert!(text.contains("\"total_ms\":30000.007,"), "{text}");
        assert_eq!(m["error"], "connect_failed");
        // Without an error the key is absent, not empty.
        assert!(!parse_line(&json(&record())).contains_key("error"));
        assert_eq!(parse_line(&json(&record())).len(), 17);
    }

    #[test]
    fn json_escapes_bytes() {
        let path: &[u8] = b"/a\"b\\c\x01d\x1f\x7f\xe9\xff/\xc3\xa9";
        let r = AccessRecord {
            path,
            user_agent: b"tab\there\r\n",
            listener: "caf\u{e9} \"x\"",
            ..record()
        };
        let line = json(&r);
        let text = std::str::from_utf8(&line).unwrap();
        assert!(
            text.contains(r#""path":"/a\"b\\c\u0001d\u001f\u007f\u00e9\u00ff/\u00c3\u00a9""#),
            "{text}"
        );
        assert!(
            text.contains(r#""user_agent":"tab\u0009here\u000d\u000a""#),
            "{text}"
        );
        // A &str field keeps its UTF-8.
        assert!(
            text.contains("\"listener\":\"caf\u{e9} \\\"x\\\"\""),
            "{text}"
        );
        let m = parse_line(&line);
        // Each byte comes back as the char of the same value (Latin-1).
        let back: Vec<u8> = m["path"]
            .as_str()
            .unwrap()
            .chars()
            .map(|c| u8::try_from(u32::from(c)).unwrap())
            .collect();
        assert_eq!(back, path);
        assert_eq!(m["user_agent"], "tab\there\r\n");
        assert_eq!(m["listener"], "caf\u{e9} \"x\"");
    }

    #[test]
    fn time_formatting() {
        let iso = |t| {
            let mut r = record();
            r.time = t;
            parse_line(&json(&r))["time"].as_str().unwrap().to_owned()
        };
        assert_eq!(iso(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        assert_eq!(iso(at(1_709_208_000, 500)), "2024-02-29T12:00:00.500Z");
        assert_eq!(iso(known_time()), "2026-11-22T07:41:03.123Z");
        assert_eq!(iso(at(951_868_800, 0)), "2000-03-01T00:00:00.000Z");
        assert_eq!(iso(at(4_107_542_399, 999)), "2100-02-28T23:59:59.999Z");
        assert_eq!(
            iso(UNIX_EPOCH - Duration::from_secs(1)),
            "1970-01-01T00:00:00.000Z"
        );
        // Sub-millisecond parts are truncated.
        assert_eq!(
            iso(UNIX_EPOCH + Duration::from_micros(1_999)),
            "1970-01-01T00:00:00.001Z"
        );
    }

    #[test]
    fn civil_from_days_matches_counting_days() {
        let (mut y, mut m, mut d) = (1970, 1, 1);
        for days in 0..=200_000 {
            assert_eq!(civil_from_days(days), (y, m, d), "day {days}");
            let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
            let len = match m {
                2 if leap => 29,
                2 => 28,
                4 | 6 | 9 | 11 => 30,
                _ => 31,
            };
            d += 1;
            if d > len {
                d = 1;
                m += 1;
                if m > 12 {
                    m = 1;
                    y += 1;
                }
            }
        }
    }

    #[test]
    fn combined_exact() {
        assert_eq!(
            combined(&record()),
            "127.0.0.1 - - [22/Nov/2026:07:41:03 +0000] \"GET /path?q=1 HTTP/1.1\" 200 1234 \
             \"https://example.com/\" \"curl/8.5.0\" rid=\"5f3a9c01\" route=\"api\" \
             upstream=\"10.0.0.7:8080\" ut=0.001 rt=0.002\n"
        );
        let r = AccessRecord {
            time: at(1_709_208_000, 500),
            route: "",
            request_id: b"",
            client: "[::1]:40000".parse().unwrap(),
            status: 0,
            bytes_out: 0,
            upstream: None,
            upstream_micros: None,
            total_micros: 10_000_999,
            user_agent: b"",
            referer: b"",
            error: "upstream_timeout",
            ..record()
        };
        assert_eq!(
            combined(&r),
            "::1 - - [29/Feb/2024:12:00:00 +0000] \"GET /path?q=1 HTTP/1.1\" 000 0 \"-\" \"-\" \
             rid=\"-\" route=\"-\" upstream=\"-\" ut=- rt=10.000 err=\"upstream_timeout\"\n"
        );
        // Nothing parsed from the request line.
        let r = AccessRecord {
            method: b"",
            path: b"",
            protocol: "",
            status: 400,
            ..record()
        };
        assert!(combined(&r).contains("] \"-\" 400 "), "{}", combined(&r));
        let r = AccessRecord {
            upstream: Some("[2001:db8::7]:8443".parse().unwrap()),
            status: 404,
            ..record()
        };
        assert!(combined(&r).contains(" 404 1234 "));
        assert!(combined(&r).contains(" upstream=\"[2001:db8::7]:8443\" "));
    }

    #[test]
    fn combined_escapes_like_nginx() {
        let r = AccessRecord {
            path: b"/a\"b\\c\x01\x7f\xe9 d",
            user_agent: b"x\"y",
            ..record()
        };
        let line = combined(&r);
        assert!(
            line.contains("\"GET /a\\x22b\\x5Cc\\x01\\x7F\\xE9 d HTTP/1.1\""),
            "{line}"
        );
        assert!(line.contains(" \"x\\x22y\" rid="), "{line}");
        assert_eq!(line.matches('\n').count(), 1);
    }

    fn core_with_sample(sample: u32) -> (AccessLog, CoreAccessLog) {
        let log = AccessLog::spawn(Box::new(io::sink()), AccessLogFormat::Json, sample, 4).unwrap();
        let core = log.core_writer();
        (log, core)
    }

    #[test]
    fn sampling() {
        let (log, mut core) = core_with_sample(1);
        assert!((0..1000).all(|_| core.wants(200)));
        drop(core);
        log.shutdown();

        let (log, mut core) = core_with_sample(10);
        let mut logged = Vec::new();
        for i in 0..1000 {
            if core.wants([200, 204, 301, 101][i % 4]) {
                logged.push(i);
            }
            // Errors (and "no response") always, without moving the success counter.
            for status in [0, 400, 404, 499, 500, 502, 503, 504] {
                assert!(core.wants(status));
            }
        }
        assert_eq!(logged.len(), 100);
        assert!(
            logged.iter().enumerate().all(|(n, &i)| i == n * 10),
            "{logged:?}"
        );
        drop(core);
        log.shutdown();

        // 0 (rejected by validation anyway) behaves as 1.
        let (log, mut core) = core_with_sample(0);
        assert!((0..10).all(|_| core.wants(200)));
        drop(core);
        log.shutdown();
    }

    /// A file in the temp directory, removed when dropped (also on a failed assertion).
    struct TempFile(std::path::PathBuf);

    impl TempFile {
        fn new(tag: &str) -> TempFile {
            let nanos = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap()
                .as_nanos();
            TempFile(std::env::temp_dir().join(format!(
                "strait-access-log-{tag}-{}-{nanos}.log",
                std::process::id()
            )))
        }
    }

    impl Drop for TempFile {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }

    fn file_config(file: &TempFile) -> AccessLogConfig {
        AccessLogConfig {
            target: AccessLogTarget::File(file.0.clone()),
            format: AccessLogFormat::Json,
            sample: 1,
        }
    }

    #[test]
    fn end_to_end_to_a_file() {
        let file = TempFile::new("e2e");
        let log = AccessLog::start(&file_config(&file)).unwrap();
        let mut core = log.core_writer();
        let mut id = Vec::new();
        for i in 0..10_000u64 {
            id.clear();
            put_u64(&mut id, i);
            let r = AccessRecord {
                request_id: &id,
                bytes_in: i,
                ..record()
            };
            core.log(&r);
        }
        core.flush();
        assert_eq!(core.dropped_lines(), 0);
        drop(core);
        log.shutdown();

        let text = std::fs::read(&file.0).unwrap();
        let lines: Vec<&[u8]> = text.split_inclusive(|&b| b == b'\n').collect();
        assert_eq!(lines.len(), 10_000);
        for (i, line) in lines.into_iter().enumerate() {
            let m = parse_line(line);
            assert_eq!(m["request_id"], i.to_string());
            assert_eq!(m["bytes_in"], i);
        }
    }

    #[test]
    fn file_is_appended_to() {
        let file = TempFile::new("append");
        std::fs::write(&file.0, b"earlier\n").unwrap();
        let log = AccessLog::start(&file_config(&file)).unwrap();
        let mut core = log.core_writer();
        core.log(&record());
        core.flush();
        drop(core);
        log.shutdown();
        let text = std::fs::read(&file.0).unwrap();
        assert!(text.starts_with(b"earlier\n{\"time\":"));
        assert_eq!(text.split(|&b| b == b'\n').count(), 3);
    }

    #[test]
    fn unopenable_file_is_an_error() {
        let file = TempFile::new("missing-dir");
        let config = AccessLogConfig {
            target: AccessLogTarget::File(file.0.join("no/such/dir/access.log")),
            format: AccessLogFormat::Json,
            sample: 1,
        };
        assert!(AccessLog::start(&config).is_err());
    }

    /// Collects everything written, for inspection after the writer stopped.
    #[derive(Clone, Default)]
    struct Sink(Arc<Mutex<Vec<u8>>>);

    impl Write for Sink {
        fn write(&mut self, data: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(data);
            Ok(data.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    /// A sink whose first write says it started, then waits until released: an output that cannot
    /// keep up.
    struct StalledWriter {
        sink: Sink,
        entered: Option<flume::Sender<()>>,
        release: flume::Receiver<()>,
    }

    impl Write for StalledWriter {
        fn write(&mut self, data: &[u8]) -> io::Result<usize> {
            if let Some(entered) = self.entered.take() {
                entered.send(()).unwrap();
                self.release.recv().unwrap();
            }
            self.sink.write(data)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_stalled_writer_costs_lines_not_time() {
        let sink = Sink::default();
        let (entered_tx, entered) = flume::bounded(1);
        let (release, release_rx) = flume::bounded(1);
        let writer = StalledWriter {
            sink: sink.clone(),
            entered: Some(entered_tx),
            release: release_rx,
        };
        let log = AccessLog::spawn(Box::new(writer), AccessLogFormat::Json, 1, 1).unwrap();
        let mut core = log.core_writer();

        // Batch 1 is taken by the writer, which then stalls; batch 2 fills the queue.
        core.log(&record());
        core.flush();
        entered.recv_timeout(Duration::from_secs(10)).unwrap();
        core.log(&record());
        core.flush();
        assert_eq!(core.dropped_lines(), 0);

        // On another thread, so that blocking would be a failed test rather than a hung one.
        let (done_tx, done) = flume::bounded(1);
        let logger = std::thread::spawn(move || {
            let started = Instant::now();
            let (ptr, allocated) = (core.buf.as_ptr(), core.allocated);
            for _ in 0..1000 {
                core.log(&record());
                core.flush();
            }
            // Enough to pass the 64 KiB mark many times inside `log`.
            for _ in 0..5000 {
                core.log(&record());
            }
            core.flush();
            // The dropped batch's buffer is kept, not replaced by a new one.
            assert_eq!((core.buf.as_ptr(), core.allocated), (ptr, allocated));
            done_tx.send(started.elapsed()).unwrap();
            core
        });
        let elapsed = done.recv_timeout(Duration::from_secs(10));
        release.send(()).unwrap();
        // Released, a blocked logger finishes too; a failed assertion in it shows up here.
        let core = logger.join().unwrap();
        let elapsed = elapsed.expect("log/flush blocked on a stalled writer");
        assert!(elapsed < Duration::from_secs(2), "{elapsed:?}");
        assert_eq!(core.dropped_lines(), 6000);
        drop(core);
        log.shutdown();

        let written = sink.0.lock().unwrap();
        assert_eq!(written.split_inclusive(|&b| b == b'\n').count(), 2);
        assert_eq!(&written[..], [json(&record()), json(&record())].concat());
    }

    #[test]
    fn writes_after_shutdown_are_dropped_not_blocked() {
        let sink = Sink::default();
        let log = AccessLog::spawn(Box::new(sink.clone()), AccessLogFormat::Json, 1, 1).unwrap();
        let mut core = log.core_writer();
        core.log(&record());
        core.flush();
        // The core is still alive: shutdown must not wait for it (on another thread, so that
        // waiting would be a failed test rather than a hung one).
        let (done_tx, done) = flume::bounded(1);
        std::thread::spawn(move || {
            log.shutdown();
            done_tx.send(()).unwrap();
        });
        done.recv_timeout(Duration::from_secs(10))
            .expect("shutdown waited for a live CoreAccessLog");
        core.log(&record());
        core.flush();
        assert_eq!(core.dropped_lines(), 1);
        assert_eq!(&sink.0.lock().unwrap()[..], json(&record()));
    }

    #[test]
    fn steady_state_recycles_buffers() {
        let log = AccessLog::spawn(Box::new(Sink::default()), AccessLogFormat::Json, 1, 4).unwrap();
        let mut core = log.core_writer();
        let capacity = core.buf.capacity();
        for cycle in 0..50 {
            for _ in 0..20 {
                core.log(&record());
            }
            core.flush();
            // The buffer in use never regrew, and no recycled buffer is left unclaimed.
            assert_eq!(core.buf.capacity(), capacity);
            assert!(core.buf.is_empty());
            assert!(core.recycled.len() <= 1, "cycle {cycle}");
            // Wait until the writer has handed back every buffer the core does not hold (the
            // writer may even be done before `flush` looks for one to reuse).
            let deadline = Instant::now() + Duration::from_secs(10);
            while core.recycled.len() as u64 != core.allocated - 1 {
                assert!(
                    Instant::now() < deadline,
                    "the writer did not return the buffer"
                );
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        // At most two buffers take turns: the first, and one allocated while the first was away
        // (none if the writer was quick enough to hand the first straight back).
        assert!(core.allocated <= 2, "{} buffers allocated", core.allocated);
        assert_eq!(core.dropped_lines(), 0);
        drop(core);
        log.shutdown();
    }
}
