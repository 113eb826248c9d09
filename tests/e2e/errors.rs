//! Every failure a client can cause or meet is an OpenAI-shaped error with the right status.

use std::time::{Duration, Instant};

use mana_llm_mock::{MockProvider, Reply as MockReply, Route};
use serde_json::json;

use crate::support::*;

#[tokio::test]
async fn bad_input_is_400_never_422() {
    // A registry without a default alias: a request without a model has nowhere to go.
    let gw = Gateway::builder()
        .aliases("aliases:\n  mana/x: {chain: [echo/x]}\n")
        .start();
    let raw = client()
        .post(gw.url("/v1/chat/completions"))
        .header("content-type", "application/json")
        .body("{\"model\": \"echo/x\", \"messages\": [")
        .send()
        .await
        .unwrap();
    Reply::read(raw).await.assert_error(400, "invalid_json");

    let wrong_type = gw
        .post("/v1/chat/completions", json!({"model": "echo/x", "messages": [{"role": "user", "content": "x"}], "temperature": "hot"}))
        .await;
    wrong_type.assert_error(400, "invalid_request");
    assert_eq!(wrong_type.json["error"]["param"], "temperature");

    let bad_role = gw
        .post(
            "/v1/chat/completions",
            json!({"model": "echo/x", "messages": [{"role": "wizard", "content": "x"}]}),
        )
        .await;
    bad_role.assert_error(400, "invalid_request");
    assert_eq!(bad_role.json["error"]["param"], "messages[0].role");

    gw.post(
        "/v1/chat/completions",
        json!({"model": "echo/x", "messages": []}),
    )
    .await
    .assert_error(400, "invalid_request");
    gw.post(
        "/v1/chat/completions",
        json!({"messages": [{"role": "user", "content": "x"}]}),
    )
    .await
    .assert_error(400, "invalid_request");
    gw.post("/v1/chat/completions", json!({"model": "echo/x"}))
        .await
        .assert_error(400, "invalid_request");
    let range = gw.post("/v1/chat/completions", json!({"model": "echo/x", "messages": [{"role": "user", "content": "x"}], "temperature": 3})).await;
    range.assert_error(400, "invalid_request");
    gw.post("/v1/embeddings", json!({"model": "echo/x", "input": []}))
        .await
        .assert_error(400, "invalid_request");
    gw.post("/v1/embeddings", json!({"model": "echo/x", "input": 5}))
        .await
        .assert_error(400, "invalid_request");
}

#[tokio::test]
async fn unknown_and_unconfigured_providers() {
    let gw = Gateway::builder().start();
    let unknown = gw.post("/v1/chat/completions", chat("foo/bar", "x")).await;
    unknown.assert_error(404, "model_not_found");
    assert!(unknown.json["error"]["message"]
        .as_str()
        .unwrap()
        .contains("foo"));
    let unconfigured = gw
        .post("/v1/chat/completions", chat("groq/llama", "x"))
        .await;
    unconfigured.assert_error(503, "provider_not_configured");
    assert!(unconfigured.json["error"]["message"]
        .as_str()
        .unwrap()
        .contains("GROQ_API_KEY"));
    gw.post(
        "/v1/embeddings",
        json!({"model": "together/m", "input": "x"}),
    )
    .await
    .assert_error(503, "provider_not_configured");
}

#[tokio::test]
async fn routes_and_methods() {
    let gw = Gateway::builder().start();
    gw.get("/v2/nothing").await.assert_error(404, "not_found");
    gw.get("/v1/chat/completions")
        .await
        .assert_error(405, "method_not_allowed");
}

#[tokio::test]
async fn body_over_the_limit_is_413() {
    let gw = Gateway::builder()
        .env("MANA_LLM_BODY_LIMIT_MB", "1")
        .start();
    let big = "x".repeat(2 * 1024 * 1024);
    gw.post("/v1/chat/completions", chat("echo/x", &big))
        .await
        .assert_error(413, "request_too_large");
    // Just under the limit still works.
    let fits = "y".repeat(900 * 1024);
    assert_eq!(
        gw.post("/v1/chat/completions", chat("echo/x", &fits))
            .await
            .status,
        200
    );
}

