//! `strait reload`: asks a running Strait to reload its configuration file, through its admin
//! API (`POST /config/reload` with the bearer token), and prints the outcome.
//!
//! Owns: one bounded HTTP/1.1 exchange with the admin endpoint. Must not: read or validate the
//! configuration itself (the running process does, with the same loader as `strait check`).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::time::Duration;

/// What the admin answered: the status and its body.
pub struct Answer {
    pub status: u16,
    pub body: String,
}

/// `POST /config/reload` to `admin`, with the token from `token_file` if given.
pub fn request(admin: SocketAddr, token_file: Option<&Path>) -> Result<Answer, String> {
    let token = match token_file {
        Some(p) => {
            let t = std::fs::read_to_string(p)
                .map_err(|e| format!("cannot read the token file {:?}: {e}", p.display()))?;
            Some(t.trim().to_string())
        }
        None => None,
    };
    let timeout = Duration::from_secs(10);
    let mut s = TcpStream::connect_timeout(&admin, timeout)
        .map_err(|e| format!("cannot reach the admin endpoint at {admin}: {e}"))?;
    let _ = s.set_read_timeout(Some(timeout));
    let _ = s.set_write_timeout(Some(timeout));
    let auth = token.map_or(String::new(), |t| format!("authorization: Bearer {t}\r\n"));
    let req = format!(
        "POST /config/reload HTTP/1.1\r\nhost: {admin}\r\n{auth}content-length: 0\r\nconnection: close\r\n\r\n"
    );
    s.write_all(req.as_bytes())
        .map_err(|e| format!("cannot send to {admin}: {e}"))?;
    let mut raw = Vec::new();
    s.take(1 << 20)
        .read_to_end(&mut raw)
        .map_err(|e| format!("no answer from {admin}: {e}"))?;
    let text = String::from_utf8_lossy(&raw);
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| format!("not an HTTP answer from {admin}"))?;
    let body = text
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .trim()
        .to_string();
    Ok(Answer { status, body })
}
