//! What every proxy shares to reach upstreams: one connect attempt (TCP, TLS) and the RAII
//! guards that account connections. The HTTP exchange (`http::exchange`) and the L4 relay
//! (`tcp_proxy`, `udp_proxy`) build on it.
//!
//! Must not: import a proxy, the exchange or `core` (layer order in docs/architecture.md).

mod connect;
mod guard;

pub(crate) use connect::{connect_endpoint, connect_tls};
pub(crate) use guard::{ConnectionGuard, EndpointGuard, OpenUpstream};
