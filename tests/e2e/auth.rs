//! Optional client auth, and CORS that works with it.

use serde_json::json;

use crate::support::*;

fn with_auth() -> Gateway {
    Gateway::builder()
        .env("GPU_API_KEY", "client-key-1")
        .env("MANA_LLM_API_KEYS", "client-key-2")
        .env("CORS_ORIGINS", "http://app.example")
        .start()
}

#[tokio::test]
async fn keys_are_checked_on_v1_routes() {
    let gw = with_auth();
    let url = gw.url("/v1/chat/completions");
    let body = chat("echo/a", "hi");
    let missing = Reply::read(client().post(&url).json(&body).send().await.unwrap()).await;
    missing.assert_error(401, "invalid_api_key");
    let wrong = Reply::read(
        client()
            .post(&url)
            .header("x-api-key", "nope")
            .json(&body)
            .send()
            .await
            .unwrap(),
    )
    .await;
    wrong.assert_error(401, "invalid_api_key");
    let by_header = client()
        .post(&url)
        .header("x-api-key", "client-key-1")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(by_header.status(), 200);
    let by_bearer = client()
        .post(&url)
        .bearer_auth("client-key-2")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(by_bearer.status(), 200);
    let models = client().get(gw.url("/v1/models")).send().await.unwrap();
    assert_eq!(models.status(), 401);
}

#[tokio::test]
async fn health_and_metrics_stay_public() {
    let gw = with_auth();
    assert_eq!(gw.get("/health").await.status, 200);
    assert_eq!(gw.get("/ready").await.status, 200);
    assert_eq!(gw.get("/metrics").await.status, 200);
}

#[tokio::test]
async fn without_keys_everything_is_open() {
    let gw = Gateway::builder().start();
    assert_eq!(
        gw.post("/v1/chat/completions", chat("echo/a", "hi"))
            .await
            .status,
        200
    );
}

#[tokio::test]
async fn cors_preflight_works_with_auth_on() {
    let gw = with_auth();
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
    assert_eq!(
        preflight.headers()["access-control-allow-origin"],
        "http://app.example"
    );
    let allowed = preflight.headers()["access-control-allow-headers"]
        .to_str()
        .unwrap()
        .to_ascii_lowercase();
    assert!(allowed.contains("authorization"), "{allowed}");

    // A 401 still carries CORS headers, so the browser can show the real error.
    let denied = client()
        .post(gw.url("/v1/chat/completions"))
        .header("origin", "http://app.example")
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(denied.status(), 401);
    assert_eq!(
        denied.headers()["access-control-allow-origin"],
        "http://app.example"
    );

    let other = client()
        .request(reqwest::Method::OPTIONS, gw.url("/v1/chat/completions"))
        .header("origin", "http://evil.example")
        .header("access-control-request-method", "POST")
        .send()
        .await
        .unwrap();
    assert!(other.headers().get("access-control-allow-origin").is_none());
}
