//! Field lines (RFC 9112 §5, RFC 9110 §5): the strict tokenizer shared by request heads, response
//! heads and chunked trailer sections, and the fixed-capacity [`Headers`] table it fills.
//!
//! Owns: [`Span`] (an offset range into the caller's buffer), [`Headers`] and its iteration, the
//! classification of field names the codec cares about, and the byte-level rules of a field line
//! (token name, colon with no whitespace before it, value bytes, CRLF, no obs-fold). Also the
//! bounded [`Cursor`] every head parser walks the buffer with. Must not: interpret field values
//! (request.rs, response.rs, framing.rs and hop.rs do), allocate, or copy field bytes.

use std::fmt;
use std::ops::Range;

use super::error::HttpError;
use super::limits::MAX_HEADERS_CAPACITY;
use super::syntax::{self, is_ws, TCHAR, VALUE};

/// A byte range in the buffer a head was parsed from. Spans are relative to the slice passed to
/// the parser, so a pipelined request parsed from `&buf[n..]` must be read with `&buf[n..]`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Span {
    start: u32,
    end: u32,
}

impl Span {
    /// The empty span at offset 0.
    pub const EMPTY: Span = Span { start: 0, end: 0 };

    /// Callers keep `start <= end <= u32::MAX`: every parser works inside a window clamped to
    /// [`MAX_LIMIT_BYTES`](super::MAX_LIMIT_BYTES) (times a small factor).
    pub(crate) fn new(start: usize, end: usize) -> Span {
        let start = u32::try_from(start).unwrap_or(u32::MAX);
        let end = u32::try_from(end).unwrap_or(u32::MAX).max(start);
        Span { start, end }
    }

    pub fn start(self) -> usize {
        self.start as usize
    }

    pub fn end(self) -> usize {
        self.end as usize
    }

    pub fn len(self) -> usize {
        (self.end - self.start) as usize
    }

    pub fn is_empty(self) -> bool {
        self.start == self.end
    }

    pub fn range(self) -> Range<usize> {
        self.start()..self.end()
    }

    /// The bytes of this span in `buf` (empty if `buf` is not the buffer it came from and is too
    /// short — never a panic).
    pub fn get(self, buf: &[u8]) -> &[u8] {
        buf.get(self.range()).unwrap_or(&[])
    }
}

/// Field names with a meaning to the codec or the proxy, recognised once while tokenizing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FieldKind {
    Other,
    Host,
    ContentLength,
    TransferEncoding,
    Connection,
    KeepAlive,
    ProxyConnection,
    ProxyAuthenticate,
    ProxyAuthorization,
    Te,
    Trailer,
    Upgrade,
    Expect,
}

impl FieldKind {
    pub(crate) fn of(name: &[u8]) -> FieldKind {
        use FieldKind::*;
        let candidates: &[(&[u8], FieldKind)] = match name.len() {
            2 => &[(b"te", Te)],
            4 => &[(b"host", Host)],
            6 => &[(b"expect", Expect)],
            7 => &[(b"trailer", Trailer), (b"upgrade", Upgrade)],
            10 => &[(b"connection", Connection), (b"keep-alive", KeepAlive)],
            14 => &[(b"content-length", ContentLength)],
            16 => &[(b"proxy-connection", ProxyConnection)],
            17 => &[(b"transfer-encoding", TransferEncoding)],
            18 => &[(b"proxy-authenticate", ProxyAuthenticate)],
            19 => &[(b"proxy-authorization", ProxyAuthorization)],
            _ => &[],
        };
        candidates
            .iter()
            .find(|(known, _)| name.eq_ignore_ascii_case(known))
            .map_or(Other, |&(_, kind)| kind)
    }

    /// Hop-by-hop whatever Connection says (hop.rs documents the list).
    pub(crate) fn is_hop_by_hop(self) -> bool {
        use FieldKind::*;
        matches!(
            self,
            Connection
                | KeepAlive
                | ProxyConnection
                | ProxyAuthenticate
                | ProxyAuthorization
                | Te
                | Trailer
                | TransferEncoding
                | Upgrade
        )
    }
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct Field {
    pub(crate) name: Span,
    pub(crate) value: Span,
    pub(crate) kind: FieldKind,
    pub(crate) hop_by_hop: bool,
}

impl Field {
    const EMPTY: Field = Field {
        name: Span::EMPTY,
        value: Span::EMPTY,
        kind: FieldKind::Other,
        hop_by_hop: false,
    };
}

/// The field lines of one head (or trailer section), in order, as spans into the parsed buffer.
/// Fixed capacity ([`MAX_HEADERS_CAPACITY`]), no allocation.
#[derive(Clone)]
pub struct Headers {
    fields: [Field; MAX_HEADERS_CAPACITY],
    len: usize,
}

impl Headers {
    pub(crate) const fn new() -> Headers {
        Headers {
            fields: [Field::EMPTY; MAX_HEADERS_CAPACITY],
            len: 0,
        }
    }

