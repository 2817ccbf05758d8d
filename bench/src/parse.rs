//! Parsers for the load generators' output: wrk (`--latency` text), h2load (text) and iperf3
//! (`-J` JSON).
//!
//! Owns: turning tool output into numbers, and saying precisely why when it cannot.
//! Must not: run the tools or panic on any input (every lookup returns a `ParseError`).

use thiserror::Error;

#[derive(Debug, Error, PartialEq)]
#[error("{tool} output: {msg}")]
pub struct ParseError {
    pub tool: &'static str,
    pub msg: String,
}

fn err(tool: &'static str, msg: impl Into<String>) -> ParseError {
    ParseError {
        tool,
        msg: msg.into(),
    }
}

/// A duration as printed by wrk/h2load (`463.84us`, `1.02ms`, `2.00s`, `1.50m`), in milliseconds.
pub fn duration_ms(s: &str) -> Option<f64> {
    let s = s.trim();
    let split = s.find(|c: char| c.is_ascii_alphabetic())?;
    let (num, unit) = s.split_at(split);
    let v: f64 = num.parse().ok()?;
    let factor = match unit {
        "ns" => 1e-6,
        "us" => 1e-3,
        "ms" => 1.0,
        "s" => 1e3,
        "m" => 60e3,
        "h" => 3600e3,
        _ => return None,
    };
    v.is_finite().then_some(v * factor)
}

