//! Staged rollouts across a real fleet: a control plane, four workers, a real redis-server and
//! the mock upstream. A canary puts exactly its share of the workers on the candidate (the
//! `X-Mana-LLM-Registry-Version` of their answers proves which); the judge aborts a candidate
//! whose chain fails and promotes a healthy one; a push during a rollout is refused; a control
//! plane killed mid-rollout picks it up from its log; a frozen Redis pauses it.

use std::collections::BTreeMap;
use std::process::Output;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::fleet::Cluster;
use crate::fleet_view::cli;
use crate::support::*;

/// The candidate that fails: its only entry answers 503 on every call.
const FAILING: &str = "aliases:\n  mana/echo: {chain: [ollama/status-503]}\ndefault: mana/echo\n";
const HEALTHY: &str = "aliases:\n  mana/echo: {chain: [echo/v2]}\ndefault: mana/echo\n";

/// Heartbeats every 200 ms, so figures reach the judge quickly.
const FAST_BEATS: [(&str, &str); 1] = [("MANA_LLM_HEARTBEAT_INTERVAL", "0.2")];

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

async fn rollout(cluster: &Cluster) -> Value {
    let r = cluster.control_plane.get("/admin/v1/rollout").await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.json
}

/// The registry version each worker answers a chat with, by worker index.
async fn versions_served(cluster: &Cluster) -> Vec<u64> {
    let mut out = Vec::new();
    for w in &cluster.workers {
        let r = w
            .post("/v1/chat/completions", chat("mana/echo", "which"))
            .await;
        let v = r
            .header("x-mana-llm-registry-version")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        out.push(v);
    }
    out
}

/// How many workers answer with each version.
fn census(versions: &[u64]) -> BTreeMap<u64, usize> {
    let mut out = BTreeMap::new();
    for v in versions {
        *out.entry(*v).or_default() += 1;
    }
    out
}

/// Waits until the versions the workers answer with (by worker index) satisfy `expected`.
async fn until_served(cluster: &Cluster, what: &str, expected: impl Fn(&[u64]) -> bool) {
    assert!(
        eventually_async(Duration::from_secs(10), || async {
            expected(&versions_served(cluster).await)
        })
        .await,
        "{what}: {:?}",
        versions_served(cluster).await
    );
}

/// Two workers on the stable version 1, two on the candidate version 2.
fn split_in_half(served: &[u64]) -> bool {
    census(served) == BTreeMap::from([(1, 2), (2, 2)])
}

async fn four_workers_beating(cluster: &Cluster) {
    assert!(
        eventually_async(Duration::from_secs(10), || async {
            let r = cluster.control_plane.get("/admin/v1/fleet").await;
            r.json["live"] == 4 && r.json["serving_current"] == 4
        })
        .await,
        "{}",
        cluster.control_plane.get("/admin/v1/fleet").await.text
    );
}

