//! The models each provider lists, as far as metric labels are concerned: asked at start and
//! then on the probe's interval, so a model the provider serves keeps its own label however
//! many other names clients send. A model name is never learned from a request.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use futures_util::future::join_all;
use tokio_util::sync::CancellationToken;

use crate::providers::Provider;

/// How many listed models of one provider get their own label; the rest count as `other`.
/// Bounds the series a provider that lists thousands of models can create.
pub const MAX_LISTED_PER_PROVIDER: usize = 512;

/// Provider id → the model names (without the provider prefix) it listed last.
#[derive(Default)]
pub struct ListedModels {
    by_provider: RwLock<HashMap<String, HashSet<String>>>,
}

impl ListedModels {
    /// Whether `provider` listed `model` the last time it answered a listing.
    pub fn contains(&self, provider: &str, model: &str) -> bool {
        let listed = self.by_provider.read().unwrap_or_else(|e| e.into_inner());
        listed.get(provider).is_some_and(|m| m.contains(model))
    }

    /// Replaces what `provider` lists with `ids` (`provider/model`, as `list_models` answers),
    /// keeping the first [`MAX_LISTED_PER_PROVIDER`].
    pub fn set<'a>(&self, provider: &str, ids: impl IntoIterator<Item = &'a str>) {
        let prefix = format!("{provider}/");
        let models: HashSet<String> = ids
            .into_iter()
            .filter_map(|id| id.strip_prefix(&prefix))
            .filter(|m| !m.is_empty())
            .take(MAX_LISTED_PER_PROVIDER)
            .map(str::to_owned)
            .collect();
        let mut listed = self.by_provider.write().unwrap_or_else(|e| e.into_inner());
        listed.insert(provider.to_owned(), models);
    }

    /// Asks every provider for its models, concurrently, each bounded by `timeout`. A provider
    /// that fails keeps what it listed before: an outage must not flip its labels to `other`.
    pub async fn refresh(&self, providers: &[Arc<dyn Provider>], timeout: Duration) {
        let listings = providers.iter().map(|p| async move {
            let listing = tokio::time::timeout(timeout, p.list_models()).await;
            (p.id().to_string(), listing)
        });
        for (provider, listing) in join_all(listings).await {
            match listing {
                Ok(Ok(models)) => self.set(&provider, models.iter().map(|m| m.id.as_str())),
                Ok(Err(e)) => {
                    tracing::debug!(%provider, error = %e, "model listing for metric labels failed")
                }
                Err(_) => tracing::debug!(%provider, "model listing for metric labels timed out"),
            }
        }
    }
}

/// Refreshes `listed` at once and then every `interval` until `cancel` fires; `providers` is
/// asked each time, so providers added by a registry version are listed too.
pub fn spawn<P>(
    listed: Arc<ListedModels>,
    providers: P,
    interval: Duration,
    timeout: Duration,
    cancel: CancellationToken,
) -> tokio::task::JoinHandle<()>
where
    P: Fn() -> Vec<Arc<dyn Provider>> + Send + 'static,
{
    tokio::spawn(async move {
        loop {
            listed.refresh(&providers(), timeout).await;
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = tokio::time::sleep(interval) => {}
            }
        }
    })
}
