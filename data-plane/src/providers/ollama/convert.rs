//! Translation between the OpenAI wire format and Ollama's native API, as pure functions:
//! a chat request to an `/api/chat` body, an `/api/chat` answer to a completion, NDJSON stream
//! lines to chunks, and the small pieces `/api/embed` and `/api/tags` need.

mod request;
mod timestamp;

use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::openai::{
    completion_id, tool_call_id, unix_now, AssistantMessage, ChatChunk, ChatCompletion,
    ChatRequest, Choice, Delta, FunctionCall, ToolCall, ToolCallDelta, Usage,
};
use crate::providers::UpstreamError;

pub use request::chat_body;
pub use timestamp::unix_seconds;

/// Substrings of model families Ollama can run with `tools`. Ollama does not say which models
/// take tools, and sending tools to one that does not fails only after a slow model load.
const TOOL_CAPABLE: [&str; 16] = [
    "llama3.1",
    "llama3.2",
    "llama3.3",
    "llama4",
    "qwen2.5",
    "qwen3",
    "mistral",
    "mixtral",
    "command-r",
    "firefunction",
    "gpt-oss",
    "granite3",
    "hermes3",
    "phi4-mini",
    "smollm2",
    "nemotron",
];

pub fn tool_capable(model: &str) -> bool {
    let model = model.to_lowercase();
    TOOL_CAPABLE.iter().any(|family| model.contains(family))
}

/// Whether the request's tools will actually be sent: Ollama has no `tool_choice`, so `"none"`
/// can only be honoured by leaving the tools out.
pub fn sends_tools(request: &ChatRequest) -> bool {
    request.has_tools() && request.tool_choice != Some(Value::String("none".to_owned()))
}

/// One `/api/chat` answer: the whole answer, or one line of a stream.
#[derive(Debug, Default, Deserialize)]
pub struct ChatResponse {
    #[serde(default)]
    pub message: Option<ResponseMessage>,
    #[serde(default)]
    pub done: bool,
    #[serde(default)]
    pub done_reason: Option<String>,
    #[serde(default)]
    pub prompt_eval_count: Option<u64>,
    #[serde(default)]
    pub eval_count: Option<u64>,
    #[serde(default)]
    pub error: Option<Value>,
}

#[derive(Debug, Default, Deserialize)]
pub struct ResponseMessage {
    #[serde(default)]
    pub content: Option<String>,
    #[serde(default)]
    pub tool_calls: Option<Vec<ResponseToolCall>>,
}

#[derive(Debug, Deserialize)]
pub struct ResponseToolCall {
    #[serde(default)]
    pub id: Option<String>,
    pub function: ResponseFunction,
}

#[derive(Debug, Deserialize)]
pub struct ResponseFunction {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub arguments: Value,
}

impl ChatResponse {
    fn error(&self) -> Option<String> {
        let error = self.error.as_ref().filter(|e| !e.is_null())?;
        Some(match error {
            Value::String(s) => s.clone(),
            other => other
                .get("message")
                .and_then(Value::as_str)
                .map_or_else(|| other.to_string(), str::to_owned),
        })
    }

    fn usage(&self) -> Usage {
        Usage::new(
            self.prompt_eval_count.unwrap_or(0),
            self.eval_count.unwrap_or(0),
        )
    }

    fn content(&self) -> &str {
        self.message
            .as_ref()
            .and_then(|m| m.content.as_deref())
            .unwrap_or_default()
    }

    fn tool_calls(&self) -> Result<Vec<ToolCall>, UpstreamError> {
        self.message
            .iter()
            .flat_map(|m| m.tool_calls.iter().flatten())
            .map(tool_call)
            .collect()
    }

    fn finish_reason(&self, tool_calls: bool) -> &'static str {
        if tool_calls {
            "tool_calls"
        } else if self.done_reason.as_deref() == Some("length") {
            "length"
        } else {
            "stop"
        }
    }
}

fn tool_call(call: &ResponseToolCall) -> Result<ToolCall, UpstreamError> {
    if call.function.name.is_empty() {
        return Err(UpstreamError::Protocol(
            "a tool call without a function name".to_owned(),
        ));
    }
    let arguments = match &call.function.arguments {
        Value::String(s) => s.clone(),
        Value::Null => "{}".to_owned(),
        other => other.to_string(),
    };
    Ok(ToolCall {
        id: call
            .id
            .clone()
            .filter(|id| !id.is_empty())
            .unwrap_or_else(tool_call_id),
        kind: "function".to_owned(),
        function: FunctionCall {
            name: call.function.name.clone(),
            arguments,
        },
        extra: Map::new(),
    })
}

