//! Fleet figures: registry propagation (push → the last of three workers serving it), breaker
//! propagation (the tripping failure on worker A → B and C skipping the provider), and the
//! latency of a cache hit from Redis and from the in-process tier next to a direct call.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::procs::{self, Proc};
use crate::stats::summary;
use crate::Settings;

const ALIASES: &str = "aliases:\n  mana/a: {chain: [echo/v0]}\n";

struct Fleet {
    _redis: Proc,
    _mock: Proc,
    control_plane: Proc,
    workers: Vec<Proc>,
    mock_url: String,
}

async fn start() -> Result<Fleet, String> {
    let (redis, redis_url) = procs::redis()?;
    let mock = procs::mock()?;
    let control_plane = procs::control_plane("fleet", ALIASES, &redis_url, &[])?;
    let mut workers = Vec::new();
    for i in 0..3 {
        // Workers 0 and 1 have no in-process cache tier, so their hits come from Redis.
        let local_entries = if i == 2 { "1000" } else { "0" };
        workers.push(procs::mana_llm(
            &["worker"],
            &[
                ("MANA_LLM_LISTEN", "127.0.0.1:0".into()),
                ("REDIS_URL", redis_url.clone()),
                ("MANA_LLM_WORKER_ID", format!("w{i}")),
                ("MANA_LLM_SYNC_INTERVAL", "5".into()),
                ("OLLAMA_URL", mock.url.clone()),
                ("GROQ_API_KEY", "bench".into()),
                ("GROQ_BASE_URL", format!("{}/v1", mock.url)),
                ("MANA_LLM_BREAKER_OPEN_SECONDS", "0.5".into()),
                ("MANA_LLM_CACHE_LOCAL_ENTRIES", local_entries.into()),
            ],
        )?);
    }
    let fleet = Fleet {
        _redis: redis,
        mock_url: mock.url.clone(),
        _mock: mock,
        control_plane,
        workers,
    };
    all_ready(&fleet.workers).await?;
    Ok(fleet)
}

pub(crate) fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap_or_default()
}

pub(crate) async fn get(url: &str) -> (u16, Value) {
    match client().get(url).send().await {
        Ok(r) => {
            let status = r.status().as_u16();
            (status, r.json().await.unwrap_or(Value::Null))
        }
        Err(_) => (0, Value::Null),
    }
}

pub(crate) async fn wait_for<F, Fut>(deadline: Duration, mut check: F) -> Result<(), String>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    while start.elapsed() < deadline {
        if check().await {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_micros(500)).await;
    }
    Err("timed out waiting for the fleet".into())
}

/// Waits until every worker answers `/ready` with 200 (it serves a registry version).
pub(crate) async fn all_ready(workers: &[Proc]) -> Result<(), String> {
    for w in workers {
        wait_for(Duration::from_secs(15), || async {
            get(&format!("{}/ready", w.url)).await.0 == 200
        })
        .await?;
    }
    Ok(())
}

/// Push → every worker's /ready reports the version.
async fn registry_propagation(fleet: &Fleet, rounds: usize) -> Result<Value, String> {
    let mut samples = Vec::new();
    for n in 1..=rounds {
        let yaml = format!("aliases:\n  mana/a: {{chain: [echo/v{n}]}}\n");
        let start = Instant::now();
        let r = client()
            .post(format!("{}/admin/v1/registry", fleet.control_plane.url))
            .body(yaml)
            .send()
            .await
            .map_err(|e| e.to_string())?;
        let version = r.json::<Value>().await.map_err(|e| e.to_string())?["version"]
            .as_u64()
            .ok_or("no version")?;
        for w in &fleet.workers {
            let url = format!("{}/ready", w.url);
            wait_for(Duration::from_secs(10), || async {
                get(&url).await.1["registry_version"] == version
            })
            .await?;
        }
        samples.push(start.elapsed());
    }
    Ok(summary(&mut samples))
}

