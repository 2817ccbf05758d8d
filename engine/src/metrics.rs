//! The read side of statistics: merge every core's counters and histograms, render them.
//!
//! Owns: the `/metrics` (Prometheus text exposition 0.0.4) and `/stats` (JSON) documents. Labels are
//! configured names (listener, cluster, endpoint address) and core numbers — bounded sets, never
//! client-supplied values. Must not: be called from a core's thread (it blocks waiting for the
//! cores' histogram copies).

use std::fmt::Write as _;
use std::sync::atomic::Ordering;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde_json::{json, Value};

use crate::control::Control;
use crate::shared::Shared;
use crate::stats::{jain_index, ClusterHttpCounters, CoreHistograms, RouteCounters, RouteSlots};

/// How long a reader waits for a busy core to send its histograms.
const HISTOGRAM_WAIT: Duration = Duration::from_millis(500);

/// Asks every core for a copy of its histograms and merges them. A core that does not answer in
/// time (busy, or already stopped) is left out and counted in the second value.
pub fn collect_histograms(shared: &Shared) -> (CoreHistograms, usize) {
    let mut merged = CoreHistograms::new(&shared.config);
    let mut pending = Vec::with_capacity(shared.controls.len());
    for c in &shared.controls {
        let (tx, rx) = flume::bounded(1);
        if c.send(Control::Histograms(tx)).is_ok() {
            pending.push(rx);
        }
    }
    let mut missing = shared.controls.len() - pending.len();
    for rx in pending {
        match rx.recv_timeout(HISTOGRAM_WAIT) {
            Ok(h) => merged.merge(&h),
            Err(_) => missing += 1,
        }
    }
    (merged, missing)
}

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

/// Sums one counter over every core.
macro_rules! total {
    ($shared:expr, |$c:ident| $e:expr) => {
        $shared.cores.iter().map(|$c| $e as i64).sum::<i64>()
    };
}

pub fn render_prometheus(shared: &Shared) -> String {
    let (hist, _) = collect_histograms(shared);
    let cfg = &shared.config;
    let mut out = String::with_capacity(16 * 1024);
    let mut f = Family { out: &mut out };

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

    type ListenerField = fn(&crate::stats::ListenerCounters) -> i64;
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

    render_http(shared, &hist, &mut f);

    let connect: Vec<(String, &Histogram<u64>)> = cfg
        .clusters
        .iter()
        .zip(&hist.connect_micros)
        .map(|(c, h)| (format!("cluster=\"{}\"", esc(&c.name)), h))
        .collect();
    histogram_family(
        &mut f,
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
        &mut f,
        "strait_listener_connection_duration_seconds",
        "Lifetime of closed client connections.",
        &duration,
        1e-3,
        DURATION_BUCKETS,
    );
    out
}

const REQUEST_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    60.0,
];

