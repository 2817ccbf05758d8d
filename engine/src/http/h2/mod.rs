//! Downstream HTTP/2: one h2 or h2c client connection and its streams.
//!
//! Owns: the h2 server connection (hyperium `h2` over monoio through `monoio-compat`), its
//! settings and flood limits, the graceful GOAWAY on drain and on keep-alive idleness, and
//! spawning one task per stream ([`stream`]). Must not: route or forward (the stream task does),
//! or buffer beyond h2's own flow-control windows (bounded by `H2Settings`).
//!
//! Flood defences (RFC 9113 §10.5; all enforced by `h2`, configured here): rapid reset
//! (`max_pending_accept_reset_streams`, CVE-2023-44487), locally provoked resets
//! (`max_local_error_reset_streams`, CVE-2025-8671), CONTINUATION floods (the header list size
//! bound stops a header block however it is split, CVE-2024-27316), concurrent streams, and
//! SETTINGS/PING floods (`h2` answers them from bounded queues and closes the connection with
//! ENHANCE_YOUR_CALM when a peer outpaces it). A connection closed for abuse is counted in
//! `strait_h2_abuse_closes_total`; other connections on the core are unaffected because every
//! stream is its own task and the connection's IO is bounded by its windows.

pub(crate) mod fields;
pub(crate) mod io;
mod stream;
mod to_h1;
mod to_h2;
pub(crate) mod upstream;

use std::cell::Cell;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use h2::SendStream;
use monoio::io::{AsyncReadRent, AsyncWriteRent};
use tracing::debug;

use crate::context::CoreContext;
use crate::upstream::ConnectionGuard;

/// How often an h2 connection looks at the drain flag and its idleness.
const TICK: Duration = Duration::from_millis(250);
/// After a graceful GOAWAY with no stream left, how long the client gets to acknowledge it (h2
/// waits for the answer to its PING) before the connection is dropped: a client that never
/// answers must not keep it open.
const GOAWAY_GRACE: Duration = Duration::from_secs(5);

/// What every stream of one client connection shares.
pub(crate) struct H2Conn {
    pub ctx: Rc<CoreContext>,
    pub listener_index: usize,
    pub peer: SocketAddr,
    /// The client reached us over TLS (X-Forwarded-Proto).
    pub tls: bool,
    /// Streams whose task has not finished.
    pub active: Cell<usize>,
}

/// Serves h2c on a clear-text client socket whose first bytes (`prefix`, the preface) the
/// sniffer read.
pub(crate) async fn serve_h2c(
    guard: ConnectionGuard,
    client: monoio::net::TcpStream,
    prefix: Vec<u8>,
    peer: SocketAddr,
) {
    match io::PrefixedPoll::new(prefix, client) {
        Ok(io) => serve(guard, io, peer, false).await,
        Err((e, _)) => {
            debug!(client = %peer, error = %e, "cannot switch the socket to readiness mode")
        }
    }
}

/// Serves HTTP/2 on a monoio stream (h2 inside TLS), through the completion-mode adapter.
pub(crate) async fn serve_stream<S>(guard: ConnectionGuard, stream: S, peer: SocketAddr, tls: bool)
where
    S: AsyncReadRent + AsyncWriteRent + Unpin + 'static,
{
    // Boxed: the wrapper's armed futures point into it and outlive `poll_write`'s return; the
    // h2 connection holding it is moved after its handshake wrote, so the wrapper must stay put.
    let io = Box::new(monoio_compat::StreamWrapper::new(stream));
    serve(guard, io, peer, tls).await;
}

