//! Control-plane events: what happened to the alias registry, in the past tense.
//!
//! Events are stored with their type name and a schema version beside the JSON payload, so
//! old rows stay readable when a payload changes shape (a new version gets a new upcaster,
//! never a rewrite of history).

use serde::{Deserialize, Serialize};

use crate::fleet::WorkerId;
use crate::registry::{ContentHash, RegistryDocument, RegistryVersion};
use crate::rollout::{CanaryShare, Cohorts, JudgeSettings};

/// The schema version written with every event payload today.
pub const EVENT_SCHEMA_VERSION: u32 = 1;

/// The one event stream of the registry aggregate.
pub const REGISTRY_STREAM: &str = "registry";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum RegistryEvent {
    /// A new registry version: the full validated document and its hash.
    RegistryVersionPublished {
        version: RegistryVersion,
        hash: ContentHash,
        document: RegistryDocument,
        /// Where it came from: `push`, `reload` or `seed`.
        source: String,
    },
    /// A new version whose content is that of an earlier one.
    RegistryRolledBack {
        version: RegistryVersion,
        to_version: RegistryVersion,
        hash: ContentHash,
        document: RegistryDocument,
    },
    /// A reload from a file that did not validate; nothing changed.
    RegistryReloadRejected { source: String, errors: Vec<String> },
    /// A candidate version went to part of the fleet; `stable_version` stays current for
    /// the rest until the rollout is promoted or aborted.
    RolloutStarted {
        version: RegistryVersion,
        stable_version: RegistryVersion,
        hash: ContentHash,
        document: RegistryDocument,
        share: CanaryShare,
        /// The cohort rule's threshold (see [`crate::rollout`]).
        threshold: u64,
        /// The live workers the rule put on the candidate when it started.
        cohort: Vec<WorkerId>,
        judge: JudgeSettings,
    },
    /// The candidate became the current version for every worker.
    RolloutPromoted {
        version: RegistryVersion,
        hash: ContentHash,
        document: RegistryDocument,
        /// `admin` or `judge`.
        decided_by: String,
        reason: String,
        figures: Option<Cohorts>,
    },
    /// The candidate was withdrawn: every worker serves `stable_version` again.
    RolloutAborted {
        version: RegistryVersion,
        stable_version: RegistryVersion,
        decided_by: String,
        reason: String,
        figures: Option<Cohorts>,
    },
}

impl RegistryEvent {
    /// The registry version this event is about: the one it made, the candidate of a
    /// rollout, or none (a rejected reload).
    pub fn registry_version(&self) -> Option<RegistryVersion> {
        match self {
            RegistryEvent::RolloutStarted { version, .. }
            | RegistryEvent::RolloutAborted { version, .. } => Some(*version),
            other => other.new_version().map(|(v, _, _)| v),
        }
    }

    /// The content hash of the version this event is about, when it carries one.
    pub fn content_hash(&self) -> Option<&ContentHash> {
        match self {
            RegistryEvent::RolloutStarted { hash, .. } => Some(hash),
            other => other.new_version().map(|(_, h, _)| h),
        }
    }

    /// The type name stored beside the payload.
    pub fn kind(&self) -> &'static str {
        match self {
            RegistryEvent::RegistryVersionPublished { .. } => "RegistryVersionPublished",
            RegistryEvent::RegistryRolledBack { .. } => "RegistryRolledBack",
            RegistryEvent::RegistryReloadRejected { .. } => "RegistryReloadRejected",
            RegistryEvent::RolloutStarted { .. } => "RolloutStarted",
            RegistryEvent::RolloutPromoted { .. } => "RolloutPromoted",
            RegistryEvent::RolloutAborted { .. } => "RolloutAborted",
        }
    }

    /// The registry version this event made current for the whole fleet, if it made one
    /// (what the outbox publishes).
    pub fn new_version(&self) -> Option<(RegistryVersion, &ContentHash, &RegistryDocument)> {
        match self {
            RegistryEvent::RegistryVersionPublished {
                version,
                hash,
                document,
                ..
            }
            | RegistryEvent::RegistryRolledBack {
                version,
                hash,
                document,
                ..
            }
            | RegistryEvent::RolloutPromoted {
                version,
                hash,
                document,
                ..
            } => Some((*version, hash, document)),
            RegistryEvent::RegistryReloadRejected { .. }
            | RegistryEvent::RolloutStarted { .. }
            | RegistryEvent::RolloutAborted { .. } => None,
        }
    }
}
