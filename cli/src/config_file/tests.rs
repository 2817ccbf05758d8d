use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use strait_engine::config::{
    AdminConfig, ClusterConfig, Config, ConfigIssue, CoreSelection, EndpointConfig, IoDriver,
    ListenerConfig, ListenerProtocol, LogConfig, LogFormat, LogLevel, ProxyProtocol, RelayMode,
    RuntimeConfig, UpstreamHttpConfig,
};
use toml::de::DeTable;

use super::cursor::Ctx;
use super::{add_issues, load_file, load_str, walk, Diagnostic};

pub(super) fn load(text: &str) -> Result<Config, Vec<Diagnostic>> {
    load_str(Path::new("strait.toml"), text)
}

/// The diagnostics of a bad file, as printed.
pub(super) fn errors(text: &str) -> Vec<String> {
    match load(text) {
        Ok(c) => panic!("expected errors, got {c:#?}"),
        Err(diags) => diags.iter().map(|d| d.to_string()).collect(),
    }
}

pub(super) fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

/// The smallest valid file, used as a base for single-error tests.
const MINIMAL: &str = r#"[[listener]]
name = "edge"
address = "127.0.0.1:8080"
cluster = "backend"

[[cluster]]
name = "backend"
endpoints = [{ address = "127.0.0.1:9000" }]
"#;

/// `MINIMAL` with `extra` appended (so the base keeps its line numbers 1-8; line 9 is the first
/// appended line).
fn minimal_with(extra: &str) -> String {
    format!("{MINIMAL}{extra}")
}

/// The "Complete example" block of docs/config.md, so the documentation cannot drift.
fn doc_example() -> &'static str {
    let doc = include_str!("../../../docs/config.md");
    let section = &doc[doc.find("## Complete example").expect("example section")..];
    let start = section.find("```toml\n").expect("toml block") + "```toml\n".len();
    let len = section[start..].find("\n```").expect("end of block") + 1;
    &section[start..start + len]
}

#[test]
fn the_documented_example_loads_with_every_value() {
    let c = load(doc_example()).unwrap_or_else(|d| panic!("{d:#?}"));
    assert_eq!(
        c.runtime,
        RuntimeConfig {
            cores: CoreSelection::List(vec![0, 1, 2, 3]),
            io_driver: IoDriver::Auto,
            uring_entries: 2048,
            drain_timeout: Duration::from_secs(15),
            max_connections_per_core: 20_000,
            relay: RelayMode::Splice,
            relay_buffer_size: 128 * 1024,
            watch_config: false,
        }
    );
    assert_eq!(c.admin, Some(AdminConfig::at(addr("127.0.0.1:9901"))));
    assert_eq!(
        c.log,
        LogConfig {
            level: LogLevel::Info,
            format: LogFormat::Json
        }
    );
    assert_eq!(
        c.listeners,
        vec![
            ListenerConfig {
                name: "edge".into(),
                address: addr("0.0.0.0:8080"),
                protocol: ListenerProtocol::Tcp,
                cluster: Some(0),
                idle_timeout: Duration::from_secs(120),
                backlog: 4096,
                http: None,
                sniff: None,
                tls: None,
            },
            ListenerConfig {
                name: "cache-in".into(),
                address: addr("[::1]:6380"),
                protocol: ListenerProtocol::Tcp,
                cluster: Some(1),
                idle_timeout: Duration::from_secs(300),
                backlog: 1024,
                http: None,
                sniff: None,
                tls: None,
            },
        ]
    );
    assert_eq!(
        c.clusters,
        vec![
            ClusterConfig {
                name: "backend".into(),
                endpoints: vec![
                    EndpointConfig {
                        address: addr("10.0.0.1:9000"),
                        weight: 1
                    },
                    EndpointConfig {
                        address: addr("10.0.0.2:9000"),
                        weight: 3
                    },
                ],
                connect_timeout: Duration::from_secs(1),
                connect_attempts: 2,
                proxy_protocol: ProxyProtocol::V2,
                http: UpstreamHttpConfig::default(),
            },
            ClusterConfig {
                name: "cache".into(),
                endpoints: vec![EndpointConfig {
                    address: addr("[::1]:6379"),
                    weight: 1
                }],
                connect_timeout: Duration::from_secs(3),
                connect_attempts: 3,
                proxy_protocol: ProxyProtocol::Off,
                http: UpstreamHttpConfig::default(),
            },
        ]
    );
}

