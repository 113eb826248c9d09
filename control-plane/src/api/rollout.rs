//! Staged rollouts over the admin API: start one (a push with `?canary=`), watch it, promote
//! or abort it.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use mana_llm_shared::fleet::Beat;
use mana_llm_shared::rollout::{parse_seconds, CanaryShare, Cohorts, Figures, JudgeSettings};
use mana_llm_shared::{DocumentFormat, RegistryVersion};
use serde_json::Value;

use super::fleet::live_workers;
use super::handlers::{actor, fail};
use super::{body, AdminError, AdminState};
use crate::contract::{
    Active, CohortsView, EndBody, Ended, FiguresPair, FiguresView, Finished, Member, Started,
    Status,
};
use crate::domain::{ActiveRollout, Command, FinishedRollout};
use crate::rollout::Seen;

/// The query parameters of a push that starts a rollout.
const ROLLOUT_PARAMS: [&str; 5] = ["canary", "auto", "soak", "min_requests", "expected_version"];

/// The judge's settings for a new rollout: the control plane's defaults, overridden by the
/// push's `auto`, `soak` and `min_requests`.
fn judge_settings(
    defaults: JudgeSettings,
    query: &HashMap<String, String>,
) -> Result<JudgeSettings, AdminError> {
    if let Some(unknown) = query.keys().find(|k| !ROLLOUT_PARAMS.contains(&k.as_str())) {
        return Err(AdminError::BadRequest(format!(
            "unknown parameter '{unknown}' (a rollout takes canary, auto, soak, min_requests)"
        )));
    }
    let mut judge = defaults;
    if let Some(auto) = query.get("auto") {
        judge.auto = match auto.as_str() {
            "" | "true" | "1" => true,
            "false" | "0" => false,
            other => {
                return Err(AdminError::BadRequest(format!(
                    "auto must be true or false, got '{other}'"
                )))
            }
        };
    }
    if let Some(soak) = query.get("soak") {
        judge.soak_seconds = parse_seconds(soak).map_err(AdminError::BadRequest)?;
    }
    if let Some(n) = query.get("min_requests") {
        judge.min_requests = n.parse().map_err(|_| {
            AdminError::BadRequest(format!("min_requests must be a number, got '{n}'"))
        })?;
    }
    Ok(judge)
}

/// A push with `?canary=`: the document becomes a candidate for part of the fleet.
pub(super) async fn start(
    state: &AdminState,
    headers: &HeaderMap,
    text: String,
    format: DocumentFormat,
    expected_version: Option<RegistryVersion>,
    query: &HashMap<String, String>,
) -> Result<Response, AdminError> {
    let share: CanaryShare = query
        .get("canary")
        .map(|c| c.parse())
        .transpose()
        .map_err(AdminError::BadRequest)?
        .ok_or_else(|| AdminError::BadRequest("canary is required".to_owned()))?;
    let judge = judge_settings(state.rollouts.defaults(), query)?;
    let live = live_workers(state).await?;
    let command = Command::StartRollout {
        text,
        format,
        origin: "admin API".to_owned(),
        expected_version,
        share,
        live_workers: live.iter().map(|b| b.worker_id.clone()).collect(),
        judge,
    };
    if let Err(e) = state.service.execute(command, &actor(headers)).await {
        return Err(fail(state, e).await);
    }
    let Some(rollout) = state.service.rollout().await else {
        return Err(AdminError::Internal(
            "the rollout was recorded but is not running".to_owned(),
        ));
    };
    let hash = state
        .service
        .version(rollout.candidate_version)
        .await
        .map(|r| r.hash);
    let started = Started {
        version: rollout.candidate_version,
        hash,
        changed: true,
        stable_version: rollout.stable_version,
        rollout: active_view(state, &rollout, Some(&live)).await,
    };
    Ok((StatusCode::CREATED, body(&started)?).into_response())
}

fn figures_view(f: &Figures) -> FiguresView {
    FiguresView {
        requests: f.requests,
        upstream_errors: f.upstream_errors,
        exhausted: f.exhausted,
        fallbacks: f.fallbacks,
        error_ratio: f.error_ratio(),
        exhausted_ratio: f.exhausted_ratio(),
        fallback_ratio: f.fallback_ratio(),
        p99_ms: f.p99_ms,
    }
}

fn figures_pair(c: &Cohorts) -> FiguresPair {
    FiguresPair {
        candidate: figures_view(&c.candidate),
        stable: figures_view(&c.stable),
    }
}

