//! The byte streams `h2` runs on (tokio's `AsyncRead`/`AsyncWrite`).
//!
//! Owns: [`PrefixedPoll`], a clear-text socket in monoio's readiness ("poll") mode that first
//! replays the bytes the sniffer read (the HTTP/2 preface). In that mode `h2` reads into and
//! writes from its own buffers with plain syscalls, vectored writes included: no intermediate
//! buffer and no boxed future per operation, unlike the completion-mode adapter
//! (`monoio_compat::StreamWrapper`), which TLS streams still use because rustls sits between
//! the socket and `h2`. Must not: buffer anything beyond the replayed prefix.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use monoio::net::tcp::stream_poll::TcpStreamPoll;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

pub(crate) struct PrefixedPoll {
    prefix: Vec<u8>,
    pos: usize,
    inner: TcpStreamPoll,
}

impl PrefixedPoll {
    /// `socket` in readiness mode, `prefix` replayed first. Fails (handing the socket back) if
    /// the runtime cannot switch it.
    pub(crate) fn new(
        prefix: Vec<u8>,
        socket: monoio::net::TcpStream,
    ) -> Result<PrefixedPoll, (io::Error, monoio::net::TcpStream)> {
        Ok(PrefixedPoll {
            prefix,
            pos: 0,
            inner: socket.try_into_poll_io()?,
        })
    }
}

impl AsyncRead for PrefixedPoll {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.pos < this.prefix.len() {
            let n = (this.prefix.len() - this.pos).min(buf.remaining());
            buf.put_slice(&this.prefix[this.pos..this.pos + n]);
            this.pos += n;
            if this.pos == this.prefix.len() {
                this.prefix = Vec::new();
                this.pos = 0;
            }
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for PrefixedPoll {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}
