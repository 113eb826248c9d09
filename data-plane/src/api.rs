//! Routes and the layers around them.
//!
//! Outermost first: request log (id, timing, one line per request) → CORS (so preflights and
//! 401s carry CORS headers) → body limit → client auth (only on `/v1/*`) → handler.

mod auth;
mod body;
pub mod budget;
mod chat;
mod embeddings;
#[cfg(test)]
mod fuzz;
mod health;
mod models;
mod registry;
mod request_log;
mod responses;

use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderName, HeaderValue};
use axum::middleware::from_fn_with_state;
use axum::routing::{any, get, post};
use axum::Router;
use tower_http::cors::{AllowHeaders, AllowMethods, AllowOrigin, CorsLayer};

use crate::error::ApiError;
use crate::state::AppState;

pub use request_log::{logged, RequestId, RouteLog};

pub use crate::headers;

pub fn router(state: Arc<AppState>) -> Router {
    let v1 = Router::new()
        .route("/v1/chat/completions", post(chat::completions))
        .route("/v1/embeddings", post(embeddings::create))
        .route("/v1/responses", post(responses::create))
        .route("/v1/responses/{*id}", any(responses::stored))
        .route("/v1/models", get(models::list))
        .route("/v1/models/{*id}", get(models::get))
        .route("/v1/aliases", get(registry::aliases))
        .route("/v1/health", get(health::providers))
        .route_layer(from_fn_with_state(state.clone(), auth::require_key));
    Router::new()
        .merge(v1)
        .route("/health", get(health::live))
        .route("/ready", get(health::ready))
        .route("/metrics", get(health::metrics))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(state.config.body_limit))
        .layer(from_fn_with_state(state.clone(), budget::layer))
        .layer(cors(&state.config.cors_origins))
        .layer(from_fn_with_state(state.clone(), request_log::layer))
        .with_state(state)
}

/// Request headers a browser app may send: those the OpenAI SDKs and the Vercel AI SDK set.
/// Listed, because `Access-Control-Allow-Headers: *` does not cover `Authorization` (Fetch
/// standard), so a wildcard would break Bearer auth from every browser.
const ALLOWED_HEADERS: [&str; 18] = [
    "authorization",
    "content-type",
    "accept",
    "x-api-key",
    "x-request-id",
    "cache-control",
    "openai-organization",
    "openai-project",
    "openai-beta",
    "x-stainless-arch",
    "x-stainless-lang",
    "x-stainless-os",
    "x-stainless-package-version",
    "x-stainless-runtime",
    "x-stainless-retry-count",
    "x-stainless-timeout",
    "x-stainless-helper-method",
    "x-stainless-async",
];

fn cors(origins: &[String]) -> CorsLayer {
    // Every X-Mana-LLM-* header, so a browser app can read what happened to its request.
    let expose = [
        headers::REQUEST_ID,
        headers::RESOLVED,
        headers::REGISTRY_VERSION,
        headers::CACHE,
        "retry-after",
    ]
    .map(HeaderName::from_static);
    let layer = CorsLayer::new()
        .expose_headers(expose)
        .max_age(std::time::Duration::from_secs(600));
    if origins.iter().any(|o| o == "*") {
        let allowed = ALLOWED_HEADERS.map(HeaderName::from_static);
        return layer
            .allow_origin(AllowOrigin::any())
            .allow_methods(AllowMethods::any())
            .allow_headers(AllowHeaders::list(allowed));
    }
    let list: Vec<HeaderValue> = origins
        .iter()
        .filter_map(|o| HeaderValue::from_str(o).ok())
        .collect();
    // With credentials allowed, wildcards are forbidden: mirror what the browser asks for.
    layer
        .allow_origin(AllowOrigin::list(list))
        .allow_credentials(true)
        .allow_methods(AllowMethods::mirror_request())
        .allow_headers(AllowHeaders::mirror_request())
}

async fn not_found(uri: axum::http::Uri) -> ApiError {
    ApiError::NotFound {
        message: format!("no route for {}", uri.path()),
        code: "not_found",
    }
}

async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}
