//! The first moments of a connection on a sniffing or TLS listener: what does it speak?
//!
//! Owns: reading the first bytes under the sniff deadline and classifying them
//! (`strait_protocols::sniff`), TLS passthrough by SNI (`strait_protocols::tls_hello`), the TLS
//! handshake (with the sniffed bytes replayed to rustls), choosing the inner protocol by ALPN or
//! by sniffing again inside TLS, and handing the connection to its handler: the HTTP/1.1 proxy,
//! the HTTP/2 server, or the TCP relay. Counts each connection once by what it turned out to be.
//! Must not: busy-poll (`MSG_PEEK` after readiness spins while a ClientHello trickles in), or
//! hold more than the first bytes (at most one ClientHello) before a handler takes over.

use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use monoio::net::TcpStream;
use strait_protocols::relay::sys;
use strait_protocols::replay::Replay;
use strait_protocols::sniff::{self, Sniffed, Verdict};
use strait_protocols::tls_hello::{self, MAX_CLIENT_HELLO};
use tracing::debug;

use crate::client_stream::ClientStream;
use crate::config::{HostMatch, ListenerProtocol, TlsListenerConfig};
use crate::stats::Detected;
use crate::upstream::ConnectionGuard;

/// Serves a connection accepted on a listener that sniffs or terminates TLS.
pub(crate) async fn serve(guard: ConnectionGuard, mut client: TcpStream, peer: SocketAddr) {
    let ctx = guard.context().clone();
    let li = guard.listener_index();
    let listener = &ctx.config.listeners[li];
    let accepted = listener.accepted();
    let counters = &ctx.stats.listeners[li];
    let _ = client.set_nodelay(true);
    let mut first = Vec::with_capacity(1024);
    let what = match &listener.sniff {
        Some(s) => match sniff_first(&mut client, &mut first, s.timeout).await {
            Some(what) => what,
            // Closed (or failed) before saying anything.
            None => return,
        },
        None => Sniffed::Tls,
    };
    match what {
        Sniffed::Tls if accepted.tls => {
            let Some(tls) = listener.tls.as_deref() else {
                return;
            };
            serve_tls(guard, client, peer, first, tls).await;
        }
        Sniffed::Http2 if accepted.h2c => {
            counters.detected[Detected::H2c as usize].inc();
            crate::http::h2::serve_h2c(guard, client, first, peer).await;
        }
        Sniffed::Http1 if accepted.http1 => {
            counters.detected[Detected::Http1 as usize].inc();
            let _ = sys::disable_quickack(client.as_raw_fd());
            crate::http::proxy::serve_stream(guard, client, peer, first).await;
        }
        _ if accepted.tcp => {
            counters.detected[Detected::Tcp as usize].inc();
            let cluster = listener.l4_cluster();
            crate::tcp_proxy::serve_to(guard, client, peer, cluster, first).await;
        }
        other => {
            counters.sniff_refused.inc();
            debug!(listener = %listener.name, client = %peer, sniffed = ?other,
                "protocol not accepted on this listener; closing");
            // Unread input would turn our close into a reset anyway; say so at once.
            let _ = sys::set_linger_zero(client.as_raw_fd());
        }
    }
}

/// Reads until the first bytes (in clear text, or inside TLS) are classified. A client that
/// says nothing within `wait` is taken for a server-speaks-first protocol (`Tcp`). `None`: it
/// closed first.
async fn sniff_first<S: ClientStream>(
    client: &mut S,
    buf: &mut Vec<u8>,
    wait: Duration,
) -> Option<Sniffed> {
    let deadline = Instant::now() + wait;
    let mut canceller = None;
    loop {
        if let Verdict::Known(what) = sniff::classify(buf) {
            return Some(what);
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Some(Sniffed::Tcp);
        }
        // A read that survives the deadline: bytes that arrive as it passes are kept and
        // replayed, never lost.
        match client.read_keeping(buf, left, &mut canceller).await {
            Err(_) => return Some(Sniffed::Tcp),
            Ok(Ok(0)) | Ok(Err(_)) => {
                // Closed after a few unclassifiable bytes: relay them as TCP (half-close).
                return (!buf.is_empty()).then_some(Sniffed::Tcp);
            }
            Ok(Ok(_)) => {}
        }
    }
}

