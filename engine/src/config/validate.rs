//! The checks of the configuration snapshot: [`Config::validate`] and its per-concern parts.
//!
//! Owns: the invariants the engine relies on, for every `Config` however it was built (the TOML
//! loader, the quick CLI form, the demo, tests): unique label-safe names, what each kind of
//! listener needs and refuses, TLS termination settings, cluster and endpoint limits, the
//! upstream HTTP settings, runtime limits and the access log. Each problem becomes a
//! [`ConfigIssue`] naming its key path; the order of the issues is the order of the checks.
//! Must not: read files, know about TOML, or change the snapshot. The route and HTTP/2 checks
//! are `http`'s and `tls`'s (called from here).

use super::{
    check_name, http, limits, tls, AccessLogConfig, ClusterConfig, Config, ConfigIssue,
    CoreSelection, ListenerConfig, ListenerProtocol, ProtocolSet, ProxyProtocol, RouteAction,
    RuntimeConfig, TlsListenerConfig, UpstreamProtocol,
};

impl Config {
    /// Checks the invariants the engine relies on. The TOML loader reports most problems earlier
    /// with file positions; this is the last line of defence for configs built in code (quick CLI
    /// form, demo, tests) and for cross-field rules.
    pub fn validate(&self) -> Result<(), Vec<ConfigIssue>> {
        let mut issues = Vec::new();
        let mut issue = |path: String, message: String| issues.push(ConfigIssue { path, message });

        if self.listeners.is_empty() {
            issue(
                "listener".into(),
                "at least one [[listener]] is required".into(),
            );
        }
        for i in 0..self.listeners.len() {
            check_listener(self, i, &mut issue);
        }
        for (i, c) in self.clusters.iter().enumerate() {
            check_cluster(self, i, &mut issue);
            check_upstream_http(i, c, &mut issue);
        }
        check_runtime(&self.runtime, &mut issue);
        check_access_log(self.access_log.as_ref(), &mut issue);
        if issues.is_empty() {
            Ok(())
        } else {
            Err(issues)
        }
    }

    /// Whether a route of an HTTP listener forwards to cluster `index`.
    pub fn http_uses_cluster(&self, index: usize) -> bool {
        self.listeners
            .iter()
            .filter_map(|l| l.http.as_ref())
            .flat_map(|h| &h.routes)
            .any(|r| match &r.action {
                RouteAction::Forward(f) => f.clusters.iter().any(|w| w.cluster == index),
                RouteAction::Respond(_) => false,
            })
    }
}

/// Listener `i`: its name and address (unique among the listeners before it), what its kind
/// needs and refuses, its idle timeout and backlog.
fn check_listener(cfg: &Config, i: usize, issue: &mut impl FnMut(String, String)) {
    let l = &cfg.listeners[i];
    if let Err(e) = check_name(&l.name) {
        issue(format!("listener[{i}].name"), e);
    }
    if cfg.listeners[..i].iter().any(|o| o.name == l.name) {
        issue(
            format!("listener[{i}].name"),
            format!("duplicate listener name {:?}", l.name),
        );
    }
    // TCP and UDP may share a port number: they are different sockets.
    let same = |o: &ListenerConfig| {
        o.address == l.address && o.protocol.is_stream() == l.protocol.is_stream()
    };
    if l.address.port() != 0 && cfg.listeners[..i].iter().any(same) {
        issue(
            format!("listener[{i}].address"),
            format!("duplicate listener address {}", l.address),
        );
    }
    let at = format!("listener[{i}]");
    check_listener_kind(l, &at, cfg.clusters.len(), issue);
    if l.idle_timeout.is_zero() {
        issue(
            format!("listener[{i}].idle_timeout"),
            "must be greater than 0".into(),
        );
    }
    if l.backlog == 0 {
        issue(
            format!("listener[{i}].backlog"),
            "must be greater than 0".into(),
        );
    }
}

