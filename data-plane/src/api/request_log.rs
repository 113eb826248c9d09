//! One log line and one metric sample per request, and the `X-Request-Id` header.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, Method};
use axum::middleware::Next;
use axum::response::Response;

use super::headers;
use crate::error::ErrorCode;
use crate::state::AppState;
pub use crate::usecase::RouteLog;

/// A handler's answer (or its error's), carrying `log` to the request log below.
pub fn logged(answer: Result<Response, crate::error::ApiError>, log: RouteLog) -> Response {
    let mut response = answer.unwrap_or_else(axum::response::IntoResponse::into_response);
    response.extensions_mut().insert(log);
    response
}

/// This request's id, for handlers that want to log it.
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

/// Reuses a client's `X-Request-Id` when it looks like an id, else makes a uuid.
fn request_id(request: &Request) -> String {
    request
        .headers()
        .get(headers::REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 128)
        .filter(|v| {
            v.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
        })
        .map(str::to_owned)
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string())
}

fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::OPTIONS => "OPTIONS",
        Method::HEAD => "HEAD",
        _ => "other",
    }
}

pub async fn layer(
    State(state): State<Arc<AppState>>,
    mut request: Request,
    next: Next,
) -> Response {
    let started = Instant::now();
    let id = request_id(&request);
    request.extensions_mut().insert(RequestId(id.clone()));
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    // Route templates are ours, so the label set is bounded; unmatched paths are `other`.
    let endpoint = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "other".to_owned(), |m| m.as_str().to_owned());

    // Probes are not traffic: they would make the gauge never read zero.
    let probe = matches!(path.as_str(), "/health" | "/ready" | "/metrics");
    if !probe {
        state.metrics.in_flight.inc();
    }
    let mut response = next.run(request).await;
    if !probe {
        state.metrics.in_flight.dec();
    }

    let elapsed = started.elapsed();
    let status = response.status();
    let route = response
        .extensions()
        .get::<RouteLog>()
        .cloned()
        .unwrap_or_default();
    if let Ok(v) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(headers::REQUEST_ID, v);
    }
    let version = state.snapshots.version().0;
    response
        .headers_mut()
        .insert(headers::REGISTRY_VERSION, HeaderValue::from(version));
    if let Some(upstream) = route.upstream {
        let overhead = elapsed.saturating_sub(upstream);
        state
            .metrics
            .gateway_overhead
            .with_label_values(&[&endpoint])
            .observe(overhead.as_secs_f64());
    }
    let m = &state.metrics;
    let method = method_label(&method);
    m.requests_total
        .with_label_values(&[method, &endpoint, status.as_str()])
        .inc();
    m.request_latency
        .with_label_values(&[method, &endpoint])
        .observe(elapsed.as_secs_f64());

    let error = response.extensions().get::<ErrorCode>().map(|c| c.0);
    // The fleet view's figures: model calls only (the routes that walk a chain).
    if !probe && method == "POST" && path.starts_with("/v1/") {
        state.fleet_stats.record(
            version,
            elapsed,
            crate::fleet::Outcome {
                upstream_error: status.is_server_error(),
                fallback: route.fallbacks > 0,
                exhausted: error == Some("no_healthy_provider"),
            },
        );
    }
    let upstream_ms = route.upstream.map(millis);
    let total_ms = millis(elapsed);
    let target = route.target.as_deref();
    if probe {
        tracing::debug!(request_id = %id, method, path, status = status.as_u16(), total_ms, "request");
    } else if status.is_server_error() {
        tracing::warn!(request_id = %id, method, path, status = status.as_u16(), model = %route.model, resolved = target, upstream_ms, total_ms, error, "request");
    } else {
        tracing::info!(request_id = %id, method, path, status = status.as_u16(), model = %route.model, resolved = target, upstream_ms, total_ms, error, "request");
    }
    response
}

/// Milliseconds with microsecond precision, for readable log fields.
fn millis(d: Duration) -> f64 {
    (d.as_secs_f64() * 1_000_000.0).round() / 1000.0
}
