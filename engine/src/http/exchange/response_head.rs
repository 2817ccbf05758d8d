//! Waiting for an attempt's response head under its deadline, for both upstream protocols, and
//! naming what went wrong as a [`Symptom`].
//!
//! Owns: reading an HTTP/1.1 response head (interim 1xx responses other than 101 dropped: 100
//! Continue is never asked for upstream, 103 Early Hints is not relayed) and awaiting an h2 one,
//! and the mapping of read results and `h2::Error`s to symptoms. Must not: relay anything to the
//! client or decide retries.

use std::time::Instant;

use h2::client::ResponseFuture;
use h2::{Reason, RecvStream};
use strait_protocols::http1::{HeadScanner, ResponseContext, ResponseHead};

use super::{Exchange, Symptom};
use crate::client_stream::read_more;
use crate::http::upstream_conn::UpstreamConn;

impl Exchange<'_> {
    /// Reads an HTTP/1.1 response head into `buf` (which may already hold the start of it).
    /// `Ok(n)`: `head` is parsed and `buf[..n]` holds it; what follows is body.
    pub(crate) async fn read_h1_head(
        &self,
        upstream: &mut UpstreamConn,
        buf: &mut Vec<u8>,
        head: &mut ResponseHead,
        context: ResponseContext,
    ) -> Result<usize, Symptom> {
        let deadline = Instant::now() + self.head_wait();
        let mut scanner = HeadScanner::new();
        let mut received_any = !buf.is_empty();
        let mut parse_now = received_any;
        loop {
            if std::mem::take(&mut parse_now) || scanner.should_parse(buf, &self.limits) {
                match head.parse(buf, context, &self.limits) {
                    Ok(Some(n)) if head.is_informational() && head.status() != 101 => {
                        buf.drain(..n);
                        scanner = HeadScanner::new();
                        parse_now = !buf.is_empty();
                        continue;
                    }
                    Ok(Some(n)) => return Ok(n),
                    Ok(None) => {}
                    Err(_) => return Err(Symptom::InvalidHead),
                }
            }
            let wait = deadline.saturating_duration_since(Instant::now());
            if wait.is_zero() {
                return Err(Symptom::HeadTimeout);
            }
            match monoio::time::timeout(wait, read_more(upstream, buf)).await {
                Err(_) => return Err(Symptom::HeadTimeout),
                Ok(Ok(0)) | Ok(Err(_)) if !received_any => return Err(Symptom::ClosedBeforeHead),
                // Part of a head, then the end: never retried, something was answered.
                Ok(Ok(0)) | Ok(Err(_)) => return Err(Symptom::InvalidHead),
                Ok(Ok(_)) => {
                    // Parse after the first read so a garbage answer is refused at once.
                    parse_now = !received_any;
                    received_any = true;
                }
            }
        }
    }

    /// Awaits an h2 response head under the deadline.
    pub(crate) async fn await_h2_head(
        &self,
        response: ResponseFuture,
    ) -> Result<http::Response<RecvStream>, Symptom> {
        match monoio::time::timeout(self.head_wait(), response).await {
            Err(_) => Err(Symptom::HeadTimeout),
            Ok(Ok(r)) => Ok(r),
            Ok(Err(e)) => Err(h2_symptom(&e)),
        }
    }
}

/// What an `h2` error before the response head means. `REFUSED_STREAM` from the upstream is the
/// one promise that the request was not processed (RFC 9113 §8.7); a GOAWAY may end streams it
/// did process, so it is a close like any other. A reset Strait's own h2 stack sent (a malformed
/// response: no `:status`, a bad field) is an invalid head.
pub(crate) fn h2_symptom(e: &h2::Error) -> Symptom {
    if e.is_reset() && e.is_remote() {
        return if e.reason() == Some(Reason::REFUSED_STREAM) {
            Symptom::Refused
        } else {
            Symptom::ClosedBeforeHead
        };
    }
    if e.is_io() || e.is_go_away() {
        return Symptom::ClosedBeforeHead;
    }
    Symptom::InvalidHead
}
