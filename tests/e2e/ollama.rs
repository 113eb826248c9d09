//! The Ollama provider (native API) against the mock.

use mana_llm_mock::{MockProvider, Reply as MockReply, Route};
use serde_json::json;

use crate::support::*;

#[tokio::test]
async fn chat_translates_to_the_native_api() {
    let mock = MockProvider::start().await;
    let gw = Gateway::with_mock(&mock);
    let mut body = chat("qwen2.5:7b", "hi");
    body["temperature"] = json!(0.5);
    body["max_tokens"] = json!(10);
    body["stop"] = json!("x");
    let r = gw.post("/v1/chat/completions", body).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        r.json["model"], "ollama/qwen2.5:7b",
        "a bare name goes to ollama"
    );
    assert_eq!(
        r.json["choices"][0]["message"]["content"],
        "Hello from mock"
    );
    assert_openai_shape(&r);
    let sent = mock.last_request(Route::OllamaChat).unwrap();
    assert_eq!(sent.body["model"], "qwen2.5:7b");
    assert_eq!(sent.body["stream"], false);
    assert_eq!(
        sent.body["messages"],
        json!([{"role": "user", "content": "hi"}])
    );
    assert_eq!(sent.body["options"]["temperature"], 0.5);
    assert_eq!(sent.body["options"]["num_predict"], 10);
    assert_eq!(sent.body["options"]["stop"], json!(["x"]));
}

#[tokio::test]
async fn stream_with_usage_and_length_finish() {
    let mock = MockProvider::start().await;
    let gw = Gateway::with_mock(&mock);
    mock.push(
        Route::OllamaChat,
        MockReply::text(&["Hel", "lo"]).finish("length"),
    );
    let mut body = chat("ollama/qwen2.5:7b", "hi");
    body["stream"] = json!(true);
    body["stream_options"] = json!({"include_usage": true});
    let (status, headers, data) = gw.stream(body).await;
    assert_eq!(status, 200);
    assert_eq!(headers["x-mana-llm-resolved"], "ollama/qwen2.5:7b");
    let chunks = chunks(&data);
    assert_eq!(streamed_text(&chunks), "Hello");
    assert_eq!(finish_reason(&chunks).as_deref(), Some("length"));
    let ids: std::collections::HashSet<&str> =
        chunks.iter().filter_map(|c| c["id"].as_str()).collect();
    assert_eq!(ids.len(), 1, "one id per stream");
    assert_eq!(chunks.last().unwrap()["usage"]["prompt_tokens"], 5);
    assert_eq!(
        mock.last_request(Route::OllamaChat).unwrap().body["stream"],
        true
    );

    mock.push(Route::OllamaChat, MockReply::ok().finish("length"));
    let r = gw
        .post("/v1/chat/completions", chat("ollama/qwen2.5:7b", "hi"))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json["choices"][0]["finish_reason"], "length");
}

#[tokio::test]
async fn images_arrive_as_base64_and_urls_are_refused_clearly() {
    let mock = MockProvider::start().await;
    let gw = Gateway::with_mock(&mock);
    let r = gw
        .post("/v1/chat/completions", vision_chat("ollama/llava:7b", PNG))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let sent = mock.last_request(Route::OllamaChat).unwrap();
    assert_eq!(sent.body["messages"][0]["images"], json!(["iVBORw0KGgo="]));
    assert_eq!(
        sent.body["messages"][0]["content"],
        "What is in this image?"
    );

    let refused = gw
        .post(
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
        mock.calls(Route::OllamaChat),
        1,
        "the refused request never reached ollama"
    );
}

#[tokio::test]
async fn tools_in_both_directions() {
    let mock = MockProvider::start().await;
    let gw = Gateway::with_mock(&mock);
    let sent = assert_tool_round_trip(
        &gw,
        &mock,
        "ollama/qwen2.5:7b",
        Route::OllamaChat,
        Route::OllamaChat,
    )
    .await;
    assert_eq!(sent.body["tools"][0]["function"]["name"], "get_weather");

    // Tool history goes back as native objects.
    let history = json!({"model": "ollama/qwen2.5:7b", "messages": [
        {"role": "user", "content": "Weather?"},
        {"role": "assistant", "content": null, "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Berlin\"}"}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "12 degrees"}
    ]});
    assert_eq!(gw.post("/v1/chat/completions", history).await.status, 200);
    let sent = mock.last_request(Route::OllamaChat).unwrap();
    assert_eq!(
        sent.body["messages"][1]["tool_calls"][0]["function"]["arguments"],
        json!({"city": "Berlin"})
    );
    assert_eq!(sent.body["messages"][2]["content"], "12 degrees");

    let refused = gw
        .post("/v1/chat/completions", tool_chat("ollama/gemma3:4b", false))
        .await;
    refused.assert_error(400, "capability_mismatch");
}

#[tokio::test]
async fn response_format_becomes_format_in_both_modes() {
    let mock = MockProvider::start().await;
    let gw = Gateway::with_mock(&mock);
    let mut body = chat("ollama/qwen2.5:7b", "json please");
    body["response_format"] = json!({"type": "json_object"});
    let r = gw.post("/v1/chat/completions", body.clone()).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        mock.last_request(Route::OllamaChat).unwrap().body["format"],
        "json"
    );
    body["stream"] = json!(true);
    let schema = json!({"type": "object", "properties": {"a": {"type": "string"}}});
    body["response_format"] =
        json!({"type": "json_schema", "json_schema": {"name": "x", "schema": schema}});
    let (status, _, data) = gw.stream(body).await;
    assert_eq!(status, 200);
    assert_eq!(data.last().map(String::as_str), Some("[DONE]"));
    assert_eq!(
        mock.last_request(Route::OllamaChat).unwrap().body["format"],
        schema
    );
}

#[tokio::test]
async fn embeddings_and_models() {
    let mock = MockProvider::start().await;
    let gw = Gateway::with_mock(&mock);
    let r = gw
        .post(
            "/v1/embeddings",
            json!({"model": "nomic-embed-text", "input": ["a", "b"]}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json["model"], "ollama/nomic-embed-text");
    assert_eq!(r.json["data"].as_array().unwrap().len(), 2);
    let sent = mock.last_request(Route::OllamaEmbed).unwrap();
    assert_eq!(sent.body["input"], json!(["a", "b"]));
    let models = gw.get("/v1/models").await;
    assert!(
        models.json["data"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["id"] == "ollama/mock-model:latest"),
        "{}",
        models.text
    );
    assert_eq!(
        gw.get("/v1/models/ollama/mock-model:latest").await.json["owned_by"],
        "ollama"
    );
}