/// Cluster `i`: PROXY protocol only without HTTP routes, its name (unique among the clusters
/// before it), its endpoints, connect timeout and attempts.
fn check_cluster(cfg: &Config, i: usize, issue: &mut impl FnMut(String, String)) {
    let c = &cfg.clusters[i];
    if c.proxy_protocol != ProxyProtocol::Off && cfg.http_uses_cluster(i) {
        issue(
            format!("cluster[{i}].proxy_protocol"),
            "cannot be used by HTTP routes: pooled HTTP connections carry requests of many \
             clients, a PROXY header names one (use X-Forwarded-For, which Strait adds)"
                .into(),
        );
    }
    if let Err(e) = check_name(&c.name) {
        issue(format!("cluster[{i}].name"), e);
    }
    if cfg.clusters[..i].iter().any(|o| o.name == c.name) {
        issue(
            format!("cluster[{i}].name"),
            format!("duplicate cluster name {:?}", c.name),
        );
    }
    if c.endpoints.is_empty() {
        issue(
            format!("cluster[{i}].endpoints"),
            "a cluster needs at least one endpoint".into(),
        );
    }
    for (j, e) in c.endpoints.iter().enumerate() {
        if e.weight == 0 || e.weight > limits::MAX_WEIGHT {
            issue(
                format!("cluster[{i}].endpoints[{j}].weight"),
                format!("must be between 1 and {}", limits::MAX_WEIGHT),
            );
        }
        if e.address.port() == 0 || e.address.ip().is_unspecified() {
            issue(
                format!("cluster[{i}].endpoints[{j}].address"),
                "an endpoint needs a concrete IP address and a non-zero port".into(),
            );
        }
    }
    if c.connect_timeout.is_zero() {
        issue(
            format!("cluster[{i}].connect_timeout"),
            "must be greater than 0".into(),
        );
    }
    if c.connect_attempts == 0 || c.connect_attempts > limits::MAX_CONNECT_ATTEMPTS {
        issue(
            format!("cluster[{i}].connect_attempts"),
            format!("must be between 1 and {}", limits::MAX_CONNECT_ATTEMPTS),
        );
    }
}

/// The HTTP keys of cluster `i`: Host, pools, upstream protocol and TLS, the per-endpoint cap.
fn check_upstream_http(i: usize, c: &ClusterConfig, issue: &mut impl FnMut(String, String)) {
    if let Some(h) = &c.http.host {
        if h.is_empty() || !http::is_field_value(h) || h.contains(' ') {
            issue(
                format!("cluster[{i}].host"),
                format!("invalid host {h:?}: expected a host name with an optional port"),
            );
        }
    }
    if c.http.pool_max_idle > http::limits::MAX_POOL_IDLE {
        issue(
            format!("cluster[{i}].pool_max_idle"),
            format!("must be at most {}", http::limits::MAX_POOL_IDLE),
        );
    }
    if c.http.pool_idle_timeout.is_zero() {
        issue(
            format!("cluster[{i}].pool_idle_timeout"),
            "must be greater than 0".into(),
        );
    }
    match (c.http.protocol, &c.http.tls) {
        (UpstreamProtocol::H2, None) => issue(
            format!("cluster[{i}].tls"),
            "protocol = \"h2\" speaks TLS: it needs TLS settings (defaults: system CAs, \
             SNI from `host` or the endpoint address)"
                .into(),
        ),
        (_, Some(t)) if t.insecure && t.ca_file.is_some() => issue(
            format!("cluster[{i}].tls.insecure"),
            "`insecure` skips verification, so `ca_file` would be ignored: give one of them".into(),
        ),
        (UpstreamProtocol::H2c, Some(_)) => issue(
            format!("cluster[{i}].tls"),
            "h2c is HTTP/2 in clear text: use protocol = \"h2\" for HTTP/2 over TLS".into(),
        ),
        _ => {}
    }
    if c.http.max_connections_per_endpoint == 0 {
        issue(
            format!("cluster[{i}].max_connections_per_endpoint"),
            "must be greater than 0".into(),
        );
    }
}

