//! The built-in echo provider through the whole gateway, and the endpoints that need no upstream.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::support::*;

#[tokio::test]
async fn chat_answers_with_resolved_model_and_headers() {
    let gw = Gateway::builder().start();
    let r = gw
        .post(
            "/v1/chat/completions",
            chat("echo/test", "Hello there gateway"),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json["object"], "chat.completion");
    assert_eq!(r.json["model"], "echo/test");
    assert_eq!(
        r.json["choices"][0]["message"]["content"],
        "Hello there gateway"
    );
    assert_eq!(r.json["choices"][0]["finish_reason"], "stop");
    assert_eq!(r.json["usage"]["total_tokens"], 6);
    assert_eq!(r.header("x-mana-llm-resolved"), Some("echo/test"));
    let id = r.header("x-request-id").unwrap();
    assert_eq!(id.len(), 36, "uuid request id, got {id}");
}

#[tokio::test]
async fn stream_sends_chunks_then_done_and_usage_when_asked() {
    let gw = Gateway::builder().start();
    let mut body = chat("echo/test", "one two three");
    body["stream"] = json!(true);
    body["stream_options"] = json!({"include_usage": true});
    let (status, headers, data) = gw.stream(body).await;
    assert_eq!(status, 200);
    assert_eq!(headers["content-type"], "text/event-stream");
    assert_eq!(headers["x-mana-llm-resolved"], "echo/test");
    assert_eq!(data.last().map(String::as_str), Some("[DONE]"));
    let chunks = chunks(&data);
    assert_eq!(streamed_text(&chunks), "one two three");
    assert!(chunks.iter().all(|c| c["model"] == "echo/test"));
    let usage = chunks.last().unwrap();
    assert_eq!(usage["choices"], json!([]));
    assert_eq!(usage["usage"]["completion_tokens"], 3);
    assert_eq!(usage["usage"]["prompt_tokens_details"]["cached_tokens"], 0);
    // Every chunk has the fields OpenAI's chunks have, though echo builds them itself.
    for c in &chunks {
        assert!(
            c.as_object().unwrap().contains_key("system_fingerprint"),
            "{c}"
        );
        for choice in c["choices"].as_array().unwrap() {
            assert!(choice.as_object().unwrap().contains_key("logprobs"), "{c}");
        }
    }
    // And so has the JSON answer.
    let answer = gw
        .post("/v1/chat/completions", chat("echo/test", "hi"))
        .await;
    assert!(answer
        .json
        .as_object()
        .unwrap()
        .contains_key("system_fingerprint"));
    assert!(answer.json["choices"][0]
        .as_object()
        .unwrap()
        .contains_key("logprobs"));
    assert!(answer.json["choices"][0]["message"]
        .as_object()
        .unwrap()
        .contains_key("refusal"));
}

#[tokio::test]
async fn embeddings_take_a_string_or_a_list() {
    let gw = Gateway::builder().start();
    let one = gw
        .post(
            "/v1/embeddings",
            json!({"model": "echo/e", "input": "hello"}),
        )
        .await;
    assert_eq!(one.status, 200, "{}", one.text);
    assert_eq!(one.json["data"].as_array().unwrap().len(), 1);
    assert_eq!(one.json["model"], "echo/e");
    let many = gw
        .post(
            "/v1/embeddings",
            json!({"model": "echo/e", "input": ["a", "b", "c"]}),
        )
        .await;
    let data = many.json["data"].as_array().unwrap();
    assert_eq!(data.len(), 3);
    assert_eq!(data[2]["index"], 2);
    assert_ne!(data[0]["embedding"], data[1]["embedding"]);
    let b64 = gw
        .post(
            "/v1/embeddings",
            json!({"model": "echo/e", "input": "x", "encoding_format": "base64"}),
        )
        .await;
    assert!(b64.json["data"][0]["embedding"].is_string(), "{}", b64.text);
}

#[tokio::test]
async fn models_list_and_lookup_with_slashes() {
    let gw = Gateway::builder().start();
    let list = gw.get("/v1/models").await;
    assert_eq!(list.json["object"], "list");
    assert!(list.json["data"]
        .as_array()
        .unwrap()
        .iter()
        .any(|m| m["id"] == "echo/echo"));
    let one = gw.get("/v1/models/echo/echo").await;
    assert_eq!(one.status, 200);
    assert_eq!(one.json["id"], "echo/echo");
    gw.get("/v1/models/echo/missing")
        .await
        .assert_error(404, "model_not_found");
    gw.get("/v1/models/nope/x")
        .await
        .assert_error(404, "model_not_found");
}

