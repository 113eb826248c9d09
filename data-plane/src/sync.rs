//! Following the control plane: every version it publishes becomes this worker's snapshot.
//!
//! Versions only move forward ([`crate::snapshot::Snapshots::install`] ignores older ones), so
//! a late or repeated message is harmless.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use mana_llm_shared::bus::{PublishedVersion, VersionAnnouncement};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

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

/// Follows the versions the control plane publishes to Redis: subscribe to the versions
/// channel, and also read the `current` key on every (re)connect and every `interval`, so a
/// message lost while disconnected is caught up by version number. Runs until `cancel`.
pub fn follow_redis(
    app: App,
    redis: Arc<SharedRedis>,
    interval: Duration,
    cancel: CancellationToken,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut backoff = Duration::from_millis(100);
        let mut refused = Refused::default();
        loop {
            catch_up(&app, &redis, &mut refused).await;
            let subscribed = tokio::time::timeout(redis.timeout() * 20, async {
                let mut pubsub = redis.client().get_async_pubsub().await?;
                pubsub.subscribe(redis.names().versions_channel()).await?;
                Ok::<_, redis::RedisError>(pubsub)
            })
            .await;
            let mut pubsub = match subscribed {
                Ok(Ok(p)) => p,
                _ => {
                    tokio::select! {
                        _ = cancel.cancelled() => return,
                        _ = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(2));
                    continue;
                }
            };
            backoff = Duration::from_millis(100);
            // Subscribed: anything published before this moment is in `current`.
            catch_up(&app, &redis, &mut refused).await;
            let mut messages = pubsub.on_message();
            let mut timer = tokio::time::interval(interval);
            timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = cancel.cancelled() => return,
                    message = messages.next() => {
                        let Some(message) = message else { break };
                        let announced = message
                            .get_payload::<String>()
                            .ok()
                            .and_then(|p| serde_json::from_str::<VersionAnnouncement>(&p).ok());
                        match announced {
                            Some(a) if a.version <= app.state().snapshots.version().0 => {}
                            _ => catch_up(&app, &redis, &mut refused).await,
                        }
                    }
                    _ = timer.tick() => catch_up(&app, &redis, &mut refused).await,
                }
            }
            tracing::warn!("registry subscription lost; reconnecting");
        }
    })
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
