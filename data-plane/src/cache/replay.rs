//! A cached completion replayed as a stream, for a streaming request that hits the cache.
//!
//! The chunks are the ones a streaming client expects from any provider: the role first, the
//! content in one piece, every tool call whole, the finish reason on an empty delta, and the
//! usage-only chunk last when the client asked for it. Only the first choice is replayed:
//! requests with `n > 1` are never cached.

use serde_json::Value;

use super::Cached;
use crate::openai::{ChatChunk, Delta, ToolCallDelta};

/// The chunks a streaming client would have got for `cached`, in order.
pub fn replay_chunks(cached: &Cached, include_usage: bool) -> Vec<ChatChunk> {
    let completion = &cached.completion;
    let id = completion.id.as_str();
    let created = completion.created;
    let choice = completion.choices.first();
    let message = choice.map(|c| &c.message);

    let mut chunks = vec![ChatChunk::with_delta(id, created, Delta::role(), None)];
    if let Some(text) = message.and_then(|m| m.content.as_deref()) {
        if !text.is_empty() {
            chunks.push(ChatChunk::with_delta(
                id,
                created,
                Delta::content(text),
                None,
            ));
        }
    }
    if let Some(calls) = message.and_then(|m| m.tool_calls.as_deref()) {
        if !calls.is_empty() {
            let deltas = calls
                .iter()
                .zip(0u32..)
                .map(|(call, i)| ToolCallDelta::complete(i, call))
                .collect();
            let delta = Delta {
                tool_calls: Some(deltas),
                ..Delta::default()
            };
            chunks.push(ChatChunk::with_delta(id, created, delta, None));
        }
    }
    let finish = choice.and_then(|c| c.finish_reason.as_deref());
    chunks.push(ChatChunk::with_delta(id, created, Delta::default(), finish));
    if include_usage {
        if let Some(usage) = &completion.usage {
            chunks.push(ChatChunk::usage_only(id, created, usage.clone()));
        }
    }

    // Streaming clients see the same fingerprint on every chunk as on the completion.
    let fingerprint = completion.extra.get("system_fingerprint").cloned();
    for chunk in &mut chunks {
        chunk.model.clone_from(&cached.target);
        if let Some(fp @ Value::String(_)) = &fingerprint {
            chunk
                .extra
                .insert("system_fingerprint".to_owned(), fp.clone());
        }
    }
    chunks
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::openai::{ChatCompletion, Usage};
    use serde_json::json;

    fn cached(completion: Value) -> Cached {
        Cached {
            target: "groq/llama".to_owned(),
            completion: serde_json::from_value::<ChatCompletion>(completion).unwrap(),
        }
    }

    #[test]
    fn text_answer() {
        let c = cached(json!({
            "id": "chatcmpl-1", "created": 42, "model": "groq/llama", "system_fingerprint": "fp1",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello"}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4}
        }));
        let chunks = replay_chunks(&c, false);
        assert_eq!(chunks.len(), 3);
        assert_eq!(
            chunks[0].choices[0].delta.role.as_deref(),
            Some("assistant")
        );
        assert_eq!(chunks[1].choices[0].delta.content.as_deref(), Some("Hello"));
        let last = &chunks[2].choices[0];
        assert!(last.delta.content.is_none() && last.delta.role.is_none());
        assert_eq!(last.finish_reason.as_deref(), Some("stop"));
        for chunk in &chunks {
            assert_eq!(chunk.id, "chatcmpl-1");
            assert_eq!(chunk.created, 42);
            assert_eq!(chunk.model, "groq/llama");
            assert_eq!(chunk.object, "chat.completion.chunk");
            assert_eq!(chunk.extra["system_fingerprint"], json!("fp1"));
            assert!(chunk.usage.is_none());
        }
    }

    #[test]
    fn usage_chunk_only_when_asked() {
        let c = cached(json!({
            "id": "x", "created": 1,
            "choices": [{"message": {"content": "a"}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4}
        }));
        let chunks = replay_chunks(&c, true);
        assert_eq!(chunks.len(), 4);
        let last = &chunks[3];
        assert!(last.choices.is_empty());
        assert_eq!(last.usage, Some(Usage::new(3, 1)));
        assert_eq!(last.model, "groq/llama");

        let no_usage = cached(
            json!({"id": "x", "choices": [{"message": {"content": "a"}, "finish_reason": "stop"}]}),
        );
        assert_eq!(replay_chunks(&no_usage, true).len(), 3);
    }

    #[test]
    fn tool_call_answer() {
        let c = cached(json!({
            "id": "x", "created": 1,
            "choices": [{"message": {"role": "assistant", "content": null, "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "weather", "arguments": "{\"city\":\"Paris\"}"}},
                {"id": "call_2", "type": "function", "function": {"name": "time", "arguments": "{}"}}
            ]}, "finish_reason": "tool_calls"}]
        }));
        let chunks = replay_chunks(&c, false);
        assert_eq!(chunks.len(), 3, "role, tool calls, finish");
        let calls = chunks[1].choices[0].delta.tool_calls.as_ref().unwrap();
        assert_eq!(calls.len(), 2);
        assert_eq!(calls[0].index, 0);
        assert_eq!(calls[0].id.as_deref(), Some("call_1"));
        let f = calls[0].function.as_ref().unwrap();
        assert_eq!(f.name.as_deref(), Some("weather"));
        assert_eq!(f.arguments.as_deref(), Some("{\"city\":\"Paris\"}"));
        assert_eq!(calls[1].index, 1);
        assert_eq!(
            chunks[2].choices[0].finish_reason.as_deref(),
            Some("tool_calls")
        );
        assert!(chunks[1].choices[0].delta.content.is_none());
    }
}
