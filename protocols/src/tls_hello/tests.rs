//! Tests for the ClientHello reader: real hellos from rustls, hand-built ones for each rule, and
//! truncation, re-fragmentation and corruption sweeps.

use std::sync::Arc;

use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection, RootCertStore};

use super::*;

/// The bytes a rustls 0.23 client sends first: its ClientHello, in one record. `tls13` offers
/// TLS 1.3 and 1.2, otherwise only TLS 1.2. Shared with the sniffer's tests.
pub(crate) fn rustls_hello(server_name: &str, alpn: &[&[u8]], tls13: bool) -> Vec<u8> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let versions: &[&rustls::SupportedProtocolVersion] = if tls13 {
        &[&rustls::version::TLS13, &rustls::version::TLS12]
    } else {
        &[&rustls::version::TLS12]
    };
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)
        .expect("protocol versions")
        .with_root_certificates(RootCertStore::empty())
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    let name = ServerName::try_from(server_name.to_owned()).expect("server name");
    let mut conn = ClientConnection::new(Arc::new(config), name).expect("client connection");
    let mut out = Vec::new();
    while conn.wants_write() {
        conn.write_tls(&mut out).expect("write_tls");
    }
    out
}

const TLS12: u16 = 0x0303;
const TLS13: u16 = 0x0304;

/// Splits the handshake messages carried by `records` into new records of at most `size` payload
/// bytes each (all handshake records, version 0x0301).
fn refragment(records: &[u8], size: usize) -> Vec<u8> {
    let mut payload = Vec::new();
    let mut rest = records;
    while !rest.is_empty() {
        assert_eq!(rest[0], CONTENT_TYPE_HANDSHAKE);
        let len = usize::from(u16::from_be_bytes([rest[3], rest[4]]));
        payload.extend_from_slice(&rest[5..5 + len]);
        rest = &rest[5 + len..];
    }
    records_of(&payload, size)
}

/// `payload` as handshake records of at most `size` bytes each.
fn records_of(payload: &[u8], size: usize) -> Vec<u8> {
    let mut out = Vec::new();
    for chunk in payload.chunks(size) {
        out.extend_from_slice(&[CONTENT_TYPE_HANDSHAKE, 0x03, 0x01]);
        out.extend_from_slice(&(chunk.len() as u16).to_be_bytes());
        out.extend_from_slice(chunk);
    }
    out
}

/// A hand-built ClientHello.
#[derive(Clone)]
struct Hello {
    legacy_version: u16,
    session_id: Vec<u8>,
    cipher_suites: Vec<u8>,
    compression: Vec<u8>,
    /// `None`: no extensions block at all.
    extensions: Option<Vec<(u16, Vec<u8>)>>,
    /// Appended after the extensions block.
    trailing: Vec<u8>,
}

impl Default for Hello {
    fn default() -> Self {
        Hello {
            legacy_version: TLS12,
            session_id: vec![7; 32],
            cipher_suites: vec![0x13, 0x01, 0xc0, 0x2f],
            compression: vec![0],
            extensions: Some(Vec::new()),
            trailing: Vec::new(),
        }
    }
}

impl Hello {
    fn with_ext(mut self, ext_type: u16, data: Vec<u8>) -> Self {
        self.extensions
            .get_or_insert_with(Vec::new)
            .push((ext_type, data));
        self
    }

    fn body(&self) -> Vec<u8> {
        let mut b = self.legacy_version.to_be_bytes().to_vec();
        b.extend_from_slice(&[0xaa; 32]);
        b.extend_from_slice(&vec8(&self.session_id));
        b.extend_from_slice(&vec16(&self.cipher_suites));
        b.extend_from_slice(&vec8(&self.compression));
        if let Some(exts) = &self.extensions {
            let mut block = Vec::new();
            for (ty, data) in exts {
                block.extend_from_slice(&ty.to_be_bytes());
                block.extend_from_slice(&vec16(data));
            }
            b.extend_from_slice(&vec16(&block));
        }
        b.extend_from_slice(&self.trailing);
        b
    }

