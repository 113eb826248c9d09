//! [`RedisStore`]: provider health shared by the fleet through Redis.
//!
//! Each breaker lives in a Redis hash and changes only inside one Lua script
//! (`redis_store/breaker.lua`, the twin of [`super::breaker`]), which also announces the new
//! state on the breaker channel. Every worker keeps a [`mirror::Mirror`] of all breakers,
//! fed by its own script results, by the channel, and by a full re-read whenever it may have
//! missed something; admissions are decided from that mirror, so Redis stays off the hot
//! path. Only a half-open provider costs a round trip: the fleet-wide trial lock makes
//! exactly one worker run each trial. A success on a clean breaker (closed, nothing counted)
//! is not reported at all, so a healthy request costs no Redis command; failures,
//! transitions and the successes that reset a count do.
//!
//! Redis down: the mirror goes on as a plain local breaker (like `MemoryStore`) and
//! [`HealthStore::shared`] says so; when Redis is back the subscriber re-reads everything
//! and Redis is the truth again (what this worker saw alone meanwhile is not pushed back).

mod mirror;
mod subscriber;
#[cfg(test)]
pub(crate) mod test_redis;
#[cfg(test)]
mod tests;
mod wire;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use mana_llm_shared::ProviderId;
use tokio::sync::mpsc;
use tokio_util::sync::{CancellationToken, DropGuard};

use self::mirror::{Local, Mirror};
use super::{Admission, Breaker, BreakerConfig, HealthStore, Report, Transition};
use crate::redis::subscriber::Follower;
use crate::redis::SharedRedis;

/// The breaker state machine in Lua; see the file for its arguments.
const SCRIPT: &str = include_str!("redis_store/breaker.lua");

/// Breakers shared by the fleet; see the module docs.
pub struct RedisStore {
    inner: Arc<Inner>,
    /// Stops a subscriber of its own ([`RedisStore::start`]) when the store is dropped, even
    /// if `cancel` never fires.
    _stop: Option<DropGuard>,
}

/// What the store and its subscriber task share.
struct Inner {
    redis: Arc<SharedRedis>,
    config: BreakerConfig,
    worker_id: String,
    script: redis::Script,
    mirror: Mirror,
    /// The breaker channel subscription is live.
    subscribed: AtomicBool,
    /// This worker may have missed changes (a call failed, the subscription dropped): the
    /// subscriber re-reads every breaker as soon as Redis answers.
    stale: AtomicBool,
    /// Reports made while there was no connection, delivered in order by a background task.
    backlog: Option<mpsc::Sender<Queued>>,
    /// Reports in the backlog not yet delivered: later reports queue behind them.
    pending: AtomicUsize,
}

/// A report waiting for the fleet, owning its text.
struct Queued {
    provider: ProviderId,
    report: OwnedReport,
    now: f64,
    queued_at: std::time::Instant,
}

enum OwnedReport {
    Success,
    Failure(String),
    RateLimited(Option<Duration>),
    Probe(Result<(), String>),
}

impl OwnedReport {
    fn from(report: Report<'_>) -> Self {
        match report {
            Report::Success => Self::Success,
            Report::Failure(r) => Self::Failure(r.to_owned()),
            Report::RateLimited(after) => Self::RateLimited(after),
            Report::Probe(result) => Self::Probe(result.map_err(str::to_owned)),
        }
    }

    fn as_report(&self) -> Report<'_> {
        match self {
            Self::Success => Report::Success,
            Self::Failure(r) => Report::Failure(r),
            Self::RateLimited(after) => Report::RateLimited(*after),
            Self::Probe(result) => {
                Report::Probe(result.as_ref().map(|_| ()).map_err(String::as_str))
            }
        }
    }
}

/// Reports the backlog holds at most; past it they are dropped (the breaker is re-read from
/// Redis when it is back, so only this worker's share of the count is lost).
const BACKLOG: usize = 256;

