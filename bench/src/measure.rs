//! One measurement: the load tool's command line for a scenario, running it bounded in time
//! with CPU accounting around it, parsing its output into a `Row`; plus the sanity check and
//! warm-up each target gets before measurements start.
//!
//! Owns: wrk/h2load/iperf3 arguments and the mapping of tool results to rows.
//! Must not: start or stop servers, or wait for a quiet machine (run.rs does both).

use std::path::Path;
use std::time::Duration;

use crate::gate::{self, Gate};
use crate::peers::{self, Target, HOST};
use crate::plan::{Scenario, Settings, Step, Variant};
use crate::rows::Row;
use crate::{client, idle, origin, parse, procs};

/// Where things run during one variant.
pub struct Env<'a> {
    pub settings: &'a Settings,
    pub variant: Variant,
    /// `taskset` CPUs for the load generator (None: unpinned).
    pub load_cpus: Option<&'a [usize]>,
    pub proxy_cpus: &'a [usize],
    pub load_threads: u32,
    /// Process groups started by this run.
    pub ours: Vec<i32>,
    pub origin_pgid: Option<i32>,
    pub iperf_pgid: Option<i32>,
    pub results: &'a Path,
}

fn url(port: u16, path: &str) -> String {
    format!("http://{HOST}:{port}{path}")
}

/// The load tool's argv for a time-based scenario (not idle).
pub fn tool_argv(s: &Settings, v: Variant, sc: Scenario, port: u16, threads: u32) -> Vec<String> {
    let secs = s.durations.of(v, sc).max(1);
    let conns = s.conns_for(sc);
    let threads = threads.clamp(1, conns.max(1));
    let mut a: Vec<String> = Vec::new();
    let mut push = |x: String| a.push(x);
    match sc {
        Scenario::H2c => {
            for x in [
                "h2load".to_string(),
                format!("-t{threads}"),
                format!("-c{conns}"),
                format!("-m{}", s.h2_streams),
                "-D".into(),
                secs.to_string(),
                "--warm-up-time=500ms".into(),
                url(port, "/small"),
            ] {
                push(x);
            }
        }
        Scenario::L4 => {
            for x in [
                "iperf3".to_string(),
                "-c".into(),
                HOST.into(),
                "-p".into(),
                port.to_string(),
                "-t".into(),
                secs.to_string(),
                "-J".into(),
            ] {
                push(x);
            }
        }
        _ => {
            for x in [
                "wrk".to_string(),
                format!("-t{threads}"),
                format!("-c{conns}"),
                format!("-d{secs}s"),
                "--timeout".into(),
                "5s".into(),
                "--latency".into(),
            ] {
                push(x);
            }
            if sc == Scenario::Close {
                push("-H".into());
                push("Connection: close".into());
            }
            push(url(port, sc.path()));
        }
    }
    a
}

fn blank_row(target: &Target, step: &Step, gate: &Gate) -> Row {
    Row {
        variant: step.variant,
        scenario: step.scenario,
        target: target.name.clone(),
        label: peers::label(target, step.scenario),
        rep: step.rep,
        order: step.order as u32,
        value: 0.0,
        unit: step.scenario.unit().to_string(),
        requests: None,
        errors: 0,
        duration_s: 0.0,
        p50_ms: None,
        p75_ms: None,
        p90_ms: None,
        p99_ms: None,
        mean_ms: None,
        max_ms: None,
        proxy_cpu_pct: None,
        origin_cpu_pct: None,
        proxy_cores_busy_pct: None,
        load_cores_busy_pct: None,
        bg_pct: gate.bg_pct,
        rss_before_kib: None,
        rss_after_kib: None,
        gate_wait_s: gate.waited_s,
        noisy: !gate.quiet,
        raw: String::new(),
    }
}

