//! Metric labels as designed (DESIGN §9): a model keeps its own label only when the registry
//! names it or its provider lists it; names clients make up are `other`, however many.

use std::time::Duration;

use crate::support::*;

#[tokio::test]
async fn two_hundred_random_model_names_do_not_take_a_listed_models_label() {
    // The probe is on so the worker lists its providers' models (echo lists `echo/echo`);
    // no other provider is configured.
    let gw = Gateway::builder()
        .env("MANA_LLM_PROBE", "on")
        .env("MANA_LLM_PROBE_INTERVAL", "0.2")
        .start();
    let names: Vec<String> = (0..200)
        .map(|i| format!("echo/r{i:x}-{}", i * 7919))
        .collect();
    for name in &names {
        let r = gw.post("/v1/chat/completions", chat(name, "hi")).await;
        assert_eq!(r.status, 200, "{name}: {}", r.text);
    }
    let listed = "model=\"echo\",provider=\"echo\"";
    let labelled = eventually_async(Duration::from_secs(10), || async {
        let r = gw
            .post("/v1/chat/completions", chat("echo/echo", "hi"))
            .await;
        assert_eq!(r.status, 200, "{}", r.text);
        let text = gw.get("/metrics").await.text;
        metric(&text, "mana_llm_llm_requests_total", &[listed]).is_some()
    })
    .await;
    let text = gw.get("/metrics").await.text;
    assert!(labelled, "the listed model never got its label:\n{text}");
    let other = "model=\"other\",provider=\"echo\"";
    assert_eq!(
        metric(&text, "mana_llm_llm_requests_total", &[other]),
        Some(200.0),
        "{text}"
    );
    assert!(
        !text.contains("model=\"r"),
        "a random name became a label:\n{text}"
    );
    let series = text
        .lines()
        .filter(|l| l.starts_with("mana_llm_llm_requests_total{"))
        .count();
    assert_eq!(series, 2, "{text}");
}
