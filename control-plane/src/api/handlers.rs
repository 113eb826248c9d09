//! The admin handlers: thin, each calls the service once and shapes the answer.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use mana_llm_shared::events::RegistryEvent;
use mana_llm_shared::{ContentHash, DocumentFormat, RegistryVersion};
use serde::Deserialize;
use serde_json::Value;

use super::extract::{AdminPath, AdminQuery};
use super::{body, AdminError, AdminState};
use crate::contract::{
    AliasView, AuditEvent, AuditPage, AuditRollout, DiffView, Made, Published, Reach, RollbackBody,
    RolloutPlace, VersionSummary, VersionView, VersionsPage, Written,
};
use crate::domain::{Command, PublishSource, VersionOrigin, VersionRecord};
use crate::reload::{outcome, reload_file, ReloadOutcome};
use crate::service::{Executed, ServiceError};

const DEFAULT_PAGE: u32 = 50;
const MAX_PAGE: u32 = 500;

#[derive(Deserialize)]
pub struct Page {
    #[serde(default)]
    after: u64,
    limit: Option<u32>,
}

/// The largest position the log can hold: SQLite integers are signed 64-bit.
const MAX_POSITION: u64 = i64::MAX as u64;

impl Page {
    fn limit(&self) -> u32 {
        self.limit.unwrap_or(DEFAULT_PAGE).clamp(1, MAX_PAGE)
    }

    /// `after`, refused when no stored position could be that large.
    fn after(&self) -> Result<u64, AdminError> {
        if self.after > MAX_POSITION {
            return Err(AdminError::BadRequest(format!(
                "after must be at most {MAX_POSITION}, got {}",
                self.after
            )));
        }
        Ok(self.after)
    }
}

/// Who did it: the `X-Mana-LLM-Actor` header (for the audit log), else `admin`.
pub(super) fn actor(headers: &HeaderMap) -> String {
    headers
        .get("x-mana-llm-actor")
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.trim()
                .chars()
                .filter(|c| !c.is_control())
                .take(64)
                .collect::<String>()
        })
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| "admin".to_owned())
}

/// A conflict from a concurrent writer carries the version that won.
pub(super) async fn fail(state: &AdminState, e: ServiceError) -> AdminError {
    match AdminError::from(e) {
        AdminError::Conflict {
            message,
            current_version: RegistryVersion(0),
        } => AdminError::conflict(state.service.current_version().await, message),
        other => other,
    }
}

/// How many live workers already serve `version`, when there is a fleet to ask: a write's
/// answer says how far it has reached.
async fn reach(state: &AdminState, version: RegistryVersion) -> Option<Reach> {
    let workers = state.fleet.as_ref()?.list().await?;
    let progress = super::fleet::progress(&workers, version);
    Some(Reach {
        live: progress.live,
        serving: progress.serving,
    })
}

/// A write's answer with the fleet's reach of the current version added (`"workers"`).
async fn written_reaching(
    state: &AdminState,
    executed: &Executed,
    hash: Option<ContentHash>,
) -> Result<Response, AdminError> {
    let workers = reach(state, executed.current_version).await;
    let (status, published) = published(outcome(executed), hash)?;
    Ok((status, body(&Written { published, workers })?).into_response())
}

/// The answer to anything that may write a version: 201 new, 200 unchanged, 400 rejected.
fn published(
    outcome: ReloadOutcome,
    current_hash: Option<ContentHash>,
) -> Result<(StatusCode, Published), AdminError> {
    match outcome {
        ReloadOutcome::Published { version, hash } => Ok((
            StatusCode::CREATED,
            Published {
                version,
                hash: Some(hash),
                changed: true,
            },
        )),
        ReloadOutcome::Unchanged { version } => Ok((
            StatusCode::OK,
            Published {
                version,
                hash: current_hash,
                changed: false,
            },
        )),
        ReloadOutcome::Rejected { errors } => Err(AdminError::Invalid(errors)),
    }
}

