//! The markdown report: a header (machine, tools, method, caveats), then per variant a compact
//! matrix (median and ratio to direct) and a detailed table (median, min–max, spread,
//! latency, ratios to direct and nginx, CPU, background load, errors), then failures.
//!
//! Owns: every number's formatting and the wording of the caveats (Strait proxies HTTP/1.1 at L7
//! but is only an L4 relay for h2c until HTTP/2 lands; TLS is not measured yet).
//! Must not: compute statistics (stats.rs) or write files.

use std::fmt::Write;

use crate::cores;
use crate::plan::{Scenario, Variant};
use crate::rows::RunMeta;
use crate::stats::Cell;

/// How the report is embedded.
pub struct Options<'a> {
    /// Heading level of the report's title (1 for table.md; deeper inside docs).
    pub level: usize,
    /// When set, charts are embedded as images with this path prefix.
    pub chart_prefix: Option<&'a str>,
    pub charts: &'a [crate::charts::Chart],
}

/// `1234567.8` → `1,234,568`.
pub fn thousands(v: f64) -> String {
    let n = v.round();
    let neg = n < 0.0;
    let digits = format!("{:.0}", n.abs());
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    if neg {
        format!("-{out}")
    } else {
        out
    }
}

pub fn value(sc: Scenario, v: f64) -> String {
    match sc {
        Scenario::L4 => format!("{v:.2}"),
        Scenario::Idle => format!("{v:.2}"),
        _ => thousands(v),
    }
}

fn ratio(r: Option<f64>) -> String {
    r.map_or_else(String::new, |r| format!("{r:.2}"))
}

fn ms(v: Option<f64>) -> String {
    match v {
        Some(v) if v < 10.0 => format!("{v:.3}"),
        Some(v) => format!("{v:.1}"),
        None => String::new(),
    }
}

fn pct(v: Option<f64>) -> String {
    v.map_or_else(String::new, |v| format!("{v:.0}"))
}

fn variant_title(meta: &RunMeta, v: Variant) -> String {
    let s = &meta.settings;
    match v {
        Variant::Pinned => format!(
            "Variant `pinned`: proxy on CPU {} ({} worker{} each), load generator + origin on CPU {}",
            cores::format(&s.cores_proxy),
            s.cores_proxy.len(),
            if s.cores_proxy.len() == 1 { "" } else { "s" },
            cores::format(&s.cores_load)
        ),
        Variant::AllCores => format!(
            "Variant `all-cores`: nothing pinned, {} workers per proxy, everything shares CPUs {}",
            s.cores_all.len(),
            cores::format(&s.cores_all)
        ),
    }
}

/// Whether a cell was measured under another label than its target's name: Strait relaying TCP
/// ("strait (L4 relay)") in a scenario where the other proxies work at L7.
fn relayed(c: &Cell) -> bool {
    c.label != c.target
}

/// The names of the scenarios (in canonical order) with a Strait cell that passes `pick`.
fn strait_scenarios(cells: &[Cell], pick: impl Fn(&Cell) -> bool) -> Vec<&'static str> {
    Scenario::ALL
        .into_iter()
        .filter(|s| {
            cells
                .iter()
                .any(|c| c.target == "strait" && c.scenario == *s && pick(c))
        })
        .map(Scenario::name)
        .collect()
}

/// What Strait's rows measure: its HTTP/1.1 proxy (L7) in the HTTP/1.1 scenarios, an L4 relay
/// for h2c (no HTTP/2 yet). Derived from the cells' labels, so older results directories (whose
/// HTTP rows were all relayed) are described as what they measured.
fn strait_caveats(cells: &[Cell], out: &mut String) {
    let l7 = strait_scenarios(cells, |c| c.scenario != Scenario::L4 && !relayed(c));
    let l4 = strait_scenarios(cells, relayed);
    if !l7.is_empty() {
        let _ = writeln!(
            out,
            "- **strait** ({}): Strait's HTTP/1.1 reverse proxy, which parses every request and \
             forwards it through per-core keep-alive pools of origin connections, like NGINX and \
             HAProxy: an L7 comparison.",
            l7.join(", ")
        );
    }
    if !l4.is_empty() {
        let _ = writeln!(
            out,
            "- **strait (L4 relay)** ({}): Strait relays TCP bytes through an L4 listener there (no \
             request parsing, one origin connection per client connection), so those rows are not \
             an L7 comparison. Strait has no HTTP/2 proxy yet: h2c is relayed at L4 until HTTP/2 \
             lands. The `l4` rows are like for like.",
            l4.join(", ")
        );
    }
}

