//! First-bytes protocol classifier for sniffing listeners.
//!
//! Owns: deciding, from the first bytes a client sends on a sniffing listener, whether the
//! connection is TLS, HTTP/2 with prior knowledge, HTTP/1.x or something else (plain TCP), with
//! one pure function, [`classify`]. Must not: do IO, allocate, keep state between calls, or own a
//! deadline. The caller reads, calls [`classify`] with everything read so far, and reads again
//! on [`Verdict::NeedMore`]; it owns the sniff deadline (a client that sends nothing, such as a
//! server-speaks-first protocol, never gets a verdict) and falls back to [`Sniffed::Tcp`] when it
//! expires. A PROXY protocol header, if the listener accepts one, is stripped before sniffing.
//!
//! # Rules
//!
//! Checked in this order on the bytes at the start of the stream:
//!
//! 1. **TLS**: a TLS record starts with its content type, then the record's `ProtocolVersion`.
//!    A client's first record is a handshake (type 22, `0x16`) whose version is `0x0300` (SSL 3.0)
//!    to `0x0304` (RFC 8446 §5.1: `legacy_record_version` is `0x0301` for a first ClientHello,
//!    `0x0303` otherwise; older stacks send `0x0300`..`0x0303`). `0x16 0x03 0x00..=0x04` is
//!    [`Sniffed::Tls`] after 3 bytes; `0x16` followed by anything else is [`Sniffed::Tcp`].
//!    `0x16` is a control character, so no text protocol starts with it. SSL 2.0-style hellos
//!    (first byte with the high bit set) are not TLS here: they are [`Sniffed::Tcp`].
//! 2. **HTTP/2 with prior knowledge**: the connection starts with the 24-byte client connection
//!    preface [`H2_PREFACE`] (RFC 9113 §3.4). It is checked before HTTP/1 because `PRI` is also a
//!    valid HTTP/1 method token: while the bytes are a proper prefix of the preface the verdict is
//!    [`Verdict::NeedMore`]. Bytes that leave the preface fall through to the HTTP/1 rule (the
//!    preface was designed to look like an HTTP/1.1 request that servers reject, RFC 9113 §3.4).
//! 3. **HTTP/1.x**: anything that an HTTP/1 server could take for the start of a request line,
//!    well formed or not, is [`Sniffed::Http1`], so that the strict codec sees it and refuses what
//!    is malformed (400). A sniffing listener must never relay a malformed request to its TCP
//!    route verbatim: with `protocol = "auto"` that route's upstream is the HTTP origin itself,
//!    and the fallback would carry exactly the bytes the codec exists to refuse (smuggling by
//!    classification). So the rule names what is *not* HTTP, and everything else is HTTP:
//!    - a leading run of CR and LF bytes (RFC 9112 §2.2's empty lines, bare or not) is skipped;
//!      a run longer than [`MAX_LEADING_EOL`] is HTTP (the codec skips any number of CRLFs);
//!    - a line starting with SP or HTAB followed by SP, HTAB or a tchar is HTTP (leading
//!      whitespace before a method);
//!    - a line starting with a control byte, DEL or a delimiter (RFC 9110 §5.6.2:
//!      `"(),/:;<=>?@[\]{}`) is [`Sniffed::Tcp`]: a method is a token, so such a line is not a
//!      request line for any HTTP parser (binary protocols start with a control byte, a length
//!      or a magic number; JSON with `{`);
//!    - `SSH-` at the start is [`Sniffed::Tcp`] (the SSH identification string, RFC 4253 §4.2,
//!      `SSH-protoversion-softwareversion SP comments`, would otherwise look like a method and
//!      more words);
//!    - otherwise the line's first word (printable bytes and high bytes, started by a tchar or a
//!      high byte: a method with bytes >= 0x80 is malformed HTTP, not another protocol) is HTTP when it is followed by SP or HTAB (one or more, a tab, a missing target:
//!      the codec decides), when its leading token is a registered method ([`REGISTERED_METHODS`],
//!      ignoring case) whatever follows the token (`GET\r\n`, `GET/`, `GET\xff`), or when it is
//!      longer than [`MAX_METHOD_LEN`] bytes (an over-long method: the codec's request-line
//!      limit decides);
//!    - a short first word that ends the line (CR, LF) or meets a control byte, and is not a
//!      registered method, is [`Sniffed::Tcp`]: `hello\n`, Redis `PING\r\n` and RESP `*1\r\n`,
//!      AMQP's `AMQP\0`.
//! 4. **Anything else** is [`Sniffed::Tcp`].
//!
//! # Guarantees
//!
//! - Every verdict depends only on a bounded prefix: once `bytes.len() >= SNIFF_MAX` the answer
//!   is never [`Verdict::NeedMore`].
//! - Monotone: once a prefix is [`Verdict::Known`], every extension of it gets the same verdict,
//!   so the caller may stop reading at the first `Known`.
//! - The verdict is a guess about the protocol family, not a validation: text protocols that
//!   look like `WORD SP word` (a Redis inline command `SET k v`, memcached `get k`) are
//!   [`Sniffed::Http1`] and are then refused by the HTTP/1 codec, as is a line protocol whose
//!   first word is an HTTP method (STOMP's `CONNECT`) or is over 20 bytes long. Such protocols
//!   need a listener without `http1` in its `protocols`.

