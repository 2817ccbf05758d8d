//! One connection of the HTTP/1.1 upstream pools: clear text, or TLS to a cluster with `tls`.
//!
//! Owns: dispatching reads, writes and splits to the socket or to the TLS stream, so the proxy,
//! the pools and the WebSocket tunnel handle both kinds alike. The TLS operations' futures are
//! boxed: inline, every clear-text read and write future (and so every HTTP connection's task)
//! would be as large as a TLS one. Must not: add buffering (a TLS
//! connection's records live in rustls) or decide reuse (the pools and the proxy do).

use std::io;
use std::os::fd::{AsRawFd, RawFd};

use monoio::buf::{IoBuf, IoBufMut, IoVecBuf, IoVecBufMut};
use monoio::io::{AsyncReadRent, AsyncWriteRent, OwnedReadHalf, OwnedWriteHalf, Splitable};
use monoio::net::TcpStream;
use monoio::BufResult;

use crate::client_stream::ClientStream;
use crate::tls_stream::{TlsClient, TlsReadHalf, TlsWriteHalf};

pub(crate) enum UpstreamConn {
    Plain(TcpStream),
    /// Boxed: the rustls session is large and most clusters speak clear text.
    Tls(Box<TlsClient>),
}

impl UpstreamConn {
    /// The socket underneath (staleness peek, `SO_LINGER`, the drain's bookkeeping).
    pub(crate) fn fd(&self) -> RawFd {
        match self {
            UpstreamConn::Plain(s) => s.as_raw_fd(),
            UpstreamConn::Tls(t) => t.fd(),
        }
    }

    /// Halves that read and write at once (the WebSocket tunnel).
    pub(crate) fn into_halves(self) -> (UpstreamRead, UpstreamWrite) {
        match self {
            UpstreamConn::Plain(s) => {
                let (r, w) = s.into_split();
                (UpstreamRead::Plain(r), UpstreamWrite::Plain(w))
            }
            UpstreamConn::Tls(t) => {
                let (r, w) = t.into_halves();
                (UpstreamRead::Tls(r), UpstreamWrite::Tls(w))
            }
        }
    }
}

impl AsyncReadRent for UpstreamConn {
    async fn read<T: IoBufMut>(&mut self, buf: T) -> BufResult<usize, T> {
        match self {
            UpstreamConn::Plain(s) => s.read(buf).await,
            UpstreamConn::Tls(t) => Box::pin(t.read(buf)).await,
        }
    }

    async fn readv<T: IoVecBufMut>(&mut self, buf: T) -> BufResult<usize, T> {
        match self {
            UpstreamConn::Plain(s) => s.readv(buf).await,
            UpstreamConn::Tls(t) => Box::pin(t.readv(buf)).await,
        }
    }
}

impl AsyncWriteRent for UpstreamConn {
    async fn write<T: IoBuf>(&mut self, buf: T) -> BufResult<usize, T> {
        match self {
            UpstreamConn::Plain(s) => s.write(buf).await,
            UpstreamConn::Tls(t) => Box::pin(t.write(buf)).await,
        }
    }

    async fn writev<T: IoVecBuf>(&mut self, buf: T) -> BufResult<usize, T> {
        match self {
            UpstreamConn::Plain(s) => s.writev(buf).await,
            UpstreamConn::Tls(t) => Box::pin(t.writev(buf)).await,
        }
    }

    async fn flush(&mut self) -> io::Result<()> {
        match self {
            UpstreamConn::Plain(s) => s.flush().await,
            UpstreamConn::Tls(t) => Box::pin(t.flush()).await,
        }
    }

    async fn shutdown(&mut self) -> io::Result<()> {
        match self {
            UpstreamConn::Plain(s) => s.shutdown().await,
            UpstreamConn::Tls(t) => Box::pin(t.shutdown()).await,
        }
    }
}

pub(crate) enum UpstreamRead {
    Plain(OwnedReadHalf<TcpStream>),
    Tls(TlsReadHalf),
}

pub(crate) enum UpstreamWrite {
    Plain(OwnedWriteHalf<TcpStream>),
    Tls(TlsWriteHalf),
}

impl AsyncReadRent for UpstreamRead {
    async fn read<T: IoBufMut>(&mut self, buf: T) -> BufResult<usize, T> {
        match self {
            UpstreamRead::Plain(s) => s.read(buf).await,
            UpstreamRead::Tls(t) => Box::pin(t.read(buf)).await,
        }
    }

    async fn readv<T: IoVecBufMut>(&mut self, buf: T) -> BufResult<usize, T> {
        match self {
            UpstreamRead::Plain(s) => s.readv(buf).await,
            UpstreamRead::Tls(t) => Box::pin(t.readv(buf)).await,
        }
    }
}

impl AsyncWriteRent for UpstreamWrite {
    async fn write<T: IoBuf>(&mut self, buf: T) -> BufResult<usize, T> {
        match self {
            UpstreamWrite::Plain(s) => s.write(buf).await,
            UpstreamWrite::Tls(t) => Box::pin(t.write(buf)).await,
        }
    }

    async fn writev<T: IoVecBuf>(&mut self, buf: T) -> BufResult<usize, T> {
        match self {
            UpstreamWrite::Plain(s) => s.writev(buf).await,
            UpstreamWrite::Tls(t) => Box::pin(t.writev(buf)).await,
        }
    }

    async fn flush(&mut self) -> io::Result<()> {
        match self {
            UpstreamWrite::Plain(s) => s.flush().await,
            UpstreamWrite::Tls(t) => Box::pin(t.flush()).await,
        }
    }

    async fn shutdown(&mut self) -> io::Result<()> {
        match self {
            UpstreamWrite::Plain(s) => s.shutdown().await,
            UpstreamWrite::Tls(t) => Box::pin(t.shutdown()).await,
        }
    }
}