    pub(crate) fn clear(&mut self) {
        self.len = 0;
    }

    /// Number of field lines.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The field lines in order, as name/value bytes of `buf`.
    pub fn iter<'h, 'b>(&'h self, buf: &'b [u8]) -> HeaderIter<'h, 'b> {
        HeaderIter {
            fields: self.slice().iter(),
            buf,
        }
    }

    /// The field line at `index`.
    pub fn get<'b>(&self, index: usize, buf: &'b [u8]) -> Option<Header<'b>> {
        self.slice().get(index).map(|f| Header::new(f, buf))
    }

    /// The value of the first field named `name` (ASCII case-insensitive).
    pub fn find<'b>(&self, name: &[u8], buf: &'b [u8]) -> Option<&'b [u8]> {
        self.iter(buf)
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| h.value)
    }

    /// Whether the field line at `index` is hop-by-hop: one of the fixed list (see
    /// [`is_hop_by_hop_name`](super::is_hop_by_hop_name)) or named by a Connection option of
    /// this message. A proxy skips these when it copies the head.
    pub fn is_hop_by_hop(&self, index: usize) -> bool {
        self.slice().get(index).is_some_and(|f| f.hop_by_hop)
    }

    pub(crate) fn slice(&self) -> &[Field] {
        self.fields.get(..self.len).unwrap_or(&[])
    }

    pub(crate) fn slice_mut(&mut self) -> &mut [Field] {
        self.fields.get_mut(..self.len).unwrap_or(&mut [])
    }

    /// Values of every field of `kind`, in order.
    pub(crate) fn values<'h, 'b>(
        &'h self,
        kind: FieldKind,
        buf: &'b [u8],
    ) -> impl Iterator<Item = &'b [u8]> + 'h
    where
        'b: 'h,
    {
        self.slice()
            .iter()
            .filter(move |f| f.kind == kind)
            .map(move |f| f.value.get(buf))
    }

    /// Every Connection option as sent, in order, across all Connection fields.
    pub fn connection_tokens<'h, 'b: 'h>(
        &'h self,
        buf: &'b [u8],
    ) -> impl Iterator<Item = &'b [u8]> + 'h {
        self.values(FieldKind::Connection, buf)
            .flat_map(syntax::List::new)
    }

    pub(crate) fn push(&mut self, field: Field) -> bool {
        match self.fields.get_mut(self.len) {
            Some(slot) => {
                *slot = field;
                self.len += 1;
                true
            }
            None => false,
        }
    }
}

impl Default for Headers {
    fn default() -> Self {
        Headers::new()
    }
}

impl fmt::Debug for Headers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.slice().iter().map(|x| (x.name, x.value)))
            .finish()
    }
}

/// One field line, borrowed from the parsed buffer. The value has no leading or trailing
/// whitespace; it may contain obs-text (bytes ≥ 0x80), never a control other than HTAB.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header<'b> {
    pub name: &'b [u8],
    pub value: &'b [u8],
    /// See [`Headers::is_hop_by_hop`].
    pub hop_by_hop: bool,
}

impl<'b> Header<'b> {
    fn new(f: &Field, buf: &'b [u8]) -> Header<'b> {
        Header {
            name: f.name.get(buf),
            value: f.value.get(buf),
            hop_by_hop: f.hop_by_hop,
        }
    }
}

/// Iterator over [`Headers`]; see [`Headers::iter`].
pub struct HeaderIter<'h, 'b> {
    fields: std::slice::Iter<'h, Field>,
    buf: &'b [u8],
}

impl<'b> Iterator for HeaderIter<'_, 'b> {
    type Item = Header<'b>;

    fn next(&mut self) -> Option<Header<'b>> {
        self.fields.next().map(|f| Header::new(f, self.buf))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.fields.size_hint()
    }
}

impl ExactSizeIterator for HeaderIter<'_, '_> {}

/// Why a parser stopped early: it needs more bytes, or the input is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stop {
    Incomplete,
    Error(HttpError),
}

impl From<HttpError> for Stop {
    fn from(e: HttpError) -> Self {
        Stop::Error(e)
    }
}

/// A position in a buffer with a window: bytes at or past `limit` are refused with `over`.
/// Running out of bytes below the limit is [`Stop::Incomplete`]. Parsers built on it read left
/// to right with bounded lookahead, so a prefix of the input can only ever yield `Incomplete` or
/// the same error the whole input yields.
pub(crate) struct Cursor<'a> {
    pub(crate) buf: &'a [u8],
    pub(crate) pos: usize,
    pub(crate) limit: usize,
    pub(crate) over: HttpError,
}

