//! Reading /proc: the CPU time counters of the machine and of each CPU (/proc/stat), each
//! process's CPU ticks and process group (/proc/PID/stat), and resident memory (VmRSS).
//!
//! Owns: the /proc text formats and their parsers (pure functions, unit-tested).
//! Must not: interpret the numbers (gate.rs does) or write anything.

use std::fs;

/// Clock ticks per second of /proc times (USER_HZ; 100 on every Linux ABI we run on).
pub const HZ: f64 = 100.0;

#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct CpuTimes {
    /// user + nice + system + idle + iowait + irq + softirq + steal
    pub total: u64,
    /// idle + iowait
    pub idle: u64,
    /// user + nice + system: time that processes are charged for
    pub task: u64,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct SystemStat {
    pub all: CpuTimes,
    /// (cpu number, times)
    pub per_cpu: Vec<(usize, CpuTimes)>,
}

fn cpu_times(fields: &[&str]) -> Option<CpuTimes> {
    let v: Vec<u64> = fields
        .iter()
        .take(8)
        .map(|f| f.parse().ok())
        .collect::<Option<_>>()?;
    if v.len() < 8 {
        return None;
    }
    Some(CpuTimes {
        total: v.iter().sum(),
        idle: v[3] + v[4],
        task: v[0] + v[1] + v[2],
    })
}

pub fn parse_system_stat(text: &str) -> Result<SystemStat, String> {
    let mut out = SystemStat::default();
    let mut seen_all = false;
    for line in text.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        let Some((name, rest)) = f.split_first() else {
            continue;
        };
        if *name == "cpu" {
            out.all = cpu_times(rest).ok_or_else(|| format!("bad /proc/stat line {line:?}"))?;
            seen_all = true;
        } else if let Some(n) = name.strip_prefix("cpu").and_then(|n| n.parse().ok()) {
            let t = cpu_times(rest).ok_or_else(|| format!("bad /proc/stat line {line:?}"))?;
            out.per_cpu.push((n, t));
        }
    }
    if !seen_all {
        return Err("no cpu line in /proc/stat".into());
    }
    Ok(out)
}

pub fn read_system_stat() -> Result<SystemStat, String> {
    let text = fs::read_to_string("/proc/stat").map_err(|e| format!("/proc/stat: {e}"))?;
    parse_system_stat(&text)
}

#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ProcStat {
    pub pid: i32,
    pub ppid: i32,
    pub pgid: i32,
    /// utime + stime
    pub ticks: u64,
    /// cutime + cstime: reaped children
    pub child_ticks: u64,
}

/// Parses /proc/PID/stat; the command name may contain spaces and parentheses.
pub fn parse_proc_stat(text: &str) -> Option<ProcStat> {
    let open = text.find('(')?;
    let close = text.rfind(')')?;
    let pid = text.get(..open)?.trim().parse().ok()?;
    let rest: Vec<&str> = text.get(close + 1..)?.split_whitespace().collect();
    let num = |i: usize| rest.get(i).and_then(|v| v.parse::<i64>().ok());
    let tick = |i: usize| num(i).map(|v| v.max(0) as u64);
    Some(ProcStat {
        pid,
        ppid: i32::try_from(num(1)?).ok()?,
        pgid: i32::try_from(num(2)?).ok()?,
        ticks: tick(11)? + tick(12)?,
        child_ticks: tick(13)? + tick(14)?,
    })
}

/// Every process readable right now (processes that vanish mid-scan are skipped).
pub fn all_procs() -> Vec<ProcStat> {
    let Ok(dir) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok())
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .bytes()
                .all(|b| b.is_ascii_digit())
        })
        .filter_map(|e| fs::read_to_string(e.path().join("stat")).ok())
        .filter_map(|t| parse_proc_stat(&t))
        .collect()
}

pub fn self_stat() -> Option<ProcStat> {
    fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|t| parse_proc_stat(&t))
}

/// VmRSS in KiB from /proc/PID/status text.
pub fn parse_vm_rss_kib(status: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

/// Resident memory of every process in a process group, in KiB.
pub fn group_rss_kib(pgid: i32) -> u64 {
    all_procs()
        .iter()
        .filter(|p| p.pgid == pgid)
        .filter_map(|p| fs::read_to_string(format!("/proc/{}/status", p.pid)).ok())
        .filter_map(|s| parse_vm_rss_kib(&s))
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn system_stat() {
        let text = "cpu  100 5 50 1000 10 1 2 3 0 0\n\
                    cpu0 60 0 30 400 5 1 1 1 0 0\n\
                    cpu1 40 5 20 600 5 0 1 2 0 0\n\
                    intr 12345\nctxt 999\n";
        let s = parse_system_stat(text).unwrap();
        assert_eq!(s.all.total, 100 + 5 + 50 + 1000 + 10 + 1 + 2 + 3);
        assert_eq!(s.all.idle, 1010);
        assert_eq!(s.all.task, 155);
        assert_eq!(s.per_cpu.len(), 2);
        assert_eq!(s.per_cpu[1].0, 1);
        assert!(parse_system_stat("intr 1\n").is_err());
        assert!(parse_system_stat("cpu 1 2 x\n").is_err());
        assert!(read_system_stat().unwrap().all.total > 0);
    }

    #[test]
    fn proc_stat_with_odd_names() {
        let t = "4242 (we ird) (x)) S 1 4242 4242 0 -1 4194560 100 0 0 0 \
                 250 75 10 5 20 0 3 0 12345 1000000 300 18446744073709551615";
        let p = parse_proc_stat(t).unwrap();
        assert_eq!((p.pid, p.ppid, p.pgid), (4242, 1, 4242));
        assert_eq!(p.ticks, 325);
        assert_eq!(p.child_ticks, 15);
        assert!(parse_proc_stat("garbage").is_none());
        assert!(parse_proc_stat("1 (x) S 1").is_none());
        let me = self_stat().unwrap();
        assert_eq!(me.pid, std::process::id() as i32);
    }

    #[test]
    fn rss() {
        assert_eq!(
            parse_vm_rss_kib("Name:\tx\nVmRSS:\t    2048 kB\nVmData: 1 kB\n"),
            Some(2048)
        );
        assert_eq!(parse_vm_rss_kib("Name: kthread\n"), None);
        let me = self_stat().unwrap();
        assert!(group_rss_kib(me.pgid) > 0);
    }
}
