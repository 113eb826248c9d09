//! `/v1/responses`, stateless: a Responses request becomes a chat request (so it takes the same
//! route as `/v1/chat/completions`: aliases, fallback, cache, metrics), and the chat answer
//! becomes a Responses answer.
//!
//! - here: the request, and its translation into a [`ChatRequest`];
//! - `output`: the response object and its output items, built from a chat completion;
//! - `events`: the streamed events, built from chat chunks as they arrive.
//!
//! Features that need state kept on the server (`previous_response_id`, `store: true`, stored
//! items and prompts, background runs) are refused with a 400 naming the field: the gateway
//! keeps no responses.

mod events;
mod input;
mod output;
#[cfg(test)]
mod tests;

use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::error::RequestError;
use super::ChatRequest;

pub use events::ResponseEvents;
pub use output::{Echo, OutputItem, ResponseObject};

/// A Responses API request as clients send it.
#[derive(Debug, Clone, Deserialize)]
pub struct ResponsesRequest {
    #[serde(default)]
    pub model: Option<String>,
    /// A string, or a list of items (messages, function calls and their outputs).
    #[serde(default)]
    pub input: Option<Value>,
    #[serde(default)]
    pub instructions: Option<String>,
    #[serde(default)]
    pub tools: Option<Vec<Value>>,
    #[serde(default)]
    pub tool_choice: Option<Value>,
    #[serde(default)]
    pub text: Option<Map<String, Value>>,
    #[serde(default)]
    pub max_output_tokens: Option<u64>,
    #[serde(default)]
    pub temperature: Option<f64>,
    #[serde(default)]
    pub top_p: Option<f64>,
    #[serde(default)]
    pub stream: Option<bool>,
    #[serde(default)]
    pub store: Option<bool>,
    #[serde(default)]
    pub parallel_tool_calls: Option<bool>,
    #[serde(default)]
    pub metadata: Option<Map<String, Value>>,
    #[serde(default)]
    pub user: Option<String>,
    #[serde(default)]
    pub reasoning: Option<Value>,
    /// Everything else: stateful fields are refused, chat equivalents forwarded, the rest
    /// (Responses-only settings such as `truncation` or `include`) has no chat meaning.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// Fields whose meaning needs responses, conversations or prompts kept on the server.
const STATEFUL: [(&str, &str); 4] = [
    (
        "previous_response_id",
        "send the earlier turns in 'input' instead",
    ),
    ("conversation", "send the earlier turns in 'input' instead"),
    (
        "prompt",
        "send the prompt's text in 'instructions' and 'input' instead",
    ),
    ("background", "make a normal (or streamed) request instead"),
];

/// Fields with the same name and meaning in both APIs, passed on to the chat request.
/// (`top_logprobs` is not: the answer has no place for chat logprobs.)
const SAME_IN_CHAT: [&str; 3] = ["service_tier", "safety_identifier", "prompt_cache_key"];

impl ResponsesRequest {
    pub fn is_stream(&self) -> bool {
        self.stream == Some(true)
    }

    /// The chat request that asks the same, or a 400 naming what cannot be asked statelessly.
    pub fn to_chat(&self) -> Result<ChatRequest, RequestError> {
        self.refuse_state()?;
        if self.max_output_tokens == Some(0) {
            return Err(RequestError::invalid(
                "max_output_tokens must be at least 1",
                "max_output_tokens",
            ));
        }
        let input = self
            .input
            .as_ref()
            .filter(|v| !v.is_null())
            .ok_or_else(|| {
                RequestError::invalid(
                    "input is required: a string, or a list of input items",
                    "input",
                )
            })?;
        let mut messages = Vec::new();
        if let Some(instructions) = self.instructions.as_deref().filter(|s| !s.is_empty()) {
            messages.push(json!({"role": "system", "content": instructions}));
        }
        input::messages(input, &mut messages)?;
        if !messages.iter().any(|m| m["role"] != "system") {
            return Err(RequestError::invalid(
                "input must contain at least one message or function call output",
                "input",
            ));
        }

        let mut chat = Map::new();
        chat.insert("messages".into(), Value::Array(messages));
        if let Some(model) = &self.model {
            chat.insert("model".into(), json!(model));
        }
        let mut set = |key: &str, value: Option<Value>| {
            if let Some(v) = value {
                chat.insert(key.to_owned(), v);
            }
        };
        set("temperature", self.temperature.map(Value::from));
        set("top_p", self.top_p.map(Value::from));
        // `max_tokens` rather than `max_completion_tokens`: every OpenAI-compatible server
        // takes it.
        set("max_tokens", self.max_output_tokens.map(Value::from));
        set("user", self.user.clone().map(Value::from));
        set(
            "parallel_tool_calls",
            self.parallel_tool_calls.map(Value::from),
        );
        let effort = self.reasoning.as_ref().and_then(|r| r.get("effort"));
        set(
            "reasoning_effort",
            effort.filter(|e| e.is_string()).cloned(),
        );
        set("tools", self.chat_tools()?);
        set("tool_choice", self.chat_tool_choice()?);
        set("response_format", self.chat_response_format()?);
        for key in SAME_IN_CHAT {
            set(key, self.extra.get(key).filter(|v| !v.is_null()).cloned());
        }
        if self.is_stream() {
            // The final event carries usage, so ask every provider for it.
            set("stream", Some(json!(true)));
            set("stream_options", Some(json!({"include_usage": true})));
        }
        serde_json::from_value(Value::Object(chat)).map_err(|e| RequestError {
            message: format!("the request cannot be expressed as a chat request: {e}"),
            param: None,
            code: "invalid_request",
        })
    }

