//! Building and serving the data plane: one construction path for `main`, crate tests and
//! end-to-end tests.

use std::future::Future;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use axum::Router;
use mana_llm_shared::bus::{PublishedVersion, SignatureCheck};
use mana_llm_shared::{Registry, RegistryErrors, RegistryVersion};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::cache::ResponseCache;
use crate::config::{ConfigError, GatewayConfig, Source};
use crate::fleet::{FleetStats, Listen};
use crate::health::redis_store::RedisStore;
use crate::health::{Health, HealthStore, MemoryStore, SystemClock, Transition};
use crate::metrics::Metrics;
use crate::providers::Providers;
use crate::snapshot::Snapshots;
use crate::state::AppState;
use mana_llm_shared::bus::BusNames;
use mana_llm_shared::fleet::{Beats, MemoryBeats, RedisBeats};
use mana_llm_shared::redis_client;

/// Where a published version came from: only Redis is open to writers outside the fleet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// The embedded control plane's in-process bus.
    Local,
    /// The `current` key or the versions channel.
    Redis,
    /// The control plane's admin API (asked with its token).
    ControlPlane,
}

/// Why a published version was not installed: a bounded reason (the metric label) and a
/// detail for the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejected {
    pub reason: &'static str,
    pub detail: String,
}

impl Rejected {
    pub fn new(reason: &'static str, detail: impl Into<String>) -> Self {
        Self {
            reason,
            detail: detail.into(),
        }
    }

    /// The refusal a signature check calls for (`None` when it is valid); `what` names what
    /// was checked.
    pub fn for_signature(check: SignatureCheck, what: &str) -> Option<Self> {
        match check {
            SignatureCheck::Valid => None,
            SignatureCheck::Missing => Some(Self::new(
                "unsigned",
                format!("{what} has no signature, but this worker has a fleet key"),
            )),
            SignatureCheck::Wrong => Some(Self::new(
                "bad_signature",
                format!("the signature of {what} does not match the fleet key"),
            )),
        }
    }
}

/// A built gateway, ready to be served.
#[derive(Clone)]
pub struct App {
    pub(crate) state: Arc<AppState>,
}

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("metrics registry: {0}")]
    Metrics(#[from] prometheus::Error),
}

impl App {
    /// Builds every provider the configuration enables and serves `registry`.
    pub fn build(
        config: GatewayConfig,
        registry: Registry,
        source: Source,
    ) -> Result<Self, BuildError> {
        let providers = Providers::build(&config.providers)?;
        Self::with_providers(config, providers, registry, source)
    }

    /// Builds with a given provider set (tests plug in their own).
    pub fn with_providers(
        config: GatewayConfig,
        providers: Providers,
        registry: Registry,
        source: Source,
    ) -> Result<Self, BuildError> {
        let metrics = Arc::new(Metrics::new()?);
        metrics
            .worker_info
            .with_label_values(&[&config.worker_id, env!("CARGO_PKG_VERSION")])
            .set(1);
        let background = CancellationToken::new();
        if config.redis.is_some() && config.fleet_key.is_none() {
            tracing::warn!(
                "no MANA_LLM_FLEET_KEY: registry versions and cached answers read from Redis are validated, but their origin cannot be checked; anyone who can write to Redis can plant them. Set the same MANA_LLM_FLEET_KEY on the control plane and every worker"
            );
        }
        let redis = match &config.redis {
            Some(r) => Some(crate::redis::connect(
                redis_client::open(&r.url, r.ca_file.as_deref())
                    .map_err(|e| ConfigError::new(e.key, e.message))?,
                BusNames::new(&r.prefix),
                r.timeout,
                metrics.redis_up.clone(),
                metrics.redis_errors_total.clone(),
            )),
            None => None,
        };
        let (store, breakers): (Arc<dyn HealthStore>, _) = match &redis {
            Some(redis) => {
                let store =
                    RedisStore::new(redis.clone(), config.breaker, config.worker_id.clone());
                let follower = store.follower();
                (store, Some(follower))
            }
            None => (Arc::new(MemoryStore::new(config.breaker)), None),
        };
        let health = Arc::new(
            Health::new(store, Arc::new(SystemClock))
                .with_scrubber(config.providers.scrubber.clone()),
        );
        let gauge = metrics.provider_healthy.clone();
        health.add_listener(Arc::new(move |provider, transition| {
            let up = i64::from(transition == Transition::Recovered);
            gauge.with_label_values(&[provider.as_str()]).set(up);
        }));
        let snapshots = Snapshots::new(
            providers,
            registry,
            source,
            config.registry_policy.clone(),
            metrics.clone(),
        );
        let names = BusNames::new(
            config
                .redis
                .as_ref()
                .map_or(mana_llm_shared::bus::DEFAULT_PREFIX, |r| r.prefix.as_str()),
        );
        let beats: Arc<dyn Beats> = match &redis {
            Some(redis) => Arc::new(RedisBeats::new(redis.clone())),
            None => Arc::new(MemoryBeats::default()),
        };
        let cache = ResponseCache::new(
            config.cache.clone(),
            redis.clone(),
            config.fleet_key.clone(),
            metrics.clone(),
        );
        let body_budget = crate::budget::BodyBudget::new(config.body_budget);
        let state = Arc::new(AppState {
            body_budget,
            config,
            snapshots,
            health,
            metrics,
            redis,
            cache,
            breakers,
            fleet_stats: FleetStats::default(),
            listen: Listen::default(),
            beats,
            names,
            draining: AtomicBool::new(false),
            background,
            tasks: tokio_util::task::TaskTracker::new(),
        });
        let app = Self { state };
        app.observe_snapshot();
        Ok(app)
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

    /// A token that background tasks of this app stop on.
    pub fn background(&self) -> CancellationToken {
        self.state.background.clone()
    }

    pub fn stop_background(&self) {
        self.state.background.cancel();
    }

    /// Counts `task` among the background work [`App::finish_background`] waits for.
    pub fn track(&self, task: tokio::task::JoinHandle<()>) {
        self.state.tasks.spawn(async move {
            let _ = task.await;
        });
    }

    /// Waits, until `deadline` at the latest, for every background task to end (they stop on
    /// [`App::stop_background`]); says so if one did not.
    pub async fn finish_background(&self, deadline: tokio::time::Instant) {
        self.state.tasks.close();
        if tokio::time::timeout_at(deadline, self.state.tasks.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                left = self.state.tasks.len(),
                "background tasks still running at the drain deadline"
            );
        }
    }

