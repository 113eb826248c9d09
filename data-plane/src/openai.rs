//! The OpenAI wire format: requests we accept and responses we send.
//!
//! Types keep every field they do not model in a flattened `extra` map, so unknown fields are
//! forwarded to providers that understand them and upstream extras reach the client.

pub mod chat;
pub mod embeddings;
pub mod error;
pub mod models;
pub mod responses;

pub use chat::{
    AssistantMessage, ChatChunk, ChatCompletion, ChatRequest, Choice, ChunkChoice, Content,
    ContentPart, Delta, FunctionCall, FunctionCallDelta, FunctionDef, ImageUrl, Message,
    ResponseFormat, Role, Stop, StreamOptions, Tool, ToolCall, ToolCallDelta, Usage,
};
pub use embeddings::{EmbeddingInput, Embeddings, EmbeddingsRequest};
pub use error::{RequestError, TokenIdsNotText};
pub use models::{ModelInfo, ModelList};
pub use responses::ResponsesRequest;

/// Seconds since the Unix epoch, for `created` fields.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// A fresh `chatcmpl-…` id for providers that do not give one.
pub fn completion_id() -> String {
    format!("chatcmpl-{}", uuid::Uuid::new_v4().simple())
}

/// A fresh `call_…` id for tool calls whose provider does not give one.
pub fn tool_call_id() -> String {
    let id = uuid::Uuid::new_v4().simple().to_string();
    format!("call_{}", &id[..24])
}
