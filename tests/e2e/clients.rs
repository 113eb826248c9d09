//! The client conformance suite: the clients apps really use, each run as a child process
//! against the real gateway and the mock (tests/clients). Each talks to aliases whose first
//! entry is Ollama-native and whose second is OpenAI-compatible, so translation and fallback
//! are both exercised. `scripts/test` installs the npm packages into target/clients-node, the
//! Python ones into target/sdk-venv, and Chromium when missing.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use mana_llm_mock::{MockProvider, Route};
use serde_json::Value;

use crate::support::*;

const KEY: &str = "client-suite-key";

/// `…calls-NAME` and `…json-weather` models are the mock's scripted-by-name replies (a tool call,
/// then text once a tool result came back; a JSON object). The `status-503` entry fails every
/// call, so the next entry answers.
const ALIASES: &str = "aliases:
  mana/mixed: {chain: [ollama/qwen2.5:7b, openai/mock-model]}
  mana/fallback: {chain: [ollama/status-503, openai/mock-model]}
  mana/tools: {chain: [ollama/qwen2.5-calls-get_weather, openai/calls-get_weather]}
  mana/tools-fallback: {chain: [ollama/status-503, openai/calls-get_weather]}
  mana/json: {chain: [ollama/qwen2.5-json-weather, openai/json-weather]}
  mana/embed: {chain: [ollama/nomic-embed-text, openai/text-embedding-3-small]}
  mana/slow: {chain: [ollama/pieces-200-every-50ms, openai/pieces-200-every-50ms]}
default: mana/mixed
";

/// A deadline per client: installs are done beforehand, so each run takes seconds.
const DEADLINE: Duration = Duration::from_secs(120);

fn gateway(mock: &MockProvider) -> Gateway {
    Gateway::builder()
        .mock(mock)
        .aliases(ALIASES)
        .env("GPU_API_KEY", KEY)
        .env("CORS_ORIGINS", "*")
        // The fallback aliases fail their Ollama entry on every call by design; with the default
        // threshold the Ollama breaker would open and the other aliases would skip their
        // Ollama entries too, leaving translation untested.
        .env("MANA_LLM_BREAKER_FAILURES", "1000")
        .start()
}

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// target/clients-node, with its node_modules, and the scripts copied next to it (ES modules
/// resolve packages from the importing file's folder upwards). Copied once per test process.
pub fn node_scripts() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let node = std::env::var_os("MANA_LLM_TEST_NODE_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| repo().join("target/clients-node"));
        assert!(
            node.join("node_modules/openai").is_dir(),
            "{} has no node_modules: run scripts/test, which installs tests/clients/package-lock.json there",
            node.display()
        );
        let scripts = node.join("scripts");
        std::fs::create_dir_all(&scripts).unwrap();
        for entry in std::fs::read_dir(repo().join("tests/clients")).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "mjs") {
                std::fs::copy(&path, scripts.join(path.file_name().unwrap())).unwrap();
            }
        }
        scripts
    })
}

/// Runs a client script to its end (or the deadline) and returns its stdout; fails the test
/// with everything it printed, and the gateway's log, unless it ends with "CLIENT OK <name>".
async fn run_client(gw: &Gateway, name: &str, program: &str, script: &Path) -> String {
    let mut command = tokio::process::Command::new(program);
    command
        .arg(script)
        .env("MANA_LLM_URL", &gw.url)
        .env("MANA_LLM_KEY", KEY)
        .kill_on_drop(true);
    let output = tokio::time::timeout(DEADLINE, command.output())
        .await
        .unwrap_or_else(|_| panic!("{name}: no result within {DEADLINE:?}"))
        .unwrap_or_else(|e| panic!("{name}: cannot run {program}: {e}"));
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() && stdout.contains(&format!("CLIENT OK {name} ")),
        "{name} failed ({}):\n{stdout}\n{stderr}\ngateway logs:\n{}",
        output.status,
        gw.logs()
    );
    stdout
}

/// The gateway fell back from the failing Ollama entry to the OpenAI-compatible one.
async fn assert_fell_back(gw: &Gateway) {
    let metrics = gw
        .send(client().get(gw.url("/metrics")).bearer_auth(KEY))
        .await
        .text;
    let fallbacks = metric(
        &metrics,
        "mana_llm_fallback_total",
        &[
            "from_model=\"ollama/status-503\"",
            "reason=\"upstream_5xx\"",
        ],
    );
    assert!(fallbacks.is_some_and(|n| n >= 1.0), "{metrics}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openai_node_sdk() {
    let mock = MockProvider::start().await;
    let gw = gateway(&mock);
    let script = node_scripts().join("openai_node.mjs");
    let out = run_client(&gw, "openai-node", "node", &script).await;
    assert!(out.contains("aborted after 2 chunks"), "{out}");
    // The abort reached the upstream: the gateway dropped the mock's stream.
    assert!(
        eventually(Duration::from_secs(10), || mock.streams_closed_early() >= 1).await,
        "the mock never saw its stream closed early"
    );
    assert_fell_back(&gw).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_vercel_ai_sdk_with_both_providers() {
    let mock = MockProvider::start().await;
    let gw = gateway(&mock);
    run_client(&gw, "ai-sdk", "node", &node_scripts().join("ai_sdk.mjs")).await;
    assert_fell_back(&gw).await;
    // `@ai-sdk/openai` defaults to the Responses API: it was used, not chat completions.
    assert!(
        gw.logs().contains("path=\"/v1/responses\" status=200"),
        "{}",
        gw.logs()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn langchain_python() {
    let mock = MockProvider::start().await;
    let gw = gateway(&mock);
    let python = std::env::var("MANA_LLM_TEST_PYTHON").unwrap_or_else(|_| {
        repo()
            .join("target/sdk-venv/bin/python")
            .display()
            .to_string()
    });
    let script = repo().join("tests/clients/langchain_check.py");
    run_client(&gw, "langchain", &python, &script).await;
    assert_fell_back(&gw).await;
    // OpenAIEmbeddings sent token ids, which the Ollama entry cannot take: skipped, not called.
    assert_eq!(mock.calls(Route::OllamaEmbed), 0);
    let sent = mock.requests(Route::OpenAiEmbeddings);
    assert!(!sent.is_empty());
    for request in sent {
        let input = request.body["input"].as_array().unwrap().clone();
        assert!(
            input.iter().all(|i| i
                .as_array()
                .is_some_and(|ids| ids.iter().all(Value::is_u64))),
            "not token ids: {}",
            request.body
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_browser_page_on_another_origin() {
    let mock = MockProvider::start().await;
    let gw = gateway(&mock);
    run_client(&gw, "browser", "node", &node_scripts().join("browser.mjs")).await;
    assert_fell_back(&gw).await;
}
