//! The fleet view: every live worker as its heartbeat describes it, and how far a version has
//! reached.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::Json;
use mana_llm_shared::clock::unix_now;
use mana_llm_shared::fleet::Beat;
use mana_llm_shared::RegistryVersion;
use serde_json::Value;

use super::{body, AdminError, AdminState};
use crate::contract::{
    BreakerCounts, FleetView, Progress, ProgressWorker, RolloutRule, WorkerView,
};

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

/// When version `v` became current, as Unix seconds, from the log (a rollout's candidate
/// becomes current when it is promoted, not when it starts).
pub async fn committed_at(
    service: &crate::service::RegistryService,
    v: RegistryVersion,
) -> Option<f64> {
    let row: Option<(String,)> = sqlx::query_as(
        "SELECT recorded_at FROM events WHERE registry_version = ?1 \
         AND event_type NOT IN ('RolloutStarted', 'RolloutAborted') ORDER BY sequence LIMIT 1",
    )
    .bind(i64::try_from(v.0).ok()?)
    .fetch_optional(service.store().pool())
    .await
    .ok()?;
    mana_llm_shared::clock::parse_rfc3339(&row?.0)
}

/// What a worker should serve: the candidate when a rollout puts it in the candidate
/// cohort, else the current version.
struct Expected<'a> {
    current: RegistryVersion,
    current_since: Option<f64>,
    rollout: Option<&'a crate::domain::ActiveRollout>,
    rollout_since: Option<f64>,
}

impl Expected<'_> {
    /// The version `worker_id` should serve, since when, and its cohort during a rollout.
    fn of(&self, worker_id: &str) -> (RegistryVersion, Option<f64>, Option<&'static str>) {
        match self.rollout {
            Some(r) if r.includes(worker_id) => {
                (r.candidate_version, self.rollout_since, Some("candidate"))
            }
            Some(_) => (self.current, self.current_since, Some("stable")),
            None => (self.current, self.current_since, None),
        }
    }
}

/// One worker as the fleet view shows it.
fn worker_view(beat: &Beat, expected: &Expected<'_>, now: f64) -> WorkerView {
    let (should_serve, lag_since, cohort) = expected.of(beat.worker_id.as_str());
    let lagging = beat.registry_version != should_serve;
    WorkerView {
        worker_id: beat.worker_id.clone(),
        listen: beat.listen.clone(),
        binary_version: beat.binary_version.clone(),
        registry_version: beat.registry_version,
        started_at: beat.started_at,
        last_beat_at: beat.beat_at,
        in_flight: beat.in_flight,
        expected_version: should_serve,
        cohort: cohort.map(str::to_owned),
        lagging,
        lag_seconds: if lagging {
            lag_since.map(|t| (now - t).max(0.0))
        } else {
            Some(0.0)
        },
        windows: beat.windows.clone(),
        breakers: beat.breakers.clone(),
    }
}

/// Per provider, how many live workers see its breaker healthy, half-open or open.
fn breakers_across(workers: &[Beat]) -> BTreeMap<String, BreakerCounts> {
    let mut providers: BTreeMap<String, BreakerCounts> = BTreeMap::new();
    for beat in workers {
        for (provider, state) in &beat.breakers {
            let counts = providers.entry(provider.clone()).or_default();
            match state.as_str() {
                "healthy" => counts.healthy += 1,
                "half_open" => counts.half_open += 1,
                _ => counts.open += 1,
            }
        }
    }
    providers
}

/// `GET /admin/v1/fleet`.
pub async fn fleet(State(state): State<Arc<AdminState>>) -> Result<Json<Value>, AdminError> {
    let workers = live_workers(&state).await?;
    let current = state.service.current_version().await;
    let rollout = state.service.rollout().await;
    // A lagging worker lags since the version it should serve was made current (or, for a
    // canary, since its rollout began).
    let expected = Expected {
        current,
        current_since: committed_at(&state.service, current).await,
        rollout: rollout.as_ref(),
        rollout_since: state.service.rollout_started_at().await,
    };
    let now = unix_now();
    let serving = workers
        .iter()
        .filter(|b| b.registry_version == current)
        .count();
    body(&FleetView {
        current_version: current,
        live: workers.len() as u64,
        serving_current: serving as u64,
        providers: breakers_across(&workers),
        rollout: rollout.as_ref().map(|r| RolloutRule {
            candidate_version: r.candidate_version,
            stable_version: r.stable_version,
            share: r.share.to_string(),
        }),
        workers: workers
            .iter()
            .map(|b| worker_view(b, &expected, now))
            .collect(),
    })
}

/// How far version `v` has reached: who serves it, who does not yet.
pub(super) fn progress(workers: &[Beat], v: RegistryVersion) -> Progress {
    let serving = workers.iter().filter(|b| b.registry_version >= v).count();
    Progress {
        version: v,
        live: workers.len() as u64,
        serving: serving as u64,
        complete: serving == workers.len(),
        workers: workers
            .iter()
            .map(|b| ProgressWorker {
                worker_id: b.worker_id.clone(),
                registry_version: b.registry_version,
                serving: b.registry_version >= v,
            })
            .collect(),
    }
}

/// `GET /admin/v1/registry/versions/{v}/rollout`.
pub async fn rollout(
    State(state): State<Arc<AdminState>>,
    Path(version): Path<String>,
) -> Result<Json<Value>, AdminError> {
    let v = RegistryVersion(
        version
            .parse()
            .map_err(|_| AdminError::BadRequest(format!("'{version}' is not a version number")))?,
    );
    if state.service.version(v).await.is_none() {
        return Err(AdminError::UnknownVersion(v));
    }
    let workers = live_workers(&state).await?;
    body(&progress(&workers, v))
}
