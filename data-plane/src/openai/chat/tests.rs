use super::validate::validate_tool_choice;
use super::*;
use serde_json::json;

fn parse(v: Value) -> ChatRequest {
    serde_json::from_value(v).unwrap()
}

#[test]
fn unknown_fields_are_kept_and_forwarded() {
    let req = parse(json!({
        "model": "groq/x", "messages": [{"role": "user", "content": "hi"}],
        "logprobs": true, "user": "u1", "parallel_tool_calls": false
    }));
    let out = serde_json::to_value(&req).unwrap();
    assert_eq!(out["logprobs"], json!(true));
    assert_eq!(out["user"], json!("u1"));
    assert_eq!(out["parallel_tool_calls"], json!(false));
    assert!(
        out.get("model").is_none(),
        "model is rewritten per provider"
    );
}

#[test]
fn content_accepts_string_parts_and_null() {
    let req = parse(json!({"messages": [
        {"role": "user", "content": "plain"},
        {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "image_url", "image_url": {"url": "data:image/png;base64,AA"}}]},
        {"role": "assistant", "content": null, "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]}
    ]}));
    assert!(matches!(req.messages[0].content, Some(Content::Text(_))));
    assert!(matches!(&req.messages[1].content, Some(Content::Parts(p)) if p.len() == 2));
    assert!(req.messages[2].content.is_none());
    req.validate().unwrap();
}

#[test]
fn content_of_the_wrong_type_is_rejected() {
    let err = serde_json::from_value::<ChatRequest>(
        json!({"messages": [{"role": "user", "content": 42}]}),
    )
    .unwrap_err();
    assert!(
        err.to_string().contains("content must be a string"),
        "{err}"
    );
}

#[test]
fn ranges_are_checked() {
    let mut req = parse(json!({"messages": [{"role": "user", "content": "x"}]}));
    req.temperature = Some(3.0);
    assert!(req.validate().is_err());
    req.temperature = Some(0.0);
    req.validate().unwrap();
    req.top_p = Some(1.5);
    assert!(req.validate().is_err());
}

#[test]
fn empty_messages_are_rejected() {
    let req = parse(json!({"messages": []}));
    assert!(req.validate().is_err());
}

#[test]
fn tool_choice_shapes() {
    for ok in [
        json!("auto"),
        json!("none"),
        json!("required"),
        json!({"type": "function", "function": {"name": "f"}}),
    ] {
        validate_tool_choice(&ok).unwrap();
    }
    for bad in [json!("sometimes"), json!(3), json!({"type": "function"})] {
        assert!(validate_tool_choice(&bad).is_err());
    }
}
