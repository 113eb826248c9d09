//! The process-wide memory budget for request bodies in flight (DESIGN §14).
//!
//! A request is charged its declared body size (the body limit when it declares none) before
//! a byte of the body is read, and keeps the charge until its response body is dropped: the
//! parsed request, the forwarded copy and the answer live that long. Past the budget the
//! request gets a fast 503 with `Retry-After`, so a burst of large bodies is refused instead
//! of growing the heap until the kernel kills the worker with every stream in it.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::header::CONTENT_LENGTH;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

pub use crate::budget::BodyBudget;
use crate::conn::Holding;
use crate::error::ApiError;
use crate::state::AppState;

/// The middleware: charge, serve, release when the response body is gone.
pub async fn layer(State(state): State<Arc<AppState>>, request: Request, next: Next) -> Response {
    let declared = request
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<usize>().ok());
    let limit = state.config.body_limit;
    let charge = match declared {
        Some(0) => return next.run(request).await,
        // Over the limit: the body extractor answers 413 without reading it.
        Some(n) if n > limit => return next.run(request).await,
        Some(n) => n,
        None if request_has_no_body(&request) => return next.run(request).await,
        // Chunked: it may grow to the limit, so that much is held for it.
        None => limit,
    };
    let budget = &state.body_budget;
    let Some(permit) = budget.try_charge(charge) else {
        state.metrics.body_budget_refused_total.inc();
        let refusal = ApiError::Overloaded {
            in_flight_mb: budget.in_flight() / (1024 * 1024),
            budget_mb: budget.total() / (1024 * 1024),
        };
        discard(request.into_body(), limit).await;
        return refusal.into_response();
    };
    let response = next.run(request).await;
    // The charge lasts until the answer has been sent (hyper drops the body).
    response.map(|body| Holding::body(body, permit))
}

/// Reads and drops the body of a refused request, a chunk at a time, so no memory is held:
/// a client still uploading when the connection closes gets a reset instead of the 503.
/// Bounded by the body limit and by [`DISCARD_FOR`].
async fn discard(body: Body, limit: usize) {
    use futures_util::StreamExt;
    let mut stream = body.into_data_stream();
    let mut read = 0usize;
    let _ = tokio::time::timeout(DISCARD_FOR, async {
        while let Some(Ok(chunk)) = stream.next().await {
            read = read.saturating_add(chunk.len());
            if read > limit {
                break;
            }
        }
    })
    .await;
}

/// How long a refused request's upload is read (and dropped) before the 503 is sent anyway.
const DISCARD_FOR: std::time::Duration = std::time::Duration::from_secs(10);

/// GET, HEAD and OPTIONS requests without a length carry no body worth charging.
fn request_has_no_body(request: &Request) -> bool {
    use axum::http::Method;
    matches!(
        *request.method(),
        Method::GET | Method::HEAD | Method::OPTIONS
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charges_are_refused_past_the_budget_and_come_back_when_dropped() {
        let budget = BodyBudget::new(64 * 1024 * 1024);
        let first = budget.try_charge(31_000_000).unwrap();
        let second = budget.try_charge(31_000_000).unwrap();
        assert!(budget.try_charge(31_000_000).is_none());
        assert!(budget.try_charge(100).is_some(), "small bodies still fit");
        drop(first);
        assert!(budget.try_charge(31_000_000).is_some());
        drop(second);
        // A body larger than the whole budget takes all of it rather than never fitting.
        assert!(budget.try_charge(usize::MAX / 2).is_some());
    }
}
