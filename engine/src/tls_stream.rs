//! A server-side TLS stream that drives rustls directly over the two halves of a socket.
//!
//! Owns: the handshake (with the sniffed ClientHello bytes fed to rustls first), encrypted reads
//! and writes, read deadlines that leave the session usable, `close_notify`, and splitting into
//! halves that read and write at the same time (tunnels, WebSocket, TLS-terminated TCP) without
//! losing a byte. Must not: decide what runs inside TLS, or buffer more than one read of TLS
//! records and rustls' own bounded plaintext buffers.
//!
//! Why not monoio-rustls: its stream cannot be split safely (a read that meets a TLS error
//! writes the alert through a write buffer a pending write has lent out, and panics), a read
//! dropped at a deadline leaves its internal buffer lent and the next read panics, its own
//! buffer of unprocessed TLS bytes is lost if the stream is taken apart, and on a handshake
//! error it flushes only the first queued record (a TLS 1.3 client never gets the alert). Here
//! the socket halves are split from the start and rustls is shared by the two halves through
//! an `Rc<RefCell>` borrowed only between awaits.

use std::cell::RefCell;
use std::future::Future;
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use monoio::buf::{IoBuf, IoBufMut, IoVecBuf, IoVecBufMut, RawBuf};
use monoio::io::{
    AsyncReadRent, AsyncWriteRent, AsyncWriteRentExt, CancelableAsyncReadRent, Canceller,
    OwnedReadHalf, OwnedWriteHalf, Splitable,
};
use monoio::net::TcpStream;
use monoio::BufResult;
use rustls::{Connection, ServerConfig, ServerConnection};

use crate::client_stream::{reserve_spare, ClientStream, TimedOut};

/// TLS bytes read from the socket at a time: one full record and then some.
const TLS_READ: usize = 16 * 1024 + 512;

/// A TLS connection after its handshake: a client's (server side), or one to an upstream
/// (client side).
pub(crate) struct TlsClient {
    read: TlsReadHalf,
    write: TlsWriteHalf,
    fd: RawFd,
}

/// Runs the server handshake on `tcp`, feeding `prefix` (bytes the sniffer already read: the
/// start of the ClientHello) to rustls first, all within `wait`. On a handshake error the alert
/// rustls queued is sent before giving up.
pub(crate) async fn accept(
    config: Arc<ServerConfig>,
    tcp: TcpStream,
    prefix: Vec<u8>,
    wait: Duration,
) -> Result<TlsClient, HandshakeFailure> {
    let session = ServerConnection::new(config).map_err(|e| HandshakeFailure::of_rustls(&e))?;
    handshake(Connection::Server(session), tcp, prefix, wait).await
}

/// Runs the client handshake on `tcp` (an upstream connection) for `server_name` (SNI and the
/// name the certificate is verified against), within `wait`.
pub(crate) async fn connect(
    config: Arc<rustls::ClientConfig>,
    tcp: TcpStream,
    server_name: rustls::pki_types::ServerName<'static>,
    wait: Duration,
) -> Result<TlsClient, HandshakeFailure> {
    let session = rustls::ClientConnection::new(config, server_name)
        .map_err(|e| HandshakeFailure::of_rustls(&e))?;
    handshake(Connection::Client(session), tcp, Vec::new(), wait).await
}

async fn handshake(
    session: Connection,
    tcp: TcpStream,
    prefix: Vec<u8>,
    wait: Duration,
) -> Result<TlsClient, HandshakeFailure> {
    let fd = tcp.as_raw_fd();
    let session = Rc::new(RefCell::new(session));
    let (r, w) = tcp.into_split();
    let mut read = TlsReadHalf {
        session: session.clone(),
        tcp: r,
        raw: prefix,
        pos: 0,
        deadline: None,
        canceller: None,
    };
    let mut write = TlsWriteHalf {
        session: session.clone(),
        tcp: w,
        tls: Vec::new(),
    };
    let handshake = async {
        loop {
            write
                .flush_session()
                .await
                .map_err(|e| HandshakeFailure::of_io(&e))?;
            if !session.borrow().is_handshaking() {
                return Ok(());
            }
            match read.feed().await {
                Ok(true) => {}
                Ok(false) => return Err(HandshakeFailure::ClientClosed),
                Err(Fed::Io(e)) => return Err(HandshakeFailure::of_io(&e)),
                Err(Fed::Tls(e)) => {
                    // Tell the client why (best effort; it may be gone).
                    let _ = write.flush_session().await;
                    return Err(HandshakeFailure::of_rustls(&e));
                }
            }
        }
    };
    match monoio::time::timeout(wait, handshake).await {
        Err(_) => Err(HandshakeFailure::Timeout),
        Ok(Err(e)) => Err(e),
        Ok(Ok(())) => Ok(TlsClient { read, write, fd }),
    }
}

