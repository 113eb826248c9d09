//! Query and path extractors whose rejection is the admin API's own JSON error (axum's
//! answer a plain-text 400 that clients of this API cannot parse).

use axum::extract::{FromRequestParts, Path, Query};
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use super::AdminError;

/// `Query<T>`, rejected as a 400 `invalid_request` naming the parameter.
pub struct AdminQuery<T>(pub T);

impl<T, S> FromRequestParts<S> for AdminQuery<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = AdminError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        Query::<T>::from_request_parts(parts, state)
            .await
            .map(|Query(value)| AdminQuery(value))
            .map_err(|e| AdminError::BadRequest(format!("bad query: {}", e.body_text())))
    }
}

/// `Path<T>`, rejected as a 400 `invalid_request`.
pub struct AdminPath<T>(pub T);

impl<T, S> FromRequestParts<S> for AdminPath<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = AdminError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        Path::<T>::from_request_parts(parts, state)
            .await
            .map(|Path(value)| AdminPath(value))
            .map_err(|e| AdminError::BadRequest(format!("bad path: {}", e.body_text())))
    }
}
