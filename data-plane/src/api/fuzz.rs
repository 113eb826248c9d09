//! Property tests that stay: whatever bytes a client sends as a chat or embeddings body, the
//! extractor and the validation answer `Ok` or an OpenAI-shaped 400/413, never a panic; and
//! a well-formed request with arbitrary values is refused only with a named field. A failing
//! case found here is kept as a regression test. `PROPTEST_CASES=100000 cargo test -p
//! mana-llm-data-plane fuzz` runs a long session.

use proptest::prelude::*;
use serde_json::{json, Value};

use super::body::parse;
use crate::openai::{ChatRequest, EmbeddingsRequest};

/// JSON values of any shape, nested a little.
fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(|f| json!(f)),
        "\\PC{0,20}".prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 64, 8, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::from),
            proptest::collection::btree_map(
                prop_oneof![
                    Just("model".to_owned()),
                    Just("messages".to_owned()),
                    Just("role".to_owned()),
                    Just("content".to_owned()),
                    Just("tools".to_owned()),
                    Just("temperature".to_owned()),
                    Just("stream".to_owned()),
                    Just("input".to_owned()),
                    Just("image_url".to_owned()),
                    Just("type".to_owned()),
                    "[a-z_]{1,8}",
                ],
                inner,
                0..6
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn check_chat(bytes: &[u8]) {
    if let Ok(request) = parse::<ChatRequest>(bytes) {
        let _ = request.validate();
        let _ = request.needs_tools();
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn any_bytes_are_a_request_or_a_400(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        check_chat(&bytes);
        if let Ok(request) = parse::<EmbeddingsRequest>(&bytes) {
            let _ = request.validate();
        }
    }

    #[test]
    fn any_json_is_a_request_or_a_400(value in any_json()) {
        let bytes = serde_json::to_vec(&value).unwrap_or_default();
        check_chat(&bytes);
        if let Ok(request) = parse::<EmbeddingsRequest>(&bytes) {
            let _ = request.validate();
        }
    }

    #[test]
    fn chat_shaped_json_is_accepted_or_refused_naming_a_field(
        messages in proptest::collection::vec((prop_oneof![Just("user"), Just("system"), Just("assistant"), Just("tool"), Just("x")], any_json()), 0..4),
        temperature in any_json(),
    ) {
        let body = json!({
            "model": "echo/x",
            "temperature": temperature,
            "messages": messages.iter().map(|(role, content)| json!({"role": role, "content": content})).collect::<Vec<_>>(),
        });
        let bytes = serde_json::to_vec(&body).unwrap_or_default();
        let refused = match parse::<ChatRequest>(&bytes) {
            Ok(request) => request.validate().err().map(crate::error::ApiError::from),
            Err(e) => Some(e),
        };
        if let Some(e) = refused {
            let b = e.body();
            prop_assert_eq!(e.status_code().as_u16(), 400, "{}", b);
            prop_assert!(b["error"]["message"].as_str().is_some_and(|m| !m.is_empty()), "{}", b);
        }
    }
}
