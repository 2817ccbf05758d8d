//! Why the proxy answered a request itself, or why an exchange ended badly: one table for every
//! client protocol (HTTP/1.1, h2, h2c) and every upstream protocol.
//!
//! Owns: the [`Fault`] enum and, for each fault, its status, the text of the proxy's error body,
//! its access-log `error` name (docs/operations.md lists them) and the route counter it moves.
//! Must not: do IO, or count cluster figures (the exchange's outcome report does, once per
//! attempt).

use strait_protocols::http1::HttpError;

use crate::stats::RouteCounters;

/// Why the proxy answered instead of the upstream (or could not answer at all).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fault {
    /// A malformed request or one over a codec limit (HTTP/1.1 clients).
    Client(HttpError),
    HeaderTimeout,
    BodyTimeout,
    BodyTooLarge,
    NoRoute,
    /// The drain began as this request arrived and it can no longer be served whole.
    Draining,
    /// CONNECT: Strait is a reverse proxy, not a forward proxy or tunnel.
    MethodNotAllowed,
    /// A WebSocket upgrade that is not a bodiless HTTP/1.1 GET (RFC 6455 §4.1).
    BadUpgrade,
    /// The client went away (closed, reset the stream) before the exchange ended: nothing can
    /// be answered; logged with status 499.
    ClientGone,
    ConnectFailed,
    PoolFull,
    UpstreamTimeout,
    /// A malformed (or cut) response head, a refused protocol switch, bytes out of step.
    UpstreamProtocol,
    /// The upstream closed or reset the connection or stream before its response head.
    UpstreamClosed,
}

impl Fault {
    /// The status the proxy answers (or logs, for [`Fault::ClientGone`]).
    pub(crate) fn status(self) -> u16 {
        match self {
            Fault::Client(e) => e.status(),
            Fault::HeaderTimeout | Fault::BodyTimeout => 408,
            Fault::BodyTooLarge => 413,
            Fault::NoRoute => 404,
            Fault::Draining | Fault::PoolFull => 503,
            Fault::MethodNotAllowed => 405,
            Fault::BadUpgrade => 400,
            Fault::ClientGone => 499,
            Fault::ConnectFailed | Fault::UpstreamProtocol | Fault::UpstreamClosed => 502,
            Fault::UpstreamTimeout => 504,
        }
    }

    /// For the body of the error response (and `grpc-message`).
    pub(crate) fn cause(self) -> &'static str {
        match self {
            Fault::Client(e) => e.reason(),
            Fault::HeaderTimeout => "request head not received in time",
            Fault::BodyTimeout => "request body stalled",
            Fault::BodyTooLarge => "request body larger than allowed",
            Fault::NoRoute => "no route for this host and path",
            Fault::Draining => "the proxy is shutting down; retry the request",
            Fault::MethodNotAllowed => "CONNECT is not supported by this proxy",
            Fault::BadUpgrade => "a WebSocket upgrade must be an HTTP/1.1 GET without a body",
            Fault::ClientGone => "the client went away",
            Fault::ConnectFailed => "upstream connect failed",
            Fault::PoolFull => "no upstream connection available",
            Fault::UpstreamTimeout => "upstream response timed out",
            Fault::UpstreamProtocol => "invalid upstream response",
            Fault::UpstreamClosed => "upstream closed the connection",
        }
    }

    /// The access log's `error` field (documented in docs/operations.md).
    pub(crate) fn log_name(self) -> &'static str {
        match self {
            Fault::Client(_) => "bad_request",
            Fault::HeaderTimeout => "header_timeout",
            Fault::BodyTimeout => "body_timeout",
            Fault::BodyTooLarge => "body_too_large",
            Fault::NoRoute => "no_route",
            Fault::Draining => "draining",
            Fault::MethodNotAllowed => "method_not_allowed",
            Fault::BadUpgrade => "bad_upgrade",
            Fault::ClientGone => "client_gone",
            Fault::ConnectFailed => "connect_failed",
            Fault::PoolFull => "pool_full",
            Fault::UpstreamTimeout => "upstream_timeout",
            Fault::UpstreamProtocol => "upstream_protocol",
            Fault::UpstreamClosed => "upstream_closed",
        }
    }

    /// Moves the route counter this fault belongs to (none for `NoRoute`: the request count and
    /// the 4xx class say it).
    pub(crate) fn count(self, c: &RouteCounters) {
        match self {
            Fault::Client(_)
            | Fault::HeaderTimeout
            | Fault::BodyTimeout
            | Fault::BodyTooLarge
            | Fault::MethodNotAllowed
            | Fault::BadUpgrade
            | Fault::ClientGone => c.client_errors.inc(),
            Fault::NoRoute => {}
            Fault::Draining | Fault::PoolFull => c.unavailable.inc(),
            Fault::ConnectFailed | Fault::UpstreamProtocol | Fault::UpstreamClosed => {
                c.upstream_errors.inc()
            }
            Fault::UpstreamTimeout => c.upstream_timeouts.inc(),
        }
    }

    /// Every fault with a fixed name, for the docs test and the operations table.
    #[cfg(test)]
    pub(crate) const NAMED: [Fault; 13] = [
        Fault::HeaderTimeout,
        Fault::BodyTimeout,
        Fault::BodyTooLarge,
        Fault::NoRoute,
        Fault::Draining,
        Fault::MethodNotAllowed,
        Fault::BadUpgrade,
        Fault::ClientGone,
        Fault::ConnectFailed,
        Fault::PoolFull,
        Fault::UpstreamTimeout,
        Fault::UpstreamProtocol,
        Fault::UpstreamClosed,
    ];
}

#[cfg(test)]
mod tests {
    use super::*;

    /// docs/operations.md lists every access-log error name: a fault added without its line
    /// fails here.
    #[test]
    fn every_error_name_is_documented() {
        let doc = include_str!("../../../docs/operations.md");
        let mut names: Vec<&str> = Fault::NAMED.iter().map(|f| f.log_name()).collect();
        names.push(Fault::Client(HttpError::InvalidMethod).log_name());
        for name in names {
            assert!(
                doc.contains(&format!("`{name}`")),
                "docs/operations.md does not list the access-log error `{name}`"
            );
        }
    }

    #[test]
    fn statuses_are_in_their_classes() {
        for f in Fault::NAMED {
            let s = f.status();
            assert!((400..600).contains(&s), "{f:?}: {s}");
        }
    }
}
