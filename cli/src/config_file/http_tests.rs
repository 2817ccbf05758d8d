//! Tests of the HTTP part of the schema: `[access_log]`, HTTP cluster settings, http listeners
//! and `[[listener.route]]`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use strait_engine::config::http::defaults;
use strait_engine::config::{
    AccessLogConfig, AccessLogFormat, AccessLogTarget, ClusterConfig, Config, ConfigIssue,
    EndpointConfig, FixedResponse, ForwardAction, HeaderEdits, HeaderMatch, HostMatch, HttpLimits,
    HttpListenerConfig, HttpTimeouts, ListenerConfig, ListenerProtocol, PathMatch, PrefixRewrite,
    ProxyProtocol, RouteAction, RouteConfig, UpstreamHttpConfig, WeightedCluster,
};
use toml::de::DeTable;

use super::cursor::Ctx;
use super::tests::{addr, errors, load};
use super::{add_issues, walk};

fn loaded(text: &str) -> Config {
    load(text).unwrap_or_else(|d| panic!("{d:#?}"))
}

/// An http listener without routes and two clusters; 12 lines, so the first appended line is 13.
/// Appended `[[listener.route]]` tables belong to the listener (the last `[[listener]]`).
const BASE: &str = r#"[[listener]]
name = "web"
address = "127.0.0.1:8080"
protocol = "http"

[[cluster]]
name = "app"
endpoints = [{ address = "127.0.0.1:9000" }]

[[cluster]]
name = "api"
endpoints = [{ address = "127.0.0.1:9001" }]
"#;

fn with(extra: &str) -> String {
    format!("{BASE}{extra}")
}

fn cluster(name: &str, port: u16) -> ClusterConfig {
    ClusterConfig {
        name: name.into(),
        endpoints: vec![EndpointConfig {
            address: addr(&format!("127.0.0.1:{port}")),
            weight: 1,
        }],
        connect_timeout: Duration::from_secs(3),
        connect_attempts: 3,
        proxy_protocol: ProxyProtocol::Off,
        http: UpstreamHttpConfig::default(),
    }
}

/// A route with every optional part at its default.
fn route(name: &str, action: RouteAction) -> RouteConfig {
    RouteConfig {
        name: name.into(),
        host: HostMatch::Any,
        path: PathMatch::Prefix("/".into()),
        methods: Vec::new(),
        headers: Vec::new(),
        action,
        request_headers: HeaderEdits::default(),
        response_headers: HeaderEdits::default(),
        max_body_size: None,
    }
}

fn to(clusters: &[(usize, u32)], rewrite: Option<(&str, &str)>) -> RouteAction {
    RouteAction::Forward(ForwardAction {
        clusters: clusters
            .iter()
            .map(|&(cluster, weight)| WeightedCluster { cluster, weight })
            .collect(),
        rewrite: rewrite.map(|(from, to)| PrefixRewrite {
            from: from.into(),
            to: to.into(),
        }),
    })
}

fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
    p.iter()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect()
}

/// The "Complete HTTP example" block of docs/config.md, so the documentation cannot drift.
fn doc_http_example() -> &'static str {
    let doc = include_str!("../../../docs/config.md");
    let section = &doc[doc
        .find("### Complete HTTP example")
        .expect("HTTP example section")..];
    let start = section.find("```toml\n").expect("toml block") + "```toml\n".len();
    let len = section[start..].find("\n```").expect("end of block") + 1;
    &section[start..start + len]
}