    /// Serves a version the control plane published, unless this worker already has it or a
    /// newer one. Returns whether it was installed, or why it was refused.
    ///
    /// Nothing is trusted because of where it came from: every version is checked against
    /// the registry rules and this worker's policy and against its own content hash, and one
    /// read from Redis must also carry the fleet key's signature when there is a key (anyone
    /// who reaches Redis can write there). A refusal is logged at ERROR and counted in
    /// `mana_llm_registry_rejected_total{reason}`; the worker keeps its last good version.
    pub fn install(&self, published: PublishedVersion, origin: Origin) -> Result<bool, Rejected> {
        let version = published.version.0;
        if origin == Origin::Redis {
            if let Some(key) = &self.state.config.fleet_key {
                let check = published.check_signature(key);
                if let Some(refused) = Rejected::for_signature(check, "the published version") {
                    return Err(self.reject(version, refused));
                }
            }
        }
        let registry = Registry::verified(
            published.document,
            RegistryVersion(version),
            published.hash.as_str(),
            &self.state.config.registry_policy,
        )
        .map_err(|e| self.reject(version, Rejected::new("invalid", e.to_string())))?;
        let installed = self.state.snapshots.install(registry);
        if installed {
            tracing::info!(version, "alias registry version installed");
            self.observe_snapshot();
        }
        Ok(installed)
    }

    /// Logs and counts a refused version.
    pub fn reject(&self, version: u64, rejected: Rejected) -> Rejected {
        tracing::error!(
            version,
            reason = rejected.reason,
            detail = %rejected.detail,
            "published registry version refused; keeping the current one"
        );
        self.state
            .metrics
            .registry_rejected_total
            .with_label_values(&[rejected.reason])
            .inc();
        rejected
    }

    /// Counts a reload result (`applied`, `unchanged`, `rejected`) in this worker's metrics.
    pub fn count_reload(&self, result: &str) {
        self.state
            .metrics
            .registry_reloads_total
            .with_label_values(&[result])
            .inc();
    }

    /// Updates the gauges that follow the snapshot.
    pub(crate) fn observe_snapshot(&self) {
        let version = i64::try_from(self.state.snapshots.version().0).unwrap_or(i64::MAX);
        self.state.metrics.registry_version.set(version);
        self.state.observe_breakers();
    }
}

/// Reads and validates an aliases file under `policy`; a missing file is reported as the
/// original did.
pub fn read_registry(
    path: &Path,
    version: mana_llm_shared::RegistryVersion,
    policy: &mana_llm_shared::RegistryPolicy,
) -> Result<Registry, RegistryErrors> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        RegistryErrors(vec![if e.kind() == std::io::ErrorKind::NotFound {
            format!("alias config not found at {}", path.display())
        } else {
            format!("cannot read {}: {e}", path.display())
        }])
    })?;
    Registry::parse_with(
        &text,
        mana_llm_shared::DocumentFormat::Yaml,
        &path.display().to_string(),
        version,
        policy,
    )
}

/// Serves `router` on `listener` within `limits` until `shutdown` completes, then lets
/// in-flight requests finish (idle and half-sent connections close at once). Accepted
/// sockets get TCP_NODELAY: without it, small keep-alive responses wait for the peer's
/// delayed ACK (~40 ms each).
pub async fn run<F>(
    listener: TcpListener,
    router: Router,
    limits: crate::conn::ConnLimits,
    shutdown: F,
) -> std::io::Result<()>
where
    F: Future<Output = ()> + Send + 'static,
{
    crate::conn::serve(listener, router, limits, shutdown).await
}

// The routes through the real router, in-process.
#[cfg(test)]
mod tests;
