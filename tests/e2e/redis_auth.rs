//! Redis with credentials: a password, an ACL user and TLS with a private CA work for
//! workers, `serve` and the control plane; a wrong password is a Redis-down state with one
//! clear log line, never a crash; no password ever shows in logs, metrics or /v1/health.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use crate::support::*;

const PASSWORD: &str = "pw-Redis-S3cret-4417";
const ACL_PASSWORD: &str = "acl-S3cret-mana-9921";
const V2: &str = "aliases:\n  mana/echo: {chain: [echo/two]}\ndefault: mana/echo\n";
const REFUSED: &str = "Redis refused the credentials";

/// Pushes `V2` through the admin API of `serve` or the control plane (loopback, no token).
async fn push_v2(admin: &Gateway) -> u64 {
    let r = admin
        .send(
            client()
                .post(admin.url("/admin/v1/registry"))
                .header("content-type", "application/yaml")
                .body(V2),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    r.json["version"].as_u64().unwrap()
}

async fn converges(worker: &Gateway, version: u64) {
    let reached = eventually_async(Duration::from_secs(10), || async {
        worker.get("/v1/aliases").await.json["version"] == version
    })
    .await;
    assert!(
        reached,
        "worker did not reach version {version}:\n{}",
        worker.logs()
    );
}

/// Breakers are fleet-shared, i.e. this process's Redis connection works.
async fn shares_state(gw: &Gateway) {
    let shared = eventually_async(Duration::from_secs(10), || async {
        gw.get("/v1/health").await.json["shared"] == true
    })
    .await;
    assert!(shared, "Redis never came up:\n{}", gw.logs());
}

/// Neither the logs nor any public answer of `gw` contains one of `secrets`.
async fn never_shows(gw: &Gateway, secrets: &[&str], data_plane: bool) {
    // A data-plane process is asked for a barrier line first; the control plane logs no
    // requests, and its callers have seen its work done (a push, a refusal) first.
    let logs = if data_plane {
        gw.logs_settled().await
    } else {
        gw.logs()
    };
    let mut texts = vec![("logs", logs)];
    let paths: &[&str] = if data_plane {
        &["/metrics", "/v1/health", "/health"]
    } else {
        &["/metrics", "/health"]
    };
    for path in paths {
        texts.push((path, gw.get(path).await.text));
    }
    for (what, text) in &texts {
        for secret in secrets {
            assert!(!text.contains(secret), "{what} shows a password:\n{text}");
        }
    }
}

#[tokio::test]
async fn a_password_in_redis_url_works_for_serve_and_workers() {
    let redis = RedisServer::start_with(&["--requirepass", PASSWORD]);
    let url = format!("redis://:{PASSWORD}@127.0.0.1:{}/", redis.port);
    let serve = Gateway::builder().env("REDIS_URL", &url).start();
    let worker = Gateway::worker(&url).start();
    shares_state(&serve).await;
    shares_state(&worker).await;
    // serve's embedded control plane publishes through the same password-protected Redis.
    let version = push_v2(&serve).await;
    converges(&worker, version).await;
    never_shows(&serve, &[PASSWORD], true).await;
    never_shows(&worker, &[PASSWORD], true).await;
}

#[tokio::test]
async fn an_acl_user_works_for_the_control_plane_and_workers() {
    let user = format!(">{ACL_PASSWORD}");
    let redis = RedisServer::start_with(&[
        "--requirepass",
        PASSWORD,
        "--user",
        "mana",
        "on",
        &user,
        "~*",
        "&*",
        "+@all",
    ]);
    let url = format!("redis://mana:{ACL_PASSWORD}@127.0.0.1:{}/", redis.port);
    let control_plane = Gateway::control_plane().env("REDIS_URL", &url).start();
    let worker = Gateway::worker(&url).start();
    let version = push_v2(&control_plane).await;
    converges(&worker, version).await;
    shares_state(&worker).await;
    never_shows(&control_plane, &[ACL_PASSWORD], false).await;
    never_shows(&worker, &[ACL_PASSWORD], true).await;
}

#[tokio::test]
async fn rediss_with_a_private_ca_works_for_serve_the_control_plane_and_workers() {
    let certs = Certs::generate();
    let (cert, key, ca) = (
        certs.path("server.pem"),
        certs.path("server.key"),
        certs.path("ca.pem"),
    );
    let redis = RedisServer::start_with(&[
        "--port",
        "0",
        "--tls-port",
        "{port}",
        "--tls-cert-file",
        &cert,
        "--tls-key-file",
        &key,
        "--tls-ca-cert-file",
        &ca,
        "--tls-auth-clients",
        "no",
        "--requirepass",
        PASSWORD,
    ]);
    let url = format!("rediss://:{PASSWORD}@127.0.0.1:{}/", redis.port);
    let control_plane = Gateway::control_plane()
        .env("REDIS_URL", &url)
        .env("MANA_LLM_REDIS_CA_FILE", &ca)
        .start();
    let worker = Gateway::worker(&url)
        .env("MANA_LLM_REDIS_CA_FILE", &ca)
        .start();
    // Its own prefix, so its publisher does not race the control plane's.
    let serve = Gateway::builder()
        .env("REDIS_URL", &url)
        .env("MANA_LLM_REDIS_PREFIX", "serve-tls")
        .env("MANA_LLM_REDIS_CA_FILE", &ca)
        .start();
    let version = push_v2(&control_plane).await;
    converges(&worker, version).await;
    shares_state(&worker).await;
    shares_state(&serve).await;

    // The certificate is checked: without the private CA the public roots do not trust it.
    let untrusting = Gateway::worker(&url).start();
    let refused = eventually(Duration::from_secs(10), || {
        untrusting
            .logs()
            .contains("TLS certificate was not accepted")
    })
    .await;
    assert!(refused, "{}", untrusting.logs());
    assert_eq!(untrusting.get("/v1/health").await.json["shared"], false);
    for gw in [&worker, &serve, &untrusting] {
        never_shows(gw, &[PASSWORD], true).await;
    }
    never_shows(&control_plane, &[PASSWORD], false).await;
}

#[tokio::test]
async fn a_wrong_password_is_redis_down_with_a_clear_line_and_never_leaks() {
    const WRONG: &str = "wrong-Pass-77123";
    let redis = RedisServer::start_with(&["--requirepass", PASSWORD]);
    let url = format!("redis://:{WRONG}@127.0.0.1:{}/", redis.port);
    let worker = Gateway::worker(&url).start();
    let control_plane = Gateway::control_plane().env("REDIS_URL", &url).start();
    for gw in [&worker, &control_plane] {
        let said = eventually(Duration::from_secs(10), || gw.logs().contains(REFUSED)).await;
        assert!(said, "no '{REFUSED}' line:\n{}", gw.logs());
        assert_eq!(gw.get("/health").await.status, 200, "still serving");
    }
    let health = worker.get("/v1/health").await;
    assert_eq!(health.json["shared"], false, "{}", health.text);
    let metrics = worker.get("/metrics").await.text;
    assert_eq!(metric(&metrics, "mana_llm_redis_up", &[]), Some(0.0));
    // Reported once, not at every reconnect attempt.
    assert_eq!(
        worker.logs().matches(REFUSED).count(),
        1,
        "{}",
        worker.logs()
    );
    never_shows(&worker, &[WRONG, PASSWORD], true).await;
    never_shows(&control_plane, &[WRONG, PASSWORD], false).await;
}

/// A throwaway CA and a server certificate for 127.0.0.1 it signed, made with the `openssl`
/// CLI (as redis-server's own TLS tests do).
struct Certs(PathBuf);

impl Certs {
    fn generate() -> Certs {
        let dir = temp_dir();
        let openssl = |args: &[&str]| {
            let out = output_within(
                Command::new("openssl").args(args).current_dir(&dir),
                Duration::from_secs(60),
            );
            assert!(
                out.status.success(),
                "openssl {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        let ec = [
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
        ];
        openssl(
            &[
                &["req", "-x509"][..],
                &ec,
                &[
                    "-keyout",
                    "ca.key",
                    "-out",
                    "ca.pem",
                    "-days",
                    "1",
                    "-subj",
                    "/CN=mana-llm test CA",
                ],
            ]
            .concat(),
        );
        openssl(
            &[
                &["req"][..],
                &ec,
                &[
                    "-keyout",
                    "server.key",
                    "-out",
                    "server.csr",
                    "-subj",
                    "/CN=127.0.0.1",
                ],
            ]
            .concat(),
        );
        std::fs::write(dir.join("san.cnf"), "subjectAltName=IP:127.0.0.1\n").unwrap();
        openssl(&[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.pem",
            "-days",
            "1",
            "-extfile",
            "san.cnf",
        ]);
        Certs(dir)
    }

    fn path(&self, name: &str) -> String {
        self.0.join(name).to_string_lossy().into_owned()
    }
}
