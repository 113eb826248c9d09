//! OpenAI-compatible providers (`openai`, `openrouter`, `groq`, `together`, and any declared
//! later): the request passes through with only `model` and `stream` rewritten, so every field
//! the client sent — `response_format`, `tools`, `stream_options`, `logprobs`, … — reaches the
//! upstream, and every field the upstream sends back reaches the client.

use async_trait::async_trait;
use futures_util::StreamExt;
use mana_llm_shared::ProviderId;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::http::{read_json, sse_data, Upstream};
use super::{ChunkStream, Provider, Secret, UpstreamError};
use crate::openai::{
    ChatChunk, ChatCompletion, ChatRequest, Embeddings, EmbeddingsRequest, ModelInfo,
};

pub struct OpenAiCompatible {
    id: ProviderId,
    upstream: Upstream,
    /// `None` for local servers that take no key.
    api_key: Option<Secret>,
}

/// What we send: the client's request with our `model` and `stream`.
#[derive(Serialize)]
struct Outgoing<'a, T> {
    model: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    stream: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    encoding_format: Option<&'static str>,
    #[serde(flatten)]
    request: &'a T,
}

#[derive(Deserialize)]
struct EmbeddingData {
    #[serde(default)]
    index: usize,
    embedding: Vec<f64>,
}

#[derive(Deserialize)]
struct EmbeddingResponse {
    data: Vec<EmbeddingData>,
    #[serde(default)]
    usage: Option<EmbeddingUsage>,
}

#[derive(Deserialize)]
struct EmbeddingUsage {
    #[serde(default)]
    prompt_tokens: u64,
}

#[derive(Deserialize)]
struct ModelsResponse {
    #[serde(default)]
    data: Vec<ModelInfo>,
}

impl OpenAiCompatible {
    pub fn new(id: ProviderId, upstream: Upstream, api_key: Option<Secret>) -> Self {
        Self {
            id,
            upstream,
            api_key,
        }
    }

    fn authorized(&self, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.api_key {
            Some(key) => request.bearer_auth(key.expose()),
            None => request,
        }
    }

    fn post<T: Serialize>(&self, path: &str, body: &T) -> reqwest::RequestBuilder {
        self.authorized(self.upstream.post(path)).json(body)
    }

    fn post_chat(
        &self,
        request: &ChatRequest,
        model: &str,
        stream: bool,
    ) -> Result<reqwest::RequestBuilder, UpstreamError> {
        let body = chat_body(request, model, stream)?;
        Ok(self
            .authorized(self.upstream.post("/chat/completions"))
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body))
    }
}

/// The body sent upstream for a chat request: the client's request with our `model` (and
/// `stream` when streaming), everything else passed through.
pub fn chat_body(
    request: &ChatRequest,
    model: &str,
    stream: bool,
) -> Result<Vec<u8>, UpstreamError> {
    let body = Outgoing {
        model,
        stream: stream.then_some(true),
        encoding_format: None,
        request,
    };
    serde_json::to_vec(&body)
        .map_err(|e| UpstreamError::Protocol(format!("cannot encode the request: {e}")))
}

/// An upstream stream line: a chunk, the end, or an in-band error.
pub fn parse_chunk(data: &str) -> Option<Result<ChatChunk, UpstreamError>> {
    if data.trim() == "[DONE]" {
        return None;
    }
    Some(match serde_json::from_str::<ChatChunk>(data) {
        Ok(chunk) => match chunk.extra.get("error") {
            Some(error) => Err(UpstreamError::Protocol(format!(
                "upstream reported an error mid-stream: {}",
                error
                    .get("message")
                    .and_then(Value::as_str)
                    .unwrap_or("(no message)")
            ))),
            None => Ok(chunk),
        },
        Err(e) => Err(UpstreamError::Protocol(format!(
            "invalid stream chunk: {e}"
        ))),
    })
}

#[async_trait]
impl Provider for OpenAiCompatible {
    fn id(&self) -> &ProviderId {
        &self.id
    }

