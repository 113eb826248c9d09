//! The processes a benchmark runs: the release binaries of this workspace and `redis-server`,
//! each on a free loopback port, killed on drop.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// `target/<profile>/<name>` beside this harness's own executable.
pub fn binary(name: &str) -> Result<PathBuf, String> {
    let me = std::env::current_exe().map_err(|e| e.to_string())?;
    let dir = me.parent().ok_or("no executable directory")?;
    let path = dir.join(name);
    if path.exists() {
        Ok(path)
    } else {
        Err(format!(
            "{} not built: run `cargo build --release --workspace --bins` first",
            path.display()
        ))
    }
}

pub struct Proc {
    child: Child,
    pub url: String,
}

/// Log lines a process wrote to stderr that contained a needle, each with when it was read.
pub type Lines = Arc<Mutex<Vec<(Instant, String)>>>;

impl Proc {
    /// Starts `cmd` and waits for its `listening on http://…` line.
    pub fn start(cmd: Command) -> Result<Proc, String> {
        Self::start_capturing(cmd, None)
    }

    /// [`Proc::start`], keeping the stderr lines that contain `needle` (timestamped as they
    /// are read) in `lines`.
    pub fn start_capturing(
        mut cmd: Command,
        capture: Option<(&'static str, Lines)>,
    ) -> Result<Proc, String> {
        cmd.stdout(Stdio::piped()).stderr(if capture.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        });
        let mut child = cmd
            .spawn()
            .map_err(|e| format!("cannot start {cmd:?}: {e}"))?;
        if let (Some((needle, lines)), Some(stderr)) = (capture, child.stderr.take()) {
            std::thread::spawn(move || {
                for line in BufReader::new(stderr).lines() {
                    let Ok(line) = line else { break };
                    if line.contains(needle) {
                        let at = Instant::now();
                        if let Ok(mut l) = lines.lock() {
                            l.push((at, line));
                        }
                    }
                }
            });
        }
        let stdout = child.stdout.take().ok_or("no stdout")?;
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            if let Some(Ok(line)) = lines.next() {
                let _ = tx.send(line);
            }
            for _ in lines {}
        });
        let line = rx
            .recv_timeout(Duration::from_secs(20))
            .map_err(|_| format!("{cmd:?} did not start"))?;
        let url = line
            .strip_prefix("listening on ")
            .ok_or_else(|| format!("unexpected first line {line:?}"))?
            .to_owned();
        Ok(Proc { child, url })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// CPU time (user + system) the process has used so far.
    pub fn cpu(&self) -> Duration {
        cpu_of(self.pid())
    }

    /// Resident memory in MiB.
    pub fn rss_mib(&self) -> f64 {
        rss_mib_of(self.pid())
    }

    /// Sends signal `name` (`STOP`, `CONT`, `KILL`…) with kill(1).
    pub fn signal(&self, name: &str) -> Result<(), String> {
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.pid().to_string())
            .status()
            .map_err(|e| format!("kill: {e}"))?;
        if status.success() {
            Ok(())
        } else {
            Err(format!("kill -{name} {} failed", self.pid()))
        }
    }
}

/// Field `i` of `/proc/<pid>/stat`, counted from the state field (0) after the command
/// name, which may itself contain spaces; `None` when the process is gone.
pub fn stat_field(pid: u32, i: usize) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, rest) = stat.rsplit_once(')')?;
    rest.split_whitespace().nth(i)?.parse().ok()
}

/// CPU time (user + system) process `pid` has used so far (zero when it is gone).
pub fn cpu_of(pid: u32) -> Duration {
    // utime and stime are fields 14 and 15 of stat(5), 11 and 12 here; 100 ticks/s.
    let ticks = |i| stat_field(pid, i).unwrap_or(0);
    Duration::from_millis((ticks(11) + ticks(12)) * 10)
}

/// Resident memory of process `pid` in MiB (0 when it is gone).
pub fn rss_mib_of(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|kb| kb.parse::<f64>().ok())
        .map_or(0.0, |kb| (kb / 1024.0 * 10.0).round() / 10.0)
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn free_port() -> Result<u16, String> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    Ok(listener.local_addr().map_err(|e| e.to_string())?.port())
}

