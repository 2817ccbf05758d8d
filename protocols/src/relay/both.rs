//! The two-way copy of a byte tunnel over owned-buffer streams: a WebSocket tunnel after its
//! `101`, and TLS-terminated TCP, where the plaintext comes out of rustls and cannot be spliced.
//!
//! Owns: copying both ways at once between two split streams, the bytes each side sent before the
//! tunnel existed (sent first), half-closes (an EOF one way shuts the other side's sending down),
//! the idle limit, and resets when the tunnel is cut. Must not: look inside the bytes, cancel a
//! read that may have completed (its bytes would be lost), allocate per read (each direction has
//! one lent buffer), or know where its buffers come from or where bytes are counted (the caller
//! passes `give_back` and `count`).

use std::cell::Cell;
use std::io;
use std::os::fd::RawFd;
use std::time::{Duration, Instant};

use monoio::io::{AsyncReadRent, AsyncWriteRent, AsyncWriteRentExt};

use super::{sys, Direction};

/// How a two-way copy ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BothEnd {
    /// Both directions reached EOF.
    Closed,
    /// A read or write failed: both sides were reset.
    Failed,
    /// Nothing moved for the idle limit: both sides were reset.
    Idle,
}

/// Copies both ways at once between a client's halves and an upstream's, each direction first
/// sending what its buffer already holds (`pending`: to the upstream, to the client; lent
/// buffers, given back to the core), until both reach EOF, one fails, or nothing moves for
/// `idle`. Each buffer is handed to `give_back` once its direction ends. A tunnel that did not
/// close cleanly is cut with resets on both sockets (`fds`:
/// client, upstream), so neither peer takes it for a clean close. `count` sees every byte moved.
#[allow(clippy::too_many_arguments)]
pub async fn copy_both<CR, CW, UR, UW>(
    give_back: &dyn Fn(Vec<u8>),
    (client_read, client_write): (CR, CW),
    (upstream_read, upstream_write): (UR, UW),
    (client_fd, upstream_fd): (RawFd, RawFd),
    (to_upstream, to_client): (Vec<u8>, Vec<u8>),
    idle: Duration,
    count: &dyn Fn(Direction, usize),
) -> BothEnd
where
    CR: AsyncReadRent,
    CW: AsyncWriteRent,
    UR: AsyncReadRent,
    UW: AsyncWriteRent,
{
    let last_active = Cell::new(Instant::now());
    let end = {
        let mut up = std::pin::pin!(pump(
            client_read,
            upstream_write,
            to_upstream,
            Direction::ClientToUpstream,
            &last_active,
            count,
        ));
        let mut down = std::pin::pin!(pump(
            upstream_read,
            client_write,
            to_client,
            Direction::UpstreamToClient,
            &last_active,
            count,
        ));
        let mut idle = std::pin::pin!(idle_for(idle, &last_active));
        let mut up_done = false;
        let mut down_done = false;
        loop {
            let (done, buf) = monoio::select! {
                r = &mut up, if !up_done => {
                    up_done = true;
                    r
                }
                r = &mut down, if !down_done => {
                    down_done = true;
                    r
                }
                _ = &mut idle => break BothEnd::Idle,
            };
            give_back(buf);
            if done.is_err() {
                break BothEnd::Failed;
            }
            if up_done && down_done {
                break BothEnd::Closed;
            }
        }
    };
    // The halves were dropped with the futures above: both sockets are closed now (after the
    // resets below take effect on close).
    if end != BothEnd::Closed {
        let _ = sys::set_linger_zero(client_fd);
        let _ = sys::set_linger_zero(upstream_fd);
    }
    end
}

/// Copies one direction: first what is already in `buf`, then every read, until EOF (then shuts
/// the writer down, so the half-close reaches the other side) or an error. Returns the buffer.
async fn pump<R: AsyncReadRent, W: AsyncWriteRent>(
    mut from: R,
    mut to: W,
    mut buf: Vec<u8>,
    direction: Direction,
    last_active: &Cell<Instant>,
    count: &dyn Fn(Direction, usize),
) -> (io::Result<()>, Vec<u8>) {
    loop {
        if !buf.is_empty() {
            let n = buf.len();
            let (res, b) = to.write_all(buf).await;
            buf = b;
            buf.clear();
            if let Err(e) = res {
                return (Err(e), buf);
            }
            last_active.set(Instant::now());
            count(direction, n);
        }
        // `read` fills the buffer from its start, up to its capacity.
        let (res, b) = from.read(buf).await;
        buf = b;
        match res {
            Ok(0) => return (to.shutdown().await, buf),
            Ok(_) => last_active.set(Instant::now()),
            Err(e) => return (Err(e), buf),
        }
    }
}

/// Returns once nothing moved either way for `limit`.
async fn idle_for(limit: Duration, last_active: &Cell<Instant>) {
    loop {
        let since = last_active.get().elapsed();
        if since >= limit {
            return;
        }
        monoio::time::sleep(limit - since).await;
    }
}