#[test]
fn the_documented_http_example_loads_with_every_value() {
    let c = loaded(doc_http_example());
    assert_eq!(
        c.access_log,
        Some(AccessLogConfig {
            target: AccessLogTarget::File(PathBuf::from("/var/log/strait/access.log")),
            format: AccessLogFormat::Combined,
            sample: 10,
        })
    );
    let (app, api, canary, db) = (0, 1, 2, 3);
    let routes = vec![
        RouteConfig {
            host: HostMatch::Exact("api.example.com".into()),
            path: PathMatch::Prefix("/v1".into()),
            request_headers: HeaderEdits {
                remove: vec!["x-internal".into()],
                set: pairs(&[("x-env", "prod")]),
                add: pairs(&[("x-via", "strait")]),
            },
            response_headers: HeaderEdits {
                remove: Vec::new(),
                set: pairs(&[("cache-control", "no-store")]),
                add: Vec::new(),
            },
            ..route(
                "api",
                to(&[(api, 90), (canary, 10)], Some(("/v1", "/api/v1"))),
            )
        },
        RouteConfig {
            host: HostMatch::Exact("api.example.com".into()),
            path: PathMatch::Prefix("/upload".into()),
            methods: vec!["POST".into(), "PUT".into()],
            max_body_size: Some(1024 << 30),
            ..route("uploads", to(&[(api, 1)], None))
        },
        RouteConfig {
            host: HostMatch::Suffix(".example.com".into()),
            path: PathMatch::Prefix("/assets/".into()),
            headers: vec![
                HeaderMatch {
                    name: "x-canary".into(),
                    value: Some("1".into()),
                },
                HeaderMatch {
                    name: "x-debug".into(),
                    value: None,
                },
            ],
            ..route("canary-assets", to(&[(canary, 1)], Some(("/assets", ""))))
        },
        RouteConfig {
            path: PathMatch::Exact("/healthz".into()),
            ..route(
                "health",
                RouteAction::Respond(FixedResponse {
                    status: 200,
                    body: "ok\n".into(),
                    content_type: "text/plain; charset=utf-8".into(),
                    location: None,
                }),
            )
        },
        RouteConfig {
            host: HostMatch::Exact("docs.example.com".into()),
            ..route(
                "old-docs",
                RouteAction::Respond(FixedResponse {
                    status: 301,
                    body: String::new(),
                    content_type: "text/plain; charset=utf-8".into(),
                    location: Some("https://example.com/docs/".into()),
                }),
            )
        },
        RouteConfig {
            path: PathMatch::Prefix("/legacy".into()),
            ..route(
                "gone",
                RouteAction::Respond(FixedResponse {
                    status: 410,
                    body: "{\"error\":\"gone\"}".into(),
                    content_type: "application/json".into(),
                    location: None,
                }),
            )
        },
        defaults::catch_all_route(app),
    ];
    assert_eq!(
        c.listeners,
        vec![
            ListenerConfig {
                name: "web".into(),
                address: addr("0.0.0.0:8080"),
                protocol: ListenerProtocol::Http,
                cluster: None,
                idle_timeout: Duration::from_secs(300),
                backlog: 4096,
                http: Some(Box::new(HttpListenerConfig {
                    routes,
                    limits: HttpLimits {
                        max_request_line: 4 * 1024,
                        max_header_size: 32 * 1024,
                        max_headers: 64,
                        max_body_size: 16 << 20,
                    },
                    timeouts: HttpTimeouts {
                        header_read: Duration::from_secs(5),
                        client_body: Duration::from_secs(20),
                        keepalive: Duration::from_secs(30),
                        upstream_response: Duration::from_secs(15),
                        upstream_body: Duration::from_secs(45),
                    },
                    trust_forwarded: true,
                    h2: strait_engine::config::tls::defaults::H2,
                })),
                sniff: None,
                tls: None,
            },
            ListenerConfig {
                name: "db".into(),
                address: addr("127.0.0.1:5433"),
                protocol: ListenerProtocol::Tcp,
                cluster: Some(db),
                idle_timeout: Duration::from_secs(300),
                backlog: 1024,
                http: None,
                sniff: None,
                tls: None,
            },
        ]
    );
    let endpoints = |addrs: &[&str]| -> Vec<EndpointConfig> {
        addrs
            .iter()
            .map(|a| EndpointConfig {
                address: addr(a),
                weight: 1,
            })
            .collect()
    };
    assert_eq!(
        c.clusters,
        vec![
            ClusterConfig {
                endpoints: endpoints(&["10.0.1.1:8000", "10.0.1.2:8000"]),
                ..cluster("app", 0)
            },
            ClusterConfig {
                endpoints: endpoints(&["10.0.2.1:9000", "10.0.2.2:9000"]),
                http: UpstreamHttpConfig {
                    host: Some("api.internal".into()),
                    pool_max_idle: 128,
                    pool_idle_timeout: Duration::from_secs(20),
                    max_connections_per_endpoint: 1000,
                    ..UpstreamHttpConfig::default()
                },
                ..cluster("api", 0)
            },
            ClusterConfig {
                endpoints: endpoints(&["10.0.2.9:9000"]),
                ..cluster("api-canary", 0)
            },
            ClusterConfig {
                endpoints: endpoints(&["10.0.3.1:5432"]),
                ..cluster("db", 0)
            },
        ]
    );
}

