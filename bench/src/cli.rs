//! The command line: `run`, `report`, `publish` and `origin`, their flags and help, and turning
//! `run`'s flags into validated `Settings` plus the list of targets.
//!
//! Owns: flag names, defaults per mode (quick/full) and every validation message.
//! Must not: start anything (run.rs does).

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::cores;
use crate::machine;
use crate::peers::{self, Target};
use crate::plan::{Durations, Scenario, Settings, Variant};

const EXAMPLES: &str = "\
Examples:
  scripts/bench.sh --quick                        # ≈3 min: every target and scenario, pinned
  scripts/bench.sh                                # ≈12 min: full length, pinned + all-cores
  strait-bench run --quick --targets direct,strait --scenarios small,l4
  strait-bench run --reps 5 --cores-proxy 1 --cores-load 0 --results /tmp/bench
  strait-bench run --quick --strait-flag=--io-driver=epoll
  strait-bench run --quick --extra-target 'envoy,h1=19501,cmd=exec envoy -c /etc/envoy.yaml'
  strait-bench run --plan                         # print the schedule and its duration only
  strait-bench report results/bench-20260501T120000Z
  strait-bench publish results/bench-20260501T120000Z   # into docs/performance.md + docs/perf/

The last line of `run`'s stdout is the results directory (rows.csv, rows.json, run.json,
summary.json, table.md, *.svg, raw/ tool outputs, logs/ configs and server logs).";

#[derive(Parser, Debug)]
#[command(
    name = "strait-bench",
    version,
    about = "Benchmarks Strait beside NGINX and HAProxy (wrk, h2load, iperf3) on loopback",
    long_about = "Benchmarks Strait beside NGINX and HAProxy on 127.0.0.1: installs missing tools \
                  (Debian packages), starts a built-in origin and the proxies pinned with taskset, \
                  runs the scenarios with targets interleaved over several repetitions, and writes \
                  a results directory with raw rows, a markdown table and SVG charts.",
    after_help = EXAMPLES
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the benchmark and write a results directory.
    Run(Box<RunArgs>),
    /// Re-render table.md, summary.json and the charts of a results directory from rows.json.
    Report {
        /// A results directory written by `run`.
        dir: PathBuf,
    },
    /// Put a results directory's report and charts into docs/performance.md.
    Publish {
        /// A results directory written by `run`.
        dir: PathBuf,
        /// The document with the `<!-- results:bench -->` marker line.
        #[arg(long, default_value = "docs/performance.md")]
        doc: PathBuf,
        /// Where the charts are copied (the doc links them relative to itself as perf/...).
        #[arg(long, default_value = "docs/perf")]
        charts_dir: PathBuf,
    },
    /// Run the built-in origin (HTTP/1.1 + h2c) until killed; `run` starts it by itself.
    Origin {
        /// HTTP/1.1 listen address (loopback only).
        #[arg(long, default_value = "127.0.0.1:18101")]
        h1: SocketAddr,
        /// h2c (prior knowledge) listen address (loopback only).
        #[arg(long, default_value = "127.0.0.1:18102")]
        h2c: SocketAddr,
        /// Threads, each with its own SO_REUSEPORT listeners.
        #[arg(long, default_value_t = 1)]
        threads: usize,
    },
}

