//! Reading and re-framing message bodies without buffering them.
//!
//! Owns: the decoder events ([`Decoded`], [`Event`]), the Content-Length tracker
//! ([`ContentLengthBody`]), [`BodyDecoder`] (one state machine per message body, whatever its
//! framing), and the encoders the proxy uses to re-frame a body it forwards: chunk-size lines
//! ([`ChunkHeader`]) and Content-Length values ([`ContentLengthValue`]), both on the stack.
//! Must not: copy body bytes, allocate, or do IO — decoders report ranges of the caller's input.

use std::ops::Range;

use super::chunked::ChunkedDecoder;
use super::error::HttpError;
use super::framing::{RequestFraming, ResponseFraming};
use super::limits::Limits;

/// One step of a body decoder over the caller's input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decoded {
    /// Bytes of the input used up by this step; drop them (after forwarding any data) and pass
    /// the rest, followed by newly read bytes, to the next call.
    pub consumed: usize,
    pub event: Event,
}

/// What a body decoder found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// Body data: forward `input[range]`. `range.end == consumed`.
    Data(Range<usize>),
    /// More input is needed.
    NeedMore,
    /// The body is complete. For a chunked body `input[trailers]` is the validated trailer
    /// section with its final CRLF (`"\r\n"` when there are no trailers); otherwise it is empty.
    /// Bytes after `consumed` belong to the next message.
    End { trailers: Range<usize> },
}

/// The remaining length of a Content-Length body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ContentLengthBody {
    remaining: u64,
}

impl ContentLengthBody {
    pub const fn new(length: u64) -> ContentLengthBody {
        ContentLengthBody { remaining: length }
    }

    pub fn remaining(&self) -> u64 {
        self.remaining
    }

    pub fn is_done(&self) -> bool {
        self.remaining == 0
    }

    /// Up to `remaining` bytes of `input` are data; once none remain, [`Event::End`].
    pub fn decode(&mut self, input: &[u8]) -> Decoded {
        if self.remaining == 0 {
            return Decoded {
                consumed: 0,
                event: Event::End { trailers: 0..0 },
            };
        }
        let n = usize::try_from(self.remaining).map_or(input.len(), |r| r.min(input.len()));
        if n == 0 {
            return Decoded {
                consumed: 0,
                event: Event::NeedMore,
            };
        }
        self.remaining -= n as u64;
        Decoded {
            consumed: n,
            event: Event::Data(0..n),
        }
    }
}

/// The body reader for one message, whatever its framing.
#[derive(Debug, Clone)]
pub enum BodyDecoder {
    /// No body (or a finished one): [`Event::End`] at once.
    Empty,
    Length(ContentLengthBody),
    Chunked(ChunkedDecoder),
    /// Every byte until the peer closes (a close-delimited response).
    UntilClose,
}

impl BodyDecoder {
    pub fn for_request(framing: RequestFraming, limits: &Limits) -> BodyDecoder {
        match framing {
            RequestFraming::None => BodyDecoder::Empty,
            RequestFraming::ContentLength(n) => BodyDecoder::Length(ContentLengthBody::new(n)),
            RequestFraming::Chunked => BodyDecoder::Chunked(ChunkedDecoder::new(limits)),
        }
    }

    /// For [`ResponseFraming::Tunnel`] this is `Empty`: there is no HTTP body, the caller
    /// relays both directions instead.
    pub fn for_response(framing: ResponseFraming, limits: &Limits) -> BodyDecoder {
        match framing {
            ResponseFraming::None | ResponseFraming::Tunnel => BodyDecoder::Empty,
            ResponseFraming::ContentLength(n) => BodyDecoder::Length(ContentLengthBody::new(n)),
            ResponseFraming::Chunked => BodyDecoder::Chunked(ChunkedDecoder::new(limits)),
            ResponseFraming::CloseDelimited => BodyDecoder::UntilClose,
        }
    }

