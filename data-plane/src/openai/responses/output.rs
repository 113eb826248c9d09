//! The Responses answer: the response object, its output items and usage, built from a chat
//! completion (or, while streaming, from what the chunks said so far).

use serde::Serialize;
use serde_json::{json, Map, Value};

use super::{item_id, response_id};
use crate::openai::{unix_now, ChatCompletion, Usage};

/// What an answer reports of the request's settings, as OpenAI does.
#[derive(Debug, Clone, Serialize)]
pub struct Echo {
    pub instructions: Option<String>,
    pub max_output_tokens: Option<u64>,
    pub temperature: Option<f64>,
    pub top_p: Option<f64>,
    pub tools: Vec<Value>,
    pub tool_choice: Value,
    pub text: Value,
    pub parallel_tool_calls: bool,
    pub metadata: Map<String, Value>,
    pub user: Option<String>,
}

/// A response object (`"object": "response"`).
#[derive(Debug, Clone, Serialize)]
pub struct ResponseObject {
    pub id: String,
    pub object: &'static str,
    pub created_at: u64,
    /// `in_progress`, `completed`, `incomplete` or `failed`.
    pub status: &'static str,
    pub error: Option<Value>,
    pub incomplete_details: Option<Value>,
    /// The `provider/model` that answered.
    pub model: String,
    pub output: Vec<OutputItem>,
    pub usage: Option<ResponseUsage>,
    pub previous_response_id: Option<String>,
    pub store: bool,
    pub truncation: &'static str,
    pub reasoning: Value,
    #[serde(flatten)]
    pub echo: Echo,
}

#[derive(Debug, Clone, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum OutputItem {
    Message {
        id: String,
        status: &'static str,
        role: &'static str,
        content: Vec<OutputText>,
    },
    FunctionCall {
        id: String,
        call_id: String,
        name: String,
        arguments: String,
        status: &'static str,
    },
}

#[derive(Debug, Clone, Serialize)]
pub struct OutputText {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub text: String,
    pub annotations: Vec<Value>,
    pub logprobs: Vec<Value>,
}

impl OutputText {
    pub fn new(text: String) -> Self {
        Self {
            kind: "output_text",
            text,
            annotations: Vec::new(),
            logprobs: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Copy, Serialize)]
pub struct ResponseUsage {
    pub input_tokens: u64,
    pub input_tokens_details: InputDetails,
    pub output_tokens: u64,
    pub output_tokens_details: OutputDetails,
    pub total_tokens: u64,
}

#[derive(Debug, Clone, Copy, Serialize)]
pub struct InputDetails {
    pub cached_tokens: u64,
}

#[derive(Debug, Clone, Copy, Serialize)]
pub struct OutputDetails {
    pub reasoning_tokens: u64,
}

impl From<Usage> for ResponseUsage {
    fn from(u: Usage) -> Self {
        // The chat usage's details (passed through from the upstream, or Gemini's thinking
        // tokens) carry over; absent ones are 0.
        let detail = |object: &str, field: &str| {
            u.extra
                .get(object)
                .and_then(|d| d.get(field))
                .and_then(serde_json::Value::as_u64)
                .unwrap_or(0)
        };
        Self {
            input_tokens: u.prompt_tokens,
            input_tokens_details: InputDetails {
                cached_tokens: detail("prompt_tokens_details", "cached_tokens"),
            },
            output_tokens: u.completion_tokens,
            output_tokens_details: OutputDetails {
                reasoning_tokens: detail("completion_tokens_details", "reasoning_tokens"),
            },
            total_tokens: u.total_tokens,
        }
    }
}

impl ResponseObject {
    /// A response just begun: no output yet.
    pub fn in_progress(echo: Echo, model: &str) -> Self {
        Self {
            id: response_id(),
            object: "response",
            created_at: unix_now(),
            status: "in_progress",
            error: None,
            incomplete_details: None,
            model: model.to_owned(),
            output: Vec::new(),
            usage: None,
            previous_response_id: None,
            store: false,
            truncation: "disabled",
            reasoning: json!({"effort": null, "summary": null}),
            echo,
        }
    }

    /// The whole answer a chat completion stands for (its first choice).
    pub fn from_completion(completion: &ChatCompletion, echo: Echo, model: &str) -> Self {
        let mut response = Self::in_progress(echo, model);
        if completion.created != 0 {
            response.created_at = completion.created;
        }
        let choice = completion.choices.first();
        let message = choice.map(|c| &c.message);
        if let Some(text) = message.and_then(|m| m.content.as_deref()) {
            if !text.is_empty() {
                response.output.push(OutputItem::Message {
                    id: item_id("msg"),
                    status: "completed",
                    role: "assistant",
                    content: vec![OutputText::new(text.to_owned())],
                });
            }
        }
        for call in message.and_then(|m| m.tool_calls.as_deref()).unwrap_or(&[]) {
            response.output.push(OutputItem::FunctionCall {
                id: item_id("fc"),
                call_id: call.id.clone(),
                name: call.function.name.clone(),
                arguments: call.function.arguments.clone(),
                status: "completed",
            });
        }
        response.end(
            choice.and_then(|c| c.finish_reason.as_deref()),
            completion.usage.clone(),
        );
        response
    }

    /// Sets the final status from the chat finish reason, and the usage.
    pub fn end(&mut self, finish_reason: Option<&str>, usage: Option<Usage>) {
        let incomplete = match finish_reason {
            Some("length") => Some("max_output_tokens"),
            Some("content_filter") => Some("content_filter"),
            _ => None,
        };
        match incomplete {
            Some(reason) => {
                self.status = "incomplete";
                self.incomplete_details = Some(json!({"reason": reason}));
            }
            None => self.status = "completed",
        }
        self.usage = usage.map(ResponseUsage::from);
    }

    /// Whether the answer stopped short (the `response.incomplete` event rather than
    /// `response.completed`).
    pub fn is_incomplete(&self) -> bool {
        self.status == "incomplete"
    }
}

#[cfg(test)]
mod usage_tests {
    use super::*;

    #[test]
    fn usage_details_carry_over_from_chat() {
        let chat: Usage = serde_json::from_value(serde_json::json!({
            "prompt_tokens": 10, "completion_tokens": 7, "total_tokens": 17,
            "prompt_tokens_details": {"cached_tokens": 4},
            "completion_tokens_details": {"reasoning_tokens": 5}
        }))
        .unwrap();
        let r = ResponseUsage::from(chat);
        assert_eq!(
            (
                r.input_tokens_details.cached_tokens,
                r.output_tokens_details.reasoning_tokens
            ),
            (4, 5)
        );
        let bare = ResponseUsage::from(Usage::new(1, 2));
        assert_eq!(bare.output_tokens_details.reasoning_tokens, 0);
    }
}
