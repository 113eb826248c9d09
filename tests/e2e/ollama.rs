//! The Ollama provider (native API) against the mock: the provider contract with what the
//! native API must have received, and what only Ollama does (image URLs refused, tool history
//! as objects, `format`).

use mana_llm_mock::{Reply as MockReply, Route};
use serde_json::json;

use crate::contract::{self, Setup};
use crate::support::*;

#[tokio::test]
async fn chat_translates_to_the_native_api() {
    let s = Setup::start().await;
    let mut body = chat("qwen2.5:7b", "hi");
    body["temperature"] = json!(0.5);
    body["max_tokens"] = json!(10);
    body["stop"] = json!("x");
    // A bare name goes to ollama.
    contract::chat(
        &s,
        body,
        "ollama/qwen2.5:7b",
        Route::OllamaChat,
        |r, sent| {
            assert_openai_shape(r);
            assert_eq!(sent.body["model"], "qwen2.5:7b");
            assert_eq!(sent.body["stream"], false);
            assert_eq!(
                sent.body["messages"],
                json!([{"role": "user", "content": "hi"}])
            );
            assert_eq!(sent.body["options"]["temperature"], 0.5);
            assert_eq!(sent.body["options"]["num_predict"], 10);
            assert_eq!(sent.body["options"]["stop"], json!(["x"]));
        },
    )
    .await;
}

#[tokio::test]
async fn stream_with_usage_and_length_finish() {
    let s = Setup::start().await;
    s.mock.push(
        Route::OllamaChat,
        MockReply::text(&["Hel", "lo"]).finish("length"),
    );
    contract::stream(&s, "ollama/qwen2.5:7b", "Hello", |chunks, mock| {
        assert_eq!(finish_reason(chunks).as_deref(), Some("length"));
        let ids: std::collections::HashSet<&str> =
            chunks.iter().filter_map(|c| c["id"].as_str()).collect();
        assert_eq!(ids.len(), 1, "one id per stream");
        assert_eq!(chunks.last().unwrap()["usage"]["prompt_tokens"], 5);
        assert_eq!(
            mock.last_request(Route::OllamaChat).unwrap().body["stream"],
            true
        );
    })
    .await;

    s.mock
        .push(Route::OllamaChat, MockReply::ok().finish("length"));
    let r =
        s.gw.post("/v1/chat/completions", chat("ollama/qwen2.5:7b", "hi"))
            .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json["choices"][0]["finish_reason"], "length");
}

#[tokio::test]
async fn images_arrive_as_base64_and_urls_are_refused_clearly() {
    let s = Setup::start().await;
    contract::vision(&s, "ollama/llava:7b", Route::OllamaChat, |sent, _| {
        assert_eq!(sent["messages"][0]["images"], json!(["iVBORw0KGgo="]));
        assert_eq!(sent["messages"][0]["content"], "What is in this image?");
    })
    .await;

    let refused =
        s.gw.post(
            "/v1/chat/completions",
            vision_chat("ollama/llava:7b", "https://example.com/cat.png"),
        )
        .await;
    refused.assert_error(400, "capability_mismatch");
    assert!(
        refused.json["error"]["message"]
            .as_str()
            .unwrap()
            .contains("data:"),
        "{}",
        refused.text
    );
    assert_eq!(
        s.mock.calls(Route::OllamaChat),
        1,
        "the refused request never reached ollama"
    );
}

#[tokio::test]
async fn tools_in_both_directions() {
    let s = Setup::start().await;
    contract::tools(
        &s,
        "ollama/qwen2.5:7b",
        Route::OllamaChat,
        Route::OllamaChat,
        |sent| assert_eq!(sent.body["tools"][0]["function"]["name"], "get_weather"),
    )
    .await;

    // Tool history goes back as native objects.
    let history = json!({"model": "ollama/qwen2.5:7b", "messages": [
        {"role": "user", "content": "Weather?"},
        {"role": "assistant", "content": null, "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Berlin\"}"}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "12 degrees"}
    ]});
    assert_eq!(s.gw.post("/v1/chat/completions", history).await.status, 200);
    let sent = s.mock.last_request(Route::OllamaChat).unwrap();
    assert_eq!(
        sent.body["messages"][1]["tool_calls"][0]["function"]["arguments"],
        json!({"city": "Berlin"})
    );
    assert_eq!(sent.body["messages"][2]["content"], "12 degrees");

    let refused =
        s.gw.post("/v1/chat/completions", tool_chat("ollama/gemma3:4b", false))
            .await;
    refused.assert_error(400, "capability_mismatch");
}

#[tokio::test]
async fn response_format_becomes_format_in_both_modes() {
    let s = Setup::start().await;
    contract::json_mode(&s, "ollama/qwen2.5:7b", Route::OllamaChat, |_, sent| {
        assert_eq!(sent.body["format"], "json");
    })
    .await;
    let mut body = chat("ollama/qwen2.5:7b", "json please");
    body["stream"] = json!(true);
    let schema = json!({"type": "object", "properties": {"a": {"type": "string"}}});
    body["response_format"] =
        json!({"type": "json_schema", "json_schema": {"name": "x", "schema": schema}});
    let (status, _, data) = s.gw.stream(body).await;
    assert_eq!(status, 200);
    assert_eq!(data.last().map(String::as_str), Some("[DONE]"));
    assert_eq!(
        s.mock.last_request(Route::OllamaChat).unwrap().body["format"],
        schema
    );
}

#[tokio::test]
async fn embeddings_and_models() {
    let s = Setup::start().await;
    contract::embeddings_and_models(
        &s,
        "nomic-embed-text",
        &["a", "b"],
        "ollama/nomic-embed-text",
        Route::OllamaEmbed,
        |sent| assert_eq!(sent.body["input"], json!(["a", "b"])),
        &["ollama/mock-model:latest"],
    )
    .await;
    assert_eq!(
        s.gw.get("/v1/models/ollama/mock-model:latest").await.json["owned_by"],
        "ollama"
    );
}
