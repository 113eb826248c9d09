//! OpenAI-compatible providers (openai, openrouter, groq, together) against the mock: the
//! provider contract with everything passed through, and each provider's own key.

use mana_llm_mock::Route;
use serde_json::json;

use crate::contract::{self, Setup};
use crate::support::*;

#[tokio::test]
async fn chat_passes_everything_through_and_rewrites_the_model() {
    let s = Setup::start().await;
    let model = "groq/llama-3.1-8b-instant";
    let mut body = chat(model, "hi");
    body["logprobs"] = json!(true);
    body["seed"] = json!(7);
    body["user"] = json!("u-1");
    body["response_format"] = json!({"type": "json_object"});
    contract::chat(&s, body, model, Route::OpenAiChat, |r, sent| {
        assert_eq!(r.header("x-mana-llm-resolved"), Some(model));
        assert_openai_shape(r);
        assert_eq!(
            r.json["system_fingerprint"], "fp_mock",
            "upstream extras reach the client"
        );
        assert_eq!(sent.body["model"], "llama-3.1-8b-instant");
        assert_eq!(sent.body["logprobs"], true);
        assert_eq!(sent.body["seed"], 7);
        assert_eq!(sent.body["user"], "u-1");
        assert_eq!(sent.body["response_format"], json!({"type": "json_object"}));
        assert_eq!(sent.headers["authorization"], "Bearer gsk-test-groq");
    })
    .await;
}

#[tokio::test]
async fn every_openai_compatible_provider_routes_with_its_own_key() {
    let s = Setup::start().await;
    for (model, key) in [
        ("openai/gpt-4o-mini", "sk-test-openai"),
        ("openrouter/anthropic/claude-3-haiku", "sk-or-test"),
        ("together/m", "tg-test"),
    ] {
        let r = s.gw.post("/v1/chat/completions", chat(model, "hi")).await;
        assert_eq!(r.json["model"], model);
        let sent = s.mock.last_request(Route::OpenAiChat).unwrap();
        assert_eq!(sent.headers["authorization"], format!("Bearer {key}"));
    }
    assert_eq!(
        s.mock.last_request(Route::OpenAiChat).unwrap().body["model"],
        "m"
    );
    assert_eq!(
        s.mock.requests(Route::OpenAiChat)[1].body["model"],
        "anthropic/claude-3-haiku"
    );
}

#[tokio::test]
async fn stream_with_usage() {
    let s = Setup::start().await;
    let model = "openai/gpt-4o-mini";
    contract::stream(&s, model, "Hello from mock", |chunks, mock| {
        assert!(chunks.iter().all(|c| c["model"] == model));
        assert_eq!(chunks.last().unwrap()["usage"]["total_tokens"], 8);
        let sent = mock.last_request(Route::OpenAiChat).unwrap();
        assert_eq!(sent.body["stream"], true);
        assert_eq!(sent.body["stream_options"]["include_usage"], true);
    })
    .await;
}

#[tokio::test]
async fn vision_parts_pass_through_unchanged() {
    let s = Setup::start().await;
    contract::vision(&s, "openai/gpt-4o", Route::OpenAiChat, |sent, body| {
        assert_eq!(sent["messages"], body["messages"]);
    })
    .await;
    let url = vision_chat("openai/gpt-4o", "https://example.com/cat.png");
    assert_eq!(
        s.gw.post("/v1/chat/completions", url.clone()).await.status,
        200
    );
    assert_eq!(
        s.mock.last_request(Route::OpenAiChat).unwrap().body["messages"],
        url["messages"]
    );
}

#[tokio::test]
async fn tools_non_streaming_and_streamed() {
    let s = Setup::start().await;
    contract::tools(
        &s,
        "groq/llama-3.3-70b-versatile",
        Route::OpenAiChat,
        Route::OpenAiChat,
        |sent| assert_eq!(sent.body["tools"][0]["function"]["name"], "get_weather"),
    )
    .await;
}

#[tokio::test]
async fn embeddings_and_models() {
    let s = Setup::start().await;
    let model = "openai/text-embedding-3-small";
    contract::embeddings_and_models(
        &s,
        model,
        &["a", "bb"],
        model,
        Route::OpenAiEmbeddings,
        |sent| {
            assert_eq!(sent.body["model"], "text-embedding-3-small");
            assert_eq!(sent.body["input"], json!(["a", "bb"]));
        },
        &[
            "groq/mock-model",
            "openai/mock-model",
            "openrouter/mock-model",
            "together/mock-model",
        ],
    )
    .await;
    let one = s.gw.get("/v1/models/groq/mock-model").await;
    assert_eq!(one.json["owned_by"], "mock");
}
