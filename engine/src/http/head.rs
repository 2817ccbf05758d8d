//! Writing the heads Strait sends: the request head forwarded upstream, the response head
//! forwarded to the client, and the responses the proxy makes itself (errors, fixed routes,
//! `100 Continue`).
//!
//! Owns: which fields are copied, dropped, rewritten or added (hop-by-hop removal, Host,
//! X-Forwarded-*, X-Request-ID, Via, route header edits, re-framing fields, the WebSocket
//! upgrade fields), as pure functions appending to a caller-owned buffer, and which upgrade a
//! request asks for ([`upgrade_of`]). Must not: do IO, decide framing or keep-alive (the proxy
//! passes those in), or allocate beyond growing the output buffer.

use std::io::Write;
use std::net::{IpAddr, SocketAddr};

use strait_protocols::http1::{
    ContentLengthValue, Method, RequestFraming, RequestHead, ResponseHead, Version,
};

use crate::http::pipeline::{H1Fields, HeaderPolicy};

/// Our pseudonym in Via (RFC 9110 §7.6.3).
const VIA: &[u8] = b"1.1 strait";

/// What the request head forwarded upstream needs besides the parsed head.
pub(crate) struct UpstreamRequest<'a> {
    /// The client's buffer the head was parsed from.
    pub buf: &'a [u8],
    pub head: &'a RequestHead,
    /// The path-and-query to send (rewritten or as received).
    pub target: &'a [u8],
    /// Host to send; `None` keeps the client's.
    pub host_override: Option<&'a str>,
    /// Sent when neither an override nor a client Host exists (HTTP/1.0): the endpoint address.
    pub fallback_host: SocketAddr,
    pub client_ip: IpAddr,
    pub trust_forwarded: bool,
    /// The client spoke TLS to us (X-Forwarded-Proto).
    pub tls: bool,
    /// The request id to send when the client sent none.
    pub generated_request_id: Option<&'a [u8]>,
    pub edits: &'a dyn HeaderPolicy,
    /// The body is chunked (we re-frame it with our own chunk lines).
    pub chunked: bool,
    /// A WebSocket upgrade ([`Upgrade::WebSocket`]): `connection: upgrade` and
    /// `upgrade: websocket` are sent (the client's, being hop-by-hop, are not copied).
    pub upgrade: bool,
}

/// What a request's Upgrade field asks of the proxy (RFC 9110 §7.8).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Upgrade {
    /// Nothing the proxy acts on: Upgrade, if any, is dropped like every hop-by-hop field and
    /// the request is served as HTTP/1.1, which RFC 9110 §7.8 allows. `h2c` lands here (its
    /// upgrade is gone from HTTP/2, RFC 9113 §3.1), as does Upgrade without the `upgrade`
    /// Connection option.
    None,
    /// A WebSocket opening handshake (RFC 6455 §4.1): forwarded as an upgrade.
    WebSocket,
    /// Asks for WebSocket but breaks RFC 6455 §4.1: not GET, not HTTP/1.1, or with a body.
    /// Refused with 400, never forwarded.
    Malformed,
}

/// Which upgrade `head` asks for: `websocket` among the Upgrade protocols (ASCII
/// case-insensitive) and the `upgrade` Connection option.
pub(crate) fn upgrade_of(head: &RequestHead, buf: &[u8]) -> Upgrade {
    if !head.connection().upgrade {
        return Upgrade::None;
    }
    // Read from the fields, not `upgrade_protocols` (empty in HTTP/1.0, which is refused here).
    let websocket = head
        .headers()
        .iter(buf)
        .filter(|f| f.name.eq_ignore_ascii_case(b"upgrade"))
        .flat_map(|f| f.value.split(|&b| b == b','))
        .any(|p| p.trim_ascii().eq_ignore_ascii_case(b"websocket"));
    if !websocket {
        return Upgrade::None;
    }
    let bodiless = matches!(
        head.framing(),
        RequestFraming::None | RequestFraming::ContentLength(0)
    );
    if head.method() == Method::Get && head.version() == Version::Http11 && bodiless {
        Upgrade::WebSocket
    } else {
        Upgrade::Malformed
    }
}

