//! Drives the mock over real HTTP with reqwest.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use mana_llm_mock::{MockProvider, Reply, Route};
use serde_json::{json, Value};

fn client() -> reqwest::Client {
    reqwest::Client::new()
}

/// Polls `f` until it holds or 5 s pass.
async fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn openai_chat(mock: &MockProvider, body: Value) -> reqwest::Response {
    client()
        .post(format!("{}/chat/completions", mock.openai_base()))
        .bearer_auth("sk-test")
        .json(&body)
        .send()
        .await
        .unwrap()
}

fn chat_body(stream: bool) -> Value {
    json!({"model": "gpt-mock", "messages": [{"role": "user", "content": "hi"}], "stream": stream})
}

/// Splits an SSE body into its `data:` payloads, checking the framing.
fn sse_payloads(text: &str, sep: &str) -> Vec<String> {
    assert!(text.ends_with(sep), "unterminated SSE body: {text:?}");
    text.split(sep)
        .filter(|e| !e.is_empty())
        .map(|e| e.strip_prefix("data: ").expect("data: prefix").to_owned())
        .collect()
}

#[tokio::test]
async fn openai_chat_json_default() {
    let mock = MockProvider::start().await;
    let resp = openai_chat(&mock, chat_body(false)).await;
    assert_eq!(resp.status(), 200);
    let v: Value = resp.json().await.unwrap();
    assert!(v["id"].as_str().unwrap().starts_with("chatcmpl-mock-"));
    assert_eq!(v["object"], "chat.completion");
    assert_eq!(v["model"], "gpt-mock");
    assert_eq!(v["choices"][0]["message"]["content"], "Hello from mock");
    assert_eq!(v["choices"][0]["finish_reason"], "stop");
    assert_eq!(v["usage"]["total_tokens"], 8);

    assert_eq!(mock.calls(Route::OpenAiChat), 1);
    let req = mock.last_request(Route::OpenAiChat).unwrap();
    assert_eq!(req.path, "/v1/chat/completions");
    assert_eq!(req.model.as_deref(), Some("gpt-mock"));
    assert_eq!(req.headers["authorization"], "Bearer sk-test");
    assert_eq!(req.body["messages"][0]["content"], "hi");
}

#[tokio::test]
async fn openai_sse_framing_ends_with_done() {
    let mock = MockProvider::start().await;
    let mut body = chat_body(true);
    body["stream_options"] = json!({"include_usage": true});
    let resp = openai_chat(&mock, body).await;
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    let payloads = sse_payloads(&resp.text().await.unwrap(), "\n\n");
    assert_eq!(payloads.last().unwrap(), "[DONE]");
    let chunks: Vec<Value> = payloads[..payloads.len() - 1]
        .iter()
        .map(|p| serde_json::from_str(p).unwrap())
        .collect();
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    let text: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(text, "Hello from mock");
    let n = chunks.len();
    assert_eq!(chunks[n - 2]["choices"][0]["finish_reason"], "stop");
    assert_eq!(chunks[n - 1]["choices"], json!([]));
    assert_eq!(chunks[n - 1]["usage"]["completion_tokens"], 3);
}

#[tokio::test]
async fn openai_streamed_tool_call_reassembles() {
    let mock = MockProvider::start().await;
    let args = json!({"city": "Paris", "days": 3});
    mock.push(Route::OpenAiChat, Reply::tool_call("weather", args.clone()));
    let text = openai_chat(&mock, chat_body(true))
        .await
        .text()
        .await
        .unwrap();
    let payloads = sse_payloads(&text, "\n\n");
    let mut joined = String::new();
    let mut fragments = 0;
    let mut finish = None;
    for p in &payloads[..payloads.len() - 1] {
        let c: Value = serde_json::from_str(p).unwrap();
        let choice = &c["choices"][0];
        if let Some(a) = choice["delta"]["tool_calls"][0]["function"]["arguments"].as_str() {
            joined.push_str(a);
            fragments += 1;
        }
        if let Some(f) = choice["finish_reason"].as_str() {
            finish = Some(f.to_owned());
        }
    }
    assert!(fragments >= 4, "name chunk plus 3+ argument fragments");
    assert_eq!(serde_json::from_str::<Value>(&joined).unwrap(), args);
    assert_eq!(finish.as_deref(), Some("tool_calls"));
}

