//! `/v1/embeddings`: request and response types.

use base64::Engine as _;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{json, Map, Value};

use super::error::RequestError;

#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct EmbeddingsRequest {
    #[serde(default, skip_serializing)]
    pub model: Option<String>,
    #[serde(deserialize_with = "input")]
    pub input: EmbeddingInput,
    /// `float` (default) or `base64`. We always ask providers for floats and encode ourselves.
    #[serde(default, skip_serializing)]
    pub encoding_format: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dimensions: Option<u32>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// What to embed: one or more strings, or pre-tokenised input (OpenAI-compatible providers only).
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum EmbeddingInput {
    Texts(Vec<String>),
    Tokens(Value),
}

impl EmbeddingInput {
    pub fn len(&self) -> usize {
        match self {
            EmbeddingInput::Texts(t) => t.len(),
            EmbeddingInput::Tokens(Value::Array(a)) => {
                if a.first().is_some_and(Value::is_array) {
                    a.len()
                } else {
                    1
                }
            }
            EmbeddingInput::Tokens(_) => 1,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The texts, or a 400 for providers that cannot take token ids.
    pub fn texts(&self) -> Result<&[String], super::TokenIdsNotText> {
        match self {
            EmbeddingInput::Texts(t) => Ok(t),
            // A limit of the provider: an alias moves on to an entry that takes token ids.
            EmbeddingInput::Tokens(_) => Err(super::TokenIdsNotText),
        }
    }
}

fn input<'de, D: Deserializer<'de>>(d: D) -> Result<EmbeddingInput, D::Error> {
    use serde::de::Error;
    let bad = || D::Error::custom("input must be a string, an array of strings, or token ids");
    match Value::deserialize(d)? {
        Value::String(s) => Ok(EmbeddingInput::Texts(vec![s])),
        Value::Array(items) if items.iter().all(Value::is_string) => Ok(EmbeddingInput::Texts(
            items
                .into_iter()
                .filter_map(|v| match v {
                    Value::String(s) => Some(s),
                    _ => None,
                })
                .collect(),
        )),
        Value::Array(items)
            if items.iter().all(Value::is_u64)
                || items
                    .iter()
                    .all(|i| i.as_array().is_some_and(|a| a.iter().all(Value::is_u64))) =>
        {
            Ok(EmbeddingInput::Tokens(Value::Array(items)))
        }
        _ => Err(bad()),
    }
}

impl EmbeddingsRequest {
    pub fn validate(&self) -> Result<(), RequestError> {
        if self.input.is_empty() {
            return Err(RequestError::invalid("input must not be empty", "input"));
        }
        match self.encoding_format.as_deref() {
            None | Some("float") | Some("base64") => Ok(()),
            Some(other) => Err(RequestError::invalid(
                format!("encoding_format must be 'float' or 'base64', got '{other}'"),
                "encoding_format",
            )),
        }
    }

    pub fn wants_base64(&self) -> bool {
        self.encoding_format.as_deref() == Some("base64")
    }
}

/// What a provider returns: one vector per input, in input order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Embeddings {
    pub vectors: Vec<Vec<f64>>,
    pub prompt_tokens: u64,
}

impl Embeddings {
    /// The OpenAI response body. `base64` packs each vector as little-endian f32, as OpenAI does.
    pub fn to_response(&self, model: &str, base64: bool) -> Value {
        let data: Vec<Value> = self
            .vectors
            .iter()
            .enumerate()
            .map(|(index, v)| {
                let embedding = if base64 {
                    let bytes: Vec<u8> = v.iter().flat_map(|x| (*x as f32).to_le_bytes()).collect();
                    Value::String(base64::engine::general_purpose::STANDARD.encode(bytes))
                } else {
                    json!(v)
                };
                json!({"object": "embedding", "index": index, "embedding": embedding})
            })
            .collect();
        json!({
            "object": "list",
            "data": data,
            "model": model,
            "usage": {"prompt_tokens": self.prompt_tokens, "total_tokens": self.prompt_tokens},
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn input_forms() {
        let one: EmbeddingsRequest = serde_json::from_value(json!({"input": "a"})).unwrap();
        assert_eq!(one.input.texts().unwrap(), ["a"]);
        let many: EmbeddingsRequest = serde_json::from_value(json!({"input": ["a", "b"]})).unwrap();
        assert_eq!(many.input.len(), 2);
        let tokens: EmbeddingsRequest =
            serde_json::from_value(json!({"input": [1, 2, 3]})).unwrap();
        assert!(tokens.input.texts().is_err());
        assert!(serde_json::from_value::<EmbeddingsRequest>(json!({"input": 5})).is_err());
        assert!(serde_json::from_value::<EmbeddingsRequest>(json!({"input": ["a", 1]})).is_err());
    }

    #[test]
    fn base64_is_little_endian_f32() {
        let e = Embeddings {
            vectors: vec![vec![1.0, -2.0]],
            prompt_tokens: 3,
        };
        let body = e.to_response("echo/e", true);
        let b64 = body["data"][0]["embedding"].as_str().unwrap();
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(b64)
            .unwrap();
        assert_eq!(&bytes[..4], &1.0f32.to_le_bytes());
        assert_eq!(&bytes[4..], &(-2.0f32).to_le_bytes());
        assert_eq!(body["usage"]["prompt_tokens"], 3);
    }
}
