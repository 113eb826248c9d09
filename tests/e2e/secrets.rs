//! Provider keys and client keys never appear in a response, a header or a log line.

use std::time::Duration;

use mana_llm_mock::{MockProvider, Reply as MockReply, Route};
use serde_json::json;

use crate::support::*;

const SECRETS: [&str; 4] = [
    "gsk-SECRET-9f8e7d6c",
    "AIza-SECRET-4242",
    "sk-SECRET-openai-1",
    "client-SECRET-777",
];

#[tokio::test]
async fn secrets_stay_secret() {
    let mock = MockProvider::start().await;
    let gw = Gateway::builder()
        .mock(&mock)
        .env("GROQ_API_KEY", SECRETS[0])
        .env("GOOGLE_API_KEY", SECRETS[1])
        .env("OPENAI_API_KEY", SECRETS[2])
        .env("GPU_API_KEY", SECRETS[3])
        .env("LOG_LEVEL", "trace")
        .start();
    mock.push(Route::OpenAiChat, MockReply::status(401));
    mock.push(Route::GeminiGenerate, MockReply::status(403));
    mock.push(
        Route::OpenAiChat,
        MockReply::text(&["a", "b"]).drop_after(1),
    );

    let http = client();
    let mut seen = String::new();
    let calls = [
        ("POST", "/v1/chat/completions", chat("groq/m", "x")),
        ("POST", "/v1/chat/completions", chat("google/m", "x")),
        (
            "POST",
            "/v1/chat/completions",
            json!({"model": "openai/m", "stream": true, "messages": [{"role": "user", "content": "x"}]}),
        ),
        ("POST", "/v1/chat/completions", chat("groq/m", "x")),
        (
            "POST",
            "/v1/embeddings",
            json!({"model": "google/e", "input": "x"}),
        ),
        ("GET", "/v1/models", json!(null)),
        ("GET", "/v1/models/groq/mock-model", json!(null)),
        ("GET", "/health", json!(null)),
        ("GET", "/metrics", json!(null)),
    ];
    for (method, path, body) in calls {
        let request = match method {
            "POST" => http.post(gw.url(path)).json(&body),
            _ => http.get(gw.url(path)),
        };
        let response = request
            .header("x-api-key", SECRETS[3])
            .send()
            .await
            .unwrap();
        for (name, value) in response.headers() {
            seen.push_str(&format!("{name}: {value:?}\n"));
        }
        seen.push_str(&response.text().await.unwrap());
    }
    let wrong_key = http
        .post(gw.url("/v1/chat/completions"))
        .header("x-api-key", "client-SECRET-7")
        .json(&chat("groq/m", "x"))
        .send()
        .await
        .unwrap();
    let last_id = wrong_key.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    seen.push_str(&wrong_key.text().await.unwrap());

    assert!(
        mock.calls(Route::OpenAiChat) >= 3,
        "the calls reached the upstream"
    );
    assert!(
        seen.contains("upstream_auth"),
        "the auth failures were exercised: {seen}"
    );
    let logs = gw.logs_through(&last_id).await;
    for secret in SECRETS {
        assert!(
            !seen.contains(secret),
            "{secret} leaked into a response:\n{seen}"
        );
        assert!(!logs.contains(secret), "{secret} leaked into the logs");
    }
}

/// Keys the mock quotes back in its error texts (`Reply::echo_key`), as real upstreams do.
const ECHOED: [&str; 6] = [
    "gsk-ECHOED-groq-5a4b",
    "sk-ECHOED-openai-77",
    "tg-ECHOED-together-3",
    "AIza-ECHOED-google-12",
    "sk-or-ECHOED-openrouter-8",
    "client-ECHOED-999",
];
const CLIENT_KEY: &str = ECHOED[5];
const REDIS_PASSWORD: &str = "redis-ECHOED-password";

/// A chain whose retryable failures (500, 503, 503) are each logged at WARN before the last
/// entry's 401 ends the walk.
const LEAKY_CHAIN: &str = "aliases:\n  mana/leaky: {chain: [groq/echo-key-500, openai/echo-key-503, google/echo-key-503, together/echo-key-401]}\n";

