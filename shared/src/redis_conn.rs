//! The one Redis connection holder of every process: a worker's registry follower, shared
//! breakers and response cache, and the control plane's publisher.
//!
//! A request never waits on Redis longer than the configured timeout, waiting for a
//! connection included: the live connection sits in a slot that is read without waiting,
//! and connecting happens in one background task, never on a caller's time. While there is
//! no connection, calls fail at once and callers fall back to local state (cache miss, local
//! breaker). A call that times out drops the connection (an unresponsive Redis — paused,
//! blackholed, forking — must not queue every request behind it) and starts a reconnect;
//! reconnects are attempted at most every [`RECONNECT_EVERY`].

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex as SyncMutex, Weak};
use std::time::{Duration, Instant};

use redis::aio::MultiplexedConnection;
use tokio::sync::{Mutex, Notify};

use crate::bus::BusNames;
use crate::redis_client::describe_failure;

/// What the holder reports, so each process can count it in its own metrics.
pub trait RedisObserver: Send + Sync {
    /// Redis became reachable (`true`) or not (`false`); called on every call's outcome.
    fn up(&self, up: bool);
    /// A call or connect failed; `op` is a fixed label.
    fn error(&self, op: &'static str);
}

/// Observes nothing (tests, processes without metrics for Redis).
pub struct Unobserved;

impl RedisObserver for Unobserved {
    fn up(&self, _: bool) {}
    fn error(&self, _: &'static str) {}
}

/// Minimum time between two connection attempts while Redis is down.
pub const RECONNECT_EVERY: Duration = Duration::from_millis(500);

pub struct SharedRedis {
    client: redis::Client,
    names: BusNames,
    /// Bound on one command on the request path.
    timeout: Duration,
    /// The live connection, if any. Held only to clone or replace it, never across an await.
    connection: SyncMutex<Option<MultiplexedConnection>>,
    /// A background connect is running (at most one at a time).
    connecting: AtomicBool,
    /// Itself, for the background connect task.
    this: Weak<SharedRedis>,
    /// Wakes the tasks waiting in [`SharedRedis::connection_waiting`] when a connect succeeds.
    connected: Notify,
    up: AtomicBool,
    /// Milliseconds since `started` of the last failed connection attempt.
    last_attempt_ms: AtomicU64,
    started: Instant,
    observer: Arc<dyn RedisObserver>,
    /// The connect failure last logged at warn level, so a Redis that keeps refusing the
    /// password is reported once, not at every reconnect attempt; cleared on success.
    warned: Mutex<Option<&'static str>>,
}

impl SharedRedis {
    /// Takes a client from [`crate::redis_client::open`]; connects lazily. `timeout` bounds
    /// every call, and connecting is given ten of it.
    pub fn new(
        client: redis::Client,
        names: BusNames,
        timeout: Duration,
        observer: Arc<dyn RedisObserver>,
    ) -> Arc<Self> {
        observer.up(false);
        let redis = Arc::new_cyclic(|this| Self {
            client,
            names,
            timeout,
            connection: SyncMutex::new(None),
            connecting: AtomicBool::new(false),
            this: this.clone(),
            connected: Notify::new(),
            up: AtomicBool::new(false),
            last_attempt_ms: AtomicU64::new(0),
            started: Instant::now(),
            observer,
            warned: Mutex::new(None),
        });
        // Connect now, so the first requests find a connection instead of starting one.
        if tokio::runtime::Handle::try_current().is_ok() {
            redis.reconnect_in_background();
        }
        redis
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
        self.observer.up(up);
        if was != up {
            if up {
                tracing::info!("Redis reachable: fleet-shared state on");
            } else {
                tracing::warn!("Redis unreachable: using local state until it returns");
            }
        }
    }

    /// The live connection at once, or `None` while there is none: a connect then starts in
    /// the background (unless one is running, or the last attempt failed less than
    /// [`RECONNECT_EVERY`] ago), so callers never wait for it.
    pub async fn connection(&self) -> Option<MultiplexedConnection> {
        if let Some(c) = self.slot().as_ref() {
            return Some(c.clone());
        }
        self.reconnect_in_background();
        None
    }

    /// Whether a live connection is there right now (a call would be sent, not refused).
    pub fn is_connected(&self) -> bool {
        self.slot().is_some()
    }

