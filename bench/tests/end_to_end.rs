//! End to end: `strait-bench run` with one tiny scenario (HTTP/1.1 keep-alive, one repetition,
//! one second) against `direct` and, when the workspace's `strait` binary has been built, Strait
//! — then checks the results directory. Skips (passing, with a message) when wrk is not
//! installed. Needs neither NGINX nor HAProxy, installs nothing, and stays well under 20 s.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

fn in_path(tool: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()))
}

/// `target/<profile>/strait`, next to this test's binary under test, if it was built.
fn strait_bin(bench: &Path) -> Option<PathBuf> {
    let p = bench.parent()?.join("strait");
    p.is_file().then_some(p)
}

#[test]
fn tiny_run_writes_a_complete_results_directory() {
    if !in_path("wrk") || !in_path("taskset") {
        eprintln!("SKIPPED: wrk or taskset is not installed (apt-get install wrk util-linux) — the end-to-end bench test needs them");
        return;
    }
    let bench = PathBuf::from(env!("CARGO_BIN_EXE_strait-bench"));
    let results = std::env::temp_dir().join(format!("strait-bench-e2e-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&results);
    // Ports below the ephemeral range (32768+) that no default run uses, offset by pid so
    // parallel runs do not collide; the first range whose ports are all free.
    let free = |b: u16| {
        [1u16, 2, 3, 11, 12, 13]
            .iter()
            .all(|o| std::net::TcpListener::bind(("127.0.0.1", b + o)).is_ok())
    };
    let first = 20_000 + (std::process::id() % 100) as u16 * 100;
    let base = (0..100u16)
        .map(|i| 20_000 + (first - 20_000 + i * 100) % 10_000)
        .find(|b| free(*b))
        .expect("a free port range below 30000");
    let mut targets = "direct".to_string();
    if strait_bin(&bench).is_some() {
        targets.push_str(",strait");
    } else {
        eprintln!("note: strait binary not built next to strait-bench; measuring `direct` only");
    }
    let mut args: Vec<String> = vec!["run".into()];
    args.extend(
        [
            "--targets",
            &targets,
            "--scenarios",
            "small",
            "--variants",
            "all-cores",
            "--reps",
            "1",
            "--duration",
            "1",
            "--conns",
            "8",
            "--no-install",
            "--quiet-wait",
            "0",
            "--gate-budget",
            "0",
        ]
        .iter()
        .map(|s| s.to_string()),
    );
    args.push("--port-base".into());
    args.push(base.to_string());
    args.push("--results".into());
    args.push(results.display().to_string());
    let mut cmd = Command::new(&bench);
    cmd.args(&args);
    if let Some(strait) = strait_bin(&bench) {
        cmd.arg("--strait-bin").arg(strait);
    }
    let t = Instant::now();
    let out = cmd.output().expect("run strait-bench");
    let elapsed = t.elapsed();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "exit {:?}\nstdout:\n{stdout}\nstderr:\n{stderr}",
        out.status
    );
    assert!(elapsed < Duration::from_secs(20), "took {elapsed:?}");

    // The last line of stdout is the results directory.
    let last = stdout.lines().last().unwrap_or_default();
    let dir = PathBuf::from(last);
    assert_eq!(
        std::fs::canonicalize(&dir).unwrap(),
        std::fs::canonicalize(&results).unwrap()
    );
    for f in [
        "rows.csv",
        "rows.json",
        "run.json",
        "summary.json",
        "table.md",
        "throughput-all-cores.svg",
        "latency-all-cores.svg",
    ] {
        assert!(dir.join(f).is_file(), "missing {f}");
    }
    let csv = std::fs::read_to_string(dir.join("rows.csv")).unwrap();
    let n_targets = targets.split(',').count();
    assert_eq!(csv.lines().count(), 1 + n_targets, "{csv}");
    let rows: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("rows.json")).unwrap()).unwrap();
    for row in rows.as_array().unwrap() {
        assert_eq!(row["scenario"], "small");
        assert!(row["value"].as_f64().unwrap() > 100.0, "{row}");
        assert_eq!(row["errors"], 0, "{row}");
    }
    let table = std::fs::read_to_string(dir.join("table.md")).unwrap();
    assert!(table.contains("| small | direct |"), "{table}");
    if n_targets == 2 {
        // The HTTP/1.1 scenarios go through Strait's HTTP proxy: no "L4 relay" label.
        assert!(table.contains("| small | strait |"), "{table}");
        assert!(!table.contains("| small | strait (L4 relay) |"), "{table}");
    }
    assert!(
        stderr.contains("1/") || stderr.contains("2/"),
        "no progress on stderr: {stderr}"
    );
    // Everything it started is gone: the ports are free again.
    for off in [1u16, 2, 11, 12] {
        assert!(
            std::net::TcpListener::bind(("127.0.0.1", base + off)).is_ok(),
            "port {} still in use",
            base + off
        );
    }
    let _ = std::fs::remove_dir_all(&results);
}
