use serde_json::{json, Value};

use super::*;
use crate::openai::{ChatChunk, Delta, FunctionCallDelta, ToolCallDelta, Usage};

fn request(body: Value) -> ResponsesRequest {
    serde_json::from_value(body).unwrap()
}

fn chat(body: Value) -> Value {
    serde_json::to_value(request(body).to_chat().unwrap()).unwrap()
}

#[test]
fn a_string_input_is_one_user_message_after_the_instructions() {
    let c = chat(
        json!({"model": "m", "input": "hi", "instructions": "be brief",
        "max_output_tokens": 50, "temperature": 0.2, "top_p": 0.9}),
    );
    assert_eq!(
        c["messages"],
        json!([{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}])
    );
    assert_eq!(c["max_tokens"], 50);
    assert_eq!(c["temperature"], 0.2);
    assert_eq!(c["top_p"], 0.9);
}

#[test]
fn items_become_chat_messages_with_calls_joined_to_their_turn() {
    let c = chat(json!({"input": [
        {"role": "user", "content": [
            {"type": "input_text", "text": "what is this?"},
            {"type": "input_image", "image_url": "https://x/cat.png", "detail": "low"}]},
        {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "Let me look."}]},
        {"type": "function_call", "call_id": "call_1", "name": "lookup", "arguments": "{\"q\":1}"},
        {"type": "function_call", "call_id": "call_2", "name": "lookup", "arguments": "{}"},
        {"type": "reasoning", "id": "rs_1", "summary": []},
        {"type": "function_call_output", "call_id": "call_1", "output": "one"},
        {"type": "function_call_output", "call_id": "call_2", "output": [{"type": "input_text", "text": "two"}]}
    ]}));
    let m = &c["messages"];
    assert_eq!(m.as_array().unwrap().len(), 4, "{m}");
    assert_eq!(
        m[0]["content"][1]["image_url"],
        json!({"url": "https://x/cat.png", "detail": "low"})
    );
    assert_eq!(m[1]["role"], "assistant");
    assert_eq!(m[1]["content"], "Let me look.");
    assert_eq!(m[1]["tool_calls"][0]["id"], "call_1");
    assert_eq!(m[1]["tool_calls"][1]["function"]["name"], "lookup");
    assert_eq!(
        m[2],
        json!({"role": "tool", "tool_call_id": "call_1", "content": "one"})
    );
    assert_eq!(m[3]["content"], "two");
}

#[test]
fn function_tools_choice_and_json_schema_translate() {
    let c = chat(json!({"input": "x",
        "tools": [{"type": "function", "name": "f", "description": "d", "parameters": {"type": "object"}, "strict": true}],
        "tool_choice": {"type": "function", "name": "f"},
        "text": {"format": {"type": "json_schema", "name": "out", "schema": {"type": "object"}, "strict": true}}}));
    assert_eq!(
        c["tools"],
        json!([{"type": "function", "function": {"name": "f", "description": "d", "parameters": {"type": "object"}, "strict": true}}])
    );
    assert_eq!(
        c["tool_choice"],
        json!({"type": "function", "function": {"name": "f"}})
    );
    assert_eq!(
        c["response_format"],
        json!({"type": "json_schema", "json_schema": {"name": "out", "schema": {"type": "object"}, "strict": true}})
    );
}

#[test]
fn a_stream_asks_every_provider_for_usage() {
    let r = request(json!({"input": "x", "stream": true}))
        .to_chat()
        .unwrap();
    assert!(r.stream && r.include_usage());
}

fn text_chunk(text: &str) -> ChatChunk {
    ChatChunk::with_delta("c", 1, Delta::content(text), None)
}

fn call_chunk(index: u32, id: Option<&str>, name: Option<&str>, args: &str) -> ChatChunk {
    let fragment = ToolCallDelta {
        index,
        id: id.map(str::to_owned),
        function: Some(FunctionCallDelta {
            name: name.map(str::to_owned),
            arguments: Some(args.to_owned()),
        }),
        ..ToolCallDelta::default()
    };
    let delta = Delta {
        tool_calls: Some(vec![fragment]),
        ..Delta::default()
    };
    ChatChunk::with_delta("c", 1, delta, None)
}

fn finish_chunk(reason: &str) -> ChatChunk {
    ChatChunk::with_delta("c", 1, Delta::default(), Some(reason))
}