#[tokio::test]
async fn upstream_statuses_are_mapped() {
    let mock = MockProvider::start().await;
    let gw = Gateway::with_mock(&mock);
    // One provider per status: a 429 opens that provider's breaker for Retry-After seconds.
    mock.push(Route::OpenAiChat, MockReply::status(400));
    let r = gw.post("/v1/chat/completions", chat("groq/m", "x")).await;
    r.assert_error(400, "upstream_rejected");
    assert!(
        r.json["error"]["message"]
            .as_str()
            .unwrap()
            .contains("mock error 400"),
        "upstream message kept: {}",
        r.text
    );

    mock.push(Route::OpenAiChat, MockReply::status(401));
    gw.post("/v1/chat/completions", chat("openai/m", "x"))
        .await
        .assert_error(502, "upstream_auth");

    mock.push(Route::OpenAiChat, MockReply::status(429).retry_after(7));
    let limited = gw
        .post("/v1/chat/completions", chat("openrouter/m", "x"))
        .await;
    limited.assert_error(429, "upstream_rate_limited");
    assert_eq!(limited.header("retry-after"), Some("7"));
    let open = gw
        .post("/v1/chat/completions", chat("openrouter/m", "x"))
        .await;
    open.assert_error(503, "no_healthy_provider");
    assert_eq!(
        open.json["error"]["attempts"][0]["reason"], "breaker_open",
        "the 429 opened the breaker"
    );

    mock.push(Route::OpenAiChat, MockReply::status(500));
    gw.post("/v1/chat/completions", chat("together/m", "x"))
        .await
        .assert_error(502, "upstream_5xx");

    mock.push(Route::OllamaChat, MockReply::malformed());
    gw.post("/v1/chat/completions", chat("ollama/m", "x"))
        .await
        .assert_error(502, "upstream_protocol");
    assert_eq!(
        mock.calls(Route::OpenAiChat),
        4,
        "each request reached the upstream exactly once"
    );
}

#[tokio::test]
async fn connection_refused_is_502() {
    // Port 1 on loopback: nothing listens there.
    let gw = Gateway::builder()
        .env("OLLAMA_URL", "http://127.0.0.1:1")
        .start();
    let r = gw.post("/v1/chat/completions", chat("ollama/m", "x")).await;
    r.assert_error(502, "upstream_unreachable");
    let mut body = chat("ollama/m", "x");
    body["stream"] = json!(true);
    let s = gw.post("/v1/chat/completions", body).await;
    s.assert_error(502, "upstream_unreachable");
}

#[tokio::test]
async fn a_stalled_upstream_times_out_with_504() {
    let mock = MockProvider::start().await;
    let gw = Gateway::builder()
        .mock(&mock)
        .env("OLLAMA_TIMEOUT", "0.5")
        .env("MANA_LLM_STREAM_IDLE_TIMEOUT", "0.5")
        .start();
    mock.set_default(Route::OllamaChat, MockReply::stall());
    let start = Instant::now();
    gw.post("/v1/chat/completions", chat("ollama/m", "x"))
        .await
        .assert_error(504, "upstream_timeout");
    let mut body = chat("ollama/m", "x");
    body["stream"] = json!(true);
    gw.post("/v1/chat/completions", body)
        .await
        .assert_error(504, "upstream_timeout");
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "took {:?}",
        start.elapsed()
    );
}

#[tokio::test]
async fn stream_failure_before_the_first_byte_is_a_real_http_error() {
    let mock = MockProvider::start().await;
    let gw = Gateway::with_mock(&mock);
    mock.push(Route::OpenAiChat, MockReply::status(503));
    let mut body = chat("openai/m", "x");
    body["stream"] = json!(true);
    let r = gw.post("/v1/chat/completions", body).await;
    r.assert_error(502, "upstream_5xx");
    assert!(r
        .header("content-type")
        .unwrap()
        .starts_with("application/json"));
}
