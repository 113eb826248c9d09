//! The built-in `echo` provider: offline and deterministic.
//!
//! It answers with the text of the last user message, streamed word by word, and embeds text
//! into a small vector derived from its bytes. It lets a newcomer see the gateway work with no
//! model installed, and gives smoke checks and benchmarks an upstream that is never slow
//! (unless `MANA_LLM_ECHO_DELAY_MS` asks it to be).

use std::time::Duration;

use async_trait::async_trait;
use futures_util::stream;
use mana_llm_shared::ProviderId;

use super::{ChunkStream, Provider, UpstreamError};
use crate::openai::{
    completion_id, unix_now, AssistantMessage, ChatChunk, ChatCompletion, ChatRequest, Choice,
    Delta, Embeddings, EmbeddingsRequest, ModelInfo, Role, Usage,
};

/// Dimensions of echo embeddings.
const DIMENSIONS: usize = 8;

pub struct Echo {
    id: ProviderId,
    delay: Duration,
}

impl Echo {
    pub fn new(delay: Duration) -> Self {
        Self {
            id: ProviderId::new("echo"),
            delay,
        }
    }

    async fn pause(&self) {
        if !self.delay.is_zero() {
            tokio::time::sleep(self.delay).await;
        }
    }
}

/// The text of the last user message: what echo answers.
fn answer(request: &ChatRequest) -> String {
    request
        .messages
        .iter()
        .rev()
        .find(|m| m.role == Role::User)
        .and_then(|m| m.content.as_ref())
        .map(|c| c.text())
        .unwrap_or_default()
}

fn words(s: &str) -> u64 {
    s.split_whitespace().count() as u64
}

fn usage(request: &ChatRequest, answer: &str) -> Usage {
    let prompt = request
        .messages
        .iter()
        .filter_map(|m| m.content.as_ref())
        .map(|c| words(&c.text()))
        .sum();
    Usage::new(prompt, words(answer))
}

/// Splits text into pieces that keep their leading space, as tokenised streams do.
fn pieces(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    for ch in text.chars() {
        if ch == ' ' && !current.trim().is_empty() {
            out.push(std::mem::take(&mut current));
        }
        current.push(ch);
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

/// A deterministic unit vector for `text`: each dimension is a hash of the text and its index.
fn embed(text: &str) -> Vec<f64> {
    let mut v: Vec<f64> = (0..DIMENSIONS as u64)
        .map(|d| {
            // FNV-1a over the dimension index and the text.
            let h = d
                .to_le_bytes()
                .iter()
                .chain(text.as_bytes())
                .fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
                    (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
                });
            (h % 2001) as f64 / 1000.0 - 1.0
        })
        .collect();
    let norm = v.iter().map(|x| x * x).sum::<f64>().sqrt();
    if norm > 0.0 {
        v.iter_mut().for_each(|x| *x /= norm);
    }
    v
}

#[async_trait]
impl Provider for Echo {
    fn id(&self) -> &ProviderId {
        &self.id
    }

    async fn chat(
        &self,
        request: &ChatRequest,
        _model: &str,
    ) -> Result<ChatCompletion, UpstreamError> {
        self.pause().await;
        let text = answer(request);
        Ok(ChatCompletion {
            id: completion_id(),
            object: "chat.completion".to_owned(),
            created: unix_now(),
            model: String::new(),
            usage: Some(usage(request, &text)),
            choices: vec![Choice {
                index: 0,
                message: AssistantMessage::new(Some(text), None),
                finish_reason: Some("stop".to_owned()),
                extra: Default::default(),
            }],
            extra: Default::default(),
        })
    }

    async fn chat_stream(
        &self,
        request: &ChatRequest,
        _model: &str,
    ) -> Result<ChunkStream, UpstreamError> {
        self.pause().await;
        let text = answer(request);
        let (id, created) = (completion_id(), unix_now());
        let mut chunks = vec![ChatChunk::with_delta(&id, created, Delta::role(), None)];
        chunks.extend(
            pieces(&text)
                .into_iter()
                .map(|p| ChatChunk::with_delta(&id, created, Delta::content(p), None)),
        );
        chunks.push(ChatChunk::with_delta(
            &id,
            created,
            Delta::default(),
            Some("stop"),
        ));
        if request.include_usage() {
            chunks.push(ChatChunk::usage_only(&id, created, usage(request, &text)));
        }
        Ok(Box::pin(stream::iter(chunks.into_iter().map(Ok))))
    }

    async fn embeddings(
        &self,
        request: &EmbeddingsRequest,
        _model: &str,
    ) -> Result<Embeddings, UpstreamError> {
        self.pause().await;
        let texts = request.input.texts()?;
        Ok(Embeddings {
            vectors: texts.iter().map(|t| embed(t)).collect(),
            prompt_tokens: texts.iter().map(|t| words(t)).sum(),
        })
    }

    async fn list_models(&self) -> Result<Vec<ModelInfo>, UpstreamError> {
        Ok(vec![ModelInfo::new("echo/echo".to_owned(), 0, "mana-llm")])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pieces_keep_their_spaces() {
        assert_eq!(pieces("Hello big world"), ["Hello", " big", " world"]);
        assert_eq!(pieces("").len(), 0);
        assert_eq!(pieces("Hello big world").concat(), "Hello big world");
    }

    #[test]
    fn embeddings_are_deterministic_unit_vectors() {
        let a = embed("hello");
        assert_eq!(a, embed("hello"));
        assert_ne!(a, embed("world"));
        let norm: f64 = a.iter().map(|x| x * x).sum();
        assert!((norm - 1.0).abs() < 1e-9);
    }
}
