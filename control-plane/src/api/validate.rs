//! `POST /admin/v1/registry/validate`: a dry run of a push. The same size bound, parse and
//! policy as `POST /registry`, every error at once, and nothing written: no version, no
//! audit event (a document an admin is still editing is not something that happened).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::http::HeaderMap;
use axum::Json;
use mana_llm_shared::{DocumentFormat, Registry};
use serde_json::{json, Value};

use super::{AdminError, AdminState};

pub async fn validate(
    State(state): State<Arc<AdminState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, AdminError> {
    let limit = state.service.policy().limits.max_bytes;
    if body.len() > limit {
        return Err(AdminError::TooLarge {
            size: body.len(),
            limit,
        });
    }
    let text = std::str::from_utf8(&body)
        .map_err(|_| AdminError::BadRequest("the body must be UTF-8 text".to_owned()))?;
    let (text, format) = document(text, &headers);
    let next = state.service.current_version().await.next();
    let registry = Registry::parse_with(&text, format, "admin API", next, state.service.policy())
        .map_err(|errors| AdminError::Invalid(errors.0))?;
    let current = state.service.current().await;
    let document = registry.document();
    Ok(Json(json!({
        "valid": true,
        "hash": registry.hash(),
        "unchanged": current.is_some_and(|c| c.hash.as_str() == registry.hash()),
        "default": document.default,
        "aliases": document.aliases.keys().collect::<Vec<_>>(),
    })))
}

/// The text and format a push of this body would read: JSON when declared so or when it is a
/// JSON object (without the `expected_version` a push may carry beside the registry keys),
/// YAML otherwise.
fn document(text: &str, headers: &HeaderMap) -> (String, DocumentFormat) {
    let declared_json = headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.to_ascii_lowercase().contains("json"));
    if declared_json || text.trim_start().starts_with('{') {
        if let Ok(Value::Object(mut doc)) = serde_json::from_str::<Value>(text) {
            doc.remove("expected_version");
            return (Value::Object(doc).to_string(), DocumentFormat::Json);
        }
        if declared_json {
            return (text.to_owned(), DocumentFormat::Json);
        }
    }
    (text.to_owned(), DocumentFormat::Yaml)
}
