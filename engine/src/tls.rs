//! TLS termination: certificates, the rustls server configuration of each TLS listener, and the
//! handshake.
//!
//! Owns: loading PEM certificate chains and keys (with errors naming the file and the reason),
//! choosing a certificate by SNI (exact names, then wildcards longest first, then the default),
//! versions, ALPN, stateless session tickets, the handshake deadline, and naming why a handshake
//! failed (the `reason` label of `strait_tls_handshake_failures_total`).
//! Must not: decide what runs inside TLS (the connection entry does), or share mutable state
//! between cores. The one cross-core object is the ticket key rotator: a client must be able to
//! resume on any core, so all cores seal tickets with the same keys (rustls guards the rotation
//! with an uncontended read lock).

pub use crate::tls_stream::HandshakeFailure;
use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rustls::crypto::ring as provider;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::config::{CertificateConfig, TlsListenerConfig, TlsVersion};

/// A certificate or key that cannot be used, with the file it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateError {
    pub file: PathBuf,
    pub reason: String,
}

impl fmt::Display for CertificateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.file.display(), self.reason)
    }
}

impl std::error::Error for CertificateError {}

/// One loaded certificate: the chain and key rustls signs with, and the names it answers for.
#[derive(Debug)]
pub struct LoadedCertificate {
    pub key: Arc<CertifiedKey>,
    /// Lowercase; wildcards as `*.example.com`.
    pub names: Vec<String>,
}

/// Loads and checks one certificate entry: the chain parses, the key parses and matches the
/// leaf, and there is at least one name (configured, or DNS names of the subjectAltName).
pub fn load_certificate(c: &CertificateConfig) -> Result<LoadedCertificate, CertificateError> {
    let cert_err = |reason: String| CertificateError {
        file: c.cert.clone(),
        reason,
    };
    let key_err = |reason: String| CertificateError {
        file: c.key.clone(),
        reason,
    };
    let pem = read_file(&c.cert)?;
    let chain = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| cert_err(format!("not a PEM certificate chain: {e}")))?;
    if chain.is_empty() {
        return Err(cert_err(
            "no \"BEGIN CERTIFICATE\" block: expected the leaf certificate, then its chain".into(),
        ));
    }
    let key_pem = read_file(&c.key)?;
    let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| {
        key_err(format!(
            "no usable private key ({e}): expected a PEM \"PRIVATE KEY\", \"RSA PRIVATE KEY\" or \
             \"EC PRIVATE KEY\" block"
        ))
    })?;
    let signer = provider::sign::any_supported_type(&key)
        .map_err(|e| key_err(format!("unsupported private key: {e}")))?;
    let certified = CertifiedKey::new(chain, signer);
    match certified.keys_match() {
        Ok(()) | Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => {}
        Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch)) => {
            return Err(key_err(format!(
                "this key does not belong to the certificate in {}",
                c.cert.display()
            )))
        }
        Err(e) => return Err(cert_err(format!("unusable certificate: {e}"))),
    }
    let names = if c.server_names.is_empty() {
        san_dns_names(&certified.cert[0]).map_err(cert_err)?
    } else {
        c.server_names
            .iter()
            .map(|n| n.to_ascii_lowercase())
            .collect()
    };
    if names.is_empty() {
        return Err(cert_err(
            "the certificate has no DNS names in its subjectAltName: list them in `server_names`"
                .into(),
        ));
    }
    Ok(LoadedCertificate {
        key: Arc::new(certified),
        names,
    })
}

fn read_file(path: &Path) -> Result<Vec<u8>, CertificateError> {
    std::fs::read(path).map_err(|e| CertificateError {
        file: path.to_path_buf(),
        reason: format!("cannot read: {e}"),
    })
}

