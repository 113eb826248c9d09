//! The write path: command → aggregate → event store → in-memory state, and the queries the
//! admin API serves.
//!
//! One process serialises its writers with a mutex held across the append; writers in other
//! processes are caught by the store's optimistic check, after which this service reloads
//! its state from the log and reports [`ServiceError::Conflict`] (the API's 409).

#[cfg(test)]
mod tests;

use std::sync::Arc;

use mana_llm_shared::bus::{CanaryAssignment, PublishedVersion};
use mana_llm_shared::events::REGISTRY_STREAM;
use mana_llm_shared::{DocumentFormat, RegistryPolicy, RegistryVersion};
use tokio::sync::{watch, Mutex};

use crate::diff::Diff;
use crate::domain::{
    ActiveRollout, Command, DomainError, FinishedRollout, PublishSource, RegistryAggregate,
    VersionRecord,
};
use crate::projection::replay;
use crate::store::{EventStore, StoreError, StoredEvent};

/// The actor recorded for the first version taken from the file.
pub const SEED_ACTOR: &str = "seed";

#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// The command broke a rule (stale expected version, invalid text, unknown version).
    #[error(transparent)]
    Domain(#[from] DomainError),
    /// Another process changed the registry while this one was deciding; state is reloaded,
    /// so a retry sees the new version.
    #[error("the registry was changed by another writer; reload and retry")]
    Conflict,
    #[error(transparent)]
    Store(StoreError),
}

impl From<StoreError> for ServiceError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::Conflict { .. } => ServiceError::Conflict,
            other => ServiceError::Store(other),
        }
    }
}

/// What a command did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Executed {
    /// The events appended (empty for a no-op such as pushing the current content).
    pub events: Vec<StoredEvent>,
    /// The current registry version afterwards (0 = none).
    pub current_version: RegistryVersion,
}

/// The registry as this process knows it. Cheap to clone.
#[derive(Debug, Clone)]
pub struct RegistryService {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    store: EventStore,
    /// The operator's rules for new documents, given to every aggregate this service loads.
    policy: RegistryPolicy,
    state: Mutex<State>,
    /// The global sequence of the last event this service appended.
    appended: watch::Sender<u64>,
}

#[derive(Debug)]
struct State {
    aggregate: RegistryAggregate,
    /// The registry stream's last position, the expected position of the next append.
    stream_sequence: u64,
}

impl State {
    async fn load(store: &EventStore, policy: &RegistryPolicy) -> Result<Self, StoreError> {
        let events = store.load(REGISTRY_STREAM).await?;
        Ok(Self {
            aggregate: replay(&events).with_policy(policy.clone()),
            stream_sequence: events.last().map_or(0, |e| e.stream_sequence),
        })
    }
}

impl RegistryService {
    /// Replays the registry stream into memory; new documents follow the default policy.
    pub async fn open(store: EventStore) -> Result<Self, ServiceError> {
        Self::open_with_policy(store, RegistryPolicy::default()).await
    }

    /// Replays the registry stream into memory; new documents must follow `policy`.
    pub async fn open_with_policy(
        store: EventStore,
        policy: RegistryPolicy,
    ) -> Result<Self, ServiceError> {
        let state = State::load(&store, &policy)
            .await
            .map_err(ServiceError::Store)?;
        let (appended, _) = watch::channel(0);
        Ok(Self {
            inner: Arc::new(Inner {
                store,
                policy,
                state: Mutex::new(state),
                appended,
            }),
        })
    }

    /// The rules new documents must follow.
    pub fn policy(&self) -> &RegistryPolicy {
        &self.inner.policy
    }

    /// The store underneath (the publisher reads the outbox through it).
    pub fn store(&self) -> &EventStore {
        &self.inner.store
    }

    /// Decides, appends and applies one command.
    pub async fn execute(&self, command: Command, actor: &str) -> Result<Executed, ServiceError> {
        let mut state = self.inner.state.lock().await;
        let events = state.aggregate.handle(command)?;
        let appended = self
            .inner
            .store
            .append(REGISTRY_STREAM, state.stream_sequence, &events, actor)
            .await;
        let stored = match appended {
            Ok(stored) => stored,
            Err(StoreError::Conflict { .. }) => {
                tracing::warn!(actor, "registry changed by another writer; reloading");
                *state = State::load(&self.inner.store, &self.inner.policy)
                    .await
                    .map_err(ServiceError::Store)?;
                return Err(ServiceError::Conflict);
            }
            Err(other) => return Err(ServiceError::Store(other)),
        };
        for event in &stored {
            state.aggregate.apply(&event.event);
            state.stream_sequence = event.stream_sequence;
            tracing::info!(
                actor,
                kind = event.event.kind(),
                sequence = event.sequence,
                version = event.registry_version.map(|v| v.0),
                "registry event recorded"
            );
        }
        if let Some(last) = stored.last() {
            self.inner.appended.send_replace(last.sequence);
        }
        Ok(Executed {
            events: stored,
            current_version: state.aggregate.current_version(),
        })
    }

