//! The targets under test and how to start them: ports per target, rendering the configuration
//! templates in bench/peers/ (embedded at build time), the start command of Strait, NGINX,
//! HAProxy and of any extra proxy given on the command line.
//!
//! Owns: target names, labels, port layout, config rendering, extra-target specs.
//! Must not: spawn or stop processes (procs.rs) or decide the schedule (plan.rs).

use std::fs;
use std::path::{Path, PathBuf};

use crate::cores;
use crate::plan::Scenario;

pub const HOST: &str = "127.0.0.1";
pub const BUILTIN: [&str; 4] = ["direct", "strait", "nginx", "haproxy"];
pub const NGINX_STREAM_MODULE: &str = "/usr/lib/nginx/modules/ngx_stream_module.so";

const NGINX_CONF: &str = include_str!("../peers/nginx.conf");
const NGINX_STREAM_CONF: &str = include_str!("../peers/nginx-stream.conf");
const HAPROXY_CFG: &str = include_str!("../peers/haproxy.cfg");
const STRAIT_TOML: &str = include_str!("../peers/strait.toml");

#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Ports {
    pub h1: Option<u16>,
    pub h2c: Option<u16>,
    pub l4: Option<u16>,
}

impl Ports {
    pub fn for_scenario(&self, s: Scenario) -> Option<u16> {
        match s {
            Scenario::H2c => self.h2c,
            Scenario::L4 => self.l4,
            _ => self.h1,
        }
    }

    pub fn all(&self) -> Vec<u16> {
        [self.h1, self.h2c, self.l4].into_iter().flatten().collect()
    }
}

#[derive(Clone, Debug, PartialEq)]
pub enum Kind {
    /// No proxy: the load generator talks to the origin.
    Direct,
    Strait,
    Nginx,
    Haproxy,
    /// Any other proxy: a `bash -c` command and its ports.
    Extra {
        command: String,
    },
}

#[derive(Clone, Debug, PartialEq)]
pub struct Target {
    pub name: String,
    pub kind: Kind,
    pub ports: Ports,
}

/// The origin's ports: HTTP/1.1, h2c, and the iperf3 server (TCP sink).
pub fn origin_ports(base: u16) -> Ports {
    Ports {
        h1: base.checked_add(1),
        h2c: base.checked_add(2),
        l4: base.checked_add(3),
    }
}

fn three(base: u16, off: u16) -> Ports {
    let at = |i: u16| base.checked_add(off + i);
    Ports {
        h1: at(1),
        h2c: at(2),
        l4: at(3),
    }
}

/// A built-in target by name.
pub fn builtin(name: &str, base: u16) -> Option<Target> {
    let (kind, ports) = match name {
        "direct" => (Kind::Direct, origin_ports(base)),
        "strait" => (Kind::Strait, three(base, 10)),
        "nginx" => (Kind::Nginx, three(base, 20)),
        "haproxy" => (Kind::Haproxy, three(base, 30)),
        _ => return None,
    };
    Some(Target {
        name: name.to_string(),
        kind,
        ports,
    })
}

/// Parses `NAME,h1=PORT[,h2c=PORT][,l4=PORT],cmd=COMMAND` (`cmd=` last: the rest of the string,
/// commas included, is the command).
pub fn parse_extra(spec: &str) -> Result<Target, String> {
    let (head, command) = spec
        .split_once(",cmd=")
        .ok_or_else(|| format!("extra target {spec:?}: missing ',cmd=COMMAND' at the end"))?;
    let mut parts = head.split(',');
    let name = parts.next().unwrap_or_default().trim().to_string();
    let valid = !name.is_empty()
        && name.len() <= 32
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
    if !valid {
        return Err(format!(
            "extra target {spec:?}: the name must be 1-32 of a-z 0-9 - _"
        ));
    }
    if BUILTIN.contains(&name.as_str()) {
        return Err(format!(
            "extra target {name:?}: that name is a built-in target"
        ));
    }
    let mut ports = Ports::default();
    for p in parts {
        let (k, v) = p
            .split_once('=')
            .ok_or_else(|| format!("extra target {name}: {p:?} is not key=value"))?;
        let port: u16 = v
            .trim()
            .parse()
            .ok()
            .filter(|p| *p > 0)
            .ok_or_else(|| format!("extra target {name}: {v:?} is not a port"))?;
        match k.trim() {
            "h1" => ports.h1 = Some(port),
            "h2c" => ports.h2c = Some(port),
            "l4" => ports.l4 = Some(port),
            other => {
                return Err(format!(
                    "extra target {name}: unknown key {other:?} (h1, h2c, l4, cmd)"
                ))
            }
        }
    }
    if ports.all().is_empty() {
        return Err(format!(
            "extra target {name}: give at least one of h1=, h2c=, l4="
        ));
    }
    if command.trim().is_empty() {
        return Err(format!("extra target {name}: empty command"));
    }
    Ok(Target {
        name,
        kind: Kind::Extra {
            command: command.to_string(),
        },
        ports,
    })
}

