//! `GET /v1/aliases`: the registry being served.

use std::sync::Arc;

use axum::extract::State;
use axum::Json;
use serde_json::{json, Value};

use crate::state::AppState;

pub async fn aliases(State(state): State<Arc<AppState>>) -> Json<Value> {
    let snapshot = state.snapshots.load();
    let registry = &snapshot.registry;
    let aliases: Vec<Value> = registry
        .aliases()
        .map(|a| {
            json!({
                "name": a.name,
                "description": a.description,
                "chain": a.chain.iter().map(|e| e.target.to_string()).collect::<Vec<_>>(),
            })
        })
        .collect();
    Json(json!({
        "version": registry.version().0,
        "hash": registry.hash(),
        "default": registry.default_alias(),
        "aliases": aliases,
    }))
}
