//! The orchestration of `run`, `report` and `publish`: tools, ports, one variant after another
//! (start origin and proxies → check → warm up → interleaved measurements → stop; see
//! `variant`), then the results directory (rows, meta, summary, table, charts, raw outputs, logs).
//!
//! Owns: the order of a run, what counts as a failure of a target or scenario (`Run::fail`), and
//! the results directory's layout. stdout carries only the report and, as its last line, the results path.
//! Must not: parse tool output (parse.rs), build command lines (measure.rs, peers.rs), or stop
//! anything it did not start (procs.rs keeps that promise).

use std::fs;
use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use crate::install;
use crate::machine;
use crate::peers::{self, Kind, Target};
use crate::plan::{self, Scenario, Settings, Step, Variant};
use crate::procs;
use crate::progress::Progress;
use crate::report;
use crate::rows::{self, Failure, Row, RunMeta, TargetInfo};
use crate::stats;
use crate::{charts, publish};

mod variant;

use variant::run_variant;

/// println! that ignores a closed stdout (e.g. piped into `head`) instead of panicking.
macro_rules! emit {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout().lock(), $($arg)*);
    }};
}

struct Run {
    settings: Settings,
    targets: Vec<Target>,
    rows: Vec<Row>,
    failures: Vec<Failure>,
    infos: Vec<TargetInfo>,
    notes: Vec<String>,
    progress: Progress,
    gate_budget: Duration,
    nofile: u64,
}

impl Run {
    fn fail(
        &mut self,
        variant: Option<Variant>,
        target: &str,
        scenario: Option<Scenario>,
        reason: String,
    ) {
        let known = self
            .failures
            .iter()
            .any(|f| f.variant == variant && f.target == target && f.scenario == scenario);
        if !known {
            self.progress.log(&format!(
                "skip {}{target}{}: {reason}",
                variant.map_or_else(String::new, |v| format!("{v}/")),
                scenario.map_or_else(String::new, |s| format!("/{s}"))
            ));
            self.failures.push(Failure {
                variant,
                target: target.to_string(),
                scenario,
                reason,
            });
        }
    }
}

fn all_scenarios(s: &Settings) -> Vec<Scenario> {
    let mut v: Vec<Scenario> = s
        .variants
        .iter()
        .flat_map(|v| s.scenarios_for(*v))
        .collect();
    v.sort();
    v.dedup();
    v
}

fn full_schedule(s: &Settings, targets: &[Target]) -> Vec<(Variant, Vec<Step>)> {
    s.variants
        .iter()
        .map(|v| {
            let steps = plan::schedule(s, *v, &|i, sc| peers::applies(&targets[i], sc));
            (*v, steps)
        })
        .collect()
}

fn estimate(s: &Settings, targets: &[Target]) -> (usize, f64) {
    let sched = full_schedule(s, targets);
    let n = sched.iter().map(|(_, st)| st.len()).sum();
    let t = sched
        .iter()
        .map(|(_, st)| {
            plan::estimate_setup(targets.len())
                + st.iter().map(|x| plan::estimate_step(s, x)).sum::<f64>()
        })
        .sum();
    (n, t)
}

fn print_plan(s: &Settings, targets: &[Target]) {
    let (n, t) = estimate(s, targets);
    emit!(
        "strait-bench plan: {} mode, {n} measurements, about {}",
        if s.quick { "quick" } else { "full" },
        crate::progress::clock(t)
    );
    emit!("targets: {}", s.targets.join(", "));
    for (v, steps) in full_schedule(s, targets) {
        emit!(
            "variant {v}: scenarios {}; {} measurements",
            s.scenarios_for(v)
                .iter()
                .map(|x| x.name())
                .collect::<Vec<_>>()
                .join(", "),
            steps.len()
        );
        for st in steps.iter().filter(|st| st.rep <= 2) {
            emit!(
                "  rep {} {:<6} {:<8} ({} s)",
                st.rep,
                st.scenario.name(),
                s.targets[st.target],
                s.durations.of(v, st.scenario)
            );
        }
        if s.reps > 2 {
            emit!("  ... {} more repetitions, targets rotated", s.reps - 2);
        }
    }
}

