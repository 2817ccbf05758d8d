//! The L4 relay: both directions of one proxied TCP connection, with half-close and idle timeout.
//!
//! Owns: moving bytes client ⇄ upstream until both directions reach EOF, one fails, or nothing has
//! moved for the idle timeout; choosing splice (zero-copy through a pooled pipe per direction) or a
//! buffered copy when splice cannot be used. EOF in one direction half-closes the other socket
//! (`shutdown(SHUT_WR)`) while the opposite direction keeps flowing. A failure aborts both sockets
//! with RST, so neither peer mistakes a cut stream for a complete one.
//! Must not: connect, pick endpoints, or touch stats registries — progress is reported through
//! [`RelayObserver`], and the caller owns and closes the sockets.

mod both;
mod idle;
mod pipe;
mod pump;
pub mod sys;

use std::cell::Cell;
use std::io;
use std::os::fd::AsRawFd;
use std::pin::pin;
use std::time::{Duration, Instant};

use monoio::net::TcpStream;

pub use both::{copy_both, BothEnd};
pub use idle::IdleTimers;
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

/// Per-core state every relay on the core shares: buffer pools and the idle timers.
pub struct RelayCore {
    pub pipes: PipePool,
    pub buffers: BufferPool,
    /// Must be driven by `IdleTimers::run` on the core, or idle timeouts never fire.
    pub idle: IdleTimers,
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
    idle: std::rc::Rc<idle::IdleEntry>,
    bytes: [Cell<u64>; 2],
}

impl Progress {
    fn record(&self, direction: Direction, n: usize) {
        let b = &self.bytes[direction as usize];
        b.set(b.get() + n as u64);
        self.idle.touch(Instant::now());
    }
}

/// Relays until done. The caller drops (closes) both sockets afterwards.
pub async fn relay<O: RelayObserver>(
    client: &TcpStream,
    upstream: &TcpStream,
    options: &RelayOptions,
    core: &RelayCore,
    observer: &O,
) -> RelayOutcome {
    let progress = Progress {
        idle: core.idle.register(options.idle_timeout),
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
    let mut up_fut = pin!(pump(&up, options, core, &progress, observer, &spliced));
    let mut down_fut = pin!(pump(&down, options, core, &progress, observer, &spliced));
    let mut idle = pin!(progress.idle.expired());
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
    core: &RelayCore,
    progress: &Progress,
    observer: &O,
    spliced: &Cell<bool>,
) -> Result<(), PumpError> {
    if options.transfer == Transfer::Splice {
        // No pipe (fd or memory exhaustion) or no splice support: copy instead, never fail.
        if let Ok(pipe) = core.pipes.take() {
            match pump::splice(ends, pipe, &core.pipes, progress, observer).await {
                SpliceResult::Done(r) => {
                    spliced.set(true);
                    return r;
                }
                SpliceResult::Unsupported => {}
            }
        }
    }
    pump::copy(ends, &core.buffers, progress, observer).await
}

/// Bytes a pump may move without awaiting before it yields to the core's other tasks. monoio has no
/// cooperative budget: a direction whose source always has data and whose destination always has
/// room would otherwise starve the opposite direction and every other connection on the core.
/// 1 MiB is ~0.6 ms at the rates measured here — short for latency, long for syscall batching.
pub(crate) const YIELD_AFTER_BYTES: usize = 1 << 20;

/// Tracks bytes moved since the pump last awaited, and yields when the budget is spent.
pub(crate) struct Budget(usize);

impl Budget {
    pub fn new() -> Budget {
        Budget(0)
    }

    /// The pump just awaited IO readiness: other tasks have had their turn.
    pub fn reset(&mut self) {
        self.0 = 0;
    }

    pub async fn spend(&mut self, n: usize) {
        self.0 += n;
        if self.0 >= YIELD_AFTER_BYTES {
            self.0 = 0;
            YieldNow(false).await;
        }
    }
}

/// Returns `Pending` once, and is woken from a separate task so that the runtime runs every task
/// already queued (and reaps IO completions) first. A plain `wake_by_ref` would not do: monoio puts
/// a task that wakes itself while running at the *front* of its run queue.
struct YieldNow(bool);

impl std::future::Future for YieldNow {
    type Output = ();

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<()> {
        if self.0 {
            std::task::Poll::Ready(())
        } else {
            self.0 = true;
            let waker = cx.waker().clone();
            monoio::spawn(async move { waker.wake() });
            std::task::Poll::Pending
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::rc::Rc;

    /// A pump that never awaits IO must still let other tasks run once per budget.
    #[test]
    fn the_budget_yields_to_other_tasks() {
        let mut rt = monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
            .build()
            .expect("runtime");
        let ran = rt.block_on(async {
            let other_ran = Rc::new(Cell::new(0u32));
            let counter = other_ran.clone();
            let other = monoio::spawn(async move {
                loop {
                    counter.set(counter.get() + 1);
                    YieldNow(false).await;
                }
            });
            let mut budget = Budget::new();
            // 8 MiB in 64 KiB steps with no IO await in between.
            for _ in 0..128 {
                budget.spend(64 * 1024).await;
            }
            drop(other);
            other_ran.get()
        });
        assert!(
            ran >= 7,
            "the other task ran only {ran} times during 8 budgets"
        );
    }
}
/// Every idle connection keeps its relay future alive, so its size is memory per connection.
/// Measured 2026-11-22: 1792 B with a monoio `Sleep` per connection for the idle timeout (768 B, a
/// cache-padded timer entry); the per-core `IdleTimers` replaced it. This guards against regrowth.
#[cfg(test)]
mod size_guard {
    use super::*;

    struct Nop;
    impl RelayObserver for Nop {
        fn on_bytes(&self, _: Direction, _: usize) {}
    }

    #[test]
    fn the_relay_future_stays_small() {
        let mut rt = monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
            .enable_timer()
            .build()
            .expect("runtime");
        let (relay_size, pump_size) = rt.block_on(async {
            let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
            let a = TcpStream::connect_addr(l.local_addr().expect("addr"))
                .await
                .expect("connect");
            let (b, _) = l.accept().expect("accept");
            let b = TcpStream::from_std(b).expect("from_std");
            let core = RelayCore {
                pipes: PipePool::new(65536, 1),
                buffers: BufferPool::new(65536, 1),
                idle: IdleTimers::new(Duration::from_millis(100)),
            };
            let opts = RelayOptions {
                transfer: Transfer::Copy,
                idle_timeout: Duration::from_secs(1),
            };
            let progress = Progress {
                idle: core.idle.register(Duration::from_secs(1)),
                bytes: [Cell::new(0), Cell::new(0)],
            };
            let ends = Ends {
                src: &a,
                dst: &b,
                direction: Direction::ClientToUpstream,
            };
            let spliced = Cell::new(false);
            let relay_fut = relay(&a, &b, &opts, &core, &Nop);
            let pump_fut = pump(&ends, &opts, &core, &progress, &Nop, &spliced);
            (
                std::mem::size_of_val(&relay_fut),
                std::mem::size_of_val(&pump_fut),
            )
        });
        eprintln!("relay future {relay_size} B, pump future {pump_size} B");
        assert!(
            relay_size <= 1024,
            "relay future grew to {relay_size} bytes"
        );
        assert!(pump_size <= 512, "pump future grew to {pump_size} bytes");
    }
}