/// The events written for `chunks`, ended by `finish` (or a failure), as (event name, data).
fn events(chunks: Vec<ChatChunk>, fail: bool) -> Vec<(String, Value)> {
    let echo = request(json!({"input": "x"})).echo();
    let mut writer = ResponseEvents::new(ResponseObject::in_progress(echo, "p/m"));
    let mut out = Vec::new();
    for chunk in &chunks {
        writer.chunk(chunk, &mut out);
    }
    if fail {
        writer.fail("upstream_protocol", "stream broke", &mut out);
    } else {
        writer.finish(&mut out);
    }
    let text = String::from_utf8(out).unwrap();
    text.split("\n\n")
        .filter(|e| !e.is_empty())
        .map(|e| {
            let (head, data) = e.split_once('\n').unwrap();
            let name = head.strip_prefix("event: ").unwrap().to_owned();
            let data: Value = serde_json::from_str(data.strip_prefix("data: ").unwrap()).unwrap();
            assert_eq!(data["type"], name.as_str());
            (name, data)
        })
        .collect()
}

fn names(events: &[(String, Value)]) -> Vec<&str> {
    events.iter().map(|(n, _)| n.as_str()).collect()
}

#[test]
fn a_text_stream_follows_the_documented_sequence() {
    let mut usage = ChatChunk::usage_only("c", 1, Usage::new(5, 2));
    usage.choices.clear();
    let ev = events(
        vec![
            text_chunk("Hel"),
            text_chunk("lo"),
            finish_chunk("stop"),
            usage,
        ],
        false,
    );
    assert_eq!(
        names(&ev),
        [
            "response.created",
            "response.in_progress",
            "response.output_item.added",
            "response.content_part.added",
            "response.output_text.delta",
            "response.output_text.delta",
            "response.output_text.done",
            "response.content_part.done",
            "response.output_item.done",
            "response.completed",
        ]
    );
    for (i, (_, data)) in ev.iter().enumerate() {
        assert_eq!(data["sequence_number"], i as u64);
    }
    assert_eq!(ev[6].1["text"], "Hello");
    let done = &ev[9].1["response"];
    assert_eq!(done["status"], "completed");
    assert_eq!(done["model"], "p/m");
    assert_eq!(done["output"][0]["content"][0]["text"], "Hello");
    assert_eq!(done["usage"]["input_tokens"], 5);
    assert_eq!(
        done["usage"]["output_tokens_details"]["reasoning_tokens"],
        0
    );
    assert_eq!(done["id"], ev[0].1["response"]["id"]);
}

#[test]
fn streamed_calls_become_function_call_items() {
    let ev = events(
        vec![
            call_chunk(0, Some("call_a"), Some("get_weather"), ""),
            call_chunk(0, None, None, "{\"city\":"),
            call_chunk(0, None, None, "\"Berlin\"}"),
            call_chunk(1, Some("call_b"), Some("get_time"), "{}"),
            finish_chunk("tool_calls"),
        ],
        false,
    );
    assert_eq!(
        names(&ev),
        [
            "response.created",
            "response.in_progress",
            "response.output_item.added",
            "response.function_call_arguments.delta",
            "response.function_call_arguments.delta",
            "response.output_item.added",
            "response.function_call_arguments.delta",
            "response.function_call_arguments.done",
            "response.output_item.done",
            "response.function_call_arguments.done",
            "response.output_item.done",
            "response.completed",
        ]
    );
    assert_eq!(ev[2].1["item"]["name"], "get_weather");
    assert_eq!(ev[7].1["arguments"], "{\"city\":\"Berlin\"}");
    let output = &ev[11].1["response"]["output"];
    assert_eq!(output[0]["call_id"], "call_a");
    assert_eq!(output[1]["call_id"], "call_b");
    assert_eq!(output[1]["type"], "function_call");
}

#[test]
fn a_cut_answer_is_incomplete_and_a_broken_one_failed() {
    let ev = events(vec![text_chunk("a"), finish_chunk("length")], false);
    let last = &ev.last().unwrap();
    assert_eq!(last.0, "response.incomplete");
    assert_eq!(
        last.1["response"]["incomplete_details"]["reason"],
        "max_output_tokens"
    );

    let ev = events(vec![text_chunk("a")], true);
    let n = names(&ev);
    assert_eq!(n[n.len() - 2..], ["error", "response.failed"]);
    assert_eq!(ev[n.len() - 2].1["code"], "upstream_protocol");
    let failed = &ev.last().unwrap().1["response"];
    assert_eq!(failed["status"], "failed");
    assert_eq!(failed["error"]["message"], "stream broke");
}
