//! No-panic properties over pseudo-random and mutated inputs for `parse_request`,
//! `parse_response` and the chunked decoder, with invariants on every result, and httparse as a
//! differential oracle: whatever we accept, httparse (which is more lenient) must accept with
//! the same fields.

use super::*;

/// `HTTP1_FUZZ_SCALE=N` multiplies every iteration count (for a longer local run).
fn iterations(base: usize) -> usize {
    let scale = std::env::var("HTTP1_FUZZ_SCALE")
        .ok()
        .and_then(|s| s.parse::<usize>().ok())
        .unwrap_or(1);
    base * scale.max(1)
}

const REQUEST_SEEDS: &[&[u8]] = &[
    b"GET /index.html?q=1 HTTP/1.1\r\nHost: example.com\r\nAccept: */*\r\nUser-Agent: t/1\r\n\r\n",
    b"POST /u HTTP/1.1\r\nHost: a:80\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\nhello",
    b"PUT /c HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nConnection: keep-alive, x-a\r\nx-a: 1\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    b"GET http://a.example:8080/p HTTP/1.1\r\nHost: a.example:8080\r\n\r\n",
    b"CONNECT a.example:443 HTTP/1.1\r\nHost: a.example:443\r\n\r\n",
    b"OPTIONS * HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
    b"GET /chat HTTP/1.1\r\nHost: [::1]:8080\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
];

const RESPONSE_SEEDS: &[&[u8]] = &[
    b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Type: text/plain\r\n\r\nhello",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    b"HTTP/1.0 404 Not Found\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n",
    b"HTTP/1.1 101 Switching Protocols\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n",
    b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n",
];

const CHUNKED_SEEDS: &[&[u8]] = &[
    b"5\r\nhello\r\n6;a=b\r\n world\r\n0\r\n\r\n",
    b"1;x=\"q\\\"v\"\r\na\r\n0\r\nX-Sum: 1\r\nX-B: 2\r\n\r\n",
    b"A\r\n0123456789\r\n000\r\n\r\nGET /",
];

/// Bytes that matter to the grammars; mutations favour them.
const INTERESTING: &[u8] =
    b"\r\n \t:;,=\"\\/?#%*@[]0123456789abcdefABCDEF\x00\x01\x7f\x80\xff-+.HTP";

fn mutate(rng: &mut Rng, seeds: &[&[u8]]) -> Vec<u8> {
    let mut buf = seeds[rng.below(seeds.len())].to_vec();
    if rng.chance(20) {
        return (0..rng.below(300)).map(|_| rng.next() as u8).collect();
    }
    for _ in 0..rng.below(4) + 1 {
        let byte = if rng.chance(3) {
            rng.next() as u8
        } else {
            INTERESTING[rng.below(INTERESTING.len())]
        };
        let at = rng.below(buf.len() + 1);
        match rng.below(7) {
            0 | 1 if at < buf.len() => buf[at] = byte,
            2 => buf.insert(at, byte),
            3 if at < buf.len() => {
                buf.remove(at);
            }
            4 => buf.truncate(at),
            5 => {
                let other = seeds[rng.below(seeds.len())];
                let from = rng.below(other.len());
                let to = (from + rng.below(40)).min(other.len());
                buf.splice(at..at, other[from..to].iter().copied());
            }
            _ => {
                let from = rng.below(buf.len() + 1);
                let to = (from + rng.below(20)).min(buf.len());
                let copy = buf[from..to].to_vec();
                buf.splice(at..at, copy);
            }
        }
    }
    buf
}

fn small_limits(rng: &mut Rng) -> Limits {
    if rng.chance(2) {
        return limits();
    }
    Limits {
        max_request_line: rng.below(80),
        max_header_block: rng.below(120),
        max_headers: rng.below(6),
        max_chunk_line: rng.below(20),
        max_chunk_size: rng.below(64) as u64,
        max_trailer_block: rng.below(40),
    }
}

fn check_headers(headers: &Headers, buf: &[u8], consumed: usize, limits: &Limits) {
    assert!(headers.len() <= limits.max_headers.min(MAX_HEADERS_CAPACITY));
    for (i, h) in headers.iter(buf).enumerate() {
        assert!(!h.name.is_empty());
        assert!(h.name.iter().all(|&b| b.is_ascii_graphic() && b != b':'));
        assert!(h
            .value
            .iter()
            .all(|&b| b == b'\t' || b >= 0x20 && b != 0x7f));
        assert_eq!(h.hop_by_hop, headers.is_hop_by_hop(i));
        let end = h.value.as_ptr() as usize + h.value.len() - buf.as_ptr() as usize;
        assert!(end <= consumed);
    }
}

