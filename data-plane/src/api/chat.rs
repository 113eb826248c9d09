//! `POST /v1/chat/completions`: the chat use case's answer written as chat completions.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use axum::Json;

use super::body::JsonBody;
use super::{headers, logged, RouteLog};
use crate::cache::{replay_chunks, Cached, Tenant};
use crate::error::ApiError;
use crate::openai::ChatRequest;
use crate::state::AppState;
use crate::streaming::{self, ChatEvents};
use crate::usecase::chat::{run, Answer};

pub async fn completions(
    State(state): State<Arc<AppState>>,
    tenant: Option<Extension<Tenant>>,
    request_headers: HeaderMap,
    JsonBody(request): JsonBody<ChatRequest>,
) -> Response {
    let mut log = RouteLog::new(request.model.as_deref().unwrap_or(""));
    let tenant = tenant.map(|Extension(t)| t);
    let answer = serve(&state, tenant.as_ref(), &request_headers, request, &mut log).await;
    logged(answer, log)
}

async fn serve(
    state: &AppState,
    tenant: Option<&Tenant>,
    request_headers: &HeaderMap,
    request: ChatRequest,
    log: &mut RouteLog,
) -> Result<Response, ApiError> {
    let answered = run(&state.usecase(), tenant, request_headers, &request, log).await?;
    let response = match answered.answer {
        Answer::Whole(cached) => answer(cached),
        Answer::Replay(cached) => {
            let chunks = replay_chunks(&cached, request.include_usage());
            streaming::replay(chunks, &cached.target, ChatEvents::new(&cached.target))
        }
        Answer::Live(live) => {
            let events = ChatEvents::new(&live.step.name);
            streaming::respond(state.streams(), live, events)
        }
    };
    Ok(with_cache_header(response, answered.cache))
}

fn answer(cached: Cached) -> Response {
    let mut response = Json(cached.completion).into_response();
    headers::set_resolved(response.headers_mut(), &cached.target);
    response
}

pub(super) fn with_cache_header(mut response: Response, value: &'static str) -> Response {
    response
        .headers_mut()
        .insert(headers::CACHE, HeaderValue::from_static(value));
    response
}