fn first_line(text: &str) -> String {
    let line = text
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("(empty)");
    line.chars().take(160).collect()
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Percentiles {
    pub p50_ms: Option<f64>,
    pub p75_ms: Option<f64>,
    pub p90_ms: Option<f64>,
    pub p99_ms: Option<f64>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Wrk {
    pub requests: u64,
    pub duration_s: f64,
    pub rps: f64,
    pub latency: Percentiles,
    pub mean_ms: Option<f64>,
    pub max_ms: Option<f64>,
    /// connect + read + write + timeout socket errors.
    pub socket_errors: u64,
    pub non_2xx: u64,
}

impl Wrk {
    pub fn errors(&self) -> u64 {
        self.socket_errors + self.non_2xx
    }
}

/// Parses `wrk --latency` output.
pub fn wrk(text: &str) -> Result<Wrk, ParseError> {
    const T: &str = "wrk";
    let mut rps = None;
    let mut requests = None;
    let mut latency = Percentiles::default();
    let mut mean_ms = None;
    let mut max_ms = None;
    let mut socket_errors = 0;
    let mut non_2xx = 0;
    let mut in_dist = false;
    for line in text.lines() {
        let l = line.trim();
        let words: Vec<&str> = l.split_whitespace().collect();
        if let Some(v) = l.strip_prefix("Requests/sec:") {
            rps = Some(
                v.trim()
                    .parse::<f64>()
                    .map_err(|_| err(T, format!("bad Requests/sec {:?}", v.trim())))?,
            );
        } else if words.len() >= 4 && words[1] == "requests" && words[2] == "in" {
            let n: u64 = words[0]
                .parse()
                .map_err(|_| err(T, format!("bad request count in {l:?}")))?;
            let d = duration_ms(words[3].trim_end_matches(','))
                .ok_or_else(|| err(T, format!("bad duration in {l:?}")))?;
            requests = Some((n, d / 1e3));
        } else if words.first() == Some(&"Latency") && words.len() >= 4 {
            mean_ms = duration_ms(words[1]);
            max_ms = duration_ms(words[3]);
        } else if l == "Latency Distribution" {
            in_dist = true;
        } else if in_dist && words.len() == 2 && words[0].ends_with('%') {
            let v = duration_ms(words[1]);
            match words[0] {
                "50%" => latency.p50_ms = v,
                "75%" => latency.p75_ms = v,
                "90%" => latency.p90_ms = v,
                "99%" => latency.p99_ms = v,
                _ => {}
            }
        } else if let Some(rest) = l.strip_prefix("Socket errors:") {
            in_dist = false;
            for part in rest.split(',') {
                let n = part
                    .split_whitespace()
                    .nth(1)
                    .and_then(|n| n.parse::<u64>().ok())
                    .ok_or_else(|| err(T, format!("bad socket error counts {rest:?}")))?;
                socket_errors += n;
            }
        } else if let Some(rest) = l.strip_prefix("Non-2xx or 3xx responses:") {
            non_2xx = rest
                .trim()
                .parse()
                .map_err(|_| err(T, format!("bad Non-2xx count {rest:?}")))?;
        } else if !words.is_empty() && in_dist && !words[0].ends_with('%') {
            in_dist = false;
        }
    }
    let (Some(rps), Some((requests, duration_s))) = (rps, requests) else {
        return Err(err(
            T,
            format!("no Requests/sec summary; it said: {}", first_line(text)),
        ));
    };
    Ok(Wrk {
        requests,
        duration_s,
        rps,
        latency,
        mean_ms,
        max_ms,
        socket_errors,
        non_2xx,
    })
}

#[derive(Clone, Debug, PartialEq)]
pub struct H2load {
    pub rps: f64,
    pub duration_s: f64,
    pub total: u64,
    pub succeeded: u64,
    pub failed: u64,
    pub errored: u64,
    pub timeout: u64,
    pub status_2xx: u64,
    pub status_other: u64,
    /// "time for request": min, max, mean (h2load prints no percentiles).
    pub min_ms: Option<f64>,
    pub max_ms: Option<f64>,
    pub mean_ms: Option<f64>,
}

impl H2load {
    pub fn errors(&self) -> u64 {
        self.failed + self.errored + self.timeout + self.status_other
    }
}

/// Numbers before the given labels in a line like `12 total, 12 started, 0 failed`.
fn labelled(rest: &str, label: &str) -> Option<u64> {
    rest.split(',').find_map(|part| {
        let mut w = part.split_whitespace();
        let n = w.next()?;
        (w.next()? == label).then(|| n.parse().ok()).flatten()
    })
}

/// Parses h2load's text summary.
pub fn h2load(text: &str) -> Result<H2load, ParseError> {
    const T: &str = "h2load";
    let mut fin = None;
    let mut req = None;
    let mut status = None;
    let mut times = (None, None, None);
    for line in text.lines() {
        let l = line.trim();
        if let Some(rest) = l.strip_prefix("finished in ") {
            let parts: Vec<&str> = rest.split(',').map(str::trim).collect();
            let d = parts
                .first()
                .and_then(|d| duration_ms(d))
                .ok_or_else(|| err(T, format!("bad duration in {l:?}")))?;
            let rps = parts
                .get(1)
                .and_then(|p| p.strip_suffix(" req/s"))
                .and_then(|p| p.trim().parse::<f64>().ok())
                .ok_or_else(|| err(T, format!("bad req/s in {l:?}")))?;
            fin = Some((d / 1e3, rps));
        } else if let Some(rest) = l.strip_prefix("requests:") {
            let get = |label| {
                labelled(rest, label).ok_or_else(|| err(T, format!("no {label:?} in {l:?}")))
            };
            req = Some((
                get("total")?,
                get("succeeded")?,
                get("failed")?,
                get("errored")?,
                get("timeout")?,
            ));
        } else if let Some(rest) = l.strip_prefix("status codes:") {
            let get = |label| {
                labelled(rest, label).ok_or_else(|| err(T, format!("no {label:?} in {l:?}")))
            };
            status = Some((get("2xx")?, get("3xx")? + get("4xx")? + get("5xx")?));
        } else if let Some(rest) = l.strip_prefix("time for request:") {
            let w: Vec<&str> = rest.split_whitespace().collect();
            let at = |i: usize| w.get(i).and_then(|v| duration_ms(v));
            times = (at(0), at(1), at(2));
        }
    }
    let Some((duration_s, rps)) = fin else {
        return Err(err(
            T,
            format!("no \"finished in\" summary; it said: {}", first_line(text)),
        ));
    };
    let (total, succeeded, failed, errored, timeout) =
        req.ok_or_else(|| err(T, "no \"requests:\" line"))?;
    let (status_2xx, status_other) = status.ok_or_else(|| err(T, "no \"status codes:\" line"))?;
    Ok(H2load {
        rps,
        duration_s,
        total,
        succeeded,
        failed,
        errored,
        timeout,
        status_2xx,
        status_other,
        min_ms: times.0,
        max_ms: times.1,
        mean_ms: times.2,
    })
}

#[derive(Clone, Debug, PartialEq)]
pub struct Iperf3 {
    pub gbit_per_s: f64,
    pub bytes: u64,
    pub duration_s: f64,
    pub retransmits: Option<u64>,
}

/// Parses `iperf3 -c ... -J`: the receiver's rate is the result.
pub fn iperf3(text: &str) -> Result<Iperf3, ParseError> {
    const T: &str = "iperf3";
    let v: serde_json::Value = serde_json::from_str(text)
        .map_err(|e| err(T, format!("not JSON ({e}); it said: {}", first_line(text))))?;
    if let Some(e) = v.get("error").and_then(|e| e.as_str()) {
        return Err(err(T, format!("error: {e}")));
    }
    let recv = v
        .pointer("/end/sum_received")
        .ok_or_else(|| err(T, "no end.sum_received"))?;
    let bps = recv
        .get("bits_per_second")
        .and_then(|b| b.as_f64())
        .ok_or_else(|| err(T, "no end.sum_received.bits_per_second"))?;
    let bytes = recv
        .get("bytes")
        .and_then(|b| b.as_u64())
        .ok_or_else(|| err(T, "no end.sum_received.bytes"))?;
    let duration_s = recv
        .get("seconds")
        .and_then(|b| b.as_f64())
        .ok_or_else(|| err(T, "no end.sum_received.seconds"))?;
    Ok(Iperf3 {
        gbit_per_s: bps / 1e9,
        bytes,
        duration_s,
        retransmits: v
            .pointer("/end/sum_sent/retransmits")
            .and_then(|r| r.as_u64()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> String {
        let path = format!("{}/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    #[test]
    fn durations() {
        assert_eq!(duration_ms("463.00us"), Some(0.463));
        assert_eq!(duration_ms("1.50ms"), Some(1.5));
        assert_eq!(duration_ms("2.00s"), Some(2000.0));
        assert_eq!(duration_ms("1.00m"), Some(60000.0));
        assert_eq!(duration_ms("12"), None);
        assert_eq!(duration_ms("-nanus"), None);
        assert_eq!(duration_ms("1.0xs"), None);
        assert_eq!(duration_ms(""), None);
    }

    #[test]
    fn wrk_keepalive_small() {
        let w = wrk(&fixture("wrk-small.txt")).unwrap();
        assert!(w.rps > 1000.0, "{w:?}");
        assert!(w.requests > 1000);
        assert!((w.duration_s - 1.0).abs() < 0.2);
        let p = &w.latency;
        let (p50, p75, p90, p99) = (
            p.p50_ms.unwrap(),
            p.p75_ms.unwrap(),
            p.p90_ms.unwrap(),
            p.p99_ms.unwrap(),
        );
        assert!(p50 > 0.0 && p50 <= p75 && p75 <= p90 && p90 <= p99, "{p:?}");
        assert!(w.mean_ms.unwrap() > 0.0 && w.max_ms.unwrap() >= p99);
        assert_eq!(w.errors(), 0);
        // Requests/sec agrees with requests over duration within wrk's rounding.
        assert!((w.rps - w.requests as f64 / w.duration_s).abs() / w.rps < 0.02);
    }

    #[test]
    fn wrk_with_errors_and_non_2xx() {
        let w = wrk(&fixture("wrk-404-close.txt")).unwrap();
        assert!(w.non_2xx > 0, "{w:?}");
        assert_eq!(w.non_2xx, w.requests);
        assert!(w.errors() >= w.non_2xx);
    }

    #[test]
    fn wrk_socket_errors_when_the_origin_dies() {
        let w = wrk(&fixture("wrk-origin-killed.txt")).unwrap();
        assert_eq!(w.socket_errors, 17 + 1794);
        assert_eq!(w.non_2xx, 0);
        assert_eq!(w.requests, 56094);
        assert_eq!(w.latency.p99_ms, Some(0.425));
    }

    #[test]
    fn wrk_refused_is_an_error() {
        let e = wrk(&fixture("wrk-refused.txt")).unwrap_err();
        assert!(e.msg.contains("no Requests/sec"), "{e}");
        assert!(wrk("").is_err());
        assert!(wrk("Requests/sec: abc\n").is_err());
        assert!(wrk("  10 requests in 1.00s, 1KB read\nRequests/sec: 10\n").is_ok());
        assert!(wrk("  Socket errors: connect x\n").is_err());
    }

    #[test]
    fn h2load_success() {
        let h = h2load(&fixture("h2load-small.txt")).unwrap();
        assert!(h.rps > 1000.0, "{h:?}");
        assert_eq!(h.succeeded, h.total);
        assert_eq!(h.status_2xx, h.succeeded);
        assert_eq!(h.errors(), 0);
        let (min, mean, max) = (h.min_ms.unwrap(), h.mean_ms.unwrap(), h.max_ms.unwrap());
        assert!(min <= mean && mean <= max);
    }

    #[test]
    fn h2load_connection_refused_counts_failures() {
        let h = h2load(&fixture("h2load-refused.txt")).unwrap();
        assert_eq!(h.succeeded, 0);
        assert!(h.errors() > 0, "{h:?}");
        assert!(h2load("").is_err());
        assert!(h2load("finished in 1.00s, x req/s, 0B/s\n").is_err());
        assert!(h2load("finished in 1.00s, 5.00 req/s, 0B/s\n").is_err());
    }

    #[test]
    fn iperf3_json() {
        let r = iperf3(&fixture("iperf3.json")).unwrap();
        assert!(r.gbit_per_s > 0.1, "{r:?}");
        assert!(r.bytes > 0 && r.duration_s > 0.5);
        assert!(r.retransmits.is_some());
    }

    #[test]
    fn iperf3_error_and_garbage() {
        let e = iperf3(&fixture("iperf3-refused.json")).unwrap_err();
        assert!(e.msg.starts_with("error: "), "{e}");
        assert!(iperf3("not json").is_err());
        assert!(iperf3("{}").is_err());
        assert!(iperf3(r#"{"end":{"sum_received":{"bits_per_second":"x"}}}"#).is_err());
    }
}