/// Runs one step against one target. `proxy_pgid` is None for `direct`.
pub fn measure(
    env: &Env,
    target: &Target,
    proxy_pgid: Option<i32>,
    step: &Step,
    gate: Gate,
) -> Result<Row, String> {
    let sc = step.scenario;
    let port = target
        .ports
        .for_scenario(sc)
        .ok_or_else(|| format!("{} has no port for {sc}", target.name))?;
    let raw_rel = format!(
        "raw/{}-{}-{}-{}.txt",
        step.variant, sc, target.name, step.rep
    );
    let raw = env.results.join(&raw_rel);
    let mut row = blank_row(target, step, &gate);
    row.raw = raw_rel;

    let a = gate::snap(&env.ours);
    let result = if sc == Scenario::Idle {
        let pg = proxy_pgid.ok_or("idle needs a proxy process")?;
        let deadline = Duration::from_secs(30 + u64::from(env.settings.idle_conns) / 500);
        let r = idle::measure(port, env.settings.idle_conns, pg, deadline);
        if let Ok(i) = &r {
            let text = format!(
                "idle connections: {}\nopened in: {:.2}s\nproxy RSS before: {} KiB\nproxy RSS after: {} KiB\nper connection: {:.3} KiB\n",
                i.conns, i.open_s, i.rss_before_kib, i.rss_after_kib, i.per_conn_kib
            );
            let _ = std::fs::write(&raw, text);
        }
        r.map(|i| {
            row.value = i.per_conn_kib;
            row.rss_before_kib = Some(i.rss_before_kib);
            row.rss_after_kib = Some(i.rss_after_kib);
            row.duration_s = i.open_s;
            row.requests = Some(u64::from(i.conns));
        })
    } else {
        let argv = tool_argv(env.settings, step.variant, sc, port, env.load_threads);
        let secs = u64::from(env.settings.durations.of(step.variant, sc).max(1));
        let out = procs::run_bounded(&argv, env.load_cpus, Duration::from_secs(secs + 20), &raw)?;
        let failed = |e: parse::ParseError| {
            format!(
                "{e} ({}; {})",
                out.status,
                out.stderr.lines().next().unwrap_or("").trim()
            )
        };
        match sc {
            Scenario::H2c => parse::h2load(&out.stdout).map_err(failed).map(|h| {
                row.value = h.rps;
                row.requests = Some(h.succeeded);
                row.errors = h.errors();
                row.duration_s = h.duration_s;
                row.mean_ms = h.mean_ms;
                row.max_ms = h.max_ms;
            }),
            Scenario::L4 => parse::iperf3(&out.stdout).map_err(failed).map(|r| {
                row.value = r.gbit_per_s;
                row.duration_s = r.duration_s;
            }),
            _ => parse::wrk(&out.stdout).map_err(failed).map(|w| {
                row.value = w.rps;
                row.requests = Some(w.requests);
                row.errors = w.errors();
                row.duration_s = w.duration_s;
                row.p50_ms = w.latency.p50_ms;
                row.p75_ms = w.latency.p75_ms;
                row.p90_ms = w.latency.p90_ms;
                row.p99_ms = w.latency.p99_ms;
                row.mean_ms = w.mean_ms;
                row.max_ms = w.max_ms;
            }),
        }
    };
    let b = gate::snap(&env.ours);
    result?;
    let u = gate::usage(&a, &b);
    row.bg_pct = row.bg_pct.max(u.foreign_pct);
    row.noisy = row.noisy || u.foreign_pct > env.settings.quiet_max_pct;
    row.proxy_cpu_pct = proxy_pgid.and_then(|pg| u.group_pct(pg));
    let server = if sc == Scenario::L4 {
        env.iperf_pgid
    } else {
        env.origin_pgid
    };
    row.origin_cpu_pct = server.and_then(|pg| u.group_pct(pg));
    match (step.variant, env.load_cpus) {
        (Variant::Pinned, Some(load)) => {
            row.proxy_cores_busy_pct = u.cores_busy_pct(env.proxy_cpus);
            row.load_cores_busy_pct = u.cores_busy_pct(load);
        }
        _ => {
            row.load_cores_busy_pct = u.cores_busy_pct(&env.settings.cores_all);
        }
    }
    Ok(row)
}

