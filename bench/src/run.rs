//! The orchestration of `run`, `report` and `publish`: tools, ports, one variant after another
//! (start origin and proxies → check → warm up → interleaved measurements → stop), then the
//! results directory (rows, meta, summary, table, charts, raw outputs, logs).
//!
//! Owns: the order of a run, what counts as a failure of a target or scenario, and the results
//! directory's layout. stdout carries only the report and, as its last line, the results path.
//! Must not: parse tool output (parse.rs), build command lines (measure.rs, peers.rs), or stop
//! anything it did not start (procs.rs keeps that promise).

use std::collections::HashSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use crate::gate;
use crate::install;
use crate::machine;
use crate::measure::{self, Env};
use crate::peers::{self, Kind, Launch, Prepare, Target};
use crate::plan::{self, Scenario, Settings, Step, Variant};
use crate::procs::{self, Supervisor};
use crate::progress::Progress;
use crate::report;
use crate::rows::{self, Failure, Row, RunMeta, TargetInfo};
use crate::stats;
use crate::{charts, cores, publish};

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

fn make_run_dir(variant: Variant) -> Result<PathBuf, String> {
    use std::os::unix::fs::PermissionsExt;
    let dir = std::env::temp_dir().join(format!("strait-bench-{}-{variant}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    // NGINX workers run as an unprivileged user and need to reach their temp paths.
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).map_err(|e| e.to_string())?;
    Ok(dir)
}

fn copy_logs(run_dir: &Path, to: &Path) {
    let _ = fs::create_dir_all(to);
    let Ok(rd) = fs::read_dir(run_dir) else {
        return;
    };
    for e in rd.flatten() {
        let p = e.path();
        if p.is_dir() {
            copy_logs(&p, &to.join(e.file_name()));
        } else if p.is_file() {
            let _ = fs::copy(&p, to.join(e.file_name()));
        }
    }
}

fn run_variant(run: &mut Run, v: Variant) -> Result<(), String> {
    let s = run.settings.clone();
    let pinned = v == Variant::Pinned;
    let proxy_cpus: Vec<usize> = if pinned {
        s.cores_proxy.clone()
    } else {
        s.cores_all.clone()
    };
    let load_cpus: Option<Vec<usize>> = pinned.then(|| s.cores_load.clone());
    let proxy_pin: Option<&[usize]> = if pinned { Some(&proxy_cpus) } else { None };
    let load_threads = load_cpus.as_ref().map_or(s.cores_all.len(), Vec::len) as u32;
    let scen = s.scenarios_for(v);
    if scen.is_empty() {
        return Ok(());
    }
    let run_dir = make_run_dir(v)?;
    let mut sup = Supervisor::default();
    let origin_ports = peers::origin_ports(s.port_base);
    let (Some(o_h1), Some(o_h2c), Some(o_l4)) =
        (origin_ports.h1, origin_ports.h2c, origin_ports.l4)
    else {
        return Err("port base too high".into());
    };
    run.progress.log(&format!(
        "variant {v}: proxy CPUs {} ({} worker(s) per proxy), load + origin CPUs {}",
        cores::format(&proxy_cpus),
        proxy_cpus.len(),
        load_cpus
            .as_deref()
            .map_or_else(|| "any".to_string(), cores::format)
    ));

    // Origin and iperf3 server on the load CPUs.
    let exe = std::env::current_exe().map_err(|e| format!("own path: {e}"))?;
    let origin = Launch {
        program: exe.display().to_string(),
        args: vec![
            "origin".into(),
            "--h1".into(),
            format!("{}:{o_h1}", peers::HOST),
            "--h2c".into(),
            format!("{}:{o_h2c}", peers::HOST),
            "--threads".into(),
            load_threads.to_string(),
        ],
        env: vec![],
    };
    sup.spawn(
        "origin",
        load_cpus.as_deref(),
        &origin,
        &run_dir.join("origin.log"),
    )?;
    sup.wait_ready("origin", &[o_h1, o_h2c], Duration::from_secs(10))?;
    let mut iperf_pgid = None;
    if scen.contains(&Scenario::L4) {
        let iperf = Launch {
            program: "iperf3".into(),
            args: vec![
                "-s".into(),
                "-B".into(),
                peers::HOST.into(),
                "-p".into(),
                o_l4.to_string(),
            ],
            env: vec![],
        };
        iperf_pgid = Some(sup.spawn(
            "iperf3-server",
            load_cpus.as_deref(),
            &iperf,
            &run_dir.join("iperf3-server.log"),
        )?);
        sup.wait_ready("iperf3-server", &[o_l4], Duration::from_secs(10))?;
    }

    // Proxies on the proxy CPUs.
    let mut active: Vec<(usize, Target, Option<i32>)> = Vec::new();
    let mut launches: Vec<(String, Launch, PathBuf)> = Vec::new();
    for (i, t) in run.targets.clone().into_iter().enumerate() {
        let mut t = t;
        if t.kind == Kind::Direct {
            active.push((i, t, None));
            continue;
        }
        let dir = run_dir.join(&t.name);
        if let Err(e) = fs::create_dir_all(&dir) {
            run.fail(Some(v), &t.name, None, format!("{}: {e}", dir.display()));
            continue;
        }
        let prep = Prepare {
            run_dir: &dir,
            workers: proxy_cpus.len(),
            cores: &proxy_cpus,
            origin: origin_ports,
            strait_bin: &s.strait_bin,
            strait_flags: &s.strait_flags,
            nginx_stream: install::present(peers::NGINX_STREAM_MODULE),
            nofile: run.nofile,
        };
        let launch = match peers::prepare(&mut t, &prep) {
            Ok(Some(l)) => l,
            Ok(None) => continue,
            Err(e) => {
                run.fail(Some(v), &t.name, None, e);
                continue;
            }
        };
        if !run.infos.iter().any(|x| x.name == t.name) {
            run.infos.push(TargetInfo {
                name: t.name.clone(),
                description: peers::describe(&t),
                command: launch.display(),
            });
        }
        let log = dir.join("stdout.log");
        let started = sup.spawn(&t.name, proxy_pin, &launch, &log).and_then(|pg| {
            sup.wait_ready(&t.name, &t.ports.all(), Duration::from_secs(15))
                .map(|_| pg)
        });
        launches.push((t.name.clone(), launch, log));
        match started {
            Ok(pg) => active.push((i, t, Some(pg))),
            Err(e) => {
                sup.stop(&t.name);
                run.fail(Some(v), &t.name, None, format!("failed to start: {e}"));
            }
        }
    }
    run.progress
        .advance(plan::estimate_setup(run.targets.len()), false);

    let mut env = Env {
        settings: &s,
        variant: v,
        load_cpus: load_cpus.as_deref(),
        proxy_cpus: &proxy_cpus,
        load_threads,
        ours: sup.pgids(),
        origin_pgid: sup.pgid("origin"),
        iperf_pgid,
        results: &s.results,
    };

    // Checks, then warm-up.
    let mut ok: HashSet<(usize, Scenario)> = HashSet::new();
    for (i, t, _) in &active {
        for sc in &scen {
            if *sc == Scenario::Idle && t.kind == Kind::Direct {
                continue;
            }
            if !peers::applies(t, *sc) {
                let why = if t.kind == Kind::Nginx && *sc == Scenario::L4 {
                    "no L4 listener (libnginx-mod-stream not installed)".to_string()
                } else {
                    format!("no {sc} listener")
                };
                run.fail(Some(v), &t.name, Some(*sc), why);
                continue;
            }
            match measure::check(&env, t, *sc) {
                Ok(()) => {
                    ok.insert((*i, *sc));
                }
                Err(e) => run.fail(Some(v), &t.name, Some(*sc), format!("check failed: {e}")),
            }
        }
    }
    for (_, t, _) in &active {
        if procs::interrupted() {
            break;
        }
        if install::present("wrk") {
            measure::warm_up(&env, t, scen.contains(&Scenario::H2c));
        }
    }

    // The interleaved measurements.
    let steps = plan::schedule(&s, v, &|i, sc| ok.contains(&(i, sc)));
    let mut dead: HashSet<usize> = HashSet::new();
    for step in &steps {
        if procs::interrupted() {
            break;
        }
        let est = plan::estimate_step(&s, step);
        run.progress.advance(est, true);
        let Some(slot) = active.iter().position(|(i, _, _)| *i == step.target) else {
            continue;
        };
        if dead.contains(&step.target) {
            continue;
        }
        // Idle memory is measured on a freshly started proxy: memory pooled by the earlier
        // scenarios would otherwise absorb the new connections and hide their cost.
        if step.scenario == Scenario::Idle && active[slot].2.is_some() {
            let name = active[slot].1.name.clone();
            let ports = active[slot].1.ports.all();
            sup.stop(&name);
            let restarted = match launches.iter().find(|(n, _, _)| *n == name) {
                Some((_, launch, log)) => sup
                    .spawn(
                        &name,
                        proxy_pin,
                        launch,
                        &log.with_extension(format!("idle{}.log", step.rep)),
                    )
                    .and_then(|pg| {
                        sup.wait_ready(&name, &ports, Duration::from_secs(15))
                            .map(|_| pg)
                    }),
                None => Err("no start command".into()),
            };
            env.ours = sup.pgids();
            match restarted {
                Ok(pg) => active[slot].2 = Some(pg),
                Err(e) => {
                    dead.insert(step.target);
                    run.fail(
                        Some(v),
                        &name,
                        None,
                        format!("restart before idle failed: {e}"),
                    );
                    continue;
                }
            }
            let _ = measure::check(&env, &active[slot].1, Scenario::Small);
        }
        let (_, target, pg) = &active[slot];
        if pg.is_some() && !sup.alive(&target.name) {
            dead.insert(step.target);
            let log = sup
                .log_of(&target.name)
                .map(|p| procs::tail(&p, 3))
                .unwrap_or_default();
            run.fail(
                Some(v),
                &target.name,
                None,
                format!("exited during the run; log: {log}"),
            );
            continue;
        }
        let gate = gate::quiet_gate(
            &env.ours,
            Duration::from_secs_f64(s.gate_sample_s),
            s.quiet_max_pct,
            Duration::from_secs_f64(s.quiet_wait_s),
            &mut run.gate_budget,
        );
        if !gate.quiet {
            run.progress.log(&format!(
                "background load {:.1}% > {:.0}% after waiting {:.0}s: measuring anyway (flagged †)",
                gate.bg_pct, s.quiet_max_pct, gate.waited_s
            ));
        }
        let what = format!(
            "{v} {} {} #{}",
            step.scenario,
            peers::label(target, step.scenario),
            step.rep
        );
        match measure::measure(&env, target, *pg, step, gate) {
            Ok(row) => {
                let lat = row
                    .p99_ms
                    .map_or_else(String::new, |p| format!(" p99 {p:.2} ms"));
                let cpu = row
                    .proxy_cpu_pct
                    .map_or_else(String::new, |c| format!(" proxy CPU {c:.0}%"));
                run.progress.step(&format!(
                    "{what}: {} {}{lat}{cpu} bg {:.1}%{}{}",
                    report::value(row.scenario, row.value),
                    row.unit,
                    row.bg_pct,
                    if row.errors > 0 {
                        format!(" errors {}", row.errors)
                    } else {
                        String::new()
                    },
                    if row.noisy { " †" } else { "" }
                ));
                run.rows.push(row);
            }
            Err(_) if procs::interrupted() => break,
            Err(e) => {
                run.progress.step(&format!("{what}: failed: {e}"));
                run.fail(
                    Some(v),
                    &target.name,
                    Some(step.scenario),
                    format!("measurement failed: {e}"),
                );
            }
        }
        if step.scenario == Scenario::Close {
            std::thread::sleep(Duration::from_millis(500));
        }
    }
    drop(env);
    sup.stop_all();
    copy_logs(&run_dir, &s.results.join("logs").join(v.name()));
    let _ = fs::remove_dir_all(&run_dir);
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
