//! Three workers, one control plane, one Redis, one mock provider: the fleet behaves as one
//! gateway, and keeps working when Redis or the control plane do not.

use std::time::{Duration, Instant};

use mana_llm_mock::{MockProvider, Reply as MockReply, Route};
use serde_json::json;

use crate::support::*;
use mana_llm_shared::bus::PublishedVersion;
use mana_llm_shared::fleet_key::FLEET_KEY_ENV;

const ALIASES: &str = "aliases:\n  mana/chain: {chain: [ollama/first, groq/second]}\n  mana/echo: {chain: [echo/v1]}\ndefault: mana/chain\n";

pub struct Cluster {
    pub redis: RedisServer,
    pub control_plane: Gateway,
    pub workers: Vec<Gateway>,
    pub mock: MockProvider,
    /// The control plane's event log and aliases file, kept to restart it on the same data.
    control_plane_db: std::path::PathBuf,
    aliases: std::path::PathBuf,
    control_plane_env: Vec<(String, String)>,
    /// The control plane's `MANA_LLM_ADMIN_TOKEN`, when it has one.
    pub admin_token: Option<String>,
}

impl Cluster {
    pub async fn start(workers: usize) -> Cluster {
        Self::start_with(workers, &[]).await
    }

    pub async fn start_with(workers: usize, env: &[(&str, &str)]) -> Cluster {
        Self::start_full(workers, env, &[]).await
    }

    /// A cluster whose control plane requires `token` on its admin API (`None`: loopback
    /// only, as [`Cluster::start`]).
    pub async fn start_with_admin_token(
        workers: usize,
        env: &[(&str, &str)],
        token: Option<&str>,
    ) -> Cluster {
        match token {
            Some(token) => Self::start_full(workers, env, &[("MANA_LLM_ADMIN_TOKEN", token)]).await,
            None => Self::start_full(workers, env, &[]).await,
        }
    }

    /// `workers` workers with `env`, and a control plane with `control_plane_env` too.
    pub async fn start_full(
        workers: usize,
        env: &[(&str, &str)],
        control_plane_env: &[(&str, &str)],
    ) -> Cluster {
        let redis = RedisServer::start();
        let mock = MockProvider::start().await;
        let aliases = temp_file("aliases.yaml", ALIASES);
        let control_plane_db = temp_dir().join("control-plane.db");
        let control_plane_env: Vec<(String, String)> = control_plane_env
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        let control_plane =
            Self::control_plane_on(&redis, &aliases, &control_plane_db, &control_plane_env);
        let mut cluster = Cluster {
            redis,
            control_plane,
            workers: Vec::new(),
            mock,
            control_plane_db,
            aliases,
            admin_token: control_plane_env
                .iter()
                .find(|(k, _)| k == "MANA_LLM_ADMIN_TOKEN")
                .map(|(_, v)| v.clone()),
            control_plane_env,
        };
        for i in 0..workers {
            cluster.add_worker(i, env);
        }
        // Ready means "serves the control plane's version", not "listens": a worker answers
        // 503 until a version is installed, and the first request of a test must not reach
        // one that has none.
        let version = cluster.current_version().await;
        assert!(version >= 1, "the control plane seeded a version");
        for w in &cluster.workers {
            assert!(
                eventually_async(Duration::from_secs(10), || async {
                    let ready = w.get("/ready").await;
                    ready.status == 200 && ready.json["registry_version"] == version
                })
                .await,
                "worker ready at version {version}: {}",
                w.get("/ready").await.text
            );
            redis_up(w).await;
        }
        cluster
    }

    fn control_plane_on(
        redis: &RedisServer,
        aliases: &std::path::Path,
        db: &std::path::Path,
        env: &[(String, String)],
    ) -> Gateway {
        let mut builder = Gateway::control_plane()
            .env("REDIS_URL", redis.url())
            .env(FLEET_KEY_ENV, FLEET_KEY)
            .env("MANA_LLM_ALIASES", aliases.to_string_lossy());
        for (k, v) in env {
            builder = builder.env(k, v.clone());
        }
        builder.start_with_db(db)
    }

    /// Kills the control plane without warning (SIGKILL) and starts it again on the same
    /// event log.
    pub fn kill_and_restart_control_plane(&mut self) {
        self.control_plane.signal("KILL");
        // Killed by a signal, the process has no exit code to report.
        let _ = self.control_plane.wait_exit(Duration::from_secs(10));
        self.control_plane = Self::control_plane_on(
            &self.redis,
            &self.aliases,
            &self.control_plane_db,
            &self.control_plane_env,
        );
    }

