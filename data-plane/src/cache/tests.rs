//! Tests of the policy, the key and the read-through; the tiers, flights and replay have their
//! own next to their code. No Redis here: the e2e suite covers it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use http::header::CACHE_CONTROL;
use http::{HeaderMap, HeaderValue};
use mana_llm_shared::bus::BusNames;
use mana_llm_shared::fleet_key::to_hex;
use serde_json::{json, Value};
use tokio::sync::Notify;

use super::*;
use crate::openai::ChatRequest;

fn request(v: Value) -> ChatRequest {
    serde_json::from_value(v).unwrap()
}

fn chain() -> Vec<String> {
    vec!["groq/llama".to_owned(), "ollama/gemma".to_owned()]
}

fn decide_with(req: Value, cache_control: Option<&str>) -> Decision {
    let mut headers = HeaderMap::new();
    if let Some(cc) = cache_control {
        headers.insert(CACHE_CONTROL, HeaderValue::from_str(cc).unwrap());
    }
    decide(
        &CacheConfig::default(),
        &request(req),
        &headers,
        None,
        chain,
        &BusNames::default(),
    )
}

/// The key of a deterministic request for `tenant`, with the cache scoped by `scope`.
fn key_for(scope: CacheScope, tenant: Option<&Tenant>) -> CacheKey {
    let config = CacheConfig {
        scope,
        ..CacheConfig::default()
    };
    let req = request(json!({"messages": msgs(), "temperature": 0}));
    match decide(
        &config,
        &req,
        &HeaderMap::new(),
        tenant,
        chain,
        &BusNames::default(),
    ) {
        Decision::Use { key, .. } => key,
        other => panic!("deterministic requests use the cache: {other:?}"),
    }
}

fn msgs() -> Value {
    json!([{"role": "user", "content": "hi"}])
}

#[test]
fn config_defaults_and_overrides() {
    assert_eq!(
        CacheConfig::from_source(&Source::default()).unwrap(),
        CacheConfig::default()
    );
    let vars = HashMap::from([
        ("MANA_LLM_CACHE".to_owned(), "off".to_owned()),
        ("CACHE_TTL".to_owned(), "10".to_owned()),
        ("MANA_LLM_CACHE_MAX_ENTRY_KB".to_owned(), "2".to_owned()),
        ("MANA_LLM_CACHE_LOCAL_ENTRIES".to_owned(), "0".to_owned()),
        ("MANA_LLM_CACHE_LOCAL_TTL".to_owned(), "0.5".to_owned()),
        ("MANA_LLM_CACHE_SCOPE".to_owned(), " Shared ".to_owned()),
    ]);
    let c = CacheConfig::from_source(&Source::from_map(vars)).unwrap();
    assert!(!c.enabled);
    assert_eq!(c.ttl, Duration::from_secs(10));
    assert_eq!(c.max_entry_bytes, 2048);
    assert_eq!(c.local_entries, 0);
    assert_eq!(c.local_ttl, Duration::from_millis(500));
    assert_eq!(c.scope, CacheScope::Shared);
    let bad = HashMap::from([("CACHE_TTL".to_owned(), "soon".to_owned())]);
    assert!(CacheConfig::from_source(&Source::from_map(bad)).is_err());
}

#[test]
fn scope_is_per_key_unless_shared_on_purpose() {
    let scope = |v: &str| {
        let vars = HashMap::from([("MANA_LLM_CACHE_SCOPE".to_owned(), v.to_owned())]);
        CacheConfig::from_source(&Source::from_map(vars)).map(|c| c.scope)
    };
    assert_eq!(CacheConfig::default().scope, CacheScope::Key);
    assert_eq!(scope(""), Ok(CacheScope::Key));
    assert_eq!(scope("key"), Ok(CacheScope::Key));
    assert_eq!(scope("shared"), Ok(CacheScope::Shared));
    let e = scope("global").unwrap_err();
    assert_eq!(e.key, "MANA_LLM_CACHE_SCOPE");
    assert!(e.message.contains("global"), "{e}");
}

