//! What the snapshot derives from its registry for the request path: each alias's chain as
//! [`Step`]s (the target's name, its fallback labels and its metric series, all resolved
//! once), looked up by name in a map.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use mana_llm_shared::registry::ChainEntry;
use mana_llm_shared::{AliasName, Registry, Target};
use prometheus::IntCounter;

use crate::metrics::{Metrics, TargetMetrics, OTHER};
use crate::providers::Providers;

/// A chain's steps, shared by every request that walks it.
pub type Chain = Arc<[Arc<Step>]>;

/// One entry of a chain, as the walk and the recording need it.
pub struct Step {
    pub entry: ChainEntry,
    /// `provider/model`: the `X-Mana-LLM-Resolved` value, the log field, the answer's model.
    pub name: String,
    /// This entry's label in the fallback and alias counters: its name when the registry
    /// names it, else `other`.
    label: String,
    /// The next entry's label ("" after the last).
    next: String,
    /// The alias this step belongs to, for `mana_llm_alias_resolved_total`.
    alias: Option<AliasName>,
    resolved: OnceLock<IntCounter>,
    pub metrics: Arc<TargetMetrics>,
    families: Arc<Metrics>,
}

impl std::fmt::Debug for Step {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Step").field("name", &self.name).finish()
    }
}

/// Its `provider/model`.
impl std::fmt::Display for Step {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.name)
    }
}

impl Step {
    pub fn target(&self) -> &Target {
        &self.entry.target
    }

    /// Counts this entry as skipped or failed (`reason`, a bounded code).
    pub fn record_fallback(&self, reason: &str) {
        self.families
            .fallback_total
            .with_label_values(&[&self.label, &self.next, reason])
            .inc();
    }

    /// Counts the alias answered by this entry (nothing for a direct model).
    pub fn record_resolved(&self) {
        if let Some(alias) = &self.alias {
            self.resolved
                .get_or_init(|| {
                    self.families
                        .alias_resolved_total
                        .with_label_values(&[alias.as_str(), &self.label])
                })
                .inc();
        }
    }
}

/// Every alias's steps, and the series of every target the registry names.
pub struct Routes {
    aliases: HashMap<String, (AliasName, Chain)>,
    targets: HashMap<Target, Arc<TargetMetrics>>,
    metrics: Arc<Metrics>,
}

impl Routes {
    pub fn derive(registry: &Registry, providers: &Providers, metrics: &Arc<Metrics>) -> Self {
        let mut targets: HashMap<Target, Arc<TargetMetrics>> = HashMap::new();
        for alias in registry.aliases() {
            for entry in &alias.chain {
                let known = providers.is_known(&entry.target.provider);
                targets.entry(entry.target.clone()).or_insert_with(|| {
                    Arc::new(TargetMetrics::new(metrics, &entry.target, known, true))
                });
            }
        }
        let aliases = registry
            .aliases()
            .map(|alias| {
                let names: Vec<String> = alias.chain.iter().map(|e| e.target.to_string()).collect();
                let steps: Vec<Arc<Step>> = alias
                    .chain
                    .iter()
                    .zip(&names)
                    .enumerate()
                    .map(|(i, (entry, name))| {
                        let step = Step {
                            entry: entry.clone(),
                            name: name.clone(),
                            label: name.clone(),
                            next: names.get(i + 1).cloned().unwrap_or_default(),
                            alias: Some(alias.name.clone()),
                            resolved: OnceLock::new(),
                            metrics: targets[&entry.target].clone(),
                            families: metrics.clone(),
                        };
                        Arc::new(step)
                    })
                    .collect();
                (
                    alias.name.as_str().to_owned(),
                    (alias.name.clone(), steps.into()),
                )
            })
            .collect();
        Self {
            aliases,
            targets,
            metrics: metrics.clone(),
        }
    }

    /// Alias `name` and its steps.
    pub fn alias(&self, name: &str) -> Option<(&AliasName, &Chain)> {
        self.aliases.get(name).map(|(alias, steps)| (alias, steps))
    }

