//! mana-llm data plane: the OpenAI-compatible API in front of every provider.
//!
//! Read in request order:
//! - [`config`]: settings from the environment, validated once.
//! - [`server`]: `App::build(config)`, `router()` and `run(listener, shutdown)`.
//! - [`api`]: the HTTP handlers, thin: extract, call, map.
//! - [`router`]: model → chain ([`router::plan`]) → the first entry that answers ([`router::walk`]).
//! - [`snapshot`]: the registry and the providers derived from it, swapped atomically.
//! - [`sync`]: following the control plane's published versions.
//! - [`redis`]: the shared Redis connection with short timeouts and a down/up state.
//! - [`health`]: per-provider circuit breakers and the background probe.
//! - [`openai`]: the wire types and request validation.
//! - [`providers`]: one module per upstream API behind one trait.
//! - [`cache`]: the exact-match response cache (local tier in front of Redis, single flight).
//! - [`streaming`]: SSE responses with keep-alive and in-band errors.
//! - [`error`]: the one error type of the HTTP edge, OpenAI-shaped.
//! - [`scrub`]: the process's secret values, replaced in any upstream text we pass on.
//! - [`metrics`]: this worker's Prometheus registry.
//! - [`fleet`]: this worker's heartbeat and its figures per registry version.

pub mod api;
pub mod background;
pub mod budget;
pub mod cache;
pub mod config;
pub mod conn;
pub mod error;
pub mod fleet;
pub mod headers;
pub mod health;
pub mod logging;
pub mod metrics;
pub mod openai;
pub mod providers;
pub mod redis;
pub mod router;
pub mod scrub;
pub mod server;
pub mod settings;
pub mod snapshot;
pub mod state;
pub mod streaming;
pub mod sync;
pub mod usecase;

pub use config::{GatewayConfig, Source};
pub use server::{run, App};
