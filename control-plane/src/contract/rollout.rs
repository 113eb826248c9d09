//! `/rollout`: a staged rollout started (a push with `?canary=`), watched, promoted or aborted.

use mana_llm_shared::fleet::WorkerId;
use mana_llm_shared::RegistryVersion;
use serde::{Deserialize, Serialize};

/// The answer of a push that started a rollout.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Started {
    pub version: RegistryVersion,
    #[serde(default)]
    pub hash: Option<mana_llm_shared::ContentHash>,
    #[serde(default)]
    pub changed: bool,
    pub stable_version: RegistryVersion,
    pub rollout: Active,
}

/// `GET /rollout`: the running rollout (or null) and how the last one ended.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Status {
    #[serde(default)]
    pub active: Option<Active>,
    #[serde(default)]
    pub last: Option<Finished>,
}

/// The running rollout: its rule, the cohorts of the workers alive now, the figures so far
/// and what the judge makes of them.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Active {
    pub candidate_version: RegistryVersion,
    pub stable_version: RegistryVersion,
    pub share: String,
    pub auto: bool,
    pub soak_seconds: u64,
    pub min_requests: u64,
    #[serde(default)]
    pub ratio_margin_pct: u32,
    #[serde(default)]
    pub latency_factor_pct: u32,
    /// Unix seconds.
    #[serde(default)]
    pub started_at: Option<f64>,
    #[serde(default)]
    pub soak_ends_at: Option<f64>,
    /// The live workers the rule put on the candidate when it started.
    #[serde(default)]
    pub initial_cohort: Vec<WorkerId>,
    pub cohorts: CohortsView,
    pub figures: FiguresPair,
    #[serde(default)]
    pub verdict: Option<String>,
    #[serde(default)]
    pub paused: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CohortsView {
    pub candidate: Vec<Member>,
    pub stable: Vec<Member>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    pub worker_id: WorkerId,
    pub registry_version: RegistryVersion,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FiguresPair {
    pub candidate: FiguresView,
    pub stable: FiguresView,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FiguresView {
    pub requests: u64,
    #[serde(default)]
    pub upstream_errors: u64,
    #[serde(default)]
    pub exhausted: u64,
    #[serde(default)]
    pub fallbacks: u64,
    pub error_ratio: f64,
    pub exhausted_ratio: f64,
    pub fallback_ratio: f64,
    pub p99_ms: u64,
}

/// How a rollout ended.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Finished {
    /// Unix seconds, from the log.
    #[serde(default)]
    pub at: Option<f64>,
    pub candidate_version: RegistryVersion,
    pub stable_version: RegistryVersion,
    /// `promoted` or `aborted`.
    pub outcome: String,
    pub decided_by: String,
    pub reason: String,
    #[serde(default)]
    pub figures: Option<FiguresPair>,
}

/// The answer of promote or abort.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Ended {
    pub version: RegistryVersion,
    #[serde(default)]
    pub rollout: Option<Finished>,
}

/// `POST /rollout/promote` and `/rollout/abort`; an empty body is all defaults.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndBody {
    pub reason: Option<String>,
    /// The candidate the caller means; refused if another rollout runs now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub candidate_version: Option<RegistryVersion>,
}
