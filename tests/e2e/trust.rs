//! Trust boundaries, tried as an attacker would: a registry cannot send a variable the
//! operator did not allow to a host it names, state planted in Redis is refused and repaired,
//! and expensive documents are refused before they cost anything.
//!
//! A canary listener plays the attacker's host: every request it receives is recorded, so
//! "no secret arrived" is checked against what actually crossed the wire, and a positive
//! control (an allowed variable) proves the canary would have seen one.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mana_llm_shared::bus::PublishedVersion;
use mana_llm_shared::fleet_key::FleetKey;
use mana_llm_shared::Registry;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::fleet::Cluster;
use crate::support::*;

const TOKEN: &str = "admin-canary-token-77";
const V1: &str = "aliases:\n  mana/a: {chain: [echo/one]}\ndefault: mana/a\n";

/// Values no registry may make the gateway send anywhere.
const FORBIDDEN: [(&str, &str); 5] = [
    ("AWS_SECRET_ACCESS_KEY", "aws-canary-secret-1"),
    ("OPENAI_API_KEY", "sk-openai-canary-2"),
    ("HOME", "/home/canary-home-3"),
    ("MANA_LLM_FLEET_KEY", "fleet-canary-key-000004"),
    ("MANA_LLM_ADMIN_TOKEN", TOKEN),
];
const ALLOWED: (&str, &str) = ("CANARY_API_KEY", "canary-allowed-key-5");

/// A listener that records the head of every HTTP request it receives and answers 500.
struct Canary {
    url: String,
    seen: Arc<Mutex<Vec<String>>>,
}

impl Canary {
    async fn start() -> Canary {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/v1", listener.local_addr().unwrap());
        let seen = Arc::new(Mutex::new(Vec::new()));
        let sink = seen.clone();
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let sink = sink.clone();
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 64 * 1024];
                    let mut len = 0;
                    while len < buf.len() {
                        match socket.read(&mut buf[len..]).await {
                            Ok(0) | Err(_) => break,
                            Ok(n) => len += n,
                        }
                        if buf[..len].windows(4).any(|w| w == b"\r\n\r\n") {
                            break;
                        }
                    }
                    sink.lock()
                        .unwrap()
                        .push(String::from_utf8_lossy(&buf[..len]).into_owned());
                    let _ = socket
                        .write_all(b"HTTP/1.1 500 Internal Server Error\r\ncontent-type: application/json\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{}")
                        .await;
                });
            }
        });
        Canary { url, seen }
    }

    fn requests(&self) -> Vec<String> {
        self.seen.lock().unwrap().clone()
    }

    fn assert_never_received(&self, values: &[&str]) {
        for request in self.requests() {
            for value in values {
                assert!(
                    !request.contains(value),
                    "the canary received {value:?}:\n{request}"
                );
            }
        }
    }
}

fn declaring(canary: &Canary, env: &str) -> String {
    format!(
        "aliases:\n  mana/a: {{chain: [leak/m]}}\ndefault: mana/a\nproviders:\n  leak: {{base_url: '{}', api_key_env: {env}}}\n",
        canary.url
    )
}

fn admin_push(gw: &Gateway, body: &str, content_type: &str) -> reqwest::RequestBuilder {
    client()
        .post(gw.url("/admin/v1/registry"))
        .bearer_auth(TOKEN)
        .header("content-type", content_type)
        .body(body.to_owned())
}

