//! Facts about the machine and the tools for the results' header: CPU model and count, memory,
//! kernel, OS, tool versions, Strait's git commit, and UTC timestamps.
//!
//! Owns: gathering those facts (each best-effort: an unknown fact is reported as "unknown").
//! Must not: fail a run because a fact is unavailable.

use std::process::{Command, Stdio};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::rows::Machine;

fn read(path: &str) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// First line of a command's stdout+stderr, or "unknown".
fn version(program: &str, args: &[&str], pick: impl Fn(&str) -> String) -> String {
    let out = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output();
    match out {
        Ok(o) => {
            let text = format!(
                "{}{}",
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            );
            let line = text
                .lines()
                .map(str::trim)
                .find(|l| !l.is_empty())
                .unwrap_or("");
            if line.is_empty() {
                "unknown".into()
            } else {
                pick(line)
            }
        }
        Err(_) => "not installed".into(),
    }
}

fn words(line: &str, n: usize) -> String {
    line.split_whitespace()
        .take(n)
        .collect::<Vec<_>>()
        .join(" ")
}

pub fn gather(with_tools: &[&str]) -> Machine {
    let cpuinfo = read("/proc/cpuinfo");
    let cpu_model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .and_then(|l| l.split_once(':'))
        .map_or_else(|| "unknown".to_string(), |(_, v)| v.trim().to_string());
    let memory_gib = read("/proc/meminfo")
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse::<f64>().ok())
        .map_or(0.0, |kib| kib / 1024.0 / 1024.0);
    let os = read("/etc/os-release")
        .lines()
        .find_map(|l| l.strip_prefix("PRETTY_NAME="))
        .map_or_else(|| "unknown".into(), |v| v.trim_matches('"').to_string());
    let mut tools = Vec::new();
    for t in with_tools {
        let v = match *t {
            "wrk" => version("wrk", &["-v"], |l| words(l, 2)),
            "h2load" => version("h2load", &["--version"], |l| l.to_string()),
            "iperf3" => version("iperf3", &["--version"], |l| words(l, 2)),
            "nginx" => version("nginx", &["-v"], |l| {
                l.trim_start_matches("nginx version: ").to_string()
            }),
            "haproxy" => version("haproxy", &["-v"], |l| words(l, 3)),
            _ => continue,
        };
        tools.push((t.to_string(), v));
    }
    let commit = version("git", &["rev-parse", "--short=12", "HEAD"], |l| {
        l.to_string()
    });
    let dirty = Command::new("git")
        .args(["status", "--porcelain", "--untracked-files=no"])
        .stdin(Stdio::null())
        .output()
        .is_ok_and(|o| !o.stdout.is_empty());
    Machine {
        cpu_model,
        cpus: crate::cores::allowed().len(),
        memory_gib,
        kernel: read("/proc/sys/kernel/osrelease").trim().to_string(),
        os,
        tools,
        strait_commit: if dirty {
            format!("{commit} (with uncommitted changes)")
        } else {
            commit
        },
    }
}

/// Seconds since the epoch now.
pub fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// (year, month, day) of a day count since 1970-01-01 (proleptic Gregorian).
fn civil(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// `20260501T120304Z` (for directory names) and `2026-05-01 12:03:04 UTC`.
pub fn utc(secs: u64) -> (String, String) {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let (h, mi, s) = (rem / 3600, rem % 3600 / 60, rem % 60);
    let (y, mo, d) = civil(days);
    (
        format!("{y:04}{mo:02}{d:02}T{h:02}{mi:02}{s:02}Z"),
        format!("{y:04}-{mo:02}-{d:02} {h:02}:{mi:02}:{s:02} UTC"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_formatting() {
        assert_eq!(utc(0).1, "1970-01-01 00:00:00 UTC");
        assert_eq!(utc(951_782_400).1, "2000-02-29 00:00:00 UTC");
        assert_eq!(utc(1_767_225_599).0, "20251231T235959Z");
        assert_eq!(utc(1_777_593_600 + 3_723).1, "2026-05-01 01:02:03 UTC");
    }

    #[test]
    fn gathers_without_failing() {
        let m = gather(&["wrk", "no-such-tool"]);
        assert!(m.cpus >= 1);
        assert_eq!(m.tools.len(), 1);
    }
}
