//! Heads arriving in pieces: every strict prefix of a valid head is `Incomplete`, every prefix of
//! an invalid one is `Incomplete` or the very error of the whole, and [`HeadScanner`] agrees.

use super::*;

const VALID_REQUESTS: &[&[u8]] = &[
    b"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
    b"\r\n\r\nGET /x?y=1 HTTP/1.1\r\nHost: example.com:8080\r\nAccept: */*\r\nX-Empty:\r\n\r\n",
    b"POST /upload HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n",
    b"PUT /c HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nConnection: keep-alive, x\r\nx: 1\r\n\r\n",
    b"GET http://a.example/p HTTP/1.1\r\nHost: a.example\r\n\r\n",
    b"CONNECT a.example:443 HTTP/1.1\r\nHost: a.example:443\r\n\r\n",
    b"OPTIONS * HTTP/1.0\r\n\r\n",
    b"GET / HTTP/1.0\r\nConnection: keep-alive\r\nX-Pad: \t v \t\r\n\r\n",
];

const VALID_RESPONSES: &[&[u8]] = &[
    b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
    b"HTTP/1.1 204\r\n\r\n",
    b"HTTP/1.0 404 Not Found\r\nConnection: keep-alive\r\nContent-Length: 9\r\n\r\n",
    b"HTTP/1.1 100 Continue\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-A: b\r\n\r\n",
];

const INVALID_REQUESTS: &[&[u8]] = &[
    b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost : a\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: a\r\n folded\r\n\r\n",
    b"GET / HTTP/1.1\nHost: a\r\n\r\n",
    b"GET / HTTP/2.0\r\nHost: a\r\n\r\n",
    b"GET /\r\n\r\n",
    b"GET  / HTTP/1.1\r\n\r\n",
    b"G(T / HTTP/1.1\r\n\r\n",
    b"GET /#f HTTP/1.1\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
    b"GET / HTTP/1.1\r\nX: a\x00\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: a\r\n\rX\r\n\r\n",
    b"GET / HTTP/1.1 \r\n\r\n",
    b"\r\r\nGET / HTTP/1.1\r\n\r\n",
];

/// The sequence of outcomes as `buf` grows byte by byte: `None` for Incomplete.
fn request_outcomes(buf: &[u8]) -> Vec<Option<Result<usize, HttpError>>> {
    (0..=buf.len())
        .map(|n| match parse_req(&buf[..n]) {
            Ok(Status::Incomplete) => None,
            Ok(Status::Complete { consumed, .. }) => Some(Ok(consumed)),
            Err(e) => Some(Err(e)),
        })
        .collect()
}

#[test]
fn every_prefix_of_a_valid_request_is_incomplete() {
    for &buf in VALID_REQUESTS {
        let (whole, consumed) = req(buf);
        assert_eq!(consumed, buf.len());
        for n in 0..buf.len() {
            assert!(
                matches!(parse_req(&buf[..n]), Ok(Status::Incomplete)),
                "{:?} at {n}",
                buf.escape_ascii().to_string()
            );
        }
        // Bytes after the head change nothing.
        let mut longer = buf.to_vec();
        longer.extend_from_slice(b"GET / HTTP/1.1\r\n");
        let (again, consumed) = req(&longer);
        assert_eq!(consumed, buf.len());
        assert_eq!(format!("{whole:?}"), format!("{again:?}"));
    }
}

#[test]
fn every_prefix_of_a_valid_response_is_incomplete() {
    for &buf in VALID_RESPONSES {
        let (_, consumed) = res(buf, ctx(Method::Get));
        assert_eq!(consumed, buf.len());
        for n in 0..buf.len() {
            assert!(
                matches!(
                    parse_res(&buf[..n], ctx(Method::Get)),
                    Ok(Status::Incomplete)
                ),
                "{n}"
            );
        }
    }
}

