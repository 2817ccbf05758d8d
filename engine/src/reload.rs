//! Configuration reloads: the control-plane side of the per-core epoch swap (docs/architecture.md,
//! "Configuration versions"), the version history, and what triggers a reload.
//!
//! Owns: [`ReloadHandle`] (load, validate, check what reload cannot change, carry counters over,
//! send every core its `Control::Reload`, publish the new snapshot, record the version, audit),
//! the [`ConfigLoader`] the CLI gives it (the file, or TOML text, through the same loader as
//! `strait check`), and the requests the admin API and signals make ([`Request`]). Must not: run
//! on a core, or change anything when a reload fails.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use tracing::{info, warn};

use crate::audit::Trigger;
use crate::config::Config;
use crate::control::{self, Control};
use crate::shared::{Published, Refused, Request, Shared};
use crate::stats::CoreStats;

/// Where reloaded configurations come from (the CLI: its loader over the `--config` file).
pub trait ConfigLoader: Send + Sync {
    /// The file again, and its text.
    fn load_file(&self) -> Result<(Config, String), Vec<String>>;
    /// A configuration from TOML text (`POST /config`, a rollback).
    fn load_text(&self, text: &str) -> Result<Config, Vec<String>>;
    /// Writes `text` over the file (`[admin] persist = true`).
    fn persist(&self, text: &str) -> Result<(), String>;
    /// The file, for `[runtime] watch_config`.
    fn path(&self) -> &std::path::Path;
    /// `text` in a canonical TOML layout (comments, blank lines and quoting normalised), which
    /// `GET /config/diff` compares so that only changes of meaning show.
    fn normalise(&self, text: &str) -> String;
}

pub type ConfigSource = Arc<dyn ConfigLoader>;

#[derive(Clone)]
pub struct ReloadHandle {
    pub(crate) tls: Arc<Mutex<crate::tls::ListenerTls>>,
    pub(crate) shared: Arc<Shared>,
    /// Held while a configuration reload is applied: reloads are serialised.
    pub(crate) reloading: Arc<Mutex<()>>,
    /// Set once the process runs from a file.
    pub(crate) source: Arc<std::sync::OnceLock<ConfigSource>>,
}

impl ReloadHandle {
    /// Reloads every TLS listener's certificates and hands them to the cores (handshakes in
    /// flight are unaffected). All or nothing: on error nothing changes, and the error names
    /// the listener and the file. Returns how many listeners were reloaded.
    pub fn reload_certificates(&self) -> Result<usize, String> {
        crate::tls::reload(&self.tls, &self.shared)
    }

    /// Applies `request`: the new configuration is loaded and validated off the cores (by the
    /// CLI's loader, as `strait check` does); every core switches to it for new connections;
    /// connections already open finish on the version they started with; counters, histograms
    /// and idle upstream connections of what still exists carry over by name. A refused reload
    /// changes nothing; it is counted (and audited) like an applied one. Reloads are serialised.
    /// Listeners cannot change by reload yet (their sockets and accept loops stay): such a
    /// reload is refused with the listeners named. Returns the new version.
    pub fn reload(&self, trigger: Trigger, request: Request<'_>) -> Result<u64, Refused> {
        let _one_at_a_time = self.reloading.lock().unwrap_or_else(|p| p.into_inner());
        crate::notify::reloading();
        let before = self.shared.published().version;
        let result = self.load(request).and_then(|(config, text, label)| {
            if trigger.source == "watch" && self.is_current(&text) {
                // The watcher saw the file this process just wrote (persist) or touched: no
                // new version for the same text.
                return Ok(before);
            }
            let version = self.apply(config).map_err(Refused::invalid)?;
            let normalised = self.source.get().map(|s| s.normalise(&text));
            if let Ok(mut v) = self.shared.versions.lock() {
                let peer = trigger.peer.map(|p| p.to_string());
                v.push(version, label, peer, &text, normalised);
            }
            let from_api = matches!(request, Request::Text(_) | Request::Rollback(_));
            if let (true, true, Some(source)) = (from_api, self.shared.persist, self.source.get()) {
                if let Err(e) = source.persist(&text) {
                    // Applied, but the file still holds the previous text: say so.
                    return Err(Refused {
                        status: 500,
                        errors: vec![format!(
                            "version {version} is applied but was not written back to the file: {e}"
                        )],
                    });
                }
            }
            Ok(version)
        });
        crate::notify::notify("READY=1");
        self.account(trigger, request, before, &result);
        result
    }

