//! TLS ClientHello reader, for SNI-based passthrough routing and for stats.
//!
//! Owns: reading the first handshake message of a TLS client's byte stream, reassembled from one
//! or more handshake records, and extracting what routing and stats need: the server name (SNI,
//! RFC 6066 §3), the ALPN protocol list (RFC 7301 §3.1), `legacy_version` and
//! `supported_versions` (RFC 8446 §4.1.2, §4.2.1). One pure function, [`parse_client_hello`],
//! called with everything read so far; `Ok(None)` means "read more". Must not: do IO, own a
//! deadline or a buffer limit (the caller's), decrypt or answer anything, validate cipher suites
//! or other extensions, or terminate TLS (that is a later TLS module's job).
//!
//! # Rules
//!
//! - Record layer (RFC 8446 §5.1, RFC 5246 §6.2): each record is `type(1) version(2) length(2)`.
//!   The first record must be a handshake (22) or the answer is [`HelloError::NotHandshake`];
//!   later records carrying the rest of the ClientHello must be handshakes too (handshake
//!   messages must not be interleaved with other record types). The version's major byte must
//!   be 3 and the length 1..=2^14 + 2048 (the largest TLS 1.2 record, RFC 5246 §6.2.3; a
//!   zero-length handshake fragment is forbidden by RFC 8446 §5.1); otherwise
//!   [`HelloError::Malformed`]. Bytes after the ClientHello are ignored.
//! - Handshake layer (RFC 8446 §4): `msg_type(1) length(3) body`. A type other than
//!   `client_hello` (1) is [`HelloError::NotClientHello`]; a length above [`MAX_CLIENT_HELLO`]
//!   is [`HelloError::TooLarge`]. Both are answered as soon as the 1 or 4 header bytes are in,
//!   even if the rest of the message is not.
//! - ClientHello body: every vector length is checked against what contains it; a length that
//!   runs past its container, an empty vector where the RFC requires at least one element, an odd
//!   length for a vector of 16-bit values, bytes left over after the extensions, or two
//!   `server_name`, `application_layer_protocol_negotiation` or `supported_versions` extensions
//!   (RFC 8446 §4.2) is [`HelloError::Malformed`]. The extensions block may be absent (RFC 5246
//!   §7.4.1.2). GREASE values (RFC 8701) are reported as sent.
//! - SNI: the `host_name` (type 0) entry of the `server_name` extension; entries of other types are
//!   skipped, two `host_name` entries are refused (RFC 6066 §3). The name must be 1..=255 bytes,
//!   one trailing dot is stripped, and what remains must be dot-separated labels of 1..=63
//!   letters, digits, `-` or `_` (RFC 1035 §2.3.4 sizes; `_` is allowed because real service names
//!   use it). It is returned lowercased (DNS names compare case-insensitively, RFC 4343).
//!
//! Truncated input is never an error: while the ClientHello is incomplete the answer is
//! `Ok(None)` unless a header byte already seen is wrong. Nothing panics on any input.
//!
//! The caller bounds its buffer: the handshake message is at most [`MAX_CLIENT_HELLO`] + 4 bytes,
//! but a client may fragment it into many small records, each with a 5-byte header.

use std::borrow::Cow;
use std::fmt;

#[cfg(test)]
pub(crate) mod tests;

/// What a ClientHello says that Strait uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientHello {
    /// The SNI `host_name`, lowercased and without a trailing dot; `None` when the client sent no
    /// `server_name` extension (as clients do when connecting to an IP address) or no `host_name`
    /// entry in it.
    pub server_name: Option<String>,
    /// The ALPN protocol names in the client's order; empty without the ALPN extension.
    pub alpn: Vec<Vec<u8>>,
    /// `legacy_version` (`0x0303` for TLS 1.2 and 1.3 clients).
    pub legacy_version: u16,
    /// The `supported_versions` extension's list in the client's order; empty without it (a
    /// client that only speaks TLS 1.2 or older).
    pub supported_versions: Vec<u16>,
}

