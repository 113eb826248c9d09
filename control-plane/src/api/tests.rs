//! Admin authentication through the real router, without a socket: the peer address is put
//! into the request the way axum's `into_make_service_with_connect_info` does.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::{to_bytes, Body};
use axum::extract::ConnectInfo;
use axum::http::{Request, StatusCode};
use axum::Router;
use serde_json::Value;
use tower::ServiceExt;

use super::{disabled_router, router, AdminState};
use crate::domain::tests::FAST;
use crate::service::RegistryService;
use crate::store::testutil::TempDir;

const TOKEN: &str = "admin-token-for-tests";

/// The admin router over a fresh log holding one version, so an admitted request gets 200.
pub(crate) async fn admin(dir: &TempDir, token: Option<&str>) -> Router {
    let service = RegistryService::open(dir.store().await).await.unwrap();
    service.seed_if_empty(FAST, "test").await.unwrap();
    router(Arc::new(AdminState {
        service,
        token: token.map(str::to_owned),
        aliases_path: None,
        fleet: None,
        rollouts: crate::rollout::Watch::new(Default::default()),
    }))
}

fn get(peer: &str, headers: &[(&str, &str)]) -> Request<Body> {
    let mut builder = Request::get("/admin/v1/registry");
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    let mut request = builder.body(Body::empty()).unwrap();
    let peer: SocketAddr = peer.parse().unwrap();
    request.extensions_mut().insert(ConnectInfo(peer));
    request
}

pub(super) async fn call(app: &Router, request: Request<Body>) -> (StatusCode, Value) {
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let body = to_bytes(response.into_body(), 1 << 20).await.unwrap();
    (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
}

#[tokio::test]
async fn without_a_token_loopback_peers_are_answered_ipv4_mapped_ones_too() {
    let dir = TempDir::new();
    let app = admin(&dir, None).await;
    for peer in ["127.0.0.1:5000", "[::1]:5000", "[::ffff:127.0.0.1]:5000"] {
        let (status, body) = call(&app, get(peer, &[])).await;
        assert_eq!(status, StatusCode::OK, "{peer}: {body}");
        assert_eq!(body["version"], 1, "{peer}");
    }
}

#[tokio::test]
async fn without_a_token_other_peers_are_refused_mapped_ones_too() {
    let dir = TempDir::new();
    let app = admin(&dir, None).await;
    for peer in [
        "10.0.0.7:5000",
        "[::ffff:10.0.0.7]:5000",
        "[2001:db8::1]:5000",
    ] {
        let (status, body) = call(&app, get(peer, &[])).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{peer}");
        assert_eq!(body["error"]["code"], "loopback_only", "{peer}");
    }
}

#[tokio::test]
async fn without_a_token_a_proxied_request_from_loopback_is_refused() {
    let dir = TempDir::new();
    let app = admin(&dir, None).await;
    for (name, value) in [
        ("Forwarded", "for=203.0.113.9;proto=https"),
        ("X-Forwarded-For", "203.0.113.9"),
        ("X-Real-IP", "203.0.113.9"),
        // A proxy that forwards for a local client still forwards.
        ("X-Forwarded-For", "127.0.0.1"),
    ] {
        let (status, body) = call(&app, get("127.0.0.1:5000", &[(name, value)])).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{name}");
        assert_eq!(body["error"]["code"], "proxied_without_token", "{name}");
        assert_eq!(body["error"]["type"], "admin_error");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains("MANA_LLM_ADMIN_TOKEN"), "{message}");
        assert!(message.contains(&name.to_ascii_lowercase()), "{message}");
    }
}

#[tokio::test]
async fn with_a_token_the_token_decides_whatever_the_peer_or_proxy() {
    let dir = TempDir::new();
    let app = admin(&dir, Some(TOKEN)).await;
    let bearer = format!("Bearer {TOKEN}");
    let proxied = [
        ("authorization", bearer.as_str()),
        ("x-forwarded-for", "203.0.113.9"),
    ];
    let (status, _) = call(&app, get("10.0.0.7:5000", &proxied)).await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = call(&app, get("127.0.0.1:5000", &[])).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"]["code"], "unauthorized");
    let wrong = [("authorization", "Bearer admin-token-for-test")];
    let (status, body) = call(&app, get("127.0.0.1:5000", &wrong)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(!body.to_string().contains(TOKEN));
}

#[tokio::test]
async fn the_disabled_router_answers_every_admin_path_with_403() {
    let app = disabled_router();
    for (method, path) in [
        ("GET", "/admin/v1/registry"),
        ("POST", "/admin/v1/registry/reload"),
    ] {
        let request = Request::builder()
            .method(method)
            .uri(path)
            .body(Body::empty())
            .unwrap();
        let (status, body) = call(&app, request).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{path}");
        assert_eq!(body["error"]["code"], "admin_disabled");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains("MANA_LLM_ADMIN_TOKEN"), "{message}");
    }
}

