//! The client side of a proxied connection, in clear text or inside TLS.
//!
//! Owns: the few operations the HTTP/1.1 proxy needs beyond reading and writing, for both kinds of
//! client stream: the socket (for `TCP_CORK`, lingering and resets), a read whose buffer survives
//! its deadline, and ending our side of the conversation (FIN, after `close_notify` on TLS).
//! Also the split of a client stream into halves that read and write at the same time, for the
//! tunnel an upgraded connection becomes ([`ClientStream::into_halves`]). Must not: buffer
//! application data (a TLS stream's plaintext lives in rustls).

use std::cell::RefCell;
use std::future::Future;
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::rc::Rc;
use std::time::Duration;

use monoio::buf::{IoBuf, IoBufMut, IoVecBuf, IoVecBufMut, RawBuf};
use monoio::io::{
    AsyncReadRent, AsyncWriteRent, AsyncWriteRentExt, CancelableAsyncReadRent, Canceller,
    OwnedReadHalf, OwnedWriteHalf, Splitable,
};
use monoio::net::TcpStream;
use monoio::BufResult;
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

    type ReadHalf = TlsReadHalf;
    type WriteHalf = TlsWriteHalf;

    /// The rustls connection is taken out of the monoio-rustls stream and driven here. Its own
    /// split (`OwnedReadHalf` of the stream) is not safe to use both ways at once: a read that
    /// meets a TLS error writes the alert through the stream's single write buffer, which a
    /// pending write has lent to the kernel, and monoio-io-wrapper panics on the missing buffer
    /// (a client could abort the process by sending a bad record while it is not reading).
    ///
    /// Bytes monoio-rustls had read from the socket but not yet handed to rustls are lost by the
    /// split. That needs a client that sent more than one TLS read's worth past its request
    /// without waiting for the answer (RFC 6455 §4.1 forbids it for WebSocket), and ends as a
    /// TLS error that closes the tunnel: records are authenticated, so no byte is misread.
    fn into_halves(self) -> (TlsReadHalf, TlsWriteHalf) {
        let (io, session) = self.stream.into_parts();
        let (tcp, replay) = io.into_parts();
        let (read, write) = tcp.into_split();
        let session = Rc::new(RefCell::new(session));
        (
            TlsReadHalf {
                session: session.clone(),
                tcp: read,
                raw: replay,
                pos: 0,
            },
            TlsWriteHalf {
                session,
                tcp: write,
                tls: Vec::new(),
            },
        )
    }
}

/// The read half of a split TLS client: TLS records from the socket go through rustls, and
/// plaintext comes out. rustls is only borrowed between awaits, so the write half may use it
/// while this one waits for the socket.
pub(crate) struct TlsReadHalf {
    session: Rc<RefCell<rustls::ServerConnection>>,
    tcp: OwnedReadHalf<TcpStream>,
    /// TLS bytes from the socket; `raw[pos..]` are not given to rustls yet.
    raw: Vec<u8>,
    pos: usize,
}

/// The write half of a split TLS client: plaintext is encrypted by rustls into `tls`, which is
/// written out whole before the next write starts.
pub(crate) struct TlsWriteHalf {
    session: Rc<RefCell<rustls::ServerConnection>>,
    tcp: OwnedWriteHalf<TcpStream>,
    tls: Vec<u8>,
}

impl TlsReadHalf {
    /// Copies plaintext rustls already holds into `buf`: `Some(n)` (0 after `close_notify`), or
    /// `None` when it holds none.
    fn plaintext<T: IoBufMut>(&self, buf: &mut T) -> Option<io::Result<usize>> {
        use std::io::BufRead;
        let mut session = self.session.borrow_mut();
        let mut reader = session.reader();
        let chunk = match reader.fill_buf() {
            Ok(chunk) => chunk,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return None,
            // A TCP EOF without `close_notify` (UnexpectedEof), or an earlier TLS error.
            Err(e) => return Some(Err(e)),
        };
        let n = chunk.len().min(buf.bytes_total());
        // SAFETY: `write_ptr` points at `bytes_total()` writable bytes owned by `buf`, `n` is at
        // most that, and `chunk` is rustls's memory, so the ranges do not overlap. Exactly `n`
        // bytes are initialised before `set_init(n)`.
        unsafe {
            std::ptr::copy_nonoverlapping(chunk.as_ptr(), buf.write_ptr(), n);
            buf.set_init(n);
        }
        reader.consume(n);
        Some(Ok(n))
    }
}

