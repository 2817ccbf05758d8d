//! Request heads: positive cases and one test per rejection rule.

use super::*;
use HttpError as E;

// ---------------------------------------------------------------- positive cases

#[test]
fn simple_get() {
    let buf = b"GET /index.html?x=1 HTTP/1.1\r\nHost: example.com\r\nAccept: */*\r\n\r\n";
    let (head, consumed) = req(buf);
    assert_eq!(consumed, buf.len());
    assert_eq!(head.method(), Method::Get);
    assert_eq!(head.method_bytes(buf), b"GET");
    assert_eq!(head.target(buf), b"/index.html?x=1");
    assert_eq!(head.target_form(), TargetForm::Origin);
    assert_eq!(head.path_and_query(buf), b"/index.html?x=1");
    assert_eq!(head.target_authority(buf), None);
    assert_eq!(head.version(), Version::Http11);
    assert_eq!(head.host(buf), Some(&b"example.com"[..]));
    assert_eq!(head.authority(buf), Some(&b"example.com"[..]));
    assert_eq!(head.framing(), RequestFraming::None);
    assert!(head.keep_alive());
    assert!(!head.expects_continue());
    assert!(!head.is_upgrade());
    let fields: Vec<(&[u8], &[u8])> = head
        .headers()
        .iter(buf)
        .map(|h| (h.name, h.value))
        .collect();
    assert_eq!(
        fields,
        vec![(&b"Host"[..], &b"example.com"[..]), (b"Accept", b"*/*")]
    );
    assert_eq!(head.headers().find(b"accept", buf), Some(&b"*/*"[..]));
    assert_eq!(head.headers().len(), 2);
}

#[test]
fn post_with_content_length() {
    let buf = b"POST /submit HTTP/1.1\r\nHost: a\r\nContent-Length: 11\r\n\r\nhello world";
    let (head, consumed) = req(buf);
    assert_eq!(head.method(), Method::Post);
    assert_eq!(head.framing(), RequestFraming::ContentLength(11));
    assert_eq!(&buf[consumed..], b"hello world");
}

#[test]
fn chunked_request_framing() {
    let (head, _) = req(&get_with(&["Transfer-Encoding: chunked"]));
    assert_eq!(head.framing(), RequestFraming::Chunked);
    let (head, _) = req(&get_with(&["Transfer-Encoding: CHUNKED"]));
    assert_eq!(head.framing(), RequestFraming::Chunked);
    // Empty list elements are ignored (RFC 9110 §5.6.1).
    let (head, _) = req(&get_with(&["Transfer-Encoding: , chunked ,"]));
    assert_eq!(head.framing(), RequestFraming::Chunked);
}

#[test]
fn content_length_zero_and_leading_zeros_are_plain_decimals() {
    let (head, _) = req(&get_with(&["Content-Length: 0"]));
    assert_eq!(head.framing(), RequestFraming::ContentLength(0));
    let (head, _) = req(&get_with(&["Content-Length: 007"]));
    assert_eq!(head.framing(), RequestFraming::ContentLength(7));
    let (head, _) = req(&get_with(&["Content-Length: 18446744073709551615"]));
    assert_eq!(head.framing(), RequestFraming::ContentLength(u64::MAX));
}

#[test]
fn pipelined_requests() {
    let buf = b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n\
                POST /b HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc\
                GET /c HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    let (first, n1) = req(buf);
    assert_eq!(first.target(buf), b"/a");
    let rest = &buf[n1..];
    let (second, n2) = req(rest);
    assert_eq!(second.target(rest), b"/b");
    assert_eq!(second.framing(), RequestFraming::ContentLength(3));
    let rest = &rest[n2 + 3..];
    let (third, n3) = req(rest);
    assert_eq!(third.target(rest), b"/c");
    assert!(!third.keep_alive());
    assert_eq!(n3, rest.len());
}

#[test]
fn leading_empty_lines_are_skipped() {
    let buf = b"\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n";
    let (head, consumed) = req(buf);
    assert_eq!(consumed, buf.len());
    assert_eq!(head.target(buf), b"/");
}

#[test]
fn http10_keep_alive() {
    let (head, _) = req(b"GET / HTTP/1.0\r\n\r\n");
    assert_eq!(head.version(), Version::Http10);
    assert!(!head.keep_alive(), "HTTP/1.0 closes by default");
    assert_eq!(head.host(b""), None);
    let buf = b"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n";
    let (head, _) = req(buf);
    assert!(head.keep_alive());
    assert!(head.connection().keep_alive);
    let (head, _) = req(b"GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n");
    assert!(!head.keep_alive(), "close wins");
    let (head, _) = req(&get_with(&["Connection: close"]));
    assert!(!head.keep_alive());
    let (head, _) = req(&get_with(&["Connection: keep-alive"]));
    assert!(head.keep_alive());
}

