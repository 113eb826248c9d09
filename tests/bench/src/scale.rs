//! The fleet at scale (issue 12): what one Redis and one control plane cost and carry.
//!
//! - [`hot_path`] (`fleet-hot-path`) — one worker with Redis against `serve` without, same
//!   mock, same run: requests/s, CPU per request, and what Redis did per request.
//! - [`nginx`] (`fleet-nginx`) — three workers behind the deploy nginx config, cache off and on,
//!   against one worker.
//! - [`frozen`] (`fleet-frozen`) — Redis SIGSTOPped under a steady 100 req/s.
//! - [`fifty`] (`fleet-fifty`) — fifty subscribed workers: propagation, steady-state cost.
//! - [`restart`] (`fleet-restart`) — Redis SIGKILLed and restarted empty.

use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::load::{self, WrkResult};
use crate::procs::{self, Proc};
use crate::redis_stats;
use crate::stats::summary;
use crate::Settings;

/// The worker's log line when it installs a registry version (data-plane/src/server.rs).
const INSTALLED: &str = "alias registry version installed";
const FLEET_KEY: &str = "bench-fleet-key-0123456789abcdef";
const ALIASES: &str = "aliases:\n  mana/a: {chain: [echo/v0]}\n";
/// Not cacheable (no `temperature: 0`, no `seed`): the cache never looks.
const PLAIN: &str = r#"{"model":"groq/bench","messages":[{"role":"user","content":"hello"}]}"#;
/// Cacheable, and the same every time: a hit after the first.
const CACHEABLE: &str =
    r#"{"model":"groq/bench","temperature":0,"messages":[{"role":"user","content":"same"}]}"#;

type Conn = redis::aio::MultiplexedConnection;

/// wrk's Lua for `body`, the same every request.
fn lua_fixed(body: &str) -> String {
    format!(
        "wrk.method = \"POST\"\nwrk.headers[\"Content-Type\"] = \"application/json\"\nwrk.body = [[{body}]]\n"
    )
}

/// wrk's Lua for cacheable requests that are all different: every one a cache miss (a Redis
/// GET, then a SET of the answer).
fn lua_unique() -> String {
    let nonce = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!(
        r#"wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local counter = 1
function setup(thread)
  thread:set("id", counter)
  counter = counter + 1
end
local n = 0
function request()
  n = n + 1
  return wrk.format(nil, nil, nil, '{{"model":"groq/bench","temperature":0,"messages":[{{"role":"user","content":"{nonce}-' .. id .. '-' .. n .. '"}}]}}')
end
"#
    )
}

fn round(v: f64, places: i32) -> f64 {
    let f = 10f64.powi(places);
    (v * f).round() / f
}

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .pool_max_idle_per_host(64)
        .build()
        .unwrap_or_default()
}

async fn get_json(http: &reqwest::Client, url: &str) -> (u16, Value) {
    match http.get(url).send().await {
        Ok(r) => {
            let status = r.status().as_u16();
            (status, r.json().await.unwrap_or(Value::Null))
        }
        Err(_) => (0, Value::Null),
    }
}

async fn chat(http: &reqwest::Client, base: &str, body: &Value) -> Result<u16, String> {
    let r = http
        .post(format!("{base}/v1/chat/completions"))
        .json(body)
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let status = r.status().as_u16();
    r.bytes().await.map_err(|e| e.to_string())?;
    Ok(status)
}

/// Polls every worker's `path` at once (one task each, every `every`) until the JSON value at
/// `pointer` equals `want` on all of them; the time from `start` until the last one did.
async fn all_reach(
    http: &reqwest::Client,
    urls: &[String],
    path: &str,
    pointer: &str,
    want: &Value,
    start: Instant,
    every: Duration,
) -> Result<Duration, String> {
    let mut tasks = Vec::new();
    for base in urls {
        let (http, url, pointer, want) = (
            http.clone(),
            format!("{base}{path}"),
            pointer.to_owned(),
            want.clone(),
        );
        tasks.push(tokio::spawn(async move {
            loop {
                let (_, body) = get_json(&http, &url).await;
                if body.pointer(&pointer) == Some(&want) {
                    return Ok(start.elapsed());
                }
                if start.elapsed() > Duration::from_secs(20) {
                    return Err(format!("{url}: {pointer} never became {want}"));
                }
                tokio::time::sleep(every).await;
            }
        }));
    }
    let mut last = Duration::ZERO;
    for t in tasks {
        last = last.max(t.await.map_err(|e| e.to_string())??);
    }
    Ok(last)
}

/// Redis, the mock upstream and a control plane (with a fleet key, as in production); workers
/// are added by the scenario.
struct Stack {
    redis: Option<Proc>,
    redis_port: u16,
    redis_url: String,
    mock: Proc,
    control_plane: Proc,
    workers: Vec<Proc>,
    http: reqwest::Client,
    /// Per worker, its "alias registry version installed" log lines (when capturing).
    installs: Vec<procs::Lines>,
    capture_installs: bool,
}

