//! Connection management fields and hop-by-hop classification (RFC 9110 §7.6.1, §7.8;
//! RFC 9112 §9.3).
//!
//! Owns: reading the Connection options of a head (`close`, `keep-alive`, `upgrade` and any
//! field names), marking every field they name as hop-by-hop in the [`Headers`] table, and the
//! fixed list of fields that are hop-by-hop whatever Connection says. Must not: remove or rewrite
//! fields (the proxy skips marked fields while copying a head) or decide keep-alive by itself
//! (request.rs and response.rs combine these options with the version and framing).

use super::error::HttpError;
use super::fields::{FieldKind, Headers};
use super::syntax::{is_token, List};

/// Connection options the codec tracks per message; more are refused with
/// [`HttpError::TooManyConnectionTokens`], which bounds the work of marking named fields.
pub const MAX_CONNECTION_OPTIONS: usize = 32;

/// The options of the Connection field(s) of one message.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ConnectionOptions {
    /// `close` was listed.
    pub close: bool,
    /// `keep-alive` was listed.
    pub keep_alive: bool,
    /// `upgrade` was listed.
    pub upgrade: bool,
    /// How many options were listed in total (empty list elements excluded).
    pub count: u8,
}

/// Whether a field with this name is always hop-by-hop, whatever Connection lists: Connection,
/// Keep-Alive, Proxy-Connection, Proxy-Authenticate, Proxy-Authorization, TE, Trailer,
/// Transfer-Encoding and Upgrade (ASCII case-insensitive). Use it for fields the proxy adds;
/// for a parsed head, [`Headers::is_hop_by_hop`] also covers the fields Connection names.
pub fn is_hop_by_hop_name(name: &[u8]) -> bool {
    FieldKind::of(name).is_hop_by_hop()
}

/// Reads every Connection field of `headers` and marks the fields its options name as
/// hop-by-hop. Options must be tokens; naming Host or Content-Length is refused, since removing
/// them would change how the next hop routes or frames the message.
pub(crate) fn connection_options(
    headers: &mut Headers,
    buf: &[u8],
) -> Result<ConnectionOptions, HttpError> {
    let mut options = ConnectionOptions::default();
    for i in 0..headers.len() {
        let value = match headers.slice().get(i) {
            Some(f) if f.kind == FieldKind::Connection => f.value.get(buf),
            _ => continue,
        };
        for option in List::new(value) {
            if !is_token(option) {
                return Err(HttpError::InvalidConnection);
            }
            if usize::from(options.count) >= MAX_CONNECTION_OPTIONS {
                return Err(HttpError::TooManyConnectionTokens);
            }
            options.count += 1;
            if option.eq_ignore_ascii_case(b"close") {
                options.close = true;
            } else if option.eq_ignore_ascii_case(b"keep-alive") {
                options.keep_alive = true;
            } else if option.eq_ignore_ascii_case(b"upgrade") {
                options.upgrade = true;
            }
            match FieldKind::of(option) {
                FieldKind::Host | FieldKind::ContentLength => {
                    return Err(HttpError::ConnectionNamesEndToEnd)
                }
                // Fields of a hop-by-hop kind are marked already.
                FieldKind::Other => {}
                _ => continue,
            }
            for field in headers.slice_mut() {
                if !field.hop_by_hop && field.name.get(buf).eq_ignore_ascii_case(option) {
                    field.hop_by_hop = true;
                }
            }
        }
    }
    Ok(options)
}