#[test]
fn absolute_form() {
    let buf = b"GET http://Example.com:8080/p/q?x=1 HTTP/1.1\r\nHost: example.COM:8080\r\n\r\n";
    let (head, _) = req(buf);
    assert_eq!(head.target_form(), TargetForm::Absolute);
    assert_eq!(head.scheme(), Some(Scheme::Http));
    assert_eq!(head.target_authority(buf), Some(&b"Example.com:8080"[..]));
    assert_eq!(head.path_and_query(buf), b"/p/q?x=1");
    assert_eq!(head.authority(buf), Some(&b"Example.com:8080"[..]));

    // Default ports are equal to no port.
    let (head, _) = req(b"GET https://a.example/ HTTP/1.1\r\nHost: a.example:443\r\n\r\n");
    assert_eq!(head.scheme(), Some(Scheme::Https));
    let (head, _) = req(b"GET http://a.example:80 HTTP/1.1\r\nHost: a.example\r\n\r\n");
    let buf = b"GET http://a.example:80 HTTP/1.1\r\nHost: a.example\r\n\r\n";
    assert_eq!(head.path_and_query(buf), b"");
    let buf = b"GET http://a.example?q HTTP/1.1\r\nHost: a.example\r\n\r\n";
    let (head, _) = req(buf);
    assert_eq!(head.path_and_query(buf), b"?q");
    // HTTP/1.0 absolute-form needs no Host.
    let (head, _) = req(b"GET http://a.example/ HTTP/1.0\r\n\r\n");
    assert_eq!(head.target_form(), TargetForm::Absolute);
}