/// Why the bytes are not a usable ClientHello.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HelloError {
    /// The stream does not start with a TLS handshake record.
    NotHandshake,
    /// The first handshake message is not a ClientHello.
    NotClientHello,
    /// A record or the ClientHello breaks a wire rule; the text names which.
    Malformed(&'static str),
    /// The ClientHello is longer than [`MAX_CLIENT_HELLO`].
    TooLarge,
}

impl fmt::Display for HelloError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HelloError::NotHandshake => f.write_str("not a TLS handshake record"),
            HelloError::NotClientHello => {
                f.write_str("first handshake message is not a ClientHello")
            }
            HelloError::Malformed(what) => write!(f, "malformed ClientHello: {what}"),
            HelloError::TooLarge => write!(f, "ClientHello longer than {MAX_CLIENT_HELLO} bytes"),
        }
    }
}

impl std::error::Error for HelloError {}

/// Largest ClientHello body (the handshake message's 24-bit length) accepted; larger is
/// [`HelloError::TooLarge`]. Real hellos are far smaller: a browser's, with a post-quantum
/// hybrid key share (X25519MLKEM768, 1216 bytes of share) and a PSK ticket, is 2-3 KiB. 16 KiB is
/// one full plaintext record (2^14, RFC 8446 §5.1), so room to spare for any real client, while
/// bounding the reassembly copy and the bytes a passthrough listener must buffer before routing.
pub const MAX_CLIENT_HELLO: usize = 16 * 1024;

const RECORD_HEADER_LEN: usize = 5;
/// Largest record length accepted: 2^14 plaintext plus the 2048 bytes of expansion RFC 5246
/// §6.2.3 allows a TLS 1.2 record.
const MAX_RECORD_LEN: usize = (1 << 14) + 2048;
const CONTENT_TYPE_HANDSHAKE: u8 = 22;
const RECORD_MAJOR: u8 = 3;
const HANDSHAKE_HEADER_LEN: usize = 4;
const HANDSHAKE_CLIENT_HELLO: u8 = 1;
const RANDOM_LEN: usize = 32;
const MAX_SESSION_ID_LEN: usize = 32;
const EXT_SERVER_NAME: u16 = 0;
const EXT_ALPN: u16 = 16;
const EXT_SUPPORTED_VERSIONS: u16 = 43;
const NAME_TYPE_HOST_NAME: u8 = 0;
const MAX_HOST_NAME_LEN: usize = 255;
const MAX_LABEL_LEN: usize = 63;

/// Parses the ClientHello from the start of a TLS byte stream (one or more TLS records; a
/// ClientHello may span several records, in fragments of any size). `Ok(None)` = need more bytes:
/// call again with the same bytes plus what was read since.
pub fn parse_client_hello(bytes: &[u8]) -> Result<Option<ClientHello>, HelloError> {
    match reassemble(bytes)? {
        Some(message) => {
            parse_body(message.get(HANDSHAKE_HEADER_LEN..).unwrap_or_default()).map(Some)
        }
        None => Ok(None),
    }
}