#[test]
fn defaults_fill_everything_not_written() {
    let c = load(MINIMAL).unwrap_or_else(|d| panic!("{d:#?}"));
    assert_eq!(
        c,
        Config {
            runtime: RuntimeConfig::default(),
            admin: None,
            log: LogConfig {
                level: LogLevel::Info,
                format: LogFormat::Text
            },
            listeners: vec![ListenerConfig {
                name: "edge".into(),
                address: addr("127.0.0.1:8080"),
                protocol: ListenerProtocol::Tcp,
                cluster: Some(0),
                idle_timeout: Duration::from_secs(300),
                backlog: 1024,
                http: None,
                sniff: None,
                tls: None,
            }],
            clusters: vec![ClusterConfig {
                name: "backend".into(),
                endpoints: vec![EndpointConfig {
                    address: addr("127.0.0.1:9000"),
                    weight: 1
                }],
                connect_timeout: Duration::from_secs(3),
                connect_attempts: 3,
                proxy_protocol: ProxyProtocol::Off,
                http: UpstreamHttpConfig::default(),
            }],
            access_log: None,
        }
    );
    assert_eq!(c.runtime.cores, CoreSelection::All);
    assert_eq!(c.runtime.drain_timeout, Duration::from_secs(30));
    assert_eq!(c.runtime.relay_buffer_size, 256 * 1024);
}

#[test]
fn listeners_may_refer_to_clusters_defined_later_and_earlier() {
    let text = r#"
[[cluster]]
name = "a"
endpoints = [{ address = "127.0.0.1:1" }]

[[listener]]
name = "one"
address = "127.0.0.1:0"
cluster = "b"

[[listener]]
name = "two"
address = "127.0.0.1:0"
cluster = "a"

[[cluster]]
name = "b"
[[cluster.endpoints]]
address = "127.0.0.2:2"
weight = 7
[[cluster.endpoints]]
address = "[2001:db8::1]:3"

[[cluster]]
name = "unused"
endpoints = [{ address = "127.0.0.1:4" }]
"#;
    let c = load(text).unwrap_or_else(|d| panic!("{d:#?}"));
    // Two listeners on port 0 are not duplicates.
    assert_eq!(
        c.listeners.iter().map(|l| l.cluster).collect::<Vec<_>>(),
        [Some(1), Some(0)]
    );
    assert_eq!(c.clusters.len(), 3);
    assert_eq!(
        c.clusters[1].endpoints,
        [
            EndpointConfig {
                address: addr("127.0.0.2:2"),
                weight: 7
            },
            EndpointConfig {
                address: addr("[2001:db8::1]:3"),
                weight: 1
            },
        ]
    );
}

#[test]
fn other_value_spellings_are_accepted() {
    let text = minimal_with(
        r#"
[runtime]
cores = "all"
io_driver = "io_uring"
uring_entries = 0x1000
relay = "copy"
relay_buffer_size = 65_536
drain_timeout = "1m30s"
max_connections_per_core = 1

[admin]
address = "[::1]:9901"

[log]
level = "trace"
"#,
    );
    let c = load(&text).unwrap_or_else(|d| panic!("{d:#?}"));
    assert_eq!(c.runtime.cores, CoreSelection::All);
    assert_eq!(c.runtime.io_driver, IoDriver::Uring);
    assert_eq!(c.runtime.uring_entries, 4096);
    assert_eq!(c.runtime.relay, RelayMode::Copy);
    assert_eq!(c.runtime.relay_buffer_size, 65536);
    assert_eq!(c.runtime.drain_timeout, Duration::from_secs(90));
    assert_eq!(c.runtime.max_connections_per_core, 1);
    assert_eq!(c.admin, Some(AdminConfig::at(addr("[::1]:9901"))));
    assert_eq!(c.log.level, LogLevel::Trace);
    assert_eq!(c.log.format, LogFormat::Text);
}