/// Drops what missing tools make impossible, recording why.
fn settle_tools(run: &mut Run) -> Result<(), String> {
    let s = &run.settings;
    let needed = install::needed(&s.targets, &all_scenarios(s));
    let mut missing = install::missing(&needed);
    if !missing.is_empty() && s.install {
        let names: Vec<&str> = missing.iter().map(|t| t.package).collect();
        run.progress
            .log(&format!("installing missing packages: {}", names.join(" ")));
        if let Err(e) = install::install(&missing, &s.results.join("logs")) {
            run.progress.log(&format!("install failed: {e}"));
        }
        missing = install::missing(&needed);
    }
    for tool in missing {
        let reason = format!(
            "{} not installed (Debian package {})",
            tool.name, tool.package
        );
        let drop_scenarios: &[Scenario] = match tool.name {
            "wrk" => &[
                Scenario::Small,
                Scenario::K16,
                Scenario::M1,
                Scenario::Close,
                Scenario::Idle,
            ],
            "h2load" => &[Scenario::H2c],
            "iperf3" => &[Scenario::L4],
            _ => &[],
        };
        if tool == install::TASKSET && run.settings.variants.contains(&Variant::Pinned) {
            return Err(format!("{reason}: the pinned variant needs it"));
        }
        if tool == install::NGINX || tool == install::HAPROXY {
            run.settings.targets.retain(|t| t != tool.name);
            run.targets.retain(|t| t.name != tool.name);
            run.fail(None, tool.name, None, reason);
            continue;
        }
        if tool == install::NGINX_STREAM {
            run.notes
                .push(format!("nginx has no L4 listener: {reason}"));
            continue;
        }
        for sc in drop_scenarios {
            if run.settings.scenarios.contains(sc) {
                run.settings.scenarios.retain(|x| x != sc);
                run.fail(None, "all", Some(*sc), reason.clone());
            }
        }
    }
    if run.settings.scenarios.is_empty() || run.targets.is_empty() {
        return Err("nothing left to measure (see the skips above)".into());
    }
    Ok(())
}

/// Writes table.md, summary.json and the charts from rows + meta; returns the markdown.
fn render(dir: &Path, meta: &RunMeta, rows: &[Row]) -> Result<String, String> {
    let cells = stats::summarize(rows, &meta.settings.targets);
    rows::write_json(&dir.join("summary.json"), &cells)?;
    let charts = charts::write_all(dir, &cells, &meta.settings.targets)?;
    let md = report::markdown(
        meta,
        &cells,
        &report::Options {
            level: 1,
            chart_prefix: Some(""),
            charts: &charts,
        },
    );
    fs::write(dir.join("table.md"), &md).map_err(|e| format!("table.md: {e}"))?;
    Ok(md)
}

pub fn run(settings: Settings, targets: Vec<Target>, plan_only: bool) -> ExitCode {
    if plan_only {
        print_plan(&settings, &targets);
        return ExitCode::SUCCESS;
    }
    if let Err(e) = procs::install_signal_flags() {
        eprintln!("strait-bench: {e}");
    }
    procs::install_panic_hook();
    let (n, est) = estimate(&settings, &targets);
    let mut run = Run {
        gate_budget: Duration::from_secs_f64(settings.gate_budget_s),
        settings,
        targets,
        rows: Vec::new(),
        failures: Vec::new(),
        infos: Vec::new(),
        notes: Vec::new(),
        progress: Progress::new(n, est),
        nofile: 1024,
    };
    match go(&mut run) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("strait-bench: {e}");
            ExitCode::from(1)
        }
    }
}

