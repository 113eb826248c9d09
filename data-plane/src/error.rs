//! The one error type of the data-plane HTTP edge.
//!
//! Every failure a client can see is an [`ApiError`]: one exhaustive mapping to a status code,
//! an OpenAI-shaped body (`{"error": {"message", "type", "code", "param"}}`) that every SDK
//! parses, and a short bounded label for logs and metrics. Internal details are logged once
//! and never sent.

use std::time::Duration;

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::json;

use crate::openai::RequestError;
use crate::providers::UpstreamError;

#[derive(Debug, Clone, thiserror::Error)]
pub enum ApiError {
    /// The request is malformed or asks for something impossible (400).
    #[error("{message}")]
    InvalidRequest {
        message: String,
        param: Option<String>,
        code: &'static str,
    },
    /// Missing or wrong client API key (401).
    #[error("{0}")]
    Unauthorized(&'static str),
    /// Unknown model, provider or route (404).
    #[error("{message}")]
    NotFound { message: String, code: &'static str },
    #[error("method not allowed")]
    MethodNotAllowed,
    /// Body over the configured limit (413).
    #[error("request body is larger than the limit of {limit} bytes")]
    PayloadTooLarge { limit: usize },
    /// A provider failed; `target` is the `provider/model` that was called.
    #[error("{target}: {source}")]
    Upstream {
        target: String,
        #[source]
        source: UpstreamError,
    },
    /// Every entry of a chain was skipped or failed.
    #[error(
        "no healthy provider could serve '{requested}'. Attempts: {}{}",
        attempts.iter().map(|a| format!("{}={}", a.target, a.reason)).collect::<Vec<_>>().join(", "),
        last_error.as_ref().map(|e| format!(". Last error: {e}")).unwrap_or_default()
    )]
    NoHealthyProvider {
        requested: String,
        attempts: Vec<Attempt>,
        last_error: Option<String>,
        /// The soonest an entry refused for a rate limit or an open breaker takes calls
        /// again: sent as `Retry-After`, so SDKs do not back off blindly into a breaker.
        retry_after: Option<Duration>,
    },
    /// No entry of the chain can take this request at all (image URLs, token ids, tools, …):
    /// a 400 naming what each entry lacks.
    #[error("no entry of '{requested}' can take this request: {}", reasons.join("; "))]
    Unsupported {
        requested: String,
        reasons: Vec<String>,
    },
    /// Not ready to serve (draining, or no registry yet).
    #[error("{0}")]
    Unavailable(String),
    /// The worker's memory budget for request bodies in flight is spent (503 with
    /// `Retry-After`): refused before the body is read, never an OOM.
    #[error("this worker has {in_flight_mb} MB of request bodies in flight and its budget is {budget_mb} MB (MANA_LLM_BODY_BUDGET_MB); retry shortly or on another worker")]
    Overloaded {
        in_flight_mb: usize,
        budget_mb: usize,
    },
    /// A bug or an unexpected state; the detail is logged, the client gets a generic message.
    #[error("internal error")]
    Internal(String),
}

impl From<RequestError> for ApiError {
    fn from(e: RequestError) -> Self {
        Self::InvalidRequest {
            message: e.message,
            param: e.param,
            code: e.code,
        }
    }
}

impl ApiError {
    pub fn invalid(message: impl Into<String>, param: impl Into<String>) -> Self {
        Self::InvalidRequest {
            message: message.into(),
            param: Some(param.into()),
            code: "invalid_request",
        }
    }

    pub fn upstream(target: impl ToString, source: UpstreamError) -> Self {
        Self::Upstream {
            target: target.to_string(),
            source,
        }
    }

