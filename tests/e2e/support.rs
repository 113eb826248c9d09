//! Test support: the real `mana-llm` binary as a child process, an HTTP client, SSE parsing,
//! and polling with a deadline instead of sleeping.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub use mana_llm_data_plane::testing::{free_port, wait_listening, RedisServer};
use serde_json::Value;

pub const BINARY: &str = env!("CARGO_BIN_EXE_mana-llm");

/// A running `mana-llm serve` (or `control-plane`) on a free port. Killed on drop.
pub struct Gateway {
    child: Child,
    pub url: String,
    logs: Arc<Mutex<String>>,
    /// A directory only this process used (its event log), removed on drop.
    owned_dir: Option<std::path::PathBuf>,
}

/// Builds the environment of one gateway process.
pub struct GatewayBuilder {
    env: Vec<(String, String)>,
    command: &'static str,
    /// A cgroup's `cgroup.procs`: the process joins it before it starts.
    cgroup: Option<std::path::PathBuf>,
    current_dir: Option<std::path::PathBuf>,
}

/// A fresh, empty directory under this run's root (see [`run_root`]), never shared with
/// another test.
pub fn temp_dir() -> std::path::PathBuf {
    static COUNTER: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let dir = run_root().join(n.to_string());
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

const ROOT_PREFIX: &str = "mana-llm-e2e-";

/// One directory per test run, `mana-llm-e2e-<pid>-<start time>` in the system temp dir,
/// holding every temp dir the run makes. A test binary has no hook that runs at exit, so each
/// run removes the roots of earlier runs whose process is gone (and the per-test dirs the
/// suite used to leave, `mana-llm-test-<pid>-…`): at most one run's files stay behind.
pub fn run_root() -> &'static std::path::Path {
    static ROOT: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();
    ROOT.get_or_init(|| {
        sweep_dead_runs();
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let root =
            std::env::temp_dir().join(format!("{ROOT_PREFIX}{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&root).unwrap();
        root
    })
}

fn sweep_dead_runs() {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(rest) = name
            .strip_prefix(ROOT_PREFIX)
            .or_else(|| name.strip_prefix("mana-llm-test-"))
        else {
            continue;
        };
        let Some(pid) = rest.split('-').next().and_then(|p| p.parse::<u32>().ok()) else {
            continue;
        };
        if !std::path::Path::new(&format!("/proc/{pid}")).exists() {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// Runs `cmd` to completion with its output captured, failing the test if it has not exited
/// within `limit`: a regression that makes a command serve or wait must fail, not hang the
/// suite.
pub fn output_within(cmd: &mut Command, limit: Duration) -> std::process::Output {
    use std::io::Read;
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    let read = |mut pipe: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            let _ = pipe.read_to_end(&mut bytes);
            bytes
        })
    };
    let stdout = read(Box::new(child.stdout.take().expect("stdout")));
    let stderr = read(Box::new(child.stderr.take().expect("stderr")));
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "{cmd:?} still running after {limit:?}; stderr:\n{}",
                String::from_utf8_lossy(&stderr.join().unwrap_or_default())
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    std::process::Output {
        status,
        stdout: stdout.join().unwrap_or_default(),
        stderr: stderr.join().unwrap_or_default(),
    }
}

/// A file with `contents` in a fresh temp dir.
pub fn temp_file(name: &str, contents: &str) -> std::path::PathBuf {
    let path = temp_dir().join(name);
    std::fs::write(&path, contents).unwrap();
    path
}

impl GatewayBuilder {
    /// Serves this registry (written to a temp file, re-read on SIGHUP).
    pub fn aliases(self, yaml: &str) -> Self {
        let path = temp_file("aliases.yaml", yaml);
        self.env("MANA_LLM_ALIASES", path.to_string_lossy())
    }

    /// Starts the process inside a cgroup (the file is its `cgroup.procs`).
    pub fn in_cgroup(mut self, procs: &std::path::Path) -> Self {
        self.cgroup = Some(procs.to_owned());
        self
    }

    /// Runs the process in `dir` (relative paths such as the default `aliases.yaml` resolve
    /// there).
    pub fn current_dir(mut self, dir: &std::path::Path) -> Self {
        self.current_dir = Some(dir.to_owned());
        self
    }

    pub fn env(mut self, key: &str, value: impl Into<String>) -> Self {
        self.env.push((key.to_owned(), value.into()));
        self
    }

    /// Points every provider at the mock: Ollama, the OpenAI-compatible ones and Gemini.
    pub fn mock(self, mock: &mana_llm_mock::MockProvider) -> Self {
        self.env("OLLAMA_URL", mock.url())
            .env("OPENAI_BASE_URL", mock.openai_base())
            .env("OPENAI_API_KEY", "sk-test-openai")
            .env("GROQ_BASE_URL", mock.openai_base())
            .env("GROQ_API_KEY", "gsk-test-groq")
            .env("OPENROUTER_BASE_URL", mock.openai_base())
            .env("OPENROUTER_API_KEY", "sk-or-test")
            .env("TOGETHER_BASE_URL", mock.openai_base())
            .env("TOGETHER_API_KEY", "tg-test")
            .env("GOOGLE_BASE_URL", mock.gemini_base())
            .env("GOOGLE_API_KEY", "AIza-test-google")
    }

    pub fn start(self) -> Gateway {
        let dir = temp_dir();
        let mut gateway = self.start_with_db(&dir.join("mana-llm.db"));
        gateway.owned_dir = Some(dir);
        gateway
    }

    /// Starts on a given event log (to restart a process on the same data).
    pub fn start_with_db(self, db: &std::path::Path) -> Gateway {
        let mut cmd = match &self.cgroup {
            // The shell moves itself into the cgroup, then becomes the gateway.
            Some(procs) => {
                let mut cmd = Command::new("sh");
                cmd.arg("-c")
                    .arg(format!(
                        "echo $$ > {} && exec \"$0\" \"$@\"",
                        procs.display()
                    ))
                    .arg(BINARY);
                cmd
            }
            None => Command::new(BINARY),
        };
        // A clean environment: the developer's own provider keys must not leak into tests.
        cmd.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("PORT", "0")
            .env("LOG_LEVEL", "debug")
            .env("MANA_LLM_PROBE", "off")
            .env(
                "MANA_LLM_ALIASES",
                concat!(env!("CARGO_MANIFEST_DIR"), "/aliases.yaml"),
            )
            .env("MANA_LLM_DB", db)
            .arg(self.command)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        if let Some(dir) = &self.current_dir {
            cmd.current_dir(dir);
        }
        let mut child = cmd.spawn().expect("spawn mana-llm");
        let logs = Arc::new(Mutex::new(String::new()));
        let stderr = child.stderr.take().expect("stderr");
        let sink = logs.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let mut logs = sink.lock().unwrap();
                logs.push_str(&line);
                logs.push('\n');
            }
        });
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            if let Some(Ok(line)) = lines.next() {
                let _ = tx.send(line);
            }
            for _ in lines {}
        });
        let line = match rx.recv_timeout(Duration::from_secs(20)) {
            Ok(line) => line,
            Err(_) => {
                let _ = child.kill();
                panic!("gateway did not start; logs:\n{}", logs.lock().unwrap());
            }
        };
        let url = line
            .strip_prefix("listening on ")
            .expect("listening line")
            .to_owned();
        Gateway {
            child,
            url,
            logs,
            owned_dir: None,
        }
    }
}

