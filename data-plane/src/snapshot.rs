//! The registry and everything derived from it, swapped as one immutable snapshot.
//!
//! A request loads the current [`Snapshot`] once and sees exactly one registry version and the
//! providers built for it, however many reloads happen while it runs.

use std::sync::Arc;

use arc_swap::ArcSwap;
use mana_llm_shared::{Registry, RegistryPolicy, RegistryVersion};

use crate::metrics::Metrics;
use crate::providers::Providers;
use crate::settings::Source;

mod routes;

pub use routes::{Chain, Routes, Step};

pub struct Snapshot {
    pub registry: Arc<Registry>,
    /// The built-in providers plus the ones this registry declares.
    pub providers: Providers,
    /// Each alias's chain and each named target's metric series, resolved once.
    pub routes: Routes,
}

pub struct Snapshots {
    /// What requests are served with: the stable version, or a rollout's candidate.
    current: ArcSwap<Snapshot>,
    /// The fleet's current version as this worker knows it; only moves forward.
    stable: ArcSwap<Snapshot>,
    /// Providers from the environment, the base every snapshot starts from.
    base: Providers,
    source: Source,
    /// What a registry may declare: the worker's own rules, checked again where a declared
    /// provider reads its key variable.
    policy: RegistryPolicy,
    /// The families each snapshot's per-target series belong to.
    metrics: Arc<Metrics>,
}

impl Snapshots {
    pub fn new(
        base: Providers,
        registry: Registry,
        source: Source,
        policy: RegistryPolicy,
        metrics: Arc<Metrics>,
    ) -> Self {
        let first = Arc::new(Self::derive(&base, registry, &source, &policy, &metrics));
        Self {
            current: ArcSwap::new(first.clone()),
            stable: ArcSwap::new(first),
            base,
            source,
            policy,
            metrics,
        }
    }

    fn derive(
        base: &Providers,
        registry: Registry,
        source: &Source,
        policy: &RegistryPolicy,
        metrics: &Arc<Metrics>,
    ) -> Snapshot {
        let providers = base.with_declared(registry.providers(), source, policy);
        let routes = Routes::derive(&registry, &providers, metrics);
        Snapshot {
            registry: Arc::new(registry),
            providers,
            routes,
        }
    }

    pub fn load(&self) -> Arc<Snapshot> {
        self.current.load_full()
    }

    pub fn version(&self) -> RegistryVersion {
        self.current.load().registry.version()
    }

    /// The stable version (the one served unless a rollout puts this worker on a candidate).
    pub fn stable_version(&self) -> RegistryVersion {
        self.stable.load().registry.version()
    }

    /// Installs `registry` as the stable version and serves it, unless it is older than (or
    /// the same version as) the stable one. Returns whether it was installed.
    pub fn install(&self, registry: Registry) -> bool {
        let version = registry.version();
        let next = Arc::new(Self::derive(
            &self.base,
            registry,
            &self.source,
            &self.policy,
            &self.metrics,
        ));
        let previous = self.stable.rcu(|stable| {
            if version > stable.registry.version() {
                next.clone()
            } else {
                stable.clone()
            }
        });
        let installed = version > previous.registry.version();
        if installed {
            self.current.store(next);
        }
        installed
    }

    /// Serves a rollout's candidate (the stable version stays what it is). Returns whether
    /// anything changed.
    pub fn serve_candidate(&self, registry: Registry) -> bool {
        if self.version() == registry.version() {
            return false;
        }
        let next = Self::derive(
            &self.base,
            registry,
            &self.source,
            &self.policy,
            &self.metrics,
        );
        self.current.store(Arc::new(next));
        true
    }

    /// Serves the stable version again (a rollout ended, or this worker is not in its
    /// candidate cohort). Returns whether anything changed.
    pub fn serve_stable(&self) -> bool {
        let stable = self.stable.load_full();
        if self.version() == stable.registry.version() {
            return false;
        }
        self.current.store(stable);
        true
    }
}