impl<'a> Cursor<'a> {
    pub(crate) fn new(buf: &'a [u8], limit: usize, over: HttpError) -> Cursor<'a> {
        Cursor {
            buf,
            pos: 0,
            limit,
            over,
        }
    }

    /// The byte `ahead` bytes past the position.
    #[inline]
    pub(crate) fn at(&self, ahead: usize) -> Result<u8, Stop> {
        let i = self.pos.saturating_add(ahead);
        match self.buf.get(i) {
            None => Err(Stop::Incomplete),
            Some(_) if i >= self.limit => Err(Stop::Error(self.over)),
            Some(&b) => Ok(b),
        }
    }

    #[inline]
    pub(crate) fn peek(&self) -> Result<u8, Stop> {
        self.at(0)
    }

    /// Advances over bytes in `class` (inside the window) and returns how many.
    #[inline]
    pub(crate) fn run(&mut self, class: u8) -> usize {
        let end = self.buf.len().min(self.limit);
        let n = syntax::run_fast(self.buf.get(self.pos..end).unwrap_or(&[]), class);
        self.pos += n;
        n
    }

    /// Advances over SP/HTAB.
    #[inline]
    pub(crate) fn skip_ws(&mut self) {
        let end = self.buf.len().min(self.limit);
        let s = self.buf.get(self.pos..end).unwrap_or(&[]);
        self.pos += s.iter().position(|&b| !is_ws(b)).unwrap_or(s.len());
    }

    /// Consumes CRLF at the position, refusing a bare LF; `other` is the error for anything else.
    #[inline]
    pub(crate) fn crlf(&mut self, other: HttpError) -> Result<(), Stop> {
        match self.peek()? {
            b'\r' => {
                if self.at(1)? != b'\n' {
                    return Err(other.into());
                }
                self.pos += 2;
                Ok(())
            }
            b'\n' => Err(HttpError::BareLf.into()),
            _ => Err(other.into()),
        }
    }
}

/// Which section a field line belongs to; selects the errors for limits and leading whitespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Section {
    /// The header section after a start line.
    Header,
    /// A chunked trailer section.
    Trailer,
}

/// Parses field lines from `cur.pos` up to and including the empty line that ends the section,
/// handing each to `sink`. The cursor's window must already be the section's (its `over` error
/// is the section's size error). At most `max_count` fields.
pub(crate) fn parse_fields(
    cur: &mut Cursor<'_>,
    section: Section,
    max_count: usize,
    mut sink: impl FnMut(Field) -> Result<(), HttpError>,
) -> Result<(), Stop> {
    let mut count = 0usize;
    loop {
        match cur.peek()? {
            b'\r' => {
                if cur.at(1)? != b'\n' {
                    return Err(HttpError::InvalidHeaderName.into());
                }
                cur.pos += 2;
                return Ok(());
            }
            b'\n' => return Err(HttpError::BareLf.into()),
            b' ' | b'\t' => {
                return Err(if count == 0 && section == Section::Header {
                    HttpError::WhitespaceAfterStartLine
                } else {
                    HttpError::ObsFold
                }
                .into())
            }
            _ => {}
        }
        let name_start = cur.pos;
        if cur.run(TCHAR) == 0 {
            return Err(HttpError::InvalidHeaderName.into());
        }
        let name = Span::new(name_start, cur.pos);
        match cur.peek()? {
            b':' => cur.pos += 1,
            b' ' | b'\t' => {
                cur.skip_ws();
                return Err(if cur.peek()? == b':' {
                    HttpError::WhitespaceBeforeColon
                } else {
                    HttpError::InvalidHeaderName
                }
                .into());
            }
            b'\n' => return Err(HttpError::BareLf.into()),
            _ => return Err(HttpError::InvalidHeaderName.into()),
        }
        cur.skip_ws();
        let value_start = cur.pos;
        cur.run(VALUE);
        let raw = cur.buf.get(value_start..cur.pos).unwrap_or(&[]);
        let value_end = value_start + raw.iter().rposition(|&b| !is_ws(b)).map_or(0, |i| i + 1);
        cur.crlf(HttpError::InvalidHeaderValue)?;
        if count >= max_count {
            return Err(match section {
                Section::Header => HttpError::TooManyHeaders,
                Section::Trailer => HttpError::TooManyTrailers,
            }
            .into());
        }
        count += 1;
        let kind = FieldKind::of(name.get(cur.buf));
        sink(Field {
            name,
            value: Span::new(value_start, value_end),
            kind,
            hop_by_hop: kind.is_hop_by_hop(),
        })?;
    }
}

/// Parses a header section into `headers` (see [`parse_fields`]).
pub(crate) fn parse_header_section(
    cur: &mut Cursor<'_>,
    max_count: usize,
    headers: &mut Headers,
) -> Result<(), Stop> {
    parse_fields(cur, Section::Header, max_count, |field| {
        if headers.push(field) {
            Ok(())
        } else {
            Err(HttpError::TooManyHeaders)
        }
    })
}
