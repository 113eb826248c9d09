//! Aliases and fallback chains end to end: the original's M3/M4 behaviour with its fixes.

use std::time::Duration;

use mana_llm_mock::{MockProvider, Reply as MockReply, Route};
use serde_json::json;

use crate::support::*;

/// `mana/chain`: local Ollama first, then Groq, then OpenRouter — all played by one mock
/// (Ollama on its native route, the other two on the OpenAI route).
const CHAIN: &str = "
aliases:
  mana/chain:
    description: fallback test
    chain: [ollama/first, groq/second, openrouter/third]
  mana/tools:
    description: first entry cannot call tools
    chain: [ollama/gemma3:4b, groq/tool-model]
  mana/deadline:
    description: a first-token deadline on the first entry
    chain:
      - {target: ollama/slow, first_token_timeout_ms: 300}
      - groq/fast
default: mana/chain
";

fn gateway(mock: &MockProvider) -> Gateway {
    Gateway::builder().mock(mock).aliases(CHAIN).start()
}

#[tokio::test]
async fn falls_back_on_500_429_and_connection_errors() {
    let mock = MockProvider::start().await;
    let gw = gateway(&mock);
    for failure in [
        MockReply::status(500),
        MockReply::status(429).retry_after(1),
    ] {
        mock.push(Route::OllamaChat, failure);
        let r = gw
            .post("/v1/chat/completions", chat("mana/chain", "hi"))
            .await;
        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!(r.json["model"], "groq/second");
        assert_eq!(r.header("x-mana-llm-resolved"), Some("groq/second"));
    }
    assert_eq!(
        mock.requests(Route::OpenAiChat)
            .iter()
            .filter(|q| q.body["model"] == "second")
            .count(),
        2
    );

    // Ollama refusing connections: point it at a closed port.
    let gw = Gateway::builder()
        .mock(&mock)
        .aliases(CHAIN)
        .env("OLLAMA_URL", "http://127.0.0.1:1")
        .start();
    let r = gw
        .post("/v1/chat/completions", chat("mana/chain", "hi"))
        .await;
    assert_eq!(r.json["model"], "groq/second", "{}", r.text);
}

#[tokio::test]
async fn a_missed_first_token_deadline_falls_back() {
    let mock = MockProvider::start().await;
    let gw = gateway(&mock);
    mock.push(Route::OllamaChat, MockReply::stall());
    let r = gw
        .post("/v1/chat/completions", chat("mana/deadline", "hi"))
        .await;
    assert_eq!(r.json["model"], "groq/fast", "{}", r.text);

    mock.push(Route::OllamaChat, MockReply::stall());
    let mut body = chat("mana/deadline", "hi");
    body["stream"] = json!(true);
    let (status, headers, data) = gw.stream(body).await;
    assert_eq!(status, 200);
    assert_eq!(headers["x-mana-llm-resolved"], "groq/fast");
    assert!(chunks(&data).iter().all(|c| c["model"] == "groq/fast"));
}

#[tokio::test]
async fn streams_fall_back_before_the_first_byte_but_never_after() {
    let mock = MockProvider::start().await;
    let gw = gateway(&mock);
    let mut body = chat("mana/chain", "hi");
    body["stream"] = json!(true);

    mock.push(Route::OllamaChat, MockReply::status(503));
    let (status, headers, data) = gw.stream(body.clone()).await;
    assert_eq!(status, 200);
    assert_eq!(headers["x-mana-llm-resolved"], "groq/second");
    assert_eq!(streamed_text(&chunks(&data)), "Hello from mock");

    let groq_calls = mock.calls(Route::OpenAiChat);
    mock.push(
        Route::OllamaChat,
        MockReply::text(&["halb", "fertig"]).drop_after(1),
    );
    let (status, headers, data) = gw.stream(body).await;
    assert_eq!(status, 200);
    assert_eq!(headers["x-mana-llm-resolved"], "ollama/first");
    assert_eq!(data.last().map(String::as_str), Some("[DONE]"));
    assert!(data[data.len() - 2].contains("\"error\""), "{data:?}");
    assert_eq!(
        mock.calls(Route::OpenAiChat),
        groq_calls,
        "no fallback after the first byte"
    );
}

