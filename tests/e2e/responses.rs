//! `POST /v1/responses`, stateless, over an alias whose first entry is Ollama-native and whose
//! second is OpenAI-compatible: the answer is translated both ways, falls back like chat, and
//! streams the documented event sequence.

use mana_llm_mock::{MockProvider, Reply as MockReply, Route};
use serde_json::{json, Value};

use crate::support::*;

const ALIASES: &str = "aliases:
  mana/mixed: {chain: [ollama/qwen2.5:7b, openai/mock-model]}
default: mana/mixed
";

fn gateway(mock: &MockProvider) -> Gateway {
    Gateway::builder().mock(mock).aliases(ALIASES).start()
}

/// The `(event, data)` pairs of a Responses stream.
async fn events(gw: &Gateway, body: Value) -> (reqwest::StatusCode, Vec<(String, Value)>) {
    let response = client()
        .post(gw.url("/v1/responses"))
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = response.status();
    let text = response.text().await.unwrap();
    let events = text
        .split("\n\n")
        .filter(|e| e.starts_with("event: "))
        .map(|e| {
            let (head, data) = e.split_once('\n').expect("event and data lines");
            let data: Value = serde_json::from_str(data.strip_prefix("data: ").unwrap()).unwrap();
            (head["event: ".len()..].to_owned(), data)
        })
        .collect();
    (status, events)
}

fn names(events: &[(String, Value)]) -> Vec<&str> {
    events.iter().map(|(n, _)| n.as_str()).collect()
}

const WEATHER_TOOL: &str = r#"[{"type":"function","name":"get_weather","description":"Weather for a city","parameters":{"type":"object","properties":{"city":{"type":"string"}},"required":["city"]}}]"#;