/// The first handshake message (header included) once all of it is in, borrowed from `bytes` when
/// it sits in one record and copied when it spans several.
fn reassemble(bytes: &[u8]) -> Result<Option<Cow<'_, [u8]>>, HelloError> {
    let mut message: Cow<'_, [u8]> = Cow::Borrowed(&[]);
    let mut rest = bytes;
    let mut first = true;
    loop {
        if let Some(&content_type) = rest.first() {
            if content_type != CONTENT_TYPE_HANDSHAKE {
                return Err(if first {
                    HelloError::NotHandshake
                } else {
                    HelloError::Malformed("non-handshake record inside the ClientHello")
                });
            }
        }
        if let Some(&major) = rest.get(1) {
            if major != RECORD_MAJOR {
                return Err(HelloError::Malformed("record version is not 3.x"));
            }
        }
        let Some((header, payload)) = rest.split_at_checked(RECORD_HEADER_LEN) else {
            return Ok(None);
        };
        let len = usize::from(u16::from_be_bytes([header[3], header[4]]));
        if len == 0 {
            return Err(HelloError::Malformed("empty handshake record"));
        }
        if len > MAX_RECORD_LEN {
            return Err(HelloError::Malformed(
                "record longer than 2^14 + 2048 bytes",
            ));
        }
        let (fragment, next) = payload.split_at_checked(len).unwrap_or((payload, &[]));
        if message.is_empty() {
            message = Cow::Borrowed(fragment);
        } else {
            message.to_mut().extend_from_slice(fragment);
        }

        if let Some(&msg_type) = message.first() {
            if msg_type != HANDSHAKE_CLIENT_HELLO {
                return Err(HelloError::NotClientHello);
            }
        }
        if let Some(&[_, a, b, c]) = message.first_chunk::<HANDSHAKE_HEADER_LEN>() {
            let body_len = usize::from(a) << 16 | usize::from(b) << 8 | usize::from(c);
            if body_len > MAX_CLIENT_HELLO {
                return Err(HelloError::TooLarge);
            }
            let total = HANDSHAKE_HEADER_LEN + body_len;
            if message.len() >= total {
                return Ok(Some(match message {
                    Cow::Borrowed(m) => Cow::Borrowed(m.get(..total).unwrap_or(m)),
                    Cow::Owned(mut m) => {
                        m.truncate(total);
                        Cow::Owned(m)
                    }
                }));
            }
        }
        if fragment.len() < len {
            return Ok(None);
        }
        rest = next;
        first = false;
    }
}

/// Parses a complete ClientHello body (RFC 8446 §4.1.2; RFC 5246 §7.4.1.2 for the optional
/// extensions block).
fn parse_body(body: &[u8]) -> Result<ClientHello, HelloError> {
    let mut r = Reader(body);
    let legacy_version = r.u16("legacy_version")?;
    r.take(RANDOM_LEN, "random")?;
    if r.vec8("legacy_session_id")?.len() > MAX_SESSION_ID_LEN {
        return Err(HelloError::Malformed(
            "legacy_session_id longer than 32 bytes",
        ));
    }
    let suites = r.vec16("cipher_suites")?;
    if suites.is_empty() || suites.len() % 2 != 0 {
        return Err(HelloError::Malformed("cipher_suites length"));
    }
    if r.vec8("legacy_compression_methods")?.is_empty() {
        return Err(HelloError::Malformed("empty legacy_compression_methods"));
    }
    let mut hello = ClientHello {
        server_name: None,
        alpn: Vec::new(),
        legacy_version,
        supported_versions: Vec::new(),
    };
    if r.is_empty() {
        return Ok(hello);
    }
    let mut extensions = Reader(r.vec16("extensions")?);
    r.finish("bytes after the extensions")?;

    let (mut seen_sni, mut seen_alpn, mut seen_versions) = (false, false, false);
    while !extensions.is_empty() {
        let ext_type = extensions.u16("extension type")?;
        let data = extensions.vec16("extension data")?;
        match ext_type {
            EXT_SERVER_NAME => {
                once(&mut seen_sni, "two server_name extensions")?;
                hello.server_name = parse_server_name(data)?;
            }
            EXT_ALPN => {
                once(&mut seen_alpn, "two ALPN extensions")?;
                hello.alpn = parse_alpn(data)?;
            }
            EXT_SUPPORTED_VERSIONS => {
                once(&mut seen_versions, "two supported_versions extensions")?;
                hello.supported_versions = parse_supported_versions(data)?;
            }
            _ => {}
        }
    }
    Ok(hello)
}

fn once(seen: &mut bool, what: &'static str) -> Result<(), HelloError> {
    if std::mem::replace(seen, true) {
        return Err(HelloError::Malformed(what));
    }
    Ok(())
}

/// `server_name` extension data: `ServerName server_name_list<1..2^16-1>` (RFC 6066 §3).
fn parse_server_name(data: &[u8]) -> Result<Option<String>, HelloError> {
    let mut r = Reader(data);
    let mut list = Reader(r.vec16("server_name_list")?);
    r.finish("bytes after server_name_list")?;
    if list.is_empty() {
        return Err(HelloError::Malformed("empty server_name_list"));
    }
    let mut host_name = None;
    while !list.is_empty() {
        let name_type = list.u8("server name type")?;
        // Only host_name is defined; like other stacks, read other types as opaque<1..2^16-1>.
        let name = list.vec16("server name")?;
        if name_type == NAME_TYPE_HOST_NAME {
            if host_name.is_some() {
                return Err(HelloError::Malformed("two host_name entries"));
            }
            host_name = Some(host_name_string(name)?);
        }
    }
    Ok(host_name)
}

