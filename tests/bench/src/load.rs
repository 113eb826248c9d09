//! Overhead under load and streaming latency, each measured against a direct call to the same
//! upstream in the same run. The load generator is `wrk` (Debian's package), never our own.

use std::process::Command;
use std::time::Duration;

use serde_json::{json, Value};

use crate::peer::{self, LiteLlm};
use crate::procs::{self, Proc};
use crate::stats::summary;
use crate::Settings;

/// `mana-llm serve` in front of the mock (the groq provider pointed at it).
pub fn gateway(mock: &Proc) -> Result<Proc, String> {
    let dir = procs::temp_dir("serve")?;
    procs::mana_llm(
        &["serve"],
        &[
            ("PORT", "0".into()),
            (
                "MANA_LLM_DB",
                dir.join("registry.db").to_string_lossy().into(),
            ),
            ("GROQ_API_KEY", "bench".into()),
            ("GROQ_BASE_URL", format!("{}/v1", mock.url)),
            ("MANA_LLM_CACHE", "off".into()),
        ],
    )
}

pub struct WrkResult {
    pub requests_per_sec: f64,
    pub requests: f64,
    pub latency_ms: Value,
    /// Non-2xx answers plus socket errors (connect, read, write, timeout).
    pub errors: u64,
}

/// Parses a wrk duration like `812.00us`, `1.20ms`, `2.00s`.
fn wrk_ms(text: &str) -> Option<f64> {
    let (number, factor) = if let Some(n) = text.strip_suffix("us") {
        (n, 0.001)
    } else if let Some(n) = text.strip_suffix("ms") {
        (n, 1.0)
    } else if let Some(n) = text.strip_suffix('s') {
        (n, 1000.0)
    } else {
        return None;
    };
    number
        .parse::<f64>()
        .ok()
        .map(|v| (v * factor * 1000.0).round() / 1000.0)
}

pub fn wrk(url: &str, body: &str, connections: usize, seconds: u64) -> Result<WrkResult, String> {
    let lua = format!(
        "wrk.method = \"POST\"\nwrk.headers[\"Content-Type\"] = \"application/json\"\nwrk.body = [[{body}]]\n"
    );
    wrk_lua(url, &lua, connections, seconds)
}

/// One wrk run with its own Lua script (e.g. a `request` function making every body unique).
pub fn wrk_lua(
    url: &str,
    lua: &str,
    connections: usize,
    seconds: u64,
) -> Result<WrkResult, String> {
    let dir = procs::temp_dir("wrk")?;
    let script = dir.join("post.lua");
    std::fs::write(&script, lua).map_err(|e| e.to_string())?;
    let threads = connections.clamp(1, 2);
    let output = Command::new("wrk")
        .args([
            "--latency",
            "-t",
            &threads.to_string(),
            "-c",
            &connections.to_string(),
            "-d",
            &format!("{seconds}s"),
            "-s",
        ])
        .arg(&script)
        .arg(url)
        .output()
        .map_err(|e| format!("wrk: {e} (install it: apt-get install wrk)"))?;
    let text = String::from_utf8_lossy(&output.stdout);
    let field = |prefix: &str| {
        text.lines().find_map(|l| {
            l.trim()
                .strip_prefix(prefix)
                .map(|v| v.split_whitespace().next().unwrap_or("").to_owned())
        })
    };
    let requests_per_sec = field("Requests/sec:")
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| format!("unexpected wrk output:\n{text}"))?;
    let requests = text
        .lines()
        .find_map(|l| {
            l.trim()
                .split_once(" requests in ")
                .and_then(|(n, _)| n.trim().parse::<f64>().ok())
        })
        .unwrap_or(0.0);
    let pct = |p: &str| field(p).and_then(|v| wrk_ms(&v));
    let non_2xx = field("Non-2xx or 3xx responses:")
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0);
    // "Socket errors: connect 0, read 0, write 0, timeout 12"
    let socket: u64 = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("Socket errors:"))
        .map_or(0, |rest| {
            rest.split(',')
                .filter_map(|part| part.split_whitespace().nth(1)?.parse::<u64>().ok())
                .sum()
        });
    Ok(WrkResult {
        requests_per_sec,
        requests,
        errors: non_2xx + socket,
        latency_ms: json!({"p50": pct("50%"), "p90": pct("90%"), "p99": pct("99%")}),
    })
}

/// A process whose CPU time and memory a scenario records: ours, or the peer's group.
pub trait Measured {
    fn cpu(&self) -> Duration;
    fn rss_mib(&self) -> f64;
}

