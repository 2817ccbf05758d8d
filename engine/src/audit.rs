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
}

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
        })
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
