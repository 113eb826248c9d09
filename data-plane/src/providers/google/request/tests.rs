use super::*;

fn req(v: Value) -> ChatRequest {
    serde_json::from_value(v).unwrap()
}

fn body(v: Value) -> Value {
    generate_content(&req(v)).unwrap()
}

fn error(v: Value) -> (String, Option<String>) {
    match generate_content(&req(v)).unwrap_err() {
        UpstreamError::InvalidRequest { message, param } => (message, param),
        other => panic!("expected InvalidRequest, got {other:?}"),
    }
}

#[test]
fn system_and_developer_messages_become_one_instruction() {
    let b = body(json!({"messages": [
        {"role": "system", "content": "Be brief."},
        {"role": "developer", "content": [{"type": "text", "text": "Use German."}]},
        {"role": "user", "content": "hi"},
        {"role": "system", "content": ""}
    ]}));
    assert_eq!(
        b["systemInstruction"],
        json!({"parts": [{"text": "Be brief.\n\nUse German."}]})
    );
    assert_eq!(
        b["contents"],
        json!([{"role": "user", "parts": [{"text": "hi"}]}])
    );
    assert!(b.get("generationConfig").is_none());
    assert!(b.get("tools").is_none());
}

#[test]
fn roles_map_to_user_and_model_and_empty_messages_are_dropped() {
    let b = body(json!({"messages": [
        {"role": "user", "content": "a"},
        {"role": "assistant", "content": "b"},
        {"role": "assistant", "content": null},
        {"role": "user", "content": [{"type": "text", "text": "c"}, {"type": "text", "text": "d"}]}
    ]}));
    assert_eq!(
        b["contents"],
        json!([
            {"role": "user", "parts": [{"text": "a"}]},
            {"role": "model", "parts": [{"text": "b"}]},
            {"role": "user", "parts": [{"text": "c"}, {"text": "d"}]}
        ])
    );
}

#[test]
fn nothing_but_system_is_rejected() {
    let (message, param) = error(
        json!({"messages": [{"role": "system", "content": "x"}, {"role": "user", "content": ""}]}),
    );
    assert_eq!(message, "no user content to send");
    assert_eq!(param.as_deref(), Some("messages"));
}

#[test]
fn data_url_images_go_inline_with_their_mime() {
    let b = body(json!({"messages": [{"role": "user", "content": [
        {"type": "text", "text": "what is this"},
        {"type": "image_url", "image_url": {"url": "data:image/webp;base64,UklGRg=="}}
    ]}]}));
    assert_eq!(
        b["contents"][0]["parts"][1],
        json!({"inlineData": {"mimeType": "image/webp", "data": "UklGRg=="}})
    );
}

#[test]
fn http_images_are_fetched_by_gemini_with_a_guessed_mime() {
    let mime = |url: &str| {
        let b = body(json!({"messages": [{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": url}}
        ]}]}));
        assert_eq!(b["contents"][0]["parts"][0]["fileData"]["fileUri"], url);
        b["contents"][0]["parts"][0]["fileData"]["mimeType"].clone()
    };
    assert_eq!(mime("https://x.test/a/cat.PNG?size=2"), "image/png");
    assert_eq!(mime("https://x.test/cat.jpg"), "image/jpeg");
    assert_eq!(mime("http://x.test/cat.webp#frag"), "image/webp");
    assert_eq!(mime("https://x.test/cat.gif"), "image/gif");
    assert_eq!(mime("https://x.test/cat.heic"), "image/heic");
    assert_eq!(mime("https://x.test/cat"), "image/jpeg");
    assert_eq!(mime("https://x.test.v2/cat"), "image/jpeg");
}

#[test]
fn unsupported_parts_and_urls_name_their_place() {
    let (message, param) = error(json!({"messages": [
        {"role": "user", "content": "hi"},
        {"role": "user", "content": [{"type": "text", "text": "x"}, {"type": "input_audio", "input_audio": {}}]}
    ]}));
    assert!(message.contains("input_audio"), "{message}");
    assert_eq!(param.as_deref(), Some("messages[1].content[1]"));
    let (_, param) = error(json!({"messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "ftp://x.test/a.png"}}
    ]}]}));
    assert_eq!(param.as_deref(), Some("messages[0].content[0]"));
    let (message, _) = error(json!({"messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "data:image/png,rawbytes"}}
    ]}]}));
    assert!(message.contains("base64"), "{message}");
}

