//! The L4 relay: both directions of one proxied TCP connection, with half-close and idle timeout.
//!
//! Owns: moving bytes client ⇄ upstream until both directions reach EOF, one fails, or nothing has
//! moved for the idle timeout; choosing splice (zero-copy through a pooled pipe per direction) or a
//! buffered copy when splice cannot be used. EOF in one direction half-closes the other socket
//! (`shutdown(SHUT_WR)`) while the opposite direction keeps flowing. A failure aborts both sockets
//! with RST, so neither peer mistakes a cut stream for a complete one.
//! Must not: connect, pick endpoints, or touch stats registries — progress is reported through
//! [`RelayObserver`], and the caller owns and closes the sockets.

mod pipe;
mod pump;
pub mod sys;

use std::cell::Cell;
use std::io;
use std::os::fd::AsRawFd;
use std::pin::pin;
use std::time::{Duration, Instant};

use monoio::net::TcpStream;

pub use pipe::{BufferPool, Pipe, PipePool};
pub use pump::PumpError;
use pump::{Ends, SpliceResult};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    ClientToUpstream = 0,
    UpstreamToClient = 1,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Client,
    Upstream,
}

impl Side {
    pub fn as_str(self) -> &'static str {
        match self {
            Side::Client => "client",
            Side::Upstream => "upstream",
        }
    }
}

/// Live progress, called after every chunk written (for byte counters that move while a long
/// connection is still open).
pub trait RelayObserver {
    fn on_bytes(&self, direction: Direction, n: usize);
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transfer {
    Splice,
    Copy,
}

#[derive(Debug, Clone)]
pub struct RelayOptions {
    pub transfer: Transfer,
    pub idle_timeout: Duration,
}

/// The per-core pools a relay borrows from.
pub struct RelayPools {
    pub pipes: PipePool,
    pub buffers: BufferPool,
}

#[derive(Debug)]
pub enum RelayEnd {
    /// Both directions reached EOF and were half-closed in turn.
    Completed,
    /// No byte moved in either direction for the idle timeout.
    IdleTimeout,
    /// A socket failed; both were aborted.
    Failed(PumpError),
}

#[derive(Debug)]
pub struct RelayOutcome {
    pub end: RelayEnd,
    pub client_to_upstream: u64,
    pub upstream_to_client: u64,
    /// Whether any direction used splice (false: copy was configured or splice was unavailable).
    pub spliced: bool,
}

/// Shared by both directions of one connection (same task, so plain cells).
pub(crate) struct Progress {
    last_activity: Cell<Instant>,
    bytes: [Cell<u64>; 2],
}

impl Progress {
    fn record(&self, direction: Direction, n: usize) {
        let b = &self.bytes[direction as usize];
        b.set(b.get() + n as u64);
        self.last_activity.set(Instant::now());
    }
}

/// Relays until done. The caller drops (closes) both sockets afterwards.
pub async fn relay<O: RelayObserver>(
    client: &TcpStream,
    upstream: &TcpStream,
    options: &RelayOptions,
    pools: &RelayPools,
    observer: &O,
) -> RelayOutcome {
    let progress = Progress {
        last_activity: Cell::new(Instant::now()),
        bytes: [Cell::new(0), Cell::new(0)],
    };
    let spliced = Cell::new(false);
    for s in [client, upstream] {
        if let Err(e) = sys::set_nonblocking(s.as_raw_fd()) {
            let side = if std::ptr::eq(s, client) {
                Side::Client
            } else {
                Side::Upstream
            };
            return RelayOutcome {
                end: RelayEnd::Failed(PumpError { side, error: e }),
                client_to_upstream: 0,
                upstream_to_client: 0,
                spliced: false,
            };
        }
    }
    let up = Ends {
        src: client,
        dst: upstream,
        direction: Direction::ClientToUpstream,
    };
    let down = Ends {
        src: upstream,
        dst: client,
        direction: Direction::UpstreamToClient,
    };
    let mut up_fut = pin!(pump(&up, options, pools, &progress, observer, &spliced));
    let mut down_fut = pin!(pump(&down, options, pools, &progress, observer, &spliced));
    let mut idle = pin!(idle_watch(&progress, options.idle_timeout));
    let (mut up_done, mut down_done) = (false, false);
    let end = loop {
        monoio::select! {
            r = &mut up_fut, if !up_done => match r {
                Ok(()) => up_done = true,
                Err(e) => break RelayEnd::Failed(e),
            },
            r = &mut down_fut, if !down_done => match r {
                Ok(()) => down_done = true,
                Err(e) => break RelayEnd::Failed(e),
            },
            _ = &mut idle => break RelayEnd::IdleTimeout,
        }
        if up_done && down_done {
            break RelayEnd::Completed;
        }
    };
    if !matches!(end, RelayEnd::Completed) {
        // Best effort: a socket that is already dead cannot fail the abort in a way that matters.
        let _ = sys::set_linger_zero(client.as_raw_fd());
        let _ = sys::set_linger_zero(upstream.as_raw_fd());
    }
    RelayOutcome {
        end,
        client_to_upstream: progress.bytes[0].get(),
        upstream_to_client: progress.bytes[1].get(),
        spliced: spliced.get(),
    }
}

async fn pump<O: RelayObserver>(
    ends: &Ends<'_>,
    options: &RelayOptions,
    pools: &RelayPools,
    progress: &Progress,
    observer: &O,
    spliced: &Cell<bool>,
) -> Result<(), PumpError> {
    if options.transfer == Transfer::Splice {
        // No pipe (fd or memory exhaustion) or no splice support: copy instead, never fail.
        if let Ok(pipe) = pools.pipes.take() {
            match pump::splice(ends, pipe, &pools.pipes, progress, observer).await {
                SpliceResult::Done(r) => {
                    spliced.set(true);
                    return r;
                }
                SpliceResult::Unsupported => {}
            }
        }
    }
    pump::copy(ends, &pools.buffers, progress, observer).await
}

async fn idle_watch(progress: &Progress, timeout: Duration) {
    loop {
        let deadline = progress.last_activity.get() + timeout;
        if Instant::now() >= deadline {
            return;
        }
        monoio::time::sleep_until(monoio::time::Instant::from_std(deadline)).await;
    }
}

/// Writes all of `buf` to a connected socket (e.g. a PROXY protocol header) before relaying.
pub async fn write_all(stream: &TcpStream, mut buf: &[u8]) -> io::Result<()> {
    sys::set_nonblocking(stream.as_raw_fd())?;
    while !buf.is_empty() {
        match sys::write(stream.as_raw_fd(), buf) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => buf = &buf[n..],
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => stream.writable(false).await?,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