#[tokio::test]
async fn a_pushed_registry_cannot_send_a_forbidden_variable_to_any_host() {
    let canary = Canary::start().await;
    let mut builder = Gateway::builder()
        .aliases(V1)
        .env("MANA_LLM_PROBE", "on")
        .env("MANA_LLM_PROBE_INTERVAL", "0.1")
        .env(ALLOWED.0, ALLOWED.1);
    for (k, v) in FORBIDDEN {
        builder = builder.env(k, v);
    }
    let gw = builder.start();

    for (env, _) in FORBIDDEN {
        let r = gw
            .send(admin_push(
                &gw,
                &declaring(&canary, env),
                "application/yaml",
            ))
            .await;
        r.assert_error(400, "invalid_registry");
        assert!(
            r.json["error"]["message"]
                .as_str()
                .unwrap()
                .contains(&format!(
                    "api_key_env '{env}' is not an allowed key variable"
                )),
            "{}",
            r.text
        );
    }
    // The same provider with an allowed variable is taken, and its key does arrive: the
    // canary would have seen any of the forbidden ones.
    let r = gw
        .send(admin_push(
            &gw,
            &declaring(&canary, ALLOWED.0),
            "application/yaml",
        ))
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    gw.post("/v1/chat/completions", chat("leak/m", "hi")).await;
    assert!(
        eventually(Duration::from_secs(10), || canary
            .requests()
            .iter()
            .any(|r| r.contains(&format!("Bearer {}", ALLOWED.1))))
        .await,
        "the allowed key reached its declared host"
    );
    let values: Vec<&str> = FORBIDDEN.iter().map(|(_, v)| *v).collect();
    canary.assert_never_received(&values);
}

#[tokio::test]
async fn documents_that_bend_the_rules_are_refused_with_the_reason() {
    let gw = Gateway::builder()
        .aliases(V1)
        .env("MANA_LLM_ADMIN_TOKEN", TOKEN)
        .start();
    let cases = [
        (
            "aliases:\n  mana/a: {chain: [x/m]}\nproviders:\n  x: {base_url: 'ftp://h/v1'}\n",
            "provider 'x': base_url must be an http(s) URL",
        ),
        (
            "aliases:\n  mana/a: {chain: [x/m]}\nproviders:\n  x: {base_url: 'http://u:p@h/v1'}\n",
            "must not carry credentials",
        ),
        (
            "aliases:\n  mana/a: {chain: [groq/m]}\nproviders:\n  groq: {base_url: 'http://h/v1'}\n",
            "provider 'groq': the name of a built-in provider cannot be redeclared",
        ),
        (
            "aliases:\n  mana/a: {chain: [echo/m]}\nproviderz: {}\n",
            "the document has an unknown key 'providerz'",
        ),
    ];
    for (doc, fragment) in cases {
        let r = gw.send(admin_push(&gw, doc, "application/yaml")).await;
        r.assert_error(400, "invalid_registry");
        assert!(r.text.contains(fragment), "{fragment}: {}", r.text);
    }
    // JSON is read as JSON: a YAML-only form sent as JSON is refused as JSON.
    let r = gw
        .send(admin_push(&gw, "aliases: {}", "application/json"))
        .await;
    r.assert_error(400, "invalid_registry");
    assert!(r.text.contains("as JSON"), "{}", r.text);
    let json = r#"{"aliases": {"mana/j": {"chain": ["echo/j"]}}, "default": "mana/j"}"#;
    let r = gw.send(admin_push(&gw, json, "application/json")).await;
    assert_eq!(r.status, 201, "{}", r.text);
}

#[tokio::test]
async fn expensive_documents_are_refused_before_they_cost_anything() {
    let gw = Gateway::builder()
        .aliases(V1)
        .env("MANA_LLM_ADMIN_TOKEN", TOKEN)
        .start();
    let mut bomb = String::from("aliases:\n  mana/a: {chain: [echo/m]}\nb0: &b0 {k: v, l: w}\n");
    for i in 1..40 {
        bomb.push_str(&format!(
            "b{i}: &b{i} {{x: *b{p}, y: *b{p}, <<: *b{p}}}\n",
            p = i - 1
        ));
    }
    let nested = format!(
        "aliases: {}{}",
        "[".repeat(100 * 1024),
        "]".repeat(100 * 1024)
    );
    let huge = format!("# {}\n{V1}", "x".repeat(1024 * 1024 + 1));
    for (doc, status, fragment) in [
        (bomb.as_str(), 400, "YAML aliases are expanded in full"),
        (nested.as_str(), 400, "recursion limit exceeded"),
        (huge.as_str(), 413, "the limit is 1048576 bytes"),
    ] {
        let start = Instant::now();
        let r = gw.send(admin_push(&gw, doc, "application/yaml")).await;
        let took = start.elapsed();
        eprintln!("{fragment}: {status} in {took:?}");
        assert_eq!(r.status, status, "{}", r.text);
        assert!(r.text.contains(fragment), "{fragment}: {}", r.text);
        // A hang guard, not a benchmark: before the bounds this took seconds to minutes.
        assert!(took < Duration::from_secs(5), "{fragment} took {took:?}");
    }
    // Other admin requests were never blocked and the registry is unchanged.
    let current = gw
        .send(
            client()
                .get(gw.url("/admin/v1/registry"))
                .bearer_auth(TOKEN),
        )
        .await;
    assert_eq!(current.json["version"], 1);
}