#[test]
fn http_defaults_fill_everything_not_written() {
    let c = loaded(&with(
        "\n[[listener.route]]\nname = \"all\"\ncluster = \"api\"\n\n[access_log]\npath = \"stdout\"\n",
    ));
    assert_eq!(
        c,
        Config {
            runtime: Default::default(),
            admin: None,
            log: Default::default(),
            listeners: vec![ListenerConfig {
                name: "web".into(),
                address: addr("127.0.0.1:8080"),
                protocol: ListenerProtocol::Http,
                cluster: None,
                idle_timeout: Duration::from_secs(300),
                backlog: 1024,
                http: Some(Box::new(HttpListenerConfig {
                    routes: vec![route("all", to(&[(1, 1)], None))],
                    limits: defaults::LIMITS,
                    timeouts: defaults::TIMEOUTS,
                    trust_forwarded: false,
                    h2: strait_engine::config::tls::defaults::H2,
                })),
                sniff: None,
                tls: None,
            }],
            clusters: vec![cluster("app", 9000), cluster("api", 9001)],
            access_log: Some(AccessLogConfig {
                target: AccessLogTarget::Stdout,
                format: AccessLogFormat::Json,
                sample: 1,
            }),
        }
    );
}

#[test]
fn a_listener_cluster_becomes_a_catch_all_after_the_routes() {
    // Only a cluster: exactly the quick form's listener.
    let text = BASE.replace(
        "protocol = \"http\"\n",
        "protocol = \"http\"\ncluster = \"api\"\n",
    );
    let c = loaded(&text);
    assert_eq!(c.listeners[0].cluster, None);
    assert_eq!(c.listeners[0].http, Some(Box::new(defaults::catch_all(1))));

    // Routes first, in file order, then the catch-all; the cluster may be defined later.
    let text = r#"[[listener]]
name = "web"
address = "127.0.0.1:8080"
protocol = "http"
cluster = "late"

[[listener.route]]
name = "b"
path = "/b"
respond = { status = 204 }

[[listener.route]]
name = "a"
host = "*"
redirect = { location = "/b" }

[[cluster]]
name = "late"
endpoints = [{ address = "127.0.0.1:9000" }]
"#;
    let http = loaded(text).listeners[0].http.clone().unwrap();
    let fixed = |status, location: Option<&str>| {
        RouteAction::Respond(FixedResponse {
            status,
            body: String::new(),
            content_type: "text/plain; charset=utf-8".into(),
            location: location.map(Into::into),
        })
    };
    assert_eq!(
        http.routes,
        [
            RouteConfig {
                path: PathMatch::Exact("/b".into()),
                ..route("b", fixed(204, None))
            },
            route("a", fixed(302, Some("/b"))),
            defaults::catch_all_route(0),
        ]
    );
}

