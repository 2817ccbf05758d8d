//! At most one log line per interval for events that can repeat per connection.
//!
//! Owns: the per-core throttle that turns "an endpoint is down and every client connection fails"
//! into one warning a second carrying a count of what it suppressed. Must not: be shared between
//! cores (plain `Cell`s; each core throttles its own lines).

use std::cell::Cell;
use std::time::{Duration, Instant};

pub(crate) struct LogLimit {
    interval: Duration,
    last: Cell<Option<Instant>>,
    suppressed: Cell<u64>,
}

impl LogLimit {
    pub fn new(interval: Duration) -> LogLimit {
        LogLimit {
            interval,
            last: Cell::new(None),
            suppressed: Cell::new(0),
        }
    }

    pub fn per_second() -> LogLimit {
        LogLimit::new(Duration::from_secs(1))
    }

    /// `Some(n)` if a line may be logged now, `n` being how many were suppressed since the last
    /// one; `None` if this one should be suppressed (and is counted).
    pub fn allow(&self) -> Option<u64> {
        let now = Instant::now();
        match self.last.get() {
            Some(t) if now.duration_since(t) < self.interval => {
                self.suppressed.set(self.suppressed.get() + 1);
                None
            }
            _ => {
                self.last.set(Some(now));
                Some(self.suppressed.replace(0))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allows_one_line_per_interval_and_counts_the_rest() {
        let limit = LogLimit::new(Duration::from_millis(50));
        assert_eq!(limit.allow(), Some(0));
        assert_eq!(limit.allow(), None);
        assert_eq!(limit.allow(), None);
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(limit.allow(), Some(2));
        assert_eq!(limit.allow(), None);
    }
}
