//! Exact-match response cache for chat completions.
//!
//! - [`decide`]: whether a request may use the cache, and its key. Only deterministic requests
//!   (`temperature: 0` or a `seed`, one choice) are cached; `Cache-Control: no-store` skips the
//!   cache entirely, `no-cache` skips the read but stores the fresh answer.
//! - [`key_of`]: SHA-256 of the canonical request (sorted keys; `stream`, `stream_options`,
//!   `user` dropped) together with the resolved chain, so a registry change misses, and the
//!   client key's [`Tenant`] tag, so one client never gets another's answer (unless shared).
//! - [`ResponseCache::lookup`]: the read-through. A small in-process tier answers first, Redis
//!   second (a Redis hit fills the local tier); a miss runs the caller's fetch once per worker
//!   however many identical requests arrive together (single flight), and stores the answer.
//!   Redis being down is a miss and a skipped write, never an error for the client. An entry
//!   from Redis is served only if it passes its checks (`entry`: shape, and the fleet key's MAC).
//! - [`replay_chunks`]: a hit for a streaming request, as the chunks of a stream.

mod entry;
mod flight;
mod key;
mod local;
mod replay;
#[cfg(test)]
mod tests;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use mana_llm_shared::fleet_key::FleetKey;
use prometheus::IntCounter;
use serde::{Deserialize, Serialize};

use crate::metrics::Metrics;
use crate::openai::ChatCompletion;
use crate::redis::SharedRedis;
use crate::settings::{ConfigError, Source};
use entry::Rejected;
use flight::{Flights, Join, Waited};
use local::LocalTier;

pub use key::{decide, key_of, CacheKey, Decision, Tenant};
pub use replay::replay_chunks;

const DEFAULT_TTL_SECS: f64 = 3600.0;
const DEFAULT_MAX_ENTRY_KB: usize = 256;
const DEFAULT_LOCAL_ENTRIES: usize = 1000;
const DEFAULT_LOCAL_TTL_SECS: f64 = 60.0;
const SCOPE_ENV: &str = "MANA_LLM_CACHE_SCOPE";

/// Who shares cached answers when client auth is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CacheScope {
    /// Each client key has its own entries: a hit reveals nothing about other clients.
    #[default]
    Key,
    /// Every client shares the entries, on purpose (one application behind several keys).
    Shared,
}

impl CacheScope {
    fn from_source(src: &Source) -> Result<Self, ConfigError> {
        match src.string(SCOPE_ENV, "key").to_ascii_lowercase().as_str() {
            "key" => Ok(Self::Key),
            "shared" => Ok(Self::Shared),
            other => Err(ConfigError::new(
                SCOPE_ENV,
                format!("'{other}' is not 'key' or 'shared'"),
            )),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheConfig {
    /// `MANA_LLM_CACHE`.
    pub enabled: bool,
    /// `CACHE_TTL` (the original service's name): how long Redis keeps an answer.
    pub ttl: Duration,
    /// `MANA_LLM_CACHE_MAX_ENTRY_KB`: larger answers are not stored.
    pub max_entry_bytes: usize,
    /// `MANA_LLM_CACHE_LOCAL_ENTRIES`: the in-process tier's size; 0 switches it off.
    pub local_entries: usize,
    /// `MANA_LLM_CACHE_LOCAL_TTL`: the in-process tier's lifetime (capped at `ttl`).
    pub local_ttl: Duration,
    /// `MANA_LLM_CACHE_SCOPE`: per client key (default) or shared by all clients.
    pub scope: CacheScope,
}

impl Default for CacheConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            ttl: Duration::from_secs_f64(DEFAULT_TTL_SECS),
            max_entry_bytes: DEFAULT_MAX_ENTRY_KB * 1024,
            local_entries: DEFAULT_LOCAL_ENTRIES,
            local_ttl: Duration::from_secs_f64(DEFAULT_LOCAL_TTL_SECS),
            scope: CacheScope::Key,
        }
    }
}

impl CacheConfig {
    pub fn from_source(src: &Source) -> Result<Self, ConfigError> {
        let kb: usize = src.number("MANA_LLM_CACHE_MAX_ENTRY_KB", DEFAULT_MAX_ENTRY_KB)?;
        Ok(Self {
            enabled: src.flag("MANA_LLM_CACHE", true)?,
            ttl: src.seconds("CACHE_TTL", DEFAULT_TTL_SECS)?,
            max_entry_bytes: kb.saturating_mul(1024),
            local_entries: src.number("MANA_LLM_CACHE_LOCAL_ENTRIES", DEFAULT_LOCAL_ENTRIES)?,
            local_ttl: src.seconds("MANA_LLM_CACHE_LOCAL_TTL", DEFAULT_LOCAL_TTL_SECS)?,
            scope: CacheScope::from_source(src)?,
        })
    }
}