#[test]
fn only_deterministic_requests_are_cached() {
    let d = decide_with(json!({"messages": msgs(), "temperature": 0}), None);
    let Decision::Use { key, read: true } = d else {
        panic!("temperature 0 is cached: {d:?}");
    };
    assert!(key.0.starts_with(&BusNames::default().cache_key("")));
    assert_eq!(
        key.0.len(),
        BusNames::default().cache_key("").len() + 64,
        "hex SHA-256"
    );
    assert_eq!(
        decide_with(json!({"messages": msgs(), "temperature": 0.7}), None),
        Decision::Bypass("not_deterministic")
    );
    assert_eq!(
        decide_with(json!({"messages": msgs()}), None),
        Decision::Bypass("not_deterministic")
    );
    assert!(matches!(
        decide_with(
            json!({"messages": msgs(), "temperature": 0.7, "seed": 1}),
            None
        ),
        Decision::Use { read: true, .. }
    ));
    assert_eq!(
        decide_with(json!({"messages": msgs(), "seed": 1, "n": 2}), None),
        Decision::Bypass("multiple_choices")
    );
}

#[test]
fn cache_control_is_honoured() {
    let det = json!({"messages": msgs(), "temperature": 0});
    assert_eq!(
        decide_with(det.clone(), Some("max-age=0, No-Store")),
        Decision::Bypass("no_store")
    );
    assert!(matches!(
        decide_with(det.clone(), Some("no-cache")),
        Decision::Use { read: false, .. }
    ));
    assert!(matches!(
        decide_with(det, Some("max-age=60")),
        Decision::Use { read: true, .. }
    ));
    let off = CacheConfig {
        enabled: false,
        ..CacheConfig::default()
    };
    let d = decide(
        &off,
        &request(json!({"messages": msgs(), "temperature": 0})),
        &HeaderMap::new(),
        None,
        chain,
        &BusNames::default(),
    );
    assert_eq!(d, Decision::Bypass("disabled"));
}

#[test]
fn key_ignores_order_and_transport_fields() {
    let a = request(json!({
        "model": "mana/fast", "messages": msgs(), "temperature": 0, "logprobs": true,
        "tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object", "properties": {"a": {}, "b": {}}}}}]
    }));
    let b = request(json!({
        "tools": [{"function": {"parameters": {"properties": {"b": {}, "a": {}}, "type": "object"}, "name": "f"}, "type": "function"}],
        "logprobs": true, "temperature": 0.0, "messages": msgs(), "model": "groq/llama",
        "stream": true, "stream_options": {"include_usage": true}, "user": "someone"
    }));
    assert_eq!(key_of(&a, &chain(), None), key_of(&b, &chain(), None));
}

#[test]
fn key_depends_on_chain_and_content() {
    let a = request(json!({"messages": msgs(), "temperature": 0}));
    let base = key_of(&a, &chain(), None);
    assert_ne!(base, key_of(&a, &["groq/llama".to_owned()], None));
    let reversed: Vec<String> = chain().into_iter().rev().collect();
    assert_ne!(base, key_of(&a, &reversed, None));
    let other =
        request(json!({"messages": [{"role": "user", "content": "hello"}], "temperature": 0}));
    assert_ne!(base, key_of(&other, &chain(), None));
    let more_tokens = request(json!({"messages": msgs(), "temperature": 0, "max_tokens": 5}));
    assert_ne!(base, key_of(&more_tokens, &chain(), None));
    // A request field named like the chain cannot stand in for it.
    let imitation = request(json!({"messages": msgs(), "temperature": 0, "chain": chain()}));
    assert_ne!(base, key_of(&imitation, &[], None));
}

#[test]
fn known_answer_keys() {
    // Pinned: a change to the canonical form (or the tenant tag) must be a decision, since it
    // turns every entry in a running fleet into a miss. Bump the key's version with it.
    // Computed outside Rust as the SHA-256 of
    // {"chain":["groq/llama","ollama/gemma"],"request":{"messages":[{"content":"hi","role":"user"}],"temperature":0.0}}
    // and, for the tenant, with ,"tenant":"<hex SHA-256 of b"mana-llm cache tenant v1\0client-key-1">"
    // added at the end.
    assert_eq!(
        key_for(CacheScope::Key, None).0,
        "mana-llm:cache:v2:ca02e18b8a76751c9b8332dd287df4eefbd197814fb6ca60ae59e221a0d39f9f"
    );
    assert_eq!(
        key_for(
            CacheScope::Key,
            Some(&Tenant::of_client_key("client-key-1"))
        )
        .0,
        "mana-llm:cache:v2:b22ca8916c798e3cebd11dd06f9ae6b535c67c50ca3a900090d85d1059edcfb7"
    );
}

