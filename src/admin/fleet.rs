//! `mana-llm fleet status` and `aliases push --wait`: the fleet as the control plane sees it
//! from the workers' heartbeats.

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use super::client::Client;
use super::failure::Failure;
use mana_llm_shared::RegistryVersion;

/// Exit code of `push --wait` when the deadline passed before every live worker served the
/// version.
pub const EXIT_WAIT_TIMEOUT: u8 = 8;

pub use mana_llm_control_plane::contract::{FleetView, Progress};
#[cfg(test)]
use mana_llm_control_plane::contract::{ProgressWorker, WorkerView};

/// The fleet as a table.
pub fn render_status(view: &FleetView) -> String {
    let mut out = format!(
        "current version {}: {} of {} live worker(s) serve it\n",
        view.current_version, view.serving_current, view.live
    );
    if view.workers.is_empty() {
        out.push_str("no live workers\n");
        return out;
    }
    let id_width = view
        .workers
        .iter()
        .map(|w| w.worker_id.as_str().len())
        .max()
        .unwrap_or(0)
        .max("WORKER".len());
    let _ = writeln!(
        out,
        "{:id_width$}  {:<21}  {:>7}  {:>9}  LAG",
        "WORKER", "LISTEN", "VERSION", "IN-FLIGHT"
    );
    for w in &view.workers {
        let lag = match (w.lagging, w.lag_seconds) {
            (false, _) => "-".to_owned(),
            (true, Some(s)) => format!("behind for {s:.0}s"),
            (true, None) => "behind".to_owned(),
        };
        let _ = writeln!(
            out,
            "{:id_width$}  {:<21}  {:>7}  {:>9}  {lag}",
            w.worker_id, w.listen, w.registry_version, w.in_flight
        );
    }
    out
}

/// `30s`, `500ms`, `2m` or a plain number of seconds.
pub fn parse_timeout(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (number, unit) = match text.find(|c: char| !(c.is_ascii_digit() || c == '.')) {
        Some(i) => text.split_at(i),
        None => (text, "s"),
    };
    let n: f64 = number
        .parse()
        .map_err(|_| format!("'{text}' is not a duration (e.g. 30s, 500ms, 2m)"))?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" => n,
        "m" => n * 60.0,
        _ => return Err(format!("'{text}' is not a duration (e.g. 30s, 500ms, 2m)")),
    };
    if !(secs.is_finite() && secs > 0.0 && secs < 86_400.0) {
        return Err(format!("'{text}' must be more than 0 and less than a day"));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// Polls the rollout of `version` until every live worker serves it or `timeout` passes.
pub async fn wait(
    client: &Client,
    version: RegistryVersion,
    timeout: Duration,
) -> Result<String, Failure> {
    let started = Instant::now();
    let path = format!("/registry/versions/{version}/rollout");
    loop {
        let text = client.send(client.get(&path), None).await?;
        let progress: Progress =
            serde_json::from_str(&text).map_err(|e| Failure::unreadable(&e.to_string()))?;
        if progress.complete {
            return Ok(format!(
                "served by all {} live worker(s) after {:.1}s\n",
                progress.live,
                started.elapsed().as_secs_f64()
            ));
        }
        if started.elapsed() >= timeout {
            return Err(timed_out(&progress, timeout));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn timed_out(progress: &Progress, timeout: Duration) -> Failure {
    let laggards: Vec<String> = progress
        .workers
        .iter()
        .filter(|w| !w.serving)
        .map(|w| format!("{} (still on version {})", w.worker_id, w.registry_version))
        .collect();
    let mut failure = Failure::local(format!(
        "version {} reached {} of {} live worker(s) within {:.0}s; not yet: {}",
        progress.version,
        progress.serving,
        progress.live,
        timeout.as_secs_f64(),
        laggards.join(", ")
    ));
    failure.exit = EXIT_WAIT_TIMEOUT;
    failure
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeouts_parse_with_units() {
        assert_eq!(parse_timeout("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_timeout("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_timeout("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_timeout("5"), Ok(Duration::from_secs(5)));
        for bad in ["", "soon", "0s", "-1s", "3h", "1e9s"] {
            assert!(parse_timeout(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_timeout_names_the_laggards_and_exits_8() {
        let progress = Progress {
            version: RegistryVersion(4),
            live: 3,
            serving: 2,
            complete: false,
            workers: vec![
                ProgressWorker {
                    worker_id: "w1".into(),
                    registry_version: RegistryVersion(4),
                    serving: true,
                },
                ProgressWorker {
                    worker_id: "w2".into(),
                    registry_version: RegistryVersion(3),
                    serving: false,
                },
                ProgressWorker {
                    worker_id: "w3".into(),
                    registry_version: RegistryVersion(4),
                    serving: true,
                },
            ],
        };
        let f = timed_out(&progress, Duration::from_secs(30));
        assert_eq!(f.exit, EXIT_WAIT_TIMEOUT);
        assert_eq!(
            f.line,
            "version 4 reached 2 of 3 live worker(s) within 30s; not yet: w2 (still on version 3)"
        );
    }

    #[test]
    fn the_status_table_marks_laggards() {
        let view = FleetView {
            current_version: RegistryVersion(5),
            live: 2,
            serving_current: 1,
            workers: vec![
                WorkerView {
                    worker_id: "a".into(),
                    listen: "127.0.0.1:1".into(),
                    registry_version: RegistryVersion(5),
                    in_flight: 0,
                    lagging: false,
                    lag_seconds: Some(0.0),
                    ..WorkerView::default()
                },
                WorkerView {
                    worker_id: "b".into(),
                    listen: "127.0.0.1:2".into(),
                    registry_version: RegistryVersion(4),
                    in_flight: 3,
                    lagging: true,
                    lag_seconds: Some(12.4),
                    ..WorkerView::default()
                },
            ],
            ..FleetView::default()
        };
        let text = render_status(&view);
        assert!(
            text.starts_with("current version 5: 1 of 2 live worker(s) serve it\n"),
            "{text}"
        );
        assert!(
            text.lines()
                .any(|l| l.starts_with("b ") && l.ends_with("behind for 12s")),
            "{text}"
        );
        assert!(
            text.lines()
                .any(|l| l.starts_with("a ") && l.ends_with(" -")),
            "{text}"
        );
    }
}
