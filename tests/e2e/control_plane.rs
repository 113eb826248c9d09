//! The standalone control plane: versions published to a real Redis in order, an outage
//! survived by the outbox, SIGHUP reloads, restarts that keep everything.

use std::process::Command;
use std::time::Duration;

use futures_util::StreamExt;
use serde_json::Value;

use crate::support::*;

const V1: &str = "aliases:\n  mana/a: {chain: [echo/one]}\n";

fn yaml(n: u32) -> String {
    format!("aliases:\n  mana/a: {{chain: [echo/v{n}]}}\n")
}

async fn push(cp: &Gateway, body: &str) -> Reply {
    cp.send(
        client()
            .post(cp.url("/admin/v1/registry"))
            .body(body.to_owned()),
    )
    .await
}

/// The version in Redis's `current` key, if any.
async fn current_in_redis(redis: &RedisServer) -> Option<u64> {
    let client = redis::Client::open(redis.url()).ok()?;
    let mut conn = client.get_multiplexed_async_connection().await.ok()?;
    let raw: Option<String> = redis::cmd("GET")
        .arg("mana-llm:registry:current")
        .query_async(&mut conn)
        .await
        .ok()?;
    serde_json::from_str::<Value>(&raw?).ok()?["version"].as_u64()
}

#[tokio::test]
async fn a_subscriber_receives_every_version_in_order() {
    let redis = RedisServer::start();
    let client = redis::Client::open(redis.url()).unwrap();
    let mut pubsub = client.get_async_pubsub().await.unwrap();
    pubsub
        .subscribe("mana-llm:registry:versions")
        .await
        .unwrap();
    let aliases = temp_file("aliases.yaml", V1);
    let cp = Gateway::control_plane()
        .env("REDIS_URL", redis.url())
        .env("MANA_LLM_ALIASES", aliases.to_string_lossy())
        .start();
    for n in 2..=4 {
        assert_eq!(push(&cp, &yaml(n)).await.status, 201);
    }
    let mut messages = pubsub.on_message();
    let mut versions = Vec::new();
    while versions.len() < 4 {
        let message = tokio::time::timeout(Duration::from_secs(10), messages.next())
            .await
            .expect("a version message")
            .unwrap();
        let payload: String = message.get_payload().unwrap();
        let announcement: Value = serde_json::from_str(&payload).unwrap();
        assert!(announcement["hash"].as_str().is_some_and(|h| h.len() == 64));
        versions.push(announcement["version"].as_u64().unwrap());
    }
    assert_eq!(versions, [1, 2, 3, 4]);
    assert_eq!(current_in_redis(&redis).await, Some(4));
}

#[tokio::test]
async fn versions_pushed_while_redis_is_down_are_published_when_it_returns() {
    let mut redis = RedisServer::start();
    let aliases = temp_file("aliases.yaml", V1);
    let cp = Gateway::control_plane()
        .env("REDIS_URL", redis.url())
        .env("MANA_LLM_ALIASES", aliases.to_string_lossy())
        .start();
    assert!(
        eventually_async(Duration::from_secs(10), || async {
            current_in_redis(&redis).await == Some(1)
        })
        .await
    );

    redis.stop();
    assert_eq!(
        push(&cp, &yaml(2)).await.status,
        201,
        "pushes succeed without Redis"
    );
    assert_eq!(push(&cp, &yaml(3)).await.status, 201);
    assert!(
        eventually_async(Duration::from_secs(10), || async {
            metric(
                &cp.get("/metrics").await.text,
                "mana_llm_control_plane_outbox_pending",
                &[],
            ) == Some(2.0)
        })
        .await
    );

    // Back, but locked until this test has subscribed, so it sees every version go out.
    redis.restart_locked("let-me-subscribe-first");
    let locked = format!("redis://:let-me-subscribe-first@127.0.0.1:{}", redis.port);
    let client = redis::Client::open(locked).unwrap();
    let mut pubsub = client.get_async_pubsub().await.unwrap();
    pubsub
        .subscribe("mana-llm:registry:versions")
        .await
        .unwrap();
    let mut admin = client.get_multiplexed_async_connection().await.unwrap();
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("requirepass")
        .arg("")
        .query_async(&mut admin)
        .await
        .unwrap();

    let mut messages = pubsub.on_message();
    let mut versions = Vec::new();
    while versions.len() < 2 {
        let message = tokio::time::timeout(Duration::from_secs(15), messages.next())
            .await
            .expect("the outbox publishes once Redis is back")
            .unwrap();
        let announcement: Value =
            serde_json::from_str(&message.get_payload::<String>().unwrap()).unwrap();
        versions.push(announcement["version"].as_u64().unwrap());
    }
    assert_eq!(
        versions,
        [2, 3],
        "the versions pushed during the outage, in order"
    );
    assert_eq!(current_in_redis(&redis).await, Some(3));
    assert!(
        eventually_async(Duration::from_secs(5), || async {
            metric(
                &cp.get("/metrics").await.text,
                "mana_llm_control_plane_outbox_pending",
                &[],
            ) == Some(0.0)
        })
        .await
    );
}

