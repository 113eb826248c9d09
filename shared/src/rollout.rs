//! Staged rollouts: which workers serve a candidate registry version, and how the candidate is
//! judged against the stable version.
//!
//! **The cohort rule.** Every worker hashes the candidate's version number with its own fleet
//! id into a point in `0..2^64`; it serves the candidate when its point is below the
//! rollout's threshold. The control plane picks the threshold when the rollout starts so that
//! exactly the asked-for number of the workers then alive fall below it. A worker that joins
//! later applies the same rule to the same threshold, so the split needs no list of names,
//! survives restarts of either side, and is the same on every reader. A new rollout (a new
//! candidate version) hashes differently, so the canaries are not always the same workers.
//!
//! **The judge.** Figures come from the heartbeats: requests, upstream errors, exhausted
//! chains, fallbacks and p99 latency per registry version. The candidate is worse when one of
//! its ratios exceeds the stable one by more than a margin, or its p99 exceeds the stable p99
//! by more than a factor; it is not judged before each cohort has served a minimum number of
//! requests (a cohort with no workers counts as a perfect baseline).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// What a cohort point is hashed under, so it is never mistaken for another hash.
const COHORT_DOMAIN: &[u8] = b"mana-llm cohort v1\0";

/// How much of the fleet serves the candidate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CanaryShare {
    /// A percentage (1–100) of the live workers, rounded up (never zero workers).
    Percent(u8),
    /// A number of workers (at most every live one).
    Workers(u32),
}

impl CanaryShare {
    /// How many of `live` workers serve the candidate.
    pub fn of(self, live: usize) -> usize {
        match self {
            CanaryShare::Percent(p) => (live * usize::from(p)).div_ceil(100).min(live),
            CanaryShare::Workers(n) => usize::try_from(n).unwrap_or(usize::MAX).min(live),
        }
    }
}

impl FromStr for CanaryShare {
    type Err = String;

    /// `25%` or `2` (workers).
    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        let bad = || {
            format!("'{s}' is not a canary share: give a percentage (25%) or a worker count (2)")
        };
        if let Some(p) = s.strip_suffix('%') {
            let p: u8 = p.trim().parse().map_err(|_| bad())?;
            if !(1..=100).contains(&p) {
                return Err(format!("a canary percentage must be 1–100, not {p}%"));
            }
            return Ok(CanaryShare::Percent(p));
        }
        let n: u32 = s.parse().map_err(|_| bad())?;
        if n == 0 {
            return Err("a canary needs at least one worker".to_owned());
        }
        Ok(CanaryShare::Workers(n))
    }
}

impl fmt::Display for CanaryShare {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CanaryShare::Percent(p) => write!(f, "{p}%"),
            CanaryShare::Workers(n) => write!(f, "{n} worker(s)"),
        }
    }
}

/// Seconds from `90`, `90s`, `5m` or `1h`.
pub fn parse_seconds(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let (number, unit) = match t.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        Some((i, _)) => t.split_at(i),
        None => (t, "s"),
    };
    let n: u64 = number.parse().map_err(|_| {
        format!("'{s}' is not a duration: give seconds (90, 90s), minutes (5m) or hours (1h)")
    })?;
    let factor = match unit.trim() {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        _ => {
            return Err(format!(
                "'{s}' is not a duration: give seconds (90, 90s), minutes (5m) or hours (1h)"
            ))
        }
    };
    n.checked_mul(factor)
        .filter(|v| *v <= 7 * 24 * 3600)
        .ok_or_else(|| format!("'{s}' is longer than a week"))
}

/// A worker's point for the rollout of `candidate_version`.
pub fn cohort_point(candidate_version: u64, worker_id: &str) -> u64 {
    let mut hasher = Sha256::new();
    hasher.update(COHORT_DOMAIN);
    hasher.update(candidate_version.to_be_bytes());
    hasher.update(worker_id.as_bytes());
    let digest = hasher.finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    u64::from_be_bytes(first)
}

/// Whether the worker `worker_id` serves the candidate of a rollout with `threshold`.
pub fn in_candidate_cohort(candidate_version: u64, threshold: u64, worker_id: &str) -> bool {
    cohort_point(candidate_version, worker_id) < threshold
}

