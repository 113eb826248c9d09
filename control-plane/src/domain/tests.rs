//! Given/when/then: given these past events, when this command arrives, then exactly these
//! events happen (or this error).

use mana_llm_shared::events::RegistryEvent;
use mana_llm_shared::fleet::WorkerId;
use mana_llm_shared::{
    ContentHash, DocumentFormat, Registry, RegistryDocument, RegistryPolicy, RegistryVersion,
};

use super::{Command, DomainError, PublishSource, RegistryAggregate};

pub(crate) const FAST: &str = "aliases:\n  mana/fast:\n    chain: [ollama/qwen2.5:7b, groq/llama-3.1-8b-instant]\ndefault: mana/fast\n";
pub(crate) const LONG: &str = "aliases:\n  mana/fast:\n    chain: [ollama/qwen2.5:7b]\n  mana/long:\n    description: prose\n    chain: [ollama/gemma3:12b]\n";
const BROKEN: &str = "aliases:\n  fast:\n    chain: []\n";

pub(crate) fn document(text: &str) -> (ContentHash, RegistryDocument) {
    let registry = Registry::parse(text, "test", RegistryVersion(1)).unwrap();
    (
        ContentHash::from(registry.hash().to_owned()),
        registry.document().clone(),
    )
}

pub(crate) fn published(version: u64, text: &str, source: &str) -> RegistryEvent {
    let (hash, document) = document(text);
    RegistryEvent::RegistryVersionPublished {
        version: RegistryVersion(version),
        hash,
        document,
        source: source.to_owned(),
    }
}

fn rolled_back(version: u64, to_version: u64, text: &str) -> RegistryEvent {
    let (hash, document) = document(text);
    RegistryEvent::RegistryRolledBack {
        version: RegistryVersion(version),
        to_version: RegistryVersion(to_version),
        hash,
        document,
    }
}

pub(crate) fn push(text: &str, expected_version: Option<u64>) -> Command {
    Command::Publish {
        format: DocumentFormat::Yaml,
        text: text.to_owned(),
        source: PublishSource::Push,
        origin: "admin API".to_owned(),
        expected_version: expected_version.map(RegistryVersion),
    }
}

pub(crate) fn reload(text: &str) -> Command {
    Command::Publish {
        format: DocumentFormat::Yaml,
        text: text.to_owned(),
        source: PublishSource::Reload,
        origin: "/etc/mana/aliases.yaml".to_owned(),
        expected_version: None,
    }
}

fn rollback(to_version: u64, expected_version: Option<u64>) -> Command {
    Command::Rollback {
        to_version: RegistryVersion(to_version),
        expected_version: expected_version.map(RegistryVersion),
    }
}

struct Scenario {
    aggregate: RegistryAggregate,
    outcome: Option<Result<Vec<RegistryEvent>, DomainError>>,
}

fn given(events: &[RegistryEvent]) -> Scenario {
    let mut aggregate = RegistryAggregate::default();
    for event in events {
        aggregate.apply(event);
    }
    Scenario {
        aggregate,
        outcome: None,
    }
}

impl Scenario {
    fn when(mut self, command: Command) -> Self {
        self.outcome = Some(self.aggregate.handle(command));
        self
    }

    fn then(self, expected: Vec<RegistryEvent>) -> RegistryAggregate {
        assert_eq!(self.outcome, Some(Ok(expected)));
        self.aggregate
    }

    fn then_error(self, expected: DomainError) {
        assert_eq!(self.outcome, Some(Err(expected)));
    }
}

#[test]
fn first_push_publishes_version_one() {
    given(&[])
        .when(push(FAST, None))
        .then(vec![published(1, FAST, "push")]);
}

#[test]
fn a_changed_text_publishes_the_next_version() {
    given(&[published(1, FAST, "seed")])
        .when(push(LONG, Some(1)))
        .then(vec![published(2, LONG, "push")]);
}

#[test]
fn the_same_content_is_a_no_op_whatever_its_formatting() {
    let reformatted = "# a comment\ndefault: mana/fast\naliases:\n  mana/fast:\n    chain:\n      - ollama/qwen2.5:7b\n      - groq/llama-3.1-8b-instant\n";
    given(&[published(1, FAST, "seed")])
        .when(push(reformatted, None))
        .then(vec![]);
}

#[test]
fn json_text_is_accepted_too() {
    let json = r#"{"aliases": {"mana/fast": {"chain": ["ollama/qwen2.5:7b", "groq/llama-3.1-8b-instant"]}}, "default": "mana/fast"}"#;
    given(&[published(1, LONG, "seed")])
        .when(push(json, None))
        .then(vec![published(2, FAST, "push")]);
}