/// Appends the upstream request head to `out`.
pub(crate) fn write_upstream_request(r: &UpstreamRequest<'_>, out: &mut Vec<u8>) {
    let buf = r.buf;
    let head = r.head;
    out.extend_from_slice(head.method_bytes(buf));
    out.push(b' ');
    out.extend_from_slice(r.target);
    out.extend_from_slice(b" HTTP/1.1\r\nhost: ");
    match (r.host_override, head.authority(buf)) {
        (Some(h), _) => out.extend_from_slice(h.as_bytes()),
        (None, Some(h)) => out.extend_from_slice(h),
        (None, None) => {
            let _ = write!(out, "{}", r.fallback_host);
        }
    }
    out.extend_from_slice(b"\r\n");

    let mut forwarded_for = false;
    let mut forwarded_proto: Option<&[u8]> = None;
    let mut forwarded_host: Option<&[u8]> = None;
    for (i, field) in head.headers().iter(buf).enumerate() {
        if head.is_hop_by_hop(i) {
            continue;
        }
        let name = field.name;
        if name.eq_ignore_ascii_case(b"host") || name.eq_ignore_ascii_case(b"expect") {
            // Host is written above; Expect is answered by the proxy itself.
            continue;
        }
        if name.eq_ignore_ascii_case(b"x-forwarded-for") {
            forwarded_for |= r.trust_forwarded;
            continue;
        }
        if r.generated_request_id.is_some() && name.eq_ignore_ascii_case(b"x-request-id") {
            // The client's id was unusable (empty or too long) and is replaced.
            continue;
        }
        if name.eq_ignore_ascii_case(b"x-forwarded-proto") {
            if r.trust_forwarded && forwarded_proto.is_none() {
                forwarded_proto = Some(field.value);
            }
            continue;
        }
        if name.eq_ignore_ascii_case(b"x-forwarded-host") {
            if r.trust_forwarded && forwarded_host.is_none() {
                forwarded_host = Some(field.value);
            }
            continue;
        }
        if r.edits.drops(name) {
            continue;
        }
        write_field(out, name, field.value);
    }

    // A route that sets or removes one of the fields the proxy writes overrides the proxy.
    let ours = |name: &[u8]| !r.edits.drops(name);
    if ours(b"x-forwarded-for") {
        write_forwarded_for(out, r, forwarded_for);
    }
    if ours(b"x-forwarded-proto") {
        write_field(
            out,
            b"x-forwarded-proto",
            forwarded_proto.unwrap_or(if r.tls { b"https" } else { b"http" }),
        );
    }
    if let Some(h) = forwarded_host.or_else(|| head.authority(buf)) {
        if ours(b"x-forwarded-host") {
            write_field(out, b"x-forwarded-host", h);
        }
    }
    if let Some(id) = r.generated_request_id {
        if ours(b"x-request-id") {
            write_field(out, b"x-request-id", id);
        }
    }
    if ours(b"via") {
        write_field(out, b"via", VIA);
    }
    r.edits.write(&mut H1Fields(out));
    if r.chunked {
        out.extend_from_slice(b"transfer-encoding: chunked\r\n");
    }
    if r.upgrade {
        out.extend_from_slice(UPGRADE_FIELDS);
    }
    out.extend_from_slice(b"\r\n");
}

/// The hop-by-hop fields of a WebSocket upgrade, written by the proxy for its own hop.
const UPGRADE_FIELDS: &[u8] = b"connection: upgrade\r\nupgrade: websocket\r\n";