use crate::http1::syntax::is_tchar;

/// What the first bytes look like.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sniffed {
    /// A TLS handshake record.
    Tls,
    /// The HTTP/2 client connection preface (prior knowledge, cleartext).
    Http2,
    /// The start of an HTTP/1.x request line.
    Http1,
    /// Anything else: relay as opaque bytes.
    Tcp,
}

/// The answer for the bytes read so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Decided; longer input would give the same answer.
    Known(Sniffed),
    /// The bytes are a prefix of more than one possible answer: read more.
    NeedMore,
}

/// The HTTP/2 client connection preface (RFC 9113 §3.4).
pub const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// CR and LF bytes skipped before a request line; a longer run is HTTP/1 (the codec decides).
pub const MAX_LEADING_EOL: usize = 8;

/// A first word longer than this is an over-long method: HTTP/1, whatever follows (the longest
/// registered method, `UPDATEREDIRECTREF`, is 17 bytes).
pub const MAX_METHOD_LEN: usize = 20;

/// Bytes after which classification is always decided: the longest input that can still be
/// undecided is `MAX_LEADING_EOL` line-end bytes and a 20-byte first word; TLS decides after 3
/// bytes and HTTP/2 after the 24-byte preface.
pub const SNIFF_MAX: usize = MAX_LEADING_EOL + MAX_METHOD_LEN + 1;

const _: () = assert!(SNIFF_MAX >= H2_PREFACE.len());

/// TLS record content type `handshake` (RFC 8446 §5.1).
const TLS_HANDSHAKE: u8 = 0x16;
/// Major version byte of every SSL 3.0 / TLS record version.
const TLS_MAJOR: u8 = 0x03;
/// Highest minor version byte accepted in a record header (TLS 1.3's `0x0304`).
const TLS_MAX_MINOR: u8 = 0x04;
/// The SSH identification string's fixed start (RFC 4253 §4.2).
const SSH_PREFIX: &[u8] = b"SSH-";

/// Classifies the bytes read so far. Never returns NeedMore once `bytes.len() >= SNIFF_MAX`.
pub fn classify(bytes: &[u8]) -> Verdict {
    let Some(&first) = bytes.first() else {
        return Verdict::NeedMore;
    };
    if first == TLS_HANDSHAKE {
        return classify_tls(bytes);
    }
    if bytes.len() >= H2_PREFACE.len() {
        if bytes.starts_with(H2_PREFACE) {
            return Verdict::Known(Sniffed::Http2);
        }
    } else if H2_PREFACE.starts_with(bytes) {
        return Verdict::NeedMore;
    }
    classify_http1(bytes)
}

/// Rule 1; `bytes` starts with `0x16`.
fn classify_tls(bytes: &[u8]) -> Verdict {
    match bytes.get(1) {
        None => Verdict::NeedMore,
        Some(&TLS_MAJOR) => match bytes.get(2) {
            None => Verdict::NeedMore,
            Some(&minor) if minor <= TLS_MAX_MINOR => Verdict::Known(Sniffed::Tls),
            Some(_) => Verdict::Known(Sniffed::Tcp),
        },
        Some(_) => Verdict::Known(Sniffed::Tcp),
    }
}