/// Everything a worker says about a refused version: the counter and the ERROR line.
async fn refusals(worker: &Gateway, reason: &str) -> f64 {
    let text = worker.get("/metrics").await.text;
    metric(
        &text,
        "mana_llm_registry_rejected_total",
        &[&format!("reason=\"{reason}\"")],
    )
    .unwrap_or(0.0)
}

async fn redis_set_and_publish(redis: &RedisServer, value: &str, version: u64) {
    let client = redis::Client::open(redis.url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let _: () = redis::cmd("SET")
        .arg("mana-llm:registry:current")
        .arg(value)
        .query_async(&mut conn)
        .await
        .unwrap();
    let _: i64 = redis::cmd("PUBLISH")
        .arg("mana-llm:registry:versions")
        .arg(format!("{{\"version\":{version},\"hash\":\"x\"}}"))
        .query_async(&mut conn)
        .await
        .unwrap();
}

async fn current_in_redis(redis: &RedisServer) -> Option<PublishedVersion> {
    let client = redis::Client::open(redis.url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let raw: Option<String> = redis::cmd("GET")
        .arg("mana-llm:registry:current")
        .query_async(&mut conn)
        .await
        .unwrap();
    raw.and_then(|r| serde_json::from_str(&r).ok())
}

/// A version as an attacker with write access to Redis would plant it: valid, with a correct
/// content hash, declaring the canary with an allowed variable, at the highest version there is.
fn planted(canary: &Canary, version: u64) -> PublishedVersion {
    let registry = Registry::parse(
        &declaring(canary, ALLOWED.0),
        "planted",
        mana_llm_shared::RegistryVersion(version),
    )
    .unwrap();
    PublishedVersion::of(&registry)
}

#[tokio::test]
async fn versions_planted_in_redis_are_refused_and_the_control_plane_repairs_them() {
    let canary = Canary::start().await;
    let cluster = Cluster::start_with(
        2,
        &[
            ("MANA_LLM_PROBE", "on"),
            ("MANA_LLM_PROBE_INTERVAL", "0.1"),
            (ALLOWED.0, ALLOWED.1),
        ],
    )
    .await;
    cluster.converge(1).await;
    let wrong_key = FleetKey::from_setting(Some("not-the-fleet-key-000"))
        .unwrap()
        .unwrap();
    let forged = [
        ("unsigned", planted(&canary, u64::MAX)),
        (
            "bad_signature",
            planted(&canary, u64::MAX).signed(&wrong_key),
        ),
    ];
    for (reason, version) in forged {
        redis_set_and_publish(
            &cluster.redis,
            &serde_json::to_string(&version).unwrap(),
            u64::MAX,
        )
        .await;
        for w in &cluster.workers {
            assert!(
                eventually_async(Duration::from_secs(10), || async {
                    refusals(w, reason).await >= 1.0
                })
                .await,
                "worker counted a {reason} refusal"
            );
            assert!(w
                .logs_settled()
                .await
                .contains("published registry version refused"));
            assert_eq!(w.get("/v1/aliases").await.json["version"], 1);
        }
        // The control plane puts its own current version back.
        assert!(
            eventually_async(Duration::from_secs(15), || async {
                current_in_redis(&cluster.redis)
                    .await
                    .is_some_and(|c| c.version.0 == 1 && c.signature.is_some())
            })
            .await,
            "the control plane repaired Redis after the {reason} version"
        );
    }
    let cp_metrics = cluster.control_plane.get("/metrics").await.text;
    assert!(
        metric(&cp_metrics, "mana_llm_registry_repairs_total", &[]).unwrap_or(0.0) >= 2.0,
        "{cp_metrics}"
    );
    // A pushed version still reaches every worker (nothing pinned the fleet).
    let version = cluster
        .push("aliases:\n  mana/echo: {chain: [echo/v2]}\n")
        .await;
    assert_eq!(version, 2);
    cluster.converge(2).await;
    // And no worker ever called the planted provider.
    assert!(
        canary.requests().is_empty(),
        "the planted provider was called: {:?}",
        canary.requests()
    );
}

#[tokio::test]
async fn a_signed_but_invalid_version_is_still_refused() {
    let cluster = Cluster::start(1).await;
    cluster.converge(1).await;
    // Signed with the real key (a stolen key, or a control plane with a bug): the worker still
    // applies the registry rules and checks the hash itself.
    let good = current_in_redis(&cluster.redis).await.unwrap().document;
    let mut doc: Value = serde_json::to_value(&good).unwrap();
    doc["aliases"]["mana/chain"]["chain"] = Value::Array(vec![]);
    let empty_chain: mana_llm_shared::RegistryDocument = serde_json::from_value(doc).unwrap();
    let cases = [
        // A valid document under a hash that is not its own.
        PublishedVersion::new(
            mana_llm_shared::RegistryVersion(5),
            "whatever".to_owned().into(),
            good,
        )
        .signed(&fleet_key()),
        // A document no parser would produce, under its true hash.
        PublishedVersion::new(
            mana_llm_shared::RegistryVersion(6),
            empty_chain.content_hash().into(),
            empty_chain,
        )
        .signed(&fleet_key()),
    ];
    let worker = &cluster.workers[0];
    for (i, version) in cases.iter().enumerate() {
        redis_set_and_publish(
            &cluster.redis,
            &serde_json::to_string(version).unwrap(),
            version.version.0,
        )
        .await;
        assert!(
            eventually_async(Duration::from_secs(10), || async {
                refusals(worker, "invalid").await >= (i + 1) as f64
            })
            .await,
            "case {i} refused as invalid"
        );
    }
    let logs = worker.logs_settled().await;
    assert!(logs.contains("chain must not be empty"), "{logs}");
    assert!(
        logs.contains("does not match the claimed whatever"),
        "{logs}"
    );
    assert_eq!(worker.get("/v1/aliases").await.json["version"], 1);
}

#[tokio::test]
async fn serve_will_not_serve_a_stored_version_the_policy_now_forbids() {
    let db = temp_dir().join("mana-llm.db");
    let doc = "aliases:\n  mana/a: {chain: [lm/m]}\ndefault: mana/a\nproviders:\n  lm: {base_url: 'http://127.0.0.1:9/v1', api_key_env: SHARED_TOKEN}\n";
    // Allowed while the operator allowed it ...
    let mut gw = Gateway::builder()
        .aliases(doc)
        .env("MANA_LLM_PROVIDER_KEY_ENVS", "SHARED_TOKEN")
        .start_with_db(&db);
    gw.signal("TERM");
    assert_eq!(gw.wait_exit(Duration::from_secs(10)), Some(0));
    // ... and refused once the setting is gone, with the reason, instead of sending it.
    let mut child = std::process::Command::new(BINARY)
        .env_clear()
        .env("PORT", "0")
        .env("MANA_LLM_DB", &db)
        .env("MANA_LLM_ALIASES", "/nonexistent/aliases.yaml")
        .env("MANA_LLM_PROBE", "off")
        .arg("serve")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Bounded: a regression that starts serving must fail here, not hang the suite.
    let deadline = Instant::now() + Duration::from_secs(20);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("serve started on a version the policy forbids");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let out = child.wait_with_output().unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("registry version 1 breaks the current rules")
            && stderr.contains("api_key_env 'SHARED_TOKEN' is not an allowed key variable"),
        "{stderr}"
    );
}
