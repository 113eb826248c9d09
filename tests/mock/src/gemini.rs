//! Gemini REST bodies: `generateContent`, `streamGenerateContent` (SSE with `alt=sse`, a JSON
//! array otherwise), `batchEmbedContents`, and the model list.

use serde_json::{json, Value};

use crate::script::{Finish, Reply};
use crate::server::{embedding, Answer, Ctx};
use crate::stream::{Frame, Framing, Kind, Streamed};
use crate::Route;

const PROMPT_TOKENS: u64 = 5;

pub(crate) fn generate(route: Route, ctx: &Ctx<'_>, reply: &Reply) -> Answer {
    if route == Route::GeminiGenerate {
        return Answer::Json(whole(ctx, reply));
    }
    let chunks = chunks(ctx, reply);
    if !ctx.stream {
        // Without `alt=sse` Gemini answers the stream as one JSON array.
        return Answer::Json(Value::Array(chunks.into_iter().map(|(_, v)| v).collect()));
    }
    let framing = Framing::SseCrlf;
    let frames = chunks
        .into_iter()
        .map(|(kind, v)| Frame::new(kind, framing.json(&v)))
        .collect();
    Answer::Stream(Streamed { framing, frames })
}

fn usage(reply: &Reply) -> Value {
    let completion = reply.completion_tokens();
    json!({
        "promptTokenCount": PROMPT_TOKENS,
        "candidatesTokenCount": completion,
        "totalTokenCount": PROMPT_TOKENS + completion,
    })
}

fn response(ctx: &Ctx<'_>, candidate: Option<Value>, usage: Option<Value>) -> Value {
    let mut v = json!({});
    if let Some(c) = candidate {
        v["candidates"] = json!([c]);
    }
    if let Some(u) = usage {
        v["usageMetadata"] = u;
    }
    v["modelVersion"] = json!(ctx.model);
    v
}

fn blocked(ctx: &Ctx<'_>, reply: &Reply, reason: &str) -> Value {
    let mut v = response(ctx, None, Some(usage(reply)));
    v["promptFeedback"] = json!({"blockReason": reason});
    v
}

fn candidate(parts: Option<Value>, finish: Option<&Finish>) -> Value {
    let mut c = json!({"index": 0});
    if let Some(parts) = parts {
        c["content"] = json!({"role": "model", "parts": parts});
    }
    if let Some(f) = finish {
        c["finishReason"] = json!(f.gemini());
        if *f == Finish::ContentFilter {
            c["safetyRatings"] = json!([{
                "category": "HARM_CATEGORY_DANGEROUS_CONTENT",
                "probability": "HIGH",
                "blocked": true,
            }]);
        }
    }
    c
}

fn tool_part(reply: &Reply) -> Option<Value> {
    reply
        .tool_call
        .as_ref()
        .map(|(name, args)| json!({"functionCall": {"name": name, "args": args}}))
}

/// The non-streaming answer.
fn whole(ctx: &Ctx<'_>, reply: &Reply) -> Value {
    if let Some(reason) = &reply.blocked {
        return blocked(ctx, reply, reason);
    }
    let finish = reply.finish_reason();
    let parts = if finish == Finish::ContentFilter {
        None
    } else if let Some(part) = tool_part(reply) {
        Some(json!([part]))
    } else {
        Some(json!([{"text": reply.joined()}]))
    };
    response(
        ctx,
        Some(candidate(parts, Some(&finish))),
        Some(usage(reply)),
    )
}

/// The streamed answer: one response per piece, the last carrying the finish reason and
/// usage. A safety stop comes as an extra, content-less trailer after the pieces.
fn chunks(ctx: &Ctx<'_>, reply: &Reply) -> Vec<(Kind, Value)> {
    if let Some(reason) = &reply.blocked {
        return vec![(Kind::Content, blocked(ctx, reply, reason))];
    }
    let finish = reply.finish_reason();
    let parts: Vec<Value> = match tool_part(reply) {
        Some(part) => vec![part],
        None => reply
            .pieces()
            .into_iter()
            .map(|p| json!({"text": p}))
            .collect(),
    };
    let safety = finish == Finish::ContentFilter;
    let last = parts.len().saturating_sub(1);
    let mut out: Vec<(Kind, Value)> = parts
        .into_iter()
        .enumerate()
        .map(|(i, part)| {
            let end = i == last && !safety;
            let c = candidate(Some(json!([part])), end.then_some(&finish));
            let v = response(ctx, Some(c), end.then(|| usage(reply)));
            (Kind::Content, v)
        })
        .collect();
    if safety || out.is_empty() {
        let c = candidate(None, Some(&finish));
        out.push((Kind::Trailer, response(ctx, Some(c), Some(usage(reply)))));
    }
    out
}

/// Texts of one `batchEmbedContents` request entry.
fn request_text(request: &Value) -> String {
    request
        .pointer("/content/parts")
        .and_then(Value::as_array)
        .map(|parts| {
            parts
                .iter()
                .filter_map(|p| p.get("text").and_then(Value::as_str))
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_default()
}

pub(crate) fn embed(ctx: &Ctx<'_>) -> Value {
    let embeddings: Vec<Value> = ctx
        .body
        .get("requests")
        .and_then(Value::as_array)
        .map(|requests| {
            requests
                .iter()
                .map(|r| json!({"values": embedding(&request_text(r))}))
                .collect()
        })
        .unwrap_or_default();
    json!({"embeddings": embeddings})
}

pub(crate) fn models() -> Value {
    json!({"models": [{
        "name": "models/gemini-mock",
        "displayName": "Gemini Mock",
        "supportedGenerationMethods": ["generateContent"],
    }]})
}