#[tokio::test]
async fn request_errors_are_not_retried() {
    let mock = MockProvider::start().await;
    let gw = gateway(&mock);
    mock.push(Route::OllamaChat, MockReply::status(400));
    let r = gw
        .post("/v1/chat/completions", chat("mana/chain", "hi"))
        .await;
    r.assert_error(400, "upstream_rejected");
    assert_eq!(mock.calls(Route::OllamaChat), 1);
    assert_eq!(
        mock.calls(Route::OpenAiChat),
        0,
        "no fallback on a request error"
    );
}

#[tokio::test]
async fn a_capability_mismatch_skips_to_the_next_entry() {
    let mock = MockProvider::start().await;
    let gw = gateway(&mock);
    let r = gw
        .post("/v1/chat/completions", tool_chat("mana/tools", false))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json["model"], "groq/tool-model");
    assert_eq!(mock.calls(Route::OllamaChat), 0);
}

#[tokio::test]
async fn an_exhausted_chain_is_503_with_attempts() {
    let mock = MockProvider::start().await;
    let gw = Gateway::builder()
        .mock(&mock)
        .aliases(CHAIN)
        .env("OPENROUTER_API_KEY", "")
        .start();
    mock.push(Route::OllamaChat, MockReply::status(500));
    mock.push(Route::OpenAiChat, MockReply::status(502));
    let r = gw
        .post("/v1/chat/completions", chat("mana/chain", "hi"))
        .await;
    r.assert_error(503, "no_healthy_provider");
    let attempts = r.json["error"]["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 3);
    assert_eq!(
        attempts[0],
        json!({"target": "ollama/first", "reason": "upstream_5xx", "status": 500})
    );
    assert_eq!(
        attempts[1],
        json!({"target": "groq/second", "reason": "upstream_5xx", "status": 502})
    );
    assert_eq!(
        attempts[2],
        json!({"target": "openrouter/third", "reason": "unconfigured", "status": null})
    );
    assert!(r.json["error"]["message"]
        .as_str()
        .unwrap()
        .contains("no healthy provider could serve 'mana/chain'"));

    // Streaming: nothing was sent yet, so it is a real 503 too.
    mock.push(Route::OllamaChat, MockReply::status(500));
    mock.push(Route::OpenAiChat, MockReply::status(500));
    let mut body = chat("mana/chain", "hi");
    body["stream"] = json!(true);
    gw.post("/v1/chat/completions", body)
        .await
        .assert_error(503, "no_healthy_provider");
}

#[tokio::test]
async fn the_default_alias_applies_and_unknown_aliases_are_404() {
    let mock = MockProvider::start().await;
    let gw = gateway(&mock);
    let r = gw
        .post(
            "/v1/chat/completions",
            json!({"messages": [{"role": "user", "content": "hi"}]}),
        )
        .await;
    assert_eq!(r.json["model"], "ollama/first", "{}", r.text);
    let r = gw
        .post(
            "/v1/chat/completions",
            json!({"model": "", "messages": [{"role": "user", "content": "hi"}]}),
        )
        .await;
    assert_eq!(r.json["model"], "ollama/first");
    let unknown = gw
        .post("/v1/chat/completions", chat("mana/nope", "hi"))
        .await;
    unknown.assert_error(404, "model_not_found");
    assert!(
        unknown.json["error"]["message"]
            .as_str()
            .unwrap()
            .contains("mana/chain"),
        "lists the known aliases"
    );
    let embed = gw
        .post(
            "/v1/embeddings",
            json!({"model": "mana/chain", "input": "x"}),
        )
        .await;
    assert_eq!(
        embed.json["model"], "ollama/first",
        "aliases work for embeddings: {}",
        embed.text
    );
}

#[tokio::test]
async fn aliases_models_and_health_endpoints() {
    let mock = MockProvider::start().await;
    let gw = gateway(&mock);
    let aliases = gw.get("/v1/aliases").await;
    assert_eq!(aliases.json["version"], 1);
    assert_eq!(aliases.json["default"], "mana/chain");
    let names: Vec<&str> = aliases.json["aliases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["mana/chain", "mana/deadline", "mana/tools"],
        "sorted by name"
    );
    assert_eq!(
        aliases.json["aliases"][0]["chain"],
        json!(["ollama/first", "groq/second", "openrouter/third"])
    );
    assert_eq!(aliases.header("x-mana-llm-registry-version"), Some("1"));

    let models = gw.get("/v1/models").await;
    let alias = models.json["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["id"] == "mana/chain")
        .cloned()
        .unwrap();
    assert_eq!(alias["owned_by"], "mana-llm");
    assert_eq!(
        gw.get("/v1/models/mana/chain").await.json["owned_by"],
        "mana-llm"
    );

    let health = gw.get("/v1/health").await;
    assert_eq!(health.json["status"], "healthy");
    assert_eq!(health.json["shared"], false);
    let ollama = &health.json["providers"]["ollama"];
    assert_eq!(ollama["status"], "healthy", "{ollama}");
    assert_eq!(ollama["consecutive_failures"], 0, "{ollama}");
    assert_eq!(ollama["last_error"], json!(null), "{ollama}");
    assert_eq!(ollama["open_until_unix"], json!(null), "{ollama}");

    // One failure is counted with its reason and time; the second opens the breaker
    // (MANA_LLM_BREAKER_FAILURES defaults to 2) until a time in the future.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    for failures in 1..=2 {
        mock.push(Route::OllamaChat, MockReply::status(500));
        let r = gw
            .post("/v1/chat/completions", chat("mana/chain", "hi"))
            .await;
        assert_eq!(r.json["model"], "groq/second", "{}", r.text);
        let health = gw.get("/v1/health").await;
        let ollama = &health.json["providers"]["ollama"];
        assert_eq!(ollama["consecutive_failures"], failures, "{ollama}");
        assert!(
            ollama["last_error"]
                .as_str()
                .is_some_and(|e| e.contains("500")),
            "{ollama}"
        );
        let checked = ollama["last_check_unix"].as_f64().unwrap_or(0.0);
        assert!(
            (now - 5.0..now + 60.0).contains(&checked),
            "last check {checked}, now {now}: {ollama}"
        );
        if failures == 1 {
            assert_eq!(ollama["status"], "healthy", "{ollama}");
            assert_eq!(ollama["open_until_unix"], json!(null), "{ollama}");
        } else {
            assert_eq!(ollama["status"], "open", "{ollama}");
            let until = ollama["open_until_unix"].as_f64().unwrap_or(0.0);
            assert!(until > checked, "open until {until}: {ollama}");
            assert_eq!(health.json["status"], "degraded", "{}", health.text);
        }
    }
}

#[tokio::test]
async fn the_shipped_registry_has_the_five_classes() {
    let gw = Gateway::builder().start();
    let aliases = gw.get("/v1/aliases").await;
    let names: Vec<&str> = aliases.json["aliases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "mana/fast-text",
            "mana/long-form",
            "mana/reasoning",
            "mana/structured",
            "mana/vision"
        ]
    );
    assert_eq!(aliases.json["default"], "mana/fast-text");
}

