//! The Gemini REST provider against the mock.

use mana_llm_mock::{MockProvider, Reply as MockReply, Route};
use serde_json::json;

use crate::support::*;

#[tokio::test]
async fn chat_with_system_instruction_and_usage() {
    let mock = MockProvider::start().await;
    let gw = Gateway::with_mock(&mock);
    let body = json!({"model": "google/gemini-2.5-flash", "temperature": 0.2, "max_tokens": 50, "messages": [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "hi"}
    ]});
    let r = gw.post("/v1/chat/completions", body).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json["model"], "google/gemini-2.5-flash");
    assert_eq!(
        r.json["choices"][0]["message"]["content"],
        "Hello from mock"
    );
    assert_eq!(r.json["usage"]["total_tokens"], 8);
    let sent = mock.last_request(Route::GeminiGenerate).unwrap();
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
}

#[tokio::test]
async fn stream_with_usage() {
    let mock = MockProvider::start().await;
    let gw = Gateway::with_mock(&mock);
    let mut body = chat("google/gemini-2.5-flash", "hi");
    body["stream"] = json!(true);
    body["stream_options"] = json!({"include_usage": true});
    let (status, headers, data) = gw.stream(body).await;
    assert_eq!(status, 200);
    assert_eq!(headers["x-mana-llm-resolved"], "google/gemini-2.5-flash");
    let chunks = chunks(&data);
    assert_eq!(streamed_text(&chunks), "Hello from mock");
    assert_eq!(finish_reason(&chunks).as_deref(), Some("stop"));
    assert_eq!(chunks.last().unwrap()["usage"]["total_tokens"], 8);
    assert_eq!(mock.calls(Route::GeminiStream), 1);
}

#[tokio::test]
async fn a_failing_stream_fails_before_the_first_byte() {
    let mock = MockProvider::start().await;
    let gw = Gateway::with_mock(&mock);
    mock.push(Route::GeminiStream, MockReply::status(503));
    let mut body = chat("google/gemini-2.5-flash", "hi");
    body["stream"] = json!(true);
    gw.post("/v1/chat/completions", body)
        .await
        .assert_error(502, "upstream_5xx");
}

#[tokio::test]
async fn images_become_inline_data() {
    let mock = MockProvider::start().await;
    let gw = Gateway::with_mock(&mock);
    assert_eq!(
        gw.post(
            "/v1/chat/completions",
            vision_chat("google/gemini-2.5-flash", PNG)
        )
        .await
        .status,
        200
    );
    let parts = &mock.last_request(Route::GeminiGenerate).unwrap().body["contents"][0]["parts"];
    assert_eq!(
        parts[1]["inlineData"],
        json!({"mimeType": "image/png", "data": "iVBORw0KGgo="})
    );
}

#[tokio::test]
async fn tools_in_both_directions() {
    let mock = MockProvider::start().await;
    let gw = Gateway::with_mock(&mock);
    let sent = assert_tool_round_trip(
        &gw,
        &mock,
        "google/gemini-2.5-flash",
        Route::GeminiGenerate,
        Route::GeminiStream,
    )
    .await;
    assert_eq!(
        sent.body["tools"][0]["functionDeclarations"][0]["name"],
        "get_weather"
    );
}

#[tokio::test]
async fn response_format_blocks_and_length() {
    let mock = MockProvider::start().await;
    let gw = Gateway::with_mock(&mock);
    let mut body = chat("google/gemini-2.5-flash", "json please");
    body["response_format"] = json!({"type": "json_object"});
    let r = gw.post("/v1/chat/completions", body).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json["choices"][0]["finish_reason"], "stop", "{}", r.text);
    let sent = mock.last_request(Route::GeminiGenerate).unwrap();
    assert_eq!(
        sent.body["generationConfig"]["responseMimeType"],
        "application/json"
    );

    mock.push(Route::GeminiGenerate, MockReply::blocked("SAFETY"));
    let blocked = gw
        .post(
            "/v1/chat/completions",
            chat("google/gemini-2.5-flash", "bad"),
        )
        .await;
    blocked.assert_error(400, "content_blocked");
    assert!(blocked.json["error"]["message"]
        .as_str()
        .unwrap()
        .contains("SAFETY"));

    mock.push(Route::GeminiGenerate, MockReply::ok().finish("MAX_TOKENS"));
    let cut = gw
        .post(
            "/v1/chat/completions",
            chat("google/gemini-2.5-flash", "long"),
        )
        .await;
    assert_eq!(cut.status, 200, "{}", cut.text);
    assert_eq!(cut.json["choices"][0]["finish_reason"], "length");
}

#[tokio::test]
async fn embeddings_and_models() {
    let mock = MockProvider::start().await;
    let gw = Gateway::with_mock(&mock);
    let r = gw
        .post(
            "/v1/embeddings",
            json!({"model": "google/text-embedding-004", "input": ["a", "b"]}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json["model"], "google/text-embedding-004");
    assert_eq!(r.json["data"].as_array().unwrap().len(), 2);
    let sent = mock.last_request(Route::GeminiEmbed).unwrap();
    assert_eq!(sent.body["requests"].as_array().unwrap().len(), 2);
    let models = gw.get("/v1/models").await;
    assert!(
        models.json["data"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["id"] == "google/gemini-mock"),
        "{}",
        models.text
    );
}
