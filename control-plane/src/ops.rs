//! The control plane's own operational endpoints: `/health`, `/ready`, `/metrics`.

use std::sync::Arc;

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use prometheus::{Encoder, IntCounterVec, IntGauge, Opts, Registry, TextEncoder};
use serde_json::json;

use crate::service::RegistryService;

pub struct Ops {
    service: RegistryService,
    registry: Registry,
    pub reloads_total: IntCounterVec,
    pub registry_version: IntGauge,
    pub outbox_pending: IntGauge,
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
        Ok(Arc::new(Self {
            service,
            registry,
            reloads_total,
            registry_version,
            outbox_pending,
        }))
    }

    /// Adds a metric made elsewhere (the Redis bus's repair counter) to `/metrics`.
    pub fn register(
        &self,
        collector: Box<dyn prometheus::core::Collector>,
    ) -> Result<(), prometheus::Error> {
        self.registry.register(collector)
    }

    pub fn router(self: &Arc<Self>) -> Router {
        Router::new()
            .route("/health", get(health))
            .route("/ready", get(health))
            .route("/metrics", get(metrics))
            .with_state(self.clone())
    }
}

async fn health(State(ops): State<Arc<Ops>>) -> Json<serde_json::Value> {
    Json(
        json!({"status": "healthy", "service": "mana-llm-control-plane", "registry_version": ops.service.current_version().await}),
    )
}

async fn metrics(State(ops): State<Arc<Ops>>) -> impl IntoResponse {
    ops.registry_version
        .set(i64::try_from(ops.service.current_version().await).unwrap_or(i64::MAX));
    if let Ok(rows) = ops.service.store().unsent_outbox(1000).await {
        ops.outbox_pending
            .set(i64::try_from(rows.len()).unwrap_or(i64::MAX));
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