#[test]
fn unknown_cluster_lists_the_defined_ones() {
    let text = r#"# line 1
[[cluster]]
name = "backend"
endpoints = [{ address = "127.0.0.1:9000" }]

[[cluster]]
name = "cache"
endpoints = [{ address = "127.0.0.1:6379" }]

[[listener]]
name = "edge"
cluster = "bakend"
address = "127.0.0.1:8080"
"#;
    let diags = load(text).unwrap_err();
    assert_eq!(
        diags,
        [Diagnostic {
            file: "strait.toml".into(),
            line: 12,
            column: 11,
            key: "listener[0].cluster".into(),
            message: "unknown cluster \"bakend\"; defined clusters: \"backend\", \"cache\"".into(),
        }]
    );
    assert_eq!(
        diags[0].to_string(),
        "strait.toml:12:11: listener[0].cluster: unknown cluster \"bakend\"; defined clusters: \"backend\", \"cache\""
    );
}

#[test]
fn unknown_cluster_without_any_cluster() {
    let text = "[[listener]]\nname = \"edge\"\naddress = \"127.0.0.1:80\"\ncluster = \"x\"\n";
    assert_eq!(
        errors(text),
        ["strait.toml:4:11: listener[0].cluster: unknown cluster \"x\"; no [[cluster]] is defined"]
    );
}

#[test]
fn unknown_keys_suggest_the_closest_and_list_the_valid_ones() {
    let text = minimal_with("idel_timeout = \"5m\"\n");
    // The appended line belongs to the last table, [[cluster]]: no close match in it.
    assert_eq!(
        errors(&text),
        ["strait.toml:9:1: cluster[0].idel_timeout: unknown key \"idel_timeout\"; valid keys in \
          [[cluster]]: \"name\", \"connect_timeout\", \"connect_attempts\", \"proxy_protocol\", \"endpoints\", \
          \"host\", \"pool_max_idle\", \"pool_idle_timeout\", \"max_connections_per_endpoint\", \
          \"protocol\", \"tls\""]
    );

    let text = MINIMAL.replace(
        "cluster = \"backend\"\n",
        "cluster = \"backend\"\nidel_timeout = \"5m\"\n",
    );
    assert_eq!(
        errors(&text),
        ["strait.toml:5:1: listener[0].idel_timeout: unknown key \"idel_timeout\" (did you mean \
          \"idle_timeout\"?); valid keys in [[listener]]: \"name\", \"address\", \"protocol\", \
          \"protocols\", \"sniff_timeout\", \"cluster\", \"idle_timeout\", \"backlog\", \"tls\", \
          \"route\", \"trust_forwarded\", \"max_request_line\", \"max_header_size\", \"max_headers\", \
          \"max_body_size\", \"header_read_timeout\", \"client_body_timeout\", \"keepalive_timeout\", \
          \"upstream_response_timeout\", \"upstream_body_timeout\", \"h2\""]
    );
}

