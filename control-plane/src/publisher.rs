//! The outbox publisher: after a version commits, its outbox row is published to the bus and
//! marked sent only once the bus accepted it. Rows go out in order; on a failure the loop
//! backs off (up to [`MAX_BACKOFF`]) and retries the same row, so a crash or a Redis outage
//! between commit and publish delays a version but never loses it.

use std::sync::Arc;
use std::time::Duration;

use mana_llm_shared::backoff::Backoff;
use mana_llm_shared::bus::{Publish, PublishedVersion};
use tokio_util::sync::CancellationToken;

use crate::service::RegistryService;

const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// Even with no news, look at the outbox and at what the bus holds this often (another
/// process may have written; Redis may have restarted empty): the bound on how long a fleet
/// can go without `current` after a Redis restart.
const IDLE_POLL: Duration = Duration::from_secs(2);

/// Publishes every unsent row; returns whether all went out.
pub async fn drain_once(service: &RegistryService, bus: &dyn Publish) -> bool {
    let store = service.store();
    let head = service.current_version().await.0;
    let rows = match store.unsent_outbox(100).await {
        Ok(rows) => rows,
        Err(e) => {
            tracing::error!(error = %e, "cannot read the outbox");
            return false;
        }
    };
    for row in rows {
        let published = match row.published() {
            Ok(p) => p,
            Err(e) => {
                // A row we cannot decode would block every later one; record it and skip.
                tracing::error!(id = row.id, error = %e, "undecodable outbox row skipped");
                let _ = store
                    .mark_failed(row.id, &format!("undecodable: {e}"))
                    .await;
                let _ = store.mark_sent(row.id).await;
                continue;
            }
        };
        match bus.publish(&published, head).await {
            Ok(()) => {
                if let Err(e) = store.mark_sent(row.id).await {
                    tracing::error!(id = row.id, error = %e, "published but not marked sent; it will be sent again");
                    return false;
                }
                tracing::info!(version = published.version.0, "registry version published");
            }
            Err(e) => {
                tracing::warn!(version = published.version.0, error = %e, "publish failed; will retry");
                let _ = store.mark_failed(row.id, &e.to_string()).await;
                return false;
            }
        }
    }
    true
}

/// Makes the bus hold the log's current version (see [`Publish::reconcile`]). Re-reads the
/// log first (another process sharing it may have written a newer version, which must not be
/// taken for a forgery), and leaves the bus alone while any row is unsent: the outbox
/// publishes in order, and a reconcile must never jump ahead of it (a version announced out
/// of order would make the older row's announcement a no-op). Returns whether it could tell.
pub async fn reconcile_once(service: &RegistryService, bus: &dyn Publish) -> bool {
    if let Err(e) = service.refresh_if_changed().await {
        tracing::error!(error = %e, "cannot re-read the event log");
        return false;
    }
    match service.store().unsent_outbox(1).await {
        Ok(rows) if rows.is_empty() => {}
        Ok(_) => return true,
        Err(e) => {
            tracing::error!(error = %e, "cannot read the outbox");
            return false;
        }
    }
    let Some(head) = service.current().await else {
        return true;
    };
    let head = PublishedVersion::new(head.version, head.hash, head.document);
    if let Err(e) = bus.reconcile(&head).await {
        tracing::warn!(version = head.version.0, error = %e, "cannot check the published version; will retry");
        return false;
    }
    // After `current`: a promoted candidate is everyone's version before the assignment that
    // put only some workers on it goes away.
    let canary = service.canary().await;
    match bus.assign_canary(canary.as_ref()).await {
        Ok(written) => {
            if written {
                tracing::info!(
                    candidate = canary.as_ref().map(|c| c.candidate.version.0),
                    "rollout assignment published"
                );
            }
            true
        }
        Err(e) => {
            tracing::warn!(error = %e, "cannot publish the rollout assignment; will retry");
            false
        }
    }
}