/// Rule 3 (and 4 when it does not match).
fn classify_http1(bytes: &[u8]) -> Verdict {
    let eol = bytes
        .iter()
        .take_while(|&&b| matches!(b, b'\r' | b'\n'))
        .count();
    if eol > MAX_LEADING_EOL {
        return Verdict::Known(Sniffed::Http1);
    }
    let line = &bytes[eol..];
    let Some(&first) = line.first() else {
        return Verdict::NeedMore;
    };
    if is_blank(first) {
        return match line.get(1) {
            None => Verdict::NeedMore,
            Some(&b) if is_blank(b) || is_tchar(b) || b >= 0x80 => Verdict::Known(Sniffed::Http1),
            Some(_) => Verdict::Known(Sniffed::Tcp),
        };
    }
    if !is_tchar(first) && first < 0x80 {
        return Verdict::Known(Sniffed::Tcp);
    }
    classify_first_word(line)
}

/// The first word of a line that starts with a tchar or a high byte: decides on the byte that ends it, or on
/// its length.
fn classify_first_word(line: &[u8]) -> Verdict {
    let token_len = line.iter().take_while(|&&b| is_tchar(b)).count();
    if line.starts_with(SSH_PREFIX) {
        return Verdict::Known(Sniffed::Tcp);
    }
    if token_len > MAX_METHOD_LEN {
        return Verdict::Known(Sniffed::Http1);
    }
    let Some(&end) = line.get(token_len) else {
        return Verdict::NeedMore;
    };
    if is_blank(end) || is_registered_method(&line[..token_len]) {
        return Verdict::Known(Sniffed::Http1);
    }
    // A method glued to other printable bytes (`G\xffT`, `FOO/`): still a request line if a
    // blank follows the word, or if the word is longer than any method.
    for (i, &b) in line.iter().enumerate().skip(token_len) {
        if i > MAX_METHOD_LEN {
            return Verdict::Known(Sniffed::Http1);
        }
        if is_blank(b) {
            return Verdict::Known(Sniffed::Http1);
        }
        if !is_word_byte(b) {
            return Verdict::Known(Sniffed::Tcp);
        }
    }
    if line.len() > MAX_METHOD_LEN {
        return Verdict::Known(Sniffed::Http1);
    }
    Verdict::NeedMore
}

/// SP or HTAB: what separates the parts of a request line, leniently (RFC 9112 §3 allows only
/// SP; the codec refuses the rest, so any blank sends the line there).
const fn is_blank(b: u8) -> bool {
    matches!(b, b' ' | b'\t')
}

/// A byte of a line's first word: printable ASCII other than SP, or any byte with the high bit
/// set (obs-text).
const fn is_word_byte(b: u8) -> bool {
    matches!(b, 0x21..=0x7e | 0x80..=0xff)
}

/// The methods of the IANA HTTP Method Registry (RFC 9110 §16.1), matched ignoring ASCII case:
/// a line that starts with one of them is an HTTP request line whatever follows it.
const REGISTERED_METHODS: &[&[u8]] = &[
    b"ACL",
    b"BASELINE-CONTROL",
    b"BIND",
    b"CHECKIN",
    b"CHECKOUT",
    b"CONNECT",
    b"COPY",
    b"DELETE",
    b"GET",
    b"HEAD",
    b"LABEL",
    b"LINK",
    b"LOCK",
    b"MERGE",
    b"MKACTIVITY",
    b"MKCALENDAR",
    b"MKCOL",
    b"MKREDIRECTREF",
    b"MKWORKSPACE",
    b"MOVE",
    b"OPTIONS",
    b"ORDERPATCH",
    b"PATCH",
    b"POST",
    b"PRI",
    b"PROPFIND",
    b"PROPPATCH",
    b"PUT",
    b"QUERY",
    b"REBIND",
    b"REPORT",
    b"SEARCH",
    b"TRACE",
    b"UNBIND",
    b"UNCHECKOUT",
    b"UNLINK",
    b"UNLOCK",
    b"UPDATE",
    b"UPDATEREDIRECTREF",
    b"VERSION-CONTROL",
];