#[test]
fn parse_request_never_panics_and_keeps_its_invariants() {
    let mut rng = Rng::new(1);
    let mut reused = RequestHead::new();
    for _ in 0..iterations(6000) {
        let buf = mutate(&mut rng, REQUEST_SEEDS);
        let limits = small_limits(&mut rng);
        let again = reused.parse(&buf, &limits);
        match parse_request(&buf, &limits) {
            Ok(Status::Complete { head, consumed }) => {
                assert_eq!(again, Ok(Some(consumed)));
                assert_eq!(format!("{reused:?}"), format!("{head:?}"), "reuse differs");
                assert!(consumed <= buf.len());
                check_headers(head.headers(), &buf, consumed, &limits);
                let _ = (
                    head.method_bytes(&buf),
                    head.target(&buf),
                    head.path_and_query(&buf),
                );
                let _ = (
                    head.host(&buf),
                    head.authority(&buf),
                    head.target_authority(&buf),
                );
                assert!(head.connection_tokens(&buf).count() <= MAX_CONNECTION_OPTIONS);
                let _ = head.upgrade_protocols(&buf).count();
                if head.version() == Version::Http11 {
                    assert!(head.host(&buf).is_some());
                }
                if head.method() == Method::Connect {
                    assert_eq!(head.target_form(), TargetForm::Authority);
                }
            }
            Ok(Status::Incomplete) => assert_eq!(again, Ok(None)),
            Err(e) => {
                assert_eq!(again, Err(e));
                assert!(
                    [400, 413, 414, 417, 431, 501, 505].contains(&e.status()),
                    "{e:?}"
                );
            }
        }
    }
}

#[test]
fn parse_response_never_panics_and_keeps_its_invariants() {
    let mut rng = Rng::new(2);
    let methods = [Method::Get, Method::Head, Method::Connect, Method::Post];
    for _ in 0..iterations(6000) {
        let buf = mutate(&mut rng, RESPONSE_SEEDS);
        let limits = small_limits(&mut rng);
        let request = ResponseContext {
            method: methods[rng.below(methods.len())],
            upgrade_requested: rng.chance(2),
        };
        match parse_response(&buf, request, &limits) {
            Ok(Status::Complete { head, consumed }) => {
                assert!(consumed <= buf.len());
                assert!((100..=599).contains(&head.status()));
                check_headers(head.headers(), &buf, consumed, &limits);
                let _ = (head.reason(&buf), head.connection_tokens(&buf).count());
                if head.framing() == ResponseFraming::CloseDelimited {
                    assert!(!head.keep_alive());
                }
            }
            Ok(Status::Incomplete) => {}
            Err(e) => assert_eq!(e.status(), 502),
        }
    }
}

#[test]
fn chunked_decoder_never_panics_and_always_progresses() {
    let mut rng = Rng::new(3);
    for _ in 0..iterations(6000) {
        let buf = mutate(&mut rng, CHUNKED_SEEDS);
        let limits = small_limits(&mut rng);
        let decoder = || BodyDecoder::Chunked(ChunkedDecoder::new(&limits));
        let whole = run_body(decoder(), &[&buf]);
        let pieces = random_split(&buf, &mut rng);
        let split = run_body(decoder(), &pieces);
        let bytes: Vec<&[u8]> = buf.chunks(1).collect();
        let one_by_one = run_body(decoder(), &bytes);
        // Same bytes, same outcome, however they are split (run_body also checks that every
        // step is in bounds and makes progress).
        assert_eq!(split, whole, "{:?}", buf.escape_ascii().to_string());
        assert_eq!(one_by_one, whole);
        if let Some(e) = whole.error {
            assert!([400, 413, 431].contains(&e.status()), "{e:?}");
        }
        if let Some(block) = &whole.trailers {
            assert!(parse_trailers(block, &limits).is_ok());
        }
    }
}

