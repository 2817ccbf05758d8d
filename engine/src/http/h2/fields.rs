//! Header conversion between HTTP/2 and HTTP/1.1 messages, and the proxy's own fields.
//!
//! Owns: which fields are connection-specific (never sent over h2: RFC 9113 §8.2.2), the
//! forwarding fields (X-Forwarded-*, X-Request-ID, Via) with the same policy as the HTTP/1.1
//! proxy (`head.rs`), route header edits, writing an HTTP/1.1 request head from h2 parts, and
//! gRPC error responses. Must not: do IO.

use std::io::Write as _;
use std::net::IpAddr;

use http::header::{HeaderMap, HeaderName, HeaderValue};
use strait_protocols::http1::ResponseHead;

use crate::http::pipeline::HeaderPolicy;

/// Fields that describe one HTTP/1.1 connection; dropped in both directions (RFC 9110 §7.6.1,
/// RFC 9113 §8.2.2).
pub(crate) fn is_connection_specific(name: &[u8]) -> bool {
    const NAMES: [&[u8]; 8] = [
        b"connection",
        b"keep-alive",
        b"proxy-connection",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"transfer-encoding",
        b"upgrade",
        b"trailer",
    ];
    NAMES.iter().any(|n| n.eq_ignore_ascii_case(name))
}

pub(crate) const VIA_H2: &str = "2 strait";
pub(crate) const VIA_H1: &str = "1.1 strait";

/// What the forwarding fields are made of.
pub(crate) struct Forwarding<'a> {
    pub client_ip: IpAddr,
    pub tls: bool,
    pub trust_forwarded: bool,
    /// The authority the client asked for.
    pub host: Option<&'a str>,
    /// Our id when the client sent none (or an unusable one).
    pub generated_request_id: Option<&'a str>,
    pub edits: &'a dyn HeaderPolicy,
    /// Our Via entry: the protocol version the request was received with (RFC 9110 §7.6.3).
    pub via: &'static str,
}

/// Rewrites a request's fields for the upstream: X-Forwarded-For/-Proto/-Host (appended to
/// when trusted, replaced otherwise), X-Request-ID, Via, then the route's edits (which override
/// the proxy's own fields). `te` survives only as `trailers` (RFC 9113 §8.2.2).
pub(crate) fn forward_request_fields(h: &mut HeaderMap, f: &Forwarding<'_>) {
    let mut xff = String::new();
    if f.trust_forwarded {
        for v in h.get_all("x-forwarded-for") {
            if let Ok(s) = v.to_str() {
                if !xff.is_empty() {
                    xff.push_str(", ");
                }
                xff.push_str(s);
            }
        }
    }
    if !xff.is_empty() {
        xff.push_str(", ");
    }
    xff.push_str(&f.client_ip.to_string());
    let proto = match (f.trust_forwarded, h.get("x-forwarded-proto")) {
        (true, Some(v)) => v.clone(),
        _ => HeaderValue::from_static(if f.tls { "https" } else { "http" }),
    };
    let fhost = match (f.trust_forwarded, h.get("x-forwarded-host")) {
        (true, Some(v)) => Some(v.clone()),
        _ => f.host.and_then(|x| HeaderValue::from_str(x).ok()),
    };
    for name in ["x-forwarded-for", "x-forwarded-proto", "x-forwarded-host"] {
        h.remove(name);
    }
    let te_trailers = h
        .get("te")
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"trailers"));
    h.remove("te");
    if te_trailers {
        h.insert("te", HeaderValue::from_static("trailers"));
    }
    if let Ok(v) = HeaderValue::from_str(&xff) {
        h.insert("x-forwarded-for", v);
    }
    h.insert("x-forwarded-proto", proto);
    if let Some(v) = fhost {
        h.insert("x-forwarded-host", v);
    }
    if let Some(id) = f
        .generated_request_id
        .and_then(|i| HeaderValue::from_str(i).ok())
    {
        h.insert("x-request-id", id);
    }
    h.append("via", HeaderValue::from_static(f.via));
    f.edits.write(h);
}

/// How the body of an HTTP/1.1 request written from h2 is framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum H1Body {
    /// No body (the h2 request ended with its headers).
    None,
    ContentLength(u64),
    Chunked,
}

