//! The admin web console under `/admin/`: a page shell, one stylesheet and a few ES modules,
//! all compiled into the binary (no Node at build time, nothing fetched from elsewhere at run
//! time). The page is a small client of the JSON admin API (`/admin/v1/*`); this module only
//! serves it and handles sign-in:
//!
//! - [`session`]: the in-memory sessions behind the console's cookie, and their CSRF tokens.
//! - [`assets`]: the embedded files, and the two HTML pages (sign-in, console shell).
//!
//! With an admin token, the console asks for it once (a form POST), answers with an HttpOnly,
//! SameSite=Strict cookie naming a session, and writes the session's CSRF token into the
//! shell's `<meta name="csrf-token">`, which the script sends as `X-CSRF-Token` on every
//! write. The token itself is never stored, echoed or logged. Without a token, the console
//! answers exactly whom the admin API answers (loopback peers, no proxy, a loopback host name,
//! no other site's page) and needs no sign-in.
//!
//! Every console answer carries a strict Content-Security-Policy (no inline script or style,
//! nothing from another origin, no framing).

mod assets;
pub mod session;
#[cfg(test)]
mod tests;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::header::{
    ACCEPT, CACHE_CONTROL, CONTENT_SECURITY_POLICY, LOCATION, REFERRER_POLICY, SET_COOKIE,
    X_CONTENT_TYPE_OPTIONS, X_FRAME_OPTIONS,
};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri};
use axum::middleware::map_response;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use serde::Deserialize;

use subtle::ConstantTimeEq;

use crate::api::{tokenless, AdminError, Gate};
use session::{clear_cookie, set_cookie};

/// The policy on every console answer.
pub const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
    img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; \
    form-action 'self'";

/// A sign-in form is a token and a little encoding: anything larger is not one.
const FORM_LIMIT: usize = 16 * 1024;

/// Where a signed-in browser lands.
const HOME: &str = "/admin/#/overview";

pub fn router(gate: Gate) -> Router {
    Router::new()
        .route("/admin", get(|| async { Redirect::permanent("/admin/") }))
        .route("/admin/", get(index))
        .route("/admin/sign-in", post(sign_in))
        .route("/admin/sign-out", post(sign_out))
        .route("/admin/assets/{name}", get(assets::asset))
        .layer(DefaultBodyLimit::max(FORM_LIMIT))
        .layer(map_response(security_headers))
        .with_state(gate)
}

async fn security_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    headers.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    headers.insert(X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    if !headers.contains_key(CACHE_CONTROL) {
        headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}

/// `GET /admin/`: the console for a live session (or a tokenless loopback peer), else the
/// sign-in form.
async fn index(State(gate): State<Gate>, request: Request) -> Response {
    if gate.admin.token.is_none() {
        return match tokenless(request.uri(), request.headers(), request.extensions()) {
            Ok(()) => assets::html(StatusCode::OK, assets::shell("", false)),
            Err(e) => e.into_response(),
        };
    }
    match gate.sessions.from_headers(request.headers()) {
        Some(session) => assets::html(StatusCode::OK, assets::shell(&session.csrf, true)),
        None => assets::html(StatusCode::OK, assets::sign_in_page(None)),
    }
}

#[derive(Deserialize)]
struct SignInForm {
    token: String,
}

/// `POST /admin/sign-in` (`token=…`, form-encoded): a session cookie and a redirect to the
/// console, or 401.
async fn sign_in(State(gate): State<Gate>, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    let Some(token) = &gate.admin.token else {
        return AdminError::BadRequest(
            "no admin token is configured: the console answers loopback clients without sign-in"
                .to_owned(),
        )
        .into_response();
    };
    let Ok(form) = serde_urlencoded::from_bytes::<SignInForm>(&body) else {
        return AdminError::BadRequest("expected a form with a 'token' field".to_owned())
            .into_response();
    };
    if !bool::from(form.token.as_bytes().ct_eq(token.as_bytes())) {
        tracing::warn!("console sign-in refused: wrong admin token");
        return refused(&headers);
    }
    let session = match gate.sessions.create() {
        Ok(s) => s,
        Err(e) => return AdminError::Internal(e.to_string()).into_response(),
    };
    tracing::info!(sessions = gate.sessions.len(), "console sign-in");
    let cookie = set_cookie(&session.id, gate.sessions.ttl(), over_tls(&uri, &headers));
    (
        StatusCode::SEE_OTHER,
        [(LOCATION, HOME.to_owned()), (SET_COOKIE, cookie)],
    )
        .into_response()
}

/// A refused sign-in: the form again with a message for a browser, the API's JSON 401 for
/// anything else.
fn refused(headers: &HeaderMap) -> Response {
    let wants_html = headers
        .get(ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("text/html"));
    if wants_html {
        let page = assets::sign_in_page(Some("That is not the admin token."));
        assets::html(StatusCode::UNAUTHORIZED, page)
    } else {
        AdminError::Unauthorized.into_response()
    }
}

/// `POST /admin/sign-out` with the session's CSRF token: the session ends here and now, not
/// only in this browser.
async fn sign_out(State(gate): State<Gate>, uri: Uri, headers: HeaderMap) -> Response {
    let Some(session) = gate.sessions.from_headers(&headers) else {
        return AdminError::Unauthorized.into_response();
    };
    if !session.csrf_matches(&headers) {
        return AdminError::Csrf.into_response();
    }
    gate.sessions.remove(&session.id);
    tracing::info!("console sign-out");
    let cookie = clear_cookie(over_tls(&uri, &headers));
    (StatusCode::NO_CONTENT, [(SET_COOKIE, cookie)]).into_response()
}

/// Whether the browser reached us over TLS: directly, or through a proxy that says so.
fn over_tls(uri: &Uri, headers: &HeaderMap) -> bool {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_ascii_lowercase)
    };
    uri.scheme_str() == Some("https")
        || header("x-forwarded-proto").is_some_and(|p| p.trim() == "https")
        || header("forwarded").is_some_and(|f| f.contains("proto=https"))
}
