//! The quick form: `strait run --listen ADDR --upstream ADDR [--upstream ADDR ...] --mode tcp`.
//!
//! Owns: building the same validated `Config` a file would give, from flags, with the file format's
//! defaults. One listener named `main`, one cluster named `upstream`.

use std::net::SocketAddr;

use strait_engine::config::http::defaults as http_defaults;
use strait_engine::config::{
    defaults, parse_duration, ClusterConfig, Config, EndpointConfig, ListenerConfig,
    ListenerProtocol, LogConfig, ProxyProtocol, RuntimeConfig, UpstreamHttpConfig,
};

#[derive(clap::Args, Default, Debug)]
pub struct QuickArgs {
    /// Quick form: address to listen on (instead of --config).
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<SocketAddr>,
    /// Quick form: an upstream endpoint; repeat for several (weighted round robin, weight 1).
    #[arg(long, value_name = "ADDR", requires = "listen")]
    pub upstream: Vec<SocketAddr>,
    /// Quick form: what the listener speaks [default: tcp].
    #[arg(long, value_name = "MODE", requires = "listen")]
    pub mode: Option<String>,
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
                cluster: (protocol != ListenerProtocol::Http).then_some(0),
                idle_timeout: duration(
                    "--idle-timeout",
                    &self.idle_timeout,
                    defaults::IDLE_TIMEOUT,
                )?,
                backlog: defaults::BACKLOG,
                http: (protocol == ListenerProtocol::Http)
                    .then(|| Box::new(http_defaults::catch_all(0))),
                sniff: None,
                tls: None,
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
        a.mode = Some("auto".into());
        assert!(a.to_config().unwrap_err().contains("--mode"));
        let mut a = args("127.0.0.1:1", &["127.0.0.1:2"]);
        a.idle_timeout = Some("5".into());
        assert!(a.to_config().unwrap_err().contains("--idle-timeout"));
        let mut a = args("127.0.0.1:1", &["127.0.0.1:2"]);
        a.connect_attempts = Some(0);
        assert!(a.to_config().unwrap_err().contains("connect_attempts"));
    }
}
