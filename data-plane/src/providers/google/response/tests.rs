use super::*;
use crate::openai::ChatChunk;
use serde_json::json;

fn parse(v: Value) -> GenerateResponse {
    serde_json::from_value(v).unwrap()
}

#[test]
fn text_and_usage() {
    let c = completion(parse(json!({
        "candidates": [{"index": 0, "content": {"role": "model", "parts": [
            {"text": "thinking…", "thought": true}, {"text": "Hello "}, {"text": "world"}
        ]}, "finishReason": "STOP"}],
        "usageMetadata": {"promptTokenCount": 5, "candidatesTokenCount": 3, "thoughtsTokenCount": 4, "totalTokenCount": 12},
        "modelVersion": "gemini-2.5-flash"
    })))
    .unwrap();
    assert!(c.id.starts_with("chatcmpl-"));
    assert_eq!(c.object, "chat.completion");
    assert_eq!(c.model, "");
    assert_eq!(c.choices.len(), 1);
    assert_eq!(c.choices[0].message.content.as_deref(), Some("Hello world"));
    assert!(c.choices[0].message.tool_calls.is_none());
    assert_eq!(c.choices[0].finish_reason.as_deref(), Some("stop"));
    assert_eq!(
        c.usage,
        Some(Usage {
            prompt_tokens: 5,
            completion_tokens: 7,
            total_tokens: 12,
            // Gemini's thinking tokens, where OpenAI reports reasoning tokens.
            extra: serde_json::from_value(json!({"completion_tokens_details": {
                "reasoning_tokens": 4, "audio_tokens": 0,
                "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0
            }}))
            .unwrap(),
        })
    );
    let c = completion(parse(json!({
        "candidates": [{"content": {"parts": [{"text": "x"}]}}],
        "usageMetadata": {"promptTokenCount": 2, "candidatesTokenCount": 1}
    })))
    .unwrap();
    assert_eq!(c.usage, Some(Usage::new(2, 1)));
    assert_eq!(c.choices[0].finish_reason.as_deref(), Some("stop"));
}

#[test]
fn function_calls_become_tool_calls() {
    let c = completion(parse(json!({"candidates": [{"content": {"parts": [
        {"functionCall": {"name": "get_weather", "args": {"city": "Berlin"}}},
        {"functionCall": {"name": "now"}}
    ]}, "finishReason": "STOP"}]})))
    .unwrap();
    let choice = &c.choices[0];
    assert_eq!(choice.finish_reason.as_deref(), Some("tool_calls"));
    assert_eq!(choice.message.content, None);
    let calls = choice.message.tool_calls.as_ref().unwrap();
    assert_eq!(calls.len(), 2);
    assert!(calls[0].id.starts_with("call_"));
    assert_ne!(calls[0].id, calls[1].id);
    assert_eq!(calls[0].kind, "function");
    assert_eq!(calls[0].function.name, "get_weather");
    assert_eq!(
        serde_json::from_str::<Value>(&calls[0].function.arguments).unwrap(),
        json!({"city": "Berlin"})
    );
    assert_eq!(calls[1].function.arguments, "{}");
}

#[test]
fn max_tokens_is_length_not_an_error() {
    let c = completion(parse(json!({"candidates": [
        {"content": {"parts": [{"text": "cut"}]}, "finishReason": "MAX_TOKENS"}
    ]})))
    .unwrap();
    assert_eq!(c.choices[0].finish_reason.as_deref(), Some("length"));
    let c = completion(parse(
        json!({"candidates": [{"finishReason": "MAX_TOKENS"}]}),
    ))
    .unwrap();
    assert_eq!(c.choices[0].finish_reason.as_deref(), Some("length"));
    assert_eq!(c.choices[0].message.content.as_deref(), Some(""));
}