#[tokio::test]
async fn a_json_answer_is_a_response_object_from_the_first_entry() {
    let mock = MockProvider::start().await;
    let gw = gateway(&mock);
    let r = gw
        .post(
            "/v1/responses",
            json!({"model": "mana/mixed", "input": "Hello", "instructions": "Be brief",
                   "max_output_tokens": 64, "temperature": 0.3}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.header("x-mana-llm-resolved"), Some("ollama/qwen2.5:7b"));
    let body = &r.json;
    assert!(body["id"].as_str().unwrap().starts_with("resp_"), "{body}");
    assert_eq!(body["object"], "response");
    assert_eq!(body["status"], "completed");
    assert_eq!(body["model"], "ollama/qwen2.5:7b");
    assert_eq!(body["output"][0]["type"], "message");
    assert_eq!(body["output"][0]["role"], "assistant");
    assert_eq!(body["output"][0]["content"][0]["type"], "output_text");
    assert_eq!(body["output"][0]["content"][0]["text"], "Hello from mock");
    assert_eq!(body["usage"]["input_tokens"], 5);
    assert_eq!(body["usage"]["output_tokens"], 3);
    assert_eq!(body["usage"]["total_tokens"], 8);
    assert_eq!(body["usage"]["input_tokens_details"]["cached_tokens"], 0);
    assert_eq!(
        body["usage"]["output_tokens_details"]["reasoning_tokens"],
        0
    );
    assert_eq!(body["instructions"], "Be brief");
    assert_eq!(body["store"], false);
    // What Ollama was asked: the instructions as the system message, the budget as num_predict.
    let sent = mock.last_request(Route::OllamaChat).unwrap().body;
    assert_eq!(
        sent["messages"][0],
        json!({"role": "system", "content": "Be brief"})
    );
    assert_eq!(sent["messages"][1]["content"], "Hello");
    assert_eq!(sent["options"]["num_predict"], 64);
    assert_eq!(sent["options"]["temperature"], 0.3);
}

#[tokio::test]
async fn a_failing_first_entry_falls_back_with_tools_and_a_schema_translated() {
    let mock = MockProvider::start().await;
    let gw = gateway(&mock);
    mock.push(Route::OllamaChat, MockReply::status(503));
    mock.push(
        Route::OpenAiChat,
        MockReply::tool_call("get_weather", json!({"city": "Berlin"})),
    );
    let r = gw
        .post(
            "/v1/responses",
            json!({"model": "mana/mixed",
                   "input": [{"role": "user", "content": [{"type": "input_text", "text": "Weather in Berlin?"}]}],
                   "tools": serde_json::from_str::<Value>(WEATHER_TOOL).unwrap(),
                   "tool_choice": "required",
                   "text": {"format": {"type": "json_schema", "name": "w", "schema": {"type": "object"}}}}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json["model"], "openai/mock-model");
    let call = &r.json["output"][0];
    assert_eq!(call["type"], "function_call", "{}", r.text);
    assert_eq!(call["name"], "get_weather");
    assert_eq!(call["call_id"], "call_mock_1");
    assert!(call["id"].as_str().unwrap().starts_with("fc_"));
    let args: Value = serde_json::from_str(call["arguments"].as_str().unwrap()).unwrap();
    assert_eq!(args, json!({"city": "Berlin"}));
    let sent = mock.last_request(Route::OpenAiChat).unwrap().body;
    assert_eq!(sent["model"], "mock-model");
    assert_eq!(
        sent["messages"][0]["content"][0],
        json!({"type": "text", "text": "Weather in Berlin?"})
    );
    assert_eq!(sent["tools"][0]["function"]["name"], "get_weather");
    assert_eq!(sent["tool_choice"], "required");
    assert_eq!(sent["response_format"]["json_schema"]["name"], "w");
    assert_eq!(
        mock.calls(Route::OllamaChat),
        1,
        "the first entry was tried"
    );
}

#[tokio::test]
async fn a_tool_result_goes_back_as_a_tool_message() {
    let mock = MockProvider::start().await;
    let gw = gateway(&mock);
    let r = gw
        .post(
            "/v1/responses",
            json!({"model": "mana/mixed",
                   "tools": serde_json::from_str::<Value>(WEATHER_TOOL).unwrap(),
                   "input": [
                     {"role": "user", "content": "Weather in Berlin?"},
                     {"type": "function_call", "call_id": "call_1", "name": "get_weather", "arguments": "{\"city\":\"Berlin\"}"},
                     {"type": "function_call_output", "call_id": "call_1", "output": "sunny"}]}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let sent = mock.last_request(Route::OllamaChat).unwrap().body;
    let messages = sent["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 3, "{sent}");
    assert_eq!(messages[1]["role"], "assistant");
    assert_eq!(
        messages[1]["tool_calls"][0]["function"]["name"],
        "get_weather"
    );
    assert_eq!(messages[2]["role"], "tool");
    assert_eq!(messages[2]["content"], "sunny");
}

#[tokio::test]
async fn a_text_stream_is_the_documented_event_sequence() {
    let mock = MockProvider::start().await;
    let gw = gateway(&mock);
    let (status, ev) = events(
        &gw,
        json!({"model": "mana/mixed", "input": "Hello", "stream": true}),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        names(&ev),
        [
            "response.created",
            "response.in_progress",
            "response.output_item.added",
            "response.content_part.added",
            "response.output_text.delta",
            "response.output_text.delta",
            "response.output_text.delta",
            "response.output_text.done",
            "response.content_part.done",
            "response.output_item.done",
            "response.completed",
        ]
    );
    for (i, (name, data)) in ev.iter().enumerate() {
        assert_eq!(data["sequence_number"], i as u64, "{name}");
        assert_eq!(data["type"], name.as_str());
    }
    let text: String = ev
        .iter()
        .filter(|(n, _)| n == "response.output_text.delta")
        .map(|(_, d)| d["delta"].as_str().unwrap())
        .collect();
    assert_eq!(text, "Hello from mock");
    let done = &ev[10].1["response"];
    assert_eq!(done["status"], "completed");
    assert_eq!(done["model"], "ollama/qwen2.5:7b");
    assert_eq!(done["output"][0]["content"][0]["text"], "Hello from mock");
    assert_eq!(done["usage"]["output_tokens"], 3);
}

#[tokio::test]
async fn a_streamed_tool_call_after_fallback_assembles_its_arguments() {
    let mock = MockProvider::start().await;
    let gw = gateway(&mock);
    mock.push(Route::OllamaChat, MockReply::status(500));
    mock.push(
        Route::OpenAiChat,
        MockReply::tool_call("get_weather", json!({"city": "Berlin"})),
    );
    let (status, ev) = events(
        &gw,
        json!({"model": "mana/mixed", "input": "Weather?", "stream": true,
               "tools": serde_json::from_str::<Value>(WEATHER_TOOL).unwrap()}),
    )
    .await;
    assert_eq!(status, 200);
    let n = names(&ev);
    assert_eq!(n[2], "response.output_item.added");
    assert_eq!(ev[2].1["item"]["type"], "function_call");
    assert_eq!(ev[2].1["item"]["name"], "get_weather");
    let deltas: String = ev
        .iter()
        .filter(|(n, _)| n == "response.function_call_arguments.delta")
        .map(|(_, d)| d["delta"].as_str().unwrap())
        .collect();
    let args: Value = serde_json::from_str(&deltas).unwrap();
    assert_eq!(args, json!({"city": "Berlin"}));
    assert!(
        n.contains(&"response.function_call_arguments.done"),
        "{n:?}"
    );
    assert_eq!(n.last(), Some(&"response.completed"));
    let output = &ev.last().unwrap().1["response"]["output"];
    assert_eq!(output[0]["arguments"], deltas);
    assert_eq!(
        ev.last().unwrap().1["response"]["model"],
        "openai/mock-model"
    );
    // The stream asked the upstream for usage, for the completed event.
    let sent = mock.last_request(Route::OpenAiChat).unwrap().body;
    assert_eq!(sent["stream_options"]["include_usage"], true);
}

#[tokio::test]
async fn failures_before_the_first_byte_are_http_errors_and_after_it_events() {
    let mock = MockProvider::start().await;
    let gw = gateway(&mock);
    mock.push(Route::OllamaChat, MockReply::status(503));
    mock.push(Route::OpenAiChat, MockReply::status(503));
    let r = gw
        .post(
            "/v1/responses",
            json!({"model": "mana/mixed", "input": "x", "stream": true}),
        )
        .await;
    r.assert_error(503, "no_healthy_provider");

    mock.push(Route::OllamaChat, MockReply::ok().error_after(1));
    let (status, ev) = events(
        &gw,
        json!({"model": "ollama/qwen2.5:7b", "input": "x", "stream": true}),
    )
    .await;
    assert_eq!(status, 200);
    let n = names(&ev);
    assert_eq!(n[n.len() - 2..], ["error", "response.failed"], "{n:?}");
    assert_eq!(ev[n.len() - 2].1["code"], "upstream_protocol");
    let failed = &ev.last().unwrap().1["response"];
    assert_eq!(failed["status"], "failed");
    assert!(failed["error"]["message"]
        .as_str()
        .unwrap()
        .contains("mock error"));
}

#[tokio::test]
async fn server_side_state_is_a_400_naming_the_field() {
    let mock = MockProvider::start().await;
    let gw = gateway(&mock);
    for (body, param) in [
        (json!({"input": "x", "store": true}), "store"),
        (
            json!({"input": "x", "previous_response_id": "resp_1"}),
            "previous_response_id",
        ),
        (
            json!({"input": [{"type": "item_reference", "id": "msg_1"}]}),
            "input[0]",
        ),
    ] {
        let r = gw.post("/v1/responses", body).await;
        r.assert_error(400, "unsupported_stateful_feature");
        assert_eq!(r.json["error"]["param"], param);
    }
    let r = gw.get("/v1/responses/resp_123").await;
    r.assert_error(400, "unsupported_stateful_feature");
    assert!(r.json["error"]["message"]
        .as_str()
        .unwrap()
        .contains("stateless"));
    let r = gw
        .post(
            "/v1/responses",
            json!({"input": "x", "tools": [{"type": "web_search"}]}),
        )
        .await;
    r.assert_error(400, "invalid_request");
    assert_eq!(r.json["error"]["param"], "tools[0].type");
    let r = gw
        .post("/v1/responses", json!({"input": "x", "temperature": 7}))
        .await;
    r.assert_error(400, "invalid_request");
    assert_eq!(r.json["error"]["param"], "temperature");
    assert_eq!(
        mock.calls(Route::OllamaChat) + mock.calls(Route::OpenAiChat),
        0
    );
}

#[tokio::test]
async fn a_deterministic_request_is_cached_and_a_streamed_hit_replayed_as_events() {
    let mock = MockProvider::start().await;
    let gw = gateway(&mock);
    let body = json!({"model": "mana/mixed", "input": "cache me", "temperature": 0});
    let first = gw.post("/v1/responses", body.clone()).await;
    assert_eq!(
        first.header("x-mana-llm-cache"),
        Some("miss"),
        "{}",
        first.text
    );
    let second = gw.post("/v1/responses", body.clone()).await;
    assert_eq!(second.header("x-mana-llm-cache"), Some("hit"));
    assert_eq!(
        second.json["output"][0]["content"][0]["text"],
        "Hello from mock"
    );
    assert_eq!(second.json["model"], "ollama/qwen2.5:7b");
    // A new response each time, though the answer came from the cache.
    assert_ne!(first.json["id"], second.json["id"]);

    let mut streamed = body;
    streamed["stream"] = json!(true);
    let (status, ev) = events(&gw, streamed).await;
    assert_eq!(status, 200);
    let n = names(&ev);
    assert_eq!(n.first(), Some(&"response.created"));
    assert_eq!(n.last(), Some(&"response.completed"), "{n:?}");
    let done = &ev.last().unwrap().1["response"];
    assert_eq!(done["output"][0]["content"][0]["text"], "Hello from mock");
    assert_eq!(
        done["usage"]["input_tokens"], 5,
        "the replay carries the usage"
    );
    assert_eq!(
        mock.calls(Route::OllamaChat),
        1,
        "one upstream call for all three"
    );
}

#[tokio::test]
async fn an_image_url_skips_the_ollama_entry_and_an_inline_image_reaches_it() {
    let mock = MockProvider::start().await;
    let gw = gateway(&mock);
    let ask = |url: &str| {
        json!({"model": "mana/mixed", "input": [{"role": "user", "content": [
            {"type": "input_text", "text": "What is this?"},
            {"type": "input_image", "image_url": url}]}]})
    };
    let r = gw
        .post("/v1/responses", ask("https://cdn.example/cat.png"))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json["model"], "openai/mock-model");
    let sent = mock.last_request(Route::OpenAiChat).unwrap().body;
    assert_eq!(
        sent["messages"][0]["content"][1]["image_url"]["url"],
        "https://cdn.example/cat.png"
    );
    assert_eq!(mock.calls(Route::OllamaChat), 0);

    let r = gw.post("/v1/responses", ask(PNG)).await;
    assert_eq!(r.json["model"], "ollama/qwen2.5:7b", "{}", r.text);
    let sent = mock.last_request(Route::OllamaChat).unwrap().body;
    assert_eq!(sent["messages"][0]["images"][0], "iVBORw0KGgo=");
}