/// One cached answer: who answered, and what. Stored as JSON.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Cached {
    /// The `provider/model` that answered.
    pub target: String,
    pub completion: ChatCompletion,
}

impl Cached {
    /// What a hit needs to be answered and replayed: who answered, and a first choice. Checked
    /// before storing and after reading, since `ChatCompletion` itself accepts `{}`.
    fn is_well_formed(&self) -> bool {
        !self.target.is_empty() && !self.completion.choices.is_empty()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tier {
    Local,
    Redis,
}

impl Tier {
    /// The `tier` metric label.
    pub fn label(self) -> &'static str {
        match self {
            Tier::Local => "local",
            Tier::Redis => "redis",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Hit(Tier),
    /// Fetched: by this request, or by an identical one running at the same time.
    Miss,
}

impl Outcome {
    /// For a response header telling the client what the cache did.
    pub fn header_value(&self) -> &'static str {
        match self {
            Outcome::Hit(_) => "hit",
            Outcome::Miss => "miss",
        }
    }
}

/// The header value for a request that did not use the cache.
pub fn bypass_header_value() -> &'static str {
    "bypass"
}

/// `cache_requests_total` handles, resolved once.
struct Counters {
    hit_local: IntCounter,
    hit_redis: IntCounter,
    miss: IntCounter,
    bypass: IntCounter,
    /// `cache_rejected_total`, by reason.
    malformed: IntCounter,
    unsigned: IntCounter,
    bad_mac: IntCounter,
}

impl Counters {
    fn rejected(&self, reason: Rejected) -> &IntCounter {
        match reason {
            Rejected::Malformed => &self.malformed,
            Rejected::Unsigned => &self.unsigned,
            Rejected::BadMac => &self.bad_mac,
        }
    }
}

pub struct ResponseCache {
    config: CacheConfig,
    redis: Option<Arc<SharedRedis>>,
    /// Signs what this worker writes to Redis and checks what it reads.
    fleet_key: Option<FleetKey>,
    local: LocalTier,
    flights: Flights,
    counters: Counters,
}

impl ResponseCache {
    pub fn new(
        config: CacheConfig,
        redis: Option<Arc<SharedRedis>>,
        fleet_key: Option<FleetKey>,
        metrics: Arc<Metrics>,
    ) -> Self {
        let count = |result: &str, tier: &str| {
            metrics
                .cache_requests_total
                .with_label_values(&[result, tier])
        };
        let rejected = |reason: Rejected| {
            metrics
                .cache_rejected_total
                .with_label_values(&[reason.label()])
        };
        let counters = Counters {
            hit_local: count("hit", "local"),
            hit_redis: count("hit", "redis"),
            miss: count("miss", "none"),
            bypass: count("bypass", "none"),
            malformed: rejected(Rejected::Malformed),
            unsigned: rejected(Rejected::Unsigned),
            bad_mac: rejected(Rejected::BadMac),
        };
        let local = LocalTier::new(config.local_entries, config.local_ttl.min(config.ttl));
        Self {
            config,
            redis,
            fleet_key,
            local,
            flights: Flights::default(),
            counters,
        }
    }

    pub fn config(&self) -> &CacheConfig {
        &self.config
    }

    /// The cached answer, from the local tier or else Redis. Redis down or an entry that fails
    /// its checks is a miss. A Redis hit is kept locally for `local_ttl` from now, which may outlive
    /// the Redis entry by up to that long.
    pub async fn get(&self, key: &CacheKey) -> Option<(Cached, Tier)> {
        if let Some(cached) = self.local.get(&key.0) {
            return Some((Cached::clone(&cached), Tier::Local));
        }
        let redis = self.redis.as_ref()?;
        let k = key.0.clone();
        let bytes: Vec<u8> = redis
            .call("cache_get", |mut conn| async move {
                ::redis::cmd("GET")
                    .arg(k)
                    .query_async::<Option<Vec<u8>>>(&mut conn)
                    .await
            })
            .await??;
        let cached = match entry::open(key, &bytes, self.fleet_key.as_ref()) {
            Ok(c) => c,
            Err(rejected) => {
                // Damaged, or written by someone without the fleet key: fetched afresh and
                // overwritten. Loud, since it may be an attack; the content stays out of logs.
                self.counters.rejected(rejected).inc();
                tracing::warn!(
                    key = %key.0,
                    reason = rejected.label(),
                    "cache entry from Redis rejected, treated as a miss"
                );
                return None;
            }
        };
        self.local.insert(&key.0, Arc::new(cached.clone()));
        Some((cached, Tier::Redis))
    }

