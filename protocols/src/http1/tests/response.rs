//! Response heads: framing per RFC 9112 §6.3, interim responses, and one test per rejection
//! rule (every rejection is a 502).

use super::*;
use HttpError as E;

#[test]
fn simple_response_with_content_length() {
    let buf = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Type: text/plain\r\n\r\nhello";
    let (head, consumed) = res(buf, ctx(Method::Get));
    assert_eq!(head.version(), Version::Http11);
    assert_eq!(head.status(), 200);
    assert_eq!(head.reason(buf), b"OK");
    assert_eq!(head.framing(), ResponseFraming::ContentLength(5));
    assert!(head.keep_alive());
    assert!(!head.is_informational());
    assert_eq!(&buf[consumed..], b"hello");
    assert_eq!(head.headers().len(), 2);
}

#[test]
fn chunked_response() {
    let (head, _) = res(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
        ctx(Method::Get),
    );
    assert_eq!(head.framing(), ResponseFraming::Chunked);
    assert!(head.keep_alive());
    assert!(head.is_hop_by_hop(0));
}

#[test]
fn close_delimited_response() {
    let (head, _) = res(b"HTTP/1.1 200 OK\r\n\r\n", ctx(Method::Get));
    assert_eq!(head.framing(), ResponseFraming::CloseDelimited);
    assert!(
        !head.keep_alive(),
        "a close-delimited body ends the connection"
    );
    let (head, _) = res(
        b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\n\r\n",
        ctx(Method::Get),
    );
    assert_eq!(head.framing(), ResponseFraming::CloseDelimited);
    assert!(!head.keep_alive());
}

#[test]
fn head_response_has_no_body() {
    let (head, _) = res(
        b"HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\n",
        ctx(Method::Head),
    );
    assert_eq!(head.framing(), ResponseFraming::None);
    assert!(head.keep_alive());
    let (head, _) = res(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
        ctx(Method::Head),
    );
    assert_eq!(head.framing(), ResponseFraming::None);
    let (head, _) = res(b"HTTP/1.1 200 OK\r\n\r\n", ctx(Method::Head));
    assert_eq!(head.framing(), ResponseFraming::None);
    assert!(head.keep_alive());
}

#[test]
fn no_content_statuses_have_no_body() {
    for status in [
        "204 No Content",
        "304 Not Modified",
        "100 Continue",
        "103 Early Hints",
    ] {
        let buf = format!("HTTP/1.1 {status}\r\n\r\n");
        let (head, _) = res(buf.as_bytes(), ctx(Method::Get));
        assert_eq!(head.framing(), ResponseFraming::None, "{status}");
        assert!(head.keep_alive());
    }
    // 304 may carry the Content-Length of the representation, and Transfer-Encoding.
    let (head, _) = res(
        b"HTTP/1.1 304 Not Modified\r\nContent-Length: 99\r\n\r\n",
        ctx(Method::Get),
    );
    assert_eq!(head.framing(), ResponseFraming::None);
    let (head, _) = res(
        b"HTTP/1.1 304 Not Modified\r\nTransfer-Encoding: chunked\r\n\r\n",
        ctx(Method::Get),
    );
    assert_eq!(head.framing(), ResponseFraming::None);
    // Content-Length: 0 on a 204 is harmless.
    let (head, _) = res(
        b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n",
        ctx(Method::Get),
    );
    assert_eq!(head.framing(), ResponseFraming::None);
}

#[test]
fn interim_responses_before_the_final_one() {
    let buf = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </s.css>; rel=preload\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n";
    let mut rest = &buf[..];
    let mut statuses = Vec::new();
    loop {
        let (head, consumed) = res(rest, ctx(Method::Post));
        statuses.push(head.status());
        rest = &rest[consumed..];
        if !head.is_interim() {
            assert_eq!(head.framing(), ResponseFraming::ContentLength(0));
            break;
        }
        assert!(head.is_informational());
    }
    assert_eq!(statuses, vec![100, 103, 201]);
    assert!(rest.is_empty());
}

