//! Liveness, readiness and metrics: public even when client auth is on.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::Json;
use serde_json::{json, Value};

use crate::server::AppState;

/// Liveness: the process answers. Lists the configured providers.
pub async fn live(State(state): State<Arc<AppState>>) -> Json<Value> {
    let providers: Vec<&str> = state
        .providers
        .configured()
        .map(|p| p.id().as_str())
        .collect();
    Json(json!({
        "status": "healthy",
        "service": "mana-llm",
        "version": env!("CARGO_PKG_VERSION"),
        "providers": providers,
    }))
}

/// Readiness: 503 once draining, so load balancers stop sending new requests.
pub async fn ready(State(state): State<Arc<AppState>>) -> impl IntoResponse {
    if state.is_draining() {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "draining"})),
        )
    } else {
        (StatusCode::OK, Json(json!({"status": "ready"})))
    }
}

pub async fn metrics(State(state): State<Arc<AppState>>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.metrics.render(),
    )
}