/// Sends chats round-robin to every worker until `done` holds or `deadline` passes.
async fn traffic_until<F, Fut>(cluster: &Cluster, deadline: Duration, mut done: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    while start.elapsed() < deadline {
        for w in &cluster.workers {
            let _ = w
                .post("/v1/chat/completions", chat("mana/echo", "traffic"))
                .await;
        }
        if done().await {
            return true;
        }
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_candidate_on_half_the_fleet_is_aborted_by_the_judge() {
    let cluster = Cluster::start_with(4, &FAST_BEATS).await;
    four_workers_beating(&cluster).await;
    let file = temp_file("failing.yaml", FAILING);
    let out = cli(
        &cluster,
        &[
            "aliases",
            "push",
            file.to_str().unwrap(),
            "--canary",
            "50%",
            "--auto",
            "--soak",
            "5m",
            "--min-requests",
            "12",
        ],
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        text(&out).contains("version 2 is rolling out to 50% beside stable version 1"),
        "{}",
        text(&out)
    );

    // Exactly two workers answer from the candidate, two from stable.
    until_served(&cluster, "two workers on each version", split_in_half).await;
    let status = rollout(&cluster).await;
    let cohort = |name: &str| -> Vec<String> {
        status["active"]["cohorts"][name]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["worker_id"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(cohort("candidate").len(), 2, "{status}");
    assert_eq!(cohort("stable").len(), 2, "{status}");
    // The cohort the status names is the one that answers from the candidate.
    let served = versions_served(&cluster).await;
    for (i, v) in served.iter().enumerate() {
        let id = format!("w{i}");
        assert_eq!(
            *v == 2,
            cohort("candidate").contains(&id),
            "{id}: {served:?} {status}"
        );
    }

    // A push while the rollout runs is refused, naming it.
    let r = cluster
        .control_plane
        .send(
            client()
                .post(cluster.control_plane.url("/admin/v1/registry"))
                .body(HEALTHY),
        )
        .await;
    r.assert_error(409, "rollout_in_progress");
    assert!(r.text.contains("version 2"), "{}", r.text);

    // Traffic: the candidate's half fails every request; the judge aborts long before the soak.
    let aborted = traffic_until(&cluster, Duration::from_secs(40), || async {
        rollout(&cluster).await["active"].is_null()
    })
    .await;
    let status = rollout(&cluster).await;
    assert!(aborted, "{status}");
    assert_eq!(status["last"]["outcome"], "aborted", "{status}");
    assert_eq!(status["last"]["decided_by"], "judge", "{status}");
    assert!(
        status["last"]["reason"].as_str().unwrap().contains("ratio"),
        "{status}"
    );
    // Every worker is back on stable.
    until_served(&cluster, "every worker back on stable", |v| {
        v == [1, 1, 1, 1]
    })
    .await;

    // The audit log has both events, the abort with the figures that decided it.
    let audit = cluster.control_plane.get("/admin/v1/audit").await.json;
    let events = audit["events"]
        .as_array()
        .unwrap_or_else(|| panic!("{audit}"));
    let started = events
        .iter()
        .find(|e| e["type"] == "RolloutStarted")
        .unwrap_or_else(|| panic!("{audit}"));
    assert_eq!(started["registry_version"], 2);
    assert_eq!(started["rollout"]["share"], "50%");
    let abort = events
        .iter()
        .find(|e| e["type"] == "RolloutAborted")
        .unwrap();
    assert_eq!(abort["actor"], "rollout-judge");
    let figures = &abort["rollout"]["figures"];
    assert!(
        figures["candidate"]["requests"].as_u64().unwrap() >= 12,
        "{abort}"
    );
    assert!(
        figures["candidate"]["upstream_errors"].as_u64().unwrap() > 0,
        "{abort}"
    );
    assert_eq!(figures["stable"]["upstream_errors"], 0, "{abort}");
    // And `aliases history` shows them.
    let out = cli(&cluster, &["aliases", "history"]).await;
    assert!(
        text(&out).contains("rollout of version 2 started beside stable 1: 50%")
            && text(&out).contains("rollout of version 2 aborted by judge: candidate"),
        "{}",
        text(&out)
    );
    // The number is never reused: the next push is version 3.
    assert_eq!(cluster.push(HEALTHY).await, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_healthy_candidate_is_promoted_to_every_worker() {
    let cluster = Cluster::start_with(4, &FAST_BEATS).await;
    four_workers_beating(&cluster).await;
    let r = cluster
        .control_plane
        .send(
            client()
                .post(
                    cluster
                        .control_plane
                        .url("/admin/v1/registry?canary=2&auto=true&soak=2s&min_requests=8"),
                )
                .body(HEALTHY),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.json["version"], 2);
    assert_eq!(r.json["rollout"]["share"], "2 worker(s)");
    until_served(&cluster, "two workers on each version", split_in_half).await;
    // A worker that joins during the rollout takes its cohort by the same rule: it serves the
    // candidate exactly when the control plane counts it in the candidate cohort.
    let mut cluster = cluster;
    cluster.add_worker(4, &FAST_BEATS);
    let late = cluster.workers.last().unwrap();
    assert!(
        eventually_async(Duration::from_secs(10), || async {
            late.get("/ready").await.status == 200
        })
        .await
    );
    let in_candidate = |status: &Value| {
        status["active"]["cohorts"]["candidate"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["worker_id"] == "w4")
    };
    assert!(
        eventually_async(Duration::from_secs(10), || async {
            let status = rollout(&cluster).await;
            let served = versions_served(&cluster).await[4];
            served == if in_candidate(&status) { 2 } else { 1 }
                && status["active"]["cohorts"]["candidate"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .chain(status["active"]["cohorts"]["stable"].as_array().unwrap())
                    .any(|m| m["worker_id"] == "w4")
        })
        .await,
        "{} {:?}",
        rollout(&cluster).await,
        versions_served(&cluster).await
    );
    let promoted = traffic_until(&cluster, Duration::from_secs(40), || async {
        rollout(&cluster).await["last"]["outcome"] == "promoted"
    })
    .await;
    let status = rollout(&cluster).await;
    assert!(promoted, "{status}");
    assert_eq!(status["last"]["decided_by"], "judge");
    assert_eq!(cluster.current_version().await, 2);
    let took = cluster.converge(2).await;
    eprintln!("promotion to the last of 5 workers: {took:?} after the decision was read");
    assert_eq!(versions_served(&cluster).await, [2, 2, 2, 2, 2]);
    let versions = cluster
        .control_plane
        .get("/admin/v1/registry/versions")
        .await
        .json;
    assert_eq!(versions["versions"][1]["source"], "rollout", "{versions}");
    assert_eq!(
        versions["versions"][1]["rollout"]["outcome"], "promoted",
        "{versions}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rollout_survives_a_killed_control_plane_and_a_frozen_redis() {
    let mut cluster = Cluster::start_with(4, &[("MANA_LLM_HEARTBEAT_INTERVAL", "0.5")]).await;
    four_workers_beating(&cluster).await;
    let file = temp_file("healthy.yaml", HEALTHY);
    let out = cli(
        &cluster,
        &["aliases", "push", file.to_str().unwrap(), "--canary", "50%"],
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(text(&out).contains("judge: manual"), "{}", text(&out));
    until_served(&cluster, "two workers on each version", split_in_half).await;
    let before = versions_served(&cluster).await;
    // The fleet view shows each worker's cohort and the version it should serve (once their
    // next heartbeats report the versions they switched to).
    assert!(
        eventually_async(Duration::from_secs(10), || async {
            let view = cluster.control_plane.get("/admin/v1/fleet").await.json;
            view["workers"]
                .as_array()
                .is_some_and(|ws| ws.len() == 4 && ws.iter().all(|w| w["lagging"] == false))
        })
        .await
    );
    let view = cluster.control_plane.get("/admin/v1/fleet").await.json;
    assert_eq!(view["rollout"]["candidate_version"], 2, "{view}");
    for (i, w) in view["workers"].as_array().unwrap().iter().enumerate() {
        let expected = if before[i] == 2 {
            "candidate"
        } else {
            "stable"
        };
        assert_eq!(w["cohort"], expected, "{view}");
        assert_eq!(w["expected_version"], before[i], "{view}");
        assert_eq!(w["lagging"], false, "{view}");
    }

    // Killed mid-rollout: the workers keep what they serve; the restarted control plane finds
    // the rollout in its log, with the same cohorts.
    cluster.kill_and_restart_control_plane();
    assert_eq!(versions_served(&cluster).await, before);
    let status = rollout(&cluster).await;
    assert_eq!(status["active"]["candidate_version"], 2, "{status}");
    assert!(
        eventually_async(Duration::from_secs(10), || async {
            rollout(&cluster).await["active"]["cohorts"]["candidate"]
                .as_array()
                .is_some_and(|c| c.len() == 2)
        })
        .await
    );
    // A push is still refused (exit 5 from the CLI, naming the rollout).
    let out = cli(&cluster, &["aliases", "push", file.to_str().unwrap()]).await;
    assert_eq!(out.status.code(), Some(5), "{}", text(&out));
    assert!(
        text(&out).contains("rollout of version 2 is in progress"),
        "{}",
        text(&out)
    );

    // Redis frozen: the rollout pauses and says so; the workers keep their versions.
    cluster.redis.signal("STOP");
    let paused = eventually_async(Duration::from_secs(20), || async {
        rollout(&cluster).await["active"]["paused"].is_string()
    })
    .await;
    let during = versions_served(&cluster).await;
    let status = rollout(&cluster).await;
    cluster.redis.signal("CONT");
    assert!(paused, "{status}");
    assert!(
        status["active"]["paused"]
            .as_str()
            .unwrap()
            .contains("Redis"),
        "{status}"
    );
    assert_eq!(during, before, "workers keep serving what they had");
    assert!(
        eventually_async(Duration::from_secs(20), || async {
            rollout(&cluster).await["active"]["paused"].is_null()
        })
        .await,
        "the rollout resumes when Redis is back"
    );

    // Aborted by hand: every worker back on stable, recorded with the admin's reason.
    let out = cli(
        &cluster,
        &["aliases", "abort", "--reason", "changed my mind"],
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        text(&out).contains("version 2 aborted by admin (stable was 1): changed my mind"),
        "{}",
        text(&out)
    );
    until_served(&cluster, "every worker back on stable", |v| {
        v == [1, 1, 1, 1]
    })
    .await;
    let out = cli(&cluster, &["aliases", "abort"]).await;
    assert_eq!(out.status.code(), Some(5), "{}", text(&out));
    assert!(
        text(&out).contains("no rollout is in progress"),
        "{}",
        text(&out)
    );
    let r = cluster
        .control_plane
        .send(
            client()
                .post(cluster.control_plane.url("/admin/v1/rollout/promote"))
                .json(&json!({})),
        )
        .await;
    r.assert_error(409, "no_rollout");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_alone_rolls_out_to_itself_through_the_in_process_bus() {
    let mock = mana_llm_mock::MockProvider::start().await;
    let gw = Gateway::builder()
        .mock(&mock)
        .aliases("aliases:\n  mana/echo: {chain: [echo/v1]}\ndefault: mana/echo\n")
        .env("MANA_LLM_HEARTBEAT_INTERVAL", "0.2")
        .start();
    assert!(
        eventually_async(Duration::from_secs(10), || async {
            gw.get("/admin/v1/fleet").await.json["live"] == 1
        })
        .await,
        "{}",
        gw.get("/admin/v1/fleet").await.text
    );
    let version = || async { gw.get("/v1/aliases").await.json["version"].clone() };
    let start = |yaml: &'static str| {
        gw.send(
            client()
                .post(gw.url("/admin/v1/registry?canary=100%25"))
                .body(yaml),
        )
    };
    let r = start(HEALTHY).await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert!(eventually_async(Duration::from_secs(5), || async { version().await == 2 }).await);
    let r = gw
        .send(client().post(gw.url("/admin/v1/rollout/abort")))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(eventually_async(Duration::from_secs(5), || async { version().await == 1 }).await);

    let r = start("aliases:\n  mana/echo: {chain: [echo/v3]}\ndefault: mana/echo\n").await;
    assert_eq!(r.json["version"], 3, "{}", r.text);
    assert!(eventually_async(Duration::from_secs(5), || async { version().await == 3 }).await);
    let r = gw
        .send(client().post(gw.url("/admin/v1/rollout/promote")))
        .await;
    assert_eq!(r.json["version"], 3, "{}", r.text);
    let r = gw
        .post("/v1/chat/completions", chat("mana/echo", "hi"))
        .await;
    assert_eq!(r.header("x-mana-llm-registry-version"), Some("3"));
    assert_eq!(r.json["model"], "echo/v3");
    assert_eq!(gw.get("/admin/v1/registry").await.json["version"], 3);
}
