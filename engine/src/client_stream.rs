//! The client side of a proxied connection, in clear text or inside TLS.
//!
//! Owns: the few operations the HTTP/1.1 proxy needs beyond reading and writing, for both kinds of
//! client stream: the socket (for `TCP_CORK`, lingering and resets), a read whose buffer survives
//! its deadline, and ending our side of the conversation (FIN, after `close_notify` on TLS).
//! Also the split of a client stream into halves that read and write at the same time, for the
//! tunnel an upgraded connection becomes ([`ClientStream::into_halves`]). Must not: buffer
//! application data (a TLS stream's plaintext lives in rustls).

use std::future::Future;
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::time::Duration;

use monoio::buf::IoBufMut;
use monoio::io::{
    AsyncReadRent, AsyncWriteRent, CancelableAsyncReadRent, Canceller, OwnedReadHalf,
    OwnedWriteHalf, Splitable,
};
use monoio::net::TcpStream;
use strait_protocols::relay::sys;

/// The deadline of a read passed first.
#[derive(Debug)]
pub(crate) struct TimedOut;

/// Smallest spare capacity a read is given; also the initial size of a client buffer.
pub(crate) const MIN_READ: usize = 1024;

pub(crate) trait ClientStream: AsyncReadRent + AsyncWriteRent {
    /// Whether the bytes are TLS-protected (X-Forwarded-Proto, access log).
    const TLS: bool;

    /// The TCP socket underneath.
    fn fd(&self) -> RawFd;

    /// Reads into the spare capacity of `buf` (growing it when nearly full). Unlike dropping a
    /// read on a timeout, `buf` and what it held survive the deadline.
    fn read_keeping(
        &mut self,
        buf: &mut Vec<u8>,
        wait: Duration,
        canceller: &mut Option<Canceller>,
    ) -> impl Future<Output = Result<io::Result<usize>, TimedOut>>;

    /// Stops sending: `close_notify` on TLS, then FIN.
    fn close_write(&mut self) -> impl Future<Output = io::Result<()>>;

    /// The read side of [`into_halves`](Self::into_halves).
    type ReadHalf: AsyncReadRent;
    /// The write side of [`into_halves`](Self::into_halves); its `shutdown` stops sending
    /// (`close_notify` on TLS, then FIN) and leaves the read half open.
    type WriteHalf: AsyncWriteRent;

    /// Splits the stream into halves that may read and write at the same time (a tunnel copies
    /// both ways at once). The socket closes when both are dropped.
    fn into_halves(self) -> (Self::ReadHalf, Self::WriteHalf);
}

/// Grows `buf` when less than [`MIN_READ`] bytes of spare capacity are left.
pub(crate) fn reserve_spare(buf: &mut Vec<u8>) {
    if buf.capacity() - buf.len() < MIN_READ {
        buf.reserve(buf.capacity().max(MIN_READ));
    }
}

/// Reads more bytes into the spare capacity of `buf`, growing it when full. `Ok(0)` is EOF.
pub(crate) async fn read_more<S: AsyncReadRent>(
    stream: &mut S,
    buf: &mut Vec<u8>,
) -> io::Result<usize> {
    reserve_spare(buf);
    let owned = std::mem::take(buf);
    let len = owned.len();
    let cap = owned.capacity();
    let (res, slice) = stream.read(owned.slice_mut(len..cap)).await;
    *buf = slice.into_inner();
    res
}

impl ClientStream for TcpStream {
    const TLS: bool = false;

    fn fd(&self) -> RawFd {
        self.as_raw_fd()
    }

    /// The read is cancelled and awaited rather than dropped with the buffer inside.
    /// `canceller` is kept per connection (made on its first use): a `Canceller` allocates.
    async fn read_keeping(
        &mut self,
        buf: &mut Vec<u8>,
        wait: Duration,
        canceller: &mut Option<Canceller>,
    ) -> Result<io::Result<usize>, TimedOut> {
        reserve_spare(buf);
        let owned = std::mem::take(buf);
        let (len, cap) = (owned.len(), owned.capacity());
        let handle = canceller.get_or_insert_with(Canceller::new).handle();
        let mut read = std::pin::pin!(self.cancelable_read(owned.slice_mut(len..cap), handle));
        let mut sleep = std::pin::pin!(monoio::time::sleep(wait));
        let finished = monoio::select! {
            done = &mut read => Some(done),
            _ = &mut sleep => None,
        };
        let ((res, slice), timed_out) = match finished {
            Some(done) => (done, false),
            None => {
                // `cancel` hands back a fresh canceller for later reads.
                *canceller = canceller.take().map(Canceller::cancel);
                (read.await, true)
            }
        };
        *buf = slice.into_inner();
        match res {
            // The read may have completed as it was cancelled: keep its bytes.
            Ok(n) if n > 0 || !timed_out => Ok(Ok(n)),
            _ if timed_out => Err(TimedOut),
            other => Ok(other),
        }
    }

    async fn close_write(&mut self) -> io::Result<()> {
        sys::shutdown_write(self.as_raw_fd())
    }

    type ReadHalf = OwnedReadHalf<TcpStream>;
    /// Its `shutdown` (also run when it is dropped) is `shutdown(SHUT_WR)`.
    type WriteHalf = OwnedWriteHalf<TcpStream>;

    fn into_halves(self) -> (Self::ReadHalf, Self::WriteHalf) {
        self.into_split()
    }
}