/// `If-Match: 3` (quotes and `W/` tolerated) or `?expected_version=3`.
fn expected_from_headers(headers: &HeaderMap) -> Result<Option<RegistryVersion>, AdminError> {
    let Some(raw) = headers.get(header::IF_MATCH) else {
        return Ok(None);
    };
    let text = raw
        .to_str()
        .unwrap_or("")
        .trim()
        .trim_start_matches("W/")
        .trim_matches('"');
    text.parse().map(|v| Some(RegistryVersion(v))).map_err(|_| {
        AdminError::BadRequest(format!("If-Match must be a version number, got '{text}'"))
    })
}

pub async fn push(
    State(state): State<Arc<AdminState>>,
    AdminQuery(query): AdminQuery<HashMap<String, String>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, AdminError> {
    // Refused before anything looks at the text: size is the first bound on parsing cost.
    let limit = state.service.policy().limits.max_bytes;
    if body.len() > limit {
        return Err(AdminError::TooLarge {
            size: body.len(),
            limit,
        });
    }
    let text = String::from_utf8(body.to_vec())
        .map_err(|_| AdminError::BadRequest("the body must be UTF-8 text".to_owned()))?;
    let declared_json = headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.to_ascii_lowercase().contains("json"));
    let mut expected = expected_from_headers(&headers)?;
    if let Some(v) = query.get("expected_version") {
        expected = Some(RegistryVersion(v.parse().map_err(|_| {
            AdminError::BadRequest(format!("expected_version must be a number, got '{v}'"))
        })?));
    }
    // A JSON document may carry `expected_version` beside the registry keys. A body that is
    // JSON is read as JSON (declared so, or an object that parses as one); anything else is
    // YAML.
    let mut text = text;
    let mut format = DocumentFormat::Yaml;
    if declared_json || text.trim_start().starts_with('{') {
        if let Ok(Value::Object(mut doc)) = serde_json::from_str::<Value>(&text) {
            format = DocumentFormat::Json;
            if let Some(v) = doc.remove("expected_version") {
                let v = v.as_u64().ok_or_else(|| {
                    AdminError::BadRequest("expected_version must be a number".to_owned())
                })?;
                expected = expected.or(Some(RegistryVersion(v)));
                text = Value::Object(doc).to_string();
            }
        } else if declared_json {
            format = DocumentFormat::Json;
        }
    }
    if query.contains_key("canary") {
        return super::rollout::start(&state, &headers, text, format, expected, &query).await;
    }
    let command = Command::Publish {
        text,
        format,
        source: PublishSource::Push,
        origin: "admin API".to_owned(),
        expected_version: expected,
    };
    let executed = match state.service.execute(command, &actor(&headers)).await {
        Ok(e) => e,
        Err(e) => return Err(fail(&state, e).await),
    };
    let hash = state.service.current().await.map(|c| c.hash);
    written_reaching(&state, &executed, hash).await
}