#[derive(Args, Debug)]
pub struct RunArgs {
    /// ≈3 minutes: pinned variant only, 1–2 s per measurement, 2000 idle connections.
    #[arg(long)]
    pub quick: bool,
    /// Targets, in order: direct (no proxy), strait, nginx, haproxy, and extra-target names.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "direct,strait,nginx,haproxy"
    )]
    pub targets: Vec<String>,
    /// Scenarios: small, 16k, 1m (HTTP/1.1 keep-alive), close (new connection per request),
    /// h2c, l4 (iperf3 TCP stream), idle (memory per idle connection).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "small,16k,1m,close,h2c,l4,idle"
    )]
    pub scenarios: Vec<String>,
    /// Variants: pinned (proxy on --cores-proxy, load on --cores-load) and all-cores (nothing
    /// pinned). Default: pinned with --quick, both otherwise.
    #[arg(long, value_delimiter = ',')]
    pub variants: Option<Vec<String>>,
    /// Scenarios measured in the all-cores variant.
    #[arg(long, value_delimiter = ',', default_value = "small,h2c,l4")]
    pub all_cores_scenarios: Vec<String>,
    /// Repetitions of every measurement (targets rotate their order each repetition).
    #[arg(long, default_value_t = 3)]
    pub reps: u32,
    /// Seconds per measurement for every scenario (overrides the quick/full lengths).
    #[arg(long, value_name = "SECS")]
    pub duration: Option<u32>,
    /// CPUs for the proxy in the pinned variant (default: the last CPU).
    #[arg(long, value_name = "LIST")]
    pub cores_proxy: Option<String>,
    /// CPUs for the load generator and origin in the pinned variant (default: the other CPUs).
    #[arg(long, value_name = "LIST")]
    pub cores_load: Option<String>,
    /// wrk connections for small, 16k and close.
    #[arg(long, default_value_t = 64)]
    pub conns: u32,
    /// wrk connections for 1m.
    #[arg(long, default_value_t = 16)]
    pub big_conns: u32,
    /// h2load connections.
    #[arg(long, default_value_t = 16)]
    pub h2_conns: u32,
    /// h2load concurrent streams per connection.
    #[arg(long, default_value_t = 32)]
    pub h2_streams: u32,
    /// Idle connections opened in the idle scenario (default: 2000 quick, 8000 full; capped by
    /// the open-files limit).
    #[arg(long, value_name = "N")]
    pub idle_conns: Option<u32>,
    /// Results directory (default: results/bench-<UTC timestamp>); must not exist or be empty.
    #[arg(long, value_name = "DIR")]
    pub results: Option<PathBuf>,
    /// The strait binary (default: `strait` next to this binary, i.e. target/release/strait).
    #[arg(long, value_name = "PATH", overrides_with = "strait_bin")]
    pub strait_bin: Option<PathBuf>,
    /// An extra flag for `strait run` (repeatable), e.g. --strait-flag=--relay=splice.
    #[arg(long = "strait-flag", value_name = "FLAG", allow_hyphen_values = true)]
    pub strait_flags: Vec<String>,
    /// Another proxy: 'NAME,h1=PORT[,h2c=PORT][,l4=PORT],cmd=COMMAND'. COMMAND runs under bash
    /// with ORIGIN_H1, ORIGIN_H2C, ORIGIN_L4, H1_ADDR, H2C_ADDR, L4_ADDR, WORKERS, CORES and
    /// RUN_DIR set; it must listen on 127.0.0.1 and exit on SIGTERM. Repeatable.
    #[arg(long = "extra-target", value_name = "SPEC")]
    pub extra_targets: Vec<String>,
    /// First of the loopback ports used (origin base+1..3, strait +11..13, nginx +21..23,
    /// haproxy +31..33). Keep them below the ephemeral range (32768 and up on Linux), where
    /// client sockets may hold them.
    #[arg(long, default_value_t = 18100)]
    pub port_base: u16,
    /// Most CPU (% of all CPUs) that other processes may use before a measurement starts.
    #[arg(long, value_name = "PCT", default_value_t = 10.0)]
    pub quiet_max: f64,
    /// Longest wait for a quiet machine per measurement (default: 10 s quick, 30 s full).
    #[arg(long, value_name = "SECS")]
    pub quiet_wait: Option<f64>,
    /// Longest total wait for a quiet machine over the run (default: 30 s quick, 120 s full).
    #[arg(long, value_name = "SECS")]
    pub gate_budget: Option<f64>,
    /// Do not apt-get install missing tools; skip what needs them.
    #[arg(long)]
    pub no_install: bool,
    /// Print the schedule and its estimated duration, then exit without running anything.
    #[arg(long)]
    pub plan: bool,
}