    /// Publishes `text` as the first version when no version exists yet; `None` when one
    /// did. (A log holding only rejected reloads still gets seeded.)
    pub async fn seed_if_empty(
        &self,
        text: &str,
        origin: &str,
    ) -> Result<Option<Executed>, ServiceError> {
        if self.inner.state.lock().await.aggregate.current_version() > RegistryVersion(0) {
            return Ok(None);
        }
        let command = Command::Publish {
            text: text.to_owned(),
            format: DocumentFormat::Yaml,
            source: PublishSource::Seed,
            origin: origin.to_owned(),
            expected_version: Some(RegistryVersion(0)),
        };
        match self.execute(command, SEED_ACTOR).await {
            Ok(executed) => Ok(Some(executed)),
            // Someone else wrote first (another process seeding, or a push): not empty now.
            Err(ServiceError::Conflict)
            | Err(ServiceError::Domain(DomainError::VersionConflict { .. })) => Ok(None),
            Err(other) => Err(other),
        }
    }

    /// A receiver whose value (the global sequence of the last appended event) changes after
    /// every successful append: the publisher waits on it with `changed()`.
    pub fn changes(&self) -> watch::Receiver<u64> {
        self.inner.appended.subscribe()
    }

    /// The current version, if any.
    pub async fn current(&self) -> Option<VersionRecord> {
        self.inner.state.lock().await.aggregate.current().cloned()
    }

    /// The current version number (0 = none).
    pub async fn current_version(&self) -> RegistryVersion {
        self.inner.state.lock().await.aggregate.current_version()
    }

    /// Version `v`, if it exists.
    pub async fn version(&self, v: RegistryVersion) -> Option<VersionRecord> {
        self.inner.state.lock().await.aggregate.version(v).cloned()
    }

    /// Up to `limit` versions numbered above `after`, oldest first.
    pub async fn versions(&self, after: RegistryVersion, limit: usize) -> Vec<VersionRecord> {
        let state = self.inner.state.lock().await;
        state
            .aggregate
            .versions()
            .filter(|r| r.version > after)
            .take(limit)
            .cloned()
            .collect()
    }

    /// The staged rollout in progress, if any.
    pub async fn rollout(&self) -> Option<ActiveRollout> {
        self.inner.state.lock().await.aggregate.rollout().cloned()
    }

    /// How the last rollout ended, if one did.
    pub async fn last_rollout(&self) -> Option<FinishedRollout> {
        self.inner
            .state
            .lock()
            .await
            .aggregate
            .last_rollout()
            .cloned()
    }

    /// What the bus must hold for the running rollout: its candidate, the stable version it
    /// runs beside, and the cohort rule's threshold.
    pub async fn canary(&self) -> Option<CanaryAssignment> {
        let state = self.inner.state.lock().await;
        let rollout = state.aggregate.rollout()?;
        let candidate = state.aggregate.version(rollout.candidate_version)?;
        Some(CanaryAssignment::new(
            rollout.stable_version,
            rollout.threshold,
            PublishedVersion::new(
                candidate.version,
                candidate.hash.clone(),
                candidate.document.clone(),
            ),
        ))
    }

    /// When the running rollout started, as Unix seconds, from the log.
    pub async fn rollout_started_at(&self) -> Option<f64> {
        let candidate = self.rollout().await?.candidate_version;
        self.recorded_at("RolloutStarted", candidate).await
    }

    /// When the first event of `kind` about version `v` was recorded, as Unix seconds.
    pub async fn recorded_at(&self, kind: &str, v: RegistryVersion) -> Option<f64> {
        let row: Option<(String,)> = sqlx::query_as(
            "SELECT recorded_at FROM events WHERE event_type = ?1 AND registry_version = ?2 \
             ORDER BY sequence LIMIT 1",
        )
        .bind(kind)
        .bind(i64::try_from(v.0).ok()?)
        .fetch_optional(self.inner.store.pool())
        .await
        .ok()?;
        mana_llm_shared::clock::parse_rfc3339(&row?.0)
    }

    /// What changed from version `from` to version `to`.
    pub async fn diff(
        &self,
        from: RegistryVersion,
        to: RegistryVersion,
    ) -> Result<Diff, ServiceError> {
        Ok(self.inner.state.lock().await.aggregate.diff(from, to)?)
    }

    /// The audit log: up to `limit` events after global sequence `after_sequence`.
    pub async fn audit(
        &self,
        after_sequence: u64,
        limit: u32,
    ) -> Result<Vec<StoredEvent>, ServiceError> {
        self.inner
            .store
            .events_after(after_sequence, limit)
            .await
            .map_err(ServiceError::Store)
    }

    /// Re-reads the log only when another writer appended since this service last read it
    /// (one indexed query otherwise). Returns the current version.
    pub async fn refresh_if_changed(&self) -> Result<RegistryVersion, ServiceError> {
        let last: Option<i64> =
            sqlx::query_scalar("SELECT MAX(stream_sequence) FROM events WHERE stream = ?1")
                .bind(REGISTRY_STREAM)
                .fetch_one(self.inner.store.pool())
                .await
                .map_err(|e| ServiceError::Store(e.into()))?;
        let last = last.and_then(|n| u64::try_from(n).ok()).unwrap_or(0);
        {
            let state = self.inner.state.lock().await;
            if state.stream_sequence == last {
                return Ok(state.aggregate.current_version());
            }
        }
        self.refresh().await
    }

    /// Re-reads the log (e.g. after another process wrote). Returns the current version.
    pub async fn refresh(&self) -> Result<RegistryVersion, ServiceError> {
        let mut state = self.inner.state.lock().await;
        *state = State::load(&self.inner.store, &self.inner.policy)
            .await
            .map_err(ServiceError::Store)?;
        Ok(state.aggregate.current_version())
    }
}
