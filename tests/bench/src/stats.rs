//! Percentiles over measured durations.

use std::time::Duration;

use serde_json::{json, Value};

/// p50/p99/max in milliseconds (3 decimals) of `samples`; `n` too.
pub fn summary(samples: &mut [Duration]) -> Value {
    samples.sort_unstable();
    let ms = |d: Duration| (d.as_secs_f64() * 1_000_000.0).round() / 1000.0;
    let at = |q: f64| {
        if samples.is_empty() {
            return 0.0;
        }
        let i = ((samples.len() as f64 - 1.0) * q).round() as usize;
        ms(samples[i.min(samples.len() - 1)])
    };
    json!({"n": samples.len(), "p50_ms": at(0.5), "p99_ms": at(0.99), "max_ms": at(1.0)})
}
