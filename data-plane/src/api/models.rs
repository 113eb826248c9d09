//! `GET /v1/models` and `GET /v1/models/{id}` (ids contain `/`).

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::Json;
use futures_util::future::join_all;
use mana_llm_shared::{ModelRef, Target};

use crate::error::ApiError;
use crate::openai::{ModelInfo, ModelList};
use crate::providers::{Lookup, Provider};
use crate::snapshot::Snapshot;
use crate::state::AppState;

/// A listing never waits longer than this on one provider.
const LIST_DEADLINE: Duration = Duration::from_secs(10);

async fn models_of(provider: &Arc<dyn Provider>) -> Result<Vec<ModelInfo>, ApiError> {
    let target = format!("{}/*", provider.id());
    match tokio::time::timeout(LIST_DEADLINE, provider.list_models()).await {
        Ok(Ok(models)) => Ok(models),
        Ok(Err(e)) => Err(ApiError::upstream(target, e)),
        Err(_) => Err(ApiError::upstream(
            target,
            crate::providers::UpstreamError::Timeout("model list took too long".to_owned()),
        )),
    }
}

fn alias_models(snapshot: &Snapshot) -> impl Iterator<Item = ModelInfo> + '_ {
    snapshot
        .registry
        .aliases()
        .map(|a| ModelInfo::new(a.name.to_string(), 0, "mana-llm"))
}

/// The registry's aliases, then every configured provider's models; a provider that fails is
/// left out and logged.
pub async fn list(State(state): State<Arc<AppState>>) -> Json<ModelList> {
    let snapshot = state.snapshots.load();
    let providers: Vec<_> = snapshot.providers.configured().cloned().collect();
    let results = join_all(providers.iter().map(models_of)).await;
    let mut data: Vec<ModelInfo> = alias_models(&snapshot).collect();
    for (provider, result) in providers.iter().zip(results) {
        match result {
            Ok(models) => data.extend(models),
            Err(e) => {
                tracing::warn!(provider = %provider.id(), error = %e, "model listing failed; left out")
            }
        }
    }
    Json(ModelList::new(data))
}

pub async fn get(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> Result<Json<ModelInfo>, ApiError> {
    let not_found = |message: String| ApiError::NotFound {
        message,
        code: "model_not_found",
    };
    let snapshot = state.snapshots.load();
    let target = match ModelRef::parse(&id) {
        ModelRef::Direct(target) => target,
        ModelRef::Alias(alias) => {
            return alias_models(&snapshot)
                .find(|m| m.id == alias)
                .map(Json)
                .ok_or_else(|| not_found(format!("model '{alias}' not found")))
        }
    };
    let provider = match snapshot.providers.get(&target.provider) {
        Ok(p) => p.clone(),
        Err(Lookup::Unknown) => {
            return Err(not_found(format!(
                "model '{id}' not found: unknown provider '{}'",
                target.provider
            )))
        }
        Err(Lookup::NotConfigured(e)) => {
            return Err(not_found(format!("model '{id}' not found: {e}")))
        }
    };
    let wanted = Target::parse(&id).to_string();
    models_of(&provider)
        .await?
        .into_iter()
        .find(|m| m.id == wanted || m.id == id)
        .map(Json)
        .ok_or_else(|| not_found(format!("model '{id}' not found")))
}
