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
use crate::health::{probe, Health, HealthStore, MemoryStore, Status, SystemClock, Transition};
use crate::metrics::Metrics;
use crate::providers::Providers;
use crate::redis::subscriber::Follower;
use crate::redis::SharedRedis;
use crate::snapshot::Snapshots;
use mana_llm_shared::bus::BusNames;
use mana_llm_shared::fleet::{Beats, MemoryBeats, RedisBeats};
use mana_llm_shared::redis_client;

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
    breakers: Option<Arc<dyn Follower>>,
    /// Figures per registry version since the last heartbeat.
    pub fleet_stats: FleetStats,
    /// Where this process listens, for the fleet view (set once bound).
    pub listen: Listen,
    /// Where heartbeats go: Redis for a fleet, memory for `serve` alone.
    pub beats: Arc<dyn Beats>,
    /// Redis key and channel names (also used for cache keys without Redis).
    pub names: BusNames,
    /// Request bodies in flight, bounded process-wide.
    pub body_budget: crate::api::budget::BodyBudget,
    draining: AtomicBool,
    /// Stops every background task (probe, followers, subscribers).
    background: CancellationToken,
}

impl AppState {
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }

    /// Ready to take traffic: a registry is loaded and the worker is not draining.
    pub fn is_ready(&self) -> bool {
        !self.is_draining() && self.snapshots.version().0 > 0
    }

    /// Sets the breaker gauges from the breakers as they are now (time-aware: an open breaker
    /// whose window passed reads half-open).
    /// Each configured provider's breaker state (`healthy`, `half_open`, `open`), for the
    /// heartbeat.
    pub fn breaker_states(&self) -> std::collections::BTreeMap<String, String> {
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
                let state = match self.health.status(&breaker) {
                    Status::Healthy => "healthy",
                    Status::HalfOpen => "half_open",
                    Status::Open => "open",
                };
                (id.as_str().to_owned(), state.to_owned())
            })
            .take(mana_llm_shared::fleet::MAX_BREAKERS_PER_BEAT)
            .collect()
    }

    pub fn observe_breakers(&self) {
        let snapshot = self.snapshots.load();
        let configured: Vec<_> = snapshot
            .providers
            .configured()
            .map(|p| p.id().clone())
            .collect();
        for (id, breaker) in self.health.snapshot(&configured) {
            if !snapshot.providers.is_known(&id) {
                continue;
            }
            let (state, healthy) = match self.health.status(&breaker) {
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
        let snapshots = Snapshots::new(providers, registry, source, config.registry_policy.clone());
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
        let body_budget = crate::api::budget::BodyBudget::new(config.body_budget);
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
            crate::redis::subscriber::spawn(redis.clone(), followers, cancel.clone());
        }
        crate::fleet::spawn_heartbeat(
            self.state.clone(),
            self.state.beats.clone(),
            self.state.config.heartbeat_interval,
            cancel.clone(),
        );
        let Some(config) = self.state.config.probe else {
            return;
        };
        // Each worker lists for its own metric labels (the probe runs on one leader only).
        crate::metrics::listed::spawn(
            self.state.metrics.listed.clone(),
            configured_providers(self.state.clone()),
            config.interval,
            config.timeout,
            cancel.clone(),
        );
        probe::spawn(
            self.state.health.clone(),
            configured_providers(self.state.clone()),
            config,
            cancel,
        );
    }

    /// A token that background tasks of this app stop on.
    pub fn background(&self) -> CancellationToken {
        self.state.background.clone()
    }

    pub fn stop_background(&self) {
        self.state.background.cancel();
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
        let version = published.version;
        if origin == Origin::Redis {
            if let Some(key) = &self.state.config.fleet_key {
                match published.check_signature(key) {
                    SignatureCheck::Valid => {}
                    SignatureCheck::Missing => {
                        return Err(self.reject(
                            version,
                            Rejected::new(
                                "unsigned",
                                "no signature, but this worker has a fleet key",
                            ),
                        ));
                    }
                    SignatureCheck::Wrong => {
                        return Err(self.reject(
                            version,
                            Rejected::new(
                                "bad_signature",
                                "the signature does not match the fleet key",
                            ),
                        ));
                    }
                }
            }
        }
        let registry = Registry::verified(
            published.document,
            RegistryVersion(version),
            &published.hash,
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
