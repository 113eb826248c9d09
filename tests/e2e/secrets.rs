//! Provider keys and client keys never appear in a response, a header or a log line.

use mana_llm_mock::{MockProvider, Reply as MockReply, Route};
use serde_json::json;

use crate::support::*;

const SECRETS: [&str; 4] = [
    "gsk-SECRET-9f8e7d6c",
    "AIza-SECRET-4242",
    "sk-SECRET-openai-1",
    "client-SECRET-777",
];

#[tokio::test]
async fn secrets_stay_secret() {
    let mock = MockProvider::start().await;
    let gw = Gateway::builder()
        .mock(&mock)
        .env("GROQ_API_KEY", SECRETS[0])
        .env("GOOGLE_API_KEY", SECRETS[1])
        .env("OPENAI_API_KEY", SECRETS[2])
        .env("GPU_API_KEY", SECRETS[3])
        .env("LOG_LEVEL", "trace")
        .start();
    mock.push(Route::OpenAiChat, MockReply::status(401));
    mock.push(Route::GeminiGenerate, MockReply::status(403));
    mock.push(
        Route::OpenAiChat,
        MockReply::text(&["a", "b"]).drop_after(1),
    );

    let http = client();
    let mut seen = String::new();
    let calls = [
        ("POST", "/v1/chat/completions", chat("groq/m", "x")),
        ("POST", "/v1/chat/completions", chat("google/m", "x")),
        (
            "POST",
            "/v1/chat/completions",
            json!({"model": "openai/m", "stream": true, "messages": [{"role": "user", "content": "x"}]}),
        ),
        ("POST", "/v1/chat/completions", chat("groq/m", "x")),
        (
            "POST",
            "/v1/embeddings",
            json!({"model": "google/e", "input": "x"}),
        ),
        ("GET", "/v1/models", json!(null)),
        ("GET", "/v1/models/groq/mock-model", json!(null)),
        ("GET", "/health", json!(null)),
        ("GET", "/metrics", json!(null)),
    ];
    for (method, path, body) in calls {
        let request = match method {
            "POST" => http.post(gw.url(path)).json(&body),
            _ => http.get(gw.url(path)),
        };
        let response = request
            .header("x-api-key", SECRETS[3])
            .send()
            .await
            .unwrap();
        for (name, value) in response.headers() {
            seen.push_str(&format!("{name}: {value:?}\n"));
        }
        seen.push_str(&response.text().await.unwrap());
    }
    let wrong_key = http
        .post(gw.url("/v1/chat/completions"))
        .header("x-api-key", "client-SECRET-7")
        .json(&chat("groq/m", "x"))
        .send()
        .await
        .unwrap();
    seen.push_str(&wrong_key.text().await.unwrap());

    assert!(
        mock.calls(Route::OpenAiChat) >= 3,
        "the calls reached the upstream"
    );
    assert!(
        seen.contains("upstream_auth"),
        "the auth failures were exercised: {seen}"
    );
    let logs = gw.logs();
    assert!(logs.contains("request"), "logs were captured");
    for secret in SECRETS {
        assert!(
            !seen.contains(secret),
            "{secret} leaked into a response:\n{seen}"
        );
        assert!(!logs.contains(secret), "{secret} leaked into the logs");
    }
}
