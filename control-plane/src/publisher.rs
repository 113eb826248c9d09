//! The outbox publisher: after a version commits, its outbox row is published to the bus and
//! marked sent only once the bus accepted it. Rows go out in order; on a failure the loop
//! backs off (up to [`MAX_BACKOFF`]) and retries the same row, so a crash or a Redis outage
//! between commit and publish delays a version but never loses it.

use std::sync::Arc;
use std::time::Duration;

use mana_llm_shared::backoff::Backoff;
use mana_llm_shared::bus::{Publish, PublishedVersion};
use tokio::task::JoinHandle;
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
    let head = service.current_version().await;
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
                tracing::info!(version = published.version, "registry version published");
            }
            Err(e) => {
                tracing::warn!(version = published.version, error = %e, "publish failed; will retry");
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
    match bus.reconcile(&head).await {
        Ok(_) => true,
        Err(e) => {
            tracing::warn!(version = head.version, error = %e, "cannot check the published version; will retry");
            false
        }
    }
}

/// Runs until `cancel` fires: drains the outbox after every append, on a slow timer, and with
/// backoff while the bus is failing; after each full drain, checks that the bus holds the
/// current version.
pub fn spawn(
    service: RegistryService,
    bus: Arc<dyn Publish>,
    cancel: CancellationToken,
) -> JoinHandle<()> {
    tokio::spawn(async move {
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
    })
}