    /// The version the control plane serves (`GET /admin/v1/registry`).
    pub async fn current_version(&self) -> u64 {
        let r = self
            .control_plane
            .send(self.admin(client().get(self.control_plane.url("/admin/v1/registry"))))
            .await;
        assert_eq!(r.status, 200, "{}", r.text);
        r.json["version"].as_u64().expect("a version number")
    }

    /// Adds a worker. Cluster workers re-read Redis on their slow timer only every 10 min, so
    /// a version reaches them by the subscription (a message, or the re-read after each
    /// resubscription) and a test that converges proves the pub/sub path. A test of the timer
    /// passes its own `MANA_LLM_SYNC_INTERVAL` in `env`.
    pub fn add_worker(&mut self, i: usize, env: &[(&str, &str)]) {
        let mut builder = Gateway::worker(&self.redis.url())
            .mock(&self.mock)
            .env(FLEET_KEY_ENV, FLEET_KEY)
            .env("MANA_LLM_WORKER_ID", format!("w{i}"))
            .env("MANA_LLM_SYNC_INTERVAL", "600");
        for (k, v) in env {
            builder = builder.env(k, *v);
        }
        self.workers.push(builder.start());
    }

    pub async fn push(&self, yaml: &str) -> u64 {
        let r = self
            .control_plane
            .send(
                self.admin(
                    client()
                        .post(self.control_plane.url("/admin/v1/registry"))
                        .body(yaml.to_owned()),
                ),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.text);
        r.json["version"].as_u64().unwrap()
    }

    /// `request` with the admin token, when the control plane has one.
    pub fn admin(&self, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.admin_token {
            Some(token) => request.bearer_auth(token),
            None => request,
        }
    }

    /// Waits until every worker serves `version`; returns how long it took.
    pub async fn converge(&self, version: u64) -> Duration {
        let start = Instant::now();
        for w in &self.workers {
            assert!(
                eventually_async(Duration::from_secs(10), || async {
                    w.get("/v1/aliases").await.json["version"] == version
                })
                .await,
                "a worker did not reach version {version}"
            );
        }
        start.elapsed()
    }
}

fn echo(n: u32) -> String {
    format!("aliases:\n  mana/chain: {{chain: [ollama/first, groq/second]}}\n  mana/echo: {{chain: [echo/v{n}]}}\ndefault: mana/chain\n")
}

#[tokio::test]
async fn a_pushed_version_reaches_every_worker() {
    let cluster = Cluster::start(3).await;
    let version = cluster.push(&echo(2)).await;
    let took = cluster.converge(version).await;
    eprintln!("registry propagation to 3 workers: {took:?}");
    for w in &cluster.workers {
        let r = w
            .post("/v1/chat/completions", chat("mana/echo", "hi"))
            .await;
        assert_eq!(r.json["model"], "echo/v2");
        assert_eq!(r.header("x-mana-llm-registry-version"), Some("2"));
    }
}

#[tokio::test]
async fn a_late_worker_boots_at_the_latest_version() {
    let mut cluster = Cluster::start(1).await;
    for n in 2..=4 {
        cluster.push(&echo(n)).await;
    }
    cluster.add_worker(9, &[]);
    let late = cluster.workers.last().unwrap();
    assert!(
        eventually_async(Duration::from_secs(10), || async {
            late.get("/v1/aliases").await.json["version"] == 4
        })
        .await
    );
    let ready = late.get("/ready").await;
    assert_eq!(ready.status, 200, "{}", ready.text);
    assert_eq!(ready.json["registry_version"], 4, "{}", ready.text);
}