#[tokio::test]
async fn sighup_reloads_valid_files_and_records_invalid_ones() {
    let aliases = temp_file("aliases.yaml", V1);
    let cp = Gateway::control_plane()
        .env("MANA_LLM_ALIASES", aliases.to_string_lossy())
        .start();
    std::fs::write(&aliases, yaml(2)).unwrap();
    cp.signal("HUP");
    assert!(
        eventually_async(Duration::from_secs(5), || async {
            cp.get("/admin/v1/registry").await.json["version"] == 2
        })
        .await
    );

    std::fs::write(&aliases, "aliases:\n  mana/a: {chain: []}\n").unwrap();
    cp.signal("HUP");
    assert!(
        eventually_async(Duration::from_secs(5), || async {
            let events = cp.get("/admin/v1/audit").await.json["events"].clone();
            events
                .as_array()
                .and_then(|e| e.last())
                .is_some_and(|e| e["type"] == "RegistryReloadRejected")
        })
        .await
    );
    assert_eq!(
        cp.get("/admin/v1/registry").await.json["version"],
        2,
        "no new version"
    );
    let text = cp.get("/metrics").await.text;
    assert_eq!(
        metric(
            &text,
            "mana_llm_control_plane_reloads_total",
            &["result=\"rejected\""]
        ),
        Some(1.0)
    );
    assert_eq!(
        metric(
            &text,
            "mana_llm_control_plane_reloads_total",
            &["result=\"applied\""]
        ),
        Some(1.0)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_keeps_every_version_and_the_audit_log() {
    let db = temp_dir().join("cp.db");
    let aliases = temp_file("aliases.yaml", V1);
    let mut cp = Gateway::control_plane()
        .env("MANA_LLM_ALIASES", aliases.to_string_lossy())
        .start_with_db(&db);
    push(&cp, &yaml(2)).await;
    push(&cp, &yaml(3)).await;
    let audit_before = cp.get("/admin/v1/audit").await.json;
    cp.signal("TERM");
    assert_eq!(
        tokio::task::block_in_place(|| cp.wait_exit(Duration::from_secs(10))),
        Some(0)
    );

    let cp = Gateway::control_plane()
        .env("MANA_LLM_ALIASES", aliases.to_string_lossy())
        .start_with_db(&db);
    let versions = cp.get("/admin/v1/registry/versions").await.json["versions"].clone();
    assert_eq!(versions.as_array().unwrap().len(), 3);
    assert_eq!(cp.get("/admin/v1/registry").await.json["version"], 3);
    assert_eq!(cp.get("/admin/v1/audit").await.json, audit_before);
}

#[test]
fn without_a_token_it_refuses_to_listen_beyond_loopback() {
    // Bounded: a regression that starts listening must fail here, not hang the suite.
    let output = output_within(
        Command::new(BINARY)
            .args(["control-plane", "--listen", "0.0.0.0:0", "--db"])
            .arg(temp_dir().join("x.db"))
            .env_remove("MANA_LLM_ADMIN_TOKEN"),
        Duration::from_secs(20),
    );
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("MANA_LLM_ADMIN_TOKEN"), "{stderr}");
}

#[tokio::test]
async fn with_no_aliases_file_the_shipped_registry_seeds_and_ready_reports_it() {
    // The default relative path, in a directory that has no aliases.yaml.
    let cp = Gateway::control_plane()
        .env("MANA_LLM_ALIASES", "aliases.yaml")
        .current_dir(&temp_dir())
        .start();
    let current = cp.get("/admin/v1/registry").await;
    assert_eq!(current.status, 200, "{}", current.text);
    assert_eq!(current.json["version"], 1);
    let shipped = mana_llm_shared::Registry::parse(
        include_str!("../../aliases.yaml"),
        "shipped",
        mana_llm_shared::RegistryVersion(1),
    )
    .unwrap();
    assert_eq!(current.json["hash"], shipped.hash(), "{}", current.text);
    assert!(
        eventually(Duration::from_secs(5), || cp
            .logs()
            .contains("seeding the shipped registry"))
        .await,
        "{}",
        cp.logs()
    );
    let ready = cp.get("/ready").await;
    assert_eq!(ready.status, 200, "{}", ready.text);
    assert_eq!(ready.json["registry_version"], 1, "{}", ready.text);
}