/// The display name of a target in a scenario. Strait proxies HTTP/1.1 at L7 but has no HTTP/2
/// yet, so in the h2c scenario it relays TCP bytes: "strait (L4 relay)" there, "strait" elsewhere.
pub fn label(target: &Target, scenario: Scenario) -> String {
    if target.kind == Kind::Strait && scenario == Scenario::H2c {
        format!("{} (L4 relay)", target.name)
    } else {
        target.name.clone()
    }
}

/// Whether a target can run a scenario at all (ports present; `direct` has no proxy memory).
pub fn applies(target: &Target, scenario: Scenario) -> bool {
    if scenario == Scenario::Idle && target.kind == Kind::Direct {
        return false;
    }
    target.ports.for_scenario(scenario).is_some()
}

/// Replaces every `{{KEY}}`; a placeholder left unfilled is an error.
pub fn render(template: &str, vars: &[(&str, String)]) -> Result<String, String> {
    let mut out = template.to_string();
    for (k, v) in vars {
        out = out.replace(&format!("{{{{{k}}}}}"), v);
    }
    match out.find("{{") {
        Some(i) => {
            let rest: String = out[i..].chars().take(40).collect();
            Err(format!("unfilled placeholder in template: {rest}"))
        }
        None => Ok(out),
    }
}

/// A command line ready to spawn.
#[derive(Clone, Debug, PartialEq)]
pub struct Launch {
    pub program: String,
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
}

impl Launch {
    pub fn display(&self) -> String {
        let mut s = self.program.clone();
        for a in &self.args {
            s.push(' ');
            if a.contains(' ') {
                s.push_str(&format!("'{a}'"));
            } else {
                s.push_str(a);
            }
        }
        s
    }
}

/// What a start command needs to know.
pub struct Prepare<'a> {
    /// Per-target directory for configs, pid files and temp files (world-readable).
    pub run_dir: &'a Path,
    pub workers: usize,
    /// The proxy's cores (the whole machine in the all-cores variant).
    pub cores: &'a [usize],
    pub origin: Ports,
    pub strait_bin: &'a Path,
    pub strait_flags: &'a [String],
    /// NGINX's stream module is installed (its L4 listener can exist).
    pub nginx_stream: bool,
    /// The open-files limit the proxies inherit.
    pub nofile: u64,
}

fn addr(p: Option<u16>) -> String {
    p.map_or_else(String::new, |p| format!("{HOST}:{p}"))
}

