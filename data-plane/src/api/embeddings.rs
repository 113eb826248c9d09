//! `POST /v1/embeddings`: the embeddings use case's answer as OpenAI's embeddings list.

use std::sync::Arc;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::Json;

use super::body::JsonBody;
use super::{headers, logged, RouteLog};
use crate::openai::EmbeddingsRequest;
use crate::state::AppState;
use crate::usecase::embeddings::run;

pub async fn create(
    State(state): State<Arc<AppState>>,
    JsonBody(request): JsonBody<EmbeddingsRequest>,
) -> Response {
    let mut log = RouteLog::new(request.model.as_deref().unwrap_or(""));
    let answer = run(&state.usecase(), &request, &mut log)
        .await
        .map(|embedded| {
            let name = &embedded.step.name;
            let body = embedded
                .embeddings
                .to_response(name, request.wants_base64());
            let mut response = Json(body).into_response();
            headers::set_resolved(response.headers_mut(), name);
            response
        });
    logged(answer, log)
}
