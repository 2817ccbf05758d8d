//! The command line as a user meets it: check, help, version, and the errors they get.

mod common;

use std::process::Command;

use common::*;

fn strait(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(binary())
        .args(args)
        .output()
        .expect("run strait");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn write_config(text: &str) -> tempfile_path::TempPath {
    tempfile_path::TempPath::new(text)
}

/// A file removed when dropped (no extra crate for one helper).
mod tempfile_path {
    use std::path::PathBuf;
    use std::sync::atomic::{AtomicUsize, Ordering};

    pub struct TempPath(pub PathBuf);

    impl TempPath {
        pub fn new(text: &str) -> TempPath {
            static N: AtomicUsize = AtomicUsize::new(0);
            let p = std::env::temp_dir().join(format!(
                "strait-cli-{}-{}.toml",
                std::process::id(),
                N.fetch_add(1, Ordering::SeqCst)
            ));
            std::fs::write(&p, text).unwrap();
            TempPath(p)
        }

        pub fn as_str(&self) -> &str {
            self.0.to_str().unwrap()
        }
    }

    impl Drop for TempPath {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }
}

#[test]
fn check_accepts_a_valid_file() {
    let f = write_config(
        r#"
[[listener]]
name = "edge"
address = "127.0.0.1:8080"
cluster = "backend"

[[cluster]]
name = "backend"
endpoints = [{ address = "127.0.0.1:9000" }, { address = "127.0.0.1:9001", weight = 2 }]
"#,
    );
    let (code, out, err) = strait(&["check", "--config", f.as_str()]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("ok (1 listener(s), 1 cluster(s))"), "{out}");
}

#[test]
fn check_reports_every_error_with_its_position_and_exits_one() {
    let f = write_config(
        r#"[runtime]
drain_timeout = "30"

[[listener]]
name = "edge"
address = "127.0.0.1:8080"
cluster = "bakend"
idel_timeout = "5s"

[[cluster]]
name = "backend"
endpoints = []
"#,
    );
    let (code, _, err) = strait(&["check", "--config", f.as_str()]);
    assert_eq!(code, 1, "{err}");
    let path = f.as_str();
    for expected in [
        format!("{path}:2:17: runtime.drain_timeout:"),
        format!("{path}:7:11: listener[0].cluster: unknown cluster \"bakend\""),
        format!("{path}:8:1: listener[0].idel_timeout:"),
        format!("{path}:12:13: cluster[0].endpoints:"),
    ] {
        assert!(err.contains(&expected), "missing {expected:?} in\n{err}");
    }
    assert!(err.contains("did you mean \"idle_timeout\""), "{err}");
    assert!(err.contains("4 error(s)"), "{err}");
}

#[test]
fn run_with_a_bad_file_fails_before_binding() {
    let listen = free_addr();
    let f = write_config(&format!(
        "[[listener]]\nname = \"x\"\naddress = \"{listen}\"\ncluster = \"nope\"\n"
    ));
    let (code, _, err) = strait(&["run", "--config", f.as_str()]);
    assert_eq!(code, 1);
    assert!(err.contains("unknown cluster \"nope\""), "{err}");
    assert!(std::net::TcpStream::connect(listen).is_err());
}

#[test]
fn a_busy_port_is_a_clear_start_up_error() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let (code, _, err) = strait(&[
        "run",
        "--listen",
        &addr,
        "--upstream",
        "127.0.0.1:9",
        "--cores",
        "0",
    ]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains(&format!("cannot listen on {addr}")), "{err}");
}

#[test]
fn usage_errors_say_what_is_wrong() {
    let (code, _, err) = strait(&["run"]);
    assert_eq!(code, 2);
    assert!(err.contains("--config FILE, or --listen ADDR"), "{err}");
    // The quick form with one extra flag pair.
    let quick = |flag: &str, value: &str| {
        strait(&[
            "run",
            "--listen",
            "127.0.0.1:1",
            "--upstream",
            "127.0.0.1:2",
            flag,
            value,
        ])
    };
    let (code, _, err) = quick("--mode", "sniff");
    assert_eq!(code, 2);
    assert!(
        err.contains(
            "--mode: \"sniff\" is not supported; valid: \"tcp\", \"udp\", \"http\" or \"auto\""
        ),
        "{err}"
    );
    let (code, _, err) = quick("--cores", "3-1");
    assert_eq!(code, 2);
    assert!(err.contains("--cores"), "{err}");
    let (code, _, err) = quick("--cores", "4000");
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("not available to this process"), "{err}");
    let (code, _, err) = strait(&["run", "--config", "x.toml", "--listen", "127.0.0.1:1"]);
    assert_eq!(code, 2);
    assert!(err.contains("cannot be used with"), "{err}");
}

#[test]
fn version_and_help_are_there() {
    let (code, out, _) = strait(&["--version"]);
    assert_eq!(code, 0);
    assert!(out.starts_with("strait "), "{out}");
    let (code, out, _) = strait(&["--help"]);
    assert_eq!(code, 0);
    assert!(
        out.contains("strait demo") && out.contains("Exit codes"),
        "{out}"
    );
    let (code, out, _) = strait(&["run", "--help"]);
    assert_eq!(code, 0);
    for flag in [
        "--config",
        "--listen",
        "--upstream",
        "--mode",
        "--cores",
        "--io-driver",
        "--admin",
        "--log-format",
    ] {
        assert!(out.contains(flag), "{flag} missing from run --help");
    }
}