/// Writes the target's config into `p.run_dir` and returns its start command (`None` for
/// `direct`). May clear ports the target cannot serve (NGINX's L4 without the stream module).
pub fn prepare(target: &mut Target, p: &Prepare) -> Result<Option<Launch>, String> {
    let vars = |t: &Target| {
        vec![
            ("RUN_DIR", p.run_dir.display().to_string()),
            ("WORKERS", p.workers.to_string()),
            ("CORES", cores::format(p.cores)),
            ("ORIGIN_H1", addr(p.origin.h1)),
            ("ORIGIN_H2C", addr(p.origin.h2c)),
            ("ORIGIN_L4", addr(p.origin.l4)),
            ("H1_ADDR", addr(t.ports.h1)),
            ("H2C_ADDR", addr(t.ports.h2c)),
            ("L4_ADDR", addr(t.ports.l4)),
            ("NOFILE", p.nofile.to_string()),
            (
                "MAXCONN",
                (p.nofile.saturating_sub(1000) / 2)
                    .clamp(1000, 100_000)
                    .to_string(),
            ),
        ]
    };
    let write = |name: &str, text: String| -> Result<PathBuf, String> {
        let path = p.run_dir.join(name);
        fs::write(&path, text).map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(path)
    };
    let s = |x: &str| x.to_string();
    match &target.kind {
        Kind::Direct => Ok(None),
        Kind::Strait => {
            let cfg = write("strait.toml", render(STRAIT_TOML, &vars(target))?)?;
            let mut args = vec![
                s("run"),
                s("--config"),
                cfg.display().to_string(),
                s("--cores"),
                cores::format(p.cores),
            ];
            args.extend(p.strait_flags.iter().cloned());
            Ok(Some(Launch {
                program: p.strait_bin.display().to_string(),
                args,
                env: Vec::new(),
            }))
        }
        Kind::Nginx => {
            if !p.nginx_stream {
                target.ports.l4 = None;
            }
            let mut v = vars(target);
            let load = if p.nginx_stream {
                format!("load_module {NGINX_STREAM_MODULE};")
            } else {
                s("# (no libnginx-mod-stream: no L4 listener)")
            };
            v.push(("LOAD_MODULES", load));
            let mut text = render(NGINX_CONF, &v)?;
            if p.nginx_stream {
                text.push('\n');
                text.push_str(&render(NGINX_STREAM_CONF, &v)?);
            }
            let cfg = write("nginx.conf", text)?;
            let run = p.run_dir.display().to_string();
            Ok(Some(Launch {
                program: s("nginx"),
                args: vec![
                    s("-p"),
                    run.clone(),
                    s("-c"),
                    cfg.display().to_string(),
                    s("-e"),
                    format!("{run}/error.log"),
                ],
                env: Vec::new(),
            }))
        }
        Kind::Haproxy => {
            let cfg = write("haproxy.cfg", render(HAPROXY_CFG, &vars(target))?)?;
            Ok(Some(Launch {
                program: s("haproxy"),
                args: vec![s("-db"), s("-f"), cfg.display().to_string()],
                env: Vec::new(),
            }))
        }
        Kind::Extra { command } => {
            let env = vars(target)
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect();
            Ok(Some(Launch {
                program: s("bash"),
                args: vec![s("-c"), command.clone()],
                env,
            }))
        }
    }
}

