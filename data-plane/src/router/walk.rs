//! Walking a chain: skip what cannot serve, call the rest in order, classify each failure.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::Plan;
use crate::error::{ApiError, Attempt};
use crate::health::{Admission, Health, Report};
use crate::providers::{Lookup, Provider, UpstreamError};
use crate::snapshot::{Snapshot, Step};

/// What a walk needs besides its plan: the breakers and the deadlines.
pub struct WalkContext<'a> {
    pub health: &'a Health,
    /// The whole chain's deadline.
    pub request_timeout: Duration,
    /// The first-token deadline of entries without their own.
    pub first_token_timeout: Option<Duration>,
}

/// The entry that answered.
pub struct Outcome<T> {
    pub value: T,
    pub step: Arc<Step>,
    /// Time spent in the call that answered.
    pub upstream: Duration,
    pub attempts: Vec<Attempt>,
}

/// Calls `call` for each usable entry of `plan` until one succeeds.
///
/// `call` gets the provider and the step and must return once the entry has produced its
/// first output (a whole answer, or a stream's first chunk): that is what the first-token
/// deadline bounds.
pub async fn walk<'p, T, F, Fut>(
    context: &WalkContext<'_>,
    snapshot: &Snapshot,
    plan: &'p Plan,
    needs_tools: bool,
    mut call: F,
) -> Result<Outcome<T>, ApiError>
where
    F: FnMut(Arc<dyn Provider>, &'p Step) -> Fut,
    Fut: Future<Output = Result<T, UpstreamError>>,
{
    let started = Instant::now();
    let health = context.health;
    let mut attempts: Vec<Attempt> = Vec::new();
    let mut last_error: Option<(&str, UpstreamError)> = None;
    // Entries that cannot take this request at all, with why.
    let mut unable: Vec<String> = Vec::new();
    // The soonest an entry refused for a rate limit or an open breaker takes calls again.
    let mut usable_again: Option<Duration> = None;

    for step in plan.steps.iter() {
        let target = step.target();
        let name = step.name.as_str();
        let skip = |attempts: &mut Vec<Attempt>, reason: &'static str, status: Option<u16>| {
            step.record_fallback(reason);
            attempts.push(Attempt {
                target: name.to_owned(),
                reason,
                status,
            });
        };

        let provider = match snapshot.providers.get(&target.provider) {
            Ok(p) => p.clone(),
            Err(Lookup::NotConfigured(e)) if !plan.is_alias() => {
                return Err(ApiError::upstream(name, e))
            }
            Err(_) => {
                skip(&mut attempts, "unconfigured", None);
                continue;
            }
        };
        if needs_tools && !provider.supports_tools(&target.model) {
            let e = UpstreamError::Capability(format!(
                "{name} does not support tool calling; choose a tool-capable model"
            ));
            if !plan.is_alias() {
                return Err(ApiError::upstream(name, e));
            }
            skip(&mut attempts, "capability_mismatch", None);
            unable.push(format!("{name}: {e}"));
            continue;
        }
        let remaining = context.request_timeout.saturating_sub(started.elapsed());
        if remaining.is_zero() {
            skip(&mut attempts, "request_deadline", None);
            break;
        }
        let admission = health.admit(&target.provider).await;
        if admission == Admission::Reject {
            skip(&mut attempts, "breaker_open", None);
            usable_again = soonest(usable_again, health.reopens_in(&target.provider));
            continue;
        }

        let first_token = step
            .entry
            .first_token_timeout
            .or(context.first_token_timeout);
        let budget = first_token.map_or(remaining, |f| f.min(remaining));
        let call_started = Instant::now();
        let result = match tokio::time::timeout(budget, call(provider, step)).await {
            Ok(result) => result,
            Err(_) => Err(UpstreamError::Timeout(format!(
                "no first token within {:.1}s",
                budget.as_secs_f64()
            ))),
        };
        match result {
            Ok(value) => {
                health.report(&target.provider, Report::Success).await;
                step.record_resolved();
                return Ok(Outcome {
                    value,
                    step: step.clone(),
                    upstream: call_started.elapsed(),
                    attempts,
                });
            }
            // The provider cannot take this request (image URLs, token ids, …): it is not
            // failing, so no breaker hears of it, and an alias moves on.
            Err(e @ UpstreamError::Capability(_)) => {
                if !plan.is_alias() {
                    return Err(ApiError::upstream(name, e));
                }
                skip(&mut attempts, "capability_mismatch", None);
                unable.push(format!("{name}: {e}"));
            }
            Err(e) if e.is_retryable() => {
                step.metrics.error(e.code());
                let reason = e.to_string();
                let report = match &e {
                    UpstreamError::Status {
                        status: 429,
                        retry_after,
                        ..
                    } => {
                        let after = retry_after.unwrap_or(health.config().rate_limited_for);
                        usable_again = soonest(usable_again, Some(after));
                        Report::RateLimited(*retry_after)
                    }
                    _ => Report::Failure(&reason),
                };
                health.report(&target.provider, report).await;
                tracing::warn!(target = %name, error = %e, "chain entry failed; trying the next");
                let status = match &e {
                    UpstreamError::Status { status, .. } => Some(*status),
                    _ => None,
                };
                skip(&mut attempts, e.code(), status);
                last_error = Some((name, e));
            }
            Err(e) => {
                step.metrics.error(e.code());
                // The upstream answered (it is alive) but refused this request: no fallback.
                if matches!(
                    e,
                    UpstreamError::Status { .. } | UpstreamError::Blocked { .. }
                ) {
                    health.report(&target.provider, Report::Success).await;
                }
                return Err(ApiError::upstream(name, e));
            }
        }
    }

    // A direct model has nothing to fall back to: its own error says the most.
    if !plan.is_alias() {
        if let Some((target, e)) = last_error {
            return Err(ApiError::upstream(target, e));
        }
    }
    // No entry could take the request at all: that is the client's to change, not an outage.
    if !attempts.is_empty() && attempts.iter().all(|a| a.reason == "capability_mismatch") {
        return Err(ApiError::Unsupported {
            requested: plan.requested.clone(),
            reasons: unable,
        });
    }
    Err(ApiError::NoHealthyProvider {
        requested: plan.requested.clone(),
        attempts,
        last_error: last_error.map(|(t, e)| format!("{t}: {e}")),
        retry_after: usable_again,
    })
}

/// The earlier of two optional waits.
fn soonest(a: Option<Duration>, b: Option<Duration>) -> Option<Duration> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

#[cfg(test)]
mod tests;
