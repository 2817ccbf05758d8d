//! The progress display on stderr: elapsed time, measurements done out of planned, an ETA from
//! the plan's estimates, and one line per event (works the same on a terminal and in CI logs).
//!
//! Owns: stderr output of a run (stdout is reserved for the report and the results path).
//! Must not: write to stdout.

use std::io::Write;
use std::time::Instant;

pub struct Progress {
    start: Instant,
    total: usize,
    done: usize,
    est_total_s: f64,
    est_done_s: f64,
}

pub fn clock(secs: f64) -> String {
    let s = secs.max(0.0).round() as u64;
    if s >= 60 {
        format!("{}m{:02}s", s / 60, s % 60)
    } else {
        format!("{s}s")
    }
}

impl Progress {
    pub fn new(total: usize, est_total_s: f64) -> Progress {
        Progress {
            start: Instant::now(),
            total,
            done: 0,
            est_total_s,
            est_done_s: 0.0,
        }
    }

    pub fn elapsed_s(&self) -> f64 {
        self.start.elapsed().as_secs_f64()
    }

    /// Remaining time: the estimate still to go, scaled by how the run has kept to its plan.
    fn eta(&self) -> f64 {
        let left = (self.est_total_s - self.est_done_s).max(0.0);
        if self.est_done_s > 10.0 {
            left * (self.elapsed_s() / self.est_done_s).clamp(0.5, 3.0)
        } else {
            left
        }
    }

    pub fn log(&self, msg: &str) {
        let mut e = std::io::stderr().lock();
        let _ = writeln!(e, "[{:>6}] {msg}", clock(self.elapsed_s()));
    }

    /// Accounts for work whose estimate is `est_s` (a measurement or a start-up).
    pub fn advance(&mut self, est_s: f64, measurement: bool) {
        self.est_done_s += est_s;
        if measurement {
            self.done += 1;
        }
    }

    /// A finished measurement: `[  1m02s] 12/72 ETA 2m10s  pinned small nginx #2: ...`.
    pub fn step(&self, what: &str) {
        let mut e = std::io::stderr().lock();
        let _ = writeln!(
            e,
            "[{:>6}] {:>3}/{} ETA {:>6}  {what}",
            clock(self.elapsed_s()),
            self.done,
            self.total,
            clock(self.eta())
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clock_and_eta() {
        assert_eq!(clock(5.4), "5s");
        assert_eq!(clock(125.0), "2m05s");
        assert_eq!(clock(-1.0), "0s");
        let mut p = Progress::new(2, 100.0);
        p.advance(40.0, true);
        assert_eq!(p.done, 1);
        // Elapsed is ~0 against 40 s of plan: the scale is clamped at 0.5.
        assert!((p.eta() - 30.0).abs() < 0.1, "{}", p.eta());
    }
}
