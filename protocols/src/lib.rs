//! Wire protocols and byte relays for Strait.
//!
//! Owns: codecs (PROXY protocol, the strict HTTP/1.1 codec; sniffing, h2, TLS, WebSocket later) and
//! the L4 relay that moves bytes between two sockets. Must not: know about listeners, clusters, stats registries or
//! configuration files — callers pass plain values and observe progress through small traits.

pub mod http1;
pub mod proxy_protocol;
pub mod relay;
pub mod replay;
pub mod sniff;
pub mod tls_hello;