#[test]
fn blocks() {
    let err = completion(parse(
        json!({"candidates": [{"finishReason": "SAFETY", "safetyRatings": [
            {"category": "HARM_CATEGORY_HARASSMENT", "probability": "HIGH", "blocked": true},
            {"category": "HARM_CATEGORY_HATE_SPEECH", "probability": "LOW"},
            {"category": "HARM_CATEGORY_DANGEROUS_CONTENT", "probability": "HIGH", "blocked": true}
        ]}]}),
    ))
    .unwrap_err();
    match err {
        UpstreamError::Blocked { reason } => assert_eq!(
            reason,
            "SAFETY: HARM_CATEGORY_HARASSMENT, HARM_CATEGORY_DANGEROUS_CONTENT"
        ),
        other => panic!("{other:?}"),
    }
    let err = completion(parse(
        json!({"candidates": [{"finishReason": "RECITATION"}]}),
    ));
    assert!(matches!(err, Err(UpstreamError::Blocked { reason }) if reason == "RECITATION"));
    let err = completion(parse(
        json!({"promptFeedback": {"blockReason": "SAFETY"}, "usageMetadata": {"promptTokenCount": 3}}),
    ));
    assert!(
        matches!(err, Err(UpstreamError::Blocked { reason }) if reason == "prompt blocked: SAFETY")
    );
    let c = completion(parse(json!({"candidates": [
        {"content": {"parts": [{"text": "partial"}]}, "finishReason": "SAFETY"}
    ]})))
    .unwrap();
    assert_eq!(
        c.choices[0].finish_reason.as_deref(),
        Some("content_filter")
    );
    assert_eq!(c.choices[0].message.content.as_deref(), Some("partial"));
}

#[test]
fn empty_and_broken_answers_are_protocol_errors() {
    let err = completion(parse(
        json!({"candidates": [{"finishReason": "MALFORMED_FUNCTION_CALL"}]}),
    ));
    assert!(
        matches!(&err, Err(UpstreamError::Protocol(m)) if m == "Gemini returned no content (finishReason=MALFORMED_FUNCTION_CALL)"),
        "{err:?}"
    );
    assert!(matches!(
        completion(parse(json!({}))),
        Err(UpstreamError::Protocol(_))
    ));
    let err = completion(parse(
        json!({"error": {"code": 500, "message": "internal"}}),
    ));
    assert!(
        matches!(&err, Err(UpstreamError::Protocol(m)) if m.contains("internal")),
        "{err:?}"
    );
}

#[test]
fn several_candidates_become_several_choices() {
    let c = completion(parse(json!({"candidates": [
        {"index": 0, "content": {"parts": [{"text": "a"}]}, "finishReason": "STOP"},
        {"index": 1, "content": {"parts": [{"text": "b"}]}, "finishReason": "MAX_TOKENS"}
    ]})))
    .unwrap();
    assert_eq!(c.choices.len(), 2);
    assert_eq!(c.choices[1].index, 1);
    assert_eq!(c.choices[1].message.content.as_deref(), Some("b"));
    assert_eq!(c.choices[1].finish_reason.as_deref(), Some("length"));
}

fn run(include_usage: bool, payloads: &[Value]) -> Vec<Result<ChatChunk, UpstreamError>> {
    let mut state = StreamState::new(include_usage);
    let mut out = Vec::new();
    for p in payloads {
        match state.payload(&p.to_string()) {
            Ok(chunks) => out.extend(chunks.into_iter().map(Ok)),
            Err(e) => {
                out.push(Err(e));
                return out;
            }
        }
    }
    match state.end() {
        Ok(chunks) => out.extend(chunks.into_iter().map(Ok)),
        Err(e) => out.push(Err(e)),
    }
    out
}

fn ok(items: Vec<Result<ChatChunk, UpstreamError>>) -> Vec<ChatChunk> {
    items.into_iter().map(Result::unwrap).collect()
}