    /// In one record.
    fn bytes(&self) -> Vec<u8> {
        records_of(
            &handshake(HANDSHAKE_CLIENT_HELLO, &self.body()),
            MAX_RECORD_LEN,
        )
    }

    fn parse(&self) -> Result<Option<ClientHello>, HelloError> {
        parse_client_hello(&self.bytes())
    }
}

fn vec8(data: &[u8]) -> Vec<u8> {
    let mut v = vec![u8::try_from(data.len()).unwrap()];
    v.extend_from_slice(data);
    v
}

fn vec16(data: &[u8]) -> Vec<u8> {
    let mut v = u16::try_from(data.len()).unwrap().to_be_bytes().to_vec();
    v.extend_from_slice(data);
    v
}

fn handshake(msg_type: u8, body: &[u8]) -> Vec<u8> {
    let len = u32::try_from(body.len()).unwrap().to_be_bytes();
    let mut m = vec![msg_type, len[1], len[2], len[3]];
    m.extend_from_slice(body);
    m
}

/// `server_name` extension data with the given (type, name) entries.
fn sni(entries: &[(u8, &[u8])]) -> Vec<u8> {
    let mut list = Vec::new();
    for (ty, name) in entries {
        list.push(*ty);
        list.extend_from_slice(&vec16(name));
    }
    vec16(&list)
}

fn alpn(names: &[&[u8]]) -> Vec<u8> {
    let mut list = Vec::new();
    for name in names {
        list.extend_from_slice(&vec8(name));
    }
    vec16(&list)
}

fn versions(vs: &[u16]) -> Vec<u8> {
    let list: Vec<u8> = vs.iter().flat_map(|v| v.to_be_bytes()).collect();
    vec8(&list)
}

fn host(name: &[u8]) -> Hello {
    Hello::default().with_ext(EXT_SERVER_NAME, sni(&[(NAME_TYPE_HOST_NAME, name)]))
}

fn parsed(bytes: &[u8]) -> ClientHello {
    parse_client_hello(bytes)
        .expect("valid hello")
        .expect("complete hello")
}

fn malformed(r: Result<Option<ClientHello>, HelloError>) -> bool {
    matches!(r, Err(HelloError::Malformed(_)))
}

/// Every proper prefix of `bytes` is Ok(None); the whole is `expected`.
#[track_caller]
fn assert_prefixes_need_more(bytes: &[u8], expected: &ClientHello) {
    for n in 0..bytes.len() {
        assert_eq!(parse_client_hello(&bytes[..n]), Ok(None), "prefix {n}");
    }
    assert_eq!(parse_client_hello(bytes), Ok(Some(expected.clone())));
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
}

// --- real hellos -------------------------------------------------------------------------------

#[test]
fn rustls_tls13_hello_sni_alpn_versions() {
    let bytes = rustls_hello("api.example.com", &[b"h2", b"http/1.1"], true);
    let hello = parsed(&bytes);
    assert_eq!(hello.server_name.as_deref(), Some("api.example.com"));
    assert_eq!(hello.alpn, vec![b"h2".to_vec(), b"http/1.1".to_vec()]);
    assert_eq!(hello.legacy_version, TLS12);
    assert_eq!(hello.supported_versions, vec![TLS13, TLS12]);
}

#[test]
fn rustls_tls12_only_hello() {
    let hello = parsed(&rustls_hello("api.example.com", &[b"http/1.1"], false));
    assert_eq!(hello.server_name.as_deref(), Some("api.example.com"));
    assert_eq!(hello.alpn, vec![b"http/1.1".to_vec()]);
    assert_eq!(hello.legacy_version, TLS12);
    // rustls sends supported_versions even when it offers TLS 1.2 alone.
    assert_eq!(hello.supported_versions, vec![TLS12]);
}

#[test]
fn rustls_hello_without_alpn() {
    let hello = parsed(&rustls_hello("api.example.com", &[], true));
    assert!(hello.alpn.is_empty());
}

