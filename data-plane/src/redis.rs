//! The worker's Redis connection, shared by the registry follower, the shared breakers and the
//! response cache.
//!
//! Every call on the request path is bounded by a short timeout (tens of milliseconds by
//! default), and a failure marks Redis down: callers then fall back to local state instead of
//! waiting. Reconnects are attempted at most every [`RECONNECT_EVERY`], so a dead Redis costs
//! one timeout per interval, not one per request.

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mana_llm_shared::bus::BusNames;
use mana_llm_shared::redis_client::describe_failure;
use prometheus::{IntCounterVec, IntGauge};
use redis::aio::MultiplexedConnection;
use tokio::sync::Mutex;

/// Minimum time between two connection attempts while Redis is down.
pub const RECONNECT_EVERY: Duration = Duration::from_millis(500);

pub struct SharedRedis {
    client: redis::Client,
    names: BusNames,
    /// Bound on one command on the request path.
    timeout: Duration,
    connection: Mutex<Option<MultiplexedConnection>>,
    up: AtomicBool,
    /// Milliseconds since `started` of the last failed connection attempt.
    last_attempt_ms: AtomicU64,
    started: Instant,
    up_gauge: IntGauge,
    errors: IntCounterVec,
    /// The connect failure last logged at warn level, so a Redis that keeps refusing the
    /// password is reported once, not at every reconnect attempt; cleared on success.
    warned: Mutex<Option<&'static str>>,
}

impl SharedRedis {
    /// Takes a client from [`mana_llm_shared::redis_client::open`]; connects lazily.
    pub fn new(
        client: redis::Client,
        names: BusNames,
        timeout: Duration,
        up_gauge: IntGauge,
        errors: IntCounterVec,
    ) -> Arc<Self> {
        up_gauge.set(0);
        Arc::new(Self {
            client,
            names,
            timeout,
            connection: Mutex::new(None),
            up: AtomicBool::new(false),
            last_attempt_ms: AtomicU64::new(0),
            started: Instant::now(),
            up_gauge,
            errors,
            warned: Mutex::new(None),
        })
    }

    pub fn names(&self) -> &BusNames {
        &self.names
    }

    pub fn client(&self) -> &redis::Client {
        &self.client
    }

    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Whether the last Redis call worked.
    pub fn is_up(&self) -> bool {
        self.up.load(Ordering::Relaxed)
    }

    fn set_up(&self, up: bool) {
        let was = self.up.swap(up, Ordering::Relaxed);
        self.up_gauge.set(i64::from(up));
        if was != up {
            if up {
                tracing::info!("Redis reachable: fleet-shared state on");
            } else {
                tracing::warn!("Redis unreachable: using local state until it returns");
            }
        }
    }

    /// A connection, or `None` while Redis is down (without waiting when an attempt failed
    /// less than [`RECONNECT_EVERY`] ago).
    pub async fn connection(&self) -> Option<MultiplexedConnection> {
        let mut slot = self.connection.lock().await;
        if let Some(c) = slot.as_ref() {
            return Some(c.clone());
        }
        let now = self.started.elapsed().as_millis() as u64;
        let last = self.last_attempt_ms.load(Ordering::Relaxed);
        if last != 0 && now.saturating_sub(last) < RECONNECT_EVERY.as_millis() as u64 {
            return None;
        }
        self.last_attempt_ms.store(now.max(1), Ordering::Relaxed);
        // Connecting may take longer than one command; it happens off the hot path mostly.
        match tokio::time::timeout(
            self.timeout * 10,
            self.client.get_multiplexed_async_connection(),
        )
        .await
        {
            Ok(Ok(c)) => {
                *slot = Some(c.clone());
                self.set_up(true);
                *self.warned.lock().await = None;
                Some(c)
            }
            Ok(Err(e)) => {
                if let Some(reason) = describe_failure(&e) {
                    self.warn_once(reason).await;
                }
                self.failed("connect", &e.to_string(), &mut slot);
                None
            }
            Err(_) => {
                self.failed("connect", "timed out", &mut slot);
                None
            }
        }
    }

    /// A wrong password or an untrusted certificate will not fix itself: say so loudly, once.
    async fn warn_once(&self, reason: &'static str) {
        let mut warned = self.warned.lock().await;
        if *warned != Some(reason) {
            tracing::warn!("{reason}; using local state until Redis accepts the connection");
            *warned = Some(reason);
        }
    }

    fn failed(&self, op: &str, error: &str, slot: &mut Option<MultiplexedConnection>) {
        self.errors.with_label_values(&[op]).inc();
        tracing::debug!(op, error, "Redis call failed");
        *slot = None;
        self.set_up(false);
    }

    /// Runs one Redis call bounded by the timeout; any failure returns `None` and marks Redis
    /// down. `op` is a fixed label for the error counter.
    pub async fn call<T, F, Fut>(&self, op: &'static str, f: F) -> Option<T>
    where
        F: FnOnce(MultiplexedConnection) -> Fut,
        Fut: Future<Output = redis::RedisResult<T>>,
    {
        let conn = self.connection().await?;
        match tokio::time::timeout(self.timeout, f(conn)).await {
            Ok(Ok(value)) => {
                self.set_up(true);
                Some(value)
            }
            Ok(Err(e)) => {
                let mut slot = self.connection.lock().await;
                self.failed(op, &e.to_string(), &mut slot);
                None
            }
            Err(_) => {
                let mut slot = self.connection.lock().await;
                self.failed(op, "timed out", &mut slot);
                None
            }
        }
    }
}
