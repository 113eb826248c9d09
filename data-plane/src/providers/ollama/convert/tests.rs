use super::*;

fn request(v: Value) -> ChatRequest {
    serde_json::from_value(v).unwrap()
}

fn body(v: Value) -> Result<Value, UpstreamError> {
    chat_body(&request(v), "m:7b", false)
}

fn param(e: UpstreamError) -> Option<String> {
    match e {
        UpstreamError::InvalidRequest { param, .. } => param,
        other => panic!("expected InvalidRequest, got {other:?}"),
    }
}

fn response(v: Value) -> ChatResponse {
    serde_json::from_value(v).unwrap()
}

#[test]
fn simple_messages() {
    let b = body(json!({"messages": [
        {"role": "developer", "content": "be brief"},
        {"role": "system", "content": "sys"},
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": null}
    ]}))
    .unwrap();
    assert_eq!(
        b,
        json!({"model": "m:7b", "stream": false, "messages": [
            {"role": "system", "content": "be brief"},
            {"role": "system", "content": "sys"},
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": ""}
        ]})
    );
    let streamed = chat_body(
        &request(json!({"messages": [{"role": "user", "content": "x"}]})),
        "m",
        true,
    )
    .unwrap();
    assert_eq!(streamed["stream"], true);
}

#[test]
fn data_url_images_go_to_images() {
    let b = body(json!({"messages": [{"role": "user", "content": [
        {"type": "text", "text": "a"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
        {"type": "text", "text": "b"},
        {"type": "image_url", "image_url": {"url": "DATA:image/jpeg;BASE64,BBBB", "detail": "low"}}
    ]}]}))
    .unwrap();
    assert_eq!(
        b["messages"][0],
        json!({"role": "user", "content": "a b", "images": ["AAAA", "BBBB"]})
    );
}

#[test]
fn images_ollama_cannot_take_are_refused_with_their_param() {
    let e = body(json!({"messages": [
        {"role": "user", "content": "first"},
        {"role": "user", "content": [
            {"type": "text", "text": "look"},
            {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}
        ]}
    ]}))
    .unwrap_err();
    // A limit of ollama, not a bad request: an alias skips to an entry that takes URLs.
    assert!(
        matches!(&e, UpstreamError::Capability(m) if m.contains("cannot fetch image URLs")
            && m.contains("messages[1].content[1].image_url.url")),
        "{e:?}"
    );
    for url in [
        "data:image/png,raw",
        "data:image/png;base64,",
        "file:///x.png",
    ] {
        let e = body(json!({"messages": [{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": url}}
        ]}]}))
        .unwrap_err();
        assert_eq!(
            param(e).as_deref(),
            Some("messages[0].content[0].image_url.url"),
            "{url}"
        );
    }
    let e = body(json!({"messages": [{"role": "user", "content": [
        {"type": "input_audio", "input_audio": {"data": "AA", "format": "wav"}}
    ]}]}))
    .unwrap_err();
    assert!(e.to_string().contains("input_audio"), "{e}");
    assert_eq!(param(e).as_deref(), Some("messages[0].content[0].type"));
}

#[test]
fn tool_history() {
    let b = body(json!({"messages": [
        {"role": "user", "content": "weather?"},
        {"role": "assistant", "content": null, "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "get_w", "arguments": "{\"city\":\"Berlin\"}"}},
            {"id": "c2", "type": "function", "function": {"name": "now", "arguments": ""}}
        ]},
        {"role": "tool", "tool_call_id": "c1", "content": "12C"},
        {"role": "tool", "tool_call_id": "unknown", "content": "?"}
    ]}))
    .unwrap();
    assert_eq!(
        b["messages"][1],
        json!({"role": "assistant", "content": "", "tool_calls": [
            {"function": {"name": "get_w", "arguments": {"city": "Berlin"}}},
            {"function": {"name": "now", "arguments": {}}}
        ]})
    );
    assert_eq!(
        b["messages"][2],
        json!({"role": "tool", "content": "12C", "tool_call_id": "c1", "tool_name": "get_w"})
    );
    assert_eq!(
        b["messages"][3],
        json!({"role": "tool", "content": "?", "tool_call_id": "unknown"})
    );

    for bad in ["[1,2]", "{not json", "\"s\""] {
        let e = body(json!({"messages": [{"role": "assistant", "tool_calls": [
            {"id": "c", "type": "function", "function": {"name": "f", "arguments": bad}}
        ]}]}))
        .unwrap_err();
        assert_eq!(
            param(e).as_deref(),
            Some("messages[0].tool_calls[0].function.arguments")
        );
    }
}