/// The threshold that puts exactly `share` of `live` (worker ids) on the candidate, and the
/// ids it puts there (sorted).
pub fn pick_cohort<W: AsRef<str> + Clone + Ord>(
    candidate_version: u64,
    live: &[W],
    share: CanaryShare,
) -> (u64, Vec<W>) {
    let mut points: Vec<(u64, &W)> = live
        .iter()
        .map(|id| (cohort_point(candidate_version, id.as_ref()), id))
        .collect();
    points.sort();
    points.dedup_by(|a, b| a.1 == b.1);
    let take = share.of(points.len());
    let threshold = match points.get(take) {
        // The first point left out: everything below it is in.
        Some((point, _)) => *point,
        None => u64::MAX,
    };
    let mut chosen: Vec<W> = points
        .iter()
        .filter(|(p, _)| *p < threshold)
        .map(|(_, id)| (*id).clone())
        .collect();
    chosen.sort();
    (threshold, chosen)
}

/// How the control plane judges a candidate; recorded in the rollout's first event, so a
/// restarted control plane judges by the same rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct JudgeSettings {
    /// Decide by itself at the end of the soak (and abort early on a clearly worse candidate).
    pub auto: bool,
    /// How long both cohorts serve before an automatic promotion.
    pub soak_seconds: u64,
    /// Requests each cohort must have served before the candidate is judged.
    pub min_requests: u64,
    /// Percentage points by which a candidate ratio (errors, exhausted chains, fallbacks) may
    /// exceed the stable one.
    pub ratio_margin_pct: u32,
    /// How much slower the candidate's p99 may be, in percent of the stable p99 (150: 1.5×).
    pub latency_factor_pct: u32,
}

impl Default for JudgeSettings {
    fn default() -> Self {
        Self {
            auto: false,
            soak_seconds: 300,
            min_requests: 50,
            ratio_margin_pct: 5,
            latency_factor_pct: 150,
        }
    }
}

/// Latency differences below this many milliseconds are noise, whatever the factor says.
pub const LATENCY_SLACK_MS: u64 = 50;

/// What one cohort's requests did over the judged window.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Figures {
    pub requests: u64,
    pub upstream_errors: u64,
    pub exhausted: u64,
    pub fallbacks: u64,
    /// The workers' per-beat p99s, weighted by requests, in whole milliseconds.
    pub p99_ms: u64,
}

impl Figures {
    fn ratio(&self, n: u64) -> f64 {
        if self.requests == 0 {
            0.0
        } else {
            n as f64 / self.requests as f64
        }
    }

    pub fn error_ratio(&self) -> f64 {
        self.ratio(self.upstream_errors)
    }

    pub fn exhausted_ratio(&self) -> f64 {
        self.ratio(self.exhausted)
    }

    pub fn fallback_ratio(&self) -> f64 {
        self.ratio(self.fallbacks)
    }
}

/// Both cohorts' figures: what a decision was made on.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cohorts {
    pub candidate: Figures,
    pub stable: Figures,
    /// Whether the stable cohort has live workers (none: every worker serves the candidate,
    /// which is then measured against a perfect baseline).
    pub stable_workers: bool,
}

/// What the judge makes of the figures so far.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Not enough requests yet, or the soak is not over.
    Wait(String),
    /// The candidate is no worse than stable.
    Healthy(String),
    /// The candidate is worse than stable by more than the settings allow.
    Worse(String),
}

impl Verdict {
    pub fn text(&self) -> &str {
        match self {
            Verdict::Wait(t) | Verdict::Healthy(t) | Verdict::Worse(t) => t,
        }
    }
}

