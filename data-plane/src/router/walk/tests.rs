//! The chain walk in-process: fake providers, a scripted `call` per target, the real breaker
//! store (in memory) and the real deadlines.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use mana_llm_shared::{ProviderId, Registry, RegistryVersion};

use super::*;
use crate::config::{GatewayConfig, Source};
use crate::health::{Health, MemoryStore, SystemClock};
use crate::metrics::Metrics;
use crate::openai::ModelInfo;
use crate::openai::{ChatCompletion, ChatRequest};
use crate::openai::{Embeddings, EmbeddingsRequest};
use crate::providers::{ChunkStream, Providers};
use crate::router::plan;
use crate::snapshot::Snapshots;

const REGISTRY: &str = "
aliases:
  mana/chain: {chain: [ollama/first, groq/second]}
  mana/tools: {chain: [ollama/no-tools, groq/second]}
  mana/deadline:
    chain:
      - {target: ollama/slow, first_token_timeout_ms: 50}
      - groq/second
  mana/unset: {chain: [openai/x, groq/second]}
";

/// A provider that only has to exist: the walk's `call` decides what each target does.
struct Fake(ProviderId);

#[async_trait]
impl Provider for Fake {
    fn id(&self) -> &ProviderId {
        &self.0
    }
    fn supports_tools(&self, model: &str) -> bool {
        model != "no-tools"
    }
    async fn chat(&self, _: &ChatRequest, _: &str) -> Result<ChatCompletion, UpstreamError> {
        Err(UpstreamError::Protocol("not used".to_owned()))
    }
    async fn chat_stream(&self, _: &ChatRequest, _: &str) -> Result<ChunkStream, UpstreamError> {
        Err(UpstreamError::Protocol("not used".to_owned()))
    }
    async fn embeddings(
        &self,
        _: &EmbeddingsRequest,
        _: &str,
    ) -> Result<Embeddings, UpstreamError> {
        Err(UpstreamError::Protocol("not used".to_owned()))
    }
    async fn list_models(&self) -> Result<Vec<ModelInfo>, UpstreamError> {
        Ok(Vec::new())
    }
}

/// What a walk reads: the snapshot, and the breakers and deadlines of its context, built as
/// the gateway builds them from `env` (no `App`, no router).
struct World {
    config: GatewayConfig,
    health: Arc<Health>,
    snapshots: Snapshots,
}

impl World {
    fn state(&self) -> &Self {
        self
    }

    fn context(&self) -> WalkContext<'_> {
        WalkContext {
            health: &self.health,
            request_timeout: self.config.request_timeout,
            first_token_timeout: self.config.first_token_timeout,
        }
    }
}

fn app(env: &[(&str, &str)]) -> World {
    let source = Source::from_map(
        env.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    );
    let config = GatewayConfig::from_source(&source).unwrap();
    let mut providers = Providers::empty();
    for id in ["ollama", "groq"] {
        providers.insert(Arc::new(Fake(ProviderId::new(id))));
    }
    let registry = Registry::parse(REGISTRY, "test", RegistryVersion(1)).unwrap();
    let store = Arc::new(MemoryStore::new(config.breaker));
    let health =
        Health::new(store, Arc::new(SystemClock)).with_scrubber(config.providers.scrubber.clone());
    let metrics = Arc::new(Metrics::new().unwrap());
    let policy = config.registry_policy.clone();
    let snapshots = Snapshots::new(providers, registry, source, policy, metrics);
    World {
        config,
        health: Arc::new(health),
        snapshots,
    }
}

/// What a target does when called.
#[derive(Clone)]
enum Script {
    Answer,
    Fail(UpstreamError),
    Sleep(Duration),
}

fn status(code: u16) -> UpstreamError {
    UpstreamError::Status {
        status: code,
        message: format!("mock {code}"),
        retry_after: None,
    }
}

