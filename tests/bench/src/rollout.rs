//! Staged rollouts: how long after a promotion, and after the judge's automatic abort, the
//! last of four workers serves the result. One control plane, four workers (heartbeats every
//! 200 ms), one Redis, the mock upstream.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};

use crate::fleet::{all_ready, client, get, wait_for};
use crate::procs::{self, Proc};
use crate::stats::summary;
use crate::Settings;

const WORKERS: usize = 4;

struct Fleet {
    _redis: Proc,
    _mock: Proc,
    control_plane: Proc,
    workers: Vec<Proc>,
}

async fn start() -> Result<Fleet, String> {
    let (redis, redis_url) = procs::redis()?;
    let mock = procs::mock()?;
    let control_plane = procs::control_plane(
        "rollout",
        "aliases:\n  mana/a: {chain: [echo/v0]}\n",
        &redis_url,
        &[],
    )?;
    let mut workers = Vec::new();
    for i in 0..WORKERS {
        workers.push(procs::mana_llm(
            &["worker"],
            &[
                ("MANA_LLM_LISTEN", "127.0.0.1:0".into()),
                ("REDIS_URL", redis_url.clone()),
                ("MANA_LLM_WORKER_ID", format!("w{i}")),
                ("MANA_LLM_HEARTBEAT_INTERVAL", "0.2".into()),
                ("OLLAMA_URL", mock.url.clone()),
            ],
        )?);
    }
    let fleet = Fleet {
        _redis: redis,
        _mock: mock,
        control_plane,
        workers,
    };
    all_ready(&fleet.workers).await?;
    let fleet_url = format!("{}/admin/v1/fleet", fleet.control_plane.url);
    wait_for(Duration::from_secs(15), || async {
        get(&fleet_url).await.1["live"] == WORKERS
    })
    .await?;
    Ok(fleet)
}

async fn post(url: String, body: Value) -> Result<Value, String> {
    let r = client()
        .post(url)
        .body(body.as_str().map_or(body.to_string(), str::to_owned))
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let status = r.status();
    let json: Value = r.json().await.map_err(|e| e.to_string())?;
    if !status.is_success() {
        return Err(format!("{status}: {json}"));
    }
    Ok(json)
}

/// The registry version each worker serves.
async fn served(fleet: &Fleet) -> Vec<u64> {
    let mut out = Vec::with_capacity(fleet.workers.len());
    for w in &fleet.workers {
        out.push(
            get(&format!("{}/ready", w.url)).await.1["registry_version"]
                .as_u64()
                .unwrap_or(0),
        );
    }
    out
}

/// Starts a 50 % canary of `yaml` (`query` adds to it) and waits until its cohort serves it.
async fn start_canary(fleet: &Fleet, yaml: &str, query: &str) -> Result<u64, String> {
    let url = format!(
        "{}/admin/v1/registry?canary=50%25{query}",
        fleet.control_plane.url
    );
    let started = post(url, Value::String(yaml.to_owned())).await?;
    let candidate = started["version"].as_u64().ok_or("no candidate version")?;
    wait_for(Duration::from_secs(10), || async {
        served(fleet)
            .await
            .iter()
            .filter(|v| **v == candidate)
            .count()
            == WORKERS / 2
    })
    .await?;
    Ok(candidate)
}

/// Promote → the last worker serving the candidate.
async fn promotions(fleet: &Fleet, rounds: usize) -> Result<Value, String> {
    let mut samples = Vec::new();
    for n in 0..rounds {
        let yaml = format!("aliases:\n  mana/a: {{chain: [echo/p{n}]}}\n");
        let candidate = start_canary(fleet, &yaml, "").await?;
        let start = Instant::now();
        post(
            format!("{}/admin/v1/rollout/promote", fleet.control_plane.url),
            json!({}),
        )
        .await?;
        wait_for(Duration::from_secs(10), || async {
            served(fleet).await.iter().all(|v| *v == candidate)
        })
        .await?;
        samples.push(start.elapsed());
    }
    Ok(summary(&mut samples))
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// A candidate whose chain fails, traffic to every worker, the judge aborting it: from the
/// abort's record in the log to the last worker serving stable again (observed between
/// rounds of traffic, so an upper bound).
async fn judge_aborts(fleet: &Fleet, rounds: usize) -> Result<Value, String> {
    let mut samples = Vec::new();
    let chat = json!({"model": "mana/a", "messages": [{"role": "user", "content": "x"}]});
    for _ in 0..rounds {
        let stable = served(fleet).await.into_iter().min().unwrap_or(0);
        let failing = "aliases:\n  mana/a: {chain: [ollama/status-503]}\n";
        start_canary(fleet, failing, "&auto=true&soak=1h&min_requests=5").await?;
        let deadline = Instant::now() + Duration::from_secs(30);
        let back_at = loop {
            if Instant::now() > deadline {
                return Err("the judge did not abort the failing candidate".into());
            }
            for w in &fleet.workers {
                let _ = client()
                    .post(format!("{}/v1/chat/completions", w.url))
                    .json(&chat)
                    .send()
                    .await;
            }
            if served(fleet).await.iter().all(|v| *v == stable) {
                break unix_now();
            }
        };
        let status = get(&format!("{}/admin/v1/rollout", fleet.control_plane.url))
            .await
            .1;
        let decided = status["last"]["at"]
            .as_f64()
            .ok_or_else(|| format!("no decision time: {status}"))?;
        if status["last"]["decided_by"] != "judge" {
            return Err(format!("not decided by the judge: {status}"));
        }
        samples.push(Duration::from_secs_f64((back_at - decided).max(0.0)));
    }
    Ok(summary(&mut samples))
}

pub async fn run(settings: &Settings) -> Result<Value, String> {
    let fleet = start().await?;
    let (promote_rounds, abort_rounds) = if settings.smoke { (1, 1) } else { (20, 10) };
    let promote = promotions(&fleet, promote_rounds).await?;
    println!("rollout: promote → the last of {WORKERS} workers serving it: {promote}");
    let abort = judge_aborts(&fleet, abort_rounds).await?;
    println!(
        "rollout: the judge's abort (logged) → the last of {WORKERS} workers on stable: {abort}"
    );
    Ok(json!({"promote_to_last_worker": promote, "judge_abort_to_last_worker": abort}))
}