#[test]
fn rustls_hello_name_is_lowercased() {
    let hello = parsed(&rustls_hello("API.Example.COM", &[], true));
    assert_eq!(hello.server_name.as_deref(), Some("api.example.com"));
}

#[test]
fn rustls_sends_no_sni_for_ip_addresses() {
    for ip in ["192.0.2.1", "2001:db8::1"] {
        let hello = parsed(&rustls_hello(ip, &[b"h2"], true));
        assert_eq!(hello.server_name, None, "{ip}");
        assert_eq!(hello.alpn, vec![b"h2".to_vec()]);
    }
}

#[test]
fn every_truncation_of_a_real_hello_needs_more() {
    for tls13 in [true, false] {
        let bytes = rustls_hello("api.example.com", &[b"h2", b"http/1.1"], tls13);
        let expected = parsed(&bytes);
        assert_prefixes_need_more(&bytes, &expected);
    }
}

#[test]
fn bytes_after_the_hello_are_ignored() {
    let bytes = rustls_hello("api.example.com", &[b"h2"], true);
    let expected = parsed(&bytes);
    let mut more = bytes.clone();
    // A change_cipher_spec record, then application data (TLS 1.3 middlebox compatibility mode
    // and early data look like this), then garbage.
    more.extend_from_slice(&[20, 3, 3, 0, 1, 1, 23, 3, 3, 0, 2, 0xde, 0xad, 0xff, 0xff]);
    assert_eq!(parse_client_hello(&more), Ok(Some(expected.clone())));
    // A second handshake message in the same record as the hello.
    let mut record = bytes.clone();
    record.extend_from_slice(&[2, 0, 0, 0]);
    let len = u16::from_be_bytes([record[3], record[4]]) + 4;
    record[3..5].copy_from_slice(&len.to_be_bytes());
    assert_eq!(parse_client_hello(&record), Ok(Some(expected)));
}

#[test]
fn one_byte_records_parse_the_same() {
    let bytes = rustls_hello("api.example.com", &[b"h2", b"http/1.1"], true);
    let expected = parsed(&bytes);
    let fragmented = refragment(&bytes, 1);
    assert_eq!(fragmented.len(), (bytes.len() - 5) * 6);
    assert_prefixes_need_more(&fragmented, &expected);
}

#[test]
fn every_fragment_size_parses_the_same() {
    let bytes = rustls_hello("api.example.com", &[b"h2"], true);
    let expected = parsed(&bytes);
    for size in 1..=bytes.len() {
        let fragmented = refragment(&bytes, size);
        assert_eq!(
            parse_client_hello(&fragmented),
            Ok(Some(expected.clone())),
            "{size}"
        );
    }
    // Prefixes at a few sizes, including ones splitting the 4-byte handshake header.
    for size in [2, 3, 5, 7, 64, 100] {
        assert_prefixes_need_more(&refragment(&bytes, size), &expected);
    }
}

#[test]
fn corrupting_any_byte_never_panics() {
    let bytes = rustls_hello("api.example.com", &[b"h2", b"http/1.1"], true);
    let fragmented = refragment(&bytes, 7);
    for input in [&bytes, &fragmented] {
        for i in 0..input.len() {
            let mut corrupt = input.clone();
            corrupt[i] ^= 0xff;
            let _ = parse_client_hello(&corrupt);
            for n in [i, i + 1, corrupt.len()] {
                let _ = parse_client_hello(&corrupt[..n]);
            }
        }
    }
}

#[test]
fn random_mutations_never_panic() {
    let bytes = rustls_hello("api.example.com", &[b"h2", b"http/1.1"], true);
    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
    for _ in 0..20_000 {
        let mut input = bytes.clone();
        for _ in 0..1 + rng.next() % 4 {
            let i = (rng.next() % input.len() as u64) as usize;
            input[i] = rng.next() as u8;
        }
        let cut = (rng.next() % (input.len() as u64 + 1)) as usize;
        let _ = parse_client_hello(&input[..cut]);
        let _ = parse_client_hello(&input);
    }
    // Random bytes behind a valid record and handshake header.
    for _ in 0..20_000 {
        let len = (rng.next() % 300) as usize;
        let body: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        let _ = parse_client_hello(&records_of(&handshake(1, &body), 1 + len % 50));
    }
}