#[test]
fn unknown_tables_and_nested_keys_are_reported_once() {
    let text = minimal_with("\n[listeners]\nname = \"x\"\n\n[runtime]\ncores = \"1\"\nrelay.mode = \"copy\"\n\n[[cluster.endpoint]]\naddress = \"127.0.0.1:1\"\n");
    assert_eq!(
        errors(&text),
        [
            "strait.toml:10:2: listeners: unknown key \"listeners\" (did you mean \"listener\"?); \
             valid keys in the top level: \"runtime\", \"admin\", \"log\", \"access_log\", \"listener\", \
             \"cluster\"",
            // A dotted key makes a table.
            "strait.toml:15:1: runtime.relay: expected a string (\"splice\" or \"copy\"), found a table",
            // [[cluster.endpoint]] adds a key to the last [[cluster]].
            "strait.toml:17:11: cluster[0].endpoint: unknown key \"endpoint\" (did you mean \
             \"endpoints\"?); valid keys in [[cluster]]: \"name\", \"connect_timeout\", \
             \"connect_attempts\", \"proxy_protocol\", \"endpoints\", \"host\", \"pool_max_idle\", \
             \"pool_idle_timeout\", \"max_connections_per_endpoint\", \"protocol\", \"tls\"",
        ]
    );
}

#[test]
fn wrong_types_say_what_was_expected() {
    let text = r#"runtime = 5
log = { level = 3, format = true }

[[listener]]
name = 7
address = 8080
cluster = "backend"
idle_timeout = 30
backlog = "1024"

[[cluster]]
name = "backend"
connect_attempts = 2.5
endpoints = ["127.0.0.1:9000"]
"#;
    assert_eq!(
        errors(text),
        [
            "strait.toml:1:11: runtime: expected a table ([runtime]), found an integer",
            "strait.toml:2:17: log.level: expected a string (\"error\", \"warn\", \"info\", \"debug\" \
             or \"trace\"), found an integer",
            "strait.toml:2:29: log.format: expected a string (\"text\" or \"json\"), found a boolean",
            "strait.toml:5:8: listener[0].name: expected a name (a string), found an integer",
            "strait.toml:6:11: listener[0].address: expected an address string such as \
             \"127.0.0.1:8080\", found an integer",
            "strait.toml:8:16: listener[0].idle_timeout: expected a duration string such as \
             \"250ms\", \"5s\", \"2m\" or \"1h\" (units: ms, s, m, h), found an integer",
            "strait.toml:9:11: listener[0].backlog: expected an integer, found a string",
            "strait.toml:13:20: cluster[0].connect_attempts: expected an integer, found a float",
            "strait.toml:14:14: cluster[0].endpoints[0]: expected an endpoint table such as \
             { address = \"127.0.0.1:9000\", weight = 1 }, found a string",
        ]
    );
}

#[test]
fn listener_and_cluster_must_be_arrays_of_tables() {
    let text = "[listener]\nname = \"a\"\n\ncluster = 3\n";
    // `cluster = 3` is inside [listener]: it is listener.cluster, not a top-level key.
    let text2 = "cluster = 3\n[listener]\nname = \"a\"\n";
    assert_eq!(
        errors(text),
        ["strait.toml:1:1: listener: expected an array of tables ([[listener]]), found a table"]
    );
    assert_eq!(
        errors(text2),
        [
            "strait.toml:1:11: cluster: expected an array of tables ([[cluster]]), found an integer",
            "strait.toml:2:1: listener: expected an array of tables ([[listener]]), found a table",
        ]
    );
}