#[test]
fn switching_protocols_recognised() {
    let request = get_with(&["Connection: Upgrade", "Upgrade: websocket"]);
    let (req_head, _) = req(&request);
    let buf = b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n\x81\x05hello";
    let (head, consumed) = res(buf, req_head.response_context());
    assert!(head.is_switching_protocols());
    assert!(head.is_informational());
    assert!(!head.is_interim());
    assert!(
        !head.keep_alive(),
        "the connection now carries another protocol"
    );
    assert_eq!(head.framing(), ResponseFraming::None);
    assert_eq!(
        head.upgrade_protocols(buf).collect::<Vec<_>>(),
        vec![&b"websocket"[..]]
    );
    assert_eq!(&buf[consumed..], b"\x81\x05hello");
}

#[test]
fn connect_2xx_is_a_tunnel() {
    let (head, _) = res(
        b"HTTP/1.1 200 Connection Established\r\n\r\n",
        ctx(Method::Connect),
    );
    assert_eq!(head.framing(), ResponseFraming::Tunnel);
    assert!(!head.keep_alive());
    // Framing fields on a 2xx to CONNECT are ignored (RFC 9110 §9.3.6), even bogus ones.
    let (head, _) = res(
        b"HTTP/1.1 200 OK\r\nContent-Length: x\r\nTransfer-Encoding: gzip\r\n\r\n",
        ctx(Method::Connect),
    );
    assert_eq!(head.framing(), ResponseFraming::Tunnel);
    // A refused CONNECT has an ordinary body.
    let (head, _) = res(
        b"HTTP/1.1 407 Proxy Auth\r\nContent-Length: 3\r\n\r\n",
        ctx(Method::Connect),
    );
    assert_eq!(head.framing(), ResponseFraming::ContentLength(3));
}

#[test]
fn keep_alive_rules() {
    let (head, _) = res(
        b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        ctx(Method::Get),
    );
    assert!(!head.keep_alive());
    let (head, _) = res(
        b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n",
        ctx(Method::Get),
    );
    assert!(!head.keep_alive());
    let (head, _) = res(
        b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\nConnection: keep-alive\r\n\r\n",
        ctx(Method::Get),
    );
    assert!(head.keep_alive());
    assert_eq!(head.version(), Version::Http10);
    let buf =
        b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: X-Internal\r\nX-Internal: 1\r\n\r\n";
    let (head, _) = res(buf, ctx(Method::Get));
    assert!(head.is_hop_by_hop(2));
    assert_eq!(
        head.connection_tokens(buf).collect::<Vec<_>>(),
        vec![&b"X-Internal"[..]]
    );
}

#[test]
fn reason_phrase_may_be_empty_or_missing() {
    let (head, _) = res(
        b"HTTP/1.1 200 \r\nContent-Length: 0\r\n\r\n",
        ctx(Method::Get),
    );
    assert_eq!(head.status(), 200);
    let buf = b"HTTP/1.1 404\r\nContent-Length: 0\r\n\r\n";
    let (head, _) = res(buf, ctx(Method::Get));
    assert_eq!(head.status(), 404);
    assert_eq!(head.reason(buf), b"");
    let buf = "HTTP/1.1 200 Tr\u{e8}s bien\t!\r\nContent-Length: 0\r\n\r\n";
    let (head, _) = res(buf.as_bytes(), ctx(Method::Get));
    assert_eq!(head.reason(buf.as_bytes()), "Tr\u{e8}s bien\t!".as_bytes());
}

// ---------------------------------------------------------------- rejections (502)

#[test]
fn rejects_response_content_length_with_transfer_encoding() {
    res_rejects(
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
        ctx(Method::Get),
        E::ContentLengthWithTransferEncoding,
    );
    res_rejects(
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
        ctx(Method::Head),
        E::ContentLengthWithTransferEncoding,
    );
}