#[test]
fn each_client_key_has_its_own_entries() {
    let a = Tenant::of_client_key("client-key-a");
    let b = Tenant::of_client_key("client-key-b");
    let key_a = key_for(CacheScope::Key, Some(&a));
    assert_eq!(key_a, key_for(CacheScope::Key, Some(&a)), "stable per key");
    assert_ne!(key_a, key_for(CacheScope::Key, Some(&b)));
    assert_ne!(
        key_a,
        key_for(CacheScope::Key, None),
        "apart from unauthenticated use"
    );
    // Shared on purpose: every client, and no client, use one entry.
    let shared = key_for(CacheScope::Shared, Some(&a));
    assert_eq!(shared, key_for(CacheScope::Shared, Some(&b)));
    assert_eq!(shared, key_for(CacheScope::Key, None));
}

#[test]
fn the_tenant_tag_shows_nowhere() {
    let t = Tenant::of_client_key("client-key-secret");
    assert_eq!(format!("{t:?}"), "Tenant([redacted])");
    let key = key_for(CacheScope::Key, Some(&t));
    assert!(!key.0.contains("client-key-secret"));
    assert!(
        !key.0.contains(&to_hex(&t.0)),
        "only the hash of the tag is in the key"
    );
}

// Paused time: should B wrongly join A's flight, both wait forever, the clock jumps and the
// timeout below fails the test instead of hanging it.
#[tokio::test(start_paused = true)]
async fn tenants_do_not_share_the_local_tier_or_a_flight() {
    let (cache, _) = cache_with(CacheConfig::default());
    let key_a = key_for(CacheScope::Key, Some(&Tenant::of_client_key("a")));
    let key_b = key_for(CacheScope::Key, Some(&Tenant::of_client_key("b")));
    let release = Arc::new(Notify::new());
    // A's fetch is still running when B asks: B must not join it.
    let a = {
        let (cache, release, key_a) = (cache.clone(), release.clone(), key_a.clone());
        tokio::spawn(async move {
            cache
                .lookup(&key_a, true, || async move {
                    release.notified().await;
                    Ok::<_, String>(answer("for a"))
                })
                .await
        })
    };
    tokio::task::yield_now().await;
    let b = cache.lookup(&key_b, true, || async { Ok::<_, String>(answer("for b")) });
    let (c, outcome) = tokio::time::timeout(Duration::from_secs(5), b)
        .await
        .expect("B does not wait for A's fetch")
        .unwrap();
    assert_eq!((text(&c), outcome), ("for b", Outcome::Miss));
    release.notify_one();
    assert_eq!(text(&a.await.unwrap().unwrap().0), "for a");
    // Both stored locally; each tenant reads its own.
    assert_eq!(text(&cache.get(&key_a).await.unwrap().0), "for a");
    assert_eq!(text(&cache.get(&key_b).await.unwrap().0), "for b");
}

fn answer(text: &str) -> Cached {
    Cached {
        target: "groq/llama".to_owned(),
        completion: serde_json::from_value(json!({
            "id": "chatcmpl-1", "created": 1, "model": "groq/llama",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}
        }))
        .unwrap(),
    }
}

fn text(c: &Cached) -> &str {
    c.completion.choices[0].message.content.as_deref().unwrap()
}

fn cache_with(config: CacheConfig) -> (Arc<ResponseCache>, Arc<Metrics>) {
    let metrics = Arc::new(Metrics::new().unwrap());
    (
        Arc::new(ResponseCache::new(config, None, None, metrics.clone())),
        metrics,
    )
}

fn count(metrics: &Metrics, result: &str, tier: &str) -> u64 {
    metrics
        .cache_requests_total
        .with_label_values(&[result, tier])
        .get()
}

fn key() -> CacheKey {
    CacheKey(BusNames::default().cache_key("abc"))
}

#[tokio::test(start_paused = true)]
async fn miss_then_hit_then_expiry() {
    let (cache, metrics) = cache_with(CacheConfig {
        local_ttl: Duration::from_secs(60),
        ..CacheConfig::default()
    });
    let (c, outcome) = cache
        .lookup(&key(), true, || async { Ok::<_, String>(answer("one")) })
        .await
        .unwrap();
    assert_eq!((text(&c), outcome), ("one", Outcome::Miss));
    let (c, outcome) = cache
        .lookup(&key(), true, || async { Ok::<_, String>(answer("two")) })
        .await
        .unwrap();
    assert_eq!((text(&c), outcome), ("one", Outcome::Hit(Tier::Local)));
    assert_eq!(outcome.header_value(), "hit");
    assert_eq!(count(&metrics, "miss", "none"), 1);
    assert_eq!(count(&metrics, "hit", "local"), 1);

    // `no-cache`: no read, but the fresh answer replaces the old one.
    let (c, outcome) = cache
        .lookup(&key(), false, || async { Ok::<_, String>(answer("three")) })
        .await
        .unwrap();
    assert_eq!((text(&c), outcome), ("three", Outcome::Miss));
    assert_eq!(text(&cache.get(&key()).await.unwrap().0), "three");

    tokio::time::advance(Duration::from_secs(61)).await;
    assert!(cache.get(&key()).await.is_none(), "local entries expire");
    cache.record_bypass("not_deterministic");
    assert_eq!(count(&metrics, "bypass", "none"), 1);
}

