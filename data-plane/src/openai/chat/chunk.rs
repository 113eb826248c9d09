//! Streamed answers: `chat.completion.chunk` and its deltas.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::response::assistant_role;
use super::{ToolCall, Usage};

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
