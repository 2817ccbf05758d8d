//! The `strait` command line: flags, TOML loading, subcommands.
//!
//! Owns: turning user input (flags, a TOML file) into a validated `strait_engine::config::Config`,
//! logging setup, signal handling, and the `run`, `check` and `demo` subcommands. Must not: touch
//! sockets on the data path — that is the engine's job.

pub mod config_file;
pub mod demo;
pub mod logging;
pub mod quick;
pub mod reload;
pub mod signals;