/// Per-route and per-cluster HTTP series (only when the config has HTTP listeners).
fn render_http(shared: &Shared, hist: &CoreHistograms, f: &mut Family<'_>) {
    let cfg = &shared.config;
    let slots = RouteSlots::new(cfg);
    if slots.slots.is_empty() {
        return;
    }
    let route_labels: Vec<String> = (0..slots.slots.len())
        .map(|slot| {
            let (listener, route) = slots.route_name(cfg, slot);
            format!("listener=\"{}\",route=\"{}\"", esc(listener), esc(route))
        })
        .collect();
    type RouteField = fn(&RouteCounters) -> u64;
    let route_series: [(&str, &str, RouteField); 7] = [
        (
            "strait_http_requests_total",
            "HTTP requests received (route \"-\": refused before routing, or no route matched).",
            |r| r.requests.get(),
        ),
        (
            "strait_http_received_bytes_total",
            "Request bytes read from clients.",
            |r| r.received_bytes.get(),
        ),
        (
            "strait_http_sent_bytes_total",
            "Response bytes written to clients.",
            |r| r.sent_bytes.get(),
        ),
        (
            "strait_http_upstream_errors_total",
            "502s (upstream unreachable, closed early, invalid response) and responses cut short by the upstream.",
            |r| r.upstream_errors.get(),
        ),
        (
            "strait_http_upstream_timeouts_total",
            "504s (no response head within upstream_response_timeout) and response bodies that stalled.",
            |r| r.upstream_timeouts.get(),
        ),
        (
            "strait_http_unavailable_total",
            "503s: every endpoint at max_connections_per_endpoint.",
            |r| r.unavailable.get(),
        ),
        (
            "strait_http_client_errors_total",
            "Requests refused as malformed, too large or too slow (400, 408, 413, 414, 431, 505).",
            |r| r.client_errors.get(),
        ),
    ];
    for (name, help, get) in route_series {
        f.header(name, "counter", help);
        for (slot, labels) in route_labels.iter().enumerate() {
            f.sample(name, labels, total!(shared, |c| get(&c.routes[slot])));
        }
    }
    let name = "strait_http_responses_total";
    f.header(
        name,
        "counter",
        "HTTP responses sent to clients, by status class.",
    );
    for (slot, labels) in route_labels.iter().enumerate() {
        for (class, label) in ["1xx", "2xx", "3xx", "4xx", "5xx"].iter().enumerate() {
            let n = total!(shared, |c| c.routes[slot].responses[class].get());
            f.sample(name, &format!("{labels},class=\"{label}\""), n);
        }
    }

    type ClusterHttpField = fn(&ClusterHttpCounters) -> u64;
    let cluster_series: [(&str, &str, ClusterHttpField); 8] = [
        (
            "strait_cluster_http_requests_total",
            "HTTP requests forwarded to this cluster.",
            |c| c.requests.get(),
        ),
        (
            "strait_cluster_pool_hits_total",
            "Requests sent on a pooled keep-alive upstream connection.",
            |c| c.pool_hits.get(),
        ),
        (
            "strait_cluster_pool_misses_total",
            "Requests that opened a new upstream connection.",
            |c| c.pool_misses.get(),
        ),
        (
            "strait_cluster_pool_stale_total",
            "Pooled connections found closed by the upstream and discarded before use.",
            |c| c.pool_stale.get(),
        ),
        (
            "strait_cluster_pool_full_total",
            "Requests refused because every endpoint was at max_connections_per_endpoint.",
            |c| c.pool_full.get(),
        ),
        (
            "strait_cluster_http_retries_total",
            "Requests retried on a new connection after a reused one failed before answering.",
            |c| c.retries.get(),
        ),
        (
            "strait_cluster_upstream_timeouts_total",
            "Upstream response (head or body) timeouts.",
            |c| c.upstream_timeouts.get(),
        ),
        (
            "strait_cluster_upstream_protocol_errors_total",
            "Invalid upstream responses and connections lost mid-response.",
            |c| c.upstream_protocol_errors.get(),
        ),
    ];
    for (name, help, get) in cluster_series {
        f.header(name, "counter", help);
        for (i, c) in cfg.clusters.iter().enumerate() {
            let labels = format!("cluster=\"{}\"", esc(&c.name));
            f.sample(
                name,
                &labels,
                total!(shared, |core| get(&core.cluster_http[i])),
            );
        }
    }
    let name = "strait_cluster_pool_idle_connections";
    f.header(
        name,
        "gauge",
        "Idle keep-alive upstream connections in the pools (all cores).",
    );
    for (i, c) in cfg.clusters.iter().enumerate() {
        let labels = format!("cluster=\"{}\"", esc(&c.name));
        f.sample(
            name,
            &labels,
            total!(shared, |core| core.cluster_http[i].pool_idle.get()),
        );
    }
    let name = "strait_access_log_dropped_lines_total";
    f.header(
        name,
        "counter",
        "Access log lines dropped because the writer fell behind.",
    );
    f.sample(
        name,
        "",
        total!(shared, |c| c.totals.access_log_dropped.get()),
    );
    let name = "strait_cluster_pool_reuse_ratio";
    f.header(
        name,
        "gauge",
        "Pool hits over pooled plus new connections, since start.",
    );
    for (i, c) in cfg.clusters.iter().enumerate() {
        let hits = total!(shared, |core| core.cluster_http[i].pool_hits.get());
        let misses = total!(shared, |core| core.cluster_http[i].pool_misses.get());
        let ratio = if hits + misses > 0 {
            hits as f64 / (hits + misses) as f64
        } else {
            0.0
        };
        f.sample(name, &format!("cluster=\"{}\"", esc(&c.name)), ratio);
    }

    let requests: Vec<(String, &Histogram<u64>)> = route_labels
        .iter()
        .cloned()
        .zip(&hist.request_micros)
        .collect();
    histogram_family(
        f,
        "strait_http_request_duration_seconds",
        "Time from a complete request head to the end of the response.",
        &requests,
        1e-6,
        REQUEST_BUCKETS,
    );
    let upstream: Vec<(String, &Histogram<u64>)> = cfg
        .clusters
        .iter()
        .zip(&hist.upstream_micros)
        .map(|(c, h)| (format!("cluster=\"{}\"", esc(&c.name)), h))
        .collect();
    histogram_family(
        f,
        "strait_cluster_upstream_response_seconds",
        "Time from the request sent upstream to its response head.",
        &upstream,
        1e-6,
        REQUEST_BUCKETS,
    );
}

