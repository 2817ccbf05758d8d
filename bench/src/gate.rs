//! Background load: the quiet gate before each measurement (wait, bounded, until processes this
//! run did not start use little CPU) and the CPU accounting around each measurement (busy % of
//! the proxy and load cores, CPU of the proxy and origin process groups, foreign CPU).
//!
//! Owns: the definition of "ours" (our process group, the groups we started, kernel threads)
//! and "foreign" (everything else), and the noise flag's inputs.
//! Must not: start or stop processes, or decide what to do with a noisy result (run.rs flags it).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::procfs::{self, SystemStat, HZ};

/// A point-in-time view of CPU counters.
pub struct Snap {
    at: Instant,
    sys: SystemStat,
    /// Ticks of processes we count as ours.
    known: u64,
    /// Ticks per watched process group.
    groups: HashMap<i32, u64>,
}

/// Takes a snapshot. `ours` are the process groups started by this run; this process's own
/// group, its reaped children and kernel threads (which do the loopback work) count as ours too.
pub fn snap(ours: &[i32]) -> Snap {
    let me = procfs::self_stat();
    let my_pgid = me.map(|m| m.pgid);
    let mut known = me.map_or(0, |m| m.child_ticks);
    let mut groups: HashMap<i32, u64> = HashMap::new();
    for p in procfs::all_procs() {
        let kernel_thread = p.pid == 2 || p.ppid == 2;
        if ours.contains(&p.pgid) {
            *groups.entry(p.pgid).or_default() += p.ticks;
        }
        if kernel_thread || ours.contains(&p.pgid) || Some(p.pgid) == my_pgid {
            known += p.ticks;
        }
    }
    Snap {
        at: Instant::now(),
        sys: procfs::read_system_stat().unwrap_or_default(),
        known,
        groups,
    }
}

/// What happened between two snapshots.
pub struct Usage {
    pub wall_s: f64,
    /// CPU charged to processes we did not start, in % of all CPUs.
    pub foreign_pct: f64,
    a_sys: SystemStat,
    b_sys: SystemStat,
    group_ticks: HashMap<i32, u64>,
}

pub fn usage(a: &Snap, b: &Snap) -> Usage {
    let wall_s = b.at.duration_since(a.at).as_secs_f64();
    let ncpu = a.sys.per_cpu.len().max(1) as f64;
    let task = b.sys.all.task.saturating_sub(a.sys.all.task);
    let foreign = task.saturating_sub(b.known.saturating_sub(a.known));
    let foreign_pct = if wall_s > 0.0 {
        (foreign as f64 / (wall_s * HZ * ncpu) * 100.0).clamp(0.0, 100.0)
    } else {
        0.0
    };
    let group_ticks = b
        .groups
        .iter()
        .map(|(pg, t)| {
            (
                *pg,
                t.saturating_sub(a.groups.get(pg).copied().unwrap_or(0)),
            )
        })
        .collect();
    Usage {
        wall_s,
        foreign_pct,
        a_sys: a.sys.clone(),
        b_sys: b.sys.clone(),
        group_ticks,
    }
}

impl Usage {
    /// Average busy % (everything but idle and iowait) of a set of CPUs.
    pub fn cores_busy_pct(&self, cpus: &[usize]) -> Option<f64> {
        let mut total = 0u64;
        let mut idle = 0u64;
        for (n, b) in &self.b_sys.per_cpu {
            if !cpus.contains(n) {
                continue;
            }
            let a = self.a_sys.per_cpu.iter().find(|(m, _)| m == n)?.1;
            total += b.total.saturating_sub(a.total);
            idle += b.idle.saturating_sub(a.idle);
        }
        (total > 0).then(|| (total - idle.min(total)) as f64 / total as f64 * 100.0)
    }

    /// CPU of one process group we started, in % of one core.
    pub fn group_pct(&self, pgid: i32) -> Option<f64> {
        let t = self.group_ticks.get(&pgid)?;
        (self.wall_s > 0.0).then(|| *t as f64 / (self.wall_s * HZ) * 100.0)
    }
}

/// The outcome of waiting for a quiet machine.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Gate {
    pub waited_s: f64,
    /// Foreign CPU in the last sample, % of all CPUs.
    pub bg_pct: f64,
    pub quiet: bool,
}

/// Samples foreign CPU for `sample`; while it is above `max_pct`, pauses 1 s and samples again,
/// for at most `max_wait` here and `budget` over the whole run (the time waited is deducted).
pub fn quiet_gate(
    ours: &[i32],
    sample: Duration,
    max_pct: f64,
    max_wait: Duration,
    budget: &mut Duration,
) -> Gate {
    let mut waiting_since: Option<Instant> = None;
    loop {
        let a = snap(ours);
        std::thread::sleep(sample);
        let b = snap(ours);
        let bg = usage(&a, &b).foreign_pct;
        let since = *waiting_since.get_or_insert_with(Instant::now);
        let waited = since.elapsed();
        let quiet = bg <= max_pct;
        if quiet || waited >= max_wait || waited >= *budget || crate::procs::interrupted() {
            *budget = budget.saturating_sub(waited);
            return Gate {
                waited_s: waited.as_secs_f64(),
                bg_pct: bg,
                quiet,
            };
        }
        std::thread::sleep(Duration::from_secs(1));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_of_our_own_busy_loop_is_not_foreign() {
        let me = procfs::self_stat().unwrap().pgid;
        let a = snap(&[me]);
        let t = Instant::now();
        let mut x = 0u64;
        while t.elapsed() < Duration::from_millis(300) {
            x = x.wrapping_mul(31).wrapping_add(7);
        }
        assert_ne!(x, 1);
        let b = snap(&[me]);
        let u = usage(&a, &b);
        assert!(u.wall_s >= 0.3);
        // Our own group burnt ~one core; it was counted as ours.
        let g = u.group_pct(me).unwrap();
        assert!(g > 50.0, "own group {g}%");
        assert!((0.0..=100.0).contains(&u.foreign_pct));
        let all: Vec<usize> = (0..4096).collect();
        let busy = u.cores_busy_pct(&all).unwrap();
        assert!(busy > 10.0, "busy {busy}");
        assert_eq!(u.group_pct(-5), None);
    }

    #[test]
    fn gate_respects_its_bounds() {
        let mut budget = Duration::from_secs(10);
        // A limit no machine can meet: it must give up after max_wait, flagged.
        let g = quiet_gate(
            &[],
            Duration::from_millis(50),
            -1.0,
            Duration::ZERO,
            &mut budget,
        );
        assert!(!g.quiet);
        assert!(g.waited_s < 1.0);
        let g = quiet_gate(
            &[],
            Duration::from_millis(50),
            100.0,
            Duration::ZERO,
            &mut budget,
        );
        assert!(g.quiet);
    }
}
