//! The streaming chunked transfer-coding decoder (RFC 9112 §7.1).
//!
//! Owns: [`ChunkedDecoder`], a byte-level state machine over chunk-size lines (hex size, strict
//! chunk-extension grammar, CRLF), chunk data and the CRLF after it, the last chunk, and the
//! trailer section, which it validates like header fields and hands back as one bounded block.
//! It accepts input split anywhere (one byte at a time included) and gives the same result.
//! Must not: copy or buffer body data (it reports which byte ranges of the caller's input are
//! data), allocate, or know where the bytes go.

use super::body::{Decoded, Event};
use super::error::HttpError;
use super::fields::{parse_fields, Cursor, FieldKind, Headers, Section, Stop};
use super::limits::Limits;
use super::scan::HeadScanner;
use super::syntax::{hex_value, is, is_tchar, is_ws, QDTEXT, VALUE};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Before the first hex digit of a chunk size.
    SizeStart,
    /// In the hex digits.
    Size,
    /// BWS after the size; only `;` may follow.
    SizeWs,
    /// After `;`, BWS then an extension name.
    ExtNameStart,
    ExtName,
    /// BWS after a name; `=` or `;` may follow.
    ExtNameWs,
    /// After `=`, BWS then a token or quoted string.
    ExtValueStart,
    ExtToken,
    ExtQuoted,
    /// After a backslash in a quoted string.
    ExtQuotedPair,
    /// After a closing quote.
    ExtQuoteEnd,
    /// BWS after an extension value; only `;` may follow.
    ExtWs,
    /// CR seen at the end of a chunk-size line.
    LineLf,
    Data,
    /// Chunk data done; CRLF must follow.
    DataCr,
    DataLf,
    /// After the last chunk's line: the trailer section, parsed as a whole.
    Trailers,
    Done,
}

/// Decodes one chunked body. Create one per message with the connection's [`Limits`].
///
/// Feed it the unconsumed input with [`decode`](Self::decode) and act on the event:
///
/// - [`Event::Data`]`(range)`: `input[range]` is body data to forward; `consumed == range.end`.
/// - [`Event::NeedMore`]: everything up to `consumed` was framing and is used up; keep
///   `input[consumed..]` (a partial trailer section stays unconsumed) and call again once more
///   bytes follow it.
/// - [`Event::End`]`{ trailers }`: the body is complete; `input[trailers]` is the trailer
///   section including its final CRLF (just `"\r\n"` without trailers), validated. Bytes after
///   `consumed` belong to the next message.
///
/// After an error the decoder keeps returning that error.
#[derive(Debug, Clone)]
pub struct ChunkedDecoder {
    state: State,
    size: u64,
    line: usize,
    failed: Option<HttpError>,
    trailer_scan: HeadScanner,
    max_chunk_line: usize,
    max_chunk_size: u64,
    max_trailer_block: usize,
    max_trailers: usize,
}

impl ChunkedDecoder {
    pub fn new(limits: &Limits) -> ChunkedDecoder {
        ChunkedDecoder {
            state: State::SizeStart,
            size: 0,
            line: 0,
            failed: None,
            trailer_scan: HeadScanner::for_section(),
            max_chunk_line: limits.chunk_line(),
            max_chunk_size: limits.max_chunk_size,
            max_trailer_block: limits.trailer_block(),
            max_trailers: limits.headers(),
        }
    }

    /// The last chunk and the trailer section have been decoded.
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Data bytes still expected in the current chunk (0 between chunks).
    pub fn chunk_remaining(&self) -> u64 {
        if self.state == State::Data {
            self.size
        } else {
            0
        }
    }

    /// Decodes from the start of `input` up to the next data range, the end of the body, or the
    /// end of `input`.
    pub fn decode(&mut self, input: &[u8]) -> Result<Decoded, HttpError> {
        if let Some(e) = self.failed {
            return Err(e);
        }
        let result = self.step(input);
        if let Err(e) = result {
            self.failed = Some(e);
        }
        result
    }

    fn step(&mut self, input: &[u8]) -> Result<Decoded, HttpError> {
        let mut pos = 0usize;
        loop {
            match self.state {
                State::Data => {
                    let available = input.len().saturating_sub(pos);
                    if available == 0 {
                        return Ok(need_more(pos));
                    }
                    let n = usize::try_from(self.size).map_or(available, |s| s.min(available));
                    self.size -= n as u64;
                    if self.size == 0 {
                        self.state = State::DataCr;
                    }
                    return Ok(Decoded {
                        consumed: pos + n,
                        event: Event::Data(pos..pos + n),
                    });
                }
                State::Trailers => return self.trailers(input, pos),
                State::Done => {
                    return Ok(Decoded {
                        consumed: pos,
                        event: Event::End { trailers: pos..pos },
                    })
                }
                _ => {}
            }
            let Some(&b) = input.get(pos) else {
                return Ok(need_more(pos));
            };
            pos += 1;
            self.byte(b)?;
        }
    }