#[tokio::test]
async fn concurrent_identical_misses_fetch_once() {
    let (cache, metrics) = cache_with(CacheConfig::default());
    let fetches = Arc::new(AtomicUsize::new(0));
    let release = Arc::new(Notify::new());
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let (cache, fetches, release) = (cache.clone(), fetches.clone(), release.clone());
        tasks.push(tokio::spawn(async move {
            cache
                .lookup(&key(), true, || async move {
                    fetches.fetch_add(1, Ordering::SeqCst);
                    release.notified().await;
                    Ok::<_, String>(answer("shared"))
                })
                .await
        }));
    }
    // Let every task reach its waiting point before the leader may finish.
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
    // The leader is fetching, alone: the others wait on its flight (a task that came late
    // would find the stored answer and report a hit, failing the all-miss check below).
    assert_eq!(fetches.load(Ordering::SeqCst), 1);
    assert_eq!(cache.flights.in_flight(), 1);
    release.notify_one();
    for task in tasks {
        let (c, outcome) = task.await.unwrap().unwrap();
        assert_eq!((text(&c), outcome), ("shared", Outcome::Miss));
    }
    assert_eq!(fetches.load(Ordering::SeqCst), 1);
    assert_eq!(count(&metrics, "miss", "none"), 20);
    assert_eq!(cache.flights.in_flight(), 0);
    assert!(cache.get(&key()).await.is_some());
}

#[tokio::test]
async fn errors_are_shared_and_not_stored() {
    let (cache, _) = cache_with(CacheConfig::default());
    let fetches = Arc::new(AtomicUsize::new(0));
    let release = Arc::new(Notify::new());
    let mut tasks = Vec::new();
    for _ in 0..5 {
        let (cache, fetches, release) = (cache.clone(), fetches.clone(), release.clone());
        tasks.push(tokio::spawn(async move {
            cache
                .lookup(&key(), true, || async move {
                    fetches.fetch_add(1, Ordering::SeqCst);
                    release.notified().await;
                    Err::<Cached, _>("upstream down".to_owned())
                })
                .await
        }));
    }
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
    release.notify_one();
    for task in tasks {
        assert_eq!(task.await.unwrap().unwrap_err(), "upstream down");
    }
    assert_eq!(fetches.load(Ordering::SeqCst), 1);
    assert!(cache.get(&key()).await.is_none());
}

#[tokio::test]
async fn a_dropped_leader_hands_over_to_a_waiter() {
    let (cache, _) = cache_with(CacheConfig::default());
    let leader = {
        let cache = cache.clone();
        tokio::spawn(async move {
            cache
                .lookup(&key(), true, || {
                    std::future::pending::<Result<Cached, String>>()
                })
                .await
        })
    };
    tokio::task::yield_now().await;
    let waiter = {
        let cache = cache.clone();
        tokio::spawn(async move {
            cache
                .lookup(&key(), true, || async { Ok::<_, String>(answer("second")) })
                .await
        })
    };
    tokio::task::yield_now().await;
    assert!(!waiter.is_finished(), "waits for the first fetch");
    leader.abort();
    let (c, outcome) = waiter.await.unwrap().unwrap();
    assert_eq!((text(&c), outcome), ("second", Outcome::Miss));
}

#[tokio::test]
async fn too_large_answers_are_not_stored() {
    let (cache, _) = cache_with(CacheConfig {
        max_entry_bytes: 300,
        ..CacheConfig::default()
    });
    let big = answer(&"x".repeat(400));
    let (c, _) = cache
        .lookup(&key(), true, || async { Ok::<_, String>(big) })
        .await
        .unwrap();
    assert_eq!(text(&c).len(), 400, "still answered");
    assert!(cache.get(&key()).await.is_none());
    cache.put(&key(), &answer(&"x".repeat(400))).await;
    assert!(cache.get(&key()).await.is_none());
    cache.put(&key(), &answer("small")).await;
    assert!(cache.get(&key()).await.is_some());
}

