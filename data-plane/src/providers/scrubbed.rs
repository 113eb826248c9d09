//! The edge where upstream text enters the process: every provider is wrapped in
//! [`Scrubbed`] when it joins a [`Providers`](super::Providers) set, so every error it reports
//! (a call's, each stream item's, a probe's) has the process's secrets replaced before anything
//! logs, stores or answers it.

use std::sync::Arc;

use async_trait::async_trait;
use futures_util::StreamExt;
use mana_llm_shared::ProviderId;

use super::{ChunkStream, Provider, UpstreamError};
use crate::openai::{
    ChatChunk, ChatCompletion, ChatRequest, Embeddings, EmbeddingsRequest, ModelInfo,
};
use crate::scrub::Scrubber;

pub struct Scrubbed {
    inner: Arc<dyn Provider>,
    scrubber: Arc<Scrubber>,
}

impl Scrubbed {
    pub fn new(inner: Arc<dyn Provider>, scrubber: Arc<Scrubber>) -> Self {
        Self { inner, scrubber }
    }
}

/// `e` with every text it carries scrubbed.
pub fn scrub_error(scrubber: &Scrubber, e: UpstreamError) -> UpstreamError {
    let s = |text: String| scrubber.scrub_owned(text);
    match e {
        UpstreamError::NotConfigured { provider, env_var } => UpstreamError::NotConfigured {
            provider: s(provider),
            env_var: s(env_var),
        },
        UpstreamError::Connect(m) => UpstreamError::Connect(s(m)),
        UpstreamError::Timeout(m) => UpstreamError::Timeout(s(m)),
        UpstreamError::Status {
            status,
            message,
            retry_after,
        } => UpstreamError::Status {
            status,
            message: s(message),
            retry_after,
        },
        UpstreamError::Protocol(m) => UpstreamError::Protocol(s(m)),
        UpstreamError::Blocked { reason } => UpstreamError::Blocked { reason: s(reason) },
        UpstreamError::Capability(m) => UpstreamError::Capability(s(m)),
        UpstreamError::InvalidRequest { message, param } => UpstreamError::InvalidRequest {
            message: s(message),
            param: param.map(s),
        },
    }
}

impl Scrubbed {
    fn clean<T>(&self, result: Result<T, UpstreamError>) -> Result<T, UpstreamError> {
        result.map_err(|e| scrub_error(&self.scrubber, e))
    }
}

#[async_trait]
impl Provider for Scrubbed {
    fn id(&self) -> &ProviderId {
        self.inner.id()
    }

    fn supports_tools(&self, model: &str) -> bool {
        self.inner.supports_tools(model)
    }

    async fn chat(
        &self,
        request: &ChatRequest,
        model: &str,
    ) -> Result<ChatCompletion, UpstreamError> {
        self.clean(self.inner.chat(request, model).await)
    }

    async fn chat_stream(
        &self,
        request: &ChatRequest,
        model: &str,
    ) -> Result<ChunkStream, UpstreamError> {
        let stream = self.clean(self.inner.chat_stream(request, model).await)?;
        let scrubber = self.scrubber.clone();
        // Chunks pass untouched; only an error item (an in-band upstream error, a broken
        // stream) is rewritten.
        let items = stream.map(move |item: Result<ChatChunk, UpstreamError>| {
            item.map_err(|e| scrub_error(&scrubber, e))
        });
        Ok(Box::pin(items))
    }

    async fn embeddings(
        &self,
        request: &EmbeddingsRequest,
        model: &str,
    ) -> Result<Embeddings, UpstreamError> {
        self.clean(self.inner.embeddings(request, model).await)
    }

    /// Model ids are upstream text that `/v1/models` answers, so they are scrubbed too.
    async fn list_models(&self) -> Result<Vec<ModelInfo>, UpstreamError> {
        let models = self.clean(self.inner.list_models().await)?;
        Ok(models
            .into_iter()
            .map(|mut m| {
                m.id = self.scrubber.scrub_owned(m.id);
                m.owned_by = self.scrubber.scrub_owned(m.owned_by);
                m
            })
            .collect())
    }

