//! The HTTP families of `/metrics`: per route slot (requests, bytes, errors, responses by status
//! class, request duration) and per cluster (forwarded requests, pools, retries, timeouts,
//! upstream response time), plus the access log's dropped lines. Written only when the config has
//! HTTP listeners.
//!
//! Owns: those families, their order and their labels (`listener` and `route` per slot, with
//! `route="-"` for requests refused before routing or matching no route; `cluster`).
//! Must not: write the format itself (the parent's `Family` and `histogram_family` do) or the
//! connection-level families.

use hdrhistogram::Histogram;

use super::{esc, histogram_family, Family};
use crate::shared::Published;
use crate::stats::{ClusterHttpCounters, CoreHistograms, RouteCounters, RouteSlots};

const REQUEST_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    60.0,
];

/// Per-route and per-cluster HTTP series (only when the config has HTTP listeners).
pub(super) fn render(shared: &Published, hist: &CoreHistograms, f: &mut Family<'_>) {
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
    route_families(shared, &route_labels, f);
    cluster_families(shared, f);
    pool_and_log_families(shared, f);
    histograms(shared, hist, &route_labels, f);
}

/// Per route slot: requests, bytes, errors, and responses by status class.
fn route_families(shared: &Published, route_labels: &[String], f: &mut Family<'_>) {
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
}

/// Per cluster: requests forwarded, pool use, retries, timeouts, protocol errors.
fn cluster_families(shared: &Published, f: &mut Family<'_>) {
    let cfg = &shared.config;
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
}

/// Idle pooled connections and the pool reuse ratio per cluster; the access log's dropped lines.
fn pool_and_log_families(shared: &Published, f: &mut Family<'_>) {
    let cfg = &shared.config;
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
}

/// Request duration per route slot, upstream response time per cluster.
fn histograms(
    shared: &Published,
    hist: &CoreHistograms,
    route_labels: &[String],
    f: &mut Family<'_>,
) {
    let cfg = &shared.config;
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
