//! Gemini over its REST API (`generateContent`, `streamGenerateContent`, `batchEmbedContents`,
//! `models`), called directly with reqwest.
//!
//! The key travels in the `x-goog-api-key` header, never in the URL: URLs end up in error
//! messages and logs. The requested model is used as given. A stream is returned only once
//! Gemini answered with a success status, so a failing Google can still be fallen back from.
//! The translation lives in [`request`] and [`response`] as pure functions.

mod request;
mod response;

pub use request::generate_content;

use async_trait::async_trait;
use futures_util::StreamExt;
use mana_llm_shared::ProviderId;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::http::{read_json, send, sse_data, Upstream};
use super::{ChunkStream, Provider, Secret, UpstreamError};
use crate::openai::{ChatCompletion, ChatRequest, Embeddings, EmbeddingsRequest, ModelInfo};
use response::{GenerateResponse, StreamState};

const KEY_HEADER: &str = "x-goog-api-key";

/// Pages of the model list read at most; Google has a few dozen models, one page holds 1000.
const MAX_MODEL_PAGES: usize = 5;

pub struct Google {
    id: ProviderId,
    upstream: Upstream,
    api_key: Secret,
}

#[derive(Deserialize)]
struct EmbedResponse {
    #[serde(default)]
    embeddings: Vec<EmbedValues>,
}

#[derive(Deserialize)]
struct EmbedValues {
    #[serde(default)]
    values: Vec<f64>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ModelsPage {
    #[serde(default)]
    models: Vec<GeminiModel>,
    #[serde(default)]
    next_page_token: Option<String>,
}

#[derive(Deserialize)]
struct GeminiModel {
    name: String,
}

impl Google {
    pub fn new(upstream: Upstream, api_key: Secret) -> Self {
        Self {
            id: ProviderId::new("google"),
            upstream,
            api_key,
        }
    }

    fn post<T: Serialize + ?Sized>(&self, path: &str, body: &T) -> reqwest::RequestBuilder {
        self.upstream
            .post(path)
            .header(KEY_HEADER, self.api_key.expose())
            .json(body)
    }
}

/// `/models/{model}:{method}`. The model lands in the URL path, so anything that could
/// change the path or start a query is refused rather than sent.
fn method_path(model: &str, method: &str) -> Result<String, UpstreamError> {
    let valid = !model.is_empty()
        && model
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'));
    if !valid {
        return Err(UpstreamError::InvalidRequest {
            message: format!("'{model}' is not a valid Gemini model name"),
            param: Some("model".to_owned()),
        });
    }
    Ok(format!("/models/{model}:{method}"))
}

/// The body of `batchEmbedContents`: one request per input text.
fn embed_request(model: &str, texts: &[String], dimensions: Option<u32>) -> Value {
    let requests: Vec<Value> = texts
        .iter()
        .map(|text| {
            let mut r = json!({
                "model": format!("models/{model}"),
                "content": {"parts": [{"text": text}]},
            });
            if let Some(d) = dimensions {
                r["outputDimensionality"] = json!(d);
            }
            r
        })
        .collect();
    json!({"requests": requests})
}

#[async_trait]
impl Provider for Google {
    fn id(&self) -> &ProviderId {
        &self.id
    }

    async fn chat(
        &self,
        request: &ChatRequest,
        model: &str,
    ) -> Result<ChatCompletion, UpstreamError> {
        let path = method_path(model, "generateContent")?;
        let body = request::generate_content(request)?;
        let answer: GenerateResponse = self.upstream.call_json(self.post(&path, &body)).await?;
        response::completion(answer)
    }

    async fn chat_stream(
        &self,
        request: &ChatRequest,
        model: &str,
    ) -> Result<ChunkStream, UpstreamError> {
        let path = method_path(model, "streamGenerateContent")? + "?alt=sse";
        let body = request::generate_content(request)?;
        let answer = self.upstream.open_stream(self.post(&path, &body)).await?;
        let mut events = Box::pin(sse_data(answer, self.upstream.idle_timeout));
        let mut state = StreamState::new(request.include_usage());
        let chunks = async_stream::stream! {
            while let Some(event) = events.next().await {
                let chunks = match event {
                    Ok(data) => state.payload(&data),
                    Err(e) => Err(e),
                };
                match chunks {
                    Ok(chunks) => {
                        for chunk in chunks {
                            yield Ok(chunk);
                        }
                    }
                    Err(e) => {
                        yield Err(e);
                        return;
                    }
                }
            }
            match state.end() {
                Ok(chunks) => {
                    for chunk in chunks {
                        yield Ok(chunk);
                    }
                }
                Err(e) => yield Err(e),
            }
        };
        Ok(Box::pin(chunks))
    }

    async fn embeddings(
        &self,
        request: &EmbeddingsRequest,
        model: &str,
    ) -> Result<Embeddings, UpstreamError> {
        let texts = request.input.texts()?;
        let path = method_path(model, "batchEmbedContents")?;
        let body = embed_request(model, texts, request.dimensions);
        let answer: EmbedResponse = self.upstream.call_json(self.post(&path, &body)).await?;
        if answer.embeddings.len() != texts.len() {
            return Err(UpstreamError::Protocol(format!(
                "Gemini returned {} embeddings for {} inputs",
                answer.embeddings.len(),
                texts.len()
            )));
        }
        Ok(Embeddings {
            vectors: answer.embeddings.into_iter().map(|e| e.values).collect(),
            // The batch API reports no token usage; a word count is the estimate we can give.
            prompt_tokens: texts
                .iter()
                .map(|t| t.split_whitespace().count() as u64)
                .sum(),
        })
    }

