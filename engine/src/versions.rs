//! The configuration's version history, kept by the control plane: every applied configuration
//! with its number, SHA-256, time, source and text; and the line diff between two versions.
//!
//! Owns: [`Versions`] (append-only numbers, at most `max` entries kept, the oldest dropped) and
//! [`unified_diff`]. Must not: apply anything (the reload does), or be touched by a core.

use std::collections::VecDeque;
use std::fmt::Write as _;

/// One applied configuration.
#[derive(Debug, Clone)]
pub struct Version {
    pub version: u64,
    pub sha256: String,
    /// Unix seconds.
    pub applied_at: u64,
    /// `file` (start-up, SIGHUP, the file watcher, `POST /config/reload`), `api` (`POST
    /// /config`) or `rollback`.
    pub source: &'static str,
    /// Who asked: the admin client's address, if any.
    pub peer: Option<String>,
    pub text: String,
    /// The text in canonical TOML layout (what `GET /config/diff` compares).
    pub normalised: String,
}

/// The history: newest last.
pub struct Versions {
    kept: VecDeque<Version>,
    max: usize,
}

impl Versions {
    /// `max`: how many versions to keep (at least 1).
    pub fn new(max: usize) -> Versions {
        Versions {
            kept: VecDeque::new(),
            max: max.max(1),
        }
    }

    /// Records an applied configuration as `version`; `normalised` defaults to the text.
    pub fn push(
        &mut self,
        version: u64,
        source: &'static str,
        peer: Option<String>,
        text: &str,
        normalised: Option<String>,
    ) {
        let applied_at = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        self.kept.push_back(Version {
            version,
            sha256: sha256_hex(text.as_bytes()),
            applied_at,
            source,
            peer,
            text: text.to_string(),
            normalised: normalised.unwrap_or_else(|| text.to_string()),
        });
        while self.kept.len() > self.max {
            self.kept.pop_front();
        }
    }

    pub fn get(&self, version: u64) -> Option<&Version> {
        self.kept.iter().find(|v| v.version == version)
    }

    pub fn current(&self) -> Option<&Version> {
        self.kept.back()
    }

    pub fn iter(&self) -> impl Iterator<Item = &Version> {
        self.kept.iter()
    }
}

fn sha256_hex(bytes: &[u8]) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, bytes);
    let mut out = String::with_capacity(64);
    for b in digest.as_ref() {
        let _ = write!(out, "{b:02x}");
    }
    out
}

/// Unix seconds as RFC 3339 UTC (`2026-12-08T03:04:05Z`).
pub fn rfc3339(unix: u64) -> String {
    let days = (unix / 86_400) as i64;
    let secs = unix % 86_400;
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

/// Longest input (in lines) [`unified_diff`] compares line by line (the LCS table is `n × m`
/// `u32`s: 16 MB at most); longer ones are shown as one hunk.
const MAX_DIFF_LINES: usize = 2_000;

/// A unified diff (`---`/`+++` headers, `@@` hunks with 3 lines of context) from `a` to `b`.
pub fn unified_diff(a: &str, b: &str, a_name: &str, b_name: &str) -> String {
    let x: Vec<&str> = a.lines().collect();
    let y: Vec<&str> = b.lines().collect();
    let mut out = format!("--- {a_name}\n+++ {b_name}\n");
    if x == y {
        return out;
    }
    if x.len() > MAX_DIFF_LINES || y.len() > MAX_DIFF_LINES {
        let _ = writeln!(out, "@@ -1,{} +1,{} @@", x.len(), y.len());
        x.iter().for_each(|l| out.push_str(&format!("-{l}\n")));
        y.iter().for_each(|l| out.push_str(&format!("+{l}\n")));
        return out;
    }
    // Edit script from the LCS table.
    let (n, m) = (x.len(), y.len());
    let mut lcs = vec![0u32; (n + 1) * (m + 1)];
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            lcs[i * (m + 1) + j] = if x[i] == y[j] {
                lcs[(i + 1) * (m + 1) + j + 1] + 1
            } else {
                lcs[(i + 1) * (m + 1) + j].max(lcs[i * (m + 1) + j + 1])
            };
        }
    }
    // (op, old line index, new line index): ' ', '-', '+'.
    let mut ops: Vec<(char, usize, usize)> = Vec::new();
    let (mut i, mut j) = (0, 0);
    while i < n || j < m {
        if i < n && j < m && x[i] == y[j] {
            ops.push((' ', i, j));
            i += 1;
            j += 1;
        } else if j < m && (i == n || lcs[i * (m + 1) + j + 1] > lcs[(i + 1) * (m + 1) + j]) {
            ops.push(('+', i, j));
            j += 1;
        } else {
            ops.push(('-', i, j));
            i += 1;
        }
    }
    // Hunks: changes with up to 3 lines of context, merged when close.
    const CONTEXT: usize = 3;
    let changed: Vec<usize> = (0..ops.len()).filter(|&k| ops[k].0 != ' ').collect();
    let mut k = 0;
    while k < changed.len() {
        let start = changed[k].saturating_sub(CONTEXT);
        let mut end = changed[k];
        while k + 1 < changed.len() && changed[k + 1] <= end + 2 * CONTEXT + 1 {
            k += 1;
            end = changed[k];
        }
        let end = (end + CONTEXT).min(ops.len() - 1);
        let hunk = &ops[start..=end];
        let old_len = hunk.iter().filter(|o| o.0 != '+').count();
        let new_len = hunk.iter().filter(|o| o.0 != '-').count();
        let _ = writeln!(
            out,
            "@@ -{},{old_len} +{},{new_len} @@",
            hunk[0].1 + usize::from(old_len > 0),
            hunk[0].2 + usize::from(new_len > 0)
        );
        for &(op, oi, nj) in hunk {
            let line = if op == '+' { y[nj] } else { x[oi] };
            let _ = writeln!(out, "{op}{line}");
        }
        k += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_keep_the_newest_and_hash_their_text() {
        let mut v = Versions::new(2);
        v.push(0, "file", None, "a", None);
        v.push(1, "api", Some("127.0.0.1:1".into()), "b", None);
        v.push(2, "rollback", None, "a", None);
        assert!(v.get(0).is_none(), "the oldest is dropped past max");
        assert_eq!(v.current().map(|c| c.version), Some(2));
        assert_eq!(
            v.get(2).map(|c| c.sha256.as_str()),
            Some("ca978112ca1bbdcafac231b39a23dc4da786eff8147c4e72b9807785afee48bb")
        );
        assert_eq!(v.iter().count(), 2);
    }

    #[test]
    fn rfc3339_dates() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_796_699_045), "2026-12-08T03:04:05Z");
    }

    #[test]
    fn a_unified_diff_of_a_changed_line_and_an_added_block() {
        let a = "a\nb\nc\nd\ne\nf\ng\nh\n";
        let b = "a\nb\nc\nD\ne\nf\ng\nh\ni\nj\n";
        let d = unified_diff(a, b, "version 1", "version 2");
        assert_eq!(
            d,
            "--- version 1\n+++ version 2\n@@ -1,8 +1,10 @@\n a\n b\n c\n-d\n+D\n e\n f\n g\n h\n+i\n+j\n"
        );
        assert_eq!(unified_diff(a, a, "x", "y"), "--- x\n+++ y\n");
    }
}
