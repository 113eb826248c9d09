//! Liveness, readiness, provider health and metrics. `/health`, `/ready` and `/metrics` stay
//! public when client auth is on; `/v1/health` needs a key like every `/v1` route.
//!
//! Public `/health` shows statuses only: breaker details carry upstream text (`last_error`),
//! which is for the keyed `/v1/health`.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::Json;
use serde_json::{json, Map, Value};

use crate::health::Status;
use crate::state::AppState;

/// Per-provider breaker state, time-aware, and the aggregate. `detail`: the breaker's counters
/// and (scrubbed) last error besides the status.
fn provider_health(state: &AppState, detail: bool) -> (&'static str, Value) {
    let snapshot = state.snapshots.load();
    let configured: Vec<_> = snapshot
        .providers
        .configured()
        .map(|p| p.id().clone())
        .collect();
    let breakers = state.health.snapshot(&configured);
    let mut providers = Map::new();
    let (mut healthy, mut total) = (0, 0);
    for (id, breaker) in &breakers {
        let status = state.health.status(breaker);
        total += 1;
        if status == Status::Healthy {
            healthy += 1;
        }
        let entry = if detail {
            // Scrubbed again on the way out: a breaker read from Redis may have been written
            // by a worker that did not scrub.
            let last_error = breaker
                .last_error
                .as_deref()
                .map(|e| state.health.scrubber().scrub(e).into_owned());
            json!({
                "status": status.as_str(),
                "consecutive_failures": breaker.consecutive_failures,
                "last_error": last_error,
                "last_check_unix": breaker.last_check,
                "open_until_unix": breaker.open_until,
            })
        } else {
            json!({"status": status.as_str()})
        };
        providers.insert(id.to_string(), entry);
    }
    let aggregate = match healthy {
        h if h == total => "healthy",
        0 => "unhealthy",
        _ => "degraded",
    };
    (aggregate, Value::Object(providers))
}

/// Liveness: always 200 while the process answers; carries the provider summary, as the
/// original's `/health` did.
pub async fn live(State(state): State<Arc<AppState>>) -> Json<Value> {
    let (status, providers) = provider_health(&state, false);
    Json(json!({
        "status": status,
        "service": "mana-llm",
        "version": env!("CARGO_PKG_VERSION"),
        "providers": providers,
    }))
}

/// `GET /v1/health`: breaker state per provider, and whether it is shared by the fleet.
pub async fn providers(State(state): State<Arc<AppState>>) -> Json<Value> {
    let (status, providers) = provider_health(&state, true);
    Json(json!({
        "status": status,
        "shared": state.health.shared(),
        "registry_version": state.snapshots.version().0,
        "providers": providers,
    }))
}

/// Readiness: 503 once draining, so load balancers stop sending new requests.
pub async fn ready(State(state): State<Arc<AppState>>) -> impl IntoResponse {
    let version = state.snapshots.version().0;
    if state.is_draining() {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "draining", "registry_version": version})),
        )
    } else if version == 0 {
        // Every alias would 404: a load balancer must not send traffic here yet.
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({
                "status": "no_registry",
                "reason": "no registry version installed yet (waiting for the control plane's published version)",
                "registry_version": 0
            })),
        )
    } else {
        (
            StatusCode::OK,
            Json(json!({"status": "ready", "registry_version": state.snapshots.version().0})),
        )
    }
}

pub async fn metrics(State(state): State<Arc<AppState>>) -> impl IntoResponse {
    state.observe_breakers();
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.metrics.render(),
    )
}