#[test]
fn every_error_in_the_file_is_reported_in_file_order() {
    let text = r#"[runtime]
cores = "0-3,x"
io_driver = "fast"
uring_entries = 100
drain_timeout = "30 seconds"
relay_buffer_size = "1GiB"

[log]
level = "Debug"

[[listener]]
name = "edge"
address = "localhost:8080"
cluster = "backend"
idel_timeout = "5m"
backlog = 70000

[[cluster]]
name = "backend"
connect_attempts = 0
endpoints = [{ address = "127.0.0.1:9000", weight = 1001 }, { address = "0.0.0.0:9001" }]
"#;
    let diags = load(text).unwrap_err();
    let got: Vec<(usize, usize, &str)> = diags
        .iter()
        .map(|d| (d.line, d.column, d.key.as_str()))
        .collect();
    assert_eq!(
        got,
        [
            (2, 9, "runtime.cores"),
            (3, 13, "runtime.io_driver"),
            (4, 17, "runtime.uring_entries"),
            (5, 17, "runtime.drain_timeout"),
            (6, 21, "runtime.relay_buffer_size"),
            (9, 9, "log.level"),
            (13, 11, "listener[0].address"),
            (15, 1, "listener[0].idel_timeout"),
            (16, 11, "listener[0].backlog"),
            (20, 20, "cluster[0].connect_attempts"),
            (21, 53, "cluster[0].endpoints[0].weight"),
            (21, 73, "cluster[0].endpoints[1].address"),
        ]
    );
    let messages: Vec<&str> = diags.iter().map(|d| d.message.as_str()).collect();
    assert_eq!(
        messages,
        [
            "invalid core \"x\" in \"0-3,x\": expected a CPU number from 0 to 4095 (e.g. \"0-3,6\" or \"all\")",
            "invalid value \"fast\"; expected \"auto\", \"uring\" or \"epoll\"",
            "must be between 256 and 32768, found 100",
            "invalid duration \"30 seconds\": expected a duration such as \"250ms\", \"5s\", \"2m\" \
             or \"1h\" (units: ms, s, m, h)",
            "must be between 4KiB and 16MiB (4096 and 16777216 bytes), found 1073741824 bytes",
            "invalid value \"Debug\"; expected \"error\", \"warn\", \"info\", \"debug\" or \"trace\" \
             (did you mean \"debug\"?)",
            "invalid address \"localhost:8080\": the host must be an IP address (host names are not \
             resolved); write IP:port such as \"127.0.0.1:8080\" or \"[::1]:8080\"",
            "unknown key \"idel_timeout\" (did you mean \"idle_timeout\"?); valid keys in [[listener]]: \
             \"name\", \"address\", \"protocol\", \"protocols\", \"sniff_timeout\", \"cluster\", \
             \"idle_timeout\", \"backlog\", \"tls\", \"route\", \"trust_forwarded\", \
             \"max_request_line\", \"max_header_size\", \"max_headers\", \"max_body_size\", \
             \"header_read_timeout\", \"client_body_timeout\", \"keepalive_timeout\", \
             \"upstream_response_timeout\", \"upstream_body_timeout\", \"h2\"",
            "must be between 1 and 65535, found 70000",
            "must be between 1 and 16, found 0",
            "must be between 1 and 1000, found 1001",
            "an endpoint needs a concrete IP address and a non-zero port, found 0.0.0.0:9001",
        ]
    );
}

#[test]
fn missing_required_keys_point_at_their_table() {
    let text = r#"[admin]
port = 9901

[[listener]]
protocol = "tcp"

[[cluster]]
connect_timeout = "1s"
"#;
    assert_eq!(
        errors(text),
        [
            "strait.toml:1:1: admin.address: missing required key \"address\" in [admin]",
            "strait.toml:2:1: admin.port: unknown key \"port\"; valid keys in [admin]: \"address\", \"token_file\", \"audit_log\", \"persist\", \"max_versions\"",
            "strait.toml:4:1: listener[0].name: missing required key \"name\" in [[listener]]",
            "strait.toml:4:1: listener[0].address: missing required key \"address\" in [[listener]]",
            "strait.toml:4:1: listener[0].cluster: missing required key \"cluster\" in [[listener]]",
            "strait.toml:7:1: cluster[0].name: missing required key \"name\" in [[cluster]]",
            "strait.toml:7:1: cluster[0].endpoints: missing required key \"endpoints\" in [[cluster]]",
        ]
    );
}

#[test]
fn a_file_without_listeners_is_an_error() {
    assert_eq!(
        errors("[log]\nlevel = \"warn\"\n"),
        ["strait.toml:1:1: listener: at least one [[listener]] is required"]
    );
    assert_eq!(
        errors("listener = []\n"),
        ["strait.toml:1:12: listener: at least one [[listener]] is required"]
    );
}

