//! What is wrong with a request, found while reading or validating its wire types: the HTTP
//! edge answers it as a 400 (`error::ApiError::InvalidRequest`), a provider never sees it.

/// A request that cannot be served as sent, naming the field (`param`) when there is one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct RequestError {
    pub message: String,
    pub param: Option<String>,
    /// The OpenAI `error.code`: `invalid_request`, `unsupported_stateful_feature`, ….
    pub code: &'static str,
}

impl RequestError {
    pub fn invalid(message: impl Into<String>, param: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            param: Some(param.into()),
            code: "invalid_request",
        }
    }
}

/// Token ids as embedding input, for a provider that embeds text only: a limit of that
/// provider (an alias moves on to one that takes token ids), not of the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("this provider only embeds text input, not token ids (input)")]
pub struct TokenIdsNotText;