#[test]
fn other_http_spellings_are_accepted() {
    let text = r#"[[listener]]
name = "web"
address = "127.0.0.1:8080"
protocol = "http"
trust_forwarded = false
max_request_line = 64
max_header_size = "1MiB"
max_body_size = 0

[[listener.route]]
name = "r"
host = "*.Example.COM"
path_prefix = "/"
methods = []
cluster = "app"
strip_prefix = "/x"
max_body_size = "5GiB"
[listener.route.request_headers]
set.X-Env = "prod"
add."x.dotted" = "1"

[[listener.route]]
name = "ip"
host = "[::1]"
clusters = [{ cluster = "app" }]
rewrite_prefix = "/v2"
path_prefix = "/v1/"

[[listener.route]]
name = "v6"
host = "2001:DB8::1"
respond = { status = 503, body = "", content_type = "text/html" }

[[cluster]]
name = "app"
endpoints = [{ address = "127.0.0.1:9000" }]

[access_log]
path = "logs/access.log"
sample = 4294967295
"#;
    let c = loaded(text);
    let http = c.listeners[0].http.as_ref().unwrap();
    assert_eq!(
        http.limits,
        HttpLimits {
            max_request_line: 64,
            max_header_size: 1 << 20,
            max_headers: 100,
            max_body_size: 0,
        }
    );
    assert_eq!(
        http.routes,
        [
            RouteConfig {
                host: HostMatch::Suffix(".example.com".into()),
                request_headers: HeaderEdits {
                    remove: Vec::new(),
                    set: pairs(&[("x-env", "prod")]),
                    add: pairs(&[("x.dotted", "1")]),
                },
                max_body_size: Some(5 << 30),
                ..route("r", to(&[(0, 1)], Some(("/x", ""))))
            },
            RouteConfig {
                host: HostMatch::Exact("[::1]".into()),
                path: PathMatch::Prefix("/v1/".into()),
                ..route("ip", to(&[(0, 1)], Some(("/v1/", "/v2"))))
            },
            RouteConfig {
                host: HostMatch::Exact("2001:db8::1".into()),
                ..route(
                    "v6",
                    RouteAction::Respond(FixedResponse {
                        status: 503,
                        body: String::new(),
                        content_type: "text/html".into(),
                        location: None,
                    }),
                )
            },
        ]
    );
    assert_eq!(
        c.access_log,
        Some(AccessLogConfig {
            target: AccessLogTarget::File("logs/access.log".into()),
            format: AccessLogFormat::Json,
            sample: u32::MAX,
        })
    );
}

/// `[[listener.route]]` tables appended to `BASE`, each one error; the full messages.
#[test]
fn route_errors_name_the_key_and_the_valid_form() {
    let text = with(
        r#"
[[listener.route]]
name = "both-paths"
path = "/a"
path_prefix = "/a"
cluster = "app"

[[listener.route]]
name = "two-actions"
cluster = "app"
respond = { status = 404 }

[[listener.route]]
name = "no-action"
path = "/x"

[[listener.route]]
name = "rewrite-without-prefix"
rewrite_prefix = "/v2"
cluster = "app"

[[listener.route]]
name = "unknown-split"
clusters = [{ cluster = "app", weight = 1 }, { cluster = "ap", weight = 2 }]

[[listener.route]]
name = "host-with-port"
host = "api.example.com:8080"
cluster = "app"

[[listener.route]]
name = "bad-method"
methods = ["GET", "PO ST", "get"]
cluster = "app"

[[listener.route]]
name = "reserved-edit"
cluster = "app"
request_headers = { set = { "Content-Length" = "5" }, remove = ["host"] }

[[listener.route]]
name = "bad-status"
respond = { status = 99 }

[[listener.route]]
name = "bad-redirect"
redirect = { status = 200, location = "/x y" }
"#,
    );
    assert_eq!(
        errors(&text),
        [
            "strait.toml:17:15: listener[0].route[0].path_prefix: give either path (matches one exact \
             path) or path_prefix (matches a path and everything under it), not both",
            "strait.toml:23:11: listener[0].route[1].respond: a route takes exactly one of \
             \"cluster\", \"clusters\", \"respond\" or \"redirect\"; this one also has \"cluster\"",
            "strait.toml:25:1: listener[0].route[2]: a route needs an action: one of \"cluster\", \
             \"clusters\", \"respond\" or \"redirect\"",
            "strait.toml:31:18: listener[0].route[3].rewrite_prefix: rewrite_prefix replaces the \
             route's path_prefix, and this route has no path_prefix; add path_prefix = \"/...\", or \
             use strip_prefix",
            "strait.toml:36:58: listener[0].route[4].clusters[1].cluster: unknown cluster \"ap\"; \
             defined clusters: \"app\", \"api\"",
            "strait.toml:40:8: listener[0].route[5].host: invalid host \"api.example.com:8080\": \
             routes match the host without its port; write \"api.example.com\"",
            "strait.toml:45:19: listener[0].route[6].methods[1]: invalid method \"PO ST\": expected a \
             method name such as \"GET\" or \"POST\" (letters, digits and !#$%&'*+-.^_`|~; no spaces)",
            "strait.toml:45:28: listener[0].route[6].methods[2]: invalid method \"get\": method names \
             are case-sensitive (did you mean \"GET\"?)",
            "strait.toml:51:29: listener[0].route[7].request_headers.set.Content-Length: \
             \"content-length\" is managed by the proxy and cannot be edited",
            "strait.toml:51:65: listener[0].route[7].request_headers.remove[0]: \"host\" is managed \
             by the proxy and cannot be edited (set the cluster's `host` to change the Host sent \
             upstream)",
            "strait.toml:55:22: listener[0].route[8].respond.status: must be between 200 and 599, \
             found 99",
            "strait.toml:59:23: listener[0].route[9].redirect.status: must be 301, 302, 303, 307 or \
             308, found 200",
            "strait.toml:59:39: listener[0].route[9].redirect.location: invalid location \"/x y\": \
             expected a URL or path such as \"https://example.com/\" or \"/new\" (visible ASCII \
             without spaces; percent-encode others)",
        ]
    );
}