/// DNS names of the leaf's subjectAltName extension, lowercased.
fn san_dns_names(leaf: &CertificateDer<'_>) -> Result<Vec<String>, String> {
    use x509_parser::extensions::GeneralName;
    let (_, cert) = x509_parser::parse_x509_certificate(leaf.as_ref())
        .map_err(|e| format!("the leaf certificate does not parse: {e}"))?;
    let mut names = Vec::new();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for name in &san.value.general_names {
            if let GeneralName::DNSName(n) = name {
                names.push(n.to_ascii_lowercase());
            }
        }
    }
    Ok(names)
}

/// Picks the certificate for a ClientHello's SNI: exact name, then the longest matching
/// wildcard, then the first configured certificate.
#[derive(Debug)]
pub struct SniResolver {
    exact: HashMap<String, Arc<CertifiedKey>>,
    /// `(".example.com", key)`, longest suffix first.
    wildcard: Vec<(String, Arc<CertifiedKey>)>,
    default: Arc<CertifiedKey>,
}

impl SniResolver {
    pub fn new(certs: &[LoadedCertificate]) -> Option<SniResolver> {
        let default = certs.first()?.key.clone();
        let mut exact = HashMap::new();
        let mut wildcard = Vec::new();
        for c in certs {
            for name in &c.names {
                match name.strip_prefix('*') {
                    Some(suffix) if suffix.starts_with('.') => {
                        if !wildcard.iter().any(|(s, _)| s == suffix) {
                            wildcard.push((suffix.to_string(), c.key.clone()));
                        }
                    }
                    _ => {
                        // The first certificate naming a host wins, as in the file.
                        exact.entry(name.clone()).or_insert_with(|| c.key.clone());
                    }
                }
            }
        }
        wildcard.sort_by_key(|(s, _)| std::cmp::Reverse(s.len()));
        Some(SniResolver {
            exact,
            wildcard,
            default,
        })
    }

    pub fn pick(&self, server_name: Option<&str>) -> &Arc<CertifiedKey> {
        let Some(name) = server_name else {
            return &self.default;
        };
        if let Some(k) = self.exact.get(name) {
            return k;
        }
        // A wildcard covers exactly one label (RFC 6125 §6.4.3): `*.example.com` matches
        // `a.example.com`, not `a.b.example.com`.
        self.wildcard
            .iter()
            .find(|(suffix, _)| {
                name.len() > suffix.len()
                    && name.ends_with(suffix.as_str())
                    && !name[..name.len() - suffix.len()].contains('.')
            })
            .map(|(_, k)| k)
            .unwrap_or(&self.default)
    }
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        // rustls hands the SNI over already lowercased and validated as a DNS name.
        Some(self.pick(hello.server_name()).clone())
    }
}

/// Builds a listener's rustls configuration from its certificates. `ticketer` is shared by every
/// configuration of the listener (and survives certificate reloads), so tickets stay valid on
/// every core and across reloads.
pub fn server_config(
    t: &TlsListenerConfig,
    ticketer: &Arc<dyn rustls::server::ProducesTickets>,
) -> Result<ServerConfig, CertificateError> {
    let certs = t
        .certificates
        .iter()
        .map(load_certificate)
        .collect::<Result<Vec<_>, _>>()?;
    let resolver = SniResolver::new(&certs).ok_or_else(|| CertificateError {
        file: PathBuf::new(),
        reason: "no certificate configured".into(),
    })?;
    let versions: &[&'static rustls::SupportedProtocolVersion] = match t.min_version {
        TlsVersion::Tls12 => &[&rustls::version::TLS13, &rustls::version::TLS12],
        TlsVersion::Tls13 => &[&rustls::version::TLS13],
    };
    let mut config = ServerConfig::builder_with_provider(Arc::new(provider::default_provider()))
        .with_protocol_versions(versions)
        .map_err(|e| CertificateError {
            file: PathBuf::new(),
            reason: format!("TLS versions: {e}"),
        })?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(resolver));
    config.alpn_protocols = t.alpn.iter().map(|a| a.as_bytes().to_vec()).collect();
    // Stateless tickets only: the default session-id cache is one mutex shared by all cores.
    config.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
    if t.session_tickets {
        config.ticketer = ticketer.clone();
        config.send_tls13_tickets = 2;
    } else {
        config.send_tls13_tickets = 0;
    }
    config.max_early_data_size = 0;
    Ok(config)
}