fn is_registered_method(token: &[u8]) -> bool {
    REGISTERED_METHODS
        .iter()
        .any(|m| m.eq_ignore_ascii_case(token))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tls_hello::tests::rustls_hello;

    const TLS: Verdict = Verdict::Known(Sniffed::Tls);
    const H2: Verdict = Verdict::Known(Sniffed::Http2);
    const H1: Verdict = Verdict::Known(Sniffed::Http1);
    const TCP: Verdict = Verdict::Known(Sniffed::Tcp);
    const MORE: Verdict = Verdict::NeedMore;

    /// Every prefix shorter than `decided_at` is NeedMore, every longer one (up to the whole
    /// input) is `expected`.
    #[track_caller]
    fn assert_prefixes(input: &[u8], decided_at: usize, expected: Verdict) {
        assert!(decided_at <= input.len());
        for n in 0..=input.len() {
            let want = if n < decided_at { MORE } else { expected };
            assert_eq!(
                classify(&input[..n]),
                want,
                "prefix {n} of {:?}",
                String::from_utf8_lossy(input)
            );
        }
    }

    /// A deterministic xorshift64 generator (no rand crate).
    struct XorShift(u64);

    impl XorShift {
        fn next(&mut self) -> u64 {
            let mut x = self.0;
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            self.0 = x;
            x
        }

        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }

        /// Bytes drawn from an alphabet that reaches every rule: tchar, SP, CR, LF, target
        /// starts, the TLS and SSH prefixes' bytes, the preface's bytes, and any byte.
        fn interesting_byte(&mut self) -> u8 {
            const ALPHABET: &[u8] = b"GETPOSHRI*/ \r\n-._~!SM[0123Aaz:\"(@";
            match self.below(8) {
                0 => self.next() as u8,
                1 => [0x16, 0x03, 0x01, 0x04, 0x05][self.below(5)],
                _ => ALPHABET[self.below(ALPHABET.len())],
            }
        }

        /// A random input that often starts like one of the rules' prefixes.
        fn input(&mut self, len: usize) -> Vec<u8> {
            let mut v: Vec<u8> = match self.below(6) {
                0 => H2_PREFACE[..self.below(H2_PREFACE.len() + 1)].to_vec(),
                1 => b"\r\n\r\n"[..self.below(5)].to_vec(),
                2 => vec![0x16, 0x03],
                3 => b"SSH-2.0"[..self.below(8)].to_vec(),
                _ => Vec::new(),
            };
            v.truncate(len);
            while v.len() < len {
                let b = self.interesting_byte();
                v.push(b);
            }
            v
        }
    }

    #[test]
    fn empty_input_needs_more() {
        assert_eq!(classify(b""), MORE);
    }

    #[test]
    fn sniff_max_is_the_tight_bound() {
        assert_eq!(SNIFF_MAX, 29);
        // The longest undecided input: eight line-end bytes and a 20-byte first word.
        let mut worst = b"\r\n\n\r\r\n\r\n".to_vec();
        worst.extend_from_slice(&[b'A'; MAX_METHOD_LEN]);
        assert_eq!(worst.len(), SNIFF_MAX - 1);
        assert_eq!(classify(&worst), MORE);
        let mut longer = worst.clone();
        longer.push(b'A');
        assert_eq!(classify(&longer), H1);
        worst.push(b'\n');
        assert_eq!(classify(&worst), TCP);
    }

    #[test]
    fn every_prefix_of_the_h2_preface() {
        assert_prefixes(H2_PREFACE, H2_PREFACE.len(), H2);
        // The preface followed by the client's SETTINGS frame.
        let mut with_settings = H2_PREFACE.to_vec();
        with_settings.extend_from_slice(&[0, 0, 6, 4, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0, 100]);
        assert_prefixes(&with_settings, H2_PREFACE.len(), H2);
    }

    #[test]
    fn bytes_leaving_the_preface_fall_back_to_http1_or_tcp() {
        // Diverging at every position of the preface: the HTTP/1 rule decides on the bytes so
        // far (PRI SP * is an HTTP/1 request line start; before that it is tchar only).
        for i in 0..H2_PREFACE.len() {
            let mut input = H2_PREFACE[..i].to_vec();
            input.push(0x00);
            // `PRI` is a registered method: whatever follows it is a request line.
            let want = if i >= 3 { H1 } else { TCP };
            assert_eq!(classify(&input), want, "diverging at {i}");
        }
        // Leaves the preface at its 12th byte (`1` for `2`).
        assert_prefixes(b"PRI * HTTP/1.1\r\n", 12, H1);
        assert_prefixes(b"PRI / HTTP/1.1\r\n", 5, H1);
        assert_prefixes(b"PRIX / HTTP/1.1\r\n", 5, H1);
        // Leading CRLF: not the preface (it must be the very first bytes, RFC 9113 §3.4).
        let mut late = b"\r\n".to_vec();
        late.extend_from_slice(H2_PREFACE);
        assert_prefixes(&late, 6, H1);
    }

    #[test]
    fn every_prefix_of_a_real_client_hello() {
        let hello = rustls_hello("api.example.com", &[b"h2"], true);
        assert_prefixes(&hello, 3, TLS);
        let tls12 = rustls_hello("api.example.com", &[], false);
        assert_prefixes(&tls12, 3, TLS);
    }

    #[test]
    fn tls_record_header_rules() {
        for minor in 0x00..=0x04u8 {
            assert_prefixes(&[0x16, 0x03, minor, 0x00, 0x10], 3, TLS);
        }
        for minor in 0x05..=0xffu8 {
            assert_prefixes(&[0x16, 0x03, minor, 0x00, 0x10], 3, TCP);
        }
        for major in (0..=0xffu8).filter(|&m| m != 0x03) {
            assert_prefixes(&[0x16, major, 0x01, 0x00, 0x10], 2, TCP);
        }
        // Other record types (alert, application data) are not a client's first bytes.
        for ty in [0x14u8, 0x15, 0x17, 0x18] {
            assert_eq!(classify(&[ty, 0x03, 0x03, 0x00, 0x10]), TCP);
        }
        // SSL 2.0-compatible ClientHello (high bit set length header).
        assert_eq!(classify(&[0x80, 0x2e, 0x01, 0x03, 0x01]), TCP);
    }

    #[test]
    fn every_prefix_of_a_request_line() {
        assert_prefixes(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n", 4, H1);
        assert_prefixes(b"GET /index.html HTTP/1.0\r\n\r\n", 4, H1);
    }

    #[test]
    fn standard_and_extension_methods() {
        let methods: &[&str] = &[
            // RFC 9110 §9.
            "GET",
            "HEAD",
            "POST",
            "PUT",
            "DELETE",
            "CONNECT",
            "OPTIONS",
            "TRACE",
            // RFC 5789.
            "PATCH",
            // WebDAV and friends (IANA HTTP Method Registry).
            "PROPFIND",
            "PROPPATCH",
            "MKCOL",
            "COPY",
            "MOVE",
            "LOCK",
            "UNLOCK",
            "SEARCH",
            "REPORT",
            "MKACTIVITY",
            "MKCALENDAR",
            "VERSION-CONTROL",
            "BASELINE-CONTROL",
            "UPDATEREDIRECTREF",
            "ORDERPATCH",
            "ACL",
            "BIND",
            "QUERY",
            // Extension methods seen in the wild, and every tchar symbol.
            "PURGE",
            "M-SEARCH",
            "NOTIFY",
            "get",
            "X",
            "!#$%&'*+-.^_`|~09azAZ",
        ];
        for m in methods {
            let m = &m[..m.len().min(MAX_METHOD_LEN)];
            for target in ["/", "/x?y=1", "*", "http://example.com/", "example.com:443"] {
                let line = format!("{m} {target} HTTP/1.1\r\n");
                assert_prefixes(line.as_bytes(), m.len() + 1, H1);
            }
        }
    }

    #[test]
    fn request_target_forms() {
        assert_prefixes(b"GET http://example.com/ HTTP/1.1\r\n", 4, H1);
        assert_prefixes(b"GET HTTPS://EXAMPLE.COM/ HTTP/1.1\r\n", 4, H1);
        assert_prefixes(b"OPTIONS * HTTP/1.1\r\n", 8, H1);
        assert_prefixes(b"CONNECT example.com:443 HTTP/1.1\r\n", 8, H1);
        assert_prefixes(b"CONNECT 192.0.2.1:443 HTTP/1.1\r\n", 8, H1);
        assert_prefixes(b"CONNECT [2001:db8::1]:443 HTTP/1.1\r\n", 8, H1);
        // Whatever follows `method SP` goes to the codec, which refuses what is not a target.
        for b in [
            b' ', b'\r', b'\n', b'?', b'#', b'"', b'<', 0x00, 0x7f, 0x80, 0xff,
        ] {
            assert_eq!(
                classify(&[b'G', b'E', b'T', b' ', b]),
                H1,
                "target byte {b:#x}"
            );
        }
    }

    #[test]
    fn every_byte_in_every_position_of_a_short_request() {
        for b in 0..=255u8 {
            // As the first byte.
            let want = match b {
                0x16 | b'\r' | b'\n' | b' ' | b'\t' | 0x80..=0xff => MORE,
                _ if is_tchar(b) => MORE,
                _ => TCP,
            };
            assert_eq!(classify(&[b]), want, "first byte {b:#x}");
            // Inside the method (`G` is no method, so the word goes on).
            let want = match b {
                b' ' | b'\t' => H1,
                _ if is_word_byte(b) => MORE,
                _ => TCP,
            };
            assert_eq!(classify(&[b'G', b]), want, "method byte {b:#x}");
            // After a registered method: a request line whatever ends the token.
            let want = if is_tchar(b) { MORE } else { H1 };
            assert_eq!(
                classify(&[b'G', b'E', b'T', b]),
                want,
                "byte {b:#x} after GET"
            );
            // As the target's first byte: the codec decides.
            assert_eq!(classify(&[b'G', b' ', b]), H1, "target byte {b:#x}");
        }
    }

    #[test]
    fn method_length_limit() {
        let mut line = vec![b'M'; MAX_METHOD_LEN];
        line.extend_from_slice(b" / HTTP/1.1\r\n");
        assert_prefixes(&line, MAX_METHOD_LEN + 1, H1);
        // Longer than any method: an over-long method, refused by the codec, never relayed.
        let mut long = vec![b'M'; MAX_METHOD_LEN + 1];
        long.extend_from_slice(b" / HTTP/1.1\r\n");
        assert_prefixes(&long, MAX_METHOD_LEN + 1, H1);
        assert_eq!(classify(&vec![b'M'; 100_000]), H1);
        // A short word that ends the line is not HTTP; one byte longer, it is.
        let mut word = vec![b'w'; MAX_METHOD_LEN];
        word.push(b'\n');
        assert_prefixes(&word, MAX_METHOD_LEN + 1, TCP);
    }

    #[test]
    fn malformed_request_line_starts() {
        // Each of these is malformed HTTP: the codec must see it (and answer 400).
        let malformed: &[&[u8]] = &[
            b" GET / HTTP/1.1",
            b"\tGET / HTTP/1.1",
            b"  GET / HTTP/1.1",
            b"GET  / HTTP/1.1",
            b"GET\t/ HTTP/1.1",
            b"GET \t/ HTTP/1.1",
            b"GET HTTP/1.1\r\n",
            b"GET  HTTP/1.1\r\n",
            b"GET\r\n",
            b"GET\n",
            b"get\r\n",
            b"Delete\r\n",
            b"GET\x00/ HTTP/1.1",
            b"GE(T / HTTP/1.1",
            b"GET: / HTTP/1.1",
            b"GET/ HTTP/1.1",
            b"GET/index.html HTTP/1.1",
            b"FOO/ HTTP/1.1",
            b"G\xffET / HTTP/1.1",
            b"GET\xff / HTTP/1.1",
            b"\xc3\xa9T / HTTP/1.1",
            b"\xffGET / HTTP/1.1",
            b"M\x80\x80\x80\x80\x80\x80\x80\x80\x80\x80\x80\x80\x80\x80\x80\x80\x80\x80\x80\x80",
            b"\nGET / HTTP/1.1",
            b"\r\n\r\n\r\nGET / HTTP/1.1",
            b"\r\r\r\r\r\r\r\r\r\rGET / HTTP/1.1",
            b"POST\t/x HTTP/1.0\r\n",
            b"PUT /a\tHTTP/1.1\r\n",
        ];
        for input in malformed {
            assert_eq!(classify(input), H1, "{:?}", String::from_utf8_lossy(input));
            assert_monotone(input);
        }
    }

    /// Request lines broken in the ways a lenient HTTP parser may still accept: none of them may
    /// ever fall back to TCP (the fallback would relay them to an upstream unchecked).
    #[test]
    fn mutated_request_lines_are_never_tcp() {
        let mut rng = XorShift(0x5851_f42d_4c95_7f2d);
        let methods: &[&[u8]] = &[
            b"GET", b"POST", b"PUT", b"DELETE", b"PATCH", b"HEAD", b"OPTIONS", b"PURGE", b"get",
            b"X",
        ];
        let seps: &[&[u8]] = &[b" ", b"  ", b"\t", b" \t", b"\t\t"];
        let targets: &[&[u8]] = &[b"/", b"/a?b=1", b"*", b"http://h/", b"", b"\"/\"", b"\xff/"];
        let junk: &[&[u8]] = &[b"", b"\r\n", b"\n", b"\r", b"\r\n\r\n\r\n", b" ", b"\t"];
        for _ in 0..100_000 {
            let mut line = junk[rng.below(junk.len())].to_vec();
            let mut method = methods[rng.below(methods.len())].to_vec();
            // Sometimes a high byte or a delimiter inside the method, or a very long one.
            match rng.below(6) {
                0 => method.insert(rng.below(method.len() + 1).max(1), 0x80 | rng.next() as u8),
                1 => method.insert(rng.below(method.len()).max(1), b"/:(@\""[rng.below(5)]),
                2 => method.extend(std::iter::repeat_n(b'A', MAX_METHOD_LEN)),
                _ => {}
            }
            line.extend_from_slice(&method);
            line.extend_from_slice(seps[rng.below(seps.len())]);
            line.extend_from_slice(targets[rng.below(targets.len())]);
            line.extend_from_slice(seps[rng.below(seps.len())]);
            line.extend_from_slice(b"HTTP/1.1\r\n");
            let v = classify(&line);
            assert_eq!(v, H1, "{:?}", String::from_utf8_lossy(&line));
        }
    }

    #[test]
    fn leading_empty_lines() {
        assert_prefixes(b"\r\nGET / HTTP/1.1\r\n", 6, H1);
        assert_prefixes(b"\r\n\r\nGET / HTTP/1.1\r\n", 8, H1);
        assert_prefixes(b"\r\n\r\n\r\nGET / HTTP/1.1\r\n", 10, H1);
        for n in 1..=MAX_LEADING_EOL {
            assert_eq!(classify(&b"\r\n\r\n\r\n\r\n"[..n]), MORE);
        }
        // Longer runs are HTTP: the codec skips CRLFs (or refuses bare ones) and decides.
        assert_eq!(classify(b"\r\n\r\n\r\n\r\n\r"), H1);
        assert_eq!(classify(&[b'\n'; MAX_LEADING_EOL + 1]), H1);
        // Bare CR or LF lines before a request line go to the codec too (which refuses them).
        assert_eq!(classify(b"\nGET "), H1);
        assert_eq!(classify(b"\rGET "), H1);
        // ... but before a word that ends the line they are not HTTP.
        assert_eq!(classify(b"\r\nhello\r\n"), TCP);
        // CRLF then a TLS or h2 start is not TLS or h2.
        assert_eq!(classify(b"\r\n\x16\x03\x01"), TCP);
    }

    #[test]
    fn ssh_banners_are_tcp() {
        // All tchar up to CR: not a request line.
        assert_prefixes(b"SSH-2.0-OpenSSH_9.6\r\n", 4, TCP);
        // Banners with comments would look like `method SP target` without the SSH rule.
        assert_prefixes(b"SSH-2.0-OpenSSH_9.6 FreeBSD-20240104\r\n", 4, TCP);
        assert_prefixes(b"SSH-2.0-OpenSSH_8.9p1 Ubuntu-3ubuntu0.6\r\n", 4, TCP);
        assert_prefixes(b"SSH-1.99-Cisco-1.25\r\n", 4, TCP);
        // Only the exact prefix: methods starting with SSH are still HTTP.
        assert_prefixes(b"SSHX / HTTP/1.1\r\n", 5, H1);
        assert_prefixes(b"SSH / HTTP/1.1\r\n", 4, H1);
    }

    #[test]
    fn other_protocols_are_tcp() {
        // Redis RESP.
        assert_prefixes(b"*1\r\n$4\r\nPING\r\n", 3, TCP);
        // PostgreSQL SSLRequest and startup message.
        assert_prefixes(&[0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f], 1, TCP);
        // MySQL has the server speak first; a client's handshake response starts with a length.
        assert_prefixes(&[0x55, 0x00, 0x00, 0x01, 0x8d, 0xa6], 2, TCP);
        // PROXY protocol v2 signature (must be stripped before sniffing).
        assert_prefixes(b"\r\n\r\n\0\r\nQUIT\n", 5, TCP);
        // Binary garbage.
        assert_eq!(classify(&[0x00]), TCP);
        assert_eq!(classify(&[0xff, 0xfe, 0x00]), TCP);
        // Line protocols whose first word ends the line.
        assert_prefixes(b"hello\n", 6, TCP);
        assert_prefixes(b"PING\r\n", 5, TCP);
        assert_prefixes(b"QUIT\r\n", 5, TCP);
        // AMQP 0-9-1 protocol header; JSON lines; MongoDB (little-endian length first).
        assert_prefixes(b"AMQP\x00\x00\x09\x01", 5, TCP);
        assert_prefixes(b"{\"jsonrpc\": \"2.0\"}\n", 1, TCP);
        assert_prefixes(&[0xc8, 0x00, 0x00, 0x00, 0xd4, 0x07], 2, TCP);
        assert_eq!(classify(&[0x7f, b'E', b'L', b'F']), TCP);
    }

    #[test]
    fn inputs_of_sniff_max_bytes_are_always_decided() {
        let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
        for _ in 0..200_000 {
            let len = SNIFF_MAX + rng.below(40);
            let input = rng.input(len);
            assert_ne!(classify(&input), MORE, "{input:?}");
        }
        // Fully random bytes too.
        for _ in 0..20_000 {
            let input: Vec<u8> = (0..SNIFF_MAX).map(|_| rng.next() as u8).collect();
            assert_ne!(classify(&input), MORE, "{input:?}");
        }
    }

    #[test]
    fn classification_is_monotone() {
        // Random inputs: once a prefix is Known, every longer prefix agrees.
        let mut rng = XorShift(0x2545_f491_4f6c_dd1d);
        for _ in 0..50_000 {
            let len = 1 + rng.below(SNIFF_MAX + 16);
            let input = rng.input(len);
            assert_monotone(&input);
        }
        // Known inputs with random tails.
        let fixed: Vec<Vec<u8>> = vec![
            H2_PREFACE.to_vec(),
            rustls_hello("api.example.com", &[b"h2"], true),
            b"GET / HTTP/1.1\r\n".to_vec(),
            b"\r\n\r\nOPTIONS * HTTP/1.1\r\n".to_vec(),
            b"SSH-2.0-OpenSSH_9.6\r\n".to_vec(),
            b"*1\r\n$4\r\nPING\r\n".to_vec(),
        ];
        for base in &fixed {
            for _ in 0..200 {
                let mut input = base[..rng.below(base.len() + 1)].to_vec();
                for _ in 0..rng.below(SNIFF_MAX) {
                    let b = rng.interesting_byte();
                    input.push(b);
                }
                assert_monotone(&input);
            }
        }
        // Every 1- and 2-byte input against every 1-byte extension.
        for a in 0..=255u8 {
            for b in 0..=255u8 {
                if let Verdict::Known(s) = classify(&[a]) {
                    assert_eq!(classify(&[a, b]), Verdict::Known(s));
                }
            }
        }
    }

    #[track_caller]
    fn assert_monotone(input: &[u8]) {
        let mut decided: Option<Verdict> = None;
        for n in 0..=input.len() {
            let v = classify(&input[..n]);
            match decided {
                Some(d) => assert_eq!(v, d, "prefix {n} of {input:?}"),
                None if v != MORE => decided = Some(v),
                None => assert!(n < SNIFF_MAX, "undecided at {n}: {input:?}"),
            }
        }
    }
}
