//! Request heads (RFC 9112 §3, RFC 9110 §7.2, §9–10): the request line, the request-target and
//! its four forms, Host, and the request's derived semantics.
//!
//! Owns: [`parse_request`] and [`RequestHead`]: method token, target form checked against the
//! method, exact version, Host presence/syntax/agreement with the target, request framing,
//! keep-alive, `Expect: 100-continue` and the upgrade request. Must not: do IO, allocate, keep a
//! reference to the buffer (a head is spans plus flags), or decide routing, header rewriting or
//! what to answer — it only says what the request is, or why it must be refused.

use std::net::Ipv6Addr;

use super::error::HttpError;
use super::fields::{parse_header_section, Cursor, FieldKind, Headers, Span, Stop};
use super::framing::{content_length, transfer_encoding, RequestFraming};
use super::hop::{connection_options, ConnectionOptions};
use super::limits::Limits;
use super::response::ResponseContext;
use super::syntax::{self, is_protocol, parse_decimal, List, HOST, TARGET, TCHAR};
use super::{Status, Version};

/// The request method. Methods are case-sensitive tokens (RFC 9110 §9.1): `get` is a valid
/// method, just not `GET`; any token is accepted and unknown ones are [`Method::Other`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Method {
    Get,
    Head,
    Post,
    Put,
    Delete,
    Connect,
    Options,
    Trace,
    Patch,
    /// Any other token; read it with [`RequestHead::method_bytes`].
    Other,
}

impl Method {
    /// Classifies a method token (case-sensitively).
    pub fn from_bytes(token: &[u8]) -> Method {
        match token {
            b"GET" => Method::Get,
            b"HEAD" => Method::Head,
            b"POST" => Method::Post,
            b"PUT" => Method::Put,
            b"DELETE" => Method::Delete,
            b"CONNECT" => Method::Connect,
            b"OPTIONS" => Method::Options,
            b"TRACE" => Method::Trace,
            b"PATCH" => Method::Patch,
            _ => Method::Other,
        }
    }
}

/// The form of the request-target (RFC 9112 §3.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TargetForm {
    /// `/path?query` — any method but CONNECT.
    Origin,
    /// `http://authority/path?query` — any method but CONNECT; only `http` and `https`.
    Absolute,
    /// `host:port` — CONNECT only, and CONNECT only uses it.
    Authority,
    /// `*` — OPTIONS only.
    Asterisk,
}

/// The scheme of an absolute-form target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scheme {
    Http,
    Https,
}

impl Scheme {
    fn default_port(self) -> u16 {
        match self {
            Scheme::Http => 80,
            Scheme::Https => 443,
        }
    }
}

/// A parsed, validated request head. It holds spans into the buffer it was parsed from: pass
/// that same buffer (slice) to the accessors that take `buf`.
#[derive(Debug, Clone)]
pub struct RequestHead {
    method: Method,
    method_span: Span,
    target: Span,
    form: TargetForm,
    scheme: Option<Scheme>,
    target_authority: Span,
    path: Span,
    version: Version,
    headers: Headers,
    host: Option<Span>,
    framing: RequestFraming,
    connection: ConnectionOptions,
    keep_alive: bool,
    expect_continue: bool,
    upgrade: bool,
}

impl RequestHead {
    /// An empty head for [`parse`](Self::parse). Keep one per connection and reuse it: it
    /// embeds the fixed [`Headers`] table, so reuse avoids initialising and moving it per
    /// request.
    pub const fn new() -> RequestHead {
        RequestHead {
            method: Method::Other,
            method_span: Span::EMPTY,
            target: Span::EMPTY,
            form: TargetForm::Origin,
            scheme: None,
            target_authority: Span::EMPTY,
            path: Span::EMPTY,
            version: Version::Http11,
            headers: Headers::new(),
            host: None,
            framing: RequestFraming::None,
            connection: ConnectionOptions {
                close: false,
                keep_alive: false,
                upgrade: false,
                count: 0,
            },
            keep_alive: false,
            expect_continue: false,
            upgrade: false,
        }
    }

