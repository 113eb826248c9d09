//! `GET /fleet` and `GET /registry/versions/{v}/rollout`: the workers as their heartbeats
//! describe them.

use std::collections::BTreeMap;

use mana_llm_shared::fleet::{Window, WorkerId};
use mana_llm_shared::RegistryVersion;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FleetView {
    pub current_version: RegistryVersion,
    pub live: u64,
    pub serving_current: u64,
    /// Per provider, how many live workers see its breaker in each state.
    #[serde(default)]
    pub providers: BTreeMap<String, BreakerCounts>,
    /// The rollout in progress, if any.
    #[serde(default)]
    pub rollout: Option<RolloutRule>,
    pub workers: Vec<WorkerView>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BreakerCounts {
    pub healthy: u64,
    pub half_open: u64,
    pub open: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RolloutRule {
    pub candidate_version: RegistryVersion,
    pub stable_version: RegistryVersion,
    pub share: String,
}

/// One worker: its heartbeat and what it should serve.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct WorkerView {
    pub worker_id: WorkerId,
    pub listen: String,
    #[serde(default)]
    pub binary_version: String,
    pub registry_version: RegistryVersion,
    #[serde(default)]
    pub started_at: f64,
    #[serde(default)]
    pub last_beat_at: f64,
    pub in_flight: u64,
    /// The candidate during a rollout for the candidate cohort, else the current version.
    #[serde(default)]
    pub expected_version: RegistryVersion,
    /// `candidate` or `stable` during a rollout.
    #[serde(default)]
    pub cohort: Option<String>,
    pub lagging: bool,
    #[serde(default)]
    pub lag_seconds: Option<f64>,
    #[serde(default)]
    pub windows: BTreeMap<RegistryVersion, Window>,
    #[serde(default)]
    pub breakers: BTreeMap<String, String>,
}

/// How far a version has reached: who serves it, who does not yet.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Progress {
    pub version: RegistryVersion,
    pub live: u64,
    pub serving: u64,
    pub complete: bool,
    pub workers: Vec<ProgressWorker>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProgressWorker {
    pub worker_id: WorkerId,
    pub registry_version: RegistryVersion,
    pub serving: bool,
}
