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

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::sync::{mpsc, Arc};
    use std::thread;

    use monoio::net::TcpListener;
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};

    use super::*;

    // A test CA and a leaf for `ws.test` it signed (P-256, valid until 2126).
    const CA: &str = "-----BEGIN CERTIFICATE-----
MIIBiTCCAS+gAwIBAgIUeiUeR++amj8Ehik1nxbUcsrAHNMwCgYIKoZIzj0EAwIw
GTEXMBUGA1UEAwwOU3RyYWl0IHRlc3QgQ0EwIBcNMjYxMTIyMTAwNzE0WhgPMjEy
NjEwMjkxMDA3MTRaMBkxFzAVBgNVBAMMDlN0cmFpdCB0ZXN0IENBMFkwEwYHKoZI
zj0CAQYIKoZIzj0DAQcDQgAE9nFQ4clfmPlWpAdVhVwL072BH1paM0MViIXlZrOq
KcY3/9SoYL4uU9ygEzGrHKzat2hcZB0+yE+N8nhFlq/yNKNTMFEwHQYDVR0OBBYE
FPwKSUmKaBGLIYprgCTtIsm5ziDiMB8GA1UdIwQYMBaAFPwKSUmKaBGLIYprgCTt
Ism5ziDiMA8GA1UdEwEB/wQFMAMBAf8wCgYIKoZIzj0EAwIDSAAwRQIhAN/dwVvy
8wdwitIzQz3Bm8wNl0LGh4VukdjqsoVwiqwxAiAzqPGfvC08MsBsDkDTrZ0w/WhL
8bMdGp6hT9MCdhiP5g==
-----END CERTIFICATE-----
";
    const LEAF: &str = "-----BEGIN CERTIFICATE-----
MIIBtzCCAV2gAwIBAgIUKadNeIlbD3Tjo6ZlTXDq/PoeoGUwCgYIKoZIzj0EAwIw
GTEXMBUGA1UEAwwOU3RyYWl0IHRlc3QgQ0EwIBcNMjYxMTIyMTAwNzE0WhgPMjEy
NjEwMjkxMDA3MTRaMBIxEDAOBgNVBAMMB3dzLnRlc3QwWTATBgcqhkjOPQIBBggq
hkjOPQMBBwNCAATmCEA53K1Zn8xAt8Z5TtzCFfXsEUkjC+HoJ7DFsAc/lZkGW+Qm
PbPHeTCQy1/dkfdUqYiOtV/N2rPsd+pTBQAVo4GHMIGEMBIGA1UdEQQLMAmCB3dz
LnRlc3QwDAYDVR0TAQH/BAIwADALBgNVHQ8EBAMCB4AwEwYDVR0lBAwwCgYIKwYB
BQUHAwEwHQYDVR0OBBYEFIW3JM2rSm5WK41yw61VpLi83X2+MB8GA1UdIwQYMBaA
FPwKSUmKaBGLIYprgCTtIsm5ziDiMAoGCCqGSM49BAMCA0gAMEUCIDtyFmstK/6N
y/DrzGWb1TvoHXpJsu7zQ7TufdQHThjxAiEA5gfh1rnftUh09VzwKuj0OwR/VkSb
ZvkBRDu23qrRY2s=
-----END CERTIFICATE-----
";
    const LEAF_KEY: &str = "-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgT8pweTnG7Rnwg35W