/// Judges `cohorts` under `settings`.
pub fn judge(settings: &JudgeSettings, cohorts: &Cohorts) -> Verdict {
    let (c, s) = (&cohorts.candidate, &cohorts.stable);
    if c.requests < settings.min_requests {
        return Verdict::Wait(format!(
            "waiting for traffic: the candidate served {} of {} requests needed",
            c.requests, settings.min_requests
        ));
    }
    if cohorts.stable_workers && s.requests < settings.min_requests {
        return Verdict::Wait(format!(
            "waiting for traffic: stable served {} of {} requests needed",
            s.requests, settings.min_requests
        ));
    }
    let margin = f64::from(settings.ratio_margin_pct) / 100.0;
    let pct = |r: f64| r * 100.0;
    for (name, cand, stab) in [
        ("error ratio", c.error_ratio(), s.error_ratio()),
        (
            "exhausted-chain ratio",
            c.exhausted_ratio(),
            s.exhausted_ratio(),
        ),
        ("fallback ratio", c.fallback_ratio(), s.fallback_ratio()),
    ] {
        if cand > stab + margin {
            return Verdict::Worse(format!(
                "candidate {name} {:.1}% exceeds stable {:.1}% by more than {} points",
                pct(cand),
                pct(stab),
                settings.ratio_margin_pct
            ));
        }
    }
    let allowed = s.p99_ms * u64::from(settings.latency_factor_pct) / 100;
    if cohorts.stable_workers && c.p99_ms > allowed.max(s.p99_ms + LATENCY_SLACK_MS) {
        return Verdict::Worse(format!(
            "candidate p99 {} ms exceeds stable p99 {} ms by more than {}%",
            c.p99_ms,
            s.p99_ms,
            settings.latency_factor_pct.saturating_sub(100)
        ));
    }
    Verdict::Healthy(format!(
        "candidate no worse than stable: errors {:.1}% vs {:.1}%, p99 {} ms vs {} ms over {} and {} requests",
        pct(c.error_ratio()),
        pct(s.error_ratio()),
        c.p99_ms,
        s.p99_ms,
        c.requests,
        s.requests
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("w{i}")).collect()
    }

    #[test]
    fn durations_parse() {
        assert_eq!(parse_seconds("90"), Ok(90));
        assert_eq!(parse_seconds("30s"), Ok(30));
        assert_eq!(parse_seconds("5m"), Ok(300));
        assert_eq!(parse_seconds("1h"), Ok(3600));
        for bad in ["", "s", "5x", "-1", "1.5m", "999999h"] {
            assert!(parse_seconds(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn shares_parse_and_count() {
        assert_eq!("25%".parse(), Ok(CanaryShare::Percent(25)));
        assert_eq!(" 2 ".parse(), Ok(CanaryShare::Workers(2)));
        for bad in ["0%", "101%", "0", "-1", "half", "%", ""] {
            assert!(bad.parse::<CanaryShare>().is_err(), "{bad}");
        }
        assert_eq!(CanaryShare::Percent(25).of(4), 1);
        assert_eq!(CanaryShare::Percent(50).of(4), 2);
        assert_eq!(CanaryShare::Percent(10).of(4), 1, "never zero workers");
        assert_eq!(CanaryShare::Percent(100).of(4), 4);
        assert_eq!(CanaryShare::Percent(50).of(0), 0);
        assert_eq!(CanaryShare::Workers(3).of(2), 2);
    }

    #[test]
    fn the_threshold_puts_exactly_the_share_on_the_candidate() {
        for n in 1..12 {
            for share in [
                CanaryShare::Percent(25),
                CanaryShare::Percent(50),
                CanaryShare::Workers(2),
            ] {
                let live = ids(n);
                let (threshold, chosen) = pick_cohort(7, &live, share);
                assert_eq!(chosen.len(), share.of(n), "{n} workers, {share}");
                // Every worker, asking by itself, agrees with the choice.
                for id in &live {
                    assert_eq!(
                        in_candidate_cohort(7, threshold, id),
                        chosen.contains(id),
                        "{id}"
                    );
                }
            }
        }
    }

    #[test]
    fn the_rule_is_stable_and_differs_per_rollout() {
        let live = ids(8);
        let (a, chosen_a) = pick_cohort(5, &live, CanaryShare::Percent(50));
        assert_eq!(
            pick_cohort(5, &live, CanaryShare::Percent(50)),
            (a, chosen_a.clone())
        );
        let others: Vec<_> = (6..16)
            .map(|v| pick_cohort(v, &live, CanaryShare::Percent(50)).1)
            .collect();
        assert!(
            others.iter().any(|c| *c != chosen_a),
            "other rollouts pick other workers"
        );
        // A pinned point: the hash framing is part of the wire contract between processes.
        assert_eq!(cohort_point(1, "w0"), cohort_point(1, "w0"));
        assert_ne!(cohort_point(1, "w0"), cohort_point(2, "w0"));
        assert_ne!(cohort_point(1, "w0"), cohort_point(1, "w1"));
    }

    fn figures(requests: u64, errors: u64, p99_ms: u64) -> Figures {
        Figures {
            requests,
            upstream_errors: errors,
            p99_ms,
            ..Figures::default()
        }
    }

    fn cohorts(candidate: Figures, stable: Figures) -> Cohorts {
        Cohorts {
            candidate,
            stable,
            stable_workers: true,
        }
    }

    #[test]
    fn the_judge_waits_for_traffic_then_compares() {
        let settings = JudgeSettings {
            min_requests: 10,
            ..JudgeSettings::default()
        };
        let v = judge(&settings, &cohorts(figures(9, 0, 5), figures(100, 0, 5)));
        assert!(matches!(v, Verdict::Wait(_)), "{v:?}");
        let v = judge(&settings, &cohorts(figures(10, 0, 5), figures(9, 0, 5)));
        assert!(matches!(v, Verdict::Wait(_)), "{v:?}");
        let v = judge(&settings, &cohorts(figures(10, 0, 5), figures(10, 0, 5)));
        assert!(matches!(v, Verdict::Healthy(_)), "{v:?}");
        // 10% errors against 0%: more than 5 points.
        let v = judge(&settings, &cohorts(figures(100, 10, 5), figures(100, 0, 5)));
        assert!(
            matches!(&v, Verdict::Worse(t) if t.contains("error ratio")),
            "{v:?}"
        );
        // 5% against 0%: within the margin.
        let v = judge(&settings, &cohorts(figures(100, 5, 5), figures(100, 0, 5)));
        assert!(matches!(v, Verdict::Healthy(_)), "{v:?}");
        let exhausted = Figures {
            exhausted: 50,
            ..figures(100, 0, 5)
        };
        let v = judge(&settings, &cohorts(exhausted, figures(100, 0, 5)));
        assert!(
            matches!(&v, Verdict::Worse(t) if t.contains("exhausted")),
            "{v:?}"
        );
        let fallbacks = Figures {
            fallbacks: 50,
            ..figures(100, 0, 5)
        };
        let v = judge(&settings, &cohorts(fallbacks, figures(100, 0, 5)));
        assert!(
            matches!(&v, Verdict::Worse(t) if t.contains("fallback")),
            "{v:?}"
        );
    }

    #[test]
    fn latency_counts_past_the_factor_and_the_slack() {
        let settings = JudgeSettings {
            min_requests: 1,
            ..JudgeSettings::default()
        };
        // 1.5× of 1000 ms is 1500: 1600 is worse, 1400 is not.
        let v = judge(
            &settings,
            &cohorts(figures(10, 0, 1600), figures(10, 0, 1000)),
        );
        assert!(
            matches!(&v, Verdict::Worse(t) if t.contains("p99")),
            "{v:?}"
        );
        let v = judge(
            &settings,
            &cohorts(figures(10, 0, 1400), figures(10, 0, 1000)),
        );
        assert!(matches!(v, Verdict::Healthy(_)), "{v:?}");
        // 20 ms against 5 ms is 4×, but within the slack.
        let v = judge(&settings, &cohorts(figures(10, 0, 20), figures(10, 0, 5)));
        assert!(matches!(v, Verdict::Healthy(_)), "{v:?}");
    }

    #[test]
    fn with_no_stable_workers_the_baseline_is_perfect() {
        let settings = JudgeSettings {
            min_requests: 10,
            ..JudgeSettings::default()
        };
        let alone = |c| Cohorts {
            candidate: c,
            stable: Figures::default(),
            stable_workers: false,
        };
        assert!(matches!(
            judge(&settings, &alone(figures(10, 0, 900))),
            Verdict::Healthy(_)
        ));
        assert!(matches!(
            judge(&settings, &alone(figures(10, 1, 5))),
            Verdict::Worse(_)
        ));
    }
}
