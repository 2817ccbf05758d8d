//! What a run measures and in which order: scenarios, variants, durations per mode, the
//! interleaved schedule of measurements and its time estimate.
//!
//! Owns: the scenario/variant vocabulary, `Settings` (every knob of a run, already validated),
//! the interleaving order (targets rotated by one each repetition) and the ETA.
//! Must not: start processes, touch the network or read the clock (pure, unit-tested).

use std::fmt;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// One workload. The names are the command-line spelling.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Scenario {
    /// HTTP/1.1 keep-alive, 13-byte body.
    #[serde(rename = "small")]
    Small,
    /// HTTP/1.1 keep-alive, 16 KiB body.
    #[serde(rename = "16k")]
    K16,
    /// HTTP/1.1 keep-alive, 1 MiB body.
    #[serde(rename = "1m")]
    M1,
    /// HTTP/1.1 with `Connection: close`: one new TCP connection per request.
    #[serde(rename = "close")]
    Close,
    /// h2c (prior knowledge) multiplexed, 13-byte body.
    #[serde(rename = "h2c")]
    H2c,
    /// One TCP stream (iperf3) through an L4 listener.
    #[serde(rename = "l4")]
    L4,
    /// Many idle keep-alive connections: proxy memory per connection.
    #[serde(rename = "idle")]
    Idle,
}

impl Scenario {
    pub const ALL: [Scenario; 7] = [
        Scenario::Small,
        Scenario::K16,
        Scenario::M1,
        Scenario::Close,
        Scenario::H2c,
        Scenario::L4,
        Scenario::Idle,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Scenario::Small => "small",
            Scenario::K16 => "16k",
            Scenario::M1 => "1m",
            Scenario::Close => "close",
            Scenario::H2c => "h2c",
            Scenario::L4 => "l4",
            Scenario::Idle => "idle",
        }
    }

    /// The long label used in tables and charts.
    pub fn title(self) -> &'static str {
        match self {
            Scenario::Small => "h1 keep-alive 13 B",
            Scenario::K16 => "h1 keep-alive 16 KiB",
            Scenario::M1 => "h1 keep-alive 1 MiB",
            Scenario::Close => "h1 new connection per request",
            Scenario::H2c => "h2c multiplexed 13 B",
            Scenario::L4 => "L4 TCP stream",
            Scenario::Idle => "idle keep-alive connections",
        }
    }

    pub fn unit(self) -> &'static str {
        match self {
            Scenario::L4 => "Gbit/s",
            Scenario::Idle => "KiB/conn",
            _ => "req/s",
        }
    }

    /// Path on the origin for the HTTP scenarios.
    pub fn path(self) -> &'static str {
        match self {
            Scenario::K16 => "/16k",
            Scenario::M1 => "/1m",
            _ => "/small",
        }
    }

    /// Scenarios driven by wrk over HTTP/1.1.
    pub fn is_wrk(self) -> bool {
        matches!(
            self,
            Scenario::Small | Scenario::K16 | Scenario::M1 | Scenario::Close
        )
    }

    pub fn parse(s: &str) -> Result<Scenario, String> {
        Scenario::ALL
            .into_iter()
            .find(|sc| sc.name() == s)
            .ok_or_else(|| {
                format!(
                    "unknown scenario {s:?}; valid: {}",
                    Scenario::ALL.map(Scenario::name).join(", ")
                )
            })
    }
}

impl fmt::Display for Scenario {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Where the proxy and the load run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Variant {
    /// Proxy pinned to `--cores-proxy` (default one core) with one worker per core; load
    /// generator, origin and iperf3 server pinned to `--cores-load`.
    #[serde(rename = "pinned")]
    Pinned,
    /// Nothing pinned: proxies get one worker per CPU of the machine, everything shares them.
    #[serde(rename = "all-cores")]
    AllCores,
}

impl Variant {
    pub const ALL: [Variant; 2] = [Variant::Pinned, Variant::AllCores];

    pub fn name(self) -> &'static str {
        match self {
            Variant::Pinned => "pinned",
            Variant::AllCores => "all-cores",
        }
    }

    pub fn parse(s: &str) -> Result<Variant, String> {
        Variant::ALL
            .into_iter()
            .find(|v| v.name() == s)
            .ok_or_else(|| format!("unknown variant {s:?}; valid: pinned, all-cores"))
    }
}

impl fmt::Display for Variant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Measurement length per scenario, in whole seconds (wrk takes whole seconds only).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Durations {
    pub small: u32,
    pub k16: u32,
    pub m1: u32,
    pub close: u32,
    pub h2c: u32,
    pub l4: u32,
    /// Length of every measurement in the all-cores variant.
    pub all_cores: u32,
}

impl Durations {
    pub fn quick() -> Durations {
        Durations {
            small: 2,
            k16: 1,
            m1: 1,
            close: 1,
            h2c: 1,
            l4: 1,
            all_cores: 2,
        }
    }

