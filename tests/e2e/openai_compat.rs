//! OpenAI-compatible providers (openai, openrouter, groq, together) against the mock.

use mana_llm_mock::{MockProvider, Route};
use serde_json::json;

use crate::support::*;

#[tokio::test]
async fn chat_passes_everything_through_and_rewrites_the_model() {
    let mock = MockProvider::start().await;
    let gw = Gateway::with_mock(&mock);
    let mut body = chat("groq/llama-3.1-8b-instant", "hi");
    body["logprobs"] = json!(true);
    body["seed"] = json!(7);
    body["user"] = json!("u-1");
    body["response_format"] = json!({"type": "json_object"});
    let r = gw.post("/v1/chat/completions", body).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json["model"], "groq/llama-3.1-8b-instant");
    assert_eq!(
        r.header("x-mana-llm-resolved"),
        Some("groq/llama-3.1-8b-instant")
    );
    assert_eq!(
        r.json["choices"][0]["message"]["content"],
        "Hello from mock"
    );
    assert_openai_shape(&r);
    assert_eq!(
        r.json["system_fingerprint"], "fp_mock",
        "upstream extras reach the client"
    );
    let sent = mock.last_request(Route::OpenAiChat).unwrap();
    assert_eq!(sent.body["model"], "llama-3.1-8b-instant");
    assert_eq!(sent.body["logprobs"], true);
    assert_eq!(sent.body["seed"], 7);
    assert_eq!(sent.body["user"], "u-1");
    assert_eq!(sent.body["response_format"], json!({"type": "json_object"}));
    assert_eq!(sent.headers["authorization"], "Bearer gsk-test-groq");
}

#[tokio::test]
async fn every_openai_compatible_provider_routes_with_its_own_key() {
    let mock = MockProvider::start().await;
    let gw = Gateway::with_mock(&mock);
    for (model, key) in [
        ("openai/gpt-4o-mini", "sk-test-openai"),
        ("openrouter/anthropic/claude-3-haiku", "sk-or-test"),
        ("together/m", "tg-test"),
    ] {
        let r = gw.post("/v1/chat/completions", chat(model, "hi")).await;
        assert_eq!(r.json["model"], model);
        let sent = mock.last_request(Route::OpenAiChat).unwrap();
        assert_eq!(sent.headers["authorization"], format!("Bearer {key}"));
    }
    assert_eq!(
        mock.last_request(Route::OpenAiChat).unwrap().body["model"],
        "m"
    );
    assert_eq!(
        mock.requests(Route::OpenAiChat)[1].body["model"],
        "anthropic/claude-3-haiku"
    );
}

#[tokio::test]
async fn stream_with_usage() {
    let mock = MockProvider::start().await;
    let gw = Gateway::with_mock(&mock);
    let mut body = chat("openai/gpt-4o-mini", "hi");
    body["stream"] = json!(true);
    body["stream_options"] = json!({"include_usage": true});
    let (status, headers, data) = gw.stream(body).await;
    assert_eq!(status, 200);
    assert_eq!(headers["x-mana-llm-resolved"], "openai/gpt-4o-mini");
    let chunks = chunks(&data);
    assert_eq!(streamed_text(&chunks), "Hello from mock");
    assert!(chunks.iter().all(|c| c["model"] == "openai/gpt-4o-mini"));
    assert_eq!(chunks.last().unwrap()["usage"]["total_tokens"], 8);
    assert_eq!(
        mock.last_request(Route::OpenAiChat).unwrap().body["stream"],
        true
    );
    assert_eq!(
        mock.last_request(Route::OpenAiChat).unwrap().body["stream_options"]["include_usage"],
        true
    );
}

#[tokio::test]
async fn vision_parts_pass_through_unchanged() {
    let mock = MockProvider::start().await;
    let gw = Gateway::with_mock(&mock);
    let body = vision_chat("openai/gpt-4o", PNG);
    assert_eq!(
        gw.post("/v1/chat/completions", body.clone()).await.status,
        200
    );
    assert_eq!(
        mock.last_request(Route::OpenAiChat).unwrap().body["messages"],
        body["messages"]
    );
    let url = vision_chat("openai/gpt-4o", "https://example.com/cat.png");
    assert_eq!(
        gw.post("/v1/chat/completions", url.clone()).await.status,
        200
    );
    assert_eq!(
        mock.last_request(Route::OpenAiChat).unwrap().body["messages"],
        url["messages"]
    );
}

#[tokio::test]
async fn tools_non_streaming_and_streamed() {
    let mock = MockProvider::start().await;
    let gw = Gateway::with_mock(&mock);
    let sent = assert_tool_round_trip(
        &gw,
        &mock,
        "groq/llama-3.3-70b-versatile",
        Route::OpenAiChat,
        Route::OpenAiChat,
    )
    .await;
    assert_eq!(sent.body["tools"][0]["function"]["name"], "get_weather");
}

#[tokio::test]
async fn embeddings_and_models() {
    let mock = MockProvider::start().await;
    let gw = Gateway::with_mock(&mock);
    let r = gw
        .post(
            "/v1/embeddings",
            json!({"model": "openai/text-embedding-3-small", "input": ["a", "bb"]}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json["data"].as_array().unwrap().len(), 2);
    assert_eq!(r.json["model"], "openai/text-embedding-3-small");
    let sent = mock.last_request(Route::OpenAiEmbeddings).unwrap();
    assert_eq!(sent.body["model"], "text-embedding-3-small");
    assert_eq!(sent.body["input"], json!(["a", "bb"]));
    let models = gw.get("/v1/models").await;
    let ids: Vec<&str> = models.json["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m["id"].as_str())
        .collect();
    for id in [
        "groq/mock-model",
        "openai/mock-model",
        "openrouter/mock-model",
        "together/mock-model",
    ] {
        assert!(ids.contains(&id), "{id} missing from {ids:?}");
    }
    let one = gw.get("/v1/models/groq/mock-model").await;
    assert_eq!(one.json["owned_by"], "mock");
}