/// The running rollout: its rule, the cohorts of the workers alive now, the figures so far
/// and what the judge makes of them.
async fn active_view(state: &AdminState, r: &ActiveRollout, live: Option<&[Beat]>) -> Active {
    let started_at = state.service.rollout_started_at().await;
    let Seen {
        cohorts,
        verdict,
        paused,
    } = state.rollouts.seen(r.candidate_version);
    let mut members = CohortsView::default();
    for beat in live.unwrap_or_default() {
        let cohort = if r.includes(beat.worker_id.as_str()) {
            &mut members.candidate
        } else {
            &mut members.stable
        };
        cohort.push(Member {
            worker_id: beat.worker_id.clone(),
            registry_version: beat.registry_version,
        });
    }
    Active {
        candidate_version: r.candidate_version,
        stable_version: r.stable_version,
        share: r.share.to_string(),
        auto: r.judge.auto,
        soak_seconds: r.judge.soak_seconds,
        min_requests: r.judge.min_requests,
        ratio_margin_pct: r.judge.ratio_margin_pct,
        latency_factor_pct: r.judge.latency_factor_pct,
        started_at,
        soak_ends_at: started_at.map(|t| t + r.judge.soak_seconds as f64),
        initial_cohort: r.cohort.clone(),
        cohorts: members,
        figures: figures_pair(&cohorts),
        verdict: verdict.as_ref().map(|v| v.text().to_owned()),
        paused,
    }
}

/// How a rollout ended, with when (Unix seconds, from the log).
async fn finished_view(state: &AdminState, f: &FinishedRollout) -> Finished {
    let kind = match f.outcome {
        crate::domain::RolloutOutcome::Promoted => "RolloutPromoted",
        _ => "RolloutAborted",
    };
    let at = state.service.recorded_at(kind, f.candidate_version).await;
    Finished {
        at,
        candidate_version: f.candidate_version,
        stable_version: f.stable_version,
        outcome: f.outcome.as_str().to_owned(),
        decided_by: f.decided_by.clone(),
        reason: f.reason.clone(),
        figures: f.figures.as_ref().map(figures_pair),
    }
}

/// `GET /admin/v1/rollout`: the running rollout (or null) and how the last one ended.
pub async fn status(State(state): State<Arc<AdminState>>) -> Result<Json<Value>, AdminError> {
    let active = match state.service.rollout().await {
        Some(r) => {
            // The cohorts need the fleet; a rollout is still shown when Redis is down.
            let live = live_workers(&state).await.ok();
            Some(active_view(&state, &r, live.as_deref()).await)
        }
        None => None,
    };
    let last = match state.service.last_rollout().await {
        Some(f) => Some(finished_view(&state, &f).await),
        None => None,
    };
    body(&Status { active, last })
}

async fn end(
    state: &AdminState,
    headers: &HeaderMap,
    body: &Bytes,
    promote: bool,
) -> Result<Response, AdminError> {
    let body: EndBody = if body.iter().all(u8::is_ascii_whitespace) {
        EndBody::default()
    } else {
        serde_json::from_slice(body).map_err(|e| {
            AdminError::BadRequest(format!(
                "expected {{\"reason\"?: text, \"candidate_version\"?: n}}: {e}"
            ))
        })?
    };
    let Some(rollout) = state.service.rollout().await else {
        return Err(AdminError::NoRollout);
    };
    let seen = state.rollouts.seen(rollout.candidate_version);
    let actor = actor(headers);
    let reason = body
        .reason
        .map(|r| r.chars().filter(|c| !c.is_control()).take(500).collect())
        .unwrap_or_else(|| {
            format!(
                "{} by {actor}",
                if promote { "promoted" } else { "aborted" }
            )
        });
    let command = Command::EndRollout {
        candidate: Some(body.candidate_version.unwrap_or(rollout.candidate_version)),
        promote,
        decided_by: "admin".to_owned(),
        reason,
        figures: Some(seen.cohorts),
    };
    let executed = match state.service.execute(command, &actor).await {
        Ok(e) => e,
        Err(e) => return Err(fail(state, e).await),
    };
    let last = match state.service.last_rollout().await {
        Some(f) => Some(finished_view(state, &f).await),
        None => None,
    };
    let ended = Ended {
        version: executed.current_version,
        rollout: last,
    };
    Ok(super::body(&ended)?.into_response())
}

/// `POST /admin/v1/rollout/promote`: the candidate becomes every worker's version.
pub async fn promote(
    State(state): State<Arc<AdminState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, AdminError> {
    end(&state, &headers, &body, true).await
}

/// `POST /admin/v1/rollout/abort`: every worker goes back to the stable version.
pub async fn abort(
    State(state): State<Arc<AdminState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, AdminError> {
    end(&state, &headers, &body, false).await
}
