//! The admin API of the embedded control plane: versions pushed, inspected, diffed, rolled
//! back, audited — and reaching the worker in the same process.

use std::time::Duration;

use serde_json::{json, Value};

use crate::support::*;

const V1: &str = "aliases:\n  mana/a: {description: first, chain: [echo/one]}\ndefault: mana/a\n";
const V2: &str = "aliases:\n  mana/a: {description: first, chain: [echo/two, echo/one]}\n  mana/b: {chain: [echo/b]}\ndefault: mana/a\n";
const TOKEN: &str = "admin-SECRET-token-42";

fn gateway() -> Gateway {
    Gateway::builder()
        .aliases(V1)
        .env("MANA_LLM_ADMIN_TOKEN", TOKEN)
        .start()
}

fn admin(gw: &Gateway, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
    client()
        .request(method, gw.url(&format!("/admin/v1{path}")))
        .bearer_auth(TOKEN)
}

async fn push(gw: &Gateway, yaml: &str, expected: Option<u64>) -> Reply {
    let mut request = admin(gw, reqwest::Method::POST, "/registry")
        .header("content-type", "application/yaml")
        .body(yaml.to_owned());
    if let Some(v) = expected {
        request = request.header("if-match", v.to_string());
    }
    gw.send(request).await
}

async fn audit(gw: &Gateway) -> Vec<Value> {
    gw.send(admin(gw, reqwest::Method::GET, "/audit?limit=500"))
        .await
        .json["events"]
        .as_array()
        .unwrap()
        .clone()
}

#[tokio::test]
async fn the_token_is_required_and_never_echoed() {
    let gw = gateway();
    let none = gw.send(client().get(gw.url("/admin/v1/registry"))).await;
    assert_eq!(none.status, 401);
    assert_eq!(none.json["error"]["code"], "unauthorized");
    let wrong = gw
        .send(
            client()
                .get(gw.url("/admin/v1/registry"))
                .bearer_auth("admin-SECRET-token-4"),
        )
        .await;
    assert_eq!(wrong.status, 401);
    let ok = gw.send(admin(&gw, reqwest::Method::GET, "/registry")).await;
    assert_eq!(ok.status, 200);
    assert_eq!(ok.json["version"], 1);
    assert_eq!(ok.json["source"], "seed");
    for text in [&none.text, &wrong.text, &ok.text, &gw.logs_settled().await] {
        assert!(!text.contains(TOKEN), "the admin token leaked");
    }
}

#[tokio::test]
async fn push_publishes_a_version_the_worker_serves() {
    let gw = gateway();
    let r = push(&gw, V2, Some(1)).await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.json["version"], 2);
    assert_eq!(r.json["changed"], true);
    assert!(
        eventually_async(Duration::from_secs(5), || async {
            gw.get("/v1/aliases").await.json["version"] == 2
        })
        .await
    );
    let answer = gw.post("/v1/chat/completions", chat("mana/b", "hi")).await;
    assert_eq!(answer.json["model"], "echo/b");
    assert_eq!(answer.header("x-mana-llm-registry-version"), Some("2"));

    // The same content again is a no-op: 200, no new version, no new event.
    let events = audit(&gw).await.len();
    let again = push(&gw, V2, None).await;
    assert_eq!(again.status, 200);
    assert_eq!(again.json["changed"], false);
    assert_eq!(again.json["version"], 2);
    assert_eq!(audit(&gw).await.len(), events);

    // JSON bodies work too, with expected_version inside.
    let doc = json!({"expected_version": 2, "aliases": {"mana/a": {"chain": ["echo/json"]}}});
    let r = gw
        .send(admin(&gw, reqwest::Method::POST, "/registry").json(&doc))
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.json["version"], 3);
}

