//! `POST /v1/chat/completions`.

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
use crate::openai::ChatRequest;
use crate::providers::UpstreamError;
use crate::server::AppState;
use crate::streaming;

pub async fn completions(
    State(state): State<Arc<AppState>>,
    JsonBody(request): JsonBody<ChatRequest>,
) -> Response {
    let mut log = RouteLog::new(request.model.as_deref().unwrap_or(""));
    let result = serve(&state, request, &mut log).await;
    let mut response = result.unwrap_or_else(IntoResponse::into_response);
    response.extensions_mut().insert(log);
    response
}

async fn serve(
    state: &Arc<AppState>,
    request: ChatRequest,
    log: &mut RouteLog,
) -> Result<Response, ApiError> {
    request.validate()?;
    let resolved = resolve(&state.providers, request.model.as_deref())?;
    let target = &resolved.target;
    log.target = Some(target.to_string());
    let provider_id = provider_label(&state.providers, target.provider.as_str());
    let fail = |e: UpstreamError| {
        state
            .metrics
            .record_error(&provider_id, &target.model, e.code());
        ApiError::upstream(target, e)
    };
    if request.has_tools() && !resolved.provider.supports_tools(&target.model) {
        return Err(fail(UpstreamError::Capability(format!(
            "{target} does not support tool calling; choose a tool-capable model"
        ))));
    }

    let started = Instant::now();
    if request.stream {
        let stream = resolved
            .provider
            .chat_stream(&request, &target.model)
            .await
            .map_err(fail)?;
        let response =
            streaming::respond(state, stream, target, provider_id.clone(), started).await;
        log.upstream = Some(started.elapsed());
        return response.map_err(fail);
    }

    let mut completion = resolved
        .provider
        .chat(&request, &target.model)
        .await
        .map_err(fail)?;
    let upstream = started.elapsed();
    log.upstream = Some(upstream);
    completion.model = target.to_string();
    let metrics = &state.metrics;
    metrics.record_success(&provider_id, &target.model, false, Some(upstream));
    if let Some(usage) = completion.usage {
        metrics.record_tokens(
            &provider_id,
            &target.model,
            usage.prompt_tokens,
            usage.completion_tokens,
        );
    }
    let mut response = Json(completion).into_response();
    if let Ok(v) = HeaderValue::from_str(&target.to_string()) {
        response.headers_mut().insert(headers::RESOLVED, v);
    }
    Ok(response)
}
