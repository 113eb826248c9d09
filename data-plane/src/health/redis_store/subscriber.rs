//! The subscriber task: follows the breaker channel on a dedicated pub/sub connection so a
//! change made by any worker reaches this worker's mirror within milliseconds, and re-reads
//! every breaker whenever changes may have been missed (on each (re)subscription, and after
//! this worker's own Redis calls failed).
//!
//! A lost connection is retried with a small, growing backoff; while it is down the store is
//! "not shared". A ping on the subscription every [`TICK`] notices a connection that died
//! without closing.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use redis::aio::{PubSubSink, PubSubStream};
use tokio_util::sync::CancellationToken;

use super::{wire, Inner};

/// First wait after a lost or failed subscription; doubles up to [`MAX_BACKOFF`].
const MIN_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(2);
/// How often a live subscription is pinged and a pending re-sync retried.
const TICK: Duration = Duration::from_millis(500);
/// Bound on connecting, subscribing and pinging; off the request path, so more generous
/// than a request-path command.
const SLOW: Duration = Duration::from_secs(2);

/// Runs until `stop` fires.
pub(super) async fn run(inner: Arc<Inner>, stop: CancellationToken) {
    let mut backoff = MIN_BACKOFF;
    loop {
        let subscribed = tokio::select! {
            _ = stop.cancelled() => return,
            s = subscribe(&inner) => s,
        };
        match subscribed {
            Ok((sink, stream)) => {
                backoff = MIN_BACKOFF;
                inner.subscribed.store(true, Ordering::SeqCst);
                tracing::debug!("following shared breaker changes");
                follow(&inner, sink, stream, &stop).await;
                inner.subscribed.store(false, Ordering::SeqCst);
                inner.stale.store(true, Ordering::SeqCst);
                if stop.is_cancelled() {
                    return;
                }
                tracing::warn!("breaker channel lost; health is local until it is back");
            }
            Err(error) => tracing::debug!(%error, "cannot subscribe to breaker changes"),
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

async fn subscribe(inner: &Inner) -> Result<(PubSubSink, PubSubStream), String> {
    let channel = inner.redis.names().breaker_channel();
    let pubsub = tokio::time::timeout(SLOW, inner.redis.client().get_async_pubsub())
        .await
        .map_err(|_| "connect timed out".to_owned())?
        .map_err(|e| e.to_string())?;
    let (mut sink, stream) = pubsub.split();
    tokio::time::timeout(SLOW, sink.subscribe(&channel))
        .await
        .map_err(|_| "subscribe timed out".to_owned())?
        .map_err(|e| e.to_string())?;
    Ok((sink, stream))
}

/// Applies messages until the subscription ends or `stop` fires.
async fn follow(
    inner: &Inner,
    mut sink: PubSubSink,
    mut stream: PubSubStream,
    stop: &CancellationToken,
) {
    // Subscribed first, re-read second: a change made in between arrives on the channel too,
    // and its `seq` keeps the mirror from going backwards.
    inner.stale.store(true, Ordering::SeqCst);
    inner.resync().await;
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            message = stream.next() => {
                let Some(message) = message else { return };
                match message.get_payload::<String>() {
                    Ok(text) => match wire::parse(&text) {
                        Ok(update) => inner.mirror.apply(update),
                        Err(error) => tracing::warn!(%error, "unreadable breaker message ignored"),
                    },
                    Err(error) => tracing::warn!(%error, "unreadable breaker message ignored"),
                }
            }
            _ = tick.tick() => {
                let pong = tokio::time::timeout(SLOW, sink.ping::<redis::Value>()).await;
                if !matches!(pong, Ok(Ok(_))) {
                    return;
                }
                // Calls that failed meanwhile (or a Redis that is still down for commands)
                // may have hidden other workers' changes.
                if !inner.redis.is_up() {
                    inner.stale.store(true, Ordering::SeqCst);
                }
                if inner.stale.load(Ordering::SeqCst) {
                    inner.resync().await;
                }
            }
        }
    }
}