    /// What the answer reports of the request's settings.
    pub fn echo(&self) -> Echo {
        Echo {
            instructions: self.instructions.clone(),
            max_output_tokens: self.max_output_tokens,
            temperature: self.temperature,
            top_p: self.top_p,
            tools: self.tools.clone().unwrap_or_default(),
            tool_choice: self.tool_choice.clone().unwrap_or_else(|| json!("auto")),
            text: match &self.text {
                Some(text) if text.contains_key("format") => Value::Object(text.clone()),
                _ => json!({"format": {"type": "text"}}),
            },
            parallel_tool_calls: self.parallel_tool_calls.unwrap_or(true),
            metadata: self.metadata.clone().unwrap_or_default(),
            user: self.user.clone(),
        }
    }

    fn refuse_state(&self) -> Result<(), RequestError> {
        if self.store == Some(true) {
            return Err(stateful(
                "store",
                "store: true asks the gateway to keep the response; mana-llm's /v1/responses is stateless: send store: false or leave it out",
            ));
        }
        for (field, instead) in STATEFUL {
            match self.extra.get(field) {
                None | Some(Value::Null) | Some(Value::Bool(false)) => {}
                Some(_) => {
                    return Err(stateful(
                        field,
                        &format!("{field} needs state kept on the server, and mana-llm's /v1/responses is stateless: {instead}"),
                    ))
                }
            }
        }
        Ok(())
    }

    /// Function tools in chat form; hosted tools (web search, file search, …) run on OpenAI's
    /// servers and have no meaning here.
    fn chat_tools(&self) -> Result<Option<Value>, RequestError> {
        let Some(tools) = &self.tools else {
            return Ok(None);
        };
        let mut out = Vec::with_capacity(tools.len());
        for (i, tool) in tools.iter().enumerate() {
            let kind = tool.get("type").and_then(Value::as_str).unwrap_or("");
            if kind != "function" {
                return Err(RequestError::invalid(
                    format!("tools[{i}].type '{kind}' is not supported: mana-llm forwards function tools only"),
                    format!("tools[{i}].type"),
                ));
            }
            let name = tool.get("name").and_then(Value::as_str).unwrap_or("");
            if name.trim().is_empty() {
                return Err(RequestError::invalid(
                    format!("tools[{i}].name must be a non-empty string"),
                    format!("tools[{i}].name"),
                ));
            }
            let mut function = Map::new();
            for key in ["name", "description", "parameters", "strict"] {
                if let Some(v) = tool.get(key).filter(|v| !v.is_null()) {
                    function.insert(key.to_owned(), v.clone());
                }
            }
            out.push(json!({"type": "function", "function": function}));
        }
        Ok(Some(Value::Array(out)))
    }

    fn chat_tool_choice(&self) -> Result<Option<Value>, RequestError> {
        let invalid = || {
            RequestError::invalid(
                "tool_choice must be 'auto', 'none', 'required' or {\"type\": \"function\", \"name\": …}",
                "tool_choice",
            )
        };
        match &self.tool_choice {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) if matches!(s.as_str(), "auto" | "none" | "required") => {
                Ok(Some(json!(s)))
            }
            Some(Value::Object(o)) if o.get("type").and_then(Value::as_str) == Some("function") => {
                match o.get("name").and_then(Value::as_str) {
                    Some(name) if !name.is_empty() => Ok(Some(
                        json!({"type": "function", "function": {"name": name}}),
                    )),
                    _ => Err(invalid()),
                }
            }
            Some(_) => Err(invalid()),
        }
    }

    /// `text.format` as a chat `response_format`.
    fn chat_response_format(&self) -> Result<Option<Value>, RequestError> {
        let Some(format) = self.text.as_ref().and_then(|t| t.get("format")) else {
            return Ok(None);
        };
        let kind = format.get("type").and_then(Value::as_str).unwrap_or("");
        match kind {
            "text" => Ok(None),
            "json_object" => Ok(Some(json!({"type": "json_object"}))),
            "json_schema" => {
                let Some(schema) = format.get("schema").filter(|s| s.is_object()) else {
                    return Err(RequestError::invalid(
                        "text.format.schema must be a JSON schema object",
                        "text.format.schema",
                    ));
                };
                let mut spec = Map::new();
                let name = format.get("name").and_then(Value::as_str).unwrap_or("response");
                spec.insert("name".into(), json!(name));
                spec.insert("schema".into(), schema.clone());
                for key in ["strict", "description"] {
                    if let Some(v) = format.get(key).filter(|v| !v.is_null()) {
                        spec.insert(key.to_owned(), v.clone());
                    }
                }
                Ok(Some(json!({"type": "json_schema", "json_schema": spec})))
            }
            other => Err(RequestError::invalid(
                format!("text.format.type must be 'text', 'json_object' or 'json_schema', got '{other}'"),
                "text.format.type",
            )),
        }
    }
}

fn stateful(field: &str, message: &str) -> RequestError {
    RequestError {
        message: message.to_owned(),
        param: Some(field.to_owned()),
        code: "unsupported_stateful_feature",
    }
}

/// A fresh `resp_…` id.
pub fn response_id() -> String {
    format!("resp_{}", uuid::Uuid::new_v4().simple())
}

/// A fresh item id with `prefix` (`msg`, `fc`).
pub fn item_id(prefix: &str) -> String {
    format!("{prefix}_{}", uuid::Uuid::new_v4().simple())
}