    /// [`parse_request`] into `self`, reusing its storage: `Ok(Some(consumed))` when the head is
    /// complete, `Ok(None)` when more bytes are needed. After `Ok(None)` or an error the head's
    /// contents are unspecified (but safe to read).
    pub fn parse(&mut self, buf: &[u8], limits: &Limits) -> Result<Option<usize>, HttpError> {
        self.reset();
        match parse_into(buf, limits, self) {
            Ok(consumed) => Ok(Some(consumed)),
            Err(Stop::Incomplete) => Ok(None),
            Err(Stop::Error(e)) => Err(e),
        }
    }

    fn reset(&mut self) {
        self.method = Method::Other;
        self.method_span = Span::EMPTY;
        self.target = Span::EMPTY;
        self.form = TargetForm::Origin;
        self.scheme = None;
        self.target_authority = Span::EMPTY;
        self.path = Span::EMPTY;
        self.version = Version::Http11;
        self.headers.clear();
        self.host = None;
        self.framing = RequestFraming::None;
        self.connection = ConnectionOptions::default();
        self.keep_alive = false;
        self.expect_continue = false;
        self.upgrade = false;
    }

    pub fn method(&self) -> Method {
        self.method
    }

    /// The method token as sent.
    pub fn method_bytes<'b>(&self, buf: &'b [u8]) -> &'b [u8] {
        self.method_span.get(buf)
    }

    /// The request-target as sent.
    pub fn target<'b>(&self, buf: &'b [u8]) -> &'b [u8] {
        self.target.get(buf)
    }

    pub fn target_form(&self) -> TargetForm {
        self.form
    }

    /// The scheme of an absolute-form target.
    pub fn scheme(&self) -> Option<Scheme> {
        self.scheme
    }

    /// The authority (`host[:port]`) of an absolute-form or authority-form target.
    pub fn target_authority<'b>(&self, buf: &'b [u8]) -> Option<&'b [u8]> {
        match self.form {
            TargetForm::Absolute | TargetForm::Authority => Some(self.target_authority.get(buf)),
            TargetForm::Origin | TargetForm::Asterisk => None,
        }
    }

    /// Path and query: the whole target in origin-form, the part after the authority in
    /// absolute-form (possibly empty or starting with `?`: the proxy sends `/` first then),
    /// empty for the other forms.
    pub fn path_and_query<'b>(&self, buf: &'b [u8]) -> &'b [u8] {
        self.path.get(buf)
    }

    pub fn version(&self) -> Version {
        self.version
    }

    /// Every field line, in order.
    pub fn headers(&self) -> &Headers {
        &self.headers
    }

    /// The Host field value (validated), if the request has one.
    pub fn host<'b>(&self, buf: &'b [u8]) -> Option<&'b [u8]> {
        self.host.map(|s| s.get(buf))
    }

    /// The authority the request is for: the target's for absolute- and authority-form (Host
    /// agrees with it), otherwise Host. `None` only for an HTTP/1.0 request without Host.
    pub fn authority<'b>(&self, buf: &'b [u8]) -> Option<&'b [u8]> {
        self.target_authority(buf).or_else(|| self.host(buf))
    }

    pub fn framing(&self) -> RequestFraming {
        self.framing
    }

    /// Whether the client connection may carry another request after this one: HTTP/1.1 unless
    /// `Connection: close`; HTTP/1.0 only with `Connection: keep-alive` (RFC 9112 §9.3).
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

    /// `Expect: 100-continue` in an HTTP/1.1 request (HTTP/1.0 expectations are ignored,
    /// RFC 9110 §10.1.1). The proxy answers 100 only if the framing announces a body.
    pub fn expects_continue(&self) -> bool {
        self.expect_continue
    }

    /// An HTTP/1.1 request with `Connection: upgrade` and a non-empty Upgrade (RFC 9110 §7.8).
    pub fn is_upgrade(&self) -> bool {
        self.upgrade
    }

    /// The protocols of Upgrade, in order of preference; empty unless [`Self::is_upgrade`].
    pub fn upgrade_protocols<'h, 'b: 'h>(
        &'h self,
        buf: &'b [u8],
    ) -> impl Iterator<Item = &'b [u8]> + 'h {
        let upgrade = self.upgrade;
        self.headers
            .values(FieldKind::Upgrade, buf)
            .filter(move |_| upgrade)
            .flat_map(List::new)
    }

    /// See [`Headers::is_hop_by_hop`].
    pub fn is_hop_by_hop(&self, index: usize) -> bool {
        self.headers.is_hop_by_hop(index)
    }

    /// What [`parse_response`](super::parse_response) needs to know about this request.
    pub fn response_context(&self) -> ResponseContext {
        ResponseContext {
            method: self.method,
            upgrade_requested: self.upgrade,
        }
    }
}

