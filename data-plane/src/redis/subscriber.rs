//! The one subscriber of a worker: a single pub/sub connection carries every fleet channel
//! (registry versions, breaker changes), with one rule for catching up and one backoff.
//!
//! Each channel has a [`Follower`]. After every (re)subscription each follower re-reads the
//! state it mirrors (anything published before the subscription is in Redis, anything after
//! arrives on the channel), and on every tick it may re-read again (a follower knows when it
//! may have missed something: a slow timer, a failed call). A ping every [`TICK`] notices a
//! connection that died without closing; while there is no subscription, the followers still
//! tick, so state reachable by plain commands keeps flowing.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures_util::StreamExt;
use mana_llm_shared::backoff::Backoff;
use redis::aio::{PubSubSink, PubSubStream};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::SharedRedis;

/// How often a live subscription is pinged and followers tick.
pub const TICK: Duration = Duration::from_millis(500);
/// Bound on connecting, subscribing and pinging: off the request path, so more generous than
/// a request-path command.
const SLOW: Duration = Duration::from_secs(2);

/// One channel's follower.
#[async_trait]
pub trait Follower: Send + Sync {
    fn channel(&self) -> String;
    async fn on_message(&self, payload: &str);
    /// Re-reads everything this follower mirrors from Redis.
    async fn resync(&self);
    /// Every [`TICK`], subscribed or not: re-read if something may have been missed.
    async fn tick(&self, subscribed: bool);
    /// The subscription came (`true`) or went (`false`).
    fn subscribed(&self, _subscribed: bool) {}
}

/// Follows every channel of `followers` until `cancel` fires.
pub fn spawn(
    redis: Arc<SharedRedis>,
    followers: Vec<Arc<dyn Follower>>,
    cancel: CancellationToken,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut backoff = Backoff::default();
        loop {
            let subscribed = tokio::select! {
                _ = cancel.cancelled() => return,
                s = subscribe(&redis, &followers) => s,
            };
            match subscribed {
                Ok((sink, stream)) => {
                    backoff.succeeded();
                    for f in &followers {
                        f.subscribed(true);
                    }
                    tracing::debug!("following the fleet channels");
                    follow(&followers, sink, stream, &cancel).await;
                    for f in &followers {
                        f.subscribed(false);
                    }
                    if cancel.is_cancelled() {
                        return;
                    }
                    tracing::warn!("fleet channels lost; resubscribing (state is local meanwhile)");
                }
                Err(error) => tracing::debug!(%error, "cannot subscribe to the fleet channels"),
            }
            for f in &followers {
                f.tick(false).await;
            }
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = tokio::time::sleep(backoff.failed()) => {}
            }
        }
    })
}

async fn subscribe(
    redis: &SharedRedis,
    followers: &[Arc<dyn Follower>],
) -> Result<(PubSubSink, PubSubStream), String> {
    let pubsub = tokio::time::timeout(SLOW, redis.client().get_async_pubsub())
        .await
        .map_err(|_| "connect timed out".to_owned())?
        .map_err(|e| e.to_string())?;
    let (mut sink, stream) = pubsub.split();
    let channels: Vec<String> = followers.iter().map(|f| f.channel()).collect();
    tokio::time::timeout(SLOW, sink.subscribe(&channels))
        .await
        .map_err(|_| "subscribe timed out".to_owned())?
        .map_err(|e| e.to_string())?;
    Ok((sink, stream))
}

/// Dispatches messages until the subscription ends or `cancel` fires.
async fn follow(
    followers: &[Arc<dyn Follower>],
    mut sink: PubSubSink,
    mut stream: PubSubStream,
    cancel: &CancellationToken,
) {
    // Subscribed first, re-read second: a change made in between arrives on the channel too.
    for f in followers {
        f.resync().await;
    }
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            message = stream.next() => {
                let Some(message) = message else { return };
                let channel = message.get_channel_name();
                let Some(follower) = followers.iter().find(|f| f.channel() == channel) else {
                    continue;
                };
                match message.get_payload::<String>() {
                    Ok(text) => follower.on_message(&text).await,
                    Err(error) => tracing::warn!(%error, channel, "unreadable fleet message ignored"),
                }
            }
            _ = tick.tick() => {
                let pong = tokio::time::timeout(SLOW, sink.ping::<redis::Value>()).await;
                if !matches!(pong, Ok(Ok(_))) {
                    return;
                }
                for f in followers {
                    f.tick(true).await;
                }
            }
        }
    }
}