impl Stack {
    fn start(name: &str) -> Result<Stack, String> {
        let redis_port = procs::free_port()?;
        let redis = procs::redis_on(redis_port)?;
        let redis_url = redis.url.clone();
        let mock = procs::mock()?;
        let control_plane = procs::control_plane(
            name,
            ALIASES,
            &redis_url,
            &[("MANA_LLM_FLEET_KEY", FLEET_KEY.into())],
        )?;
        Ok(Stack {
            redis: Some(redis),
            redis_port,
            redis_url,
            mock,
            control_plane,
            workers: Vec::new(),
            http: http(),
            installs: Vec::new(),
            capture_installs: false,
        })
    }

    fn redis(&self) -> Result<&Proc, String> {
        self.redis.as_ref().ok_or_else(|| "Redis is down".into())
    }

    /// A worker (no `--control-plane`: its registry comes from Redis only).
    fn worker(&self, id: &str, extra: &[(&str, String)]) -> Result<Proc, String> {
        self.worker_capturing(id, extra, None)
    }

    fn worker_capturing(
        &self,
        id: &str,
        extra: &[(&str, String)],
        capture: Option<(&'static str, procs::Lines)>,
    ) -> Result<Proc, String> {
        let mut env = vec![
            ("MANA_LLM_LISTEN", "127.0.0.1:0".to_owned()),
            ("REDIS_URL", self.redis_url.clone()),
            ("MANA_LLM_WORKER_ID", id.to_owned()),
            ("MANA_LLM_FLEET_KEY", FLEET_KEY.to_owned()),
            ("OLLAMA_URL", self.mock.url.clone()),
            ("GROQ_API_KEY", "bench".to_owned()),
            ("GROQ_BASE_URL", format!("{}/v1", self.mock.url)),
            ("MANA_LLM_BREAKER_OPEN_SECONDS", "0.5".to_owned()),
        ];
        env.extend(extra.iter().map(|(k, v)| (*k, v.clone())));
        procs::mana_llm_capturing(&["worker"], &env, capture)
    }

    fn add_workers(&mut self, n: usize, extra: &[(&str, String)]) -> Result<(), String> {
        for _ in 0..n {
            let id = format!("w{}", self.workers.len());
            let w = if self.capture_installs {
                // Only the install line at info level (a log line per request would be load).
                let mut env = extra.to_vec();
                env.push((
                    "LOG_LEVEL",
                    "warn,mana_llm_data_plane::server=info".to_owned(),
                ));
                let lines = procs::Lines::default();
                self.installs.push(lines.clone());
                self.worker_capturing(&id, &env, Some((INSTALLED, lines)))?
            } else {
                self.worker(&id, extra)?
            };
            self.workers.push(w);
        }
        Ok(())
    }

    /// When each worker logged installing `version` (`None` for one that has not).
    fn installed_at(&self, version: u64) -> Vec<Option<Instant>> {
        let needle = format!("version={version}");
        self.installs
            .iter()
            .map(|lines| {
                let lines = lines.lock().ok()?;
                lines
                    .iter()
                    .find(|(_, l)| l.split_whitespace().any(|w| w == needle))
                    .map(|(at, _)| *at)
            })
            .collect()
    }

    fn urls(&self) -> Vec<String> {
        self.workers.iter().map(|w| w.url.clone()).collect()
    }

    /// Every worker ready (a version installed) and sharing Redis.
    async fn settle(&self) -> Result<(), String> {
        let urls = self.urls();
        let every = Duration::from_millis(20);
        all_reach(
            &self.http,
            &urls,
            "/ready",
            "/status",
            &json!("ready"),
            Instant::now(),
            every,
        )
        .await?;
        all_reach(
            &self.http,
            &urls,
            "/v1/health",
            "/shared",
            &json!(true),
            Instant::now(),
            every,
        )
        .await?;
        Ok(())
    }

    async fn push(&self, yaml: &str) -> Result<u64, String> {
        let r = self
            .http
            .post(format!("{}/admin/v1/registry", self.control_plane.url))
            .body(yaml.to_owned())
            .send()
            .await
            .map_err(|e| e.to_string())?;
        r.json::<Value>().await.map_err(|e| e.to_string())?["version"]
            .as_u64()
            .ok_or_else(|| "the push returned no version".into())
    }

    async fn redis_conn(&self) -> Result<Conn, String> {
        redis_stats::connect(&self.redis_url).await
    }
}

/// The sum of `mana_llm_redis_errors_total` over `workers`: Redis calls that failed or timed
/// out (each timeout drops the connection until the background reconnect).
async fn redis_errors(http: &reqwest::Client, workers: &[&Proc]) -> f64 {
    let mut total = 0.0;
    for w in workers {
        if let Ok(r) = http.get(format!("{}/metrics", w.url)).send().await {
            let text = r.text().await.unwrap_or_default();
            total += text
                .lines()
                .filter(|l| l.starts_with("mana_llm_redis_errors_total"))
                .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
                .sum::<f64>();
        }
    }
    total
}

/// A wrk run against `target` (whose CPU is counted) with what Redis did meanwhile.
async fn measured(
    targets: &[&Proc],
    redis: &mut Conn,
    url: &str,
    lua: &str,
    connections: usize,
    seconds: u64,
) -> Result<(WrkResult, Value), String> {
    let http = http();
    let errors_before = redis_errors(&http, targets).await;
    let before = redis_stats::read(redis).await?;
    let cpu_before: Vec<Duration> = targets.iter().map(|t| t.cpu()).collect();
    let run = load::wrk_lua(url, lua, connections, seconds)?;
    let cpu: Duration = targets
        .iter()
        .zip(cpu_before)
        .map(|(t, b)| t.cpu().saturating_sub(b))
        .sum();
    let after = redis_stats::read(redis).await?;
    let redis_errors = redis_errors(&http, targets).await - errors_before;
    let per_request = if run.requests > 0.0 {
        cpu.as_secs_f64() * 1000.0 / run.requests
    } else {
        0.0
    };
    let row = json!({
        "connections": connections,
        "rps": run.requests_per_sec,
        "requests": run.requests,
        "errors": run.errors,
        "latency_ms": run.latency_ms,
        "cpu_ms_per_request": round(per_request, 4),
        "redis": redis_stats::delta(&before, &after, run.requests),
        "worker_redis_errors": redis_errors,
    });
    Ok((run, row))
}

/// `mana-llm serve` without Redis (its in-memory cache on, as by default).
fn serve(mock: &Proc) -> Result<Proc, String> {
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
        ],
    )
}