#[test]
fn listener_level_http_errors() {
    // A route on a tcp listener (the default protocol), and an HTTP setting on a udp one (which
    // may share the tcp listener's address: they are different sockets).
    let text = r#"[[listener]]
name = "tcp"
address = "127.0.0.1:8080"
cluster = "app"

[[listener.route]]
name = "r"
cluster = "app"

[[listener]]
name = "udp"
address = "127.0.0.1:8080"
protocol = "udp"
cluster = "app"
max_headers = 10

[[listener]]
name = "bare"
address = "127.0.0.1:8081"
protocol = "http"

[[listener]]
name = "empty"
address = "127.0.0.1:8082"
protocol = "http"
route = []

[[cluster]]
name = "app"
endpoints = [{ address = "127.0.0.1:9000" }]

[access_log]
path = "stdout"
sample = 0
"#;
    assert_eq!(
        errors(text),
        [
            "strait.toml:6:1: listener[0].route: routes need protocol = \"http\", and this listener \
             is \"tcp\" (the default)",
            "strait.toml:15:15: listener[1].max_headers: an HTTP setting; it needs protocol = \
             \"http\", and this listener is \"udp\"",
            "strait.toml:17:1: listener[2].route: an http listener needs at least one \
             [[listener.route]], or a `cluster` to forward every request to",
            "strait.toml:26:9: listener[3].route: an http listener needs at least one \
             [[listener.route]], or a `cluster` to forward every request to",
            "strait.toml:34:10: access_log.sample: must be at least 1, found 0",
        ]
    );
}