/// Serves HTTP/2 on `io`.
async fn serve<IO>(guard: ConnectionGuard, io: IO, peer: SocketAddr, tls: bool)
where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + 'static,
{
    let ctx = guard.context().clone();
    let listener_index = guard.listener_index();
    let Some(config) = ctx.config.listeners[listener_index].http.as_deref() else {
        return;
    };
    let s = &config.h2;
    let mut builder = h2::server::Builder::new();
    builder
        .initial_window_size(s.initial_stream_window)
        .initial_connection_window_size(s.initial_connection_window)
        .max_frame_size(s.max_frame_size)
        .max_concurrent_streams(s.max_concurrent_streams)
        // The HPACK-decoded header list (RFC 9113 §6.5.2): the same budget as an HTTP/1.1 head.
        .max_header_list_size(
            (config.limits.max_header_size + config.limits.max_request_line) as u32,
        )
        .max_pending_accept_reset_streams(s.max_pending_accept_reset_streams)
        .max_local_error_reset_streams(Some(s.max_local_error_reset_streams))
        .max_send_buffer_size(s.max_send_buffer);
    let counters = &ctx.stats.listeners[listener_index];
    let handshake = builder.handshake::<_, Bytes>(io);
    let mut conn = match monoio::time::timeout(config.timeouts.header_read, handshake).await {
        Ok(Ok(conn)) => conn,
        Ok(Err(e)) => {
            counters.client_errors.inc();
            debug!(client = %peer, error = %e, "h2 handshake failed");
            return;
        }
        Err(_) => {
            counters.client_errors.inc();
            debug!(client = %peer, "h2 handshake timed out");
            return;
        }
    };
    let shared = Rc::new(H2Conn {
        ctx: ctx.clone(),
        listener_index,
        peer,
        tls,
        active: Cell::new(0),
    });
    let keepalive = config.timeouts.keepalive;
    // Stream tasks may outlive their stream briefly (a reset is noticed at the task's next
    // step); past this many, new streams are refused, so resets cannot pile up upstream work.
    let max_tasks = (config.h2.max_concurrent_streams as usize)
        .saturating_mul(2)
        .max(16);
    let mut idle_since = Instant::now();
    let mut closing: Option<Instant> = None;
    let mut tick = std::pin::pin!(monoio::time::sleep(TICK));
    loop {
        monoio::select! {
            next = conn.accept() => match next {
                Some(Ok((request, mut respond))) => {
                    counters.h2_streams.inc();
                    if shared.active.get() >= max_tasks {
                        // Still busy with streams the client already gave up: refuse (the
                        // client may retry it, RFC 9113 §8.7).
                        counters.h2_abuse.inc();
                        respond.send_reset(h2::Reason::REFUSED_STREAM);
                        continue;
                    }
                    shared.active.set(shared.active.get() + 1);
                    monoio::spawn(stream::serve(shared.clone(), request, respond));
                }
                Some(Err(e)) => {
                    if e.reason() == Some(h2::Reason::ENHANCE_YOUR_CALM)
                        || e.is_go_away() && e.reason() == Some(h2::Reason::ENHANCE_YOUR_CALM)
                    {
                        counters.h2_abuse.inc();
                    } else if !e.is_io() {
                        counters.client_errors.inc();
                    }
                    debug!(client = %peer, error = %e, "h2 connection ended with an error");
                    break;
                }
                None => break,
            },
            _ = &mut tick => {
                tick.set(monoio::time::sleep(TICK));
                if shared.active.get() > 0 {
                    idle_since = Instant::now();
                }
                let idle = idle_since.elapsed() >= keepalive;
                match closing {
                    None if ctx.draining.get() || idle || ctx.superseded() => {
                        // GOAWAY with the last stream id: streams in flight finish, new ones
                        // are refused, and `accept` returns `None` once the last one is done.
                        // (A replaced configuration version: the client reconnects to the
                        // current one.)
                        conn.graceful_shutdown();
                        closing = Some(Instant::now());
                    }
                    Some(since)
                        if shared.active.get() == 0
                            && idle_since.elapsed() >= GOAWAY_GRACE
                            && since.elapsed() >= GOAWAY_GRACE =>
                    {
                        debug!(client = %peer, "h2 client did not acknowledge GOAWAY; closing");
                        break;
                    }
                    _ => {}
                }
            }
        }
    }
    drop(guard);
}

impl From<SendFailed> for crate::http::fault::Fault {
    /// A send toward the client failed (sends toward an upstream map their own errors).
    fn from(e: SendFailed) -> Self {
        match e {
            SendFailed::Reset => crate::http::fault::Fault::ClientGone,
            SendFailed::Timeout => crate::http::fault::Fault::UpstreamTimeout,
        }
    }
}

/// Why [`send_all`] stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SendFailed {
    /// The peer reset the stream or the connection went away.
    Reset,
    /// The peer's window stayed shut for the whole wait.
    Timeout,
}

/// Sends `data` on `send` as the peer's window allows; `end` ends the stream with the last
/// piece. Fails when the client reset the stream or the window stays shut for `wait`.
pub(crate) async fn send_all(
    send: &mut SendStream<Bytes>,
    mut data: Bytes,
    end: bool,
    wait: Duration,
) -> Result<(), SendFailed> {
    if data.is_empty() {
        return send.send_data(data, end).map_err(|_| SendFailed::Reset);
    }
    while !data.is_empty() {
        send.reserve_capacity(data.len());
        let capacity = std::future::poll_fn(|cx| send.poll_capacity(cx));
        let n = match monoio::time::timeout(wait, capacity).await {
            Ok(Some(Ok(n))) if n > 0 => n,
            Ok(Some(Ok(_))) => continue,
            Ok(_) => return Err(SendFailed::Reset),
            Err(_) => return Err(SendFailed::Timeout),
        };
        let piece = data.split_to(n.min(data.len()));
        send.send_data(piece, end && data.is_empty())
            .map_err(|_| SendFailed::Reset)?;
    }
    Ok(())
}