#[test]
fn corrupted_sni_length_fields_are_malformed() {
    // Each length field of a real hello's SNI extension, pointed past its container.
    let bytes = rustls_hello("api.example.com", &[], true);
    let name = b"api.example.com";
    let at = bytes
        .windows(name.len())
        .position(|w| w == name)
        .expect("name in hello");
    // [ext type 2][ext len 2][list len 2][name type 1][name len 2][name]
    for (offset, what) in [
        (9, "extension length"),
        (7, "list length"),
        (4, "name length"),
    ] {
        for delta in [1u16, 2, 0x100, 0x7f00] {
            let mut c = bytes.clone();
            let pos = at - offset + 2;
            let v = u16::from_be_bytes([c[pos], c[pos + 1]]).wrapping_add(delta);
            c[pos..pos + 2].copy_from_slice(&v.to_be_bytes());
            assert!(malformed(parse_client_hello(&c)), "{what} +{delta}");
        }
    }
}

// --- record and handshake layer ----------------------------------------------------------------

#[test]
fn not_a_handshake_record() {
    for ty in [20u8, 21, 23, 24, 0, b'G', 0x80] {
        assert_eq!(
            parse_client_hello(&[ty]),
            Err(HelloError::NotHandshake),
            "{ty}"
        );
        assert_eq!(
            parse_client_hello(&[ty, 3, 3, 0, 5, 1, 0, 0, 1, 0]),
            Err(HelloError::NotHandshake)
        );
    }
    assert_eq!(
        parse_client_hello(b"GET / HTTP/1.1\r\n"),
        Err(HelloError::NotHandshake)
    );
    assert_eq!(parse_client_hello(b""), Ok(None));
}

#[test]
fn server_hello_and_other_handshake_types_are_not_client_hello() {
    for ty in [0u8, 2, 4, 11, 20, 255] {
        let bytes = records_of(&handshake(ty, &[0; 40]), 1000);
        // Decided as soon as the type byte is in.
        assert_eq!(
            parse_client_hello(&bytes[..6]),
            Err(HelloError::NotClientHello)
        );
        assert_eq!(parse_client_hello(&bytes), Err(HelloError::NotClientHello));
    }
    assert_eq!(parse_client_hello(&[22, 3, 1, 0, 4]), Ok(None));
}

#[test]
fn record_version_must_be_3_x() {
    let good = Hello::default().bytes();
    for minor in [0u8, 1, 3, 4, 0xff] {
        let mut b = good.clone();
        b[2] = minor;
        assert!(parse_client_hello(&b).unwrap().is_some(), "3.{minor}");
    }
    for major in [0u8, 2, 4, 0xfe] {
        let mut b = good.clone();
        b[1] = major;
        assert!(malformed(parse_client_hello(&b[..2])), "{major}");
        assert!(malformed(parse_client_hello(&b)), "{major}");
    }
}

#[test]
fn record_length_bounds() {
    assert!(malformed(parse_client_hello(&[22, 3, 1, 0, 0])));
    let too_long = (MAX_RECORD_LEN + 1) as u16;
    let [hi, lo] = too_long.to_be_bytes();
    assert!(malformed(parse_client_hello(&[22, 3, 1, hi, lo, 1, 0])));
    assert!(malformed(parse_client_hello(&[22, 3, 1, 0xff, 0xff])));
    // The largest record is accepted (and needs more bytes).
    let [hi, lo] = (MAX_RECORD_LEN as u16).to_be_bytes();
    assert_eq!(
        parse_client_hello(&[22, 3, 1, hi, lo, 1, 0, 1, 0]),
        Ok(None)
    );
}