#[tokio::test]
async fn redis_down_is_a_miss() {
    let metrics = Arc::new(Metrics::new().unwrap());
    // Nothing listens on port 1: connecting fails at once.
    let redis = crate::redis::connect(
        redis::Client::open("redis://127.0.0.1:1/").unwrap(),
        BusNames::default(),
        Duration::from_millis(50),
        metrics.redis_up.clone(),
        metrics.redis_errors_total.clone(),
    );
    let cache = ResponseCache::new(
        CacheConfig {
            local_entries: 0,
            ..CacheConfig::default()
        },
        Some(redis),
        None,
        metrics,
    );
    cache.put(&key(), &answer("a")).await;
    assert!(cache.get(&key()).await.is_none());
    let (_, outcome) = cache
        .lookup(&key(), true, || async { Ok::<_, String>(answer("b")) })
        .await
        .unwrap();
    assert_eq!(outcome, Outcome::Miss);
}

#[test]
fn stored_form_round_trips() {
    let json = serde_json::to_vec(&answer("a")).unwrap();
    let back: Cached = serde_json::from_slice(&json).unwrap();
    assert_eq!(back.target, "groq/llama");
    assert_eq!(text(&back), "a");
    assert_eq!(Outcome::Miss.header_value(), "miss");
}

/// The labels and header values are part of the contract (metrics, `X-Mana-LLM-Cache`): pinned.
#[test]
fn labels_and_header_values_are_pinned() {
    assert_eq!(Tier::Local.label(), "local");
    assert_eq!(Tier::Redis.label(), "redis");
    assert_eq!(Outcome::Hit(Tier::Local).header_value(), "hit");
    assert_eq!(Outcome::Miss.header_value(), "miss");
    assert_eq!(bypass_header_value(), "bypass");
}

#[test]
fn the_cache_reports_its_own_configuration() {
    let (cache, _) = cache_with(CacheConfig {
        max_entry_bytes: 1234,
        ttl: Duration::from_secs(77),
        ..CacheConfig::default()
    });
    assert_eq!(cache.config().max_entry_bytes, 1234);
    assert_eq!(cache.config().ttl, Duration::from_secs(77));
}

#[tokio::test]
async fn an_answer_exactly_at_the_size_limit_is_stored() {
    let exact = serde_json::to_vec(&answer("just fits")).unwrap().len();
    let (cache, _) = cache_with(CacheConfig {
        max_entry_bytes: exact,
        ..CacheConfig::default()
    });
    cache.put(&key(), &answer("just fits")).await;
    assert!(cache.get(&key()).await.is_some(), "a limit is inclusive");
    let (cache, _) = cache_with(CacheConfig {
        max_entry_bytes: exact - 1,
        ..CacheConfig::default()
    });
    cache.put(&key(), &answer("just fits")).await;
    assert!(
        cache.get(&key()).await.is_none(),
        "one byte over is not stored"
    );
}

#[test]
fn one_choice_is_cached_more_than_one_is_not() {
    assert!(matches!(
        decide_with(json!({"messages": msgs(), "seed": 1, "n": 1}), None),
        Decision::Use { read: true, .. }
    ));
    assert_eq!(
        decide_with(json!({"messages": msgs(), "seed": 1, "n": 2}), None),
        Decision::Bypass("multiple_choices")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_stored_by_one_worker_is_found_by_another_through_redis() {
    let server = crate::health::redis_store::test_redis::RedisServer::start();
    let names = crate::health::redis_store::test_redis::fresh_names();
    let worker = || {
        let metrics = Arc::new(Metrics::new().unwrap());
        let redis = crate::health::redis_store::test_redis::shared_redis(&server.url(), &names);
        ResponseCache::new(
            CacheConfig {
                local_entries: 0,
                ..CacheConfig::default()
            },
            Some(redis),
            None,
            metrics,
        )
    };
    let (a, b) = (worker(), worker());
    // Requests never wait for a connection; a cache that has none yet reads nothing.
    for cache in [&a, &b] {
        let redis = cache.redis.as_ref().unwrap();
        assert!(redis
            .connection_waiting(Duration::from_secs(5))
            .await
            .is_some());
    }
    a.put(&key(), &answer("shared")).await;
    let (found, tier) = b.get(&key()).await.expect("b finds a's answer in Redis");
    assert_eq!((text(&found), tier), ("shared", Tier::Redis));
}
