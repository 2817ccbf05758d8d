//! The action tables of a route: `clusters = [...]` (a weighted split), `respond = {...}` and
//! `redirect = {...}`.
//!
//! Owns: their keys, the allowed statuses (a `respond` in 3xx needs a location, 204 and 304 have
//! no body; redirects are 301, 302, 303, 307 or 308), their defaults, and the rule that a weighted
//! split lists each cluster once. `None` means an entry was unusable (and reported). Must not:
//! decide which action a route has (`route` does), or read routes' other keys.

use strait_engine::config::{limits, FixedResponse, WeightedCluster};
use toml::de::DeValue;

use super::headers::field_value;
use super::DEFAULT_CONTENT_TYPE;
use crate::config_file::cursor::{Ctx, Field, Span};
use crate::config_file::values::int_in;
use crate::config_file::{resolve_cluster, NameAt};

const WEIGHTED_KEYS: &[&str] = &["cluster", "weight"];
const RESPOND_KEYS: &[&str] = &["status", "body", "content_type"];
const REDIRECT_KEYS: &[&str] = &["status", "location"];
const DEFAULT_REDIRECT_STATUS: u16 = 302;
const REDIRECT_STATUSES: &[u16] = &[301, 302, 303, 307, 308];
const WEIGHTED_EXAMPLE: &str = "{ cluster = \"a\", weight = 90 }";

/// `clusters = [{ cluster = "a", weight = 90 }, …]`; `None` when any entry is unusable.
pub(super) fn weighted(
    ctx: &mut Ctx<'_>,
    f: &Field<'_, '_>,
    clusters: &[NameAt],
) -> Option<Vec<WeightedCluster>> {
    let expected = format!("an array of weighted clusters such as [{WEIGHTED_EXAMPLE}]");
    let items = f.elements(ctx, &expected)?;
    if items.is_empty() {
        f.error(
            ctx,
            format!("needs at least one cluster, e.g. clusters = [{WEIGHTED_EXAMPLE}]"),
        );
        return None;
    }
    let mut out = Vec::new();
    let mut ok = true;
    let mut seen: Vec<(usize, Span)> = Vec::new();
    for item in &items {
        if !matches!(item.value.get_ref(), DeValue::Table(_)) {
            item.type_error(
                ctx,
                &format!("a weighted cluster such as {WEIGHTED_EXAMPLE}"),
            );
            ok = false;
            continue;
        }
        let Some(mut t) = item.table(ctx, "a weighted cluster", WEIGHTED_KEYS) else {
            ok = false;
            continue;
        };
        let cluster = t.require(ctx, "cluster").and_then(|f| {
            let c = resolve_cluster(ctx, &f, clusters)?;
            if let Some((_, first)) = seen.iter().find(|(o, _)| *o == c) {
                let (line, column) = ctx.line_col(first.start);
                f.error(
                    ctx,
                    format!(
                        "this cluster is already listed at line {line}, column {column}; give it \
                         one entry with the combined weight"
                    ),
                );
                return None;
            }
            seen.push((c, f.span()));
            Some(c)
        });
        let weight = match t.get(ctx, "weight") {
            Some(f) => int_in(ctx, &f, 1, limits::MAX_WEIGHT.into()).map(|n| n as u32),
            None => Some(1),
        };
        t.finish(ctx);
        match (cluster, weight) {
            (Some(cluster), Some(weight)) => out.push(WeightedCluster { cluster, weight }),
            _ => ok = false,
        }
    }
    ok.then_some(out)
}

/// `respond = { status = 404, body = "…", content_type = "…" }`.
pub(super) fn respond(ctx: &mut Ctx<'_>, f: &Field<'_, '_>) -> Option<FixedResponse> {
    if !matches!(f.value.get_ref(), DeValue::Table(_)) {
        f.type_error(
            ctx,
            "a table such as { status = 404, body = \"not found\\n\" }",
        );
        return None;
    }
    let mut t = f.table(ctx, "a respond table", RESPOND_KEYS)?;
    let status_field = t.require(ctx, "status");
    let mut status = status_field
        .as_ref()
        .and_then(|f| int_in(ctx, f, 200, 599))
        .map(|n| n as u16);
    if let (Some(s), Some(f)) = (status, &status_field) {
        if (300..=399).contains(&s) && s != 304 {
            f.error(
                ctx,
                format!(
                    "a {s} answer needs a location: write redirect = {{ status = {s}, location = \
                     \"...\" }} instead"
                ),
            );
            status = None;
        }
    }
    let body_field = t.get(ctx, "body");
    let body = match &body_field {
        Some(f) => f.str(ctx, "a string").map(str::to_owned),
        None => Some(String::new()),
    };
    if let (Some(s @ (204 | 304)), Some(b), Some(f)) = (status, &body, &body_field) {
        if !b.is_empty() {
            f.error(
                ctx,
                format!("a {s} response has no body; remove `body` or pick another status"),
            );
            status = None;
        }
    }
    let content_type = match t.get(ctx, "content_type") {
        Some(f) => field_value(ctx, &f, "content type").filter(|v| {
            let ok = !v.is_empty();
            if !ok {
                f.error(ctx, "must not be empty; e.g. \"text/html; charset=utf-8\"");
            }
            ok
        }),
        None => Some(DEFAULT_CONTENT_TYPE.into()),
    };
    t.finish(ctx);
    Some(FixedResponse {
        status: status?,
        body: body?,
        content_type: content_type?,
        location: None,
    })
}

/// `redirect = { status = 301, location = "https://example.com/" }`.
pub(super) fn redirect(ctx: &mut Ctx<'_>, f: &Field<'_, '_>) -> Option<FixedResponse> {
    if !matches!(f.value.get_ref(), DeValue::Table(_)) {
        f.type_error(
            ctx,
            "a table such as { status = 301, location = \"https://example.com/\" }",
        );
        return None;
    }
    let mut t = f.table(ctx, "a redirect table", REDIRECT_KEYS)?;
    let status = match t.get(ctx, "status") {
        Some(f) => f.int(ctx).and_then(|n| {
            match u16::try_from(n)
                .ok()
                .filter(|s| REDIRECT_STATUSES.contains(s))
            {
                Some(s) => Some(s),
                None => {
                    f.error(ctx, format!("must be 301, 302, 303, 307 or 308, found {n}"));
                    None
                }
            }
        }),
        None => Some(DEFAULT_REDIRECT_STATUS),
    };
    let location = t.require(ctx, "location").and_then(|f| {
        let s = f.str(
            ctx,
            "a URL or path (a string) such as \"https://example.com/\"",
        )?;
        if !s.is_empty() && s.bytes().all(|b| (b'!'..=b'~').contains(&b)) {
            return Some(s.to_owned());
        }
        f.error(
            ctx,
            format!(
                "invalid location {s:?}: expected a URL or path such as \"https://example.com/\" \
                 or \"/new\" (visible ASCII without spaces; percent-encode others)"
            ),
        );
        None
    });
    t.finish(ctx);
    Some(FixedResponse {
        status: status?,
        body: String::new(),
        content_type: DEFAULT_CONTENT_TYPE.into(),
        location: Some(location?),
    })
}
