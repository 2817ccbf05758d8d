//! The audit log: one JSON line per configuration write or reload, whatever triggered it (a
//! signal, the admin API), and per refused write to the admin API.
//!
//! Owns: the `[admin] audit_log` file (opened for append at start-up) and writing a record to
//! it before the trigger is answered. Must not: run on a core, or buffer (each record goes to
//! the kernel with one `write` before the caller returns).

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Mutex;

use serde_json::{json, Value};

pub struct Audit {
    file: Mutex<File>,
    /// Refused writes are rate-limited (they need no token, so anyone who reaches the admin
    /// port could otherwise fill the disk): (second, records written in it, records suppressed).
    refusals: Mutex<(u64, u32, u64)>,
}

/// Refused-write records kept per second; the rest are counted in the next one written.
const REFUSALS_PER_SECOND: u32 = 10;

/// Who asked for a write or reload.
#[derive(Debug, Clone, Copy)]
pub struct Trigger {
    /// `"signal"` (SIGHUP) or `"api"`.
    pub source: &'static str,
    /// The admin client's address, for API writes.
    pub peer: Option<SocketAddr>,
}

impl Audit {
    pub fn open(path: &Path) -> std::io::Result<Audit> {
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        Ok(Audit {
            file: Mutex::new(file),
            refusals: Mutex::new((0, 0, 0)),
        })
    }

    /// A refused write: recorded at most [`REFUSALS_PER_SECOND`] times a second; a record after
    /// a suppressed burst carries `suppressed` (how many were left out).
    pub fn record_refusal(&self, trigger: Trigger, mut fields: Value) {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let suppressed = {
            let mut r = self.refusals.lock().unwrap_or_else(|p| p.into_inner());
            if r.0 != now {
                r.0 = now;
                r.1 = 0;
            }
            if r.1 >= REFUSALS_PER_SECOND {
                r.2 += 1;
                return;
            }
            r.1 += 1;
            std::mem::take(&mut r.2)
        };
        if suppressed > 0 {
            if let Some(f) = fields.as_object_mut() {
                f.insert("suppressed".into(), suppressed.into());
            }
        }
        self.record(trigger, fields);
    }

    /// Appends one record: the time, the trigger and `fields`.
    pub fn record(&self, trigger: Trigger, fields: Value) {
        let time = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        let mut entry = json!({
            "time": time,
            "source": trigger.source,
            "peer": trigger.peer.map(|p| p.to_string()),
        });
        if let (Some(e), Value::Object(more)) = (entry.as_object_mut(), fields) {
            e.extend(more);
        }
        let mut line = entry.to_string();
        line.push('\n');
        let mut file = self.file.lock().unwrap_or_else(|p| p.into_inner());
        if let Err(e) = file.write_all(line.as_bytes()) {
            tracing::warn!(error = %e, "cannot write the audit log");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Refused writes cannot fill the disk: a burst keeps at most 10 records a second.
    #[test]
    fn refusals_are_rate_limited() {
        let path = std::env::temp_dir().join(format!("strait-audit-{}.log", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let audit = Audit::open(&path).expect("open");
        let t = Trigger {
            source: "api",
            peer: None,
        };
        for _ in 0..100 {
            audit.record_refusal(t, json!({"result": "refused"}));
        }
        audit.record(t, json!({"result": "success"}));
        let text = std::fs::read_to_string(&path).expect("read");
        let lines = text.lines().count();
        // At most two seconds' worth of refusals (the burst may straddle one), and the one
        // unlimited record.
        assert!(
            lines <= 2 * REFUSALS_PER_SECOND as usize + 1,
            "{lines} lines"
        );
        assert!(lines > REFUSALS_PER_SECOND as usize, "{lines} lines");
        assert!(text.lines().last().is_some_and(|l| l.contains("success")));
        let _ = std::fs::remove_file(&path);
    }
}