pub fn temp_dir(name: &str) -> Result<PathBuf, String> {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_err(|e| e.to_string())?
        .as_nanos();
    let dir = std::env::temp_dir().join(format!("mana-llm-bench-{name}-{nanos}"));
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    Ok(dir)
}

/// A `redis-server` on a free port.
pub fn redis() -> Result<(Proc, String), String> {
    let port = free_port()?;
    let proc = redis_on(port)?;
    let url = proc.url.clone();
    Ok((proc, url))
}

/// A `redis-server` (no persistence: a restart is empty) on `port`, once it accepts connections.
pub fn redis_on(port: u16) -> Result<Proc, String> {
    let mut cmd = Command::new("redis-server");
    cmd.args([
        "--port",
        &port.to_string(),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
    ]);
    cmd.stdout(Stdio::null()).stderr(Stdio::null());
    let child = cmd.spawn().map_err(|e| format!("redis-server: {e}"))?;
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if Instant::now() > deadline {
            return Err("redis-server did not start".into());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    Ok(Proc {
        child,
        url: format!("redis://127.0.0.1:{port}"),
    })
}

/// The mock upstream in its default (fast) mode.
pub fn mock() -> Result<Proc, String> {
    let mut cmd = Command::new(binary("mana-llm-mock")?);
    cmd.args(["--listen", "127.0.0.1:0"]);
    Proc::start(cmd)
}

/// `mana-llm <args>` with a clean environment plus `env`.
pub fn mana_llm(args: &[&str], env: &[(&str, String)]) -> Result<Proc, String> {
    mana_llm_capturing(args, env, None)
}

/// [`mana_llm`], keeping the stderr lines that contain a needle (see [`Proc::start_capturing`]).
pub fn mana_llm_capturing(
    args: &[&str],
    env: &[(&str, String)],
    capture: Option<(&'static str, Lines)>,
) -> Result<Proc, String> {
    let mut cmd = Command::new(binary("mana-llm")?);
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("LOG_LEVEL", "warn")
        .env("MANA_LLM_PROBE", "off");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.args(args);
    Proc::start_capturing(cmd, capture)
}

/// `mana-llm control-plane` on a free port with its own event log in a fresh temp dir named
/// `name`, seeded from `aliases` (YAML), publishing to `redis_url`; `env` adds to it.
pub fn control_plane(
    name: &str,
    aliases: &str,
    redis_url: &str,
    env: &[(&str, String)],
) -> Result<Proc, String> {
    let dir = temp_dir(name)?;
    let aliases_file = dir.join("aliases.yaml");
    std::fs::write(&aliases_file, aliases).map_err(|e| e.to_string())?;
    let mut all = vec![
        ("MANA_LLM_CONTROL_PLANE_LISTEN", "127.0.0.1:0".to_owned()),
        (
            "MANA_LLM_DB",
            dir.join("registry.db").to_string_lossy().into_owned(),
        ),
        (
            "MANA_LLM_ALIASES",
            aliases_file.to_string_lossy().into_owned(),
        ),
        ("REDIS_URL", redis_url.to_owned()),
    ];
    all.extend(env.iter().cloned());
    mana_llm(&["control-plane"], &all)
}

/// The output of `cmd args…`, trimmed; `None` when it cannot run or fails.
fn output_of(cmd: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(cmd).args(args).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// When and on which commit the run happened, for the report.
pub fn provenance() -> Value {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");
    json!({
        "date": output_of("date", &["-u", "+%Y-%m-%dT%H:%M:%SZ"]),
        "commit": output_of("git", &["-C", dir, "rev-parse", "--short", "HEAD"]),
        "uncommitted_changes": output_of("git", &["-C", dir, "status", "--porcelain"]).map(|s| !s.is_empty()),
    })
}

/// Cores and CPU model, for the report.
pub fn machine() -> Value {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|m| m.trim_start_matches([' ', '\t', ':']).to_owned());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    json!({"cores": cores, "cpu": model})
}