/// One worker with Redis against `serve` without, same mock, same run.
pub async fn hot_path(settings: &Settings) -> Result<Value, String> {
    let mut stack = Stack::start("hot-path")?;
    stack.add_workers(1, &[])?;
    // A second worker without the in-process cache tier: its hits come from Redis.
    stack.add_workers(1, &[("MANA_LLM_CACHE_LOCAL_ENTRIES", "0".into())])?;
    stack.settle().await?;
    let serve = serve(&stack.mock)?;
    let mut redis = stack.redis_conn().await?;
    let (seconds, conns): (u64, &[usize]) = if settings.smoke {
        (1, &[16])
    } else {
        (10, &[1, 16, 64])
    };
    let worker_url = format!("{}/v1/chat/completions", stack.workers[0].url);
    let serve_url = format!("{}/v1/chat/completions", serve.url);
    let plain = lua_fixed(PLAIN);
    load::wrk_lua(&worker_url, &plain, 4, 1)?;
    load::wrk_lua(&serve_url, &plain, 4, 1)?;
    let mut rows = Vec::new();
    for &c in conns {
        let (_, s) = measured(&[&serve], &mut redis, &serve_url, &plain, c, seconds).await?;
        let (_, w) = measured(
            &[&stack.workers[0]],
            &mut redis,
            &worker_url,
            &plain,
            c,
            seconds,
        )
        .await?;
        let ratio = |k: &str| {
            let (a, b) = (w[k].as_f64().unwrap_or(0.0), s[k].as_f64().unwrap_or(0.0));
            if b > 0.0 {
                json!(round(a / b, 3))
            } else {
                Value::Null
            }
        };
        let row = json!({
            "connections": c,
            "serve": s,
            "worker": w,
            "worker_over_serve": {"rps": ratio("rps"), "cpu_ms_per_request": ratio("cpu_ms_per_request")},
        });
        println!("fleet-hot-path c={c}: {row}");
        rows.push(row);
    }
    // What a cacheable request costs Redis: a miss (GET, then SET), a hit from Redis (GET),
    // a hit from the in-process tier (nothing).
    let c = 16;
    let nolocal_url = format!("{}/v1/chat/completions", stack.workers[1].url);
    let mut cache_rows = serde_json::Map::new();
    let (_, miss) = measured(
        &[&stack.workers[0]],
        &mut redis,
        &worker_url,
        &lua_unique(),
        c,
        seconds,
    )
    .await?;
    cache_rows.insert("miss_every_request".into(), miss);
    let cached = lua_fixed(CACHEABLE);
    load::wrk_lua(&nolocal_url, &cached, 1, 1)?;
    let (_, redis_hit) = measured(
        &[&stack.workers[1]],
        &mut redis,
        &nolocal_url,
        &cached,
        c,
        seconds,
    )
    .await?;
    cache_rows.insert("hit_from_redis".into(), redis_hit);
    load::wrk_lua(&worker_url, &cached, 1, 1)?;
    let (_, local_hit) = measured(
        &[&stack.workers[0]],
        &mut redis,
        &worker_url,
        &cached,
        c,
        seconds,
    )
    .await?;
    cache_rows.insert("hit_from_local_tier".into(), local_hit);
    let cache = Value::Object(cache_rows);
    println!("fleet-hot-path cacheable c={c}: {cache}");
    Ok(json!({"seconds_per_run": seconds, "plain": rows, "cacheable": cache}))
}