#[test]
fn a_stale_expected_version_is_a_conflict() {
    given(&[published(1, FAST, "seed"), published(2, LONG, "push")])
        .when(push(FAST, Some(1)))
        .then_error(DomainError::VersionConflict {
            expected: RegistryVersion(1),
            actual: RegistryVersion(2),
        });
}

#[test]
fn a_conflict_message_reads_well() {
    let err = DomainError::VersionConflict {
        expected: RegistryVersion(3),
        actual: RegistryVersion(4),
    };
    assert_eq!(
        err.to_string(),
        "expected version 3 but the current version is 4"
    );
    assert_eq!(
        DomainError::UnknownVersion(RegistryVersion(9)).to_string(),
        "unknown version 9"
    );
}

#[test]
fn an_invalid_push_is_refused_with_every_error() {
    let errors = Registry::parse(BROKEN, "admin API", RegistryVersion(1))
        .unwrap_err()
        .0;
    assert!(!errors.is_empty());
    given(&[published(1, FAST, "seed")])
        .when(push(BROKEN, None))
        .then_error(DomainError::Invalid(errors));
}

#[test]
fn an_invalid_reload_is_recorded_not_refused() {
    let errors = Registry::parse(BROKEN, "/etc/mana/aliases.yaml", RegistryVersion(2))
        .unwrap_err()
        .0;
    let aggregate = given(&[published(1, FAST, "seed")])
        .when(reload(BROKEN))
        .then(vec![RegistryEvent::RegistryReloadRejected {
            source: "/etc/mana/aliases.yaml".to_owned(),
            errors,
        }]);
    assert_eq!(aggregate.current_version(), RegistryVersion(1));
}

#[test]
fn a_rejected_reload_changes_nothing() {
    let rejected = RegistryEvent::RegistryReloadRejected {
        source: "aliases.yaml".to_owned(),
        errors: vec!["bad".to_owned()],
    };
    let before = given(&[published(1, FAST, "seed")]).aggregate;
    let after = given(&[published(1, FAST, "seed"), rejected]).aggregate;
    assert_eq!(before, after);
}

#[test]
fn a_valid_reload_publishes() {
    given(&[published(1, FAST, "seed")])
        .when(reload(LONG))
        .then(vec![published(2, LONG, "reload")]);
}

#[test]
fn reject_reload_records_the_errors() {
    given(&[])
        .when(Command::RejectReload {
            origin: "aliases.yaml".to_owned(),
            errors: vec!["cannot read aliases.yaml: permission denied".to_owned()],
        })
        .then(vec![RegistryEvent::RegistryReloadRejected {
            source: "aliases.yaml".to_owned(),
            errors: vec!["cannot read aliases.yaml: permission denied".to_owned()],
        }]);
}

#[test]
fn rollback_makes_a_new_version_with_old_content() {
    given(&[published(1, FAST, "seed"), published(2, LONG, "push")])
        .when(rollback(1, Some(2)))
        .then(vec![rolled_back(3, 1, FAST)]);
}

#[test]
fn rollback_to_an_unknown_version_is_refused() {
    given(&[published(1, FAST, "seed")])
        .when(rollback(9, None))
        .then_error(DomainError::UnknownVersion(RegistryVersion(9)));
    given(&[published(1, FAST, "seed")])
        .when(rollback(0, None))
        .then_error(DomainError::UnknownVersion(RegistryVersion(0)));
}

#[test]
fn rollback_to_the_current_content_is_a_no_op() {
    given(&[
        published(1, FAST, "seed"),
        published(2, LONG, "push"),
        rolled_back(3, 1, FAST),
    ])
    .when(rollback(1, None))
    .then(vec![]);
}

#[test]
fn rollback_checks_the_expected_version() {
    given(&[published(1, FAST, "seed"), published(2, LONG, "push")])
        .when(rollback(1, Some(1)))
        .then_error(DomainError::VersionConflict {
            expected: RegistryVersion(1),
            actual: RegistryVersion(2),
        });
}

#[test]
fn apply_tracks_the_current_version_and_hash() {
    let aggregate = given(&[
        published(1, FAST, "seed"),
        published(2, LONG, "push"),
        rolled_back(3, 1, FAST),
    ])
    .aggregate;
    assert_eq!(aggregate.current_version(), RegistryVersion(3));
    assert_eq!(aggregate.current_hash(), Some(document(FAST).0.as_str()));
}

const EXFILTRATE: &str = "aliases:\n  mana/x:\n    chain: [evil/m]\nproviders:\n  evil: {base_url: 'http://127.0.0.1:9/v1', api_key_env: MANA_LLM_ADMIN_TOKEN}\n";