#[test]
fn endpoints_need_an_address_and_at_least_one_entry() {
    let text = r#"[[listener]]
name = "edge"
address = "127.0.0.1:8080"
cluster = "backend"

[[cluster]]
name = "backend"
endpoints = []

[[cluster]]
name = "other"
endpoints = [{ weight = 2, adress = "127.0.0.1:1" }, { address = "127.0.0.1:0" }]
"#;
    assert_eq!(
        errors(text),
        [
            "strait.toml:8:13: cluster[0].endpoints: a cluster needs at least one endpoint, e.g. \
             endpoints = [{ address = \"127.0.0.1:9000\", weight = 1 }]",
            "strait.toml:12:14: cluster[1].endpoints[0].address: missing required key \"address\" \
             in an endpoint table",
            "strait.toml:12:28: cluster[1].endpoints[0].adress: unknown key \"adress\" (did you mean \
             \"address\"?); valid keys in an endpoint table: \"address\", \"weight\"",
            "strait.toml:12:66: cluster[1].endpoints[1].address: an endpoint needs a concrete IP \
             address and a non-zero port, found 127.0.0.1:0",
        ]
    );
}

#[test]
fn duplicates_point_at_the_second_definition() {
    let text = r#"[[listener]]
name = "edge"
address = "127.0.0.1:8080"
cluster = "backend"

[[listener]]
name = "edge"
address = "127.0.0.1:8080"
cluster = "backend"

[[cluster]]
name = "backend"
endpoints = [{ address = "127.0.0.1:9000" }]

[[cluster]]
name = "backend"
endpoints = [{ address = "127.0.0.1:9001" }]
"#;
    assert_eq!(
        errors(text),
        [
            "strait.toml:7:8: listener[1].name: duplicate listener name \"edge\"; first defined at line 2",
            "strait.toml:8:11: listener[1].address: duplicate listener address 127.0.0.1:8080; first \
             used at line 3",
            "strait.toml:16:8: cluster[1].name: duplicate cluster name \"backend\"; first defined at line 12",
        ]
    );
}

#[test]
fn bad_names_addresses_and_sizes_explain_the_valid_form() {
    let text = minimal_with(
        r#"
[admin]
address = "127.0.0.1"

[[listener]]
name = "a b"
address = "::1:80"
cluster = "backend"
protocol = "TCP"

[[listener]]
name = "c"
address = "127.0.0.1:99999"
cluster = "backend"
idle_timeout = "0s"

[runtime]
relay_buffer_size = "12 parsecs"
max_connections_per_core = -1
drain_timeout = 30
"#,
    );
    assert_eq!(
        errors(&text),
        [
            "strait.toml:11:11: admin.address: invalid address \"127.0.0.1\": the port is missing; \
             write IP:port such as \"127.0.0.1:8080\" or \"[::1]:8080\"",
            "strait.toml:14:8: listener[1].name: invalid name \"a b\": use 1 to 64 characters from \
             A-Z a-z 0-9 - _ .",
            "strait.toml:15:11: listener[1].address: invalid address \"::1:80\": an IPv6 address goes \
             in brackets, followed by the port; write IP:port such as \"127.0.0.1:8080\" or \"[::1]:8080\"",
            "strait.toml:17:12: listener[1].protocol: invalid value \"TCP\"; expected \"tcp\", \"udp\", \"http\" or \"auto\" (did you \
             mean \"tcp\"?)",
            "strait.toml:21:11: listener[2].address: invalid address \"127.0.0.1:99999\": the port \
             \"99999\" is not a number from 0 to 65535; write IP:port such as \"127.0.0.1:8080\" or \
             \"[::1]:8080\"",
            "strait.toml:23:16: listener[2].idle_timeout: must be greater than 0, found \"0s\"",
            "strait.toml:26:21: runtime.relay_buffer_size: invalid size \"12 parsecs\": expected a \
             size such as \"64KiB\", \"1MiB\" or a number of bytes (units: B, KiB, MiB, GiB)",
            "strait.toml:27:28: runtime.max_connections_per_core: must be at least 1, found -1",
            "strait.toml:28:17: runtime.drain_timeout: expected a duration string such as \"250ms\", \
             \"5s\", \"2m\" or \"1h\" (units: ms, s, m, h), found an integer",
        ]
    );
}

