//! The one retry policy of the exchange, for every client/upstream protocol pair.
//!
//! Owns: deciding whether a failed attempt may be tried again on a new connection. Must not:
//! count, do IO, or know about protocols beyond the [`Symptom`] the exchange classified.
//!
//! A request is retried at most once, and only when all of these hold:
//! - the attempt failed before any byte of a response arrived, and nothing was sent to the
//!   client (an attempt that got that far is never a [`Failure`]: the legs relay or abort);
//! - the request can be sent again: it has no body (a body is read from the client as it is
//!   forwarded, so once any of it went out it cannot be replayed);
//! - either the upstream said the request was not processed (h2 `REFUSED_STREAM`, or a GOAWAY
//!   whose last stream id is below ours, RFC 9113 §8.7: safe for any method), or the method is
//!   idempotent (RFC 9110 §9.2.2: GET, HEAD, OPTIONS, TRACE, PUT, DELETE) and the connection was
//!   reused — a keep-alive connection the upstream closed just as we sent (the race the pool's
//!   staleness peek cannot close). A failure on a new connection is the endpoint's answer, not a
//!   race, and is not retried.

use strait_protocols::http1::Method;

use super::{Failure, Symptom};

/// What the retry decision needs to know about the request.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RequestFacts {
    /// Idempotent by RFC 9110 §9.2.2.
    pub idempotent: bool,
    /// No body: the request can be sent again as it was.
    pub replayable: bool,
    /// A WebSocket upgrade: it gets a new connection and is never retried.
    pub upgrade: bool,
}

impl RequestFacts {
    pub(crate) fn new(method: Method, bodiless: bool, upgrade: bool) -> Self {
        RequestFacts {
            idempotent: is_idempotent(method),
            replayable: bodiless,
            upgrade,
        }
    }
}

/// RFC 9110 §9.2.2.
pub(crate) fn is_idempotent(method: Method) -> bool {
    matches!(
        method,
        Method::Get | Method::Head | Method::Options | Method::Trace | Method::Put | Method::Delete
    )
}

/// Whether the failed attempt may be retried (`retried`: this request was retried already).
pub(crate) fn allows(request: &RequestFacts, failure: &Failure, retried: bool) -> bool {
    if !may_follow(request, retried) {
        return false;
    }
    match failure.symptom {
        Symptom::Refused => true,
        Symptom::SendFailed | Symptom::ClosedBeforeHead => failure.reused && request.idempotent,
        Symptom::InvalidHead | Symptom::HeadTimeout | Symptom::Client(_) => false,
    }
}

/// Whether any failure of the coming attempt could be retried: when not, a leg may hand the
/// request's parts upstream instead of keeping a copy for a second attempt.
pub(crate) fn may_follow(request: &RequestFacts, retried: bool) -> bool {
    !retried && request.replayable && !request.upgrade
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::fault::Fault;

    fn failure(symptom: Symptom, reused: bool) -> Failure {
        Failure { symptom, reused }
    }

    #[test]
    fn idempotent_methods_follow_rfc_9110() {
        for m in [
            Method::Get,
            Method::Head,
            Method::Options,
            Method::Trace,
            Method::Put,
            Method::Delete,
        ] {
            assert!(is_idempotent(m), "{m:?}");
        }
        for m in [Method::Post, Method::Patch, Method::Connect] {
            assert!(!is_idempotent(m), "{m:?}");
        }
    }

    #[test]
    fn a_reused_connection_closed_under_an_idempotent_bodiless_request_is_retried_once() {
        let put = RequestFacts::new(Method::Put, true, false);
        let closed = failure(Symptom::ClosedBeforeHead, true);
        assert!(allows(&put, &closed, false));
        assert!(!allows(&put, &closed, true), "only once");
        assert!(allows(&put, &failure(Symptom::SendFailed, true), false));
        // A new connection's close is the endpoint's answer.
        assert!(!allows(
            &put,
            &failure(Symptom::ClosedBeforeHead, false),
            false
        ));
    }

    #[test]
    fn bodies_methods_and_late_failures_are_not_retried() {
        let closed = failure(Symptom::ClosedBeforeHead, true);
        assert!(!allows(
            &RequestFacts::new(Method::Post, true, false),
            &closed,
            false
        ));
        assert!(!allows(
            &RequestFacts::new(Method::Put, false, false),
            &closed,
            false
        ));
        assert!(!allows(
            &RequestFacts::new(Method::Get, true, true),
            &closed,
            false
        ));
        let get = RequestFacts::new(Method::Get, true, false);
        for late in [
            Symptom::InvalidHead,
            Symptom::HeadTimeout,
            Symptom::Client(Fault::ClientGone),
        ] {
            assert!(!allows(&get, &failure(late, true), false), "{late:?}");
        }
    }

    #[test]
    fn a_refused_stream_is_retried_for_any_bodiless_method() {
        let post = RequestFacts::new(Method::Post, true, false);
        assert!(allows(&post, &failure(Symptom::Refused, false), false));
        let upload = RequestFacts::new(Method::Post, false, false);
        assert!(!allows(&upload, &failure(Symptom::Refused, false), false));
    }
}
