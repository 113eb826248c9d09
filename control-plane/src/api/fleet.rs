//! The fleet view: every live worker as its heartbeat describes it, and how far a version has
//! reached.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::Json;
use mana_llm_shared::fleet::Beat;
use serde_json::{json, Value};

use super::{AdminError, AdminState};

/// Unix seconds now.
fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// The live workers, or a 503 naming why they cannot be listed.
pub(super) async fn live_workers(state: &AdminState) -> Result<Vec<Beat>, AdminError> {
    let Some(beats) = &state.fleet else {
        return Err(AdminError::Unavailable(
            "this control plane has no fleet store (start it with --redis)".to_owned(),
        ));
    };
    beats.list().await.ok_or_else(|| {
        AdminError::Unavailable("Redis is unreachable: the fleet cannot be listed".to_owned())
    })
}

/// When version `v` became current, as Unix seconds, from the log.
pub async fn committed_at(service: &crate::service::RegistryService, v: u64) -> Option<f64> {
    let row: Option<(String,)> = sqlx::query_as(
        "SELECT recorded_at FROM events WHERE registry_version = ?1 ORDER BY sequence LIMIT 1",
    )
    .bind(i64::try_from(v).ok()?)
    .fetch_optional(service.store().pool())
    .await
    .ok()?;
    crate::clock::parse_rfc3339(&row?.0)
}

/// One worker as the fleet view shows it.
fn worker_view(beat: &Beat, current: u64, lag_since: Option<f64>, now: f64) -> Value {
    let lagging = beat.registry_version < current;
    json!({
        "worker_id": beat.worker_id,
        "listen": beat.listen,
        "binary_version": beat.binary_version,
        "registry_version": beat.registry_version,
        "started_at": beat.started_at,
        "last_beat_at": beat.beat_at,
        "in_flight": beat.in_flight,
        "lagging": lagging,
        "lag_seconds": if lagging { lag_since.map(|t| (now - t).max(0.0)) } else { Some(0.0) },
        "windows": beat.windows,
    })
}

/// `GET /admin/v1/fleet`.
pub async fn fleet(State(state): State<Arc<AdminState>>) -> Result<Json<Value>, AdminError> {
    let workers = live_workers(&state).await?;
    let current = state.service.current_version().await;
    let since = committed_at(&state.service, current).await;
    let now = unix_now();
    let views: Vec<Value> = workers
        .iter()
        .map(|b| worker_view(b, current, since, now))
        .collect();
    let serving = workers
        .iter()
        .filter(|b| b.registry_version == current)
        .count();
    Ok(Json(json!({
        "current_version": current,
        "live": workers.len(),
        "serving_current": serving,
        "workers": views,
    })))
}

/// How far version `v` has reached: who serves it, who does not yet.
pub(super) fn progress(workers: &[Beat], v: u64) -> Value {
    let serving = workers.iter().filter(|b| b.registry_version >= v).count();
    let per_worker: Vec<Value> = workers
        .iter()
        .map(|b| {
            json!({
                "worker_id": b.worker_id,
                "registry_version": b.registry_version,
                "serving": b.registry_version >= v,
            })
        })
        .collect();
    json!({
        "version": v,
        "live": workers.len(),
        "serving": serving,
        "complete": serving == workers.len(),
        "workers": per_worker,
    })
}

/// `GET /admin/v1/registry/versions/{v}/rollout`.
pub async fn rollout(
    State(state): State<Arc<AdminState>>,
    Path(version): Path<String>,
) -> Result<Json<Value>, AdminError> {
    let v: u64 = version
        .parse()
        .map_err(|_| AdminError::BadRequest(format!("'{version}' is not a version number")))?;
    if state.service.version(v).await.is_none() {
        return Err(AdminError::UnknownVersion(v));
    }
    let workers = live_workers(&state).await?;
    Ok(Json(progress(&workers, v)))
}