fn check_runtime(rt: &RuntimeConfig, issue: &mut impl FnMut(String, String)) {
    if rt.max_connections_per_core == 0 {
        issue(
            "runtime.max_connections_per_core".into(),
            "must be greater than 0".into(),
        );
    }
    if !(limits::MIN_RELAY_BUFFER..=limits::MAX_RELAY_BUFFER).contains(&rt.relay_buffer_size) {
        issue(
            "runtime.relay_buffer_size".into(),
            format!(
                "must be between {} and {} bytes",
                limits::MIN_RELAY_BUFFER,
                limits::MAX_RELAY_BUFFER
            ),
        );
    }
    if !(limits::MIN_URING_ENTRIES..=limits::MAX_URING_ENTRIES).contains(&rt.uring_entries) {
        issue(
            "runtime.uring_entries".into(),
            format!(
                "must be between {} and {}",
                limits::MIN_URING_ENTRIES,
                limits::MAX_URING_ENTRIES
            ),
        );
    }
    if let CoreSelection::List(cores) = &rt.cores {
        if cores.is_empty() {
            issue("runtime.cores".into(), "the core list is empty".into());
        }
    }
}

fn check_access_log(log: Option<&AccessLogConfig>, issue: &mut impl FnMut(String, String)) {
    if let Some(log) = log {
        if log.sample == 0 {
            issue(
                "access_log.sample".into(),
                "must be at least 1 (1 logs every request)".into(),
            );
        }
    }
}

/// What each kind of listener needs and refuses: HTTP settings, an L4 cluster, sniffing, TLS.
fn check_listener_kind(
    l: &ListenerConfig,
    at: &str,
    clusters: usize,
    issue: &mut impl FnMut(String, String),
) {
    let accepted = l.accepted();
    let needs_http = match l.protocol {
        ListenerProtocol::Http => true,
        ListenerProtocol::Auto => {
            accepted.speaks_http()
                || (accepted.tls
                    && l.tls
                        .as_ref()
                        .is_some_and(|t| t.alpn.iter().any(|a| a == "h2" || a == "http/1.1")))
        }
        ListenerProtocol::Tcp | ListenerProtocol::Udp => false,
    };
    let needs_cluster = match l.protocol {
        ListenerProtocol::Tcp | ListenerProtocol::Udp => true,
        ListenerProtocol::Http => false,
        ListenerProtocol::Auto => accepted.tcp,
    };
    match (needs_http, &l.http) {
        (true, Some(http)) => {
            http::check_listener(http, at, clusters, issue);
            tls::check_h2(&http.h2, &format!("{at}.h2"), issue);
        }
        (true, None) if l.protocol == ListenerProtocol::Http => issue(
            format!("{at}.route"),
            "an http listener forwards through its routes (a `cluster` becomes a catch-all route)"
                .into(),
        ),
        (true, None) => issue(
            format!("{at}.route"),
            "a listener accepting http1, h2c or HTTP over TLS needs at least one route (on a \
             sniffing listener, `cluster` only receives raw TCP)"
                .into(),
        ),
        (false, Some(_)) => issue(
            format!("{at}.route"),
            "routes and HTTP settings need protocol = \"http\" or HTTP among `protocols`".into(),
        ),
        (false, None) => {}
    }
    match (needs_cluster, l.cluster) {
        (true, Some(c)) if c < clusters => {}
        (true, Some(_)) => issue(format!("{at}.cluster"), "refers to no cluster".into()),
        (true, None) if l.protocol == ListenerProtocol::Auto => issue(
            format!("{at}.cluster"),
            "a listener accepting \"tcp\" needs a `cluster` for the connections that are not \
             HTTP or TLS"
                .into(),
        ),
        (true, None) => issue(format!("{at}.cluster"), "refers to no cluster".into()),
        (false, Some(_)) if l.protocol == ListenerProtocol::Http => issue(
            format!("{at}.route"),
            "an http listener forwards through its routes (a `cluster` becomes a catch-all route)"
                .into(),
        ),
        (false, Some(_)) => issue(
            format!("{at}.cluster"),
            "only used for raw TCP: add \"tcp\" to `protocols`".into(),
        ),
        (false, None) => {}
    }
    match (l.protocol, &l.sniff) {
        (ListenerProtocol::Auto, Some(s)) => {
            if s.protocols == ProtocolSet::NONE {
                issue(
                    format!("{at}.protocols"),
                    format!("name at least one of {}", ProtocolSet::VALID),
                );
            }
            if s.timeout.is_zero() {
                issue(
                    format!("{at}.sniff_timeout"),
                    "must be greater than 0".into(),
                );
            }
        }
        (ListenerProtocol::Auto, None) => issue(
            format!("{at}.protocols"),
            format!(
                "protocol = \"auto\" needs `protocols`: some of {}",
                ProtocolSet::VALID
            ),
        ),
        (_, Some(_)) => issue(
            format!("{at}.protocols"),
            "sniffing needs protocol = \"auto\" (or leave `protocol` out)".into(),
        ),
        (_, None) => {}
    }
    match (&l.tls, l.protocol) {
        (Some(_), ListenerProtocol::Udp) => issue(
            format!("{at}.tls"),
            "TLS is for TCP listeners (DTLS is not supported)".into(),
        ),
        (Some(_), ListenerProtocol::Auto) if !accepted.tls => issue(
            format!("{at}.tls"),
            "add \"tls\" to `protocols` to use these TLS settings".into(),
        ),
        (None, ListenerProtocol::Auto) if accepted.tls => issue(
            format!("{at}.tls"),
            "a listener accepting \"tls\" needs [listener.tls] with at least one certificate"
                .into(),
        ),
        (Some(t), _) => tls_checks(t, &format!("{at}.tls"), clusters, l.http.is_some(), issue),
        (None, _) => {}
    }
}