/// Runs until `cancel` fires: drains the outbox after every append, on a slow timer, and with
/// backoff while the bus is failing; after each full drain, checks that the bus holds the
/// current version.
pub async fn run(service: RegistryService, bus: Arc<dyn Publish>, cancel: CancellationToken) {
    let mut changes = service.changes();
    let mut backoff = Backoff::new(FIRST_BACKOFF, MAX_BACKOFF);
    loop {
        let done = drain_once(&service, bus.as_ref()).await
            && reconcile_once(&service, bus.as_ref()).await;
        let wait = if done {
            backoff.succeeded();
            IDLE_POLL
        } else {
            backoff.failed()
        };
        tokio::select! {
            _ = cancel.cancelled() => return,
            changed = changes.changed() => {
                if changed.is_err() {
                    return;
                }
            }
            _ = tokio::time::sleep(wait) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use async_trait::async_trait;
    use mana_llm_shared::bus::{BusError, CanaryAssignment};

    use super::*;
    use crate::domain::tests::{FAST, LONG};
    use crate::store::testutil::TempDir;

    /// A bus that records what it was given, or refuses everything.
    #[derive(Default)]
    struct Recording {
        published: Mutex<Vec<(u64, u64)>>,
        down: bool,
    }

    #[async_trait]
    impl Publish for Recording {
        async fn publish(&self, version: &PublishedVersion, head: u64) -> Result<(), BusError> {
            if self.down {
                return Err(BusError("down".to_owned()));
            }
            self.published
                .lock()
                .unwrap()
                .push((version.version.0, head));
            Ok(())
        }

        async fn assign_canary(&self, _: Option<&CanaryAssignment>) -> Result<bool, BusError> {
            Ok(false)
        }
    }

    async fn service_with_two_versions(dir: &TempDir) -> RegistryService {
        let service = RegistryService::open(dir.store().await).await.unwrap();
        service.seed_if_empty(FAST, "test").await.unwrap();
        service
            .execute(
                crate::domain::Command::Publish {
                    text: LONG.to_owned(),
                    format: mana_llm_shared::DocumentFormat::Yaml,
                    source: crate::domain::PublishSource::Push,
                    origin: "test".to_owned(),
                    expected_version: None,
                },
                "test",
            )
            .await
            .unwrap();
        service
    }

    #[tokio::test]
    async fn rows_go_out_in_order_with_the_head_and_only_once() {
        let dir = TempDir::new();
        let service = service_with_two_versions(&dir).await;
        let bus = Recording::default();
        assert!(drain_once(&service, &bus).await);
        assert_eq!(*bus.published.lock().unwrap(), [(1, 2), (2, 2)]);
        assert!(drain_once(&service, &bus).await);
        assert_eq!(
            bus.published.lock().unwrap().len(),
            2,
            "sent rows stay sent"
        );
    }

    #[tokio::test]
    async fn a_failing_bus_keeps_the_rows_for_the_next_drain() {
        let dir = TempDir::new();
        let service = service_with_two_versions(&dir).await;
        let down = Recording {
            down: true,
            ..Recording::default()
        };
        assert!(!drain_once(&service, &down).await);
        assert_eq!(service.store().unsent_outbox(10).await.unwrap().len(), 2);
        let up = Recording::default();
        assert!(drain_once(&service, &up).await);
        assert_eq!(*up.published.lock().unwrap(), [(1, 2), (2, 2)]);
    }

    #[tokio::test]
    async fn an_undecodable_row_is_recorded_and_skipped_not_a_block() {
        let dir = TempDir::new();
        let service = service_with_two_versions(&dir).await;
        sqlx::query("UPDATE outbox SET document = '{not json' WHERE version = 1")
            .execute(service.store().pool())
            .await
            .unwrap();
        let bus = Recording::default();
        assert!(drain_once(&service, &bus).await);
        assert_eq!(*bus.published.lock().unwrap(), [(2, 2)]);
        assert!(service.store().unsent_outbox(10).await.unwrap().is_empty());
        let (error,): (Option<String>,) =
            sqlx::query_as("SELECT last_error FROM outbox WHERE version = 1")
                .fetch_one(service.store().pool())
                .await
                .unwrap();
        assert!(
            error.is_some_and(|e| e.starts_with("undecodable")),
            "the skipped row says why"
        );
    }

    #[tokio::test]
    async fn reconcile_waits_for_the_outbox_and_then_sends_the_head() {
        let dir = TempDir::new();
        let service = service_with_two_versions(&dir).await;
        let bus = Recording::default();
        // Unsent rows: the outbox goes first, reconcile must not jump ahead of it.
        assert!(reconcile_once(&service, &bus).await);
        assert!(bus.published.lock().unwrap().is_empty());
        assert!(drain_once(&service, &bus).await);
        bus.published.lock().unwrap().clear();
        assert!(reconcile_once(&service, &bus).await);
        assert_eq!(*bus.published.lock().unwrap(), [(2, 2)]);
    }
}