#[tokio::test]
async fn queue_is_fifo_then_default() {
    let mock = MockProvider::start().await;
    mock.push(Route::OpenAiChat, Reply::status(503).retry_after(2));
    mock.push(Route::OpenAiChat, Reply::text(&["a", "b"]));

    let r1 = openai_chat(&mock, chat_body(false)).await;
    assert_eq!(r1.status(), 503);
    assert_eq!(r1.headers()["retry-after"], "2");
    let e: Value = r1.json().await.unwrap();
    assert_eq!(e["error"]["message"], "mock error 503");

    let r2: Value = openai_chat(&mock, chat_body(false))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(r2["choices"][0]["message"]["content"], "ab");
    let r3: Value = openai_chat(&mock, chat_body(false))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(r3["choices"][0]["message"]["content"], "Hello from mock");

    mock.set_default(Route::OpenAiChat, Reply::status(500));
    mock.push_n(Route::OpenAiChat, 2, Reply::status(429));
    let codes = [429, 429, 500, 500];
    for code in codes {
        assert_eq!(openai_chat(&mock, chat_body(false)).await.status(), code);
    }
    assert_eq!(mock.calls(Route::OpenAiChat), 7);
    assert_eq!(mock.calls(Route::OllamaChat), 0);

    mock.reset();
    assert_eq!(mock.calls(Route::OpenAiChat), 0);
    assert_eq!(openai_chat(&mock, chat_body(false)).await.status(), 200);
}

#[tokio::test]
async fn stall_then_client_drop_counts_closed_early() {
    let mock = MockProvider::start().await;
    mock.push(Route::OpenAiChat, Reply::stall());
    let err = client()
        .post(format!("{}/chat/completions", mock.openai_base()))
        .json(&chat_body(false))
        .timeout(Duration::from_millis(200))
        .send()
        .await
        .unwrap_err();
    assert!(err.is_timeout());
    // Recorded even though it never answered.
    assert_eq!(mock.calls(Route::OpenAiChat), 1);
    eventually("the stalled request to count as closed early", || {
        mock.streams_closed_early() == 1
    })
    .await;
}