#[test]
fn rejects_response_duplicate_and_conflicting_content_length() {
    res_rejects(
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n",
        ctx(Method::Get),
        E::DuplicateContentLength,
    );
    res_rejects(
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
        ctx(Method::Get),
        E::ConflictingContentLength,
    );
    res_rejects(
        b"HTTP/1.1 200 OK\r\nContent-Length: 5, 5\r\n\r\n",
        ctx(Method::Get),
        E::ContentLengthList,
    );
}

#[test]
fn rejects_response_invalid_content_length() {
    res_rejects(
        b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
        ctx(Method::Get),
        E::InvalidContentLength,
    );
    res_rejects(
        b"HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999\r\n\r\n",
        ctx(Method::Get),
        E::ContentLengthOverflow,
    );
    // Invalid even where no body follows.
    res_rejects(
        b"HTTP/1.1 304 Not Modified\r\nContent-Length: x\r\n\r\n",
        ctx(Method::Get),
        E::InvalidContentLength,
    );
}

#[test]
fn rejects_response_transfer_coding_other_than_chunked() {
    res_rejects(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
        ctx(Method::Get),
        E::UnsupportedTransferCoding,
    );
    res_rejects(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
        ctx(Method::Get),
        E::ChunkedNotFinal,
    );
    res_rejects(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, chunked\r\n\r\n",
        ctx(Method::Get),
        E::ChunkedTwice,
    );
}

#[test]
fn rejects_response_transfer_encoding_in_http10() {
    res_rejects(
        b"HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
        ctx(Method::Get),
        E::TransferEncodingInHttp10,
    );
}

#[test]
fn rejects_framing_on_no_content_responses() {
    res_rejects(
        b"HTTP/1.1 204 No Content\r\nTransfer-Encoding: chunked\r\n\r\n",
        ctx(Method::Get),
        E::FramingOnNoContent,
    );
    res_rejects(
        b"HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n",
        ctx(Method::Get),
        E::FramingOnNoContent,
    );
    res_rejects(
        b"HTTP/1.1 100 Continue\r\nContent-Length: 5\r\n\r\n",
        ctx(Method::Get),
        E::FramingOnNoContent,
    );
}

#[test]
fn rejects_response_field_line_faults() {
    let g = ctx(Method::Get);
    res_rejects(
        b"HTTP/1.1 200 OK\r\nX-A: b\r\n c\r\nContent-Length: 0\r\n\r\n",
        g,
        E::ObsFold,
    );
    res_rejects(
        b"HTTP/1.1 200 OK\r\nContent-Length : 0\r\n\r\n",
        g,
        E::WhitespaceBeforeColon,
    );
    res_rejects(
        b"HTTP/1.1 200 OK\r\n Content-Length: 0\r\n\r\n",
        g,
        E::WhitespaceAfterStartLine,
    );
    res_rejects(b"HTTP/1.1 200 OK\r\nContent-Length: 0\n\r\n", g, E::BareLf);
    res_rejects(b"HTTP/1.1 200 OK\nContent-Length: 0\r\n\r\n", g, E::BareLf);
    res_rejects(
        b"HTTP/1.1 200 OK\r\nX-A: a\x00b\r\n\r\n",
        g,
        E::InvalidHeaderValue,
    );
    res_rejects(
        b"HTTP/1.1 200 OK\r\nX A: b\r\n\r\n",
        g,
        E::InvalidHeaderName,
    );
}

#[test]
fn rejects_invalid_status_code() {
    for line in [
        "HTTP/1.1 099 Low",
        "HTTP/1.1 600 High",
        "HTTP/1.1 20 OK",
        "HTTP/1.1 2000 OK",
        "HTTP/1.1 abc OK",
        "HTTP/1.1  200 OK",
        "HTTP/1.1 -20 OK",
    ] {
        let buf = format!("{line}\r\n\r\n");
        res_rejects(buf.as_bytes(), ctx(Method::Get), E::InvalidStatusCode);
    }
}