#[test]
fn more_route_errors() {
    let text = with(
        r#"
[[listener.route]]
name = "default"
cluster = "app"
strip_prefix = "/a"
rewrite_prefix = "/b"

[[listener.route]]
name = "default"
path_prefix = "api"
respond = { status = 301, body = 1 }
strip_prefix = "/api"

[[listener.route]]
name = "split"
path = "/exact"
clusters = [{ cluster = "app", weight = 0 }, { cluster = "app" }, "api"]
strip_prefix = "/other"
headers = [{ name = "x y", value = " padded" }, { value = "1" }]
response_headers = { set = { "x-a" = "1", "X-A" = "2" }, add = { "x-b" = 3 }, keep = [] }

[[listener.route]]
name = "empty-split"
host = "a.*.com"
clusters = []
max_body_size = -1
mehtods = ["GET"]
"#,
    )
    .replacen(
        "protocol = \"http\"\n",
        "protocol = \"http\"\ncluster = \"api\"\n",
        1,
    );
    // One line added at line 5: appended lines start at 14.
    assert_eq!(
        errors(&text),
        [
            // Two routes named "default" while the listener's `cluster` adds one.
            "strait.toml:16:8: listener[0].route[0].name: the route name \"default\" is taken by the \
             catch-all route that the listener's `cluster` adds; rename this route",
            "strait.toml:19:18: listener[0].route[0].rewrite_prefix: give either strip_prefix \
             (removes a prefix) or rewrite_prefix (replaces the path_prefix), not both",
            "strait.toml:22:8: listener[0].route[1].name: duplicate route name \"default\" in this \
             listener; first defined at line 16",
            "strait.toml:23:15: listener[0].route[1].path_prefix: invalid path \"api\": must start \
             with \"/\"",
            "strait.toml:24:22: listener[0].route[1].respond.status: a 301 answer needs a location: \
             write redirect = { status = 301, location = \"...\" } instead",
            "strait.toml:24:34: listener[0].route[1].respond.body: expected a string, found an integer",
            "strait.toml:25:16: listener[0].route[1].strip_prefix: strip_prefix applies to routes \
             that forward (cluster or clusters), not to a respond route",
            "strait.toml:30:41: listener[0].route[2].clusters[0].weight: must be between 1 and 1000, \
             found 0",
            "strait.toml:30:58: listener[0].route[2].clusters[1].cluster: this cluster is already \
             listed at line 30, column 25; give it one entry with the combined weight",
            "strait.toml:30:67: listener[0].route[2].clusters[2]: expected a weighted cluster such as \
             { cluster = \"a\", weight = 90 }, found a string",
            "strait.toml:31:16: listener[0].route[2].strip_prefix: strip_prefix \"/other\" never \
             applies: this route only matches the path \"/exact\"",
            "strait.toml:32:21: listener[0].route[2].headers[0].name: invalid header name \"x y\": \
             expected a field name such as \"x-request-id\" (letters, digits and \
             !#$%&'*+-.^_`|~; no spaces or colons)",
            "strait.toml:32:36: listener[0].route[2].headers[0].value: invalid header value \
             \" padded\": use visible ASCII characters and spaces, without leading or trailing \
             whitespace",
            "strait.toml:32:49: listener[0].route[2].headers[1].name: missing required key \"name\" \
             in a header condition",
            "strait.toml:33:43: listener[0].route[2].response_headers.set.X-A: \"x-a\" is set twice \
             (header names are case-insensitive)",
            "strait.toml:33:74: listener[0].route[2].response_headers.add.x-b: expected header value \
             (a string), found an integer",
            "strait.toml:33:79: listener[0].route[2].response_headers.keep: unknown key \"keep\"; \
             valid keys in a header edits table: \"remove\", \"set\", \"add\"",
            "strait.toml:37:8: listener[0].route[3].host: invalid host \"a.*.com\": a wildcard may \
             only be the whole first label, as in \"*.example.com\"",
            "strait.toml:38:12: listener[0].route[3].clusters: needs at least one cluster, e.g. \
             clusters = [{ cluster = \"a\", weight = 90 }]",
            "strait.toml:39:17: listener[0].route[3].max_body_size: must be at least 0B (0 bytes), \
             found -1 bytes",
            "strait.toml:40:1: listener[0].route[3].mehtods: unknown key \"mehtods\" (did you mean \
             \"methods\"?); valid keys in [[listener.route]]: \"name\", \"host\", \"path_prefix\", \
             \"path\", \"methods\", \"headers\", \"cluster\", \"clusters\", \"respond\", \"redirect\", \
             \"strip_prefix\", \"rewrite_prefix\", \"request_headers\", \"response_headers\", \
             \"max_body_size\"",
        ]
    );
}

