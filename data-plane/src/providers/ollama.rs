//! Ollama's native API (stub: being written).

use async_trait::async_trait;
use mana_llm_shared::ProviderId;

use super::http::Upstream;
#[allow(unused_imports)]
use super::Secret;
use super::{ChunkStream, Provider, UpstreamError};
use crate::openai::{ChatCompletion, ChatRequest, Embeddings, EmbeddingsRequest, ModelInfo};

#[allow(dead_code)]
pub struct Ollama {
    id: ProviderId,
    upstream: Upstream,
}

impl Ollama {
    pub fn new(upstream: Upstream) -> Self {
        Self {
            id: ProviderId::new("ollama"),
            upstream,
        }
    }
}

#[async_trait]
impl Provider for Ollama {
    fn id(&self) -> &ProviderId {
        &self.id
    }

    async fn chat(
        &self,
        _request: &ChatRequest,
        _model: &str,
    ) -> Result<ChatCompletion, UpstreamError> {
        Err(UpstreamError::Protocol("not yet".into()))
    }

    async fn chat_stream(
        &self,
        _request: &ChatRequest,
        _model: &str,
    ) -> Result<ChunkStream, UpstreamError> {
        Err(UpstreamError::Protocol("not yet".into()))
    }

    async fn embeddings(
        &self,
        _request: &EmbeddingsRequest,
        _model: &str,
    ) -> Result<Embeddings, UpstreamError> {
        Err(UpstreamError::Protocol("not yet".into()))
    }

    async fn list_models(&self) -> Result<Vec<ModelInfo>, UpstreamError> {
        Ok(Vec::new())
    }
}