impl Default for RequestHead {
    fn default() -> Self {
        RequestHead::new()
    }
}

/// Parses one request head from the start of `buf`.
///
/// `Incomplete` means every byte so far is acceptable and the head is not finished; call again
/// with more bytes (the same start). `Complete { head, consumed }`: the head is the first
/// `consumed` bytes; the body, if any, and then the next pipelined request follow. Any `Err`
/// means: answer `err.status()`, do not forward, close.
///
/// Empty lines before the request line are skipped (RFC 9112 §2.2) and counted in `consumed`.
pub fn parse_request(buf: &[u8], limits: &Limits) -> Result<Status<RequestHead>, HttpError> {
    let mut head = RequestHead::new();
    match parse_into(buf, limits, &mut head) {
        Ok(consumed) => Ok(Status::Complete { head, consumed }),
        Err(Stop::Incomplete) => Ok(Status::Incomplete),
        Err(Stop::Error(e)) => Err(e),
    }
}

fn parse_into(buf: &[u8], limits: &Limits, head: &mut RequestHead) -> Result<usize, Stop> {
    let mut cur = Cursor::new(
        buf,
        limits.request_line() + 2,
        HttpError::RequestLineTooLong,
    );
    request_line(&mut cur, head)?;
    cur.limit = cur.pos + limits.header_block();
    cur.over = HttpError::HeaderBlockTooLarge;
    parse_header_section(&mut cur, limits.headers(), &mut head.headers)?;
    semantics(head, buf)?;
    Ok(cur.pos)
}

