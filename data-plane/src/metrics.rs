//! This worker's Prometheus registry.
//!
//! Metric names and labels are the original service's, so its dashboards keep working. Every
//! label value comes from a bounded set: routes are our own templates, providers are the known
//! ids, and a model keeps its name only when the registry names it as a target or its provider
//! lists it ([`listed`], refreshed on the probe's interval, at most
//! [`listed::MAX_LISTED_PER_PROVIDER`] per provider); everything else is `other`. Nothing a
//! client sends can create a label value, however many names it tries.

pub mod listed;
pub mod target;

use std::sync::Arc;

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
    TextEncoder,
};

pub use target::TargetMetrics;

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
}

#[cfg(test)]
mod tests {
    use super::*;

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