fn go(run: &mut Run) -> Result<ExitCode, String> {
    let started = machine::now_secs();
    let t0 = Instant::now();
    let dir = run.settings.results.clone();
    if dir.exists()
        && fs::read_dir(&dir)
            .map(|mut d| d.next().is_some())
            .unwrap_or(true)
    {
        return Err(format!(
            "results directory {} exists and is not empty",
            dir.display()
        ));
    }
    for sub in ["raw", "logs"] {
        fs::create_dir_all(dir.join(sub)).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    let dir = fs::canonicalize(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    run.settings.results = dir.clone();
    settle_tools(run)?;

    // Every port must be free: a stale server would be measured instead of ours.
    let mut ports = peers::origin_ports(run.settings.port_base).all();
    for t in &run.targets {
        ports.extend(t.ports.all());
    }
    ports.sort();
    ports.dedup();
    let busy: Vec<String> = ports
        .iter()
        .filter(|p| !procs::port_free(**p))
        .map(u16::to_string)
        .collect();
    if !busy.is_empty() {
        return Err(format!(
            "port(s) {} on 127.0.0.1 already in use; stop what holds them or pass --port-base",
            busy.join(", ")
        ));
    }
    // Budget two descriptors per idle connection, the most any target needs: the client's plus,
    // in an L4 relay (an extra target may be one), its own origin connection. The HTTP proxies
    // (Strait's HTTP/1.1 listener, NGINX, HAProxy) hold one client descriptor per idle connection
    // and return the upstream one to a keep-alive pool, which holds no more connections than the
    // most requests ever in flight at once (the idle scenario sends one at a time, on a freshly
    // started proxy). The 2000 spare cover listeners, those pools, logs and the rest.
    run.nofile = procs::raise_nofile(65_536);
    let fit = u32::try_from(run.nofile.saturating_sub(2000) / 2).unwrap_or(u32::MAX);
    if run.settings.idle_conns > fit && run.settings.scenarios.contains(&Scenario::Idle) {
        run.notes.push(format!(
            "idle scenario: {} connections instead of {} (open-files limit {})",
            fit, run.settings.idle_conns, run.nofile
        ));
        run.settings.idle_conns = fit.max(1);
    }

    if !run.targets.iter().any(|t| t.kind == Kind::Direct) {
        run.notes
            .push("`direct` (no proxy) was not measured: no ratios to direct".into());
    }
    let (n, est) = estimate(&run.settings, &run.targets);
    run.progress = Progress::new(n, est);
    run.progress.log(&format!(
        "strait-bench: {} mode, {n} measurements, about {}; results in {}",
        if run.settings.quick { "quick" } else { "full" },
        crate::progress::clock(est),
        dir.display()
    ));
    run.progress
        .log("TLS scenarios: not run (Strait has no TLS yet)");
    for v in run.settings.variants.clone() {
        if procs::interrupted() {
            break;
        }
        if let Err(e) = run_variant(run, v) {
            run.fail(Some(v), "all", None, e);
        }
    }
    let interrupted = procs::interrupted();
    let mut tools = vec!["wrk", "h2load", "iperf3"];
    if run.settings.targets.iter().any(|t| t == "nginx") {
        tools.push("nginx");
    }
    if run.settings.targets.iter().any(|t| t == "haproxy") {
        tools.push("haproxy");
    }
    let meta = RunMeta {
        started_utc: machine::utc(started).1,
        elapsed_s: t0.elapsed().as_secs_f64(),
        interrupted,
        settings: run.settings.clone(),
        machine: machine::gather(&tools),
        targets: run.infos.clone(),
        failures: run.failures.clone(),
        notes: run.notes.clone(),
    };
    rows::write_rows(&dir, &run.rows)?;
    rows::write_json(&dir.join("run.json"), &meta)?;
    let md = render(&dir, &meta, &run.rows)?;
    run.progress.log(&format!(
        "done in {}",
        crate::progress::clock(t0.elapsed().as_secs_f64())
    ));
    emit!("{md}");
    emit!("{}", dir.display());
    Ok(if interrupted {
        ExitCode::from(130)
    } else if run.rows.is_empty() {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// `strait-bench report DIR`.
pub fn report_cmd(dir: &Path) -> Result<(), String> {
    let rows = rows::read_rows(dir)?;
    let meta = rows::read_meta(dir)?;
    let md = render(dir, &meta, &rows)?;
    emit!("{md}");
    emit!("{}", dir.display());
    Ok(())
}

/// `strait-bench publish DIR`.
pub fn publish_cmd(dir: &Path, doc: &Path, charts_dir: &Path) -> Result<(), String> {
    let rows = rows::read_rows(dir)?;
    let meta = rows::read_meta(dir)?;
    let cells = stats::summarize(&rows, &meta.settings.targets);
    let charts = charts::write_all(dir, &cells, &meta.settings.targets)?;
    let prefix = charts_dir
        .file_name()
        .map(|n| format!("{}/", n.to_string_lossy()))
        .unwrap_or_default();
    let md = report::markdown(
        &meta,
        &cells,
        &report::Options {
            level: 3,
            chart_prefix: Some(&prefix),
            charts: &charts,
        },
    );
    let files: Vec<String> = charts.iter().map(|c| c.file.clone()).collect();
    publish::publish(doc, &md, dir, &files, charts_dir)?;
    eprintln!(
        "updated {} and {} chart(s) in {}",
        doc.display(),
        files.len(),
        charts_dir.display()
    );
    Ok(())
}
