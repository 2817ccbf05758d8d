//! The engine's layer order, checked by a test: a module may import (`use crate::…`,
//! `crate::…` paths, `super::…`) only modules of its own layer or a lower one, so the engine has
//! no import cycle across layers and each layer can be read knowing only those below it.
//! docs/architecture.md ("Layers") explains each layer; this table is the source of truth.
//!
//! Owns: [`LAYERS`] and the test that reads every source file of the crate. Must not: be used at
//! run time (it is compiled only for tests).

/// `(module path prefix, layer)`, lowest layer first; a module takes the layer of its longest
/// matching prefix. A new module must be placed here (the test fails for a module with none).
#[cfg(test)]
pub(crate) const LAYERS: &[(&str, u8)] = &[
    // 0: the configuration snapshot, counters, control messages: no IO, no per-core state.
    ("config", 0),
    ("log_limit", 0),
    ("client_stream", 0),
    ("listener", 0),
    ("stats", 0),
    ("control", 0),
    ("shared", 0),
    ("notify", 0),
    ("audit", 0),
    ("versions", 0),
    // 1: TLS (certificates, the TLS stream).
    ("tls_stream", 1),
    ("tls", 1),
    // 2: what HTTP keeps per core, and pure HTTP helpers: route tables, pools (state only), the
    // request phases and their policies, the fault table, head writers, h2 field conversion.
    ("http", 2),
    ("http::fault", 2),
    ("http::pipeline", 2),
    ("http::pool", 2),
    ("http::route", 2),
    ("http::access_log", 2),
    ("http::head", 2),
    ("http::upstream_conn", 2),
    ("http::h2::fields", 2),
    ("http::h2::upstream", 2),
    ("http::h2::io", 2),
    // 3: the core's context, below everything that serves connections.
    ("context", 3),
    // 4: reaching an endpoint (connect, TLS to upstreams) and connection guards.
    ("upstream", 4),
    // 5: the one upstream exchange.
    ("http::exchange", 5),
    // 6: the client protocols.
    ("http::proxy", 6),
    ("http::h2", 6),
    ("http::tunnel", 6),
    ("tcp_proxy", 6),
    ("udp_proxy", 6),
    // 7: the first bytes of a connection (sniffing, TLS), handing it to a protocol.
    ("entry", 7),
    // 8: a core's runtime: accept loops, control, drain.
    ("core", 8),
    // 9: the read side (metrics) and the admin server.
    ("metrics", 9),
    ("admin", 9),
    // 10: start-up and shutdown.
    ("server", 10),
    ("reload", 10),
    // 11: the crate root.
    ("", 11),
    // Test-only.
    ("layers", 11),
];

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::path::{Path, PathBuf};

    use super::LAYERS;

    /// `engine/src/http/h2/stream.rs` → `http::h2::stream`; `mod.rs` and `lib.rs` name their
    /// directory.
    fn module_of(src: &Path, file: &Path) -> String {
        let rel = file.strip_prefix(src).unwrap_or(file).with_extension("");
        let mut parts: Vec<String> = rel
            .components()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .collect();
        if matches!(parts.last().map(String::as_str), Some("mod" | "lib")) {
            parts.pop();
        }
        parts.join("::")
    }

    fn files(dir: &Path, out: &mut Vec<PathBuf>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                files(&p, out);
            } else if p.extension().is_some_and(|x| x == "rs") {
                out.push(p);
            }
        }
    }

    /// The layer of a module: its longest matching prefix (the root, `""`, matches only itself).
    fn layer(module: &str) -> Option<u8> {
        LAYERS
            .iter()
            .filter(|(prefix, _)| {
                module == *prefix
                    || !prefix.is_empty() && module.starts_with(&format!("{prefix}::"))
            })
            .max_by_key(|(prefix, _)| prefix.len())
            .map(|&(_, l)| l)
    }

    /// The paths a file's non-test code names, as absolute module paths (`crate::` stripped,
    /// `super::` resolved against the file's module).
    fn references(module: &str, text: &str) -> BTreeSet<String> {
        let code = match text.find("#[cfg(test)]") {
            Some(i) => &text[..i],
            None => text,
        };
        // Comments (doc links among them) import nothing.
        let code: String = code
            .lines()
            .map(|l| match l.find("//") {
                Some(i) => &l[..i],
                None => l,
            })
            .collect::<Vec<_>>()
            .join("\n");
        let code = code.as_str();
        let mut out = BTreeSet::new();
        let bytes = code.as_bytes();
        for (i, _) in code.match_indices("crate::") {
            if i > 0 && (bytes[i - 1].is_ascii_alphanumeric() || bytes[i - 1] == b'_') {
                continue; // `strait_crate::…` or similar
            }
            out.insert(path_at(&code[i + "crate::".len()..]));
        }
        for (i, _) in code.match_indices("super::") {
            if i > 0 && (bytes[i - 1].is_ascii_alphanumeric() || bytes[i - 1] == b':') {
                continue; // `super::super::` is handled from its first `super`
            }
            let mut base: Vec<&str> = module.split("::").filter(|s| !s.is_empty()).collect();
            let mut rest = &code[i..];
            while let Some(r) = rest.strip_prefix("super::") {
                base.pop();
                rest = r;
            }
            let tail = path_at(rest);
            let joined = if base.is_empty() {
                tail
            } else {
                format!("{}::{tail}", base.join("::"))
            };
            out.insert(joined);
        }
        out
    }

    /// The `a::b::c` path at the start of `s` (lowercase segments only: modules, not items).
    fn path_at(s: &str) -> String {
        let mut segments = Vec::new();
        for seg in s.split("::") {
            let name: String = seg
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            let is_module = name
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_lowercase() || c == '_');
            if !is_module {
                break;
            }
            segments.push(name.clone());
            if name.len() != seg.len() {
                break;
            }
        }
        segments.join("::")
    }

    /// The longest prefix of `path` that is a module of the crate.
    fn owning_module<'a>(path: &str, modules: &'a BTreeSet<String>) -> Option<&'a String> {
        let parts: Vec<&str> = path.split("::").collect();
        (1..=parts.len())
            .rev()
            .map(|n| parts[..n].join("::"))
            .find_map(|candidate| modules.get(&candidate))
    }

    #[test]
    fn no_module_imports_a_higher_layer() {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut all = Vec::new();
        files(&src, &mut all);
        assert!(
            all.len() > 30,
            "found only {} files under {src:?}",
            all.len()
        );
        let modules: BTreeSet<String> = all.iter().map(|f| module_of(&src, f)).collect();
        let mut problems = Vec::new();
        for file in &all {
            let module = module_of(&src, file);
            let Some(own) = layer(&module) else {
                problems.push(format!("{module}: not in layers::LAYERS"));
                continue;
            };
            let text = std::fs::read_to_string(file).unwrap_or_default();
            for path in references(&module, &text) {
                let Some(target) = owning_module(&path, &modules) else {
                    continue;
                };
                if path.is_empty() || target == &module {
                    continue;
                }
                let theirs = layer(target).unwrap_or(u8::MAX);
                if theirs > own {
                    problems.push(format!(
                        "{module} (layer {own}) imports {path} from {target} (layer {theirs})"
                    ));
                }
            }
        }
        assert!(
            problems.is_empty(),
            "imports against the layer order (engine/src/layers.rs):\n{}",
            problems.join("\n")
        );
    }

    /// The check itself sees what it must: an upward import in a sample is reported.
    #[test]
    fn the_reader_resolves_crate_and_super_paths() {
        let refs = references(
            "http::h2::stream",
            "use crate::context::CoreContext;\nuse super::fields::{self, X};\nfn f() { super::super::pool::Pools::new(); crate::core::run(); }\n#[cfg(test)]\nuse crate::server;",
        );
        let want: BTreeSet<String> = ["context", "http::h2::fields", "http::pool::", "core::run"]
            .iter()
            .map(|s| s.trim_end_matches("::").to_string())
            .collect();
        assert_eq!(refs, want);
        assert_eq!(layer("http::h2::fields"), Some(2));
        assert_eq!(layer("http::h2::stream"), Some(6));
        assert_eq!(layer("http::exchange::acquire"), Some(5));
    }
}