/// nginx with deploy/nginx/e2e.conf.template (the production proxy settings), stopped on drop.
struct Nginx {
    child: Child,
    url: String,
}

impl Drop for Nginx {
    /// SIGTERM to the master: it stops its workers and reaps them, then exits (SIGKILL to the
    /// master alone would orphan the workers, which keep the port). If it is stuck, the whole
    /// process group (the master leads its own) is killed.
    fn drop(&mut self) {
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill").args(["-TERM", "--", &group]).status();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while std::time::Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
        let _ = self.child.wait();
    }
}

impl Nginx {
    /// CPU of the master and its worker processes.
    fn cpu(&self) -> Duration {
        let master = self.child.id();
        let mut total = procs::cpu_of(master);
        if let Ok(entries) = std::fs::read_dir("/proc") {
            for e in entries.flatten() {
                if let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) {
                    // Field 1 after the command name is the parent's pid.
                    if procs::stat_field(pid, 1) == Some(u64::from(master)) {
                        total += procs::cpu_of(pid);
                    }
                }
            }
        }
        total
    }
}

fn nginx_binary() -> Option<PathBuf> {
    let path = std::env::var("PATH").unwrap_or_default();
    let found = path
        .split(':')
        .chain(["/usr/sbin", "/usr/local/sbin"])
        .map(|d| PathBuf::from(d).join("nginx"))
        .find(|p| p.exists());
    found
}

