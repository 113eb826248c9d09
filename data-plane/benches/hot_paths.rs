//! Micro-benchmarks of the per-request work the gateway adds, each on its own:
//! `cargo bench -p mana-llm-data-plane --bench hot_paths`. Results are recorded in
//! BENCHMARKS.md; no thresholds here (a noisy machine would make them flaky).

use criterion::{criterion_group, criterion_main, Criterion};
use mana_llm_data_plane::cache::key_of;
use mana_llm_data_plane::config::Source;
use mana_llm_data_plane::metrics::Metrics;
use mana_llm_data_plane::openai::{ChatCompletion, ChatRequest};
use mana_llm_data_plane::providers::{google, ollama, openai, Providers};
use mana_llm_data_plane::router::plan;
use mana_llm_data_plane::snapshot::Snapshots;
use mana_llm_data_plane::streaming::chunk_event;
use mana_llm_shared::{Registry, RegistryVersion};
use serde_json::json;
use std::hint::black_box;

/// A typical chat request: a system prompt, a short exchange, a few sampling settings.
fn chat_json() -> Vec<u8> {
    json!({
        "model": "mana/fast-text",
        "messages": [
            {"role": "system", "content": "You are a concise assistant. Answer in one paragraph."},
            {"role": "user", "content": "What does an LLM gateway do?"},
            {"role": "assistant", "content": "It routes requests from apps to model providers, with fallbacks."},
            {"role": "user", "content": "And why put a cache in front of it?"}
        ],
        "temperature": 0.2,
        "max_tokens": 256,
        "stream": false
    })
    .to_string()
    .into_bytes()
}

/// A vision request with a small inline image.
fn vision_json() -> Vec<u8> {
    json!({
        "model": "mana/vision",
        "messages": [{"role": "user", "content": [
            {"type": "text", "text": "What is in this picture?"},
            {"type": "image_url", "image_url": {"url": format!("data:image/png;base64,{}", "iVBORw0KGgo".repeat(200))}}
        ]}]
    })
    .to_string()
    .into_bytes()
}

fn completion_json() -> Vec<u8> {
    json!({
        "id": "chatcmpl-1", "object": "chat.completion", "created": 1_700_000_000, "model": "llama-3.1-8b-instant",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "A gateway puts one endpoint in front of many providers, so apps need not know which one answers."}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 58, "completion_tokens": 21, "total_tokens": 79},
        "system_fingerprint": "fp_1"
    })
    .to_string()
    .into_bytes()
}

const CHUNK: &str = r#"{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1700000000,"model":"llama-3.1-8b-instant","choices":[{"index":0,"delta":{"content":" gateway"},"finish_reason":null}]}"#;

const ALIASES: &str = "\
default: mana/fast-text
aliases:
  mana/fast-text: {chain: [groq/llama-3.1-8b-instant, ollama/gemma3:4b, openrouter/meta-llama/llama-3.1-8b-instruct]}
  mana/vision: {chain: [google/gemini-2.0-flash, ollama/llava]}
  mana/code: {chain: [groq/qwen-2.5-coder-32b, ollama/qwen2.5-coder:7b]}
";

fn parse(c: &mut Criterion) {
    let chat = chat_json();
    let vision = vision_json();
    c.bench_function("parse client request (chat, 4 messages)", |b| {
        b.iter(|| serde_json::from_slice::<ChatRequest>(black_box(&chat)))
    });
    c.bench_function("parse client request (vision, 2.2 kB image)", |b| {
        b.iter(|| serde_json::from_slice::<ChatRequest>(black_box(&vision)))
    });
}

/// The large-inputs scenario's request: a 2 MB base64 image, parsed and re-encoded for an
/// OpenAI-compatible upstream — the gateway's whole CPU share of that request's latency.
fn large_image(c: &mut Criterion) {
    let image: String = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAAB".repeat((2 << 20) / 32);
    let body = json!({"model": "groq/vision", "messages": [{"role": "user", "content": [
        {"type": "text", "text": "What is in this picture?"},
        {"type": "image_url", "image_url": {"url": format!("data:image/png;base64,{image}")}}
    ]}]})
    .to_string()
    .into_bytes();
    c.bench_function("parse + encode upstream body (2 MB image)", |b| {
        b.iter(|| {
            let Ok(request) = serde_json::from_slice::<ChatRequest>(black_box(&body)) else {
                panic!("the sample request parses");
            };
            openai::chat_body(&request, "vision", false)
        })
    });
}

fn encode_upstream(c: &mut Criterion) {
    let Ok(request) = serde_json::from_slice::<ChatRequest>(&chat_json()) else {
        panic!("the sample request parses");
    };
    c.bench_function("encode upstream body: openai-compatible", |b| {
        b.iter(|| openai::chat_body(black_box(&request), "llama-3.1-8b-instant", false))
    });
    c.bench_function("encode upstream body: ollama", |b| {
        b.iter(|| {
            ollama::chat_body(black_box(&request), "gemma3:4b", false)
                .map(|v| serde_json::to_vec(&v))
        })
    });
    c.bench_function("encode upstream body: gemini", |b| {
        b.iter(|| google::generate_content(black_box(&request)).map(|v| serde_json::to_vec(&v)))
    });
}

fn answer(c: &mut Criterion) {
    let body = completion_json();
    c.bench_function(
        "upstream answer: parse + re-serialise with our model",
        |b| {
            b.iter(|| {
                let Ok(mut completion) = serde_json::from_slice::<ChatCompletion>(black_box(&body))
                else {
                    panic!("the sample answer parses");
                };
                completion.model = "groq/llama-3.1-8b-instant".to_owned();
                serde_json::to_vec(&completion)
            })
        },
    );
    c.bench_function("SSE chunk: parse + rewrite model + frame", |b| {
        b.iter(|| match openai::parse_chunk(black_box(CHUNK)) {
            Some(Ok(chunk)) => chunk_event(chunk, "groq/llama-3.1-8b-instant"),
            _ => panic!("the sample chunk parses"),
        })
    });
}

fn routing(c: &mut Criterion) {
    let Ok(registry) = Registry::parse(ALIASES, "bench", RegistryVersion(1)) else {
        panic!("the sample registry parses");
    };
    let Ok(metrics) = Metrics::new() else {
        panic!("the metrics registry builds");
    };
    let metrics = std::sync::Arc::new(metrics);
    let snapshots = Snapshots::new(
        Providers::empty(),
        registry,
        Source::default(),
        mana_llm_shared::RegistryPolicy::default(),
        metrics,
    );
    let snapshot = snapshots.load();
    c.bench_function("alias resolution (3-entry chain)", |b| {
        b.iter(|| plan(&snapshot, black_box(Some("mana/fast-text"))).map(|p| p.steps.len()))
    });
    c.bench_function("direct model resolution (provider/model)", |b| {
        b.iter(|| {
            plan(&snapshot, black_box(Some("groq/llama-3.1-8b-instant"))).map(|p| p.steps.len())
        })
    });
    let Ok(request) = serde_json::from_slice::<ChatRequest>(&chat_json()) else {
        panic!("the sample request parses");
    };
    let chain: Vec<String> = [
        "groq/llama-3.1-8b-instant",
        "ollama/gemma3:4b",
        "openrouter/meta-llama/llama-3.1-8b-instruct",
    ]
    .map(str::to_owned)
    .to_vec();
    c.bench_function("cache key (canonical JSON + SHA-256)", |b| {
        b.iter(|| key_of(black_box(&request), black_box(&chain), None))
    });
}

criterion_group!(
    benches,
    parse,
    encode_upstream,
    answer,
    routing,
    large_image
);
criterion_main!(benches);