#[test]
fn given_any_state_when_a_document_names_a_forbidden_key_variable_then_it_is_refused() {
    let given = RegistryAggregate::default();
    let e = given.handle(push(EXFILTRATE, None)).unwrap_err();
    let DomainError::Invalid(errors) = e else {
        panic!("expected Invalid, got {e:?}");
    };
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].contains("api_key_env 'MANA_LLM_ADMIN_TOKEN' is not an allowed key variable"),
        "{errors:?}"
    );
}

#[test]
fn given_a_policy_when_a_document_follows_it_then_it_is_published() {
    let text = "aliases:\n  mana/x:\n    chain: [lm/m]\nproviders:\n  lm: {base_url: 'http://llm.internal/v1', api_key_env: SHARED_TOKEN}\n";
    let default = RegistryAggregate::default();
    assert!(default.handle(push(text, None)).is_err());
    let operator = RegistryAggregate::default()
        .with_policy(RegistryPolicy::default().with_key_envs(&["SHARED_TOKEN"]));
    let events = operator.handle(push(text, None)).unwrap();
    assert_eq!(events.len(), 1);
    let strict = RegistryAggregate::default().with_policy(
        RegistryPolicy::default()
            .with_key_envs(&["SHARED_TOKEN"])
            .with_hosts(&["other.internal"]),
    );
    assert!(strict.handle(push(text, None)).is_err());
}

#[test]
fn given_json_when_published_as_json_then_it_is_the_same_version_as_the_yaml() {
    let given = RegistryAggregate::default();
    let json = r#"{"aliases": {"mana/fast": {"chain": ["ollama/qwen2.5:7b", "groq/llama-3.1-8b-instant"]}}, "default": "mana/fast"}"#;
    let events = given
        .handle(Command::Publish {
            text: json.to_owned(),
            format: DocumentFormat::Json,
            source: PublishSource::Push,
            origin: "admin API".to_owned(),
            expected_version: None,
        })
        .unwrap();
    assert_eq!(events, vec![published(1, FAST, "push")]);
}

/// The names stored in events and shown by the audit log.
#[test]
fn publish_sources_print_as_their_stored_names() {
    for (source, name) in [
        (PublishSource::Push, "push"),
        (PublishSource::Reload, "reload"),
        (PublishSource::Seed, "seed"),
    ] {
        assert_eq!(source.as_str(), name);
        assert_eq!(source.to_string(), name);
    }
}

mod rollouts {
    //! Given/when/then for staged rollouts: one at a time, a candidate numbered like any
    //! version, promote makes it current, abort leaves stable current and burns the number.

    use mana_llm_shared::rollout::{pick_cohort, CanaryShare, Cohorts, JudgeSettings};

    use super::*;
    use crate::domain::RolloutOutcome;

    fn live() -> Vec<WorkerId> {
        (0..4).map(|i| WorkerId::from(format!("w{i}"))).collect()
    }

    fn start(text: &str) -> Command {
        start_with(text, live(), None)
    }

    fn start_with(
        text: &str,
        live_workers: Vec<WorkerId>,
        expected_version: Option<u64>,
    ) -> Command {
        Command::StartRollout {
            text: text.to_owned(),
            format: DocumentFormat::Yaml,
            origin: "admin API".to_owned(),
            expected_version: expected_version.map(RegistryVersion),
            share: CanaryShare::Percent(50),
            live_workers,
            judge: JudgeSettings::default(),
        }
    }

    fn started(version: u64, stable: u64, text: &str) -> RegistryEvent {
        let (hash, document) = document(text);
        let (threshold, cohort) = pick_cohort(version, &live(), CanaryShare::Percent(50));
        RegistryEvent::RolloutStarted {
            version: RegistryVersion(version),
            stable_version: RegistryVersion(stable),
            hash,
            document,
            share: CanaryShare::Percent(50),
            threshold,
            cohort,
            judge: JudgeSettings::default(),
        }
    }

    fn end(candidate: Option<u64>, promote: bool) -> Command {
        Command::EndRollout {
            candidate: candidate.map(RegistryVersion),
            promote,
            decided_by: "judge".to_owned(),
            reason: "figures".to_owned(),
            figures: Some(Cohorts::default()),
        }
    }

    #[test]
    fn a_rollout_starts_a_candidate_beside_the_current_version() {
        let aggregate = given(&[published(1, FAST, "seed")])
            .when(start(LONG))
            .then(vec![started(2, 1, LONG)]);
        let mut aggregate = aggregate;
        aggregate.apply(&started(2, 1, LONG));
        assert_eq!(
            aggregate.current_version(),
            RegistryVersion(1),
            "stable stays current"
        );
        let rollout = aggregate.rollout().unwrap();
        assert_eq!(rollout.cohort.len(), 2);
        assert_eq!(aggregate.next_version(), RegistryVersion(3));
    }

