//! The background work of a running worker: following the control plane's versions and the
//! shared breakers (with Redis), the heartbeat, the model listing for metric labels and the
//! probe. Every task stops on the app's cancellation token and is tracked, so the process
//! waits for them (until its drain deadline) before it exits.

use std::sync::Arc;
use std::time::Duration;

use mana_llm_shared::fleet::{Beat, Beats};
use tokio_util::sync::CancellationToken;

use crate::fleet::{fleet_id, unix_now};
use crate::health::probe;
use crate::redis::subscriber::Follower;
use crate::server::App;
use crate::state::AppState;

impl App {
    /// Starts the background work: the probe (if configured) and, with Redis, following the
    /// registry versions the control plane publishes. It stops on [`App::stop_background`].
    pub fn spawn_background(&self) {
        let cancel = self.state.background.clone();
        if let Some(redis) = &self.state.redis {
            // One subscription for every fleet channel: registry versions and breakers.
            let mut followers: Vec<Arc<dyn Follower>> = vec![crate::sync::Registry::new(
                self.clone(),
                redis.clone(),
                self.state.config.sync_interval,
            )];
            followers.extend(self.state.breakers.clone());
            self.track(crate::redis::subscriber::spawn(
                redis.clone(),
                followers,
                cancel.clone(),
            ));
        }
        self.track(spawn_heartbeat(
            self.state.clone(),
            self.state.beats.clone(),
            self.state.config.heartbeat_interval,
            cancel.clone(),
        ));
        let Some(config) = self.state.config.probe else {
            return;
        };
        // Each worker lists for its own metric labels (the probe runs on one leader only).
        self.track(crate::metrics::listed::spawn(
            self.state.metrics.listed.clone(),
            configured_providers(self.state.clone()),
            config.interval,
            config.timeout,
            cancel.clone(),
        ));
        self.track(probe::spawn(
            self.state.health.clone(),
            configured_providers(self.state.clone()),
            config,
            cancel,
        ));
    }
}

/// The providers the current snapshot configures, asked anew on every call (background tasks
/// follow registry swaps this way).
fn configured_providers(
    state: Arc<AppState>,
) -> impl Fn() -> Vec<Arc<dyn crate::providers::Provider>> + Send + Sync + 'static {
    move || {
        state
            .snapshots
            .load()
            .providers
            .configured()
            .cloned()
            .collect()
    }
}

/// Beats every `interval` until `cancel`. Nothing is written on the way out: the beat expires
/// after three missed intervals, which is what makes a worker that dies without warning leave
/// the view too.
pub fn spawn_heartbeat(
    state: Arc<AppState>,
    beats: Arc<dyn Beats>,
    interval: Duration,
    cancel: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    let started_at = unix_now();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = tick.tick() => {}
            }
            let Some(listen) = state.listen.get() else {
                continue;
            };
            let ttl = interval * 3;
            let beat = Beat {
                worker_id: fleet_id(&state.config.worker_id).into(),
                listen: listen.to_string(),
                binary_version: env!("CARGO_PKG_VERSION").to_owned(),
                registry_version: state.snapshots.version(),
                started_at,
                beat_at: unix_now(),
                ttl: ttl.as_secs_f64(),
                in_flight: u64::try_from(state.metrics.in_flight.get()).unwrap_or(0),
                windows: state.fleet_stats.take(),
                breakers: state.breaker_states(),
            };
            if !beats.write(&beat, ttl).await {
                tracing::debug!("heartbeat not written (fleet store unavailable)");
            }
        }
    })
}