    /// See [`Decoded`] and [`Event`]. A close-delimited body reports all input as data and
    /// ends only through [`on_eof`](Self::on_eof).
    pub fn decode(&mut self, input: &[u8]) -> Result<Decoded, HttpError> {
        match self {
            BodyDecoder::Empty => Ok(Decoded {
                consumed: 0,
                event: Event::End { trailers: 0..0 },
            }),
            BodyDecoder::Length(body) => Ok(body.decode(input)),
            BodyDecoder::Chunked(chunked) => chunked.decode(input),
            BodyDecoder::UntilClose => Ok(if input.is_empty() {
                Decoded {
                    consumed: 0,
                    event: Event::NeedMore,
                }
            } else {
                Decoded {
                    consumed: input.len(),
                    event: Event::Data(0..input.len()),
                }
            }),
        }
    }

    /// Whether the body is complete (never for a close-delimited body before EOF).
    pub fn is_done(&self) -> bool {
        match self {
            BodyDecoder::Empty => true,
            BodyDecoder::Length(body) => body.is_done(),
            BodyDecoder::Chunked(chunked) => chunked.is_done(),
            BodyDecoder::UntilClose => false,
        }
    }

    /// The peer closed: fine if the body is complete or close-delimited, otherwise the message
    /// was truncated ([`HttpError::IncompleteBody`]; for a response, abort the client side —
    /// never let it look complete).
    pub fn on_eof(&self) -> Result<(), HttpError> {
        if self.is_done() || matches!(self, BodyDecoder::UntilClose) {
            Ok(())
        } else {
            Err(HttpError::IncompleteBody)
        }
    }
}

/// The CRLF that ends every chunk's data.
pub const CHUNK_DATA_END: &[u8] = b"\r\n";
/// The last chunk when forwarding a trailer section: send `input[trailers]` from
/// [`Event::End`] right after it.
pub const LAST_CHUNK: &[u8] = b"0\r\n";
/// The last chunk and an empty trailer section, when dropping trailers.
pub const LAST_CHUNK_NO_TRAILERS: &[u8] = b"0\r\n\r\n";

/// A chunk-size line (`hex CRLF`, no extensions) for re-framing a body as chunked, on the stack.
/// Send it, then the data, then [`CHUNK_DATA_END`].
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct ChunkHeader {
    buf: [u8; 18],
    len: u8,
}

impl ChunkHeader {
    /// `None` for 0: an empty chunk would end the body; send [`LAST_CHUNK`] for that.
    pub fn new(size: u64) -> Option<ChunkHeader> {
        if size == 0 {
            return None;
        }
        let mut buf = [0u8; 18];
        let digits = (16 - size.leading_zeros() / 4) as usize;
        let digits = digits.max(1);
        let mut len = 0usize;
        for (slot, i) in buf.iter_mut().zip((0..digits).rev()) {
            let nibble = ((size >> (4 * i)) & 0xf) as usize;
            *slot = b"0123456789abcdef".get(nibble).copied().unwrap_or(b'0');
            len += 1;
        }
        if let Some(end) = buf.get_mut(len..len + 2) {
            end.copy_from_slice(b"\r\n");
        }
        Some(ChunkHeader {
            buf,
            len: (len + 2) as u8,
        })
    }

    pub fn as_bytes(&self) -> &[u8] {
        self.buf.get(..usize::from(self.len)).unwrap_or(&[])
    }
}

impl std::fmt::Debug for ChunkHeader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ChunkHeader(\"{}\")", self.as_bytes().escape_ascii())
    }
}

/// A Content-Length value in decimal, on the stack, for re-framing a body of known length.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct ContentLengthValue {
    buf: [u8; 20],
    start: u8,
}

impl ContentLengthValue {
    pub fn new(mut n: u64) -> ContentLengthValue {
        let mut buf = [b'0'; 20];
        let mut start = buf.len();
        loop {
            start -= 1;
            if let Some(slot) = buf.get_mut(start) {
                *slot = b'0' + (n % 10) as u8;
            }
            n /= 10;
            if n == 0 || start == 0 {
                break;
            }
        }
        ContentLengthValue {
            buf,
            start: start as u8,
        }
    }

    pub fn as_bytes(&self) -> &[u8] {
        self.buf.get(usize::from(self.start)..).unwrap_or(&[])
    }
}

impl std::fmt::Debug for ContentLengthValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ContentLengthValue({})", self.as_bytes().escape_ascii())
    }
}