fn header(meta: &RunMeta, cells: &[Cell], out: &mut String) {
    let s = &meta.settings;
    let m = &meta.machine;
    let d = &s.durations;
    let tools: Vec<String> = m.tools.iter().map(|(_, v)| v.clone()).collect();
    let _ = writeln!(
        out,
        "- Machine: {}, {} CPUs, {:.0} GiB RAM; Linux {}; {}.",
        m.cpu_model, m.cpus, m.memory_gib, m.kernel, m.os
    );
    let _ = writeln!(
        out,
        "- Tools: {}. Strait commit {}. Proxy configs: bench/peers/ (the rendered copies and \
         server logs are in the results directory's logs/).",
        tools.join("; "),
        m.strait_commit
    );
    let _ = writeln!(
        out,
        "- Method: {} repetitions, targets interleaved (the first target rotates every repetition); \
         each cell is the median with min–max across repetitions; ratios divide medians from this \
         same run (× direct = share of the no-proxy rate, × nginx = relative to NGINX).",
        s.reps
    );
    let _ = writeln!(
        out,
        "- Load: wrk -c{} --latency (-c{} for 1 MiB; `close` adds `Connection: close`), h2load \
         -c{} -m{} (h2load prints no percentiles: its p50 column is the mean), iperf3 one stream; \
         idle: {} connections, one request each, then proxy RSS growth per connection. Seconds per \
         measurement: small {} · 16k {} · 1m {} · close {} · h2c {} · l4 {}{}.",
        s.conns,
        s.big_conns,
        s.h2_conns,
        s.h2_streams,
        s.idle_conns,
        d.small,
        d.k16,
        d.m1,
        d.close,
        d.h2c,
        d.l4,
        if s.variants.contains(&Variant::AllCores) {
            format!(" · all-cores variant {}", d.all_cores)
        } else {
            String::new()
        }
    );
    let _ = writeln!(
        out,
        "- Background load: before each measurement the run waits (at most {:.0} s) until processes \
         it did not start use at most {:.0} % of the CPUs; † marks a cell where some repetition saw \
         more (before or during it).",
        s.quiet_wait_s, s.quiet_max_pct
    );
    strait_caveats(cells, out);
    let _ = writeln!(
        out,
        "- TLS (handshakes/s, HTTPS keep-alive): not measured — Strait has no TLS yet."
    );
    if meta.interrupted {
        let _ = writeln!(
            out,
            "- **Interrupted**: this run was stopped early; cells may be missing."
        );
    }
    for n in &meta.notes {
        let _ = writeln!(out, "- {n}");
    }
}

pub fn markdown(meta: &RunMeta, cells: &[Cell], opts: &Options) -> String {
    let h = "#".repeat(opts.level.max(1));
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{h} strait-bench results: {} run of {}\n",
        if meta.settings.quick { "quick" } else { "full" },
        meta.started_utc
    );
    header(meta, cells, &mut out);
    for v in Variant::ALL {
        let vc: Vec<&Cell> = cells.iter().filter(|c| c.variant == v).collect();
        if vc.is_empty() {
            continue;
        }
        let _ = writeln!(out, "\n{h}# {}\n", variant_title(meta, v));
        let mut scen: Vec<Scenario> = vc.iter().map(|c| c.scenario).collect();
        scen.dedup();
        let mut targets: Vec<&str> = Vec::new();
        for c in &vc {
            if !targets.contains(&c.target.as_str()) {
                targets.push(&c.target);
            }
        }
        matrix(&vc, &scen, &targets, &mut out);
        details(meta, &vc, &mut out);
        idle_note(meta, &vc, &mut out);
        if let Some(prefix) = opts.chart_prefix {
            let charts: Vec<_> = opts.charts.iter().filter(|c| c.variant == v).collect();
            if !charts.is_empty() {
                out.push('\n');
            }
            for c in charts {
                let _ = writeln!(out, "![{} ({})]({prefix}{})\n", c.title, v, c.file);
            }
        }
    }
    failures(meta, &mut out);
    out
}