fn list<T>(items: &[String], parse: fn(&str) -> Result<T, String>) -> Result<Vec<T>, String>
where
    T: PartialEq,
{
    let mut out = Vec::new();
    for i in items.iter().map(|s| s.trim()).filter(|s| !s.is_empty()) {
        let v = parse(i)?;
        if !out.contains(&v) {
            out.push(v);
        }
    }
    if out.is_empty() {
        return Err("empty list".into());
    }
    Ok(out)
}

fn canonical(mut s: Vec<Scenario>) -> Vec<Scenario> {
    s.sort();
    s
}

/// The validated settings and targets of `run`.
pub fn settings(a: &RunArgs) -> Result<(Settings, Vec<Target>), String> {
    let scenarios =
        canonical(list(&a.scenarios, Scenario::parse).map_err(|e| format!("--scenarios: {e}"))?);
    let all_cores_scenarios = canonical(
        list(&a.all_cores_scenarios, Scenario::parse)
            .map_err(|e| format!("--all-cores-scenarios: {e}"))?,
    );
    let variants = match &a.variants {
        Some(v) => list(v, Variant::parse).map_err(|e| format!("--variants: {e}"))?,
        None if a.quick => vec![Variant::Pinned],
        None => vec![Variant::Pinned, Variant::AllCores],
    };
    if !(1..=50).contains(&a.reps) {
        return Err("--reps must be 1 to 50".into());
    }
    let durations = match a.duration {
        Some(d) if (1..=600).contains(&d) => Durations::uniform(d),
        Some(_) => return Err("--duration must be 1 to 600 seconds".into()),
        None if a.quick => Durations::quick(),
        None => Durations::full(),
    };
    for (name, v) in [
        ("--conns", a.conns),
        ("--big-conns", a.big_conns),
        ("--h2-conns", a.h2_conns),
        ("--h2-streams", a.h2_streams),
    ] {
        if !(1..=10_000).contains(&v) {
            return Err(format!("{name} must be 1 to 10000"));
        }
    }
    let idle_conns = a.idle_conns.unwrap_or(if a.quick { 2000 } else { 8000 });
    if !(1..=50_000).contains(&idle_conns) {
        return Err("--idle-conns must be 1 to 50000".into());
    }
    if a.port_base > 65_000 {
        return Err("--port-base must be at most 65000".into());
    }
    if !(0.0..=100.0).contains(&a.quiet_max) {
        return Err("--quiet-max must be 0 to 100".into());
    }
    let quiet_wait_s = a.quiet_wait.unwrap_or(if a.quick { 10.0 } else { 30.0 });
    let gate_budget_s = a.gate_budget.unwrap_or(if a.quick { 30.0 } else { 120.0 });
    if !(0.0..=3600.0).contains(&quiet_wait_s) || !(0.0..=36_000.0).contains(&gate_budget_s) {
        return Err("--quiet-wait / --gate-budget out of range".into());
    }

    let allowed = cores::allowed();
    let (dp, dl) = cores::default_split(&allowed);
    let pick =
        |flag: &str, v: &Option<String>, default: Vec<usize>| -> Result<Vec<usize>, String> {
            let set = match v {
                Some(s) => cores::parse(s).map_err(|e| format!("{flag}: {e}"))?,
                None => default,
            };
            match set.iter().find(|c| !allowed.contains(c)) {
                Some(c) => Err(format!(
                    "{flag}: CPU {c} is not available (allowed: {})",
                    cores::format(&allowed)
                )),
                None => Ok(set),
            }
        };
    let cores_proxy = pick("--cores-proxy", &a.cores_proxy, dp)?;
    let cores_load = pick("--cores-load", &a.cores_load, dl)?;

    let mut extras = Vec::new();
    for spec in &a.extra_targets {
        extras.push(peers::parse_extra(spec)?);
    }
    let mut names: Vec<String> = Vec::new();
    for t in a.targets.iter().map(|s| s.trim()).filter(|s| !s.is_empty()) {
        if !names.iter().any(|n| n == t) {
            names.push(t.to_string());
        }
    }
    for e in &extras {
        if !names.contains(&e.name) {
            names.push(e.name.clone());
        }
    }
    let mut targets = Vec::new();
    for n in &names {
        match peers::builtin(n, a.port_base) {
            Some(t) => targets.push(t),
            None => match extras.iter().find(|e| &e.name == n) {
                Some(e) => targets.push(e.clone()),
                None => {
                    return Err(format!(
                    "--targets: unknown target {n:?}; built-in: {} (others need --extra-target)",
                    peers::BUILTIN.join(", ")
                ))
                }
            },
        }
    }
    if targets.is_empty() {
        return Err("--targets: empty list".into());
    }

    let strait_bin = match &a.strait_bin {
        Some(p) => p.clone(),
        None => std::env::current_exe()
            .ok()
            .and_then(|e| e.parent().map(|d| d.join("strait")))
            .unwrap_or_else(|| PathBuf::from("strait")),
    };
    if names.iter().any(|n| n == "strait") && !strait_bin.is_file() {
        return Err(format!(
            "strait binary {} not found: build it (cargo build --release -p strait) or pass --strait-bin",
            strait_bin.display()
        ));
    }
    let results = a.results.clone().unwrap_or_else(|| {
        PathBuf::from(format!(
            "results/bench-{}",
            machine::utc(machine::now_secs()).0
        ))
    });
    let settings = Settings {
        quick: a.quick,
        targets: names,
        scenarios,
        variants,
        all_cores_scenarios,
        reps: a.reps,
        durations,
        conns: a.conns,
        big_conns: a.big_conns,
        h2_conns: a.h2_conns,
        h2_streams: a.h2_streams,
        idle_conns,
        cores_proxy,
        cores_load,
        cores_all: allowed,
        quiet_max_pct: a.quiet_max,
        quiet_wait_s,
        gate_budget_s,
        gate_sample_s: 0.3,
        port_base: a.port_base,
        results,
        strait_bin,
        strait_flags: a.strait_flags.clone(),
        install: !a.no_install,
    };
    Ok((settings, targets))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    fn parse(args: &[&str]) -> Result<(Settings, Vec<Target>), String> {
        let mut argv = vec!["strait-bench", "run", "--strait-bin", "/bin/sh"];
        argv.extend_from_slice(args);
        let cli = Cli::try_parse_from(argv).map_err(|e| e.to_string())?;
        match cli.command {
            Command::Run(a) => settings(&a),
            _ => Err("not run".into()),
        }
    }

    #[test]
    fn cli_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn quick_and_full_defaults() {
        let (q, t) = parse(&["--quick"]).unwrap();
        assert_eq!(q.variants, vec![Variant::Pinned]);
        assert_eq!(q.durations, Durations::quick());
        assert_eq!(q.idle_conns, 2000);
        assert_eq!(t.len(), 4);
        assert_eq!(q.scenarios.len(), 7);
        let (f, _) = parse(&[]).unwrap();
        assert_eq!(f.variants, vec![Variant::Pinned, Variant::AllCores]);
        assert_eq!(f.durations, Durations::full());
        assert!(f.install);
    }

    #[test]
    fn selections_and_errors() {
        let (s, t) = parse(&[
            "--targets",
            "nginx,direct,nginx",
            "--scenarios",
            "l4,small",
            "--duration",
            "1",
            "--no-install",
            "--strait-flag=--relay=splice",
        ])
        .unwrap();
        assert_eq!(s.targets, ["nginx", "direct"]);
        assert_eq!(t[1].name, "direct");
        assert_eq!(s.scenarios, [Scenario::Small, Scenario::L4]);
        assert_eq!(s.durations, Durations::uniform(1));
        assert!(!s.install);
        assert_eq!(s.strait_flags, ["--relay=splice"]);
        let (s, t) = parse(&["--extra-target", "x1,h1=19999,cmd=exec true"]).unwrap();
        assert_eq!(s.targets.last().unwrap(), "x1");
        assert_eq!(t.len(), 5);
        for bad in [
            &["--targets", "envoy"][..],
            &["--scenarios", "tls"],
            &["--reps", "0"],
            &["--duration", "0"],
            &["--cores-proxy", "4000"],
            &["--variants", "numa"],
            &["--quiet-max", "120"],
            &["--port-base", "65500"],
        ] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
    }
}