    #[test]
    fn one_rollout_at_a_time_and_no_push_or_rollback_during_one() {
        let during = [published(1, FAST, "seed"), started(2, 1, LONG)];
        let busy = DomainError::RolloutInProgress {
            candidate: RegistryVersion(2),
            stable: RegistryVersion(1),
        };
        given(&during).when(start(FAST)).then_error(busy.clone());
        given(&during)
            .when(push(FAST, None))
            .then_error(busy.clone());
        given(&during)
            .when(rollback(1, None))
            .then_error(busy.clone());
        given(&during).when(reload(FAST)).then_error(busy);
        assert!(DomainError::RolloutInProgress {
            candidate: RegistryVersion(2),
            stable: RegistryVersion(1)
        }
        .to_string()
        .contains("version 2 is in progress"));
    }

    #[test]
    fn promote_makes_the_candidate_current() {
        let (hash, document) = document(LONG);
        let mut aggregate = given(&[published(1, FAST, "seed"), started(2, 1, LONG)])
            .when(end(Some(2), true))
            .then(vec![RegistryEvent::RolloutPromoted {
                version: RegistryVersion(2),
                hash,
                document,
                decided_by: "judge".to_owned(),
                reason: "figures".to_owned(),
                figures: Some(Cohorts::default()),
            }]);
        let promoted = aggregate.handle(end(Some(2), true)).unwrap();
        aggregate.apply(&promoted[0]);
        assert_eq!(aggregate.current_version(), RegistryVersion(2));
        assert!(aggregate.rollout().is_none());
        assert_eq!(
            aggregate.last_rollout().unwrap().outcome,
            RolloutOutcome::Promoted
        );
        assert!(
            promoted[0].new_version().is_some(),
            "the outbox publishes it"
        );
    }

    #[test]
    fn abort_keeps_stable_current_and_the_number_is_never_reused() {
        let aborted = RegistryEvent::RolloutAborted {
            version: RegistryVersion(2),
            stable_version: RegistryVersion(1),
            decided_by: "judge".to_owned(),
            reason: "figures".to_owned(),
            figures: Some(Cohorts::default()),
        };
        given(&[published(1, FAST, "seed"), started(2, 1, LONG)])
            .when(end(None, false))
            .then(vec![aborted.clone()]);
        let after = [published(1, FAST, "seed"), started(2, 1, LONG), aborted];
        let aggregate = given(&after).aggregate;
        assert_eq!(aggregate.current_version(), RegistryVersion(1));
        assert_eq!(
            aggregate.last_rollout().unwrap().outcome,
            RolloutOutcome::Aborted
        );
        assert!(aborted_has_no_outbox_row());
        given(&after)
            .when(push(LONG, Some(1)))
            .then(vec![published(3, LONG, "push")]);
        given(&after)
            .when(rollback(2, None))
            .then(vec![rolled_back(3, 2, LONG)]);
    }

    fn aborted_has_no_outbox_row() -> bool {
        started(2, 1, LONG).new_version().is_none()
    }

    #[test]
    fn ending_needs_the_running_rollout() {
        given(&[published(1, FAST, "seed")])
            .when(end(None, true))
            .then_error(DomainError::NoRollout);
        // A judge deciding about a rollout that already ended decides nothing.
        given(&[published(1, FAST, "seed"), started(2, 1, LONG)])
            .when(end(Some(7), false))
            .then_error(DomainError::NoRollout);
    }

    #[test]
    fn a_rollout_needs_workers_a_change_and_a_valid_document() {
        given(&[published(1, FAST, "seed")])
            .when(start_with(LONG, vec![], None))
            .then_error(DomainError::NoLiveWorkers);
        let same = given(&[published(1, FAST, "seed")]).when(start(FAST));
        assert!(
            matches!(&same.outcome, Some(Err(DomainError::Invalid(e))) if e[0].contains("nothing to roll out")),
            "{:?}",
            same.outcome
        );
        let broken = given(&[published(1, FAST, "seed")]).when(start(BROKEN));
        assert!(matches!(broken.outcome, Some(Err(DomainError::Invalid(_)))));
        given(&[published(1, FAST, "seed")])
            .when(start_with(LONG, live(), Some(0)))
            .then_error(DomainError::VersionConflict {
                expected: RegistryVersion(0),
                actual: RegistryVersion(1),
            });
    }
}