#[tokio::test]
async fn an_invalid_document_is_400_with_every_error_and_no_event() {
    let gw = gateway();
    let before = audit(&gw).await.len();
    let r = push(
        &gw,
        "aliases:\n  fast: {chain: [echo/x]}\n  mana/x: {chain: [nope]}\n  mana/y: {chain: []}\n",
        None,
    )
    .await;
    assert_eq!(r.status, 400, "{}", r.text);
    assert_eq!(r.json["error"]["code"], "invalid_registry");
    let errors = r.json["error"]["errors"].as_array().unwrap();
    assert!(errors.len() >= 3, "every error listed: {errors:?}");
    assert_eq!(
        audit(&gw).await.len(),
        before,
        "a rejected push leaves no event"
    );
    assert_eq!(
        push(&gw, V2, Some(7)).await.status,
        409,
        "a stale If-Match conflicts"
    );
}

#[tokio::test]
async fn history_diff_and_rollback() {
    let gw = gateway();
    push(&gw, V2, None).await;
    let versions = gw
        .send(admin(&gw, reqwest::Method::GET, "/registry/versions"))
        .await;
    let list = versions.json["versions"].as_array().unwrap();
    assert_eq!(list.len(), 2);
    assert_eq!(list[1]["version"], 2);
    assert_eq!(list[1]["source"], "push");
    assert_eq!(list[1]["alias_count"], 2);

    let diff = gw
        .send(admin(
            &gw,
            reqwest::Method::GET,
            "/registry/diff?from=1&to=2",
        ))
        .await;
    assert_eq!(diff.json["added"], json!(["mana/b"]));
    assert_eq!(diff.json["removed"], json!([]));
    assert_eq!(diff.json["changed"][0]["name"], "mana/a");
    assert_eq!(diff.json["changed"][0]["from_chain"], json!(["echo/one"]));
    assert_eq!(
        diff.json["changed"][0]["to_chain"],
        json!(["echo/two", "echo/one"])
    );

    let rollback = gw
        .send(
            admin(&gw, reqwest::Method::POST, "/registry/rollback").json(&json!({"to_version": 1})),
        )
        .await;
    assert_eq!(rollback.status, 201, "{}", rollback.text);
    assert_eq!(rollback.json["version"], 3);
    let v1 = gw
        .send(admin(&gw, reqwest::Method::GET, "/registry/versions/1"))
        .await;
    let v3 = gw
        .send(admin(&gw, reqwest::Method::GET, "/registry/versions/3"))
        .await;
    assert_eq!(
        v3.json["hash"], v1.json["hash"],
        "a rollback is a new version with the old content"
    );
    assert_eq!(v3.json["source"], "rollback");
    assert_eq!(v3.json["rolled_back_to"], 1);
    assert!(
        eventually_async(Duration::from_secs(5), || async {
            gw.get("/v1/aliases").await.json["version"] == 3
        })
        .await
    );
    assert_eq!(
        gw.post("/v1/chat/completions", chat("mana/a", "x"))
            .await
            .json["model"],
        "echo/one"
    );

    let events = audit(&gw).await;
    let kinds: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        [
            "RegistryVersionPublished",
            "RegistryVersionPublished",
            "RegistryRolledBack"
        ]
    );
    assert_eq!(events[2]["to_version"], 1);
    assert_eq!(
        gw.send(admin(&gw, reqwest::Method::GET, "/registry/versions/99"))
            .await
            .status,
        404
    );
}

#[tokio::test]
async fn fifty_racing_pushes_one_wins_the_rest_conflict() {
    let gw = gateway();
    let mut tasks = Vec::new();
    for i in 0..50 {
        let request = admin(&gw, reqwest::Method::POST, "/registry")
            .header("if-match", "1")
            .body(format!("aliases:\n  mana/a: {{chain: [echo/racer-{i}]}}\n"));
        tasks.push(tokio::spawn(async move {
            request.send().await.unwrap().status().as_u16()
        }));
    }
    let mut statuses = Vec::new();
    for t in tasks {
        statuses.push(t.await.unwrap());
    }
    assert_eq!(
        statuses.iter().filter(|s| **s == 201).count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 409).count(),
        49,
        "{statuses:?}"
    );
    let sequences: Vec<u64> = audit(&gw)
        .await
        .iter()
        .map(|e| e["sequence"].as_u64().unwrap())
        .collect();
    assert_eq!(sequences, [1, 2], "no gap and no duplicate");
}