/// A GET of `path` from loopback.
fn get_path(path: &str) -> Request<Body> {
    let mut request = Request::get(path).body(Body::empty()).unwrap();
    let peer: SocketAddr = "127.0.0.1:5000".parse().unwrap();
    request.extensions_mut().insert(ConnectInfo(peer));
    request
}

#[tokio::test]
async fn out_of_range_or_malformed_parameters_are_a_json_400() {
    let dir = TempDir::new();
    let app = admin(&dir, None).await;
    for path in [
        "/admin/v1/audit?after=18446744073709551615",
        "/admin/v1/audit?after=99999999999999999999999",
        "/admin/v1/audit?after=-1",
        "/admin/v1/audit?limit=abc",
        "/admin/v1/registry/versions?after=18446744073709551615",
        "/admin/v1/registry/versions/abc",
        "/admin/v1/registry/diff?from=1",
    ] {
        let (status, body) = call(&app, get_path(path)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path}: {body}");
        assert_eq!(body["error"]["code"], "invalid_request", "{path}: {body}");
    }
    // The largest position the log can hold is still a valid (empty) page.
    let (status, body) = call(&app, get_path("/admin/v1/audit?after=9223372036854775807")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["events"], serde_json::json!([]));
}

#[tokio::test]
async fn storage_faults_are_a_503_naming_the_cause_and_a_lock_says_when_to_retry() {
    use crate::store::StorageFault;
    use axum::response::IntoResponse;

    for (cause, name) in [
        (StorageFault::DiskFull, "disk_full"),
        (StorageFault::Io, "io_error"),
        (StorageFault::Locked, "locked"),
        (StorageFault::ReadOnly, "read_only"),
    ] {
        let response = super::AdminError::StorageUnavailable {
            cause,
            detail: "(code: 13) database or disk is full".to_owned(),
        }
        .into_response();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        let retry = response.headers().get("retry-after").cloned();
        assert_eq!(retry.is_some(), cause == StorageFault::Locked, "{name}");
        let body = to_bytes(response.into_body(), 1 << 20).await.unwrap();
        let body: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(body["error"]["code"], "storage_unavailable");
        assert_eq!(body["error"]["cause"], name);
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains(name), "{message}");
    }
}

// --- The write path through the router: who wrote, which version was expected, paging. ---

const V2: &str = "aliases:\n  mana/fast:\n    chain: [ollama/qwen2.5:7b]\ndefault: mana/fast\n";

fn v(n: u32) -> String {
    format!("aliases:\n  mana/fast:\n    chain: [ollama/v{n}]\ndefault: mana/fast\n")
}

