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
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::conn::Holding;
use crate::error::ApiError;
use crate::server::AppState;

/// The budget is counted in KiB so a large one still fits the semaphore's u32 permits.
const UNIT: usize = 1024;

pub struct BodyBudget {
    permits: Arc<Semaphore>,
    units: usize,
}

impl BodyBudget {
    pub fn new(bytes: usize) -> Self {
        let units = (bytes / UNIT).clamp(1, Semaphore::MAX_PERMITS.min(u32::MAX as usize));
        Self {
            permits: Arc::new(Semaphore::new(units)),
            units,
        }
    }

    /// Reserves `bytes` of the budget, or `None` at once when they are not free.
    pub fn try_charge(&self, bytes: usize) -> Option<OwnedSemaphorePermit> {
        let units = bytes.div_ceil(UNIT).clamp(1, self.units);
        let units = u32::try_from(units).ok()?;
        self.permits.clone().try_acquire_many_owned(units).ok()
    }

    /// Bytes charged right now.
    pub fn in_flight(&self) -> usize {
        (self.units - self.permits.available_permits()) * UNIT
    }

    pub fn total(&self) -> usize {
        self.units * UNIT
    }
}

/// Without `MANA_LLM_BODY_BUDGET_MB`: an eighth of the memory limit of this process's cgroup
/// (a 31 MB chat request peaks at ~5.4× its body in RSS, see BENCHMARKS.md, plus the idle
/// worker), else 128 MiB; never less than one body of the largest size allowed.
pub fn default_budget(body_limit: usize) -> usize {
    let budget = memory_limit().map_or(128 * 1024 * 1024, |limit| limit / 8);
    budget.max(body_limit)
}

/// The memory limit of this process's cgroup (v2 `memory.max`, else v1's
/// `memory.limit_in_bytes`), if it has one.
fn memory_limit() -> Option<usize> {
    let groups = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    let files = groups.lines().filter_map(|line| {
        let mut parts = line.splitn(3, ':');
        let (_, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
        let path = path.trim_start_matches('/');
        if controllers.is_empty() {
            Some(format!("/sys/fs/cgroup/{path}/memory.max"))
        } else if controllers.split(',').any(|c| c == "memory") {
            Some(format!(
                "/sys/fs/cgroup/memory/{path}/memory.limit_in_bytes"
            ))
        } else {
            None
        }
    });
    // "max" (v2) or a huge number (v1, unlimited) mean no limit.
    files
        .filter_map(|f| std::fs::read_to_string(f).ok())
        .filter_map(|raw| raw.trim().parse::<usize>().ok())
        .find(|limit| *limit < 1usize << 50)
}

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