/// The ticket key rotator of one listener (keys rotate every 6 hours, held only in memory).
pub fn new_ticketer() -> Result<Arc<dyn rustls::server::ProducesTickets>, String> {
    provider::Ticketer::new().map_err(|e| format!("cannot create the session ticket keys: {e}"))
}

/// The control plane's view of every TLS listener: ticket keys and the current configuration.
/// Lives on the main thread (behind the server's mutex, touched only at start and on reload);
/// cores get copies over their control channel.
pub struct ListenerTls {
    /// `(listener index, ticket keys, current configuration)`.
    listeners: Vec<(
        usize,
        Arc<dyn rustls::server::ProducesTickets>,
        Arc<ServerConfig>,
    )>,
    /// `(cluster index, client configuration)` of clusters that speak TLS.
    upstream: Vec<(usize, Arc<rustls::ClientConfig>)>,
    /// Modification stamps of every certificate and key file, for the watcher.
    stamps: Vec<FileStamp>,
}

type FileStamp = (PathBuf, Option<(std::time::SystemTime, u64)>);

impl ListenerTls {
    /// Loads every TLS listener's certificates and every TLS cluster's trusted CAs.
    /// `Err((what, error))` names the listener or cluster.
    pub fn load_all(config: &crate::config::Config) -> Result<ListenerTls, (String, String)> {
        let mut listeners = Vec::new();
        for (i, l) in config.listeners.iter().enumerate() {
            let Some(t) = l.tls.as_deref() else { continue };
            let ticketer = new_ticketer().map_err(|e| (l.name.clone(), e))?;
            let built = server_config(t, &ticketer).map_err(|e| (l.name.clone(), e.to_string()))?;
            listeners.push((i, ticketer, Arc::new(built)));
        }
        let mut upstream = Vec::new();
        for (i, c) in config.clusters.iter().enumerate() {
            let Some(t) = &c.http.tls else { continue };
            let built = client_config(t, c.http.protocol)
                .map_err(|e| (format!("cluster {:?}", c.name), e.to_string()))?;
            if t.insecure {
                tracing::warn!(cluster = %c.name, "upstream TLS certificates are not verified (insecure = true)");
            }
            upstream.push((i, Arc::new(built)));
        }
        Ok(ListenerTls {
            listeners,
            upstream,
            stamps: stamps(config),
        })
    }

    /// The client configurations each core installs at start.
    pub(crate) fn upstream_configs(&self) -> Vec<(usize, Arc<rustls::ClientConfig>)> {
        self.upstream.clone()
    }

    /// What each core installs at start.
    pub(crate) fn configs(&self) -> Vec<(usize, Arc<ServerConfig>)> {
        self.listeners
            .iter()
            .map(|(i, _, c)| (*i, c.clone()))
            .collect()
    }
}

fn stamps(config: &crate::config::Config) -> Vec<FileStamp> {
    config
        .listeners
        .iter()
        .filter_map(|l| l.tls.as_deref())
        .flat_map(|t| &t.certificates)
        .flat_map(|c| [c.cert.clone(), c.key.clone()])
        .map(|p| {
            let stamp = stamp(&p);
            (p, stamp)
        })
        .collect()
}

fn stamp(path: &Path) -> Option<(std::time::SystemTime, u64)> {
    let m = std::fs::metadata(path).ok()?;
    Some((m.modified().ok()?, m.len()))
}

