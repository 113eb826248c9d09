//! The admin API under `/admin/v1`: push, validate, inspect, diff and roll back registry
//! versions, read the audit log, reload from the file.
//!
//! Every request needs `Authorization: Bearer $MANA_LLM_ADMIN_TOKEN` (compared in constant
//! time), or the web console's session cookie with, on writes, its CSRF token (see
//! [`console`], which this router also mounts under `/admin/`). With no token
//! configured, only loopback peers are answered, and never a request that came through a proxy
//! (forwarding headers), addressed to a non-loopback host name or sent by another site's page;
//! a server listening beyond loopback without a token mounts [`disabled_router`] instead.
//! Errors share one JSON shape, `{"error": {"message", "type", "code", …}}`; the token never
//! appears in any answer or log line.

mod auth;
pub mod console;
#[cfg(test)]
mod contract_tests;
mod error;
mod extract;
mod fleet;
mod handlers;
mod rollout;
#[cfg(test)]
pub(crate) mod tests;
mod validate;

use std::path::PathBuf;
use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::middleware::from_fn_with_state;
use axum::response::IntoResponse;
use axum::routing::{any, get, post};
use axum::Router;

use crate::service::RegistryService;
use console::session::Sessions;

pub use auth::is_loopback;
pub(crate) use auth::{tokenless, Gate};
pub use error::AdminError;
pub use fleet::committed_at;

pub struct AdminState {
    pub service: RegistryService,
    /// `None`: no token configured, loopback peers only.
    pub token: Option<String>,
    /// The aliases file `POST /registry/reload` re-reads.
    pub aliases_path: Option<PathBuf>,
    /// The workers' heartbeats (the fleet view); `None` without a fleet store.
    pub fleet: Option<Arc<dyn mana_llm_shared::fleet::Beats>>,
    /// The running rollout's figures (kept by [`crate::rollout::spawn`]) and the judge's
    /// default settings.
    pub rollouts: Arc<crate::rollout::Watch>,
}

/// The admin routes and the console, to be merged into a server that provides
/// `ConnectInfo<SocketAddr>`. The console's sessions live as long as this router.
pub fn router(state: Arc<AdminState>) -> Router {
    let gate = Gate {
        admin: state.clone(),
        sessions: Arc::new(Sessions::default()),
    };
    // Room for the largest document the policy accepts (the push handler answers a clear 413
    // past it); axum's own default would cut at 2 MB with a plain-text answer.
    let body_limit = state
        .service
        .policy()
        .limits
        .max_bytes
        .saturating_add(64 * 1024);
    Router::new()
        .route(
            "/admin/v1/registry",
            get(handlers::current).post(handlers::push),
        )
        .route("/admin/v1/registry/versions", get(handlers::versions))
        .route(
            "/admin/v1/registry/versions/{version}",
            get(handlers::version),
        )
        .route("/admin/v1/registry/validate", post(validate::validate))
        .route("/admin/v1/registry/diff", get(handlers::diff))
        .route("/admin/v1/registry/rollback", post(handlers::rollback))
        .route("/admin/v1/registry/reload", post(handlers::reload))
        .route("/admin/v1/audit", get(handlers::audit))
        .route("/admin/v1/fleet", get(fleet::fleet))
        .route(
            "/admin/v1/registry/versions/{version}/rollout",
            get(fleet::rollout),
        )
        .route("/admin/v1/rollout", get(rollout::status))
        .route("/admin/v1/rollout/promote", post(rollout::promote))
        .route("/admin/v1/rollout/abort", post(rollout::abort))
        .route_layer(from_fn_with_state(gate.clone(), auth::require_admin))
        .layer(DefaultBodyLimit::max(body_limit))
        .with_state(state)
        .merge(console::router(gate))
}

/// What a server listening beyond loopback without a token mounts instead of [`router`]:
/// every admin path answers 403 saying to set the token, rather than a 404 that would read as
/// "no such version".
pub fn disabled_router() -> Router {
    let disabled = || async { AdminError::Disabled.into_response() };
    // The console's own paths too: `{*rest}` does not match an empty rest.
    Router::new()
        .route("/admin", any(disabled))
        .route("/admin/", any(disabled))
        .route("/admin/{*rest}", any(disabled))
}

/// The JSON body of an answer, keys sorted at every level (the contract's types keep their
/// declaration order; every answer goes through a `Value`, as it always has).
pub(crate) fn body<T: serde::Serialize>(
    answer: &T,
) -> Result<axum::Json<serde_json::Value>, AdminError> {
    serde_json::to_value(answer)
        .map(axum::Json)
        .map_err(|e| AdminError::Internal(e.to_string()))
}
