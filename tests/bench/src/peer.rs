//! LiteLLM's proxy, the peer the overhead and streaming scenarios also measure: installed from
//! PyPI into a throwaway virtualenv under `target/`, pointed at the same mock upstream, started
//! with as many workers as the machine has cores, and stopped with its whole process group.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::procs;

/// The version the harness installs, so that a rerun measures the same code.
pub const VERSION: &str = "1.108.7";

pub struct LiteLlm {
    child: Child,
    pub url: String,
    pub version: String,
    pub workers: usize,
}

fn venv() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/litellm-venv")
}

fn run(cmd: &mut Command) -> Result<String, String> {
    let output = cmd
        .output()
        .map_err(|e| format!("cannot run {cmd:?}: {e}"))?;
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned())
    } else {
        Err(format!(
            "{cmd:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
                .lines()
                .rev()
                .take(5)
                .collect::<Vec<_>>()
                .join(" | ")
        ))
    }
}

/// The venv's `litellm`, installed first when missing.
pub fn ensure_installed() -> Result<PathBuf, String> {
    let dir = venv();
    let bin = dir.join("bin/litellm");
    if bin.exists() {
        return Ok(bin);
    }
    println!(
        "installing litellm[proxy]=={VERSION} into {} …",
        dir.display()
    );
    run(Command::new("python3").arg("-m").arg("venv").arg(&dir))?;
    run(Command::new(dir.join("bin/pip")).args([
        "install",
        "--quiet",
        "--disable-pip-version-check",
        &format!("litellm[proxy]=={VERSION}"),
    ]))?;
    Ok(bin)
}

fn config(upstream: &str) -> String {
    let models = ["bench", "pieces-20"]
        .iter()
        .map(|m| {
            format!(
                "  - model_name: {m}\n    litellm_params:\n      model: openai/{m}\n      api_base: {upstream}/v1\n      api_key: bench\n"
            )
        })
        .collect::<String>();
    format!(
        "model_list:\n{models}litellm_settings:\n  telemetry: false\n  drop_params: true\n  set_verbose: false\n  json_logs: false\ngeneral_settings:\n  disable_spend_logs: true\n  disable_error_logs: true\n"
    )
}

impl LiteLlm {
    pub fn start(bin: &PathBuf, upstream: &str) -> Result<LiteLlm, String> {
        let dir = procs::temp_dir("litellm")?;
        let path = dir.join("config.yaml");
        std::fs::write(&path, config(upstream)).map_err(|e| e.to_string())?;
        let port = procs::free_port()?;
        let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
        let python = bin.with_file_name("python");
        let version = run(Command::new(&python).args([
            "-c",
            "import importlib.metadata as m; print(m.version('litellm'))",
        ]))?;
        let mut cmd = Command::new(bin);
        cmd.arg("--config")
            .arg(&path)
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .args(["--num_workers", &workers.to_string()])
            // No master key, like mana-llm without client keys: recent versions refuse to
            // start that way unless told it is deliberate.
            .env(
                "LITELLM_DANGEROUSLY_PERMIT_WEAK_OR_UNSET_MASTER_KEY",
                "true",
            )
            .env("LITELLM_LOCAL_MODEL_COST_MAP", "True")
            .env("LITELLM_LOG", "ERROR")
            // Opt-in in this version; switched off outright (LITELLM_TELEMETRY_ + `disabled`).
            .env("LITELLM_TELEMETRY_DISABLED", "true")
            .env("DISABLE_ADMIN_UI", "True")
            .current_dir(&dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        let child = cmd
            .spawn()
            .map_err(|e| format!("cannot start litellm: {e}"))?;
        let proxy = LiteLlm {
            child,
            url: format!("http://127.0.0.1:{port}"),
            version,
            workers,
        };
        proxy.wait_ready()?;
        Ok(proxy)
    }

    fn wait_ready(&self) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(120);
        let addr = self.url.trim_start_matches("http://").to_owned();
        loop {
            let ready = std::net::TcpStream::connect(&addr).is_ok_and(|mut s| {
                use std::io::{Read, Write};
                let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
                let request = format!(
                    "GET /health/liveliness HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
                );
                let mut answer = String::new();
                s.write_all(request.as_bytes()).is_ok()
                    && s.read_to_string(&mut answer).is_ok()
                    && answer.starts_with("HTTP/1.1 200")
            });
            if ready {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err("litellm did not become ready within 120 s".into());
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// The pids of the proxy's process group (the launcher and its workers).
    fn pids(&self) -> Vec<u32> {
        let group = self.child.id();
        let Ok(entries) = std::fs::read_dir("/proc") else {
            return Vec::new();
        };
        entries
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
            // After the command name: state, ppid, pgrp.
            .filter(|pid| procs::stat_field(*pid, 2) == Some(u64::from(group)))
            .collect()
    }

    /// CPU time of the whole group.
    pub fn cpu(&self) -> Duration {
        self.pids().into_iter().map(procs::cpu_of).sum()
    }

    /// Resident memory of the whole group, in MiB.
    pub fn rss_mib(&self) -> f64 {
        let total: f64 = self.pids().into_iter().map(procs::rss_mib_of).sum();
        (total * 10.0).round() / 10.0
    }
}

impl Drop for LiteLlm {
    fn drop(&mut self) {
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
        let _ = self.child.wait();
    }
}
