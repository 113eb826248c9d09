//! Server-sent event responses for `stream: true`.
//!
//! The response starts only once the upstream produced its first chunk (the router waits for
//! it), so failures before that are real HTTP errors and can fall back along the chain. After that every chunk is
//! written as its own `data: <json>\n\n` event the moment it arrives, a `: keep-alive` comment
//! fills long silences, a failure becomes an in-band `data: {"error": …}` event, and the stream
//! always ends with `data: [DONE]`. When the client goes away the body is dropped, which drops
//! the upstream response and closes that connection: the upstream call is cancelled.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Instant;

use axum::body::{Body, Bytes};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::Response;
use futures_util::{Stream, StreamExt};
use mana_llm_shared::Target;

use crate::api::headers;
use crate::error::ApiError;
use crate::openai::ChatChunk;
use crate::providers::ChunkStream;
use crate::server::AppState;
use crate::snapshot::Snapshot;

const DONE: &[u8] = b"data: [DONE]\n\n";
const KEEP_ALIVE: &[u8] = b": keep-alive\n\n";

/// Answers with an SSE response: `first` (already received) and then the rest as it comes.
pub fn respond(
    state: &Arc<AppState>,
    snapshot: &Arc<Snapshot>,
    first: Option<ChatChunk>,
    rest: ChunkStream,
    target: &Target,
    started: Instant,
) -> Response {
    let metrics = &state.metrics;
    metrics.record_ttft(snapshot, target, started.elapsed());
    metrics.record_success(snapshot, target, true, None);

    let body = Body::from_stream(events(
        state.clone(),
        snapshot.clone(),
        first,
        rest,
        target.clone(),
    ));
    let mut response = Response::new(body);
    *response.status_mut() = StatusCode::OK;
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    // nginx and similar proxies buffer responses unless told not to.
    h.insert("x-accel-buffering", HeaderValue::from_static("no"));
    if let Ok(v) = HeaderValue::from_str(&target.to_string()) {
        h.insert(headers::RESOLVED, v);
    }
    response
}

/// Answers with a finished list of chunks (a cached answer replayed as a stream).
pub fn replay(chunks: Vec<ChatChunk>, target: &str) -> Response {
    let model = target.to_owned();
    let events = chunks
        .into_iter()
        .filter_map(move |chunk| chunk_event(chunk, &model))
        .chain(std::iter::once(Bytes::from_static(DONE)))
        .map(Ok::<_, Infallible>);
    let mut response = Response::new(Body::from_stream(futures_util::stream::iter(events)));
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    if let Ok(v) = HeaderValue::from_str(target) {
        h.insert(headers::RESOLVED, v);
    }
    response
}

fn event(json: &[u8]) -> Bytes {
    let mut out = Vec::with_capacity(json.len() + 8);
    out.extend_from_slice(b"data: ");
    out.extend_from_slice(json);
    out.extend_from_slice(b"\n\n");
    Bytes::from(out)
}

/// `data: <chunk as JSON with our model>\n\n`, encoded straight into the event buffer.
pub fn chunk_event(mut chunk: ChatChunk, model: &str) -> Option<Bytes> {
    chunk.model.clear();
    chunk.model.push_str(model);
    let mut out = Vec::with_capacity(256);
    out.extend_from_slice(b"data: ");
    match serde_json::to_writer(&mut out, &chunk) {
        Ok(()) => {
            out.extend_from_slice(b"\n\n");
            Some(Bytes::from(out))
        }
        Err(e) => {
            tracing::error!(error = %e, "could not encode a stream chunk; skipped");
            None
        }
    }
}

fn events(
    state: Arc<AppState>,
    snapshot: Arc<Snapshot>,
    first: Option<ChatChunk>,
    mut rest: ChunkStream,
    target: Target,
) -> impl Stream<Item = Result<Bytes, Infallible>> + Send {
    let keep_alive = state.config.keep_alive;
    let model = target.to_string();
    async_stream::stream! {
        let mut usage = None;
        if let Some(chunk) = first {
            usage = chunk.usage;
            if let Some(bytes) = chunk_event(chunk, &model) {
                yield Ok(bytes);
            }
        }
        loop {
            match tokio::time::timeout(keep_alive, rest.next()).await {
                Err(_) => yield Ok(Bytes::from_static(KEEP_ALIVE)),
                Ok(None) => break,
                Ok(Some(Ok(chunk))) => {
                    if chunk.usage.is_some() {
                        usage = chunk.usage;
                    }
                    if let Some(bytes) = chunk_event(chunk, &model) {
                        yield Ok(bytes);
                    }
                }
                Ok(Some(Err(e))) => {
                    tracing::warn!(target = %model, error = %e, "stream failed after the first chunk");
                    state.metrics.record_error(&snapshot, &target, e.code());
                    let body = ApiError::upstream(&target, e).body();
                    yield Ok(event(body.to_string().as_bytes()));
                    break;
                }
            }
        }
        yield Ok(Bytes::from_static(DONE));
        if let Some(u) = usage {
            state.metrics.record_tokens(&snapshot, &target, u.prompt_tokens, u.completion_tokens);
        }
    }
}