/// The compact matrix of one variant: a row per target, a column per scenario, the median and
/// its ratio to `direct`; then the legend.
fn matrix(vc: &[&Cell], scen: &[Scenario], targets: &[&str], out: &mut String) {
    let _ = write!(out, "| target |");
    for s in scen {
        let _ = write!(out, " {} ({}) |", s.name(), s.unit());
    }
    let _ = write!(out, "\n|---|");
    for _ in scen {
        let _ = write!(out, "---:|");
    }
    out.push('\n');
    // A row per target; a cell measured under another label (Strait's h2c, relayed at L4)
    // is marked ‡ and its label named below the matrix.
    let mut marked: Vec<String> = Vec::new();
    for t in targets {
        let _ = write!(out, "| {t} |");
        for s in scen {
            match vc.iter().find(|c| c.scenario == *s && c.target == *t) {
                Some(c) => {
                    let r = c
                        .ratio_direct
                        .map_or_else(String::new, |r| format!(" ({r:.2}×)"));
                    let dag = if c.noisy_reps > 0 { " †" } else { "" };
                    let ddag = if relayed(c) {
                        marked.push(format!("{} in {}", c.label, s.name()));
                        " ‡"
                    } else {
                        ""
                    };
                    let _ = write!(out, " {}{r}{dag}{ddag} |", value(*s, c.median));
                }
                None => {
                    let _ = write!(out, " |");
                }
            }
        }
        out.push('\n');
    }
    let ddag = if marked.is_empty() {
        String::new()
    } else {
        format!(
            " ‡ = {}: not an L7 comparison (see above).",
            marked.join("; ")
        )
    };
    let _ = writeln!(
        out,
        "\nMedians; in brackets the ratio to `direct` (no proxy). For `idle` (KiB of proxy \
         memory per idle connection) lower is better.{ddag}\n"
    );
}

/// The detailed table of one variant: a row per cell.
fn details(meta: &RunMeta, vc: &[&Cell], out: &mut String) {
    let _ = writeln!(
        out,
        "| scenario | target | median | min–max | spread | p50 ms | p99 ms | × direct | × nginx | proxy CPU % | load CPUs busy % | bg % | errors |"
    );
    let _ = writeln!(
        out,
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    );
    for c in vc {
        let s = c.scenario;
        let (p50, p99) = match s {
            Scenario::H2c => (
                c.mean_ms
                    .map_or_else(String::new, |m| format!("{} (mean)", ms(Some(m)))),
                String::new(),
            ),
            _ => (ms(c.p50_ms), ms(c.p99_ms)),
        };
        let n = if c.n as u32 == meta.settings.reps {
            String::new()
        } else {
            format!(" (n={})", c.n)
        };
        let dag = if c.noisy_reps > 0 { " †" } else { "" };
        let _ = writeln!(
            out,
            "| {} | {}{n} | {} {} | {}–{} | {} | {p50} | {p99} | {} | {} | {} | {} | {:.1}{dag} | {} |",
            s.name(),
            c.label,
            value(s, c.median),
            s.unit(),
            value(s, c.min),
            value(s, c.max),
            c.spread_pct.map_or_else(String::new, |p| format!("{p:.0}%")),
            ratio(c.ratio_direct),
            ratio(c.ratio_nginx),
            pct(c.proxy_cpu_pct),
            pct(c.load_cores_busy_pct),
            c.max_bg_pct,
            c.errors
        );
    }
}

/// What the idle connections cost each proxy, when `idle` was measured.
fn idle_note(meta: &RunMeta, vc: &[&Cell], out: &mut String) {
    let idle: Vec<String> = vc
        .iter()
        .filter(|c| c.scenario == Scenario::Idle)
        .filter_map(|c| {
            let (b, a) = (c.rss_before_kib?, c.rss_after_kib?);
            Some(format!(
                "{} {:.1} → {:.1} MiB",
                c.target,
                b / 1024.0,
                a / 1024.0
            ))
        })
        .collect();
    if !idle.is_empty() {
        let _ = writeln!(
            out,
            "\nIdle: proxy RSS (median) freshly started → with {} idle connections: {}. RSS counts \
             user-space memory only (kernel socket buffers are not in it); memory a proxy \
             allocates up front (NGINX's connection array sized by worker_connections) is in \
             the starting figure, not in the per-connection growth.",
            meta.settings.idle_conns,
            idle.join("; ")
        );
    }
}

