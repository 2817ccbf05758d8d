//! The read side of statistics: collect every core's counters and histograms and merge them; the
//! two documents are rendered by the submodules.
//!
//! Owns: asking the cores for their histogram copies and merging them ([`collect_histograms`]),
//! and the sum of one counter over every core (`total!`, shared by both renderers). The
//! `/metrics` document (Prometheus text exposition 0.0.4) is `prometheus`'s, the `/stats` document
//! (JSON) `json`'s. Labels are configured names (listener, cluster, endpoint address) and core
//! numbers — bounded sets, never client-supplied values. Must not: be called from a core's thread
//! (it blocks waiting for the cores' histogram copies).

use std::time::Duration;

use crate::control::Control;
use crate::shared::{Published, Shared};
use crate::stats::CoreHistograms;

/// Sums one counter over every core.
macro_rules! total {
    ($shared:expr, |$c:ident| $e:expr) => {
        $shared.cores.iter().map(|$c| $e as i64).sum::<i64>()
    };
}

mod json;
mod prometheus;

pub use json::render_json;
pub use prometheus::render_prometheus;

/// How long a reader waits for a busy core to send its histograms.
const HISTOGRAM_WAIT: Duration = Duration::from_millis(500);

/// Asks every core for a copy of its histograms and merges them. A core that does not answer in
/// time (busy, or already stopped) is left out and counted in the second value.
pub fn collect_histograms(shared: &Shared, published: &Published) -> (CoreHistograms, usize) {
    let mut merged = CoreHistograms::new(&published.config);
    let mut pending = Vec::with_capacity(shared.controls.len());
    for c in &shared.controls {
        let (tx, rx) = flume::bounded(1);
        if c.send(Control::Histograms(tx)).is_ok() {
            pending.push(rx);
        }
    }
    let mut missing = shared.controls.len() - pending.len();
    for rx in pending {
        match rx.recv_timeout(HISTOGRAM_WAIT) {
            // A core that already switched to another version answers in its layout.
            Ok((version, h)) if version == published.version => merged.merge(&h),
            Ok(_) | Err(_) => missing += 1,
        }
    }
    (merged, missing)
}
