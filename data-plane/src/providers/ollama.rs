//! Ollama over its native API: `/api/chat` (JSON and NDJSON streams), `/api/embed`, `/api/tags`.
//!
//! The native API rather than Ollama's `/v1` shim because it is the one that takes `format`
//! schemas, `options` and images on every Ollama version in use. What the native API cannot
//! express is refused with a 400 naming the field (http image URLs, audio parts), never
//! dropped silently. Answers are passed on as the model wrote them. The translation lives in
//! [`convert`] as pure functions.

mod convert;

use async_trait::async_trait;
use futures_util::{Stream, StreamExt};
use mana_llm_shared::ProviderId;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::http::{lines, read_json, send, Upstream};
use super::{ChunkStream, Provider, UpstreamError};
use crate::openai::{
    ChatChunk, ChatCompletion, ChatRequest, Embeddings, EmbeddingsRequest, ModelInfo,
};
pub use convert::chat_body;
use convert::{ChatResponse, StreamState};

pub struct Ollama {
    id: ProviderId,
    upstream: Upstream,
}

#[derive(Deserialize)]
struct EmbedResponse {
    #[serde(default)]
    embeddings: Vec<Vec<f64>>,
    #[serde(default)]
    prompt_eval_count: u64,
}

#[derive(Deserialize)]
struct TagsResponse {
    #[serde(default)]
    models: Vec<Tag>,
}

#[derive(Deserialize)]
struct Tag {
    #[serde(default)]
    name: String,
    /// Kept loose: a strange timestamp must not cost the whole listing.
    #[serde(default)]
    modified_at: Value,
}

impl Ollama {
    pub fn new(upstream: Upstream) -> Self {
        Self {
            id: ProviderId::new("ollama"),
            upstream,
        }
    }

    fn post<T: Serialize + ?Sized>(&self, path: &str, body: &T) -> reqwest::RequestBuilder {
        self.upstream.post(path).json(body)
    }

    /// Refuses tools for a model that cannot take them before anything is sent, so the router
    /// can move on to a tool-capable model without waiting for Ollama to load this one.
    fn check_tools(&self, request: &ChatRequest, model: &str) -> Result<(), UpstreamError> {
        if convert::sends_tools(request) && !self.supports_tools(model) {
            return Err(UpstreamError::Capability(format!(
                "ollama/{model} does not support tool calling; choose a tool-capable model (e.g. ollama/qwen2.5:7b or groq/llama-3.3-70b-versatile)"
            )));
        }
        Ok(())
    }
}

/// The chunks of one stream: every line through `state`, ending at `done`, at the first error,
/// or with an error if the body ends before `done`.
fn chunks<S>(
    lines: S,
    mut state: StreamState,
) -> impl Stream<Item = Result<ChatChunk, UpstreamError>>
where
    S: Stream<Item = Result<String, UpstreamError>> + Send + 'static,
{
    async_stream::stream! {
        let mut lines = Box::pin(lines);
        while let Some(line) = lines.next().await {
            match line.and_then(|line| state.line(&line)) {
                Ok(chunks) => {
                    for chunk in chunks {
                        yield Ok(chunk);
                    }
                    // Ollama closes after `done`; not waiting for that frees the connection
                    // even from a server that lingers.
                    if state.is_done() {
                        return;
                    }
                }
                Err(e) => {
                    yield Err(e);
                    return;
                }
            }
        }
        if let Err(e) = state.end() {
            yield Err(e);
        }
    }
}

#[async_trait]
impl Provider for Ollama {
    fn id(&self) -> &ProviderId {
        &self.id
    }

    fn supports_tools(&self, model: &str) -> bool {
        convert::tool_capable(model)
    }

    async fn chat(
        &self,
        request: &ChatRequest,
        model: &str,
    ) -> Result<ChatCompletion, UpstreamError> {
        self.check_tools(request, model)?;
        let body = convert::chat_body(request, model, false)?;
        let answer: ChatResponse = self
            .upstream
            .call_json(self.post("/api/chat", &body))
            .await?;
        convert::completion(answer)
    }

    async fn chat_stream(
        &self,
        request: &ChatRequest,
        model: &str,
    ) -> Result<ChunkStream, UpstreamError> {
        self.check_tools(request, model)?;
        let body = convert::chat_body(request, model, true)?;
        let answer = self
            .upstream
            .open_stream(self.post("/api/chat", &body))
            .await?;
        let lines = lines(answer, self.upstream.idle_timeout);
        let state = StreamState::new(request.include_usage());
        Ok(Box::pin(chunks(lines, state)))
    }

    async fn embeddings(
        &self,
        request: &EmbeddingsRequest,
        model: &str,
    ) -> Result<Embeddings, UpstreamError> {
        let texts = request.input.texts()?;
        let body = convert::embed_body(model, texts, request.dimensions);
        let answer: EmbedResponse = self
            .upstream
            .call_json(self.post("/api/embed", &body))
            .await?;
        if answer.embeddings.len() != texts.len() {
            return Err(UpstreamError::Protocol(format!(
                "ollama returned {} embeddings for {} inputs",
                answer.embeddings.len(),
                texts.len()
            )));
        }
        Ok(Embeddings {
            vectors: answer.embeddings,
            prompt_tokens: answer.prompt_eval_count,
        })
    }

    async fn list_models(&self) -> Result<Vec<ModelInfo>, UpstreamError> {
        let request = self.upstream.client.get(self.upstream.url("/api/tags"));
        let fetch = async { read_json::<TagsResponse>(send(request).await?).await };
        let tags = tokio::time::timeout(self.upstream.timeout, fetch)
            .await
            .map_err(|_| UpstreamError::Timeout("model list".to_owned()))??;
        Ok(tags
            .models
            .into_iter()
            .filter(|tag| !tag.name.is_empty())
            .map(|tag| {
                let created = tag
                    .modified_at
                    .as_str()
                    .and_then(convert::unix_seconds)
                    .unwrap_or(0);
                ModelInfo::new(format!("ollama/{}", tag.name), created, "ollama")
            })
            .collect())
    }
}

#[cfg(test)]
mod tests;
