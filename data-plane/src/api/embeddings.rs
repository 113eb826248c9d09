//! `POST /v1/embeddings`.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::State;
use axum::http::HeaderValue;
use axum::response::{IntoResponse, Response};
use axum::Json;

use super::body::JsonBody;
use super::resolve::{provider_label, resolve};
use super::{headers, RouteLog};
use crate::error::ApiError;
use crate::openai::EmbeddingsRequest;
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
    let resolved = resolve(&state.providers, request.model.as_deref())?;
    let target = &resolved.target;
    log.target = Some(target.to_string());
    let provider_id = provider_label(&state.providers, target.provider.as_str());
    let started = Instant::now();
    let embeddings = resolved
        .provider
        .embeddings(&request, &target.model)
        .await
        .map_err(|e| {
            state
                .metrics
                .record_error(&provider_id, &target.model, e.code());
            ApiError::upstream(target, e)
        })?;
    let upstream = started.elapsed();
    log.upstream = Some(upstream);
    if embeddings.vectors.len() != request.input.len() {
        let e = crate::providers::UpstreamError::Protocol(format!(
            "asked for {} embeddings, got {}",
            request.input.len(),
            embeddings.vectors.len()
        ));
        state
            .metrics
            .record_error(&provider_id, &target.model, e.code());
        return Err(ApiError::upstream(target, e));
    }
    state
        .metrics
        .record_success(&provider_id, &target.model, false, Some(upstream));
    state
        .metrics
        .record_tokens(&provider_id, &target.model, embeddings.prompt_tokens, 0);
    let body = embeddings.to_response(&target.to_string(), request.wants_base64());
    let mut response = Json(body).into_response();
    if let Ok(v) = HeaderValue::from_str(&target.to_string()) {
        response.headers_mut().insert(headers::RESOLVED, v);
    }
    Ok(response)
}