/// nginx in front of `workers` (three addresses; one worker may be named three times).
fn nginx(binary: &PathBuf, workers: [&str; 3]) -> Result<Nginx, String> {
    let template = include_str!("../../../deploy/nginx/e2e.conf.template");
    let dir = procs::temp_dir("nginx")?;
    let listen = format!("127.0.0.1:{}", procs::free_port()?);
    let host = |u: &str| u.trim_start_matches("http://").to_owned();
    // As deploy/nginx/nginx.conf: one nginx process per core (the template pins one).
    let config = template
        .replace("worker_processes 1;", "worker_processes auto;")
        .replace("__LISTEN__", &listen)
        .replace("__WORKER1__", &host(workers[0]))
        .replace("__WORKER2__", &host(workers[1]))
        .replace("__WORKER3__", &host(workers[2]))
        .replace("__TMPDIR__", &dir.to_string_lossy());
    let conf = dir.join("nginx.conf");
    std::fs::write(&conf, config).map_err(|e| e.to_string())?;
    let child = Command::new(binary)
        .arg("-p")
        .arg(&dir)
        .arg("-e")
        .arg(dir.join("error.log"))
        .arg("-c")
        .arg(&conf)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .map_err(|e| format!("nginx: {e}"))?;
    let nginx = Nginx {
        child,
        url: format!("http://{listen}"),
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(&listen).is_err() {
        if Instant::now() > deadline {
            return Err(format!(
                "nginx did not start: {}",
                std::fs::read_to_string(dir.join("error.log")).unwrap_or_default()
            ));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    Ok(nginx)
}

/// Three workers behind nginx with Redis and the control plane, cache off and on, against one
/// worker called directly and one worker behind the same nginx.
pub async fn nginx_fleet(settings: &Settings) -> Result<Value, String> {
    let Some(binary) = nginx_binary() else {
        let reason = "nginx is not installed (apt-get install nginx-light); fleet-nginx skipped";
        println!("{reason}");
        return Ok(json!({"skipped": reason}));
    };
    let mut stack = Stack::start("nginx")?;
    let off = [("MANA_LLM_CACHE", "off".to_owned())];
    stack.add_workers(3, &off)?;
    stack.add_workers(3, &[])?;
    stack.settle().await?;
    let u = stack.urls();
    let lb_one = nginx(&binary, [&u[0], &u[0], &u[0]])?;
    let lb_off = nginx(&binary, [&u[0], &u[1], &u[2]])?;
    let lb_on = nginx(&binary, [&u[3], &u[4], &u[5]])?;
    let mut redis = stack.redis_conn().await?;
    let (seconds, conns): (u64, &[usize]) = if settings.smoke {
        (1, &[16])
    } else {
        (10, &[16, 64])
    };
    let path = "/v1/chat/completions";
    let plain = lua_fixed(PLAIN);
    for url in [&u[0], &lb_one.url, &lb_off.url, &lb_on.url] {
        load::wrk_lua(&format!("{url}{path}"), &plain, 8, 1)?;
    }
    let off_workers: Vec<&Proc> = stack.workers[..3].iter().collect();
    let on_workers: Vec<&Proc> = stack.workers[3..].iter().collect();
    let mut rows = Vec::new();
    for &c in conns {
        let (one, mut one_row) = measured(
            &off_workers[..1],
            &mut redis,
            &format!("{}{path}", u[0]),
            &plain,
            c,
            seconds,
        )
        .await?;
        one_row["what"] = json!("one worker, direct, cache off");
        rows.push(one_row);
        let added = |run: &WrkResult| {
            let d = |p: &str| match (one.latency_ms[p].as_f64(), run.latency_ms[p].as_f64()) {
                (Some(a), Some(b)) => json!(round(b - a, 3)),
                _ => Value::Null,
            };
            json!({"p50": d("p50"), "p99": d("p99"), "throughput_ratio": round(run.requests_per_sec / one.requests_per_sec.max(1.0), 3)})
        };
        let cases: [(&str, &Nginx, &[&Proc], String); 4] = [
            (
                "nginx → one worker, cache off",
                &lb_one,
                &off_workers[..1],
                plain.clone(),
            ),
            (
                "nginx → three workers, cache off",
                &lb_off,
                &off_workers,
                plain.clone(),
            ),
            (
                "nginx → three workers, cache on, not cacheable",
                &lb_on,
                &on_workers,
                plain.clone(),
            ),
            (
                "nginx → three workers, cache on, every request a miss",
                &lb_on,
                &on_workers,
                lua_unique(),
            ),
        ];
        for (what, lb, workers, lua) in cases {
            let nginx_before = lb.cpu();
            let (run, mut row) = measured(
                workers,
                &mut redis,
                &format!("{}{path}", lb.url),
                &lua,
                c,
                seconds,
            )
            .await?;
            let nginx_cpu = lb.cpu().saturating_sub(nginx_before);
            row["what"] = json!(what);
            row["vs_one_worker"] = added(&run);
            row["nginx_cpu_ms_per_request"] = json!(round(
                nginx_cpu.as_secs_f64() * 1000.0 / run.requests.max(1.0),
                4
            ));
            println!("fleet-nginx c={c}: {row}");
            rows.push(row);
        }
        // Every request the same cacheable one: hits, mostly from each worker's local tier.
        let cached = lua_fixed(CACHEABLE);
        let (run, mut row) = measured(
            &on_workers,
            &mut redis,
            &format!("{}{path}", lb_on.url),
            &cached,
            c,
            seconds,
        )
        .await?;
        row["what"] = json!("nginx → three workers, cache on, every request a hit");
        row["vs_one_worker"] = added(&run);
        println!("fleet-nginx c={c}: {row}");
        rows.push(row);
    }
    Ok(json!({"seconds_per_run": seconds, "nginx_worker_processes": "auto", "rows": rows}))
}

struct Sample {
    sent: Duration,
    took: Duration,
    ok: bool,
}

/// Open-loop load: one request every `1/rate` s for `total`, whatever the answers do. With
/// `cacheable`, each is cacheable and different (so each one looks up the cache in Redis and
/// stores its answer); else none is cacheable (no Redis command at all).
fn steady_load(
    http: reqwest::Client,
    urls: Vec<String>,
    rate: u32,
    total: Duration,
    start: Instant,
    cacheable: bool,
) -> tokio::task::JoinHandle<Vec<Sample>> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(1) / rate);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
        let mut tasks = Vec::new();
        let mut i = 0usize;
        while start.elapsed() < total {
            tick.tick().await;
            let mut body = json!({"model": "groq/bench",
                "messages": [{"role": "user", "content": format!("frozen {i} {start:?}")}]});
            if cacheable {
                body["temperature"] = json!(0);
            }
            let (http, url) = (http.clone(), urls[i % urls.len()].clone());
            i += 1;
            tasks.push(tokio::spawn(async move {
                let sent = start.elapsed();
                let ok = chat(&http, &url, &body).await == Ok(200);
                Sample {
                    sent,
                    took: start.elapsed() - sent,
                    ok,
                }
            }));
        }
        let mut samples = Vec::new();
        for t in tasks {
            if let Ok(s) = t.await {
                samples.push(s);
            }
        }
        samples
    })
}

fn window(samples: &[Sample], from: Duration, to: Duration) -> Value {
    let inside: Vec<&Sample> = samples
        .iter()
        .filter(|s| s.sent >= from && s.sent < to)
        .collect();
    let ok = inside.iter().filter(|s| s.ok).count();
    let mut took: Vec<Duration> = inside.iter().map(|s| s.took).collect();
    let seconds = (to - from).as_secs_f64();
    json!({
        "sent": inside.len(),
        "ok": ok,
        "failed": inside.len() - ok,
        "ok_per_sec": round(ok as f64 / seconds, 1),
        "latency": summary(&mut took),
    })
}

