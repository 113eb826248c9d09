//! The circuit breaker seen from outside: an open breaker stops calls until half-open.

use mana_llm_mock::{MockProvider, Reply as MockReply, Route};

use crate::support::*;

const CHAIN: &str = "aliases:\n  mana/chain: {chain: [ollama/first, groq/second]}\n";

#[tokio::test]
async fn an_open_breaker_is_skipped_until_the_half_open_trial() {
    let mock = MockProvider::start().await;
    let gw = Gateway::builder()
        .mock(&mock)
        .aliases(CHAIN)
        .env("MANA_LLM_BREAKER_OPEN_SECONDS", "1")
        .start();
    mock.set_default(Route::OllamaChat, MockReply::status(500));
    for _ in 0..2 {
        let r = gw
            .post("/v1/chat/completions", chat("mana/chain", "hi"))
            .await;
        assert_eq!(r.json["model"], "groq/second");
    }
    assert_eq!(mock.calls(Route::OllamaChat), 2);
    let health = gw.get("/v1/health").await;
    assert_eq!(
        health.json["providers"]["ollama"]["status"], "open",
        "{}",
        health.text
    );
    assert_eq!(health.json["status"], "degraded");

    // Open: the failing upstream is not called again.
    for _ in 0..5 {
        let r = gw
            .post("/v1/chat/completions", chat("mana/chain", "hi"))
            .await;
        assert_eq!(r.json["model"], "groq/second");
    }
    assert_eq!(mock.calls(Route::OllamaChat), 2);
    let text = gw.get("/metrics").await.text;
    assert_eq!(
        metric(&text, "mana_llm_provider_healthy", &["provider=\"ollama\""]),
        Some(0.0)
    );
    assert_eq!(
        metric(
            &text,
            "mana_llm_fallback_total",
            &["reason=\"breaker_open\""]
        ),
        Some(5.0)
    );

    // After the window: half-open, shown as such, and one trial goes through.
    assert!(
        eventually_async(std::time::Duration::from_secs(5), || async {
            gw.get("/v1/health").await.json["providers"]["ollama"]["status"] == "half_open"
        })
        .await
    );
    mock.set_default(Route::OllamaChat, MockReply::ok());
    let r = gw
        .post("/v1/chat/completions", chat("mana/chain", "hi"))
        .await;
    assert_eq!(r.json["model"], "ollama/first", "the trial succeeded");
    assert_eq!(mock.calls(Route::OllamaChat), 3);
    assert_eq!(
        gw.get("/v1/health").await.json["providers"]["ollama"]["status"],
        "healthy"
    );
    let text = gw.get("/metrics").await.text;
    assert_eq!(
        metric(&text, "mana_llm_provider_healthy", &["provider=\"ollama\""]),
        Some(1.0)
    );
}