#[tokio::test]
async fn metrics_after_a_fallback() {
    let mock = MockProvider::start().await;
    let gw = gateway(&mock);
    mock.push(Route::OllamaChat, MockReply::status(500));
    gw.post("/v1/chat/completions", chat("mana/chain", "hi"))
        .await;
    let text = gw.get("/metrics").await.text;
    let fallback = metric(
        &text,
        "mana_llm_fallback_total",
        &[
            "from_model=\"ollama/first\"",
            "to_model=\"groq/second\"",
            "reason=\"upstream_5xx\"",
        ],
    );
    assert_eq!(fallback, Some(1.0), "{text}");
    assert_eq!(
        metric(
            &text,
            "mana_llm_alias_resolved_total",
            &["alias=\"mana/chain\"", "target=\"groq/second\""]
        ),
        Some(1.0)
    );
    assert_eq!(
        metric(
            &text,
            "mana_llm_llm_requests_total",
            &["provider=\"groq\"", "model=\"second\""]
        ),
        Some(1.0)
    );
    assert_eq!(
        metric(
            &text,
            "mana_llm_llm_errors_total",
            &[
                "provider=\"ollama\"",
                "model=\"first\"",
                "error_type=\"upstream_5xx\""
            ]
        ),
        Some(1.0)
    );
    assert_eq!(metric(&text, "mana_llm_registry_version", &[]), Some(1.0));
    assert_eq!(
        metric(
            &text,
            "mana_llm_tokens_total",
            &["provider=\"groq\"", "type=\"prompt\""]
        ),
        Some(5.0)
    );
}