/// A request from a loopback peer to a router without a token.
pub(super) fn local(
    method: &str,
    uri: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Request<Body> {
    let mut builder = Request::builder().method(method).uri(uri);
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    let mut request = builder.body(Body::from(body.to_owned())).unwrap();
    let peer: SocketAddr = "127.0.0.1:5000".parse().unwrap();
    request.extensions_mut().insert(ConnectInfo(peer));
    request
}

async fn push(
    app: &Router,
    uri: &str,
    headers: &[(&str, &str)],
    yaml: &str,
) -> (StatusCode, Value) {
    call(app, local("POST", uri, headers, yaml)).await
}

async fn audit_actors(app: &Router) -> Vec<String> {
    let (_, body) = call(app, local("GET", "/admin/v1/audit", &[], "")).await;
    body["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["actor"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn the_actor_header_is_recorded_trimmed_stripped_and_bounded() {
    let dir = TempDir::new();
    let app = admin(&dir, None).await;
    let long = "x".repeat(100);
    for (n, actor) in [" ci\tbot ", long.as_str(), "   "].into_iter().enumerate() {
        let (status, body) = push(
            &app,
            "/admin/v1/registry",
            &[("x-mana-llm-actor", actor)],
            &v(n as u32),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
    let (status, _) = push(&app, "/admin/v1/registry", &[], &v(9)).await;
    assert_eq!(status, StatusCode::CREATED);
    let actors = audit_actors(&app).await;
    assert_eq!(
        actors[1..],
        [
            "cibot".to_owned(),
            "x".repeat(64),
            "admin".to_owned(),
            "admin".to_owned()
        ],
        "{actors:?}"
    );
}

#[tokio::test]
async fn if_match_takes_a_number_quoted_or_weak_and_refuses_anything_else() {
    let dir = TempDir::new();
    let app = admin(&dir, None).await;
    // Version 1 is current: each form names it, so each push is accepted.
    for (n, form) in ["1", "\"2\"", "W/\"3\""].into_iter().enumerate() {
        let (status, body) = push(
            &app,
            "/admin/v1/registry",
            &[("if-match", form)],
            &v(n as u32),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED, "{form}: {body}");
        assert_eq!(body["version"], n + 2, "{form}");
    }
    let (status, body) = push(&app, "/admin/v1/registry", &[("if-match", "\"1\"")], &v(7)).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["error"]["current_version"], 4, "{body}");
    for bad in ["latest", "*", "\"-1\""] {
        let (status, body) = push(&app, "/admin/v1/registry", &[("if-match", bad)], &v(8)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {body}");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("If-Match"),
            "{body}"
        );
    }
}

#[tokio::test]
async fn expected_version_in_the_query_is_checked() {
    let dir = TempDir::new();
    let app = admin(&dir, None).await;
    let (status, body) = push(&app, "/admin/v1/registry?expected_version=1", &[], V2).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, body) = push(&app, "/admin/v1/registry?expected_version=1", &[], &v(3)).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["error"]["current_version"], 2, "{body}");
    let (status, body) = push(&app, "/admin/v1/registry?expected_version=two", &[], &v(3)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    // The query wins over If-Match.
    let (status, body) = push(
        &app,
        "/admin/v1/registry?expected_version=2",
        &[("if-match", "1")],
        &v(4),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
}

#[tokio::test]
async fn versions_and_audit_page_with_after_and_a_clamped_limit() {
    let dir = TempDir::new();
    let app = admin(&dir, None).await;
    for n in 2..=5 {
        let (status, _) = push(&app, "/admin/v1/registry", &[], &v(n)).await;
        assert_eq!(status, StatusCode::CREATED);
    }
    // Five versions, two per page: 1 2 | 3 4 | 5.
    let mut after = 0;
    let mut seen = Vec::new();
    for expected_next in [Some(2), Some(4), None] {
        let uri = format!("/admin/v1/registry/versions?limit=2&after={after}");
        let (status, body) = call(&app, local("GET", &uri, &[], "")).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        for version in body["versions"].as_array().unwrap() {
            seen.push(version["version"].as_u64().unwrap());
        }
        assert_eq!(body["next_after"].as_u64(), expected_next, "{body}");
        after = expected_next.unwrap_or(0);
    }
    assert_eq!(seen, [1, 2, 3, 4, 5]);
    // limit=0 is one row, not an empty page that would never advance.
    let (_, body) = call(&app, local("GET", "/admin/v1/audit?limit=0", &[], "")).await;
    assert_eq!(body["events"].as_array().unwrap().len(), 1, "{body}");
    assert_eq!(body["next_after"], 1, "{body}");
    let (_, body) = call(
        &app,
        local("GET", "/admin/v1/audit?after=3&limit=100000", &[], ""),
    )
    .await;
    let sequences: Vec<u64> = body["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["sequence"].as_u64().unwrap())
        .collect();
    assert_eq!(sequences, [4, 5], "{body}");
    assert_eq!(body["next_after"], Value::Null, "{body}");
}

#[tokio::test]
async fn a_write_from_another_process_is_a_409_with_the_version_that_won() {
    let dir = TempDir::new();
    // Two control planes on one event log, as two processes would be.
    let app = admin(&dir, None).await;
    let other = RegistryService::open(dir.store().await).await.unwrap();
    other
        .execute(
            crate::domain::Command::Publish {
                text: V2.to_owned(),
                format: mana_llm_shared::DocumentFormat::Yaml,
                source: crate::domain::PublishSource::Push,
                origin: "test".to_owned(),
                expected_version: None,
            },
            "other",
        )
        .await
        .unwrap();
    let (status, body) = push(&app, "/admin/v1/registry", &[], &v(3)).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["error"]["code"], "version_conflict", "{body}");
    assert_eq!(body["error"]["current_version"], 2, "{body}");
    // Reloaded: the retry is accepted on top of the other writer's version.
    let (status, body) = push(&app, "/admin/v1/registry", &[("if-match", "2")], &v(3)).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["version"], 3);
}
