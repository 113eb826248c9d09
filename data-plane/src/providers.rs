//! Providers: one trait, one module per upstream API.
//!
//! - [`ollama`]: Ollama's native API (`/api/chat`, `/api/embed`, `/api/tags`).
//! - [`openai`]: any OpenAI-compatible API (`openai`, `openrouter`, `groq`, `together`).
//! - [`google`]: Gemini REST (`generateContent`, `streamGenerateContent`).
//! - [`echo`]: built in and offline; answers with what it was asked.
//! - [`http`]: what they share: error mapping, line and SSE readers, timeouts.
//! - `scrubbed`: the wrapper every provider gets, scrubbing secrets from what it reports.
//!
//! A provider translates one request for one model and reports failures as an
//! [`UpstreamError`], classified so the router can tell a dead upstream from a bad request.

pub mod echo;
pub mod google;
pub mod http;
pub mod ollama;
pub mod openai;
mod registry;
mod scrubbed;

use std::pin::Pin;
use std::time::Duration;

use async_trait::async_trait;
use axum::http::StatusCode;
use futures_util::Stream;
use mana_llm_shared::ProviderId;

use crate::openai::{
    ChatChunk, ChatCompletion, ChatRequest, Embeddings, EmbeddingsRequest, ModelInfo,
};

pub use registry::{Lookup, Providers, ProvidersConfig, Secret};
pub use scrubbed::{scrub_error, Scrubbed};

/// The chunks of one streamed completion. The first item arriving means the upstream answered.
pub type ChunkStream = Pin<Box<dyn Stream<Item = Result<ChatChunk, UpstreamError>> + Send>>;

#[async_trait]
pub trait Provider: Send + Sync + 'static {
    fn id(&self) -> &ProviderId;

    /// Whether `model` can take `tools`. Providers that cannot tell say yes.
    fn supports_tools(&self, _model: &str) -> bool {
        true
    }

    async fn chat(
        &self,
        request: &ChatRequest,
        model: &str,
    ) -> Result<ChatCompletion, UpstreamError>;

    /// Opens a stream. Returns once the upstream accepted the request (status checked); chunks
    /// follow. `request.include_usage()` asks for a final usage-only chunk.
    async fn chat_stream(
        &self,
        request: &ChatRequest,
        model: &str,
    ) -> Result<ChunkStream, UpstreamError>;

    async fn embeddings(
        &self,
        request: &EmbeddingsRequest,
        model: &str,
    ) -> Result<Embeddings, UpstreamError>;

    /// The provider's models, ids already prefixed with the provider id (`ollama/qwen2.5:7b`).
    async fn list_models(&self) -> Result<Vec<ModelInfo>, UpstreamError>;

    /// Whether the upstream is reachable; the health probe calls this.
    async fn probe(&self) -> Result<(), UpstreamError> {
        self.list_models().await.map(|_| ())
    }
}

/// How a provider call failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum UpstreamError {
    /// A known provider with no credentials.
    #[error("provider '{provider}' is not configured; set {env_var} to enable it")]
    NotConfigured { provider: String, env_var: String },
    /// Connection refused, reset, DNS, TLS: nothing usable came back.
    #[error("upstream unreachable: {0}")]
    Connect(String),
    /// No answer (or no next chunk) within the deadline.
    #[error("upstream timed out: {0}")]
    Timeout(String),
    /// The upstream answered with an error status.
    #[error("upstream returned HTTP {status}: {message}")]
    Status {
        status: u16,
        message: String,
        retry_after: Option<Duration>,
    },
    /// The upstream answered 2xx with something we cannot read, or a stream broke.
    #[error("upstream sent an unreadable response: {0}")]
    Protocol(String),
    /// The provider refused to answer for safety reasons.
    #[error("provider blocked the response ({reason})")]
    Blocked { reason: String },
    /// The model cannot do what the request needs (e.g. tools).
    #[error("{0}")]
    Capability(String),
    /// The request cannot be expressed in this provider's API.
    #[error("{message}")]
    InvalidRequest {
        message: String,
        param: Option<String>,
    },
}

impl From<crate::openai::TokenIdsNotText> for UpstreamError {
    fn from(e: crate::openai::TokenIdsNotText) -> Self {
        Self::Capability(e.to_string())
    }
}

impl UpstreamError {
    pub fn status_code(&self) -> StatusCode {
        match self {
            UpstreamError::NotConfigured { .. } => StatusCode::SERVICE_UNAVAILABLE,
            UpstreamError::Connect(_) | UpstreamError::Protocol(_) => StatusCode::BAD_GATEWAY,
            UpstreamError::Timeout(_) => StatusCode::GATEWAY_TIMEOUT,
            UpstreamError::Status { status, .. } => match *status {
                401 | 403 => StatusCode::BAD_GATEWAY,
                408 => StatusCode::GATEWAY_TIMEOUT,
                422 => StatusCode::BAD_REQUEST,
                429 => StatusCode::TOO_MANY_REQUESTS,
                s @ 400..=499 => StatusCode::from_u16(s).unwrap_or(StatusCode::BAD_REQUEST),
                _ => StatusCode::BAD_GATEWAY,
            },
            UpstreamError::Blocked { .. }
            | UpstreamError::Capability(_)
            | UpstreamError::InvalidRequest { .. } => StatusCode::BAD_REQUEST,
        }
    }

    /// A short bounded label: the OpenAI `error.code`, the log field and the metric label.
    pub fn code(&self) -> &'static str {
        match self {
            UpstreamError::NotConfigured { .. } => "provider_not_configured",
            UpstreamError::Connect(_) => "upstream_unreachable",
            UpstreamError::Timeout(_) => "upstream_timeout",
            UpstreamError::Status { status, .. } => match *status {
                401 | 403 => "upstream_auth",
                408 => "upstream_timeout",
                429 => "upstream_rate_limited",
                400..=499 => "upstream_rejected",
                _ => "upstream_5xx",
            },
            UpstreamError::Protocol(_) => "upstream_protocol",
            UpstreamError::Blocked { .. } => "content_blocked",
            UpstreamError::Capability(_) => "capability_mismatch",
            UpstreamError::InvalidRequest { .. } => "invalid_request",
        }
    }

    /// Whether another provider might succeed where this one failed.
    pub fn is_retryable(&self) -> bool {
        match self {
            UpstreamError::Connect(_) | UpstreamError::Timeout(_) | UpstreamError::Protocol(_) => {
                true
            }
            UpstreamError::Status { status, .. } => {
                *status >= 500 || *status == 429 || *status == 408
            }
            UpstreamError::NotConfigured { .. } | UpstreamError::Capability(_) => true,
            UpstreamError::Blocked { .. } | UpstreamError::InvalidRequest { .. } => false,
        }
    }
}
