//! Starting, draining and stopping the whole engine.
//!
//! Owns: resolving the core set, raising the fd limit, binding every listener up front, starting
//! one pinned thread per core with its own runtime (io_uring with tuned flags, or epoll), the admin
//! server, and the drain broadcast. Must not: handle signals (the CLI maps signals to `drain()`), or
//! share anything mutable with the cores beyond the stats blocks they alone write.

use std::io;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::thread::JoinHandle;

use monoio::{IoUringDriver, LegacyDriver, RuntimeBuilder};
use tracing::{info, warn};

use crate::admin::AdminServer;
pub use crate::audit::Trigger;
use crate::config::{format_core_list, AccessLogTarget, Config, CoreSelection, IoDriver};
use crate::context::CoreContext;
use crate::control::{self, Control};
use crate::core as core_rt;
use crate::http::access_log::{AccessLog, CoreAccessLog};
use crate::listener;
pub use crate::reload::{ConfigLoader, ConfigSource, ReloadHandle};
pub use crate::shared::{Published, Refused, Request, Shared};
use crate::stats::{CoreStats, DriverKind};

#[derive(Debug)]
pub enum StartError {
    Config(String),
    Cores(String),
    Bind(listener::BindError),
    Admin(SocketAddr, io::Error),
    /// `[admin] token_file` or `audit_log` cannot be used.
    AdminFile(String),
    AccessLog(String, io::Error),
    /// A TLS listener's certificate or key cannot be used.
    Tls {
        listener: String,
        error: String,
    },
    Runtime {
        cpu: usize,
        error: String,
    },
}

impl std::fmt::Display for StartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StartError::Config(m) => write!(f, "invalid configuration: {m}"),
            StartError::Cores(m) => write!(f, "{m}"),
            StartError::Bind(e) => write!(f, "{e}"),
            StartError::Admin(a, e) => write!(f, "admin: cannot listen on {a}: {e}"),
            StartError::AdminFile(m) => write!(f, "admin: {m}"),
            StartError::AccessLog(target, e) => {
                write!(f, "access_log: cannot open {target}: {e}")
            }
            StartError::Tls { listener, error } if listener.starts_with("cluster \"") => {
                write!(f, "{listener}: TLS: {error}")
            }
            StartError::Tls { listener, error } => {
                write!(f, "listener {listener:?}: TLS: {error}")
            }
            StartError::Runtime { cpu, error } => {
                write!(f, "core {cpu}: cannot start the IO runtime: {error}")
            }
        }
    }
}

impl std::error::Error for StartError {}

#[derive(Clone)]
pub struct DrainHandle {
    shared: Arc<Shared>,
}

/// Reads the admin write token: the file's content without surrounding whitespace, not empty.
fn read_token(path: &std::path::Path) -> Result<Vec<u8>, StartError> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        StartError::AdminFile(format!("token_file: cannot read {:?}: {e}", path.display()))
    })?;
    let token = text.trim();
    if token.is_empty() {
        return Err(StartError::AdminFile(format!(
            "token_file: {:?} is empty; put the bearer token in it",
            path.display()
        )));
    }
    Ok(token.as_bytes().to_vec())
}

impl DrainHandle {
    /// Stop accepting everywhere and let open connections finish. Returns false if a drain was
    /// already under way.
    pub fn drain(&self) -> bool {
        if self.shared.draining.swap(true, Ordering::SeqCst) {
            return false;
        }
        crate::notify::notify("STOPPING=1");
        info!(
            timeout_ms = self
                .shared
                .published()
                .config
                .runtime
                .drain_timeout
                .as_millis() as u64,
            "drain started"
        );
        for c in &self.shared.controls {
            let _ = c.send(Control::Drain);
        }
        true
    }
}

pub struct Server {
    shared: Arc<Shared>,
    threads: Vec<JoinHandle<()>>,
    admin: Option<AdminServer>,
    access_log: Option<AccessLog>,
    /// Control plane only (reloads); cores hold their own copies.
    tls: Arc<std::sync::Mutex<crate::tls::ListenerTls>>,
    watcher: Option<crate::tls::CertificateWatcher>,
    reloading: Arc<std::sync::Mutex<()>>,
    source: Arc<std::sync::OnceLock<ConfigSource>>,
    /// `[runtime] watch_config`; stops with the server.
    config_watcher: std::sync::Mutex<Option<crate::reload::ConfigWatcher>>,
}

