//! The control plane's own operational endpoints: `/health`, `/ready`, `/metrics`.

use std::sync::Arc;

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use mana_llm_shared::clock::unix_now;
use mana_llm_shared::fleet::{Beat, Beats};
use prometheus::{
    Encoder, Gauge, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry, TextEncoder,
};
use serde_json::json;

use crate::service::RegistryService;

pub struct Ops {
    service: RegistryService,
    registry: Registry,
    pub reloads_total: IntCounterVec,
    pub registry_version: IntGauge,
    pub outbox_pending: IntGauge,
    /// Live workers per registry version they serve (from the heartbeats).
    pub fleet_workers: IntGaugeVec,
    /// The longest any live worker has served an older version than the current one.
    pub fleet_max_lag: Gauge,
    /// The running rollout's candidate version (0: none).
    pub rollout_candidate: IntGauge,
    fleet: std::sync::OnceLock<Arc<dyn Beats>>,
}

impl Ops {
    pub fn new(service: RegistryService) -> Result<Arc<Self>, prometheus::Error> {
        let registry = Registry::new();
        let reloads_total = IntCounterVec::new(
            Opts::new(
                "mana_llm_control_plane_reloads_total",
                "Reloads from the aliases file by result",
            ),
            &["result"],
        )?;
        let registry_version = IntGauge::new(
            "mana_llm_control_plane_registry_version",
            "The current registry version",
        )?;
        let outbox_pending = IntGauge::new(
            "mana_llm_control_plane_outbox_pending",
            "Committed versions not yet published to the bus",
        )?;
        registry.register(Box::new(reloads_total.clone()))?;
        registry.register(Box::new(registry_version.clone()))?;
        registry.register(Box::new(outbox_pending.clone()))?;
        let fleet_workers = IntGaugeVec::new(
            Opts::new(
                "mana_llm_fleet_workers",
                "Live workers by the registry version they serve",
            ),
            &["registry_version"],
        )?;
        let fleet_max_lag = Gauge::new(
            "mana_llm_fleet_max_lag_seconds",
            "How long the most lagging live worker has served an older version than the current one",
        )?;
        let rollout_candidate = IntGauge::new(
            "mana_llm_rollout_candidate_version",
            "The candidate version of the staged rollout in progress (0: none)",
        )?;
        registry.register(Box::new(fleet_workers.clone()))?;
        registry.register(Box::new(fleet_max_lag.clone()))?;
        registry.register(Box::new(rollout_candidate.clone()))?;
        Ok(Arc::new(Self {
            service,
            registry,
            reloads_total,
            registry_version,
            outbox_pending,
            fleet_workers,
            fleet_max_lag,
            rollout_candidate,
            fleet: std::sync::OnceLock::new(),
        }))
    }

    /// Adds a metric made elsewhere (the Redis bus's repair counter) to `/metrics`.
    pub fn register(
        &self,
        collector: Box<dyn prometheus::core::Collector>,
    ) -> Result<(), prometheus::Error> {
        self.registry.register(collector)
    }

    /// Reports the fleet (from these heartbeats) in `/metrics`.
    pub fn watch_fleet(&self, beats: Arc<dyn Beats>) {
        let _ = self.fleet.set(beats);
    }

    pub fn router(self: &Arc<Self>) -> Router {
        Router::new()
            .route("/health", get(health))
            .route("/ready", get(health))
            .route("/metrics", get(metrics))
            .with_state(self.clone())
    }
}

/// Sets the fleet gauges from the live workers (stale versions disappear from the labels).
async fn observe_fleet(ops: &Ops, workers: &[Beat]) {
    let current = ops.service.current_version().await;
    ops.fleet_workers.reset();
    let mut per_version: std::collections::BTreeMap<u64, i64> = Default::default();
    for w in workers {
        *per_version.entry(w.registry_version.0).or_default() += 1;
    }
    for (version, n) in per_version {
        ops.fleet_workers
            .with_label_values(&[&version.to_string()])
            .set(n);
    }
    let lagging = workers.iter().any(|w| w.registry_version < current);
    let lag = if lagging {
        crate::api::committed_at(&ops.service, current)
            .await
            .map_or(0.0, |t| (unix_now() - t).max(0.0))
    } else {
        0.0
    };
    ops.fleet_max_lag.set(lag);
}

async fn health(State(ops): State<Arc<Ops>>) -> Json<serde_json::Value> {
    Json(
        json!({"status": "healthy", "service": "mana-llm-control-plane", "registry_version": ops.service.current_version().await}),
    )
}

async fn metrics(State(ops): State<Arc<Ops>>) -> impl IntoResponse {
    ops.registry_version
        .set(i64::try_from(ops.service.current_version().await.0).unwrap_or(i64::MAX));
    if let Ok(rows) = ops.service.store().unsent_outbox(1000).await {
        ops.outbox_pending
            .set(i64::try_from(rows.len()).unwrap_or(i64::MAX));
    }
    let candidate = ops
        .service
        .rollout()
        .await
        .map_or(0, |r| r.candidate_version.0);
    ops.rollout_candidate
        .set(i64::try_from(candidate).unwrap_or(i64::MAX));
    if let Some(beats) = ops.fleet.get() {
        if let Some(workers) = beats.list().await {
            observe_fleet(&ops, &workers).await;
        }
    }
    let mut out = Vec::new();
    if let Err(e) = TextEncoder::new().encode(&ops.registry.gather(), &mut out) {
        tracing::error!(error = %e, "metrics encoding failed");
    }
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        out,
    )
}
