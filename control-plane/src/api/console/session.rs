//! Console sessions: a random id in an HttpOnly cookie, held in memory with an expiry and a
//! bound on how many exist, each with its own CSRF token.
//!
//! In memory on purpose: a session is a convenience over the admin token, so losing every
//! session on restart only means signing in again, and nothing about them is ever written to
//! disk. The bound keeps a flood of sign-ins from growing the map: past it, expired sessions
//! go first, then the one closest to its end.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::http::header::COOKIE;
use axum::http::HeaderMap;
use subtle::ConstantTimeEq;

/// The cookie's name; its path is `/admin`, so no other route of the server ever sees it.
pub const COOKIE_NAME: &str = "mana_llm_admin";
/// The header every write made with a session must carry.
pub const CSRF_HEADER: &str = "x-csrf-token";
/// How long a session lives from sign-in (the cookie's `Max-Age` says the same).
pub const SESSION_TTL: Duration = Duration::from_secs(8 * 60 * 60);
/// How many sessions may exist at once.
pub const MAX_SESSIONS: usize = 256;

/// Random bytes in a session id and in a CSRF token.
const SECRET_BYTES: usize = 32;

struct Session {
    csrf: String,
    expires: Instant,
}

/// What a valid session cookie gives its holder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionView {
    pub id: String,
    pub csrf: String,
}

/// Every live session of this process.
pub struct Sessions {
    map: Mutex<HashMap<String, Session>>,
    ttl: Duration,
    max: usize,
}

impl Default for Sessions {
    fn default() -> Self {
        Self::new(SESSION_TTL, MAX_SESSIONS)
    }
}

/// The operating system's randomness could not be read: no session can be made safely.
#[derive(Debug, thiserror::Error)]
#[error("no randomness for a session id: {0}")]
pub struct NoRandomness(String);

fn random_hex() -> Result<String, NoRandomness> {
    let mut bytes = [0u8; SECRET_BYTES];
    getrandom::fill(&mut bytes).map_err(|e| NoRandomness(e.to_string()))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

impl Sessions {
    pub fn new(ttl: Duration, max: usize) -> Self {
        Self {
            map: Mutex::new(HashMap::new()),
            ttl,
            max: max.max(1),
        }
    }

    /// How long a new session lives.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// A new session, making room for it when the bound is reached.
    pub fn create(&self) -> Result<SessionView, NoRandomness> {
        let view = SessionView {
            id: random_hex()?,
            csrf: random_hex()?,
        };
        let now = Instant::now();
        let mut map = self.lock();
        map.retain(|_, s| s.expires > now);
        while map.len() >= self.max {
            let Some(oldest) = map
                .iter()
                .min_by_key(|(_, s)| s.expires)
                .map(|(id, _)| id.clone())
            else {
                break;
            };
            map.remove(&oldest);
        }
        map.insert(
            view.id.clone(),
            Session {
                csrf: view.csrf.clone(),
                expires: now + self.ttl,
            },
        );
        Ok(view)
    }

    /// The live session the request's cookie names, if any.
    pub fn from_headers(&self, headers: &HeaderMap) -> Option<SessionView> {
        let id = cookie(headers)?;
        let mut map = self.lock();
        let session = map.get(id)?;
        if session.expires <= Instant::now() {
            map.remove(id);
            return None;
        }
        Some(SessionView {
            id: id.to_owned(),
            csrf: session.csrf.clone(),
        })
    }

    /// Ends a session; true when it existed.
    pub fn remove(&self, id: &str) -> bool {
        self.lock().remove(id).is_some()
    }

    /// How many sessions are held (expired ones not yet swept included).
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A poisoned lock only means another request panicked mid-update of a plain map: the
    /// map itself is still usable.
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Session>> {
        self.map
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl SessionView {
    /// Whether the request carries this session's CSRF token (constant-time comparison).
    pub fn csrf_matches(&self, headers: &HeaderMap) -> bool {
        let presented = headers
            .get(CSRF_HEADER)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        bool::from(presented.as_bytes().ct_eq(self.csrf.as_bytes()))
    }
}

/// The session id from the `Cookie` header(s), when one names ours.
fn cookie(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE_NAME)
        .map(|(_, value)| value.trim())
        .filter(|value| !value.is_empty())
}

/// The `Set-Cookie` value that hands out `id`. `Secure` when the browser reached us over TLS
/// (directly, or through a proxy that says so): a plain-HTTP console on loopback must still
/// work, and a `Secure` cookie would never come back over it.
pub fn set_cookie(id: &str, ttl: Duration, secure: bool) -> String {
    format!(
        "{COOKIE_NAME}={id}; Path=/admin; HttpOnly; SameSite=Strict; Max-Age={}{}",
        ttl.as_secs(),
        if secure { "; Secure" } else { "" }
    )
}

/// The `Set-Cookie` value that makes the browser drop the cookie.
pub fn clear_cookie(secure: bool) -> String {
    set_cookie("", Duration::ZERO, secure)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn with_cookie(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(COOKIE, HeaderValue::from_str(value).unwrap());
        headers
    }

    #[test]
    fn a_created_session_is_found_by_its_cookie_among_others() {
        let sessions = Sessions::default();
        let s = sessions.create().unwrap();
        assert_eq!(s.id.len(), 64);
        assert_ne!(s.id, s.csrf);
        let headers = with_cookie(&format!("theme=dark; {COOKIE_NAME}={}; x=y", s.id));
        assert_eq!(sessions.from_headers(&headers), Some(s.clone()));
        assert_eq!(
            sessions.from_headers(&with_cookie("mana_llm_admin=nope")),
            None
        );
        assert!(sessions.remove(&s.id));
        assert_eq!(sessions.from_headers(&headers), None);
    }

    #[test]
    fn an_expired_session_is_gone() {
        let sessions = Sessions::new(Duration::ZERO, 8);
        let s = sessions.create().unwrap();
        let headers = with_cookie(&format!("{COOKIE_NAME}={}", s.id));
        assert_eq!(sessions.from_headers(&headers), None);
        assert!(sessions.is_empty());
    }

    #[test]
    fn the_bound_drops_the_oldest_session() {
        let sessions = Sessions::new(SESSION_TTL, 3);
        let first = sessions.create().unwrap();
        for _ in 0..5 {
            sessions.create().unwrap();
        }
        assert_eq!(sessions.len(), 3);
        let headers = with_cookie(&format!("{COOKIE_NAME}={}", first.id));
        assert_eq!(sessions.from_headers(&headers), None);
    }

    #[test]
    fn the_csrf_token_must_match_exactly() {
        let sessions = Sessions::default();
        let s = sessions.create().unwrap();
        let mut headers = HeaderMap::new();
        assert!(!s.csrf_matches(&headers));
        headers.insert(CSRF_HEADER, HeaderValue::from_str(&s.csrf[1..]).unwrap());
        assert!(!s.csrf_matches(&headers));
        headers.insert(CSRF_HEADER, HeaderValue::from_str(&s.csrf).unwrap());
        assert!(s.csrf_matches(&headers));
    }
}
