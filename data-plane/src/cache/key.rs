//! The cache policy and the cache key: which requests may use the cache, and under what name.
//!
//! With client auth on, each client key has its own partition of the cache (unless the operator
//! shares it on purpose, `MANA_LLM_CACHE_SCOPE=shared`): otherwise a hit would tell one client
//! that another asked exactly the same thing. The partition is a [`Tenant`] tag mixed into the
//! hashed input, so it shows in no key, log or metric, and the local tier and single flight,
//! keyed by the same [`CacheKey`], are partitioned with Redis.

use std::fmt;
use std::io;

use http::header::CACHE_CONTROL;
use mana_llm_shared::bus::BusNames;
use serde::Serialize;
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::{CacheConfig, CacheScope};
use crate::openai::ChatRequest;

/// Separates tenant tags from any other SHA-256 of a client key.
const TENANT_DOMAIN: &[u8] = b"mana-llm cache tenant v1\0";

/// The cache partition of one client key: a SHA-256 of a fixed domain and the key, so that the
/// key itself never reaches the cache. Its `Debug` shows nothing of it.
#[derive(Clone, PartialEq, Eq)]
pub struct Tenant(pub(super) [u8; 32]);

impl Tenant {
    /// The tag of the client key a request presented (and auth accepted).
    pub fn of_client_key(key: &str) -> Self {
        let mut hasher = Sha256::new();
        hasher.update(TENANT_DOMAIN);
        hasher.update(key.as_bytes());
        Self(hasher.finalize().into())
    }
}

impl fmt::Debug for Tenant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Tenant([redacted])")
    }
}

/// The full Redis key of one cached answer (`names.cache_key(hex)`); also the local tier's key.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CacheKey(pub String);

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Neither read nor write; the reason is for logs.
    Bypass(&'static str),
    /// `read: false` (`Cache-Control: no-cache`) skips the read but still stores the answer.
    Use { key: CacheKey, read: bool },
}

/// Whether `request`, about to be routed along `chain` (its targets in order), uses the cache.
/// The chain is only built when a key is needed: most requests are bypassed before that.
/// `tenant` is the client key's partition (`None` without client auth); with
/// [`CacheScope::Shared`] it is ignored.
pub fn decide(
    config: &CacheConfig,
    request: &ChatRequest,
    headers: &http::HeaderMap,
    tenant: Option<&Tenant>,
    chain: impl FnOnce() -> Vec<String>,
    names: &BusNames,
) -> Decision {
    if !config.enabled {
        return Decision::Bypass("disabled");
    }
    let (no_store, no_cache) = cache_control(headers);
    if no_store {
        return Decision::Bypass("no_store");
    }
    // Only the first choice is stored and replayed.
    if request.n.is_some_and(|n| n > 1) {
        return Decision::Bypass("multiple_choices");
    }
    // Sampling answers differ on purpose from one call to the next; serving one twice would be
    // wrong. Exact 0 is what clients send for "greedy", so no tolerance is needed.
    let deterministic = request.temperature == Some(0.0) || request.seed.is_some();
    if !deterministic {
        return Decision::Bypass("not_deterministic");
    }
    let tenant = match config.scope {
        CacheScope::Key => tenant,
        CacheScope::Shared => None,
    };
    Decision::Use {
        key: CacheKey(names.cache_key(&key_of(request, &chain(), tenant))),
        read: !no_cache,
    }
}

/// `(no-store, no-cache)` from every `Cache-Control` header, directives case-insensitive.
fn cache_control(headers: &http::HeaderMap) -> (bool, bool) {
    let mut no_store = false;
    let mut no_cache = false;
    for value in headers.get_all(CACHE_CONTROL) {
        let Ok(value) = value.to_str() else { continue };
        for directive in value.split(',') {
            let name = directive.split('=').next().unwrap_or("").trim();
            no_store |= name.eq_ignore_ascii_case("no-store");
            no_cache |= name.eq_ignore_ascii_case("no-cache");
        }
    }
    (no_store, no_cache)
}

/// The hex SHA-256 of the canonical request, the chain and the tenant (if partitioned).
pub fn key_of(request: &ChatRequest, chain: &[String], tenant: Option<&Tenant>) -> String {
    match canonical_hash(request, chain, tenant) {
        Ok(hash) => hash,
        Err(e) => {
            // Cannot happen with the types we have (string keys only); should it ever, a key of
            // its own means a wasted entry rather than another request's answer.
            tracing::warn!(error = %e, "could not encode a request for its cache key");
            uuid::Uuid::new_v4().simple().to_string()
        }
    }
}

fn canonical_hash(
    request: &ChatRequest,
    chain: &[String],
    tenant: Option<&Tenant>,
) -> Result<String, serde_json::Error> {
    // serde_json's `Map` is a BTreeMap (no `preserve_order` in this workspace), so the value's
    // keys come out sorted at every level whatever order the client sent them in.
    let mut value = serde_json::to_value(request)?;
    if let Value::Object(map) = &mut value {
        // Transport and attribution, not content: the same answer serves all of them.
        for field in ["model", "stream", "stream_options", "user"] {
            map.remove(field);
        }
    }
    // The chain and the tenant sit beside the request, not inside it, so no request field can
    // imitate them. Without a tenant the field is absent, not null: shared entries need no tag.
    #[derive(Serialize)]
    struct Canonical<'a> {
        chain: &'a [String],
        request: &'a Value,
        #[serde(skip_serializing_if = "Option::is_none")]
        tenant: Option<String>,
    }
    let mut hasher = HashWriter(Sha256::new());
    serde_json::to_writer(
        &mut hasher,
        &Canonical {
            chain,
            request: &value,
            tenant: tenant.map(|t| hex(&t.0)),
        },
    )?;
    Ok(hex(&hasher.0.finalize()))
}

/// Feeds serialized JSON straight into the hash instead of building a string first.
struct HashWriter(Sha256);

impl io::Write for HashWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0xf)]));
    }
    out
}