fn request_line(cur: &mut Cursor<'_>, head: &mut RequestHead) -> Result<(), Stop> {
    // RFC 9112 §2.2: ignore empty lines (CRLF) before the request line.
    loop {
        match cur.peek()? {
            b'\r' => {
                if cur.at(1)? != b'\n' {
                    return Err(HttpError::InvalidMethod.into());
                }
                cur.pos += 2;
            }
            b'\n' => return Err(HttpError::BareLf.into()),
            _ => break,
        }
    }

    let method_start = cur.pos;
    let method_len = cur.run(TCHAR);
    match cur.peek()? {
        b' ' | b'\t' if method_len == 0 => return Err(HttpError::EmptyMethod.into()),
        b' ' => {}
        b'\t' | b'\r' => return Err(HttpError::MalformedRequestLine.into()),
        b'\n' => return Err(HttpError::BareLf.into()),
        _ => return Err(HttpError::InvalidMethod.into()),
    }
    head.method_span = Span::new(method_start, cur.pos);
    head.method = Method::from_bytes(head.method_span.get(cur.buf));
    cur.pos += 1;

    let target_start = cur.pos;
    let target_len = cur.run(TARGET);
    match cur.peek()? {
        b' ' if target_len > 0 => {}
        b' ' | b'\t' => return Err(HttpError::MalformedRequestLine.into()),
        b'\r' | b'\n' if target_len == 0 => return Err(HttpError::MalformedRequestLine.into()),
        b'\r' => {
            return Err(if cur.at(1)? == b'\n' {
                HttpError::Http09
            } else {
                HttpError::InvalidTarget
            }
            .into())
        }
        b'\n' => return Err(HttpError::Http09.into()),
        _ => return Err(HttpError::InvalidTarget.into()),
    }
    head.target = Span::new(target_start, cur.pos);
    cur.pos += 1;

    let (major, minor) = http_version(cur, |i, b| {
        if i == 0 && matches!(b, b' ' | b'\t' | b'\r' | b'\n') {
            HttpError::MalformedRequestLine
        } else {
            HttpError::InvalidVersion
        }
    })?;
    match cur.peek()? {
        b' ' | b'\t' => return Err(HttpError::MalformedRequestLine.into()),
        _ => cur.crlf(HttpError::InvalidVersion)?,
    }
    head.version = match (major, minor) {
        (1, 0) => Version::Http10,
        (1, 1) => Version::Http11,
        _ => return Err(HttpError::UnsupportedVersion.into()),
    };
    // The target's form is checked once the version is known to be one we speak, so that e.g.
    // the h2 preface `PRI * HTTP/2.0` is a 505, not a 400.
    classify_target(head, cur.buf)?;
    Ok(())
}

/// Reads `HTTP/` DIGIT `.` DIGIT (case-sensitive, RFC 9112 §2.3) and returns the two digits;
/// `mismatch(index, byte)` names the error for the first byte that does not fit.
pub(crate) fn http_version(
    cur: &mut Cursor<'_>,
    mismatch: impl Fn(usize, u8) -> HttpError,
) -> Result<(u8, u8), Stop> {
    let mut digits = [0u8; 2];
    for (i, &expected) in b"HTTP/0.0".iter().enumerate() {
        let b = cur.at(i)?;
        let fits = match i {
            5 => b.is_ascii_digit(),
            7 => b.is_ascii_digit(),
            _ => b == expected,
        };
        if !fits {
            return Err(mismatch(i, b).into());
        }
        if i == 5 {
            digits[0] = b - b'0';
        } else if i == 7 {
            digits[1] = b - b'0';
        }
    }
    cur.pos += 8;
    Ok((digits[0], digits[1]))
}

/// Every `%` starts a `%` HEXDIG HEXDIG escape (RFC 3986 §2.1).
fn escapes_are_valid(target: &[u8]) -> bool {
    let mut rest = target;
    while let Some(i) = rest.iter().position(|&b| b == b'%') {
        match (rest.get(i + 1), rest.get(i + 2)) {
            (Some(a), Some(b)) if a.is_ascii_hexdigit() && b.is_ascii_hexdigit() => {
                rest = rest.get(i + 3..).unwrap_or(&[]);
            }
            _ => return false,
        }
    }
    true
}

/// A validated `host [ ":" port ]`: `host_len` bytes of host, then the port if present.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Authority {
    pub(crate) host_len: usize,
    pub(crate) port: Option<u16>,
}

/// Parses `uri-host [ ":" port ]` strictly: the host is an IPv6 literal in brackets (no zone, no
/// IPvFuture) or a name/IPv4 of unreserved characters with no empty label at the start or in
/// the middle; the port, if its colon is present, is 1–5 digits in 1..=65535.
pub(crate) fn parse_authority(a: &[u8]) -> Option<Authority> {
    let host_len = if a.first() == Some(&b'[') {
        let close = a.iter().position(|&b| b == b']')?;
        let literal = std::str::from_utf8(a.get(1..close)?).ok()?;
        literal.parse::<Ipv6Addr>().ok()?;
        close + 1
    } else {
        let n = syntax::run(a, HOST);
        let host = a.get(..n)?;
        if n == 0 || host.first() == Some(&b'.') || host.windows(2).any(|w| w == b"..") {
            return None;
        }
        n
    };
    let port = match a.get(host_len..)?.split_first() {
        None => None,
        Some((b':', digits)) => {
            if digits.is_empty() || digits.len() > 5 {
                return None;
            }
            let n = u16::try_from(parse_decimal(digits).ok()?).ok()?;
            if n == 0 {
                return None;
            }
            Some(n)
        }
        Some(_) => return None,
    };
    Some(Authority { host_len, port })
}