#[tokio::test]
async fn reload_and_sighup_record_every_outcome() {
    let path = temp_file("aliases.yaml", V1);
    let gw = Gateway::builder()
        .env("MANA_LLM_ALIASES", path.to_string_lossy())
        .env("MANA_LLM_ADMIN_TOKEN", TOKEN)
        .start();
    std::fs::write(&path, V2).unwrap();
    let r = gw
        .send(admin(&gw, reqwest::Method::POST, "/registry/reload"))
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    std::fs::write(&path, "aliases: {}\n").unwrap();
    let rejected = gw
        .send(admin(&gw, reqwest::Method::POST, "/registry/reload"))
        .await;
    assert_eq!(rejected.status, 400);
    let events = audit(&gw).await;
    let last = events.last().unwrap();
    assert_eq!(last["type"], "RegistryReloadRejected");
    assert!(last["errors"][0].as_str().unwrap().contains("empty"));
    assert_eq!(
        gw.send(admin(&gw, reqwest::Method::GET, "/registry"))
            .await
            .json["version"],
        2
    );
}

#[tokio::test]
async fn without_a_token_only_loopback_is_answered() {
    let gw = Gateway::builder().aliases(V1).start();
    let r = gw.send(client().get(gw.url("/admin/v1/registry"))).await;
    assert_eq!(r.status, 200, "loopback is allowed: {}", r.text);
    assert!(
        gw.logs_settled().await.contains("loopback clients only"),
        "the start-up log says so"
    );
}

#[tokio::test]
async fn without_a_token_a_proxied_request_is_refused() {
    let gw = Gateway::builder().aliases(V1).start();
    // What nginx in front of `serve` on the same host sends: the peer is 127.0.0.1.
    let proxied = client()
        .get(gw.url("/admin/v1/registry"))
        .header("x-forwarded-for", "203.0.113.9")
        .header("x-real-ip", "203.0.113.9");
    let r = gw.send(proxied).await;
    r.assert_error(403, "proxied_without_token");
    assert!(r.text.contains("MANA_LLM_ADMIN_TOKEN"), "{}", r.text);
    // The same push without the proxy's headers is a local one and goes through.
    let local = gw.send(client().get(gw.url("/admin/v1/registry"))).await;
    assert_eq!(local.status, 200, "{}", local.text);
}

#[tokio::test]
async fn serve_beyond_loopback_without_a_token_turns_the_admin_api_off() {
    let gw = Gateway::builder()
        .aliases(V1)
        .env("MANA_LLM_HOST", "0.0.0.0")
        .start();
    // Reached over loopback, which would pass the loopback check: the routes are not there.
    let local = gw.url.replace("0.0.0.0", "127.0.0.1");
    let admin = gw
        .send(client().get(format!("{local}/admin/v1/registry")))
        .await;
    admin.assert_error(403, "admin_disabled");
    assert!(
        admin.text.contains("MANA_LLM_ADMIN_TOKEN"),
        "{}",
        admin.text
    );
    let push = gw
        .send(client().post(format!("{local}/admin/v1/registry")).body(V2))
        .await;
    push.assert_error(403, "admin_disabled");
    // The data plane serves as usual, and the start-up log says why the admin API is off.
    let chat = gw
        .send(
            client()
                .post(format!("{local}/v1/chat/completions"))
                .json(&chat("mana/a", "hi")),
        )
        .await;
    assert_eq!(chat.status, 200, "{}", chat.text);
    assert_eq!(chat.json["model"], "echo/one");
    assert!(
        gw.logs_settled().await.contains("admin API OFF"),
        "the start-up log says so:\n{}",
        gw.logs()
    );
}

#[tokio::test]
async fn serve_beyond_loopback_with_a_token_keeps_the_admin_api() {
    let gw = Gateway::builder()
        .aliases(V1)
        .env("MANA_LLM_HOST", "0.0.0.0")
        .env("MANA_LLM_ADMIN_TOKEN", TOKEN)
        .start();
    let local = gw.url.replace("0.0.0.0", "127.0.0.1");
    let r = gw
        .send(
            client()
                .get(format!("{local}/admin/v1/registry"))
                .bearer_auth(TOKEN),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
}