/// X-Forwarded-For: the trusted incoming list (every line, in order: one list per RFC 9110
/// §5.3), then the client's address.
fn write_forwarded_for(out: &mut Vec<u8>, r: &UpstreamRequest<'_>, trusted: bool) {
    out.extend_from_slice(b"x-forwarded-for: ");
    if trusted {
        let lines = r
            .head
            .headers()
            .iter(r.buf)
            .filter(|f| f.name.eq_ignore_ascii_case(b"x-forwarded-for"));
        for field in lines.filter(|f| !f.value.is_empty()) {
            out.extend_from_slice(field.value);
            out.extend_from_slice(b", ");
        }
    }
    let _ = write!(out, "{}", r.client_ip);
    out.extend_from_slice(b"\r\n");
}

/// How the response body reaches the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ClientFraming {
    /// As the upstream framed it: no body, or its Content-Length.
    AsIs,
    /// Chunked, with our own chunk lines (upstream chunked or close-delimited, HTTP/1.1 client).
    Chunked,
    /// Until we close (upstream chunked or close-delimited, HTTP/1.0 client).
    Close,
}

pub(crate) struct ClientResponse<'a> {
    /// The upstream buffer the head was parsed from.
    pub buf: &'a [u8],
    pub head: &'a ResponseHead,
    pub framing: ClientFraming,
    /// Tell the client the connection closes after this response.
    pub close: bool,
    /// An HTTP/1.0 client that asked for keep-alive and keeps it.
    pub keep_alive_1_0: bool,
    /// Echoed when the upstream did not set one.
    pub request_id: &'a [u8],
    pub edits: &'a dyn HeaderPolicy,
    /// A `101` accepting a WebSocket upgrade: `connection: upgrade` and `upgrade: websocket`
    /// are sent, and no framing field (RFC 9110 §8.6: none in a 1xx).
    pub upgrade: bool,
}

/// Appends the response head for the client to `out`.
pub(crate) fn write_client_response(r: &ClientResponse<'_>, out: &mut Vec<u8>) {
    let buf = r.buf;
    let head = r.head;
    let status = head.status();
    let _ = write!(out, "HTTP/1.1 {status} ");
    let reason = head.reason(buf);
    if reason.is_empty() {
        out.extend_from_slice(canonical_reason(status).as_bytes());
    } else {
        out.extend_from_slice(reason);
    }
    out.extend_from_slice(b"\r\n");
    let mut has_request_id = false;
    for (i, field) in head.headers().iter(buf).enumerate() {
        if head.headers().is_hop_by_hop(i) {
            continue;
        }
        let name = field.name;
        if (r.framing != ClientFraming::AsIs || r.upgrade)
            && name.eq_ignore_ascii_case(b"content-length")
        {
            continue;
        }
        if r.edits.drops(name) {
            continue;
        }
        if name.eq_ignore_ascii_case(b"x-request-id") {
            has_request_id = true;
        }
        write_field(out, name, field.value);
    }
    if !has_request_id && !r.edits.drops(b"x-request-id") {
        write_field(out, b"x-request-id", r.request_id);
    }
    if !r.edits.drops(b"via") {
        write_field(out, b"via", VIA);
    }
    r.edits.write(&mut H1Fields(out));
    if r.framing == ClientFraming::Chunked {
        out.extend_from_slice(b"transfer-encoding: chunked\r\n");
    }
    if r.upgrade {
        out.extend_from_slice(UPGRADE_FIELDS);
    } else if r.close {
        out.extend_from_slice(b"connection: close\r\n");
    } else if r.keep_alive_1_0 {
        out.extend_from_slice(b"connection: keep-alive\r\n");
    }
    out.extend_from_slice(b"\r\n");
}

/// A response made by the proxy (errors, fixed routes, redirects). `head_only` for HEAD requests.
pub(crate) struct LocalResponse<'a> {
    pub status: u16,
    pub content_type: &'a str,
    pub body: &'a [u8],
    pub location: Option<&'a str>,
    pub request_id: &'a [u8],
    pub close: bool,
    pub keep_alive_1_0: bool,
    pub head_only: bool,
    pub edits: Option<&'a dyn HeaderPolicy>,
}