/// Splits `scheme "://" authority path-abempty [ "?" query ]` for `http`/`https`.
fn parse_absolute(t: &[u8]) -> Result<(Scheme, usize, usize), HttpError> {
    let colon = t
        .iter()
        .position(|&b| b == b':')
        .ok_or(HttpError::InvalidTarget)?;
    let scheme = t.get(..colon).unwrap_or(&[]);
    let scheme = if scheme.eq_ignore_ascii_case(b"http") {
        Scheme::Http
    } else if scheme.eq_ignore_ascii_case(b"https") {
        Scheme::Https
    } else {
        return Err(HttpError::InvalidTarget);
    };
    if t.get(colon + 1..colon + 3) != Some(&b"//"[..]) {
        return Err(HttpError::InvalidTarget);
    }
    let auth_start = colon + 3;
    let rest = t.get(auth_start..).unwrap_or(&[]);
    let auth_len = rest
        .iter()
        .position(|&b| b == b'/' || b == b'?')
        .unwrap_or(rest.len());
    let authority = rest.get(..auth_len).unwrap_or(&[]);
    // No userinfo (RFC 9110 §4.2.4) and a valid, non-empty host (§4.2.1).
    if authority.contains(&b'@') {
        return Err(HttpError::InvalidTarget);
    }
    parse_authority(authority).ok_or(HttpError::InvalidTarget)?;
    Ok((scheme, auth_start, auth_start + auth_len))
}

/// Whether `target` is a complete authority-form `host:port`.
fn is_authority_form(target: &[u8]) -> bool {
    parse_authority(target).is_some_and(|a| a.port.is_some())
}

fn classify_target(head: &mut RequestHead, buf: &[u8]) -> Result<(), HttpError> {
    let t = head.target.get(buf);
    let base = head.target.start();
    if !escapes_are_valid(t) {
        return Err(HttpError::InvalidTarget);
    }
    let connect = head.method == Method::Connect;
    if t == b"*" {
        if head.method != Method::Options {
            return Err(HttpError::TargetFormMismatch);
        }
        head.form = TargetForm::Asterisk;
    } else if t.first() == Some(&b'/') {
        if connect {
            return Err(HttpError::TargetFormMismatch);
        }
        head.form = TargetForm::Origin;
        head.path = head.target;
    } else if connect {
        if t.windows(3).any(|w| w == b"://") {
            return Err(HttpError::TargetFormMismatch);
        }
        if !is_authority_form(t) {
            return Err(HttpError::InvalidTarget);
        }
        head.form = TargetForm::Authority;
        head.target_authority = head.target;
    } else if t.windows(3).any(|w| w == b"://") {
        let (scheme, auth_start, auth_end) = parse_absolute(t)?;
        head.form = TargetForm::Absolute;
        head.scheme = Some(scheme);
        head.target_authority = Span::new(base + auth_start, base + auth_end);
        head.path = Span::new(base + auth_end, head.target.end());
    } else if is_authority_form(t) {
        return Err(HttpError::TargetFormMismatch);
    } else {
        return Err(HttpError::InvalidTarget);
    }
    Ok(())
}

