//! Chat: deterministic requests go through the response cache (a hit answers from it,
//! replayed as a stream for a streaming request; a miss walks the chain once per worker
//! however many identical requests arrive together); everything else walks the chain.

use std::sync::Arc;
use std::time::Instant;

use axum::http::HeaderMap;
use futures_util::StreamExt;

use super::{record, Context, Landed, RouteLog};
use crate::cache::{bypass_header_value, decide, CacheKey, Cached, Decision, Tenant};
use crate::error::ApiError;
use crate::openai::{ChatCompletion, ChatRequest};
use crate::router::{walk, Plan};
use crate::snapshot::Snapshot;
use crate::streaming::Live;

/// What the chat use case produced, before it is written in one API's wire format (chat
/// completions, or the Responses API).
pub enum Answer {
    /// A whole completion, walked or from the cache.
    Whole(Cached),
    /// A cached completion for a streaming request, to be replayed as a stream.
    Replay(Cached),
    /// A live upstream stream.
    Live(Live),
}

pub struct Answered {
    pub answer: Answer,
    /// The `X-Mana-LLM-Cache` value.
    pub cache: &'static str,
}

/// Cache decision → walk → answer. A streamed miss streams live and is not stored: only
/// whole answers are.
pub async fn run(
    cx: &Context<'_>,
    tenant: Option<&Tenant>,
    request_headers: &HeaderMap,
    request: &ChatRequest,
    log: &mut RouteLog,
) -> Result<Answered, ApiError> {
    request.validate()?;
    let (snapshot, plan) = cx.plan(request.model.as_deref())?;
    let decision = decide(
        cx.cache.config(),
        request,
        request_headers,
        tenant,
        || plan.steps.iter().map(|s| s.name.clone()).collect(),
        cx.names,
    );
    let (key, read) = match decision {
        Decision::Bypass(reason) => {
            cx.cache.record_bypass(reason);
            let answer = if request.stream {
                Answer::Live(stream_live(cx, &snapshot, &plan, request, log).await?)
            } else {
                Answer::Whole(respond_json(cx, &snapshot, &plan, request, log).await?)
            };
            return Ok(Answered {
                answer,
                cache: bypass_header_value(),
            });
        }
        Decision::Use { key, read } => (key, read),
    };
    if request.stream {
        return replay_or_stream(cx, &snapshot, &plan, request, &key, read, log).await;
    }
    // Identical requests may share this fetch, so its route details are not any one
    // request's: the target is logged from the cached answer.
    let (cached, outcome) = cx
        .cache
        .lookup(&key, read, || async {
            respond_json(cx, &snapshot, &plan, request, &mut RouteLog::default()).await
        })
        .await?;
    log.target = Some(cached.target.clone());
    Ok(Answered {
        answer: Answer::Whole(cached),
        cache: outcome.header_value(),
    })
}

/// A streaming request the cache may answer: a hit is replayed, a miss streams live.
async fn replay_or_stream(
    cx: &Context<'_>,
    snapshot: &Arc<Snapshot>,
    plan: &Plan,
    request: &ChatRequest,
    key: &CacheKey,
    read: bool,
    log: &mut RouteLog,
) -> Result<Answered, ApiError> {
    if read {
        if let Some((cached, tier)) = cx.cache.get(key).await {
            cx.metrics
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
    cx.metrics
        .cache_requests_total
        .with_label_values(&["miss", "none"])
        .inc();
    let live = stream_live(cx, snapshot, plan, request, log).await?;
    Ok(Answered {
        answer: Answer::Live(live),
        cache: "miss",
    })
}

/// Walks the chain for a whole answer and records it.
async fn respond_json(
    cx: &Context<'_>,
    snapshot: &Snapshot,
    plan: &Plan,
    request: &ChatRequest,
    log: &mut RouteLog,
) -> Result<Cached, ApiError> {
    let outcome = walk(
        &cx.walk,
        snapshot,
        plan,
        request.needs_tools(),
        |provider, step| async move { provider.chat(request, &step.target().model).await },
    )
    .await?;
    let usage = outcome.value.usage.as_ref();
    let landed = Landed::Whole {
        prompt: usage.map_or(0, |u| u.prompt_tokens),
        completion: usage.map_or(0, |u| u.completion_tokens),
    };
    record(&outcome, landed, log);
    let name = &outcome.step.name;
    let mut completion: ChatCompletion = outcome.value;
    completion.model.clone_from(name);
    completion.fill_openai_shape();
    Ok(Cached {
        target: name.clone(),
        completion,
    })
}

/// Walks the chain until an entry produces its first chunk: the stream is then committed.
async fn stream_live(
    cx: &Context<'_>,
    snapshot: &Snapshot,
    plan: &Plan,
    request: &ChatRequest,
    log: &mut RouteLog,
) -> Result<Live, ApiError> {
    let started = Instant::now();
    let outcome = walk(
        &cx.walk,
        snapshot,
        plan,
        request.needs_tools(),
        |provider, step| async move {
            let mut stream = provider.chat_stream(request, &step.target().model).await?;
            // The first chunk commits this entry: until it arrives the walk may still move on.
            let first = stream.next().await.transpose()?;
            Ok((first, stream))
        },
    )
    .await?;
    record(&outcome, Landed::Stream, log);
    let (first, rest) = outcome.value;
    Ok(Live {
        step: outcome.step,
        first,
        rest,
        started,
    })
}