/// Checks that a target answers a scenario correctly before it is measured.
pub fn check(env: &Env, target: &Target, sc: Scenario) -> Result<(), String> {
    let port = target
        .ports
        .for_scenario(sc)
        .ok_or_else(|| format!("no listener for {sc}"))?;
    match sc {
        Scenario::L4 => client::connect(port, Duration::from_secs(3)).map(drop),
        Scenario::H2c => {
            let argv: Vec<String> = ["h2load", "-n8", "-c1", "-m4"]
                .iter()
                .map(|s| s.to_string())
                .chain([url(port, "/small")])
                .collect();
            let out = env
                .results
                .join(format!("raw/check-{}-h2c.txt", target.name));
            let o = procs::run_bounded(&argv, env.load_cpus, Duration::from_secs(10), &out)?;
            let h = parse::h2load(&o.stdout).map_err(|e| e.to_string())?;
            if h.succeeded == 8 && h.status_2xx == 8 {
                Ok(())
            } else {
                Err(format!(
                    "h2c check: {} of 8 requests succeeded with 2xx ({} 2xx)",
                    h.succeeded, h.status_2xx
                ))
            }
        }
        _ => {
            let path = sc.path();
            let want = origin::body_len(path).ok_or("no body for path")?;
            let mut s = client::connect(port, Duration::from_secs(3))?;
            let r = client::get(&mut s, path, sc == Scenario::Close)?;
            if r.status == 200 && r.body_len == want {
                Ok(())
            } else {
                Err(format!(
                    "GET {path}: status {} with {} body bytes, expected 200 with {want}",
                    r.status, r.body_len
                ))
            }
        }
    }
}

/// Short unrecorded load so every target starts warm (and proxies fill their upstream pools).
pub fn warm_up(env: &Env, target: &Target, h2c: bool) {
    let threads = env.load_threads.max(1).to_string();
    if let Some(p) = target.ports.h1 {
        let argv: Vec<String> = vec![
            "wrk".into(),
            format!("-t{threads}"),
            format!("-c{}", env.settings.conns.max(1)),
            "-d1s".into(),
            url(p, "/small"),
        ];
        let out = env
            .results
            .join(format!("raw/warmup-{}-{}.txt", env.variant, target.name));
        let _ = procs::run_bounded(&argv, env.load_cpus, Duration::from_secs(15), &out);
    }
    if let (true, Some(p)) = (h2c, target.ports.h2c) {
        let argv: Vec<String> = vec![
            "h2load".into(),
            format!("-c{}", env.settings.h2_conns.max(1)),
            format!("-m{}", env.settings.h2_streams.max(1)),
            "-n20000".into(),
            url(p, "/small"),
        ];
        let out = env.results.join(format!(
            "raw/warmup-{}-{}-h2c.txt",
            env.variant, target.name
        ));
        let _ = procs::run_bounded(&argv, env.load_cpus, Duration::from_secs(15), &out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::Settings;
    use std::path::PathBuf;

    /// The shared test settings, narrowed to what the command-line builders read.
    fn settings() -> Settings {
        Settings {
            targets: vec!["direct".into()],
            scenarios: Scenario::ALL.to_vec(),
            reps: 1,
            idle_conns: 10,
            quiet_wait_s: 0.0,
            gate_budget_s: 0.0,
            results: PathBuf::new(),
            strait_bin: PathBuf::new(),
            ..crate::plan::tests_support::settings()
        }
    }

    #[test]
    fn tool_command_lines() {
        let s = settings();
        let j = |v: Vec<String>| v.join(" ");
        assert_eq!(
            j(tool_argv(&s, Variant::Pinned, Scenario::Small, 9, 1)),
            "wrk -t1 -c64 -d2s --timeout 5s --latency http://127.0.0.1:9/small"
        );
        assert_eq!(
            j(tool_argv(&s, Variant::Pinned, Scenario::M1, 9, 2)),
            "wrk -t2 -c16 -d1s --timeout 5s --latency http://127.0.0.1:9/1m"
        );
        assert_eq!(
            tool_argv(&s, Variant::Pinned, Scenario::Close, 9, 1)[7..],
            ["-H", "Connection: close", "http://127.0.0.1:9/small"]
        );
        assert_eq!(
            j(tool_argv(&s, Variant::Pinned, Scenario::H2c, 9, 1)),
            "h2load -t1 -c16 -m32 -D 1 --warm-up-time=500ms http://127.0.0.1:9/small"
        );
        assert_eq!(
            j(tool_argv(&s, Variant::AllCores, Scenario::L4, 9, 2)),
            "iperf3 -c 127.0.0.1 -p 9 -t 2 -J"
        );
    }
}