impl Gateway {
    pub fn builder() -> GatewayBuilder {
        GatewayBuilder {
            env: Vec::new(),
            current_dir: None,
            command: "serve",
            cgroup: None,
        }
    }

    /// `mana-llm worker` on a free loopback port, following the versions in `redis`.
    pub fn worker(redis: &str) -> GatewayBuilder {
        GatewayBuilder {
            env: Vec::new(),
            current_dir: None,
            command: "worker",
            cgroup: None,
        }
        .env("MANA_LLM_LISTEN", "127.0.0.1:0")
        .env("REDIS_URL", redis)
        .env("MANA_LLM_SYNC_INTERVAL", "0.2")
    }

    /// `mana-llm control-plane` on a free loopback port, with its own event log.
    pub fn control_plane() -> GatewayBuilder {
        GatewayBuilder {
            env: Vec::new(),
            current_dir: None,
            command: "control-plane",
            cgroup: None,
        }
        .env("MANA_LLM_CONTROL_PLANE_LISTEN", "127.0.0.1:0")
    }

    /// A gateway whose providers all point at `mock`.
    pub fn with_mock(mock: &mana_llm_mock::MockProvider) -> Gateway {
        Self::builder().mock(mock).start()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.url, path)
    }

    pub fn logs(&self) -> String {
        self.logs.lock().unwrap().clone()
    }

    /// The logs once the line of request `id` has been read. The log is read from the process
    /// asynchronously, so a line absent before that proves nothing; lines come in order, so
    /// everything logged before that request is in.
    pub async fn logs_through(&self, id: &str) -> String {
        assert!(!id.is_empty(), "responses carry X-Request-Id");
        assert!(
            eventually(Duration::from_secs(10), || self.logs().contains(id)).await,
            "request {id} never logged:\n{}",
            self.logs()
        );
        self.logs()
    }

    /// The logs once everything this process logged before the call has been read: a probe
    /// with a fresh `X-Request-Id` is logged (at debug, the suite's level) after it. Data-plane
    /// processes only (`serve`, `worker`): the control plane logs no requests.
    pub async fn logs_settled(&self) -> String {
        static BARRIER: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = BARRIER.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let id = format!("log-barrier-{}-{n}", std::process::id());
        let r = self
            .send(
                client()
                    .get(self.url("/health"))
                    .header("x-request-id", &id),
            )
            .await;
        assert_eq!(r.header("x-request-id"), Some(id.as_str()));
        self.logs_through(&id).await
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends a signal to the process (`TERM`, `HUP`, …).
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.pid().to_string())
            .status()
            .expect("kill");
        assert!(status.success());
    }

    /// Waits for the process to exit and returns its exit code.
    pub fn wait_exit(&mut self, deadline: Duration) -> Option<i32> {
        let start = Instant::now();
        while start.elapsed() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// POSTs JSON and returns the status, headers and body as JSON (Null if not JSON).
    pub async fn post(&self, path: &str, body: Value) -> Reply {
        self.send(client().post(self.url(path)).json(&body)).await
    }

    pub async fn send(&self, request: reqwest::RequestBuilder) -> Reply {
        Reply::read(request.send().await.expect("request")).await
    }

    pub async fn get(&self, path: &str) -> Reply {
        let response = client().get(self.url(path)).send().await.expect("request");
        Reply::read(response).await
    }

    /// Streams a chat completion and returns the SSE data payloads in order.
    pub async fn stream(
        &self,
        body: Value,
    ) -> (reqwest::StatusCode, reqwest::header::HeaderMap, Vec<String>) {
        let response = client()
            .post(self.url("/v1/chat/completions"))
            .json(&body)
            .send()
            .await
            .expect("request");
        let status = response.status();
        let headers = response.headers().clone();
        let text = response.text().await.unwrap_or_default();
        (status, headers, sse_data(&text))
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(dir) = &self.owned_dir {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

pub struct Reply {
    pub status: reqwest::StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub text: String,
    pub json: Value,
}

impl Reply {
    pub async fn read(response: reqwest::Response) -> Reply {
        let status = response.status();
        let headers = response.headers().clone();
        let text = response.text().await.unwrap_or_default();
        let json = serde_json::from_str(&text).unwrap_or(Value::Null);
        Reply {
            status,
            headers,
            text,
            json,
        }
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Asserts an OpenAI-shaped error with this status and code.
    pub fn assert_error(&self, status: u16, code: &str) {
        assert_eq!(self.status.as_u16(), status, "body: {}", self.text);
        let error = &self.json["error"];
        assert!(
            error["message"].as_str().is_some_and(|m| !m.is_empty()),
            "no message: {}",
            self.text
        );
        assert!(error["type"].is_string(), "no type: {}", self.text);
        assert_eq!(error["code"], code, "body: {}", self.text);
        assert!(error.get("param").is_some(), "no param: {}", self.text);
    }
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client")
}

/// The `data:` payloads of an SSE body, in order.
pub fn sse_data(text: &str) -> Vec<String> {
    text.split("\n\n")
        .flat_map(|event| event.lines())
        .filter_map(|line| line.strip_prefix("data: "))
        .map(str::to_owned)
        .collect()
}

/// The JSON chunks of a stream (everything but `[DONE]`).
pub fn chunks(data: &[String]) -> Vec<Value> {
    data.iter()
        .filter(|d| *d != "[DONE]")
        .map(|d| serde_json::from_str(d).expect("chunk json"))
        .collect()
}

/// The streamed text of a list of chunks.
pub fn streamed_text(chunks: &[Value]) -> String {
    chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect()
}

/// Polls `check` until it is true or `deadline` passes.
pub async fn eventually(deadline: Duration, mut check: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < deadline {
        if check() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    check()
}

/// Polls an async `check` until it is true or `deadline` passes.
pub async fn eventually_async<F, Fut>(deadline: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    while start.elapsed() < deadline {
        if check().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    false
}

pub fn chat(model: &str, content: &str) -> Value {
    serde_json::json!({"model": model, "messages": [{"role": "user", "content": content}]})
}

/// One value of a metric line in a Prometheus exposition, found by name and label fragments.
pub fn metric(text: &str, name: &str, labels: &[&str]) -> Option<f64> {
    text.lines()
        .filter(|l| {
            l.starts_with(name)
                && (l.as_bytes().get(name.len()) == Some(&b'{')
                    || l.as_bytes().get(name.len()) == Some(&b' '))
        })
        .find(|l| labels.iter().all(|frag| l.contains(frag)))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

/// Assembles streamed tool-call fragments: (name, concatenated arguments) per index.
pub fn streamed_tool_calls(chunks: &[Value]) -> Vec<(String, String)> {
    let mut calls: Vec<(String, String)> = Vec::new();
    for chunk in chunks {
        let Some(deltas) = chunk["choices"][0]["delta"]["tool_calls"].as_array() else {
            continue;
        };
        for d in deltas {
            let i = d["index"].as_u64().unwrap_or(0) as usize;
            while calls.len() <= i {
                calls.push((String::new(), String::new()));
            }
            if let Some(name) = d["function"]["name"].as_str() {
                calls[i].0.push_str(name);
            }
            if let Some(args) = d["function"]["arguments"].as_str() {
                calls[i].1.push_str(args);
            }
        }
    }
    calls
}

/// The finish reason of the last chunk that has one.
pub fn finish_reason(chunks: &[Value]) -> Option<String> {
    chunks
        .iter()
        .rev()
        .find_map(|c| c["choices"][0]["finish_reason"].as_str().map(str::to_owned))
}

pub const TOOLS: &str = r#"[{"type":"function","function":{"name":"get_weather","description":"Weather for a city","parameters":{"type":"object","properties":{"city":{"type":"string"}},"required":["city"]}}}]"#;

/// A chat body asking for the weather with tools, optionally streamed.
pub fn tool_chat(model: &str, stream: bool) -> Value {
    let mut body = chat(model, "Weather in Berlin?");
    body["tools"] = serde_json::from_str(TOOLS).unwrap();
    body["stream"] = Value::Bool(stream);
    body
}

/// A user message with a text part and an inline PNG.
pub fn vision_chat(model: &str, url: &str) -> Value {
    serde_json::json!({"model": model, "messages": [{"role": "user", "content": [
        {"type": "text", "text": "What is in this image?"},
        {"type": "image_url", "image_url": {"url": url}}
    ]}]})
}

/// Waits until `gw` has its Redis connection: requests never wait for one, so the cache
/// is only shared once it is up.
pub async fn redis_up(gw: &Gateway) {
    assert!(
        eventually_async(Duration::from_secs(10), || async {
            metric(&gw.get("/metrics").await.text, "mana_llm_redis_up", &[]) == Some(1.0)
        })
        .await,
        "Redis connection up"
    );
}

/// A JSON chat answer of usage 5/3 (the mock's) has every field OpenAI sends, whoever built it.
pub fn assert_openai_shape(r: &Reply) {
    assert_eq!(
        r.json["usage"],
        serde_json::json!({
            "prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8,
            "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
            "completion_tokens_details": {
                "reasoning_tokens": 0, "audio_tokens": 0,
                "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0
            }
        })
    );
    assert!(
        r.json
            .as_object()
            .unwrap()
            .contains_key("system_fingerprint"),
        "{}",
        r.text
    );
    assert_eq!(r.json["choices"][0]["logprobs"], Value::Null);
    assert!(r.json["choices"][0]
        .as_object()
        .unwrap()
        .contains_key("logprobs"));
    assert!(r.json["choices"][0]["message"]
        .as_object()
        .unwrap()
        .contains_key("refusal"));
}

/// The fleet key of the clusters the suites start (the production setup: signed state).
pub const FLEET_KEY: &str = "e2e-fleet-key-0123456789";

pub fn fleet_key() -> mana_llm_shared::fleet_key::FleetKey {
    mana_llm_shared::fleet_key::FleetKey::from_setting(Some(FLEET_KEY))
        .unwrap()
        .unwrap()
}

pub const PNG: &str = "data:image/png;base64,iVBORw0KGgo=";

/// The mock answers `model` with a `get_weather(city: Berlin)` call on `json_route`, then on
/// `stream_route`; both gateway answers must carry it in OpenAI form (the streamed one as
/// fragments that assemble into valid JSON). Returns what the upstream received the first time.
pub async fn assert_tool_round_trip(
    gw: &Gateway,
    mock: &mana_llm_mock::MockProvider,
    model: &str,
    json_route: mana_llm_mock::Route,
    stream_route: mana_llm_mock::Route,
) -> mana_llm_mock::Recorded {
    let berlin = serde_json::json!({"city": "Berlin"});
    mock.push(
        json_route,
        mana_llm_mock::Reply::tool_call("get_weather", berlin.clone()),
    );
    let r = gw
        .post("/v1/chat/completions", tool_chat(model, false))
        .await;
    assert_eq!(r.status, 200, "{model}: {}", r.text);
    let call = &r.json["choices"][0]["message"]["tool_calls"][0];
    assert_eq!(call["function"]["name"], "get_weather", "{model}");
    let args: Value =
        serde_json::from_str(call["function"]["arguments"].as_str().unwrap()).unwrap();
    assert_eq!(args, berlin, "{model}");
    assert_eq!(
        r.json["choices"][0]["finish_reason"], "tool_calls",
        "{model}"
    );
    let sent = mock.last_request(json_route).unwrap();

    mock.push(
        stream_route,
        mana_llm_mock::Reply::tool_call("get_weather", berlin.clone()),
    );
    let (_, _, data) = gw.stream(tool_chat(model, true)).await;
    let chunks = chunks(&data);
    let calls = streamed_tool_calls(&chunks);
    assert_eq!(calls.len(), 1, "{model}: {calls:?}");
    assert_eq!(calls[0].0, "get_weather", "{model}");
    let args: Value = serde_json::from_str(&calls[0].1).expect("assembled arguments are JSON");
    assert_eq!(args, berlin, "{model}");
    assert_eq!(
        finish_reason(&chunks).as_deref(),
        Some("tool_calls"),
        "{model}"
    );
    sent
}
