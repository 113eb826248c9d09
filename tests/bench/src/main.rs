//! `mana-llm-bench [--smoke] [--no-peer] [fleet|fleet-hot-path|fleet-nginx|fleet-frozen|fleet-fifty|fleet-restart|fleet-rollout|overhead|streaming|many-streams|large-inputs|memory|all]`: starts everything it needs on
//! loopback (a real `redis-server`, the release `mana-llm` binary as control plane, workers or
//! `serve`, the `mana-llm-mock` upstream), measures, prints a Markdown report and writes
//! `target/bench/results.json`.
//!
//! Every figure that compares is measured against a direct call to the same upstream in the
//! same run. `--smoke` runs each scenario for a moment, with no thresholds: CI runs it so the
//! harness never rots.
//!
//! - [`procs`] — the processes (binary paths, free ports, the `listening on` line).
//! - [`fleet`] — registry and breaker propagation across three workers, cache-hit latency.
//! - [`scale`] — the fleet at scale: the hot path with Redis, three workers behind nginx, a
//!   frozen Redis, fifty workers, a Redis restarted empty.
//! - [`rollout`] — staged rollouts: promote, and the judge's abort, to the last worker.
//! - [`redis_stats`] — what Redis did between two readings (`INFO`).
//! - [`load`] — overhead under load (wrk), streaming time to first byte, memory over 1M requests.
//! - [`streams`] — 1,000 slow streams held open at once.
//! - [`inputs`] — a 2 MB image and a 400 kB prompt.
//! - [`peer`] — LiteLLM's proxy, measured beside us in the overhead and streaming scenarios.
//! - [`stats`] — percentiles.

mod fleet;
mod inputs;
mod load;
mod peer;
mod procs;
mod redis_stats;
mod rollout;
mod scale;
mod stats;
mod streams;

use std::process::ExitCode;

use serde_json::{json, Value};

pub struct Settings {
    pub smoke: bool,
    /// `--no-peer`: leave LiteLLM out of the overhead and streaming scenarios.
    pub no_peer: bool,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let smoke = args.iter().any(|a| a == "--smoke");
    let scenario = args
        .iter()
        .find(|a| !a.starts_with("--"))
        .map_or("all", String::as_str);
    const SCENARIOS: [&str; 13] = [
        "fleet",
        "fleet-hot-path",
        "fleet-nginx",
        "fleet-frozen",
        "fleet-fifty",
        "fleet-restart",
        "fleet-rollout",
        "overhead",
        "streaming",
        "many-streams",
        "large-inputs",
        "memory",
        "all",
    ];
    if !SCENARIOS.contains(&scenario) {
        eprintln!(
            "mana-llm-bench: unknown scenario {scenario:?}; one of: {}",
            SCENARIOS.join(", ")
        );
        return ExitCode::from(2);
    }
    let no_peer = args.iter().any(|a| a == "--no-peer");
    let settings = Settings { smoke, no_peer };
    let mut results = serde_json::Map::new();
    let run = |name: &str| scenario == "all" || scenario == name;
    let outcome: Result<(), String> = async {
        if run("fleet") {
            results.insert("fleet".into(), fleet::run(&settings).await?);
        }
        if run("fleet-hot-path") {
            results.insert("fleet_hot_path".into(), scale::hot_path(&settings).await?);
        }
        if run("fleet-nginx") {
            results.insert("fleet_nginx".into(), scale::nginx_fleet(&settings).await?);
        }
        if run("fleet-frozen") {
            results.insert("fleet_frozen".into(), scale::frozen(&settings).await?);
        }
        if run("fleet-fifty") {
            results.insert("fleet_fifty".into(), scale::fifty(&settings).await?);
        }
        if run("fleet-restart") {
            results.insert("fleet_restart".into(), scale::restart(&settings).await?);
        }
        if run("fleet-rollout") {
            results.insert("fleet_rollout".into(), rollout::run(&settings).await?);
        }
        if run("overhead") {
            results.insert("overhead".into(), load::overhead(&settings).await?);
        }
        if run("streaming") {
            results.insert("streaming".into(), load::streaming(&settings).await?);
        }
        if run("many-streams") {
            results.insert("many_streams".into(), streams::many(&settings).await?);
        }
        if run("large-inputs") {
            results.insert("large_inputs".into(), inputs::large(&settings).await?);
        }
        if run("memory") {
            results.insert("memory".into(), load::memory(&settings).await?);
        }
        Ok(())
    }
    .await;
    if let Err(e) = outcome {
        eprintln!("mana-llm-bench: {e}");
        return ExitCode::FAILURE;
    }
    let report = json!({"smoke": smoke, "run": procs::provenance(), "machine": procs::machine(), "results": Value::Object(results)});
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/bench");
    let _ = std::fs::create_dir_all(&dir);
    let path = dir.join(if smoke { "smoke.json" } else { "results.json" });
    match serde_json::to_string_pretty(&report) {
        Ok(text) => {
            if let Err(e) = std::fs::write(&path, text) {
                eprintln!("mana-llm-bench: cannot write {}: {e}", path.display());
                return ExitCode::FAILURE;
            }
            println!("results written to {}", path.display());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("mana-llm-bench: {e}");
            ExitCode::FAILURE
        }
    }
}
