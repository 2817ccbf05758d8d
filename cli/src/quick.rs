//! The quick form: `strait run --listen ADDR --upstream ADDR [--upstream ADDR ...] --mode tcp`,
//! optionally with `--tls-cert FILE --tls-key FILE`.
//!
//! Owns: building the same validated `Config` a file would give, from flags, with the file format's
//! defaults. One listener named `main`, one cluster named `upstream`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use strait_engine::config::http::defaults as http_defaults;
use strait_engine::config::tls::defaults as tls_defaults;
use strait_engine::config::{
    defaults, parse_duration, CertificateConfig, ClusterConfig, Config, EndpointConfig,
    ListenerConfig, ListenerProtocol, LogConfig, ProtocolSet, ProxyProtocol, RuntimeConfig,
    SniffConfig, TlsListenerConfig, TlsVersion, UpstreamHttpConfig,
};

use crate::config_file::check_readable;

#[derive(clap::Args, Default, Debug)]
pub struct QuickArgs {
    /// Quick form: address to listen on (instead of --config).
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<SocketAddr>,
    /// Quick form: an upstream endpoint; repeat for several (weighted round robin, weight 1).
    #[arg(long, value_name = "ADDR", requires = "listen")]
    pub upstream: Vec<SocketAddr>,
    /// Quick form: what the listener speaks: tcp, udp, http, or auto (sniffs each connection:
    /// TLS with --tls-cert, HTTP/1.1 and h2c to a catch-all route, anything else relayed as TCP)
    /// [default: tcp].
    #[arg(long, value_name = "MODE", requires = "listen")]
    pub mode: Option<String>,
    /// Quick form: terminate TLS on the listener with this certificate chain (PEM, leaf first);
    /// needs --tls-key. With --mode http or auto, h2 and http/1.1 are offered by ALPN.
    #[arg(long, value_name = "FILE", requires = "listen")]
    pub tls_cert: Option<PathBuf>,
    /// Quick form: the private key (PEM) of --tls-cert.
    #[arg(long, value_name = "FILE", requires = "listen")]
    pub tls_key: Option<PathBuf>,
    /// Quick form: close a connection after this long without traffic [default: 5m].
    #[arg(long, value_name = "DURATION", requires = "listen")]
    pub idle_timeout: Option<String>,
    /// Quick form: upstream connect timeout per attempt [default: 3s].
    #[arg(long, value_name = "DURATION", requires = "listen")]
    pub connect_timeout: Option<String>,
    /// Quick form: endpoints tried per client connection [default: 3].
    #[arg(long, value_name = "N", requires = "listen")]
    pub connect_attempts: Option<u32>,
    /// Quick form: send a PROXY protocol header upstream: off, v1 or v2 [default: off].
    #[arg(long, value_name = "VERSION", requires = "listen")]
    pub proxy_protocol: Option<String>,
}

impl QuickArgs {
    pub fn to_config(&self) -> Result<Config, String> {
        let Some(listen) = self.listen else {
            return Err(
                "nothing to run: give --config FILE, or --listen ADDR with at least one --upstream ADDR"
                    .into(),
            );
        };
        if self.upstream.is_empty() {
            return Err("--listen needs at least one --upstream ADDR".into());
        }
        let mode = self.mode.as_deref().unwrap_or("tcp");
        let protocol = ListenerProtocol::parse(mode).ok_or_else(|| {
            format!(
                "--mode: {mode:?} is not supported; valid: {}",
                ListenerProtocol::VALID
            )
        })?;
        let duration = |flag: &str, v: &Option<String>, default| match v {
            Some(v) => parse_duration(v).map_err(|e| format!("{flag}: {e}")),
            None => Ok(default),
        };
        let tls = self.tls(protocol)?;
        let serves_http = matches!(protocol, ListenerProtocol::Http | ListenerProtocol::Auto);
        let sniff = (protocol == ListenerProtocol::Auto).then(|| SniffConfig {
            protocols: ProtocolSet {
                tls: tls.is_some(),
                ..ProtocolSet::ALL
            },
            timeout: tls_defaults::SNIFF_TIMEOUT,
        });
        let proxy_protocol = match &self.proxy_protocol {
            None => ProxyProtocol::Off,
            Some(v) => ProxyProtocol::parse(v).ok_or_else(|| {
                format!(
                    "--proxy-protocol: {v:?} is not one of {}",
                    ProxyProtocol::VALID
                )
            })?,
        };
        let config = Config {
            runtime: RuntimeConfig::default(),
            admin: None,
            log: LogConfig::default(),
            listeners: vec![ListenerConfig {
                name: "main".into(),
                address: listen,
                protocol,
                // On an auto listener, where raw TCP goes.
                cluster: (protocol != ListenerProtocol::Http).then_some(0),
                idle_timeout: duration(
                    "--idle-timeout",
                    &self.idle_timeout,
                    defaults::IDLE_TIMEOUT,
                )?,
                backlog: defaults::BACKLOG,
                http: serves_http.then(|| Box::new(http_defaults::catch_all(0))),
                sniff,
                tls: tls.map(|certificate| {
                    Box::new(TlsListenerConfig {
                        certificates: vec![certificate],
                        min_version: TlsVersion::Tls12,
                        alpn: if serves_http {
                            tls_defaults::alpn_http()
                        } else {
                            Vec::new()
                        },
                        session_tickets: true,
                        handshake_timeout: tls_defaults::HANDSHAKE_TIMEOUT,
                        passthrough: Vec::new(),
                    })
                }),
            }],
            clusters: vec![ClusterConfig {
                name: "upstream".into(),
                endpoints: self
                    .upstream
                    .iter()
                    .map(|&address| EndpointConfig { address, weight: 1 })
                    .collect(),
                connect_timeout: duration(
                    "--connect-timeout",
                    &self.connect_timeout,
                    defaults::CONNECT_TIMEOUT,
                )?,
                connect_attempts: self.connect_attempts.unwrap_or(defaults::CONNECT_ATTEMPTS),
                proxy_protocol,
                http: UpstreamHttpConfig::default(),
            }],
            access_log: None,
        };
        config.validate().map_err(|issues| {
            issues
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; ")
        })?;
        Ok(config)
    }

