//! Tests of the HTTP/1.1 codec: one test per rejection rule (named after the rule, asserting the
//! exact variant and status), positive cases, split/prefix equivalence, the chunked decoder, and
//! no-panic properties over pseudo-random and mutated inputs with httparse as a differential
//! oracle. Must not: depend on IO or timing; every random input comes from a seeded xorshift.

mod chunked;
mod fuzz;
mod request;
mod response;
mod split;

use super::*;

pub(super) fn limits() -> Limits {
    Limits::default()
}

pub(super) fn parse_req(buf: &[u8]) -> Result<Status<RequestHead>, HttpError> {
    parse_request(buf, &limits())
}

/// A complete request head and its length.
#[track_caller]
pub(super) fn req(buf: &[u8]) -> (RequestHead, usize) {
    match parse_req(buf) {
        Ok(Status::Complete { head, consumed }) => (head, consumed),
        other => panic!(
            "{:?}: expected a complete head, got {other:?}",
            buf.escape_ascii().to_string()
        ),
    }
}

/// The error a request head is refused with.
#[track_caller]
pub(super) fn req_err(buf: &[u8]) -> HttpError {
    match parse_req(buf) {
        Err(e) => e,
        Ok(other) => panic!(
            "{:?}: expected an error, got {}",
            buf.escape_ascii().to_string(),
            if other.is_complete() {
                "Complete"
            } else {
                "Incomplete"
            }
        ),
    }
}

/// Asserts `buf` is refused with `expected`, answered with `status`.
#[track_caller]
pub(super) fn rejects(buf: &[u8], expected: HttpError, status: u16) {
    let e = req_err(buf);
    assert_eq!(e, expected, "{:?}", buf.escape_ascii().to_string());
    assert_eq!(e.status(), status, "{e:?}");
}

/// A GET with `fields` (each a full line without CRLF) after a Host field.
pub(super) fn get_with(fields: &[&str]) -> Vec<u8> {
    let mut s = String::from("GET / HTTP/1.1\r\nHost: example.com\r\n");
    for f in fields {
        s.push_str(f);
        s.push_str("\r\n");
    }
    s.push_str("\r\n");
    s.into_bytes()
}

pub(super) fn ctx(method: Method) -> ResponseContext {
    ResponseContext::new(method)
}

pub(super) fn parse_res(
    buf: &[u8],
    ctx: ResponseContext,
) -> Result<Status<ResponseHead>, ResponseError> {
    parse_response(buf, ctx, &limits())
}

#[track_caller]
pub(super) fn res(buf: &[u8], ctx: ResponseContext) -> (ResponseHead, usize) {
    match parse_res(buf, ctx) {
        Ok(Status::Complete { head, consumed }) => (head, consumed),
        other => panic!(
            "{:?}: expected a complete head, got {other:?}",
            buf.escape_ascii().to_string()
        ),
    }
}

/// Asserts a response is refused (always a 502) because of `expected`.
#[track_caller]
pub(super) fn res_rejects(buf: &[u8], ctx: ResponseContext, expected: HttpError) {
    match parse_res(buf, ctx) {
        Err(e) => {
            assert_eq!(e.cause(), expected, "{:?}", buf.escape_ascii().to_string());
            assert_eq!(e.status(), 502);
        }
        Ok(other) => panic!(
            "{:?}: expected {expected:?}, got {}",
            buf.escape_ascii().to_string(),
            if other.is_complete() {
                "Complete"
            } else {
                "Incomplete"
            }
        ),
    }
}

/// xorshift64*: deterministic pseudo-random numbers without a crate.
pub(super) struct Rng(u64);

impl Rng {
    pub(super) fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub(super) fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform-ish in `0..n` (`n > 0`).
    pub(super) fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    pub(super) fn chance(&mut self, one_in: usize) -> bool {
        self.below(one_in) == 0
    }
}

/// Result of driving a body decoder over `chunks` fed in order, keeping unconsumed bytes like a
/// connection buffer would: the data, the trailer block, and the outcome.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct BodyRun {
    pub(super) data: Vec<u8>,
    pub(super) trailers: Option<Vec<u8>>,
    pub(super) error: Option<HttpError>,
    /// Bytes left after the end of the body.
    pub(super) rest: Vec<u8>,
}

pub(super) fn run_body(mut decoder: BodyDecoder, chunks: &[&[u8]]) -> BodyRun {
    let mut pending: Vec<u8> = Vec::new();
    let mut run = BodyRun {
        data: Vec::new(),
        trailers: None,
        error: None,
        rest: Vec::new(),
    };
    let mut steps = 0usize;
    for (index, chunk) in chunks.iter().enumerate() {
        pending.extend_from_slice(chunk);
        loop {
            steps += 1;
            assert!(steps < 1_000_000, "decoder does not make progress");
            match decoder.decode(&pending) {
                Err(e) => {
                    run.error = Some(e);
                    return run;
                }
                Ok(Decoded { consumed, event }) => {
                    assert!(consumed <= pending.len());
                    match event {
                        Event::Data(range) => {
                            assert!(!range.is_empty(), "empty data event");
                            assert_eq!(range.end, consumed);
                            run.data.extend_from_slice(&pending[range]);
                            pending.drain(..consumed);
                        }
                        Event::NeedMore => {
                            pending.drain(..consumed);
                            break;
                        }
                        Event::End { trailers } => {
                            assert!(trailers.end <= consumed);
                            run.trailers = Some(pending[trailers].to_vec());
                            pending.drain(..consumed);
                            // The rest of the chunks belong to the next message.
                            run.rest = pending;
                            for later in &chunks[index + 1..] {
                                run.rest.extend_from_slice(later);
                            }
                            return run;
                        }
                    }
                }
            }
        }
    }
    run
}

/// `buf` split at the given cut points.
pub(super) fn split_at_points<'a>(buf: &'a [u8], cuts: &[usize]) -> Vec<&'a [u8]> {
    let mut parts = Vec::new();
    let mut start = 0;
    for &cut in cuts {
        let cut = cut.clamp(start, buf.len());
        parts.push(&buf[start..cut]);
        start = cut;
    }
    parts.push(&buf[start..]);
    parts
}

/// `buf` in random pieces.
pub(super) fn random_split<'a>(buf: &'a [u8], rng: &mut Rng) -> Vec<&'a [u8]> {
    let mut cuts: Vec<usize> = (0..rng.below(8) + 1)
        .map(|_| rng.below(buf.len() + 1))
        .collect();
    cuts.sort_unstable();
    split_at_points(buf, &cuts)
}