/// Redis SIGSTOPped under a steady load through nginx (or straight to the workers when nginx
/// is missing): latency and throughput during the freeze against before, and the time from
/// SIGCONT until every worker's `/v1/health` says `shared` again. Twice: with cacheable
/// requests (each one a cache lookup and store in Redis) and with requests that are not.
pub async fn frozen(settings: &Settings) -> Result<Value, String> {
    let mut stack = Stack::start("frozen")?;
    stack.add_workers(3, &[])?;
    stack.settle().await?;
    let lb = match nginx_binary() {
        Some(b) => {
            let u = stack.urls();
            Some(nginx(&b, [&u[0], &u[1], &u[2]])?)
        }
        None => {
            println!("nginx is not installed: fleet-frozen sends its load straight to the workers");
            None
        }
    };
    let targets = match &lb {
        Some(n) => vec![n.url.clone()],
        None => stack.urls(),
    };
    // Warm the connections.
    for t in &targets {
        chat(
            &stack.http,
            t,
            &serde_json::from_str(CACHEABLE).unwrap_or_default(),
        )
        .await?;
    }
    let mut runs = serde_json::Map::new();
    for (name, cacheable) in [("cacheable", true), ("not_cacheable", false)] {
        let mut run = freeze_once(settings, &stack, &targets, cacheable).await?;
        run["through"] = json!(if lb.is_some() {
            "nginx → three workers"
        } else {
            "three workers, round robin"
        });
        println!("fleet-frozen, {name}: {run}");
        runs.insert(name.into(), run);
        stack.settle().await?;
    }
    Ok(Value::Object(runs))
}

async fn freeze_once(
    settings: &Settings,
    stack: &Stack,
    targets: &[String],
    cacheable: bool,
) -> Result<Value, String> {
    let (rate, before, freeze, after) = if settings.smoke {
        (100, 1.0, 1.0, 1.0)
    } else {
        (100, 10.0, 10.0, 5.0)
    };
    let (before, freeze, after) = (
        Duration::from_secs_f64(before),
        Duration::from_secs_f64(freeze),
        Duration::from_secs_f64(after),
    );
    let workers: Vec<&Proc> = stack.workers.iter().collect();
    let errors_before = redis_errors(&stack.http, &workers).await;
    let start = Instant::now();
    let load = steady_load(
        stack.http.clone(),
        targets.to_vec(),
        rate,
        before + freeze + after,
        start,
        cacheable,
    );
    tokio::time::sleep_until((start + before).into()).await;
    let redis = stack.redis()?;
    redis.signal("STOP")?;
    let stopped_at = start.elapsed();
    tokio::time::sleep_until((start + before + freeze).into()).await;
    redis.signal("CONT")?;
    let thawed = Instant::now();
    let thawed_at = start.elapsed();
    let back = all_reach(
        &stack.http,
        &stack.urls(),
        "/v1/health",
        "/shared",
        &json!(true),
        thawed,
        Duration::from_millis(5),
    )
    .await?;
    let samples = load.await.map_err(|e| e.to_string())?;
    Ok(json!({
        "rate_per_sec": rate,
        "requests": if cacheable {
            "cacheable, all different: each one a Redis GET and SET when Redis answers"
        } else {
            "not cacheable: no Redis command on the request path"
        },
        "redis_timeout_ms": 50,
        "before": window(&samples, Duration::ZERO, stopped_at),
        "frozen": window(&samples, stopped_at, thawed_at),
        "after": window(&samples, thawed_at, before + freeze + after),
        "freeze_seconds": round((thawed_at - stopped_at).as_secs_f64(), 2),
        "shared_again_after_sigcont_ms": round(back.as_secs_f64() * 1000.0, 1),
        "worker_redis_errors": redis_errors(&stack.http, &workers).await - errors_before,
    }))
}

/// Runs `wrk` against each of `urls` at once, each with its own script from `lua` (so unique
/// bodies stay unique across the wrk processes); total requests and requests/s.
fn wrk_each(
    urls: &[String],
    lua: fn() -> String,
    connections: usize,
    seconds: u64,
) -> (f64, f64, u64) {
    std::thread::scope(|s| {
        let runs: Vec<_> = urls
            .iter()
            .map(|u| {
                let (url, script) = (format!("{u}/v1/chat/completions"), lua());
                s.spawn(move || load::wrk_lua(&url, &script, connections, seconds))
            })
            .collect();
        runs.into_iter()
            .filter_map(|h| h.join().ok().and_then(Result::ok))
            .fold((0.0, 0.0, 0), |(n, rps, e), r| {
                (n + r.requests, rps + r.requests_per_sec, e + r.errors)
            })
    })
}

/// Load on three workers (plain, then every request a cache miss) with what Redis did per
/// request, while `subscribed` workers follow the channels.
async fn three_loaded(
    stack: &Stack,
    redis: &mut Conn,
    seconds: u64,
    subscribed: usize,
) -> Result<Value, String> {
    let urls = stack.urls()[..3].to_vec();
    let mut out = serde_json::Map::new();
    let plain: fn() -> String = || lua_fixed(PLAIN);
    for (name, lua) in [
        ("plain", plain),
        ("cache_miss", lua_unique as fn() -> String),
    ] {
        let before = redis_stats::read(redis).await?;
        let (requests, rps, errors) = wrk_each(&urls, lua, 8, seconds);
        let after = redis_stats::read(redis).await?;
        out.insert(
            name.into(),
            json!({"rps": round(rps, 0), "errors": errors, "redis": redis_stats::delta(&before, &after, requests)}),
        );
    }
    let v = json!({"workers_subscribed": subscribed, "load": Value::Object(out)});
    println!("fleet-fifty, load on three: {v}");
    Ok(v)
}

