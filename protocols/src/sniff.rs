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
//! 3. **HTTP/1.x**: the start of a request line, `method SP request-target` (RFC 9112 §3):
//!    - up to [`MAX_LEADING_CRLF`] empty lines (CRLF) are skipped first: RFC 9112 §2.2 says a
//!      server SHOULD ignore at least one empty line received before the request line;
//!    - the method is a token (RFC 9110 §9.1), i.e. 1 or more tchar (RFC 9110 §5.6.2). Strait
//!      accepts at most [`MAX_METHOD_LEN`] of them: the longest registered method
//!      (`UPDATEREDIRECTREF`, 17) fits, and the bound is what makes the decision bounded;
//!    - then exactly one SP (RFC 9112 §3);
//!    - then the first byte of a request-target (RFC 9112 §3.2): `/` (origin-form), `*`
//!      (asterisk-form), a letter (absolute-form: a URI scheme starts with ALPHA, RFC 3986 §3.1;
//!      or authority-form with a reg-name), a digit (authority-form with an IPv4 address or a
//!      reg-name) or `[` (authority-form with an IP-literal, RFC 3986 §3.2.2).
//!
//!    That is enough to answer [`Sniffed::Http1`]: the HTTP/1 codec validates the rest. While
//!    the bytes are still a valid prefix of that shape the verdict is [`Verdict::NeedMore`]; any
//!    other byte (a non-tchar before the SP, a 21st tchar, a second SP, a bad target byte) makes
//!    it [`Sniffed::Tcp`]. One exception: a token starting with `SSH-` is [`Sniffed::Tcp`] (the
//!    SSH identification string, RFC 4253 §4.2, is `SSH-protoversion-softwareversion SP
//!    comments`, which would otherwise pass as a method and a target, e.g.
//!    `SSH-2.0-OpenSSH_9.6 FreeBSD-20240104`). No HTTP method starts with `SSH-`.
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
//!   [`Sniffed::Http1`] and are then refused by the HTTP/1 codec.

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

/// Empty lines (CRLF) skipped before an HTTP/1 request line (RFC 9112 §2.2 asks for at least one).
pub const MAX_LEADING_CRLF: usize = 2;

/// Longest method token accepted as HTTP/1 (the longest registered method is 17 bytes).
pub const MAX_METHOD_LEN: usize = 20;

/// Bytes after which classification is always decided: the longest input that can still be
/// undecided is the HTTP/1 shape `CRLF CRLF <20 tchar> SP` (25 bytes), one byte short of a
/// decision; TLS decides after 3 bytes and HTTP/2 after the 24-byte preface.
pub const SNIFF_MAX: usize = 2 * MAX_LEADING_CRLF + MAX_METHOD_LEN + 2;

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
    let mut rest = bytes;
    for _ in 0..MAX_LEADING_CRLF {
        match rest {
            [] | [b'\r'] => return Verdict::NeedMore,
            [b'\r', b'\n', tail @ ..] => rest = tail,
            _ => break,
        }
    }
    for (i, &b) in rest.iter().enumerate() {
        if b == b' ' {
            if i == 0 {
                return Verdict::Known(Sniffed::Tcp);
            }
            return match rest.get(i + 1) {
                None => Verdict::NeedMore,
                Some(&t) if is_target_start(t) => Verdict::Known(Sniffed::Http1),
                Some(_) => Verdict::Known(Sniffed::Tcp),
            };
        }
        if i == MAX_METHOD_LEN || !is_tchar(b) {
            return Verdict::Known(Sniffed::Tcp);
        }
        if i + 1 == SSH_PREFIX.len() && rest.starts_with(SSH_PREFIX) {
            return Verdict::Known(Sniffed::Tcp);
        }
    }
    Verdict::NeedMore
}

