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
        self.upstream
            .client
            .post(self.upstream.url(path))
            .json(body)
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
mod tests {
    use std::time::Duration;

    use futures_util::stream;
    use mana_llm_mock::{MockProvider, Reply, Route};
    use serde_json::json;

    use super::*;

    fn ollama(mock: &MockProvider) -> Ollama {
        let timeout = Duration::from_secs(5);
        Ollama::new(Upstream::new(
            reqwest::Client::new(),
            &mock.url(),
            timeout,
            timeout,
        ))
    }

    fn chat_request(v: Value) -> ChatRequest {
        serde_json::from_value(v).unwrap()
    }

    async fn collect(
        s: impl Stream<Item = Result<ChatChunk, UpstreamError>>,
    ) -> Vec<Result<ChatChunk, UpstreamError>> {
        s.collect().await
    }

    fn ok_lines(
        lines: &[&str],
    ) -> impl Stream<Item = Result<String, UpstreamError>> + Send + 'static {
        let lines: Vec<_> = lines.iter().map(|l| Ok(l.to_string())).collect();
        stream::iter(lines)
    }

    #[tokio::test]
    async fn streams_stop_at_done_and_at_errors() {
        let items = collect(chunks(
            ok_lines(&[
                r#"{"message":{"content":"a"},"done":false}"#,
                r#"{"message":{"content":""},"done":true}"#,
                "this line is never read",
            ]),
            StreamState::new(false),
        ))
        .await;
        assert_eq!(items.len(), 3);
        assert!(items.iter().all(Result::is_ok));

        let items = collect(chunks(
            ok_lines(&[r#"{"message":{"content":"a"},"done":false}"#]),
            StreamState::new(false),
        ))
        .await;
        assert!(
            matches!(items.last(), Some(Err(UpstreamError::Protocol(m))) if m == "stream ended before done")
        );

        let broken = stream::iter(vec![
            Ok(r#"{"message":{"content":"a"},"done":false}"#.to_owned()),
            Err(UpstreamError::Timeout("stalled".to_owned())),
            Ok(r#"{"message":{"content":""},"done":true}"#.to_owned()),
        ]);
        let items = collect(chunks(broken, StreamState::new(false))).await;
        assert_eq!(items.len(), 3, "role, content, the timeout; nothing after");
        assert!(matches!(items[2], Err(UpstreamError::Timeout(_))));

        let items = collect(chunks(
            ok_lines(&[r#"{"error":"boom"}"#, r#"{"done":true}"#]),
            StreamState::new(false),
        ))
        .await;
        assert_eq!(items.len(), 1);
        assert!(items[0].is_err());
    }

    #[tokio::test]
    async fn chat_against_the_mock() {
        let mock = MockProvider::start().await;
        let provider = ollama(&mock);
        let request = chat_request(json!({
            "messages": [{"role": "user", "content": "hi"}],
            "response_format": {"type": "json_object"}, "max_tokens": 9
        }));
        let answer = provider.chat(&request, "qwen2.5:7b").await.unwrap();
        assert_eq!(
            answer.choices[0].message.content.as_deref(),
            Some("Hello from mock")
        );
        assert_eq!(answer.choices[0].finish_reason.as_deref(), Some("stop"));
        let sent = mock.last_request(Route::OllamaChat).unwrap().body;
        assert_eq!(sent["model"], "qwen2.5:7b");
        assert_eq!(sent["stream"], false);
        assert_eq!(sent["format"], "json");
        assert_eq!(sent["options"]["num_predict"], 9);

        mock.push(Route::OllamaChat, Reply::status(500));
        assert!(matches!(
            provider.chat(&request, "qwen2.5:7b").await,
            Err(UpstreamError::Status { status: 500, .. })
        ));
        mock.push(Route::OllamaChat, Reply::malformed());
        assert!(matches!(
            provider.chat(&request, "qwen2.5:7b").await,
            Err(UpstreamError::Protocol(_))
        ));
    }

    #[tokio::test]
    async fn tools_need_a_capable_model() {
        let mock = MockProvider::start().await;
        let provider = ollama(&mock);
        let mut v = json!({
            "messages": [{"role": "user", "content": "hi"}],
            "tools": [{"type": "function", "function": {"name": "f"}}]
        });
        let e = provider
            .chat(&chat_request(v.clone()), "gemma3:4b")
            .await
            .unwrap_err();
        assert!(matches!(&e, UpstreamError::Capability(m) if m.contains("ollama/gemma3:4b")));
        assert!(provider
            .chat_stream(&chat_request(v.clone()), "gemma3:4b")
            .await
            .is_err());
        assert_eq!(mock.calls(Route::OllamaChat), 0);
        assert!(provider.supports_tools("qwen2.5:7b"));
        assert!(!provider.supports_tools("gemma3:4b"));
        v["tool_choice"] = json!("none");
        provider.chat(&chat_request(v), "gemma3:4b").await.unwrap();
    }

    #[tokio::test]
    async fn streaming_against_the_mock() {
        let mock = MockProvider::start().await;
        let provider = ollama(&mock);
        let request = chat_request(json!({
            "messages": [{"role": "user", "content": "hi"}],
            "stream_options": {"include_usage": true},
            "response_format": {"type": "json_object"}
        }));
        let items = collect(provider.chat_stream(&request, "m").await.unwrap()).await;
        let chunks: Vec<ChatChunk> = items.into_iter().map(Result::unwrap).collect();
        let text: String = chunks
            .iter()
            .flat_map(|c| c.choices.iter().filter_map(|ch| ch.delta.content.clone()))
            .collect();
        assert_eq!(text, "Hello from mock");
        assert!(chunks.last().unwrap().usage.is_some());
        let sent = mock.last_request(Route::OllamaChat).unwrap().body;
        assert_eq!(sent["stream"], true);
        assert_eq!(sent["format"], "json");

        mock.push(
            Route::OllamaChat,
            Reply::tool_call("get_w", json!({"city": "Berlin"})),
        );
        let items = collect(provider.chat_stream(&request, "qwen3").await.unwrap()).await;
        let chunks: Vec<ChatChunk> = items.into_iter().map(Result::unwrap).collect();
        let call = chunks
            .iter()
            .find_map(|c| c.choices[0].delta.tool_calls.clone())
            .unwrap();
        assert_eq!(
            call[0].function.as_ref().unwrap().name.as_deref(),
            Some("get_w")
        );
        let finish = chunks
            .iter()
            .rev()
            .find_map(|c| c.choices.first()?.finish_reason.clone());
        assert_eq!(finish.as_deref(), Some("tool_calls"));

        mock.push(Route::OllamaChat, Reply::status(503));
        assert!(matches!(
            provider.chat_stream(&request, "m").await,
            Err(UpstreamError::Status { status: 503, .. })
        ));

        mock.push(Route::OllamaChat, Reply::ok().drop_after(1));
        let items = collect(provider.chat_stream(&request, "m").await.unwrap()).await;
        assert!(items.last().unwrap().is_err());
    }

    #[tokio::test]
    async fn embeddings_and_models_against_the_mock() {
        let mock = MockProvider::start().await;
        let provider = ollama(&mock);
        let request: EmbeddingsRequest =
            serde_json::from_value(json!({"input": ["a b", "c"], "dimensions": 8})).unwrap();
        let e = provider
            .embeddings(&request, "nomic-embed-text")
            .await
            .unwrap();
        assert_eq!(e.vectors.len(), 2);
        let sent = mock.last_request(Route::OllamaEmbed).unwrap().body;
        assert_eq!(
            sent,
            json!({"model": "nomic-embed-text", "input": ["a b", "c"], "dimensions": 8})
        );

        let tokens: EmbeddingsRequest = serde_json::from_value(json!({"input": [1, 2]})).unwrap();
        assert!(matches!(
            provider.embeddings(&tokens, "m").await,
            Err(UpstreamError::InvalidRequest { .. })
        ));

        let models = provider.list_models().await.unwrap();
        assert_eq!(models.len(), 1);
        let m = serde_json::to_value(&models[0]).unwrap();
        assert_eq!(m["id"], "ollama/mock-model:latest");
        assert_eq!(m["created"], 1_767_225_600);
        assert_eq!(m["owned_by"], "ollama");
    }
}
