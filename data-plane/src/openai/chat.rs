//! `/v1/chat/completions`: request, response and stream chunk types, and request validation.

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};

use crate::error::ApiError;

/// A chat completion request as clients send it.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct ChatRequest {
    /// `provider/model`, a bare Ollama model, or a `mana/…` alias. Rewritten per provider.
    #[serde(default, skip_serializing)]
    pub model: Option<String>,
    pub messages: Vec<Message>,
    /// Set per provider call; never forwarded as the client sent it.
    #[serde(default, skip_serializing)]
    pub stream: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream_options: Option<StreamOptions>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_completion_tokens: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop: Option<Stop>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frequency_penalty: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub presence_penalty: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub n: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_format: Option<ResponseFormat>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tools: Option<Vec<Tool>>,
    /// `"auto" | "none" | "required"` or `{"type":"function","function":{"name":…}}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_choice: Option<Value>,
    /// Every field we do not model, forwarded untouched to OpenAI-compatible providers.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct StreamOptions {
    #[serde(default)]
    pub include_usage: bool,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    System,
    Developer,
    User,
    Assistant,
    Tool,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct Message {
    pub role: Role,
    #[serde(default, deserialize_with = "content_opt")]
    pub content: Option<Content>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_calls: Option<Vec<ToolCall>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_call_id: Option<String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// Message content: a plain string or a list of typed parts (text, images, …).
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum Content {
    Text(String),
    Parts(Vec<ContentPart>),
}

impl Content {
    /// All text parts joined with a space (images and other parts left out).
    pub fn text(&self) -> String {
        match self {
            Content::Text(s) => s.clone(),
            Content::Parts(parts) => parts
                .iter()
                .filter_map(|p| p.text.as_deref())
                .collect::<Vec<_>>()
                .join(" "),
        }
    }
}

fn content_opt<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Content>, D::Error> {
    use serde::de::Error;
    match Option::<Value>::deserialize(d)? {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(Content::Text(s))),
        Some(Value::Array(parts)) => serde_json::from_value(Value::Array(parts))
            .map(|p| Some(Content::Parts(p)))
            .map_err(D::Error::custom),
        Some(_) => Err(D::Error::custom(
            "content must be a string, an array of content parts, or null",
        )),
    }
}

/// One part of a message's content. Known types are `text` and `image_url`; others are kept as
/// they came for providers that understand them.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct ContentPart {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_url: Option<ImageUrl>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct ImageUrl {
    pub url: String,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(untagged)]
pub enum Stop {
    One(String),
    Many(Vec<String>),
}