    pub fn full() -> Durations {
        Durations {
            small: 8,
            k16: 8,
            m1: 5,
            close: 4,
            h2c: 5,
            l4: 3,
            all_cores: 4,
        }
    }

    /// Every scenario `secs` long (`--duration`).
    pub fn uniform(secs: u32) -> Durations {
        Durations {
            small: secs,
            k16: secs,
            m1: secs,
            close: secs,
            h2c: secs,
            l4: secs,
            all_cores: secs,
        }
    }

    /// Seconds of load for one measurement (0 for idle, which is not time-based).
    pub fn of(&self, variant: Variant, scenario: Scenario) -> u32 {
        if scenario == Scenario::Idle {
            return 0;
        }
        if variant == Variant::AllCores {
            return self.all_cores;
        }
        match scenario {
            Scenario::Small => self.small,
            Scenario::K16 => self.k16,
            Scenario::M1 => self.m1,
            Scenario::Close => self.close,
            Scenario::H2c => self.h2c,
            Scenario::L4 => self.l4,
            Scenario::Idle => 0,
        }
    }
}

/// Every knob of one run, validated by cli.rs.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Settings {
    pub quick: bool,
    /// Target names in the order given (`direct`, `strait`, `nginx`, `haproxy`, extras).
    pub targets: Vec<String>,
    pub scenarios: Vec<Scenario>,
    pub variants: Vec<Variant>,
    pub all_cores_scenarios: Vec<Scenario>,
    pub reps: u32,
    pub durations: Durations,
    /// wrk connections (keep-alive and close scenarios).
    pub conns: u32,
    /// wrk connections for the 1 MiB scenario.
    pub big_conns: u32,
    pub h2_conns: u32,
    pub h2_streams: u32,
    pub idle_conns: u32,
    pub cores_proxy: Vec<usize>,
    pub cores_load: Vec<usize>,
    /// Every CPU the run may use (the all-cores variant's set).
    pub cores_all: Vec<usize>,
    pub quiet_max_pct: f64,
    pub quiet_wait_s: f64,
    pub gate_budget_s: f64,
    pub gate_sample_s: f64,
    pub port_base: u16,
    pub results: PathBuf,
    pub strait_bin: PathBuf,
    pub strait_flags: Vec<String>,
    pub install: bool,
}

impl Settings {
    /// Scenarios measured in one variant, in the canonical order.
    pub fn scenarios_for(&self, variant: Variant) -> Vec<Scenario> {
        match variant {
            Variant::Pinned => self.scenarios.clone(),
            Variant::AllCores => self
                .scenarios
                .iter()
                .copied()
                .filter(|s| self.all_cores_scenarios.contains(s))
                .collect(),
        }
    }

    /// wrk/h2load connection count for a scenario.
    pub fn conns_for(&self, scenario: Scenario) -> u32 {
        match scenario {
            Scenario::M1 => self.big_conns,
            Scenario::H2c => self.h2_conns,
            _ => self.conns,
        }
    }
}

/// One measurement in the schedule.
#[derive(Clone, Debug, PartialEq)]
pub struct Step {
    pub variant: Variant,
    /// 1-based repetition.
    pub rep: u32,
    pub scenario: Scenario,
    /// Index into `Settings::targets`.
    pub target: usize,
    /// Position of this target within its (rep, scenario) round, 0-based.
    pub order: usize,
}

/// The order of `n` targets in repetition `rep` (1-based): rotated left by `rep - 1`, so each
/// target leads once every `n` repetitions (A B C, B C A, C A B, ...).
pub fn rotation(n: usize, rep: u32) -> Vec<usize> {
    if n == 0 {
        return Vec::new();
    }
    let shift = (rep.saturating_sub(1) as usize) % n;
    (0..n).map(|i| (i + shift) % n).collect()
}

/// The full schedule of one variant: for each repetition, for each scenario, every target in the
/// rotated order. `applies(target, scenario)` filters out combinations that cannot run.
pub fn schedule(
    settings: &Settings,
    variant: Variant,
    applies: &dyn Fn(usize, Scenario) -> bool,
) -> Vec<Step> {
    let n = settings.targets.len();
    let mut steps = Vec::new();
    for rep in 1..=settings.reps {
        for scenario in settings.scenarios_for(variant) {
            let mut order = 0;
            for target in rotation(n, rep) {
                if applies(target, scenario) {
                    steps.push(Step {
                        variant,
                        rep,
                        scenario,
                        target,
                        order,
                    });
                    order += 1;
                }
            }
        }
    }
    steps
}

