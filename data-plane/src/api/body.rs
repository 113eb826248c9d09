//! The JSON body extractor: its rejections are OpenAI-shaped 400s and 413s, never 422s.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use serde::de::DeserializeOwned;

use crate::error::ApiError;
use crate::state::AppState;

pub struct JsonBody<T>(pub T);

impl<T: DeserializeOwned> FromRequest<Arc<AppState>> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(
        request: Request,
        state: &Arc<AppState>,
    ) -> Result<Self, Self::Rejection> {
        let bytes = Bytes::from_request(request, state)
            .await
            .map_err(|rejection| {
                if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    ApiError::PayloadTooLarge {
                        limit: state.config.body_limit,
                    }
                } else {
                    ApiError::InvalidRequest {
                        message: format!("could not read the request body: {rejection}"),
                        param: None,
                        code: "invalid_request",
                    }
                }
            })?;
        parse(&bytes).map(JsonBody)
    }
}

/// Parses JSON, naming the offending field in `param` when the shape is wrong.
pub fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::InvalidRequest {
            message: "the request body is empty; send a JSON object".to_owned(),
            param: None,
            code: "invalid_json",
        });
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if inner.is_syntax() || inner.is_eof() {
            ApiError::InvalidRequest {
                message: format!("the request body is not valid JSON: {inner}"),
                param: None,
                code: "invalid_json",
            }
        } else {
            let param = (path != ".").then_some(path);
            let message = match &param {
                Some(p) => format!("invalid request field '{p}': {inner}"),
                None => format!("invalid request: {inner}"),
            };
            ApiError::InvalidRequest {
                message,
                param,
                code: "invalid_request",
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::openai::ChatRequest;

    fn err(body: &str) -> serde_json::Value {
        parse::<ChatRequest>(body.as_bytes()).unwrap_err().body()["error"].clone()
    }

    #[test]
    fn malformed_json_is_a_400_without_param() {
        let e = err("{\"messages\": [");
        assert_eq!(e["code"], "invalid_json");
        assert!(e["param"].is_null());
    }

    #[test]
    fn wrong_types_name_the_field() {
        let e = err(r#"{"messages": [{"role": "user", "content": "x"}], "temperature": "hot"}"#);
        assert_eq!(e["param"], "temperature");
        let e = err(r#"{"messages": [{"role": "wizard", "content": "x"}]}"#);
        assert_eq!(e["param"], "messages[0].role");
        assert!(e["message"].as_str().unwrap().contains("wizard"));
    }

    #[test]
    fn missing_fields_are_named() {
        let e = err(r#"{"model": "echo/x"}"#);
        assert!(e["message"].as_str().unwrap().contains("messages"), "{e}");
    }
}
