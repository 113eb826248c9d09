//! Admin authentication: a bearer token, or loopback peers when no token is configured.
//!
//! Without a token the peer address is the only credential, and a reverse proxy on the same
//! host makes every remote client look like 127.0.0.1. So a tokenless admin API also refuses
//! any request carrying a proxy's forwarding header: such a request did not start on this
//! machine, whatever its peer address says.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::header::AUTHORIZATION;
use axum::http::HeaderMap;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use subtle::ConstantTimeEq;

use super::{AdminError, AdminState};

/// Headers a reverse proxy adds (RFC 7239, and the two de-facto ones nginx and most load
/// balancers set).
const PROXY_HEADERS: [&str; 3] = ["forwarded", "x-forwarded-for", "x-real-ip"];

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
            if let Some(header) = proxy_header(request.headers()) {
                return AdminError::Proxied(header).into_response();
            }
            let loopback = request
                .extensions()
                .get::<ConnectInfo<SocketAddr>>()
                .is_some_and(|ConnectInfo(peer)| is_loopback(peer.ip()));
            if loopback {
                next.run(request).await
            } else {
                AdminError::LoopbackOnly.into_response()
            }
        }
    }
}

/// Whether `ip` is a loopback address, IPv4-mapped IPv6 included: a server bound to `::`
/// sees an IPv4 client on 127.0.0.1 as `::ffff:127.0.0.1`, which `is_loopback` alone rejects.
pub fn is_loopback(ip: IpAddr) -> bool {
    ip.to_canonical().is_loopback()
}

fn proxy_header(headers: &HeaderMap) -> Option<&'static str> {
    PROXY_HEADERS
        .into_iter()
        .find(|name| headers.contains_key(*name))
}