qHMAyyJHnhVx2vP8xJxw+O4MnpihRANCAATmCEA53K1Zn8xAt8Z5TtzCFfXsEUkj
C+HoJ7DFsAc/lZkGW+QmPbPHeTCQy1/dkfdUqYiOtV/N2rPsd+pTBQAV
-----END PRIVATE KEY-----
";

    fn provider() -> Arc<rustls::crypto::CryptoProvider> {
        Arc::new(rustls::crypto::ring::default_provider())
    }

    fn server_config() -> Arc<rustls::ServerConfig> {
        let certs = vec![CertificateDer::from_pem_slice(LEAF.as_bytes()).expect("leaf")];
        let key = PrivateKeyDer::from_pem_slice(LEAF_KEY.as_bytes()).expect("key");
        let config = rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .expect("server config");
        Arc::new(config)
    }

    /// A blocking TLS client for `ws.test` on a std socket.
    fn client(
        addr: std::net::SocketAddr,
    ) -> rustls::StreamOwned<rustls::ClientConnection, std::net::TcpStream> {
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(CertificateDer::from_pem_slice(CA.as_bytes()).expect("ca"))
            .expect("root");
        let config = rustls::ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
        let name = ServerName::try_from("ws.test").expect("name");
        let conn = rustls::ClientConnection::new(Arc::new(config), name).expect("client");
        let sock = std::net::TcpStream::connect(addr).expect("connect");
        sock.set_read_timeout(Some(Duration::from_secs(20)))
            .expect("timeout");
        let mut tls = rustls::StreamOwned::new(conn, sock);
        while tls.conn.is_handshaking() {
            tls.conn.complete_io(&mut tls.sock).expect("handshake");
        }
        tls
    }

    /// Runs `server` (given the accepted, handshaken client) on each driver this machine has,
    /// with `client` on a thread.
    fn on_each_driver<S, F, C>(server: S, client: C)
    where
        S: Fn(TlsClient) -> F + Clone,
        F: Future<Output = ()>,
        C: Fn(std::net::SocketAddr) + Clone + Send + 'static,
    {
        let run = |server: S, client: C| async move {
            let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
            let addr = listener.local_addr().expect("addr");
            let peer = thread::spawn(move || client(addr));
            let (tcp, _) = listener.accept().await.expect("accept");
            let fd = tcp.as_raw_fd();
            let stream = crate::tls::accept(
                server_config(),
                Replay::new(Vec::new(), tcp),
                Duration::from_secs(10),
            )
            .await
            .expect("handshake");
            server(TlsClient::new(stream, fd)).await;
            peer.join().expect("client thread");
        };
        monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
            .enable_timer()
            .build()
            .expect("legacy runtime")
            .block_on(run(server.clone(), client.clone()));
        match monoio::RuntimeBuilder::<monoio::IoUringDriver>::new()
            .enable_timer()
            .build()
        {
            Ok(mut rt) => rt.block_on(run(server, client)),
            Err(e) => eprintln!("io_uring unavailable ({e}): tested on epoll only"),
        }
    }

    fn pattern(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 7 % 251) as u8).collect()
    }

    /// Each side sends 8 MiB before reading anything: only halves that read while a write is
    /// blocked get through it. Then `close_notify` ends each direction cleanly.
    #[test]
    fn tls_halves_read_and_write_at_once() {
        const LEN: usize = 8 << 20;
        on_each_driver(
            |client: TlsClient| async move {
                let (mut read, mut write) = client.into_halves();
                let send = async {
                    for chunk in pattern(LEN).chunks(64 * 1024) {
                        let (res, _) = write.write_all(chunk.to_vec()).await;
                        res.expect("server write");
                    }
                    write.shutdown().await.expect("close_notify");
                };
                let receive = async {
                    let mut got = Vec::with_capacity(LEN);
                    let mut buf = Vec::with_capacity(64 * 1024);
                    loop {
                        buf.clear();
                        let (res, b) = read.read(buf).await;
                        buf = b;
                        match res.expect("server read") {
                            0 => break,
                            n => got.extend_from_slice(&buf[..n]),
                        }
                    }
                    assert!(got == pattern(LEN), "the client's bytes changed");
                };
                monoio::join!(send, receive);
            },
            |addr| {
                let mut tls = client(addr);
                tls.write_all(&pattern(LEN)).expect("client write");
                tls.flush().expect("flush");
                let mut got = Vec::new();
                tls.read_to_end(&mut got)
                    .expect("clean end after close_notify");
                assert!(got == pattern(LEN), "the server's bytes changed");
                tls.conn.send_close_notify();
                tls.conn.complete_io(&mut tls.sock).expect("close_notify");
            },
        );
    }

    /// A forged record arrives while a write to the client is blocked (the client does not
    /// read): the read fails, and nothing panics (monoio-rustls' own split panics here).
    #[test]
    fn a_bad_record_during_a_blocked_write_fails_the_read() {
        let (done_tx, done_rx) = mpsc::channel::<()>();
        let done_rx = Arc::new(std::sync::Mutex::new(done_rx));
        let done_tx = Arc::new(std::sync::Mutex::new(done_tx));
        on_each_driver(
            move |client: TlsClient| {
                let done_tx = done_tx.clone();
                async move {
                    let (mut read, mut write) = client.into_halves();
                    let mut flood = std::pin::pin!(async {
                        let chunk = pattern(64 * 1024);
                        for _ in 0..1024 {
                            let (res, _) = write.write_all(chunk.clone()).await;
                            if res.is_err() {
                                return;
                            }
                        }
                        panic!("64 MiB went out to a client that reads nothing");
                    });
                    let mut receive = std::pin::pin!(read.read(Vec::with_capacity(1024)));
                    let res = monoio::select! {
                        _ = &mut flood => panic!("the flood ended first"),
                        (res, _) = &mut receive => res,
                    };
                    let e = res.expect_err("a forged record must fail the read");
                    assert_eq!(e.kind(), io::ErrorKind::InvalidData, "{e}");
                    let _ = done_tx.lock().map(|tx| tx.send(()));
                }
            },
            move |addr| {
                let mut tls = client(addr);
                // Let the server's writes fill the socket buffers first.
                thread::sleep(Duration::from_millis(300));
                let mut forged = vec![0x17, 0x03, 0x03, 0x00, 0x40];
                forged.extend_from_slice(&[0xAA; 0x40]);
                tls.sock.write_all(&forged).expect("forged record");
                let _ = done_rx
                    .lock()
                    .map(|rx| rx.recv_timeout(Duration::from_secs(20)));
            },
        );
    }

    /// A read dropped at its deadline leaves monoio-rustls without its read buffer (its next read
    /// would panic); the halves do not use that buffer, so the connection still works split.
    #[test]
    fn halves_work_after_a_read_was_dropped_at_its_deadline() {
        on_each_driver(
            |mut client: TlsClient| async move {
                let mut buf = Vec::new();
                let mut canceller = None;
                let waited = client
                    .read_keeping(&mut buf, Duration::from_millis(100), &mut canceller)
                    .await;
                assert!(waited.is_err(), "the client said nothing yet");
                let (mut read, mut write) = client.into_halves();
                let (res, buf) = read.read(Vec::with_capacity(1024)).await;
                assert_eq!(res.expect("read after the deadline"), 5);
                assert_eq!(&buf[..], b"hello");
                let (res, _) = write.write_all(b"world".to_vec()).await;
                res.expect("write");
                write.shutdown().await.expect("close_notify");
            },
            |addr| {
                let mut tls = client(addr);
                thread::sleep(Duration::from_millis(300));
                tls.write_all(b"hello").expect("write");
                tls.flush().expect("flush");
                let mut got = Vec::new();
                tls.read_to_end(&mut got).expect("clean end");
                assert_eq!(got, b"world");
            },
        );
    }
}