#[test]
fn tools_and_tool_choice() {
    let tools = json!([
        {"type": "function", "function": {"name": "get_weather", "description": "Weather",
         "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "additionalProperties": false}}},
        {"type": "function", "function": {"name": "now"}}
    ]);
    let with = |choice: Value| {
        let mut r = json!({"messages": [{"role": "user", "content": "hi"}], "tools": tools});
        if !choice.is_null() {
            r["tool_choice"] = choice;
        }
        body(r)
    };
    let b = with(Value::Null);
    assert_eq!(
        b["tools"],
        json!([{"functionDeclarations": [
            {"name": "get_weather", "description": "Weather",
             "parametersJsonSchema": {"type": "object", "properties": {"city": {"type": "string"}}, "additionalProperties": false}},
            {"name": "now"}
        ]}])
    );
    assert!(b.get("toolConfig").is_none());
    let mode = |choice: Value| with(choice)["toolConfig"]["functionCallingConfig"].clone();
    assert_eq!(mode(json!("auto")), json!({"mode": "AUTO"}));
    assert_eq!(mode(json!("none")), json!({"mode": "NONE"}));
    assert_eq!(mode(json!("required")), json!({"mode": "ANY"}));
    assert_eq!(
        mode(json!({"type": "function", "function": {"name": "now"}})),
        json!({"mode": "ANY", "allowedFunctionNames": ["now"]})
    );
}

#[test]
fn tool_history_becomes_function_calls_and_grouped_responses() {
    let b = body(json!({"messages": [
        {"role": "user", "content": "weather in Berlin and Paris?"},
        {"role": "assistant", "content": "Checking.", "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Berlin\"}"}},
            {"id": "c2", "type": "function", "function": {"name": "get_time", "arguments": ""}}
        ]},
        {"role": "tool", "tool_call_id": "c1", "content": "{\"temp\": 20}"},
        {"role": "tool", "tool_call_id": "c2", "content": "noon"},
        {"role": "tool", "tool_call_id": "unknown", "name": "legacy", "content": "[1,2]"},
        {"role": "user", "content": "thanks"}
    ]}));
    let contents = b["contents"].as_array().unwrap();
    assert_eq!(contents.len(), 4);
    assert_eq!(
        contents[1],
        json!({"role": "model", "parts": [
            {"text": "Checking."},
            {"functionCall": {"name": "get_weather", "args": {"city": "Berlin"}}, "thoughtSignature": SKIP_SIGNATURE},
            {"functionCall": {"name": "get_time", "args": {}}, "thoughtSignature": SKIP_SIGNATURE}
        ]})
    );
    assert_eq!(
        contents[2],
        json!({"role": "user", "parts": [
            {"functionResponse": {"name": "get_weather", "response": {"temp": 20}}},
            {"functionResponse": {"name": "get_time", "response": {"result": "noon"}}},
            {"functionResponse": {"name": "legacy", "response": {"result": [1, 2]}}}
        ]})
    );
    assert_eq!(
        contents[3],
        json!({"role": "user", "parts": [{"text": "thanks"}]})
    );
}

#[test]
fn a_trailing_tool_turn_is_sent_and_orphans_are_rejected() {
    let b = body(json!({"messages": [
        {"role": "user", "content": "x"},
        {"role": "assistant", "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "c1", "content": "ok"}
    ]}));
    assert_eq!(
        b["contents"][2]["parts"][0]["functionResponse"]["name"],
        "f"
    );
    let (_, param) = error(json!({"messages": [
        {"role": "user", "content": "x"},
        {"role": "tool", "tool_call_id": "nope", "content": "ok"}
    ]}));
    assert_eq!(param.as_deref(), Some("messages[1].tool_call_id"));
}

#[test]
fn bad_tool_call_arguments_are_rejected() {
    for args in ["{not json", "[1]"] {
        let (_, param) = error(json!({"messages": [
            {"role": "user", "content": "x"},
            {"role": "assistant", "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": args}}]}
        ]}));
        assert_eq!(
            param.as_deref(),
            Some("messages[1].tool_calls[0].function.arguments")
        );
    }
}

#[test]
fn generation_config_carries_sampling_stop_and_schema() {
    let schema =
        json!({"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]});
    let b = body(json!({
        "messages": [{"role": "user", "content": "x"}],
        "temperature": 0.5, "top_p": 0.9, "max_completion_tokens": 100, "max_tokens": 7,
        "stop": ["END", "STOP"], "presence_penalty": 0.1, "frequency_penalty": -0.2,
        "seed": 42, "n": 2,
        "response_format": {"type": "json_schema", "json_schema": {"name": "r", "schema": schema}}
    }));
    assert_eq!(
        b["generationConfig"],
        json!({
            "temperature": 0.5, "topP": 0.9, "maxOutputTokens": 100,
            "stopSequences": ["END", "STOP"], "presencePenalty": 0.1, "frequencyPenalty": -0.2,
            "seed": 42, "candidateCount": 2,
            "responseMimeType": "application/json", "responseJsonSchema": schema
        })
    );
}

#[test]
fn response_formats_and_single_values() {
    let config = |extra: Value| {
        let mut r = json!({"messages": [{"role": "user", "content": "x"}]});
        for (k, v) in extra.as_object().unwrap() {
            r[k] = v.clone();
        }
        body(r).get("generationConfig").cloned()
    };
    assert_eq!(
        config(json!({"response_format": {"type": "json_object"}, "stop": "END", "n": 1})),
        Some(json!({"responseMimeType": "application/json", "stopSequences": ["END"]}))
    );
    assert_eq!(config(json!({"response_format": {"type": "text"}})), None);
}
