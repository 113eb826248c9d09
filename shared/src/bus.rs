//! What the control plane tells the workers, and where in Redis it goes.
//!
//! The control plane writes the latest version document to the `current` key and publishes a
//! small [`VersionAnnouncement`] on the `versions` channel. Workers subscribe, and also compare
//! the `current` key with their own version on (re)connect and on a slow timer, so a missed
//! message is caught up by version number.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::registry::RegistryDocument;

/// Announced on the versions channel after a version commits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionAnnouncement {
    pub version: u64,
    pub hash: String,
}

/// The value of the `current` key: a whole version, enough to serve it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublishedVersion {
    pub version: u64,
    pub hash: String,
    pub document: RegistryDocument,
}

impl PublishedVersion {
    pub fn announcement(&self) -> VersionAnnouncement {
        VersionAnnouncement {
            version: self.version,
            hash: self.hash.clone(),
        }
    }
}

/// Redis key and channel names, under a prefix so several deployments can share one Redis.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BusNames {
    prefix: String,
}

/// The prefix when none is configured.
pub const DEFAULT_PREFIX: &str = "mana-llm";

impl BusNames {
    pub fn new(prefix: &str) -> Self {
        let prefix = prefix.trim().trim_end_matches(':');
        Self {
            prefix: if prefix.is_empty() {
                DEFAULT_PREFIX
            } else {
                prefix
            }
            .to_owned(),
        }
    }

    /// The key holding the latest [`PublishedVersion`] as JSON.
    pub fn current_key(&self) -> String {
        format!("{}:registry:current", self.prefix)
    }

    /// The channel carrying [`VersionAnnouncement`]s as JSON.
    pub fn versions_channel(&self) -> String {
        format!("{}:registry:versions", self.prefix)
    }

    /// The hash holding one provider's shared circuit breaker.
    pub fn breaker_key(&self, provider: &str) -> String {
        format!("{}:breaker:{provider}", self.prefix)
    }

    /// The set of providers that have a shared breaker (for a full re-sync).
    pub fn breakers_index(&self) -> String {
        format!("{}:breakers", self.prefix)
    }

    /// The channel announcing breaker changes, so every worker's mirror follows in milliseconds.
    pub fn breaker_channel(&self) -> String {
        format!("{}:breaker:events", self.prefix)
    }

    /// The lock a worker holds while it runs a provider's half-open trial.
    pub fn trial_lock(&self, provider: &str) -> String {
        format!("{}:breaker:{provider}:trial", self.prefix)
    }

    /// The lock the worker that runs the current probe tick holds.
    pub fn probe_lock(&self) -> String {
        format!("{}:probe:lock", self.prefix)
    }

    /// A cached response, by the hash of its canonical request and resolved chain. v2: the
    /// value is a MAC'd envelope and the hash covers the tenant; v1 entries simply miss.
    pub fn cache_key(&self, hash: &str) -> String {
        format!("{}:cache:v2:{hash}", self.prefix)
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }
}

impl Default for BusNames {
    fn default() -> Self {
        Self::new(DEFAULT_PREFIX)
    }
}

/// Why a version could not be published (the outbox retries it later).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("publishing failed: {0}")]
pub struct BusError(pub String);

/// Where the control plane publishes committed versions.
#[async_trait]
pub trait Publish: Send + Sync {
    async fn publish(&self, version: &PublishedVersion) -> Result<(), BusError>;
}

/// The in-process bus of the embedded default: the latest version in a watch channel.
#[derive(Debug, Clone)]
pub struct LocalBus {
    tx: watch::Sender<Option<PublishedVersion>>,
}

impl Default for LocalBus {
    fn default() -> Self {
        Self {
            tx: watch::channel(None).0,
        }
    }
}

impl LocalBus {
    pub fn subscribe(&self) -> watch::Receiver<Option<PublishedVersion>> {
        self.tx.subscribe()
    }
}

#[async_trait]
impl Publish for LocalBus {
    async fn publish(&self, version: &PublishedVersion) -> Result<(), BusError> {
        // Versions only move forward, as on the Redis bus.
        self.tx.send_if_modified(|current| {
            if current
                .as_ref()
                .is_some_and(|c| c.version >= version.version)
            {
                return false;
            }
            *current = Some(version.clone());
            true
        });
        Ok(())
    }
}

/// Publishes to several buses; succeeds only when all did (a retry re-publishes to all, which
/// is harmless: versions only move forward).
pub struct FanOut(pub Vec<std::sync::Arc<dyn Publish>>);

#[async_trait]
impl Publish for FanOut {
    async fn publish(&self, version: &PublishedVersion) -> Result<(), BusError> {
        for bus in &self.0 {
            bus.publish(version).await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_live_under_the_prefix() {
        let names = BusNames::new("staging:");
        assert_eq!(names.current_key(), "staging:registry:current");
        assert_eq!(names.versions_channel(), "staging:registry:versions");
        assert_eq!(
            BusNames::new(" ").current_key(),
            "mana-llm:registry:current"
        );
    }
}

#[cfg(test)]
mod local_bus_tests {
    use super::*;

    fn version(v: u64) -> PublishedVersion {
        PublishedVersion {
            version: v,
            hash: format!("h{v}"),
            document: RegistryDocument::default(),
        }
    }

    #[tokio::test]
    async fn subscribers_see_versions_move_forward_only() {
        let bus = LocalBus::default();
        let mut rx = bus.subscribe();
        bus.publish(&version(2)).await.unwrap();
        assert!(rx.has_changed().unwrap());
        assert_eq!(rx.borrow_and_update().as_ref().map(|v| v.version), Some(2));
        bus.publish(&version(1)).await.unwrap();
        assert!(!rx.has_changed().unwrap(), "an older version is ignored");
    }
}
