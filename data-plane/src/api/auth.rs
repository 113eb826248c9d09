//! Optional client authentication: `X-API-Key: <key>` or `Authorization: Bearer <key>`,
//! compared in constant time against every configured key. An accepted request carries the
//! key's cache [`Tenant`] as an extension, so the cache can keep each client's answers apart.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::header::AUTHORIZATION;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use subtle::ConstantTimeEq;

use crate::cache::Tenant;
use crate::error::ApiError;
use crate::state::AppState;

pub async fn require_key(
    State(state): State<Arc<AppState>>,
    mut request: Request,
    next: Next,
) -> Response {
    let auth = &state.config.auth;
    if !auth.enabled() {
        return next.run(request).await;
    }
    let headers = request.headers();
    let presented = headers
        .get("x-api-key")
        .and_then(|v| v.to_str().ok())
        .or_else(|| {
            headers
                .get(AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| {
                    v.strip_prefix("Bearer ")
                        .or_else(|| v.strip_prefix("bearer "))
                })
        })
        .map(str::trim);
    let Some(presented) = presented.filter(|p| !p.is_empty()) else {
        return ApiError::Unauthorized(
            "missing API key; send it as 'X-API-Key: <key>' or 'Authorization: Bearer <key>'",
        )
        .into_response();
    };
    // Check every key without stopping early, so timing says nothing about which one matched.
    let matched = auth.keys.iter().fold(0u8, |acc, key| {
        acc | presented
            .as_bytes()
            .ct_eq(key.expose().as_bytes())
            .unwrap_u8()
    });
    if matched == 1 {
        // The presented key equals the matched one, so its tag is that key's.
        let tenant = Tenant::of_client_key(presented);
        request.extensions_mut().insert(tenant);
        next.run(request).await
    } else {
        ApiError::Unauthorized("invalid API key").into_response()
    }
}