fn tls_checks(
    t: &TlsListenerConfig,
    at: &str,
    clusters: usize,
    has_http: bool,
    issue: &mut impl FnMut(String, String),
) {
    if t.certificates.is_empty() {
        issue(
            format!("{at}.certificate"),
            "TLS termination needs at least one [[listener.tls.certificate]] (cert and key)".into(),
        );
    }
    for (j, a) in t.alpn.iter().enumerate() {
        if t.alpn[..j].contains(a) {
            issue(format!("{at}.alpn[{j}]"), format!("{a:?} is listed twice"));
        }
        if a.is_empty() || a.len() > 255 {
            issue(
                format!("{at}.alpn[{j}]"),
                "an ALPN protocol id is 1 to 255 bytes".into(),
            );
        } else if (a == "h2" || a == "http/1.1") && !has_http {
            issue(
                format!("{at}.alpn[{j}]"),
                format!("{a:?} needs HTTP routes on this listener"),
            );
        }
    }
    for (j, c) in t.certificates.iter().enumerate() {
        for name in &c.server_names {
            if t.certificates[..j]
                .iter()
                .any(|o| o.server_names.iter().any(|n| n.eq_ignore_ascii_case(name)))
            {
                issue(
                    format!("{at}.certificate[{j}].server_names"),
                    format!("{name:?} is already served by an earlier certificate"),
                );
            }
        }
    }
    if t.handshake_timeout.is_zero() {
        issue(
            format!("{at}.handshake_timeout"),
            "must be greater than 0".into(),
        );
    }
    for (j, p) in t.passthrough.iter().enumerate() {
        if p.cluster >= clusters {
            issue(
                format!("{at}.passthrough[{j}].cluster"),
                "refers to no cluster".into(),
            );
        }
    }
}