/// Reloads every TLS listener from its files; all or nothing. Cores swap atomically per
/// listener; handshakes in flight keep their configuration. The service manager is told
/// (`RELOADING=1`, then `READY=1`), whatever the outcome.
pub(crate) fn reload(
    tls: &std::sync::Mutex<ListenerTls>,
    shared: &crate::shared::Shared,
) -> Result<usize, String> {
    crate::notify::reloading();
    let result = reload_listeners(tls, shared);
    crate::notify::notify("READY=1");
    result
}

fn reload_listeners(
    tls: &std::sync::Mutex<ListenerTls>,
    shared: &crate::shared::Shared,
) -> Result<usize, String> {
    let mut state = tls.lock().map_err(|_| "TLS state poisoned".to_string())?;
    let published = shared.published();
    let config = &published.config;
    let mut fresh = Vec::with_capacity(state.listeners.len());
    for (i, ticketer, _) in &state.listeners {
        let l = &config.listeners[*i];
        let Some(t) = l.tls.as_deref() else { continue };
        let built =
            server_config(t, ticketer).map_err(|e| format!("listener {:?}: {e}", l.name))?;
        fresh.push((*i, Arc::new(built)));
    }
    for (slot, (_, config)) in state.listeners.iter_mut().zip(&fresh) {
        slot.2 = config.clone();
    }
    state.stamps = stamps(config);
    for c in &shared.controls {
        let _ = c.send(crate::control::Control::Tls(fresh.clone()));
    }
    Ok(fresh.len())
}

/// Polls the certificate and key files (every 2 s) and reloads when one changed. A file caught
/// mid-write fails to load; the next poll retries, and until then the old certificates stay.
pub(crate) struct CertificateWatcher {
    stop: Arc<std::sync::atomic::AtomicBool>,
}

const WATCH_PERIOD: Duration = Duration::from_secs(2);

impl CertificateWatcher {
    pub(crate) fn start(
        tls: Arc<std::sync::Mutex<ListenerTls>>,
        shared: Arc<crate::shared::Shared>,
    ) -> Option<CertificateWatcher> {
        if tls.lock().map(|t| t.listeners.is_empty()).unwrap_or(true) {
            return None;
        }
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stopped = stop.clone();
        let spawned = std::thread::Builder::new()
            .name("strait-cert-watch".into())
            .spawn(move || {
                let mut warned = false;
                while !stopped.load(std::sync::atomic::Ordering::Relaxed) {
                    std::thread::sleep(WATCH_PERIOD);
                    let changed = tls.lock().map(|t| {
                        t.stamps.iter().any(|(path, old)| stamp(path) != *old)
                    });
                    if !matches!(changed, Ok(true)) {
                        continue;
                    }
                    match reload(&tls, &shared) {
                        Ok(n) => {
                            warned = false;
                            tracing::info!(listeners = n, "certificates changed on disk: reloaded");
                        }
                        Err(e) if !warned => {
                            warned = true;
                            tracing::warn!(error = %e, "certificates changed on disk but cannot be loaded; keeping the old ones");
                        }
                        Err(_) => {}
                    }
                }
            });
        spawned.ok().map(|_| CertificateWatcher { stop })
    }

