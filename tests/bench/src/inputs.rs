//! Large inputs: a chat request carrying a 2 MB base64 image and one carrying a 400 kB prompt,
//! sent one at a time straight to the upstream and through the gateway; the added latency and
//! the gateway's CPU per request are what count.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::load::gateway;
use crate::procs::{self, Proc};
use crate::stats::summary;
use crate::Settings;

/// `len` bytes of base64 alphabet, varied so that nothing compresses or dedupes it.
fn base64_like(len: usize) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            char::from(ALPHABET[(state % 64) as usize])
        })
        .collect()
}

fn prompt(len: usize) -> String {
    let words = [
        "gateway ", "latency ", "stream ", "token ", "alias ", "chain ",
    ];
    let mut text = String::with_capacity(len + 16);
    let mut i = 0;
    while text.len() < len {
        text.push_str(words[i % words.len()]);
        i += 1;
    }
    text.truncate(len);
    text
}

fn image_body(model: &str) -> Vec<u8> {
    let url = format!("data:image/png;base64,{}", base64_like(2 << 20));
    let body = json!({"model": model, "messages": [{"role": "user", "content": [
        {"type": "text", "text": "What is in this picture?"},
        {"type": "image_url", "image_url": {"url": url}}
    ]}]});
    body.to_string().into_bytes()
}

fn prompt_body(model: &str) -> Vec<u8> {
    let body = json!({"model": model, "messages": [{"role": "user", "content": prompt(400_000)}]});
    body.to_string().into_bytes()
}

/// `n` sequential requests with `body`; the latency of each.
async fn timed(
    http: &reqwest::Client,
    url: &str,
    body: &[u8],
    n: usize,
) -> Result<Vec<Duration>, String> {
    let mut samples = Vec::with_capacity(n);
    for _ in 0..n {
        let start = Instant::now();
        let response = http
            .post(url)
            .header("content-type", "application/json")
            .body(body.to_vec())
            .send()
            .await
            .map_err(|e| e.to_string())?;
        let status = response.status();
        let text = response.bytes().await.map_err(|e| e.to_string())?;
        if !status.is_success() {
            return Err(format!(
                "{url}: status {status}: {}",
                String::from_utf8_lossy(&text)
            ));
        }
        samples.push(start.elapsed());
    }
    Ok(samples)
}

async fn case(
    http: &reqwest::Client,
    mock: &Proc,
    gw: &Proc,
    n: usize,
    body: fn(&str) -> Vec<u8>,
) -> Result<Value, String> {
    let direct_url = format!("{}/v1/chat/completions", mock.url);
    let gateway_url = format!("{}/v1/chat/completions", gw.url);
    let direct_body = body("bench");
    let gateway_body = body("groq/bench");
    // Warm-up: connections and buffers.
    timed(http, &direct_url, &direct_body, 2).await?;
    timed(http, &gateway_url, &gateway_body, 2).await?;
    let mut direct = timed(http, &direct_url, &direct_body, n).await?;
    let cpu_before = gw.cpu();
    let mut through = timed(http, &gateway_url, &gateway_body, n).await?;
    let cpu = gw.cpu().saturating_sub(cpu_before);
    let direct = summary(&mut direct);
    let through = summary(&mut through);
    let added = |p: &str| match (direct[p].as_f64(), through[p].as_f64()) {
        (Some(d), Some(g)) => json!(((g - d) * 1000.0).round() / 1000.0),
        _ => Value::Null,
    };
    Ok(json!({
        "body_bytes": gateway_body.len(),
        "direct": direct,
        "gateway": through,
        "added_ms": {"p50": added("p50_ms"), "p99": added("p99_ms")},
        "gateway_cpu_ms_per_request": ((cpu.as_secs_f64() * 1000.0 / n as f64) * 1000.0).round() / 1000.0,
        "gateway_rss_mib": gw.rss_mib(),
    }))
}

pub async fn large(settings: &Settings) -> Result<Value, String> {
    let n = if settings.smoke { 5 } else { 200 };
    let mock = procs::mock()?;
    let gw = gateway(&mock)?;
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .map_err(|e| e.to_string())?;
    let image = case(&http, &mock, &gw, n, image_body).await?;
    println!("large inputs, 2 MB image: {image}");
    let text = case(&http, &mock, &gw, n, prompt_body).await?;
    println!("large inputs, 400 kB prompt: {text}");
    Ok(json!({"requests": n, "image_2mb": image, "prompt_400kb": text}))
}