impl Stop {
    pub fn to_vec(&self) -> Vec<String> {
        match self {
            Stop::One(s) => vec![s.clone()],
            Stop::Many(v) => v.clone(),
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct ResponseFormat {
    /// `text`, `json_object` or `json_schema`.
    #[serde(rename = "type")]
    pub kind: String,
    /// For `json_schema`: `{"name", "schema", "strict"}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub json_schema: Option<Value>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl ResponseFormat {
    /// The JSON schema asked for, if any (`json_schema.schema`).
    pub fn schema(&self) -> Option<&Value> {
        self.json_schema.as_ref().and_then(|s| s.get("schema"))
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct Tool {
    #[serde(rename = "type", default = "function_kind")]
    pub kind: String,
    pub function: FunctionDef,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct FunctionDef {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameters: Option<Value>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

fn function_kind() -> String {
    "function".to_owned()
}

/// A complete tool call (requests' assistant history and non-streaming responses).
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct ToolCall {
    #[serde(default)]
    pub id: String,
    #[serde(rename = "type", default = "function_kind")]
    pub kind: String,
    pub function: FunctionCall,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct FunctionCall {
    #[serde(default)]
    pub name: String,
    /// JSON-encoded arguments, as OpenAI sends them.
    #[serde(default)]
    pub arguments: String,
}

/// A non-streaming chat completion.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct ChatCompletion {
    #[serde(default)]
    pub id: String,
    #[serde(default = "completion_object")]
    pub object: String,
    #[serde(default)]
    pub created: u64,
    #[serde(default)]
    pub model: String,
    #[serde(default)]
    pub choices: Vec<Choice>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

fn completion_object() -> String {
    "chat.completion".to_owned()
}

#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct Choice {
    #[serde(default)]
    pub index: u32,
    pub message: AssistantMessage,
    #[serde(default)]
    pub finish_reason: Option<String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct AssistantMessage {
    #[serde(default = "assistant_role")]
    pub role: String,
    #[serde(default)]
    pub content: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_calls: Option<Vec<ToolCall>>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl AssistantMessage {
    pub fn new(content: Option<String>, tool_calls: Option<Vec<ToolCall>>) -> Self {
        Self {
            role: assistant_role(),
            content,
            tool_calls,
            extra: Map::new(),
        }
    }
}

fn assistant_role() -> String {
    "assistant".to_owned()
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
pub struct Usage {
    #[serde(default)]
    pub prompt_tokens: u64,
    #[serde(default)]
    pub completion_tokens: u64,
    #[serde(default)]
    pub total_tokens: u64,
}

impl Usage {
    pub fn new(prompt_tokens: u64, completion_tokens: u64) -> Self {
        Self {
            prompt_tokens,
            completion_tokens,
            total_tokens: prompt_tokens + completion_tokens,
        }
    }
}

/// One streamed chunk (`chat.completion.chunk`).
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct ChatChunk {
    #[serde(default)]
    pub id: String,
    #[serde(default = "chunk_object")]
    pub object: String,
    #[serde(default)]
    pub created: u64,
    #[serde(default)]
    pub model: String,
    #[serde(default)]
    pub choices: Vec<ChunkChoice>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

fn chunk_object() -> String {
    "chat.completion.chunk".to_owned()
}

impl ChatChunk {
    /// A chunk with one choice carrying `delta` and `finish_reason`.
    pub fn with_delta(id: &str, created: u64, delta: Delta, finish_reason: Option<&str>) -> Self {
        Self {
            id: id.to_owned(),
            object: chunk_object(),
            created,
            model: String::new(),
            choices: vec![ChunkChoice {
                index: 0,
                delta,
                finish_reason: finish_reason.map(str::to_owned),
                extra: Map::new(),
            }],
            usage: None,
            extra: Map::new(),
        }
    }

    /// The usage-only chunk sent last when `stream_options.include_usage` is set.
    pub fn usage_only(id: &str, created: u64, usage: Usage) -> Self {
        Self {
            id: id.to_owned(),
            object: chunk_object(),
            created,
            model: String::new(),
            choices: Vec::new(),
            usage: Some(usage),
            extra: Map::new(),
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct ChunkChoice {
    #[serde(default)]
    pub index: u32,
    #[serde(default)]
    pub delta: Delta,
    #[serde(default)]
    pub finish_reason: Option<String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct Delta {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_calls: Option<Vec<ToolCallDelta>>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl Delta {
    pub fn role() -> Self {
        Self {
            role: Some(assistant_role()),
            ..Self::default()
        }
    }

    pub fn content(text: impl Into<String>) -> Self {
        Self {
            content: Some(text.into()),
            ..Self::default()
        }
    }
}

/// A streamed tool-call fragment: OpenAI sends the id and name first, then argument pieces.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct ToolCallDelta {
    #[serde(default)]
    pub index: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub function: Option<FunctionCallDelta>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct FunctionCallDelta {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arguments: Option<String>,
}

impl ToolCallDelta {
    /// A whole tool call sent as one fragment (providers that do not stream arguments).
    pub fn complete(index: u32, call: &ToolCall) -> Self {
        Self {
            index,
            id: Some(call.id.clone()),
            kind: Some(call.kind.clone()),
            function: Some(FunctionCallDelta {
                name: Some(call.function.name.clone()),
                arguments: Some(call.function.arguments.clone()),
            }),
            extra: Map::new(),
        }
    }
}

impl ChatRequest {
    /// Whether the client asked for a final usage chunk in a stream.
    pub fn include_usage(&self) -> bool {
        self.stream_options
            .as_ref()
            .is_some_and(|o| o.include_usage)
    }

    /// The token budget asked for, whichever of the two OpenAI names carried it.
    pub fn max_tokens(&self) -> Option<u64> {
        self.max_completion_tokens.or(self.max_tokens)
    }

    pub fn has_tools(&self) -> bool {
        self.tools.as_ref().is_some_and(|t| !t.is_empty())
    }

    /// Whether the model must be able to call tools: tools given and not switched off.
    pub fn needs_tools(&self) -> bool {
        self.has_tools() && self.tool_choice.as_ref().and_then(Value::as_str) != Some("none")
    }

    /// Checks what serde cannot: ranges, non-empty lists, shapes of free-form fields.
    pub fn validate(&self) -> Result<(), ApiError> {
        if self.messages.is_empty() {
            return Err(ApiError::invalid(
                "messages must contain at least one message",
                "messages",
            ));
        }
        range("temperature", self.temperature, 0.0, 2.0)?;
        range("top_p", self.top_p, 0.0, 1.0)?;
        range("frequency_penalty", self.frequency_penalty, -2.0, 2.0)?;
        range("presence_penalty", self.presence_penalty, -2.0, 2.0)?;
        if self.max_tokens == Some(0) {
            return Err(ApiError::invalid(
                "max_tokens must be at least 1",
                "max_tokens",
            ));
        }
        if self.max_completion_tokens == Some(0) {
            return Err(ApiError::invalid(
                "max_completion_tokens must be at least 1",
                "max_completion_tokens",
            ));
        }
        if self.n == Some(0) {
            return Err(ApiError::invalid("n must be at least 1", "n"));
        }
        for (i, message) in self.messages.iter().enumerate() {
            message.validate(i)?;
        }
        if let Some(tools) = &self.tools {
            for (i, tool) in tools.iter().enumerate() {
                if tool.function.name.trim().is_empty() {
                    return Err(ApiError::invalid(
                        format!("tools[{i}].function.name must not be empty"),
                        format!("tools[{i}].function.name"),
                    ));
                }
            }
        }
        if let Some(choice) = &self.tool_choice {
            validate_tool_choice(choice)?;
        }
        if let Some(format) = &self.response_format {
            if !matches!(format.kind.as_str(), "text" | "json_object" | "json_schema") {
                return Err(ApiError::invalid(
                    format!(
                        "response_format.type must be one of 'text', 'json_object', 'json_schema', got '{}'",
                        format.kind
                    ),
                    "response_format.type",
                ));
            }
        }
        Ok(())
    }
}

impl Message {
    fn validate(&self, i: usize) -> Result<(), ApiError> {
        let Some(Content::Parts(parts)) = &self.content else {
            return Ok(());
        };
        for (j, part) in parts.iter().enumerate() {
            let param = format!("messages[{i}].content[{j}]");
            match part.kind.as_str() {
                "text" if part.text.is_none() => {
                    return Err(ApiError::invalid(
                        format!("{param}: a text part needs a 'text' string"),
                        param,
                    ))
                }
                "image_url" if part.image_url.is_none() => {
                    return Err(ApiError::invalid(
                        format!("{param}: an image_url part needs 'image_url.url'"),
                        param,
                    ))
                }
                _ => {}
            }
        }
        Ok(())
    }
}

fn range(name: &str, value: Option<f64>, min: f64, max: f64) -> Result<(), ApiError> {
    match value {
        Some(v) if !(min..=max).contains(&v) => Err(ApiError::invalid(
            format!("{name} must be between {min} and {max}, got {v}"),
            name,
        )),
        _ => Ok(()),
    }
}

fn validate_tool_choice(choice: &Value) -> Result<(), ApiError> {
    let ok = match choice {
        Value::String(s) => matches!(s.as_str(), "auto" | "none" | "required"),
        Value::Object(o) => o
            .get("function")
            .and_then(|f| f.get("name"))
            .and_then(Value::as_str)
            .is_some_and(|n| !n.is_empty()),
        _ => false,
    };
    if ok {
        Ok(())
    } else {
        Err(ApiError::invalid(
            "tool_choice must be 'auto', 'none', 'required' or {\"type\":\"function\",\"function\":{\"name\":…}}",
            "tool_choice",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(v: Value) -> ChatRequest {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn unknown_fields_are_kept_and_forwarded() {
        let req = parse(json!({
            "model": "groq/x", "messages": [{"role": "user", "content": "hi"}],
            "logprobs": true, "user": "u1", "parallel_tool_calls": false
        }));
        let out = serde_json::to_value(&req).unwrap();
        assert_eq!(out["logprobs"], json!(true));
        assert_eq!(out["user"], json!("u1"));
        assert_eq!(out["parallel_tool_calls"], json!(false));
        assert!(
            out.get("model").is_none(),
            "model is rewritten per provider"
        );
    }

    #[test]
    fn content_accepts_string_parts_and_null() {
        let req = parse(json!({"messages": [
            {"role": "user", "content": "plain"},
            {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "image_url", "image_url": {"url": "data:image/png;base64,AA"}}]},
            {"role": "assistant", "content": null, "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]}
        ]}));
        assert!(matches!(req.messages[0].content, Some(Content::Text(_))));
        assert!(matches!(&req.messages[1].content, Some(Content::Parts(p)) if p.len() == 2));
        assert!(req.messages[2].content.is_none());
        req.validate().unwrap();
    }

    #[test]
    fn content_of_the_wrong_type_is_rejected() {
        let err = serde_json::from_value::<ChatRequest>(
            json!({"messages": [{"role": "user", "content": 42}]}),
        )
        .unwrap_err();
        assert!(
            err.to_string().contains("content must be a string"),
            "{err}"
        );
    }

    #[test]
    fn ranges_are_checked() {
        let mut req = parse(json!({"messages": [{"role": "user", "content": "x"}]}));
        req.temperature = Some(3.0);
        assert!(req.validate().is_err());
        req.temperature = Some(0.0);
        req.validate().unwrap();
        req.top_p = Some(1.5);
        assert!(req.validate().is_err());
    }

    #[test]
    fn empty_messages_are_rejected() {
        let req = parse(json!({"messages": []}));
        assert!(req.validate().is_err());
    }

    #[test]
    fn tool_choice_shapes() {
        for ok in [
            json!("auto"),
            json!("none"),
            json!("required"),
            json!({"type": "function", "function": {"name": "f"}}),
        ] {
            validate_tool_choice(&ok).unwrap();
        }
        for bad in [json!("sometimes"), json!(3), json!({"type": "function"})] {
            assert!(validate_tool_choice(&bad).is_err());
        }
    }
}
