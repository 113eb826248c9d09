//! The registry aggregate: every rule about what may happen to the alias registry.
//!
//! [`RegistryAggregate::handle`] decides — it turns a [`Command`] into the events that
//! happened (or a [`DomainError`] an admin can read) and never changes state;
//! [`RegistryAggregate::apply`] only folds an event into the state. No I/O lives here, so
//! replaying the log from empty always rebuilds the same aggregate.

mod rollout;
#[cfg(test)]
pub(crate) mod tests;

use std::collections::BTreeMap;
use std::fmt;

use mana_llm_shared::events::RegistryEvent;
use mana_llm_shared::fleet::WorkerId;
use mana_llm_shared::rollout::{CanaryShare, Cohorts, JudgeSettings};
use mana_llm_shared::{
    ContentHash, DocumentFormat, Registry, RegistryDocument, RegistryPolicy, RegistryVersion,
};
use serde::Serialize;

pub use rollout::{ActiveRollout, FinishedRollout, RolloutOutcome};

/// Where a published registry text came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PublishSource {
    /// An admin pushed it through the admin API or CLI.
    Push,
    /// The file on disk was re-read (SIGHUP or the admin API's reload).
    Reload,
    /// The first version, taken from the file when the log was empty.
    Seed,
}

impl PublishSource {
    /// The name stored in [`RegistryEvent::RegistryVersionPublished`]'s `source`.
    pub fn as_str(self) -> &'static str {
        match self {
            PublishSource::Push => "push",
            PublishSource::Reload => "reload",
            PublishSource::Seed => "seed",
        }
    }
}

impl fmt::Display for PublishSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What an admin (or the control plane itself) asks of the registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Validate `text` (aliases.yaml, or JSON) and make it the next version.
    Publish {
        text: String,
        /// YAML (`aliases.yaml`) or JSON (an admin API body sent as `application/json`).
        format: DocumentFormat,
        source: PublishSource,
        /// A file path or "admin API": names the text in validation messages.
        origin: String,
        /// The version the caller believes is current (`If-Match`); `None` skips the check.
        expected_version: Option<RegistryVersion>,
    },
    /// Make a new version whose content is that of `to_version`.
    Rollback {
        to_version: RegistryVersion,
        expected_version: Option<RegistryVersion>,
    },
    /// Record that a reload failed before it could even be parsed (e.g. unreadable file).
    RejectReload { origin: String, errors: Vec<String> },
    /// Validate `text` and make it a candidate served by `share` of `live_workers` (fleet
    /// ids); the current version stays stable for the others.
    StartRollout {
        text: String,
        format: DocumentFormat,
        origin: String,
        expected_version: Option<RegistryVersion>,
        share: CanaryShare,
        live_workers: Vec<WorkerId>,
        judge: JudgeSettings,
    },
    /// End the running rollout. `candidate`, when given, must be the running one (a judge
    /// deciding about a rollout that already ended decides nothing).
    EndRollout {
        candidate: Option<RegistryVersion>,
        promote: bool,
        decided_by: String,
        reason: String,
        figures: Option<Cohorts>,
    },
}

/// Why a command was refused. The messages are what an admin reads.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DomainError {
    #[error("expected version {expected} but the current version is {actual}")]
    VersionConflict {
        expected: RegistryVersion,
        actual: RegistryVersion,
    },
    /// Every validation error of the text, verbatim.
    #[error("{}", .0.join("; "))]
    Invalid(Vec<String>),
    #[error("unknown version {0}")]
    UnknownVersion(RegistryVersion),
    #[error("the rollout of version {candidate} is in progress (stable: version {stable}); promote or abort it first")]
    RolloutInProgress {
        candidate: RegistryVersion,
        stable: RegistryVersion,
    },
    #[error("no rollout is in progress")]
    NoRollout,
    #[error("no live workers to roll out to: a staged rollout needs the fleet's heartbeats")]
    NoLiveWorkers,
}

/// How a version came to be.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum VersionOrigin {
    Published {
        source: String,
    },
    RolledBack {
        to_version: RegistryVersion,
    },
    /// A staged rollout's candidate, next to `stable_version`.
    Rollout {
        stable_version: RegistryVersion,
        outcome: RolloutOutcome,
    },
}

/// One registry version as the log made it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VersionRecord {
    pub version: RegistryVersion,
    pub hash: ContentHash,
    pub origin: VersionOrigin,
    pub document: RegistryDocument,
}

/// The registry's state: the current version and every version ever made.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RegistryAggregate {
    /// 0 = no version yet.
    pub(crate) current: RegistryVersion,
    pub(crate) versions: BTreeMap<RegistryVersion, VersionRecord>,
    /// The staged rollout in progress, if any (at most one).
    pub(crate) rollout: Option<ActiveRollout>,
    pub(crate) last_rollout: Option<FinishedRollout>,
    /// The operator's rules new documents must follow (not state: set by whoever loads the
    /// aggregate, never folded from events — what the log holds already happened).
    pub(crate) policy: RegistryPolicy,
}

impl RegistryAggregate {
    /// This aggregate deciding under `policy`.
    pub fn with_policy(mut self, policy: RegistryPolicy) -> Self {
        self.policy = policy;
        self
    }

