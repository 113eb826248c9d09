//! Many slow streams held open at once through one gateway: the upstream sends a chunk every
//! 100 ms (2 s per stream), all are opened within 0.5 s, every stream must arrive whole and
//! none may stall. The same streams straight to the
//! upstream are the baseline. Worker RSS (peak, sampled) and CPU over the run are recorded.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::load::gateway;
use crate::procs::{self, Proc};
use crate::stats::summary;
use crate::Settings;

/// Pieces per stream, in this scenario and the sequential streaming one.
pub const CHUNKS: usize = 20;
const EVERY_MS: u64 = 100;
/// The streams are opened evenly over this long.
const RAMP: Duration = Duration::from_millis(500);
/// A gap this long between two chunks of a stream sending every 100 ms counts as a stall.
const STALL: Duration = Duration::from_secs(1);

struct StreamRun {
    first: Vec<Duration>,
    total: Vec<Duration>,
    max_gap: Vec<Duration>,
    complete: usize,
    stalled: usize,
    failed: usize,
    errors: Vec<String>,
}

/// What one stream looked like from the client.
pub struct Timing {
    /// Until the first chunk carrying text (a role-only chunk does not count).
    pub first: Duration,
    pub total: Duration,
    /// The longest silence between two chunks carrying text.
    pub max_gap: Duration,
    /// All [`CHUNKS`] pieces arrived, then `[DONE]`.
    pub whole: bool,
}

/// Sends one streaming request and times what comes back.
pub async fn one(http: &reqwest::Client, url: &str, body: &Value) -> Result<Timing, String> {
    let start = Instant::now();
    let mut response = http
        .post(url)
        .json(body)
        .send()
        .await
        .map_err(|e| e.to_string())?;
    if !response.status().is_success() {
        return Err(format!("{url}: status {}", response.status()));
    }
    let (mut first, mut last, mut max_gap) = (None, start, Duration::ZERO);
    let mut content = 0usize;
    let mut text = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| e.to_string())? {
        let now = Instant::now();
        // The mock's pieces start with `w`.
        let pieces = chunk
            .windows(12)
            .filter(|w| *w == b"\"content\":\"w")
            .count();
        if pieces > 0 {
            if first.is_none() {
                first = Some(now - start);
            } else {
                max_gap = max_gap.max(now - last);
            }
            last = now;
            content += pieces;
        }
        text.extend_from_slice(&chunk);
    }
    let done = text.windows(12).any(|w| w == b"data: [DONE]");
    Ok(Timing {
        first: first.unwrap_or_default(),
        total: start.elapsed(),
        max_gap,
        whole: done && content == CHUNKS,
    })
}

async fn run_all(url: &str, model: &str, n: usize) -> Result<StreamRun, String> {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .pool_max_idle_per_host(n)
        .build()
        .map_err(|e| e.to_string())?;
    let body =
        json!({"model": model, "stream": true, "messages": [{"role": "user", "content": "x"}]});
    // All n are open together (each lasts 2 s), opened over RAMP rather than in the same
    // millisecond: a thousand simultaneous SYNs measure the kernel's accept queues (and its 1 s
    // SYN retransmit), not the gateway.
    let tasks: Vec<_> = (0..n)
        .map(|i| {
            let delay = RAMP.mul_f64(i as f64 / n as f64);
            let (http, url, body) = (http.clone(), url.to_owned(), body.clone());
            tokio::spawn(async move {
                tokio::time::sleep(delay).await;
                one(&http, &url, &body).await
            })
        })
        .collect();
    let mut run = StreamRun {
        first: Vec::new(),
        total: Vec::new(),
        max_gap: Vec::new(),
        complete: 0,
        stalled: 0,
        failed: 0,
        errors: Vec::new(),
    };
    for task in tasks {
        match task.await.map_err(|e| e.to_string())? {
            Ok(t) => {
                run.first.push(t.first);
                run.total.push(t.total);
                run.max_gap.push(t.max_gap);
                run.complete += usize::from(t.whole);
                run.stalled += usize::from(t.max_gap > STALL);
                run.failed += usize::from(!t.whole);
            }
            Err(e) => {
                run.failed += 1;
                if run.errors.len() < 5 {
                    run.errors.push(e);
                }
            }
        }
    }
    Ok(run)
}

fn report(mut run: StreamRun) -> Value {
    json!({
        "complete": run.complete,
        "failed": run.failed,
        "stalled": run.stalled,
        "errors": run.errors,
        "first_content_ms": summary(&mut run.first),
        "total_ms": summary(&mut run.total),
        "max_gap_ms": summary(&mut run.max_gap),
    })
}

/// Samples `proc`'s RSS every 20 ms until `stop`; returns the peak.
fn sample_peak_rss(proc: &Proc, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<f64> {
    let pid = proc.pid();
    std::thread::spawn(move || {
        let mut peak: f64 = 0.0;
        while !stop.load(Ordering::Relaxed) {
            peak = peak.max(procs::rss_mib_of(pid));
            std::thread::sleep(Duration::from_millis(20));
        }
        peak
    })
}

pub async fn many(settings: &Settings) -> Result<Value, String> {
    let n = if settings.smoke { 50 } else { 1000 };
    let mock = procs::mock()?;
    let gw = gateway(&mock)?;
    let model = format!("pieces-{CHUNKS}-every-{EVERY_MS}ms");
    let direct = run_all(&format!("{}/v1/chat/completions", mock.url), &model, n).await?;
    let idle_rss = gw.rss_mib();
    let cpu_before = gw.cpu();
    let stop = Arc::new(AtomicBool::new(false));
    let sampler = sample_peak_rss(&gw, stop.clone());
    let started = Instant::now();
    let through = run_all(
        &format!("{}/v1/chat/completions", gw.url),
        &format!("groq/{model}"),
        n,
    )
    .await?;
    let wall = started.elapsed();
    stop.store(true, Ordering::Relaxed);
    let peak_rss = sampler.join().unwrap_or(0.0);
    let cpu = gw.cpu().saturating_sub(cpu_before);
    let result = json!({
        "streams": n,
        "chunks_per_stream": CHUNKS,
        "chunk_every_ms": EVERY_MS,
        "direct": report(direct),
        "gateway": report(through),
        "gateway_idle_rss_mib": idle_rss,
        "gateway_peak_rss_mib": peak_rss,
        "gateway_cpu_ms": (cpu.as_secs_f64() * 1000.0).round(),
        "gateway_cpu_ms_per_stream": ((cpu.as_secs_f64() * 1000.0 / n as f64) * 1000.0).round() / 1000.0,
        "wall_s": (wall.as_secs_f64() * 100.0).round() / 100.0,
    });
    println!("many streams: {result}");
    Ok(result)
}
