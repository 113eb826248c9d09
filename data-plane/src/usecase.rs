//! The use cases behind the OpenAI endpoints: cache decision → walk → an answer (JSON, a
//! stream or a replay), recorded once. They take a small [`Context`], not the whole state, and
//! answer in domain terms; the HTTP edge (`api`) writes the answer in its wire format.

pub mod chat;
pub mod embeddings;

use std::sync::Arc;
use std::time::Duration;

use mana_llm_shared::bus::BusNames;

use crate::cache::ResponseCache;
use crate::error::ApiError;
use crate::metrics::Metrics;
use crate::router::{Outcome, Plan, WalkContext};
use crate::snapshot::{Snapshot, Snapshots};

/// What a use case reaches: the snapshots, the cache and how to walk.
pub struct Context<'a> {
    pub snapshots: &'a Snapshots,
    pub cache: &'a ResponseCache,
    /// Key names (cache keys are named under the fleet's prefix).
    pub names: &'a BusNames,
    pub metrics: &'a Metrics,
    pub walk: WalkContext<'a>,
}

impl Context<'_> {
    /// The snapshot this request is served with, and its plan for `model`.
    fn plan(&self, model: Option<&str>) -> Result<(Arc<Snapshot>, Plan), ApiError> {
        let snapshot = self.snapshots.load();
        let plan = crate::router::plan(&snapshot, model)?;
        Ok((snapshot, plan))
    }
}

/// What a handler tells the request log about the call it made.
#[derive(Debug, Clone, Default)]
pub struct RouteLog {
    /// The model the client asked for (truncated; it is user input).
    pub model: String,
    /// The `provider/model` that answered or failed.
    pub target: Option<String>,
    pub upstream: Option<Duration>,
    /// Chain entries skipped or failed before the one that answered.
    pub fallbacks: usize,
}

impl RouteLog {
    pub fn new(model: &str) -> Self {
        Self {
            model: model.chars().take(120).collect(),
            ..Self::default()
        }
    }
}

/// How an answer left the walk: whole (with its token counts, if the upstream sent them),
/// or as a stream (whose tokens are counted when it ends).
#[derive(Debug, Clone, Copy)]
pub enum Landed {
    Whole { prompt: u64, completion: u64 },
    Stream,
}

/// After the walk, whatever the endpoint: the request log learns who answered, after how
/// many fallbacks and how long the call took, and the target's series count a success.
pub fn record<T>(outcome: &Outcome<T>, landed: Landed, log: &mut RouteLog) {
    let step = &outcome.step;
    log.target = Some(step.name.clone());
    log.upstream = Some(outcome.upstream);
    log.fallbacks = outcome.attempts.len();
    match landed {
        Landed::Whole { prompt, completion } => {
            step.metrics.success(false, Some(outcome.upstream));
            step.metrics.tokens(prompt, completion);
        }
        Landed::Stream => step.metrics.success(true, None),
    }
}
