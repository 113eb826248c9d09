//! What happens around requests rather than in them: the client's request id, the drain
//! deadline, a worker's first version when Redis has none, two fleets on one Redis, and the
//! background probe of a running process.

use std::time::{Duration, Instant};

use mana_llm_mock::{MockProvider, Reply as MockReply, Route};
use mana_llm_shared::fleet_key::FLEET_KEY_ENV;
use serde_json::json;

use crate::support::*;

#[tokio::test]
async fn a_client_request_id_is_reused_when_it_is_an_id_and_replaced_otherwise() {
    let gw = Gateway::builder().start();
    let send = |id: String| {
        let request = client()
            .post(gw.url("/v1/chat/completions"))
            .header("x-request-id", id)
            .json(&chat("echo/id", "hi"));
        gw.send(request)
    };
    let kept = "trace-4f2a_01.b:7";
    let r = send(kept.to_owned()).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.header("x-request-id"), Some(kept));
    let logs = gw.logs_through(kept).await;
    assert!(logs.contains(&format!("request_id={kept}")), "{logs}");

    // Anything that could forge or break a log line, and anything too long, is not an id.
    let long = "a".repeat(129);
    for forged in [
        "x request_id=admin status=200",
        "evil\tstatus=200",
        "\"quoted\"",
        long.as_str(),
    ] {
        let r = send(forged.to_owned()).await;
        assert_eq!(r.status, 200, "{}", r.text);
        let id = r.header("x-request-id").unwrap().to_owned();
        assert_ne!(id, forged);
        assert_eq!(id.len(), 36, "a fresh uuid instead of {forged:?}: {id}");
        let logs = gw.logs_through(&id).await;
        assert!(
            !logs.contains(forged),
            "{forged:?} reached the log:\n{logs}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_drain_deadline_cuts_a_stream_that_outlasts_it() {
    let mock = MockProvider::start().await;
    let mut gw = Gateway::builder()
        .mock(&mock)
        .env("MANA_LLM_DRAIN_SECONDS", "1")
        .start();
    // Twenty pieces half a second apart: ten seconds, far past the one-second drain.
    let pieces: Vec<String> = (0..20).map(|i| format!("p{i} ")).collect();
    let pieces: Vec<&str> = pieces.iter().map(String::as_str).collect();
    mock.push(
        Route::OllamaChat,
        MockReply::text(&pieces).interval(Duration::from_millis(500)),
    );
    let mut body = chat("ollama/long", "talk");
    body["stream"] = json!(true);
    let mut response = client()
        .post(gw.url("/v1/chat/completions"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let mut text = String::new();
    while !text.contains("p0") {
        let piece = response.chunk().await.unwrap().expect("a first chunk");
        text.push_str(&String::from_utf8_lossy(&piece));
    }
    let signalled = Instant::now();
    gw.signal("TERM");
    let code = tokio::task::block_in_place(|| gw.wait_exit(Duration::from_secs(8)));
    let took = signalled.elapsed();
    assert_eq!(code, Some(0), "logs:\n{}", gw.logs());
    assert!(
        took < Duration::from_secs(5),
        "exited {took:?} after SIGTERM with a 1 s drain deadline"
    );
    // The client saw the stream end without its closing event.
    while let Ok(Some(piece)) = response.chunk().await {
        text.push_str(&String::from_utf8_lossy(&piece));
    }
    assert!(!text.contains("[DONE]"), "{text}");
    assert!(!text.contains("p19"), "{text}");
    assert!(gw.logs().contains("drain deadline passed"), "{}", gw.logs());
}

#[tokio::test]
async fn a_worker_boots_from_the_control_plane_when_redis_is_empty() {
    let redis = RedisServer::start();
    let mock = MockProvider::start().await;
    // A control plane that publishes nowhere: Redis stays empty.
    let control_plane = Gateway::control_plane()
        .aliases("aliases:\n  mana/boot: {chain: [echo/from-control-plane]}\n")
        .start();
    let worker = Gateway::worker(&redis.url())
        .mock(&mock)
        .env("MANA_LLM_CONTROL_PLANE_URL", control_plane.url.clone())
        .start();
    assert!(
        eventually_async(Duration::from_secs(10), || async {
            worker.get("/ready").await.status == 200
        })
        .await,
        "{}",
        worker.logs()
    );
    let r = worker
        .post("/v1/chat/completions", chat("mana/boot", "hi"))
        .await;
    assert_eq!(r.json["model"], "echo/from-control-plane", "{}", r.text);
    let mut conn = redis.conn().await;
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg("*registry*")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(keys.is_empty(), "the version came from Redis: {keys:?}");
}

#[tokio::test]
async fn two_fleets_on_one_redis_keep_their_prefixes_apart() {
    let redis = RedisServer::start();
    let mock = MockProvider::start().await;
    let fleet = |prefix: &str, echo: &str| {
        let control_plane = Gateway::control_plane()
            .env("REDIS_URL", redis.url())
            .env("MANA_LLM_REDIS_PREFIX", prefix)
            .env(FLEET_KEY_ENV, FLEET_KEY)
            .aliases(&format!(
                "aliases:\n  mana/chain: {{chain: [ollama/first, groq/second]}}\n  mana/echo: {{chain: [echo/{echo}]}}\n"
            ))
            .start();
        let worker = Gateway::worker(&redis.url())
            .mock(&mock)
            .env("MANA_LLM_REDIS_PREFIX", prefix)
            .env(FLEET_KEY_ENV, FLEET_KEY)
            .env("MANA_LLM_SYNC_INTERVAL", "600")
            .start();
        (control_plane, worker)
    };
    let (cp_a, worker_a) = fleet("fleet-a", "a1");
    let (cp_b, worker_b) = fleet("fleet-b", "b1");
    for (worker, model) in [(&worker_a, "echo/a1"), (&worker_b, "echo/b1")] {
        assert!(
            eventually_async(Duration::from_secs(10), || async {
                worker
                    .post("/v1/chat/completions", chat("mana/echo", "which"))
                    .await
                    .json["model"]
                    == model
            })
            .await,
            "each fleet serves its own registry"
        );
    }
    // A push to fleet A reaches A's worker only.
    let r = cp_a
        .send(
            client()
                .post(cp_a.url("/admin/v1/registry"))
                .body("aliases:\n  mana/chain: {chain: [ollama/first, groq/second]}\n  mana/echo: {chain: [echo/a2]}\n"),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert!(
        eventually_async(Duration::from_secs(10), || async {
            worker_a.get("/v1/aliases").await.json["version"] == 2
        })
        .await
    );
    // A breaker tripped in fleet A stays in fleet A.
    mock.set_default(Route::OllamaChat, MockReply::status(500));
    for _ in 0..2 {
        worker_a
            .post("/v1/chat/completions", chat("mana/chain", "x"))
            .await;
    }
    let open_in_a = worker_a.get("/v1/health").await;
    assert_eq!(
        open_in_a.json["providers"]["ollama"]["status"], "open",
        "{}",
        open_in_a.text
    );
    // B's worker has heard nothing from A: it still serves its version 1.
    assert_eq!(worker_b.get("/v1/aliases").await.json["version"], 1);
    // A push to B is a barrier: a subscriber gets messages in the order they were published,
    // so once B's worker has B's version 2, it would have had A's breaker change too.
    let r = cp_b
        .send(
            client()
                .post(cp_b.url("/admin/v1/registry"))
                .body("aliases:\n  mana/chain: {chain: [ollama/first, groq/second]}\n  mana/echo: {chain: [echo/b2]}\n"),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert!(
        eventually_async(Duration::from_secs(10), || async {
            worker_b
                .post("/v1/chat/completions", chat("mana/echo", "which"))
                .await
                .json["model"]
                == "echo/b2"
        })
        .await
    );
    assert_eq!(
        worker_b.get("/v1/health").await.json["providers"]["ollama"]["status"],
        "healthy"
    );
}

#[tokio::test]
async fn the_probe_of_a_running_process_opens_and_closes_breakers_without_traffic() {
    let mock = MockProvider::start().await;
    let gw = Gateway::builder()
        .mock(&mock)
        .env("MANA_LLM_PROBE", "on")
        .env("MANA_LLM_PROBE_INTERVAL", "0.1")
        .env("MANA_LLM_BREAKER_OPEN_SECONDS", "0.3")
        .start();
    let status = |gw: &Gateway| {
        let url = gw.url("/v1/health");
        async move {
            Reply::read(client().get(url).send().await.unwrap())
                .await
                .json["providers"]["ollama"]["status"]
                .clone()
        }
    };
    mock.set_default(Route::OllamaTags, MockReply::status(503));
    assert!(
        eventually_async(Duration::from_secs(10), || async {
            status(&gw).await == "open"
        })
        .await,
        "the probe's failures opened the breaker"
    );
    assert_eq!(mock.calls(Route::OllamaChat), 0, "no request was needed");
    mock.set_default(Route::OllamaTags, MockReply::ok());
    assert!(
        eventually_async(Duration::from_secs(10), || async {
            status(&gw).await == "healthy"
        })
        .await,
        "the probe's success closed it again"
    );
}
