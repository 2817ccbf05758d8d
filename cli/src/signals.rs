//! Signals: the first SIGTERM/SIGINT drains, a second one exits at once; SIGHUP reloads the
//! configuration file (when Strait runs from one) and the TLS certificates from their files.
//!
//! Owns: a dedicated thread that waits for signals (no async-signal-unsafe work in a handler).
//! Must not: touch the data path; it only calls `DrainHandle::drain` and
//! `ReloadHandle::reload_certificates`.

use std::io;

use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook::iterator::Signals;
use strait_engine::{DrainHandle, ReloadHandle, Request, Trigger};

pub fn handle_signals(drain: DrainHandle, reload: ReloadHandle, from_file: bool) -> io::Result<()> {
    let mut signals = Signals::new([SIGTERM, SIGINT, SIGHUP])?;
    std::thread::Builder::new()
        .name("strait-signals".into())
        .spawn(move || {
            for signal in signals.forever() {
                if signal == SIGHUP {
                    if from_file {
                        let trigger = Trigger {
                            source: "signal",
                            peer: None,
                        };
                        match reload.reload(trigger, Request::File) {
                            Ok(version) => tracing::info!(version, "SIGHUP: configuration reloaded"),
                            Err(refused) => {
                                for p in &refused.errors {
                                    tracing::error!(error = %p, "SIGHUP: configuration not reloaded");
                                }
                            }
                        }
                    }
                    match reload.reload_certificates() {
                        Ok(n) => tracing::info!(listeners = n, "SIGHUP: certificates reloaded"),
                        Err(e) => tracing::error!(error = %e,
                            "SIGHUP: certificates not reloaded; the old ones stay in use"),
                    }
                    continue;
                }
                let name = if signal == SIGTERM {
                    "SIGTERM"
                } else {
                    "SIGINT"
                };
                if drain.drain() {
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
