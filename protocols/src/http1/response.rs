//! Response heads (RFC 9112 §4, §6.3; RFC 9110 §15): the status line and the response's framing,
//! decided from the request it answers.
//!
//! Owns: [`parse_response`], [`ResponseHead`] and [`ResponseContext`]: exact version, a
//! three-digit status in 100..=599, reason-phrase bytes, the same field-line rules as requests,
//! and RFC 9112 §6.3's framing order (HEAD, 1xx/204/304, 2xx to CONNECT, chunked, Content-Length,
//! close). Must not: do IO or allocate; decide what to send the client (every error here is a
//! [`ResponseError`], i.e. a 502 and a discarded upstream connection, and the proxy loops over
//! interim 1xx responses itself).

use super::error::{HttpError, ResponseError};
use super::fields::{parse_header_section, Cursor, FieldKind, Headers, Span, Stop};
use super::framing::{content_length, transfer_encoding, ResponseFraming};
use super::hop::{connection_options, ConnectionOptions};
use super::limits::Limits;
use super::request::{http_version, Method};
use super::syntax::{is_protocol, List, VALUE};
use super::{Status, Version};

/// What the response parser must know about the request it answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResponseContext {
    /// The request method: HEAD means no body whatever the fields say; a 2xx to CONNECT is a
    /// tunnel.
    pub method: Method,
    /// The request asked to upgrade (see [`RequestHead::is_upgrade`](super::RequestHead)); a 101
    /// to any other request is refused.
    pub upgrade_requested: bool,
}

impl ResponseContext {
    /// A context for a request with this method that did not ask to upgrade.
    pub fn new(method: Method) -> ResponseContext {
        ResponseContext {
            method,
            upgrade_requested: false,
        }
    }
}

/// A parsed, validated response head; spans into the parsed buffer, like
/// [`RequestHead`](super::RequestHead).
#[derive(Debug, Clone)]
pub struct ResponseHead {
    version: Version,
    status: u16,
    reason: Span,
    headers: Headers,
    framing: ResponseFraming,
    connection: ConnectionOptions,
    keep_alive: bool,
}

impl ResponseHead {
    /// An empty head for [`parse`](Self::parse); keep one per upstream connection and reuse it.
    pub const fn new() -> ResponseHead {
        ResponseHead {
            version: Version::Http11,
            status: 0,
            reason: Span::EMPTY,
            headers: Headers::new(),
            framing: ResponseFraming::None,
            connection: ConnectionOptions {
                close: false,
                keep_alive: false,
                upgrade: false,
                count: 0,
            },
            keep_alive: false,
        }
    }

    /// [`parse_response`] into `self`, reusing its storage: `Ok(Some(consumed))` when complete,
    /// `Ok(None)` when more bytes are needed. After `Ok(None)` or an error the contents are
    /// unspecified (but safe to read).
    pub fn parse(
        &mut self,
        buf: &[u8],
        request: ResponseContext,
        limits: &Limits,
    ) -> Result<Option<usize>, ResponseError> {
        self.version = Version::Http11;
        self.status = 0;
        self.reason = Span::EMPTY;
        self.headers.clear();
        self.framing = ResponseFraming::None;
        self.connection = ConnectionOptions::default();
        self.keep_alive = false;
        match parse_into(buf, request, limits, self) {
            Ok(consumed) => Ok(Some(consumed)),
            Err(Stop::Incomplete) => Ok(None),
            Err(Stop::Error(e)) => Err(ResponseError(e)),
        }
    }

    pub fn version(&self) -> Version {
        self.version
    }

    /// The status code, 100..=599.
    pub fn status(&self) -> u16 {
        self.status
    }

