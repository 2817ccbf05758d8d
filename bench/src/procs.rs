//! Processes this run starts: spawning them (pinned with `taskset`, each server in its own
//! process group), waiting for their ports, stopping them by process-group id (SIGTERM, then
//! SIGKILL after 3 s), running a load tool with a hard time limit, and Ctrl-C handling.
//!
//! Owns: every child process and the registry the panic hook uses to stop them.
//! Must not: signal any process it did not start (no kill by name, ever), or leave a child
//! running when the run ends, fails or panics.

use std::fs::File;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;

use crate::cores;
use crate::peers::{Launch, HOST};

/// Process groups started and not yet stopped, for the panic hook.
static STARTED: Mutex<Vec<i32>> = Mutex::new(Vec::new());
static INTERRUPT: OnceLock<Arc<AtomicBool>> = OnceLock::new();

/// SIGINT/SIGTERM set a flag that the run checks between and during measurements.
pub fn install_signal_flags() -> Result<(), String> {
    let flag = INTERRUPT.get_or_init(|| Arc::new(AtomicBool::new(false)));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, flag.clone()).map_err(|e| e.to_string())?;
    }
    Ok(())
}

pub fn interrupted() -> bool {
    INTERRUPT.get().is_some_and(|f| f.load(Ordering::Relaxed))
}

/// On a panic (which aborts in release builds), kill every process group still registered.
pub fn install_panic_hook() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if let Ok(list) = STARTED.lock() {
            for pg in list.iter() {
                let _ = killpg(Pid::from_raw(*pg), Signal::SIGKILL);
            }
        }
        default(info);
    }));
}

fn register(pg: i32, add: bool) {
    if let Ok(mut list) = STARTED.lock() {
        if add {
            list.push(pg);
        } else {
            list.retain(|p| *p != pg);
        }
    }
}

fn command(program: &str, args: &[String], cpus: Option<&[usize]>) -> Command {
    match cpus {
        Some(c) => {
            let mut cmd = Command::new("taskset");
            cmd.arg("-c").arg(cores::format(c)).arg(program).args(args);
            cmd
        }
        None => {
            let mut cmd = Command::new(program);
            cmd.args(args);
            cmd
        }
    }
}

/// The last `n` lines of a log file, for error messages.
pub fn tail(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join(" | ")
}

struct Server {
    name: String,
    child: Child,
    pgid: i32,
    log: PathBuf,
}

/// Owns the long-running processes of a run (origin, iperf3 server, proxies).
#[derive(Default)]
pub struct Supervisor {
    servers: Vec<Server>,
}