fn echoing_gateway(mock: &MockProvider) -> GatewayBuilder {
    Gateway::builder()
        .mock(mock)
        .aliases(LEAKY_CHAIN)
        .env("GROQ_API_KEY", ECHOED[0])
        .env("OPENAI_API_KEY", ECHOED[1])
        .env("TOGETHER_API_KEY", ECHOED[2])
        .env("GOOGLE_API_KEY", ECHOED[3])
        .env("OPENROUTER_API_KEY", ECHOED[4])
        .env("GPU_API_KEY", CLIENT_KEY)
        .env("LOG_LEVEL", "trace")
        // Every request must reach the upstream: no breaker may open on the way (a 429 opens
        // one at once, so it goes to a provider nothing else calls).
        .env("MANA_LLM_BREAKER_FAILURES", "1000")
}

/// Everything the gateway answered: status lines, headers and bodies, in order.
#[derive(Default)]
struct Seen {
    text: String,
    last_request_id: String,
}

impl Seen {
    /// Sends `request` with the client key and records the whole answer; returns status and body.
    async fn send(&mut self, request: reqwest::RequestBuilder) -> (u16, String) {
        let response = request
            .header("x-api-key", CLIENT_KEY)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        for (name, value) in response.headers() {
            self.text.push_str(&format!(
                "{name}: {}\n",
                String::from_utf8_lossy(value.as_bytes())
            ));
        }
        if let Some(id) = response.headers().get("x-request-id") {
            self.last_request_id = id.to_str().unwrap().to_owned();
        }
        let body = response.text().await.unwrap();
        self.text.push_str(&body);
        self.text.push('\n');
        (status, body)
    }
}

fn stream(model: &str) -> serde_json::Value {
    json!({"model": model, "stream": true, "messages": [{"role": "user", "content": "x"}]})
}

/// Drives every path upstream error text takes, checking on the way that each was exercised:
/// the mock quoted the credential it got, so "[redacted]" in an answer means a key was there.
/// Returns what the gateway answered.
async fn provoke_every_upstream_error(gw: &Gateway) -> Seen {
    let http = client();
    let mut seen = Seen::default();
    let chat_url = gw.url("/v1/chat/completions");
    let embeddings_url = gw.url("/v1/embeddings");
    let scrubbed = |body: &str| body.contains("Incorrect API key provided: [redacted]");

    // JSON chat, each status class.
    for (model, answered) in [
        ("groq/echo-key-400", 400),
        ("groq/echo-key-401", 502),
        ("groq/echo-key-500", 502),
        ("openrouter/echo-key-429", 429),
        ("google/echo-key-500", 502),
    ] {
        let (status, body) = seen
            .send(http.post(&chat_url).json(&chat(model, "x")))
            .await;
        assert_eq!(status, answered, "{model}: {body}");
        assert!(scrubbed(&body), "{model}: {body}");
    }

    // Streaming: refused before the first byte, and an in-band error after the first chunk.
    let (status, body) = seen
        .send(http.post(&chat_url).json(&stream("openai/echo-key-401")))
        .await;
    assert_eq!(status, 502, "{body}");
    assert!(scrubbed(&body), "stream refused: {body}");
    let (status, body) = seen
        .send(
            http.post(&chat_url)
                .json(&stream("openai/echo-key-midstream")),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("Hello"), "the first chunk came: {body}");
    assert!(scrubbed(&body), "in-band error: {body}");

    // Embeddings, OpenAI-compatible and Gemini.
    for (model, answered) in [("openai/echo-key-401", 502), ("google/echo-key-400", 400)] {
        let (status, body) = seen
            .send(
                http.post(&embeddings_url)
                    .json(&json!({"model": model, "input": "x"})),
            )
            .await;
        assert_eq!(status, answered, "{model}: {body}");
        assert!(scrubbed(&body), "{model}: {body}");
    }

    // A fallback chain: each failed entry is logged, the last one's error answered.
    let (status, body) = seen
        .send(http.post(&chat_url).json(&chat("mana/leaky", "x")))
        .await;
    assert_eq!(status, 502, "{body}");
    assert!(scrubbed(&body), "chain: {body}");

    let (_, public) = seen.send(http.get(gw.url("/health"))).await;
    assert!(public.contains("\"status\""), "{public}");
    for detail in ["last_error", "Incorrect", "redacted", "upstream"] {
        assert!(
            !public.contains(detail),
            "public /health shows {detail}: {public}"
        );
    }
    seen.send(http.get(gw.url("/metrics"))).await;
    seen.send(http.get(gw.url("/v1/models"))).await;
    let (_, health) = seen.send(http.get(gw.url("/v1/health"))).await;
    assert!(
        scrubbed(&health),
        "/v1/health shows the scrubbed last error: {health}"
    );
    seen
}