    /// The reason phrase as sent (possibly empty; clients ignore it, RFC 9112 §4).
    pub fn reason<'b>(&self, buf: &'b [u8]) -> &'b [u8] {
        self.reason.get(buf)
    }

    /// Every field line, in order.
    pub fn headers(&self) -> &Headers {
        &self.headers
    }

    pub fn framing(&self) -> ResponseFraming {
        self.framing
    }

    /// Whether the upstream connection can carry another request once this response's body is
    /// read: HTTP/1.1 unless `Connection: close`, HTTP/1.0 only with `keep-alive`; never after a
    /// close-delimited body, a 101 or a tunnel.
    pub fn keep_alive(&self) -> bool {
        self.keep_alive
    }

    /// The Connection options summary.
    pub fn connection(&self) -> ConnectionOptions {
        self.connection
    }

    /// Every Connection option as sent, in order.
    pub fn connection_tokens<'h, 'b: 'h>(
        &'h self,
        buf: &'b [u8],
    ) -> impl Iterator<Item = &'b [u8]> + 'h {
        self.headers.connection_tokens(buf)
    }

    /// A 1xx status (RFC 9110 §15.2), 101 included.
    pub fn is_informational(&self) -> bool {
        (100..200).contains(&self.status)
    }

    /// A 1xx other than 101: forward it (to an HTTP/1.1 client) and parse the next head from
    /// the bytes after `consumed` — the final response is still to come.
    pub fn is_interim(&self) -> bool {
        self.is_informational() && self.status != 101
    }

    /// 101 Switching Protocols to an upgrade request: after this head both connections carry
    /// the new protocol (a tunnel); neither goes back to a pool.
    pub fn is_switching_protocols(&self) -> bool {
        self.status == 101
    }

    /// The protocols of Upgrade, in order.
    pub fn upgrade_protocols<'h, 'b: 'h>(
        &'h self,
        buf: &'b [u8],
    ) -> impl Iterator<Item = &'b [u8]> + 'h {
        self.headers
            .values(FieldKind::Upgrade, buf)
            .flat_map(List::new)
    }

    /// See [`Headers::is_hop_by_hop`].
    pub fn is_hop_by_hop(&self, index: usize) -> bool {
        self.headers.is_hop_by_hop(index)
    }
}

impl Default for ResponseHead {
    fn default() -> Self {
        ResponseHead::new()
    }
}

/// Parses one response head from the start of `buf`, for a request described by `request`.
///
/// Same contract as [`parse_request`](super::parse_request); every error is a
/// [`ResponseError`]: answer 502 if nothing was sent to the client yet, and discard the upstream
/// connection. Leading empty lines are not skipped in responses.
pub fn parse_response(
    buf: &[u8],
    request: ResponseContext,
    limits: &Limits,
) -> Result<Status<ResponseHead>, ResponseError> {
    let mut head = ResponseHead::new();
    match parse_into(buf, request, limits, &mut head) {
        Ok(consumed) => Ok(Status::Complete { head, consumed }),
        Err(Stop::Incomplete) => Ok(Status::Incomplete),
        Err(Stop::Error(e)) => Err(ResponseError(e)),
    }
}

fn parse_into(
    buf: &[u8],
    request: ResponseContext,
    limits: &Limits,
    head: &mut ResponseHead,
) -> Result<usize, Stop> {
    let mut cur = Cursor::new(buf, limits.request_line() + 2, HttpError::StatusLineTooLong);
    status_line(&mut cur, head)?;
    cur.limit = cur.pos + limits.header_block();
    cur.over = HttpError::HeaderBlockTooLarge;
    parse_header_section(&mut cur, limits.headers(), &mut head.headers)?;
    semantics(head, request, buf)?;
    Ok(cur.pos)
}

