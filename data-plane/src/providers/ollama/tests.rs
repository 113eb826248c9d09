use std::time::Duration;

use futures_util::stream;
use mana_llm_mock::{MockProvider, Reply, Route};
use serde_json::json;

use super::*;

fn ollama(mock: &MockProvider) -> Ollama {
    let timeout = Duration::from_secs(5);
    Ollama::new(Upstream::new(
        reqwest::Client::new(),
        &mock.url(),
        timeout,
        timeout,
    ))
}

fn chat_request(v: Value) -> ChatRequest {
    serde_json::from_value(v).unwrap()
}

async fn collect(
    s: impl Stream<Item = Result<ChatChunk, UpstreamError>>,
) -> Vec<Result<ChatChunk, UpstreamError>> {
    s.collect().await
}

fn ok_lines(lines: &[&str]) -> impl Stream<Item = Result<String, UpstreamError>> + Send + 'static {
    let lines: Vec<_> = lines.iter().map(|l| Ok(l.to_string())).collect();
    stream::iter(lines)
}

#[tokio::test]
async fn streams_stop_at_done_and_at_errors() {
    let items = collect(chunks(
        ok_lines(&[
            r#"{"message":{"content":"a"},"done":false}"#,
            r#"{"message":{"content":""},"done":true}"#,
            "this line is never read",
        ]),
        StreamState::new(false),
    ))
    .await;
    assert_eq!(items.len(), 3);
    assert!(items.iter().all(Result::is_ok));

    let items = collect(chunks(
        ok_lines(&[r#"{"message":{"content":"a"},"done":false}"#]),
        StreamState::new(false),
    ))
    .await;
    assert!(
        matches!(items.last(), Some(Err(UpstreamError::Protocol(m))) if m == "stream ended before done")
    );

    let broken = stream::iter(vec![
        Ok(r#"{"message":{"content":"a"},"done":false}"#.to_owned()),
        Err(UpstreamError::Timeout("stalled".to_owned())),
        Ok(r#"{"message":{"content":""},"done":true}"#.to_owned()),
    ]);
    let items = collect(chunks(broken, StreamState::new(false))).await;
    assert_eq!(items.len(), 3, "role, content, the timeout; nothing after");
    assert!(matches!(items[2], Err(UpstreamError::Timeout(_))));

    let items = collect(chunks(
        ok_lines(&[r#"{"error":"boom"}"#, r#"{"done":true}"#]),
        StreamState::new(false),
    ))
    .await;
    assert_eq!(items.len(), 1);
    assert!(items[0].is_err());
}

#[tokio::test]
async fn chat_against_the_mock() {
    let mock = MockProvider::start().await;
    let provider = ollama(&mock);
    let request = chat_request(json!({
        "messages": [{"role": "user", "content": "hi"}],
        "response_format": {"type": "json_object"}, "max_tokens": 9
    }));
    let answer = provider.chat(&request, "qwen2.5:7b").await.unwrap();
    assert_eq!(
        answer.choices[0].message.content.as_deref(),
        Some("Hello from mock")
    );
    assert_eq!(answer.choices[0].finish_reason.as_deref(), Some("stop"));
    let sent = mock.last_request(Route::OllamaChat).unwrap().body;
    assert_eq!(sent["model"], "qwen2.5:7b");
    assert_eq!(sent["stream"], false);
    assert_eq!(sent["format"], "json");
    assert_eq!(sent["options"]["num_predict"], 9);

    mock.push(Route::OllamaChat, Reply::status(500));
    assert!(matches!(
        provider.chat(&request, "qwen2.5:7b").await,
        Err(UpstreamError::Status { status: 500, .. })
    ));
    mock.push(Route::OllamaChat, Reply::malformed());
    assert!(matches!(
        provider.chat(&request, "qwen2.5:7b").await,
        Err(UpstreamError::Protocol(_))
    ));
}

#[tokio::test]
async fn tools_need_a_capable_model() {
    let mock = MockProvider::start().await;
    let provider = ollama(&mock);
    let mut v = json!({
        "messages": [{"role": "user", "content": "hi"}],
        "tools": [{"type": "function", "function": {"name": "f"}}]
    });
    let e = provider
        .chat(&chat_request(v.clone()), "gemma3:4b")
        .await
        .unwrap_err();
    assert!(matches!(&e, UpstreamError::Capability(m) if m.contains("ollama/gemma3:4b")));
    assert!(provider
        .chat_stream(&chat_request(v.clone()), "gemma3:4b")
        .await
        .is_err());
    assert_eq!(mock.calls(Route::OllamaChat), 0);
    assert!(provider.supports_tools("qwen2.5:7b"));
    assert!(!provider.supports_tools("gemma3:4b"));
    v["tool_choice"] = json!("none");
    provider.chat(&chat_request(v), "gemma3:4b").await.unwrap();
}

#[tokio::test]
async fn streaming_against_the_mock() {
    let mock = MockProvider::start().await;
    let provider = ollama(&mock);
    let request = chat_request(json!({
        "messages": [{"role": "user", "content": "hi"}],
        "stream_options": {"include_usage": true},
        "response_format": {"type": "json_object"}
    }));
    let items = collect(provider.chat_stream(&request, "m").await.unwrap()).await;
    let chunks: Vec<ChatChunk> = items.into_iter().map(Result::unwrap).collect();
    let text: String = chunks
        .iter()
        .flat_map(|c| c.choices.iter().filter_map(|ch| ch.delta.content.clone()))
        .collect();
    assert_eq!(text, "Hello from mock");
    assert!(chunks.last().unwrap().usage.is_some());
    let sent = mock.last_request(Route::OllamaChat).unwrap().body;
    assert_eq!(sent["stream"], true);
    assert_eq!(sent["format"], "json");

    mock.push(
        Route::OllamaChat,
        Reply::tool_call("get_w", json!({"city": "Berlin"})),
    );
    let items = collect(provider.chat_stream(&request, "qwen3").await.unwrap()).await;
    let chunks: Vec<ChatChunk> = items.into_iter().map(Result::unwrap).collect();
    let call = chunks
        .iter()
        .find_map(|c| c.choices[0].delta.tool_calls.clone())
        .unwrap();
    assert_eq!(
        call[0].function.as_ref().unwrap().name.as_deref(),
        Some("get_w")
    );
    let finish = chunks
        .iter()
        .rev()
        .find_map(|c| c.choices.first()?.finish_reason.clone());
    assert_eq!(finish.as_deref(), Some("tool_calls"));

    mock.push(Route::OllamaChat, Reply::status(503));
    assert!(matches!(
        provider.chat_stream(&request, "m").await,
        Err(UpstreamError::Status { status: 503, .. })
    ));

    mock.push(Route::OllamaChat, Reply::ok().drop_after(1));
    let items = collect(provider.chat_stream(&request, "m").await.unwrap()).await;
    assert!(items.last().unwrap().is_err());
}

#[tokio::test]
async fn embeddings_and_models_against_the_mock() {
    let mock = MockProvider::start().await;
    let provider = ollama(&mock);
    let request: EmbeddingsRequest =
        serde_json::from_value(json!({"input": ["a b", "c"], "dimensions": 8})).unwrap();
    let e = provider
        .embeddings(&request, "nomic-embed-text")
        .await
        .unwrap();
    assert_eq!(e.vectors.len(), 2);
    let sent = mock.last_request(Route::OllamaEmbed).unwrap().body;
    assert_eq!(
        sent,
        json!({"model": "nomic-embed-text", "input": ["a b", "c"], "dimensions": 8})
    );

    let tokens: EmbeddingsRequest = serde_json::from_value(json!({"input": [1, 2]})).unwrap();
    assert!(matches!(
        provider.embeddings(&tokens, "m").await,
        Err(UpstreamError::Capability(_))
    ));

    let models = provider.list_models().await.unwrap();
    assert_eq!(models.len(), 1);
    let m = serde_json::to_value(&models[0]).unwrap();
    assert_eq!(m["id"], "ollama/mock-model:latest");
    assert_eq!(m["created"], 1_767_225_600);
    assert_eq!(m["owned_by"], "ollama");
}