    async fn probe(&self) -> Result<(), UpstreamError> {
        self.clean(self.inner.probe().await)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::stream;
    use std::time::Duration;

    const KEY: &str = "sk-leaky-key-1234";

    /// A provider whose every answer is an error quoting the key, as real upstreams do.
    struct Leaky {
        id: ProviderId,
    }

    fn leak(status: u16) -> UpstreamError {
        UpstreamError::Status {
            status,
            message: format!("Incorrect API key provided: {KEY}"),
            retry_after: Some(Duration::from_secs(3)),
        }
    }

    #[async_trait]
    impl Provider for Leaky {
        fn id(&self) -> &ProviderId {
            &self.id
        }
        fn supports_tools(&self, model: &str) -> bool {
            model == "tools"
        }
        async fn chat(&self, _: &ChatRequest, _: &str) -> Result<ChatCompletion, UpstreamError> {
            Err(leak(401))
        }
        async fn chat_stream(
            &self,
            _: &ChatRequest,
            model: &str,
        ) -> Result<ChunkStream, UpstreamError> {
            if model == "refused" {
                return Err(leak(429));
            }
            let items = vec![
                Ok(ChatChunk::with_delta("c", 0, Default::default(), None)),
                Err(UpstreamError::Protocol(format!(
                    "upstream reported an error mid-stream: {{\"message\":\"bad key {KEY}\"}}"
                ))),
            ];
            Ok(Box::pin(stream::iter(items)))
        }
        async fn embeddings(
            &self,
            _: &EmbeddingsRequest,
            _: &str,
        ) -> Result<Embeddings, UpstreamError> {
            Err(UpstreamError::Connect(format!(
                "http://user:{KEY}@host refused"
            )))
        }
        async fn list_models(&self) -> Result<Vec<ModelInfo>, UpstreamError> {
            Ok(vec![ModelInfo::new(format!("leaky/{KEY}"), 0, KEY)])
        }
        async fn probe(&self) -> Result<(), UpstreamError> {
            Err(UpstreamError::Timeout(KEY.to_owned()))
        }
    }

    fn wrapped() -> Scrubbed {
        Scrubbed::new(
            Arc::new(Leaky {
                id: ProviderId::new("leaky"),
            }),
            Arc::new(Scrubber::default().with(KEY)),
        )
    }

    fn request() -> ChatRequest {
        serde_json::from_value(serde_json::json!({
            "model": "leaky/m", "messages": [{"role": "user", "content": "hi"}]
        }))
        .unwrap()
    }

    fn assert_clean(e: &UpstreamError) {
        let text = format!("{e} {e:?}");
        assert!(!text.contains(KEY), "the key survived: {text}");
        assert!(text.contains(crate::scrub::REDACTED), "{text}");
    }

    #[tokio::test]
    async fn every_error_path_is_scrubbed() {
        let p = wrapped();
        let e = p.chat(&request(), "m").await.unwrap_err();
        assert_clean(&e);
        assert!(
            matches!(
                e,
                UpstreamError::Status {
                    status: 401,
                    retry_after: Some(_),
                    ..
                }
            ),
            "the classification is kept: {e:?}"
        );
        assert_clean(&p.chat_stream(&request(), "refused").await.err().unwrap());
        assert_clean(
            &p.embeddings(
                &serde_json::from_value(serde_json::json!({"model": "m", "input": "x"})).unwrap(),
                "m",
            )
            .await
            .unwrap_err(),
        );
        assert_clean(&p.probe().await.unwrap_err());

        let items: Vec<_> = p
            .chat_stream(&request(), "m")
            .await
            .unwrap()
            .collect()
            .await;
        assert!(items[0].is_ok(), "chunks pass through");
        assert_clean(items[1].as_ref().unwrap_err());
    }

    #[tokio::test]
    async fn model_ids_are_scrubbed_and_the_rest_is_delegated() {
        let p = wrapped();
        let models = p.list_models().await.unwrap();
        assert_eq!(models[0].id, "leaky/[redacted]");
        assert_eq!(models[0].owned_by, "[redacted]");
        assert_eq!(p.id().as_str(), "leaky");
        assert!(p.supports_tools("tools"));
        assert!(!p.supports_tools("plain"));
    }
}