#[test]
fn rejects_invalid_status_line() {
    for line in [
        "HTTP/1.1\t200 OK",
        "http/1.1 200 OK",
        "ICY 200 OK",
        "HTTP/1.1 200\tOK",
        "HTTP/1.1 200x",
    ] {
        let buf = format!("{line}\r\n\r\n");
        res_rejects(buf.as_bytes(), ctx(Method::Get), E::InvalidStatusLine);
    }
    // No leading empty lines in responses.
    res_rejects(
        b"\r\nHTTP/1.1 200 OK\r\n\r\n",
        ctx(Method::Get),
        E::InvalidStatusLine,
    );
}

#[test]
fn rejects_response_versions() {
    res_rejects(
        b"HTTP/2.0 200 OK\r\n\r\n",
        ctx(Method::Get),
        E::UnsupportedVersion,
    );
    res_rejects(
        b"HTTP/1.2 200 OK\r\n\r\n",
        ctx(Method::Get),
        E::UnsupportedVersion,
    );
    res_rejects(
        b"HTTP/1.x 200 OK\r\n\r\n",
        ctx(Method::Get),
        E::InvalidVersion,
    );
    res_rejects(
        b"HTTP/1.10 200 OK\r\n\r\n",
        ctx(Method::Get),
        E::InvalidVersion,
    );
    res_rejects(
        b"HTTP/1.1200 OK\r\n\r\n",
        ctx(Method::Get),
        E::InvalidVersion,
    );
}

#[test]
fn rejects_control_characters_in_reason_phrase() {
    res_rejects(
        b"HTTP/1.1 200 O\x00K\r\n\r\n",
        ctx(Method::Get),
        E::InvalidReasonPhrase,
    );
    res_rejects(
        b"HTTP/1.1 200 O\rK\r\n\r\n",
        ctx(Method::Get),
        E::InvalidReasonPhrase,
    );
    res_rejects(
        b"HTTP/1.1 200 OK\x7f\r\n\r\n",
        ctx(Method::Get),
        E::InvalidReasonPhrase,
    );
}

#[test]
fn rejects_unexpected_switching_protocols() {
    res_rejects(
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n",
        ctx(Method::Get),
        E::UnexpectedSwitchingProtocols,
    );
}

#[test]
fn rejects_switching_protocols_without_upgrade() {
    let upgrade = ResponseContext {
        method: Method::Get,
        upgrade_requested: true,
    };
    res_rejects(
        b"HTTP/1.1 101 Switching Protocols\r\nConnection: upgrade\r\n\r\n",
        upgrade,
        E::MissingUpgrade,
    );
    res_rejects(
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade:\r\n\r\n",
        upgrade,
        E::MissingUpgrade,
    );
    res_rejects(
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: a b\r\n\r\n",
        upgrade,
        E::InvalidUpgrade,
    );
}

#[test]
fn rejects_response_limits() {
    let long = format!(
        "HTTP/1.1 200 {}\r\n\r\n",
        "r".repeat(limits().max_request_line)
    );
    res_rejects(long.as_bytes(), ctx(Method::Get), E::StatusLineTooLong);
    let big = format!(
        "HTTP/1.1 200 OK\r\nX-Big: {}\r\n\r\n",
        "b".repeat(limits().max_header_block)
    );
    res_rejects(big.as_bytes(), ctx(Method::Get), E::HeaderBlockTooLarge);
    let many: String = (0..101).map(|i| format!("X-{i}: v\r\n")).collect();
    let buf = format!("HTTP/1.1 200 OK\r\n{many}\r\n");
    res_rejects(buf.as_bytes(), ctx(Method::Get), E::TooManyHeaders);
}

#[test]
fn rejects_response_connection_naming_content_length() {
    res_rejects(
        b"HTTP/1.1 200 OK\r\nConnection: Content-Length\r\nContent-Length: 2\r\n\r\nok",
        ctx(Method::Get),
        E::ConnectionNamesEndToEnd,
    );
}
