//! The machinery under the TOML loader: an error collector that knows byte spans, and a "table
//! cursor" that hands out keys by name, type-checks their values and reports every key nobody asked
//! for as unknown (with a spelling suggestion).
//!
//! Nothing here knows the Strait schema; `super` walks the document with these pieces.

use std::collections::HashMap;
use std::ops::Range;
use std::path::Path;

use toml::de::{DeTable, DeValue};
use toml::Spanned;

use super::Diagnostic;

pub(super) type Span = Range<usize>;
pub(super) type Value<'i> = Spanned<DeValue<'i>>;

/// One problem found so far, positioned by byte offset.
struct Pending {
    at: usize,
    key: String,
    message: String,
}

/// Collects problems while the document is walked, and remembers where every key path lives so
/// problems found later (by `Config::validate`) can be given a position too.
pub(super) struct Ctx<'t> {
    text: &'t str,
    line_starts: Vec<usize>,
    errors: Vec<Pending>,
    spans: HashMap<String, Span>,
}

impl<'t> Ctx<'t> {
    pub(super) fn new(text: &'t str) -> Self {
        let mut line_starts = vec![0];
        line_starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        Ctx {
            text,
            line_starts,
            errors: Vec::new(),
            spans: HashMap::new(),
        }
    }

    pub(super) fn error(
        &mut self,
        span: &Span,
        key: impl Into<String>,
        message: impl Into<String>,
    ) {
        self.errors.push(Pending {
            at: span.start,
            key: key.into(),
            message: message.into(),
        });
    }

    pub(super) fn has_errors(&self) -> bool {
        !self.errors.is_empty()
    }

    /// True when `path` itself, or a table or array containing it, already has a diagnostic.
    pub(super) fn covered(&self, path: &str) -> bool {
        self.errors.iter().any(|e| {
            !e.key.is_empty()
                && path.starts_with(e.key.as_str())
                && matches!(
                    path.as_bytes().get(e.key.len()),
                    None | Some(b'.') | Some(b'[')
                )
        })
    }

    /// Remembers where the value (or table) at `path` is written.
    pub(super) fn record(&mut self, path: &str, span: Span) {
        self.spans.entry(path.to_owned()).or_insert(span);
    }

    /// The recorded span of `path`, else of the nearest enclosing path that was recorded, else the
    /// start of the file.
    pub(super) fn span_for(&self, path: &str) -> Span {
        let mut p = path;
        loop {
            if let Some(s) = self.spans.get(p) {
                return s.clone();
            }
            match p.rfind(['.', '[']) {
                Some(i) => p = &p[..i],
                None => return 0..0,
            }
        }
    }

    /// 1-based line and column (in characters) of a byte offset.
    pub(super) fn line_col(&self, offset: usize) -> (usize, usize) {
        let mut offset = offset.min(self.text.len());
        while !self.text.is_char_boundary(offset) {
            offset -= 1;
        }
        let line = self.line_starts.partition_point(|&s| s <= offset);
        let start = self.line_starts[line - 1];
        let mut column = self.text[start..offset].chars().count() + 1;
        // A byte order mark is not a column an editor shows.
        if start == 0 && offset > 0 && self.text.starts_with('\u{feff}') {
            column -= 1;
        }
        (line, column)
    }

    /// All problems, in file order (problems at the same place keep the order they were found).
    pub(super) fn into_diagnostics(mut self, file: &Path) -> Vec<Diagnostic> {
        self.errors.sort_by_key(|e| e.at);
        self.errors
            .iter()
            .map(|e| {
                let (line, column) = self.line_col(e.at);
                Diagnostic {
                    file: file.to_path_buf(),
                    line,
                    column,
                    key: e.key.clone(),
                    message: e.message.clone(),
                }
            })
            .collect()
    }
}

