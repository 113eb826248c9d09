//! The console's sign-in, sessions, CSRF and headers through the real router, without a
//! socket (the peer address is put into each request as axum's connect-info would).

use std::net::SocketAddr;

use axum::body::{to_bytes, Body};
use axum::extract::ConnectInfo;
use axum::http::{header, HeaderMap, Request, StatusCode};
use axum::Router;
use serde_json::Value;
use tower::ServiceExt;

use crate::domain::tests::FAST;
use crate::store::testutil::TempDir;

const TOKEN: &str = "console-admin-token-for-tests";
const V2: &str = "aliases:\n  mana/fast:\n    chain: [ollama/v2]\ndefault: mana/fast\n";
const INVALID: &str = "aliases:\n  mana/fast:\n    chain: []\n  mana/other:\n    description: 7\n    chain: [x/y]\ndefault: mana/missing\n";

/// The admin router (console included) over a fresh log holding one version.
async fn app(dir: &TempDir, token: Option<&str>) -> Router {
    crate::api::tests::admin(dir, token).await
}

struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    text: String,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or(Value::Null)
    }

    fn header(&self, name: header::HeaderName) -> &str {
        self.headers.get(name).map_or("", |v| v.to_str().unwrap())
    }
}

async fn send(
    app: &Router,
    method: &str,
    uri: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Answer {
    let mut builder = Request::builder().method(method).uri(uri);
    if !headers.iter().any(|(name, _)| *name == "host") {
        builder = builder.header("host", "127.0.0.1:3025");
    }
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    let mut request = builder.body(Body::from(body.to_owned())).unwrap();
    let peer: SocketAddr = "127.0.0.1:5000".parse().unwrap();
    request.extensions_mut().insert(ConnectInfo(peer));
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let body = to_bytes(response.into_body(), 1 << 20).await.unwrap();
    Answer {
        status,
        headers,
        text: String::from_utf8_lossy(&body).into_owned(),
    }
}

const FORM: (&str, &str) = ("content-type", "application/x-www-form-urlencoded");

/// Signs in; returns the `Cookie` header value and the page's CSRF token.
async fn sign_in(app: &Router) -> (String, String) {
    let answer = send(
        app,
        "POST",
        "/admin/sign-in",
        &[FORM],
        &format!("token={TOKEN}"),
    )
    .await;
    assert_eq!(answer.status, StatusCode::SEE_OTHER, "{}", answer.text);
    assert_eq!(answer.header(header::LOCATION), "/admin/#/overview");
    let cookie = answer
        .header(header::SET_COOKIE)
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let page = send(app, "GET", "/admin/", &[("cookie", &cookie)], "").await;
    let csrf = page
        .text
        .split("name=\"csrf-token\" content=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap()
        .to_owned();
    assert_eq!(csrf.len(), 64, "{}", page.text);
    (cookie, csrf)
}

async fn version_count(app: &Router) -> usize {
    let bearer = format!("Bearer {TOKEN}");
    let answer = send(
        app,
        "GET",
        "/admin/v1/registry/versions",
        &[("authorization", &bearer)],
        "",
    )
    .await;
    answer.json()["versions"].as_array().unwrap().len()
}

#[tokio::test]
async fn sign_in_sets_a_strict_http_only_cookie_and_never_echoes_the_token() {
    let dir = TempDir::new();
    let app = app(&dir, Some(TOKEN)).await;
    let answer = send(
        &app,
        "POST",
        "/admin/sign-in",
        &[FORM],
        &format!("token={TOKEN}"),
    )
    .await;
    assert_eq!(answer.status, StatusCode::SEE_OTHER);
    let cookie = answer.header(header::SET_COOKIE);
    for attribute in [
        "HttpOnly",
        "SameSite=Strict",
        "Path=/admin",
        "Max-Age=28800",
    ] {
        assert!(cookie.contains(attribute), "{cookie}");
    }
    assert!(cookie.starts_with("mana_llm_admin="), "{cookie}");
    assert!(!cookie.contains("Secure"), "plain HTTP: {cookie}");
    assert!(!cookie.contains(TOKEN) && !answer.text.contains(TOKEN));
    // Behind a TLS-terminating proxy that says so, the cookie is Secure.
    let tls = send(
        &app,
        "POST",
        "/admin/sign-in",
        &[FORM, ("x-forwarded-proto", "https")],
        &format!("token={TOKEN}"),
    )
    .await;
    assert!(tls.header(header::SET_COOKIE).ends_with("; Secure"));
}

#[tokio::test]
async fn a_wrong_token_is_refused_without_a_session() {
    let dir = TempDir::new();
    let app = app(&dir, Some(TOKEN)).await;
    let wrong = "token=console-admin-token-for-test";
    let browser = send(
        &app,
        "POST",
        "/admin/sign-in",
        &[FORM, ("accept", "text/html")],
        wrong,
    )
    .await;
    assert_eq!(browser.status, StatusCode::UNAUTHORIZED);
    assert!(browser.headers.get(header::SET_COOKIE).is_none());
    assert!(
        browser.text.contains("not the admin token"),
        "{}",
        browser.text
    );
    assert!(!browser.text.contains("console-admin-token-for-test"));
    let script = send(&app, "POST", "/admin/sign-in", &[FORM], wrong).await;
    assert_eq!(script.status, StatusCode::UNAUTHORIZED);
    assert_eq!(script.json()["error"]["code"], "unauthorized");
    let empty = send(&app, "POST", "/admin/sign-in", &[FORM], "token=").await;
    assert_eq!(empty.status, StatusCode::UNAUTHORIZED);
    let malformed = send(&app, "POST", "/admin/sign-in", &[FORM], "nothing").await;
    assert_eq!(malformed.status, StatusCode::BAD_REQUEST);
    assert_eq!(malformed.json()["error"]["code"], "invalid_request");
    // No session: the console answers with the sign-in form.
    let page = send(&app, "GET", "/admin/", &[], "").await;
    assert!(
        page.text.contains("action=\"/admin/sign-in\""),
        "{}",
        page.text
    );
}

#[tokio::test]
async fn a_session_reads_freely_but_writes_only_with_its_csrf_token() {
    let dir = TempDir::new();
    let app = app(&dir, Some(TOKEN)).await;
    let (cookie, csrf) = sign_in(&app).await;
    let read = send(
        &app,
        "GET",
        "/admin/v1/registry",
        &[("cookie", &cookie)],
        "",
    )
    .await;
    assert_eq!(read.status, StatusCode::OK, "{}", read.text);
    for headers in [
        vec![("cookie", cookie.as_str())],
        vec![("cookie", cookie.as_str()), ("x-csrf-token", "0123")],
        vec![("cookie", cookie.as_str()), ("x-csrf-token", &csrf[..63])],
    ] {
        let refused = send(&app, "POST", "/admin/v1/registry", &headers, V2).await;
        assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.text);
        assert_eq!(refused.json()["error"]["code"], "csrf_failed");
        assert_eq!(refused.json()["error"]["type"], "admin_error");
    }
    assert_eq!(
        version_count(&app).await,
        1,
        "a refused write wrote nothing"
    );
    let headers = [("cookie", cookie.as_str()), ("x-csrf-token", csrf.as_str())];
    let written = send(&app, "POST", "/admin/v1/registry", &headers, V2).await;
    assert_eq!(written.status, StatusCode::CREATED, "{}", written.text);
    // Another session's token does not do.
    let (other_cookie, _) = sign_in(&app).await;
    let crossed = [
        ("cookie", other_cookie.as_str()),
        ("x-csrf-token", csrf.as_str()),
    ];
    let refused = send(&app, "POST", "/admin/v1/registry/reload", &crossed, "").await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn sign_out_ends_the_session_on_the_server() {
    let dir = TempDir::new();
    let app = app(&dir, Some(TOKEN)).await;
    let (cookie, csrf) = sign_in(&app).await;
    // Without the CSRF token a page of another site cannot sign the admin out either.
    let refused = send(&app, "POST", "/admin/sign-out", &[("cookie", &cookie)], "").await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    let headers = [("cookie", cookie.as_str()), ("x-csrf-token", csrf.as_str())];
    let out = send(&app, "POST", "/admin/sign-out", &headers, "").await;
    assert_eq!(out.status, StatusCode::NO_CONTENT);
    assert!(out.header(header::SET_COOKIE).contains("Max-Age=0"));
    // The old cookie is worth nothing now, even replayed by hand.
    let after = send(
        &app,
        "GET",
        "/admin/v1/registry",
        &[("cookie", &cookie)],
        "",
    )
    .await;
    assert_eq!(after.status, StatusCode::UNAUTHORIZED);
    assert_eq!(after.json()["error"]["code"], "unauthorized");
    let page = send(&app, "GET", "/admin/", &[("cookie", &cookie)], "").await;
    assert!(page.text.contains("action=\"/admin/sign-in\""));
}

#[tokio::test]
async fn every_console_answer_has_the_strict_policy() {
    let dir = TempDir::new();
    let app = app(&dir, Some(TOKEN)).await;
    let (cookie, _) = sign_in(&app).await;
    for (uri, cookie, content_type) in [
        ("/admin/", "", "text/html"),
        ("/admin/", cookie.as_str(), "text/html"),
        ("/admin/assets/app.js", "", "text/javascript"),
        ("/admin/assets/console.css", "", "text/css"),
    ] {
        let answer = send(&app, "GET", uri, &[("cookie", cookie)], "").await;
        assert_eq!(answer.status, StatusCode::OK, "{uri}");
        let csp = answer.header(header::CONTENT_SECURITY_POLICY);
        for directive in [
            "default-src 'self'",
            "script-src 'self';",
            "style-src 'self';",
            "frame-ancestors 'none'",
            "base-uri 'none'",
            "form-action 'self'",
        ] {
            assert!(csp.contains(directive), "{uri}: {csp}");
        }
        assert!(!csp.contains("unsafe"), "{csp}");
        assert_eq!(answer.header(header::X_CONTENT_TYPE_OPTIONS), "nosniff");
        assert_eq!(answer.header(header::REFERRER_POLICY), "no-referrer");
        assert!(answer
            .header(header::CONTENT_TYPE)
            .starts_with(content_type));
        if content_type == "text/html" {
            assert_eq!(answer.header(header::CACHE_CONTROL), "no-store", "{uri}");
            // No inline script or style for the policy to have to allow.
            assert!(!answer.text.contains("<script>") && !answer.text.contains("style="));
        }
    }
    let missing = send(&app, "GET", "/admin/assets/nope.js", &[], "").await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert_eq!(missing.json()["error"]["code"], "not_found");
}

#[tokio::test]
async fn the_bearer_api_is_unchanged_and_an_authorization_header_decides_alone() {
    let dir = TempDir::new();
    let app = app(&dir, Some(TOKEN)).await;
    let bearer = format!("Bearer {TOKEN}");
    let ok = send(
        &app,
        "POST",
        "/admin/v1/registry",
        &[("authorization", &bearer)],
        V2,
    )
    .await;
    assert_eq!(ok.status, StatusCode::CREATED, "{}", ok.text);
    let none = send(&app, "GET", "/admin/v1/registry", &[], "").await;
    assert_eq!(none.status, StatusCode::UNAUTHORIZED);
    // A wrong bearer token is not rescued by a valid session cookie.
    let (cookie, _) = sign_in(&app).await;
    let headers = [
        ("authorization", "Bearer wrong"),
        ("cookie", cookie.as_str()),
    ];
    let wrong = send(&app, "GET", "/admin/v1/registry", &headers, "").await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn validate_reports_every_error_and_writes_nothing() {
    let dir = TempDir::new();
    let app = app(&dir, Some(TOKEN)).await;
    let bearer = format!("Bearer {TOKEN}");
    let auth = [("authorization", bearer.as_str())];
    let invalid = send(&app, "POST", "/admin/v1/registry/validate", &auth, INVALID).await;
    assert_eq!(invalid.status, StatusCode::BAD_REQUEST, "{}", invalid.text);
    let body = invalid.json();
    assert_eq!(body["error"]["code"], "invalid_registry");
    let errors = body["error"]["errors"].as_array().unwrap();
    assert!(errors.len() >= 2, "every error at once: {body}");
    let valid = send(&app, "POST", "/admin/v1/registry/validate", &auth, V2).await;
    assert_eq!(valid.status, StatusCode::OK, "{}", valid.text);
    assert_eq!(valid.json()["valid"], true);
    assert_eq!(valid.json()["unchanged"], false);
    let same = send(&app, "POST", "/admin/v1/registry/validate", &auth, FAST).await;
    assert_eq!(same.json()["unchanged"], true, "{}", same.text);
    assert_eq!(version_count(&app).await, 1);
    let audit = send(&app, "GET", "/admin/v1/audit", &auth, "").await;
    assert_eq!(
        audit.json()["events"].as_array().unwrap().len(),
        1,
        "{}",
        audit.text
    );
}

#[tokio::test]
async fn without_a_token_loopback_gets_the_console_but_not_a_rebound_host_or_another_origin() {
    let dir = TempDir::new();
    let app = app(&dir, None).await;
    let page = send(&app, "GET", "/admin/", &[], "").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.text.contains("content=\"loopback\""), "{}", page.text);
    let rebound = send(&app, "GET", "/admin/", &[("host", "evil.example:3025")], "").await;
    assert_eq!(rebound.status, StatusCode::FORBIDDEN);
    assert_eq!(rebound.json()["error"]["code"], "foreign_host");
    let api = send(
        &app,
        "GET",
        "/admin/v1/registry",
        &[("host", "evil.example")],
        "",
    )
    .await;
    assert_eq!(api.json()["error"]["code"], "foreign_host");
    let cross = [("origin", "http://evil.example")];
    let refused = send(&app, "POST", "/admin/v1/registry", &cross, V2).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert_eq!(refused.json()["error"]["code"], "cross_origin");
    let own = [("origin", "http://127.0.0.1:3025")];
    let written = send(&app, "POST", "/admin/v1/registry", &own, V2).await;
    assert_eq!(written.status, StatusCode::CREATED, "{}", written.text);
    let sign_in = send(&app, "POST", "/admin/sign-in", &[FORM], "token=x").await;
    assert_eq!(sign_in.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn a_server_with_the_admin_api_off_answers_the_console_paths_with_403_too() {
    let app = crate::api::disabled_router();
    for uri in ["/admin", "/admin/", "/admin/assets/app.js"] {
        let answer = send(&app, "GET", uri, &[], "").await;
        assert_eq!(answer.status, StatusCode::FORBIDDEN, "{uri}");
        assert_eq!(answer.json()["error"]["code"], "admin_disabled", "{uri}");
    }
}
