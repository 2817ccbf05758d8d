//! Signals: the first SIGTERM/SIGINT drains, a second one exits at once.
//!
//! Owns: a dedicated thread that waits for signals (no async-signal-unsafe work in a handler).
//! Must not: touch the data path; it only calls `DrainHandle::drain`.

use std::io;

use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::Signals;
use strait_engine::DrainHandle;

pub fn drain_on_signal(handle: DrainHandle) -> io::Result<()> {
    let mut signals = Signals::new([SIGTERM, SIGINT])?;
    std::thread::Builder::new()
        .name("strait-signals".into())
        .spawn(move || {
            for signal in signals.forever() {
                let name = if signal == SIGTERM {
                    "SIGTERM"
                } else {
                    "SIGINT"
                };
                if handle.drain() {
                    tracing::info!(
                        signal = name,
                        "signal received: draining (send it again to exit at once)"
                    );
                } else {
                    tracing::warn!(
                        signal = name,
                        "second signal: exiting without waiting for connections"
                    );
                    std::process::exit(128 + signal);
                }
            }
        })?;
    Ok(())
}
