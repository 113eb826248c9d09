//! Building and serving the data plane: one construction path for `main`, crate tests and
//! end-to-end tests.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use axum::serve::ListenerExt;
use axum::Router;
use tokio::net::TcpListener;

use crate::config::{ConfigError, GatewayConfig};
use crate::metrics::Metrics;
use crate::providers::Providers;

/// What every handler can reach. Immutable after start except for the draining flag.
pub struct AppState {
    pub config: GatewayConfig,
    pub providers: Providers,
    pub metrics: Metrics,
    draining: AtomicBool,
}

impl AppState {
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }
}

/// A built gateway, ready to be served.
#[derive(Clone)]
pub struct App {
    state: Arc<AppState>,
}

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("metrics registry: {0}")]
    Metrics(#[from] prometheus::Error),
}

impl App {
    /// Builds every provider the configuration enables.
    pub fn build(config: GatewayConfig) -> Result<Self, BuildError> {
        let providers = Providers::build(&config.providers)?;
        Self::with_providers(config, providers)
    }

    /// Builds with a given provider set (tests plug in their own).
    pub fn with_providers(config: GatewayConfig, providers: Providers) -> Result<Self, BuildError> {
        Ok(Self {
            state: Arc::new(AppState {
                config,
                providers,
                metrics: Metrics::new()?,
                draining: AtomicBool::new(false),
            }),
        })
    }

    pub fn state(&self) -> &Arc<AppState> {
        &self.state
    }

    pub fn router(&self) -> Router {
        crate::api::router(self.state.clone())
    }

    /// Marks the worker as draining: `/ready` answers 503 from now on.
    pub fn start_draining(&self) {
        self.state.draining.store(true, Ordering::Relaxed);
    }
}

/// Serves `router` on `listener` until `shutdown` completes, then lets in-flight requests
/// finish. Accepted sockets get TCP_NODELAY: without it, small keep-alive responses wait for
/// the peer's delayed ACK (~40 ms each).
pub async fn run<F>(listener: TcpListener, router: Router, shutdown: F) -> std::io::Result<()>
where
    F: Future<Output = ()> + Send + 'static,
{
    let listener = listener.tap_io(|tcp| {
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::warn!(error = %e, "could not set TCP_NODELAY");
        }
    });
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown)
        .await
}
