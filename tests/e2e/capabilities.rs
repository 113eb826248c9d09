//! What a chain does with a request one of its entries cannot take: skip to the next entry
//! (image URLs, token-id input, tools), a 400 only when none can, and when every entry is
//! rate limited or open, a `Retry-After` saying when one is usable again.

use mana_llm_mock::{MockProvider, Reply as MockReply, Route};
use serde_json::json;

use crate::support::*;

const ALIASES: &str = "aliases:
  mana/vision: {chain: [ollama/llava:7b, openrouter/google/gemini-flash]}
  mana/embed: {chain: [ollama/nomic-embed-text, openai/text-embedding-3-small]}
  mana/local-eyes: {chain: [ollama/llava:7b, ollama/bakllava]}
  mana/limited: {chain: [groq/a, together/b]}
default: mana/vision
";

#[tokio::test]
async fn an_image_url_skips_an_entry_that_cannot_fetch_it() {
    let mock = MockProvider::start().await;
    let gw = Gateway::builder().mock(&mock).aliases(ALIASES).start();
    let r = gw
        .post(
            "/v1/chat/completions",
            vision_chat("mana/vision", "https://cdn.example/cat.png"),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        r.header("x-mana-llm-resolved"),
        Some("openrouter/google/gemini-flash")
    );
    assert_eq!(mock.calls(Route::OllamaChat), 0, "ollama never asked");
    let sent = mock.last_request(Route::OpenAiChat).unwrap();
    assert_eq!(
        sent.body["messages"][0]["content"][1]["image_url"]["url"],
        "https://cdn.example/cat.png"
    );
    // A skip for what a provider cannot do is not a failure of the provider.
    let health = gw.get("/v1/health").await;
    assert_eq!(
        health.json["providers"]["ollama"]["consecutive_failures"],
        json!(0),
        "{}",
        health.text
    );
    let metrics = gw.get("/metrics").await.text;
    assert!(
        metric(
            &metrics,
            "mana_llm_fallback_total",
            &[
                "reason=\"capability_mismatch\"",
                "from_model=\"ollama/llava:7b\""
            ]
        )
        .is_some_and(|n| n >= 1.0),
        "{metrics}"
    );
}

#[tokio::test]
async fn when_no_entry_can_take_it_the_400_says_why() {
    let mock = MockProvider::start().await;
    let gw = Gateway::builder().mock(&mock).aliases(ALIASES).start();
    let r = gw
        .post(
            "/v1/chat/completions",
            vision_chat("mana/local-eyes", "https://cdn.example/cat.png"),
        )
        .await;
    r.assert_error(400, "capability_mismatch");
    let message = r.json["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("no entry of 'mana/local-eyes'"),
        "{message}"
    );
    assert!(message.contains("ollama/bakllava"), "{message}");
    assert!(message.contains("data: URL"), "{message}");
}

#[tokio::test]
async fn token_id_embeddings_skip_an_entry_that_takes_text_only() {
    let mock = MockProvider::start().await;
    let gw = Gateway::builder().mock(&mock).aliases(ALIASES).start();
    let r = gw
        .post(
            "/v1/embeddings",
            json!({"model": "mana/embed", "input": [[15339, 1917]]}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        r.header("x-mana-llm-resolved"),
        Some("openai/text-embedding-3-small")
    );
    assert_eq!(mock.calls(Route::OllamaEmbed), 0);
    let sent = mock.last_request(Route::OpenAiEmbeddings).unwrap();
    assert_eq!(sent.body["input"], json!([[15339, 1917]]));
}

#[tokio::test]
async fn an_exhausted_chain_of_rate_limits_says_when_to_retry() {
    let mock = MockProvider::start().await;
    let gw = Gateway::builder().mock(&mock).aliases(ALIASES).start();
    mock.push(Route::OpenAiChat, MockReply::status(429).retry_after(7));
    mock.push(Route::OpenAiChat, MockReply::status(429).retry_after(3));
    let r = gw
        .post("/v1/chat/completions", chat("mana/limited", "hi"))
        .await;
    r.assert_error(503, "no_healthy_provider");
    assert_eq!(r.header("retry-after"), Some("3"), "the soonest of 7 and 3");
    // Now both breakers are open: the answer comes from them, without a call.
    let again = gw
        .post("/v1/chat/completions", chat("mana/limited", "hi"))
        .await;
    again.assert_error(503, "no_healthy_provider");
    let after: u64 = again.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=3).contains(&after), "{after}");
    assert_eq!(mock.calls(Route::OpenAiChat), 2);
}

#[tokio::test]
async fn browsers_may_send_bearer_auth_and_read_every_gateway_header() {
    let mock = MockProvider::start().await;
    let gw = Gateway::builder()
        .mock(&mock)
        .env("CORS_ORIGINS", "*")
        .env("GPU_API_KEY", "browser-key")
        .start();
    let preflight = client()
        .request(reqwest::Method::OPTIONS, gw.url("/v1/chat/completions"))
        .header("origin", "http://app.example")
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "authorization, content-type",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(preflight.status(), 200);
    let allowed = preflight.headers()["access-control-allow-headers"]
        .to_str()
        .unwrap()
        .to_ascii_lowercase();
    // `*` would not cover Authorization (Fetch standard): it must be listed.
    assert!(allowed.contains("authorization"), "{allowed}");
    assert!(!allowed.contains('*'), "{allowed}");
    let answer = client()
        .post(gw.url("/v1/chat/completions"))
        .header("origin", "http://app.example")
        .bearer_auth("browser-key")
        .json(&chat("groq/x", "hi"))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    let exposed = answer.headers()["access-control-expose-headers"]
        .to_str()
        .unwrap()
        .to_ascii_lowercase();
    for h in [
        "x-mana-llm-cache",
        "x-mana-llm-resolved",
        "x-mana-llm-registry-version",
        "x-request-id",
    ] {
        assert!(exposed.contains(h), "{h} not in {exposed}");
    }
}
