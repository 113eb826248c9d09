//! Where beats live: Redis for a fleet, memory for `serve` alone. Both drop a beat once its
//! expiry passes, so the fleet view is exactly the workers still beating.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;

use super::{Beat, WorkerId, MAX_BEAT_BYTES};
use crate::redis_conn::SharedRedis;

#[async_trait]
pub trait Beats: Send + Sync {
    /// Records `beat`, replacing the worker's previous one, until `ttl` passes.
    async fn write(&self, beat: &Beat, ttl: Duration) -> bool;
    /// Every live worker's latest beat, sorted by worker id; `None` when the store cannot be
    /// read (Redis down).
    async fn list(&self) -> Option<Vec<Beat>>;
}

/// The beats of one process (`serve` without Redis).
#[derive(Default)]
pub struct MemoryBeats {
    beats: Mutex<HashMap<WorkerId, (Beat, Instant)>>,
}

#[async_trait]
impl Beats for MemoryBeats {
    async fn write(&self, beat: &Beat, ttl: Duration) -> bool {
        let mut beats = self.beats.lock().unwrap_or_else(|e| e.into_inner());
        beats.insert(beat.worker_id.clone(), (beat.clone(), Instant::now() + ttl));
        true
    }

    async fn list(&self) -> Option<Vec<Beat>> {
        let mut beats = self.beats.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        beats.retain(|_, (_, until)| *until > now);
        let mut out: Vec<Beat> = beats.values().map(|(b, _)| b.clone()).collect();
        out.sort_by(|a, b| a.worker_id.cmp(&b.worker_id));
        Some(out)
    }
}

/// The fleet's beats in Redis: one key per worker with an expiry (`PX`), found by `SCAN`.
pub struct RedisBeats {
    redis: Arc<SharedRedis>,
}

/// Most keys one listing reads: a fleet past this is shown in part (and says so in the log).
const MAX_WORKERS: usize = 10_000;

impl RedisBeats {
    pub fn new(redis: Arc<SharedRedis>) -> Self {
        Self { redis }
    }
}

#[async_trait]
impl Beats for RedisBeats {
    async fn write(&self, beat: &Beat, ttl: Duration) -> bool {
        let Ok(json) = serde_json::to_string(beat) else {
            return false;
        };
        let key = self.redis.names().worker_key(beat.worker_id.as_str());
        let ttl_ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
        self.redis
            .call_patient("heartbeat", |mut conn| async move {
                redis::cmd("SET")
                    .arg(key)
                    .arg(json)
                    .arg("PX")
                    .arg(ttl_ms)
                    .query_async::<()>(&mut conn)
                    .await
            })
            .await
            .is_some()
    }

    async fn list(&self) -> Option<Vec<Beat>> {
        let pattern = self.redis.names().worker_pattern();
        let mut keys: Vec<String> = Vec::new();
        let mut cursor: u64 = 0;
        loop {
            let pattern = pattern.clone();
            let (next, batch): (u64, Vec<String>) = self
                .redis
                // Reads answer the admin API and the rollout judge: fail fast (a frozen Redis
                // must turn into a clear "unavailable", not a request that hangs).
                .call("fleet_scan", |mut conn| async move {
                    redis::cmd("SCAN")
                        .arg(cursor)
                        .arg("MATCH")
                        .arg(pattern)
                        .arg("COUNT")
                        .arg(1000)
                        .query_async(&mut conn)
                        .await
                })
                .await?;
            keys.extend(batch);
            cursor = next;
            if cursor == 0 || keys.len() >= MAX_WORKERS {
                break;
            }
        }
        keys.sort();
        keys.dedup();
        keys.truncate(MAX_WORKERS);
        let mut beats = Vec::with_capacity(keys.len());
        for chunk in keys.chunks(500) {
            let chunk = chunk.to_vec();
            let values: Vec<Option<String>> = self
                .redis
                .call("fleet_read", |mut conn| async move {
                    redis::cmd("MGET").arg(chunk).query_async(&mut conn).await
                })
                .await?;
            beats.extend(
                values
                    .into_iter()
                    .flatten()
                    .filter(|raw| raw.len() <= MAX_BEAT_BYTES)
                    .filter_map(|raw| serde_json::from_str::<Beat>(&raw).ok())
                    .filter(Beat::is_plausible),
            );
        }
        beats.sort_by(|a, b| a.worker_id.cmp(&b.worker_id));
        Some(beats)
    }
}