#[test]
fn syntax_errors_are_positioned_and_all_listed() {
    let text = "[runtime]\ncores = 0-3\n\n[log]\nlevel = \"info\nformat = \"text\"\n[[listener]]\nname = \"a\"\nname = \"b\"\n";
    let diags = load(text).unwrap_err();
    let got: Vec<(usize, usize, &str, &str)> = diags
        .iter()
        .map(|d| (d.line, d.column, d.key.as_str(), d.message.as_str()))
        .collect();
    assert_eq!(
        got,
        [
            (
                2,
                9,
                "",
                "TOML syntax error: invalid date, expected `-` (MM-DD); if this is meant as a \
                 string, quote it: \"0-3\""
            ),
            (5, 14, "", "TOML syntax error: invalid basic string, expected `\"`"),
            (
                9,
                1,
                "",
                "TOML syntax error: duplicate key \"name\": a key or table may be defined only once \
                 (repeatable tables such as [[listener]] use double brackets)"
            ),
        ]
    );
    assert_eq!(
        diags[1].to_string(),
        "strait.toml:5:14: TOML syntax error: invalid basic string, expected `\"`"
    );
}

#[test]
fn unquoted_strings_are_a_syntax_error_with_a_hint() {
    assert_eq!(
        errors("[log]\nlevel = info\n"),
        ["strait.toml:2:9: TOML syntax error: invalid float, expected `inf`; if this is meant as a \
          string, quote it: \"info\""]
    );
    // toml itself says so for other words; no second hint then.
    assert_eq!(
        errors("[runtime]\ndrain_timeout = 5s\n"),
        ["strait.toml:2:17: TOML syntax error: string values must be quoted, expected literal string"]
    );
}

#[test]
fn validate_issues_get_the_position_of_their_key() {
    let mut ctx = Ctx::new(MINIMAL);
    let root = DeTable::parse(MINIMAL).unwrap();
    let config = walk(&mut ctx, root.span(), root.get_ref());
    assert!(!ctx.has_errors());
    assert_eq!(config.validate(), Ok(()));

    // A problem the walk already reported is not repeated by the backstop.
    ctx.error(&(0..0), "cluster[0].name", "reported while walking");
    let issue = |path: &str, message: &str| ConfigIssue {
        path: path.into(),
        message: message.into(),
    };
    add_issues(
        &mut ctx,
        vec![
            issue("listener[0].cluster", "refers to no cluster"),
            // Not written in the file: positioned at the endpoint's inline table.
            issue(
                "cluster[0].endpoints[0].weight",
                "must be between 1 and 1000",
            ),
            // No [runtime] table at all: the start of the file.
            issue("runtime.cores", "the core list is empty"),
            issue("cluster[0].name", "duplicate cluster name \"backend\""),
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
            "x.toml:1:1: cluster[0].name: reported while walking",
            "x.toml:1:1: runtime.cores: the core list is empty",
            "x.toml:4:11: listener[0].cluster: refers to no cluster",
            "x.toml:8:14: cluster[0].endpoints[0].weight: must be between 1 and 1000",
        ]
    );
}

