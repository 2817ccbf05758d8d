//! `strait reload`: asks a running Strait to reload its configuration file, through its admin
//! API (`POST /config/reload` with the bearer token), and prints the outcome.
//!
//! Owns: one bounded HTTP/1.1 exchange with the admin endpoint, and [`FileLoader`], how a running
//! process reads its configuration again (the `--config` file, or TOML text from `POST
//! /config`, through the same loader as `strait check`, with the command line's overrides).
//! Must not: apply anything (the engine's reload does).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
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

/// The command line's overrides, applied to every configuration loaded again.
pub type Overrides =
    Box<dyn Fn(&mut strait_engine::config::Config) -> Result<(), String> + Send + Sync>;

/// Reads the configuration again for reloads: the file given with `--config`, or text in its
/// place (relative paths in it resolve against the file's directory), then the command line's
/// overrides.
pub struct FileLoader {
    pub path: PathBuf,
    pub overrides: Overrides,
}

impl strait_engine::ConfigLoader for FileLoader {
    fn load_file(&self) -> Result<(strait_engine::config::Config, String), Vec<String>> {
        let text = std::fs::read_to_string(&self.path).map_err(|e| {
            vec![format!(
                "{}: cannot read the configuration file: {e}",
                self.path.display()
            )]
        })?;
        let config = self.load_text(&text)?;
        Ok((config, text))
    }

    fn load_text(&self, text: &str) -> Result<strait_engine::config::Config, Vec<String>> {
        let mut config = crate::config_file::load_str(&self.path, text)
            .map_err(|d| d.iter().map(ToString::to_string).collect::<Vec<_>>())?;
        (self.overrides)(&mut config).map_err(|e| vec![e])?;
        Ok(config)
    }

    /// Written to a temporary file beside it, then renamed over it: a crash never leaves half a
    /// file.
    fn path(&self) -> &Path {
        &self.path
    }

    /// Parsed and written back by the TOML library: comments, blank lines, quoting and inline
    /// spacing are gone, values keep their order. Text that does not parse (never applied) is
    /// returned as it is.
    fn normalise(&self, text: &str) -> String {
        text.parse::<toml::Table>()
            .ok()
            .and_then(|t| toml::to_string_pretty(&t).ok())
            .unwrap_or_else(|| text.to_string())
    }

    fn persist(&self, text: &str) -> Result<(), String> {
        let tmp = self.path.with_extension("toml.strait-new");
        std::fs::write(&tmp, text)
            .and_then(|()| std::fs::rename(&tmp, &self.path))
            .map_err(|e| format!("cannot write {}: {e}", self.path.display()))
    }
}