fn status_line(cur: &mut Cursor<'_>, head: &mut ResponseHead) -> Result<(), Stop> {
    let (major, minor) = http_version(cur, |i, _| {
        if i < 5 {
            HttpError::InvalidStatusLine
        } else {
            HttpError::InvalidVersion
        }
    })?;
    match cur.peek()? {
        b' ' => {}
        b if b.is_ascii_digit() => return Err(HttpError::InvalidVersion.into()),
        _ => return Err(HttpError::InvalidStatusLine.into()),
    }
    head.version = match (major, minor) {
        (1, 0) => Version::Http10,
        (1, 1) => Version::Http11,
        _ => return Err(HttpError::UnsupportedVersion.into()),
    };
    cur.pos += 1;

    let mut code = 0u16;
    for i in 0..3 {
        let b = cur.at(i)?;
        if !b.is_ascii_digit() {
            return Err(HttpError::InvalidStatusCode.into());
        }
        code = code * 10 + u16::from(b - b'0');
    }
    cur.pos += 3;
    let next = cur.peek()?;
    if next.is_ascii_digit() || !(100..=599).contains(&code) {
        return Err(HttpError::InvalidStatusCode.into());
    }
    head.status = code;
    match next {
        b' ' => {
            cur.pos += 1;
            let start = cur.pos;
            cur.run(VALUE);
            head.reason = Span::new(start, cur.pos);
            cur.crlf(HttpError::InvalidReasonPhrase)
        }
        // RFC 9112 §4 requires the SP even before an empty reason; like every production
        // client we tolerate its absence — it cannot change framing.
        b'\r' | b'\n' => cur.crlf(HttpError::InvalidStatusLine),
        _ => Err(HttpError::InvalidStatusLine.into()),
    }
}

fn semantics(
    head: &mut ResponseHead,
    request: ResponseContext,
    buf: &[u8],
) -> Result<(), HttpError> {
    let mut content_lengths = 0usize;
    let mut transfer_encodings = 0usize;
    let mut upgrades = 0usize;
    for field in head.headers.slice() {
        match field.kind {
            FieldKind::ContentLength => content_lengths += 1,
            FieldKind::TransferEncoding => transfer_encodings += 1,
            FieldKind::Upgrade => upgrades += 1,
            _ => {}
        }
    }
    let status = head.status;
    let no_content = (100..200).contains(&status) || status == 204;

    let mut protocols = 0usize;
    if upgrades > 0 {
        for value in head.headers.values(FieldKind::Upgrade, buf) {
            for protocol in List::new(value) {
                if !is_protocol(protocol) {
                    return Err(HttpError::InvalidUpgrade);
                }
                protocols += 1;
            }
        }
    }
    if status == 101 {
        if !request.upgrade_requested {
            return Err(HttpError::UnexpectedSwitchingProtocols);
        }
        if protocols == 0 {
            return Err(HttpError::MissingUpgrade);
        }
    }

    head.framing = if request.method == Method::Connect && (200..300).contains(&status) {
        // RFC 9110 §9.3.6: a client ignores Content-Length and Transfer-Encoding here.
        ResponseFraming::Tunnel
    } else {
        let chunked = if transfer_encodings > 0 {
            if head.version == Version::Http10 {
                return Err(HttpError::TransferEncodingInHttp10);
            }
            if content_lengths > 0 {
                return Err(HttpError::ContentLengthWithTransferEncoding);
            }
            if no_content {
                return Err(HttpError::FramingOnNoContent);
            }
            transfer_encoding(&head.headers, buf)?;
            true
        } else {
            false
        };
        let length = if content_lengths > 0 {
            content_length(&head.headers, buf)?
        } else {
            None
        };
        if no_content && length.is_some_and(|n| n != 0) {
            return Err(HttpError::FramingOnNoContent);
        }
        if request.method == Method::Head || no_content || status == 304 {
            ResponseFraming::None
        } else if chunked {
            ResponseFraming::Chunked
        } else if let Some(n) = length {
            ResponseFraming::ContentLength(n)
        } else {
            ResponseFraming::CloseDelimited
        }
    };

    head.connection = connection_options(&mut head.headers, buf)?;
    let persistent = match head.version {
        Version::Http11 => !head.connection.close,
        Version::Http10 => head.connection.keep_alive && !head.connection.close,
    };
    head.keep_alive = persistent
        && status != 101
        && !matches!(
            head.framing,
            ResponseFraming::CloseDelimited | ResponseFraming::Tunnel
        );
    Ok(())
}
