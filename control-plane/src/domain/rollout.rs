//! The rollout rules of the registry aggregate: at most one staged rollout at a time, a
//! candidate numbered like any version, and an end that either makes it current (promote) or
//! leaves the stable version current (abort).

use mana_llm_shared::events::RegistryEvent;
use mana_llm_shared::fleet::WorkerId;
use mana_llm_shared::rollout::{pick_cohort, CanaryShare, Cohorts, JudgeSettings};
use mana_llm_shared::{ContentHash, DocumentFormat, Registry, RegistryVersion};
use serde::{Deserialize, Serialize};

use super::{DomainError, RegistryAggregate, VersionOrigin};

/// Where a rollout's candidate stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RolloutOutcome {
    Running,
    Promoted,
    Aborted,
}

impl RolloutOutcome {
    /// The name as stored and answered.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Running => "running",
            Self::Promoted => "promoted",
            Self::Aborted => "aborted",
        }
    }
}

/// The rollout in progress, as its first event described it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ActiveRollout {
    pub candidate_version: RegistryVersion,
    pub stable_version: RegistryVersion,
    pub share: CanaryShare,
    pub threshold: u64,
    /// The workers the rule put on the candidate when it started.
    pub cohort: Vec<WorkerId>,
    pub judge: JudgeSettings,
}

impl ActiveRollout {
    /// Whether the worker `worker_id` serves the candidate (the rule every worker applies to
    /// itself, see [`mana_llm_shared::rollout`]).
    pub fn includes(&self, worker_id: &str) -> bool {
        mana_llm_shared::rollout::in_candidate_cohort(
            self.candidate_version.0,
            self.threshold,
            worker_id,
        )
    }
}

/// How the last rollout ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FinishedRollout {
    pub candidate_version: RegistryVersion,
    pub stable_version: RegistryVersion,
    pub outcome: RolloutOutcome,
    pub decided_by: String,
    pub reason: String,
    pub figures: Option<Cohorts>,
}

impl RegistryAggregate {
    /// Ends the rollout of `version` with `outcome` (state only; see [`Self::apply`]).
    pub(super) fn finish(
        &mut self,
        version: RegistryVersion,
        outcome: RolloutOutcome,
        decided_by: &str,
        reason: &str,
        figures: &Option<Cohorts>,
    ) {
        let stable_version = self
            .rollout
            .take()
            .map_or(self.current, |r| r.stable_version);
        if let Some(record) = self.versions.get_mut(&version) {
            if let VersionOrigin::Rollout { outcome: o, .. } = &mut record.origin {
                *o = outcome;
            }
        }
        self.last_rollout = Some(FinishedRollout {
            candidate_version: version,
            stable_version,
            outcome,
            decided_by: decided_by.to_owned(),
            reason: reason.to_owned(),
            figures: *figures,
        });
    }

    /// The rollout in progress, if any.
    pub fn rollout(&self) -> Option<&ActiveRollout> {
        self.rollout.as_ref()
    }

    /// How the last rollout ended, if one did.
    pub fn last_rollout(&self) -> Option<&FinishedRollout> {
        self.last_rollout.as_ref()
    }

    pub(super) fn start_rollout(
        &self,
        text: &str,
        format: DocumentFormat,
        origin: &str,
        share: CanaryShare,
        live_workers: &[WorkerId],
        judge: JudgeSettings,
    ) -> Result<Vec<RegistryEvent>, DomainError> {
        let next = self.next_version();
        let registry = Registry::parse_with(text, format, origin, next, &self.policy)
            .map_err(|errors| DomainError::Invalid(errors.0))?;
        if self.current_hash() == Some(registry.hash()) {
            return Err(DomainError::Invalid(vec![format!(
                "the candidate is the current version {}: nothing to roll out",
                self.current
            )]));
        }
        if live_workers.is_empty() {
            return Err(DomainError::NoLiveWorkers);
        }
        let (threshold, cohort) = pick_cohort(next.0, live_workers, share);
        Ok(vec![RegistryEvent::RolloutStarted {
            version: next,
            stable_version: self.current,
            hash: ContentHash::from(registry.hash().to_owned()),
            document: registry.document().clone(),
            share,
            threshold,
            cohort,
            judge,
        }])
    }

    pub(super) fn end_rollout(
        &self,
        candidate: Option<RegistryVersion>,
        promote: bool,
        decided_by: String,
        reason: String,
        figures: Option<Cohorts>,
    ) -> Result<Vec<RegistryEvent>, DomainError> {
        let Some(rollout) = &self.rollout else {
            return Err(DomainError::NoRollout);
        };
        if candidate.is_some_and(|c| c != rollout.candidate_version) {
            return Err(DomainError::NoRollout);
        }
        let version = rollout.candidate_version;
        if !promote {
            return Ok(vec![RegistryEvent::RolloutAborted {
                version,
                stable_version: rollout.stable_version,
                decided_by,
                reason,
                figures,
            }]);
        }
        let record = self
            .versions
            .get(&version)
            .ok_or(DomainError::UnknownVersion(version))?;
        Ok(vec![RegistryEvent::RolloutPromoted {
            version,
            hash: record.hash.clone(),
            document: record.document.clone(),
            decided_by,
            reason,
            figures,
        }])
    }
}