impl Server {
    pub fn start(config: Config) -> Result<Server, StartError> {
        config.validate().map_err(|issues| {
            StartError::Config(
                issues
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("; "),
            )
        })?;
        let config = Arc::new(config);
        let cpus = resolve_cores(&config.runtime.cores)?;
        raise_fd_limit();

        let tls = crate::tls::ListenerTls::load_all(&config)
            .map_err(|(listener, error)| StartError::Tls { listener, error })?;

        let mut bound = Vec::with_capacity(config.listeners.len());
        for l in &config.listeners {
            bound.push(listener::bind(l, cpus.len()).map_err(StartError::Bind)?);
        }
        let listener_addresses: Vec<SocketAddr> = bound.iter().map(|b| b.address).collect();
        // Transpose: core i gets socket i of every listener.
        let mut per_core: Vec<Vec<listener::BoundSocket>> =
            (0..cpus.len()).map(|_| Vec::new()).collect();
        for b in bound {
            for (i, sock) in b.per_core.into_iter().enumerate() {
                per_core[i].push(sock);
            }
        }

        let cores: Vec<Arc<CoreStats>> = cpus
            .iter()
            .enumerate()
            .map(|(i, &cpu)| Arc::new(CoreStats::new(i, cpu, &config)))
            .collect();
        let mut controls = Vec::with_capacity(cpus.len());
        let mut receivers = Vec::with_capacity(cpus.len());
        for _ in &cpus {
            let (tx, rx) = control::channel();
            controls.push(tx);
            receivers.push(rx);
        }
        let mut shared = Shared::new(config.clone(), cores.clone(), controls, listener_addresses);
        if let Some(a) = &config.admin {
            shared.persist = a.persist;
            shared.versions = std::sync::Mutex::new(crate::versions::Versions::new(a.max_versions));
            shared.admin_token = a.token_file.as_deref().map(read_token).transpose()?;
            shared.audit = a
                .audit_log
                .as_deref()
                .map(|p| {
                    crate::audit::Audit::open(p).map_err(|e| {
                        StartError::AdminFile(format!(
                            "audit_log: cannot open {:?} for append: {e}",
                            p.display()
                        ))
                    })
                })
                .transpose()?;
        }
        let shared = Arc::new(shared);

        // Bind the admin socket before starting cores so a bad admin address fails start-up.
        let admin = match &config.admin {
            Some(a) => Some(
                AdminServer::start(a.address, shared.clone())
                    .map_err(|e| StartError::Admin(a.address, e))?,
            ),
            None => None,
        };

        let access_log = match &config.access_log {
            Some(c) => Some(AccessLog::start(c).map_err(|e| {
                let target = match &c.target {
                    AccessLogTarget::Stdout => "stdout".to_string(),
                    AccessLogTarget::File(p) => p.display().to_string(),
                };
                StartError::AccessLog(target, e)
            })?),
            None => None,
        };

        let (ready_tx, ready_rx) = flume::unbounded::<Result<DriverKind, StartError>>();
        let mut threads = Vec::with_capacity(cpus.len());
        for ((stats, listeners), control) in cores.iter().cloned().zip(per_core).zip(receivers) {
            let config = config.clone();
            let ready = ready_tx.clone();
            let cpu = stats.cpu;
            let log = access_log.as_ref().map(AccessLog::core_writer);
            let tls_configs = (tls.configs(), tls.upstream_configs());
            let handle = std::thread::Builder::new()
                .name(format!("strait-core-{cpu}"))
                .spawn(move || {
                    core_thread(config, stats, listeners, control, ready, log, tls_configs)
                })
                .map_err(|e| StartError::Runtime {
                    cpu,
                    error: e.to_string(),
                })?;
            threads.push(handle);
        }
        drop(ready_tx);
        let mut failure = None;
        for _ in 0..threads.len() {
            match ready_rx.recv() {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => failure = Some(e),
                Err(_) => break,
            }
        }
        let tls = Arc::new(std::sync::Mutex::new(tls));
        let watcher = crate::tls::CertificateWatcher::start(tls.clone(), shared.clone());
        let server = Server {
            shared,
            threads,
            admin,
            access_log,
            tls,
            watcher,
            reloading: Arc::default(),
            source: Arc::default(),
            config_watcher: std::sync::Mutex::new(None),
        };
        if let Some(e) = failure {
            server.drain();
            server.wait();
            return Err(e);
        }
        for (l, addr) in config
            .listeners
            .iter()
            .zip(&server.shared.listener_addresses)
        {
            let clusters = &config.clusters;
            let target = match (l.cluster, &l.http) {
                (Some(c), _) => clusters[c].name.clone(),
                (None, Some(http)) => format!("{} routes", http.routes.len()),
                (None, None) => String::new(),
            };
            info!(listener = %l.name, address = %addr, protocol = l.protocol.as_str(),
                forwards_to = %target, cores = cpus.len(), "listening");
        }
        if let Some(a) = &server.admin {
            info!(address = %a.address(), "admin listening");
        }
        crate::notify::notify(&format!("READY=1\nMAINPID={}", std::process::id()));
        Ok(server)
    }

