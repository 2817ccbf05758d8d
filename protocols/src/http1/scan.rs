//! Cheap, incremental detection of "a head (or trailer section) may be complete now".
//!
//! Owns: [`HeadScanner`], which remembers how far a growing buffer has been scanned so that a
//! peer trickling a head byte by byte costs O(n) in total instead of one full parse, O(n), per
//! read (O(n²)). Must not: validate anything beyond line endings and the total size — the
//! parsers decide; the scanner only says when calling them can be worth it.

use super::limits::Limits;

/// Tells the caller when to (re)run [`parse_request`](super::parse_request) or
/// [`parse_response`](super::parse_response) on a buffer that grows by appending.
///
/// [`should_parse`](Self::should_parse) becomes (and stays) `true` once the buffer holds an
/// empty line after a non-empty one, a bare LF, or more bytes than the head limits allow. In
/// each of those cases the parser returns `Complete` or an error, never `Incomplete`. While it
/// is `false`, parsing would return `Incomplete` or an error that the same bytes will still
/// produce later, so deferring it is safe. Parse once unconditionally after the first read if
/// early rejection of garbage (e.g. TLS sent to a plaintext port) matters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeadScanner {
    pos: usize,
    line_start: usize,
    seen_line: bool,
    ready: bool,
}

impl HeadScanner {
    /// A scanner for a request or response head (empty lines before the first line do not end
    /// it).
    pub const fn new() -> HeadScanner {
        HeadScanner {
            pos: 0,
            line_start: 0,
            seen_line: false,
            ready: false,
        }
    }

    /// A scanner for a section that may be empty (a trailer section: a lone CRLF ends it).
    pub(crate) const fn for_section() -> HeadScanner {
        HeadScanner {
            pos: 0,
            line_start: 0,
            seen_line: true,
            ready: false,
        }
    }

    /// Scans the bytes of `buf` not seen yet; `buf` must start with every byte passed before.
    pub fn should_parse(&mut self, buf: &[u8], limits: &Limits) -> bool {
        let limit = limits.request_line() + 2 + limits.header_block();
        self.scan(buf, limit)
    }

    pub(crate) fn scan(&mut self, buf: &[u8], limit: usize) -> bool {
        if self.ready {
            return true;
        }
        while let Some(offset) = buf
            .get(self.pos..)
            .and_then(|rest| rest.iter().position(|&b| b == b'\n'))
        {
            let lf = self.pos + offset;
            let crlf = lf
                .checked_sub(1)
                .and_then(|i| buf.get(i))
                .is_some_and(|&b| b == b'\r');
            let empty = crlf && lf - 1 == self.line_start;
            self.pos = lf + 1;
            self.line_start = lf + 1;
            if !crlf || (empty && self.seen_line) {
                self.ready = true;
                return true;
            }
            if !empty {
                self.seen_line = true;
            }
        }
        self.pos = self.pos.max(buf.len());
        if buf.len() > limit {
            self.ready = true;
        }
        self.ready
    }

    /// Starts over, for the next head on the same connection (after the caller removed the
    /// consumed bytes from its buffer).
    pub fn reset(&mut self) {
        *self = HeadScanner::new();
    }
}

impl Default for HeadScanner {
    fn default() -> Self {
        HeadScanner::new()
    }
}
