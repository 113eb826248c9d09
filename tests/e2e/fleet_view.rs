//! The fleet as an object: every worker's heartbeat in the control plane's fleet view, a
//! version's reach, and `aliases push --wait` returning when every live worker serves it, or
//! naming the ones that do not.

use std::process::{Command, Output};
use std::time::Duration;

use serde_json::Value;

use crate::fleet::Cluster;
use crate::support::*;

const V2: &str = "aliases:\n  mana/echo: {chain: [echo/v2]}\ndefault: mana/echo\n";
const V3: &str = "aliases:\n  mana/echo: {chain: [echo/v3]}\ndefault: mana/echo\n";

async fn fleet(cluster: &Cluster) -> Value {
    let r = cluster.control_plane.get("/admin/v1/fleet").await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.json
}

fn ids(view: &Value) -> Vec<String> {
    view["workers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["worker_id"].as_str().unwrap().to_owned())
        .collect()
}

/// `mana-llm <args> --url <control plane>`, bounded: a hang fails the test instead of the suite.
pub(crate) async fn cli(cluster: &Cluster, args: &[&str]) -> Output {
    let mut cmd = Command::new(BINARY);
    cmd.args(args)
        .args(["--url", &cluster.control_plane.url])
        .env("NO_COLOR", "1");
    tokio::time::timeout(
        Duration::from_secs(30),
        tokio::task::spawn_blocking(move || cmd.output().unwrap()),
    )
    .await
    .expect("the CLI finished in time")
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fleet_view_lists_live_workers_and_forgets_dead_ones() {
    let mut cluster = Cluster::start_with(4, &[("MANA_LLM_HEARTBEAT_INTERVAL", "0.2")]).await;
    assert!(
        eventually_async(Duration::from_secs(10), || async {
            let view = fleet(&cluster).await;
            view["live"] == 4 && view["serving_current"] == 4
        })
        .await,
        "four workers beat, each serving version 1: {}",
        fleet(&cluster).await
    );
    let view = fleet(&cluster).await;
    assert_eq!(ids(&view), ["w0", "w1", "w2", "w3"]);
    assert_eq!(view["current_version"], 1);
    assert_eq!(view["serving_current"], 4);
    for w in view["workers"].as_array().unwrap() {
        assert_eq!(w["registry_version"], 1);
        assert_eq!(w["lagging"], false);
        assert!(
            w["listen"].as_str().unwrap().starts_with("127.0.0.1:"),
            "{w}"
        );
    }

    // Traffic shows up per registry version in the next beat.
    for _ in 0..3 {
        let r = cluster.workers[0]
            .post("/v1/chat/completions", chat("mana/echo", "counted"))
            .await;
        assert_eq!(r.status, 200, "{}", r.text);
    }
    assert!(
        eventually_async(Duration::from_secs(5), || async {
            fleet(&cluster).await["workers"][0]["windows"]["1"]["requests"] == 3
        })
        .await,
        "{}",
        fleet(&cluster).await
    );

    // Every worker reports its breakers; the view counts them per provider across the fleet.
    assert_eq!(
        fleet(&cluster).await["providers"]["ollama"]["healthy"],
        4,
        "{}",
        fleet(&cluster).await
    );
    assert!(
        eventually_async(Duration::from_secs(10), || async {
            let _ = cluster.workers[0]
                .post("/v1/chat/completions", chat("ollama/status-500", "trip"))
                .await;
            fleet(&cluster).await["providers"]["ollama"]["open"] == 4
        })
        .await,
        "a breaker opened on one worker is open for the whole fleet: {}",
        fleet(&cluster).await
    );
    assert_eq!(
        fleet(&cluster).await["workers"][1]["breakers"]["ollama"],
        "open"
    );

    // A worker that dies stops beating and disappears after its expiry.
    cluster.workers[2].signal("KILL");
    assert!(
        eventually_async(Duration::from_secs(10), || async {
            ids(&fleet(&cluster).await) == ["w0", "w1", "w3"]
        })
        .await,
        "{}",
        fleet(&cluster).await
    );
    let _ = cluster.workers[2].wait_exit(Duration::from_secs(5));

    // The control plane's own metrics count the fleet by version.
    let metrics = cluster.control_plane.get("/metrics").await.text;
    assert_eq!(
        metric(
            &metrics,
            "mana_llm_fleet_workers",
            &["registry_version=\"1\""]
        ),
        Some(3.0),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_wait_returns_when_every_live_worker_serves_it_or_names_who_does_not() {
    // Beats every second, kept for three: a frozen worker stays in the view long enough to be
    // named.
    let cluster = Cluster::start_with(4, &[("MANA_LLM_HEARTBEAT_INTERVAL", "1")]).await;
    assert!(
        eventually_async(Duration::from_secs(10), || async {
            let view = fleet(&cluster).await;
            view["live"] == 4 && view["serving_current"] == 4
        })
        .await
    );
    let file = temp_file("v2.yaml", V2);
    let out = cli(
        &cluster,
        &[
            "aliases",
            "push",
            file.to_str().unwrap(),
            "--wait",
            "--timeout",
            "15s",
        ],
    )
    .await;
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert_eq!(out.status.code(), Some(0), "{stdout}{stderr}");
    assert!(
        stdout.contains("served by all 4 live worker(s)"),
        "{stdout}"
    );
    for w in &cluster.workers {
        assert_eq!(w.get("/v1/aliases").await.json["version"], 2);
    }
    let rollout = cluster
        .control_plane
        .get("/admin/v1/registry/versions/2/rollout")
        .await;
    assert_eq!(rollout.json["complete"], true, "{}", rollout.text);
    assert_eq!(rollout.json["serving"], 4);

    // A frozen worker cannot take the next version: the wait names it and exits 8.
    let frozen = &cluster.workers[1];
    frozen.signal("STOP");
    let file = temp_file("v3.yaml", V3);
    let out = cli(
        &cluster,
        &[
            "aliases",
            "push",
            file.to_str().unwrap(),
            "--wait",
            "--timeout",
            "1s",
        ],
    )
    .await;
    frozen.signal("CONT");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(8), "{stderr}");
    assert!(
        stderr.contains("version 3 reached 3 of 4 live worker(s)")
            && stderr.contains("w1 (still on version 2)"),
        "{stderr}"
    );

    // `fleet status` shows the same fleet, in a table and as JSON.
    let out = cli(&cluster, &["fleet", "status", "--json"]).await;
    assert_eq!(out.status.code(), Some(0));
    let view: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(view["current_version"], 3);
    let out = cli(&cluster, &["fleet", "status"]).await;
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(table.starts_with("current version 3:"), "{table}");
    assert!(table.contains("WORKER") && table.contains("w0"), "{table}");
}
