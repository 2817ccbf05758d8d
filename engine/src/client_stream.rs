//! The client side of a proxied connection, in clear text or inside TLS.
//!
//! Owns: the few operations the HTTP/1.1 proxy needs beyond reading and writing, for both kinds of
//! client stream: the socket (for `TCP_CORK`, lingering and resets), a read whose buffer survives
//! its deadline, and ending our side of the conversation (FIN, after `close_notify` on TLS).
//! Must not: buffer application data (a TLS stream's plaintext lives in rustls).

use std::future::Future;
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::time::Duration;

use monoio::buf::{IoBuf, IoBufMut};
use monoio::io::{AsyncReadRent, AsyncWriteRent, CancelableAsyncReadRent, Canceller};
use monoio::net::TcpStream;
use strait_protocols::relay::sys;
use strait_protocols::replay::Replay;

use crate::tls::ServerStream;

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
}

/// A TLS client connection (its ClientHello replayed from the sniffer) and a small scratch
/// buffer for reads that must survive their deadline.
pub(crate) struct TlsClient {
    pub(crate) stream: ServerStream<Replay<TcpStream>>,
    /// The socket inside `stream` (which lives as long as this), taken before the handshake:
    /// monoio-rustls does not lend its inner stream out.
    fd: RawFd,
    /// rustls decrypts into the buffer it is given; a read dropped on its deadline would take
    /// that buffer with it, so deadline-bound reads land here and are copied out (at most one
    /// TLS record, 16 KiB, per read).
    scratch: Vec<u8>,
}

impl TlsClient {
    pub(crate) fn new(stream: ServerStream<Replay<TcpStream>>, fd: RawFd) -> TlsClient {
        TlsClient {
            stream,
            fd,
            scratch: Vec::new(),
        }
    }

    pub(crate) fn alpn(&self) -> Option<Vec<u8>> {
        self.stream.alpn_protocol()
    }
}

const TLS_RECORD: usize = 16 * 1024;

impl AsyncReadRent for TlsClient {
    fn read<T: IoBufMut>(&mut self, buf: T) -> impl Future<Output = monoio::BufResult<usize, T>> {
        self.stream.read(buf)
    }

    fn readv<T: monoio::buf::IoVecBufMut>(
        &mut self,
        buf: T,
    ) -> impl Future<Output = monoio::BufResult<usize, T>> {
        self.stream.readv(buf)
    }
}

impl AsyncWriteRent for TlsClient {
    fn write<T: IoBuf>(&mut self, buf: T) -> impl Future<Output = monoio::BufResult<usize, T>> {
        self.stream.write(buf)
    }

    fn writev<T: monoio::buf::IoVecBuf>(
        &mut self,
        buf: T,
    ) -> impl Future<Output = monoio::BufResult<usize, T>> {
        self.stream.writev(buf)
    }

    fn flush(&mut self) -> impl Future<Output = io::Result<()>> {
        self.stream.flush()
    }

    fn shutdown(&mut self) -> impl Future<Output = io::Result<()>> {
        self.stream.shutdown()
    }
}

impl ClientStream for TlsClient {
    const TLS: bool = true;

    fn fd(&self) -> RawFd {
        self.fd
    }

    async fn read_keeping(
        &mut self,
        buf: &mut Vec<u8>,
        wait: Duration,
        _canceller: &mut Option<Canceller>,
    ) -> Result<io::Result<usize>, TimedOut> {
        let mut scratch = std::mem::take(&mut self.scratch);
        scratch.clear();
        if scratch.capacity() < TLS_RECORD {
            scratch.reserve(TLS_RECORD);
        }
        match monoio::time::timeout(wait, self.stream.read(scratch)).await {
            Err(_) => Err(TimedOut),
            Ok((res, scratch)) => {
                if let Ok(n) = res {
                    buf.extend_from_slice(&scratch[..n]);
                }
                self.scratch = scratch;
                Ok(res)
            }
        }
    }

    async fn close_write(&mut self) -> io::Result<()> {
        self.stream.shutdown().await
    }
}
