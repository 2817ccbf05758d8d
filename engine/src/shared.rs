//! What the control plane shares between its threads (main, admin, signals, certificate
//! watcher): the configuration, every core's counters, the cores' control senders and the
//! draining flag.
//!
//! Owns: the [`Shared`] record. Must not: be read or written on a core's connection path (cores
//! get their configuration and drain notice through their control channel).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::time::Instant;

use crate::audit::{Audit, Trigger};
use crate::config::Config;
use crate::control::ControlSender;
use crate::stats::CoreStats;
use crate::versions::Versions;

/// State the control plane shares with the admin server (never with the data path).
pub struct Shared {
    /// The configuration in force and the counters laid out for it; replaced whole by a reload.
    published: RwLock<Arc<Published>>,
    pub controls: Vec<ControlSender>,
    pub draining: AtomicBool,
    pub started: Instant,
    /// Resolved listener addresses (port 0 replaced by the kernel's choice).
    pub listener_addresses: Vec<SocketAddr>,
    /// Configuration reloads applied, and refused.
    pub reloads_succeeded: AtomicU64,
    pub reloads_failed: AtomicU64,
    /// Unix time (seconds) of the last applied reload (0: none yet).
    pub last_reload_success: AtomicU64,
    /// The admin API's write token (`[admin] token_file`); `None`: writes are refused.
    pub admin_token: Option<Vec<u8>>,
    /// `[admin] audit_log`.
    pub audit: Option<Audit>,
    /// Reloads the configuration (set once the process runs from a file); the admin API's
    /// writes call it.
    pub reload_hook: OnceLock<ReloadHook>,
    /// The applied configurations, newest last (`[admin] max_versions`).
    pub versions: Mutex<Versions>,
    /// `[admin] persist`: a configuration applied from `POST /config` is written to the file.
    pub persist: bool,
}

/// See [`Shared::reload_hook`]: the new version, or why nothing changed.
pub type ReloadHook = Box<dyn Fn(Trigger, Request<'_>) -> Result<u64, Refused> + Send + Sync>;

/// What a reload applies.
#[derive(Debug, Clone, Copy)]
pub enum Request<'a> {
    /// The configuration file, read again.
    File,
    /// TOML text (`POST /config`).
    Text(&'a str),
    /// The text of an earlier version, applied as a new one.
    Rollback(u64),
}

/// Why a reload did not happen: an HTTP-like status for the admin API (400: invalid, 404: no
/// such version, 409: nothing to reload from) and the problems.
#[derive(Debug)]
pub struct Refused {
    pub status: u16,
    pub errors: Vec<String>,
}

impl Refused {
    pub(crate) fn invalid(errors: Vec<String>) -> Refused {
        Refused {
            status: 400,
            errors,
        }
    }
}

/// A configuration version and every core's counters for it, as the admin reads them.
pub struct Published {
    pub config: Arc<Config>,
    pub cores: Vec<Arc<CoreStats>>,
    /// 0 at start; one more per applied reload.
    pub version: u64,
    /// Resolved listener addresses, per listener of `config`.
    pub listener_addresses: Vec<SocketAddr>,
}

impl Shared {
    pub fn new(
        config: Arc<Config>,
        cores: Vec<Arc<CoreStats>>,
        controls: Vec<ControlSender>,
        listener_addresses: Vec<SocketAddr>,
    ) -> Shared {
        Shared {
            published: RwLock::new(Arc::new(Published {
                config,
                cores,
                version: 0,
                listener_addresses: listener_addresses.clone(),
            })),
            controls,
            draining: AtomicBool::new(false),
            started: Instant::now(),
            listener_addresses,
            reloads_succeeded: AtomicU64::new(0),
            reloads_failed: AtomicU64::new(0),
            last_reload_success: AtomicU64::new(0),
            admin_token: None,
            audit: None,
            reload_hook: OnceLock::new(),
            versions: Mutex::new(Versions::new(16)),
            persist: false,
        }
    }

    /// The configuration in force and its counters (a reader holds its copy as long as it
    /// renders; a reload meanwhile does not disturb it).
    pub fn published(&self) -> Arc<Published> {
        match self.published.read() {
            Ok(p) => p.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Replaces the configuration in force (after the cores were sent it).
    pub(crate) fn publish(&self, next: Published) {
        let next = Arc::new(next);
        match self.published.write() {
            Ok(mut p) => *p = next,
            Err(poisoned) => *poisoned.into_inner() = next,
        }
    }
}
