//! The data model of a run's results and its files: one `Row` per measurement, the run's
//! `RunMeta` (settings, machine, targets, failures), and reading/writing them as CSV and JSON.
//!
//! Owns: the on-disk format of `rows.csv`, `rows.json` and `run.json`.
//! Must not: compute statistics (stats.rs) or render tables and charts (report.rs, charts.rs).

use std::fs;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::plan::{Scenario, Settings, Variant};

/// One measurement of one target in one scenario and repetition.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Row {
    pub variant: Variant,
    pub scenario: Scenario,
    pub target: String,
    /// Display name: the target's name, or "strait (L4 relay)" for Strait in the h2c scenario
    /// (no HTTP/2 yet; it relays TCP there). Results from before Strait's HTTP/1.1 proxy label its
    /// HTTP/1.1 rows that way too.
    pub label: String,
    pub rep: u32,
    /// Position of the target within its (rep, scenario) round.
    pub order: u32,
    /// req/s, Gbit/s (l4) or KiB per connection (idle).
    pub value: f64,
    pub unit: String,
    pub requests: Option<u64>,
    /// Socket errors, non-2xx responses, failed streams.
    pub errors: u64,
    pub duration_s: f64,
    pub p50_ms: Option<f64>,
    pub p75_ms: Option<f64>,
    pub p90_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    pub mean_ms: Option<f64>,
    pub max_ms: Option<f64>,
    /// CPU of the proxy's process group, % of one core.
    pub proxy_cpu_pct: Option<f64>,
    /// CPU of the built-in origin (or iperf3 server), % of one core.
    pub origin_cpu_pct: Option<f64>,
    /// Busy % of the proxy core set (pinned variant).
    pub proxy_cores_busy_pct: Option<f64>,
    /// Busy % of the load core set (pinned variant) or of all cores.
    pub load_cores_busy_pct: Option<f64>,
    /// CPU used by processes this run did not start, % of all cores, during the measurement.
    pub bg_pct: f64,
    /// Idle scenario: the proxy's resident memory before and with the idle connections.
    pub rss_before_kib: Option<u64>,
    pub rss_after_kib: Option<u64>,
    /// Seconds waited for a quiet machine before measuring.
    pub gate_wait_s: f64,
    /// Background load was above the limit before or during the measurement.
    pub noisy: bool,
    /// Raw tool output, relative to the results directory.
    pub raw: String,
}

/// A target, scenario or variant that could not be measured, and why.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Failure {
    pub variant: Option<Variant>,
    pub target: String,
    pub scenario: Option<Scenario>,
    pub reason: String,
}

/// How a target was run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TargetInfo {
    pub name: String,
    pub description: String,
    pub command: String,
}

/// The machine and tool versions a run came from.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Machine {
    pub cpu_model: String,
    pub cpus: usize,
    pub memory_gib: f64,
    pub kernel: String,
    pub os: String,
    pub tools: Vec<(String, String)>,
    pub strait_commit: String,
}

/// Everything about a run except its rows.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RunMeta {
    pub started_utc: String,
    pub elapsed_s: f64,
    pub interrupted: bool,
    pub settings: Settings,
    pub machine: Machine,
    pub targets: Vec<TargetInfo>,
    pub failures: Vec<Failure>,
    pub notes: Vec<String>,
}

pub fn write_rows(dir: &Path, rows: &[Row]) -> Result<(), String> {
    let csv_path = dir.join("rows.csv");
    let mut w =
        csv::Writer::from_path(&csv_path).map_err(|e| format!("{}: {e}", csv_path.display()))?;
    for r in rows {
        w.serialize(r)
            .map_err(|e| format!("{}: {e}", csv_path.display()))?;
    }
    w.flush()
        .map_err(|e| format!("{}: {e}", csv_path.display()))?;
    write_json(&dir.join("rows.json"), &rows)
}

pub fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<(), String> {
    let text = serde_json::to_string_pretty(value).map_err(|e| e.to_string())?;
    fs::write(path, text + "\n").map_err(|e| format!("{}: {e}", path.display()))
}

pub fn read_rows(dir: &Path) -> Result<Vec<Row>, String> {
    read_json(&dir.join("rows.json"))
}

pub fn read_meta(dir: &Path) -> Result<RunMeta, String> {
    read_json(&dir.join("run.json"))
}

fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<T, String> {
    let text = fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))
}

#[cfg(test)]
pub(crate) fn sample_row(target: &str, scenario: Scenario, rep: u32, value: f64) -> Row {
    Row {
        variant: Variant::Pinned,
        scenario,
        target: target.to_string(),
        label: target.to_string(),
        rep,
        order: 0,
        value,
        unit: scenario.unit().to_string(),
        requests: Some(1000),
        errors: 0,
        duration_s: 1.0,
        p50_ms: Some(0.5),
        p75_ms: Some(0.6),
        p90_ms: Some(0.7),
        p99_ms: Some(1.0),
        mean_ms: None,
        max_ms: None,
        proxy_cpu_pct: Some(99.0),
        origin_cpu_pct: Some(40.0),
        proxy_cores_busy_pct: Some(100.0),
        load_cores_busy_pct: Some(90.0),
        bg_pct: 0.5,
        rss_before_kib: None,
        rss_after_kib: None,
        gate_wait_s: 0.0,
        noisy: false,
        raw: format!("raw/{target}.txt"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_round_trip_through_json_and_csv_has_a_header() {
        let dir = std::env::temp_dir().join(format!("strait-bench-rows-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let mut r = sample_row("nginx", Scenario::K16, 1, 1234.5);
        r.p50_ms = None;
        write_rows(&dir, &[r.clone()]).unwrap();
        assert_eq!(read_rows(&dir).unwrap(), vec![r]);
        let csv = fs::read_to_string(dir.join("rows.csv")).unwrap();
        let mut lines = csv.lines();
        assert!(lines
            .next()
            .unwrap()
            .starts_with("variant,scenario,target,label,rep"));
        assert!(lines
            .next()
            .unwrap()
            .starts_with("pinned,16k,nginx,nginx,1,0,1234.5,req/s"));
        fs::remove_dir_all(&dir).unwrap();
    }
}