#[test]
fn random_bytes_never_panic() {
    let mut rng = Rng::new(4);
    for _ in 0..iterations(3000) {
        let buf: Vec<u8> = (0..rng.below(400))
            .map(|_| INTERESTING[rng.below(INTERESTING.len())])
            .collect();
        let limits = small_limits(&mut rng);
        let _ = parse_request(&buf, &limits);
        let _ = parse_response(&buf, ResponseContext::new(Method::Get), &limits);
        let _ = parse_trailers(&buf, &limits);
        let mut decoder = ChunkedDecoder::new(&limits);
        let mut rest = &buf[..];
        for _ in 0..buf.len() + 2 {
            match decoder.decode(rest) {
                Ok(Decoded {
                    consumed,
                    event: Event::Data(_),
                }) => rest = &rest[consumed..],
                _ => break,
            }
        }
        let mut scanner = HeadScanner::new();
        let _ = scanner.should_parse(&buf, &limits);
    }
}

/// Differential check against httparse's strict defaults: httparse accepts bare LF, leading
/// bare LFs, non-ASCII targets, fragments, any version-less framing — so anything we accept it
/// must accept too, with identical method, target, version, fields and head length.
#[test]
fn accepted_heads_agree_with_httparse() {
    let mut rng = Rng::new(5);
    let mut compared = 0;
    for _ in 0..iterations(8000) {
        let buf = mutate(&mut rng, REQUEST_SEEDS);
        let Ok(Status::Complete { head, consumed }) = parse_request(&buf, &limits()) else {
            continue;
        };
        let mut fields = [httparse::EMPTY_HEADER; MAX_HEADERS_CAPACITY];
        let mut theirs = httparse::Request::new(&mut fields);
        let status = theirs.parse(&buf);
        assert_eq!(
            status,
            Ok(httparse::Status::Complete(consumed)),
            "{:?}",
            buf.escape_ascii().to_string()
        );
        assert_eq!(theirs.method.unwrap().as_bytes(), head.method_bytes(&buf));
        assert_eq!(theirs.path.unwrap().as_bytes(), head.target(&buf));
        assert_eq!(
            theirs.version,
            Some(if head.version() == Version::Http11 {
                1
            } else {
                0
            })
        );
        let ours: Vec<(&[u8], &[u8])> = head
            .headers()
            .iter(&buf)
            .map(|h| (h.name, h.value))
            .collect();
        let other: Vec<(&[u8], &[u8])> = theirs
            .headers
            .iter()
            .map(|h| (h.name.as_bytes(), h.value))
            .collect();
        assert_eq!(ours, other);
        compared += 1;
    }
    assert!(
        compared > 500,
        "too few accepted mutants ({compared}) to compare"
    );

    let mut compared = 0;
    for _ in 0..iterations(8000) {
        let buf = mutate(&mut rng, RESPONSE_SEEDS);
        let Ok(Status::Complete { head, consumed }) =
            parse_response(&buf, ResponseContext::new(Method::Get), &limits())
        else {
            continue;
        };
        let mut fields = [httparse::EMPTY_HEADER; MAX_HEADERS_CAPACITY];
        let mut theirs = httparse::Response::new(&mut fields);
        assert_eq!(
            theirs.parse(&buf),
            Ok(httparse::Status::Complete(consumed)),
            "{:?}",
            buf.escape_ascii().to_string()
        );
        assert_eq!(theirs.code, Some(head.status()));
        let ours: Vec<(&[u8], &[u8])> = head
            .headers()
            .iter(&buf)
            .map(|h| (h.name, h.value))
            .collect();
        let other: Vec<(&[u8], &[u8])> = theirs
            .headers
            .iter()
            .map(|h| (h.name.as_bytes(), h.value))
            .collect();
        assert_eq!(ours, other);
        compared += 1;
    }
    assert!(
        compared > 500,
        "too few accepted mutants ({compared}) to compare"
    );
}

/// The other direction: whatever httparse refuses, we never accept. (We may still be waiting
/// where httparse already refused: `HTTP/9.` is refused by httparse at the `9`, while we wait
/// for the whole token to tell a 505 from a 400.)
#[test]
fn heads_httparse_refuses_are_never_accepted() {
    let mut rng = Rng::new(6);
    let mut refused = 0;
    for _ in 0..iterations(8000) {
        let buf = mutate(&mut rng, REQUEST_SEEDS);
        let mut fields = [httparse::EMPTY_HEADER; MAX_HEADERS_CAPACITY];
        let mut theirs = httparse::Request::new(&mut fields);
        if theirs.parse(&buf).is_err() {
            refused += 1;
            assert!(
                !parse_req(&buf).is_ok_and(|s| s.is_complete()),
                "{:?}",
                buf.escape_ascii().to_string()
            );
        }
    }
    assert!(refused > 500);
}
