//! One variant of a run, start to finish: start the origin (and the iperf3 server) on the load
//! CPUs and every target's proxy on the proxy CPUs, check each target and scenario, warm up, run
//! the interleaved measurements (restarting a proxy before `idle`, noticing one that died), then
//! stop everything and keep the logs.
//!
//! Owns: what a variant pins where, what counts as a failure of a target or scenario within a
//! variant, and the variant's temporary directory. Must not: decide the schedule (plan.rs),
//! parse tool output or build command lines (measure.rs, peers.rs), or stop anything it did not
//! start (procs.rs keeps that promise).

use std::collections::HashSet;
use std::fs;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::Run;
use crate::cores;
use crate::gate;
use crate::install;
use crate::measure::{self, Env};
use crate::peers::{self, Kind, Launch, Prepare, Target};
use crate::plan::{self, Scenario, Settings, Step, Variant};
use crate::procs::{self, Supervisor};
use crate::report;
use crate::rows::TargetInfo;

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

/// Where one variant runs its processes.
struct Cpus {
    /// The proxies' CPUs (every allowed CPU when not pinned).
    proxy: Vec<usize>,
    /// `taskset` CPUs for the load generator and the origin (None: unpinned).
    load: Option<Vec<usize>>,
    load_threads: u32,
    pinned: bool,
}

impl Cpus {
    fn of(s: &Settings, v: Variant) -> Cpus {
        let pinned = v == Variant::Pinned;
        let proxy: Vec<usize> = if pinned {
            s.cores_proxy.clone()
        } else {
            s.cores_all.clone()
        };
        let load: Option<Vec<usize>> = pinned.then(|| s.cores_load.clone());
        let load_threads = load.as_ref().map_or(s.cores_all.len(), Vec::len) as u32;
        Cpus {
            proxy,
            load,
            load_threads,
            pinned,
        }
    }

    /// What the proxies are pinned to, if anything.
    fn proxy_pin(&self) -> Option<&[usize]> {
        if self.pinned {
            Some(&self.proxy)
        } else {
            None
        }
    }
}

/// A target taking part in a variant: its index in `Run::targets`, the target, and the process
/// group of its proxy (None for `direct`).
type Active = (usize, Target, Option<i32>);
/// How a proxy was started (name, command, log file), to start it again before `idle`.
type Started = (String, Launch, PathBuf);

pub(super) fn run_variant(run: &mut Run, v: Variant) -> Result<(), String> {
    let s = run.settings.clone();
    let cpus = Cpus::of(&s, v);
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
        cores::format(&cpus.proxy),
        cpus.proxy.len(),
        cpus.load
            .as_deref()
            .map_or_else(|| "any".to_string(), cores::format)
    ));

    let iperf_pgid = start_origins(
        &mut sup,
        &run_dir,
        &cpus,
        (o_h1, o_h2c, o_l4),
        scen.contains(&Scenario::L4),
    )?;
    let (mut active, launches) = start_proxies(run, &mut sup, &s, v, &run_dir, &cpus, origin_ports);
    run.progress
        .advance(plan::estimate_setup(run.targets.len()), false);

    let mut env = Env {
        settings: &s,
        variant: v,
        load_cpus: cpus.load.as_deref(),
        proxy_cpus: &cpus.proxy,
        load_threads: cpus.load_threads,
        ours: sup.pgids(),
        origin_pgid: sup.pgid("origin"),
        iperf_pgid,
        results: &s.results,
    };

    // Checks, then warm-up.
    let ok = check_targets(run, &env, &active, &scen);
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
    measure_steps(
        run,
        &mut sup,
        &mut env,
        &mut active,
        &launches,
        &steps,
        cpus.proxy_pin(),
    );
    drop(env);
    sup.stop_all();
    copy_logs(&run_dir, &s.results.join("logs").join(v.name()));
    let _ = fs::remove_dir_all(&run_dir);
    Ok(())
}

