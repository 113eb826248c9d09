//! Streams are relayed chunk by chunk, fail in-band after the first byte, keep idle
//! connections alive and cancel the upstream when the client leaves.

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use mana_llm_mock::{MockProvider, Reply as MockReply, Route};
use serde_json::json;

use crate::support::*;

fn stream_body(model: &str) -> serde_json::Value {
    let mut body = chat(model, "stream please");
    body["stream"] = json!(true);
    body
}

#[tokio::test]
async fn chunks_reach_the_client_while_the_upstream_is_still_sending() {
    let mock = MockProvider::start().await;
    let gw = Gateway::with_mock(&mock);
    mock.push(
        Route::OpenAiChat,
        MockReply::text(&["a", "b", "c", "d"]).interval(Duration::from_millis(250)),
    );
    let start = Instant::now();
    let response = client()
        .post(gw.url("/v1/chat/completions"))
        .json(&stream_body("openai/m"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let mut body = response.bytes_stream();
    let mut first_content = None;
    let mut text = String::new();
    while let Some(piece) = body.next().await {
        text.push_str(&String::from_utf8_lossy(&piece.unwrap()));
        if first_content.is_none() && text.contains("\"content\":\"a\"") {
            first_content = Some(start.elapsed());
        }
    }
    let total = start.elapsed();
    let first = first_content.expect("content chunk a");
    // The upstream needs ~1 s for four pieces; the first one must not wait for the rest.
    assert!(total >= Duration::from_millis(900), "total {total:?}");
    assert!(
        first + Duration::from_millis(500) < total,
        "first chunk at {first:?}, end at {total:?}"
    );
    assert!(text.trim_end().ends_with("data: [DONE]"));
}

#[tokio::test]
async fn a_mid_stream_drop_becomes_an_error_event_then_done() {
    let mock = MockProvider::start().await;
    let gw = Gateway::with_mock(&mock);
    for (route, model) in [
        (Route::OpenAiChat, "groq/m"),
        (Route::OllamaChat, "ollama/m"),
        (Route::GeminiStream, "google/m"),
    ] {
        mock.push(
            route,
            MockReply::text(&["half", "way", "there"]).drop_after(2),
        );
        let (status, _, data) = gw.stream(stream_body(model)).await;
        assert_eq!(status, 200, "{model}");
        assert_eq!(
            data.last().map(String::as_str),
            Some("[DONE]"),
            "{model}: {data:?}"
        );
        let error: serde_json::Value = serde_json::from_str(&data[data.len() - 2]).unwrap();
        assert!(error["error"]["message"].is_string(), "{model}: {error}");
        assert!(
            streamed_text(&chunks(&data[..data.len() - 2])).starts_with("half"),
            "{model}"
        );
    }
}

#[tokio::test]
async fn a_mid_stream_stall_ends_with_a_timeout_event() {
    let mock = MockProvider::start().await;
    let gw = Gateway::builder()
        .mock(&mock)
        .env("MANA_LLM_STREAM_IDLE_TIMEOUT", "0.5")
        .start();
    mock.push(
        Route::OpenAiChat,
        MockReply::text(&["one", "two"]).stall_after(1),
    );
    let (_, _, data) = gw.stream(stream_body("openai/m")).await;
    assert_eq!(data.last().map(String::as_str), Some("[DONE]"));
    let error: serde_json::Value = serde_json::from_str(&data[data.len() - 2]).unwrap();
    assert_eq!(error["error"]["code"], "upstream_timeout");
}

#[tokio::test]
async fn silence_is_filled_with_keep_alive_comments() {
    let mock = MockProvider::start().await;
    let gw = Gateway::builder()
        .mock(&mock)
        .env("MANA_LLM_SSE_KEEPALIVE", "0.1")
        .start();
    mock.push(
        Route::OllamaChat,
        MockReply::text(&["slow", " answer"]).interval(Duration::from_millis(400)),
    );
    let response = client()
        .post(gw.url("/v1/chat/completions"))
        .json(&stream_body("ollama/m"))
        .send()
        .await
        .unwrap();
    let text = response.text().await.unwrap();
    assert!(text.contains(": keep-alive\n\n"), "{text}");
    assert_eq!(streamed_text(&chunks(&sse_data(&text))), "slow answer");
}

#[tokio::test]
async fn a_client_disconnect_cancels_the_upstream_request() {
    let mock = MockProvider::start().await;
    let gw = Gateway::with_mock(&mock);
    mock.push(
        Route::OpenAiChat,
        MockReply::text(&["x"; 50]).interval(Duration::from_millis(100)),
    );
    let response = client()
        .post(gw.url("/v1/chat/completions"))
        .json(&stream_body("openai/m"))
        .send()
        .await
        .unwrap();
    let mut body = response.bytes_stream();
    body.next().await.unwrap().unwrap();
    drop(body);
    assert!(
        eventually(Duration::from_secs(5), || mock.streams_closed_early() == 1).await,
        "the upstream stream was not closed"
    );
}
