//! Service tests: the write path end to end against a real SQLite file.

use mana_llm_shared::events::{RegistryEvent, REGISTRY_STREAM};
use mana_llm_shared::RegistryVersion;

use super::{RegistryService, ServiceError};
use crate::domain::tests::{document, push, reload, FAST, LONG};
use crate::domain::{Command, DomainError, VersionOrigin};
use crate::projection::replay;
use crate::store::testutil::TempDir;

async fn open_service(dir: &TempDir) -> RegistryService {
    RegistryService::open(dir.store().await).await.unwrap()
}

#[tokio::test]
async fn execute_appends_and_applies() {
    let dir = TempDir::new();
    let service = open_service(&dir).await;
    let executed = service.execute(push(FAST, Some(0)), "alice").await.unwrap();
    assert_eq!(executed.current_version, RegistryVersion(1));
    assert_eq!(executed.events.len(), 1);
    assert_eq!(executed.events[0].actor, "alice");
    let current = service.current().await.unwrap();
    assert_eq!(current.version, RegistryVersion(1));
    assert_eq!(current.hash, document(FAST).0);
    assert_eq!(
        current.origin,
        VersionOrigin::Published {
            source: "push".to_owned()
        }
    );
}

#[tokio::test]
async fn a_no_op_appends_nothing() {
    let dir = TempDir::new();
    let service = open_service(&dir).await;
    service.execute(push(FAST, None), "alice").await.unwrap();
    let again = service.execute(push(FAST, None), "bob").await.unwrap();
    assert!(again.events.is_empty());
    assert_eq!(again.current_version, RegistryVersion(1));
    assert_eq!(
        service.store().load(REGISTRY_STREAM).await.unwrap().len(),
        1
    );
}

#[tokio::test]
async fn domain_errors_pass_through() {
    let dir = TempDir::new();
    let service = open_service(&dir).await;
    service.execute(push(FAST, None), "alice").await.unwrap();
    let stale = service
        .execute(push(LONG, Some(0)), "bob")
        .await
        .unwrap_err();
    assert!(matches!(
        stale,
        ServiceError::Domain(DomainError::VersionConflict {
            expected: RegistryVersion(0),
            actual: RegistryVersion(1)
        })
    ));
    assert_eq!(
        stale.to_string(),
        "expected version 0 but the current version is 1"
    );
    let unknown = service
        .execute(
            Command::Rollback {
                to_version: RegistryVersion(9),
                expected_version: None,
            },
            "bob",
        )
        .await
        .unwrap_err();
    assert_eq!(unknown.to_string(), "unknown version 9");
}

#[tokio::test]
async fn a_writer_in_another_process_causes_a_conflict_then_a_retry_succeeds() {
    let dir = TempDir::new();
    let first = open_service(&dir).await;
    let second = open_service(&dir).await; // stands in for another process on the same file
    first.execute(push(FAST, None), "alice").await.unwrap();

    let stale = second.execute(push(LONG, None), "bob").await.unwrap_err();
    assert!(matches!(stale, ServiceError::Conflict), "{stale:?}");
    // The conflict reloaded the second service's state from the log…
    assert_eq!(second.current_version().await, RegistryVersion(1));
    // …so the retry lands on top of the other writer's version.
    let retried = second.execute(push(LONG, Some(1)), "bob").await.unwrap();
    assert_eq!(retried.current_version, RegistryVersion(2));
    assert_eq!(retried.events[0].stream_sequence, 2);
}

#[tokio::test]
async fn replay_from_empty_equals_the_live_aggregate() {
    let dir = TempDir::new();
    let service = open_service(&dir).await;
    service.seed_if_empty(FAST, "aliases.yaml").await.unwrap();
    service.execute(push(LONG, Some(1)), "alice").await.unwrap();
    let no_op = service.execute(push(LONG, None), "alice").await.unwrap();
    assert!(no_op.events.is_empty());
    let rolled = service
        .execute(
            Command::Rollback {
                to_version: RegistryVersion(1),
                expected_version: Some(RegistryVersion(2)),
            },
            "bob",
        )
        .await
        .unwrap();
    assert_eq!(rolled.current_version, RegistryVersion(3));
    let rejected = service
        .execute(reload("aliases: 3\n"), "sighup")
        .await
        .unwrap();
    assert!(matches!(
        rejected.events[0].event,
        RegistryEvent::RegistryReloadRejected { .. }
    ));

    let replayed = replay(&service.store().load(REGISTRY_STREAM).await.unwrap());
    let live = service.inner.state.lock().await.aggregate.clone();
    assert_eq!(replayed, live);
    assert_eq!(replayed.current_version(), RegistryVersion(3));
    assert_eq!(replayed.current_hash(), Some(document(FAST).0.as_str()));

    // A restart (a new service over the reopened file) sees the same state.
    let restarted = open_service(&dir).await;
    assert_eq!(restarted.inner.state.lock().await.aggregate, live);
    assert_eq!(restarted.inner.state.lock().await.stream_sequence, 4);
}