/// Host agrees with the target authority: same host (ASCII case-insensitive) and same port,
/// where a missing port means the scheme's default (absolute-form) or "any" on the Host side
/// (authority-form, which always has a port).
fn same_authority(
    host: &[u8],
    host_auth: Authority,
    target: &[u8],
    scheme: Option<Scheme>,
) -> bool {
    let Some(target_auth) = parse_authority(target) else {
        return false;
    };
    let host_name = host.get(..host_auth.host_len).unwrap_or(&[]);
    let target_name = target.get(..target_auth.host_len).unwrap_or(&[]);
    if !host_name.eq_ignore_ascii_case(target_name) {
        return false;
    }
    match scheme {
        Some(scheme) => {
            let default = scheme.default_port();
            host_auth.port.unwrap_or(default) == target_auth.port.unwrap_or(default)
        }
        None => host_auth.port.is_none() || host_auth.port == target_auth.port,
    }
}

/// The checks that need the whole head, in the order docs/http1.md lists them: framing, Host,
/// Connection, Upgrade, Expect.
fn semantics(head: &mut RequestHead, buf: &[u8]) -> Result<(), HttpError> {
    let mut hosts = 0usize;
    let mut content_lengths = 0usize;
    let mut transfer_encodings = 0usize;
    let mut expects = 0usize;
    let mut upgrades = 0usize;
    for field in head.headers.slice() {
        match field.kind {
            FieldKind::Host => {
                hosts += 1;
                if head.host.is_none() {
                    head.host = Some(field.value);
                }
            }
            FieldKind::ContentLength => content_lengths += 1,
            FieldKind::TransferEncoding => transfer_encodings += 1,
            FieldKind::Expect => expects += 1,
            FieldKind::Upgrade => upgrades += 1,
            _ => {}
        }
    }

    // Framing (RFC 9112 §6.1, §6.3).
    head.framing = if transfer_encodings > 0 {
        if head.version == Version::Http10 {
            return Err(HttpError::TransferEncodingInHttp10);
        }
        if content_lengths > 0 {
            return Err(HttpError::ContentLengthWithTransferEncoding);
        }
        transfer_encoding(&head.headers, buf)?;
        RequestFraming::Chunked
    } else if content_lengths > 0 {
        RequestFraming::ContentLength(content_length(&head.headers, buf)?.unwrap_or(0))
    } else {
        RequestFraming::None
    };
    if head.method == Method::Connect
        && !matches!(
            head.framing,
            RequestFraming::None | RequestFraming::ContentLength(0)
        )
    {
        return Err(HttpError::ConnectWithBody);
    }

    // Host (RFC 9112 §3.2, RFC 9110 §7.2).
    if hosts > 1 {
        return Err(HttpError::MultipleHost);
    }
    match head.host {
        None if head.version == Version::Http11 => return Err(HttpError::MissingHost),
        None => {}
        Some(span) => {
            let host = span.get(buf);
            let parsed = parse_authority(host).ok_or(HttpError::InvalidHost)?;
            if let Some(target) = head.target_authority(buf) {
                if !same_authority(host, parsed, target, head.scheme) {
                    return Err(HttpError::HostMismatch);
                }
            }
        }
    }

    // Connection (RFC 9110 §7.6.1, RFC 9112 §9.3).
    head.connection = connection_options(&mut head.headers, buf)?;
    head.keep_alive = match head.version {
        Version::Http11 => !head.connection.close,
        Version::Http10 => head.connection.keep_alive && !head.connection.close,
    };

    // Upgrade (RFC 9110 §7.8): ignored in HTTP/1.0 and without the `upgrade` option.
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
    head.upgrade = head.version == Version::Http11 && head.connection.upgrade && protocols > 0;

    // Expect (RFC 9110 §10.1.1).
    if expects > 0 {
        let mut continue_ = false;
        for value in head.headers.values(FieldKind::Expect, buf) {
            for expectation in List::new(value) {
                if !expectation.eq_ignore_ascii_case(b"100-continue") {
                    return Err(HttpError::UnsupportedExpectation);
                }
                continue_ = true;
            }
        }
        head.expect_continue = continue_ && head.version == Version::Http11;
    }
    Ok(())
}
