//! Watching a staged rollout: the figures of both cohorts, summed from the workers'
//! heartbeats, and the loop that lets the judge decide when the rollout asked for it.
//!
//! Figures live in memory only. A control plane that restarts mid-rollout finds the rollout
//! in the log (workers keep serving what they serve meanwhile), starts summing afresh and
//! decides by the same recorded settings; the events it writes carry the figures it decided
//! on. While the heartbeats cannot be read (Redis down) the rollout is paused and says so:
//! nothing is decided on figures that stopped arriving.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mana_llm_shared::clock::unix_now;
use mana_llm_shared::fleet::{Beat, Beats, Window, WorkerId};
use mana_llm_shared::rollout::{judge, Cohorts, Figures, JudgeSettings, Verdict};
use mana_llm_shared::RegistryVersion;
use tokio_util::sync::CancellationToken;

use crate::domain::{ActiveRollout, Command, DomainError};
use crate::service::{RegistryService, ServiceError};

/// How often the figures are read and judged (heartbeats arrive every few seconds).
const TICK: Duration = Duration::from_secs(1);

/// The actor of the judge's decisions in the log.
pub const JUDGE_ACTOR: &str = "rollout-judge";

/// Sums of one cohort's windows.
#[derive(Debug, Default, Clone)]
struct Sums {
    requests: u64,
    upstream_errors: u64,
    exhausted: u64,
    fallbacks: u64,
    /// Σ p99 × requests, for a request-weighted p99.
    weighted_p99: f64,
}

impl Sums {
    fn add(&mut self, w: &Window) {
        self.requests = self.requests.saturating_add(w.requests);
        self.upstream_errors = self.upstream_errors.saturating_add(w.upstream_errors);
        self.exhausted = self.exhausted.saturating_add(w.exhausted);
        self.fallbacks = self.fallbacks.saturating_add(w.fallbacks);
        let p99 = w.latency_ms.p99;
        if p99.is_finite() && p99 >= 0.0 {
            self.weighted_p99 += p99 * w.requests as f64;
        }
    }

    fn figures(&self) -> Figures {
        Figures {
            requests: self.requests,
            upstream_errors: self.upstream_errors.min(self.requests),
            exhausted: self.exhausted.min(self.requests),
            fallbacks: self.fallbacks.min(self.requests),
            p99_ms: if self.requests == 0 {
                0
            } else {
                (self.weighted_p99 / self.requests as f64).round() as u64
            },
        }
    }
}

/// What the watch knows about the running rollout.
#[derive(Debug, Default)]
struct State {
    /// The candidate these sums belong to (0: none yet).
    candidate: RegistryVersion,
    candidate_sums: Sums,
    stable_sums: Sums,
    /// Each worker's last beat already counted.
    counted: HashMap<WorkerId, f64>,
    stable_workers: bool,
    /// Why figures are not arriving, while they are not.
    paused: Option<String>,
    verdict: Option<Verdict>,
}

/// The figures of the running rollout, shared by the judge loop and the admin API.
#[derive(Debug, Default)]
pub struct Watch {
    state: Mutex<State>,
    /// What a rollout started without its own settings is judged by.
    defaults: JudgeSettings,
}

/// What the admin API shows of a running rollout's figures.
#[derive(Debug, Clone)]
pub struct Seen {
    pub cohorts: Cohorts,
    pub verdict: Option<Verdict>,
    pub paused: Option<String>,
}

impl Watch {
    pub fn new(defaults: JudgeSettings) -> Arc<Self> {
        Arc::new(Self {
            state: Mutex::new(State::default()),
            defaults,
        })
    }

