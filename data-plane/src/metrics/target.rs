//! One target's series, resolved once: its `provider` and `model` labels and, on first use,
//! the handles they pick. The snapshot holds one per target its registry names, so a request
//! neither formats labels nor looks a series up; a target outside the registry gets one per
//! request (its model label depends on what its provider lists right now).
//!
//! Handles are taken on first use, not when the snapshot is built: a series appears in
//! `/metrics` only once something happened to it, as before.

use std::sync::OnceLock;
use std::time::Duration;

use mana_llm_shared::Target;
use prometheus::{Histogram, HistogramVec, IntCounter, IntCounterVec};

use super::{Metrics, OTHER};

pub struct TargetMetrics {
    provider: String,
    model: String,
    vecs: Vecs,
    requests: [OnceLock<IntCounter>; 2],
    latency: OnceLock<Histogram>,
    prompt_tokens: OnceLock<IntCounter>,
    completion_tokens: OnceLock<IntCounter>,
    ttft: OnceLock<Histogram>,
}

/// The families a target's series belong to (each clone shares the family).
struct Vecs {
    requests: IntCounterVec,
    latency: HistogramVec,
    tokens: IntCounterVec,
    errors: IntCounterVec,
    ttft: HistogramVec,
}

impl TargetMetrics {
    /// The series of `target`. A provider keeps its id when the gateway knows it (`known`); a
    /// model keeps its name when the registry names the target (`named`) or the provider
    /// lists it, else it is `other`. Whether a model answered does not matter: a label taken
    /// by whoever answered first let random names crowd out real models.
    pub fn new(metrics: &Metrics, target: &Target, known: bool, named: bool) -> Self {
        let provider = target.provider.as_str();
        let model = if named || (known && metrics.listed.contains(provider, &target.model)) {
            target.model.clone()
        } else {
            OTHER.to_owned()
        };
        let provider = if known { provider } else { OTHER };
        Self {
            provider: provider.to_owned(),
            model,
            vecs: Vecs {
                requests: metrics.llm_requests_total.clone(),
                latency: metrics.llm_latency.clone(),
                tokens: metrics.tokens_total.clone(),
                errors: metrics.llm_errors_total.clone(),
                ttft: metrics.time_to_first_token.clone(),
            },
            requests: Default::default(),
            latency: OnceLock::new(),
            prompt_tokens: OnceLock::new(),
            completion_tokens: OnceLock::new(),
            ttft: OnceLock::new(),
        }
    }

    /// The `provider` and `model` labels.
    pub fn labels(&self) -> (&str, &str) {
        (&self.provider, &self.model)
    }

    pub fn success(&self, streaming: bool, latency: Option<Duration>) {
        let (provider, model) = (self.provider.as_str(), self.model.as_str());
        let flag = if streaming { "true" } else { "false" };
        self.requests[usize::from(streaming)]
            .get_or_init(|| {
                self.vecs
                    .requests
                    .with_label_values(&[provider, model, flag])
            })
            .inc();
        if let Some(latency) = latency {
            self.latency
                .get_or_init(|| self.vecs.latency.with_label_values(&[provider, model]))
                .observe(latency.as_secs_f64());
        }
    }

    pub fn tokens(&self, prompt: u64, completion: u64) {
        let (provider, model) = (self.provider.as_str(), self.model.as_str());
        if prompt > 0 {
            self.prompt_tokens
                .get_or_init(|| {
                    self.vecs
                        .tokens
                        .with_label_values(&[provider, model, "prompt"])
                })
                .inc_by(prompt);
        }
        if completion > 0 {
            self.completion_tokens
                .get_or_init(|| {
                    self.vecs
                        .tokens
                        .with_label_values(&[provider, model, "completion"])
                })
                .inc_by(completion);
        }
    }

    /// A failed call; `code` is the error's bounded label (failures are the slow path).
    pub fn error(&self, code: &str) {
        self.vecs
            .errors
            .with_label_values(&[&self.provider, &self.model, code])
            .inc();
    }

    pub fn ttft(&self, ttft: Duration) {
        self.ttft
            .get_or_init(|| {
                self.vecs
                    .ttft
                    .with_label_values(&[&self.provider, &self.model])
            })
            .observe(ttft.as_secs_f64());
    }
}
