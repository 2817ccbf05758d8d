//! The `strait` binary: parse flags, build the configuration, run the engine, map signals to drain.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use strait::{config_file, demo, quick};
use strait_engine::config::{Config, LogFormat, LogLevel};
use strait_engine::Server;

/// mimalloc keeps small allocations thread-local: each core allocates and frees without touching
/// another core's cache lines (glibc's malloc was 17 % of a core's cycles on the HTTP/2 path,
/// most of it in `h2`/`http` allocations we do not control; docs/performance.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const EXIT_CONFIG: u8 = 1;
const EXIT_START: u8 = 1;

#[derive(Parser)]
#[command(
    name = "strait",
    version,
    about = "A thread-per-core io_uring L4/L7 proxy",
    long_about = "Strait runs one pinned, shared-nothing runtime per core. Each core accepts on its own \
SO_REUSEPORT socket and relays connections to upstream clusters.",
    after_help = "Examples:
  strait demo                                       # proxy + built-in origins on loopback
  strait run --listen 127.0.0.1:8080 --upstream 127.0.0.1:9000 --upstream 127.0.0.1:9001 --mode tcp --cores 0-1
  strait run --listen 127.0.0.1:8443 --upstream 127.0.0.1:9000 --mode auto --tls-cert c.pem --tls-key k.pem
  strait run --config strait.toml --cores 1 --admin 127.0.0.1:9901
  strait check --config strait.toml

Exit codes: 0 clean exit (including a completed drain), 1 invalid configuration or start-up failure,
2 bad command line, 128+N when a second signal N forced an immediate exit."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the proxy, from a config file or from --listen/--upstream flags.
    #[command(after_help = "Examples:
  strait run --config strait.toml --cores 1 --admin 127.0.0.1:9901
  strait run --listen 127.0.0.1:8080 --upstream 127.0.0.1:9000 --upstream 127.0.0.1:9001 --mode tcp
  strait run --listen 127.0.0.1:8080 --upstream 127.0.0.1:9000 --mode http
  strait run --listen 127.0.0.1:8443 --upstream 127.0.0.1:9000 --mode auto --tls-cert c.pem --tls-key k.pem")]
    Run(RunArgs),
    /// Validate a config file: exit 0, or print every error (file:line:column) and exit 1.
    Check {
        #[arg(long, short, value_name = "FILE")]
        config: PathBuf,
    },
    /// Run Strait in front of built-in demo origins on loopback and print what to try.
    Demo(DemoArgs),
    /// Ask a running Strait to reload its configuration file (admin API, POST /config/reload):
    /// exit 0 with the new version, or print the errors (nothing changed) and exit 1.
    Reload {
        /// The running process's admin address.
        #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:9901")]
        admin: std::net::SocketAddr,
        /// A file holding the admin API's bearer token ([admin] token_file).
        #[arg(long, value_name = "FILE")]
        token_file: Option<PathBuf>,
    },
}

#[derive(Args)]
struct RunArgs {
    /// TOML configuration file (see docs/config.md).
    #[arg(long, short, value_name = "FILE", conflicts_with_all = ["listen", "upstream", "mode", "idle_timeout", "connect_timeout", "connect_attempts", "proxy_protocol", "tls_cert", "tls_key"])]
    config: Option<PathBuf>,
    #[command(flatten)]
    quick: quick::QuickArgs,
    #[command(flatten)]
    overrides: Overrides,
}

#[derive(Args)]
struct DemoArgs {
    /// Address of the demo's proxy listener.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8080")]
    listen: std::net::SocketAddr,
    /// Address of the demo's raw TCP listener.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8081")]
    tcp_listen: std::net::SocketAddr,
    /// Address of the demo's every-protocol listener: TLS (self-signed), HTTP/1.1, h2c, raw TCP.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8443")]
    tls_listen: std::net::SocketAddr,
    #[command(flatten)]
    overrides: Overrides,
}

/// Flags that override the file (or quick-form) values.
#[derive(Args, Default, Clone)]
pub struct Overrides {
    /// CPU cores to run on, one pinned runtime each: e.g. "0-3,6" or "all" [default: all].
    #[arg(long, value_name = "LIST")]
    cores: Option<String>,
    /// IO driver: auto (io_uring, falling back to epoll), uring, or epoll.
    #[arg(long, value_name = "DRIVER")]
    io_driver: Option<String>,
    /// Admin endpoint address (/metrics, /stats, /healthz, /readyz).
    #[arg(long, value_name = "ADDR")]
    admin: Option<std::net::SocketAddr>,
    /// Log level: error, warn, info, debug or trace.
    #[arg(long, value_name = "LEVEL")]
    log_level: Option<String>,
    /// Log format: text or json.
    #[arg(long, value_name = "FORMAT")]
    log_format: Option<String>,
    /// How long open connections may finish after SIGTERM, e.g. "30s".
    #[arg(long, value_name = "DURATION")]
    drain_timeout: Option<String>,
    /// Connections open at once per core; excess connections are accepted and closed.
    #[arg(long, value_name = "N")]
    max_connections_per_core: Option<u32>,
    /// L4 relay: splice (zero-copy) or copy.
    #[arg(long, value_name = "MODE")]
    relay: Option<String>,
}