#[tokio::test]
async fn two_hundred_random_model_names_do_not_make_two_hundred_labels() {
    let mock = MockProvider::start().await;
    let gw = gateway(&mock);
    mock.set_default(Route::OllamaChat, MockReply::status(404));
    for i in 0..200 {
        gw.post(
            "/v1/chat/completions",
            chat(&format!("ollama/random-{i}"), "hi"),
        )
        .await;
        gw.post(
            "/v1/chat/completions",
            chat(&format!("mana/random-{i}"), "hi"),
        )
        .await;
    }
    let text = gw.get("/metrics").await.text;
    assert!(!text.contains("random-"), "user strings became labels");
    let errors = metric(
        &text,
        "mana_llm_llm_errors_total",
        &["provider=\"ollama\"", "model=\"other\""],
    );
    assert_eq!(errors, Some(200.0));
}

#[tokio::test]
async fn sighup_swaps_the_registry_under_load_without_failures() {
    let mock = MockProvider::start().await;
    let path = temp_file(
        "aliases.yaml",
        "aliases:\n  mana/live: {chain: [echo/v1]}\n",
    );
    let gw = Gateway::builder()
        .mock(&mock)
        .env("MANA_LLM_ALIASES", path.to_string_lossy())
        .start();
    let url = gw.url("/v1/chat/completions");
    let served = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = served.clone();
    // Load until the new chain answers (bounded by time, not by a request count that a slow
    // reload could outlast).
    let load = tokio::spawn(async move {
        let http = client();
        let (mut ok, mut failed, mut seen_v2) = (0, 0, false);
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while !seen_v2 && std::time::Instant::now() < deadline {
            let r = http
                .post(&url)
                .json(&chat("mana/live", "x"))
                .send()
                .await
                .unwrap();
            if r.status() == 200 {
                ok += 1;
                seen_v2 |= r.headers()["x-mana-llm-resolved"] == "echo/v2";
            } else {
                failed += 1;
            }
            counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
        (ok, failed, seen_v2)
    });
    // The swap happens under load: requests are flowing before the file changes.
    assert!(
        eventually(Duration::from_secs(10), || served
            .load(std::sync::atomic::Ordering::SeqCst)
            >= 20)
        .await
    );
    std::fs::write(&path, "aliases:\n  mana/live: {chain: [echo/v2]}\n").unwrap();
    assert!(
        eventually_async(Duration::from_secs(10), || async {
            gw.signal("HUP");
            gw.get("/v1/aliases").await.json["version"] == 2
        })
        .await
    );
    let (ok, failed, seen_v2) = load.await.unwrap();
    assert_eq!(failed, 0, "{ok} ok, {failed} failed");
    assert!(seen_v2, "requests moved to the new chain");
    let text = gw.get("/metrics").await.text;
    assert_eq!(metric(&text, "mana_llm_registry_version", &[]), Some(2.0));
}

#[tokio::test]
async fn a_broken_file_and_sighup_change_nothing() {
    let path = temp_file(
        "aliases.yaml",
        "aliases:\n  mana/live: {chain: [echo/v1]}\n",
    );
    let gw = Gateway::builder()
        .env("MANA_LLM_ALIASES", path.to_string_lossy())
        .start();
    std::fs::write(
        &path,
        "aliases:\n  mana/live: {chain: []}\ndefault: mana/gone\n",
    )
    .unwrap();
    gw.signal("HUP");
    assert!(
        eventually_async(Duration::from_secs(5), || async {
            metric(
                &gw.get("/metrics").await.text,
                "mana_llm_registry_reloads_total",
                &["result=\"rejected\""],
            ) == Some(1.0)
        })
        .await
    );
    assert_eq!(gw.get("/v1/aliases").await.json["version"], 1);
    let r = gw
        .post("/v1/chat/completions", chat("mana/live", "still"))
        .await;
    assert_eq!(r.json["model"], "echo/v1");
    assert!(
        gw.logs_settled().await.contains("chain must not be empty"),
        "every error is logged"
    );
}