/// Two failures through worker 0 open `ollama`; time until workers 1 and 2 report it open.
/// Then it recovers through a successful half-open trial, and the next round starts.
async fn breaker_propagation(fleet: &Fleet, rounds: usize) -> Result<Value, String> {
    let mut samples = Vec::new();
    let chat = |url: String, model: &'static str| async move {
        let body = json!({"model": model, "messages": [{"role": "user", "content": "x"}]});
        client()
            .post(format!("{url}/v1/chat/completions"))
            .json(&body)
            .send()
            .await
            .map(|r| r.status().as_u16())
    };
    for _ in 0..rounds {
        let a = fleet.workers[0].url.clone();
        chat(a.clone(), "ollama/status-500")
            .await
            .map_err(|e| e.to_string())?;
        chat(a.clone(), "ollama/status-500")
            .await
            .map_err(|e| e.to_string())?;
        let start = Instant::now();
        for w in &fleet.workers[1..] {
            let url = format!("{}/v1/health", w.url);
            wait_for(Duration::from_secs(5), || async {
                get(&url).await.1["providers"]["ollama"]["status"] == "open"
            })
            .await?;
        }
        samples.push(start.elapsed());
        // Recover: wait for half-open, then one successful trial closes it fleet-wide.
        let health = format!("{}/v1/health", fleet.workers[0].url);
        wait_for(Duration::from_secs(5), || async {
            get(&health).await.1["providers"]["ollama"]["status"] == "half_open"
        })
        .await?;
        wait_for(Duration::from_secs(5), || async {
            let _ = chat(a.clone(), "ollama/bench").await;
            get(&health).await.1["providers"]["ollama"]["status"] == "healthy"
        })
        .await?;
    }
    Ok(summary(&mut samples))
}

async fn timed_posts(url: &str, body: &Value, n: usize) -> Result<Vec<Duration>, String> {
    let http = client();
    let mut samples = Vec::with_capacity(n);
    for _ in 0..n {
        let start = Instant::now();
        let r = http
            .post(url)
            .json(body)
            .send()
            .await
            .map_err(|e| e.to_string())?;
        r.bytes().await.map_err(|e| e.to_string())?;
        samples.push(start.elapsed());
    }
    Ok(samples)
}

async fn cache_latency(fleet: &Fleet, n: usize) -> Result<Value, String> {
    let body = json!({"model": "groq/bench-cache", "temperature": 0, "messages": [{"role": "user", "content": "cached"}]});
    let direct_body = json!({"model": "bench-cache", "temperature": 0, "messages": [{"role": "user", "content": "cached"}]});
    // Fill the cache through worker 0.
    timed_posts(
        &format!("{}/v1/chat/completions", fleet.workers[0].url),
        &body,
        1,
    )
    .await?;
    let mut direct = timed_posts(
        &format!("{}/v1/chat/completions", fleet.mock_url),
        &direct_body,
        n,
    )
    .await?;
    let mut redis_hits = timed_posts(
        &format!("{}/v1/chat/completions", fleet.workers[1].url),
        &body,
        n,
    )
    .await?;
    let mut local_hits = timed_posts(
        &format!("{}/v1/chat/completions", fleet.workers[2].url),
        &body,
        n,
    )
    .await?;
    Ok(json!({
        "direct_upstream": summary(&mut direct),
        "hit_via_redis": summary(&mut redis_hits),
        "hit_via_local_tier": summary(&mut local_hits),
    }))
}

pub async fn run(settings: &Settings) -> Result<Value, String> {
    let fleet = start().await?;
    let (pushes, trips, hits) = if settings.smoke {
        (3, 1, 20)
    } else {
        (60, 20, 500)
    };
    let registry = registry_propagation(&fleet, pushes).await?;
    println!("registry propagation (push → 3 workers): {registry}");
    let breaker = breaker_propagation(&fleet, trips).await?;
    println!("breaker propagation (trip on A → B and C): {breaker}");
    let cache = cache_latency(&fleet, hits).await?;
    println!("cache: {cache}");
    Ok(json!({"registry_propagation": registry, "breaker_propagation": breaker, "cache": cache}))
}