/// The backlog bridges a reconnect, not an outage: a report that could not reach Redis within
/// this long stays this worker's own (what a worker saw alone during an outage is not pushed
/// back; the fleet's state is re-read when Redis returns).
const BACKLOG_MAX_AGE: Duration = Duration::from_secs(1);

impl RedisStore {
    /// A store whose mirror is fed by the [`RedisStore::follower`] given to the worker's one
    /// subscriber ([`crate::redis::subscriber`]). `worker_id` names lock holders.
    pub fn new(redis: Arc<SharedRedis>, config: BreakerConfig, worker_id: String) -> Arc<Self> {
        let runtime = tokio::runtime::Handle::try_current().ok();
        let (backlog, queue) = match runtime {
            Some(_) => {
                let (tx, rx) = mpsc::channel(BACKLOG);
                (Some(tx), Some(rx))
            }
            None => (None, None),
        };
        let inner = Arc::new(Inner {
            redis,
            config,
            worker_id,
            script: redis::Script::new(SCRIPT),
            mirror: Mirror::default(),
            subscribed: AtomicBool::new(false),
            stale: AtomicBool::new(true),
            backlog,
            pending: AtomicUsize::new(0),
        });
        if let Some(queue) = queue {
            tokio::spawn(deliver(Arc::downgrade(&inner), queue));
        }
        Arc::new(Self { inner, _stop: None })
    }

    /// A store following the breaker channel with a subscriber of its own (stops on `cancel`
    /// or when the store is dropped): for a store used alone, as in the crate's tests.
    /// Must be called inside a Tokio runtime.
    pub fn start(
        redis: Arc<SharedRedis>,
        config: BreakerConfig,
        worker_id: String,
        cancel: CancellationToken,
    ) -> Arc<Self> {
        let stop = cancel.child_token();
        let mut store = Self::new(redis, config, worker_id);
        if let Some(store) = Arc::get_mut(&mut store) {
            store._stop = Some(stop.clone().drop_guard());
        }
        crate::redis::subscriber::spawn(store.inner.redis.clone(), vec![store.follower()], stop);
        store
    }

    /// What feeds the mirror from the breaker channel.
    pub fn follower(&self) -> Arc<dyn Follower> {
        Arc::new(subscriber::Breakers(self.inner.clone()))
    }
}

/// Milliseconds for `PX`, which refuses 0.
fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1)
}