    pub fn listener_addresses(&self) -> &[SocketAddr] {
        &self.shared.listener_addresses
    }

    pub fn admin_address(&self) -> Option<SocketAddr> {
        self.admin.as_ref().map(AdminServer::address)
    }

    /// Stop accepting everywhere and let open connections finish (idempotent).
    pub fn drain(&self) {
        self.drain_handle().drain();
    }

    /// A handle that can start the drain from another thread (a signal handler thread).
    pub fn drain_handle(&self) -> DrainHandle {
        DrainHandle {
            shared: self.shared.clone(),
        }
    }

    /// A handle that reloads certificates from another thread (SIGHUP).
    /// Where the configuration comes from on a reload (the `--config` file, re-read with the
    /// command line's overrides, or TOML text through the same loader), and the text the process
    /// started with (version 0): enables SIGHUP's file reload and the admin API's writes.
    pub fn set_config_source(&self, source: ConfigSource, initial_text: &str) {
        let normalised = source.normalise(initial_text);
        if self.source.set(source).is_err() {
            return;
        }
        if let Ok(mut v) = self.shared.versions.lock() {
            v.push(0, "file", None, initial_text, Some(normalised));
        }
        let handle = self.reload_handle();
        let _ = self
            .shared
            .reload_hook
            .set(Box::new(move |trigger, request| {
                handle.reload(trigger, request)
            }));
        if self.shared.published().config.runtime.watch_config {
            if let (Some(source), Ok(mut w)) = (self.source.get(), self.config_watcher.lock()) {
                *w = crate::reload::ConfigWatcher::start(
                    self.reload_handle(),
                    source.path().to_path_buf(),
                );
            }
        }
    }

    pub fn reload_handle(&self) -> ReloadHandle {
        ReloadHandle {
            tls: self.tls.clone(),
            shared: self.shared.clone(),
            reloading: self.reloading.clone(),
            source: self.source.clone(),
        }
    }

    /// Waits for every core to finish (after `drain`, or if they all stopped), then stops admin.
    pub fn wait(self) {
        for t in self.threads {
            if t.join().is_err() {
                warn!("a core thread panicked");
            }
        }
        // The cores are gone: nobody needs new certificates any more.
        if let Some(w) = &self.watcher {
            w.stop();
        }
        if let Some(a) = self.admin {
            a.stop();
        }
        // Every core flushed its buffer as it stopped; write out what is queued.
        if let Some(log) = self.access_log {
            log.shutdown();
        }
    }
}

/// What a core installs at start: `(listener, server config)` and `(cluster, client config)`.
type CoreTls = (
    Vec<(usize, Arc<rustls::ServerConfig>)>,
    Vec<(usize, Arc<rustls::ClientConfig>)>,
);