    /// A one-step chain for a model asked for directly, built per request and not shared:
    /// its series are the registry's when the registry names it, else decided from what its
    /// provider lists now. (Kept per snapshot and shared, its reference counts and lock cost
    /// more CPU per request under concurrency than building it: BENCHMARKS.md, issue 15.)
    pub fn direct(&self, target: Target, providers: &Providers) -> Chain {
        let name = target.to_string();
        let (label, metrics) = match self.targets.get(&target) {
            Some(metrics) => (name.clone(), metrics.clone()),
            None => {
                let known = providers.is_known(&target.provider);
                let metrics = TargetMetrics::new(&self.metrics, &target, known, false);
                (OTHER.to_owned(), Arc::new(metrics))
            }
        };
        let step = Step {
            entry: ChainEntry {
                target,
                first_token_timeout: None,
            },
            name,
            label,
            next: String::new(),
            alias: None,
            resolved: OnceLock::new(),
            metrics,
            families: self.metrics.clone(),
        };
        Arc::from([Arc::new(step)])
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use mana_llm_shared::RegistryVersion;

    use super::*;

    /// A snapshot whose registry names `ollama/known`, serving the echo provider.
    fn snapshot(m: &Arc<Metrics>) -> Snap {
        let registry = Registry::parse(
            "aliases:\n  mana/a: {chain: [ollama/known]}\n",
            "t",
            RegistryVersion(1),
        )
        .unwrap();
        let mut providers = Providers::empty();
        providers.insert(Arc::new(crate::providers::echo::Echo::new(Duration::ZERO)));
        let routes = Routes::derive(&registry, &providers, m);
        Snap { providers, routes }
    }

    /// What the request path records through: the series of a target asked for directly.
    struct Snap {
        providers: Providers,
        routes: Routes,
    }

    impl Snap {
        fn of(&self, target: &Target) -> Arc<TargetMetrics> {
            let steps = self.routes.direct(target.clone(), &self.providers);
            steps[0].metrics.clone()
        }
    }

    fn series(m: &Metrics) -> usize {
        m.render().matches("mana_llm_llm_requests_total{").count()
    }

    #[test]
    fn failed_or_answered_random_names_never_become_labels() {
        let m = Arc::new(Metrics::new().unwrap());
        let snap = snapshot(&m);
        for i in 0..200 {
            let random = Target::parse(&format!("echo/random-{i}"));
            snap.of(&random).error("upstream_rejected");
            snap.of(&random).success(false, None);
            snap.of(&Target::parse(&format!("nope{i}/x")))
                .error("upstream_rejected");
        }
        let text = m.render();
        assert!(
            !text.contains("random-"),
            "random models must not become labels"
        );
        assert!(
            !text.contains("nope"),
            "unknown providers must not become labels"
        );
        assert_eq!(series(&m), 1, "every random name is 'other'");
        snap.of(&Target::parse("ollama/known"))
            .error("upstream_5xx");
        assert!(
            m.render().contains("model=\"known\""),
            "registry targets keep their name"
        );
    }

    #[tokio::test]
    async fn two_hundred_random_names_do_not_take_a_listed_models_label() {
        let m = Arc::new(Metrics::new().unwrap());
        let snap = snapshot(&m);
        // What the probe's refresh does: the echo provider lists `echo/echo`.
        let providers: Vec<_> = snap.providers.configured().cloned().collect();
        m.listed.refresh(&providers, Duration::from_secs(1)).await;
        for i in 0..200 {
            snap.of(&Target::parse(&format!("echo/r{i}")))
                .success(false, None);
        }
        snap.of(&Target::parse("echo/echo")).success(false, None);
        let text = m.render();
        assert!(
            text.contains(
                r#"mana_llm_llm_requests_total{model="echo",provider="echo",streaming="false"} 1"#
            ),
            "{text}"
        );
        assert!(
            text.contains(r#"mana_llm_llm_requests_total{model="other",provider="echo",streaming="false"} 200"#),
            "{text}"
        );
        assert_eq!(series(&m), 2);
    }

    #[test]
    fn a_direct_models_label_follows_the_listing() {
        let m = Arc::new(Metrics::new().unwrap());
        let snap = snapshot(&m);
        let echo = Target::parse("echo/echo");
        snap.of(&echo).success(false, None);
        m.listed.set("echo", ["echo/echo"]);
        snap.of(&echo).success(false, None);
        let text = m.render();
        for model in ["other", "echo"] {
            let line = format!(
                r#"mana_llm_llm_requests_total{{model="{model}",provider="echo",streaming="false"}} 1"#
            );
            assert!(text.contains(&line), "{text}");
        }
    }
}
