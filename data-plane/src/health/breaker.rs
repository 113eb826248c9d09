//! The circuit breaker of one provider: a small state machine with no I/O and no clock of its
//! own (callers pass `now`, in Unix seconds), so every rule is tested without sleeping.
//!
//! healthy ──(N consecutive failures, or a 429)──► open ──(window passes)──► half-open
//!    ▲                                                                          │
//!    └──────────────── trial succeeds ◄── one trial call admitted ◄─────────────┘
//!                      (a failing trial re-opens and restarts the window)
//!
//! Probes feed the same machine, but a probe success only closes a breaker that probes opened:
//! an upstream whose `/api/tags` answers while its chat calls fail must stay open.

use std::time::Duration;

use serde::Serialize;

/// Thresholds, validated once.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BreakerConfig {
    pub failure_threshold: u32,
    pub open_for: Duration,
    /// How long a 429 without `Retry-After` keeps the provider open.
    pub rate_limited_for: Duration,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        Self {
            failure_threshold: 2,
            open_for: Duration::from_secs(60),
            rate_limited_for: Duration::from_secs(15),
        }
    }
}

impl BreakerConfig {
    pub fn new(
        failure_threshold: u32,
        open_for: Duration,
        rate_limited_for: Duration,
    ) -> Result<Self, String> {
        if failure_threshold < 1 {
            return Err("failure_threshold must be >= 1".to_owned());
        }
        Ok(Self {
            failure_threshold,
            open_for,
            rate_limited_for,
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Healthy,
    Open,
    HalfOpen,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Healthy => "healthy",
            Status::Open => "open",
            Status::HalfOpen => "half_open",
        }
    }
}

/// What a caller may do right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Closed: call.
    Call,
    /// Half-open and this caller got the one trial: call, and report the result.
    Trial,
    /// Open, or half-open with the trial taken by someone else: skip this provider.
    Reject,
}