#[test]
fn tools_are_sent_unless_tool_choice_is_none() {
    let mut v = json!({
        "messages": [{"role": "user", "content": "x"}],
        "tools": [
            {"type": "function", "function": {"name": "f", "description": "d", "parameters": {"type": "object"}}},
            {"type": "function", "function": {"name": "g"}}
        ],
        "tool_choice": "required"
    });
    assert_eq!(
        body(v.clone()).unwrap()["tools"],
        json!([
            {"type": "function", "function": {"name": "f", "description": "d", "parameters": {"type": "object"}}},
            {"type": "function", "function": {"name": "g"}}
        ])
    );
    v["tool_choice"] = json!("none");
    assert!(body(v.clone()).unwrap().get("tools").is_none());
    assert!(!sends_tools(&request(v)));
}

#[test]
fn options_mapping() {
    let b = body(json!({
        "messages": [{"role": "user", "content": "hi"}],
        "temperature": 0.5, "top_p": 0.9, "max_tokens": 50, "max_completion_tokens": 10,
        "stop": "x", "seed": 7, "frequency_penalty": 1.0, "presence_penalty": -0.5
    }))
    .unwrap();
    assert_eq!(
        b["options"],
        json!({"temperature": 0.5, "top_p": 0.9, "num_predict": 10, "stop": ["x"],
               "seed": 7, "frequency_penalty": 1.0, "presence_penalty": -0.5})
    );
    let b = body(json!({"messages": [{"role": "user", "content": "hi"}], "max_tokens": 5, "stop": ["a", "b"]}))
        .unwrap();
    assert_eq!(b["options"], json!({"num_predict": 5, "stop": ["a", "b"]}));
    let b = body(json!({"messages": [{"role": "user", "content": "hi"}]})).unwrap();
    assert!(b.get("options").is_none());
}

#[test]
fn response_format_mapping_in_both_modes() {
    let schema = json!({"type": "object", "properties": {"a": {"type": "integer"}}});
    let cases = [
        (json!({"type": "json_object"}), Some(json!("json"))),
        (
            json!({"type": "json_schema", "json_schema": {"name": "s", "schema": schema}}),
            Some(schema.clone()),
        ),
        (
            json!({"type": "json_schema", "json_schema": {"name": "s"}}),
            Some(json!("json")),
        ),
        (json!({"type": "text"}), None),
    ];
    for (format, expected) in cases {
        for stream in [false, true] {
            let r = request(json!({
                "messages": [{"role": "user", "content": "x"}],
                "response_format": format
            }));
            let b = chat_body(&r, "m", stream).unwrap();
            assert_eq!(
                b.get("format"),
                expected.as_ref(),
                "{format} stream={stream}"
            );
        }
    }
}

#[test]
fn plain_answer_is_kept_verbatim() {
    let fenced = "```json\n{\"a\":1}\n```";
    let c = completion(response(json!({
        "message": {"role": "assistant", "content": fenced},
        "done": true, "done_reason": "stop", "prompt_eval_count": 4, "eval_count": 6
    })))
    .unwrap();
    assert_eq!(c.object, "chat.completion");
    assert!(c.id.starts_with("chatcmpl-"));
    assert_eq!(c.model, "");
    let choice = &c.choices[0];
    assert_eq!(choice.message.content.as_deref(), Some(fenced));
    assert!(choice.message.tool_calls.is_none());
    assert_eq!(choice.finish_reason.as_deref(), Some("stop"));
    assert_eq!(c.usage, Some(Usage::new(4, 6)));

    let empty = completion(response(json!({"message": {"content": ""}, "done": true}))).unwrap();
    assert_eq!(empty.choices[0].message.content.as_deref(), Some(""));
    assert_eq!(empty.usage, Some(Usage::new(0, 0)));
}