#[test]
fn record_length_past_the_end_needs_more() {
    // A record claiming more payload than has arrived: once the whole hello is in, the rest of
    // the record is not needed.
    let mut b = Hello::default().bytes();
    let expected = parsed(&b);
    let len = u16::from_be_bytes([b[3], b[4]]) + 100;
    b[3..5].copy_from_slice(&len.to_be_bytes());
    assert_eq!(parse_client_hello(&b), Ok(Some(expected)));
    assert_eq!(parse_client_hello(&b[..b.len() - 1]), Ok(None));
    // The handshake length past the end of the bytes: the rest may be in the next record.
    let mut b = Hello::default().bytes();
    b[8] = b[8].wrapping_add(10);
    assert_eq!(parse_client_hello(&b), Ok(None));
    // ... and when the next record arrives and is not a handshake, that is malformed.
    b.extend_from_slice(&[23, 3, 3, 0, 10]);
    assert!(malformed(parse_client_hello(&b)));
}

#[test]
fn handshake_length_shorter_than_its_content_is_malformed() {
    // The hello's length cuts the extensions block short.
    let mut b = Hello::default()
        .with_ext(EXT_SERVER_NAME, sni(&[(0, b"example.com")]))
        .bytes();
    b[8] -= 3;
    assert!(malformed(parse_client_hello(&b)));
}

#[test]
fn too_large() {
    let [_, a, b, c] = ((MAX_CLIENT_HELLO + 1) as u32).to_be_bytes();
    // Refused as soon as the handshake header is in, even across records.
    assert_eq!(
        parse_client_hello(&[22, 3, 1, 0, 4, 1, a, b, c]),
        Err(HelloError::TooLarge)
    );
    assert_eq!(
        parse_client_hello(&records_of(&[1, a, b, c], 1)),
        Err(HelloError::TooLarge)
    );
    assert_eq!(
        parse_client_hello(&[22, 3, 1, 0, 4, 1, 0xff, 0xff, 0xff]),
        Err(HelloError::TooLarge)
    );
    // Exactly MAX_CLIENT_HELLO is accepted, spread over two records.
    let base = Hello::default().with_ext(EXT_SERVER_NAME, sni(&[(0, b"big.example")]));
    let pad = MAX_CLIENT_HELLO - base.body().len() - 4;
    let big = base.with_ext(21, vec![0; pad]);
    assert_eq!(big.body().len(), MAX_CLIENT_HELLO);
    let bytes = records_of(&handshake(1, &big.body()), 1 << 14);
    let hello = parsed(&bytes);
    assert_eq!(hello.server_name.as_deref(), Some("big.example"));
    let over = big.clone().with_ext(21, vec![]);
    assert_eq!(
        parse_client_hello(&records_of(&handshake(1, &over.body()), 1 << 14)),
        Err(HelloError::TooLarge)
    );
}

// --- ClientHello body --------------------------------------------------------------------------

#[test]
fn minimal_hello_without_extensions() {
    let hello = Hello {
        extensions: None,
        ..Hello::default()
    };
    let expected = ClientHello {
        server_name: None,
        alpn: Vec::new(),
        legacy_version: TLS12,
        supported_versions: Vec::new(),
    };
    assert_prefixes_need_more(&hello.bytes(), &expected);
    let old = Hello {
        legacy_version: 0x0301,
        session_id: Vec::new(),
        extensions: None,
        ..Hello::default()
    };
    assert_eq!(old.parse().unwrap().unwrap().legacy_version, 0x0301);
}