/// The origin and, for `l4`, the iperf3 server, on the load CPUs. Returns iperf3's process group.
fn start_origins(
    sup: &mut Supervisor,
    run_dir: &Path,
    cpus: &Cpus,
    (o_h1, o_h2c, o_l4): (u16, u16, u16),
    l4: bool,
) -> Result<Option<i32>, String> {
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
            cpus.load_threads.to_string(),
        ],
        env: vec![],
    };
    sup.spawn(
        "origin",
        cpus.load.as_deref(),
        &origin,
        &run_dir.join("origin.log"),
    )?;
    sup.wait_ready("origin", &[o_h1, o_h2c], Duration::from_secs(10))?;
    let mut iperf_pgid = None;
    if l4 {
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
            cpus.load.as_deref(),
            &iperf,
            &run_dir.join("iperf3-server.log"),
        )?);
        sup.wait_ready("iperf3-server", &[o_l4], Duration::from_secs(10))?;
    }
    Ok(iperf_pgid)
}

/// Every target's proxy on the proxy CPUs (`direct` needs none). A proxy that cannot be prepared
/// or started is recorded as a failure of the variant and left out.
fn start_proxies(
    run: &mut Run,
    sup: &mut Supervisor,
    s: &Settings,
    v: Variant,
    run_dir: &Path,
    cpus: &Cpus,
    origin_ports: peers::Ports,
) -> (Vec<Active>, Vec<Started>) {
    let mut active: Vec<Active> = Vec::new();
    let mut launches: Vec<Started> = Vec::new();
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
            workers: cpus.proxy.len(),
            cores: &cpus.proxy,
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
        let started = sup
            .spawn(&t.name, cpus.proxy_pin(), &launch, &log)
            .and_then(|pg| {
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
    (active, launches)
}

/// Checks every scenario on every active target; returns the (target, scenario) pairs that passed
/// and records the others as failures.
fn check_targets(
    run: &mut Run,
    env: &Env<'_>,
    active: &[Active],
    scen: &[Scenario],
) -> HashSet<(usize, Scenario)> {
    let v = env.variant;
    let mut ok: HashSet<(usize, Scenario)> = HashSet::new();
    for (i, t, _) in active {
        for sc in scen {
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
            match measure::check(env, t, *sc) {
                Ok(()) => {
                    ok.insert((*i, *sc));
                }
                Err(e) => run.fail(Some(v), &t.name, Some(*sc), format!("check failed: {e}")),
            }
        }
    }
    ok
}

/// Runs the scheduled steps in order. A proxy that dies (or cannot be restarted before `idle`)
/// is recorded once and skipped for the rest of the variant.
fn measure_steps(
    run: &mut Run,
    sup: &mut Supervisor,
    env: &mut Env<'_>,
    active: &mut [Active],
    launches: &[Started],
    steps: &[Step],
    proxy_pin: Option<&[usize]>,
) {
    let v = env.variant;
    let mut dead: HashSet<usize> = HashSet::new();
    for step in steps {
        if procs::interrupted() {
            break;
        }
        let est = plan::estimate_step(env.settings, step);
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
            if let Err(e) = restart_for_idle(sup, env, &mut active[slot], launches, step, proxy_pin)
            {
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
        if measure_step(run, env, target, *pg, step).is_break() {
            break;
        }
        if step.scenario == Scenario::Close {
            std::thread::sleep(Duration::from_millis(500));
        }
    }
}

/// Stops `entry`'s proxy and starts it again (logging to a file of its own), then checks it.
fn restart_for_idle(
    sup: &mut Supervisor,
    env: &mut Env<'_>,
    entry: &mut Active,
    launches: &[Started],
    step: &Step,
    proxy_pin: Option<&[usize]>,
) -> Result<(), String> {
    let name = entry.1.name.clone();
    let ports = entry.1.ports.all();
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
    entry.2 = Some(restarted?);
    let _ = measure::check(env, &entry.1, Scenario::Small);
    Ok(())
}

/// Waits for a quiet machine, measures one step and records the row (or the failure). Breaks
/// when the run was interrupted during the measurement.
fn measure_step(
    run: &mut Run,
    env: &Env<'_>,
    target: &Target,
    pg: Option<i32>,
    step: &Step,
) -> ControlFlow<()> {
    let s = env.settings;
    let v = env.variant;
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
    match measure::measure(env, target, pg, step, gate) {
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
        Err(_) if procs::interrupted() => return ControlFlow::Break(()),
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
    ControlFlow::Continue(())
}