#[test]
fn unreadable_files_give_one_diagnostic_without_a_position() {
    let path = Path::new("/nonexistent/strait-test/strait.toml");
    let diags = load_file(path).unwrap_err();
    assert_eq!(diags.len(), 1);
    let d = &diags[0];
    assert_eq!((d.line, d.column, d.key.as_str()), (0, 0, ""));
    assert_eq!(d.file, path);
    assert!(
        d.message
            .starts_with("cannot read the configuration file: "),
        "{}",
        d.message
    );
    assert!(
        d.message.contains("No such file or directory"),
        "{}",
        d.message
    );
    assert_eq!(
        d.to_string(),
        format!("/nonexistent/strait-test/strait.toml: {}", d.message)
    );
}

#[test]
fn load_file_reads_and_loads() {
    let dir = std::env::temp_dir().join(format!("strait-config-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("ok.toml");
    std::fs::write(&path, MINIMAL).unwrap();
    let loaded = load_file(&path);
    let bad = dir.join("bad.toml");
    std::fs::write(&bad, MINIMAL.replace("\"127.0.0.1:9000\"", "\"127.0.0.1\"")).unwrap();
    let bad_loaded = load_file(&bad);
    std::fs::remove_dir_all(&dir).unwrap();

    assert_eq!(loaded.unwrap().listeners[0].name, "edge");
    let diags = bad_loaded.unwrap_err();
    assert_eq!(diags.len(), 1);
    assert_eq!(diags[0].file, bad);
    assert_eq!((diags[0].line, diags[0].column), (8, 26));
    assert_eq!(diags[0].key, "cluster[0].endpoints[0].address");
}

#[test]
fn crlf_line_ends_and_a_byte_order_mark_do_not_shift_positions() {
    let text = "\u{feff}[log]\r\nlevel = \"loud\"\r\nformat = \"xml\" # comment\r\n";
    let got: Vec<(usize, usize, String)> = load(text)
        .unwrap_err()
        .into_iter()
        .map(|d| (d.line, d.column, d.key))
        .collect();
    assert_eq!(
        got,
        [
            (1, 1, "listener".to_owned()),
            (2, 9, "log.level".to_owned()),
            (3, 10, "log.format".to_owned()),
        ]
    );
    let bom_error = "\u{feff}runtime = 1\n";
    let diags = load(bom_error).unwrap_err();
    let d = diags
        .iter()
        .find(|d| d.key == "runtime")
        .expect("runtime diagnostic");
    assert_eq!((d.line, d.column, d.key.as_str()), (1, 11, "runtime"));
}

#[test]
fn truncated_or_mangled_files_never_panic() {
    let text = doc_example();
    for end in (0..=text.len()).filter(|&i| text.is_char_boundary(i)) {
        let cut = &text[..end];
        if let Err(diags) = load(cut) {
            assert!(!diags.is_empty());
            for d in &diags {
                assert!(d.line >= 1 && d.column >= 1, "{end}: {d}");
            }
        }
        // Drop one character instead.
        if let Some(c) = text[end..].chars().next() {
            let mangled = format!("{}{}", &text[..end], &text[end + c.len_utf8()..]);
            let _ = load(&mangled);
        }
    }
}

#[test]
fn admin_token_file_and_audit_log_resolve_against_the_files_directory() {
    let dir = std::env::temp_dir().join(format!("strait-admin-keys-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    std::fs::write(dir.join("token"), "t0ken\n").expect("token");
    let text = format!(
        "[admin]\naddress = \"127.0.0.1:9901\"\ntoken_file = \"token\"\naudit_log = \"audit.log\"\n\n{}",
        minimal_with("")
    );
    let path = dir.join("strait.toml");
    let c = super::load_str(&path, &text).expect("loads");
    let admin = c.admin.expect("admin");
    assert_eq!(admin.token_file, Some(dir.join("token")));
    assert_eq!(admin.audit_log, Some(dir.join("audit.log")));

    let missing = text.replace("\"token\"", "\"nope\"");
    let errs: Vec<String> = super::load_str(&path, &missing)
        .expect_err("an unreadable token file")
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert!(
        errs[0].contains(":3:14: admin.token_file: cannot read") && errs[0].contains("nope"),
        "{errs:?}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
