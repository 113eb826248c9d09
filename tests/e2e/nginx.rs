//! The fleet behind the real load balancer: nginx with deploy/nginx/e2e.conf.template in front
//! of three workers, checked through the single endpoint.

use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use mana_llm_mock::{Reply as MockReply, Route};
use serde_json::json;

use crate::fleet::Cluster;
use crate::support::*;

struct Nginx {
    child: Child,
    url: String,
}

impl Drop for Nginx {
    /// SIGTERM to the master: it stops its workers and reaps them, then exits (SIGKILL to the
    /// master alone would orphan the workers, which keep the port). If it is stuck, the whole
    /// process group (the master leads its own) is killed.
    fn drop(&mut self) {
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill").args(["-TERM", "--", &group]).status();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while std::time::Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
        let _ = self.child.wait();
    }
}

fn host_port(url: &str) -> &str {
    url.trim_start_matches("http://")
}

fn nginx_in_front_of(workers: &[Gateway]) -> Nginx {
    let template = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/deploy/nginx/e2e.conf.template"
    ))
    .unwrap();
    let dir = temp_dir();
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let config = template
        .replace("__LISTEN__", &listen)
        .replace("__WORKER1__", host_port(&workers[0].url))
        .replace("__WORKER2__", host_port(&workers[1].url))
        .replace("__WORKER3__", host_port(&workers[2].url))
        .replace("__TMPDIR__", &dir.to_string_lossy());
    assert!(!config.contains("__"), "every placeholder filled");
    let conf = dir.join("nginx.conf");
    std::fs::write(&conf, config).unwrap();
    let child = Command::new("nginx")
        .arg("-p")
        .arg(&dir)
        .arg("-e")
        .arg(dir.join("error.log"))
        .arg("-c")
        .arg(&conf)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .expect("nginx is installed (scripts/test installs it)");
    let mut nginx = Nginx {
        child,
        url: format!("http://{listen}"),
    };
    if let Err(e) = wait_listening(&mut nginx.child, port, "nginx") {
        panic!(
            "{e}\n{}",
            std::fs::read_to_string(dir.join("error.log")).unwrap_or_default()
        );
    }
    nginx
}

#[tokio::test]
async fn three_workers_behind_nginx_behave_as_one_gateway() {
    let mut cluster = Cluster::start(3).await;
    let lb = nginx_in_front_of(&cluster.workers);
    let endpoint = format!("{}/v1/chat/completions", lb.url);
    let http = client();

    // A pushed version is what the single endpoint serves, whichever worker answers.
    let version = cluster.push("aliases:\n  mana/chain: {chain: [ollama/first, groq/second]}\n  mana/echo: {chain: [echo/lb]}\n").await;
    cluster.converge(version).await;
    for _ in 0..6 {
        let r = Reply::read(
            http.post(&endpoint)
                .json(&chat("mana/echo", "hi"))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!(r.json["model"], "echo/lb");
        assert_eq!(
            r.header("x-mana-llm-registry-version"),
            Some(version.to_string().as_str())
        );
    }

    // Streams pass through unbuffered: the first chunk arrives long before the last.
    cluster.mock.push(
        Route::OllamaChat,
        MockReply::text(&["a", "b", "c", "d"]).interval(Duration::from_millis(250)),
    );
    let mut body = chat("ollama/slow", "stream");
    body["stream"] = json!(true);
    let start = Instant::now();
    let mut response = http.post(&endpoint).json(&body).send().await.unwrap();
    assert_eq!(response.headers()["x-mana-llm-resolved"], "ollama/slow");
    let (mut first, mut text) = (None, String::new());
    while let Some(piece) = response.chunk().await.unwrap() {
        text.push_str(&String::from_utf8_lossy(&piece));
        if first.is_none() && text.contains("\"content\":\"a\"") {
            first = Some(start.elapsed());
        }
    }
    let first = first.expect("content a");
    assert!(
        first + Duration::from_millis(400) < start.elapsed(),
        "nginx buffered the stream: first chunk at {first:?}"
    );
    assert!(text.trim_end().ends_with("data: [DONE]"));

    // The cache is shared: the same deterministic request is a hit on its second pass.
    let mut cached = chat("groq/lb-cache", "same");
    cached["temperature"] = json!(0);
    let calls = cluster.mock.calls(Route::OpenAiChat);
    for expected in ["miss", "hit", "hit"] {
        let r = Reply::read(http.post(&endpoint).json(&cached).send().await.unwrap()).await;
        assert_eq!(r.header("x-mana-llm-cache"), Some(expected));
    }
    assert_eq!(cluster.mock.calls(Route::OpenAiChat), calls + 1);

    // A breaker tripped through the endpoint protects every worker behind it.
    cluster
        .mock
        .set_default(Route::OllamaChat, MockReply::status(500));
    for _ in 0..2 {
        http.post(&endpoint)
            .json(&chat("mana/chain", "x"))
            .send()
            .await
            .unwrap();
    }
    let ollama_calls = cluster.mock.calls(Route::OllamaChat);
    for w in &cluster.workers {
        assert!(
            eventually_async(Duration::from_secs(5), || async {
                w.get("/v1/health").await.json["providers"]["ollama"]["status"] == "open"
            })
            .await
        );
    }
    for _ in 0..6 {
        let r = Reply::read(
            http.post(&endpoint)
                .json(&chat("mana/chain", "x"))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(r.json["model"], "groq/second");
    }
    assert_eq!(
        cluster.mock.calls(Route::OllamaChat),
        ollama_calls,
        "no worker called the open provider"
    );

    // A dead worker: nginx moves on (nothing was sent to it), clients see no failure.
    let dead = cluster.workers.remove(0);
    drop(dead);
    for _ in 0..9 {
        let r = Reply::read(
            http.post(&endpoint)
                .json(&chat("mana/echo", "still"))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(r.status, 200, "{}", r.text);
    }

    // Stopped for good: no nginx process, master or worker, keeps the port.
    let addr = lb.url.trim_start_matches("http://").to_owned();
    drop(lb);
    assert!(
        eventually(Duration::from_secs(5), || std::net::TcpStream::connect(
            &addr
        )
        .is_err())
        .await,
        "an nginx process outlived the test and still answers on {addr}"
    );
}
