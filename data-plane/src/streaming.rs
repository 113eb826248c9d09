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
use futures_util::{FutureExt, Stream, StreamExt};
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

/// Answers with a finished list of chunks (a cached answer replayed as a stream), written as
/// one body: every event is ready, so there is nothing to gain from separate writes.
pub fn replay(chunks: Vec<ChatChunk>, target: &str) -> Response {
    let mut events = Vec::new();
    for chunk in chunks {
        push_chunk_event(&mut events, chunk, target);
    }
    events.extend_from_slice(DONE);
    let mut response = Response::new(Body::from(events));
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

/// `data: <chunk as JSON with our model>\n\n` as one event of its own.
pub fn chunk_event(chunk: ChatChunk, model: &str) -> Option<Bytes> {
    let mut out = Vec::with_capacity(256);
    push_chunk_event(&mut out, chunk, model).then(|| Bytes::from(out))
}

/// Appends `data: <chunk as JSON with our model>\n\n` to `out`, encoded in place; on the
/// (theoretical) encoding failure the chunk is skipped and `out` left as it was.
fn push_chunk_event(out: &mut Vec<u8>, mut chunk: ChatChunk, model: &str) -> bool {
    chunk.model.clear();
    chunk.model.push_str(model);
    chunk.fill_openai_shape();
    let start = out.len();
    out.extend_from_slice(b"data: ");
    match serde_json::to_writer(&mut *out, &chunk) {
        Ok(()) => {
            out.extend_from_slice(b"\n\n");
            true
        }
        Err(e) => {
            out.truncate(start);
            tracing::error!(error = %e, "could not encode a stream chunk; skipped");
            false
        }
    }
}

/// Events that are ready together are written together, up to this many bytes per write.
const COALESCE_LIMIT: usize = 64 * 1024;

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
        let mut next = first.map(Ok);
        let mut ended = false;
        loop {
            let item = match next.take() {
                Some(item) => Some(item),
                None => match tokio::time::timeout(keep_alive, rest.next()).await {
                    Err(_) => {
                        yield Ok(Bytes::from_static(KEEP_ALIVE));
                        continue;
                    }
                    Ok(item) => item,
                },
            };
            let Some(item) = item else { break };
            // This event, and every one that is already here behind it: one write instead of
            // one per event. Nothing waits: a pending upstream ends the batch.
            let mut batch = Vec::with_capacity(1024);
            let mut item = Some(item);
            while let Some(current) = item.take() {
                match current {
                    Ok(chunk) => {
                        if chunk.usage.is_some() {
                            usage = chunk.usage.clone();
                        }
                        push_chunk_event(&mut batch, chunk, &model);
                    }
                    Err(e) => {
                        tracing::warn!(target = %model, error = %e, "stream failed after the first chunk");
                        state.metrics.record_error(&snapshot, &target, e.code());
                        let body = ApiError::upstream(&target, e).body();
                        batch.extend_from_slice(&event(body.to_string().as_bytes()));
                        ended = true;
                        break;
                    }
                }
                if batch.len() >= COALESCE_LIMIT {
                    break;
                }
                // Only what is already here: an upstream that has nothing ready ends the batch.
                match rest.next().now_or_never() {
                    Some(Some(ready)) => item = Some(ready),
                    Some(None) => {
                        ended = true;
                        break;
                    }
                    None => break,
                }
            }
            if ended {
                batch.extend_from_slice(DONE);
            }
            yield Ok(Bytes::from(batch));
            if ended {
                break;
            }
        }
        if !ended {
            yield Ok(Bytes::from_static(DONE));
        }
        if let Some(u) = usage {
            state.metrics.record_tokens(&snapshot, &target, u.prompt_tokens, u.completion_tokens);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{GatewayConfig, Source};
    use crate::openai::chat::Delta;
    use crate::providers::{Providers, UpstreamError};
    use crate::server::App;
    use mana_llm_shared::{Registry, RegistryVersion};

    fn app() -> App {
        let source = Source::default();
        let config = GatewayConfig::from_source(&source).unwrap();
        let registry = Registry::parse(
            "aliases:\n  mana/a: {chain: [echo/x]}\n",
            "t",
            RegistryVersion(1),
        )
        .unwrap();
        App::with_providers(config, Providers::empty(), registry, source).unwrap()
    }

    fn piece(text: &str) -> ChatChunk {
        let delta = Delta {
            content: Some(text.to_owned()),
            ..Delta::default()
        };
        ChatChunk::with_delta("c1", 1, delta, None)
    }

    /// Every frame `events` writes, as text.
    async fn frames(first: ChatChunk, rest: ChunkStream) -> Vec<String> {
        let app = app();
        let state = app.state().clone();
        let snapshot = state.snapshots.load();
        let target = Target::parse("echo/x");
        let stream = events(state, snapshot, Some(first), rest, target);
        stream
            .map(|frame| match frame {
                Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
                Err(never) => match never {},
            })
            .collect()
            .await
    }

    #[tokio::test]
    async fn events_that_are_ready_together_go_out_as_one_write() {
        let rest: ChunkStream = Box::pin(futures_util::stream::iter(vec![
            Ok(piece("b")),
            Ok(piece("c")),
        ]));
        let out = frames(piece("a"), rest).await;
        assert_eq!(out.len(), 1, "{out:?}");
        let events: Vec<&str> = out[0].split("\n\n").filter(|e| !e.is_empty()).collect();
        assert_eq!(events.len(), 4, "{events:?}");
        assert!(events[0].contains(r#""content":"a""#) && events[0].contains("echo/x"));
        assert!(events[2].contains(r#""content":"c""#));
        assert_eq!(events[3], "data: [DONE]");
    }

    #[tokio::test]
    async fn a_failure_behind_ready_events_ends_the_same_write() {
        let rest: ChunkStream = Box::pin(futures_util::stream::iter(vec![
            Ok(piece("b")),
            Err(UpstreamError::Protocol("stream broke".to_owned())),
            Ok(piece("never")),
        ]));
        let out = frames(piece("a"), rest).await;
        assert_eq!(out.len(), 1, "{out:?}");
        assert!(out[0].contains("stream broke"));
        assert!(!out[0].contains("never"));
        assert!(out[0].ends_with("data: [DONE]\n\n"));
    }

    #[tokio::test]
    async fn nothing_waits_for_an_event_that_has_not_arrived() {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        tx.send(Ok(piece("b"))).unwrap();
        let rest: ChunkStream = Box::pin(tokio_stream::wrappers::UnboundedReceiverStream::new(rx));
        let app = app();
        let state = app.state().clone();
        let snapshot = state.snapshots.load();
        let mut stream = Box::pin(events(
            state,
            snapshot,
            Some(piece("a")),
            rest,
            Target::parse("echo/x"),
        ));
        // "a" and the already-queued "b" come at once; the stream does not wait for "c".
        let first = stream.next().await.unwrap().unwrap();
        let first = String::from_utf8_lossy(&first).into_owned();
        assert!(first.contains(r#""content":"a""#) && first.contains(r#""content":"b""#));
        assert!(!first.contains("[DONE]"));
        tx.send(Ok(piece("c"))).unwrap();
        drop(tx);
        let second = stream.next().await.unwrap().unwrap();
        let second = String::from_utf8_lossy(&second).into_owned();
        assert!(second.contains(r#""content":"c""#) && second.ends_with("data: [DONE]\n\n"));
        assert!(stream.next().await.is_none());
    }
}