#[test]
fn fixed_fields_are_checked() {
    let cases: Vec<(&str, Hello)> = vec![
        (
            "session id of 33 bytes",
            Hello {
                session_id: vec![0; 33],
                ..Hello::default()
            },
        ),
        (
            "no cipher suites",
            Hello {
                cipher_suites: Vec::new(),
                ..Hello::default()
            },
        ),
        (
            "odd cipher suites",
            Hello {
                cipher_suites: vec![0x13, 0x01, 0x13],
                ..Hello::default()
            },
        ),
        (
            "no compression methods",
            Hello {
                compression: Vec::new(),
                ..Hello::default()
            },
        ),
        (
            "bytes after the extensions",
            Hello {
                trailing: vec![0],
                ..Hello::default()
            },
        ),
        (
            "a lone byte instead of an extensions block",
            Hello {
                extensions: None,
                trailing: vec![0],
                ..Hello::default()
            },
        ),
    ];
    for (what, hello) in cases {
        assert!(malformed(hello.parse()), "{what}: {:?}", hello.parse());
    }
    // Bodies cut inside each fixed field.
    let body = Hello::default().body();
    // (Cut right before the empty extensions block, it is a valid hello without extensions.)
    for n in (0..body.len()).filter(|&n| n != body.len() - 2) {
        let r = parse_client_hello(&records_of(&handshake(1, &body[..n]), 1000));
        assert!(malformed(r.clone()), "body cut at {n}: {r:?}");
    }
}

#[test]
fn extension_headers_are_checked() {
    // An extension whose length runs past the block.
    let mut block = Vec::new();
    block.extend_from_slice(&[0, 21, 0, 10, 0, 0]);
    let hello = Hello {
        extensions: None,
        trailing: vec16(&block),
        ..Hello::default()
    };
    assert!(malformed(hello.parse()));
    // A lone byte where an extension type should be.
    let hello = Hello {
        extensions: None,
        trailing: vec16(&[0]),
        ..Hello::default()
    };
    assert!(malformed(hello.parse()));
    // Unknown and empty extensions are skipped.
    let hello = Hello::default()
        .with_ext(0xfafa, Vec::new())
        .with_ext(21, vec![0; 100])
        .with_ext(EXT_SERVER_NAME, sni(&[(0, b"a.example")]));
    assert_eq!(
        hello.parse().unwrap().unwrap().server_name.as_deref(),
        Some("a.example")
    );
}

#[test]
fn duplicate_extensions_are_malformed() {
    for (ty, data) in [
        (EXT_SERVER_NAME, sni(&[(0, b"a.example")])),
        (EXT_ALPN, alpn(&[b"h2"])),
        (EXT_SUPPORTED_VERSIONS, versions(&[TLS13])),
    ] {
        let hello = Hello::default()
            .with_ext(ty, data.clone())
            .with_ext(21, Vec::new())
            .with_ext(ty, data);
        assert!(malformed(hello.parse()), "{ty}");
    }
}

// --- SNI ---------------------------------------------------------------------------------------

#[test]
fn host_names() {
    let ok: &[(&[u8], &str)] = &[
        (b"example.com", "example.com"),
        (b"Example.COM", "example.com"),
        (b"example.com.", "example.com"),
        (b"a", "a"),
        (b"_service._tcp.example.com", "_service._tcp.example.com"),
        (b"xn--bcher-kva.example", "xn--bcher-kva.example"),
        (b"1.2.3.4", "1.2.3.4"),
        (b"-a-.b", "-a-.b"),
    ];
    for (raw, want) in ok {
        let hello = host(raw).parse().unwrap().unwrap();
        assert_eq!(hello.server_name.as_deref(), Some(*want));
    }
    let label63 = [b'a'; 63];
    let mut longest = Vec::new();
    for _ in 0..4 {
        longest.extend_from_slice(&label63);
        longest.push(b'.');
    }
    longest.truncate(255);
    assert_eq!(longest.len(), 255);
    let hello = host(&longest).parse().unwrap().unwrap();
    assert_eq!(hello.server_name.unwrap().len(), 255);

    let mut too_long = longest.clone();
    too_long.push(b'a');
    let mut label64 = vec![b'a'; 64];
    label64.extend_from_slice(b".com");
    let bad: &[&[u8]] = &[
        b"",
        b".",
        b"..",
        b"example.com..",
        b".example.com",
        b"a..b",
        b"exa mple.com",
        b"example.com:443",
        b"exam\0ple.com",
        b"ex\xc3\xa9.com",
        b"*.example.com",
        b"example/com",
        b"[::1]",
        &too_long,
        &label64,
    ];
    for raw in bad {
        assert!(
            malformed(host(raw).parse()),
            "{:?}",
            String::from_utf8_lossy(raw)
        );
    }
}

