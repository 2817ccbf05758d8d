//! Structured logging setup: text or JSON lines on stderr, at the configured level.
//!
//! Owns: installing the global `tracing` subscriber once. `RUST_LOG`, when set, takes precedence
//! (for per-module debugging); otherwise the configured level applies to everything.

use strait_engine::config::{LogConfig, LogFormat};
use tracing_subscriber::EnvFilter;

pub fn init(config: &LogConfig) {
    let filter = EnvFilter::try_from_env("RUST_LOG")
        .unwrap_or_else(|_| EnvFilter::new(config.level.as_str()));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_thread_names(true);
    // A second init (tests calling into the CLI twice) is harmless: keep the first.
    let _ = match config.format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .try_init(),
        LogFormat::Text => builder
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .try_init(),
    };
}
