//! A minimal blocking HTTP/1.1 client: one GET on an open connection, reading exactly one
//! response (Content-Length framing). Used for the sanity checks before measuring and for the
//! idle-connections scenario.
//!
//! Owns: nothing but the request/response exchange.
//! Must not: be used for load (wrk and h2load are the load generators) or connect anywhere but
//! loopback.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// Status code and body length of one response.
#[derive(Debug, PartialEq)]
pub struct Reply {
    pub status: u16,
    pub body_len: usize,
}

pub fn connect(port: u16, timeout: Duration) -> Result<TcpStream, String> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let s =
        TcpStream::connect_timeout(&addr, timeout).map_err(|e| format!("connect {addr}: {e}"))?;
    s.set_read_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    s.set_write_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    let _ = s.set_nodelay(true);
    Ok(s)
}

/// Sends `GET path` and reads one whole response.
pub fn get(s: &mut TcpStream, path: &str, close: bool) -> Result<Reply, String> {
    let conn = if close { "Connection: close\r\n" } else { "" };
    let req = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{conn}\r\n");
    s.write_all(req.as_bytes())
        .map_err(|e| format!("send: {e}"))?;
    let mut buf: Vec<u8> = Vec::with_capacity(1024);
    let mut chunk = [0u8; 16384];
    loop {
        if let Some((head_len, status, len)) = parse_response_head(&buf)? {
            let want = head_len + len;
            while buf.len() < want {
                let n = s.read(&mut chunk).map_err(|e| format!("read body: {e}"))?;
                if n == 0 {
                    return Err(format!(
                        "connection closed after {} of {len} body bytes",
                        buf.len() - head_len
                    ));
                }
                buf.extend_from_slice(&chunk[..n]);
            }
            if buf.len() > want {
                return Err("more bytes than the response announced".into());
            }
            return Ok(Reply {
                status,
                body_len: len,
            });
        }
        if buf.len() > 64 * 1024 {
            return Err("response head larger than 64 KiB".into());
        }
        let n = s.read(&mut chunk).map_err(|e| format!("read: {e}"))?;
        if n == 0 {
            return Err("connection closed before a response".into());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// `Some((head length, status, content length))` once the head is complete.
fn parse_response_head(buf: &[u8]) -> Result<Option<(usize, u16, usize)>, String> {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut resp = httparse::Response::new(&mut headers);
    match resp.parse(buf) {
        Ok(httparse::Status::Complete(n)) => {
            let status = resp.code.ok_or("no status code")?;
            let len = resp
                .headers
                .iter()
                .find(|h| h.name.eq_ignore_ascii_case("content-length"))
                .and_then(|h| std::str::from_utf8(h.value).ok())
                .and_then(|v| v.trim().parse().ok())
                .ok_or("no valid Content-Length")?;
            Ok(Some((n, status, len)))
        }
        Ok(httparse::Status::Partial) => Ok(None),
        Err(e) => Err(format!("bad response: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn response_heads() {
        let r = parse_response_head(b"HTTP/1.1 200 OK\r\nContent-Length: 13\r\n\r\nHello").unwrap();
        assert_eq!(r, Some((39, 200, 13)));
        assert_eq!(
            parse_response_head(b"HTTP/1.1 200 OK\r\nCont").unwrap(),
            None
        );
        assert!(parse_response_head(b"HTTP/1.1 200 OK\r\n\r\n").is_err());
        assert!(parse_response_head(b"\x16\x03\x01 tls").is_err());
    }
}