    /// Decides what happens; never changes `self`.
    pub fn handle(&self, command: Command) -> Result<Vec<RegistryEvent>, DomainError> {
        match command {
            Command::Publish {
                text,
                format,
                source,
                origin,
                expected_version,
            } => {
                self.check_no_rollout()?;
                self.check_expected(expected_version)?;
                self.publish(&text, format, source, &origin)
            }
            Command::Rollback {
                to_version,
                expected_version,
            } => {
                self.check_no_rollout()?;
                self.check_expected(expected_version)?;
                self.rollback(to_version)
            }
            Command::StartRollout {
                text,
                format,
                origin,
                expected_version,
                share,
                live_workers,
                judge,
            } => {
                self.check_no_rollout()?;
                self.check_expected(expected_version)?;
                self.start_rollout(&text, format, &origin, share, &live_workers, judge)
            }
            Command::EndRollout {
                candidate,
                promote,
                decided_by,
                reason,
                figures,
            } => self.end_rollout(candidate, promote, decided_by, reason, figures),
            Command::RejectReload { origin, errors } => {
                Ok(vec![RegistryEvent::RegistryReloadRejected {
                    source: origin,
                    errors,
                }])
            }
        }
    }

    /// Folds one event into the state. Events are facts: nothing is checked here.
    pub fn apply(&mut self, event: &RegistryEvent) {
        let origin = match event {
            RegistryEvent::RegistryVersionPublished { source, .. } => VersionOrigin::Published {
                source: source.clone(),
            },
            RegistryEvent::RegistryRolledBack { to_version, .. } => VersionOrigin::RolledBack {
                to_version: *to_version,
            },
            RegistryEvent::RegistryReloadRejected { .. } => return,
            RegistryEvent::RolloutStarted {
                version,
                stable_version,
                hash,
                document,
                share,
                threshold,
                cohort,
                judge,
            } => {
                self.versions.insert(
                    *version,
                    VersionRecord {
                        version: *version,
                        hash: hash.clone(),
                        origin: VersionOrigin::Rollout {
                            stable_version: *stable_version,
                            outcome: RolloutOutcome::Running,
                        },
                        document: document.clone(),
                    },
                );
                self.rollout = Some(ActiveRollout {
                    candidate_version: *version,
                    stable_version: *stable_version,
                    share: *share,
                    threshold: *threshold,
                    cohort: cohort.clone(),
                    judge: *judge,
                });
                return;
            }
            RegistryEvent::RolloutPromoted {
                version,
                decided_by,
                reason,
                figures,
                ..
            } => {
                self.finish(
                    *version,
                    RolloutOutcome::Promoted,
                    decided_by,
                    reason,
                    figures,
                );
                self.current = *version;
                return;
            }
            RegistryEvent::RolloutAborted {
                version,
                decided_by,
                reason,
                figures,
                ..
            } => {
                self.finish(
                    *version,
                    RolloutOutcome::Aborted,
                    decided_by,
                    reason,
                    figures,
                );
                return;
            }
        };
        if let Some((version, hash, document)) = event.new_version() {
            self.versions.insert(
                version,
                VersionRecord {
                    version,
                    hash: hash.to_owned(),
                    origin,
                    document: document.clone(),
                },
            );
            self.current = version;
        }
    }

    /// The number the next version gets: above every version ever made, including a
    /// candidate that was aborted (numbers are never reused).
    pub fn next_version(&self) -> RegistryVersion {
        self.versions
            .last_key_value()
            .map_or(self.current, |(v, _)| (*v).max(self.current))
            .next()
    }

    /// The current version number (0 when none was made yet).
    pub fn current_version(&self) -> RegistryVersion {
        self.current
    }

    /// The content hash of the current version.
    pub fn current_hash(&self) -> Option<&str> {
        self.versions.get(&self.current).map(|r| r.hash.as_str())
    }

    fn check_no_rollout(&self) -> Result<(), DomainError> {
        match &self.rollout {
            Some(r) => Err(DomainError::RolloutInProgress {
                candidate: r.candidate_version,
                stable: r.stable_version,
            }),
            None => Ok(()),
        }
    }

    fn check_expected(&self, expected: Option<RegistryVersion>) -> Result<(), DomainError> {
        match expected {
            Some(expected) if expected != self.current => Err(DomainError::VersionConflict {
                expected,
                actual: self.current,
            }),
            _ => Ok(()),
        }
    }

    fn publish(
        &self,
        text: &str,
        format: DocumentFormat,
        source: PublishSource,
        origin: &str,
    ) -> Result<Vec<RegistryEvent>, DomainError> {
        let next = self.next_version();
        let parsed = Registry::parse_with(text, format, origin, next, &self.policy);
        let registry = match parsed {
            Ok(registry) => registry,
            // A bad file on disk is something that happened (and is audited), not a refusal.
            Err(errors) if source == PublishSource::Reload => {
                return Ok(vec![RegistryEvent::RegistryReloadRejected {
                    source: origin.to_owned(),
                    errors: errors.0,
                }]);
            }
            Err(errors) => return Err(DomainError::Invalid(errors.0)),
        };
        if self.current_hash() == Some(registry.hash()) {
            return Ok(vec![]);
        }
        Ok(vec![RegistryEvent::RegistryVersionPublished {
            version: next,
            hash: ContentHash::from(registry.hash().to_owned()),
            document: registry.document().clone(),
            source: source.as_str().to_owned(),
        }])
    }

    fn rollback(&self, to_version: RegistryVersion) -> Result<Vec<RegistryEvent>, DomainError> {
        let target = self
            .versions
            .get(&to_version)
            .ok_or(DomainError::UnknownVersion(to_version))?;
        if self.current_hash() == Some(target.hash.as_str()) {
            return Ok(vec![]);
        }
        Ok(vec![RegistryEvent::RegistryRolledBack {
            version: self.next_version(),
            to_version,
            hash: target.hash.clone(),
            document: target.document.clone(),
        }])
    }
}
