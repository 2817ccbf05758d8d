//! One direction of a relay: move bytes from `src` to `dst` until EOF, then half-close `dst`.
//!
//! Owns: the splice loop (socket → pipe → socket) and the buffered copy loop, both driven by
//! non-blocking syscalls and the runtime's readiness waits, so each core's thread never blocks.
//! Must not: decide what an error means for the connection (the relay does), or wait on readiness
//! unless the last syscall said EAGAIN — that is what keeps the loop from spinning.

use std::io::{self, ErrorKind};
use std::os::fd::{AsRawFd, RawFd};

use monoio::net::TcpStream;

use super::pipe::{BufferPool, Pipe, PipePool, SMALL_BUFFER};
use super::{sys, Budget, Direction, Progress, RelayObserver, Side};

/// A failed direction, with the side whose socket failed (read errors belong to the source,
/// write errors to the destination).
#[derive(Debug)]
pub struct PumpError {
    pub side: Side,
    pub error: io::Error,
}

pub(super) struct Ends<'a> {
    pub src: &'a TcpStream,
    pub dst: &'a TcpStream,
    pub direction: Direction,
}

impl Ends<'_> {
    fn src_side(&self) -> Side {
        match self.direction {
            Direction::ClientToUpstream => Side::Client,
            Direction::UpstreamToClient => Side::Upstream,
        }
    }

    fn dst_side(&self) -> Side {
        match self.direction {
            Direction::ClientToUpstream => Side::Upstream,
            Direction::UpstreamToClient => Side::Client,
        }
    }

    fn read_err(&self, error: io::Error) -> PumpError {
        PumpError {
            side: self.src_side(),
            error,
        }
    }

    fn write_err(&self, error: io::Error) -> PumpError {
        PumpError {
            side: self.dst_side(),
            error,
        }
    }

    /// EOF reached and everything written: tell the destination no more is coming.
    fn finish(&self) -> Result<(), PumpError> {
        match sys::shutdown_write(self.dst.as_raw_fd()) {
            // The peer may already have closed its end entirely; nothing is lost by that.
            Ok(()) => Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::ENOTCONN) => Ok(()),
            Err(e) => Err(self.write_err(e)),
        }
    }
}

/// Keeps a pipe's accounting so it returns to the pool only when provably empty — including when
/// the pump future is dropped half-way (idle timeout, the other direction failing, drain).
struct PipeLease<'a> {
    pipe: Option<Pipe>,
    pool: &'a PipePool,
    buffered: usize,
}

impl Drop for PipeLease<'_> {
    fn drop(&mut self) {
        if let Some(pipe) = self.pipe.take() {
            if self.buffered == 0 {
                self.pool.give_back(pipe);
            }
        }
    }
}

pub(super) enum SpliceResult {
    Done(Result<(), PumpError>),
    /// splice(2) is not supported between these descriptors; no byte has moved yet.
    Unsupported,
}

