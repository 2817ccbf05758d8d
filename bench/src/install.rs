//! The external tools a run needs (wrk, h2load, iperf3, nginx and its stream module, haproxy,
//! taskset) and installing the missing ones from Debian packages with apt-get.
//!
//! Owns: the tool → package map, the presence probes, and the apt-get invocation (one
//! `apt-get update` first; packaged services are kept from starting while installing).
//! Must not: install anything that the selected targets and scenarios do not need, or leave
//! the policy-rc.d guard behind if it created it.

use std::path::Path;
use std::time::Duration;

use crate::peers::NGINX_STREAM_MODULE;
use crate::plan::Scenario;
use crate::procs;

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Tool {
    /// What it is called in messages.
    pub name: &'static str,
    pub package: &'static str,
    /// An executable name looked up in PATH, or an absolute file path.
    pub probe: &'static str,
}

pub const TASKSET: Tool = Tool {
    name: "taskset",
    package: "util-linux",
    probe: "taskset",
};
pub const WRK: Tool = Tool {
    name: "wrk",
    package: "wrk",
    probe: "wrk",
};
pub const H2LOAD: Tool = Tool {
    name: "h2load",
    package: "nghttp2-client",
    probe: "h2load",
};
pub const IPERF3: Tool = Tool {
    name: "iperf3",
    package: "iperf3",
    probe: "iperf3",
};
pub const NGINX: Tool = Tool {
    name: "nginx",
    package: "nginx",
    probe: "nginx",
};
pub const NGINX_STREAM: Tool = Tool {
    name: "nginx stream module",
    package: "libnginx-mod-stream",
    probe: NGINX_STREAM_MODULE,
};
pub const HAPROXY: Tool = Tool {
    name: "haproxy",
    package: "haproxy",
    probe: "haproxy",
};

/// The tools the selected targets and scenarios need.
pub fn needed(targets: &[String], scenarios: &[Scenario]) -> Vec<Tool> {
    let has = |s: Scenario| scenarios.contains(&s);
    let target = |t: &str| targets.iter().any(|x| x == t);
    let mut out = vec![TASKSET];
    if scenarios.iter().any(|s| s.is_wrk()) || has(Scenario::Idle) {
        out.push(WRK); // also the warm-up load
    }
    if has(Scenario::H2c) {
        out.push(H2LOAD);
    }
    if has(Scenario::L4) {
        out.push(IPERF3);
    }
    if target("nginx") {
        out.push(NGINX);
        if has(Scenario::L4) {
            out.push(NGINX_STREAM);
        }
    }
    if target("haproxy") {
        out.push(HAPROXY);
    }
    out
}

/// Whether an executable is in PATH (or an absolute path exists).
pub fn present(probe: &str) -> bool {
    if probe.starts_with('/') {
        return Path::new(probe).exists();
    }
    std::env::var_os("PATH").is_some_and(|paths| {
        std::env::split_paths(&paths).any(|dir| {
            use std::os::unix::fs::PermissionsExt;
            std::fs::metadata(dir.join(probe))
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
    })
}

pub fn missing(tools: &[Tool]) -> Vec<Tool> {
    tools
        .iter()
        .copied()
        .filter(|t| !present(t.probe))
        .collect()
}

const POLICY_RC_D: &str = "/usr/sbin/policy-rc.d";

/// `apt-get update` once, then installs the packages of `tools`. Logs go to `log_dir`.
pub fn install(tools: &[Tool], log_dir: &Path) -> Result<(), String> {
    let mut packages: Vec<&str> = tools.iter().map(|t| t.package).collect();
    packages.dedup();
    if packages.is_empty() {
        return Ok(());
    }
    if !present("apt-get") {
        return Err(format!(
            "missing {}; no apt-get here to install them",
            packages.join(" ")
        ));
    }
    // Debian starts packaged services (nginx on :80, haproxy) on install; a policy-rc.d that
    // exits 101 prevents that. Created only if absent, removed afterwards.
    let guard = !Path::new(POLICY_RC_D).exists()
        && std::fs::write(POLICY_RC_D, "#!/bin/sh\nexit 101\n").is_ok()
        && {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(POLICY_RC_D, std::fs::Permissions::from_mode(0o755)).is_ok()
        };
    let result = apt(&packages, log_dir);
    if guard {
        let _ = std::fs::remove_file(POLICY_RC_D);
    }
    result
}

fn apt(packages: &[&str], log_dir: &Path) -> Result<(), String> {
    let update: Vec<String> = [
        "env",
        "DEBIAN_FRONTEND=noninteractive",
        "apt-get",
        "update",
        "-qq",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let o = procs::run_bounded(
        &update,
        None,
        Duration::from_secs(600),
        &log_dir.join("apt-update.log"),
    )?;
    if !o.success {
        return Err(format!(
            "apt-get update failed ({}): {}",
            o.status,
            o.stderr.trim()
        ));
    }
    let mut install: Vec<String> = [
        "env",
        "DEBIAN_FRONTEND=noninteractive",
        "apt-get",
        "install",
        "-y",
        "-qq",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    install.extend(packages.iter().map(|p| p.to_string()));
    let o = procs::run_bounded(
        &install,
        None,
        Duration::from_secs(900),
        &log_dir.join("apt-install.log"),
    )?;
    if !o.success {
        return Err(format!(
            "apt-get install {} failed ({}): {}",
            packages.join(" "),
            o.status,
            o.stderr.trim()
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn needs_follow_the_selection() {
        let names = |t: &[&str], s: &[Scenario]| -> Vec<&'static str> {
            let t: Vec<String> = t.iter().map(|x| x.to_string()).collect();
            needed(&t, s).iter().map(|x| x.package).collect()
        };
        assert_eq!(
            names(&["direct"], &[Scenario::Small]),
            ["util-linux", "wrk"]
        );
        assert_eq!(
            names(&["nginx", "haproxy"], &[Scenario::L4]),
            [
                "util-linux",
                "iperf3",
                "nginx",
                "libnginx-mod-stream",
                "haproxy"
            ]
        );
        assert_eq!(
            names(&["nginx"], &[Scenario::H2c]),
            ["util-linux", "nghttp2-client", "nginx"]
        );
    }

    #[test]
    fn probes() {
        assert!(present("sh"));
        assert!(!present("surely-not-a-tool-strait-bench"));
        assert!(present("/proc/self"));
        assert!(missing(&[TASKSET]).len() <= 1);
    }
}
