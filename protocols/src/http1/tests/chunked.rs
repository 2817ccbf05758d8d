//! The chunked decoder (every split gives the same result; every malformed case is refused),
//! the Content-Length tracker, BodyDecoder, and the re-framing encoders.

use super::*;
use HttpError as E;

fn chunked() -> BodyDecoder {
    BodyDecoder::Chunked(ChunkedDecoder::new(&limits()))
}

fn decode_whole(body: &[u8]) -> BodyRun {
    run_body(chunked(), &[body])
}

#[track_caller]
fn decode_rejects(body: &[u8], expected: HttpError) {
    let run = decode_whole(body);
    assert_eq!(
        run.error,
        Some(expected),
        "{:?}",
        body.escape_ascii().to_string()
    );
    // The same bytes one at a time are refused the same way.
    let bytes: Vec<&[u8]> = body.chunks(1).collect();
    assert_eq!(run_body(chunked(), &bytes).error, Some(expected));
}

const SAMPLE: &[u8] = b"5\r\nhello\r\n6;ext=1\r\n world\r\nA\r\n0123456789\r\n0\r\nX-Sum: abc\r\nX-Other: d\r\n\r\nNEXT";

#[test]
fn decodes_a_simple_body() {
    let run = decode_whole(b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n");
    assert_eq!(run.error, None);
    assert_eq!(run.data, b"hello world");
    assert_eq!(run.trailers.as_deref(), Some(&b"\r\n"[..]));
    assert!(run.rest.is_empty());
}

#[test]
fn data_ranges_point_into_the_input_without_copying() {
    let mut decoder = ChunkedDecoder::new(&limits());
    let input = b"3\r\nabc\r\n0\r\n\r\n";
    let step = decoder.decode(input).unwrap();
    assert_eq!(
        step,
        Decoded {
            consumed: 6,
            event: Event::Data(3..6)
        }
    );
    assert_eq!(decoder.chunk_remaining(), 0);
    let step = decoder.decode(&input[6..]).unwrap();
    assert_eq!(
        step,
        Decoded {
            consumed: 7,
            event: Event::End { trailers: 5..7 }
        }
    );
    assert!(decoder.is_done());
    // Done stays done.
    let step = decoder.decode(b"GET").unwrap();
    assert_eq!(
        step,
        Decoded {
            consumed: 0,
            event: Event::End { trailers: 0..0 }
        }
    );
}

#[test]
fn one_byte_at_a_time_equals_whole() {
    let whole = decode_whole(SAMPLE);
    assert_eq!(whole.error, None);
    assert_eq!(whole.data, b"hello world0123456789");
    assert_eq!(
        whole.trailers.as_deref(),
        Some(&b"X-Sum: abc\r\nX-Other: d\r\n\r\n"[..])
    );
    assert_eq!(whole.rest, b"NEXT");
    let bytes: Vec<&[u8]> = SAMPLE.chunks(1).collect();
    assert_eq!(run_body(chunked(), &bytes), whole);
}

#[test]
fn every_two_way_split_equals_whole() {
    let whole = decode_whole(SAMPLE);
    for cut in 0..=SAMPLE.len() {
        assert_eq!(
            run_body(chunked(), &split_at_points(SAMPLE, &[cut])),
            whole,
            "cut {cut}"
        );
    }
}

#[test]
fn random_splits_equal_whole() {
    let mut rng = Rng::new(7);
    let bodies: [&[u8]; 4] = [
        SAMPLE,
        b"1;a;b=c;d=\"e\\\"f\"\r\nx\r\n0\r\n\r\n",
        b"0000000000000003\r\nabc\r\n0;last\r\nTrailer-A: 1\r\n\r\n",
        b"4\r\n\r\n\r\n\r\n0\r\n\r\n",
    ];
    for body in bodies {
        let whole = decode_whole(body);
        assert_eq!(whole.error, None, "{:?}", body.escape_ascii().to_string());
        for _ in 0..300 {
            assert_eq!(run_body(chunked(), &random_split(body, &mut rng)), whole);
        }
    }
}

#[test]
fn accepts_extensions() {
    for line in [
        &b"5;name"[..],
        b"5;name=value",
        b"5;name=\"quoted value\"",
        b"5;n=\"esc\\\"aped\\\\\"",
        b"5 ;a=b",
        b"5\t; a = b ; c ;d=\"\"",
        b"5;a=b ;c",
        b"5;a=\"caf\xc3\xa9\"",
        b"5;!#$%&'*+-.^_`|~=!#$%&'*+-.^_`|~",
    ] {
        let mut body = line.to_vec();
        body.extend_from_slice(b"\r\nhello\r\n0\r\n\r\n");
        let run = decode_whole(&body);
        assert_eq!(run.error, None, "{:?}", body.escape_ascii().to_string());
        assert_eq!(run.data, b"hello");
    }
}

#[test]
fn hex_sizes_any_case_and_leading_zeros() {
    let body = b"a\r\n0123456789\r\nA\r\n0123456789\r\n0010\r\n0123456789abcdef\r\n000\r\n\r\n";
    let run = decode_whole(body);
    assert_eq!(run.error, None);
    assert_eq!(run.data.len(), 36);
}

#[test]
fn trailers_are_returned_as_a_validated_block() {
    let run = decode_whole(SAMPLE);
    let block = run.trailers.unwrap();
    let headers = parse_trailers(&block, &limits()).unwrap();
    let fields: Vec<(&[u8], &[u8])> = headers.iter(&block).map(|h| (h.name, h.value)).collect();
    assert_eq!(
        fields,
        vec![(&b"X-Sum"[..], &b"abc"[..]), (b"X-Other", b"d")]
    );
    assert!(parse_trailers(b"\r\n", &limits()).unwrap().is_empty());
    assert_eq!(
        parse_trailers(b"X-A: 1\r\n", &limits()).err(),
        Some(E::IncompleteBody)
    );
}

#[test]
fn partial_trailers_stay_unconsumed() {
    let mut decoder = ChunkedDecoder::new(&limits());
    let step = decoder.decode(b"0\r\nX-A: 1\r\n").unwrap();
    assert_eq!(
        step,
        Decoded {
            consumed: 3,
            event: Event::NeedMore
        }
    );
    let step = decoder.decode(b"X-A: 1\r\n").unwrap();
    assert_eq!(
        step,
        Decoded {
            consumed: 0,
            event: Event::NeedMore
        }
    );
    let step = decoder.decode(b"X-A: 1\r\n\r\nrest").unwrap();
    assert_eq!(
        step,
        Decoded {
            consumed: 10,
            event: Event::End { trailers: 0..10 }
        }
    );
}

#[test]
fn errors_are_sticky() {
    let mut decoder = ChunkedDecoder::new(&limits());
    assert_eq!(decoder.decode(b"z\r\n").err(), Some(E::InvalidChunkSize));
    assert_eq!(
        decoder.decode(b"5\r\nhello\r\n").err(),
        Some(E::InvalidChunkSize)
    );
}

// ---------------------------------------------------------------- malformed bodies

#[test]
fn rejects_empty_chunk_size() {
    decode_rejects(b"\r\nhello\r\n0\r\n\r\n", E::InvalidChunkSize);
    decode_rejects(b";ext\r\n", E::InvalidChunkSize);
    decode_rejects(b" 5\r\nhello\r\n", E::InvalidChunkSize);
}

#[test]
fn rejects_non_hex_chunk_size() {
    for size in [&b"g"[..], b"0x5", b"-5", b"+5", b"5g", b"5.0", b"\xff"] {
        let mut body = size.to_vec();
        body.extend_from_slice(b"\r\nhello\r\n0\r\n\r\n");
        decode_rejects(&body, E::InvalidChunkSize);
    }
}

#[test]
fn rejects_whitespace_after_chunk_size_without_extension() {
    decode_rejects(b"5 \r\nhello\r\n0\r\n\r\n", E::InvalidChunkSize);
    decode_rejects(b"5\t\r\nhello\r\n0\r\n\r\n", E::InvalidChunkSize);
    decode_rejects(b"5 5\r\nhello\r\n0\r\n\r\n", E::InvalidChunkSize);
}

#[test]
fn rejects_chunk_size_overflow() {
    decode_rejects(b"10000000000000000\r\n", E::ChunkSizeOverflow);
    decode_rejects(b"fffffffffffffffff\r\n", E::ChunkSizeOverflow);
    // u64::MAX itself is a valid size (the body then simply never ends in practice).
    let run = decode_whole(b"ffffffffffffffff\r\nabc");
    assert_eq!(run.error, None);
    assert_eq!(run.data, b"abc");
}

#[test]
fn rejects_chunk_larger_than_the_configured_max_with_413() {
    let limits = Limits {
        max_chunk_size: 0x100,
        ..Limits::default()
    };
    let run = run_body(
        BodyDecoder::Chunked(ChunkedDecoder::new(&limits)),
        &[b"101\r\n"],
    );
    assert_eq!(run.error, Some(E::ChunkTooLarge));
    assert_eq!(E::ChunkTooLarge.status(), 413);
    let run = run_body(
        BodyDecoder::Chunked(ChunkedDecoder::new(&limits)),
        &[b"100\r\n"],
    );
    assert_eq!(run.error, None);
}

#[test]
fn rejects_bad_chunk_extensions() {
    for ext in [
        &b";"[..],
        b"; ",
        b";=a",
        b";a=",
        b";a= ",
        b";a=\"b",
        b";a=b c",
        b";a b",
        b";a =",
        b";a=\"\x01\"",
        b";a=\"b\"c",
        b";a=b ",
        b";a ",
        b";a=\"b\" ",
        b";a@b",
        b";a=b@",
        b";a=\"\\\x7f\"",
        b";a=\xc3\xa9",
        b";a=\"x\r\"",
    ] {
        let mut body = b"5".to_vec();
        body.extend_from_slice(ext);
        body.extend_from_slice(b"\r\nhello\r\n0\r\n\r\n");
        decode_rejects(&body, E::InvalidChunkExtension);
    }
}

#[test]
fn rejects_chunk_line_too_long() {
    let limits = limits();
    let mut ok = b"5;a=".to_vec();
    ok.resize(limits.max_chunk_line, b'x');
    ok.extend_from_slice(b"\r\nhello\r\n0\r\n\r\n");
    assert_eq!(decode_whole(&ok).error, None);
    let mut long = b"5;a=".to_vec();
    long.resize(limits.max_chunk_line + 1, b'x');
    long.extend_from_slice(b"\r\nhello\r\n0\r\n\r\n");
    decode_rejects(&long, E::ChunkLineTooLong);
    // Leading zeros count too.
    let zeros = vec![b'0'; limits.max_chunk_line + 1];
    decode_rejects(&zeros, E::ChunkLineTooLong);
}

#[test]
fn rejects_missing_crlf_after_chunk_data() {
    decode_rejects(b"5\r\nhelloX\r\n0\r\n\r\n", E::MissingChunkCrlf);
    decode_rejects(b"5\r\nhello\rX0\r\n\r\n", E::MissingChunkCrlf);
    decode_rejects(b"5\r\nhello world\r\n0\r\n\r\n", E::MissingChunkCrlf);
    decode_rejects(b"5\r\nhello0\r\n\r\n", E::MissingChunkCrlf);
}

#[test]
fn rejects_bare_lf_in_chunked_framing() {
    decode_rejects(b"5\nhello\r\n0\r\n\r\n", E::BareLf);
    decode_rejects(b"5;a=b\nhello\r\n0\r\n\r\n", E::BareLf);
    decode_rejects(b"5\r\nhello\n0\r\n\r\n", E::BareLf);
    decode_rejects(b"5\r\nhello\r\n0\n\r\n", E::BareLf);
    decode_rejects(b"5\r\nhello\r\n0\r\n\n", E::BareLf);
    decode_rejects(b"5\r\nhello\r\n0\r\nX-A: 1\n\r\n", E::BareLf);
}

#[test]
fn rejects_bare_cr_in_chunk_line() {
    decode_rejects(b"5\rXhello\r\n0\r\n\r\n", E::BareCr);
    decode_rejects(b"5;a\r\r\nhello\r\n", E::BareCr);
}

#[test]
fn rejects_malformed_trailers() {
    decode_rejects(b"0\r\nX-A: 1\r\n folded\r\n\r\n", E::ObsFold);
    decode_rejects(b"0\r\n X-A: 1\r\n\r\n", E::ObsFold);
    decode_rejects(b"0\r\nX-A : 1\r\n\r\n", E::WhitespaceBeforeColon);
    decode_rejects(b"0\r\nno colon\r\n\r\n", E::InvalidHeaderName);
    decode_rejects(b"0\r\nX-A: a\x00b\r\n\r\n", E::InvalidHeaderValue);
    decode_rejects(b"0\r\n\rX\r\n\r\n", E::InvalidHeaderName);
}

#[test]
fn rejects_forbidden_trailer_fields() {
    for name in [
        "Content-Length",
        "transfer-encoding",
        "Host",
        "Connection",
        "TE",
        "Trailer",
        "Upgrade",
        "Keep-Alive",
        "Expect",
        "Proxy-Authorization",
    ] {
        let body = format!("0\r\n{name}: x\r\n\r\n");
        decode_rejects(body.as_bytes(), E::ForbiddenTrailer);
    }
}

#[test]
fn rejects_trailer_block_too_large_with_431() {
    let limits = limits();
    let fixed = "X-Pad: \r\n\r\n".len();
    let exact = format!(
        "0\r\nX-Pad: {}\r\n\r\n",
        "p".repeat(limits.max_trailer_block - fixed)
    );
    assert_eq!(decode_whole(exact.as_bytes()).error, None);
    let over = format!(
        "0\r\nX-Pad: {}\r\n\r\n",
        "p".repeat(limits.max_trailer_block - fixed + 1)
    );
    decode_rejects(over.as_bytes(), E::TrailerBlockTooLarge);
    assert_eq!(E::TrailerBlockTooLarge.status(), 431);
    let unfinished = format!("0\r\nX-Pad: {}", "p".repeat(limits.max_trailer_block + 1));
    decode_rejects(unfinished.as_bytes(), E::TrailerBlockTooLarge);
}

#[test]
fn rejects_too_many_trailers_with_431() {
    let fields: String = (0..limits().max_headers)
        .map(|i| format!("X-{i}: v\r\n"))
        .collect();
    let exact = format!("0\r\n{fields}\r\n");
    assert_eq!(decode_whole(exact.as_bytes()).error, None);
    let over = format!("0\r\n{fields}X-Last: v\r\n\r\n");
    decode_rejects(over.as_bytes(), E::TooManyTrailers);
    assert_eq!(E::TooManyTrailers.status(), 431);
}

// ---------------------------------------------------------------- other bodies and encoders

#[test]
fn content_length_body_tracks_remaining_bytes() {
    let mut body = ContentLengthBody::new(10);
    assert_eq!(
        body.decode(b""),
        Decoded {
            consumed: 0,
            event: Event::NeedMore
        }
    );
    assert_eq!(
        body.decode(b"0123"),
        Decoded {
            consumed: 4,
            event: Event::Data(0..4)
        }
    );
    assert_eq!(body.remaining(), 6);
    assert_eq!(
        body.decode(b"456789GET /"),
        Decoded {
            consumed: 6,
            event: Event::Data(0..6)
        }
    );
    assert!(body.is_done());
    assert_eq!(
        body.decode(b"GET /"),
        Decoded {
            consumed: 0,
            event: Event::End { trailers: 0..0 }
        }
    );
    let run = run_body(
        BodyDecoder::for_request(RequestFraming::ContentLength(5), &limits()),
        &[b"he", b"llo", b"NEXT"],
    );
    assert_eq!(run.data, b"hello");
    assert_eq!(run.rest, b"NEXT");
}

#[test]
fn body_decoder_for_each_framing() {
    let l = limits();
    assert!(BodyDecoder::for_request(RequestFraming::None, &l).is_done());
    assert!(BodyDecoder::for_response(ResponseFraming::None, &l).is_done());
    assert!(BodyDecoder::for_response(ResponseFraming::Tunnel, &l).is_done());
    assert!(BodyDecoder::for_request(RequestFraming::ContentLength(0), &l).is_done());

    let mut close = BodyDecoder::for_response(ResponseFraming::CloseDelimited, &l);
    assert_eq!(
        close.decode(b"abc").unwrap(),
        Decoded {
            consumed: 3,
            event: Event::Data(0..3)
        }
    );
    assert_eq!(
        close.decode(b"").unwrap(),
        Decoded {
            consumed: 0,
            event: Event::NeedMore
        }
    );
    assert!(!close.is_done());
    assert_eq!(close.on_eof(), Ok(()));

    let mut length = BodyDecoder::for_response(ResponseFraming::ContentLength(4), &l);
    length.decode(b"ab").unwrap();
    assert_eq!(length.on_eof(), Err(E::IncompleteBody));

    let mut chunked = BodyDecoder::for_response(ResponseFraming::Chunked, &l);
    chunked.decode(b"2\r\nab\r\n").unwrap();
    assert_eq!(chunked.on_eof(), Err(E::IncompleteBody));
    let run = run_body(chunked, &[b"\r\n0\r\n\r\n"]);
    assert_eq!(run.trailers.as_deref(), Some(&b"\r\n"[..]));
}

#[test]
fn chunk_header_encoding() {
    assert_eq!(ChunkHeader::new(0), None);
    for (size, text) in [
        (1u64, "1\r\n"),
        (15, "f\r\n"),
        (16, "10\r\n"),
        (255, "ff\r\n"),
        (4096, "1000\r\n"),
        (0xdead_beef, "deadbeef\r\n"),
        (u64::MAX, "ffffffffffffffff\r\n"),
    ] {
        assert_eq!(
            ChunkHeader::new(size).unwrap().as_bytes(),
            text.as_bytes(),
            "{size}"
        );
    }
    assert_eq!(
        LAST_CHUNK_NO_TRAILERS,
        [LAST_CHUNK, CHUNK_DATA_END].concat()
    );
}

#[test]
fn content_length_value_encoding() {
    for n in [0u64, 7, 10, 99, 12345, u64::MAX] {
        assert_eq!(
            ContentLengthValue::new(n).as_bytes(),
            n.to_string().as_bytes()
        );
    }
}

#[test]
fn reencoded_chunked_body_round_trips() {
    let mut rng = Rng::new(99);
    for _ in 0..200 {
        let payload: Vec<u8> = (0..rng.below(3000)).map(|_| rng.next() as u8).collect();
        let mut encoded = Vec::new();
        let mut rest = &payload[..];
        while !rest.is_empty() {
            let n = (rng.below(700) + 1).min(rest.len());
            encoded.extend_from_slice(ChunkHeader::new(n as u64).unwrap().as_bytes());
            encoded.extend_from_slice(&rest[..n]);
            encoded.extend_from_slice(CHUNK_DATA_END);
            rest = &rest[n..];
        }
        encoded.extend_from_slice(LAST_CHUNK);
        encoded.extend_from_slice(b"X-Sum: 1\r\n\r\n");
        let run = run_body(chunked(), &random_split(&encoded, &mut rng));
        assert_eq!(run.error, None);
        assert_eq!(run.data, payload);
        assert_eq!(run.trailers.as_deref(), Some(&b"X-Sum: 1\r\n\r\n"[..]));
    }
}

#[test]
fn state_sizes_stay_small() {
    // docs/http1.md quotes these; a head embeds the fixed field table.
    assert!(
        std::mem::size_of::<ChunkedDecoder>() <= 96,
        "{}",
        std::mem::size_of::<ChunkedDecoder>()
    );
    assert!(
        std::mem::size_of::<RequestHead>() <= 2700,
        "{}",
        std::mem::size_of::<RequestHead>()
    );
    assert!(
        std::mem::size_of::<ResponseHead>() <= 2700,
        "{}",
        std::mem::size_of::<ResponseHead>()
    );
}