    /// One byte of framing (every state but Data, Trailers and Done).
    fn byte(&mut self, b: u8) -> Result<(), HttpError> {
        use State::*;
        let in_line = !matches!(self.state, LineLf | DataCr | DataLf);
        if in_line {
            match b {
                b'\n' => return Err(HttpError::BareLf),
                b'\r' => {}
                _ => {
                    self.line += 1;
                    if self.line > self.max_chunk_line {
                        return Err(HttpError::ChunkLineTooLong);
                    }
                }
            }
        }
        let ext = HttpError::InvalidChunkExtension;
        self.state = match (self.state, b) {
            (SizeStart, _) => {
                let digit = hex_value(b).ok_or(HttpError::InvalidChunkSize)?;
                self.size = u64::from(digit);
                Size
            }
            (Size, b'\r') => LineLf,
            (Size, b';') => ExtNameStart,
            (Size, _) if is_ws(b) => SizeWs,
            (Size, _) => {
                let digit = hex_value(b).ok_or(HttpError::InvalidChunkSize)?;
                self.size = self
                    .size
                    .checked_mul(16)
                    .and_then(|s| s.checked_add(u64::from(digit)))
                    .ok_or(HttpError::ChunkSizeOverflow)?;
                if self.size > self.max_chunk_size {
                    return Err(HttpError::ChunkTooLarge);
                }
                Size
            }
            (SizeWs, b';') => ExtNameStart,
            (SizeWs, _) if is_ws(b) => SizeWs,
            (SizeWs, _) => return Err(HttpError::InvalidChunkSize),

            (ExtNameStart, _) if is_ws(b) => ExtNameStart,
            (ExtNameStart, _) if is_tchar(b) => ExtName,
            (ExtName, _) if is_tchar(b) => ExtName,
            (ExtName, _) if is_ws(b) => ExtNameWs,
            (ExtName | ExtNameWs, b'=') => ExtValueStart,
            (ExtName | ExtNameWs, b';') => ExtNameStart,
            (ExtName, b'\r') => LineLf,
            (ExtNameWs, _) if is_ws(b) => ExtNameWs,
            (ExtValueStart, _) if is_ws(b) => ExtValueStart,
            (ExtValueStart, b'"') => ExtQuoted,
            (ExtValueStart, _) if is_tchar(b) => ExtToken,
            (ExtToken, _) if is_tchar(b) => ExtToken,
            (ExtQuoted, b'"') => ExtQuoteEnd,
            (ExtQuoted, b'\\') => ExtQuotedPair,
            (ExtQuoted, _) if is(b, QDTEXT) => ExtQuoted,
            (ExtQuotedPair, _) if is(b, VALUE) => ExtQuoted,
            (ExtToken | ExtQuoteEnd | ExtWs, b';') => ExtNameStart,
            (ExtToken | ExtQuoteEnd | ExtWs, _) if is_ws(b) => ExtWs,
            (ExtToken | ExtQuoteEnd, b'\r') => LineLf,
            (
                ExtNameStart | ExtName | ExtNameWs | ExtValueStart | ExtToken | ExtQuoted
                | ExtQuotedPair | ExtQuoteEnd | ExtWs,
                _,
            ) => return Err(ext),

            (LineLf, b'\n') => {
                self.line = 0;
                if self.size == 0 {
                    Trailers
                } else {
                    Data
                }
            }
            (LineLf, _) => return Err(HttpError::BareCr),
            (DataCr, b'\r') => DataLf,
            (DataCr, b'\n') => return Err(HttpError::BareLf),
            (DataLf, b'\n') => {
                self.size = 0;
                SizeStart
            }
            (DataCr | DataLf, _) => return Err(HttpError::MissingChunkCrlf),
            (Data | Trailers | Done, _) => return Ok(()),
        };
        Ok(())
    }

    /// The trailer section starts at `input[start]`; it is consumed only once complete.
    fn trailers(&mut self, input: &[u8], start: usize) -> Result<Decoded, HttpError> {
        let section = input.get(start..).unwrap_or(&[]);
        if !self.trailer_scan.scan(section, self.max_trailer_block) {
            return Ok(need_more(start));
        }
        match trailer_section(section, self.max_trailer_block, self.max_trailers, None) {
            Ok(len) => {
                self.state = State::Done;
                Ok(Decoded {
                    consumed: start + len,
                    event: Event::End {
                        trailers: start..start + len,
                    },
                })
            }
            Err(Stop::Incomplete) => Ok(need_more(start)),
            Err(Stop::Error(e)) => Err(e),
        }
    }
}

fn need_more(consumed: usize) -> Decoded {
    Decoded {
        consumed,
        event: Event::NeedMore,
    }
}

/// Validates a trailer section at the start of `section` (field lines, then the empty line) and
/// returns its length. Trailer fields may not be the ones that frame, route or manage the
/// connection (RFC 9110 §6.5.1): Host, Content-Length, Transfer-Encoding, Connection and the
/// other hop-by-hop fields, Expect.
fn trailer_section(
    section: &[u8],
    max_block: usize,
    max_count: usize,
    mut headers: Option<&mut Headers>,
) -> Result<usize, Stop> {
    let mut cur = Cursor::new(section, max_block, HttpError::TrailerBlockTooLarge);
    parse_fields(&mut cur, Section::Trailer, max_count, |field| {
        if field.kind != FieldKind::Other {
            return Err(HttpError::ForbiddenTrailer);
        }
        if let Some(headers) = headers.as_deref_mut() {
            if !headers.push(field) {
                return Err(HttpError::TooManyTrailers);
            }
        }
        Ok(())
    })?;
    Ok(cur.pos)
}

/// Parses the trailer block that [`Event::End`] pointed at (`&input[trailers]`) into a
/// [`Headers`] table whose spans are relative to `block`, for a caller that wants to read the
/// trailer fields rather than pass them through.
pub fn parse_trailers(block: &[u8], limits: &Limits) -> Result<Headers, HttpError> {
    let mut headers = Headers::new();
    match trailer_section(
        block,
        limits.trailer_block(),
        limits.headers(),
        Some(&mut headers),
    ) {
        Ok(_) => Ok(headers),
        Err(Stop::Incomplete) => Err(HttpError::IncompleteBody),
        Err(Stop::Error(e)) => Err(e),
    }
}