#[tokio::test]
async fn stall_after_then_client_drop_counts_closed_early() {
    let mock = MockProvider::start().await;
    mock.push(Route::OllamaChat, Reply::ok().stall_after(1));
    let resp = client()
        .post(format!("{}/api/chat", mock.url()))
        .json(&json!({"model": "llama", "messages": []}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["content-type"], "application/x-ndjson");
    let mut body = resp.bytes_stream();
    let first = body.next().await.unwrap().unwrap();
    let line: Value = serde_json::from_slice(&first).unwrap();
    assert_eq!(line["message"]["content"], "Hello");
    assert_eq!(line["done"], false);
    assert_eq!(mock.streams_closed_early(), 0);
    drop(body);
    eventually("the stalled stream to count as closed early", || {
        mock.streams_closed_early() == 1
    })
    .await;
}

#[tokio::test]
async fn drop_after_breaks_the_stream() {
    let mock = MockProvider::start().await;
    mock.push(Route::OpenAiChat, Reply::ok().drop_after(2));
    let resp = openai_chat(&mock, chat_body(true)).await;
    assert_eq!(resp.status(), 200);
    let mut body = resp.bytes_stream();
    let mut received = Vec::new();
    let mut failed = false;
    while let Some(item) = body.next().await {
        match item {
            Ok(b) => received.extend_from_slice(&b),
            Err(_) => {
                failed = true;
                break;
            }
        }
    }
    assert!(failed, "the client must see the stream break");
    let text = String::from_utf8(received).unwrap();
    assert!(text.contains(r#""content":" from""#));
    assert!(!text.contains(" mock"));
    assert!(!text.contains("[DONE]"));
    assert_eq!(
        mock.streams_closed_early(),
        0,
        "a scripted drop is not the client"
    );
}

#[tokio::test]
async fn interval_paces_chunks() {
    let mock = MockProvider::start().await;
    mock.push(
        Route::OpenAiChat,
        Reply::text(&["a", "b", "c"]).interval(Duration::from_millis(60)),
    );
    let start = Instant::now();
    let mut body = openai_chat(&mock, chat_body(true)).await.bytes_stream();
    let mut frames = 0;
    while let Some(item) = body.next().await {
        item.unwrap();
        frames += 1;
    }
    // role, 3 pieces, finish, [DONE]; 5 waits of 60 ms.
    assert!(
        frames >= 4,
        "chunks should arrive as separate frames, got {frames}"
    );
    assert!(start.elapsed() >= Duration::from_millis(300));
}

#[tokio::test]
async fn ollama_routes() {
    let mock = MockProvider::start().await;
    // Streams by default.
    let text = client()
        .post(format!("{}/api/chat", mock.url()))
        .json(&json!({"model": "llama3", "messages": []}))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 4);
    assert_eq!(lines[3]["done"], true);
    assert_eq!(lines[3]["done_reason"], "stop");
    assert_eq!(lines[0]["model"], "llama3");

    mock.push(
        Route::OllamaChat,
        Reply::tool_call("lookup", json!({"q": "x"})),
    );
    let v: Value = client()
        .post(format!("{}/api/chat", mock.url()))
        .json(&json!({"model": "llama3", "messages": [], "stream": false}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        v["message"]["tool_calls"][0]["function"]["arguments"],
        json!({"q": "x"})
    );

    mock.push(Route::OllamaEmbed, Reply::status(404));
    let r = client()
        .post(format!("{}/api/embed", mock.url()))
        .json(&json!({"model": "e", "input": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "mock error 404");
    let v: Value = client()
        .post(format!("{}/api/embed", mock.url()))
        .json(&json!({"model": "e", "input": ["ab", "abc"]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        v["embeddings"],
        json!([[2.0, 0.5, -0.25], [3.0, 0.5, -0.25]])
    );
    let tags: Value = reqwest::get(format!("{}/api/tags", mock.url()))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(tags["models"][0]["name"], "mock-model:latest");
}

#[tokio::test]
async fn gemini_routes() {
    let mock = MockProvider::start().await;
    let base = mock.gemini_base();
    let req = json!({"contents": [{"role": "user", "parts": [{"text": "hi"}]}]});
    let v: Value = client()
        .post(format!("{base}/models/gemini-x:generateContent"))
        .json(&req)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        v["candidates"][0]["content"]["parts"][0]["text"],
        "Hello from mock"
    );
    assert_eq!(v["modelVersion"], "gemini-x");
    let rec = mock.last_request(Route::GeminiGenerate).unwrap();
    assert_eq!(rec.model.as_deref(), Some("gemini-x"));

    let resp = client()
        .post(format!(
            "{base}/models/gemini-x:streamGenerateContent?alt=sse"
        ))
        .json(&req)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    let payloads = sse_payloads(&resp.text().await.unwrap(), "\r\n\r\n");
    assert_eq!(payloads.len(), 3);
    let last: Value = serde_json::from_str(&payloads[2]).unwrap();
    assert_eq!(last["candidates"][0]["finishReason"], "STOP");
    assert_eq!(last["usageMetadata"]["totalTokenCount"], 8);
    assert_eq!(
        mock.last_request(Route::GeminiStream)
            .unwrap()
            .query
            .as_deref(),
        Some("alt=sse")
    );

    mock.push(Route::GeminiGenerate, Reply::blocked("SAFETY"));
    let v: Value = client()
        .post(format!("{base}/models/gemini-x:generateContent"))
        .json(&req)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["promptFeedback"]["blockReason"], "SAFETY");
    assert!(v.get("candidates").is_none());

    mock.push(Route::GeminiGenerate, Reply::ok().finish("length"));
    let v: Value = client()
        .post(format!("{base}/models/gemini-x:generateContent"))
        .json(&req)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["candidates"][0]["finishReason"], "MAX_TOKENS");

    let v: Value = client()
        .post(format!("{base}/models/emb:batchEmbedContents"))
        .json(&json!({"requests": [{"model": "models/emb", "content": {"parts": [{"text": "abcd"}]}}]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["embeddings"][0]["values"][0], 4.0);

    let unknown = client()
        .post(format!("{base}/models/gemini-x:countTokens"))
        .json(&req)
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), 404);
    let models: Value = reqwest::get(format!("{base}/models"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(models["models"][0]["name"], "models/gemini-mock");
    assert_eq!(mock.calls(Route::GeminiGenerate), 3);
}

#[tokio::test]
async fn malformed_and_delay() {
    let mock = MockProvider::start().await;
    mock.push(Route::OpenAiChat, Reply::malformed());
    let r = openai_chat(&mock, chat_body(false)).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap(), r#"{"this is": not json"#);

    mock.push(
        Route::OpenAiModels,
        Reply::ok().delay(Duration::from_millis(150)),
    );
    let start = Instant::now();
    let v: Value = reqwest::get(format!("{}/models", mock.openai_base()))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(start.elapsed() >= Duration::from_millis(150));
    assert_eq!(v["data"][0]["id"], "mock-model");
}

#[tokio::test]
async fn binary_prints_its_address() {
    use tokio::io::AsyncBufReadExt;
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_mana-llm-mock"))
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut line = String::new();
    tokio::io::BufReader::new(stdout)
        .read_line(&mut line)
        .await
        .unwrap();
    let url = line
        .trim_end()
        .strip_prefix("listening on ")
        .expect("listening line")
        .to_owned();
    let tags: Value = reqwest::get(format!("{url}/api/tags"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(tags["models"][0]["model"], "mock-model:latest");
    child.kill().await.unwrap();

    let bad = tokio::process::Command::new(env!("CARGO_BIN_EXE_mana-llm-mock"))
        .arg("--nope")
        .output()
        .await
        .unwrap();
    assert_eq!(bad.status.code(), Some(1));
    assert_eq!(String::from_utf8_lossy(&bad.stderr).lines().count(), 1);
}

#[tokio::test]
async fn echo_key_quotes_the_credential_received() {
    let mock = MockProvider::start().await;
    mock.push(Route::OpenAiChat, Reply::status(401).echo_key());
    let resp = openai_chat(&mock, chat_body(false)).await;
    assert_eq!(resp.status(), 401);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["error"]["message"], "Incorrect API key provided: sk-test");

    let resp = client()
        .post(format!(
            "{}/models/echo-key-403:generateContent",
            mock.gemini_base()
        ))
        .header("x-goog-api-key", "AIza-test")
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(
        v["error"]["message"],
        "Incorrect API key provided: AIza-test"
    );
}

#[tokio::test]
async fn error_after_sends_an_in_band_error() {
    let mock = MockProvider::start().await;
    let mut body = chat_body(true);
    body["model"] = json!("echo-key-midstream");
    let resp = openai_chat(&mock, body).await;
    assert_eq!(resp.status(), 200);
    let payloads = sse_payloads(&resp.text().await.unwrap(), "\n\n");
    let events: Vec<Value> = payloads
        .iter()
        .map(|p| serde_json::from_str(p).unwrap())
        .collect();
    assert_eq!(events.len(), 3, "role, one piece, the error: {payloads:?}");
    assert_eq!(events[1]["choices"][0]["delta"]["content"], "Hello");
    assert_eq!(
        events[2]["error"]["message"],
        "Incorrect API key provided: sk-test"
    );
}
