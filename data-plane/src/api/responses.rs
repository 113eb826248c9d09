//! `POST /v1/responses`, stateless: translated into a chat request, answered by the chat use
//! case (aliases, fallback, cache, metrics: exactly as `/v1/chat/completions`), translated back.
//! Every other `/v1/responses/…` route reads or changes a stored response: a 400, since the
//! gateway stores none.

use std::sync::Arc;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};

use super::body::JsonBody;
use super::chat::with_cache_header;
use super::{headers, logged, RouteLog};
use crate::cache::{replay_chunks, Tenant};
use crate::error::ApiError;
use crate::openai::responses::{Echo, ResponseEvents, ResponseObject};
use crate::openai::{ChatChunk, ResponsesRequest};
use crate::state::AppState;
use crate::streaming::{self, Encoder};
use crate::usecase::chat::{run, Answer};

pub async fn create(
    State(state): State<Arc<AppState>>,
    tenant: Option<Extension<Tenant>>,
    request_headers: HeaderMap,
    JsonBody(request): JsonBody<ResponsesRequest>,
) -> Response {
    let mut log = RouteLog::new(request.model.as_deref().unwrap_or(""));
    let tenant = tenant.map(|Extension(t)| t);
    let answer = serve(&state, tenant.as_ref(), &request_headers, request, &mut log).await;
    logged(answer, log)
}

/// `GET`, `DELETE` `/v1/responses/{id}` and the rest: they need stored responses.
pub async fn stored() -> ApiError {
    ApiError::InvalidRequest {
        message: "mana-llm's /v1/responses is stateless: responses are not stored, so they cannot be retrieved, listed, cancelled or deleted".to_owned(),
        param: Some("response_id".to_owned()),
        code: "unsupported_stateful_feature",
    }
}

async fn serve(
    state: &Arc<AppState>,
    tenant: Option<&Tenant>,
    request_headers: &HeaderMap,
    request: ResponsesRequest,
    log: &mut RouteLog,
) -> Result<Response, ApiError> {
    let chat = request.to_chat()?;
    let echo = request.echo();
    let answered = run(&state.usecase(), tenant, request_headers, &chat, log).await?;
    let response = match answered.answer {
        Answer::Whole(cached) => {
            let body = ResponseObject::from_completion(&cached.completion, echo, &cached.target);
            let mut response = Json(body).into_response();
            headers::set_resolved(response.headers_mut(), &cached.target);
            response
        }
        Answer::Replay(cached) => {
            let chunks = replay_chunks(&cached, true);
            streaming::replay(chunks, &cached.target, Events::new(echo, &cached.target))
        }
        Answer::Live(live) => {
            let events = Events::new(echo, &live.step.name);
            streaming::respond(state.streams(), live, events)
        }
    };
    Ok(with_cache_header(response, answered.cache))
}

/// The Responses event writer behind the streaming module's encoder seam.
struct Events(ResponseEvents);

impl Events {
    fn new(echo: Echo, model: &str) -> Self {
        Self(ResponseEvents::new(ResponseObject::in_progress(
            echo, model,
        )))
    }
}

impl Encoder for Events {
    fn chunk(&mut self, chunk: ChatChunk, out: &mut Vec<u8>) {
        self.0.chunk(&chunk, out);
    }

    fn fail(&mut self, error: &ApiError, out: &mut Vec<u8>) {
        // The client-facing message (internal details stay in the log).
        let body = error.body();
        let message = body["error"]["message"].as_str().unwrap_or("stream failed");
        self.0.fail(error.code(), message, out);
    }

    fn finish(&mut self, out: &mut Vec<u8>) {
        self.0.finish(out);
    }
}

#[cfg(test)]
mod tests;