#[test]
fn connect_authority_form() {
    let buf = b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n";
    let (head, _) = req(buf);
    assert_eq!(head.method(), Method::Connect);
    assert_eq!(head.target_form(), TargetForm::Authority);
    assert_eq!(head.target_authority(buf), Some(&b"example.com:443"[..]));
    assert_eq!(head.path_and_query(buf), b"");
    assert_eq!(head.framing(), RequestFraming::None);
    assert_eq!(head.response_context().method, Method::Connect);
    // Host without a port is accepted for CONNECT; an IPv6 literal too.
    req(b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com\r\n\r\n");
    req(b"CONNECT [::1]:8443 HTTP/1.1\r\nHost: [::1]:8443\r\n\r\n");
    req(b"CONNECT a:1 HTTP/1.1\r\nHost: a:1\r\nContent-Length: 0\r\n\r\n");
}

#[test]
fn options_asterisk() {
    let buf = b"OPTIONS * HTTP/1.1\r\nHost: example.com\r\n\r\n";
    let (head, _) = req(buf);
    assert_eq!(head.method(), Method::Options);
    assert_eq!(head.target_form(), TargetForm::Asterisk);
    assert_eq!(head.target(buf), b"*");
    // OPTIONS may also use the other forms.
    req(b"OPTIONS /x HTTP/1.1\r\nHost: a\r\n\r\n");
}

#[test]
fn case_insensitive_header_names() {
    let buf = b"POST / HTTP/1.1\r\nhOsT: example.com\r\ncontent-LENGTH: 4\r\nCONNECTION: CLOSE\r\nexpect: 100-CONTINUE\r\n\r\n";
    let (head, _) = req(buf);
    assert_eq!(head.host(buf), Some(&b"example.com"[..]));
    assert_eq!(head.framing(), RequestFraming::ContentLength(4));
    assert!(!head.keep_alive());
    assert!(head.expects_continue());
    assert!(head.is_hop_by_hop(2));
    assert_eq!(head.headers().find(b"HOST", buf), Some(&b"example.com"[..]));
}

#[test]
fn multiple_connection_tokens() {
    let buf = get_with(&[
        "Connection: keep-alive, X-Custom ,, Upgrade",
        "X-Custom: secret",
        "x-other: kept",
        "Upgrade: websocket",
        "Connection: close",
        "Keep-Alive: timeout=5",
    ]);
    let (head, _) = req(&buf);
    let tokens: Vec<&[u8]> = head.connection_tokens(&buf).collect();
    assert_eq!(
        tokens,
        vec![&b"keep-alive"[..], b"X-Custom", b"Upgrade", b"close"]
    );
    let options = head.connection();
    assert!(options.close && options.keep_alive && options.upgrade);
    assert_eq!(options.count, 4);
    assert!(!head.keep_alive());
    let hop: Vec<(&[u8], bool)> = head
        .headers()
        .iter(&buf)
        .map(|h| (h.name, h.hop_by_hop))
        .collect();
    assert_eq!(
        hop,
        vec![
            (&b"Host"[..], false),
            (b"Connection", true),
            (b"X-Custom", true),
            (b"x-other", false),
            (b"Upgrade", true),
            (b"Connection", true),
            (b"Keep-Alive", true),
        ]
    );
}

#[test]
fn hop_by_hop_fixed_list() {
    for name in [
        "Connection",
        "keep-alive",
        "Proxy-Connection",
        "TE",
        "Trailer",
        "Transfer-Encoding",
        "UPGRADE",
        "Proxy-Authenticate",
        "Proxy-Authorization",
    ] {
        assert!(is_hop_by_hop_name(name.as_bytes()), "{name}");
    }
    for name in [
        "Host",
        "Content-Length",
        "X-Forwarded-For",
        "Cookie",
        "Trailers",
        "Proxy",
    ] {
        assert!(!is_hop_by_hop_name(name.as_bytes()), "{name}");
    }
    let buf = get_with(&[
        "TE: trailers",
        "Proxy-Connection: keep-alive",
        "Trailer: X-Sum",
        "Accept: */*",
    ]);
    let (head, _) = req(&buf);
    let marks: Vec<bool> = (0..head.headers().len())
        .map(|i| head.is_hop_by_hop(i))
        .collect();
    assert_eq!(marks, vec![false, true, true, true, false]);
    assert!(!head.is_hop_by_hop(99));
}

#[test]
fn header_count_at_the_limit_is_accepted_and_one_more_is_431() {
    let mut fields: Vec<String> = (1..100).map(|i| format!("X-H{i}: {i}")).collect();
    let refs: Vec<&str> = fields.iter().map(String::as_str).collect();
    let (head, _) = req(&get_with(&refs)); // Host + 99 = 100
    assert_eq!(head.headers().len(), 100);
    fields.push("X-Last: 1".into());
    let refs: Vec<&str> = fields.iter().map(String::as_str).collect();
    rejects(&get_with(&refs), E::TooManyHeaders, 431);
}

#[test]
fn custom_header_limit_is_clamped_to_capacity() {
    let fields: Vec<String> = (1..MAX_HEADERS_CAPACITY)
        .map(|i| format!("X-H{i}: {i}"))
        .collect();
    let refs: Vec<&str> = fields.iter().map(String::as_str).collect();
    let buf = get_with(&refs);
    let limits = Limits {
        max_headers: 10_000,
        max_header_block: 1 << 20,
        ..Limits::default()
    };
    assert!(limits.validate().is_err());
    let Ok(Status::Complete { head, .. }) = parse_request(&buf, &limits) else {
        panic!("expected complete")
    };
    assert_eq!(head.headers().len(), MAX_HEADERS_CAPACITY);
    let mut more = fields.clone();
    more.push("X-One-Too-Many: 1".into());
    let refs: Vec<&str> = more.iter().map(String::as_str).collect();
    assert_eq!(
        parse_request(&get_with(&refs), &limits).err(),
        Some(E::TooManyHeaders)
    );
}

#[test]
fn field_values_are_trimmed_and_may_be_empty_or_obs_text() {
    let buf = get_with(&[
        "X-Empty:",
        "X-Blank:  \t ",
        "X-Pad: \t a  b \t",
        "X-Latin: caf\u{e9}",
    ]);
    let (head, _) = req(&buf);
    let values: Vec<&[u8]> = head.headers().iter(&buf).map(|h| h.value).collect();
    assert_eq!(
        values,
        vec![
            &b"example.com"[..],
            b"",
            b"",
            b"a  b",
            "caf\u{e9}".as_bytes()
        ]
    );
}

#[test]
fn extension_and_lowercase_methods_are_tokens() {
    for method in ["get", "PURGE", "M-SEARCH", "X!#$%&'*+-.^_`|~9"] {
        let buf = format!("{method} / HTTP/1.1\r\nHost: a\r\n\r\n");
        let (head, _) = req(buf.as_bytes());
        assert_eq!(head.method(), Method::Other, "{method}");
        assert_eq!(head.method_bytes(buf.as_bytes()), method.as_bytes());
    }
    let (head, _) = req(b"PATCH / HTTP/1.1\r\nHost: a\r\n\r\n");
    assert_eq!(head.method(), Method::Patch);
}

#[test]
fn expect_100_continue() {
    let (head, _) = req(&get_with(&["Expect: 100-continue", "Content-Length: 10"]));
    assert!(head.expects_continue());
    let (head, _) = req(b"POST / HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\n");
    assert!(
        !head.expects_continue(),
        "ignored in HTTP/1.0 (RFC 9110 §10.1.1)"
    );
    let (head, _) = req(&get_with(&["Expect:"]));
    assert!(!head.expects_continue());
}

#[test]
fn upgrade_request() {
    let buf = get_with(&["Connection: Upgrade", "Upgrade: websocket, h2c/1"]);
    let (head, _) = req(&buf);
    assert!(head.is_upgrade());
    let protocols: Vec<&[u8]> = head.upgrade_protocols(&buf).collect();
    assert_eq!(protocols, vec![&b"websocket"[..], b"h2c/1"]);
    assert!(head.response_context().upgrade_requested);
    // Without the `upgrade` connection option, or in HTTP/1.0, Upgrade is ignored (and dropped
    // as hop-by-hop).
    let buf = get_with(&["Upgrade: websocket"]);
    let (head, _) = req(&buf);
    assert!(!head.is_upgrade());
    assert_eq!(head.upgrade_protocols(&buf).count(), 0);
    let (head, _) = req(b"GET / HTTP/1.0\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n");
    assert!(!head.is_upgrade());
}

#[test]
fn host_syntax_accepted() {
    for host in [
        "example.com",
        "EXAMPLE.com.",
        "a-b_c~d.example",
        "127.0.0.1:8080",
        "[::1]",
        "[2001:db8::1]:443",
        "localhost:65535",
        "xn--bcher-kva.example",
    ] {
        let buf = format!("GET / HTTP/1.1\r\nHost: {host}\r\n\r\n");
        let (head, _) = req(buf.as_bytes());
        assert_eq!(head.host(buf.as_bytes()), Some(host.as_bytes()));
    }
}

#[test]
fn limits_validate() {
    assert_eq!(Limits::default().validate(), Ok(()));
    assert_eq!(Limits::default(), Limits::DEFAULT);
    assert_eq!(Limits::DEFAULT.max_request_line, 8192);
    assert_eq!(Limits::DEFAULT.max_header_block, 16384);
    assert_eq!(Limits::DEFAULT.max_headers, 100);
    for bad in [
        Limits {
            max_headers: 0,
            ..Limits::DEFAULT
        },
        Limits {
            max_headers: 129,
            ..Limits::DEFAULT
        },
        Limits {
            max_request_line: 0,
            ..Limits::DEFAULT
        },
        Limits {
            max_header_block: usize::MAX,
            ..Limits::DEFAULT
        },
        Limits {
            max_chunk_line: 0,
            ..Limits::DEFAULT
        },
        Limits {
            max_chunk_size: 0,
            ..Limits::DEFAULT
        },
        Limits {
            max_trailer_block: 1,
            ..Limits::DEFAULT
        },
    ] {
        assert!(bad.validate().is_err(), "{bad:?}");
    }
}

#[test]
fn error_status_and_reason() {
    assert_eq!(E::RequestLineTooLong.status(), 414);
    assert_eq!(E::TooManyHeaders.to_string(), "too many header fields");
    let e = ResponseError(E::InvalidStatusCode);
    assert_eq!(e.status(), 502);
    assert!(e.to_string().contains("invalid status code"));
}

// ---------------------------------------------------------------- rejections: framing

#[test]
fn rejects_content_length_with_transfer_encoding() {
    rejects(
        &get_with(&["Content-Length: 5", "Transfer-Encoding: chunked"]),
        E::ContentLengthWithTransferEncoding,
        400,
    );
    rejects(
        &get_with(&["Transfer-Encoding: chunked", "Content-Length: 5"]),
        E::ContentLengthWithTransferEncoding,
        400,
    );
    // Even a Content-Length that is itself invalid, or a TE that is itself unsupported.
    rejects(
        &get_with(&["Transfer-Encoding: gzip, chunked", "Content-Length: x"]),
        E::ContentLengthWithTransferEncoding,
        400,
    );
}

#[test]
fn rejects_duplicate_content_length() {
    rejects(
        &get_with(&["Content-Length: 5", "Content-Length: 5"]),
        E::DuplicateContentLength,
        400,
    );
}

#[test]
fn rejects_conflicting_content_length() {
    rejects(
        &get_with(&["Content-Length: 5", "Content-Length: 6"]),
        E::ConflictingContentLength,
        400,
    );
}

#[test]
fn rejects_content_length_list() {
    for v in ["5, 5", "5,5", "5,6", ",", "5,"] {
        rejects(
            &get_with(&[&format!("Content-Length: {v}")]),
            E::ContentLengthList,
            400,
        );
    }
}

#[test]
fn rejects_content_length_with_sign() {
    for v in ["+5", "-5", "-0"] {
        rejects(
            &get_with(&[&format!("Content-Length: {v}")]),
            E::InvalidContentLength,
            400,
        );
    }
}

#[test]
fn rejects_content_length_with_inner_space() {
    for v in ["5 5", "1\t0", "1 "] {
        let expected = if v == "1 " {
            None
        } else {
            Some(E::InvalidContentLength)
        };
        let buf = get_with(&[&format!("Content-Length: {v}")]);
        match expected {
            Some(e) => rejects(&buf, e, 400),
            // Trailing whitespace is OWS around the value, not inside it.
            None => assert_eq!(req(&buf).0.framing(), RequestFraming::ContentLength(1)),
        }
    }
}

#[test]
fn rejects_content_length_non_digits() {
    for v in ["abc", "0x10", "5.0", "1e3", "\u{665}", "5;", "\"5\""] {
        rejects(
            &get_with(&[&format!("Content-Length: {v}")]),
            E::InvalidContentLength,
            400,
        );
    }
}

#[test]
fn rejects_empty_content_length() {
    rejects(
        &get_with(&["Content-Length:"]),
        E::InvalidContentLength,
        400,
    );
    rejects(
        &get_with(&["Content-Length:   "]),
        E::InvalidContentLength,
        400,
    );
}

#[test]
fn rejects_content_length_overflow() {
    rejects(
        &get_with(&["Content-Length: 18446744073709551616"]),
        E::ContentLengthOverflow,
        400,
    );
    rejects(
        &get_with(&["Content-Length: 99999999999999999999999999"]),
        E::ContentLengthOverflow,
        400,
    );
}

#[test]
fn rejects_malformed_second_content_length_by_its_syntax() {
    rejects(
        &get_with(&["Content-Length: 5", "Content-Length: x"]),
        E::InvalidContentLength,
        400,
    );
}

#[test]
fn rejects_transfer_coding_other_than_chunked_with_501() {
    rejects(
        &get_with(&["Transfer-Encoding: gzip, chunked"]),
        E::UnsupportedTransferCoding,
        501,
    );
    rejects(
        &get_with(&["Transfer-Encoding: gzip", "Transfer-Encoding: chunked"]),
        E::UnsupportedTransferCoding,
        501,
    );
    rejects(
        &get_with(&["Transfer-Encoding: x-custom;q=1, chunked"]),
        E::UnsupportedTransferCoding,
        501,
    );
}

#[test]
fn rejects_chunked_not_final() {
    for v in ["chunked, gzip", "gzip", "identity", "deflate"] {
        rejects(
            &get_with(&[&format!("Transfer-Encoding: {v}")]),
            E::ChunkedNotFinal,
            400,
        );
    }
    rejects(
        &get_with(&["Transfer-Encoding: chunked", "Transfer-Encoding: gzip"]),
        E::ChunkedNotFinal,
        400,
    );
}

#[test]
fn rejects_chunked_twice() {
    rejects(
        &get_with(&["Transfer-Encoding: chunked, chunked"]),
        E::ChunkedTwice,
        400,
    );
    rejects(
        &get_with(&["Transfer-Encoding: chunked", "Transfer-Encoding: Chunked"]),
        E::ChunkedTwice,
        400,
    );
}

#[test]
fn rejects_transfer_encoding_in_http10() {
    rejects(
        b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n",
        E::TransferEncodingInHttp10,
        400,
    );
}

#[test]
fn rejects_invalid_transfer_encoding_syntax() {
    for v in [
        "",
        " , ",
        "chunked;x=1",
        "chunked x",
        "\"chunked\"",
        "chunked;",
        "gzip;q",
        "a/b",
    ] {
        rejects(
            &get_with(&[&format!("Transfer-Encoding: {v}")]),
            E::InvalidTransferEncoding,
            400,
        );
    }
}

#[test]
fn rejects_connect_with_body() {
    rejects(
        b"CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\nContent-Length: 5\r\n\r\n",
        E::ConnectWithBody,
        400,
    );
    rejects(
        b"CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\nTransfer-Encoding: chunked\r\n\r\n",
        E::ConnectWithBody,
        400,
    );
}

// ---------------------------------------------------------------- rejections: field lines

#[test]
fn rejects_obs_fold() {
    rejects(
        b"GET / HTTP/1.1\r\nHost: a\r\nX-A: b\r\n c\r\n\r\n",
        E::ObsFold,
        400,
    );
    rejects(
        b"GET / HTTP/1.1\r\nHost: a\r\nX-A: b\r\n\tc\r\n\r\n",
        E::ObsFold,
        400,
    );
}

#[test]
fn rejects_whitespace_after_start_line() {
    rejects(
        b"GET / HTTP/1.1\r\n Host: a\r\n\r\n",
        E::WhitespaceAfterStartLine,
        400,
    );
    rejects(
        b"GET / HTTP/1.1\r\n\tHost: a\r\n\r\n",
        E::WhitespaceAfterStartLine,
        400,
    );
}

#[test]
fn rejects_whitespace_before_colon() {
    rejects(
        b"GET / HTTP/1.1\r\nHost : a\r\n\r\n",
        E::WhitespaceBeforeColon,
        400,
    );
    rejects(
        b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length\t: 5\r\n\r\n",
        E::WhitespaceBeforeColon,
        400,
    );
}

#[test]
fn rejects_invalid_header_name_chars() {
    for line in [
        &b"Fo\"o: a"[..],
        b"Foo@bar: a",
        b": a",
        b"Fo\x00o: a",
        b"\xc3\x96l: a",
        b"Foo(bar): a",
        b"Foo/bar: a",
        b"No colon here",
        b"Foo\rBar: a",
        b"X-A b: c",
    ] {
        let mut buf = b"GET / HTTP/1.1\r\nHost: a\r\n".to_vec();
        buf.extend_from_slice(line);
        buf.extend_from_slice(b"\r\n\r\n");
        rejects(&buf, E::InvalidHeaderName, 400);
    }
    // A lone CR where a field line should start.
    rejects(
        b"GET / HTTP/1.1\r\nHost: a\r\n\rX\r\n\r\n",
        E::InvalidHeaderName,
        400,
    );
}

#[test]
fn rejects_control_chars_in_values() {
    for value in [
        &b"a\x00b"[..],
        b"a\x01b",
        b"a\x7fb",
        b"a\rb",
        b"\x1b[31m",
        b"a\x0bb",
        b"a\x0cb",
    ] {
        let mut buf = b"GET / HTTP/1.1\r\nHost: a\r\nX-V: ".to_vec();
        buf.extend_from_slice(value);
        buf.extend_from_slice(b"\r\n\r\n");
        rejects(&buf, E::InvalidHeaderValue, 400);
    }
}

#[test]
fn rejects_bare_lf() {
    for buf in [
        &b"GET / HTTP/1.1\nHost: a\r\n\r\n"[..],
        b"GET / HTTP/1.1\r\nHost: a\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\r\n\n",
        b"GET / HTTP/1.1\r\nHost: a\r\nX-A\n: b\r\n\r\n",
        b"\nGET / HTTP/1.1\r\nHost: a\r\n\r\n",
        b"\r\n\nGET / HTTP/1.1\r\nHost: a\r\n\r\n",
        b"GET / HTTP/1.1\n\n",
        b"GET\n",
    ] {
        rejects(buf, E::BareLf, 400);
    }
}

// ---------------------------------------------------------------- rejections: Host

#[test]
fn rejects_missing_host_in_http11() {
    rejects(b"GET / HTTP/1.1\r\n\r\n", E::MissingHost, 400);
    rejects(
        b"GET / HTTP/1.1\r\nHostname: a\r\n\r\n",
        E::MissingHost,
        400,
    );
    // Absolute-form does not exempt HTTP/1.1 from Host.
    rejects(b"GET http://a/ HTTP/1.1\r\n\r\n", E::MissingHost, 400);
}

#[test]
fn rejects_multiple_host() {
    rejects(&get_with(&["Host: example.com"]), E::MultipleHost, 400);
    rejects(&get_with(&["Host: other.example"]), E::MultipleHost, 400);
    rejects(
        b"GET / HTTP/1.0\r\nHost: a\r\nHost: b\r\n\r\n",
        E::MultipleHost,
        400,
    );
}

#[test]
fn rejects_invalid_host() {
    for host in [
        "",
        "a b",
        "user@host",
        "host:",
        "host:0",
        "host:65536",
        "host:123456",
        "host:abc",
        "host:+80",
        "[::1",
        "[::1]x",
        "[fe80::1%25eth0]",
        "[v1.fe]",
        "[127.0.0.1]",
        ".example.com",
        "a..b",
        "host/path",
        "host:80:80",
        "*",
        "exa%6dple.com",
        "a,b",
        "h\u{f6}st",
    ] {
        let buf = format!("GET / HTTP/1.1\r\nHost: {host}\r\n\r\n");
        rejects(buf.as_bytes(), E::InvalidHost, 400);
    }
}

#[test]
fn rejects_host_mismatch_with_absolute_form() {
    rejects(
        b"GET http://a.example/ HTTP/1.1\r\nHost: b.example\r\n\r\n",
        E::HostMismatch,
        400,
    );
    rejects(
        b"GET http://a.example:8080/ HTTP/1.1\r\nHost: a.example\r\n\r\n",
        E::HostMismatch,
        400,
    );
    rejects(
        b"GET http://a.example/ HTTP/1.1\r\nHost: a.example:443\r\n\r\n",
        E::HostMismatch,
        400,
    );
    rejects(
        b"GET https://a.example/ HTTP/1.1\r\nHost: a.example:80\r\n\r\n",
        E::HostMismatch,
        400,
    );
}

#[test]
fn rejects_host_mismatch_with_authority_form() {
    rejects(
        b"CONNECT a.example:443 HTTP/1.1\r\nHost: b.example:443\r\n\r\n",
        E::HostMismatch,
        400,
    );
    rejects(
        b"CONNECT a.example:443 HTTP/1.1\r\nHost: a.example:444\r\n\r\n",
        E::HostMismatch,
        400,
    );
}

// ---------------------------------------------------------------- rejections: request line

#[test]
fn rejects_http09() {
    rejects(b"GET /\r\n\r\n", E::Http09, 400);
    rejects(b"GET /\r\n", E::Http09, 400);
    rejects(b"GET /index.html\n", E::Http09, 400);
}

#[test]
fn rejects_unsupported_versions_with_505() {
    for v in [
        "HTTP/2.0", "HTTP/1.2", "HTTP/1.9", "HTTP/3.0", "HTTP/0.9", "HTTP/9.9",
    ] {
        let buf = format!("GET / {v}\r\nHost: a\r\n\r\n");
        rejects(buf.as_bytes(), E::UnsupportedVersion, 505);
    }
    // The h2 prior-knowledge preface is an HTTP/2.0 request line to this codec.
    rejects(
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
        E::UnsupportedVersion,
        505,
    );
}

#[test]
fn rejects_invalid_versions() {
    for v in [
        "http/1.1",
        "HTTP/1.10",
        "HTTP/1",
        "HTTP/11",
        "HTTPS/1.1",
        "HTTP/1.1x",
        "FOO",
        "HTTP/1,1",
        "HTTP/a.b",
        "HTTP/1.1\rX",
    ] {
        let buf = format!("GET / {v}\r\nHost: a\r\n\r\n");
        rejects(buf.as_bytes(), E::InvalidVersion, 400);
    }
}

#[test]
fn rejects_extra_spaces_in_request_line() {
    for line in [
        "GET  / HTTP/1.1",
        "GET /  HTTP/1.1",
        "GET / HTTP/1.1 ",
        "GET / HTTP/1.1\t",
        "GET\t/ HTTP/1.1",
        "GET /\tHTTP/1.1",
        "GET / \t HTTP/1.1",
        "GET / ",
        "GET ",
        "GET",
    ] {
        let buf = format!("{line}\r\nHost: a\r\n\r\n");
        rejects(buf.as_bytes(), E::MalformedRequestLine, 400);
    }
}

#[test]
fn rejects_empty_method() {
    rejects(b" / HTTP/1.1\r\nHost: a\r\n\r\n", E::EmptyMethod, 400);
    rejects(b" GET / HTTP/1.1\r\nHost: a\r\n\r\n", E::EmptyMethod, 400);
    rejects(b"\tGET / HTTP/1.1\r\nHost: a\r\n\r\n", E::EmptyMethod, 400);
}

#[test]
fn rejects_invalid_method_chars() {
    for method in [
        &b"GE(T"[..],
        b"G\x00T",
        b"\x16\x03\x01\x02",
        b"G\xc3\x89T",
        b"GET/",
        b"[GET]",
        b"\rGET",
    ] {
        let mut buf = method.to_vec();
        buf.extend_from_slice(b" / HTTP/1.1\r\nHost: a\r\n\r\n");
        rejects(&buf, E::InvalidMethod, 400);
    }
}

#[test]
fn rejects_invalid_target_chars() {
    for target in [
        &b"/a#frag"[..],
        b"/a\x00",
        b"/a\x7f",
        b"/caf\xc3\xa9",
        b"/%zz",
        b"/%4",
        b"/%",
        b"/a\rb",
        b"/a\x0bb",
    ] {
        let mut buf = b"GET ".to_vec();
        buf.extend_from_slice(target);
        buf.extend_from_slice(b" HTTP/1.1\r\nHost: a\r\n\r\n");
        rejects(&buf, E::InvalidTarget, 400);
    }
    // Well-formed escapes are fine.
    req(b"GET /%41%2f%e9?q=%7E HTTP/1.1\r\nHost: a\r\n\r\n");
}

#[test]
fn rejects_target_form_mismatch() {
    rejects(
        b"CONNECT / HTTP/1.1\r\nHost: a\r\n\r\n",
        E::TargetFormMismatch,
        400,
    );
    rejects(
        b"CONNECT * HTTP/1.1\r\nHost: a\r\n\r\n",
        E::TargetFormMismatch,
        400,
    );
    rejects(
        b"CONNECT http://a:443/ HTTP/1.1\r\nHost: a\r\n\r\n",
        E::TargetFormMismatch,
        400,
    );
    rejects(
        b"GET * HTTP/1.1\r\nHost: a\r\n\r\n",
        E::TargetFormMismatch,
        400,
    );
    rejects(
        b"GET a.example:80 HTTP/1.1\r\nHost: a\r\n\r\n",
        E::TargetFormMismatch,
        400,
    );
    rejects(
        b"POST localhost:8080 HTTP/1.1\r\nHost: a\r\n\r\n",
        E::TargetFormMismatch,
        400,
    );
}

#[test]
fn rejects_invalid_absolute_target() {
    for target in [
        "ftp://a/",
        "HTTPX://a/",
        "http:/a",
        "http://",
        "http:///x",
        "http://user@a/",
        "http://user:pw@a/",
        "http://a:0/",
        "http://a:/",
        "http://[::1/",
        "mailto:a@b",
        "a",
        "?",
    ] {
        let buf = format!("GET {target} HTTP/1.1\r\nHost: a\r\n\r\n");
        rejects(buf.as_bytes(), E::InvalidTarget, 400);
    }
}

#[test]
fn rejects_invalid_authority_form() {
    for target in [
        "a.example",
        "a.example:",
        ":443",
        "a.example:99999",
        "user@a:443",
        "a:443/x",
    ] {
        let buf = format!("CONNECT {target} HTTP/1.1\r\nHost: a\r\n\r\n");
        rejects(buf.as_bytes(), E::InvalidTarget, 400);
    }
}

// ---------------------------------------------------------------- rejections: limits

#[test]
fn rejects_request_line_too_long_with_414() {
    let limits = limits();
    // "GET " + target + " HTTP/1.1" is exactly the limit.
    let target_len = limits.max_request_line - "GET  HTTP/1.1".len();
    let exact = format!(
        "GET /{} HTTP/1.1\r\nHost: a\r\n\r\n",
        "a".repeat(target_len - 1)
    );
    assert_eq!(exact.find('\r'), Some(limits.max_request_line));
    req(exact.as_bytes());
    let over = format!(
        "GET /{} HTTP/1.1\r\nHost: a\r\n\r\n",
        "a".repeat(target_len)
    );
    rejects(over.as_bytes(), E::RequestLineTooLong, 414);
    // Also while the line is still arriving: no need to wait for its end.
    let partial = format!("GET /{}", "a".repeat(limits.max_request_line + 10));
    rejects(partial.as_bytes(), E::RequestLineTooLong, 414);
    // Empty lines before it count.
    let padded = format!("\r\n{exact}");
    rejects(padded.as_bytes(), E::RequestLineTooLong, 414);
}

#[test]
fn rejects_header_block_too_large_with_431() {
    let limits = limits();
    let request_line = "GET / HTTP/1.1\r\n";
    let fixed = "Host: a\r\nX-Pad: \r\n\r\n".len();
    let exact = format!(
        "{request_line}Host: a\r\nX-Pad: {}\r\n\r\n",
        "p".repeat(limits.max_header_block - fixed)
    );
    assert_eq!(exact.len() - request_line.len(), limits.max_header_block);
    req(exact.as_bytes());
    let over = format!(
        "{request_line}Host: a\r\nX-Pad: {}\r\n\r\n",
        "p".repeat(limits.max_header_block - fixed + 1)
    );
    rejects(over.as_bytes(), E::HeaderBlockTooLarge, 431);
    let partial = format!(
        "{request_line}X-Pad: {}",
        "p".repeat(limits.max_header_block)
    );
    rejects(partial.as_bytes(), E::HeaderBlockTooLarge, 431);
}

#[test]
fn rejects_too_many_headers_with_431() {
    let fields: Vec<String> = (0..150).map(|i| format!("X-{i}: v")).collect();
    let refs: Vec<&str> = fields.iter().map(String::as_str).collect();
    rejects(&get_with(&refs), E::TooManyHeaders, 431);
}

// ---------------------------------------------------------------- rejections: connection management

#[test]
fn rejects_invalid_connection_option() {
    for v in ["close, foo bar", "\"close\"", "keep-alive;x", "a/b"] {
        rejects(
            &get_with(&[&format!("Connection: {v}")]),
            E::InvalidConnection,
            400,
        );
    }
}

#[test]
fn rejects_connection_naming_end_to_end_fields() {
    rejects(
        &get_with(&["Connection: close, Host"]),
        E::ConnectionNamesEndToEnd,
        400,
    );
    rejects(
        &get_with(&["Connection: content-length", "Content-Length: 0"]),
        E::ConnectionNamesEndToEnd,
        400,
    );
}

#[test]
fn rejects_too_many_connection_tokens() {
    let ok: Vec<String> = (0..MAX_CONNECTION_OPTIONS)
        .map(|i| format!("x-{i}"))
        .collect();
    req(&get_with(&[&format!("Connection: {}", ok.join(", "))]));
    let over: Vec<String> = (0..=MAX_CONNECTION_OPTIONS)
        .map(|i| format!("x-{i}"))
        .collect();
    rejects(
        &get_with(&[&format!("Connection: {}", over.join(", "))]),
        E::TooManyConnectionTokens,
        400,
    );
}

#[test]
fn rejects_invalid_upgrade() {
    for v in ["websocket/", "/1", "web socket", "h2c/1/2", "\"ws\""] {
        rejects(
            &get_with(&["Connection: upgrade", &format!("Upgrade: {v}")]),
            E::InvalidUpgrade,
            400,
        );
    }
}

#[test]
fn rejects_unsupported_expectation_with_417() {
    rejects(&get_with(&["Expect: foo"]), E::UnsupportedExpectation, 417);
    rejects(
        &get_with(&["Expect: 100-continue, foo=bar"]),
        E::UnsupportedExpectation,
        417,
    );
    rejects(
        &get_with(&["Expect: 100-continue;x"]),
        E::UnsupportedExpectation,
        417,
    );
}

#[test]
fn reused_head_parses_like_a_fresh_one() {
    let mut head = RequestHead::new();
    let first = get_with(&[
        "Connection: upgrade, x-a",
        "Upgrade: websocket",
        "x-a: 1",
        "Expect: 100-continue",
        "Content-Length: 3",
    ]);
    assert_eq!(head.parse(&first, &limits()), Ok(Some(first.len())));
    assert!(head.is_upgrade() && head.expects_continue());
    assert_eq!(head.parse(b"GET / HTT", &limits()), Ok(None));
    assert_eq!(
        head.parse(b"GET / HTTP/1.1\r\n\r\n", &limits()),
        Err(E::MissingHost)
    );
    let second = b"GET http://a/x HTTP/1.0\r\nHost: a\r\n\r\n";
    assert_eq!(head.parse(second, &limits()), Ok(Some(second.len())));
    let (fresh, _) = req(second);
    assert_eq!(format!("{head:?}"), format!("{fresh:?}"));

    let mut response = ResponseHead::new();
    let buf = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: x\r\nx: 1\r\n\r\nok";
    assert_eq!(
        response.parse(buf, ctx(Method::Get), &limits()),
        Ok(Some(buf.len() - 2))
    );
    let buf = b"HTTP/1.0 304 Not Modified\r\n\r\n";
    assert_eq!(
        response.parse(buf, ctx(Method::Get), &limits()),
        Ok(Some(buf.len()))
    );
    let (fresh, _) = res(buf, ctx(Method::Get));
    assert_eq!(format!("{response:?}"), format!("{fresh:?}"));
    assert_eq!(
        response.parse(
            b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n",
            ctx(Method::Get),
            &limits()
        ),
        Err(ResponseError(E::InvalidContentLength))
    );
}
