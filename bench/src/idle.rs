//! The idle keep-alive scenario: open N connections through a proxy, make one request on each
//! (so an L7 proxy has set up its per-connection state), leave them idle, and report how much
//! the proxy's resident memory grew per connection.
//!
//! Owns: the connection set and the RSS arithmetic.
//! Must not: keep connections past the measurement (they close when it returns) or run longer
//! than its deadline.

use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::client;
use crate::procfs::group_rss_kib;

#[derive(Clone, Debug, PartialEq)]
pub struct Idle {
    pub conns: u32,
    pub rss_before_kib: u64,
    pub rss_after_kib: u64,
    pub per_conn_kib: f64,
    pub open_s: f64,
}

/// KiB per connection from two RSS readings (negative when the proxy freed memory).
pub fn per_conn_kib(before: u64, after: u64, conns: u32) -> f64 {
    if conns == 0 {
        return 0.0;
    }
    (after as f64 - before as f64) / f64::from(conns)
}

pub fn measure(port: u16, conns: u32, pgid: i32, deadline: Duration) -> Result<Idle, String> {
    let start = Instant::now();
    let rss_before_kib = group_rss_kib(pgid);
    if rss_before_kib == 0 {
        return Err(format!("no resident memory found for process group {pgid}"));
    }
    let mut open: Vec<TcpStream> = Vec::with_capacity(conns as usize);
    for i in 0..conns {
        if start.elapsed() > deadline || crate::procs::interrupted() {
            return Err(format!(
                "opened only {i} of {conns} connections within {}s",
                deadline.as_secs()
            ));
        }
        let mut s = client::connect(port, Duration::from_secs(5))
            .map_err(|e| format!("connection {i}: {e}"))?;
        let r = client::get(&mut s, "/small", false).map_err(|e| format!("connection {i}: {e}"))?;
        if r.status != 200 {
            return Err(format!("connection {i}: status {}", r.status));
        }
        open.push(s);
    }
    let open_s = start.elapsed().as_secs_f64();
    // Let the proxy finish any deferred work (upstream pool returns, timers) before reading RSS.
    std::thread::sleep(Duration::from_millis(1000));
    let rss_after_kib = group_rss_kib(pgid);
    drop(open);
    Ok(Idle {
        conns,
        rss_before_kib,
        rss_after_kib,
        per_conn_kib: per_conn_kib(rss_before_kib, rss_after_kib, conns),
        open_s,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_connection_arithmetic() {
        assert_eq!(per_conn_kib(1000, 3000, 1000), 2.0);
        assert_eq!(per_conn_kib(3000, 1000, 1000), -2.0);
        assert_eq!(per_conn_kib(1, 2, 0), 0.0);
    }
}