impl Overrides {
    fn apply(&self, config: &mut Config) -> Result<(), String> {
        use strait_engine::config::{parse_core_list, parse_duration, IoDriver, RelayMode};
        let rt = &mut config.runtime;
        if let Some(c) = &self.cores {
            rt.cores = parse_core_list(c).map_err(|e| format!("--cores: {e}"))?;
        }
        if let Some(d) = &self.io_driver {
            rt.io_driver = IoDriver::parse(d)
                .ok_or_else(|| format!("--io-driver: {d:?} is not one of {}", IoDriver::VALID))?;
        }
        if let Some(d) = &self.drain_timeout {
            rt.drain_timeout = parse_duration(d).map_err(|e| format!("--drain-timeout: {e}"))?;
        }
        if let Some(n) = self.max_connections_per_core {
            rt.max_connections_per_core = n;
        }
        if let Some(r) = &self.relay {
            rt.relay = RelayMode::parse(r)
                .ok_or_else(|| format!("--relay: {r:?} is not one of {}", RelayMode::VALID))?;
        }
        if let Some(a) = self.admin {
            // The address moves; the file's token and audit log stay.
            config.admin = Some(match config.admin.take() {
                Some(mut admin) => {
                    admin.address = a;
                    admin
                }
                None => strait_engine::config::AdminConfig::at(a),
            });
        }
        if let Some(l) = &self.log_level {
            config.log.level = LogLevel::parse(l)
                .ok_or_else(|| format!("--log-level: {l:?} is not one of {}", LogLevel::VALID))?;
        }
        if let Some(f) = &self.log_format {
            config.log.format = LogFormat::parse(f)
                .ok_or_else(|| format!("--log-format: {f:?} is not one of {}", LogFormat::VALID))?;
        }
        Ok(())
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Check { config } => match config_file::load_file(&config) {
            Ok(c) => {
                println!(
                    "{}: ok ({} listener(s), {} cluster(s))",
                    config.display(),
                    c.listeners.len(),
                    c.clusters.len()
                );
                ExitCode::SUCCESS
            }
            Err(diagnostics) => {
                for d in &diagnostics {
                    eprintln!("{d}");
                }
                eprintln!("{}: {} error(s)", config.display(), diagnostics.len());
                ExitCode::from(EXIT_CONFIG)
            }
        },
        Command::Run(args) => {
            // The text is read once: version 0 is exactly what was loaded.
            let initial = args
                .config
                .as_ref()
                .map(|p| std::fs::read_to_string(p).unwrap_or_default())
                .unwrap_or_default();
            let mut config = if let Some(path) = &args.config {
                let loaded = if initial.is_empty() {
                    config_file::load_file(path)
                } else {
                    config_file::load_str(path, &initial)
                };
                match loaded {
                    Ok(c) => c,
                    Err(diagnostics) => {
                        for d in &diagnostics {
                            eprintln!("{d}");
                        }
                        return ExitCode::from(EXIT_CONFIG);
                    }
                }
            } else {
                match args.quick.to_config() {
                    Ok(c) => c,
                    Err(e) => {
                        eprintln!("strait run: {e}");
                        return ExitCode::from(2);
                    }
                }
            };
            if let Err(e) = args.overrides.apply(&mut config) {
                eprintln!("strait run: {e}");
                return ExitCode::from(2);
            }
            // Reloads (SIGHUP, the admin API) read the same file with the same overrides.
            let source = args.config.clone().map(|path| {
                let overrides = args.overrides.clone();
                let initial = initial.clone();
                let loader = strait::reload::FileLoader {
                    path,
                    overrides: Box::new(move |c| overrides.apply(c)),
                };
                (
                    std::sync::Arc::new(loader) as strait_engine::ConfigSource,
                    initial,
                )
            });
            run(config, None, source)
        }
        Command::Reload { admin, token_file } => {
            match strait::reload::request(admin, token_file.as_deref()) {
                Ok(a) if a.status == 200 => {
                    println!("reloaded: {}", a.body);
                    ExitCode::SUCCESS
                }
                Ok(a) => {
                    eprintln!("strait reload: {} {}", a.status, a.body);
                    ExitCode::from(1)
                }
                Err(e) => {
                    eprintln!("strait reload: {e}");
                    ExitCode::from(1)
                }
            }
        }
        Command::Demo(args) => {
            // Dropped when the demo ends: removes the certificate files.
            let demo = match demo::Demo::start() {
                Ok(d) => d,
                Err(e) => {
                    eprintln!("strait demo: {e}");
                    return ExitCode::from(EXIT_START);
                }
            };
            let mut config = demo.config(demo::Listen {
                http: args.listen,
                tcp: args.tcp_listen,
                tls: args.tls_listen,
            });
            if let Err(e) = args.overrides.apply(&mut config) {
                eprintln!("strait demo: {e}");
                return ExitCode::from(2);
            }
            run(config, Some(&demo), None)
        }
    }
}

fn run(
    config: Config,
    demo: Option<&demo::Demo>,
    source: Option<(strait_engine::ConfigSource, String)>,
) -> ExitCode {
    strait::logging::init(&config.log);
    let server = match Server::start(config) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "start-up failed");
            eprintln!("strait: {e}");
            if demo.is_some()
                && matches!(
                    e,
                    strait_engine::StartError::Bind(_) | strait_engine::StartError::Admin(..)
                )
            {
                eprintln!("strait demo: pick other ports with --listen ADDR, --tcp-listen ADDR, --tls-listen ADDR and --admin ADDR");
            }
            return ExitCode::from(EXIT_START);
        }
    };
    if let Some(d) = demo {
        demo::print_banner(&server, d);
    }
    let from_file = source.is_some();
    if let Some((loader, initial)) = source {
        server.set_config_source(loader, &initial);
    }
    if let Err(e) =
        strait::signals::handle_signals(server.drain_handle(), server.reload_handle(), from_file)
    {
        tracing::error!(error = %e, "cannot install signal handlers");
        return ExitCode::from(EXIT_START);
    }
    server.wait();
    tracing::info!("stopped");
    ExitCode::SUCCESS
}