pub(crate) fn write_local_response(r: &LocalResponse<'_>, out: &mut Vec<u8>) {
    let _ = write!(
        out,
        "HTTP/1.1 {} {}\r\n",
        r.status,
        canonical_reason(r.status)
    );
    // Route edits may replace or remove the fields we would write (not the framing ones).
    let ours = |name: &[u8]| r.edits.is_none_or(|e| !e.drops(name));
    if (!r.body.is_empty() || !r.head_only) && ours(b"content-type") {
        write_field(out, b"content-type", r.content_type.as_bytes());
    }
    write_field(
        out,
        b"content-length",
        ContentLengthValue::new(r.body.len() as u64).as_bytes(),
    );
    if let Some(location) = r.location.filter(|_| ours(b"location")) {
        write_field(out, b"location", location.as_bytes());
    }
    if ours(b"x-request-id") {
        write_field(out, b"x-request-id", r.request_id);
    }
    if let Some(edits) = r.edits {
        edits.write(&mut H1Fields(out));
    }
    if r.close {
        out.extend_from_slice(b"connection: close\r\n");
    } else if r.keep_alive_1_0 {
        out.extend_from_slice(b"connection: keep-alive\r\n");
    }
    out.extend_from_slice(b"\r\n");
    if !r.head_only {
        out.extend_from_slice(r.body);
    }
}

pub(crate) const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

/// Whether the client speaks HTTP/1.0: no chunked framing towards it, keep-alive only when asked.
pub(crate) fn is_http10(version: Version) -> bool {
    version == Version::Http10
}

fn write_field(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// RFC 9110 §15 reason phrases for the codes a proxy commonly sends or relays without one.
pub(crate) fn canonical_reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        101 => "Switching Protocols",
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        204 => "No Content",
        206 => "Partial Content",
        301 => "Moved Permanently",
        302 => "Found",
        303 => "See Other",
        304 => "Not Modified",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        411 => "Length Required",
        413 => "Content Too Large",
        414 => "URI Too Long",
        417 => "Expectation Failed",
        421 => "Misdirected Request",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        505 => "HTTP Version Not Supported",
        _ => "Unknown",
    }
}

#[cfg(test)]
mod tests {
    use strait_protocols::http1::{Limits, ResponseContext};

    use super::*;
    use crate::config::HeaderEdits;

    fn request(raw: &[u8]) -> RequestHead {
        let mut head = RequestHead::new();
        head.parse(raw, &Limits::DEFAULT)
            .expect("valid")
            .expect("complete");
        head
    }