/// Validates a `host_name` and returns it lowercased, without one trailing dot.
fn host_name_string(raw: &[u8]) -> Result<String, HelloError> {
    if raw.is_empty() {
        return Err(HelloError::Malformed("empty server name"));
    }
    if raw.len() > MAX_HOST_NAME_LEN {
        return Err(HelloError::Malformed("server name longer than 255 bytes"));
    }
    let name = raw.strip_suffix(b".").unwrap_or(raw);
    let valid_label = |label: &[u8]| {
        (1..=MAX_LABEL_LEN).contains(&label.len())
            && label
                .iter()
                .all(|&b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    };
    if !name.split(|&b| b == b'.').all(valid_label) {
        return Err(HelloError::Malformed("server name is not a DNS name"));
    }
    Ok(name
        .iter()
        .map(|&b| char::from(b.to_ascii_lowercase()))
        .collect())
}

/// ALPN extension data: `ProtocolName protocol_name_list<2..2^16-1>`, each name
/// `opaque<1..2^8-1>` (RFC 7301 §3.1).
fn parse_alpn(data: &[u8]) -> Result<Vec<Vec<u8>>, HelloError> {
    let mut r = Reader(data);
    let mut list = Reader(r.vec16("protocol_name_list")?);
    r.finish("bytes after protocol_name_list")?;
    if list.is_empty() {
        return Err(HelloError::Malformed("empty protocol_name_list"));
    }
    let mut names = Vec::new();
    while !list.is_empty() {
        let name = list.vec8("protocol name")?;
        if name.is_empty() {
            return Err(HelloError::Malformed("empty protocol name"));
        }
        names.push(name.to_vec());
    }
    Ok(names)
}

/// `supported_versions` extension data in a ClientHello: `ProtocolVersion versions<2..254>`
/// (RFC 8446 §4.2.1).
fn parse_supported_versions(data: &[u8]) -> Result<Vec<u16>, HelloError> {
    let mut r = Reader(data);
    let versions = r.vec8("supported_versions")?;
    r.finish("bytes after supported_versions")?;
    if versions.is_empty() || versions.len() % 2 != 0 {
        return Err(HelloError::Malformed("supported_versions length"));
    }
    Ok(versions
        .chunks_exact(2)
        .map(|v| u16::from_be_bytes([v[0], v[1]]))
        .collect())
}

/// A cursor over a complete structure: running out of bytes is [`HelloError::Malformed`].
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], HelloError> {
        let (taken, rest) = self
            .0
            .split_at_checked(n)
            .ok_or(HelloError::Malformed(what))?;
        self.0 = rest;
        Ok(taken)
    }

    fn u8(&mut self, what: &'static str) -> Result<u8, HelloError> {
        let (&b, rest) = self.0.split_first().ok_or(HelloError::Malformed(what))?;
        self.0 = rest;
        Ok(b)
    }

    fn u16(&mut self, what: &'static str) -> Result<u16, HelloError> {
        let (&bytes, rest) = self
            .0
            .split_first_chunk::<2>()
            .ok_or(HelloError::Malformed(what))?;
        self.0 = rest;
        Ok(u16::from_be_bytes(bytes))
    }

    /// A vector with a one-byte length prefix.
    fn vec8(&mut self, what: &'static str) -> Result<&'a [u8], HelloError> {
        let len = self.u8(what)?;
        self.take(usize::from(len), what)
    }

    /// A vector with a two-byte length prefix.
    fn vec16(&mut self, what: &'static str) -> Result<&'a [u8], HelloError> {
        let len = self.u16(what)?;
        self.take(usize::from(len), what)
    }

    fn finish(&self, what: &'static str) -> Result<(), HelloError> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(HelloError::Malformed(what))
        }
    }
}
