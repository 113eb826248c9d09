//! The data plane's routes through the real router, in-process with `oneshot` (no socket):
//! readiness, the echo provider end to end, OpenAI-shaped errors and client keys.

use axum::body::{to_bytes, Body};
use axum::http::{Request, StatusCode};
use axum::Router;
use mana_llm_shared::bus::PublishedVersion;
use mana_llm_shared::{Registry, RegistryVersion};
use serde_json::{json, Value};
use tower::ServiceExt;

use crate::config::{GatewayConfig, Source};
use crate::server::{App, Origin};

const ALIASES: &str = "aliases:\n  mana/a: {chain: [echo/one]}\ndefault: mana/a\n";

fn app_with(env: &[(&str, &str)], registry: Registry) -> App {
    let source = Source::from_map(
        env.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    );
    let config = GatewayConfig::from_source(&source).unwrap();
    App::build(config, registry, source).unwrap()
}

fn app(env: &[(&str, &str)]) -> App {
    app_with(
        env,
        Registry::parse(ALIASES, "test", RegistryVersion(1)).unwrap(),
    )
}

struct Answer {
    status: StatusCode,
    headers: axum::http::HeaderMap,
    json: Value,
}

async fn call(router: &Router, request: Request<Body>) -> Answer {
    let response = router.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let body = to_bytes(response.into_body(), 1 << 20).await.unwrap();
    Answer {
        status,
        headers,
        json: serde_json::from_slice(&body).unwrap_or(Value::Null),
    }
}

fn get(path: &str) -> Request<Body> {
    Request::get(path).body(Body::empty()).unwrap()
}

fn post(path: &str, body: &Value) -> Request<Body> {
    Request::post(path)
        .header("content-type", "application/json")
        .body(Body::from(body.to_string()))
        .unwrap()
}

fn chat(model: &str) -> Value {
    json!({"model": model, "messages": [{"role": "user", "content": "hello there"}]})
}

fn assert_error(answer: &Answer, status: StatusCode, code: &str) {
    assert_eq!(answer.status, status, "{}", answer.json);
    assert_eq!(answer.json["error"]["code"], code, "{}", answer.json);
    assert!(
        answer.json["error"]["message"].is_string(),
        "{}",
        answer.json
    );
    assert!(answer.json["error"]["type"].is_string(), "{}", answer.json);
}

#[tokio::test]
async fn ready_is_503_without_a_version_200_with_one_and_503_while_draining() {
    let app = app_with(&[], Registry::empty());
    let router = app.router();
    let r = call(&router, get("/ready")).await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(r.json["status"], "no_registry");
    // Liveness does not depend on it.
    assert_eq!(call(&router, get("/health")).await.status, StatusCode::OK);

    let registry = Registry::parse(ALIASES, "test", RegistryVersion(3)).unwrap();
    assert!(app
        .install(PublishedVersion::of(&registry), Origin::Local)
        .unwrap());
    let r = call(&router, get("/ready")).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json["registry_version"], 3);

    app.start_draining();
    let r = call(&router, get("/ready")).await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(r.json["status"], "draining");
}

#[tokio::test]
async fn a_chat_through_an_alias_answers_with_the_resolved_target_and_headers() {
    let router = app(&[]).router();
    let r = call(&router, post("/v1/chat/completions", &chat("mana/a"))).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
    assert_eq!(r.json["model"], "echo/one");
    assert_eq!(r.json["choices"][0]["message"]["content"], "hello there");
    assert_eq!(r.headers["x-mana-llm-resolved"], "echo/one");
    assert_eq!(r.headers["x-mana-llm-registry-version"], "1");
    assert_eq!(r.headers["x-request-id"].len(), 36);
    // No model: the default alias.
    let r = call(
        &router,
        post(
            "/v1/chat/completions",
            &json!({"messages": [{"role": "user", "content": "x"}]}),
        ),
    )
    .await;
    assert_eq!(r.json["model"], "echo/one", "{}", r.json);
    // Embeddings through the same provider.
    let r = call(
        &router,
        post(
            "/v1/embeddings",
            &json!({"model": "echo/e", "input": ["a", "b"]}),
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
    assert_eq!(r.json["data"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn errors_are_openai_shaped_with_a_bounded_code() {
    let router = app(&[]).router();
    assert_error(
        &call(&router, post("/v1/chat/completions", &chat("mana/missing"))).await,
        StatusCode::NOT_FOUND,
        "model_not_found",
    );
    assert_error(
        &call(&router, post("/v1/chat/completions", &chat("nobody/x"))).await,
        StatusCode::NOT_FOUND,
        "model_not_found",
    );
    let broken = Request::post("/v1/chat/completions")
        .header("content-type", "application/json")
        .body(Body::from("{not json"))
        .unwrap();
    let r = call(&router, broken).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.json);
    assert!(r.json["error"]["code"].is_string(), "{}", r.json);
    let r = call(&router, get("/v1/chat/completions")).await;
    assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED, "{}", r.json);
    assert_eq!(
        call(&router, get("/nowhere")).await.status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn client_keys_guard_v1_and_leave_probes_public() {
    let router = app(&[("MANA_LLM_API_KEYS", "key-one, key-two")]).router();
    assert_error(
        &call(&router, get("/v1/models")).await,
        StatusCode::UNAUTHORIZED,
        "invalid_api_key",
    );
    let wrong = Request::get("/v1/models")
        .header("authorization", "Bearer key-three")
        .body(Body::empty())
        .unwrap();
    assert_eq!(call(&router, wrong).await.status, StatusCode::UNAUTHORIZED);
    for (header, value) in [
        ("authorization", "Bearer key-two"),
        ("x-api-key", "key-one"),
    ] {
        let ok = Request::get("/v1/models")
            .header(header, value)
            .body(Body::empty())
            .unwrap();
        assert_eq!(call(&router, ok).await.status, StatusCode::OK, "{header}");
    }
    for probe in ["/health", "/ready", "/metrics"] {
        assert_eq!(
            call(&router, get(probe)).await.status,
            StatusCode::OK,
            "{probe}"
        );
    }
}

/// An operator moving from `GPU_API_KEY` to `MANA_LLM_API_KEYS` may list the same key in
/// both: it must still open the door (the constant-time check must not cancel itself out).
#[tokio::test]
async fn a_key_configured_twice_still_works() {
    let router = app(&[
        ("GPU_API_KEY", "shared-key"),
        ("MANA_LLM_API_KEYS", "shared-key, other-key"),
    ])
    .router();
    let request = Request::get("/v1/models")
        .header("x-api-key", "shared-key")
        .body(Body::empty())
        .unwrap();
    assert_eq!(call(&router, request).await.status, StatusCode::OK);
}