#[tokio::test]
async fn seed_only_when_empty() {
    let dir = TempDir::new();
    let service = open_service(&dir).await;
    let seeded = service.seed_if_empty(FAST, "aliases.yaml").await.unwrap();
    let seeded = seeded.unwrap();
    assert_eq!(seeded.current_version, RegistryVersion(1));
    assert_eq!(seeded.events[0].actor, "seed");
    assert!(service
        .seed_if_empty(LONG, "aliases.yaml")
        .await
        .unwrap()
        .is_none());
    assert_eq!(service.current_version().await, RegistryVersion(1));

    // A stale second process seeding the same file does not fail or write.
    let other = RegistryService::open(dir.store().await).await.unwrap();
    assert!(other
        .seed_if_empty(LONG, "aliases.yaml")
        .await
        .unwrap()
        .is_none());
    assert_eq!(
        service.store().load(REGISTRY_STREAM).await.unwrap().len(),
        1
    );
}

#[tokio::test]
async fn an_invalid_seed_is_an_error() {
    let dir = TempDir::new();
    let service = open_service(&dir).await;
    let err = service
        .seed_if_empty("aliases: {}\n", "aliases.yaml")
        .await
        .unwrap_err();
    assert!(
        matches!(err, ServiceError::Domain(DomainError::Invalid(_))),
        "{err:?}"
    );
}

#[tokio::test]
async fn changes_fire_after_each_append() {
    let dir = TempDir::new();
    let service = open_service(&dir).await;
    let mut changes = service.changes();
    assert_eq!(*changes.borrow_and_update(), 0);
    service.execute(push(FAST, None), "alice").await.unwrap();
    // Bounded: a regression that never signals must fail here, not hang the suite.
    tokio::time::timeout(std::time::Duration::from_secs(5), changes.changed())
        .await
        .expect("an append signals a change")
        .unwrap();
    assert_eq!(*changes.borrow_and_update(), 1);
    // A no-op appends nothing and signals nothing.
    service.execute(push(FAST, None), "alice").await.unwrap();
    assert!(!changes.has_changed().unwrap());
}

#[tokio::test]
async fn queries_for_the_admin_api() {
    let dir = TempDir::new();
    let service = open_service(&dir).await;
    assert!(service.current().await.is_none());
    service.execute(push(FAST, None), "alice").await.unwrap();
    service.execute(push(LONG, None), "alice").await.unwrap();
    service
        .execute(
            Command::Rollback {
                to_version: RegistryVersion(1),
                expected_version: None,
            },
            "bob",
        )
        .await
        .unwrap();
    let versions: Vec<u64> = service
        .versions(RegistryVersion(0), 10)
        .await
        .iter()
        .map(|v| v.version.0)
        .collect();
    assert_eq!(versions, vec![1, 2, 3]);
    let page: Vec<u64> = service
        .versions(RegistryVersion(1), 1)
        .await
        .iter()
        .map(|v| v.version.0)
        .collect();
    assert_eq!(page, vec![2]);
    assert_eq!(
        service.version(RegistryVersion(3)).await.unwrap().origin,
        VersionOrigin::RolledBack {
            to_version: RegistryVersion(1)
        }
    );
    assert!(service.version(RegistryVersion(4)).await.is_none());
    let diff = service
        .diff(RegistryVersion(1), RegistryVersion(2))
        .await
        .unwrap();
    assert_eq!(diff.added, vec!["mana/long"]);
    assert!(service
        .diff(RegistryVersion(1), RegistryVersion(3))
        .await
        .unwrap()
        .is_empty());
    assert!(matches!(
        service.diff(RegistryVersion(1), RegistryVersion(7)).await,
        Err(ServiceError::Domain(DomainError::UnknownVersion(
            RegistryVersion(7)
        )))
    ));
    let audit = service.audit(1, 10).await.unwrap();
    assert_eq!(audit.len(), 2);
    assert_eq!(audit[1].actor, "bob");
    assert_eq!(service.refresh().await.unwrap(), RegistryVersion(3));
}
