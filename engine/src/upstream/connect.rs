//! Reaching one endpoint: the TCP connect under the cluster's timeout (counted, timed and, on
//! failure, warned about at most once a second per cluster) and TLS to upstreams.
//!
//! Owns: one connect attempt to one given endpoint. Must not: choose endpoints or retry (the
//! caller's balancer and the exchange do), or keep connections (the pools do).

use std::time::Instant;

use monoio::net::TcpStream;
use tracing::warn;

use crate::context::CoreContext;
use crate::tls_stream::{self, TlsClient};

/// One connect attempt to one endpoint, with the cluster's timeout, counted and (throttled)
/// logged on failure.
pub(crate) async fn connect_endpoint(
    ctx: &CoreContext,
    cluster_index: usize,
    endpoint_index: usize,
) -> Option<TcpStream> {
    let cluster = &ctx.config.clusters[cluster_index];
    let counters = &ctx.stats.clusters[cluster_index];
    let endpoint = &cluster.endpoints[endpoint_index];
    let endpoint_counters = &ctx.stats.endpoints[cluster_index][endpoint_index];
    let started = Instant::now();
    match monoio::time::timeout(
        cluster.connect_timeout,
        TcpStream::connect_addr(endpoint.address),
    )
    .await
    {
        Ok(Ok(stream)) => {
            let micros = started.elapsed().as_micros() as u64;
            if let Some(h) = ctx
                .histograms
                .borrow_mut()
                .connect_micros
                .get_mut(cluster_index)
            {
                h.saturating_record(micros.max(1));
            }
            counters.connections.inc();
            endpoint_counters.connections.inc();
            let _ = stream.set_nodelay(true);
            Some(stream)
        }
        Ok(Err(e)) => {
            counters.connect_failures.inc();
            endpoint_counters.connect_failures.inc();
            if let Some(suppressed) = ctx.connect_warnings[cluster_index].allow() {
                warn!(cluster = %cluster.name, endpoint = %endpoint.address, error = %e, suppressed,
                    "upstream connect failed");
            }
            None
        }
        Err(_) => {
            counters.connect_timeouts.inc();
            endpoint_counters.connect_timeouts.inc();
            if let Some(suppressed) = ctx.connect_warnings[cluster_index].allow() {
                warn!(cluster = %cluster.name, endpoint = %endpoint.address, suppressed,
                    timeout_ms = cluster.connect_timeout.as_millis() as u64, "upstream connect timed out");
            }
            None
        }
    }
}

/// TLS to an endpoint of a cluster over a connected socket: SNI and verification by the
/// cluster's `server_name`, else its `host`, else the endpoint's IP address. An h2 cluster's
/// endpoint must agree on `h2` by ALPN; an HTTP/1.1 cluster's may agree on `http/1.1` or skip
/// ALPN. Failures are counted as upstream protocol errors and logged at debug.
pub(crate) async fn connect_tls(
    ctx: &CoreContext,
    cluster: usize,
    endpoint: usize,
    tcp: monoio::net::TcpStream,
) -> Option<TlsClient> {
    let c = &ctx.config.clusters[cluster];
    let config = ctx.upstream_tls_config(cluster)?;
    let address = c.endpoints[endpoint].address;
    let name = c
        .http
        .tls
        .as_ref()
        .and_then(|t| t.server_name.clone())
        .or_else(|| {
            c.http
                .host
                .as_ref()
                .map(|h| crate::tls::host_without_port(h).to_string())
        });
    let server_name = match name {
        Some(n) => match rustls_pki_types::ServerName::try_from(n) {
            Ok(n) => n,
            Err(_) => rustls_pki_types::ServerName::IpAddress(address.ip().into()),
        },
        None => rustls_pki_types::ServerName::IpAddress(address.ip().into()),
    };
    let counters = &ctx.stats.cluster_http[cluster];
    match tls_stream::connect(config, tcp, server_name, c.connect_timeout).await {
        Ok(tls) => {
            let agreed = tls.alpn();
            let fits = match c.http.protocol {
                crate::config::UpstreamProtocol::H2 => agreed.as_deref() == Some(b"h2"),
                _ => matches!(agreed.as_deref(), None | Some(b"http/1.1")),
            };
            if fits {
                Some(tls)
            } else {
                counters.upstream_protocol_errors.inc();
                tracing::debug!(cluster = %c.name, endpoint = %address, "upstream did not agree on the cluster's protocol by ALPN");
                None
            }
        }
        Err(reason) => {
            counters.upstream_protocol_errors.inc();
            tracing::debug!(cluster = %c.name, endpoint = %address, reason = reason.label(), "upstream TLS handshake failed");
            None
        }
    }
}
