//! OpenAI-compatible bodies: chat completions (JSON and SSE), embeddings, models.

use serde_json::{json, Value};

use crate::script::Reply;
use crate::server::{embedding, tokens, Answer, Ctx};
use crate::stream::{Frame, Framing, Kind, Streamed};

const PROMPT_TOKENS: u64 = 5;
const TOOL_CALL_ID: &str = "call_mock_1";

pub(crate) fn chat(ctx: &Ctx<'_>, reply: &Reply) -> Answer {
    if ctx.stream {
        Answer::Stream(chat_stream(ctx, reply))
    } else {
        Answer::Json(chat_json(ctx, reply))
    }
}

fn usage(reply: &Reply) -> Value {
    let completion = reply.completion_tokens();
    json!({
        "prompt_tokens": PROMPT_TOKENS,
        "completion_tokens": completion,
        "total_tokens": PROMPT_TOKENS + completion,
    })
}

fn id(ctx: &Ctx<'_>) -> String {
    format!("chatcmpl-mock-{}", ctx.seq)
}

/// The arguments as OpenAI sends them: a JSON-encoded string.
fn arguments_string(arguments: &Value) -> String {
    arguments.to_string()
}

fn chat_json(ctx: &Ctx<'_>, reply: &Reply) -> Value {
    let message = match &reply.tool_call {
        Some((name, arguments)) => json!({
            "role": "assistant",
            "content": null,
            "tool_calls": [{
                "id": TOOL_CALL_ID,
                "type": "function",
                "function": {"name": name, "arguments": arguments_string(arguments)},
            }],
        }),
        None => json!({"role": "assistant", "content": reply.joined()}),
    };
    json!({
        "id": id(ctx),
        "object": "chat.completion",
        "created": ctx.created,
        "model": ctx.model,
        "system_fingerprint": "fp_mock",
        "choices": [{
            "index": 0,
            "message": message,
            "finish_reason": reply.finish_reason().openai(),
            "logprobs": null,
        }],
        "usage": usage(reply),
    })
}

fn chunk(ctx: &Ctx<'_>, choices: Value) -> Value {
    json!({
        "id": id(ctx),
        "object": "chat.completion.chunk",
        "created": ctx.created,
        "model": ctx.model,
        "system_fingerprint": "fp_mock",
        "choices": choices,
    })
}

fn delta_chunk(ctx: &Ctx<'_>, delta: Value, finish: Option<String>) -> Value {
    chunk(
        ctx,
        json!([{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": null}]),
    )
}

fn chat_stream(ctx: &Ctx<'_>, reply: &Reply) -> Streamed {
    let framing = Framing::Sse;
    let mut frames = Vec::new();
    let mut push = |kind: Kind, value: Value| frames.push(Frame::new(kind, framing.json(&value)));

    match &reply.tool_call {
        Some((name, arguments)) => {
            let role = json!({"role": "assistant", "content": null});
            push(Kind::Preamble, delta_chunk(ctx, role, None));
            let head = json!({"tool_calls": [{
                "index": 0,
                "id": TOOL_CALL_ID,
                "type": "function",
                "function": {"name": name, "arguments": ""},
            }]});
            push(Kind::Content, delta_chunk(ctx, head, None));
            for fragment in split3(&arguments_string(arguments)) {
                let delta =
                    json!({"tool_calls": [{"index": 0, "function": {"arguments": fragment}}]});
                push(Kind::Content, delta_chunk(ctx, delta, None));
            }
        }
        None => {
            let role = json!({"role": "assistant", "content": ""});
            push(Kind::Preamble, delta_chunk(ctx, role, None));
            for piece in reply.pieces() {
                push(
                    Kind::Content,
                    delta_chunk(ctx, json!({"content": piece}), None),
                );
            }
        }
    }
    let finish = Some(reply.finish_reason().openai());
    push(Kind::Trailer, delta_chunk(ctx, json!({}), finish));
    let include_usage = ctx
        .body
        .pointer("/stream_options/include_usage")
        .and_then(Value::as_bool)
        == Some(true);
    if include_usage {
        let mut last = chunk(ctx, json!([]));
        last["usage"] = usage(reply);
        push(Kind::Trailer, last);
    }
    frames.push(Frame::new(Kind::Trailer, framing.wrap("[DONE]")));
    Streamed { framing, frames }
}

/// Splits `s` into three fragments at char boundaries (some empty when `s` is very short).
pub(crate) fn split3(s: &str) -> Vec<String> {
    let chars: Vec<char> = s.chars().collect();
    let n = chars.len();
    (0..3)
        .map(|i| chars[i * n / 3..(i + 1) * n / 3].iter().collect())
        .collect()
}

/// The texts to embed: `input` as a string or an array of strings.
pub(crate) fn inputs(body: &Value) -> Vec<String> {
    match body.get("input") {
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| match v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            })
            .collect(),
        _ => Vec::new(),
    }
}

pub(crate) fn embeddings(ctx: &Ctx<'_>) -> Value {
    let inputs = inputs(ctx.body);
    let data: Vec<Value> = inputs
        .iter()
        .enumerate()
        .map(|(i, text)| json!({"object": "embedding", "index": i, "embedding": embedding(text)}))
        .collect();
    let n: u64 = inputs.iter().map(|t| tokens(t)).sum();
    json!({
        "object": "list",
        "data": data,
        "model": ctx.model,
        "usage": {"prompt_tokens": n, "total_tokens": n},
    })
}

pub(crate) fn models() -> Value {
    let model = |id: &str| json!({"id": id, "object": "model", "created": 1_700_000_000, "owned_by": "mock"});
    json!({"object": "list", "data": [model("mock-model"), model("mock-embed")]})
}

#[cfg(test)]
mod tests {
    use super::split3;

    #[test]
    fn split3_rejoins() {
        for s in ["", "{}", r#"{"city":"Paris"}"#, "héllo wörld"] {
            let parts = split3(s);
            assert_eq!(parts.len(), 3);
            assert_eq!(parts.concat(), s);
        }
    }
}
