//! The `/stats` document: every figure of `/metrics` (and a few more) as one JSON value, with
//! histograms summarised as quantiles.
//!
//! Owns: the document's shape — per core, the fairness of the spread, per listener, per cluster
//! (with its endpoints and its `http` figures) and per HTTP route slot (`http_routes`).
//! Must not: write Prometheus text (`prometheus` does), or be called from a core's thread (it
//! collects the cores' histograms first, which blocks).

use std::sync::atomic::Ordering;

use hdrhistogram::Histogram;
use serde_json::{json, Value};

use super::collect_histograms;
use crate::shared::{Published, Shared};
use crate::stats::{jain_index, ClusterHttpCounters, CoreHistograms, RouteCounters, RouteSlots};

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

pub fn render_json(whole: &Shared) -> Value {
    let published = whole.published();
    let shared = &*published;
    let (hist, missing) = collect_histograms(whole, shared);
    let cfg = &shared.config;
    let accepted: Vec<u64> = shared
        .cores
        .iter()
        .map(|c| c.totals.accepted.get())
        .collect();
    let total_accepted: u64 = accepted.iter().sum();
    let mean = total_accepted as f64 / accepted.len().max(1) as f64;
    let max = accepted.iter().copied().max().unwrap_or(0) as f64;
    let cores = cores_json(shared);
    let listeners: Vec<Value> = (0..cfg.listeners.len())
        .map(|i| listener_json(shared, &hist, i))
        .collect();
    let clusters: Vec<Value> = (0..cfg.clusters.len())
        .map(|i| cluster_json(shared, &hist, i))
        .collect();
    json!({
        "version": env!("CARGO_PKG_VERSION"),
        "uptime_seconds": whole.started.elapsed().as_secs(),
        "draining": whole.draining.load(Ordering::Relaxed),
        "config_version": shared.version,
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

fn cores_json(shared: &Published) -> Vec<Value> {
    shared
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
        .collect()
}

/// Listener `i`, summed over every core.
fn listener_json(shared: &Published, hist: &CoreHistograms, i: usize) -> Value {
    let cfg = &shared.config;
    let l = &cfg.listeners[i];
    let sum =
        |g: fn(&crate::stats::ListenerCounters) -> i64| total!(shared, |c| g(&c.listeners[i]));
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
}

/// Cluster `i` with its endpoints, summed over every core.
fn cluster_json(shared: &Published, hist: &CoreHistograms, i: usize) -> Value {
    let c = &shared.config.clusters[i];
    let sum =
        |g: fn(&crate::stats::ClusterCounters) -> i64| total!(shared, |core| g(&core.clusters[i]));
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
        "http": cluster_http_json(shared, hist, i),
        "endpoints": endpoints,
    })
}

fn cluster_http_json(shared: &Published, hist: &CoreHistograms, i: usize) -> Value {
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

fn routes_json(shared: &Published, hist: &CoreHistograms) -> Vec<Value> {
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
