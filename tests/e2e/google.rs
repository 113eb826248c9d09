//! The Gemini REST provider against the mock: the provider contract with what Gemini's API
//! must have received, and what only Gemini does (safety blocks, `MAX_TOKENS`).

use mana_llm_mock::{Reply as MockReply, Route};
use serde_json::json;

use crate::contract::{self, Setup};
use crate::support::*;

const MODEL: &str = "google/gemini-2.5-flash";

#[tokio::test]
async fn chat_with_system_instruction_and_usage() {
    let s = Setup::start().await;
    let body = json!({"model": MODEL, "temperature": 0.2, "max_tokens": 50, "messages": [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "hi"}
    ]});
    contract::chat(&s, body, MODEL, Route::GeminiGenerate, |r, sent| {
        assert_eq!(r.json["usage"]["total_tokens"], 8);
        assert_eq!(sent.model.as_deref(), Some("gemini-2.5-flash"));
        assert_eq!(sent.headers["x-goog-api-key"], "AIza-test-google");
        assert!(
            sent.query.as_deref().unwrap_or("").is_empty()
                || !sent.query.as_deref().unwrap().contains("key="),
            "the key never goes in the URL"
        );
        assert_eq!(
            sent.body["systemInstruction"]["parts"][0]["text"],
            "Be brief."
        );
        assert_eq!(sent.body["contents"][0]["role"], "user");
        assert_eq!(sent.body["contents"][0]["parts"][0]["text"], "hi");
        assert_eq!(sent.body["generationConfig"]["temperature"], 0.2);
        assert_eq!(sent.body["generationConfig"]["maxOutputTokens"], 50);
    })
    .await;
}

#[tokio::test]
async fn stream_with_usage() {
    let s = Setup::start().await;
    contract::stream(&s, MODEL, "Hello from mock", |chunks, mock| {
        assert_eq!(finish_reason(chunks).as_deref(), Some("stop"));
        assert_eq!(chunks.last().unwrap()["usage"]["total_tokens"], 8);
        assert_eq!(mock.calls(Route::GeminiStream), 1);
    })
    .await;
}

#[tokio::test]
async fn a_failing_stream_fails_before_the_first_byte() {
    let s = Setup::start().await;
    s.mock.push(Route::GeminiStream, MockReply::status(503));
    let mut body = chat(MODEL, "hi");
    body["stream"] = json!(true);
    s.gw.post("/v1/chat/completions", body)
        .await
        .assert_error(502, "upstream_5xx");
}

#[tokio::test]
async fn images_become_inline_data() {
    let s = Setup::start().await;
    contract::vision(&s, MODEL, Route::GeminiGenerate, |sent, _| {
        assert_eq!(
            sent["contents"][0]["parts"][1]["inlineData"],
            json!({"mimeType": "image/png", "data": "iVBORw0KGgo="})
        );
    })
    .await;
}

#[tokio::test]
async fn tools_in_both_directions() {
    let s = Setup::start().await;
    contract::tools(
        &s,
        MODEL,
        Route::GeminiGenerate,
        Route::GeminiStream,
        |sent| {
            assert_eq!(
                sent.body["tools"][0]["functionDeclarations"][0]["name"],
                "get_weather"
            )
        },
    )
    .await;
}

#[tokio::test]
async fn response_format_blocks_and_length() {
    let s = Setup::start().await;
    contract::json_mode(&s, MODEL, Route::GeminiGenerate, |r, sent| {
        assert_eq!(r.json["choices"][0]["finish_reason"], "stop", "{}", r.text);
        assert_eq!(
            sent.body["generationConfig"]["responseMimeType"],
            "application/json"
        );
    })
    .await;

    s.mock
        .push(Route::GeminiGenerate, MockReply::blocked("SAFETY"));
    let blocked = s.gw.post("/v1/chat/completions", chat(MODEL, "bad")).await;
    blocked.assert_error(400, "content_blocked");
    assert!(blocked.json["error"]["message"]
        .as_str()
        .unwrap()
        .contains("SAFETY"));

    s.mock
        .push(Route::GeminiGenerate, MockReply::ok().finish("MAX_TOKENS"));
    let cut = s.gw.post("/v1/chat/completions", chat(MODEL, "long")).await;
    assert_eq!(cut.status, 200, "{}", cut.text);
    assert_eq!(cut.json["choices"][0]["finish_reason"], "length");
}

#[tokio::test]
async fn embeddings_and_models() {
    let s = Setup::start().await;
    contract::embeddings_and_models(
        &s,
        "google/text-embedding-004",
        &["a", "b"],
        "google/text-embedding-004",
        Route::GeminiEmbed,
        |sent| assert_eq!(sent.body["requests"].as_array().unwrap().len(), 2),
        &["google/gemini-mock"],
    )
    .await;
}
