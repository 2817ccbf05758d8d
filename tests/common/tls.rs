//! TLS test helpers: a test CA that issues certificates with rcgen, PEM files on disk, rustls
//! client configurations (verifying against the test CA, or recording whatever the server
//! presents), tokio-rustls connections with a deadline, and a TLS-speaking origin.
//!
//! Every configuration names the ring provider explicitly (no process-wide default provider is
//! assumed), and every network step has a timeout.

use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_rustls::client::TlsStream;

/// Deadline of one TLS connect (TCP connect and handshake).
pub const TLS_TIMEOUT: Duration = Duration::from_secs(5);

pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Versions a client offers.
pub const TLS13: &[&rustls::SupportedProtocolVersion] = &[&rustls::version::TLS13];
pub const TLS12: &[&rustls::SupportedProtocolVersion] = &[&rustls::version::TLS12];
pub const ANY_VERSION: &[&rustls::SupportedProtocolVersion] =
    &[&rustls::version::TLS13, &rustls::version::TLS12];

/// A certificate authority for one test.
pub struct Ca {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

impl Ca {
    pub fn new(name: &str) -> Ca {
        let mut p = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.distinguished_name.push(DnType::CommonName, name);
        p.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let key = KeyPair::generate().expect("CA key");
        Ca {
            issuer: CertifiedIssuer::self_signed(p, key).expect("CA certificate"),
        }
    }

    pub fn der(&self) -> CertificateDer<'static> {
        self.issuer.der().clone()
    }

    /// A server certificate for `names` (DNS names or IP addresses), signed by this CA.
    pub fn issue(&self, names: &[&str]) -> Leaf {
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let mut p = CertificateParams::new(names.clone()).expect("leaf params");
        p.distinguished_name.push(
            DnType::CommonName,
            names.first().cloned().unwrap_or_default(),
        );
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        let key = KeyPair::generate().expect("leaf key");
        let cert = p.signed_by(&key, &*self.issuer).expect("leaf certificate");
        Leaf {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            der: cert.der().clone(),
        }
    }

    pub fn roots(&self) -> RootCertStore {
        let mut roots = RootCertStore::empty();
        roots.add(self.der()).expect("CA root");
        roots
    }
}

/// One issued certificate and its private key.
#[derive(Clone)]
pub struct Leaf {
    pub cert_pem: String,
    pub key_pem: String,
    pub der: CertificateDer<'static>,
}

impl Leaf {
    /// Writes `<stem>.pem` and `<stem>.key` into `dir`; returns their paths.
    pub fn write(&self, dir: &Path, stem: &str) -> (PathBuf, PathBuf) {
        let cert = dir.join(format!("{stem}.pem"));
        let key = dir.join(format!("{stem}.key"));
        std::fs::write(&cert, &self.cert_pem).expect("write certificate");
        std::fs::write(&key, &self.key_pem).expect("write key");
        (cert, key)
    }

    /// Replaces `cert` and `key` with this certificate, each written to a temporary file and
    /// renamed over the old one (as a certificate manager would).
    pub fn replace(&self, cert: &Path, key: &Path) {
        for (path, text) in [(cert, &self.cert_pem), (key, &self.key_pem)] {
            let tmp = path.with_extension("tmp");
            std::fs::write(&tmp, text).expect("write temporary file");
            std::fs::rename(&tmp, path).expect("rename over the old file");
        }
    }

    /// A rustls server configuration serving this certificate (for TLS origins).
    pub fn server_config(&self) -> rustls::ServerConfig {
        let key = PrivateKeyDer::from_pem_slice(self.key_pem.as_bytes()).expect("leaf key PEM");
        rustls::ServerConfig::builder_with_provider(provider())
            .with_protocol_versions(ANY_VERSION)
            .expect("versions")
            .with_no_client_auth()
            .with_single_cert(vec![self.der.clone()], key)
            .expect("origin certificate")
    }
}

fn alpn_ids(alpn: &[&str]) -> Vec<Vec<u8>> {
    alpn.iter().map(|a| a.as_bytes().to_vec()).collect()
}

/// A client that trusts `ca` only, offering `versions` and `alpn`. Its default in-memory session
/// store makes a second connection with the same configuration try to resume.
pub fn client(
    ca: &Ca,
    versions: &[&'static rustls::SupportedProtocolVersion],
    alpn: &[&str],
) -> Arc<ClientConfig> {
    let mut c = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(versions)
        .expect("client versions")
        .with_root_certificates(ca.roots())
        .with_no_client_auth();
    c.alpn_protocols = alpn_ids(alpn);
    Arc::new(c)
}

/// A client that accepts any certificate (the handshake signatures are still verified, so the
/// server proves it holds the key of what it presented): for looking at what a server presents
/// for names its certificate does not cover.
pub fn any_cert_client(
    versions: &[&'static rustls::SupportedProtocolVersion],
    alpn: &[&str],
) -> Arc<ClientConfig> {
    let mut c = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(versions)
        .expect("client versions")
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider())))
        .with_no_client_auth();
    c.alpn_protocols = alpn_ids(alpn);
    Arc::new(c)
}

