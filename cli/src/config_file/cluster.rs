//! `[[cluster]]` and its `endpoints`: names, connect settings, PROXY protocol, and the
//! endpoints' addresses and weights. The cluster's HTTP keys (and its `[cluster.tls]`) are
//! `http`'s.
//!
//! Owns: the cluster's own keys and the endpoint table, unique cluster names, and the names as
//! written (`NameAt`) that listeners and routes resolve `cluster` references against. Works like
//! the parent module: every problem is reported into `Ctx`, and what is invalid keeps a
//! placeholder so cluster indices match the file. Must not: resolve references (the parent's
//! `resolve_cluster` does) or read HTTP keys itself.

use std::path::Path;

use strait_engine::config::defaults::{
    CONNECT_ATTEMPTS as DEFAULT_CONNECT_ATTEMPTS, CONNECT_TIMEOUT as DEFAULT_CONNECT_TIMEOUT,
};
use strait_engine::config::{
    limits, ClusterConfig, EndpointConfig, ProxyProtocol, UpstreamHttpConfig,
};
use toml::de::DeValue;

use super::cursor::{Ctx, Field};
use super::values::{address, choice, duration, int_in, unique_name};
use super::{http, NameAt, NO_ADDRESS};

const CLUSTER_KEYS: &[&str] = &[
    "name",
    "connect_timeout",
    "connect_attempts",
    "proxy_protocol",
    "endpoints",
    "host",
    "pool_max_idle",
    "pool_idle_timeout",
    "max_connections_per_endpoint",
    "protocol",
    "tls",
];
const ENDPOINT_KEYS: &[&str] = &["address", "weight"];
const DEFAULT_WEIGHT: u32 = 1;

pub(super) fn clusters(
    ctx: &mut Ctx<'_>,
    field: &Field<'_, '_>,
    base: &Path,
) -> (Vec<ClusterConfig>, Vec<NameAt>) {
    let Some(items) = field.elements(ctx, "an array of tables ([[cluster]])") else {
        return (Vec::new(), Vec::new());
    };
    let mut clusters = Vec::new();
    let mut names: Vec<NameAt> = Vec::new();
    for item in &items {
        let mut c = ClusterConfig {
            name: String::new(),
            endpoints: Vec::new(),
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            connect_attempts: DEFAULT_CONNECT_ATTEMPTS,
            proxy_protocol: ProxyProtocol::Off,
            http: UpstreamHttpConfig::default(),
        };
        let mut name_at = None;
        if let Some(mut t) = item.table(ctx, "[[cluster]]", CLUSTER_KEYS) {
            if let Some(f) = t.require(ctx, "name") {
                if let Some(n) = unique_name(ctx, &f, names.iter().flatten(), "cluster", "") {
                    c.name = n.clone();
                    name_at = Some((n, f.span()));
                }
            }
            if let Some(f) = t.get(ctx, "connect_timeout") {
                if let Some(d) = duration(ctx, &f, true) {
                    c.connect_timeout = d;
                }
            }
            if let Some(f) = t.get(ctx, "connect_attempts") {
                if let Some(n) = int_in(ctx, &f, 1, limits::MAX_CONNECT_ATTEMPTS.into()) {
                    c.connect_attempts = n as u32;
                }
            }
            if let Some(f) = t.get(ctx, "proxy_protocol") {
                if let Some(v) = choice(ctx, &f, ProxyProtocol::parse, ProxyProtocol::VALID) {
                    c.proxy_protocol = v;
                }
            }
            if let Some(f) = t.require(ctx, "endpoints") {
                c.endpoints = endpoints(ctx, &f);
            }
            http::upstream(ctx, &mut t, &mut c.http, base);
            t.finish(ctx);
        }
        clusters.push(c);
        names.push(name_at);
    }
    (clusters, names)
}

const ENDPOINT_EXAMPLE: &str = "{ address = \"127.0.0.1:9000\", weight = 1 }";

fn endpoints(ctx: &mut Ctx<'_>, field: &Field<'_, '_>) -> Vec<EndpointConfig> {
    let expected = format!("an array of endpoint tables such as [{ENDPOINT_EXAMPLE}]");
    let Some(items) = field.elements(ctx, &expected) else {
        return Vec::new();
    };
    if items.is_empty() {
        field.error(
            ctx,
            format!("a cluster needs at least one endpoint, e.g. endpoints = [{ENDPOINT_EXAMPLE}]"),
        );
    }
    let mut out = Vec::new();
    for item in &items {
        let mut e = EndpointConfig {
            address: NO_ADDRESS,
            weight: DEFAULT_WEIGHT,
        };
        if !matches!(item.value.get_ref(), DeValue::Table(_)) {
            item.type_error(
                ctx,
                &format!("an endpoint table such as {ENDPOINT_EXAMPLE}"),
            );
        } else if let Some(mut t) = item.table(ctx, "an endpoint table", ENDPOINT_KEYS) {
            if let Some(f) = t.require(ctx, "address") {
                if let Some(a) = address(ctx, &f) {
                    if a.port() == 0 || a.ip().is_unspecified() {
                        f.error(
                            ctx,
                            format!("an endpoint needs a concrete IP address and a non-zero port, found {a}"),
                        );
                    }
                    e.address = a;
                }
            }
            if let Some(f) = t.get(ctx, "weight") {
                if let Some(n) = int_in(ctx, &f, 1, limits::MAX_WEIGHT.into()) {
                    e.weight = n as u32;
                }
            }
            t.finish(ctx);
        }
        out.push(e);
    }
    out
}