    pub fn status_code(&self) -> StatusCode {
        match self {
            ApiError::InvalidRequest { .. } => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::NotFound { .. } => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Upstream { source, .. } => source.status_code(),
            ApiError::Unsupported { .. } => StatusCode::BAD_REQUEST,
            ApiError::NoHealthyProvider { .. }
            | ApiError::Unavailable(_)
            | ApiError::Overloaded { .. } => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The OpenAI `error.type`.
    fn error_type(&self) -> &'static str {
        match self.status_code().as_u16() {
            401 => "authentication_error",
            429 => "rate_limit_error",
            400..=499 => "invalid_request_error",
            500 => "server_error",
            _ => "api_error",
        }
    }

    /// The OpenAI `error.code`; also the bounded label used in logs and metrics.
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::InvalidRequest { code, .. } => code,
            ApiError::Unauthorized(_) => "invalid_api_key",
            ApiError::NotFound { code, .. } => code,
            ApiError::MethodNotAllowed => "method_not_allowed",
            ApiError::PayloadTooLarge { .. } => "request_too_large",
            ApiError::Upstream { source, .. } => source.code(),
            ApiError::NoHealthyProvider { .. } => "no_healthy_provider",
            ApiError::Unsupported { .. } => "capability_mismatch",
            ApiError::Unavailable(_) => "not_ready",
            ApiError::Overloaded { .. } => "body_budget_exhausted",
            ApiError::Internal(_) => "internal_error",
        }
    }

    fn param(&self) -> Option<&str> {
        match self {
            ApiError::InvalidRequest { param, .. } => param.as_deref(),
            ApiError::Upstream {
                source: UpstreamError::InvalidRequest { param, .. },
                ..
            } => param.as_deref(),
            _ => None,
        }
    }

    fn retry_after(&self) -> Option<Duration> {
        match self {
            ApiError::Upstream {
                source: UpstreamError::Status { retry_after, .. },
                ..
            } => *retry_after,
            ApiError::NoHealthyProvider { retry_after, .. } => *retry_after,
            // Bodies in flight finish in seconds; a second is the shortest Retry-After.
            ApiError::Overloaded { .. } => Some(Duration::from_secs(1)),
            _ => None,
        }
    }

    /// The JSON body, also used for in-band stream errors.
    pub fn body(&self) -> serde_json::Value {
        let message = match self {
            ApiError::Internal(_) => {
                "internal error; see the gateway log for the request id".to_owned()
            }
            other => other.to_string(),
        };
        let mut body = json!({"error": {
            "message": message,
            "type": self.error_type(),
            "code": self.code(),
            "param": self.param(),
        }});
        if let ApiError::NoHealthyProvider { attempts, .. } = self {
            body["error"]["attempts"] = json!(attempts);
        }
        body
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let ApiError::Internal(detail) = &self {
            tracing::error!(%detail, "internal error");
        }
        let status = self.status_code();
        let retry_after = self.retry_after();
        let code = self.code();
        let mut response = (status, axum::Json(self.body())).into_response();
        if let Some(after) = retry_after {
            // Whole seconds, rounded up: a client retrying on the dot must find it usable.
            let secs = after.as_secs() + u64::from(after.subsec_nanos() > 0);
            if let Ok(v) = HeaderValue::from_str(&secs.max(1).to_string()) {
                response.headers_mut().insert(header::RETRY_AFTER, v);
            }
        }
        response.extensions_mut().insert(ErrorCode(code));
        response
    }
}

/// One chain entry that did not answer, and why (a bounded code).
#[derive(Debug, Clone, Serialize)]
pub struct Attempt {
    pub target: String,
    pub reason: &'static str,
    pub status: Option<u16>,
}

/// Attached to error responses so the request log can name the failure.
#[derive(Debug, Clone, Copy)]
pub struct ErrorCode(pub &'static str);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstream_statuses_map_as_designed() {
        let status = |s: u16| {
            ApiError::upstream(
                "p/m",
                UpstreamError::Status {
                    status: s,
                    message: "x".into(),
                    retry_after: None,
                },
            )
            .status_code()
            .as_u16()
        };
        assert_eq!(status(400), 400);
        assert_eq!(status(404), 404);
        assert_eq!(status(422), 400);
        assert_eq!(status(401), 502);
        assert_eq!(status(403), 502);
        assert_eq!(status(429), 429);
        assert_eq!(status(500), 502);
        assert_eq!(status(503), 502);
        let timeout = ApiError::upstream("p/m", UpstreamError::Timeout("t".into()));
        assert_eq!(timeout.status_code(), StatusCode::GATEWAY_TIMEOUT);
    }

    #[test]
    fn body_is_openai_shaped() {
        let body = ApiError::invalid("bad", "messages").body();
        assert_eq!(body["error"]["message"], "bad");
        assert_eq!(body["error"]["type"], "invalid_request_error");
        assert_eq!(body["error"]["code"], "invalid_request");
        assert_eq!(body["error"]["param"], "messages");
    }

    #[test]
    fn internal_details_stay_in_the_log() {
        let body = ApiError::Internal("db password wrong".into()).body();
        assert!(!body.to_string().contains("password"));
    }
}