/// A whole non-streaming answer as a completion. `model` is left for the caller to fill.
pub fn completion(response: ChatResponse) -> Result<ChatCompletion, UpstreamError> {
    if let Some(error) = response.error() {
        return Err(UpstreamError::Protocol(format!(
            "ollama reported an error: {error}"
        )));
    }
    if response.message.is_none() {
        return Err(UpstreamError::Protocol(
            "the answer has no message".to_owned(),
        ));
    }
    let tool_calls = response.tool_calls()?;
    let content = response.content();
    // A tool-call turn has no text; OpenAI clients expect `null` there, not "".
    let content = (!content.is_empty() || tool_calls.is_empty()).then(|| content.to_owned());
    let finish_reason = response.finish_reason(!tool_calls.is_empty());
    let tool_calls = (!tool_calls.is_empty()).then_some(tool_calls);
    Ok(ChatCompletion {
        id: completion_id(),
        object: "chat.completion".to_owned(),
        created: unix_now(),
        model: String::new(),
        choices: vec![Choice {
            index: 0,
            message: AssistantMessage::new(content, tool_calls),
            finish_reason: Some(finish_reason.to_owned()),
            extra: Map::new(),
        }],
        usage: Some(response.usage()),
        extra: Map::new(),
    })
}

/// Turns the NDJSON lines of one streamed answer into chunks that share one id.
pub struct StreamState {
    id: String,
    created: u64,
    include_usage: bool,
    started: bool,
    tool_calls: u32,
    done: bool,
}

impl StreamState {
    pub fn new(include_usage: bool) -> Self {
        Self {
            id: completion_id(),
            created: unix_now(),
            include_usage,
            started: false,
            tool_calls: 0,
            done: false,
        }
    }

    /// Whether the `done` line arrived; nothing after it matters.
    pub fn is_done(&self) -> bool {
        self.done
    }

    /// The chunks for one line. An error ends the stream.
    pub fn line(&mut self, line: &str) -> Result<Vec<ChatChunk>, UpstreamError> {
        let line = line.trim();
        if line.is_empty() {
            return Ok(Vec::new());
        }
        let response: ChatResponse = serde_json::from_str(line)
            .map_err(|e| UpstreamError::Protocol(format!("invalid stream line: {e}")))?;
        if let Some(error) = response.error() {
            return Err(UpstreamError::Protocol(format!(
                "ollama reported an error mid-stream: {error}"
            )));
        }
        let mut chunks = Vec::new();
        let chunk = |delta, finish| ChatChunk::with_delta(&self.id, self.created, delta, finish);
        if !self.started {
            chunks.push(chunk(Delta::role(), None));
        }
        let content = response.content();
        if !content.is_empty() {
            chunks.push(chunk(Delta::content(content), None));
        }
        let calls = response.tool_calls()?;
        if !calls.is_empty() {
            let deltas = calls
                .iter()
                .zip(self.tool_calls..)
                .map(|(call, index)| ToolCallDelta::complete(index, call))
                .collect();
            chunks.push(chunk(
                Delta {
                    tool_calls: Some(deltas),
                    ..Delta::default()
                },
                None,
            ));
        }
        if response.done {
            let tool_calls = self.tool_calls > 0 || !calls.is_empty();
            let finish = response.finish_reason(tool_calls);
            chunks.push(chunk(Delta::default(), Some(finish)));
            if self.include_usage {
                chunks.push(ChatChunk::usage_only(
                    &self.id,
                    self.created,
                    response.usage(),
                ));
            }
        }
        self.started = true;
        self.tool_calls += calls.len() as u32;
        self.done = response.done;
        Ok(chunks)
    }

    /// Called when the body ended: a stream that never said `done` was cut short.
    pub fn end(&self) -> Result<(), UpstreamError> {
        if self.done {
            Ok(())
        } else {
            Err(UpstreamError::Protocol(
                "stream ended before done".to_owned(),
            ))
        }
    }
}

/// The `/api/embed` body.
pub fn embed_body(model: &str, texts: &[String], dimensions: Option<u32>) -> Value {
    let mut body = json!({"model": model, "input": texts});
    if let Some(d) = dimensions {
        body["dimensions"] = json!(d);
    }
    body
}

#[cfg(test)]
mod tests;