    /// Whether `text` is the configuration in force.
    fn is_current(&self, text: &str) -> bool {
        self.shared
            .versions
            .lock()
            .ok()
            .and_then(|v| v.current().map(|c| c.text == text))
            .unwrap_or(false)
    }

    /// The configuration, its text and its history label for `request`.
    fn load(&self, request: Request<'_>) -> Result<(Config, String, &'static str), Refused> {
        let Some(source) = self.source.get() else {
            return Err(Refused {
                status: 409,
                errors: vec![
                    "this process runs without --config: there is no file to reload".into(),
                ],
            });
        };
        match request {
            Request::File => {
                let (config, text) = source.load_file().map_err(Refused::invalid)?;
                Ok((config, text, "file"))
            }
            Request::Text(text) => {
                let config = source.load_text(text).map_err(Refused::invalid)?;
                Ok((config, text.to_string(), "api"))
            }
            Request::Rollback(n) => {
                let text = self
                    .shared
                    .versions
                    .lock()
                    .ok()
                    .and_then(|v| v.get(n).map(|v| v.text.clone()))
                    .ok_or_else(|| Refused {
                        status: 404,
                        errors: vec![format!(
                            "version {n} is not in the history (GET /config/versions)"
                        )],
                    })?;
                let config = source.load_text(&text).map_err(Refused::invalid)?;
                Ok((config, text, "rollback"))
            }
        }
    }

    /// Counters, the log line and the audit record of a reload.
    fn account(
        &self,
        trigger: Trigger,
        request: Request<'_>,
        before: u64,
        result: &Result<u64, Refused>,
    ) {
        let shared = &self.shared;
        match result {
            Ok(version) => {
                shared.reloads_succeeded.fetch_add(1, Ordering::Relaxed);
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs());
                shared.last_reload_success.store(now, Ordering::Relaxed);
                info!(version, source = trigger.source, "configuration reloaded");
            }
            Err(r) => {
                shared.reloads_failed.fetch_add(1, Ordering::Relaxed);
                warn!(errors = r.errors.len(), first = %r.errors.first().map_or("", String::as_str),
                    source = trigger.source, "configuration not reloaded; the running one stays");
            }
        }
        if let Some(audit) = &shared.audit {
            let (after, errors) = match result {
                Ok(v) => (*v, Vec::new()),
                Err(r) => (before, r.errors.clone()),
            };
            let action = match request {
                Request::File => "reload",
                Request::Text(_) => "replace",
                Request::Rollback(_) => "rollback",
            };
            audit.record(
                trigger,
                serde_json::json!({
                    "action": action,
                    "version_before": before,
                    "version_after": after,
                    "result": if result.is_ok() { "success" } else { "failure" },
                    "errors": errors,
                }),
            );
        }
    }

    fn apply(&self, config: Config) -> Result<u64, Vec<String>> {
        config
            .validate()
            .map_err(|issues| issues.iter().map(ToString::to_string).collect::<Vec<_>>())?;
        let current = self.shared.published();
        listeners_unchanged(&current.config, &config)?;
        start_up_settings_unchanged(&current.config, &config)?;
        let mut upstream_tls = Vec::new();
        for (i, c) in config.clusters.iter().enumerate() {
            let Some(t) = &c.http.tls else { continue };
            let built = crate::tls::client_config(t, c.http.protocol)
                .map_err(|e| vec![format!("cluster {:?}: TLS: {e}", c.name)])?;
            upstream_tls.push((i, Arc::new(built)));
        }
        let config = Arc::new(config);
        let version = current.version + 1;
        let cores: Vec<Arc<CoreStats>> = current
            .cores
            .iter()
            .map(|c| Arc::new(c.carry_over(&current.config, &config)))
            .collect();
        let (done, switched) = flume::unbounded();
        let mut sent = 0;
        for (control, stats) in self.shared.controls.iter().zip(&cores) {
            let msg = Control::Reload(Box::new(control::Reload {
                config: config.clone(),
                stats: stats.clone(),
                version,
                upstream_tls: upstream_tls.clone(),
                done: done.clone(),
            }));
            if control.send(msg).is_ok() {
                sent += 1;
            }
        }
        // Answered once every core serves the new version (a request sent after the answer
        // sees it); a core that does not switch within the wait is only logged: it switches
        // when it reads its channel.
        let deadline = std::time::Instant::now() + SWITCH_WAIT;
        for _ in 0..sent {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if switched.recv_timeout(left).is_err() {
                warn!(version, "a core did not confirm the reload in time; it will switch when it reads its control channel");
                break;
            }
        }
        self.shared.publish(Published {
            config,
            cores,
            version,
            listener_addresses: current.listener_addresses.clone(),
        });
        Ok(version)
    }
}