    pub(crate) fn stop(&self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

/// Where system CA bundles live on common distributions (Debian/Ubuntu, Fedora/RHEL, Alpine,
/// openSUSE).
const SYSTEM_CA_BUNDLES: [&str; 4] = [
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/cert.pem",
    "/etc/ssl/ca-bundle.pem",
];

/// The rustls client configuration for a cluster's TLS: trusted roots from `ca_file` or the
/// system bundle (or no verification with `insecure`), ALPN `h2` for `protocol = "h2"` and
/// `http/1.1` for HTTP/1.1 clusters.
pub fn client_config(
    t: &crate::config::UpstreamTlsConfig,
    protocol: crate::config::UpstreamProtocol,
) -> Result<rustls::ClientConfig, CertificateError> {
    let provider = Arc::new(provider::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| CertificateError {
            file: PathBuf::new(),
            reason: format!("TLS versions: {e}"),
        })?;
    let mut config = if t.insecure {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoVerification(provider)))
            .with_no_client_auth()
    } else {
        let file = match &t.ca_file {
            Some(f) => f.clone(),
            None => SYSTEM_CA_BUNDLES
                .iter()
                .map(PathBuf::from)
                .find(|p| p.is_file())
                .ok_or_else(|| CertificateError {
                    file: PathBuf::from(SYSTEM_CA_BUNDLES[0]),
                    reason: "no system CA bundle found: set `ca_file` (or install ca-certificates)"
                        .into(),
                })?,
        };
        let pem = read_file(&file)?;
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(&pem) {
            let cert = cert.map_err(|e| CertificateError {
                file: file.clone(),
                reason: format!("not a PEM certificate bundle: {e}"),
            })?;
            // A bundle may hold certificates rustls cannot use (old or odd ones): skip those.
            let _ = roots.add(cert);
        }
        if roots.is_empty() {
            return Err(CertificateError {
                file,
                reason: "no usable CA certificate in this file".into(),
            });
        }
        builder.with_root_certificates(roots).with_no_client_auth()
    };
    config.alpn_protocols = match protocol {
        crate::config::UpstreamProtocol::H2 => vec![b"h2".to_vec()],
        _ => vec![b"http/1.1".to_vec()],
    };
    Ok(config)
}

/// `insecure = true`: any certificate is accepted (handshake signatures are still checked).
#[derive(Debug)]
struct NoVerification(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for NoVerification {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &rustls_pki_types::ServerName<'_>,
        _ocsp: &[u8],
        _now: rustls_pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
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
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// `example.com:8443` → `example.com`; `[::1]:8443` → `::1`.
pub(crate) fn host_without_port(host: &str) -> &str {
    if let Some(rest) = host.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match host.rsplit_once(':') {
        Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => host,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> Arc<CertifiedKey> {
        // Never used to sign: the resolver only hands keys out.
        struct NoKey;
        impl std::fmt::Debug for NoKey {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("NoKey")
            }
        }
        impl rustls::sign::SigningKey for NoKey {
            fn choose_scheme(
                &self,
                _: &[rustls::SignatureScheme],
            ) -> Option<Box<dyn rustls::sign::Signer>> {
                None
            }
            fn algorithm(&self) -> rustls::SignatureAlgorithm {
                rustls::SignatureAlgorithm::ECDSA
            }
        }
        Arc::new(CertifiedKey::new(
            vec![CertificateDer::from(vec![0u8])],
            Arc::new(NoKey),
        ))
    }

    #[test]
    fn sni_picks_exact_then_longest_wildcard_then_default() {
        let certs: Vec<LoadedCertificate> = [
            vec!["default.test"],
            vec!["*.example.com", "example.com"],
            vec!["*.api.example.com"],
            vec!["www.example.com"],
        ]
        .into_iter()
        .map(|names| LoadedCertificate {
            key: key(),
            names: names.into_iter().map(String::from).collect(),
        })
        .collect();
        let r = SniResolver::new(&certs).expect("resolver");
        let which = |name: Option<&str>| {
            let k = r.pick(name);
            certs.iter().position(|c| Arc::ptr_eq(&c.key, k))
        };
        assert_eq!(which(None), Some(0));
        assert_eq!(which(Some("unknown.test")), Some(0));
        assert_eq!(which(Some("example.com")), Some(1));
        assert_eq!(which(Some("a.example.com")), Some(1));
        assert_eq!(
            which(Some("www.example.com")),
            Some(3),
            "exact beats wildcard"
        );
        assert_eq!(
            which(Some("v1.api.example.com")),
            Some(2),
            "longest wildcard"
        );
        assert_eq!(
            which(Some("a.b.example.com")),
            Some(0),
            "a wildcard covers one label"
        );
        assert_eq!(which(Some("default.test")), Some(0));
    }
}