/// Fifty workers on loopback, idle but subscribed (load on three): what one control plane and
/// one Redis do at fleet size.
pub async fn fifty(settings: &Settings) -> Result<Value, String> {
    let (n, pushes, trips, seconds, idle) = if settings.smoke {
        (3, 3, 1, 1, 1)
    } else {
        (50, 40, 30, 10, 10)
    };
    let mut stack = Stack::start("fifty")?;
    stack.capture_installs = true;
    stack.add_workers(3, &[])?;
    stack.settle().await?;
    let mut redis = stack.redis_conn().await?;
    // The same load with three workers, then with all of them subscribed.
    let with_three = three_loaded(&stack, &mut redis, seconds, 3).await?;
    let started = Instant::now();
    stack.add_workers(n - 3, &[])?;
    stack.settle().await?;
    let startup_s = round(started.elapsed().as_secs_f64(), 2);
    let with_all = three_loaded(&stack, &mut redis, seconds, n).await?;

    // Steady state, idle.
    tokio::time::sleep(Duration::from_secs(if settings.smoke { 0 } else { 3 })).await;
    let cpu_before: Vec<Duration> = stack.workers.iter().map(Proc::cpu).collect();
    let redis_cpu_before = stack.redis()?.cpu();
    let before = redis_stats::read(&mut redis).await?;
    tokio::time::sleep(Duration::from_secs(idle)).await;
    let after = redis_stats::read(&mut redis).await?;
    let redis_cpu = stack.redis()?.cpu().saturating_sub(redis_cpu_before);
    let mut cpu_ms_per_s: Vec<f64> = stack
        .workers
        .iter()
        .zip(cpu_before)
        .map(|(w, b)| w.cpu().saturating_sub(b).as_secs_f64() * 1000.0 / idle as f64)
        .collect();
    let mut rss: Vec<f64> = stack.workers.iter().map(Proc::rss_mib).collect();
    rss.sort_by(f64::total_cmp);
    cpu_ms_per_s.sort_by(f64::total_cmp);
    let mid = |v: &[f64]| v[v.len() / 2];
    let steady = json!({
        "redis": redis_stats::delta(&before, &after, 0.0),
        "redis_rss_mib": stack.redis()?.rss_mib(),
        "redis_cpu_ms_per_sec_proc": round(redis_cpu.as_secs_f64() * 1000.0 / idle as f64, 2),
        "worker_rss_mib": {"median": mid(&rss), "max": rss[rss.len() - 1], "total": round(rss.iter().sum(), 1)},
        "worker_cpu_ms_per_sec": {"median": round(mid(&cpu_ms_per_s), 2), "max": round(cpu_ms_per_s[cpu_ms_per_s.len() - 1], 2), "total": round(cpu_ms_per_s.iter().sum(), 2)},
        "control_plane_rss_mib": stack.control_plane.rss_mib(),
    });
    println!("fleet-fifty steady state ({n} workers, {idle} s): {steady}");

    // Registry propagation: push → the last of n workers serving it.
    let urls = stack.urls();
    let poll = Duration::from_millis(1);
    // Two readings: the last worker's own log line "installed" (read from its stderr as it
    // is written: no polling load), and the last /ready reporting it (50 pollers every 1 ms,
    // an upper bound that includes the polling's own CPU on a shared machine).
    let (mut logged, mut polled, mut answered) = (Vec::new(), Vec::new(), Vec::new());
    let mut fan_out = Vec::new();
    for i in 1..=pushes {
        let yaml = format!("aliases:\n  mana/a: {{chain: [echo/p{i}]}}\n");
        let start = Instant::now();
        let version = stack.push(&yaml).await?;
        answered.push(start.elapsed());
        let last = all_reach(
            &stack.http,
            &urls,
            "/ready",
            "/registry_version",
            &json!(version),
            start,
            poll,
        )
        .await?;
        polled.push(last);
        // Give the log readers a moment, then take the latest install line.
        tokio::time::sleep(Duration::from_millis(20)).await;
        let at = stack.installed_at(version);
        if at.iter().all(Option::is_some) {
            let latest = at.iter().flatten().max().copied().unwrap_or(start);
            let first = at.iter().flatten().min().copied().unwrap_or(start);
            logged.push(latest.saturating_duration_since(start));
            fan_out.push(latest.saturating_duration_since(first));
        }
    }
    let registry = json!({
        "installed_per_log": summary(&mut logged),
        "first_to_last_install_per_log": summary(&mut fan_out),
        "serving_per_ready_polls": summary(&mut polled),
        "push_answered": summary(&mut answered),
    });
    println!("fleet-fifty registry propagation (push → {n} workers): {registry}");

    // Breaker propagation: the tripping failure on worker 0 → every other worker skipping.
    let mut samples = Vec::new();
    let a = urls[0].clone();
    let failing =
        json!({"model": "ollama/status-500", "messages": [{"role": "user", "content": "x"}]});
    let healthy = json!({"model": "ollama/bench", "messages": [{"role": "user", "content": "x"}]});
    for _ in 0..trips {
        chat(&stack.http, &a, &failing).await?;
        chat(&stack.http, &a, &failing).await?;
        let start = Instant::now();
        let last = all_reach(
            &stack.http,
            &urls[1..],
            "/v1/health",
            "/providers/ollama/status",
            &json!("open"),
            start,
            poll,
        )
        .await?;
        samples.push(last);
        // Recover: half-open after 0.5 s, then one successful trial closes it fleet-wide.
        let health = format!("{a}/v1/health");
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let status =
                get_json(&stack.http, &health).await.1["providers"]["ollama"]["status"].clone();
            if status == "healthy" {
                break;
            }
            if status == "half_open" {
                let _ = chat(&stack.http, &a, &healthy).await;
            }
            if Instant::now() > deadline {
                return Err("the breaker did not close again".into());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        all_reach(
            &stack.http,
            &urls,
            "/v1/health",
            "/providers/ollama/status",
            &json!("healthy"),
            Instant::now(),
            Duration::from_millis(5),
        )
        .await?;
    }
    let breaker = summary(&mut samples);
    println!(
        "fleet-fifty breaker propagation (trip on one → {} others): {breaker}",
        n - 1
    );
    Ok(json!({
        "workers": n,
        "startup_of_the_others_s": startup_s,
        "load_on_three": [with_three, with_all],
        "steady_state": steady,
        "registry_propagation": registry,
        "breaker_propagation": breaker,
    }))
}

/// `current` as the control plane published it: its version, and whether it is signed.
async fn current_version(url: &str) -> Option<(u64, bool)> {
    let mut conn = redis_stats::connect(url).await.ok()?;
    let raw: Option<String> = redis::cmd("GET")
        .arg("mana-llm:registry:current")
        .query_async(&mut conn)
        .await
        .ok()?;
    let v: Value = serde_json::from_str(&raw?).ok()?;
    Some((v["version"].as_u64()?, v["signature"].is_string()))
}

/// Redis SIGKILLed and restarted empty: time until `current` is back, until the running worker
/// shares again, and until a worker started after it (without `--control-plane`) serves the
/// right version.
pub async fn restart(settings: &Settings) -> Result<Value, String> {
    let rounds = if settings.smoke { 1 } else { 5 };
    let mut stack = Stack::start("restart")?;
    // Idle workers: one with the default 5 s version check, one checking every second.
    stack.add_workers(1, &[])?;
    stack.add_workers(1, &[("MANA_LLM_SYNC_INTERVAL", "1".into())])?;
    stack.settle().await?;
    let version = stack
        .push("aliases:\n  mana/a: {chain: [echo/restart]}\n")
        .await?;
    let urls = stack.urls();
    all_reach(
        &stack.http,
        &urls,
        "/ready",
        "/registry_version",
        &json!(version),
        Instant::now(),
        Duration::from_millis(5),
    )
    .await?;
    let (mut current_back, mut late_ready) = (Vec::new(), Vec::new());
    let mut shared_back = [Vec::new(), Vec::new()];
    let mut signed = true;
    for round in 0..rounds {
        // Drop kills it with SIGKILL; the new one has no persistence, so it starts empty.
        stack.redis = None;
        tokio::time::sleep(Duration::from_millis(200)).await;
        stack.redis = Some(procs::redis_on(stack.redis_port)?);
        let up = Instant::now();
        // `current` and each worker's shared state, watched at the same time.
        let current = async {
            loop {
                if let Some((v, s)) = current_version(&stack.redis_url).await {
                    if v == version {
                        return Ok(s);
                    }
                }
                if up.elapsed() > Duration::from_secs(30) {
                    return Err("`current` never came back".to_owned());
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        };
        let shared = |i: usize| {
            all_reach(
                &stack.http,
                &urls[i..=i],
                "/v1/health",
                "/shared",
                &json!(true),
                up,
                Duration::from_millis(5),
            )
        };
        let (current, first, second) = tokio::join!(
            async {
                let r = current.await;
                (r, up.elapsed())
            },
            shared(0),
            shared(1)
        );
        signed &= current.0?;
        current_back.push(current.1);
        shared_back[0].push(first?);
        shared_back[1].push(second?);
        let started = Instant::now();
        let late = stack.worker(&format!("late{round}"), &[])?;
        all_reach(
            &stack.http,
            std::slice::from_ref(&late.url),
            "/ready",
            "/registry_version",
            &json!(version),
            started,
            Duration::from_millis(2),
        )
        .await?;
        late_ready.push(started.elapsed());
    }
    let result = json!({
        "rounds": rounds,
        "current_back_after_restart": summary(&mut current_back),
        "current_signed": signed,
        "idle_worker_shared_again": summary(&mut shared_back[0]),
        "idle_worker_sync_1s_shared_again": summary(&mut shared_back[1]),
        "late_worker_start_to_ready_on_version": summary(&mut late_ready),
    });
    println!("fleet-restart: {result}");
    Ok(result)
}