/// Writes the HTTP/1.1 request head for an h2 request whose fields were already forwarded
/// ([`forward_request_fields`]).
pub(crate) fn write_h1_request(
    method: &http::Method,
    target: &[u8],
    host: &str,
    h: &HeaderMap,
    body: H1Body,
    out: &mut Vec<u8>,
) {
    out.extend_from_slice(method.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(target);
    out.extend_from_slice(b" HTTP/1.1\r\nhost: ");
    out.extend_from_slice(host.as_bytes());
    out.extend_from_slice(b"\r\n");
    for (name, value) in h {
        let n = name.as_str().as_bytes();
        if n == b"host" || n == b"content-length" || n == b"cookie" || is_connection_specific(n) {
            continue;
        }
        out.extend_from_slice(n);
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    // h2 clients may split Cookie into one field per pair (RFC 9113 §8.2.3); HTTP/1.1 wants one
    // line, joined with "; ".
    let mut cookies = h.get_all("cookie").iter();
    if let Some(first) = cookies.next() {
        out.extend_from_slice(b"cookie: ");
        out.extend_from_slice(first.as_bytes());
        for more in cookies {
            out.extend_from_slice(b"; ");
            out.extend_from_slice(more.as_bytes());
        }
        out.extend_from_slice(b"\r\n");
    }
    match body {
        H1Body::None => {
            // A request method that defines a body says explicitly that this one is empty.
            if matches!(
                *method,
                http::Method::POST | http::Method::PUT | http::Method::PATCH
            ) {
                out.extend_from_slice(b"content-length: 0\r\n");
            }
        }
        H1Body::ContentLength(n) => {
            let _ = write!(out, "content-length: {n}\r\n");
        }
        H1Body::Chunked => out.extend_from_slice(b"transfer-encoding: chunked\r\n"),
    }
    out.extend_from_slice(b"\r\n");
}

/// The h2 response fields for an HTTP/1.1 response head: its end-to-end fields, Via, the
/// request id, then the route's edits.
pub(crate) fn response_fields_from_h1(
    head: &ResponseHead,
    buf: &[u8],
    request_id: &str,
    edits: &dyn HeaderPolicy,
) -> HeaderMap {
    let mut h = HeaderMap::with_capacity(head.headers().len() + 2);
    for (i, field) in head.headers().iter(buf).enumerate() {
        if head.is_hop_by_hop(i) || is_connection_specific(field.name) {
            continue;
        }
        if field.name.eq_ignore_ascii_case(b"content-length")
            || field.name.eq_ignore_ascii_case(b"te")
        {
            // h2 frames the body itself; a content-length that disagrees with the DATA frames
            // would be a protocol error, and we re-frame close-delimited bodies anyway.
            continue;
        }
        if let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(field.name),
            HeaderValue::from_bytes(field.value),
        ) {
            h.append(n, v);
        }
    }
    finish_response_fields(&mut h, VIA_H1, request_id, edits);
    h
}

/// Adds Via and the request id to a response's fields, then applies the route's edits.
pub(crate) fn finish_response_fields(
    h: &mut HeaderMap,
    via: &'static str,
    request_id: &str,
    edits: &dyn HeaderPolicy,
) {
    h.append("via", HeaderValue::from_static(via));
    if !h.contains_key("x-request-id") {
        if let Ok(v) = HeaderValue::from_str(request_id) {
            h.insert("x-request-id", v);
        }
    }
    edits.write(h);
}

/// Trailer fields of a chunked HTTP/1.1 body (`block` ends with the final CRLF).
pub(crate) fn trailers_from_h1(block: &[u8]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for line in block.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        let name = &line[..colon];
        let value = line[colon + 1..].trim_ascii();
        if is_connection_specific(name) {
            continue;
        }
        if let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(&name.to_ascii_lowercase()),
            HeaderValue::from_bytes(value),
        ) {
            h.append(n, v);
        }
    }
    h
}

