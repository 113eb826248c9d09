//! `POST /v1/chat/completions`.
//!
//! Deterministic requests go through the response cache: a hit answers from it (replayed as
//! SSE for a streaming request), a miss walks the chain once per worker however many
//! identical requests arrive together. Everything else walks the chain directly.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use axum::Json;
use futures_util::StreamExt;

use super::body::JsonBody;
use super::{headers, RouteLog};
use crate::cache::{
    bypass_header_value, decide, replay_chunks, CacheKey, Cached, Decision, Outcome, Tenant,
};
use crate::error::ApiError;
use crate::openai::{ChatCompletion, ChatRequest};
use crate::router::{plan, walk, Plan};
use crate::server::AppState;
use crate::snapshot::Snapshot;
use crate::streaming::{self, ChatEvents, Live};

pub async fn completions(
    State(state): State<Arc<AppState>>,
    tenant: Option<Extension<Tenant>>,
    request_headers: HeaderMap,
    JsonBody(request): JsonBody<ChatRequest>,
) -> Response {
    let mut log = RouteLog::new(request.model.as_deref().unwrap_or(""));
    let tenant = tenant.map(|Extension(t)| t);
    let mut response = serve(&state, tenant.as_ref(), &request_headers, request, &mut log)
        .await
        .unwrap_or_else(IntoResponse::into_response);
    response.extensions_mut().insert(log);
    response
}

async fn serve(
    state: &Arc<AppState>,
    tenant: Option<&Tenant>,
    request_headers: &HeaderMap,
    request: ChatRequest,
    log: &mut RouteLog,
) -> Result<Response, ApiError> {
    let answered = run(state, tenant, request_headers, &request, log).await?;
    let response = match answered.answer {
        Answer::Whole(cached) => answer(cached),
        Answer::Replay(cached) => {
            let chunks = replay_chunks(&cached, request.include_usage());
            streaming::replay(chunks, &cached.target, ChatEvents::new(&cached.target))
        }
        Answer::Live(live) => {
            let model = live.target.to_string();
            streaming::respond(state, live, ChatEvents::new(model))
        }
    };
    Ok(with_cache_header(response, answered.cache))
}

/// What the chat use case produced, before it is written in one API's wire format (chat
/// completions here, the Responses API in `responses`).
pub(super) enum Answer {
    /// A whole completion, walked or from the cache.
    Whole(Cached),
    /// A cached completion for a streaming request, to be replayed as a stream.
    Replay(Cached),
    /// A live upstream stream.
    Live(Live),
}

pub(super) struct Answered {
    pub answer: Answer,
    /// The `X-Mana-LLM-Cache` value.
    pub cache: &'static str,
}

/// The chat use case: cache decision → walk → answer, recorded once. Deterministic requests go
/// through the cache; a streamed miss streams live and is not stored.
pub(super) async fn run(
    state: &Arc<AppState>,
    tenant: Option<&Tenant>,
    request_headers: &HeaderMap,
    request: &ChatRequest,
    log: &mut RouteLog,
) -> Result<Answered, ApiError> {
    request.validate()?;
    let snapshot = state.snapshots.load();
    let plan = plan(&snapshot, request.model.as_deref())?;
    let (key, read) = match decide(
        state.cache.config(),
        request,
        request_headers,
        tenant,
        || plan.entries.iter().map(|e| e.target.to_string()).collect(),
        &state.names,
    ) {
        Decision::Bypass(reason) => {
            state.cache.record_bypass(reason);
            let answer = if request.stream {
                Answer::Live(stream_live(state, &snapshot, &plan, request, log).await?)
            } else {
                Answer::Whole(respond_json(state, &snapshot, &plan, request, log).await?)
            };
            return Ok(Answered {
                answer,
                cache: bypass_header_value(),
            });
        }
        Decision::Use { key, read } => (key, read),
    };

    if request.stream {
        // A hit is replayed; a miss streams live (and is not stored: only whole answers are).
        if read {
            if let Some((cached, tier)) = state.cache.get(&key).await {
                state
                    .metrics
                    .cache_requests_total
                    .with_label_values(&["hit", tier.label()])
                    .inc();
                log.target = Some(cached.target.clone());
                return Ok(Answered {
                    answer: Answer::Replay(cached),
                    cache: "hit",
                });
            }
        }
        state
            .metrics
            .cache_requests_total
            .with_label_values(&["miss", "none"])
            .inc();
        let live = stream_live(state, &snapshot, &plan, request, log).await?;
        return Ok(Answered {
            answer: Answer::Live(live),
            cache: "miss",
        });
    }

    let (cached, outcome) = cached_answer(state, &snapshot, &plan, request, &key, read).await?;
    log.target = Some(cached.target.clone());
    Ok(Answered {
        answer: Answer::Whole(cached),
        cache: outcome.header_value(),
    })
}

async fn cached_answer(
    state: &AppState,
    snapshot: &Snapshot,
    plan: &Plan,
    request: &ChatRequest,
    key: &CacheKey,
    read: bool,
) -> Result<(Cached, Outcome), ApiError> {
    // Identical requests may share this fetch, so its route details are not any one
    // request's: the caller logs the target from the cached answer.
    state
        .cache
        .lookup(key, read, || async {
            respond_json(state, snapshot, plan, request, &mut RouteLog::default()).await
        })
        .await
}

/// Walks the chain for a whole answer and records it.
async fn respond_json(
    state: &AppState,
    snapshot: &Snapshot,
    plan: &Plan,
    request: &ChatRequest,
    log: &mut RouteLog,
) -> Result<Cached, ApiError> {
    let outcome = walk(
        state,
        snapshot,
        plan,
        request.needs_tools(),
        |provider, target| async move { provider.chat(request, &target.model).await },
    )
    .await?;
    let target = &outcome.target;
    log.target = Some(target.to_string());
    log.upstream = Some(outcome.upstream);
    log.fallbacks = outcome.attempts.len();
    let mut completion: ChatCompletion = outcome.value;
    completion.model = target.to_string();
    completion.fill_openai_shape();
    let metrics = &state.metrics;
    metrics.record_success(snapshot, target, false, Some(outcome.upstream));
    if let Some(usage) = &completion.usage {
        metrics.record_tokens(
            snapshot,
            target,
            usage.prompt_tokens,
            usage.completion_tokens,
        );
    }
    Ok(Cached {
        target: target.to_string(),
        completion,
    })
}

/// Walks the chain until an entry produces its first chunk: the stream is then committed.
async fn stream_live(
    state: &Arc<AppState>,
    snapshot: &Arc<Snapshot>,
    plan: &Plan,
    request: &ChatRequest,
    log: &mut RouteLog,
) -> Result<Live, ApiError> {
    let started = Instant::now();
    let outcome = walk(
        state,
        snapshot,
        plan,
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
    log.fallbacks = outcome.attempts.len();
    let (first, rest) = outcome.value;
    Ok(Live {
        snapshot: snapshot.clone(),
        target: outcome.target,
        first,
        rest,
        started,
    })
}

fn answer(cached: Cached) -> Response {
    let mut response = Json(cached.completion).into_response();
    if let Ok(v) = HeaderValue::from_str(&cached.target) {
        response.headers_mut().insert(headers::RESOLVED, v);
    }
    response
}

pub(super) fn with_cache_header(mut response: Response, value: &'static str) -> Response {
    response
        .headers_mut()
        .insert(headers::CACHE, HeaderValue::from_static(value));
    response
}
