//! The fleet's use of Redis, measured against a real `redis-server`: a healthy request sends
//! it nothing, a frozen Redis stalls no request, an empty one keeps workers out of the load
//! balancer until a version arrives, and a restarted one gets its state back.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use mana_llm_mock::{MockProvider, Reply as MockReply, Route};
use mana_llm_shared::bus::PublishedVersion;
use mana_llm_shared::fleet_key::FLEET_KEY_ENV;
use mana_llm_shared::{Registry, RegistryVersion};
use serde_json::json;

use crate::fleet::Cluster;
use crate::support::*;

const ALIASES: &str = "aliases:\n  mana/echo: {chain: [echo/v1]}\ndefault: mana/echo\n";

/// Writes a signed version to `current` and announces it, as the control plane would.
async fn publish(redis: &RedisServer, version: u64, yaml: &str) {
    let registry = Registry::parse(yaml, "test", RegistryVersion(version)).unwrap();
    let published = PublishedVersion::of(&registry).signed(&fleet_key());
    let mut conn = redis.conn().await;
    let _: () = redis::cmd("SET")
        .arg("mana-llm:registry:current")
        .arg(serde_json::to_string(&published).unwrap())
        .query_async(&mut conn)
        .await
        .unwrap();
    let _: i64 = redis::cmd("PUBLISH")
        .arg("mana-llm:registry:versions")
        .arg(serde_json::to_string(&published.announcement()).unwrap())
        .query_async(&mut conn)
        .await
        .unwrap();
}

/// Calls per command, from `INFO commandstats`.
async fn command_calls(redis: &RedisServer) -> HashMap<String, u64> {
    let mut conn = redis.conn().await;
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(&mut conn)
        .await
        .unwrap();
    info.lines()
        .filter_map(|l| l.strip_prefix("cmdstat_"))
        .filter_map(|l| {
            let (name, rest) = l.split_once(':')?;
            let calls = rest
                .strip_prefix("calls=")?
                .split(',')
                .next()?
                .parse()
                .ok()?;
            Some((name.to_owned(), calls))
        })
        .collect()
}

/// Commands that ran between two readings, leaving out the test's own `INFO` and the
/// subscriptions' keep-alive pings.
fn delta(before: &HashMap<String, u64>, after: &HashMap<String, u64>) -> HashMap<String, u64> {
    after
        .iter()
        .filter(|(name, _)| !matches!(name.as_str(), "info" | "ping"))
        .map(|(name, n)| (name.clone(), n - before.get(name).copied().unwrap_or(0)))
        .filter(|(_, n)| *n > 0)
        .collect()
}

/// Waits until `w` serves a version and shares health through Redis.
async fn ready_and_shared(w: &Gateway) {
    assert!(
        eventually_async(Duration::from_secs(10), || async {
            w.get("/ready").await.status == 200 && w.get("/v1/health").await.json["shared"] == true
        })
        .await,
        "ready and shared"
    );
}

fn worker(redis: &RedisServer, mock: &MockProvider) -> GatewayBuilder {
    Gateway::worker(&redis.url())
        .mock(mock)
        .env(FLEET_KEY_ENV, FLEET_KEY)
}

#[tokio::test]
async fn a_worker_is_not_ready_until_a_version_is_installed() {
    let redis = RedisServer::start();
    let mock = MockProvider::start().await;
    let w = worker(&redis, &mock).start();
    let r = w.get("/ready").await;
    assert_eq!(r.status, 503, "{}", r.text);
    assert_eq!(r.json["status"], "no_registry");
    assert_eq!(r.json["registry_version"], 0);
    publish(&redis, 1, ALIASES).await;
    assert!(
        eventually_async(Duration::from_secs(10), || async {
            w.get("/ready").await.status == 200
        })
        .await
    );
    assert_eq!(w.get("/ready").await.json["registry_version"], 1);
}