/// Estimated seconds for one step: load time plus the fixed costs around it (quiet gate, tool
/// start, h2load warm-up, idle connection set-up and settling).
pub fn estimate_step(settings: &Settings, step: &Step) -> f64 {
    let base = f64::from(settings.durations.of(step.variant, step.scenario));
    let overhead = settings.gate_sample_s + 0.5;
    let extra = match step.scenario {
        Scenario::H2c => 0.6,
        Scenario::Close => 0.5,
        Scenario::L4 => 0.3,
        Scenario::Idle => 1.5 + f64::from(settings.idle_conns) / 4000.0,
        _ => 0.1,
    };
    base + overhead + extra
}

/// Estimated seconds for a variant's start-up: origin and proxies, checks, warm-up.
pub fn estimate_setup(targets: usize) -> f64 {
    3.0 + 2.5 * targets as f64
}

#[cfg(test)]
pub mod tests_support {
    use super::*;

    pub fn settings() -> Settings {
        Settings {
            quick: true,
            targets: vec!["direct".into(), "strait".into(), "nginx".into()],
            scenarios: vec![Scenario::Small, Scenario::Idle],
            variants: vec![Variant::Pinned],
            all_cores_scenarios: vec![Scenario::Small],
            reps: 3,
            durations: Durations::quick(),
            conns: 64,
            big_conns: 16,
            h2_conns: 16,
            h2_streams: 32,
            idle_conns: 1000,
            cores_proxy: vec![1],
            cores_load: vec![0],
            cores_all: vec![0, 1],
            quiet_max_pct: 10.0,
            quiet_wait_s: 10.0,
            gate_budget_s: 30.0,
            gate_sample_s: 0.3,
            port_base: 18100,
            results: PathBuf::from("/tmp/x"),
            strait_bin: PathBuf::from("strait"),
            strait_flags: Vec::new(),
            install: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::tests_support::settings;
    use super::*;

    #[test]
    fn rotation_lets_each_target_lead_once() {
        assert_eq!(rotation(3, 1), vec![0, 1, 2]);
        assert_eq!(rotation(3, 2), vec![1, 2, 0]);
        assert_eq!(rotation(3, 3), vec![2, 0, 1]);
        assert_eq!(rotation(3, 4), vec![0, 1, 2]);
        assert_eq!(rotation(1, 7), vec![0]);
        assert!(rotation(0, 1).is_empty());
        // Over n reps every target occupies every position exactly once.
        for pos in 0..4 {
            let mut seen: Vec<usize> = (1..=4).map(|r| rotation(4, r)[pos]).collect();
            seen.sort();
            assert_eq!(seen, vec![0, 1, 2, 3]);
        }
    }

    #[test]
    fn schedule_interleaves_targets_within_each_scenario() {
        let s = settings();
        // direct (0) cannot run idle.
        let steps = schedule(&s, Variant::Pinned, &|t, sc| {
            !(t == 0 && sc == Scenario::Idle)
        });
        let names: Vec<String> = steps
            .iter()
            .map(|st| format!("{}{}{}", st.rep, st.scenario, st.target))
            .collect();
        assert_eq!(
            names,
            vec![
                "1small0", "1small1", "1small2", "1idle1", "1idle2", //
                "2small1", "2small2", "2small0", "2idle1", "2idle2", //
                "3small2", "3small0", "3small1", "3idle2", "3idle1",
            ]
        );
        assert_eq!(steps[3].order, 0);
        assert_eq!(steps[4].order, 1);
    }

    #[test]
    fn all_cores_variant_runs_only_its_scenarios() {
        let s = settings();
        assert_eq!(s.scenarios_for(Variant::AllCores), vec![Scenario::Small]);
        assert_eq!(s.scenarios_for(Variant::Pinned).len(), 2);
        assert_eq!(s.durations.of(Variant::AllCores, Scenario::Small), 2);
        assert_eq!(s.durations.of(Variant::Pinned, Scenario::Idle), 0);
    }

    #[test]
    fn names_round_trip() {
        for sc in Scenario::ALL {
            assert_eq!(Scenario::parse(sc.name()).unwrap(), sc);
            let json = serde_json::to_string(&sc).unwrap();
            assert_eq!(json, format!("\"{}\"", sc.name()));
        }
        for v in Variant::ALL {
            assert_eq!(Variant::parse(v.name()).unwrap(), v);
        }
        assert!(Scenario::parse("tls").is_err());
        assert!(Variant::parse("x").is_err());
    }

    #[test]
    fn quick_plan_fits_about_three_minutes() {
        let mut s = settings();
        s.targets = vec!["direct", "strait", "nginx", "haproxy"]
            .into_iter()
            .map(String::from)
            .collect();
        s.scenarios = Scenario::ALL.to_vec();
        let steps = schedule(&s, Variant::Pinned, &|t, sc| {
            !(t == 0 && sc == Scenario::Idle)
        });
        let total: f64 =
            steps.iter().map(|st| estimate_step(&s, st)).sum::<f64>() + estimate_setup(4);
        assert!((120.0..=240.0).contains(&total), "quick estimate {total}");
    }
}