    /// The certificate of `--tls-cert`/`--tls-key` (both or neither), checked to be readable.
    fn tls(&self, protocol: ListenerProtocol) -> Result<Option<CertificateConfig>, String> {
        let (cert, key) = match (&self.tls_cert, &self.tls_key) {
            (None, None) => return Ok(None),
            (Some(_), None) => {
                return Err(
                    "--tls-cert needs --tls-key FILE (the certificate's private key)".into(),
                )
            }
            (None, Some(_)) => {
                return Err("--tls-key needs --tls-cert FILE (the certificate chain)".into())
            }
            (Some(c), Some(k)) => (c, k),
        };
        if protocol == ListenerProtocol::Udp {
            return Err(
                "--tls-cert: TLS is for TCP listeners (DTLS is not supported); use --mode tcp, \
                 http or auto"
                    .into(),
            );
        }
        let file = |flag: &str, p: &Path| {
            let p = absolute(p);
            check_readable(&p).map_err(|e| format!("{flag}: {e}"))?;
            Ok::<_, String>(p)
        };
        Ok(Some(CertificateConfig {
            cert: file("--tls-cert", cert)?,
            key: file("--tls-key", key)?,
            server_names: Vec::new(),
        }))
    }
}

/// `p` relative to the working directory (as a config file's paths are to its directory), so a
/// reload finds the same file.
fn absolute(p: &Path) -> PathBuf {
    match std::env::current_dir() {
        Ok(cwd) if p.is_relative() => cwd.join(p).components().collect(),
        _ => p.to_path_buf(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn args(listen: &str, upstreams: &[&str]) -> QuickArgs {
        QuickArgs {
            listen: Some(listen.parse().unwrap()),
            upstream: upstreams.iter().map(|u| u.parse().unwrap()).collect(),
            ..Default::default()
        }
    }

    #[test]
    fn quick_form_builds_one_listener_and_cluster_with_defaults() {
        let c = args("127.0.0.1:8080", &["127.0.0.1:9000", "127.0.0.1:9001"])
            .to_config()
            .unwrap();
        assert_eq!(c.listeners.len(), 1);
        assert_eq!(c.listeners[0].address, "127.0.0.1:8080".parse().unwrap());
        assert_eq!(c.listeners[0].idle_timeout, Duration::from_secs(300));
        assert_eq!(c.clusters[0].endpoints.len(), 2);
        assert_eq!(c.clusters[0].connect_timeout, Duration::from_secs(3));
        assert_eq!(c.clusters[0].connect_attempts, 3);
        assert_eq!(c.clusters[0].proxy_protocol, ProxyProtocol::Off);
    }

    #[test]
    fn quick_form_explains_what_is_missing_or_wrong() {
        assert!(QuickArgs::default()
            .to_config()
            .unwrap_err()
            .contains("--config"));
        assert!(args("127.0.0.1:1", &[])
            .to_config()
            .unwrap_err()
            .contains("--upstream"));
        let mut a = args("127.0.0.1:1", &["127.0.0.1:2"]);
        a.mode = Some("sniff".into());
        assert_eq!(
            a.to_config().unwrap_err(),
            "--mode: \"sniff\" is not supported; valid: \"tcp\", \"udp\", \"http\" or \"auto\""
        );
        let mut a = args("127.0.0.1:1", &["127.0.0.1:2"]);
        a.idle_timeout = Some("5".into());
        assert!(a.to_config().unwrap_err().contains("--idle-timeout"));
        let mut a = args("127.0.0.1:1", &["127.0.0.1:2"]);
        a.connect_attempts = Some(0);
        assert!(a.to_config().unwrap_err().contains("connect_attempts"));
    }

    /// Two dummy PEM files (the quick form checks they are readable, not what they hold),
    /// removed when dropped.
    struct Pem(std::path::PathBuf);

    impl Pem {
        fn new(tag: &str) -> Pem {
            let dir = std::env::temp_dir()
                .join(format!("strait-quick-test-{}-{tag}", std::process::id()));
            std::fs::create_dir_all(&dir).unwrap();
            for f in ["c.pem", "k.pem"] {
                std::fs::write(dir.join(f), "dummy\n").unwrap();
            }
            Pem(dir)
        }

        fn cert(&self) -> PathBuf {
            self.0.join("c.pem")
        }

        fn key(&self) -> PathBuf {
            self.0.join("k.pem")
        }
    }

    impl Drop for Pem {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn with_mode(mode: &str, pem: Option<&Pem>) -> QuickArgs {
        let mut a = args("127.0.0.1:8443", &["127.0.0.1:9000"]);
        a.mode = Some(mode.into());
        if let Some(p) = pem {
            a.tls_cert = Some(p.cert());
            a.tls_key = Some(p.key());
        }
        a
    }

    fn tls(pem: &Pem, alpn: Vec<String>) -> Option<Box<TlsListenerConfig>> {
        Some(Box::new(TlsListenerConfig {
            certificates: vec![CertificateConfig {
                cert: pem.cert(),
                key: pem.key(),
                server_names: Vec::new(),
            }],
            min_version: TlsVersion::Tls12,
            alpn,
            session_tickets: true,
            handshake_timeout: tls_defaults::HANDSHAKE_TIMEOUT,
            passthrough: Vec::new(),
        }))
    }

    #[test]
    fn mode_auto_sniffs_http_and_relays_the_rest_to_the_same_cluster() {
        let c = with_mode("auto", None).to_config().unwrap();
        assert_eq!(
            c.listeners,
            [ListenerConfig {
                name: "main".into(),
                address: "127.0.0.1:8443".parse().unwrap(),
                protocol: ListenerProtocol::Auto,
                cluster: Some(0),
                idle_timeout: defaults::IDLE_TIMEOUT,
                backlog: defaults::BACKLOG,
                http: Some(Box::new(http_defaults::catch_all(0))),
                sniff: Some(SniffConfig {
                    protocols: ProtocolSet {
                        tls: false,
                        ..ProtocolSet::ALL
                    },
                    timeout: tls_defaults::SNIFF_TIMEOUT,
                }),
                tls: None,
            }]
        );
        assert_eq!(c.listeners[0].accepted().names(), ["http1", "h2c", "tcp"]);
    }

    #[test]
    fn tls_flags_add_one_certificate_with_alpn_where_http_is_served() {
        let pem = Pem::new("modes");
        let c = with_mode("auto", Some(&pem)).to_config().unwrap();
        let l = &c.listeners[0];
        assert_eq!(l.sniff.unwrap().protocols, ProtocolSet::ALL);
        assert_eq!(l.tls, tls(&pem, tls_defaults::alpn_http()));
        assert_eq!(l.cluster, Some(0));

        let c = with_mode("http", Some(&pem)).to_config().unwrap();
        let l = &c.listeners[0];
        assert_eq!((l.protocol, l.cluster), (ListenerProtocol::Http, None));
        assert_eq!(l.tls, tls(&pem, tls_defaults::alpn_http()));
        assert_eq!(l.accepted().names(), ["tls"]);

        let c = with_mode("tcp", Some(&pem)).to_config().unwrap();
        let l = &c.listeners[0];
        assert_eq!((l.protocol, l.cluster), (ListenerProtocol::Tcp, Some(0)));
        assert_eq!(l.tls, tls(&pem, Vec::new()));
        assert_eq!(l.http, None);
    }

    #[test]
    fn tls_flags_come_in_pairs_on_tcp_listeners_with_readable_files() {
        let pem = Pem::new("errors");
        let mut a = with_mode("tcp", None);
        a.tls_cert = Some(pem.cert());
        assert_eq!(
            a.to_config().unwrap_err(),
            "--tls-cert needs --tls-key FILE (the certificate's private key)"
        );
        let mut a = with_mode("http", None);
        a.tls_key = Some(pem.key());
        assert_eq!(
            a.to_config().unwrap_err(),
            "--tls-key needs --tls-cert FILE (the certificate chain)"
        );
        assert_eq!(
            with_mode("udp", Some(&pem)).to_config().unwrap_err(),
            "--tls-cert: TLS is for TCP listeners (DTLS is not supported); use --mode tcp, http \
             or auto"
        );
        let mut a = with_mode("auto", Some(&pem));
        a.tls_key = Some("/nonexistent/strait/k.pem".into());
        assert_eq!(
            a.to_config().unwrap_err(),
            "--tls-key: cannot read \"/nonexistent/strait/k.pem\": No such file or directory"
        );
        // Relative paths are taken from the working directory, and stored absolute.
        let mut a = with_mode("auto", Some(&pem));
        a.tls_cert = Some("no-such-dir/c.pem".into());
        let cwd = std::env::current_dir().unwrap();
        assert_eq!(
            a.to_config().unwrap_err(),
            format!(
                "--tls-cert: cannot read \"{}\": No such file or directory",
                cwd.join("no-such-dir/c.pem").display()
            )
        );
        assert_eq!(absolute(Path::new("./a/./b.pem")), cwd.join("a/b.pem"));
        assert_eq!(absolute(Path::new("/x/y.pem")), Path::new("/x/y.pem"));
    }
}
