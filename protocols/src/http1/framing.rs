//! Message framing from the header section (RFC 9112 §6): Content-Length and Transfer-Encoding
//! values, their combinations, and the framing enums heads expose.
//!
//! Owns: [`RequestFraming`] and [`ResponseFraming`], and the strict readers of Content-Length
//! (one field, one plain decimal, no lists) and Transfer-Encoding (a list whose only coding is a
//! final `chunked`). Must not: decide by status or method (response.rs applies RFC 9112 §6.3's
//! order), or read bodies (body.rs and chunked.rs do).

use super::error::HttpError;
use super::fields::{FieldKind, Headers};
use super::syntax::{parse_decimal, transfer_coding, List};

/// How a request's body is delimited (RFC 9112 §6.3 rules 4–7 as they apply to requests).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RequestFraming {
    /// No Content-Length and no Transfer-Encoding: the request has no body.
    None,
    /// Exactly this many body bytes follow the head (0 included).
    ContentLength(u64),
    /// A chunked body follows; decode it with [`ChunkedDecoder`](super::ChunkedDecoder).
    Chunked,
}

/// How a response's body is delimited, decided per RFC 9112 §6.3 from the request method, the
/// status and the framing fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ResponseFraming {
    /// No body: a response to HEAD, a 1xx, 204 or 304, whatever the fields say.
    None,
    /// Exactly this many body bytes follow the head.
    ContentLength(u64),
    /// A chunked body follows.
    Chunked,
    /// The body is every byte until the upstream closes; the upstream connection cannot be
    /// reused.
    CloseDelimited,
    /// A 2xx to CONNECT: from the end of the head on, both directions are an opaque tunnel.
    Tunnel,
}

/// The value of one Content-Length field line: 1*DIGIT, nothing else (the tokenizer already
/// trimmed surrounding whitespace).
pub(crate) fn content_length_value(value: &[u8]) -> Result<u64, HttpError> {
    if value.contains(&b',') {
        return Err(HttpError::ContentLengthList);
    }
    parse_decimal(value).map_err(|overflow| {
        if overflow {
            HttpError::ContentLengthOverflow
        } else {
            HttpError::InvalidContentLength
        }
    })
}

/// The message's Content-Length, if any. Every value is checked in order before the count, so a
/// malformed second value reports its syntax; two well-formed values report duplicate or
/// conflicting.
pub(crate) fn content_length(headers: &Headers, buf: &[u8]) -> Result<Option<u64>, HttpError> {
    let mut found: Option<u64> = None;
    let mut repeated: Option<HttpError> = None;
    for value in headers.values(FieldKind::ContentLength, buf) {
        let n = content_length_value(value)?;
        match found {
            None => found = Some(n),
            Some(first) => {
                if repeated.is_none() {
                    repeated = Some(if first == n {
                        HttpError::DuplicateContentLength
                    } else {
                        HttpError::ConflictingContentLength
                    });
                }
            }
        }
    }
    match repeated {
        Some(e) => Err(e),
        None => Ok(found),
    }
}

/// Checks the Transfer-Encoding field lines (taken together as one list, in order) and returns
/// `Ok(())` only for exactly one `chunked`, last, without parameters, and no other coding.
/// Checks run in this order: syntax of every element, `chunked` twice, `chunked` not final,
/// any other coding (501: we implement no other transfer coding).
pub(crate) fn transfer_encoding(headers: &Headers, buf: &[u8]) -> Result<(), HttpError> {
    let mut chunked = 0u32;
    let mut last_chunked = false;
    let mut other = false;
    let mut any = false;
    for value in headers.values(FieldKind::TransferEncoding, buf) {
        for element in List::new(value) {
            let (name, has_params) =
                transfer_coding(element).ok_or(HttpError::InvalidTransferEncoding)?;
            any = true;
            if name.eq_ignore_ascii_case(b"chunked") {
                if has_params {
                    return Err(HttpError::InvalidTransferEncoding);
                }
                chunked += 1;
                last_chunked = true;
            } else {
                other = true;
                last_chunked = false;
            }
        }
    }
    if !any {
        return Err(HttpError::InvalidTransferEncoding);
    }
    if chunked > 1 {
        return Err(HttpError::ChunkedTwice);
    }
    if !last_chunked {
        return Err(HttpError::ChunkedNotFinal);
    }
    if other {
        return Err(HttpError::UnsupportedTransferCoding);
    }
    Ok(())
}