    /// The settings a rollout gets when the push does not name its own.
    pub fn defaults(&self) -> JudgeSettings {
        self.defaults
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds the beats not counted yet (`None`: the fleet store cannot be read) and judges.
    pub fn observe(&self, rollout: &ActiveRollout, beats: Option<&[Beat]>) -> Seen {
        let mut state = self.lock();
        if state.candidate != rollout.candidate_version {
            *state = State {
                candidate: rollout.candidate_version,
                ..State::default()
            };
        }
        match beats {
            None => {
                state.paused = Some(
                    "the fleet's heartbeats cannot be read (Redis unreachable): workers keep \
                     their versions and nothing is judged until they can"
                        .to_owned(),
                );
            }
            Some(beats) => {
                state.paused = None;
                state.stable_workers = beats
                    .iter()
                    .any(|b| !rollout.includes(b.worker_id.as_str()));
                for beat in beats {
                    let counted = state.counted.get(&beat.worker_id).copied();
                    if counted.is_some_and(|at| at >= beat.beat_at) {
                        continue;
                    }
                    state.counted.insert(beat.worker_id.clone(), beat.beat_at);
                    if let Some(w) = beat.windows.get(&rollout.candidate_version) {
                        state.candidate_sums.add(w);
                    }
                    if let Some(w) = beat.windows.get(&rollout.stable_version) {
                        state.stable_sums.add(w);
                    }
                }
                let cohorts = cohorts(&state);
                state.verdict = Some(judge(&rollout.judge, &cohorts));
            }
        }
        seen(&state)
    }

    /// The figures so far of `candidate`'s rollout (empty if the watch has not seen it yet).
    pub fn seen(&self, candidate: RegistryVersion) -> Seen {
        let state = self.lock();
        if state.candidate != candidate {
            return Seen {
                cohorts: Cohorts::default(),
                verdict: None,
                paused: None,
            };
        }
        seen(&state)
    }
}

fn cohorts(state: &State) -> Cohorts {
    Cohorts {
        candidate: state.candidate_sums.figures(),
        stable: state.stable_sums.figures(),
        stable_workers: state.stable_workers,
    }
}

fn seen(state: &State) -> Seen {
    Seen {
        cohorts: cohorts(state),
        verdict: state.verdict.clone(),
        paused: state.paused.clone(),
    }
}

/// What the judge loop does with a verdict on an automatic rollout: abort a worse candidate
/// at once, promote a healthy one once the soak is over, otherwise wait.
fn decision(rollout: &ActiveRollout, verdict: &Verdict, soak_over: bool) -> Option<(bool, String)> {
    if !rollout.judge.auto {
        return None;
    }
    match verdict {
        Verdict::Worse(reason) => Some((false, reason.clone())),
        Verdict::Healthy(reason) if soak_over => Some((true, reason.clone())),
        _ => None,
    }
}

/// A judge setting that does not parse; the message names the key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SettingError {
    #[error("{key} must be a whole number, got '{value}'")]
    NotANumber { key: &'static str, value: String },
    #[error("{key}: {reason}")]
    NotADuration { key: &'static str, reason: String },
    #[error("MANA_LLM_ROLLOUT_LATENCY_FACTOR is a percentage of the stable p99 of at least 100, got {0}")]
    LatencyFactorBelow100(u32),
}

/// The judge's defaults from the operator's settings: `MANA_LLM_ROLLOUT_SOAK` (90, 90s, 5m),
/// `MANA_LLM_ROLLOUT_MIN_REQUESTS`, `MANA_LLM_ROLLOUT_RATIO_MARGIN` (percentage points) and
/// `MANA_LLM_ROLLOUT_LATENCY_FACTOR` (percent of the stable p99).
pub fn defaults_from(
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<JudgeSettings, SettingError> {
    let mut judge = JudgeSettings::default();
    let get = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
    let number = |key: &'static str, value: String| {
        value
            .trim()
            .parse::<u32>()
            .map_err(|_| SettingError::NotANumber { key, value })
    };
    if let Some(v) = get("MANA_LLM_ROLLOUT_SOAK") {
        judge.soak_seconds = mana_llm_shared::rollout::parse_seconds(&v).map_err(|reason| {
            SettingError::NotADuration {
                key: "MANA_LLM_ROLLOUT_SOAK",
                reason,
            }
        })?;
    }
    if let Some(v) = get("MANA_LLM_ROLLOUT_MIN_REQUESTS") {
        judge.min_requests = u64::from(number("MANA_LLM_ROLLOUT_MIN_REQUESTS", v)?);
    }
    if let Some(v) = get("MANA_LLM_ROLLOUT_RATIO_MARGIN") {
        judge.ratio_margin_pct = number("MANA_LLM_ROLLOUT_RATIO_MARGIN", v)?.min(100);
    }
    if let Some(v) = get("MANA_LLM_ROLLOUT_LATENCY_FACTOR") {
        let factor = number("MANA_LLM_ROLLOUT_LATENCY_FACTOR", v)?;
        if factor < 100 {
            return Err(SettingError::LatencyFactorBelow100(factor));
        }
        judge.latency_factor_pct = factor;
    }
    Ok(judge)
}

/// Runs until `cancel`: every tick, adds the latest heartbeats to the running rollout's
/// figures and, for an automatic rollout, promotes or aborts when the judge says so.
pub async fn judge_loop(
    service: RegistryService,
    beats: Option<Arc<dyn Beats>>,
    watch: Arc<Watch>,
    cancel: CancellationToken,
) {
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // When the running rollout started (read from the log once per rollout, not every tick).
    let mut started: Option<(RegistryVersion, f64)> = None;
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tick.tick() => {}
        }
        let Some(rollout) = service.rollout().await else {
            continue;
        };
        let listed = match &beats {
            Some(b) => b.list().await,
            None => None,
        };
        let seen = watch.observe(&rollout, listed.as_deref());
        let Some(verdict) = seen.verdict.filter(|_| seen.paused.is_none()) else {
            continue;
        };
        if started.is_none_or(|(candidate, _)| candidate != rollout.candidate_version) {
            started = service
                .rollout_started_at()
                .await
                .map(|at| (rollout.candidate_version, at));
        }
        // A start time the log could not give means the soak is not known to be over.
        let soak_over =
            started.is_some_and(|(_, at)| unix_now() >= at + rollout.judge.soak_seconds as f64);
        let Some((promote, reason)) = decision(&rollout, &verdict, soak_over) else {
            continue;
        };
        let command = Command::EndRollout {
            candidate: Some(rollout.candidate_version),
            promote,
            decided_by: "judge".to_owned(),
            reason: reason.clone(),
            figures: Some(seen.cohorts),
        };
        match service.execute(command, JUDGE_ACTOR).await {
            Ok(_) => tracing::warn!(
                candidate = rollout.candidate_version.0,
                stable = rollout.stable_version.0,
                outcome = if promote { "promoted" } else { "aborted" },
                %reason,
                "rollout decided by the judge"
            ),
            // Decided meanwhile by an admin or another control plane.
            Err(ServiceError::Domain(DomainError::NoRollout)) | Err(ServiceError::Conflict) => {}
            Err(e) => {
                tracing::error!(error = %e, "the judge's decision could not be recorded; will retry")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use mana_llm_shared::fleet::{Latency, WorkerId};
    use mana_llm_shared::rollout::{pick_cohort, CanaryShare};

    use super::*;

    fn rollout(auto: bool) -> ActiveRollout {
        let live: Vec<WorkerId> = (0..4).map(|i| WorkerId::from(format!("w{i}"))).collect();
        let (threshold, cohort) = pick_cohort(3, &live, CanaryShare::Percent(50));
        ActiveRollout {
            candidate_version: RegistryVersion(3),
            stable_version: RegistryVersion(2),
            share: CanaryShare::Percent(50),
            threshold,
            cohort,
            judge: JudgeSettings {
                auto,
                min_requests: 10,
                ..JudgeSettings::default()
            },
        }
    }

    fn beat(id: &str, at: f64, version: u64, requests: u64, errors: u64) -> Beat {
        let window = Window {
            requests,
            upstream_errors: errors,
            latency_ms: Latency {
                p99: 20.0,
                ..Latency::default()
            },
            ..Window::default()
        };
        Beat {
            worker_id: id.to_owned().into(),
            listen: "127.0.0.1:1".to_owned(),
            binary_version: "0".to_owned(),
            registry_version: mana_llm_shared::RegistryVersion(version),
            started_at: 0.0,
            beat_at: at,
            ttl: 15.0,
            in_flight: 0,
            windows: BTreeMap::from([(mana_llm_shared::RegistryVersion(version), window)]),
            breakers: BTreeMap::new(),
        }
    }

    #[test]
    fn defaults_come_from_the_settings_and_bad_ones_are_named() {
        let settings = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| {
                pairs
                    .iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| (*v).to_owned())
            }
        };
        let judge = defaults_from(settings(&[
            ("MANA_LLM_ROLLOUT_SOAK", "2m"),
            ("MANA_LLM_ROLLOUT_MIN_REQUESTS", "7"),
            ("MANA_LLM_ROLLOUT_RATIO_MARGIN", "2"),
            ("MANA_LLM_ROLLOUT_LATENCY_FACTOR", "200"),
        ]))
        .unwrap();
        assert_eq!(
            (
                judge.soak_seconds,
                judge.min_requests,
                judge.ratio_margin_pct,
                judge.latency_factor_pct
            ),
            (120, 7, 2, 200)
        );
        assert_eq!(
            defaults_from(settings(&[])).unwrap(),
            JudgeSettings::default()
        );
        for bad in [
            &[("MANA_LLM_ROLLOUT_SOAK", "soon")][..],
            &[("MANA_LLM_ROLLOUT_MIN_REQUESTS", "-1")],
            &[("MANA_LLM_ROLLOUT_LATENCY_FACTOR", "50")],
        ] {
            let error = defaults_from(settings(bad)).unwrap_err().to_string();
            assert!(error.contains(bad[0].0), "{error}");
        }
    }

    #[test]
    fn each_beat_counts_once_per_cohort_version() {
        let watch = Watch::new(JudgeSettings::default());
        let r = rollout(true);
        let beats = [beat("w0", 1.0, 3, 6, 6), beat("w1", 1.0, 2, 6, 0)];
        watch.observe(&r, Some(&beats));
        // The same beats again (read before the next heartbeat) add nothing.
        let seen = watch.observe(&r, Some(&beats));
        assert_eq!(seen.cohorts.candidate.requests, 6);
        assert_eq!(seen.cohorts.stable.requests, 6);
        assert!(
            matches!(seen.verdict, Some(Verdict::Wait(_))),
            "{:?}",
            seen.verdict
        );
        let next = [beat("w0", 2.0, 3, 6, 6), beat("w1", 2.0, 2, 6, 0)];
        let seen = watch.observe(&r, Some(&next));
        assert_eq!(seen.cohorts.candidate.upstream_errors, 12);
        assert_eq!(seen.cohorts.candidate.p99_ms, 20);
        let verdict = seen.verdict.unwrap();
        assert!(matches!(verdict, Verdict::Worse(_)), "{verdict:?}");
        assert_eq!(
            decision(&r, &verdict, false).map(|d| d.0),
            Some(false),
            "aborts at once"
        );
        assert_eq!(
            decision(&rollout(false), &verdict, true),
            None,
            "not without auto"
        );
    }

    #[test]
    fn a_healthy_candidate_is_promoted_only_after_the_soak() {
        let watch = Watch::new(JudgeSettings::default());
        let r = rollout(true);
        let seen = watch.observe(
            &r,
            Some(&[beat("w0", 1.0, 3, 20, 0), beat("w1", 1.0, 2, 20, 0)]),
        );
        let verdict = seen.verdict.unwrap();
        assert!(matches!(verdict, Verdict::Healthy(_)), "{verdict:?}");
        assert_eq!(decision(&r, &verdict, false), None);
        assert_eq!(decision(&r, &verdict, true).map(|d| d.0), Some(true));
    }

    #[test]
    fn unreadable_beats_pause_and_a_new_rollout_starts_from_zero() {
        let watch = Watch::new(JudgeSettings::default());
        let r = rollout(true);
        watch.observe(&r, Some(&[beat("w0", 1.0, 3, 20, 0)]));
        let seen = watch.observe(&r, None);
        assert!(seen.paused.is_some_and(|p| p.contains("Redis")));
        assert_eq!(
            seen.cohorts.candidate.requests, 20,
            "figures are kept while paused"
        );
        let next = ActiveRollout {
            candidate_version: RegistryVersion(4),
            ..r
        };
        let seen = watch.observe(&next, Some(&[beat("w0", 1.0, 4, 1, 0)]));
        assert_eq!(seen.cohorts.candidate.requests, 1);
        assert!(seen.paused.is_none());
    }
}
