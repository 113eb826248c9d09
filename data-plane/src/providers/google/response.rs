//! Gemini `GenerateContentResponse`s → OpenAI completions and stream chunks.

mod stream;

use serde::Deserialize;
use serde_json::{Map, Value};

use crate::openai::{
    completion_id, tool_call_id, unix_now, AssistantMessage, ChatCompletion, Choice, FunctionCall,
    ToolCall, Usage,
};
use crate::providers::UpstreamError;

pub use stream::StreamState;

/// Finish reasons meaning Gemini withheld (the rest of) the answer.
const BLOCK_REASONS: [&str; 6] = [
    "SAFETY",
    "RECITATION",
    "PROHIBITED_CONTENT",
    "SPII",
    "BLOCKLIST",
    "IMAGE_SAFETY",
];

/// One `generateContent` answer, or one event of `streamGenerateContent`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GenerateResponse {
    #[serde(default)]
    candidates: Vec<Candidate>,
    #[serde(default)]
    prompt_feedback: Option<PromptFeedback>,
    #[serde(default)]
    usage_metadata: Option<UsageMetadata>,
    /// Gemini can report a failure inside a 2xx body, mid-stream in particular.
    #[serde(default)]
    error: Option<Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Candidate {
    #[serde(default)]
    index: Option<u32>,
    #[serde(default)]
    content: Option<CandidateContent>,
    #[serde(default)]
    finish_reason: Option<String>,
    #[serde(default)]
    safety_ratings: Vec<SafetyRating>,
}

#[derive(Debug, Default, Deserialize)]
struct CandidateContent {
    #[serde(default)]
    parts: Vec<Part>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Part {
    #[serde(default)]
    text: Option<String>,
    /// Thought summaries: never part of the answer.
    #[serde(default)]
    thought: bool,
    #[serde(default)]
    function_call: Option<GeminiCall>,
}

#[derive(Debug, Default, Deserialize)]
struct GeminiCall {
    #[serde(default)]
    name: String,
    #[serde(default)]
    args: Option<Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct SafetyRating {
    #[serde(default)]
    category: Option<String>,
    #[serde(default)]
    blocked: bool,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct PromptFeedback {
    #[serde(default)]
    block_reason: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct UsageMetadata {
    #[serde(default)]
    prompt_token_count: u64,
    #[serde(default)]
    candidates_token_count: u64,
    #[serde(default)]
    thoughts_token_count: u64,
    #[serde(default)]
    total_token_count: Option<u64>,
}

impl UsageMetadata {
    /// Thinking tokens are billed as output, so they count as completion tokens.
    fn usage(&self) -> Usage {
        let completion = self.candidates_token_count + self.thoughts_token_count;
        let mut extra = serde_json::Map::new();
        if self.thoughts_token_count > 0 {
            // Where OpenAI reports its own reasoning tokens.
            extra.insert(
                "completion_tokens_details".to_owned(),
                serde_json::json!({
                    "reasoning_tokens": self.thoughts_token_count,
                    "audio_tokens": 0,
                    "accepted_prediction_tokens": 0,
                    "rejected_prediction_tokens": 0
                }),
            );
        }
        Usage {
            prompt_tokens: self.prompt_token_count,
            completion_tokens: completion,
            total_tokens: self
                .total_token_count
                .unwrap_or(self.prompt_token_count + completion),
            extra,
        }
    }
}

impl GenerateResponse {
    /// The in-band error, or the prompt block when no candidate came.
    fn failure(&self) -> Option<UpstreamError> {
        if let Some(error) = &self.error {
            let message = error
                .get("message")
                .and_then(Value::as_str)
                .map(str::to_owned)
                .unwrap_or_else(|| error.to_string());
            return Some(UpstreamError::Protocol(format!(
                "Gemini reported an error: {message}"
            )));
        }
        let reason = self
            .prompt_feedback
            .as_ref()
            .and_then(|f| f.block_reason.as_deref());
        match reason {
            Some(reason) if self.candidates.is_empty() => Some(UpstreamError::Blocked {
                reason: format!("prompt blocked: {reason}"),
            }),
            _ => None,
        }
    }
}

impl Candidate {
    fn answer_parts(&self) -> impl Iterator<Item = &Part> {
        self.content
            .iter()
            .flat_map(|c| c.parts.iter())
            .filter(|p| !p.thought)
    }

    /// The OpenAI finish reason, or why there is no answer. `has_text` / `has_calls`: what
    /// this candidate produced (in a stream: so far).
    fn finish(&self, has_text: bool, has_calls: bool) -> Result<&'static str, UpstreamError> {
        let answered = if has_calls { "tool_calls" } else { "stop" };
        let reason = self.finish_reason.as_deref().unwrap_or("STOP");
        match reason {
            "STOP" | "FINISH_REASON_UNSPECIFIED" => Ok(answered),
            "MAX_TOKENS" => Ok("length"),
            r if BLOCK_REASONS.contains(&r) => {
                if has_text || has_calls {
                    return Ok("content_filter");
                }
                let categories: Vec<&str> = self
                    .safety_ratings
                    .iter()
                    .filter(|r| r.blocked)
                    .filter_map(|r| r.category.as_deref())
                    .collect();
                let reason = if categories.is_empty() {
                    r.to_owned()
                } else {
                    format!("{r}: {}", categories.join(", "))
                };
                Err(UpstreamError::Blocked { reason })
            }
            _ if has_text || has_calls => Ok(answered),
            other => Err(UpstreamError::Protocol(format!(
                "Gemini returned no content (finishReason={other})"
            ))),
        }
    }
}

fn tool_call(call: &GeminiCall) -> ToolCall {
    let arguments = match &call.args {
        None | Some(Value::Null) => "{}".to_owned(),
        Some(args) => args.to_string(),
    };
    ToolCall {
        id: tool_call_id(),
        kind: "function".to_owned(),
        function: FunctionCall {
            name: call.name.clone(),
            arguments,
        },
        extra: Map::new(),
    }
}

/// A whole `generateContent` answer as a completion (`model` left for the caller).
pub fn completion(response: GenerateResponse) -> Result<ChatCompletion, UpstreamError> {
    if let Some(failure) = response.failure() {
        return Err(failure);
    }
    if response.candidates.is_empty() {
        return Err(UpstreamError::Protocol(
            "Gemini returned no candidates".to_owned(),
        ));
    }
    let choices = response
        .candidates
        .iter()
        .zip(0u32..)
        .map(|(candidate, position)| {
            let mut text = String::new();
            let mut calls = Vec::new();
            for part in candidate.answer_parts() {
                if let Some(t) = &part.text {
                    text.push_str(t);
                }
                if let Some(call) = &part.function_call {
                    calls.push(tool_call(call));
                }
            }
            let finish = candidate.finish(!text.is_empty(), !calls.is_empty())?;
            let content = if text.is_empty() && !calls.is_empty() {
                None
            } else {
                Some(text)
            };
            let tool_calls = Some(calls).filter(|c| !c.is_empty());
            Ok(Choice {
                index: candidate.index.unwrap_or(position),
                message: AssistantMessage::new(content, tool_calls),
                finish_reason: Some(finish.to_owned()),
                extra: Map::new(),
            })
        })
        .collect::<Result<Vec<_>, UpstreamError>>()?;
    Ok(ChatCompletion {
        id: completion_id(),
        object: "chat.completion".to_owned(),
        created: unix_now(),
        model: String::new(),
        choices,
        usage: response.usage_metadata.as_ref().map(UsageMetadata::usage),
        extra: Map::new(),
    })
}

#[cfg(test)]
mod tests;
