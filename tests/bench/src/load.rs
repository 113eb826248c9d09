//! Overhead under load and streaming latency, each measured against a direct call to the same
//! upstream in the same run. The load generator is `wrk` (Debian's package), never our own.

use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

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

struct WrkResult {
    requests_per_sec: f64,
    requests: f64,
    latency_ms: Value,
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

fn wrk(url: &str, body: &str, connections: usize, seconds: u64) -> Result<WrkResult, String> {
    let dir = procs::temp_dir("wrk")?;
    let script = dir.join("post.lua");
    let lua = format!(
        "wrk.method = \"POST\"\nwrk.headers[\"Content-Type\"] = \"application/json\"\nwrk.body = [[{body}]]\n"
    );
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
    Ok(WrkResult {
        requests_per_sec,
        requests,
        latency_ms: json!({"p50": pct("50%"), "p90": pct("90%"), "p99": pct("99%")}),
    })
}

pub async fn overhead(settings: &Settings) -> Result<Value, String> {
    let mock = procs::mock()?;
    let gw = gateway(&mock)?;
    let seconds = if settings.smoke { 1 } else { 15 };
    let direct_url = format!("{}/v1/chat/completions", mock.url);
    let gateway_url = format!("{}/v1/chat/completions", gw.url);
    let direct_body = r#"{"model":"bench","messages":[{"role":"user","content":"hello"}]}"#;
    let gateway_body = r#"{"model":"groq/bench","messages":[{"role":"user","content":"hello"}]}"#;
    // Warm up both paths (connections, allocator).
    wrk(&direct_url, direct_body, 4, 1)?;
    wrk(&gateway_url, gateway_body, 4, 1)?;
    let idle_rss = gw.rss_mib();
    let mut rows = Vec::new();
    for c in [1usize, 16, 64] {
        let direct = wrk(&direct_url, direct_body, c, seconds)?;
        let cpu_before = gw.cpu();
        let through = wrk(&gateway_url, gateway_body, c, seconds)?;
        let cpu = gw.cpu().saturating_sub(cpu_before);
        let cpu_per_request_ms = if through.requests > 0.0 {
            cpu.as_secs_f64() * 1000.0 / through.requests
        } else {
            0.0
        };
        let added = |p: &str| match (
            direct.latency_ms[p].as_f64(),
            through.latency_ms[p].as_f64(),
        ) {
            (Some(d), Some(g)) => json!(((g - d) * 1000.0).round() / 1000.0),
            _ => Value::Null,
        };
        let row = json!({
            "connections": c,
            "direct": {"rps": direct.requests_per_sec, "latency_ms": direct.latency_ms},
            "gateway": {"rps": through.requests_per_sec, "latency_ms": through.latency_ms, "rss_mib": gw.rss_mib()},
            "added_latency_ms": {"p50": added("p50"), "p99": added("p99")},
            "throughput_ratio": ((through.requests_per_sec / direct.requests_per_sec.max(1.0)) * 1000.0).round() / 1000.0,
            "gateway_cpu_ms_per_request": (cpu_per_request_ms * 10000.0).round() / 10000.0,
        });
        println!("overhead c={c}: {row}");
        rows.push(row);
    }
    Ok(json!({"idle_rss_mib": idle_rss, "seconds_per_run": seconds, "rows": rows}))
}

/// Time to first content chunk and to the end of a 20-chunk stream, direct vs gateway.
pub async fn streaming(settings: &Settings) -> Result<Value, String> {
    let mock = procs::mock()?;
    let gw = gateway(&mock)?;
    let n = if settings.smoke { 10 } else { 300 };
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .map_err(|e| e.to_string())?;
    let run = |url: String, model: &'static str| {
        let http = http.clone();
        async move {
            let body = json!({"model": model, "stream": true, "messages": [{"role": "user", "content": "x"}]});
            let (mut first, mut total) = (Vec::new(), Vec::new());
            for _ in 0..n {
                let start = Instant::now();
                let mut response = http
                    .post(&url)
                    .json(&body)
                    .send()
                    .await
                    .map_err(|e| e.to_string())?;
                let mut seen_first = false;
                while let Some(chunk) = response.chunk().await.map_err(|e| e.to_string())? {
                    if !seen_first && chunk.windows(7).any(|w| w == b"content") {
                        first.push(start.elapsed());
                        seen_first = true;
                    }
                }
                total.push(start.elapsed());
            }
            Ok::<_, String>((summary(&mut first), summary(&mut total)))
        }
    };
    let (direct_first, direct_total) =
        run(format!("{}/v1/chat/completions", mock.url), "pieces-20").await?;
    let cpu_before = gw.cpu();
    let (gw_first, gw_total) =
        run(format!("{}/v1/chat/completions", gw.url), "groq/pieces-20").await?;
    let cpu = gw.cpu().saturating_sub(cpu_before);
    let result = json!({
        "streams": n,
        "chunks_per_stream": 20,
        "direct": {"first_content_ms": direct_first, "total_ms": direct_total},
        "gateway": {"first_content_ms": gw_first, "total_ms": gw_total},
        "gateway_cpu_ms_per_stream": ((cpu.as_secs_f64() * 1000.0 / n as f64) * 1000.0).round() / 1000.0,
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