#[test]
fn http_settings_and_cluster_settings_are_checked() {
    let text = r#"[[listener]]
name = "web"
address = "127.0.0.1:8080"
protocol = "http"
cluster = "app"
trust_forwarded = "yes"
max_request_line = 10
max_header_size = "2MiB"
max_headers = 129
max_body_size = "1TiB"
keepalive_timeout = "0s"
upstream_body_timeout = 5

[[cluster]]
name = "app"
endpoints = [{ address = "127.0.0.1:9000" }]
host = "http://api.internal/"
pool_max_idle = 100001
pool_idle_timeout = "0s"
max_connections_per_endpoint = 0

[access_log]
format = "text"
"#;
    assert_eq!(
        errors(text),
        [
            "strait.toml:6:19: listener[0].trust_forwarded: expected a boolean (true or false), \
             found a string",
            "strait.toml:7:20: listener[0].max_request_line: must be between 64B and 1MiB (64 and \
             1048576 bytes), found 10 bytes",
            "strait.toml:8:19: listener[0].max_header_size: must be between 256B and 1MiB (256 and \
             1048576 bytes), found 2097152 bytes",
            "strait.toml:9:15: listener[0].max_headers: must be between 1 and 128, found 129",
            "strait.toml:10:17: listener[0].max_body_size: invalid size \"1TiB\": expected a size \
             such as \"64KiB\", \"1MiB\" or a number of bytes (units: B, KiB, MiB, GiB)",
            "strait.toml:11:21: listener[0].keepalive_timeout: must be greater than 0, found \"0s\"",
            "strait.toml:12:25: listener[0].upstream_body_timeout: expected a duration string such \
             as \"250ms\", \"5s\", \"2m\" or \"1h\" (units: ms, s, m, h), found an integer",
            "strait.toml:17:8: cluster[0].host: invalid host \"http://api.internal/\": expected the \
             Host header to send upstream, a host name with an optional port such as \
             \"api.internal\" or \"api.internal:8443\" (no scheme, path or spaces)",
            "strait.toml:18:17: cluster[0].pool_max_idle: must be between 0 and 100000, found 100001",
            "strait.toml:19:21: cluster[0].pool_idle_timeout: must be greater than 0, found \"0s\"",
            "strait.toml:20:32: cluster[0].max_connections_per_endpoint: must be at least 1, found 0",
            "strait.toml:22:1: access_log.path: missing required key \"path\" in [access_log]",
            "strait.toml:23:10: access_log.format: invalid value \"text\"; expected \"json\" or \
             \"combined\"",
        ]
    );
}

#[test]
fn an_invalid_protocol_does_not_cascade() {
    // Neither "cluster is missing" nor "routes need http" nor "needs routes": only the protocol.
    let text = "[[listener]]\nname = \"a\"\naddress = \"127.0.0.1:1\"\nprotocol = \"htp\"\nmax_headers = 10\n";
    assert_eq!(
        errors(text),
        ["strait.toml:4:12: listener[0].protocol: invalid value \"htp\"; expected \"tcp\", \"udp\", \
          \"http\" or \"auto\""]
    );
    let text = format!("{text}[[listener.route]]\nname = \"r\"\nrespond = {{ status = 200 }}\n");
    assert_eq!(errors(&text).len(), 1);
}

#[test]
fn route_values_of_the_wrong_type_say_what_was_expected() {
    let text = r#"[[listener]]
name = "web"
address = "127.0.0.1:8080"
protocol = "http"
route = [
  "api",
  { name = 1, host = 2, path_prefix = 3, methods = "GET", headers = { name = "x" }, cluster = 4 },
  { name = "c", request_headers = [], response_headers = { remove = "x-a", set = [] }, redirect = "/" },
  { name = "d", respond = 404 },
]

[[cluster]]
name = "app"
endpoints = [{ address = "127.0.0.1:9000" }]
"#;
    assert_eq!(
        errors(text),
        [
            "strait.toml:6:3: listener[0].route[0]: expected a route table such as { name = \"api\", \
             path_prefix = \"/api\", cluster = \"api\" }, found a string",
            "strait.toml:7:12: listener[0].route[1].name: expected a name (a string), found an integer",
            "strait.toml:7:22: listener[0].route[1].host: expected a host name (a string) such as \
             \"api.example.com\" or \"*.example.com\", found an integer",
            "strait.toml:7:39: listener[0].route[1].path_prefix: expected a path string such as \
             \"/api\", found an integer",
            "strait.toml:7:52: listener[0].route[1].methods: expected an array of method names such \
             as [\"GET\", \"HEAD\"], found a string",
            "strait.toml:7:69: listener[0].route[1].headers: expected an array of header conditions \
             such as [{ name = \"x-canary\", value = \"1\" }], found a table",
            "strait.toml:7:95: listener[0].route[1].cluster: expected a cluster name (a string), found \
             an integer",
            "strait.toml:8:35: listener[0].route[2].request_headers: expected a table such as \
             { remove = [\"x-internal\"], set = { \"x-env\" = \"prod\" } }, found an array",
            "strait.toml:8:69: listener[0].route[2].response_headers.remove: expected an array of \
             header names such as [\"x-internal\"], found a string",
            "strait.toml:8:82: listener[0].route[2].response_headers.set: expected a table of header \
             names and values such as { \"x-env\" = \"prod\" }, found an array",
            "strait.toml:8:99: listener[0].route[2].redirect: expected a table such as { status = \
             301, location = \"https://example.com/\" }, found a string",
            "strait.toml:9:27: listener[0].route[3].respond: expected a table such as { status = \
             404, body = \"not found\\n\" }, found an integer",
        ]
    );
}