/// One line per target for the results' header.
pub fn describe(target: &Target) -> String {
    match &target.kind {
        Kind::Direct => "no proxy: load generator to the built-in origin".into(),
        Kind::Strait => {
            "Strait: HTTP/1.1 reverse proxy with per-core upstream keep-alive pools; h2c and l4 \
             through L4 (TCP) relay listeners (no HTTP/2 yet); config from bench/peers/strait.toml"
                .into()
        }
        Kind::Nginx => {
            "NGINX reverse proxy, upstream keep-alive; config from bench/peers/nginx.conf".into()
        }
        Kind::Haproxy => {
            "HAProxy reverse proxy, http-reuse always; config from bench/peers/haproxy.cfg".into()
        }
        Kind::Extra { .. } => "extra target given with --extra-target".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_ports_do_not_overlap() {
        let mut all: Vec<u16> = BUILTIN
            .iter()
            .flat_map(|n| builtin(n, 18100).unwrap().ports.all())
            .collect();
        assert_eq!(all.len(), 12);
        all.sort();
        all.dedup();
        assert_eq!(all.len(), 12);
        assert_eq!(builtin("direct", 18100).unwrap().ports, origin_ports(18100));
        assert!(builtin("envoy", 18100).is_none());
        assert_eq!(builtin("strait", 65530).unwrap().ports.h1, None);
    }

    #[test]
    fn extra_target_specs() {
        let t = parse_extra("envoy,h1=19501,l4=19503,cmd=exec envoy -c a,b.yaml").unwrap();
        assert_eq!(t.name, "envoy");
        assert_eq!(
            t.ports,
            Ports {
                h1: Some(19501),
                h2c: None,
                l4: Some(19503)
            }
        );
        assert_eq!(
            t.kind,
            Kind::Extra {
                command: "exec envoy -c a,b.yaml".into()
            }
        );
        for bad in [
            "envoy,h1=1",
            "nginx,h1=1,cmd=x",
            "Bad Name,h1=1,cmd=x",
            "e,h1=0,cmd=x",
            "e,h1=x,cmd=x",
            "e,tls=1,cmd=x",
            "e,cmd=x",
            "e,h1=5,cmd= ",
            "e,h1,cmd=x",
        ] {
            assert!(parse_extra(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn labels_and_applicability() {
        let strait = builtin("strait", 18100).unwrap();
        let direct = builtin("direct", 18100).unwrap();
        assert_eq!(label(&strait, Scenario::H2c), "strait (L4 relay)");
        for sc in Scenario::ALL.into_iter().filter(|s| *s != Scenario::H2c) {
            assert_eq!(label(&strait, sc), "strait", "{sc}");
        }
        assert_eq!(label(&direct, Scenario::H2c), "direct");
        assert_eq!(label(&direct, Scenario::Small), "direct");
        assert!(!applies(&direct, Scenario::Idle));
        assert!(applies(&strait, Scenario::Idle));
        let t = parse_extra("x,h1=19999,cmd=true").unwrap();
        assert!(!applies(&t, Scenario::H2c));
        assert!(applies(&t, Scenario::Close));
    }

    #[test]
    fn render_fills_or_refuses() {
        assert_eq!(
            render("a {{X}} b {{X}}", &[("X", "1".into())]).unwrap(),
            "a 1 b 1"
        );
        assert!(render("a {{Y}}", &[("X", "1".into())]).is_err());
    }

    #[test]
    fn templates_render_completely() {
        let dir = std::env::temp_dir().join(format!("strait-bench-peers-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let bin = PathBuf::from("/bin/strait");
        let flags = vec!["--io-driver".to_string(), "epoll".to_string()];
        for name in ["strait", "nginx", "haproxy"] {
            let mut t = builtin(name, 18100).unwrap();
            let p = Prepare {
                run_dir: &dir,
                workers: 2,
                cores: &[0, 1],
                origin: origin_ports(18100),
                strait_bin: &bin,
                strait_flags: &flags,
                nginx_stream: false,
                nofile: 20000,
            };
            let launch = prepare(&mut t, &p).unwrap().unwrap();
            assert!(!launch.display().is_empty());
        }
        let toml = fs::read_to_string(dir.join("strait.toml")).unwrap();
        assert!(toml.contains("cores = \"0-1\""));
        assert!(toml.contains("address = \"127.0.0.1:18111\""));
        assert!(toml.contains("{ address = \"127.0.0.1:18101\" }"));
        // The HTTP/1.1 port is Strait's HTTP proxy; h2c and l4 stay L4 relays.
        let listener = |name: &str| {
            let start = toml
                .find(&format!("name = \"{name}\"\n"))
                .unwrap_or_else(|| panic!("no listener {name}"));
            let rest = &toml[start..];
            rest[..rest.find("\n\n").unwrap_or(rest.len())].to_string()
        };
        assert!(listener("h1").contains("protocol = \"http\""));
        assert!(listener("h1").contains("cluster = \"origin-h1\""));
        assert!(!listener("h2c").contains("protocol"));
        assert!(!listener("l4").contains("protocol"));
        let nginx = fs::read_to_string(dir.join("nginx.conf")).unwrap();
        assert!(nginx.contains("worker_processes 2;"));
        assert!(nginx.contains("keepalive 1024;"));
        assert!(!nginx.contains("stream {"));
        let haproxy = fs::read_to_string(dir.join("haproxy.cfg")).unwrap();
        assert!(haproxy.contains("nbthread 2"));
        assert!(haproxy.contains("maxconn 9500"));
        assert!(haproxy.contains("server origin1 127.0.0.1:18101"));
        let mut n = builtin("nginx", 18100).unwrap();
        let p = Prepare {
            run_dir: &dir,
            workers: 1,
            cores: &[1],
            origin: origin_ports(18100),
            strait_bin: &bin,
            strait_flags: &[],
            nginx_stream: true,
            nofile: 20000,
        };
        prepare(&mut n, &p).unwrap();
        let nginx = fs::read_to_string(dir.join("nginx.conf")).unwrap();
        assert!(nginx.starts_with("# NGINX"));
        assert!(nginx.contains("load_module"));
        assert!(nginx.contains("listen 127.0.0.1:18123 backlog=4096 reuseport;"));
        fs::remove_dir_all(&dir).unwrap();
    }
}