impl TlsClient {
    /// The protocol agreed by ALPN.
    pub(crate) fn alpn(&self) -> Option<Vec<u8>> {
        self.read
            .session
            .borrow()
            .alpn_protocol()
            .map(<[u8]>::to_vec)
    }
}

impl AsyncReadRent for TlsClient {
    fn read<T: IoBufMut>(&mut self, buf: T) -> impl Future<Output = BufResult<usize, T>> {
        self.read.read(buf)
    }

    fn readv<T: IoVecBufMut>(&mut self, buf: T) -> impl Future<Output = BufResult<usize, T>> {
        self.read.readv(buf)
    }
}

impl AsyncWriteRent for TlsClient {
    fn write<T: IoBuf>(&mut self, buf: T) -> impl Future<Output = BufResult<usize, T>> {
        self.write.write(buf)
    }

    fn writev<T: IoVecBuf>(&mut self, buf: T) -> impl Future<Output = BufResult<usize, T>> {
        self.write.writev(buf)
    }

    fn flush(&mut self) -> impl Future<Output = io::Result<()>> {
        self.write.flush()
    }

    fn shutdown(&mut self) -> impl Future<Output = io::Result<()>> {
        self.write.shutdown()
    }
}

impl ClientStream for TlsClient {
    const TLS: bool = true;

    fn fd(&self) -> RawFd {
        self.fd
    }

    /// The deadline is enforced on the socket read under rustls (cancelled and awaited, keeping
    /// what arrived), so the session stays usable after it.
    async fn read_keeping(
        &mut self,
        buf: &mut Vec<u8>,
        wait: Duration,
        _canceller: &mut Option<Canceller>,
    ) -> Result<io::Result<usize>, TimedOut> {
        reserve_spare(buf);
        let owned = std::mem::take(buf);
        let (len, cap) = (owned.len(), owned.capacity());
        self.read.deadline = Some(Instant::now() + wait);
        let (res, slice) = self.read.read(owned.slice_mut(len..cap)).await;
        self.read.deadline = None;
        *buf = slice.into_inner();
        match res {
            Err(e) if e.kind() == io::ErrorKind::TimedOut => Err(TimedOut),
            other => Ok(other),
        }
    }

    async fn close_write(&mut self) -> io::Result<()> {
        self.write.shutdown().await
    }

    type ReadHalf = TlsReadHalf;
    type WriteHalf = TlsWriteHalf;

    fn into_halves(self) -> (TlsReadHalf, TlsWriteHalf) {
        (self.read, self.write)
    }
}

/// The read half: TLS records from the socket go through rustls, and plaintext comes out.
/// rustls is only borrowed between awaits, so the write half may use it while this one waits
/// for the socket.
pub(crate) struct TlsReadHalf {
    session: Rc<RefCell<Connection>>,
    tcp: OwnedReadHalf<TcpStream>,
    /// TLS bytes from the socket (first: the sniffed ones); `raw[pos..]` are not given to
    /// rustls yet.
    raw: Vec<u8>,
    pos: usize,
    /// A socket read waiting past this fails with `TimedOut` (the session stays usable).
    deadline: Option<Instant>,
    canceller: Option<Canceller>,
}

/// The write half: plaintext is encrypted by rustls into `tls`, which is written out whole
/// before the next write starts.
pub(crate) struct TlsWriteHalf {
    session: Rc<RefCell<Connection>>,
    tcp: OwnedWriteHalf<TcpStream>,
    tls: Vec<u8>,
}

/// Why [`TlsReadHalf::feed`] failed.
enum Fed {
    Io(io::Error),
    Tls(rustls::Error),
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

    /// Gives rustls more TLS bytes: what is buffered, else one socket read. `Ok(false)`: the
    /// socket reached EOF (rustls was told).
    async fn feed(&mut self) -> Result<bool, Fed> {
        if self.pos < self.raw.len() {
            let mut session = self.session.borrow_mut();
            let mut rest = &self.raw[self.pos..];
            // rustls takes what fits its buffers (it refuses more while its plaintext buffer
            // is full: the reader must drain it first, which is the back-pressure we want).
            let n = session.read_tls(&mut rest).map_err(Fed::Io)?;
            self.pos += n;
            session.process_new_packets().map_err(Fed::Tls)?;
            return Ok(true);
        }
        let mut raw = std::mem::take(&mut self.raw);
        raw.clear();
        self.pos = 0;
        if raw.capacity() < TLS_READ {
            raw.reserve(TLS_READ);
        }
        let (res, raw) = self.read_socket(raw).await;
        self.raw = raw;
        match res {
            Ok(0) => {
                // Tell rustls of the EOF: its reader then ends cleanly after `close_notify`, or
                // with UnexpectedEof.
                let _ = self.session.borrow_mut().read_tls(&mut &[][..]);
                Ok(false)
            }
            Ok(_) => Ok(true),
            Err(e) => Err(Fed::Io(e)),
        }
    }

