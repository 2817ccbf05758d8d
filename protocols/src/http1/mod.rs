//! The HTTP/1.1 codec: strict, IO-free parsing of request and response heads, body framing,
//! a streaming chunked decoder, and the encoders needed to re-frame a body.
//!
//! Owns: every wire rule of HTTP/1.x message syntax and framing that Strait enforces (RFC 9110,
//! RFC 9112), as pure functions and small state machines over the caller's bytes. Must not: do
//! IO, allocate on the parse path, buffer bodies, hold references into the caller's buffer
//! across calls (heads are spans plus flags), or take proxy decisions (routing, header rewriting,
//! pools, timeouts, what to log). docs/http1.md lists every rule with its status code and RFC
//! section.
//!
//! # How the proxy drives it
//!
//! ```
//! use strait_protocols::http1::{
//!     parse_request, parse_response, BodyDecoder, Event, Limits, RequestFraming,
//!     ResponseFraming, Status,
//! };
//!
//! let limits = Limits::default();
//! let buf = b"POST /upload HTTP/1.1\r\nHost: example.com\r\nTransfer-Encoding: chunked\r\n\r\n\
//!             5\r\nhello\r\n0\r\n\r\nGET / HTTP/1.1\r\nHost: example.com\r\n\r\n";
//!
//! // 1. The head. `Incomplete` → read more and call again with the whole buffer.
//! let Ok(Status::Complete { head, consumed }) = parse_request(buf, &limits) else { panic!() };
//! assert_eq!(head.target(buf), b"/upload");
//! assert_eq!(head.framing(), RequestFraming::Chunked);
//! for (i, field) in head.headers().iter(buf).enumerate() {
//!     // Copy end-to-end fields; skip hop-by-hop ones (and re-frame the body ourselves).
//!     assert_eq!(field.hop_by_hop, head.is_hop_by_hop(i));
//! }
//!
//! // 2. The body: forward each data range, never buffering it.
//! let mut body = BodyDecoder::for_request(head.framing(), &limits);
//! let mut rest = &buf[consumed..];
//! let mut data = Vec::new();
//! loop {
//!     let step = body.decode(rest).expect("valid body");
//!     match step.event {
//!         Event::Data(range) => data.extend_from_slice(&rest[range]),
//!         Event::NeedMore => unreachable!("the whole body is in the buffer"),
//!         Event::End { .. } => { rest = &rest[step.consumed..]; break; }
//!     }
//!     rest = &rest[step.consumed..];
//! }
//! assert_eq!(data, b"hello");
//!
//! // 3. Pipelining: the next request starts where the body ended.
//! let Ok(Status::Complete { head: next, .. }) = parse_request(rest, &limits) else { panic!() };
//! assert_eq!(next.target(rest), b"/");
//!
//! // 4. The upstream's answer, parsed knowing the request (HEAD, CONNECT, upgrade).
//! let response = b"HTTP/1.1 204 No Content\r\n\r\n";
//! let Ok(Status::Complete { head: res, .. }) =
//!     parse_response(response, head.response_context(), &limits) else { panic!() };
//! assert_eq!(res.framing(), ResponseFraming::None);
//! ```
//!
//! # API summary
//!
//! - Heads: [`parse_request`] → [`RequestHead`], [`parse_response`] (with a
//!   [`ResponseContext`]) → [`ResponseHead`]; both return [`Status`]. [`RequestHead::parse`] and
//!   [`ResponseHead::parse`] do the same into a head kept per connection (no 2.6 KiB
//!   initialisation per message). Field lines are a [`Headers`] table of [`Span`]s;
//!   [`HeadScanner`] says when re-parsing a growing buffer is worth it.
//! - Errors: [`HttpError`] (one variant per rule, [`HttpError::status`] is the code to answer)
//!   and [`ResponseError`] (any upstream fault: 502).
//! - Bodies: [`RequestFraming`] / [`ResponseFraming`] → [`BodyDecoder`] (over
//!   [`ContentLengthBody`] and [`ChunkedDecoder`]) → [`Decoded`] / [`Event`];
//!   [`parse_trailers`] reads a trailer block.
//! - Re-framing: [`ChunkHeader`], [`CHUNK_DATA_END`], [`LAST_CHUNK`],
//!   [`LAST_CHUNK_NO_TRAILERS`], [`ContentLengthValue`].
//! - Hop-by-hop: [`Headers::is_hop_by_hop`], [`is_hop_by_hop_name`], [`ConnectionOptions`].
//! - Limits: [`Limits`] (defaults in [`Limits::DEFAULT`]).

mod body;
mod chunked;
mod error;
mod fields;
mod framing;
mod hop;
mod limits;
mod request;
mod response;
mod scan;
pub(crate) mod syntax;

#[cfg(test)]
mod tests;

use std::fmt;

pub use body::{
    BodyDecoder, ChunkHeader, ContentLengthBody, ContentLengthValue, Decoded, Event,
    CHUNK_DATA_END, LAST_CHUNK, LAST_CHUNK_NO_TRAILERS,
};
pub use chunked::{parse_trailers, ChunkedDecoder};
pub use error::{HttpError, ResponseError};
pub use fields::{Header, HeaderIter, Headers, Span};
pub use framing::{RequestFraming, ResponseFraming};
pub use hop::{is_hop_by_hop_name, ConnectionOptions, MAX_CONNECTION_OPTIONS};
pub use limits::{Limits, MAX_HEADERS_CAPACITY, MAX_LIMIT_BYTES};
pub use request::{parse_request, Method, RequestHead, Scheme, TargetForm};
pub use response::{parse_response, ResponseContext, ResponseHead};
pub use scan::HeadScanner;

/// The outcome of parsing a head from a buffer that may not hold all of it yet.
#[derive(Debug, Clone)]
pub enum Status<T> {
    /// Every byte so far is acceptable; the head is not finished.
    Incomplete,
    /// The head occupies the first `consumed` bytes of the buffer.
    Complete { head: T, consumed: usize },
}

impl<T> Status<T> {
    pub fn is_complete(&self) -> bool {
        matches!(self, Status::Complete { .. })
    }
}

/// The HTTP versions this codec speaks. Anything else is refused (RFC 9112 §2.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Version {
    Http10,
    Http11,
}

impl Version {
    pub fn as_str(self) -> &'static str {
        match self {
            Version::Http10 => "HTTP/1.0",
            Version::Http11 => "HTTP/1.1",
        }
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