    fn forward(raw: &[u8], tweak: impl FnOnce(&mut UpstreamRequest<'_>)) -> String {
        forward_with(raw, &HeaderEdits::default(), tweak)
    }

    fn forward_with(
        raw: &[u8],
        edits: &HeaderEdits,
        tweak: impl FnOnce(&mut UpstreamRequest<'_>),
    ) -> String {
        let head = request(raw);
        let mut r = UpstreamRequest {
            buf: raw,
            head: &head,
            target: head.path_and_query(raw),
            host_override: None,
            fallback_host: "10.0.0.1:80".parse().expect("addr"),
            client_ip: "192.0.2.7".parse().expect("ip"),
            trust_forwarded: false,
            tls: false,
            generated_request_id: Some(b"rid-1"),
            edits,
            chunked: false,
            upgrade: false,
        };
        tweak(&mut r);
        let mut out = Vec::new();
        write_upstream_request(&r, &mut out);
        String::from_utf8(out).expect("ascii")
    }

    #[test]
    fn hop_by_hop_fields_are_dropped_and_forwarding_fields_added() {
        let out = forward(
            b"GET /a?b HTTP/1.1\r\nHost: Example.com\r\nConnection: x-secret, keep-alive\r\n\
              X-Secret: 1\r\nKeep-Alive: timeout=5\r\nTE: trailers\r\nUpgrade: h2c\r\n\
              Proxy-Authorization: basic x\r\ntraceparent: 00-ab-cd-01\r\nAccept: */*\r\n\r\n",
            |_| {},
        );
        assert_eq!(
            out,
            "GET /a?b HTTP/1.1\r\nhost: Example.com\r\ntraceparent: 00-ab-cd-01\r\nAccept: */*\r\n\
             x-forwarded-for: 192.0.2.7\r\nx-forwarded-proto: http\r\n\
             x-forwarded-host: Example.com\r\nx-request-id: rid-1\r\nvia: 1.1 strait\r\n\r\n"
        );
    }

    #[test]
    fn untrusted_forwarding_fields_are_replaced_and_trusted_ones_extended() {
        let raw = b"GET / HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: 1.1.1.1\r\n\
                    X-Forwarded-Proto: https\r\nX-Forwarded-Host: outer\r\n\r\n";
        let untrusted = forward(raw, |_| {});
        assert!(
            untrusted.contains("x-forwarded-for: 192.0.2.7\r\n"),
            "{untrusted}"
        );
        assert!(untrusted.contains("x-forwarded-proto: http\r\n"));
        assert!(untrusted.contains("x-forwarded-host: a\r\n"));
        assert!(!untrusted.contains("1.1.1.1"));
        let trusted = forward(raw, |r| r.trust_forwarded = true);
        let two_lines = forward(
            b"GET / HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: 192.0.2.1\r\nX-Forwarded-For: 198.51.100.2\r\n\r\n",
            |r| r.trust_forwarded = true,
        );
        assert!(
            two_lines.contains("x-forwarded-for: 192.0.2.1, 198.51.100.2, 192.0.2.7\r\n"),
            "{two_lines}"
        );
        assert!(
            trusted.contains("x-forwarded-for: 1.1.1.1, 192.0.2.7\r\n"),
            "{trusted}"
        );
        assert!(trusted.contains("x-forwarded-proto: https\r\n"));
        assert!(trusted.contains("x-forwarded-host: outer\r\n"));
    }

    #[test]
    fn host_override_request_id_propagation_edits_and_chunked() {
        let raw =
            b"POST /up HTTP/1.1\r\nHost: a\r\nX-Request-ID: given\r\nExpect: 100-continue\r\n\
                    Transfer-Encoding: chunked\r\nX-Internal: 1\r\nX-Env: dev\r\n\r\n";
        let edits = HeaderEdits {
            remove: vec!["x-internal".into()],
            set: vec![("x-env".into(), "prod".into())],
            add: vec![("x-tag".into(), "a".into())],
        };
        let out = forward_with(raw, &edits, |r| {
            r.host_override = Some("api.internal");
            r.generated_request_id = None;
            r.chunked = true;
        });
        assert_eq!(
            out,
            "POST /up HTTP/1.1\r\nhost: api.internal\r\nX-Request-ID: given\r\n\
             x-forwarded-for: 192.0.2.7\r\nx-forwarded-proto: http\r\nx-forwarded-host: a\r\n\
             via: 1.1 strait\r\nx-env: prod\r\nx-tag: a\r\ntransfer-encoding: chunked\r\n\r\n"
        );
    }

    #[test]
    fn route_edits_override_the_fields_the_proxy_writes() {
        let edits = HeaderEdits {
            remove: vec!["via".into()],
            set: vec![("x-forwarded-proto".into(), "https".into())],
            add: Vec::new(),
        };
        let out = forward_with(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n", &edits, |_| {});
        assert!(!out.contains("via:"), "{out}");
        assert_eq!(out.matches("x-forwarded-proto").count(), 1, "{out}");
        assert!(out.contains("x-forwarded-proto: https\r\n"), "{out}");
        let mut local = Vec::new();
        let edits = HeaderEdits {
            remove: Vec::new(),
            set: vec![("content-type".into(), "application/json".into())],
            add: Vec::new(),
        };
        write_local_response(
            &LocalResponse {
                status: 200,
                content_type: "text/plain",
                body: b"{}",
                location: None,
                request_id: b"rid",
                close: false,
                keep_alive_1_0: false,
                head_only: false,
                edits: Some(&edits),
            },
            &mut local,
        );
        let local = String::from_utf8(local).expect("ascii");
        assert_eq!(local.matches("content-type").count(), 1, "{local}");
        assert!(
            local.contains("content-type: application/json\r\n"),
            "{local}"
        );
    }

    #[test]
    fn http10_without_host_gets_the_fallback() {
        let out = forward(b"GET / HTTP/1.0\r\n\r\n", |_| {});
        assert!(
            out.starts_with("GET / HTTP/1.1\r\nhost: 10.0.0.1:80\r\n"),
            "{out}"
        );
        assert!(!out.contains("x-forwarded-host"));
    }

    fn response(raw: &[u8]) -> ResponseHead {
        let mut head = ResponseHead::new();
        head.parse(
            raw,
            ResponseContext::new(strait_protocols::http1::Method::Get),
            &Limits::DEFAULT,
        )
        .expect("valid")
        .expect("complete");
        head
    }

    #[test]
    fn response_heads_are_cleaned_reframed_and_tagged() {
        let raw = b"HTTP/1.1 200 \r\nTransfer-Encoding: chunked\r\nConnection: x-a\r\nX-A: 1\r\n\
                    Server: o\r\n\r\n";
        let head = response(raw);
        let edits = HeaderEdits::default();
        let mut out = Vec::new();
        write_client_response(
            &ClientResponse {
                buf: raw,
                head: &head,
                framing: ClientFraming::Chunked,
                close: false,
                keep_alive_1_0: false,
                request_id: b"rid",
                edits: &edits,
                upgrade: false,
            },
            &mut out,
        );
        assert_eq!(
            String::from_utf8(out).expect("ascii"),
            "HTTP/1.1 200 OK\r\nServer: o\r\nx-request-id: rid\r\nvia: 1.1 strait\r\n\
             transfer-encoding: chunked\r\n\r\n"
        );
    }

    #[test]
    fn content_length_passes_unless_reframed_and_upstream_request_id_wins() {
        let raw = b"HTTP/1.1 404 Nope\r\nContent-Length: 3\r\nX-Request-ID: up\r\n\r\n";
        let head = response(raw);
        let edits = HeaderEdits::default();
        let mut out = Vec::new();
        let mut r = ClientResponse {
            buf: raw,
            head: &head,
            framing: ClientFraming::AsIs,
            close: true,
            keep_alive_1_0: false,
            request_id: b"ours",
            edits: &edits,
            upgrade: false,
        };
        write_client_response(&r, &mut out);
        assert_eq!(
            String::from_utf8_lossy(&out),
            "HTTP/1.1 404 Nope\r\nContent-Length: 3\r\nX-Request-ID: up\r\nvia: 1.1 strait\r\n\
             connection: close\r\n\r\n"
        );
        out.clear();
        r.framing = ClientFraming::Close;
        write_client_response(&r, &mut out);
        assert!(!String::from_utf8_lossy(&out).contains("Content-Length"));
    }

    #[test]
    fn websocket_upgrades_are_recognised_and_malformed_ones_told_apart() {
        let kind = |raw: &[u8]| upgrade_of(&request(raw), raw);
        let ws = b"GET /chat HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, Upgrade\r\n\
                   Upgrade: WebSocket\r\nSec-WebSocket-Version: 13\r\n\r\n";
        assert_eq!(kind(ws), Upgrade::WebSocket);
        assert_eq!(
            kind(
                b"GET / HTTP/1.1\r\nHost: a\r\nConnection: upgrade\r\nUpgrade: foo, websocket\r\n\
                   Content-Length: 0\r\n\r\n"
            ),
            Upgrade::WebSocket
        );
        // Not asked for: no `upgrade` option, another protocol, or no Upgrade at all.
        for raw in [
            &b"GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n\r\n"[..],
            b"GET / HTTP/1.1\r\nHost: a\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\n\
              HTTP2-Settings: AAMAAABkAAQAAP__\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: a\r\nConnection: upgrade\r\n\r\n",
        ] {
            assert_eq!(kind(raw), Upgrade::None, "{}", String::from_utf8_lossy(raw));
        }
        for raw in [
            &b"POST / HTTP/1.1\r\nHost: a\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n"[..],
            b"GET / HTTP/1.0\r\nHost: a\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: a\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\
              Content-Length: 5\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: a\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\
              Transfer-Encoding: chunked\r\n\r\n",
        ] {
            assert_eq!(
                kind(raw),
                Upgrade::Malformed,
                "{}",
                String::from_utf8_lossy(raw)
            );
        }
    }

    #[test]
    fn a_websocket_upgrade_is_forwarded_with_our_own_upgrade_fields() {
        let raw = b"GET /chat HTTP/1.1\r\nHost: a\r\nConnection: Upgrade, X-Hop\r\nX-Hop: 1\r\n\
                    Upgrade: websocket, foo\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
                    Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: chat\r\n\r\n";
        let out = forward(raw, |r| r.upgrade = true);
        assert_eq!(
            out,
            "GET /chat HTTP/1.1\r\nhost: a\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
             Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: chat\r\n\
             x-forwarded-for: 192.0.2.7\r\nx-forwarded-proto: http\r\nx-forwarded-host: a\r\n\
             x-request-id: rid-1\r\nvia: 1.1 strait\r\nconnection: upgrade\r\n\
             upgrade: websocket\r\n\r\n"
        );
        // Served as plain HTTP/1.1: h2c's fields never reach the upstream.
        let h2c = forward(
            b"GET / HTTP/1.1\r\nHost: a\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\n\
              HTTP2-Settings: AAMAAABkAAQAAP__\r\n\r\n",
            |_| {},
        );
        let lower = h2c.to_ascii_lowercase();
        assert!(
            !lower.contains("upgrade") && !lower.contains("http2-settings"),
            "{h2c}"
        );
    }

    #[test]
    fn a_switching_protocols_head_keeps_the_upgrade_fields() {
        let raw = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
                    Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\nContent-Length: 0\r\n\r\n";
        let mut head = ResponseHead::new();
        let context = ResponseContext {
            method: strait_protocols::http1::Method::Get,
            upgrade_requested: true,
        };
        head.parse(raw, context, &Limits::DEFAULT)
            .expect("valid")
            .expect("complete");
        let edits = HeaderEdits::default();
        let mut out = Vec::new();
        write_client_response(
            &ClientResponse {
                buf: raw,
                head: &head,
                framing: ClientFraming::AsIs,
                close: false,
                keep_alive_1_0: false,
                request_id: b"rid",
                edits: &edits,
                upgrade: true,
            },
            &mut out,
        );
        assert_eq!(
            String::from_utf8(out).expect("ascii"),
            "HTTP/1.1 101 Switching Protocols\r\n\
             Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\nx-request-id: rid\r\n\
             via: 1.1 strait\r\nconnection: upgrade\r\nupgrade: websocket\r\n\r\n"
        );
    }

    #[test]
    fn local_responses_have_exact_framing() {
        let mut out = Vec::new();
        write_local_response(
            &LocalResponse {
                status: 502,
                content_type: "text/plain; charset=utf-8",
                body: b"502 Bad Gateway: upstream connect failed\n",
                location: None,
                request_id: b"rid",
                close: false,
                keep_alive_1_0: false,
                head_only: false,
                edits: None,
            },
            &mut out,
        );
        assert_eq!(
            String::from_utf8(out).expect("ascii"),
            "HTTP/1.1 502 Bad Gateway\r\ncontent-type: text/plain; charset=utf-8\r\n\
             content-length: 41\r\nx-request-id: rid\r\n\r\n502 Bad Gateway: upstream connect failed\n"
        );
    }
}
