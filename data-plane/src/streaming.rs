//! Server-sent event responses for `stream: true`.
//!
//! The response starts only once the upstream produced its first chunk (the router waits for
//! it), so failures before that are real HTTP errors and can fall back along the chain. After
//! that nothing waits: a chunk is written as soon as it arrives, together with every chunk
//! already behind it (one write per batch of ready events, up to 64 KiB, never held back for
//! one still to come), a `: keep-alive` comment fills long silences, and a failure becomes an
//! in-band error event. What the events look like is an [`Encoder`]'s business:
//! [`ChatEvents`] writes chat completion chunks ending in `data: [DONE]`; the Responses API has
//! its own (`api::responses`). When the client goes away the body is dropped, which drops
//! the upstream response and closes that connection: the upstream call is cancelled.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::Response;
use futures_util::{FutureExt, Stream, StreamExt};

use crate::error::ApiError;
use crate::headers;
use crate::openai::ChatChunk;
use crate::providers::ChunkStream;
use crate::snapshot::Step;

const DONE: &[u8] = b"data: [DONE]\n\n";
const KEEP_ALIVE: &[u8] = b": keep-alive\n\n";

/// How one API writes a stream of chat chunks as server-sent events.
pub trait Encoder: Send + 'static {
    /// Appends the events for one upstream chunk.
    fn chunk(&mut self, chunk: ChatChunk, out: &mut Vec<u8>);
    /// Appends the in-band error that ends a stream already under way.
    fn fail(&mut self, error: &ApiError, out: &mut Vec<u8>);
    /// Appends what ends a stream that finished cleanly.
    fn finish(&mut self, out: &mut Vec<u8>);
}

/// `/v1/chat/completions`: each chunk as `data: <json>` with our model, `[DONE]` at the end,
/// an error as `data: {"error": …}` before it.
pub struct ChatEvents {
    model: String,
}

impl ChatEvents {
    pub fn new(model: impl Into<String>) -> Self {
        Self {
            model: model.into(),
        }
    }
}

impl Encoder for ChatEvents {
    fn chunk(&mut self, chunk: ChatChunk, out: &mut Vec<u8>) {
        push_chunk_event(out, chunk, &self.model);
    }

    fn fail(&mut self, error: &ApiError, out: &mut Vec<u8>) {
        out.extend_from_slice(&event(error.body().to_string().as_bytes()));
        out.extend_from_slice(DONE);
    }

    fn finish(&mut self, out: &mut Vec<u8>) {
        out.extend_from_slice(DONE);
    }
}

/// A stream an entry of the chain committed to: its first chunk (already received) and the rest.
pub struct Live {
    /// The entry that answered (its name and its metric series).
    pub step: Arc<Step>,
    pub first: Option<ChatChunk>,
    pub rest: ChunkStream,
    /// When the request started, for the time to first token.
    pub started: Instant,
}

/// What writing a stream needs: how long a silence lasts before a keep-alive comment fills it.
#[derive(Debug, Clone, Copy)]
pub struct StreamContext {
    pub keep_alive: Duration,
}

/// Answers with an SSE response: the first chunk and then the rest as it comes.
pub fn respond(context: StreamContext, live: Live, encoder: impl Encoder) -> Response {
    let Live {
        step,
        first,
        rest,
        started,
    } = live;
    step.metrics.ttft(started.elapsed());
    let mut response = Response::new(Body::empty());
    *response.status_mut() = StatusCode::OK;
    sse_headers(&mut response, &step.name);
    *response.body_mut() = Body::from_stream(events(context, step, first, rest, encoder));
    // nginx and similar proxies buffer responses unless told not to.
    response
        .headers_mut()
        .insert("x-accel-buffering", HeaderValue::from_static("no"));
    response
}

/// Answers with a finished list of chunks (a cached answer replayed as a stream), written as
/// one body: every event is ready, so there is nothing to gain from separate writes.
pub fn replay(chunks: Vec<ChatChunk>, target: &str, mut encoder: impl Encoder) -> Response {
    let mut events = Vec::new();
    for chunk in chunks {
        encoder.chunk(chunk, &mut events);
    }
    encoder.finish(&mut events);
    let mut response = Response::new(Body::from(events));
    sse_headers(&mut response, target);
    response
}

fn sse_headers(response: &mut Response, target: &str) {
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers::set_resolved(h, target);
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
    context: StreamContext,
    step: Arc<Step>,
    first: Option<ChatChunk>,
    mut rest: ChunkStream,
    mut encoder: impl Encoder,
) -> impl Stream<Item = Result<Bytes, Infallible>> + Send {
    let keep_alive = context.keep_alive;
    async_stream::stream! {
        let mut usage = None;
        let mut next = first.map(Ok);
        // Whether the stream's last event is written.
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
                        encoder.chunk(chunk, &mut batch);
                    }
                    Err(e) => {
                        tracing::warn!(target = %step.name, error = %e, "stream failed after the first chunk");
                        step.metrics.error(e.code());
                        encoder.fail(&ApiError::upstream(&step.name, e), &mut batch);
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
                        encoder.finish(&mut batch);
                        ended = true;
                        break;
                    }
                    None => break,
                }
            }
            yield Ok(Bytes::from(batch));
            if ended {
                break;
            }
        }
        if !ended {
            let mut tail = Vec::new();
            encoder.finish(&mut tail);
            yield Ok(Bytes::from(tail));
        }
        if let Some(u) = usage {
            step.metrics.tokens(u.prompt_tokens, u.completion_tokens);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::Metrics;
    use crate::openai::chat::Delta;
    use crate::providers::{Providers, UpstreamError};
    use crate::snapshot::Routes;
    use mana_llm_shared::{Registry, RegistryVersion, Target};

    const CONTEXT: StreamContext = StreamContext {
        keep_alive: Duration::from_secs(15),
    };

    /// The step `echo/x` answered on, with series of its own.
    fn step() -> Arc<Step> {
        let registry = Registry::parse(
            "aliases:\n  mana/a: {chain: [echo/x]}\n",
            "t",
            RegistryVersion(1),
        )
        .unwrap();
        let metrics = Arc::new(Metrics::new().unwrap());
        let providers = Providers::empty();
        let routes = Routes::derive(&registry, &providers, &metrics);
        routes.direct(Target::parse("echo/x"), &providers)[0].clone()
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
        let encoder = ChatEvents::new("echo/x");
        let stream = events(CONTEXT, step(), Some(first), rest, encoder);
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
        let mut stream = Box::pin(events(
            CONTEXT,
            step(),
            Some(piece("a")),
            rest,
            ChatEvents::new("echo/x"),
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