impl AsyncReadRent for TlsReadHalf {
    async fn read<T: IoBufMut>(&mut self, mut buf: T) -> BufResult<usize, T> {
        if buf.bytes_total() == 0 {
            return (Ok(0), buf);
        }
        loop {
            if let Some(res) = self.plaintext(&mut buf) {
                return (res, buf);
            }
            if self.pos < self.raw.len() {
                // One record's worth at a time: rustls takes what it can, then decrypts it.
                let mut session = self.session.borrow_mut();
                let mut rest = &self.raw[self.pos..];
                match session.read_tls(&mut rest) {
                    Ok(n) => self.pos += n,
                    Err(e) => return (Err(e), buf),
                }
                if let Err(e) = session.process_new_packets() {
                    // rustls queued an alert; the write half sends it if it writes again.
                    return (Err(io::Error::new(io::ErrorKind::InvalidData, e)), buf);
                }
                continue;
            }
            let mut raw = std::mem::take(&mut self.raw);
            raw.clear();
            self.pos = 0;
            if raw.capacity() < TLS_RECORD {
                raw.reserve(TLS_RECORD);
            }
            let (res, raw) = self.tcp.read(raw).await;
            self.raw = raw;
            match res {
                Ok(0) => {
                    // Every byte went through rustls already. Tell it of the EOF: its reader
                    // then ends cleanly after `close_notify`, or with UnexpectedEof.
                    let _ = self.session.borrow_mut().read_tls(&mut &[][..]);
                    let res = self.plaintext(&mut buf).unwrap_or_else(|| {
                        Err(io::Error::new(
                            io::ErrorKind::UnexpectedEof,
                            "TCP EOF without TLS close_notify",
                        ))
                    });
                    return (res, buf);
                }
                Ok(_) => {}
                Err(e) => return (Err(e), buf),
            }
        }
    }

    async fn readv<T: IoVecBufMut>(&mut self, mut buf: T) -> BufResult<usize, T> {
        // SAFETY: the first iovec of `buf` stays valid while `buf` is held here.
        let n = match unsafe { RawBuf::new_from_iovec_mut(&mut buf) } {
            Some(raw) => self.read(raw).await.0,
            None => Ok(0),
        };
        if let Ok(n) = n {
            // SAFETY: `n` bytes of the first iovec were initialised by the read above.
            unsafe { buf.set_init(n) };
        }
        (n, buf)
    }
}

impl AsyncWriteRent for TlsWriteHalf {
    async fn write<T: IoBuf>(&mut self, buf: T) -> BufResult<usize, T> {
        // SAFETY: `read_ptr` points at `bytes_init()` initialised bytes owned by `buf`, which is
        // held (not moved) until this function returns.
        let data = unsafe { std::slice::from_raw_parts(buf.read_ptr(), buf.bytes_init()) };
        let n = {
            let mut session = self.session.borrow_mut();
            let n = match std::io::Write::write(&mut session.writer(), data) {
                Ok(n) => n,
                Err(e) => return (Err(e), buf),
            };
            while session.wants_write() {
                if let Err(e) = session.write_tls(&mut self.tls) {
                    return (Err(e), buf);
                }
            }
            n
        };
        match self.send().await {
            Ok(()) => (Ok(n), buf),
            Err(e) => (Err(e), buf),
        }
    }

    async fn writev<T: IoVecBuf>(&mut self, buf: T) -> BufResult<usize, T> {
        // SAFETY: the first iovec of `buf` stays valid while `buf` is held here.
        let n = match unsafe { RawBuf::new_from_iovec(&buf) } {
            Some(raw) => self.write(raw).await.0,
            None => Ok(0),
        };
        (n, buf)
    }

    async fn flush(&mut self) -> io::Result<()> {
        // Every write leaves nothing behind.
        Ok(())
    }

    /// `close_notify`, then FIN; the read half stays open.
    async fn shutdown(&mut self) -> io::Result<()> {
        {
            let mut session = self.session.borrow_mut();
            session.send_close_notify();
            while session.wants_write() {
                session.write_tls(&mut self.tls)?;
            }
        }
        self.send().await?;
        self.tcp.shutdown().await
    }
}

impl TlsWriteHalf {
    /// Writes the encrypted bytes out.
    async fn send(&mut self) -> io::Result<()> {
        if self.tls.is_empty() {
            return Ok(());
        }
        let (res, mut tls) = self.tcp.write_all(std::mem::take(&mut self.tls)).await;
        tls.clear();
        self.tls = tls;
        res.map(drop)
    }
}