impl Supervisor {
    /// Starts `launch` in a new process group, optionally pinned, output to `log`.
    pub fn spawn(
        &mut self,
        name: &str,
        cpus: Option<&[usize]>,
        launch: &Launch,
        log: &Path,
    ) -> Result<i32, String> {
        let out = File::create(log).map_err(|e| format!("{}: {e}", log.display()))?;
        let err = out.try_clone().map_err(|e| e.to_string())?;
        let mut cmd = command(&launch.program, &launch.args, cpus);
        cmd.envs(launch.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .process_group(0);
        let child = cmd
            .spawn()
            .map_err(|e| format!("cannot start {name} ({}): {e}", launch.program))?;
        let pgid = i32::try_from(child.id()).map_err(|_| "pid out of range".to_string())?;
        register(pgid, true);
        self.servers.push(Server {
            name: name.to_string(),
            child,
            pgid,
            log: log.to_path_buf(),
        });
        Ok(pgid)
    }

    /// Waits until every port accepts connections; fails early if the process exits.
    pub fn wait_ready(
        &mut self,
        name: &str,
        ports: &[u16],
        timeout: Duration,
    ) -> Result<(), String> {
        let deadline = Instant::now() + timeout;
        let server = self
            .servers
            .iter_mut()
            .find(|s| s.name == name)
            .ok_or_else(|| format!("{name} was not started"))?;
        for port in ports {
            let addr = SocketAddr::from(([127, 0, 0, 1], *port));
            loop {
                if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                    break;
                }
                if let Ok(Some(status)) = server.child.try_wait() {
                    return Err(format!(
                        "{name} exited ({status}) before {HOST}:{port} opened; log: {}",
                        tail(&server.log, 5)
                    ));
                }
                if Instant::now() > deadline || interrupted() {
                    return Err(format!(
                        "{name}: {HOST}:{port} not accepting after {}s; log: {}",
                        timeout.as_secs(),
                        tail(&server.log, 5)
                    ));
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        Ok(())
    }

    pub fn pgid(&self, name: &str) -> Option<i32> {
        self.servers.iter().find(|s| s.name == name).map(|s| s.pgid)
    }

    pub fn pgids(&self) -> Vec<i32> {
        self.servers.iter().map(|s| s.pgid).collect()
    }

    /// Whether the named server is still running.
    pub fn alive(&mut self, name: &str) -> bool {
        self.servers
            .iter_mut()
            .find(|s| s.name == name)
            .is_some_and(|s| matches!(s.child.try_wait(), Ok(None)))
    }

    pub fn log_of(&self, name: &str) -> Option<PathBuf> {
        self.servers
            .iter()
            .find(|s| s.name == name)
            .map(|s| s.log.clone())
    }

    pub fn stop(&mut self, name: &str) {
        if let Some(i) = self.servers.iter().position(|s| s.name == name) {
            let mut s = self.servers.remove(i);
            stop_group(&mut s.child, s.pgid);
        }
    }

    /// Stops everything, newest first (proxies before the origin they forward to).
    pub fn stop_all(&mut self) {
        while let Some(mut s) = self.servers.pop() {
            stop_group(&mut s.child, s.pgid);
        }
    }
}

impl Drop for Supervisor {
    fn drop(&mut self) {
        self.stop_all();
    }
}

/// SIGTERM to the group we created, then SIGKILL after 3 s; reaps the leader.
fn stop_group(child: &mut Child, pgid: i32) {
    let pg = Pid::from_raw(pgid);
    let _ = killpg(pg, Signal::SIGTERM);
    let deadline = Instant::now() + Duration::from_secs(3);
    let mut killed = false;
    loop {
        let _ = child.try_wait();
        if killpg(pg, None).is_err() {
            break;
        }
        if Instant::now() > deadline {
            if killed {
                break;
            }
            let _ = killpg(pg, Signal::SIGKILL);
            killed = true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.wait();
    register(pgid, false);
}

/// True when nothing listens on `127.0.0.1:port`.
pub fn port_free(port: u16) -> bool {
    TcpListener::bind((HOST, port)).is_ok()
}

/// The result of a bounded tool run.
pub struct Outcome {
    pub success: bool,
    pub status: String,
    pub stdout: String,
    pub stderr: String,
}

/// Runs a load tool (in this process group, so Ctrl-C reaches it), stdout to `out` and stderr
/// to `out` + `.err`; kills it after `timeout` or on interrupt.
pub fn run_bounded(
    argv: &[String],
    cpus: Option<&[usize]>,
    timeout: Duration,
    out: &Path,
) -> Result<Outcome, String> {
    let (program, args) = argv.split_first().ok_or("empty command")?;
    let err_path = PathBuf::from(format!("{}.err", out.display()));
    let so = File::create(out).map_err(|e| format!("{}: {e}", out.display()))?;
    let se = File::create(&err_path).map_err(|e| format!("{}: {e}", err_path.display()))?;
    let start = Instant::now();
    let mut child = command(program, args, cpus)
        .stdin(Stdio::null())
        .stdout(so)
        .stderr(se)
        .spawn()
        .map_err(|e| format!("cannot run {program}: {e}"))?;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) => {}
            Err(e) => return Err(format!("{program}: {e}")),
        }
        if start.elapsed() > timeout || interrupted() {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let read =
        |p: &Path| String::from_utf8_lossy(&std::fs::read(p).unwrap_or_default()).into_owned();
    let stderr = read(&err_path);
    if stderr.is_empty() {
        let _ = std::fs::remove_file(&err_path);
    }
    Ok(Outcome {
        success: status.is_some_and(|s| s.success()),
        status: match status {
            Some(s) => s.to_string(),
            None if interrupted() => "interrupted".into(),
            None => format!("killed after {}s", timeout.as_secs()),
        },
        stdout: read(out),
        stderr,
    })
}

/// Raises the open-files limit (inherited by everything started) for the idle scenario.
pub fn raise_nofile(want: u64) -> u64 {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) else {
        return 1024;
    };
    if soft >= want {
        return soft;
    }
    if setrlimit(Resource::RLIMIT_NOFILE, want, hard.max(want)).is_ok() {
        return want;
    }
    if setrlimit(Resource::RLIMIT_NOFILE, hard, hard).is_ok() {
        return hard;
    }
    soft
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn supervisor_stops_the_whole_group_and_bounded_runs_time_out() {
        let dir = std::env::temp_dir().join(format!("strait-bench-procs-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut sup = Supervisor::default();
        // A group of two sleeps: the leader and a background child.
        let launch = Launch {
            program: "bash".into(),
            args: vec!["-c".into(), "sleep 30 & sleep 30".into()],
            env: vec![],
        };
        let pg = sup
            .spawn("sleeper", None, &launch, &dir.join("s.log"))
            .unwrap();
        assert!(sup.alive("sleeper"));
        let t = Instant::now();
        sup.stop("sleeper");
        assert!(t.elapsed() < Duration::from_secs(5));
        assert!(
            killpg(Pid::from_raw(pg), None).is_err(),
            "group still alive"
        );
        assert!(!sup.alive("sleeper"));

        let out = dir.join("t.out");
        let argv: Vec<String> = ["sleep", "5"].iter().map(|s| s.to_string()).collect();
        let t = Instant::now();
        let o = run_bounded(&argv, None, Duration::from_millis(200), &out).unwrap();
        assert!(!o.success);
        assert!(o.status.starts_with("killed"), "{}", o.status);
        assert!(t.elapsed() < Duration::from_secs(3));
        let argv: Vec<String> = ["echo", "hi"].iter().map(|s| s.to_string()).collect();
        let o = run_bounded(&argv, None, Duration::from_secs(5), &out).unwrap();
        assert!(o.success);
        assert_eq!(o.stdout, "hi\n");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