    /// The connection slot. A poisoned lock only means another thread panicked while holding
    /// it for a clone or a swap; the value is still whole.
    fn slot(&self) -> std::sync::MutexGuard<'_, Option<MultiplexedConnection>> {
        self.connection
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A connection, waiting up to `deadline` for a connect if there is none: for background
    /// tasks (the registry follower, resyncs, the control plane's publisher), never the
    /// request path.
    pub async fn connection_waiting(&self, deadline: Duration) -> Option<MultiplexedConnection> {
        let until = tokio::time::Instant::now() + deadline;
        loop {
            let connected = self.connected.notified();
            tokio::pin!(connected);
            // Registered before looking, so a connect finishing in between still wakes us.
            connected.as_mut().enable();
            if let Some(c) = self.connection().await {
                return Some(c);
            }
            let left = until.saturating_duration_since(tokio::time::Instant::now());
            if left.is_zero() {
                return None;
            }
            // A connect is running: wait for its outcome. None is (the last attempt failed
            // moments ago): try again when the next attempt is allowed.
            let wait = if self.connecting.load(Ordering::SeqCst) {
                left
            } else {
                left.min(RECONNECT_EVERY)
            };
            let _ = tokio::time::timeout(wait, connected).await;
        }
    }

    fn reconnect_in_background(&self) {
        let now = self.started.elapsed().as_millis() as u64;
        let last = self.last_attempt_ms.load(Ordering::Relaxed);
        if last != 0 && now.saturating_sub(last) < RECONNECT_EVERY.as_millis() as u64 {
            return;
        }
        if self.connecting.swap(true, Ordering::SeqCst) {
            return;
        }
        self.last_attempt_ms.store(now.max(1), Ordering::Relaxed);
        let Some(this) = self.this.upgrade() else {
            self.connecting.store(false, Ordering::SeqCst);
            return;
        };
        tokio::spawn(async move {
            // Connecting (TCP, AUTH, TLS) may take longer than one command; nobody waits on it.
            let attempt = tokio::time::timeout(
                this.timeout * 10,
                this.client.get_multiplexed_async_connection(),
            )
            .await;
            match attempt {
                Ok(Ok(c)) => {
                    *this.slot() = Some(c);
                    this.set_up(true);
                    this.connected.notify_waiters();
                    *this.warned.lock().await = None;
                }
                Ok(Err(e)) => {
                    if let Some(reason) = describe_failure(&e) {
                        this.warn_once(reason).await;
                    }
                    this.failed("connect", &e.to_string());
                }
                Err(_) => this.failed("connect", "timed out"),
            }
            this.connecting.store(false, Ordering::SeqCst);
            // A failed attempt wakes waiters too, so they give up now rather than at their
            // deadline.
            this.connected.notify_waiters();
        });
    }

    /// A wrong password or an untrusted certificate will not fix itself: say so loudly, once.
    async fn warn_once(&self, reason: &'static str) {
        let mut warned = self.warned.lock().await;
        if *warned != Some(reason) {
            tracing::warn!("{reason}; using local state until Redis accepts the connection");
            *warned = Some(reason);
        }
    }

    fn failed(&self, op: &'static str, error: &str) {
        self.observer.error(op);
        tracing::debug!(op, error, "Redis call failed");
        *self.slot() = None;
        self.set_up(false);
    }

    /// Runs one Redis call bounded by the timeout; any failure returns `None`, marks Redis
    /// down and drops the connection (the next call starts a reconnect). `op` is a fixed label
    /// for the error counter.
    pub async fn call<T, F, Fut>(&self, op: &'static str, f: F) -> Option<T>
    where
        F: FnOnce(MultiplexedConnection) -> Fut,
        Fut: Future<Output = redis::RedisResult<T>>,
    {
        let conn = self.connection().await?;
        self.run(op, conn, f).await
    }

    /// [`SharedRedis::call`] for background work (registry catch-up, breaker re-reads,
    /// leases): waits up to ten timeouts for a connection instead of failing at once, so a
    /// task that runs every few seconds does not miss its turn to a reconnect in progress.
    pub async fn call_patient<T, F, Fut>(&self, op: &'static str, f: F) -> Option<T>
    where
        F: FnOnce(MultiplexedConnection) -> Fut,
        Fut: Future<Output = redis::RedisResult<T>>,
    {
        let conn = self.connection_waiting(self.timeout * 10).await?;
        self.run(op, conn, f).await
    }

    async fn run<T, F, Fut>(&self, op: &'static str, conn: MultiplexedConnection, f: F) -> Option<T>
    where
        F: FnOnce(MultiplexedConnection) -> Fut,
        Fut: Future<Output = redis::RedisResult<T>>,
    {
        match tokio::time::timeout(self.timeout, f(conn)).await {
            Ok(Ok(value)) => {
                self.set_up(true);
                Some(value)
            }
            Ok(Err(e)) => {
                self.failed(op, &e.to_string());
                None
            }
            Err(_) => {
                self.failed(op, "timed out");
                None
            }
        }
    }
}