/// Writes h2 request trailers as an HTTP/1.1 trailer section, after the last chunk.
pub(crate) fn write_h1_trailers(trailers: &HeaderMap, out: &mut Vec<u8>) {
    for (name, value) in trailers {
        if is_connection_specific(name.as_str().as_bytes()) {
            continue;
        }
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
}

/// Whether a request is gRPC (its errors must be answered in gRPC form).
pub(crate) fn is_grpc(h: &HeaderMap) -> bool {
    h.get("content-type")
        .is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"))
}

/// The gRPC status code for a proxy-generated HTTP status (gRPC's HTTP-to-status mapping, plus
/// DEADLINE_EXCEEDED for a 504).
pub(crate) fn grpc_status(status: u16) -> u16 {
    match status {
        400 => 13,       // INTERNAL
        401 => 16,       // UNAUTHENTICATED
        403 => 7,        // PERMISSION_DENIED
        404 | 405 => 12, // UNIMPLEMENTED
        408 | 504 => 4,  // DEADLINE_EXCEEDED
        413 | 429 => 8,  // RESOURCE_EXHAUSTED
        502 | 503 => 14, // UNAVAILABLE
        _ => 2,          // UNKNOWN
    }
}

/// `grpc-timeout` (gRPC over HTTP/2: at most 8 digits and a unit H M S m u n).
pub(crate) fn grpc_timeout(h: &HeaderMap) -> Option<std::time::Duration> {
    use std::time::Duration;
    let v = h.get("grpc-timeout")?.as_bytes();
    let (digits, unit) = v.split_at(v.len().checked_sub(1)?);
    if digits.is_empty() || digits.len() > 8 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let n: u64 = std::str::from_utf8(digits).ok()?.parse().ok()?;
    Some(match unit {
        b"H" => Duration::from_secs(n.saturating_mul(3600)),
        b"M" => Duration::from_secs(n.saturating_mul(60)),
        b"S" => Duration::from_secs(n),
        b"m" => Duration::from_millis(n),
        b"u" => Duration::from_micros(n),
        b"n" => Duration::from_nanos(n),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn edits() -> crate::config::HeaderEdits {
        crate::config::HeaderEdits::default()
    }

    #[test]
    fn untrusted_forwarding_fields_are_replaced_and_te_kept_only_as_trailers() {
        let mut h = HeaderMap::new();
        h.append("x-forwarded-for", HeaderValue::from_static("6.6.6.6"));
        h.append("x-forwarded-proto", HeaderValue::from_static("https"));
        h.append("te", HeaderValue::from_static("trailers"));
        forward_request_fields(
            &mut h,
            &Forwarding {
                client_ip: "192.0.2.7".parse().unwrap(),
                tls: false,
                trust_forwarded: false,
                host: Some("example.com"),
                generated_request_id: Some("abc"),
                edits: &edits(),
                via: VIA_H2,
            },
        );
        assert_eq!(h["x-forwarded-for"], "192.0.2.7");
        assert_eq!(h["x-forwarded-proto"], "http");
        assert_eq!(h["x-forwarded-host"], "example.com");
        assert_eq!(h["x-request-id"], "abc");
        assert_eq!(h["te"], "trailers");
        assert_eq!(h["via"], VIA_H2);
    }

    #[test]
    fn trusted_forwarded_for_lists_are_kept_in_order() {
        let mut h = HeaderMap::new();
        h.append("x-forwarded-for", HeaderValue::from_static("1.1.1.1"));
        h.append(
            "x-forwarded-for",
            HeaderValue::from_static("2.2.2.2, 3.3.3.3"),
        );
        h.append("te", HeaderValue::from_static("gzip"));
        forward_request_fields(
            &mut h,
            &Forwarding {
                client_ip: "192.0.2.7".parse().unwrap(),
                tls: true,
                trust_forwarded: true,
                host: None,
                generated_request_id: None,
                edits: &edits(),
                via: VIA_H2,
            },
        );
        assert_eq!(h["x-forwarded-for"], "1.1.1.1, 2.2.2.2, 3.3.3.3, 192.0.2.7");
        assert_eq!(h["x-forwarded-proto"], "https");
        assert!(h.get("te").is_none());
    }

    #[test]
    fn h1_request_heads_frame_the_body_and_drop_connection_fields() {
        let mut h = HeaderMap::new();
        h.append("accept", HeaderValue::from_static("*/*"));
        h.append("content-length", HeaderValue::from_static("5"));
        let mut out = Vec::new();
        write_h1_request(
            &http::Method::POST,
            b"/x?y",
            "example.com",
            &h,
            H1Body::ContentLength(5),
            &mut out,
        );
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "POST /x?y HTTP/1.1\r\nhost: example.com\r\naccept: */*\r\ncontent-length: 5\r\n\r\n"
        );
        let mut out = Vec::new();
        write_h1_request(
            &http::Method::POST,
            b"/",
            "h",
            &HeaderMap::new(),
            H1Body::None,
            &mut out,
        );
        assert!(String::from_utf8(out)
            .unwrap()
            .contains("content-length: 0\r\n"));
    }

    #[test]
    fn grpc_timeouts_parse_every_unit_and_refuse_junk() {
        use std::time::Duration;
        let t = |v: &'static str| {
            let mut h = HeaderMap::new();
            h.insert("grpc-timeout", HeaderValue::from_static(v));
            grpc_timeout(&h)
        };
        assert_eq!(t("1H"), Some(Duration::from_secs(3600)));
        assert_eq!(t("2M"), Some(Duration::from_secs(120)));
        assert_eq!(t("3S"), Some(Duration::from_secs(3)));
        assert_eq!(t("100m"), Some(Duration::from_millis(100)));
        assert_eq!(t("5u"), Some(Duration::from_micros(5)));
        assert_eq!(t("7n"), Some(Duration::from_nanos(7)));
        assert_eq!(t("123456789S"), None, "more than 8 digits");
        assert_eq!(t("S"), None);
        assert_eq!(t("10x"), None);
        assert_eq!(t("-1S"), None);
    }

    #[test]
    fn h1_trailers_become_h2_trailers() {
        let h = trailers_from_h1(b"grpc-status: 0\r\nGrpc-Message: ok\r\n\r\n");
        assert_eq!(h["grpc-status"], "0");
        assert_eq!(h["grpc-message"], "ok");
    }
}
