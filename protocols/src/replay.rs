//! A stream that first replays bytes already read from it.
//!
//! Owns: handing a protocol handler the bytes the sniffer consumed, then the live stream.
//! monoio has no `MSG_PEEK`-based peek, and peeking after readiness busy-spins while a
//! ClientHello arrives in pieces, so the sniffer reads for real and wraps the stream in a
//! [`Replay`]. Must not: buffer anything beyond the replayed prefix or add work to reads once
//! it is drained (one branch).

use std::io;

use monoio::buf::{IoBuf, IoBufMut, IoVecBuf, IoVecBufMut};
use monoio::io::{AsyncReadRent, AsyncWriteRent};
use monoio::BufResult;

/// `inner`, preceded on the read side by `prefix[pos..]`. Writes go straight to `inner`.
#[derive(Debug)]
pub struct Replay<S> {
    prefix: Vec<u8>,
    pos: usize,
    inner: S,
}

impl<S> Replay<S> {
    pub fn new(prefix: Vec<u8>, inner: S) -> Replay<S> {
        Replay {
            prefix,
            pos: 0,
            inner,
        }
    }

    /// Bytes not replayed yet.
    pub fn pending(&self) -> &[u8] {
        &self.prefix[self.pos..]
    }

    /// The stream and the bytes not replayed yet.
    pub fn into_parts(mut self) -> (S, Vec<u8>) {
        self.prefix.drain(..self.pos);
        (self.inner, self.prefix)
    }

    fn consumed(&mut self, n: usize) {
        self.pos += n;
        if self.pos >= self.prefix.len() {
            // Drained: give the memory back now, the connection may live for hours.
            self.prefix = Vec::new();
            self.pos = 0;
        }
    }
}

impl<S: AsyncReadRent> AsyncReadRent for Replay<S> {
    async fn read<T: IoBufMut>(&mut self, buf: T) -> BufResult<usize, T> {
        if self.pos < self.prefix.len() {
            // `&[u8]` is itself a reader: it copies what fits and never waits.
            let mut rest: &[u8] = &self.prefix[self.pos..];
            let (res, buf) = rest.read(buf).await;
            if let Ok(n) = res {
                self.consumed(n);
            }
            return (res, buf);
        }
        self.inner.read(buf).await
    }

    async fn readv<T: IoVecBufMut>(&mut self, buf: T) -> BufResult<usize, T> {
        if self.pos < self.prefix.len() {
            let mut rest: &[u8] = &self.prefix[self.pos..];
            let (res, buf) = rest.readv(buf).await;
            if let Ok(n) = res {
                self.consumed(n);
            }
            return (res, buf);
        }
        self.inner.readv(buf).await
    }
}

impl<S: AsyncWriteRent> AsyncWriteRent for Replay<S> {
    fn write<T: IoBuf>(
        &mut self,
        buf: T,
    ) -> impl std::future::Future<Output = BufResult<usize, T>> {
        self.inner.write(buf)
    }

    fn writev<T: IoVecBuf>(
        &mut self,
        buf: T,
    ) -> impl std::future::Future<Output = BufResult<usize, T>> {
        self.inner.writev(buf)
    }

    fn flush(&mut self) -> impl std::future::Future<Output = io::Result<()>> {
        self.inner.flush()
    }

    fn shutdown(&mut self) -> impl std::future::Future<Output = io::Result<()>> {
        self.inner.shutdown()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run<F: std::future::Future>(f: F) -> F::Output {
        monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
            .build()
            .expect("runtime")
            .block_on(f)
    }

    #[test]
    fn replays_the_prefix_then_reads_the_stream() {
        run(async {
            let inner: &[u8] = b" world";
            let mut r = Replay::new(b"hello".to_vec(), inner);
            let mut got = Vec::new();
            loop {
                let (res, buf) = r.read(Vec::with_capacity(3)).await;
                match res {
                    Ok(0) => break,
                    Ok(_) => got.extend_from_slice(&buf),
                    Err(e) => panic!("{e}"),
                }
            }
            assert_eq!(got, b"hello world");
            assert!(r.pending().is_empty());
        });
    }

    #[test]
    fn into_parts_returns_what_was_not_replayed() {
        run(async {
            let inner: &[u8] = b"";
            let mut r = Replay::new(b"abcdef".to_vec(), inner);
            let (res, buf) = r.read(Vec::with_capacity(2)).await;
            assert_eq!(res.ok(), Some(2));
            assert_eq!(buf, b"ab");
            let (_, rest) = r.into_parts();
            assert_eq!(rest, b"cdef");
        });
    }
}
