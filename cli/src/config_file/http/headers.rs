//! Header names and values in routes: `headers = [{ name, value }]` conditions, the
//! `request_headers` / `response_headers` edit tables, and the field-name and field-value rules
//! they (and `respond`'s content type) share.
//!
//! Owns: which names are valid (tokens, lowercased), which a route may not edit (those the proxy
//! manages, such as Host), which values may be written or compared, and that `set` names each
//! header once. Entries with problems are reported and left out. Must not: read anything but
//! header names and values.

use strait_engine::config::http::{is_field_value, is_reserved_header, is_token};
use strait_engine::config::{HeaderEdits, HeaderMatch};
use toml::de::DeValue;

use crate::config_file::cursor::{Ctx, Field};

const HEADER_MATCH_KEYS: &[&str] = &["name", "value"];
const EDIT_KEYS: &[&str] = &["remove", "set", "add"];
pub(super) const TOKEN_CHARS: &str = "letters, digits and !#$%&'*+-.^_`|~";
pub(super) const HEADER_MATCH_EXAMPLE: &str = "{ name = \"x-canary\", value = \"1\" }";

/// A header name, lowercased; `None` (after reporting) when it is not a field name.
fn header_name(s: &str) -> Result<String, String> {
    if is_token(s) {
        Ok(s.to_ascii_lowercase())
    } else {
        Err(format!(
            "invalid header name {s:?}: expected a field name such as \"x-request-id\" \
             ({TOKEN_CHARS}; no spaces or colons)"
        ))
    }
}

/// A header value Strait may write or compare; `what` names it in the message.
pub(super) fn field_value(ctx: &mut Ctx<'_>, f: &Field<'_, '_>, what: &str) -> Option<String> {
    let s = f.str(ctx, &format!("{what} (a string)"))?;
    if is_field_value(s) {
        return Some(s.to_owned());
    }
    f.error(
        ctx,
        format!(
            "invalid {what} {s:?}: use visible ASCII characters and spaces, without leading or \
             trailing whitespace"
        ),
    );
    None
}

pub(super) fn header_match(ctx: &mut Ctx<'_>, f: &Field<'_, '_>) -> Option<HeaderMatch> {
    if !matches!(f.value.get_ref(), DeValue::Table(_)) {
        f.type_error(
            ctx,
            &format!("a header condition such as {HEADER_MATCH_EXAMPLE}"),
        );
        return None;
    }
    let mut t = f.table(ctx, "a header condition", HEADER_MATCH_KEYS)?;
    let name = t.require(ctx, "name").and_then(|f| {
        let s = f.str(ctx, "a header name (a string)")?;
        header_name(s).map_err(|e| f.error(ctx, e)).ok()
    });
    let value = match t.get(ctx, "value") {
        Some(f) => field_value(ctx, &f, "header value").map(Some),
        None => Some(None),
    };
    t.finish(ctx);
    Some(HeaderMatch {
        name: name?,
        value: value?,
    })
}

/// `request_headers` / `response_headers`: `{ remove = [...], set = {...}, add = {...} }`. Entries
/// with problems are reported and left out.
pub(super) fn header_edits(ctx: &mut Ctx<'_>, f: &Field<'_, '_>) -> HeaderEdits {
    let mut edits = HeaderEdits::default();
    if !matches!(f.value.get_ref(), DeValue::Table(_)) {
        f.type_error(
            ctx,
            "a table such as { remove = [\"x-internal\"], set = { \"x-env\" = \"prod\" } }",
        );
        return edits;
    }
    let Some(mut t) = f.table(ctx, "a header edits table", EDIT_KEYS) else {
        return edits;
    };
    if let Some(f) = t.get(ctx, "remove") {
        if let Some(items) = f.elements(ctx, "an array of header names such as [\"x-internal\"]") {
            for item in &items {
                let Some(s) = item.str(ctx, "a header name (a string)") else {
                    continue;
                };
                match editable_name(s) {
                    Ok(n) => edits.remove.push(n),
                    Err(e) => item.error(ctx, e),
                }
            }
        }
    }
    for key in ["set", "add"] {
        let Some(f) = t.get(ctx, key) else {
            continue;
        };
        let expected = "a table of header names and values such as { \"x-env\" = \"prod\" }";
        let Some(entries) = f.entries(ctx, expected) else {
            continue;
        };
        let mut out: Vec<(String, String)> = Vec::new();
        for e in &entries {
            let name = match editable_name(e.key) {
                Ok(n) if key == "set" && out.iter().any(|(o, _)| *o == n) => {
                    ctx.error(
                        &e.key_span,
                        e.field.path.clone(),
                        format!("{n:?} is set twice (header names are case-insensitive)"),
                    );
                    None
                }
                Ok(n) => Some(n),
                Err(message) => {
                    ctx.error(&e.key_span, e.field.path.clone(), message);
                    None
                }
            };
            let value = field_value(ctx, &e.field, "header value");
            if let (Some(n), Some(v)) = (name, value) {
                out.push((n, v));
            }
        }
        if key == "set" {
            edits.set = out;
        } else {
            edits.add = out;
        }
    }
    t.finish(ctx);
    edits
}

/// A header name a route may edit, lowercased.
fn editable_name(s: &str) -> Result<String, String> {
    let n = header_name(s)?;
    if is_reserved_header(&n) {
        let hint = if n == "host" {
            " (set the cluster's `host` to change the Host sent upstream)"
        } else {
            ""
        };
        return Err(format!(
            "{n:?} is managed by the proxy and cannot be edited{hint}"
        ));
    }
    Ok(n)
}
