//! Why a message was refused, and what to answer.
//!
//! Owns: [`HttpError`], one variant per rejection rule of the codec (docs/http1.md lists them
//! with their RFC sections), each with the status code a server answers when the rule is broken
//! by a request, and [`ResponseError`], the wrapper that makes an upstream's fault a 502 by type.
//! Must not: write responses, decide whether to close (every rejection closes the connection —
//! the proxy does that), or carry data from the message (errors are `Copy` and never echo input).

use std::fmt;

/// A message the codec refuses. Never forward a message that produced one: answer
/// [`status`](Self::status) (for a request) and close the connection.
///
/// Variants are fieldless so that matching, comparing and counting them is free; the reason text
/// is static.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum HttpError {
    // ---- limits ----
    /// The request line (with any empty lines before it) exceeds `max_request_line` (414).
    RequestLineTooLong,
    /// The header section exceeds `max_header_block` (431).
    HeaderBlockTooLarge,
    /// More field lines than `max_headers` (431).
    TooManyHeaders,

    // ---- line syntax ----
    /// A line ended with LF alone instead of CRLF (400).
    BareLf,
    /// A CR not followed by LF in a chunk-size line (400).
    BareCr,

    // ---- request line ----
    /// The request line starts with whitespace: the method is empty (400).
    EmptyMethod,
    /// The method contains a byte that is not a token character (400).
    InvalidMethod,
    /// The request line is not exactly `method SP target SP version`: a missing, doubled, tab
    /// or trailing separator (400).
    MalformedRequestLine,
    /// A request line with no HTTP version, i.e. an HTTP/0.9 request (400).
    Http09,
    /// The version is not `HTTP/` DIGIT `.` DIGIT, case-sensitively (400).
    InvalidVersion,
    /// A well-formed version other than HTTP/1.0 and HTTP/1.1 (505).
    UnsupportedVersion,
    /// The request-target has a forbidden byte (control, space, non-ASCII, `#`), a bad
    /// percent-escape, or fits none of the four forms (400).
    InvalidTarget,
    /// The request-target's form does not fit the method: authority-form without CONNECT,
    /// CONNECT without authority-form, `*` without OPTIONS (400).
    TargetFormMismatch,

    // ---- field lines ----
    /// Whitespace between the start line and the first field line (400).
    WhitespaceAfterStartLine,
    /// A field line starting with SP or HTAB: obsolete line folding (400).
    ObsFold,
    /// Whitespace between a field name and its colon (400).
    WhitespaceBeforeColon,
    /// An empty field name, a name with a non-token byte, or a line without a colon (400).
    InvalidHeaderName,
    /// A field value containing CR, NUL, DEL or another control other than HTAB (400).
    InvalidHeaderValue,

    // ---- Host ----
    /// An HTTP/1.1 request without Host (400).
    MissingHost,
    /// More than one Host field line (400).
    MultipleHost,
    /// A Host value that is not `host [ ":" port ]` with a strict host syntax (400).
    InvalidHost,
    /// Host disagrees with the authority of an absolute-form or authority-form target (400).
    HostMismatch,

    // ---- framing ----
    /// Both Content-Length and Transfer-Encoding (400).
    ContentLengthWithTransferEncoding,
    /// More than one Content-Length field line with the same value (400).
    DuplicateContentLength,
    /// More than one Content-Length field line with different values (400).
    ConflictingContentLength,
    /// A comma-separated list in Content-Length, even of equal values (400).
    ContentLengthList,
    /// A Content-Length value that is empty, signed, spaced or not all digits (400).
    InvalidContentLength,
    /// A Content-Length value larger than `u64::MAX` (400).
    ContentLengthOverflow,
    /// Transfer-Encoding in an HTTP/1.0 message (400).
    TransferEncodingInHttp10,
    /// A Transfer-Encoding value that is empty or not a list of codings, or `chunked` with
    /// parameters (400).
    InvalidTransferEncoding,
    /// `chunked` listed more than once (400).
    ChunkedTwice,
    /// Transfer-Encoding whose final coding is not `chunked` (400).
    ChunkedNotFinal,
    /// A transfer coding other than `chunked`, e.g. `gzip, chunked` (501).
    UnsupportedTransferCoding,

    // ---- connection management ----
    /// A Connection option that is not a token (400).
    InvalidConnection,
    /// More Connection options than the codec tracks (400).
    TooManyConnectionTokens,
    /// Connection names Host or Content-Length, fields that must reach every recipient (400).
    ConnectionNamesEndToEnd,
    /// An Upgrade value that is not a list of `protocol[/version]` tokens (400).
    InvalidUpgrade,
    /// An Expect value other than `100-continue` (417).
    UnsupportedExpectation,
    /// A CONNECT request announcing a body (400).
    ConnectWithBody,

    // ---- response head (always 502 towards the client) ----
    /// The status line exceeds `max_request_line` (502).
    StatusLineTooLong,
    /// The status line is not `HTTP-version SP status-code [SP reason]` (502).
    InvalidStatusLine,
    /// A status code that is not three digits in 100..=599 (502).
    InvalidStatusCode,
    /// A control character in the reason phrase (502).
    InvalidReasonPhrase,
    /// A 101 response to a request that did not ask to upgrade (502).
    UnexpectedSwitchingProtocols,
    /// A 101 response without an Upgrade field (502).
    MissingUpgrade,
    /// Transfer-Encoding, or a non-zero Content-Length, on a 1xx or 204 response (502).
    FramingOnNoContent,

    // ---- chunked body ----
    /// A chunk size that is empty or not hexadecimal (400).
    InvalidChunkSize,
    /// A chunk size that overflows `u64` (400).
    ChunkSizeOverflow,
    /// A chunk larger than `max_chunk_size` (413).
    ChunkTooLarge,
    /// A chunk extension that is not `;name[=token|quoted-string]` (400).
    InvalidChunkExtension,
    /// A chunk-size line longer than `max_chunk_line` (400).
    ChunkLineTooLong,
    /// Chunk data not followed by CRLF (400).
    MissingChunkCrlf,
    /// The trailer section exceeds `max_trailer_block` (431).
    TrailerBlockTooLarge,
    /// More trailer fields than `max_headers` (431).
    TooManyTrailers,
    /// A trailer field that controls framing, routing or the connection (400).
    ForbiddenTrailer,
    /// The connection ended before the body did (400).
    IncompleteBody,
}

