//! The response cache as something to trust: entries in Redis are served only with the fleet
//! key's MAC, and one client key never gets another's cached answer unless shared on purpose.

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use mana_llm_mock::{MockProvider, Route};
use serde_json::{json, Value};

use crate::support::*;

const FLEET_KEY: &str = "e2e-fleet-key-0123456789";

fn deterministic(content: &str) -> Value {
    let mut body = chat("groq/cached", content);
    body["temperature"] = json!(0);
    body
}

type Conn = redis::aio::MultiplexedConnection;

async fn redis_conn(redis: &RedisServer) -> Conn {
    redis::Client::open(redis.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

/// The one cached answer in Redis: its key and stored value.
async fn the_cache_entry(conn: &mut Conn) -> (String, String) {
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg("mana-llm:cache:*")
        .query_async(conn)
        .await
        .unwrap();
    assert_eq!(keys.len(), 1, "{keys:?}");
    let value: String = redis::cmd("GET")
        .arg(&keys[0])
        .query_async(conn)
        .await
        .unwrap();
    (keys[0].clone(), value)
}

async fn set(conn: &mut Conn, key: &str, value: &str) {
    let _: () = redis::cmd("SET")
        .arg(key)
        .arg(value)
        .query_async(conn)
        .await
        .unwrap();
}

fn rejected(gw_metrics: &str, reason: &str) -> f64 {
    metric(
        gw_metrics,
        "mana_llm_cache_rejected_total",
        &[&format!("reason=\"{reason}\"")],
    )
    .unwrap_or(0.0)
}

#[tokio::test]
async fn an_entry_changed_in_redis_is_a_miss() {
    let redis = RedisServer::start();
    let mock = MockProvider::start().await;
    let gw = Gateway::builder()
        .mock(&mock)
        .env("REDIS_URL", redis.url())
        .env("MANA_LLM_FLEET_KEY", FLEET_KEY)
        // Every hit comes from Redis, so what is in Redis is what gets served.
        .env("MANA_LLM_CACHE_LOCAL_ENTRIES", "0")
        .start();
    redis_up(&gw).await;
    let body = deterministic("what is stored");
    let first = gw.post("/v1/chat/completions", body.clone()).await;
    assert_eq!(
        first.header("x-mana-llm-cache"),
        Some("miss"),
        "{}",
        first.text
    );
    let again = gw.post("/v1/chat/completions", body.clone()).await;
    assert_eq!(again.header("x-mana-llm-cache"), Some("hit"));
    assert_eq!(mock.calls(Route::OpenAiChat), 1);
    let answer = first.json["choices"][0]["message"]["content"].clone();
    assert_eq!(answer, "Hello from mock");

    let mut conn = redis_conn(&redis).await;
    // The content changed in place, the MAC (if any) kept.
    let (key, value) = the_cache_entry(&mut conn).await;
    assert!(value.contains("Hello from mock"), "{value}");
    let injected = value.replace("Hello from mock", "Injected answer");
    set(&mut conn, &key, &injected).await;
    let reply = gw.post("/v1/chat/completions", body.clone()).await;
    assert_eq!(
        reply.header("x-mana-llm-cache"),
        Some("miss"),
        "{}",
        reply.text
    );
    assert_eq!(reply.json["choices"][0]["message"]["content"], answer);
    assert_eq!(
        mock.calls(Route::OpenAiChat),
        2,
        "the upstream is asked again"
    );
    let metrics = gw.get("/metrics").await.text;
    assert_eq!(rejected(&metrics, "bad_mac"), 1.0, "{metrics}");

    // The fresh answer replaced it; now the MAC dropped as well.
    let (key, value) = the_cache_entry(&mut conn).await;
    assert!(!value.contains("Injected answer"), "overwritten: {value}");
    let mut stored: Value = serde_json::from_str(&value).unwrap();
    stored.as_object_mut().unwrap().remove("mac");
    let unsigned = stored
        .to_string()
        .replace("Hello from mock", "Injected answer");
    set(&mut conn, &key, &unsigned).await;
    let reply = gw.post("/v1/chat/completions", body.clone()).await;
    assert_eq!(
        reply.header("x-mana-llm-cache"),
        Some("miss"),
        "{}",
        reply.text
    );
    assert_eq!(reply.json["choices"][0]["message"]["content"], answer);
    assert_eq!(mock.calls(Route::OpenAiChat), 3);

    // Not even JSON.
    set(&mut conn, &key, "garbage").await;
    let reply = gw.post("/v1/chat/completions", body.clone()).await;
    assert_eq!(reply.header("x-mana-llm-cache"), Some("miss"));
    assert_eq!(mock.calls(Route::OpenAiChat), 4);

    let metrics = gw.get("/metrics").await.text;
    assert_eq!(rejected(&metrics, "unsigned"), 1.0, "{metrics}");
    assert_eq!(rejected(&metrics, "malformed"), 1.0, "{metrics}");
    let logs = gw.logs();
    let warnings = logs
        .lines()
        .filter(|l| l.contains("WARN") && l.contains("cache entry from Redis rejected"))
        .count();
    assert_eq!(warnings, 3, "one warning per rejected entry:\n{logs}");
    assert!(!logs.contains("Injected answer"), "no content in logs");
    // And the repaired entry is served again.
    let reply = gw.post("/v1/chat/completions", body).await;
    assert_eq!(reply.header("x-mana-llm-cache"), Some("hit"));
    assert_eq!(mock.calls(Route::OpenAiChat), 4);
}

fn with_two_keys(redis: &RedisServer, mock: &MockProvider, scope: Option<&str>) -> Gateway {
    let builder = Gateway::builder()
        .mock(mock)
        .env("REDIS_URL", redis.url())
        .env("MANA_LLM_FLEET_KEY", FLEET_KEY)
        .env("GPU_API_KEY", "tenant-a-key")
        .env("MANA_LLM_API_KEYS", "tenant-b-key");
    match scope {
        Some(scope) => builder.env("MANA_LLM_CACHE_SCOPE", scope),
        None => builder,
    }
    .start()
}

async fn ask(gw: &Gateway, key: &str, body: &Value) -> Reply {
    gw.send(
        client()
            .post(gw.url("/v1/chat/completions"))
            .bearer_auth(key)
            .json(body),
    )
    .await
}

#[tokio::test]
async fn one_client_key_never_gets_anothers_hit() {
    let redis = RedisServer::start();
    let mock = MockProvider::start().await;
    let gw = with_two_keys(&redis, &mock, None);
    redis_up(&gw).await;
    let body = deterministic("did anyone ask this?");
    assert_eq!(
        ask(&gw, "tenant-a-key", &body)
            .await
            .header("x-mana-llm-cache"),
        Some("miss")
    );
    assert_eq!(
        ask(&gw, "tenant-a-key", &body)
            .await
            .header("x-mana-llm-cache"),
        Some("hit")
    );
    // Neither as a stream nor as a whole answer, from the local tier or from Redis.
    let mut streamed = body.clone();
    streamed["stream"] = json!(true);
    let b_stream = gw
        .send(
            client()
                .post(gw.url("/v1/chat/completions"))
                .header("x-api-key", "tenant-b-key")
                .json(&streamed),
        )
        .await;
    assert_eq!(b_stream.header("x-mana-llm-cache"), Some("miss"));
    let b = ask(&gw, "tenant-b-key", &body).await;
    assert_eq!(b.header("x-mana-llm-cache"), Some("miss"), "{}", b.text);
    // A's call, B's stream (a streamed miss is not stored) and B's whole answer.
    assert_eq!(mock.calls(Route::OpenAiChat), 3);
    assert_eq!(
        ask(&gw, "tenant-b-key", &body)
            .await
            .header("x-mana-llm-cache"),
        Some("hit"),
        "B has its own entry"
    );
    // A second worker on the same Redis, with an empty local tier: still apart.
    let other = with_two_keys(&redis, &mock, None);
    redis_up(&other).await;
    let fresh = deterministic("asked only by A");
    assert_eq!(
        ask(&gw, "tenant-a-key", &fresh)
            .await
            .header("x-mana-llm-cache"),
        Some("miss")
    );
    assert_eq!(
        ask(&other, "tenant-b-key", &fresh)
            .await
            .header("x-mana-llm-cache"),
        Some("miss")
    );
    assert_eq!(
        ask(&other, "tenant-a-key", &fresh)
            .await
            .header("x-mana-llm-cache"),
        Some("hit"),
        "A's entry is in Redis"
    );
}

#[tokio::test]
async fn a_shared_scope_shares_hits_between_keys() {
    let redis = RedisServer::start();
    let mock = MockProvider::start().await;
    let gw = with_two_keys(&redis, &mock, Some("shared"));
    redis_up(&gw).await;
    let body = deterministic("one answer for every client");
    assert_eq!(
        ask(&gw, "tenant-a-key", &body)
            .await
            .header("x-mana-llm-cache"),
        Some("miss")
    );
    let b = ask(&gw, "tenant-b-key", &body).await;
    assert_eq!(b.header("x-mana-llm-cache"), Some("hit"), "{}", b.text);
    assert_eq!(mock.calls(Route::OpenAiChat), 1);
}

#[test]
fn an_unknown_cache_scope_stops_the_start() {
    let mut child = Command::new(BINARY)
        .arg("serve")
        .env_clear()
        .env("PORT", "0")
        .env("MANA_LLM_PROBE", "off")
        .env("MANA_LLM_DB", temp_dir().join("x.db"))
        .env("MANA_LLM_CACHE_SCOPE", "everyone")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // A gateway that accepts the value would serve forever: wait with a deadline.
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    let status = status.unwrap_or_else(|| panic!("still serving after 20 s:\n{stderr}"));
    assert!(!status.success());
    assert!(stderr.contains("MANA_LLM_CACHE_SCOPE"), "{stderr}");
}
