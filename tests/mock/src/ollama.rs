//! Ollama native bodies: `/api/chat` (JSON and NDJSON), `/api/embed`, `/api/tags`.

use serde_json::{json, Value};

use crate::openai::inputs;
use crate::script::Reply;
use crate::server::{embedding, tokens, Answer, Ctx};
use crate::stream::{Frame, Framing, Kind, Streamed};

const CREATED_AT: &str = "2026-01-01T00:00:00Z";
const PROMPT_EVAL_COUNT: u64 = 5;

pub(crate) fn chat(ctx: &Ctx<'_>, reply: &Reply) -> Answer {
    if ctx.stream {
        Answer::Stream(chat_stream(ctx, reply))
    } else {
        Answer::Json(chat_json(ctx, reply))
    }
}

fn tool_calls(name: &str, arguments: &Value) -> Value {
    json!([{"function": {"name": name, "arguments": arguments}}])
}

fn done_line(ctx: &Ctx<'_>, reply: &Reply, message: Value) -> Value {
    json!({
        "model": ctx.model,
        "created_at": CREATED_AT,
        "message": message,
        "done": true,
        "done_reason": reply.finish_reason().ollama(),
        "prompt_eval_count": PROMPT_EVAL_COUNT,
        "eval_count": reply.completion_tokens(),
    })
}

fn chat_json(ctx: &Ctx<'_>, reply: &Reply) -> Value {
    let message = match &reply.tool_call {
        Some((name, arguments)) => json!({
            "role": "assistant",
            "content": "",
            "tool_calls": tool_calls(name, arguments),
        }),
        None => json!({"role": "assistant", "content": reply.joined()}),
    };
    done_line(ctx, reply, message)
}

fn chat_stream(ctx: &Ctx<'_>, reply: &Reply) -> Streamed {
    let framing = Framing::Ndjson;
    let line = |message: Value| {
        let value = json!({
            "model": ctx.model,
            "created_at": CREATED_AT,
            "message": message,
            "done": false,
        });
        Frame::new(Kind::Content, framing.json(&value))
    };
    let mut frames: Vec<Frame> = match &reply.tool_call {
        // Ollama sends a tool call whole, in one line.
        Some((name, arguments)) => vec![line(json!({
            "role": "assistant",
            "content": "",
            "tool_calls": tool_calls(name, arguments),
        }))],
        None => reply
            .pieces()
            .into_iter()
            .map(|piece| line(json!({"role": "assistant", "content": piece})))
            .collect(),
    };
    let done = done_line(ctx, reply, json!({"role": "assistant", "content": ""}));
    frames.push(Frame::new(Kind::Trailer, framing.json(&done)));
    Streamed { framing, frames }
}

pub(crate) fn embed(ctx: &Ctx<'_>) -> Value {
    let inputs = inputs(ctx.body);
    let embeddings: Vec<Value> = inputs.iter().map(|t| embedding(t)).collect();
    let n: u64 = inputs.iter().map(|t| tokens(t)).sum();
    json!({"model": ctx.model, "embeddings": embeddings, "prompt_eval_count": n})
}

pub(crate) fn tags() -> Value {
    json!({"models": [{
        "name": "mock-model:latest",
        "model": "mock-model:latest",
        "modified_at": CREATED_AT,
        "size": 1,
    }]})
}