fn quantiles(h: &Histogram<u64>) -> Value {
    json!({
        "count": h.len(),
        "p50": h.value_at_quantile(0.50),
        "p90": h.value_at_quantile(0.90),
        "p99": h.value_at_quantile(0.99),
        "max": h.max(),
        "mean": (h.mean() * 10.0).round() / 10.0,
    })
}

pub fn render_json(shared: &Shared) -> Value {
    let (hist, missing) = collect_histograms(shared);
    let cfg = &shared.config;
    let accepted: Vec<u64> = shared
        .cores
        .iter()
        .map(|c| c.totals.accepted.get())
        .collect();
    let total_accepted: u64 = accepted.iter().sum();
    let mean = total_accepted as f64 / accepted.len().max(1) as f64;
    let max = accepted.iter().copied().max().unwrap_or(0) as f64;
    let cores: Vec<Value> = shared
        .cores
        .iter()
        .map(|c| {
            json!({
                "core": c.index,
                "cpu": c.cpu,
                "driver": c.driver().as_str(),
                "connections_accepted": c.totals.accepted.get(),
                "connections_active": c.totals.active.get(),
                "connections_closed": c.totals.closed.get(),
                "connections_rejected": c.totals.rejected_max_connections.get(),
                "accept_errors": c.totals.accept_errors.get(),
                "relayed_splice": c.totals.relayed_splice.get(),
                "relayed_copy": c.totals.relayed_copy.get(),
            })
        })
        .collect();
    let listeners: Vec<Value> = cfg
        .listeners
        .iter()
        .enumerate()
        .map(|(i, l)| {
            let sum = |g: fn(&crate::stats::ListenerCounters) -> i64| {
                total!(shared, |c| g(&c.listeners[i]))
            };
            json!({
                "name": l.name,
                "address": shared.listener_addresses[i].to_string(),
                "protocol": l.protocol.as_str(),
                "cluster": l.cluster.map(|c| cfg.clusters[c].name.as_str()),
                "connections_accepted": sum(|x| x.accepted.get() as i64),
                "connections_active": sum(|x| x.active.get()),
                "connections_closed": sum(|x| x.closed.get() as i64),
                "connections_rejected": sum(|x| x.rejected_max_connections.get() as i64),
                "received_bytes": sum(|x| x.received_bytes.get() as i64),
                "sent_bytes": sum(|x| x.sent_bytes.get() as i64),
                "idle_timeouts": sum(|x| x.idle_timeouts.get() as i64),
                "client_errors": sum(|x| x.client_errors.get() as i64),
                "upstream_errors": sum(|x| x.upstream_errors.get() as i64),
                "no_upstream": sum(|x| x.no_upstream.get() as i64),
                "datagrams_received": sum(|x| x.datagrams_received.get() as i64),
                "datagrams_sent": sum(|x| x.datagrams_sent.get() as i64),
                "datagrams_dropped": sum(|x| x.datagrams_dropped.get() as i64),
                "protocols": crate::stats::Detected::ALL
                    .iter()
                    .map(|&d| {
                        let n = total!(shared, |c| c.listeners[i].detected[d as usize].get());
                        (d.label().to_string(), json!(n))
                    })
                    .collect::<serde_json::Map<String, Value>>(),
                "tls_handshakes": sum(|x| x.tls_handshakes.get() as i64),
                "tls_handshake_failures": sum(|x| x.tls_handshake_failures.iter().map(|c| c.get() as i64).sum()),
                "tls_passthrough": sum(|x| x.tls_passthrough.get() as i64),
                "sniff_refused": sum(|x| x.sniff_refused.get() as i64),
                "h2_streams": sum(|x| x.h2_streams.get() as i64),
                "websocket_upgrades": sum(|x| x.ws_upgrades.get() as i64),
                "connection_duration_ms": quantiles(&hist.duration_millis[i]),
            })
        })
        .collect();
    let clusters: Vec<Value> = cfg
        .clusters
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let sum = |g: fn(&crate::stats::ClusterCounters) -> i64| {
                total!(shared, |core| g(&core.clusters[i]))
            };
            let endpoints: Vec<Value> = c
                .endpoints
                .iter()
                .enumerate()
                .map(|(ei, e)| {
                    let esum = |g: fn(&crate::stats::EndpointCounters) -> i64| {
                        total!(shared, |core| g(&core.endpoints[i][ei]))
                    };
                    json!({
                        "address": e.address.to_string(),
                        "weight": e.weight,
                        "connections": esum(|x| x.connections.get() as i64),
                        "connections_active": esum(|x| x.active.get()),
                        "connect_failures": esum(|x| x.connect_failures.get() as i64),
                        "connect_timeouts": esum(|x| x.connect_timeouts.get() as i64),
                    })
                })
                .collect();
            json!({
                "name": c.name,
                "upstream_connections": sum(|x| x.connections.get() as i64),
                "connect_failures": sum(|x| x.connect_failures.get() as i64),
                "connect_timeouts": sum(|x| x.connect_timeouts.get() as i64),
                "unavailable": sum(|x| x.unavailable.get() as i64),
                "sent_bytes": sum(|x| x.sent_bytes.get() as i64),
                "received_bytes": sum(|x| x.received_bytes.get() as i64),
                "connect_time_us": quantiles(&hist.connect_micros[i]),
                "http": cluster_http_json(shared, &hist, i),
                "endpoints": endpoints,
            })
        })
        .collect();
    json!({
        "version": env!("CARGO_PKG_VERSION"),
        "uptime_seconds": shared.started.elapsed().as_secs(),
        "draining": shared.draining.load(Ordering::Relaxed),
        "cores": cores,
        "fairness": {
            "connections_accepted": accepted,
            "jain_index": (jain_index(&accepted) * 10000.0).round() / 10000.0,
            "max_over_mean": if mean > 0.0 { (max / mean * 1000.0).round() / 1000.0 } else { 1.0 },
        },
        "histograms_missing_cores": missing,
        "listeners": listeners,
        "clusters": clusters,
        "http_routes": routes_json(shared, &hist),
    })
}