    async fn list_models(&self) -> Result<Vec<ModelInfo>, UpstreamError> {
        let fetch = async {
            let mut models = Vec::new();
            let mut page_token: Option<String> = None;
            for _ in 0..MAX_MODEL_PAGES {
                let mut request = self
                    .upstream
                    .client
                    .get(self.upstream.url("/models"))
                    .header(KEY_HEADER, self.api_key.expose())
                    .query(&[("pageSize", "1000")]);
                if let Some(token) = &page_token {
                    request = request.query(&[("pageToken", token)]);
                }
                let page: ModelsPage = read_json(send(request).await?).await?;
                models.extend(page.models.into_iter().map(|m| {
                    let name = m.name.strip_prefix("models/").unwrap_or(&m.name);
                    ModelInfo::new(format!("google/{name}"), 0, "google")
                }));
                match page.next_page_token.filter(|t| !t.is_empty()) {
                    Some(token) => page_token = Some(token),
                    None => break,
                }
            }
            Ok(models)
        };
        tokio::time::timeout(self.upstream.timeout, fetch)
            .await
            .map_err(|_| UpstreamError::Timeout("model list".to_owned()))?
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use mana_llm_mock::{MockProvider, Reply, Route};

    use super::*;

    fn google(mock: &MockProvider) -> Google {
        let upstream = Upstream::new(
            reqwest::Client::new(),
            &mock.gemini_base(),
            Duration::from_secs(5),
            Duration::from_secs(5),
        );
        let key = Secret::from_env(Some("AIza-unit".to_owned())).unwrap();
        Google::new(upstream, key)
    }

    fn chat(stream: bool) -> ChatRequest {
        serde_json::from_value(json!({
            "messages": [{"role": "user", "content": "hi"}],
            "stream": stream,
            "stream_options": {"include_usage": true}
        }))
        .unwrap()
    }

    #[tokio::test]
    async fn chat_sends_the_key_in_a_header_and_reads_the_answer() {
        let mock = MockProvider::start().await;
        let c = google(&mock).chat(&chat(false), "gemini-x").await.unwrap();
        assert_eq!(c.choices[0].finish_reason.as_deref(), Some("stop"));
        assert!(c.usage.is_some());
        let sent = mock.last_request(Route::GeminiGenerate).unwrap();
        assert_eq!(sent.model.as_deref(), Some("gemini-x"));
        assert_eq!(sent.headers[KEY_HEADER], "AIza-unit");
        assert!(!sent.query.unwrap_or_default().contains("AIza"));
    }

    #[tokio::test]
    async fn streams_fail_before_the_first_chunk_and_otherwise_end_with_usage() {
        let mock = MockProvider::start().await;
        let provider = google(&mock);
        mock.push(Route::GeminiStream, Reply::status(503));
        let err = provider.chat_stream(&chat(true), "gemini-x").await.err();
        assert!(
            matches!(err, Some(UpstreamError::Status { status: 503, .. })),
            "{err:?}"
        );

        let stream = provider.chat_stream(&chat(true), "gemini-x").await.unwrap();
        let chunks: Vec<_> = stream.collect().await;
        let chunks: Vec<_> = chunks.into_iter().map(Result::unwrap).collect();
        assert_eq!(
            chunks[0].choices[0].delta.role.as_deref(),
            Some("assistant")
        );
        let text: String = chunks
            .iter()
            .filter_map(|c| c.choices.first()?.delta.content.clone())
            .collect();
        assert!(!text.is_empty());
        assert!(chunks.last().unwrap().usage.is_some());
        let sent = mock.last_request(Route::GeminiStream).unwrap();
        assert_eq!(sent.query.as_deref(), Some("alt=sse"));
    }

    #[tokio::test]
    async fn embeddings_and_models() {
        let mock = MockProvider::start().await;
        let provider = google(&mock);
        let request: EmbeddingsRequest =
            serde_json::from_value(json!({"input": ["a b", "c"]})).unwrap();
        let e = provider
            .embeddings(&request, "text-embedding-004")
            .await
            .unwrap();
        assert_eq!(e.vectors.len(), 2);
        assert_eq!(e.prompt_tokens, 3);
        let models = provider.list_models().await.unwrap();
        assert!(
            models.iter().any(|m| m.id == "google/gemini-mock"),
            "{models:?}"
        );
        let sent = mock.last_request(Route::GeminiModels).unwrap();
        assert_eq!(sent.headers[KEY_HEADER], "AIza-unit");
    }

    #[test]
    fn model_names_cannot_escape_the_path() {
        assert_eq!(
            method_path("gemini-2.5-flash", "generateContent").unwrap(),
            "/models/gemini-2.5-flash:generateContent"
        );
        for bad in ["", "a/../b", "m:x?key=1", "m#f", "m n"] {
            assert!(method_path(bad, "generateContent").is_err(), "{bad}");
        }
    }

    #[test]
    fn embed_requests_name_the_model_once_per_input() {
        let texts = vec!["a b".to_owned(), "c".to_owned()];
        assert_eq!(
            embed_request("text-embedding-004", &texts, Some(256)),
            json!({"requests": [
                {"model": "models/text-embedding-004", "content": {"parts": [{"text": "a b"}]}, "outputDimensionality": 256},
                {"model": "models/text-embedding-004", "content": {"parts": [{"text": "c"}]}, "outputDimensionality": 256}
            ]})
        );
        assert!(embed_request("m", &texts, None)["requests"][0]
            .get("outputDimensionality")
            .is_none());
    }
}
