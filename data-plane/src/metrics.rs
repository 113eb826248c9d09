//! This worker's Prometheus registry.
//!
//! Metric names and labels are the original service's, so its dashboards keep working. Every
//! label value comes from a bounded set: routes are our own templates, providers are the known
//! ids, and a model gets its own label value only once it has answered successfully, up to
//! [`MAX_MODEL_LABELS`]; everything else is `other`.

use std::collections::HashSet;
use std::sync::Mutex;
use std::time::Duration;

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, Opts, Registry, TextEncoder,
};

/// How many distinct model label values one worker will create.
pub const MAX_MODEL_LABELS: usize = 64;

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
    models: Mutex<HashSet<String>>,
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
            registry,
            models: Mutex::new(HashSet::new()),
        })
    }

    /// The text exposition of every metric.
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        if let Err(e) = TextEncoder::new().encode(&self.registry.gather(), &mut out) {
            tracing::error!(error = %e, "metrics encoding failed");
        }
        String::from_utf8_lossy(&out).into_owned()
    }

    /// The label value for `model`: itself if it answered before (or may still get a slot),
    /// else `other`.
    pub fn model_label(&self, model: &str, answered: bool) -> String {
        let mut seen = self.models.lock().unwrap_or_else(|e| e.into_inner());
        if seen.contains(model) {
            return model.to_owned();
        }
        if answered && seen.len() < MAX_MODEL_LABELS {
            seen.insert(model.to_owned());
            return model.to_owned();
        }
        OTHER.to_owned()
    }

    pub fn record_success(
        &self,
        provider: &str,
        model: &str,
        streaming: bool,
        latency: Option<Duration>,
    ) {
        let model = self.model_label(model, true);
        let streaming = if streaming { "true" } else { "false" };
        self.llm_requests_total
            .with_label_values(&[provider, &model, streaming])
            .inc();
        if let Some(latency) = latency {
            self.llm_latency
                .with_label_values(&[provider, &model])
                .observe(latency.as_secs_f64());
        }
    }

    pub fn record_tokens(&self, provider: &str, model: &str, prompt: u64, completion: u64) {
        let model = self.model_label(model, true);
        if prompt > 0 {
            self.tokens_total
                .with_label_values(&[provider, &model, "prompt"])
                .inc_by(prompt);
        }
        if completion > 0 {
            self.tokens_total
                .with_label_values(&[provider, &model, "completion"])
                .inc_by(completion);
        }
    }

    pub fn record_error(&self, provider: &str, model: &str, error_type: &str) {
        let model = self.model_label(model, false);
        self.llm_errors_total
            .with_label_values(&[provider, &model, error_type])
            .inc();
    }

    pub fn record_ttft(&self, provider: &str, model: &str, ttft: Duration) {
        let model = self.model_label(model, true);
        self.time_to_first_token
            .with_label_values(&[provider, &model])
            .observe(ttft.as_secs_f64());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_labels_are_bounded() {
        let m = Metrics::new().unwrap();
        for i in 0..200 {
            m.record_error("ollama", &format!("random-{i}"), "upstream_rejected");
        }
        let text = m.render();
        assert!(
            !text.contains("random-"),
            "failed models must not become labels"
        );
        for i in 0..200 {
            m.record_success("ollama", &format!("real-{i}"), false, None);
        }
        let distinct = m.render().matches("mana_llm_llm_requests_total{").count();
        assert_eq!(distinct, MAX_MODEL_LABELS + 1, "64 models plus 'other'");
    }
}