/// Cuts every subscription in Redis and returns how many it cut.
async fn kill_subscriptions(redis: &RedisServer) -> i64 {
    let mut conn = redis.conn().await;
    redis::cmd("CLIENT")
        .arg("KILL")
        .arg("TYPE")
        .arg("pubsub")
        .query_async(&mut conn)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_lost_message_is_caught_up_by_version_number() {
    let cluster = Cluster::start(2).await;
    // Frozen workers cannot resubscribe, so the announcement of the push below goes to no
    // one and is lost for good. Thawed, each worker finds its subscription gone, subscribes
    // again and catches up by reading `current` (its slow timer is 10 min away).
    for w in &cluster.workers {
        w.signal("STOP");
    }
    let killed = kill_subscriptions(&cluster.redis).await;
    let version = cluster.push(&echo(2)).await;
    for w in &cluster.workers {
        w.signal("CONT");
    }
    assert!(
        killed >= cluster.workers.len() as i64,
        "each worker had a subscription to cut: {killed} cut"
    );
    cluster.converge(version).await;
}

#[tokio::test]
async fn a_version_written_without_announcement_is_found_by_the_slow_timer() {
    let mut cluster = Cluster::start_with(2, &[("MANA_LLM_SYNC_INTERVAL", "0.2")]).await;
    // The control plane is stopped first (it repairs any version its log never made), and the
    // version is signed with the fleet key, as the control plane would have signed it. No
    // message announces it and the subscriptions stay up: only the timer can find it.
    cluster.control_plane.signal("TERM");
    assert!(cluster
        .control_plane
        .wait_exit(Duration::from_secs(10))
        .is_some());
    let mut conn = cluster.redis.conn().await;
    let current: String = redis::cmd("GET")
        .arg("mana-llm:registry:current")
        .query_async(&mut conn)
        .await
        .unwrap();
    let mut published: PublishedVersion = serde_json::from_str(&current).unwrap();
    published.version = mana_llm_shared::RegistryVersion(7);
    let published = published.signed(&fleet_key());
    let _: () = redis::cmd("SET")
        .arg("mana-llm:registry:current")
        .arg(serde_json::to_string(&published).unwrap())
        .query_async(&mut conn)
        .await
        .unwrap();
    cluster.converge(7).await;
}

#[tokio::test]
async fn a_breaker_tripped_through_one_worker_is_skipped_by_all() {
    let cluster = Cluster::start_with(3, &[("MANA_LLM_BREAKER_OPEN_SECONDS", "2")]).await;
    let mock = &cluster.mock;
    mock.set_default(Route::OllamaChat, MockReply::status(500));
    let a = &cluster.workers[0];
    for _ in 0..2 {
        assert_eq!(
            a.post("/v1/chat/completions", chat("mana/chain", "hi"))
                .await
                .json["model"],
            "groq/second"
        );
    }
    assert_eq!(mock.calls(Route::OllamaChat), 2);
    let start = Instant::now();
    for w in &cluster.workers[1..] {
        assert!(
            eventually_async(Duration::from_secs(5), || async {
                w.get("/v1/health").await.json["providers"]["ollama"]["status"] == "open"
            })
            .await
        );
    }
    eprintln!("breaker propagation: {:?}", start.elapsed());
    for w in &cluster.workers {
        assert_eq!(
            w.post("/v1/chat/completions", chat("mana/chain", "hi"))
                .await
                .json["model"],
            "groq/second"
        );
        assert_eq!(w.get("/v1/health").await.json["shared"], true);
    }
    assert_eq!(
        mock.calls(Route::OllamaChat),
        2,
        "no worker called the open provider"
    );

    // Half-open: exactly one worker in the fleet runs the trial. The trial's answer is held
    // until every worker has had its request decided, so the three requests overlap for sure.
    mock.set_default(Route::OllamaChat, MockReply::ok().held());
    assert!(
        eventually_async(Duration::from_secs(5), || async {
            cluster.workers[0].get("/v1/health").await.json["providers"]["ollama"]["status"]
                == "half_open"
        })
        .await
    );
    let calls_before = mock.calls(Route::OllamaChat);
    let answers: Vec<_> = cluster
        .workers
        .iter()
        .map(|w| {
            let url = w.url("/v1/chat/completions");
            tokio::spawn(async move {
                Reply::read(
                    client()
                        .post(url)
                        .json(&chat("mana/chain", "hi"))
                        .send()
                        .await
                        .unwrap(),
                )
                .await
            })
        })
        .collect();
    // Two requests fall through to groq while the third is the trial, still held.
    assert!(
        eventually(Duration::from_secs(10), || mock.held() == 1
            && answers.iter().filter(|a| a.is_finished()).count() == 2)
        .await,
        "one held trial and two answered requests: {} held, {} answered",
        mock.held(),
        answers.iter().filter(|a| a.is_finished()).count()
    );
    mock.release();
    let mut models = Vec::new();
    for a in answers {
        models.push(
            a.await.unwrap().json["model"]
                .as_str()
                .unwrap_or("")
                .to_owned(),
        );
    }
    assert_eq!(
        mock.calls(Route::OllamaChat) - calls_before,
        1,
        "one trial in the fleet: {models:?}"
    );
    assert_eq!(
        models.iter().filter(|m| *m == "ollama/first").count(),
        1,
        "{models:?}"
    );
}

#[tokio::test]
async fn the_cache_is_shared_by_the_fleet() {
    let cluster = Cluster::start(3).await;
    let mock = &cluster.mock;
    let mut body = chat("groq/cached", "same question");
    body["temperature"] = json!(0);
    let a = cluster.workers[0]
        .post("/v1/chat/completions", body.clone())
        .await;
    assert_eq!(a.header("x-mana-llm-cache"), Some("miss"));
    let b = cluster.workers[1]
        .post("/v1/chat/completions", body.clone())
        .await;
    assert_eq!(b.header("x-mana-llm-cache"), Some("hit"), "{}", b.text);
    assert_eq!(b.json["choices"], a.json["choices"]);
    assert_eq!(mock.calls(Route::OpenAiChat), 1);

    // A streaming request for the same content is replayed as SSE.
    let mut streamed = body.clone();
    streamed["stream"] = json!(true);
    let (status, headers, data) = cluster.workers[2].stream(streamed).await;
    assert_eq!(status, 200);
    assert_eq!(headers["x-mana-llm-cache"], "hit");
    assert_eq!(streamed_text(&chunks(&data)), "Hello from mock");
    assert_eq!(data.last().map(String::as_str), Some("[DONE]"));
    assert_eq!(mock.calls(Route::OpenAiChat), 1);

    // no-cache skips the read; non-deterministic requests bypass.
    let fresh = cluster.workers[0]
        .send(
            client()
                .post(cluster.workers[0].url("/v1/chat/completions"))
                .header("cache-control", "no-cache")
                .json(&body),
        )
        .await;
    assert_eq!(fresh.header("x-mana-llm-cache"), Some("miss"));
    assert_eq!(mock.calls(Route::OpenAiChat), 2);
    let random = cluster.workers[0]
        .post("/v1/chat/completions", chat("groq/cached", "same question"))
        .await;
    assert_eq!(random.header("x-mana-llm-cache"), Some("bypass"));
}

#[tokio::test]
async fn concurrent_identical_misses_make_one_call_per_worker() {
    let cluster = Cluster::start(2).await;
    cluster.mock.set_default(
        Route::OpenAiChat,
        MockReply::ok().delay(Duration::from_millis(300)),
    );
    let mut body = chat("groq/flight", "everyone asks this");
    body["seed"] = json!(42);
    let mut tasks = Vec::new();
    for i in 0..20 {
        let url = cluster.workers[i % 2].url("/v1/chat/completions");
        let body = body.clone();
        tasks.push(tokio::spawn(async move {
            client()
                .post(url)
                .json(&body)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), 200);
    }
    let calls = cluster.mock.calls(Route::OpenAiChat);
    assert!(
        (1..=2).contains(&calls),
        "{calls} upstream calls for 20 identical requests on 2 workers"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_down_and_back() {
    let mut cluster = Cluster::start(2).await;
    let urls: Vec<String> = cluster
        .workers
        .iter()
        .map(|w| w.url("/v1/chat/completions"))
        .collect();
    let served = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = served.clone();
    let load = tokio::spawn(async move {
        let (mut ok, mut failed) = (0, 0);
        let deadline = Instant::now() + Duration::from_secs(3);
        while Instant::now() < deadline {
            for url in &urls {
                let mut body = chat("mana/echo", "under load");
                body["temperature"] = json!(0);
                match client().post(url).json(&body).send().await {
                    Ok(r) if r.status() == 200 => ok += 1,
                    _ => failed += 1,
                }
                counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }
        }
        (ok, failed)
    });
    // Kill Redis while the load is running.
    assert!(
        eventually(Duration::from_secs(5), || served
            .load(std::sync::atomic::Ordering::SeqCst)
            >= 20)
        .await
    );
    cluster.redis.stop();
    let (ok, failed) = load.await.unwrap();
    assert_eq!(failed, 0, "{ok} ok, {failed} failed while Redis died");
    for w in &cluster.workers {
        let health = w.get("/v1/health").await;
        assert_eq!(health.json["shared"], false, "{}", health.text);
        let mut body = chat("groq/x", "cache while down");
        body["temperature"] = json!(0);
        let r = w.post("/v1/chat/completions", body).await;
        assert_eq!(r.status, 200);
        assert_ne!(r.header("x-mana-llm-cache"), Some("hit"));
        assert_eq!(
            metric(&w.get("/metrics").await.text, "mana_llm_redis_up", &[]),
            Some(0.0)
        );
    }

    cluster.redis.restart();
    // The control plane republishes its current version into the fresh, empty Redis by
    // itself: nothing is pushed until that is seen.
    let version = cluster.current_version().await;
    let redis = &cluster.redis;
    assert!(
        eventually_async(Duration::from_secs(15), || async {
            let mut conn = redis.conn().await;
            let raw: Option<String> = redis::cmd("GET")
                .arg("mana-llm:registry:current")
                .query_async(&mut conn)
                .await
                .unwrap();
            raw.and_then(|r| serde_json::from_str::<PublishedVersion>(&r).ok())
                .is_some_and(|p| p.version.0 == version)
        })
        .await,
        "the control plane republished version {version} into the restarted Redis"
    );
    for w in &cluster.workers {
        assert!(
            eventually_async(Duration::from_secs(10), || async {
                w.get("/v1/health").await.json["shared"] == true
            })
            .await
        );
    }
    // And the workers subscribed again: a push reaches them without their slow timer.
    let version = cluster.push(&echo(5)).await;
    cluster.converge(version).await;
}

#[tokio::test]
async fn workers_keep_serving_when_the_control_plane_dies() {
    let mut cluster = Cluster::start(2).await;
    let version = cluster.push(&echo(3)).await;
    cluster.converge(version).await;
    cluster.control_plane.signal("KILL");
    for w in &cluster.workers {
        let r = w
            .post("/v1/chat/completions", chat("mana/echo", "still here"))
            .await;
        assert_eq!(r.json["model"], "echo/v3");
        assert_eq!(w.get("/ready").await.status, 200);
    }
    let _ = cluster.control_plane.wait_exit(Duration::from_secs(5));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_a_slow_stream_finish_then_exits_zero() {
    let mut cluster = Cluster::start(1).await;
    cluster.mock.set_default(
        Route::OllamaChat,
        MockReply::text(&["slow", " but", " complete"]).interval(Duration::from_millis(300)),
    );
    let url = cluster.workers[0].url("/v1/chat/completions");
    let mut body = chat("ollama/slow", "stream");
    body["stream"] = json!(true);
    let stream = tokio::spawn(async move {
        client()
            .post(url)
            .json(&body)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    });
    let w = &cluster.workers[0];
    assert!(
        eventually_async(Duration::from_secs(5), || async {
            metric(
                &w.get("/metrics").await.text,
                "mana_llm_time_to_first_token_seconds_count",
                &[],
            )
            .is_some_and(|n| n >= 1.0)
        })
        .await
    );
    w.signal("TERM");
    let ready = w.url("/ready");
    assert!(
        eventually_async(Duration::from_secs(2), || async {
            // Draining: not ready, or not accepting new connections at all.
            client()
                .get(&ready)
                .send()
                .await
                .map_or(true, |r| r.status() != 200)
        })
        .await,
        "not ready while draining"
    );
    let text = stream.await.unwrap();
    assert_eq!(
        streamed_text(&chunks(&sse_data(&text))),
        "slow but complete"
    );
    assert!(text.trim_end().ends_with("data: [DONE]"));
    let worker = cluster.workers.last_mut().unwrap();
    assert_eq!(
        tokio::task::block_in_place(|| worker.wait_exit(Duration::from_secs(10))),
        Some(0)
    );
}

#[tokio::test]
async fn serve_with_redis_shares_its_registry_and_cache_with_workers() {
    let redis = RedisServer::start();
    let mock = MockProvider::start().await;
    let serve = Gateway::builder()
        .mock(&mock)
        .aliases(ALIASES)
        .env("REDIS_URL", redis.url())
        .start();
    let worker = Gateway::worker(&redis.url()).mock(&mock).start();
    // The embedded control plane publishes to Redis too, so the worker serves its version.
    assert!(
        eventually_async(Duration::from_secs(10), || async {
            let aliases = worker.get("/v1/aliases").await;
            worker.get("/ready").await.status == 200
                && aliases.json["aliases"][1]["name"] == "mana/echo"
        })
        .await,
        "the worker serves serve's registry: {}",
        worker.get("/v1/aliases").await.text
    );

    redis_up(&serve).await;
    redis_up(&worker).await;
    let mut body = chat("groq/shared", "one answer for all");
    body["temperature"] = json!(0);
    assert_eq!(
        serve
            .post("/v1/chat/completions", body.clone())
            .await
            .header("x-mana-llm-cache"),
        Some("miss")
    );
    assert_eq!(
        worker
            .post("/v1/chat/completions", body)
            .await
            .header("x-mana-llm-cache"),
        Some("hit")
    );
    assert_eq!(mock.calls(Route::OpenAiChat), 1);
    assert_eq!(serve.get("/v1/health").await.json["shared"], true);
}