/// What only a restart applies: `[runtime]` (except `watch_config`), `[admin]`, `[log]` and
/// `[access_log]` are read at start-up; a reload that changes them is refused rather than
/// reported as applied.
fn start_up_settings_unchanged(old: &Config, new: &Config) -> Result<(), Vec<String>> {
    let mut changed = Vec::new();
    let mut runtime = new.runtime.clone();
    runtime.watch_config = old.runtime.watch_config;
    if runtime != old.runtime {
        changed.push("[runtime]");
    }
    if new.admin != old.admin {
        changed.push("[admin]");
    }
    if new.log != old.log {
        changed.push("[log]");
    }
    if new.access_log != old.access_log {
        changed.push("[access_log]");
    }
    if changed.is_empty() {
        return Ok(());
    }
    Err(vec![format!(
        "{} changed: these settings are read at start-up only (restart to change them); \
         routes, clusters, endpoints, HTTP limits and timeouts reload",
        changed.join(", ")
    )])
}

/// How long a reload waits for every core to confirm the switch.
const SWITCH_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// A reload keeps the listeners: same names, addresses, protocols, sniffing and TLS, in the same
/// order (their sockets and accept loops stay; HTTP routes, limits and timeouts, the cluster of a
/// TCP listener and idle timeouts may change).
fn listeners_unchanged(old: &Config, new: &Config) -> Result<(), Vec<String>> {
    let key = |l: &crate::config::ListenerConfig| {
        (
            l.name.clone(),
            l.address,
            l.protocol,
            l.sniff,
            l.tls.clone(),
            l.http.is_some(),
            l.backlog,
        )
    };
    let before: Vec<_> = old.listeners.iter().map(key).collect();
    let after: Vec<_> = new.listeners.iter().map(key).collect();
    if before == after {
        return Ok(());
    }
    let names = |c: &Config| {
        c.listeners
            .iter()
            .map(|l| format!("{} ({} {})", l.name, l.protocol.as_str(), l.address))
            .collect::<Vec<_>>()
            .join(", ")
    };
    Err(vec![format!(
        "listeners cannot change by reload yet (restart to add, remove or change one): running [{}], reloaded file has [{}]",
        names(old),
        names(new)
    )])
}

/// `[runtime] watch_config`: polls the configuration file (modification time and size) every
/// 2 s and reloads it when it changed, as SIGHUP would. A file caught mid-write fails to load
/// (counted) and is retried at the next change. Stops when dropped.
pub(crate) struct ConfigWatcher {
    stop: Arc<std::sync::atomic::AtomicBool>,
}

const WATCH_PERIOD: std::time::Duration = std::time::Duration::from_secs(2);

impl ConfigWatcher {
    pub(crate) fn start(handle: ReloadHandle, path: std::path::PathBuf) -> Option<ConfigWatcher> {
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stopping = stop.clone();
        let stamp = |p: &std::path::Path| {
            std::fs::metadata(p)
                .ok()
                .map(|m| (m.modified().ok(), m.len()))
        };
        let spawned = std::thread::Builder::new()
            .name("strait-config-watch".into())
            .spawn(move || {
                let mut last = stamp(&path);
                while !stopping.load(Ordering::Relaxed) {
                    std::thread::sleep(WATCH_PERIOD);
                    let now = stamp(&path);
                    if now == last {
                        continue;
                    }
                    last = now;
                    let trigger = Trigger {
                        source: "watch",
                        peer: None,
                    };
                    if let Err(r) = handle.reload(trigger, Request::File) {
                        for e in &r.errors {
                            tracing::error!(error = %e, "configuration file changed but not reloaded");
                        }
                    }
                }
            });
        match spawned {
            Ok(_) => Some(ConfigWatcher { stop }),
            Err(e) => {
                warn!(error = %e, "cannot start the configuration file watcher");
                None
            }
        }
    }
}

impl Drop for ConfigWatcher {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}
