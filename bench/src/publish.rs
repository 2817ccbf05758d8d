//! Publishing a results directory into docs/performance.md: the section after the marker line
//! `<!-- results:bench -->` (up to the next `## ` heading) is replaced by the rendered report,
//! and the charts are copied next to the doc (docs/perf/).
//!
//! Owns: the marker convention and the section replacement.
//! Must not: touch any other part of the document (other markers, e.g. `<!-- results:peers -->`,
//! belong to other tools).

use std::fs;
use std::path::Path;

pub const MARKER: &str = "<!-- results:bench -->";

/// Replaces the lines after `marker` up to (not including) the next line starting with `## `.
pub fn replace_section(doc: &str, marker: &str, content: &str) -> Result<String, String> {
    let lines: Vec<&str> = doc.lines().collect();
    let at = lines
        .iter()
        .position(|l| l.trim() == marker)
        .ok_or_else(|| format!("marker line {marker} not found"))?;
    if lines.iter().skip(at + 1).any(|l| l.trim() == marker) {
        return Err(format!("marker line {marker} appears twice"));
    }
    let end = lines
        .iter()
        .enumerate()
        .skip(at + 1)
        .find(|(_, l)| l.starts_with("## "))
        .map_or(lines.len(), |(i, _)| i);
    let mut out: Vec<String> = lines[..=at].iter().map(|s| s.to_string()).collect();
    out.push(String::new());
    out.extend(content.trim_end().lines().map(str::to_string));
    if end < lines.len() {
        out.push(String::new());
    }
    out.extend(lines[end..].iter().map(|s| s.to_string()));
    Ok(out.join("\n") + "\n")
}

/// Writes `content` into `doc_path` under the marker and copies `charts` from `from` to
/// `charts_dir`.
pub fn publish(
    doc_path: &Path,
    content: &str,
    from: &Path,
    charts: &[String],
    charts_dir: &Path,
) -> Result<(), String> {
    let doc = fs::read_to_string(doc_path).map_err(|e| format!("{}: {e}", doc_path.display()))?;
    let new = replace_section(&doc, MARKER, content)?;
    fs::create_dir_all(charts_dir).map_err(|e| format!("{}: {e}", charts_dir.display()))?;
    for c in charts {
        fs::copy(from.join(c), charts_dir.join(c)).map_err(|e| format!("copy {c}: {e}"))?;
    }
    fs::write(doc_path, new).map_err(|e| format!("{}: {e}", doc_path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = "# Perf\n\n## Latest results\n\n<!-- results:bench -->\n\nold table\nold too\n\n## L4 results from the shared harness\n\n<!-- results:peers -->\nkeep\n";

    #[test]
    fn replaces_only_its_section() {
        let out = replace_section(DOC, MARKER, "| new |\n").unwrap();
        assert_eq!(
            out,
            "# Perf\n\n## Latest results\n\n<!-- results:bench -->\n\n| new |\n\n## L4 results from the shared harness\n\n<!-- results:peers -->\nkeep\n"
        );
        // Idempotent.
        assert_eq!(replace_section(&out, MARKER, "| new |").unwrap(), out);
    }

    #[test]
    fn marker_at_end_and_errors() {
        let out = replace_section("a\n<!-- results:bench -->\nold\n", MARKER, "new").unwrap();
        assert_eq!(out, "a\n<!-- results:bench -->\n\nnew\n");
        assert!(replace_section("no marker", MARKER, "x").is_err());
        assert!(replace_section(&format!("{MARKER}\n{MARKER}\n"), MARKER, "x").is_err());
    }
}