#[tokio::test]
async fn health_ready_and_metrics() {
    let gw = Gateway::builder().start();
    let health = gw.get("/health").await;
    assert_eq!(health.json["status"], "healthy");
    assert_eq!(health.json["service"], "mana-llm");
    assert_eq!(gw.get("/ready").await.status, 200);
    gw.post("/v1/chat/completions", chat("echo/m", "hi")).await;
    let metrics = gw.get("/metrics").await;
    assert!(metrics
        .header("content-type")
        .unwrap()
        .starts_with("text/plain"));
    let n = metric(
        &metrics.text,
        "mana_llm_requests_total",
        &["endpoint=\"/v1/chat/completions\"", "status=\"200\""],
    );
    assert_eq!(n, Some(1.0), "{}", metrics.text);
    let llm = metric(
        &metrics.text,
        "mana_llm_llm_requests_total",
        &["provider=\"echo\"", "streaming=\"false\""],
    );
    assert_eq!(llm, Some(1.0));
}

/// Keep-alive requests stay cheap: the median of 200 on one connection, not their total, so a
/// few requests slowed by a busy machine do not decide the outcome. (This is not a guard for
/// TCP_NODELAY: on loopback Linux acknowledges at once, and with the option removed this test
/// and a 100-chunk stream both ran as fast as with it.)
#[tokio::test]
async fn two_hundred_sequential_requests_on_one_connection() {
    let gw = Gateway::builder().start();
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(1)
        .http1_only()
        .build()
        .unwrap();
    let body = chat("echo/k", "keep alive");
    client
        .post(gw.url("/v1/chat/completions"))
        .json(&body)
        .send()
        .await
        .unwrap();
    let mut took = Vec::new();
    for _ in 0..200 {
        let start = Instant::now();
        let r = client
            .post(gw.url("/v1/chat/completions"))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        r.bytes().await.unwrap();
        took.push(start.elapsed());
    }
    took.sort();
    let median = took[took.len() / 2];
    assert!(
        median < Duration::from_millis(25),
        "median keep-alive request {median:?} (Nagle's delay is ~40 ms)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_and_exits_zero() {
    // A reply 3 s away: long enough that the signal surely lands while the request is open.
    let mut gw = Gateway::builder()
        .env("MANA_LLM_ECHO_DELAY_MS", "3000")
        .start();
    let url = gw.url("/v1/chat/completions");
    let in_flight = tokio::spawn(async move {
        client()
            .post(url)
            .json(&chat("echo/slow", "still here"))
            .send()
            .await
    });
    assert!(
        eventually_async(Duration::from_secs(5), || async {
            metric(
                &gw.get("/metrics").await.text,
                "mana_llm_in_flight_requests",
                &[],
            ) == Some(1.0)
        })
        .await
    );
    gw.signal("TERM");
    let ready = gw.url("/ready");
    assert!(
        eventually_async(Duration::from_secs(2), || async {
            // Draining: not ready, or not accepting new connections at all.
            client()
                .get(&ready)
                .send()
                .await
                .map_or(true, |r| r.status() != 200)
        })
        .await,
        "not ready while draining"
    );
    // The drain began with the request still open; otherwise this test proves nothing.
    assert!(
        !in_flight.is_finished(),
        "the reply came before the drain began"
    );
    let response = in_flight
        .await
        .unwrap()
        .expect("in-flight request finishes");
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.json::<serde_json::Value>().await.unwrap()["choices"][0]["message"]["content"],
        "still here"
    );
    let code = tokio::task::block_in_place(|| gw.wait_exit(Duration::from_secs(10)));
    assert_eq!(code, Some(0), "logs:\n{}", gw.logs());
}

#[tokio::test]
async fn json_logs_carry_one_line_per_request() {
    let gw = Gateway::builder()
        .env("LOG_FORMAT", "json")
        .env("LOG_LEVEL", "info")
        .start();
    let r = gw
        .post("/v1/chat/completions", chat("echo/logged", "hi"))
        .await;
    let id = r.header("x-request-id").unwrap().to_owned();
    assert!(
        eventually_async(Duration::from_secs(5), || async { gw.logs().contains(&id) }).await,
        "request line logged"
    );
    let logs = gw.logs();
    let line = logs.lines().find(|l| l.contains(&id)).unwrap();
    let entry: serde_json::Value = serde_json::from_str(line).expect("a JSON log line");
    assert_eq!(entry["request_id"], id);
    assert_eq!(entry["status"], 200);
    assert_eq!(entry["model"], "echo/logged");
    assert_eq!(entry["resolved"], "echo/logged");
    assert!(
        entry["total_ms"].is_number() && entry["upstream_ms"].is_number(),
        "{entry}"
    );
}