fn core_thread(
    config: Arc<Config>,
    stats: Arc<CoreStats>,
    listeners: Vec<listener::BoundSocket>,
    control: control::ControlReceiver,
    ready: flume::Sender<Result<DriverKind, StartError>>,
    mut access_log: Option<CoreAccessLog>,
    tls: CoreTls,
) {
    let cpu = stats.cpu;
    if !core_affinity::set_for_current(core_affinity::CoreId { id: cpu }) {
        warn!(cpu, "cannot pin thread to its core; running unpinned");
    }
    let rt_cfg = &config.runtime;
    let entries = rt_cfg.uring_entries;
    let want_uring = matches!(rt_cfg.io_driver, IoDriver::Auto | IoDriver::Uring);
    let run = |driver: DriverKind| {
        stats.set_driver(driver);
        info!(
            core = stats.index,
            cpu,
            driver = driver.as_str(),
            "core started"
        );
        let _ = ready.send(Ok(driver));
        let ctx = Rc::new(CoreContext::new(
            config.clone(),
            stats.clone(),
            access_log.take(),
        ));
        for (listener, shared) in &tls.0 {
            ctx.set_tls(*listener, shared);
        }
        for (cluster, shared) in &tls.1 {
            ctx.set_upstream_tls(*cluster, shared);
        }
        core_rt::run(ctx, listeners, control)
    };
    if want_uring {
        match build_uring(entries) {
            Ok(mut rt) => {
                rt.block_on(run(DriverKind::Uring));
                return;
            }
            Err(e) if rt_cfg.io_driver == IoDriver::Uring => {
                let _ = ready.send(Err(StartError::Runtime {
                    cpu,
                    error: format!(
                        "io_uring unavailable ({e}); use --io-driver epoll or auto, or raise the locked-memory limit (ulimit -l)"
                    ),
                }));
                return;
            }
            Err(e) => warn!(cpu, error = %e, "io_uring unavailable; falling back to epoll"),
        }
    }
    match RuntimeBuilder::<LegacyDriver>::new().enable_timer().build() {
        Ok(mut rt) => rt.block_on(run(DriverKind::Epoll)),
        Err(e) => {
            let _ = ready.send(Err(StartError::Runtime {
                cpu,
                error: format!("epoll runtime: {e}"),
            }));
        }
    }
}

type UringRuntime = monoio::Runtime<monoio::time::TimeDriver<IoUringDriver>>;

/// io_uring with cooperative task running (fewer inter-processor interrupts; measured ~30 % faster
/// on small requests here). Kernels without those flags get a plain ring.
fn build_uring(entries: u32) -> io::Result<UringRuntime> {
    let mut tuned = io_uring::IoUring::builder();
    tuned.setup_coop_taskrun().setup_taskrun_flag();
    match RuntimeBuilder::<IoUringDriver>::new()
        .with_entries(entries)
        .uring_builder(tuned)
        .enable_timer()
        .build()
    {
        Ok(rt) => Ok(rt),
        Err(_) => RuntimeBuilder::<IoUringDriver>::new()
            .with_entries(entries)
            .enable_timer()
            .build(),
    }
}

/// The CPUs to run on: the process's affinity mask, or the requested list if all are allowed.
fn resolve_cores(selection: &CoreSelection) -> Result<Vec<usize>, StartError> {
    let allowed: Vec<usize> = core_affinity::get_core_ids()
        .map(|ids| ids.into_iter().map(|c| c.id).collect())
        .unwrap_or_default();
    let mut allowed = if allowed.is_empty() {
        let n = std::thread::available_parallelism().map_or(1, |n| n.get());
        (0..n).collect()
    } else {
        allowed
    };
    allowed.sort_unstable();
    match selection {
        CoreSelection::All => Ok(allowed),
        CoreSelection::List(list) => {
            let missing: Vec<usize> = list
                .iter()
                .copied()
                .filter(|c| !allowed.contains(c))
                .collect();
            if missing.is_empty() {
                Ok(list.clone())
            } else {
                Err(StartError::Cores(format!(
                    "cores {} are not available to this process (available: {})",
                    format_core_list(&missing),
                    format_core_list(&allowed)
                )))
            }
        }
    }
}

/// A proxy holds two descriptors per connection plus pipes; the default soft limit (often 1024)
/// is far too low. Raise the soft limit to the hard limit, as NGINX's worker_rlimit_nofile does.
fn raise_fd_limit() {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the valid `lim` struct we pass.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return;
    }
    if lim.rlim_cur < lim.rlim_max {
        let old = lim.rlim_cur;
        lim.rlim_cur = lim.rlim_max;
        // SAFETY: setrlimit reads the valid `lim` struct; raising soft to hard is always permitted.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) } == 0 {
            info!(from = old, to = lim.rlim_cur, "raised open file limit");
        }
    }
}