/// `a string`, `an integer`, … for "expected X, found Y" messages.
pub(super) fn a_type(v: &DeValue<'_>) -> &'static str {
    match v {
        DeValue::String(_) => "a string",
        DeValue::Integer(_) => "an integer",
        DeValue::Float(_) => "a float",
        DeValue::Boolean(_) => "a boolean",
        DeValue::Datetime(_) => "a date-time",
        DeValue::Array(_) => "an array",
        DeValue::Table(_) => "a table",
    }
}

/// One entry of a table whose keys are data (header names), not schema keys.
pub(super) struct Entry<'a, 'i> {
    pub(super) key: &'a str,
    pub(super) key_span: Span,
    pub(super) field: Field<'a, 'i>,
}

/// One value taken out of a table, with its dotted path.
pub(super) struct Field<'a, 'i> {
    pub(super) path: String,
    pub(super) value: &'a Value<'i>,
}

impl<'a, 'i> Field<'a, 'i> {
    pub(super) fn new(path: String, value: &'a Value<'i>) -> Self {
        Field { path, value }
    }

    pub(super) fn span(&self) -> Span {
        self.value.span()
    }

    pub(super) fn error(&self, ctx: &mut Ctx<'_>, message: impl Into<String>) {
        ctx.error(&self.span(), self.path.clone(), message);
    }

    /// Reports `expected {expected}, found {actual type}`.
    pub(super) fn type_error(&self, ctx: &mut Ctx<'_>, expected: &str) {
        let found = a_type(self.value.get_ref());
        self.error(ctx, format!("expected {expected}, found {found}"));
    }

    pub(super) fn str(&self, ctx: &mut Ctx<'_>, expected: &str) -> Option<&'a str> {
        match self.value.get_ref() {
            DeValue::String(s) => Some(s.as_ref()),
            _ => {
                self.type_error(ctx, expected);
                None
            }
        }
    }

    /// The value as an integer, if it is one (no error otherwise).
    pub(super) fn as_int(&self) -> Option<Result<i128, ()>> {
        match self.value.get_ref() {
            DeValue::Integer(i) => {
                Some(i128::from_str_radix(i.as_str(), i.radix()).map_err(|_| ()))
            }
            _ => None,
        }
    }

    pub(super) fn int(&self, ctx: &mut Ctx<'_>) -> Option<i128> {
        match self.as_int() {
            Some(Ok(n)) => Some(n),
            Some(Err(())) => {
                self.error(ctx, "integer is too large");
                None
            }
            None => {
                self.type_error(ctx, "an integer");
                None
            }
        }
    }

    /// The value as a table cursor for the sub-table `what` (e.g. `[runtime]`).
    pub(super) fn table(
        &self,
        ctx: &mut Ctx<'_>,
        what: &'static str,
        valid: &'static [&'static str],
    ) -> Option<TableCursor<'a, 'i>> {
        match self.value.get_ref() {
            DeValue::Table(t) => Some(TableCursor::new(
                ctx,
                self.path.clone(),
                what,
                self.span(),
                t,
                valid,
            )),
            _ => {
                self.type_error(ctx, &format!("a table ({what})"));
                None
            }
        }
    }

    pub(super) fn array(&self, ctx: &mut Ctx<'_>, expected: &str) -> Option<&'a [Value<'i>]> {
        match self.value.get_ref() {
            DeValue::Array(a) => Some(a.as_ref()),
            _ => {
                self.type_error(ctx, expected);
                None
            }
        }
    }

    /// The elements of an array as `path[i]` fields.
    pub(super) fn elements(&self, ctx: &mut Ctx<'_>, expected: &str) -> Option<Vec<Field<'a, 'i>>> {
        let items = self.array(ctx, expected)?;
        Some(
            items
                .iter()
                .enumerate()
                .map(|(i, v)| {
                    let path = format!("{}[{i}]", self.path);
                    ctx.record(&path, v.span());
                    Field::new(path, v)
                })
                .collect(),
        )
    }

    /// The entries of a table whose keys are free-form (such as header names), in file order, as
    /// `path.key` fields (keys that are not bare TOML keys are quoted in the path).
    pub(super) fn entries(&self, ctx: &mut Ctx<'_>, expected: &str) -> Option<Vec<Entry<'a, 'i>>> {
        let DeValue::Table(table) = self.value.get_ref() else {
            self.type_error(ctx, expected);
            return None;
        };
        let mut out: Vec<Entry<'a, 'i>> = table
            .iter()
            .map(|(k, v)| {
                let key: &'a str = k.get_ref();
                let bare = !key.is_empty()
                    && key
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
                let path = if bare {
                    format!("{}.{key}", self.path)
                } else {
                    format!("{}.{key:?}", self.path)
                };
                ctx.record(&path, v.span());
                Entry {
                    key,
                    key_span: k.span(),
                    field: Field::new(path, v),
                }
            })
            .collect();
        out.sort_by_key(|e| e.key_span.start);
        Some(out)
    }
}

/// Hands out the keys of one TOML table by name, remembering which were taken; `finish` reports
/// the rest as unknown.
pub(super) struct TableCursor<'a, 'i> {
    path: String,
    what: &'static str,
    span: Span,
    table: &'a DeTable<'i>,
    valid: &'static [&'static str],
    taken: Vec<&'static str>,
}

impl<'a, 'i> TableCursor<'a, 'i> {
    pub(super) fn new(
        ctx: &mut Ctx<'_>,
        path: String,
        what: &'static str,
        span: Span,
        table: &'a DeTable<'i>,
        valid: &'static [&'static str],
    ) -> Self {
        ctx.record(&path, span.clone());
        TableCursor {
            path,
            what,
            span,
            table,
            valid,
            taken: Vec::new(),
        }
    }

    pub(super) fn key_path(&self, key: &str) -> String {
        if self.path.is_empty() {
            key.to_owned()
        } else {
            format!("{}.{key}", self.path)
        }
    }

    /// Takes `key` if present.
    pub(super) fn get(&mut self, ctx: &mut Ctx<'_>, key: &'static str) -> Option<Field<'a, 'i>> {
        debug_assert!(
            self.valid.contains(&key),
            "{key} is not listed as valid in {}",
            self.what
        );
        self.taken.push(key);
        let value = self.table.get(key)?;
        let path = self.key_path(key);
        ctx.record(&path, value.span());
        Some(Field::new(path, value))
    }

    /// Takes `key`, reporting it missing (at the table) when absent.
    pub(super) fn require(
        &mut self,
        ctx: &mut Ctx<'_>,
        key: &'static str,
    ) -> Option<Field<'a, 'i>> {
        let field = self.get(ctx, key);
        if field.is_none() {
            let message = format!("missing required key {key:?} in {}", self.what);
            ctx.error(&self.span, self.key_path(key), message);
        }
        field
    }

    /// Reports every key that was not taken.
    pub(super) fn finish(self, ctx: &mut Ctx<'_>) {
        for (key, _) in self.table.iter() {
            let name: &str = key.get_ref();
            if self.taken.contains(&name) {
                continue;
            }
            let mut message = format!("unknown key {name:?}");
            if let Some(s) = suggest(name, self.valid) {
                message.push_str(&format!(" (did you mean {s:?}?)"));
            }
            let valid: Vec<String> = self.valid.iter().map(|k| format!("{k:?}")).collect();
            message.push_str(&format!(
                "; valid keys in {}: {}",
                self.what,
                valid.join(", ")
            ));
            ctx.error(&key.span(), self.key_path(name), message);
        }
    }
}

