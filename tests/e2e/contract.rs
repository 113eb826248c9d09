//! The capabilities every provider offers through the gateway, checked the same way for each:
//! the provider suites (`ollama`, `google`, `openai_compat`) run these with their models and
//! mock routes, and pass what only their upstream must have received as closures.

use mana_llm_mock::{MockProvider, Recorded, Route};
use serde_json::{json, Value};

use crate::support::*;

/// A mock upstream and a gateway whose providers all point at it.
pub struct Setup {
    pub mock: MockProvider,
    pub gw: Gateway,
}

impl Setup {
    pub async fn start() -> Setup {
        let mock = MockProvider::start().await;
        let gw = Gateway::with_mock(&mock);
        Setup { mock, gw }
    }
}

/// A whole chat answer: 200, named after the target that answered (`resolved`), with the
/// mock's text. `sent` checks the answer and what reached the upstream on `route`.
pub async fn chat(
    s: &Setup,
    body: Value,
    resolved: &str,
    route: Route,
    sent: impl FnOnce(&Reply, &Recorded),
) {
    let r = s.gw.post("/v1/chat/completions", body).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json["model"], resolved, "{}", r.text);
    assert_eq!(
        r.json["choices"][0]["message"]["content"],
        "Hello from mock"
    );
    let recorded = s.mock.last_request(route).unwrap();
    sent(&r, &recorded);
}

/// A stream with usage asked for: 200, `X-Mana-LLM-Resolved` the model, the text in order.
/// `check` gets the chunks and the mock.
pub async fn stream(
    s: &Setup,
    model: &str,
    text: &str,
    check: impl FnOnce(&[Value], &MockProvider),
) {
    let mut body = chat_body(model, "hi");
    body["stream"] = json!(true);
    body["stream_options"] = json!({"include_usage": true});
    let (status, headers, data) = s.gw.stream(body).await;
    assert_eq!(status, 200);
    assert_eq!(headers["x-mana-llm-resolved"], model);
    let chunks = chunks(&data);
    assert_eq!(streamed_text(&chunks), text);
    check(&chunks, &s.mock);
}

/// An image as a data URL is accepted; `sent` gets the body the upstream received on `route`
/// and the one the client sent.
pub async fn vision(s: &Setup, model: &str, route: Route, sent: impl FnOnce(&Value, &Value)) {
    let body = vision_chat(model, PNG);
    let r = s.gw.post("/v1/chat/completions", body.clone()).await;
    assert_eq!(r.status, 200, "{}", r.text);
    sent(&s.mock.last_request(route).unwrap().body, &body);
}

/// Tools declared, called and streamed (the shared round trip); `sent` gets the request that
/// declared them.
pub async fn tools(
    s: &Setup,
    model: &str,
    json_route: Route,
    stream_route: Route,
    sent: impl FnOnce(&Recorded),
) {
    let recorded = assert_tool_round_trip(&s.gw, &s.mock, model, json_route, stream_route).await;
    sent(&recorded);
}

/// `response_format: json_object` is accepted; `sent` gets the answer and what the upstream
/// received on `route`.
pub async fn json_mode(s: &Setup, model: &str, route: Route, sent: impl FnOnce(&Reply, &Recorded)) {
    let mut body = chat_body(model, "json please");
    body["response_format"] = json!({"type": "json_object"});
    let r = s.gw.post("/v1/chat/completions", body).await;
    assert_eq!(r.status, 200, "{}", r.text);
    sent(&r, &s.mock.last_request(route).unwrap());
}

/// Embeddings of `input` answer one vector per input, named after `resolved`; `sent` gets what
/// the upstream received on `route`. Then `/v1/models` lists every id of `listed`.
pub async fn embeddings_and_models(
    s: &Setup,
    model: &str,
    input: &[&str],
    resolved: &str,
    route: Route,
    sent: impl FnOnce(&Recorded),
    listed: &[&str],
) {
    let r =
        s.gw.post("/v1/embeddings", json!({"model": model, "input": input}))
            .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json["model"], resolved);
    assert_eq!(r.json["data"].as_array().unwrap().len(), input.len());
    sent(&s.mock.last_request(route).unwrap());
    let models = s.gw.get("/v1/models").await;
    let ids: Vec<&str> = models.json["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m["id"].as_str())
        .collect();
    for id in listed {
        assert!(ids.contains(id), "{id} missing from {ids:?}");
    }
}

fn chat_body(model: &str, content: &str) -> Value {
    crate::support::chat(model, content)
}
