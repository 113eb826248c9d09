//! The registry and everything derived from it, swapped as one immutable snapshot.
//!
//! A request loads the current [`Snapshot`] once and sees exactly one registry version and the
//! providers built for it, however many reloads happen while it runs.

use std::sync::Arc;

use arc_swap::ArcSwap;
use mana_llm_shared::{Registry, RegistryPolicy, RegistryVersion};

use crate::config::Source;
use crate::providers::Providers;

pub struct Snapshot {
    pub registry: Arc<Registry>,
    /// The built-in providers plus the ones this registry declares.
    pub providers: Providers,
}

pub struct Snapshots {
    current: ArcSwap<Snapshot>,
    /// Providers from the environment, the base every snapshot starts from.
    base: Providers,
    source: Source,
    /// What a registry may declare: the worker's own rules, checked again where a declared
    /// provider reads its key variable.
    policy: RegistryPolicy,
}

impl Snapshots {
    pub fn new(
        base: Providers,
        registry: Registry,
        source: Source,
        policy: RegistryPolicy,
    ) -> Self {
        let first = Self::derive(&base, registry, &source, &policy);
        Self {
            current: ArcSwap::from_pointee(first),
            base,
            source,
            policy,
        }
    }

    fn derive(
        base: &Providers,
        registry: Registry,
        source: &Source,
        policy: &RegistryPolicy,
    ) -> Snapshot {
        let providers = base.with_declared(registry.providers(), source, policy);
        Snapshot {
            registry: Arc::new(registry),
            providers,
        }
    }

    pub fn load(&self) -> Arc<Snapshot> {
        self.current.load_full()
    }

    pub fn version(&self) -> RegistryVersion {
        self.current.load().registry.version()
    }

    /// Installs `registry` unless it is older than (or the same version as) the current one.
    /// Returns whether it was installed.
    pub fn install(&self, registry: Registry) -> bool {
        let version = registry.version();
        let next = Arc::new(Self::derive(
            &self.base,
            registry,
            &self.source,
            &self.policy,
        ));
        let previous = self.current.rcu(|current| {
            if version > current.registry.version() {
                next.clone()
            } else {
                current.clone()
            }
        });
        version > previous.registry.version()
    }
}