/// A change of state worth telling listeners about (fired on changes only).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    Tripped,
    Recovered,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OpenedBy {
    Calls,
    Probe,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Breaker {
    pub consecutive_failures: u32,
    pub last_error: Option<String>,
    /// When a call or probe last reported on this provider.
    pub last_check: Option<f64>,
    /// Set while tripped: open before this time, half-open after.
    pub open_until: Option<f64>,
    pub opened_by: Option<OpenedBy>,
    /// When the current half-open trial started; a trial older than the window is forgotten
    /// so a lost trial cannot keep a provider half-open forever.
    pub trial_started: Option<f64>,
}

impl Breaker {
    pub fn status(&self, now: f64) -> Status {
        match self.open_until {
            None => Status::Healthy,
            Some(until) if now < until => Status::Open,
            Some(_) => Status::HalfOpen,
        }
    }

    pub fn admit(&mut self, now: f64, config: &BreakerConfig) -> Admission {
        match self.status(now) {
            Status::Healthy => Admission::Call,
            Status::Open => Admission::Reject,
            Status::HalfOpen => {
                let stale = self
                    .trial_started
                    .is_some_and(|t| now - t >= config.open_for.as_secs_f64());
                if self.trial_started.is_none() || stale {
                    self.trial_started = Some(now);
                    Admission::Trial
                } else {
                    Admission::Reject
                }
            }
        }
    }

    /// A real call succeeded: everything resets.
    pub fn on_success(&mut self, now: f64) -> Option<Transition> {
        let was_tripped = self.open_until.is_some();
        *self = Breaker {
            last_check: Some(now),
            ..Breaker::default()
        };
        was_tripped.then_some(Transition::Recovered)
    }

    /// A real call failed in a way that says the provider is unwell.
    pub fn on_failure(
        &mut self,
        reason: &str,
        now: f64,
        config: &BreakerConfig,
    ) -> Option<Transition> {
        self.fail(reason, now, config, OpenedBy::Calls)
    }

    /// The provider said 429: open for `Retry-After` (or the short default), whatever the count.
    pub fn on_rate_limited(
        &mut self,
        retry_after: Option<Duration>,
        now: f64,
        config: &BreakerConfig,
    ) -> Option<Transition> {
        let was_tripped = self.open_until.is_some();
        let window = retry_after.unwrap_or(config.rate_limited_for).as_secs_f64();
        self.last_check = Some(now);
        self.last_error = Some("rate limited (429)".to_owned());
        self.trial_started = None;
        let until = now + window;
        self.open_until = Some(self.open_until.map_or(until, |u| u.max(until)));
        self.opened_by = Some(OpenedBy::Calls);
        (!was_tripped).then_some(Transition::Tripped)
    }

    pub fn on_probe(
        &mut self,
        result: Result<(), &str>,
        now: f64,
        config: &BreakerConfig,
    ) -> Option<Transition> {
        match result {
            Err(reason) => self.fail(reason, now, config, OpenedBy::Probe),
            // Only a breaker that probes opened may be closed by a probe.
            Ok(()) if self.opened_by == Some(OpenedBy::Probe) => self.on_success(now),
            Ok(()) => {
                self.last_check = Some(now);
                None
            }
        }
    }

    fn fail(
        &mut self,
        reason: &str,
        now: f64,
        config: &BreakerConfig,
        by: OpenedBy,
    ) -> Option<Transition> {
        self.consecutive_failures += 1;
        self.last_check = Some(now);
        self.last_error = Some(reason.to_owned());
        self.trial_started = None;
        let until = now + config.open_for.as_secs_f64();
        if self.open_until.is_some() {
            // Already tripped: a failing trial (or any failure) re-arms the window.
            self.open_until = Some(until);
            if by == OpenedBy::Calls {
                self.opened_by = Some(OpenedBy::Calls);
            }
            None
        } else if self.consecutive_failures >= config.failure_threshold {
            self.open_until = Some(until);
            self.opened_by = Some(by);
            Some(Transition::Tripped)
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: f64 = 1_000_000.0;

    fn cfg() -> BreakerConfig {
        BreakerConfig::default()
    }

    #[test]
    fn construction_limits() {
        assert_eq!(cfg().failure_threshold, 2);
        assert_eq!(cfg().open_for, Duration::from_secs(60));
        let e = BreakerConfig::new(0, Duration::from_secs(1), Duration::from_secs(1)).unwrap_err();
        assert!(e.contains("failure_threshold"));
    }

    /// The names `/health`, `/v1/health` and the metrics use, and their JSON form.
    #[test]
    fn statuses_have_stable_names() {
        for (status, name) in [
            (Status::Healthy, "healthy"),
            (Status::Open, "open"),
            (Status::HalfOpen, "half_open"),
        ] {
            assert_eq!(status.as_str(), name);
            assert_eq!(serde_json::to_value(status).unwrap(), name);
        }
    }

    #[test]
    fn first_failure_does_not_trip() {
        let mut b = Breaker::default();
        assert_eq!(b.on_failure("ConnectError", T, &cfg()), None);
        assert_eq!(b.status(T), Status::Healthy);
        assert_eq!(b.consecutive_failures, 1);
    }

    #[test]
    fn threshold_trips_for_the_window() {
        let mut b = Breaker::default();
        b.on_failure("first", T, &cfg());
        assert_eq!(b.on_failure("second", T, &cfg()), Some(Transition::Tripped));
        assert_eq!(b.status(T), Status::Open);
        assert_eq!(b.last_error.as_deref(), Some("second"));
        assert_eq!(b.open_until, Some(T + 60.0));
        assert_eq!(
            b.status(T + 30.0),
            Status::Open,
            "still open inside the window"
        );
        assert_eq!(b.admit(T + 30.0, &cfg()), Admission::Reject);
    }

    #[test]
    fn threshold_one_trips_at_once() {
        let one = BreakerConfig::new(1, Duration::from_secs(60), Duration::from_secs(15)).unwrap();
        let mut b = Breaker::default();
        assert_eq!(b.on_failure("x", T, &one), Some(Transition::Tripped));
    }

    #[test]
    fn success_resets_everything() {
        let mut b = Breaker::default();
        b.on_failure("x", T, &cfg());
        b.on_failure("x", T, &cfg());
        assert_eq!(b.on_success(T + 1.0), Some(Transition::Recovered));
        assert_eq!(b.status(T + 1.0), Status::Healthy);
        assert_eq!(b.consecutive_failures, 0);
        assert_eq!(b.last_error, None);
        assert_eq!(b.open_until, None);
        assert_eq!(b.on_success(T + 2.0), None, "no event without a change");
        b.on_failure("x", T + 3.0, &cfg());
        assert_eq!(
            b.status(T + 3.0),
            Status::Healthy,
            "after a reset one failure does not trip"
        );
    }

    #[test]
    fn window_passes_into_half_open_with_one_trial() {
        let mut b = Breaker::default();
        b.on_failure("x", T, &cfg());
        b.on_failure("x", T, &cfg());
        assert_eq!(b.status(T + 61.0), Status::HalfOpen);
        assert_eq!(b.admit(T + 61.0, &cfg()), Admission::Trial);
        assert_eq!(
            b.admit(T + 61.5, &cfg()),
            Admission::Reject,
            "one trial at a time"
        );
        assert_eq!(b.on_success(T + 62.0), Some(Transition::Recovered));
        assert_eq!(b.admit(T + 62.0, &cfg()), Admission::Call);
    }

    #[test]
    fn failure_in_half_open_reopens_and_restarts_the_window() {
        let mut b = Breaker::default();
        b.on_failure("x", T, &cfg());
        b.on_failure("x", T, &cfg());
        assert_eq!(b.admit(T + 61.0, &cfg()), Admission::Trial);
        assert_eq!(
            b.on_failure("still down", T + 61.0, &cfg()),
            None,
            "no second trip event"
        );
        assert_eq!(b.status(T + 61.0), Status::Open);
        assert_eq!(b.open_until, Some(T + 121.0));
        assert_eq!(b.consecutive_failures, 3);
    }

    #[test]
    fn a_lost_trial_is_forgotten_after_a_window() {
        let mut b = Breaker::default();
        b.on_failure("x", T, &cfg());
        b.on_failure("x", T, &cfg());
        assert_eq!(b.admit(T + 61.0, &cfg()), Admission::Trial);
        assert_eq!(b.admit(T + 122.0, &cfg()), Admission::Trial);
    }

    #[test]
    fn rate_limits_open_for_retry_after_or_the_short_default() {
        let mut b = Breaker::default();
        assert_eq!(
            b.on_rate_limited(Some(Duration::from_secs(5)), T, &cfg()),
            Some(Transition::Tripped)
        );
        assert_eq!(b.status(T + 4.0), Status::Open);
        assert_eq!(b.status(T + 5.0), Status::HalfOpen);
        let mut b = Breaker::default();
        b.on_rate_limited(None, T, &cfg());
        assert_eq!(b.open_until, Some(T + 15.0));
    }

    #[test]
    fn probe_failures_mark_down_and_probe_successes_close_only_what_probes_opened() {
        let mut b = Breaker::default();
        b.on_probe(Err("probe-timeout"), T, &cfg());
        assert_eq!(
            b.on_probe(Err("probe-timeout"), T + 30.0, &cfg()),
            Some(Transition::Tripped)
        );
        assert_eq!(
            b.on_probe(Ok(()), T + 31.0, &cfg()),
            Some(Transition::Recovered)
        );

        let mut b = Breaker::default();
        b.on_failure("chat 500", T, &cfg());
        b.on_failure("chat 500", T, &cfg());
        assert_eq!(b.on_probe(Ok(()), T + 1.0, &cfg()), None);
        assert_eq!(
            b.status(T + 1.0),
            Status::Open,
            "a probe success does not close a call-opened breaker"
        );
    }
}
