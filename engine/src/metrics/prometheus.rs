//! The `/metrics` document: Prometheus text exposition 0.0.4.
//!
//! Owns: the text format (`# HELP`/`# TYPE` headers, samples, label escaping, cumulative `le`
//! buckets from hdr histograms), the order of the families, and the connection-level families:
//! process, per core, per listener (with sniffing, TLS, HTTP/2 and WebSocket counts), per cluster
//! and per endpoint, and the connect and connection-lifetime histograms. The HTTP families (per
//! route slot and per cluster) are `http`'s. Must not: write JSON (`json` does), or be called from
//! a core's thread (it collects the cores' histograms first, which blocks).

use std::fmt::Write as _;
use std::sync::atomic::Ordering;

use hdrhistogram::Histogram;

use super::collect_histograms;
use crate::shared::{Published, Shared};
use crate::stats::CoreHistograms;

mod http;

fn esc(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

struct Family<'a> {
    out: &'a mut String,
}

impl Family<'_> {
    fn header(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.out, "# HELP {name} {help}");
        let _ = writeln!(self.out, "# TYPE {name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &str, value: impl std::fmt::Display) {
        if labels.is_empty() {
            let _ = writeln!(self.out, "{name} {value}");
        } else {
            let _ = writeln!(self.out, "{name}{{{labels}}} {value}");
        }
    }
}

/// Cumulative `le` buckets in seconds, from an hdr histogram recorded in `unit_seconds` units.
fn histogram_family(
    f: &mut Family<'_>,
    name: &str,
    help: &str,
    series: &[(String, &Histogram<u64>)],
    unit_seconds: f64,
    buckets: &[f64],
) {
    f.header(name, "histogram", help);
    for (labels, h) in series {
        for &le in buckets {
            let units = (le / unit_seconds).floor() as u64;
            let count = if units == 0 {
                0
            } else {
                h.count_between(0, units)
            };
            f.sample(
                &format!("{name}_bucket"),
                &format!("{labels},le=\"{le}\""),
                count,
            );
        }
        f.sample(
            &format!("{name}_bucket"),
            &format!("{labels},le=\"+Inf\""),
            h.len(),
        );
        let sum = h.mean() * h.len() as f64 * unit_seconds;
        f.sample(&format!("{name}_sum"), labels, sum);
        f.sample(&format!("{name}_count"), labels, h.len());
    }
}

const CONNECT_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];
const DURATION_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0, 14400.0, 86400.0,
];

/// Reads one per-listener counter of one core.
type ListenerField = fn(&crate::stats::ListenerCounters) -> i64;

/// The whole `/metrics` document, its families in a fixed order.
pub fn render_prometheus(whole: &Shared) -> String {
    let published = whole.published();
    let shared = &*published;
    let (hist, _) = collect_histograms(whole, shared);
    let mut out = String::with_capacity(16 * 1024);
    let mut f = Family { out: &mut out };
    process_families(whole, shared, &mut f);
    core_families(shared, &mut f);
    listener_families(shared, &mut f);
    listener_protocol_families(shared, &mut f);
    cluster_families(shared, &mut f);
    endpoint_families(shared, &mut f);
    http::render(shared, &hist, &mut f);
    connection_histograms(shared, &hist, &mut f);
    out
}

/// Version, uptime and whether the engine is draining.
fn process_families(shared: &Shared, published: &Published, f: &mut Family<'_>) {
    f.header("strait_build_info", "gauge", "Strait version.");
    f.sample(
        "strait_build_info",
        &format!("version=\"{}\"", env!("CARGO_PKG_VERSION")),
        1,
    );
    f.header(
        "strait_uptime_seconds",
        "gauge",
        "Seconds since the engine started.",
    );
    f.sample(
        "strait_uptime_seconds",
        "",
        shared.started.elapsed().as_secs_f64(),
    );
    f.header(
        "strait_draining",
        "gauge",
        "1 while the engine is draining.",
    );
    f.sample(
        "strait_draining",
        "",
        u8::from(shared.draining.load(Ordering::Relaxed)),
    );
    f.header(
        "strait_config_version",
        "gauge",
        "The configuration version in force: 0 at start, one more per applied reload.",
    );
    f.sample("strait_config_version", "", published.version);
    f.header(
        "strait_config_reloads_total",
        "counter",
        "Configuration reloads, by result (a failed one changes nothing).",
    );
    for (result, n) in [
        ("success", &shared.reloads_succeeded),
        ("failure", &shared.reloads_failed),
    ] {
        f.sample(
            "strait_config_reloads_total",
            &format!("result=\"{result}\""),
            n.load(Ordering::Relaxed),
        );
    }
    f.header(
        "strait_config_last_reload_success_timestamp_seconds",
        "gauge",
        "Unix time of the last applied reload (0: none since start).",
    );
    f.sample(
        "strait_config_last_reload_success_timestamp_seconds",
        "",
        shared.last_reload_success.load(Ordering::Relaxed),
    );
}

