//! Messages from the control plane (main thread, admin) to one core.
//!
//! Owns: the message type and its channel. Each core owns one receiver; the sender side lives in
//! the `Server`. Must not: be used on the per-connection path — it exists for drain, stats reads and
//! (later) configuration swaps, all rare.

use crate::stats::CoreHistograms;

pub enum Control {
    /// Stop accepting, finish open connections within the drain timeout, then exit.
    Drain,
    /// Send a copy of the core's latency histograms.
    Histograms(flume::Sender<CoreHistograms>),
    /// New TLS configurations (reloaded certificates) for these listeners: handshakes from now
    /// on use them; handshakes in flight keep the one they started with.
    Tls(Vec<(usize, std::sync::Arc<rustls::ServerConfig>)>),
}

pub type ControlSender = flume::Sender<Control>;
pub type ControlReceiver = flume::Receiver<Control>;

pub fn channel() -> (ControlSender, ControlReceiver) {
    flume::unbounded()
}