#[test]
fn validate_issues_on_http_paths_get_the_position_of_their_key() {
    let text = with(
        r#"
[[listener.route]]
name = "r"
path_prefix = "/a"
clusters = [{ cluster = "app", weight = 1 }]
respond_x = 1
"#,
    );
    let root = DeTable::parse(&text).unwrap();
    let mut ctx = Ctx::new(&text);
    let _ = walk(&mut ctx, root.span(), root.get_ref());
    assert!(ctx.has_errors());
    let issue = |path: &str| ConfigIssue {
        path: path.into(),
        message: "m".into(),
    };
    add_issues(
        &mut ctx,
        vec![
            // `path` is where the route's path_prefix is written.
            issue("listener[0].route[0].path"),
            issue("listener[0].route[0].clusters[0].weight"),
            // Not written: the enclosing weighted cluster table.
            issue("listener[0].route[0].clusters[0].extra"),
            // Covered by the unknown-key error on the same path.
            issue("listener[0].route[0].respond_x"),
            issue("listener[0].route"),
            issue("listener[0].max_headers"),
        ],
    );
    let got: Vec<String> = ctx
        .into_diagnostics(Path::new("x.toml"))
        .iter()
        .map(|d| d.to_string())
        .collect();
    assert_eq!(
        got,
        [
            "x.toml:1:1: listener[0].max_headers: m",
            "x.toml:14:1: listener[0].route: m",
            "x.toml:16:15: listener[0].route[0].path: m",
            "x.toml:17:13: listener[0].route[0].clusters[0].extra: m",
            "x.toml:17:41: listener[0].route[0].clusters[0].weight: m",
            "x.toml:18:1: listener[0].route[0].respond_x: unknown key \"respond_x\" (did you mean \
             \"respond\"?); valid keys in [[listener.route]]: \"name\", \"host\", \"path_prefix\", \
             \"path\", \"methods\", \"headers\", \"cluster\", \"clusters\", \"respond\", \"redirect\", \
             \"strip_prefix\", \"rewrite_prefix\", \"request_headers\", \"response_headers\", \
             \"max_body_size\"",
        ]
    );
}

#[test]
fn http_listeners_share_no_address_with_tcp_ones_but_udp_may() {
    let text = r#"[[listener]]
name = "web"
address = "127.0.0.1:8080"
protocol = "http"
cluster = "app"

[[listener]]
name = "dns"
address = "127.0.0.1:8080"
protocol = "udp"
cluster = "app"

[[listener]]
name = "tcp"
address = "127.0.0.1:8080"
cluster = "app"

[[cluster]]
name = "app"
endpoints = [{ address = "127.0.0.1:9000" }]
"#;
    assert_eq!(
        errors(text),
        [
            "strait.toml:15:11: listener[2].address: duplicate listener address 127.0.0.1:8080; \
          first used at line 3"
        ]
    );
    let udp_and_http = text.replace(
        "address = \"127.0.0.1:8080\"\ncluster",
        "address = \"127.0.0.1:8081\"\ncluster",
    );
    assert_eq!(loaded(&udp_and_http).listeners.len(), 3);
}

#[test]
fn truncated_or_mangled_http_files_never_panic() {
    let text = doc_http_example();
    for end in (0..=text.len()).filter(|&i| text.is_char_boundary(i)) {
        if let Err(diags) = load(&text[..end]) {
            assert!(!diags.is_empty());
            for d in &diags {
                assert!(d.line >= 1 && d.column >= 1, "{end}: {d}");
            }
        }
        if let Some(c) = text[end..].chars().next() {
            let mangled = format!("{}{}", &text[..end], &text[end + c.len_utf8()..]);
            let _ = load(&mangled);
        }
    }
}
