//! `POST /v1/embeddings` (aliases and fallback work here too).

use std::sync::Arc;

use axum::extract::State;
use axum::http::HeaderValue;
use axum::response::{IntoResponse, Response};
use axum::Json;

use super::body::JsonBody;
use super::{headers, RouteLog};
use crate::error::ApiError;
use crate::openai::EmbeddingsRequest;
use crate::providers::UpstreamError;
use crate::router::{plan, walk};
use crate::server::AppState;

pub async fn create(
    State(state): State<Arc<AppState>>,
    JsonBody(request): JsonBody<EmbeddingsRequest>,
) -> Response {
    let mut log = RouteLog::new(request.model.as_deref().unwrap_or(""));
    let mut response = serve(&state, request, &mut log)
        .await
        .unwrap_or_else(IntoResponse::into_response);
    response.extensions_mut().insert(log);
    response
}

async fn serve(
    state: &AppState,
    request: EmbeddingsRequest,
    log: &mut RouteLog,
) -> Result<Response, ApiError> {
    request.validate()?;
    let snapshot = state.snapshots.load();
    let plan = plan(&snapshot, request.model.as_deref())?;
    let request = &request;
    let outcome = walk(
        state,
        &snapshot,
        &plan,
        false,
        |provider, target| async move {
            let embeddings = provider.embeddings(request, &target.model).await?;
            // A provider that drops inputs is broken for this request; another may not be.
            if embeddings.vectors.len() != request.input.len() {
                return Err(UpstreamError::Protocol(format!(
                    "asked for {} embeddings, got {}",
                    request.input.len(),
                    embeddings.vectors.len()
                )));
            }
            Ok(embeddings)
        },
    )
    .await?;
    let target = &outcome.target;
    log.target = Some(target.to_string());
    log.upstream = Some(outcome.upstream);
    log.fallbacks = outcome.attempts.len();
    state
        .metrics
        .record_success(&snapshot, target, false, Some(outcome.upstream));
    state
        .metrics
        .record_tokens(&snapshot, target, outcome.value.prompt_tokens, 0);
    let body = outcome
        .value
        .to_response(&target.to_string(), request.wants_base64());
    let mut response = Json(body).into_response();
    if let Ok(v) = HeaderValue::from_str(&target.to_string()) {
        response.headers_mut().insert(headers::RESOLVED, v);
    }
    Ok(response)
}
