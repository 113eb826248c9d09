//! Admin authentication: a bearer token or a console session, or loopback peers when no token
//! is configured.
//!
//! With a token, a request passes with `Authorization: Bearer <token>` (an `Authorization`
//! header decides alone), or with the console's session cookie — and then, for anything but a
//! read, the session's CSRF token in `X-CSRF-Token`: the cookie is sent by the browser on its
//! own, the header only by the console's script.
//!
//! Without a token the peer address is the only credential, and a reverse proxy on the same
//! host makes every remote client look like 127.0.0.1. So a tokenless admin API also refuses
//! any request carrying a proxy's forwarding header: such a request did not start on this
//! machine, whatever its peer address says. And since a browser on this machine is a loopback
//! peer too, whatever page it shows, a tokenless request must name a loopback host (a page on
//! a rebound DNS name is refused) and, when a browser says where it came from (`Origin`), come
//! from this server's own origin.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::header::{AUTHORIZATION, HOST, ORIGIN};
use axum::http::{Extensions, HeaderMap, Method, Uri};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use subtle::ConstantTimeEq;

use super::{AdminError, AdminState};
use crate::api::console::session::Sessions;

/// Headers a reverse proxy adds (RFC 7239, and the two de-facto ones nginx and most load
/// balancers set).
const PROXY_HEADERS: [&str; 3] = ["forwarded", "x-forwarded-for", "x-real-ip"];

/// What the admin routes and the console check a request against.
#[derive(Clone)]
pub struct Gate {
    pub admin: Arc<AdminState>,
    pub sessions: Arc<Sessions>,
}

pub async fn require_admin(State(gate): State<Gate>, request: Request, next: Next) -> Response {
    let admitted = match &gate.admin.token {
        Some(token) => with_token(&gate.sessions, token, request.method(), request.headers()),
        None => tokenless(request.uri(), request.headers(), request.extensions()),
    };
    match admitted {
        Ok(()) => next.run(request).await,
        Err(e) => e.into_response(),
    }
}

fn with_token(
    sessions: &Sessions,
    token: &str,
    method: &Method,
    headers: &HeaderMap,
) -> Result<(), AdminError> {
    if headers.contains_key(AUTHORIZATION) {
        return bearer_matches(token, headers)
            .then_some(())
            .ok_or(AdminError::Unauthorized);
    }
    match sessions.from_headers(headers) {
        None => Err(AdminError::Unauthorized),
        Some(session) if is_read(method) || session.csrf_matches(headers) => Ok(()),
        Some(_) => Err(AdminError::Csrf),
    }
}

/// Whether the request's bearer token is `token` (constant-time comparison).
fn bearer_matches(token: &str, headers: &HeaderMap) -> bool {
    let presented = headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    bool::from(presented.as_bytes().ct_eq(token.as_bytes()))
}

/// A method that changes nothing, so needs no CSRF token.
fn is_read(method: &Method) -> bool {
    matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// The checks of a server without a token: a loopback peer, no proxy in between, a loopback
/// host name, and no other site's page behind it.
pub fn tokenless(
    uri: &Uri,
    headers: &HeaderMap,
    extensions: &Extensions,
) -> Result<(), AdminError> {
    if let Some(header) = proxy_header(headers) {
        return Err(AdminError::Proxied(header));
    }
    let loopback = extensions
        .get::<ConnectInfo<SocketAddr>>()
        .is_some_and(|ConnectInfo(peer)| is_loopback(peer.ip()));
    if !loopback {
        return Err(AdminError::LoopbackOnly);
    }
    let host = uri.authority().map(|a| a.as_str().to_owned()).or_else(|| {
        headers
            .get(HOST)
            .and_then(|h| h.to_str().ok())
            .map(str::to_owned)
    });
    if let Some(host) = &host {
        if !is_loopback_host(host) {
            return Err(AdminError::ForeignHost);
        }
    }
    if let Some(origin) = headers.get(ORIGIN) {
        let own = host.is_some_and(|host| {
            origin
                .to_str()
                .ok()
                .and_then(|o| o.split_once("://"))
                .is_some_and(|(scheme, rest)| {
                    matches!(scheme, "http" | "https") && rest.eq_ignore_ascii_case(&host)
                })
        });
        if !own {
            return Err(AdminError::CrossOrigin);
        }
    }
    Ok(())
}

/// Whether `host` (a `Host` header: name or address, maybe a port) names this machine.
fn is_loopback_host(host: &str) -> bool {
    let name = match host.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(""),
        None => host.rsplit_once(':').map_or(host, |(name, _)| name),
    };
    name.eq_ignore_ascii_case("localhost") || name.parse::<IpAddr>().is_ok_and(is_loopback)
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

#[cfg(test)]
mod tests {
    use super::is_loopback_host;

    #[test]
    fn loopback_hosts_with_or_without_ports() {
        for host in [
            "127.0.0.1",
            "127.0.0.1:3025",
            "localhost:80",
            "LOCALHOST",
            "[::1]:3025",
            "[::1]",
        ] {
            assert!(is_loopback_host(host), "{host}");
        }
        for host in [
            "evil.example:3025",
            "10.0.0.1",
            "[2001:db8::1]:80",
            "localhost.evil.example",
        ] {
            assert!(!is_loopback_host(host), "{host}");
        }
    }
}
