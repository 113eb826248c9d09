//! Following the control plane: every version it publishes becomes this worker's snapshot,
//! and a staged rollout's assignment decides whether it serves the candidate ([`canary`]).
//!
//! Stable versions only move forward ([`crate::snapshot::Snapshots::install`] ignores older
//! ones), so a late or repeated message is harmless.

pub mod canary;

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use mana_llm_shared::bus::{CanaryAssignment, PublishedVersion, VersionAnnouncement};
use tokio::sync::{watch, Mutex};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::redis::subscriber::Follower;
use crate::redis::SharedRedis;
use crate::server::{App, Origin, Rejected};
use sha2::{Digest, Sha256};

/// Installs each version published on the in-process bus, and follows its rollout
/// assignment, until `cancel` fires.
pub fn follow_local(
    app: App,
    mut versions: watch::Receiver<Option<PublishedVersion>>,
    mut canaries: watch::Receiver<Option<CanaryAssignment>>,
    cancel: CancellationToken,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut memory = canary::Memory::default();
        loop {
            let latest = versions.borrow_and_update().clone();
            if let Some(published) = latest {
                // Checked like any other version; a refusal is already logged and counted.
                let _ = app.install(published, Origin::Local);
            }
            let assignment = canaries.borrow_and_update().clone();
            let _ = canary::follow(&app, assignment, Origin::Local, &mut memory);
            tokio::select! {
                _ = cancel.cancelled() => return,
                changed = versions.changed() => {
                    if changed.is_err() {
                        return;
                    }
                }
                changed = canaries.changed() => {
                    if changed.is_err() {
                        return;
                    }
                }
            }
        }
    })
}

/// Follows the versions the control plane publishes to Redis, as one [`Follower`] of the
/// worker's subscriber: an announcement of a newer version, every (re)subscription and a slow
/// timer (`interval`) each read the `current` key, so a message lost while disconnected is
/// caught up by version number.
pub struct Registry {
    app: App,
    redis: Arc<SharedRedis>,
    interval: Duration,
    state: Mutex<FollowState>,
}

#[derive(Default)]
struct FollowState {
    refused: Refused,
    /// The last assignment refused, reported once like a refused version.
    refused_canary: Refused,
    canary: canary::Memory,
    last_read: Option<Instant>,
}

impl Registry {
    pub fn new(app: App, redis: Arc<SharedRedis>, interval: Duration) -> Arc<Self> {
        Arc::new(Self {
            app,
            redis,
            interval,
            state: Mutex::new(FollowState::default()),
        })
    }

    async fn read(&self) {
        let mut state = self.state.lock().await;
        state.last_read = Some(Instant::now());
        catch_up(&self.app, &self.redis, &mut state).await;
    }
}

#[async_trait]
impl Follower for Registry {
    fn channel(&self) -> String {
        self.redis.names().versions_channel()
    }

    async fn on_message(&self, payload: &str) {
        // A version this worker already holds as stable needs no read; anything else (a newer
        // version, a rollout's assignment changing) does.
        let announced = serde_json::from_str::<VersionAnnouncement>(payload).ok();
        match announced {
            Some(a) if a.version <= self.app.state().snapshots.stable_version() => {}
            _ => self.read().await,
        }
    }

    async fn resync(&self) {
        self.read().await;
    }

    async fn tick(&self, _subscribed: bool) {
        let due = self
            .state
            .lock()
            .await
            .last_read
            .is_none_or(|at| at.elapsed() >= self.interval);
        if due {
            self.read().await;
        }
    }

    fn subscribed(&self, subscribed: bool) {
        if !subscribed {
            tracing::warn!("registry subscription lost; reconnecting");
        }
    }
}

/// The last `current` value this follower refused, so a forgery that stays in Redis is
/// reported once, not on every tick until the control plane repairs it.
#[derive(Default)]
struct Refused(Option<Vec<u8>>);

impl Refused {
    fn digest(raw: &str) -> Vec<u8> {
        Sha256::digest(raw.as_bytes()).to_vec()
    }
}

/// Reads the `current` and canary keys in one round trip; installs the version if it is
/// newer than ours and passes every check ([`App::install`]), then follows the assignment.
async fn catch_up(app: &App, redis: &SharedRedis, state: &mut FollowState) {
    let keys = [redis.names().current_key(), redis.names().canary_key()];
    let read: Option<(Option<String>, Option<String>)> = redis
        .call_patient("registry_get", |mut conn| async move {
            redis::cmd("MGET").arg(&keys).query_async(&mut conn).await
        })
        .await;
    let Some((current, canary_raw)) = read else {
        return;
    };
    if let Some(raw) = current {
        install_current(app, &raw, &mut state.refused);
    }
    let Some(raw) = canary_raw else {
        let _ = canary::follow(app, None, Origin::Redis, &mut state.canary);
        state.refused_canary.0 = None;
        return;
    };
    let digest = Refused::digest(&raw);
    if state.refused_canary.0.as_ref() == Some(&digest) {
        return;
    }
    let outcome = match serde_json::from_str::<CanaryAssignment>(&raw) {
        Ok(assignment) => canary::follow(app, Some(assignment), Origin::Redis, &mut state.canary),
        Err(e) => {
            canary::back_to_stable(app);
            Err(app.reject(
                0,
                Rejected::new("unreadable", format!("not a rollout assignment: {e}")),
            ))
        }
    };
    state.refused_canary.0 = outcome.is_err().then_some(digest);
}

fn install_current(app: &App, raw: &str, refused: &mut Refused) {
    let digest = Refused::digest(raw);
    if refused.0.as_ref() == Some(&digest) {
        return;
    }
    let outcome = match serde_json::from_str::<PublishedVersion>(raw) {
        Ok(published) if published.version <= app.state().snapshots.stable_version() => Ok(false),
        Ok(published) => app.install(published, Origin::Redis),
        Err(e) => Err(app.reject(
            0,
            Rejected::new("unreadable", format!("not a published version: {e}")),
        )),
    };
    refused.0 = outcome.is_err().then_some(digest);
}

/// Fetches the current version from a control plane's admin API (a worker's fallback at start
/// when Redis has none).
pub async fn fetch_from_control_plane(
    url: &str,
    token: Option<&str>,
) -> Result<PublishedVersion, String> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .map_err(|e| e.to_string())?;
    let mut request = client.get(format!("{}/admin/v1/registry", url.trim_end_matches('/')));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request
        .send()
        .await
        .map_err(|e| format!("control plane unreachable: {}", e.without_url()))?;
    if !response.status().is_success() {
        return Err(format!("control plane answered {}", response.status()));
    }
    response
        .json::<PublishedVersion>()
        .await
        .map_err(|e| format!("unreadable answer: {e}"))
}

#[cfg(test)]
mod tests;