#[test]
fn server_name_list_structure() {
    // Unknown name types are skipped; the host_name entry is found after them.
    let hello = Hello::default().with_ext(
        EXT_SERVER_NAME,
        sni(&[(1, b"opaque"), (0, b"a.example"), (7, b"x")]),
    );
    assert_eq!(
        hello.parse().unwrap().unwrap().server_name.as_deref(),
        Some("a.example")
    );
    // Only unknown types: no server name.
    let hello = Hello::default().with_ext(EXT_SERVER_NAME, sni(&[(1, b"opaque")]));
    assert_eq!(hello.parse().unwrap().unwrap().server_name, None);
    // Two host_name entries.
    let two = Hello::default().with_ext(
        EXT_SERVER_NAME,
        sni(&[(0, b"a.example"), (0, b"b.example")]),
    );
    assert!(malformed(two.parse()));
    let malformed_data: &[&[u8]] = &[
        // No list at all (a ServerHello's empty server_name is not a ClientHello's).
        &[],
        // Empty list.
        &[0, 0],
        // List length past the extension.
        &[0, 9, 0, 0, 1, b'a'],
        // Bytes after the list.
        &[0, 4, 0, 0, 1, b'a', 0],
        // Name length past the list.
        &[0, 4, 0, 0, 2, b'a'],
        // A lone name type.
        &[0, 1, 0],
        // Half a name length.
        &[0, 2, 0, 0],
    ];
    for data in malformed_data {
        let hello = Hello::default().with_ext(EXT_SERVER_NAME, data.to_vec());
        assert!(malformed(hello.parse()), "{data:?}");
    }
}

// --- ALPN and supported_versions ---------------------------------------------------------------

#[test]
fn alpn_lists() {
    let hello = Hello::default().with_ext(EXT_ALPN, alpn(&[b"h2", b"http/1.1", &[0xff; 255]]));
    assert_eq!(
        hello.parse().unwrap().unwrap().alpn,
        vec![b"h2".to_vec(), b"http/1.1".to_vec(), vec![0xff; 255]]
    );
    let malformed_data: &[&[u8]] = &[
        &[],
        &[0, 0],
        &[0, 1, 0],
        &[0, 3, 2, b'h', b'2', 0],
        &[0, 3, 3, b'h', b'2'],
        &[0, 9, 2, b'h', b'2'],
        &[0, 3, 2, b'h', b'2', 0, 0],
    ];
    for data in malformed_data {
        let hello = Hello::default().with_ext(EXT_ALPN, data.to_vec());
        assert!(malformed(hello.parse()), "{data:?}");
    }
}

#[test]
fn supported_versions_lists() {
    let grease = 0x7a7a;
    let hello =
        Hello::default().with_ext(EXT_SUPPORTED_VERSIONS, versions(&[grease, TLS13, TLS12]));
    assert_eq!(
        hello.parse().unwrap().unwrap().supported_versions,
        vec![grease, TLS13, TLS12]
    );
    let malformed_data: &[&[u8]] = &[
        &[],
        &[0],
        &[1, 3],
        &[3, 3, 4, 3],
        &[4, 3, 4],
        &[2, 3, 4, 0],
        // A ServerHello's form: one bare version.
        &[3, 4],
    ];
    for data in malformed_data {
        let hello = Hello::default().with_ext(EXT_SUPPORTED_VERSIONS, data.to_vec());
        assert!(malformed(hello.parse()), "{data:?}");
    }
}

#[test]
fn errors_display() {
    assert_eq!(
        HelloError::Malformed("empty server name").to_string(),
        "malformed ClientHello: empty server name"
    );
    assert_eq!(
        HelloError::TooLarge.to_string(),
        "ClientHello longer than 16384 bytes"
    );
}