/// Walks `model` with `scripts` per target; returns the outcome and the targets called.
async fn run(
    app: &World,
    model: &str,
    needs_tools: bool,
    scripts: &[(&str, Script)],
) -> (Result<Outcome<String>, ApiError>, Vec<String>) {
    let state = app.state();
    let snapshot = state.snapshots.load();
    let plan = plan(&snapshot, Some(model)).unwrap();
    let scripts: HashMap<String, Script> = scripts
        .iter()
        .map(|(t, s)| (t.to_string(), s.clone()))
        .collect();
    let called = Arc::new(Mutex::new(Vec::new()));
    let log = called.clone();
    let result = walk(
        &state.context(),
        &snapshot,
        &plan,
        needs_tools,
        |_provider, target| {
            let script = scripts
                .get(&target.to_string())
                .cloned()
                .unwrap_or(Script::Answer);
            log.lock().unwrap().push(target.to_string());
            async move {
                match script {
                    Script::Answer => Ok(target.to_string()),
                    Script::Fail(e) => Err(e),
                    Script::Sleep(d) => {
                        tokio::time::sleep(d).await;
                        Ok(target.to_string())
                    }
                }
            }
        },
    )
    .await;
    let called = called.lock().unwrap().clone();
    (result, called)
}

fn failures(app: &World, provider: &str) -> u32 {
    let id = ProviderId::new(provider);
    app.state().health.snapshot([&id])[&id].consecutive_failures
}

fn reasons(attempts: &[Attempt]) -> Vec<(String, &'static str, Option<u16>)> {
    attempts
        .iter()
        .map(|a| (a.target.clone(), a.reason, a.status))
        .collect()
}

#[tokio::test]
async fn a_retryable_failure_moves_on_and_is_counted_against_the_provider() {
    let app = app(&[]);
    for e in [
        status(500),
        status(429),
        UpstreamError::Connect("refused".into()),
    ] {
        let (result, called) = run(
            &app,
            "mana/chain",
            false,
            &[("ollama/first", Script::Fail(e.clone()))],
        )
        .await;
        let outcome = result.unwrap();
        assert_eq!(outcome.value, "groq/second");
        assert_eq!(outcome.step.name, "groq/second");
        assert_eq!(called, ["ollama/first", "groq/second"]);
        assert_eq!(outcome.attempts.len(), 1);
        assert_eq!(outcome.attempts[0].target, "ollama/first");
        assert_eq!(outcome.attempts[0].reason, e.code());
        if let UpstreamError::Status { status, .. } = e {
            assert_eq!(outcome.attempts[0].status, Some(status));
        }
        // Each failure trips the next state of the breaker; reset between cases.
        app.state()
            .health
            .report(&ProviderId::new("ollama"), Report::Success)
            .await;
    }
}

#[tokio::test]
async fn a_request_error_stops_the_walk_and_counts_as_a_live_upstream() {
    let app = app(&[]);
    let ollama = ProviderId::new("ollama");
    app.state()
        .health
        .report(&ollama, Report::Failure("earlier"))
        .await;
    assert_eq!(failures(&app, "ollama"), 1);
    let (result, called) = run(
        &app,
        "mana/chain",
        false,
        &[("ollama/first", Script::Fail(status(400)))],
    )
    .await;
    match result {
        Err(ApiError::Upstream { target, source }) => {
            assert_eq!(target, "ollama/first");
            assert!(matches!(source, UpstreamError::Status { status: 400, .. }));
        }
        other => panic!("expected the 400 itself, got {:?}", other.err()),
    }
    assert_eq!(
        called,
        ["ollama/first"],
        "no fallback after a request error"
    );
    assert_eq!(
        failures(&app, "ollama"),
        0,
        "a 4xx answer proves the upstream alive: the breaker counts a success"
    );
}

#[tokio::test]
async fn an_open_breaker_is_skipped_without_a_call() {
    let app = app(&[]);
    let ollama = ProviderId::new("ollama");
    for _ in 0..2 {
        app.state()
            .health
            .report(&ollama, Report::Failure("down"))
            .await;
    }
    let (result, called) = run(&app, "mana/chain", false, &[]).await;
    let outcome = result.unwrap();
    assert_eq!(called, ["groq/second"]);
    assert_eq!(
        reasons(&outcome.attempts),
        [("ollama/first".to_owned(), "breaker_open", None)]
    );
}

