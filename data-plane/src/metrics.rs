//! This worker's Prometheus registry.
//!
//! Metric names and labels are the original service's, so its dashboards keep working. Every
//! label value comes from a bounded set: routes are our own templates, providers are the known
//! ids, and a model keeps its name only when the registry names it as a target or its provider
//! lists it ([`listed`], refreshed on the probe's interval, at most
//! [`listed::MAX_LISTED_PER_PROVIDER`] per provider); everything else is `other`. Nothing a
//! client sends can create a label value, however many names it tries.

pub mod listed;

use std::sync::Arc;
use std::time::Duration;

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
    TextEncoder,
};

use mana_llm_shared::Target;

use crate::snapshot::Snapshot;

/// The label value for anything outside a bounded set.
pub const OTHER: &str = "other";

pub struct Metrics {
    registry: Registry,
    pub requests_total: IntCounterVec,
    pub request_latency: HistogramVec,
    pub llm_requests_total: IntCounterVec,
    pub tokens_total: IntCounterVec,
    pub llm_latency: HistogramVec,
    pub llm_errors_total: IntCounterVec,
    pub time_to_first_token: HistogramVec,
    pub in_flight: IntGauge,
    pub alias_resolved_total: IntCounterVec,
    pub fallback_total: IntCounterVec,
    pub provider_healthy: IntGaugeVec,
    pub gateway_overhead: HistogramVec,
    pub registry_version: IntGauge,
    pub registry_reloads_total: IntCounterVec,
    /// Published versions this worker refused, by reason (unsigned, bad_signature, invalid,
    /// unreadable).
    pub registry_rejected_total: IntCounterVec,
    pub redis_up: IntGauge,
    pub redis_errors_total: IntCounterVec,
    /// `result`: hit, miss, bypass; `tier`: local, redis, none.
    pub cache_requests_total: IntCounterVec,
    /// `reason`: malformed, unsigned, bad_mac (an entry from Redis not served).
    pub cache_rejected_total: IntCounterVec,
    /// 0 closed, 1 half-open, 2 open.
    pub breaker_state: IntGaugeVec,
    pub worker_info: IntGaugeVec,
    /// Requests refused because the body budget was spent.
    pub body_budget_refused_total: prometheus::IntCounter,
    /// The models the providers list: the only model labels besides the registry's targets.
    pub listed: Arc<listed::ListedModels>,
}

fn counter(
    registry: &Registry,
    name: &str,
    help: &str,
    labels: &[&str],
) -> Result<IntCounterVec, prometheus::Error> {
    let c = IntCounterVec::new(Opts::new(name, help), labels)?;
    registry.register(Box::new(c.clone()))?;
    Ok(c)
}

fn histogram(
    registry: &Registry,
    name: &str,
    help: &str,
    labels: &[&str],
    buckets: &[f64],
) -> Result<HistogramVec, prometheus::Error> {
    let h = HistogramVec::new(
        HistogramOpts::new(name, help).buckets(buckets.to_vec()),
        labels,
    )?;
    registry.register(Box::new(h.clone()))?;
    Ok(h)
}

