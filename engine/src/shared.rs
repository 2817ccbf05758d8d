//! What the control plane shares between its threads (main, admin, signals, certificate
//! watcher): the configuration, every core's counters, the cores' control senders and the
//! draining flag.
//!
//! Owns: the [`Shared`] record. Must not: be read or written on a core's connection path (cores
//! get their configuration and drain notice through their control channel).

use std::net::SocketAddr;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Instant;

use crate::config::Config;
use crate::control::ControlSender;
use crate::stats::CoreStats;

/// State the control plane shares with the admin server (never with the data path).
pub struct Shared {
    pub config: Arc<Config>,
    pub cores: Vec<Arc<CoreStats>>,
    pub controls: Vec<ControlSender>,
    pub draining: AtomicBool,
    pub started: Instant,
    /// Resolved listener addresses (port 0 replaced by the kernel's choice).
    pub listener_addresses: Vec<SocketAddr>,
}