/// Per core: its CPU and driver, its connection counts.
fn core_families(shared: &Published, f: &mut Family<'_>) {
    f.header(
        "strait_core_info",
        "gauge",
        "One per core: the CPU it is pinned to and its IO driver.",
    );
    for c in &shared.cores {
        f.sample(
            "strait_core_info",
            &format!(
                "core=\"{}\",cpu=\"{}\",driver=\"{}\"",
                c.index,
                c.cpu,
                c.driver().as_str()
            ),
            1,
        );
    }
    type CoreField = fn(&crate::stats::CoreStats) -> i64;
    let core_series: [(&str, &str, &str, CoreField); 5] = [
        (
            "strait_core_connections_accepted_total",
            "counter",
            "Connections accepted by this core (all listeners).",
            |c| c.totals.accepted.get() as i64,
        ),
        (
            "strait_core_connections_active",
            "gauge",
            "Connections open on this core.",
            |c| c.totals.active.get(),
        ),
        (
            "strait_core_connections_rejected_total",
            "counter",
            "Connections closed at accept because max_connections_per_core was reached.",
            |c| c.totals.rejected_max_connections.get() as i64,
        ),
        (
            "strait_core_accept_errors_total",
            "counter",
            "accept(2) failures other than cancellation.",
            |c| c.totals.accept_errors.get() as i64,
        ),
        (
            "strait_core_relay_splice_total",
            "counter",
            "Connections relayed with splice (the rest used the copy relay).",
            |c| c.totals.relayed_splice.get() as i64,
        ),
    ];
    for (name, kind, help, get) in core_series {
        f.header(name, kind, help);
        for c in &shared.cores {
            f.sample(name, &format!("core=\"{}\"", c.index), get(c));
        }
    }
}

/// Per listener: connections, bytes, errors and datagrams.
fn listener_families(shared: &Published, f: &mut Family<'_>) {
    let cfg = &shared.config;
    let listener_series: [(&str, &str, &str, ListenerField); 13] = [
        (
            "strait_listener_connections_accepted_total",
            "counter",
            "Client connections accepted.",
            |l| l.accepted.get() as i64,
        ),
        (
            "strait_listener_connections_active",
            "gauge",
            "Client connections open.",
            |l| l.active.get(),
        ),
        (
            "strait_listener_connections_closed_total",
            "counter",
            "Client connections closed (any reason).",
            |l| l.closed.get() as i64,
        ),
        (
            "strait_listener_connections_rejected_total",
            "counter",
            "Client connections refused by max_connections_per_core.",
            |l| l.rejected_max_connections.get() as i64,
        ),
        (
            "strait_listener_received_bytes_total",
            "counter",
            "Bytes received from clients and forwarded upstream.",
            |l| l.received_bytes.get() as i64,
        ),
        (
            "strait_listener_sent_bytes_total",
            "counter",
            "Bytes sent to clients.",
            |l| l.sent_bytes.get() as i64,
        ),
        (
            "strait_listener_idle_timeouts_total",
            "counter",
            "Connections closed by the idle timeout.",
            |l| l.idle_timeouts.get() as i64,
        ),
        (
            "strait_listener_client_errors_total",
            "counter",
            "Connections aborted by a client-side socket error.",
            |l| l.client_errors.get() as i64,
        ),
        (
            "strait_listener_upstream_errors_total",
            "counter",
            "Connections aborted by an upstream-side socket error.",
            |l| l.upstream_errors.get() as i64,
        ),
        (
            "strait_listener_no_upstream_total",
            "counter",
            "Connections closed because no endpoint could be reached.",
            |l| l.no_upstream.get() as i64,
        ),
        (
            "strait_listener_datagrams_received_total",
            "counter",
            "UDP datagrams received from clients.",
            |l| l.datagrams_received.get() as i64,
        ),
        (
            "strait_listener_datagrams_sent_total",
            "counter",
            "UDP datagrams sent back to clients.",
            |l| l.datagrams_sent.get() as i64,
        ),
        (
            "strait_listener_datagrams_dropped_total",
            "counter",
            "UDP datagrams dropped (no session could be created, or a socket buffer was full).",
            |l| l.datagrams_dropped.get() as i64,
        ),
    ];
    for (name, kind, help, get) in listener_series {
        f.header(name, kind, help);
        for (i, l) in cfg.listeners.iter().enumerate() {
            f.sample(
                name,
                &format!("listener=\"{}\"", esc(&l.name)),
                total!(shared, |c| get(&c.listeners[i])),
            );
        }
    }
}