impl HttpError {
    /// The status code to answer when this error comes from a client's request. Errors that only
    /// a response can produce return 502; use [`ResponseError`] for upstream faults.
    pub const fn status(self) -> u16 {
        use HttpError::*;
        match self {
            RequestLineTooLong => 414,
            HeaderBlockTooLarge | TooManyHeaders | TrailerBlockTooLarge | TooManyTrailers => 431,
            UnsupportedVersion => 505,
            UnsupportedTransferCoding => 501,
            UnsupportedExpectation => 417,
            ChunkTooLarge => 413,
            StatusLineTooLong
            | InvalidStatusLine
            | InvalidStatusCode
            | InvalidReasonPhrase
            | UnexpectedSwitchingProtocols
            | MissingUpgrade
            | FramingOnNoContent => 502,
            _ => 400,
        }
    }

    /// A short, static reason for logs and error bodies. It never contains message bytes.
    pub const fn reason(self) -> &'static str {
        use HttpError::*;
        match self {
            RequestLineTooLong => "request line too long",
            HeaderBlockTooLarge => "header section too large",
            TooManyHeaders => "too many header fields",
            BareLf => "line ends with a bare LF",
            BareCr => "bare CR in a chunk line",
            EmptyMethod => "empty method",
            InvalidMethod => "invalid method",
            MalformedRequestLine => "malformed request line",
            Http09 => "HTTP/0.9 request",
            InvalidVersion => "invalid HTTP version",
            UnsupportedVersion => "unsupported HTTP version",
            InvalidTarget => "invalid request target",
            TargetFormMismatch => "request target form does not fit the method",
            WhitespaceAfterStartLine => "whitespace before the first header field",
            ObsFold => "obsolete line folding",
            WhitespaceBeforeColon => "whitespace between field name and colon",
            InvalidHeaderName => "invalid header field name",
            InvalidHeaderValue => "invalid header field value",
            MissingHost => "missing Host",
            MultipleHost => "multiple Host fields",
            InvalidHost => "invalid Host",
            HostMismatch => "Host does not match the target authority",
            ContentLengthWithTransferEncoding => "both Content-Length and Transfer-Encoding",
            DuplicateContentLength => "duplicate Content-Length",
            ConflictingContentLength => "conflicting Content-Length",
            ContentLengthList => "Content-Length is a list",
            InvalidContentLength => "invalid Content-Length",
            ContentLengthOverflow => "Content-Length overflows",
            TransferEncodingInHttp10 => "Transfer-Encoding in HTTP/1.0",
            InvalidTransferEncoding => "invalid Transfer-Encoding",
            ChunkedTwice => "chunked applied more than once",
            ChunkedNotFinal => "chunked is not the final transfer coding",
            UnsupportedTransferCoding => "unsupported transfer coding",
            InvalidConnection => "invalid Connection option",
            TooManyConnectionTokens => "too many Connection options",
            ConnectionNamesEndToEnd => "Connection names an end-to-end field",
            InvalidUpgrade => "invalid Upgrade",
            UnsupportedExpectation => "unsupported expectation",
            ConnectWithBody => "CONNECT with a body",
            StatusLineTooLong => "status line too long",
            InvalidStatusLine => "malformed status line",
            InvalidStatusCode => "invalid status code",
            InvalidReasonPhrase => "invalid reason phrase",
            UnexpectedSwitchingProtocols => "101 without an upgrade request",
            MissingUpgrade => "101 without Upgrade",
            FramingOnNoContent => "framing fields on a response without content",
            InvalidChunkSize => "invalid chunk size",
            ChunkSizeOverflow => "chunk size overflows",
            ChunkTooLarge => "chunk too large",
            InvalidChunkExtension => "invalid chunk extension",
            ChunkLineTooLong => "chunk-size line too long",
            MissingChunkCrlf => "chunk data not followed by CRLF",
            TrailerBlockTooLarge => "trailer section too large",
            TooManyTrailers => "too many trailer fields",
            ForbiddenTrailer => "forbidden trailer field",
            IncompleteBody => "connection closed before the end of the body",
        }
    }
}

impl fmt::Display for HttpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.reason())
    }
}

impl std::error::Error for HttpError {}

/// An upstream's response (head or body) broke a rule. Whatever the cause, the client gets
/// [`ResponseError::STATUS`] (502) if nothing of the response was sent yet, and the upstream
/// connection is discarded, never pooled (RFC 9112 §6.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ResponseError(pub HttpError);

impl ResponseError {
    /// Bad Gateway.
    pub const STATUS: u16 = 502;

    /// Always 502.
    pub const fn status(self) -> u16 {
        Self::STATUS
    }

    /// The rule the response broke.
    pub const fn cause(self) -> HttpError {
        self.0
    }
}

impl fmt::Display for ResponseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid upstream response: {}", self.0.reason())
    }
}

impl std::error::Error for ResponseError {}

impl From<HttpError> for ResponseError {
    fn from(e: HttpError) -> Self {
        ResponseError(e)
    }
}