#[test]
fn tool_call_answer() {
    let c = completion(response(json!({
        "message": {"role": "assistant", "content": "", "tool_calls": [
            {"function": {"name": "get_w", "arguments": {"city": "Berlin"}}},
            {"id": "up_1", "function": {"name": "raw", "arguments": "{\"a\":1}"}}
        ]},
        "done": true, "done_reason": "stop"
    })))
    .unwrap();
    let choice = &c.choices[0];
    assert_eq!(choice.message.content, None);
    assert_eq!(choice.finish_reason.as_deref(), Some("tool_calls"));
    let calls = choice.message.tool_calls.as_ref().unwrap();
    assert!(calls[0].id.starts_with("call_"));
    assert_eq!(calls[0].kind, "function");
    assert_eq!(calls[0].function.name, "get_w");
    assert_eq!(
        serde_json::from_str::<Value>(&calls[0].function.arguments).unwrap(),
        json!({"city": "Berlin"})
    );
    assert_eq!(calls[1].id, "up_1");
    assert_eq!(calls[1].function.arguments, "{\"a\":1}");
}

#[test]
fn length_and_errors() {
    let c = completion(response(json!({
        "message": {"content": "trunc"}, "done": true, "done_reason": "length"
    })))
    .unwrap();
    assert_eq!(c.choices[0].finish_reason.as_deref(), Some("length"));

    let e = completion(response(json!({"error": "model 'x' not found"}))).unwrap_err();
    assert!(matches!(&e, UpstreamError::Protocol(m) if m.contains("model 'x' not found")));
    assert!(matches!(
        completion(response(json!({"done": true}))),
        Err(UpstreamError::Protocol(_))
    ));
}

fn lines(state: &mut StreamState, lines: &[&str]) -> Vec<ChatChunk> {
    lines.iter().flat_map(|l| state.line(l).unwrap()).collect()
}

#[test]
fn stream_of_text() {
    let mut s = StreamState::new(true);
    let chunks = lines(
        &mut s,
        &[
            r#"{"message":{"role":"assistant","content":"Hel"},"done":false}"#,
            "",
            r#"{"message":{"role":"assistant","content":"lo"},"done":false}"#,
            r#"{"message":{"role":"assistant","content":""},"done":true,"done_reason":"stop","prompt_eval_count":3,"eval_count":2}"#,
        ],
    );
    assert_eq!(chunks.len(), 5);
    assert!(chunks
        .iter()
        .all(|c| c.id == chunks[0].id && c.created == chunks[0].created));
    assert_eq!(
        chunks[0].choices[0].delta.role.as_deref(),
        Some("assistant")
    );
    assert!(chunks[1..]
        .iter()
        .all(|c| c.choices.iter().all(|ch| ch.delta.role.is_none())));
    assert_eq!(chunks[1].choices[0].delta.content.as_deref(), Some("Hel"));
    assert_eq!(chunks[2].choices[0].delta.content.as_deref(), Some("lo"));
    assert_eq!(chunks[3].choices[0].finish_reason.as_deref(), Some("stop"));
    assert!(chunks[3].choices[0].delta.content.is_none());
    assert!(chunks[4].choices.is_empty());
    assert_eq!(chunks[4].usage, Some(Usage::new(3, 2)));
    assert!(s.is_done());
    s.end().unwrap();
    assert_ne!(
        StreamState::new(false).id,
        s.id,
        "ids are unique per stream"
    );
}