fn cluster_http_json(shared: &Shared, hist: &CoreHistograms, i: usize) -> Value {
    let sum = |g: fn(&ClusterHttpCounters) -> u64| total!(shared, |c| g(&c.cluster_http[i]));
    let hits = sum(|x| x.pool_hits.get());
    let misses = sum(|x| x.pool_misses.get());
    json!({
        "requests": sum(|x| x.requests.get()),
        "pool_hits": hits,
        "pool_misses": misses,
        "pool_reuse_ratio": if hits + misses > 0 {
            ((hits as f64 / (hits + misses) as f64) * 1000.0).round() / 1000.0
        } else {
            0.0
        },
        "pool_stale": sum(|x| x.pool_stale.get()),
        "pool_idle": total!(shared, |c| c.cluster_http[i].pool_idle.get()),
        "pool_full": sum(|x| x.pool_full.get()),
        "retries": sum(|x| x.retries.get()),
        "upstream_timeouts": sum(|x| x.upstream_timeouts.get()),
        "upstream_protocol_errors": sum(|x| x.upstream_protocol_errors.get()),
        "upstream_response_us": quantiles(&hist.upstream_micros[i]),
    })
}

fn routes_json(shared: &Shared, hist: &CoreHistograms) -> Vec<Value> {
    let cfg = &shared.config;
    let slots = RouteSlots::new(cfg);
    (0..slots.slots.len())
        .map(|slot| {
            let (listener, route) = slots.route_name(cfg, slot);
            let sum = |g: fn(&RouteCounters) -> u64| total!(shared, |c| g(&c.routes[slot]));
            let class = |k: usize| total!(shared, |c| c.routes[slot].responses[k].get());
            json!({
                "listener": listener,
                "route": route,
                "requests": sum(|r| r.requests.get()),
                "responses": {
                    "1xx": class(0), "2xx": class(1), "3xx": class(2), "4xx": class(3), "5xx": class(4),
                },
                "received_bytes": sum(|r| r.received_bytes.get()),
                "sent_bytes": sum(|r| r.sent_bytes.get()),
                "upstream_errors": sum(|r| r.upstream_errors.get()),
                "upstream_timeouts": sum(|r| r.upstream_timeouts.get()),
                "unavailable": sum(|r| r.unavailable.get()),
                "client_errors": sum(|r| r.client_errors.get()),
                "duration_us": quantiles(&hist.request_micros[slot]),
            })
        })
        .collect()
}
