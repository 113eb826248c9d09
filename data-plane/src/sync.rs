//! Following the control plane: every version it publishes becomes this worker's snapshot.
//!
//! Versions only move forward ([`crate::snapshot::Snapshots::install`] ignores older ones), so
//! a late or repeated message is harmless.

use mana_llm_shared::bus::PublishedVersion;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::server::App;

/// Installs each version published on the in-process bus until `cancel` fires.
pub fn follow_local(
    app: App,
    mut versions: watch::Receiver<Option<PublishedVersion>>,
    cancel: CancellationToken,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            let latest = versions.borrow_and_update().clone();
            if let Some(published) = latest {
                app.install(published);
            }
            tokio::select! {
                _ = cancel.cancelled() => return,
                changed = versions.changed() => {
                    if changed.is_err() {
                        return;
                    }
                }
            }
        }
    })
}
