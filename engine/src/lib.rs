//! Strait's shared-nothing per-core engine.
pub mod config;