impl Measured for Proc {
    fn cpu(&self) -> Duration {
        Proc::cpu(self)
    }
    fn rss_mib(&self) -> f64 {
        Proc::rss_mib(self)
    }
}

impl Measured for LiteLlm {
    fn cpu(&self) -> Duration {
        LiteLlm::cpu(self)
    }
    fn rss_mib(&self) -> f64 {
        LiteLlm::rss_mib(self)
    }
}

/// LiteLLM in front of `mock` unless `--no-peer`: installed on first use, also by the smoke
/// run, so that this path cannot rot either.
pub fn peer(settings: &Settings, mock: &Proc) -> Result<Option<LiteLlm>, String> {
    if settings.no_peer {
        return Ok(None);
    }
    let bin = peer::ensure_installed()?;
    LiteLlm::start(&bin, &mock.url).map(Some)
}

fn round3(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}

/// One wrk run through `target`, with its CPU time per request and what it added to `direct`.
fn through(
    target: &dyn Measured,
    url: &str,
    body: &str,
    connections: usize,
    seconds: u64,
    direct: &WrkResult,
) -> Result<Value, String> {
    let cpu_before = target.cpu();
    let run = wrk(url, body, connections, seconds)?;
    let cpu = target.cpu().saturating_sub(cpu_before);
    let cpu_per_request_ms = if run.requests > 0.0 {
        cpu.as_secs_f64() * 1000.0 / run.requests
    } else {
        0.0
    };
    let added = |p: &str| match (direct.latency_ms[p].as_f64(), run.latency_ms[p].as_f64()) {
        (Some(d), Some(g)) => json!(round3(g - d)),
        _ => Value::Null,
    };
    Ok(json!({
        "rps": run.requests_per_sec,
        "errors": run.errors,
        "latency_ms": run.latency_ms,
        "added_latency_ms": {"p50": added("p50"), "p99": added("p99")},
        "throughput_ratio": round3(run.requests_per_sec / direct.requests_per_sec.max(1.0)),
        "cpu_ms_per_request": (cpu_per_request_ms * 10000.0).round() / 10000.0,
        "rss_mib": target.rss_mib(),
    }))
}

pub async fn overhead(settings: &Settings) -> Result<Value, String> {
    let mock = procs::mock()?;
    let gw = gateway(&mock)?;
    let litellm = peer(settings, &mock)?;
    let seconds = if settings.smoke { 1 } else { 15 };
    let direct_url = format!("{}/v1/chat/completions", mock.url);
    let gateway_url = format!("{}/v1/chat/completions", gw.url);
    let direct_body = r#"{"model":"bench","messages":[{"role":"user","content":"hello"}]}"#;
    let gateway_body = r#"{"model":"groq/bench","messages":[{"role":"user","content":"hello"}]}"#;
    // Warm up every path (connections, allocator, the peer's workers).
    wrk(&direct_url, direct_body, 4, 1)?;
    wrk(&gateway_url, gateway_body, 4, 1)?;
    let peer_url = litellm
        .as_ref()
        .map(|p| format!("{}/v1/chat/completions", p.url));
    if let Some(url) = &peer_url {
        wrk(url, direct_body, 4, if settings.smoke { 1 } else { 3 })?;
    }
    let idle_rss = gw.rss_mib();
    let peer_idle_rss = litellm.as_ref().map(LiteLlm::rss_mib);
    let mut rows = Vec::new();
    for c in [1usize, 16, 64] {
        let direct = wrk(&direct_url, direct_body, c, seconds)?;
        let gateway = through(&gw, &gateway_url, gateway_body, c, seconds, &direct)?;
        let litellm_row = match (&litellm, &peer_url) {
            (Some(p), Some(url)) => through(p, url, direct_body, c, seconds, &direct)?,
            _ => Value::Null,
        };
        let row = json!({
            "connections": c,
            "direct": {"rps": direct.requests_per_sec, "errors": direct.errors, "latency_ms": direct.latency_ms},
            "gateway": gateway,
            "litellm": litellm_row,
        });
        println!("overhead c={c}: {row}");
        rows.push(row);
    }
    Ok(json!({
        "idle_rss_mib": idle_rss,
        "seconds_per_run": seconds,
        "litellm": litellm.as_ref().map(|p| json!({"version": p.version, "workers": p.workers, "idle_rss_mib": peer_idle_rss})),
        "rows": rows,
    }))
}