#[test]
fn prefixes_of_an_invalid_request_never_disagree_with_the_whole() {
    for &buf in INVALID_REQUESTS {
        let outcomes = request_outcomes(buf);
        let last = outcomes.last().cloned().flatten();
        let Some(Err(expected)) = last else {
            panic!(
                "{:?} should be refused, got {last:?}",
                buf.escape_ascii().to_string()
            )
        };
        for (n, outcome) in outcomes.iter().enumerate() {
            match outcome {
                None => {}
                Some(Err(e)) => {
                    assert_eq!(*e, expected, "{:?} at {n}", buf.escape_ascii().to_string())
                }
                Some(Ok(_)) => panic!("prefix {n} accepted"),
            }
        }
    }
}

#[test]
fn garbage_is_refused_before_the_line_ends() {
    // A TLS ClientHello sent to a plaintext port: refused on its first byte.
    assert_eq!(parse_req(b"\x16").err(), Some(HttpError::InvalidMethod));
    assert_eq!(
        parse_req(b"GET /\x00").err(),
        Some(HttpError::InvalidTarget)
    );
    assert_eq!(
        parse_req(b"GET / FTP").err(),
        Some(HttpError::InvalidVersion)
    );
}

#[test]
fn head_scanner_agrees_with_the_parser_byte_by_byte() {
    let limits = limits();
    for &buf in VALID_REQUESTS {
        let mut scanner = HeadScanner::new();
        for n in 0..=buf.len() {
            let ready = scanner.should_parse(&buf[..n], &limits);
            assert_eq!(
                ready,
                n == buf.len(),
                "{:?} at {n}",
                buf.escape_ascii().to_string()
            );
        }
        scanner.reset();
        assert!(!scanner.should_parse(b"GET", &limits));
    }
    for &buf in VALID_RESPONSES {
        let mut scanner = HeadScanner::new();
        for n in 0..=buf.len() {
            assert_eq!(scanner.should_parse(&buf[..n], &limits), n == buf.len());
        }
    }
}

#[test]
fn head_scanner_in_random_pieces() {
    let limits = limits();
    let mut rng = Rng::new(3);
    for _ in 0..500 {
        let buf = VALID_REQUESTS[rng.below(VALID_REQUESTS.len())];
        let mut scanner = HeadScanner::new();
        let mut len = 0;
        loop {
            len = (len + rng.below(12) + 1).min(buf.len());
            let ready = scanner.should_parse(&buf[..len], &limits);
            assert_eq!(ready, len == buf.len());
            if ready {
                assert_eq!(req(&buf[..len]).1, len);
                break;
            }
            assert!(matches!(parse_req(&buf[..len]), Ok(Status::Incomplete)));
        }
    }
}

#[test]
fn head_scanner_never_defers_a_final_answer() {
    // Whenever the scanner says "parse", the parser answers (never Incomplete).
    let limits = Limits {
        max_request_line: 64,
        max_header_block: 64,
        ..Limits::default()
    };
    let mut rng = Rng::new(11);
    let alphabet = b"GET /\r\n: aHT1.";
    for _ in 0..3000 {
        let buf: Vec<u8> = (0..rng.below(200))
            .map(|_| alphabet[rng.below(alphabet.len())])
            .collect();
        let mut scanner = HeadScanner::new();
        let mut len = 0;
        while len < buf.len() {
            len = (len + rng.below(9) + 1).min(buf.len());
            if scanner.should_parse(&buf[..len], &limits) {
                assert!(
                    !matches!(parse_request(&buf[..len], &limits), Ok(Status::Incomplete)),
                    "{:?}",
                    buf[..len].escape_ascii().to_string()
                );
            }
        }
    }
}

#[test]
fn head_scanner_stops_waiting_past_the_limits() {
    let limits = Limits {
        max_request_line: 32,
        max_header_block: 32,
        ..Limits::default()
    };
    let mut scanner = HeadScanner::new();
    let buf = vec![b'a'; 67];
    assert!(!scanner.should_parse(&buf[..66], &limits));
    assert!(scanner.should_parse(&buf, &limits));
    assert_eq!(
        parse_request(&buf, &limits).err(),
        Some(HttpError::RequestLineTooLong)
    );
    let mut scanner = HeadScanner::new();
    assert!(
        scanner.should_parse(b"GET / HTTP/1.1\n", &limits),
        "a bare LF ends the wait"
    );
}