#[derive(Debug)]
struct AnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// `name` as rustls takes it: a DNS name (sent as SNI) or an IP address (no SNI is sent).
pub fn server_name(name: &str) -> ServerName<'static> {
    ServerName::try_from(name.to_string()).expect("server name")
}

/// TCP connect and TLS handshake to `addr` as `name`, within [`TLS_TIMEOUT`].
pub async fn tls_connect(
    addr: SocketAddr,
    config: Arc<ClientConfig>,
    name: &str,
) -> io::Result<TlsStream<tokio::net::TcpStream>> {
    let connector = tokio_rustls::TlsConnector::from(config);
    let name = server_name(name);
    let attempt = async move {
        let tcp = tokio::net::TcpStream::connect(addr).await?;
        let _ = tcp.set_nodelay(true);
        connector.connect(name, tcp).await
    };
    match tokio::time::timeout(TLS_TIMEOUT, attempt).await {
        Ok(r) => r,
        Err(_) => Err(io::Error::new(
            io::ErrorKind::TimedOut,
            format!("TLS connect to {addr} did not finish within {TLS_TIMEOUT:?}"),
        )),
    }
}

/// The leaf certificate the server presented.
pub fn peer_leaf(s: &TlsStream<tokio::net::TcpStream>) -> CertificateDer<'static> {
    s.get_ref()
        .1
        .peer_certificates()
        .and_then(|c| c.first())
        .expect("the server presented no certificate")
        .clone()
        .into_owned()
}

/// The ALPN protocol both sides agreed on.
pub fn alpn(s: &TlsStream<tokio::net::TcpStream>) -> Option<String> {
    s.get_ref()
        .1
        .alpn_protocol()
        .map(|a| String::from_utf8_lossy(a).into_owned())
}

/// Reads exactly `n` bytes within `limit`.
pub async fn read_exactly<R: tokio::io::AsyncRead + Unpin>(
    r: &mut R,
    n: usize,
    limit: Duration,
) -> io::Result<Vec<u8>> {
    let mut buf = vec![0u8; n];
    match tokio::time::timeout(limit, r.read_exact(&mut buf)).await {
        Ok(Ok(_)) => Ok(buf),
        Ok(Err(e)) => Err(e),
        Err(_) => Err(io::Error::new(
            io::ErrorKind::TimedOut,
            format!("{n} bytes did not arrive within {limit:?}"),
        )),
    }
}

/// A TLS origin on 127.0.0.1 (tokio-rustls on its own thread): after the handshake it writes
/// `origin sni=<name>\n` and then echoes every byte until end-of-file.
pub struct TlsOrigin {
    pub addr: SocketAddr,
    handshakes: Arc<AtomicUsize>,
    /// SNI of every completed handshake.
    names: Arc<Mutex<Vec<Option<String>>>>,
}

impl TlsOrigin {
    pub fn start(leaf: &Leaf) -> TlsOrigin {
        let config = Arc::new(leaf.server_config());
        let std_listener = std::net::TcpListener::bind("127.0.0.1:0").expect("TLS origin bind");
        std_listener.set_nonblocking(true).expect("nonblocking");
        let addr = std_listener.local_addr().expect("TLS origin addr");
        let handshakes = Arc::new(AtomicUsize::new(0));
        let names = Arc::new(Mutex::new(Vec::new()));
        let (count, seen) = (handshakes.clone(), names.clone());
        thread::spawn(move || {
            super::http::runtime().block_on(async move {
                let listener =
                    tokio::net::TcpListener::from_std(std_listener).expect("TLS origin listener");
                let acceptor = tokio_rustls::TlsAcceptor::from(config);
                loop {
                    let Ok((tcp, _)) = listener.accept().await else {
                        continue;
                    };
                    let (acceptor, count, seen) = (acceptor.clone(), count.clone(), seen.clone());
                    tokio::spawn(async move {
                        let accept = tokio::time::timeout(TLS_TIMEOUT, acceptor.accept(tcp));
                        let Ok(Ok(mut tls)) = accept.await else {
                            return;
                        };
                        let sni = tls.get_ref().1.server_name().map(str::to_string);
                        count.fetch_add(1, Ordering::SeqCst);
                        let greeting = format!("origin sni={}\n", sni.as_deref().unwrap_or("-"));
                        seen.lock().unwrap_or_else(|e| e.into_inner()).push(sni);
                        if tls.write_all(greeting.as_bytes()).await.is_err() {
                            return;
                        }
                        let mut buf = vec![0u8; 64 * 1024];
                        loop {
                            let read = tokio::time::timeout(super::IO_TIMEOUT, tls.read(&mut buf));
                            match read.await {
                                Ok(Ok(0)) | Ok(Err(_)) | Err(_) => break,
                                Ok(Ok(n)) => {
                                    if tls.write_all(&buf[..n]).await.is_err() {
                                        return;
                                    }
                                }
                            }
                        }
                        let _ = tls.shutdown().await;
                    });
                }
            })
        });
        TlsOrigin {
            addr,
            handshakes,
            names,
        }
    }

    pub fn handshakes(&self) -> usize {
        self.handshakes.load(Ordering::SeqCst)
    }

    pub fn names(&self) -> Vec<Option<String>> {
        self.names.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}
