//! The systemd notification protocol (`sd_notify(3)`): when `NOTIFY_SOCKET` is set (a
//! `Type=notify` unit), Strait says `READY=1` once every core accepts, `RELOADING=1` with
//! `MONOTONIC_USEC` and then `READY=1` around a reload, and `STOPPING=1` when the drain begins.
//!
//! Owns: writing those datagrams to the socket named by `NOTIFY_SOCKET` (a path, or `@name` for
//! the abstract namespace). Must not: fail start-up or a reload (a notification that cannot be
//! sent is logged at debug and dropped), or run on a core.

use std::os::unix::net::UnixDatagram;

use tracing::debug;

/// Sends `state` (newline-separated `KEY=VALUE` pairs) to the service manager, if there is one.
pub fn notify(state: &str) {
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    let sent = UnixDatagram::unbound().and_then(|socket| {
        let bytes = path.as_encoded_bytes();
        match bytes.strip_prefix(b"@") {
            Some(name) => {
                use std::os::linux::net::SocketAddrExt;
                let addr = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
                socket.send_to_addr(state.as_bytes(), &addr)
            }
            None => socket.send_to(state.as_bytes(), &path),
        }
    });
    if let Err(e) = sent {
        debug!(error = %e, state, "cannot notify the service manager");
    }
}

/// `RELOADING=1` with the monotonic clock, as `Type=notify-reload` units expect.
pub fn reloading() {
    notify(&format!("RELOADING=1\nMONOTONIC_USEC={}", monotonic_usec()));
}

/// `CLOCK_MONOTONIC` in microseconds (std's `Instant` does not expose its value).
fn monotonic_usec() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec into the valid, exclusively borrowed `ts`.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    if rc != 0 {
        return 0;
    }
    (ts.tv_sec as u64) * 1_000_000 + (ts.tv_nsec as u64) / 1_000
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_monotonic_clock_moves_forward() {
        let a = monotonic_usec();
        std::thread::sleep(std::time::Duration::from_millis(2));
        let b = monotonic_usec();
        assert!(a > 0 && b > a, "{a} {b}");
    }
}