pub async fn rollback(
    State(state): State<Arc<AdminState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, AdminError> {
    let body: RollbackBody = serde_json::from_slice(&body).map_err(|e| {
        AdminError::BadRequest(format!(
            "expected {{\"to_version\": n, \"expected_version\"?: n}}: {e}"
        ))
    })?;
    let expected = body.expected_version.or(expected_from_headers(&headers)?);
    let command = Command::Rollback {
        to_version: body.to_version,
        expected_version: expected,
    };
    let executed = match state.service.execute(command, &actor(&headers)).await {
        Ok(e) => e,
        Err(e) => return Err(fail(&state, e).await),
    };
    let hash = state.service.current().await.map(|c| c.hash);
    written_reaching(&state, &executed, hash).await
}

pub async fn reload(State(state): State<Arc<AdminState>>) -> Result<Response, AdminError> {
    let Some(path) = &state.aliases_path else {
        return Err(AdminError::BadRequest(
            "this control plane has no aliases file to reload".to_owned(),
        ));
    };
    let result = match reload_file(&state.service, path).await {
        Ok(r) => r,
        Err(e) => return Err(fail(&state, e).await),
    };
    let hash = state.service.current().await.map(|c| c.hash);
    let (status, published) = published(result, hash)?;
    Ok((status, body(&published)?).into_response())
}

/// Who made each version and when, from the log.
async fn provenance(
    state: &AdminState,
    from: RegistryVersion,
    to: RegistryVersion,
) -> HashMap<RegistryVersion, (String, String)> {
    let rows: Result<Vec<(i64, String, String)>, _> = sqlx::query_as(
        // Newest first, so the first event about a version (its making) is the one kept.
        "SELECT registry_version, actor, recorded_at FROM events \
         WHERE registry_version BETWEEN ?1 AND ?2 ORDER BY sequence DESC",
    )
    .bind(i64::try_from(from.0).unwrap_or(i64::MAX))
    .bind(i64::try_from(to.0).unwrap_or(i64::MAX))
    .fetch_all(state.service.store().pool())
    .await;
    match rows {
        Ok(rows) => rows
            .into_iter()
            .map(|(v, a, t)| (RegistryVersion(u64::try_from(v).unwrap_or(0)), (a, t)))
            .collect(),
        Err(e) => {
            tracing::warn!(error = %e, "cannot read version provenance");
            HashMap::new()
        }
    }
}

fn source(record: &VersionRecord) -> (String, Option<RegistryVersion>) {
    match &record.origin {
        VersionOrigin::Published { source } => (source.clone(), None),
        VersionOrigin::RolledBack { to_version } => ("rollback".to_owned(), Some(*to_version)),
        VersionOrigin::Rollout { .. } => ("rollout".to_owned(), None),
    }
}

/// A rollout candidate's place next to stable, for the version views.
fn rollout_of(record: &VersionRecord) -> Option<RolloutPlace> {
    match &record.origin {
        VersionOrigin::Rollout {
            stable_version,
            outcome,
        } => Some(RolloutPlace {
            stable_version: *stable_version,
            outcome: *outcome,
        }),
        _ => None,
    }
}

/// How `record` was made, with who and when from the log (`meta`).
fn made(record: &VersionRecord, meta: Option<&(String, String)>) -> Made {
    Made {
        version: record.version,
        hash: record.hash.clone(),
        source: Some(source(record).0),
        rollout: rollout_of(record),
        actor: meta.map(|m| m.0.clone()),
        recorded_at: meta.map(|m| m.1.clone()),
    }
}

fn view(record: &VersionRecord, meta: Option<&(String, String)>) -> VersionView {
    let (_, rolled_back_to) = source(record);
    let aliases = record
        .document
        .aliases
        .values()
        .map(|a| AliasView {
            name: a.name.to_string(),
            description: Some(a.description.clone()),
            chain: a.chain.iter().map(|e| e.target.to_string()).collect(),
        })
        .collect();
    VersionView {
        made: made(record, meta),
        rolled_back_to,
        default: record.document.default.as_ref().map(|d| d.to_string()),
        aliases,
        document: Some(record.document.clone()),
    }
}

pub async fn current(State(state): State<Arc<AdminState>>) -> Result<Json<Value>, AdminError> {
    let record = state
        .service
        .current()
        .await
        .ok_or(AdminError::NoRegistry)?;
    let meta = provenance(&state, record.version, record.version).await;
    body(&view(&record, meta.get(&record.version)))
}

pub async fn version(
    State(state): State<Arc<AdminState>>,
    AdminPath(v): AdminPath<u64>,
) -> Result<Json<Value>, AdminError> {
    let v = RegistryVersion(v);
    let record = state
        .service
        .version(v)
        .await
        .ok_or(AdminError::UnknownVersion(v))?;
    let meta = provenance(&state, v, v).await;
    body(&view(&record, meta.get(&v)))
}

pub async fn versions(
    State(state): State<Arc<AdminState>>,
    AdminQuery(page): AdminQuery<Page>,
) -> Result<Json<Value>, AdminError> {
    let limit = page.limit();
    let after = RegistryVersion(page.after()?);
    let records = state.service.versions(after, limit as usize).await;
    let (first, last) = (
        records.first().map_or(RegistryVersion(0), |r| r.version),
        records.last().map_or(RegistryVersion(0), |r| r.version),
    );
    let meta = provenance(&state, first, last).await;
    let versions = records
        .iter()
        .map(|r| VersionSummary {
            made: made(r, meta.get(&r.version)),
            alias_count: Some(r.document.aliases.len() as u64),
        })
        .collect();
    let next_after = (records.len() as u32 == limit).then_some(last);
    body(&VersionsPage {
        versions,
        next_after,
    })
}

#[derive(Deserialize)]
pub struct DiffQuery {
    from: u64,
    to: u64,
}

pub async fn diff(
    State(state): State<Arc<AdminState>>,
    AdminQuery(q): AdminQuery<DiffQuery>,
) -> Result<Json<Value>, AdminError> {
    let (from, to) = (RegistryVersion(q.from), RegistryVersion(q.to));
    let diff = match state.service.diff(from, to).await {
        Ok(d) => d,
        Err(e) => return Err(fail(&state, e).await),
    };
    body(&DiffView { from, to, diff })
}

pub async fn audit(
    State(state): State<Arc<AdminState>>,
    AdminQuery(page): AdminQuery<Page>,
) -> Result<Json<Value>, AdminError> {
    let limit = page.limit();
    let after = page.after()?;
    let events = match state.service.audit(after, limit).await {
        Ok(e) => e,
        Err(e) => return Err(fail(&state, e).await),
    };
    let rows = events
        .iter()
        .map(|e| {
            let (source, to_version, errors) = match &e.event {
                RegistryEvent::RegistryVersionPublished { source, .. } => {
                    (Some(source.clone()), None, None)
                }
                RegistryEvent::RegistryRolledBack { to_version, .. } => {
                    (None, Some(*to_version), None)
                }
                RegistryEvent::RegistryReloadRejected { source, errors } => {
                    (Some(source.clone()), None, Some(errors.clone()))
                }
                RegistryEvent::RolloutStarted { .. }
                | RegistryEvent::RolloutPromoted { .. }
                | RegistryEvent::RolloutAborted { .. } => (Some("rollout".to_owned()), None, None),
            };
            AuditEvent {
                sequence: e.sequence,
                kind: e.event.kind().to_owned(),
                registry_version: e.registry_version,
                hash: e.content_hash.clone(),
                actor: Some(e.actor.clone()),
                recorded_at: Some(e.recorded_at.clone()),
                source,
                to_version,
                errors,
                rollout: rollout_detail(&e.event),
            }
        })
        .collect();
    let next_after =
        (events.len() as u32 == limit).then(|| events.last().map_or(after, |e| e.sequence));
    body(&AuditPage {
        events: rows,
        next_after,
    })
}

/// What an audit row shows of a rollout event: its rule, or the decision with its figures.
fn rollout_detail(event: &RegistryEvent) -> Option<AuditRollout> {
    match event {
        RegistryEvent::RolloutStarted {
            stable_version,
            share,
            cohort,
            judge,
            ..
        } => Some(AuditRollout {
            stable_version: Some(*stable_version),
            share: Some(share.to_string()),
            cohort: Some(cohort.clone()),
            judge: Some(*judge),
            ..AuditRollout::default()
        }),
        RegistryEvent::RolloutPromoted {
            decided_by,
            reason,
            figures,
            ..
        } => Some(AuditRollout {
            outcome: Some("promoted".to_owned()),
            decided_by: Some(decided_by.clone()),
            reason: Some(reason.clone()),
            figures: Some(*figures),
            ..AuditRollout::default()
        }),
        RegistryEvent::RolloutAborted {
            stable_version,
            decided_by,
            reason,
            figures,
            ..
        } => Some(AuditRollout {
            outcome: Some("aborted".to_owned()),
            stable_version: Some(*stable_version),
            decided_by: Some(decided_by.clone()),
            reason: Some(reason.clone()),
            figures: Some(*figures),
            ..AuditRollout::default()
        }),
        _ => None,
    }
}