async fn serve_tls(
    guard: ConnectionGuard,
    mut client: TcpStream,
    peer: SocketAddr,
    mut first: Vec<u8>,
    tls: &TlsListenerConfig,
) {
    let ctx = guard.context().clone();
    let li = guard.listener_index();
    let listener = &ctx.config.listeners[li];
    let counters = &ctx.stats.listeners[li];
    let deadline = Instant::now() + tls.handshake_timeout;
    if !tls.passthrough.is_empty() {
        // The SNI decides before any TLS work: read the whole ClientHello.
        let mut canceller = None;
        let hello = loop {
            match hello_progress(&first) {
                // Parsing reassembles the records: done only once the bytes can be complete, so
                // a hello trickled in tiny records costs linear, not quadratic, work.
                HelloProgress::Maybe => match tls_hello::parse_client_hello(&first) {
                    Ok(Some(hello)) => break Some(hello),
                    Ok(None) if first.len() < 2 * MAX_CLIENT_HELLO => {}
                    _ => break None,
                },
                HelloProgress::NotYet => {}
                // Not a hello a passthrough route could take: rustls decides what it is.
                HelloProgress::Refused => break None,
            }
            let left = deadline.saturating_duration_since(Instant::now());
            match client.read_keeping(&mut first, left, &mut canceller).await {
                Ok(Ok(n)) if n > 0 => {}
                Err(_) => {
                    counters.tls_handshake_failures[crate::tls::HandshakeFailure::Timeout.index()]
                        .inc();
                    return;
                }
                _ => {
                    counters.tls_handshake_failures
                        [crate::tls::HandshakeFailure::ClientClosed.index()]
                    .inc();
                    return;
                }
            }
        };
        let sni = hello.as_ref().and_then(|h| h.server_name.as_deref());
        if let Some(route) = sni.and_then(|name| {
            tls.passthrough
                .iter()
                .find(|p| host_matches(&p.server_name, name))
        }) {
            counters.tls_passthrough.inc();
            counters.detected[Detected::Tcp as usize].inc();
            crate::tcp_proxy::serve_to(guard, client, peer, route.cluster, first).await;
            return;
        }
    }
    let Some(config) = ctx.tls_config(li) else {
        return;
    };
    let left = deadline.saturating_duration_since(Instant::now());
    let mut tls_client = match crate::tls_stream::accept(config, client, first, left).await {
        Ok(stream) => stream,
        Err(reason) => {
            counters.tls_handshake_failures[reason.index()].inc();
            debug!(listener = %listener.name, client = %peer, reason = reason.label(),
                "TLS handshake failed");
            return;
        }
    };
    counters.tls_handshakes.inc();
    let accepted = listener.accepted();
    let alpn = tls_client.alpn();
    match alpn.as_deref() {
        Some(b"h2") if listener.http.is_some() => {
            counters.detected[Detected::H2 as usize].inc();
            crate::http::h2::serve_stream(guard, tls_client, peer, true).await;
        }
        Some(b"http/1.1") if listener.http.is_some() => {
            counters.detected[Detected::Https1 as usize].inc();
            crate::http::proxy::serve_stream(guard, tls_client, peer, Vec::new()).await;
        }
        _ => match listener.protocol {
            ListenerProtocol::Http => {
                // No ALPN: HTTP/1.1 (RFC 9112 §9.3 clients without ALPN speak it).
                counters.detected[Detected::Https1 as usize].inc();
                crate::http::proxy::serve_stream(guard, tls_client, peer, Vec::new()).await;
            }
            ListenerProtocol::Auto => {
                // Sniff again inside TLS.
                let mut inner = Vec::with_capacity(1024);
                let wait = listener
                    .sniff
                    .map_or(crate::config::tls::defaults::SNIFF_TIMEOUT, |s| s.timeout);
                let what = sniff_first(&mut tls_client, &mut inner, wait).await;
                match what {
                    Some(Sniffed::Http1) if listener.http.is_some() => {
                        counters.detected[Detected::Https1 as usize].inc();
                        crate::http::proxy::serve_stream(guard, tls_client, peer, inner).await;
                    }
                    Some(Sniffed::Http2) if listener.http.is_some() => {
                        counters.detected[Detected::H2 as usize].inc();
                        let stream = Replay::new(inner, tls_client);
                        crate::http::h2::serve_stream(guard, stream, peer, true).await;
                    }
                    Some(_) if accepted.tcp => {
                        counters.detected[Detected::TlsTcp as usize].inc();
                        let cluster = listener.l4_cluster();
                        crate::tcp_proxy::serve_tls_to(guard, tls_client, peer, cluster, inner)
                            .await;
                    }
                    None => {}
                    Some(_) => {
                        counters.sniff_refused.inc();
                    }
                }
            }
            ListenerProtocol::Tcp | ListenerProtocol::Udp => {
                counters.detected[Detected::TlsTcp as usize].inc();
                let cluster = listener.l4_cluster();
                crate::tcp_proxy::serve_tls_to(guard, tls_client, peer, cluster, Vec::new()).await;
            }
        },
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum HelloProgress {
    /// Fewer bytes than the hello's own length: no point parsing yet.
    NotYet,
    /// Possibly complete: parse.
    Maybe,
    /// Split into more records than any real client uses, or not a hello at all.
    Refused,
}

/// Most records a ClientHello may be split into for passthrough routing (real clients use one,
/// two for very large post-quantum key shares).
const MAX_HELLO_RECORDS: usize = 16;

/// Whether the buffered TLS bytes can hold the whole ClientHello: the handshake header (the
/// first 4 payload bytes, possibly split over records) gives the hello's length, and every
/// record header on the way is counted.
fn hello_progress(bytes: &[u8]) -> HelloProgress {
    let (mut at, mut payload, mut records) = (0usize, 0usize, 0usize);
    let (mut header, mut got) = ([0u8; 4], 0usize);
    let mut need: Option<usize> = None;
    loop {
        if let Some(n) = need {
            if payload >= 4 + n {
                return if bytes.len() >= at {
                    HelloProgress::Maybe
                } else {
                    HelloProgress::NotYet
                };
            }
        }
        let Some(h) = bytes.get(at..at + 5) else {
            return HelloProgress::NotYet;
        };
        records += 1;
        if records > MAX_HELLO_RECORDS || h[0] != 0x16 {
            return HelloProgress::Refused;
        }
        let len = (h[3] as usize) << 8 | h[4] as usize;
        let body = &bytes[(at + 5).min(bytes.len())..(at + 5 + len).min(bytes.len())];
        for &b in body.iter().take(4 - got) {
            header[got] = b;
            got += 1;
        }
        if got == 4 && need.is_none() {
            if header[0] != 1 {
                return HelloProgress::Refused;
            }
            need =
                Some((header[1] as usize) << 16 | (header[2] as usize) << 8 | header[3] as usize);
        }
        payload += len;
        at += 5 + len;
    }
}

/// SNI (already lowercase, no trailing dot) against a passthrough route's name.
fn host_matches(m: &HostMatch, name: &str) -> bool {
    match m {
        HostMatch::Any => true,
        HostMatch::Exact(h) => h == name,
        HostMatch::Suffix(s) => name.len() > s.len() && name.ends_with(s.as_str()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passthrough_names_match_exactly_or_by_suffix() {
        let exact = HostMatch::Exact("db.example.com".into());
        let suffix = HostMatch::Suffix(".example.com".into());
        assert!(host_matches(&exact, "db.example.com"));
        assert!(!host_matches(&exact, "x.db.example.com"));
        assert!(host_matches(&suffix, "a.example.com"));
        assert!(host_matches(&suffix, "a.b.example.com"));
        assert!(!host_matches(&suffix, "example.com"));
        assert!(host_matches(&HostMatch::Any, "anything"));
    }

    #[test]
    fn hello_progress_waits_for_the_whole_hello_and_refuses_tiny_records() {
        // One record carrying a 10-byte hello (handshake type 1, length 10).
        let mut one = vec![0x16, 3, 1, 0, 14, 1, 0, 0, 10];
        assert_eq!(hello_progress(&one[..4]), HelloProgress::NotYet);
        assert_eq!(hello_progress(&one), HelloProgress::NotYet);
        one.extend_from_slice(&[0; 10]);
        assert_eq!(hello_progress(&one), HelloProgress::Maybe);
        // The same hello in 1-byte records: refused past MAX_HELLO_RECORDS.
        let mut payload = vec![1u8, 0, 0, 20];
        payload.extend_from_slice(&[0; 20]);
        let tiny: Vec<u8> = payload
            .iter()
            .flat_map(|&b| [0x16, 3, 1, 0, 1, b])
            .collect();
        assert_eq!(hello_progress(&tiny), HelloProgress::Refused);
        // Two records: waits for the second.
        let mut two = vec![0x16, 3, 1, 0, 7, 1, 0, 0, 10, 0, 0, 0];
        assert_eq!(hello_progress(&two), HelloProgress::NotYet);
        two.extend_from_slice(&[0x16, 3, 1, 0, 7, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(hello_progress(&two), HelloProgress::Maybe);
        // Not a ClientHello.
        assert_eq!(
            hello_progress(&[0x16, 3, 1, 0, 4, 2, 0, 0, 0]),
            HelloProgress::Refused
        );
    }
}
