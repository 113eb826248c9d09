//! Admin authentication: a bearer token, or loopback peers when no token is configured.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::header::AUTHORIZATION;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use subtle::ConstantTimeEq;

use super::{AdminError, AdminState};

pub async fn require_admin(
    State(state): State<Arc<AdminState>>,
    request: Request,
    next: Next,
) -> Response {
    match &state.token {
        Some(token) => {
            let presented = request
                .headers()
                .get(AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "))
                .unwrap_or("");
            if bool::from(presented.as_bytes().ct_eq(token.as_bytes())) {
                next.run(request).await
            } else {
                AdminError::Unauthorized.into_response()
            }
        }
        None => {
            let loopback = request
                .extensions()
                .get::<ConnectInfo<SocketAddr>>()
                .is_some_and(|ConnectInfo(peer)| peer.ip().is_loopback());
            if loopback {
                next.run(request).await
            } else {
                AdminError::LoopbackOnly.into_response()
            }
        }
    }
}
