//! The fields OpenAI always sends, added where an upstream left them out.
//!
//! Ollama, Gemini and echo answers are built by us, and some OpenAI-compatible upstreams omit
//! fields too; strict clients and typed decoders expect the whole shape. Absent fields are
//! added with the value OpenAI uses when it has nothing to say (`null`, zero counts); fields an
//! upstream did send are never touched.

use serde_json::{json, Map, Value};

use super::{ChatChunk, ChatCompletion, Usage};

fn default(map: &mut Map<String, Value>, key: &str, value: impl FnOnce() -> Value) {
    if !map.contains_key(key) {
        map.insert(key.to_owned(), value());
    }
}

impl Usage {
    /// `prompt_tokens_details` and `completion_tokens_details`, zero where unknown.
    pub fn fill_details(&mut self) {
        default(
            &mut self.extra,
            "prompt_tokens_details",
            || json!({"cached_tokens": 0, "audio_tokens": 0}),
        );
        default(&mut self.extra, "completion_tokens_details", || {
            json!({
                "reasoning_tokens": 0,
                "audio_tokens": 0,
                "accepted_prediction_tokens": 0,
                "rejected_prediction_tokens": 0
            })
        });
    }
}

impl ChatCompletion {
    /// `system_fingerprint`, each choice's `logprobs` and its message's `refusal`, usage details.
    pub fn fill_openai_shape(&mut self) {
        default(&mut self.extra, "system_fingerprint", || Value::Null);
        for choice in &mut self.choices {
            default(&mut choice.extra, "logprobs", || Value::Null);
            default(&mut choice.message.extra, "refusal", || Value::Null);
        }
        if let Some(usage) = &mut self.usage {
            usage.fill_details();
        }
    }
}

impl ChatChunk {
    /// `system_fingerprint`, each choice's `logprobs`, usage details.
    pub fn fill_openai_shape(&mut self) {
        default(&mut self.extra, "system_fingerprint", || Value::Null);
        for choice in &mut self.choices {
            default(&mut choice.extra, "logprobs", || Value::Null);
        }
        if let Some(usage) = &mut self.usage {
            usage.fill_details();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_built_answer_gets_every_field_openai_sends() {
        let mut c: ChatCompletion = serde_json::from_value(json!({
            "id": "x", "created": 1, "model": "m",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3}
        }))
        .unwrap();
        c.fill_openai_shape();
        let v = serde_json::to_value(&c).unwrap();
        assert_eq!(v["system_fingerprint"], Value::Null);
        assert!(v.as_object().unwrap().contains_key("system_fingerprint"));
        assert!(v["choices"][0]
            .as_object()
            .unwrap()
            .contains_key("logprobs"));
        assert!(v["choices"][0]["message"]
            .as_object()
            .unwrap()
            .contains_key("refusal"));
        assert_eq!(v["usage"]["prompt_tokens_details"]["cached_tokens"], 0);
        assert_eq!(
            v["usage"]["completion_tokens_details"]["reasoning_tokens"],
            0
        );
        assert_eq!(v["usage"]["total_tokens"], 3);
    }

    #[test]
    fn what_an_upstream_sent_is_kept() {
        let mut c: ChatCompletion = serde_json::from_value(json!({
            "id": "x", "created": 1, "model": "m", "system_fingerprint": "fp_abc",
            "choices": [{"index": 0, "logprobs": {"content": []},
                         "message": {"role": "assistant", "content": "hi", "refusal": "no"}}],
            "usage": {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3,
                      "prompt_tokens_details": {"cached_tokens": 9}}
        }))
        .unwrap();
        c.fill_openai_shape();
        let v = serde_json::to_value(&c).unwrap();
        assert_eq!(v["system_fingerprint"], "fp_abc");
        assert_eq!(v["choices"][0]["logprobs"], json!({"content": []}));
        assert_eq!(v["choices"][0]["message"]["refusal"], "no");
        assert_eq!(
            v["usage"]["prompt_tokens_details"],
            json!({"cached_tokens": 9})
        );
    }

    #[test]
    fn chunks_get_theirs() {
        let mut c: ChatChunk = serde_json::from_value(json!({
            "id": "x", "created": 1, "model": "m",
            "choices": [{"index": 0, "delta": {"content": "h"}, "finish_reason": null}]
        }))
        .unwrap();
        c.fill_openai_shape();
        let v = serde_json::to_value(&c).unwrap();
        assert!(v.as_object().unwrap().contains_key("system_fingerprint"));
        assert!(v["choices"][0]
            .as_object()
            .unwrap()
            .contains_key("logprobs"));
        assert!(v.get("usage").is_none(), "no usage is invented: {v}");
    }
}