/// Per listener: what the connections turned out to be (sniffing, TLS, HTTP/2, WebSocket).
fn listener_protocol_families(shared: &Published, f: &mut Family<'_>) {
    let cfg = &shared.config;
    let name = "strait_listener_protocol_connections_total";
    f.header(
        name,
        "counter",
        "Connections by the protocol they were served as (after sniffing and TLS).",
    );
    for (i, l) in cfg.listeners.iter().enumerate() {
        for d in crate::stats::Detected::ALL {
            f.sample(
                name,
                &format!("listener=\"{}\",protocol=\"{}\"", esc(&l.name), d.label()),
                total!(shared, |c| c.listeners[i].detected[d as usize].get() as i64),
            );
        }
    }
    let name = "strait_tls_handshake_failures_total";
    f.header(name, "counter", "TLS handshakes that failed, by reason.");
    for (i, l) in cfg.listeners.iter().enumerate() {
        for r in crate::tls::HandshakeFailure::ALL {
            f.sample(
                name,
                &format!("listener=\"{}\",reason=\"{}\"", esc(&l.name), r.label()),
                total!(
                    shared,
                    |c| c.listeners[i].tls_handshake_failures[r.index()].get() as i64
                ),
            );
        }
    }
    let protocol_series: [(&str, &str, ListenerField); 7] = [
        (
            "strait_listener_sniff_refused_total",
            "Connections closed because they spoke a protocol the listener does not accept.",
            |l| l.sniff_refused.get() as i64,
        ),
        (
            "strait_tls_handshakes_total",
            "TLS handshakes completed.",
            |l| l.tls_handshakes.get() as i64,
        ),
        (
            "strait_tls_passthrough_total",
            "TLS connections relayed undecrypted, chosen by SNI.",
            |l| l.tls_passthrough.get() as i64,
        ),
        (
            "strait_h2_streams_total",
            "HTTP/2 streams opened by clients.",
            |l| l.h2_streams.get() as i64,
        ),
        (
            "strait_h2_abuse_closes_total",
            "HTTP/2 connections closed for exceeding a flood limit.",
            |l| l.h2_abuse.get() as i64,
        ),
        (
            "strait_websocket_upgrades_total",
            "WebSocket upgrades answered 101 (the connection became a tunnel).",
            |l| l.ws_upgrades.get() as i64,
        ),
        (
            "strait_websocket_refused_total",
            "WebSocket upgrade requests the upstream did not accept.",
            |l| l.ws_refused.get() as i64,
        ),
    ];
    for (name, help, get) in protocol_series {
        f.header(name, "counter", help);
        for (i, l) in cfg.listeners.iter().enumerate() {
            f.sample(
                name,
                &format!("listener=\"{}\"", esc(&l.name)),
                total!(shared, |c| get(&c.listeners[i])),
            );
        }
    }
}