/// The failures list: what was not measured, and why.
fn failures(meta: &RunMeta, out: &mut String) {
    if !meta.failures.is_empty() {
        let _ = writeln!(out, "\nNot measured:\n");
        for f in &meta.failures {
            let what = [
                f.variant.map(|v| v.name().to_string()),
                Some(f.target.clone()),
                f.scenario.map(|s| s.name().to_string()),
            ]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join("/");
            let _ = writeln!(out, "- {what}: {}", f.reason);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rows::{sample_row, Failure, Machine};
    use crate::stats::summarize;

    #[test]
    fn number_formats() {
        assert_eq!(thousands(1234567.8), "1,234,568");
        assert_eq!(thousands(999.0), "999");
        assert_eq!(thousands(-1000.0), "-1,000");
        assert_eq!(value(Scenario::L4, 12.345), "12.35");
        assert_eq!(ms(Some(0.4561)), "0.456");
        assert_eq!(ms(Some(12.34)), "12.3");
    }

    #[test]
    fn strait_caveats_follow_the_labels() {
        let cells = |rows: &[crate::rows::Row]| summarize(rows, &["strait".to_string()]);
        let caveats = |cells: &[Cell]| {
            let mut out = String::new();
            strait_caveats(cells, &mut out);
            out
        };
        // This harness: HTTP/1.1 through the proxy, h2c relayed.
        let mut rows = vec![
            sample_row("strait", Scenario::Small, 1, 1.0),
            sample_row("strait", Scenario::H2c, 1, 1.0),
            sample_row("strait", Scenario::L4, 1, 1.0),
            sample_row("strait", Scenario::Idle, 1, 1.0),
        ];
        rows[1].label = "strait (L4 relay)".into();
        let out = caveats(&cells(&rows));
        assert!(out.contains("- **strait** (small, idle): "), "{out}");
        assert!(out.contains("- **strait (L4 relay)** (h2c): "), "{out}");
        // An older results directory, from before the HTTP proxy: every HTTP row relayed.
        for r in &mut rows {
            if r.scenario != Scenario::L4 {
                r.label = "strait (L4 relay)".into();
            }
        }
        let out = caveats(&cells(&rows));
        assert!(!out.contains("- **strait** ("), "{out}");
        assert!(
            out.contains("- **strait (L4 relay)** (small, h2c, idle): "),
            "{out}"
        );
        // Strait not measured (or only l4): nothing to explain.
        assert_eq!(caveats(&cells(&rows[2..3])), "");
        assert_eq!(caveats(&[]), "");
    }

    #[test]
    fn report_labels_strait_as_l4_relay_only_for_h2c_and_marks_noise() {
        let mut rows = vec![
            sample_row("direct", Scenario::Small, 1, 100000.0),
            sample_row("strait", Scenario::Small, 1, 80000.0),
            sample_row("nginx", Scenario::Small, 1, 60000.0),
            sample_row("direct", Scenario::H2c, 1, 200000.0),
            sample_row("strait", Scenario::H2c, 1, 150000.0),
            sample_row("strait", Scenario::L4, 1, 20.0),
        ];
        rows[4].label = "strait (L4 relay)".into();
        rows[2].noisy = true;
        let order: Vec<String> = vec!["direct".into(), "strait".into(), "nginx".into()];
        let cells = summarize(&rows, &order);
        let mut settings = crate::plan::tests_support::settings();
        settings.reps = 1;
        let meta = RunMeta {
            started_utc: "2026-05-01 00:00:00 UTC".into(),
            elapsed_s: 1.0,
            interrupted: false,
            settings,
            machine: Machine::default(),
            targets: vec![],
            failures: vec![Failure {
                variant: Some(Variant::Pinned),
                target: "haproxy".into(),
                scenario: None,
                reason: "failed to start".into(),
            }],
            notes: vec![],
        };
        let md = markdown(
            &meta,
            &cells,
            &Options {
                level: 1,
                chart_prefix: None,
                charts: &[],
            },
        );
        assert!(md.starts_with("# strait-bench results: quick run"));
        // The matrix row is plain "strait"; only its h2c cell is marked as relayed.
        assert!(
            md.contains("| strait | 80,000 (0.80×) | 150,000 (0.75×) ‡ | 20.00 |"),
            "{md}"
        );
        assert!(md.contains("‡ = strait (L4 relay) in h2c: not an L7 comparison"));
        assert!(md.contains("| small | strait | 80,000 req/s |"), "{md}");
        assert!(md.contains("| h2c | strait (L4 relay) | 150,000 req/s |"));
        assert!(md.contains("| l4 | strait | 20.00 Gbit/s |"));
        assert!(!md.contains("| small | strait (L4 relay)"));
        assert!(md.contains("- **strait** (small): Strait's HTTP/1.1 reverse proxy"));
        assert!(md.contains(
            "- **strait (L4 relay)** (h2c): Strait relays TCP bytes through an L4 listener"
        ));
        assert!(md.contains("h2c is relayed at L4 until HTTP/2 lands"));
        assert!(!md.contains("Strait has no HTTP proxy yet"));
        assert!(md.contains("60,000 (0.60×) †"));
        assert!(md.contains("| 0.80 | 1.33 |"));
        assert!(md.contains("not measured — Strait has no TLS yet"));
        assert!(md.contains("- pinned/haproxy: failed to start"));
    }
}
