//! Strait's shared-nothing per-core engine.
//!
//! Owns: per-core runtimes and their threads ([`server`], [`core`]), listeners ([`listener`]), the L4
//! proxy phase ([`tcp_proxy`]), statistics ([`stats`], [`metrics`]), the admin endpoint
//! ([`admin`]), control messages and drain ([`control`]), and the validated configuration snapshot
//! ([`config`]). Must not: parse configuration files or handle signals (the CLI does), or implement
//! wire protocols (they live in `strait-protocols`). See docs/architecture.md for the map.

pub mod admin;
mod audit;
mod client_stream;
pub mod config;
mod context;
pub mod control;
mod core;
mod entry;
mod http;
mod layers;
pub mod listener;
mod log_limit;
pub mod metrics;
mod notify;
mod reload;
pub mod server;
mod shared;
pub mod stats;
mod tcp_proxy;
pub mod tls;
mod tls_stream;
mod udp_proxy;
mod upstream;
mod versions;

pub use server::{
    ConfigLoader, ConfigSource, DrainHandle, Refused, ReloadHandle, Request, Server, StartError,
    Trigger,
};