/// Per cluster: upstream connections, connect failures, bytes.
fn cluster_families(shared: &Published, f: &mut Family<'_>) {
    let cfg = &shared.config;
    type ClusterField = fn(&crate::stats::ClusterCounters) -> i64;
    let cluster_series: [(&str, &str, &str, ClusterField); 6] = [
        (
            "strait_cluster_upstream_connections_total",
            "counter",
            "Upstream connections established.",
            |c| c.connections.get() as i64,
        ),
        (
            "strait_cluster_connect_failures_total",
            "counter",
            "Upstream connect attempts that failed (refused, unreachable, ...).",
            |c| c.connect_failures.get() as i64,
        ),
        (
            "strait_cluster_connect_timeouts_total",
            "counter",
            "Upstream connect attempts that timed out.",
            |c| c.connect_timeouts.get() as i64,
        ),
        (
            "strait_cluster_unavailable_total",
            "counter",
            "Client connections for which every connect attempt failed.",
            |c| c.unavailable.get() as i64,
        ),
        (
            "strait_cluster_sent_bytes_total",
            "counter",
            "Bytes sent to upstream endpoints.",
            |c| c.sent_bytes.get() as i64,
        ),
        (
            "strait_cluster_received_bytes_total",
            "counter",
            "Bytes received from upstream endpoints.",
            |c| c.received_bytes.get() as i64,
        ),
    ];
    for (name, kind, help, get) in cluster_series {
        f.header(name, kind, help);
        for (i, c) in cfg.clusters.iter().enumerate() {
            f.sample(
                name,
                &format!("cluster=\"{}\"", esc(&c.name)),
                total!(shared, |core| get(&core.clusters[i])),
            );
        }
    }
}

/// Per endpoint of every cluster: upstream connections and connect failures.
fn endpoint_families(shared: &Published, f: &mut Family<'_>) {
    let cfg = &shared.config;
    type EndpointField = fn(&crate::stats::EndpointCounters) -> i64;
    let endpoint_series: [(&str, &str, &str, EndpointField); 4] = [
        (
            "strait_endpoint_connections_total",
            "counter",
            "Upstream connections established to this endpoint.",
            |e| e.connections.get() as i64,
        ),
        (
            "strait_endpoint_connections_active",
            "gauge",
            "Upstream connections open to this endpoint.",
            |e| e.active.get(),
        ),
        (
            "strait_endpoint_connect_failures_total",
            "counter",
            "Failed connect attempts to this endpoint.",
            |e| e.connect_failures.get() as i64,
        ),
        (
            "strait_endpoint_connect_timeouts_total",
            "counter",
            "Timed-out connect attempts to this endpoint.",
            |e| e.connect_timeouts.get() as i64,
        ),
    ];
    for (name, kind, help, get) in endpoint_series {
        f.header(name, kind, help);
        for (ci, c) in cfg.clusters.iter().enumerate() {
            for (ei, e) in c.endpoints.iter().enumerate() {
                f.sample(
                    name,
                    &format!("cluster=\"{}\",endpoint=\"{}\"", esc(&c.name), e.address),
                    total!(shared, |core| get(&core.endpoints[ci][ei])),
                );
            }
        }
    }
}

/// Upstream connect time per cluster, client connection lifetime per listener.
fn connection_histograms(shared: &Published, hist: &CoreHistograms, f: &mut Family<'_>) {
    let cfg = &shared.config;
    let connect: Vec<(String, &Histogram<u64>)> = cfg
        .clusters
        .iter()
        .zip(&hist.connect_micros)
        .map(|(c, h)| (format!("cluster=\"{}\"", esc(&c.name)), h))
        .collect();
    histogram_family(
        f,
        "strait_cluster_connect_duration_seconds",
        "Time to establish an upstream connection.",
        &connect,
        1e-6,
        CONNECT_BUCKETS,
    );
    let duration: Vec<(String, &Histogram<u64>)> = cfg
        .listeners
        .iter()
        .zip(&hist.duration_millis)
        .map(|(l, h)| (format!("listener=\"{}\"", esc(&l.name)), h))
        .collect();
    histogram_family(
        f,
        "strait_listener_connection_duration_seconds",
        "Lifetime of closed client connections.",
        &duration,
        1e-3,
        DURATION_BUCKETS,
    );
}