/// `n` sequential streams to `url`: time to the first content chunk and to the end.
async fn streams(
    http: &reqwest::Client,
    url: &str,
    model: &str,
    n: usize,
) -> Result<(Value, Value), String> {
    let body =
        json!({"model": model, "stream": true, "messages": [{"role": "user", "content": "x"}]});
    let (mut first, mut total) = (Vec::new(), Vec::new());
    for _ in 0..n {
        let timing = crate::streams::one(http, url, &body).await?;
        first.push(timing.first);
        total.push(timing.total);
    }
    Ok((summary(&mut first), summary(&mut total)))
}

/// [`streams`] through a proxy after a warm-up, with the proxy's CPU milliseconds per stream.
async fn measured_streams(
    target: &dyn Measured,
    http: &reqwest::Client,
    url: &str,
    model: &str,
    n: usize,
) -> Result<(Value, Value, f64), String> {
    streams(http, url, model, 5).await?;
    let before = target.cpu();
    let (first, total) = streams(http, url, model, n).await?;
    let cpu = target.cpu().saturating_sub(before);
    Ok((first, total, round3(cpu.as_secs_f64() * 1000.0 / n as f64)))
}

/// Time to first content chunk and to the end of a 20-chunk stream: direct, through mana-llm
/// and through LiteLLM, with the CPU each proxy spent per stream.
pub async fn streaming(settings: &Settings) -> Result<Value, String> {
    let mock = procs::mock()?;
    let gw = gateway(&mock)?;
    let litellm = peer(settings, &mock)?;
    let n = if settings.smoke { 10 } else { 300 };
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .map_err(|e| e.to_string())?;
    let direct_url = format!("{}/v1/chat/completions", mock.url);
    // Warm-up.
    streams(&http, &direct_url, "pieces-20", 5).await?;
    let (direct_first, direct_total) = streams(&http, &direct_url, "pieces-20", n).await?;
    let (gw_first, gw_total, gw_cpu) = measured_streams(
        &gw,
        &http,
        &format!("{}/v1/chat/completions", gw.url),
        "groq/pieces-20",
        n,
    )
    .await?;
    let litellm_result = match &litellm {
        Some(p) => {
            let url = format!("{}/v1/chat/completions", p.url);
            let (first, total, cpu) = measured_streams(p, &http, &url, "pieces-20", n).await?;
            json!({"first_content_ms": first, "total_ms": total, "cpu_ms_per_stream": cpu,
                   "version": p.version, "workers": p.workers})
        }
        None => Value::Null,
    };
    let result = json!({
        "streams": n,
        "chunks_per_stream": crate::streams::CHUNKS,
        "direct": {"first_content_ms": direct_first, "total_ms": direct_total},
        "gateway": {"first_content_ms": gw_first, "total_ms": gw_total},
        "gateway_cpu_ms_per_stream": gw_cpu,
        "litellm": litellm_result,
    });
    println!("streaming: {result}");
    Ok(result)
}

/// RSS idle, after a c=64 warm-up, and after 1,000,000 requests at c=64 on the same process:
/// growth beyond the warmed-up figure would be a leak.
pub async fn memory(settings: &Settings) -> Result<Value, String> {
    let mock = procs::mock()?;
    let gw = gateway(&mock)?;
    let url = format!("{}/v1/chat/completions", gw.url);
    let body = r#"{"model":"groq/bench","messages":[{"role":"user","content":"hello"}]}"#;
    let (goal, slice) = if settings.smoke {
        (2_000.0, 1)
    } else {
        (1_000_000.0, 20)
    };
    let idle = gw.rss_mib();
    let warm = wrk(&url, body, 64, if settings.smoke { 1 } else { 10 })?;
    let warmed = gw.rss_mib();
    let mut total = warm.requests;
    let mut samples = vec![json!({"requests": total, "rss_mib": warmed})];
    while total < goal + warm.requests {
        let run = wrk(&url, body, 64, slice)?;
        if run.requests <= 0.0 {
            return Err("wrk made no requests".into());
        }
        total += run.requests;
        samples.push(json!({"requests": total, "rss_mib": gw.rss_mib()}));
    }
    let after = gw.rss_mib();
    let growth = if warmed > 0.0 {
        ((after / warmed - 1.0) * 1000.0).round() / 10.0
    } else {
        0.0
    };
    let result = json!({
        "idle_rss_mib": idle,
        "rss_after_warmup_mib": warmed,
        "rss_after_mib": after,
        "requests": total,
        "growth_percent": growth,
        "samples": samples,
    });
    println!("memory: {result}");
    Ok(result)
}