pub(super) async fn splice<O: RelayObserver>(
    ends: &Ends<'_>,
    pipe: Pipe,
    pool: &PipePool,
    progress: &Progress,
    observer: &O,
) -> SpliceResult {
    let src_fd = ends.src.as_raw_fd();
    let dst_fd = ends.dst.as_raw_fd();
    let capacity = pipe.capacity();
    let (pipe_r, pipe_w) = (pipe.read_fd(), pipe.write_fd());
    let mut lease = PipeLease {
        pipe: Some(pipe),
        pool,
        buffered: 0,
    };
    let mut src_eof = false;
    let mut moved_any = false;
    let mut budget = Budget::new();
    loop {
        let mut src_blocked = false;
        if !src_eof && lease.buffered < capacity {
            match sys::splice(src_fd, pipe_w, capacity - lease.buffered) {
                Ok(0) => src_eof = true,
                Ok(n) => lease.buffered += n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => src_blocked = true,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) if !moved_any && e.raw_os_error() == Some(libc::EINVAL) => {
                    return SpliceResult::Unsupported
                }
                Err(e) => return SpliceResult::Done(Err(ends.read_err(e))),
            }
        }
        let mut dst_blocked = false;
        if lease.buffered > 0 {
            match sys::splice(pipe_r, dst_fd, lease.buffered) {
                Ok(n) => {
                    lease.buffered -= n;
                    moved_any = true;
                    progress.record(ends.direction, n);
                    observer.on_bytes(ends.direction, n);
                    budget.spend(n).await;
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => dst_blocked = true,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => return SpliceResult::Done(Err(ends.write_err(e))),
            }
        }
        if src_eof && lease.buffered == 0 {
            return SpliceResult::Done(ends.finish());
        }
        // Wait only on what blocks progress: input when the pipe is empty, output when the pipe
        // cannot take more (full, source drained or at EOF).
        if lease.buffered == 0 {
            if src_blocked {
                if let Err(e) = ends.src.readable(false).await {
                    return SpliceResult::Done(Err(ends.read_err(e)));
                }
                budget.reset();
            }
        } else if dst_blocked && (src_blocked || src_eof || lease.buffered >= capacity) {
            if let Err(e) = ends.dst.writable(false).await {
                return SpliceResult::Done(Err(ends.write_err(e)));
            }
            budget.reset();
        }
    }
}

pub(super) async fn copy<O: RelayObserver>(
    ends: &Ends<'_>,
    buffers: &BufferPool,
    progress: &Progress,
    observer: &O,
) -> Result<(), PumpError> {
    let src_fd: RawFd = ends.src.as_raw_fd();
    let dst_fd: RawFd = ends.dst.as_raw_fd();
    // A flow that filled a small buffer stays "bulk" across idle gaps until a burst begins with a
    // short read again.
    let mut bulk = false;
    let mut budget = Budget::new();
    loop {
        // Borrow a buffer only while this direction has bytes to move.
        let mut lease = BufferLease {
            buffer: if bulk {
                buffers.take_large()
            } else {
                buffers.take_small()
            },
            pool: buffers,
        };
        let mut first_read = true;
        loop {
            let n = match sys::read(src_fd, &mut lease.buffer) {
                Ok(0) => return ends.finish(),
                Ok(n) => n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => return Err(ends.read_err(e)),
            };
            let mut written = 0;
            while written < n {
                match sys::write(dst_fd, &lease.buffer[written..n]) {
                    Ok(m) => {
                        written += m;
                        progress.record(ends.direction, m);
                        observer.on_bytes(ends.direction, m);
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => {
                        ends.dst
                            .writable(false)
                            .await
                            .map_err(|e| ends.write_err(e))?;
                        budget.reset();
                    }
                    Err(e) if e.kind() == ErrorKind::Interrupted => {}
                    Err(e) => return Err(ends.write_err(e)),
                }
            }
            if n == lease.buffer.len() && n < buffers.large_size() {
                // The read filled the buffer: a bulk flow, worth fewer, larger syscalls.
                lease.grow();
                bulk = true;
            } else if first_read && n < SMALL_BUFFER {
                bulk = false;
            }
            first_read = false;
            budget.spend(n).await;
        }
        drop(lease);
        ends.src
            .readable(false)
            .await
            .map_err(|e| ends.read_err(e))?;
        budget.reset();
    }
}

/// Returns the copy buffer to the pool however the pump ends (including being dropped).
struct BufferLease<'a> {
    buffer: Box<[u8]>,
    pool: &'a BufferPool,
}

impl BufferLease<'_> {
    fn grow(&mut self) {
        let small = std::mem::replace(&mut self.buffer, self.pool.take_large());
        self.pool.give_back(small);
    }
}

impl Drop for BufferLease<'_> {
    fn drop(&mut self) {
        self.pool.give_back(std::mem::take(&mut self.buffer));
    }
}