impl Metrics {
    pub fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new();
        let fast = [
            0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0,
        ];
        let llm = [0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0];
        let in_flight = IntGauge::new(
            "mana_llm_in_flight_requests",
            "Requests being served right now",
        )?;
        registry.register(Box::new(in_flight.clone()))?;
        Ok(Self {
            requests_total: counter(
                &registry,
                "mana_llm_requests_total",
                "HTTP requests by method, route and status",
                &["method", "endpoint", "status"],
            )?,
            request_latency: histogram(
                &registry,
                "mana_llm_request_latency_seconds",
                "HTTP request latency (until response headers)",
                &["method", "endpoint"],
                &fast,
            )?,
            llm_requests_total: counter(
                &registry,
                "mana_llm_llm_requests_total",
                "Successful LLM calls by resolved provider and model",
                &["provider", "model", "streaming"],
            )?,
            tokens_total: counter(
                &registry,
                "mana_llm_tokens_total",
                "Tokens by provider, model and type (prompt, completion)",
                &["provider", "model", "type"],
            )?,
            llm_latency: histogram(
                &registry,
                "mana_llm_llm_latency_seconds",
                "Upstream call latency of successful non-streaming calls",
                &["provider", "model"],
                &llm,
            )?,
            llm_errors_total: counter(
                &registry,
                "mana_llm_llm_errors_total",
                "Failed LLM calls by provider, model and error type",
                &["provider", "model", "error_type"],
            )?,
            time_to_first_token: histogram(
                &registry,
                "mana_llm_time_to_first_token_seconds",
                "Time from request to the first streamed chunk",
                &["provider", "model"],
                &llm,
            )?,
            in_flight,
            alias_resolved_total: counter(
                &registry,
                "mana_llm_alias_resolved_total",
                "Alias requests by the chain entry that answered",
                &["alias", "target"],
            )?,
            fallback_total: counter(
                &registry,
                "mana_llm_fallback_total",
                "Chain entries skipped or failed, by the entry, the next one and why",
                &["from_model", "to_model", "reason"],
            )?,
            provider_healthy: {
                let g = IntGaugeVec::new(
                    Opts::new(
                        "mana_llm_provider_healthy",
                        "1 while a provider's circuit is closed, 0 while open",
                    ),
                    &["provider"],
                )?;
                registry.register(Box::new(g.clone()))?;
                g
            },
            gateway_overhead: histogram(
                &registry,
                "mana_llm_gateway_overhead_seconds",
                "Time spent in the gateway itself: total minus upstream time",
                &["endpoint"],
                &[
                    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                ],
            )?,
            registry_version: {
                let g = IntGauge::new(
                    "mana_llm_registry_version",
                    "Version of the alias registry being served",
                )?;
                registry.register(Box::new(g.clone()))?;
                g
            },
            registry_reloads_total: counter(
                &registry,
                "mana_llm_registry_reloads_total",
                "Alias registry reloads by result (applied, unchanged, rejected)",
                &["result"],
            )?,
            registry_rejected_total: counter(
                &registry,
                "mana_llm_registry_rejected_total",
                "Published registry versions this worker refused, by reason (unsigned, bad_signature, invalid, unreadable)",
                &["reason"],
            )?,
            redis_up: {
                let g = IntGauge::new("mana_llm_redis_up", "1 while this worker reaches Redis")?;
                registry.register(Box::new(g.clone()))?;
                g
            },
            redis_errors_total: counter(&registry, "mana_llm_redis_errors_total", "Failed Redis calls by operation", &["op"])?,
            cache_requests_total: counter(
                &registry,
                "mana_llm_cache_requests_total",
                "Response cache lookups by result (hit, miss, bypass) and tier (local, redis, none)",
                &["result", "tier"],
            )?,
            cache_rejected_total: counter(
                &registry,
                "mana_llm_cache_rejected_total",
                "Cache entries read from Redis and not served, by reason (malformed, unsigned, bad_mac)",
                &["reason"],
            )?,
            breaker_state: {
                let g = IntGaugeVec::new(
                    Opts::new("mana_llm_breaker_state", "Circuit breaker per provider: 0 closed, 1 half-open, 2 open"),
                    &["provider"],
                )?;
                registry.register(Box::new(g.clone()))?;
                g
            },
            worker_info: {
                let g = IntGaugeVec::new(
                    Opts::new("mana_llm_worker_info", "Always 1: this worker's id and build version"),
                    &["worker_id", "version"],
                )?;
                registry.register(Box::new(g.clone()))?;
                g
            },
            body_budget_refused_total: {
                let c = prometheus::IntCounter::new(
                    "mana_llm_body_budget_refused_total",
                    "Requests answered 503 because the request-body budget (MANA_LLM_BODY_BUDGET_MB) was spent",
                )?;
                registry.register(Box::new(c.clone()))?;
                c
            },
            registry,
            listed: Arc::default(),
        })
    }

    /// The text exposition of every metric.
    /// Adds a metric made elsewhere (e.g. the embedded control plane's) to this registry.
    pub fn register(
        &self,
        collector: Box<dyn prometheus::core::Collector>,
    ) -> Result<(), prometheus::Error> {
        self.registry.register(collector)
    }

    pub fn render(&self) -> String {
        let mut out = Vec::new();
        if let Err(e) = TextEncoder::new().encode(&self.registry.gather(), &mut out) {
            tracing::error!(error = %e, "metrics encoding failed");
        }
        String::from_utf8_lossy(&out).into_owned()
    }

    /// The `provider` and `model` labels of a target. A provider keeps its id when the
    /// gateway knows it; a model keeps its name when the registry names the target or the
    /// provider lists it, else it is `other`. Whether a model answered does not matter: a
    /// label taken by whoever answered first let random names crowd out real models.
    pub fn labels(&self, snapshot: &Snapshot, target: &Target) -> (String, String) {
        let provider = target.provider.as_str();
        let known = snapshot.providers.is_known(&target.provider);
        let model = if snapshot.registry.mentions_target(provider, &target.model)
            || (known && self.listed.contains(provider, &target.model))
        {
            target.model.clone()
        } else {
            OTHER.to_owned()
        };
        let provider = if known { provider } else { OTHER };
        (provider.to_owned(), model)
    }

    /// A chain entry's label: itself when the registry names it, else `other` ("" stays "").
    fn entry_label(snapshot: &Snapshot, entry: &str) -> String {
        if entry.is_empty() || snapshot.registry.mentions(entry) {
            entry.to_owned()
        } else {
            OTHER.to_owned()
        }
    }

    pub fn record_fallback(&self, snapshot: &Snapshot, from: &str, to: &str, reason: &str) {
        let (from, to) = (
            Self::entry_label(snapshot, from),
            Self::entry_label(snapshot, to),
        );
        self.fallback_total
            .with_label_values(&[&from, &to, reason])
            .inc();
    }

    pub fn record_alias(&self, snapshot: &Snapshot, alias: &str, target: &str) {
        let target = Self::entry_label(snapshot, target);
        self.alias_resolved_total
            .with_label_values(&[alias, &target])
            .inc();
    }

    pub fn record_success(
        &self,
        snapshot: &Snapshot,
        target: &Target,
        streaming: bool,
        latency: Option<Duration>,
    ) {
        let (provider, model) = self.labels(snapshot, target);
        let streaming = if streaming { "true" } else { "false" };
        self.llm_requests_total
            .with_label_values(&[&provider, &model, streaming])
            .inc();
        if let Some(latency) = latency {
            self.llm_latency
                .with_label_values(&[&provider, &model])
                .observe(latency.as_secs_f64());
        }
    }

    pub fn record_tokens(
        &self,
        snapshot: &Snapshot,
        target: &Target,
        prompt: u64,
        completion: u64,
    ) {
        let (provider, model) = self.labels(snapshot, target);
        if prompt > 0 {
            self.tokens_total
                .with_label_values(&[&provider, &model, "prompt"])
                .inc_by(prompt);
        }
        if completion > 0 {
            self.tokens_total
                .with_label_values(&[&provider, &model, "completion"])
                .inc_by(completion);
        }
    }

    pub fn record_error(&self, snapshot: &Snapshot, target: &Target, error_type: &str) {
        let (provider, model) = self.labels(snapshot, target);
        self.llm_errors_total
            .with_label_values(&[&provider, &model, error_type])
            .inc();
    }

    pub fn record_ttft(&self, snapshot: &Snapshot, target: &Target, ttft: Duration) {
        let (provider, model) = self.labels(snapshot, target);
        self.time_to_first_token
            .with_label_values(&[&provider, &model])
            .observe(ttft.as_secs_f64());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Source;
    use crate::providers::Providers;
    use crate::snapshot::Snapshots;
    use mana_llm_shared::{Registry, RegistryVersion};

    /// A snapshot whose registry names `ollama/known`, serving the echo provider.
    fn snapshot() -> Arc<crate::snapshot::Snapshot> {
        let registry = Registry::parse(
            "aliases:\n  mana/a: {chain: [ollama/known]}\n",
            "t",
            RegistryVersion(1),
        )
        .unwrap();
        let mut providers = Providers::empty();
        providers.insert(Arc::new(crate::providers::echo::Echo::new(Duration::ZERO)));
        Snapshots::new(
            providers,
            registry,
            Source::default(),
            mana_llm_shared::RegistryPolicy::default(),
        )
        .load()
    }

    fn series(m: &Metrics) -> usize {
        m.render().matches("mana_llm_llm_requests_total{").count()
    }

    #[test]
    fn failed_or_answered_random_names_never_become_labels() {
        let m = Metrics::new().unwrap();
        let snap = snapshot();
        for i in 0..200 {
            let random = Target::parse(&format!("echo/random-{i}"));
            m.record_error(&snap, &random, "upstream_rejected");
            m.record_success(&snap, &random, false, None);
            m.record_error(
                &snap,
                &Target::parse(&format!("nope{i}/x")),
                "upstream_rejected",
            );
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
        m.record_error(&snap, &Target::parse("ollama/known"), "upstream_5xx");
        assert!(
            m.render().contains("model=\"known\""),
            "registry targets keep their name"
        );
    }

    #[tokio::test]
    async fn two_hundred_random_names_do_not_take_a_listed_models_label() {
        let m = Metrics::new().unwrap();
        let snap = snapshot();
        // What the probe's refresh does: the echo provider lists `echo/echo`.
        let providers: Vec<_> = snap.providers.configured().cloned().collect();
        m.listed.refresh(&providers, Duration::from_secs(1)).await;
        for i in 0..200 {
            m.record_success(&snap, &Target::parse(&format!("echo/r{i}")), false, None);
        }
        m.record_success(&snap, &Target::parse("echo/echo"), false, None);
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
    fn a_listing_is_bounded_per_provider_and_ignores_other_prefixes() {
        let listed = listed::ListedModels::default();
        let ids: Vec<String> = (0..2000).map(|i| format!("openai/m{i}")).collect();
        listed.set("openai", ids.iter().map(String::as_str).chain(["groq/x"]));
        let kept = (0..2000)
            .filter(|i| listed.contains("openai", &format!("m{i}")))
            .count();
        assert_eq!(kept, listed::MAX_LISTED_PER_PROVIDER);
        assert!(!listed.contains("openai", "groq/x") && !listed.contains("groq", "x"));
    }
}