fn assert_nowhere(what: &str, text: &str, secrets: &[&str]) {
    for secret in secrets {
        assert!(
            !text.contains(secret),
            "{secret} leaked into {what}:\n{text}"
        );
    }
}

#[tokio::test]
async fn an_upstream_quoting_its_key_is_scrubbed_everywhere() {
    let mock = MockProvider::start().await;
    let gw = echoing_gateway(&mock).start();
    let seen = provoke_every_upstream_error(&gw).await;

    let logs = gw.logs_through(&seen.last_request_id).await;
    assert!(
        logs.matches("chain entry failed").count() >= 3,
        "each failed chain entry was logged:\n{logs}"
    );
    assert!(
        logs.contains("stream failed after the first chunk"),
        "{logs}"
    );
    assert!(
        logs.contains("[redacted]"),
        "the logged errors carried the text:\n{logs}"
    );
    assert_nowhere("a response", &seen.text, &ECHOED);
    assert_nowhere("the log", &logs, &ECHOED);
}

/// Every value of every key in Redis, as text.
async fn redis_dump(url: &str) -> String {
    let client = redis::Client::open(url).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg("*")
        .query_async(&mut conn)
        .await
        .unwrap();
    let mut out = String::new();
    for key in keys {
        let kind: String = redis::cmd("TYPE")
            .arg(&key)
            .query_async(&mut conn)
            .await
            .unwrap();
        let read = |cmd: &str, args: &[&str]| {
            let mut c = redis::cmd(cmd);
            c.arg(&key);
            for a in args {
                c.arg(*a);
            }
            c
        };
        let values: Vec<Vec<u8>> = match kind.as_str() {
            "string" => vec![read("GET", &[]).query_async(&mut conn).await.unwrap()],
            "hash" => read("HGETALL", &[]).query_async(&mut conn).await.unwrap(),
            "list" => read("LRANGE", &["0", "-1"])
                .query_async(&mut conn)
                .await
                .unwrap(),
            "set" => read("SMEMBERS", &[]).query_async(&mut conn).await.unwrap(),
            "zset" => read("ZRANGE", &["0", "-1"])
                .query_async(&mut conn)
                .await
                .unwrap(),
            other => {
                let v: redis::Value = read("DUMP", &[]).query_async(&mut conn).await.unwrap();
                vec![format!("{other}: {v:?}").into_bytes()]
            }
        };
        out.push_str(&format!("{key} ({kind}):\n"));
        for v in values {
            out.push_str(&String::from_utf8_lossy(&v));
            out.push('\n');
        }
    }
    out
}

#[tokio::test]
async fn an_upstream_quoting_its_key_never_reaches_redis() {
    let mut redis = RedisServer::start();
    redis.stop();
    redis.restart_locked(REDIS_PASSWORD);
    let url = format!("redis://:{REDIS_PASSWORD}@127.0.0.1:{}", redis.port);
    let mock = MockProvider::start().await;
    let gw = echoing_gateway(&mock).env("REDIS_URL", &url).start();
    assert!(
        eventually_async(Duration::from_secs(10), || async {
            gw.send(
                client()
                    .get(gw.url("/v1/health"))
                    .header("x-api-key", CLIENT_KEY),
            )
            .await
            .json["shared"]
                == true
        })
        .await,
        "breakers are shared through Redis"
    );
    let seen = provoke_every_upstream_error(&gw).await;

    let mut secrets = ECHOED.to_vec();
    secrets.push(REDIS_PASSWORD);
    // The breakers reach Redis off the request path: wait for the error text to arrive.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let mut dump = redis_dump(&url).await;
    while !dump.contains("Incorrect API key provided: ") {
        assert!(
            std::time::Instant::now() < deadline,
            "the error text never reached Redis:\n{dump}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
        dump = redis_dump(&url).await;
    }
    assert_nowhere("Redis", &dump, &secrets);
    let logs = gw.logs_through(&seen.last_request_id).await;
    assert_nowhere("a response", &seen.text, &secrets);
    assert_nowhere("the log", &logs, &secrets);
}
