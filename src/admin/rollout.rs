//! `aliases push --canary`, `aliases rollout`, `aliases promote`, `aliases abort`: a staged
//! rollout from the terminal. Rendering is pure, tested without a server.

use std::fmt::Write as _;

pub use mana_llm_control_plane::contract::{
    Active, Ended, FiguresView, Finished, Member, Started, Status,
};
#[cfg(test)]
use mana_llm_control_plane::contract::{CohortsView, FiguresPair};

fn members(list: &[Member]) -> String {
    if list.is_empty() {
        return "none".to_owned();
    }
    list.iter()
        .map(|m| format!("{} (v{})", m.worker_id, m.registry_version))
        .collect::<Vec<_>>()
        .join(", ")
}

fn judge_line(a: &Active) -> String {
    if a.auto {
        format!(
            "judge: automatic — aborts a worse candidate at once, promotes a healthy one after the {}s soak (at least {} requests per cohort)",
            a.soak_seconds, a.min_requests
        )
    } else {
        "judge: manual — run `mana-llm aliases promote` or `mana-llm aliases abort`".to_owned()
    }
}

/// What a push with `--canary` prints.
pub fn render_started(s: &Started) -> String {
    let a = &s.rollout;
    format!(
        "version {} is rolling out to {} beside stable version {}\n  candidate: {}\n  stable:    {}\n{}\n",
        s.version,
        a.share,
        s.stable_version,
        members(&a.cohorts.candidate),
        members(&a.cohorts.stable),
        judge_line(a)
    )
}

fn figures_row(name: &str, f: &FiguresView) -> String {
    format!(
        "  {name:<9}  {:>8}  {:>6.1}%  {:>9.1}%  {:>8.1}%  {:>6} ms\n",
        f.requests,
        f.error_ratio * 100.0,
        f.exhausted_ratio * 100.0,
        f.fallback_ratio * 100.0,
        f.p99_ms
    )
}

/// `aliases rollout`.
pub fn render_status(s: &Status) -> String {
    let mut out = String::new();
    match &s.active {
        Some(a) => {
            let _ = writeln!(
                out,
                "rolling out version {} to {} beside stable version {}",
                a.candidate_version, a.share, a.stable_version
            );
            let _ = writeln!(out, "  candidate: {}", members(&a.cohorts.candidate));
            let _ = writeln!(out, "  stable:    {}", members(&a.cohorts.stable));
            let _ = writeln!(out, "{}", judge_line(a));
            out.push_str("  COHORT     REQUESTS  ERRORS  EXHAUSTED  FALLBACK      P99\n");
            out.push_str(&figures_row("candidate", &a.figures.candidate));
            out.push_str(&figures_row("stable", &a.figures.stable));
            if let Some(paused) = &a.paused {
                let _ = writeln!(out, "PAUSED: {paused}");
            } else if let Some(verdict) = &a.verdict {
                let _ = writeln!(out, "verdict: {verdict}");
            }
        }
        None => out.push_str("no rollout in progress\n"),
    }
    if let Some(f) = &s.last {
        let _ = writeln!(out, "last: {}", finished_line(f));
    }
    out
}

fn finished_line(f: &Finished) -> String {
    format!(
        "version {} {} by {} (stable was {}): {}",
        f.candidate_version, f.outcome, f.decided_by, f.stable_version, f.reason
    )
}

/// What promote and abort print.
pub fn render_ended(e: &Ended) -> String {
    match &e.rollout {
        Some(f) => format!("{}\ncurrent version: {}\n", finished_line(f), e.version),
        None => format!("current version: {}\n", e.version),
    }
}

#[cfg(test)]
mod tests {
    use mana_llm_shared::RegistryVersion;

    use super::*;

    fn active(auto: bool, paused: Option<&str>) -> Active {
        let figures = |requests, error_ratio| FiguresView {
            requests,
            error_ratio,
            exhausted_ratio: 0.0,
            fallback_ratio: 0.0,
            p99_ms: 12,
            ..FiguresView::default()
        };
        Active {
            candidate_version: RegistryVersion(5),
            stable_version: RegistryVersion(4),
            share: "50%".into(),
            auto,
            soak_seconds: 30,
            min_requests: 20,
            cohorts: CohortsView {
                candidate: vec![Member {
                    worker_id: "w1".into(),
                    registry_version: RegistryVersion(5),
                }],
                stable: vec![],
            },
            figures: FiguresPair {
                candidate: figures(40, 0.5),
                stable: figures(40, 0.0),
            },
            verdict: Some("candidate error ratio 50.0% exceeds stable 0.0%".into()),
            paused: paused.map(str::to_owned),
            ..Active::default()
        }
    }

    #[test]
    fn the_status_shows_cohorts_figures_and_the_verdict() {
        let text = render_status(&Status {
            active: Some(active(true, None)),
            last: None,
        });
        assert!(
            text.starts_with("rolling out version 5 to 50% beside stable version 4\n"),
            "{text}"
        );
        assert!(
            text.contains("candidate: w1 (v5)") && text.contains("stable:    none"),
            "{text}"
        );
        assert!(text.contains("after the 30s soak"), "{text}");
        assert!(
            text.lines()
                .any(|l| l.trim_start().starts_with("candidate") && l.contains("50.0%")),
            "{text}"
        );
        assert!(text.contains("verdict: candidate error ratio"), "{text}");
        let paused = render_status(&Status {
            active: Some(active(false, Some("Redis unreachable"))),
            last: None,
        });
        assert!(
            paused.contains("PAUSED: Redis unreachable") && !paused.contains("verdict"),
            "{paused}"
        );
        assert!(paused.contains("judge: manual"), "{paused}");
    }

    #[test]
    fn no_rollout_and_the_last_one_read_plainly() {
        let text = render_status(&Status {
            active: None,
            last: Some(Finished {
                candidate_version: RegistryVersion(5),
                stable_version: RegistryVersion(4),
                outcome: "aborted".into(),
                decided_by: "judge".into(),
                reason: "worse".into(),
                ..Finished::default()
            }),
        });
        assert_eq!(
            text,
            "no rollout in progress\nlast: version 5 aborted by judge (stable was 4): worse\n"
        );
    }
}