/// The closest valid key within edit distance 2 (transpositions count as one edit).
pub(super) fn suggest(name: &str, valid: &[&'static str]) -> Option<&'static str> {
    let lower = name.to_ascii_lowercase();
    valid
        .iter()
        .map(|v| (edit_distance(&lower, v), *v))
        .filter(|(d, _)| *d <= 2)
        .min_by_key(|(d, _)| *d)
        .map(|(_, v)| v)
}

/// Optimal string alignment distance (Levenshtein plus adjacent transpositions).
fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1)
                .min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = best;
        }
    }
    d[a.len()][b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edit_distance_counts_transpositions_as_one() {
        assert_eq!(edit_distance("idel_timeout", "idle_timeout"), 1);
        assert_eq!(edit_distance("adress", "address"), 1);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("same", "same"), 0);
        assert_eq!(suggest("protocl", &["name", "protocol"]), Some("protocol"));
        assert_eq!(suggest("Name", &["name", "protocol"]), Some("name"));
        assert_eq!(suggest("zzzzzz", &["name", "protocol"]), None);
    }

    #[test]
    fn offsets_become_one_based_lines_and_character_columns() {
        let ctx = Ctx::new("ab\nüx = 1\n\nz");
        assert_eq!(ctx.line_col(0), (1, 1));
        assert_eq!(ctx.line_col(2), (1, 3));
        assert_eq!(ctx.line_col(3), (2, 1));
        // `x` follows a two-byte character: byte 5, column 2.
        assert_eq!(ctx.line_col(5), (2, 2));
        assert_eq!(ctx.line_col(11), (3, 1));
        assert_eq!(ctx.line_col(12), (4, 1));
        assert_eq!(ctx.line_col(999), (4, 2));
    }

    #[test]
    fn covered_paths_include_children_but_not_siblings() {
        let mut ctx = Ctx::new("");
        ctx.error(&(0..0), "cluster[1]", "x");
        assert!(ctx.covered("cluster[1]"));
        assert!(ctx.covered("cluster[1].name"));
        assert!(ctx.covered("cluster[1].endpoints[0].weight"));
        assert!(!ctx.covered("cluster[10].name"));
        assert!(!ctx.covered("cluster[0].name"));
    }

    #[test]
    fn spans_fall_back_to_the_enclosing_path() {
        let mut ctx = Ctx::new("");
        ctx.record("cluster[0]", 5..9);
        ctx.record("cluster[0].name", 12..15);
        assert_eq!(ctx.span_for("cluster[0].name"), 12..15);
        assert_eq!(ctx.span_for("cluster[0].endpoints[3].weight"), 5..9);
        assert_eq!(ctx.span_for("runtime.cores"), 0..0);
    }
}