/// First byte of a request-target in any of the four forms (RFC 9112 §3.2).
const fn is_target_start(b: u8) -> bool {
    matches!(b, b'/' | b'*' | b'[') || b.is_ascii_alphanumeric()
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
        assert_eq!(SNIFF_MAX, 26);
        // The longest undecided input: two empty lines, a 20-byte method and SP.
        let mut worst = b"\r\n\r\n".to_vec();
        worst.extend_from_slice(&[b'A'; MAX_METHOD_LEN]);
        worst.push(b' ');
        assert_eq!(worst.len(), SNIFF_MAX - 1);
        assert_eq!(classify(&worst), MORE);
        worst.push(b'/');
        assert_eq!(classify(&worst), H1);
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
            let want = if i >= 5 { H1 } else { TCP };
            assert_eq!(classify(&input), want, "diverging at {i}");
        }
        // Leaves the preface at its 12th byte (`1` for `2`).
        assert_prefixes(b"PRI * HTTP/1.1\r\n", 12, H1);
        assert_prefixes(b"PRI / HTTP/1.1\r\n", 5, H1);
        assert_prefixes(b"PRIX / HTTP/1.1\r\n", 6, H1);
        // Leading CRLF: not the preface (it must be the very first bytes, RFC 9113 §3.4).
        let mut late = b"\r\n".to_vec();
        late.extend_from_slice(H2_PREFACE);
        assert_prefixes(&late, 7, H1);
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
        assert_prefixes(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n", 5, H1);
        assert_prefixes(b"GET /index.html HTTP/1.0\r\n\r\n", 5, H1);
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
                assert_prefixes(line.as_bytes(), m.len() + 2, H1);
            }
        }
    }

    #[test]
    fn request_target_forms() {
        assert_prefixes(b"GET http://example.com/ HTTP/1.1\r\n", 5, H1);
        assert_prefixes(b"GET HTTPS://EXAMPLE.COM/ HTTP/1.1\r\n", 5, H1);
        assert_prefixes(b"OPTIONS * HTTP/1.1\r\n", 9, H1);
        assert_prefixes(b"CONNECT example.com:443 HTTP/1.1\r\n", 9, H1);
        assert_prefixes(b"CONNECT 192.0.2.1:443 HTTP/1.1\r\n", 9, H1);
        assert_prefixes(b"CONNECT [2001:db8::1]:443 HTTP/1.1\r\n", 9, H1);
        // Not a target start: SP, CR, LF, '?', '#', '"', '<', control bytes, non-ASCII.
        for b in [
            b' ', b'\r', b'\n', b'?', b'#', b'"', b'<', 0x00, 0x7f, 0x80, 0xff,
        ] {
            assert_eq!(
                classify(&[b'G', b'E', b'T', b' ', b]),
                TCP,
                "target byte {b:#x}"
            );
        }
    }

    #[test]
    fn every_byte_in_every_position_of_a_short_request() {
        for b in 0..=255u8 {
            // As the first byte.
            let want = match b {
                0x16 | b'\r' => MORE,
                _ if is_tchar(b) => MORE,
                _ => TCP,
            };
            assert_eq!(classify(&[b]), want, "first byte {b:#x}");
            // Inside the method.
            let want = if is_tchar(b) || b == b' ' { MORE } else { TCP };
            assert_eq!(classify(&[b'G', b]), want, "method byte {b:#x}");
            // As the target's first byte.
            let want = if is_target_start(b) { H1 } else { TCP };
            assert_eq!(classify(&[b'G', b' ', b]), want, "target byte {b:#x}");
        }
    }

    #[test]
    fn method_length_limit() {
        let mut line = vec![b'M'; MAX_METHOD_LEN];
        line.extend_from_slice(b" / HTTP/1.1\r\n");
        assert_prefixes(&line, MAX_METHOD_LEN + 2, H1);
        let mut long = vec![b'M'; MAX_METHOD_LEN + 1];
        long.extend_from_slice(b" / HTTP/1.1\r\n");
        assert_prefixes(&long, MAX_METHOD_LEN + 1, TCP);
    }

    #[test]
    fn malformed_request_line_starts() {
        assert_eq!(classify(b" GET / HTTP/1.1"), TCP);
        assert_eq!(classify(b"GET  / HTTP/1.1"), TCP);
        assert_eq!(classify(b"GET\t/ HTTP/1.1"), TCP);
        assert_eq!(classify(b"GE(T / HTTP/1.1"), TCP);
        assert_eq!(classify(b"GET: / HTTP/1.1"), TCP);
        assert_eq!(classify(b"GET/ HTTP/1.1"), TCP);
        assert_eq!(classify(b"\xc3\xa9T / HTTP/1.1"), TCP);
    }

    #[test]
    fn leading_empty_lines() {
        assert_prefixes(b"\r\nGET / HTTP/1.1\r\n", 7, H1);
        assert_prefixes(b"\r\n\r\nGET / HTTP/1.1\r\n", 9, H1);
        // A third empty line is more than Strait tolerates.
        assert_prefixes(b"\r\n\r\n\r\nGET / HTTP/1.1\r\n", 5, TCP);
        assert_eq!(classify(b"\r"), MORE);
        assert_eq!(classify(b"\r\n"), MORE);
        assert_eq!(classify(b"\r\n\r"), MORE);
        assert_eq!(classify(b"\r\n\r\n"), MORE);
        // Bare CR or LF lines are not tolerated.
        assert_eq!(classify(b"\n"), TCP);
        assert_eq!(classify(b"\rG"), TCP);
        assert_eq!(classify(b"\r\r"), TCP);
        assert_eq!(classify(b"\r\n\n"), TCP);
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
        assert_prefixes(b"SSHX / HTTP/1.1\r\n", 6, H1);
        assert_prefixes(b"SSH / HTTP/1.1\r\n", 5, H1);
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
        assert_eq!(classify(&[0xff, 0xfe, 0xfd]), TCP);
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
