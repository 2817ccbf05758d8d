//! Size and count limits of the HTTP/1.1 codec, with their defaults.
//!
//! Owns: [`Limits`], the one place where every bound the parsers enforce is named, defaulted and
//! documented, and the clamping that keeps any configured value safe for the parsers' `u32`
//! offsets and fixed-capacity tables. Must not: parse configuration files or know about routes —
//! the engine builds a `Limits` from its validated `Config` and passes it by reference.

/// How many field lines a [`Headers`](super::Headers) table can hold. [`Limits::max_headers`]
/// is clamped to this capacity; it sizes the table inside every parsed head (20 bytes a field).
pub const MAX_HEADERS_CAPACITY: usize = 128;

/// The largest byte count any size limit is clamped to (1 GiB). It keeps every offset the
/// parsers record inside a `u32`, whatever a caller configures.
pub const MAX_LIMIT_BYTES: usize = 1 << 30;

/// Bounds enforced while parsing heads and chunked bodies. Every field is public so the engine
/// can build one from configuration; out-of-range values are clamped, never trusted (see
/// [`Limits::validate`] for the check a configuration loader should run).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Longest request line (or response status line), CRLF excluded; empty lines the client sent
    /// before the request line count towards it. Exceeding it answers **414** (URI Too Long) for
    /// a request. Default 8 KiB.
    pub max_request_line: usize,
    /// Largest header section after the start line: every field line with its CRLF plus the final
    /// empty line. Exceeding it answers **431**. Default 16 KiB.
    pub max_header_block: usize,
    /// Most field lines in a header (or trailer) section. One more answers **431**. Default 100,
    /// clamped to [`MAX_HEADERS_CAPACITY`].
    pub max_headers: usize,
    /// Longest chunk-size line, chunk extensions included, CRLF excluded. Exceeding it answers
    /// **400**. Default 4 KiB.
    pub max_chunk_line: usize,
    /// Largest single chunk the decoder accepts. Exceeding it answers **413**. Default
    /// `u64::MAX`, i.e. only the arithmetic bound (a size that overflows `u64` is a **400**);
    /// the per-route body limit of the proxy is a separate, smaller check.
    pub max_chunk_size: u64,
    /// Largest trailer section (every trailer field line plus the final empty line). Exceeding it
    /// answers **431**. Default 8 KiB.
    pub max_trailer_block: usize,
}

impl Limits {
    /// The defaults documented on each field.
    pub const DEFAULT: Limits = Limits {
        max_request_line: 8 * 1024,
        max_header_block: 16 * 1024,
        max_headers: 100,
        max_chunk_line: 4 * 1024,
        max_chunk_size: u64::MAX,
        max_trailer_block: 8 * 1024,
    };

    /// Checks values a configuration loader should refuse rather than silently clamp: a zero
    /// where at least one byte or field must fit, or more than the hard capacities.
    pub fn validate(&self) -> Result<(), &'static str> {
        if self.max_request_line < 16 || self.max_request_line > MAX_LIMIT_BYTES {
            return Err("max_request_line must be between 16 bytes and 1 GiB");
        }
        if self.max_header_block < 2 || self.max_header_block > MAX_LIMIT_BYTES {
            return Err("max_header_block must be between 2 bytes and 1 GiB");
        }
        if self.max_headers == 0 || self.max_headers > MAX_HEADERS_CAPACITY {
            return Err("max_headers must be between 1 and 128");
        }
        if self.max_chunk_line == 0 || self.max_chunk_line > MAX_LIMIT_BYTES {
            return Err("max_chunk_line must be between 1 byte and 1 GiB");
        }
        if self.max_chunk_size == 0 {
            return Err("max_chunk_size must be at least 1");
        }
        if self.max_trailer_block < 2 || self.max_trailer_block > MAX_LIMIT_BYTES {
            return Err("max_trailer_block must be between 2 bytes and 1 GiB");
        }
        Ok(())
    }

    pub(crate) fn request_line(&self) -> usize {
        self.max_request_line.min(MAX_LIMIT_BYTES)
    }

    pub(crate) fn header_block(&self) -> usize {
        self.max_header_block.min(MAX_LIMIT_BYTES)
    }

    pub(crate) fn headers(&self) -> usize {
        self.max_headers.min(MAX_HEADERS_CAPACITY)
    }

    pub(crate) fn chunk_line(&self) -> usize {
        self.max_chunk_line.min(MAX_LIMIT_BYTES)
    }

    pub(crate) fn trailer_block(&self) -> usize {
        self.max_trailer_block.min(MAX_LIMIT_BYTES)
    }
}

impl Default for Limits {
    fn default() -> Self {
        Self::DEFAULT
    }
}