#[test]
fn stream_of_tool_calls_and_length() {
    let mut s = StreamState::new(false);
    let chunks = lines(
        &mut s,
        &[
            r#"{"message":{"role":"assistant","content":"","tool_calls":[{"function":{"name":"a","arguments":{"x":1}}}]},"done":false}"#,
            r#"{"message":{"role":"assistant","content":"","tool_calls":[{"function":{"name":"b","arguments":{}}}]},"done":false}"#,
            r#"{"message":{"role":"assistant","content":""},"done":true,"done_reason":"stop"}"#,
        ],
    );
    assert_eq!(chunks.len(), 4, "role, two tool calls, finish; no usage");
    let call = |i: usize| &chunks[i].choices[0].delta.tool_calls.as_ref().unwrap()[0];
    assert_eq!((call(1).index, call(2).index), (0, 1));
    let f = call(1).function.as_ref().unwrap();
    assert_eq!(f.name.as_deref(), Some("a"));
    assert_eq!(f.arguments.as_deref(), Some("{\"x\":1}"));
    assert!(call(1).id.as_deref().unwrap().starts_with("call_"));
    assert_eq!(
        chunks[3].choices[0].finish_reason.as_deref(),
        Some("tool_calls")
    );

    let mut s = StreamState::new(false);
    let chunks = lines(
        &mut s,
        &[r#"{"message":{"content":"x"},"done":true,"done_reason":"length"}"#],
    );
    assert_eq!(chunks.len(), 3);
    assert_eq!(chunks[1].choices[0].delta.content.as_deref(), Some("x"));
    assert_eq!(
        chunks[2].choices[0].finish_reason.as_deref(),
        Some("length")
    );
}

#[test]
fn stream_errors() {
    let mut s = StreamState::new(false);
    let e = s.line(r#"{"error":"out of memory"}"#).unwrap_err();
    assert!(matches!(&e, UpstreamError::Protocol(m) if m.contains("out of memory")));
    assert!(!s.started, "no role chunk before an error");
    assert!(matches!(s.line("{nope"), Err(UpstreamError::Protocol(_))));

    let mut s = StreamState::new(false);
    lines(&mut s, &[r#"{"message":{"content":"a"},"done":false}"#]);
    assert!(!s.is_done());
    assert!(matches!(s.end(), Err(UpstreamError::Protocol(m)) if m == "stream ended before done"));
}

#[test]
fn tool_capable_models() {
    for yes in [
        "qwen2.5:7b",
        "Llama3.1:8b",
        "llama3.3",
        "mistral-nemo",
        "qwen3:30b-a3b",
        "gpt-oss:20b",
        "hf.co/x/Hermes3-GGUF",
        "phi4-mini",
    ] {
        assert!(tool_capable(yes), "{yes}");
    }
    for no in ["gemma3:4b", "llava:7b", "phi4", "llama2", ""] {
        assert!(!tool_capable(no), "{no}");
    }
}

#[test]
fn embed_bodies() {
    let texts = vec!["a".to_owned(), "b".to_owned()];
    assert_eq!(
        embed_body("nomic", &texts, Some(64)),
        json!({"model": "nomic", "input": ["a", "b"], "dimensions": 64})
    );
    assert!(embed_body("nomic", &texts, None)
        .get("dimensions")
        .is_none());
}

#[test]
fn timestamps() {
    assert_eq!(unix_seconds("1970-01-01T00:00:00Z"), Some(0));
    assert_eq!(unix_seconds("2026-01-01T00:00:00Z"), Some(1_767_225_600));
    assert_eq!(unix_seconds("2000-02-29T12:34:56.789Z"), Some(951_827_696));
    assert_eq!(
        unix_seconds("2024-05-13T11:28:33.960536626-07:00"),
        Some(1_715_624_913)
    );
    assert_eq!(
        unix_seconds("2024-05-13T19:28:33+02:00"),
        Some(1_715_624_913 - 3600)
    );
    for bad in [
        "",
        "2024-05-13",
        "2024-05-13T11:28:33",
        "2024-13-01T00:00:00Z",
        "2023-02-29T00:00:00Z",
        "2024-05-13T24:00:00Z",
        "2024-05-13T11:28:33.Z",
        "2024-05-13T11:28:33+0200",
        "1969-12-31T23:59:59Z",
        "2024-05-13T11:28:33Zjunk",
        "2024-05-1é11:28:33Z",
    ] {
        assert_eq!(unix_seconds(bad), None, "{bad}");
    }
}