    async fn chat(
        &self,
        request: &ChatRequest,
        model: &str,
    ) -> Result<ChatCompletion, UpstreamError> {
        let completion: ChatCompletion = self
            .upstream
            .call_json(self.post_chat(request, model, false)?)
            .await?;
        if completion.choices.is_empty() {
            return Err(UpstreamError::Protocol(
                "the answer has no choices".to_owned(),
            ));
        }
        Ok(completion)
    }

    async fn chat_stream(
        &self,
        request: &ChatRequest,
        model: &str,
    ) -> Result<ChunkStream, UpstreamError> {
        let response = self
            .upstream
            .open_stream(self.post_chat(request, model, true)?)
            .await?;
        let chunks = sse_data(response, self.upstream.idle_timeout)
            .map(|data| data.map(|d| parse_chunk(&d)))
            // `[DONE]` ends the stream; transport errors pass through.
            .take_while(|item| std::future::ready(!matches!(item, Ok(None))))
            .filter_map(|item| async move {
                match item {
                    Ok(Some(chunk)) => Some(chunk),
                    Ok(None) => None,
                    Err(e) => Some(Err(e)),
                }
            });
        Ok(Box::pin(chunks))
    }

    async fn embeddings(
        &self,
        request: &EmbeddingsRequest,
        model: &str,
    ) -> Result<Embeddings, UpstreamError> {
        let body = Outgoing {
            model,
            stream: None,
            encoding_format: Some("float"),
            request,
        };
        let request = self.post("/embeddings", &body);
        let mut response: EmbeddingResponse = self.upstream.call_json(request).await?;
        response.data.sort_by_key(|d| d.index);
        Ok(Embeddings {
            vectors: response.data.into_iter().map(|d| d.embedding).collect(),
            prompt_tokens: response.usage.map_or(0, |u| u.prompt_tokens),
        })
    }

    async fn list_models(&self) -> Result<Vec<ModelInfo>, UpstreamError> {
        let request = self.authorized(self.upstream.client.get(self.upstream.url("/models")));
        let response = tokio::time::timeout(self.upstream.timeout, super::http::send(request))
            .await
            .map_err(|_| UpstreamError::Timeout("model list".to_owned()))??;
        let models: ModelsResponse = read_json(response).await?;
        Ok(models
            .data
            .into_iter()
            .map(|m| {
                let owner = if m.owned_by.is_empty() {
                    self.id.as_str()
                } else {
                    &m.owned_by
                };
                ModelInfo::new(format!("{}/{}", self.id, m.id), m.created, owner)
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn outgoing_rewrites_model_and_keeps_everything_else() {
        let request: ChatRequest = serde_json::from_value(json!({
            "model": "groq/llama", "stream": true,
            "messages": [{"role": "user", "content": "hi"}],
            "response_format": {"type": "json_object"},
            "tools": [{"type": "function", "function": {"name": "f", "parameters": {}}}],
            "logit_bias": {"50256": -100}
        }))
        .unwrap();
        let body = serde_json::to_value(Outgoing {
            model: "llama",
            stream: Some(true),
            encoding_format: None,
            request: &request,
        })
        .unwrap();
        assert_eq!(body["model"], "llama");
        assert_eq!(body["stream"], true);
        assert_eq!(body["response_format"]["type"], "json_object");
        assert_eq!(body["tools"][0]["function"]["name"], "f");
        assert_eq!(body["logit_bias"]["50256"], -100);
    }

    #[test]
    fn stream_lines() {
        assert!(parse_chunk("[DONE]").is_none());
        let chunk = parse_chunk(r#"{"id":"a","choices":[{"index":0,"delta":{"content":"x"}}]}"#)
            .unwrap()
            .unwrap();
        assert_eq!(chunk.choices[0].delta.content.as_deref(), Some("x"));
        assert!(parse_chunk(r#"{"error":{"message":"overloaded"}}"#)
            .unwrap()
            .is_err());
        assert!(parse_chunk("{not json").unwrap().is_err());
    }
}
