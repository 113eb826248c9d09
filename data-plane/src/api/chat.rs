//! `POST /v1/chat/completions`.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::State;
use axum::http::HeaderValue;
use axum::response::{IntoResponse, Response};
use axum::Json;
use futures_util::StreamExt;

use super::body::JsonBody;
use super::{headers, RouteLog};
use crate::error::ApiError;
use crate::openai::ChatRequest;
use crate::router::{plan, walk};
use crate::server::AppState;
use crate::streaming;

pub async fn completions(
    State(state): State<Arc<AppState>>,
    JsonBody(request): JsonBody<ChatRequest>,
) -> Response {
    let mut log = RouteLog::new(request.model.as_deref().unwrap_or(""));
    let mut response = serve(&state, request, &mut log)
        .await
        .unwrap_or_else(IntoResponse::into_response);
    response.extensions_mut().insert(log);
    response
}

async fn serve(
    state: &Arc<AppState>,
    request: ChatRequest,
    log: &mut RouteLog,
) -> Result<Response, ApiError> {
    request.validate()?;
    let snapshot = state.snapshots.load();
    let plan = plan(&snapshot, request.model.as_deref())?;
    let started = Instant::now();
    let request = &request;

    if request.stream {
        let outcome = walk(
            state,
            &snapshot,
            &plan,
            request.needs_tools(),
            |provider, target| async move {
                let mut stream = provider.chat_stream(request, &target.model).await?;
                // The first chunk commits this entry: until it arrives the walk may still move on.
                let first = stream.next().await.transpose()?;
                Ok((first, stream))
            },
        )
        .await?;
        log.target = Some(outcome.target.to_string());
        log.upstream = Some(outcome.upstream);
        let (first, rest) = outcome.value;
        return Ok(streaming::respond(
            state,
            &snapshot,
            first,
            rest,
            &outcome.target,
            started,
        ));
    }

    let outcome = walk(
        state,
        &snapshot,
        &plan,
        request.needs_tools(),
        |provider, target| async move { provider.chat(request, &target.model).await },
    )
    .await?;
    let target = &outcome.target;
    log.target = Some(target.to_string());
    log.upstream = Some(outcome.upstream);
    let mut completion = outcome.value;
    completion.model = target.to_string();
    let metrics = &state.metrics;
    metrics.record_success(&snapshot, target, false, Some(outcome.upstream));
    if let Some(usage) = completion.usage {
        metrics.record_tokens(
            &snapshot,
            target,
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