    /// One socket read, bounded by the deadline when one is set: the read is cancelled and
    /// awaited (bytes that arrived are kept), never dropped.
    async fn read_socket(&mut self, raw: Vec<u8>) -> BufResult<usize, Vec<u8>> {
        let Some(deadline) = self.deadline else {
            return self.tcp.read(raw).await;
        };
        let handle = self.canceller.get_or_insert_with(Canceller::new).handle();
        let mut read = std::pin::pin!(self.tcp.cancelable_read(raw, handle));
        let mut sleep = std::pin::pin!(monoio::time::sleep(
            deadline.saturating_duration_since(Instant::now())
        ));
        let finished = monoio::select! {
            done = &mut read => Some(done),
            _ = &mut sleep => None,
        };
        match finished {
            Some(done) => done,
            None => {
                self.canceller = self.canceller.take().map(Canceller::cancel);
                let (res, raw) = read.await;
                match res {
                    Ok(n) if n > 0 => (Ok(n), raw),
                    _ => (Err(io::ErrorKind::TimedOut.into()), raw),
                }
            }
        }
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
            match self.feed().await {
                Ok(true) => {}
                Ok(false) => {
                    let res = self.plaintext(&mut buf).unwrap_or_else(|| {
                        Err(io::Error::new(
                            io::ErrorKind::UnexpectedEof,
                            "TCP EOF without TLS close_notify",
                        ))
                    });
                    return (res, buf);
                }
                Err(Fed::Io(e)) => return (Err(e), buf),
                // rustls queued an alert; the write half sends it if it writes again.
                Err(Fed::Tls(e)) => {
                    return (Err(io::Error::new(io::ErrorKind::InvalidData, e)), buf)
                }
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
        self.session.borrow_mut().send_close_notify();
        self.flush_session().await?;
        self.tcp.shutdown().await
    }
}

impl TlsWriteHalf {
    /// Writes out every record rustls wants to send (handshake messages, alerts, tickets).
    async fn flush_session(&mut self) -> io::Result<()> {
        {
            let mut session = self.session.borrow_mut();
            while session.wants_write() {
                session.write_tls(&mut self.tls)?;
            }
        }
        self.send().await
    }

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

/// Why a handshake did not complete, as a bounded metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HandshakeFailure {
    Timeout,
    /// The client closed or reset the connection.
    ClientClosed,
    /// No common version, cipher suite, group or signature scheme.
    Incompatible,
    /// The client offered ALPN protocols and none is served here.
    NoApplicationProtocol,
    /// The client sent an alert (often: it does not trust our certificate).
    AlertReceived,
    /// Malformed or unexpected handshake messages.
    Protocol,
    Other,
}

impl HandshakeFailure {
    pub const ALL: [HandshakeFailure; 7] = [
        HandshakeFailure::Timeout,
        HandshakeFailure::ClientClosed,
        HandshakeFailure::Incompatible,
        HandshakeFailure::NoApplicationProtocol,
        HandshakeFailure::AlertReceived,
        HandshakeFailure::Protocol,
        HandshakeFailure::Other,
    ];

    pub fn label(self) -> &'static str {
        match self {
            HandshakeFailure::Timeout => "timeout",
            HandshakeFailure::ClientClosed => "client_closed",
            HandshakeFailure::Incompatible => "incompatible",
            HandshakeFailure::NoApplicationProtocol => "no_application_protocol",
            HandshakeFailure::AlertReceived => "alert_received",
            HandshakeFailure::Protocol => "protocol_error",
            HandshakeFailure::Other => "other",
        }
    }

    pub fn index(self) -> usize {
        self as usize
    }

    pub(crate) fn of_rustls(e: &rustls::Error) -> HandshakeFailure {
        use rustls::Error as E;
        match e {
            E::NoApplicationProtocol => HandshakeFailure::NoApplicationProtocol,
            E::PeerIncompatible(_) => HandshakeFailure::Incompatible,
            E::AlertReceived(_) => HandshakeFailure::AlertReceived,
            E::InvalidMessage(_)
            | E::PeerMisbehaved(_)
            | E::InappropriateHandshakeMessage { .. }
            | E::InappropriateMessage { .. }
            | E::DecryptError => HandshakeFailure::Protocol,
            _ => HandshakeFailure::Other,
        }
    }

    pub(crate) fn of_io(e: &io::Error) -> HandshakeFailure {
        if let Some(r) = e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) {
            return HandshakeFailure::of_rustls(r);
        }
        match e.kind() {
            io::ErrorKind::UnexpectedEof
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::BrokenPipe
            | io::ErrorKind::ConnectionAborted => HandshakeFailure::ClientClosed,
            _ => HandshakeFailure::Other,
        }
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
            let client = accept(server_config(), tcp, Vec::new(), Duration::from_secs(10))
                .await
                .expect("handshake");
            server(client).await;
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

    /// A read that reached its deadline leaves the session usable, whole or split.
    #[test]
    fn the_session_survives_a_read_deadline() {
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
