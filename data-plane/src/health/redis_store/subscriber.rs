//! The breakers' side of the worker's one subscriber ([`crate::redis::subscriber`]): every
//! change announced on the breaker channel goes into the mirror within milliseconds, and
//! every breaker is re-read whenever changes may have been missed (on each (re)subscription,
//! and after this worker's own Redis calls failed). While the subscription is down the store
//! is "not shared".

use std::sync::atomic::Ordering;
use std::sync::Arc;

use async_trait::async_trait;

use super::{wire, Inner};
use crate::redis::subscriber::Follower;

pub(super) struct Breakers(pub(super) Arc<Inner>);

#[async_trait]
impl Follower for Breakers {
    fn channel(&self) -> String {
        self.0.redis.names().breaker_channel()
    }

    async fn on_message(&self, payload: &str) {
        match wire::parse(payload) {
            Ok(update) => self.0.mirror.apply(update),
            Err(error) => tracing::warn!(%error, "unreadable breaker message ignored"),
        }
    }

    async fn resync(&self) {
        // Subscribed first, re-read second: a change made in between arrives on the channel
        // too, and its `seq` keeps the mirror from going backwards.
        self.0.stale.store(true, Ordering::SeqCst);
        self.0.resync().await;
    }

    async fn tick(&self, subscribed: bool) {
        let inner = &self.0;
        // Calls that failed meanwhile (or a Redis that is down for commands) may have hidden
        // other workers' changes.
        if !inner.redis.is_up() {
            inner.stale.store(true, Ordering::SeqCst);
        }
        if subscribed && inner.stale.load(Ordering::SeqCst) {
            inner.resync().await;
        }
    }

    fn subscribed(&self, subscribed: bool) {
        self.0.subscribed.store(subscribed, Ordering::SeqCst);
        if !subscribed {
            self.0.stale.store(true, Ordering::SeqCst);
            tracing::warn!("breaker channel lost; health is local until it is back");
        }
    }
}