#[tokio::test]
async fn healthy_requests_send_no_command_to_redis() {
    let redis = RedisServer::start();
    let mock = MockProvider::start().await;
    // A long sync interval: the periodic version check must not be what is counted.
    let w = worker(&redis, &mock)
        .env("MANA_LLM_SYNC_INTERVAL", "600")
        .start();
    publish(&redis, 1, ALIASES).await;
    ready_and_shared(&w).await;
    // Warm: the first calls of a provider may set things up.
    assert_eq!(
        w.post("/v1/chat/completions", chat("groq/ok", "warm"))
            .await
            .status,
        200
    );

    let before = command_calls(&redis).await;
    for i in 0..200 {
        // Not cacheable (no temperature 0, no seed): the cache does not look.
        let r = w
            .post(
                "/v1/chat/completions",
                chat("groq/ok", &format!("hello {i}")),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.text);
    }
    let healthy = delta(&before, &command_calls(&redis).await);
    assert!(
        healthy.is_empty(),
        "commands for 200 healthy requests: {healthy:?}"
    );

    // The measurement can see commands: one failure reaches the shared breaker.
    mock.push(Route::OpenAiChat, MockReply::status(500));
    let before = command_calls(&redis).await;
    let r = w
        .post("/v1/chat/completions", chat("groq/ok", "fail once"))
        .await;
    assert_eq!(r.status, 502, "{}", r.text);
    let failing = delta(&before, &command_calls(&redis).await);
    assert!(
        failing.keys().any(|k| k.starts_with("eval")),
        "a failure is shared through the breaker script: {failing:?}"
    );
}

#[tokio::test]
async fn a_frozen_redis_stalls_no_request() {
    let redis = RedisServer::start();
    let mock = MockProvider::start().await;
    let w = worker(&redis, &mock)
        .env("MANA_LLM_REDIS_TIMEOUT_MS", "200")
        .start();
    publish(&redis, 1, ALIASES).await;
    ready_and_shared(&w).await;
    let cacheable = |i: usize| {
        let mut body = chat("groq/ok", &format!("frozen {i}"));
        body["temperature"] = json!(0);
        body
    };
    assert_eq!(
        w.post("/v1/chat/completions", cacheable(0))
            .await
            .header("x-mana-llm-cache"),
        Some("miss")
    );

    // Paused, not dead: connections are accepted by the kernel and never answered. Every
    // request looks its answer up in the cache, so each one would touch Redis; ten at a time,
    // so requests queued behind one another would show.
    redis.signal("STOP");
    let mut slowest = Duration::ZERO;
    for round in 0..3 {
        let requests = (0..10).map(|i| {
            let body = cacheable(1 + round * 10 + i);
            let w = &w;
            async move {
                let start = Instant::now();
                let r = w.post("/v1/chat/completions", body).await;
                (r, start.elapsed())
            }
        });
        for (r, took) in futures_util::future::join_all(requests).await {
            assert_eq!(r.status, 200, "{}", r.text);
            slowest = slowest.max(took);
        }
    }
    redis.signal("CONT");
    eprintln!("slowest request while Redis was frozen: {slowest:?}");
    // A guard against the stall (seconds per request before), not a speed target: no
    // request may wait on Redis longer than its 200 ms timeout, plus a margin for a loaded
    // machine (a connect attempt alone would be 2 s).
    assert!(
        slowest < Duration::from_millis(800),
        "a request waited {slowest:?}"
    );

    // Thawed: shared state comes back by itself.
    assert!(
        eventually_async(Duration::from_secs(10), || async {
            w.get("/v1/health").await.json["shared"] == true
                && metric(&w.get("/metrics").await.text, "mana_llm_redis_up", &[]) == Some(1.0)
        })
        .await,
        "Redis is shared again after SIGCONT"
    );
}

#[tokio::test]
async fn a_redis_restarted_empty_gets_the_current_version_back() {
    let mut cluster = Cluster::start(1).await;
    let version = cluster
        .push("aliases:\n  mana/echo: {chain: [echo/v2]}\ndefault: mana/echo\n")
        .await;
    cluster.converge(version).await;

    cluster.redis.stop();
    cluster.redis.restart();
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
                .is_some_and(|p| p.version.0 == version && p.signature.is_some())
        })
        .await,
        "the control plane re-published its version into the empty Redis"
    );
    // A worker started now boots on it, with no control-plane fallback configured.
    cluster.add_worker(7, &[]);
    cluster.converge(version).await;
}
