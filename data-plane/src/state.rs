//! What every handler can reach: the one state the HTTP edge is built over, and the small
//! contexts the layers below it take instead of all of it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use mana_llm_shared::bus::BusNames;
use mana_llm_shared::fleet::Beats;
use mana_llm_shared::ProviderId;
use tokio_util::sync::CancellationToken;

use crate::budget::BodyBudget;
use crate::cache::ResponseCache;
use crate::config::GatewayConfig;
use crate::fleet::{FleetStats, Listen};
use crate::health::{Health, Status};
use crate::metrics::Metrics;
use crate::redis::subscriber::Follower;
use crate::redis::SharedRedis;
use crate::router::WalkContext;
use crate::snapshot::Snapshots;
use crate::streaming::StreamContext;
use crate::usecase::Context;

/// What every handler can reach. The registry snapshot is swapped atomically; the rest is
/// fixed at start.
pub struct AppState {
    pub config: GatewayConfig,
    pub snapshots: Snapshots,
    pub health: Arc<Health>,
    pub metrics: Arc<Metrics>,
    /// Set when the fleet shares state through Redis.
    pub redis: Option<Arc<SharedRedis>>,
    pub cache: ResponseCache,
    /// Feeds the shared breakers from the breaker channel (with Redis).
    pub(crate) breakers: Option<Arc<dyn Follower>>,
    /// Figures per registry version since the last heartbeat.
    pub fleet_stats: FleetStats,
    /// Where this process listens, for the fleet view (set once bound).
    pub listen: Listen,
    /// Where heartbeats go: Redis for a fleet, memory for `serve` alone.
    pub beats: Arc<dyn Beats>,
    /// Redis key and channel names (also used for cache keys without Redis).
    pub names: BusNames,
    /// Request bodies in flight, bounded process-wide.
    pub body_budget: BodyBudget,
    pub(crate) draining: AtomicBool,
    /// Stops every background task (probe, followers, subscribers).
    pub(crate) background: CancellationToken,
    /// Every background task, awaited (up to the drain deadline) when the process stops.
    pub(crate) tasks: tokio_util::task::TaskTracker,
}

impl AppState {
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }

    /// Ready to take traffic: a registry is loaded and the worker is not draining.
    pub fn is_ready(&self) -> bool {
        !self.is_draining() && self.snapshots.version().0 > 0
    }

    /// Each known provider's breaker status as it is now (time-aware: an open breaker whose
    /// window passed reads half-open), the configured ones included before their first call.
    fn breaker_statuses(&self) -> Vec<(ProviderId, Status)> {
        let snapshot = self.snapshots.load();
        let configured: Vec<_> = snapshot
            .providers
            .configured()
            .map(|p| p.id().clone())
            .collect();
        self.health
            .snapshot(&configured)
            .into_iter()
            .filter(|(id, _)| snapshot.providers.is_known(id))
            .map(|(id, breaker)| {
                let status = self.health.status(&breaker);
                (id, status)
            })
            .collect()
    }

    /// Each configured provider's breaker state (`healthy`, `half_open`, `open`), for the
    /// heartbeat.
    pub fn breaker_states(&self) -> std::collections::BTreeMap<String, String> {
        self.breaker_statuses()
            .into_iter()
            .map(|(id, status)| {
                let state = match status {
                    Status::Healthy => "healthy",
                    Status::HalfOpen => "half_open",
                    Status::Open => "open",
                };
                (id.as_str().to_owned(), state.to_owned())
            })
            .take(mana_llm_shared::fleet::MAX_BREAKERS_PER_BEAT)
            .collect()
    }

    /// Sets the breaker gauges from the breakers as they are now.
    pub fn observe_breakers(&self) {
        for (id, status) in self.breaker_statuses() {
            let (state, healthy) = match status {
                Status::Healthy => (0, 1),
                Status::HalfOpen => (1, 0),
                Status::Open => (2, 0),
            };
            self.metrics
                .breaker_state
                .with_label_values(&[id.as_str()])
                .set(state);
            self.metrics
                .provider_healthy
                .with_label_values(&[id.as_str()])
                .set(healthy);
        }
    }
}

impl AppState {
    /// What the use cases need of this state.
    pub fn usecase(&self) -> Context<'_> {
        Context {
            snapshots: &self.snapshots,
            cache: &self.cache,
            names: &self.names,
            metrics: &self.metrics,
            walk: WalkContext {
                health: &self.health,
                request_timeout: self.config.request_timeout,
                first_token_timeout: self.config.first_token_timeout,
            },
        }
    }

    /// What writing a stream needs.
    pub fn streams(&self) -> StreamContext {
        StreamContext {
            keep_alive: self.config.keep_alive,
        }
    }
}
