//! The official OpenAI Python SDK drives every endpoint, through echo and through the mock.
//! `scripts/test` installs it into a virtualenv and points `MANA_LLM_TEST_PYTHON` at it.

use std::process::Command;

use mana_llm_mock::MockProvider;

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openai_python_sdk_works_against_the_gateway() {
    let mock = MockProvider::start().await;
    let gw = Gateway::with_mock(&mock);
    let python = std::env::var("MANA_LLM_TEST_PYTHON").unwrap_or_else(|_| "python3".to_owned());
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/sdk/openai_sdk_check.py");
    let base = gw.url("/v1");
    // (set MANA_LLM_TEST_PYTHON or run scripts/test, which installs the SDK)
    let output = tokio::task::spawn_blocking(move || {
        output_within(
            Command::new(&python).arg(script).arg(base).args([
                "echo/sdk",
                "groq/mock-model",
                "ollama/qwen2.5:7b",
                "google/gemini-2.5-flash",
            ]),
            std::time::Duration::from_secs(120),
        )
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "SDK check failed:\n{stdout}\n{stderr}\ngateway logs:\n{}",
        gw.logs()
    );
    assert!(stdout.contains("SDK OK 4 models"), "{stdout}");
}