    /// Stores `value` locally and in Redis, unless its JSON exceeds `max_entry_bytes`.
    pub async fn put(&self, key: &CacheKey, value: &Cached) {
        if let Some(json) = self.put_local(key, value) {
            self.put_redis(key, json).await;
        }
    }

    /// The local half of [`put`](Self::put); returns the JSON for Redis when it fits.
    fn put_local(&self, key: &CacheKey, value: &Cached) -> Option<Vec<u8>> {
        if !value.is_well_formed() {
            // It would be rejected when read back; an answer without a choice is not worth it.
            return None;
        }
        let json = match serde_json::to_vec(value) {
            Ok(json) => json,
            Err(e) => {
                tracing::debug!(error = %e, "could not encode an answer for the cache");
                return None;
            }
        };
        if json.len() > self.config.max_entry_bytes {
            tracing::debug!(
                bytes = json.len(),
                max = self.config.max_entry_bytes,
                "answer too large for the cache"
            );
            return None;
        }
        self.local.insert(&key.0, Arc::new(value.clone()));
        Some(json)
    }

    async fn put_redis(&self, key: &CacheKey, json: Vec<u8>) {
        let Some(redis) = &self.redis else { return };
        let ttl_ms = u64::try_from(self.config.ttl.as_millis())
            .unwrap_or(u64::MAX)
            .max(1);
        let value = entry::seal(key, &json, self.fleet_key.as_ref());
        let k = key.0.clone();
        let stored = redis
            .call("cache_set", |mut conn| async move {
                ::redis::cmd("SET")
                    .arg(k)
                    .arg(value)
                    .arg("PX")
                    .arg(ttl_ms)
                    .query_async::<()>(&mut conn)
                    .await
            })
            .await;
        if stored.is_none() {
            tracing::debug!(key = %key.0, "cache write skipped: Redis unavailable");
        }
    }

    /// The read-through: a hit returns `Hit(tier)`; a miss runs `fetch`, stores a successful
    /// answer and returns it with `Miss`. With `read` false the lookup is skipped and a running
    /// identical fetch is not joined (the client asked for a fresh answer).
    ///
    /// Concurrent identical misses on this worker share one `fetch`: the first caller runs it,
    /// the others wait and get a clone of its result, error included (nothing is stored on an
    /// error). If the first caller is dropped before it finishes, the waiters start over and
    /// one of them fetches. Every caller counts one hit or one miss in `cache_requests_total`.
    pub async fn lookup<E, F, Fut>(
        &self,
        key: &CacheKey,
        read: bool,
        fetch: F,
    ) -> Result<(Cached, Outcome), E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Cached, E>>,
        E: Clone + Send + Sync + 'static,
    {
        let leader = loop {
            if read {
                if let Some((cached, tier)) = self.get(key).await {
                    self.count_hit(tier);
                    return Ok((cached, Outcome::Hit(tier)));
                }
            }
            match self.flights.join(&key.0, read) {
                Join::Lead(leader) => break Some(leader),
                Join::Alone => break None,
                Join::Wait(waiter) => match waiter.wait::<Result<Cached, E>>().await {
                    Waited::Done(result) => {
                        self.counters.miss.inc();
                        return result.map(|cached| (cached, Outcome::Miss));
                    }
                    Waited::Abandoned => continue,
                    Waited::Mismatch => break None,
                },
            }
        };
        // A flight that ended during our Redis read has just filled the local tier. Dropping
        // our flight sends anyone who joined it back to the local tier as well.
        if read && leader.is_some() {
            if let Some(cached) = self.local.get(&key.0) {
                drop(leader);
                self.count_hit(Tier::Local);
                return Ok((Cached::clone(&cached), Outcome::Hit(Tier::Local)));
            }
        }
        self.counters.miss.inc();
        let result = fetch().await;
        // Local first, then the waiters, then Redis: anyone arriving after the flight ends
        // finds the answer locally instead of starting a second fetch.
        let json = result.as_ref().ok().and_then(|c| self.put_local(key, c));
        if let Some(leader) = leader {
            leader.finish(|| result.clone());
        }
        if let Some(json) = json {
            self.put_redis(key, json).await;
        }
        result.map(|cached| (cached, Outcome::Miss))
    }

    fn count_hit(&self, tier: Tier) {
        match tier {
            Tier::Local => self.counters.hit_local.inc(),
            Tier::Redis => self.counters.hit_redis.inc(),
        }
    }

    /// Counts a request that did not use the cache.
    pub fn record_bypass(&self, _reason: &'static str) {
        // The reason stays out of the labels: the metric's label set is the original's.
        self.counters.bypass.inc();
    }
}
