//! mana-llm data plane: the OpenAI-compatible API in front of every provider.
//!
//! Modules are declared in layers, each naming only modules declared before it
//! (`scripts/module-graph --order` checks it): leaf → parts → derived → route → use case →
//! edge → root. A request runs the list bottom-up: `server` → `api` → `usecase` → `router` →
//! `cache`/`health`/`providers` → `streaming`.

// Leaf: no crate imports but each other's.
/// Where settings come from (`Source`) and the error naming a bad one.
pub mod settings;

/// The response headers the gateway adds.
pub mod headers;

/// The OpenAI wire types, their validation and its own `RequestError`.
pub mod openai;

/// The process's secret values, replaced in any upstream text we pass on.
pub mod scrub;

#[cfg(any(test, feature = "testing"))]
pub use mana_llm_shared::testing;

// Parts: what a request is served with.
/// One module per upstream API behind one trait.
pub mod providers;

/// The shared Redis connection with short timeouts and a down/up state.
pub mod redis;

/// Per-provider circuit breakers and the background probe.
pub mod health;

/// Serving connections with bounds.
pub mod conn;

/// The process-wide memory budget for request bodies in flight.
pub mod budget;

/// This worker's Prometheus registry and per-target series.
pub mod metrics;

/// The exact-match response cache (local tier in front of Redis, single flight).
pub mod cache;

/// This worker's figures per registry version, for the fleet view.
pub mod fleet;

/// Every setting, read once from one `Source` and validated there.
pub mod config;

// Derived.
/// The registry, its providers and its precomputed routes, swapped atomically.
pub mod snapshot;

// Route.
/// The error vocabulary a client sees, OpenAI-shaped (the walk answers in it).
pub mod error;

/// Model → chain ([`router::plan`]) → the first entry that answers ([`router::walk`]).
pub mod router;

/// SSE responses with keep-alive, batching and in-band errors.
pub mod streaming;

// Use case.
/// `chat` and `embeddings`: cache decision → walk → answer, recorded once.
pub mod usecase;

// Edge.
/// What every handler can reach, and the small contexts the layers below take.
pub mod state;

/// Routes, extractors and thin handlers.
pub mod api;

// Root.
/// `App::build(config)`, `router()`, installing versions and `run(listener, shutdown)`.
pub mod server;

/// Following the control plane's published versions.
pub mod sync;

/// The background tasks: followers, heartbeat, listing, probe.
pub mod background;

pub use config::{GatewayConfig, Source};
pub use server::{run, App};