#[test]
fn stream_sequence() {
    let chunks = ok(run(
        true,
        &[
            json!({"candidates": [{"content": {"role": "model", "parts": [{"text": "Hel"}]}, "index": 0}]}),
            json!({"candidates": [{"content": {"parts": [{"text": "lo"}, {"functionCall": {"name": "f", "args": {"a": 1}}}]}}],
                   "usageMetadata": {"promptTokenCount": 5, "candidatesTokenCount": 1, "totalTokenCount": 6}}),
            json!({"candidates": [{"content": {"parts": [{"functionCall": {"name": "g"}}]}, "finishReason": "STOP"}],
                   "usageMetadata": {"promptTokenCount": 5, "candidatesTokenCount": 3, "totalTokenCount": 8}}),
        ],
    ));
    let id = &chunks[0].id;
    assert!(chunks
        .iter()
        .all(|c| &c.id == id && c.created == chunks[0].created));
    assert!(chunks.iter().all(|c| c.object == "chat.completion.chunk"));
    let roles = chunks
        .iter()
        .filter(|c| c.choices.first().is_some_and(|ch| ch.delta.role.is_some()))
        .count();
    assert_eq!(roles, 1);
    assert_eq!(
        chunks[0].choices[0].delta.role.as_deref(),
        Some("assistant")
    );
    assert_eq!(chunks[1].choices[0].delta.content.as_deref(), Some("Hel"));
    assert_eq!(chunks[2].choices[0].delta.content.as_deref(), Some("lo"));
    let call = &chunks[3].choices[0].delta.tool_calls.as_ref().unwrap()[0];
    assert_eq!(call.index, 0);
    assert!(call.id.as_deref().unwrap().starts_with("call_"));
    let function = call.function.as_ref().unwrap();
    assert_eq!(function.name.as_deref(), Some("f"));
    assert_eq!(function.arguments.as_deref(), Some(r#"{"a":1}"#));
    let call = &chunks[4].choices[0].delta.tool_calls.as_ref().unwrap()[0];
    assert_eq!(call.index, 1);
    assert_eq!(
        call.function.as_ref().unwrap().arguments.as_deref(),
        Some("{}")
    );
    assert_eq!(
        chunks[5].choices[0].finish_reason.as_deref(),
        Some("tool_calls")
    );
    assert!(chunks[5].usage.is_none());
    assert!(chunks[6].choices.is_empty());
    assert_eq!(chunks[6].usage, Some(Usage::new(5, 3)));
    assert_eq!(chunks.len(), 7);
}

#[test]
fn stream_without_usage_request_or_finish_reason() {
    let chunks = ok(run(
        false,
        &[
            json!({"candidates": [{"content": {"parts": [{"text": "hi"}]}}], "usageMetadata": {"promptTokenCount": 1}}),
        ],
    ));
    assert_eq!(chunks.len(), 3);
    assert_eq!(chunks[2].choices[0].finish_reason.as_deref(), Some("stop"));
    assert!(chunks.iter().all(|c| c.usage.is_none()));
}

#[test]
fn stream_length_and_late_safety_stop() {
    let chunks = ok(run(
        false,
        &[
            json!({"candidates": [{"content": {"parts": [{"text": "a"}]}, "finishReason": "MAX_TOKENS"}]}),
        ],
    ));
    assert_eq!(
        chunks.last().unwrap().choices[0].finish_reason.as_deref(),
        Some("length")
    );
    let chunks = ok(run(
        false,
        &[
            json!({"candidates": [{"content": {"parts": [{"text": "a"}]}}]}),
            json!({"candidates": [{"finishReason": "SAFETY"}]}),
        ],
    ));
    assert_eq!(chunks.len(), 3);
    assert_eq!(
        chunks[2].choices[0].finish_reason.as_deref(),
        Some("content_filter")
    );
}

#[test]
fn stream_failures() {
    let first_err = |payloads: &[Value]| {
        let items = run(true, payloads);
        assert!(items.last().unwrap().is_err(), "{items:?}");
        assert_eq!(items.len(), 1, "nothing before the error: {items:?}");
        items.into_iter().last().unwrap().unwrap_err()
    };
    assert!(matches!(
        first_err(&[json!({"promptFeedback": {"blockReason": "PROHIBITED_CONTENT"}})]),
        UpstreamError::Blocked { reason } if reason == "prompt blocked: PROHIBITED_CONTENT"
    ));
    assert!(matches!(
        first_err(&[json!({"candidates": [{"finishReason": "SAFETY", "safetyRatings": [{"category": "C", "blocked": true}]}]})]),
        UpstreamError::Blocked { reason } if reason == "SAFETY: C"
    ));
    assert!(matches!(
        first_err(&[json!({"error": {"message": "overloaded"}})]),
        UpstreamError::Protocol(m) if m.contains("overloaded")
    ));
    assert!(matches!(
        first_err(&[]),
        UpstreamError::Protocol(m) if m == "empty stream"
    ));
    assert!(matches!(
        first_err(&[json!({"usageMetadata": {"promptTokenCount": 1}})]),
        UpstreamError::Protocol(_)
    ));

    let mut state = StreamState::new(false);
    assert!(state.payload("").unwrap().is_empty());
    assert!(matches!(
        state.payload("{nope"),
        Err(UpstreamError::Protocol(_))
    ));
    let items = run(
        false,
        &[
            json!({"candidates": [{"content": {"parts": [{"text": "a"}]}}]}),
            json!({"error": {"message": "boom"}}),
        ],
    );
    assert_eq!(items.len(), 3);
    assert!(items[2].is_err());
}
