//! The admin API's contract: each request and answer as one type that the handlers
//! ([`crate::api`]) read or write and the CLI (`mana-llm aliases …`, `mana-llm fleet …`) writes
//! or reads. The registry and its audit log here; [`fleet`] and [`rollout`] beside.
//!
//! Reading is lenient on purpose: missing optional fields default and unknown ones are
//! ignored, so a CLI reads a newer control plane. Answers go out through [`body`], which keeps
//! their keys sorted as they have always been (scripts and the console compare them).

use mana_llm_shared::fleet::WorkerId;
use mana_llm_shared::rollout::{Cohorts, JudgeSettings};
use mana_llm_shared::{ContentHash, RegistryDocument, RegistryVersion};
use serde::{Deserialize, Deserializer, Serialize};

mod fleet;
mod rollout;

pub use fleet::{BreakerCounts, FleetView, Progress, ProgressWorker, RolloutRule, WorkerView};
pub use rollout::{
    Active, CohortsView, EndBody, Ended, FiguresPair, FiguresView, Finished, Member, Started,
    Status,
};

use crate::diff::Diff;
use crate::domain::RolloutOutcome;

/// The answer to push, rollback and reload: 201 with a new version, 200 unchanged.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Published {
    pub version: RegistryVersion,
    #[serde(default)]
    pub hash: Option<ContentHash>,
    pub changed: bool,
}

/// A push's or rollback's answer: [`Published`] and how far the fleet has taken the current
/// version (`null` without a fleet to ask).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Written {
    #[serde(flatten)]
    pub published: Published,
    #[serde(default)]
    pub workers: Option<Reach>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reach {
    /// Live workers (from the heartbeats).
    pub live: u64,
    /// Those already serving the version or a newer one.
    pub serving: u64,
}

/// A rollout candidate's place next to stable, in the version views.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RolloutPlace {
    pub stable_version: RegistryVersion,
    pub outcome: RolloutOutcome,
}

/// `POST /registry/rollback`. (The names of request types appear in the messages of a body
/// that is not even an object: keep them.)
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RollbackBody {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected_version: Option<RegistryVersion>,
    pub to_version: RegistryVersion,
}

/// `GET /registry/versions`: one page, oldest first.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct VersionsPage {
    pub versions: Vec<VersionSummary>,
    /// Where the next page starts; `null` on the last.
    #[serde(default)]
    pub next_after: Option<RegistryVersion>,
}

/// How a version was made, in both the list and the full view: which, by whom, when, from
/// where, and its place in a rollout.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Made {
    pub version: RegistryVersion,
    #[serde(default)]
    pub hash: ContentHash,
    /// `push`, `reload`, `seed`, `rollback` or `rollout`.
    #[serde(default)]
    pub source: Option<String>,
    #[serde(default)]
    pub rollout: Option<RolloutPlace>,
    #[serde(default)]
    pub actor: Option<String>,
    #[serde(default)]
    pub recorded_at: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct VersionSummary {
    #[serde(flatten)]
    pub made: Made,
    #[serde(default)]
    pub alias_count: Option<u64>,
}

/// `GET /registry` and `GET /registry/versions/{v}`: one version in full.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct VersionView {
    #[serde(flatten)]
    pub made: Made,
    /// For a rollback, the version whose content it restored.
    #[serde(default)]
    pub rolled_back_to: Option<RegistryVersion>,
    #[serde(default)]
    pub default: Option<String>,
    #[serde(default)]
    pub aliases: Vec<AliasView>,
    /// The document as stored (what the console edits).
    #[serde(default)]
    pub document: Option<RegistryDocument>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AliasView {
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    /// Each entry's target, as written.
    #[serde(default)]
    pub chain: Vec<String>,
}

/// `GET /registry/diff?from&to`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiffView {
    pub from: RegistryVersion,
    pub to: RegistryVersion,
    #[serde(flatten)]
    pub diff: Diff,
}

/// `GET /audit`: one page of the event log, oldest first.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AuditPage {
    pub events: Vec<AuditEvent>,
    #[serde(default)]
    pub next_after: Option<u64>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AuditEvent {
    pub sequence: u64,
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub registry_version: Option<RegistryVersion>,
    #[serde(default)]
    pub hash: Option<ContentHash>,
    #[serde(default)]
    pub actor: Option<String>,
    #[serde(default)]
    pub recorded_at: Option<String>,
    #[serde(default)]
    pub source: Option<String>,
    #[serde(default)]
    pub to_version: Option<RegistryVersion>,
    #[serde(default)]
    pub errors: Option<Vec<String>>,
    /// A rollout event's rule or decision; absent for the other events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollout: Option<AuditRollout>,
}

/// What an audit row shows of a rollout event: a start's rule, or a decision with the
/// figures it was made on. Each kind has its own keys; the others are absent, not null.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AuditRollout {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stable_version: Option<RegistryVersion>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub share: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cohort: Option<Vec<WorkerId>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub judge: Option<JudgeSettings>,
    /// `promoted` or `aborted`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decided_by: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Absent on a start; on a decision, `null` when none were summed.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "present"
    )]
    pub figures: Option<Option<Cohorts>>,
}

/// A key that is present, even as `null`, reads as `Some`; an absent one defaults to `None`.
fn present<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    T::deserialize(deserializer).map(Some)
}