#[tokio::test]
async fn entries_that_cannot_serve_are_skipped_with_their_reason() {
    let app = app(&[]);
    let (result, called) = run(&app, "mana/tools", true, &[]).await;
    let outcome = result.unwrap();
    assert_eq!(called, ["groq/second"]);
    assert_eq!(
        reasons(&outcome.attempts),
        [("ollama/no-tools".to_owned(), "capability_mismatch", None)]
    );
    // Without tools the same entry serves.
    let (result, _) = run(&app, "mana/tools", false, &[]).await;
    assert_eq!(result.unwrap().value, "ollama/no-tools");

    let (result, called) = run(&app, "mana/unset", false, &[]).await;
    assert_eq!(called, ["groq/second"]);
    assert_eq!(
        reasons(&result.unwrap().attempts),
        [("openai/x".to_owned(), "unconfigured", None)]
    );
}

#[tokio::test]
async fn a_direct_model_answers_with_its_own_error() {
    let app = app(&[]);
    let (result, called) = run(
        &app,
        "ollama/direct",
        false,
        &[("ollama/direct", Script::Fail(status(503)))],
    )
    .await;
    assert_eq!(called, ["ollama/direct"]);
    match result {
        Err(ApiError::Upstream { target, .. }) => assert_eq!(target, "ollama/direct"),
        other => panic!("expected the upstream error, got {:?}", other.err()),
    }
}

#[tokio::test]
async fn an_exhausted_chain_lists_every_attempt_and_the_last_error() {
    let app = app(&[]);
    let (result, _) = run(
        &app,
        "mana/chain",
        false,
        &[
            ("ollama/first", Script::Fail(status(500))),
            ("groq/second", Script::Fail(status(502))),
        ],
    )
    .await;
    match result {
        Err(ApiError::NoHealthyProvider {
            requested,
            attempts,
            last_error,
            ..
        }) => {
            assert_eq!(requested, "mana/chain");
            assert_eq!(
                reasons(&attempts),
                [
                    ("ollama/first".to_owned(), "upstream_5xx", Some(500)),
                    ("groq/second".to_owned(), "upstream_5xx", Some(502)),
                ]
            );
            assert!(last_error.unwrap().starts_with("groq/second: "));
        }
        other => panic!("expected no_healthy_provider, got {:?}", other.err()),
    }
}

#[tokio::test]
async fn the_entry_first_token_deadline_moves_on() {
    let app = app(&[]);
    let (result, called) = run(
        &app,
        "mana/deadline",
        false,
        &[("ollama/slow", Script::Sleep(Duration::from_secs(30)))],
    )
    .await;
    let outcome = result.unwrap();
    assert_eq!(called, ["ollama/slow", "groq/second"]);
    assert_eq!(
        reasons(&outcome.attempts),
        [("ollama/slow".to_owned(), "upstream_timeout", None)]
    );
}

#[tokio::test]
async fn the_global_first_token_deadline_applies_to_entries_without_their_own() {
    let app = app(&[("MANA_LLM_FIRST_TOKEN_TIMEOUT", "0.05")]);
    let (result, called) = run(
        &app,
        "mana/chain",
        false,
        &[("ollama/first", Script::Sleep(Duration::from_secs(30)))],
    )
    .await;
    let outcome = result.unwrap();
    assert_eq!(called, ["ollama/first", "groq/second"]);
    assert_eq!(outcome.attempts[0].reason, "upstream_timeout");
    // Without it, a slow first entry is waited for (within the request deadline).
    let app = self::app(&[]);
    let (result, called) = run(
        &app,
        "mana/chain",
        false,
        &[("ollama/first", Script::Sleep(Duration::from_millis(100)))],
    )
    .await;
    assert_eq!(result.unwrap().value, "ollama/first");
    assert_eq!(called, ["ollama/first"]);
}

#[tokio::test]
async fn the_request_deadline_spans_the_whole_chain() {
    let app = app(&[("MANA_LLM_REQUEST_TIMEOUT", "0.1")]);
    let (result, called) = run(
        &app,
        "mana/chain",
        false,
        &[("ollama/first", Script::Sleep(Duration::from_secs(30)))],
    )
    .await;
    // The first entry used the whole budget: the second is not called at all.
    assert_eq!(called, ["ollama/first"]);
    match result {
        Err(ApiError::NoHealthyProvider { attempts, .. }) => assert_eq!(
            reasons(&attempts),
            [
                ("ollama/first".to_owned(), "upstream_timeout", None),
                ("groq/second".to_owned(), "request_deadline", None),
            ]
        ),
        other => panic!("expected no_healthy_provider, got {:?}", other.err()),
    }
}
