//! Following the control plane: every version it publishes becomes this worker's snapshot.
//!
//! Versions only move forward ([`crate::snapshot::Snapshots::install`] ignores older ones), so
//! a late or repeated message is harmless.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use mana_llm_shared::bus::{PublishedVersion, VersionAnnouncement};
use tokio::sync::{watch, Mutex};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::redis::subscriber::Follower;
use crate::redis::SharedRedis;
use crate::server::{App, Origin, Rejected};
use sha2::{Digest, Sha256};

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
                // Checked like any other version; a refusal is already logged and counted.
                let _ = app.install(published, Origin::Local);
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
        catch_up(&self.app, &self.redis, &mut state.refused).await;
    }
}

#[async_trait]
impl Follower for Registry {
    fn channel(&self) -> String {
        self.redis.names().versions_channel()
    }

    async fn on_message(&self, payload: &str) {
        let announced = serde_json::from_str::<VersionAnnouncement>(payload).ok();
        match announced {
            Some(a) if a.version <= self.app.state().snapshots.version().0 => {}
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

/// Installs the version in the `current` key if it is newer than ours and passes every check
/// ([`App::install`]).
async fn catch_up(app: &App, redis: &SharedRedis, refused: &mut Refused) {
    let key = redis.names().current_key();
    let raw: Option<Option<String>> = redis
        .call_patient("registry_get", |mut conn| async move {
            redis::cmd("GET").arg(key).query_async(&mut conn).await
        })
        .await;
    let Some(Some(raw)) = raw else { return };
    let digest = Refused::digest(&raw);
    if refused.0.as_ref() == Some(&digest) {
        return;
    }
    let outcome = match serde_json::from_str::<PublishedVersion>(&raw) {
        Ok(published) if published.version <= app.state().snapshots.version().0 => Ok(false),
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
