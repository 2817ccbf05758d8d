//! Messages from the control plane (main thread, admin) to one core.
//!
//! Owns: the message type and its channel. Each core owns one receiver; the sender side lives in
//! the `Server`. Must not: be used on the per-connection path — it exists for drain, stats reads and
//! (later) configuration swaps, all rare.

use crate::stats::{CoreHistograms, CoreStats};

pub enum Control {
    /// Stop accepting, finish open connections within the drain timeout, then exit.
    Drain,
    /// Send a copy of the core's latency histograms, with the configuration version they are
    /// laid out for (a reader drops copies of another version than the one it renders).
    Histograms(flume::Sender<(u64, CoreHistograms)>),
    /// A reloaded configuration: new connections (and their requests) use it from now on;
    /// connections already open finish on the version they started with.
    Reload(Box<Reload>),
    /// New TLS configurations (reloaded certificates) for these listeners: handshakes from now
    /// on use them; handshakes in flight keep the one they started with.
    Tls(Vec<(usize, std::sync::Arc<rustls::ServerConfig>)>),
}

/// What one core needs to switch to a reloaded configuration.
pub struct Reload {
    pub config: std::sync::Arc<crate::config::Config>,
    /// This core's counters for it, built around the blocks that carry over.
    pub stats: std::sync::Arc<CoreStats>,
    pub version: u64,
    /// Upstream TLS client configurations, per cluster index of `config`.
    pub upstream_tls: Vec<(usize, std::sync::Arc<rustls::ClientConfig>)>,
    /// Told once the core switched, so a reload is answered only when every core serves it.
    pub done: flume::Sender<()>,
}

pub type ControlSender = flume::Sender<Control>;
pub type ControlReceiver = flume::Receiver<Control>;

pub fn channel() -> (ControlSender, ControlReceiver) {
    flume::unbounded()
}