/// Delivers backlogged reports in order, waiting for a connection, until the store is gone.
async fn deliver(inner: std::sync::Weak<Inner>, mut queue: mpsc::Receiver<Queued>) {
    while let Some(queued) = queue.recv().await {
        let Some(inner) = inner.upgrade() else { return };
        let left = BACKLOG_MAX_AGE.saturating_sub(queued.queued_at.elapsed());
        let connected = inner.redis.connection_waiting(left).await.is_some();
        let result = if connected && queued.queued_at.elapsed() <= BACKLOG_MAX_AGE {
            inner
                .report_in_redis(&queued.provider, queued.report.as_report(), queued.now)
                .await
        } else {
            None
        };
        match result {
            Some((transition, message)) => {
                inner.apply(&queued.provider, &message);
                if !transition.is_empty() {
                    tracing::info!(provider = %queued.provider, %transition, "a late breaker report changed the fleet's breaker");
                }
            }
            None => inner.stale.store(true, Ordering::SeqCst),
        }
        inner.pending.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Inner {
    /// Takes the script's answer into the mirror.
    fn apply(&self, provider: &ProviderId, message: &str) {
        match wire::parse(message) {
            Ok(update) => self.mirror.apply(update),
            // Redis has the change; the channel or the next re-sync brings it here.
            Err(error) => tracing::warn!(%provider, %error, "unreadable breaker update"),
        }
    }

    /// Queues a report for the fleet; a full backlog drops it.
    fn enqueue(&self, provider: &ProviderId, report: Report<'_>, now: f64) {
        let Some(backlog) = &self.backlog else { return };
        self.pending.fetch_add(1, Ordering::SeqCst);
        let queued = Queued {
            provider: provider.clone(),
            report: OwnedReport::from(report),
            now,
            queued_at: std::time::Instant::now(),
        };
        if backlog.try_send(queued).is_err() {
            self.pending.fetch_sub(1, Ordering::SeqCst);
            tracing::debug!(%provider, "breaker report backlog full; report kept local");
        }
    }

    /// Runs the report through the script: `(transition, message)`, or `None` while Redis is
    /// down.
    async fn report_in_redis(
        &self,
        provider: &ProviderId,
        report: Report<'_>,
        now: f64,
    ) -> Option<(String, String)> {
        // A NaN or infinite time would make the script fail, which would look like an outage.
        if !now.is_finite() {
            return None;
        }
        let (kind, reason, retry_after) = match report {
            Report::Success => ("success", "", String::new()),
            Report::Failure(reason) => ("failure", reason, String::new()),
            Report::RateLimited(after) => (
                "rate_limited",
                "",
                after.map_or_else(String::new, |d| wire::number(d.as_secs_f64())),
            ),
            Report::Probe(Ok(())) => ("probe_ok", "", String::new()),
            Report::Probe(Err(reason)) => ("probe_failure", reason, String::new()),
        };
        let names = self.redis.names();
        let id = provider.as_str();
        let mut call = self.script.key(names.breaker_key(id));
        call.key(names.breakers_index())
            .key(names.trial_lock(id))
            .arg("report")
            .arg(id)
            .arg(names.breaker_channel())
            .arg(kind)
            .arg(wire::number(now))
            .arg(reason)
            .arg(retry_after)
            .arg(self.config.failure_threshold)
            .arg(wire::number(self.config.open_for.as_secs_f64()))
            .arg(wire::number(self.config.rate_limited_for.as_secs_f64()));
        self.redis
            .call("breaker_report", |mut conn| async move {
                call.invoke_async(&mut conn).await
            })
            .await
    }

    /// `SET key worker_id NX PX ttl`: whether this worker now holds the lock, or `None`
    /// while Redis is down.
    async fn lock(&self, op: &'static str, key: String, ttl: Duration) -> Option<bool> {
        self.lock_with(op, key, ttl, false).await
    }

    /// [`Inner::lock`], waiting for a connection when `patient` (background leases only).
    async fn lock_with(
        &self,
        op: &'static str,
        key: String,
        ttl: Duration,
        patient: bool,
    ) -> Option<bool> {
        let mut cmd = redis::cmd("SET");
        cmd.arg(key)
            .arg(&self.worker_id)
            .arg("NX")
            .arg("PX")
            .arg(millis(ttl));
        let set = |mut conn: redis::aio::MultiplexedConnection| async move {
            cmd.query_async::<Option<String>>(&mut conn).await
        };
        let reply = if patient {
            self.redis.call_patient(op, set).await
        } else {
            self.redis.call(op, set).await
        };
        reply.map(|reply| reply.is_some())
    }

    /// Re-reads every breaker Redis lists into the mirror; false if Redis did not answer.
    async fn resync(&self) -> bool {
        let names = self.redis.names();
        let index = names.breakers_index();
        let Some(providers) = self
            .redis
            .call_patient("breaker_sync", |mut conn| async move {
                redis::cmd("SMEMBERS")
                    .arg(index)
                    .query_async::<Vec<String>>(&mut conn)
                    .await
            })
            .await
        else {
            return false;
        };
        let messages = if providers.is_empty() {
            Vec::new()
        } else {
            // One script reads them all, so the snapshot is consistent across providers.
            let mut call = self.script.arg("read");
            for p in &providers {
                call.key(names.breaker_key(p)).arg(p);
            }
            let Some(messages) = self
                .redis
                .call_patient("breaker_sync", |mut conn| async move {
                    call.invoke_async::<Vec<String>>(&mut conn).await
                })
                .await
            else {
                return false;
            };
            messages
        };
        let updates = messages
            .iter()
            .filter_map(|m| match wire::parse(m) {
                Ok(update) => Some(update),
                Err(error) => {
                    tracing::warn!(%error, "unreadable shared breaker skipped");
                    None
                }
            })
            .collect();
        self.mirror.resync(updates);
        self.stale.store(false, Ordering::SeqCst);
        tracing::debug!(count = providers.len(), "shared breakers re-read");
        true
    }
}

#[async_trait]
impl HealthStore for RedisStore {
    async fn admit(&self, provider: &ProviderId, now: f64) -> Admission {
        let inner = &self.inner;
        let seq = match inner.mirror.admit(provider, now, &inner.config) {
            Local::Decided(admission) => return admission,
            Local::TrialFree { seq } => seq,
        };
        let key = inner.redis.names().trial_lock(provider.as_str());
        match inner
            .lock("breaker_trial", key, inner.config.open_for)
            .await
        {
            Some(won) => {
                // Won or lost, a trial now runs in the fleet: stop asking Redis until its
                // outcome arrives (or it goes stale, as the lock expires).
                inner.mirror.trial_started(provider, seq, now);
                if won {
                    Admission::Trial
                } else {
                    Admission::Reject
                }
            }
            None => {
                inner.stale.store(true, Ordering::SeqCst);
                let config = inner.config;
                inner.mirror.local(provider, |b| b.admit(now, &config))
            }
        }
    }

    async fn report(
        &self,
        provider: &ProviderId,
        report: Report<'_>,
        now: f64,
    ) -> Option<Transition> {
        let inner = &self.inner;
        // The healthy request path stays off Redis: a success on a breaker that is closed
        // with nothing counted changes nothing, here or in the fleet. Redis sees failures,
        // transitions and the successes that reset or end something.
        if matches!(report, Report::Success | Report::Probe(Ok(())))
            && inner.mirror.is_clean(provider)
        {
            return None;
        }
        // Connected: one round trip, and the fleet's answer decides. Not connected (Redis
        // down, or a reconnect running): this worker's breaker decides now and the report
        // goes to the fleet later, in order, from the backlog, instead of being lost. A call
        // that was sent and failed is not retried: Redis may have run it.
        let queued = inner.pending.load(Ordering::SeqCst) > 0;
        if !queued && inner.redis.is_connected() {
            if let Some((transition, message)) = inner.report_in_redis(provider, report, now).await
            {
                inner.apply(provider, &message);
                return wire::transition(&transition);
            }
        } else {
            inner.enqueue(provider, report, now);
        }
        inner.stale.store(true, Ordering::SeqCst);
        let config = inner.config;
        inner.mirror.local(provider, |b| match report {
            Report::Success => b.on_success(now),
            Report::Failure(reason) => b.on_failure(reason, now, &config),
            Report::RateLimited(after) => b.on_rate_limited(after, now, &config),
            Report::Probe(result) => b.on_probe(result, now, &config),
        })
    }

    fn snapshot(&self) -> BTreeMap<ProviderId, Breaker> {
        self.inner.mirror.snapshot()
    }

    fn shared(&self) -> bool {
        self.inner.redis.is_up() && self.inner.subscribed.load(Ordering::SeqCst)
    }

    fn config(&self) -> &BreakerConfig {
        &self.inner.config
    }

    async fn try_lead(&self, name: &str, ttl: Duration) -> bool {
        let key = format!("{}:{name}", self.inner.redis.names().probe_lock());
        // Redis down: nobody can coordinate, so every worker does the job for itself.
        self.inner
            .lock_with("lead", key, ttl, true)
            .await
            .unwrap_or(true)
    }
}
